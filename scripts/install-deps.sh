#!/usr/bin/env bash
# Installs what building and testing kapsel needs on Debian 12, as root. Idempotent.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
PKGS=(
  gcc pkg-config libseccomp-dev   # building
  busybox-static                  # test and quick-start root filesystems
  runc                            # the reference runtime for parity tests and benchmarks
  podman                          # drop-in test: kapsel under podman --runtime (tests/podman.rs)
  skopeo umoci                    # image interop tests read kapsel's OCI archives with them
  e2fsprogs                       # chattr: the installed runtime binary is made immutable
  tini                            # `run --init`: tini-static becomes the container's /sbin/docker-init
  python3-docker                  # docker-py drives kapseld in the engine tests
  nftables                        # kapseld's firewall: the nftables crate drives nft -j
  docker-compose                  # compose 1.29 drives volumes in the engine tests (tests/volumes.rs)
  python3-prometheus-client       # its parser reads kapseld's /metrics in the engine tests
  hyperfine                       # benchmarks
  iproute2 procps python3 jq      # tests inspect namespaces, processes and JSON
  dnsutils                        # dig queries the embedded DNS server in kapsel-network tests
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Debian's docker 20.10 client (API 1.41) for the old-client tests, without the docker.io
# package itself: installing it would start a dockerd on the host. Only /usr/bin/docker
# is taken out of the .deb.
DOCKER_2010=/opt/kapsel-test/docker-20.10/docker
if [ ! -x "$DOCKER_2010" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  chown _apt "$work" 2>/dev/null || true # apt downloads as its _apt user
  (cd "$work" && { apt-get download -qq docker.io || { apt-get update -qq && apt-get download -qq docker.io; }; })
  dpkg-deb -x "$work"/docker.io_*.deb "$work/root"
  install -D -m 0755 "$work/root/usr/bin/docker" "$DOCKER_2010"
  rm -rf "$work"
  trap - EXIT
fi

command -v cargo >/dev/null || { echo "cargo is missing: install the Rust toolchain (rustup)" >&2; exit 1; }
