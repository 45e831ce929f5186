//! A kapseld per test, driven by the real docker CLI or raw HTTP.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const DOCKER: &str = "/usr/local/bin/docker";

/// A kapseld with its own data root, exec root and socket, stopped (by PID) on drop.
pub struct Daemon {
    pub dir: PathBuf,
    child: Child,
}

impl Daemon {
    pub fn start(name: &str) -> Daemon {
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

    pub fn socket(&self) -> PathBuf {
        self.dir.join("api.sock")
    }

    pub fn docker(&self, args: &[&str]) -> (bool, String) {
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

impl Daemon {
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
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn have_docker_cli() -> bool {
    Path::new(DOCKER).exists()
}
