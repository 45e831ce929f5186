//! Shared helpers for the kernel tests: they need root and a real cgroup mount.

// Each test binary uses only some of the helpers.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

use kapsel_cgroups::{Cgroup, CgroupPath, Hierarchy};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A cgroup with a unique absolute path, created on construction. Dropping it (also when a
/// test fails) kills the processes the test put in it and removes its directories.
pub struct TestCgroup {
    pub cg: Cgroup,
}

impl TestCgroup {
    pub fn new(name: &str) -> TestCgroup {
        let h = Hierarchy::detect().expect("detect cgroup hierarchies");
        let path = CgroupPath::parse(&unique_path(name)).unwrap();
        let cg = Cgroup::new(&h, &path).unwrap();
        cg.create().unwrap();
        TestCgroup { cg }
    }

    /// Starts `/bin/sh -c script` inside the cgroup. The shell waits for a line on stdin
    /// before running the script, so that everything the script does (exec, allocations,
    /// forks) happens after it was moved in and is charged to this cgroup.
    pub fn spawn(&self, script: &str) -> Child {
        let mut child = Command::new("/bin/sh")
            .args(["-c", &format!("read _; {script}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        self.cg.add_process(child.id() as i32).unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"\n").unwrap();
        child
    }

    /// Reads a file of this cgroup in `dir`, trimmed.
    pub fn read(&self, dir: PathBuf, file: &str) -> String {
        let path = dir.join(file);
        let s = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        s.trim().to_string()
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        // Frozen tasks do not act on SIGKILL until thawed.
        let _ = self.cg.thaw();
        kill_all(&self.cg);
        if let Err(e) = self.cg.destroy() {
            eprintln!("cleaning up test cgroup: {e}");
        }
    }
}

pub fn unique_path(name: &str) -> String {
    format!("/kapsel-test-{}-{name}", std::process::id())
}

/// Kills every process in the cgroup (all started by the test) and waits until it is empty.
fn kill_all(cg: &Cgroup) {
    for _ in 0..500 {
        let pids = cg.procs().unwrap_or_default();
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        sleep(Duration::from_millis(10));
    }
}

/// The state letter from /proc/<pid>/status ("S", "D", "T", ...).
pub fn task_state(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("State:")).unwrap();
    line.split_whitespace().nth(1).unwrap().to_string()
}
