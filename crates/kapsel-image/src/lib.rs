//! Images for kapsel: what an image is made of and where it is kept.
//!
//! Following containerd's split: a content store of blobs addressed by digest
//! ([`content`]), layers unpacked once per chain ID ([`unpack`], [`snapshot`]), and a
//! metadata database of images and tags ([`metadata`]); plus image references
//! ([`reference`]), docker-archive and OCI archive load/save ([`archive`]), and the
//! built-in hello-world image ([`hello`]); [`store`] puts them together for an engine.
//! Containers' changes ([`diff`]) become images by [`commit`] (also `import`), with
//! Dockerfile `--change` instructions ([`instructions`]); [`usage`] is history, prune,
//! garbage collection and disk usage.

pub mod archive;
pub mod commit;
pub mod content;
pub mod diff;
pub mod digest;
pub mod error;
pub mod hello;
pub mod instructions;
pub mod metadata;
pub mod pax;
pub mod reference;
pub mod snapshot;
pub mod store;
pub mod unpack;
pub mod usage;

pub use error::{ImageError, Result};
