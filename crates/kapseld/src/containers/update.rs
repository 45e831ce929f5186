//! `docker update` (a container's resources and restart policy, applied to a running
//! container through the runtime and kept in its record for the next start) and
//! `docker container prune`.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{json, Value};

use super::record::{HostConfig, Record, RestartPolicy, Status};
use super::{restart, write_json, ContainerError, Engine};

type Result<T, E = ContainerError> = std::result::Result<T, E>;

/// `POST /containers/{id}/update`'s body: `Resources` and `RestartPolicy`. Zero (or absent)
/// means "unchanged", as in dockerd.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UpdateRequest {
    pub memory: i64,
    pub memory_swap: i64,
    pub memory_reservation: i64,
    pub nano_cpus: i64,
    pub cpu_shares: i64,
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    pub pids_limit: Option<i64>,
    pub blkio_weight: u16,
    pub restart_policy: Option<RestartPolicy>,
}

impl Engine {
    /// `POST /containers/{id}/update`: the new limits go to the running container's
    /// cgroup first (so a refused change is not recorded), then into its record.
    pub async fn update(&self, name: &str, request: UpdateRequest) -> Result<Vec<String>> {
        let container = self.get(name)?;
        let _op = container.op_lock.lock().await;
        let record = container.snapshot();
        let host = merge_update(&record.host_config, &request).map_err(|message| {
            ContainerError::InvalidConfig(format!(
                "Cannot update container {}: {message}",
                record.id
            ))
        })?;
        if record.state.status.is_live() {
            let file = self.run_dir(&record.id).join("update.json");
            write_json(&file, &live_resources(&host))?;
            let file_arg = file.to_string_lossy().into_owned();
            let applied = self.runtime(&["update", "-r", &file_arg, &record.id]).await;
            let _ = std::fs::remove_file(&file);
            applied.map_err(|e| {
                ContainerError::io(
                    &format!("Cannot update container {}", record.id),
                    std::io::Error::other(e.to_string()),
                )
            })?;
        }
        let mut r = container.record();
        r.host_config = host;
        self.save(&r)?;
        self.emit(&r, "update", &[]);
        Ok(Vec::new())
    }

    /// `POST /containers/prune`: removes the containers that are not running (created,
    /// exited, dead) and match `filters`; returns their IDs and the size of their writable
    /// layers.
    pub async fn prune(&self, filters: &PruneFilters) -> Result<(Vec<String>, u64)> {
        let mut deleted = Vec::new();
        let mut reclaimed = 0;
        for container in self.all() {
            let r = container.snapshot();
            let stopped = matches!(
                r.state.status,
                Status::Created | Status::Exited | Status::Dead
            );
            if !stopped || !filters.matches(&r) {
                continue;
            }
            let upper = self.upper_dir(&r.id);
            let size = tokio::task::spawn_blocking(move || dir_size(&upper))
                .await
                .unwrap_or(0);
            // One started meanwhile is refused by remove, and stays.
            match self.remove(&r.id, false).await {
                Ok(()) => {
                    deleted.push(r.id);
                    reclaimed += size;
                }
                Err(e) => tracing::info!(container = %r.id, "prune left it: {e}"),
            }
        }
        self.events.publish(
            "container",
            "prune",
            "",
            [("reclaimed".to_string(), reclaimed.to_string())],
        );
        Ok((deleted, reclaimed))
    }

    /// The container's writable layer. This mirrors kapsel-image's snapshot layout
    /// (`<data-root>/snapshots/containers/<id>/upper`); only prune's size report uses it.
    fn upper_dir(&self, id: &str) -> PathBuf {
        self.config
            .data_root
            .join("snapshots")
            .join("containers")
            .join(id)
            .join("upper")
    }
}

