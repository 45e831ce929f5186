//! A container's cgroup: its directory in every hierarchy, and the operations on all of them.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

use crate::controllers::{cpuset, freezer, resources, FreezerState};
use crate::error::{CgroupError, Result};
use crate::fs::{self, io_err};
use crate::hierarchy::{Controller, Hierarchy};
use crate::path::{CgroupPath, OwnCgroups};
use crate::stats::Stats;

/// The resolved cgroup directories of one container. Serializable so that a later process
/// (kill, delete, update, pause) reopens exactly these directories without re-resolving a
/// relative path against its own, different, cgroup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cgroup {
    pub(crate) v1: Vec<V1Dir>,
    unified: Option<UnifiedDir>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct V1Dir {
    /// Directory name under /sys/fs/cgroup ("cpu,cpuacct", "systemd").
    pub(crate) name: String,
    /// As /proc/self/cgroup names them ("cpu", "cpuacct", "name=systemd").
    pub(crate) subsystems: Vec<String>,
    /// The mount's root inside the hierarchy (mountinfo field 4).
    pub(crate) root: String,
    /// Empty for named hierarchies such as name=systemd.
    controllers: Vec<Controller>,
    pub(crate) mount: PathBuf,
    pub(crate) dir: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct UnifiedDir {
    mount: PathBuf,
    dir: PathBuf,
    /// Controllers driven through this directory's v2 files.
    controllers: Vec<Controller>,
}

/// Where a controller's files for this cgroup are, and which file format they use.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Files<'a> {
    V1(&'a Path),
    V2(&'a Path),
}

impl<'a> Files<'a> {
    pub fn dir(self) -> &'a Path {
        match self {
            Files::V1(d) | Files::V2(d) => d,
        }
    }

    pub fn file(self, name: &str) -> PathBuf {
        self.dir().join(name)
    }
}

/// rmdir of a cgroup whose last processes are still exiting fails with EBUSY for a moment.
const RMDIR_ATTEMPTS: u32 = 8;
const RMDIR_FIRST_DELAY: Duration = Duration::from_millis(5);

impl Cgroup {
    pub fn new(h: &Hierarchy, path: &CgroupPath) -> Result<Cgroup> {
        // Only a relative path needs the caller's own cgroups (read from /proc).
        let own = matches!(path, CgroupPath::Relative(_))
            .then(OwnCgroups::read)
            .transpose()?;
        let own = || own.as_ref().expect("read for relative paths");
        let v1 = h
            .v1()
            .iter()
            .map(|m| {
                let dir = path.resolve(&m.mountpoint, &m.root, || own().v1(&m.subsystems))?;
                Ok(V1Dir {
                    name: m.name(),
                    subsystems: m.subsystems.clone(),
                    root: m.root.clone(),
                    controllers: m.controllers(),
                    mount: m.mountpoint.clone(),
                    dir,
                })
            })
            .collect::<Result<_>>()?;
        let unified = match h.unified() {
            Some(u) => Some(UnifiedDir {
                dir: path.resolve(&u.mountpoint, &u.root, || own().unified())?,
                mount: u.mountpoint.clone(),
                controllers: u.controllers.clone(),
            }),
            None => None,
        };
        Ok(Cgroup { v1, unified })
    }

    /// Creates the directories (and missing parents) in every hierarchy.
    pub fn create(&self) -> Result<()> {
        for d in &self.v1 {
            let cpuset = d.controllers.contains(&Controller::Cpuset);
            for level in levels(&d.mount, &d.dir) {
                mkdir(&level)?;
                // A new v1 cpuset starts with no cpus/mems and would refuse processes.
                if cpuset {
                    cpuset::inherit_v1(&level)?;
                }
            }
        }
        if let Some(u) = &self.unified {
            let names: Vec<&str> = u.controllers.iter().filter_map(|c| c.v2_name()).collect();
            for level in levels(&u.mount, &u.dir) {
                if let Some(parent) = level.parent() {
                    enable_controllers(parent, &names)?;
                }
                mkdir(&level)?;
            }
        }
        Ok(())
    }

    /// Sets the limits given; fields that are `None` are left as they are, so `update` on a
    /// live container can pass just what changes.
    pub fn apply(&self, r: &LinuxResources) -> Result<()> {
        resources::apply(self, r)
    }

    /// Moves the process into this cgroup in every hierarchy.
    pub fn add_process(&self, pid: i32) -> Result<()> {
        let pid = pid.to_string();
        self.all_dirs()
            .try_for_each(|d| fs::write(&d.join("cgroup.procs"), &pid))
    }

    /// Every process in this cgroup or below it, in any hierarchy; sorted, no duplicates.
    pub fn procs(&self) -> Result<Vec<i32>> {
        let mut pids = Vec::new();
        for dir in self.all_dirs() {
            collect_procs(dir, &mut pids)?;
        }
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    pub fn freeze(&self) -> Result<()> {
        freezer::freeze(self.require(Controller::Freezer, "freezing")?)
    }

    pub fn thaw(&self) -> Result<()> {
        freezer::thaw(self.require(Controller::Freezer, "thawing")?)
    }

    /// `Thawed` when the host has no freezer: nothing can have frozen the processes then.
    pub fn freezer_state(&self) -> Result<FreezerState> {
        match self.files(Controller::Freezer) {
            Some(f) => freezer::state(f),
            None => Ok(FreezerState::Thawed),
        }
    }

    /// Processes killed by the OOM killer in this cgroup so far (0 without a memory
    /// controller).
    pub fn oom_kills(&self) -> Result<u64> {
        match self.files(Controller::Memory) {
            Some(f) => crate::controllers::memory::oom_kills(f),
            None => Ok(0),
        }
    }

    /// The file whose `oom_kill N` line counts this cgroup's OOM kills (for a supervisor
    /// that reads it after the processes ended); `None` without a memory controller.
    pub fn oom_events_file(&self) -> Option<PathBuf> {
        self.files(Controller::Memory)
            .map(crate::controllers::memory::oom_events_file)
    }

    pub fn stats(&self) -> Result<Stats> {
        crate::controllers::stats(self)
    }

    /// Removes this cgroup and its descendants everywhere. Already removed directories are
    /// fine; the processes must have exited (EBUSY is retried briefly while they finish).
    pub fn destroy(&self) -> Result<()> {
        self.all_dirs().try_for_each(remove_tree)
    }

    /// Where the given controller's files for this cgroup are (a v1 or the unified dir).
    pub fn dir(&self, c: Controller) -> Option<PathBuf> {
        self.files(c).map(|f| f.dir().to_path_buf())
    }

    /// Whether the given controller is driven through cgroup2 files here (`false` for a v1
    /// controller and for one the host lacks). Its statistics then have v2's shape: no
    /// per-CPU usage, memory.stat's v2 keys, io.stat's counters.
    pub fn is_v2(&self, c: Controller) -> bool {
        matches!(self.files(c), Some(Files::V2(_)))
    }

    pub fn unified_dir(&self) -> Option<PathBuf> {
        self.unified.as_ref().map(|u| u.dir.clone())
    }

    /// For bind-mounting the container's own cgroups inside its /sys/fs/cgroup on v1/hybrid
    /// hosts: (directory name under /sys/fs/cgroup, this cgroup's host directory there).
    pub fn v1_dirs(&self) -> Vec<(String, PathBuf)> {
        self.v1
            .iter()
            .map(|d| (d.name.clone(), d.dir.clone()))
            .collect()
    }

    /// v1 wins over v2 for a controller both could serve (the hybrid rule).
    pub(crate) fn files(&self, c: Controller) -> Option<Files<'_>> {
        if let Some(d) = self.v1.iter().find(|d| d.controllers.contains(&c)) {
            return Some(Files::V1(&d.dir));
        }
        self.unified
            .as_ref()
            .filter(|u| u.controllers.contains(&c))
            .map(|u| Files::V2(&u.dir))
    }

    /// Like [`Cgroup::files`], for a setting that cannot be skipped.
    pub(crate) fn require(&self, c: Controller, what: &str) -> Result<Files<'_>> {
        self.files(c).ok_or_else(|| CgroupError::Unsupported {
            what: what.to_string(),
            why: format!("the {} controller is not mounted", c.v1_name()),
        })
    }

    pub(crate) fn unified_files(&self) -> Option<&Path> {
        self.unified.as_ref().map(|u| u.dir.as_path())
    }

    fn all_dirs(&self) -> impl Iterator<Item = &Path> {
        let v1 = self.v1.iter().map(|d| d.dir.as_path());
        v1.chain(self.unified.iter().map(|u| u.dir.as_path()))
    }
}

