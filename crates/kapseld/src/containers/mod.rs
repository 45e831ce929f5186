//! Containers: their records (SQLite), their life cycle (create, start, stop, kill, wait,
//! remove, pause, rename) and the shims that supervise them. The API layer calls these
//! operations; nothing here knows about HTTP.

pub mod commit;
pub mod db;
pub mod etc;
pub mod exec;
pub mod fs;
pub mod health;
pub mod inspect;
pub mod logs;
pub mod mounts;
pub mod names;
pub mod record;
pub mod restart;
pub mod spec;
pub mod stats;
pub mod supervisor;
pub mod update;
pub mod user;
pub mod volumes;

use std::collections::BTreeMap;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kapsel_image::store::ImageStore;
use kapsel_image::ImageError;
use serde_json::Value;
use tokio::sync::watch;

use crate::events::Events;
use crate::networks::record::Endpoint;
use crate::networks::{ports, Attachment, NetworkError, Networks};
use db::ContainerDb;
use record::{Config, HostConfig, Record, State, Status};
use supervisor::{LogOptions, Programs, Started, Target};

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("No such container: {0}")]
    NotFound(String),
    #[error(
        "Conflict. The container name \"/{name}\" is already in use by container \"{id}\". \
         You have to remove (or rename) that container to be able to reuse that name."
    )]
    NameInUse { name: String, id: String },
    #[error("Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    InvalidName { name: String },
    #[error("{0}")]
    InvalidConfig(String),
    #[error("No command specified")]
    NoCommand,
    #[error("Container {0} is not running")]
    NotRunning(String),
    #[error("Container {0} is paused, unpause the container before stopping or killing")]
    Paused(String),
    #[error(
        "cannot remove container \"/{0}\": container is running: stop the container before \
         removing or force remove"
    )]
    RemoveRunning(String),
    #[error("{0}")]
    StartFailed(String),
    /// The operation had nothing to do (HTTP 304).
    #[error("not modified")]
    NotModified,
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error(transparent)]
    Volume(#[from] crate::volumes::VolumeError),
    #[error("container database: {0}")]
    Db(rusqlite::Error),
    #[error("opening the container database {path}: {source}")]
    DbOpen {
        path: String,
        source: rusqlite::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

impl ContainerError {
    pub fn io(what: &str, source: std::io::Error) -> Self {
        ContainerError::Io {
            what: what.to_string(),
            source,
        }
    }
}

type Result<T, E = ContainerError> = std::result::Result<T, E>;

/// What the engine was started with that containers need.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub programs: Programs,
    /// Every container's cgroup is `/<cgroup_parent>/<id>`.
    pub cgroup_parent: String,
    /// tini, for `--init`.
    pub init_binary: Option<PathBuf>,
    /// Log rotation unless a container says otherwise (`--log-opt max-size/max-file`).
    pub log_max_size: u64,
    pub log_max_file: u32,
}

/// Exits and removal, for `wait`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Lifecycle {
    pub exits: u64,
    pub exit_code: i64,
    pub removed: bool,
}

/// One container in memory: its record and who waits on it.
pub struct Container {
    record: Mutex<Record>,
    lifecycle: watch::Sender<Lifecycle>,
    /// Bound when a client attaches before the start, so its connection is queued for
    /// the shim, which accepts it before the container runs.
    attach_listener: Mutex<Option<UnixListener>>,
    /// Serialises start, stop, restart and remove of this container.
    pub(crate) op_lock: tokio::sync::Mutex<()>,
    /// Restarts in a row after short runs, for the restart back-off.
    quick_restarts: std::sync::atomic::AtomicU32,
}

impl Container {
    fn new(record: Record) -> Arc<Container> {
        let exit_code = record.state.exit_code;
        Arc::new(Container {
            record: Mutex::new(record),
            lifecycle: watch::channel(Lifecycle {
                exit_code,
                ..Lifecycle::default()
            })
            .0,
            attach_listener: Mutex::new(None),
            op_lock: tokio::sync::Mutex::new(()),
            quick_restarts: std::sync::atomic::AtomicU32::new(0),
        })
    }

    pub fn record(&self) -> MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn snapshot(&self) -> Record {
        self.record().clone()
    }
}

/// `wait`'s conditions, as in the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    NotRunning,
    NextExit,
    Removed,
}

/// The create request: `Config` with `HostConfig` inside, as the API sends it.
#[derive(Debug, Default, serde::Deserialize)]
pub struct CreateRequest {
    #[serde(flatten)]
    pub config: Config,
    #[serde(rename = "HostConfig", default)]
    pub host_config: HostConfig,
    /// Docker's `NetworkingConfig` (`EndpointsConfig`: aliases, static addresses), read by
    /// [`Engine::create`] into the record's networks.
    #[serde(rename = "NetworkingConfig", default)]
    pub networking_config: Value,
}

pub struct Engine {
    pub config: EngineConfig,
    pub images: Arc<ImageStore>,
    db: Mutex<ContainerDb>,
    containers: Mutex<BTreeMap<String, Arc<Container>>>,
    pub execs: exec::Execs,
    pub events: Events,
    pub networks: Arc<Networks>,
    pub volumes: Arc<crate::volumes::Volumes>,
}

impl Engine {
    /// Opens the container records and adopts the containers whose shims still run;
    /// those that ended while the daemon was away get the exit status their shim wrote.
    /// Blocking (the networks of running containers are restored).
    pub fn open(
        config: EngineConfig,
        images: Arc<ImageStore>,
        networks: Arc<Networks>,
    ) -> Result<Arc<Engine>> {
        for dir in [
            config.data_root.join("containers"),
            config.exec_root.clone(),
        ] {
            std::fs::create_dir_all(&dir)
                .map_err(|e| ContainerError::io(&format!("creating {}", dir.display()), e))?;
        }
        let db = ContainerDb::open(&config.data_root.join("containers.db"))?;
        let records = db.load_all()?;
        let volumes = Arc::new(crate::volumes::Volumes::open(&config.data_root)?);
        let engine = Arc::new(Engine {
            config,
            images,
            db: Mutex::new(db),
            containers: Mutex::new(BTreeMap::new()),
            execs: exec::Execs::default(),
            events: Events::default(),
            networks,
            volumes,
        });
        let running: Vec<Record> = records
            .iter()
            .filter(|r| r.state.status.is_live())
            .cloned()
            .collect();
        engine.networks.restore(&running);
        for mut record in records {
            engine.resolve_older_mounts(&mut record);
            let container = Container::new(record);
            engine
                .containers()
                .insert(container.record().id.clone(), container.clone());
            engine.adopt(container);
        }
        Ok(engine)
    }

