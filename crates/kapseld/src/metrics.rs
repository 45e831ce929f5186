//! `--metrics-addr`: the engine's metrics at `/metrics` in Prometheus' text format
//! (version 0.0.4), computed at each scrape from the container records and the
//! containers' cgroups: containers by state, images, uptime, and per container CPU
//! seconds, memory usage and restarts (labels `id` and `name`).
//!
//! Written by hand rather than with a metrics crate: every value is read fresh at the
//! scrape (there is nothing to keep in a registry between scrapes), and the text format
//! is a few lines of `# HELP`/`# TYPE` and `name{labels} value`.

use std::fmt::Write;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::containers::record::{Record, Status};
use crate::containers::{stats, Engine};

/// What the metrics endpoint reads.
#[derive(Clone)]
pub struct MetricsState {
    pub engine: Arc<Engine>,
    pub started: Instant,
}

/// The router for the metrics listener: `/metrics` only.
pub fn service(state: MetricsState) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(state)
}

async fn scrape(State(state): State<MetricsState>) -> impl IntoResponse {
    let text = tokio::task::spawn_blocking(move || render(&state))
        .await
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

/// The states dockerd's `engine_daemon_container_states_containers` counts.
const STATES: [Status; 7] = [
    Status::Created,
    Status::Running,
    Status::Paused,
    Status::Restarting,
    Status::Removing,
    Status::Exited,
    Status::Dead,
];

fn render(state: &MetricsState) -> String {
    let engine = &state.engine;
    let records: Vec<Record> = engine.all().iter().map(|c| c.snapshot()).collect();
    let mut out = Text::default();
    out.family("kapsel_containers", "gauge", "Containers by state.");
    for status in STATES {
        let count = records.iter().filter(|r| r.state.status == status).count();
        out.sample(
            "kapsel_containers",
            &[("state", status.as_str())],
            count as f64,
        );
    }
    out.family("kapsel_images", "gauge", "Images in the image store.");
    match engine.images.list() {
        Ok(images) => out.sample("kapsel_images", &[], images.len() as f64),
        Err(e) => tracing::warn!("counting images for the metrics: {e}"),
    }
    out.family(
        "kapsel_uptime_seconds",
        "gauge",
        "Seconds since kapseld started.",
    );
    out.sample(
        "kapsel_uptime_seconds",
        &[],
        state.started.elapsed().as_secs_f64(),
    );

    out.family(
        "kapsel_container_restarts_total",
        "counter",
        "Restarts of the container by its restart policy.",
    );
    for r in &records {
        out.sample(
            "kapsel_container_restarts_total",
            &labels(r),
            r.restart_count as f64,
        );
    }
    let usage: Vec<(&Record, kapsel_cgroups::Stats)> = records
        .iter()
        .filter(|r| r.state.status.is_live())
        .filter_map(|r| {
            let cgroup = stats::container_cgroup(&engine.config, &r.id).ok()?;
            Some((r, cgroup.stats().ok()?))
        })
        .collect();
    out.family(
        "kapsel_container_cpu_seconds_total",
        "counter",
        "CPU time the running container's processes used (user and system).",
    );
    for (r, s) in &usage {
        out.sample(
            "kapsel_container_cpu_seconds_total",
            &labels(r),
            s.cpu.usage.total as f64 / 1e9,
        );
    }
    out.family(
        "kapsel_container_memory_usage_bytes",
        "gauge",
        "Memory the running container's cgroup uses (memory.usage_in_bytes on v1, memory.current on v2).",
    );
    for (r, s) in &usage {
        out.sample(
            "kapsel_container_memory_usage_bytes",
            &labels(r),
            s.memory.usage.usage as f64,
        );
    }
    out.0
}

fn labels(r: &Record) -> [(&str, &str); 2] {
    [("id", r.id.as_str()), ("name", r.name.as_str())]
}

/// Prometheus text format, line by line.
#[derive(Default)]
struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            let pairs: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            let _ = write!(self.0, "{{{}}}", pairs.join(","));
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// A label value as the format quotes it: backslash, double quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_written_in_the_text_format() {
        let mut t = Text::default();
        t.family("m", "gauge", "Help.");
        t.sample("m", &[("name", "a\"b\\c\nd")], 1.5);
        t.sample("m", &[], 2.0);
        assert_eq!(
            t.0,
            "# HELP m Help.\n# TYPE m gauge\nm{name=\"a\\\"b\\\\c\\nd\"} 1.5\nm 2\n"
        );
    }
}
