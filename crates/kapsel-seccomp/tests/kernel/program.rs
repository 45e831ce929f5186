//! Compiled programs (what the runtime caches and loads with one syscall) behave exactly
//! as the filter they were compiled from.

use libc::{CLONE_NEWUSER, EPERM};
use serde_json::json;

use kapsel_seccomp::{build, docker_default, Program};

use crate::child::{errno, fresh_dir, getpid, in_child, mkdir, seccomp, sys, Exit};

/// Loads `program` in a child, after no_new_privs, and returns what `probe` got.
fn run_program(program: &Program, probe: impl FnOnce() -> i64) -> i64 {
    let (read_end, write_end) = nix::unistd::pipe().expect("pipe");
    let exit = in_child(move || {
        // SAFETY: prctl with constant arguments.
        unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        if program.load().is_err() {
            return 3;
        }
        let value = probe();
        nix::unistd::write(&write_end, &value.to_ne_bytes()).expect("report");
        0
    });
    assert_eq!(
        exit,
        Exit::Code(0),
        "the child loads the program and reports"
    );
    let mut bytes = [0u8; 8];
    nix::unistd::read(&read_end, &mut bytes).expect("read report");
    i64::from_ne_bytes(bytes)
}

#[test]
fn a_compiled_program_enforces_its_rules() {
    let filter = seccomp(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
    }));
    let program = build(&filter).unwrap().compile().unwrap();
    let stored = Program::from_bytes(&program.to_bytes()).expect("round trip");
    let dir = fresh_dir("program");
    assert_eq!(run_program(&stored, || mkdir(&dir)), errno(EPERM));
    assert!(run_program(&stored, getpid) > 0, "other syscalls pass");
}

#[test]
fn docker_default_compiled_refuses_unshare() {
    let caps: Vec<String> = ["CAP_CHOWN", "CAP_SETUID", "CAP_SETGID", "CAP_KILL"]
        .iter()
        .map(|c| c.to_string())
        .collect();
    let program = build(&docker_default(&caps).unwrap())
        .unwrap()
        .compile()
        .unwrap();
    // SAFETY: unshare with a constant flag, in the child.
    let unshare_user = || sys(unsafe { libc::syscall(libc::SYS_unshare, CLONE_NEWUSER) });
    assert_eq!(run_program(&program, unshare_user), errno(EPERM));
}

#[test]
fn a_notifying_program_returns_the_listener_fd() {
    let filter = seccomp(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/nonexistent/agent.sock",
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]
    }));
    let program = build(&filter).unwrap().compile().unwrap();
    let exit = in_child(move || {
        // SAFETY: prctl with constant arguments.
        unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        match program.load() {
            Ok(Some(_fd)) => 0,
            _ => 1,
        }
    });
    assert_eq!(exit, Exit::Code(0));
}
