//! Processes in the cgroup: placement, listing, freezing, stats and removal.

mod common;

use std::path::PathBuf;

use common::{task_state, TestCgroup};
use kapsel_cgroups::{Cgroup, CgroupPath, Controller, FreezerState, Hierarchy};

#[test]
fn process_is_placed_in_every_hierarchy() {
    let t = TestCgroup::new("place");
    let mut child = t.spawn("exec sleep 30");
    let pid = child.id();
    assert_eq!(t.cg.procs().unwrap(), [pid as i32]);
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let name = common::unique_path("place");
    // One line per hierarchy (v1 controllers, name=systemd and the unified "0::").
    let lines: Vec<&str> = cgroups.lines().collect();
    assert_eq!(lines.len(), t.cg.v1_dirs().len() + 1, "{cgroups}");
    for line in lines {
        assert!(line.ends_with(&format!(":{name}")), "{line}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn freeze_and_thaw() {
    let t = TestCgroup::new("freeze");
    let mut child = t.spawn("exec sleep 30");
    assert_eq!(t.cg.freezer_state().unwrap(), FreezerState::Thawed);
    t.cg.freeze().unwrap();
    assert_eq!(t.cg.freezer_state().unwrap(), FreezerState::Frozen);
    // Frozen tasks show as uninterruptible (v1) or stopped.
    let state = task_state(child.id());
    assert!(state == "D" || state == "T", "state {state}");
    t.cg.thaw().unwrap();
    assert_eq!(t.cg.freezer_state().unwrap(), FreezerState::Thawed);
    assert_ne!(task_state(child.id()), "D");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn stats_report_pids_memory_and_cpu() {
    let t = TestCgroup::new("stats");
    let mut child = t.spawn("exec sleep 30");
    // The exec happens after the move: wait until sleep is sleeping, so its memory and the
    // cpu time up to that context switch are charged here.
    let comm = format!("/proc/{}/comm", child.id());
    for _ in 0..1000 {
        if std::fs::read_to_string(&comm).unwrap() == "sleep\n" && task_state(child.id()) == "S" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let stats = t.cg.stats().unwrap();
    assert_eq!(stats.pids.current, 1);
    assert!(stats.memory.usage.usage > 0, "{:?}", stats.memory.usage);
    assert!(stats.memory.usage.limit > 0);
    assert!(!stats.memory.raw.is_empty());
    assert!(stats.cpu.usage.total > 0);
    // hugetlb comes from the unified mount's v2 files on this host.
    assert!(stats.hugetlb.contains_key("2MB"), "{:?}", stats.hugetlb);

    let json = serde_json::to_value(&stats).unwrap();
    assert_eq!(json["pids"]["current"], 1);
    assert!(json["memory"]["usage"]["usage"].as_u64().unwrap() > 0);
    assert!(json["cpu"]["usage"]["total"].is_u64());
    assert!(json["hugetlb"]["2MB"]["failcnt"].is_u64());
    child.kill().unwrap();
    child.wait().unwrap();
}

/// procs() includes sub-cgroups, destroy() removes them first, and a reopened (deserialized)
/// Cgroup addresses the same directories.
#[test]
fn destroy_removes_descendants_everywhere() {
    let t = TestCgroup::new("destroy");
    let reopened: Cgroup = serde_json::from_str(&serde_json::to_string(&t.cg).unwrap()).unwrap();
    assert_eq!(reopened, t.cg);

    let mut child = t.spawn("exec sleep 30");
    let sub = t.cg.dir(Controller::Pids).unwrap().join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("cgroup.procs"), child.id().to_string()).unwrap();
    assert_eq!(reopened.procs().unwrap(), [child.id() as i32]);
    child.kill().unwrap();
    child.wait().unwrap();

    let mut dirs: Vec<PathBuf> = t.cg.v1_dirs().into_iter().map(|(_, d)| d).collect();
    dirs.extend(t.cg.unified_dir());
    assert!(dirs.iter().all(|d| d.is_dir()));
    reopened.destroy().unwrap();
    for d in &dirs {
        assert!(!d.exists(), "{d:?} still exists");
    }
    // Already gone is fine.
    reopened.destroy().unwrap();
}

#[test]
fn create_is_idempotent_and_fills_cpuset() {
    let t = TestCgroup::new("create");
    t.cg.create().unwrap();
    let h = Hierarchy::detect().unwrap();
    let again = Cgroup::new(
        &h,
        &CgroupPath::parse(&common::unique_path("create")).unwrap(),
    );
    assert_eq!(again.unwrap(), t.cg);
    let cpuset = t.cg.dir(Controller::Cpuset).unwrap();
    let root = std::fs::read_to_string("/sys/fs/cgroup/cpuset/cpuset.cpus").unwrap();
    assert_eq!(t.read(cpuset, "cpuset.cpus"), root.trim());
}
