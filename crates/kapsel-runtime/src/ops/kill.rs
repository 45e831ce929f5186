//! `kill`: send a signal to the container's init, or with `--all` to all its processes.

use std::str::FromStr;

use nix::sys::signal::{kill as send_signal, Signal};
use nix::unistd::Pid;

use crate::error::{Result, RuntimeError, SysContext};
use crate::state::{StateRoot, Status};

pub fn kill(root: &StateRoot, id: &str, signal: Signal, all: bool) -> Result<()> {
    let (c, status) = super::load(root, id)?;
    if all {
        super::kill_all(&c.cgroup, signal);
        return Ok(());
    }
    if status == Status::Stopped {
        return Err(RuntimeError::WrongState {
            id: id.into(),
            status: status.to_string(),
            action: "kill",
            wanted: "created, running or paused",
        });
    }
    send_signal(Pid::from_raw(c.pid), signal).ctx(|| format!("kill {} (pid {})", signal, c.pid))
}

/// Parses `KILL`, `SIGKILL`, `kill` or `9`.
pub fn parse_signal(text: &str) -> Result<Signal> {
    let bad = || {
        RuntimeError::Usage(format!(
            "unknown signal {text:?}: use a name like TERM or a number like 15"
        ))
    };
    if let Ok(n) = text.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("KILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("sigterm").unwrap(), Signal::SIGTERM);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("99").is_err());
    }
}
