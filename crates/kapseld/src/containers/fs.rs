//! A container's filesystem from the daemon's side: `docker cp` (stat, archive, extract)
//! and `docker export`.
//!
//! The container controls everything in its root filesystem, so the daemon treats it as
//! hostile:
//!
//! - The rootfs is reached through a private, detached clone of its overlay mount
//!   (open_tree), made nodev, nosuid and noexec, and read-only when only read: a device
//!   node the container made cannot be opened through it (so reading "a file" never
//!   reaches a host device), and nothing on it can be executed by the daemon. The clone has
//!   no submounts, so a path can never cross into another filesystem.
//! - Every path a client names is resolved with openat2(RESOLVE_IN_ROOT): symlinks,
//!   absolute or full of `..`, resolve inside the container's root, never on the host.
//! - A tree is walked one directory fd at a time, never following a symlink
//!   (AT_SYMLINK_NOFOLLOW, O_NOFOLLOW); a regular file is opened non-blocking and its tar
//!   header comes from the fstat of what was opened, so a file swapped for a FIFO or a
//!   link meanwhile is skipped, not followed.
//! - Extraction (PUT) refuses `..` in entry names and in hard link targets, resolves every
//!   parent directory inside the root (a symlink in the container or earlier in the same
//!   archive leads somewhere inside the container, as Docker's chroot'ed extraction does),
//!   creates each entry with O_EXCL/O_NOFOLLOW semantics relative to its parent's fd, and
//!   sets owners, modes and times on what it created, never through a path that could
//!   be followed.
//!
//! Only the overlay root filesystem is seen. Volumes and bind mounts live outside it, so
//! `docker cp` sees the (empty) mount points there, where Docker would show the volume's
//! contents. The exceptions are the engine's own /etc/hostname, /etc/hosts and
//! /etc/resolv.conf: reads of them return the files the container sees, and writes over
//! any mount point of a running container are refused as busy, as Docker refuses them.

use kapsel_image::commit::rfc3339;
use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kapsel_image::store::ImageStore;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timestamps};
use rustix::io::Errno;
use serde_json::{json, Value};
use tar::{EntryType, Header};

use super::record::Record;
use super::{ContainerError, Engine};

/// How paths are resolved: inside the root, no /proc magic links, no other mount.
const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_XDEV);

/// Directories kept open while walking a tree; deeper ones are reopened by path (without
/// following symlinks) when the walk comes back to them.
const MAX_OPEN_DIRS: usize = 16;

/// How deep a directory removed by an extraction may be.
const MAX_REMOVE_DEPTH: usize = 128;

/// The engine's files bind-mounted over these paths of every container.
const ENGINE_ETC_FILES: [&str; 3] = ["hostname", "hosts", "resolv.conf"];

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("Could not find the file {path} in container {container}")]
    NoSuchPath { path: String, container: String },
    #[error("extraction point is not a directory")]
    NotADirectory,
    #[error("container rootfs is marked read-only")]
    ReadOnly,
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
}

impl FsError {
    fn io(what: impl Into<String>, source: impl Into<io::Error>) -> Self {
        FsError::Io {
            what: what.into(),
            source: source.into(),
        }
    }

    /// Names the container (as the client named it) in a "could not find" error.
    pub fn named(self, container: &str) -> Self {
        match self {
            FsError::NoSuchPath { path, .. } => FsError::NoSuchPath {
                path,
                container: container.to_string(),
            },
            other => other,
        }
    }
}

/// A failed lookup of `path`: missing (or through a non-directory) is Docker's 404.
fn lookup_error(path: &str, e: Errno) -> FsError {
    match e {
        Errno::NOENT | Errno::NOTDIR => FsError::NoSuchPath {
            path: path.to_string(),
            container: String::new(),
        },
        Errno::LOOP => FsError::Invalid(format!(
            "{path}: too many levels of symbolic links in the container"
        )),
        e => FsError::io(format!("looking up {path} in the container"), e),
    }
}

/// Whether an operation writes (the clone of the rootfs is read-only otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// What `X-Docker-Container-Path-Stat` carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// Go's `os.FileMode` bits, as Docker sends them.
    pub mode: u32,
    pub mtime: String,
    pub link_target: String,
}

impl PathStat {
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "size": self.size,
            "mode": self.mode,
            "mtime": self.mtime,
            "linkTarget": self.link_target,
        })
    }

    /// The header's value: base64 of the JSON.
    pub fn header_value(&self) -> String {
        base64(self.to_json().to_string().as_bytes())
    }
}

/// Unmounts a rootfs the operation mounted, when it ends.
struct Unmount {
    images: Arc<ImageStore>,
    id: String,
}

impl Drop for Unmount {
    fn drop(&mut self) {
        if let Err(e) = self.images.unmount_rootfs(&self.id) {
            tracing::warn!(container = %self.id, "unmounting the root filesystem after a copy: {e}");
        }
    }
}

/// A container's root filesystem, open for one operation.
pub struct RootFs {
    /// The detached clone (or, in unit tests, a plain directory).
    root: OwnedFd,
    /// Where the overlay is mounted on the host.
    path: PathBuf,
    /// Rootfs inodes the engine bind-mounts its own files over, and those files.
    overrides: Vec<((u64, u64), PathBuf)>,
    /// Mount points of the running container: never removed or replaced.
    busy: HashSet<(u64, u64)>,
    _unmount: Option<Unmount>,
}

impl Engine {
    /// Runs `work` (off the async threads) on container `name`'s root filesystem, mounted
    /// for the time of the work if the container is not running. The container's op lock
    /// is held throughout, so it is not started, stopped or removed meanwhile (dockerd
    /// holds the container's lock the same way).
    pub async fn with_rootfs<T, F>(
        self: &Arc<Self>,
        name: &str,
        access: Access,
        work: F,
    ) -> Result<T, FsError>
    where
        T: Send + 'static,
        F: FnOnce(&RootFs, &Record) -> Result<T, FsError> + Send + 'static,
    {
        let container = self.get(name)?;
        let _op = container.op_lock.lock().await;
        let record = container.snapshot();
        let engine = self.clone();
        tokio::task::spawn_blocking(move || {
            let fs = engine.open_rootfs(&record, access)?;
            work(&fs, &record)
        })
        .await
        .map_err(|e| {
            FsError::io(
                "the container filesystem task",
                io::Error::other(e.to_string()),
            )
        })?
        .map_err(|e| e.named(name))
    }

    /// A running container's mounted rootfs, else one mounted now (and unmounted when the
    /// returned [`RootFs`] is dropped).
    fn open_rootfs(&self, record: &Record, access: Access) -> Result<RootFs, FsError> {
        let run_dir = self.run_dir(&record.id);
        let spec: Option<Value> = std::fs::read(run_dir.join("config.json"))
            .ok()
            .and_then(|text| serde_json::from_slice(&text).ok());
        let live = record.state.status.is_live();
        let (path, unmount) = if live {
            let root = spec
                .as_ref()
                .and_then(|s| s["root"]["path"].as_str())
                .map(|p| run_dir.join(p))
                .filter(|p| is_mount_point(p));
            // Never mount a second overlay over the upper directory a running container
            // writes to.
            let root = root.ok_or_else(|| {
                FsError::io(
                    format!("container {}", record.id),
                    io::Error::other("its running root filesystem is not mounted"),
                )
            })?;
            (root, None)
        } else {
            let path = self
                .images
                .prepare_rootfs(&record.image_id, &record.id)
                .map_err(ContainerError::from)?;
            let unmount = Unmount {
                images: self.images.clone(),
                id: record.id.clone(),
            };
            (path, Some(unmount))
        };
        let root = detached_clone(&path, access == Access::Read)
            .map_err(|e| FsError::io("opening the container's root filesystem", e))?;
        let mut fs = RootFs {
            root,
            path,
            overrides: Vec::new(),
            busy: HashSet::new(),
            _unmount: unmount,
        };
        fs.find_overrides(&self.data_dir(&record.id));
        if live {
            if let Some(spec) = &spec {
                fs.find_busy(spec);
            }
        }
        Ok(fs)
    }
}