/// dockerd's update rules: what is given replaces what was set, with the same conflicts
/// refused. The swap a container had (given, or twice its memory, as worked out at its
/// start) is kept when only the memory changes.
pub fn merge_update(had: &HostConfig, new: &UpdateRequest) -> Result<HostConfig, String> {
    let mut h = had.clone();
    let conflicts = [
        (
            new.nano_cpus > 0 && had.cpu_period > 0,
            "Nano CPUs cannot be updated as CPU Period has already been set",
        ),
        (
            new.nano_cpus > 0 && had.cpu_quota > 0,
            "Nano CPUs cannot be updated as CPU Quota has already been set",
        ),
        (
            new.cpu_period > 0 && had.nano_cpus > 0,
            "CPU Period cannot be updated as NanoCPUs has already been set",
        ),
        (
            new.cpu_quota > 0 && had.nano_cpus > 0,
            "CPU Quota cannot be updated as NanoCPUs has already been set",
        ),
        (
            new.nano_cpus > 0 && new.cpu_period > 0,
            "Nano CPUs and CPU Period cannot both be set",
        ),
        (
            new.nano_cpus > 0 && new.cpu_quota > 0,
            "Nano CPUs and CPU Quota cannot both be set",
        ),
    ];
    if let Some((_, message)) = conflicts.iter().find(|(c, _)| *c) {
        return Err(format!("Conflicting options: {message}"));
    }
    if new.memory > 0 && new.memory < 6 * 1024 * 1024 {
        return Err("Minimum memory limit allowed is 6MB".into());
    }
    if new.blkio_weight != 0 && !(10..=1000).contains(&new.blkio_weight) {
        return Err("Range of blkio weight is from 10 to 1000".into());
    }
    if new.nano_cpus < 0 || new.cpu_shares < 0 || new.cpu_quota < 0 || new.cpu_period < 0 {
        return Err("CPU values must not be negative".into());
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
    if new.nano_cpus > cpus * 1_000_000_000 {
        return Err(format!(
            "Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
        ));
    }
    if new.blkio_weight != 0 {
        h.blkio_weight = new.blkio_weight;
    }
    if new.cpu_shares != 0 {
        h.cpu_shares = new.cpu_shares;
    }
    if new.nano_cpus != 0 {
        h.nano_cpus = new.nano_cpus;
    }
    if new.cpu_period != 0 {
        h.cpu_period = new.cpu_period;
    }
    if new.cpu_quota != 0 {
        h.cpu_quota = new.cpu_quota;
    }
    if !new.cpuset_cpus.is_empty() {
        h.cpuset_cpus.clone_from(&new.cpuset_cpus);
    }
    if !new.cpuset_mems.is_empty() {
        h.cpuset_mems.clone_from(&new.cpuset_mems);
    }
    if new.memory != 0 {
        let swap = match had.memory_swap {
            0 if had.memory > 0 => had.memory * 2,
            s => s,
        };
        if swap > 0 && new.memory > swap && new.memory_swap == 0 {
            return Err(
                "Memory limit should be smaller than already set memoryswap limit, \
                        update the memoryswap at the same time"
                    .into(),
            );
        }
        if new.memory_swap == 0 && had.memory_swap == 0 && had.memory > 0 {
            h.memory_swap = swap;
        }
        h.memory = new.memory;
    }
    if new.memory_swap != 0 {
        h.memory_swap = new.memory_swap;
    }
    if h.memory > 0 && h.memory_swap > 0 && h.memory_swap < h.memory {
        return Err(
            "Minimum memoryswap limit should be larger than memory limit, see usage".into(),
        );
    }
    if new.memory_reservation != 0 {
        h.memory_reservation = new.memory_reservation;
    }
    if new.pids_limit.is_some() {
        h.pids_limit = new.pids_limit;
    }
    if let Some(policy) = new.restart_policy.as_ref().filter(|p| !p.name.is_empty()) {
        restart::validate(policy)?;
        if had.auto_remove && policy.name != "no" {
            return Err(
                "Restart policy cannot be updated because AutoRemove is enabled for the container"
                    .into(),
            );
        }
        h.restart_policy = policy.clone();
    }
    Ok(h)
}

/// The limits as config.json's `linux.resources`, for `kapsel-runtime update -r`: the
/// container's whole set (as dockerd passes it), devices left alone.
pub fn live_resources(h: &HostConfig) -> Value {
    let mut r = json!({});
    let mut memory = serde_json::Map::new();
    if h.memory > 0 {
        memory.insert("limit".into(), json!(h.memory));
        if h.memory_swap != 0 {
            memory.insert("swap".into(), json!(h.memory_swap));
        }
    }
    if h.memory_reservation > 0 {
        memory.insert("reservation".into(), json!(h.memory_reservation));
    }
    if !memory.is_empty() {
        r["memory"] = Value::Object(memory);
    }
    let mut cpu = serde_json::Map::new();
    if h.cpu_shares > 0 {
        cpu.insert("shares".into(), json!(h.cpu_shares));
    }
    if h.nano_cpus > 0 {
        cpu.insert("period".into(), json!(100_000));
        cpu.insert("quota".into(), json!(h.nano_cpus / 10_000));
    } else if h.cpu_quota > 0 {
        cpu.insert("quota".into(), json!(h.cpu_quota));
        let period = if h.cpu_period > 0 {
            h.cpu_period
        } else {
            100_000
        };
        cpu.insert("period".into(), json!(period));
    } else if h.cpu_period > 0 {
        cpu.insert("period".into(), json!(h.cpu_period));
    }
    if !h.cpuset_cpus.is_empty() {
        cpu.insert("cpus".into(), json!(h.cpuset_cpus));
    }
    if !h.cpuset_mems.is_empty() {
        cpu.insert("mems".into(), json!(h.cpuset_mems));
    }
    if !cpu.is_empty() {
        r["cpu"] = Value::Object(cpu);
    }
    if let Some(limit) = h.pids_limit {
        // 0 and -1 both mean "no limit" in the API.
        r["pids"] = json!({"limit": if limit > 0 { limit } else { -1 }});
    }
    if h.blkio_weight > 0 {
        r["blockIO"] = json!({"weight": h.blkio_weight});
    }
    r
}

/// `filters` of `POST /containers/prune`.
#[derive(Debug, Clone, Default)]
pub struct PruneFilters {
    /// Only containers created at or before this time (seconds since the epoch).
    pub until: Option<f64>,
    /// `label=k` / `label=k=v`: all must match.
    pub labels: Vec<String>,
    /// `label!=k` / `label!=k=v`: none may match.
    pub not_labels: Vec<String>,
}

impl PruneFilters {
    pub fn matches(&self, r: &Record) -> bool {
        if let Some(until) = self.until {
            if super::inspect::unix_seconds(&r.created) as f64 > until {
                return false;
            }
        }
        let labels = r.config.labels.clone().unwrap_or_default();
        let has = |filter: &String| match filter.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
            None => labels.contains_key(filter),
        };
        self.labels.iter().all(has) && !self.not_labels.iter().any(has)
    }
}

