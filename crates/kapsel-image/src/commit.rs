//! New images made here rather than loaded: from a container's changes (`docker commit`)
//! and from a root filesystem tarball (`docker import`).
//!
//! Both follow the store's crash-safety order: the layer blob, then the config and the
//! manifest go into the content store (each written to `ingest/`, hashed, fsynced and
//! linked under its digest), and only then is the image recorded and tagged, in one
//! database transaction. A crash before that commit leaves blobs no image references,
//! which garbage collection removes ([`ImageStore::gc`]); never a half-recorded image.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use oci_spec::image::{Arch, Descriptor, ImageManifestBuilder, MediaType};
use serde_json::{json, Map, Value};

use crate::diff::{Change, DiffOptions, Scan};
use crate::digest::Digest;
use crate::error::{ImageError, Result};
use crate::metadata::{ImageRecord, LayerBlob, LayerRecord, NewImage};
use crate::reference::Reference;
use crate::store::ImageStore;
use crate::unpack::{self, UnpackOptions, WhiteoutMode};

/// What `docker commit` asks for.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// The container whose upper directory becomes the new layer.
    pub container_id: String,
    /// The image the container was created from (its ID): the new image's parent.
    pub image: String,
    /// The new image's `config` section (Cmd, Env, ...).
    pub config: Map<String, Value>,
    pub author: String,
    /// The history entry's comment (`docker commit -m`).
    pub comment: String,
    /// The history entry's `created_by`: the container's command, as Docker records it.
    pub created_by: String,
    pub tags: Vec<Reference>,
    pub diff: DiffOptions,
}

/// What `docker import` asks for.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The image's `config` section (from `--change`).
    pub config: Map<String, Value>,
    /// Comment of the image and its history entry (`Imported from -` unless given).
    pub comment: String,
    pub tags: Vec<Reference>,
}

impl ImageStore {
    /// The container's changes against `image` (the image it was created from), as
    /// `docker diff` lists them.
    pub fn container_changes(
        &self,
        image: &str,
        container_id: &str,
        options: &DiffOptions,
    ) -> Result<Vec<Change>> {
        let (_, _, scan) = self.scan_container(image, container_id, options)?;
        Ok(scan.changes().to_vec())
    }

    /// Makes an image of the container's changes on top of its image and returns its ID.
    /// Nothing changed: the image gets no new layer, only a history entry marked
    /// `empty_layer`, as Docker does. The container should be paused or stopped: a file
    /// replaced while it is read fails the commit
    /// ([`ImageError::ContainerFileChanged`]).
    pub fn commit(&self, options: &CommitOptions) -> Result<Digest> {
        let _ingest = self.ingest_guard();
        let (parent, layers, scan) =
            self.scan_container(&options.image, &options.container_id, &options.diff)?;
        let (_, parent_config) = self.config(&parent.id.to_string())?;
        let mut blobs: Vec<LayerBlob> = layers
            .iter()
            .map(|l| LayerBlob {
                digest: l.blob.clone(),
                size: l.size,
            })
            .collect();
        let mut diff_ids: Vec<Digest> = layers.iter().map(|l| l.diff_id.clone()).collect();
        let created = rfc3339_now();
        let mut entry = Map::new();
        entry.insert("created".into(), json!(created));
        if !options.author.is_empty() {
            entry.insert("author".into(), json!(options.author));
        }
        entry.insert("created_by".into(), json!(options.created_by));
        if !options.comment.is_empty() {
            entry.insert("comment".into(), json!(options.comment));
        }
        if scan.is_empty() {
            entry.insert("empty_layer".into(), json!(true));
        } else {
            // The layer is stored uncompressed, as Docker keeps committed layers: its
            // digest is its diff ID.
            let (digest, size) = self
                .content()
                .write_blob_with(|out| scan.write_layer(out).map(drop))?;
            blobs.push(LayerBlob {
                digest: digest.clone(),
                size,
            });
            diff_ids.push(digest);
        }
        let mut history = normalized_history(&parent_config);
        history.push(Value::Object(entry));
        let mut config = Map::new();
        for key in ["architecture", "os", "os.version", "variant"] {
            if let Some(v) = parent_config.get(key) {
                config.insert(key.into(), v.clone());
            }
        }
        if !options.author.is_empty() {
            config.insert("author".into(), json!(options.author));
        }
        config.insert("config".into(), Value::Object(options.config.clone()));
        config.insert("container".into(), json!(options.container_id));
        config.insert("created".into(), json!(created));
        config.insert("history".into(), Value::Array(history));
        config.insert(
            "rootfs".into(),
            json!({"type": "layers", "diff_ids": diff_ids}),
        );
        self.store_image(&Value::Object(config), blobs, &options.tags)
    }

