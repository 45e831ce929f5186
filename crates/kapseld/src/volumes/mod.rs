//! Volumes of the `local` driver, as dockerd keeps them: `<data-root>/volumes/<name>/`
//! holds `volume.json` (name, creation time, labels, driver options) and `_data`, the
//! directory containers mount. A volume is made in a staging directory and renamed into
//! place, and removed by renaming it away first, so a daemon killed at any moment leaves
//! each volume whole or absent; nothing but [`Volumes::remove`] deletes one.
//!
//! Driver options (`-o type=tmpfs|none,o=…,device=…`) are mounted over `_data` while a
//! container uses the volume and unmounted when the last one stops, as dockerd does: a
//! tmpfs volume's data lasts as long as its containers run.

pub mod local;

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The label dockerd (since 23) gives anonymous volumes; `volume prune` without `--all`
/// removes only volumes that carry it.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

const META_FILE: &str = "volume.json";
const DATA_DIR: &str = "_data";
/// Prefixes of the staging and removal directories (volume names never start with '.').
const STAGING: &str = ".new-";
const REMOVING: &str = ".removing-";

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("get {0}: no such volume")]
    NotFound(String),
    #[error(
        "create {0}: \"{0}\" includes invalid characters for a local volume name, only \
         \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, \
         use absolute path"
    )]
    InvalidName(String),
    #[error("remove {name}: volume is in use - [{}]", users.join(", "))]
    InUse { name: String, users: Vec<String> },
    #[error("create {name}: {message}")]
    InvalidOptions { name: String, message: String },
    #[error("volume driver {0:?} is not supported: use local")]
    UnknownDriver(String),
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
}

impl VolumeError {
    pub fn io(what: impl Into<String>, source: impl Into<io::Error>) -> Self {
        VolumeError::Io {
            what: what.into(),
            source: source.into(),
        }
    }
}

type Result<T, E = VolumeError> = std::result::Result<T, E>;

/// What `volume.json` holds: Docker's fields, as `volume inspect` shows them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Volume {
    pub name: String,
    pub driver: String,
    pub created_at: String,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
}

impl Volume {
    pub fn is_anonymous(&self) -> bool {
        self.labels.contains_key(ANONYMOUS_LABEL)
    }
}

/// `POST /volumes/create`'s body.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateVolume {
    pub name: String,
    pub driver: String,
    pub driver_opts: Option<BTreeMap<String, String>>,
    pub labels: Option<BTreeMap<String, String>>,
}

/// The volumes under one data root.
pub struct Volumes {
    root: PathBuf,
    /// How many running containers mount each volume (for volumes with driver options,
    /// which are mounted for the first and unmounted after the last).
    users: Mutex<BTreeMap<String, usize>>,
}

