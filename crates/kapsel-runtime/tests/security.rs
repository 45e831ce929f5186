//! Security: one test (or a pair) per container-escape class, run as root against real
//! containers. Each one exercises a protection and fails if it is removed; where the
//! attack is only meaningful if something *else* would let it through, a control run
//! without the protection shows that it would.
//!
//! | class | tests |
//! |---|---|
//! | Docker's default seccomp profile | `seccomp_default_profile_confines_init_and_exec`, `seccomp_default_profile_refuses_keyctl_bpf_personality_userfaultfd` (+ its helper `syscall_probe_helper`) |
//! | capabilities | `capabilities_are_the_configured_set_and_enforced` |
//! | masked and read-only paths | `masked_and_readonly_paths_hide_and_protect` |
//! | CVE-2025-31133 (/dev/null or a masked path swapped for a symlink) | `dev_null_symlink_is_not_used_to_mask_paths`, `masked_path_symlink_is_refused` |
//! | CVE-2025-52565 (/dev/console swapped for a symlink) | `console_symlink_is_not_followed` |
//! | CVE-2024-21626 (cwd through a leaked fd) | `cwd_through_proc_self_fd_is_refused`, `exec_cwd_through_proc_self_fd_is_refused` |
//! | CVE-2019-5736 (runtime binary overwritten through /proc/PID/exe) | `runtime_binary_not_writable_through_proc_exe_of_init`, `runtime_binary_not_writable_through_interpreter_exe` |
//! | no_new_privs and LSM labels | `no_new_privileges_is_applied`, `lsm_labels_are_refused` |
//! | parity with runc (seccomp, NoNewPrivs, capabilities) | `parity_with_runc_docker_default_seccomp_and_caps` |
//!
//! Covered elsewhere and not duplicated here:
//! * a fork bomb stops at `pids.max`, and an allocation past the memory limit is OOM-killed
//!   inside the container only, the runtime and the caller surviving: tests/cgroups.rs
//!   (`pids_limit_is_enforced`, `memory_limit_is_enforced`);
//! * no fd of the runtime or of its caller leaks into the container (only 0, 1, 2 are
//!   open): tests/fds.rs (`caller_fds_do_not_leak_into_run`,
//!   `caller_fds_do_not_leak_into_created_container`, ...).
//!
//! Under runc (`KAPSEL_TEST_RUNTIME=/usr/sbin/runc`) every test runs too. runc 1.1.5 has
//! no protection against the CVE-2025-31133 and CVE-2025-52565 classes and ignores LSM
//! labels it cannot apply: those assertions are skipped for runc (with a message saying
//! what runc did); everything else must pass under runc as well.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{
    add_mount, cap_mask, parse_mask, reference_runtime, remove_mount, run_cmd, runtime,
    runtime_is_runc, set_caps, status_field, wait_until, write_script, ConsoleSocket, Test,
    RT_TIMEOUT,
};
use serde_json::{json, Value};

/// Docker's default capability set (moby oci/caps/defaults.go).
const DOCKER_CAPS: &[&str] = kapsel_seccomp::DOCKER_DEFAULT_CAPABILITIES;

const EPERM_TEXT: &str = "Operation not permitted";
const CORE_PATTERN: &str = "/proc/sys/kernel/core_pattern";
const T: Duration = Duration::from_secs(10);

/// Docker's default seccomp profile converted for `caps`, as config.json's linux.seccomp.
fn docker_seccomp(caps: &[&str]) -> Value {
    let caps: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
    let s = kapsel_seccomp::docker_default(&caps).expect("convert Docker's default profile");
    serde_json::to_value(&s).expect("serialize linux.seccomp")
}

/// What `docker run` gives a container: Docker's capabilities, its seccomp profile, and
/// no_new_privs off (so the runtime must load the filter while it still may).
fn docker_defaults(cfg: &mut Value) {
    set_caps(cfg, DOCKER_CAPS);
    cfg["linux"]["seccomp"] = docker_seccomp(DOCKER_CAPS);
    cfg["process"]["noNewPrivileges"] = json!(false);
}

/// A shell function: `try NAME CMD...` runs CMD and prints `try|NAME|STATUS|OUTPUT` (stdout
/// and stderr of CMD on one line).
const TRY: &str = r#"try() { n=$1; shift; o=$("$@" 2>&1); r=$?; echo "try|$n|$r|$(echo "$o" | tr '\n' ' ')"; }
"#;

#[derive(Debug, Clone)]
struct Tried {
    status: i32,
    out: String,
}

/// The `try|...` lines of `stdout`, by name.
fn tried(stdout: &str) -> BTreeMap<String, Tried> {
    stdout
        .lines()
        .filter_map(|l| {
            let mut f = l.strip_prefix("try|")?.splitn(3, '|');
            let name = f.next()?.to_string();
            let status = f.next()?.parse().ok()?;
            let out = f.next().unwrap_or("").trim().to_string();
            Some((name, Tried { status, out }))
        })
        .collect()
}

#[track_caller]
fn get<'a>(m: &'a BTreeMap<String, Tried>, name: &str, all: &str) -> &'a Tried {
    m.get(name)
        .unwrap_or_else(|| panic!("no result for {name:?} in the output:\n{all}"))
}

/// Asserts that `name` failed with EPERM ("Operation not permitted"; busybox mount words
/// EPERM as "permission denied (are you root?)").
#[track_caller]
fn assert_eperm(m: &BTreeMap<String, Tried>, name: &str, all: &str) {
    let r = get(m, name, all);
    assert!(
        r.status != 0
            && (r.out.contains(EPERM_TEXT) || r.out.contains("permission denied (are you root?)")),
        "{name} was not refused with EPERM: {r:?}\nfull output:\n{all}"
    );
}

/// Value of the first `key|value` line of `stdout`.
fn field<'a>(stdout: &'a str, key: &str) -> Option<&'a str> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('|'))
}

fn core_pattern() -> String {
    fs::read_to_string(CORE_PATTERN).expect("read core_pattern")
}

