//! File descriptors: nothing the runtime's caller (or the runtime itself)
//! had open leaks into the container, `--preserve-fds N` passes fds 3.. on,
//! and socket activation (`LISTEN_FDS`) works as in runc.

mod common;

use std::fs;
use std::os::fd::AsRawFd;
use std::process::Command;

use common::{
    fds_from_ls, host_fds, inherit_fds, run_cmd, run_cmd_to_files, runtime, Test, RT_TIMEOUT,
};

/// A file in the test dir with `content`, opened for reading (O_CLOEXEC in
/// this process; [`inherit_fds`] gives it to the runtime without).
fn file_with(t: &Test, name: &str, content: &str) -> fs::File {
    let p = t.dir.join(name);
    fs::write(&p, content).unwrap();
    fs::File::open(&p).unwrap()
}

/// `ls -l /proc/self/fd` separated from what comes before it.
const LS_FDS: &str = "echo ---fds---; ls -l /proc/self/fd";

fn split_fds(stdout: &str) -> (&str, Vec<u32>) {
    let (before, ls) = stdout
        .split_once("---fds---\n")
        .unwrap_or_else(|| panic!("no fd listing in output:\n{stdout}"));
    (before, fds_from_ls(ls))
}

#[test]
fn caller_fds_do_not_leak_into_run() {
    let t = test_env!();
    let id = t.id();
    let cfg = t.spec(&id, &["sh", "-c", LS_FDS]);
    let b = t.write_bundle(&id, &cfg);
    let leak = file_with(&t, "leak", "secret");
    let mut cmd = t.rt_cmd(&["run", "--bundle", &b.to_string_lossy(), &id]);
    inherit_fds(&mut cmd, &[(leak.as_raw_fd(), 7), (leak.as_raw_fd(), 3)]);
    let o = run_cmd(&mut cmd, RT_TIMEOUT).ok("run with inherited fds 3 and 7");
    let (_, fds) = split_fds(&o.stdout);
    assert_eq!(fds, vec![0, 1, 2], "fds in the container:\n{}", o.stdout);
    t.assert_gone(&id);
}

#[test]
fn caller_fds_do_not_leak_into_created_container() {
    let t = test_env!();
    let id = t.id();
    let cfg = t.spec(&id, &["sleep", "1000"]);
    let b = t.write_bundle(&id, &cfg);
    let leak = file_with(&t, "leak", "secret");
    let (so, se) = t.stdio_files(&id);
    let mut cmd = t.rt_cmd(&["create", "--bundle", &b.to_string_lossy(), &id]);
    inherit_fds(&mut cmd, &[(leak.as_raw_fd(), 7)]);
    run_cmd_to_files(&mut cmd, &so, &se, RT_TIMEOUT).ok("create with inherited fd 7");
    let mut cmd = t.rt_cmd(&["start", &id]);
    inherit_fds(&mut cmd, &[(leak.as_raw_fd(), 8)]);
    run_cmd(&mut cmd, RT_TIMEOUT).ok("start with inherited fd 8");
    let pid = t.pid(&id);
    // The process is exec'd by the time start returns (runc) or shortly after.
    let mut fds = Vec::new();
    let ok = common::wait_until(std::time::Duration::from_secs(5), || {
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        fds = host_fds(pid);
        cmdline == b"sleep\x001000\x00"
    });
    assert!(ok, "init {pid} never exec'd sleep 1000");
    let nums: Vec<u32> = fds.iter().map(|(n, _)| *n).collect();
    assert_eq!(nums, vec![0, 1, 2], "fds of the container init: {fds:?}");
    assert_eq!(fds[0].1, "/dev/null", "{fds:?}");
    assert_eq!(fds[1].1, so.to_string_lossy(), "{fds:?}");
    assert_eq!(fds[2].1, se.to_string_lossy(), "{fds:?}");
}

#[test]
fn preserve_fds_passes_fds_on() {
    let t = test_env!();
    for (n, want) in [(1u32, vec![0, 1, 2, 3]), (2, vec![0, 1, 2, 3, 4])] {
        // Fresh open files: `cat` moves the shared offset.
        let three = file_with(&t, "three", "content-of-3");
        let four = file_with(&t, "four", "content-of-4");
        let id = t.id();
        let script = format!("cat <&3; echo; {LS_FDS}");
        let cfg = t.spec(&id, &["sh", "-c", &script]);
        let b = t.write_bundle(&id, &cfg);
        let n_s = n.to_string();
        let mut cmd = t.rt_cmd(&[
            "run",
            "--preserve-fds",
            &n_s,
            "--bundle",
            &b.to_string_lossy(),
            &id,
        ]);
        inherit_fds(
            &mut cmd,
            &[
                (three.as_raw_fd(), 3),
                (four.as_raw_fd(), 4),
                (four.as_raw_fd(), 9),
            ],
        );
        let o = run_cmd(&mut cmd, RT_TIMEOUT).ok(&format!("run --preserve-fds {n}"));
        let (before, fds) = split_fds(&o.stdout);
        assert_eq!(before.trim(), "content-of-3", "{}", o.all());
        assert_eq!(fds, want, "--preserve-fds {n}:\n{}", o.stdout);
    }
}