/// The directories from just below `mount` down to `dir`, outermost first.
fn levels(mount: &Path, dir: &Path) -> Vec<PathBuf> {
    let Ok(rel) = dir.strip_prefix(mount) else {
        return vec![dir.to_path_buf()];
    };
    let mut cur = mount.to_path_buf();
    rel.components()
        .map(|c| {
            cur.push(c);
            cur.clone()
        })
        .collect()
}

fn mkdir(dir: &Path) -> Result<()> {
    match std::fs::create_dir(dir) {
        Err(e) if e.kind() != ErrorKind::AlreadyExists => Err(io_err("creating", dir, e)),
        _ => Ok(()),
    }
}

/// Enables the controllers we drive through v2 in `parent`'s cgroup.subtree_control, so
/// that its child has their files. Best effort, as in runc: a parent that holds processes
/// itself may not enable controllers ("no internal processes"); a limit written later for
/// such a controller then fails, naming the missing file.
fn enable_controllers(parent: &Path, names: &[&str]) -> Result<()> {
    let file = parent.join("cgroup.subtree_control");
    let enabled = fs::read(&file)?;
    for name in names {
        if !enabled.split_whitespace().any(|e| e == *name) {
            let _ = fs::write(&file, &format!("+{name}"));
        }
    }
    Ok(())
}

fn collect_procs(dir: &Path, pids: &mut Vec<i32>) -> Result<()> {
    let file = dir.join("cgroup.procs");
    let Some(content) = fs::read_opt(&file)? else {
        return Ok(());
    };
    for line in content.lines() {
        pids.push(
            line.trim()
                .parse()
                .map_err(|_| fs::parse_err(&file, line))?,
        );
    }
    for sub in subdirs(dir)? {
        collect_procs(&sub, pids)?;
    }
    Ok(())
}

/// The child cgroups of `dir`; none when `dir` is gone.
fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("listing", dir, e)),
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_err("listing", dir, e))?;
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir {
            dirs.push(entry.path());
        }
    }
    Ok(dirs)
}

/// Children first: a cgroup with child cgroups cannot be removed.
fn remove_tree(dir: &Path) -> Result<()> {
    for sub in subdirs(dir)? {
        remove_tree(&sub)?;
    }
    let mut delay = RMDIR_FIRST_DELAY;
    for attempt in 1.. {
        match std::fs::remove_dir(dir) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < RMDIR_ATTEMPTS => {
                sleep(delay);
                delay *= 2;
            }
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(io_err("removing", dir, e)),
            _ => return Ok(()),
        }
    }
    unreachable!("the last attempt returns")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_below_mount() {
        let l = levels(Path::new("/m"), Path::new("/m/a/b"));
        assert_eq!(l, [PathBuf::from("/m/a"), PathBuf::from("/m/a/b")]);
    }
}
