//! Container I/O: the hijacked attach/exec connection, Docker's stdout/stderr framing,
//! and JSON message streams (load, import).

use std::io::{self, Write};

use futures_util::{StreamExt, TryStreamExt};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio_util::io::StreamReader;

use crate::client::{ClientError, Result};

/// Which stream a frame of multiplexed output belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    Stdin,
    Stdout,
    Stderr,
}

/// Docker's frame header: `[stream, 0, 0, 0, size as u32 big-endian]`. Unknown stream
/// bytes are an error, because guessing would mix binary junk into the user's output.
pub fn parse_header(header: &[u8; 8]) -> io::Result<(StreamKind, usize)> {
    let kind = match header[0] {
        0 => StreamKind::Stdin,
        1 => StreamKind::Stdout,
        2 => StreamKind::Stderr,
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unrecognized output stream {other} in multiplexed container output"),
            ))
        }
    };
    let size = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
    Ok((kind, size))
}

/// Encodes one frame (for tests).
#[cfg(test)]
pub fn frame(kind: StreamKind, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![kind as u8, 0, 0, 0];
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Copies multiplexed output to `stdout` and `stderr` (frames for stdin go to stdout,
/// as docker's stdcopy does), flushing after each frame so interactive output shows up
/// at once. Returns at the end of the stream.
pub async fn demux<R, O, E>(mut input: R, stdout: &mut O, stderr: &mut E) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    O: AsyncWrite + Unpin,
    E: AsyncWrite + Unpin,
{
    let mut header = [0u8; 8];
    let mut payload = Vec::new();
    loop {
        match read_full(&mut input, &mut header).await? {
            0 => return Ok(()),
            8 => {}
            n => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("multiplexed stream ended inside a frame header ({n} of 8 bytes)"),
                ))
            }
        }
        let (kind, size) = parse_header(&header)?;
        payload.resize(size, 0);
        input.read_exact(&mut payload).await?;
        match kind {
            StreamKind::Stderr => {
                stderr.write_all(&payload).await?;
                stderr.flush().await?;
            }
            StreamKind::Stdout | StreamKind::Stdin => {
                stdout.write_all(&payload).await?;
                stdout.flush().await?;
            }
        }
    }
}

/// Copies raw (TTY) output, flushing after each read.
pub async fn copy_raw<R, O>(mut input: R, out: &mut O) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    O: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 32 << 10];
    loop {
        let n = input.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        out.write_all(&buf[..n]).await?;
        out.flush().await?;
    }
}

/// Reads until `buf` is full or the stream ends; returns how much was read.
async fn read_full<R: AsyncRead + Unpin>(input: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = input.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

/// The connection after an attach/exec request was answered: a reader for the
/// container's output and, when the daemon upgraded the connection, a writer for stdin.
pub struct Hijacked {
    pub reader: Box<dyn AsyncRead + Send + Unpin>,
    pub writer: Option<Box<dyn AsyncWrite + Send + Unpin>>,
}

impl Hijacked {
    /// The upgraded socket, split so stdin can be half-closed while output still flows.
    pub fn from_upgraded(upgraded: Upgraded) -> Result<Hijacked> {
        match upgraded.downcast::<TokioIo<UnixStream>>() {
            Ok(parts) => {
                let (read, write) = parts.io.into_inner().into_split();
                let leftover = io::Cursor::new(parts.read_buf);
                Ok(Hijacked {
                    reader: Box::new(AsyncReadExt::chain(leftover, read)),
                    writer: Some(Box::new(write)),
                })
            }
            Err(upgraded) => {
                let (read, write) = tokio::io::split(TokioIo::new(upgraded));
                Ok(Hijacked {
                    reader: Box::new(read),
                    writer: Some(Box::new(write)),
                })
            }
        }
    }

    /// A plain streaming answer (no upgrade): output only.
    pub fn from_body(body: Incoming) -> Hijacked {
        Hijacked {
            reader: Box::new(body_reader(body)),
            writer: None,
        }
    }
}

/// How copying stdin ended.
#[derive(Debug, PartialEq, Eq)]
pub enum StdinEnd {
    /// EOF: the write side was half-closed.
    Eof,
    /// The user typed the detach sequence.
    Detached,
}

/// Copies local stdin to the container and half-closes the connection's write side at
/// EOF, which is how the daemon learns that stdin ended (a container's `cat` exits).
/// With `detach`, the detach key sequence is watched for client-side, as the docker
/// CLI does, and ends the copy without being sent.
pub async fn pump_stdin<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut detach: Option<EscapeDetector>,
) -> io::Result<StdinEnd> {
    let mut stdin = tokio::io::stdin();
    let mut buf = vec![0u8; 32 << 10];
    loop {
        let n = stdin.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        let (data, detached) = match detach.as_mut() {
            Some(d) => d.feed(&buf[..n]),
            None => (buf[..n].to_vec(), false),
        };
        writer.write_all(&data).await?;
        writer.flush().await?;
        if detached {
            return Ok(StdinEnd::Detached);
        }
    }
    writer.shutdown().await?;
    Ok(StdinEnd::Eof)
}

