//! The processes the runtime forks to become a container.
//!
//! `create` forks an intermediate process, born in the container's cgroup (see `spawn`),
//! which joins the namespaces named by path, unshares the new ones (a new user namespace first, while the
//! runtime writes its id maps), and forks the container's init: the first process of a new
//! PID namespace must be a child of the process that unshared it. The intermediate reports
//! init's host PID and exits. Init sets up the root filesystem and the process, reports
//! `Ready`, and blocks on the exec fifo until `start`.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use kapsel_cgroups::Cgroup;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::{umask, Mode};
use nix::unistd::{fork, getpid, sethostname, setsid, ForkResult};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::channel::{Channel, Message};
use crate::error::{Result, RuntimeError, SysContext};
use crate::hooks::{self, HookKind};
use crate::namespaces;
use crate::rootfs::{self, MountContext};
use crate::spec::creates_namespace;

/// Everything the forked processes need; built by `create` before forking.
pub struct InitConfig<'a> {
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub cgroup: &'a Cgroup,
    /// O_PATH fd of the exec fifo, reopened for writing from inside the container.
    pub fifo: &'a OwnedFd,
    pub console: Option<OwnedFd>,
    pub no_pivot: bool,
    pub preserve_fds: u32,
    pub seccomp: Option<&'a kapsel_seccomp::Program>,
}

/// The intermediate process. Never returns.
pub fn intermediate(cfg: InitConfig, chan: Channel) -> ! {
    if let Err(e) = enter_namespaces(&cfg, &chan).and_then(|_| shield_exe()) {
        fail(&chan, &e);
    }
    // SAFETY: this process is single-threaded (it was forked from the single-threaded
    // runtime), so the child may run arbitrary code.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => container_init(cfg, chan),
        Ok(ForkResult::Parent { child }) => {
            let _ = chan.send(&Message::InitPid {
                pid: child.as_raw(),
            });
            std::process::exit(0)
        }
        Err(e) => fail(&chan, &RuntimeError::sys("fork the container's init", e)),
    }
}

/// Until it execs the container's program, init runs the runtime's binary inside the
/// container's PID namespace. Non-dumpable, its /proc/PID/exe cannot be opened by container
/// processes without CAP_SYS_PTRACE (who could otherwise write the host binary through it
/// once it is no longer busy: the CVE-2019-5736 class). execve makes the program dumpable
/// again as usual. Inherited by init and by `exec`'s process.
pub fn shield_exe() -> Result<()> {
    nix::sys::prctl::set_dumpable(false).ctx(|| "prctl PR_SET_DUMPABLE")
}

fn fail(chan: &Channel, err: &RuntimeError) -> ! {
    chan.report(err);
    std::process::exit(1)
}

fn enter_namespaces(cfg: &InitConfig, chan: &Channel) -> Result<()> {
    let ns = crate::spec::namespaces(cfg.spec);
    namespaces::join_paths(ns)?;
    if creates_namespace(cfg.spec, LinuxNamespaceType::User) {
        namespaces::unshare_user()?;
        chan.send(&Message::MapIds {
            pid: getpid().as_raw(),
        })?;
        chan.wait_proceed()?;
        become_root()?;
    }
    namespaces::unshare_new(ns)?;
    if creates_namespace(cfg.spec, LinuxNamespaceType::Time) {
        write_time_offsets(cfg.spec)?;
    }
    Ok(())
}

/// Inside a new user namespace: act as its root, so files and mounts are owned by it.
fn become_root() -> Result<()> {
    let zero_u = nix::unistd::Uid::from_raw(0);
    let zero_g = nix::unistd::Gid::from_raw(0);
    nix::unistd::setresgid(zero_g, zero_g, zero_g)
        .ctx(|| "setgid 0 in the user namespace (is gid 0 mapped?)")?;
    nix::unistd::setresuid(zero_u, zero_u, zero_u)
        .ctx(|| "setuid 0 in the user namespace (is uid 0 mapped?)")
}

/// `linux.timeOffsets`: written after unsharing the time namespace, before its first process.
fn write_time_offsets(spec: &Spec) -> Result<()> {
    let offsets = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref());
    let Some(offsets) = offsets else {
        return Ok(());
    };
    let mut text = String::new();
    for (clock, off) in offsets {
        let secs = off.secs().unwrap_or(0);
        let nanos = off.nanosecs().unwrap_or(0);
        text.push_str(&format!("{clock} {secs} {nanos}\n"));
    }
    std::fs::write("/proc/self/timens_offsets", text)
        .map_err(|e| RuntimeError::io("write", "/proc/self/timens_offsets", e))
}

