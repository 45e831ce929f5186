//! `run`/`create` flags → the body of `POST /containers/create`, as the docker CLI builds
//! it (cli/command/container/opts.go). Pure: no I/O except reading `--env-file` and
//! `--security-opt seccomp=FILE`, and the environment for `-e NAME`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{ArgAction, Args};
use serde_json::{json, Map, Value};

/// A flag value docker would refuse; the text is docker's where it has one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct OptsError(pub String);

type Result<T> = std::result::Result<T, OptsError>;

fn invalid(msg: impl Into<String>) -> OptsError {
    OptsError(msg.into())
}

// The container flags `run` and `create` share (docker's names and short forms).
#[derive(Args, Debug, Default, Clone)]
pub struct ContainerOpts {
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env", action = ArgAction::Append)]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file", action = ArgAction::Append)]
    pub env_file: Vec<PathBuf>,
    /// Working directory inside the container
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Set meta data on a container
    #[arg(short = 'l', long = "label", action = ArgAction::Append)]
    pub label: Vec<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long, allow_hyphen_values = true)]
    pub entrypoint: Option<String>,
    /// Bind mount a volume
    #[arg(short = 'v', long = "volume", action = ArgAction::Append)]
    pub volume: Vec<String>,
    /// Attach a filesystem mount to the container
    #[arg(long, action = ArgAction::Append)]
    pub mount: Vec<String>,
    /// Mount a tmpfs directory
    #[arg(long, action = ArgAction::Append)]
    pub tmpfs: Vec<String>,
    /// Mount volumes from the specified container(s)
    #[arg(long = "volumes-from", action = ArgAction::Append)]
    pub volumes_from: Vec<String>,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Add Linux capabilities
    #[arg(long = "cap-add", action = ArgAction::Append)]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop", action = ArgAction::Append)]
    pub cap_drop: Vec<String>,
    /// Give extended privileges to this container
    #[arg(long)]
    pub privileged: bool,
    /// Security Options
    #[arg(long = "security-opt", action = ArgAction::Append)]
    pub security_opt: Vec<String>,
    #[command(flatten)]
    pub resources: Resources,
    /// Ulimit options
    #[arg(long, action = ArgAction::Append)]
    pub ulimit: Vec<String>,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    pub init: bool,
    /// Connect a container to a network (several times: to each)
    #[arg(long = "network", alias = "net", action = ArgAction::Append)]
    pub network: Vec<String>,
    /// Add network-scoped alias for the container
    #[arg(long = "network-alias", alias = "net-alias", action = ArgAction::Append)]
    pub network_alias: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long)]
    pub ip: Option<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host", action = ArgAction::Append)]
    pub add_host: Vec<String>,
    /// Set custom DNS servers
    #[arg(long, action = ArgAction::Append)]
    pub dns: Vec<String>,
    /// Sysctl options
    #[arg(long, action = ArgAction::Append)]
    pub sysctl: Vec<String>,
    /// Add a host device to the container
    #[arg(long, action = ArgAction::Append)]
    pub device: Vec<String>,
    /// Add additional groups to join
    #[arg(long = "group-add", action = ArgAction::Append)]
    pub group_add: Vec<String>,
    /// Size of /dev/shm
    #[arg(long = "shm-size")]
    pub shm_size: Option<String>,
    /// Container host name
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Container NIS domain name
    #[arg(long)]
    pub domainname: Option<String>,
    /// Restart policy to apply when a container exits
    #[arg(long)]
    pub restart: Option<String>,
    /// Signal to stop the container
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long = "stop-timeout", allow_negative_numbers = true)]
    pub stop_timeout: Option<i64>,
    /// Logging driver for the container
    #[arg(long = "log-driver")]
    pub log_driver: Option<String>,
    /// Log driver options
    #[arg(long = "log-opt", action = ArgAction::Append)]
    pub log_opt: Vec<String>,
    /// Publish a container's port(s) to the host
    #[arg(short = 'p', long = "publish", action = ArgAction::Append)]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Expose a port or a range of ports
    #[arg(long, action = ArgAction::Append)]
    pub expose: Vec<String>,
    /// Command to run to check health
    #[arg(long = "health-cmd")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h)
    #[arg(long = "health-interval")]
    pub health_interval: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h)
    #[arg(long = "health-timeout")]
    pub health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long = "health-retries")]
    pub health_retries: Option<i64>,
    /// Start period for the container to initialize before starting health-retries countdown (ms|s|m|h)
    #[arg(long = "health-start-period")]
    pub health_start_period: Option<String>,
    /// Time between running the check during the start period (ms|s|m|h)
    #[arg(long = "health-start-interval")]
    pub health_start_interval: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Automatically remove the container and its associated anonymous volumes when it exits
    #[arg(long)]
    pub rm: bool,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    /// Pull image before running ("always", "missing", "never")
    #[arg(long, default_value = "missing")]
    pub pull: String,
}

/// What `create` sends: the body and the `name`/`platform` query parameters.
#[derive(Debug)]
pub struct CreateRequest {
    pub body: Value,
    pub name: Option<String>,
    pub platform: Option<String>,
}

