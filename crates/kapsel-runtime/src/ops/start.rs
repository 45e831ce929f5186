//! `start`: release a created container's init into the user's program.

use std::os::fd::AsFd;
use std::time::Duration;

use nix::fcntl::{open, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::stat::Mode;

use crate::error::{Result, RuntimeError, SysContext};
use crate::hooks::{self, HookKind};
use crate::state::{Container, StateRoot, Status};

pub fn start(root: &StateRoot, id: &str) -> Result<()> {
    let (c, status) = super::load(root, id)?;
    if status != Status::Created {
        return Err(RuntimeError::WrongState {
            id: id.into(),
            status: status.to_string(),
            action: "start",
            wanted: "created",
        });
    }
    // The fifo's removal is what marks the container running: no state to write.
    release_init(root, &c)?;
    // Poststart hooks fail softly: the program already runs.
    hooks::run_warn(
        c.hooks.as_ref(),
        HookKind::Poststart,
        &c.oci_state(Status::Running),
    );
    Ok(())
}

/// Opens the exec fifo for reading, which unblocks init's open for writing; init then
/// writes one byte and execs. The fifo is removed so the status reads "running".
fn release_init(root: &StateRoot, c: &Container) -> Result<()> {
    let path = root.exec_fifo(&c.id);
    let fifo = open(
        &path,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open {}", path.display()))?;
    let mut buf = [0u8; 1];
    loop {
        let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
        let ready = poll(&mut fds, PollTimeout::from(100u16)).ctx(|| "poll the exec fifo")?;
        if ready > 0 {
            match nix::unistd::read(&fifo, &mut buf) {
                Ok(1) => break,
                Err(nix::Error::EAGAIN) => {}
                _ => return Err(init_gone(c)),
            }
        }
        if !c.init_alive() {
            return Err(init_gone(c));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    std::fs::remove_file(&path).map_err(|e| RuntimeError::io("remove", &path, e))
}

fn init_gone(c: &Container) -> RuntimeError {
    RuntimeError::Init(format!(
        "container {} init (pid {}) exited before it could be started \
         (a startContainer hook failing, or the program failing to exec; see its stderr)",
        c.id, c.pid
    ))
}
