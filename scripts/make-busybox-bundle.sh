#!/usr/bin/env bash
# make-busybox-bundle.sh DIR [ARGS...]: an OCI bundle in DIR whose rootfs is Debian's
# static busybox with a link per applet, and whose config.json is `kapsel-runtime spec`
# with the given args (default: sh) and no terminal.
set -euo pipefail
dir=$1; shift
bb=$(command -v busybox)
mkdir -p "$dir/rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,var,run}
cp "$bb" "$dir/rootfs/bin/busybox"
for p in $("$bb" --list-full); do
  [ -e "$dir/rootfs/$p" ] || { mkdir -p "$dir/rootfs/$(dirname "$p")"; ln -s /bin/busybox "$dir/rootfs/$p"; }
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$dir/rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$dir/rootfs/etc/group"
chmod 1777 "$dir/rootfs/tmp"
"$(dirname "$0")/bundle-config.sh" "$dir" "${@:-sh}"
