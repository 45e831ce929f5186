//! Reading and writing cgroup files, with errors that name the file (and the value written).

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::Path;

use crate::error::{CgroupError, Result};

pub(crate) fn io_err(op: &'static str, path: &Path, source: std::io::Error) -> CgroupError {
    CgroupError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn parse_err(path: &Path, content: &str) -> CgroupError {
    CgroupError::Parse {
        path: path.to_path_buf(),
        content: content.to_string(),
    }
}

/// Writes `value` with a single write(2): cgroup files take one value per write. The file is
/// never created (O_CREAT on cgroupfs would turn a missing-controller ENOENT into EPERM).
pub(crate) fn write(path: &Path, value: &str) -> Result<()> {
    let wrap = |source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    };
    let mut file = OpenOptions::new().write(true).open(path).map_err(wrap)?;
    file.write_all(value.as_bytes()).map_err(wrap)
}

/// Writes the file only if it exists; for knobs that some kernels or configurations lack.
pub(crate) fn write_if_exists(path: &Path, value: &str) -> Result<()> {
    if path.exists() {
        write(path, value)?;
    }
    Ok(())
}

pub(crate) fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| io_err("reading", path, e))
}

/// `None` when the file does not exist: stats files depend on kernel configuration.
pub(crate) fn read_opt(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("reading", path, e)),
    }
}

/// A single number; "max" (v2 for unlimited) reads as `u64::MAX`.
pub(crate) fn parse_u64(path: &Path, content: &str) -> Result<u64> {
    match content.trim() {
        "max" => Ok(u64::MAX),
        s => s.parse().map_err(|_| parse_err(path, content)),
    }
}

/// A single number from a file that may be absent (0 then, like runc reports it).
pub(crate) fn read_u64_opt(path: &Path) -> Result<u64> {
    read_opt(path)?.map_or(Ok(0), |s| parse_u64(path, &s))
}

/// "key value" lines (memory.stat, cpu.stat, cgroup.events, ...); absent file reads as empty.
pub(crate) fn read_keyed(path: &Path) -> Result<BTreeMap<String, u64>> {
    let Some(content) = read_opt(path)? else {
        return Ok(BTreeMap::new());
    };
    content
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| Ok((k.to_string(), parse_u64(path, v)?)))
        .collect()
}

/// Reads a list of numbers separated by whitespace (cpuacct.usage_percpu).
pub(crate) fn read_u64_list(path: &Path) -> Result<Vec<u64>> {
    let Some(content) = read_opt(path)? else {
        return Ok(Vec::new());
    };
    content
        .split_whitespace()
        .map(|s| parse_u64(path, s))
        .collect()
}
