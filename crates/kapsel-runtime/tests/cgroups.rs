//! cgroups: memory, pids and cpu limits (host files and enforcement),
//! `update`, `pause`/`resume`, `events --stats`, removal on delete and
//! `kill --all`. Works on cgroup v1, v2 and hybrid hosts: the host-side files
//! are found through the hierarchy that holds each controller.

mod common;

use std::fs;
use std::time::Duration;

use common::{cgroup_dir, cgroup_existing_dirs, cgroup_read, pid_alive, wait_until, Test};
use serde_json::{json, Value};

const MIB: u64 = 1024 * 1024;

fn memory_limit(cgpath: &str) -> String {
    cgroup_read("memory", cgpath, "memory.limit_in_bytes", "memory.max")
}

fn pids_limit(cgpath: &str) -> String {
    cgroup_read("pids", cgpath, "pids.max", "pids.max")
}

#[test]
fn memory_limit_is_set() {
    let t = test_env!();
    let (id, pid) = t.started(&["sleep", "1000"], |cfg| {
        cfg["linux"]["resources"]["memory"] = json!({"limit": 32 * MIB});
    });
    let cg = Test::cgroups_path(&id);
    assert_eq!(memory_limit(&cg), (32 * MIB).to_string());
    // The init process is in that cgroup.
    let (dir, _) = cgroup_dir("memory", &cg);
    let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap();
    assert!(
        procs.lines().any(|p| p == pid.to_string()),
        "{pid} not in {}: {procs}",
        dir.display()
    );
    // The container sees the limit through its /sys/fs/cgroup.
    let inside = t
        .exec(
            &id,
            &[
                "sh",
                "-c",
                "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max",
            ],
        )
        .ok("exec");
    assert_eq!(inside.stdout.trim(), (32 * MIB).to_string());
}

#[test]
fn memory_limit_is_enforced() {
    let t = test_env!();
    // The shell (the container's init) grows a 100 MB string: with a 32 MiB
    // limit and no swap it is OOM-killed.
    let script = "x=$(yes | head -c 100000000); echo survived ${#x} > /out/survived";
    let id = t.id();
    let mut cfg = t.spec(&id, &["sh", "-c", script]);
    cfg["linux"]["resources"]["memory"] = json!({"limit": 32 * MIB, "swap": 32 * MIB});
    let pid = t.create_and_start(&id, &cfg);
    t.wait_status(&id, "stopped");
    assert!(!pid_alive(pid));
    assert!(
        !t.out.join("survived").exists(),
        "allocation past the limit survived"
    );
    let cg = Test::cgroups_path(&id);
    let (dir, v2) = cgroup_dir("memory", &cg);
    let events = if v2 {
        fs::read_to_string(dir.join("memory.events")).unwrap()
    } else {
        fs::read_to_string(dir.join("memory.oom_control")).unwrap()
    };
    let kills: u64 = events
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .unwrap_or("0")
        .trim()
        .parse()
        .unwrap();
    assert!(kills >= 1, "no OOM kill recorded: {events}");

    // With `run`, the OOM-killed init gives 128 + SIGKILL.
    let id = t.id();
    let mut cfg = t.spec(&id, &["sh", "-c", script]);
    cfg["linux"]["resources"]["memory"] = json!({"limit": 32 * MIB, "swap": 32 * MIB});
    let o = t.run(&id, &cfg);
    assert_eq!(o.status, 137, "{}", o.all());

    // Control: with enough memory it survives.
    let id = t.id();
    let mut cfg = t.spec(&id, &["sh", "-c", script]);
    cfg["linux"]["resources"]["memory"] = json!({"limit": 512 * MIB});
    t.run(&id, &cfg).ok("run with 512 MiB");
    assert_eq!(t.read_out("survived").trim(), "survived 99999999");
}

#[test]
fn pids_limit_is_enforced() {
    let t = test_env!();
    // A failed fork ends a busybox shell, so the loop runs in a subshell;
    // the count uses only builtins.
    let script = "(for i in $(seq 30); do sleep 5 & done) 2>/dev/null; \
                  set -- /proc/[0-9]*; echo $#";
    let id = t.id();
    let mut cfg = t.spec(&id, &["sh", "-c", script]);
    cfg["linux"]["resources"]["pids"] = json!({"limit": 10});
    let b = t.write_bundle(&id, &cfg);
    let o = t.rt(&["run", "--bundle", &b.to_string_lossy(), &id]);
    let n: usize = o
        .stdout
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{}", o.all()));
    assert!(
        (2..=10).contains(&n),
        "{n} processes with pids.max 10: {}",
        o.all()
    );

    // Host side.
    let (id, _) = t.started(&["sleep", "1000"], |cfg| {
        cfg["linux"]["resources"]["pids"] = json!({"limit": 10});
    });
    assert_eq!(pids_limit(&Test::cgroups_path(&id)), "10");
    // Control: without a limit all 30 sleeps start.
    let out = t.sh(script, |_| {});
    assert!(out.trim().parse::<usize>().unwrap() >= 31, "{out}");
}