/// The container's init. Never returns: it execs the container's program or exits.
fn container_init(cfg: InitConfig, chan: Channel) -> ! {
    match setup_container(&cfg, &chan) {
        Ok((prepared, state)) => {
            let err = match wait_for_start(&cfg, state) {
                Ok(()) => prepared.exec(cfg.preserve_fds),
                Err(e) => e,
            };
            // After `Ready` the runtime is gone: stderr is all that is left.
            eprintln!("kapsel-runtime init: {err}");
            std::process::exit(127)
        }
        Err(e) => fail(&chan, &e),
    }
}

fn setup_container(
    cfg: &InitConfig,
    chan: &Channel,
) -> Result<(crate::process::Prepared, serde_json::Value)> {
    // The runtime learns init's PID from the intermediate first; messages from init must
    // not overtake that one.
    chan.wait_proceed()?;
    setsid().ctx(|| "setsid")?;
    // Device nodes and mount points get exactly the modes config.json gives.
    umask(Mode::empty());
    set_names(cfg.spec)?;
    let ctx = MountContext {
        rootfs: cfg.rootfs,
        bundle: cfg.bundle,
        in_userns: creates_namespace(cfg.spec, LinuxNamespaceType::User),
        own_cgroupns: creates_namespace(cfg.spec, LinuxNamespaceType::Cgroup),
    };
    rootfs::prepare(&ctx, cfg.spec, cfg.cgroup)?;
    chan.send(&Message::RunCreateHooks)?;
    let state = match chan.recv()? {
        Some(Message::State { state }) => state,
        other => return Err(RuntimeError::Init(format!("expected state, got {other:?}"))),
    };
    hooks::run(cfg.spec.hooks().as_ref(), HookKind::CreateContainer, &state)?;
    rootfs::enter(cfg.rootfs, cfg.spec, cfg.no_pivot)?;
    write_sysctls(cfg.spec)?;
    let process = cfg
        .spec
        .process()
        .as_ref()
        .expect("validated: process present");
    // /dev/console is made before the root turns read-only.
    if let Some(console) = &cfg.console {
        crate::process::attach_terminal(process, console)?;
        rootfs::bind_console()?;
    }
    rootfs::finish(cfg.spec)?;
    let mut prepared = crate::process::prepare(process, cfg.seccomp)?;
    if let Some(fd) = prepared.seccomp_notify.take() {
        chan.send_fd(&Message::SeccompNotify, &fd)?;
    }
    chan.send(&Message::Ready)?;
    Ok((prepared, state))
}

fn set_names(spec: &Spec) -> Result<()> {
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        sethostname(h).ctx(|| format!("sethostname {h}"))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        let c = std::ffi::CString::new(d).unwrap_or_default();
        // SAFETY: setdomainname reads `len` bytes from a valid buffer.
        if unsafe { libc::setdomainname(c.as_ptr(), d.len()) } != 0 {
            return Err(RuntimeError::Init(format!(
                "setdomainname {d}: {}",
                std::io::Error::last_os_error()
            )));
        }
    }
    Ok(())
}

/// `linux.sysctl`, written through the container's own /proc/sys.
fn write_sysctls(spec: &Spec) -> Result<()> {
    let sysctls = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref());
    for (key, value) in sysctls.into_iter().flatten() {
        if key.contains("..") {
            return Err(RuntimeError::invalid(
                "linux.sysctl",
                format!("{key:?} is not a sysctl name"),
            ));
        }
        let path = Path::new("/proc/sys").join(key.replace('.', "/"));
        rootfs::safe::write_proc(&path, value)?;
    }
    Ok(())
}

/// Blocks until `start` opens the exec fifo for reading, runs the startContainer hooks, and
/// only when they succeed writes the byte that tells `start` the program is released (so a
/// failing hook fails `start`: it reads end-of-file instead).
fn wait_for_start(cfg: &InitConfig, mut state: serde_json::Value) -> Result<()> {
    let path = format!("/proc/self/fd/{}", cfg.fifo.as_raw_fd());
    let fifo = open(
        Path::new(&path),
        OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| "open the exec fifo (is /proc mounted in the container?)")?;
    state["status"] = "running".into();
    hooks::run(cfg.spec.hooks().as_ref(), HookKind::StartContainer, &state)?;
    nix::unistd::write(&fifo, b"0").ctx(|| "write to the exec fifo")?;
    Ok(())
}
