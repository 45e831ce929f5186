//! Parity with runc: the same bundle runs under the reference runtime
//! (/usr/sbin/runc, or KAPSEL_REFERENCE_RUNTIME) and under the runtime under
//! test, and what the container observes is compared: capability sets and
//! NoNewPrivs, the mount table (fstype, options; ids and device numbers
//! normalised away), /dev, rlimits, hostname, ids, env, umask and cwd.
//!
//! Skipped (with a message) when the runtime under test *is* the reference
//! binary. To check the comparison itself, point KAPSEL_TEST_RUNTIME at a copy
//! of runc under another path: every test must then pass.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use common::{parse_mountinfo, reference_runtime, run_cmd, runtime, Test, RT_TIMEOUT};
use serde_json::{json, Value};

fn skip() -> bool {
    let canon = |p: PathBuf| fs::canonicalize(&p).unwrap_or(p);
    if canon(runtime()) == canon(reference_runtime()) {
        eprintln!(
            "SKIP: the runtime under test is the reference runtime {}; nothing to compare",
            reference_runtime().display()
        );
        return true;
    }
    if !reference_runtime().exists() {
        eprintln!(
            "SKIP: no reference runtime at {}",
            reference_runtime().display()
        );
        return true;
    }
    false
}

const PROBE: &str = r#"
echo '## status'; grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp|Uid|Gid|Groups):' /proc/self/status
echo '## mountinfo'; cat /proc/self/mountinfo
echo '## dev'; find /dev -exec stat -c '%n|%F|%a|%t:%T|%u:%g' {} + ; for l in $(find /dev -type l); do echo "$l -> $(readlink $l)"; done
echo '## limits'; cat /proc/self/limits
echo '## hostname'; hostname; cat /proc/sys/kernel/domainname
echo '## id'; id
echo '## env'; env | sort
echo '## misc'; umask; pwd; cat /proc/self/oom_score_adj; readlink /proc/1/exe
echo '## end'
"#;

/// Runs the probe under `bin` with a config made by `mutate`; returns the
/// output split into sections.
fn probe(
    t: &Test,
    bin: PathBuf,
    tag: &str,
    mutate: &dyn Fn(&mut Value),
) -> BTreeMap<String, Vec<String>> {
    let root = t.dir.join(format!("state-{tag}"));
    fs::create_dir_all(&root).unwrap();
    let id = t.id();
    let mut cfg = t.spec(&id, &["sh", "-c", PROBE]);
    mutate(&mut cfg);
    let b = t.write_bundle(&id, &cfg);
    {
        let (bin, root, id) = (bin.clone(), root.clone(), id.clone());
        t.on_cleanup(move || {
            let _ = common::try_run_cmd(
                std::process::Command::new(&bin)
                    .arg("--root")
                    .arg(&root)
                    .args(["delete", "--force", &id]),
                RT_TIMEOUT,
            );
        });
    }
    let o = run_cmd(
        std::process::Command::new(&bin)
            .arg("--root")
            .arg(&root)
            .args(["run", "--bundle", &b.to_string_lossy(), &id]),
        RT_TIMEOUT,
    );
    assert!(
        o.success() && o.stdout.contains("## end"),
        "probe under {} failed: {}",
        bin.display(),
        o.all()
    );
    let cg = Test::cgroups_path(&id);
    let mut sections = BTreeMap::new();
    let mut cur = String::new();
    for line in o.stdout.lines() {
        if let Some(name) = line.strip_prefix("## ") {
            cur = name.to_string();
            sections.insert(cur.clone(), Vec::new());
        } else {
            // The cgroupsPath (and so the id) differs between the runs.
            let line = line.replace(&cg, "<CGROUP>").replace(&id, "<ID>");
            sections.get_mut(&cur).unwrap().push(line);
        }
    }
    sections
}

/// The mount table without mount ids, device numbers and peer group ids, as a
/// sorted list of "mountpoint fstype source root opts | superopts [prop]".
///
/// Two differences from runc 1.1 are deliberate and normalised away: kapsel makes the
/// tmpfs at /sys/fs/cgroup read-only (as Docker does; runc leaves it writable) and, on a
/// hybrid host, also shows the container's cgroup in the unified hierarchy.
fn normalise_mounts(lines: &[String]) -> Vec<String> {
    let mut v: Vec<String> = parse_mountinfo(&lines.join("\n"))
        .into_iter()
        .filter(|m| m.mount_point != "/sys/fs/cgroup/unified")
        .map(|m| {
            let mut mo = m.mount_opts.clone();
            if m.mount_point == "/sys/fs/cgroup" && m.fstype == "tmpfs" {
                mo.retain(|o| o != "ro" && o != "rw");
            }
            mo.sort();
            let mut so = m.super_opts.clone();
            so.sort();
            let prop: Vec<&str> = m
                .optional
                .iter()
                .map(|o| o.split(':').next().unwrap_or(""))
                .collect();
            format!(
                "{} {} {} {} {} | {} [{}]",
                m.mount_point,
                m.fstype,
                m.source,
                m.root,
                mo.join(","),
                so.join(","),
                prop.join(",")
            )
        })
        .collect();
    v.sort();
    v
}