impl ContainerOpts {
    /// Builds the create request for `image` running `cmd`. `attached` is whether the
    /// CLI will attach (run without -d): docker asks the daemon to keep stdout/stderr
    /// (and stdin with -i) for the attach only then.
    pub fn create_request(
        &self,
        image: &str,
        cmd: &[String],
        attached: bool,
    ) -> Result<CreateRequest> {
        let mut config = Map::new();
        let mut host = Map::new();
        config.insert("Image".into(), json!(image));
        if !cmd.is_empty() {
            config.insert("Cmd".into(), json!(cmd));
        }
        if let Some(ep) = &self.entrypoint {
            // `--entrypoint ""` resets the image's entrypoint: an empty list, not absent.
            let list: Vec<&str> = if ep.is_empty() { vec![] } else { vec![ep] };
            config.insert("Entrypoint".into(), json!(list));
        }
        config.insert("AttachStdin".into(), json!(attached && self.interactive));
        config.insert("AttachStdout".into(), json!(attached));
        config.insert("AttachStderr".into(), json!(attached));
        config.insert("Tty".into(), json!(self.tty));
        config.insert("OpenStdin".into(), json!(self.interactive));
        config.insert("StdinOnce".into(), json!(attached && self.interactive));
        config.insert("Env".into(), json!(environment(&self.env_file, &self.env)?));
        insert_opt(&mut config, "WorkingDir", self.workdir.as_deref());
        insert_opt(&mut config, "User", self.user.as_deref());
        insert_opt(&mut config, "Hostname", self.hostname.as_deref());
        insert_opt(&mut config, "Domainname", self.domainname.as_deref());
        insert_opt(&mut config, "StopSignal", self.stop_signal.as_deref());
        if let Some(t) = self.stop_timeout {
            config.insert("StopTimeout".into(), json!(t));
        }
        if !self.label.is_empty() {
            config.insert("Labels".into(), json!(key_values(&self.label, "label")?));
        }
        if let Some(health) = self.healthcheck()? {
            config.insert("Healthcheck".into(), health);
        }

        let ports = parse_ports(&self.publish)?;
        let mut exposed = BTreeMap::new();
        for spec in &self.expose {
            for port in expose_ports(spec)? {
                exposed.insert(port, json!({}));
            }
        }
        for (port, _) in &ports {
            exposed.insert(port.clone(), json!({}));
        }
        if !exposed.is_empty() {
            config.insert("ExposedPorts".into(), json!(exposed));
        }
        if !ports.is_empty() {
            let mut bindings: BTreeMap<String, Vec<Value>> = BTreeMap::new();
            for (port, binding) in ports {
                bindings.entry(port).or_default().push(binding);
            }
            host.insert("PortBindings".into(), json!(bindings));
        }

        let (binds, volumes) = parse_volumes(&self.volume)?;
        if !binds.is_empty() {
            host.insert("Binds".into(), json!(binds));
        }
        if !volumes.is_empty() {
            let v: BTreeMap<String, Value> = volumes.into_iter().map(|p| (p, json!({}))).collect();
            config.insert("Volumes".into(), json!(v));
        }
        if !self.mount.is_empty() {
            let mounts: Result<Vec<Value>> = self.mount.iter().map(|m| parse_mount(m)).collect();
            host.insert("Mounts".into(), json!(mounts?));
        }
        if !self.volumes_from.is_empty() {
            host.insert("VolumesFrom".into(), json!(self.volumes_from));
        }
        if !self.tmpfs.is_empty() {
            let t: BTreeMap<&str, &str> = self
                .tmpfs
                .iter()
                .map(|s| s.split_once(':').unwrap_or((s, "")))
                .collect();
            host.insert("Tmpfs".into(), json!(t));
        }

        let network = self
            .network
            .first()
            .cloned()
            .unwrap_or_else(|| "default".into());
        host.insert("NetworkMode".into(), json!(network));
        if self.publish_all {
            host.insert("PublishAllPorts".into(), json!(true));
        }
        host.insert("AutoRemove".into(), json!(self.rm));
        host.insert("Privileged".into(), json!(self.privileged));
        host.insert("ReadonlyRootfs".into(), json!(self.read_only));
        if self.init {
            host.insert("Init".into(), json!(true));
        }
        insert_list(&mut host, "CapAdd", &self.cap_add);
        insert_list(&mut host, "CapDrop", &self.cap_drop);
        insert_list(&mut host, "Dns", &self.dns);
        insert_list(&mut host, "GroupAdd", &self.group_add);
        let hosts: Vec<String> = self
            .add_host
            .iter()
            .map(|h| normalize_host(h))
            .collect::<Result<_>>()?;
        insert_list(&mut host, "ExtraHosts", &hosts);
        let security: Vec<String> = self
            .security_opt
            .iter()
            .map(|s| security_opt(s))
            .collect::<Result<_>>()?;
        insert_list(&mut host, "SecurityOpt", &security);
        if !self.sysctl.is_empty() {
            host.insert("Sysctls".into(), json!(key_values(&self.sysctl, "sysctl")?));
        }
        if !self.device.is_empty() {
            let devices: Result<Vec<Value>> = self.device.iter().map(|d| parse_device(d)).collect();
            host.insert("Devices".into(), json!(devices?));
        }
        if !self.ulimit.is_empty() {
            let ulimits: Result<Vec<Value>> = self.ulimit.iter().map(|u| parse_ulimit(u)).collect();
            host.insert("Ulimits".into(), json!(ulimits?));
        }
        if let Some(s) = &self.shm_size {
            host.insert("ShmSize".into(), json!(ram_in_bytes(s)?));
        }
        self.resources.insert_into(&mut host)?;
        if let Some(r) = &self.restart {
            host.insert("RestartPolicy".into(), restart_policy(r)?);
        }
        if self.log_driver.is_some() || !self.log_opt.is_empty() {
            host.insert(
                "LogConfig".into(),
                json!({
                    "Type": self.log_driver.clone().unwrap_or_default(),
                    "Config": key_values(&self.log_opt, "log-opt")?,
                }),
            );
        }
        config.insert("HostConfig".into(), Value::Object(host));
        if let Some(endpoints) = self.endpoints_config(&network)? {
            config.insert("NetworkingConfig".into(), endpoints);
        }
        Ok(CreateRequest {
            body: Value::Object(config),
            name: self.name.clone(),
            platform: self.platform.clone(),
        })
    }

