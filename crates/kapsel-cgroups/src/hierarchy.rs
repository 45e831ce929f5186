//! Which cgroup hierarchies the host has mounted, read from /proc/self/mountinfo.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{CgroupError, Result};
use crate::fs;

/// How the host mounts cgroups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    /// Only v1 hierarchies.
    Legacy,
    /// v1 controller hierarchies plus a cgroup2 mount (which holds the controllers v1 does not).
    Hybrid,
    /// A single cgroup2 hierarchy (possibly next to named v1 hierarchies without controllers).
    Unified,
}

/// A cgroup controller; serialized with its v1 name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Controller {
    Cpu,
    Cpuacct,
    Cpuset,
    Memory,
    Pids,
    Blkio,
    Devices,
    Freezer,
    Hugetlb,
    NetCls,
    NetPrio,
    PerfEvent,
    Rdma,
    Misc,
}

impl Controller {
    pub const ALL: [Controller; 14] = [
        Controller::Cpu,
        Controller::Cpuacct,
        Controller::Cpuset,
        Controller::Memory,
        Controller::Pids,
        Controller::Blkio,
        Controller::Devices,
        Controller::Freezer,
        Controller::Hugetlb,
        Controller::NetCls,
        Controller::NetPrio,
        Controller::PerfEvent,
        Controller::Rdma,
        Controller::Misc,
    ];

    /// Controllers cgroup2 provides in every cgroup without listing them in cgroup.controllers:
    /// freezing (cgroup.freeze), device filtering (eBPF), cpu usage (cpu.stat) and perf events.
    const V2_BUILTIN: [Controller; 4] = [
        Controller::Freezer,
        Controller::Devices,
        Controller::Cpuacct,
        Controller::PerfEvent,
    ];

    /// The name in v1 mount options and /proc/self/cgroup.
    pub fn v1_name(self) -> &'static str {
        match self {
            Controller::Cpu => "cpu",
            Controller::Cpuacct => "cpuacct",
            Controller::Cpuset => "cpuset",
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Blkio => "blkio",
            Controller::Devices => "devices",
            Controller::Freezer => "freezer",
            Controller::Hugetlb => "hugetlb",
            Controller::NetCls => "net_cls",
            Controller::NetPrio => "net_prio",
            Controller::PerfEvent => "perf_event",
            Controller::Rdma => "rdma",
            Controller::Misc => "misc",
        }
    }

    /// The name in cgroup.controllers / cgroup.subtree_control; `None` for built-in or
    /// v1-only controllers, which are never listed (nor enabled) there.
    pub fn v2_name(self) -> Option<&'static str> {
        match self {
            Controller::Blkio => Some("io"),
            Controller::Cpu
            | Controller::Cpuset
            | Controller::Memory
            | Controller::Pids
            | Controller::Hugetlb
            | Controller::Rdma
            | Controller::Misc => Some(self.v1_name()),
            _ => None,
        }
    }

    fn from_v1_name(name: &str) -> Option<Controller> {
        Controller::ALL.into_iter().find(|c| c.v1_name() == name)
    }

    fn from_v2_name(name: &str) -> Option<Controller> {
        Controller::ALL
            .into_iter()
            .find(|c| c.v2_name() == Some(name))
    }
}

/// One mounted v1 hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct V1Mount {
    /// Subsystems as /proc/self/cgroup names them: controllers and "name=..." entries.
    pub subsystems: Vec<String>,
    pub mountpoint: PathBuf,
    /// The mount's root inside the hierarchy (mountinfo field 4), "/" unless bind-mounted.
    pub root: String,
}

impl V1Mount {
    /// The directory name under /sys/fs/cgroup, e.g. "cpu,cpuacct" or "systemd".
    pub fn name(&self) -> String {
        self.mountpoint.file_name().map_or_else(
            || self.subsystems.join(","),
            |n| n.to_string_lossy().into_owned(),
        )
    }

    pub fn controllers(&self) -> Vec<Controller> {
        self.subsystems
            .iter()
            .filter_map(|s| Controller::from_v1_name(s))
            .collect()
    }
}

