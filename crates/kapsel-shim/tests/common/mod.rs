//! Shared helpers for the kapsel-shim integration tests: real containers (busybox
//! bundles run by kapsel-runtime), a shim started the way kapseld starts it (attach
//! socket on fd 3, readiness pipe on fd 4, stdio /dev/null), attach clients, and readers
//! for the files the shim writes.
//!
//! Waits have generous time limits that only turn a hang into a failure; no test asserts
//! on how long anything takes.

#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The limit on any one wait.
pub const LIMIT: Duration = Duration::from_secs(60);

/// target/<profile>/kapsel-runtime, next to the directory of this test executable (or
/// the debug build's, for a release test run).
pub fn runtime() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let candidates = [
        profile_dir.join("kapsel-runtime"),
        profile_dir
            .parent()
            .map(|t| t.join("debug/kapsel-runtime"))
            .unwrap_or_default(),
    ];
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .expect("build kapsel-runtime first (cargo build -p kapsel-runtime)")
}

/// The shim under test (KAPSEL_SHIM_BIN overrides, e.g. to measure a release build).
pub fn shim_bin() -> PathBuf {
    match std::env::var_os("KAPSEL_SHIM_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_kapsel-shim")),
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Polls `cond` until it holds; panics after [`LIMIT`].
pub fn wait_for<T>(what: &str, mut cond: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + LIMIT;
    loop {
        if let Some(v) = cond() {
            return v;
        }
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A test's private directory (removed when dropped) and its runtime root.
pub struct Env {
    pub dir: PathBuf,
    pub root: PathBuf,
    name: String,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl Env {
    pub fn new(name: &str) -> Env {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("kapsel-shim-{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let root = dir.join("root");
        fs::create_dir_all(&root).unwrap();
        Env {
            dir,
            root,
            name: format!("{name}-{}-{n}", std::process::id()),
        }
    }

    /// A container id unique to this test.
    pub fn id(&self, what: &str) -> String {
        format!("shimtest-{}-{what}", self.name)
    }

    /// A busybox bundle whose process runs `args` (no terminal).
    pub fn bundle(&self, name: &str, args: &[&str]) -> PathBuf {
        let b = self.dir.join(name);
        let out = Command::new(workspace().join("scripts/make-busybox-bundle.sh"))
            .arg(&b)
            .args(args)
            .env("KAPSEL_RUNTIME", runtime())
            .output()
            .expect("run make-busybox-bundle.sh");
        assert!(
            out.status.success(),
            "make-busybox-bundle.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        b
    }

    /// Changes config.json's process.
    pub fn edit_process(&self, bundle: &Path, edit: impl FnOnce(&mut Value)) {
        let path = bundle.join("config.json");
        let mut c: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        edit(&mut c["process"]);
        fs::write(&path, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
    }

    /// A shim directory (what kapseld makes per container or exec).
    pub fn shim_dir(&self, name: &str) -> PathBuf {
        let d = self.dir.join(name);
        fs::create_dir_all(&d).unwrap();
        d
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// How a shim is to be started.
pub struct ShimSpec {
    pub id: String,
    pub dir: PathBuf,
    pub root: PathBuf,
    /// `--bundle` or `--exec-process`.
    pub target: Target,
    pub flags: Vec<String>,
    /// Clients to connect before the shim is spawned.
    pub early_clients: usize,
    /// Start it through `sh -c '"$@" & wait'`, so its parent can be killed.
    pub through_sh: bool,
}

pub enum Target {
    Bundle(PathBuf),
    Exec(PathBuf),
}

impl ShimSpec {
    pub fn container(env: &Env, name: &str, bundle: &Path) -> ShimSpec {
        ShimSpec {
            id: env.id(name),
            dir: env.shim_dir(&format!("shim-{name}")),
            root: env.root.clone(),
            target: Target::Bundle(bundle.to_path_buf()),
            flags: Vec::new(),
            early_clients: 0,
            through_sh: false,
        }
    }

    pub fn flags(mut self, flags: &[&str]) -> Self {
        self.flags.extend(flags.iter().map(|s| s.to_string()));
        self
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("ctr.log")
    }

    pub fn spawn(self) -> Shim {
        let sock_path = self.dir.join("attach.sock");
        let listener = UnixListener::bind(&sock_path).expect("bind the attach socket");
        let early: Vec<UnixStream> = (0..self.early_clients)
            .map(|_| UnixStream::connect(&sock_path).expect("connect before spawn"))
            .collect();
        let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let mut args: Vec<std::ffi::OsString> = vec![
            "--runtime".into(),
            runtime().into(),
            "--runtime-root".into(),
            self.root.clone().into(),
            "--id".into(),
            self.id.clone().into(),
            "--dir".into(),
            self.dir.clone().into(),
        ];
        match &self.target {
            Target::Bundle(b) => args.extend(["--bundle".into(), b.into()]),
            Target::Exec(p) => args.extend(["--exec-process".into(), p.into()]),
        }
        let mut has_log_path = false;
        for f in &self.flags {
            has_log_path |= f == "--log-path";
            args.push(f.into());
        }
        if !has_log_path {
            args.extend(["--log-path".into(), self.log_path().into()]);
        }
        let mut cmd = if self.through_sh {
            let mut c = Command::new("/bin/sh");
            // The sh closes its own copies of fds 3 and 4 once the shim has them.
            c.args(["-c", "\"$@\" & exec 3>&- 4>&-; wait", "sh"])
                .arg(shim_bin());
            c
        } else {
            Command::new(shim_bin())
        };
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let (l, w) = (listener.as_raw_fd(), ready_w.as_raw_fd());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // Above 10 first, so that neither dup2 clobbers the other's source.
                let l = libc::fcntl(l, libc::F_DUPFD_CLOEXEC, 10);
                let w = libc::fcntl(w, libc::F_DUPFD_CLOEXEC, 10);
                if l < 0 || w < 0 || libc::dup2(l, 3) < 0 || libc::dup2(w, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn kapsel-shim");
        drop(cmd);
        drop(ready_w);
        drop(listener);
        let ready = read_line_with_limit(ready_r);
        let pid = serde_json::from_str::<Value>(&ready)
            .ok()
            .and_then(|v| v["pid"].as_i64())
            .map(|p| p as i32);
        Shim {
            child: Some(child),
            spec: self,
            ready,
            pid,
            early,
        }
    }
}

/// Reads the readiness pipe to EOF (the shim closes it after its report).
fn read_line_with_limit(fd: OwnedFd) -> String {
    let until = Instant::now() + LIMIT;
    let mut f = fs::File::from(fd);
    let mut text = Vec::new();
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let mut pfd = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(&f),
            nix::poll::PollFlags::POLLIN,
        )];
        let n = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::try_from(left).unwrap())
            .expect("poll the readiness pipe");
        assert!(
            n > 0,
            "the readiness pipe did not reach EOF within {LIMIT:?}: {text:?}"
        );
        let mut buf = [0u8; 512];
        match f.read(&mut buf).expect("read the readiness pipe") {
            0 => return String::from_utf8(text).unwrap(),
            n => text.extend_from_slice(&buf[..n]),
        }
    }
}

pub struct Shim {
    /// The shim process (or the sh that started it), unless already waited for.
    pub child: Option<Child>,
    pub spec: ShimSpec,
    /// The readiness report as written.
    pub ready: String,
    /// The container's (or exec'd) pid from the report.
    pub pid: Option<i32>,
    /// Clients connected before the spawn.
    pub early: Vec<UnixStream>,
}

impl Shim {
    pub fn connect(&self) -> UnixStream {
        let s = UnixStream::connect(self.spec.dir.join("attach.sock")).expect("connect");
        s.set_read_timeout(Some(LIMIT)).unwrap();
        s
    }

    /// Waits for the shim to exit (its exit status) and returns exit.json.
    pub fn wait(&mut self) -> (i32, Value) {
        let mut child = self.child.take().expect("not waited for yet");
        let until = Instant::now() + LIMIT;
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < until, "the shim did not exit");
            std::thread::sleep(Duration::from_millis(20));
        };
        (status.code().unwrap_or(-1), self.exit_json())
    }

    /// exit.json, once it exists.
    pub fn exit_json(&self) -> Value {
        let path = self.spec.dir.join("exit.json");
        let text = wait_for("exit.json", || fs::read_to_string(&path).ok());
        serde_json::from_str(&text).expect("exit.json is JSON")
    }

    /// The live log file's entries.
    pub fn log_entries(&self) -> Vec<Value> {
        entries(&fs::read(self.spec.log_path()).unwrap_or_default())
    }

    pub fn log_text(&self, stream: &str) -> String {
        self.log_entries()
            .iter()
            .filter(|e| e["stream"] == stream)
            .map(|e| e["log"].as_str().unwrap().to_owned())
            .collect()
    }

    pub fn kill_process(&self, signal: i32) {
        if let Some(pid) = self.pid {
            // SAFETY: kill(2) on the pid this test's container runs as.
            unsafe { libc::kill(pid, signal) };
        }
    }
}

impl Drop for Shim {
    fn drop(&mut self) {
        if !self.spec.dir.join("exit.json").exists() {
            // Still running: the test failed midway. Kill its process (by pid) so the
            // shim ends.
            self.kill_process(libc::SIGKILL);
        }
        if let Some(mut child) = self.child.take() {
            let until = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if matches!(self.spec.target, Target::Bundle(_)) {
            let _ = Command::new(runtime())
                .arg("--root")
                .arg(&self.spec.root)
                .args(["delete", "--force", &self.spec.id])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Parses json-file lines.
pub fn entries(text: &[u8]) -> Vec<Value> {
    text.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("a log line is JSON"))
        .collect()
}

/// Sends one client frame.
pub fn send_frame(s: &mut UnixStream, kind: u8, payload: &[u8]) {
    let mut f = vec![kind, 0, 0, 0];
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    s.write_all(&f).unwrap();
}

/// Reads frames until EOF: (stream, payload) in order.
pub fn read_frames(s: &mut UnixStream) -> Vec<(u8, Vec<u8>)> {
    s.set_read_timeout(Some(LIMIT)).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).expect("read the attach stream");
    let mut frames = Vec::new();
    let mut rest = &all[..];
    while !rest.is_empty() {
        assert!(rest.len() >= 8, "a truncated frame header");
        let len = u32::from_be_bytes(rest[4..8].try_into().unwrap()) as usize;
        assert_eq!(&rest[1..4], &[0, 0, 0], "header padding");
        frames.push((rest[0], rest[8..8 + len].to_vec()));
        rest = &rest[8 + len..];
    }
    frames
}

/// The payloads of one stream, joined.
pub fn stream_text(frames: &[(u8, Vec<u8>)], stream: u8) -> String {
    let bytes: Vec<u8> = frames
        .iter()
        .filter(|(s, _)| *s == stream)
        .flat_map(|(_, d)| d.iter().copied())
        .collect();
    String::from_utf8(bytes).unwrap()
}
