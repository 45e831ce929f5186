//! The engine's side of volumes: which containers use one, mounting them for a start
//! (with copy-up from the image), `rm -v`, `volume rm` and `prune` (refused or skipped
//! while in use), export and import (freezing running writers meanwhile), and the volume
//! events.

use std::path::Path;
use std::sync::Arc;

use super::fs::{Access, ExtractOptions, FsError, RootFs};
use super::record::{MountKind, MountPoint, Record};
use super::{ContainerError, Engine};
use crate::volumes::{CreateVolume, Volume, VolumeError};

type Result<T, E = ContainerError> = std::result::Result<T, E>;

impl Engine {
    /// A volume event, with Docker's attributes (`driver` always; `container`,
    /// `destination`, … for mounts).
    pub fn emit_volume(&self, name: &str, action: &str, extra: &[(&str, String)]) {
        let attributes = std::iter::once(("driver".to_string(), "local".to_string()))
            .chain(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        self.events.publish("volume", action, name, attributes);
    }

    /// The IDs of the containers (in any state) that mount volume `name`.
    pub fn volume_users(&self, name: &str) -> Vec<String> {
        // Read under each record's lock: a clone of every record per call adds up when
        // `volume ls` asks for every volume.
        self.all()
            .iter()
            .filter_map(|c| {
                let r = c.record();
                let uses = volume_points(&r).any(|m| m.name == name);
                uses.then(|| r.id.clone())
            })
            .collect()
    }

    /// `POST /volumes/create`: an existing volume is returned as it is.
    pub fn create_volume(&self, request: CreateVolume) -> Result<Volume> {
        let (volume, created) = self.volumes.create(request)?;
        if created {
            self.emit_volume(&volume.name, "create", &[]);
        }
        Ok(volume)
    }

    /// `DELETE /volumes/{name}`: refused while any container uses it (`force` only skips
    /// a missing volume, as in dockerd).
    pub fn remove_volume(&self, name: &str, force: bool) -> Result<()> {
        match self.volumes.get(name) {
            Err(VolumeError::NotFound(_)) if force => return Ok(()),
            found => found?,
        };
        let users = self.volume_users(name);
        if !users.is_empty() {
            return Err(VolumeError::InUse {
                name: name.to_string(),
                users,
            }
            .into());
        }
        self.volumes.remove(name)?;
        self.emit_volume(name, "destroy", &[]);
        Ok(())
    }

    /// `POST /volumes/prune`: the unused volumes `select` picks (anonymous ones only,
    /// unless `all`); their names and the bytes freed.
    pub fn prune_volumes(
        &self,
        all: bool,
        select: impl Fn(&Volume) -> bool,
    ) -> Result<(Vec<String>, u64)> {
        let mut removed = Vec::new();
        let mut space = 0;
        for volume in self.volumes.list()? {
            if !(all || volume.is_anonymous()) || !select(&volume) {
                continue;
            }
            let size = self.volumes.size(&volume.name);
            match self.remove_volume(&volume.name, false) {
                Ok(()) => {
                    removed.push(volume.name);
                    space += size;
                }
                Err(ContainerError::Volume(VolumeError::InUse { .. })) => {}
                Err(e) => return Err(e),
            }
        }
        Ok((removed, space))
    }

    /// After `rm -v`: the container's anonymous volumes that no other container uses.
    pub(super) fn remove_anonymous_volumes(&self, record: &Record) {
        for point in volume_points(record) {
            let anonymous = self
                .volumes
                .get(&point.name)
                .is_ok_and(|v| v.is_anonymous());
            if anonymous {
                if let Err(e) = self.remove_volume(&point.name, true) {
                    tracing::info!(volume = %point.name, "kept after rm -v: {e}");
                }
            }
        }
    }

    /// Before a start: each volume mounted (driver options applied), and a new empty one
    /// filled with what the image has at its destination, unless `nocopy`.
    pub(super) async fn mount_volumes(
        self: &Arc<Self>,
        record: &Record,
        rootfs: &Path,
    ) -> Result<()> {
        let mut mounted = Vec::new();
        for point in volume_points(record) {
            let attached = self
                .volumes
                .mount(&point.name)
                .map_err(ContainerError::from);
            // Empty as mounted: a volume of a device or directory may hold data already.
            let attached = match attached {
                Ok(data) if point.copy_data && self.volumes.is_empty(&point.name) => {
                    let (rootfs, destination) = (rootfs.to_path_buf(), point.destination.clone());
                    tokio::task::spawn_blocking(move || copy_up(&rootfs, &destination, &data))
                        .await
                        .expect("copy-up task")
                        .map_err(|e| {
                            self.volumes.unmount(&point.name);
                            ContainerError::StartFailed(format!(
                                "copying the image's {} into volume {}: {e}",
                                point.destination, point.name
                            ))
                        })
                }
                other => other.map(drop),
            };
            if let Err(e) = attached {
                for name in mounted {
                    self.volumes.unmount(name);
                }
                return Err(e);
            }
            mounted.push(&point.name);
            self.emit_volume(
                &point.name,
                "mount",
                &[
                    ("container", record.id.clone()),
                    ("destination", point.destination.clone()),
                    ("propagation", point.propagation.clone()),
                    ("read/write", (!point.read_only).to_string()),
                ],
            );
        }
        Ok(())
    }

    /// After a container stopped (or failed to start): its volumes released, driver
    /// mounts undone with their last user (a tmpfs volume's data goes with it).
    pub(super) fn unmount_volumes(&self, record: &Record) {
        for point in volume_points(record) {
            self.volumes.unmount(&point.name);
            self.emit_volume(&point.name, "unmount", &[("container", record.id.clone())]);
        }
    }

    /// After a daemon restart: a running container's volumes counted as in use again.
    pub(super) fn count_volume_users(&self, record: &Record) {
        if record.state.status.is_live() {
            for point in volume_points(record) {
                if let Err(e) = self.volumes.mount(&point.name) {
                    tracing::warn!(volume = %point.name, "after restart: {e}");
                }
            }
        }
    }

    /// Runs `work` (off the async threads) on volume `name`'s data as a root. For
    /// reading, running containers that mount it writable are frozen throughout, so
    /// what is read is consistent; their IDs are passed to `work`. Writing is refused
    /// while a running container mounts it writable.
    pub async fn with_volume<T, F>(
        self: &Arc<Self>,
        name: &str,
        access: Access,
        work: F,
    ) -> Result<T, FsError>
    where
        T: Send + 'static,
        F: FnOnce(&RootFs, &[String]) -> Result<T, FsError> + Send + 'static,
    {
        self.volumes.get(name).map_err(ContainerError::from)?;
        let running: Vec<Record> = self
            .all()
            .iter()
            .filter_map(|c| {
                let r = c.record();
                let writer = r.state.status.is_live()
                    && volume_points(&r).any(|m| m.name == name && !m.read_only);
                writer.then(|| r.clone())
            })
            .collect();
        if access == Access::Write && !running.is_empty() {
            let ids: Vec<&str> = running.iter().map(|r| r.short_id()).collect();
            return Err(FsError::Invalid(format!(
                "volume {name} is in use by running container(s) {}: stop them before importing",
                ids.join(", ")
            )));
        }
        let mut frozen = Vec::new();
        for r in running
            .iter()
            .filter(|r| r.state.status == super::record::Status::Running)
        {
            if self.runtime(&["pause", &r.id]).await.is_ok() {
                frozen.push(r.id.clone());
            }
        }
        let data = self.volumes.mount(name).map_err(ContainerError::from)?;
        let (engine, volume, ids) = (self.clone(), name.to_string(), frozen.clone());
        let result = tokio::task::spawn_blocking(move || {
            let done = RootFs::of_directory(&data, access).and_then(|fs| work(&fs, &ids));
            engine.volumes.unmount(&volume);
            done
        })
        .await;
        for id in &frozen {
            if let Err(e) = self.runtime(&["resume", id]).await {
                tracing::warn!(container = %id, "thawing after a volume export: {e}");
            }
        }
        result.map_err(|e| FsError::Invalid(format!("the volume task failed: {e}")))?
    }
}

/// The volume mount points of a container.
fn volume_points(record: &Record) -> impl Iterator<Item = &MountPoint> {
    record
        .mount_points
        .iter()
        .filter(|m| m.kind == MountKind::Volume)
}

/// Copy-up: the contents of `destination` in the container's root filesystem (its own
/// owner and mode included) into the volume's data, streamed as a tar through a pipe, so
/// the same hostile-safe walk and extraction as `docker cp` do it.
fn copy_up(rootfs: &Path, destination: &str, data: &Path) -> Result<(), FsError> {
    let source = RootFs::of_directory(rootfs, Access::Read)?;
    let target = RootFs::of_directory(data, Access::Write)?;
    let (reader, writer) =
        std::io::pipe().map_err(|e| FsError::Invalid(format!("copy-up pipe: {e}")))?;
    std::thread::scope(|scope| {
        let archiving = scope.spawn(move || source.archive_contents(destination, writer));
        let extracted = target.extract("/", reader, &ExtractOptions::default());
        match archiving.join().expect("archive thread") {
            // Nothing at that path in the image: nothing to copy.
            Ok(None) => Ok(()),
            Ok(Some(_)) => extracted,
            Err(e) => Err(e),
        }
    })
}
