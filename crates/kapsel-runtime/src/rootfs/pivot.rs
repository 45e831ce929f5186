//! Making the prepared rootfs the container's `/`.

use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;
use nix::unistd::{chdir, chroot, fchdir, pivot_root};

use crate::error::{Result, SysContext};

/// pivot_root with the new and old root on the same directory: no temporary directory has
/// to be made in (possibly read-only) rootfs, and the old root is detached right away.
pub fn pivot(rootfs: &Path) -> Result<()> {
    let dir = |p: &Path| {
        open(
            p,
            OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| format!("open {}", p.display()))
    };
    let old_root = dir(Path::new("/"))?;
    let new_root = dir(rootfs)?;
    fchdir(&new_root).ctx(|| "chdir into rootfs")?;
    pivot_root(".", ".").ctx(|| format!("pivot_root to {}", rootfs.display()))?;
    // The old root is now stacked under the new one; leave it through its fd and detach it
    // without letting the unmount propagate to the host.
    fchdir(&old_root).ctx(|| "chdir to the old root")?;
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| "make the old root a slave")?;
    umount2(".", MntFlags::MNT_DETACH).ctx(|| "detach the old root")?;
    chdir("/").ctx(|| "chdir /")
}

/// `--no-pivot`: move the rootfs mount over `/` and chroot into it (for hosts where
/// pivot_root cannot work, e.g. a ramfs root). Weaker: the old root stays reachable to
/// a process that can escape the chroot.
pub fn move_root(rootfs: &Path) -> Result<()> {
    chdir(rootfs).ctx(|| format!("chdir {}", rootfs.display()))?;
    mount(
        Some(rootfs),
        "/",
        None::<&str>,
        MsFlags::MS_MOVE,
        None::<&str>,
    )
    .ctx(|| "move the rootfs mount to /")?;
    chroot(".").ctx(|| "chroot into rootfs")?;
    chdir("/").ctx(|| "chdir /")
}
