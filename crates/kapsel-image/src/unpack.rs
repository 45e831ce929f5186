//! Applying a layer (a tar stream, plain, gzip or zstd) onto a snapshot directory, the way
//! a snapshotter fills the upper dir of an overlayfs mount.
//!
//! Three properties matter, and each is enforced here rather than trusted to the tar:
//!
//! * **Safe**: every path is resolved by walking from the snapshot root with `openat`
//!   and `O_NOFOLLOW`, so neither `..` nor a symlink planted by an earlier entry can make a
//!   later entry land outside the root. Absolute paths are taken relative to the root, as
//!   Docker does; a `..` that climbs out of the root is refused, as is any path whose
//!   directory part crosses a symlink (a diff of a real filesystem never contains one).
//!   Size and entry-count limits stop decompression bombs.
//! * **Atomic**: the layer is unpacked into a hidden sibling directory that is renamed to
//!   the snapshot directory only once everything succeeded, and removed otherwise.
//! * **Overlay-ready**: OCI whiteouts (`.wh.<name>`, `.wh..wh..opq`) become overlayfs
//!   whiteouts (a 0:0 character device, `trusted.overlay.opaque=y`).
//!
//! Applying a layer needs root: it sets owners, creates device nodes and writes `trusted.*`
//! xattrs. Nothing is fsynced per file; one `syncfs` before the final rename makes the
//! snapshot durable before it becomes visible.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Cursor, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use nix::errno::Errno;
use nix::fcntl::{openat, renameat2, AtFlags, Flock, FlockArg, OFlag, RenameFlags, AT_FDCWD};
use nix::sys::stat::{
    fchmodat, fstatat, makedev, mkdirat, mknodat, utimensat, FchmodatFlags, Mode, SFlag,
    UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, linkat, symlinkat, syncfs, unlinkat, Gid, Uid, UnlinkatFlags};

use crate::content::{start_writeback, unique_name};
use crate::digest::{Digest, HashingReader};
use crate::error::{ImageError, Result};

/// Whiteout file prefix (OCI image spec, "Representing Changes").
const WHITEOUT_PREFIX: &str = ".wh.";
/// Names under this prefix are whiteout bookkeeping (aufs), not files.
const WHITEOUT_META_PREFIX: &str = ".wh..wh.";
/// Marks its directory opaque: lower layers' contents of it are hidden.
const OPAQUE_MARKER: &str = ".wh..wh..opq";
const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// PAX records carrying extended attributes, as GNU tar, bsdtar and Go's archive/tar write.
const PAX_XATTR_PREFIX: &str = "SCHILY.xattr.";
/// Directories created because an entry needs them but the tar does not list them.
const IMPLICIT_DIR_MODE: u32 = 0o755;

/// What to do with whiteout entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhiteoutMode {
    /// Turn them into overlayfs whiteouts, for a layer stacked on lower layers.
    Overlay,
    /// Drop them: with no lower layer there is nothing for them to hide.
    Drop,
}

/// How the layer stream was compressed (detected from its first bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

#[derive(Debug, Clone)]
pub struct UnpackOptions {
    pub whiteouts: WhiteoutMode,
    /// Most uncompressed tar bytes to read.
    pub max_bytes: u64,
    /// Most tar entries to apply.
    pub max_entries: u64,
}

impl Default for UnpackOptions {
    /// Overlay whiteouts; limits far above real images (the largest common ones are a few
    /// GiB and some 100k files) that still stop a bomb before it fills the disk.
    fn default() -> Self {
        UnpackOptions {
            whiteouts: WhiteoutMode::Overlay,
            max_bytes: 64 << 30,
            max_entries: 4_000_000,
        }
    }
}

/// What applying a layer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackSummary {
    /// sha256 of the uncompressed tar stream: the layer's diffID in the image config.
    pub diff_id: Digest,
    /// Length of the uncompressed tar stream.
    pub bytes: u64,
    /// Tar entries read, whiteouts included.
    pub entries: u64,
    pub compression: Compression,
}