    /// `NetworkingConfig`: user-defined networks get an endpoint entry, with the
    /// `--network-alias` and `--ip` given; the built-in modes only when `--ip` is given, so
    /// that the daemon refuses it as dockerd does. Aliases on a built-in mode are refused
    /// here, as docker's CLI refuses them.
    /// With several `--network`s the others get an empty entry each; none of them may be
    /// a built-in mode, as docker's CLI checks.
    fn endpoints_config(&self, network: &str) -> Result<Option<Value>> {
        let is_builtin = |n: &str| {
            matches!(n, "default" | "bridge" | "host" | "none") || n.starts_with("container:")
        };
        let builtin = is_builtin(network);
        if self.network.len() > 1 && self.network.iter().any(|n| is_builtin(n)) {
            return Err(invalid(
                "conflicting options: cannot attach both user-defined and non-user-defined network-modes",
            ));
        }
        if builtin && !self.network_alias.is_empty() {
            return Err(invalid(
                "network-scoped aliases are only supported for user-defined networks",
            ));
        }
        let mut endpoint = Map::new();
        if !self.network_alias.is_empty() {
            endpoint.insert("Aliases".into(), json!(self.network_alias));
        }
        if let Some(ip) = &self.ip {
            endpoint.insert("IPAMConfig".into(), json!({"IPv4Address": ip}));
        }
        let mut endpoints: Map<String, Value> = self
            .network
            .iter()
            .skip(1)
            .map(|n| (n.clone(), json!({})))
            .collect();
        endpoints.insert(network.to_string(), Value::Object(endpoint.clone()));
        Ok((!builtin || !endpoint.is_empty()).then(|| json!({"EndpointsConfig": endpoints})))
    }

    fn healthcheck(&self) -> Result<Option<Value>> {
        let any_option = self.health_cmd.is_some()
            || self.health_interval.is_some()
            || self.health_timeout.is_some()
            || self.health_retries.is_some()
            || self.health_start_period.is_some()
            || self.health_start_interval.is_some();
        if self.no_healthcheck {
            if any_option {
                return Err(invalid(
                    "--no-healthcheck conflicts with --health-* options",
                ));
            }
            return Ok(Some(json!({"Test": ["NONE"]})));
        }
        if !any_option {
            return Ok(None);
        }
        let mut h = Map::new();
        if let Some(cmd) = &self.health_cmd {
            h.insert("Test".into(), json!(["CMD-SHELL", cmd]));
        }
        for (key, flag, value) in [
            ("Interval", "--health-interval", &self.health_interval),
            ("Timeout", "--health-timeout", &self.health_timeout),
            (
                "StartPeriod",
                "--health-start-period",
                &self.health_start_period,
            ),
            (
                "StartInterval",
                "--health-start-interval",
                &self.health_start_interval,
            ),
        ] {
            if let Some(v) = value {
                let ns = crate::format::parse_go_duration(v)
                    .filter(|ns| *ns >= 0)
                    .ok_or_else(|| invalid(format!("invalid argument {v:?} for \"{flag}\" flag: time: invalid duration {v:?}")))?;
                h.insert(key.into(), json!(ns));
            }
        }
        if let Some(r) = self.health_retries {
            if r < 0 {
                return Err(invalid("--health-retries cannot be negative"));
            }
            h.insert("Retries".into(), json!(r));
        }
        Ok(Some(Value::Object(h)))
    }
}

/// Resource flags shared by `run`/`create` and `update`.
#[derive(Args, Debug, Default, Clone)]
pub struct Resources {
    /// Memory limit
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Number of CPUs
    #[arg(long)]
    pub cpus: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long = "cpu-quota", allow_negative_numbers = true)]
    pub cpu_quota: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
}

impl Resources {
    /// Adds the set limits to a HostConfig (or an update body) under the API's names.
    pub fn insert_into(&self, host: &mut Map<String, Value>) -> Result<()> {
        if let Some(m) = &self.memory {
            host.insert("Memory".into(), json!(ram_in_bytes(m)?));
        }
        if let Some(s) = &self.memory_swap {
            let swap = if s == "-1" { -1 } else { ram_in_bytes(s)? };
            host.insert("MemorySwap".into(), json!(swap));
        }
        if let Some(c) = &self.cpus {
            host.insert("NanoCpus".into(), json!(nano_cpus(c)?));
        }
        if let Some(v) = self.cpu_shares {
            host.insert("CpuShares".into(), json!(v));
        }
        if let Some(v) = self.cpu_quota {
            host.insert("CpuQuota".into(), json!(v));
        }
        if let Some(v) = self.cpu_period {
            host.insert("CpuPeriod".into(), json!(v));
        }
        insert_opt(host, "CpusetCpus", self.cpuset_cpus.as_deref());
        if let Some(v) = self.pids_limit {
            host.insert("PidsLimit".into(), json!(v));
        }
        Ok(())
    }
}

fn insert_opt(map: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(v) = value {
        map.insert(key.into(), json!(v));
    }
}

fn insert_list(map: &mut Map<String, Value>, key: &str, values: &[String]) {
    if !values.is_empty() {
        map.insert(key.into(), json!(values));
    }
}

/// `--env-file` lines first, then `-e`, as docker merges them (`run`, `create`, `exec`).
pub fn environment(files: &[PathBuf], env: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| invalid(format!("open {}: {e}", file.display())))?;
        out.extend(
            text.lines()
                .map(str::trim_start)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(env_entry),
        );
    }
    out.extend(env.iter().map(|e| env_entry(e)));
    Ok(out)
}

