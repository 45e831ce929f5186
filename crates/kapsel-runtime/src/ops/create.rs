//! `create`: set up a container and leave its init waiting for `start`.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::{mkfifo, ForkResult, Pid};
use oci_spec::runtime::{LinuxIdMapping, Spec};

use crate::channel::{self, Channel, Message};
use crate::error::{Result, RuntimeError, SysContext};
use crate::hooks::{self, HookKind};
use crate::init::{self, InitConfig};
use crate::state::{now_rfc3339, process_start_time, Container, StateRoot, Status};

#[derive(Clone, Debug, Default)]
pub struct CreateOptions {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub preserve_fds: u32,
    /// Socket activation: this many fds after the preserved ones are passed on too, and
    /// the process is told so (LISTEN_FDS, LISTEN_PID=1), as systemd and runc do.
    pub listen_fds: u32,
}

pub fn create(root: &StateRoot, opts: &CreateOptions) -> Result<Container> {
    create_with(
        root,
        opts,
        ConsoleTarget::Socket(opts.console_socket.as_deref()),
    )
}

/// Where the terminal's master goes when config.json asks for a terminal.
pub(crate) enum ConsoleTarget<'a> {
    /// `--console-socket`: connected only when a terminal is wanted.
    Socket(Option<&'a Path>),
    /// One end of a socketpair the caller reads the master from (foreground `run`).
    Connected(OwnedFd),
}

pub(crate) fn create_with(
    root: &StateRoot,
    opts: &CreateOptions,
    target: ConsoleTarget,
) -> Result<Container> {
    let bundle = std::fs::canonicalize(&opts.bundle)
        .map_err(|e| RuntimeError::io("open bundle", &opts.bundle, e))?;
    tracing::debug!(id = %opts.id, "create");
    let mut spec = crate::spec::load(&bundle)?;
    announce_listen_fds(&mut spec, opts.listen_fds);
    let rootfs = crate::spec::rootfs(&spec, &bundle)?;
    let console = match (wants_terminal(&spec), target) {
        (false, ConsoleTarget::Socket(Some(_))) => {
            return Err(RuntimeError::Usage(
                "--console-socket needs process.terminal to be true in config.json".into(),
            ))
        }
        (false, _) => None,
        (true, ConsoleTarget::Connected(fd)) => Some(fd),
        (true, ConsoleTarget::Socket(Some(path))) => Some(crate::console::connect(path)?),
        (true, ConsoleTarget::Socket(None)) => {
            return Err(RuntimeError::Usage(
                "process.terminal is true: pass --console-socket to receive the terminal, \
                 or set terminal to false in config.json"
                    .into(),
            ))
        }
    };
    root.claim(&opts.id)?;
    let mut undo = Undo::new(root, &opts.id);
    let container = launch(root, opts, &spec, &bundle, &rootfs, console, &mut undo)?;
    undo.disarm();
    Ok(container)
}

fn launch(
    root: &StateRoot,
    opts: &CreateOptions,
    spec: &Spec,
    bundle: &Path,
    rootfs: &Path,
    console: Option<OwnedFd>,
    undo: &mut Undo,
) -> Result<Container> {
    let fifo_path = root.exec_fifo(&opts.id);
    mkfifo(&fifo_path, Mode::empty()).ctx(|| format!("mkfifo {}", fifo_path.display()))?;
    // Init reopens the fifo for writing after switching to the container's user, who may
    // be anyone; the state dir (0711) keeps others from finding it.
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o622);
    std::fs::set_permissions(&fifo_path, mode)
        .map_err(|e| RuntimeError::io("chmod", &fifo_path, e))?;
    let fifo = open(&fifo_path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .ctx(|| format!("open {}", fifo_path.display()))?;
    let cgroup = crate::cgroup::for_container(spec, &opts.id)?;
    cgroup.create()?;
    undo.cgroup = Some(cgroup.clone());
    cgroup.apply(&crate::cgroup::resources(spec))?;
    tracing::debug!(id = %opts.id, "cgroup ready");
    let seccomp_config = spec.linux().as_ref().and_then(|l| l.seccomp().clone());
    let seccomp = crate::seccomp::program(root, seccomp_config.as_ref())?;
    let (ours, theirs) = channel::pair()?;
    let cfg = InitConfig {
        spec,
        bundle,
        rootfs,
        cgroup: &cgroup,
        fifo: &fifo,
        console,
        no_pivot: opts.no_pivot,
        preserve_fds: opts.preserve_fds + opts.listen_fds,
        seccomp: seccomp.as_ref(),
    };
    // SAFETY: the runtime is single-threaded, so the child may run arbitrary code.
    let intermediate = match unsafe { crate::spawn::fork_in_cgroup(&cgroup) }? {
        ForkResult::Child => {
            drop(ours);
            init::intermediate(cfg, theirs)
        }
        ForkResult::Parent { child } => child,
    };
    drop(theirs);
    drop(cfg);
    let mut container = Container {
        id: opts.id.clone(),
        bundle: bundle.to_path_buf(),
        rootfs: rootfs.to_path_buf(),
        pid: 0,
        pid_start_time: 0,
        created: now_rfc3339(),
        owner: String::new(),
        annotations: spec.annotations().clone().unwrap_or_default(),
        cgroup,
        hooks: spec.hooks().clone(),
        seccomp: seccomp_config,
    };
    let outcome = supervise_setup(&ours, spec, &mut container, undo);
    let _ = waitpid(intermediate, None);
    outcome?;
    root.save(&container)?;
    if let Some(pid_file) = &opts.pid_file {
        crate::fsutil::write_atomic(pid_file, container.pid.to_string().as_bytes())?;
    }
    Ok(container)
}

