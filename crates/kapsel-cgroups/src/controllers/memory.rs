//! The memory controller: limits and usage.

use std::path::Path;

use oci_spec::runtime::LinuxMemory;

use crate::cgroup::Files;
use crate::error::{CgroupError, Result};
use crate::fs::{self, read_keyed, read_u64_opt};
use crate::stats::{Memory, MemoryEntry};

/// memory.use_hierarchy is always on in current kernels, and checkBeforeUpdate is a runc
/// behaviour, so neither is written.
pub(crate) fn apply(f: Files, m: &LinuxMemory) -> Result<()> {
    // 0 means unset, as in runc (Go zero values); written, it would OOM-kill at once.
    let limit = m.limit().filter(|&v| v != 0);
    let swap = m.swap().filter(|&v| v != 0);
    let reservation = m.reservation().filter(|&v| v != 0);
    match f {
        Files::V1(dir) => {
            limit_and_swap_v1(dir, limit, swap)?;
            if let Some(r) = reservation {
                fs::write(&dir.join("memory.soft_limit_in_bytes"), &r.to_string())?;
            }
            kernel_v1(dir, m)?;
            other_v1(dir, m)
        }
        // v2 has no kernel memory limits, per-cgroup swappiness or OOM-killer switch; runc
        // ignores them there too.
        Files::V2(dir) => {
            if let Some(l) = limit {
                fs::write(&dir.join("memory.max"), &max_or(l))?;
            }
            swap_v2(dir, limit, swap)?;
            if let Some(r) = reservation {
                fs::write(&dir.join("memory.low"), &max_or(r))?;
            }
            Ok(())
        }
    }
}

