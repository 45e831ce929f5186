//! `linux.maskedPaths` and `linux.readonlyPaths`, applied after pivot_root.

use std::path::Path;

use nix::mount::{mount, MsFlags};

use nix::sys::stat::SFlag;

use super::mounts::{bind_and_remount, remount};
use super::safe::{self, Pinned};
use crate::error::{Result, SysContext};

/// Hides each path: directories under an empty read-only tmpfs, other files under
/// /dev/null. Paths that do not exist are skipped, as the spec allows; symlinks are refused
/// (see `safe`).
pub fn mask(paths: &[String]) -> Result<()> {
    let mut null = None;
    for p in paths {
        let path = Path::new(p);
        if std::fs::symlink_metadata(path).is_err() {
            continue;
        }
        let target = Pinned::open(path)?;
        if target.kind()? == SFlag::S_IFDIR {
            mount(
                Some("tmpfs"),
                &target.link(),
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                None::<&str>,
            )
            .ctx(|| format!("mask {p}"))?;
        } else {
            if null.is_none() {
                null = Some(safe::dev_null()?);
            }
            let source = null.as_ref().expect("set above").link();
            bind_and_remount(&source, &target.link(), MsFlags::empty(), MsFlags::empty())?;
        }
    }
    Ok(())
}

/// Makes each path read-only through a bind mount onto itself.
pub fn make_readonly(paths: &[String]) -> Result<()> {
    for p in paths {
        let path = Path::new(p);
        if std::fs::symlink_metadata(path).is_err() {
            continue;
        }
        let target = Pinned::open(path)?;
        bind_and_remount(
            &target.link(),
            &target.link(),
            MsFlags::MS_REC,
            MsFlags::empty(),
        )?;
        // The pinned fd still names the inode under the new mount; the remount must name
        // the new mount itself.
        remount(&Pinned::open(path)?.link(), MsFlags::MS_RDONLY)?;
    }
    Ok(())
}

/// `root.readonly`: the container's `/` becomes read-only (its other mounts keep their own
/// flags).
pub fn readonly_root() -> Result<()> {
    remount(Path::new("/"), MsFlags::MS_RDONLY)
}
