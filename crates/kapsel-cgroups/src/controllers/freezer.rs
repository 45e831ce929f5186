//! Freezing: the v1 freezer controller, or cgroup.freeze on v2.

use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cgroup::Files;
use crate::error::{CgroupError, Result};
use crate::fs::{self, read_keyed};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FreezerState {
    Thawed,
    /// Asked to freeze, not all tasks frozen yet.
    Freezing,
    Frozen,
}

/// Tasks in uninterruptible sleep can keep a cgroup freezing for a while; past this we give
/// up and thaw again, rather than leave a half-frozen container.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);
const POLL_MAX: Duration = Duration::from_millis(20);

pub(crate) fn freeze(f: Files) -> Result<()> {
    set(f, true)
}

pub(crate) fn thaw(f: Files) -> Result<()> {
    set(f, false)
}

/// The file that asks for a state, and the value asking for frozen or thawed.
fn knob(f: Files, frozen: bool) -> (PathBuf, &'static str) {
    match (f, frozen) {
        (Files::V1(d), true) => (d.join("freezer.state"), "FROZEN"),
        (Files::V1(d), false) => (d.join("freezer.state"), "THAWED"),
        (Files::V2(d), true) => (d.join("cgroup.freeze"), "1"),
        (Files::V2(d), false) => (d.join("cgroup.freeze"), "0"),
    }
}

/// Asks for the state, then waits until the kernel reports it (reading v1 freezer.state
/// re-checks the tasks; v2 updates cgroup.events).
fn set(f: Files, frozen: bool) -> Result<()> {
    let (file, value) = knob(f, frozen);
    let want = if frozen {
        FreezerState::Frozen
    } else {
        FreezerState::Thawed
    };
    fs::write(&file, value)?;
    let start = Instant::now();
    let mut delay = Duration::from_millis(1);
    loop {
        let now = state(f)?;
        if now == want {
            return Ok(());
        }
        if start.elapsed() > FREEZE_TIMEOUT {
            if frozen {
                // Best effort: the timeout below is the error the caller needs to see.
                let (file, value) = knob(f, false);
                let _ = fs::write(&file, value);
            }
            return Err(CgroupError::FreezeTimeout {
                path: file,
                want: if frozen { "FROZEN" } else { "THAWED" },
                state: now,
            });
        }
        sleep(delay);
        delay = (delay * 2).min(POLL_MAX);
    }
}

pub(crate) fn state(f: Files) -> Result<FreezerState> {
    match f {
        Files::V1(dir) => state_v1(dir),
        Files::V2(dir) => state_v2(dir),
    }
}

fn state_v1(dir: &Path) -> Result<FreezerState> {
    let file = dir.join("freezer.state");
    let content = fs::read(&file)?;
    match content.trim() {
        "THAWED" => Ok(FreezerState::Thawed),
        "FREEZING" => Ok(FreezerState::Freezing),
        "FROZEN" => Ok(FreezerState::Frozen),
        _ => Err(fs::parse_err(&file, &content)),
    }
}

/// cgroup.freeze is what was asked, the "frozen" key of cgroup.events what the kernel did.
fn state_v2(dir: &Path) -> Result<FreezerState> {
    let asked = fs::read(&dir.join("cgroup.freeze"))?.trim() == "1";
    let frozen = read_keyed(&dir.join("cgroup.events"))?.get("frozen") == Some(&1);
    Ok(match (asked, frozen) {
        (true, true) => FreezerState::Frozen,
        (true, false) => FreezerState::Freezing,
        (false, _) => FreezerState::Thawed,
    })
}
