//! The container process: env, cwd, user and groups, umask, rlimits,
//! oomScoreAdj, noNewPrivileges, sysctl, capabilities, and `exec`.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use common::{cap_mask, parse_mask, pid_alive, status_field, wait_until, DEFAULT_CAPS};
use serde_json::json;

#[test]
fn env_and_cwd() {
    let t = test_env!();
    let out = t.sh(
        "pwd; echo \"$FOO|$WITH_EQ|$EMPTY|${UNSET-unset}\"; env | sort",
        |cfg| {
            cfg["process"]["cwd"] = json!("/tmp");
            cfg["process"]["env"] =
                json!(["PATH=/bin:/usr/bin", "FOO=bar baz", "WITH_EQ=a=b", "EMPTY="]);
        },
    );
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("/tmp"), "{out}");
    assert_eq!(lines.next(), Some("bar baz|a=b||unset"), "{out}");
    let env: Vec<&str> = lines.collect();
    assert!(env.contains(&"PATH=/bin:/usr/bin"), "{env:?}");
    assert!(!env.iter().any(|e| e.starts_with("TERM=")), "{env:?}");
}

#[test]
fn cwd_is_used_for_relative_args() {
    let t = test_env!();
    // A relative executable path resolves against cwd.
    let out = t.run_ok(&["./busybox", "echo", "relative"], |cfg| {
        cfg["process"]["cwd"] = json!("/bin");
    });
    assert_eq!(out.stdout, "relative\n");
}

#[test]
fn args_resolved_through_path() {
    let t = test_env!();
    let o = t.run_ok(&["echo", "via-path"], |_| {});
    assert_eq!(o.stdout, "via-path\n");
    let id = t.id();
    let cfg = t.spec(&id, &["kt-no-such-binary"]);
    let o = t.run(&id, &cfg);
    assert_ne!(o.status, 0, "{}", o.all());
    assert!(o.stderr.contains("kt-no-such-binary"), "{}", o.all());
}

