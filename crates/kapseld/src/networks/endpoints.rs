//! A container on its networks: its pinned namespace, an interface per network with
//! addresses from IPAM, its published ports; connect and disconnect while it runs; the
//! teardown when it stops.

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::MutexGuard;

use ipnet::{Ipv4Net, Ipv6Net};
use kapsel_network::firewall::PortMapping;
use kapsel_network::link::{self, Interface, Netlink};
use kapsel_network::{ipam, netns};

use super::record::{Endpoint, NetworkRecord, BRIDGE};
use super::{kapsel_network_id, ports, NetworkError, Networks, Result};
use crate::containers::record::Record;

/// What a started container got: its namespace and endpoints, and its published ports.
#[derive(Debug, Default)]
pub struct Attachment {
    pub netns: Option<PathBuf>,
    pub endpoints: BTreeMap<String, Endpoint>,
    pub ports: Vec<PortMapping>,
}

impl Networks {
    /// The namespace path a container's network lives in while it runs.
    pub fn netns_path(&self, container_id: &str) -> PathBuf {
        self.netns_dir.join(&container_id[..12])
    }

    /// Before a container starts: its own namespace (for every mode but `host` and
    /// `container:`), an interface on each of its networks, its published ports.
    /// Blocking (netlink, nft). On failure nothing is left behind.
    pub fn setup(&self, record: &Record, port_bindings: &[ports::Binding]) -> Result<Attachment> {
        let container_id = record.id.as_str();
        let path = self.netns_path(container_id);
        netns::remove(&path)?;
        netns::create(&path)?;
        let mut attachment = Attachment {
            netns: Some(path),
            ..Attachment::default()
        };
        let result = self.attach_all(
            container_id,
            &record.networks,
            port_bindings,
            &mut attachment,
        );
        if let Err(e) = result {
            self.teardown(container_id, &attachment.endpoints);
            return Err(e);
        }
        for endpoint in attachment.endpoints.values() {
            self.register_names(record, endpoint);
        }
        Ok(attachment)
    }

    fn attach_all(
        &self,
        container_id: &str,
        requested: &BTreeMap<String, Endpoint>,
        port_bindings: &[ports::Binding],
        attachment: &mut Attachment,
    ) -> Result<()> {
        let ns = netns::Netns::open(attachment.netns.as_deref().expect("netns made"))?;
        if requested.is_empty() {
            // `none`: only loopback, up.
            ns.run(|| Netlink::connect()?.set_up("lo"))??;
        }
        for (index, (name, wanted)) in requested.iter().enumerate() {
            let endpoint = self.attach_one(container_id, &ns, index, name, wanted)?;
            attachment.endpoints.insert(name.clone(), endpoint);
        }
        if !port_bindings.is_empty() {
            let routed = |e: &&Endpoint| {
                self.state()
                    .networks
                    .get(&e.network_id)
                    .is_some_and(|n| !n.internal)
            };
            let routed = attachment.endpoints.values().find(routed);
            let ip6 = routed.and_then(|e| e.ip6).map(|ip6| ip6.addr());
            let ip = routed.and_then(|e| e.ip).ok_or_else(|| {
                NetworkError::Invalid(
                    "published ports need a network with a gateway (not --internal)".into(),
                )
            })?;
            let mut state = self.state();
            let taken: Vec<PortMapping> = state.ports.values().flatten().cloned().collect();
            let mappings = ports::allocate(port_bindings, ip.addr(), ip6, &taken)?;
            state
                .ports
                .insert(container_id.to_string(), mappings.clone());
            if let Err(e) = self.apply_firewall(&state) {
                state.ports.remove(container_id);
                return Err(e);
            }
            attachment.ports = mappings;
        }
        Ok(())
    }

    /// One interface (`eth<index>`) on the network `name`.
    fn attach_one(
        &self,
        container_id: &str,
        ns: &netns::Netns,
        index: usize,
        name: &str,
        wanted: &Endpoint,
    ) -> Result<Endpoint> {
        let network = self.get(if wanted.network_id.is_empty() {
            name
        } else {
            &wanted.network_id
        })?;
        if network.driver != BRIDGE {
            return Err(NetworkError::Invalid(format!(
                "container cannot be connected to network {} (driver {}) together with others",
                network.name, network.driver
            )));
        }
        let network = self.ensure_up(&network)?;
        let (subnet, gateway) = (network.subnet.expect("up"), network.gateway.expect("up"));
        let ip = self.reserve_address(container_id, &network, wanted.requested_ip)?;
        let host_ifname = host_ifname(container_id, index);
        let iface = Interface {
            host_name: host_ifname.clone(),
            name: format!("eth{index}"),
            bridge: network.bridge.clone(),
            address: Ipv4Net::new(ip, subnet.prefix_len()).expect("prefix of a subnet"),
            default_gateway: (index == 0 && !network.internal).then_some(gateway),
            address6: network.subnet6.map(|s6| {
                Ipv6Net::new(ipam::ipv6_twin(&subnet, ip, &s6), s6.prefix_len())
                    .expect("prefix of a subnet")
            }),
            default_gateway6: network.gateway6.filter(|_| index == 0 && !network.internal),
            mtu: network.mtu(),
        };
        if let Err(e) = link::attach(ns, &iface) {
            self.release_address(container_id, &network.id);
            return Err(e.into());
        }
        Ok(Endpoint {
            network_id: network.id.clone(),
            aliases: wanted.aliases.clone(),
            requested_ip: wanted.requested_ip,
            endpoint_id: kapsel_network_id(),
            ip: Some(iface.address),
            gateway: Some(gateway),
            ip6: iface.address6,
            gateway6: network.gateway6,
            host_ifname,
        })
    }

