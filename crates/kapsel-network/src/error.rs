//! Errors of the networking layer, each naming the object it concerns.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("network namespace {path}: {source}")]
    Netns {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("netlink: {what}: {source}")]
    Netlink {
        what: String,
        source: rtnetlink::Error,
    },
    #[error("no network interface named {name}")]
    NoSuchLink { name: String },
    #[error("sysctl {key}: {source}")]
    Sysctl { key: String, source: std::io::Error },
    #[error("nftables table inet {table}: {message} (is the nftables package installed?)")]
    Firewall { table: String, message: String },
    #[error(
        "embedded DNS: cannot listen on {addr}: {source} (is another DNS server, such as dnsmasq, bound to it?)"
    )]
    DnsBind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
