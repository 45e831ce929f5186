//! The v2 code paths on a real kernel: a hierarchy made of just this host's cgroup2 mount
//! stands in for a pure v2 host (freezing via cgroup.freeze, devices via eBPF, stats from
//! v2 files). Needs root and a cgroup2 mount; skipped otherwise.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

use oci_spec::runtime::{LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxResourcesBuilder};

use crate::{Cgroup, CgroupPath, Controller, FreezerState, Hierarchy, Layout};

struct Guard(Cgroup, Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.thaw();
        let _ = self.1.kill();
        let _ = self.1.wait();
        let _ = self.0.destroy();
    }
}

fn v2_only() -> Option<Hierarchy> {
    let real = Hierarchy::detect().ok()?;
    let mount = real.unified_mount()?;
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let line = format!("1 0 0:1 / {} rw - cgroup2 cgroup2 rw\n", mount.display());
    Some(
        Hierarchy::from_mountinfo(&line, |m| crate::fs::read(&m.join("cgroup.controllers")))
            .unwrap(),
    )
}

#[test]
fn v2_paths_on_a_real_mount() {
    let Some(h) = v2_only() else {
        return;
    };
    assert_eq!(h.layout(), Layout::Unified);
    let path = CgroupPath::parse(&format!("/kapsel-v2-unit-{}", std::process::id())).unwrap();
    let cg = Cgroup::new(&h, &path).unwrap();
    cg.create().unwrap();
    let dir = cg.unified_dir().unwrap();
    assert_eq!(cg.dir(Controller::Freezer), Some(dir.clone()));
    assert_eq!(cg.dir(Controller::Devices), Some(dir.clone()));

    let rule = |allow, typ, dev: Option<(i64, i64)>| {
        let b = LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .typ(typ)
            .access("rwm");
        let b = match dev {
            Some((major, minor)) => b.major(major).minor(minor),
            None => b,
        };
        b.build().unwrap()
    };
    let devices = vec![
        rule(false, LinuxDeviceType::A, None),
        rule(true, LinuxDeviceType::C, Some((1, 3))),
    ];
    let r = LinuxResourcesBuilder::default()
        .devices(devices)
        .build()
        .unwrap();
    cg.apply(&r).unwrap();

    let script =
        "read _; (: </dev/zero) 2>/dev/null && echo zero; : </dev/null && echo null; exec sleep 30";
    let child = Command::new("/bin/sh")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut g = Guard(cg, child);
    g.0.add_process(g.1.id() as i32).unwrap();
    g.1.stdin.take().unwrap().write_all(b"\n").unwrap();
    let mut line = String::new();
    BufReader::new(g.1.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "null\n");

    assert_eq!(g.0.procs().unwrap(), [g.1.id() as i32]);
    g.0.freeze().unwrap();
    assert_eq!(g.0.freezer_state().unwrap(), FreezerState::Frozen);
    g.0.thaw().unwrap();
    assert_eq!(g.0.freezer_state().unwrap(), FreezerState::Thawed);

    let stats = g.0.stats().unwrap();
    assert!(stats.cpu.usage.total > 0);
    if h.unified_controllers().contains(&Controller::Hugetlb) {
        assert!(!stats.hugetlb.is_empty());
    }

    g.1.kill().unwrap();
    g.1.wait().unwrap();
    g.0.destroy().unwrap();
    assert!(!dir.exists());
}
