//! Which seccomp program a container's processes get, and handing the notify fd to a
//! seccomp agent.
//!
//! Compiling a filter (libseccomp generating BPF) costs about 10 ms for Docker's default
//! profile, more than the rest of a container start. The compiled program is kept in the
//! state root, keyed by a hash of the exact config, libseccomp's version and kapsel's: the
//! next container with the same profile loads it with one syscall.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use kapsel_seccomp::Program;
use oci_spec::runtime::LinuxSeccomp;
use sha2::{Digest, Sha256};

use crate::error::{Result, RuntimeError};
use crate::state::StateRoot;

/// Not a valid container id ('@'), so it never collides with a container's directory.
const CACHE_DIR: &str = "@seccomp";

/// The program for `seccomp`, compiled in the runtime before forking: errors reach the
/// caller of `create` or `exec`, and the forked process only has to load it.
pub fn program(root: &StateRoot, seccomp: Option<&LinuxSeccomp>) -> Result<Option<Program>> {
    let Some(seccomp) = seccomp else {
        return Ok(None);
    };
    let cached = cache_path(root, seccomp);
    if let Some(program) = std::fs::read(&cached)
        .ok()
        .and_then(|b| Program::from_bytes(&b))
    {
        return Ok(Some(program));
    }
    let program = kapsel_seccomp::build(seccomp)?.compile()?;
    // The cache is an optimisation: failing to write it must not fail the container.
    if let Some(dir) = cached.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = crate::fsutil::write_atomic(&cached, &program.to_bytes());
    Ok(Some(program))
}

fn cache_path(root: &StateRoot, seccomp: &LinuxSeccomp) -> PathBuf {
    let mut hash = Sha256::new();
    hash.update(serde_json::to_vec(seccomp).expect("serializable"));
    hash.update(kapsel_seccomp::libseccomp_version().as_bytes());
    hash.update(env!("CARGO_PKG_VERSION").as_bytes());
    root.path
        .join(CACHE_DIR)
        .join(format!("{}.bpf", hex::encode(hash.finalize())))
}

/// Sends the notify fd of the process `pid` to the agent at `listenerPath`, with the
/// container process state the runtime spec prescribes.
pub fn send_to_agent(
    seccomp: &LinuxSeccomp,
    fd: &OwnedFd,
    pid: i32,
    state: serde_json::Value,
) -> Result<()> {
    let path = seccomp.listener_path().as_ref().ok_or_else(|| {
        RuntimeError::invalid(
            "linux.seccomp.listenerPath",
            "SCMP_ACT_NOTIFY needs an agent to listen",
        )
    })?;
    let stream = std::os::unix::net::UnixStream::connect(path)
        .map_err(|e| RuntimeError::io("connect to the seccomp agent", path, e))?;
    let message = serde_json::json!({
        "ociVersion": "1.2.0",
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": seccomp.listener_metadata().clone().unwrap_or_default(),
        "state": state,
    });
    let data = serde_json::to_vec(&message).expect("serializable");
    crate::console::send_fd(&OwnedFd::from(stream), &data, fd.as_raw_fd())
}
