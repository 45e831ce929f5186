//! A network as the engine keeps it (one JSON file each, written atomically), and a
//! container's endpoint on it (kept in the container's record).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

/// The drivers kapsel has: `bridge` networks, and Docker's predefined `host` and `none`.
pub const BRIDGE: &str = "bridge";
pub const HOST: &str = "host";
pub const NULL: &str = "null";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub id: String,
    pub name: String,
    pub driver: String,
    pub created: String,
    /// Bridge networks: the device, subnet, gateway and the range addresses come from.
    #[serde(default)]
    pub bridge: String,
    #[serde(default)]
    pub subnet: Option<Ipv4Net>,
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
    #[serde(default)]
    pub ip_range: Option<Ipv4Net>,
    /// Networks with IPv6 (`--ipv6`): their subnet and gateway.
    #[serde(default)]
    pub subnet6: Option<Ipv6Net>,
    #[serde(default)]
    pub gateway6: Option<Ipv6Addr>,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub attachable: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// Docker's bridge driver options kapsel honours.
pub const BRIDGE_NAME_OPTION: &str = "com.docker.network.bridge.name";
pub const MTU_OPTION: &str = "com.docker.network.driver.mtu";

/// `-o kapsel.log-connections=true` on `network create`: new connections into, out of
/// and within the network are logged.
pub const LOG_CONNECTIONS_OPTION: &str = "kapsel.log-connections";

impl NetworkRecord {
    /// Docker's predefined networks are not user-defined: no DNS by name, cannot be
    /// removed.
    pub fn is_predefined(&self) -> bool {
        matches!(self.name.as_str(), "bridge" | "host" | "none")
    }

    /// The MTU of the bridge and its veths (`-o com.docker.network.driver.mtu`).
    pub fn mtu(&self) -> u32 {
        self.options
            .get(MTU_OPTION)
            .and_then(|m| m.parse().ok())
            .unwrap_or(1500)
    }

    pub fn log_connections(&self) -> bool {
        self.options
            .get(LOG_CONNECTIONS_OPTION)
            .is_some_and(|v| v == "true" || v == "1")
    }
}

/// A container on one network: what it asked for (aliases, a static address) and, while
/// it runs, what it got.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Endpoint {
    pub network_id: String,
    pub aliases: Vec<String>,
    pub requested_ip: Option<Ipv4Addr>,
    /// Set while the container runs.
    pub endpoint_id: String,
    pub ip: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    pub ip6: Option<Ipv6Net>,
    pub gateway6: Option<Ipv6Addr>,
    pub host_ifname: String,
}

impl Endpoint {
    pub fn mac(&self) -> String {
        match self.ip {
            Some(ip) => kapsel_network::link::mac_of(ip.addr())
                .map(|b| format!("{b:02x}"))
                .join(":"),
            None => String::new(),
        }
    }

    /// Forgets what the container got (it stopped).
    pub fn release(&mut self) {
        self.endpoint_id.clear();
        self.ip = None;
        self.gateway = None;
        self.ip6 = None;
        self.gateway6 = None;
        self.host_ifname.clear();
    }
}