/// `NAME=value` as given; a bare `NAME` takes the value from our environment, and is
/// passed bare (unset) when we have none, as docker does.
fn env_entry(e: &str) -> String {
    if e.contains('=') {
        return e.to_string();
    }
    match std::env::var(e) {
        Ok(v) => format!("{e}={v}"),
        Err(_) => e.to_string(),
    }
}

/// `k=v` flags (labels, sysctls, log options) → a map; a bare key maps to "".
pub fn key_values(items: &[String], what: &str) -> Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|item| {
            let (k, v) = item.split_once('=').unwrap_or((item, ""));
            if k.is_empty() {
                return Err(invalid(format!("invalid {what}: {item:?}: empty key")));
            }
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

/// go-units' `RAMInBytes`: "64m", "1.5g", "512k", "100" (bytes); binary multiples,
/// optional "b"/"ib" suffix, case-insensitive.
pub fn ram_in_bytes(s: &str) -> Result<i64> {
    let bad = || invalid(format!("invalid size: '{s}'"));
    let t = s.trim();
    let digits = t
        .bytes()
        .take_while(|c| c.is_ascii_digit() || *c == b'.')
        .count();
    if digits == 0 {
        return Err(bad());
    }
    let value: f64 = t[..digits].parse().map_err(|_| bad())?;
    let unit = t[digits..].trim_start().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0_f64.powi(3),
        "t" => 1024.0_f64.powi(4),
        "p" => 1024.0_f64.powi(5),
        _ => return Err(bad()),
    };
    Ok((value * mult) as i64)
}

/// `--cpus 1.5` → 1_500_000_000 NanoCpus, exactly (decimal arithmetic, as docker's
/// big.Rat): more than 9 decimals is "too precise".
pub fn nano_cpus(s: &str) -> Result<i64> {
    let bad = || {
        invalid(format!("invalid argument \"{s}\" for \"--cpus\" flag: failed to parse {s} as a rational number"))
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|c| c.is_ascii_digit())
        || !frac.bytes().all(|c| c.is_ascii_digit())
    {
        return Err(bad());
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > 9 {
        return Err(invalid(format!(
            "invalid argument \"{s}\" for \"--cpus\" flag: value is too precise"
        )));
    }
    let int: i64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| bad())?
    };
    let frac_ns: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().map_err(|_| bad())?
    };
    int.checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(frac_ns))
        .ok_or_else(bad)
}

/// `--ulimit nofile=10:20` → {Name, Soft, Hard}; one number sets both.
pub fn parse_ulimit(s: &str) -> Result<Value> {
    let bad = || invalid(format!("invalid ulimit argument: {s}"));
    let (name, limits) = s.split_once('=').ok_or_else(bad)?;
    let (soft, hard) = limits.split_once(':').unwrap_or((limits, limits));
    let soft: i64 = soft.parse().map_err(|_| bad())?;
    let hard: i64 = hard.parse().map_err(|_| bad())?;
    if soft > hard && hard != -1 {
        return Err(invalid(format!(
            "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        )));
    }
    Ok(json!({"Name": name, "Soft": soft, "Hard": hard}))
}

/// `--restart no|always|unless-stopped|on-failure[:N]` → RestartPolicy.
pub fn restart_policy(s: &str) -> Result<Value> {
    let (name, count) = match s.split_once(':') {
        Some((n, c)) => (
            n,
            c.parse::<i64>().map_err(|_| {
                invalid(format!(
                    "invalid restart policy format: maximum retry count must be an integer: {s}"
                ))
            })?,
        ),
        None => (s, 0),
    };
    match name {
        "no" | "always" | "unless-stopped" if count == 0 => {}
        "on-failure" => {}
        "no" | "always" | "unless-stopped" => {
            return Err(invalid(format!(
                "invalid restart policy format: maximum retry count can only be used with 'on-failure': {s}"
            )))
        }
        _ => return Err(invalid(format!("invalid restart policy format: unknown policy '{name}'"))),
    }
    Ok(json!({"Name": name, "MaximumRetryCount": count}))
}

/// `-p [ip:][hostPort:]containerPort[/proto]` (ranges allowed) → ("80/tcp", binding)
/// pairs, one per container port, split and checked as docker's `nat.ParsePortSpec`
/// does, with its messages.
pub fn parse_ports(specs: &[String]) -> Result<Vec<(String, Value)>> {
    let mut out = Vec::new();
    for spec in specs {
        let (ip, host_port, container) = split_port_spec(spec);
        let (container, proto) = container.split_once('/').unwrap_or((container, ""));
        let ip = match ip.strip_prefix('[') {
            Some(bracketed) => bracketed
                .strip_suffix(']')
                .ok_or_else(|| invalid(format!("invalid IP address {ip}")))?,
            None => ip,
        };
        if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
            return Err(invalid(format!("invalid IP address: {ip}")));
        }
        let proto = match proto_or_tcp(container, proto) {
            "" => return Err(invalid(format!("no port specified: {spec}<empty>"))),
            p => p.to_ascii_lowercase(),
        };
        let (c_lo, c_hi) = port_range(container)
            .map_err(|_| invalid(format!("invalid containerPort: {container}")))?;
        let host_range = match host_port {
            "" => None,
            h => Some(port_range(h).map_err(|_| invalid(format!("invalid hostPort: {h}")))?),
        };
        if let Some((h_lo, h_hi)) = host_range {
            // A host range with a single container port is the range to pick one from.
            if h_hi - h_lo != c_hi - c_lo && c_lo != c_hi {
                return Err(invalid(format!(
                    "invalid ranges specified for container and host Ports: {container} and {host_port}"
                )));
            }
        }
        if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
            return Err(invalid(format!("invalid proto: {proto}")));
        }
        let count = c_hi - c_lo + 1;
        for i in 0..count {
            let host = match host_range {
                None => String::new(),
                Some((h_lo, h_hi)) if count == 1 && h_lo != h_hi => host_port.to_string(),
                Some((h_lo, _)) => (h_lo + i).to_string(),
            };
            out.push((
                format!("{}/{proto}", c_lo + i),
                json!({"HostIp": ip, "HostPort": host}),
            ));
        }
    }
    Ok(out)
}

/// docker's `splitParts`: the last field is the container port, the one before it the
/// host port, and everything before those (an IPv6 address has colons) the IP.
fn split_port_spec(spec: &str) -> (&str, &str, &str) {
    let mut fields = spec.rsplitn(3, ':');
    let container = fields.next().unwrap_or("");
    let host = fields.next().unwrap_or("");
    let ip = fields.next().unwrap_or("");
    (ip, host, container)
}

/// docker's `SplitProtoPort`: no port means no protocol; no protocol means tcp.
fn proto_or_tcp<'a>(port: &str, proto: &'a str) -> &'a str {
    match (port.is_empty(), proto.is_empty()) {
        (true, _) => "",
        (false, true) => "tcp",
        (false, false) => proto,
    }
}

