//! `GET /events`: past events from `since`, then live ones until `until` (or for ever),
//! one JSON object per line, filtered as the client asks.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use tokio::sync::{broadcast, mpsc};

use super::body;
use super::filters::{self, label_matches, Filters};
use super::{param, ApiError, AppState};
use crate::events::Event;

pub async fn events(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let since = filters::time_param(&params, "since")?;
    let until = filters::time_param(&params, "until")?;
    let filter = Filters::parse(param(&params, "filters"), KNOWN_FILTERS)?;
    let (past, mut live) = state
        .engine
        .events
        .subscribe(since.unwrap_or(f64::INFINITY));
    let (tx, rx) = mpsc::channel::<body::Chunk>(64);
    tokio::spawn(async move {
        let in_range = |e: &Event| until.is_none_or(|u| e.seconds() <= u) && matches(&filter, e);
        for e in past.iter().filter(|e| in_range(e)) {
            if tx.send(Ok(line(e))).await.is_err() {
                return;
            }
        }
        let deadline = until.map(|u| {
            tokio::time::Instant::now() + Duration::from_secs_f64((u - filters::now()).max(0.0))
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
        body::from_channel(rx),
    )
        .into_response())
}

fn line(e: &Event) -> Bytes {
    Bytes::from(e.to_json().to_string() + "\n")
}

/// The filter keys of `GET /events` (those for swarm objects never match here).
const KNOWN_FILTERS: &[&str] = &[
    "config",
    "container",
    "daemon",
    "event",
    "image",
    "label",
    "network",
    "node",
    "plugin",
    "scope",
    "secret",
    "service",
    "type",
    "volume",
];

/// Every given filter holds (within one key, any value may match).
fn matches(filters: &Filters, e: &Event) -> bool {
    filters.iter().all(|(key, values)| {
        values.iter().any(|v| match key.as_str() {
            "type" => e.kind == v,
            // "health_status: healthy" matches a filter of "health_status" too.
            "event" => e.action == *v || e.action.split(':').next() == Some(v.as_str()),
            "container" => {
                e.kind == "container"
                    && (e.id.starts_with(v.as_str())
                        || e.attributes.get("name").is_some_and(|n| n == v))
            }
            "image" => {
                e.attributes.get("image").is_some_and(|i| i == v)
                    || (e.kind == "image" && (e.id == *v || e.id.contains(v.as_str())))
            }
            "volume" => e.kind == "volume" && e.id == *v,
            "network" => {
                e.kind == "network"
                    && (e.id.starts_with(v.as_str())
                        || e.attributes.get("name").is_some_and(|n| n == v))
            }
            "label" => label_matches(v, |k| e.attributes.get(k).map(String::as_str)),
            "scope" => v == "local",
            _ => false,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Events;

    #[test]
    fn filters_select_events() {
        let events = Events::default();
        events.publish("container", "start", "abc", [("name".into(), "web".into())]);
        events.publish("image", "tag", "sha256:1", []);
        let (past, _rx) = events.subscribe(0.0);
        let only_containers =
            Filters::parse(Some(r#"{"type":["container"]}"#), KNOWN_FILTERS).unwrap();
        assert!(matches(&only_containers, &past[0]));
        assert!(!matches(&only_containers, &past[1]));
        let by_name = Filters::parse(Some(r#"{"container":["web"]}"#), KNOWN_FILTERS).unwrap();
        assert!(matches(&by_name, &past[0]));
    }
}
