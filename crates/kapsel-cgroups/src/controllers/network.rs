//! net_cls and net_prio: v1-only controllers, skipped when not mounted (v2 leaves traffic
//! classification to eBPF, outside this crate).

use oci_spec::runtime::LinuxNetwork;

use crate::cgroup::{Cgroup, Files};
use crate::error::Result;
use crate::fs;
use crate::hierarchy::Controller;

pub(crate) fn apply(cg: &Cgroup, n: &LinuxNetwork) -> Result<()> {
    if let (Some(id), Some(Files::V1(dir))) = (n.class_id(), cg.files(Controller::NetCls)) {
        fs::write(&dir.join("net_cls.classid"), &id.to_string())?;
    }
    if let (Some(prios), Some(Files::V1(dir))) = (n.priorities(), cg.files(Controller::NetPrio)) {
        // One "<interface> <priority>" per write.
        for p in prios {
            let value = format!("{} {}", p.name(), p.priority());
            fs::write(&dir.join("net_prio.ifpriomap"), &value)?;
        }
    }
    Ok(())
}
