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
