//! The cpu controller (shares/weight, bandwidth, realtime, idle) and cpu usage (cpuacct).

use std::path::Path;

use oci_spec::runtime::LinuxCpu;

use crate::cgroup::Files;
use crate::error::{CgroupError, Result};
use crate::fs::{self, read_keyed, read_u64_list, read_u64_opt};
use crate::stats::{CpuUsage, Throttling};

/// Whether `c` sets anything the cpu controller handles (cpus/mems belong to cpuset).
pub(crate) fn requested(c: &LinuxCpu) -> bool {
    c.shares().is_some()
        || c.quota().is_some()
        || c.period().is_some()
        || c.burst().is_some()
        || c.realtime_runtime().is_some()
        || c.realtime_period().is_some()
        || c.idle().is_some()
}

pub(crate) fn apply(f: Files, c: &LinuxCpu) -> Result<()> {
    // 0 shares, quota or period means unset, as in runc (Go zero values).
    let shares = c.shares().filter(|&s| s != 0);
    let quota = c.quota().filter(|&q| q != 0);
    let period = c.period().filter(|&p| p != 0);
    match f {
        Files::V1(dir) => {
            if let Some(s) = shares {
                fs::write(&dir.join("cpu.shares"), &s.to_string())?;
            }
            bandwidth_v1(dir, quota, period)?;
            if let Some(b) = c.burst() {
                fs::write(&dir.join("cpu.cfs_burst_us"), &b.to_string())?;
            }
        }
        Files::V2(dir) => {
            if let Some(s) = shares {
                fs::write(&dir.join("cpu.weight"), &shares_to_weight(s).to_string())?;
            }
            if quota.is_some() || period.is_some() {
                bandwidth_v2(dir, quota, period)?;
            }
            if let Some(b) = c.burst() {
                fs::write(&dir.join("cpu.max.burst"), &b.to_string())?;
            }
        }
    }
    realtime_and_idle(f.dir(), c)
}

/// cpu.shares (2..262144, default 1024) to cpu.weight (1..10000, default 100), the
/// conversion runc and the kernel documentation use.
pub(crate) fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// The kernel checks quota/period against the parent's bandwidth on every write, so a
/// shorter period can be rejected (EINVAL) while the old quota is still in place; then the
/// quota goes first, as runc does.
fn bandwidth_v1(dir: &Path, quota: Option<i64>, period: Option<u64>) -> Result<()> {
    let quota_file = dir.join("cpu.cfs_quota_us");
    let write_quota = |q: i64| fs::write(&quota_file, &q.max(-1).to_string());
    if let Some(p) = period {
        let period_file = dir.join("cpu.cfs_period_us");
        match (fs::write(&period_file, &p.to_string()), quota) {
            (Err(CgroupError::Write { source, .. }), Some(q))
                if source.raw_os_error() == Some(libc::EINVAL) =>
            {
                write_quota(q)?;
                return fs::write(&period_file, &p.to_string());
            }
            (r, _) => r?,
        }
    }
    quota.map_or(Ok(()), write_quota)
}

/// cpu.max is "$QUOTA $PERIOD"; an unset quota keeps the current one, so that updating the
/// period alone does not lift the limit.
fn bandwidth_v2(dir: &Path, quota: Option<i64>, period: Option<u64>) -> Result<()> {
    let file = dir.join("cpu.max");
    let quota = match quota {
        Some(q) if q > 0 => q.to_string(),
        Some(_) => "max".to_string(),
        None => {
            let current = fs::read(&file)?;
            let q = current.split_whitespace().next();
            q.ok_or_else(|| fs::parse_err(&file, &current))?.to_string()
        }
    };
    let value = match period {
        Some(p) => format!("{quota} {p}"),
        None => quota,
    };
    fs::write(&file, &value)
}

/// Realtime files exist only with CONFIG_RT_GROUP_SCHED (never on v2) and cpu.idle only on
/// newer kernels; both are written where present.
fn realtime_and_idle(dir: &Path, c: &LinuxCpu) -> Result<()> {
    // The period first: the runtime must fit in it.
    if let Some(p) = c.realtime_period() {
        fs::write_if_exists(&dir.join("cpu.rt_period_us"), &p.to_string())?;
    }
    if let Some(r) = c.realtime_runtime() {
        fs::write_if_exists(&dir.join("cpu.rt_runtime_us"), &r.to_string())?;
    }
    if let Some(i) = c.idle() {
        fs::write_if_exists(&dir.join("cpu.idle"), &i.to_string())?;
    }
    Ok(())
}

/// Throttling, from the cpu controller's cpu.stat.
pub(crate) fn throttling(f: Files, out: &mut Throttling) -> Result<()> {
    let stat = read_keyed(&f.file("cpu.stat"))?;
    let get = |k: &str| stat.get(k).copied().unwrap_or(0);
    out.periods = get("nr_periods");
    out.throttled_periods = get("nr_throttled");
    out.throttled_time = match f {
        Files::V1(_) => get("throttled_time"),
        Files::V2(_) => get("throttled_usec") * 1000,
    };
    Ok(())
}

/// Usage, from cpuacct on v1 and cpu.stat on v2.
pub(crate) fn usage(f: Files, out: &mut CpuUsage) -> Result<()> {
    match f {
        Files::V1(dir) => usage_v1(dir, out),
        Files::V2(dir) => {
            let stat = read_keyed(&dir.join("cpu.stat"))?;
            let ns = |k: &str| stat.get(k).copied().unwrap_or(0) * 1000;
            out.total = ns("usage_usec");
            out.user = ns("user_usec");
            out.kernel = ns("system_usec");
            Ok(())
        }
    }
}

fn usage_v1(dir: &Path, out: &mut CpuUsage) -> Result<()> {
    out.total = read_u64_opt(&dir.join("cpuacct.usage"))?;
    out.percpu = read_u64_list(&dir.join("cpuacct.usage_percpu"))?;
    out.percpu_kernel = read_u64_list(&dir.join("cpuacct.usage_percpu_sys"))?;
    out.percpu_user = read_u64_list(&dir.join("cpuacct.usage_percpu_user"))?;
    // cpuacct.stat counts clock ticks (USER_HZ).
    let stat = read_keyed(&dir.join("cpuacct.stat"))?;
    // SAFETY: sysconf reads a constant and touches no memory of ours.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ns_per_tick = 1_000_000_000 / u64::try_from(hz).unwrap_or(100).max(1);
    out.user = stat.get("user").copied().unwrap_or(0) * ns_per_tick;
    out.kernel = stat.get("system").copied().unwrap_or(0) * ns_per_tick;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_convert_to_weight() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1), 1);
    }
}
