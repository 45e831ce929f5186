//! `run`: create and start; in the foreground also forward signals (and the terminal),
//! wait for the exit status and delete the container.

use std::os::fd::AsFd;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::{ConsoleTarget, CreateOptions};
use crate::error::{Result, RuntimeError, SysContext};
use crate::state::StateRoot;
use crate::terminal::TerminalProxy;

pub fn run(root: &StateRoot, opts: &CreateOptions, detach: bool) -> Result<i32> {
    if detach {
        super::create(root, opts)?;
        return start_or_remove(root, &opts.id).map(|_| 0);
    }
    // Init's parent (the intermediate process) exits during create: as a subreaper the
    // runtime becomes init's parent and can wait for it.
    nix::sys::prctl::set_child_subreaper(true).ctx(|| "prctl PR_SET_CHILD_SUBREAPER")?;
    let (c, terminal) = match &opts.console_socket {
        Some(path) => (
            super::create_with(root, opts, ConsoleTarget::Socket(Some(path)))?,
            None,
        ),
        None => {
            let (ours, theirs) = crate::terminal::socket_pair()?;
            let c = super::create_with(root, opts, ConsoleTarget::Connected(theirs))?;
            (c, TerminalProxy::receive(&ours)?)
        }
    };
    let signals = ForwardedSignals::block()?;
    start_or_remove(root, &opts.id)?;
    tracing::debug!(id = %opts.id, "started");
    let code = signals.wait_exit_code(c.pid, terminal);
    tracing::debug!(id = %opts.id, ?code, "exited");
    super::delete(root, &opts.id, true)?;
    tracing::debug!(id = %opts.id, "deleted");
    code
}

fn start_or_remove(root: &StateRoot, id: &str) -> Result<()> {
    super::start(root, id).inspect_err(|_| {
        let _ = super::delete(root, id, true);
    })
}

/// Waits for `pid` (a child of this process) while forwarding signals (and the terminal,
/// if any) to it; returns its exit status, 128+N when killed by signal N (as a shell
/// reports it).
pub fn wait_exit_code(pid: i32, tty: Option<TerminalProxy>) -> Result<i32> {
    ForwardedSignals::block()?.wait_exit_code(pid, tty)
}

/// While the container runs in the foreground, signals sent to the runtime go to it.
struct ForwardedSignals {
    fd: SignalFd,
    previous: SigSet,
}

impl ForwardedSignals {
    fn block() -> Result<Self> {
        let mut set = SigSet::all();
        // Faults are about the runtime itself and cannot be forwarded meaningfully.
        for s in [
            Signal::SIGSEGV,
            Signal::SIGBUS,
            Signal::SIGILL,
            Signal::SIGFPE,
            Signal::SIGTRAP,
        ] {
            set.remove(s);
        }
        let mut previous = SigSet::empty();
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut previous))
            .ctx(|| "block signals for forwarding")?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .ctx(|| "signalfd")?;
        Ok(ForwardedSignals { fd, previous })
    }

    /// Loops over signals (and the terminal's two directions) until `pid` has exited.
    fn wait_exit_code(&self, pid: i32, mut tty: Option<TerminalProxy>) -> Result<i32> {
        let mut tty_open = tty.is_some();
        loop {
            if let Some(code) = reap(pid)? {
                while tty_open
                    && tty
                        .as_mut()
                        .is_some_and(|t| ready(t.master()) && t.copy_out())
                {}
                return Ok(code);
            }
            let stdin = std::io::stdin();
            let mut fds = vec![PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            if let Some(t) = tty.as_ref().filter(|_| tty_open) {
                fds.push(PollFd::new(t.master(), PollFlags::POLLIN));
                if t.stdin_open() {
                    fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
                }
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Err(nix::Error::EINTR) => continue,
                other => other.ctx(|| "poll")?,
            };
            let readable = |i: usize| {
                fds.get(i)
                    .and_then(|f| f.revents())
                    .is_some_and(|r| !r.is_empty())
            };
            let (sig_ready, master_ready, stdin_ready) = (readable(0), readable(1), readable(2));
            if let Some(t) = tty.as_mut() {
                if stdin_ready {
                    t.copy_in();
                }
                if master_ready && !t.copy_out() {
                    tty_open = false;
                }
            }
            if sig_ready {
                self.forward_pending(pid, tty.as_ref());
            }
        }
    }

    fn forward_pending(&self, pid: i32, tty: Option<&TerminalProxy>) {
        while let Ok(Some(info)) = self.fd.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGCHLD) | Err(_) => {}
                // With a terminal, a window change is the terminal's business: resizing it
                // makes the kernel signal the container's foreground processes.
                Ok(Signal::SIGWINCH) if tty.is_some() => tty.expect("checked").resize(),
                Ok(s) => {
                    let _ = kill(Pid::from_raw(pid), s);
                }
            }
        }
    }
}

fn ready(fd: std::os::fd::BorrowedFd) -> bool {
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
}

impl Drop for ForwardedSignals {
    fn drop(&mut self) {
        let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.previous), None);
    }
}

/// Reaps every exited child (orphans of the container are reparented to a subreaper too);
/// returns `pid`'s exit code once it has exited.
fn reap(pid: i32) -> Result<Option<i32>> {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, code)) if p.as_raw() == pid => return Ok(Some(code)),
            Ok(WaitStatus::Signaled(p, sig, _)) if p.as_raw() == pid => {
                return Ok(Some(128 + sig as i32))
            }
            Ok(WaitStatus::StillAlive) => return Ok(None),
            Ok(_) => continue,
            Err(nix::Error::ECHILD) => {
                return Err(RuntimeError::Init(format!(
                    "process {pid} is not a child of the runtime"
                )))
            }
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(RuntimeError::sys("waitpid", e)),
        }
    }
}