/// The host's core_pattern now; on drop of `t`, it is put back if a test changed it.
fn guard_core_pattern(t: &Test) -> String {
    let orig = core_pattern();
    let keep = orig.clone();
    t.on_cleanup(move || {
        if fs::read_to_string(CORE_PATTERN).ok().as_deref() != Some(keep.as_str()) {
            let _ = fs::write(CORE_PATTERN, keep.trim_end());
        }
    });
    orig
}

fn sha256(p: &Path) -> String {
    let o = common::host("sha256sum", &[&p.to_string_lossy()]).ok("sha256sum");
    o.stdout
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

// ---------------------------------------------------------------------------
// 1. Docker's default seccomp profile
// ---------------------------------------------------------------------------

const SECCOMP_PROBE: &str = r#"
echo "seccomp|$(grep '^Seccomp:' /proc/self/status | tr -d ' \t' | cut -d: -f2)"
try unshare-U unshare -U true
try unshare-m unshare -m true
try mount mount -t tmpfs x /mnt
try ls ls /
try cat cat /etc/hostname
try fork sh -c '( echo sub-subshell ) && echo nested-sh'
"#;

#[test]
fn seccomp_default_profile_confines_init_and_exec() {
    let t = test_env!();
    let script = format!("{TRY}{SECCOMP_PROBE}");

    // With the filter: mode 2, namespace and mount syscalls refused, ordinary work fine.
    let o = t.run_ok(&["sh", "-c", &script], docker_defaults);
    let r = tried(&o.stdout);
    assert_eq!(field(&o.stdout, "seccomp"), Some("2"), "{}", o.stdout);
    for name in ["unshare-U", "unshare-m", "mount"] {
        assert_eperm(&r, name, &o.stdout);
    }
    for name in ["ls", "cat", "fork"] {
        assert_eq!(get(&r, name, &o.stdout).status, 0, "{}", o.stdout);
    }
    assert!(get(&r, "fork", &o.stdout).out.contains("nested-sh"));

    // Control, same capabilities without the filter: creating a user namespace needs no
    // capability, so only the filter refuses it above.
    let o = t.run_ok(&["sh", "-c", &script], |cfg| {
        docker_defaults(cfg);
        cfg["linux"].as_object_mut().unwrap().remove("seccomp");
    });
    let r = tried(&o.stdout);
    assert_eq!(field(&o.stdout, "seccomp"), Some("0"), "{}", o.stdout);
    assert_eq!(
        get(&r, "unshare-U", &o.stdout).status,
        0,
        "without seccomp `unshare -U` should work (is user namespace creation disabled \
         on this host?): {}",
        o.stdout
    );

    // exec'd processes get the same filter.
    let (id, _) = t.started(&["sleep", "1000"], docker_defaults);
    let o = t
        .exec(&id, &["sh", "-c", &script])
        .ok("exec into the seccomp-confined container");
    let r = tried(&o.stdout);
    assert_eq!(field(&o.stdout, "seccomp"), Some("2"), "exec: {}", o.stdout);
    for name in ["unshare-U", "unshare-m", "mount"] {
        assert_eperm(&r, name, &o.stdout);
    }
    assert_eq!(get(&r, "fork", &o.stdout).status, 0, "{}", o.stdout);
    // Even with capabilities added by exec, the profile (made for the container's
    // capabilities) still holds.
    let o = t
        .exec_with(&id, &["--cap", "CAP_SYS_ADMIN"], &["sh", "-c", &script])
        .ok("exec --cap CAP_SYS_ADMIN");
    assert_eq!(
        field(&o.stdout, "seccomp"),
        Some("2"),
        "exec --cap: {}",
        o.stdout
    );
    assert_eperm(&tried(&o.stdout), "unshare-U", &o.stdout);
    t.rt(&["delete", "--force", &id]).ok("delete");
}

/// Environment variable that turns [`syscall_probe_helper`] into the prober.
const PROBE_ENV: &str = "KAPSEL_SECURITY_PROBE";

/// Not a test of its own. Busybox has no applet that issues keyctl, bpf, personality or
/// userfaultfd, so `seccomp_default_profile_refuses_keyctl_bpf_personality_userfaultfd`
/// runs this test binary inside the container (with the host's libc bind-mounted) and this
/// function, with `KAPSEL_SECURITY_PROBE=1`, issues those syscalls and prints
/// `probe|NAME|ok` or `probe|NAME|errno=N`. Without the variable it does nothing.
///
/// ptrace is not probed: Docker's profile allows it on kernels since 4.8.
#[test]
fn syscall_probe_helper() {
    if std::env::var_os(PROBE_ENV).is_none() {
        return;
    }
    fn report(name: &str, ret: libc::c_long) {
        // Read errno before anything else can change it.
        let err = std::io::Error::last_os_error();
        if ret < 0 {
            println!("probe|{name}|errno={}", err.raw_os_error().unwrap_or(0));
        } else {
            println!("probe|{name}|ok");
        }
    }
    // SAFETY: raw syscalls with scalar or null arguments; each result is only reported.
    unsafe {
        // keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 0)
        report(
            "keyctl",
            libc::syscall(libc::SYS_keyctl, 0, -4 as libc::c_long, 0),
        );
        // An unknown bpf command: EINVAL from the kernel (since 6.2 no capability is
        // checked before the command), EPERM from the filter.
        report(
            "bpf",
            libc::syscall(libc::SYS_bpf, 0x7fff, std::ptr::null::<u8>(), 0),
        );
        // personality(READ_IMPLIES_EXEC): Docker allows only a few personalities.
        let old = libc::personality(0x0040_0000);
        report("personality", old as libc::c_long);
        if old >= 0 {
            libc::personality(old as libc::c_ulong);
        }
        // userfaultfd(UFFD_USER_MODE_ONLY | O_CLOEXEC): no capability needed since 5.11.
        let fd = libc::syscall(libc::SYS_userfaultfd, 1 | libc::O_CLOEXEC);
        report("userfaultfd", fd);
        if fd >= 0 {
            libc::close(fd as i32);
        }
    }
}

/// Runs [`syscall_probe_helper`] in a container made by `mutate`; returns its results.
fn probe_syscalls(
    t: &Test,
    tag: &str,
    mutate: impl FnOnce(&mut Value),
) -> BTreeMap<String, String> {
    let rootfs = t.private_rootfs(tag);
    for d in ["usr/lib", "usr/lib64"] {
        fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    symlink("usr/lib", rootfs.join("lib")).unwrap();
    symlink("usr/lib64", rootfs.join("lib64")).unwrap();
    fs::write(rootfs.join("probe"), "").unwrap();
    let exe = std::env::current_exe().expect("current_exe");
    let id = t.id();
    let mut cfg = t.spec(
        &id,
        &[
            "/probe",
            "syscall_probe_helper",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ],
    );
    cfg["root"]["path"] = json!(rootfs);
    cfg["process"]["env"]
        .as_array_mut()
        .unwrap()
        .push(json!(format!("{PROBE_ENV}=1")));
    for (dst, src) in [
        ("/usr/lib", PathBuf::from("/usr/lib")),
        ("/usr/lib64", PathBuf::from("/usr/lib64")),
        ("/probe", exe),
    ] {
        add_mount(
            &mut cfg,
            json!({"destination": dst, "type": "bind", "source": src, "options": ["bind", "ro"]}),
        );
    }
    mutate(&mut cfg);
    let o = t.run(&id, &cfg).ok("syscall prober");
    let m: BTreeMap<String, String> = o
        .stdout
        .lines()
        .filter_map(|l| {
            // libtest prints "test syscall_probe_helper ... " before the first line.
            let (name, res) = l[l.find("probe|")? + 6..].split_once('|')?;
            Some((name.to_string(), res.to_string()))
        })
        .collect();
    assert_eq!(m.len(), 4, "prober output:\n{}", o.all());
    m
}

#[test]
fn seccomp_default_profile_refuses_keyctl_bpf_personality_userfaultfd() {
    let t = test_env!();
    let filtered = probe_syscalls(&t, "filtered", docker_defaults);
    let control = probe_syscalls(&t, "control", |cfg| {
        docker_defaults(cfg);
        cfg["linux"].as_object_mut().unwrap().remove("seccomp");
    });
    eprintln!("with the filter: {filtered:?}\nwithout: {control:?}");
    for (name, res) in &filtered {
        assert_eq!(
            res,
            "errno=1",
            "{name} was not refused with EPERM under Docker's profile (without the filter: {:?})",
            control.get(name)
        );
    }
    // Without the filter these reach the kernel, so the EPERMs above are the filter's.
    for name in ["keyctl", "personality"] {
        assert_ne!(
            control[name], "errno=1",
            "{name} gives EPERM even without seccomp: the test proves nothing"
        );
    }
}

// ---------------------------------------------------------------------------
// 2. Capabilities
// ---------------------------------------------------------------------------

const CAP_PROBE: &str = r#"
grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb):' /proc/self/status | tr -d ' \t' | tr ':' '|'
touch /tmp/f
try chown chown 1 /tmp/f
try mknod mknod /tmp/n c 1 3
"#;

#[test]
fn capabilities_are_the_configured_set_and_enforced() {
    let t = test_env!();
    let script = format!("{TRY}{CAP_PROBE}");
    let run = |caps: &[&str]| {
        let caps = caps.to_vec();
        let o = t.run_ok(&["sh", "-c", &script], move |cfg| {
            set_caps(cfg, &caps);
            add_mount(
                cfg,
                json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                       "options": ["nosuid", "size=1m"]}),
            );
        });
        o.stdout
    };
    let check_masks = |out: &str, caps: &[&str]| {
        let want = cap_mask(caps);
        for set in ["CapEff", "CapPrm", "CapBnd"] {
            let got = parse_mask(field(out, set).unwrap_or_else(|| panic!("no {set}: {out}")));
            assert_eq!(
                got, want,
                "{set} is {got:#x}, configured {want:#x} ({caps:?})\n{out}"
            );
        }
        for set in ["CapInh", "CapAmb"] {
            assert_eq!(parse_mask(field(out, set).unwrap()), 0, "{set}: {out}");
        }
    };

    // Docker's set without CAP_CHOWN and CAP_MKNOD: both are enforced.
    let without: Vec<&str> = DOCKER_CAPS
        .iter()
        .copied()
        .filter(|c| *c != "CAP_CHOWN" && *c != "CAP_MKNOD")
        .collect();
    let out = run(&without);
    check_masks(&out, &without);
    let r = tried(&out);
    assert_eperm(&r, "chown", &out);
    assert_eperm(&r, "mknod", &out);

    // Control: with them, the same operations work, so the refusals are the capabilities'.
    let out = run(DOCKER_CAPS);
    check_masks(&out, DOCKER_CAPS);
    let r = tried(&out);
    assert_eq!(get(&r, "chown", &out).status, 0, "{out}");
    assert_eq!(get(&r, "mknod", &out).status, 0, "{out}");
}