/// The cgroup2 mount and the controllers to drive through it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct UnifiedMount {
    pub mountpoint: PathBuf,
    pub root: String,
    /// Controllers available here and not mounted as v1.
    pub controllers: Vec<Controller>,
}

/// The host's cgroup hierarchies.
#[derive(Clone, Debug)]
pub struct Hierarchy {
    v1: Vec<V1Mount>,
    unified: Option<UnifiedMount>,
}

impl Hierarchy {
    /// Reads /proc/self/mountinfo and, for a cgroup2 mount, its cgroup.controllers.
    pub fn detect() -> Result<Hierarchy> {
        let text =
            std::fs::read_to_string("/proc/self/mountinfo").map_err(CgroupError::Mountinfo)?;
        Hierarchy::from_mountinfo(&text, |mnt| fs::read(&mnt.join("cgroup.controllers")))
    }

    /// Builds the hierarchy from mountinfo text; `controllers_of` reads a cgroup2 mount's
    /// cgroup.controllers (a parameter so parsing can be tested without that mount).
    pub(crate) fn from_mountinfo(
        text: &str,
        controllers_of: impl Fn(&Path) -> Result<String>,
    ) -> Result<Hierarchy> {
        let mut v1: Vec<V1Mount> = Vec::new();
        let mut unified_mount = None;
        for mount in text.lines().filter_map(parse_line) {
            match mount {
                Mount::V1(m) => {
                    // The same hierarchy can be mounted twice (bind mounts); the first one wins.
                    if !v1.iter().any(|o| same_set(&o.subsystems, &m.subsystems)) {
                        v1.push(m);
                    }
                }
                Mount::V2 { mountpoint, root } => {
                    unified_mount.get_or_insert((mountpoint, root));
                }
            }
        }
        let unified = match unified_mount {
            Some((mountpoint, root)) => {
                let available = controllers_of(&mountpoint)?;
                let controllers = v2_driven(&available, &v1);
                Some(UnifiedMount {
                    mountpoint,
                    root,
                    controllers,
                })
            }
            None => None,
        };
        if v1.is_empty() && unified.is_none() {
            return Err(CgroupError::NoHierarchy);
        }
        Ok(Hierarchy { v1, unified })
    }

    pub fn layout(&self) -> Layout {
        let v1_controllers = self.v1.iter().any(|m| !m.controllers().is_empty());
        match (&self.unified, v1_controllers) {
            (None, _) => Layout::Legacy,
            (Some(_), true) => Layout::Hybrid,
            (Some(_), false) => Layout::Unified,
        }
    }

    pub fn unified_mount(&self) -> Option<&Path> {
        self.unified.as_ref().map(|u| u.mountpoint.as_path())
    }

    /// v1 mounts: (directory name under /sys/fs/cgroup, e.g. "cpu,cpuacct" or "systemd",
    /// mountpoint).
    pub fn v1_mounts(&self) -> Vec<(String, PathBuf)> {
        self.v1
            .iter()
            .map(|m| (m.name(), m.mountpoint.clone()))
            .collect()
    }

    /// Controllers driven through v2 files (available on the cgroup2 mount, not mounted as v1).
    pub fn unified_controllers(&self) -> &[Controller] {
        self.unified.as_ref().map_or(&[], |u| &u.controllers)
    }

    pub(crate) fn v1(&self) -> &[V1Mount] {
        &self.v1
    }

    pub(crate) fn unified(&self) -> Option<&UnifiedMount> {
        self.unified.as_ref()
    }
}

enum Mount {
    V1(V1Mount),
    V2 { mountpoint: PathBuf, root: String },
}

