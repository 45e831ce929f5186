//! Terminals: `process.terminal` with `--console-socket` (runc's protocol:
//! the runtime connects to the socket and sends the pty master with
//! SCM_RIGHTS), `exec --tty`, `/dev/console`, `consoleSize`, and the
//! foreground case where the runtime proxies its own terminal.

mod common;

use std::fs;
use std::process::Stdio;
use std::time::Duration;

use common::{pid_alive, wait_until, ConsoleSocket, Pty, Test};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(10);

/// A config for `id` running `script` with `process.terminal` true.
fn tty_spec(t: &Test, id: &str, script: &str) -> Value {
    let mut cfg = t.spec(id, &["sh", "-c", script]);
    cfg["process"]["terminal"] = json!(true);
    cfg
}

/// `create --console-socket` of `cfg`; returns the received master.
#[track_caller]
fn create_with_console(t: &Test, id: &str, cfg: &Value) -> Pty {
    let sock = ConsoleSocket::bind(t, id);
    let o = t.create_with(id, cfg, &["--console-socket", &sock.path_str()]);
    let o = o.ok("create --console-socket");
    let (pty, _name) = sock
        .recv_master(T)
        .unwrap_or_else(|e| panic!("{e}\ncreate: {}", o.all()));
    pty
}

#[test]
fn console_socket_receives_pty_master_with_stdio() {
    let t = test_env!();
    let id = t.id();
    let script = "tty; if [ -t 0 ]; then echo stdin-is-tty; fi; \
                  if [ -t 1 ]; then echo stdout-is-tty; fi; \
                  echo hello; read x; echo got:$x; echo err-line >&2";
    let cfg = tty_spec(&t, &id, script);
    let mut pty = create_with_console(&t, &id, &cfg);
    // Nothing runs before start.
    assert!(
        !pty.read_until(Duration::from_millis(200), |s| s.contains("hello")),
        "output before start: {}",
        pty.seen
    );
    t.rt(&["start", &id]).ok("start");
    pty.expect("hello\n", T);
    let first = pty.seen.lines().next().unwrap_or("");
    assert_eq!(first, "/dev/pts/0", "tty output:\n{}", pty.seen);
    assert!(pty.seen.contains("stdin-is-tty\n"), "{}", pty.seen);
    assert!(pty.seen.contains("stdout-is-tty\n"), "{}", pty.seen);

    pty.send("world\n");
    pty.expect("got:world\n", T);
    // stderr is the terminal too.
    pty.expect("err-line\n", T);
    assert!(
        pty.read_to_eof(T),
        "the terminal was not closed after the process exited; seen:\n{}",
        pty.seen
    );
    t.wait_status(&id, "stopped");
    // Nothing went to the runtime's own stdio.
    assert!(
        !t.container_stdout(&id).contains("hello"),
        "container output went to the runtime's stdout: {}",
        t.container_stdout(&id)
    );
    assert!(!t.container_stderr(&id).contains("err-line"));
    t.rt(&["delete", &id]).ok("delete");
    t.assert_gone(&id);
}

#[test]
fn console_size_is_applied() {
    let t = test_env!();
    let id = t.id();
    let mut cfg = tty_spec(&t, &id, "stty size; echo done");
    cfg["process"]["consoleSize"] = json!({"height": 37, "width": 101});
    let mut pty = create_with_console(&t, &id, &cfg);
    t.rt(&["start", &id]).ok("start");
    pty.expect("done\n", T);
    assert_eq!(
        pty.seen.lines().next().unwrap_or("").trim(),
        "37 101",
        "stty size with consoleSize 37x101:\n{}",
        pty.seen
    );

    // The receiver of the master may resize the terminal.
    let id = t.id();
    let cfg = tty_spec(&t, &id, "read x; stty size; echo done");
    let mut pty = create_with_console(&t, &id, &cfg);
    t.rt(&["start", &id]).ok("start");
    pty.set_size(12, 34);
    pty.send("go\n");
    pty.expect("done\n", T);
    assert!(
        pty.seen.contains("\n12 34\n"),
        "after resize:\n{}",
        pty.seen
    );
}

