//! A container's changes against its image: its overlayfs upper directory compared with
//! the image's layers, listed as `docker diff` shows them ([`Scan::changes`]) and written
//! as the layer tar `docker commit` stores ([`Scan::write_layer`]).
//!
//! The upper directory holds what the container wrote: files, directories copied up from
//! the layers, overlayfs whiteouts (0:0 character devices: "deleted") and opaque
//! directories (`trusted.overlay.opaque=y`: "everything below from the layers is
//! hidden"). In the layer tar they become OCI whiteouts again (`.wh.<name>`,
//! `.wh..wh..opq`), so [`crate::unpack`] turns the tar back into the same upper directory.
//!
//! Changes follow Docker's rules (the "naive" comparison of the container's view with the
//! image's): `A` for what the image does not have, `C` for what differs in type, mode,
//! owner, device, capabilities or (not for directories) size or mtime, and for a
//! directory that has changes below it, `D` for what the container deleted, including
//! everything of the image a recreated (opaque) directory hides. Paths are listed as
//! Docker's overlay driver walks them: each directory's names in byte order, a directory
//! before what is in it.
//!
//! What the runtime creates only as mount points (`/etc/hostname`, `/etc/hosts`,
//! `/etc/resolv.conf`, `/proc`, `/dev`, ... see [`RUNTIME_MOUNT_POINTS`]) is left out of
//! both when the image does not have it and it is empty: Docker keeps these in a separate
//! init layer that is never committed.
//!
//! The upper directory belongs to the container, which may still be running: it is
//! walked by directory descriptors, each name opened relative to its parent with
//! `O_NOFOLLOW`, so a symlink swapped in mid-walk is never followed out of it. The layer
//! directories are the store's own, read by path.

use std::collections::{BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, AtFlags, OFlag, AT_FDCWD};
use nix::sys::stat::{fstat, fstatat, FileStat, Mode};

use crate::error::{ImageError, Result};

/// What the runtime creates in a container's root filesystem only to mount something on
/// it (relative to the root). Docker's init layer holds the same.
pub const RUNTIME_MOUNT_POINTS: &[&str] = &[
    ".dockerenv",
    ".dockerinit",
    "dev",
    "dev/console",
    "dev/mqueue",
    "dev/pts",
    "dev/shm",
    "etc/hostname",
    "etc/hosts",
    "etc/mtab",
    "etc/resolv.conf",
    "proc",
    "sys",
    "sys/fs/cgroup",
];

/// Whiteout file prefix and the opaque-directory marker (OCI image spec).
const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// overlayfs's own attributes: never part of a layer.
const OVERLAY_XATTR_PREFIX: &str = "trusted.overlay.";
const OVERLAY_OPAQUE: &str = "trusted.overlay.opaque";
const OVERLAY_REDIRECT: &str = "trusted.overlay.redirect";
const OVERLAY_METACOPY: &str = "trusted.overlay.metacopy";
const CAPABILITY_XATTR: &str = "security.capability";
const PAX_XATTR_PREFIX: &str = "SCHILY.xattr.";
/// Deeper directory nesting is refused (the walk recurses once per level).
pub const MAX_DEPTH: usize = 1024;

/// `docker diff`'s kinds, with the API's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    Modified = 0,
    Added = 1,
    Deleted = 2,
}

impl ChangeKind {
    /// The letter `docker diff` prints.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Modified => 'C',
            ChangeKind::Added => 'A',
            ChangeKind::Deleted => 'D',
        }
    }
}

/// One changed path, absolute in the container (`/etc/passwd`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Change {
    pub path: String,
    pub kind: ChangeKind,
}

impl Change {
    fn new(rel: &Path, kind: ChangeKind) -> Change {
        Change {
            path: format!("/{}", rel.to_string_lossy()),
            kind,
        }
    }
}

#[derive(Debug, Clone)]
pub struct DiffOptions {
    /// Paths relative to the root that are left out when the image lacks them and they
    /// are empty (an empty file, or a directory holding only such paths).
    pub mount_points: BTreeSet<PathBuf>,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            mount_points: RUNTIME_MOUNT_POINTS.iter().map(PathBuf::from).collect(),
        }
    }
}

/// The file attributes compared and written, from `fstatat` (upper) or `lstat` (layers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    mode: u32,
    uid: u32,
    gid: u32,
    rdev: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
    dev: u64,
    ino: u64,
    nlink: u64,
}

