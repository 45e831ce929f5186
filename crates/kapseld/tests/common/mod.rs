//! A kapseld per test, driven by the real docker CLI or raw HTTP.
// Shared by several test binaries, each using part of it.
#![allow(dead_code)]

pub mod pty;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const DOCKER: &str = "/usr/local/bin/docker";
/// Debian's docker 20.10 client (API 1.41), taken out of its .deb by install-deps.sh.
pub const DOCKER_20_10: &str = "/opt/kapsel-test/docker-20.10/docker";

/// A kapseld with its own data root, exec root and socket, stopped (by PID) on drop.
pub struct Daemon {
    pub dir: PathBuf,
    child: Child,
    /// Flags beyond the data root, exec root and socket.
    flags: Vec<String>,
    /// The docker CLI the helpers drive: [`DOCKER`] unless [`Daemon::use_client`] said.
    client: &'static str,
}

impl Daemon {
    pub fn start(name: &str) -> Daemon {
        Daemon::start_with(name, &[])
    }

    /// A daemon started with extra `flags`.
    pub fn start_with(name: &str, flags: &[&str]) -> Daemon {
        let dir = std::env::temp_dir().join(format!("kapseld-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
        let child = spawn_kapseld(&dir, &flags);
        Daemon {
            dir,
            child,
            flags,
            client: DOCKER,
        }
    }

    /// SIGKILL (by PID), `down` without a daemon, and a new kapseld on the same data,
    /// exec root and socket: what a crash and a restart of the daemon look like to its
    /// containers.
    pub fn crash_and_restart(&mut self, down: Duration) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(down);
        self.child = spawn_kapseld(&self.dir, &self.flags);
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("api.sock")
    }

    /// Makes every helper drive `client` (a docker CLI binary) from now on.
    pub fn use_client(&mut self, client: &'static str) {
        self.client = client;
    }

    /// `docker -H <this daemon>`, ready for its arguments.
    pub fn docker_command(&self) -> Command {
        let mut cmd = Command::new(self.client);
        cmd.arg("-H")
            .arg(format!("unix://{}", self.socket().display()));
        cmd
    }

    pub fn docker(&self, args: &[&str]) -> (bool, String) {
        let out = self
            .docker_command()
            .args(args)
            .output()
            .expect("run the docker CLI");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }

    /// Sends one raw HTTP/1.1 request on a fresh connection (closed by the server after
    /// the answer); `body` is its content type and bytes, written from a thread (the
    /// server may answer, and close, before it has read all of it). Returns the
    /// connection, to read the answer from.
    pub fn send(&self, method: &str, path: &str, body: Option<(&str, &[u8])>) -> UnixStream {
        let mut s = UnixStream::connect(self.socket()).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n"
        )
        .unwrap();
        if let Some((content_type, body)) = body {
            write!(
                s,
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
                body.len()
            )
            .unwrap();
        }
        s.write_all(b"\r\n").unwrap();
        if let Some((_, body)) = body {
            let mut writer = s.try_clone().unwrap();
            let body = body.to_vec();
            std::thread::spawn(move || writer.write_all(&body));
        }
        s
    }

    /// One raw HTTP/1.1 request; returns the status line, headers and body as bytes.
    pub fn http_bytes(&self, method: &str, path: &str, body: Option<(&str, &[u8])>) -> Vec<u8> {
        let mut out = Vec::new();
        let mut conn = self.send(method, path, body);
        // A server that closed with part of the request unread resets the connection
        // after its answer: what was read until then is the answer.
        if let Err(e) = conn.read_to_end(&mut out) {
            assert!(!out.is_empty(), "{method} {path}: {e}");
        }
        out
    }

    /// One raw HTTP/1.1 request; returns the status line, headers and body as text.
    pub fn http(&self, method: &str, path: &str) -> String {
        String::from_utf8_lossy(&self.http_bytes(method, path, None)).into_owned()
    }
}

impl Daemon {
    /// Removes every container of this daemon (they outlive it otherwise).
    pub fn remove_all_containers(&self) {
        let list = self.http("GET", "/containers/json?all=1");
        let body = list.split("\r\n\r\n").nth(1).unwrap_or("[]");
        let body = body.trim_start_matches(|c: char| c.is_ascii_hexdigit() || c.is_whitespace());
        for id in body.split("\"Id\":\"").skip(1) {
            let id: String = id.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
            self.http("DELETE", &format!("/containers/{id}?force=1"));
        }
    }

