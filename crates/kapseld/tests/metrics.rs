//! `kapseld --metrics-addr`: scraped over HTTP and parsed by the Prometheus client
//! library's own parser (python3-prometheus-client), and compared with the containers'
//! cgroups and records.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use common::{daemon_with_busybox_and, inspect, ok, run_sh, wait_for};

/// Fetches `url` with urllib and parses it with prometheus_client's text parser; prints
/// one JSON object per sample: name, labels, value.
const SCRAPE: &str = r#"
import json, sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
with urllib.request.urlopen(sys.argv[1]) as r:
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers
    text = r.read().decode()
for family in text_string_to_metric_families(text):
    for s in family.samples:
        print(json.dumps({"name": s.name, "labels": s.labels, "value": s.value, "type": family.type}))
"#;

#[derive(Debug)]
struct Sample {
    labels: BTreeMap<String, String>,
    value: f64,
    kind: String,
}

/// A python3 with prometheus_client: the distribution's (where apt installs it), or the
/// one on PATH.
fn python_with_prometheus() -> Option<&'static str> {
    ["/usr/bin/python3", "python3"].into_iter().find(|python| {
        Command::new(python)
            .args(["-c", "import prometheus_client"])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

fn scrape(python: &str, url: &str) -> BTreeMap<String, Vec<Sample>> {
    let out = Command::new(python)
        .args(["-c", SCRAPE, url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut samples: BTreeMap<String, Vec<Sample>> = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        samples
            .entry(v["name"].as_str().unwrap().to_string())
            .or_default()
            .push(Sample {
                labels: serde_json::from_value(v["labels"].clone()).unwrap(),
                value: v["value"].as_f64().unwrap(),
                kind: v["type"].as_str().unwrap().to_string(),
            });
    }
    samples
}

/// The value of `name` whose labels include `wanted`.
#[track_caller]
fn value(samples: &BTreeMap<String, Vec<Sample>>, name: &str, wanted: (&str, &str)) -> f64 {
    samples
        .get(name)
        .and_then(|all| {
            all.iter()
                .find(|s| s.labels.get(wanted.0).map(String::as_str) == Some(wanted.1))
        })
        .unwrap_or_else(|| panic!("no {name} with {wanted:?}: {samples:?}"))
        .value
}

/// A controller's directory of the process's cgroup (v1), or its cgroup2 directory.
fn cgroup_dir(pid: &str, v1_controller: &str) -> (PathBuf, bool) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
        if controllers.split(',').any(|c| c == v1_controller) {
            let dir = format!("/sys/fs/cgroup/{controllers}{path}");
            return (PathBuf::from(dir), false);
        }
    }
    let path = text.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
    (PathBuf::from(format!("/sys/fs/cgroup{path}")), true)
}

fn read_number(path: PathBuf) -> f64 {
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .parse()
        .unwrap()
}

/// CPU seconds and memory bytes of the process's cgroup, as the kernel counts them.
fn cgroup_usage(pid: &str) -> (f64, f64) {
    let cpu = match cgroup_dir(pid, "cpuacct") {
        (dir, false) => read_number(dir.join("cpuacct.usage")) / 1e9,
        (dir, true) => {
            let stat = std::fs::read_to_string(dir.join("cpu.stat")).unwrap();
            let usec = stat
                .lines()
                .find_map(|l| l.strip_prefix("usage_usec "))
                .unwrap();
            usec.parse::<f64>().unwrap() / 1e6
        }
    };
    let memory = match cgroup_dir(pid, "memory") {
        (dir, false) => read_number(dir.join("memory.usage_in_bytes")),
        (dir, true) => read_number(dir.join("memory.current")),
    };
    (cpu, memory)
}

#[test]
fn metrics_match_the_containers_and_their_cgroups() {
    let Some(python) = python_with_prometheus() else {
        eprintln!("SKIP: python3-prometheus-client is not installed (scripts/install-deps.sh)");
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let Some(d) = daemon_with_busybox_and("metrics", &["--metrics-addr", &addr]) else {
        return;
    };
    let url = format!("http://{addr}/metrics");
    // Some CPU, then 16 MiB in its tmpfs /dev/shm, then idle: the values stay put.
    run_sh(
        &d,
        &["-d", "--name", "worker", "busybox"],
        "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; \
         dd if=/dev/zero of=/dev/shm/fill bs=1M count=16 2>/dev/null; echo ready; sleep 1000",
    );
    let flaky: Vec<&str> = "run -d --name flaky --restart on-failure:2 busybox false"
        .split(' ')
        .collect();
    ok(&d, &flaky);
    wait_for(
        || ok(&d, &["logs", "worker"]).contains("ready"),
        "the worker to settle",
    );
    wait_for(
        || inspect(&d, "{{.State.Status}} {{.RestartCount}}", "flaky") == "exited 2",
        "flaky to give up after two restarts",
    );
    let worker_id = inspect(&d, "{{.Id}}", "worker");
    let pid = inspect(&d, "{{.State.Pid}}", "worker");

    let samples = scrape(python, &url);
    let (cpu, memory) = cgroup_usage(&pid);
    let containers = |state: &str| value(&samples, "kapsel_containers", ("state", state));
    assert_eq!(
        (
            containers("running"),
            containers("exited"),
            containers("paused")
        ),
        (1.0, 1.0, 0.0)
    );
    assert_eq!(samples["kapsel_images"][0].value, 1.0);
    assert!(samples["kapsel_uptime_seconds"][0].value > 0.0);

    let worker = ("name", "worker");
    let scraped_cpu = value(&samples, "kapsel_container_cpu_seconds_total", worker);
    assert!(
        scraped_cpu > 0.0 && (scraped_cpu - cpu).abs() < 0.01,
        "{scraped_cpu} vs cgroup {cpu}"
    );
    let scraped_memory = value(&samples, "kapsel_container_memory_usage_bytes", worker);
    assert!(scraped_memory >= 16.0 * 1024.0 * 1024.0, "{scraped_memory}");
    assert!(
        (scraped_memory - memory).abs() < 1024.0 * 1024.0,
        "{scraped_memory} vs cgroup {memory}"
    );
    let cpu_sample = samples["kapsel_container_cpu_seconds_total"]
        .iter()
        .find(|s| s.labels["name"] == "worker")
        .unwrap();
    assert_eq!(cpu_sample.labels["id"], worker_id);
    assert_eq!(cpu_sample.kind, "counter");
    assert_eq!(
        value(
            &samples,
            "kapsel_container_restarts_total",
            ("name", "flaky")
        ),
        2.0
    );
    assert_eq!(
        value(&samples, "kapsel_container_restarts_total", worker),
        0.0
    );
    // Stopped containers have no cgroup to report.
    assert!(samples["kapsel_container_memory_usage_bytes"]
        .iter()
        .all(|s| s.labels["name"] != "flaky"));
}
