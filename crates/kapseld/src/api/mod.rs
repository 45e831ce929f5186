//! The Engine API: routing, API version negotiation, and Docker-shaped errors.

mod system;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::daemon::DaemonConfig;

/// The API version kapseld speaks, and the oldest one it accepts (as dockerd 27).
pub const API_VERSION: &str = "1.47";
pub const MIN_API_VERSION: &str = "1.24";

/// Shared by all handlers.
#[derive(Clone)]
pub struct AppState {
    pub config: std::sync::Arc<DaemonConfig>,
}

/// The whole API as one service: the version gate runs before routing, because it strips
/// the `/v1.NN` prefix that the routes do not carry.
pub fn service(state: AppState) -> Router {
    let routes = Router::new()
        .route("/_ping", get(system::ping).head(system::ping))
        .route("/version", get(system::version))
        .route("/info", get(system::info))
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

/// An error as the Engine API reports it: a status and `{"message": ...}`.
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
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
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: format!("page not found: {} {}", req.method(), req.uri().path()),
    }
}
