//! Request and response bodies. Archives (load, import, cp, save, export) stream through
//! bridges to blocking work (the image store, a container's filesystem): bounded channels
//! of chunks, so they are never whole in memory, with a `Read` and a `Write` for the
//! blocking side. JSON requests are buffered, up to a limit.

use std::future::Future;
use std::io::{self, BufWriter, Read, Write};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};

use super::ApiError;

/// The most a JSON request body (create, exec, update, commit…) may hold: real ones are
/// a few KiB, and buffering an unbounded one would let a client exhaust the daemon's
/// memory. Archive bodies are streamed and have no limit.
pub const JSON_BODY_LIMIT: usize = 2 << 20;

/// A JSON request body, buffered; one over [`JSON_BODY_LIMIT`] is refused with 413.
pub struct JsonBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        read_json(req.into_body()).await.map(JsonBody)
    }
}

/// Buffers a JSON request body of at most [`JSON_BODY_LIMIT`] bytes. The rest of a
/// longer one is read and dropped (up to [`DRAIN_LIMIT`]) before the 413: a client that
/// writes its whole request before reading the answer, as docker's does, would otherwise
/// see a broken pipe instead of the error.
pub async fn read_json(body: Body) -> Result<Bytes, ApiError> {
    let mut chunks = body.into_data_stream();
    let mut buf = Vec::new();
    let mut total = 0usize;
    while let Some(chunk) = chunks.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
        total += chunk.len();
        if total <= JSON_BODY_LIMIT {
            buf.extend_from_slice(&chunk);
        } else if total > DRAIN_LIMIT {
            break;
        }
    }
    if total > JSON_BODY_LIMIT {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body too large: JSON requests may hold {} MiB at most",
                JSON_BODY_LIMIT >> 20
            ),
        ));
    }
    Ok(Bytes::from(buf))
}

/// How much of an oversized JSON body is read (and dropped) before the connection is
/// closed on the client.
const DRAIN_LIMIT: usize = 64 << 20;

/// One piece of a body, or the error that cuts it short.
pub type Chunk = io::Result<Bytes>;

/// Chunks in flight between the async and the blocking side.
const CHANNEL_CHUNKS: usize = 16;

pub fn channel() -> (mpsc::Sender<Chunk>, mpsc::Receiver<Chunk>) {
    mpsc::channel(CHANNEL_CHUNKS)
}

/// A response body fed from a channel.
pub fn from_channel(rx: mpsc::Receiver<Chunk>) -> Body {
    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// Where streamed work reports, before its first byte, whether it can go on (and what the
/// response headers need): a failure then is the response's status, not a cut stream.
pub type Ready<T> = Arc<Mutex<Option<oneshot::Sender<Result<T, ApiError>>>>>;

/// Sends the first answer; later ones are dropped.
pub fn answer<T>(ready: &Ready<T>, value: Result<T, ApiError>) {
    if let Some(tx) = ready.lock().unwrap_or_else(|p| p.into_inner()).take() {
        let _ = tx.send(value);
    }
}

/// A response body written by a task: `work` gets a [`Ready`] to [`answer`] once it has
/// started, and the channel to write into. Returns that answer and the body; an error of
/// the task before it answered becomes the response.
pub async fn streamed<T, Fut>(
    what: &str,
    work: impl FnOnce(Ready<T>, mpsc::Sender<Chunk>) -> Fut,
) -> Result<(T, Body), ApiError>
where
    T: Send + 'static,
    Fut: Future<Output = Result<(), ApiError>> + Send + 'static,
{
    let (ready_tx, ready_rx) = oneshot::channel();
    let ready: Ready<T> = Arc::new(Mutex::new(Some(ready_tx)));
    let (tx, rx) = channel();
    let task = work(ready.clone(), tx);
    tokio::spawn(async move {
        if let Err(e) = task.await {
            answer(&ready, Err(e));
        }
    });
    let value = ready_rx
        .await
        .map_err(|_| ApiError::internal(format!("{what} ended early")))??;
    Ok((value, from_channel(rx)))
}

/// Streams a request body into the blocking side until it ends or is no longer read (a
/// send fails once the reader stopped: it is done or has failed).
pub async fn forward(body: Body, tx: mpsc::Sender<Chunk>) {
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(io::Error::other);
        let failed = chunk.is_err();
        if tx.send(chunk).await.is_err() || failed {
            break;
        }
    }
}

/// Runs `write` (on the blocking side) into a response body; an error ends the body with
/// it, so the client sees a cut stream, as from dockerd.
pub fn write_into(
    tx: mpsc::Sender<Chunk>,
    what: &str,
    write: impl FnOnce(&mut BufWriter<ChannelWriter>) -> io::Result<()>,
) {
    let mut out = BufWriter::with_capacity(64 << 10, ChannelWriter(tx.clone()));
    if let Err(e) = write(&mut out).and_then(|()| out.flush()) {
        if e.kind() != io::ErrorKind::BrokenPipe {
            tracing::warn!(error = %e, "writing {what}");
        }
        let _ = tx.blocking_send(Err(e));
    }
}

/// The request body, read on the blocking side.
pub struct ChannelReader {
    rx: mpsc::Receiver<Chunk>,
    chunk: Bytes,
}

impl ChannelReader {
    pub fn new(rx: mpsc::Receiver<Chunk>) -> Self {
        ChannelReader {
            rx,
            chunk: Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.chunk = chunk?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

/// The response body, written on the blocking side.
pub struct ChannelWriter(mpsc::Sender<Chunk>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
