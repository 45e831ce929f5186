//! A container's mounts resolved at create, as dockerd resolves them: `-v` (Binds),
//! `--mount` (Mounts), `--volumes-from`, and the anonymous volumes of `-v /path` and the
//! image's `VOLUME`s. Everything is checked first ([`plan`]); volumes and missing `-v`
//! bind sources are made only once all of it is valid ([`Plan::realise`]), so a bad
//! request changes nothing.

use std::collections::BTreeMap;
use std::path::Path;

use super::record::{HostConfig, MountKind, MountPoint, MountSpec};
use super::ContainerError;
use crate::volumes::{self, CreateVolume, Volume, Volumes, ANONYMOUS_LABEL};

/// Modes `-v` accepts (SELinux labels `z`/`Z` are accepted and have no effect here).
const MODES: &[&str] = &[
    "ro", "rw", "z", "Z", "nocopy", "shared", "rshared", "slave", "rslave", "private", "rprivate",
];

const PROPAGATIONS: &[&str] = &[
    "shared", "rshared", "slave", "rslave", "private", "rprivate",
];

/// One mount point, and the volume to create for it if none of that name exists.
struct Planned {
    point: MountPoint,
    volume: Option<CreateVolume>,
}

/// The checked mounts of a container about to be created.
pub struct Plan(Vec<Planned>);

/// What [`plan`] reads besides the host config.
pub struct PlanInputs<'a> {
    pub host: &'a HostConfig,
    /// `Config.Volumes` of the request and of the image: anonymous volumes.
    pub anonymous: Vec<String>,
    /// The mount points of a `--volumes-from` container.
    pub volumes_from: &'a dyn Fn(&str) -> Result<Vec<MountPoint>, ContainerError>,
    pub volumes: &'a Volumes,
}

/// Checks every mount of the request; nothing is created yet.
pub fn plan(inputs: &PlanInputs) -> Result<Plan, ContainerError> {
    let host = inputs.host;
    let mut planned = Vec::new();
    for spec in host.binds.iter().flatten() {
        planned.push(parse_bind(spec, inputs.volumes)?);
    }
    for m in host.mounts.iter().flatten() {
        planned.push(from_mount_spec(m, inputs.volumes)?);
    }
    let mut seen = std::collections::BTreeSet::new();
    for p in &planned {
        if !seen.insert(p.point.destination.clone()) {
            return Err(invalid(format!(
                "Duplicate mount point: {}",
                p.point.destination
            )));
        }
    }
    for spec in host.volumes_from.iter().flatten() {
        let (name, mode) = match spec.split_once(':') {
            Some((n, m @ ("ro" | "rw"))) => (n, Some(m)),
            Some((_, m)) => return Err(invalid(format!("invalid mode for volumes-from: {m}"))),
            None => (spec.as_str(), None),
        };
        for mut point in (inputs.volumes_from)(name)? {
            if point.kind == MountKind::Tmpfs || !seen.insert(point.destination.clone()) {
                continue;
            }
            if let Some(mode) = mode {
                point.read_only = mode == "ro";
            }
            point.copy_data = false;
            planned.push(Planned {
                point,
                volume: None,
            });
        }
    }
    for destination in &inputs.anonymous {
        let destination = clean_destination(destination, "volume")?;
        if seen.insert(destination.clone()) {
            planned.push(anonymous_volume(destination, true, None, None));
        }
    }
    Ok(Plan(planned))
}

impl Plan {
    /// Creates what the mounts need: volumes not there yet (returned, for their events)
    /// and missing `-v` bind sources, as dockerd makes them.
    pub fn realise(
        self,
        volumes: &Volumes,
    ) -> Result<(Vec<MountPoint>, Vec<Volume>), ContainerError> {
        let mut points = Vec::new();
        let mut created = Vec::new();
        for Planned { mut point, volume } in self.0 {
            match (point.kind, volume) {
                (MountKind::Volume, Some(request)) => {
                    let (volume, new) = volumes.create(request)?;
                    point.source = volumes.data_path(&volume.name).display().to_string();
                    if new {
                        created.push(volume);
                    }
                }
                (MountKind::Bind, _) if !Path::new(&point.source).exists() => {
                    std::fs::create_dir_all(&point.source).map_err(|e| {
                        ContainerError::io(&format!("creating bind source {}", point.source), e)
                    })?;
                }
                _ => {}
            }
            points.push(point);
        }
        Ok((points, created))
    }
}

