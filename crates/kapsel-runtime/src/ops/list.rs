//! `list`: every container under the state root with its status.

use crate::error::Result;
use crate::state::StateRoot;

/// The OCI state of each container, sorted by id.
pub fn list(root: &StateRoot) -> Result<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    for id in root.ids()? {
        // A container deleted while listing is simply not listed.
        if let Ok((c, status)) = super::load(root, &id) {
            out.push(c.oci_state(status));
        }
    }
    Ok(out)
}