// ---------------------------------------------------------------------------
// 3. Masked and read-only paths
// ---------------------------------------------------------------------------

/// Masked paths of the default config that exist on this host (so are worth checking),
/// with whether they are directories.
fn masked_on_host() -> Vec<(String, bool)> {
    [
        "/proc/acpi",
        "/proc/asound",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/sys/firmware",
        "/proc/scsi",
    ]
    .iter()
    .filter_map(|p| {
        let m = fs::metadata(p).ok()?;
        Some((p.to_string(), m.is_dir()))
    })
    .collect()
}

const PATHS_PROBE: &str = r#"
for f in $MASKED; do
  if [ -d $f ]; then
    touch $f/kapsel-probe 2>/dev/null && w=written || w=refused
    echo "$f|dir|$(ls -A $f | wc -l)|$w"
  else
    n=$(cat $f 2>/dev/null | wc -c)
    if [ "$WRITE" = 1 ]; then echo x > $f 2>/dev/null; fi
    echo "$f|file|$n|$(stat -c %t:%T $f)|$(cat $f 2>/dev/null | wc -c)"
  fi
done
try domainname sh -c 'echo kapsel-probe > /proc/sys/kernel/domainname'
try sysctl sysctl -w kernel.domainname=kapsel-probe
# Opened for writing, nothing written (busybox's [ -w ] is always true for root).
if [ ! -e /proc/sysrq-trigger ]; then echo "sysrq|absent"
elif ( exec 4>>/proc/sysrq-trigger ) 2>/dev/null; then echo "sysrq|writable"; else echo "sysrq|protected"; fi
( exec 4>>/proc/sys/kernel/core_pattern ) 2>/dev/null && echo "core_pattern|writable" || echo "core_pattern|protected"
"#;

