//! The `cgroup` mount inside a container: the container sees its own cgroup at
//! /sys/fs/cgroup, whatever the host's layout.

use std::path::Path;

use kapsel_cgroups::Cgroup;
use nix::mount::MsFlags;

use super::mounts::{bind_and_remount, mkdir_all, remount};
use super::options::MountOptions;
use crate::error::{Result, SysContext};

pub fn mount_cgroups(
    dest: &Path,
    opts: &MountOptions,
    cgroup: &Cgroup,
    own_cgroupns: bool,
) -> Result<()> {
    let flags = opts.remount_flags();
    let v1 = cgroup.v1_dirs();
    if v1.is_empty() {
        return mount_unified(dest, flags, cgroup, own_cgroupns);
    }
    // v1 or hybrid: a tmpfs holding one bind mount per hierarchy, each showing only the
    // container's own cgroup (as runc and Docker lay it out).
    mkdir_all(dest)?;
    let tmpfs_flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    nix::mount::mount(
        Some("tmpfs"),
        dest,
        Some("tmpfs"),
        tmpfs_flags,
        Some("mode=755"),
    )
    .ctx(|| format!("mount tmpfs on {}", dest.display()))?;
    for (name, host_dir) in v1 {
        let sub = dest.join(&name);
        mkdir_all(&sub)?;
        bind_and_remount(&host_dir, &sub, MsFlags::empty(), flags)?;
        link_joint_controllers(dest, &name)?;
    }
    if let Some(unified) = cgroup.unified_dir() {
        let sub = dest.join("unified");
        mkdir_all(&sub)?;
        bind_and_remount(&unified, &sub, MsFlags::empty(), flags)?;
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        remount(dest, tmpfs_flags | MsFlags::MS_RDONLY)?;
    }
    Ok(())
}

/// `cpu,cpuacct` is also reachable as `cpu` and `cpuacct`, as on the host.
fn link_joint_controllers(dest: &Path, name: &str) -> Result<()> {
    if !name.contains(',') {
        return Ok(());
    }
    for part in name.split(',') {
        let link = dest.join(part);
        if !link.exists() {
            std::os::unix::fs::symlink(name, &link)
                .map_err(|e| crate::error::RuntimeError::io("symlink", &link, e))?;
        }
    }
    Ok(())
}

/// Pure v2: with its own cgroup namespace, a fresh cgroup2 mount (rooted at the container's
/// cgroup); otherwise a bind of its cgroup directory, so the host's tree stays hidden.
fn mount_unified(dest: &Path, flags: MsFlags, cgroup: &Cgroup, own_cgroupns: bool) -> Result<()> {
    mkdir_all(dest)?;
    match cgroup.unified_dir() {
        Some(dir) if !own_cgroupns => bind_and_remount(&dir, dest, MsFlags::empty(), flags),
        _ => nix::mount::mount(
            Some("cgroup2"),
            dest,
            Some("cgroup2"),
            flags | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None::<&str>,
        )
        .ctx(|| format!("mount cgroup2 on {}", dest.display())),
    }
}
