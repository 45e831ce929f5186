//! Published ports: Docker's `PortBindings` and `-P` (`PublishAllPorts` with the image's
//! `ExposedPorts`) turned into the mappings the firewall DNATs, with host port 0 or empty
//! given a free ephemeral port.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr, TcpListener, UdpSocket};

use kapsel_network::firewall::{PortMapping, Protocol};
use serde_json::{json, Value};

use super::NetworkError;

/// One `PortBindings` entry: `"80/tcp": [{"HostIp": "", "HostPort": "8080"}]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub protocol: Protocol,
    pub container_port: u16,
    pub host_ip: Option<Ipv4Addr>,
    /// 0: any free port.
    pub host_port: u16,
}

fn parse_key(key: &str) -> Result<(u16, Protocol), NetworkError> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let protocol = match proto {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        other => {
            return Err(NetworkError::Invalid(format!(
                "invalid proto '{other}' in port {key}: use tcp or udp"
            )))
        }
    };
    let port =
        port.parse().ok().filter(|p| *p > 0).ok_or_else(|| {
            NetworkError::Invalid(format!("invalid port {key}: not a port number"))
        })?;
    Ok((port, protocol))
}

/// The bindings a container asks for: explicit ones, plus every exposed port on an
/// ephemeral host port with `-P`.
pub fn requested(
    port_bindings: Option<&Value>,
    publish_all: bool,
    exposed: Option<&Value>,
) -> Result<Vec<Binding>, NetworkError> {
    let mut bindings = Vec::new();
    let explicit = port_bindings.and_then(Value::as_object);
    for (key, hosts) in explicit.into_iter().flatten() {
        let (container_port, protocol) = parse_key(key)?;
        for host in hosts.as_array().into_iter().flatten() {
            let host_ip = match host["HostIp"].as_str().unwrap_or("") {
                "" | "0.0.0.0" => None,
                ip => Some(ip.parse().map_err(|_| {
                    NetworkError::Invalid(format!(
                        "invalid host IP {ip} for port {key}: use an IPv4 address"
                    ))
                })?),
            };
            let host_port = match host["HostPort"].as_str().unwrap_or("") {
                "" => 0,
                port => port.parse().map_err(|_| {
                    NetworkError::Invalid(format!("invalid host port {port} for port {key}"))
                })?,
            };
            bindings.push(Binding {
                protocol,
                container_port,
                host_ip,
                host_port,
            });
        }
    }
    if publish_all {
        for key in exposed
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            if explicit.is_some_and(|e| e.contains_key(key)) {
                continue;
            }
            let (container_port, protocol) = parse_key(key)?;
            bindings.push(Binding {
                protocol,
                container_port,
                host_ip: None,
                host_port: 0,
            });
        }
    }
    Ok(bindings)
}

/// Mappings for `bindings` to `container_ip`; `taken` are the ports other containers
/// publish. A fixed port taken already is an error, as in Docker.
pub fn allocate(
    bindings: &[Binding],
    container_ip: Ipv4Addr,
    container_ip6: Option<Ipv6Addr>,
    taken: &[PortMapping],
) -> Result<Vec<PortMapping>, NetworkError> {
    let mut out: Vec<PortMapping> = Vec::new();
    for b in bindings {
        let clash = |port: u16, others: &[PortMapping]| {
            others.iter().any(|m| {
                m.protocol == b.protocol
                    && m.host_port == port
                    && (m.host_ip.is_none() || b.host_ip.is_none() || m.host_ip == b.host_ip)
            })
        };
        let host_port = if b.host_port == 0 {
            ephemeral_port(b.protocol, |p| clash(p, taken) || clash(p, &out))?
        } else if clash(b.host_port, taken) || clash(b.host_port, &out) {
            return Err(NetworkError::PortTaken {
                port: b.host_port,
                protocol: b.protocol.as_str(),
            });
        } else {
            b.host_port
        };
        out.push(PortMapping {
            protocol: b.protocol,
            host_ip: b.host_ip,
            host_port,
            container_ip,
            container_port: b.container_port,
            container_ip6: container_ip6.filter(|_| b.host_ip.is_none()),
        });
    }
    Ok(out)
}

