//! Performing config.json's `mounts` inside the container's root.

use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use nix::sys::statvfs::{statvfs, FsFlags};
use oci_spec::runtime::Mount;

use super::options::{self, MountOptions};
use super::safe::Pinned;
use crate::error::{Result, RuntimeError, SysContext};
use crate::fsutil::resolve_in_root;

/// What a mount needs to know about the container being set up.
pub struct MountContext<'a> {
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    /// In a new user namespace: device nodes cannot be made and sysfs may need a bind.
    pub in_userns: bool,
    /// In a new cgroup namespace: a cgroup2 mount can be fresh instead of a bind.
    pub own_cgroupns: bool,
}

pub fn mount_all(
    ctx: &MountContext,
    mounts: &[Mount],
    cgroup: &kapsel_cgroups::Cgroup,
) -> Result<()> {
    for m in mounts {
        let opts = options::parse(m.options().as_deref().unwrap_or(&[]));
        let dest = resolve_in_root(ctx.rootfs, m.destination())?;
        match m.typ().as_deref() {
            Some("cgroup") | Some("cgroup2") => {
                super::cgroupfs::mount_cgroups(&dest, &opts, cgroup, ctx.own_cgroupns)?
            }
            _ if opts.is_bind() => bind(ctx, m, &dest, &opts)?,
            typ => fresh(ctx, m, typ.unwrap_or("none"), &dest, &opts)?,
        }
        propagate(&dest, &opts)?;
    }
    Ok(())
}

/// A new filesystem instance (proc, tmpfs, sysfs, devpts, mqueue, …).
fn fresh(ctx: &MountContext, m: &Mount, typ: &str, dest: &Path, opts: &MountOptions) -> Result<()> {
    mkdir_all(dest)?;
    let source = m
        .source()
        .as_deref()
        .map(Path::new)
        .unwrap_or(Path::new(typ));
    let data = (!opts.data.is_empty()).then_some(opts.data.as_str());
    let flags = opts.flags - MsFlags::MS_REMOUNT;
    // The directory as the image has it, still reachable through this fd once covered.
    let below = (opts.copy_up && typ == "tmpfs")
        .then(|| Pinned::open(dest))
        .transpose()?;
    let mounted = match mount(Some(source), dest, Some(typ), flags, data) {
        // A user namespace that does not own the network namespace may not mount sysfs:
        // give it the host's /sys, read-only as asked (what runc does too).
        Err(nix::Error::EPERM) if typ == "sysfs" && ctx.in_userns => {
            let host_sys = Path::new("/sys");
            bind_and_remount(host_sys, dest, MsFlags::MS_REC, opts.remount_flags())
        }
        other => other.ctx(|| format!("mount {typ} on {}", dest.display())),
    };
    mounted?;
    match below {
        Some(image_dir) => copy_tree(&image_dir.link(), dest),
        None => Ok(()),
    }
}

/// Copies a directory tree with owners, modes and symlinks (for `tmpcopyup`).
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let entries = std::fs::read_dir(from).map_err(|e| RuntimeError::io("read dir", from, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| RuntimeError::io("read dir", from, e))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let meta =
            std::fs::symlink_metadata(&src).map_err(|e| RuntimeError::io("stat", &src, e))?;
        if meta.is_dir() {
            std::fs::create_dir(&dst).map_err(|e| RuntimeError::io("mkdir", &dst, e))?;
            copy_tree(&src, &dst)?;
        } else if meta.file_type().is_symlink() {
            let target =
                std::fs::read_link(&src).map_err(|e| RuntimeError::io("readlink", &src, e))?;
            std::os::unix::fs::symlink(target, &dst)
                .map_err(|e| RuntimeError::io("symlink", &dst, e))?;
        } else if meta.is_file() {
            std::fs::copy(&src, &dst).map_err(|e| RuntimeError::io("copy", &dst, e))?;
        } else {
            continue; // devices, fifos and sockets are not copied up (as runc)
        }
        keep_owner_and_mode(&dst, &meta)?;
    }
    Ok(())
}