impl Volumes {
    /// Opens `<data_root>/volumes`, finishing what a killed daemon left half done.
    pub fn open(data_root: &Path) -> Result<Volumes> {
        let root = data_root.join("volumes");
        std::fs::create_dir_all(&root)
            .map_err(|e| VolumeError::io(format!("creating {}", root.display()), e))?;
        for entry in read_dir(&root)? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(STAGING) || name.starts_with(REMOVING) {
                let path = entry.path();
                // A removal may have been interrupted while a driver mount was on it.
                let _ = nix::mount::umount2(&path.join(DATA_DIR), nix::mount::MntFlags::MNT_DETACH);
                if let Err(e) = std::fs::remove_dir_all(&path) {
                    tracing::warn!("removing the leftover {}: {e}", path.display());
                }
            }
        }
        Ok(Volumes {
            root,
            users: Mutex::new(BTreeMap::new()),
        })
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Where containers mount the volume (Docker's `Mountpoint`).
    pub fn data_path(&self, name: &str) -> PathBuf {
        self.dir(name).join(DATA_DIR)
    }

    /// Creates a volume; an existing one of that name is returned as it is (`false`), as
    /// dockerd does.
    pub fn create(&self, request: CreateVolume) -> Result<(Volume, bool)> {
        if !matches!(request.driver.as_str(), "" | "local") {
            return Err(VolumeError::UnknownDriver(request.driver));
        }
        let name = if request.name.is_empty() {
            crate::containers::names::new_id(|_| false)
        } else {
            request.name
        };
        validate_name(&name)?;
        if let Ok(existing) = self.get(&name) {
            return Ok((existing, false));
        }
        let options = request.driver_opts.unwrap_or_default();
        local::validate(&options).map_err(|message| VolumeError::InvalidOptions {
            name: name.clone(),
            message,
        })?;
        let volume = Volume {
            name: name.clone(),
            driver: "local".into(),
            created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            labels: request.labels.unwrap_or_default(),
            options,
        };
        let staging = self.root.join(format!(
            "{STAGING}{}",
            crate::containers::names::new_id(|_| false)
        ));
        let made = std::fs::create_dir_all(staging.join(DATA_DIR))
            .and_then(|_| {
                std::fs::write(
                    staging.join(META_FILE),
                    serde_json::to_vec(&volume).expect("volumes serialise"),
                )
            })
            .and_then(|_| std::fs::rename(&staging, self.dir(&name)));
        if let Err(e) = made {
            let _ = std::fs::remove_dir_all(&staging);
            // Created meanwhile by another request: that one stands.
            if let Ok(existing) = self.get(&name) {
                return Ok((existing, false));
            }
            return Err(VolumeError::io(format!("creating volume {name}"), e));
        }
        Ok((volume, true))
    }

    pub fn get(&self, name: &str) -> Result<Volume> {
        if validate_name(name).is_err() {
            return Err(VolumeError::NotFound(name.to_string()));
        }
        let path = self.dir(name).join(META_FILE);
        let text = std::fs::read(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => VolumeError::NotFound(name.to_string()),
            _ => VolumeError::io(format!("reading {}", path.display()), e),
        })?;
        serde_json::from_slice(&text).map_err(|e| {
            VolumeError::io(
                format!("reading {}", path.display()),
                io::Error::new(io::ErrorKind::InvalidData, e),
            )
        })
    }

    /// Every volume, by name.
    pub fn list(&self) -> Result<Vec<Volume>> {
        let mut volumes = Vec::new();
        for entry in read_dir(&self.root)? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            match self.get(&name) {
                Ok(v) => volumes.push(v),
                Err(e) => tracing::warn!("skipping volume {name}: {e}"),
            }
        }
        volumes.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(volumes)
    }

    /// Deletes the volume and its data (the caller has checked that no container uses it).
    pub fn remove(&self, name: &str) -> Result<()> {
        self.get(name)?;
        let gone = self.root.join(format!("{REMOVING}{name}"));
        let _ = nix::mount::umount2(&self.data_path(name), nix::mount::MntFlags::MNT_DETACH);
        std::fs::rename(self.dir(name), &gone)
            .and_then(|_| std::fs::remove_dir_all(&gone))
            .map_err(|e| VolumeError::io(format!("removing volume {name}"), e))
    }

    /// A container starts using the volume: its driver mount is made if it is the first.
    pub fn mount(&self, name: &str) -> Result<PathBuf> {
        let volume = self.get(name)?;
        let data = self.data_path(name);
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        let count = users.entry(name.to_string()).or_default();
        if *count == 0 && !volume.options.is_empty() && !local::is_mounted(&data) {
            local::mount(&volume.options, &data)
                .map_err(|e| VolumeError::io(format!("mounting volume {name}"), e))?;
        }
        *count += 1;
        Ok(data)
    }

    /// A container stopped using the volume: its driver mount goes with the last one.
    pub fn unmount(&self, name: &str) {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        let Some(count) = users.get_mut(name) else {
            return;
        };
        *count = count.saturating_sub(1);
        if *count > 0 {
            return;
        }
        users.remove(name);
        if self.get(name).is_ok_and(|v| !v.options.is_empty()) {
            if let Err(e) = local::unmount(&self.data_path(name)) {
                tracing::warn!(volume = name, "unmounting: {e}");
            }
        }
    }

    /// Whether the volume holds nothing yet (what copy-up fills).
    pub fn is_empty(&self, name: &str) -> bool {
        std::fs::read_dir(self.data_path(name)).is_ok_and(|mut d| d.next().is_none())
    }

    /// Bytes used by the volume's files (each inode counted once), for `system df`.
    pub fn size(&self, name: &str) -> u64 {
        let mut seen = std::collections::HashSet::new();
        let mut total = 0;
        let mut pending = vec![self.data_path(name)];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_dir() {
                    pending.push(entry.path());
                } else if seen.insert((meta.dev(), meta.ino())) {
                    total += meta.len();
                }
            }
        }
        total
    }
}

