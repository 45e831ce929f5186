//! The OCI runtime config (config.json) for a container, made from its Docker `Config`
//! and `HostConfig` as dockerd would: Docker's default capabilities, seccomp profile,
//! masked paths, mounts and /etc files, and the resources asked for.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use serde_json::{json, Value};

use super::record::{HostConfig, MountKind, Record, Resources};
use super::user::User;
use super::ContainerError;

/// What a container's config.json is made from besides its record.
pub struct SpecInputs<'a> {
    pub record: &'a Record,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: User,
    /// The container's overlay mount.
    pub rootfs: &'a Path,
    /// Where its /etc/hostname, /etc/hosts and /etc/resolv.conf are.
    pub etc_dir: &'a Path,
    pub cgroup_path: String,
    /// tini, bind-mounted as /sbin/docker-init for `--init`.
    pub init_binary: Option<&'a Path>,
    /// The network namespace to join (made by the engine, or another container's);
    /// `None` with `--network host`.
    pub netns: Option<&'a Path>,
}

/// 64 MiB, Docker's default /dev/shm size.
const DEFAULT_SHM_SIZE: i64 = 64 << 20;

const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

pub fn build(inputs: &SpecInputs) -> Result<Value, ContainerError> {
    let record = inputs.record;
    let host = &record.host_config;
    let privileged = host.privileged;
    let capabilities = capabilities(host)?;
    let mut args: Vec<String> = std::iter::once(record.path.clone())
        .chain(record.args.iter().cloned())
        .collect();
    let mut mounts = default_mounts(host, inputs.etc_dir);
    if host.init.unwrap_or(false) {
        let init = inputs.init_binary.ok_or_else(|| {
            ContainerError::InvalidConfig(
                "--init needs tini (/usr/bin/tini-static): apt-get install tini".into(),
            )
        })?;
        mounts.push(bind(
            &init.display().to_string(),
            "/sbin/docker-init",
            true,
            "rprivate",
        ));
        args.splice(0..0, ["/sbin/docker-init".to_string(), "--".to_string()]);
    }
    mounts.extend(user_mounts(record));
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    if let Some(path) = inputs.netns {
        namespaces.push(json!({"type": "network", "path": path}));
    }
    let mut linux = json!({
        "namespaces": namespaces,
        "cgroupsPath": inputs.cgroup_path,
        "resources": resources(host),
        "sysctl": host.sysctls.clone().unwrap_or_default(),
        "devices": devices(host)?,
    });
    if !privileged {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
    }
    if let Some(seccomp) = seccomp(host, &capabilities)? {
        linux["seccomp"] = seccomp;
    }
    let user = &inputs.user;
    let config = &record.config;
    let mut spec = json!({
        "ociVersion": "1.2.0",
        "process": {
            "terminal": config.tty,
            "user": {
                "uid": user.uid,
                "gid": user.gid,
                "additionalGids": user.additional_gids,
            },
            "args": args,
            "env": inputs.env,
            "cwd": inputs.cwd,
            "capabilities": {
                "bounding": capabilities,
                "effective": capabilities,
                "permitted": capabilities,
            },
            "rlimits": rlimits(host)?,
            "noNewPrivileges": no_new_privileges(host),
            "oomScoreAdj": host.oom_score_adj,
        },
        "root": {"path": inputs.rootfs, "readonly": host.readonly_rootfs},
        "hostname": hostname(record),
        "domainname": config.domainname,
        "mounts": mounts,
        "linux": linux,
    });
    set_console_size(&mut spec["process"], host.console_size);
    Ok(spec)
}

/// The pty's size from the start, when the client gave its terminal's: a shell's first
/// prompt must not race the client's first resize (why API 1.42 added ConsoleSize).
pub fn set_console_size(process: &mut Value, [height, width]: [u32; 2]) {
    if process["terminal"] == json!(true) && height > 0 && width > 0 {
        process["consoleSize"] = json!({"height": height, "width": width});
    }
}

/// The container's hostname: `--hostname`, else its short ID, as Docker.
pub fn hostname(record: &Record) -> String {
    if record.config.hostname.is_empty() {
        record.short_id().to_string()
    } else {
        record.config.hostname.clone()
    }
}

fn bind(source: &str, destination: &str, read_only: bool, propagation: &str) -> Value {
    let propagation = if propagation.is_empty() {
        "rprivate"
    } else {
        propagation
    };
    let mut options = vec!["rbind", propagation];
    if read_only {
        options.push("ro");
    }
    json!({"destination": destination, "type": "bind", "source": source, "options": options})
}

fn tmpfs(destination: &str, options: &[&str]) -> Value {
    json!({"destination": destination, "type": "tmpfs", "source": "tmpfs", "options": options})
}

