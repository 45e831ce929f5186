//! Image archives: loading and saving the tar files `docker save` / `podman save` write.
//!
//! Two formats are read, plain or gzip-compressed:
//! - docker-archive: `manifest.json` at the root lists each image's config and layer
//!   members and its `RepoTags`; layers are `<id>/layer.tar` (docker before 25), `<hex>.tar`
//!   (podman) or `blobs/sha256/<hex>` (docker 25+), possibly behind symlinks.
//! - OCI image layout (`oci-layout`, `index.json`, `blobs/`): what `podman save --format
//!   oci-archive` and docker 25+ write.
//!
//! Loading stages the archive in a private directory inside the store's root (same
//! filesystem, nothing held in memory but the small JSON documents), verifies every image
//! completely (blob digests, and each layer's uncompressed digest against the config's
//! `rootfs.diff_ids`), and only then puts blobs into the content store, so a refused
//! archive stores nothing. A staged file was hashed as it was written and is on the
//! store's filesystem, so it becomes a blob by an fsync and a hard link
//! (`ContentStore::adopt_hashed`), not by a second copy of its bytes. Every image ends up described by an OCI manifest in the store:
//! an OCI layout's own, or one synthesised for a docker-archive.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

use flate2::read::{GzDecoder, MultiGzDecoder};
use nix::fcntl::Flock;
use oci_spec::image::{
    Arch, Descriptor, ImageIndex, ImageIndexBuilder, ImageManifest, ImageManifestBuilder,
    MediaType, Os,
};
use serde::{Deserialize, Serialize};

use crate::content::{start_writeback, unique_name, ContentStore};
use crate::digest::{digest_reader, Digest, HashingReader};
use crate::error::{ImageError, Result};
use crate::reference::Reference;
use crate::unpack::{create_locked_dir, remove_unlocked_dirs};

/// An image written into the content store by [`load`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    pub config: Digest,
    /// The OCI (or Docker v2 schema 2) manifest blob kept for the image.
    pub manifest: Digest,
    /// Layer blobs, bottom first, as stored (possibly compressed).
    pub layers: Vec<Digest>,
    /// sha256 of each layer's uncompressed tar, from the config and verified.
    pub diff_ids: Vec<Digest>,
    pub tags: Vec<Reference>,
}

/// An image for [`save`]: a manifest in the content store and the names to give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveImage {
    pub manifest: Digest,
    pub tags: Vec<Reference>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveFormat {
    /// `manifest.json` for `docker load`/`podman load`, plus an OCI layout as docker 25+
    /// writes, so readers of either kind accept it.
    DockerArchive,
    /// An OCI image layout, as `podman save --format oci-archive` writes.
    OciArchive,
}

/// The tag, per the OCI image spec (annotations.md).
const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The full image name, as containerd and docker 25+ write it.
const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
const OCI_LAYOUT_FILE: &str = "oci-layout";
const OCI_LAYOUT_VERSION: &str = "1.0.0";
const INDEX_FILE: &str = "index.json";
const DOCKER_MANIFEST_FILE: &str = "manifest.json";
const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// JSON documents are read into memory; containerd caps manifests at 4 MiB, configs of
/// images with long histories are larger but nowhere near this.
const MAX_JSON_BYTES: u64 = 16 << 20;
/// Staged files are pushed towards the disk in chunks of this many bytes as they are written.
const WRITEBACK_CHUNK: u64 = 8 << 20;
/// Symlink chains longer than this are refused (a loop, or an archive built to stall us).
const MAX_LINK_HOPS: usize = 16;

/// Loads every image of a docker-archive or OCI-layout tar (optionally gzip-compressed)
/// into `store`. Every image is verified before the first blob is stored, so an archive
/// that is refused stores nothing (an I/O error while storing can leave verified blobs,
/// which a retry reuses).
pub fn load(store: &ContentStore, input: impl Read) -> Result<Vec<LoadedImage>> {
    let staging = Staging::extract(store, decompressed(input)?)?;
    let plans = if staging.members.contains_key(OCI_LAYOUT_FILE) {
        plan_oci(&staging)?
    } else if staging.members.contains_key(DOCKER_MANIFEST_FILE) {
        plan_docker(&staging)?
    } else {
        return Err(ImageError::InvalidArchive {
            reason: format!(
                "it has neither {DOCKER_MANIFEST_FILE:?} (docker-archive) nor \
                 {OCI_LAYOUT_FILE:?} (OCI layout) at its root: write it with `docker save` \
                 or `podman save`"
            ),
        });
    };
    plans.into_iter().map(|p| p.commit(store)).collect()
}

