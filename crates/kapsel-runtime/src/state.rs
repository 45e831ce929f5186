//! A container's persisted state: one directory per container under the runtime root, holding
//! `state.json` (written atomically) and, between create and start, the `exec.fifo` that the
//! container's init blocks on.

use std::collections::HashMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

use kapsel_cgroups::{Cgroup, FreezerState};
use oci_spec::runtime::{Hooks, LinuxSeccomp};
use serde::{Deserialize, Serialize};

use crate::error::{Result, RuntimeError};
use crate::fsutil::write_atomic;

const STATE_FILE: &str = "state.json";
const EXEC_FIFO: &str = "exec.fifo";

/// The lifecycle status, as the OCI runtime spec names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = serde_json::to_value(self).expect("serializable");
        f.write_str(s.as_str().expect("string"))
    }
}

/// What the runtime remembers about a container between invocations.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Container {
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// Host PID of the container's init process.
    pub pid: i32,
    /// Start time of `pid` (field 22 of /proc/PID/stat), so a recycled PID is not mistaken
    /// for the container.
    pub pid_start_time: u64,
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    pub cgroup: Cgroup,
    #[serde(default)]
    pub hooks: Option<Hooks>,
    /// The container's seccomp config: `exec`'d processes get the same filter.
    #[serde(default)]
    pub seccomp: Option<LinuxSeccomp>,
}

/// The runtime's state root (`--root`), holding one directory per container.
#[derive(Clone, Debug)]
pub struct StateRoot {
    pub path: PathBuf,
}

impl StateRoot {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StateRoot { path: path.into() }
    }

    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.path.join(id)
    }

    pub fn exec_fifo(&self, id: &str) -> PathBuf {
        self.container_dir(id).join(EXEC_FIFO)
    }

    /// Claims `id` by creating its directory: the mkdir is the lock that makes a second
    /// create with the same id fail cleanly.
    pub fn claim(&self, id: &str) -> Result<PathBuf> {
        validate_id(id)?;
        std::fs::create_dir_all(&self.path)
            .map_err(|e| RuntimeError::io("mkdir", &self.path, e))?;
        let dir = self.container_dir(id);
        match std::fs::DirBuilder::new().mode(0o711).create(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(RuntimeError::AlreadyExists(id.to_string()))
            }
            Err(e) => Err(RuntimeError::io("mkdir", &dir, e)),
        }
    }

    pub fn save(&self, c: &Container) -> Result<()> {
        let text = serde_json::to_vec_pretty(c).expect("serializable");
        write_atomic(&self.container_dir(&c.id).join(STATE_FILE), &text)
    }

    pub fn load(&self, id: &str) -> Result<Container> {
        validate_id(id)?;
        let path = self.container_dir(id).join(STATE_FILE);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RuntimeError::NotFound(id.to_string()))
            }
            Err(e) => return Err(RuntimeError::io("read", &path, e)),
        };
        serde_json::from_slice(&text).map_err(|e| RuntimeError::ConfigMalformed {
            path,
            reason: e.to_string(),
        })
    }

    /// Every container id with a state file, sorted.
    pub fn ids(&self) -> Result<Vec<String>> {
        let entries = match std::fs::read_dir(&self.path) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(RuntimeError::io("read dir", &self.path, e)),
        };
        let mut ids: Vec<String> = entries
            .flatten()
            .filter(|e| e.path().join(STATE_FILE).exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    pub fn remove(&self, id: &str) -> Result<()> {
        let dir = self.container_dir(id);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(RuntimeError::io("remove", &dir, e))
            }
            _ => Ok(()),
        }
    }
}

/// Ids become directory names, so they must not be able to name another place.
pub fn validate_id(id: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "_-.+".contains(c);
    if id.is_empty() || id == "." || id == ".." || id.len() > 1024 || !id.chars().all(ok_char) {
        return Err(RuntimeError::InvalidId(id.to_string()));
    }
    Ok(())
}

impl Container {
    /// True while the recorded init process still exists (and is not a recycled PID).
    pub fn init_alive(&self) -> bool {
        process_start_time(self.pid) == Some(self.pid_start_time)
    }

    pub fn status(&self, root: &StateRoot) -> Status {
        if !self.init_alive() {
            return Status::Stopped;
        }
        if root.exec_fifo(&self.id).exists() {
            return Status::Created;
        }
        match self.cgroup.freezer_state() {
            Ok(FreezerState::Frozen) | Ok(FreezerState::Freezing) => Status::Paused,
            _ => Status::Running,
        }
    }

    /// The state as `runc state` prints it: the OCI fields plus rootfs, created and owner.
    pub fn oci_state(&self, status: Status) -> serde_json::Value {
        let pid = if status == Status::Stopped {
            0
        } else {
            self.pid
        };
        serde_json::json!({
            "ociVersion": "1.2.0",
            "id": self.id,
            "pid": pid,
            "status": status,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": self.owner,
            "annotations": self.annotations,
        })
    }
}

/// Start time of a process in clock ticks since boot, or None when it does not exist or is
/// a zombie (a zombie has run its course).
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: fields after it are
    // counted from the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Now as RFC 3339 UTC with nanoseconds, as runc writes `created`.
pub fn now_rfc3339() -> String {
    rfc3339(std::time::SystemTime::now())
}

fn rfc3339(time: std::time::SystemTime) -> String {
    humantime::format_rfc3339_nanos(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_could_escape_are_refused() {
        for bad in ["", ".", "..", "a/b", "../x", "a b", "x\0"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
        validate_id("web-1_a.b+c").unwrap();
    }

    #[test]
    fn dates_convert() {
        let day = std::time::Duration::from_secs(86_400);
        assert_eq!(
            rfc3339(std::time::UNIX_EPOCH),
            "1970-01-01T00:00:00.000000000Z"
        );
        assert!(rfc3339(std::time::UNIX_EPOCH + day * 20_779).starts_with("2026-11-22T"));
    }

    #[test]
    fn own_start_time_is_read() {
        assert!(process_start_time(std::process::id() as i32).is_some());
    }
}
