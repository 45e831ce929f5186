#!/usr/bin/env bash
# Memory of the per-container supervisors, in one run: N idle containers (`sleep`) under
# kapseld (one kapsel-shim each) and N under podman (one conmon each); the PSS of the
# supervisor processes summed and divided by N (shared pages are split among sharers, so
# this is what one more container costs).
set -euo pipefail
N=${N:-10}
. "$(dirname "$0")/kapseld-env.sh"
pods=()
podman_cleanup() { [ ${#pods[@]} -eq 0 ] || $PODMAN rm -f -t 0 "${pods[@]}" >/dev/null 2>&1 || true; }
trap 'podman_cleanup; kapseld_cleanup' EXIT
for i in $(seq "$N"); do
  $KAPSEL run -d --network none --name "pss-$i" bench/busybox sleep 1000 >/dev/null
  pods+=("$($PODMAN run -d --network=none --name "kapsel-pss-$$-$i" localhost/bench/busybox:latest sleep 1000)")
done
# The shim gives back its idle memory after 2 s of quiet.
sleep 4
pss_of() { local total=0; for pid in "$@"; do
  total=$((total + $(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup"))); done; echo "$total"; }
shims=$(pgrep -f "kapsel-shim .*--runtime-root $OUT/run/runtime" | tr '\n' ' ')
conmons=$(for p in "${pods[@]}"; do $PODMAN inspect -f '{{.State.ConmonPid}}' "$p"; done | tr '\n' ' ')
# shellcheck disable=SC2086
python3 - "$N" "$(pss_of $shims)" "$(pss_of $conmons)" <<'PY'
import sys
n, shim, conmon = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
print(f"kapsel-shim: {shim / n / 1024:.3f} MiB PSS per container ({n} containers)")
print(f"conmon:      {conmon / n / 1024:.3f} MiB PSS per container ({n} containers)")
print(f"ratio kapsel-shim / conmon: {shim / conmon:.2f}")
PY