    /// SIGTERM (to our child only, by PID), then waits for it to exit.
    pub fn stop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.remove_all_containers();
        }
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Seconds since the epoch, as `docker events --since/--until` take them.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// `docker events` from `since` until now with `--filter`s, as "ACTION NAME" lines.
#[track_caller]
pub fn events_since(d: &Daemon, since: f64, filters: &[&str]) -> Vec<String> {
    let (since, until) = (format!("{since:.3}"), format!("{:.3}", unix_now()));
    let mut args = vec!["events", "--since", &since, "--until", &until];
    for f in filters {
        args.extend(["--filter", f]);
    }
    args.extend(["--format", "{{.Action}} {{.Actor.Attributes.name}}"]);
    ok(d, &args).lines().map(String::from).collect()
}

/// `docker events --filter …` followed live (past events can leave the daemon's bounded
/// log), as "ACTION NAME" lines; the CLI is killed (by PID) on drop.
pub struct EventFollower {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl EventFollower {
    pub fn start(d: &Daemon, filters: &[&str]) -> EventFollower {
        let mut cmd = d.docker_command();
        cmd.arg("events");
        for f in filters {
            cmd.args(["--filter", f]);
        }
        let mut child = cmd
            .args(["--format", "{{.Action}} {{.Actor.Attributes.name}}"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(out).map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        EventFollower {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (20 s at the most) until `line` has come; returns every line so far.
    #[track_caller]
    pub fn wait_for(&mut self, line: &str) -> &[String] {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.seen.iter().any(|l| l == line) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(_) => panic!("no event {line:?}; seen {:?}", self.seen),
            }
        }
        &self.seen
    }
}

impl Drop for EventFollower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn have_docker_cli() -> bool {
    Path::new(DOCKER).exists()
}

/// A daemon, or `None` (after saying so) without a docker CLI.
pub fn daemon_with_cli(name: &str) -> Option<Daemon> {
    daemon_with_cli_and(name, &[])
}

/// A daemon started with extra `flags`, or `None` (after saying so) without a docker CLI.
pub fn daemon_with_cli_and(name: &str, flags: &[&str]) -> Option<Daemon> {
    if !have_docker_cli() {
        eprintln!("SKIP: no docker CLI at {DOCKER}");
        return None;
    }
    Some(Daemon::start_with(name, flags))
}

/// A daemon with `busybox:latest` loaded, or `None` (after saying so) without a docker CLI.
pub fn daemon_with_busybox(name: &str) -> Option<Daemon> {
    daemon_with_busybox_and(name, &[])
}

/// A daemon started with extra `flags` and `busybox:latest` loaded.
pub fn daemon_with_busybox_and(name: &str, flags: &[&str]) -> Option<Daemon> {
    let d = daemon_with_cli_and(name, flags)?;
    let archive = busybox_archive(&d.dir);
    ok(&d, &["load", "-i", &archive.to_string_lossy()]);
    Some(d)
}

/// `docker args…`, which must succeed; returns its output (stdout, then stderr).
#[track_caller]
pub fn ok(d: &Daemon, args: &[&str]) -> String {
    let (ok, out) = d.docker(args);
    assert!(ok, "docker {args:?}: {out}");
    out
}

/// `docker args…`, which must fail; returns its output (stdout, then stderr).
#[track_caller]
pub fn fails(d: &Daemon, args: &[&str]) -> String {
    let (ok, out) = d.docker(args);
    assert!(!ok, "docker {args:?} should fail: {out}");
    out
}

/// `docker run ARGS… sh -c SCRIPT`, which must succeed (`args` are the options and the
/// image); returns its output.
#[track_caller]
pub fn run_sh(d: &Daemon, args: &[&str], script: &str) -> String {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    all.extend(["sh", "-c", script]);
    ok(d, &all)
}

/// `docker run -d --name NAME busybox sleep 1000`: a container that stays up until it is
/// stopped. Returns the output (its ID).
#[track_caller]
pub fn run_sleeping(d: &Daemon, name: &str) -> String {
    ok(
        d,
        &["run", "-d", "--name", name, "busybox", "sleep", "1000"],
    )
}

/// `docker inspect -f FORMAT NAME`, which must succeed; returns its output trimmed.
#[track_caller]
pub fn inspect(d: &Daemon, format: &str, name: &str) -> String {
    ok(d, &["inspect", "-f", format, name]).trim().to_string()
}

/// Runs the docker CLI with `stdin` fed to it (or /dev/null); returns (exit code, stdout
/// as bytes, stderr).
pub fn docker_bytes(d: &Daemon, args: &[&str], stdin: Option<&[u8]>) -> (i32, Vec<u8>, String) {
    let mut child = d
        .docker_command()
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Written from a thread: the CLI may answer before it has read all of its input.
    let writer = stdin.map(|data| {
        let mut input = child.stdin.take().unwrap();
        let data = data.to_vec();
        std::thread::spawn(move || {
            let _ = input.write_all(&data);
        })
    });
    let out = child.wait_with_output().unwrap();
    if let Some(writer) = writer {
        writer.join().unwrap();
    }
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs the docker CLI with `stdin` fed to it (or /dev/null); returns (exit code, stdout,
/// stderr).
pub fn docker_full(d: &Daemon, args: &[&str], stdin: Option<&[u8]>) -> (i32, String, String) {
    let (code, out, err) = docker_bytes(d, args, stdin);
    (code, String::from_utf8_lossy(&out).into_owned(), err)
}

/// Runs the docker-py script `tests/py/<script>` against the daemon, which must succeed;
/// returns its output, or `None` (after saying so) without python3-docker.
#[track_caller]
pub fn docker_py(d: &Daemon, script: &str) -> Option<String> {
    let check = Command::new("python3")
        .args(["-c", "import docker"])
        .status()
        .unwrap();
    if !check.success() {
        eprintln!("SKIP: python3-docker is not installed (scripts/install-deps.sh installs it)");
        return None;
    }
    let out = Command::new("python3")
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/py")
                .join(script),
        )
        .arg(format!("unix://{}", d.socket().display()))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script}: {text}");
    Some(text)
}

/// Polls `check` until it holds, for 20 s at the most.
#[track_caller]
pub fn wait_for(check: impl FnMut() -> bool, what: &str) {
    wait_for_within(Duration::from_secs(20), check, what);
}

/// Polls `check` until it holds, for `limit` at the most.
#[track_caller]
pub fn wait_for_within(limit: Duration, mut check: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A docker-archive of a busybox image (`busybox:latest`) made from the host's static
/// busybox with a link per applet, /etc/passwd and /etc/group; returns its path.
pub fn busybox_archive(dir: &Path) -> PathBuf {
    let path = dir.join("busybox.tar");
    write_docker_archive(&path, "busybox:latest", [busybox_layer()]);
    path
}

/// The layer of the busybox image: the host's static busybox with a link per applet,
/// /etc/passwd and /etc/group.
pub fn busybox_layer() -> Vec<u8> {
    let busybox =
        std::fs::read("/bin/busybox").expect("busybox-static is installed (install-deps.sh)");
    let applets = Command::new("/bin/busybox")
        .arg("--list-full")
        .output()
        .unwrap();
    let mut layer = tar::Builder::new(Vec::new());
    let add_dir = |layer: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32| {
        let mut h = header();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_size(0);
        layer.append_data(&mut h, path, std::io::empty()).unwrap();
    };
    for d in [
        "bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "root", "home", "var", "proc", "sys",
        "dev",
    ] {
        add_dir(&mut layer, d, 0o755);
    }
    add_dir(&mut layer, "tmp", 0o1777);
    append_file(&mut layer, "bin/busybox", 0o755, &busybox);
    append_file(
        &mut layer,
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
    );
    append_file(
        &mut layer,
        "etc/group",
        0o644,
        b"root:x:0:\nnogroup:x:65534:\n",
    );
    for applet in String::from_utf8_lossy(&applets.stdout).lines() {
        let path = applet.trim_start_matches('/');
        if path == "bin/busybox" || path.is_empty() {
            continue;
        }
        let mut h = header();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        layer.append_link(&mut h, path, "/bin/busybox").unwrap();
    }
    layer.into_inner().unwrap()
}

/// A regular file, root's, in a tar being built.
pub fn append_file<W: Write>(tar: &mut tar::Builder<W>, path: &str, mode: u32, data: &[u8]) {
    let mut h = header();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(mode);
    h.set_size(data.len() as u64);
    tar.append_data(&mut h, path, data).unwrap();
}

/// Writes a docker-archive at `path` of one image tagged `repo_tag` (`sh` as its command)
/// with `layers` (uncompressed tars), bottom first; each layer is made only when it is
/// written, so large images need not be in memory at once.
pub fn write_docker_archive(
    path: &Path,
    repo_tag: &str,
    layers: impl IntoIterator<Item = Vec<u8>>,
) {
    let mut archive = tar::Builder::new(std::io::BufWriter::new(
        std::fs::File::create(path).unwrap(),
    ));
    let mut diff_ids = Vec::new();
    for layer in layers {
        let diff_id = kapsel_image::digest::Digest::of_bytes(&layer);
        append_file(
            &mut archive,
            &format!("blobs/sha256/{}", diff_id.hex()),
            0o644,
            &layer,
        );
        diff_ids.push(diff_id);
    }
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids.iter().map(ToString::to_string).collect::<Vec<_>>()},
    })
    .to_string();
    let config_id = kapsel_image::digest::Digest::of_bytes(config.as_bytes());
    let manifest = serde_json::json!([{
        "Config": format!("blobs/sha256/{}", config_id.hex()),
        "RepoTags": [repo_tag],
        "Layers": diff_ids.iter().map(|d| format!("blobs/sha256/{}", d.hex())).collect::<Vec<_>>(),
    }])
    .to_string();
    append_file(
        &mut archive,
        &format!("blobs/sha256/{}", config_id.hex()),
        0o644,
        config.as_bytes(),
    );
    append_file(&mut archive, "manifest.json", 0o644, manifest.as_bytes());
    archive.into_inner().unwrap().flush().unwrap();
}

/// A ustar header owned by root with a fixed mtime (the tar crate leaves them empty).
fn header() -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h
}

