//! `/containers/{id}/archive` (docker cp: HEAD stat, GET a tar, PUT a tar) and
//! `/containers/{id}/export`, over [`crate::containers::fs`].
//!
//! Archives stream through bounded channels between the HTTP body and the blocking
//! filesystem work, never whole in memory. A GET answers its status (404 for a missing
//! path) before the first byte of the tar; an error after that cuts the stream short.

use std::io::{self, BufWriter, Read, Write};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};

use super::stream::receiver_stream;
use super::{flag, param, ApiError, AppState};
use crate::containers::fs::{Access, ExtractOptions, FsError, PathStat};
use crate::containers::user;

type Params = Query<Vec<(String, String)>>;

/// Chunks in flight between the async and the blocking side.
const CHANNEL_CHUNKS: usize = 16;

const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

impl From<FsError> for ApiError {
    fn from(err: FsError) -> Self {
        let status = match &err {
            FsError::NoSuchPath { .. } => StatusCode::NOT_FOUND,
            FsError::NotADirectory | FsError::Invalid(_) => StatusCode::BAD_REQUEST,
            FsError::ReadOnly => StatusCode::FORBIDDEN,
            FsError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            FsError::Container(_) => {
                let FsError::Container(e) = err else {
                    unreachable!()
                };
                return ApiError::from(e);
            }
        };
        ApiError::new(status, err.to_string())
    }
}

fn path_param(params: &[(String, String)]) -> Result<String, ApiError> {
    param(params, "path")
        .filter(|p| !p.is_empty())
        .map(String::from)
        .ok_or_else(|| ApiError::bad_request("path cannot be empty"))
}

/// `HEAD /containers/{id}/archive?path=`: only the path's stat, in the header.
pub async fn head(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let path = path_param(&params)?;
    let stat = state
        .engine
        .with_rootfs(&id, Access::Read, move |fs, _| fs.stat(&fs.resolve(&path)?))
        .await?;
    Ok(([(STAT_HEADER, stat.header_value())], ()).into_response())
}

/// `GET /containers/{id}/archive?path=`: the stat header and a tar of the path.
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let path = path_param(&params)?;
    let (ready_tx, ready_rx) = oneshot::channel::<Result<PathStat, ApiError>>();
    let ready = Arc::new(Mutex::new(Some(ready_tx)));
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let engine = state.engine.clone();
    let (task_ready, given) = (ready.clone(), id.clone());
    tokio::spawn(async move {
        let result = engine
            .with_rootfs(&id, Access::Read, move |fs, _| {
                let found = fs.resolve(&path).and_then(|t| Ok((fs.stat(&t)?, t)));
                let (stat, target) = match found {
                    Ok(found) => found,
                    Err(e) => {
                        answer(&task_ready, Err(e.named(&given).into()));
                        return Ok(());
                    }
                };
                answer(&task_ready, Ok(stat));
                stream_into(tx, |out| fs.archive(&target, out).map(drop));
                Ok(())
            })
            .await;
        if let Err(e) = result {
            answer(&ready, Err(e.into()));
        }
    });
    let stat = ready_rx
        .await
        .map_err(|_| ApiError::internal("the archive task ended early"))??;
    Ok((
        [
            ("Content-Type", "application/x-tar".to_string()),
            (STAT_HEADER, stat.header_value()),
        ],
        Body::from_stream(receiver_stream(rx)),
    )
        .into_response())
}

/// `GET /containers/{id}/export`: the container's root filesystem as a tar.
pub async fn export(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (ready_tx, ready_rx) = oneshot::channel::<Result<(), ApiError>>();
    let ready = Arc::new(Mutex::new(Some(ready_tx)));
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let engine = state.engine.clone();
    let task_ready = ready.clone();
    tokio::spawn(async move {
        let result = engine
            .with_rootfs(&id, Access::Read, move |fs, _| {
                answer(&task_ready, Ok(()));
                stream_into(tx, |out| fs.export(out).map(drop));
                Ok(())
            })
            .await;
        if let Err(e) = result {
            answer(&ready, Err(e.into()));
        }
    });
    ready_rx
        .await
        .map_err(|_| ApiError::internal("the export task ended early"))??;
    Ok((
        [("Content-Type", "application/x-tar")],
        Body::from_stream(receiver_stream(rx)),
    )
        .into_response())
}

/// `PUT /containers/{id}/archive?path=&noOverwriteDirNonDir=&copyUIDGID=`: the body (a
/// tar, plain or gzip'd) is extracted into directory `path`.
pub async fn put(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
    body: Body,
) -> Result<Response, ApiError> {
    let path = path_param(&params)?;
    let no_overwrite_dir_non_dir = flag(&params, "noOverwriteDirNonDir");
    let copy_uid_gid = flag(&params, "copyUIDGID");
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let engine = state.engine.clone();
    let task = tokio::spawn(async move {
        engine
            .with_rootfs(&id, Access::Write, move |fs, record| {
                if record.host_config.readonly_rootfs {
                    return Err(FsError::ReadOnly);
                }
                // As dockerd: with copyUIDGID, everything belongs to the container's user
                // (looked up in the container's own passwd and group files).
                let owner = if copy_uid_gid && !record.config.user.is_empty() {
                    let u = user::resolve(fs.path(), &record.config.user, &[])?;
                    Some((u.uid, u.gid))
                } else {
                    None
                };
                let options = ExtractOptions {
                    no_overwrite_dir_non_dir,
                    owner,
                };
                fs.extract(&path, ChannelReader::new(rx), &options)
            })
            .await
    });
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(io::Error::other);
        let failed = chunk.is_err();
        // A send fails once the extraction stopped reading: it is done or has failed.
        if tx.send(chunk).await.is_err() || failed {
            break;
        }
    }
    drop(tx);
    task.await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(StatusCode::OK.into_response())
}

/// Sends the first answer; later ones are dropped.
fn answer<T>(ready: &Mutex<Option<oneshot::Sender<T>>>, value: T) {
    if let Some(tx) = ready.lock().unwrap_or_else(|p| p.into_inner()).take() {
        let _ = tx.send(value);
    }
}

/// Runs `write` into the response body; an error ends the body with it (the client
/// sees a cut stream, as from dockerd).
fn stream_into(
    tx: mpsc::Sender<io::Result<Bytes>>,
    write: impl FnOnce(&mut BufWriter<ChannelWriter>) -> io::Result<()>,
) {
    let mut out = BufWriter::with_capacity(64 << 10, ChannelWriter(tx.clone()));
    if let Err(e) = write(&mut out).and_then(|()| out.flush()) {
        if e.kind() != io::ErrorKind::BrokenPipe {
            tracing::warn!(error = %e, "writing a container archive");
        }
        let _ = tx.blocking_send(Err(e));
    }
}

/// The request body, read on the blocking side.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    chunk: Bytes,
}

impl ChannelReader {
    fn new(rx: mpsc::Receiver<io::Result<Bytes>>) -> Self {
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
struct ChannelWriter(mpsc::Sender<io::Result<Bytes>>);

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
