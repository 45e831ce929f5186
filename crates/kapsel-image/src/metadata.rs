//! The image metadata database: which images exist, their tags, and which layers and blobs
//! each one references.
//!
//! As in containerd, the content store and the snapshots hold the data and this database
//! holds the facts about it. It is one SQLite file in WAL mode (readers see a consistent
//! snapshot while a writer commits) with a busy timeout, so several kapsel processes can
//! share it. Every change is one transaction: a process killed at any point leaves all of
//! an image's rows or none of them, and nothing about images is kept anywhere else.
//!
//! Deleting data is the caller's job, after the commit: [`ImageDb::remove_image`] says
//! what became unreferenced, and a crash before it is deleted leaves only garbage that
//! [`ImageDb::gc_candidates`] finds later.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{
    params, Connection, ErrorCode, OptionalExtension, Row, ToSql, Transaction, TransactionBehavior,
};
use serde::Deserialize;

use crate::content::ContentStore;
use crate::digest::Digest;
use crate::error::{ImageError, Result};
use crate::reference::Reference;
use crate::snapshot::{chain_ids, Snapshots};

/// Schema changes in order: entry `i` takes a database from version `i` to `i + 1`. The
/// version reached is kept in SQLite's `user_version` header field, which is written in
/// the same transaction as the change itself.
const MIGRATIONS: &[&str] = &[SCHEMA_V1];

/// Images are named by their config's digest (the image ID, as in Docker and containerd).
/// Layer rows are shared by every image with the same layers below (same chain ID), like
/// the snapshot directories they describe.
const SCHEMA_V1: &str = "
CREATE TABLE images (
    id       TEXT PRIMARY KEY,
    manifest TEXT NOT NULL,
    size     INTEGER NOT NULL CHECK (size >= 0),
    created  TEXT,
    config   TEXT NOT NULL CHECK (json_valid(config))
) STRICT;
CREATE INDEX images_manifest ON images (manifest);

CREATE TABLE layers (
    chain_id TEXT PRIMARY KEY,
    diff_id  TEXT NOT NULL,
    parent   TEXT REFERENCES layers (chain_id),
    unpacked INTEGER NOT NULL DEFAULT 0 CHECK (unpacked IN (0, 1))
) STRICT;

CREATE TABLE image_layers (
    image_id TEXT NOT NULL REFERENCES images (id),
    position INTEGER NOT NULL CHECK (position >= 0),
    blob     TEXT NOT NULL,
    size     INTEGER NOT NULL CHECK (size >= 0),
    chain_id TEXT NOT NULL REFERENCES layers (chain_id),
    PRIMARY KEY (image_id, position)
) STRICT;
CREATE INDEX image_layers_chain ON image_layers (chain_id);
CREATE INDEX image_layers_blob ON image_layers (blob);

CREATE TABLE tags (
    reference TEXT PRIMARY KEY,
    image_id  TEXT NOT NULL REFERENCES images (id)
) STRICT;
CREATE INDEX tags_image ON tags (image_id);

-- Every blob some image needs: what garbage collection must keep.
CREATE VIEW referenced_blobs (digest) AS
    SELECT id FROM images UNION SELECT manifest FROM images UNION SELECT blob FROM image_layers;
";

/// How long a statement waits for another process's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The shortest ID prefix [`ImageDb::resolve`] accepts: shorter ones are too likely to be
/// ambiguous, or to be meant as a name.
const MIN_ID_PREFIX: usize = 4;

/// An image to record: its manifest's digest, its config blob, and its layer blobs in the
/// manifest's order (bottom first).
#[derive(Debug, Clone)]
pub struct NewImage {
    pub manifest: Digest,
    /// The config blob's bytes exactly as stored: the image ID is their digest.
    pub config: Vec<u8>,
    pub layers: Vec<LayerBlob>,
}

impl NewImage {
    /// The image ID: the digest of the config.
    pub fn id(&self) -> Digest {
        Digest::of_bytes(&self.config)
    }
}

