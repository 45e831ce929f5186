//! The cpuset controller: which cpus and memory nodes the container may use.

use std::path::Path;

use crate::cgroup::Files;
use crate::error::Result;
use crate::fs::{self, read_opt, read_u64_opt};
use crate::stats::CpuSet;

/// The files have the same names on v1 and v2.
pub(crate) fn apply(f: Files, cpus: Option<&str>, mems: Option<&str>) -> Result<()> {
    for (name, value) in [("cpuset.cpus", cpus), ("cpuset.mems", mems)] {
        if let Some(v) = value {
            fs::write(&f.file(name), v)?;
        }
    }
    Ok(())
}

/// Copies cpus and mems from the parent when empty: a new v1 cpuset has none, and the
/// kernel refuses to add processes to it (ENOSPC) until both are set.
pub(crate) fn inherit_v1(dir: &Path) -> Result<()> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    for name in ["cpuset.cpus", "cpuset.mems"] {
        let file = dir.join(name);
        if fs::read(&file)?.trim().is_empty() {
            let value = fs::read(&parent.join(name))?;
            fs::write(&file, value.trim())?;
        }
    }
    Ok(())
}

pub(crate) fn stats(f: Files, out: &mut CpuSet) -> Result<()> {
    let list = |name: &str| -> Result<Vec<u16>> {
        let file = f.file(name);
        let content = read_opt(&file)?.unwrap_or_default();
        parse_list(&content).ok_or_else(|| fs::parse_err(&file, &content))
    };
    let Files::V1(dir) = f else {
        // v2 has only the lists; the effective ones show what the configured ones resolve to.
        out.cpus = list("cpuset.cpus.effective")?;
        out.mems = list("cpuset.mems.effective")?;
        return Ok(());
    };
    out.cpus = list("cpuset.cpus")?;
    out.mems = list("cpuset.mems")?;
    let num = |name: &str| read_u64_opt(&dir.join(format!("cpuset.{name}")));
    out.cpu_exclusive = num("cpu_exclusive")?;
    out.mem_hardwall = num("mem_hardwall")?;
    out.mem_exclusive = num("mem_exclusive")?;
    out.memory_migrate = num("memory_migrate")?;
    out.memory_spread_page = num("memory_spread_page")?;
    out.memory_spread_slab = num("memory_spread_slab")?;
    out.memory_pressure = num("memory_pressure")?;
    out.sched_load_balance = num("sched_load_balance")?;
    let level = dir.join("cpuset.sched_relax_domain_level");
    if let Some(s) = read_opt(&level)? {
        out.sched_relax_domain_level = s.trim().parse().map_err(|_| fs::parse_err(&level, &s))?;
    }
    Ok(())
}

/// "0-3,5" → [0, 1, 2, 3, 5].
fn parse_list(s: &str) -> Option<Vec<u16>> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        out.extend(lo.parse::<u16>().ok()?..=hi.parse::<u16>().ok()?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists() {
        assert_eq!(parse_list("0-3,5\n"), Some(vec![0, 1, 2, 3, 5]));
        assert_eq!(parse_list("\n"), Some(vec![]));
        assert_eq!(parse_list("x"), None);
    }
}
