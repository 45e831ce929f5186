//! Network namespaces that outlive any process: a throw-away thread unshares its network
//! namespace and bind-mounts it onto a file, as `ip netns add` does. The runtime then joins
//! it by path (`linux.namespaces[].path`), and the engine can configure it before the
//! container starts and after the engine restarts.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use crate::NetworkError;

fn netns_error(path: &Path) -> impl FnOnce(std::io::Error) -> NetworkError + '_ {
    move |source| NetworkError::Netns {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates a new network namespace pinned at `path` (whose directory must exist).
pub fn create(path: &Path) -> Result<(), NetworkError> {
    File::create(path).map_err(netns_error(path))?;
    let target = path.to_path_buf();
    // unshare(CLONE_NEWNET) changes only the calling thread, so a dedicated thread keeps
    // the caller (an async runtime's thread) in the host's namespace.
    let result = std::thread::spawn(move || -> nix::Result<()> {
        unshare(CloneFlags::CLONE_NEWNET)?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    })
    .join()
    .expect("netns thread panicked");
    result.map_err(|e| {
        let _ = std::fs::remove_file(path);
        netns_error(path)(e.into())
    })
}

/// Unpins and removes the namespace at `path`; absent is fine. The namespace itself (and
/// the veth ends in it) goes away once no process is left in it.
pub fn remove(path: &Path) -> Result<(), NetworkError> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
        Err(e) => return Err(netns_error(path)(e.into())),
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(netns_error(path)(e)),
        _ => Ok(()),
    }
}

/// A pinned namespace, opened.
pub struct Netns {
    pub path: PathBuf,
    pub file: File,
}

impl Netns {
    pub fn open(path: &Path) -> Result<Self, NetworkError> {
        Ok(Netns {
            path: path.to_path_buf(),
            file: File::open(path).map_err(netns_error(path))?,
        })
    }

    /// Runs `f` on a thread that has joined this namespace (sockets it opens stay in it).
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, NetworkError> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    setns(&self.file, CloneFlags::CLONE_NEWNET)
                        .map_err(|e| netns_error(&self.path)(e.into()))?;
                    Ok(f())
                })
                .join()
                .expect("netns thread panicked")
        })
    }
}
