#!/usr/bin/env bash
# create+start+wait+delete of /bin/true (`RUNTIME run`) in a busybox bundle: kapsel-runtime
# against runc in the same run, interleaved by hyperfine, for two configs:
#   plain    runc's default config.json (`runc spec`, args true, no terminal)
#   hardened the same plus Docker's default capability set and seccomp profile
# Prints medians and ratios (hyperfine's JSON is removed with the temporary dir).
#   RUNS (default 50), WARMUP (5), KAPSEL (default target/release/kapsel-runtime)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-50}; WARMUP=${WARMUP:-5}
KAPSEL=${KAPSEL:-$PWD/target/release/kapsel-runtime}
cargo build --release --locked -p kapsel-runtime -p kapsel-seccomp --example docker-default >&2
OUT=$(mktemp -d /tmp/kapsel-bench-XXXXXX)
# Measured as installed (scripts/install-runtime.sh: an immutable copy).
./scripts/install-runtime.sh "$KAPSEL" "$OUT/kapsel-runtime"
trap 'chattr -i "$OUT/kapsel-runtime" 2>/dev/null || true; rm -rf "$OUT"' EXIT
KAPSEL=$OUT/kapsel-runtime
B=$OUT/bundle
KAPSEL_RUNTIME=$KAPSEL ./scripts/make-busybox-bundle.sh "$B" true >/dev/null
./target/release/examples/docker-default > "$OUT/seccomp.json"

configure() {  # configure plain|hardened: runc's own default config, optionally hardened
  rm -f "$B/config.json"; (cd "$B" && runc spec)
  python3 - "$B/config.json" "$1" "$OUT/seccomp.json" <<'PY'
import json, sys
path, mode, seccomp = sys.argv[1:]
c = json.load(open(path))
c["process"]["args"] = ["true"]; c["process"]["terminal"] = False
if mode == "hardened":
    caps = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
            "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
            "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
    c["process"]["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
    c["linux"]["seccomp"] = json.load(open(seccomp))
json.dump(c, open(path, "w"), indent=1)
PY
}

for mode in plain hardened; do
  configure "$mode"
  hyperfine -N --style basic --runs "$RUNS" --warmup "$WARMUP" --export-json "$OUT/$mode.json" \
    -n runc "runc --root $OUT/runc-root run -b $B bench-runc" \
    -n kapsel-runtime "$KAPSEL --root $OUT/kapsel-root run -b $B bench-kapsel" >/dev/null 2>&1
  python3 - "$OUT/$mode.json" "$mode" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
med = {k: v["median"] * 1000 for k, v in r.items()}
for k, v in r.items():
    print(f"{sys.argv[2]:9s} {k:16s} median {med[k]:6.2f} ms  mean {v['mean']*1000:6.2f} ± {v['stddev']*1000:5.2f} ms  min {v['min']*1000:6.2f} ms")
print(f"{sys.argv[2]:9s} ratio kapsel-runtime / runc (medians): {med['kapsel-runtime'] / med['runc']:.2f}")
PY
done