/// docker's `ParsePortRange`: "80" or "8000-8002", 16-bit, low to high; 0 is allowed
/// (a host port the daemon picks). The error is Go's text.
fn port_range(s: &str) -> std::result::Result<(u32, u32), String> {
    if s.is_empty() {
        return Err("empty string specified for ports".into());
    }
    let (lo, hi) = s.split_once('-').unwrap_or((s, s));
    let (lo, hi) = (port_number(lo)?, port_number(hi)?);
    if hi < lo {
        return Err(format!("invalid range specified for port: {s}"));
    }
    Ok((lo.into(), hi.into()))
}

/// Go's `strconv.ParseUint(s, 10, 16)`, with its error text.
pub fn port_number(s: &str) -> std::result::Result<u16, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.ParseUint: parsing {s:?}: invalid syntax"));
    }
    s.parse()
        .map_err(|_| format!("strconv.ParseUint: parsing {s:?}: value out of range"))
}

/// `--expose 80[/proto]` or a range → the ports, as docker expands them.
fn expose_ports(spec: &str) -> Result<Vec<String>> {
    if spec.contains(':') {
        return Err(invalid(format!("invalid port format for --expose: {spec}")));
    }
    let (ports, proto) = spec.split_once('/').unwrap_or((spec, ""));
    let proto = proto_or_tcp(ports, proto);
    let (lo, hi) = port_range(ports).map_err(|e| {
        invalid(format!(
            "invalid range format for --expose: {spec}, error: {e}"
        ))
    })?;
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

/// `-v` specs → (Binds, anonymous volume paths). A spec with a source (host path or
/// volume name) is a bind as written; relative host paths become absolute, as docker
/// does; a lone container path is an anonymous volume.
pub fn parse_volumes(specs: &[String]) -> Result<(Vec<String>, Vec<String>)> {
    let mut binds = Vec::new();
    let mut volumes = Vec::new();
    for spec in specs {
        let parts: Vec<&str> = spec.split(':').collect();
        match parts.as_slice() {
            [dst] if dst.starts_with('/') => volumes.push(dst.to_string()),
            [src, dst, rest @ ..] if rest.len() <= 1 => {
                if !dst.starts_with('/') {
                    return Err(invalid(format!(
                        "invalid volume specification: '{spec}': invalid mount config for type \"bind\": invalid mount path: '{dst}' mount path must be absolute"
                    )));
                }
                if let Some(mode) = rest.first() {
                    check_volume_mode(spec, mode)?;
                }
                let src = absolute_source(src)?;
                let mut bind = format!("{src}:{dst}");
                if let Some(mode) = rest.first() {
                    bind.push(':');
                    bind.push_str(mode);
                }
                binds.push(bind);
            }
            _ => return Err(invalid(format!("invalid volume specification: '{spec}'"))),
        }
    }
    Ok((binds, volumes))
}

fn check_volume_mode(spec: &str, mode: &str) -> Result<()> {
    const MODES: &[&str] = &[
        "ro", "rw", "z", "Z", "nocopy", "shared", "rshared", "slave", "rslave", "private",
        "rprivate",
    ];
    if mode.split(',').all(|m| MODES.contains(&m)) {
        Ok(())
    } else {
        Err(invalid(format!(
            "invalid volume specification: '{spec}': invalid mode: {mode}"
        )))
    }
}

fn absolute_source(src: &str) -> Result<String> {
    if src.starts_with('.') {
        let cwd = std::env::current_dir().map_err(|e| invalid(e.to_string()))?;
        let joined = cwd.join(src);
        let mut clean = PathBuf::new();
        for c in joined.components() {
            match c {
                std::path::Component::CurDir => {}
                std::path::Component::ParentDir => {
                    clean.pop();
                }
                other => clean.push(other),
            }
        }
        return Ok(clean.to_string_lossy().into_owned());
    }
    Ok(src.to_string())
}

/// `--mount type=bind,source=/a,target=/b,readonly` → a Mount object.
pub fn parse_mount(spec: &str) -> Result<Value> {
    let mut mount = Map::new();
    let mut kind = "volume".to_string();
    let mut bind = Map::new();
    let mut tmpfs = Map::new();
    let mut volume = Map::new();
    for field in spec.split(',') {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim())),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        let need = || {
            value
                .ok_or_else(|| invalid(format!("invalid field '{field}' must be a key=value pair")))
        };
        let boolean = || match value {
            None | Some("1") | Some("true") => Ok(true),
            Some("0") | Some("false") => Ok(false),
            Some(v) => Err(invalid(format!("invalid value for {key}: {v}"))),
        };
        match key.as_str() {
            "type" => kind = need()?.to_string(),
            "source" | "src" => {
                mount.insert("Source".into(), json!(need()?));
            }
            "target" | "destination" | "dst" => {
                mount.insert("Target".into(), json!(need()?));
            }
            "readonly" | "ro" => {
                mount.insert("ReadOnly".into(), json!(boolean()?));
            }
            "consistency" => {
                mount.insert("Consistency".into(), json!(need()?));
            }
            "bind-propagation" => {
                bind.insert("Propagation".into(), json!(need()?));
            }
            "bind-recursive" => {
                if need()? == "disabled" {
                    bind.insert("NonRecursive".into(), json!(true));
                }
            }
            "volume-nocopy" => {
                volume.insert("NoCopy".into(), json!(boolean()?));
            }
            "volume-opt" | "volume-label" => {
                let (k, v) = need()?.split_once('=').ok_or_else(|| {
                    invalid(format!(
                        "invalid value for {key}: {} (want key=value)",
                        value.unwrap_or("")
                    ))
                })?;
                let (section, field) = if key == "volume-opt" {
                    ("DriverConfig", "Options")
                } else {
                    ("Labels", "")
                };
                let entry = volume.entry(section).or_insert_with(|| json!({}));
                let map = if field.is_empty() {
                    entry
                } else {
                    entry
                        .as_object_mut()
                        .expect("an object")
                        .entry(field)
                        .or_insert_with(|| json!({}))
                };
                map[k] = json!(v);
            }
            "tmpfs-size" => {
                tmpfs.insert("SizeBytes".into(), json!(ram_in_bytes(need()?)?));
            }
            "tmpfs-mode" => {
                let mode = u32::from_str_radix(need()?, 8).map_err(|_| {
                    invalid(format!("invalid value for {key}: {}", value.unwrap_or("")))
                })?;
                tmpfs.insert("Mode".into(), json!(mode));
            }
            _ => return Err(invalid(format!("unexpected key '{key}' in '{field}'"))),
        }
    }
    if !mount.contains_key("Target") {
        return Err(invalid("target is required"));
    }
    if kind == "bind" && !mount.contains_key("Source") {
        return Err(invalid("source is required when specifying bind mounts"));
    }
    match kind.as_str() {
        "bind" if !bind.is_empty() => {
            mount.insert("BindOptions".into(), Value::Object(bind));
        }
        "tmpfs" if !tmpfs.is_empty() => {
            mount.insert("TmpfsOptions".into(), Value::Object(tmpfs));
        }
        "volume" if !volume.is_empty() => {
            mount.insert("VolumeOptions".into(), Value::Object(volume));
        }
        "bind" | "tmpfs" | "volume" | "npipe" | "cluster" | "image" => {}
        other => return Err(invalid(format!("invalid mount type: {other}"))),
    }
    mount.insert("Type".into(), json!(kind));
    Ok(Value::Object(mount))
}