/// Creates the container's working directory `dir` (absolute) in the rootfs mounted at
/// `rootfs` if it is missing, resolved inside the root, as dockerd does at start (0755,
/// root's).
pub fn make_working_dir(rootfs: &Path, dir: &str) -> Result<(), FsError> {
    let fs = RootFs::from_dir(rootfs)
        .map_err(|e| FsError::io("opening the container's root filesystem", e))?;
    let components: Vec<Vec<u8>> = components(dir.as_bytes()).collect();
    fs.make_dirs(&components, dir).map(drop)
}

/// A mount point: on another device than its parent (the overlay has its own).
fn is_mount_point(path: &Path) -> bool {
    match (std::fs::metadata(path), std::fs::metadata(path.join(".."))) {
        (Ok(a), Ok(b)) => a.dev() != b.dev(),
        _ => false,
    }
}

/// A private, detached copy of the mount at `path` (not its submounts), nodev, nosuid,
/// noexec and, for reads, read-only. It goes away with its last fd.
fn detached_clone(path: &Path, read_only: bool) -> io::Result<OwnedFd> {
    let c_path = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: open_tree takes a path and flags and returns a new fd or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c_path.as_ptr(),
            libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let mut attr_set = libc::MOUNT_ATTR_NODEV | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NOEXEC;
    if read_only {
        attr_set |= libc::MOUNT_ATTR_RDONLY;
    }
    let attr = libc::mount_attr {
        attr_set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr reads `size` bytes of a valid mount_attr.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// A path resolved in the container: the directory it is in (symlinks followed inside the
/// root) and its last component, not followed; or the directory itself, when the path
/// ends in `/` or `/.` or is `/`.
pub struct Target {
    /// The client's path, for messages.
    given: String,
    /// The cleaned absolute path (with a trailing `/` or `/.` kept).
    abs: String,
    dir: OwnedFd,
    last: Option<CString>,
}

impl RootFs {
    /// A directory (a mounted rootfs, or a plain one in tests) as a root filesystem.
    fn from_dir(path: &Path) -> io::Result<RootFs> {
        let root = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(RootFs::unmounted(root, path))
    }

    /// `root` (an open directory at `path`), with nothing to unmount afterwards.
    fn unmounted(root: OwnedFd, path: &Path) -> RootFs {
        RootFs {
            root,
            path: path.to_path_buf(),
            overrides: Vec::new(),
            busy: HashSet::new(),
            _unmount: None,
        }
    }

    /// A host directory (a volume's data) treated as a root filesystem: reached through
    /// a detached clone of it, walked and extracted into with the same care, since
    /// containers write what is in it.
    pub fn of_directory(path: &Path, access: Access) -> Result<RootFs, FsError> {
        let root = detached_clone(path, access == Access::Read)
            .map_err(|e| FsError::io(format!("opening {}", path.display()), e))?;
        Ok(RootFs::unmounted(root, path))
    }

    /// The contents of directory `dir` as a tar: first `./`, with the directory's own
    /// owner, mode and times, then `./name`…; `None` when `dir` is not a directory. What
    /// volume export writes and copy-up copies, so that extracting it at a volume's root
    /// reproduces the directory there.
    pub fn archive_contents<W: Write>(&self, dir: &str, out: W) -> Result<Option<W>, FsError> {
        let relative = container_path(dir);
        let fd = match self.open_in_root(
            relative.trim_start_matches('/').as_bytes(),
            OFlags::RDONLY | OFlags::DIRECTORY,
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::NOTDIR) => return Ok(None),
            Err(e) => return Err(lookup_error(dir, e)),
        };
        let meta = Meta::of(&rustix::fs::fstat(&fd).map_err(|e| lookup_error(dir, e))?);
        let failed = |e: io::Error| FsError::io(format!("archiving {dir}"), e);
        let mut a = Archiver::new(self, out, false);
        a.out
            .entry(
                meta.header(EntryType::Directory, 0),
                b"./",
                None,
                &[],
                io::empty(),
            )
            .map_err(failed)?;
        a.tree(fd, b".".to_vec()).map_err(failed)?;
        a.out.finish().map(Some).map_err(failed)
    }

    /// Where the rootfs is mounted on the host (for readers that resolve inside it
    /// themselves, such as [`super::user::resolve`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens `relative` (no leading `/` needed) resolved inside the root.
    fn open_in_root(&self, relative: &[u8], flags: OFlags) -> Result<OwnedFd, Errno> {
        let relative = if relative.is_empty() {
            &b"."[..]
        } else {
            relative
        };
        rustix::fs::openat2(
            &self.root,
            relative,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            IN_ROOT,
        )
    }

    fn find_overrides(&mut self, data_dir: &Path) {
        let Ok(etc) = self.open_in_root(b"etc", OFlags::PATH | OFlags::DIRECTORY) else {
            return;
        };
        for name in ENGINE_ETC_FILES {
            let host = data_dir.join(name);
            if !host.is_file() {
                continue;
            }
            if let Ok(st) = rustix::fs::statat(&etc, name, AtFlags::SYMLINK_NOFOLLOW) {
                let m = Meta::of(&st);
                if m.kind() == FileType::RegularFile {
                    self.overrides.push((m.id(), host));
                }
            }
        }
    }

    /// The mount destinations of the container's config.json, resolved as the runtime
    /// resolves them (inside the root, the last symlink followed).
    fn find_busy(&mut self, spec: &Value) {
        for mount in spec["mounts"].as_array().into_iter().flatten() {
            let Some(dest) = mount["destination"].as_str() else {
                continue;
            };
            let relative = dest.trim_start_matches('/');
            if relative.is_empty() {
                continue;
            }
            if let Ok(fd) = self.open_in_root(relative.as_bytes(), OFlags::PATH) {
                if let Ok(st) = rustix::fs::fstat(&fd) {
                    self.busy.insert(Meta::of(&st).id());
                }
            }
        }
        for (id, _) in &self.overrides {
            self.busy.insert(*id);
        }
    }

    fn override_for(&self, id: (u64, u64)) -> Option<&Path> {
        self.overrides
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, p)| p.as_path())
    }

    /// Resolves a client's path as dockerd does: every component but the last followed
    /// inside the root, the last one not (unless the path ends in `/`).
    pub fn resolve(&self, given: &str) -> Result<Target, FsError> {
        let abs = container_path(given);
        let (dir, base) = split_path(&abs);
        let dir_fd = self
            .open_in_root(
                dir.trim_start_matches('/').as_bytes(),
                OFlags::PATH | OFlags::DIRECTORY,
            )
            .map_err(|e| lookup_error(given, e))?;
        let last = match base {
            "" | "." => None,
            name => {
                let name = CString::new(name)
                    .map_err(|_| FsError::Invalid(format!("invalid path {given:?}")))?;
                rustix::fs::statat(&dir_fd, &name, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| lookup_error(given, e))?;
                Some(name)
            }
        };
        Ok(Target {
            given: given.to_string(),
            abs,
            dir: dir_fd,
            last,
        })
    }

    fn target_meta(&self, t: &Target) -> Result<Meta, FsError> {
        let st = match &t.last {
            Some(name) => rustix::fs::statat(&t.dir, name, AtFlags::SYMLINK_NOFOLLOW),
            None => rustix::fs::fstat(&t.dir),
        }
        .map_err(|e| lookup_error(&t.given, e))?;
        Ok(Meta::of(&st))
    }

    /// `HEAD /containers/{id}/archive`: the path's own metadata (a symlink is not
    /// followed, but its target is given, fully resolved inside the container).
    pub fn stat(&self, t: &Target) -> Result<PathStat, FsError> {
        let mut meta = self.target_meta(t)?;
        if meta.kind() == FileType::RegularFile {
            if let Some(host) = self.override_for(meta.id()) {
                if let Ok(m) = std::fs::metadata(host) {
                    meta = Meta::of_std(&m);
                }
            }
        }
        let link_target = if meta.kind() == FileType::Symlink {
            self.eval_symlinks(&t.abs)
                .map_err(|e| FsError::io(format!("resolving {}", t.given), e))?
        } else {
            String::new()
        };
        Ok(PathStat {
            name: base_name(&t.abs).to_string(),
            size: meta.size as i64,
            mode: go_file_mode(meta.mode),
            mtime: rfc3339(meta.mtime, meta.mtime_nsec),
            link_target,
        })
    }

    /// Evaluates every symlink of `abs` inside the root, as dockerd's
    /// FollowSymlinkInScope: missing components are kept as they are.
    fn eval_symlinks(&self, abs: &str) -> io::Result<String> {
        let mut resolved: Vec<Vec<u8>> = Vec::new();
        let mut pending: VecDeque<Vec<u8>> = components(abs.as_bytes()).collect();
        let mut links = 0;
        while let Some(component) = pending.pop_front() {
            if component == b"." {
                continue;
            }
            if component == b".." {
                resolved.pop();
                continue;
            }
            // `resolved` holds no symlinks, so this opens exactly that directory.
            let link = self
                .open_in_root(&resolved.join(&b'/'), OFlags::PATH | OFlags::DIRECTORY)
                .ok()
                .and_then(|dir| {
                    rustix::fs::readlinkat(&dir, component.as_slice(), Vec::new()).ok()
                });
            match link {
                Some(target) => {
                    links += 1;
                    if links > 255 {
                        return Err(Errno::LOOP.into());
                    }
                    let target = target.as_bytes();
                    if target.starts_with(b"/") {
                        resolved.clear();
                    }
                    for c in components(target).collect::<Vec<_>>().into_iter().rev() {
                        pending.push_front(c);
                    }
                }
                None => resolved.push(component),
            }
        }
        Ok(format!(
            "/{}",
            String::from_utf8_lossy(&resolved.join(&b'/'))
        ))
    }

    /// `GET /containers/{id}/archive`: a tar of the path, its top entry named as the
    /// path's last component (`/` for the root: entries `/`, `/bin/`, ...).
    pub fn archive<W: Write>(&self, t: &Target, out: W) -> io::Result<W> {
        let name = base_name(&t.abs).as_bytes().to_vec();
        let mut a = Archiver::new(self, out, true);
        match &t.last {
            Some(last) => {
                if let Some((dir, _)) = a.entry(t.dir.as_fd(), last, name.clone())? {
                    a.tree(dir, name)?;
                }
            }
            None => {
                let dir = rustix::fs::openat(
                    &t.dir,
                    c".",
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                let meta = Meta::of(&rustix::fs::fstat(&dir)?);
                let mut dir_name = name.clone();
                if !dir_name.ends_with(b"/") {
                    dir_name.push(b'/');
                }
                a.out.entry(
                    meta.header(EntryType::Directory, 0),
                    &dir_name,
                    None,
                    &[],
                    io::empty(),
                )?;
                a.tree(dir, name)?;
            }
        }
        a.out.finish()
    }

    /// `GET /containers/{id}/export`: the whole root filesystem, entries named from it
    /// (`bin/`, `bin/busybox`, ...), as the rootfs has them (no engine files substituted).
    pub fn export<W: Write>(&self, out: W) -> io::Result<W> {
        let root = self
            .open_in_root(b".", OFlags::RDONLY | OFlags::DIRECTORY)
            .map_err(io::Error::from)?;
        let mut a = Archiver::new(self, out, false);
        a.tree(root, Vec::new())?;
        a.out.finish()
    }
}

