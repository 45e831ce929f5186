//! `update`: change a live container's cgroup limits.

use oci_spec::runtime::LinuxResources;

use crate::error::{Result, RuntimeError};
use crate::state::{StateRoot, Status};

pub fn update(root: &StateRoot, id: &str, resources: &LinuxResources) -> Result<()> {
    let (c, status) = super::load(root, id)?;
    if status == Status::Stopped {
        return Err(RuntimeError::WrongState {
            id: id.into(),
            status: status.to_string(),
            action: "update",
            wanted: "created, running or paused",
        });
    }
    Ok(c.cgroup.apply(resources)?)
}
