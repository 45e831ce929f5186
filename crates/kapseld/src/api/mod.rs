//! The Engine API: routing, API version negotiation, and Docker-shaped errors.

mod archive;
mod body;
mod containers;
mod events;
mod filters;
mod images;
mod networks;
mod stats;
mod stream;
mod system;
mod update;
mod volumes;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post, put};
use axum::Router;

use kapsel_image::store::ImageStore;
use kapsel_image::ImageError;

use crate::daemon::DaemonConfig;

/// The API version kapseld speaks, and the oldest one it accepts (as dockerd 27).
pub const API_VERSION: &str = "1.47";
pub const MIN_API_VERSION: &str = "1.24";

/// Shared by all handlers.
#[derive(Clone)]
pub struct AppState {
    pub config: std::sync::Arc<DaemonConfig>,
    pub images: std::sync::Arc<ImageStore>,
    pub engine: std::sync::Arc<crate::containers::Engine>,
}

/// The whole API as one service: the version gate runs before routing, because it strips
/// the `/v1.NN` prefix that the routes do not carry.
pub fn service(state: AppState) -> Router {
    let routes = Router::new()
        .route("/_ping", get(system::ping).head(system::ping))
        .route("/version", get(system::version))
        .route("/info", get(system::info))
        .route("/images/json", get(images::list))
        .route("/images/load", post(images::load))
        .route("/images/get", get(images::save_named))
        .route("/images/create", post(images::create))
        .route("/images/prune", post(images::prune))
        .route("/commit", post(images::commit))
        .route("/system/df", get(images::system_df))
        .route("/images/{*rest}", any(images::by_name))
        .route("/events", get(events::events))
        .route("/containers/json", get(containers::list))
        .route("/containers/create", post(containers::create))
        .route("/containers/{id}/json", get(containers::inspect_one))
        .route("/containers/{id}/start", post(containers::start))
        .route("/containers/{id}/stop", post(containers::stop))
        .route("/containers/{id}/restart", post(containers::restart))
        .route("/containers/{id}/kill", post(containers::kill))
        .route("/containers/{id}/pause", post(containers::pause))
        .route("/containers/{id}/unpause", post(containers::unpause))
        .route("/containers/{id}/rename", post(containers::rename))
        .route("/containers/{id}/wait", post(containers::wait))
        .route("/containers/{id}/logs", get(containers::logs))
        .route("/containers/{id}/top", get(containers::top))
        .route("/containers/{id}/changes", get(images::changes))
        .route("/containers/{id}/stats", get(stats::stats))
        .route("/containers/{id}/attach", post(containers::attach))
        .route("/containers/{id}/resize", post(containers::resize))
        .route("/containers/{id}/exec", post(containers::exec_create))
        .route(
            "/containers/{id}/archive",
            get(archive::get).head(archive::head).put(archive::put),
        )
        .route("/containers/{id}/export", get(archive::export))
        .route("/containers/{id}/update", post(update::update))
        .route("/containers/prune", post(update::prune))
        .route("/containers/{id}", delete(containers::remove))
        .route("/networks", get(networks::list))
        .route("/networks/create", post(networks::create))
        .route("/networks/prune", post(networks::prune))
        .route(
            "/networks/{id}",
            get(networks::inspect).delete(networks::remove),
        )
        .route("/networks/{id}/connect", post(networks::connect))
        .route("/networks/{id}/connections", get(networks::connections))
        .route("/networks/{id}/disconnect", post(networks::disconnect))
        .route("/volumes", get(volumes::list))
        .route("/volumes/create", post(volumes::create))
        .route("/volumes/prune", post(volumes::prune))
        .route(
            "/volumes/{name}",
            get(volumes::inspect).delete(volumes::remove),
        )
        .route("/volumes/{name}/export", get(volumes::export))
        .route("/volumes/{name}/import", put(volumes::import))
        .route("/exec/{id}/start", post(containers::exec_start))
        .route("/exec/{id}/resize", post(containers::exec_resize))
        .route("/exec/{id}/json", get(containers::exec_inspect))
        .fallback(not_found)
        .with_state(state);
    // Wrapping the router (rather than Router::layer, which runs after routing) lets the
    // gate rewrite the path the router then matches.
    Router::new().fallback_service(tower::Layer::layer(
        &axum::middleware::from_fn(version_gate),
        routes,
    ))
}

