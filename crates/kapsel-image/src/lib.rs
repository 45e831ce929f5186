//! Images for kapsel: what an image is made of and where it is kept.
//!
//! Following containerd's split: a content store of blobs addressed by digest
//! ([`content`]), layers unpacked once per chain ID ([`unpack`], [`snapshot`]), and a
//! metadata database of images and tags ([`metadata`]); plus image references
//! ([`reference`]), docker-archive and OCI archive load/save ([`archive`]), and the
//! built-in hello-world image ([`hello`]); [`store`] puts them together for an engine.

pub mod archive;
pub mod content;
pub mod digest;
pub mod error;
pub mod hello;
pub mod metadata;
pub mod reference;
pub mod snapshot;
pub mod store;
pub mod unpack;

pub use error::{ImageError, Result};
