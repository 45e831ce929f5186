//! `state`: the container's state as the OCI spec defines it.

use crate::error::Result;
use crate::state::StateRoot;

pub fn state(root: &StateRoot, id: &str) -> Result<serde_json::Value> {
    let (c, status) = super::load(root, id)?;
    Ok(c.oci_state(status))
}
