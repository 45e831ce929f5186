//! Networks: Docker's network model (the predefined `bridge`, `host` and `none`, and
//! user-defined bridge networks) on kapsel-network's stateless plumbing. This module owns
//! the network records (`<data-root>/networks/<id>.json`) and, in memory, which containers
//! are attached where and which ports they publish — rebuilt from the container records
//! after a restart, so the firewall table and bridges can always be re-derived.

pub mod connections;
mod endpoints;
pub mod ports;
pub mod record;
mod resolvers;

pub use endpoints::Attachment;
use resolvers::Resolver;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use ipnet::{Ipv4Net, Ipv6Net};
use kapsel_network::firewall::{BridgeRules, Firewall, PortMapping};
use kapsel_network::link::Netlink;
use kapsel_network::{firewall, ipam};

use crate::containers::record::Record;

use record::{NetworkRecord, BRIDGE, HOST, NULL};

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("network {0} not found")]
    NotFound(String),
    #[error("network with name {0} already exists")]
    NameInUse(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0} is a pre-defined network and cannot be removed")]
    Predefined(String),
    #[error("error while removing network: network {name} id {id} has active endpoints")]
    InUse { name: String, id: String },
    #[error("Bind for 0.0.0.0:{port} failed: port is already allocated ({protocol})")]
    PortTaken { port: u16, protocol: &'static str },
    #[error("Address already in use: {ip} is taken in network {network}")]
    AddressTaken { ip: Ipv4Addr, network: String },
    #[error(
        "no available IPv4 address left in network {0}: remove containers or use a larger subnet"
    )]
    Exhausted(String),
    #[error(transparent)]
    Plumbing(#[from] kapsel_network::NetworkError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

type Result<T, E = NetworkError> = std::result::Result<T, E>;

fn io_error(what: String) -> impl FnOnce(std::io::Error) -> NetworkError {
    move |source| NetworkError::Io { what, source }
}

/// Names that keep one kapseld's network objects apart from another's.
#[derive(Debug, Clone)]
pub struct Instance {
    /// The nftables table (family inet).
    pub table: String,
    /// The device of the predefined `bridge` network.
    pub default_bridge: String,
    /// The nflog group connection logs go to.
    pub log_group: u16,
}

/// A `network create` request, checked.
#[derive(Debug, Default)]
pub struct CreateNetwork {
    pub name: String,
    pub driver: String,
    pub internal: bool,
    pub attachable: bool,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    pub subnet: Option<Ipv4Net>,
    pub ip_range: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    /// `--ipv6`, with `subnet6` (else a unique local /64) and `gateway6`.
    pub enable_ipv6: bool,
    pub subnet6: Option<Ipv6Net>,
    pub gateway6: Option<Ipv6Addr>,
}

#[derive(Default)]
struct State {
    networks: BTreeMap<String, NetworkRecord>,
    /// Networks whose bridge this daemon has set up.
    up: BTreeSet<String>,
    /// Running containers: container ID → network ID → address.
    attached: BTreeMap<String, BTreeMap<String, Ipv4Addr>>,
    /// Addresses of stopped containers whose veths are still being deleted: not members,
    /// not free yet (network ID, address).
    releasing: Vec<(String, Ipv4Addr)>,
    /// Running containers' published ports.
    ports: BTreeMap<String, Vec<PortMapping>>,
}

pub struct Networks {
    dir: PathBuf,
    netns_dir: PathBuf,
    instance: Instance,
    /// Shared with the DNS servers, which answer each client from the tables of the
    /// networks it is on.
    state: Arc<Mutex<State>>,
    resolvers: Arc<Mutex<BTreeMap<String, Resolver>>>,
    /// kapseld's runtime, which runs the DNS servers; the other calls here block.
    runtime: tokio::runtime::Handle,
    pub connections: Arc<connections::ConnectionLog>,
    /// Whether other tables' forward chains were checked (once per daemon: a warning).
    forward_checked: AtomicBool,
    /// Background veth deletions (see [`Networks::teardown`]), joined at shutdown.
    pending: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Networks {
    /// Loads the network records; the predefined networks are made the first time.
    pub fn open(data_root: &Path, exec_root: &Path, instance: Instance) -> Result<Self> {
        let dir = data_root.join("networks");
        let netns_dir = exec_root.join("netns");
        for d in [&dir, &netns_dir] {
            std::fs::create_dir_all(d).map_err(io_error(format!("creating {}", d.display())))?;
        }
        let mut state = State::default();
        for entry in
            std::fs::read_dir(&dir).map_err(io_error(format!("reading {}", dir.display())))?
        {
            let path = entry
                .map_err(io_error(format!("reading {}", dir.display())))?
                .path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read(&path)
                    .map_err(io_error(format!("reading {}", path.display())))?;
                match serde_json::from_slice::<NetworkRecord>(&text) {
                    Ok(n) => {
                        state.networks.insert(n.id.clone(), n);
                    }
                    Err(e) => {
                        tracing::warn!(file = %path.display(), "skipping unreadable network record: {e}")
                    }
                }
            }
        }
        let networks = Networks {
            dir,
            netns_dir,
            instance,
            state: Arc::new(Mutex::new(state)),
            resolvers: Arc::new(Mutex::new(BTreeMap::new())),
            runtime: tokio::runtime::Handle::current(),
            connections: Arc::default(),
            forward_checked: AtomicBool::new(false),
            pending: Mutex::default(),
        };
        for (name, driver) in [("bridge", BRIDGE), ("host", HOST), ("none", NULL)] {
            if networks.get(name).is_err() {
                let bridge = if driver == BRIDGE {
                    networks.instance.default_bridge.clone()
                } else {
                    String::new()
                };
                networks.save(&NetworkRecord {
                    id: kapsel_network_id(),
                    name: name.into(),
                    driver: driver.into(),
                    created: kapsel_runtime::state::now_rfc3339(),
                    bridge,
                    subnet: None,
                    gateway: None,
                    ip_range: None,
                    subnet6: None,
                    gateway6: None,
                    internal: false,
                    attachable: false,
                    labels: BTreeMap::new(),
                    options: BTreeMap::new(),
                })?;
            }
        }
        Ok(networks)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, network: &NetworkRecord) -> Result<()> {
        let path = self.dir.join(format!("{}.json", network.id));
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(network).expect("JSON serialises"))
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(io_error(format!("writing {}", path.display())))?;
        self.state()
            .networks
            .insert(network.id.clone(), network.clone());
        Ok(())
    }

    pub fn list(&self) -> Vec<NetworkRecord> {
        self.state().networks.values().cloned().collect()
    }

    /// A network by full ID, name, or unique ID prefix, as Docker resolves them.
    pub fn get(&self, name_or_id: &str) -> Result<NetworkRecord> {
        let state = self.state();
        let found = state
            .networks
            .get(name_or_id)
            .or_else(|| state.networks.values().find(|n| n.name == name_or_id));
        if let Some(n) = found {
            return Ok(n.clone());
        }
        let mut prefixed = state
            .networks
            .values()
            .filter(|n| n.id.starts_with(name_or_id));
        match (prefixed.next(), prefixed.next()) {
            (Some(n), None) if !name_or_id.is_empty() => Ok(n.clone()),
            _ => Err(NetworkError::NotFound(name_or_id.to_string())),
        }
    }

    /// The containers attached to `network_id` and their addresses.
    pub fn members(&self, network_id: &str) -> Vec<(String, Ipv4Addr)> {
        self.state()
            .attached
            .iter()
            .filter_map(|(c, nets)| nets.get(network_id).map(|ip| (c.clone(), *ip)))
            .collect()
    }

    /// `POST /networks/create`: the bridge is made at once (so the subnet is claimed on
    /// the host while the choice is locked).
    pub fn create(&self, request: CreateNetwork) -> Result<NetworkRecord> {
        if request.name.is_empty() {
            return Err(NetworkError::Invalid(
                "network name is required: name the network".into(),
            ));
        }
        if self
            .get(&request.name)
            .is_ok_and(|n| n.name == request.name)
        {
            return Err(NetworkError::NameInUse(request.name));
        }
        match request.driver.as_str() {
            "" | BRIDGE => {}
            other => {
                return Err(NetworkError::Invalid(format!(
                    "plugin \"{other}\" not found: kapsel has the bridge driver only"
                )))
            }
        }
        let id = kapsel_network_id();
        let bridge = match request.options.get(record::BRIDGE_NAME_OPTION) {
            Some(name) => {
                let name = valid_interface_name(name)?;
                if Netlink::connect()?.index_of(&name)?.is_some() {
                    return Err(NetworkError::Invalid(format!(
                        "bridge name {name} is taken by an interface of this host: choose another"
                    )));
                }
                name
            }
            None => format!("kbr-{}", &id[..11]),
        };
        if let Some(mtu) = request.options.get(record::MTU_OPTION) {
            if !mtu.parse::<u32>().is_ok_and(|m| (68..=65535).contains(&m)) {
                return Err(NetworkError::Invalid(format!(
                    "invalid {} {mtu}: use a number from 68 to 65535",
                    record::MTU_OPTION
                )));
            }
        }
        let _lock = ipam::host_lock().map_err(io_error("locking /run/kapsel/ipam.lock".into()))?;
        let subnet = match request.subnet {
            Some(subnet) => {
                self.check_free(&subnet)?;
                subnet.trunc()
            }
            None => self.free_subnet()?,
        };
        let gateway = match request.gateway {
            Some(g) if !subnet.contains(&g) => {
                return Err(NetworkError::Invalid(format!(
                    "invalid gateway {g}: it is not in subnet {subnet}"
                )))
            }
            Some(g) => g,
            None => ipam::default_gateway(&subnet).ok_or_else(|| {
                NetworkError::Invalid(format!("subnet {subnet} has no room for a gateway"))
            })?,
        };
        if let Some(range) = &request.ip_range {
            if !subnet.contains(range) {
                return Err(NetworkError::Invalid(format!(
                    "invalid ip-range {range}: it is not in subnet {subnet}"
                )));
            }
        }
        let (subnet6, gateway6) = if request.enable_ipv6 {
            let (subnet6, gateway6) = self.ipv6_config(&id, &subnet, gateway, &request)?;
            (Some(subnet6), Some(gateway6))
        } else {
            (None, None)
        };
        let network = NetworkRecord {
            subnet6,
            gateway6,
            id,
            name: request.name,
            driver: BRIDGE.into(),
            created: kapsel_runtime::state::now_rfc3339(),
            bridge,
            subnet: Some(subnet),
            gateway: Some(gateway),
            ip_range: request.ip_range,
            internal: request.internal,
            attachable: request.attachable,
            labels: request.labels,
            options: request.options,
        };
        if let Err(e) = self.bring_up(&network).and_then(|_| self.save(&network)) {
            let _ = self.take_down(&network);
            self.state().networks.remove(&network.id);
            return Err(e);
        }
        Ok(network)
    }

    /// The IPv6 subnet (given, or a unique local /64) and gateway (given, or the IPv4
    /// gateway's twin) of a new network.
    fn ipv6_config(
        &self,
        id: &str,
        subnet: &Ipv4Net,
        gateway: Ipv4Addr,
        request: &CreateNetwork,
    ) -> Result<(Ipv6Net, Ipv6Addr)> {
        let subnet6 = match request.subnet6 {
            Some(s) => s.trunc(),
            None => {
                let seed: Vec<u8> = (0..7)
                    .map(|i| u8::from_str_radix(&id[2 * i..2 * i + 2], 16).unwrap_or(0))
                    .collect();
                ipam::ula_subnet(seed.as_slice().try_into().expect("7 bytes"))
            }
        };
        if !ipam::fits_ipv4_hosts(subnet, &subnet6) {
            return Err(NetworkError::Invalid(format!(
                "IPv6 subnet {subnet6} is smaller than IPv4 subnet {subnet}: use at least a /{}",
                96 + subnet.prefix_len()
            )));
        }
        let taken = self
            .state()
            .networks
            .values()
            .filter_map(|n| n.subnet6)
            .any(|other| other.contains(&subnet6.network()) || subnet6.contains(&other.network()));
        if taken {
            return Err(NetworkError::Invalid(format!(
                "invalid pool request: Pool overlaps with other one on this address space ({subnet6})"
            )));
        }
        let gateway6 = request
            .gateway6
            .unwrap_or_else(|| ipam::ipv6_twin(subnet, gateway, &subnet6));
        if !subnet6.contains(&gateway6) {
            return Err(NetworkError::Invalid(format!(
                "invalid gateway {gateway6}: it is not in subnet {subnet6}"
            )));
        }
        Ok((subnet6, gateway6))
    }

    /// A subnet that overlaps nothing: not the host's routes, not another network's.
    fn check_free(&self, subnet: &Ipv4Net) -> Result<()> {
        let clash = self
            .taken_subnets()?
            .into_iter()
            .any(|t| ipam::overlaps(&t, subnet));
        if clash {
            return Err(NetworkError::Invalid(format!(
                "invalid pool request: Pool overlaps with other one on this address space ({subnet})"
            )));
        }
        Ok(())
    }

    fn free_subnet(&self) -> Result<Ipv4Net> {
        ipam::free_subnet(&self.taken_subnets()?).ok_or_else(|| {
            NetworkError::Invalid(
                "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network".into(),
            )
        })
    }

    fn taken_subnets(&self) -> Result<Vec<Ipv4Net>> {
        let mut taken = Netlink::connect()?.ipv4_routes()?;
        taken.extend(self.state().networks.values().filter_map(|n| n.subnet));
        Ok(taken)
    }

    /// The network's bridge exists and the firewall knows it. The default network picks
    /// its subnet the first time (under the host lock, as `create` does).
    fn ensure_up(&self, network: &NetworkRecord) -> Result<NetworkRecord> {
        if self.state().up.contains(&network.id) {
            return Ok(network.clone());
        }
        let _lock = ipam::host_lock().map_err(io_error("locking /run/kapsel/ipam.lock".into()))?;
        // Again under the lock: another start may have brought it up (and chosen the
        // default network's subnet) meanwhile.
        let mut network = {
            let state = self.state();
            let current = state.networks.get(&network.id).cloned();
            let current = current.unwrap_or_else(|| network.clone());
            if state.up.contains(&network.id) {
                return Ok(current);
            }
            current
        };
        if network.subnet.is_none() {
            let subnet = self.free_subnet()?;
            network.subnet = Some(subnet);
            network.gateway = ipam::default_gateway(&subnet);
            self.save(&network)?;
        }
        self.bring_up(&network)?;
        Ok(network)
    }

    fn bring_up(&self, network: &NetworkRecord) -> Result<()> {
        let (Some(subnet), Some(gateway)) = (network.subnet, network.gateway) else {
            return Err(NetworkError::Invalid(format!(
                "network {} has no subnet",
                network.name
            )));
        };
        let address = Ipv4Net::new(gateway, subnet.prefix_len()).expect("prefix of a subnet");
        let address6 = network
            .subnet6
            .zip(network.gateway6)
            .map(|(s, g)| Ipv6Net::new(g, s.prefix_len()).expect("prefix of a subnet"));
        Netlink::connect()?.ensure_bridge(&network.bridge, address, address6, network.mtu())?;
        if network.log_connections() {
            self.connections.start(self.instance.log_group);
        }
        let first_bring_up = !self.forward_checked.swap(true, Ordering::Relaxed);
        let foreign_drops = if first_bring_up {
            firewall::foreign_forward_drops(&self.instance.table)
        } else {
            Vec::new()
        };
        for chain in foreign_drops {
            tracing::warn!(
                "nftables chain {chain} drops forwarded packets by default (Docker leaves it \
                 so): containers on {} cannot reach other networks or published ports from \
                 outside unless that chain accepts them (e.g. `iptables -I DOCKER-USER -i {} \
                 -j ACCEPT` and `-o {} -j ACCEPT`)",
                network.name,
                network.bridge,
                network.bridge
            );
        }
        {
            let mut state = self.state();
            state.networks.insert(network.id.clone(), network.clone());
            state.up.insert(network.id.clone());
            if let Err(e) = self.apply_firewall(&state) {
                state.up.remove(&network.id);
                return Err(e);
            }
        }
        // Up only with its resolver: a network left without one would never get it.
        self.start_resolver(network, gateway).inspect_err(|_| {
            self.state().up.remove(&network.id);
        })
    }

    fn take_down(&self, network: &NetworkRecord) -> Result<()> {
        if let Some(resolver) = self.resolvers().remove(&network.id) {
            self.stop_resolver(resolver);
        }
        let mut state = self.state();
        state.up.remove(&network.id);
        self.apply_firewall(&state)?;
        drop(state);
        Ok(Netlink::connect()?.delete(&network.bridge)?)
    }

    /// The table, re-rendered from the networks that are up and the published ports.
    fn apply_firewall(&self, state: &State) -> Result<()> {
        let networks = state
            .up
            .iter()
            .filter_map(|id| state.networks.get(id))
            .filter_map(|n| {
                Some(BridgeRules {
                    name: n.name.clone(),
                    bridge: n.bridge.clone(),
                    subnet: n.subnet?,
                    gateway: n.gateway?,
                    internal: n.internal,
                    log_connections: n.log_connections(),
                    subnet6: n.subnet6,
                })
            })
            .collect();
        Firewall {
            table: self.instance.table.clone(),
            log_group: self.instance.log_group,
            networks,
            ports: state.ports.values().flatten().cloned().collect(),
        }
        .apply()?;
        Ok(())
    }

    /// `DELETE /networks/{id}`.
    pub fn remove(&self, name_or_id: &str) -> Result<NetworkRecord> {
        let network = self.get(name_or_id)?;
        if network.is_predefined() {
            return Err(NetworkError::Predefined(network.name));
        }
        if !self.members(&network.id).is_empty() {
            return Err(NetworkError::InUse {
                name: network.name,
                id: network.id,
            });
        }
        self.take_down(&network)?;
        let path = self.dir.join(format!("{}.json", network.id));
        std::fs::remove_file(&path).map_err(io_error(format!("removing {}", path.display())))?;
        self.state().networks.remove(&network.id);
        Ok(network)
    }

    /// After a daemon restart: what the running containers hold, from their records;
    /// bridges and the table are made again if they went.
    pub fn restore(&self, running: &[Record]) {
        let mut used = BTreeSet::new();
        {
            let mut state = self.state();
            for record in running {
                for e in record.networks.values() {
                    if let Some(ip) = e.ip {
                        state
                            .attached
                            .entry(record.id.clone())
                            .or_default()
                            .insert(e.network_id.clone(), ip.addr());
                        used.insert(e.network_id.clone());
                    }
                }
                if !record.ports.is_empty() {
                    state.ports.insert(record.id.clone(), record.ports.clone());
                }
            }
        }
        for id in used {
            let network = self.state().networks.get(&id).cloned();
            if let Some(network) = network {
                if let Err(e) = self.ensure_up(&network) {
                    tracing::error!(network = %network.name, "restoring the network: {e}");
                }
            }
        }
        for record in running {
            for endpoint in record.networks.values() {
                self.register_names(record, endpoint);
            }
        }
    }

    /// On a clean shutdown with no container running: bridges and the table go, so the
    /// host is as before kapseld started (they are made again on demand).
    pub fn shutdown(&self) {
        for deletion in std::mem::take(&mut *self.pending()) {
            let _ = deletion.join();
        }
        let state = self.state();
        if !state.attached.is_empty() {
            return;
        }
        drop(state);
        let resolvers = std::mem::take(&mut *self.resolvers());
        resolvers.into_values().for_each(|r| self.stop_resolver(r));
        let state = self.state();
        let bridges: Vec<String> = state
            .networks
            .values()
            .filter(|n| n.driver == BRIDGE)
            .map(|n| n.bridge.clone())
            .collect();
        drop(state);
        if let Ok(nl) = Netlink::connect() {
            for bridge in bridges {
                if let Err(e) = nl.delete(&bridge) {
                    tracing::warn!("removing bridge {bridge}: {e}");
                }
            }
        }
        if let Err(e) = firewall::remove(&self.instance.table) {
            tracing::warn!("{e}");
        }
    }
}

/// `-o com.docker.network.bridge.name=NAME`: a name the kernel takes (that no host
/// interface has it is checked by the caller).
fn valid_interface_name(name: &str) -> Result<String> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !ok {
        return Err(NetworkError::Invalid(format!(
            "invalid bridge name {name:?}: use at most 15 letters, digits, '-', '_' or '.'"
        )));
    }
    Ok(name.to_string())
}

/// A random 64-hex ID, as Docker's network and endpoint IDs.
fn kapsel_network_id() -> String {
    crate::containers::names::new_id(|_| false)
}
