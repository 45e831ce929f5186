//! One engine's images as a whole: the content store, the metadata database and the
//! snapshots under a data root, with the operations an image API needs (load, list,
//! inspect, tag, remove, save) and a container's root filesystem made from an image.
//!
//! The database handle sits behind a mutex so one `ImageStore` can be shared by threads;
//! blob, archive and unpack work runs outside it.

use std::io::{Read, Write};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde_json::{json, Value};

use crate::archive::{self, SaveFormat, SaveImage};
use crate::content::ContentStore;
use crate::digest::Digest;
use crate::error::{ImageError, Result};
use crate::metadata::{ImageDb, ImageRecord, LayerBlob, LayerRecord, NewImage};
use crate::reference::Reference;
use crate::snapshot::Snapshots;
use crate::unpack::{self, UnpackOptions, WhiteoutMode};

/// What removing a name did, in the order Docker reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoveEvent {
    /// A tag that was removed (its familiar name).
    Untagged(String),
    /// An image that was deleted.
    Deleted(Digest),
}

pub struct ImageStore {
    content: ContentStore,
    db: Mutex<ImageDb>,
    snapshots: Snapshots,
    /// Held shared by whatever writes blobs (or layer snapshots) before recording the
    /// image that references them (load, commit, import), and exclusively by garbage
    /// collection, which would otherwise take them for garbage.
    gc_lock: RwLock<()>,
}

impl ImageStore {
    /// Opens (creating if needed) `content/`, `images.db` and `snapshots/` in `data_root`.
    pub fn open(data_root: impl AsRef<Path>) -> Result<ImageStore> {
        let root = data_root.as_ref();
        std::fs::create_dir_all(root).map_err(|e| ImageError::io("create directory", root, e))?;
        let snapshots = Snapshots::new(root.join("snapshots"));
        // Unpacks a crash cut short leave staging directories; running ones are locked.
        if snapshots.layers_root().is_dir() {
            crate::unpack::remove_stale_staging(&snapshots.layers_root())?;
        }
        let content = ContentStore::open(root.join("content"))?;
        archive::remove_stale_staging(&content)?;
        Ok(ImageStore {
            content,
            db: Mutex::new(ImageDb::open(root.join("images.db"))?),
            snapshots,
            gc_lock: RwLock::new(()),
        })
    }