/// A layer blob as a manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerBlob {
    pub digest: Digest,
    pub size: u64,
}

/// An image as `image ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    pub id: Digest,
    pub manifest: Digest,
    /// Bytes of the layer blobs as stored (compressed), as containerd counts an image.
    pub size: u64,
    /// When the image was built, from its config (RFC 3339), if it says.
    pub created: Option<String>,
    /// Sorted by full name; empty for a dangling image.
    pub tags: Vec<Reference>,
}

impl ImageRecord {
    /// A dangling image has no tags: it is only reachable by ID.
    pub fn is_dangling(&self) -> bool {
        self.tags.is_empty()
    }
}

/// One layer of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRecord {
    /// The (usually compressed) blob in the content store.
    pub blob: Digest,
    pub size: u64,
    /// The digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Names the layer's snapshot directory: the layer together with all below it.
    pub chain_id: Digest,
    pub unpacked: bool,
}

/// What [`ImageDb::remove_image`] removed and left unreferenced, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    /// The tags the image had (only a forced removal has any).
    pub untagged: Vec<Reference>,
    /// Chain IDs of layers no remaining image uses: their snapshots can be deleted.
    pub layers: Vec<Digest>,
    /// Blobs (config, manifest, layers) no remaining image uses: they can be deleted.
    pub blobs: Vec<Digest>,
}

/// Data no image references, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcCandidates {
    pub blobs: Vec<Digest>,
    /// Chain IDs of snapshot layer directories.
    pub layers: Vec<Digest>,
}

/// The parts of an image config the database records.
#[derive(Deserialize)]
struct ConfigFacts {
    created: Option<String>,
    rootfs: RootFs,
}

#[derive(Deserialize)]
struct RootFs {
    diff_ids: Vec<Digest>,
}

/// An open image database. Each handle is one SQLite connection; open one per thread.
pub struct ImageDb {
    conn: Connection,
}

