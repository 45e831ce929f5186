//! A container's resource usage in the shape of Docker's stats (the API's
//! ContainerStatsResponse): its cgroup's counters read through kapsel-cgroups (v1, v2 or
//! hybrid), the host's CPU time and memory from /proc, and the network counters of its
//! network namespace. Nothing here knows about HTTP or timing: the API layer samples once a
//! second and chains the samples with [`Series`].
//!
//! Docker's shapes are kept per cgroup version, because clients compute from them: on v1
//! `percpu_usage`, `max_usage`, `failcnt` and the eight blkio lists (the kernel's op names)
//! and memory.stat's v1 keys (`total_inactive_file`, `cache`, ...); on v2 no per-CPU usage,
//! only `io_service_bytes_recursive` with ops `read`/`write`, and memory.stat's v2 keys
//! (`inactive_file`, `file`, ...). The docker CLI's memory figure is `usage` minus
//! `total_inactive_file` (v1) or `inactive_file` (v2).

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::SystemTime;

use kapsel_cgroups::{Cgroup, CgroupPath, Controller, Hierarchy};
use serde::Serialize;

use super::record::{Record, ZERO_TIME};
use super::{Container, EngineConfig};

/// One stats object, as dockerd encodes it (field order and `omitempty` included).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsResponse {
    pub read: String,
    pub preread: String,
    pub pids_stats: PidsStats,
    pub blkio_stats: BlkioStats,
    /// Windows only; always 0 on Linux.
    pub num_procs: u32,
    /// Windows only; always empty on Linux.
    pub storage_stats: StorageStats,
    pub cpu_stats: CpuStats,
    pub precpu_stats: CpuStats,
    pub memory_stats: MemoryStats,
    /// "/name".
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Per interface, `lo` left out; absent when the container has no other interface.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub networks: Option<BTreeMap<String, NetworkStats>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PidsStats {
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    /// 0 (left out) when unlimited.
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

/// `None` lists are `null`, as Docker sends the ones a cgroup version does not have.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BlkioStats {
    pub io_service_bytes_recursive: Option<Vec<BlkioStatEntry>>,
    pub io_serviced_recursive: Option<Vec<BlkioStatEntry>>,
    pub io_queue_recursive: Option<Vec<BlkioStatEntry>>,
    pub io_service_time_recursive: Option<Vec<BlkioStatEntry>>,
    pub io_wait_time_recursive: Option<Vec<BlkioStatEntry>>,
    pub io_merged_recursive: Option<Vec<BlkioStatEntry>>,
    pub io_time_recursive: Option<Vec<BlkioStatEntry>>,
    pub sectors_recursive: Option<Vec<BlkioStatEntry>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BlkioStatEntry {
    pub major: u64,
    pub minor: u64,
    pub op: String,
    pub value: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StorageStats {}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CpuStats {
    pub cpu_usage: CpuUsage,
    /// The host's CPU time since boot in nanoseconds, as dockerd computes it: the first
    /// seven fields of /proc/stat's `cpu` line, in clock ticks, × 1e9 / CLK_TCK.
    #[serde(rename = "system_cpu_usage", skip_serializing_if = "is_zero")]
    pub system_cpu_usage: u64,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub online_cpus: u32,
    pub throttling_data: ThrottlingData,
}

/// Nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CpuUsage {
    pub total_usage: u64,
    /// v1 only (cpuacct.usage_percpu).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_usage: Vec<u64>,
    pub usage_in_kernelmode: u64,
    pub usage_in_usermode: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ThrottlingData {
    pub periods: u64,
    pub throttled_periods: u64,
    /// Nanoseconds.
    pub throttled_time: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MemoryStats {
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    /// v1 only.
    #[serde(skip_serializing_if = "is_zero")]
    pub max_usage: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub stats: BTreeMap<String, u64>,
    /// v1 only.
    #[serde(skip_serializing_if = "is_zero")]
    pub failcnt: u64,
    /// The container's limit, or the host's memory when that is smaller (unlimited).
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NetworkStats {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

impl StatsResponse {
    /// What Docker answers for a container that is not running: zero values, its name and ID.
    pub fn zero(record: &Record) -> StatsResponse {
        StatsResponse::zero_named(&record.name, &record.id)
    }

    fn zero_named(name: &str, id: &str) -> StatsResponse {
        StatsResponse {
            read: ZERO_TIME.to_string(),
            preread: ZERO_TIME.to_string(),
            pids_stats: PidsStats::default(),
            blkio_stats: BlkioStats::default(),
            num_procs: 0,
            storage_stats: StorageStats {},
            cpu_stats: CpuStats::default(),
            precpu_stats: CpuStats::default(),
            memory_stats: MemoryStats::default(),
            name: format!("/{name}"),
            id: id.to_string(),
            networks: None,
        }
    }
}

/// Successive samples of one container: each carries the one before as `precpu_stats` and
/// `preread` (zeros for the first), as dockerd chains them.
#[derive(Debug, Default)]
pub struct Series {
    previous: Option<(CpuStats, String)>,
}

impl Series {
    pub fn next(&mut self, mut sample: StatsResponse) -> StatsResponse {
        if let Some((cpu, read)) = self.previous.take() {
            sample.precpu_stats = cpu;
            sample.preread = read;
        }
        self.previous = Some((sample.cpu_stats.clone(), sample.read.clone()));
        sample
    }
}

/// A sample of a running (or paused) container; `None` when it does not run, or when its
/// cgroup cannot be read (it is exiting: the caller answers zeros then, as Docker does).
pub fn sample(config: &EngineConfig, container: &Container) -> Option<StatsResponse> {
    let record = container.snapshot();
    if !record.state.status.is_live() {
        return None;
    }
    match collect(config, &record) {
        Ok(s) => Some(s),
        Err(e) => {
            // A container that just exited loses its cgroup before its record says so.
            let alive = record.state.pid > 0
                && nix::sys::signal::kill(nix::unistd::Pid::from_raw(record.state.pid), None)
                    .is_ok();
            if alive && container.snapshot().state.status.is_live() {
                tracing::warn!(container = %record.id, "reading the container's stats: {e}");
            }
            None
        }
    }
}

/// The host's cgroup layout, detected once.
fn hierarchy() -> Result<&'static Hierarchy, String> {
    static HIERARCHY: OnceLock<Result<Hierarchy, String>> = OnceLock::new();
    HIERARCHY
        .get_or_init(|| Hierarchy::detect().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(Clone::clone)
}

/// The container's cgroup: `/<cgroup_parent>/<id>` in every hierarchy, as started.
pub fn container_cgroup(config: &EngineConfig, id: &str) -> Result<Cgroup, String> {
    let path = CgroupPath::parse(&format!("/{}/{}", config.cgroup_parent, id))
        .map_err(|e| e.to_string())?;
    Cgroup::new(hierarchy()?, &path).map_err(|e| e.to_string())
}

fn collect(config: &EngineConfig, record: &Record) -> Result<StatsResponse, String> {
    let cg = container_cgroup(config, &record.id)?;
    let stats = cg.stats().map_err(|e| e.to_string())?;
    let host = HostCpu::read().unwrap_or_default();
    let mut out = convert(&stats, Versions::of(&cg), &host, machine_memory());
    out.read = now_rfc3339();
    out.name = format!("/{}", record.name);
    out.id = record.id.clone();
    if record.host_config.network_mode != "host" && record.state.pid > 0 {
        let dev = std::fs::read_to_string(format!("/proc/{}/net/dev", record.state.pid));
        out.networks = dev
            .ok()
            .map(|t| parse_net_dev(&t))
            .filter(|n| !n.is_empty());
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// Which cgroup version each part was read from; `None` where the host lacks the
/// controller.
#[derive(Debug, Clone, Copy, Default)]
struct Versions {
    cpu: Option<Version>,
    memory: Option<Version>,
    blkio: Option<Version>,
    pids: Option<Version>,
}

impl Versions {
    fn of(cg: &Cgroup) -> Versions {
        let version = |c| {
            cg.dir(c)?;
            Some(if cg.is_v2(c) {
                Version::V2
            } else {
                Version::V1
            })
        };
        Versions {
            cpu: version(Controller::Cpuacct),
            memory: version(Controller::Memory),
            blkio: version(Controller::Blkio),
            pids: version(Controller::Pids),
        }
    }
}

/// memory.stat keys dockerd reports on v1 (always all of them, 0 when the kernel lacks one).
const V1_MEMORY_KEYS: [&str; 32] = [
    "active_anon",
    "active_file",
    "cache",
    "dirty",
    "hierarchical_memory_limit",
    "hierarchical_memsw_limit",
    "inactive_anon",
    "inactive_file",
    "mapped_file",
    "pgfault",
    "pgmajfault",
    "pgpgin",
    "pgpgout",
    "rss",
    "rss_huge",
    "total_active_anon",
    "total_active_file",
    "total_cache",
    "total_dirty",
    "total_inactive_anon",
    "total_inactive_file",
    "total_mapped_file",
    "total_pgfault",
    "total_pgmajfault",
    "total_pgpgin",
    "total_pgpgout",
    "total_rss",
    "total_rss_huge",
    "total_unevictable",
    "total_writeback",
    "unevictable",
    "writeback",
];

/// memory.stat keys dockerd reports on v2.
const V2_MEMORY_KEYS: [&str; 31] = [
    "active_anon",
    "active_file",
    "anon",
    "anon_thp",
    "file",
    "file_dirty",
    "file_mapped",
    "file_writeback",
    "inactive_anon",
    "inactive_file",
    "kernel_stack",
    "pgactivate",
    "pgdeactivate",
    "pgfault",
    "pglazyfree",
    "pglazyfreed",
    "pgmajfault",
    "pgrefill",
    "pgscan",
    "pgsteal",
    "shmem",
    "slab",
    "slab_reclaimable",
    "slab_unreclaimable",
    "sock",
    "thp_collapse_alloc",
    "thp_fault_alloc",
    "unevictable",
    "workingset_activate",
    "workingset_nodereclaim",
    "workingset_refault",
];

/// kapsel-cgroups' statistics in Docker's shape for the versions they were read from.
/// `read`, `name`, `id` and `networks` are the caller's.
fn convert(
    s: &kapsel_cgroups::Stats,
    v: Versions,
    host: &HostCpu,
    machine_memory: u64,
) -> StatsResponse {
    let mut out = StatsResponse::zero_named("", "");
    out.name.clear(); // the caller's, like `id`

    out.cpu_stats = CpuStats {
        cpu_usage: CpuUsage {
            total_usage: s.cpu.usage.total,
            percpu_usage: match v.cpu {
                Some(Version::V1) => s.cpu.usage.percpu.clone(),
                _ => Vec::new(),
            },
            usage_in_kernelmode: s.cpu.usage.kernel,
            usage_in_usermode: s.cpu.usage.user,
        },
        system_cpu_usage: host.system_usage,
        online_cpus: host.online_cpus,
        throttling_data: ThrottlingData {
            periods: s.cpu.throttling.periods,
            throttled_periods: s.cpu.throttling.throttled_periods,
            throttled_time: s.cpu.throttling.throttled_time,
        },
    };

    if let Some(version) = v.memory {
        let keys: &[&str] = match version {
            Version::V1 => &V1_MEMORY_KEYS,
            Version::V2 => &V2_MEMORY_KEYS,
        };
        let stats = keys
            .iter()
            .map(|k| (k.to_string(), s.memory.raw.get(*k).copied().unwrap_or(0)))
            .collect();
        let mut limit = s.memory.usage.limit;
        // Unlimited reads as the kernel's maximum (v1) or u64::MAX (v2): the host's memory
        // is the real bound.
        if machine_memory > 0 && limit > machine_memory {
            limit = machine_memory;
        }
        let v1 = version == Version::V1;
        out.memory_stats = MemoryStats {
            usage: s.memory.usage.usage,
            max_usage: if v1 { s.memory.usage.max } else { 0 },
            stats,
            failcnt: if v1 { s.memory.usage.failcnt } else { 0 },
            limit,
        };
    }

    if v.pids.is_some() {
        out.pids_stats = PidsStats {
            current: s.pids.current,
            limit: s.pids.limit,
        };
    }

    let entries = |list: &[kapsel_cgroups::BlkioEntry]| -> Vec<BlkioStatEntry> {
        list.iter()
            .map(|e| BlkioStatEntry {
                major: e.major,
                minor: e.minor,
                op: e.op.clone(),
                value: e.value,
            })
            .collect()
    };
    match v.blkio {
        Some(Version::V1) => {
            // Every list present (empty where the policy has no such counter), as dockerd
            // copies them on v1.
            out.blkio_stats = BlkioStats {
                io_service_bytes_recursive: Some(entries(&s.blkio.io_service_bytes_recursive)),
                io_serviced_recursive: Some(entries(&s.blkio.io_serviced_recursive)),
                io_queue_recursive: Some(Vec::new()),
                io_service_time_recursive: Some(Vec::new()),
                io_wait_time_recursive: Some(Vec::new()),
                io_merged_recursive: Some(Vec::new()),
                io_time_recursive: Some(Vec::new()),
                sectors_recursive: Some(Vec::new()),
            };
        }
        Some(Version::V2) => {
            // io.stat's rbytes and wbytes only, named "read" and "write".
            let bytes: Vec<BlkioStatEntry> = s
                .blkio
                .io_service_bytes_recursive
                .iter()
                .filter_map(|e| {
                    let op = match e.op.as_str() {
                        "Read" => "read",
                        "Write" => "write",
                        _ => return None,
                    };
                    Some(BlkioStatEntry {
                        major: e.major,
                        minor: e.minor,
                        op: op.to_string(),
                        value: e.value,
                    })
                })
                .collect();
            out.blkio_stats.io_service_bytes_recursive = (!bytes.is_empty()).then_some(bytes);
        }
        None => {}
    }
    out
}

/// The host's CPU time and online CPUs, from /proc/stat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct HostCpu {
    system_usage: u64,
    online_cpus: u32,
}

impl HostCpu {
    fn read() -> Option<HostCpu> {
        let text = std::fs::read_to_string("/proc/stat").ok()?;
        parse_proc_stat(&text, clock_ticks())
    }
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf reads a constant and touches no memory of ours.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(hz).ok().filter(|&h| h > 0).unwrap_or(100)
}

/// dockerd's computation: the `cpu` line's first seven fields (user, nice, system, idle,
/// iowait, irq, softirq) in ticks, × 1e9 / ticks per second; one online CPU per `cpuN` line.
fn parse_proc_stat(text: &str, ticks_per_second: u64) -> Option<HostCpu> {
    let mut system_usage = None;
    let mut online_cpus = 0;
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(name) = fields.next().filter(|n| n.starts_with("cpu")) else {
            // The cpu lines come first.
            break;
        };
        if name == "cpu" {
            let ticks: Vec<u64> = fields
                .take(7)
                .map(|f| f.parse().ok())
                .collect::<Option<_>>()?;
            if ticks.len() < 7 {
                return None;
            }
            let total: u128 = ticks.iter().map(|&t| u128::from(t)).sum();
            let ns = total * 1_000_000_000 / u128::from(ticks_per_second.max(1));
            system_usage = Some(u64::try_from(ns).unwrap_or(u64::MAX));
        } else {
            online_cpus += 1;
        }
    }
    Some(HostCpu {
        system_usage: system_usage?,
        online_cpus,
    })
}

/// The host's memory (MemTotal), read once; 0 when unknown.
fn machine_memory() -> u64 {
    static MEM_TOTAL: OnceLock<u64> = OnceLock::new();
    *MEM_TOTAL.get_or_init(|| {
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| parse_mem_total(&t))
            .unwrap_or(0)
    })
}

fn parse_mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// /proc/<pid>/net/dev: per interface, `lo` left out (Docker reports the container's
/// endpoints, never its loopback).
fn parse_net_dev(text: &str) -> BTreeMap<String, NetworkStats> {
    let mut out = BTreeMap::new();
    // Two header lines, then "  eth0: rx_bytes rx_packets errs drop fifo frame compressed
    // multicast tx_bytes tx_packets errs drop fifo colls carrier compressed".
    for line in text.lines().skip(2) {
        let Some((name, counters)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name == "lo" || name.is_empty() {
            continue;
        }
        let f: Vec<u64> = counters
            .split_whitespace()
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        if f.len() < 12 {
            continue;
        }
        out.insert(
            name.to_string(),
            NetworkStats {
                rx_bytes: f[0],
                rx_packets: f[1],
                rx_errors: f[2],
                rx_dropped: f[3],
                tx_bytes: f[8],
                tx_packets: f[9],
                tx_errors: f[10],
                tx_dropped: f[11],
            },
        );
    }
    out
}

/// Now as Go's RFC3339Nano: UTC, nanoseconds without trailing zeros.
pub fn now_rfc3339() -> String {
    format_rfc3339(SystemTime::now())
}

fn format_rfc3339(t: SystemTime) -> String {
    let text = humantime::format_rfc3339_nanos(t).to_string();
    let Some((seconds, fraction)) = text.trim_end_matches('Z').split_once('.') else {
        return text;
    };
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        format!("{seconds}Z")
    } else {
        format!("{seconds}.{fraction}Z")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::{Duration, UNIX_EPOCH};

    fn stats_with_everything() -> kapsel_cgroups::Stats {
        let mut s = kapsel_cgroups::Stats::default();
        s.cpu.usage.total = 3_000_000_000;
        s.cpu.usage.percpu = vec![1_000_000_000, 2_000_000_000];
        s.cpu.usage.kernel = 500_000_000;
        s.cpu.usage.user = 2_500_000_000;
        s.cpu.throttling.periods = 7;
        s.memory.usage.usage = 30 << 20;
        s.memory.usage.max = 31 << 20;
        s.memory.usage.failcnt = 2;
        s.memory.usage.limit = 64 << 20;
        s.memory.raw = [
            ("total_inactive_file", 4096),
            ("cache", 20 << 20),
            ("inactive_file", 8192),
            ("file", 20 << 20),
            ("shmem", 20 << 20),
            ("unlisted_key", 1),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        s.pids.current = 2;
        let entry = |op: &str, value| kapsel_cgroups::BlkioEntry {
            major: 8,
            minor: 0,
            op: op.to_string(),
            value,
        };
        s.blkio.io_service_bytes_recursive =
            vec![entry("Read", 10), entry("Write", 20), entry("Discard", 0)];
        s.blkio.io_serviced_recursive = vec![entry("Read", 1), entry("Write", 2)];
        s
    }

    const HOST: HostCpu = HostCpu {
        system_usage: 1_000_000_000_000,
        online_cpus: 2,
    };

    fn all(v: Version) -> Versions {
        Versions {
            cpu: Some(v),
            memory: Some(v),
            blkio: Some(v),
            pids: Some(v),
        }
    }

    #[test]
    fn v1_shape() {
        let out = convert(&stats_with_everything(), all(Version::V1), &HOST, 8 << 30);
        let j = serde_json::to_value(&out).unwrap();
        assert_eq!(
            j["cpu_stats"],
            json!({
                "cpu_usage": {"total_usage": 3_000_000_000u64,
                              "percpu_usage": [1_000_000_000u64, 2_000_000_000u64],
                              "usage_in_kernelmode": 500_000_000, "usage_in_usermode": 2_500_000_000u64},
                "system_cpu_usage": 1_000_000_000_000u64, "online_cpus": 2,
                "throttling_data": {"periods": 7, "throttled_periods": 0, "throttled_time": 0},
            })
        );
        let m = &j["memory_stats"];
        assert_eq!(m["usage"], 30 << 20);
        assert_eq!(m["max_usage"], 31 << 20);
        assert_eq!(m["failcnt"], 2);
        assert_eq!(m["limit"], 64 << 20);
        assert_eq!(m["stats"]["total_inactive_file"], 4096);
        assert_eq!(m["stats"]["cache"], 20 << 20);
        assert_eq!(m["stats"]["rss"], 0, "every v1 key, 0 when absent");
        assert!(m["stats"].get("unlisted_key").is_none());
        assert!(m["stats"].get("file").is_none(), "no v2 keys on v1");
        assert_eq!(j["pids_stats"], json!({"current": 2}));
        let b = &j["blkio_stats"];
        assert_eq!(
            b["io_service_bytes_recursive"][1],
            json!({"major": 8, "minor": 0, "op": "Write", "value": 20})
        );
        assert_eq!(b["io_serviced_recursive"].as_array().unwrap().len(), 2);
        assert_eq!(b["sectors_recursive"], json!([]));
    }

    #[test]
    fn v2_shape() {
        let mut s = stats_with_everything();
        s.cpu.usage.percpu.clear();
        s.memory.usage.limit = u64::MAX;
        let out = convert(&s, all(Version::V2), &HOST, 8 << 30);
        let j = serde_json::to_value(&out).unwrap();
        assert!(j["cpu_stats"]["cpu_usage"].get("percpu_usage").is_none());
        let m = &j["memory_stats"];
        assert_eq!(m["limit"], 8u64 << 30, "unlimited: the host's memory");
        assert!(m.get("max_usage").is_none() && m.get("failcnt").is_none());
        assert_eq!(m["stats"]["inactive_file"], 8192);
        assert_eq!(m["stats"]["file"], 20 << 20);
        assert!(m["stats"].get("total_inactive_file").is_none());
        let b = &j["blkio_stats"];
        assert_eq!(
            b["io_service_bytes_recursive"],
            json!([{"major": 8, "minor": 0, "op": "read", "value": 10},
                   {"major": 8, "minor": 0, "op": "write", "value": 20}])
        );
        assert!(b["io_serviced_recursive"].is_null());
    }

    #[test]
    fn missing_controllers_leave_parts_empty() {
        let out = convert(&stats_with_everything(), Versions::default(), &HOST, 0);
        let j = serde_json::to_value(&out).unwrap();
        assert_eq!(j["memory_stats"], json!({}));
        assert_eq!(j["pids_stats"], json!({}));
        assert!(j["blkio_stats"]["io_service_bytes_recursive"].is_null());
    }

    #[test]
    fn zero_object_is_dockers() {
        let j = serde_json::to_value(StatsResponse::zero_named("c", &"a".repeat(64))).unwrap();
        let cpu = json!({"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0,
                                       "usage_in_usermode": 0},
                         "throttling_data": {"periods": 0, "throttled_periods": 0,
                                             "throttled_time": 0}});
        assert_eq!(
            j,
            json!({
                "read": ZERO_TIME, "preread": ZERO_TIME, "pids_stats": {},
                "blkio_stats": {"io_service_bytes_recursive": null, "io_serviced_recursive": null,
                    "io_queue_recursive": null, "io_service_time_recursive": null,
                    "io_wait_time_recursive": null, "io_merged_recursive": null,
                    "io_time_recursive": null, "sectors_recursive": null},
                "num_procs": 0, "storage_stats": {}, "cpu_stats": cpu, "precpu_stats": cpu,
                "memory_stats": {}, "name": "/c", "id": "a".repeat(64),
            })
        );
    }

    #[test]
    fn series_chains_the_previous_sample() {
        let mut s = convert(&stats_with_everything(), all(Version::V1), &HOST, 0);
        s.read = "2024-01-01T00:00:01Z".into();
        let mut series = Series::default();
        let first = series.next(s.clone());
        assert_eq!(first.precpu_stats, CpuStats::default());
        assert_eq!(first.preread, ZERO_TIME);
        let mut later = s.clone();
        later.read = "2024-01-01T00:00:02Z".into();
        later.cpu_stats.cpu_usage.total_usage += 1;
        let second = series.next(later);
        assert_eq!(second.precpu_stats, s.cpu_stats);
        assert_eq!(second.preread, "2024-01-01T00:00:01Z");
    }

    #[test]
    fn proc_stat_as_docker_computes_it() {
        let text = "cpu  100 5 50 1000 10 1 2 7 0 0\ncpu0 50 2 25 500 5 1 1 3 0 0\n\
                    cpu1 50 3 25 500 5 0 1 4 0 0\nintr 12345\nctxt 99\n";
        let h = parse_proc_stat(text, 100).unwrap();
        // (100+5+50+1000+10+1+2) ticks = 1168 ticks = 11.68 s; steal (7) is not counted.
        assert_eq!(h.system_usage, 11_680_000_000);
        assert_eq!(h.online_cpus, 2);
        assert!(parse_proc_stat("cpu 1 2 3\n", 100).is_none());
        let real = HostCpu::read().unwrap();
        assert!(real.online_cpus >= 1 && real.system_usage > 0);
    }

    #[test]
    fn net_dev_without_loopback() {
        let text = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     140       2    0    0    0     0          0         0      140       2    0    0    0     0       0          0
  eth0:    5338      36    1    2    0     0          0         0      648       8    3    4    0     0       0          0
";
        let n = parse_net_dev(text);
        assert_eq!(n.len(), 1);
        assert_eq!(
            n["eth0"],
            NetworkStats {
                rx_bytes: 5338,
                rx_packets: 36,
                rx_errors: 1,
                rx_dropped: 2,
                tx_bytes: 648,
                tx_packets: 8,
                tx_errors: 3,
                tx_dropped: 4,
            }
        );
    }

    #[test]
    fn mem_total_and_times() {
        assert_eq!(
            parse_mem_total("MemTotal:        8000000 kB\nMemFree: 1 kB\n"),
            Some(8_192_000_000)
        );
        assert!(machine_memory() > 0);
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 120_000_000);
        assert_eq!(format_rfc3339(t), "2023-11-14T22:13:20.12Z");
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 0);
        assert_eq!(format_rfc3339(t), "2023-11-14T22:13:20Z");
    }
}