/// `--device /dev/x[:/dev/y][:rwm]` → {PathOnHost, PathInContainer, CgroupPermissions}.
pub fn parse_device(spec: &str) -> Result<Value> {
    let parts: Vec<&str> = spec.split(':').collect();
    let is_perm = |s: &str| !s.is_empty() && s.chars().all(|c| "rwm".contains(c));
    let (host, container, perms) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, p] if is_perm(p) => (*h, *h, *p),
        [h, c] => (*h, *c, "rwm"),
        [h, c, p] if is_perm(p) => (*h, *c, *p),
        _ => return Err(invalid(format!("invalid device specification: {spec}"))),
    };
    if !container.starts_with('/') {
        return Err(invalid(format!("{container} is not an absolute path")));
    }
    Ok(json!({"PathOnHost": host, "PathInContainer": container, "CgroupPermissions": perms}))
}

/// `--add-host name:ip` (or docker 25's `name=ip`) → "name:ip".
fn normalize_host(s: &str) -> Result<String> {
    let (name, ip) = s
        .split_once('=')
        .or_else(|| s.split_once(':'))
        .ok_or_else(|| invalid(format!("bad format for add-host: \"{s}\"")))?;
    if name.is_empty() || ip.is_empty() {
        return Err(invalid(format!("bad format for add-host: \"{s}\"")));
    }
    Ok(format!("{name}:{ip}"))
}

