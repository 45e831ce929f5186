//! Turning the forked child into the container's process: limits, terminal, user,
//! capabilities, working directory, and finally the program. Shared by a container's init
//! and by `exec`.

mod capabilities;
mod exec;
mod identity;
mod rlimits;

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use kapsel_seccomp::Program;
use nix::unistd::chdir;
use oci_spec::runtime::Process;

use crate::error::{Result, SysContext};
pub use exec::{close_fds_from, reset_signals};

/// What a prepared process will exec.
pub struct Prepared {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<String>,
    /// The seccomp notify fd, for the agent at `listenerPath` (the runtime passes it on).
    pub seccomp_notify: Option<OwnedFd>,
}

/// Makes a new pty (sent over `console`) the process's terminal and stdio. Separate from
/// [`prepare`] so init can bind it to /dev/console while it still has the capabilities to
/// mount.
pub fn attach_terminal(process: &Process, console: &OwnedFd) -> Result<()> {
    let size = process
        .console_size()
        .as_ref()
        .map(|b| (b.height() as u16, b.width() as u16));
    crate::console::setup(console, size)
}

/// Applies everything that can fail before the point of no return, so `create` and `exec`
/// report errors instead of a dead container.
///
/// The seccomp filter goes in as late as the kernel allows: without no_new_privs only while
/// the process still has CAP_SYS_ADMIN (before the capability drop), with it after
/// everything else. Either way the rest of setup runs under the filter, as with runc.
pub fn prepare(process: &Process, seccomp: Option<&Program>) -> Result<Prepared> {
    rlimits::apply(process.rlimits().as_deref().unwrap_or(&[]))?;
    let no_new_privs = process.no_new_privileges().unwrap_or(false);
    let mut seccomp_notify = None;
    if let Some(filter) = seccomp.filter(|_| !no_new_privs) {
        seccomp_notify = filter.load()?;
    }
    let caps = process
        .capabilities()
        .as_ref()
        .map(capabilities::CapabilitySets::from_spec)
        .transpose()?;
    if let Some(c) = &caps {
        c.apply_bounding()?;
    }
    identity::switch_user(process.user())?;
    if let Some(c) = &caps {
        c.apply_process_sets()?;
    }
    if no_new_privs {
        nix::sys::prctl::set_no_new_privs().ctx(|| "prctl PR_SET_NO_NEW_PRIVS")?;
        if let Some(filter) = seccomp {
            seccomp_notify = filter.load()?;
        }
    }
    enter_cwd(process.cwd())?;
    identity::apply_umask(process.user());
    let args = process.args().clone().unwrap_or_default();
    let mut env = process.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", identity::home_dir(process.user().uid())));
    }
    let program = exec::find_program(&args[0], &env)?;
    Ok(Prepared {
        program,
        args,
        env,
        seccomp_notify,
    })
}

/// Changes to `process.cwd` and checks that it lies inside the container's root: a cwd
/// reached through a leaked directory fd (/proc/self/fd/N) would be a way out of the
/// container (the CVE-2024-21626 class); getcwd reports such a directory as unreachable.
fn enter_cwd(cwd: &std::path::Path) -> Result<()> {
    chdir(cwd).ctx(|| format!("chdir to cwd {}", cwd.display()))?;
    match nix::unistd::getcwd() {
        Ok(here) if here.is_absolute() => Ok(()),
        _ => Err(crate::error::RuntimeError::Init(format!(
            "process.cwd {} lies outside the container's root filesystem",
            cwd.display()
        ))),
    }
}

impl Prepared {
    /// The point of no return.
    pub fn exec(self, preserve_fds: u32) -> crate::error::RuntimeError {
        reset_signals();
        close_fds_from(3 + preserve_fds);
        exec::execve(&self.program, &self.args, &self.env)
    }
}