/// `-v /host:/ctr[:opts]`, `-v name:/ctr[:opts]` or `-v /ctr`.
fn parse_bind(spec: &str, volumes: &Volumes) -> Result<Planned, ContainerError> {
    let parts: Vec<&str> = spec.split(':').collect();
    let bad = |why: String| invalid(format!("invalid volume specification: '{spec}': {why}"));
    let (source, destination, mode) = match parts.as_slice() {
        [d] => ("", *d, ""),
        [s, d] => (*s, *d, ""),
        [s, d, m] => (*s, *d, *m),
        _ => return Err(invalid(format!("invalid volume specification: '{spec}'"))),
    };
    let kind = if source.starts_with('/') {
        MountKind::Bind
    } else {
        MountKind::Volume
    };
    let destination =
        clean_destination(destination, kind.as_str()).map_err(|e| bad(e.to_string()))?;
    let options: Vec<&str> = mode.split(',').filter(|o| !o.is_empty()).collect();
    if let Some(o) = options.iter().find(|o| !MODES.contains(o)) {
        return Err(bad(format!("invalid mode: {o}")));
    }
    let read_only = options.contains(&"ro");
    let propagation = options
        .iter()
        .find(|o| PROPAGATIONS.contains(o))
        .copied()
        .unwrap_or("rprivate");
    if kind == MountKind::Bind {
        if options.contains(&"nocopy") {
            return Err(bad("invalid mode: nocopy".into()));
        }
        return Ok(Planned {
            point: MountPoint {
                kind,
                source: source.to_string(),
                destination,
                read_only,
                mode: mode.to_string(),
                propagation: propagation.to_string(),
                ..MountPoint::default()
            },
            volume: None,
        });
    }
    let copy = !options.contains(&"nocopy");
    if source.is_empty() {
        return Ok(anonymous_volume(destination, copy, None, Some(read_only)));
    }
    volumes::validate_name(source)?;
    let mut planned = named_volume(source, destination, copy, read_only, volumes);
    // Docker shows "z" for a -v volume without a mode.
    planned.point.mode = if mode.is_empty() {
        "z".into()
    } else {
        mode.to_string()
    };
    Ok(planned)
}

/// `--mount type=bind|volume|tmpfs,…`.
fn from_mount_spec(m: &MountSpec, volumes: &Volumes) -> Result<Planned, ContainerError> {
    let destination = clean_destination(&m.target, &m.kind)?;
    match m.kind.as_str() {
        "bind" => {
            if !Path::new(&m.source).exists() {
                return Err(invalid(format!(
                    "invalid mount config for type \"bind\": bind source path does not exist: {}",
                    m.source
                )));
            }
            let propagation = m
                .bind_options
                .as_ref()
                .and_then(|o| o.get("Propagation"))
                .and_then(|p| p.as_str())
                .filter(|p| !p.is_empty())
                .unwrap_or("rprivate");
            if !PROPAGATIONS.contains(&propagation) {
                return Err(invalid(format!(
                    "invalid mount config for type \"bind\": invalid propagation mode: {propagation}"
                )));
            }
            Ok(Planned {
                point: MountPoint {
                    kind: MountKind::Bind,
                    source: m.source.clone(),
                    destination,
                    read_only: m.read_only,
                    propagation: propagation.to_string(),
                    ..MountPoint::default()
                },
                volume: None,
            })
        }
        "volume" => {
            let options = m.volume_options.clone().unwrap_or_default();
            let copy = !options.no_copy;
            let driver = options.driver_config.unwrap_or_default();
            let request = CreateVolume {
                name: m.source.clone(),
                driver: driver.name,
                driver_opts: driver.options,
                labels: options.labels,
            };
            if m.source.is_empty() {
                return Ok(anonymous_volume(
                    destination,
                    copy,
                    Some(request),
                    Some(m.read_only),
                ));
            }
            volumes::validate_name(&m.source)?;
            let mut planned = named_volume(&m.source, destination, copy, m.read_only, volumes);
            if let Some(volume) = &mut planned.volume {
                *volume = request;
            }
            Ok(planned)
        }
        "tmpfs" => {
            if !m.source.is_empty() {
                return Err(invalid(
                    "invalid mount config for type \"tmpfs\": source must not be specified".into(),
                ));
            }
            let mut options = Vec::new();
            if let Some(t) = &m.tmpfs_options {
                if t.size_bytes > 0 {
                    options.push(format!("size={}", t.size_bytes));
                }
                if t.mode > 0 {
                    options.push(format!("mode={:o}", t.mode));
                }
            }
            Ok(Planned {
                point: MountPoint {
                    kind: MountKind::Tmpfs,
                    destination,
                    read_only: m.read_only,
                    tmpfs_options: options,
                    ..MountPoint::default()
                },
                volume: None,
            })
        }
        other => Err(invalid(format!(
            "mount type {other:?} is not supported: use bind, volume or tmpfs"
        ))),
    }
}