/// Docker's default detach sequence: ctrl-p, ctrl-q.
pub const DEFAULT_DETACH_KEYS: &str = "ctrl-p,ctrl-q";

/// Watches typed bytes for the detach sequence. Bytes that might start it are held
/// back until it is clear they do not, then sent (docker's escape proxy).
#[derive(Debug, Clone)]
pub struct EscapeDetector {
    keys: Vec<u8>,
    held: usize,
}

impl EscapeDetector {
    /// Parses `--detach-keys` ("ctrl-p,ctrl-q", "ctrl-a,x", "ctrl-@").
    pub fn parse(spec: &str) -> Result<EscapeDetector, String> {
        let mut keys = Vec::new();
        for key in spec.split(',') {
            let key = key.trim();
            let byte = match key.strip_prefix("ctrl-") {
                Some(c) if c.len() == 1 => match c.as_bytes()[0].to_ascii_lowercase() {
                    b @ b'a'..=b'z' => b - b'a' + 1,
                    b'@' => 0,
                    b'[' => 27,
                    b'\\' => 28,
                    b']' => 29,
                    b'^' => 30,
                    b'_' => 31,
                    _ => return Err(format!("Unknown character: '{key}'")),
                },
                None if key.len() == 1 => key.as_bytes()[0],
                _ => return Err(format!("Unknown character: '{key}'")),
            };
            keys.push(byte);
        }
        Ok(EscapeDetector { keys, held: 0 })
    }

    /// Feeds typed bytes; returns what to send now, and whether the sequence completed.
    pub fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            if b == self.keys[self.held] {
                self.held += 1;
                if self.held == self.keys.len() {
                    self.held = 0;
                    return (out, true);
                }
                continue;
            }
            // Not the sequence after all: release what was held, then look at `b` anew.
            out.extend_from_slice(&self.keys[..self.held]);
            self.held = 0;
            if b == self.keys[0] {
                self.held = 1;
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

/// A response body as an `AsyncRead` (logs, exports, archives).
pub fn body_reader(body: Incoming) -> impl AsyncRead + Send + Unpin {
    StreamReader::new(body.into_data_stream().map_err(io::Error::other))
}

/// One message of a JSON progress stream (`docker load`, `import`, `pull`).
#[derive(Debug, Default, Deserialize)]
pub struct JsonMessage {
    #[serde(default)]
    pub stream: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub progress: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default, rename = "errorDetail")]
    pub error_detail: Option<ErrorDetail>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ErrorDetail {
    #[serde(default)]
    pub message: String,
}

impl JsonMessage {
    /// The line docker prints for a message without progress bars (its non-terminal
    /// mode): `stream` as is, else `id: status progress`.
    pub fn render(&self) -> Option<String> {
        if let Some(s) = &self.stream {
            return Some(s.clone());
        }
        let status = self.status.as_deref()?;
        let mut line = String::new();
        if let Some(id) = self.id.as_deref().filter(|i| !i.is_empty()) {
            line.push_str(id);
            line.push_str(": ");
        }
        line.push_str(status);
        if let Some(p) = self.progress.as_deref().filter(|p| !p.is_empty()) {
            line.push(' ');
            line.push_str(p);
        }
        line.push('\n');
        Some(line)
    }