/// What `stat` says, in the types used here.
#[derive(Debug, Clone, Copy)]
struct Meta {
    dev: u64,
    ino: u64,
    mode: u32,
    nlink: u64,
    uid: u32,
    gid: u32,
    rdev: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: u32,
}

impl Meta {
    // The stat fields' widths differ between architectures.
    #[allow(clippy::unnecessary_cast)]
    fn of(st: &rustix::fs::Stat) -> Meta {
        Meta {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            mode: st.st_mode as u32,
            nlink: st.st_nlink as u64,
            uid: st.st_uid as u32,
            gid: st.st_gid as u32,
            rdev: st.st_rdev as u64,
            size: st.st_size.max(0) as u64,
            mtime: st.st_mtime as i64,
            mtime_nsec: st.st_mtime_nsec as u32,
        }
    }

    fn of_std(m: &std::fs::Metadata) -> Meta {
        Meta {
            dev: m.dev(),
            ino: m.ino(),
            mode: m.mode(),
            nlink: m.nlink(),
            uid: m.uid(),
            gid: m.gid(),
            rdev: m.rdev(),
            size: m.size(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec() as u32,
        }
    }

    fn kind(&self) -> FileType {
        FileType::from_raw_mode(self.mode)
    }

    fn id(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }

    fn header(&self, kind: EntryType, size: u64) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(self.mode & 0o7777);
        h.set_uid(self.uid.into());
        h.set_gid(self.gid.into());
        h.set_mtime(self.mtime.max(0) as u64);
        h.set_size(size);
        h
    }
}

/// The names in a directory (without `.` and `..`), sorted, as Go's Walk lists them.
fn list_dir(dir: &OwnedFd) -> io::Result<std::vec::IntoIter<CString>> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names.into_iter())
}

/// Opens a directory entry that must be a directory, never following a symlink.
fn open_dir_nofollow(parent: BorrowedFd<'_>, name: &CStr) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// `prefix/name` in the archive (`name` alone at the top of an export).
fn join_name(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = prefix.to_vec();
    if !out.is_empty() && !out.ends_with(b"/") {
        out.push(b'/');
    }
    out.extend_from_slice(name);
    out
}

/// One directory being archived. Its fd is dropped while the walk is deep below it and
/// reopened (by its path from the top, no symlink followed, same inode required) when it
/// comes back.
struct Frame {
    fd: Option<OwnedFd>,
    rel: Vec<u8>,
    tar_name: Vec<u8>,
    id: (u64, u64),
    children: std::vec::IntoIter<CString>,
}

struct Archiver<'a, W: Write> {
    fs: &'a RootFs,
    out: TarOut<W>,
    /// Regular files with several links: the first name each was archived under.
    links: HashMap<(u64, u64), Vec<u8>>,
    /// Whether the engine's bind-mounted files replace their mount points.
    overrides: bool,
}

