//! `ps`: the container's processes (host PIDs).

use crate::error::Result;
use crate::state::StateRoot;

pub fn ps(root: &StateRoot, id: &str) -> Result<Vec<i32>> {
    let (c, _) = super::load(root, id)?;
    Ok(c.cgroup.procs()?)
}
