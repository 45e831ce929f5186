#!/usr/bin/env bash
# kapseld: time from exec to the first answered GET /_ping, and idle RSS/PSS once up.
# Medians of RUNS (default 20) starts. The anchor (dockerd+containerd: ~580 ms to API
# ready, 117 MiB idle) comes from ../shared/bench/40-idle-daemon-rss.sh, which needs
# dockerd started by ../shared/bench/00-setup-anchors.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-20}
cargo build --release --locked -p kapseld >&2
OUT=$(mktemp -d /tmp/kapseld-bench-XXXXXX)
python3 - "$OUT" "$RUNS" <<'PY'
import socket, statistics, subprocess, sys, time
out, runs = sys.argv[1], int(sys.argv[2])
times = []
for i in range(runs):
    sock = f"{out}/api-{i}.sock"
    start = time.perf_counter()
    p = subprocess.Popen(["target/release/kapseld", "--data-root", f"{out}/data", "--exec-root",
                          f"{out}/run", "-H", "unix://" + sock], stderr=subprocess.DEVNULL)
    while True:
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(sock)
            s.sendall(b"GET /_ping HTTP/1.1\r\nHost: kapsel\r\nConnection: close\r\n\r\n")
            ok = s.recv(64).startswith(b"HTTP/1.1 200")
            s.close()
            if ok:
                break
        except OSError:
            time.sleep(0.0002)
    times.append((time.perf_counter() - start) * 1000)
    if i == runs - 1:
        time.sleep(2)
        field = lambda f, k: next(l for l in open(f) if l.startswith(k)).split()[1]
        rss = int(field(f"/proc/{p.pid}/status", "VmRSS"))
        pss = int(field(f"/proc/{p.pid}/smaps_rollup", "Pss:"))
        print(f"kapseld idle: RSS {rss / 1024:.1f} MiB, PSS {pss / 1024:.1f} MiB")
    p.terminate()
    p.wait()
print(f"kapseld start to first API answer: median {statistics.median(times):.2f} ms "
      f"(min {min(times):.2f}, max {max(times):.2f}, {runs} starts)")
PY
rm -rf "$OUT"
