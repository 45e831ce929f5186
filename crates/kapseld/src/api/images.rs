//! `/images/...`: list, inspect, load, tag, remove and save images.
//!
//! The image store does blocking file and SQLite work, so it runs in
//! `spawn_blocking`; archives stream between the request or response body and that work
//! through channels, never whole in memory.

use std::io::{self, BufWriter, Read, Write};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use kapsel_image::reference::Reference;
use kapsel_image::store::{ImageStore, RemoveEvent};
use kapsel_image::ImageError;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::{flag, page_not_found, param, ApiError, AppState};

/// Query parameters as pairs: `names` may be given several times.
type Params = Query<Vec<(String, String)>>;

/// Chunks in flight between the async and the blocking side.
const CHANNEL_CHUNKS: usize = 16;

pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let images = blocking(&state, |store| store.list()).await?;
    Ok(Json(Value::Array(images)))
}

/// `docker load`: the body is the archive; the answer is a JSON message stream.
pub async fn load(State(state): State<AppState>, body: Body) -> Result<Response, ApiError> {
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let store = state.images.clone();
    let task = tokio::task::spawn_blocking(move || store.load(ChannelReader::new(rx)));
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(io::Error::other);
        let failed = chunk.is_err();
        // A send fails once the loader stopped reading: it is done or has failed.
        if tx.send(chunk).await.is_err() || failed {
            break;
        }
    }
    drop(tx);
    let loaded = task
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    let mut messages = String::new();
    for (id, tags) in loaded {
        let lines = if tags.is_empty() {
            vec![format!("Loaded image ID: {id}\n")]
        } else {
            tags.iter()
                .map(|t| format!("Loaded image: {}\n", t.familiar()))
                .collect()
        };
        for line in lines {
            messages.push_str(&json!({ "stream": line }).to_string());
            messages.push('\n');
        }
    }
    Ok(([("Content-Type", "application/json")], messages).into_response())
}

/// `docker save a b`: `GET /images/get?names=a&names=b`.
pub async fn save_named(
    State(state): State<AppState>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let names: Vec<String> = params
        .into_iter()
        .filter(|(k, _)| k == "names")
        .map(|(_, v)| v)
        .collect();
    if names.is_empty() {
        return Err(ApiError::bad_request("no images to save: give names"));
    }
    save(&state, names).await
}

pub async fn create() -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "pulling from registries is not supported yet: load images with docker load",
    )
}

/// `/images/{name}[/op]`: names may contain '/', so the operation is the last segment.
pub async fn by_name(
    State(state): State<AppState>,
    method: Method,
    Path(rest): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let rest = rest.trim_start_matches('/');
    if method == Method::DELETE {
        return remove(&state, rest, flag(&params, "force")).await;
    }
    let not_found = || page_not_found(&method, &format!("/images/{rest}"));
    let (name, op) = rest.rsplit_once('/').ok_or_else(not_found)?;
    match (&method, op) {
        (&Method::GET, "json") => {
            let name = name.to_string();
            let image = blocking(&state, move |store| store.inspect(&name)).await?;
            Ok(Json(image).into_response())
        }
        (&Method::GET, "get") => save(&state, vec![name.to_string()]).await,
        (&Method::POST, "tag") => tag(&state, name, &params).await,
        (&Method::POST, "push") | (&Method::GET, "history") => Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("/images/{{name}}/{op} is not supported yet"),
        )),
        _ => Err(not_found()),
    }
}

/// `POST /images/{name}/tag?repo=&tag=`: 201 with no body, as dockerd.
async fn tag(
    state: &AppState,
    source: &str,
    params: &[(String, String)],
) -> Result<Response, ApiError> {
    let repo = param(params, "repo").unwrap_or_default();
    let target = match param(params, "tag").filter(|t| !t.is_empty()) {
        Some(tag) => format!("{repo}:{tag}"),
        None => repo.to_string(),
    };
    let target = Reference::parse(&target)?;
    let source = source.to_string();
    blocking(state, move |store| store.tag(&source, &target)).await?;
    Ok(StatusCode::CREATED.into_response())
}

async fn remove(state: &AppState, name: &str, force: bool) -> Result<Response, ApiError> {
    let name = name.to_string();
    let events = blocking(state, move |store| store.remove(&name, force)).await?;
    let events: Vec<Value> = events
        .into_iter()
        .map(|event| match event {
            RemoveEvent::Untagged(tag) => json!({ "Untagged": tag }),
            RemoveEvent::Deleted(id) => json!({ "Deleted": id.to_string() }),
        })
        .collect();
    Ok(Json(events).into_response())
}

/// Streams a docker-archive of `names`. Unknown names are answered 404 before the
/// stream starts; a failure after that cuts the stream short.
async fn save(state: &AppState, names: Vec<String>) -> Result<Response, ApiError> {
    let checked = names.clone();
    blocking(state, move |store| {
        checked.iter().try_for_each(|n| store.resolve(n).map(drop))
    })
    .await?;
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let store = state.images.clone();
    tokio::task::spawn_blocking(move || {
        let mut out = BufWriter::with_capacity(64 << 10, ChannelWriter(tx.clone()));
        let saved = store.save(&names, &mut out).and_then(|()| {
            out.flush().map_err(|source| ImageError::ArchiveIo {
                op: "write",
                source,
            })
        });
        if let Err(e) = saved {
            tracing::warn!(error = %e, "saving images");
            let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    Ok((
        [("Content-Type", "application/x-tar")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// Runs blocking store work off the async thread.
async fn blocking<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&ImageStore) -> kapsel_image::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    let store = state.images.clone();
    let result = tokio::task::spawn_blocking(move || work(&store))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(result?)
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