impl<'a, W: Write> Archiver<'a, W> {
    fn new(fs: &'a RootFs, out: W, overrides: bool) -> Self {
        Archiver {
            fs,
            out: TarOut(tar::Builder::new(out)),
            links: HashMap::new(),
            overrides,
        }
    }

    /// Archives what is below directory `top` (not `top` itself), named `prefix/...`.
    fn tree(&mut self, top: OwnedFd, prefix: Vec<u8>) -> io::Result<()> {
        let id = Meta::of(&rustix::fs::fstat(&top)?).id();
        let children = list_dir(&top)?;
        let mut stack = vec![Frame {
            fd: Some(top),
            rel: Vec::new(),
            tar_name: prefix,
            id,
            children,
        }];
        while let Some(i) = stack.len().checked_sub(1) {
            let Some(name) = stack[i].children.next() else {
                stack.pop();
                continue;
            };
            if stack[i].fd.is_none() {
                let top = stack[0].fd.as_ref().expect("the top directory stays open");
                stack[i].fd = Some(reopen(top.as_fd(), &stack[i].rel, stack[i].id)?);
            }
            let tar_name = join_name(&stack[i].tar_name, name.to_bytes());
            let dir = stack[i].fd.as_ref().expect("reopened").as_fd();
            let Some((child, meta)) = self.entry(dir, &name, tar_name.clone())? else {
                continue;
            };
            let rel = join_name(&stack[i].rel, name.to_bytes());
            let children = list_dir(&child)?;
            stack.push(Frame {
                fd: Some(child),
                rel,
                tar_name,
                id: meta.id(),
                children,
            });
            if let Some(j) = stack.len().checked_sub(MAX_OPEN_DIRS).filter(|j| *j > 0) {
                stack[j].fd = None;
            }
        }
        Ok(())
    }

    /// Archives entry `name` of `dir`; a directory comes back opened, to be walked.
    fn entry(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        tar_name: Vec<u8>,
    ) -> io::Result<Option<(OwnedFd, Meta)>> {
        let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Meta::of(&st),
            // Removed meanwhile.
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        match st.kind() {
            FileType::Directory => {
                let fd = match open_dir_nofollow(dir, name) {
                    Ok(fd) => fd,
                    // Replaced meanwhile.
                    Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => return Ok(None),
                    Err(e) => return Err(e.into()),
                };
                let meta = Meta::of(&rustix::fs::fstat(&fd)?);
                let mut dir_name = tar_name;
                dir_name.push(b'/');
                let header = meta.header(EntryType::Directory, 0);
                self.out.entry(header, &dir_name, None, &[], io::empty())?;
                Ok(Some((fd, meta)))
            }
            FileType::RegularFile => {
                self.file(dir, name, &tar_name, &st)?;
                Ok(None)
            }
            FileType::Symlink => {
                let target = match rustix::fs::readlinkat(dir, name, Vec::new()) {
                    Ok(t) => t,
                    Err(Errno::NOENT | Errno::INVAL) => return Ok(None),
                    Err(e) => return Err(e.into()),
                };
                let header = st.header(EntryType::Symlink, 0);
                self.out
                    .entry(header, &tar_name, Some(target.as_bytes()), &[], io::empty())?;
                Ok(None)
            }
            kind @ (FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo) => {
                let entry_type = match kind {
                    FileType::CharacterDevice => EntryType::Char,
                    FileType::BlockDevice => EntryType::Block,
                    _ => EntryType::Fifo,
                };
                let mut header = st.header(entry_type, 0);
                if kind != FileType::Fifo {
                    header.set_device_major(rustix::fs::major(st.rdev))?;
                    header.set_device_minor(rustix::fs::minor(st.rdev))?;
                }
                self.out.entry(header, &tar_name, None, &[], io::empty())?;
                Ok(None)
            }
            // Sockets and the unknown: Docker's archives leave them out too.
            _ => Ok(None),
        }
    }

    fn file(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        tar_name: &[u8],
        st: &Meta,
    ) -> io::Result<()> {
        if self.overrides {
            if let Some(host) = self.fs.override_for(st.id()) {
                // The engine's own file, which the container sees over this mount point.
                let file = File::open(host)?;
                let meta = Meta::of_std(&file.metadata()?);
                let header = meta.header(EntryType::Regular, meta.size);
                return self
                    .out
                    .entry(header, tar_name, None, &[], Exactly::new(file, meta.size));
            }
        }
        // Non-blocking: a FIFO swapped in meanwhile opens at once (and is skipped below);
        // a device node cannot be opened on the nodev clone at all.
        let fd = match rustix::fs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::LOOP | Errno::ACCESS | Errno::NXIO | Errno::PERM) => {
                return Ok(())
            }
            Err(e) => return Err(e.into()),
        };
        let meta = Meta::of(&rustix::fs::fstat(&fd)?);
        if meta.kind() != FileType::RegularFile {
            return Ok(());
        }
        if meta.nlink > 1 {
            if let Some(first) = self.links.get(&meta.id()) {
                let first = first.clone();
                let header = meta.header(EntryType::Link, 0);
                return self
                    .out
                    .entry(header, tar_name, Some(&first), &[], io::empty());
            }
            self.links.insert(meta.id(), tar_name.to_vec());
        }
        let xattrs = archived_xattrs(fd.as_fd());
        let pax: Vec<(&str, &[u8])> = xattrs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        let header = meta.header(EntryType::Regular, meta.size);
        self.out.entry(
            header,
            tar_name,
            None,
            &pax,
            Exactly::new(File::from(fd), meta.size),
        )
    }
}

/// Reopens a directory left while walking below it: its path from the walk's top, no
/// symlink followed, and it must still be the same directory.
fn reopen(top: BorrowedFd<'_>, rel: &[u8], id: (u64, u64)) -> io::Result<OwnedFd> {
    let fd = rustix::fs::openat2(
        top,
        rel,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH
            | ResolveFlags::NO_SYMLINKS
            | ResolveFlags::NO_MAGICLINKS
            | ResolveFlags::NO_XDEV,
    )?;
    if Meta::of(&rustix::fs::fstat(&fd)?).id() != id {
        return Err(io::Error::other(format!(
            "{} changed while it was being archived",
            String::from_utf8_lossy(rel)
        )));
    }
    Ok(fd)
}

/// A reader giving exactly `left` bytes: a file that shrank meanwhile is padded with
/// zeros, one that grew is cut, so the tar stays well-formed.
struct Exactly<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Exactly<R> {
    fn new(inner: R, left: u64) -> Self {
        Exactly { inner, left }
    }
}

impl<R: Read> Read for Exactly<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = match self.inner.read(&mut buf[..want])? {
            0 => {
                buf[..want].fill(0);
                want
            }
            n => n,
        };
        self.left -= n as u64;
        Ok(n)
    }
}

/// The tar writer: GNU headers, GNU long names and link names, PAX records for xattrs.
/// Names are written as given (the root's entries start with `/`, as dockerd's do).
struct TarOut<W: Write>(tar::Builder<W>);

const NAME_FIELD: usize = 100;

