//! The Engine API client: HTTP/1.1 over kapseld's unix socket.
//!
//! One connection per request keeps the client simple and matches how short-lived a CLI
//! invocation is; the daemon is local, so a connect costs microseconds.

use std::io;
use std::path::PathBuf;

use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::client::conn::http1;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::io::AsyncRead;
use tokio::net::UnixStream;
use tokio_util::io::ReaderStream;

/// The API version every request names: the one kapseld implements.
pub const API_VERSION: &str = "1.47";

/// Where kapseld listens unless told otherwise.
pub const DEFAULT_HOST: &str = "unix:///run/kapsel.sock";

/// A request body: empty, JSON, or streamed from a reader (archives).
pub type Body = BoxBody<Bytes, io::Error>;

/// What can go wrong talking to the daemon. Display strings are what the user sees, in
/// docker's wording where docker has one.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("unsupported host {0:?}: kapsel talks to kapseld over unix sockets (unix:///path)")]
    BadHost(String),
    #[error(
        "Cannot connect to kapseld at {host}: {source}. Is kapseld running? \
         Start it with `kapseld -H {host}`, or point -H / KAPSEL_HOST at its socket."
    )]
    Connect { host: String, source: io::Error },
    #[error("Error response from daemon: {message}")]
    Daemon { status: u16, message: String },
    #[error("error during connect: {0}")]
    Http(#[from] hyper::Error),
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("invalid response from daemon: {0}")]
    Protocol(String),
    /// An error reported inside a streamed answer (a JSON message stream), or a check
    /// the client makes itself: shown as is, as docker does.
    #[error("{0}")]
    Message(String),
}

impl ClientError {
    /// The daemon's message when it answered with an error, for callers that match on
    /// it (e.g. `run` pulling a missing image).
    pub fn daemon_status(&self) -> Option<u16> {
        match self {
            ClientError::Daemon { status, .. } => Some(*status),
            _ => None,
        }
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// Query parameters, in the order given; encoded with form-urlencoding.
#[derive(Debug, Default, Clone)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn new() -> Self {
        Query::default()
    }

    pub fn set(mut self, key: &str, value: impl ToString) -> Self {
        self.0.push((key.to_string(), value.to_string()));
        self
    }

    /// Adds `key=1` only when `on`: docker omits false booleans.
    pub fn flag(self, key: &str, on: bool) -> Self {
        if on {
            self.set(key, "1")
        } else {
            self
        }
    }

    pub fn opt(self, key: &str, value: Option<impl ToString>) -> Self {
        match value {
            Some(v) => self.set(key, v),
            None => self,
        }
    }

    /// Adds `key=value` only for a non-empty value.
    pub fn non_empty(self, key: &str, value: &str) -> Self {
        if value.is_empty() {
            self
        } else {
            self.set(key, value)
        }
    }

    fn encode(&self) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.0 {
            s.append_pair(k, v);
        }
        s.finish()
    }
}

/// The daemon's address, resolved from `-H`, `KAPSEL_HOST`, `DOCKER_HOST`, the default.
#[derive(Debug, Clone)]
pub struct Client {
    host: String,
    socket: PathBuf,
}

impl Client {
    /// Resolves the host in docker's order of precedence (flag, then environment).
    pub fn resolve(flag: Option<&str>) -> Result<Client> {
        let env = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        let host = flag
            .map(str::to_string)
            .or_else(|| env("KAPSEL_HOST"))
            .or_else(|| env("DOCKER_HOST"))
            .unwrap_or_else(|| DEFAULT_HOST.to_string());
        Client::new(&host)
    }

    pub fn new(host: &str) -> Result<Client> {
        let path = host
            .strip_prefix("unix://")
            .filter(|p| !p.is_empty())
            .ok_or_else(|| ClientError::BadHost(host.to_string()))?;
        Ok(Client {
            host: host.to_string(),
            socket: PathBuf::from(path),
        })
    }

    /// A new connection, its HTTP/1 driver running in the background (upgrades allowed,
    /// for [`Client::hijack`]).
    async fn connect(&self) -> Result<http1::SendRequest<Body>> {
        let socket =
            UnixStream::connect(&self.socket)
                .await
                .map_err(|source| ClientError::Connect {
                    host: self.host.clone(),
                    source,
                })?;
        let (sender, conn) = http1::handshake(TokioIo::new(socket)).await?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Ok(sender)
    }

    /// Sends one request on a new connection (asking for an upgrade to a raw stream with
    /// `upgrade`); a status of 400 or more becomes [`ClientError::Daemon`] with the
    /// daemon's message.
    async fn request(
        &self,
        method: Method,
        path: &str,
        query: &Query,
        body: Body,
        content_type: Option<&str>,
        upgrade: bool,
    ) -> Result<Response<Incoming>> {
        let mut uri = format!("/v{API_VERSION}{path}");
        if !query.0.is_empty() {
            uri.push('?');
            uri.push_str(&query.encode());
        }
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("Host", "kapseld")
            .header(
                "User-Agent",
                concat!("kapsel-cli/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        if upgrade {
            req = req.header("Connection", "Upgrade").header("Upgrade", "tcp");
        }
        let req = req
            .body(body)
            .map_err(|e| ClientError::Protocol(format!("building request for {path}: {e}")))?;
        let response = self.connect().await?.send_request(req).await?;
        check(response).await
    }

    /// Sends one request (see [`Client::request`]).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        query: &Query,
        body: Body,
        content_type: Option<&str>,
    ) -> Result<Response<Incoming>> {
        self.request(method, path, query, body, content_type, false)
            .await
    }