    fn reserve_address(
        &self,
        container_id: &str,
        network: &NetworkRecord,
        requested: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr> {
        let subnet = network.subnet.expect("up");
        let mut state = self.state();
        let mut taken: HashSet<Ipv4Addr> = state
            .attached
            .values()
            .filter_map(|nets| nets.get(&network.id).copied())
            .collect();
        taken.extend(network.gateway);
        taken.extend(
            state
                .releasing
                .iter()
                .filter(|(net, _)| *net == network.id)
                .map(|(_, ip)| *ip),
        );
        let ip = match requested {
            Some(ip) if !subnet.contains(&ip) => {
                return Err(NetworkError::Invalid(format!(
                    "invalid address {ip}: it does not belong to any of this network's subnets ({subnet})"
                )))
            }
            Some(ip) if taken.contains(&ip) => {
                return Err(NetworkError::AddressTaken { ip, network: network.name.clone() })
            }
            Some(ip) => ip,
            None => ipam::next_address(&subnet, network.ip_range.as_ref(), &taken)
                .ok_or_else(|| NetworkError::Exhausted(network.name.clone()))?,
        };
        state
            .attached
            .entry(container_id.to_string())
            .or_default()
            .insert(network.id.clone(), ip);
        Ok(ip)
    }

    fn release_address(&self, container_id: &str, network_id: &str) {
        let mut state = self.state();
        if let Some(nets) = state.attached.get_mut(container_id) {
            nets.remove(network_id);
            if nets.is_empty() {
                state.attached.remove(container_id);
            }
        }
    }

    /// `network connect` on a running container: one more interface in its namespace.
    pub fn connect(&self, record: &Record, name: &str, wanted: &Endpoint) -> Result<Endpoint> {
        let ns = netns::Netns::open(&self.netns_path(&record.id))?;
        // The first interface number no endpoint of it uses: after a disconnect, the
        // count would name a veth still in use.
        let used: Vec<&str> = record
            .networks
            .values()
            .map(|e| e.host_ifname.as_str())
            .collect();
        let index = (0..)
            .find(|i| !used.contains(&host_ifname(&record.id, *i).as_str()))
            .expect("a free interface number");
        let endpoint = self.attach_one(&record.id, &ns, index, name, wanted)?;
        self.register_names(record, &endpoint);
        Ok(endpoint)
    }

    /// `network disconnect` from a running container.
    pub fn disconnect(&self, record: &Record, endpoint: &Endpoint) -> Result<()> {
        if let Some(resolver) = self.resolvers().get(&endpoint.network_id) {
            resolver.names.remove(&record.id);
        }
        self.release_address(&record.id, &endpoint.network_id);
        Ok(link::detach(&endpoint.host_ifname)?)
    }

    /// After a container stopped: its names, namespace and ports go at once; its veths
    /// in the background (deleting a link waits for an RCU grace period, which the
    /// container's exit and removal need not), its addresses staying taken until then.
    /// Best effort: what cannot be removed is logged (a later start replaces it).
    pub fn teardown(&self, container_id: &str, endpoints: &BTreeMap<String, Endpoint>) {
        for resolver in self.resolvers().values() {
            resolver.names.remove(container_id);
        }
        if let Err(e) = netns::remove(&self.netns_path(container_id)) {
            tracing::warn!(container = %container_id, "{e}");
        }
        // By index, not name: a restart may make a veth of the same name meanwhile.
        let veths: Vec<u32> = Netlink::connect()
            .map(|nl| {
                endpoints
                    .values()
                    .filter_map(|e| nl.index_of(&e.host_ifname).ok().flatten())
                    .collect()
            })
            .unwrap_or_default();
        let mut state = self.state();
        let held: Vec<(String, Ipv4Addr)> = state
            .attached
            .remove(container_id)
            .unwrap_or_default()
            .into_iter()
            .collect();
        state.releasing.extend(held.iter().cloned());
        if state.ports.remove(container_id).is_some() {
            if let Err(e) = self.apply_firewall(&state) {
                tracing::warn!(container = %container_id, "removing its published ports: {e}");
            }
        }
        drop(state);
        let (state, id) = (self.state.clone(), container_id.to_string());
        // Its addresses are free once its veths are gone.
        let deletion = std::thread::spawn(move || {
            if let Ok(nl) = Netlink::connect() {
                for index in veths {
                    if let Err(e) = nl.delete_index(index) {
                        tracing::warn!(container = %id, "removing its veth: {e}");
                    }
                }
            }
            let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
            state.releasing.retain(|taken| !held.contains(taken));
        });
        self.pending().push(deletion);
    }

    pub(super) fn pending(&self) -> MutexGuard<'_, Vec<std::thread::JoinHandle<()>>> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|t| !t.is_finished());
        pending
    }
}

/// The host end of a container's `index`th veth: unique on the host, ≤ 15 bytes.
fn host_ifname(container_id: &str, index: usize) -> String {
    format!("kv{}{index}", &container_id[..12])
}