/// `--security-opt seccomp=FILE` sends the profile's contents, as docker does; the other
/// options go as written.
fn security_opt(s: &str) -> Result<String> {
    if let Some(path) = s
        .strip_prefix("seccomp=")
        .or_else(|| s.strip_prefix("seccomp:"))
    {
        if path != "unconfined" && path != "builtin" {
            let text = std::fs::read(path)
                .map_err(|e| invalid(format!("opening seccomp profile ({path}) failed: {e}")))?;
            let profile: Value = serde_json::from_slice(&text).map_err(|e| {
                invalid(format!(
                    "compacting json for seccomp profile ({path}) failed: {e}"
                ))
            })?;
            return Ok(format!("seccomp={profile}"));
        }
    }
    if s == "no-new-privileges" {
        return Ok("no-new-privileges=true".into());
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    #[command(disable_help_flag = true)]
    struct Cli {
        #[command(flatten)]
        opts: ContainerOpts,
    }

    fn body(args: &[&str]) -> Value {
        let cli = Cli::try_parse_from(std::iter::once("run").chain(args.iter().copied())).unwrap();
        cli.opts
            .create_request("busybox", &["sh".into()], true)
            .unwrap()
            .body
    }

    #[test]
    fn flags_become_the_create_body() {
        let b = body(&[
            "-v",
            "/a:/b:ro",
            "--cpus",
            "1.5",
            "-m",
            "64m",
            "--ulimit",
            "nofile=10:20",
            "-p",
            "8080:80/tcp",
            "--restart",
            "on-failure:3",
            "-e",
            "A=1",
            "-l",
            "k=v",
            "-it",
            "--pids-limit",
            "-1",
            "--memory-swap",
            "-1",
            "--tmpfs",
            "/run:size=1m",
            "-h",
            "box",
            "--name",
            "web",
        ]);
        let h = &b["HostConfig"];
        assert_eq!(h["Binds"], json!(["/a:/b:ro"]));
        assert_eq!(h["NanoCpus"], json!(1_500_000_000));
        assert_eq!(h["Memory"], json!(67_108_864));
        assert_eq!(h["MemorySwap"], json!(-1));
        assert_eq!(h["PidsLimit"], json!(-1));
        assert_eq!(
            h["Ulimits"],
            json!([{"Name": "nofile", "Soft": 10, "Hard": 20}])
        );
        assert_eq!(
            h["PortBindings"],
            json!({"80/tcp": [{"HostIp": "", "HostPort": "8080"}]})
        );
        assert_eq!(
            h["RestartPolicy"],
            json!({"Name": "on-failure", "MaximumRetryCount": 3})
        );
        assert_eq!(h["Tmpfs"], json!({"/run": "size=1m"}));
        assert_eq!(h["NetworkMode"], json!("default"));
        assert_eq!(b["ExposedPorts"], json!({"80/tcp": {}}));
        assert_eq!(b["Env"], json!(["A=1"]));
        assert_eq!(b["Labels"], json!({"k": "v"}));
        assert_eq!(b["Hostname"], json!("box"));
        assert_eq!(b["Image"], json!("busybox"));
        assert_eq!(b["Cmd"], json!(["sh"]));
        assert_eq!(
            (
                &b["Tty"],
                &b["OpenStdin"],
                &b["AttachStdin"],
                &b["StdinOnce"]
            ),
            (&json!(true), &json!(true), &json!(true), &json!(true))
        );
    }

    #[test]
    fn detached_containers_attach_nothing() {
        let cli = Cli::try_parse_from(["run", "-i"]).unwrap();
        let b = cli.opts.create_request("x", &[], false).unwrap().body;
        assert_eq!(b["AttachStdout"], json!(false));
        assert_eq!(b["AttachStdin"], json!(false));
        assert_eq!(b["OpenStdin"], json!(true));
        assert!(b.get("Cmd").is_none());
    }

    #[test]
    fn sizes_and_cpus_parse_as_docker() {
        assert_eq!(ram_in_bytes("64m"), Ok(64 << 20));
        assert_eq!(ram_in_bytes("1.5g"), Ok(1_610_612_736));
        assert_eq!(ram_in_bytes("512KiB"), Ok(512 << 10));
        assert_eq!(ram_in_bytes("100"), Ok(100));
        assert!(ram_in_bytes("lots").is_err());
        assert_eq!(nano_cpus("1.5"), Ok(1_500_000_000));
        assert_eq!(nano_cpus("0.000000001"), Ok(1));
        assert_eq!(nano_cpus(".5"), Ok(500_000_000));
        assert!(nano_cpus("0.0000000001").is_err());
        assert!(nano_cpus("two").is_err());
    }

    #[test]
    fn ulimits_restart_policies_and_ports() {
        assert_eq!(
            parse_ulimit("nproc=5").unwrap(),
            json!({"Name": "nproc", "Soft": 5, "Hard": 5})
        );
        assert!(parse_ulimit("nofile=20:10").is_err());
        assert!(parse_ulimit("nofile").is_err());
        assert_eq!(
            restart_policy("always").unwrap(),
            json!({"Name": "always", "MaximumRetryCount": 0})
        );
        assert!(restart_policy("always:3").is_err());
        assert!(restart_policy("sometimes").is_err());
        let ports = parse_ports(&[
            "127.0.0.1:8000-8001:80-81/udp".into(),
            "[::1]:9000:90".into(),
            "53".into(),
        ])
        .unwrap();
        assert_eq!(
            ports,
            vec![
                (
                    "80/udp".to_string(),
                    json!({"HostIp": "127.0.0.1", "HostPort": "8000"})
                ),
                (
                    "81/udp".to_string(),
                    json!({"HostIp": "127.0.0.1", "HostPort": "8001"})
                ),
                (
                    "90/tcp".to_string(),
                    json!({"HostIp": "::1", "HostPort": "9000"})
                ),
                ("53/tcp".to_string(), json!({"HostIp": "", "HostPort": ""})),
            ]
        );
        let ports = parse_ports(&[
            "127.0.0.1:0:80".into(),
            "8000-8002:80".into(),
            "127.0.0.1::90/UDP".into(),
        ])
        .unwrap();
        assert_eq!(
            ports,
            vec![
                (
                    "80/tcp".to_string(),
                    json!({"HostIp": "127.0.0.1", "HostPort": "0"})
                ),
                (
                    "80/tcp".to_string(),
                    json!({"HostIp": "", "HostPort": "8000-8002"})
                ),
                (
                    "90/udp".to_string(),
                    json!({"HostIp": "127.0.0.1", "HostPort": ""})
                ),
            ]
        );
        for (spec, error) in [
            (
                "1-3:80-81",
                "invalid ranges specified for container and host Ports: 80-81 and 1-3",
            ),
            ("x:y", "invalid containerPort: y"),
            ("127.0.0.1:80", "invalid hostPort: 127.0.0.1"),
            ("70000", "invalid containerPort: 70000"),
            ("1.2.3:80:80", "invalid IP address: 1.2.3"),
            ("80/xyz", "invalid proto: xyz"),
            ("/udp", "no port specified: /udp<empty>"),
        ] {
            assert_eq!(
                parse_ports(&[spec.into()]),
                Err(OptsError(error.into())),
                "{spec}"
            );
        }
        assert_eq!(
            expose_ports("abc"),
            Err(OptsError(
                "invalid range format for --expose: abc, error: strconv.ParseUint: parsing \"abc\": invalid syntax".into()
            ))
        );
        assert_eq!(
            expose_ports("7000-7001/udp").unwrap(),
            ["7000/udp", "7001/udp"]
        );
    }

    #[test]
    fn volumes_mounts_and_devices() {
        let (binds, vols) =
            parse_volumes(&["/a:/b:ro".into(), "/anon".into(), "named:/data".into()]).unwrap();
        assert_eq!(binds, vec!["/a:/b:ro", "named:/data"]);
        assert_eq!(vols, vec!["/anon"]);
        assert!(parse_volumes(&["/a:b".into()]).is_err());
        assert!(parse_volumes(&["/a:/b:bogus".into()]).is_err());
        assert_eq!(
            parse_mount("type=bind,source=/a,target=/b,readonly").unwrap(),
            json!({"Type": "bind", "Source": "/a", "Target": "/b", "ReadOnly": true})
        );
        assert_eq!(
            parse_mount("type=tmpfs,dst=/t,tmpfs-size=64m,tmpfs-mode=1770").unwrap(),
            json!({"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 67_108_864, "Mode": 0o1770}})
        );
        assert!(parse_mount("type=bind,target=/b").is_err());
        assert_eq!(
            parse_device("/dev/fuse:r").unwrap(),
            json!({"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "r"})
        );
        assert_eq!(
            parse_device("/dev/a:/dev/b").unwrap()["PathInContainer"],
            json!("/dev/b")
        );
    }

    #[test]
    fn healthchecks_and_entrypoints() {
        let b = body(&[
            "--health-cmd",
            "true",
            "--health-interval",
            "30s",
            "--health-retries",
            "3",
            "--health-start-interval",
            "2s",
            "--entrypoint",
            "",
        ]);
        assert_eq!(
            b["Healthcheck"],
            json!({"Test": ["CMD-SHELL", "true"], "Interval": 30_000_000_000i64,
                   "StartInterval": 2_000_000_000i64, "Retries": 3})
        );
        assert_eq!(b["Entrypoint"], json!([]));
        assert_eq!(
            body(&["--no-healthcheck"])["Healthcheck"],
            json!({"Test": ["NONE"]})
        );
        let cli = Cli::try_parse_from(["run", "--no-healthcheck", "--health-cmd", "x"]).unwrap();
        assert!(cli.opts.create_request("x", &[], true).is_err());
    }

    #[test]
    fn several_networks_get_an_endpoint_each() {
        let b = body(&[
            "--network",
            "front",
            "--network",
            "back",
            "--network-alias",
            "web",
        ]);
        assert_eq!(b["HostConfig"]["NetworkMode"], "front");
        let endpoints = &b["NetworkingConfig"]["EndpointsConfig"];
        assert_eq!(endpoints["front"]["Aliases"], json!(["web"]));
        assert_eq!(endpoints["back"], json!({}));
        let cli = Cli::try_parse_from(["run", "--network", "front", "--network", "host"]).unwrap();
        let err = cli.opts.create_request("busybox", &[], true).unwrap_err();
        assert!(err.0.contains("cannot attach both"), "{err:?}");
    }

    #[test]
    fn user_networks_get_an_endpoint() {
        let b = body(&["--network", "mynet", "--add-host", "db=10.0.0.2"]);
        assert_eq!(b["HostConfig"]["NetworkMode"], json!("mynet"));
        assert_eq!(
            b["NetworkingConfig"],
            json!({"EndpointsConfig": {"mynet": {}}})
        );
        assert_eq!(b["HostConfig"]["ExtraHosts"], json!(["db:10.0.0.2"]));
        assert!(body(&["--network", "host"])
            .get("NetworkingConfig")
            .is_none());
        let b = body(&[
            "--network",
            "mynet",
            "--network-alias",
            "a",
            "--network-alias",
            "b",
            "--ip",
            "10.1.0.5",
            "-P",
        ]);
        assert_eq!(
            b["NetworkingConfig"],
            json!({"EndpointsConfig": {"mynet": {"Aliases": ["a", "b"], "IPAMConfig": {"IPv4Address": "10.1.0.5"}}}})
        );
        assert_eq!(b["HostConfig"]["PublishAllPorts"], json!(true));
        // An address on a built-in network is the daemon's to refuse; an alias is ours.
        assert_eq!(
            body(&["--ip", "10.1.0.5"])["NetworkingConfig"],
            json!({"EndpointsConfig": {"default": {"IPAMConfig": {"IPv4Address": "10.1.0.5"}}}})
        );
        let cli =
            Cli::try_parse_from(["run", "--network", "host", "--network-alias", "a"]).unwrap();
        assert_eq!(
            cli.opts.create_request("x", &[], true).unwrap_err(),
            OptsError("network-scoped aliases are only supported for user-defined networks".into())
        );
    }
}

/// `image prune`, `volume prune` and `system prune`, whose commands word `-a` and
/// `--filter` each their own way (`mut_arg` where they are declared).
#[derive(Args, Debug)]
pub struct PruneAllArgs {
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(long = "filter", action = ArgAction::Append)]
    pub filter: Vec<String>,
}
