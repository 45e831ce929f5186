//! One engine's images as a whole: the content store, the metadata database and the
//! snapshots under a data root, with the operations an image API needs (load, list,
//! inspect, tag, remove, save).
//!
//! The database handle sits behind a mutex so one `ImageStore` can be shared by threads;
//! blob and archive work runs outside it.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use serde_json::{json, Value};

use crate::archive::{self, SaveFormat, SaveImage};
use crate::content::ContentStore;
use crate::digest::Digest;
use crate::error::{ImageError, Result};
use crate::metadata::{ImageDb, ImageRecord, LayerBlob, NewImage};
use crate::reference::Reference;
use crate::snapshot::Snapshots;

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
}

impl ImageStore {
    /// Opens (creating if needed) `content/`, `images.db` and `snapshots/` in `data_root`.
    pub fn open(data_root: impl AsRef<Path>) -> Result<ImageStore> {
        let root = data_root.as_ref();
        std::fs::create_dir_all(root).map_err(|e| ImageError::io("create directory", root, e))?;
        Ok(ImageStore {
            content: ContentStore::open(root.join("content"))?,
            db: Mutex::new(ImageDb::open(root.join("images.db"))?),
            snapshots: Snapshots::new(root.join("snapshots")),
        })
    }

    /// Loads every image of an archive, then records and tags each: the IDs with tags.
    pub fn load(&self, input: impl Read) -> Result<Vec<(Digest, Vec<Reference>)>> {
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
            let db = self.db();
            let id = db.add_image(&new)?;
            for tag in &image.tags {
                db.tag(tag, &id)?;
            }
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
    pub fn save(&self, names: &[String], out: impl Write) -> Result<()> {
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
        archive::save(&self.content, &images, SaveFormat::DockerArchive, out)
    }

    fn db(&self) -> MutexGuard<'_, ImageDb> {
        // A panic while holding the lock cannot leave the database half-changed (every
        // change is one transaction), so a poisoned lock is still good.
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An image config as the database keeps it.
fn parse_config(id: &Digest, text: Option<String>) -> Result<Value> {
    let invalid = |reason: String| ImageError::InvalidImageConfig {
        id: id.clone(),
        reason,
    };
    let text = text.ok_or_else(|| invalid("not in the image database".into()))?;
    serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))
}

/// An RFC 3339 time (`2024-05-01T12:00:00.5+02:00`) as seconds since the Unix epoch.
fn unix_seconds(time: &str) -> Option<i64> {
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
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
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
