//! Container lifecycle: create, start, state, kill, delete, run, list, ps,
//! pid files and `spec`.

mod common;

use std::fs;
use std::time::Duration;

use common::{pid_alive, remove_namespace, wait_until, Test};
use serde_json::Value;

#[test]
fn create_reports_created_state() {
    let t = test_env!();
    let id = t.id();
    let cfg = t.spec(&id, &["sh", "-c", "echo ran > /out/marker"]);
    t.create(&id, &cfg).ok("create");

    let st = t.state(&id);
    assert_eq!(st["id"], id.as_str(), "{st}");
    assert_eq!(st["status"], "created", "{st}");
    let pid = st["pid"].as_i64().unwrap_or(0);
    assert!(pid > 0, "pid must be > 0: {st}");
    assert!(pid_alive(pid), "init pid {pid} is not alive on the host");
    let bundle = fs::canonicalize(t.bundle_dir(&id)).unwrap();
    let reported = st["bundle"].as_str().expect("bundle is a string");
    assert_eq!(
        fs::canonicalize(reported).unwrap(),
        bundle,
        "bundle in state: {st}"
    );
    let v = st["ociVersion"].as_str().unwrap_or("");
    assert!(
        v.starts_with("1."),
        "ociVersion should be a 1.x version: {st}"
    );
    // The user process must not have run yet.
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !t.out.join("marker").exists(),
        "the process ran before start"
    );
}

#[test]
fn start_runs_process_and_state_is_running() {
    let t = test_env!();
    let id = t.id();
    let cfg = t.spec(
        &id,
        &["sh", "-c", "echo ran > /out/marker; exec sleep 1000"],
    );
    t.create(&id, &cfg).ok("create");
    let created_pid = t.pid(&id);
    t.rt(&["start", &id]).ok("start");
    assert_eq!(t.wait_out("marker").trim(), "ran");
    let st = t.state(&id);
    assert_eq!(st["status"], "running", "{st}");
    assert_eq!(
        st["pid"].as_i64().unwrap(),
        created_pid,
        "pid changed across start"
    );
    // Starting twice is an error.
    t.rt(&["start", &id]).fails("second start");
    assert_eq!(t.status(&id), "running");
}

#[test]
fn exited_process_is_stopped() {
    let t = test_env!();
    let id = t.id();
    let cfg = t.spec(&id, &["true"]);
    let pid = t.create_and_start(&id, &cfg);
    t.wait_status(&id, "stopped");
    assert!(!pid_alive(pid), "init {pid} still alive after stop");
    let st = t.state(&id);
    assert_eq!(st["id"], id.as_str());
}

#[test]
fn delete_removes_state() {
    let t = test_env!();
    let id = t.id();
    let cfg = t.spec(&id, &["true"]);
    t.create_and_start(&id, &cfg);
    t.wait_status(&id, "stopped");
    assert!(
        fs::read_dir(&t.root).unwrap().count() > 0,
        "runtime keeps no state under --root"
    );
    t.rt(&["delete", &id]).ok("delete");
    t.assert_gone(&id);
}

/// `delete` of a *created* container: runc destroys it, while the OCI spec
/// says deleting a container that is not stopped must fail and leave it
/// alone. Either is accepted, but nothing in between; `delete --force`
/// must always remove it, and its process must never run.
/// Creates a container whose process would leave /out/marker if it ever ran; returns its
/// ID and its init's PID.
fn created_with_marker(t: &Test) -> (String, i64) {
    let id = t.id();
    let cfg = t.spec(&id, &["sh", "-c", "echo ran > /out/marker"]);
    t.create(&id, &cfg).ok("create");
    let pid = t.pid(&id);
    (id, pid)
}

/// `delete --force` of a created container: at once nothing is left of it, and its init
/// `pid` dies.
#[track_caller]
fn force_delete_created(t: &Test, id: &str, pid: i64) {
    t.rt(&["delete", "--force", id]).ok("delete --force");
    t.assert_gone(id);
    assert!(
        wait_until(Duration::from_secs(5), || !pid_alive(pid)),
        "init {pid} survived delete --force"
    );
}

