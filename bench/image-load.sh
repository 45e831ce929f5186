#!/usr/bin/env bash
# Loading an image as `docker load` does (store and verify every blob, apply every layer):
# kapsel (kapsel-image: ImageStore::load + parallel unpack) against podman load (private
# storage, vfs), docker load (the anchors' dockerd 20.10, overlay2) and the floor of a
# plain `tar -x` of the same root filesystem, in one run. The image is a Debian minbase
# rootfs (debootstrap, cached in $CACHE) as one layer, written as a docker-archive by
# podman. The anchors come from ../shared/bench/00-setup-anchors.sh, which this script
# runs; stop them with 99-teardown-anchors.sh afterwards.
#   RUNS (default 5), CACHE (default /var/cache/kapsel-bench)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
CACHE=${CACHE:-/var/cache/kapsel-bench}
export DEBIAN_FRONTEND=noninteractive
command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
cargo build --release --locked -p kapsel-image --example load-and-unpack >&2
. bench/anchors.sh # $DOCKER: the client of the anchors' dockerd
mkdir -p "$CACHE"
ROOTFS_TAR=$CACHE/debian-minbase.tar
if [ ! -s "$ROOTFS_TAR" ]; then
  mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || echo http://deb.debian.org/debian)
  debootstrap --variant=minbase bookworm "$CACHE/debian-rootfs" "$mirror" >&2
  tar --numeric-owner -C "$CACHE/debian-rootfs" -cf "$ROOTFS_TAR" .
  rm -rf "$CACHE/debian-rootfs"
fi
OUT=$(mktemp -d /tmp/kapsel-image-bench-XXXXXX)
DOCKER_IMAGE=localhost/bench/debian:minbase
trap 'podman_cmd system reset -f >/dev/null 2>&1 || true; $DOCKER rmi -f $DOCKER_IMAGE >/dev/null 2>&1 || true; rm -rf "$OUT"; restore_forward_policy' EXIT
# podman with storage of its own, so nothing of the host's is touched.
cat > "$OUT/containers.conf" <<C
[engine]
events_logger = "file"
cgroup_manager = "cgroupfs"
C
podman_cmd() { CONTAINERS_CONF=$OUT/containers.conf podman --root "$OUT/p-root" --runroot "$OUT/p-run" --storage-driver vfs "$@"; }
export -f podman_cmd; export OUT
podman_cmd import -q "$ROOTFS_TAR" bench/debian:minbase >/dev/null
podman_cmd save --format docker-archive -o "$OUT/image.tar" bench/debian:minbase
podman_cmd rmi -a -f >/dev/null
echo "image archive: $(( $(stat -c %s "$OUT/image.tar") / 1048576 )) MiB, $(tar -tf "$ROOTFS_TAR" | wc -l) files" >&2
LOADER=$PWD/target/release/examples/load-and-unpack
hyperfine -N --style basic --runs "$RUNS" --export-json "$OUT/load.json" \
  -n "tar -x (floor)" --prepare "bash -c 'rm -rf $OUT/x; mkdir $OUT/x'" "tar -xf $ROOTFS_TAR -C $OUT/x" \
  -n "kapsel load" --prepare "rm -rf $OUT/k" "$LOADER $OUT/k $OUT/image.tar" \
  -n "podman load" --prepare "bash -c 'podman_cmd rmi -a -f'" "bash -c 'podman_cmd load -q -i $OUT/image.tar'" \
  -n "docker load" --prepare "bash -c '$DOCKER rmi -f $DOCKER_IMAGE >/dev/null 2>&1 || true'" "$DOCKER load -q -i $OUT/image.tar" >/dev/null 2>&1
python3 - "$OUT/load.json" <<'PY'
import json, sys
r = {x["command"]: x["median"] for x in json.load(open(sys.argv[1]))["results"]}
floor = r["tar -x (floor)"]
for name, median in r.items():
    print(f"{name:16s} median {median * 1000:8.1f} ms  {median / floor:5.2f}x the tar -x floor")
PY