/// Writes `images` from `store` as one archive in `format`.
pub fn save(
    store: &ContentStore,
    images: &[SaveImage],
    format: SaveFormat,
    out: impl Write,
) -> Result<()> {
    let mut tar = ArchiveWriter::new(out);
    tar.dir("blobs/")?;
    tar.dir("blobs/sha256/")?;
    let mut index = Vec::new();
    let mut docker_manifest = Vec::new();
    for image in images {
        let (manifest, size) = read_stored_manifest(store, &image.manifest)?;
        for digest in blobs_of(&image.manifest, &manifest)? {
            tar.blob(store, &digest)?;
        }
        index.extend(index_entries(image, &manifest, size));
        docker_manifest.push(DockerManifestEntry {
            config: blob_member(&Digest::try_from(manifest.config().digest())?),
            repo_tags: Some(repo_tags(&image.tags)),
            layers: layer_digests(&manifest)?.iter().map(blob_member).collect(),
        });
    }
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(index)
        .build()
        .expect("an index with schema version and manifests set builds");
    tar.json(INDEX_FILE, &index)?;
    if format == SaveFormat::DockerArchive {
        tar.json(DOCKER_MANIFEST_FILE, &docker_manifest)?;
    }
    tar.json(OCI_LAYOUT_FILE, &OciLayout::current())?;
    tar.finish()
}

/// The input with gzip undone when its first bytes say it is gzip.
fn decompressed<'a>(input: impl Read + 'a) -> Result<Box<dyn Read + 'a>> {
    let mut input = BufReader::new(input);
    let head = input.fill_buf().map_err(|e| archive_io("read", e))?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(MultiGzDecoder::new(input)))
    } else {
        Ok(Box::new(input))
    }
}

fn archive_io(op: &'static str, source: io::Error) -> ImageError {
    ImageError::ArchiveIo { op, source }
}

// ---------------------------------------------------------------------------------------
// Staging: the archive's members on disk, by name.

/// A regular file of the archive, copied to the staging directory and hashed on the way.
#[derive(Debug, Clone)]
struct StagedFile {
    path: PathBuf,
    digest: Digest,
    size: u64,
}

#[derive(Debug)]
enum Member {
    File(StagedFile),
    /// A symlink or hard link, as the archive member name it points to.
    Link(String),
}

/// The archive unpacked into a private directory, removed when dropped.
///
/// Files are stored under numbers, not their member names: names only index the map, so
/// no name in the archive can place a file anywhere on disk.
struct Staging {
    dir: PathBuf,
    /// Held while the directory is in use; a crash leaves it unlocked, for
    /// [`remove_stale_staging`].
    _lock: Flock<File>,
    members: HashMap<String, Member>,
    /// Files staged so far, which names the next one (members can repeat a name, so the
    /// map's length would reuse numbers).
    staged: usize,
}

impl Staging {
    fn extract(store: &ContentStore, input: impl Read) -> Result<Staging> {
        let root = staging_root(store);
        fs::create_dir_all(&root).map_err(|e| ImageError::io("create directory", &root, e))?;
        let (dir, lock) = loop {
            let dir = root.join(unique_name());
            if let Some(lock) = create_locked_dir(&dir)? {
                break (dir, lock);
            }
        };
        let mut staging = Staging {
            dir,
            _lock: lock,
            members: HashMap::new(),
            staged: 0,
        };
        let mut archive = tar::Archive::new(input);
        let entries = archive.entries().map_err(|e| archive_io("read", e))?;
        for entry in entries {
            staging.add(entry.map_err(|e| archive_io("read", e))?)?;
        }
        Ok(staging)
    }

