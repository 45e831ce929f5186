//! The daemon's configuration and its listening sockets.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

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