impl Stat {
    fn from_file_stat(s: &FileStat) -> Stat {
        Stat {
            mode: s.st_mode,
            uid: s.st_uid,
            gid: s.st_gid,
            rdev: s.st_rdev,
            size: u64::try_from(s.st_size).unwrap_or(0),
            mtime: s.st_mtime,
            mtime_nsec: s.st_mtime_nsec,
            dev: s.st_dev,
            ino: s.st_ino,
            nlink: s.st_nlink,
        }
    }

    fn from_metadata(m: &fs::Metadata) -> Stat {
        Stat {
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            rdev: m.rdev(),
            size: m.size(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
            dev: m.dev(),
            ino: m.ino(),
            nlink: m.nlink(),
        }
    }

    fn kind(&self) -> u32 {
        self.mode & libc::S_IFMT
    }

    fn is_dir(&self) -> bool {
        self.kind() == libc::S_IFDIR
    }

    fn is_regular(&self) -> bool {
        self.kind() == libc::S_IFREG
    }

    /// overlayfs's "deleted here": a character device 0:0.
    fn is_whiteout(&self) -> bool {
        self.kind() == libc::S_IFCHR && self.rdev == 0
    }
}

/// Docker's test for "changed" (pkg/archive `statDifferent`): type and permissions,
/// owner, device number, and for non-directories size and mtime (equal seconds and
/// nanoseconds, or either without nanoseconds, as tar keeps none).
fn stat_different(old: &Stat, new: &Stat) -> bool {
    let same_time = old.mtime == new.mtime
        && (old.mtime_nsec == new.mtime_nsec || old.mtime_nsec == 0 || new.mtime_nsec == 0);
    old.mode != new.mode
        || old.uid != new.uid
        || old.gid != new.gid
        || old.rdev != new.rdev
        || (!old.is_dir() && (!same_time || old.size != new.size))
}

// ---------------------------------------------------------------------------------------
// The image's view: the layer directories merged as overlayfs merges them.

/// The layers below the container (top first), read as one tree.
struct Lower<'a> {
    layers: &'a [PathBuf],
}

/// A directory of the merged layers: the layers that contribute to it, top first.
#[derive(Debug, Clone)]
struct LowerDir {
    rel: PathBuf,
    stack: Vec<usize>,
}

/// An entry of the merged layers: its attributes (from the topmost layer that has it),
/// where that is, and for a directory the layers merged into it.
struct LowerEntry {
    stat: Stat,
    path: PathBuf,
    dir: Option<LowerDir>,
}

impl Lower<'_> {
    fn root(&self) -> Result<LowerDir> {
        let mut stack = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            if !layer.is_dir() {
                return Err(ImageError::io(
                    "read layer",
                    layer,
                    io::Error::from(io::ErrorKind::NotFound),
                ));
            }
            stack.push(i);
            if is_opaque(layer)? {
                break;
            }
        }
        Ok(LowerDir {
            rel: PathBuf::new(),
            stack,
        })
    }

    /// `name` in `dir`, looked up as overlayfs does: the first layer that has it decides;
    /// a whiteout hides it, a non-directory ends the search, and a directory is merged
    /// with the same directory further down until an opaque one or a non-directory.
    fn child(&self, dir: &LowerDir, name: &OsStr) -> Result<Option<LowerEntry>> {
        let rel = dir.rel.join(name);
        let mut top: Option<LowerEntry> = None;
        let mut stack = Vec::new();
        for &i in &dir.stack {
            let path = self.layers[i].join(&rel);
            let stat = match fs::symlink_metadata(&path) {
                Ok(m) => Stat::from_metadata(&m),
                Err(e) if absent(&e) => continue,
                Err(e) => return Err(ImageError::io("stat", &path, e)),
            };
            if stat.is_whiteout() {
                break;
            }
            if !stat.is_dir() {
                if top.is_none() {
                    top = Some(LowerEntry {
                        stat,
                        path,
                        dir: None,
                    });
                }
                break;
            }
            let opaque = is_opaque(&path)?;
            if top.is_none() {
                top = Some(LowerEntry {
                    stat,
                    path,
                    dir: None,
                });
            }
            stack.push(i);
            if opaque {
                break;
            }
        }
        if let Some(entry) = top.as_mut() {
            if entry.stat.is_dir() {
                entry.dir = Some(LowerDir { rel, stack });
            }
        }
        Ok(top)
    }

    /// The names the merged directory shows.
    fn names(&self, dir: &LowerDir) -> Result<BTreeSet<OsString>> {
        let mut seen: HashMap<OsString, bool> = HashMap::new();
        for &i in &dir.stack {
            let path = self.layers[i].join(&dir.rel);
            let entries = fs::read_dir(&path).map_err(|e| ImageError::io("list", &path, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| ImageError::io("list", &path, e))?;
                let name = entry.file_name();
                if seen.contains_key(&name) {
                    continue;
                }
                let meta = entry
                    .metadata()
                    .map_err(|e| ImageError::io("stat", entry.path(), e))?;
                seen.insert(name, !Stat::from_metadata(&meta).is_whiteout());
            }
        }
        Ok(seen
            .into_iter()
            .filter(|(_, visible)| *visible)
            .map(|(n, _)| n)
            .collect())
    }
}

