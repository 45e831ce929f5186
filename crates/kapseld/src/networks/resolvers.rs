//! The networks' embedded DNS servers: one per bridge network, on its gateway, answering
//! each client from the names of every network it is on.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, MutexGuard};

use kapsel_network::dns::{DnsServer, NameTable};

use super::record::{Endpoint, NetworkRecord};
use super::{Networks, Result};
use crate::containers::record::Record;

/// A network's embedded DNS server: its names, and the task serving them.
pub(super) struct Resolver {
    pub(super) names: Arc<NameTable>,
    pub(super) task: tokio::task::JoinHandle<()>,
}

impl Networks {
    /// The network's DNS server on its gateway, port 53: container names on
    /// user-defined networks, forwarding to the host's servers for everything else.
    pub(super) fn start_resolver(&self, network: &NetworkRecord, gateway: Ipv4Addr) -> Result<()> {
        if let Some(old) = self.resolvers().remove(&network.id) {
            self.stop_resolver(old);
        }
        let names = NameTable::new();
        let host_file = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let upstreams = kapsel_network::dns::upstreams_from_resolv_conf(&host_file);
        let server = self.runtime.block_on(DnsServer::bind(
            (gateway, 53).into(),
            self.scope(&network.id),
            upstreams,
        ))?;
        let task = self.runtime.spawn(server.serve());
        self.resolvers()
            .insert(network.id.clone(), Resolver { names, task });
        Ok(())
    }

    /// Stops a DNS server and waits until its serving task is gone, which closes its
    /// sockets (unless a query is still in flight), so that the address is free before the
    /// bridge (and with it the subnet) goes, for whoever takes it next.
    pub(super) fn stop_resolver(&self, resolver: Resolver) {
        resolver.task.abort();
        let _ = self.runtime.block_on(resolver.task);
    }

    pub(super) fn resolvers(&self) -> MutexGuard<'_, BTreeMap<String, Resolver>> {
        self.resolvers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What a client of `network_id`'s resolver sees: the names of every network the
    /// container with that address is on (only this network's for other clients).
    pub(super) fn scope(&self, network_id: &str) -> kapsel_network::dns::Scope {
        let (state, resolvers, network_id) = (
            self.state.clone(),
            self.resolvers.clone(),
            network_id.to_string(),
        );
        Arc::new(move |client| {
            let networks: Vec<String> = {
                let state = state.lock().unwrap_or_else(|p| p.into_inner());
                state
                    .attached
                    .values()
                    .find(|nets| {
                        IpAddr::V4(
                            nets.get(&network_id)
                                .copied()
                                .unwrap_or(Ipv4Addr::UNSPECIFIED),
                        ) == client
                    })
                    .map(|nets| nets.keys().cloned().collect())
                    .unwrap_or_else(|| vec![network_id.clone()])
            };
            let resolvers = resolvers.lock().unwrap_or_else(|p| p.into_inner());
            networks
                .iter()
                .filter_map(|n| resolvers.get(n).map(|r| r.names.clone()))
                .collect()
        })
    }

    /// The names a container answers to on a user-defined network: its name, its short
    /// ID and its aliases, as Docker's resolver has them.
    pub(super) fn register_names(&self, record: &Record, endpoint: &Endpoint) {
        let Some(ip) = endpoint.ip else { return };
        let user_defined = self
            .state()
            .networks
            .get(&endpoint.network_id)
            .is_some_and(|n| !n.is_predefined());
        if !user_defined {
            return;
        }
        let mut names = vec![record.name.clone(), record.short_id().to_string()];
        names.extend(endpoint.aliases.iter().cloned());
        if let Some(resolver) = self.resolvers().get(&endpoint.network_id) {
            let addrs: Vec<IpAddr> = std::iter::once(IpAddr::V4(ip.addr()))
                .chain(endpoint.ip6.map(|ip6| IpAddr::V6(ip6.addr())))
                .collect();
            resolver.names.insert(&record.id, &names, &addrs);
        }
    }
}
