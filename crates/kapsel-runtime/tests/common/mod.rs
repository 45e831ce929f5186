//! Shared helpers for the kapsel-runtime integration tests.
//!
//! The tests drive a runtime *binary* with runc's command line. Which binary
//! is chosen by the environment:
//!
//! * `KAPSEL_TEST_RUNTIME=/path/to/runtime` (for example `/usr/sbin/runc`), or
//! * the `kapsel-runtime` binary built by cargo for this package.
//!
//! Every test gets a [`Test`] (see the [`test_env!`] macro) that owns a private
//! temporary directory holding the runtime's `--root` state directory, the
//! bundles, a bind-mountable output directory and the files that receive the
//! stdio of detached containers. Container ids are unique per test and per
//! test process, and so are the cgroup paths derived from them. Dropping the
//! [`Test`] force-deletes every container the test created, kills whatever is
//! left in their cgroups, removes the cgroups and the temporary directory.
//!
//! All containers share one busybox root filesystem that is built once (per
//! uid) and never written to by a container: bundles use it read-only. Tests
//! that need a writable root or need the runtime to create mount points in the
//! root filesystem take a private copy with [`Test::private_rootfs`].

#![allow(dead_code)]

use std::cell::RefCell;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Default time limit for one invocation of the runtime.
pub const RT_TIMEOUT: Duration = Duration::from_secs(30);

/// The six kinds of OCI hooks, in the order they run.
pub const HOOK_KINDS: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// Creates a [`common::Test`](Test) named after the enclosing test function.
#[macro_export]
macro_rules! test_env {
    () => {{
        fn __here() {}
        let full = std::any::type_name_of_val(&__here);
        let full = full.strip_suffix("::__here").unwrap_or(full);
        let name = full.rsplit("::").next().unwrap_or(full);
        common::Test::new(name)
    }};
}

// ---------------------------------------------------------------------------
// The runtime under test
// ---------------------------------------------------------------------------

/// Path of the runtime binary under test.
pub fn runtime() -> PathBuf {
    match std::env::var_os("KAPSEL_TEST_RUNTIME") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_kapsel-runtime")),
    }
}

/// Path of the reference runtime (runc) used by the parity tests.
pub fn reference_runtime() -> PathBuf {
    match std::env::var_os("KAPSEL_REFERENCE_RUNTIME") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from("/usr/sbin/runc"),
    }
}

/// True when the runtime under test identifies itself as runc
/// (`--version` starts with "runc version").
pub fn runtime_is_runc() -> bool {
    static IS_RUNC: OnceLock<bool> = OnceLock::new();
    *IS_RUNC.get_or_init(|| {
        let out = run_cmd(
            Command::new(runtime()).arg("--version"),
            Duration::from_secs(10),
        );
        out.stdout.trim_start().starts_with("runc version")
    })
}

/// Prints a skip message and returns true when the runtime under test is runc.
/// `why` documents the runc limitation.
pub fn skip_if_runc(why: &str) -> bool {
    if runtime_is_runc() {
        eprintln!("SKIP (runtime under test is runc): {why}");
        true
    } else {
        false
    }
}

// ---------------------------------------------------------------------------
// Running commands
// ---------------------------------------------------------------------------

