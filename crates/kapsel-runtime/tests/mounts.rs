//! Mounts: the default mounts, read-only root, bind mounts, tmpfs options,
//! mount flags, creation of missing mount points, rootfs propagation, /dev
//! contents, linux.devices, masked and read-only paths.

mod common;

use std::fs;

use common::{add_mount, find_mount, parse_mountinfo, remove_mount, MountInfo, Test};
use serde_json::{json, Value};

/// Mountinfo as seen by a container made with `mutate`.
fn container_mounts(t: &Test, mutate: impl FnOnce(&mut Value)) -> Vec<MountInfo> {
    let out = t.run_ok(&["cat", "/proc/self/mountinfo"], mutate).stdout;
    parse_mountinfo(&out)
}

#[test]
fn default_mounts_are_visible() {
    let t = test_env!();
    let m = container_mounts(&t, |_| {});

    let root = find_mount(&m, "/");
    assert!(root.has_opt("ro"), "root should be read-only: {root:?}");

    let proc_ = find_mount(&m, "/proc");
    assert_eq!(proc_.fstype, "proc");

    let sys = find_mount(&m, "/sys");
    assert_eq!(sys.fstype, "sysfs");
    for o in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(sys.has_opt(o), "/sys lacks {o}: {sys:?}");
    }

    let dev = find_mount(&m, "/dev");
    assert_eq!(dev.fstype, "tmpfs");
    assert!(dev.has_opt("nosuid"), "{dev:?}");
    assert!(dev.has_super_opt("mode=755"), "{dev:?}");
    assert!(dev.has_super_opt("size=65536k"), "{dev:?}");

    let pts = find_mount(&m, "/dev/pts");
    assert_eq!(pts.fstype, "devpts");
    assert!(pts.has_opt("nosuid") && pts.has_opt("noexec"), "{pts:?}");
    assert!(pts.has_super_opt("gid=5"), "{pts:?}");
    assert!(pts.has_super_opt("mode=620"), "{pts:?}");
    assert!(pts.has_super_opt("ptmxmode=666"), "{pts:?}");

    let shm = find_mount(&m, "/dev/shm");
    assert_eq!(shm.fstype, "tmpfs");
    for o in ["nosuid", "nodev", "noexec"] {
        assert!(shm.has_opt(o), "/dev/shm lacks {o}: {shm:?}");
    }
    assert!(shm.has_super_opt("size=65536k"), "{shm:?}");

    let mq = find_mount(&m, "/dev/mqueue");
    assert_eq!(mq.fstype, "mqueue");
    for o in ["nosuid", "nodev", "noexec"] {
        assert!(mq.has_opt(o), "/dev/mqueue lacks {o}: {mq:?}");
    }

    let out = find_mount(&m, "/out");
    assert!(out.has_opt("rw"), "{out:?}");

    // /sys/fs/cgroup: a cgroup2 mount, or a tmpfs holding the v1 hierarchies.
    let cg: Vec<&MountInfo> = m
        .iter()
        .filter(|x| x.mount_point.starts_with("/sys/fs/cgroup"))
        .collect();
    assert!(!cg.is_empty(), "no /sys/fs/cgroup mount: {m:#?}");
    assert!(
        cg.iter()
            .any(|x| x.fstype == "cgroup" || x.fstype == "cgroup2"),
        "{cg:#?}"
    );
    for x in cg.iter().filter(|x| x.fstype.starts_with("cgroup")) {
        assert!(x.has_opt("ro"), "cgroup mount not read-only: {x:?}");
    }

    // Nothing of the host's own mounts leaks in (e.g. the host's /run).
    let host_mps: Vec<String> =
        parse_mountinfo(&fs::read_to_string("/proc/self/mountinfo").unwrap())
            .into_iter()
            .map(|x| x.mount_point)
            .filter(|p| p.starts_with("/run") || p.starts_with("/boot") || p.starts_with("/work"))
            .collect();
    for p in host_mps {
        assert!(
            !m.iter().any(|x| x.mount_point == p),
            "host mount {p} visible in the container"
        );
    }
}

