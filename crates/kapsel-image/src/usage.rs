//! What the images are and cost: history (`docker history`), pruning unused images and
//! collecting garbage (`docker image prune`), and disk usage (`docker system df`).
//!
//! Sizes are what the content store holds: a layer's size is its blob's (compressed as
//! loaded, uncompressed as committed or imported), the same figure `docker images` shows.
//! Unpacked layer snapshots are not counted.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::commit::{is_empty_layer, normalized_history};
use crate::digest::Digest;
use crate::error::{ImageError, Result};
use crate::metadata::{ImageRecord, LayerRecord};
use crate::reference::Reference;
use crate::store::{parse_config, unix_seconds, ImageStore, RemoveEvent};

/// One line of `docker history`, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryItem {
    /// The image this entry made, if it is here (only the image itself and images it
    /// was made from by a commit can be known); `None` shows as `<missing>`.
    pub id: Option<Digest>,
    /// Seconds since the epoch; 0 if unknown.
    pub created: i64,
    pub created_by: String,
    /// The familiar tags of `id`.
    pub tags: Vec<String>,
    /// The layer's size, 0 for an entry without a layer.
    pub size: u64,
    pub comment: String,
}

/// What a prune removed, in the order Docker reports it, and the bytes it freed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub events: Vec<RemoveEvent>,
    pub reclaimed: u64,
}

/// One image's share of the store.
#[derive(Debug, Clone)]
pub struct ImageUsage {
    pub record: ImageRecord,
    pub config: Value,
    /// Its layers' bytes (each distinct blob once).
    pub size: u64,
    /// The part of `size` in layers other images use too.
    pub shared_size: u64,
}

#[derive(Debug, Clone, Default)]
pub struct DiskUsage {
    /// All layer blobs, each once.
    pub layers_size: u64,
    /// Newest first.
    pub images: Vec<ImageUsage>,
}

impl ImageStore {
    /// The image's history, newest first, as `docker history` shows it: the top entry
    /// carries the image's ID and tags, lower ones the ID of the image they made when
    /// that image is here (the parent of a commit), else none.
    pub fn history(&self, name: &str) -> Result<Vec<HistoryItem>> {
        let (record, config) = self.config(name)?;
        let layers = self.db().layers_of(&record.id)?;
        let mut sizes = layers.iter().map(|l| l.size);
        let mut items: Vec<HistoryItem> = normalized_history(&config)
            .iter()
            .map(|entry| {
                let text = |key: &str| {
                    entry
                        .get(key)
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                };
                HistoryItem {
                    id: None,
                    created: entry
                        .get("created")
                        .and_then(Value::as_str)
                        .and_then(unix_seconds)
                        .unwrap_or(0),
                    created_by: text("created_by"),
                    tags: Vec::new(),
                    size: if is_empty_layer(entry) {
                        0
                    } else {
                        sizes.next().unwrap_or(0)
                    },
                    comment: text("comment"),
                }
            })
            .collect();
        items.reverse();
        let all = self.all_configs()?;
        let mut current = Some((record, config));
        for item in &mut items {
            let Some((record, config)) = current.take() else {
                break;
            };
            item.tags = record.tags.iter().map(Reference::familiar).collect();
            item.id = Some(record.id);
            current = parent_of(&all, &config);
        }
        Ok(items)
    }