fn absent(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
}

fn is_opaque(path: &Path) -> Result<bool> {
    match xattr::get(path, OVERLAY_OPAQUE) {
        Ok(value) => Ok(value.as_deref() == Some(b"y")),
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => Ok(false),
        Err(e) => Err(ImageError::io("read xattrs of", path, e)),
    }
}

// ---------------------------------------------------------------------------------------
// The scan of the upper directory.

/// What goes into the layer tar, in order.
#[derive(Debug, Clone)]
enum Entry {
    Dir {
        rel: PathBuf,
        stat: Stat,
        xattrs: Vec<(String, Vec<u8>)>,
        opaque: bool,
    },
    /// A regular file, a device node or a fifo (sockets are left out, as Docker does).
    Node {
        rel: PathBuf,
        stat: Stat,
        xattrs: Vec<(String, Vec<u8>)>,
    },
    Symlink {
        rel: PathBuf,
        stat: Stat,
        xattrs: Vec<(String, Vec<u8>)>,
        target: OsString,
    },
    Whiteout {
        rel: PathBuf,
        stat: Stat,
    },
}

/// A scanned upper directory: its changes and the entries of its layer tar.
#[derive(Debug, Clone)]
pub struct Scan {
    upper: PathBuf,
    changes: Vec<Change>,
    entries: Vec<Entry>,
}

/// One directory's results, put together by its parent.
#[derive(Default)]
struct DirScan {
    changes: Vec<Change>,
    entries: Vec<Entry>,
    /// Children left out as mount points.
    skipped: usize,
}

/// An entry's attributes in the upper directory, overlayfs's split out.
struct Xattrs {
    kept: Vec<(String, Vec<u8>)>,
    opaque: bool,
}

impl Scan {
    /// Scans `upper` against `lowers`, the image's layer directories top first. A missing
    /// `upper` (a container never started) has no changes.
    pub fn new(upper: &Path, lowers: &[PathBuf], options: &DiffOptions) -> Result<Scan> {
        let mut scan = Scan {
            upper: upper.to_path_buf(),
            changes: Vec::new(),
            entries: Vec::new(),
        };
        let root = match openat(AT_FDCWD, upper, dir_flags(), Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(scan),
            Err(e) => return Err(ImageError::io("open", upper, e.into())),
        };
        let lower = Lower { layers: lowers };
        let walker = Walker {
            lower: &lower,
            options,
        };
        let lower_root = lower.root()?;
        // Recursion is one frame per directory level: give it room (MAX_DEPTH levels).
        let result = std::thread::scope(|s| {
            std::thread::Builder::new()
                .name("kapsel-diff".into())
                .stack_size(64 << 20)
                .spawn_scoped(s, || {
                    walker.scan_dir(&root, Path::new(""), Some(&lower_root), false, 0)
                })
                .map_err(|e| ImageError::io("start a thread to scan", upper, e))?
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })?;
        scan.changes = result.changes;
        scan.entries = result.entries;
        Ok(scan)
    }

    /// The changes, in `docker diff`'s order.
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// No entries: the layer would be an empty tar (Docker then adds no layer).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes the layer tar: the upper directory with whiteouts in OCI form, owners,
    /// modes, mtimes (seconds), xattrs (all but overlayfs's own), hard links (as links to
    /// the first name), symlinks, device nodes and fifos. Returns the number of entries.
    ///
    /// Regular files are read now: one that changed since the scan (type, inode) is an
    /// error; one that only grew or shrank is cut or zero-padded to the size scanned.
    pub fn write_layer(&self, out: impl Write) -> Result<u64> {
        let mut writer = LayerWriter {
            tar: tar::Builder::new(out),
            links: HashMap::new(),
            entries: 0,
            files: FileOpener::new(&self.upper),
            negative_mtime: None,
        };
        for entry in &self.entries {
            writer.write(entry)?;
        }
        let mut out = writer
            .tar
            .into_inner()
            .map_err(|e| ImageError::io("write layer", &self.upper, e))?;
        out.flush()
            .map_err(|e| ImageError::io("write layer", &self.upper, e))?;
        Ok(writer.entries)
    }
}