/// Unpacks the layer read from `layer` into the new directory `target`, which must not
/// exist. On success `target` appears complete in one rename; on any error it does not
/// appear at all and nothing is left behind.
pub fn apply_layer(
    layer: impl Read,
    target: &Path,
    options: &UnpackOptions,
) -> Result<UnpackSummary> {
    match target.symlink_metadata() {
        Ok(_) => {
            return Err(ImageError::SnapshotExists {
                path: target.to_path_buf(),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(ImageError::io("stat", target, e)),
    }
    let staging = Staging::create(target)?;
    let summary = unpack_into(layer, &staging.path, options)?;
    staging.commit(target)?;
    Ok(summary)
}

/// Files at least this large have their writeback started as soon as they are written.
const WRITEBACK_MIN_BYTES: u64 = 256 << 10;

/// Marks a staging directory: `.<snapshot name>.unpacking-<unique>`.
const STAGING_MARKER: &str = ".unpacking-";

/// The hidden sibling directory a layer is unpacked into; removed unless committed. It is
/// `flock`ed while in use so [`remove_stale_staging`] can tell a crashed unpack's from a
/// running one's.
struct Staging {
    path: PathBuf,
    lock: Flock<File>,
    committed: bool,
}

impl Staging {
    fn create(target: &Path) -> Result<Self> {
        let name = target.file_name().ok_or_else(|| {
            let e = io::Error::new(io::ErrorKind::InvalidInput, "needs a final path component");
            ImageError::io("use as snapshot directory", target, e)
        })?;
        loop {
            let mut hidden = OsString::from(".");
            hidden.push(name);
            hidden.push(STAGING_MARKER);
            hidden.push(unique_name());
            // Same parent, so same filesystem: the final rename is atomic.
            let path = target.with_file_name(hidden);
            let Some(lock) = create_locked_dir(&path)? else {
                continue;
            };
            let staging = Staging {
                path,
                lock,
                committed: false,
            };
            fs::set_permissions(&staging.path, fs::Permissions::from_mode(IMPLICIT_DIR_MODE))
                .map_err(|e| ImageError::io("chmod", &staging.path, e))?;
            return Ok(staging);
        }
    }

    fn commit(mut self, target: &Path) -> Result<()> {
        // The name must not outlive a crash that loses the contents: flush the whole
        // filesystem once (cheaper than an fsync per file) before the rename publishes it.
        syncfs(&*self.lock).map_err(|e| ImageError::io("syncfs", &self.path, e.into()))?;
        // NOREPLACE: a snapshot created concurrently under the same name is not clobbered.
        match renameat2(
            AT_FDCWD,
            &self.path,
            AT_FDCWD,
            target,
            RenameFlags::RENAME_NOREPLACE,
        ) {
            Ok(()) => {
                self.committed = true;
                Ok(())
            }
            Err(Errno::EEXIST) => Err(ImageError::SnapshotExists {
                path: target.to_path_buf(),
            }),
            Err(e) => Err(ImageError::io("rename into place at", target, e.into())),
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            // Best effort, and still under the lock: a failure here leaves a hidden
            // staging directory for `remove_stale_staging`, never a half-unpacked snapshot
            // under the real name.
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Creates the work directory `path` and locks it (`flock`) for as long as the returned
/// lock lives, so that [`remove_unlocked_dirs`] tells a crashed writer's directory from
/// a live one's. None when a concurrent cleanup removed it between the mkdir and the
/// lock (a removed directory has no links): the caller starts over under a new name.
pub(crate) fn create_locked_dir(path: &Path) -> Result<Option<Flock<File>>> {
    fs::create_dir(path).map_err(|e| ImageError::io("create directory", path, e))?;
    let lock = File::open(path)
        .and_then(|dir| Flock::lock(dir, FlockArg::LockExclusive).map_err(|(_, e)| e.into()))
        .map_err(|e| ImageError::io("lock", path, e))?;
    let links = lock
        .metadata()
        .map_err(|e| ImageError::io("stat", path, e))?
        .nlink();
    Ok((links > 0).then_some(lock))
}

/// Removes the staging directories that crashed unpacks left in `dir` (the directory
/// snapshots are created in) and returns how many. Those of unpacks still running, in
/// this process or another, are locked and kept.
pub fn remove_stale_staging(dir: &Path) -> Result<usize> {
    remove_unlocked_dirs(dir, |name| {
        name.as_bytes().starts_with(b".") && name.to_string_lossy().contains(STAGING_MARKER)
    })
}

/// Removes the directories in `dir` whose name `is_work_dir` picks and that no live
/// writer holds locked (see [`create_locked_dir`]); returns how many.
pub(crate) fn remove_unlocked_dirs(
    dir: &Path,
    is_work_dir: impl Fn(&OsStr) -> bool,
) -> Result<usize> {
    let entries = fs::read_dir(dir).map_err(|e| ImageError::io("list", dir, e))?;
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| ImageError::io("list", dir, e))?;
        if !is_work_dir(&entry.file_name()) || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = entry.path();
        let Ok(staging) = File::open(&path) else {
            continue; // finished (renamed or removed) since the listing
        };
        // Removing while holding the lock is what lets `create_locked_dir` detect it lost.
        if let Ok(_locked) = Flock::lock(staging, FlockArg::LockExclusiveNonblock) {
            fs::remove_dir_all(&path).map_err(|e| ImageError::io("remove stale", &path, e))?;
            removed += 1;
        }
    }
    Ok(removed)
}

fn unpack_into(layer: impl Read, dir: &Path, options: &UnpackOptions) -> Result<UnpackSummary> {
    let (compression, input) = detect_compression(layer)?;
    let decoded: Box<dyn Read + '_> = match compression {
        Compression::None => Box::new(input),
        // Multi-member, like Go's gzip reader: concatenated gzip streams are one layer.
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(input).map_err(read_error)?),
    };
    let mut stream = LimitedStream {
        inner: HashingReader::new(decoded),
        max_bytes: options.max_bytes,
    };
    let root = openat(AT_FDCWD, dir, dir_flags(), Mode::empty())
        .map_err(|e| ImageError::io("open", dir, e.into()))?;
    let mut applier = Applier {
        root,
        options,
        entries: 0,
        dir_times: HashMap::new(),
        buf: vec![0; 128 << 10],
        last_dir: RefCell::new(None),
    };
    let applied = applier.apply_all(&mut stream);
    // A bomb surfaces as a read error first; name it for what it is.
    stream.check_limit()?;
    applied?;
    // Tar writers pad after the end-of-archive blocks; the diffID covers those bytes too,
    // and reading to the end makes the decompressor check the stream's trailer.
    let drained = io::copy(&mut stream, &mut io::sink());
    stream.check_limit()?;
    drained.map_err(read_error)?;
    applier.set_dir_times()?;
    let (diff_id, bytes) = stream.inner.finish();
    Ok(UnpackSummary {
        diff_id,
        bytes,
        entries: applier.entries,
        compression,
    })
}

/// The layer stream with its compression (plain, gzip or zstd, by magic bytes) undone.
pub(crate) fn decompressed<'a>(layer: impl Read + 'a) -> Result<(Compression, Box<dyn Read + 'a>)> {
    let (compression, input) = detect_compression(layer)?;
    let decoded: Box<dyn Read + 'a> = match compression {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(input).map_err(read_error)?),
    };
    Ok((compression, decoded))
}

