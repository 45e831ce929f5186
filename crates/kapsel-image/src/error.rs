use std::path::PathBuf;

use crate::digest::Digest;

pub type Result<T> = std::result::Result<T, ImageError>;

/// Errors name the blob, entry or reference involved and, where there is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("layer snapshot {0} is not unpacked: unpack the image's layers first")]
    MissingLayer(Digest),
    #[error(
        "an image of {layers} layers is more than one overlayfs mount can stack here: \
         squash the image (e.g. with a multi-stage build)"
    )]
    TooManyLayers { layers: usize },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("invalid digest {digest:?}: {reason}")]
    InvalidDigest { digest: String, reason: String },
    #[error(
        "digest mismatch: expected {expected}, got {actual}; the data is corrupt or is not \
         what its descriptor names: fetch it again (a stored blob that fails verify should \
         be deleted)"
    )]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("blob {digest} is not in the content store: pull or write it first")]
    BlobNotFound { digest: Digest },
    #[error(
        "blob {blob} is larger than the content store's limit of {limit} bytes: raise \
         StoreOptions::max_blob_size if the source is trusted"
    )]
    BlobTooLarge { blob: String, limit: u64 },
    #[error("layer entry {entry:?} refused: {reason}")]
    EntryRefused { entry: String, reason: String },
    #[error("layer entry {entry:?}: {op}: {source}")]
    Entry {
        entry: String,
        op: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "reading the layer stream: {source}; the layer is truncated or corrupt: fetch it again"
    )]
    LayerRead {
        #[source]
        source: std::io::Error,
    },
    #[error(
        "layer exceeds the limit of {limit} {what} (a decompression bomb?): raise \
         UnpackOptions::{option} if the layer is trusted"
    )]
    LayerTooLarge {
        what: &'static str,
        option: &'static str,
        limit: u64,
    },
    #[error("{format}-compressed layers are not supported: only plain tar, gzip and zstd are")]
    UnsupportedCompression { format: &'static str },
    #[error("snapshot directory {path} already exists: remove it or unpack elsewhere")]
    SnapshotExists { path: PathBuf },
    #[error("unpacking layer {blob} of image {image}: {source}")]
    LayerUnpack {
        image: String,
        blob: Digest,
        #[source]
        source: Box<ImageError>,
    },
    #[error(
        "the layer unpacked to content hashing to {actual}, but the image records diff ID \
         {expected}: the stored blob is corrupt: remove the image and load or pull it again"
    )]
    UnpackedDiffIdMismatch { expected: Digest, actual: Digest },
    // The image metadata database (metadata.rs).
    #[error(
        "opening the image database {path}: {source}: check the file's permissions, or move \
         it aside if it is not an image database (images are then listed anew by re-pulling)"
    )]
    DatabaseOpen {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "the image database {path} has schema version {version}, newer than the {supported} \
         this kapsel knows: upgrade kapsel"
    )]
    DatabaseTooNew {
        path: PathBuf,
        version: i64,
        supported: i64,
    },
    #[error(
        "the image database stayed locked by another kapsel process for the whole busy \
         timeout: retry once it finishes"
    )]
    DatabaseBusy(#[source] rusqlite::Error),
    #[error("image database: {0}")]
    Database(#[source] rusqlite::Error),
    #[error("no such image: {name}: pull it, or see `image ls` for the images here")]
    ImageNotFound { name: String },
    #[error("image ID prefix {prefix:?} matches {count} images: give more of the ID")]
    AmbiguousImageId { prefix: String, count: usize },
    #[error("image {id} is tagged as {tags}: untag it or force")]
    ImageTagged { id: Digest, tags: String },
    #[error("image config {id}: {reason}")]
    InvalidImageConfig { id: Digest, reason: String },
    #[error("layer {chain_id} belongs to no image in the database: add its image first")]
    UnknownLayer { chain_id: Digest },
    // Image archives (archive.rs).
    #[error(
        "archive member {member:?} refused: {reason}; the archive is corrupt or hostile: \
         do not load it"
    )]
    ArchiveMemberRefused { member: String, reason: String },
    #[error(
        "the archive has no member {member:?}, which {needed_by} needs: the archive is \
         truncated or incomplete: save it again"
    )]
    ArchiveMemberMissing { member: String, needed_by: String },
    #[error("invalid image archive: {reason}")]
    InvalidArchive { reason: String },
    #[error("{name} is not a valid {what}: {source}")]
    InvalidJson {
        name: String,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "layer {layer:?}: its uncompressed content hashes to {actual}, but the image \
         config's rootfs.diff_ids says {expected}: the archive is corrupt or was tampered \
         with: save it again"
    )]
    DiffIdMismatch {
        layer: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{op} the image archive: {source}")]
    ArchiveIo {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path}: {reason}: the container changed its files while they were read: commit \
         it paused (the default) or stopped"
    )]
    ContainerFileChanged { path: String, reason: String },
    #[error(
        "{path} uses overlayfs {feature}, which a layer cannot hold: mount overlayfs with \
         redirect_dir=off and metacopy=off (the kernel's defaults)"
    )]
    OverlayFeature { path: String, feature: &'static str },
    #[error("invalid change {instruction:?}: {reason}")]
    InvalidChange { instruction: String, reason: String },
    #[error(
        "{name} is over {limit} bytes, too large to be the {what} it should be: check \
         the digest or archive member name that led to it"
    )]
    JsonTooLarge {
        name: String,
        what: &'static str,
        limit: u64,
    },
}

/// Errors of committing, importing and pruning (diff.rs, instructions.rs, commit.rs).
impl ImageError {
    pub fn invalid_change(instruction: &str, reason: impl Into<String>) -> Self {
        ImageError::InvalidChange {
            instruction: instruction.to_string(),
            reason: reason.into(),
        }
    }
}

impl ImageError {
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ImageError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
