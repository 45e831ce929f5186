//! `run`: create and start; in the foreground also forward signals, wait for the exit
//! status and delete the container.

use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::CreateOptions;
use crate::error::{Result, RuntimeError, SysContext};
use crate::state::StateRoot;

pub fn run(root: &StateRoot, opts: &CreateOptions, detach: bool) -> Result<i32> {
    if detach {
        super::create(root, opts)?;
        return start_or_remove(root, &opts.id).map(|_| 0);
    }
    // Init's parent (the intermediate process) exits during create: as a subreaper the
    // runtime becomes init's parent and can wait for it.
    nix::sys::prctl::set_child_subreaper(true).ctx(|| "prctl PR_SET_CHILD_SUBREAPER")?;
    let c = super::create(root, opts)?;
    let signals = ForwardedSignals::block()?;
    start_or_remove(root, &opts.id)?;
    tracing::debug!(id = %opts.id, "started");
    let code = signals.wait_exit_code(c.pid);
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

/// Waits for `pid` (a child of this process) while forwarding signals to it; returns its
/// exit status, 128+N when killed by signal N (as a shell reports it).
pub fn wait_exit_code(pid: i32) -> Result<i32> {
    ForwardedSignals::block()?.wait_exit_code(pid)
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
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC).ctx(|| "signalfd")?;
        Ok(ForwardedSignals { fd, previous })
    }

    fn wait_exit_code(&self, pid: i32) -> Result<i32> {
        loop {
            if let Some(code) = reap(pid)? {
                return Ok(code);
            }
            let Some(info) = self.fd.read_signal().ctx(|| "read signalfd")? else {
                continue;
            };
            let sig = Signal::try_from(info.ssi_signo as i32).ok();
            match sig {
                Some(Signal::SIGCHLD) | None => {}
                Some(s) => {
                    let _ = kill(Pid::from_raw(pid), s);
                }
            }
        }
    }
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