impl<W: Write> TarOut<W> {
    fn entry(
        &mut self,
        mut header: Header,
        name: &[u8],
        link: Option<&[u8]>,
        pax: &[(&str, &[u8])],
        data: impl Read,
    ) -> io::Result<()> {
        if !pax.is_empty() {
            let records = kapsel_image::pax::records(pax);
            let mut h = Header::new_gnu();
            set_field(&mut h.as_old_mut().name, b"PaxHeader");
            h.set_entry_type(EntryType::XHeader);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_size(records.len() as u64);
            h.set_cksum();
            self.0.append(&h, records.as_slice())?;
        }
        if name.len() > NAME_FIELD {
            self.long(EntryType::GNULongName, name)?;
        }
        if let Some(link) = link {
            if link.len() > NAME_FIELD {
                self.long(EntryType::GNULongLink, link)?;
            }
            set_field(&mut header.as_old_mut().linkname, link);
        }
        set_field(&mut header.as_old_mut().name, name);
        header.set_cksum();
        self.0.append(&header, data)
    }

    fn long(&mut self, kind: EntryType, value: &[u8]) -> io::Result<()> {
        let mut h = Header::new_gnu();
        set_field(&mut h.as_old_mut().name, b"././@LongLink");
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(value.len() as u64 + 1);
        h.set_cksum();
        self.0.append(&h, value.chain(&[0u8][..]))
    }

    fn finish(self) -> io::Result<W> {
        self.0.into_inner()
    }
}

/// A header field: the value, cut to the field, NUL-padded.
fn set_field(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
    field[n..].fill(0);
}

/// How `PUT /containers/{id}/archive` extracts.
#[derive(Debug, Clone, Default)]
pub struct ExtractOptions {
    /// Refuse to replace a directory with a non-directory or the other way round.
    pub no_overwrite_dir_non_dir: bool,
    /// Owner of everything extracted (`copyUIDGID` with a container user); else the
    /// archive's.
    pub owner: Option<(u32, u32)>,
}

impl RootFs {
    /// `PUT /containers/{id}/archive`: extracts a tar (plain or gzip'd) into directory
    /// `dest` (resolved inside the root, its last symlink followed, as dockerd does).
    pub fn extract(
        &self,
        dest: &str,
        input: impl Read,
        opts: &ExtractOptions,
    ) -> Result<(), FsError> {
        let abs = container_path(dest);
        let dest_components: Vec<Vec<u8>> =
            components(abs.as_bytes()).filter(|c| c != b".").collect();
        let fd = self
            .open_in_root(&dest_components.join(&b'/'), OFlags::PATH)
            .map_err(|e| lookup_error(dest, e))?;
        let meta = Meta::of(&rustix::fs::fstat(&fd).map_err(|e| lookup_error(dest, e))?);
        if meta.kind() != FileType::Directory {
            return Err(FsError::NotADirectory);
        }
        drop(fd);
        let input = decompress(input)?;
        let mut archive = tar::Archive::new(input);
        let mut dir_times = Vec::new();
        let entries = archive
            .entries()
            .map_err(|e| FsError::Invalid(format!("reading the archive: {e}")))?;
        for entry in entries {
            let mut entry =
                entry.map_err(|e| FsError::Invalid(format!("reading the archive: {e}")))?;
            self.extract_entry(&dest_components, &mut entry, opts, &mut dir_times)?;
        }
        // Directory times last (writing into a directory changes its mtime), deepest first.
        for (components, times) in dir_times.iter().rev() {
            let _ = self.set_times(components, times);
        }
        Ok(())
    }

    fn extract_entry<R: Read>(
        &self,
        dest: &[Vec<u8>],
        entry: &mut tar::Entry<'_, R>,
        opts: &ExtractOptions,
        dir_times: &mut Vec<(Vec<Vec<u8>>, Timestamps)>,
    ) -> Result<(), FsError> {
        let raw_name = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_name).into_owned();
        let relative = archive_components(&raw_name)?;
        let header = entry.header().clone();
        let kind = header.entry_type();
        let bad = |what: &str| FsError::Invalid(format!("archive entry {shown:?}: invalid {what}"));
        // Empty numeric fields read as 0, as Go's tar reader reads them.
        let (uid, gid) = match opts.owner {
            Some(owner) => owner,
            None => (
                u32::try_from(header.uid().unwrap_or(0)).map_err(|_| bad("uid"))?,
                u32::try_from(header.gid().unwrap_or(0)).map_err(|_| bad("gid"))?,
            ),
        };
        let mode = Mode::from_raw_mode(header.mode().map_err(|_| bad("mode"))? & 0o7777);
        let mtime = header.mtime().unwrap_or(0);
        let time = rustix::fs::Timespec {
            tv_sec: i64::try_from(mtime).unwrap_or(i64::MAX),
            tv_nsec: 0,
        };
        let times = Timestamps {
            last_access: time,
            last_modification: time,
        };
        let xattrs = xattrs_of(entry);
        let (uid, gid) = (
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        );
        let Some((last, parents)) = relative.split_last() else {
            // The extraction directory itself (`./`): only a directory entry applies.
            if kind.is_dir() {
                let dir = self
                    .open_in_root(&dest.join(&b'/'), OFlags::RDONLY | OFlags::DIRECTORY)
                    .map_err(|e| FsError::io(format!("opening {shown}"), e))?;
                let apply = || -> Result<(), Errno> {
                    rustix::fs::fchown(&dir, uid, gid)?;
                    rustix::fs::fchmod(&dir, mode)
                };
                apply().map_err(|e| FsError::io(format!("extracting {shown}"), e))?;
                dir_times.push((dest.to_vec(), times));
            }
            return Ok(());
        };
        let mut full = dest.to_vec();
        full.extend(parents.iter().cloned());
        let parent = self.make_dirs(&full, &shown)?;
        full.push(last.clone());
        let name = CString::new(last.as_slice()).map_err(|_| bad("name"))?;
        let failed = |e: Errno| FsError::io(format!("extracting {shown}"), e);

