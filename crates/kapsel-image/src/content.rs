//! A content-addressed blob store, laid out as containerd's: `blobs/sha256/<hex>` holds
//! verified blobs and `ingest/` holds blobs being written.
//!
//! A blob only ever appears under its digest complete, fsynced and verified: it is written
//! to a temporary file in `ingest/` (same filesystem, so the final step is atomic), hashed
//! while it streams in, and then hard-linked into place. `link` refuses to replace an
//! existing name, so of two concurrent writers of the same blob one links and the other
//! finds it already there; both succeed and the blob is stored once. Files this crate has
//! already written and hashed on the same filesystem (archive members staged by
//! `archive::load`) are adopted the same way, fsynced and linked, without a copy.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};

use crate::digest::{digest_reader, Digest, Digester, HashingReader, SHA256};
use crate::error::{ImageError, Result};

/// Stored blobs are read-only: they are addressed by their content, so changing one in
/// place would silently break its name.
const BLOB_MODE: u32 = 0o444;

/// Options for [`ContentStore::open_with`].
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// Refuse blobs larger than this many bytes (`None`: no limit). Guards against a
    /// registry or archive that streams without end.
    pub max_blob_size: Option<u64>,
}

/// A directory of blobs addressed by digest.
#[derive(Debug, Clone)]
pub struct ContentStore {
    blobs: PathBuf,
    ingest: PathBuf,
    options: StoreOptions,
}

