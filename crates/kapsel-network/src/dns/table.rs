//! The names one network's resolver answers: the container names, aliases and short IDs
//! of that network's members, each mapped to the member's addresses.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

#[derive(Default)]
pub struct NameTable {
    /// Members by endpoint (container id). Networks have tens of members, so lookups scan
    /// the members rather than keep a second index by name in step.
    endpoints: RwLock<BTreeMap<String, Endpoint>>,
    /// Advanced on every lookup so that members sharing an alias take turns coming first.
    rotation: AtomicUsize,
}

struct Endpoint {
    /// Lower-case, without trailing dot; the first is the one PTR answers give.
    names: Vec<String>,
    addrs: Vec<IpAddr>,
}

impl NameTable {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Records the names (container name first, then aliases and short id) of one
    /// endpoint, replacing what was recorded for it before.
    pub fn insert(&self, endpoint: &str, names: &[String], addrs: &[IpAddr]) {
        let names = names.iter().map(|name| normalize(name)).collect();
        let entry = Endpoint {
            names,
            addrs: addrs.to_vec(),
        };
        self.write().insert(endpoint.to_owned(), entry);
    }

    pub fn remove(&self, endpoint: &str) {
        self.write().remove(endpoint);
    }

    /// The addresses of every member known by `name` (case-insensitive, trailing dot
    /// optional), in rotated order; `None` when no member has that name.
    pub fn addresses(&self, name: &str) -> Option<Vec<IpAddr>> {
        let name = normalize(name);
        let endpoints = self
            .endpoints
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let members: Vec<&Endpoint> = endpoints
            .values()
            .filter(|endpoint| endpoint.names.contains(&name))
            .collect();
        if members.is_empty() {
            return None;
        }
        let turn = self.rotation.fetch_add(1, Ordering::Relaxed) % members.len();
        let rotated = members[turn..].iter().chain(&members[..turn]);
        Some(rotated.flat_map(|member| member.addrs.clone()).collect())
    }

    /// The primary name of the member that has `addr`.
    pub fn name_of(&self, addr: IpAddr) -> Option<String> {
        let endpoints = self
            .endpoints
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        endpoints
            .values()
            .find(|endpoint| endpoint.addrs.contains(&addr))
            .and_then(|endpoint| endpoint.names.first().cloned())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Endpoint>> {
        // A panic elsewhere while holding the lock leaves the map consistent (each change is
        // a single insert or remove), so a poisoned lock is still usable.
        self.endpoints
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}