#[test]
fn masked_and_readonly_paths_hide_and_protect() {
    let t = test_env!();
    let masked = masked_on_host();
    let list: Vec<&str> = masked.iter().map(|(p, _)| p.as_str()).collect();
    let list = list.join(" ");
    assert!(
        list.contains("/proc/timer_list") && list.contains("/sys/firmware"),
        "this host lacks /proc/timer_list or /sys/firmware: {list}"
    );

    // Default config: masked and read-only.
    let script = format!("{TRY}MASKED='{list}'; WRITE=1\n{PATHS_PROBE}");
    let out = t.sh(&script, |_| {});
    for (p, dir) in &masked {
        let line = field(&out, p).unwrap_or_else(|| panic!("nothing about {p}:\n{out}"));
        let f: Vec<&str> = line.split('|').collect();
        if *dir {
            assert_eq!(f, ["dir", "0", "refused"], "{p} is not masked:\n{out}");
        } else {
            // Masked with /dev/null: nothing to read, and a write goes nowhere.
            assert_eq!(f, ["file", "0", "1:3", "0"], "{p} is not masked:\n{out}");
        }
    }
    let r = tried(&out);
    for name in ["domainname", "sysctl"] {
        let res = get(&r, name, &out);
        assert!(
            res.status != 0 && res.out.contains("Read-only file system"),
            "{name}: /proc/sys is writable: {res:?}\n{out}"
        );
    }
    // Kernels without CONFIG_MAGIC_SYSRQ have no /proc/sysrq-trigger.
    let sysrq = Path::new("/proc/sysrq-trigger").exists();
    if sysrq {
        assert_eq!(field(&out, "sysrq"), Some("protected"), "{out}");
    }
    assert_eq!(field(&out, "core_pattern"), Some("protected"), "{out}");

    // Control without masks and read-only paths: the same probe sees through, so the
    // checks above can fail. (Nothing is written to a masked path here, and only the
    // container's own domainname to /proc/sys.)
    let script = format!("{TRY}MASKED='{list}'; WRITE=0\n{PATHS_PROBE}");
    let out = t.sh(&script, |cfg| {
        cfg["linux"]["maskedPaths"] = json!([]);
        cfg["linux"]["readonlyPaths"] = json!([]);
    });
    let timer_list = field(&out, "/proc/timer_list").unwrap_or("");
    assert!(
        !timer_list.starts_with("file|0|"),
        "/proc/timer_list is empty even unmasked: {out}"
    );
    assert!(
        !field(&out, "/sys/firmware")
            .unwrap_or("")
            .starts_with("dir|0|"),
        "/sys/firmware is empty even unmasked: {out}"
    );
    assert_eq!(get(&tried(&out), "domainname", &out).status, 0, "{out}");
    if sysrq {
        assert_eq!(field(&out, "sysrq"), Some("writable"), "{out}");
    }
    assert_eq!(field(&out, "core_pattern"), Some("writable"), "{out}");
}

// ---------------------------------------------------------------------------
// 4. CVE-2025-31133: /dev/null or a masked path replaced by a symlink
// ---------------------------------------------------------------------------

/// The mount lines of `mountinfo` text at `mp`.
fn mounts_at<'a>(mountinfo: &'a str, mp: &str) -> Vec<&'a str> {
    mountinfo
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some(mp))
        .collect()
}

#[test]
fn dev_null_symlink_is_not_used_to_mask_paths() {
    let t = test_env!();
    let before = guard_core_pattern(&t);
    let rootfs = t.private_rootfs("nullsym");
    symlink(CORE_PATTERN, rootfs.join("dev/null")).unwrap();
    let id = t.id();
    // The container writes nothing to its stdio: a runtime that reopens stdio on the
    // container's "/dev/null" (runc 1.1.5 does) would send it to the host's core_pattern.
    // Under runc (vulnerable) nothing is written to the masked paths either: only what it
    // mounted is reported.
    let write = if runtime_is_runc() {
        "true"
    } else {
        "for f in /proc/timer_list /proc/keys; do printf core.kapsel-cve-2025-31133 > $f; done"
    };
    let script = format!(
        "exec >/out/log 2>&1; cat /proc/self/mountinfo > /out/mountinfo; {write}; echo written"
    );
    let mut cfg = t.spec(&id, &["sh", "-c", &script]);
    cfg["root"]["path"] = json!(rootfs);
    // No tmpfs on /dev: the image's /dev (with its /dev/null) is used.
    remove_mount(&mut cfg, "/dev");
    let o = t.run(&id, &cfg);
    let after = core_pattern();
    let mountinfo = t.read_out("mountinfo");
    let through: Vec<&str> = ["/proc/timer_list", "/proc/keys"]
        .iter()
        .flat_map(|mp| mounts_at(&mountinfo, mp))
        .filter(|l| l.contains("/sys/kernel/core_pattern"))
        .collect();
    let what = format!(
        "{}\ncontainer log: {}\nmasks mounted through the symlink: {through:#?}",
        o.all(),
        t.read_out("log")
    );
    assert_eq!(
        after, before,
        "the host's core_pattern was changed from inside the container!\n{what}"
    );
    if runtime_is_runc() {
        eprintln!(
            "runc (no CVE-2025-31133 protection in 1.1.5): run {}; {what}",
            if o.success() { "succeeded" } else { "failed" }
        );
        return;
    }
    assert!(
        !o.success(),
        "a rootfs whose /dev/null is a symlink to core_pattern was accepted:\n{what}"
    );
    assert!(
        o.stderr.contains("/dev/null"),
        "the error does not name /dev/null:\n{what}"
    );
    eprintln!("refused as expected: {}", o.stderr.trim());
    t.assert_gone(&id);
}