/// Reads the first bytes to recognise the compression, and gives back a reader that still
/// yields them. Magic bytes, not the media type, decide: registries mislabel layers.
fn detect_compression(mut layer: impl Read) -> Result<(Compression, impl Read)> {
    let mut magic = [0u8; 6];
    let mut len = 0;
    while len < magic.len() {
        match layer.read(&mut magic[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(read_error(e)),
        }
    }
    let head = &magic[..len];
    let compression = if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        return Err(ImageError::UnsupportedCompression { format: "xz" });
    } else if head.starts_with(b"BZh") {
        return Err(ImageError::UnsupportedCompression { format: "bzip2" });
    } else {
        Compression::None
    };
    Ok((
        compression,
        Cursor::new(magic).take(len as u64).chain(layer),
    ))
}

fn read_error(source: io::Error) -> ImageError {
    ImageError::LayerRead { source }
}

/// The uncompressed tar stream: hashed for the diffID and cut off at the size limit.
struct LimitedStream<R> {
    inner: HashingReader<R>,
    max_bytes: u64,
}

impl<R: Read> LimitedStream<R> {
    fn check_limit(&self) -> Result<()> {
        if self.inner.bytes_read() > self.max_bytes {
            return Err(ImageError::LayerTooLarge {
                what: "uncompressed bytes",
                option: "max_bytes",
                limit: self.max_bytes,
            });
        }
        Ok(())
    }
}

