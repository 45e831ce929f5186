//! `POST /containers/{id}/update` and `POST /containers/prune`, over
//! [`crate::containers::update`].

use axum::extract::{Path, Query, State};
use axum::Json;
use serde_json::{json, Value};

use super::body::JsonBody;
use super::filters::Filters;
use super::{param, ApiError, AppState};
use crate::containers::inspect;
use crate::containers::record::Record;
use crate::containers::update::UpdateRequest;

type Params = Query<Vec<(String, String)>>;

pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
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
    let filters = Filters::parse(param(&params, "filters"), &["until", "label", "label!"])?;
    let (deleted, reclaimed) = state.engine.prune(prune_selector(filters)?).await?;
    Ok(Json(json!({
        "ContainersDeleted": deleted,
        "SpaceReclaimed": reclaimed,
    })))
}

/// Which stopped containers `docker container prune` removes: created at or before
/// `until`, with every `label` and none of the `label!` labels.
fn prune_selector(filters: Filters) -> Result<impl Fn(&Record) -> bool, ApiError> {
    let until = filters.time("until")?;
    Ok(move |r: &Record| {
        until.is_none_or(|u| inspect::unix_seconds(&r.created) as f64 <= u)
            && filters.labels_match(|k| r.config.labels.as_ref()?.get(k).map(String::as_str))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_filters_select_by_labels_and_age() {
        let mut r: Record = serde_json::from_value(json!({
            "id": "a".repeat(64), "name": "n", "created": "2024-01-01T00:00:00Z", "image": "i",
            "image_id": "sha256:x", "path": "sh", "args": [], "config": {"Labels": {"keep": "1", "team": "a"}},
            "host_config": {}, "state": {"status": "exited", "pid": 0, "exit_code": 0, "error": "",
            "oom_killed": false, "started_at": "", "finished_at": "", "shim_pid": 0,
            "shim_start_time": 0, "stopped_by_user": false},
            "restart_count": 0, "log_path": ""
        }))
        .unwrap();
        let f = |labels: &[&str], not: &[&str], until: Option<&str>| {
            let mut filters = json!({"label": labels, "label!": not});
            if let Some(u) = until {
                filters["until"] = json!([u]);
            }
            prune_selector(
                Filters::parse(Some(&filters.to_string()), &["until", "label", "label!"]).unwrap(),
            )
            .unwrap()
        };
        assert!(f(&[], &[], None)(&r));
        assert!(f(&["keep", "team=a"], &[], None)(&r));
        assert!(!f(&["team=b"], &[], None)(&r));
        assert!(!f(&[], &["keep=1"], None)(&r));
        assert!(f(&[], &[], Some("1704067200"))(&r));
        assert!(!f(&[], &[], Some("1704067199"))(&r));
        r.config.labels = None;
        assert!(f(&[], &["keep"], None)(&r));
    }
}
