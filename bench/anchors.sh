# shellcheck shell=bash
# Sourced by the benchmarks that compare with the anchors: starts them
# (../shared/bench/00-setup-anchors.sh; stop them with 99-teardown-anchors.sh) and reads
# their lib.sh ($DOCKER, $PODMAN, …). dockerd sets the host's `ip filter FORWARD` policy to
# drop when it is the one to enable forwarding, which blocks every other engine's
# container traffic: `restore_forward_policy` (for the caller's EXIT trap) puts it back if
# it was accept, or absent, before.
ANCHORS=${ANCHORS:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/shared/bench}
forward_policy() { nft list chain ip filter FORWARD 2>/dev/null | grep -o 'policy [a-z]*' || echo absent; }
FORWARD_BEFORE=$(forward_policy)
"$ANCHORS/00-setup-anchors.sh" >&2
. "$ANCHORS/lib.sh"
restore_forward_policy() {
  if [ "$FORWARD_BEFORE" != "policy drop" ] && [ "$(forward_policy)" = "policy drop" ]; then
    nft add chain ip filter FORWARD '{ policy accept; }'
  fi
}