impl<R: Read> Read for LimitedStream<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.inner.bytes_read() > self.max_bytes {
            return Err(io::Error::other("uncompressed layer size limit exceeded"));
        }
        Ok(n)
    }
}

/// Flags for walking directories: `O_PATH` needs no permission on the directory and
/// `O_NOFOLLOW` makes a symlink fail instead of being followed.
fn dir_flags() -> OFlag {
    OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

/// A name inside an open directory: where an entry goes.
struct Slot {
    dir: Rc<OwnedFd>,
    name: OsString,
}

impl Slot {
    /// A path for the calls with no `*at` form (xattrs): the parent is reached through its
    /// already-resolved descriptor, so only `name` is looked up, and not followed.
    fn proc_path(&self) -> PathBuf {
        Path::new(&format!("/proc/self/fd/{}", self.dir.as_raw_fd())).join(&self.name)
    }
}

/// Ownership, permissions, times and xattrs of an entry, as the tar gives them.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    xattrs: Vec<(String, Vec<u8>)>,
}

struct Applier<'a> {
    root: OwnedFd,
    options: &'a UnpackOptions,
    entries: u64,
    /// Directory mtimes, set after all entries: creating a child changes its parent's.
    dir_times: HashMap<PathBuf, i64>,
    /// Reused for every file's data.
    buf: Vec<u8>,
    /// The directory the last walk ended in, by its components: entries come grouped by
    /// directory, so most walks can skip re-opening every component from the root.
    /// Emptied whenever anything is removed, so it never names a replaced directory.
    last_dir: RefCell<Option<(Vec<OsString>, Rc<OwnedFd>)>>,
}

