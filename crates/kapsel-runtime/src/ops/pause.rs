//! `pause` and `resume`, through the cgroup freezer.

use crate::error::{Result, RuntimeError};
use crate::state::{StateRoot, Status};

pub fn pause(root: &StateRoot, id: &str) -> Result<()> {
    let (c, status) = super::load(root, id)?;
    require(id, status, Status::Running, "pause", "running")?;
    Ok(c.cgroup.freeze()?)
}

pub fn resume(root: &StateRoot, id: &str) -> Result<()> {
    let (c, status) = super::load(root, id)?;
    require(id, status, Status::Paused, "resume", "paused")?;
    Ok(c.cgroup.thaw()?)
}

fn require(
    id: &str,
    status: Status,
    wanted: Status,
    action: &'static str,
    name: &'static str,
) -> Result<()> {
    if status == wanted {
        return Ok(());
    }
    Err(RuntimeError::WrongState {
        id: id.into(),
        status: status.to_string(),
        action,
        wanted: name,
    })
}
