//! Reading a container's json-file log (written by its shim) as `docker logs` does:
//! across rotated (and gzip'd) files, with `since`, `until`, `tail` and `follow`.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Deserialize;

/// One log line: 1 = stdout, 2 = stderr.
#[derive(Debug, Clone)]
pub struct Entry {
    pub stream: u8,
    pub time: String,
    pub text: String,
}

#[derive(Deserialize)]
struct Line {
    log: String,
    stream: String,
    time: String,
}

/// What `GET /containers/{id}/logs` asks for.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub stdout: bool,
    pub stderr: bool,
    /// Seconds since the epoch (fractions allowed), 0 = no bound.
    pub since: f64,
    pub until: f64,
    pub tail: Option<usize>,
}

impl Query {
    fn wants(&self, entry: &Entry) -> bool {
        let stream_ok = (entry.stream == 1 && self.stdout) || (entry.stream == 2 && self.stderr);
        if !stream_ok {
            return false;
        }
        if self.since == 0.0 && self.until == 0.0 {
            return true;
        }
        let t = seconds(&entry.time);
        (self.since == 0.0 || t >= self.since) && (self.until == 0.0 || t <= self.until)
    }
}

fn seconds(time: &str) -> f64 {
    humantime::parse_rfc3339(time)
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0.0, |d| d.as_secs_f64())
}

fn parse_line(line: &str) -> Option<Entry> {
    let l: Line = serde_json::from_str(line).ok()?;
    Some(Entry {
        stream: if l.stream == "stderr" { 2 } else { 1 },
        time: l.time,
        text: l.log,
    })
}

/// The rotated files, oldest first (`F.N[.gz]` … `F.1[.gz]`), without the live file.
fn rotated_files(path: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for n in 1.. {
        let plain = PathBuf::from(format!("{}.{n}", path.display()));
        let gz = PathBuf::from(format!("{}.{n}.gz", path.display()));
        if plain.exists() {
            files.push(plain);
        } else if gz.exists() {
            files.push(gz);
        } else {
            break;
        }
    }
    files.reverse();
    files
}

fn read_file(path: &Path, out: &mut Vec<Entry>, query: &Query) {
    let Ok(file) = File::open(path) else { return };
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    for line in BufReader::new(reader).lines().map_while(Result::ok) {
        if let Some(e) = parse_line(&line).filter(|e| query.wants(e)) {
            out.push(e);
        }
    }
}

/// Follows a log: what is there (after `tail`), then what is appended, handed to `send`
/// in batches until `send` says stop or `running` says the container ended and the file
/// has nothing more.
pub fn follow(
    path: &Path,
    query: &Query,
    follow: bool,
    running: impl Fn() -> bool,
    mut send: impl FnMut(Vec<Entry>) -> bool,
) {
    let mut entries = Vec::new();
    for rotated in rotated_files(path) {
        read_file(&rotated, &mut entries, query);
    }
    let mut live = File::open(path).ok();
    let mut pending = String::new();
    if let Some(f) = live.as_mut() {
        read_new(f, &mut pending, &mut entries, query);
    }
    if let Some(n) = query.tail {
        let skip = entries.len().saturating_sub(n);
        entries.drain(..skip);
    }
    if !entries.is_empty() && !send(entries) {
        return;
    }
    if !follow {
        return;
    }
    loop {
        // Read the state before the file: output written before the exit is then seen.
        let still_running = running();
        let mut batch = Vec::new();
        if let Some(f) = live.as_mut() {
            read_new(f, &mut pending, &mut batch, query);
        }
        // Rotated: finish the old file through our handle, then move to the new one.
        let current = std::fs::metadata(path).ok().map(|m| m.ino());
        let ours = live
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map(|m| m.ino());
        if current.is_some() && current != ours {
            live = File::open(path).ok();
            pending.clear();
            if let Some(f) = live.as_mut() {
                read_new(f, &mut pending, &mut batch, query);
            }
        }
        if query.until > 0.0 && batch.iter().any(|e| seconds(&e.time) > query.until) {
            return;
        }
        if !batch.is_empty() && !send(batch) {
            return;
        }
        if !still_running {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Appends the complete lines added to `file` since the last read.
fn read_new(file: &mut File, pending: &mut String, out: &mut Vec<Entry>, query: &Query) {
    let mut chunk = String::new();
    let pos = file.stream_position().unwrap_or(0);
    if file.read_to_string(&mut chunk).is_err() {
        let _ = file.seek(SeekFrom::Start(pos));
        return;
    }
    pending.push_str(&chunk);
    let complete = match pending.rfind('\n') {
        Some(i) => i + 1,
        None => return,
    };
    for line in pending[..complete].lines() {
        if let Some(e) = parse_line(line).filter(|e| query.wants(e)) {
            out.push(e);
        }
    }
    pending.drain(..complete);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(n: u32, stream: &str) -> String {
        format!(
            "{{\"log\":\"line {n}\\n\",\"stream\":\"{stream}\",\"time\":\"2026-01-01T00:00:{n:02}.000000001Z\"}}\n"
        )
    }

    #[test]
    fn reads_rotated_files_in_order_with_tail_since_and_streams() {
        let dir = std::env::temp_dir().join(format!("kapseld-logs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c-json.log");
        std::fs::write(
            format!("{}.2", path.display()),
            line(1, "stdout") + &line(2, "stderr"),
        )
        .unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, (line(3, "stdout") + &line(4, "stdout")).as_bytes())
            .unwrap();
        std::fs::write(format!("{}.1.gz", path.display()), gz.finish().unwrap()).unwrap();
        std::fs::write(&path, line(5, "stdout") + "{\"log\":\"partial").unwrap();
        let collect = |query: Query| {
            let mut all = Vec::new();
            follow(
                &path,
                &query,
                false,
                || false,
                |batch| {
                    all.extend(batch.into_iter().map(|e| e.text));
                    true
                },
            );
            all
        };
        let both = Query {
            stdout: true,
            stderr: true,
            ..Query::default()
        };
        assert_eq!(
            collect(both.clone()),
            ["line 1\n", "line 2\n", "line 3\n", "line 4\n", "line 5\n"]
        );
        let stdout_tail = Query {
            stdout: true,
            tail: Some(2),
            ..Query::default()
        };
        assert_eq!(collect(stdout_tail), ["line 4\n", "line 5\n"]);
        let since = Query {
            since: seconds("2026-01-01T00:00:04Z"),
            ..both
        };
        assert_eq!(collect(since), ["line 4\n", "line 5\n"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