    /// Loads every image of an archive, then records and tags each: the IDs with tags.
    pub fn load(&self, input: impl Read) -> Result<Vec<(Digest, Vec<Reference>)>> {
        let _ingest = self.ingest_guard();
        let loaded = archive::load(&self.content, input)?;
        let mut images = Vec::with_capacity(loaded.len());
        for image in loaded {
            let mut config = Vec::new();
            self.content
                .open_blob(&image.config)?
                .read_to_end(&mut config)
                .map_err(|e| ImageError::io("read", self.content.blob_path(&image.config), e))?;
            let layers = image
                .layers
                .iter()
                .map(|digest| {
                    Ok(LayerBlob {
                        digest: digest.clone(),
                        size: self.content.size(digest)?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let new = NewImage {
                manifest: image.manifest,
                config,
                layers,
            };
            // The image and its tags in one transaction.
            let id = self.db().add_image_tagged(&new, &image.tags)?;
            images.push((id, image.tags));
        }
        Ok(images)
    }

    /// All images, newest first, as Docker's `GET /images/json` shows them.
    pub fn list(&self) -> Result<Vec<Value>> {
        let db = self.db();
        db.list()?
            .into_iter()
            .map(|record| {
                let config = parse_config(&record.id, db.config(&record.id)?)?;
                Ok(json!({
                    "Id": record.id.to_string(),
                    "ParentId": "",
                    "RepoTags": record.tags.iter().map(Reference::familiar).collect::<Vec<_>>(),
                    "RepoDigests": [],
                    "Created": record.created.as_deref().and_then(unix_seconds).unwrap_or(0),
                    "Size": record.size,
                    "SharedSize": -1,
                    "Labels": config.pointer("/config/Labels").cloned().unwrap_or(json!({})),
                    "Containers": -1,
                }))
            })
            .collect()
    }

    /// The image `name_or_id` names, or [`ImageError::ImageNotFound`].
    pub fn resolve(&self, name_or_id: &str) -> Result<ImageRecord> {
        self.db()
            .resolve(name_or_id)?
            .ok_or_else(|| ImageError::ImageNotFound {
                name: name_or_id.to_string(),
            })
    }

    /// The image as Docker's `GET /images/{name}/json` shows it.
    pub fn inspect(&self, name_or_id: &str) -> Result<Value> {
        let record = self.resolve(name_or_id)?;
        let config = parse_config(&record.id, self.db().config(&record.id)?)?;
        let field = |name: &str| config.get(name).cloned().unwrap_or(Value::Null);
        let text_field = |name: &str| config.get(name).cloned().unwrap_or(json!(""));
        Ok(json!({
            "Id": record.id.to_string(),
            "RepoTags": record.tags.iter().map(Reference::familiar).collect::<Vec<_>>(),
            "RepoDigests": [],
            "Parent": "",
            "Comment": text_field("comment"),
            "Created": text_field("created"),
            "DockerVersion": text_field("docker_version"),
            "Author": text_field("author"),
            "Config": field("config"),
            "Architecture": text_field("architecture"),
            "Variant": config.get("variant"),
            "Os": text_field("os"),
            "Size": record.size,
            "GraphDriver": {"Name": "overlay2", "Data": {}},
            "RootFS": {
                "Type": "layers",
                "Layers": config.pointer("/rootfs/diff_ids").cloned().unwrap_or(json!([])),
            },
            "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
        }))
    }

    /// The image `name_or_id` names and its config (the image config JSON: `config`,
    /// `rootfs`, `history`, ...).
    pub fn config(&self, name_or_id: &str) -> Result<(ImageRecord, Value)> {
        let record = self.resolve(name_or_id)?;
        let config = parse_config(&record.id, self.db().config(&record.id)?)?;
        Ok((record, config))
    }

    /// Loads the built-in hello-world image (see [`crate::hello`]) unless it is there.
    pub fn ensure_hello_world(&self) -> Result<ImageRecord> {
        match self.resolve(crate::hello::NAME) {
            Err(ImageError::ImageNotFound { .. }) => {
                self.load(crate::hello::docker_archive().as_slice())?;
                self.resolve(crate::hello::NAME)
            }
            found => found,
        }
    }

    /// Names the image `source` names as `target` too (moving `target` if it was taken).
    pub fn tag(&self, source: &str, target: &Reference) -> Result<()> {
        let record = self.resolve(source)?;
        self.db().tag(target, &record.id)
    }

    /// Removes `name` as Docker's `DELETE /images/{name}` does: a tag is removed, and the
    /// image goes with its last tag; an ID deletes the image, which must be forced if it
    /// is tagged in more than one repository.
    pub fn remove(&self, name: &str, force: bool) -> Result<Vec<RemoveEvent>> {
        let record = self.resolve(name)?;
        let named_tag = Reference::parse(name)
            .ok()
            .filter(|r| record.tags.contains(r));
        let removed = {
            let db = self.db();
            if let Some(tag) = &named_tag {
                db.untag(tag)?;
                if record.tags.len() > 1 {
                    return Ok(vec![RemoveEvent::Untagged(tag.familiar())]);
                }
            } else if record.tags.len() > 1 && !force {
                let tags: Vec<String> = record.tags.iter().map(Reference::familiar).collect();
                return Err(ImageError::ImageTagged {
                    id: record.id,
                    tags: tags.join(", "),
                });
            }
            db.remove_image(&record.id, true)?
        };
        for blob in &removed.blobs {
            match self.content.delete(blob) {
                Ok(()) | Err(ImageError::BlobNotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        for chain_id in &removed.layers {
            let dir = self.snapshots.layer_dir(chain_id);
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(ImageError::io("remove layer", dir, e)),
            }
        }
        let mut events: Vec<RemoveEvent> = named_tag
            .iter()
            .chain(&removed.untagged)
            .map(|t| RemoveEvent::Untagged(t.familiar()))
            .collect();
        events.push(RemoveEvent::Deleted(record.id));
        Ok(events)
    }

    /// Writes the named images as one docker-archive. An image named by a tag is saved
    /// with that tag; one named by ID without tags.
    pub fn save(&self, names: &[String], format: SaveFormat, out: impl Write) -> Result<()> {
        let images = names
            .iter()
            .map(|name| {
                let record = self.resolve(name)?;
                let tags = Reference::parse(name)
                    .ok()
                    .filter(|r| record.tags.contains(r))
                    .into_iter()
                    .collect();
                Ok(SaveImage {
                    manifest: record.manifest,
                    tags,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        archive::save(&self.content, &images, format, out)
    }

    /// Mounts a root filesystem for container `container_id` from `image` (name or ID),
    /// unpacking the image's layers that are not unpacked yet, and returns the mount
    /// point. Undo with [`ImageStore::release_rootfs`].
    pub fn prepare_rootfs(&self, image: &str, container_id: &str) -> Result<PathBuf> {
        let record = self.resolve(image)?;
        let layers = self.db().layers_of(&record.id)?;
        self.unpack_missing(image, &layers)?;
        let chain: Vec<Digest> = layers.into_iter().map(|l| l.chain_id).collect();
        self.snapshots.mount_rootfs(container_id, &chain)
    }

    /// Unmounts the container's root filesystem but keeps its writes, for the next start.
    pub fn unmount_rootfs(&self, container_id: &str) -> Result<()> {
        self.snapshots.unmount_rootfs(container_id)
    }

    /// Unmounts the container's root filesystem and removes its writes; the image's layers
    /// stay for other containers.
    pub fn release_rootfs(&self, container_id: &str) -> Result<()> {
        self.snapshots.remove_rootfs(container_id)
    }

    /// Unpacks the layers whose snapshot directory is missing, several at once: each
    /// layer goes into its own directory, so order does not matter. Then records every
    /// layer as unpacked (also one unpacked by another process that had not recorded it).
    fn unpack_missing(&self, image: &str, layers: &[LayerRecord]) -> Result<()> {
        let missing: Vec<(usize, &LayerRecord)> = layers
            .iter()
            .enumerate()
            .filter(|(_, l)| !self.snapshots.has_layer(&l.chain_id))
            .collect();
        let next = AtomicUsize::new(0);
        let workers = std::thread::available_parallelism()
            .map_or(1, NonZeroUsize::get)
            .min(missing.len());
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|_| scope.spawn(|| self.unpack_queued(image, &missing, &next)))
                .collect();
            // The first error; the scope still waits for the other workers.
            handles
                .into_iter()
                .try_for_each(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
        })?;
        for layer in layers.iter().filter(|l| !l.unpacked) {
            self.db().mark_unpacked(&layer.chain_id)?;
        }
        Ok(())
    }

    /// One unpack worker: takes the next layer of `queue` (with its position in the
    /// image) until none is left or one fails.
    fn unpack_queued(
        &self,
        image: &str,
        queue: &[(usize, &LayerRecord)],
        next: &AtomicUsize,
    ) -> Result<()> {
        while let Some((position, layer)) = queue.get(next.fetch_add(1, Ordering::Relaxed)) {
            self.unpack_layer(layer, *position == 0)
                .map_err(|e| ImageError::LayerUnpack {
                    image: image.to_string(),
                    blob: layer.blob.clone(),
                    source: Box::new(e),
                })?;
        }
        Ok(())
    }

    /// Unpacks one layer blob into its snapshot directory and checks that it is the layer
    /// the image config names.
    fn unpack_layer(&self, layer: &LayerRecord, bottom: bool) -> Result<()> {
        let target = self.snapshots.layer_dir(&layer.chain_id);
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir).map_err(|e| ImageError::io("create directory", dir, e))?;
        }
        let options = UnpackOptions {
            // The bottom layer has nothing below it to hide.
            whiteouts: if bottom {
                WhiteoutMode::Drop
            } else {
                WhiteoutMode::Overlay
            },
            ..UnpackOptions::default()
        };
        let blob = self.content.open_blob(&layer.blob)?;
        let summary = match unpack::apply_layer(blob, &target, &options) {
            Ok(summary) => summary,
            // Another thread or process unpacked it meanwhile; apply_layer only ever
            // publishes a complete directory (one rename), so it is ready to use.
            Err(ImageError::SnapshotExists { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        if summary.diff_id != layer.diff_id {
            // apply_layer has already published it: take it back so no rootfs uses it.
            std::fs::remove_dir_all(&target)
                .map_err(|e| ImageError::io("remove mismatched layer", &target, e))?;
            return Err(ImageError::UnpackedDiffIdMismatch {
                expected: layer.diff_id.clone(),
                actual: summary.diff_id,
            });
        }
        Ok(())
    }

    pub(crate) fn content(&self) -> &ContentStore {
        &self.content
    }

    pub(crate) fn snapshots(&self) -> &Snapshots {
        &self.snapshots
    }

    /// Shared: blobs may be written that no image references yet.
    pub(crate) fn ingest_guard(&self) -> RwLockReadGuard<'_, ()> {
        self.gc_lock.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Exclusive: nothing is being written that garbage collection could take.
    pub(crate) fn gc_guard(&self) -> RwLockWriteGuard<'_, ()> {
        self.gc_lock.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Removes a tag only; the image stays (dangling if it was its last). Returns the
    /// image it named, if it was a tag.
    pub fn untag(&self, reference: &Reference) -> Result<Option<Digest>> {
        self.db().untag(reference)
    }

    pub(crate) fn db(&self) -> MutexGuard<'_, ImageDb> {
        // A panic while holding the lock cannot leave the database half-changed (every
        // change is one transaction), so a poisoned lock is still good.
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An image config as the database keeps it.
pub(crate) fn parse_config(id: &Digest, text: Option<String>) -> Result<Value> {
    let invalid = |reason: String| ImageError::InvalidImageConfig {
        id: id.clone(),
        reason,
    };
    let text = text.ok_or_else(|| invalid("not in the image database".into()))?;
    serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))
}

/// An RFC 3339 time (`2024-05-01T12:00:00.5+02:00`) as seconds since the Unix epoch.
pub(crate) fn unix_seconds(time: &str) -> Option<i64> {
    let (date, rest) = time.split_once(['T', 't', ' '])?;
    let mut ymd = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (ymd.next()??, ymd.next()??, ymd.next()??);
    let mut hms = rest.get(..8)?.split(':').map(|p| p.parse::<i64>().ok());
    let (h, min, s) = (hms.next()??, hms.next()??, hms.next()??);
    let zone = rest[8..].trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    let offset = match zone {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let (oh, om) = zone.get(1..)?.split_once(':')?;
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60)
        }
    };
    Some(days_from_civil(y, m, d) * 86_400 + h * 3600 + min * 60 + s - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::unix_seconds;

    #[test]
    fn rfc3339_times_convert() {
        assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            unix_seconds("2024-02-29T12:30:15.123456789Z"),
            Some(1_709_209_815)
        );
        assert_eq!(
            unix_seconds("2024-02-29T14:30:15+02:00"),
            Some(1_709_209_815)
        );
        assert_eq!(unix_seconds("yesterday"), None);
    }
}
