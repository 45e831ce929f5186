//! cgroups for kapsel containers on v1, v2 and hybrid hosts.
//!
//! The host's layout is detected at run time ([`Hierarchy::detect`]); a [`Cgroup`] is one
//! container's cgroup, present in every hierarchy the host has. Controllers mounted as v1 are
//! driven through their v1 files; controllers only available on the unified (v2) mount are
//! driven through v2 files, which is what a hybrid host (v1 controllers plus a cgroup2 mount
//! holding e.g. hugetlb) needs.
//!
//! Written by hand rather than taken from `cgroups-rs`: kapsel needs per-controller placement
//! on hybrid hosts, a small dependency tree and exact control over the order of writes.

mod cgroup;
mod controllers;
mod error;
mod fs;
mod hierarchy;
mod path;
mod placement;
mod stats;
#[cfg(test)]
mod v2_tests;

pub use cgroup::Cgroup;
pub use controllers::FreezerState;
pub use error::{CgroupError, Result};
pub use hierarchy::{Controller, Hierarchy, Layout};
pub use path::CgroupPath;
pub use placement::ThreadPlacement;
pub use stats::{
    Blkio, BlkioEntry, Cpu, CpuSet, CpuUsage, Hugetlb, Memory, MemoryEntry, Pids, Stats, Throttling,
};