/// Result of running a command.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit code, or 128 + signal number when killed by a signal.
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == 0
    }

    /// Panics with the full output unless the command exited 0.
    #[track_caller]
    pub fn ok(self, what: &str) -> Self {
        assert!(
            self.success(),
            "{what} failed with status {}\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panics unless the command exited non-zero.
    #[track_caller]
    pub fn fails(self, what: &str) -> Self {
        assert!(
            !self.success(),
            "{what} unexpectedly succeeded\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// stdout and stderr together, for error messages.
    pub fn all(&self) -> String {
        format!(
            "status {}\nstdout:\n{}\nstderr:\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

fn status_code(st: std::process::ExitStatus) -> i32 {
    match (st.code(), st.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        _ => -1,
    }
}

fn spawn_reader<R: Read + Send + 'static>(
    mut r: R,
) -> (Arc<Mutex<Vec<u8>>>, thread::JoinHandle<()>) {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let b = buf.clone();
    let h = thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        loop {
            match r.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => b.lock().unwrap().extend_from_slice(&chunk[..n]),
            }
        }
    });
    (buf, h)
}

/// Waits for `child` at most `timeout`; kills it (by its pid) on timeout.
fn wait_child(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return Some(st);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `cmd` with stdin from /dev/null and stdout/stderr captured, with a
/// time limit. Output that a surviving grandchild keeps writing after the
/// command exited is collected for at most two more seconds.
#[track_caller]
pub fn run_cmd(cmd: &mut Command, timeout: Duration) -> Output {
    try_run_cmd(cmd, timeout).unwrap_or_else(|e| panic!("{e}"))
}

/// Like [`run_cmd`], but a time-out or spawn failure is an `Err`.
pub fn try_run_cmd(cmd: &mut Command, timeout: Duration) -> Result<Output, String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot spawn {desc}: {e}"))?;
    let (out, ho) = spawn_reader(child.stdout.take().unwrap());
    let (err, he) = spawn_reader(child.stderr.take().unwrap());
    let st = wait_child(&mut child, timeout);
    let drain_deadline = Instant::now() + Duration::from_secs(2);
    while !(ho.is_finished() && he.is_finished()) && Instant::now() < drain_deadline {
        thread::sleep(Duration::from_millis(5));
    }
    let stdout = String::from_utf8_lossy(&out.lock().unwrap()).into_owned();
    let stderr = String::from_utf8_lossy(&err.lock().unwrap()).into_owned();
    match st {
        Some(st) => Ok(Output {
            status: status_code(st),
            stdout,
            stderr,
        }),
        None => Err(format!(
            "timed out after {timeout:?}: {desc}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        )),
    }
}

/// Runs `cmd` with stdout and stderr appended to the given files (so that a
/// detached container that inherits them cannot block us), with a time limit.
/// The returned output holds what the files received while the command ran.
pub fn run_cmd_to_files(
    cmd: &mut Command,
    stdout: &Path,
    stderr: &Path,
    timeout: Duration,
) -> Output {
    let open = |p: &Path| {
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .unwrap_or_else(|e| panic!("open {}: {e}", p.display()))
    };
    let o_start = fs::metadata(stdout).map(|m| m.len()).unwrap_or(0);
    let e_start = fs::metadata(stderr).map(|m| m.len()).unwrap_or(0);
    cmd.stdin(Stdio::null())
        .stdout(open(stdout))
        .stderr(open(stderr));
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {desc}: {e}"));
    let st = wait_child(&mut child, timeout);
    let tail = |p: &Path, from: u64| {
        let data = fs::read(p).unwrap_or_default();
        String::from_utf8_lossy(data.get(from as usize..).unwrap_or(&[])).into_owned()
    };
    let out = tail(stdout, o_start);
    let err = tail(stderr, e_start);
    match st {
        Some(st) => Output {
            status: status_code(st),
            stdout: out,
            stderr: err,
        },
        None => panic!("timed out after {timeout:?}: {desc}\nstdout:\n{out}\nstderr:\n{err}"),
    }
}

/// Runs a host command (not the runtime), panicking on spawn failure.
pub fn host(prog: &str, args: &[&str]) -> Output {
    run_cmd(Command::new(prog).args(args), Duration::from_secs(30))
}

/// Polls `f` until it returns true or `timeout` passes; returns the last result.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------
// The shared busybox root filesystem
// ---------------------------------------------------------------------------

const ROOTFS_VERSION: &str = "v1";

/// Path of the shared, read-only-by-convention busybox rootfs, built on first
/// use. Building happens in a private temporary directory that is renamed into
/// place, so concurrent test processes never see a half-built rootfs.
pub fn shared_rootfs() -> PathBuf {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS
        .get_or_init(|| {
            let uid = unsafe { libc::getuid() };
            let base = std::env::temp_dir();
            let dest = base.join(format!("kapsel-test-rootfs-{uid}-{ROOTFS_VERSION}"));
            if dest.join("bin/busybox").is_file() {
                return dest;
            }
            let tmp = base.join(format!(
                "kapsel-test-rootfs-{uid}-{ROOTFS_VERSION}.tmp-{}",
                std::process::id()
            ));
            let _ = fs::remove_dir_all(&tmp);
            build_rootfs(&tmp);
            if fs::rename(&tmp, &dest).is_err() {
                // Somebody else won the race (or a stale incomplete dir is in
                // the way, which we replace).
                if dest.join("bin/busybox").is_file() {
                    let _ = fs::remove_dir_all(&tmp);
                } else {
                    let _ = fs::remove_dir_all(&dest);
                    fs::rename(&tmp, &dest).expect("rename rootfs into place");
                }
            }
            dest
        })
        .clone()
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
}

fn build_rootfs(dir: &Path) {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.is_file(),
        "/bin/busybox (busybox-static) is required"
    );
    for d in [
        "", "bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "root",
        "home", "out", "data", "mnt", "var", "run",
    ] {
        let p = dir.join(d);
        fs::create_dir_all(&p).unwrap();
        chmod(&p, 0o755);
    }
    let tmp = dir.join("tmp");
    fs::create_dir_all(&tmp).unwrap();
    chmod(&tmp, 0o1777);
    fs::copy(busybox, dir.join("bin/busybox")).unwrap();
    chmod(&dir.join("bin/busybox"), 0o755);
    let list = host("/bin/busybox", &["--list-full"]).ok("busybox --list-full");
    for applet in list.stdout.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if applet == "bin/busybox" {
            continue;
        }
        let p = dir.join(applet);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        if p.symlink_metadata().is_err() {
            symlink("/bin/busybox", &p).unwrap();
        }
    }
    let files = [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        ),
        ("etc/group", "root:x:0:\nnobody:x:65534:\n"),
        ("etc/hostname", "kapsel-rootfs\n"),
    ];
    for (f, content) in files {
        fs::write(dir.join(f), content).unwrap();
        chmod(&dir.join(f), 0o644);
    }
}

// ---------------------------------------------------------------------------
// cgroups on the host
// ---------------------------------------------------------------------------

/// One cgroup hierarchy mounted on the host.
#[derive(Debug, Clone)]
pub struct CgMount {
    pub path: PathBuf,
    pub v2: bool,
    /// v1: the controllers (and name=...) from the super options; v2: the
    /// controllers listed in cgroup.controllers.
    pub controllers: Vec<String>,
}

/// Every cgroup (v1 and v2) hierarchy mounted on the host.
pub fn cgroup_mounts() -> Vec<CgMount> {
    let mi = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut v = Vec::new();
    for line in mi.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mp = pre.split(' ').nth(4).unwrap_or("");
        let mut post = post.split(' ');
        let fstype = post.next().unwrap_or("");
        let _src = post.next();
        let sopts = post.next().unwrap_or("");
        let path = PathBuf::from(unescape_mountinfo(mp));
        match fstype {
            "cgroup" => v.push(CgMount {
                path,
                v2: false,
                controllers: sopts
                    .split(',')
                    .filter(|o| !matches!(*o, "rw" | "ro"))
                    .map(String::from)
                    .collect(),
            }),
            "cgroup2" => {
                let ctrls = fs::read_to_string(path.join("cgroup.controllers")).unwrap_or_default();
                v.push(CgMount {
                    path,
                    v2: true,
                    controllers: ctrls.split_whitespace().map(String::from).collect(),
                })
            }
            _ => {}
        }
    }
    v
}

