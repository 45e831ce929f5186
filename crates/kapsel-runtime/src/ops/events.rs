//! `events`: the container's resource usage as JSON lines, once (`--stats`) or every
//! interval until the container stops, with an `oom` event whenever the OOM killer strikes
//! in it (as runc reports them).

use std::io::Write;
use std::time::{Duration, Instant};

use crate::error::{Result, RuntimeError};
use crate::state::{Container, StateRoot, Status};

pub struct EventsOptions {
    pub id: String,
    pub stats_once: bool,
    pub interval: Duration,
}

/// How often the OOM kill counter is read between two stats events.
const OOM_POLL: Duration = Duration::from_millis(100);

pub fn events(root: &StateRoot, opts: &EventsOptions, out: &mut dyn Write) -> Result<()> {
    let (c, status) = super::load(root, &opts.id)?;
    if opts.stats_once {
        if status == Status::Stopped {
            return Err(RuntimeError::WrongState {
                id: opts.id.clone(),
                status: status.to_string(),
                action: "events --stats",
                wanted: "running",
            });
        }
        return emit(
            out,
            "stats",
            &c,
            Some(serde_json::to_value(c.cgroup.stats()?).expect("serializable")),
        );
    }
    let mut oom_kills = c.cgroup.oom_kills().unwrap_or(0);
    loop {
        // A container deleted meanwhile ends the stream, as one that stopped does.
        let (c, status) = match super::load(root, &opts.id) {
            Err(RuntimeError::NotFound(_)) => return Ok(()),
            other => other?,
        };
        report_ooms(out, &c, &mut oom_kills)?;
        if status == Status::Stopped {
            return Ok(());
        }
        let stats = serde_json::to_value(c.cgroup.stats()?).expect("serializable");
        emit(out, "stats", &c, Some(stats))?;
        let next = Instant::now() + opts.interval;
        while let Some(left) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(left.min(OOM_POLL));
            report_ooms(out, &c, &mut oom_kills)?;
        }
    }
}

fn report_ooms(out: &mut dyn Write, c: &Container, seen: &mut u64) -> Result<()> {
    let now = c.cgroup.oom_kills().unwrap_or(*seen);
    if now > *seen {
        *seen = now;
        emit(out, "oom", c, None)?;
    }
    Ok(())
}

fn emit(
    out: &mut dyn Write,
    kind: &str,
    c: &Container,
    data: Option<serde_json::Value>,
) -> Result<()> {
    let mut event = serde_json::json!({"type": kind, "id": c.id});
    if let Some(data) = data {
        event["data"] = data;
    }
    writeln!(out, "{event}")
        .and_then(|_| out.flush())
        .map_err(|e| RuntimeError::io("write", "stdout", e))
}