    /// Sends a request that takes over the connection (attach, exec start): asks for an
    /// upgrade to a raw stream, and returns the socket once the daemon answered 101.
    /// A daemon that answers 200 instead (older dockerd did) still streams on the same
    /// connection, so that answer is accepted too.
    pub async fn hijack(
        &self,
        method: Method,
        path: &str,
        query: &Query,
        body: Option<&Value>,
    ) -> Result<crate::stream::Hijacked> {
        let (body, ct) = optional_json_body(body);
        let response = self.request(method, path, query, body, ct, true).await?;
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Ok(crate::stream::Hijacked::from_body(response.into_body()));
        }
        let upgraded = hyper::upgrade::on(response).await?;
        crate::stream::Hijacked::from_upgraded(upgraded)
    }

    pub async fn get(&self, path: &str, query: &Query) -> Result<Response<Incoming>> {
        self.send(Method::GET, path, query, empty(), None).await
    }

    pub async fn get_json<T: DeserializeOwned>(&self, path: &str, query: &Query) -> Result<T> {
        let response = self.get(path, query).await?;
        parse_json(&read_body(response).await?)
    }

    /// POST with an optional JSON body; returns the JSON answer, or `Null` when the answer
    /// has no body (204, or 201 for tag).
    pub async fn post(&self, path: &str, query: &Query, body: Option<&Value>) -> Result<Value> {
        let (body, ct) = optional_json_body(body);
        json_or_null(self.send(Method::POST, path, query, body, ct).await?).await
    }

    /// DELETE; the JSON answer, or `Null` when the answer has no body.
    pub async fn delete(&self, path: &str, query: &Query) -> Result<Value> {
        json_or_null(
            self.send(Method::DELETE, path, query, empty(), None)
                .await?,
        )
        .await
    }
}

/// The JSON of an answer, or `Null` for an empty one (204, or 201 for tag).
async fn json_or_null(response: Response<Incoming>) -> Result<Value> {
    let bytes = read_body(response).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    parse_json(&bytes)
}

fn optional_json_body(body: Option<&Value>) -> (Body, Option<&'static str>) {
    match body {
        Some(v) => (json_body(v), Some("application/json")),
        None => (empty(), None),
    }
}

/// Turns an error status into [`ClientError::Daemon`]: the message from the JSON body, or
/// the body as text, or the status' reason.
async fn check(response: Response<Incoming>) -> Result<Response<Incoming>> {
    let status = response.status();
    if status.as_u16() < 400 {
        return Ok(response);
    }
    let body = read_body(response).await.unwrap_or_default();
    Err(ClientError::Daemon {
        status: status.as_u16(),
        message: error_message(status, &body),
    })
}

/// The text docker shows for an error answer.
pub fn error_message(status: StatusCode, body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Message {
        message: String,
    }
    if let Ok(m) = serde_json::from_slice::<Message>(body) {
        return m.message;
    }
    let text = String::from_utf8_lossy(body).trim().to_string();
    if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("unknown error")
            .to_string()
    } else {
        text
    }
}

pub async fn read_body(response: Response<Incoming>) -> Result<Bytes> {
    Ok(response.into_body().collect().await?.to_bytes())
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| ClientError::Protocol(e.to_string()))
}

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

pub fn json_body(value: &Value) -> Body {
    bytes_body(value.to_string())
}

pub fn bytes_body(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A request body streamed from a reader (a tar file, stdin), calling `progress` with the
/// number of bytes sent so far.
pub fn reader_body<R>(reader: R, mut progress: impl FnMut(u64) + Send + Sync + 'static) -> Body
where
    R: AsyncRead + Send + Sync + 'static,
{
    let mut sent = 0;
    let frames = ReaderStream::with_capacity(reader, 64 << 10).map_ok(move |chunk| {
        sent += chunk.len() as u64;
        progress(sent);
        Frame::data(chunk)
    });
    StreamBody::new(frames).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_must_be_unix_sockets() {
        let c = Client::new("unix:///tmp/x.sock").unwrap();
        assert_eq!(c.socket, PathBuf::from("/tmp/x.sock"));
        assert!(matches!(
            Client::new("tcp://1.2.3.4:2375"),
            Err(ClientError::BadHost(_))
        ));
        assert!(Client::new("unix://").is_err());
    }

    #[test]
    fn queries_are_form_encoded_in_order() {
        let q = Query::new()
            .set("filters", r#"{"dangling":{"true":true}}"#)
            .flag("all", true)
            .flag("size", false)
            .opt("limit", Some(3))
            .non_empty("name", "");
        assert_eq!(
            q.encode(),
            "filters=%7B%22dangling%22%3A%7B%22true%22%3Atrue%7D%7D&all=1&limit=3"
        );
    }

    #[test]
    fn error_messages_come_from_json_or_text() {
        assert_eq!(
            error_message(StatusCode::NOT_FOUND, br#"{"message":"No such image: x"}"#),
            "No such image: x"
        );
        assert_eq!(
            error_message(StatusCode::BAD_REQUEST, b"plain words\n"),
            "plain words"
        );
        assert_eq!(
            error_message(StatusCode::INTERNAL_SERVER_ERROR, b""),
            "Internal Server Error"
        );
    }
}