/// In a user namespace runc mounts /dev/mqueue with the host's (unmapped, so 65534) gid;
/// kapsel mounts it as the container's root group. Deliberate: the container's root owns
/// its own mqueue.
fn unmapped_mqueue_gid(line: &str) -> String {
    match line.strip_suffix("|0:65534") {
        Some(head) if line.starts_with("/dev/mqueue|") => format!("{head}|0:0"),
        _ => line.to_string(),
    }
}

fn diff(a: &[String], b: &[String]) -> String {
    let mut s = String::new();
    for l in a.iter().filter(|l| !b.contains(l)) {
        s.push_str(&format!("  reference only: {l}\n"));
    }
    for l in b.iter().filter(|l| !a.contains(l)) {
        s.push_str(&format!("  under test only: {l}\n"));
    }
    if s.is_empty() {
        s.push_str("  (same lines, different order)\n");
    }
    s
}

/// Runs the probe under both runtimes and compares every section.
fn compare(t: &Test, mutate: &dyn Fn(&mut Value)) {
    let reference = probe(t, reference_runtime(), "ref", mutate);
    let tested = probe(t, runtime(), "test", mutate);
    let mut failures = String::new();
    for (name, ref_lines) in &reference {
        let got = tested.get(name).cloned().unwrap_or_default();
        let (a, b) = match name.as_str() {
            "mountinfo" => (normalise_mounts(ref_lines), normalise_mounts(&got)),
            "dev" | "env" => {
                let mut a: Vec<String> = ref_lines.iter().map(|l| unmapped_mqueue_gid(l)).collect();
                let mut b = got.clone();
                a.sort();
                b.sort();
                (a, b)
            }
            _ => (ref_lines.clone(), got),
        };
        if a != b {
            failures.push_str(&format!("section {name} differs:\n{}", diff(&a, &b)));
        }
    }
    assert!(
        failures.is_empty(),
        "the container sees something else under {} than under {}:\n{failures}",
        runtime().display(),
        reference_runtime().display()
    );
}

#[test]
fn parity_default_config() {
    if skip() {
        return;
    }
    let t = test_env!();
    compare(&t, &|_| {});
}

#[test]
fn parity_non_root_user() {
    if skip() {
        return;
    }
    let t = test_env!();
    compare(&t, &|cfg| {
        let caps = ["CAP_NET_BIND_SERVICE", "CAP_KILL"];
        cfg["process"]["user"] =
            json!({"uid": 1000, "gid": 1000, "additionalGids": [10, 20], "umask": 0o027});
        cfg["process"]["capabilities"] = json!({
            "bounding": caps, "effective": caps, "permitted": caps,
            "inheritable": caps, "ambient": caps
        });
        cfg["process"]["cwd"] = json!("/tmp");
        cfg["process"]["rlimits"] = json!([
            {"type": "RLIMIT_NOFILE", "soft": 256, "hard": 512},
            {"type": "RLIMIT_NPROC", "soft": 100, "hard": 200}
        ]);
        cfg["process"]["noNewPrivileges"] = json!(false);
        cfg["process"]["oomScoreAdj"] = json!(100);
    });
}

#[test]
fn parity_extra_mounts_and_devices() {
    if skip() {
        return;
    }
    let t = test_env!();
    let src = t.dir.join("bind-src");
    fs::create_dir_all(&src).unwrap();
    compare(&t, &move |cfg| {
        common::add_mount(
            cfg,
            json!({"destination": "/data", "type": "tmpfs", "source": "tmpfs",
                   "options": ["nosuid", "nodev", "noexec", "size=2m", "mode=0700"]}),
        );
        common::add_mount(
            cfg,
            json!({"destination": "/mnt", "type": "bind", "source": src, "options": ["rbind", "ro", "nosuid"]}),
        );
        cfg["linux"]["devices"] = json!([
            {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666, "uid": 0, "gid": 0}
        ]);
        cfg["hostname"] = json!("parity-host");
    });
}

#[test]
fn parity_privileged_like() {
    if skip() {
        return;
    }
    let t = test_env!();
    compare(&t, &|cfg| {
        // Everything the host can give (its bounding set may lack some).
        let all = common::host_bounding_caps();
        cfg["process"]["capabilities"] = json!({
            "bounding": all, "effective": all, "permitted": all
        });
        cfg["linux"]["maskedPaths"] = json!([]);
        cfg["linux"]["readonlyPaths"] = json!([]);
        common::remove_namespace(cfg, "network");
    });
}

#[test]
fn parity_user_namespace() {
    if skip() {
        return;
    }
    let t = test_env!();
    compare(&t, &|cfg| {
        common::set_namespace(cfg, "user", None);
        cfg["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        cfg["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    });
}
