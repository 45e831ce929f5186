//! The container's (or exec'd process's) exit status, and `exit.json`: the record that
//! outlives the shim, from which a restarted kapseld learns how the container ended.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use nix::sys::wait::WaitStatus;

use crate::time::{push_rfc3339, Fraction};

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitStatus {
    /// The exit code, or 128+N when killed by signal N (as a shell reports it).
    pub code: i32,
    pub signal: Option<i32>,
}

impl ExitStatus {
    /// None for statuses that are not an end (stopped, continued).
    pub fn from_wait(status: WaitStatus) -> Option<Self> {
        match status {
            WaitStatus::Exited(_, code) => Some(ExitStatus { code, signal: None }),
            WaitStatus::Signaled(_, sig, _) => Some(ExitStatus {
                code: 128 + sig as i32,
                signal: Some(sig as i32),
            }),
            _ => None,
        }
    }

    /// `{"exit_code":N,"signal":S|null,"oom_killed":B,"finished_at":"…Z"}`
    pub fn to_json(self, finished_at: SystemTime, oom_killed: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(112);
        let signal = self.signal.map_or("null".to_owned(), |s| s.to_string());
        // Writing into a Vec cannot fail.
        let _ = write!(
            out,
            r#"{{"exit_code":{},"signal":{signal},"oom_killed":{oom_killed},"finished_at":""#,
            self.code
        );
        push_rfc3339(&mut out, finished_at, Fraction::Nanos);
        out.extend_from_slice(b"\"}\n");
        out
    }
}

/// Whether the OOM killer killed a process of the container: the `oom_kill` counter of
/// the cgroup's memory events file (`oom_kill N` in v1's memory.oom_control and v2's
/// memory.events alike) is above zero. The cgroup is new with each start, so any kill
/// counted is this run's.
pub fn oom_killed(events_file: &Path) -> bool {
    std::fs::read_to_string(events_file).is_ok_and(|text| {
        text.lines()
            .filter_map(|l| l.strip_prefix("oom_kill "))
            .any(|n| n.trim().parse::<u64>().is_ok_and(|n| n > 0))
    })
}

/// Writes `<dir>/exit.json` so that it is either absent or complete, even across a power
/// loss: written to a temporary file, synced, renamed over, and the directory synced.
pub fn write_exit_json(
    dir: &Path,
    status: ExitStatus,
    finished_at: SystemTime,
    oom_killed: bool,
) -> std::io::Result<()> {
    let tmp = dir.join("exit.json.tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(&status.to_json(finished_at, oom_killed))?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, dir.join("exit.json"))?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;
    use nix::unistd::Pid;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn codes_and_signals() {
        let p = Pid::from_raw(1);
        assert_eq!(
            ExitStatus::from_wait(WaitStatus::Exited(p, 3)),
            Some(ExitStatus {
                code: 3,
                signal: None
            })
        );
        assert_eq!(
            ExitStatus::from_wait(WaitStatus::Signaled(p, Signal::SIGKILL, false)),
            Some(ExitStatus {
                code: 137,
                signal: Some(9)
            })
        );
        assert_eq!(ExitStatus::from_wait(WaitStatus::StillAlive), None);
    }

    #[test]
    fn json_shape() {
        let t = UNIX_EPOCH + Duration::new(1_795_370_454, 5);
        let s = ExitStatus {
            code: 137,
            signal: Some(9),
        };
        assert_eq!(
            String::from_utf8(s.to_json(t, true)).unwrap(),
            "{\"exit_code\":137,\"signal\":9,\"oom_killed\":true,\
             \"finished_at\":\"2026-11-22T18:00:54.000000005Z\"}\n"
        );
        let s = ExitStatus {
            code: 0,
            signal: None,
        };
        assert!(String::from_utf8(s.to_json(t, false))
            .unwrap()
            .starts_with("{\"exit_code\":0,\"signal\":null,\"oom_killed\":false,"));
    }

    #[test]
    fn oom_kills_are_read_from_v1_and_v2_files() {
        let dir = std::env::temp_dir().join(format!("shim-oom-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("events");
        std::fs::write(&file, "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n").unwrap();
        assert!(oom_killed(&file));
        std::fs::write(&file, "low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\n").unwrap();
        assert!(!oom_killed(&file));
        assert!(!oom_killed(&dir.join("missing")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