#[test]
fn user_uid_gid_and_additional_gids() {
    let t = test_env!();
    let out = t.sh(
        "id -u; id -g; id -G; grep -E '^(Uid|Gid|Groups):' /proc/self/status",
        |cfg| {
            cfg["process"]["user"] =
                json!({"uid": 1000, "gid": 1001, "additionalGids": [10, 2000]});
        },
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1000", "{out}");
    assert_eq!(lines[1], "1001", "{out}");
    let mut groups: Vec<&str> = lines[2].split_whitespace().collect();
    groups.sort();
    assert!(groups.contains(&"10") && groups.contains(&"2000"), "{out}");
    let status = lines[3..].join("\n");
    let uids: Vec<&str> = status_field(&status, "Uid")
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(uids, vec!["1000"; 4], "{status}");
    let gids: Vec<&str> = status_field(&status, "Gid")
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(gids, vec!["1001"; 4], "{status}");
    let mut sup: Vec<&str> = status_field(&status, "Groups")
        .unwrap()
        .split_whitespace()
        .collect();
    sup.sort();
    assert_eq!(sup, vec!["10", "2000"], "{status}");
}

#[test]
fn root_user_has_no_stray_groups() {
    let t = test_env!();
    let out = t.sh("grep -E '^(Uid|Gid|Groups):' /proc/self/status", |_| {});
    assert_eq!(status_field(&out, "Groups"), Some(""), "{out}");
    assert_eq!(
        status_field(&out, "Uid").map(|s| s.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["0"; 4])
    );
}

#[test]
fn umask() {
    let t = test_env!();
    let out = t.sh("umask; touch /out/umasked", |cfg| {
        cfg["process"]["user"]["umask"] = json!(0o077);
    });
    assert_eq!(out.trim(), "0077");
    let mode = fs::metadata(t.out.join("umasked"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
}

#[test]
fn rlimits() {
    let t = test_env!();
    let out = t.sh("ulimit -n; cat /proc/self/limits", |cfg| {
        cfg["process"]["rlimits"] = json!([
            {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 2048},
            {"type": "RLIMIT_CORE", "soft": 0, "hard": u64::MAX},
            {"type": "RLIMIT_MSGQUEUE", "soft": 4096, "hard": 8192}
        ]);
    });
    assert_eq!(out.lines().next(), Some("512"), "{out}");
    let limit = |name: &str| -> Vec<String> {
        let l = out
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} not in {out}"));
        l[name.len()..]
            .split_whitespace()
            .take(2)
            .map(String::from)
            .collect()
    };
    assert_eq!(limit("Max open files"), vec!["512", "2048"]);
    assert_eq!(limit("Max core file size"), vec!["0", "unlimited"]);
    assert_eq!(limit("Max msgqueue size"), vec!["4096", "8192"]);
}

#[test]
fn oom_score_adj() {
    let t = test_env!();
    let out = t.sh("cat /proc/self/oom_score_adj", |cfg| {
        cfg["process"]["oomScoreAdj"] = json!(500);
    });
    assert_eq!(out.trim(), "500");
    let out = t.sh("cat /proc/self/oom_score_adj", |cfg| {
        cfg["process"]["oomScoreAdj"] = json!(300);
    });
    // (Negative values need CAP_SYS_RESOURCE, which the test host may lack.)
    assert_eq!(out.trim(), "300");
}

#[test]
fn no_new_privileges() {
    let t = test_env!();
    let out = t.sh("grep NoNewPrivs /proc/self/status", |cfg| {
        cfg["process"]["noNewPrivileges"] = json!(true);
    });
    assert_eq!(status_field(&out, "NoNewPrivs"), Some("1"), "{out}");
    let out = t.sh("grep NoNewPrivs /proc/self/status", |cfg| {
        cfg["process"]["noNewPrivileges"] = json!(false);
    });
    assert_eq!(status_field(&out, "NoNewPrivs"), Some("0"), "{out}");
}

#[test]
fn sysctl() {
    let t = test_env!();
    let host_forward = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let host_rmid = fs::read_to_string("/proc/sys/kernel/shm_rmid_forced").unwrap();
    let want_forward = if host_forward.trim() == "1" { "0" } else { "1" };
    let want_rmid = if host_rmid.trim() == "1" { "0" } else { "1" };
    let out = t.sh(
        "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shm_rmid_forced",
        |cfg| {
            cfg["linux"]["sysctl"] = json!({
                "net.ipv4.ip_forward": want_forward,
                "kernel.shm_rmid_forced": want_rmid
            });
        },
    );
    assert_eq!(out, format!("{want_forward}\n{want_rmid}\n"));
    assert_eq!(
        fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_forward,
        "sysctl leaked to the host"
    );
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/shm_rmid_forced").unwrap(),
        host_rmid
    );
}

fn caps_of(out: &str) -> (u64, u64, u64, u64, u64) {
    let f = |k: &str| parse_mask(status_field(out, k).unwrap_or_else(|| panic!("{k}: {out}")));
    (
        f("CapInh"),
        f("CapPrm"),
        f("CapEff"),
        f("CapBnd"),
        f("CapAmb"),
    )
}

#[test]
fn default_capabilities() {
    let t = test_env!();
    let out = t.sh("grep ^Cap /proc/self/status", |_| {});
    let want = cap_mask(&DEFAULT_CAPS);
    assert_eq!(want, 0x2000_0420);
    let (inh, prm, eff, bnd, amb) = caps_of(&out);
    assert_eq!(eff, want, "CapEff {out}");
    assert_eq!(prm, want, "CapPrm {out}");
    assert_eq!(bnd, want, "CapBnd {out}");
    assert_eq!(inh, 0, "CapInh {out}");
    assert_eq!(amb, 0, "CapAmb {out}");
}

#[test]
fn capability_sets_are_applied() {
    let t = test_env!();
    let bounding = ["CAP_CHOWN", "CAP_KILL", "CAP_SYS_ADMIN", "CAP_NET_RAW"];
    let effective = ["CAP_CHOWN", "CAP_KILL"];
    let out = t.sh("grep ^Cap /proc/self/status", |cfg| {
        cfg["process"]["capabilities"] = json!({
            "bounding": bounding,
            "permitted": effective,
            "effective": effective
        });
    });
    let (_, prm, eff, bnd, _) = caps_of(&out);
    assert_eq!(bnd, cap_mask(&bounding), "{out}");
    assert_eq!(prm, cap_mask(&effective), "{out}");
    assert_eq!(eff, cap_mask(&effective), "{out}");
}

#[test]
fn capabilities_are_enforced() {
    let t = test_env!();
    let script = "touch /out/f && chown 1234 /out/f && echo CHOWNED";
    let out = t.sh(&format!("{script}; true"), |cfg| {
        common::set_caps(cfg, &["CAP_KILL"]);
    });
    assert!(!out.contains("CHOWNED"), "chown without CAP_CHOWN: {out}");
    assert_ne!(fs::metadata(t.out.join("f")).unwrap().uid(), 1234);

    let out = t.sh(script, |cfg| {
        common::set_caps(cfg, &["CAP_CHOWN"]);
    });
    assert!(out.contains("CHOWNED"), "{out}");
    assert_eq!(fs::metadata(t.out.join("f")).unwrap().uid(), 1234);
}

#[test]
fn ambient_capabilities_for_non_root_user() {
    let t = test_env!();
    let caps = ["CAP_NET_BIND_SERVICE", "CAP_KILL"];
    let out = t.sh("id -u; grep ^Cap /proc/self/status", |cfg| {
        cfg["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        cfg["process"]["capabilities"] = json!({
            "bounding": caps, "effective": caps, "permitted": caps,
            "inheritable": caps, "ambient": caps
        });
    });
    assert_eq!(out.lines().next(), Some("1000"));
    let (inh, prm, eff, bnd, amb) = caps_of(&out);
    let want = cap_mask(&caps);
    assert_eq!(amb, want, "CapAmb {out}");
    assert_eq!(inh, want, "CapInh {out}");
    assert_eq!(eff, want, "CapEff {out}");
    assert_eq!(prm, want, "CapPrm {out}");
    assert_eq!(bnd, want, "CapBnd {out}");
}