/// The hierarchy that holds `controller` ("memory", "cpu", "pids",
/// "freezer", ...): a v1 hierarchy with it, else the v2 hierarchy if it has
/// it (on v2 the freezer is always available).
pub fn cgroup_mount_for(controller: &str) -> CgMount {
    let mounts = cgroup_mounts();
    if let Some(m) = mounts
        .iter()
        .find(|m| !m.v2 && m.controllers.iter().any(|c| c == controller))
    {
        return m.clone();
    }
    if let Some(m) = mounts.iter().find(|m| {
        m.v2 && (controller == "freezer" || m.controllers.iter().any(|c| c == controller))
    }) {
        return m.clone();
    }
    panic!("no cgroup hierarchy with controller {controller}: {mounts:?}");
}

/// Host directory of cgroup `cgpath` (a cgroupsPath) for `controller`, and
/// whether it is a v2 hierarchy.
pub fn cgroup_dir(controller: &str, cgpath: &str) -> (PathBuf, bool) {
    let m = cgroup_mount_for(controller);
    (m.path.join(cgpath.trim_start_matches('/')), m.v2)
}

/// Reads a cgroup file, choosing the v1 or v2 file name.
#[track_caller]
pub fn cgroup_read(controller: &str, cgpath: &str, v1file: &str, v2file: &str) -> String {
    let (dir, v2) = cgroup_dir(controller, cgpath);
    let p = dir.join(if v2 { v2file } else { v1file });
    fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

/// Directories of `cgpath` in every hierarchy that currently exist.
pub fn cgroup_existing_dirs(cgpath: &str) -> Vec<PathBuf> {
    cgroup_mounts()
        .iter()
        .map(|m| m.path.join(cgpath.trim_start_matches('/')))
        .filter(|p| p.is_dir())
        .collect()
}

/// Kills (SIGKILL, by pid) every process in `cgpath` in every hierarchy and
/// removes the cgroup directories (children first).
pub fn cgroup_cleanup(cgpath: &str) {
    for _ in 0..50 {
        let dirs = cgroup_existing_dirs(cgpath);
        if dirs.is_empty() {
            return;
        }
        for d in &dirs {
            kill_cgroup_tree(d);
        }
        for d in &dirs {
            rmdir_tree(d);
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn kill_cgroup_tree(d: &Path) {
    // A frozen cgroup cannot die: thaw it first.
    let _ = fs::write(d.join("freezer.state"), "THAWED");
    let _ = fs::write(d.join("cgroup.freeze"), "0");
    if let Ok(procs) = fs::read_to_string(d.join("cgroup.procs")) {
        for pid in procs
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
    if let Ok(rd) = fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                kill_cgroup_tree(&e.path());
            }
        }
    }
}

fn rmdir_tree(d: &Path) {
    if let Ok(rd) = fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                rmdir_tree(&e.path());
            }
        }
    }
    let _ = fs::remove_dir(d);
}

// ---------------------------------------------------------------------------
// Misc host helpers
// ---------------------------------------------------------------------------

/// Undoes the octal escapes (\040 etc.) of /proc/*/mountinfo.
pub fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One parsed line of /proc/<pid>/mountinfo.
#[derive(Debug, Clone)]
pub struct MountInfo {
    pub mount_point: String,
    pub root: String,
    pub mount_opts: Vec<String>,
    pub optional: Vec<String>,
    pub fstype: String,
    pub source: String,
    pub super_opts: Vec<String>,
}

impl MountInfo {
    pub fn has_opt(&self, o: &str) -> bool {
        self.mount_opts.iter().any(|x| x == o)
    }
    pub fn has_super_opt(&self, o: &str) -> bool {
        self.super_opts.iter().any(|x| x == o)
    }
}

pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    let mut v = Vec::new();
    for line in text.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let f: Vec<&str> = pre.split(' ').collect();
        if f.len() < 6 {
            continue;
        }
        let p: Vec<&str> = post.split(' ').collect();
        v.push(MountInfo {
            root: unescape_mountinfo(f[3]),
            mount_point: unescape_mountinfo(f[4]),
            mount_opts: f[5].split(',').map(String::from).collect(),
            optional: f[6..].iter().map(|s| s.to_string()).collect(),
            fstype: p.first().unwrap_or(&"").to_string(),
            source: p.get(1).unwrap_or(&"").to_string(),
            super_opts: p
                .get(2)
                .unwrap_or(&"")
                .split(',')
                .map(String::from)
                .collect(),
        });
    }
    v
}

/// The last (topmost) mount at `mp`.
#[track_caller]
pub fn find_mount<'a>(mounts: &'a [MountInfo], mp: &str) -> &'a MountInfo {
    mounts
        .iter()
        .rev()
        .find(|m| m.mount_point == mp)
        .unwrap_or_else(|| panic!("no mount at {mp} in {mounts:#?}"))
}

