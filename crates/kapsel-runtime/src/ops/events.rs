//! `events`: resource usage of a container as JSON lines, once (`--stats`) or every
//! interval until the container stops.

use std::io::Write;
use std::time::Duration;

use crate::error::{Result, RuntimeError};
use crate::state::{StateRoot, Status};

pub struct EventsOptions {
    pub id: String,
    pub stats_once: bool,
    pub interval: Duration,
}

pub fn events(root: &StateRoot, opts: &EventsOptions, out: &mut dyn Write) -> Result<()> {
    loop {
        let (c, status) = super::load(root, &opts.id)?;
        if status == Status::Stopped {
            return if opts.stats_once {
                Err(RuntimeError::WrongState {
                    id: opts.id.clone(),
                    status: status.to_string(),
                    action: "events",
                    wanted: "running",
                })
            } else {
                Ok(())
            };
        }
        let event = serde_json::json!({"type": "stats", "id": c.id, "data": c.cgroup.stats()?});
        writeln!(out, "{event}").map_err(|e| RuntimeError::io("write", "stdout", e))?;
        if opts.stats_once {
            return Ok(());
        }
        std::thread::sleep(opts.interval);
    }
}
