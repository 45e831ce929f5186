#!/usr/bin/env bash
# Publishing many ports on one container: `run -d -p A-B:A-B busybox sleep` then `rm -f`,
# for COUNT ports (default 1000), kapsel against podman and docker in one run. kapsel
# publishes with DNAT rules in its nftables table (one `nft` transaction); dockerd 20.10
# starts a docker-proxy process per port and podman a rule set per port.
set -euo pipefail
COUNT=${COUNT:-1000}; RUNS=${RUNS:-5}; FIRST=${FIRST:-30000}
. "$(dirname "$0")/kapseld-env.sh"
LAST=$((FIRST + COUNT - 1)); PORTS="$FIRST-$LAST:$FIRST-$LAST"
for engine in kapsel podman docker; do
  case $engine in
    kapsel) cli=$KAPSEL; image=bench/busybox ;;
    podman) cli=$PODMAN; image=localhost/bench/busybox:latest ;;
    docker) cli=$DOCKER; image=bench/busybox:latest ;;
  esac
  times=()
  for _ in $(seq "$RUNS"); do
    start=$(date +%s.%N)
    $cli run -d --name bench-ports -p "$PORTS" "$image" sleep 600 >/dev/null
    up=$(date +%s.%N)
    $cli rm -f bench-ports >/dev/null
    times+=("$(awk -v a="$start" -v b="$up" 'BEGIN {print b - a}')")
  done
  printf '%s\n' "${times[@]}" | sort -n | awk -v e="$engine" -v n="$COUNT" \
    '{a[NR]=$1} END {printf "%-7s %d ports: run -d median %.3f s (min %.3f, max %.3f)\n", e, n, a[int((NR+1)/2)], a[1], a[NR]}'
done