impl ContentStore {
    /// Opens (creating if needed) the store at `root` with default options.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(root, StoreOptions::default())
    }

    /// Opens (creating if needed) the store at `root`, removing temporary files that a
    /// crashed writer left in `ingest/`. Files that a live writer still holds are kept:
    /// writers hold an exclusive `flock` on their temporary file for as long as they write.
    pub fn open_with(root: impl AsRef<Path>, options: StoreOptions) -> Result<Self> {
        let root = root.as_ref();
        let store = ContentStore {
            blobs: root.join("blobs").join(SHA256),
            ingest: root.join("ingest"),
            options,
        };
        for dir in [&store.blobs, &store.ingest] {
            fs::create_dir_all(dir).map_err(|e| ImageError::io("create directory", dir, e))?;
        }
        store.clean_ingest()?;
        Ok(store)
    }

    /// Where the blob with this digest is (or would be) stored.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.hex())
    }

    /// Streams `reader` into the store and returns the blob's digest and size.
    ///
    /// With `expected`, the data must hash to it or nothing is stored
    /// ([`ImageError::DigestMismatch`]); if that blob is already stored the reader is not
    /// read at all. A blob over [`StoreOptions::max_blob_size`] is refused.
    pub fn write_blob(
        &self,
        expected: Option<&Digest>,
        reader: impl Read,
    ) -> Result<(Digest, u64)> {
        if let Some(digest) = expected {
            if self.exists(digest)? {
                return Ok((digest.clone(), self.size(digest)?));
            }
        }
        let mut ingest = IngestFile::create(&self.ingest)?;
        let (digest, size) = self.copy_in(expected, reader, &mut ingest)?;
        if let Some(expected) = expected {
            if *expected != digest {
                return Err(ImageError::DigestMismatch {
                    expected: expected.clone(),
                    actual: digest,
                });
            }
        }
        ingest.commit(&self.blob_path(&digest))?;
        sync_dir(&self.blobs)?;
        Ok((digest, size))
    }

    /// Stores what `produce` writes, hashed as it is written, and returns its digest and
    /// size. As with [`ContentStore::write_blob`], the blob appears under its digest only
    /// complete and fsynced; if `produce` fails nothing is stored. A blob over
    /// [`StoreOptions::max_blob_size`] is refused.
    pub fn write_blob_with(
        &self,
        produce: impl FnOnce(&mut dyn Write) -> Result<()>,
    ) -> Result<(Digest, u64)> {
        let ingest = IngestFile::create(&self.ingest)?;
        let file: &File = &ingest.file;
        let mut writer = HashingWriter {
            inner: io::BufWriter::with_capacity(256 << 10, file),
            digester: Digester::new(),
            bytes: 0,
            limit: self.options.max_blob_size,
            flushed: 0,
        };
        let produced = produce(&mut writer);
        if let Some(limit) = writer.limit.filter(|l| writer.bytes > *l) {
            return Err(ImageError::BlobTooLarge {
                blob: "(being written)".into(),
                limit,
            });
        }
        produced?;
        writer
            .inner
            .flush()
            .map_err(|e| ImageError::io("write blob into", &ingest.path, e))?;
        let (digest, size) = (writer.digester.finish(), writer.bytes);
        drop(writer.inner);
        file.sync_all()
            .map_err(|e| ImageError::io("fsync", &ingest.path, e))?;
        ingest.commit(&self.blob_path(&digest))?;
        sync_dir(&self.blobs)?;
        Ok((digest, size))
    }

    /// Takes over a file that the crate itself wrote and hashed to `digest` while writing it
    /// (an archive member staged by [`crate::archive::load`]), instead of copying its bytes:
    /// the file is fsynced (the one durability point for its data), made read-only and
    /// hard-linked under its digest. `path` must be on the store's filesystem and must not be
    /// written to again; the caller removes it afterwards (the blob keeps the data).
    ///
    /// The digest is the caller's: it must come from hashing exactly the bytes written to
    /// `path`, which is why this is not public. A blob over
    /// [`StoreOptions::max_blob_size`] is refused.
    pub(crate) fn adopt_hashed(&self, digest: &Digest, path: &Path) -> Result<u64> {
        let file = File::open(path).map_err(|e| ImageError::io("open", path, e))?;
        let size = file
            .metadata()
            .map_err(|e| ImageError::io("stat", path, e))?
            .len();
        if let Some(limit) = self.options.max_blob_size {
            if size > limit {
                return Err(ImageError::BlobTooLarge {
                    blob: digest.to_string(),
                    limit,
                });
            }
        }
        if self.exists(digest)? {
            return Ok(size);
        }
        file.sync_all()
            .map_err(|e| ImageError::io("fsync", path, e))?;
        file.set_permissions(fs::Permissions::from_mode(BLOB_MODE))
            .map_err(|e| ImageError::io("chmod", path, e))?;
        let target = self.blob_path(digest);
        match fs::hard_link(path, &target) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(ImageError::io("link blob into place at", &target, e)),
        }
        sync_dir(&self.blobs)?;
        Ok(size)
    }

    /// Copies the stream into the ingest file, hashing it and enforcing the size limit,
    /// and makes the data durable before it can be given a name.
    fn copy_in(
        &self,
        expected: Option<&Digest>,
        reader: impl Read,
        ingest: &mut IngestFile,
    ) -> Result<(Digest, u64)> {
        let mut hashing = HashingReader::new(reader);
        // Reading one byte past the limit tells "exactly at the limit" from "over it".
        let cap = self
            .options
            .max_blob_size
            .map_or(u64::MAX, |l| l.saturating_add(1));
        io::copy(&mut (&mut hashing).take(cap), &mut *ingest.file)
            .map_err(|e| ImageError::io("write blob into", &ingest.path, e))?;
        if let Some(limit) = self.options.max_blob_size {
            if hashing.bytes_read() > limit {
                let blob =
                    expected.map_or_else(|| "(no expected digest)".into(), Digest::to_string);
                return Err(ImageError::BlobTooLarge { blob, limit });
            }
        }
        ingest
            .file
            .sync_all()
            .map_err(|e| ImageError::io("fsync", &ingest.path, e))?;
        Ok(hashing.finish())
    }

    /// Opens a stored blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let path = self.blob_path(digest);
        File::open(&path).map_err(|e| blob_error(digest, "open blob", &path, e))
    }

    pub fn exists(&self, digest: &Digest) -> Result<bool> {
        let path = self.blob_path(digest);
        path.try_exists()
            .map_err(|e| ImageError::io("check blob", &path, e))
    }

    /// The stored blob's size in bytes.
    pub fn size(&self, digest: &Digest) -> Result<u64> {
        let path = self.blob_path(digest);
        fs::metadata(&path)
            .map(|m| m.len())
            .map_err(|e| blob_error(digest, "stat blob", &path, e))
    }

    pub fn delete(&self, digest: &Digest) -> Result<()> {
        let path = self.blob_path(digest);
        fs::remove_file(&path).map_err(|e| blob_error(digest, "delete blob", &path, e))
    }

    /// All stored blobs, sorted. Files whose names are not a sha256 hex digest are not
    /// blobs (nothing this store writes is named so) and are skipped.
    pub fn list(&self) -> Result<Vec<Digest>> {
        let entries =
            fs::read_dir(&self.blobs).map_err(|e| ImageError::io("list", &self.blobs, e))?;
        let mut digests = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| ImageError::io("list", &self.blobs, e))?;
            if let Some(digest) = entry
                .file_name()
                .to_str()
                .and_then(|n| Digest::from_hex(n).ok())
            {
                digests.push(digest);
            }
        }
        digests.sort();
        Ok(digests)
    }

    /// Re-hashes a stored blob: catches disk corruption or tampering after it was written.
    pub fn verify(&self, digest: &Digest) -> Result<()> {
        let path = self.blob_path(digest);
        let (actual, _) = digest_reader(self.open_blob(digest)?)
            .map_err(|e| ImageError::io("read blob", &path, e))?;
        if actual != *digest {
            return Err(ImageError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        Ok(())
    }

    /// Removes ingest files no live writer holds (see [`ContentStore::open_with`]).
    fn clean_ingest(&self) -> Result<()> {
        let entries =
            fs::read_dir(&self.ingest).map_err(|e| ImageError::io("list", &self.ingest, e))?;
        for entry in entries {
            let path = entry
                .map_err(|e| ImageError::io("list", &self.ingest, e))?
                .path();
            let file = match File::open(&path) {
                Ok(file) => file,
                // A writer finished (and removed it) since the listing.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(ImageError::io("open leftover", &path, e)),
            };
            // Unlinking while holding the lock is what lets a writer detect it lost the
            // race (see `IngestFile::create`).
            if let Ok(_locked) = Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                fs::remove_file(&path).map_err(|e| ImageError::io("remove leftover", &path, e))?;
            }
        }
        Ok(())
    }
}

