//! Engine events as `GET /events` reports them: what happened to which container, image,
//! volume or network, and when. Kept in a bounded in-memory log (for `since`) and
//! broadcast to the clients that follow.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::sync::broadcast;

/// How many past events `since` can reach back over (dockerd keeps 256).
const KEPT: usize = 1024;

#[derive(Debug, Clone)]
pub struct Event {
    /// container, image, volume, network, daemon.
    pub kind: &'static str,
    pub action: String,
    pub id: String,
    pub attributes: BTreeMap<String, String>,
    pub time_nano: i128,
}

impl Event {
    pub fn to_json(&self) -> Value {
        let secs = (self.time_nano / 1_000_000_000) as i64;
        let mut v = json!({
            "Type": self.kind,
            "Action": self.action,
            "Actor": {"ID": self.id, "Attributes": self.attributes},
            "scope": "local",
            "time": secs,
            "timeNano": self.time_nano as i64,
        });
        // The pre-1.22 fields docker-py and old clients still read for containers.
        if self.kind == "container" {
            v["status"] = json!(self.action);
            v["id"] = json!(self.id);
            if let Some(image) = self.attributes.get("image") {
                v["from"] = json!(image);
            }
        }
        v
    }

    pub fn seconds(&self) -> f64 {
        self.time_nano as f64 / 1e9
    }
}

pub struct Events {
    past: Mutex<VecDeque<Event>>,
    live: broadcast::Sender<Event>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            past: Mutex::new(VecDeque::with_capacity(KEPT)),
            live: broadcast::channel(KEPT).0,
        }
    }
}

impl Events {
    pub fn publish(
        &self,
        kind: &'static str,
        action: impl Into<String>,
        id: &str,
        attributes: impl IntoIterator<Item = (String, String)>,
    ) {
        let time_nano = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        let event = Event {
            kind,
            action: action.into(),
            id: id.to_string(),
            attributes: attributes.into_iter().collect(),
            time_nano,
        };
        let mut past = self.past.lock().unwrap_or_else(|p| p.into_inner());
        if past.len() == KEPT {
            past.pop_front();
        }
        past.push_back(event.clone());
        // No receivers is fine: nobody follows right now.
        let _ = self.live.send(event);
    }

    /// The kept events from `since` (seconds) on, and a receiver for the ones after, taken
    /// under one lock so none is missed or seen twice.
    pub fn subscribe(&self, since: f64) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let past = self.past.lock().unwrap_or_else(|p| p.into_inner());
        let replay = past
            .iter()
            .filter(|e| e.seconds() >= since)
            .cloned()
            .collect();
        (replay, self.live.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_and_filters() {
        let events = Events::default();
        events.publish("container", "start", "abc", [("name".into(), "web".into())]);
        events.publish("image", "tag", "sha256:1", []);
        let (past, _rx) = events.subscribe(0.0);
        assert_eq!(past.len(), 2);
        assert_eq!(past[0].to_json()["Actor"]["Attributes"]["name"], "web");
    }
}
