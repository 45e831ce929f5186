//! Hooks: all six kinds, their order, the state on stdin, env/args,
//! failures, time-outs.
//!
//! The hooks are `/bin/sh -c ...` scripts that log to a directory H of the
//! test. H is bind-mounted into the container at the same path, so the same
//! absolute path works both in the runtime's namespaces (prestart,
//! createRuntime, poststart, poststop) and in the container's mount namespace
//! before (createContainer) and after (startContainer) pivot_root; /bin/sh
//! exists on the host and (busybox) in the rootfs. The mount point H does not
//! exist in the shared rootfs, so these tests use a private rootfs copy.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{pid_alive, wait_until, Test, HOOK_KINDS};
use serde_json::{json, Value};

struct Hooked {
    id: String,
    cfg: Value,
    h: PathBuf,
}

/// A config for `args` with H bind-mounted at its own path.
fn hooked(t: &Test, args: &[&str]) -> Hooked {
    let id = t.id();
    let h = t.dir.join("hooks");
    fs::create_dir_all(&h).unwrap();
    fs::set_permissions(&h, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let rootfs = t.private_rootfs("hooks");
    let mut cfg = t.spec(&id, args);
    cfg["root"]["path"] = json!(rootfs);
    common::add_mount(
        &mut cfg,
        json!({"destination": h, "type": "bind", "source": h, "options": ["rbind", "rw"]}),
    );
    cfg["hooks"] = json!({});
    Hooked { id, cfg, h }
}

/// A hook that saves its stdin as H/<tag>.json and appends <tag> to H/order.
fn logging_hook(h: &Path, tag: &str) -> Value {
    let h = h.display();
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("cat > {h}/{tag}.json; echo {tag} >> {h}/order")]
    })
}

fn add_hook(cfg: &mut Value, kind: &str, hook: Value) {
    let hooks = cfg["hooks"].as_object_mut().unwrap();
    hooks
        .entry(kind)
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .unwrap()
        .push(hook);
}

fn order(h: &Path) -> Vec<String> {
    fs::read_to_string(h.join("order"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

fn hook_state(h: &Path, tag: &str) -> Value {
    let s = fs::read_to_string(h.join(format!("{tag}.json")))
        .unwrap_or_else(|e| panic!("no state saved by the {tag} hook: {e}"));
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("{tag} hook stdin is not JSON ({e}): {s}"))
}

/// runc 1.1.5 runs the poststart hooks during `create` (right after
/// createContainer) instead of after the process started; under runc that
/// deviation is tolerated (and reported), for any other runtime it fails.
fn runc_early_poststart(o: &mut Vec<String>) -> bool {
    if let Some(i) = o.iter().position(|k| k == "poststart") {
        if o[..i].iter().all(|k| k != "startContainer") && common::runtime_is_runc() {
            eprintln!("NOTE: runc 1.1 runs poststart hooks during create; tolerated for runc");
            o.remove(i);
            return true;
        }
    }
    false
}

#[test]
fn all_hooks_run_in_order_with_state() {
    let t = test_env!();
    let mut x = hooked(
        &t,
        &["sh", "-c", "echo process >> $KT_H/order; exec sleep 1000"],
    );
    x.cfg["process"]["env"]
        .as_array_mut()
        .unwrap()
        .push(json!(format!("KT_H={}", x.h.display())));
    for kind in HOOK_KINDS {
        add_hook(&mut x.cfg, kind, logging_hook(&x.h, kind));
    }
    let id = x.id.clone();

    t.create(&id, &x.cfg).ok("create");
    let mut o = order(&x.h);
    let early = runc_early_poststart(&mut o);
    assert_eq!(
        o,
        vec!["prestart", "createRuntime", "createContainer"],
        "after create"
    );
    let pid = t.pid(&id);

    t.rt(&["start", &id]).ok("start");
    assert!(
        wait_until(Duration::from_secs(5), || order(&x.h).len() >= 6),
        "after start: {:?}",
        order(&x.h)
    );
    let mut o = order(&x.h);
    if early {
        runc_early_poststart(&mut o);
        o.push("poststart".into());
    }
    assert_eq!(
        o[..4],
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer"
        ],
        "{o:?}"
    );
    // poststart runs after the process started; the process and poststart
    // race for the log.
    let mut tail = o[4..].to_vec();
    tail.sort();
    assert_eq!(tail, ["poststart", "process"], "{o:?}");

    t.rt(&["kill", &id, "KILL"]).ok("kill");
    t.wait_status(&id, "stopped");
    assert!(!order(&x.h).contains(&"poststop".to_string()));
    t.rt(&["delete", &id]).ok("delete");
    assert_eq!(order(&x.h).last().map(String::as_str), Some("poststop"));
    assert_eq!(order(&x.h).len(), 7);

    let bundle = fs::canonicalize(t.bundle_dir(&id)).unwrap();
    for kind in HOOK_KINDS {
        let st = hook_state(&x.h, kind);
        assert_eq!(st["id"], id.as_str(), "{kind}: {st}");
        assert!(st["ociVersion"].is_string(), "{kind}: {st}");
        assert_eq!(
            fs::canonicalize(st["bundle"].as_str().unwrap_or("")).ok(),
            Some(bundle.clone()),
            "{kind}: {st}"
        );
        let got = st["pid"].as_i64();
        match kind {
            "poststop" => {}
            // runc 1.1 gives the in-container hooks the pid as seen in the
            // container's PID namespace (1); the spec asks for the host's.
            "createContainer" | "startContainer" if got == Some(1) && common::runtime_is_runc() => {
            }
            _ => assert_eq!(got, Some(pid), "{kind}: {st}"),
        }
    }
}

#[test]
fn hooks_of_one_kind_run_in_order() {
    let t = test_env!();
    let mut x = hooked(&t, &["true"]);
    for tag in ["first", "second", "third"] {
        add_hook(&mut x.cfg, "createRuntime", logging_hook(&x.h, tag));
    }
    t.create(&x.id, &x.cfg).ok("create");
    assert_eq!(order(&x.h), vec!["first", "second", "third"]);
}

#[test]
fn hook_env_and_args() {
    let t = test_env!();
    let mut x = hooked(&t, &["true"]);
    let h = x.h.display().to_string();
    add_hook(
        &mut x.cfg,
        "createRuntime",
        json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("env > {h}/env; echo \"$1\" > {h}/arg1"), "kt-arg0", "kt-arg1"],
            "env": ["KT_HOOK=yes", "PATH=/usr/bin:/bin"]
        }),
    );
    t.create(&x.id, &x.cfg).ok("create");
    let env = fs::read_to_string(x.h.join("env")).expect("hook ran");
    let vars: Vec<&str> = env.lines().collect();
    assert!(vars.contains(&"KT_HOOK=yes"), "{env}");
    assert!(
        !vars.iter().any(|v| v.starts_with("CARGO")),
        "the runtime's environment leaked into the hook: {env}"
    );
    assert_eq!(fs::read_to_string(x.h.join("arg1")).unwrap(), "kt-arg1\n");
}

