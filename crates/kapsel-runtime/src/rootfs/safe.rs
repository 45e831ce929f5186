//! Mounting and writing inside a container without being redirected by it.
//!
//! The container's image (and its other processes) control what a path resolves to: a
//! masked path, /dev/null or /dev/console swapped for a symlink would turn a mask into a
//! writable window on /proc (the CVE-2025-31133, -52565 and -52881 class). So each target is
//! opened once without following symlinks, checked, and then mounted or written through
//! its /proc/self/fd link, which names exactly the inode that was checked.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::sys::stat::{fstat, major, minor, Mode, SFlag};
use nix::sys::statfs::{fstatfs, PROC_SUPER_MAGIC};

use crate::error::{Result, RuntimeError, SysContext};

/// An opened path and the magic link that names it.
pub struct Pinned {
    fd: OwnedFd,
}

impl Pinned {
    /// Opens `path` as O_PATH without following a final symlink; a symlink is refused.
    pub fn open(path: &Path) -> Result<Pinned> {
        let fd = open(
            path,
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| format!("open {}", path.display()))?;
        let pinned = Pinned { fd };
        if pinned.kind()? == SFlag::S_IFLNK {
            return Err(RuntimeError::Init(format!(
                "{} is a symlink: refusing to mount through it",
                path.display()
            )));
        }
        Ok(pinned)
    }

    pub fn kind(&self) -> Result<SFlag> {
        let st = fstat(&self.fd).ctx(|| "fstat")?;
        Ok(SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()))
    }

    /// /proc/self/fd/N: mount(2) given this path acts on the pinned inode itself.
    pub fn link(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }
}

/// The container's /dev/null, checked to be the null device (1:3) before anything is
/// masked with it.
pub fn dev_null() -> Result<Pinned> {
    let null = Pinned::open(Path::new("/dev/null"))?;
    let st = fstat(&null.fd).ctx(|| "fstat /dev/null")?;
    let is_null =
        null.kind()? == SFlag::S_IFCHR && major(st.st_rdev) == 1 && minor(st.st_rdev) == 3;
    if !is_null {
        return Err(RuntimeError::Init(
            "/dev/null in the container is not the null device: refusing to mask paths with it"
                .into(),
        ));
    }
    Ok(null)
}

/// Writes a /proc file (a sysctl), checking that the file really is on procfs: a mount
/// over /proc/sys must not receive the value.
pub fn write_proc(path: &Path, value: &str) -> Result<()> {
    let fd = open(
        path,
        OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open {}", path.display()))?;
    let on_proc = fstatfs(&fd).is_ok_and(|s| s.filesystem_type() == PROC_SUPER_MAGIC);
    if !on_proc {
        return Err(RuntimeError::Init(format!(
            "{} is not on procfs: refusing to write it",
            path.display()
        )));
    }
    nix::unistd::write(&fd, value.as_bytes()).ctx(|| format!("write {}", path.display()))?;
    Ok(())
}