struct Walker<'a> {
    lower: &'a Lower<'a>,
    options: &'a DiffOptions,
}

impl Walker<'_> {
    /// Scans the upper directory `fd` (at `rel`) against the merged layer directory
    /// `lower` (none if the image has no directory there). `opaque`: the image's entries
    /// here are hidden, so those the upper directory lacks are deleted.
    fn scan_dir(
        &self,
        fd: &OwnedFd,
        rel: &Path,
        lower: Option<&LowerDir>,
        opaque: bool,
        depth: usize,
    ) -> Result<DirScan> {
        if depth >= MAX_DEPTH {
            return Err(ImageError::EntryRefused {
                entry: rel.display().to_string(),
                reason: format!("directories nest deeper than {MAX_DEPTH} levels"),
            });
        }
        let upper_names = read_names(fd, rel)?;
        let mut names: BTreeSet<OsString> = upper_names.iter().cloned().collect();
        if opaque {
            if let Some(lower) = lower {
                names.extend(self.lower.names(lower)?);
            }
        }
        let mut out = DirScan::default();
        for name in names {
            let rel_child = rel.join(&name);
            let lower_child = match lower {
                Some(l) => self.lower.child(l, &name)?,
                None => None,
            };
            let stat = if upper_names.contains(&name) {
                match fstatat(fd, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
                    Ok(s) => Some(Stat::from_file_stat(&s)),
                    // Removed since the listing (a running container).
                    Err(Errno::ENOENT) => None,
                    Err(e) => return Err(upper_error(&rel_child, "stat", e)),
                }
            } else {
                None
            };
            let Some(stat) = stat else {
                // Only the image has it, and the directory hides it.
                if opaque && lower_child.is_some() {
                    out.changes
                        .push(Change::new(&rel_child, ChangeKind::Deleted));
                }
                continue;
            };
            if stat.is_whiteout() {
                if lower_child.is_some() {
                    out.changes
                        .push(Change::new(&rel_child, ChangeKind::Deleted));
                }
                out.entries.push(Entry::Whiteout {
                    rel: rel_child,
                    stat,
                });
            } else if stat.is_dir() {
                self.scan_subdir(fd, &name, rel_child, stat, lower_child, depth, &mut out)?;
            } else {
                self.scan_nondir(fd, &name, rel_child, stat, lower_child, &mut out)?;
            }
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn scan_subdir(
        &self,
        parent: &OwnedFd,
        name: &OsStr,
        rel: PathBuf,
        stat: Stat,
        lower: Option<LowerEntry>,
        depth: usize,
        out: &mut DirScan,
    ) -> Result<()> {
        let fd = match openat(parent, name, dir_flags(), Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(()),
            Err(e) => return Err(upper_error(&rel, "open directory", e)),
        };
        let xattrs = read_xattrs(&fd_path(&fd), &rel)?;
        let lower_dir = lower.as_ref().and_then(|l| l.dir.clone());
        let sub = self.scan_dir(&fd, &rel, lower_dir.as_ref(), xattrs.opaque, depth + 1)?;
        let empty = sub.entries.is_empty() && sub.changes.is_empty();
        if lower.is_none() && empty && self.options.mount_points.contains(&rel) {
            out.skipped += 1;
            return Ok(());
        }
        let differs = match &lower {
            None => true,
            Some(l) => stat_different(&l.stat, &stat) || capability_differs(l, &xattrs)?,
        };
        match &lower {
            None => out.changes.push(Change::new(&rel, ChangeKind::Added)),
            Some(_) if differs || !sub.changes.is_empty() => {
                out.changes.push(Change::new(&rel, ChangeKind::Modified))
            }
            Some(_) => {}
        }
        out.changes.extend(sub.changes);
        // A directory the image has, unchanged, that is here only because the runtime
        // created mount points in it, stays out of the layer.
        let only_mount_points = lower.as_ref().is_some_and(|l| l.dir.is_some())
            && !differs
            && !xattrs.opaque
            && sub.entries.is_empty()
            && sub.skipped > 0;
        if !only_mount_points {
            out.entries.push(Entry::Dir {
                rel,
                stat,
                xattrs: xattrs.kept,
                opaque: xattrs.opaque,
            });
            out.entries.extend(sub.entries);
        }
        Ok(())
    }

    fn scan_nondir(
        &self,
        parent: &OwnedFd,
        name: &OsStr,
        rel: PathBuf,
        stat: Stat,
        lower: Option<LowerEntry>,
        out: &mut DirScan,
    ) -> Result<()> {
        if lower.is_none()
            && stat.is_regular()
            && stat.size == 0
            && self.options.mount_points.contains(&rel)
        {
            out.skipped += 1;
            return Ok(());
        }
        let xattrs = read_xattrs(&entry_path(parent, name), &rel)?;
        match &lower {
            None => out.changes.push(Change::new(&rel, ChangeKind::Added)),
            Some(l) => {
                if stat_different(&l.stat, &stat) || capability_differs(l, &xattrs)? {
                    out.changes.push(Change::new(&rel, ChangeKind::Modified));
                }
            }
        }
        match stat.kind() {
            libc::S_IFSOCK => {}
            libc::S_IFLNK => {
                let target = match readlinkat(parent, name) {
                    Ok(t) => t,
                    Err(Errno::ENOENT | Errno::EINVAL) => {
                        return Err(changed(&rel, "it was replaced while being read"))
                    }
                    Err(e) => return Err(upper_error(&rel, "read symlink", e)),
                };
                out.entries.push(Entry::Symlink {
                    rel,
                    stat,
                    xattrs: xattrs.kept,
                    target,
                });
            }
            _ => out.entries.push(Entry::Node {
                rel,
                stat,
                xattrs: xattrs.kept,
            }),
        }
        Ok(())
    }
}

fn capability_differs(lower: &LowerEntry, upper: &Xattrs) -> Result<bool> {
    let old = match xattr::get(&lower.path, CAPABILITY_XATTR) {
        Ok(v) => v,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => None,
        Err(e) => return Err(ImageError::io("read xattrs of", &lower.path, e)),
    };
    let new = upper
        .kept
        .iter()
        .find(|(k, _)| k == CAPABILITY_XATTR)
        .map(|(_, v)| v.as_slice());
    Ok(old.as_deref() != new)
}

fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

/// The names in a directory (but `.` and `..`), read through its descriptor.
fn read_names(fd: &OwnedFd, rel: &Path) -> Result<Vec<OsString>> {
    let mut dir = Dir::openat(fd, ".", dir_flags(), Mode::empty())
        .map_err(|e| upper_error(rel, "list", e))?;
    let mut names = Vec::new();
    for entry in dir.iter() {
        let entry = entry.map_err(|e| upper_error(rel, "list", e))?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsString::from_vec(name.to_vec()));
        }
    }
    Ok(names)
}