    /// Makes a one-layer image of a root filesystem tarball (plain, gzip or zstd) and
    /// returns its ID. The layer is unpacked at once, which checks that it is one, and the
    /// image is then ready to run.
    pub fn import(&self, input: impl Read, options: &ImportOptions) -> Result<Digest> {
        let _ingest = self.ingest_guard();
        let (_, mut decoded) = unpack::decompressed(input)?;
        let (diff_id, size) = self.content().write_blob_with(|out| {
            io::copy(&mut decoded, out)
                .map(drop)
                .map_err(|source| ImageError::LayerRead { source })
        })?;
        // A bottom layer's chain ID is its diff ID.
        let target = self.snapshots().layer_dir(&diff_id);
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir).map_err(|e| ImageError::io("create directory", dir, e))?;
        }
        let unpack_options = UnpackOptions {
            whiteouts: WhiteoutMode::Drop,
            ..UnpackOptions::default()
        };
        match unpack::apply_layer(
            self.content().open_blob(&diff_id)?,
            &target,
            &unpack_options,
        ) {
            Ok(_) | Err(ImageError::SnapshotExists { .. }) => {}
            Err(e) => {
                if !self.db().blob_referenced(&diff_id)? {
                    let _ = self.content().delete(&diff_id);
                }
                return Err(e);
            }
        }
        let created = rfc3339_now();
        let mut history = Map::new();
        history.insert("created".into(), json!(created));
        if !options.comment.is_empty() {
            history.insert("comment".into(), json!(options.comment));
        }
        let mut config = Map::new();
        config.insert("architecture".into(), json!(Arch::default().to_string()));
        if !options.comment.is_empty() {
            config.insert("comment".into(), json!(options.comment));
        }
        config.insert("config".into(), Value::Object(options.config.clone()));
        config.insert("created".into(), json!(created));
        config.insert("history".into(), json!([history]));
        config.insert("os".into(), json!("linux"));
        config.insert(
            "rootfs".into(),
            json!({"type": "layers", "diff_ids": [diff_id]}),
        );
        let layer = LayerBlob {
            digest: diff_id.clone(),
            size,
        };
        let id = self.store_image(&Value::Object(config), vec![layer], &options.tags)?;
        self.db().mark_unpacked(&diff_id)?;
        Ok(id)
    }

    /// The container's image, its layers, and the scan of its upper directory.
    fn scan_container(
        &self,
        image: &str,
        container_id: &str,
        options: &DiffOptions,
    ) -> Result<(ImageRecord, Vec<LayerRecord>, Scan)> {
        let record = self.resolve(image)?;
        let layers = self.db().layers_of(&record.id)?;
        let upper = self.snapshots().upper_dir(container_id);
        let lowers: Vec<PathBuf> = if upper.exists() {
            layers
                .iter()
                .rev()
                .map(|l| self.snapshots().layer_dir(&l.chain_id))
                .collect()
        } else {
            // Never started: no writes, and its layers may not even be unpacked.
            Vec::new()
        };
        let scan = Scan::new(&upper, &lowers, options)?;
        Ok((record, layers, scan))
    }

    /// Writes the config and manifest blobs (layers must be stored already), then records
    /// the image with its tags in one transaction.
    fn store_image(
        &self,
        config: &Value,
        layers: Vec<LayerBlob>,
        tags: &[Reference],
    ) -> Result<Digest> {
        let config_bytes = serde_json::to_vec(config).expect("an image config serialises");
        let config_digest = Digest::of_bytes(&config_bytes);
        self.content()
            .write_blob(Some(&config_digest), config_bytes.as_slice())?;
        let descriptors = layers
            .iter()
            .map(|l| {
                Ok(Descriptor::new(
                    self.layer_media_type(&l.digest)?,
                    l.size,
                    &l.digest,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(Descriptor::new(
                MediaType::ImageConfig,
                config_bytes.len() as u64,
                &config_digest,
            ))
            .layers(descriptors)
            .build()
            .expect("a manifest with schema version, config and layers set builds");
        let manifest_bytes = serde_json::to_vec(&manifest).expect("a manifest serialises");
        let manifest_digest = Digest::of_bytes(&manifest_bytes);
        self.content()
            .write_blob(Some(&manifest_digest), manifest_bytes.as_slice())?;
        let image = NewImage {
            manifest: manifest_digest,
            config: config_bytes,
            layers,
        };
        self.db().add_image_tagged(&image, tags)
    }

    /// A layer blob's media type, from its first bytes.
    fn layer_media_type(&self, blob: &Digest) -> Result<MediaType> {
        let mut magic = [0u8; 4];
        let mut file: File = self.content().open_blob(blob)?;
        let mut len = 0;
        while len < magic.len() {
            match file.read(&mut magic[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ImageError::io("read", self.content().blob_path(blob), e)),
            }
        }
        Ok(if magic[..len].starts_with(&[0x1f, 0x8b]) {
            MediaType::ImageLayerGzip
        } else if magic[..len] == [0x28, 0xb5, 0x2f, 0xfd] {
            MediaType::ImageLayerZstd
        } else {
            MediaType::ImageLayer
        })
    }
}

/// The config's history with an entry for every layer: images whose history lists fewer
/// layers than they have (or none) get entries for the bottom ones, so that history entry
/// N of an image made from this one is always its layer N.
pub(crate) fn normalized_history(config: &Value) -> Vec<Value> {
    let layers = config
        .pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let history: Vec<Value> = config
        .get("history")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let with_layer = history.iter().filter(|h| !is_empty_layer(h)).count();
    if with_layer >= layers {
        return history;
    }
    let mut padding = Map::new();
    if let Some(created) = config.get("created") {
        padding.insert("created".into(), created.clone());
    }
    std::iter::repeat_n(Value::Object(padding), layers - with_layer)
        .chain(history)
        .collect()
}

pub(crate) fn is_empty_layer(entry: &Value) -> bool {
    entry
        .get("empty_layer")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Now in RFC 3339 with nanoseconds, UTC, as Docker writes image times.
pub fn rfc3339_now() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(now.as_secs() as i64, now.subsec_nanos())
}

/// Seconds since the epoch (and nanoseconds) as RFC 3339, UTC.
pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (h, min, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{nanos:09}Z")
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// algorithm, the inverse of `store::days_from_civil`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::unix_seconds;

    #[test]
    fn times_round_trip_through_rfc3339() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(1_709_209_815, 5), "2024-02-29T12:30:15.000000005Z");
        for secs in [0, 951_782_400, 1_709_209_815, 4_102_444_800] {
            assert_eq!(unix_seconds(&rfc3339(secs, 0)), Some(secs));
        }
    }

    #[test]
    fn history_gets_an_entry_per_layer() {
        let config = json!({
            "created": "2024-01-01T00:00:00Z",
            "rootfs": {"diff_ids": ["a", "b"]},
            "history": [{"created_by": "b", "empty_layer": false}, {"created_by": "x", "empty_layer": true}]
        });
        let h = normalized_history(&config);
        assert_eq!(h.len(), 3);
        assert_eq!(h[0], json!({"created": "2024-01-01T00:00:00Z"}));
        assert_eq!(h[1]["created_by"], "b");
        let none = json!({"rootfs": {"diff_ids": ["a"]}});
        assert_eq!(normalized_history(&none), vec![json!({})]);
    }
}