/// Maps "no such file" to [`ImageError::BlobNotFound`], anything else to an I/O error.
fn blob_error(digest: &Digest, op: &'static str, path: &Path, err: io::Error) -> ImageError {
    if err.kind() == io::ErrorKind::NotFound {
        ImageError::BlobNotFound {
            digest: digest.clone(),
        }
    } else {
        ImageError::io(op, path, err)
    }
}

/// Asks the kernel to start writing `len` bytes of `file` from `offset` back to disk,
/// without waiting. Only a hint: a later fsync is still what makes the data durable, but it
/// finds less left to do, as the disk works while the writer is still producing data.
pub(crate) fn start_writeback(file: &File, offset: u64, len: u64) {
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: plain integer arguments and a descriptor `file` keeps open for the call; the
    // call touches no memory of ours. Errors are ignored: nothing depends on it succeeding.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

/// Hashes and counts what goes through it to the ingest file, refusing to go past the
/// size limit and starting writeback as it goes.
struct HashingWriter<W: Write> {
    inner: W,
    digester: Digester,
    bytes: u64,
    limit: Option<u64>,
    /// Bytes handed to writeback so far.
    flushed: u64,
}

impl Write for HashingWriter<io::BufWriter<&File>> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self
            .limit
            .is_some_and(|l| self.bytes + buf.len() as u64 > l)
        {
            self.bytes += buf.len() as u64;
            return Err(io::Error::other("blob size limit exceeded"));
        }
        let n = self.inner.write(buf)?;
        self.digester.update(&buf[..n]);
        self.bytes += n as u64;
        const CHUNK: u64 = 8 << 20;
        if self.bytes - self.flushed >= CHUNK {
            // What the BufWriter still holds is not in the file yet; the fsync covers it.
            start_writeback(
                self.inner.get_ref(),
                self.flushed,
                self.bytes - self.flushed,
            );
            self.flushed = self.bytes;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Makes a new directory entry durable: fsync of a file does not cover its name.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ImageError::io("fsync", dir, e))
}