#[test]
fn exec_has_no_leaked_fds_and_preserves_fds() {
    let t = test_env!();
    let (id, _) = t.started(&["sleep", "1000"], |_| {});
    let leak = file_with(&t, "leak", "secret");
    let mut cmd = t.rt_cmd(&["exec", &id, "sh", "-c", LS_FDS]);
    inherit_fds(&mut cmd, &[(leak.as_raw_fd(), 3), (leak.as_raw_fd(), 7)]);
    let o = run_cmd(&mut cmd, RT_TIMEOUT).ok("exec with inherited fds");
    let (_, fds) = split_fds(&o.stdout);
    assert_eq!(
        fds,
        vec![0, 1, 2],
        "fds of the exec'd process:\n{}",
        o.stdout
    );

    let three = file_with(&t, "three", "exec-content-of-3");
    let script = format!("cat <&3; echo; {LS_FDS}");
    let mut cmd = t.rt_cmd(&["exec", "--preserve-fds", "1", &id, "sh", "-c", &script]);
    inherit_fds(&mut cmd, &[(three.as_raw_fd(), 3), (leak.as_raw_fd(), 4)]);
    let o = run_cmd(&mut cmd, RT_TIMEOUT).ok("exec --preserve-fds 1");
    let (before, fds) = split_fds(&o.stdout);
    assert_eq!(before.trim(), "exec-content-of-3", "{}", o.all());
    assert_eq!(fds, vec![0, 1, 2, 3], "{}", o.stdout);

    // A detached exec'd process, seen from the host.
    let pf = t.dir.join("exec.pid");
    let (so, se) = t.stdio_files("exec-detach");
    let mut cmd = t.rt_cmd(&[
        "exec",
        "--detach",
        "--pid-file",
        &pf.to_string_lossy(),
        &id,
        "sleep",
        "999",
    ]);
    inherit_fds(&mut cmd, &[(leak.as_raw_fd(), 7)]);
    run_cmd_to_files(&mut cmd, &so, &se, RT_TIMEOUT).ok("exec --detach");
    let pid: i64 = fs::read_to_string(&pf).unwrap().trim().parse().unwrap();
    let fds = host_fds(pid);
    let nums: Vec<u32> = fds.iter().map(|(n, _)| *n).collect();
    assert_eq!(nums, vec![0, 1, 2], "fds of the detached exec: {fds:?}");
}

/// The runtime started the way systemd starts a socket-activated service:
/// LISTEN_FDS=1 and LISTEN_PID=<its own pid>, with the socket at fd 3.
fn socket_activated(t: &Test, listen_pid: Option<&str>, args: &[&str]) -> Command {
    let mut cmd = Command::new("/bin/sh");
    let pid = listen_pid.unwrap_or("$$");
    cmd.arg("-c")
        .arg(format!("export LISTEN_PID={pid}; exec \"$0\" \"$@\""))
        .arg(runtime())
        .arg("--root")
        .arg(&t.root)
        .args(args)
        .env("LISTEN_FDS", "1");
    cmd
}

#[test]
fn listen_fds_passes_fd_3() {
    let t = test_env!();
    let id = t.id();
    let script =
        format!("cat <&3; echo; echo LISTEN_FDS=$LISTEN_FDS LISTEN_PID=$LISTEN_PID; {LS_FDS}");
    let cfg = t.spec(&id, &["sh", "-c", &script]);
    let b = t.write_bundle(&id, &cfg);
    let sock = file_with(&t, "activation", "activation-fd");
    let mut cmd = socket_activated(&t, None, &["run", "--bundle", &b.to_string_lossy(), &id]);
    inherit_fds(&mut cmd, &[(sock.as_raw_fd(), 3)]);
    let o = run_cmd(&mut cmd, RT_TIMEOUT).ok("run with LISTEN_FDS=1");
    let (before, fds) = split_fds(&o.stdout);
    let lines: Vec<&str> = before.lines().collect();
    assert_eq!(lines.first().copied(), Some("activation-fd"), "{}", o.all());
    assert_eq!(fds, vec![0, 1, 2, 3], "{}", o.stdout);
    // As runc (and sd_listen_fds in the container expects): the process is
    // told that it got one fd and that it is the one meant (pid 1).
    assert_eq!(
        lines.get(1).copied(),
        Some("LISTEN_FDS=1 LISTEN_PID=1"),
        "{}",
        o.stdout
    );
}

/// LISTEN_FDS is meant for the process whose pid is LISTEN_PID; runc (via
/// go-systemd's activation.Files) ignores it otherwise.
#[test]
fn listen_fds_for_another_pid_is_ignored() {
    let t = test_env!();
    let id = t.id();
    let cfg = t.spec(&id, &["sh", "-c", LS_FDS]);
    let b = t.write_bundle(&id, &cfg);
    let sock = file_with(&t, "activation", "activation-fd");
    let mut cmd = socket_activated(
        &t,
        Some("1"),
        &["run", "--bundle", &b.to_string_lossy(), &id],
    );
    inherit_fds(&mut cmd, &[(sock.as_raw_fd(), 3)]);
    let o = run_cmd(&mut cmd, RT_TIMEOUT).ok("run with LISTEN_FDS=1 LISTEN_PID=1");
    let (_, fds) = split_fds(&o.stdout);
    assert_eq!(fds, vec![0, 1, 2], "{}", o.stdout);
}

/// runc applies socket activation to the container's init only (`run` and
/// `create`); `exec` does not pass LISTEN_FDS fds on.
#[test]
fn exec_ignores_listen_fds() {
    let t = test_env!();
    let (id, _) = t.started(&["sleep", "1000"], |_| {});
    let sock = file_with(&t, "activation", "activation-fd");
    let mut cmd = socket_activated(&t, None, &["exec", &id, "sh", "-c", LS_FDS]);
    inherit_fds(&mut cmd, &[(sock.as_raw_fd(), 3)]);
    let o = run_cmd(&mut cmd, RT_TIMEOUT).ok("exec with LISTEN_FDS=1");
    let (_, fds) = split_fds(&o.stdout);
    assert_eq!(fds, vec![0, 1, 2], "{}", o.stdout);
}