#[test]
fn delete_created_container() {
    let t = test_env!();
    let (id, pid) = created_with_marker(&t);
    let o = t.rt(&["delete", &id]);
    if o.success() {
        t.assert_gone(&id);
        assert!(!pid_alive(pid), "init {pid} survived delete");
    } else {
        assert!(!o.stderr.trim().is_empty(), "no error message");
        assert_eq!(
            t.status(&id),
            "created",
            "failed delete changed the container"
        );
        assert!(pid_alive(pid));
        force_delete_created(&t, &id, pid);
    }
    assert!(!t.out.join("marker").exists(), "the process ran");
}

#[test]
fn delete_force_created_container() {
    let t = test_env!();
    let (id, pid) = created_with_marker(&t);
    force_delete_created(&t, &id, pid);
    assert!(!t.out.join("marker").exists(), "the process ran");
}

#[test]
fn run_returns_exit_status() {
    let t = test_env!();
    let id = t.id();
    let cfg = t.spec(&id, &["sh", "-c", "echo hello; echo oops >&2; exit 7"]);
    let o = t.run(&id, &cfg);
    assert_eq!(o.status, 7, "{}", o.all());
    assert_eq!(o.stdout.trim(), "hello", "{}", o.all());
    assert!(o.stderr.contains("oops"), "{}", o.all());
    // run deletes the container when it exits.
    t.assert_gone(&id);

    let id = t.id();
    let cfg = t.spec(&id, &["true"]);
    assert_eq!(t.run(&id, &cfg).status, 0);
}

#[test]
fn run_killed_by_signal_is_128_plus_n() {
    let t = test_env!();
    // Without a PID namespace the process is not an init and can kill itself.
    let id = t.id();
    let mut cfg = t.spec(&id, &["sh", "-c", "kill -TERM $$; sleep 5"]);
    remove_namespace(&mut cfg, "pid");
    let o = t.run(&id, &cfg);
    assert_eq!(o.status, 128 + 15, "{}", o.all());

    // SIGKILL from the outside with a PID namespace.
    let id = t.id();
    let cfg = t.spec(&id, &["sleep", "1000"]);
    let b = t.write_bundle(&id, &cfg);
    let bs = b.to_string_lossy().into_owned();
    let mut child = t
        .rt_cmd(&["run", "--bundle", &bs, &id])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let running = wait_until(Duration::from_secs(10), || {
        let o = t.rt(&["state", &id]);
        o.success() && o.stdout.contains("running")
    });
    if !running {
        let _ = child.kill();
        let _ = child.wait();
        panic!("foreground container never reached running");
    }
    t.rt(&["kill", &id, "KILL"]).ok("kill");
    let mut status = None;
    wait_until(Duration::from_secs(10), || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("run did not return after the container was killed");
    };
    assert_eq!(status.code(), Some(137), "{status:?}");
}

/// A container whose init traps SIGTERM and records it.
const TRAP_TERM: &str =
    "trap 'echo got-term > /out/term; exit 3' TERM; echo ready > /out/ready; while :; do sleep 0.05; done";

#[test]
fn kill_signal_names_and_numbers() {
    let t = test_env!();
    for sig in ["KILL", "9", "SIGKILL"] {
        let (id, pid) = t.started(&["sleep", "1000"], |_| {});
        t.rt(&["kill", &id, sig]).ok(&format!("kill {sig}"));
        t.wait_status(&id, "stopped");
        assert!(!pid_alive(pid), "{sig}: init still alive");
    }
    for sig in ["TERM", "SIGTERM", "15"] {
        let _ = fs::remove_file(t.out.join("term"));
        let _ = fs::remove_file(t.out.join("ready"));
        let (id, _) = t.started(&["sh", "-c", TRAP_TERM], |_| {});
        t.wait_out("ready");
        t.rt(&["kill", &id, sig]).ok(&format!("kill {sig}"));
        assert_eq!(t.wait_out("term").trim(), "got-term", "signal {sig}");
        t.wait_status(&id, "stopped");
    }
}

#[test]
fn kill_default_signal_is_term() {
    let t = test_env!();
    let (id, _) = t.started(&["sh", "-c", TRAP_TERM], |_| {});
    t.wait_out("ready");
    t.rt(&["kill", &id]).ok("kill without a signal");
    assert_eq!(t.wait_out("term").trim(), "got-term");
    t.wait_status(&id, "stopped");
}

#[test]
fn kill_invalid_signal_fails() {
    let t = test_env!();
    let (id, pid) = t.started(&["sleep", "1000"], |_| {});
    t.rt(&["kill", &id, "NOTASIGNAL"]).fails("kill NOTASIGNAL");
    assert!(pid_alive(pid));
    assert_eq!(t.status(&id), "running");
}