/// A temporary file in `ingest/`, locked while it exists and removed when dropped.
struct IngestFile {
    path: PathBuf,
    file: Flock<File>,
}

impl IngestFile {
    fn create(ingest: &Path) -> Result<Self> {
        loop {
            let path = ingest.join(unique_name());
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| ImageError::io("create ingest file", &path, e))?;
            let file = Flock::lock(file, FlockArg::LockExclusive)
                .map_err(|(_, errno)| ImageError::io("lock", &path, errno.into()))?;
            // A store being opened concurrently may have taken the lock between our create
            // and lock and unlinked the file as a crash leftover; start over with a new one.
            let links = file
                .metadata()
                .map_err(|e| ImageError::io("stat", &path, e))?
                .nlink();
            if links > 0 {
                return Ok(IngestFile { path, file });
            }
        }
    }

    /// Gives the data its final name. If the name already exists, the existing blob (same
    /// digest, so same content) is kept.
    fn commit(&self, target: &Path) -> Result<()> {
        self.file
            .set_permissions(fs::Permissions::from_mode(BLOB_MODE))
            .map_err(|e| ImageError::io("chmod", &self.path, e))?;
        match fs::hard_link(&self.path, target) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(ImageError::io("link blob into place at", target, e)),
        }
    }
}

impl Drop for IngestFile {
    fn drop(&mut self) {
        // After a commit the data lives on under its digest; otherwise it is discarded.
        // A failure here leaves a file that the next `ContentStore::open` removes.
        let _ = fs::remove_file(&self.path);
    }
}

/// A name no other writer, in this process or another, is using.
pub(crate) fn unique_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}-{nanos}-{n}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_root(name: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("kapsel-content-{name}-{}", unique_name()));
        fs::create_dir_all(&root).unwrap();
        root
    }

    #[test]
    fn adopting_links_the_file_read_only_under_its_digest() {
        let root = temp_root("adopt");
        let store = ContentStore::open(root.join("store")).unwrap();
        let staged = root.join("store").join("staged");
        fs::write(&staged, b"layer bytes").unwrap();
        let digest = Digest::of_bytes(b"layer bytes");

        assert_eq!(store.adopt_hashed(&digest, &staged).unwrap(), 11);
        // Again (already stored) is fine.
        assert_eq!(store.adopt_hashed(&digest, &staged).unwrap(), 11);

        store.verify(&digest).unwrap();
        let meta = fs::metadata(store.blob_path(&digest)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, BLOB_MODE);
        fs::remove_file(&staged).unwrap();
        assert_eq!(fs::read(store.blob_path(&digest)).unwrap(), b"layer bytes");
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn adopting_respects_the_size_limit() {
        let root = temp_root("adopt-limit");
        let options = StoreOptions {
            max_blob_size: Some(4),
        };
        let store = ContentStore::open_with(root.join("store"), options).unwrap();
        let staged = root.join("store").join("staged");
        fs::write(&staged, b"too large").unwrap();
        let digest = Digest::of_bytes(b"too large");

        assert!(matches!(
            store.adopt_hashed(&digest, &staged),
            Err(ImageError::BlobTooLarge { limit: 4, .. })
        ));
        assert!(!store.exists(&digest).unwrap());
        fs::remove_dir_all(&root).unwrap();
    }
}
