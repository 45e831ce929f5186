//! The connection log of networks created with `-o kapsel.log-connections=true`: the
//! firewall logs each new connection to an nflog group, a thread of ours reads them
//! ([`kapsel_network::connlog`]), writes them to the engine log and keeps the latest per
//! network for `GET /networks/{id}/connections`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use kapsel_network::connlog::{self, Connection};

/// How many connections are kept per network (the engine log has them all).
const KEPT: usize = 1000;

#[derive(Default)]
pub struct ConnectionLog {
    listening: AtomicBool,
    recent: Mutex<BTreeMap<String, VecDeque<Connection>>>,
}

impl ConnectionLog {
    /// Starts reading nflog `group`, once.
    pub fn start(self: &Arc<Self>, group: u16) {
        if self.listening.swap(true, Ordering::SeqCst) {
            return;
        }
        let log = self.clone();
        let spawned = std::thread::Builder::new()
            .name("connection-log".into())
            .spawn(move || {
                let result = connlog::listen(group, |c| log.record(c));
                if let Err(e) = result {
                    tracing::error!("connection log (nflog group {group}) stopped: {e}");
                }
                log.listening.store(false, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            tracing::error!("starting the connection log: {e}");
            self.listening.store(false, Ordering::SeqCst);
        }
    }

    fn record(&self, c: Connection) {
        tracing::info!(
            network = %c.network,
            protocol = c.protocol,
            source = %format!("{}:{}", c.source, c.source_port),
            destination = %format!("{}:{}", c.destination, c.destination_port),
            "new connection"
        );
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let kept = recent.entry(c.network.clone()).or_default();
        if kept.len() == KEPT {
            kept.pop_front();
        }
        kept.push_back(c);
    }

    /// The latest connections logged on `network`, oldest first.
    pub fn recent(&self, network: &str) -> Vec<Connection> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent
            .get(network)
            .map(|k| k.iter().cloned().collect())
            .unwrap_or_default()
    }
}
