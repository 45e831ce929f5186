//! `--no-pivot`: the root filesystem is moved over `/` and chrooted into
//! instead of pivot_root(2) (runc supports this for ramdisk roots). The
//! container must see the same root as with pivot_root.

mod common;

use std::fs;
use std::path::Path;

use common::{parse_mountinfo, shared_rootfs, MountInfo};

/// What the container prints: its mountinfo, its `/` and what `/..` is.
const PROBE: &str = "cat /proc/self/mountinfo; echo ---; ls -a /; echo ---; \
                     cd /..; pwd; ls -a; echo ---; cat /etc/hostname; readlink /proc/1/root";

/// The `root` field the container's `/` mount must have: the rootfs
/// directory's path inside the filesystem (mount) that holds it on the host.
fn expected_root_field(rootfs: &Path) -> String {
    let rootfs = fs::canonicalize(rootfs).unwrap();
    let rootfs = rootfs.to_string_lossy();
    let mi = parse_mountinfo(&fs::read_to_string("/proc/self/mountinfo").unwrap());
    let m = mi
        .iter()
        .filter(|m| {
            m.mount_point == "/"
                || rootfs == m.mount_point
                || rootfs.starts_with(&format!("{}/", m.mount_point))
        })
        .max_by_key(|m| m.mount_point.len())
        .unwrap();
    let rel = rootfs
        .strip_prefix(m.mount_point.trim_end_matches('/'))
        .unwrap();
    format!("{}{}", m.root.trim_end_matches('/'), rel)
}

fn sorted_names(it: impl Iterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = it.filter(|n| n != "." && n != "..").collect();
    v.sort();
    v
}

/// Checks the probe's output.
#[track_caller]
fn check_probe(out: &str, how: &str) {
    let parts: Vec<&str> = out.split("---\n").collect();
    assert_eq!(parts.len(), 4, "{how}: unexpected output:\n{out}");
    let mounts = parse_mountinfo(parts[0]);
    let roots: Vec<&MountInfo> = mounts.iter().filter(|m| m.mount_point == "/").collect();
    assert_eq!(
        roots.len(),
        1,
        "{how}: want exactly one mount at / in the container:\n{}",
        parts[0]
    );
    let root = roots[0];
    assert_eq!(
        root.root,
        expected_root_field(&shared_rootfs()),
        "{how}: the / mount is not the rootfs: {root:?}"
    );
    assert!(root.has_opt("ro"), "{how}: root.readonly ignored: {root:?}");
    // No host mount is visible (only / and what the config mounts below).
    for m in &mounts {
        let ok = m.mount_point == "/"
            || ["/proc", "/dev", "/sys", "/out"]
                .iter()
                .any(|p| m.mount_point == *p || m.mount_point.starts_with(&format!("{p}/")));
        assert!(ok, "{how}: unexpected mount in the container: {m:?}");
    }

    let want = sorted_names(
        fs::read_dir(shared_rootfs())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned()),
    );
    let slash = sorted_names(parts[1].lines().map(String::from));
    assert_eq!(slash, want, "{how}: `ls /` is not the rootfs");
    let mut up = parts[2].lines();
    assert_eq!(up.next(), Some("/"), "{how}: cd /.. did not stay at /");
    let dotdot = sorted_names(up.map(String::from));
    assert_eq!(dotdot, want, "{how}: /.. is not /");
    let mut last = parts[3].lines();
    assert_eq!(last.next(), Some("kapsel-rootfs"), "{how}: /etc/hostname");
    assert_eq!(last.next(), Some("/"), "{how}: /proc/1/root");
}

#[test]
fn run_no_pivot() {
    let t = test_env!();
    let id = t.id();
    let cfg = t.spec(&id, &["sh", "-c", PROBE]);
    let b = t.write_bundle(&id, &cfg);
    let o = t
        .rt(&["run", "--no-pivot", "--bundle", &b.to_string_lossy(), &id])
        .ok("run --no-pivot");
    check_probe(&o.stdout, "run --no-pivot");
    t.assert_gone(&id);
}

#[test]
fn create_no_pivot() {
    let t = test_env!();
    let id = t.id();
    let cfg = t.spec(&id, &["sh", "-c", PROBE]);
    t.create_with(&id, &cfg, &["--no-pivot"])
        .ok("create --no-pivot");
    t.rt(&["start", &id]).ok("start");
    t.wait_status(&id, "stopped");
    check_probe(&t.container_stdout(&id), "create --no-pivot");
    // exec sees the same root.
    let id = t.id();
    let cfg = t.spec(&id, &["sleep", "1000"]);
    t.create_with(&id, &cfg, &["--no-pivot"])
        .ok("create --no-pivot");
    t.rt(&["start", &id]).ok("start");
    let o = t.exec(&id, &["sh", "-c", PROBE]).ok("exec");
    check_probe(&o.stdout, "exec into a --no-pivot container");
    t.rt(&["delete", "--force", &id]).ok("delete --force");
    t.assert_gone(&id);
}

/// The same probe with pivot_root, so that a difference between the two
/// modes shows up here rather than as a puzzle in the tests above.
#[test]
fn pivot_root_baseline() {
    let t = test_env!();
    let out = t.sh(PROBE, |_| {});
    check_probe(&out, "pivot_root");
}
