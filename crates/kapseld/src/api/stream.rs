//! Container I/O over HTTP: the hijacked connections of attach and exec start (`Upgrade:
//! tcp` answered with 101), Docker's stream framing, detach keys, and resizes, relayed to
//! and from the container's kapsel-shim.
//!
//! The shim speaks the same 8-byte framing in both directions: to the client `[stream,
//! 0, 0, 0, len u32 BE]` (1 stdout, 2 stderr); from the client `[kind, ...]` with kind 0
//! stdin data, 1 close stdin, 2 resize (rows, cols as u16 BE).

use std::path::Path;

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hyper::upgrade::OnUpgrade;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{param, ApiError};

const STDIN_DATA: u8 = 0;
const STDIN_CLOSE: u8 = 1;
const RESIZE: u8 = 2;

/// Which streams a client wants and how its stdin behaves.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// Close the container's stdin when the client's ends (StdinOnce, and exec).
    pub close_stdin_at_eof: bool,
    /// The bytes that detach the client (empty: none).
    pub detach_keys: Vec<u8>,
}

/// Appends one chunk for a client: raw with a TTY, else with Docker's 8-byte header.
pub fn frame_into(out: &mut Vec<u8>, stream: u8, payload: &[u8], tty: bool) {
    if !tty {
        out.push(stream);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    }
    out.extend_from_slice(payload);
}

fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    frame_into(&mut out, kind, payload, false);
    out
}

pub fn wants_upgrade(req: &Request) -> bool {
    req.headers()
        .get("Upgrade")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("tcp"))
}

/// `ctrl-p,ctrl-q` (Docker's default for an empty setting), letters and `ctrl-@`…`ctrl-_`.
pub fn parse_detach_keys(spec: &str) -> Vec<u8> {
    let spec = if spec.is_empty() {
        "ctrl-p,ctrl-q"
    } else {
        spec
    };
    spec.split(',')
        .filter_map(|key| match key.strip_prefix("ctrl-") {
            Some(c) if c.len() == 1 => {
                let b = c.as_bytes()[0].to_ascii_uppercase();
                (b'@'..=b'_').contains(&b).then(|| b - b'@')
            }
            None if key.len() == 1 => Some(key.as_bytes()[0]),
            _ => None,
        })
        .collect()
}

/// Answers an attach or exec start: with `Upgrade: tcp`, 101 and a relay on the upgraded
/// connection; without it (older clients), the output as a streamed body.
pub fn hijack(
    upgrade: bool,
    on_upgrade: OnUpgrade,
    shim: impl std::future::Future<Output = Result<std::os::unix::net::UnixStream, String>>
        + Send
        + 'static,
    options: StreamOptions,
) -> Response {
    let content_type = if options.tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    if !upgrade {
        let (mut body_side, reader) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            match connect(shim).await {
                Ok(shim) => {
                    let (mut from_shim, _to_shim) = shim.into_split();
                    let _ = relay_output(&mut from_shim, &mut body_side, &options).await;
                }
                Err(message) => report(&mut body_side, &message, options.tty).await,
            }
        });
        let body = Body::from_stream(tokio_util::io::ReaderStream::new(reader));
        return ([("Content-Type", content_type)], body).into_response();
    }
    // The process is started (the shim future) only once the 101 has gone out: output
    // sent together with the response headers would be lost by clients that read the
    // headers through a buffer (docker-py).
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => hyper_util::rt::TokioIo::new(upgraded),
            Err(e) => return tracing::debug!("attach upgrade failed: {e}"),
        };
        match connect(shim).await {
            Ok(shim) => relay(upgraded, shim, options).await,
            Err(message) => {
                let mut client = upgraded;
                report(&mut client, &message, options.tty).await;
                let _ = client.shutdown().await;
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("Content-Type", content_type)
        .header("Connection", "Upgrade")
        .header("Upgrade", "tcp")
        .body(Body::empty())
        .expect("valid response")
}

async fn connect(
    shim: impl std::future::Future<Output = Result<std::os::unix::net::UnixStream, String>>,
) -> Result<tokio::net::UnixStream, String> {
    let shim = shim.await?;
    shim.set_nonblocking(true)
        .and_then(|_| tokio::net::UnixStream::from_std(shim))
        .map_err(|e| format!("container stream: {e}"))
}

/// A failure after the response went out reaches the client on its stderr stream.
async fn report<W: AsyncWrite + Unpin>(client: &mut W, message: &str, tty: bool) {
    let mut out = Vec::new();
    frame_into(&mut out, 2, format!("{message}\n").as_bytes(), tty);
    let _ = client.write_all(&out).await;
}

/// Output until the shim ends the stream (the process exited) or the client detaches.
async fn relay<C: AsyncRead + AsyncWrite + Unpin>(
    client: C,
    shim: tokio::net::UnixStream,
    options: StreamOptions,
) {
    let (mut from_shim, mut to_shim) = shim.into_split();
    let (mut from_client, mut to_client) = tokio::io::split(client);
    let output = async {
        let _ = relay_output(&mut from_shim, &mut to_client, &options).await;
        let _ = to_client.shutdown().await;
    };
    let input = async {
        if options.stdin {
            relay_input(&mut from_client, &mut to_shim, &options).await
        } else {
            // Clients without stdin half-close at once (the docker CLI does): only the
            // output side decides when the relay ends.
            InputEnd::Eof
        }
    };
    tokio::pin!(output);
    tokio::select! {
        _ = &mut output => {}
        // A detach ends the relay; the end of stdin leaves the output running.
        _ = async {
            if input.await == InputEnd::Eof {
                std::future::pending::<()>().await;
            }
        } => {}
    }
}

#[derive(Debug, PartialEq, Eq)]
enum InputEnd {
    Eof,
    Detached,
}

async fn relay_output<R, W>(
    from_shim: &mut R,
    to_client: &mut W,
    options: &StreamOptions,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut header = [0u8; 8];
    let mut payload = Vec::new();
    loop {
        if from_shim.read_exact(&mut header).await.is_err() {
            return Ok(());
        }
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        payload.resize(len, 0);
        from_shim.read_exact(&mut payload).await?;
        let wanted = match header[0] {
            2 => options.stderr,
            _ => options.stdout,
        };
        if wanted {
            let mut out = Vec::with_capacity(len + 8);
            frame_into(&mut out, header[0], &payload, options.tty);
            to_client.write_all(&out).await?;
            to_client.flush().await?;
        }
    }
}

/// Client bytes to the container's stdin; ends at the client's EOF (closing stdin if
/// asked) or when the detach keys are typed.
async fn relay_input<R, W>(
    from_client: &mut R,
    to_shim: &mut W,
    options: &StreamOptions,
) -> InputEnd
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 32 * 1024];
    let mut detach = DetachMatcher::new(&options.detach_keys);
    loop {
        let n = match from_client.read(&mut buf).await {
            Ok(0) | Err(_) => {
                if options.close_stdin_at_eof {
                    let _ = to_shim.write_all(&frame(STDIN_CLOSE, &[])).await;
                }
                return InputEnd::Eof;
            }
            Ok(n) => n,
        };
        let (data, detached) = detach.feed(&buf[..n]);
        if !data.is_empty() && to_shim.write_all(&frame(STDIN_DATA, &data)).await.is_err() {
            return InputEnd::Eof;
        }
        if detached {
            return InputEnd::Detached;
        }
    }
}

