//! Docker's default profile, converted for Docker's default capabilities, in the kernel. The
//! test runs as root with every capability, so an EPERM here comes from the filter.

use std::ffi::CStr;
use std::ptr::null;

use libc::{c_long, CLONE_NEWNS, CLONE_NEWUSER, EINVAL, ENOENT, ENOSYS, EPERM, SIGCHLD};

use crate::child::{errno, getpid, run_filtered, sys, Exit, Outcome};

const DEFAULT_CAPS: &[&str] = kapsel_seccomp::DOCKER_DEFAULT_CAPABILITIES;

/// A mount target that does not exist: mount fails with ENOENT unless the filter stops it.
const MISSING_TARGET: &CStr = c"/nonexistent-kapsel-seccomp-target";

fn caps(extra: &[&str]) -> Vec<String> {
    DEFAULT_CAPS
        .iter()
        .chain(extra)
        .map(|c| c.to_string())
        .collect()
}

fn syscall(nr: c_long, args: [u64; 5]) -> i64 {
    // SAFETY: every call below passes integers or pointers to live C strings (or null).
    sys(unsafe { libc::syscall(nr, args[0], args[1], args[2], args[3], args[4]) })
}

fn unshare(flags: i32) -> i64 {
    syscall(libc::SYS_unshare, [flags as u64, 0, 0, 0, 0])
}

fn mount_tmpfs() -> i64 {
    let none = c"none".as_ptr() as u64;
    let tmpfs = c"tmpfs".as_ptr() as u64;
    syscall(
        libc::SYS_mount,
        [none, MISSING_TARGET.as_ptr() as u64, tmpfs, 0, 0],
    )
}

/// clone3 with no arguments: EINVAL from the kernel, ENOSYS from the profile.
fn clone3() -> i64 {
    syscall(libc::SYS_clone3, [null::<u8>() as u64, 0, 0, 0, 0])
}

/// A raw clone that, if it succeeds, behaves like fork: the copy exits at once.
fn clone(flags: i32) -> i64 {
    let ret = syscall(libc::SYS_clone, [(flags | SIGCHLD) as u64, 0, 0, 0, 0]);
    match ret {
        // SAFETY: the new process leaves immediately.
        0 => unsafe { libc::_exit(0) },
        pid if pid > 0 => {
            // SAFETY: reaps the child just created.
            unsafe { libc::waitpid(pid as i32, std::ptr::null_mut(), 0) };
            0
        }
        err => err,
    }
}

fn run_docker_default(extra_caps: &[&str], probe: impl FnOnce(&crate::child::Probe)) -> Outcome {
    let filter = kapsel_seccomp::docker_default(&caps(extra_caps)).expect("convert");
    run_filtered(&filter, probe)
}

#[test]
fn blocks_what_needs_capabilities_docker_does_not_grant() {
    let outcome = run_docker_default(&[], |p| {
        p.report(unshare(CLONE_NEWUSER));
        p.report(unshare(CLONE_NEWNS));
        p.report(mount_tmpfs());
        // keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0)
        p.report(syscall(libc::SYS_keyctl, [0, -3i64 as u64, 0, 0, 0]));
        p.report(syscall(libc::SYS_bpf, [0, 0, 0, 0, 0]));
        // syslog(SYSLOG_ACTION_SIZE_BUFFER): CAP_SYSLOG only
        p.report(syscall(libc::SYS_syslog, [10, 0, 0, 0, 0]));
        p.report(clone(CLONE_NEWUSER));
        p.report(syscall(
            libc::SYS_socket,
            [libc::AF_VSOCK as u64, 1, 0, 0, 0],
        ));
        p.report(syscall(libc::SYS_personality, [0x1234, 0, 0, 0, 0]));
        p.report(clone3());
    });
    assert_eq!(outcome.exit, Exit::Code(0));
    let mut expected = vec![errno(EPERM); 9];
    expected.push(errno(ENOSYS));
    assert_eq!(outcome.reports, expected);
}

#[test]
fn allows_ordinary_programs() {
    let outcome = run_docker_default(&[], |p| {
        p.report(i64::from(getpid() > 0));
        let status = std::fs::read_to_string("/proc/self/status");
        p.report(i64::from(status.is_ok_and(|s| s.contains("Seccomp:\t2"))));
        // glibc creates threads with clone3, gets ENOSYS and falls back to clone without
        // namespace flags, which the profile allows.
        p.report(std::thread::spawn(|| 7).join().unwrap_or(0));
        p.report(clone(0));
        p.report(syscall(libc::SYS_personality, [0xffff_ffff, 0, 0, 0, 0]).min(0));
        let args = [
            c"/bin/sh".as_ptr(),
            c"-c".as_ptr(),
            c"exit 3".as_ptr(),
            null(),
        ];
        // SAFETY: argv is NULL-terminated and made of live C strings; envp is empty.
        unsafe { libc::execve(args[0], args.as_ptr(), [null()].as_ptr()) };
        p.report(sys(-1));
    });
    assert_eq!(outcome.reports, [1, 1, 7, 0, 0], "exec must not return");
    assert_eq!(outcome.exit, Exit::Code(3), "the exec'd shell ran");
}

#[test]
fn cap_sys_admin_lets_mount_through_the_filter() {
    let outcome = run_docker_default(&["CAP_SYS_ADMIN"], |p| {
        p.report(mount_tmpfs());
        p.report(unshare(CLONE_NEWNS));
        p.report(clone3());
    });
    assert_eq!(outcome.exit, Exit::Code(0));
    // The kernel's own answers: no such mount point, success, and clone3's invalid size.
    assert_eq!(outcome.reports, [errno(ENOENT), 0, errno(EINVAL)]);
}

#[test]
fn every_capability_still_builds() {
    let all: Vec<&str> = [
        "CAP_SYS_ADMIN",
        "CAP_SYS_PTRACE",
        "CAP_SYS_BOOT",
        "CAP_SYS_MODULE",
        "CAP_SYS_PACCT",
        "CAP_SYS_RAWIO",
        "CAP_SYS_TIME",
        "CAP_SYS_TTY_CONFIG",
        "CAP_SYS_NICE",
        "CAP_SYSLOG",
        "CAP_BPF",
        "CAP_PERFMON",
        "CAP_DAC_READ_SEARCH",
    ]
    .to_vec();
    let outcome = run_docker_default(&all, |p| {
        p.report(syscall(libc::SYS_syslog, [10, 0, 0, 0, 0]).min(1));
    });
    assert_eq!(outcome.exit, Exit::Code(0));
    assert_eq!(outcome.reports, [1], "syslog allowed with CAP_SYSLOG");
}