impl ImageDb {
    /// Opens the database at `path`, creating it or bringing its schema up to date.
    pub fn open(path: impl AsRef<Path>) -> Result<ImageDb> {
        let path = path.as_ref();
        let open_error = |source| ImageError::DatabaseOpen {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(open_error)?;
        configure(&conn).map_err(open_error)?;
        migrate(&conn, path)?;
        Ok(ImageDb { conn })
    }

    /// Records an image and its layers, and returns its ID. Adding an image that is
    /// already here changes nothing: the same ID means the same config, so the same layers.
    pub fn add_image(&self, image: &NewImage) -> Result<Digest> {
        self.add_image_tagged(image, &[])
    }

    /// Records an image and points `tags` at it, all in one transaction: a crash leaves
    /// either the tagged image or nothing. Returns its ID. As with [`ImageDb::add_image`],
    /// an image already here is kept as it is (its tags are still set).
    pub fn add_image_tagged(&self, image: &NewImage, tags: &[Reference]) -> Result<Digest> {
        let id = image.id();
        let (config, facts) = parse_config(&id, &image.config)?;
        if facts.rootfs.diff_ids.len() != image.layers.len() {
            return Err(ImageError::InvalidImageConfig {
                id,
                reason: format!(
                    "its rootfs has {} diff IDs but the manifest lists {} layers",
                    facts.rootfs.diff_ids.len(),
                    image.layers.len()
                ),
            });
        }
        tags.iter().try_for_each(check_tag)?;
        let tx = self.write()?;
        if !image_exists(&tx, &id)? {
            insert_image(&tx, &id, image, config, &facts)?;
        }
        for tag in tags {
            set_tag(&tx, tag, &id)?;
        }
        tx.commit()?;
        Ok(id)
    }

    /// Whether some image references the blob (as config, manifest or layer).
    pub fn blob_referenced(&self, digest: &Digest) -> Result<bool> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM referenced_blobs WHERE digest = ?1)",
            [digest],
            |row| row.get(0),
        )?)
    }

    /// Points `reference` at the image `id`, moving it from the image it named before, as
    /// `docker tag` does.
    pub fn tag(&self, reference: &Reference, id: &Digest) -> Result<()> {
        check_tag(reference)?;
        let tx = self.write()?;
        if !image_exists(&tx, id)? {
            return Err(ImageError::ImageNotFound {
                name: id.to_string(),
            });
        }
        set_tag(&tx, reference, id)?;
        tx.commit()?;
        Ok(())
    }

    /// Removes a tag; returns the image it named, or `None` if there was no such tag.
    /// The image stays (dangling if this was its last tag).
    pub fn untag(&self, reference: &Reference) -> Result<Option<Digest>> {
        let id = self
            .conn
            .query_row(
                "DELETE FROM tags WHERE reference = ?1 RETURNING image_id",
                [reference.to_string()],
                |row| row.get(0),
            )
            .optional()?;
        Ok(id)
    }

    /// Finds an image by, in Docker's order: full ID (`sha256:<hex>` or the bare hex), tag
    /// (`busybox` is `docker.io/library/busybox:latest`), or an ID prefix of at least four
    /// hex digits. A prefix that matches several images is an error, not a guess.
    pub fn resolve(&self, name_or_id: &str) -> Result<Option<ImageRecord>> {
        let tx = self.read()?;
        match find_id(&tx, name_or_id)? {
            Some(id) => load_record(&tx, &id),
            None => Ok(None),
        }
    }

    /// All images with their tags, newest first.
    pub fn list(&self) -> Result<Vec<ImageRecord>> {
        let tx = self.read()?;
        let mut tags: BTreeMap<Digest, Vec<Reference>> = BTreeMap::new();
        let mut stmt = tx.prepare("SELECT image_id, reference FROM tags ORDER BY reference")?;
        for row in stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))? {
            let (id, reference) = row?;
            tags.entry(id).or_default().push(reference);
        }
        let mut stmt =
            tx.prepare("SELECT id, manifest, size, created FROM images ORDER BY created DESC, id")?;
        let mut images = stmt
            .query_map([], record_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        for image in &mut images {
            image.tags = tags.remove(&image.id).unwrap_or_default();
        }
        Ok(images)
    }

    /// The image's config JSON, as it was added.
    pub fn config(&self, id: &Digest) -> Result<Option<String>> {
        let config = self
            .conn
            .query_row("SELECT config FROM images WHERE id = ?1", [id], |row| {
                row.get(0)
            })
            .optional()?;
        Ok(config)
    }

    /// Removes an image. A tagged image is refused unless `force`, which removes its tags
    /// too. Returns what no remaining image references, for the caller to delete.
    pub fn remove_image(&self, id: &Digest, force: bool) -> Result<Removed> {
        let tx = self.write()?;
        if !image_exists(&tx, id)? {
            return Err(ImageError::ImageNotFound {
                name: id.to_string(),
            });
        }
        let untagged = tags_of(&tx, id)?;
        if !untagged.is_empty() && !force {
            let tags: Vec<String> = untagged.iter().map(Reference::familiar).collect();
            return Err(ImageError::ImageTagged {
                id: id.clone(),
                tags: tags.join(", "),
            });
        }
        let blobs = blobs_of(&tx, id)?;
        tx.execute("DELETE FROM tags WHERE image_id = ?1", [id])?;
        tx.execute("DELETE FROM image_layers WHERE image_id = ?1", [id])?;
        tx.execute("DELETE FROM images WHERE id = ?1", [id])?;
        let removed = Removed {
            untagged,
            layers: delete_unused_layers(&tx)?,
            blobs: unreferenced(&tx, blobs)?,
        };
        tx.commit()?;
        Ok(removed)
    }

    /// Records that the layer's snapshot directory is complete.
    pub fn mark_unpacked(&self, chain_id: &Digest) -> Result<()> {
        let updated = self.conn.execute(
            "UPDATE layers SET unpacked = 1 WHERE chain_id = ?1",
            [chain_id],
        )?;
        if updated == 0 {
            return Err(ImageError::UnknownLayer {
                chain_id: chain_id.clone(),
            });
        }
        Ok(())
    }

    /// The image's layers, bottom first.
    pub fn layers_of(&self, id: &Digest) -> Result<Vec<LayerRecord>> {
        let tx = self.read()?;
        if !image_exists(&tx, id)? {
            return Err(ImageError::ImageNotFound {
                name: id.to_string(),
            });
        }
        let mut stmt = tx.prepare(
            "SELECT il.blob, il.size, l.diff_id, l.chain_id, l.unpacked
             FROM image_layers il JOIN layers l USING (chain_id)
             WHERE il.image_id = ?1 ORDER BY il.position",
        )?;
        let layers = stmt
            .query_map([id], |row| {
                Ok(LayerRecord {
                    blob: row.get(0)?,
                    size: row.get(1)?,
                    diff_id: row.get(2)?,
                    chain_id: row.get(3)?,
                    unpacked: row.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(layers)
    }

    /// Blobs in `store` and layer directories in `snapshots` that no image references.
    /// Nothing is deleted. A pull that has written blobs but not yet added its image
    /// would see them listed: callers that delete must keep pulls out meanwhile.
    pub fn gc_candidates(
        &self,
        store: &ContentStore,
        snapshots: &Snapshots,
    ) -> Result<GcCandidates> {
        let (blobs, layers) = {
            let tx = self.read()?;
            (
                digest_set(&tx, "SELECT digest FROM referenced_blobs")?,
                digest_set(&tx, "SELECT chain_id FROM image_layers")?,
            )
        };
        let unused = |all: Vec<Digest>, used: &BTreeSet<Digest>| {
            all.into_iter().filter(|d| !used.contains(d)).collect()
        };
        Ok(GcCandidates {
            blobs: unused(store.list()?, &blobs),
            layers: unused(snapshots.layers()?, &layers),
        })
    }

    /// A transaction that takes the write lock at once. Waiting for it is where the busy
    /// timeout applies; a deferred transaction that reads and then writes would instead
    /// fail with SQLITE_BUSY if another process wrote in between.
    fn write(&self) -> Result<Transaction<'_>> {
        // Unchecked (from `&self`) is sound here: no method nests transactions.
        Ok(Transaction::new_unchecked(
            &self.conn,
            TransactionBehavior::Immediate,
        )?)
    }

    /// A read transaction: all of a lookup's queries see one snapshot.
    fn read(&self) -> Result<Transaction<'_>> {
        Ok(Transaction::new_unchecked(
            &self.conn,
            TransactionBehavior::Deferred,
        )?)
    }
}

/// Per-connection settings, and WAL mode (which is kept in the file).
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    // First: switching to WAL itself needs a lock that another process may hold.
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // The mode reached is not checked: where WAL is impossible (no shared memory, as on
    // some network filesystems) SQLite keeps its rollback journal, which is as atomic and
    // only lets readers wait for writers.
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // FULL: a commit is durable once it returns (WAL's default NORMAL may lose the last
    // commits on power loss, and a pull would then have to be repeated).
    conn.pragma_update(None, "synchronous", "FULL")
}

