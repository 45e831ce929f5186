//! `linux.maskedPaths` and `linux.readonlyPaths`, applied after pivot_root.

use std::path::Path;

use nix::mount::{mount, MsFlags};

use super::mounts::{bind_and_remount, remount};
use crate::error::{Result, SysContext};

/// Hides each path: directories under an empty read-only tmpfs, files under /dev/null.
/// Paths that do not exist are skipped, as the spec allows.
pub fn mask(paths: &[String]) -> Result<()> {
    for p in paths {
        let path = Path::new(p);
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            continue;
        };
        if meta.is_dir() {
            mount(
                Some("tmpfs"),
                path,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                None::<&str>,
            )
            .ctx(|| format!("mask {p}"))?;
        } else {
            bind_and_remount(
                Path::new("/dev/null"),
                path,
                MsFlags::empty(),
                MsFlags::empty(),
            )?;
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
        bind_and_remount(path, path, MsFlags::MS_REC, MsFlags::MS_RDONLY)?;
    }
    Ok(())
}

/// `root.readonly`: the container's `/` becomes read-only (its other mounts keep their own
/// flags).
pub fn readonly_root() -> Result<()> {
    remount(Path::new("/"), MsFlags::MS_RDONLY)
}
