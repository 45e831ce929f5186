//! Device nodes in the container's /dev: the defaults every container gets, config.json's
//! `linux.devices`, and the standard symlinks.

use std::os::unix::fs::symlink;
use std::path::Path;

use nix::mount::MsFlags;
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use nix::unistd::{chown, Gid, Uid};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use super::mounts::{bind_and_remount, create_file, mkdir_all};
use crate::error::{Result, RuntimeError, SysContext};
use crate::fsutil::resolve_in_root;

/// (path, major, minor): the character devices every container has, as the spec lists.
pub const DEFAULT_DEVICES: [(&str, i64, i64); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// Creates the default devices (when /dev is a fresh filesystem) and `linux.devices`.
pub fn create(
    rootfs: &Path,
    devices: &[LinuxDevice],
    defaults: bool,
    in_userns: bool,
) -> Result<()> {
    if defaults {
        for (path, major, minor) in DEFAULT_DEVICES {
            let mut d = LinuxDevice::default();
            d.set_path(path.into());
            d.set_typ(LinuxDeviceType::C);
            d.set_major(major);
            d.set_minor(minor);
            d.set_file_mode(Some(0o666));
            d.set_uid(Some(0));
            d.set_gid(Some(0));
            create_one(rootfs, &d, in_userns)?;
        }
    }
    for d in devices {
        create_one(rootfs, d, in_userns)?;
    }
    if defaults {
        links(rootfs)?;
    }
    Ok(())
}

fn create_one(rootfs: &Path, d: &LinuxDevice, in_userns: bool) -> Result<()> {
    if !d.path().starts_with("/dev") {
        return Err(RuntimeError::invalid(
            "linux.devices",
            format!("{} is not under /dev", d.path().display()),
        ));
    }
    let dest = resolve_in_root(rootfs, d.path())?;
    if let Some(parent) = dest.parent() {
        mkdir_all(parent)?;
    }
    // A user namespace may not create device nodes: bind the host's node instead.
    if in_userns {
        create_file(&dest)?;
        return bind_and_remount(d.path(), &dest, MsFlags::empty(), MsFlags::empty());
    }
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(RuntimeError::invalid(
                "linux.devices",
                format!("{}: type 'a' is only for cgroup rules", d.path().display()),
            ))
        }
    };
    let mode = Mode::from_bits_truncate(d.file_mode().unwrap_or(0o666));
    let dev = makedev(d.major() as u64, d.minor() as u64);
    let _ = std::fs::remove_file(&dest);
    mknod(&dest, kind, mode, dev).ctx(|| format!("mknod {}", dest.display()))?;
    chown(
        &dest,
        d.uid().map(Uid::from_raw),
        d.gid().map(Gid::from_raw),
    )
    .ctx(|| format!("chown {}", dest.display()))
}

fn links(rootfs: &Path) -> Result<()> {
    for (link, target) in [
        ("dev/fd", "/proc/self/fd"),
        ("dev/stdin", "/proc/self/fd/0"),
        ("dev/stdout", "/proc/self/fd/1"),
        ("dev/stderr", "/proc/self/fd/2"),
        ("dev/ptmx", "pts/ptmx"),
    ] {
        let path = rootfs.join(link);
        let _ = std::fs::remove_file(&path);
        symlink(target, &path).map_err(|e| RuntimeError::io("symlink", &path, e))?;
    }
    Ok(())
}