#[test]
fn readonly_root() {
    let t = test_env!();
    let out = t.sh(
        "touch /x 2>&1 && echo WROTE; touch /tmp/y 2>&1 && echo WROTE-TMP; true",
        |_| {},
    );
    assert!(!out.contains("WROTE"), "{out}");
    assert!(out.to_lowercase().contains("read-only"), "{out}");

    // Control: a writable private rootfs.
    let rootfs = t.private_rootfs("rw");
    let out = t.sh("touch /x && echo WROTE", |cfg| {
        cfg["root"] = json!({"path": rootfs, "readonly": false});
    });
    assert_eq!(out.trim(), "WROTE");
    assert!(rootfs.join("x").exists());
}

#[test]
fn relative_root_path_is_relative_to_bundle() {
    let t = test_env!();
    let id = t.id();
    let b = t.bundle_dir(&id);
    fs::create_dir_all(&b).unwrap();
    let rootfs = t.private_rootfs("rel");
    fs::rename(&rootfs, b.join("rootfs")).unwrap();
    fs::write(b.join("rootfs/etc/kt-marker"), "relative-root\n").unwrap();
    let mut cfg = t.spec(&id, &["cat", "/etc/kt-marker"]);
    cfg["root"] = json!({"path": "rootfs", "readonly": true});
    let o = t.run(&id, &cfg).ok("run");
    assert_eq!(o.stdout.trim(), "relative-root");
}

#[test]
fn bind_mounts_rw_and_ro() {
    let t = test_env!();
    let rw = t.dir.join("rw-src");
    let ro = t.dir.join("ro-src");
    fs::create_dir_all(&rw).unwrap();
    fs::create_dir_all(&ro).unwrap();
    fs::write(ro.join("hostfile"), "from-host\n").unwrap();
    let script = "echo from-container > /mnt/rw/new; cat /mnt/ro/hostfile; \
                  echo x > /mnt/ro/new 2>/dev/null && echo RO-WRITABLE; \
                  grep -E ' /mnt/(rw|ro) ' /proc/self/mountinfo";
    let out = t.sh(script, |cfg| {
        add_mount(
            cfg,
            json!({"destination": "/mnt/rw", "type": "bind", "source": rw, "options": ["bind", "rw"]}),
        );
        add_mount(
            cfg,
            json!({"destination": "/mnt/ro", "type": "bind", "source": ro, "options": ["bind", "ro"]}),
        );
    });
    assert_eq!(
        fs::read_to_string(rw.join("new")).unwrap(),
        "from-container\n"
    );
    assert!(out.starts_with("from-host\n"), "{out}");
    assert!(!out.contains("RO-WRITABLE"), "{out}");
    assert!(!ro.join("new").exists());
    let m = parse_mountinfo(&out);
    assert!(find_mount(&m, "/mnt/ro").has_opt("ro"));
    assert!(find_mount(&m, "/mnt/rw").has_opt("rw"));
}

#[test]
fn bind_mount_of_a_file() {
    let t = test_env!();
    let rootfs = t.private_rootfs("file");
    let src = t.dir.join("hosts-src");
    fs::write(&src, "127.0.0.1 kt-bound-file\n").unwrap();
    let out = t.sh("cat /etc/kt-bound; test -f /etc/kt-bound && echo IS-FILE", |cfg| {
        cfg["root"]["path"] = json!(rootfs);
        add_mount(
            cfg,
            json!({"destination": "/etc/kt-bound", "type": "bind", "source": src, "options": ["rbind", "ro"]}),
        );
    });
    assert_eq!(out, "127.0.0.1 kt-bound-file\nIS-FILE\n");
}

