//! Health checks (`HEALTHCHECK`, `--health-*`): a probe run as an exec in the container
//! every interval, and `State.Health` from its results, with dockerd's semantics
//! (moby's daemon/health.go): `starting` until the first success or `Retries` failures
//! in a row after the start period, the last five results with their output cut to
//! 4096 bytes, a probe killed after its timeout, `health_status: …` events on changes.
//!
//! One monitor task per running container; it ends when the container exits (the exit
//! count of its life cycle moves on) and skips probes while the container is paused.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tokio::io::AsyncReadExt;

use super::exec::ExecConfig;
use super::record::{Config, Health, HealthConfig, HealthResult, Record, Status};
use super::{inspect, Container, ContainerError, Engine};

/// dockerd's defaults for a zero setting.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_RETRIES: u32 = 3;
/// Results kept in `State.Health.Log`, and the output kept of each.
const KEPT_RESULTS: usize = 5;
const MAX_OUTPUT: usize = 4096;
/// The shortest duration a setting may have (dockerd's `MinimumDuration`).
const MINIMUM_NANOS: i64 = 1_000_000;

pub const STARTING: &str = "starting";
pub const HEALTHY: &str = "healthy";
pub const UNHEALTHY: &str = "unhealthy";
/// The `health` filter's word for containers without a check.
pub const NONE: &str = "none";

/// The probe's command line, if the container has one to run: `CMD` runs its arguments,
/// `CMD-SHELL` its script under `/bin/sh -c`; `NONE` or nothing runs nothing.
pub fn probe_command(config: &Config) -> Option<Vec<String>> {
    let test = &config.healthcheck.as_ref()?.test;
    match test.first()?.as_str() {
        "CMD" if test.len() > 1 => Some(test[1..].to_vec()),
        "CMD-SHELL" if test.len() > 1 => {
            let mut command = vec!["/bin/sh".to_string(), "-c".to_string()];
            command.extend(test[1..].iter().cloned());
            Some(command)
        }
        _ => None,
    }
}

/// dockerd's checks of a create request's health check.
pub fn validate(check: Option<&HealthConfig>) -> Result<(), String> {
    let Some(check) = check else { return Ok(()) };
    for (name, nanos) in [
        ("Interval", check.interval),
        ("Timeout", check.timeout),
        ("StartPeriod", check.start_period),
        ("StartInterval", check.start_interval),
    ] {
        if nanos != 0 && nanos < MINIMUM_NANOS {
            return Err(format!(
                "{name} in Healthcheck cannot be less than {}",
                go_duration(Duration::from_nanos(MINIMUM_NANOS as u64))
            ));
        }
    }
    if check.retries < 0 {
        return Err("Retries in Healthcheck cannot be negative".into());
    }
    Ok(())
}

/// dockerd's merge with the image's `Healthcheck`: the image's check where the request
/// has none, and the image's value for each field the request leaves empty.
pub fn merge_image(config: &mut Config, image: Option<&Value>) {
    let Some(image) = image.and_then(|v| serde_json::from_value::<HealthConfig>(v.clone()).ok())
    else {
        return;
    };
    let Some(own) = config.healthcheck.as_mut() else {
        config.healthcheck = Some(image);
        return;
    };
    if own.test.is_empty() {
        own.test = image.test;
    }
    for (mine, theirs) in [
        (&mut own.interval, image.interval),
        (&mut own.timeout, image.timeout),
        (&mut own.start_period, image.start_period),
        (&mut own.start_interval, image.start_interval),
        (&mut own.retries, image.retries),
    ] {
        if *mine == 0 {
            *mine = theirs;
        }
    }
}

/// `State.Health` for a container that starts (or is adopted): `starting`, no failures,
/// the earlier results kept. `None` without a probe.
pub fn on_start(config: &Config, previous: Option<Health>) -> Option<Health> {
    probe_command(config)?;
    Some(Health {
        status: STARTING.into(),
        failing_streak: 0,
        log: previous.map(|h| h.log).unwrap_or_default(),
    })
}