        // What is there already.
        match rustix::fs::statat(&parent, &name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let old = Meta::of(&st);
                let old_dir = old.kind() == FileType::Directory;
                let new_dir = kind.is_dir();
                if !(old_dir && new_dir) {
                    let path = display_path(&full);
                    if self.busy.contains(&old.id()) {
                        return Err(FsError::io(format!("unlinkat {path}"), Errno::BUSY));
                    }
                    if opts.no_overwrite_dir_non_dir && old_dir {
                        return Err(FsError::Invalid(format!(
                            "cannot overwrite directory \"{path}\" with non-directory \"{shown}\""
                        )));
                    }
                    if opts.no_overwrite_dir_non_dir && new_dir {
                        return Err(FsError::Invalid(format!(
                            "cannot overwrite non-directory \"{path}\" with directory \"{shown}\""
                        )));
                    }
                    if old_dir {
                        self.remove_tree(parent.as_fd(), &name)
                            .map_err(|e| FsError::io(format!("removing {path}"), e))?;
                    } else {
                        rustix::fs::unlinkat(&parent, &name, AtFlags::empty()).map_err(failed)?;
                    }
                }
            }
            Err(Errno::NOENT) => {}
            Err(e) => return Err(failed(e)),
        }

        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let fd = rustix::fs::openat(
                    &parent,
                    &name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(failed)?;
                let mut file = File::from(fd);
                io::copy(entry, &mut file)
                    .map_err(|e| FsError::io(format!("extracting {shown}"), e))?;
                let apply = || -> Result<(), Errno> {
                    rustix::fs::fchown(&file, uid, gid)?;
                    rustix::fs::fchmod(&file, mode)?;
                    set_xattrs(file.as_fd(), &xattrs);
                    rustix::fs::futimens(&file, &times)
                };
                apply().map_err(failed)?;
            }
            EntryType::Directory => {
                match rustix::fs::mkdirat(&parent, &name, Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(failed(e)),
                }
                let dir = open_dir_nofollow(parent.as_fd(), &name).map_err(failed)?;
                let apply = || -> Result<(), Errno> {
                    rustix::fs::fchown(&dir, uid, gid)?;
                    rustix::fs::fchmod(&dir, mode)?;
                    set_xattrs(dir.as_fd(), &xattrs);
                    Ok(())
                };
                apply().map_err(failed)?;
                dir_times.push((full, times));
            }
            EntryType::Symlink => {
                // Stored as it is: it only ever resolves inside the container.
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| bad("symlink target"))?;
                rustix::fs::symlinkat(target.as_ref(), &parent, &name).map_err(failed)?;
                rustix::fs::chownat(&parent, &name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(failed)?;
                rustix::fs::utimensat(&parent, &name, &times, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(failed)?;
            }
            EntryType::Link => {
                // The target is named from the extraction directory, as tar has it.
                let target = entry.link_name_bytes().ok_or_else(|| bad("link target"))?;
                let target_components = archive_components(&target)?;
                let Some((target_last, target_parents)) = target_components.split_last() else {
                    return Err(bad("link target"));
                };
                let mut target_dir = dest.to_vec();
                target_dir.extend(target_parents.iter().cloned());
                let target_parent = self
                    .open_in_root(&target_dir.join(&b'/'), OFlags::PATH | OFlags::DIRECTORY)
                    .map_err(failed)?;
                // No AT_SYMLINK_FOLLOW: a symlink target is linked, not what it points to.
                rustix::fs::linkat(
                    &target_parent,
                    target_last.as_slice(),
                    &parent,
                    &name,
                    AtFlags::empty(),
                )
                .map_err(failed)?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (file_type, dev) = match kind {
                    EntryType::Fifo => (FileType::Fifo, 0),
                    _ => {
                        let major = header.device_major().ok().flatten().unwrap_or(0);
                        let minor = header.device_minor().ok().flatten().unwrap_or(0);
                        let file_type = if kind == EntryType::Char {
                            FileType::CharacterDevice
                        } else {
                            FileType::BlockDevice
                        };
                        (file_type, rustix::fs::makedev(major, minor))
                    }
                };
                rustix::fs::mknodat(&parent, &name, file_type, Mode::from_raw_mode(0o600), dev)
                    .map_err(failed)?;
                rustix::fs::chownat(&parent, &name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(failed)?;
                chmod_node(parent.as_fd(), &name, mode).map_err(failed)?;
                rustix::fs::utimensat(&parent, &name, &times, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(failed)?;
            }
            // Metadata entries are read by the tar reader; anything else is skipped.
            _ => {}
        }
        Ok(())
    }

    /// The directory `components` (from the root), resolved inside it; missing ones are
    /// created (0755, root's), one at a time, each relative to its parent's fd.
    fn make_dirs(&self, components: &[Vec<u8>], shown: &str) -> Result<OwnedFd, FsError> {
        let flags = OFlags::PATH | OFlags::DIRECTORY;
        let failed = |e: Errno| FsError::io(format!("creating the directories of {shown}"), e);
        match self.open_in_root(&components.join(&b'/'), flags) {
            Ok(fd) => return Ok(fd),
            Err(Errno::NOENT) => {}
            Err(e) => return Err(failed(e)),
        }
        let mut dir = self.open_in_root(b".", flags).map_err(failed)?;
        for i in 0..components.len() {
            let prefix = components[..=i].join(&b'/');
            dir = match self.open_in_root(&prefix, flags) {
                Ok(next) => next,
                Err(Errno::NOENT) => {
                    let name = CString::new(components[i].as_slice())
                        .map_err(|_| FsError::Invalid(format!("invalid name in {shown:?}")))?;
                    match rustix::fs::mkdirat(&dir, &name, Mode::from_raw_mode(0o755)) {
                        Ok(()) => {
                            let created = open_dir_nofollow(dir.as_fd(), &name).map_err(failed)?;
                            rustix::fs::fchmod(&created, Mode::from_raw_mode(0o755))
                                .map_err(failed)?;
                        }
                        // A dangling symlink there fails the lookup below.
                        Err(Errno::EXIST) => {}
                        Err(e) => return Err(failed(e)),
                    }
                    self.open_in_root(&prefix, flags).map_err(failed)?
                }
                Err(e) => return Err(failed(e)),
            };
        }
        Ok(dir)
    }

    fn set_times(&self, components: &[Vec<u8>], times: &Timestamps) -> Result<(), Errno> {
        match components.split_last() {
            None => {
                let dir = self.open_in_root(b".", OFlags::RDONLY | OFlags::DIRECTORY)?;
                rustix::fs::futimens(&dir, times)
            }
            Some((last, parents)) => {
                let parent =
                    self.open_in_root(&parents.join(&b'/'), OFlags::PATH | OFlags::DIRECTORY)?;
                rustix::fs::utimensat(&parent, last.as_slice(), times, AtFlags::SYMLINK_NOFOLLOW)
            }
        }
    }

    /// Removes directory `name` of `parent` and everything in it, fd by fd, never following
    /// a symlink; a mount point of the running container in it stops the removal.
    fn remove_tree(&self, parent: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
        let top = open_dir_nofollow(parent, name)?;
        let children = list_dir(&top)?;
        let mut stack: Vec<(OwnedFd, std::vec::IntoIter<CString>)> = vec![(top, children)];
        let mut names: Vec<CString> = Vec::new();
        loop {
            let depth = stack.len();
            let Some((dir, children)) = stack.last_mut() else {
                break;
            };
            match children.next() {
                Some(child) => {
                    let st = match rustix::fs::statat(&*dir, &child, AtFlags::SYMLINK_NOFOLLOW) {
                        Ok(st) => Meta::of(&st),
                        Err(Errno::NOENT) => continue,
                        Err(e) => return Err(e.into()),
                    };
                    if self.busy.contains(&st.id()) {
                        return Err(Errno::BUSY.into());
                    }
                    if st.kind() == FileType::Directory {
                        if depth >= MAX_REMOVE_DEPTH {
                            return Err(io::Error::other(
                                "the directory tree is too deep to replace",
                            ));
                        }
                        let sub = open_dir_nofollow(dir.as_fd(), &child)?;
                        let sub_children = list_dir(&sub)?;
                        stack.push((sub, sub_children));
                        names.push(child);
                    } else {
                        rustix::fs::unlinkat(&*dir, &child, AtFlags::empty())?;
                    }
                }
                None => {
                    stack.pop();
                    if let (Some(done), Some((dir, _))) = (names.pop(), stack.last()) {
                        rustix::fs::unlinkat(dir, &done, AtFlags::REMOVEDIR)?;
                    }
                }
            }
        }
        rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR)?;
        Ok(())
    }
}