#[test]
fn tmpfs_size_and_mode() {
    let t = test_env!();
    // A mount point that does not exist yet: runc 1.1 copies the mode of an
    // existing mount point directory over the tmpfs "mode=" option.
    let rootfs = t.private_rootfs("tmpfs");
    let script = "stat -c %a /data/tmpfs; \
                  dd if=/dev/zero of=/data/tmpfs/big bs=1k count=2048 2>/dev/null && echo FITS; \
                  grep ' /data/tmpfs ' /proc/self/mountinfo";
    let out = t.sh(script, |cfg| {
        cfg["root"]["path"] = json!(rootfs);
        add_mount(
            cfg,
            json!({"destination": "/data/tmpfs", "type": "tmpfs", "source": "tmpfs",
                   "options": ["size=1m", "mode=0710"]}),
        );
    });
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("710"), "{out}");
    assert!(
        !out.contains("FITS"),
        "2 MiB fitted in a 1 MiB tmpfs: {out}"
    );
    let m = parse_mountinfo(&out);
    let d = find_mount(&m, "/data/tmpfs");
    assert_eq!(d.fstype, "tmpfs");
    assert!(d.has_super_opt("size=1024k"), "{d:?}");
    assert!(d.has_super_opt("mode=710"), "{d:?}");
}

#[test]
fn mount_flags_nosuid_nodev_noexec() {
    let t = test_env!();
    // busybox picks the applet from argv[0], so the copy is named "true".
    let script = "cp /bin/busybox /data/true && /data/true 2>/dev/null && echo EXECUTED; \
                  grep ' /data ' /proc/self/mountinfo";
    let out = t.sh(script, |cfg| {
        add_mount(
            cfg,
            json!({"destination": "/data", "type": "tmpfs", "source": "tmpfs",
                   "options": ["nosuid", "nodev", "noexec", "size=8m"]}),
        );
    });
    assert!(!out.contains("EXECUTED"), "noexec not enforced: {out}");
    let d = find_mount(&parse_mountinfo(&out), "/data").clone();
    for o in ["nosuid", "nodev", "noexec"] {
        assert!(d.has_opt(o), "lacks {o}: {d:?}");
    }

    // Control: the same without noexec executes.
    let out = t.sh(script, |cfg| {
        add_mount(
            cfg,
            json!({"destination": "/data", "type": "tmpfs", "source": "tmpfs",
                   "options": ["nosuid", "size=8m"]}),
        );
    });
    assert!(out.contains("EXECUTED"), "{out}");
    let d = find_mount(&parse_mountinfo(&out), "/data").clone();
    assert!(
        d.has_opt("nosuid") && !d.has_opt("noexec") && !d.has_opt("nodev"),
        "{d:?}"
    );
}

#[test]
fn missing_mount_point_is_created() {
    let t = test_env!();
    let rootfs = t.private_rootfs("mkdir");
    assert!(!rootfs.join("data/new").exists());
    let src = t.dir.join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), "bound\n").unwrap();
    let out = t.sh(
        "test -d /data/new/dir && echo DIR; cat /srv/deep/bind/f; grep -c ' /data/new/dir ' /proc/self/mountinfo",
        |cfg| {
            cfg["root"]["path"] = json!(rootfs);
            add_mount(
                cfg,
                json!({"destination": "/data/new/dir", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}),
            );
            add_mount(
                cfg,
                json!({"destination": "/srv/deep/bind", "type": "bind", "source": src, "options": ["rbind", "ro"]}),
            );
        },
    );
    assert_eq!(out, "DIR\nbound\n1\n");
}

