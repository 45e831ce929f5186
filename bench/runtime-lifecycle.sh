#!/usr/bin/env bash
# create+start+wait+delete of /bin/true (`RUNTIME run`) in a busybox bundle with runc's
# default config.json: kapsel-runtime against runc, in the same run, interleaved by
# hyperfine. Prints medians and the ratio; raw JSON stays in $OUT.
#   RUNS (default 50), WARMUP (5), KAPSEL (default target/release/kapsel-runtime)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-50}; WARMUP=${WARMUP:-5}
KAPSEL=${KAPSEL:-$PWD/target/release/kapsel-runtime}
[ -x "$KAPSEL" ] || cargo build --release --locked -p kapsel-runtime
OUT=$(mktemp -d /tmp/kapsel-bench-XXXXXX)
B=$OUT/bundle
./scripts/make-busybox-bundle.sh "$B" true >/dev/null 2>&1 || KAPSEL_RUNTIME=$KAPSEL ./scripts/make-busybox-bundle.sh "$B" true
# runc's own default config, so both runtimes do exactly the same work.
rm "$B/config.json"; (cd "$B" && runc spec)
python3 - "$B/config.json" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p))
c["process"]["args"] = ["true"]; c["process"]["terminal"] = False
json.dump(c, open(p, "w"), indent=1)
PY
hyperfine -N --style basic --runs "$RUNS" --warmup "$WARMUP" --export-json "$OUT/lifecycle.json" \
  -n runc "runc --root $OUT/runc-root run -b $B bench-runc" \
  -n kapsel-runtime "$KAPSEL --root $OUT/kapsel-root run -b $B bench-kapsel" >&2
python3 - "$OUT/lifecycle.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
med = {k: v["median"] * 1000 for k, v in r.items()}
for k, v in r.items():
    print(f"{k:16s} median {med[k]:6.2f} ms  mean {v['mean']*1000:6.2f} ± {v['stddev']*1000:5.2f} ms  min {v['min']*1000:6.2f} ms")
print(f"ratio kapsel-runtime / runc (medians): {med['kapsel-runtime'] / med['runc']:.2f}")
PY
rm -rf "$OUT/bundle"
