# shellcheck shell=bash
# Sourced by the engine benchmarks: release binaries as installed (an immutable
# kapsel-runtime), a private kapseld in a temp dir, the anchors (../shared/bench), and the
# bench/busybox image in kapseld. Sets OUT, SOCK and KAPSEL (the CLI), and a trap that
# stops kapseld (by PID) and removes everything.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --locked -p kapseld -p kapsel-shim -p kapsel-runtime -p kapsel-cli >&2
. bench/anchors.sh
OUT=$(mktemp -d /tmp/kapsel-bench-XXXXXX)
BIN=$OUT/bin; mkdir -p "$BIN"
cp target/release/{kapseld,kapsel-shim,kapsel} "$BIN/"
./scripts/install-runtime.sh target/release/kapsel-runtime "$BIN/kapsel-runtime"
SOCK=$OUT/api.sock
"$BIN/kapseld" --data-root "$OUT/data" --exec-root "$OUT/run" -H "unix://$SOCK" 2>"$OUT/kapseld.log" &
KPID=$!
KAPSEL="$BIN/kapsel -H unix://$SOCK"
kapseld_cleanup() {
  $KAPSEL rm -f $($KAPSEL ps -aq) >/dev/null 2>&1 || true
  kill "$KPID" 2>/dev/null; wait "$KPID" 2>/dev/null || true
  chattr -i "$BIN/kapsel-runtime" 2>/dev/null || true
  rm -rf "$OUT"
  restore_forward_policy
}
trap kapseld_cleanup EXIT
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.05; done
./scripts/make-busybox-image.sh "$OUT/busybox.tar" bench/busybox:latest
$KAPSEL load -q -i "$OUT/busybox.tar" >/dev/null
$KAPSEL run --rm --network none bench/busybox true   # unpacks the layer once
