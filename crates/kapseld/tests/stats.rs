//! `GET /containers/{id}/stats` through the real docker CLI (`docker stats`) and raw HTTP:
//! memory against a limit, PIDs, CPU %, counters that grow, the stream and its end, the
//! zero-valued answer for a stopped container, networks without `lo`.
//!
//! No timing is asserted beyond generous bounds: the box running this may be loaded.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use serde_json::Value;

use common::{daemon_with_busybox, inspect, ok, run_sh, run_sleeping, wait_for_within, Daemon};

/// A request on a fresh connection, with a read timeout so a stream that never ends fails
/// the test instead of hanging it.
fn connect(d: &Daemon, path: &str) -> BufReader<UnixStream> {
    let s = d.send("GET", path, None);
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    BufReader::new(s)
}

/// Reads the status line and headers; returns the status code and whether the body is
/// chunked.
fn read_head(r: &mut BufReader<UnixStream>) -> (u16, bool) {
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    let code = status.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut chunked = false;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
        if lower.starts_with("content-type:") {
            assert!(lower.contains("application/json"), "{line}");
        }
    }
    (code, chunked)
}

/// The whole body until the server closes, with chunk framing removed.
fn read_body(r: &mut BufReader<UnixStream>, chunked: bool) -> String {
    if !chunked {
        let mut out = String::new();
        r.read_to_string(&mut out).unwrap();
        return out;
    }
    let mut out = Vec::new();
    while let Some(chunk) = read_chunk(r) {
        out.extend_from_slice(&chunk);
    }
    String::from_utf8(out).unwrap()
}

/// The data of the next chunk, or `None` after the last one (or at the end of the input).
fn read_chunk(r: &mut BufReader<UnixStream>) -> Option<Vec<u8>> {
    let mut size = String::new();
    if r.read_line(&mut size).unwrap() == 0 {
        return None;
    }
    let size = usize::from_str_radix(size.trim(), 16).unwrap();
    if size == 0 {
        return None;
    }
    let mut chunk = vec![0; size + 2];
    r.read_exact(&mut chunk).unwrap();
    chunk.truncate(size);
    Some(chunk)
}

/// `GET /containers/{name}/stats?{query}` answered with one object.
fn stats_once(d: &Daemon, name: &str, query: &str) -> Value {
    let mut r = connect(d, &format!("/v1.47/containers/{name}/stats?{query}"));
    let (code, chunked) = read_head(&mut r);
    let body = read_body(&mut r, chunked);
    assert_eq!(code, 200, "{body}");
    let objects: Vec<&str> = body.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(objects.len(), 1, "one object: {body}");
    serde_json::from_str(objects[0]).unwrap()
}

/// Objects (one per line) of a streamed answer, read as they come.
struct Stream {
    r: BufReader<UnixStream>,
    chunked: bool,
    pending: String,
}

impl Stream {
    fn open(d: &Daemon, name: &str) -> Stream {
        let mut r = connect(d, &format!("/v1.47/containers/{name}/stats"));
        let (code, chunked) = read_head(&mut r);
        assert_eq!(code, 200);
        Stream {
            r,
            chunked,
            pending: String::new(),
        }
    }

