//! `POST /containers/{id}/update` and `POST /containers/prune`, over
//! [`crate::containers::update`].

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde_json::{json, Value};

use super::{param, ApiError, AppState};
use crate::containers::update::{PruneFilters, UpdateRequest};

type Params = Query<Vec<(String, String)>>;

pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: UpdateRequest = if body.is_empty() {
        UpdateRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!("invalid JSON in the update request: {e}"))
        })?
    };
    let warnings = state.engine.update(&id, request).await?;
    Ok(Json(json!({ "Warnings": warnings })))
}

pub async fn prune(
    State(state): State<AppState>,
    Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    let filters = prune_filters(param(&params, "filters"), now())?;
    let (deleted, reclaimed) = state.engine.prune(&filters).await?;
    Ok(Json(json!({
        "ContainersDeleted": deleted,
        "SpaceReclaimed": reclaimed,
    })))
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `{"until":["24h"],"label":["a=b"],"label!":["c"]}` (or the older `{"k":{"v":true}}`).
fn prune_filters(text: Option<&str>, now: f64) -> Result<PruneFilters, ApiError> {
    let mut filters = PruneFilters::default();
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return Ok(filters);
    };
    let value: HashMap<String, Value> = serde_json::from_str(text)
        .map_err(|e| ApiError::bad_request(format!("invalid filters {text:?}: {e}")))?;
    for (key, values) in value {
        let values: Vec<String> = match values {
            Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            Value::Object(o) => o.keys().cloned().collect(),
            _ => Vec::new(),
        };
        match key.as_str() {
            "label" => filters.labels.extend(values),
            "label!" => filters.not_labels.extend(values),
            "until" => {
                if values.len() > 1 {
                    return Err(ApiError::bad_request(
                        "more than one until filter specified",
                    ));
                }
                if let Some(v) = values.first() {
                    filters.until = Some(timestamp(v, now)?);
                }
            }
            other => return Err(ApiError::bad_request(format!("invalid filter '{other}'"))),
        }
    }
    Ok(filters)
}

/// A filter's time as dockerd reads it: a Go duration before `now` (`10m`, `1h30m`),
/// seconds since the epoch (`1700000000.5`), or an RFC 3339 date or time (UTC).
fn timestamp(value: &str, now: f64) -> Result<f64, ApiError> {
    if let Some(d) = go_duration(value) {
        return Ok(now - d);
    }
    if let Ok(seconds) = value.parse::<f64>() {
        return Ok(seconds);
    }
    let text = if value.len() == 10 {
        format!("{value}T00:00:00")
    } else {
        value.to_string()
    };
    humantime::parse_rfc3339_weak(text.trim_end_matches('Z'))
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "failed to parse value as time or duration: {value:?}"
            ))
        })
}

/// Go's time.ParseDuration, for positive durations: `300ms`, `1.5h`, `2h45m`.
fn go_duration(text: &str) -> Option<f64> {
    let mut rest = text;
    let mut total = 0.0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * scale;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_reads_durations_timestamps_and_dates() {
        let now = 1_700_000_000.0;
        assert_eq!(timestamp("10m", now).unwrap(), now - 600.0);
        assert_eq!(timestamp("1h30m", now).unwrap(), now - 5400.0);
        assert_eq!(timestamp("1.5h", now).unwrap(), now - 5400.0);
        assert_eq!(timestamp("1600000000", now).unwrap(), 1_600_000_000.0);
        assert_eq!(timestamp("2024-01-01", now).unwrap(), 1_704_067_200.0);
        assert_eq!(
            timestamp("2024-01-01T00:00:10Z", now).unwrap(),
            1_704_067_210.0
        );
        assert!(timestamp("yesterday", now).is_err());
    }

    #[test]
    fn prune_filters_parse_both_forms_and_refuse_unknown_keys() {
        let f = prune_filters(Some(r#"{"label":["a=b"],"label!":{"c":true}}"#), 0.0).unwrap();
        assert_eq!(f.labels, vec!["a=b"]);
        assert_eq!(f.not_labels, vec!["c"]);
        assert!(prune_filters(Some(r#"{"status":["exited"]}"#), 0.0).is_err());
        assert!(prune_filters(None, 0.0).unwrap().until.is_none());
    }
}