/// Strips and checks the `/v1.NN` prefix; answers every response with the headers the
/// docker CLI reads.
async fn version_gate(mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if let Some((version, rest)) = split_version(&path) {
        if let Err(message) = check_version(version) {
            return with_headers(ApiError::bad_request(message).into_response());
        }
        let query = req
            .uri()
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        if let Ok(uri) = format!("{rest}{query}").parse() {
            *req.uri_mut() = uri;
        }
    }
    with_headers(next.run(req).await)
}

/// `/v1.47/info` → ("1.47", "/info").
fn split_version(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/v")?;
    let slash = rest.find('/')?;
    let (version, tail) = rest.split_at(slash);
    version
        .split_once('.')
        .filter(|(a, b)| a.parse::<u32>().is_ok() && b.parse::<u32>().is_ok())
        .map(|_| (version, tail))
}

fn check_version(version: &str) -> Result<(), String> {
    let parse = |v: &str| -> (u32, u32) {
        let (a, b) = v.split_once('.').unwrap_or((v, "0"));
        (a.parse().unwrap_or(0), b.parse().unwrap_or(0))
    };
    if parse(version) > parse(API_VERSION) {
        return Err(format!(
            "client version {version} is too new. Maximum supported API version is {API_VERSION}"
        ));
    }
    if parse(version) < parse(MIN_API_VERSION) {
        return Err(format!(
            "client version {version} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
        ));
    }
    Ok(())
}

fn with_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(API_VERSION));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert(
        "Server",
        HeaderValue::from_static(concat!("kapsel/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    response
}

/// Runs blocking work (the image store, volumes, netlink and nft) off the async thread;
/// a task that panicked is a 500.
async fn blocking<T: Send + 'static, E: Into<ApiError> + Send + 'static>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(Into::into)
}

/// An error as the Engine API reports it: a status and `{"message": ...}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

/// Image errors with the status and, where the docker CLI matches on it, the wording
/// dockerd uses.
impl From<ImageError> for ApiError {
    fn from(err: ImageError) -> Self {
        use ImageError::*;
        match err {
            ImageNotFound { name } => {
                Self::new(StatusCode::NOT_FOUND, format!("No such image: {name}"))
            }
            ContainerFileChanged { .. } => Self::new(StatusCode::CONFLICT, err.to_string()),
            ImageTagged { id, .. } => Self::new(
                StatusCode::CONFLICT,
                format!(
                    "conflict: unable to delete {} (must be forced) - image is referenced in \
                     multiple repositories",
                    &id.hex()[..12]
                ),
            ),
            InvalidReference { .. }
            | InvalidDigest { .. }
            | AmbiguousImageId { .. }
            | InvalidArchive { .. }
            | ArchiveMemberRefused { .. }
            | ArchiveMemberMissing { .. }
            | ArchiveIo { .. }
            | InvalidJson { .. }
            | JsonTooLarge { .. }
            | DiffIdMismatch { .. }
            | DigestMismatch { .. }
            | EntryRefused { .. }
            | UnsupportedCompression { .. }
            | InvalidChange { .. }
            | LayerRead { .. }
            | InvalidImageConfig { .. } => Self::bad_request(err.to_string()),
            _ => Self::internal(err.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "message": self.message }).to_string();
        Response::builder()
            .status(self.status)
            .header("Content-Type", "application/json")
            .body(Body::from(body))
            .expect("valid response")
    }
}

async fn not_found(req: Request) -> ApiError {
    page_not_found(req.method(), req.uri().path())
}

fn page_not_found(method: &axum::http::Method, path: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("page not found: {method} {path}"),
    )
}

/// A query parameter (the first, when given several times).
pub(crate) fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Docker's boolean query values: `1`, `true`, `True`.
pub(crate) fn flag(params: &[(String, String)], name: &str) -> bool {
    param(params, name).is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}
