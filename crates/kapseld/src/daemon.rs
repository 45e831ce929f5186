//! The daemon's configuration and its listening sockets.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::containers::supervisor::Programs;
use crate::containers::{parse_size, EngineConfig};

/// What `kapseld` was started with (dockerd's flags).
#[derive(Clone, Debug)]
pub struct DaemonConfig {
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub hosts: Vec<String>,
    pub pidfile: Option<PathBuf>,
}

/// The unix socket path of a `-H` value (`unix:///run/kapsel.sock` or a bare path).
pub fn socket_path(host: &str) -> Result<PathBuf> {
    let path = host.strip_prefix("unix://").unwrap_or(host);
    if host.contains("://") && !host.starts_with("unix://") {
        bail!("-H {host}: only unix:// sockets are supported");
    }
    if !Path::new(path).is_absolute() {
        bail!("-H {host}: the socket path must be absolute");
    }
    Ok(PathBuf::from(path))
}

/// Binds a unix listener at `path`, replacing a stale socket file left by a daemon that
/// died, but never a socket another daemon still answers on.
pub fn bind(path: &Path) -> Result<tokio::net::UnixListener> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!(
                "{} is in use by another daemon: stop it or use another -H",
                path.display()
            );
        }
        std::fs::remove_file(path).with_context(|| format!("removing stale {}", path.display()))?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    tokio::net::UnixListener::bind(path).with_context(|| format!("listening on {}", path.display()))
}

/// The data root dockerd-style defaults are derived from.
const DEFAULT_DATA_ROOT: &str = "/var/lib/kapsel";

/// Unix socket paths are limited to 107 bytes: the longest kapseld makes is an exec's
/// console socket, `<exec-root>/<12>/e-<12>/console.sock`.
const LONGEST_SOCKET_SUFFIX: usize = "/0123456789ab/e-0123456789ab/console.sock".len();

/// Log rotation by default (Docker's json-file has none; its `local` driver keeps 5 × 20 MB).
const DEFAULT_LOG_MAX_SIZE: u64 = 20_000_000;
const DEFAULT_LOG_MAX_FILE: u32 = 5;

/// What the container engine needs from the daemon's flags.
pub fn engine_config(
    config: &DaemonConfig,
    cgroup_parent: Option<String>,
    log_opts: &[String],
) -> Result<EngineConfig> {
    let exec_root_len = config.exec_root.as_os_str().len();
    if exec_root_len + LONGEST_SOCKET_SUFFIX > 107 {
        bail!(
            "--exec-root {} is too long for unix socket paths: use at most {} bytes",
            config.exec_root.display(),
            107 - LONGEST_SOCKET_SUFFIX
        );
    }
    let (mut log_max_size, mut log_max_file) = (DEFAULT_LOG_MAX_SIZE, DEFAULT_LOG_MAX_FILE);
    for opt in log_opts {
        match opt.split_once('=') {
            Some(("max-size", v)) => {
                log_max_size =
                    parse_size(v).with_context(|| format!("--log-opt {opt}: not a size"))?
            }
            Some(("max-file", v)) => {
                log_max_file = v
                    .parse()
                    .with_context(|| format!("--log-opt {opt}: not a number"))?
            }
            _ => bail!("--log-opt {opt}: only max-size=SIZE and max-file=N are known"),
        }
    }
    Ok(EngineConfig {
        data_root: config.data_root.clone(),
        exec_root: config.exec_root.clone(),
        programs: Programs {
            runtime: helper_program("kapsel-runtime")?,
            shim: helper_program("kapsel-shim")?,
            runtime_root: config.exec_root.join("runtime"),
        },
        cgroup_parent: cgroup_parent.unwrap_or_else(|| default_cgroup_parent(&config.data_root)),
        init_binary: ["/usr/bin/tini-static", "/usr/bin/docker-init"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists()),
        log_max_size,
        log_max_file,
    })
}

/// `kapsel` for the default data root, else `kapsel-<hash of the data root>`: two
/// daemons with different data roots never share a cgroup.
fn default_cgroup_parent(data_root: &Path) -> String {
    match instance_hash(data_root) {
        None => "kapsel".into(),
        Some(hash) => format!("kapsel-{hash:08x}"),
    }
}

/// A short stable hash of a data root other than the default one, which names this
/// instance's host-wide objects (cgroup parent, nftables table, default bridge).
fn instance_hash(data_root: &Path) -> Option<u32> {
    if data_root == Path::new(DEFAULT_DATA_ROOT) {
        return None;
    }
    // FNV-1a: a short stable name, not a security property.
    let hash = data_root
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
        });
    Some(hash as u32)
}

/// The names of this instance's network objects: `kapsel` / `kapsel0` for the default
/// data root, `kapsel-<hash>` / `ks<hash>` otherwise (interface names are ≤ 15 bytes).
pub fn network_instance(data_root: &Path) -> crate::networks::Instance {
    match instance_hash(data_root) {
        None => crate::networks::Instance {
            table: "kapsel".into(),
            default_bridge: "kapsel0".into(),
            log_group: 0x6b70,
        },
        Some(hash) => crate::networks::Instance {
            table: format!("kapsel-{hash:08x}"),
            default_bridge: format!("ks{hash:08x}"),
            log_group: (hash >> 16) as u16 | 1,
        },
    }
}

/// A kapsel program installed next to kapseld, else found on PATH.
fn helper_program(name: &str) -> Result<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(name)))
        .filter(|p| p.exists());
    let on_path = || {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join(name))
                .find(|p| p.exists())
        })
    };
    beside.or_else(on_path).with_context(|| {
        format!(
            "{name} is neither next to kapseld nor on PATH: install kapsel (scripts/quickstart.sh)"
        )
    })
}

/// Removes `/<parent>` from every cgroup hierarchy where it is empty.
pub fn remove_empty_cgroup(parent: &str) {
    let root = Path::new("/sys/fs/cgroup");
    let _ = std::fs::remove_dir(root.join(parent));
    if let Ok(entries) = std::fs::read_dir(root) {
        for entry in entries.flatten() {
            let _ = std::fs::remove_dir(entry.path().join(parent));
        }
    }
}