/// Starts kapseld on `dir` and waits until it answers on its socket.
fn spawn_kapseld(dir: &Path, flags: &[String]) -> Child {
    let socket = dir.join("api.sock");
    let child = Command::new(env!("CARGO_BIN_EXE_kapseld"))
        .args(["--data-root", &dir.join("data").to_string_lossy()])
        .args(["--exec-root", &dir.join("run").to_string_lossy()])
        .args(["-H", &format!("unix://{}", socket.display())])
        .args(flags)
        .stderr(Stdio::null())
        .spawn()
        .expect("start kapseld");
    let deadline = Instant::now() + Duration::from_secs(10);
    // A socket file left by a killed daemon exists before the new one listens.
    while UnixStream::connect(&socket).is_err() {
        assert!(Instant::now() < deadline, "kapseld did not start listening");
        std::thread::sleep(Duration::from_millis(10));
    }
    child
}

/// A docker-compose 1.29 project directory with `compose_yaml`, or `None` (the test
/// skips) when docker-compose is not installed.
pub fn compose_project(d: &Daemon, compose_yaml: &str) -> Option<PathBuf> {
    if Command::new("docker-compose")
        .arg("version")
        .output()
        .is_err()
    {
        eprintln!("SKIP: docker-compose is not installed (scripts/install-deps.sh installs it)");
        return None;
    }
    let project = d.dir.join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(project.join("docker-compose.yml"), compose_yaml).unwrap();
    Some(project)
}

/// `docker-compose -p kapseltest ARGS…` in `project` against this daemon, which must
/// succeed; returns its output.
#[track_caller]
pub fn compose(d: &Daemon, project: &Path, args: &[&str]) -> String {
    let out = Command::new("docker-compose")
        .current_dir(project)
        .env("DOCKER_HOST", format!("unix://{}", d.socket().display()))
        .args(["-p", "kapseltest"])
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "docker-compose {args:?}: {text}");
    text
}