/// The mounts every Docker container has, and its /etc files.
fn default_mounts(host: &HostConfig, etc_dir: &Path) -> Vec<Value> {
    let shm_size = if host.shm_size > 0 {
        host.shm_size
    } else {
        DEFAULT_SHM_SIZE
    };
    let sys_mode = if host.privileged { "rw" } else { "ro" };
    let etc = |name: &str| etc_dir.join(name).display().to_string();
    vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc",
               "options": ["nosuid", "noexec", "nodev"]}),
        tmpfs(
            "/dev",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", sys_mode]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
               "options": ["nosuid", "noexec", "nodev", "relatime", sys_mode]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        tmpfs(
            "/dev/shm",
            &[
                "nosuid",
                "noexec",
                "nodev",
                "mode=1777",
                &format!("size={shm_size}"),
            ],
        ),
        bind(&etc("resolv.conf"), "/etc/resolv.conf", false, "rprivate"),
        bind(&etc("hostname"), "/etc/hostname", false, "rprivate"),
        bind(&etc("hosts"), "/etc/hosts", false, "rprivate"),
    ]
}

/// The mount points resolved at create (see [`super::mounts`]) and `--tmpfs dst[:opts]`.
fn user_mounts(record: &Record) -> Vec<Value> {
    let mut mounts: Vec<Value> = record
        .mount_points
        .iter()
        .map(|m| match m.kind {
            MountKind::Bind | MountKind::Volume => {
                bind(&m.source, &m.destination, m.read_only, &m.propagation)
            }
            MountKind::Tmpfs => {
                let mut opts = vec!["nosuid", "nodev", "noexec"];
                opts.extend(m.tmpfs_options.iter().map(String::as_str));
                if m.read_only {
                    opts.push("ro");
                }
                tmpfs(&m.destination, &opts)
            }
        })
        .collect();
    for (destination, options) in record.host_config.tmpfs.iter().flatten() {
        let mut opts = vec!["nosuid", "nodev", "noexec"];
        opts.extend(options.split(',').filter(|o| !o.is_empty()));
        mounts.push(tmpfs(destination, &opts));
    }
    mounts
}

fn invalid(message: String) -> ContainerError {
    ContainerError::InvalidConfig(message)
}

