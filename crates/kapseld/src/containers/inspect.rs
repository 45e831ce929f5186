//! Containers as the API shows them: `GET /containers/{id}/json` (inspect) and the
//! summaries of `GET /containers/json`, in Docker's shapes, so `docker inspect -f` and
//! `docker ps --format` templates work unchanged.

use serde_json::{json, Value};

use super::record::{MountKind, Record, Status};

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

/// Docker's `Mounts`: what the container mounts, as resolved at create.
fn mounts(record: &Record) -> Value {
    let mounts: Vec<Value> = record
        .mount_points
        .iter()
        .map(|m| {
            let mut v = json!({
                "Type": m.kind.as_str(), "Source": m.source, "Destination": m.destination,
                "Mode": m.mode, "RW": !m.read_only,
                "Propagation": if m.kind == MountKind::Bind { m.propagation.as_str() } else { "" },
            });
            if m.kind == MountKind::Volume {
                v["Name"] = json!(m.name);
                v["Driver"] = json!("local");
            }
            v
        })
        .collect();
    json!(mounts)
}

/// `NetworkSettings`: one entry per network (addresses while running), the published
/// ports, and the top-level fields the default bridge fills, as Docker shows them.
fn network_settings(record: &Record) -> Value {
    let mut networks = serde_json::Map::new();
    for (name, e) in &record.networks {
        networks.insert(name.clone(), endpoint_settings(record, e));
    }
    if record.networks.is_empty() {
        let empty = crate::networks::record::Endpoint::default();
        networks.insert(
            record.network_mode().to_string(),
            endpoint_settings(record, &empty),
        );
    }
    let default = record.networks.get("bridge");
    let field = |f: &str| default.map_or(json!(""), |_| networks["bridge"][f].clone());
    json!({
        "Bridge": "", "HairpinMode": false,
        "SandboxID": if record.state.status.is_live() { record.id.clone() } else { String::new() },
        "SandboxKey": "",
        "Ports": crate::networks::ports::settings(&record.ports, record.config.extra.get("ExposedPorts")),
        "Gateway": field("Gateway"), "IPAddress": field("IPAddress"),
        "IPPrefixLen": default.map_or(json!(0), |_| networks["bridge"]["IPPrefixLen"].clone()),
        "MacAddress": field("MacAddress"), "EndpointID": field("EndpointID"),
        "Networks": networks,
    })
}

fn endpoint_settings(record: &Record, e: &crate::networks::record::Endpoint) -> Value {
    let mut dns_names: Vec<String> = vec![record.name.clone(), record.short_id().to_string()];
    dns_names.extend(e.aliases.iter().cloned());
    json!({
        "IPAMConfig": e.requested_ip.map(|ip| json!({"IPv4Address": ip.to_string()})),
        "Links": null, "Aliases": if e.aliases.is_empty() { json!(null) } else { json!(e.aliases) },
        "MacAddress": e.mac(), "DriverOpts": null,
        "NetworkID": e.network_id, "EndpointID": e.endpoint_id,
        "Gateway": e.gateway.map_or(String::new(), |g| g.to_string()),
        "IPAddress": e.ip.map_or(String::new(), |ip| ip.addr().to_string()),
        "IPPrefixLen": e.ip.map_or(0, |ip| ip.prefix_len()),
        "IPv6Gateway": e.gateway6.map_or(String::new(), |g| g.to_string()),
        "GlobalIPv6Address": e.ip6.map_or(String::new(), |ip| ip.addr().to_string()),
        "GlobalIPv6PrefixLen": e.ip6.map_or(0, |ip| ip.prefix_len()),
        "DNSNames": if e.ip.is_some() { json!(dns_names) } else { json!(null) },
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
        "Ports": crate::networks::ports::summary(&record.ports),
        "Labels": record.config.labels.clone().unwrap_or_default(),
        "State": record.state.status.as_str(),
        "Status": status_text(record),
        "HostConfig": {"NetworkMode": record.network_mode()},
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