#[test]
fn masked_path_symlink_is_refused() {
    let t = test_env!();
    let before = guard_core_pattern(&t);
    let rootfs = t.private_rootfs("masksym");
    symlink(CORE_PATTERN, rootfs.join("etc/masked")).unwrap();
    let id = t.id();
    let mut cfg = t.spec(
        &id,
        &[
            "sh",
            "-c",
            "cat /proc/self/mountinfo; stat -c %F /proc/sys/kernel/core_pattern",
        ],
    );
    cfg["root"]["path"] = json!(rootfs);
    cfg["linux"]["maskedPaths"]
        .as_array_mut()
        .unwrap()
        .push(json!("/etc/masked"));
    let o = t.run(&id, &cfg);
    assert_eq!(core_pattern(), before, "{}", o.all());
    let through = mounts_at(&o.stdout, CORE_PATTERN);
    if runtime_is_runc() {
        eprintln!(
            "runc (no protection in 1.1.5): run {}; mounts on core_pattern: {through:#?}",
            if o.success() { "succeeded" } else { "failed" }
        );
        return;
    }
    assert!(
        !o.success(),
        "masked path /etc/masked, a symlink to core_pattern, was followed (mounts on \
         core_pattern: {through:#?}):\n{}",
        o.all()
    );
    assert!(
        o.stderr.contains("/etc/masked"),
        "the error does not name /etc/masked:\n{}",
        o.all()
    );
    eprintln!("refused as expected: {}", o.stderr.trim());
    t.assert_gone(&id);
}

// ---------------------------------------------------------------------------
// 5. CVE-2025-52565: /dev/console replaced by a symlink
// ---------------------------------------------------------------------------

/// One container whose image has /dev/console -> core_pattern, with a terminal, on a
/// writable or a read-only root.
fn console_symlink_case(t: &Test, readonly_root: bool) {
    let before = core_pattern();
    let what = if readonly_root {
        "read-only root"
    } else {
        "writable root"
    };
    let rootfs = t.private_rootfs(if readonly_root {
        "console-ro"
    } else {
        "console-rw"
    });
    let dev = rootfs.join("dev");
    symlink(CORE_PATTERN, dev.join("console")).unwrap();
    // A plausible image /dev otherwise: the null device (masking needs it) and ptmx.
    t.host_sh(&format!("mknod -m 666 {}/null c 1 3", dev.display()));
    symlink("pts/ptmx", dev.join("ptmx")).unwrap();
    let id = t.id();
    let script = "echo \"console|$(stat -c '%F|%t:%T' /dev/console)\"; \
                  echo \"cp|$(stat -c %F /proc/sys/kernel/core_pattern)\"; \
                  echo \"cpmounts|$(grep -c ' /proc/sys/kernel/core_pattern ' /proc/self/mountinfo)\"; \
                  echo end-of-probe";
    let mut cfg = t.spec(&id, &["sh", "-c", script]);
    cfg["root"] = json!({"path": rootfs, "readonly": readonly_root});
    cfg["process"]["terminal"] = json!(true);
    // No tmpfs on /dev: the image's /dev (with its /dev/console) is used.
    remove_mount(&mut cfg, "/dev");
    let sock = ConsoleSocket::bind(t, &format!("console-{readonly_root}"));
    let o = t.create_with(&id, &cfg, &["--console-socket", &sock.path_str()]);
    assert_eq!(core_pattern(), before, "{}", o.all());
    let o = o.ok(&format!(
        "create with a /dev/console symlink in the image ({what})"
    ));
    let (mut pty, _) = sock
        .recv_master(T)
        .unwrap_or_else(|e| panic!("{e}\ncreate: {}", o.all()));
    t.rt(&["start", &id]).ok("start");
    pty.read_until(T, |s| s.contains("end-of-probe\n"));
    let seen = pty.seen.clone();
    assert_eq!(core_pattern(), before, "{seen}");
    let console = field(&seen, "console").unwrap_or("");
    let want_console = format!("character special file|88:{:x}", pty.number());
    let cp_mounts = field(&seen, "cpmounts").unwrap_or("");
    let cp = field(&seen, "cp").unwrap_or("");
    if runtime_is_runc() {
        eprintln!(
            "runc (no CVE-2025-52565 protection in 1.1.5), {what}: /dev/console: {console:?}, \
             core_pattern in the container: {cp:?}, mounts on it: {cp_mounts:?}"
        );
        return;
    }
    assert_eq!(
        console, want_console,
        "{what}: /dev/console is not the pty:\n{seen}"
    );
    assert_eq!(
        cp_mounts, "0",
        "{what}: something was mounted on core_pattern through the /dev/console symlink:\n{seen}"
    );
    assert_eq!(cp, "regular empty file", "{what}: {seen}");
    t.wait_status(&id, "stopped");
}

#[test]
fn console_symlink_is_not_followed() {
    let t = test_env!();
    guard_core_pattern(&t);
    console_symlink_case(&t, false);
    // The default config's read-only root: the pty must still replace the image's symlink
    // (runc binds /dev/console before it makes the root read-only).
    console_symlink_case(&t, true);
}

// ---------------------------------------------------------------------------
// 6. CVE-2024-21626: cwd through a leaked fd
// ---------------------------------------------------------------------------

