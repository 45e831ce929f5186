//! Content digests (`sha256:<hex>`) and streaming hashing.
//!
//! Only sha256 is accepted: it is what every OCI and Docker image in practice uses, and a
//! store that accepted an algorithm it cannot verify would be trusting its input.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

use crate::error::{ImageError, Result};

/// The only algorithm supported, as it appears before the `:` of a digest.
pub const SHA256: &str = "sha256";

/// Length of a sha256 digest's hex encoding.
const SHA256_HEX_LEN: usize = 64;

/// A validated `sha256:<64 lowercase hex>` digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// Parses and validates `sha256:<64 lowercase hex>`.
    ///
    /// Upper-case hex is refused rather than normalised: the OCI image spec only allows
    /// `[a-f0-9]`, and two spellings of one digest would give one blob two names.
    pub fn parse(s: &str) -> Result<Self> {
        let invalid = |reason: &str| ImageError::InvalidDigest {
            digest: s.to_string(),
            reason: reason.to_string(),
        };
        let (algorithm, hex) = s
            .split_once(':')
            .ok_or_else(|| invalid("expected <algorithm>:<hex>, e.g. sha256:e3b0c442…"))?;
        if algorithm != SHA256 {
            return Err(invalid(&format!(
                "unsupported algorithm {algorithm:?}: only sha256 is supported"
            )));
        }
        Self::from_hex(hex).map_err(|_| invalid("sha256 needs exactly 64 lowercase hex digits"))
    }

    /// Builds a digest from the hex part alone (as used in `blobs/sha256/<hex>` file names).
    pub fn from_hex(hex: &str) -> Result<Self> {
        let valid = hex.len() == SHA256_HEX_LEN
            && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !valid {
            return Err(ImageError::InvalidDigest {
                digest: hex.to_string(),
                reason: "sha256 needs exactly 64 lowercase hex digits".to_string(),
            });
        }
        Ok(Digest {
            hex: hex.to_string(),
        })
    }

    /// The digest of a byte slice held in memory.
    pub fn of_bytes(data: &[u8]) -> Self {
        let mut digester = Digester::new();
        digester.update(data);
        digester.finish()
    }

    pub fn algorithm(&self) -> &'static str {
        SHA256
    }

    /// The hex-encoded hash, without the algorithm prefix.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SHA256}:{}", self.hex)
    }
}

// Debug shows the same string as Display: a struct dump adds nothing to a digest.
impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Digest {
    type Err = ImageError;
    fn from_str(s: &str) -> Result<Self> {
        Digest::parse(s)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// oci-spec accepts any registered algorithm; this narrows it to the ones kapsel verifies.
impl TryFrom<&oci_spec::image::Digest> for Digest {
    type Error = ImageError;
    fn try_from(digest: &oci_spec::image::Digest) -> Result<Self> {
        Digest::parse(digest.as_ref())
    }
}

impl From<&Digest> for oci_spec::image::Digest {
    fn from(digest: &Digest) -> Self {
        // A validated sha256 digest is always a valid oci-spec digest.
        oci_spec::image::Digest::from_str(&digest.to_string())
            .expect("a validated sha256 digest parses as an oci-spec digest")
    }
}

/// Incremental sha256. Implements [`Write`] so `io::copy(reader, &mut digester)` hashes a
/// stream without holding it in memory.
#[derive(Clone, Default)]
pub struct Digester {
    hasher: Sha256,
}

impl Digester {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
    }

    pub fn finish(self) -> Digest {
        Digest {
            hex: hex::encode(self.hasher.finalize()),
        }
    }
}

impl Write for Digester {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A reader that hashes and counts every byte read through it, so data can be verified
/// while it is being copied somewhere else.
pub struct HashingReader<R> {
    inner: R,
    digester: Digester,
    bytes: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            digester: Digester::new(),
            bytes: 0,
        }
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// The digest and size of everything read so far.
    pub fn finish(self) -> (Digest, u64) {
        (self.digester.finish(), self.bytes)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.digester.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Hashes a whole stream, returning its digest and length.
pub fn digest_reader(reader: impl Read) -> io::Result<(Digest, u64)> {
    let mut hashing = HashingReader::new(reader);
    io::copy(&mut hashing, &mut io::sink())?;
    Ok(hashing.finish())
}
