//! The /etc/hostname, /etc/hosts and /etc/resolv.conf a container gets, written by the
//! engine into the container's directory and bind-mounted, as Docker does.

use std::net::Ipv4Addr;
use std::path::Path;

use super::record::HostConfig;
use super::ContainerError;

/// `address`: the container's first network address; `resolver`: the embedded DNS
/// server it uses (its first network's gateway).
pub fn write(
    dir: &Path,
    hostname: &str,
    host: &HostConfig,
    address: Option<Ipv4Addr>,
    resolver: Option<Ipv4Addr>,
) -> Result<(), ContainerError> {
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text)
            .map_err(|e| ContainerError::io(&format!("writing {}", path.display()), e))
    };
    write("hostname", format!("{hostname}\n"))?;
    write("hosts", hosts(hostname, host, address, resolver))?;
    write("resolv.conf", resolv_conf(host, resolver))
}

/// `gateway`: what `host-gateway` stands for (the host as the container reaches it).
fn hosts(
    hostname: &str,
    host: &HostConfig,
    address: Option<Ipv4Addr>,
    gateway: Option<Ipv4Addr>,
) -> String {
    let gateway = gateway.map_or("127.0.0.1".to_string(), |ip| ip.to_string());
    let own = address.map_or("127.0.1.1".to_string(), |ip| ip.to_string());
    let mut text = if host.network_mode == "host" {
        std::fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
             ff02::2\tip6-allrouters\n{own}\t{hostname}\n"
        )
    };
    // --add-host name:ip (Docker also accepts name=ip).
    for entry in host.extra_hosts.iter().flatten() {
        if let Some((name, ip)) = entry.split_once(':').or_else(|| entry.split_once('=')) {
            let ip = if ip == "host-gateway" { &gateway } else { ip };
            text.push_str(&format!("{ip}\t{name}\n"));
        }
    }
    text
}

/// `--dns`/`--dns-search`/`--dns-option`, else the embedded resolver on the network's
/// gateway (which forwards to the host's servers, loopback ones included), else the
/// host's file without loopback servers, which would not answer in another namespace.
fn resolv_conf(host: &HostConfig, resolver: Option<Ipv4Addr>) -> String {
    let host_file = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let own_netns = host.network_mode != "host";
    // The docker CLI sends empty lists for flags not given.
    let given = |list: &Option<Vec<String>>| list.clone().filter(|l| !l.is_empty());
    let (dns, dns_search, dns_options) = (
        given(&host.dns),
        given(&host.dns_search),
        given(&host.dns_options),
    );
    let use_host_servers = dns.is_none() && resolver.is_none();
    let mut servers: Vec<String> = match &dns {
        Some(list) => list.clone(),
        None => resolver.map(|ip| ip.to_string()).into_iter().collect(),
    };
    let mut search: Vec<String> = dns_search.clone().unwrap_or_default();
    let mut options: Vec<String> = dns_options.clone().unwrap_or_default();
    for line in host_file.lines() {
        let mut words = line.split_whitespace();
        let (key, rest): (_, Vec<&str>) = (words.next(), words.collect());
        match key {
            Some("nameserver") if use_host_servers => {
                if let Some(ip) = rest.first() {
                    let loopback = ip.starts_with("127.") || *ip == "::1";
                    if !(own_netns && loopback) {
                        servers.push(ip.to_string());
                    }
                }
            }
            Some("search") if dns_search.is_none() => {
                search.extend(rest.iter().map(|s| s.to_string()))
            }
            Some("options") if dns_options.is_none() => {
                options.extend(rest.iter().map(|s| s.to_string()))
            }
            _ => {}
        }
    }
    let mut text = String::new();
    for s in servers {
        text.push_str(&format!("nameserver {s}\n"));
    }
    if !search.is_empty() {
        text.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        text.push_str(&format!("options {}\n", options.join(" ")));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_hosts_and_dns_are_written() {
        let host: HostConfig = serde_json::from_value(serde_json::json!({
            "ExtraHosts": ["db:10.0.0.5"], "Dns": ["192.0.2.1"], "DnsSearch": ["example.org"]
        }))
        .unwrap();
        assert!(hosts("abc", &host, None, None).contains("10.0.0.5\tdb\n"));
        assert!(hosts("abc", &host, None, None).contains("127.0.1.1\tabc\n"));
        let ip = Ipv4Addr::new(172, 18, 0, 2);
        assert!(hosts("abc", &host, Some(ip), None).contains("172.18.0.2\tabc\n"));
        let resolv = resolv_conf(&host, Some(Ipv4Addr::new(172, 18, 0, 1)));
        assert!(resolv.starts_with("nameserver 192.0.2.1\n"), "{resolv}");
        assert!(resolv.contains("search example.org\n"));
    }
}