#[test]
fn non_root_user_without_ambient_has_no_effective_caps() {
    let t = test_env!();
    let out = t.sh("grep ^Cap /proc/self/status", |cfg| {
        cfg["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    });
    let (_, prm, eff, bnd, amb) = caps_of(&out);
    assert_eq!(bnd, cap_mask(&DEFAULT_CAPS), "{out}");
    assert_eq!(amb, 0, "{out}");
    // execve as a non-root user without ambient or file capabilities clears
    // the permitted and effective sets.
    assert_eq!(eff, 0, "{out}");
    assert_eq!(prm, 0, "{out}");
}

// ---------------------------------------------------------------------------
// exec
// ---------------------------------------------------------------------------

#[test]
fn exec_runs_in_the_container() {
    let t = test_env!();
    let (id, pid) = t.started(&["sleep", "1000"], |cfg| {
        cfg["hostname"] = json!("exec-host");
    });
    let o = t.exec(&id, &["hostname"]).ok("exec hostname");
    assert_eq!(o.stdout, "exec-host\n");
    let o = t.exec(&id, &["cat", "/etc/hostname"]).ok("exec cat");
    assert_eq!(o.stdout, "kapsel-rootfs\n");
    let o = t
        .exec(&id, &["sh", "-c", "echo $$; cat /proc/1/cmdline | tr '\\0' ' '; echo; for n in pid mnt net; do readlink /proc/self/ns/$n; done"])
        .ok("exec sh");
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_ne!(lines[0], "1", "{}", o.stdout);
    assert_eq!(lines[1].trim(), "sleep 1000", "{}", o.stdout);
    for (i, kind) in ["pid", "mnt", "net"].iter().enumerate() {
        let init_ns = fs::read_link(format!("/proc/{pid}/ns/{kind}")).unwrap();
        assert_eq!(
            lines[2 + i],
            init_ns.to_string_lossy(),
            "exec not in the container's {kind} namespace"
        );
    }
    // It inherits the container's capabilities and NoNewPrivs.
    let o = t
        .exec(
            &id,
            &[
                "grep",
                "-E",
                "^(CapEff|CapBnd|NoNewPrivs)",
                "/proc/self/status",
            ],
        )
        .ok("exec grep");
    assert_eq!(
        parse_mask(status_field(&o.stdout, "CapEff").unwrap()),
        cap_mask(&DEFAULT_CAPS),
        "{}",
        o.stdout
    );
    assert_eq!(
        parse_mask(status_field(&o.stdout, "CapBnd").unwrap()),
        cap_mask(&DEFAULT_CAPS)
    );
    assert_eq!(status_field(&o.stdout, "NoNewPrivs"), Some("1"));
}

#[test]
fn exec_returns_exit_code() {
    let t = test_env!();
    let (id, _) = t.started(&["sleep", "1000"], |_| {});
    let o = t.exec(&id, &["sh", "-c", "echo out; echo err >&2; exit 5"]);
    assert_eq!(o.status, 5, "{}", o.all());
    assert_eq!(o.stdout, "out\n");
    assert!(o.stderr.contains("err"), "{}", o.all());
    assert_eq!(t.exec(&id, &["true"]).status, 0);
    // The container is unaffected.
    assert_eq!(t.status(&id), "running");
}

#[test]
fn exec_env_cwd_user() {
    let t = test_env!();
    let (id, _) = t.started(&["sleep", "1000"], |_| {});
    let o = t
        .exec_with(
            &id,
            &[
                "--env",
                "FOO=from-exec",
                "--cwd",
                "/tmp",
                "--user",
                "1000:1001",
            ],
            &["sh", "-c", "echo $FOO; pwd; id -u; id -g; echo $PATH"],
        )
        .ok("exec");
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines[0], "from-exec");
    assert_eq!(lines[1], "/tmp");
    assert_eq!(lines[2], "1000");
    assert_eq!(lines[3], "1001");
    // The config's env is inherited.
    assert!(lines[4].contains("/bin"), "{}", o.stdout);
}

#[test]
fn exec_with_process_json() {
    let t = test_env!();
    let (id, _) = t.started(&["sleep", "1000"], |_| {});
    let p = json!({
        "terminal": false,
        "user": {"uid": 1000, "gid": 1000, "additionalGids": [3000]},
        "args": ["sh", "-c", "echo $KT_VAR; pwd; id -u; id -G; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status"],
        "env": ["PATH=/bin:/usr/bin", "KT_VAR=process-json"],
        "cwd": "/dev",
        "capabilities": {
            "bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"],
            "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]
        },
        "noNewPrivileges": true
    });
    let pf = t.dir.join("process.json");
    fs::write(&pf, p.to_string()).unwrap();
    let o = t
        .exec_with(&id, &["--process", &pf.to_string_lossy()], &[])
        .ok("exec --process");
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines[0], "process-json", "{}", o.stdout);
    assert_eq!(lines[1], "/dev");
    assert_eq!(lines[2], "1000");
    assert!(
        lines[3].split_whitespace().any(|g| g == "3000"),
        "{}",
        o.stdout
    );
    assert_eq!(
        parse_mask(status_field(&o.stdout, "CapEff").unwrap()),
        cap_mask(&["CAP_KILL"])
    );
    assert_eq!(status_field(&o.stdout, "NoNewPrivs"), Some("1"));
}

