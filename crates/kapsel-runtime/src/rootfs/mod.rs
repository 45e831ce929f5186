//! The container's filesystem view: mounts, devices, the switch to the new root, and the
//! paths hidden or made read-only afterwards. Runs in the container's init, inside its new
//! mount namespace.

mod cgroupfs;
pub mod devices;
mod mounts;
mod options;
mod paths;
mod pivot;
pub mod safe;

use std::path::Path;

use nix::mount::{mount, MsFlags};
use oci_spec::runtime::Spec;

use crate::error::{Result, RuntimeError, SysContext};
pub use mounts::MountContext;

/// Before pivot_root: isolate propagation, make rootfs a mount point, perform the mounts and
/// create the devices.
pub fn prepare(ctx: &MountContext, spec: &Spec, cgroup: &kapsel_cgroups::Cgroup) -> Result<()> {
    // Nothing mounted from here on may propagate back to the host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| "make / a recursive slave")?;
    mount(
        Some(ctx.rootfs),
        ctx.rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| format!("bind mount rootfs {}", ctx.rootfs.display()))?;
    let config_mounts = spec.mounts().as_deref().unwrap_or(&[]);
    mounts::mount_all(ctx, config_mounts, cgroup)?;
    let linux = spec.linux().as_ref();
    let devices = linux.and_then(|l| l.devices().as_deref()).unwrap_or(&[]);
    devices::create(
        ctx.rootfs,
        devices,
        mounts::mounts_fresh_dev(config_mounts),
        ctx.in_userns,
    )
}

/// Switches to the new root, then applies `rootfsPropagation`.
pub fn enter(rootfs: &Path, spec: &Spec, no_pivot: bool) -> Result<()> {
    if no_pivot {
        pivot::move_root(rootfs)?;
    } else {
        pivot::pivot(rootfs)?;
    }
    let propagation = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref());
    if let Some(value) = propagation.filter(|v| !v.is_empty()) {
        let flags = options::rootfs_propagation(value).ok_or_else(|| {
            RuntimeError::invalid(
                "linux.rootfsPropagation",
                format!("unknown value {value:?}"),
            )
        })?;
        mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
            .ctx(|| format!("set rootfs propagation {value}"))?;
    }
    Ok(())
}

/// After pivot_root and sysctls: masked and read-only paths, then a read-only root.
pub fn finish(spec: &Spec) -> Result<()> {
    if let Some(linux) = spec.linux() {
        paths::mask(linux.masked_paths().as_deref().unwrap_or(&[]))?;
        paths::make_readonly(linux.readonly_paths().as_deref().unwrap_or(&[]))?;
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        paths::readonly_root()?;
    }
    Ok(())
}

/// With a terminal, /dev/console is the container's pty (bound after pivot_root).
/// The terminal is this process's stdin by now; binding /proc/self/fd/0 cannot be
/// redirected, and an existing /dev/console that is not a plain file (a symlink planted by
/// the image) is replaced rather than followed.
pub fn bind_console() -> Result<()> {
    let console = Path::new("/dev/console");
    if std::fs::symlink_metadata(console).is_ok_and(|m| !m.is_file()) {
        std::fs::remove_file(console).map_err(|e| RuntimeError::io("remove", console, e))?;
    }
    mounts::create_file(console)?;
    let target = safe::Pinned::open(console)?;
    mounts::bind_and_remount(
        Path::new("/proc/self/fd/0"),
        &target.link(),
        MsFlags::empty(),
        MsFlags::empty(),
    )
}
