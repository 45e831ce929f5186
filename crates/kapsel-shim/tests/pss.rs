//! Measures the memory of idle shims: the sum of `Pss:` over N shims (each supervising a
//! sleeping container), divided by N. Printed, not asserted (run with --nocapture to see
//! it); the target is 0.2 MiB. KAPSEL_SHIM_BIN=target/release/kapsel-shim measures a
//! release build; KAPSEL_PSS_N changes N (shared code counts for less as N grows).

mod common;

use std::fs;
use std::time::Duration;

use common::{Env, ShimSpec};

fn shim_count() -> usize {
    std::env::var("KAPSEL_PSS_N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10)
}

/// A field of /proc/PID/smaps_rollup, in KiB.
fn rollup(pid: i32, field: &str) -> u64 {
    let text = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in smaps_rollup of {pid}"))
}

/// The shim's pid: the parent of the container's process (its subreaper).
fn shim_pid(container_pid: i32) -> i32 {
    let status = fs::read_to_string(format!("/proc/{container_pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The mappings of one process that count: (PSS, private dirty) in KiB and the mapping,
/// largest PSS first.
fn by_mapping(pid: i32) -> Vec<(u64, u64, String)> {
    let text = fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
    let mut out: Vec<(u64, u64, String)> = Vec::new();
    let kb = |v: &str| -> u64 { v.trim().trim_end_matches("kB").trim().parse().unwrap() };
    for line in text.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            let mut f = line.split_whitespace();
            let (range, perms) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
            let name = f.nth(3).unwrap_or("[anon]");
            out.push((0, 0, format!("{range} {perms} {name}")));
        } else if let (Some(v), Some(last)) = (line.strip_prefix("Pss:"), out.last_mut()) {
            last.0 = kb(v);
        } else if let (Some(v), Some(last)) = (line.strip_prefix("Private_Dirty:"), out.last_mut())
        {
            last.1 = kb(v);
        }
    }
    out.retain(|m| m.0 > 0 || m.1 > 0);
    out.sort_by_key(|m| std::cmp::Reverse(m.0));
    out
}

#[test]
fn pss_of_idle_shims() {
    let env = Env::new("pss");
    let b = env.bundle("b", &["sleep", "100000"]);
    let n = shim_count();
    let mut shims: Vec<_> = (0..n)
        .map(|i| {
            let s = ShimSpec::container(&env, &format!("c{i}"), &b).spawn();
            assert!(s.pid.is_some(), "readiness: {}", s.ready);
            s
        })
        .collect();
    // Idle: past the quiet time after which a shim gives back what start-up used.
    std::thread::sleep(Duration::from_secs(3));
    let pids: Vec<i32> = shims.iter().map(|s| shim_pid(s.pid.unwrap())).collect();
    let pss: u64 = pids.iter().map(|&p| rollup(p, "Pss:")).sum();
    let rss: u64 = pids.iter().map(|&p| rollup(p, "Rss:")).sum();
    let dirty: u64 = pids.iter().map(|&p| rollup(p, "Private_Dirty:")).sum();
    println!(
        "{n} idle shims ({}): PSS {:.3} MiB per shim (RSS {} KiB, private dirty {} KiB per shim)",
        common::shim_bin().display(),
        pss as f64 / n as f64 / 1024.0,
        rss / n as u64,
        dirty / n as u64
    );
    println!("one shim by mapping (KiB):   PSS  private dirty");
    for (pss, dirty, mapping) in by_mapping(pids[0]) {
        println!("  {pss:>5} {dirty:>5}  {mapping}");
    }
    for s in &shims {
        s.kill_process(libc::SIGKILL);
    }
    for s in &mut shims {
        assert_eq!(s.wait().1["exit_code"], 137);
    }
}
