//! Applying linux.resources: each section to the controller that handles it.

use oci_spec::runtime::{LinuxBlockIo, LinuxMemory, LinuxResources};

use crate::cgroup::Cgroup;
use crate::controllers::{
    blkio, cpu, cpuset, devices, hugetlb, memory, network, pids, rdma, unified,
};
use crate::error::Result;
use crate::hierarchy::Controller;

/// Sections that are absent (or empty) are not touched. A limit for a controller the host
/// lacks is an error (Unsupported), except for net_cls/net_prio, which only v1 has.
/// Devices go first so the rest runs with the device policy in place; unified last so its
/// raw values override the translated ones, as in runc.
pub(crate) fn apply(cg: &Cgroup, r: &LinuxResources) -> Result<()> {
    if let Some(rules) = r.devices().as_deref().filter(|d| !d.is_empty()) {
        devices::apply(cg.require(Controller::Devices, "device rules")?, rules)?;
    }
    if let Some(c) = r.cpu() {
        // Empty strings mean unset.
        let cpus = c.cpus().as_deref().filter(|s| !s.is_empty());
        let mems = c.mems().as_deref().filter(|s| !s.is_empty());
        if cpus.is_some() || mems.is_some() {
            cpuset::apply(cg.require(Controller::Cpuset, "cpus/mems")?, cpus, mems)?;
        }
        if cpu::requested(c) {
            cpu::apply(cg.require(Controller::Cpu, "cpu limits")?, c)?;
        }
    }
    if let Some(m) = r
        .memory()
        .as_ref()
        .filter(|m| **m != LinuxMemory::default())
    {
        memory::apply(cg.require(Controller::Memory, "memory limits")?, m)?;
    }
    if let Some(p) = r.pids() {
        pids::apply(cg.require(Controller::Pids, "pids limit")?, p)?;
    }
    if let Some(b) = r
        .block_io()
        .as_ref()
        .filter(|b| **b != LinuxBlockIo::default())
    {
        blkio::apply(cg.require(Controller::Blkio, "blockIO limits")?, b)?;
    }
    if let Some(h) = r.hugepage_limits().as_deref().filter(|h| !h.is_empty()) {
        hugetlb::apply(cg.require(Controller::Hugetlb, "hugepage limits")?, h)?;
    }
    if let Some(n) = r.network() {
        network::apply(cg, n)?;
    }
    if let Some(l) = r.rdma().as_ref().filter(|l| !l.is_empty()) {
        rdma::apply(cg.require(Controller::Rdma, "rdma limits")?, l)?;
    }
    if let Some(u) = r.unified().as_ref().filter(|u| !u.is_empty()) {
        unified::apply(cg.unified_files(), u)?;
    }
    Ok(())
}
