//! `exec`: run another process inside a created or running container.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use nix::sys::wait::waitpid;
use nix::unistd::{fork, setsid, ForkResult};
use oci_spec::runtime::{LinuxNamespace, Process};

use crate::channel::{self, Channel, Message};
use crate::error::{Result, RuntimeError, SysContext};
use crate::state::{Container, StateRoot, Status};
use crate::terminal::TerminalProxy;

pub struct ExecOptions {
    pub id: String,
    pub process: Process,
    pub console_socket: Option<PathBuf>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
}

/// Runs the process; returns its exit code, or 0 once it started when detached.
pub fn exec(root: &StateRoot, opts: ExecOptions) -> Result<i32> {
    let (c, status) = super::load(root, &opts.id)?;
    if status != Status::Running && status != Status::Created {
        return Err(RuntimeError::WrongState {
            id: opts.id.clone(),
            status: status.to_string(),
            action: "exec",
            wanted: "created or running",
        });
    }
    if opts.process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(RuntimeError::invalid(
            "process.args",
            "exec needs a program to run",
        ));
    }
    if !opts.detach {
        nix::sys::prctl::set_child_subreaper(true).ctx(|| "prctl PR_SET_CHILD_SUBREAPER")?;
    }
    let (console, proxied) = console_for(&opts)?;
    let pid = spawn(root, &c, &opts, console)?;
    if let Some(pid_file) = &opts.pid_file {
        crate::fsutil::write_atomic(pid_file, pid.to_string().as_bytes())?;
    }
    if opts.detach {
        return Ok(0);
    }
    let tty = proxied
        .as_ref()
        .map(TerminalProxy::receive)
        .transpose()?
        .flatten();
    super::wait_exit_code(pid, tty)
}

/// The process of the container's own config.json: what `exec` starts from when no
/// `--process` file is given (args, cwd, env and user are then overridden by flags).
pub fn container_process(root: &StateRoot, id: &str) -> Result<Process> {
    let c = root.load(id)?;
    let spec = crate::spec::load(&c.bundle)?;
    Ok(spec.process().clone().unwrap_or_default())
}

/// Where the process's terminal goes: the caller's console socket, or (in the foreground
/// without one) a pair whose other end the runtime proxies, as `run` does. Also returns
/// that other end.
fn console_for(opts: &ExecOptions) -> Result<(Option<OwnedFd>, Option<OwnedFd>)> {
    let terminal = opts.process.terminal().unwrap_or(false);
    match (terminal, &opts.console_socket) {
        (false, Some(_)) => Err(RuntimeError::Usage(
            "--console-socket needs a terminal: add --tty (process.terminal)".into(),
        )),
        (false, None) => Ok((None, None)),
        (true, Some(path)) => Ok((Some(crate::console::connect(path)?), None)),
        (true, None) if opts.detach => Err(RuntimeError::Usage(
            "a detached process with --tty needs --console-socket to receive its terminal".into(),
        )),
        (true, None) => {
            let (ours, theirs) = crate::terminal::socket_pair()?;
            Ok((Some(theirs), Some(ours)))
        }
    }
}

fn spawn(
    root: &StateRoot,
    c: &Container,
    opts: &ExecOptions,
    console: Option<OwnedFd>,
) -> Result<i32> {
    let namespaces = crate::namespaces::of_process(c.pid)?;
    let seccomp = crate::seccomp::program(root, c.seccomp.as_ref())?;
    let (ours, theirs) = channel::pair()?;
    // SAFETY: the runtime is single-threaded, so the child may run arbitrary code.
    let intermediate = match unsafe { crate::spawn::fork_in_cgroup(&c.cgroup) }? {
        ForkResult::Child => {
            drop(ours);
            join_and_fork(opts, &namespaces, seccomp.as_ref(), console, theirs)
        }
        ForkResult::Parent { child } => child,
    };
    drop(theirs);
    let outcome = wait_started(&ours, c);
    let _ = waitpid(intermediate, None);
    outcome
}

fn wait_started(chan: &Channel, c: &Container) -> Result<i32> {
    let mut pid = None;
    // The process's notify fd may arrive before the intermediate reports its PID.
    let mut notify_fd = None;
    loop {
        match chan.recv()? {
            Some(Message::InitPid { pid: p }) => pid = Some(p),
            Some(Message::SeccompNotify) => notify_fd = chan.take_fd(),
            Some(Message::Error { message }) => return Err(RuntimeError::Setup(message)),
            // The channel closes on exec (close-on-exec): the process runs.
            None => {
                return pid
                    .ok_or_else(|| RuntimeError::Init("exec process exited during setup".into()))
            }
            Some(other) => return Err(RuntimeError::Init(format!("unexpected {other:?}"))),
        }
        if let (Some(p), Some(seccomp)) = (pid, &c.seccomp) {
            if let Some(fd) = notify_fd.take() {
                crate::seccomp::send_to_agent(seccomp, &fd, p, c.oci_state(Status::Running))?;
            }
        }
    }
}

/// Intermediate process (born in the container's cgroup): joins the container's
/// namespaces, then forks the process (a PID namespace applies to children only). Never
/// returns.
fn join_and_fork(
    opts: &ExecOptions,
    namespaces: &[LinuxNamespace],
    seccomp: Option<&kapsel_seccomp::Program>,
    console: Option<OwnedFd>,
    chan: Channel,
) -> ! {
    if let Err(e) =
        crate::namespaces::join_paths(namespaces).and_then(|_| crate::init::shield_exe())
    {
        chan.report(&e);
        std::process::exit(1);
    }
    // SAFETY: single-threaded, as above.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            let err = setsid()
                .ctx(|| "setsid")
                .and_then(|_| match &console {
                    Some(c) => crate::process::attach_terminal(&opts.process, c),
                    None => Ok(()),
                })
                .and_then(|_| crate::process::prepare(&opts.process, seccomp))
                .and_then(|mut prepared| {
                    if let Some(fd) = prepared.seccomp_notify.take() {
                        chan.send_fd(&Message::SeccompNotify, &fd)?;
                    }
                    Ok(prepared.exec(opts.preserve_fds))
                })
                .unwrap_or_else(|e| e);
            chan.report(&err);
            std::process::exit(127)
        }
        Ok(ForkResult::Parent { child }) => {
            let _ = chan.send(&Message::InitPid {
                pid: child.as_raw(),
            });
            std::process::exit(0)
        }
        Err(e) => {
            chan.report(&RuntimeError::sys("fork the exec process", e));
            std::process::exit(1)
        }
    }
}