    /// The next object, or `None` at the end of the stream.
    fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(nl) = self.pending.find('\n') {
                let line: String = self.pending.drain(..=nl).collect();
                if line.trim().is_empty() {
                    continue;
                }
                return Some(serde_json::from_str(&line).unwrap());
            }
            if !self.chunked {
                let mut line = String::new();
                if self.r.read_line(&mut line).unwrap() == 0 {
                    return None;
                }
                self.pending.push_str(&line);
                continue;
            }
            let chunk = read_chunk(&mut self.r)?;
            self.pending.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

const MIB: f64 = 1024.0 * 1024.0;

/// "20.5MiB" (the CLI's binary units) in bytes.
fn parse_size(text: &str) -> f64 {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.trim().parse().unwrap_or_else(|_| panic!("{text}"));
    let scale = match unit.trim() {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        other => panic!("unit {other} in {text}"),
    };
    number * scale
}

#[test]
fn docker_stats_shows_memory_against_the_limit_and_pids() {
    let Some(d) = daemon_with_busybox("stats-mem") else {
        return;
    };
    run_sh(
        &d,
        &["-d", "--name", "mem", "--memory", "64m", "busybox"],
        // busybox sh execs a last simple command, so `exit` keeps sh (and 2 PIDs).
        "dd if=/dev/zero of=/dev/shm/f bs=1M count=20; sleep 1000; exit 0",
    );
    // dd reports on stderr when all 20 MiB are in the tmpfs (charged to the container).
    wait_for_within(
        Duration::from_secs(60),
        || ok(&d, &["logs", "mem"]).contains("records out"),
        "dd to fill /dev/shm",
    );
    let out = ok(
        &d,
        &[
            "stats",
            "--no-stream",
            "--format",
            "{{.MemUsage}} {{.PIDs}}",
            "mem",
        ],
    );
    // "20.63MiB / 64MiB 2"
    let fields: Vec<&str> = out.split_whitespace().collect();
    let [usage, "/", limit, pids] = fields[..] else {
        panic!("unexpected docker stats output: {out:?}");
    };
    assert_eq!(limit, "64MiB", "{out}");
    let usage = parse_size(usage);
    assert!(
        (19.5 * MIB..64.0 * MIB).contains(&usage),
        "usage {usage} in {out}"
    );
    let pids: u64 = pids.parse().unwrap();
    assert!(pids >= 2, "sh and sleep: {out}");

    // The same figures raw, in v1's shape on this host (hybrid: memory is v1).
    let s = stats_once(&d, "mem", "stream=false");
    let m = &s["memory_stats"];
    assert_eq!(m["limit"], 64u64 << 20, "{s}");
    let usage = m["usage"].as_u64().unwrap();
    assert!(usage >= 20 << 20, "{s}");
    let stats = m["stats"].as_object().unwrap();
    assert!(
        stats.contains_key("total_inactive_file") || stats.contains_key("inactive_file"),
        "{s}"
    );
    assert!(s["pids_stats"]["current"].as_u64().unwrap() >= 2, "{s}");
    assert_eq!(s["name"], "/mem");
}

#[test]
fn a_busy_container_shows_cpu_use_and_growing_counters() {
    let Some(d) = daemon_with_busybox("stats-cpu") else {
        return;
    };
    let id = run_sh(
        &d,
        &["-d", "--name", "burn", "busybox"],
        "while :; do :; done",
    )
    .trim()
    .to_string();

    // The CLI's CPU % (from cpu_stats against precpu_stats); a loaded machine may starve
    // the burner for a moment, so the best of a few reads counts.
    let mut best = 0.0f64;
    for _ in 0..5 {
        let out = ok(
            &d,
            &["stats", "--no-stream", "--format", "{{.CPUPerc}}", "burn"],
        );
        let percent: f64 = out.trim().trim_end_matches('%').parse().unwrap();
        best = best.max(percent);
        if best > 10.0 {
            break;
        }
    }
    assert!(best > 10.0, "CPU % of a busy loop: {best}");

    // Raw: cumulative CPU time grows between two calls; the object is Docker's.
    let first = stats_once(&d, "burn", "stream=false");
    let second = stats_once(&d, "burn", "stream=false");
    let total = |s: &Value| s["cpu_stats"]["cpu_usage"]["total_usage"].as_u64().unwrap();
    assert!(
        total(&second) > total(&first),
        "{} then {}",
        total(&first),
        total(&second)
    );
    for s in [&first, &second] {
        assert_eq!(s["id"], id.as_str());
        assert_eq!(s["name"], "/burn");
        let cpu = &s["cpu_stats"];
        let pre = &s["precpu_stats"];
        assert!(cpu["online_cpus"].as_u64().unwrap() >= 1, "{s}");
        // stream=false primes precpu with an earlier sample.
        assert!(
            cpu["system_cpu_usage"].as_u64().unwrap() > pre["system_cpu_usage"].as_u64().unwrap(),
            "{s}"
        );
        assert!(total(s) >= pre["cpu_usage"]["total_usage"].as_u64().unwrap());
        assert_ne!(s["preread"], "0001-01-01T00:00:00Z");
        assert!(s["read"].as_str().unwrap() > s["preread"].as_str().unwrap());
        // No memory limit: the host's memory.
        let limit = s["memory_stats"]["limit"].as_u64().unwrap();
        assert!(limit > 64 << 20 && limit < 1 << 50, "{s}");
        // Only loopback in its network namespace, and lo is never reported.
        assert!(
            s.get("networks").is_none_or(|n| n.get("lo").is_none()),
            "{s}"
        );
    }

    // one-shot: at once, without precpu.
    let one = stats_once(&d, "burn", "stream=false&one-shot=true");
    assert_eq!(one["preread"], "0001-01-01T00:00:00Z");
    assert!(
        one["precpu_stats"].get("system_cpu_usage").is_none(),
        "{one}"
    );
    assert!(total(&one) >= total(&second));
}

#[test]
fn the_stream_chains_samples_and_ends_when_the_container_stops() {
    let Some(d) = daemon_with_busybox("stats-stream") else {
        return;
    };
    run_sleeping(&d, "st");
    let mut stream = Stream::open(&d, "st");
    let a = stream.next().expect("a first object");
    let b = stream.next().expect("a second object");
    // The first has no predecessor; each later one carries the one before.
    assert_eq!(a["preread"], "0001-01-01T00:00:00Z");
    assert_eq!(b["preread"], a["read"]);
    assert_eq!(b["precpu_stats"], a["cpu_stats"]);
    assert!(b["read"].as_str().unwrap() > a["read"].as_str().unwrap());

    ok(&d, &["kill", "st"]);
    // Objects until the daemon sees the exit, then a zero-valued one, then the end.
    let mut last = b;
    let mut count = 0;
    while let Some(next) = stream.next() {
        last = next;
        count += 1;
        assert!(count < 120, "the stream did not end");
    }
    assert_eq!(last["read"], "0001-01-01T00:00:00Z", "{last}");
    assert_eq!(last["name"], "/st");
}

#[test]
fn a_stopped_container_answers_zeros() {
    let Some(d) = daemon_with_busybox("stats-stopped") else {
        return;
    };
    ok(&d, &["run", "--name", "done", "busybox", "true"]);
    let s = stats_once(&d, "done", "stream=false");
    assert_eq!(s["read"], "0001-01-01T00:00:00Z");
    assert_eq!(s["name"], "/done");
    assert_eq!(s["cpu_stats"]["cpu_usage"]["total_usage"], 0);
    assert_eq!(s["memory_stats"], serde_json::json!({}));
    assert_eq!(s["pids_stats"], serde_json::json!({}));
    assert!(s.get("networks").is_none());

    // Streaming: one zero-valued object and the end, not an endless stream.
    let mut stream = Stream::open(&d, "done");
    let zero = stream.next().expect("an object");
    assert_eq!(zero["read"], "0001-01-01T00:00:00Z");
    assert!(stream.next().is_none());

    // The CLI shows zeros.
    let out = ok(
        &d,
        &[
            "stats",
            "--no-stream",
            "--format",
            "{{.CPUPerc}} {{.MemUsage}}",
            "done",
        ],
    );
    assert_eq!(out.trim(), "0.00% 0B / 0B");

    let (code, _) = {
        let mut r = connect(&d, "/v1.47/containers/nosuch/stats?stream=false");
        read_head(&mut r)
    };
    assert_eq!(code, 404);
}

/// Deletes the host end of a veth pair (and so the pair) on drop.
struct Veth(String);

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.0])
            .status();
    }
}

