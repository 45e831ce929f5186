//! The last steps before the container's program runs: finding it, a clean signal state,
//! no stray file descriptors, execve.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};

use crate::error::{Result, RuntimeError};

/// Finds `program` as execvp would, in the PATH of the container's environment, so a
/// missing program is reported by `create` rather than after `start`.
pub fn find_program(program: &str, env: &[String]) -> Result<PathBuf> {
    if program.contains('/') {
        return Ok(PathBuf::from(program));
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    path.split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| {
            RuntimeError::Init(format!(
                "exec: {program:?}: executable file not found in $PATH ({path})"
            ))
        })
}

/// Resets what the runtime changed in its own signal state (Rust ignores SIGPIPE; signals
/// may be blocked for forwarding): an ignored signal would stay ignored across execve.
pub fn reset_signals() {
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for sig in Signal::iterator() {
        if sig != Signal::SIGKILL && sig != Signal::SIGSTOP {
            // SAFETY: installing SIG_DFL is always sound.
            let _ = unsafe { sigaction(sig, &default) };
        }
    }
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

/// Marks every fd from `first` up close-on-exec, so nothing of the runtime leaks into the
/// container (fds below `first` are stdio plus `--preserve-fds`).
pub fn close_fds_from(first: u32) {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only changes fd flags.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
    }
}

/// Replaces this process with the container's program; returns only on failure.
pub fn execve(program: &Path, args: &[String], env: &[String]) -> RuntimeError {
    let to_c = |s: &str| CString::new(s).unwrap_or_default();
    let path = CString::new(program.as_os_str().as_bytes()).unwrap_or_default();
    let argv: Vec<CString> = args.iter().map(|a| to_c(a)).collect();
    let envp: Vec<CString> = env.iter().map(|e| to_c(e)).collect();
    let err = nix::unistd::execve(&path, &argv, &envp).unwrap_err();
    RuntimeError::sys(format!("exec {}", program.display()), err)
}