/// A path to the directory behind `fd` that resolves nothing the container controls.
fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}/.", fd.as_raw_fd()))
}

/// A path to `name` in the directory behind `dir` for the calls without an `*at` form
/// (xattrs): only `name` is looked up, and the `l*` calls do not follow it.
fn entry_path(dir: &OwnedFd, name: &OsStr) -> PathBuf {
    Path::new(&format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name)
}

/// The entry's xattrs (not following a symlink), overlayfs's split out. Redirects and
/// metacopy (overlayfs features that leave data in the layers) cannot be committed.
fn read_xattrs(path: &Path, rel: &Path) -> Result<Xattrs> {
    let mut out = Xattrs {
        kept: Vec::new(),
        opaque: false,
    };
    let names = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(out),
        Err(e) => return Err(entry_error(rel, "list xattrs", e)),
    };
    for name in names {
        let Some(key) = name.to_str() else {
            continue;
        };
        let value = match xattr::get(path, &name) {
            Ok(Some(v)) => v,
            Ok(None) => continue,
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => continue,
            Err(e) => return Err(entry_error(rel, "read xattr", e)),
        };
        if let Some(feature) = match key {
            OVERLAY_REDIRECT => Some("redirect_dir (a renamed directory)"),
            OVERLAY_METACOPY => Some("metacopy (a metadata-only copy-up)"),
            _ => None,
        } {
            return Err(ImageError::OverlayFeature {
                path: format!("/{}", rel.display()),
                feature,
            });
        }
        if key == OVERLAY_OPAQUE {
            out.opaque = value == b"y";
        } else if !key.starts_with(OVERLAY_XATTR_PREFIX) {
            out.kept.push((key.to_string(), value));
        }
    }
    out.kept.sort();
    Ok(out)
}