fn named_volume(
    name: &str,
    destination: String,
    copy: bool,
    read_only: bool,
    volumes: &Volumes,
) -> Planned {
    let exists = volumes.get(name).is_ok();
    Planned {
        point: MountPoint {
            kind: MountKind::Volume,
            name: name.to_string(),
            source: volumes.data_path(name).display().to_string(),
            destination,
            read_only,
            copy_data: copy,
            ..MountPoint::default()
        },
        volume: (!exists).then(|| CreateVolume {
            name: name.to_string(),
            ..CreateVolume::default()
        }),
    }
}

/// A new volume with a random 64-hex name, labelled anonymous (what `rm -v` and `volume
/// prune` remove).
fn anonymous_volume(
    destination: String,
    copy: bool,
    request: Option<CreateVolume>,
    read_only: Option<bool>,
) -> Planned {
    let name = super::names::new_id(|_| false);
    let mut request = request.unwrap_or_default();
    request.name = name.clone();
    request
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(ANONYMOUS_LABEL.into(), String::new());
    Planned {
        point: MountPoint {
            kind: MountKind::Volume,
            name,
            destination,
            read_only: read_only.unwrap_or(false),
            copy_data: copy,
            ..MountPoint::default()
        },
        volume: Some(request),
    }
}

/// An absolute, cleaned container path (Docker's error otherwise).
fn clean_destination(destination: &str, kind: &str) -> Result<String, ContainerError> {
    if !destination.starts_with('/') {
        return Err(invalid(format!(
            "invalid mount config for type \"{kind}\": invalid mount path: '{destination}' \
             mount path must be absolute"
        )));
    }
    let clean = super::fs::container_path(destination);
    if clean == "/" {
        return Err(invalid(format!(
            "invalid mount config for type \"{kind}\": invalid specification: destination \
             can't be '/'"
        )));
    }
    Ok(clean)
}

fn invalid(message: String) -> ContainerError {
    ContainerError::InvalidConfig(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (std::path::PathBuf, Volumes) {
        crate::volumes::scratch_store("mounts")
    }

    fn host(json: serde_json::Value) -> HostConfig {
        serde_json::from_value(json).unwrap()
    }

    fn plan_of(
        host: &HostConfig,
        anonymous: &[&str],
        volumes: &Volumes,
    ) -> Result<Plan, ContainerError> {
        plan(&PlanInputs {
            host,
            anonymous: anonymous.iter().map(|s| s.to_string()).collect(),
            volumes_from: &|name| Err(ContainerError::NotFound(name.into())),
            volumes,
        })
    }

    #[test]
    fn binds_volumes_and_anonymous_paths_resolve() {
        let (dir, volumes) = store();
        let h = host(serde_json::json!({
            "Binds": ["/tmp:/host:ro,rshared", "data:/data:nocopy"],
            "Mounts": [{"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 4096}}],
        }));
        let (points, created) = plan_of(&h, &["/anon", "/data"], &volumes)
            .unwrap()
            .realise(&volumes)
            .unwrap();
        assert_eq!(points.len(), 4, "{points:?}");
        assert_eq!(
            (points[0].read_only, points[0].propagation.as_str()),
            (true, "rshared")
        );
        assert_eq!(
            (points[1].name.as_str(), points[1].copy_data),
            ("data", false)
        );
        assert_eq!(points[2].tmpfs_options, vec!["size=4096"]);
        assert_eq!(points[3].name.len(), 64);
        assert!(volumes.get(&points[3].name).unwrap().is_anonymous());
        assert_eq!(created.len(), 2);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn bad_mounts_are_refused_before_anything_is_made() {
        let (dir, volumes) = store();
        for bad in [
            serde_json::json!({"Binds": ["good:/a", "/tmp:relative"]}),
            serde_json::json!({"Binds": ["good:/a", "bad$name:/b"]}),
            serde_json::json!({"Binds": ["good:/a", "/tmp:/b:bogus"]}),
            serde_json::json!({"Binds": ["good:/a", "/tmp:/a"]}),
            serde_json::json!({"Binds": ["good:/a"], "Mounts": [
                {"Type": "bind", "Source": "/nonexistent/kapsel", "Target": "/b"}]}),
        ] {
            assert!(plan_of(&host(bad.clone()), &[], &volumes).is_err(), "{bad}");
        }
        assert!(volumes.list().unwrap().is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }
}
