//! Images for kapsel: what an image is made of and where it is kept.
//!
//! Following containerd's split: a content store of blobs addressed by digest
//! ([`content`]), layers unpacked into snapshot directories ([`unpack`]), and image
//! references ([`reference`]).

pub mod content;
pub mod digest;
pub mod error;
pub mod hello;
pub mod reference;
pub mod snapshot;
pub mod unpack;

pub use error::{ImageError, Result};
