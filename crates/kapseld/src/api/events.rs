//! `GET /events`: past events from `since`, then live ones until `until` (or for ever),
//! one JSON object per line, filtered as the client asks.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};

use super::stream::receiver_stream;
use super::{param, ApiError, AppState};
use crate::events::{Event, EventFilter};

pub async fn events(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let since = time_param(param(&params, "since"))?;
    let until = time_param(param(&params, "until"))?;
    let filter = EventFilter::new(parse_filters(param(&params, "filters"))?);
    let (past, mut live) = state
        .engine
        .events
        .subscribe(since.unwrap_or(f64::INFINITY));
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    tokio::spawn(async move {
        let in_range = |e: &Event| until.is_none_or(|u| e.seconds() <= u) && filter.matches(e);
        for e in past.iter().filter(|e| in_range(e)) {
            if tx.send(Ok(line(e))).await.is_err() {
                return;
            }
        }
        let deadline = until.map(|u| {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            tokio::time::Instant::now() + Duration::from_secs_f64((u - now).max(0.0))
        });
        loop {
            let next = async {
                match deadline {
                    Some(d) => tokio::time::timeout_at(d, live.recv()).await.ok(),
                    None => Some(live.recv().await),
                }
            };
            match next.await {
                None | Some(Err(broadcast::error::RecvError::Closed)) => return,
                // A client too slow to keep up misses events rather than stalling others.
                Some(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                Some(Ok(e)) if in_range(&e) => {
                    if tx.send(Ok(line(&e))).await.is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
            }
        }
    });
    Ok((
        [("Content-Type", "application/json")],
        Body::from_stream(receiver_stream(rx)),
    )
        .into_response())
}

fn line(e: &Event) -> Bytes {
    Bytes::from(e.to_json().to_string() + "\n")
}

/// Seconds since the epoch (`1700000000`, `1700000000.5`) or RFC 3339.
fn time_param(value: Option<&str>) -> Result<Option<f64>, ApiError> {
    let Some(v) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if let Ok(seconds) = v.parse::<f64>() {
        return Ok(Some(seconds));
    }
    humantime::parse_rfc3339_weak(v)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| Some(d.as_secs_f64()))
        .ok_or_else(|| {
            ApiError::bad_request(format!("invalid time {v:?}: use seconds since the epoch"))
        })
}

/// `{"type":["container"]}` or the older `{"type":{"container":true}}`.
fn parse_filters(text: Option<&str>) -> Result<BTreeMap<String, Vec<String>>, ApiError> {
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok(BTreeMap::new());
    };
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ApiError::bad_request(format!("invalid filters {text:?}: {e}")))?;
    Ok(value
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let values = match v {
                Value::Array(a) => a
                    .iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect(),
                Value::Object(o) => o.keys().cloned().collect(),
                _ => Vec::new(),
            };
            (k.clone(), values)
        })
        .collect())
}