/// Prints cwd-inside when climbing from the cwd ends at the container's root, and
/// cwd-OUTSIDE when it ends elsewhere (the host's root).
const CWD_PROBE: &str = "a=$(stat -L -c %d:%i ../../../../../../../../../../..); \
    b=$(stat -c %d:%i /); \
    if [ \"$a\" = \"$b\" ]; then echo cwd-inside; else echo cwd-OUTSIDE; ls ../../../../../../../..; fi; pwd";

#[track_caller]
fn assert_cwd_contained(o: &common::Output, what: &str) {
    if o.success() {
        assert!(
            o.stdout.contains("cwd-inside") && !o.stdout.contains("cwd-OUTSIDE"),
            "{what}: the process is outside the container's root:\n{}",
            o.all()
        );
    }
}

#[test]
fn cwd_through_proc_self_fd_is_refused() {
    let t = test_env!();
    let mut refused = 0;
    for n in 3..=10 {
        let id = t.id();
        let mut cfg = t.spec(&id, &["sh", "-c", CWD_PROBE]);
        cfg["process"]["cwd"] = json!(format!("/proc/self/fd/{n}"));
        let o = t.run(&id, &cfg);
        assert_cwd_contained(&o, &format!("process.cwd /proc/self/fd/{n}"));
        if n == 3 {
            eprintln!("cwd /proc/self/fd/3: {}", o.stderr.trim());
        }
        refused += usize::from(!o.success());
        let _ = t.rt(&["delete", "--force", &id]);
    }
    eprintln!("{refused} of 8 cwds refused, the others stayed inside");
}

#[test]
fn exec_cwd_through_proc_self_fd_is_refused() {
    let t = test_env!();
    let (id, _) = t.started(&["sleep", "1000"], |_| {});
    for n in 3..=10 {
        let cwd = format!("/proc/self/fd/{n}");
        let o = t.exec_with(&id, &["--cwd", &cwd], &["sh", "-c", CWD_PROBE]);
        assert_cwd_contained(&o, &format!("exec --cwd {cwd}"));
    }
    t.rt(&["delete", "--force", &id]).ok("delete");
}

// ---------------------------------------------------------------------------
// 7. CVE-2019-5736: the runtime binary overwritten through /proc/PID/exe
// ---------------------------------------------------------------------------

/// A private copy of the runtime under test, made the runtime of `t`; returns it and its
/// sha256. The real binary is never at risk.
fn runtime_copy(t: &Test) -> (PathBuf, String) {
    let copy = t.dir.join("runtime-copy");
    fs::copy(t.runtime_bin(), &copy).expect("copy the runtime binary");
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
    t.use_runtime(&copy);
    let sum = sha256(&copy);
    (copy, sum)
}

/// Shell code for the attacker: opens `$target` (a /proc/PID/exe) read-only as fd 3, or
/// logs why not and ends. `$log` collects `key|value` lines.
const ATTACK_OPEN: &str = r#"
if ( exec 3<$target ) 2>/tmp/open.err; then
  exec 3<$target
  echo "open|ok|$(readlink /proc/self/fd/3)" >> $log
else
  echo "open|refused|$(cat /tmp/open.err)" >> $log
  echo done > /out/ready; echo done > /out/finished; exit 0
fi
"#;

/// Shell code that writes through fd 3 (append, then dd over the start), retrying while
/// the file is busy being executed, and logs `write-append|...` and `write-dd|...`.
const ATTACK_WRITE: &str = r#"
attack() {
  n=0
  while :; do
    if [ $1 = append ]; then
      { echo pwned >> /proc/self/fd/3; } 2>/tmp/w.err
    else
      echo pwned | dd of=/proc/self/fd/3 conv=notrunc 2>/tmp/w.err
    fi
    if [ $? = 0 ]; then echo "write-$1|SUCCEEDED" >> $log; return; fi
    if grep -q busy /tmp/w.err && [ $n -lt 500 ]; then n=$((n+1)); usleep 10000; continue; fi
    echo "write-$1|failed|$(tr '\n' ' ' < /tmp/w.err)" >> $log
    return
  done
}
attack append
attack dd
echo done > /out/finished
"#;

/// Checks the attack's log and the binary's hash; `refusal` is the error kapsel's
/// protection gives a write.
#[track_caller]
fn assert_binary_intact(t: &Test, copy: &Path, sum: &str, refusal: &str) {
    let ok = wait_until(Duration::from_secs(20), || t.out.join("finished").exists());
    let log = t.read_out("log");
    assert!(ok, "the attacker never finished; its log:\n{log}");
    eprintln!("attack log:\n{log}");
    assert_eq!(
        sha256(copy),
        sum,
        "the runtime binary was modified from inside the container! log:\n{log}"
    );
    assert!(!log.contains("SUCCEEDED"), "a write went through:\n{log}");
    if log.contains("victim|never") {
        // Judged by the caller.
        return;
    }
    if field(&log, "open").is_some_and(|o| o.starts_with("refused")) {
        eprintln!("opening the exe was refused even with CAP_SYS_PTRACE: protected");
        return;
    }
    for m in ["write-append", "write-dd"] {
        let r = field(&log, m).unwrap_or_else(|| panic!("no {m} in the log:\n{log}"));
        if !runtime_is_runc() {
            assert!(r.contains(refusal), "{m}: expected {refusal:?}: {r}\n{log}");
        }
    }
}

/// kapsel runs from a read-only detached mount of its binary: writes get EROFS.
#[test]
fn runtime_binary_not_writable_through_proc_exe_of_init() {
    let t = test_env!();
    let (copy, sum) = runtime_copy(&t);
    attack_init_exe(&t, &copy, &sum, "Read-only file system");
}

/// An installed binary marked immutable (as scripts/install.sh does) is run as it is, and
/// the immutable flag refuses the write (EPERM) even with CAP_DAC_OVERRIDE.
#[test]
fn immutable_runtime_binary_not_writable_through_proc_exe_of_init() {
    let t = test_env!();
    let (copy, sum) = runtime_copy(&t);
    if !common::host("chattr", &["+i", &copy.to_string_lossy()]).success() {
        eprintln!("SKIP: this filesystem has no immutable attribute");
        return;
    }
    let unlock = copy.clone();
    t.on_cleanup(move || {
        common::host("chattr", &["-i", &unlock.to_string_lossy()]);
    });
    attack_init_exe(&t, &copy, &sum, "Operation not permitted");
}

