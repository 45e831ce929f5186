//! `docker update` (a container's resources and restart policy, applied to a running
//! container through the runtime and kept in its record for the next start) and
//! `docker container prune`.

use serde::Deserialize;

use super::record::{HostConfig, Record, Resources, RestartPolicy, Status};
use super::{restart, spec, write_json, ContainerError, Engine};

type Result<T, E = ContainerError> = std::result::Result<T, E>;

/// `POST /containers/{id}/update`'s body: `Resources` and `RestartPolicy`. Zero (or absent)
/// means "unchanged", as in dockerd.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UpdateRequest {
    #[serde(flatten)]
    pub resources: Resources,
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
            write_json(&file, &spec::limits(&host.resources))?;
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
    pub async fn prune(&self, selected: impl Fn(&Record) -> bool) -> Result<(Vec<String>, u64)> {
        let mut deleted = Vec::new();
        let mut reclaimed = 0;
        for container in self.all() {
            let r = container.snapshot();
            let stopped = matches!(
                r.state.status,
                Status::Created | Status::Exited | Status::Dead
            );
            if !stopped || !selected(&r) {
                continue;
            }
            let (images, id) = (self.images.clone(), r.id.clone());
            let size = tokio::task::spawn_blocking(move || images.container_rw_size(&id))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or(0);
            // One started meanwhile is refused by remove, and stays.
            match self.remove(&r.id, false, false).await {
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
}

/// dockerd's update rules: what is given replaces what was set, with the same conflicts
/// refused. The swap a container had (given, or twice its memory, as worked out at its
/// start) is kept when only the memory changes.
pub fn merge_update(had: &HostConfig, new: &UpdateRequest) -> Result<HostConfig, String> {
    let mut h = had.clone();
    let conflicts = [
        (
            new.resources.nano_cpus > 0 && had.resources.cpu_period > 0,
            "Nano CPUs cannot be updated as CPU Period has already been set",
        ),
        (
            new.resources.nano_cpus > 0 && had.resources.cpu_quota > 0,
            "Nano CPUs cannot be updated as CPU Quota has already been set",
        ),
        (
            new.resources.cpu_period > 0 && had.resources.nano_cpus > 0,
            "CPU Period cannot be updated as NanoCPUs has already been set",
        ),
        (
            new.resources.cpu_quota > 0 && had.resources.nano_cpus > 0,
            "CPU Quota cannot be updated as NanoCPUs has already been set",
        ),
        (
            new.resources.nano_cpus > 0 && new.resources.cpu_period > 0,
            "Nano CPUs and CPU Period cannot both be set",
        ),
        (
            new.resources.nano_cpus > 0 && new.resources.cpu_quota > 0,
            "Nano CPUs and CPU Quota cannot both be set",
        ),
    ];
    if let Some((_, message)) = conflicts.iter().find(|(c, _)| *c) {
        return Err(format!("Conflicting options: {message}"));
    }
    if new.resources.memory > 0 && new.resources.memory < 6 * 1024 * 1024 {
        return Err("Minimum memory limit allowed is 6MB".into());
    }
    if new.resources.blkio_weight != 0 && !(10..=1000).contains(&new.resources.blkio_weight) {
        return Err("Range of blkio weight is from 10 to 1000".into());
    }
    if new.resources.nano_cpus < 0
        || new.resources.cpu_shares < 0
        || new.resources.cpu_quota < 0
        || new.resources.cpu_period < 0
    {
        return Err("CPU values must not be negative".into());
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
    if new.resources.nano_cpus > cpus * 1_000_000_000 {
        return Err(format!(
            "Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
        ));
    }
    if new.resources.blkio_weight != 0 {
        h.resources.blkio_weight = new.resources.blkio_weight;
    }
    if new.resources.cpu_shares != 0 {
        h.resources.cpu_shares = new.resources.cpu_shares;
    }
    if new.resources.nano_cpus != 0 {
        h.resources.nano_cpus = new.resources.nano_cpus;
    }
    if new.resources.cpu_period != 0 {
        h.resources.cpu_period = new.resources.cpu_period;
    }
    if new.resources.cpu_quota != 0 {
        h.resources.cpu_quota = new.resources.cpu_quota;
    }
    if !new.resources.cpuset_cpus.is_empty() {
        h.resources
            .cpuset_cpus
            .clone_from(&new.resources.cpuset_cpus);
    }
    if !new.resources.cpuset_mems.is_empty() {
        h.resources
            .cpuset_mems
            .clone_from(&new.resources.cpuset_mems);
    }
    if new.resources.memory != 0 {
        let swap = match had.resources.memory_swap {
            0 if had.resources.memory > 0 => had.resources.memory * 2,
            s => s,
        };
        if swap > 0 && new.resources.memory > swap && new.resources.memory_swap == 0 {
            return Err(
                "Memory limit should be smaller than already set memoryswap limit, \
                        update the memoryswap at the same time"
                    .into(),
            );
        }
        if new.resources.memory_swap == 0
            && had.resources.memory_swap == 0
            && had.resources.memory > 0
        {
            h.resources.memory_swap = swap;
        }
        h.resources.memory = new.resources.memory;
    }
    if new.resources.memory_swap != 0 {
        h.resources.memory_swap = new.resources.memory_swap;
    }
    if h.resources.memory > 0
        && h.resources.memory_swap > 0
        && h.resources.memory_swap < h.resources.memory
    {
        return Err(
            "Minimum memoryswap limit should be larger than memory limit, see usage".into(),
        );
    }
    if new.resources.memory_reservation != 0 {
        h.resources.memory_reservation = new.resources.memory_reservation;
    }
    if new.resources.pids_limit.is_some() {
        h.resources.pids_limit = new.resources.pids_limit;
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn request(json: Value) -> UpdateRequest {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn updates_merge_as_dockerd_merges_them() {
        let had = HostConfig::default();
        let h = merge_update(&had, &request(json!({"Memory": 33554432, "PidsLimit": 20}))).unwrap();
        assert_eq!(
            (
                h.resources.memory,
                h.resources.memory_swap,
                h.resources.pids_limit
            ),
            (33554432, 0, Some(20))
        );
        let r = spec::limits(&h.resources);
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
        assert_eq!(
            (h.resources.memory, h.resources.memory_swap),
            (32 << 20, 128 << 20)
        );

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
}