    fn add(&mut self, mut entry: tar::Entry<impl Read>) -> Result<()> {
        let raw = entry
            .path()
            .map_err(|e| archive_io("read a member name of", e))?;
        let name = member_name(&raw)?;
        let kind = entry.header().entry_type();
        let member = match kind {
            // Directories are implied by the names; a global PAX header only carries
            // defaults for the entries after it, which the tar crate applies.
            tar::EntryType::Directory | tar::EntryType::XGlobalHeader => return Ok(()),
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                Member::File(self.stage(&mut entry)?)
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                Member::Link(link_target(&entry, &name, kind)?)
            }
            other => {
                return Err(refused(
                    &name,
                    format!("image archives hold files, directories and links, not {other:?}"),
                ))
            }
        };
        // A later member of the same name replaces an earlier one, as `tar -x` does.
        self.members.insert(name, member);
        Ok(())
    }

    fn stage(&mut self, data: impl Read) -> Result<StagedFile> {
        let path = self.dir.join(self.staged.to_string());
        self.staged += 1;
        let mut file = File::create(&path).map_err(|e| ImageError::io("create", &path, e))?;
        let mut hashing = HashingReader::new(data);
        // Not io::copy: a truncated archive (read error) and a full disk (write error)
        // need different errors.
        let mut buf = vec![0u8; 256 << 10];
        let (mut written, mut flushed) = (0u64, 0u64);
        loop {
            let n = hashing.read(&mut buf).map_err(|e| archive_io("read", e))?;
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n])
                .map_err(|e| ImageError::io("write", &path, e))?;
            written += n as u64;
            // The file becomes a blob by a link once fsynced (`ContentStore::adopt_hashed`);
            // getting its bytes to disk while the archive is still being read leaves that
            // fsync little to wait for.
            if written - flushed >= WRITEBACK_CHUNK {
                start_writeback(&file, flushed, written - flushed);
                flushed = written;
            }
        }
        let (digest, size) = hashing.finish();
        Ok(StagedFile { path, digest, size })
    }

    /// The regular file `name` refers to, following links. `needed_by` says which
    /// document named it, for the error when it is missing.
    fn file(&self, name: &str, needed_by: &str) -> Result<&StagedFile> {
        // Documents may spell names as `./a/b`; members are kept as `a/b`.
        let mut current = resolve_lexically(name).ok_or_else(|| {
            refused(
                name,
                format!("{needed_by} names a path outside the archive"),
            )
        })?;
        for _ in 0..=MAX_LINK_HOPS {
            match self.members.get(&current) {
                Some(Member::File(f)) => return Ok(f),
                Some(Member::Link(target)) => current = target.clone(),
                None => {
                    return Err(ImageError::ArchiveMemberMissing {
                        member: current,
                        needed_by: needed_by.to_string(),
                    })
                }
            }
        }
        Err(refused(
            name,
            format!("more than {MAX_LINK_HOPS} links deep"),
        ))
    }

    /// The blob `blobs/sha256/<hex>` of an OCI layout, checked against its digest.
    fn blob(&self, digest: &Digest, needed_by: &str) -> Result<&StagedFile> {
        let name = blob_member(digest);
        let file = self.file(&name, needed_by)?;
        check_named_digest(&name, file, digest)?;
        Ok(file)
    }

    /// Parses a (small) JSON member, returning it and its bytes.
    fn json<T: serde::de::DeserializeOwned>(
        &self,
        file: &StagedFile,
        name: &str,
        what: &'static str,
    ) -> Result<(T, Vec<u8>)> {
        let path = &file.path;
        let data = File::open(path).map_err(|e| ImageError::io("open", path, e))?;
        read_json(data, path, &format!("archive member {name:?}"), what)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // A failure (or a crash) leaves a directory under `archive-staging/` for
        // `remove_stale_staging`.
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Removes the staging directories that loads cut short by a crash left in `store`;
/// those of loads still running are locked and kept. Returns how many.
pub fn remove_stale_staging(store: &ContentStore) -> Result<usize> {
    let root = staging_root(store);
    if !root.is_dir() {
        return Ok(0);
    }
    remove_unlocked_dirs(&root, |_| true)
}

/// `<store root>/archive-staging`: inside the store's root so staged files are on the
/// same filesystem as the blobs. The store keeps no root field, but its layout
/// (`<root>/blobs/sha256/<hex>`) is fixed.
fn staging_root(store: &ContentStore) -> PathBuf {
    let any_blob = store.blob_path(&Digest::of_bytes(b""));
    let root = any_blob
        .ancestors()
        .nth(3)
        .expect("a blob path is <root>/blobs/sha256/<hex>");
    root.join("archive-staging")
}

/// The member name normalised (`./a/b` is `a/b`), refusing names that would leave the
/// archive's root when extracted.
fn member_name(raw: &Path) -> Result<String> {
    let shown = raw.to_string_lossy();
    let mut parts = Vec::new();
    for component in raw.components() {
        match component {
            Component::Normal(part) => parts.push(
                part.to_str()
                    .ok_or_else(|| refused(&shown, "the name is not UTF-8".into()))?,
            ),
            Component::CurDir => {}
            Component::ParentDir => return Err(refused(&shown, "the name contains '..'".into())),
            Component::RootDir | Component::Prefix(_) => {
                return Err(refused(&shown, "the name is an absolute path".into()))
            }
        }
    }
    Ok(parts.join("/"))
}

/// A link's target as a member name. Symlinks are relative to the link's directory
/// (docker writes `<id>/layer.tar -> ../<other id>/layer.tar`); hard links name a member.
fn link_target(entry: &tar::Entry<impl Read>, name: &str, kind: tar::EntryType) -> Result<String> {
    let target = entry
        .link_name()
        .map_err(|e| archive_io("read a link target of", e))?
        .ok_or_else(|| refused(name, "a link without a target".into()))?;
    let target = target.to_string_lossy().into_owned();
    let joined = if kind == tar::EntryType::Symlink {
        match name.rsplit_once('/') {
            Some((dir, _)) => format!("{dir}/{target}"),
            None => target.clone(),
        }
    } else {
        target.clone()
    };
    resolve_lexically(&joined).ok_or_else(|| {
        refused(
            name,
            format!("the link target {target:?} points outside the archive"),
        )
    })
}

/// `a/./b/../c` as `a/c`; None when the path is absolute or climbs above the root.
fn resolve_lexically(path: &str) -> Option<String> {
    if path.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

fn refused(member: &str, reason: String) -> ImageError {
    ImageError::ArchiveMemberRefused {
        member: member.to_string(),
        reason,
    }
}

/// Parses a JSON document (read from `path`, shown as `name`), returning it and its
/// bytes. Only documents up to [`MAX_JSON_BYTES`] are read into memory.
fn read_json<T: serde::de::DeserializeOwned>(
    data: File,
    path: &Path,
    name: &str,
    what: &'static str,
) -> Result<(T, Vec<u8>)> {
    let mut bytes = Vec::new();
    data.take(MAX_JSON_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ImageError::io("read", path, e))?;
    if bytes.len() as u64 > MAX_JSON_BYTES {
        return Err(ImageError::JsonTooLarge {
            name: name.to_string(),
            what,
            limit: MAX_JSON_BYTES,
        });
    }
    let value = serde_json::from_slice(&bytes).map_err(|source| ImageError::InvalidJson {
        name: name.to_string(),
        what,
        source,
    })?;
    Ok((value, bytes))
}

/// Refuses a member whose content does not hash to the digest its name or descriptor says.
fn check_named_digest(name: &str, file: &StagedFile, expected: &Digest) -> Result<()> {
    if file.digest != *expected {
        return Err(refused(
            name,
            format!(
                "its content hashes to {}, not the {expected} it is named by: the archive \
                 is corrupt or was tampered with",
                file.digest
            ),
        ));
    }
    Ok(())
}

/// The member name of a blob in an OCI layout.
fn blob_member(digest: &Digest) -> String {
    format!("blobs/{}/{}", digest.algorithm(), digest.hex())
}

// ---------------------------------------------------------------------------------------
// Planning: everything verified, nothing stored yet.

/// One verified image, ready to be written into the store.
struct Plan<'a> {
    /// Layers then config; all staged and verified.
    blobs: Vec<&'a StagedFile>,
    manifest_bytes: Vec<u8>,
    image: LoadedImage,
}

impl Plan<'_> {
    fn commit(self, store: &ContentStore) -> Result<LoadedImage> {
        // The staged files were hashed as they were written and are on the store's
        // filesystem: they become blobs by a link, not a second copy of their bytes.
        for file in &self.blobs {
            store.adopt_hashed(&file.digest, &file.path)?;
        }
        store.write_blob(Some(&self.image.manifest), &self.manifest_bytes[..])?;
        Ok(self.image)
    }
}