    fn failure(&self) -> Option<String> {
        self.error_detail
            .as_ref()
            .map(|d| d.message.clone())
            .filter(|m| !m.is_empty())
            .or_else(|| self.error.clone())
    }
}

/// Prints a JSON message stream as it arrives; an error message in the stream ends it
/// with that error (docker shows it without the "Error response from daemon" prefix,
/// since the request itself succeeded).
pub async fn print_json_messages(body: Incoming, out: &mut impl Write) -> Result<()> {
    let mut chunks = body.into_data_stream();
    let mut pending = Vec::new();
    while let Some(chunk) = chunks.next().await {
        pending.extend_from_slice(&chunk?);
        let consumed = print_complete(&pending, out)?;
        pending.drain(..consumed);
    }
    if pending.iter().any(|b| !b.is_ascii_whitespace()) {
        return Err(ClientError::Protocol(
            "the message stream ended inside a message".into(),
        ));
    }
    Ok(())
}

/// Prints every complete message in `data`; returns how many bytes they took.
fn print_complete(data: &[u8], out: &mut impl Write) -> Result<usize> {
    let mut stream = serde_json::Deserializer::from_slice(data).into_iter::<JsonMessage>();
    let mut consumed = 0;
    loop {
        match stream.next() {
            Some(Ok(message)) => {
                consumed = stream.byte_offset();
                if let Some(failure) = message.failure() {
                    return Err(ClientError::Message(failure));
                }
                if let Some(text) = message.render() {
                    out.write_all(text.as_bytes())?;
                    out.flush()?;
                }
            }
            Some(Err(e)) if e.is_eof() => return Ok(consumed),
            Some(Err(e)) => return Err(ClientError::Protocol(e.to_string())),
            None => return Ok(consumed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_name_the_stream_and_size() {
        assert_eq!(
            parse_header(&[1, 0, 0, 0, 0, 0, 1, 2]).unwrap(),
            (StreamKind::Stdout, 258)
        );
        assert_eq!(
            parse_header(&[2, 0, 0, 0, 0, 0, 0, 5]).unwrap(),
            (StreamKind::Stderr, 5)
        );
        assert!(parse_header(&[7, 0, 0, 0, 0, 0, 0, 5]).is_err());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn demux_splits_frames_even_when_split_across_reads() {
        let mut input = frame(StreamKind::Stdout, b"hello ");
        input.extend(frame(StreamKind::Stderr, b"oops\n"));
        input.extend(frame(StreamKind::Stdout, b"world\n"));
        input.extend(frame(StreamKind::Stdout, b""));
        // A reader that hands out 3 bytes at a time, so headers arrive in pieces.
        let reader = tokio_test_reader(input, 3);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        demux(reader, &mut out, &mut err).await.unwrap();
        assert_eq!(out, b"hello world\n");
        assert_eq!(err, b"oops\n");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn demux_reports_a_truncated_frame() {
        let mut input = frame(StreamKind::Stdout, b"hello");
        input.truncate(10);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert!(demux(&input[..], &mut out, &mut err).await.is_err());
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert!(demux(&input[..4], &mut out, &mut err).await.is_err());
    }

    fn tokio_test_reader(data: Vec<u8>, step: usize) -> impl AsyncRead + Unpin {
        use std::pin::Pin;
        use std::task::{Context, Poll};
        use tokio::io::ReadBuf;
        struct Slow(Vec<u8>, usize, usize);
        impl AsyncRead for Slow {
            fn poll_read(
                mut self: Pin<&mut Self>,
                _: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                let (pos, step) = (self.1, self.2);
                let end = (pos + step).min(self.0.len()).min(pos + buf.remaining());
                buf.put_slice(&self.0[pos..end]);
                self.1 = end;
                Poll::Ready(Ok(()))
            }
        }
        Slow(data, 0, step)
    }

    #[test]
    fn detach_keys_are_caught_and_other_input_passes() {
        let mut d = EscapeDetector::parse(DEFAULT_DETACH_KEYS).unwrap();
        assert_eq!(d.feed(b"ls\n"), (b"ls\n".to_vec(), false));
        // ctrl-p alone is held back, then released when 'x' follows.
        assert_eq!(d.feed(&[16]), (vec![], false));
        assert_eq!(d.feed(b"x"), (vec![16, b'x'], false));
        assert_eq!(d.feed(&[b'a', 16, 17, b'z']), (vec![b'a'], true));
        let mut d = EscapeDetector::parse("ctrl-a,x").unwrap();
        assert_eq!(d.feed(&[1, 1, b'x']), (vec![1], true));
        assert!(EscapeDetector::parse("ctrl-").is_err());
        assert!(EscapeDetector::parse("ab").is_err());
    }

    #[test]
    fn json_messages_print_streams_and_statuses() {
        let mut out = Vec::new();
        let data = b"{\"stream\":\"Loaded image: a:1\\n\"}\n{\"status\":\"Loading\",\"id\":\"abc\",\"progress\":\"[==>]\"}\n{\"stream\":\"partial";
        let used = print_complete(data, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Loaded image: a:1\nabc: Loading [==>]\n"
        );
        assert!(used < data.len() && data[used..].ends_with(b"partial"));
        let err = print_complete(
            br#"{"error":"x","errorDetail":{"message":"bad archive"}}"#,
            &mut Vec::new(),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "bad archive");
    }
}