/// Docker's `volume inspect` document; `usage` is (size, reference count) when asked.
pub fn to_json(volume: &Volume, mountpoint: &Path, usage: Option<(u64, usize)>) -> Value {
    let or_null = |m: &BTreeMap<String, String>| {
        if m.is_empty() {
            Value::Null
        } else {
            json!(m)
        }
    };
    let mut v = json!({
        "CreatedAt": volume.created_at,
        "Driver": volume.driver,
        "Labels": or_null(&volume.labels),
        "Mountpoint": mountpoint,
        "Name": volume.name,
        "Options": or_null(&volume.options),
        "Scope": "local",
    });
    if let Some((size, refs)) = usage {
        v["UsageData"] = json!({"Size": size, "RefCount": refs});
    }
    v
}

/// Docker's rule for local volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn validate_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if first_ok && rest_ok && name.len() >= 2 {
        Ok(())
    } else {
        Err(VolumeError::InvalidName(name.to_string()))
    }
}

fn read_dir(dir: &Path) -> Result<Vec<std::fs::DirEntry>> {
    std::fs::read_dir(dir)
        .and_then(|d| d.collect::<io::Result<Vec<_>>>())
        .map_err(|e| VolumeError::io(format!("reading {}", dir.display()), e))
}

/// A store in a fresh directory of its own (per process and thread), for unit tests.
#[cfg(test)]
pub(crate) fn scratch_store(tag: &str) -> (PathBuf, Volumes) {
    let dir = std::env::temp_dir().join(format!(
        "kapsel-{tag}-unit-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let volumes = Volumes::open(&dir).unwrap();
    (dir, volumes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (PathBuf, Volumes) {
        scratch_store("volumes")
    }

    #[test]
    fn names_follow_dockers_rule() {
        assert!(validate_name("data_1.x-y").is_ok());
        for bad in ["a", "-x", "a/b", "a:b", "..", "é1", ""] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_volume_is_created_once_listed_and_removed() {
        let (dir, volumes) = store();
        let request = CreateVolume {
            name: "data".into(),
            labels: Some([("k".to_string(), "v".to_string())].into()),
            ..Default::default()
        };
        let (made, created) = volumes.create(request.clone()).unwrap();
        assert!(created);
        std::fs::write(volumes.data_path("data").join("f"), b"kept").unwrap();
        let (again, created) = volumes.create(request).unwrap();
        assert!(!created);
        assert_eq!(again.created_at, made.created_at);
        assert_eq!(volumes.size("data"), 4);
        assert_eq!(volumes.list().unwrap().len(), 1);
        // A reopened store (a daemon restart) sees the same volume and its data.
        let reopened = Volumes::open(&dir).unwrap();
        assert_eq!(reopened.get("data").unwrap().labels["k"], "v");
        reopened.remove("data").unwrap();
        assert!(matches!(
            reopened.get("data"),
            Err(VolumeError::NotFound(_))
        ));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn bad_options_and_drivers_change_nothing() {
        let (dir, volumes) = store();
        let opts = |pairs: &[(&str, &str)]| {
            Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        };
        let bad = CreateVolume {
            name: "x1".into(),
            driver_opts: opts(&[("colour", "red")]),
            ..Default::default()
        };
        assert!(volumes.create(bad).is_err());
        let bad_driver = CreateVolume {
            name: "x2".into(),
            driver: "nfs-magic".into(),
            ..Default::default()
        };
        assert!(volumes.create(bad_driver).is_err());
        assert!(volumes.list().unwrap().is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }
}
