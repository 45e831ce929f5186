#!/usr/bin/env bash
# make-busybox-image.sh OUT.tar [TAG]: a docker-archive (as `docker save` writes) of an
# image made from Debian's static busybox with a link per applet, tagged TAG
# (default busybox:latest), for `kapsel load` / `docker load` with no registry.
set -euo pipefail
out=$1; tag=${2:-busybox:latest}
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
root=$dir/rootfs
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,var,run,home}
cp "$(command -v busybox)" "$root/bin/busybox"
for p in $(busybox --list-full); do
  [ -e "$root/$p" ] || { mkdir -p "$root/$(dirname "$p")"; ln -s /bin/busybox "$root/$p"; }
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' > "$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
chmod 1777 "$root/tmp"
tar --numeric-owner --owner=0 --group=0 --mtime=@1700000000 --sort=name -C "$root" -cf "$dir/layer.tar" .
python3 - "$dir" "$tag" <<'PY'
import hashlib, json, os, sys
d, tag = sys.argv[1], sys.argv[2]
layer = open(f"{d}/layer.tar", "rb").read()
diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
config = json.dumps({
    "architecture": "amd64", "os": "linux", "created": "2023-11-14T22:13:20Z",
    "config": {"Cmd": ["sh"],
               "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
    "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "scripts/make-busybox-image.sh"}],
}, separators=(",", ":")).encode()
config_hex = hashlib.sha256(config).hexdigest()
os.makedirs(f"{d}/out/blobs/sha256")
open(f"{d}/out/blobs/sha256/{diff_id[7:]}", "wb").write(layer)
open(f"{d}/out/blobs/sha256/{config_hex}", "wb").write(config)
json.dump([{"Config": f"blobs/sha256/{config_hex}", "RepoTags": [tag],
            "Layers": [f"blobs/sha256/{diff_id[7:]}"]}], open(f"{d}/out/manifest.json", "w"))
PY
tar --numeric-owner --owner=0 --group=0 -C "$dir/out" -cf "$out" manifest.json blobs
