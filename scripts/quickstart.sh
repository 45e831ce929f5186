#!/usr/bin/env bash
# The quick start: install what is needed, build and install kapsel, start kapseld, and
# run two containers with the kapsel CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cargo build --release --locked --workspace --bins
for bin in kapseld kapsel kapsel-shim; do install -m 0755 "target/release/$bin" /usr/local/bin/; done
./scripts/install-runtime.sh target/release/kapsel-runtime /usr/local/bin/kapsel-runtime
# kapseld with its defaults: /var/lib/kapsel, /run/kapsel, unix:///run/kapsel.sock.
if ! kapsel version >/dev/null 2>&1; then
  mkdir -p /var/log
  setsid kapseld --pidfile /run/kapseld.pid >>/var/log/kapseld.log 2>&1 < /dev/null &
  for _ in $(seq 100); do kapsel version >/dev/null 2>&1 && break; sleep 0.05; done
fi
# The built-in hello-world image: no registry, no network.
kapsel run --rm hello-world
# A busybox image made from Debian's busybox-static.
./scripts/make-busybox-image.sh /tmp/kapsel-busybox.tar busybox:latest
kapsel load -q -i /tmp/kapsel-busybox.tar
rm -f /tmp/kapsel-busybox.tar
kapsel run --rm busybox sh -c 'echo "Hello from a busybox container in kapsel: $(hostname), pid $$, $(id)"'
echo "kapseld is running (pid $(cat /run/kapseld.pid)); stop it with: kill \$(cat /run/kapseld.pid)"
