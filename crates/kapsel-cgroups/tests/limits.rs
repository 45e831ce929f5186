//! apply(): what lands in the limit files, updates of live limits, and enforcement.

mod common;

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;

use common::TestCgroup;
use kapsel_cgroups::Controller;
use oci_spec::runtime::{
    LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder,
    LinuxDeviceType, LinuxHugepageLimitBuilder, LinuxMemoryBuilder, LinuxPidsBuilder,
    LinuxResources, LinuxResourcesBuilder, LinuxThrottleDeviceBuilder,
};

const MIB: i64 = 1024 * 1024;

fn memory(limit: i64, swap: i64) -> LinuxResources {
    let memory = LinuxMemoryBuilder::default()
        .limit(limit)
        .swap(swap)
        .build()
        .unwrap();
    LinuxResourcesBuilder::default()
        .memory(memory)
        .build()
        .unwrap()
}

fn pids(limit: i64) -> LinuxResources {
    let pids = LinuxPidsBuilder::default().limit(limit).build().unwrap();
    LinuxResourcesBuilder::default().pids(pids).build().unwrap()
}

fn device(allow: bool, typ: LinuxDeviceType, major: Option<i64>, minor: i64) -> LinuxDeviceCgroup {
    let b = LinuxDeviceCgroupBuilder::default()
        .allow(allow)
        .typ(typ)
        .access("rwm");
    let b = match major {
        Some(m) => b.major(m).minor(minor),
        None => b,
    };
    b.build().unwrap()
}

/// The first block device's "major:minor" (whole disks and loop devices accept throttles).
fn some_block_device() -> (i64, i64) {
    let mut disks: Vec<_> = std::fs::read_dir("/sys/block").unwrap().flatten().collect();
    disks.sort_by_key(|d| d.file_name());
    let dev = std::fs::read_to_string(disks[0].path().join("dev")).unwrap();
    let (major, minor) = dev.trim().split_once(':').unwrap();
    (major.parse().unwrap(), minor.parse().unwrap())
}

#[test]
fn apply_writes_limit_files() {
    let t = TestCgroup::new("apply");
    let (major, minor) = some_block_device();
    let throttle = LinuxThrottleDeviceBuilder::default()
        .major(major)
        .minor(minor)
        .rate(1_048_576u64)
        .build()
        .unwrap();
    let resources = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(64 * MIB)
                .swap(128 * MIB)
                .reservation(32 * MIB)
                .swappiness(10u64)
                .disable_oom_killer(false)
                .build()
                .unwrap(),
        )
        .cpu(
            LinuxCpuBuilder::default()
                .shares(512u64)
                .quota(50_000i64)
                .period(100_000u64)
                .cpus("0")
                .mems("0")
                .build()
                .unwrap(),
        )
        .pids(LinuxPidsBuilder::default().limit(32).build().unwrap())
        .block_io(
            LinuxBlockIoBuilder::default()
                .weight(200u16)
                .throttle_read_bps_device(vec![throttle])
                .build()
                .unwrap(),
        )
        .hugepage_limits(vec![LinuxHugepageLimitBuilder::default()
            .page_size("2MB")
            .limit(2 * 2 * MIB)
            .build()
            .unwrap()])
        .devices(vec![
            device(false, LinuxDeviceType::A, None, 0),
            device(true, LinuxDeviceType::C, Some(1), 3),
            device(true, LinuxDeviceType::C, Some(1), 5),
        ])
        .unified(HashMap::from([(
            "cgroup.max.descendants".to_string(),
            "5".to_string(),
        )]))
        .build()
        .unwrap();
    t.cg.apply(&resources).unwrap();

    let dir = |c| t.cg.dir(c).unwrap();
    let mem = dir(Controller::Memory);
    assert_eq!(
        t.read(mem.clone(), "memory.limit_in_bytes"),
        (64 * MIB).to_string()
    );
    assert_eq!(
        t.read(mem.clone(), "memory.memsw.limit_in_bytes"),
        (128 * MIB).to_string()
    );
    assert_eq!(
        t.read(mem.clone(), "memory.soft_limit_in_bytes"),
        (32 * MIB).to_string()
    );
    assert_eq!(t.read(mem.clone(), "memory.swappiness"), "10");
    assert!(t
        .read(mem, "memory.oom_control")
        .contains("oom_kill_disable 0"));
    let cpu = dir(Controller::Cpu);
    assert_eq!(t.read(cpu.clone(), "cpu.shares"), "512");
    assert_eq!(t.read(cpu.clone(), "cpu.cfs_quota_us"), "50000");
    assert_eq!(t.read(cpu, "cpu.cfs_period_us"), "100000");
    assert_eq!(t.read(dir(Controller::Cpuset), "cpuset.cpus"), "0");
    assert_eq!(t.read(dir(Controller::Cpuset), "cpuset.mems"), "0");
    assert_eq!(t.read(dir(Controller::Pids), "pids.max"), "32");
    let blkio = dir(Controller::Blkio);
    let weight = ["blkio.weight", "blkio.bfq.weight"]
        .into_iter()
        .find(|f| blkio.join(f).exists())
        .unwrap();
    assert_eq!(t.read(blkio.clone(), weight), "200");
    let throttled = t.read(blkio, "blkio.throttle.read_bps_device");
    assert_eq!(throttled, format!("{major}:{minor} 1048576"));
    // hugetlb is only on the unified mount here, so its v2 file is used.
    let hugetlb = dir(Controller::Hugetlb);
    assert_eq!(Some(hugetlb.clone()), t.cg.unified_dir());
    assert_eq!(
        t.read(hugetlb.clone(), "hugetlb.2MB.max"),
        (4 * MIB).to_string()
    );
    assert_eq!(t.read(hugetlb, "cgroup.max.descendants"), "5");
    assert_eq!(
        t.read(dir(Controller::Devices), "devices.list"),
        "c 1:3 rwm\nc 1:5 rwm"
    );
}

