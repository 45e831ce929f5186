//! The rdma controller: per-device HCA handle and object limits.

use std::collections::HashMap;

use oci_spec::runtime::LinuxRdma;

use crate::cgroup::Files;
use crate::error::Result;
use crate::fs;

/// rdma.max has the same name and format on v1 and v2: "<device> hca_handle=N hca_object=M",
/// one device per write; an unset limit is left as it is.
pub(crate) fn apply(f: Files, limits: &HashMap<String, LinuxRdma>) -> Result<()> {
    for (device, l) in limits {
        let handle = l.hca_handles().map(|n| format!(" hca_handle={n}"));
        let object = l.hca_objects().map(|n| format!(" hca_object={n}"));
        if handle.is_none() && object.is_none() {
            continue;
        }
        let value = format!(
            "{device}{}{}",
            handle.unwrap_or_default(),
            object.unwrap_or_default()
        );
        fs::write(&f.file("rdma.max"), &value)?;
    }
    Ok(())
}
