#!/usr/bin/env bash
# N detached containers (`run -d --network none busybox sleep 1000`, default N=50) through
# each engine's CLI, one engine after the other within a round, ROUNDS rounds (default 3):
# the total time to start them, and the memory of their per-container supervisors
# (kapsel-shim, conmon, containerd-shim-runc-v2) once idle — RSS and PSS summed over the
# N supervisors and divided by N. Then the containers are removed. Medians over the
# rounds. The anchors (dockerd 20.10, podman with runc) and their busybox image come from
# ../shared/bench/00-setup-anchors.sh, which kapseld-env.sh runs.
set -euo pipefail
N=${N:-50}; ROUNDS=${ROUNDS:-3}
. "$(dirname "$0")/kapseld-env.sh"
ids=()
engine_cleanup() {
  [ ${#ids[@]} -eq 0 ] && return 0
  $PODMAN rm -f -t 0 "${ids[@]}" >/dev/null 2>&1 || true
  $DOCKER rm -f "${ids[@]}" >/dev/null 2>&1 || true
  ids=()
}
trap 'engine_cleanup; kapseld_cleanup' EXIT

# engine → "CLI|image"
declare -A CLI=(
  [kapsel]="$KAPSEL|bench/busybox"
  [podman]="$PODMAN|localhost/bench/busybox:latest"
  [docker]="$DOCKER|bench/busybox:latest"
)

# The supervisors of the containers in "${ids[@]}" for one engine.
supervisors() {
  case "$1" in
    kapsel) pgrep -f "kapsel-shim .*--runtime-root $OUT/run/runtime" || true ;;
    podman) for id in "${ids[@]}"; do $PODMAN inspect -f '{{.State.ConmonPid}}' "$id"; done ;;
    docker) python3 - "${ids[@]}" <<'PY'
import os, sys
ids = set(sys.argv[1:])
for p in filter(str.isdigit, os.listdir("/proc")):
    try:
        if not open(f"/proc/{p}/comm").read().startswith("containerd-shim"):
            continue
        argv = open(f"/proc/{p}/cmdline", "rb").read().decode(errors="replace").split("\0")
    except OSError:
        continue
    if ids.intersection(argv):
        print(p)
PY
    ;;
  esac
}

results=$OUT/density.tsv
for round in $(seq "$ROUNDS"); do
  for engine in kapsel podman docker; do
    IFS='|' read -r cli image <<<"${CLI[$engine]}"
    busy=$(cpu_busy_pct 2)
    start=$(date +%s%N)
    for i in $(seq "$N"); do
      ids+=("$($cli run -d --network none --name "density-$$-$engine-$round-$i" "$image" sleep 1000)")
    done
    end=$(date +%s%N)
    # Idle supervisors: kapsel-shim gives back its start-up memory after 2 s of quiet.
    sleep 4
    # shellcheck disable=SC2046
    read -r rss pss count < <(mem_of_pids $(supervisors "$engine"))
    [ "$count" -eq "$N" ] || log "$engine: found $count supervisors for $N containers"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$engine" "$(( (end - start) / 1000000 ))" \
      "$rss" "$pss" "$busy" >>"$results"
    if [ "$engine" = kapsel ]; then $KAPSEL rm -f "${ids[@]}" >/dev/null; ids=(); else engine_cleanup; fi
  done
done
python3 - "$N" "$results" "$(nproc)" <<'PY'
import statistics, sys
n, path = int(sys.argv[1]), sys.argv[2]
rows = [l.split("\t") for l in open(path).read().splitlines()]
by = {}
for rnd, engine, ms, rss, pss, busy in rows:
    by.setdefault(engine, []).append((int(ms), int(rss), int(pss), float(busy)))
    print(f"round {rnd} {engine:7s} total {int(ms)/1000:6.2f} s  supervisor RSS "
          f"{int(rss)/n/1024:.3f} MiB  PSS {int(pss)/n/1024:.3f} MiB  (CPU busy before: {busy} %)")
med = {e: [statistics.median(x[i] for x in v) for i in range(3)] for e, v in by.items()}
for e, (ms, rss, pss) in med.items():
    print(f"median {e:7s} total {ms/1000:6.2f} s ({ms/n:.1f} ms per container)  "
          f"supervisor RSS {rss/n/1024:.3f} MiB  PSS {pss/n/1024:.3f} MiB  "
          f"time ×podman {ms/med['podman'][0]:.2f}")
PY