/// A negative limit is "unlimited" in config.json.
fn max_or(v: i64) -> String {
    if v < 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

/// v1 memsw is memory+swap and the kernel keeps limit <= memsw after every write, so the
/// order of the two writes depends on whether the limits go up or down.
fn limit_and_swap_v1(dir: &Path, limit: Option<i64>, swap: Option<i64>) -> Result<()> {
    let limit_file = dir.join("memory.limit_in_bytes");
    let swap_file = dir.join("memory.memsw.limit_in_bytes");
    // Unlimited memory with swap unset means unlimited memory+swap: a finite memsw would be
    // below the new limit and rejected.
    let swap = match (limit, swap) {
        (Some(-1), None) if swap_file.exists() => Some(-1),
        _ => swap,
    };
    let write_limit = |v: i64| fs::write(&limit_file, &v.to_string());
    let write_swap = |v: i64| fs::write(&swap_file, &v.to_string());
    match (limit, swap) {
        (Some(l), Some(s)) => {
            let current = fs::parse_u64(&limit_file, &fs::read(&limit_file)?)?;
            // Raising memsw first is valid when it stays >= the current limit; otherwise
            // the limit is coming down below it, so lower the limit first.
            if s < 0 || current <= s as u64 {
                write_swap(s)?;
                write_limit(l)
            } else {
                write_limit(l)?;
                write_swap(s)
            }
        }
        (Some(l), None) => write_limit(l),
        (None, Some(s)) => write_swap(s),
        (None, None) => Ok(()),
    }
}

/// Kernel memory limits are gone from recent kernels; written only where the files exist.
fn kernel_v1(dir: &Path, m: &LinuxMemory) -> Result<()> {
    #[allow(deprecated)] // the field is deprecated because v2 lacks it; v1 still has it
    if let Some(k) = m.kernel() {
        fs::write_if_exists(&dir.join("memory.kmem.limit_in_bytes"), &k.to_string())?;
    }
    if let Some(k) = m.kernel_tcp() {
        fs::write_if_exists(&dir.join("memory.kmem.tcp.limit_in_bytes"), &k.to_string())?;
    }
    Ok(())
}

fn other_v1(dir: &Path, m: &LinuxMemory) -> Result<()> {
    if let Some(s) = m.swappiness() {
        if s > 100 {
            return Err(CgroupError::InvalidValue {
                what: "memory.swappiness".to_string(),
                why: format!("{s} is above 100"),
            });
        }
        fs::write(&dir.join("memory.swappiness"), &s.to_string())?;
    }
    if let Some(d) = m.disable_oom_killer() {
        fs::write(&dir.join("memory.oom_control"), if d { "1" } else { "0" })?;
    }
    Ok(())
}

/// v2 memory.swap.max is swap alone, config.json's swap is memory+swap (as in v1).
fn swap_v2(dir: &Path, limit: Option<i64>, swap: Option<i64>) -> Result<()> {
    let file = dir.join("memory.swap.max");
    let value = match (limit, swap) {
        // Same rule as v1: unlimited memory with swap unset makes swap unlimited too.
        (Some(-1), None) if file.exists() => -1,
        (_, None) => return Ok(()),
        (_, Some(s)) if s < 0 => -1,
        (Some(l), Some(s)) if l > 0 && s >= l => s - l,
        (l, Some(s)) => {
            return Err(CgroupError::InvalidValue {
                what: "memory swap".to_string(),
                why: format!("memory+swap {s} needs a memory limit at most that large, got {l:?}"),
            })
        }
    };
    fs::write(&file, &max_or(value))
}

/// How many processes the OOM killer has killed in this cgroup.
pub(crate) fn oom_kills(f: Files) -> Result<u64> {
    Ok(read_keyed(&oom_events_file(f))?
        .get("oom_kill")
        .copied()
        .unwrap_or(0))
}

/// The file that counts OOM kills as `oom_kill N`: v1's memory.oom_control, v2's
/// memory.events.
pub(crate) fn oom_events_file(f: Files) -> std::path::PathBuf {
    match f {
        Files::V1(dir) => dir.join("memory.oom_control"),
        Files::V2(dir) => dir.join("memory.events"),
    }
}

pub(crate) fn stats(f: Files, out: &mut Memory) -> Result<()> {
    match f {
        Files::V1(dir) => stats_v1(dir, out),
        Files::V2(dir) => stats_v2(dir, out),
    }
}

fn stats_v1(dir: &Path, out: &mut Memory) -> Result<()> {
    out.raw = read_keyed(&dir.join("memory.stat"))?;
    out.cache = out.raw.get("cache").copied().unwrap_or(0);
    out.usage = entry_v1(dir, "memory")?;
    out.swap = entry_v1(dir, "memory.memsw")?;
    out.kernel = entry_v1(dir, "memory.kmem")?;
    out.kernel_tcp = entry_v1(dir, "memory.kmem.tcp")?;
    Ok(())
}

fn entry_v1(dir: &Path, prefix: &str) -> Result<MemoryEntry> {
    let read = |name: &str| read_u64_opt(&dir.join(format!("{prefix}.{name}")));
    Ok(MemoryEntry {
        limit: read("limit_in_bytes")?,
        usage: read("usage_in_bytes")?,
        max: read("max_usage_in_bytes")?,
        failcnt: read("failcnt")?,
    })
}

fn stats_v2(dir: &Path, out: &mut Memory) -> Result<()> {
    let read = |name: &str| read_u64_opt(&dir.join(name));
    out.raw = read_keyed(&dir.join("memory.stat"))?;
    out.cache = out.raw.get("file").copied().unwrap_or(0);
    let events = read_keyed(&dir.join("memory.events"))?;
    out.usage = MemoryEntry {
        limit: read("memory.max")?,
        usage: read("memory.current")?,
        max: read("memory.peak")?,
        failcnt: events.get("max").copied().unwrap_or(0),
    };
    // runc reports v2 swap as memory+swap, so it reads like v1's memsw.
    let swap_limit = read("memory.swap.max")?;
    out.swap = MemoryEntry {
        limit: swap_limit.saturating_add(out.usage.limit),
        usage: read("memory.swap.current")? + out.usage.usage,
        max: 0,
        failcnt: 0,
    };
    Ok(())
}