#[test]
fn kill_all_kills_every_process() {
    let t = test_env!();
    // No PID namespace: killing only the init would leave the children.
    let script = "sleep 1000 & echo $! > /out/c1; sleep 1000 & echo $! > /out/c2; wait";
    let (id, pid) = t.started(&["sh", "-c", script], |cfg| {
        remove_namespace(cfg, "pid");
    });
    let c1: i64 = t.wait_out("c1").trim().parse().unwrap();
    let c2: i64 = t.wait_out("c2").trim().parse().unwrap();
    assert!(wait_until(Duration::from_secs(5), || pid_alive(c1) && pid_alive(c2)));
    t.rt(&["kill", "--all", &id, "KILL"]).ok("kill --all");
    assert!(
        wait_until(Duration::from_secs(10), || !pid_alive(pid)
            && !pid_alive(c1)
            && !pid_alive(c2)),
        "processes survived kill --all"
    );
    t.wait_status(&id, "stopped");
}

#[test]
fn duplicate_id_fails_and_first_is_untouched() {
    let t = test_env!();
    let id = t.id();
    let cfg = t.spec(
        &id,
        &["sh", "-c", "echo first > /out/first; exec sleep 1000"],
    );
    t.create(&id, &cfg).ok("first create");
    let pid = t.pid(&id);

    let mut cfg2 = t.spec(&id, &["sh", "-c", "echo second > /out/second"]);
    cfg2["hostname"] = "second".into();
    // A different bundle for the same id.
    let b2 = t.dir.join("bundle-dup");
    fs::create_dir_all(&b2).unwrap();
    fs::write(b2.join("config.json"), cfg2.to_string()).unwrap();
    let o = t.rt_detached("dup", &["create", "--bundle", &b2.to_string_lossy(), &id]);
    assert!(!o.success(), "duplicate create succeeded: {}", o.all());

    let st = t.state(&id);
    assert_eq!(st["status"], "created", "{st}");
    assert_eq!(st["pid"].as_i64().unwrap(), pid, "{st}");
    assert_eq!(
        fs::canonicalize(st["bundle"].as_str().unwrap()).unwrap(),
        fs::canonicalize(t.bundle_dir(&id)).unwrap()
    );
    t.rt(&["start", &id]).ok("start first");
    assert_eq!(t.wait_out("first").trim(), "first");
    std::thread::sleep(Duration::from_millis(200));
    assert!(!t.out.join("second").exists(), "second container ran");
}

#[test]
fn delete_running_needs_force() {
    let t = test_env!();
    let (id, pid) = t.started(&["sleep", "1000"], |_| {});
    let o = t.rt(&["delete", &id]);
    assert!(!o.success(), "delete of a running container succeeded");
    assert!(!o.stderr.trim().is_empty(), "no error message");
    assert_eq!(t.status(&id), "running");
    assert!(pid_alive(pid));

    t.rt(&["delete", "--force", &id]).ok("delete --force");
    assert!(
        wait_until(Duration::from_secs(5), || !pid_alive(pid)),
        "init survived delete --force"
    );
    t.assert_gone(&id);
}

#[test]
fn list_shows_containers() {
    let t = test_env!();
    let (a, pid_a) = t.started(&["sleep", "1000"], |_| {});
    let b = t.id();
    let cfg = t.spec(&b, &["sleep", "1000"]);
    t.create(&b, &cfg).ok("create");

    let o = t.rt(&["list"]).ok("list");
    assert!(o.stdout.contains(&a), "{}", o.stdout);
    assert!(o.stdout.contains(&b), "{}", o.stdout);
    let header = o.stdout.lines().next().unwrap_or("");
    assert!(
        header.contains("ID") && header.contains("STATUS"),
        "{}",
        o.stdout
    );
    let line_a = o
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("{a} ")))
        .unwrap();
    assert!(line_a.contains("running"), "{line_a}");

    let o = t.rt(&["list", "--format", "json"]).ok("list json");
    let v: Value = serde_json::from_str(&o.stdout).expect("list json");
    let arr = v.as_array().expect("array");
    assert_eq!(arr.len(), 2, "{v}");
    let ea = arr
        .iter()
        .find(|c| c["id"] == a.as_str())
        .expect("a listed");
    assert_eq!(ea["status"], "running");
    assert_eq!(ea["pid"].as_i64().unwrap(), pid_a);
    assert_eq!(
        fs::canonicalize(ea["bundle"].as_str().unwrap()).unwrap(),
        fs::canonicalize(t.bundle_dir(&a)).unwrap()
    );
    let eb = arr
        .iter()
        .find(|c| c["id"] == b.as_str())
        .expect("b listed");
    assert_eq!(eb["status"], "created");

    let o = t.rt(&["list", "-q"]).ok("list -q");
    let mut ids: Vec<&str> = o.stdout.lines().collect();
    ids.sort();
    let mut want = vec![a.as_str(), b.as_str()];
    want.sort();
    assert_eq!(ids, want);
}