/// runc 1.1.5 makes the parent of the rootfs private before bind-mounting the
/// rootfs and never re-applies rootfsPropagation after pivot_root (runc 1.2
/// does), so "shared" is not visible under runc 1.1 when the rootfs sits on
/// a private host mount: that half is skipped when the runtime is runc.
#[test]
fn rootfs_propagation() {
    let t = test_env!();
    let shared = container_mounts(&t, |cfg| {
        cfg["linux"]["rootfsPropagation"] = json!("shared");
    });
    let root = find_mount(&shared, "/");
    if !root.optional.iter().any(|o| o.starts_with("shared:"))
        && common::skip_if_runc("runc 1.1 does not apply rootfsPropagation=shared to /")
    {
        // still check the private half below
    } else {
        assert!(
            root.optional.iter().any(|o| o.starts_with("shared:")),
            "rootfsPropagation shared: {root:?}"
        );
    }

    let private = container_mounts(&t, |cfg| {
        cfg["linux"]["rootfsPropagation"] = json!("private");
    });
    let root = find_mount(&private, "/");
    assert!(
        !root
            .optional
            .iter()
            .any(|o| o.starts_with("shared:") || o.starts_with("master:")),
        "rootfsPropagation private: {root:?}"
    );
}

#[test]
fn dev_contents() {
    let t = test_env!();
    let script = "for f in null zero full random urandom tty; do echo \"$f $(stat -c '%F %t:%T %a' /dev/$f)\"; done; \
                  for f in fd stdin stdout stderr ptmx; do echo \"$f $(readlink /dev/$f)\"; done; \
                  test -d /dev/pts && echo pts-dir; test -d /dev/shm && echo shm-dir; \
                  test -c /dev/pts/ptmx && echo pts-ptmx; \
                  echo hi > /dev/null && echo null-writable; head -c 4 /dev/zero | wc -c; \
                  head -c 8 /dev/urandom | wc -c";
    let out = t.sh(script, |_| {});
    let devs = [
        ("null", "1:3"),
        ("zero", "1:5"),
        ("full", "1:7"),
        ("random", "1:8"),
        ("urandom", "1:9"),
        ("tty", "5:0"),
    ];
    for (name, majmin) in devs {
        let line = format!("{name} character special file {majmin} 666");
        assert!(out.lines().any(|l| l == line), "want {line:?} in:\n{out}");
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let line = format!("{name} {target}");
        assert!(out.lines().any(|l| l == line), "want {line:?} in:\n{out}");
    }
    // /dev/ptmx must lead to the container's own devpts instance.
    assert!(
        out.lines()
            .any(|l| l == "ptmx pts/ptmx" || l == "ptmx /dev/pts/ptmx"),
        "{out}"
    );
    for want in ["pts-dir", "shm-dir", "pts-ptmx", "null-writable"] {
        assert!(out.lines().any(|l| l == want), "want {want} in:\n{out}");
    }
    assert!(out.contains("\n4\n8\n"), "{out}");
}

#[test]
fn dev_has_no_host_devices() {
    let t = test_env!();
    let out = t.sh("ls /dev", |_| {});
    let names: Vec<&str> = out.lines().collect();
    assert!(
        names.contains(&"null") && names.contains(&"pts"),
        "{names:?}"
    );
    for host_only in ["vda", "mem", "kmsg", "console", "loop0", "tty0"] {
        assert!(
            !names.contains(&host_only),
            "/dev/{host_only} in the container: {names:?}"
        );
    }
}

#[test]
fn linux_devices_are_created() {
    let t = test_env!();
    let script = "stat -c '%n %F %t:%T %a %u:%g' /dev/fuse /dev/kt-null /dev/kt-mem; \
                  echo x > /dev/kt-null && echo kt-null-writable; \
                  head -c 1 /dev/kt-mem >/dev/null 2>&1 || echo kt-mem-denied";
    let out = t.sh(script, |cfg| {
        cfg["linux"]["devices"] = json!([
            {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
             "fileMode": 0o620, "uid": 0, "gid": 5},
            {"path": "/dev/kt-null", "type": "c", "major": 1, "minor": 3,
             "fileMode": 0o666, "uid": 0, "gid": 0},
            {"path": "/dev/kt-mem", "type": "c", "major": 1, "minor": 1,
             "fileMode": 0o600, "uid": 0, "gid": 0}
        ]);
        let rules = cfg["linux"]["resources"]["devices"].as_array_mut().unwrap();
        rules.push(json!({"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rwm"}));
        rules.push(json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}));
    });
    let want = [
        "/dev/fuse character special file a:e5 620 0:5",
        "/dev/kt-null character special file 1:3 666 0:0",
        "/dev/kt-mem character special file 1:1 600 0:0",
        "kt-null-writable",
        // /dev/mem is not allowed by the device cgroup.
        "kt-mem-denied",
    ];
    for w in want {
        assert!(out.lines().any(|l| l == w), "want {w:?} in:\n{out}");
    }
}

