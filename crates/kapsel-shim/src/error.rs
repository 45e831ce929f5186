//! One error type for the whole shim: what was being done, and the OS error if there was
//! one. Every message ends up in one line of `shim.log` or in the readiness report, so
//! the text must name what failed.

use std::fmt;
use std::io;

#[derive(Debug)]
pub struct Error {
    what: String,
    source: Option<io::Error>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error that is not an OS error (bad arguments, a malformed file).
    pub fn msg(what: impl Into<String>) -> Self {
        Error {
            what: what.into(),
            source: None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(e) => write!(f, "{}: {e}", self.what),
            None => f.write_str(&self.what),
        }
    }
}

impl std::error::Error for Error {}

/// Attaches "what was being done" to an OS error.
pub trait Context<T> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T> Context<T> for io::Result<T> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error {
            what: what().into(),
            source: Some(e),
        })
    }
}

impl<T> Context<T> for nix::Result<T> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error {
            what: what().into(),
            source: Some(io::Error::from(e)),
        })
    }
}
