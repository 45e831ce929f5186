#!/usr/bin/env bash
# The quick start: install what is needed, build and install kapsel, run a container.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cargo build --release --locked
install -m 0755 target/release/kapsel-runtime /usr/local/bin/kapsel-runtime
bundle=/var/lib/kapsel/quickstart/busybox
rm -rf "$bundle"
./scripts/make-busybox-bundle.sh "$bundle" sh -c 'echo "Hello from a kapsel container: $(hostname), pid $$, $(id)"'
cd "$bundle"
kapsel-runtime run "quickstart-$$"