#[test]
fn masked_paths() {
    let t = test_env!();
    let script = "wc -c < /proc/timer_list; ls /sys/firmware | wc -l; cat /proc/timer_list > /dev/null && echo readable";
    let host_firmware = fs::read_dir("/sys/firmware")
        .map(|d| d.count())
        .unwrap_or(0);
    let host_timer = fs::read_to_string("/proc/timer_list").unwrap_or_default();
    assert!(
        !host_timer.is_empty() && host_firmware > 0,
        "host lacks the probes"
    );

    let out = t.sh(script, |_| {});
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(lines, vec!["0", "0", "readable"], "{out}");

    // Control: without maskedPaths the same files have content.
    let out = t.sh(script, |cfg| {
        cfg["linux"]["maskedPaths"] = json!([]);
    });
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert_ne!(lines[0], "0", "{out}");
    assert_ne!(lines[1], "0", "{out}");
}

#[test]
fn masked_path_that_does_not_exist_is_ignored() {
    let t = test_env!();
    let out = t.sh("echo ok", |cfg| {
        cfg["linux"]["maskedPaths"]
            .as_array_mut()
            .unwrap()
            .push(json!("/proc/kt-does-not-exist"));
    });
    assert_eq!(out, "ok\n");
}

#[test]
fn readonly_paths() {
    let t = test_env!();
    let script =
        "echo kt-ro-test > /proc/sys/kernel/hostname 2>/dev/null && echo WROTE; hostname; \
                  grep -E ' /proc/(sys|irq|bus|fs|sysrq-trigger) ' /proc/self/mountinfo; true";
    let out = t.sh(script, |_| {});
    assert!(!out.contains("WROTE"), "{out}");
    assert_eq!(out.lines().next(), Some("kapsel"), "{out}");
    let m = parse_mountinfo(&out);
    // Every listed path that exists on this kernel is a read-only mount.
    for p in [
        "/proc/sys",
        "/proc/irq",
        "/proc/bus",
        "/proc/fs",
        "/proc/sysrq-trigger",
    ] {
        if fs::symlink_metadata(p).is_ok() {
            assert!(find_mount(&m, p).has_opt("ro"), "{p}: {out}");
        }
    }

    // Control: without readonlyPaths the write goes through (to the
    // container's own UTS namespace).
    let out = t.sh(script, |cfg| {
        cfg["linux"]["readonlyPaths"] = json!([]);
    });
    assert!(out.contains("WROTE\nkt-ro-test\n"), "{out}");
}

#[test]
fn removed_default_mounts_are_absent() {
    // Removing a default mount really removes it.
    let t = test_env!();
    let m = container_mounts(&t, |cfg| {
        remove_mount(cfg, "/dev/mqueue");
        remove_mount(cfg, "/sys/fs/cgroup");
    });
    assert_eq!(find_mount(&m, "/proc").fstype, "proc");
    assert_eq!(find_mount(&m, "/dev/shm").fstype, "tmpfs");
    assert!(!m.iter().any(|x| x.mount_point == "/dev/mqueue"), "{m:#?}");
    assert!(
        !m.iter()
            .any(|x| x.mount_point.starts_with("/sys/fs/cgroup/")),
        "{m:#?}"
    );
}