/// Inode of a namespace link, e.g. "net:[4026531840]" -> 4026531840.
pub fn ns_inode(link_text: &str) -> u64 {
    let s = link_text.trim();
    let start = s.find('[').map(|i| i + 1).unwrap_or(0);
    let end = s.find(']').unwrap_or(s.len());
    s[start..end]
        .parse()
        .unwrap_or_else(|_| panic!("not a namespace link: {s:?}"))
}

/// Inode of a namespace of the calling (host) process, e.g. "net".
pub fn host_ns_inode(kind: &str) -> u64 {
    let l = fs::read_link(format!("/proc/self/ns/{kind}")).unwrap();
    ns_inode(&l.to_string_lossy())
}

/// Value of a "Key:\tvalue" line of /proc/<pid>/status text.
pub fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == key).then(|| v.trim())
    })
}

/// Capability names (without the CAP_ prefix) by number.
pub const CAP_NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Capability number by name (with or without the CAP_ prefix).
pub fn cap_number(name: &str) -> u32 {
    let n = name.trim_start_matches("CAP_");
    CAP_NAMES
        .iter()
        .position(|c| *c == n)
        .unwrap_or_else(|| panic!("unknown capability {name}")) as u32
}

/// "CAP_<NAME>" of capability number `n`.
pub fn cap_name(n: u32) -> String {
    format!("CAP_{}", CAP_NAMES[n as usize])
}

/// Names of the capabilities in the host's (this process's) bounding set.
pub fn host_bounding_caps() -> Vec<String> {
    let st = fs::read_to_string("/proc/self/status").unwrap();
    let mask = parse_mask(status_field(&st, "CapBnd").unwrap());
    (0..=last_cap().min(40))
        .filter(|n| mask & (1u64 << n) != 0)
        .map(cap_name)
        .collect()
}

/// The capability mask (as in /proc/self/status) of a set of names.
pub fn cap_mask(names: &[&str]) -> u64 {
    names.iter().fold(0u64, |m, n| m | (1u64 << cap_number(n)))
}

/// Parses a hex mask as printed in /proc/self/status.
pub fn parse_mask(s: &str) -> u64 {
    u64::from_str_radix(s.trim(), 16).unwrap_or_else(|_| panic!("not a hex mask: {s:?}"))
}

/// Highest capability number the running kernel knows.
pub fn last_cap() -> u32 {
    fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// True if `pid` exists and is not a zombie.
pub fn pid_alive(pid: i64) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            // state is the field after the ")" closing the comm.
            let st = s
                .rsplit_once(')')
                .map(|(_, r)| r.trim_start())
                .unwrap_or("");
            !st.starts_with('Z') && !st.starts_with('X')
        }
        Err(_) => false,
    }
}

// ---------------------------------------------------------------------------
// Bundles
// ---------------------------------------------------------------------------

