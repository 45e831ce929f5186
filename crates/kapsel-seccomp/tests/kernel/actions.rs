//! Default and per-syscall actions, flags, architectures.

use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

use libc::{EACCES, ENOSYS, EPERM};
use nix::sys::signal::Signal;
use serde_json::json;

use kapsel_seccomp::{install, SeccompError};

use crate::child::{
    errno, fresh_dir, getpid, in_child, mkdir, run_filtered, seccomp, sys, Exit, Outcome,
    RUNTIME_BASICS,
};

/// mkdir under a rule with `action` (and `errno_ret`), then getpid.
fn mkdir_under(action: &str, errno_ret: Option<u32>, tag: &str) -> (Outcome, bool) {
    let dir = fresh_dir(tag);
    let mut rule = json!({ "names": ["mkdir"], "action": action });
    if let Some(ret) = errno_ret {
        rule["errnoRet"] = json!(ret);
    }
    let filter = seccomp(json!({ "defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule] }));
    let outcome = run_filtered(&filter, |p| {
        p.report(mkdir(&dir));
        p.report(getpid());
    });
    let path = Path::new(dir.to_str().unwrap());
    let created = path.exists();
    let _ = std::fs::remove_dir(path);
    (outcome, created)
}

#[test]
fn errno_rule_fails_the_syscall_with_eperm_by_default() {
    let (outcome, created) = mkdir_under("SCMP_ACT_ERRNO", None, "errno");
    assert_eq!(outcome.exit, Exit::Code(0));
    assert_eq!(outcome.reports[0], errno(EPERM));
    assert!(outcome.reports[1] > 0, "getpid still works");
    assert!(!created);
}

#[test]
fn errno_ret_picks_the_errno() {
    let (outcome, created) = mkdir_under("SCMP_ACT_ERRNO", Some(38), "enosys");
    assert_eq!(outcome.reports[0], errno(ENOSYS));
    assert!(!created);
}

#[test]
fn kill_actions_end_the_process_with_sigsys() {
    for action in [
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_THREAD",
    ] {
        let (outcome, created) = mkdir_under(action, None, "kill");
        assert_eq!(outcome.exit, Exit::Signal(Signal::SIGSYS), "{action}");
        assert!(
            outcome.reports.is_empty(),
            "{action}: nothing after mkdir ran"
        );
        assert!(!created);
    }
}

#[test]
fn trace_without_a_tracer_is_enosys() {
    let (outcome, created) = mkdir_under("SCMP_ACT_TRACE", None, "trace");
    assert_eq!(outcome.reports[0], errno(ENOSYS));
    assert!(!created);
}

#[test]
fn log_allows_the_syscall() {
    let (outcome, created) = mkdir_under("SCMP_ACT_LOG", None, "log");
    assert_eq!(outcome.reports[0], 0);
    assert!(created);
}

/// si_code of the last SIGSYS the trap test's handler saw.
static TRAP_CODE: AtomicI32 = AtomicI32::new(0);

extern "C" fn record_sigsys(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    TRAP_CODE.store(unsafe { (*info).si_code }, Ordering::SeqCst);
}

#[test]
fn trap_delivers_a_seccomp_sigsys() {
    /// si_code of a SIGSYS raised by a seccomp filter (SYS_SECCOMP in <asm/siginfo.h>).
    const SYS_SECCOMP: i32 = 1;
    let dir = fresh_dir("trap");
    let filter = seccomp(json!({ "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{ "names": ["mkdir"], "action": "SCMP_ACT_TRAP" }] }));
    let outcome = run_filtered(&filter, |p| {
        let action = nix::sys::signal::SigAction::new(
            nix::sys::signal::SigHandler::SigAction(record_sigsys),
            nix::sys::signal::SaFlags::SA_SIGINFO,
            nix::sys::signal::SigSet::empty(),
        );
        // SAFETY: the handler only stores to an atomic.
        unsafe { nix::sys::signal::sigaction(Signal::SIGSYS, &action) }.unwrap();
        mkdir(&dir);
        p.report(TRAP_CODE.load(Ordering::SeqCst).into());
    });
    assert_eq!(outcome.exit, Exit::Code(0));
    assert_eq!(outcome.reports, [i64::from(SYS_SECCOMP)]);
}

#[test]
fn kill_thread_spares_the_other_threads() {
    let outcome = thread_hits("SCMP_ACT_KILL_THREAD");
    assert_eq!(outcome.exit, Exit::Code(0));
    assert_eq!(outcome.reports, [1]);
    let outcome = thread_hits("SCMP_ACT_KILL_PROCESS");
    assert_eq!(outcome.exit, Exit::Signal(Signal::SIGSYS));
    assert!(outcome.reports.is_empty());
}

/// A second thread calls mkdir under `action`; the main thread reports 1 once it is the
/// only thread left.
fn thread_hits(action: &str) -> Outcome {
    let dir = fresh_dir("thread");
    let filter = seccomp(json!({ "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{ "names": ["mkdir"], "action": action }] }));
    run_filtered(&filter, move |p| {
        std::thread::spawn(move || mkdir(&dir));
        for _ in 0..500 {
            if std::fs::read_dir("/proc/self/task").unwrap().count() == 1 {
                p.report(1);
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    })
}

#[test]
fn default_errno_with_an_allow_list() {
    let dir = fresh_dir("allowlist");
    let mut allowed: Vec<&str> = RUNTIME_BASICS.to_vec();
    allowed.push("getpid");
    let filter = seccomp(
        json!({ "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": EACCES,
        "syscalls": [{ "names": allowed, "action": "SCMP_ACT_ALLOW" }] }),
    );
    let outcome = run_filtered(&filter, |p| {
        p.report(getpid());
        p.report(mkdir(&dir));
        // SAFETY: getppid has no arguments.
        p.report(sys(unsafe { libc::syscall(libc::SYS_getppid) }));
    });
    assert_eq!(outcome.exit, Exit::Code(0));
    assert!(outcome.reports[0] > 0);
    assert_eq!(outcome.reports[1..], [errno(EACCES), errno(EACCES)]);
}

#[test]
fn unknown_syscall_names_are_skipped() {
    let dir = fresh_dir("unknown");
    let filter = seccomp(json!({ "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{ "names": ["kapsel_no_such_syscall", "mkdir"], "action": "SCMP_ACT_ERRNO" }] }));
    let outcome = run_filtered(&filter, |p| p.report(mkdir(&dir)));
    assert_eq!(outcome.reports, [errno(EPERM)]);
}

#[test]
fn filter_leaves_no_new_privs_unset() {
    let filter = seccomp(json!({ "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{ "names": ["mkdir"], "action": "SCMP_ACT_ERRNO" }] }));
    let outcome = run_filtered(&filter, |p| {
        // SAFETY: PR_GET_NO_NEW_PRIVS takes no pointers.
        p.report(sys(unsafe {
            libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
        }
        .into()));
        p.report(i64::from(p.notify_fd.is_some()));
    });
    assert_eq!(outcome.reports, [0, 0], "no NNP, no notify fd");
}

#[test]
fn without_no_new_privs_loading_needs_cap_sys_admin() {
    let filter = seccomp(json!({ "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{ "names": ["mkdir"], "action": "SCMP_ACT_ERRNO" }] }));
    let exit = in_child(|| {
        // From root to nobody: every capability goes.
        // SAFETY: setuid and prctl take plain integers.
        if unsafe { libc::setuid(65534) } != 0 {
            return 10;
        }
        if !matches!(install(&filter), Err(SeccompError::Load(_))) {
            return 11;
        }
        // SAFETY: as above.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return 12;
        }
        match install(&filter) {
            Ok(None) => 0,
            _ => 13,
        }
    });
    assert_eq!(exit, Exit::Code(0));
}

#[test]
fn supported_flags_load() {
    let dir = fresh_dir("flags");
    let filter = seccomp(json!({ "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
        "syscalls": [{ "names": ["mkdir"], "action": "SCMP_ACT_ERRNO" }] }));
    let outcome = run_filtered(&filter, |p| p.report(mkdir(&dir)));
    assert_eq!(outcome.exit, Exit::Code(0));
    assert_eq!(outcome.reports, [errno(EPERM)]);
}

/// getpid through the i386 ABI (int 0x80, syscall 20), which a filter covers only when
/// SCMP_ARCH_X86 is listed.
#[cfg(target_arch = "x86_64")]
fn i386_getpid() -> i64 {
    let ret: i32;
    // SAFETY: i386 getpid takes no arguments and touches no memory; int 0x80 may clobber
    // r8-r11 on older kernels.
    unsafe {
        std::arch::asm!("int 0x80", inlateout("eax") 20i32 => ret,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _, options(nostack));
    }
    i64::from(ret)
}

#[cfg(target_arch = "x86_64")]
#[test]
fn listed_architectures_are_filtered_and_others_killed() {
    let rule = json!([{ "names": ["getpid"], "action": "SCMP_ACT_ERRNO" }]);
    let with_x86 = seccomp(json!({ "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86"], "syscalls": rule }));
    let outcome = run_filtered(&with_x86, |p| {
        p.report(i386_getpid());
        // The native architecture stays in the filter.
        p.report(getpid());
    });
    assert_eq!(outcome.exit, Exit::Code(0));
    assert_eq!(outcome.reports, [errno(EPERM), errno(EPERM)]);

    // From a second thread, so that killing only that thread would leave the main one
    // reporting.
    let native_only = seccomp(json!({ "defaultAction": "SCMP_ACT_ALLOW", "syscalls": rule }));
    let outcome = run_filtered(&native_only, |p| {
        p.report(1);
        let _ = std::thread::spawn(i386_getpid).join();
        p.report(2);
    });
    assert_eq!(
        outcome.exit,
        Exit::Signal(Signal::SIGSYS),
        "bad arch kills the process"
    );
    assert_eq!(outcome.reports, [1]);
}
