//! Detection and path resolution on this (hybrid) host.

use std::path::{Path, PathBuf};

use kapsel_cgroups::{Cgroup, CgroupError, CgroupPath, Controller, Hierarchy, Layout};

#[test]
fn detects_hybrid_host_with_hugetlb_on_unified() {
    let h = Hierarchy::detect().unwrap();
    assert_eq!(h.layout(), Layout::Hybrid);
    assert_eq!(h.unified_mount(), Some(Path::new("/sys/fs/cgroup/unified")));
    assert!(h.unified_controllers().contains(&Controller::Hugetlb));
    assert!(!h.unified_controllers().contains(&Controller::Memory));
    let mounts = h.v1_mounts();
    for name in [
        "cpu", "cpuacct", "memory", "pids", "freezer", "devices", "systemd",
    ] {
        let want = (
            name.to_string(),
            PathBuf::from(format!("/sys/fs/cgroup/{name}")),
        );
        assert!(mounts.contains(&want), "{name} missing from {mounts:?}");
    }

    let cg = Cgroup::new(&h, &CgroupPath::parse("/kapsel-x").unwrap()).unwrap();
    let dir = |c| cg.dir(c).unwrap();
    assert_eq!(
        dir(Controller::Hugetlb),
        Path::new("/sys/fs/cgroup/unified/kapsel-x")
    );
    assert_eq!(
        dir(Controller::Memory),
        Path::new("/sys/fs/cgroup/memory/kapsel-x")
    );
    assert_eq!(
        dir(Controller::Cpuacct),
        Path::new("/sys/fs/cgroup/cpuacct/kapsel-x")
    );
    assert_eq!(cg.unified_dir(), Some(dir(Controller::Hugetlb)));
    let systemd = (
        "systemd".to_string(),
        PathBuf::from("/sys/fs/cgroup/systemd/kapsel-x"),
    );
    assert!(cg.v1_dirs().contains(&systemd));
}

#[test]
fn rejects_dot_dot() {
    for p in ["/a/../b", "../x", "a/.."] {
        assert!(
            matches!(CgroupPath::parse(p), Err(CgroupError::InvalidPath(_))),
            "{p}"
        );
    }
}

/// A relative path lands below this process's own cgroup in each hierarchy (here the memory
/// hierarchy differs from the others).
#[test]
fn relative_path_resolves_below_own_cgroups() {
    let h = Hierarchy::detect().unwrap();
    let rel = format!("kapsel-test-{}-relative", std::process::id());
    let cg = Cgroup::new(&h, &CgroupPath::parse(&rel).unwrap()).unwrap();
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    for (name, mount) in h.v1_mounts() {
        let subsystems = if name == "systemd" {
            "name=systemd".to_string()
        } else {
            name.clone()
        };
        let line = own
            .lines()
            .find(|l| l.split(':').nth(1) == Some(subsystems.as_str()))
            .unwrap();
        let own_path = line.split(':').nth(2).unwrap().trim_start_matches('/');
        let want = mount.join(own_path).join(&rel);
        assert!(cg.v1_dirs().contains(&(name, want)));
    }
    let unified_own = own.lines().find(|l| l.starts_with("0::")).unwrap();
    let want = h
        .unified_mount()
        .unwrap()
        .join(unified_own[3..].trim_start_matches('/'));
    assert_eq!(cg.unified_dir(), Some(want.join(&rel)));

    let guard = Created(cg);
    guard.0.create().unwrap();
    for (_, dir) in guard.0.v1_dirs() {
        assert!(dir.is_dir(), "{dir:?}");
    }
    guard.0.destroy().unwrap();
    for (_, dir) in guard.0.v1_dirs() {
        assert!(!dir.exists(), "{dir:?}");
    }
}

/// Removes a cgroup created by a test, also when the test fails.
struct Created(Cgroup);

impl Drop for Created {
    fn drop(&mut self) {
        let _ = self.0.destroy();
    }
}