/// The part of an image config this module needs.
#[derive(Deserialize)]
struct ConfigRootfs {
    rootfs: RootFs,
}

#[derive(Deserialize)]
struct RootFs {
    diff_ids: Vec<Digest>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OciLayout {
    image_layout_version: String,
}

impl OciLayout {
    fn current() -> Self {
        OciLayout {
            image_layout_version: OCI_LAYOUT_VERSION.to_string(),
        }
    }
}

/// The config's diff_ids, checked to be one per layer.
fn config_diff_ids(
    staging: &Staging,
    config: &StagedFile,
    name: &str,
    layers: usize,
) -> Result<Vec<Digest>> {
    let (parsed, _) = staging.json::<ConfigRootfs>(config, name, "image config")?;
    let diff_ids = parsed.rootfs.diff_ids;
    if diff_ids.len() != layers {
        return Err(ImageError::InvalidArchive {
            reason: format!(
                "config {name:?} lists {} diff_ids but the image has {layers} layers",
                diff_ids.len()
            ),
        });
    }
    Ok(diff_ids)
}

/// Checks that the layer's uncompressed content is what the config says it is.
fn verify_diff_id(name: &str, layer: &StagedFile, expected: &Digest) -> Result<Compression> {
    let (compression, actual) = uncompressed_digest(layer)?;
    if actual != *expected {
        return Err(ImageError::DiffIdMismatch {
            layer: name.to_string(),
            expected: expected.clone(),
            actual,
        });
    }
    Ok(compression)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

/// The compression (by magic bytes) and the digest of the decompressed content.
fn uncompressed_digest(layer: &StagedFile) -> Result<(Compression, Digest)> {
    let path = &layer.path;
    let open = || File::open(path).map_err(|e| ImageError::io("open", path, e));
    let mut magic = [0u8; 4];
    let len = open()?
        .read(&mut magic)
        .map_err(|e| ImageError::io("read", path, e))?;
    let hashed = if magic[..len].starts_with(&[0x1f, 0x8b]) {
        (Compression::Gzip, digest_reader(GzDecoder::new(open()?)))
    } else if magic[..len] == [0x28, 0xb5, 0x2f, 0xfd] {
        let decoder = zstd::Decoder::new(open()?).map_err(|e| ImageError::io("read", path, e))?;
        (Compression::Zstd, digest_reader(decoder))
    } else {
        // Uncompressed: the blob is its own diff; its digest was taken while staging.
        return Ok((Compression::None, layer.digest.clone()));
    };
    let (compression, digest) = hashed;
    let (digest, _) = digest.map_err(|e| ImageError::LayerRead { source: e })?;
    Ok((compression, digest))
}

fn layer_media_type(compression: Compression) -> MediaType {
    match compression {
        Compression::None => MediaType::ImageLayer,
        Compression::Gzip => MediaType::ImageLayerGzip,
        Compression::Zstd => MediaType::ImageLayerZstd,
    }
}

/// Plans every image listed in a docker-archive's manifest.json.
fn plan_docker(staging: &Staging) -> Result<Vec<Plan<'_>>> {
    let entries = docker_manifest(staging)?;
    entries
        .iter()
        .map(|entry| plan_docker_image(staging, entry))
        .collect()
}

fn docker_manifest(staging: &Staging) -> Result<Vec<DockerManifestEntry>> {
    let file = staging.file(DOCKER_MANIFEST_FILE, "a docker-archive")?;
    let (entries, _) = staging.json(file, DOCKER_MANIFEST_FILE, "docker-archive manifest")?;
    Ok(entries)
}

fn plan_docker_image<'a>(staging: &'a Staging, entry: &DockerManifestEntry) -> Result<Plan<'a>> {
    let config = staging.file(&entry.config, DOCKER_MANIFEST_FILE)?;
    if let Some(named) = digest_in_name(&entry.config) {
        check_named_digest(&entry.config, config, &named)?;
    }
    let diff_ids = config_diff_ids(staging, config, &entry.config, entry.layers.len())?;
    let mut blobs = Vec::new();
    let mut descriptors = Vec::new();
    for (name, diff_id) in entry.layers.iter().zip(&diff_ids) {
        let layer = staging.file(name, &entry.config)?;
        let compression = verify_diff_id(name, layer, diff_id)?;
        descriptors.push(Descriptor::new(
            layer_media_type(compression),
            layer.size,
            &layer.digest,
        ));
        blobs.push(layer);
    }
    let layers = blobs.iter().map(|l| l.digest.clone()).collect();
    blobs.push(config);
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(Descriptor::new(
            MediaType::ImageConfig,
            config.size,
            &config.digest,
        ))
        .layers(descriptors)
        .build()
        .expect("a manifest with schema version, config and layers set builds");
    let manifest_bytes = serde_json::to_vec(&manifest).expect("a manifest serialises");
    let tags = parse_tags(entry.repo_tags.iter().flatten(), DOCKER_MANIFEST_FILE)?;
    Ok(Plan {
        image: LoadedImage {
            config: config.digest.clone(),
            manifest: Digest::of_bytes(&manifest_bytes),
            layers,
            diff_ids,
            tags,
        },
        blobs,
        manifest_bytes,
    })
}