/// The `health` word of a container for `ps --filter health=`.
pub fn status_word(record: &Record) -> &str {
    record
        .state
        .health
        .as_ref()
        .map_or(NONE, |h| h.status.as_str())
}

/// The settings with dockerd's defaults filled in.
struct Timing {
    interval: Duration,
    timeout: Duration,
    start_period: Duration,
    start_interval: Duration,
    retries: u32,
}

impl Timing {
    fn of(check: &HealthConfig) -> Timing {
        let nanos = |n: i64, default: Duration| {
            if n > 0 {
                Duration::from_nanos(n as u64)
            } else {
                default
            }
        };
        Timing {
            interval: nanos(check.interval, DEFAULT_INTERVAL),
            timeout: nanos(check.timeout, DEFAULT_TIMEOUT),
            start_period: nanos(check.start_period, Duration::ZERO),
            start_interval: nanos(check.start_interval, DEFAULT_START_INTERVAL),
            retries: if check.retries > 0 {
                check.retries as u32
            } else {
                DEFAULT_RETRIES
            },
        }
    }

    /// The wait before the next probe: the start interval while `starting` in the
    /// start period, never past the period's end; the interval otherwise.
    fn next_wait(&self, since_start: Duration, status: &str) -> Duration {
        let Some(left) = self.start_period.checked_sub(since_start) else {
            return self.interval;
        };
        if left.is_zero() {
            self.interval
        } else if left < self.interval {
            left
        } else if status == STARTING {
            self.start_interval
        } else {
            self.interval
        }
    }
}

/// A probe's output: the first [`MAX_OUTPUT`] bytes, and "..." when there was more.
#[derive(Default)]
struct Output {
    kept: Vec<u8>,
    truncated: bool,
}

impl Output {
    fn push(&mut self, data: &[u8]) {
        let room = MAX_OUTPUT.saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&data[..room.min(data.len())]);
        self.truncated |= data.len() > room;
    }

    fn text(&self) -> String {
        let mut text = String::from_utf8_lossy(&self.kept).into_owned();
        if self.truncated {
            text.push_str("...");
        }
        text
    }
}

impl Engine {
    /// Starts the health monitor of a running container that has a probe.
    pub(super) fn monitor_health(self: &Arc<Self>, container: Arc<Container>) {
        let record = container.snapshot();
        let (Some(command), Some(check)) = (
            probe_command(&record.config),
            record.config.healthcheck.clone(),
        ) else {
            return;
        };
        let timing = Timing::of(&check);
        let started = inspect::parse_time(&record.state.started_at).unwrap_or_else(SystemTime::now);
        let mut lifecycle = container.lifecycle.subscribe();
        let generation = lifecycle.borrow_and_update().exits;
        let engine = self.clone();
        tokio::spawn(async move {
            let ended = |l: &super::Lifecycle| l.exits != generation || l.removed;
            loop {
                let status = match &container.record().state.health {
                    Some(h) => h.status.clone(),
                    None => return,
                };
                let since_start = started.elapsed().unwrap_or_default();
                tokio::select! {
                    _ = tokio::time::sleep(timing.next_wait(since_start, &status)) => {}
                    _ = lifecycle.wait_for(ended) => return,
                }
                match container.record().state.status {
                    Status::Running => {}
                    Status::Paused => continue,
                    _ => return,
                }
                let result = engine.probe(&record.id, &command, timing.timeout).await;
                if ended(&lifecycle.borrow()) {
                    return;
                }
                engine.record_health(&container, &timing, started, result);
            }
        });
    }

    /// Runs the probe once as an exec in the container.
    async fn probe(
        self: &Arc<Self>,
        id: &str,
        command: &[String],
        timeout: Duration,
    ) -> HealthResult {
        let start = kapsel_runtime::state::now_rfc3339();
        let (exit_code, output) = match self.run_probe(id, command, timeout).await {
            Ok(outcome) => outcome,
            Err(e) => (-1, e.to_string()),
        };
        HealthResult {
            start,
            end: kapsel_runtime::state::now_rfc3339(),
            exit_code,
            output,
        }
    }

