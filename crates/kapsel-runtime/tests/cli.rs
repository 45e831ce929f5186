//! Bits of runc's command line not covered elsewhere: kill of a created or
//! stopped container, `delete --force` of a missing id, `ps` table and ps(1)
//! options, `events --interval`, `--log`/`--log-format json`, `features`.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{pid_alive, wait_until, HOOK_KINDS};
use serde_json::Value;

#[test]
fn kill_created_container() {
    let t = test_env!();
    let id = t.id();
    let cfg = t.spec(&id, &["sh", "-c", "echo ran > /out/marker"]);
    t.create(&id, &cfg).ok("create");
    let pid = t.pid(&id);
    t.rt(&["kill", &id, "KILL"])
        .ok("kill of a created container");
    t.wait_status(&id, "stopped");
    assert!(
        wait_until(Duration::from_secs(5), || !pid_alive(pid)),
        "init {pid} survived"
    );
    t.rt(&["start", &id]).fails("start after kill");
    assert!(!t.out.join("marker").exists(), "the process ran");
    t.rt(&["delete", &id]).ok("delete");
    t.assert_gone(&id);
}

/// The spec: signalling a container that is neither created nor running
/// must fail and have no effect.
#[test]
fn kill_stopped_container_fails() {
    let t = test_env!();
    let (id, _) = t.started(&["true"], |_| {});
    t.wait_status(&id, "stopped");
    let o = t.rt(&["kill", &id, "KILL"]);
    assert!(!o.success(), "kill of a stopped container succeeded");
    assert!(!o.stderr.trim().is_empty(), "no error message");
    assert_eq!(t.status(&id), "stopped");
    t.rt(&["delete", &id]).ok("delete");
    t.assert_gone(&id);
}

/// runc: `delete --force` of an id that does not exist succeeds (callers
/// such as containerd rely on it for idempotent cleanup); without --force
/// it fails.
#[test]
fn delete_force_of_missing_container_succeeds() {
    let t = test_env!();
    let id = t.id();
    t.rt(&["delete", &id])
        .fails("delete of a missing container");
    let o = t.rt(&["delete", "--force", &id]);
    assert!(
        o.success(),
        "delete --force of a missing container failed: {}",
        o.all()
    );
    t.assert_gone(&id);
}

/// The PID column of a `ps` table and the line of `pid`.
#[track_caller]
fn ps_line(table: &str, pid: i64) -> (Vec<String>, Vec<String>) {
    let mut lines = table.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(String::from)
        .collect();
    let col = header
        .iter()
        .position(|h| h == "PID")
        .unwrap_or_else(|| panic!("no PID column:\n{table}"));
    let line = lines
        .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
        .find(|f| f.get(col).map(String::as_str) == Some(&pid.to_string()))
        .unwrap_or_else(|| panic!("no line for pid {pid}:\n{table}"));
    (header, line)
}

#[test]
fn ps_table_and_ps_options() {
    let t = test_env!();
    let (id, pid) = t.started(&["sleep", "1000"], |_| {});
    let o = t.rt(&["ps", &id]).ok("ps");
    let (header, line) = ps_line(&o.stdout, pid);
    // ps -ef: UID PID PPID C STIME TTY TIME CMD
    assert!(header.contains(&"CMD".to_string()), "{}", o.stdout);
    assert_eq!(
        line[line.len() - 2..].join(" "),
        "sleep 1000",
        "{}",
        o.stdout
    );
    assert_eq!(
        o.stdout.lines().count(),
        2,
        "one process only:\n{}",
        o.stdout
    );

    // ps(1) options after the id replace -ef.
    let o = t.rt(&["ps", &id, "-o", "pid,comm"]).ok("ps -o pid,comm");
    let (header, line) = ps_line(&o.stdout, pid);
    assert_eq!(header, ["PID", "COMMAND"], "{}", o.stdout);
    assert_eq!(line, [pid.to_string(), "sleep".to_string()], "{}", o.stdout);
}

