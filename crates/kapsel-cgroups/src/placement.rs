//! Starting a process inside a cgroup without migrating it there.
//!
//! Moving a process through `cgroup.procs` takes the kernel's global threadgroup lock for
//! writing, which first waits for an RCU grace period: 5 to 20 ms on this kind of host, the
//! largest single cost of starting a container. Two kernel paths avoid that lock:
//! - a thread that moves only itself (writing "0" to a v1 `tasks` file) does not take it,
//!   and a child it forks is born in the thread's cgroups;
//! - clone3(CLONE_INTO_CGROUP) creates the child directly in a cgroup2 directory.
//!
//! [`Cgroup::enter_thread`] does the first for every v1 hierarchy; the caller forks with
//! CLONE_INTO_CGROUP on [`Cgroup::unified_dir`], then [`ThreadPlacement::leave`]s.

use std::path::{Path, PathBuf};

use crate::cgroup::Cgroup;
use crate::error::Result;
use crate::fs;
use crate::path::OwnCgroups;

/// Where the calling thread was before [`Cgroup::enter_thread`], to go back there.
#[must_use = "the thread stays in the container's cgroups until leave() is called"]
pub struct ThreadPlacement {
    previous: Vec<PathBuf>,
}

impl Cgroup {
    /// Moves the calling thread alone into this cgroup in every v1 hierarchy.
    pub fn enter_thread(&self) -> Result<ThreadPlacement> {
        let own = OwnCgroups::read_thread()?;
        let mut previous = Vec::with_capacity(self.v1.len());
        for d in &self.v1 {
            let path = own.v1(&d.subsystems)?;
            let below = path.strip_prefix(d.root.as_str()).unwrap_or(&path);
            previous.push(d.mount.join(below.trim_start_matches('/')));
        }
        let placement = ThreadPlacement { previous };
        for d in &self.v1 {
            if let Err(e) = move_self(&d.dir) {
                let _ = placement.leave();
                return Err(e);
            }
        }
        Ok(placement)
    }
}

impl ThreadPlacement {
    /// Moves the calling thread back to where it was.
    pub fn leave(self) -> Result<()> {
        self.previous.iter().try_for_each(|dir| move_self(dir))
    }
}

fn move_self(dir: &Path) -> Result<()> {
    fs::write(&dir.join("tasks"), "0")
}