    async fn run_probe(
        self: &Arc<Self>,
        id: &str,
        command: &[String],
        timeout: Duration,
    ) -> Result<(i64, String), ContainerError> {
        let exec_id = self.exec_create(
            id,
            ExecConfig {
                attach_stdout: true,
                attach_stderr: true,
                cmd: command.to_vec(),
                ..ExecConfig::default()
            },
        )?;
        let outcome = async {
            let (exec, stream) = self.exec_start(&exec_id, true, None).await?;
            let mut output = Output::default();
            let io = |e| ContainerError::io("reading the health probe's output", e);
            let stream = stream.expect("an attached exec has a stream");
            stream.set_nonblocking(true).map_err(io)?;
            let mut stream = tokio::net::UnixStream::from_std(stream).map_err(io)?;
            let in_time = tokio::time::timeout(timeout, read_frames(&mut stream, &mut output))
                .await
                .is_ok();
            if !in_time {
                exec.kill();
                // The shim closes the stream once the process is gone.
                let _ = read_frames(&mut stream, &mut Output::default()).await;
            }
            let exit_code = exec.wait().await;
            if !in_time {
                let mut message =
                    format!("Health check exceeded timeout ({})", go_duration(timeout));
                let text = output.text();
                if !text.is_empty() {
                    message = format!("{message}: {text}");
                }
                return Ok((-1, message));
            }
            let code = exit_code.ok_or_else(|| {
                ContainerError::StartFailed(format!(
                    "healthcheck for container {id} has no exit code"
                ))
            })?;
            Ok((code, output.text()))
        }
        .await;
        self.execs.discard(&exec_id);
        outcome
    }

    /// One probe's result into `State.Health`: success makes the container healthy,
    /// failures after the start period count towards `unhealthy`.
    fn record_health(
        &self,
        container: &Container,
        timing: &Timing,
        started: SystemTime,
        result: HealthResult,
    ) {
        let mut r = container.record();
        if !r.state.status.is_live() {
            return;
        }
        let Some(health) = r.state.health.as_mut() else {
            return;
        };
        let before = health.status.clone();
        let probed_at = inspect::parse_time(&result.start).unwrap_or_else(SystemTime::now);
        let in_start_period = probed_at
            .duration_since(started)
            .is_ok_and(|d| d < timing.start_period);
        if result.exit_code == 0 {
            health.failing_streak = 0;
            health.status = HEALTHY.into();
        } else if !(health.status == STARTING && in_start_period) {
            health.failing_streak += 1;
            if health.failing_streak >= timing.retries {
                health.status = UNHEALTHY.into();
            }
        }
        health.log.push(result);
        let excess = health.log.len().saturating_sub(KEPT_RESULTS);
        health.log.drain(..excess);
        let now = health.status.clone();
        if let Err(e) = self.save(&r) {
            tracing::error!(container = %r.id, "recording a health check: {e}");
        }
        if now != before {
            self.emit(&r, &format!("health_status: {now}"), &[]);
        }
    }
}

/// Reads Docker-framed output (`[stream, 0, 0, 0, len u32 BE]` + payload) until the end.
async fn read_frames(
    stream: &mut tokio::net::UnixStream,
    output: &mut Output,
) -> std::io::Result<()> {
    let mut header = [0u8; 8];
    loop {
        match stream.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let mut payload = vec![0u8; len];
        stream.read_exact(&mut payload).await?;
        output.push(&payload);
    }
}