#[test]
fn events_interval_streams_stats() {
    let t = test_env!();
    let (id, _) = t.started(&["sleep", "1000"], |_| {});
    let mut child = t
        .rt_cmd(&["events", "--interval", "100ms", &id])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let events_pid = child.id();
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    let mut lines = Vec::new();
    while lines.len() < 3 && start.elapsed() < Duration::from_secs(3) {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            lines.push(l);
        }
    }
    let took = start.elapsed();
    t.rt(&["kill", &id, "KILL"]).ok("kill");
    t.wait_status(&id, "stopped");
    // runc's events ends only when the container's cgroup goes away (on
    // delete), not when it stops; ending on stop is fine too.
    let exited_on_stop = wait_until(Duration::from_secs(1), || {
        child.try_wait().unwrap().is_some()
    });
    if !exited_on_stop {
        t.rt(&["delete", &id]).ok("delete");
    }
    let exited = wait_until(Duration::from_secs(3), || {
        child.try_wait().unwrap().is_some()
    });
    if !exited {
        let _ = child.kill();
    }
    let _ = child.wait();
    assert!(
        lines.len() >= 3,
        "{} lines in {took:?}: {lines:?}",
        lines.len()
    );
    assert!(
        took < Duration::from_secs(2),
        "3 stats lines at 100ms took {took:?}"
    );
    for l in &lines {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert_eq!(v["type"], "stats", "{v}");
        assert_eq!(v["id"], id.as_str(), "{v}");
        assert!(
            v["data"]["pids"]["current"].as_u64().unwrap_or(0) >= 1,
            "{v}"
        );
    }
    assert!(exited, "events {events_pid} never ended");
}

#[test]
fn log_file_json_on_error() {
    let t = test_env!();
    let log = t.dir.join("log.json");
    let o = t.rt(&[
        "--log",
        &log.to_string_lossy(),
        "--log-format",
        "json",
        "start",
        "kt-no-such-container",
    ]);
    assert!(!o.success(), "{}", o.all());
    // runc prints the error on stderr as well.
    assert!(
        !o.stderr.trim().is_empty(),
        "no error on stderr: {}",
        o.all()
    );
    let text = fs::read_to_string(&log).unwrap_or_default();
    let entries: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("log line not JSON ({e}): {l}")))
        .collect();
    let err = entries
        .iter()
        .rev()
        .find(|e| e["level"] == "error")
        .unwrap_or_else(|| panic!("no error entry in the log:\n{text}"));
    let msg = err["msg"].as_str().unwrap_or("");
    assert!(!msg.is_empty(), "{err}");
    assert!(err["time"].is_string(), "{err}");

    // The default (text) format: logrus style "level=error msg=...".
    let log = t.dir.join("log.txt");
    let o = t.rt(&[
        "--log",
        &log.to_string_lossy(),
        "start",
        "kt-no-such-container",
    ]);
    assert!(!o.success(), "{}", o.all());
    let text = fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.lines()
            .any(|l| l.contains("level=error") && l.contains("msg=")),
        "text log: {text:?}"
    );
}

#[test]
fn features_prints_json() {
    let t = test_env!();
    let o = t.rt(&["features"]).ok("features");
    let v: Value = serde_json::from_str(&o.stdout)
        .unwrap_or_else(|e| panic!("features is not JSON ({e}): {}", o.stdout));
    for k in ["ociVersionMin", "ociVersionMax"] {
        assert!(
            v[k].as_str().is_some_and(|s| s.starts_with("1.")),
            "{k}: {v}"
        );
    }
    let strs = |p: &Value| -> Vec<String> {
        p.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let hooks = strs(&v["hooks"]);
    for h in HOOK_KINDS {
        assert!(hooks.iter().any(|x| x == h), "hook {h}: {v}");
    }
    let ns = strs(&v["linux"]["namespaces"]);
    for n in ["pid", "mount", "network", "ipc", "uts", "user", "cgroup"] {
        assert!(ns.iter().any(|x| x == n), "namespace {n}: {v}");
    }
    let caps = strs(&v["linux"]["capabilities"]);
    assert!(caps.iter().any(|c| c == "CAP_SYS_ADMIN"), "{v}");
    let opts = strs(&v["mountOptions"]);
    for o in ["ro", "rbind", "nosuid"] {
        assert!(opts.iter().any(|x| x == o), "mount option {o}: {v}");
    }
}

#[test]
fn events_reports_an_oom_kill() {
    let t = test_env!();
    // A child of the init shell grows a 100 MB string under a 32 MiB limit and is
    // OOM-killed; the init goes on sleeping, so the container keeps running.
    let script = "sleep 0.3; (x=$(yes | head -c 100000000)); sleep 1000";
    let (id, _) = t.started(&["sh", "-c", script], |cfg| {
        let mib = 1024 * 1024;
        cfg["linux"]["resources"]["memory"] =
            serde_json::json!({"limit": 32 * mib, "swap": 32 * mib});
    });
    let mut child = t
        .rt_cmd(&["events", "--interval", "200ms", &id])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    let mut oom = None;
    while oom.is_none() && start.elapsed() < Duration::from_secs(10) {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            let v: serde_json::Value = serde_json::from_str(&l).unwrap();
            if v["type"] == "oom" {
                oom = Some(v);
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let oom = oom.expect("no oom event within 10 s");
    assert_eq!(oom["id"], id.as_str());
}
