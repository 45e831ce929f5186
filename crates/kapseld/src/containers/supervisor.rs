//! Starting a container (or an exec'd process) under a `kapsel-shim`, and learning when it
//! ended. The shim, not kapseld, is the container's parent: it holds the stdio, writes the
//! log and records the exit status in `exit.json`, so containers outlive the daemon.
//!
//! Contract with kapsel-shim (crates/kapsel-shim): fd 3 is the listening attach socket
//! (clients queued on it before the spawn see all output), fd 4 the readiness pipe, on
//! which the shim writes `{"pid":N}` or `{"error":"..."}`.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tokio::io::AsyncReadExt;

use super::ContainerError;

/// Where the helper programs are.
#[derive(Debug, Clone)]
pub struct Programs {
    pub runtime: PathBuf,
    pub shim: PathBuf,
    /// The runtime's state directory (`--root`).
    pub runtime_root: PathBuf,
}

/// The log settings passed to the shim (`--log-opt` and daemon defaults).
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// `json-file` or `none`.
    pub driver: String,
    pub path: PathBuf,
    pub max_size: u64,
    pub max_file: u32,
    pub compress: bool,
}

/// What to run: a container from its bundle, or a process in a running container.
pub enum Target<'a> {
    Bundle(&'a Path),
    Exec(&'a Path),
}

pub struct Launch<'a> {
    pub id: &'a str,
    /// The shim's directory: attach.sock, pid, exit.json, runtime.log.
    pub dir: &'a Path,
    pub target: Target<'a>,
    pub tty: bool,
    pub stdin: bool,
    pub log: &'a LogOptions,
    pub attach: UnixListener,
    /// The cgroup file counting OOM kills, which the shim reads at the exit.
    pub oom_file: Option<PathBuf>,
}

/// A running shim and the process it watches.
#[derive(Debug, Clone, Copy)]
pub struct Started {
    pub shim_pid: i32,
    pub shim_start_time: u64,
    pub pid: i32,
}

#[derive(Deserialize)]
struct Readiness {
    pid: Option<i32>,
    error: Option<String>,
}

/// Spawns the shim and waits until the process runs (or failed to start).
pub async fn launch(programs: &Programs, launch: Launch<'_>) -> Result<Started, ContainerError> {
    let (ready_read, ready_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| ContainerError::io("creating the readiness pipe", e.into()))?;
    let mut cmd = tokio::process::Command::new(&programs.shim);
    cmd.arg("--runtime")
        .arg(&programs.runtime)
        .arg("--runtime-root")
        .arg(&programs.runtime_root)
        .args(["--id", launch.id])
        .arg("--dir")
        .arg(launch.dir);
    match launch.target {
        Target::Bundle(b) => cmd.arg("--bundle").arg(b),
        Target::Exec(p) => cmd.arg("--exec-process").arg(p),
    };
    if launch.tty {
        cmd.arg("--tty");
    }
    if launch.stdin {
        cmd.arg("--stdin");
    }
    let log = launch.log;
    cmd.args(["--log-driver", &log.driver]);
    if log.driver != "none" {
        cmd.arg("--log-path").arg(&log.path);
        if log.max_size > 0 {
            cmd.args(["--log-max-size", &log.max_size.to_string()]);
            cmd.args(["--log-max-file", &log.max_file.max(1).to_string()]);
            if log.compress {
                cmd.arg("--log-compress");
            }
        }
    }
    if let Some(file) = &launch.oom_file {
        cmd.arg("--oom-file").arg(file);
    }
    let (listen_fd, ready_fd) = (launch.attach.as_raw_fd(), ready_write.as_raw_fd());
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: only async-signal-safe dup2 calls between fork and exec; dup2 clears
    // close-on-exec on the new descriptors, so exactly fds 3 and 4 reach the shim.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(listen_fd, 3) < 0 || libc::dup2(ready_fd, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| {
        ContainerError::io(
            &format!(
                "starting {} (is kapsel installed?)",
                programs.shim.display()
            ),
            e,
        )
    })?;
    let shim_pid = child.id().unwrap_or_default() as i32;
    // The shim runs on its own; tokio reaps it when it exits.
    drop(child);
    drop(ready_write);
    drop(launch.attach);
    let report = read_readiness(ready_read).await?;
    let shim_start_time = kapsel_runtime::state::process_start_time(shim_pid).unwrap_or(0);
    match report {
        Readiness { pid: Some(pid), .. } => Ok(Started {
            shim_pid,
            shim_start_time,
            pid,
        }),
        Readiness {
            error: Some(message),
            ..
        } => Err(ContainerError::StartFailed(message)),
        _ => Err(ContainerError::StartFailed(format!(
            "kapsel-shim ended without starting the process; see {}",
            launch.dir.join("shim.log").display()
        ))),
    }
}

async fn read_readiness(fd: OwnedFd) -> Result<Readiness, ContainerError> {
    let mut pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(fd)
        .map_err(|e| ContainerError::io("reading the readiness pipe", e))?;
    let mut text = String::new();
    pipe.read_to_string(&mut text)
        .await
        .map_err(|e| ContainerError::io("reading the readiness pipe", e))?;
    Ok(serde_json::from_str(text.trim()).unwrap_or(Readiness {
        pid: None,
        error: None,
    }))
}

/// Waits until process `pid` has exited (it need not be our child: a shim adopted after a
/// daemon restart is not). Returns at once when it is already gone.
pub async fn wait_for_exit(pid: i32, start_time: u64) -> Result<(), ContainerError> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Ok(());
    }
    // SAFETY: a new descriptor, owned only here.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // The PID may have been recycled between the record and the pidfd_open.
    if start_time != 0 && kapsel_runtime::state::process_start_time(pid) != Some(start_time) {
        return Ok(());
    }
    // SAFETY: the AsyncFd owns the OwnedFd, which stays open until the AsyncFd drops.
    let async_fd = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE)
    }
    .map_err(|e| ContainerError::io("watching the shim", e.into()))?;
    let _ = async_fd.readable().await;
    Ok(())
}

/// How the process ended, as the shim recorded it.
#[derive(Debug, Clone, Deserialize)]
pub struct ExitStatus {
    pub exit_code: i64,
    pub finished_at: String,
    /// The OOM killer killed a process of the container (absent from older shims).
    #[serde(default)]
    pub oom_killed: bool,
}

/// The shim's `exit.json` in `dir`, if it wrote one.
pub fn read_exit(dir: &Path) -> Option<ExitStatus> {
    let text = std::fs::read_to_string(dir.join("exit.json")).ok()?;
    serde_json::from_str(&text).ok()
}
