//! A container as the engine keeps it: Docker's `Config` and `HostConfig` as the client
//! sent them, and its state. Persisted as JSON (see [`super::db`]), shown by inspect.
//!
//! The typed fields are the ones the engine acts on; every other field a client sends is
//! kept in `extra` and shown back unchanged, as dockerd does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `Config` of the create request (the image's config fills what it leaves empty).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Config {
    pub hostname: String,
    pub domainname: String,
    pub user: String,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    pub env: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub image: String,
    pub working_dir: String,
    pub entrypoint: Option<Vec<String>>,
    pub labels: Option<BTreeMap<String, String>>,
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<i64>,
    pub healthcheck: Option<HealthConfig>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `Config.Healthcheck`: the probe (`["CMD", args…]`, `["CMD-SHELL", script]` or
/// `["NONE"]`) and its timing in nanoseconds; zero means Docker's default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthConfig {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    #[serde(skip_serializing_if = "is_zero")]
    pub interval: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub timeout: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub start_period: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub start_interval: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub retries: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// `HostConfig` of the create request (with `Resources` flattened in, as Docker's is).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig {
    pub binds: Option<Vec<String>>,
    pub network_mode: String,
    pub restart_policy: RestartPolicy,
    pub auto_remove: bool,
    pub mounts: Option<Vec<MountSpec>>,
    pub volumes_from: Option<Vec<String>>,
    pub cap_add: Option<Vec<String>>,
    pub cap_drop: Option<Vec<String>>,
    pub dns: Option<Vec<String>>,
    pub dns_options: Option<Vec<String>>,
    pub dns_search: Option<Vec<String>>,
    pub extra_hosts: Option<Vec<String>>,
    pub group_add: Option<Vec<String>>,
    pub oom_score_adj: i64,
    pub privileged: bool,
    pub readonly_rootfs: bool,
    pub security_opt: Option<Vec<String>>,
    pub tmpfs: Option<BTreeMap<String, String>>,
    pub shm_size: i64,
    pub sysctls: Option<BTreeMap<String, String>>,
    pub log_config: LogConfig,
    pub init: Option<bool>,
    pub ulimits: Option<Vec<Ulimit>>,
    pub devices: Option<Vec<DeviceMapping>>,
    /// The terminal's [height, width] when the client created the container (API 1.42).
    pub console_size: [u32; 2],
    /// Docker's `Resources` (flattened into HostConfig, as the API has it); before
    /// `extra`, which takes what is left.
    #[serde(flatten)]
    pub resources: Resources,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The limits `docker update` can change too.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Resources {
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
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicy {
    pub name: String,
    pub maximum_retry_count: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct LogConfig {
    #[serde(rename = "Type")]
    pub kind: String,
    pub config: BTreeMap<String, String>,
}

/// One entry of `HostConfig.Mounts`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MountSpec {
    #[serde(rename = "Type")]
    pub kind: String,
    pub source: String,
    pub target: String,
    pub read_only: bool,
    pub bind_options: Option<Value>,
    pub tmpfs_options: Option<TmpfsOptions>,
    pub volume_options: Option<VolumeOptions>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `--mount type=volume`'s options: `volume-nocopy`, labels and `volume-opt` for a volume
/// the mount creates.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumeOptions {
    pub no_copy: bool,
    pub labels: Option<BTreeMap<String, String>>,
    pub driver_config: Option<VolumeDriverConfig>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumeDriverConfig {
    pub name: String,
    pub options: Option<BTreeMap<String, String>>,
}

/// What a container mounts, resolved at create from `-v`, `--mount`, `--volumes-from` and
/// the image's `VOLUME`s, as dockerd's MountPoints: volumes by name (anonymous ones
/// created then), binds by host path. `docker inspect`'s `Mounts` and config.json's
/// mounts are made from these.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct MountPoint {
    #[serde(rename = "Type")]
    pub kind: MountKind,
    /// The volume's name (volumes only).
    pub name: String,
    /// The host path: a bind's source, a volume's `_data`.
    pub source: String,
    pub destination: String,
    pub read_only: bool,
    /// The mode as `-v` gave it (`ro,rshared`, `nocopy`…), shown by inspect.
    pub mode: String,
    /// `rprivate` unless `-v …:rshared` or `bind-propagation` says otherwise.
    pub propagation: String,
    /// Copy what the image has at the destination into a new empty volume.
    pub copy_data: bool,
    /// tmpfs mounts (`--mount type=tmpfs`): their options (size, mode).
    pub tmpfs_options: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    #[default]
    Bind,
    Volume,
    Tmpfs,
}

impl MountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MountKind::Bind => "bind",
            MountKind::Volume => "volume",
            MountKind::Tmpfs => "tmpfs",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TmpfsOptions {
    pub size_bytes: i64,
    pub mode: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeviceMapping {
    pub path_on_host: String,
    pub path_in_container: String,
    pub cgroup_permissions: String,
}

/// What a container is doing, in Docker's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }

    /// A process exists (running or frozen).
    pub fn is_live(self) -> bool {
        matches!(self, Status::Running | Status::Paused)
    }
}

/// The container's state: Docker's `State` plus the supervisor that watches it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub status: Status,
    pub pid: i32,
    pub exit_code: i64,
    pub error: String,
    pub oom_killed: bool,
    pub started_at: String,
    pub finished_at: String,
    /// The kapsel-shim watching the running container, and its start time (clock ticks
    /// since boot), so a recycled PID is never mistaken for it after a daemon restart.
    pub shim_pid: i32,
    pub shim_start_time: u64,
    /// Set by `stop`/`kill` through the API: restart policies leave the container alone.
    pub stopped_by_user: bool,
    /// Docker's `State.Health`, for containers with a health check.
    #[serde(default)]
    pub health: Option<Health>,
}

/// `State.Health`: the status the probes gave, consecutive failures, the last results.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    pub failing_streak: u32,
    pub log: Vec<HealthResult>,
}

