#!/usr/bin/env bash
# The quick start: install what is needed, build and install kapsel, run a container.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cargo build --release --locked --workspace --bins --examples
./scripts/install-runtime.sh target/release/kapsel-runtime /usr/local/bin/kapsel-runtime
qs=/var/lib/kapsel/quickstart
rm -rf "$qs"
# The built-in hello-world image's program, as its own root filesystem.
target/release/examples/hello-world-rootfs "$qs/hello-world/rootfs"
./scripts/bundle-config.sh "$qs/hello-world" /hello
kapsel-runtime run --bundle "$qs/hello-world" "hello-world-$$"
# A busybox container.
./scripts/make-busybox-bundle.sh "$qs/busybox" sh -c 'echo "Hello from a busybox container in kapsel: $(hostname), pid $$, $(id)"'
kapsel-runtime run --bundle "$qs/busybox" "busybox-$$"