/// The bytes of the files under `dir` (each inode once; symlinks not followed), as
/// dockerd sizes a writable layer.
fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut seen = HashSet::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                pending.push(entry.path());
            } else if seen.insert((meta.dev(), meta.ino())) {
                total += meta.size();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: Value) -> UpdateRequest {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn updates_merge_as_dockerd_merges_them() {
        let had = HostConfig::default();
        let h = merge_update(&had, &request(json!({"Memory": 33554432, "PidsLimit": 20}))).unwrap();
        assert_eq!(
            (h.memory, h.memory_swap, h.pids_limit),
            (33554432, 0, Some(20))
        );
        let r = live_resources(&h);
        assert_eq!(r["memory"], json!({"limit": 33554432}));
        assert_eq!(r["pids"], json!({"limit": 20}));
        assert!(r.get("cpu").is_none());

        // Had 64m (so 128m of memory+swap): raising the memory past that needs a swap.
        let had = merge_update(
            &HostConfig::default(),
            &request(json!({"Memory": 64 << 20})),
        )
        .unwrap();
        let err = merge_update(&had, &request(json!({"Memory": 256 << 20}))).unwrap_err();
        assert!(err.contains("memoryswap"), "{err}");
        let h = merge_update(&had, &request(json!({"Memory": 32 << 20}))).unwrap();
        assert_eq!((h.memory, h.memory_swap), (32 << 20, 128 << 20));

        let err =
            merge_update(&HostConfig::default(), &request(json!({"Memory": 1024}))).unwrap_err();
        assert!(err.contains("6MB"), "{err}");
        let h = merge_update(&HostConfig::default(), &request(json!({"CpuQuota": 50000}))).unwrap();
        assert!(merge_update(&h, &request(json!({"NanoCpus": 500000000}))).is_err());

        let h = merge_update(
            &HostConfig::default(),
            &request(json!({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}})),
        )
        .unwrap();
        assert_eq!(h.restart_policy.name, "on-failure");
        let no_change = merge_update(&h, &request(json!({"RestartPolicy": {"Name": ""}}))).unwrap();
        assert_eq!(no_change.restart_policy.maximum_retry_count, 3);
        let auto_remove = HostConfig {
            auto_remove: true,
            ..HostConfig::default()
        };
        assert!(merge_update(
            &auto_remove,
            &request(json!({"RestartPolicy": {"Name": "always"}}))
        )
        .is_err());
    }

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
        let f = |labels: &[&str], not: &[&str], until: Option<f64>| PruneFilters {
            until,
            labels: labels.iter().map(|s| s.to_string()).collect(),
            not_labels: not.iter().map(|s| s.to_string()).collect(),
        };
        assert!(f(&[], &[], None).matches(&r));
        assert!(f(&["keep", "team=a"], &[], None).matches(&r));
        assert!(!f(&["team=b"], &[], None).matches(&r));
        assert!(!f(&[], &["keep=1"], None).matches(&r));
        assert!(f(&[], &[], Some(1_704_067_200.0)).matches(&r));
        assert!(!f(&[], &[], Some(1_704_067_199.0)).matches(&r));
        r.config.labels = None;
        assert!(f(&[], &["keep"], None).matches(&r));
    }
}
