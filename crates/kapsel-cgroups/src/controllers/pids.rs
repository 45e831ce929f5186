//! The pids controller: how many tasks the container may have.

use oci_spec::runtime::LinuxPids;

use crate::cgroup::Files;
use crate::error::Result;
use crate::fs::{self, read_opt, read_u64_opt};
use crate::stats::Pids;

/// The files have the same names on v1 and v2.
pub(crate) fn apply(f: Files, p: &LinuxPids) -> Result<()> {
    // config.json uses 0 or -1 for "no limit"; the kernel wants "max".
    let value = match p.limit() {
        l if l > 0 => l.to_string(),
        _ => "max".to_string(),
    };
    fs::write(&f.file("pids.max"), &value)
}

pub(crate) fn stats(f: Files, out: &mut Pids) -> Result<()> {
    out.current = read_u64_opt(&f.file("pids.current"))?;
    let max = f.file("pids.max");
    // Unlimited reads as 0, as runc reports it.
    out.limit = match read_opt(&max)? {
        Some(s) if s.trim() == "max" => 0,
        Some(s) => fs::parse_u64(&max, &s)?,
        None => 0,
    };
    Ok(())
}