/// The digest a docker-archive member's name carries: `<hex>.json` (config) or
/// `blobs/sha256/<hex>`.
fn digest_in_name(name: &str) -> Option<Digest> {
    let base = name.rsplit('/').next().unwrap_or(name);
    let hex = base.strip_suffix(".json").unwrap_or(base);
    Digest::from_hex(hex).ok()
}

fn parse_tags<'a>(names: impl Iterator<Item = &'a String>, source: &str) -> Result<Vec<Reference>> {
    names
        .map(|name| {
            Reference::parse(name).map_err(|e| ImageError::InvalidArchive {
                reason: format!("{source} names the image {name:?}: {e}"),
            })
        })
        .collect()
}

/// Plans every image an OCI layout's index.json lists; an image listed under several
/// names is loaded once with all of them. A docker 25+ archive's manifest.json tags are
/// added to the image with the same config.
fn plan_oci(staging: &Staging) -> Result<Vec<Plan<'_>>> {
    check_layout_version(staging)?;
    let index_file = staging.file(INDEX_FILE, "an OCI layout")?;
    let (index, _) = staging.json::<ImageIndex>(index_file, INDEX_FILE, "OCI image index")?;
    let mut plans: Vec<Plan> = Vec::new();
    for descriptor in index.manifests() {
        let tags = descriptor_tags(descriptor)?;
        let manifest = platform_manifest(staging, descriptor)?;
        let digest = Digest::try_from(manifest.digest())?;
        match plans.iter_mut().find(|p| p.image.manifest == digest) {
            Some(plan) => add_tags(&mut plan.image.tags, tags),
            None => {
                let mut plan = plan_oci_image(staging, &digest)?;
                add_tags(&mut plan.image.tags, tags);
                plans.push(plan);
            }
        }
    }
    if staging.members.contains_key(DOCKER_MANIFEST_FILE) {
        for entry in docker_manifest(staging)? {
            let config = staging.file(&entry.config, DOCKER_MANIFEST_FILE)?;
            let tags = parse_tags(entry.repo_tags.iter().flatten(), DOCKER_MANIFEST_FILE)?;
            if let Some(plan) = plans.iter_mut().find(|p| p.image.config == config.digest) {
                add_tags(&mut plan.image.tags, tags);
            }
        }
    }
    Ok(plans)
}