/// Docker's default set, `--cap-add`, `--cap-drop` (either may say ALL), or every
/// capability with `--privileged`.
fn capabilities(host: &HostConfig) -> Result<Vec<String>, ContainerError> {
    let all: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    if host.privileged {
        return Ok(sorted(all));
    }
    let normalise = |name: &String| -> Result<String, ContainerError> {
        let upper = name.to_ascii_uppercase();
        let full = if upper.starts_with("CAP_") || upper == "ALL" {
            upper
        } else {
            format!("CAP_{upper}")
        };
        if full != "ALL" && !all.contains(&full) {
            return Err(invalid(format!("unknown capability: {name:?}")));
        }
        Ok(full)
    };
    let add: Vec<String> = host
        .cap_add
        .iter()
        .flatten()
        .map(normalise)
        .collect::<Result<_, _>>()?;
    let drop: Vec<String> = host
        .cap_drop
        .iter()
        .flatten()
        .map(normalise)
        .collect::<Result<_, _>>()?;
    let mut set: Vec<String> = if drop.iter().any(|c| c == "ALL") {
        Vec::new()
    } else {
        kapsel_seccomp::DOCKER_DEFAULT_CAPABILITIES
            .iter()
            .map(|c| c.to_string())
            .filter(|c| !drop.contains(c))
            .collect()
    };
    if add.iter().any(|c| c == "ALL") {
        set = all.into_iter().filter(|c| !drop.contains(c)).collect();
    } else {
        set.extend(add);
    }
    Ok(sorted(set))
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

fn no_new_privileges(host: &HostConfig) -> bool {
    host.security_opt.iter().flatten().any(|o| {
        o == "no-new-privileges" || o == "no-new-privileges:true" || o == "no-new-privileges=true"
    })
}

/// Docker's default seccomp profile for the container's capabilities, none with
/// `--privileged` or `seccomp=unconfined`, or the profile the CLI sent
/// (`--security-opt seccomp=file.json` arrives as `seccomp=<the JSON>`).
fn seccomp(host: &HostConfig, capabilities: &[String]) -> Result<Option<Value>, ContainerError> {
    let chosen = host.security_opt.iter().flatten().find_map(|o| {
        o.strip_prefix("seccomp=")
            .or_else(|| o.strip_prefix("seccomp:"))
    });
    let seccomp = match chosen {
        _ if host.privileged => return Ok(None),
        Some("unconfined") => return Ok(None),
        Some(profile) => kapsel_seccomp::from_docker_profile(profile, capabilities),
        None => return docker_default_seccomp(capabilities).map(Some),
    }
    .map_err(|e| invalid(format!("seccomp profile: {e}")))?;
    Ok(Some(
        serde_json::to_value(seccomp).expect("seccomp serialises"),
    ))
}

/// Docker's default profile for a capability set, converted once per set: it depends only
/// on the set and the host, and converting it (parsing Docker's JSON) is not work a
/// container start should repeat.
fn docker_default_seccomp(capabilities: &[String]) -> Result<Value, ContainerError> {
    static CONVERTED: Mutex<BTreeMap<Vec<String>, Value>> = Mutex::new(BTreeMap::new());
    let mut converted = CONVERTED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(found) = converted.get(capabilities) {
        return Ok(found.clone());
    }
    let seccomp = kapsel_seccomp::docker_default(capabilities)
        .map_err(|e| invalid(format!("seccomp profile: {e}")))?;
    let value = serde_json::to_value(seccomp).expect("seccomp serialises");
    converted.insert(capabilities.to_vec(), value.clone());
    Ok(value)
}

fn rlimits(host: &HostConfig) -> Result<Vec<Value>, ContainerError> {
    host.ulimits
        .iter()
        .flatten()
        .map(|u| {
            let name = u.name.to_ascii_uppercase().replace('-', "");
            let kind = match name.as_str() {
                "NOFILE" | "NPROC" | "CORE" | "CPU" | "DATA" | "FSIZE" | "LOCKS" | "MEMLOCK"
                | "MSGQUEUE" | "NICE" | "RTPRIO" | "RTTIME" | "SIGPENDING" | "STACK" | "AS"
                | "RSS" => format!("RLIMIT_{name}"),
                _ => return Err(invalid(format!("invalid ulimit type: {}", u.name))),
            };
            Ok(json!({"type": kind, "soft": u.soft, "hard": u.hard}))
        })
        .collect()
}

/// `linux.resources`: memory, CPU, pids and block I/O limits; every device denied but
/// those the runtime always allows and `--device` adds.
fn resources(host: &HostConfig) -> Value {
    let mut r = limits(&host.resources);
    let memory = &host.resources;
    if memory.memory > 0 && memory.memory_swap == 0 {
        // Docker: without --memory-swap, swap may be as large as memory (limit × 2).
        r["memory"]["swap"] = json!(memory.memory * 2);
    }
    let mut devices = vec![json!({"allow": host.privileged, "access": "rwm"})];
    for d in host.devices.iter().flatten() {
        if let Ok((kind, major, minor)) = device_numbers(&d.path_on_host) {
            let access = if d.cgroup_permissions.is_empty() {
                "rwm"
            } else {
                &d.cgroup_permissions
            };
            devices.push(
                json!({"allow": true, "type": kind, "major": major, "minor": minor,
                                "access": access}),
            );
        }
    }
    r["devices"] = json!(devices);
    r
}

/// The limits of `linux.resources` (memory, CPU, pids, block I/O), only those that are
/// set: what a start writes, and what `kapsel-runtime update -r` gets for `docker update`
/// (the container's whole set, as dockerd passes it; devices left alone).
pub fn limits(h: &Resources) -> Value {
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

/// `--device /dev/host[:/dev/container[:rwm]]` as `linux.devices` entries.
fn devices(host: &HostConfig) -> Result<Vec<Value>, ContainerError> {
    host.devices
        .iter()
        .flatten()
        .map(|d| {
            let (kind, major, minor) = device_numbers(&d.path_on_host)?;
            let path = if d.path_in_container.is_empty() {
                &d.path_on_host
            } else {
                &d.path_in_container
            };
            Ok(
                json!({"path": path, "type": kind, "major": major, "minor": minor,
                      "fileMode": 0o666, "uid": 0, "gid": 0}),
            )
        })
        .collect()
}

fn device_numbers(path: &str) -> Result<(&'static str, u64, u64), ContainerError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(path).map_err(|e| {
        invalid(format!(
            "error gathering device information while adding custom device {path:?}: {e}"
        ))
    })?;
    let kind = if meta.file_type().is_char_device() {
        "c"
    } else if meta.file_type().is_block_device() {
        "b"
    } else {
        return Err(invalid(format!("{path} is not a device")));
    };
    let rdev = meta.rdev();
    Ok((kind, libc::major(rdev) as u64, libc::minor(rdev) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(json: Value) -> HostConfig {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn capabilities_follow_dockers_rules() {
        let default = capabilities(&host(json!({}))).unwrap();
        assert_eq!(
            default.len(),
            kapsel_seccomp::DOCKER_DEFAULT_CAPABILITIES.len()
        );
        let changed = capabilities(&host(
            json!({"CapAdd": ["NET_ADMIN"], "CapDrop": ["chown"]}),
        ))
        .unwrap();
        assert!(changed.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!changed.contains(&"CAP_CHOWN".to_string()));
        let only = capabilities(&host(json!({"CapDrop": ["ALL"], "CapAdd": ["KILL"]}))).unwrap();
        assert_eq!(only, vec!["CAP_KILL"]);
        assert!(capabilities(&host(json!({"CapAdd": ["NOPE"]}))).is_err());
    }

    #[test]
    fn resources_convert_dockers_units() {
        let r = resources(&host(
            json!({"Memory": 64 << 20, "NanoCpus": 1_500_000_000i64,
                                       "PidsLimit": 50}),
        ));
        assert_eq!(r["memory"]["limit"], json!(64 << 20));
        assert_eq!(r["memory"]["swap"], json!(128 << 20));
        assert_eq!(r["cpu"]["quota"], json!(150_000));
        assert_eq!(r["cpu"]["period"], json!(100_000));
        assert_eq!(r["pids"]["limit"], json!(50));
    }
}
