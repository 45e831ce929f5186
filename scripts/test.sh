#!/usr/bin/env bash
# The whole test suite, as root: lint, unit tests and the integration tests that run real
# containers.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
[ "$(id -u)" = 0 ] || { echo "the tests run real containers: run as root" >&2; exit 1; }
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