fn ip(args: &[&str]) -> bool {
    std::process::Command::new("ip")
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

/// A veth pair whose inner end is the container's eth0 (as Docker's endpoints are) carries
/// some packets: it shows up with its counters; `lo`, busy too, never does.
#[test]
fn networks_report_the_containers_interfaces_but_not_lo() {
    let Some(d) = daemon_with_busybox("stats-net") else {
        return;
    };
    run_sleeping(&d, "net");
    let pid = inspect(&d, "{{.State.Pid}}", "net");
    let pid = pid.as_str();
    let host_end = format!("kst{}", std::process::id());
    if !ip(&[
        "link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns", pid,
    ]) {
        eprintln!("SKIP: cannot make a veth pair here");
        return;
    }
    let _veth = Veth(host_end.clone());
    // A /30 of our own in 10.199/16, from the test's PID.
    let base = (std::process::id() % 16_000) * 4;
    let addr = |n: u32| format!("10.199.{}.{}", (base + n) >> 8, (base + n) & 255);
    let host_ip = addr(1);
    assert!(ip(&[
        "addr",
        "add",
        &format!("{host_ip}/30"),
        "dev",
        &host_end
    ]));
    assert!(ip(&["link", "set", &host_end, "up"]));
    let in_ns = |args: &[&str]| {
        std::process::Command::new("nsenter")
            .args(["-t", pid, "-n", "ip"])
            .args(args)
            .status()
            .is_ok_and(|s| s.success())
    };
    assert!(in_ns(&[
        "addr",
        "add",
        &format!("{}/30", addr(2)),
        "dev",
        "eth0"
    ]));
    assert!(in_ns(&["link", "set", "eth0", "up"]));
    assert!(in_ns(&["link", "set", "lo", "up"]));
    // ARP and ICMP over eth0 (answered or not, packets leave), and some over lo.
    let _ = d.docker(&["exec", "net", "ping", "-c", "2", "-W", "1", &host_ip]);
    let _ = d.docker(&["exec", "net", "ping", "-c", "1", "-W", "1", "127.0.0.1"]);

    let s = stats_once(&d, "net", "stream=false&one-shot=true");
    let networks = s["networks"].as_object().expect("networks");
    assert_eq!(networks.keys().collect::<Vec<_>>(), ["eth0"], "{s}");
    let eth0 = &networks["eth0"];
    for key in [
        "rx_bytes",
        "rx_packets",
        "rx_errors",
        "rx_dropped",
        "tx_bytes",
        "tx_packets",
        "tx_errors",
        "tx_dropped",
    ] {
        assert!(eth0[key].is_u64(), "{key}: {s}");
    }
    assert!(eth0["tx_packets"].as_u64().unwrap() > 0, "{s}");
    assert!(eth0["tx_bytes"].as_u64().unwrap() > 0, "{s}");

    // The CLI's NET I/O sums them.
    let out = ok(
        &d,
        &["stats", "--no-stream", "--format", "{{.NetIO}}", "net"],
    );
    assert_ne!(out.trim(), "0B / 0B", "{out}");
}