    /// A record written before mount points were resolved at create: its binds and
    /// mounts are resolved now (once: the result is saved).
    fn resolve_older_mounts(&self, record: &mut Record) {
        let host = &record.host_config;
        if !record.mount_points.is_empty() || (host.binds.is_none() && host.mounts.is_none()) {
            return;
        }
        let resolved = mounts::plan(&mounts::PlanInputs {
            host,
            anonymous: Vec::new(),
            volumes_from: &|name| Err(ContainerError::NotFound(name.into())),
            volumes: &self.volumes,
        })
        .and_then(|plan| plan.realise(&self.volumes));
        match resolved {
            Ok((points, _)) => {
                record.mount_points = points;
                if let Err(e) = self.save(record) {
                    tracing::warn!(container = %record.id, "saving its mount points: {e}");
                }
            }
            Err(e) => tracing::warn!(container = %record.id, "resolving its mounts: {e}"),
        }
    }

    fn containers(&self) -> MutexGuard<'_, BTreeMap<String, Arc<Container>>> {
        self.containers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, record: &Record) -> Result<()> {
        self.db
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .save(record)
    }

    /// A container event with Docker's attributes: image, name, labels and `extra`.
    pub fn emit(&self, record: &Record, action: &str, extra: &[(&str, String)]) {
        let attributes = record
            .config
            .labels
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .chain([
                ("image".to_string(), record.image.clone()),
                ("name".to_string(), record.name.clone()),
            ])
            .chain(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        self.events
            .publish("container", action, &record.id, attributes);
    }

    pub fn all(&self) -> Vec<Arc<Container>> {
        self.containers().values().cloned().collect()
    }

    /// A container by full ID, name, or unique ID prefix, as Docker resolves them.
    pub fn get(&self, name_or_id: &str) -> Result<Arc<Container>> {
        let wanted = name_or_id.strip_prefix('/').unwrap_or(name_or_id);
        let containers = self.containers();
        if let Some(c) = containers.get(wanted) {
            return Ok(c.clone());
        }
        if let Some(c) = containers.values().find(|c| c.record().name == wanted) {
            return Ok(c.clone());
        }
        let mut prefixed = containers
            .range(wanted.to_string()..)
            .take_while(|(id, _)| id.starts_with(wanted));
        match (prefixed.next(), prefixed.next()) {
            (Some((_, c)), None) if !wanted.is_empty() => Ok(c.clone()),
            (Some(_), Some(_)) => Err(ContainerError::InvalidConfig(format!(
                "multiple IDs found with provided prefix: {wanted}"
            ))),
            _ => Err(ContainerError::NotFound(name_or_id.to_string())),
        }
    }

    /// The shim's directory: short, because unix socket paths are (the 12-digit prefix is
    /// unique: [`names::new_id`] avoids taken ones).
    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.config.exec_root.join(&id[..12])
    }

    fn data_dir(&self, id: &str) -> PathBuf {
        self.config.data_root.join("containers").join(id)
    }

    fn programs(&self) -> &Programs {
        &self.config.programs
    }

    /// `POST /containers/create`: the image's config fills what the request leaves
    /// empty, as dockerd merges them.
    pub fn create(&self, name: Option<&str>, request: CreateRequest) -> Result<Record> {
        let CreateRequest {
            mut config,
            host_config,
            networking_config,
        } = request;
        if config.image.is_empty() {
            return Err(ContainerError::InvalidConfig(
                "config.Image is required: name the image to run".into(),
            ));
        }
        let (image, image_config) = self.image_config(&config.image)?;
        merge_image_config(&mut config, &image_config);
        let command: Vec<String> = config
            .entrypoint
            .iter()
            .flatten()
            .chain(config.cmd.iter().flatten())
            .cloned()
            .collect();
        let Some((path, args)) = command.split_first() else {
            return Err(ContainerError::NoCommand);
        };
        log_options(&host_config, &self.config, Path::new(""))?;
        let anonymous = merge_image_volumes(&mut config, &image_config);
        let mount_plan = mounts::plan(&mounts::PlanInputs {
            host: &host_config,
            anonymous,
            volumes_from: &|name| Ok(self.get(name)?.record().mount_points.clone()),
            volumes: &self.volumes,
        })?;
        restart::validate(&host_config.restart_policy).map_err(ContainerError::InvalidConfig)?;
        health::validate(config.healthcheck.as_ref()).map_err(ContainerError::InvalidConfig)?;
        if host_config.auto_remove && !matches!(host_config.restart_policy.name.as_str(), "" | "no")
        {
            return Err(ContainerError::InvalidConfig(
                "conflicting options: cannot specify both --restart and --rm".into(),
            ));
        }
        let networks = self.requested_networks(&host_config, &networking_config)?;
        let mut containers = self.containers();
        let taken_name = |n: &str| containers.values().find(|c| c.record().name == n).cloned();
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                let n = names::validate_name(n)?;
                if let Some(c) = taken_name(&n) {
                    return Err(ContainerError::NameInUse {
                        name: n,
                        id: c.record().id.clone(),
                    });
                }
                n
            }
            None => names::generate_name(|n| taken_name(n).is_some()),
        };
        let id = names::new_id(|short| containers.keys().any(|k| k.starts_with(short)));
        let (mount_points, new_volumes) = mount_plan.realise(&self.volumes)?;
        for volume in &new_volumes {
            self.emit_volume(&volume.name, "create", &[]);
        }
        let data_dir = self.data_dir(&id);
        std::fs::create_dir_all(&data_dir)
            .map_err(|e| ContainerError::io(&format!("creating {}", data_dir.display()), e))?;
        let record = Record {
            log_path: data_dir
                .join(format!("{id}-json.log"))
                .display()
                .to_string(),
            id: id.clone(),
            name,
            created: kapsel_runtime::state::now_rfc3339(),
            image: config.image.clone(),
            image_id: image.id.to_string(),
            path: path.clone(),
            args: args.to_vec(),
            config,
            host_config,
            state: State::default(),
            restart_count: 0,
            networks,
            ports: Vec::new(),
            mount_points,
        };
        self.save(&record)?;
        containers.insert(id, Container::new(record.clone()));
        self.emit(&record, "create", &[]);
        Ok(record)
    }

    /// The networks a new container asks for, by name: its network mode (unless `host`,
    /// `none` or `container:`) and the other entries of `EndpointsConfig`, with their
    /// aliases and static addresses.
    fn requested_networks(
        &self,
        host: &HostConfig,
        networking: &Value,
    ) -> Result<BTreeMap<String, Endpoint>> {
        let mode = match host.network_mode.as_str() {
            "" | "default" => "bridge",
            m => m,
        };
        if let Some(other) = mode.strip_prefix("container:") {
            self.get(other)?;
            return Ok(BTreeMap::new());
        }
        if matches!(mode, "host" | "none") {
            return Ok(BTreeMap::new());
        }
        let configs = networking["EndpointsConfig"].as_object();
        let names = std::iter::once(mode.to_string())
            .chain(configs.into_iter().flatten().map(|(k, _)| k.clone()));
        self.endpoints_for(names, configs)
    }

    /// Endpoints on the networks `names`, with what `configs` (Docker's
    /// `EndpointsConfig`) asks for each.
    fn endpoints_for(
        &self,
        names: impl Iterator<Item = String>,
        configs: Option<&serde_json::Map<String, Value>>,
    ) -> Result<BTreeMap<String, Endpoint>> {
        let mut endpoints = BTreeMap::new();
        for wanted in names {
            let config = configs.and_then(|c| c.get(&wanted));
            // The docker CLI names the default network "default".
            let network = self
                .networks
                .get(if wanted == "default" {
                    "bridge"
                } else {
                    &wanted
                })
                // 400, not 404: the docker CLI takes a 404 from create for a missing
                // image and tries to pull it.
                .map_err(|e| ContainerError::InvalidConfig(e.to_string()))?;
            let aliases: Vec<String> = config
                .and_then(|c| c["Aliases"].as_array())
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str().map(String::from))
                .collect();
            let requested_ip = match config.and_then(|c| c["IPAMConfig"]["IPv4Address"].as_str()) {
                None | Some("") => None,
                Some(_) if network.is_predefined() => {
                    return Err(ContainerError::InvalidConfig(
                        "user specified IP address is supported on user defined networks only"
                            .into(),
                    ))
                }
                Some(ip) => Some(ip.parse().map_err(|_| {
                    ContainerError::InvalidConfig(format!("invalid IPv4 address: {ip}"))
                })?),
            };
            if matches!(network.driver.as_str(), "host" | "null") {
                return Err(ContainerError::InvalidConfig(format!(
                    "container cannot be connected to network {}: use --network {}",
                    network.name, network.name
                )));
            }
            endpoints.insert(
                network.name.clone(),
                Endpoint {
                    network_id: network.id,
                    aliases,
                    requested_ip,
                    ..Endpoint::default()
                },
            );
        }
        Ok(endpoints)
    }

    /// The image's record and its `config` section; the built-in hello-world is loaded
    /// the first time it is asked for.
    fn image_config(&self, name: &str) -> Result<(kapsel_image::metadata::ImageRecord, Value)> {
        let found = match self.images.config(name) {
            Err(ImageError::ImageNotFound { .. }) if is_hello_world(name) => {
                self.images.ensure_hello_world()?;
                self.images.config(name)
            }
            found => found,
        }?;
        let section = found.1.get("config").cloned().unwrap_or(Value::Null);
        Ok((found.0, section))
    }

    /// A listener on the container's attach socket, bound now if no shim serves it yet.
    /// Connections made before the start are accepted by the shim before the container
    /// runs, so they miss nothing.
    pub fn attach_stream(&self, container: &Container) -> Result<UnixStream> {
        let id = container.record().id.clone();
        let socket = self.run_dir(&id).join("attach.sock");
        if container.record().state.status.is_live() {
            return UnixStream::connect(&socket)
                .map_err(|e| ContainerError::io("connecting to the container's shim", e));
        }
        let mut listener = container
            .attach_listener
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if listener.is_none() {
            *listener = Some(bind_listener(&socket)?);
        }
        UnixStream::connect(&socket).map_err(|e| ContainerError::io("queueing an attach", e))
    }

    /// `POST /containers/{id}/start`.
    pub async fn start(self: &Arc<Self>, name: &str) -> Result<()> {
        let container = self.get(name)?;
        let _op = container.op_lock.lock().await;
        {
            let mut r = container.record();
            if !r.state.status.is_live() {
                r.restart_count = 0;
            }
        }
        self.start_locked(&container).await
    }

    async fn start_locked(self: &Arc<Self>, container: &Arc<Container>) -> Result<()> {
        let record = container.snapshot();
        if record.state.status.is_live() {
            return Err(ContainerError::NotModified);
        }
        let (images, image_id, id) = (
            self.images.clone(),
            record.image_id.clone(),
            record.id.clone(),
        );
        let launched = async {
            let rootfs = tokio::task::spawn_blocking(move || images.prepare_rootfs(&image_id, &id))
                .await
                .expect("rootfs task")?;
            self.mount_volumes(&record, &rootfs).await?;
            let attachment = match self.attach_networks(&record).await {
                Ok(attachment) => attachment,
                Err(e) => {
                    self.unmount_volumes(&record);
                    return Err(e);
                }
            };
            let record = {
                // Recorded before the start, so a crash from here on still knows what
                // to tear down.
                let mut r = container.record();
                r.networks = attachment.endpoints.clone();
                r.ports = attachment.ports.clone();
                self.save(&r)?;
                r.clone()
            };
            for (name, endpoint) in &record.networks {
                self.emit_network("connect", &record.id, name, endpoint);
            }
            let started = self
                .launch(container, &record, &rootfs, attachment.netns.as_deref())
                .await;
            if started.is_err() {
                self.detach_networks(container).await;
                self.unmount_volumes(&record);
            }
            started
        };
        match launched.await {
            Ok(started) => {
                let mut r = container.record();
                let previous_health = r.state.health.take();
                r.state = State {
                    status: Status::Running,
                    pid: started.pid,
                    started_at: kapsel_runtime::state::now_rfc3339(),
                    shim_pid: started.shim_pid,
                    shim_start_time: started.shim_start_time,
                    health: health::on_start(&r.config, previous_health),
                    ..State::default()
                };
                self.save(&r)?;
                self.emit(&r, "start", &[]);
                drop(r);
                self.watch(container.clone(), started);
                self.monitor_health(container.clone());
                Ok(())
            }
            Err(e) => {
                let _ = self.images.unmount_rootfs(&record.id);
                {
                    let mut r = container.record();
                    r.state.error = e.to_string();
                    r.state.exit_code = start_failure_code(&r.state.error);
                    self.save(&r)?;
                }
                if record.host_config.auto_remove {
                    // As dockerd: a --rm container that cannot start is removed, which
                    // also answers a client waiting for "removed".
                    let engine = self.clone();
                    tokio::spawn(async move {
                        let _ = engine.remove(&record.id, true, true).await;
                    });
                }
                Err(e)
            }
        }
    }

    /// Writes the bundle (config.json and /etc files) and starts the shim.
    async fn launch(
        &self,
        container: &Container,
        record: &Record,
        rootfs: &Path,
        netns: Option<&Path>,
    ) -> Result<Started> {
        let run_dir = self.run_dir(&record.id);
        let data_dir = self.data_dir(&record.id);
        std::fs::create_dir_all(&run_dir)
            .map_err(|e| ContainerError::io(&format!("creating {}", run_dir.display()), e))?;
        for stale in ["exit.json", "pid", "runtime.log"] {
            let _ = std::fs::remove_file(run_dir.join(stale));
        }
        let hostname = spec::hostname(record);
        let first = record
            .networks
            .values()
            .find_map(|e| e.ip.map(|ip| (ip.addr(), e.gateway)));
        etc::write(
            &data_dir,
            &hostname,
            &record.host_config,
            first.map(|(ip, _)| ip),
            first.and_then(|(_, gateway)| gateway),
        )?;
        let user = user::resolve(
            rootfs,
            &record.config.user,
            record.host_config.group_add.as_deref().unwrap_or(&[]),
        )?;
        let env = process_env(&record.config, &hostname, &user.home);
        let cwd = match record.config.working_dir.as_str() {
            "" => "/".to_string(),
            dir => {
                fs::make_working_dir(rootfs, dir)
                    .map_err(|e| ContainerError::StartFailed(format!("Cannot mkdir: {e}")))?;
                dir.to_string()
            }
        };
        let spec = spec::build(&spec::SpecInputs {
            record,
            env,
            cwd,
            user,
            rootfs,
            etc_dir: &data_dir,
            cgroup_path: format!("/{}/{}", self.config.cgroup_parent, record.id),
            init_binary: self.config.init_binary.as_deref(),
            netns,
        })?;
        write_json(&run_dir.join("config.json"), &spec)?;
        let listener = match container
            .attach_listener
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            Some(l) => l,
            None => bind_listener(&run_dir.join("attach.sock"))?,
        };
        let log = log_options(
            &record.host_config,
            &self.config,
            Path::new(&record.log_path),
        )?;
        supervisor::launch(
            self.programs(),
            supervisor::Launch {
                id: &record.id,
                dir: &run_dir,
                target: Target::Bundle(&run_dir),
                tty: record.config.tty,
                stdin: record.config.open_stdin,
                log: &log,
                attach: listener,
                oom_file: stats::container_cgroup(&self.config, &record.id)
                    .ok()
                    .and_then(|cg| cg.oom_events_file()),
            },
        )
        .await
    }

    /// The network namespace a container will run in, set up: none for `host`, another
    /// container's for `container:`, else its own with its networks and ports.
    async fn attach_networks(&self, record: &Record) -> Result<Attachment> {
        let mode = record.network_mode();
        if mode == "host" {
            return Ok(Attachment::default());
        }
        if let Some(other) = mode.strip_prefix("container:") {
            let other = self.get(other)?.snapshot();
            if !other.state.status.is_live() {
                return Err(ContainerError::InvalidConfig(format!(
                    "cannot join network of a non running container: {}",
                    other.id
                )));
            }
            return Ok(Attachment {
                netns: Some(PathBuf::from(format!("/proc/{}/ns/net", other.state.pid))),
                ..Attachment::default()
            });
        }
        let bindings = ports::requested(
            record.host_config.extra.get("PortBindings"),
            record
                .host_config
                .extra
                .get("PublishAllPorts")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            record.config.extra.get("ExposedPorts"),
        )?;
        let (networks, record) = (self.networks.clone(), record.clone());
        Ok(
            tokio::task::spawn_blocking(move || networks.setup(&record, &bindings))
                .await
                .expect("network task")?,
        )
    }

    /// The container stopped: its interfaces, namespace and ports go, and its record
    /// forgets the addresses.
    async fn detach_networks(&self, container: &Container) {
        let (id, endpoints) = {
            let r = container.record();
            (r.id.clone(), r.networks.clone())
        };
        for (name, endpoint) in endpoints.iter().filter(|(_, e)| e.ip.is_some()) {
            self.emit_network("disconnect", &id, name, endpoint);
        }
        let networks = self.networks.clone();
        let _ = tokio::task::spawn_blocking(move || networks.teardown(&id, &endpoints)).await;
        let mut r = container.record();
        r.networks.values_mut().for_each(Endpoint::release);
        r.ports.clear();
        if let Err(e) = self.save(&r) {
            tracing::error!(container = %r.id, "recording the network teardown: {e}");
        }
    }

    /// A `network` event, as dockerd reports a container joining or leaving a network.
    pub fn emit_network(
        &self,
        action: &str,
        container_id: &str,
        network: &str,
        endpoint: &Endpoint,
    ) {
        let attributes = [
            ("container", container_id),
            ("name", network),
            ("type", crate::networks::record::BRIDGE),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        self.events
            .publish("network", action, &endpoint.network_id, attributes);
    }

    /// Waits, in the background, for the shim to end, then records the exit.
    fn watch(self: &Arc<Self>, container: Arc<Container>, started: Started) {
        let engine = self.clone();
        tokio::spawn(async move {
            let _ = supervisor::wait_for_exit(started.shim_pid, started.shim_start_time).await;
            engine.exited(&container).await;
        });
    }

    /// After a daemon restart: watch the containers whose shims still run, and record the
    /// exit of those that ended meanwhile.
    fn adopt(self: &Arc<Self>, container: Arc<Container>) {
        let (state, policy) = {
            let r = container.record();
            (r.state.clone(), r.host_config.restart_policy.clone())
        };
        if !state.status.is_live() && state.status != Status::Restarting {
            if state.status == Status::Exited
                && restart::runs_with_daemon(&policy, state.stopped_by_user)
            {
                self.schedule_restart(container, std::time::Duration::ZERO);
            }
            return;
        }
        let started = Started {
            shim_pid: state.shim_pid,
            shim_start_time: state.shim_start_time,
            pid: state.pid,
        };
        self.count_volume_users(&container.record());
        // wait_for_exit returns at once for a shim that is gone.
        self.watch(container.clone(), started);
        if state.status.is_live() {
            // As dockerd on a restore: the check starts over from `starting`.
            let mut r = container.record();
            let previous = r.state.health.take();
            r.state.health = health::on_start(&r.config, previous);
            if let Err(e) = self.save(&r) {
                tracing::error!(container = %r.id, "resetting the health status: {e}");
            }
            drop(r);
            self.monitor_health(container);
        }
    }

    /// The shim ended: the exit status it wrote goes into the record, the root
    /// filesystem is unmounted, waiters are told, and `--rm` containers are removed.
    async fn exited(self: &Arc<Self>, container: &Arc<Container>) {
        let id = container.record().id.clone();
        let run_dir = self.run_dir(&id);
        let exit = supervisor::read_exit(&run_dir);
        if exit.is_none() {
            // The shim died without recording (killed): the container must not run on
            // unsupervised.
            let _ = self.runtime(&["delete", "--force", &id]).await;
        }
        let images = self.images.clone();
        let unmount_id = id.clone();
        let _ = tokio::task::spawn_blocking(move || images.unmount_rootfs(&unmount_id)).await;
        self.detach_networks(container).await;
        self.unmount_volumes(&container.snapshot());
        let (code, auto_remove, restart_after) = {
            let mut r = container.record();
            r.state.status = Status::Exited;
            r.state.pid = 0;
            r.state.shim_pid = 0;
            r.state.shim_start_time = 0;
            match &exit {
                Some(e) => {
                    r.state.exit_code = e.exit_code;
                    r.state.finished_at = e.finished_at.clone();
                    r.state.oom_killed = e.oom_killed;
                }
                None => {
                    r.state.exit_code = 255;
                    r.state.finished_at = kapsel_runtime::state::now_rfc3339();
                    r.state.error =
                        "the container's supervisor (kapsel-shim) ended without recording an exit status"
                            .into();
                }
            }
            let restart_after = self.restart_delay(container, &r);
            if restart_after.is_some() {
                r.state.status = Status::Restarting;
            }
            if let Err(e) = self.save(&r) {
                tracing::error!(container = %id, "recording the exit: {e}");
            }
            if r.state.oom_killed {
                // dockerd reports the kill as it happens; the shim tells of it at the
                // exit, so `oom` comes just before `die`.
                self.emit(&r, "oom", &[]);
            }
            self.emit(&r, "die", &[("exitCode", r.state.exit_code.to_string())]);
            (r.state.exit_code, r.host_config.auto_remove, restart_after)
        };
        container.lifecycle.send_modify(|l| {
            l.exits += 1;
            l.exit_code = code;
        });
        if let Some(delay) = restart_after {
            self.schedule_restart(container.clone(), delay);
        } else if auto_remove {
            if let Err(e) = self.remove(&id, true, true).await {
                tracing::error!(container = %id, "removing a --rm container: {e}");
            }
        }
    }

    /// How long to wait before the policy restarts the container, if it does.
    fn restart_delay(&self, container: &Container, r: &Record) -> Option<Duration> {
        use std::sync::atomic::Ordering;
        let policy = &r.host_config.restart_policy;
        if !restart::should_restart(
            policy,
            r.state.exit_code,
            r.state.stopped_by_user,
            r.restart_count,
        ) {
            return None;
        }
        let ran_for = inspect::unix_seconds(&r.state.finished_at)
            - inspect::unix_seconds(&r.state.started_at);
        if restart::was_stable(Duration::from_secs(ran_for.max(0) as u64)) {
            container.quick_restarts.store(0, Ordering::Relaxed);
        }
        Some(restart::delay(
            container.quick_restarts.fetch_add(1, Ordering::Relaxed),
        ))
    }

    /// Starts the container after `delay`, unless it was stopped or removed meanwhile.
    fn schedule_restart(self: &Arc<Self>, container: Arc<Container>, delay: Duration) {
        let engine = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _op = container.op_lock.lock().await;
            let id = {
                let mut r = container.record();
                let wanted = matches!(r.state.status, Status::Restarting | Status::Exited)
                    && !r.state.stopped_by_user;
                if !wanted || engine.get(&r.id).is_err() {
                    return;
                }
                r.restart_count += 1;
                r.id.clone()
            };
            match engine.start_locked(&container).await {
                Ok(()) => {
                    let r = container.snapshot();
                    engine.emit(&r, "restart", &[]);
                }
                Err(e) => {
                    tracing::warn!(container = %id, "restart failed: {e}");
                    let mut r = container.record();
                    r.state.status = Status::Exited;
                    let _ = engine.save(&r);
                }
            }
        });
    }

    /// `POST /containers/{id}/wait`: the exit code, once `condition` holds.
    pub async fn wait(&self, name: &str, condition: WaitCondition) -> Result<i64> {
        let container = self.get(name)?;
        let mut rx = container.lifecycle.subscribe();
        let before = *rx.borrow_and_update();
        let status = container.record().state.status;
        if condition == WaitCondition::NotRunning && !status.is_live() {
            return Ok(container.record().state.exit_code);
        }
        loop {
            let now = *rx.borrow_and_update();
            let done = match condition {
                WaitCondition::Removed => now.removed,
                _ => now.removed || now.exits > before.exits,
            };
            if done {
                return Ok(now.exit_code);
            }
            if rx.changed().await.is_err() {
                return Ok(now.exit_code);
            }
        }
    }

    /// `POST /containers/{id}/stop`: the stop signal, then SIGKILL after `timeout`
    /// seconds (-1: wait for ever).
    pub async fn stop(&self, name: &str, timeout: Option<i64>, signal: Option<&str>) -> Result<()> {
        let container = self.get(name)?;
        let _op = container.op_lock.lock().await;
        self.stop_locked(&container, timeout, signal).await
    }

    async fn stop_locked(
        &self,
        container: &Container,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<()> {
        let record = container.snapshot();
        if record.state.status == Status::Restarting {
            // Waiting for a policy restart: stopping cancels it.
            let mut r = container.record();
            r.state.status = Status::Exited;
            r.state.stopped_by_user = true;
            return self.save(&r);
        }
        if !record.state.status.is_live() {
            return Err(ContainerError::NotModified);
        }
        let signal = signal
            .or(record.config.stop_signal.as_deref())
            .unwrap_or("SIGTERM");
        let signal = parse_signal(signal)?;
        let timeout = timeout.or(record.config.stop_timeout).unwrap_or(10);
        self.mark_stopped_by_user(container)?;
        let mut rx = container.lifecycle.subscribe();
        let before = rx.borrow_and_update().exits;
        let exited = |rx: &mut watch::Receiver<Lifecycle>| {
            let mut rx = rx.clone();
            async move {
                while rx.borrow_and_update().exits == before {
                    if rx.changed().await.is_err() {
                        break;
                    }
                }
            }
        };
        if record.state.status == Status::Paused {
            // A frozen process cannot act on a signal: only SIGKILL after a thaw works.
            signal_process(record.state.pid, nix::sys::signal::Signal::SIGKILL);
            let _ = self.runtime(&["resume", &record.id]).await;
        } else {
            self.emit(&record, "kill", &[("signal", (signal as i32).to_string())]);
            signal_process(record.state.pid, signal);
            let wait = exited(&mut rx);
            let in_time = if timeout < 0 {
                wait.await;
                true
            } else {
                tokio::time::timeout(Duration::from_secs(timeout as u64), wait)
                    .await
                    .is_ok()
            };
            if !in_time {
                self.emit(&record, "kill", &[("signal", "9".to_string())]);
                signal_process(record.state.pid, nix::sys::signal::Signal::SIGKILL);
            }
        }
        exited(&mut rx).await;
        self.emit(&record, "stop", &[]);
        Ok(())
    }

    fn mark_stopped_by_user(&self, container: &Container) -> Result<()> {
        let mut r = container.record();
        r.state.stopped_by_user = true;
        self.save(&r)
    }

    /// `POST /containers/{id}/kill`.
    pub fn kill(&self, name: &str, signal: Option<&str>) -> Result<()> {
        let container = self.get(name)?;
        let record = container.snapshot();
        if !record.state.status.is_live() {
            return Err(ContainerError::NotRunning(record.id));
        }
        let signal = parse_signal(signal.unwrap_or("SIGKILL"))?;
        if signal == nix::sys::signal::Signal::SIGKILL {
            self.mark_stopped_by_user(&container)?;
        }
        self.emit(&record, "kill", &[("signal", (signal as i32).to_string())]);
        signal_process(record.state.pid, signal);
        Ok(())
    }

    /// `POST /containers/{id}/restart`.
    pub async fn restart(
        self: &Arc<Self>,
        name: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<()> {
        let container = self.get(name)?;
        let _op = container.op_lock.lock().await;
        match self.stop_locked(&container, timeout, signal).await {
            Ok(()) | Err(ContainerError::NotModified) => {}
            Err(e) => return Err(e),
        }
        self.start_locked(&container).await
    }

    /// `POST /containers/{id}/pause` and `/unpause`, through the runtime's freezer.
    pub async fn set_paused(&self, name: &str, paused: bool) -> Result<()> {
        let container = self.get(name)?;
        let record = container.snapshot();
        match (record.state.status, paused) {
            (Status::Running, true) | (Status::Paused, false) => {}
            (Status::Paused, true) => {
                return Err(ContainerError::InvalidConfig(format!(
                    "Container {} is already paused",
                    record.id
                )))
            }
            (Status::Running, false) => {
                return Err(ContainerError::InvalidConfig(format!(
                    "Container {} is not paused",
                    record.id
                )))
            }
            _ => return Err(ContainerError::NotRunning(record.id)),
        }
        let verb = if paused { "pause" } else { "resume" };
        self.runtime(&[verb, &record.id]).await?;
        let mut r = container.record();
        if r.state.status.is_live() {
            r.state.status = if paused {
                Status::Paused
            } else {
                Status::Running
            };
            self.save(&r)?;
            let action = if paused { "pause" } else { "unpause" };
            self.emit(&r, action, &[]);
        }
        Ok(())
    }

    /// `DELETE /containers/{id}`: a running container only with `force` (killed first);
    /// its anonymous volumes too with `remove_volumes` (`rm -v`, and `--rm` containers).
    pub async fn remove(&self, name: &str, force: bool, remove_volumes: bool) -> Result<()> {
        let container = self.get(name)?;
        let _op = container.op_lock.lock().await;
        let record = container.snapshot();
        if record.state.status.is_live() {
            if !force {
                return Err(ContainerError::RemoveRunning(record.name));
            }
            self.stop_locked(&container, Some(0), Some("SIGKILL"))
                .await?;
        }
        let id = record.id.clone();
        let images = self.images.clone();
        tokio::task::spawn_blocking(move || images.release_rootfs(&id))
            .await
            .expect("rootfs task")?;
        for dir in [self.data_dir(&record.id), self.run_dir(&record.id)] {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    return Err(ContainerError::io(
                        &format!("removing {}", dir.display()),
                        e,
                    ));
                }
            }
        }
        self.db
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&record.id)?;
        self.containers().remove(&record.id);
        self.execs.forget_container(&record.id);
        container.lifecycle.send_modify(|l| l.removed = true);
        self.emit(&record, "destroy", &[]);
        if remove_volumes {
            self.remove_anonymous_volumes(&record);
        }
        Ok(())
    }

    /// `POST /networks/{id}/connect`: on the network from the next start, and at once if
    /// it runs.
    pub async fn connect_network(&self, name: &str, network: &str, config: &Value) -> Result<()> {
        let container = self.get(name)?;
        let _op = container.op_lock.lock().await;
        let host = container.record().host_config.clone();
        if matches!(host.network_mode.as_str(), "host" | "none")
            || host.network_mode.starts_with("container:")
        {
            return Err(ContainerError::InvalidConfig(format!(
                "container sharing network namespace with another container or host cannot be connected to any other network (network mode {})",
                host.network_mode
            )));
        }
        let configs = serde_json::Map::from_iter([(network.to_string(), config.clone())]);
        let mut wanted =
            self.endpoints_for(std::iter::once(network.to_string()), Some(&configs))?;
        let (net_name, endpoint) = wanted.pop_first().expect("one network asked for");
        let record = container.snapshot();
        if record.networks.contains_key(&net_name) {
            return Err(ContainerError::InvalidConfig(format!(
                "endpoint with name {} already exists in network {net_name}",
                record.name
            )));
        }
        let endpoint = if record.state.status.is_live() {
            let (networks, record, n) = (self.networks.clone(), record.clone(), net_name.clone());
            tokio::task::spawn_blocking(move || networks.connect(&record, &n, &endpoint))
                .await
                .expect("network task")?
        } else {
            endpoint
        };
        if record.state.status.is_live() {
            self.emit_network("connect", &record.id, &net_name, &endpoint);
        }
        let mut r = container.record();
        r.networks.insert(net_name, endpoint);
        self.save(&r)
    }

    /// `POST /networks/{id}/disconnect`.
    pub async fn disconnect_network(&self, name: &str, network: &str) -> Result<()> {
        let container = self.get(name)?;
        let _op = container.op_lock.lock().await;
        let network = self.networks.get(network)?;
        let record = container.snapshot();
        let Some(endpoint) = record.networks.get(&network.name).cloned() else {
            return Err(ContainerError::InvalidConfig(format!(
                "container {} is not connected to network {}",
                record.id, network.name
            )));
        };
        if record.state.status.is_live() {
            self.emit_network("disconnect", &record.id, &network.name, &endpoint);
        }
        if record.state.status.is_live() && !endpoint.host_ifname.is_empty() {
            let (networks, record) = (self.networks.clone(), record.clone());
            tokio::task::spawn_blocking(move || networks.disconnect(&record, &endpoint))
                .await
                .expect("network task")?;
        }
        let mut r = container.record();
        r.networks.remove(&network.name);
        self.save(&r)
    }

    /// `POST /containers/{id}/rename`.
    pub fn rename(&self, name: &str, new_name: &str) -> Result<()> {
        let container = self.get(name)?;
        let new_name = names::validate_name(new_name)?;
        if let Ok(other) = self.get(&new_name) {
            if !Arc::ptr_eq(&other, &container) && other.record().name == new_name {
                return Err(ContainerError::NameInUse {
                    name: new_name,
                    id: other.record().id.clone(),
                });
            }
        }
        let mut r = container.record();
        let old_name = std::mem::replace(&mut r.name, new_name);
        self.save(&r)?;
        self.emit(&r, "rename", &[("oldName", format!("/{old_name}"))]);
        Ok(())
    }

    /// Runs `kapsel-runtime --root <root> <args>`; its error message on failure.
    pub async fn runtime(&self, args: &[&str]) -> Result<()> {
        let programs = self.programs();
        let out = tokio::process::Command::new(&programs.runtime)
            .arg("--root")
            .arg(&programs.runtime_root)
            .args(args)
            .output()
            .await
            .map_err(|e| {
                ContainerError::io(&format!("running {}", programs.runtime.display()), e)
            })?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(ContainerError::StartFailed(
            stderr
                .trim()
                .trim_start_matches("kapsel-runtime: ")
                .to_string(),
        ))
    }
}