/// The victim container's config: `sleep 1000` with a small tmpfs on /tmp for the
/// attacker's scratch files.
fn victim_spec(t: &Test, id: &str) -> Value {
    let mut cfg = t.spec(id, &["sleep", "1000"]);
    add_mount(
        &mut cfg,
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}),
    );
    cfg
}

/// Runs the attacker `script` in container `id` as a detached exec with CAP_SYS_PTRACE
/// (to open another process's /proc/PID/exe) and CAP_DAC_OVERRIDE.
fn exec_attacker(t: &Test, id: &str, script: &str) -> common::Output {
    t.rt_detached(
        "attacker",
        &[
            "exec",
            "-d",
            "--cap",
            "CAP_SYS_PTRACE",
            "--cap",
            "CAP_DAC_OVERRIDE",
            id,
            "sh",
            "-c",
            script,
        ],
    )
}

fn attack_init_exe(t: &Test, copy: &Path, sum: &str, refusal: &str) {
    let id = t.id();
    let cfg = victim_spec(t, &id);
    t.create(&id, &cfg).ok("create");
    // Created: the container's pid 1 still runs the runtime's binary.
    let script = format!(
        r#"log=/out/log; target=/proc/1/exe
exe0=$(readlink /proc/1/exe)
echo "exe0|$exe0" >> $log
{ATTACK_OPEN}
echo ready > /out/ready
i=0
while [ "$(readlink /proc/1/exe)" = "$exe0" ]; do
  i=$((i+1)); if [ $i -gt 1000 ]; then echo "start|never" >> $log; break; fi
  usleep 10000
done
echo "exe1|$(readlink /proc/1/exe)" >> $log
{ATTACK_WRITE}"#
    );
    exec_attacker(t, &id, &script).ok("exec the attacker into the created container");
    t.wait_out("ready");
    t.rt(&["start", &id]).ok("start");
    assert_binary_intact(t, copy, sum, refusal);
    let log = t.read_out("log");
    if field(&log, "open") != Some("refused") {
        assert!(
            !log.contains("start|never"),
            "init never exec'd the container's program:\n{log}"
        );
    }
}