fn check_layout_version(staging: &Staging) -> Result<()> {
    let file = staging.file(OCI_LAYOUT_FILE, "an OCI layout")?;
    let (layout, _) = staging.json::<OciLayout>(file, OCI_LAYOUT_FILE, "OCI layout marker")?;
    if layout.image_layout_version != OCI_LAYOUT_VERSION {
        return Err(ImageError::InvalidArchive {
            reason: format!(
                "OCI layout version {:?} is not supported, only {OCI_LAYOUT_VERSION}",
                layout.image_layout_version
            ),
        });
    }
    Ok(())
}

/// The image manifest an index.json entry stands for: the entry itself, or, for a
/// multi-platform index (docker's containerd image store writes these), the manifest for
/// this host's platform that the archive holds; other platforms' blobs are usually left
/// out of an archive.
fn platform_manifest(staging: &Staging, descriptor: &Descriptor) -> Result<Descriptor> {
    if !is_index(descriptor.media_type()) {
        return Ok(descriptor.clone());
    }
    let digest = Digest::try_from(descriptor.digest())?;
    let file = staging.blob(&digest, INDEX_FILE)?;
    let (index, _) = staging.json::<ImageIndex>(file, &blob_member(&digest), "image index")?;
    let (os, arch) = (Os::default(), Arch::default());
    let for_host = |m: &&Descriptor| {
        let platform_ok = m
            .platform()
            .as_ref()
            .is_none_or(|p| *p.os() == os && *p.architecture() == arch);
        let present = Digest::try_from(m.digest())
            .is_ok_and(|d| staging.members.contains_key(&blob_member(&d)));
        !is_index(m.media_type()) && platform_ok && present
    };
    index
        .manifests()
        .iter()
        .find(for_host)
        .cloned()
        .ok_or_else(|| ImageError::InvalidArchive {
            reason: format!(
                "{INDEX_FILE} lists the multi-platform index {digest}, but the archive holds \
                 no image of it for this host's platform {os}/{arch}: save the image for \
                 this platform (e.g. `docker save --platform {os}/{arch}`)"
            ),
        })
}

