//! Resource usage of a cgroup, serialized like the "data" object of runc's `events --stats`
//! (runc types.Stats). Go's `omitempty` on numbers and lists becomes `skip_serializing_if`;
//! on structs it has no effect in Go, so nested structs are always present here too.
//!
//! The runc fields that are not cgroup data (intel_rdt, network_interfaces) and the pressure
//! (psi) and memory event counters are not included.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub cpu: Cpu,
    pub cpuset: CpuSet,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    /// Keyed by page size as the kernel names it ("2MB", "1GB").
    pub hugetlb: BTreeMap<String, Hugetlb>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

/// CPU time in nanoseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuUsage {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Throttling {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(default, rename = "throttledPeriods", skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    /// Nanoseconds.
    #[serde(default, rename = "throttledTime", skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuSet {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    pub cpu_exclusive: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    pub mem_hardwall: u64,
    pub mem_exclusive: u64,
    pub memory_migrate: u64,
    pub memory_spread_page: u64,
    pub memory_spread_slab: u64,
    pub memory_pressure: u64,
    pub sched_load_balance: u64,
    pub sched_relax_domain_level: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    /// As in runc, memory+swap on both versions (v2 values are summed to match v1).
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    /// memory.stat as read.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

/// Bytes; `limit` is `u64::MAX` or the kernel's page-rounded maximum when unlimited.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Pids {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub current: u64,
    /// 0 when unlimited.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Blkio {
    #[serde(
        default,
        rename = "ioServiceBytesRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(
        default,
        rename = "ioServicedRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlkioEntry {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub minor: u64,
    /// "Read", "Write", ... as v1 names them; v2 counters are mapped to the same names.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub value: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Hugetlb {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub usage: u64,
    /// Peak usage (v1 only; v2 has no such file).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

/// The v2 readers over sample file contents: a cgroup2 "mount" in a temporary directory
/// stands in for a pure v2 host, so this runs anywhere (no root, no cgroup2 mount).
#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use crate::{Cgroup, CgroupPath, Controller, Hierarchy};

    struct TempDir(PathBuf);

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A v2 cgroup `/c` below a fake cgroup2 mount holding `files`.
    fn fake_v2(name: &str, files: &[(&str, &str)]) -> (TempDir, Cgroup) {
        let mount =
            std::env::temp_dir().join(format!("kapsel-v2-stats-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&mount);
        std::fs::create_dir_all(mount.join("c")).unwrap();
        for (file, content) in files {
            std::fs::write(mount.join("c").join(file), content).unwrap();
        }
        let line = format!("1 0 0:1 / {} rw - cgroup2 cgroup2 rw\n", mount.display());
        let h = Hierarchy::from_mountinfo(&line, |m: &Path| {
            assert_eq!(m, mount.as_path());
            Ok("cpuset cpu io memory hugetlb pids\n".to_string())
        })
        .unwrap();
        let cg = Cgroup::new(&h, &CgroupPath::parse("/c").unwrap()).unwrap();
        (TempDir(mount), cg)
    }

    const MEMORY_STAT: &str = "\
anon 1048576
file 20975616
kernel 294912
kernel_stack 16384
shmem 20971520
file_mapped 0
inactive_anon 20971520
active_anon 1048576
inactive_file 4096
active_file 0
unevictable 0
pgfault 5420
pgmajfault 0
";

    #[test]
    fn v2_files_read_into_stats() {
        let (_tmp, cg) = fake_v2(
            "all",
            &[
                ("memory.current", "22347776\n"),
                ("memory.max", "67108864\n"),
                ("memory.peak", "23068672\n"),
                ("memory.stat", MEMORY_STAT),
                ("memory.events", "low 0\nhigh 0\nmax 4\noom 0\noom_kill 0\n"),
                ("memory.swap.current", "0\n"),
                ("memory.swap.max", "max\n"),
                (
                    "cpu.stat",
                    "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n\
                     nr_periods 10\nnr_throttled 2\nthrottled_usec 3000\n",
                ),
                ("pids.current", "3\n"),
                ("pids.max", "max\n"),
                (
                    "io.stat",
                    "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n\
                     253:1 rbytes=512 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n",
                ),
                ("cpuset.cpus.effective", "0-1\n"),
                ("cpuset.mems.effective", "0\n"),
            ],
        );
        for c in [
            Controller::Memory,
            Controller::Cpu,
            Controller::Cpuacct,
            Controller::Pids,
        ] {
            assert!(cg.is_v2(c), "{c:?}");
        }
        let s = cg.stats().unwrap();

        assert_eq!(s.cpu.usage.total, 1_500_000_000);
        assert_eq!(s.cpu.usage.user, 1_000_000_000);
        assert_eq!(s.cpu.usage.kernel, 500_000_000);
        assert!(s.cpu.usage.percpu.is_empty(), "v2 has no per-CPU usage");
        assert_eq!(s.cpu.throttling.periods, 10);
        assert_eq!(s.cpu.throttling.throttled_periods, 2);
        assert_eq!(s.cpu.throttling.throttled_time, 3_000_000);

        assert_eq!(s.memory.usage.usage, 22_347_776);
        assert_eq!(s.memory.usage.limit, 64 << 20);
        assert_eq!(s.memory.usage.max, 23_068_672);
        assert_eq!(s.memory.usage.failcnt, 4);
        assert_eq!(
            s.memory.cache, 20_975_616,
            "v2's cache is memory.stat's file"
        );
        assert_eq!(s.memory.raw["inactive_file"], 4096);
        assert_eq!(s.memory.raw["shmem"], 20_971_520);
        assert_eq!(
            s.memory.swap.limit,
            u64::MAX,
            "unlimited swap stays unlimited"
        );

        assert_eq!(s.pids.current, 3);
        assert_eq!(s.pids.limit, 0, "max reads as 0");

        let bytes: Vec<(u64, u64, &str, u64)> = s
            .blkio
            .io_service_bytes_recursive
            .iter()
            .map(|e| (e.major, e.minor, e.op.as_str(), e.value))
            .collect();
        assert_eq!(
            bytes,
            [
                (8, 0, "Read", 4096),
                (8, 0, "Write", 8192),
                (8, 0, "Discard", 0),
                (253, 1, "Read", 512),
                (253, 1, "Write", 0),
                (253, 1, "Discard", 0),
            ]
        );
        assert_eq!(s.blkio.io_serviced_recursive[1].value, 2);
        assert_eq!(s.cpuset.cpus, [0, 1]);
        assert!(s.hugetlb.is_empty());
    }

    #[test]
    fn v2_limits_and_missing_files() {
        let (_tmp, cg) = fake_v2(
            "limits",
            &[
                ("memory.current", "4096\n"),
                ("memory.max", "max\n"),
                ("pids.current", "1\n"),
                ("pids.max", "100\n"),
            ],
        );
        let s = cg.stats().unwrap();
        assert_eq!(s.memory.usage.limit, u64::MAX, "unlimited memory");
        assert_eq!(s.memory.usage.usage, 4096);
        assert!(s.memory.raw.is_empty());
        assert_eq!(s.pids.limit, 100);
        assert_eq!(
            s.cpu.usage.total, 0,
            "no cpu.stat: zero, as runc reports it"
        );
        assert!(s.blkio.io_service_bytes_recursive.is_empty());
    }
}