#[test]
fn cpu_quota_period_and_shares() {
    let t = test_env!();
    let (id, _) = t.started(&["sleep", "1000"], |cfg| {
        cfg["linux"]["resources"]["cpu"] = json!({
            "quota": 50000, "period": 100000, "shares": 512
        });
    });
    let cg = Test::cgroups_path(&id);
    let (dir, v2) = cgroup_dir("cpu", &cg);
    let read = |f: &str| fs::read_to_string(dir.join(f)).unwrap().trim().to_string();
    if v2 {
        assert_eq!(read("cpu.max"), "50000 100000");
        // shares 512 -> weight 1 + ((512 - 2) * 9999) / 262142 = 20
        assert_eq!(read("cpu.weight"), "20");
    } else {
        assert_eq!(read("cpu.cfs_quota_us"), "50000");
        assert_eq!(read("cpu.cfs_period_us"), "100000");
        assert_eq!(read("cpu.shares"), "512");
    }
}

#[test]
fn cpuset() {
    let t = test_env!();
    let (id, _) = t.started(&["sleep", "1000"], |cfg| {
        cfg["linux"]["resources"]["cpu"] = json!({"cpus": "0", "mems": "0"});
    });
    let cg = Test::cgroups_path(&id);
    let cpus = cgroup_read("cpuset", &cg, "cpuset.cpus", "cpuset.cpus");
    assert_eq!(cpus, "0");
    let o = t
        .exec(&id, &["grep", "Cpus_allowed_list", "/proc/self/status"])
        .ok("exec");
    assert!(o.stdout.trim().ends_with("\t0"), "{}", o.stdout);
}

#[test]
fn update_memory() {
    let t = test_env!();
    let (id, _) = t.started(&["sleep", "1000"], |cfg| {
        cfg["linux"]["resources"]["memory"] = json!({"limit": 32 * MIB});
    });
    let cg = Test::cgroups_path(&id);
    assert_eq!(memory_limit(&cg), (32 * MIB).to_string());
    t.rt(&["update", "--memory", &(64 * MIB).to_string(), &id])
        .ok("update --memory");
    assert_eq!(memory_limit(&cg), (64 * MIB).to_string());
    t.rt(&["update", "--pids-limit", "42", &id])
        .ok("update --pids-limit");
    assert_eq!(pids_limit(&cg), "42");
    assert_eq!(t.status(&id), "running");
}

#[test]
fn update_from_resources_file() {
    let t = test_env!();
    let (id, _) = t.started(&["sleep", "1000"], |cfg| {
        cfg["linux"]["resources"]["memory"] = json!({"limit": 32 * MIB});
        cfg["linux"]["resources"]["pids"] = json!({"limit": 100});
    });
    let cg = Test::cgroups_path(&id);
    let r = json!({"memory": {"limit": 48 * MIB}, "pids": {"limit": 20}});
    let f = t.dir.join("resources.json");
    fs::write(&f, r.to_string()).unwrap();
    t.rt(&["update", "-r", &f.to_string_lossy(), &id])
        .ok("update -r");
    assert_eq!(memory_limit(&cg), (48 * MIB).to_string());
    assert_eq!(pids_limit(&cg), "20");
}

fn frozen(cg: &str) -> bool {
    let (dir, v2) = cgroup_dir("freezer", cg);
    if v2 {
        fs::read_to_string(dir.join("cgroup.freeze"))
            .unwrap()
            .trim()
            == "1"
    } else {
        fs::read_to_string(dir.join("freezer.state"))
            .unwrap()
            .trim()
            == "FROZEN"
    }
}

