//! Namespaces: pid, uts (hostname, domainname), ipc, network (new and joined
//! by path), mount, user (id mappings), cgroup and time.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;

use common::{host, host_ns_inode, ns_inode, remove_namespace, set_namespace};
use serde_json::json;

#[test]
fn pid_namespace_process_is_pid_1() {
    let t = test_env!();
    let out = t.sh("echo $$; cat /proc/1/cmdline | tr '\\0' ' '", |_| {});
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("1"), "{out}");
    let cmdline = lines.next().unwrap_or("");
    assert!(
        cmdline.starts_with("sh -c "),
        "/proc/1/cmdline: {cmdline:?}"
    );
}

#[test]
fn pid_namespace_sees_only_container_processes() {
    let t = test_env!();
    let out = t.sh(
        "sleep 100 & set -- /proc/[0-9]*; echo $#; echo $*; readlink /proc/self/ns/pid",
        |_| {},
    );
    let lines: Vec<&str> = out.lines().collect();
    let n: usize = lines[0].parse().unwrap();
    // sh (pid 1), sleep and possibly the readlink being forked.
    assert!((2..=4).contains(&n), "{out}");
    assert!(lines[1].split(' ').any(|p| p == "/proc/1"), "{out}");
    let host_procs = fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .count();
    assert!(host_procs > n, "host sees {host_procs} processes");
    assert_ne!(ns_inode(lines[2]), host_ns_inode("pid"));
}

#[test]
fn hostname_is_set() {
    let t = test_env!();
    let host_name = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let out = t.sh("hostname; cat /proc/sys/kernel/hostname", |cfg| {
        cfg["hostname"] = json!("kt-host-name");
    });
    assert_eq!(out, "kt-host-name\nkt-host-name\n");
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        host_name,
        "host hostname changed"
    );
}

/// runc 1.1.5 ignores "domainname" (it is applied from runc 1.2 on): skipped
/// when the runtime under test is runc.
#[test]
fn domainname_is_set() {
    let t = test_env!();
    let host_domain = fs::read_to_string("/proc/sys/kernel/domainname").unwrap();
    let id = t.id();
    let mut cfg = t.spec(&id, &["cat", "/proc/sys/kernel/domainname"]);
    cfg["domainname"] = json!("kt.example");
    let o = t.run(&id, &cfg);
    if o.stdout.trim() != "kt.example" && common::skip_if_runc("runc 1.1 ignores domainname") {
        return;
    }
    let o = o.ok("run");
    assert_eq!(o.stdout.trim(), "kt.example");
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/domainname").unwrap(),
        host_domain
    );
}

#[test]
fn new_namespaces_differ_from_host() {
    let t = test_env!();
    let out = t.sh(
        "for n in pid net ipc uts mnt; do readlink /proc/self/ns/$n; done",
        |_| {},
    );
    let kinds = ["pid", "net", "ipc", "uts", "mnt"];
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), kinds.len(), "{out}");
    for (kind, line) in kinds.iter().zip(&lines) {
        assert!(line.starts_with(kind), "{line}");
        assert_ne!(ns_inode(line), host_ns_inode(kind), "{kind} not unshared");
    }
}

#[test]
fn omitted_namespaces_are_shared_with_host() {
    let t = test_env!();
    let out = t.sh(
        "readlink /proc/self/ns/uts; readlink /proc/self/ns/ipc; hostname",
        |cfg| {
            remove_namespace(cfg, "uts");
            remove_namespace(cfg, "ipc");
            cfg.as_object_mut().unwrap().remove("hostname");
        },
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(ns_inode(lines[0]), host_ns_inode("uts"), "{out}");
    assert_eq!(ns_inode(lines[1]), host_ns_inode("ipc"), "{out}");
    let host_name = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(lines[2], host_name.trim());
}

#[test]
fn network_namespace_has_only_loopback() {
    let t = test_env!();
    let out = t.sh("tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '", |_| {});
    let ifaces: Vec<&str> = out.lines().collect();
    assert_eq!(ifaces, vec!["lo"], "{out}");
    let host_dev = fs::read_to_string("/proc/net/dev").unwrap();
    assert!(host_dev.lines().count() > 3, "host has only lo?");
}

#[test]
fn ipc_namespace_is_isolated() {
    let t = test_env!();
    let out = t.sh(
        "readlink /proc/self/ns/ipc; cat /proc/sysvipc/shm | wc -l; ls /dev/mqueue | wc -l",
        |_| {},
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_ne!(ns_inode(lines[0]), host_ns_inode("ipc"));
    // Only the header line: no SysV shared memory segments.
    assert_eq!(lines[1].trim(), "1", "{out}");
    assert_eq!(lines[2].trim(), "0", "{out}");
}

/// A network namespace owned by this test, made with `ip netns add`.
fn make_netns(t: &common::Test) -> (String, u64) {
    let name = format!("kt-{}-{}", std::process::id(), t.name);
    let name: String = name.chars().take(60).collect();
    host("ip", &["netns", "add", &name]).ok("ip netns add");
    let n = name.clone();
    t.on_cleanup(move || {
        let _ = host("ip", &["netns", "del", &n]);
    });
    // Give it a recognisable interface besides lo.
    host(
        "ip",
        &[
            "-n", &name, "link", "add", "ktveth0", "type", "veth", "peer", "name", "ktveth1",
        ],
    )
    .ok("add veth pair");
    let ino = fs::metadata(format!("/run/netns/{name}")).unwrap().ino();
    (name, ino)
}

#[test]
fn join_network_namespace_by_path() {
    let t = test_env!();
    let (name, ino) = make_netns(&t);
    let out = t.sh("readlink /proc/self/ns/net; cat /proc/net/dev", |cfg| {
        set_namespace(cfg, "network", Some(&format!("/run/netns/{name}")));
    });
    let first = out.lines().next().unwrap();
    assert_eq!(ns_inode(first), ino, "{out}");
    assert!(out.contains("ktveth0") && out.contains("ktveth1"), "{out}");
}

#[test]
fn join_uts_namespace_of_other_container() {
    let t = test_env!();
    let (_a, pid_a) = t.started(&["sleep", "1000"], |cfg| {
        cfg["hostname"] = json!("first-ctr");
    });
    let out = t.sh("hostname; readlink /proc/self/ns/uts", |cfg| {
        set_namespace(cfg, "uts", Some(&format!("/proc/{pid_a}/ns/uts")));
        cfg.as_object_mut().unwrap().remove("hostname");
    });
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "first-ctr", "{out}");
    let want = fs::read_link(format!("/proc/{pid_a}/ns/uts")).unwrap();
    assert_eq!(ns_inode(lines[1]), ns_inode(&want.to_string_lossy()));
}

#[test]
fn mount_namespace_is_private() {
    let t = test_env!();
    let host_mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let out = t.sh("readlink /proc/self/ns/mnt; mount -t tmpfs kt-private-tmpfs /tmp && grep -c kt-private-tmpfs /proc/self/mountinfo", |cfg| {
        common::set_caps(cfg, &["CAP_SYS_ADMIN"]);
    });
    let lines: Vec<&str> = out.lines().collect();
    assert_ne!(ns_inode(lines[0]), host_ns_inode("mnt"));
    assert_eq!(lines[1], "1", "{out}");
    let after = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !after.contains("kt-private-tmpfs"),
        "mount leaked to the host"
    );
    assert!(!host_mounts.contains("kt-private-tmpfs"));
}