impl Applier<'_> {
    fn apply_all(&mut self, stream: &mut impl Read) -> Result<()> {
        let mut archive = tar::Archive::new(stream);
        for entry in archive.entries().map_err(read_error)? {
            let mut entry = entry.map_err(read_error)?;
            self.entries += 1;
            if self.entries > self.options.max_entries {
                return Err(ImageError::LayerTooLarge {
                    what: "entries",
                    option: "max_entries",
                    limit: self.options.max_entries,
                });
            }
            self.apply_entry(&mut entry)?;
        }
        Ok(())
    }

    fn apply_entry(&mut self, entry: &mut tar::Entry<impl Read>) -> Result<()> {
        let kind = entry.header().entry_type();
        // Global PAX headers hold archive-wide comments and defaults, no file.
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        let raw = entry.path().map_err(read_error)?.into_owned();
        let name = raw.display().to_string();
        let rel = clean_path(&raw).map_err(|reason| refused(&name, reason))?;
        if let Some(base) = rel.file_name() {
            if base.as_bytes().starts_with(WHITEOUT_PREFIX.as_bytes()) {
                return match self.options.whiteouts {
                    WhiteoutMode::Drop => Ok(()),
                    WhiteoutMode::Overlay => self.whiteout(&rel, base, &name),
                };
            }
        }
        let meta = read_meta(entry, &name)?;
        if kind.is_dir() {
            self.directory(&rel, &meta, &name)
        } else if kind.is_file() || kind.is_contiguous() || kind.is_gnu_sparse() {
            self.regular_file(entry, &rel, &meta, &name)
        } else if kind.is_symlink() {
            self.symlink(entry, &rel, &meta, &name)
        } else if kind.is_hard_link() {
            self.hard_link(entry, &rel, &name)
        } else if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
            self.special_file(entry, &rel, &meta, &name)
        } else {
            Err(refused(
                &name,
                format!("unsupported tar entry type {kind:?}"),
            ))
        }
    }

    /// Opens the directory `components` names, creating missing ones when `create`.
    fn walk(&self, components: &[&OsStr], create: bool, entry: &str) -> Result<Rc<OwnedFd>> {
        if let Some((cached, fd)) = &*self.last_dir.borrow() {
            if cached
                .iter()
                .map(OsString::as_os_str)
                .eq(components.iter().copied())
            {
                return Ok(Rc::clone(fd));
            }
        }
        let dir = Rc::new(self.walk_uncached(components, create, entry)?);
        let key = components.iter().map(|c| c.to_os_string()).collect();
        *self.last_dir.borrow_mut() = Some((key, Rc::clone(&dir)));
        Ok(dir)
    }

    fn walk_uncached(&self, components: &[&OsStr], create: bool, entry: &str) -> Result<OwnedFd> {
        let mut dir = self
            .root
            .try_clone()
            .map_err(|e| entry_error(entry, "dup", e))?;
        for (depth, component) in components.iter().enumerate() {
            let shown = || {
                components[..=depth]
                    .iter()
                    .collect::<PathBuf>()
                    .display()
                    .to_string()
            };
            dir = match openat(&dir, *component, dir_flags(), Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) if create => {
                    make_dir(&dir, component, IMPLICIT_DIR_MODE, entry)?;
                    openat(&dir, *component, dir_flags(), Mode::empty())
                        .map_err(|e| entry_error(entry, "open directory", e.into()))?
                }
                Err(Errno::ENOENT) => {
                    return Err(refused(
                        entry,
                        format!("{} does not exist in this layer", shown()),
                    ))
                }
                Err(Errno::ELOOP | Errno::ENOTDIR) => {
                    return Err(refused(
                        entry,
                        format!(
                            "{} is a symlink or not a directory; a layer may not write \
                             through it (it could lead outside the snapshot)",
                            shown()
                        ),
                    ))
                }
                Err(e) => return Err(entry_error(entry, "open directory", e.into())),
            };
        }
        Ok(dir)
    }

    /// The directory and name where `rel` goes, creating its parents. The root itself is
    /// `.` in the root.
    fn slot(&self, rel: &Path, create: bool, entry: &str) -> Result<Slot> {
        let components: Vec<&OsStr> = rel.iter().collect();
        match components.split_last() {
            None => Ok(Slot {
                dir: self.walk(&[], create, entry)?,
                name: ".".into(),
            }),
            Some((name, parents)) => Ok(Slot {
                dir: self.walk(parents, create, entry)?,
                name: (*name).to_owned(),
            }),
        }
    }

    /// Clears the way for a new entry at `slot`: a later entry replaces an earlier one of
    /// the same name, except that a directory over a directory merges into it. Returns
    /// whether a directory is there to merge into.
    fn clear(&mut self, slot: &Slot, rel: &Path, keep_dir: bool, entry: &str) -> Result<bool> {
        let stat = match fstatat(
            &slot.dir,
            slot.name.as_os_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(stat) => stat,
            Err(Errno::ENOENT) => return Ok(false),
            Err(e) => return Err(entry_error(entry, "stat", e.into())),
        };
        let is_dir = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR;
        if is_dir && keep_dir {
            return Ok(true);
        }
        // What is removed may be (or contain) the cached directory.
        self.last_dir.get_mut().take();
        if is_dir {
            fs::remove_dir_all(slot.proc_path())
                .map_err(|e| entry_error(entry, "remove replaced directory", e))?;
            self.dir_times.retain(|dir, _| !dir.starts_with(rel));
        } else {
            unlinkat(&slot.dir, slot.name.as_os_str(), UnlinkatFlags::NoRemoveDir)
                .map_err(|e| entry_error(entry, "remove replaced file", e.into()))?;
        }
        Ok(false)
    }

    fn directory(&mut self, rel: &Path, meta: &Meta, entry: &str) -> Result<()> {
        let slot = self.slot(rel, true, entry)?;
        if !rel.as_os_str().is_empty() && !self.clear(&slot, rel, true, entry)? {
            make_dir(&slot.dir, &slot.name, meta.mode, entry)?;
        }
        set_owner_mode_xattrs(&slot, meta, true, entry)?;
        self.dir_times.insert(rel.to_path_buf(), meta.mtime);
        Ok(())
    }

    fn regular_file(
        &mut self,
        data: &mut impl Read,
        rel: &Path,
        meta: &Meta,
        entry: &str,
    ) -> Result<()> {
        let slot = self.nondir_slot(rel, entry)?;
        let flags =
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = openat(
            &slot.dir,
            slot.name.as_os_str(),
            flags,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| entry_error(entry, "create file", e.into()))?;
        let mut file = File::from(fd);
        if copy_data(data, &mut file, &mut self.buf, entry)? >= WRITEBACK_MIN_BYTES {
            // Start the disk on this file's data now, while later entries are unpacked:
            // the `syncfs` before the snapshot is published then has less to wait for.
            start_writeback(&file, 0, 0);
        }
        drop(file);
        set_owner_mode_xattrs(&slot, meta, true, entry)?;
        set_mtime(&slot, meta.mtime, entry)
    }

    fn symlink(
        &mut self,
        entry_data: &tar::Entry<impl Read>,
        rel: &Path,
        meta: &Meta,
        entry: &str,
    ) -> Result<()> {
        // Stored as given, wherever it points: it is only followed inside the container,
        // and this module never follows a symlink.
        let target = entry_data
            .link_name_bytes()
            .ok_or_else(|| refused(entry, "symlink without a target".into()))?;
        let slot = self.nondir_slot(rel, entry)?;
        symlinkat(OsStr::from_bytes(&target), &slot.dir, slot.name.as_os_str())
            .map_err(|e| entry_error(entry, "create symlink", e.into()))?;
        set_owner_mode_xattrs(&slot, meta, false, entry)?;
        set_mtime(&slot, meta.mtime, entry)
    }

    /// Hard links must name a file of this layer, resolved like any entry path: inside the
    /// root, through no symlink. Metadata came with the target entry (it is one inode).
    fn hard_link(
        &mut self,
        entry_data: &tar::Entry<impl Read>,
        rel: &Path,
        entry: &str,
    ) -> Result<()> {
        let link = entry_data
            .link_name()
            .map_err(read_error)?
            .ok_or_else(|| refused(entry, "hard link without a target".into()))?;
        let target_rel = clean_path(&link).map_err(|reason| {
            refused(
                entry,
                format!("hard link target {}: {reason}", link.display()),
            )
        })?;
        if target_rel.as_os_str().is_empty() {
            return Err(refused(entry, "hard link to the layer root".into()));
        }
        let target = self.slot(&target_rel, false, entry)?;
        let slot = self.nondir_slot(rel, entry)?;
        match linkat(
            &target.dir,
            target.name.as_os_str(),
            &slot.dir,
            slot.name.as_os_str(),
            AtFlags::empty(),
        ) {
            Ok(()) => Ok(()),
            Err(Errno::ENOENT) => Err(refused(
                entry,
                format!(
                    "hard link target {} does not exist in this layer",
                    target_rel.display()
                ),
            )),
            Err(e) => Err(entry_error(entry, "create hard link", e.into())),
        }
    }

    fn special_file(
        &mut self,
        entry_data: &tar::Entry<impl Read>,
        rel: &Path,
        meta: &Meta,
        entry: &str,
    ) -> Result<()> {
        let header = entry_data.header();
        let kind = header.entry_type();
        let (file_type, dev) = if kind.is_fifo() {
            (SFlag::S_IFIFO, 0)
        } else {
            let number = |n: io::Result<Option<u32>>| {
                n.map_err(read_error)?
                    .ok_or_else(|| refused(entry, "device without major/minor numbers".into()))
            };
            let dev = makedev(
                number(header.device_major())?.into(),
                number(header.device_minor())?.into(),
            );
            let file_type = if kind.is_character_special() {
                SFlag::S_IFCHR
            } else {
                SFlag::S_IFBLK
            };
            (file_type, dev)
        };
        let slot = self.nondir_slot(rel, entry)?;
        make_node(&slot, file_type, dev, entry)?;
        set_owner_mode_xattrs(&slot, meta, true, entry)?;
        set_mtime(&slot, meta.mtime, entry)
    }

    fn nondir_slot(&mut self, rel: &Path, entry: &str) -> Result<Slot> {
        if rel.as_os_str().is_empty() {
            return Err(refused(
                entry,
                "only a directory can be the layer root".into(),
            ));
        }
        let slot = self.slot(rel, true, entry)?;
        self.clear(&slot, rel, false, entry)?;
        Ok(slot)
    }

    fn whiteout(&mut self, rel: &Path, base: &OsStr, entry: &str) -> Result<()> {
        let parent = rel.parent().unwrap_or(Path::new(""));
        let base = base.as_bytes();
        if base == OPAQUE_MARKER.as_bytes() {
            // The directory itself, by its own descriptor: `/proc/self/fd/N/.`.
            let components: Vec<&OsStr> = parent.iter().collect();
            let dir = Slot {
                dir: self.walk(&components, true, entry)?,
                name: ".".into(),
            };
            return set_xattr(&dir, OVERLAY_OPAQUE_XATTR, b"y", entry);
        }
        if base.starts_with(WHITEOUT_META_PREFIX.as_bytes()) {
            return Ok(());
        }
        let hidden = &base[WHITEOUT_PREFIX.len()..];
        // `..` would walk out of the parent; an empty name or `.` names no entry.
        if matches!(hidden, b"" | b"." | b"..") {
            return Err(refused(
                entry,
                "whiteout without a valid name to hide".into(),
            ));
        }
        let slot = self.nondir_slot(&parent.join(OsStr::from_bytes(hidden)), entry)?;
        // overlayfs reads a 0:0 character device as "deleted in this layer".
        make_node(&slot, SFlag::S_IFCHR, makedev(0, 0), entry)
    }

    fn set_dir_times(&self) -> Result<()> {
        for (rel, mtime) in &self.dir_times {
            let entry = rel.display().to_string();
            set_mtime(&self.slot(rel, false, &entry)?, *mtime, &entry)?;
        }
        Ok(())
    }
}