/// Answers the children's requests until init reports `Ready` (or an error).
fn supervise_setup(chan: &Channel, spec: &Spec, c: &mut Container, undo: &mut Undo) -> Result<()> {
    loop {
        match chan.recv()? {
            Some(Message::MapIds { pid }) => {
                write_id_maps(spec, pid)?;
                chan.send(&Message::Proceed)?;
            }
            Some(Message::InitPid { pid }) => {
                c.pid = pid;
                c.pid_start_time = process_start_time(pid).unwrap_or(0);
                undo.pid = Some(pid);
                write_oom_score_adj(spec, pid)?;
                chan.send(&Message::Proceed)?;
            }
            Some(Message::RunCreateHooks) => {
                tracing::debug!("rootfs prepared");
                let state = c.oci_state(Status::Creating);
                hooks::run(c.hooks.as_ref(), HookKind::Prestart, &state)?;
                hooks::run(c.hooks.as_ref(), HookKind::CreateRuntime, &state)?;
                chan.send(&Message::State { state })?;
            }
            Some(Message::SeccompNotify) => forward_notify_fd(chan, c)?,
            Some(Message::Ready) => {
                tracing::debug!("init ready");
                return Ok(());
            }
            Some(Message::Error { message }) => return Err(RuntimeError::Setup(message)),
            Some(other) => return Err(RuntimeError::Init(format!("unexpected {other:?}"))),
            None => {
                return Err(RuntimeError::Init(
                    "the container's init exited during setup".into(),
                ))
            }
        }
    }
}

fn forward_notify_fd(chan: &Channel, c: &Container) -> Result<()> {
    let fd = chan
        .take_fd()
        .ok_or_else(|| RuntimeError::Init("the seccomp notify message carried no fd".into()))?;
    let seccomp = c.seccomp.as_ref().expect("notify fds come from a filter");
    crate::seccomp::send_to_agent(seccomp, &fd, c.pid, c.oci_state(Status::Creating))
}

fn write_id_maps(spec: &Spec, pid: i32) -> Result<()> {
    let linux = spec.linux().as_ref();
    let uid = linux
        .and_then(|l| l.uid_mappings().as_deref())
        .unwrap_or(&[]);
    let gid = linux
        .and_then(|l| l.gid_mappings().as_deref())
        .unwrap_or(&[]);
    for (file, maps) in [("uid_map", uid), ("gid_map", gid)] {
        if maps.is_empty() {
            continue;
        }
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, format_maps(maps))
            .map_err(|e| RuntimeError::io("write", &path, e))?;
    }
    Ok(())
}

fn format_maps(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

fn write_oom_score_adj(spec: &Spec, pid: i32) -> Result<()> {
    let adj = spec.process().as_ref().and_then(|p| p.oom_score_adj());
    let Some(adj) = adj else {
        return Ok(());
    };
    let path = format!("/proc/{pid}/oom_score_adj");
    std::fs::write(&path, adj.to_string()).map_err(|e| RuntimeError::io("write", &path, e))
}

fn announce_listen_fds(spec: &mut Spec, listen_fds: u32) {
    if listen_fds == 0 {
        return;
    }
    if let Some(process) = spec.process_mut() {
        let mut env = process.env().clone().unwrap_or_default();
        env.retain(|e| !e.starts_with("LISTEN_FDS=") && !e.starts_with("LISTEN_PID="));
        env.push(format!("LISTEN_FDS={listen_fds}"));
        env.push("LISTEN_PID=1".into());
        process.set_env(Some(env));
    }
}

fn wants_terminal(spec: &Spec) -> bool {
    spec.process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false)
}

/// Removes what a failed create made: the init process, the cgroup, the state dir.
struct Undo<'a> {
    root: &'a StateRoot,
    id: &'a str,
    pid: Option<i32>,
    cgroup: Option<kapsel_cgroups::Cgroup>,
    armed: bool,
}

impl<'a> Undo<'a> {
    fn new(root: &'a StateRoot, id: &'a str) -> Self {
        Undo {
            root,
            id,
            pid: None,
            cgroup: None,
            armed: true,
        }
    }

    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(pid) = self.pid {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            super::wait_gone(pid, std::time::Duration::from_secs(5));
        }
        if let Some(cg) = &self.cgroup {
            super::kill_all(cg, nix::sys::signal::Signal::SIGKILL);
            let _ = cg.destroy();
        }
        let _ = self.root.remove(self.id);
    }
}