fn is_hello_world(name: &str) -> bool {
    kapsel_image::reference::Reference::parse(name)
        .is_ok_and(|r| r.familiar() == kapsel_image::hello::NAME)
}

/// dockerd's merge: Env by key (the request wins), and Cmd, Entrypoint, WorkingDir,
/// User, Labels, StopSignal, Healthcheck from the image where the request has none. An
/// Entrypoint in the request drops the image's Cmd.
fn merge_image_config(config: &mut Config, image: &Value) {
    let strings = |key: &str| -> Option<Vec<String>> {
        image
            .get(key)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    };
    let text = |key: &str| {
        image
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let mut env = strings("Env").unwrap_or_default();
    override_env(&mut env, config.env.take().unwrap_or_default());
    config.env = Some(env);
    if config.entrypoint.is_none() {
        config.entrypoint = strings("Entrypoint");
        if config.cmd.is_none() {
            config.cmd = strings("Cmd");
        }
    }
    if config.working_dir.is_empty() {
        config.working_dir = text("WorkingDir");
    }
    if config.user.is_empty() {
        config.user = text("User");
    }
    if config.stop_signal.is_none() {
        config.stop_signal = image
            .get("StopSignal")
            .and_then(Value::as_str)
            .map(String::from);
    }
    health::merge_image(config, image.get("Healthcheck"));
    let mut labels: BTreeMap<String, String> = image
        .get("Labels")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    labels.extend(config.labels.take().unwrap_or_default());
    config.labels = Some(labels);
}

/// The image's `VOLUME`s joined to the request's `Volumes` (inspect shows them all, as
/// dockerd does); returns their paths, the container's anonymous volumes.
fn merge_image_volumes(config: &mut Config, image: &Value) -> Vec<String> {
    let mut volumes = serde_json::Map::new();
    for source in [image.get("Volumes"), config.extra.get("Volumes")] {
        if let Some(Value::Object(paths)) = source {
            volumes.extend(paths.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    let paths = volumes.keys().cloned().collect();
    if !volumes.is_empty() {
        config
            .extra
            .insert("Volumes".into(), Value::Object(volumes));
    }
    paths
}

/// Sets each `KEY=value` of `overrides` in `env`, replacing a variable of the same name.
fn override_env(env: &mut Vec<String>, overrides: impl IntoIterator<Item = String>) {
    for var in overrides {
        let key = var.split('=').next().unwrap_or("").to_string();
        env.retain(|e| e.split('=').next() != Some(key.as_str()));
        env.push(var);
    }
}

/// The process environment: the config's, plus PATH, HOSTNAME, HOME and (with a TTY)
/// TERM where it does not set them, as dockerd adds them.
fn process_env(config: &Config, hostname: &str, home: &str) -> Vec<String> {
    let mut env = vec![format!("HOSTNAME={hostname}")];
    let own = config.env.clone().unwrap_or_default();
    let has = |key: &str| own.iter().any(|e| e.split('=').next() == Some(key));
    if !has("PATH") {
        env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    if config.tty && !has("TERM") {
        env.push("TERM=xterm".into());
    }
    env.extend(own.iter().filter(|e| !e.starts_with("HOSTNAME=")).cloned());
    if !has("HOME") {
        env.push(format!("HOME={home}"));
    }
    env
}

/// Docker's exit codes for a process that could not start: 127 not found, 126 not
/// executable, 128 otherwise.
fn start_failure_code(message: &str) -> i64 {
    if message.contains("not found") || message.contains("no such file") {
        127
    } else if message.contains("permission denied") {
        126
    } else {
        128
    }
}

/// The shim's log settings from `--log-driver`/`--log-opt` and the daemon's defaults.
fn log_options(host: &HostConfig, engine: &EngineConfig, path: &Path) -> Result<LogOptions> {
    let driver = match host.log_config.kind.as_str() {
        "" | "json-file" => "json-file",
        "none" => "none",
        other => {
            return Err(ContainerError::InvalidConfig(format!(
                "logging driver {other:?} is not supported: use json-file or none"
            )))
        }
    };
    let opts = &host.log_config.config;
    let max_size = match opts.get("max-size") {
        Some(s) => parse_size(s).ok_or_else(|| {
            ContainerError::InvalidConfig(format!("invalid log max-size {s:?}: use e.g. 10m"))
        })?,
        None => engine.log_max_size,
    };
    let max_file = match opts.get("max-file") {
        Some(n) => n.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
            ContainerError::InvalidConfig(format!("invalid log max-file {n:?}: use a number ≥ 1"))
        })?,
        None => engine.log_max_file,
    };
    Ok(LogOptions {
        driver: driver.into(),
        path: path.to_path_buf(),
        max_size,
        max_file,
        compress: opts.get("compress").is_some_and(|c| c == "true"),
    })
}

/// Docker's human sizes for log options: `100`, `10k`, `20m`, `1g` (decimal units).
pub fn parse_size(text: &str) -> Option<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let lower = lower.trim_end_matches('b').trim_end_matches('i');
    let (number, unit) = match lower.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => lower.split_at(i),
        None => (lower, ""),
    };
    let scale: u64 = match unit {
        "" => 1,
        "k" => 1000,
        "m" => 1000 * 1000,
        "g" => 1000 * 1000 * 1000,
        _ => return None,
    };
    let value: f64 = number.trim().parse().ok()?;
    (value >= 0.0).then_some((value * scale as f64) as u64)
}

/// `SIGTERM`, `TERM`, `term` or `15`.
pub fn parse_signal(text: &str) -> Result<nix::sys::signal::Signal> {
    kapsel_runtime::ops::parse_signal(text)
        .map_err(|_| ContainerError::InvalidConfig(format!("Invalid signal: {text}")))
}

fn signal_process(pid: i32, signal: nix::sys::signal::Signal) {
    if pid > 0 {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
    }
}

fn bind_listener(path: &Path) -> Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| ContainerError::io(&format!("creating {}", dir.display()), e))?;
    }
    let _ = std::fs::remove_file(path);
    UnixListener::bind(path)
        .map_err(|e| ContainerError::io(&format!("listening on {}", path.display()), e))
}