#[test]
fn dev_console_is_the_terminal() {
    let t = test_env!();
    let id = t.id();
    let script = "if [ -c /dev/console ]; then echo console-is-chardev; fi; \
                  stat -L -c 'console %t:%T' /dev/console; stat -L -c 'tty %t:%T' $(tty); \
                  echo via-console > /dev/console; echo done";
    let cfg = tty_spec(&t, &id, script);
    let mut pty = create_with_console(&t, &id, &cfg);
    t.rt(&["start", &id]).ok("start");
    pty.expect("done\n", T);
    assert!(pty.seen.contains("console-is-chardev\n"), "{}", pty.seen);
    let field = |k: &str| {
        pty.seen
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no {k:?} line in:\n{}", pty.seen))
    };
    let console = field("console ");
    let tty = field("tty ");
    assert_eq!(
        console, tty,
        "/dev/console ({console}) is not the process's terminal ({tty})"
    );
    // 136 (0x88) is the first major of Unix98 pty slaves.
    assert!(
        console.starts_with("88:"),
        "/dev/console is not a pty: {console}"
    );
    assert!(pty.seen.contains("via-console\n"), "{}", pty.seen);
}

#[test]
fn exec_tty_gets_its_own_pty() {
    let t = test_env!();
    let id = t.id();
    let cfg = tty_spec(&t, &id, "tty > /out/init-tty; exec sleep 1000");
    let mut init_pty = create_with_console(&t, &id, &cfg);
    t.rt(&["start", &id]).ok("start");
    let init_tty = t.wait_out("init-tty").trim().to_string();
    assert_eq!(init_tty, "/dev/pts/0");

    let sock = ConsoleSocket::bind(&t, "exec");
    let script = "tty; if [ -t 0 ]; then echo stdin-is-tty; fi; read x; echo got:$x";
    t.rt_detached(
        "exec",
        &[
            "exec",
            "--detach",
            "--tty",
            "--console-socket",
            &sock.path_str(),
            &id,
            "sh",
            "-c",
            script,
        ],
    )
    .ok("exec --detach --tty --console-socket");
    let (mut pty, _) = sock.recv_master(T).unwrap();
    assert_ne!(
        pty.number(),
        init_pty.number(),
        "exec got the init's pty master"
    );
    pty.expect("stdin-is-tty\n", T);
    let exec_tty = pty.seen.lines().next().unwrap_or("").to_string();
    assert!(
        exec_tty.starts_with("/dev/pts/") && exec_tty != init_tty,
        "exec's tty {exec_tty:?} (init has {init_tty})\n{}",
        pty.seen
    );
    assert_eq!(exec_tty, format!("/dev/pts/{}", pty.number()));
    pty.send("exec-input\n");
    pty.expect("got:exec-input\n", T);
    assert!(pty.read_to_eof(T), "exec pty not closed: {}", pty.seen);
    // Nothing of it showed up on the init's terminal, and the init lives on.
    init_pty.read_until(Duration::from_millis(100), |_| false);
    assert!(
        !init_pty.seen.contains("got:"),
        "exec output on the init's terminal: {}",
        init_pty.seen
    );
    assert_eq!(t.status(&id), "running");

    // exec --tty into a container without a terminal works as well.
    let id2 = t.id();
    let cfg = t.spec(&id2, &["sleep", "1000"]);
    t.create_and_start(&id2, &cfg);
    let sock = ConsoleSocket::bind(&t, "exec2");
    t.rt_detached(
        "exec2",
        &[
            "exec",
            "--detach",
            "--tty",
            "--console-socket",
            &sock.path_str(),
            &id2,
            "sh",
            "-c",
            "tty; [ -t 0 ] && echo stdin-is-tty",
        ],
    )
    .ok("exec --tty into a container without terminal");
    let (mut pty, _) = sock.recv_master(T).unwrap();
    pty.expect("stdin-is-tty\n", T);
    assert_eq!(pty.seen.lines().next(), Some("/dev/pts/0"), "{}", pty.seen);
}