fn userns_spec(t: &common::Test, id: &str, args: &[&str]) -> serde_json::Value {
    let mut cfg = t.spec(id, args);
    set_namespace(&mut cfg, "user", None);
    cfg["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    cfg["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    cfg
}

#[test]
fn user_namespace_mappings() {
    let t = test_env!();
    let id = t.id();
    let cfg = userns_spec(
        &t,
        &id,
        &[
            "sh",
            "-c",
            "cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g; touch /out/made-in-userns; readlink /proc/self/ns/user",
        ],
    );
    let o = t.run(&id, &cfg).ok("run with user namespace");
    let lines: Vec<Vec<&str>> = o
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], vec!["0", "100000", "65536"], "{}", o.stdout);
    assert_eq!(lines[1], vec!["0", "100000", "65536"], "{}", o.stdout);
    assert_eq!(lines[2], vec!["0"], "{}", o.stdout);
    assert_eq!(lines[3], vec!["0"], "{}", o.stdout);
    assert_ne!(ns_inode(lines[4][0]), host_ns_inode("user"));
    let md = fs::metadata(t.out.join("made-in-userns")).expect("file created in userns");
    assert_eq!(md.uid(), 100000, "owner on the host");
    assert_eq!(md.gid(), 100000, "group on the host");
}

#[test]
fn user_namespace_nonroot_user_maps() {
    let t = test_env!();
    let id = t.id();
    let mut cfg = userns_spec(&t, &id, &["sh", "-c", "id -u; touch /out/by-1000"]);
    cfg["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    t.run(&id, &cfg).ok("run");
    let md = fs::metadata(t.out.join("by-1000")).expect("file");
    assert_eq!(md.uid(), 101000);
    assert_eq!(md.gid(), 101000);
}

#[test]
fn cgroup_namespace_shows_root_paths() {
    let t = test_env!();
    let out = t.sh(
        "cat /proc/self/cgroup; readlink /proc/self/ns/cgroup",
        |cfg| {
            set_namespace(cfg, "cgroup", None);
        },
    );
    let mut lines: Vec<&str> = out.lines().collect();
    let ns = lines.pop().unwrap();
    assert_ne!(ns_inode(ns), host_ns_inode("cgroup"));
    assert!(!lines.is_empty());
    for l in &lines {
        assert!(
            l.ends_with(":/"),
            "cgroup path not / in a cgroup namespace: {out}"
        );
    }
    // Without a cgroup namespace the container sees its cgroupsPath.
    let id = t.id();
    let cfg = t.spec(&id, &["cat", "/proc/self/cgroup"]);
    let o = t.run(&id, &cfg).ok("run");
    let want = common::Test::cgroups_path(&id);
    assert!(o.stdout.contains(&want), "{}", o.stdout);
}

/// runc 1.1.5 does not support the "time" namespace (runc 1.2 does): skipped
/// when the runtime under test is runc.
#[test]
fn time_namespace_offsets() {
    let t = test_env!();
    let offset: u64 = 10_000_000;
    let id = t.id();
    let mut cfg = t.spec(&id, &["cat", "/proc/uptime"]);
    set_namespace(&mut cfg, "time", None);
    cfg["linux"]["timeOffsets"] = json!({
        "boottime": {"secs": offset, "nanosecs": 0},
        "monotonic": {"secs": offset, "nanosecs": 0}
    });
    let o = t.run(&id, &cfg);
    if !o.success() && common::skip_if_runc("runc 1.1 does not support time namespaces") {
        return;
    }
    let o = o.ok("run with time namespace");
    let host_up: f64 = fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let inside: f64 = o.stdout.split_whitespace().next().unwrap().parse().unwrap();
    let diff = inside - host_up;
    assert!(
        (diff - offset as f64).abs() < 120.0,
        "uptime inside {inside}, host {host_up}: offset not applied"
    );
}
