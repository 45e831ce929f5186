//! Docker's json-file log format: one JSON object per line,
//! `{"log":"text\n","stream":"stdout","time":"2026-11-22T18:00:54.123456789Z"}`.
//!
//! Output is cut into lines at '\n' (kept in `log`); an unfinished line waits per stream
//! for the rest, but at [`MAX_LINE`] bytes it is written as an entry without '\n', as
//! Docker's log copier does with its 16 KiB buffer; at EOF what waits is written as is.
//! The entries of one read go to the file in one write(2) (no fsync: Docker does none).

use std::time::SystemTime;

use crate::args::LogOptions;
use crate::error::Result;
use crate::json::push_string;
use crate::rotate::LogFile;
use crate::stdio::Stream;
use crate::time::{push_rfc3339, Fraction};

/// The longest entry text; a longer line is split into entries of this size.
pub const MAX_LINE: usize = 16 * 1024;

/// A batch buffer grown past this (a burst of escapes) is released after its write.
const KEEP_CAPACITY: usize = 64 << 10;

pub struct JsonFileLog {
    file: LogFile,
    /// The unfinished line of stdout and of stderr.
    partial: [Vec<u8>; 2],
    /// Encoded entries not yet written.
    batch: Vec<u8>,
    /// `"time":"…"` of the entries being encoded.
    time: Vec<u8>,
}

impl JsonFileLog {
    pub fn open(opts: &LogOptions) -> Result<Self> {
        Ok(JsonFileLog {
            file: LogFile::open(opts)?,
            partial: [Vec::new(), Vec::new()],
            batch: Vec::new(),
            time: Vec::new(),
        })
    }

    /// Logs one chunk of output, read at `now`.
    pub fn write(&mut self, stream: Stream, data: &[u8], now: SystemTime) {
        self.set_time(now);
        let mut rest = data;
        while !rest.is_empty() {
            let room = MAX_LINE - self.partial(stream).len();
            let window = &rest[..room.min(rest.len())];
            let end = match window.iter().position(|&b| b == b'\n') {
                Some(i) => i + 1,
                None if window.len() == room => room,
                None => {
                    self.partial_mut(stream).extend_from_slice(window);
                    break;
                }
            };
            self.line(stream, &window[..end]);
            rest = &rest[end..];
        }
        self.flush();
    }

    /// At EOF: writes the unfinished lines.
    pub fn finish(&mut self, now: SystemTime) {
        self.set_time(now);
        for stream in [Stream::Stdout, Stream::Stderr] {
            if !self.partial(stream).is_empty() {
                self.line(stream, &[]);
            }
        }
        self.flush();
    }

    /// Gives back memory held for bursts (called when the shim goes idle).
    pub fn release_buffers(&mut self) {
        for p in &mut self.partial {
            p.shrink_to_fit();
        }
        self.batch = Vec::new();
    }

    fn partial(&self, stream: Stream) -> &Vec<u8> {
        &self.partial[stream as usize - 1]
    }

    fn partial_mut(&mut self, stream: Stream) -> &mut Vec<u8> {
        &mut self.partial[stream as usize - 1]
    }

    fn set_time(&mut self, now: SystemTime) {
        self.time.clear();
        self.time.extend_from_slice(b"\"time\":\"");
        push_rfc3339(&mut self.time, now, Fraction::GoNano);
        self.time.extend_from_slice(b"\"}\n");
    }

    /// One entry: what waits for `stream`, followed by `tail`.
    fn line(&mut self, stream: Stream, tail: &[u8]) {
        let mut waiting = std::mem::take(self.partial_mut(stream));
        let text = if waiting.is_empty() {
            tail
        } else {
            waiting.extend_from_slice(tail);
            &waiting
        };
        let start = self.batch.len();
        encode(&mut self.batch, stream, text, &self.time);
        waiting.clear();
        *self.partial_mut(stream) = waiting;
        let entry = self.batch.len() - start;
        if self.file.would_overflow(start, entry) {
            self.file.append(&self.batch[..start]);
            self.batch.drain(..start);
            self.file.rotate();
        }
    }

    fn flush(&mut self) {
        if !self.batch.is_empty() {
            self.file.append(&self.batch);
        }
        self.batch.clear();
        if self.batch.capacity() > KEEP_CAPACITY {
            self.batch = Vec::new();
        }
    }
}

/// Appends one entry; `time` is the already encoded `"time":"…"}` and newline. The field
/// order is Docker's: log, stream, time.
fn encode(out: &mut Vec<u8>, stream: Stream, text: &[u8], time: &[u8]) {
    out.extend_from_slice(b"{\"log\":");
    push_string(out, text);
    out.extend_from_slice(b",\"stream\":\"");
    out.extend_from_slice(stream.name().as_bytes());
    out.extend_from_slice(b"\",");
    out.extend_from_slice(time);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::time::{Duration, UNIX_EPOCH};

    fn log_in(name: &str) -> (JsonFileLog, PathBuf) {
        let d = std::env::temp_dir().join(format!("kapsel-shim-log-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let opts = LogOptions {
            path: d.join("log"),
            max_size: 0,
            max_file: 1,
            compress: false,
        };
        (JsonFileLog::open(&opts).unwrap(), d)
    }

    const T: u64 = 1_795_370_454;

    #[test]
    fn lines_are_split_and_joined_per_stream() {
        let (mut log, d) = log_in("lines");
        let t = UNIX_EPOCH + Duration::new(T, 120_000_000);
        log.write(Stream::Stdout, b"a\nb", t);
        log.write(Stream::Stderr, b"e\tx\n", t);
        log.write(Stream::Stdout, b"c\n<d>", t);
        log.finish(t);
        let text = std::fs::read_to_string(d.join("log")).unwrap();
        assert_eq!(
            text,
            "{\"log\":\"a\\n\",\"stream\":\"stdout\",\"time\":\"2026-11-22T18:00:54.12Z\"}\n\
             {\"log\":\"e\\u0009x\\n\",\"stream\":\"stderr\",\"time\":\"2026-11-22T18:00:54.12Z\"}\n\
             {\"log\":\"bc\\n\",\"stream\":\"stdout\",\"time\":\"2026-11-22T18:00:54.12Z\"}\n\
             {\"log\":\"\\u003cd\\u003e\",\"stream\":\"stdout\",\"time\":\"2026-11-22T18:00:54.12Z\"}\n"
        );
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn long_lines_become_16k_entries() {
        let (mut log, d) = log_in("long");
        let t = UNIX_EPOCH + Duration::from_secs(T);
        let mut line = vec![b'x'; 40 * 1024];
        line.push(b'\n');
        // In uneven pieces, as reads would deliver it.
        for piece in line.chunks(5000) {
            log.write(Stream::Stdout, piece, t);
        }
        let text = std::fs::read_to_string(d.join("log")).unwrap();
        let lens: Vec<usize> = text
            .lines()
            .map(|l| l.split('"').nth(3).unwrap().len())
            .collect();
        // 16384 + 16384 + 8192 x's, the last with its "\n" (2 characters escaped).
        assert_eq!(lens, [16384, 16384, 8194]);
        std::fs::remove_dir_all(d).unwrap();
    }
}
