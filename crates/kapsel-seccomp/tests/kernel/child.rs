//! Runs code under a filter in a forked child and reports back to the parent, which is the
//! test and stays unfiltered.
//!
//! The child mostly makes raw syscalls, writes 8-byte results to a pipe and `_exit`s, so
//! that it needs few syscalls besides those under test, and runs no exit handlers of the
//! (multi-threaded) test process it was forked from.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::fcntl::OFlag;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, pipe2, ForkResult};
use oci_spec::runtime::LinuxSeccomp;

/// What a filtered child needs besides the syscalls under test: reporting, exiting, and
/// the memory calls free() may make once `install` drops the built filter.
pub const RUNTIME_BASICS: &[&str] = &[
    "write",
    "exit_group",
    "brk",
    "mmap",
    "munmap",
    "madvise",
    "mprotect",
    "futex",
    "rt_sigprocmask",
];

/// How the child ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(Signal),
}

/// The exit code of a child whose `install` failed.
pub const INSTALL_FAILED: i32 = 100;
/// The exit code of a child whose probe panicked.
pub const PROBE_PANICKED: i32 = 101;

/// What the child saw.
#[derive(Debug)]
pub struct Outcome {
    /// What the probe reported, in order.
    pub reports: Vec<i64>,
    pub exit: Exit,
}

/// The child's side: where the probe reports, and the notify fd `install` returned.
pub struct Probe {
    out: OwnedFd,
    pub notify_fd: Option<OwnedFd>,
}

impl Probe {
    /// Sends `value` to the parent at once, so it arrives even if a later syscall kills
    /// the child.
    pub fn report(&self, value: i64) {
        let bytes = value.to_ne_bytes();
        // SAFETY: writes from a live buffer to a pipe this process owns.
        let written = unsafe { libc::write(self.out.as_raw_fd(), bytes.as_ptr().cast(), 8) };
        assert_eq!(written, 8, "report to parent");
    }
}

/// Forks; the child installs `seccomp`, then runs `probe`. Waits for the child.
pub fn run_filtered(seccomp: &LinuxSeccomp, probe: impl FnOnce(&Probe)) -> Outcome {
    // The few reports fit in the pipe's buffer, so they are read once the child is gone.
    let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC).expect("pipe");
    let exit = in_child(move || match kapsel_seccomp::install(seccomp) {
        Ok(notify_fd) => {
            probe(&Probe {
                out: write_end,
                notify_fd,
            });
            0
        }
        Err(_) => INSTALL_FAILED,
    });
    Outcome {
        reports: read_reports(read_end),
        exit,
    }
}

/// Forks; the child runs `body` and exits with the code it returns.
pub fn in_child(body: impl FnOnce() -> i32) -> Exit {
    // SAFETY: the child only runs `body`, then _exit.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
            // SAFETY: ends the forked child without running the parent's atexit handlers.
            unsafe { libc::_exit(code.unwrap_or(PROBE_PANICKED)) }
        }
        ForkResult::Parent { child } => match waitpid(child, None).expect("waitpid") {
            WaitStatus::Exited(_, code) => Exit::Code(code),
            WaitStatus::Signaled(_, signal, _) => Exit::Signal(signal),
            other => panic!("unexpected wait status {other:?}"),
        },
    }
}

fn read_reports(read_end: OwnedFd) -> Vec<i64> {
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::fs::File::from(read_end), &mut bytes)
        .expect("read reports");
    bytes
        .chunks_exact(8)
        .map(|chunk| i64::from_ne_bytes(chunk.try_into().unwrap()))
        .collect()
}

/// A raw syscall's result: the return value, or minus the errno.
pub fn sys(ret: libc::c_long) -> i64 {
    if ret == -1 {
        -i64::from(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        ret
    }
}

/// `mkdir(path, 0700)` through the raw syscall (glibc might use mkdirat).
pub fn mkdir(path: &std::ffi::CStr) -> i64 {
    // SAFETY: path is a NUL-terminated string that outlives the call.
    sys(unsafe { libc::syscall(libc::SYS_mkdir, path.as_ptr(), 0o700) })
}

pub fn getpid() -> i64 {
    // SAFETY: getpid has no arguments.
    sys(unsafe { libc::syscall(libc::SYS_getpid) })
}

/// A directory path that does not exist yet, unique to this test.
pub fn fresh_dir(tag: &str) -> std::ffi::CString {
    let path = std::env::temp_dir().join(format!("kapsel-seccomp-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir(&path);
    std::ffi::CString::new(path.into_os_string().into_encoded_bytes()).unwrap()
}

/// A `linux.seccomp` from JSON, as config.json would have it.
pub fn seccomp(json: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(json).expect("valid linux.seccomp")
}

pub fn errno(e: i32) -> i64 {
    -i64::from(e)
}