fn keep_owner_and_mode(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    std::os::unix::fs::lchown(path, Some(meta.uid()), Some(meta.gid()))
        .map_err(|e| RuntimeError::io("chown", path, e))?;
    if !meta.file_type().is_symlink() {
        std::fs::set_permissions(path, meta.permissions())
            .map_err(|e| RuntimeError::io("chmod", path, e))?;
    }
    Ok(())
}

fn bind(ctx: &MountContext, m: &Mount, dest: &Path, opts: &MountOptions) -> Result<()> {
    let source = m.source().as_ref().ok_or_else(|| {
        RuntimeError::invalid(
            "mounts",
            format!("bind mount on {} has no source", m.destination().display()),
        )
    })?;
    let source = if source.is_absolute() {
        source.clone()
    } else {
        ctx.bundle.join(source)
    };
    let meta = std::fs::metadata(&source)
        .map_err(|e| RuntimeError::io("bind mount source", &source, e))?;
    if meta.is_dir() {
        mkdir_all(dest)?;
    } else {
        create_file(dest)?;
    }
    bind_and_remount(
        &source,
        dest,
        opts.flags & MsFlags::MS_REC,
        opts.remount_flags(),
    )
}

/// Bind-mounts `source` on `dest`, then applies `flags` (ro, nosuid, …) with a remount, as a
/// bind mount ignores them on the first call. Flags the source mount has locked (a user
/// namespace may not clear them) are kept.
pub fn bind_and_remount(source: &Path, dest: &Path, rec: MsFlags, flags: MsFlags) -> Result<()> {
    mount(
        Some(source),
        dest,
        None::<&str>,
        MsFlags::MS_BIND | rec,
        None::<&str>,
    )
    .ctx(|| format!("bind mount {} on {}", source.display(), dest.display()))?;
    if flags.is_empty() {
        return Ok(());
    }
    remount(dest, flags)
}

/// Changes the flags of the bind mount at `dest`, keeping the ones it has locked.
pub fn remount(dest: &Path, flags: MsFlags) -> Result<()> {
    let all = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags | locked_flags(dest);
    mount(None::<&str>, dest, None::<&str>, all, None::<&str>)
        .ctx(|| format!("remount {} with {flags:?}", dest.display()))
}

fn locked_flags(path: &Path) -> MsFlags {
    let Ok(st) = statvfs(path) else {
        return MsFlags::empty();
    };
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
    ] {
        if f.contains(fs) {
            out |= ms;
        }
    }
    // Read-only is only "locked" when the caller did not ask for rw; the caller's flags
    // decide it, so it is left to them.
    out - MsFlags::MS_RDONLY
}

fn propagate(dest: &Path, opts: &MountOptions) -> Result<()> {
    for p in &opts.propagation {
        mount(None::<&str>, dest, None::<&str>, *p, None::<&str>)
            .ctx(|| format!("set propagation {p:?} on {}", dest.display()))?;
    }
    Ok(())
}

pub fn mkdir_all(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|e| RuntimeError::io("create mount point", path, e))
}

/// Creates an empty file to bind a non-directory onto (keeps an existing one).
pub fn create_file(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        mkdir_all(parent)?;
    }
    if path.exists() {
        return Ok(());
    }
    std::fs::File::create(path)
        .map(drop)
        .map_err(|e| RuntimeError::io("create mount point", path, e))
}

/// True when config.json mounts a fresh filesystem (not a bind) on /dev: then the runtime
/// populates it with the default devices.
pub fn mounts_fresh_dev(mounts: &[Mount]) -> bool {
    mounts.iter().any(|m| {
        m.destination() == &PathBuf::from("/dev")
            && !options::parse(m.options().as_deref().unwrap_or(&[])).is_bind()
    })
}