#[test]
fn terminal_without_console_socket_fails_cleanly() {
    let t = test_env!();
    let id = t.id();
    let cfg = tty_spec(&t, &id, "echo ran > /out/marker");
    let o = t.create(&id, &cfg);
    assert!(
        !o.success(),
        "create with terminal and no --console-socket succeeded: {}",
        o.all()
    );
    assert!(!o.stderr.trim().is_empty(), "no error message: {}", o.all());
    t.assert_gone(&id);
    std::thread::sleep(Duration::from_millis(100));
    assert!(!t.out.join("marker").exists(), "the process ran");

    // Likewise a detached exec --tty without a socket; the container and its
    // process set are unaffected.
    let (id, init) = t.started(&["sleep", "1000"], |_| {});
    let ps = |t: &Test| -> Vec<i64> {
        let o = t.rt(&["ps", "--format", "json", &id]).ok("ps");
        serde_json::from_str(&o.stdout).expect("ps json")
    };
    let before = ps(&t);
    let o = t.rt_detached(
        "exec",
        &[
            "exec",
            "--detach",
            "--tty",
            &id,
            "sh",
            "-c",
            "echo ran > /out/exec-marker",
        ],
    );
    assert!(
        !o.success(),
        "exec --detach --tty without --console-socket succeeded: {}",
        o.all()
    );
    assert!(!o.stderr.trim().is_empty(), "no error message: {}", o.all());
    std::thread::sleep(Duration::from_millis(100));
    assert!(!t.out.join("exec-marker").exists(), "the exec process ran");
    assert_eq!(ps(&t), before, "processes changed");
    assert!(pid_alive(init));
    assert_eq!(t.status(&id), "running");
}

/// runc refuses `--console-socket` when no terminal is asked for ("cannot use
/// console socket if runc will not detach or allocate tty"); the spec is
/// silent, so mirror runc: fail, leave nothing, and never connect.
#[test]
fn console_socket_without_terminal_is_rejected() {
    let t = test_env!();
    let id = t.id();
    let cfg = t.spec(&id, &["sh", "-c", "echo ran > /out/marker"]);
    let sock = ConsoleSocket::bind(&t, "sock");
    let o = t.create_with(&id, &cfg, &["--console-socket", &sock.path_str()]);
    assert!(
        !o.success(),
        "create with --console-socket and terminal false succeeded: {}",
        o.all()
    );
    assert!(!o.stderr.trim().is_empty(), "no error message: {}", o.all());
    t.assert_gone(&id);
    assert!(!t.out.join("marker").exists(), "the process ran");
}

/// `run` in the foreground with `terminal: true` and no socket: the runtime
/// gives the container a pty and copies between it and its own terminal
/// (runc does this for `runc run` from a shell).
#[test]
fn foreground_run_proxies_its_terminal() {
    let t = test_env!();
    let id = t.id();
    let cfg = tty_spec(
        &t,
        &id,
        "tty; [ -t 0 ] && echo stdin-is-tty; read x; echo got:$x; exit 3",
    );
    let b = t.write_bundle(&id, &cfg);
    let (mut host_pty, slave) = Pty::open_host();
    let open = || {
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&slave)
            .unwrap()
    };
    let mut child = t
        .rt_cmd(&["run", "--bundle", &b.to_string_lossy(), &id])
        .stdin(Stdio::from(open()))
        .stdout(Stdio::from(open()))
        .stderr(Stdio::from(open()))
        .spawn()
        .unwrap();
    let ok = host_pty.read_until(T, |s| s.contains("stdin-is-tty"));
    let mut exited = false;
    if ok {
        host_pty.send("typed\n");
        host_pty.read_until(T, |s| s.contains("got:typed"));
        exited = wait_until(T, || child.try_wait().unwrap().is_some());
    }
    if !exited {
        let _ = child.kill();
    }
    let status = child.wait().unwrap();
    // Drain what is left before judging.
    host_pty.read_until(Duration::from_millis(100), |_| false);
    assert!(ok, "no output on the terminal:\n{}", host_pty.seen);
    assert!(
        host_pty.seen.contains("got:typed"),
        "input did not reach the process:\n{}",
        host_pty.seen
    );
    assert!(exited, "run did not exit after its process did");
    assert_eq!(status.code(), Some(3), "{}", host_pty.seen);
    let tty_line = host_pty
        .seen
        .lines()
        .find(|l| l.starts_with("/dev/"))
        .unwrap_or("");
    assert_eq!(
        tty_line,
        "/dev/pts/0",
        "the container must get its own pty (not the caller's {}):\n{}",
        slave.display(),
        host_pty.seen
    );
    t.assert_gone(&id);
}