#[test]
fn list_empty_root() {
    let t = test_env!();
    let o = t.rt(&["list", "--format", "json"]).ok("list");
    let v: Value = serde_json::from_str(o.stdout.trim()).expect("list --format json prints JSON");
    assert!(
        v.is_null() || v.as_array().is_some_and(|a| a.is_empty()),
        "empty list should be null or []: {v}"
    );
    let o = t.rt(&["list"]).ok("list");
    assert!(o.stdout.contains("ID"), "list prints a header: {}", o.all());
}

#[test]
fn ps_lists_init_pid() {
    let t = test_env!();
    let (id, pid) = t.started(&["sh", "-c", "sleep 1000 & exec sleep 999"], |_| {});
    let mut pids = Vec::new();
    let ok = wait_until(Duration::from_secs(5), || {
        let o = t.rt(&["ps", "--format", "json", &id]).ok("ps");
        let v: Value = serde_json::from_str(&o.stdout).expect("ps json");
        pids = v
            .as_array()
            .expect("array")
            .iter()
            .map(|p| p.as_i64().unwrap())
            .collect();
        pids.len() == 2
    });
    assert!(ok, "ps --format json: {pids:?}");
    assert!(pids.contains(&pid), "{pids:?} lacks init {pid}");
    let o = t.rt(&["ps", &id]).ok("ps table");
    assert!(o.stdout.contains("PID"), "{}", o.stdout);
    assert!(o.stdout.contains(&pid.to_string()), "{}", o.stdout);
}

#[test]
fn pid_file_is_written() {
    let t = test_env!();
    let id = t.id();
    let cfg = t.spec(&id, &["sleep", "1000"]);
    let pf = t.dir.join("ctr.pid");
    t.create_with(&id, &cfg, &["--pid-file", &pf.to_string_lossy()])
        .ok("create --pid-file");
    let pid: i64 = fs::read_to_string(&pf)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid file holds a number");
    assert_eq!(pid, t.pid(&id));
}

#[test]
fn spec_writes_config() {
    let t = test_env!();
    let b = t.dir.join("specbundle");
    fs::create_dir_all(&b).unwrap();
    t.rt(&["spec", "--bundle", &b.to_string_lossy()]).ok("spec");
    let v: Value =
        serde_json::from_slice(&fs::read(b.join("config.json")).unwrap()).expect("config.json");
    assert!(v["ociVersion"].is_string(), "{v}");
    assert!(v["process"]["args"].is_array(), "{v}");
    assert!(v["process"]["cwd"].is_string(), "{v}");
    assert!(v["root"]["path"].is_string(), "{v}");
    let mounts = v["mounts"].as_array().expect("mounts");
    assert!(mounts.iter().any(|m| m["destination"] == "/proc"), "{v}");
    assert!(mounts.iter().any(|m| m["destination"] == "/dev"), "{v}");
    let ns = v["linux"]["namespaces"].as_array().expect("namespaces");
    for kind in ["pid", "mount"] {
        assert!(ns.iter().any(|n| n["type"] == kind), "{kind}: {v}");
    }
    // Refuses to overwrite an existing config.json.
    t.rt(&["spec", "--bundle", &b.to_string_lossy()])
        .fails("spec over an existing config.json");
}

#[test]
fn run_detach_then_state() {
    let t = test_env!();
    let id = t.id();
    let cfg = t.spec(&id, &["sleep", "1000"]);
    let b = t.write_bundle(&id, &cfg);
    t.rt_detached(
        &id,
        &["run", "--detach", "--bundle", &b.to_string_lossy(), &id],
    )
    .ok("run --detach");
    assert_eq!(t.status(&id), "running");
    assert!(pid_alive(t.pid(&id)));
}
