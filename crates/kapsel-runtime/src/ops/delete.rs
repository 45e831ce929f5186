//! `delete`: remove a stopped container (with `force`, stop it first).

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::error::{Result, RuntimeError};
use crate::hooks::{self, HookKind};
use crate::state::{StateRoot, Status};

pub fn delete(root: &StateRoot, id: &str, force: bool) -> Result<()> {
    let c = match root.load(id) {
        Err(RuntimeError::NotFound(_)) if force => return Ok(()),
        other => other?,
    };
    let status = c.status(root);
    if status != Status::Stopped {
        if !force {
            return Err(RuntimeError::WrongState {
                id: id.into(),
                status: status.to_string(),
                action: "delete",
                wanted: "stopped (or use --force)",
            });
        }
        super::kill_all(&c.cgroup, Signal::SIGKILL);
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.pid), Signal::SIGKILL);
        super::wait_gone(c.pid, Duration::from_secs(10));
    }
    // A container whose init is gone may still have processes (no PID namespace).
    super::kill_all(&c.cgroup, Signal::SIGKILL);
    c.cgroup.destroy()?;
    root.remove(id)?;
    // Poststop hooks fail softly: the container is gone either way.
    hooks::run_warn(
        c.hooks.as_ref(),
        HookKind::Poststop,
        &c.oci_state(Status::Stopped),
    );
    Ok(())
}