fn is_index(media_type: &MediaType) -> bool {
    let media_type = media_type.as_ref();
    media_type == MediaType::ImageIndex.as_ref() || media_type == DOCKER_MANIFEST_LIST
}

fn plan_oci_image<'a>(staging: &'a Staging, digest: &Digest) -> Result<Plan<'a>> {
    let manifest_file = staging.blob(digest, INDEX_FILE)?;
    let needed_by = format!("manifest {digest}");
    let (manifest, manifest_bytes) =
        staging.json::<ImageManifest>(manifest_file, &blob_member(digest), "image manifest")?;
    let config_digest = Digest::try_from(manifest.config().digest())?;
    let config = staging.blob(&config_digest, &needed_by)?;
    let layer_digests = layer_digests(&manifest)?;
    let diff_ids = config_diff_ids(
        staging,
        config,
        &blob_member(&config_digest),
        layer_digests.len(),
    )?;
    let mut blobs = Vec::new();
    for (layer_digest, diff_id) in layer_digests.iter().zip(&diff_ids) {
        let layer = staging.blob(layer_digest, &needed_by)?;
        verify_diff_id(&blob_member(layer_digest), layer, diff_id)?;
        blobs.push(layer);
    }
    blobs.push(config);
    Ok(Plan {
        blobs,
        manifest_bytes,
        image: LoadedImage {
            config: config_digest,
            manifest: digest.clone(),
            layers: layer_digests,
            diff_ids,
            tags: Vec::new(),
        },
    })
}

/// The names an index entry gives its image. The full name comes from containerd's
/// annotation; the OCI ref.name is often only a tag (`latest`) and then says nothing
/// about the repository, so it is used only when it is a whole reference.
fn descriptor_tags(descriptor: &Descriptor) -> Result<Vec<Reference>> {
    let Some(annotations) = descriptor.annotations() else {
        return Ok(Vec::new());
    };
    let name = annotations.get(ANNOTATION_IMAGE_NAME).or_else(|| {
        annotations
            .get(ANNOTATION_REF_NAME)
            .filter(|r| r.contains('/') || r.contains(':'))
    });
    parse_tags(name.into_iter(), INDEX_FILE)
}

