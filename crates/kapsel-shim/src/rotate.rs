//! The log file on disk and its rotation, as Docker's json-file driver does it: `F` is
//! live, `F.1` … `F.(max_file-1)` are older (gzip'd as `F.N.gz` with compression), and
//! with `max_file` 1 the file is truncated instead.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;

use crate::args::LogOptions;
use crate::error::{Context, Result};

pub struct LogFile {
    path: PathBuf,
    /// None after a failed reopen; retried at the next write.
    file: Option<File>,
    size: u64,
    max_size: u64,
    max_file: u32,
    compress: bool,
    /// A write failed and was reported; further failures stay quiet until one succeeds,
    /// so a full disk does not flood shim.log.
    failing: bool,
}

impl LogFile {
    pub fn open(opts: &LogOptions) -> Result<Self> {
        let file =
            open_append(&opts.path).ctx(|| format!("open the log file {}", opts.path.display()))?;
        let size = file
            .metadata()
            .ctx(|| format!("stat the log file {}", opts.path.display()))?
            .len();
        Ok(LogFile {
            path: opts.path.clone(),
            file: Some(file),
            size,
            max_size: opts.max_size,
            max_file: opts.max_file,
            compress: opts.compress,
            failing: false,
        })
    }

    /// Whether an entry of `entry` bytes, written after `before` bytes not yet appended,
    /// would take the file past its maximum size. An empty file takes any entry: an entry
    /// bigger than the maximum still has to go somewhere.
    pub fn would_overflow(&self, before: usize, entry: usize) -> bool {
        let at = self.size + before as u64;
        self.max_size > 0 && at > 0 && at + entry as u64 > self.max_size
    }

    /// Appends whole entries with one write (more only if the kernel takes less).
    pub fn append(&mut self, data: &[u8]) {
        if self.file.is_none() {
            self.file = open_append(&self.path)
                .map_err(|e| self.report(format_args!("reopen the log file: {e}")))
                .ok();
        }
        let Some(file) = &mut self.file else { return };
        match file.write_all(data) {
            Ok(()) => {
                self.size += data.len() as u64;
                self.failing = false;
            }
            Err(e) => self.report(format_args!("write the log file: {e}")),
        }
    }

    /// Moves the live file to `F.1` (shifting older ones up, dropping the oldest) and
    /// starts a new one; with `max_file` 1, empties the live file instead.
    pub fn rotate(&mut self) {
        if self.max_file <= 1 {
            if let Some(f) = &self.file {
                match f.set_len(0) {
                    Ok(()) => self.size = 0,
                    Err(e) => self.report(format_args!("truncate the log file: {e}")),
                }
            }
            return;
        }
        self.file = None;
        if let Err(e) = self.shift() {
            self.report(format_args!("rotate the log file: {e}"));
        }
        self.file = open_append(&self.path)
            .map_err(|e| self.report(format_args!("reopen the log file after rotating: {e}")))
            .ok();
        self.size = self
            .file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.len());
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let suffix = if self.compress { ".gz" } else { "" };
        with_suffix(&self.path, &format!(".{n}{suffix}"))
    }

    fn shift(&self) -> io::Result<()> {
        for n in (2..self.max_file).rev() {
            rename_if_present(&self.rotated(n - 1), &self.rotated(n))?;
        }
        let first = with_suffix(&self.path, ".1");
        std::fs::rename(&self.path, &first)?;
        if self.compress {
            gzip(&first, &self.rotated(1))?;
        }
        Ok(())
    }

    fn report(&mut self, message: std::fmt::Arguments<'_>) {
        if !self.failing {
            crate::diag::log(format_args!("{}: {message}", self.path.display()));
            self.failing = true;
        }
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

fn rename_if_present(from: &Path, to: &Path) -> io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Compresses `src` into `dst` (written under a temporary name and renamed, so a reader
/// never sees half a gzip file), then removes `src`.
fn gzip(src: &Path, dst: &Path) -> io::Result<()> {
    let tmp = with_suffix(dst, ".tmp");
    let result = (|| {
        let mut input = File::open(src)?;
        let mut enc = GzEncoder::new(File::create(&tmp)?, Compression::default());
        io::copy(&mut input, &mut enc)?;
        enc.finish()?;
        std::fs::rename(&tmp, dst)?;
        std::fs::remove_file(src)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    // The compressor's tables (a few hundred KiB) were freed; give the pages back to
    // the kernel rather than keep them in this long-lived process's heap.
    crate::memory::trim_heap();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("kapsel-shim-rotate-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn opts(dir: &Path, max_size: u64, max_file: u32, compress: bool) -> LogOptions {
        LogOptions {
            path: dir.join("log"),
            max_size,
            max_file,
            compress,
        }
    }

    #[test]
    fn shifts_and_drops_the_oldest() {
        let d = tempdir("shift");
        let mut f = LogFile::open(&opts(&d, 10, 3, false)).unwrap();
        for text in ["one\n", "two\n", "three\n", "four\n"] {
            if f.would_overflow(0, 10) {
                f.rotate();
            }
            f.append(text.as_bytes());
        }
        let read = |n: &str| std::fs::read_to_string(d.join(n)).unwrap_or_default();
        assert_eq!(
            (read("log"), read("log.1"), read("log.2")),
            ("four\n".into(), "three\n".into(), "two\n".into())
        );
        assert!(!d.join("log.3").exists());
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn one_file_is_truncated() {
        let d = tempdir("truncate");
        let mut f = LogFile::open(&opts(&d, 10, 1, false)).unwrap();
        f.append(b"0123456789");
        assert!(f.would_overflow(0, 1));
        f.rotate();
        f.append(b"x");
        assert_eq!(std::fs::read(d.join("log")).unwrap(), b"x");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn compressed_rotations() {
        let d = tempdir("gzip");
        let mut f = LogFile::open(&opts(&d, 4, 3, true)).unwrap();
        for text in ["aaaa", "bbbb", "cccc"] {
            if f.would_overflow(0, 4) {
                f.rotate();
            }
            f.append(text.as_bytes());
        }
        let gunzip = |n: &str| {
            let mut s = String::new();
            io::Read::read_to_string(
                &mut flate2::read::GzDecoder::new(File::open(d.join(n)).unwrap()),
                &mut s,
            )
            .unwrap();
            s
        };
        assert_eq!(std::fs::read_to_string(d.join("log")).unwrap(), "cccc");
        assert_eq!(gunzip("log.1.gz"), "bbbb");
        assert_eq!(gunzip("log.2.gz"), "aaaa");
        assert!(!d.join("log.1").exists());
        std::fs::remove_dir_all(d).unwrap();
    }
}