fn upper_error(rel: &Path, op: &str, e: Errno) -> ImageError {
    entry_error(rel, op, e.into())
}

fn entry_error(rel: &Path, op: &str, source: io::Error) -> ImageError {
    ImageError::Entry {
        entry: format!("/{}", rel.display()),
        op: op.to_string(),
        source,
    }
}

fn changed(rel: &Path, reason: &str) -> ImageError {
    ImageError::ContainerFileChanged {
        path: format!("/{}", rel.display()),
        reason: reason.to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// The layer tar.

struct LayerWriter<W: Write> {
    tar: tar::Builder<W>,
    /// The first name written of each multiply-linked inode.
    links: HashMap<(u64, u64), Vec<u8>>,
    entries: u64,
    files: FileOpener,
    /// The next entry's mtime when it is before the epoch.
    negative_mtime: Option<i64>,
}

impl<W: Write> LayerWriter<W> {
    fn write(&mut self, entry: &Entry) -> Result<()> {
        let stat = match entry {
            Entry::Dir { stat, .. }
            | Entry::Node { stat, .. }
            | Entry::Symlink { stat, .. }
            | Entry::Whiteout { stat, .. } => stat,
        };
        self.negative_mtime = (stat.mtime < 0).then_some(stat.mtime);
        match entry {
            Entry::Dir {
                rel,
                stat,
                xattrs,
                opaque,
            } => {
                let mut name = rel.as_os_str().as_bytes().to_vec();
                name.push(b'/');
                let h = header(tar::EntryType::Directory, stat, stat.mode & 0o7777);
                self.append(rel, h, &name, None, xattrs, io::empty())?;
                if *opaque {
                    let marker = rel.join(OPAQUE_MARKER);
                    let h = header(tar::EntryType::Regular, stat, stat.mode & 0o777);
                    let name = marker.as_os_str().as_bytes().to_vec();
                    self.append(&marker, h, &name, None, &[], io::empty())?;
                }
            }
            Entry::Whiteout { rel, stat } => {
                let base = rel.file_name().unwrap_or_default();
                let mut hidden = OsString::from(WHITEOUT_PREFIX);
                hidden.push(base);
                let path = rel.with_file_name(hidden);
                let h = header(tar::EntryType::Regular, stat, 0o600);
                let name = path.as_os_str().as_bytes().to_vec();
                self.append(&path, h, &name, None, &[], io::empty())?;
            }
            Entry::Symlink {
                rel,
                stat,
                xattrs,
                target,
            } => {
                if self.hard_link(rel, stat)? {
                    return Ok(());
                }
                let h = header(tar::EntryType::Symlink, stat, stat.mode & 0o7777);
                let name = rel.as_os_str().as_bytes().to_vec();
                self.append(rel, h, &name, Some(target.as_bytes()), xattrs, io::empty())?;
            }
            Entry::Node { rel, stat, xattrs } => {
                if self.hard_link(rel, stat)? {
                    return Ok(());
                }
                let name = rel.as_os_str().as_bytes().to_vec();
                let mode = stat.mode & 0o7777;
                match stat.kind() {
                    libc::S_IFREG => {
                        let mut h = header(tar::EntryType::Regular, stat, mode);
                        h.set_size(stat.size);
                        let file = self.files.open(rel, stat)?;
                        let data = ExactReader {
                            file,
                            left: stat.size,
                            rel,
                        };
                        self.append(rel, h, &name, None, xattrs, data)?;
                    }
                    libc::S_IFIFO => {
                        let h = header(tar::EntryType::Fifo, stat, mode);
                        self.append(rel, h, &name, None, xattrs, io::empty())?;
                    }
                    kind => {
                        let entry_type = if kind == libc::S_IFBLK {
                            tar::EntryType::Block
                        } else {
                            tar::EntryType::Char
                        };
                        let mut h = header(entry_type, stat, mode);
                        let major = u32::try_from(nix::sys::stat::major(stat.rdev));
                        let minor = u32::try_from(nix::sys::stat::minor(stat.rdev));
                        let (Ok(major), Ok(minor)) = (major, minor) else {
                            return Err(changed(rel, "its device number does not fit a tar"));
                        };
                        h.set_device_major(major)
                            .and_then(|()| h.set_device_minor(minor))
                            .map_err(|e| entry_error(rel, "write device numbers", e))?;
                        self.append(rel, h, &name, None, xattrs, io::empty())?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes a hard link entry if an earlier name of this inode was written; else
    /// remembers this name. Only non-directories with several links.
    fn hard_link(&mut self, rel: &Path, stat: &Stat) -> Result<bool> {
        if stat.nlink < 2 {
            return Ok(false);
        }
        let name = rel.as_os_str().as_bytes().to_vec();
        match self.links.get(&(stat.dev, stat.ino)) {
            Some(first) => {
                let first = first.clone();
                let h = header(tar::EntryType::Link, stat, stat.mode & 0o7777);
                self.append(rel, h, &name, Some(&first), &[], io::empty())?;
                Ok(true)
            }
            None => {
                self.links.insert((stat.dev, stat.ino), name);
                Ok(false)
            }
        }
    }

    /// Appends one entry, with a PAX header first for what ustar cannot hold: xattrs, a
    /// long name or link target, a time before 1970.
    fn append(
        &mut self,
        rel: &Path,
        mut h: tar::Header,
        name: &[u8],
        link: Option<&[u8]>,
        xattrs: &[(String, Vec<u8>)],
        data: impl Read,
    ) -> Result<()> {
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        if h.set_path(OsStr::from_bytes(name)).is_err() {
            pax.push(("path".into(), name.to_vec()));
            let short = &name[name.len().saturating_sub(99)..];
            let old = h.as_old_mut();
            old.name = [0; 100];
            old.name[..short.len()].copy_from_slice(short);
        }
        if let Some(link) = link {
            if link.len() > 100 || h.set_link_name_literal(link).is_err() {
                pax.push(("linkpath".into(), link.to_vec()));
            }
        }
        let mtime = h.mtime().unwrap_or(0);
        if let Some(before_epoch) = self.negative_mtime.take() {
            // header() writes 0 for a time before the epoch; PAX carries the real one.
            pax.push(("mtime".into(), before_epoch.to_string().into_bytes()));
        }
        for (key, value) in xattrs {
            pax.push((format!("{PAX_XATTR_PREFIX}{key}"), value.clone()));
        }
        if !pax.is_empty() {
            let records = crate::pax::records(&pax);
            let mut ph = tar::Header::new_ustar();
            ph.set_entry_type(tar::EntryType::XHeader);
            ph.set_mode(0o644);
            ph.set_uid(0);
            ph.set_gid(0);
            ph.set_mtime(mtime);
            ph.set_size(records.len() as u64);
            ph.set_path("PaxHeaders.0/entry")
                .map_err(|e| entry_error(rel, "write tar header", e))?;
            ph.set_cksum();
            self.tar
                .append(&ph, records.as_slice())
                .map_err(|e| entry_error(rel, "write tar header", e))?;
        }
        h.set_cksum();
        self.tar.append(&h, data).map_err(|e| {
            match e.get_ref().and_then(|i| i.downcast_ref::<Changed>()) {
                Some(c) => changed(rel, &c.0),
                None => entry_error(rel, "write to the layer", e),
            }
        })?;
        self.entries += 1;
        Ok(())
    }
}

fn header(kind: tar::EntryType, stat: &Stat, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(stat.uid.into());
    h.set_gid(stat.gid.into());
    h.set_mtime(u64::try_from(stat.mtime).unwrap_or(0));
    h.set_size(0);
    h
}

/// Opens regular files of the upper directory for reading, walking from its root by
/// descriptors and reusing the last directory (entries come grouped by directory).
struct FileOpener {
    upper: PathBuf,
    root: Option<OwnedFd>,
    last: Option<(PathBuf, OwnedFd)>,
}

impl FileOpener {
    fn new(upper: &Path) -> FileOpener {
        FileOpener {
            upper: upper.to_path_buf(),
            root: None,
            last: None,
        }
    }

    fn root(&mut self) -> Result<&OwnedFd> {
        if self.root.is_none() {
            let fd = openat(AT_FDCWD, &self.upper, dir_flags(), Mode::empty())
                .map_err(|e| ImageError::io("open", &self.upper, e.into()))?;
            self.root = Some(fd);
        }
        Ok(self.root.as_ref().expect("set above"))
    }

    fn open(&mut self, rel: &Path, scanned: &Stat) -> Result<File> {
        let parent = rel.parent().unwrap_or(Path::new(""));
        let name = rel.file_name().unwrap_or_default();
        if self.last.as_ref().is_none_or(|(p, _)| p != parent) {
            self.last = None;
            let root = self.root()?;
            let mut fd: Option<OwnedFd> = None;
            for component in parent.iter() {
                let at = fd.as_ref().unwrap_or(root);
                let next = openat(at, component, dir_flags(), Mode::empty()).map_err(|e| {
                    changed(
                        rel,
                        &format!("a parent directory is gone or replaced ({e})"),
                    )
                })?;
                fd = Some(next);
            }
            let fd = match fd {
                Some(fd) => fd,
                None => openat(root, ".", dir_flags(), Mode::empty())
                    .map_err(|e| upper_error(rel, "open directory", e))?,
            };
            self.last = Some((parent.to_path_buf(), fd));
        }
        let (_, dir) = self.last.as_ref().expect("set above");
        // O_NONBLOCK: should a fifo have been swapped in, opening it does not hang.
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
        let fd = openat(dir, name, flags, Mode::empty())
            .map_err(|e| changed(rel, &format!("it is gone or replaced ({e})")))?;
        let now = fstat(&fd).map_err(|e| upper_error(rel, "stat", e))?;
        let now = Stat::from_file_stat(&now);
        if !now.is_regular() || now.ino != scanned.ino || now.dev != scanned.dev {
            return Err(changed(rel, "it was replaced"));
        }
        Ok(File::from(fd))
    }
}

/// A file's data cut or zero-padded to the size in its header.
struct ExactReader<'a> {
    file: File,
    left: u64,
    rel: &'a Path,
}

/// A read error that means "the file changed", not "the disk failed".
#[derive(Debug)]
struct Changed(String);

impl std::fmt::Display for Changed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Changed {}

impl Read for ExactReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = loop {
            match self.file.read(&mut buf[..want]) {
                Ok(0) => {
                    // Shrunk since the scan: pad.
                    buf[..want].fill(0);
                    break want;
                }
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(io::Error::other(Changed(format!(
                        "{} became something that cannot be read",
                        self.rel.display()
                    ))))
                }
                Err(e) => return Err(e),
            }
        };
        self.left -= n as u64;
        Ok(n)
    }
}

/// Apparent size of everything but directories under `upper` (hard links once), as Docker
/// reports a container's `SizeRw`. Walked by descriptors; 0 if `upper` does not exist.
pub fn upper_size(upper: &Path) -> Result<u64> {
    let root = match openat(AT_FDCWD, upper, dir_flags(), Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(0),
        Err(e) => return Err(ImageError::io("open", upper, e.into())),
    };
    let mut seen = std::collections::HashSet::new();
    let mut total = 0u64;
    // Iterative: depth is the container's to choose.
    let mut stack: Vec<(OwnedFd, PathBuf)> = vec![(root, PathBuf::new())];
    while let Some((fd, rel)) = stack.pop() {
        for name in read_names(&fd, &rel)? {
            let stat = match fstatat(&fd, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(s) => Stat::from_file_stat(&s),
                Err(Errno::ENOENT) => continue,
                Err(e) => return Err(upper_error(&rel.join(&name), "stat", e)),
            };
            if stat.is_dir() {
                match openat(&fd, name.as_os_str(), dir_flags(), Mode::empty()) {
                    Ok(sub) => stack.push((sub, rel.join(&name))),
                    Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => {}
                    Err(e) => return Err(upper_error(&rel.join(&name), "open directory", e)),
                }
            } else if stat.size > 0 && (stat.nlink < 2 || seen.insert((stat.dev, stat.ino))) {
                total += stat.size;
            }
        }
    }
    Ok(total)
}

/// Apparent size of a directory tree the store owns (a layer snapshot), hard links once.
pub(crate) fn tree_size(dir: &Path) -> u64 {
    upper_size(dir).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_compare_without_size_and_mtime() {
        let dir = Stat {
            mode: libc::S_IFDIR | 0o755,
            uid: 0,
            gid: 0,
            rdev: 0,
            size: 4096,
            mtime: 1,
            mtime_nsec: 5,
            dev: 1,
            ino: 2,
            nlink: 2,
        };
        let touched = Stat {
            size: 8192,
            mtime: 2,
            ino: 3,
            ..dir
        };
        assert!(!stat_different(&dir, &touched));
        let chmodded = Stat {
            mode: libc::S_IFDIR | 0o700,
            ..dir
        };
        assert!(stat_different(&dir, &chmodded));
        let file = Stat {
            mode: libc::S_IFREG | 0o644,
            ..dir
        };
        assert!(stat_different(&file, &Stat { mtime: 2, ..file }));
        // Tar keeps whole seconds: a time without nanoseconds matches any.
        assert!(!stat_different(
            &file,
            &Stat {
                mtime_nsec: 0,
                ..file
            }
        ));
    }
}