/// One probe's result, as Docker logs it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthResult {
    pub start: String,
    pub end: String,
    pub exit_code: i64,
    pub output: String,
}

/// Docker's zero time, shown for "never".
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

impl Default for State {
    fn default() -> Self {
        State {
            status: Status::Created,
            pid: 0,
            exit_code: 0,
            error: String::new(),
            oom_killed: false,
            started_at: ZERO_TIME.into(),
            finished_at: ZERO_TIME.into(),
            shim_pid: 0,
            shim_start_time: 0,
            stopped_by_user: false,
            health: None,
        }
    }
}

/// Everything the engine records about one container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    /// Without Docker's leading '/'.
    pub name: String,
    pub created: String,
    /// The image as the client named it, and its ID.
    pub image: String,
    pub image_id: String,
    /// The program and its arguments (entrypoint + cmd, after the image's defaults).
    pub path: String,
    pub args: Vec<String>,
    pub config: Config,
    pub host_config: HostConfig,
    pub state: State,
    pub restart_count: u64,
    pub log_path: String,
    /// The networks it is on, by name (empty for `host`, `none`, `container:`); their
    /// addresses while it runs.
    #[serde(default)]
    pub networks: BTreeMap<String, crate::networks::record::Endpoint>,
    /// Its published ports while it runs.
    #[serde(default)]
    pub ports: Vec<kapsel_network::firewall::PortMapping>,
    /// Resolved at create (older records have none: their binds are resolved when the
    /// daemon opens them).
    #[serde(default)]
    pub mount_points: Vec<MountPoint>,
}

impl Record {
    pub fn short_id(&self) -> &str {
        &self.id[..12]
    }

    /// The network mode with Docker's name for the default.
    pub fn network_mode(&self) -> &str {
        match self.host_config.network_mode.as_str() {
            "" | "default" => "bridge",
            m => m,
        }
    }
}
