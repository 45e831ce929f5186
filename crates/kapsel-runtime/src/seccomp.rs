//! Which seccomp filter a container's processes get (the filter itself is built by
//! `kapsel-seccomp`), and handing the notify fd to a seccomp agent.

use std::os::fd::{AsRawFd, OwnedFd};

use kapsel_seccomp::Filter;
use oci_spec::runtime::LinuxSeccomp;

use crate::error::{Result, RuntimeError};

/// Builds the filter in the runtime, before forking: errors reach the caller of `create`
/// or `exec`, and the forked process only has to load it.
pub fn filter(seccomp: Option<&LinuxSeccomp>) -> Result<Option<Filter>> {
    seccomp
        .map(kapsel_seccomp::build)
        .transpose()
        .map_err(Into::into)
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
