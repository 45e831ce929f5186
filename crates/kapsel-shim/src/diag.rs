//! The shim's own error log, `<dir>/shim.log`: its stdio is /dev/null, and kapseld (which
//! may have been restarted since) reads this file to learn why a shim misbehaved. One
//! plain-text line per message, prefixed with the time.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::SystemTime;

use crate::time::{push_rfc3339, Fraction};

static PATH: OnceLock<PathBuf> = OnceLock::new();

/// Sets where messages go; before this they are dropped.
pub fn init(path: PathBuf) {
    let _ = PATH.set(path);
}

/// Appends one line. The file is opened per message: messages are rare, and this keeps
/// no fd open for them.
pub fn log(message: impl std::fmt::Display) {
    let Some(path) = PATH.get() else { return };
    let mut line = Vec::with_capacity(128);
    push_rfc3339(&mut line, SystemTime::now(), Fraction::Nanos);
    // Writing into a Vec cannot fail; a multi-line message is kept on one line.
    let _ = write!(line, " {message}");
    for b in &mut line {
        if *b == b'\n' {
            *b = b' ';
        }
    }
    line.push(b'\n');
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
    {
        let _ = f.write_all(&line);
    }
}
