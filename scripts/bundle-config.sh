#!/usr/bin/env bash
# bundle-config.sh DIR ARGS...: writes DIR/config.json as `kapsel-runtime spec` makes it,
# with the given process args and no terminal.
set -euo pipefail
dir=$1; shift
rm -f "$dir/config.json"
"${KAPSEL_RUNTIME:-kapsel-runtime}" spec --bundle "$dir"
python3 - "$dir/config.json" "$@" <<'PY'
import json, sys
path, args = sys.argv[1], sys.argv[2:]
c = json.load(open(path))
c["process"]["args"] = args
c["process"]["terminal"] = False
json.dump(c, open(path, "w"), indent=2)
PY
