//! One module per controller: how its part of linux.resources is written and how its usage
//! is read, for v1 and v2 files.

mod blkio;
mod bpf;
mod cpu;
pub(crate) mod cpuset;
mod devices;
pub(crate) mod freezer;
mod hugetlb;
pub(crate) mod memory;
mod network;
mod pids;
mod rdma;
pub(crate) mod resources;
mod unified;

pub use freezer::FreezerState;

use crate::cgroup::Cgroup;
use crate::error::Result;
use crate::hierarchy::Controller;
use crate::stats::Stats;

/// Usage from every controller the host has; the others stay zero.
pub(crate) fn stats(cg: &Cgroup) -> Result<Stats> {
    let mut s = Stats::default();
    if let Some(f) = cg.files(Controller::Cpu) {
        cpu::throttling(f, &mut s.cpu.throttling)?;
    }
    if let Some(f) = cg.files(Controller::Cpuacct) {
        cpu::usage(f, &mut s.cpu.usage)?;
    }
    if let Some(f) = cg.files(Controller::Cpuset) {
        cpuset::stats(f, &mut s.cpuset)?;
    }
    if let Some(f) = cg.files(Controller::Memory) {
        memory::stats(f, &mut s.memory)?;
    }
    if let Some(f) = cg.files(Controller::Pids) {
        pids::stats(f, &mut s.pids)?;
    }
    if let Some(f) = cg.files(Controller::Blkio) {
        blkio::stats(f, &mut s.blkio)?;
    }
    if let Some(f) = cg.files(Controller::Hugetlb) {
        hugetlb::stats(f, &mut s.hugetlb)?;
    }
    Ok(s)
}
