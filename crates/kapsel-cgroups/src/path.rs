//! The container's cgroup path (config.json linux.cgroupsPath) and the caller's own cgroups.

use std::path::{Path, PathBuf};

use crate::error::{CgroupError, Result};
use crate::fs;

/// A cgroup path from config.json, normalized: no empty, "." or ".." components.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CgroupPath {
    /// "/a/b": from the root of each hierarchy.
    Absolute(String),
    /// "a/b": below the calling process's own cgroup in each hierarchy.
    Relative(String),
}

impl CgroupPath {
    pub fn parse(s: &str) -> Result<CgroupPath> {
        let parts: Vec<&str> = s
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        if parts.contains(&"..") {
            return Err(CgroupError::InvalidPath(s.to_string()));
        }
        // Resolving to a hierarchy root would make destroy() remove every cgroup on the host.
        if parts.is_empty() {
            return Err(CgroupError::RootPath(s.to_string()));
        }
        let joined = parts.join("/");
        Ok(if s.starts_with('/') {
            CgroupPath::Absolute(format!("/{joined}"))
        } else {
            CgroupPath::Relative(joined)
        })
    }

    /// The path without a leading '/', to join below a directory.
    pub(crate) fn components(&self) -> &str {
        match self {
            CgroupPath::Absolute(p) => &p[1..],
            CgroupPath::Relative(p) => p,
        }
    }

    /// This path's directory in a hierarchy mounted at `mountpoint` whose mount root is
    /// `root`; `own` is the caller's cgroup there (needed for relative paths only).
    pub(crate) fn resolve(
        &self,
        mountpoint: &Path,
        root: &str,
        own: impl FnOnce() -> Result<String>,
    ) -> Result<PathBuf> {
        let base = match self {
            CgroupPath::Absolute(_) => mountpoint.to_path_buf(),
            CgroupPath::Relative(_) => {
                let own = PathBuf::from(own()?);
                // /proc/self/cgroup and the mount root are both relative to the cgroup
                // namespace root; only the part below the mount root exists under it.
                let below = own
                    .strip_prefix(root)
                    .or_else(|_| own.strip_prefix("/"))
                    .unwrap_or(&own);
                mountpoint.join(below)
            }
        };
        Ok(base.join(self.components()))
    }
}

/// The calling process's cgroups, from /proc/self/cgroup ("id:subsystems:path" lines).
pub(crate) struct OwnCgroups {
    entries: Vec<(String, Vec<String>, String)>,
}

impl OwnCgroups {
    pub fn read() -> Result<OwnCgroups> {
        Ok(OwnCgroups::parse(&fs::read(Path::new(
            "/proc/self/cgroup",
        ))?))
    }

    /// The calling thread's cgroups (v1 lets threads of one process differ).
    pub fn read_thread() -> Result<OwnCgroups> {
        Ok(OwnCgroups::parse(&fs::read(Path::new(
            "/proc/thread-self/cgroup",
        ))?))
    }

    fn parse(text: &str) -> OwnCgroups {
        let entries = text
            .lines()
            .filter_map(|l| {
                let mut f = l.splitn(3, ':');
                let (id, subs, path) = (f.next()?, f.next()?, f.next()?);
                let subs = subs
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string);
                Some((id.to_string(), subs.collect(), path.to_string()))
            })
            .collect();
        OwnCgroups { entries }
    }

    /// The path in the v1 hierarchy with exactly these subsystems.
    pub fn v1(&self, subsystems: &[String]) -> Result<String> {
        self.entries
            .iter()
            .find(|(_, subs, _)| crate::hierarchy::same_set(subs, subsystems))
            .map(|(_, _, path)| path.clone())
            .ok_or_else(|| CgroupError::OwnCgroup(subsystems.join(",")))
    }

    /// The path in the unified hierarchy ("0::/path").
    pub fn unified(&self) -> Result<String> {
        self.entries
            .iter()
            .find(|(id, subs, _)| id == "0" && subs.is_empty())
            .map(|(_, _, path)| path.clone())
            .ok_or_else(|| CgroupError::OwnCgroup("unified (cgroup2)".to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_normalizes_and_rejects() {
        let abs = CgroupPath::parse("//a/./b/").unwrap();
        assert_eq!(abs, CgroupPath::Absolute("/a/b".into()));
        assert_eq!(abs.components(), "a/b");
        assert_eq!(
            CgroupPath::parse("a/b").unwrap(),
            CgroupPath::Relative("a/b".into())
        );
        assert!(matches!(
            CgroupPath::parse("/a/../b"),
            Err(CgroupError::InvalidPath(_))
        ));
        assert!(matches!(
            CgroupPath::parse(".."),
            Err(CgroupError::InvalidPath(_))
        ));
        assert!(matches!(
            CgroupPath::parse("/"),
            Err(CgroupError::RootPath(_))
        ));
        assert!(matches!(
            CgroupPath::parse(""),
            Err(CgroupError::RootPath(_))
        ));
        // ".." only as a whole component: "a..b" is a legal directory name.
        assert!(CgroupPath::parse("a..b").is_ok());
    }

    #[test]
    fn resolves_relative_below_own_cgroup() {
        let own = OwnCgroups::parse("5:cpuacct,cpu:/user/1\n1:name=systemd:/s\n0::/u/x\n");
        let cpu = ["cpu".to_string(), "cpuacct".to_string()];
        assert_eq!(own.v1(&cpu).unwrap(), "/user/1");
        assert_eq!(own.v1(&["name=systemd".to_string()]).unwrap(), "/s");
        assert_eq!(own.unified().unwrap(), "/u/x");
        assert!(own.v1(&["memory".to_string()]).is_err());

        let rel = CgroupPath::parse("c/d").unwrap();
        let mnt = Path::new("/sys/fs/cgroup/cpu");
        let dir = rel.resolve(mnt, "/", || own.v1(&cpu)).unwrap();
        assert_eq!(dir, Path::new("/sys/fs/cgroup/cpu/user/1/c/d"));
        // A mount of a sub-tree: only the part of our path below its root is under it.
        let dir = rel.resolve(mnt, "/user", || own.v1(&cpu)).unwrap();
        assert_eq!(dir, Path::new("/sys/fs/cgroup/cpu/1/c/d"));
        let abs = CgroupPath::parse("/k").unwrap();
        let dir = abs.resolve(mnt, "/", || unreachable!()).unwrap();
        assert_eq!(dir, Path::new("/sys/fs/cgroup/cpu/k"));
    }
}