/// Brings the schema up to date. IMMEDIATE: of two processes opening a new database at
/// once, one creates the schema and the other waits and then finds it there.
fn migrate(conn: &Connection, path: &Path) -> Result<()> {
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let too_new = || ImageError::DatabaseTooNew {
        path: path.to_path_buf(),
        version,
        supported: MIGRATIONS.len() as i64,
    };
    let applied = usize::try_from(version).map_err(|_| too_new())?;
    let pending = MIGRATIONS.get(applied..).ok_or_else(too_new)?;
    if pending.is_empty() {
        return Ok(());
    }
    for migration in pending {
        tx.execute_batch(migration)?;
    }
    tx.pragma_update(None, "user_version", MIGRATIONS.len() as i64)?;
    tx.commit()?;
    Ok(())
}

/// The config as text (JSON is UTF-8) and the facts recorded from it.
fn parse_config<'a>(id: &Digest, config: &'a [u8]) -> Result<(&'a str, ConfigFacts)> {
    let invalid = |reason: String| ImageError::InvalidImageConfig {
        id: id.clone(),
        reason,
    };
    let text = std::str::from_utf8(config).map_err(|e| invalid(format!("not UTF-8: {e}")))?;
    let facts = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
    Ok((text, facts))
}

fn insert_image(
    tx: &Transaction,
    id: &Digest,
    image: &NewImage,
    config: &str,
    facts: &ConfigFacts,
) -> Result<()> {
    let size = image
        .layers
        .iter()
        .fold(0u64, |sum, layer| sum.saturating_add(layer.size));
    tx.execute(
        "INSERT INTO images (id, manifest, size, created, config) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, image.manifest, size, facts.created, config],
    )?;
    let chain = chain_ids(&facts.rootfs.diff_ids);
    for (position, blob) in image.layers.iter().enumerate() {
        let parent = position.checked_sub(1).map(|below| &chain[below]);
        // Another image may already have this layer (and its unpacked state): keep that.
        tx.execute(
            "INSERT INTO layers (chain_id, diff_id, parent) VALUES (?1, ?2, ?3)
             ON CONFLICT (chain_id) DO NOTHING",
            params![chain[position], facts.rootfs.diff_ids[position], parent],
        )?;
        tx.execute(
            "INSERT INTO image_layers (image_id, position, blob, size, chain_id)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, position, blob.digest, blob.size, chain[position]],
        )?;
    }
    Ok(())
}

