//! The shim process itself: detached from its caller, immune to the signals meant for
//! others, and the reaper of everything the container leaves behind.

use std::os::fd::RawFd;

use nix::errno::Errno;
use nix::sys::signal::{signal, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};

use crate::error::{Context, Result};
use crate::exit::ExitStatus;

/// The signals a shim ignores: kapseld's terminal, session or process group may be
/// signalled (and kapseld itself killed) without touching the shims it started;
/// containers are stopped through the runtime, never through their shim.
const IGNORED: [Signal; 4] = [
    Signal::SIGPIPE,
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGTERM,
];

/// Starts a new session (away from kapseld's process group and terminal), becomes the
/// subreaper of the container's processes (the runtime's intermediate processes exit, so
/// the container's process would otherwise be reparented to init and its status lost),
/// ignores [`IGNORED`], and returns a signalfd for SIGCHLD, which is blocked.
pub fn detach_and_protect() -> Result<SignalFd> {
    // EPERM: already a process group leader (the caller may have called setsid itself).
    match nix::unistd::setsid() {
        Ok(_) | Err(Errno::EPERM) => {}
        Err(e) => return Err(e).ctx(|| "setsid"),
    }
    nix::sys::prctl::set_child_subreaper(true).ctx(|| "prctl(PR_SET_CHILD_SUBREAPER)")?;
    for s in IGNORED {
        // SAFETY: SIG_IGN installs no handler code.
        unsafe { signal(s, SigHandler::SigIgn) }.ctx(|| format!("ignore {s}"))?;
    }
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&chld), None)
        .ctx(|| "block SIGCHLD")?;
    SignalFd::with_flags(&chld, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .ctx(|| "signalfd(SIGCHLD)")
}

/// In a child about to exec a runtime: the signals the shim ignores must not stay ignored
/// in the runtime and so in the container (std already resets SIGPIPE and the mask).
/// Only async-signal-safe calls.
pub fn reset_ignored_signals() {
    for s in IGNORED {
        // SAFETY: restoring the default disposition; signal(2) is async-signal-safe.
        unsafe { libc::signal(s as libc::c_int, libc::SIG_DFL) };
    }
}

/// Closes every inherited fd from `first` on: the shim's contract is fds 0-4, and
/// anything else its caller leaked (the other end of a pipe, a socket) would otherwise be
/// held open for the container's whole life.
pub fn close_from(first: RawFd) {
    // SAFETY: nothing in this process owns these fds yet (called first thing in main).
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            0 as libc::c_uint,
        )
    };
    if r != 0 {
        // Kernels before 5.9 have no close_range.
        for fd in first..4096 {
            // SAFETY: as above.
            unsafe { libc::close(fd) };
        }
    }
}

/// Marks one fd close-on-exec; false if it is not open.
pub fn set_cloexec(fd: RawFd) -> bool {
    // SAFETY: F_SETFD on a possibly closed fd fails with EBADF and does nothing else.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) == 0 }
}

/// Empties the signalfd (SIGCHLDs coalesce: one read may stand for many exits).
pub fn drain(signals: &SignalFd) {
    while let Ok(Some(_)) = signals.read_signal() {}
}

/// Reaps every exited child without blocking and reports each pid with its status. As a
/// subreaper the shim inherits the container's orphans; they are reaped here too.
pub fn reap_children(mut on_exit: impl FnMut(i32, ExitStatus)) {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
            Ok(status) => {
                if let (Some(pid), Some(exit)) = (status.pid(), ExitStatus::from_wait(status)) {
                    on_exit(pid.as_raw(), exit);
                }
            }
            Err(Errno::EINTR) => continue,
            Err(e) => {
                crate::diag::log(format_args!("waitpid: {e}"));
                return;
            }
        }
    }
}