/// Lowering and raising memory+swap must order the v1 writes so each one is valid.
#[test]
fn update_lowers_and_raises_memory() {
    let t = TestCgroup::new("update");
    let mem = t.cg.dir(Controller::Memory).unwrap();
    // In MiB; -1 is unlimited memory+swap.
    for (limit, swap) in [(64, 128), (32, 32), (256, 512), (16, -1), (8, 8)] {
        let swap_bytes = if swap < 0 { -1 } else { swap * MIB };
        t.cg.apply(&memory(limit * MIB, swap_bytes)).unwrap();
        let limit_file = t.read(mem.clone(), "memory.limit_in_bytes");
        let swap_file: i64 = t
            .read(mem.clone(), "memory.memsw.limit_in_bytes")
            .parse()
            .unwrap();
        assert_eq!(limit_file, (limit * MIB).to_string());
        if swap < 0 {
            assert!(swap_file > 1 << 60, "memsw {swap_file}");
        } else {
            assert_eq!(swap_file, swap * MIB);
        }
    }
    // Only the given fields change: a pids update leaves memory alone.
    t.cg.apply(&pids(-1)).unwrap();
    assert_eq!(t.read(mem, "memory.limit_in_bytes"), (8 * MIB).to_string());
    assert_eq!(
        t.read(t.cg.dir(Controller::Pids).unwrap(), "pids.max"),
        "max"
    );
}

#[test]
fn pids_limit_stops_fork_loop() {
    let t = TestCgroup::new("pids");
    t.cg.apply(&pids(4)).unwrap();
    // The sleeps must not hold the test's stderr pipe open, or reading it waits for them.
    let script = "for i in 1 2 3 4 5 6 7 8; do sleep 30 </dev/null >/dev/null 2>&1 & done; wait";
    let mut child = t.spawn(script);
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success(), "the loop should have failed to fork");
    assert!(stderr.to_lowercase().contains("fork"), "stderr: {stderr}");
    let stats = t.cg.stats().unwrap();
    assert!(stats.pids.current <= 4, "{:?}", stats.pids);
    assert_eq!(stats.pids.limit, 4);
    assert!(t.cg.procs().unwrap().len() <= 4);
    let events = t.read(t.cg.dir(Controller::Pids).unwrap(), "pids.events");
    assert_ne!(events, "max 0");
}

fn python() -> &'static str {
    if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

#[test]
fn memory_limit_oom_kills() {
    let t = TestCgroup::new("oom");
    // memory+swap equal to the limit: no swap to escape to.
    t.cg.apply(&memory(32 * MIB, 32 * MIB)).unwrap();
    let script = format!("exec {} -c 'b = bytearray(200 * 1024 * 1024)'", python());
    let status = t.spawn(&script).wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
}

/// v1 device rules are enforced: /dev/null allowed, /dev/zero denied.
#[test]
fn device_rules_are_enforced() {
    let t = TestCgroup::new("devices");
    let rules = LinuxResourcesBuilder::default()
        .devices(vec![
            device(false, LinuxDeviceType::A, None, 0),
            device(true, LinuxDeviceType::C, Some(1), 3),
        ])
        .build()
        .unwrap();
    t.cg.apply(&rules).unwrap();
    let mut child = t.spawn("(: </dev/zero) 2>/dev/null && echo zero; : </dev/null && echo null");
    child.wait().unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(out, "null\n");
}

#[test]
fn unified_settings_need_a_file_name() {
    let t = TestCgroup::new("unified");
    let bad = LinuxResourcesBuilder::default()
        .unified(HashMap::from([("../x".to_string(), "1".to_string())]))
        .build()
        .unwrap();
    assert!(t.cg.apply(&bad).is_err());
}
