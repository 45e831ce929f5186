//! kapseld answers the real docker CLI and speaks the Engine API's version rules.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DOCKER: &str = "/usr/local/bin/docker";

/// A kapseld with its own data root, exec root and socket, stopped (by PID) on drop.
struct Daemon {
    dir: PathBuf,
    child: Child,
}

impl Daemon {
    fn start(name: &str) -> Daemon {
        let dir = std::env::temp_dir().join(format!("kapseld-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_kapseld"))
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

    fn socket(&self) -> PathBuf {
        self.dir.join("api.sock")
    }

    fn docker(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(DOCKER)
            .arg("-H")
            .arg(format!("unix://{}", self.socket().display()))
            .args(args)
            .output()
            .expect("run the docker CLI");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }

    /// One raw HTTP/1.1 request; returns the status line, headers and body as text.
    fn http(&self, method: &str, path: &str) -> String {
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

impl Daemon {
    /// SIGTERM (to our child only, by PID), then waits for it to exit.
    fn stop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn have_docker_cli() -> bool {
    Path::new(DOCKER).exists()
}

#[test]
fn the_docker_cli_sees_a_kapsel_server() {
    if !have_docker_cli() {
        eprintln!("SKIP: no docker CLI at {DOCKER}");
        return;
    }
    let d = Daemon::start("cli");
    let (ok, version) = d.docker(&["version"]);
    assert!(ok, "{version}");
    assert!(version.contains("Server: kapsel"), "{version}");
    assert!(version.contains("1.47"), "{version}");
    let (ok, info) = d.docker(&["info"]);
    assert!(ok, "{info}");
    assert!(info.contains("Cgroup Driver: cgroupfs"), "{info}");
    assert!(
        info.contains(&d.dir.join("data").display().to_string()),
        "{info}"
    );
    let (ok, format) = d.docker(&["version", "--format", "{{.Server.APIVersion}}"]);
    assert!(ok && format.trim() == "1.47", "{format}");
}

#[test]
fn ping_answers_get_and_head_with_the_negotiation_headers() {
    let d = Daemon::start("ping");
    for method in ["GET", "HEAD"] {
        let r = d.http(method, "/_ping");
        assert!(r.starts_with("HTTP/1.1 200"), "{method}: {r}");
        let lower = r.to_ascii_lowercase();
        assert!(lower.contains("api-version: 1.47"), "{method}: {r}");
        assert!(lower.contains("ostype: linux"), "{method}: {r}");
    }
    assert!(d.http("GET", "/_ping").ends_with("OK"));
}

#[test]
fn api_versions_out_of_range_are_refused_as_docker_does() {
    let d = Daemon::start("versions");
    let too_new = d.http("GET", "/v1.99/version");
    assert!(too_new.starts_with("HTTP/1.1 400"), "{too_new}");
    assert!(
        too_new.contains("client version 1.99 is too new. Maximum supported API version is 1.47"),
        "{too_new}"
    );
    let too_old = d.http("GET", "/v1.12/version");
    assert!(too_old.starts_with("HTTP/1.1 400"), "{too_old}");
    assert!(
        too_old.contains("is too old. Minimum supported API version is 1.24"),
        "{too_old}"
    );
    for path in ["/v1.24/info", "/v1.47/version", "/version"] {
        assert!(d.http("GET", path).starts_with("HTTP/1.1 200"), "{path}");
    }
    let missing = d.http("GET", "/v1.47/nonexistent");
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    assert!(missing.contains("\"message\""), "{missing}");
}

#[test]
fn the_socket_is_removed_on_shutdown() {
    let mut d = Daemon::start("shutdown");
    d.stop();
    assert!(!d.socket().exists(), "socket left behind");
    assert!(d.dir.exists(), "only the socket goes; the data root stays");
}