/// The capabilities of `runc spec`.
pub const DEFAULT_CAPS: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/// A config.json like `runc spec` writes (terminal off, the given args),
/// rooted at the shared busybox rootfs (read-only), with a per-test rw bind
/// mount of `out` at /out and the given cgroupsPath.
pub fn default_spec(args: &[&str], rootfs: &Path, out: &Path, cgroups_path: &str) -> Value {
    json!({
        "ociVersion": "1.2.0",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": DEFAULT_CAPS,
                "effective": DEFAULT_CAPS,
                "permitted": DEFAULT_CAPS
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024u64, "soft": 1024u64}],
            "noNewPrivileges": true
        },
        "root": {"path": rootfs, "readonly": true},
        "hostname": "kapsel",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
            {"destination": "/out", "type": "bind", "source": out, "options": ["rbind", "rw"]}
        ],
        "linux": {
            "cgroupsPath": cgroups_path,
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

/// Removes the namespace `kind` from the config.
pub fn remove_namespace(cfg: &mut Value, kind: &str) {
    let ns = cfg["linux"]["namespaces"].as_array_mut().unwrap();
    ns.retain(|n| n["type"] != kind);
}

/// Adds (or replaces) the namespace `kind`, optionally joined by `path`.
pub fn set_namespace(cfg: &mut Value, kind: &str, path: Option<&str>) {
    remove_namespace(cfg, kind);
    let mut n = json!({"type": kind});
    if let Some(p) = path {
        n["path"] = json!(p);
    }
    cfg["linux"]["namespaces"].as_array_mut().unwrap().push(n);
}

/// Removes the mount with `destination`.
pub fn remove_mount(cfg: &mut Value, destination: &str) {
    cfg["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["destination"] != destination);
}

/// Appends a mount.
pub fn add_mount(cfg: &mut Value, m: Value) {
    cfg["mounts"].as_array_mut().unwrap().push(m);
}

/// Sets all capability sets that are present in the config to `caps`.
pub fn set_caps(cfg: &mut Value, caps: &[&str]) {
    cfg["process"]["capabilities"] = json!({
        "bounding": caps, "effective": caps, "permitted": caps
    });
}

// ---------------------------------------------------------------------------
// The per-test environment
// ---------------------------------------------------------------------------

/// One test's private world: temp dir, runtime state root, ids, cgroups.
pub struct Test {
    pub name: String,
    /// Private temporary directory (removed on drop).
    pub dir: PathBuf,
    /// The runtime's --root state directory.
    pub root: PathBuf,
    /// Host directory bind-mounted read-write at /out by default (mode 0777).
    pub out: PathBuf,
    ids: RefCell<Vec<String>>,
    extra_cleanup: RefCell<Vec<Box<dyn FnOnce()>>>,
    /// Runtime binary used instead of [`runtime`] (see [`Test::use_runtime`]).
    runtime_override: RefCell<Option<PathBuf>>,
}

impl Test {
    pub fn new(name: &str) -> Test {
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "the kapsel-runtime integration tests must run as root"
        );
        let base = std::env::temp_dir().join("kapsel-tests");
        fs::create_dir_all(&base).unwrap();
        let dir = base.join(format!("{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        chmod(&dir, 0o755);
        let root = dir.join("state");
        fs::create_dir_all(&root).unwrap();
        let out = dir.join("out");
        fs::create_dir_all(&out).unwrap();
        chmod(&out, 0o777);
        // Build (or find) the shared rootfs before any runtime call.
        shared_rootfs();
        Test {
            name: name.to_string(),
            dir,
            root,
            out,
            ids: RefCell::new(Vec::new()),
            extra_cleanup: RefCell::new(Vec::new()),
            runtime_override: RefCell::new(None),
        }
    }

    /// A fresh container id unique to this test and process, registered for
    /// cleanup: `kt-<test>-<pid>`, then `kt-<test>-<pid>-2`, ...
    pub fn id(&self) -> String {
        let mut ids = self.ids.borrow_mut();
        let base = format!("kt-{}-{}", self.name, std::process::id());
        let id = if ids.is_empty() {
            base
        } else {
            format!("{base}-{}", ids.len() + 1)
        };
        ids.push(id.clone());
        id
    }

    /// Registers an id that was not made by [`Test::id`] for cleanup.
    pub fn register_id(&self, id: &str) {
        self.ids.borrow_mut().push(id.to_string());
    }

    /// Registers a cleanup action run on drop (before the temp dir goes).
    pub fn on_cleanup(&self, f: impl FnOnce() + 'static) {
        self.extra_cleanup.borrow_mut().push(Box::new(f));
    }

    /// The cgroupsPath used for container `id`.
    pub fn cgroups_path(id: &str) -> String {
        format!("/kapsel-test-{id}")
    }

    /// A default config (see [`default_spec`]) for container `id`.
    pub fn spec(&self, id: &str, args: &[&str]) -> Value {
        default_spec(args, &shared_rootfs(), &self.out, &Self::cgroups_path(id))
    }

    /// Bundle directory of container `id`.
    pub fn bundle_dir(&self, id: &str) -> PathBuf {
        self.dir.join(format!("bundle-{id}"))
    }

    /// Writes `cfg` as config.json of the bundle of `id`; returns the bundle.
    pub fn write_bundle(&self, id: &str, cfg: &Value) -> PathBuf {
        let b = self.bundle_dir(id);
        fs::create_dir_all(&b).unwrap();
        chmod(&b, 0o755);
        fs::write(
            b.join("config.json"),
            serde_json::to_vec_pretty(cfg).unwrap(),
        )
        .unwrap();
        b
    }

    /// A private writable copy of the busybox rootfs (at `<dir>/rootfs-<tag>`).
    pub fn private_rootfs(&self, tag: &str) -> PathBuf {
        let p = self.dir.join(format!("rootfs-{tag}"));
        let src = shared_rootfs();
        host("cp", &["-a", &src.to_string_lossy(), &p.to_string_lossy()]).ok("copy rootfs");
        p
    }

    /// Makes every later runtime call of this test (including the cleanup on
    /// drop) use `bin` instead of [`runtime`], e.g. a private copy of it.
    pub fn use_runtime(&self, bin: &Path) {
        *self.runtime_override.borrow_mut() = Some(bin.to_path_buf());
    }

    /// The runtime binary this test drives.
    pub fn runtime_bin(&self) -> PathBuf {
        self.runtime_override
            .borrow()
            .clone()
            .unwrap_or_else(runtime)
    }

    /// A runtime command with `--root` set.
    pub fn rt_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(self.runtime_bin());
        c.arg("--root").arg(&self.root).args(args);
        c
    }

    /// Runs the runtime with stdout/stderr captured.
    pub fn rt(&self, args: &[&str]) -> Output {
        run_cmd(&mut self.rt_cmd(args), RT_TIMEOUT)
    }

    /// Runs the runtime with stdout/stderr going to `<dir>/<tag>.stdout` and
    /// `<dir>/<tag>.stderr`: needed whenever the runtime leaves a process
    /// behind that inherits its stdio (create, exec --detach, run --detach).
    pub fn rt_detached(&self, tag: &str, args: &[&str]) -> Output {
        let (o, e) = self.stdio_files(tag);
        run_cmd_to_files(&mut self.rt_cmd(args), &o, &e, RT_TIMEOUT)
    }

    /// The files that receive the stdout and stderr of [`Test::rt_detached`]
    /// calls with `tag`.
    pub fn stdio_files(&self, tag: &str) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("{tag}.stdout")),
            self.dir.join(format!("{tag}.stderr")),
        )
    }

    /// Everything written so far to the stdout of detached container `id`.
    pub fn container_stdout(&self, id: &str) -> String {
        fs::read_to_string(self.stdio_files(id).0).unwrap_or_default()
    }

    /// Everything written so far to the stderr of detached container `id`.
    pub fn container_stderr(&self, id: &str) -> String {
        fs::read_to_string(self.stdio_files(id).1).unwrap_or_default()
    }

    /// `run --bundle <bundle> <id>` in the foreground, capturing the output.
    pub fn run(&self, id: &str, cfg: &Value) -> Output {
        let b = self.write_bundle(id, cfg);
        self.rt(&["run", "--bundle", &b.to_string_lossy(), id])
    }

    /// Runs `args` (with `mutate` applied to the default config) in a fresh
    /// container and returns its output, asserting that it exited 0.
    #[track_caller]
    pub fn run_ok(&self, args: &[&str], mutate: impl FnOnce(&mut Value)) -> Output {
        let id = self.id();
        let mut cfg = self.spec(&id, args);
        mutate(&mut cfg);
        self.run(&id, &cfg).ok(&format!("run {args:?}"))
    }

    /// Shorthand: `sh -c script` in a fresh container, stdout returned.
    #[track_caller]
    pub fn sh(&self, script: &str, mutate: impl FnOnce(&mut Value)) -> String {
        self.run_ok(&["sh", "-c", script], mutate).stdout
    }

    /// `create --bundle <bundle> <id>`, container stdio going to files
    /// (see [`Test::container_stdout`]).
    pub fn create(&self, id: &str, cfg: &Value) -> Output {
        let b = self.write_bundle(id, cfg);
        self.rt_detached(id, &["create", "--bundle", &b.to_string_lossy(), id])
    }

    /// `create` with extra arguments before the id.
    pub fn create_with(&self, id: &str, cfg: &Value, extra: &[&str]) -> Output {
        let b = self.write_bundle(id, cfg);
        let bs = b.to_string_lossy().into_owned();
        let mut args = vec!["create", "--bundle", &bs];
        args.extend_from_slice(extra);
        args.push(id);
        self.rt_detached(id, &args)
    }

    /// create + start, asserting both succeed; returns the init pid.
    #[track_caller]
    pub fn create_and_start(&self, id: &str, cfg: &Value) -> i64 {
        self.create(id, cfg).ok("create");
        self.rt(&["start", id]).ok("start");
        self.pid(id)
    }

    /// Starts `sleep 1000` (or `args`) in a new container; returns (id, pid).
    #[track_caller]
    pub fn started(&self, args: &[&str], mutate: impl FnOnce(&mut Value)) -> (String, i64) {
        let id = self.id();
        let mut cfg = self.spec(&id, args);
        mutate(&mut cfg);
        let pid = self.create_and_start(&id, &cfg);
        (id, pid)
    }

    /// `state <id>` parsed, asserting success.
    #[track_caller]
    pub fn state(&self, id: &str) -> Value {
        let o = self.rt(&["state", id]).ok("state");
        serde_json::from_str(&o.stdout)
            .unwrap_or_else(|e| panic!("state output is not JSON ({e}): {}", o.stdout))
    }

    /// The "status" of `state <id>`.
    #[track_caller]
    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap_or("").to_string()
    }

    /// The init pid from `state <id>`.
    #[track_caller]
    pub fn pid(&self, id: &str) -> i64 {
        self.state(id)["pid"].as_i64().unwrap_or(0)
    }

    /// Waits until `state <id>` reports `status`.
    #[track_caller]
    pub fn wait_status(&self, id: &str, status: &str) {
        let mut last = String::new();
        let ok = wait_until(Duration::from_secs(10), || {
            last = self.status(id);
            last == status
        });
        assert!(ok, "container {id} never became {status:?} (last {last:?})");
    }

    /// `exec <id> args...` with output captured.
    pub fn exec(&self, id: &str, args: &[&str]) -> Output {
        let mut a = vec!["exec", id];
        a.extend_from_slice(args);
        self.rt(&a)
    }

    /// `exec [opts...] <id> args...` with output captured.
    pub fn exec_with(&self, id: &str, opts: &[&str], args: &[&str]) -> Output {
        let mut a = vec!["exec"];
        a.extend_from_slice(opts);
        a.push(id);
        a.extend_from_slice(args);
        self.rt(&a)
    }

    /// Reads a file in the per-test out dir.
    pub fn read_out(&self, name: &str) -> String {
        fs::read_to_string(self.out.join(name)).unwrap_or_default()
    }

    /// Waits until the out-dir file `name` exists and is non-empty.
    #[track_caller]
    pub fn wait_out(&self, name: &str) -> String {
        let mut s = String::new();
        let ok = wait_until(Duration::from_secs(10), || {
            s = self.read_out(name);
            !s.is_empty()
        });
        assert!(ok, "out file {name} never appeared");
        s
    }

    /// Runs `script` through a host shell; asserts success, returns stdout.
    #[track_caller]
    pub fn host_sh(&self, script: &str) -> String {
        host("/bin/sh", &["-c", script]).ok(script).stdout
    }

    /// Entries of the state root whose names contain `id`.
    pub fn state_entries(&self, id: &str) -> Vec<String> {
        fs::read_dir(&self.root)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.contains(id))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `list --format json` parsed into the list of ids.
    #[track_caller]
    pub fn list_ids(&self) -> Vec<String> {
        let o = self.rt(&["list", "--format", "json"]).ok("list");
        let t = o.stdout.trim();
        let v: Value = serde_json::from_str(t)
            .unwrap_or_else(|e| panic!("list output is not JSON ({e}): {t}"));
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c["id"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Asserts that nothing remains of container `id`: `state` fails, no state
    /// entry, not listed, no cgroup directory.
    #[track_caller]
    pub fn assert_gone(&self, id: &str) {
        let st = self.rt(&["state", id]);
        assert!(!st.success(), "state {id} still succeeds: {}", st.all());
        assert!(
            self.state_entries(id).is_empty(),
            "state dir entries left for {id}: {:?}",
            self.state_entries(id)
        );
        assert!(
            !self.list_ids().contains(&id.to_string()),
            "{id} still listed"
        );
        let cg = cgroup_existing_dirs(&Self::cgroups_path(id));
        assert!(cg.is_empty(), "cgroup dirs left for {id}: {cg:?}");
    }
}

impl Drop for Test {
    fn drop(&mut self) {
        let ids = self.ids.borrow().clone();
        for id in ids.iter().rev() {
            let quick = Duration::from_secs(10);
            // Ignore failures (and time-outs): the container may not exist.
            let _ = try_run_cmd(&mut self.rt_cmd(&["kill", id, "KILL"]), quick);
            let _ = try_run_cmd(&mut self.rt_cmd(&["delete", "--force", id]), quick);
            cgroup_cleanup(&Self::cgroups_path(id));
        }
        for f in self.extra_cleanup.borrow_mut().drain(..).rev() {
            f();
        }
        // Unmount anything a test mounted below its directory.
        if let Ok(mi) = fs::read_to_string("/proc/self/mountinfo") {
            let prefix = self.dir.to_string_lossy().into_owned();
            let mut mps: Vec<String> = parse_mountinfo(&mi)
                .into_iter()
                .map(|m| m.mount_point)
                .filter(|mp| mp.starts_with(&prefix))
                .collect();
            mps.sort_by_key(|m| std::cmp::Reverse(m.len()));
            for mp in mps {
                if let Ok(c) = std::ffi::CString::new(mp) {
                    unsafe {
                        libc::umount2(c.as_ptr(), libc::MNT_DETACH);
                    }
                }
            }
        }
        if std::env::var_os("KAPSEL_TEST_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Writes an executable shell script.
pub fn write_script(path: &Path, body: &str) {
    let mut f = fs::File::create(path).unwrap();
    f.write_all(body.as_bytes()).unwrap();
    drop(f);
    chmod(path, 0o755);
}

// ---------------------------------------------------------------------------
// File descriptors, console sockets and terminals
// ---------------------------------------------------------------------------

/// Makes the process spawned by `cmd` start with `fds` (pairs of an fd open
/// in this process and the number it gets in the child) open and *without*
/// FD_CLOEXEC, as a careless caller of the runtime would leave them. The
/// sources must stay open until the command is spawned.
pub fn inherit_fds(cmd: &mut Command, fds: &[(RawFd, RawFd)]) {
    use std::os::unix::process::CommandExt;
    let fds = fds.to_vec();
    // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // Move every source out of the way first so that a target never
            // clobbers a source that is still to be duplicated.
            let mut tmp = [0 as RawFd; 16];
            assert!(fds.len() <= tmp.len());
            for (i, (src, _)) in fds.iter().enumerate() {
                let t = libc::fcntl(*src, libc::F_DUPFD_CLOEXEC, 200);
                if t < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                tmp[i] = t;
            }
            for (i, (_, dst)) in fds.iter().enumerate() {
                // dup2 leaves the new descriptor without FD_CLOEXEC.
                if libc::dup2(tmp[i], *dst) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// The fd numbers open in a process, from `ls -l /proc/self/fd` output run
/// in that process, without the directory fd `ls` itself opened to list them.
pub fn fds_from_ls(ls_output: &str) -> Vec<u32> {
    let mut v: Vec<u32> = ls_output
        .lines()
        .filter_map(|l| {
            let (left, target) = l.split_once(" -> ")?;
            let fd: u32 = left.split_whitespace().last()?.parse().ok()?;
            // ls's own handle on the directory it lists.
            let own = target.starts_with("/proc/") && target.ends_with("/fd");
            (!own).then_some(fd)
        })
        .collect();
    v.sort();
    v
}

/// The fd numbers open in host process `pid` with their targets.
pub fn host_fds(pid: i64) -> Vec<(u32, String)> {
    let mut v: Vec<(u32, String)> = fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let fd = e.file_name().to_string_lossy().parse().ok()?;
                    let t = fs::read_link(e.path()).ok()?;
                    Some((fd, t.to_string_lossy().into_owned()))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Receives one fd sent with SCM_RIGHTS on `sock`, and the bytes sent with it
/// (runc's console protocol sends the pty's name). Blocks.
pub fn recv_fd(sock: &UnixStream) -> std::io::Result<(OwnedFd, Vec<u8>)> {
    let mut data = [0u8; 4096];
    // u64 for alignment; room for a few fds.
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; zeroed is a valid initial value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: msg points at live buffers of the sizes given.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut fds = Vec::new();
    // SAFETY: walking the control messages the kernel filled in.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let payload = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let p = libc::CMSG_DATA(cmsg) as *const RawFd;
                for i in 0..payload / std::mem::size_of::<RawFd>() {
                    fds.push(OwnedFd::from_raw_fd(p.add(i).read_unaligned()));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(std::io::Error::other("control message truncated"));
    }
    let mut fds = fds.into_iter();
    let fd = fds.next().ok_or_else(|| {
        std::io::Error::other(format!(
            "no fd received ({n} bytes of data: {:?})",
            String::from_utf8_lossy(&data[..n as usize])
        ))
    })?;
    if fds.next().is_some() {
        return Err(std::io::Error::other("more than one fd received"));
    }
    Ok((fd, data[..n as usize].to_vec()))
}

/// A listening unix socket for `--console-socket`.
pub struct ConsoleSocket {
    pub path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    /// Binds `<test dir>/<tag>.sock` (or a shorter name if that does not
    /// fit in a socket address).
    pub fn bind(t: &Test, tag: &str) -> ConsoleSocket {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let mut path = t.dir.join(format!("{tag}.sock"));
        if path.as_os_str().len() >= 100 {
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            path = t.dir.join(format!("cs{n}.sock"));
        }
        let _ = fs::remove_file(&path);
        let listener =
            UnixListener::bind(&path).unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
        listener.set_nonblocking(true).unwrap();
        ConsoleSocket { path, listener }
    }

    pub fn path_str(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }

    /// Accepts one connection (within `timeout`) and receives the pty master
    /// from it; returns the master and the name sent with it.
    pub fn recv_master(&self, timeout: Duration) -> Result<(Pty, String), String> {
        let deadline = Instant::now() + timeout;
        let conn = loop {
            match self.listener.accept() {
                Ok((c, _)) => break c,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err(format!(
                            "nobody connected to {} within {timeout:?}",
                            self.path.display()
                        ));
                    }
                    thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(format!("accept: {e}")),
            }
        };
        conn.set_nonblocking(false).unwrap();
        let left = deadline.saturating_duration_since(Instant::now());
        conn.set_read_timeout(Some(left.max(Duration::from_millis(100))))
            .unwrap();
        let (fd, name) = recv_fd(&conn).map_err(|e| format!("receiving the pty master: {e}"))?;
        Ok((
            Pty::from_fd(fd),
            String::from_utf8_lossy(&name).into_owned(),
        ))
    }

    /// True if a connection is waiting to be accepted (or was made and closed).
    pub fn has_pending(&self) -> bool {
        let mut p = libc::pollfd {
            fd: self.listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut p, 1, 0) > 0 }
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// The master side of a pty, with everything read from it so far.
pub struct Pty {
    pub master: fs::File,
    /// All output read so far, with "\r\n" turned into "\n".
    pub seen: String,
    raw: Vec<u8>,
    pub eof: bool,
}

impl Pty {
    pub fn from_fd(fd: OwnedFd) -> Pty {
        Pty {
            master: fs::File::from(fd),
            seen: String::new(),
            raw: Vec::new(),
            eof: false,
        }
    }

    /// A new pty pair on the host: (master, path of the slave).
    pub fn open_host() -> (Pty, PathBuf) {
        // SAFETY: plain libc pty calls on an fd we own.
        unsafe {
            let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
            assert!(m >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
            let fd = OwnedFd::from_raw_fd(m);
            assert_eq!(libc::grantpt(m), 0, "grantpt");
            assert_eq!(libc::unlockpt(m), 0, "unlockpt");
            let mut buf = [0 as libc::c_char; 128];
            assert_eq!(libc::ptsname_r(m, buf.as_mut_ptr(), buf.len()), 0);
            let name = std::ffi::CStr::from_ptr(buf.as_ptr())
                .to_string_lossy()
                .into_owned();
            (Pty::from_fd(fd), PathBuf::from(name))
        }
    }

    /// The pty number of this master (TIOCGPTN): the N of /dev/pts/N.
    pub fn number(&self) -> u32 {
        let mut n: libc::c_uint = 0;
        // SAFETY: TIOCGPTN writes an unsigned int.
        let r = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCGPTN, &mut n) };
        assert_eq!(r, 0, "TIOCGPTN: {}", std::io::Error::last_os_error());
        n
    }

    /// Sets the window size on the master.
    pub fn set_size(&self, rows: u16, cols: u16) {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize.
        let r = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        assert_eq!(r, 0, "TIOCSWINSZ: {}", std::io::Error::last_os_error());
    }

    /// Writes `s` to the master (that is, types it into the terminal).
    pub fn send(&mut self, s: &str) {
        self.master
            .write_all(s.as_bytes())
            .expect("write to pty master");
    }

    /// Reads whatever arrives within `wait`; returns false at end of file
    /// (the slave side was closed by everybody).
    fn read_some(&mut self, wait: Duration) -> bool {
        if self.eof {
            return false;
        }
        let mut p = libc::pollfd {
            fd: self.master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = wait.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, ms) };
        if r <= 0 {
            return true;
        }
        let mut buf = [0u8; 4096];
        match self.master.read(&mut buf) {
            Ok(0) => self.eof = true,
            Ok(n) => {
                self.raw.extend_from_slice(&buf[..n]);
                self.seen = String::from_utf8_lossy(&self.raw).replace("\r\n", "\n");
            }
            // EIO: every slave fd is closed.
            Err(_) => self.eof = true,
        }
        !self.eof
    }

    /// Reads until `pred(seen)` holds or `timeout` passes; returns `pred`'s
    /// final verdict.
    pub fn read_until(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if pred(&self.seen) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            if !self.read_some((deadline - now).min(Duration::from_millis(100))) {
                return pred(&self.seen);
            }
        }
    }

    /// Reads until `needle` was seen; panics with what was seen otherwise.
    #[track_caller]
    pub fn expect(&mut self, needle: &str, timeout: Duration) {
        let ok = self.read_until(timeout, |s| s.contains(needle));
        assert!(
            ok,
            "{needle:?} never arrived on the terminal within {timeout:?} (eof: {}); seen:\n{}",
            self.eof, self.seen
        );
    }

    /// Reads until end of file (all slave fds closed) or `timeout`; returns
    /// whether end of file was reached.
    pub fn read_to_eof(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.eof && Instant::now() < deadline {
            self.read_some(Duration::from_millis(100));
        }
        self.eof
    }
}