fn assert_create_fails_cleanly(kind: &str) {
    let t = Test::new(&format!("failing_{kind}_hook"));
    let mut x = hooked(&t, &["sh", "-c", "echo ran > /out/ran"]);
    let h = x.h.display().to_string();
    add_hook(
        &mut x.cfg,
        kind,
        json!({"path": "/bin/sh", "args": ["sh", "-c", format!("echo {kind} >> {h}/order; exit 3")]}),
    );
    // Later hooks must not run.
    add_hook(
        &mut x.cfg,
        "startContainer",
        logging_hook(&x.h, "startContainer"),
    );
    let o = t.create(&x.id, &x.cfg);
    assert!(!o.success(), "create with a failing {kind} hook succeeded");
    assert!(!o.stderr.trim().is_empty(), "no error message");
    assert_eq!(order(&x.h), vec![kind.to_string()]);
    t.assert_gone(&x.id);
    assert!(!t.out.join("ran").exists());
}

#[test]
fn failing_prestart_hook_fails_create() {
    assert_create_fails_cleanly("prestart");
}

#[test]
fn failing_create_runtime_hook_fails_create() {
    assert_create_fails_cleanly("createRuntime");
}

#[test]
fn failing_create_container_hook_fails_create() {
    assert_create_fails_cleanly("createContainer");
}

/// A failing startContainer hook must keep the process from running and stop
/// the container. The spec also wants an error from `start`; runc 1.1.5 runs
/// these hooks in the container's init after `start` has returned 0, so that
/// part is skipped under runc.
#[test]
fn failing_start_container_hook_fails_start() {
    let t = test_env!();
    let mut x = hooked(&t, &["sh", "-c", "echo ran > /out/ran"]);
    add_hook(
        &mut x.cfg,
        "startContainer",
        json!({"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}),
    );
    t.create(&x.id, &x.cfg).ok("create");
    let o = t.rt(&["start", &x.id]);
    t.wait_status(&x.id, "stopped");
    std::thread::sleep(Duration::from_millis(200));
    assert!(!t.out.join("ran").exists(), "the process ran");
    if o.success() && common::skip_if_runc("runc 1.1 start returns 0 when startContainer fails") {
        return;
    }
    assert!(
        !o.success(),
        "start with a failing startContainer hook succeeded"
    );
}

#[test]
fn hook_timeout_kills_hook_and_fails() {
    let t = test_env!();
    let mut x = hooked(&t, &["true"]);
    let h = x.h.display().to_string();
    add_hook(
        &mut x.cfg,
        "createRuntime",
        json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("echo $$ > {h}/hookpid; exec sleep 30")],
            "timeout": 1
        }),
    );
    let start = Instant::now();
    let o = t.create(&x.id, &x.cfg);
    let took = start.elapsed();
    assert!(!o.success(), "create with a timed-out hook succeeded");
    assert!(took < Duration::from_secs(15), "create took {took:?}");
    let pid: i64 = fs::read_to_string(x.h.join("hookpid"))
        .expect("hook started")
        .trim()
        .parse()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || !pid_alive(pid)),
        "timed-out hook {pid} still running"
    );
    t.assert_gone(&x.id);
}