#[test]
fn pause_and_resume() {
    let t = test_env!();
    let script = "while :; do echo x >> /out/ticks; sleep 0.05; done";
    let (id, _) = t.started(&["sh", "-c", script], |_| {});
    t.wait_out("ticks");
    let cg = Test::cgroups_path(&id);
    assert!(!frozen(&cg));

    t.rt(&["pause", &id]).ok("pause");
    assert_eq!(t.status(&id), "paused");
    assert!(frozen(&cg), "cgroup not frozen");
    std::thread::sleep(Duration::from_millis(100));
    let before = t.read_out("ticks").len();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        t.read_out("ticks").len(),
        before,
        "paused process kept running"
    );
    // Pausing twice is an error; so is resuming a running container later.
    t.rt(&["pause", &id]).fails("second pause");

    t.rt(&["resume", &id]).ok("resume");
    assert_eq!(t.status(&id), "running");
    assert!(!frozen(&cg));
    assert!(
        wait_until(Duration::from_secs(5), || t.read_out("ticks").len()
            > before),
        "resumed process does not run"
    );
    t.rt(&["resume", &id])
        .fails("resume of a running container");
}

#[test]
fn delete_force_of_paused_container() {
    let t = test_env!();
    let (id, pid) = t.started(&["sleep", "1000"], |_| {});
    t.rt(&["pause", &id]).ok("pause");
    t.rt(&["delete", "--force", &id])
        .ok("delete --force of paused");
    assert!(wait_until(Duration::from_secs(5), || !pid_alive(pid)));
    t.assert_gone(&id);
}

#[test]
fn events_stats() {
    let t = test_env!();
    let (id, _) = t.started(
        &["sh", "-c", "x=$(yes | head -c 4000000); exec sleep 1000"],
        |cfg| {
            cfg["linux"]["resources"]["memory"] = json!({"limit": 64 * MIB});
            cfg["linux"]["resources"]["pids"] = json!({"limit": 50});
        },
    );
    let o = t.rt(&["events", "--stats", &id]).ok("events --stats");
    let line = o.stdout.lines().next().unwrap_or("");
    let v: Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("events --stats is not JSON ({e}): {}", o.stdout));
    assert_eq!(v["type"], "stats", "{v}");
    assert_eq!(v["id"], id.as_str(), "{v}");
    let usage = v["data"]["memory"]["usage"]["usage"].as_u64().unwrap_or(0);
    assert!(usage > 0, "memory usage: {v}");
    let limit = v["data"]["memory"]["usage"]["limit"].as_u64().unwrap_or(0);
    assert_eq!(limit, 64 * MIB, "{v}");
    let pids = v["data"]["pids"]["current"].as_u64().unwrap_or(0);
    assert!(pids >= 1, "pids.current: {v}");
    assert_eq!(v["data"]["pids"]["limit"].as_u64(), Some(50), "{v}");
}

#[test]
fn delete_removes_cgroups_everywhere() {
    let t = test_env!();
    let id = t.id();
    let mut cfg = t.spec(&id, &["sleep", "1000"]);
    cfg["linux"]["resources"]["memory"] = json!({"limit": 64 * MIB});
    cfg["linux"]["resources"]["pids"] = json!({"limit": 50});
    t.create(&id, &cfg).ok("create");
    let cg = Test::cgroups_path(&id);
    let dirs = cgroup_existing_dirs(&cg);
    for ctrl in ["memory", "pids", "cpu", "freezer"] {
        let (d, _) = cgroup_dir(ctrl, &cg);
        assert!(
            dirs.contains(&d),
            "no {ctrl} cgroup {} after create",
            d.display()
        );
    }
    t.rt(&["start", &id]).ok("start");
    t.rt(&["kill", &id, "KILL"]).ok("kill");
    t.wait_status(&id, "stopped");
    t.rt(&["delete", &id]).ok("delete");
    let left = cgroup_existing_dirs(&cg);
    assert!(left.is_empty(), "cgroups left after delete: {left:?}");
}

#[test]
fn kill_all_empties_the_cgroup() {
    let t = test_env!();
    let script = "sleep 1000 & sleep 1000 & (sleep 1000 &) ; echo ready > /out/ready; wait";
    let (id, _) = t.started(&["sh", "-c", script], |cfg| {
        common::remove_namespace(cfg, "pid");
    });
    t.wait_out("ready");
    let cg = Test::cgroups_path(&id);
    let (dir, _) = cgroup_dir("pids", &cg);
    let procs = || -> Vec<i64> {
        fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    };
    let before = procs();
    assert!(before.len() >= 4, "{before:?}");
    t.rt(&["kill", "--all", &id, "KILL"]).ok("kill --all");
    assert!(
        wait_until(Duration::from_secs(10), || procs().is_empty()),
        "left in the cgroup: {:?}",
        procs()
    );
    for p in before {
        assert!(!pid_alive(p), "{p} survived");
    }
}
