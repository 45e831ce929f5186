//! Containers as the API shows them: `GET /containers/{id}/json` (inspect) and the
//! summaries of `GET /containers/json`, in Docker's shapes, so `docker inspect -f` and
//! `docker ps --format` templates work unchanged.

use serde_json::{json, Value};

use super::record::{Record, Status};

/// Docker's inspect document.
pub fn inspect(record: &Record, data_dir: &str, exec_ids: &[String]) -> Value {
    let s = &record.state;
    let mut config = serde_json::to_value(&record.config).expect("config serialises");
    config["Hostname"] = json!(super::spec::hostname(record));
    let mut doc = json!({
        "Id": record.id,
        "Created": record.created,
        "Path": record.path,
        "Args": record.args,
        "State": {
            "Status": s.status.as_str(),
            "Running": s.status.is_live(),
            "Paused": s.status == Status::Paused,
            "Restarting": s.status == Status::Restarting,
            "OOMKilled": s.oom_killed,
            "Dead": s.status == Status::Dead,
            "Pid": s.pid,
            "ExitCode": s.exit_code,
            "Error": s.error,
            "StartedAt": s.started_at,
            "FinishedAt": s.finished_at,
        },
        "Image": record.image_id,
        "ResolvConfPath": format!("{data_dir}/resolv.conf"),
        "HostnamePath": format!("{data_dir}/hostname"),
        "HostsPath": format!("{data_dir}/hosts"),
        "LogPath": record.log_path,
        "Name": format!("/{}", record.name),
        "RestartCount": record.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": if exec_ids.is_empty() { Value::Null } else { json!(exec_ids) },
        "HostConfig": host_config(record),
        "GraphDriver": {"Name": "overlay2", "Data": {}},
        "Mounts": mounts(record),
        "Config": config,
        "NetworkSettings": network_settings(record),
    });
    if let Some(health) = &s.health {
        doc["State"]["Health"] = json!(health);
    }
    doc
}

/// HostConfig with Docker's defaults for what the client left out.
fn host_config(record: &Record) -> Value {
    let mut host = serde_json::to_value(&record.host_config).expect("host config serialises");
    if record.host_config.network_mode.is_empty() {
        host["NetworkMode"] = json!("bridge");
    }
    if record.host_config.log_config.kind.is_empty() {
        host["LogConfig"]["Type"] = json!("json-file");
    }
    if record.host_config.restart_policy.name.is_empty() {
        host["RestartPolicy"]["Name"] = json!("no");
    }
    host
}

fn mounts(record: &Record) -> Value {
    let mut mounts = Vec::new();
    for bind in record.host_config.binds.iter().flatten() {
        let parts: Vec<&str> = bind.split(':').collect();
        if parts.len() >= 2 {
            let mode = parts.get(2).copied().unwrap_or("");
            mounts.push(json!({
                "Type": "bind", "Source": parts[0], "Destination": parts[1], "Mode": mode,
                "RW": !mode.split(',').any(|o| o == "ro"), "Propagation": "rprivate",
            }));
        }
    }
    for m in record.host_config.mounts.iter().flatten() {
        mounts.push(json!({
            "Type": m.kind, "Source": m.source, "Destination": m.target, "Mode": "",
            "RW": !m.read_only, "Propagation": if m.kind == "bind" { "rprivate" } else { "" },
        }));
    }
    json!(mounts)
}

/// The network mode, with Docker's name for the default.
fn network_mode(record: &Record) -> &str {
    match record.host_config.network_mode.as_str() {
        "" | "default" => "bridge",
        m => m,
    }
}

fn network_settings(record: &Record) -> Value {
    let mode = network_mode(record);
    json!({
        "Bridge": "", "SandboxID": "", "SandboxKey": "", "HairpinMode": false,
        "Ports": {}, "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "MacAddress": "",
        "Networks": { mode: {
            "NetworkID": "", "EndpointID": "", "Gateway": "", "IPAddress": "",
            "IPPrefixLen": 0, "MacAddress": "", "Aliases": null,
        }},
    })
}

/// One `GET /containers/json` entry.
pub fn summary(record: &Record) -> Value {
    let command = std::iter::once(record.path.as_str())
        .chain(record.args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    json!({
        "Id": record.id,
        "Names": [format!("/{}", record.name)],
        "Image": record.image,
        "ImageID": record.image_id,
        "Command": command,
        "Created": unix_seconds(&record.created),
        "Ports": [],
        "Labels": record.config.labels.clone().unwrap_or_default(),
        "State": record.state.status.as_str(),
        "Status": status_text(record),
        "HostConfig": {"NetworkMode": network_mode(record)},
        "NetworkSettings": {"Networks": network_settings(record)["Networks"]},
        "Mounts": mounts(record),
    })
}

/// `docker ps`'s STATUS column: "Up 5 minutes", "Exited (0) 2 hours ago", "Created".
pub fn status_text(record: &Record) -> String {
    let s = &record.state;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let up = human_duration(now - unix_seconds(&s.started_at));
    match s.status {
        Status::Created => "Created".into(),
        Status::Running => match &s.health {
            Some(h) if h.status == super::health::STARTING => format!("Up {up} (health: starting)"),
            Some(h) => format!("Up {up} ({})", h.status),
            None => format!("Up {up}"),
        },
        Status::Paused => format!("Up {up} (Paused)"),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            s.exit_code,
            human_duration(now - unix_seconds(&s.finished_at))
        ),
        Status::Removing => "Removal In Progress".into(),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            s.exit_code,
            human_duration(now - unix_seconds(&s.finished_at))
        ),
        Status::Dead => "Dead".into(),
    }
}

/// Docker's (go-units) HumanDuration.
pub fn human_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".into(),
        _ if s < 3600 => format!("{} minutes", s / 60),
        _ if s < 2 * 3600 => "About an hour".into(),
        _ if s < 48 * 3600 => format!("{} hours", s / 3600),
        _ if s < 7 * 24 * 3600 * 2 => format!("{} days", s / (24 * 3600)),
        _ if s < 30 * 24 * 3600 * 3 => format!("{} weeks", s / (7 * 24 * 3600)),
        _ if s < 365 * 24 * 3600 * 2 => format!("{} months", s / (30 * 24 * 3600)),
        _ => format!("{} years", s / (365 * 24 * 3600)),
    }
}

/// Seconds since the epoch of an RFC 3339 time (0 for Docker's zero time or garbage).
pub fn unix_seconds(time: &str) -> i64 {
    parse_time(time)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// An RFC 3339 time as the records keep them (UTC, `Z`, up to nanoseconds).
pub fn parse_time(time: &str) -> Option<std::time::SystemTime> {
    humantime::parse_rfc3339_weak(time.trim_end_matches('Z')).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_dockers() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(5), "5 seconds");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(600), "10 minutes");
        assert_eq!(human_duration(3 * 3600), "3 hours");
    }

    #[test]
    fn rfc3339_times_convert() {
        assert_eq!(unix_seconds("1970-01-01T00:01:00.123456789Z"), 60);
        assert_eq!(unix_seconds("0001-01-01T00:00:00Z"), 0);
    }
}