#[test]
fn hook_within_timeout_succeeds() {
    let t = test_env!();
    let mut x = hooked(&t, &["true"]);
    let mut hook = logging_hook(&x.h, "createRuntime");
    hook["timeout"] = json!(10);
    add_hook(&mut x.cfg, "createRuntime", hook);
    t.create(&x.id, &x.cfg).ok("create");
    assert_eq!(order(&x.h), vec!["createRuntime"]);
}

/// The spec says a failing poststart hook only produces a warning. runc 1.1.5
/// runs poststart during `create` and fails it: skipped under runc.
#[test]
fn failing_poststart_hook_is_a_warning() {
    let t = test_env!();
    let mut x = hooked(&t, &["sh", "-c", "echo ran > /out/ran; exec sleep 1000"]);
    add_hook(
        &mut x.cfg,
        "poststart",
        json!({"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}),
    );
    add_hook(&mut x.cfg, "poststart", logging_hook(&x.h, "poststart2"));
    let o = t.create(&x.id, &x.cfg);
    if !o.success() && common::skip_if_runc("runc 1.1 runs poststart during create and fails it") {
        return;
    }
    o.ok("create");
    let o = t.rt(&["start", &x.id]);
    o.ok("start with a failing poststart hook");
    assert_eq!(t.wait_out("ran").trim(), "ran");
    assert_eq!(t.status(&x.id), "running");
    assert_eq!(order(&x.h), vec!["poststart2"], "remaining hooks must run");
}

/// The spec says a failing poststop hook only produces a warning and the
/// remaining hooks run. runc 1.1.5 stops at the failing hook and fails
/// `delete` (the container is removed all the same): skipped under runc.
#[test]
fn failing_poststop_hook_is_a_warning() {
    let t = test_env!();
    let mut x = hooked(&t, &["true"]);
    add_hook(
        &mut x.cfg,
        "poststop",
        json!({"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}),
    );
    add_hook(&mut x.cfg, "poststop", logging_hook(&x.h, "poststop2"));
    let id = x.id.clone();
    t.create_and_start(&id, &x.cfg);
    t.wait_status(&id, "stopped");
    let o = t.rt(&["delete", &id]);
    let ran_rest = order(&x.h) == vec!["poststop2".to_string()];
    if (!o.success() || !ran_rest)
        && common::skip_if_runc("runc 1.1 fails delete and skips later hooks when poststop fails")
    {
        return;
    }
    o.ok("delete with a failing poststop hook");
    assert!(
        ran_rest,
        "remaining poststop hooks must run: {:?}",
        order(&x.h)
    );
    t.assert_gone(&id);
}

#[test]
fn poststop_runs_on_delete_force_of_running_container() {
    let t = test_env!();
    let mut x = hooked(&t, &["sleep", "1000"]);
    add_hook(&mut x.cfg, "poststop", logging_hook(&x.h, "poststop"));
    let id = x.id.clone();
    t.create_and_start(&id, &x.cfg);
    t.rt(&["delete", "--force", &id]).ok("delete --force");
    assert_eq!(order(&x.h), vec!["poststop"]);
    assert_eq!(hook_state(&x.h, "poststop")["id"], id.as_str());
    t.assert_gone(&id);
}

#[test]
fn run_invokes_all_hooks() {
    let t = test_env!();
    let mut x = hooked(&t, &["true"]);
    for kind in HOOK_KINDS {
        add_hook(&mut x.cfg, kind, logging_hook(&x.h, kind));
    }
    let id = x.id.clone();
    t.run(&id, &x.cfg).ok("run");
    let mut o = order(&x.h);
    if runc_early_poststart(&mut o) {
        o.insert(4, "poststart".into());
    }
    assert_eq!(o.len(), 6, "{o:?}");
    assert_eq!(o, HOOK_KINDS, "{o:?}");
    t.assert_gone(&id);
}