/// Writes JSON by write-then-rename, so a reader never sees half a file.
pub fn write_json(path: &Path, value: &Value) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(value).expect("JSON serialises"))
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| ContainerError::io(&format!("writing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_config_fills_what_the_request_leaves_empty() {
        let mut config: Config = serde_json::from_value(serde_json::json!({
            "Image": "x", "Env": ["A=request"], "Labels": {"l": "request"}
        }))
        .unwrap();
        let image = serde_json::json!({
            "Env": ["PATH=/bin", "A=image"], "Cmd": ["sh"], "WorkingDir": "/w",
            "Labels": {"l": "image", "m": "image"}
        });
        merge_image_config(&mut config, &image);
        assert_eq!(config.env.unwrap(), vec!["PATH=/bin", "A=request"]);
        assert_eq!(config.cmd.unwrap(), vec!["sh"]);
        assert_eq!(config.working_dir, "/w");
        let labels = config.labels.unwrap();
        assert_eq!(
            (labels["l"].as_str(), labels["m"].as_str()),
            ("request", "image")
        );
    }

    #[test]
    fn an_entrypoint_in_the_request_drops_the_images_cmd() {
        let mut config: Config =
            serde_json::from_value(serde_json::json!({"Entrypoint": ["echo"]})).unwrap();
        merge_image_config(&mut config, &serde_json::json!({"Cmd": ["sh"]}));
        assert!(config.cmd.is_none());
    }

    #[test]
    fn sizes_and_signals_parse_as_docker_does() {
        assert_eq!(parse_size("10m"), Some(10_000_000));
        assert_eq!(parse_size("1k"), Some(1000));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("x"), None);
        use nix::sys::signal::Signal;
        assert_eq!(parse_signal("TERM").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("sigkill").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert!(parse_signal("NOPE").is_err());
    }
}