/// Normalises an entry path to a relative path of plain names. A leading `/` is dropped
/// (the layer root is `/` for the container); `..` is resolved lexically, as Docker does,
/// and refused if it climbs above the root.
fn clean_path(raw: &Path) -> std::result::Result<PathBuf, String> {
    let mut clean = PathBuf::new();
    for component in raw.components() {
        match component {
            Component::Normal(name) => clean.push(name),
            Component::ParentDir => {
                if !clean.pop() {
                    return Err("`..` climbs out of the layer root".into());
                }
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(clean)
}

fn read_meta(entry: &mut tar::Entry<impl Read>, name: &str) -> Result<Meta> {
    let header = entry.header();
    let id = |value: io::Result<u64>, what: &str| {
        let value = value.map_err(read_error)?;
        u32::try_from(value)
            .map_err(|_| refused(name, format!("{what} {value} does not fit 32 bits")))
    };
    let mut meta = Meta {
        mode: header.mode().map_err(read_error)? & 0o7777,
        uid: id(header.uid(), "uid")?,
        gid: id(header.gid(), "gid")?,
        mtime: i64::try_from(header.mtime().map_err(read_error)?).unwrap_or(i64::MAX),
        xattrs: Vec::new(),
    };
    let Some(extensions) = entry.pax_extensions().map_err(read_error)? else {
        return Ok(meta);
    };
    for extension in extensions {
        let extension = extension.map_err(read_error)?;
        let key = extension
            .key()
            .map_err(|_| refused(name, "PAX record key is not UTF-8".into()))?;
        if let Some(xattr) = key.strip_prefix(PAX_XATTR_PREFIX) {
            meta.xattrs
                .push((xattr.to_string(), extension.value_bytes().to_vec()));
        } else if key == "mtime" {
            // PAX times may be fractional or negative; the tar crate leaves them unapplied.
            meta.mtime = pax_seconds(extension.value_bytes())
                .ok_or_else(|| refused(name, "malformed PAX mtime".into()))?;
        }
    }
    Ok(meta)
}

/// Whole seconds of a PAX time such as `1700000000.5` or `-12`.
fn pax_seconds(value: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(value).ok()?;
    text.split('.').next()?.parse().ok()
}

/// Copies entry data, telling a failing stream (corrupt layer) from a failing disk.
/// Returns the number of bytes written.
fn copy_data(data: &mut impl Read, file: &mut File, buf: &mut [u8], entry: &str) -> Result<u64> {
    let mut written = 0u64;
    loop {
        let n = match data.read(buf) {
            Ok(0) => return Ok(written),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_error(e)),
        };
        file.write_all(&buf[..n])
            .map_err(|e| entry_error(entry, "write file data", e))?;
        written += n as u64;
    }
}

fn make_dir(dir: &OwnedFd, name: &OsStr, mode: u32, entry: &str) -> Result<()> {
    mkdirat(dir, name, Mode::from_bits_truncate(mode))
        .map_err(|e| entry_error(entry, "create directory", e.into()))?;
    // mkdir applies the umask; the layer's mode is what the image asks for.
    fchmodat(
        dir,
        name,
        Mode::from_bits_truncate(mode),
        FchmodatFlags::FollowSymlink,
    )
    .map_err(|e| entry_error(entry, "chmod", e.into()))
}

fn make_node(slot: &Slot, file_type: SFlag, dev: u64, entry: &str) -> Result<()> {
    mknodat(
        &slot.dir,
        slot.name.as_os_str(),
        file_type,
        Mode::empty(),
        dev,
    )
    .map_err(|e| {
        let op = if e == Errno::EPERM {
            "mknod (device nodes need root or CAP_MKNOD)"
        } else {
            "mknod"
        };
        entry_error(entry, op, e.into())
    })
}

/// Owner first, since chown clears setuid/setgid bits and file capabilities; then the
/// mode (not on symlinks, which have none); then xattrs, security.capability included.
fn set_owner_mode_xattrs(slot: &Slot, meta: &Meta, chmod: bool, entry: &str) -> Result<()> {
    let name = slot.name.as_os_str();
    fchownat(
        &slot.dir,
        name,
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| entry_error(entry, "chown (needs root)", e.into()))?;
    if chmod {
        // The slot was just created as a non-symlink (or is the root), so following is safe.
        fchmodat(
            &slot.dir,
            name,
            Mode::from_bits_truncate(meta.mode),
            FchmodatFlags::FollowSymlink,
        )
        .map_err(|e| entry_error(entry, "chmod", e.into()))?;
    }
    for (key, value) in &meta.xattrs {
        set_xattr(slot, key, value, entry)?;
    }
    Ok(())
}

fn set_xattr(slot: &Slot, key: &str, value: &[u8], entry: &str) -> Result<()> {
    // lsetxattr: a symlink entry gets the attribute itself; nothing is followed.
    xattr::set(slot.proc_path(), key, value)
        .map_err(|e| entry_error(entry, &format!("set xattr {key}"), e))
}

fn set_mtime(slot: &Slot, mtime: i64, entry: &str) -> Result<()> {
    let time = TimeSpec::new(mtime, 0);
    utimensat(
        &slot.dir,
        slot.name.as_os_str(),
        &time,
        &time,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|e| entry_error(entry, "set mtime", e.into()))
}

fn refused(entry: &str, reason: String) -> ImageError {
    ImageError::EntryRefused {
        entry: entry.to_string(),
        reason,
    }
}

fn entry_error(entry: &str, op: &str, source: io::Error) -> ImageError {
    ImageError::Entry {
        entry: entry.to_string(),
        op: op.to_string(),
        source,
    }
}
