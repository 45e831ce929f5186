//! `GET /containers/{id}/stats`: a container's resource usage, sampled once a second
//! ([`crate::containers::stats`]), as dockerd serves it:
//!
//! - `stream=true` (the default): one JSON object per line each second, until the client
//!   goes or the container stops (a last zero-valued object, then the end). The first
//!   object's `precpu_stats` are zeros, as in dockerd.
//! - `stream=false`: one object whose `precpu_stats` come from a first sample taken one
//!   interval earlier (dockerd primes the CPU figures the same way), so that clients
//!   computing CPU % from a single object get a real figure.
//! - `one-shot=true`: one object straight away, without `precpu_stats`.
//!
//! A container that does not run answers one zero-valued object with its name and ID.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::Response;
use tokio::sync::mpsc;

use super::body;
use super::{param, ApiError, AppState};
use crate::containers::stats::{self, Series, StatsResponse};
use crate::containers::{Container, Engine};

/// dockerd's collection interval.
const INTERVAL: Duration = Duration::from_secs(1);

pub async fn stats(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let container = state.engine.get(&id)?;
    let engine = state.engine.clone();
    let stream = bool_value(&params, "stream", true);
    let one_shot = bool_value(&params, "one-shot", false);

    if one_shot {
        let (frame, _) = take(&engine, &container).await;
        return Ok(json_response(Body::from(line(&frame))));
    }
    if !stream {
        let mut series = Series::default();
        let (first, live) = take(&engine, &container).await;
        let first = series.next(first);
        if !live {
            return Ok(json_response(Body::from(line(&first))));
        }
        tokio::time::sleep(INTERVAL).await;
        let (frame, _) = take(&engine, &container).await;
        return Ok(json_response(Body::from(line(&series.next(frame)))));
    }

    let (tx, rx) = mpsc::channel::<body::Chunk>(1);
    tokio::spawn(async move {
        let mut series = Series::default();
        let mut ticks = tokio::time::interval(INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let (frame, live) = take(&engine, &container).await;
            let frame = series.next(frame);
            // A failed send: the client went away.
            if tx.send(Ok(Bytes::from(line(&frame)))).await.is_err() || !live {
                break;
            }
        }
    });
    Ok(json_response(body::from_channel(rx)))
}

/// A sample, or the zero-valued object when the container does not run (then `false`).
async fn take(engine: &Arc<Engine>, container: &Arc<Container>) -> (StatsResponse, bool) {
    let (engine, c) = (engine.clone(), container.clone());
    let sample = tokio::task::spawn_blocking(move || stats::sample(&engine.config, &c))
        .await
        .ok()
        .flatten();
    match sample {
        Some(s) => (s, true),
        None => (StatsResponse::zero(&container.snapshot()), false),
    }
}

/// One object and a newline, as Go's json.Encoder writes it.
fn line(frame: &StatsResponse) -> Vec<u8> {
    let mut out = serde_json::to_vec(frame).unwrap_or_default();
    out.push(b'\n');
    out
}

fn json_response(body: Body) -> Response {
    Response::builder()
        .header(CONTENT_TYPE, "application/json")
        .body(body)
        .expect("valid response")
}

/// dockerd's BoolValueOrDefault: absent or empty → `default`; "0", "no", "false", "none"
/// (any case) → false; anything else → true.
fn bool_value(params: &[(String, String)], name: &str, default: bool) -> bool {
    match param(params, name).map(|v| v.trim().to_ascii_lowercase()) {
        None => default,
        Some(v) if v.is_empty() => default,
        Some(v) => !matches!(v.as_str(), "0" | "no" | "false" | "none"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_as_dockerd_reads_them() {
        let p = |v: &str| vec![("stream".to_string(), v.to_string())];
        assert!(bool_value(&[], "stream", true));
        assert!(!bool_value(&[], "one-shot", false));
        assert!(bool_value(&p(""), "stream", true));
        for f in ["0", "false", "False", "no", "none"] {
            assert!(!bool_value(&p(f), "stream", true), "{f}");
        }
        for t in ["1", "true", "True", "yes"] {
            assert!(bool_value(&p(t), "stream", false), "{t}");
        }
    }
}