    /// Removes the images `select` picks (every tag of each, then the image) and then
    /// collects garbage. Nothing new is stored meanwhile.
    pub fn prune(
        &self,
        mut select: impl FnMut(&ImageRecord, &Value) -> bool,
    ) -> Result<PruneReport> {
        let _gc = self.gc_guard();
        let mut report = PruneReport::default();
        for (record, config) in self.all_configs()? {
            if !select(&record, &config) {
                continue;
            }
            let removed = match self.db().remove_image(&record.id, true) {
                Ok(removed) => removed,
                // Removed meanwhile (`docker rmi` does not wait for the lock).
                Err(ImageError::ImageNotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            report.events.extend(
                removed
                    .untagged
                    .iter()
                    .map(|t| RemoveEvent::Untagged(t.familiar())),
            );
            report.reclaimed += self.delete_data(&removed.blobs, &removed.layers)?;
            report.events.push(RemoveEvent::Deleted(record.id));
        }
        report.reclaimed += self.gc_locked()?;
        Ok(report)
    }

    /// Deletes the blobs and layer snapshots no image references (left by a crash, or by
    /// an interrupted removal) and returns the bytes freed.
    pub fn gc(&self) -> Result<u64> {
        let _gc = self.gc_guard();
        self.gc_locked()
    }

    fn gc_locked(&self) -> Result<u64> {
        let candidates = self.db().gc_candidates(self.content(), self.snapshots())?;
        self.delete_data(&candidates.blobs, &candidates.layers)
    }

    /// Deletes blobs and layer snapshot directories; returns their bytes. Already gone is
    /// fine.
    fn delete_data(&self, blobs: &[Digest], layers: &[Digest]) -> Result<u64> {
        let mut freed = 0;
        for blob in blobs {
            let size = self.content().size(blob).unwrap_or(0);
            match self.content().delete(blob) {
                Ok(()) => freed += size,
                Err(ImageError::BlobNotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        for chain_id in layers {
            let dir = self.snapshots().layer_dir(chain_id);
            let size = crate::diff::tree_size(&dir);
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => freed += size,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(ImageError::io("remove layer", dir, e)),
            }
        }
        Ok(freed)
    }

    /// Every image's size and shared size, and all layers' size.
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        let images = self.all_configs()?;
        let mut blob_users: BTreeMap<Digest, (u64, usize)> = BTreeMap::new();
        let mut per_image: Vec<BTreeMap<Digest, u64>> = Vec::with_capacity(images.len());
        for (record, _) in &images {
            let blobs: BTreeMap<Digest, u64> = self
                .db()
                .layers_of(&record.id)?
                .into_iter()
                .map(|l: LayerRecord| (l.blob, l.size))
                .collect();
            for (blob, size) in &blobs {
                blob_users.entry(blob.clone()).or_insert((*size, 0)).1 += 1;
            }
            per_image.push(blobs);
        }
        let layers_size = blob_users.values().map(|(size, _)| size).sum();
        let images = images
            .into_iter()
            .zip(per_image)
            .map(|((record, config), blobs)| ImageUsage {
                size: blobs.values().sum(),
                shared_size: blobs
                    .iter()
                    .filter(|(b, _)| blob_users.get(*b).is_some_and(|(_, n)| *n > 1))
                    .map(|(_, s)| s)
                    .sum(),
                record,
                config,
            })
            .collect();
        Ok(DiskUsage {
            layers_size,
            images,
        })
    }

    /// Bytes the container wrote (its upper directory; files, not directories, hard
    /// links once), as Docker's `SizeRw`.
    pub fn container_rw_size(&self, container_id: &str) -> Result<u64> {
        crate::diff::upper_size(&self.snapshots().upper_dir(container_id))
    }

    /// Every image with its config, newest first.
    fn all_configs(&self) -> Result<Vec<(ImageRecord, Value)>> {
        let db = self.db();
        db.list()?
            .into_iter()
            .map(|record| {
                let config = parse_config(&record.id, db.config(&record.id)?)?;
                Ok((record, config))
            })
            .collect()
    }
}

/// The image `config` was committed from: the one whose history (and layers) are this
/// one's without its last entry.
fn parent_of(all: &[(ImageRecord, Value)], config: &Value) -> Option<(ImageRecord, Value)> {
    let history = normalized_history(config);
    let (last, earlier) = history.split_last()?;
    let ids = diff_ids(config);
    let below = if is_empty_layer(last) {
        &ids[..]
    } else {
        ids.get(..ids.len().checked_sub(1)?)?
    };
    all.iter()
        .find(|(_, candidate)| {
            candidate != config
                && diff_ids(candidate) == below
                && normalized_history(candidate) == earlier
        })
        .cloned()
}

fn diff_ids(config: &Value) -> Vec<Value> {
    config
        .pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}