/// Spots the detach sequence in stdin, holding back a partial match until it is
/// complete or broken.
struct DetachMatcher<'a> {
    keys: &'a [u8],
    matched: usize,
}

impl<'a> DetachMatcher<'a> {
    fn new(keys: &'a [u8]) -> Self {
        DetachMatcher { keys, matched: 0 }
    }

    /// The bytes to pass on, and whether the sequence was completed.
    fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            if self.keys.is_empty() {
                out.push(b);
                continue;
            }
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return (out, true);
                }
                continue;
            }
            out.extend_from_slice(&self.keys[..self.matched]);
            self.matched = usize::from(b == self.keys[0]);
            if self.matched == 0 {
                out.push(b);
            }
        }
        (out, false)
    }
}

/// `?h=ROWS&w=COLS` sent to the shim listening on `socket`.
pub async fn send_resize(socket: &Path, params: &[(String, String)]) -> Result<(), ApiError> {
    let number = |name: &str| -> Result<u16, ApiError> {
        param(params, name)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| ApiError::bad_request(format!("resize needs a numeric {name}")))
    };
    let (rows, cols) = (number("h")?, number("w")?);
    let mut payload = rows.to_be_bytes().to_vec();
    payload.extend_from_slice(&cols.to_be_bytes());
    let mut conn = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|e| ApiError::internal(format!("resizing: connecting to the shim: {e}")))?;
    conn.write_all(&frame(RESIZE, &payload))
        .await
        .map_err(|e| ApiError::internal(format!("resizing: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_and_match_across_reads() {
        assert_eq!(parse_detach_keys(""), vec![0x10, 0x11]);
        assert_eq!(parse_detach_keys("ctrl-a,x"), vec![0x01, b'x']);
        let keys = parse_detach_keys("");
        let mut m = DetachMatcher::new(&keys);
        assert_eq!(m.feed(b"ab\x10"), (b"ab".to_vec(), false));
        assert_eq!(m.feed(b"c"), (b"\x10c".to_vec(), false));
        assert_eq!(m.feed(b"\x10\x11rest"), (Vec::new(), true));
    }

    #[test]
    fn frames_have_dockers_header_unless_tty() {
        let mut out = Vec::new();
        frame_into(&mut out, 2, b"err", false);
        assert_eq!(out, [2, 0, 0, 0, 0, 0, 0, 3, b'e', b'r', b'r']);
        let mut raw = Vec::new();
        frame_into(&mut raw, 1, b"x", true);
        assert_eq!(raw, b"x");
    }
}