/// Parses one mountinfo line: "id parent maj:min root mountpoint opts [optional...] - fstype
/// source superopts". Returns `None` for non-cgroup mounts.
fn parse_line(line: &str) -> Option<Mount> {
    let (left, right) = line.split_once(" - ")?;
    let left: Vec<&str> = left.split(' ').collect();
    let mut right = right.split(' ');
    let (fstype, _source, superopts) = (right.next()?, right.next()?, right.next()?);
    let root = unescape(left.get(3)?);
    let mountpoint = PathBuf::from(unescape(left.get(4)?));
    match fstype {
        "cgroup2" => Some(Mount::V2 { mountpoint, root }),
        "cgroup" => {
            // Super options mix subsystems with flags such as "rw" or "xattr"; keep subsystems.
            let subsystems: Vec<String> = superopts
                .split(',')
                .filter(|o| Controller::from_v1_name(o).is_some() || o.starts_with("name="))
                .map(str::to_string)
                .collect();
            (!subsystems.is_empty()).then_some(Mount::V1(V1Mount {
                subsystems,
                mountpoint,
                root,
            }))
        }
        _ => None,
    }
}

/// mountinfo escapes space, tab, newline and backslash as \ooo octal.
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|o| {
            let o = std::str::from_utf8(o).ok()?;
            u8::from_str_radix(o, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn same_set(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}

/// Controllers to drive through v2 files: those the cgroup2 mount offers plus its built-in
/// ones, except any a v1 hierarchy holds (v1 wins on hybrid hosts).
fn v2_driven(available: &str, v1: &[V1Mount]) -> Vec<Controller> {
    let on_v1: Vec<Controller> = v1.iter().flat_map(V1Mount::controllers).collect();
    available
        .split_whitespace()
        .filter_map(Controller::from_v2_name)
        .chain(Controller::V2_BUILTIN)
        .filter(|c| !on_v1.contains(c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
35 31 0:32 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
99 98 0:29 /docker /mnt/cg\\040x rw,relatime - cgroup cgroup rw,cpuacct,cpu
";

    fn hybrid() -> Hierarchy {
        Hierarchy::from_mountinfo(HYBRID, |p| {
            assert_eq!(p, Path::new("/sys/fs/cgroup/unified"));
            Ok("hugetlb misc\n".to_string())
        })
        .unwrap()
    }

    #[test]
    fn hybrid_with_joined_v1_mount() {
        let h = hybrid();
        assert_eq!(h.layout(), Layout::Hybrid);
        assert_eq!(h.unified_mount(), Some(Path::new("/sys/fs/cgroup/unified")));
        let names: Vec<String> = h.v1_mounts().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["cpu,cpuacct", "memory", "freezer", "systemd"]);
        assert_eq!(
            h.v1()[0].controllers(),
            [Controller::Cpu, Controller::Cpuacct]
        );
        assert_eq!(h.v1()[3].subsystems, ["name=systemd"]);
        // Freezer and cpuacct are v1 here; devices is not mounted as v1, so eBPF applies.
        assert_eq!(
            h.unified_controllers(),
            [
                Controller::Hugetlb,
                Controller::Misc,
                Controller::Devices,
                Controller::PerfEvent
            ]
        );
    }

    #[test]
    fn pure_v2() {
        let text = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        let h = Hierarchy::from_mountinfo(text, |_| Ok("cpuset cpu io memory pids".into()));
        let h = h.unwrap();
        assert_eq!(h.layout(), Layout::Unified);
        assert!(h.v1_mounts().is_empty());
        assert!(h.unified_controllers().contains(&Controller::Blkio));
        assert!(h.unified_controllers().contains(&Controller::Freezer));
    }

    #[test]
    fn pure_v1_and_none() {
        let text = "32 31 0:29 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n";
        let h = Hierarchy::from_mountinfo(text, |_| unreachable!()).unwrap();
        assert_eq!(h.layout(), Layout::Legacy);
        assert!(h.unified_controllers().is_empty());
        let none =
            Hierarchy::from_mountinfo("1 0 0:1 / / rw - ext4 /dev/vda rw\n", |_| unreachable!());
        assert!(matches!(none, Err(CgroupError::NoHierarchy)));
    }

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape("/mnt/cg\\040x"), "/mnt/cg x");
        assert_eq!(unescape("a\\b"), "a\\b");
    }
}
