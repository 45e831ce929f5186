//! A private kapseld per test, driven by the `kapsel` binary (and, for comparison, by
//! the real docker CLI when it is installed).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const DOCKER: &str = "/usr/local/bin/docker";

/// What a CLI invocation left behind.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    /// stdout as bytes (archives), and as text.
    pub raw: Vec<u8>,
    pub stdout: String,
    pub stderr: String,
}

/// The kapseld built beside this test (target/debug/kapseld).
fn kapseld_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/debug/deps/<test> → target/debug/kapseld
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("kapseld");
    assert!(
        bin.exists(),
        "build kapseld first (cargo build -p kapseld): {} is missing",
        bin.display()
    );
    bin
}

/// A kapseld with its own data root, exec root and socket, stopped (by PID) on drop.
pub struct Daemon {
    pub dir: PathBuf,
    child: Child,
}

impl Daemon {
    pub fn start(name: &str) -> Daemon {
        let dir =
            std::env::temp_dir().join(format!("kapsel-cli-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new(kapseld_binary())
            .args(["--data-root", &dir.join("data").to_string_lossy()])
            .args(["--exec-root", &dir.join("run").to_string_lossy()])
            .args(["-H", &format!("unix://{}", dir.join("api.sock").display())])
            .stderr(Stdio::null())
            .spawn()
            .expect("start kapseld");
        let daemon = Daemon { dir, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(daemon.socket()).is_err() {
            assert!(Instant::now() < deadline, "kapseld did not start listening");
            std::thread::sleep(Duration::from_millis(10));
        }
        daemon
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("api.sock")
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// Runs `kapsel -H <this daemon> args…`, with `stdin` piped in (or /dev/null).
    pub fn kapsel_in(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        run(
            Command::new(env!("CARGO_BIN_EXE_kapsel"))
                .arg("-H")
                .arg(self.host())
                .args(args),
            stdin,
        )
    }

    pub fn kapsel(&self, args: &[&str]) -> Output {
        self.kapsel_in(args, None)
    }

    /// `kapsel args…`, which must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kapsel(args);
        assert_eq!(out.code, 0, "kapsel {args:?} failed: {out:?}");
        out.stdout
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        run(
            Command::new(DOCKER).arg("-H").arg(self.host()).args(args),
            None,
        )
    }

    /// Whether the daemon serves the container endpoints (they are landing separately).
    pub fn serves_containers(&self) -> bool {
        let r = self.http("GET", "/v1.47/containers/json");
        r.starts_with("HTTP/1.1 200")
    }

    /// One raw HTTP/1.1 request; returns the status line, headers and body as text.
    pub fn http(&self, method: &str, path: &str) -> String {
        let mut s = UnixStream::connect(self.socket()).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }
}

fn run(cmd: &mut Command, stdin: Option<&[u8]>) -> Output {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn the CLI");
    if let Some(data) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(data).unwrap();
    }
    let out = wait_with_timeout(child, Duration::from_secs(60));
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        raw: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Waits for the CLI, killing it (by PID, it is our child) if it hangs.
fn wait_with_timeout(mut child: Child, limit: Duration) -> std::process::Output {
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("CLI hung; output so far: {out:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Drop for Daemon {
    /// Removes the containers first: their shims outlive the daemon by design, and a
    /// failed assertion must not leave them (and their mounts) behind.
    fn drop(&mut self) {
        if self.serves_containers() {
            let ids = self.kapsel(&["ps", "-aq", "--no-trunc"]).stdout;
            for id in ids.lines().filter(|l| !l.is_empty()) {
                let _ = self.kapsel(&["rm", "-f", id]);
            }
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A daemon with `busybox:latest` loaded, or `None` after saying why not.
pub fn daemon_with_busybox(name: &str) -> Option<Daemon> {
    let d = Daemon::start(name);
    if !d.serves_containers() {
        eprintln!("SKIP: this kapseld does not serve /containers yet");
        return None;
    }
    let Some(archive) = busybox_archive(&d.dir) else {
        eprintln!("SKIP: no /bin/busybox (install busybox-static)");
        return None;
    };
    assert_eq!(
        d.ok(&["load", "-i", &archive.to_string_lossy()]),
        "Loaded image: busybox:latest\n"
    );
    Some(d)
}

/// Asserts that kapsel and docker print the same (stdout, stderr, status) for `args`
/// (nothing to compare without the docker CLI). Where docker names itself in a usage
/// error ("docker: …", "Run 'docker run --help'"), kapsel names itself.
pub fn same_as_docker(d: &Daemon, args: &[&str]) {
    if !have_docker_cli() {
        return;
    }
    let ours = d.kapsel(args);
    let theirs = d.docker(args);
    let theirs_err = theirs
        .stderr
        .replace("Run 'docker ", "Run 'kapsel ")
        .lines()
        .map(|l| match l.strip_prefix("docker: ") {
            Some(rest) => format!("kapsel: {rest}\n"),
            None => format!("{l}\n"),
        })
        .collect::<String>();
    assert_eq!(
        (ours.code, &ours.stdout, &ours.stderr),
        (theirs.code, &theirs.stdout, &theirs_err),
        "kapsel and docker differ for {args:?}"
    );
}

pub fn have_docker_cli() -> bool {
    Path::new(DOCKER).exists()
}

/// A ustar header with every numeric field set (a zeroed uid field is not a number).
fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

fn add_file(tar: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, data: &[u8]) {
    let mut h = header(tar::EntryType::Regular, mode, data.len() as u64);
    tar.append_data(&mut h, path, data).unwrap();
}

fn add_dir(tar: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32) {
    let mut h = header(tar::EntryType::Directory, mode, 0);
    tar.append_data(&mut h, path, std::io::empty()).unwrap();
}

/// A docker-archive of one image `tag` made of `layer` and a config with `config`.
fn archive(dir: &Path, file: &str, tag: &str, layer: &[u8], config: serde_json::Value) -> PathBuf {
    use kapsel_image::digest::Digest;
    let diff_id = Digest::of_bytes(layer);
    let mut config = config;
    config["rootfs"] = serde_json::json!({"type": "layers", "diff_ids": [diff_id.to_string()]});
    let config = config.to_string();
    let config_id = Digest::of_bytes(config.as_bytes());
    let manifest = serde_json::json!([{
        "Config": format!("blobs/sha256/{}", config_id.hex()),
        "RepoTags": [tag],
        "Layers": [format!("blobs/sha256/{}", diff_id.hex())],
    }])
    .to_string();
    let mut tar = tar::Builder::new(Vec::new());
    add_file(
        &mut tar,
        &format!("blobs/sha256/{}", diff_id.hex()),
        0o644,
        layer,
    );
    add_file(
        &mut tar,
        &format!("blobs/sha256/{}", config_id.hex()),
        0o644,
        config.as_bytes(),
    );
    add_file(&mut tar, "manifest.json", 0o644, manifest.as_bytes());
    let path = dir.join(file);
    std::fs::write(&path, tar.into_inner().unwrap()).unwrap();
    path
}

/// `hello-test:1`: the built-in hello layer, as kapseld's own image tests build it.
pub fn hello_archive(dir: &Path) -> PathBuf {
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": "2024-02-29T12:30:15Z",
        "config": {"Cmd": ["/hello"], "Labels": {"test": "yes"}},
    });
    archive(
        dir,
        "hello.tar",
        "hello-test:1",
        &kapsel_image::hello::layer(),
        config,
    )
}

/// `busybox:latest` from Debian's static busybox, made by the quick start's own
/// `scripts/make-busybox-image.sh` (None when busybox is not installed).
pub fn busybox_archive(dir: &Path) -> Option<PathBuf> {
    if !Path::new("/bin/busybox").exists() {
        return None;
    }
    let path = dir.join("busybox.tar");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/make-busybox-image.sh");
    let status = Command::new(script)
        .arg(&path)
        .status()
        .expect("run make-busybox-image.sh");
    assert!(status.success(), "make-busybox-image.sh failed");
    Some(path)
}
