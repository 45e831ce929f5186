#!/usr/bin/env bash
# `run --rm busybox true` with --network $NETWORK (none by default; bridge: each engine's
# default bridge network, with its address, veth and NAT), end to end through each CLI:
# kapsel (its own CLI, and the docker CLI against kapseld), podman and docker, in one run,
# medians of RUNS (default 30). The anchors (dockerd 20.10, podman with runc) and their
# busybox image come from ../shared/bench/00-setup-anchors.sh, which this script runs.
set -euo pipefail
RUNS=${RUNS:-30}; WARMUP=${WARMUP:-3}; NETWORK=${NETWORK:-none}
. "$(dirname "$0")/kapseld-env.sh"
hyperfine -N --style basic --runs "$RUNS" --warmup "$WARMUP" --export-json "$OUT/run.json" \
  -n "kapsel" "$KAPSEL run --rm --network $NETWORK bench/busybox true" \
  -n "docker CLI → kapseld" "/usr/local/bin/docker -H unix://$SOCK run --rm --network $NETWORK bench/busybox true" \
  -n "podman" "$PODMAN run --rm --network=$NETWORK localhost/bench/busybox:latest true" \
  -n "docker" "$DOCKER run --rm --network=$NETWORK bench/busybox:latest true" >/dev/null 2>&1
python3 - "$OUT/run.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
med = {k: v["median"] * 1000 for k, v in r.items()}
for k, v in r.items():
    print(f"{k:22s} median {med[k]:7.1f} ms  (mean {v['mean']*1000:6.1f} ± {v['stddev']*1000:5.1f}, "
          f"min {v['min']*1000:6.1f})  ×podman {med[k] / med['podman']:.2f}")
PY