/// A tag names an image by repository and tag; a digest cannot be moved onto another.
fn check_tag(reference: &Reference) -> Result<()> {
    if reference.digest.is_some() {
        return Err(ImageError::InvalidReference {
            reference: reference.familiar(),
            reason: "a tag cannot carry a digest: give a name and tag only".to_string(),
        });
    }
    Ok(())
}

/// Points `reference` at image `id`, moving it if it named another.
fn set_tag(tx: &Transaction, reference: &Reference, id: &Digest) -> Result<()> {
    tx.execute(
        "INSERT INTO tags (reference, image_id) VALUES (?1, ?2)
         ON CONFLICT (reference) DO UPDATE SET image_id = excluded.image_id",
        params![reference.to_string(), id],
    )?;
    Ok(())
}

fn image_exists(tx: &Transaction, id: &Digest) -> Result<bool> {
    Ok(tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM images WHERE id = ?1)",
        [id],
        |row| row.get(0),
    )?)
}

/// Looks up a full ID, then a tag, then an ID prefix: the order Docker uses, so a tag that
/// happens to look like hex still names its image.
fn find_id(tx: &Transaction, name_or_id: &str) -> Result<Option<Digest>> {
    let hex = name_or_id.strip_prefix("sha256:").unwrap_or(name_or_id);
    if let Ok(id) = Digest::from_hex(hex) {
        return Ok(image_exists(tx, &id)?.then_some(id));
    }
    if let Ok(reference) = Reference::parse(name_or_id) {
        let tagged = tx
            .query_row(
                "SELECT image_id FROM tags WHERE reference = ?1",
                [reference.to_string()],
                |row| row.get(0),
            )
            .optional()?;
        if tagged.is_some() {
            return Ok(tagged);
        }
    }
    find_by_prefix(tx, hex)
}