/// A port the kernel hands out as free (so no host program listens on it) and that no
/// container publishes.
fn ephemeral_port(
    protocol: Protocol,
    published: impl Fn(u16) -> bool,
) -> Result<u16, NetworkError> {
    for _ in 0..64 {
        let port = match protocol {
            Protocol::Tcp => TcpListener::bind(("0.0.0.0", 0)).and_then(|l| l.local_addr()),
            Protocol::Udp => UdpSocket::bind(("0.0.0.0", 0)).and_then(|s| s.local_addr()),
        }
        .map_err(|e| NetworkError::Invalid(format!("finding a free host port: {e}")))?
        .port();
        if !published(port) {
            return Ok(port);
        }
    }
    Err(NetworkError::Invalid("no free host port left".into()))
}

/// `NetworkSettings.Ports` as Docker shows it: every exposed or published port, with
/// its host bindings (null when only exposed).
pub fn settings(mappings: &[PortMapping], exposed: Option<&Value>) -> Value {
    let mut ports: BTreeMap<String, Value> = BTreeMap::new();
    for key in exposed
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
    {
        let key = if key.contains('/') {
            key.clone()
        } else {
            format!("{key}/tcp")
        };
        ports.insert(key, Value::Null);
    }
    for m in mappings {
        let key = format!("{}/{}", m.container_port, m.protocol.as_str());
        let entry = ports.entry(key).or_insert(Value::Null);
        if entry.is_null() {
            *entry = json!([]);
        }
        for host_ip in host_ips(m) {
            entry
                .as_array_mut()
                .expect("an array")
                .push(json!({"HostIp": host_ip, "HostPort": m.host_port.to_string()}));
        }
    }
    json!(ports)
}

/// `docker ps`'s `Ports` list.
pub fn summary(mappings: &[PortMapping]) -> Value {
    json!(mappings
        .iter()
        .flat_map(|m| host_ips(m).into_iter().map(move |ip| json!({
            "IP": ip,
            "PrivatePort": m.container_port,
            "PublicPort": m.host_port,
            "Type": m.protocol.as_str(),
        })))
        .collect::<Vec<_>>())
}

/// The host addresses a mapping listens on, as Docker writes them.
fn host_ips(m: &PortMapping) -> Vec<String> {
    match m.host_ip {
        Some(ip) => vec![ip.to_string()],
        None if m.container_ip6.is_some() => vec!["0.0.0.0".into(), "::".into()],
        None => vec!["0.0.0.0".into()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_parse_as_the_docker_cli_sends_them() {
        let bindings = json!({"80/tcp": [{"HostIp": "", "HostPort": "8080"}], "53/udp": [{"HostIp": "127.0.0.1", "HostPort": ""}]});
        let exposed = json!({"80/tcp": {}, "443/tcp": {}});
        let got = requested(Some(&bindings), true, Some(&exposed)).unwrap();
        assert!(got.contains(&Binding {
            protocol: Protocol::Tcp,
            container_port: 80,
            host_ip: None,
            host_port: 8080
        }));
        assert!(got.contains(&Binding {
            protocol: Protocol::Udp,
            container_port: 53,
            host_ip: Some(Ipv4Addr::LOCALHOST),
            host_port: 0
        }));
        assert!(got.contains(&Binding {
            protocol: Protocol::Tcp,
            container_port: 443,
            host_ip: None,
            host_port: 0
        }));
        assert_eq!(got.len(), 3);
        assert!(requested(Some(&json!({"80/sctp": [{}]})), false, None).is_err());
    }

    #[test]
    fn a_taken_port_is_refused_and_ephemeral_ones_differ() {
        let ip = Ipv4Addr::new(172, 17, 0, 2);
        let fixed = Binding {
            protocol: Protocol::Tcp,
            container_port: 80,
            host_ip: None,
            host_port: 8080,
        };
        let first = allocate(std::slice::from_ref(&fixed), ip, None, &[]).unwrap();
        assert!(matches!(
            allocate(&[fixed], ip, None, &first),
            Err(NetworkError::PortTaken { port: 8080, .. })
        ));
        let any = Binding {
            protocol: Protocol::Tcp,
            container_port: 80,
            host_ip: None,
            host_port: 0,
        };
        let two = allocate(&[any.clone(), any], ip, None, &first).unwrap();
        assert_ne!(two[0].host_port, two[1].host_port);
        assert!(two.iter().all(|m| m.host_port != 8080 && m.host_port != 0));
    }
}
