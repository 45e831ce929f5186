//! The runtime's operations, one file each, as the runc command line names them.

mod create;
mod delete;
mod events;
mod exec;
mod features;
mod kill;
mod list;
mod pause;
mod ps;
mod run;
mod start;
mod state;
mod update;

pub use create::{create, CreateOptions};
use create::{create_with, ConsoleTarget};
pub use delete::delete;
pub use events::{events, EventsOptions};
pub use exec::{container_process, exec, ExecOptions};
pub use features::features;
pub use kill::{kill, parse_signal};
pub use list::list;
pub use pause::{pause, resume};
pub use ps::ps;
pub use run::{run, wait_exit_code};
pub use start::start;
pub use state::state;
pub use update::update;

use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::time::Duration;

use kapsel_cgroups::Cgroup;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill as send_signal, Signal};
use nix::unistd::Pid;

use crate::error::Result;
use crate::state::{Container, StateRoot, Status};

/// Loads a container and its current status.
pub fn load(root: &StateRoot, id: &str) -> Result<(Container, Status)> {
    let c = root.load(id)?;
    let status = c.status(root);
    Ok((c, status))
}

/// Sends `sig` to every process in the cgroup (best effort: processes may be exiting).
pub(crate) fn kill_all(cgroup: &Cgroup, sig: Signal) {
    let pids = cgroup.procs().unwrap_or_default();
    // Never freeze or kill the runtime itself (it is briefly a member while forking).
    if pids.is_empty() || pids.contains(&(std::process::id() as i32)) {
        return;
    }
    // Freeze first so a fork loop cannot outrun the kill; thaw so the signal is acted on.
    let frozen = sig == Signal::SIGKILL && cgroup.freeze().is_ok();
    for pid in cgroup.procs().unwrap_or(pids) {
        let _ = send_signal(Pid::from_raw(pid), sig);
    }
    if frozen {
        let _ = cgroup.thaw();
    }
}

/// Waits until `pid` has exited (not necessarily reaped), at most `timeout`.
pub(crate) fn wait_gone(pid: i32, timeout: Duration) -> bool {
    // SAFETY: pidfd_open returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return true; // no such process
    }
    // SAFETY: fd is a fresh pidfd we own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    matches!(poll(&mut fds, PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)), Ok(n) if n > 0)
}