/// A pipe whose buffer is full: a process writing to it blocks until it is read.
fn full_pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds that we then own.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: fcntl and write on the fds we own.
    unsafe {
        let fl = libc::fcntl(w.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(w.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
        let buf = [b'x'; 4096];
        while libc::write(w.as_raw_fd(), buf.as_ptr().cast(), buf.len()) > 0 {}
        libc::fcntl(w.as_raw_fd(), libc::F_SETFL, fl);
    }
    (r, w)
}

#[test]
fn runtime_binary_not_writable_through_interpreter_exe() {
    let t = test_env!();
    let (copy, sum) = runtime_copy(&t);
    let rootfs = t.private_rootfs("evil");
    // The image's trick: a program whose interpreter is /proc/self/exe, so whoever execs it
    // from the runtime runs the runtime's binary inside the container.
    write_script(&rootfs.join("evil"), "#!/proc/self/exe\n");
    let id = t.id();
    let mut cfg = victim_spec(&t, &id);
    cfg["root"]["path"] = json!(rootfs);
    t.create_and_start(&id, &cfg);
    let script = format!(
        r#"log=/out/log
end=$(( $(date +%s) + 4 )); victim=
while [ -z "$victim" ]; do
  for p in /proc/[0-9]*; do
    if [ "$(tr '\0' ' ' < $p/cmdline 2>/dev/null)" = "/proc/self/exe /evil " ]; then victim=${{p#/proc/}}; break; fi
  done
  [ -n "$victim" ] && break
  if [ $(date +%s) -gt $end ]; then echo "victim|never" >> $log; echo done > /out/finished; exit 0; fi
  usleep 10000
done
echo "victim|$victim|$(readlink /proc/$victim/exe)" >> $log
target=/proc/$victim/exe
{ATTACK_OPEN}
echo ready > /out/ready
kill -9 $victim
while readlink /proc/$victim/exe >/dev/null 2>&1; do usleep 10000; done
{ATTACK_WRITE}"#
    );
    exec_attacker(&t, &id, &script).ok("exec the attacker");
    // The victim: an exec of /evil, as an administrator's `exec` would run a program the
    // image replaced. Its stdio is a full pipe, so the runtime's binary, run as /evil's
    // interpreter, blocks on its first message until the attacker has opened its exe.
    let (r, w) = full_pipe();
    let mut cmd = t.rt_cmd(&["exec", "-d", &id, "/evil"]);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(w.try_clone().unwrap()))
        .stderr(Stdio::from(w));
    let mut child = cmd.spawn().expect("spawn exec /evil");
    // Only the runtime and the victim may hold the pipe's write end.
    drop(cmd);
    // The attack ends (the victim found and killed, or given up on) before the pipe is
    // read: a runtime that reports a failed exec on its stderr blocks until then too.
    assert_binary_intact(&t, &copy, &sum, "Read-only file system");
    // What the victim or the runtime wrote after the filler.
    let victim_out = drain(r);
    let done = wait_until(RT_TIMEOUT, || child.try_wait().unwrap().is_some());
    if !done {
        let _ = child.kill();
    }
    let status = child.wait().unwrap();
    let log = t.read_out("log");
    if log.contains("victim|never") {
        // Safe only if the runtime's binary never ran as /evil's interpreter: the exec of
        // /evil failed (runc 1.1.5: its init's exe cannot be an interpreter, ENOENT).
        assert!(
            victim_out.contains("/evil"),
            "the attacker never saw the runtime run as /evil's interpreter, and exec /evil \
             did not report a failure (exec: {status}): output {victim_out:?}\n{log}"
        );
        eprintln!("exec /evil failed, the runtime's binary never ran as /evil: {victim_out:?}");
    }
}

/// Everything left in the pipe after the 'x' filler of [`full_pipe`], until every writer
/// has closed it (at most a few seconds).
fn drain(r: OwnedFd) -> String {
    let mut f = fs::File::from(r);
    // SAFETY: fcntl on an fd we own.
    unsafe {
        let fl = libc::fcntl(f.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(f.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
    let mut all = Vec::new();
    let mut buf = [0u8; 65536];
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        match std::io::Read::read(&mut f, &mut buf) {
            Ok(0) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(_) => break,
        }
    }
    let start = all.iter().position(|b| *b != b'x').unwrap_or(all.len());
    String::from_utf8_lossy(&all[start..]).into_owned()
}

// ---------------------------------------------------------------------------
// 8. no_new_privs; AppArmor and SELinux labels
// ---------------------------------------------------------------------------

#[test]
fn no_new_privileges_is_applied() {
    let t = test_env!();
    let probe = "grep '^NoNewPrivs:' /proc/self/status | tr -d ' \t' | tr ':' '|'";
    let out = t.sh(probe, |cfg| cfg["process"]["noNewPrivileges"] = json!(true));
    assert_eq!(field(&out, "NoNewPrivs"), Some("1"), "{out}");
    // Control: it is the setting, not a default.
    let out = t.sh(probe, |cfg| {
        cfg["process"]["noNewPrivileges"] = json!(false)
    });
    assert_eq!(field(&out, "NoNewPrivs"), Some("0"), "{out}");
    // exec'd processes of a no_new_privs container have it too.
    let (id, _) = t.started(&["sleep", "1000"], |cfg| {
        cfg["process"]["noNewPrivileges"] = json!(true)
    });
    let o = t.exec(&id, &["sh", "-c", probe]).ok("exec");
    assert_eq!(field(&o.stdout, "NoNewPrivs"), Some("1"), "{}", o.stdout);
    t.rt(&["delete", "--force", &id]).ok("delete");
}

#[test]
fn lsm_labels_are_refused() {
    // runc 1.1.5 applies the labels through the host's LSM, or ignores them when the LSM
    // is not enabled (as here): it does not refuse them.
    if common::skip_if_runc("runc ignores AppArmor/SELinux labels on a host without the LSM") {
        return;
    }
    let t = test_env!();
    for (field_name, value) in [
        ("apparmorProfile", "docker-default"),
        ("selinuxLabel", "system_u:system_r:container_t:s0:c1,c2"),
    ] {
        let id = t.id();
        let mut cfg = t.spec(&id, &["true"]);
        cfg["process"][field_name] = json!(value);
        let o = t.create(&id, &cfg);
        assert!(
            !o.success(),
            "create with {field_name} succeeded: the label would be silently ignored\n{}",
            o.all()
        );
        assert!(
            o.stderr.contains(field_name),
            "the error does not name {field_name}:\n{}",
            o.all()
        );
        eprintln!("refused as expected: {}", o.stderr.trim());
        t.assert_gone(&id);
    }
}

// ---------------------------------------------------------------------------
// 10. Parity with runc for Docker's defaults
// ---------------------------------------------------------------------------

/// Runs `script` in a container configured with Docker's defaults under `bin` (with its
/// own state root); returns stdout.
fn run_under(t: &Test, bin: &Path, tag: &str, script: &str) -> String {
    let root = t.dir.join(format!("state-{tag}"));
    fs::create_dir_all(&root).unwrap();
    let id = t.id();
    let mut cfg = t.spec(&id, &["sh", "-c", script]);
    docker_defaults(&mut cfg);
    let b = t.write_bundle(&id, &cfg);
    {
        let (bin, root, id) = (bin.to_path_buf(), root.clone(), id.clone());
        t.on_cleanup(move || {
            let _ = common::try_run_cmd(
                Command::new(&bin)
                    .arg("--root")
                    .arg(&root)
                    .args(["delete", "--force", &id]),
                RT_TIMEOUT,
            );
        });
    }
    let o = run_cmd(
        Command::new(bin).arg("--root").arg(&root).args([
            "run",
            "--bundle",
            &b.to_string_lossy(),
            &id,
        ]),
        RT_TIMEOUT,
    );
    assert!(o.success(), "run under {}: {}", bin.display(), o.all());
    o.stdout
}

#[test]
fn parity_with_runc_docker_default_seccomp_and_caps() {
    let canon = |p: PathBuf| fs::canonicalize(&p).unwrap_or(p);
    if canon(runtime()) == canon(reference_runtime()) || !reference_runtime().exists() {
        eprintln!("SKIP: no other reference runtime to compare with");
        return;
    }
    let t = test_env!();
    let script = format!(
        "{TRY}grep -E '^(Seccomp|NoNewPrivs|Cap(Inh|Prm|Eff|Bnd|Amb)):' /proc/self/status\n\
         try unshare-U unshare -U true\ntry mount mount -t tmpfs x /mnt\n"
    );
    let reference = run_under(&t, &reference_runtime(), "ref", &script);
    let tested = run_under(&t, &runtime(), "test", &script);
    for key in [
        "Seccomp",
        "NoNewPrivs",
        "CapInh",
        "CapPrm",
        "CapEff",
        "CapBnd",
        "CapAmb",
    ] {
        assert_eq!(
            status_field(&tested, key),
            status_field(&reference, key),
            "{key} differs from runc\nrunc:\n{reference}\nunder test:\n{tested}"
        );
        assert!(status_field(&tested, key).is_some(), "{tested}");
    }
    assert_eq!(
        status_field(&tested, "CapEff").map(parse_mask),
        Some(cap_mask(DOCKER_CAPS))
    );
    let (r, g) = (tried(&reference), tried(&tested));
    for name in ["unshare-U", "mount"] {
        assert_eq!(
            (get(&g, name, &tested).status, &get(&g, name, &tested).out),
            (
                get(&r, name, &reference).status,
                &get(&r, name, &reference).out
            ),
            "{name} differs from runc"
        );
    }
}