fn find_by_prefix(tx: &Transaction, prefix: &str) -> Result<Option<Digest>> {
    let is_hex = |b: u8| matches!(b, b'0'..=b'9' | b'a'..=b'f');
    if prefix.len() < MIN_ID_PREFIX || !prefix.bytes().all(is_hex) {
        return Ok(None);
    }
    // A range on the primary key: every ID starting with the prefix sorts at or after it
    // and before prefix + 'g', as hex digits sort before 'g'.
    let from = format!("sha256:{prefix}");
    let to = format!("{from}g");
    let mut stmt = tx.prepare("SELECT id FROM images WHERE id >= ?1 AND id < ?2")?;
    let mut matches = stmt
        .query_map([&from, &to], |row| row.get::<_, Digest>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if matches.len() > 1 {
        return Err(ImageError::AmbiguousImageId {
            prefix: prefix.to_string(),
            count: matches.len(),
        });
    }
    Ok(matches.pop())
}

fn load_record(tx: &Transaction, id: &Digest) -> Result<Option<ImageRecord>> {
    let record = tx
        .query_row(
            "SELECT id, manifest, size, created FROM images WHERE id = ?1",
            [id],
            record_from_row,
        )
        .optional()?;
    match record {
        Some(mut record) => {
            record.tags = tags_of(tx, id)?;
            Ok(Some(record))
        }
        None => Ok(None),
    }
}

/// An image row (`id, manifest, size, created`), without its tags.
fn record_from_row(row: &Row) -> rusqlite::Result<ImageRecord> {
    Ok(ImageRecord {
        id: row.get(0)?,
        manifest: row.get(1)?,
        size: row.get(2)?,
        created: row.get(3)?,
        tags: Vec::new(),
    })
}

fn tags_of(tx: &Transaction, id: &Digest) -> Result<Vec<Reference>> {
    let mut stmt =
        tx.prepare("SELECT reference FROM tags WHERE image_id = ?1 ORDER BY reference")?;
    let tags = stmt
        .query_map([id], |row| row.get(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(tags)
}

/// The blobs an image is made of: its config (named by the image ID), manifest and layers.
fn blobs_of(tx: &Transaction, id: &Digest) -> Result<BTreeSet<Digest>> {
    let mut stmt = tx.prepare(
        "SELECT id FROM images WHERE id = ?1 UNION SELECT manifest FROM images WHERE id = ?1
         UNION SELECT blob FROM image_layers WHERE image_id = ?1",
    )?;
    let blobs = stmt
        .query_map([id], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(blobs)
}

/// Deletes the layer rows no image uses any more and returns their chain IDs. One
/// statement, so a layer and its parent can go together: foreign keys are checked at its
/// end.
fn delete_unused_layers(tx: &Transaction) -> Result<Vec<Digest>> {
    let mut stmt = tx.prepare(
        "DELETE FROM layers WHERE chain_id NOT IN (SELECT chain_id FROM image_layers)
         RETURNING chain_id",
    )?;
    let mut layers = stmt
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    layers.sort();
    Ok(layers)
}

/// Those of `blobs` that no image references.
fn unreferenced(tx: &Transaction, blobs: BTreeSet<Digest>) -> Result<Vec<Digest>> {
    let mut stmt =
        tx.prepare("SELECT EXISTS (SELECT 1 FROM referenced_blobs WHERE digest = ?1)")?;
    let mut unused = Vec::new();
    for blob in blobs {
        if !stmt.query_row([&blob], |row| row.get::<_, bool>(0))? {
            unused.push(blob);
        }
    }
    Ok(unused)
}

fn digest_set(tx: &Transaction, sql: &str) -> Result<BTreeSet<Digest>> {
    let mut stmt = tx.prepare(sql)?;
    let set = stmt
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(set)
}

/// A lock held past the busy timeout gets an error of its own, saying what to do.
impl From<rusqlite::Error> for ImageError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                ImageError::DatabaseBusy(e)
            }
            _ => ImageError::Database(e),
        }
    }
}

/// Digests are stored as their `sha256:<hex>` text.
impl ToSql for Digest {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.to_string()))
    }
}

/// A stored digest is validated again on the way out: a corrupt row is an error, not a
/// wrong name.
impl FromSql for Digest {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        Digest::parse(value.as_str()?).map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

/// Tags are stored fully qualified (`docker.io/library/busybox:latest`), which parses back
/// to the same reference.
impl FromSql for Reference {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        Reference::parse(value.as_str()?).map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}