/// chmod of a device node or FIFO just made: through an O_PATH fd of it (the magic link
/// under /proc/self/fd names that inode, whatever happens to the name meanwhile).
fn chmod_node(parent: BorrowedFd<'_>, name: &CStr, mode: Mode) -> Result<(), Errno> {
    let fd = rustix::fs::openat(
        parent,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    if Meta::of(&rustix::fs::fstat(&fd)?).kind() == FileType::Symlink {
        return Ok(());
    }
    rustix::fs::chmod(format!("/proc/self/fd/{}", fd.as_raw_fd()), mode)
}

/// The xattrs archived with a regular file, as PAX records: file capabilities and user.*,
/// the ones an extraction applies.
fn archived_xattrs(fd: BorrowedFd<'_>) -> Vec<(String, Vec<u8>)> {
    let mut names = vec![0u8; 64 * 1024];
    let Ok(n) = rustix::fs::flistxattr(fd, &mut names[..]) else {
        return Vec::new();
    };
    names[..n]
        .split(|b| *b == 0)
        .filter_map(|name| std::str::from_utf8(name).ok())
        .filter(|name| *name == "security.capability" || name.starts_with("user."))
        .filter_map(|name| {
            let mut value = vec![0u8; 64 * 1024];
            let len = rustix::fs::fgetxattr(fd, name, &mut value[..]).ok()?;
            value.truncate(len);
            Some((format!("SCHILY.xattr.{name}"), value))
        })
        .collect()
}

/// The xattrs an archive entry carries that are applied: file capabilities and user.*.
fn xattrs_of<R: Read>(entry: &mut tar::Entry<'_, R>) -> Vec<(String, Vec<u8>)> {
    let Ok(Some(extensions)) = entry.pax_extensions() else {
        return Vec::new();
    };
    extensions
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.key().ok()?.strip_prefix("SCHILY.xattr.")?;
            (name == "security.capability" || name.starts_with("user."))
                .then(|| (name.to_string(), e.value_bytes().to_vec()))
        })
        .collect()
}

fn set_xattrs(fd: BorrowedFd<'_>, xattrs: &[(String, Vec<u8>)]) {
    for (name, value) in xattrs {
        // Best effort, as dockerd: a filesystem without xattrs does not fail the copy.
        let _ = rustix::fs::fsetxattr(fd, name.as_str(), value, rustix::fs::XattrFlags::empty());
    }
}

/// The body as a tar stream: plain or gzip'd; Docker's other compressions are refused.
fn decompress<'a>(mut input: impl Read + 'a) -> Result<Box<dyn Read + 'a>, FsError> {
    let mut magic = Vec::with_capacity(6);
    let mut buf = [0u8; 6];
    while magic.len() < 6 {
        let n = input
            .read(&mut buf[..6 - magic.len()])
            .map_err(|e| FsError::Invalid(format!("reading the archive: {e}")))?;
        if n == 0 {
            break;
        }
        magic.extend_from_slice(&buf[..n]);
    }
    let unsupported = [
        (&b"BZh"[..], "bzip2"),
        (&[0xfd, b'7', b'z', b'X', b'Z', 0][..], "xz"),
        (&[0x28, 0xb5, 0x2f, 0xfd][..], "zstd"),
    ];
    if let Some((_, name)) = unsupported.iter().find(|(m, _)| magic.starts_with(m)) {
        return Err(FsError::Invalid(format!(
            "{name}-compressed archives are not supported: send a plain or gzip'd tar"
        )));
    }
    let gzip = magic.starts_with(&[0x1f, 0x8b]);
    let stream = io::Cursor::new(magic).chain(input);
    Ok(if gzip {
        Box::new(flate2::read::MultiGzDecoder::new(stream))
    } else {
        Box::new(stream)
    })
}

/// The components of an archive entry name or hard link target, relative to the
/// extraction directory: leading `/` and `.` dropped; `..` refused (an entry outside the
/// extraction directory is a breakout, as dockerd calls it).
fn archive_components(name: &[u8]) -> Result<Vec<Vec<u8>>, FsError> {
    let mut out = Vec::new();
    for c in components(name) {
        match c.as_slice() {
            b"." => {}
            b".." => {
                return Err(FsError::Invalid(format!(
                    "archive entry {:?} is outside of the extraction directory",
                    String::from_utf8_lossy(name)
                )))
            }
            _ => out.push(c),
        }
    }
    Ok(out)
}

/// `/`-separated components, empty ones skipped.
fn components(path: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    path.split(|b| *b == b'/')
        .filter(|c| !c.is_empty())
        .map(<[u8]>::to_vec)
}

fn display_path(components: &[Vec<u8>]) -> String {
    format!("/{}", String::from_utf8_lossy(&components.join(&b'/')))
}

/// A client's path as dockerd reads it: absolute, cleaned (`.` and `..` resolved
/// lexically), with a trailing `/` or `/.` kept, since they mean "the directory" and
/// "its contents" to docker cp.
pub fn container_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut clean = format!("/{}", parts.join("/"));
    let ends_with_dot = path == "." || path.ends_with("/.");
    if ends_with_dot && base_name(&clean) != "." {
        if !clean.ends_with('/') {
            clean.push('/');
        }
        clean.push('.');
    }
    if !clean.ends_with('/') && path.ends_with('/') {
        clean.push('/');
    }
    clean
}

/// Go's filepath.Split: everything up to the last `/`, and the rest.
fn split_path(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(i) => (&path[..=i], &path[i + 1..]),
        None => ("", path),
    }
}

/// Go's filepath.Base: the last element, trailing slashes ignored; `/` for the root.
pub fn base_name(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/";
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed)
}

/// Go's os.FileMode bits for a stat mode, as Docker puts them in the path stat.
pub fn go_file_mode(st_mode: u32) -> u32 {
    const DIR: u32 = 1 << 31;
    const SYMLINK: u32 = 1 << 27;
    const DEVICE: u32 = 1 << 26;
    const NAMED_PIPE: u32 = 1 << 25;
    const SOCKET: u32 = 1 << 24;
    const SETUID: u32 = 1 << 23;
    const SETGID: u32 = 1 << 22;
    const CHAR_DEVICE: u32 = 1 << 21;
    const STICKY: u32 = 1 << 20;
    let mut mode = st_mode & 0o777;
    mode |= match FileType::from_raw_mode(st_mode) {
        FileType::Directory => DIR,
        FileType::Symlink => SYMLINK,
        FileType::BlockDevice => DEVICE,
        FileType::CharacterDevice => DEVICE | CHAR_DEVICE,
        FileType::Fifo => NAMED_PIPE,
        FileType::Socket => SOCKET,
        _ => 0,
    };
    if st_mode & 0o4000 != 0 {
        mode |= SETUID;
    }
    if st_mode & 0o2000 != 0 {
        mode |= SETGID;
    }
    if st_mode & 0o1000 != 0 {
        mode |= STICKY;
    }
    mode
}