fn add_tags(tags: &mut Vec<Reference>, more: Vec<Reference>) {
    for tag in more {
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
}

fn layer_digests(manifest: &ImageManifest) -> Result<Vec<Digest>> {
    manifest
        .layers()
        .iter()
        .map(|l| Digest::try_from(l.digest()))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Saving.

fn read_stored_manifest(store: &ContentStore, digest: &Digest) -> Result<(ImageManifest, u64)> {
    let (manifest, bytes) = read_json(
        store.open_blob(digest)?,
        &store.blob_path(digest),
        &format!("blob {digest}"),
        "image manifest",
    )?;
    Ok((manifest, bytes.len() as u64))
}

/// Every blob an image needs: its manifest, config and layers.
fn blobs_of(manifest_digest: &Digest, manifest: &ImageManifest) -> Result<Vec<Digest>> {
    let mut blobs = vec![
        manifest_digest.clone(),
        Digest::try_from(manifest.config().digest())?,
    ];
    blobs.extend(layer_digests(manifest)?);
    Ok(blobs)
}

/// manifest.json's `RepoTags`: familiar `name:tag`s. Digest references are left out:
/// `docker load` refuses them there (index.json still carries them).
fn repo_tags(tags: &[Reference]) -> Vec<String> {
    tags.iter()
        .filter(|t| t.tag.is_some() && t.digest.is_none())
        .map(Reference::familiar)
        .collect()
}

/// One index.json entry per name (as containerd writes), or one without names.
fn index_entries(image: &SaveImage, manifest: &ImageManifest, size: u64) -> Vec<Descriptor> {
    let media_type = manifest
        .media_type()
        .clone()
        .unwrap_or(MediaType::ImageManifest);
    let base = Descriptor::new(media_type, size, &image.manifest);
    if image.tags.is_empty() {
        return vec![base];
    }
    image
        .tags
        .iter()
        .map(|tag| {
            let mut annotations =
                HashMap::from([(ANNOTATION_IMAGE_NAME.to_string(), tag.to_string())]);
            if let Some(t) = &tag.tag {
                annotations.insert(ANNOTATION_REF_NAME.to_string(), t.clone());
            }
            let mut descriptor = base.clone();
            descriptor.set_annotations(Some(annotations));
            descriptor
        })
        .collect()
}

/// A tar writer that writes each blob once.
struct ArchiveWriter<W: Write> {
    tar: tar::Builder<W>,
    written: HashSet<Digest>,
}

impl<W: Write> ArchiveWriter<W> {
    fn new(out: W) -> Self {
        ArchiveWriter {
            tar: tar::Builder::new(out),
            written: HashSet::new(),
        }
    }

    fn dir(&mut self, name: &str) -> Result<()> {
        let mut header = header(tar::EntryType::Directory, 0o755, 0);
        self.append(&mut header, name, io::empty())
    }

    fn blob(&mut self, store: &ContentStore, digest: &Digest) -> Result<()> {
        if !self.written.insert(digest.clone()) {
            return Ok(());
        }
        let size = store.size(digest)?;
        let mut header = header(tar::EntryType::Regular, 0o444, size);
        self.append(&mut header, &blob_member(digest), store.open_blob(digest)?)
    }

    fn json(&mut self, name: &str, value: &impl Serialize) -> Result<()> {
        let bytes = serde_json::to_vec(value).expect("archive metadata serialises");
        let mut header = header(tar::EntryType::Regular, 0o444, bytes.len() as u64);
        self.append(&mut header, name, &bytes[..])
    }

    fn append(&mut self, header: &mut tar::Header, name: &str, data: impl Read) -> Result<()> {
        self.tar
            .append_data(header, name, data)
            .map_err(|e| archive_io("write", e))
    }

    fn finish(self) -> Result<()> {
        let mut out = self.tar.into_inner().map_err(|e| archive_io("write", e))?;
        out.flush().map_err(|e| archive_io("write", e))
    }
}

/// Headers with fixed owner and time, so saving the same images twice gives the same
/// bytes (up to index.json's annotation order).
fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header
}