#[test]
fn exec_detach_with_pid_file() {
    let t = test_env!();
    let (id, init) = t.started(&["sleep", "1000"], |_| {});
    let pf = t.dir.join("exec.pid");
    t.rt_detached(
        "exec-detach",
        &[
            "exec",
            "--detach",
            "--pid-file",
            &pf.to_string_lossy(),
            &id,
            "sleep",
            "999",
        ],
    )
    .ok("exec --detach");
    let pid: i64 = fs::read_to_string(&pf)
        .expect("pid file")
        .trim()
        .parse()
        .expect("number in pid file");
    assert!(pid_alive(pid), "detached exec process {pid} not running");
    assert_ne!(pid, init);
    let cmd = fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert_eq!(cmd, "sleep\0999\0");
    for kind in ["pid", "mnt"] {
        assert_eq!(
            fs::read_link(format!("/proc/{pid}/ns/{kind}")).unwrap(),
            fs::read_link(format!("/proc/{init}/ns/{kind}")).unwrap(),
            "{kind} namespace"
        );
    }
    let cg = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        cg.contains(&common::Test::cgroups_path(&id)),
        "exec process not in the container cgroup: {cg}"
    );
    // ps lists it.
    let o = t.rt(&["ps", "--format", "json", &id]).ok("ps");
    assert!(o.stdout.contains(&pid.to_string()), "{}", o.stdout);
    // Killing the container takes it down too.
    t.rt(&["kill", &id, "KILL"]).ok("kill");
    assert!(wait_until(Duration::from_secs(10), || !pid_alive(pid)));
}

#[test]
fn exec_into_stopped_container_fails() {
    let t = test_env!();
    let (id, _) = t.started(&["true"], |_| {});
    t.wait_status(&id, "stopped");
    let o = t.exec(&id, &["true"]);
    assert_ne!(o.status, 0, "{}", o.all());
    assert!(!o.stderr.trim().is_empty());
}

#[test]
fn exec_into_missing_container_fails() {
    let t = test_env!();
    let o = t.exec("kt-no-such-container", &["true"]);
    assert_ne!(o.status, 0, "{}", o.all());
}