/// Standard base64 with padding, as Go's base64.StdEncoding.
pub fn base64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kapseld-fs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("root/etc")).unwrap();
        dir
    }

    #[test]
    fn paths_clean_as_dockerd_cleans_them() {
        assert_eq!(container_path("etc/hostname"), "/etc/hostname");
        assert_eq!(container_path("/a/../../b/./c"), "/b/c");
        assert_eq!(container_path("/tmp/"), "/tmp/");
        assert_eq!(container_path("/tmp/."), "/tmp/.");
        assert_eq!(container_path("/"), "/");
        assert_eq!(container_path("/."), "/.");
        assert_eq!(split_path("/tmp/."), ("/tmp/", "."));
        assert_eq!(split_path("/"), ("/", ""));
        assert_eq!(base_name("/tmp/"), "tmp");
        assert_eq!(base_name("/tmp/."), ".");
        assert_eq!(base_name("/"), "/");
    }

    #[test]
    fn modes_and_stats_encode_as_docker_does() {
        assert_eq!(go_file_mode(0o100644), 0o644);
        assert_eq!(go_file_mode(0o40755), (1 << 31) | 0o755);
        assert_eq!(go_file_mode(0o120777), (1 << 27) | 0o777);
        assert_eq!(go_file_mode(0o20666), (1 << 26) | (1 << 21) | 0o666);
        assert_eq!(go_file_mode(0o41777), (1 << 31) | (1 << 20) | 0o777);
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(rfc3339(60, 5), "1970-01-01T00:01:00.000000005Z");
        assert_eq!(kapsel_image::pax::records(&[("a", b"b")]), b"6 a=b\n");
        // The length counts its own digits: 99 fits in two, 101 needs three.
        assert!(kapsel_image::pax::records(&[("k", [b'x'; 93])]).starts_with(b"99 k="));
        assert!(kapsel_image::pax::records(&[("k", [b'x'; 94])]).starts_with(b"101 k="));
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let dir = scratch("resolve");
        let root = dir.join("root");
        std::fs::write(root.join("etc/marker"), "container\n").unwrap();
        std::os::unix::fs::symlink("/", root.join("escape")).unwrap();
        std::os::unix::fs::symlink("../../../../../../etc/marker", root.join("rel")).unwrap();
        let fs = RootFs::from_dir(&root).unwrap();
        // The host has /etc/os-release; the root has not: through the symlink it is missing.
        assert!(matches!(
            fs.resolve("/escape/etc/os-release"),
            Err(FsError::NoSuchPath { .. })
        ));
        let t = fs.resolve("/escape/etc/marker").unwrap();
        assert_eq!(fs.stat(&t).unwrap().size, 10);
        // The link itself, with its target evaluated in the root.
        let t = fs.resolve("/rel").unwrap();
        let stat = fs.stat(&t).unwrap();
        assert_eq!(stat.link_target, "/etc/marker");
        assert_ne!(stat.mode & (1 << 27), 0);
        let t = fs.resolve("/escape").unwrap();
        assert_eq!(fs.stat(&t).unwrap().link_target, "/");
        // An archive of the link holds the link, not what it points to.
        let tar = fs
            .archive(&fs.resolve("/escape").unwrap(), Vec::new())
            .unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let names: Vec<_> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().entry_type(),
                )
            })
            .collect();
        assert_eq!(names, vec![("escape".to_string(), EntryType::Symlink)]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_tree_archives_with_links_and_long_names() {
        let dir = scratch("archive");
        let root = dir.join("root");
        let deep = (0..40)
            .map(|i| format!("d{i:02}"))
            .collect::<Vec<_>>()
            .join("/");
        std::fs::create_dir_all(root.join("data").join(&deep)).unwrap();
        std::fs::write(root.join("data").join(&deep).join("leaf"), "deep").unwrap();
        std::fs::write(root.join("data/a"), "aaa").unwrap();
        std::fs::hard_link(root.join("data/a"), root.join("data/b")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("data/s")).unwrap();
        let fs = RootFs::from_dir(&root).unwrap();
        let tar = fs
            .archive(&fs.resolve("/data").unwrap(), Vec::new())
            .unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut seen = HashMap::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().display().to_string();
            let link = e.link_name().unwrap().map(|l| l.display().to_string());
            let mut text = String::new();
            e.read_to_string(&mut text).unwrap();
            seen.insert(name, (e.header().entry_type(), link, text));
        }
        assert_eq!(seen["data/a"], (EntryType::Regular, None, "aaa".into()));
        assert_eq!(seen["data/b"].0, EntryType::Link);
        assert_eq!(seen["data/b"].1.as_deref(), Some("data/a"));
        assert_eq!(seen["data/s"].1.as_deref(), Some("/etc/passwd"));
        let leaf = format!("data/{deep}/leaf");
        assert_eq!(seen[&leaf].2, "deep");
        assert_eq!(seen.len(), 5 + 40);
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tar_of(entries: &[(&str, EntryType, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data) in entries {
            let mut h = Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(0o644);
            h.set_mtime(1_700_000_000);
            set_field(&mut h.as_old_mut().name, name.as_bytes());
            if matches!(kind, EntryType::Symlink | EntryType::Link) {
                set_field(&mut h.as_old_mut().linkname, data.as_bytes());
                h.set_size(0);
                h.set_cksum();
                b.append(&h, io::empty()).unwrap();
            } else {
                h.set_size(data.len() as u64);
                h.set_cksum();
                b.append(&h, data.as_bytes()).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn extraction_stays_inside_the_root() {
        let dir = scratch("extract");
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("dst")).unwrap();
        std::os::unix::fs::symlink("/../../../../..", root.join("dst/up")).unwrap();
        let fs = RootFs::from_dir(&root).unwrap();
        let outside = dir.join("outside");
        let opts = ExtractOptions::default();

        // `..` in a name is refused.
        let tar = tar_of(&[("../../outside", EntryType::Regular, "x")]);
        assert!(fs.extract("/dst", tar.as_slice(), &opts).is_err());
        assert!(!outside.exists());

        // A symlink from the archive, then a file through it: lands inside the root.
        let tar = tar_of(&[
            ("s", EntryType::Symlink, "/"),
            ("s/etc/through-link", EntryType::Regular, "in"),
            ("up/through-container-link", EntryType::Regular, "in"),
            ("/abs", EntryType::Regular, "abs"),
            ("h", EntryType::Link, "/abs"),
        ]);
        fs.extract("/dst", tar.as_slice(), &opts).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("etc/through-link")).unwrap(),
            "in"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("through-container-link")).unwrap(),
            "in"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("dst/abs")).unwrap(),
            "abs"
        );
        assert_eq!(std::fs::read_to_string(root.join("dst/h")).unwrap(), "abs");
        assert!(!Path::new("/etc/through-link").exists());
        assert!(!Path::new("/through-container-link").exists());

        // A hard link out of the extraction directory is refused.
        let tar = tar_of(&[("h2", EntryType::Link, "../../../etc/os-release")]);
        assert!(fs.extract("/dst", tar.as_slice(), &opts).is_err());
        assert!(!root.join("dst/h2").exists());

        // The extraction point must be a directory; a missing one is Docker's 404.
        assert!(matches!(
            fs.extract("/dst/abs", tar_of(&[]).as_slice(), &opts),
            Err(FsError::NotADirectory)
        ));
        assert!(matches!(
            fs.extract("/nope", tar_of(&[]).as_slice(), &opts),
            Err(FsError::NoSuchPath { .. })
        ));

        // No replacing a directory with a file when asked not to; replacing when allowed.
        std::fs::create_dir_all(root.join("dst/dir/sub")).unwrap();
        let tar = tar_of(&[("dir", EntryType::Regular, "file now")]);
        let strict = ExtractOptions {
            no_overwrite_dir_non_dir: true,
            owner: None,
        };
        assert!(fs.extract("/dst", tar.as_slice(), &strict).is_err());
        fs.extract("/dst", tar.as_slice(), &opts).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("dst/dir")).unwrap(),
            "file now"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