/// Go's `time.Duration` text (`30s`, `1m30s`, `1.5s`, `500ms`), as dockerd's messages
/// show durations.
pub fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    let fraction = |value: u128, unit: u128, suffix: &str| {
        let whole = value / unit;
        let rest = value % unit;
        if rest == 0 {
            format!("{whole}{suffix}")
        } else {
            let digits = unit.ilog10() as usize;
            let text = format!("{rest:0digits$}");
            format!("{whole}.{}{suffix}", text.trim_end_matches('0'))
        }
    };
    match nanos {
        0 => "0s".into(),
        n if n < 1_000 => format!("{n}ns"),
        n if n < 1_000_000 => fraction(n, 1_000, "µs"),
        n if n < 1_000_000_000 => fraction(n, 1_000_000, "ms"),
        n => {
            let seconds = n / 1_000_000_000;
            let (hours, minutes) = (seconds / 3600, seconds % 3600 / 60);
            let mut text = String::new();
            if hours > 0 {
                text.push_str(&format!("{hours}h"));
            }
            if hours > 0 || minutes > 0 {
                text.push_str(&format!("{minutes}m"));
            }
            text + &fraction(n % 60_000_000_000, 1_000_000_000, "s")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_gos() {
        let ms = Duration::from_millis;
        assert_eq!(go_duration(Duration::from_secs(30)), "30s");
        assert_eq!(go_duration(ms(1500)), "1.5s");
        assert_eq!(go_duration(ms(90_000)), "1m30s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(go_duration(ms(500)), "500ms");
        assert_eq!(go_duration(ms(1)), "1ms");
    }

    #[test]
    fn probes_run_commands_or_shell_scripts() {
        let config = |test: &[&str]| Config {
            healthcheck: Some(HealthConfig {
                test: test.iter().map(|s| s.to_string()).collect(),
                ..HealthConfig::default()
            }),
            ..Config::default()
        };
        assert_eq!(
            probe_command(&config(&["CMD", "true", "x"])).unwrap(),
            ["true", "x"]
        );
        assert_eq!(
            probe_command(&config(&["CMD-SHELL", "exit 1"])).unwrap(),
            ["/bin/sh", "-c", "exit 1"]
        );
        assert!(probe_command(&config(&["NONE"])).is_none());
        assert!(probe_command(&Config::default()).is_none());
    }

    #[test]
    fn the_request_keeps_its_fields_and_takes_the_images_for_the_rest() {
        let mut config = Config {
            healthcheck: Some(HealthConfig {
                interval: 1_000_000_000,
                ..HealthConfig::default()
            }),
            ..Config::default()
        };
        let image = serde_json::json!({"Test": ["CMD", "true"], "Interval": 5, "Retries": 2});
        merge_image(&mut config, Some(&image));
        let check = config.healthcheck.unwrap();
        assert_eq!(check.test, ["CMD", "true"]);
        assert_eq!((check.interval, check.retries), (1_000_000_000, 2));
        let mut none = Config {
            healthcheck: Some(HealthConfig {
                test: vec!["NONE".into()],
                ..HealthConfig::default()
            }),
            ..Config::default()
        };
        merge_image(&mut none, Some(&image));
        assert!(probe_command(&none).is_none());
    }

    #[test]
    fn start_period_probes_use_the_start_interval_and_stop_at_its_end() {
        let timing = Timing::of(&HealthConfig {
            interval: 10_000_000_000,
            start_period: 60_000_000_000,
            start_interval: 1_000_000_000,
            ..HealthConfig::default()
        });
        let s = Duration::from_secs;
        assert_eq!(timing.next_wait(s(0), STARTING), s(1));
        assert_eq!(timing.next_wait(s(0), HEALTHY), s(10));
        assert_eq!(timing.next_wait(s(55), STARTING), s(5));
        assert_eq!(timing.next_wait(s(70), STARTING), s(10));
    }

    #[test]
    fn output_is_cut_as_dockers() {
        let mut out = Output::default();
        out.push(&[b'a'; 4000]);
        out.push(&[b'b'; 200]);
        let text = out.text();
        assert_eq!(text.len(), MAX_OUTPUT + 3);
        assert!(text.ends_with("bbb..."));
    }
}
