//! The /etc/hostname, /etc/hosts and /etc/resolv.conf a container gets, written by the
//! engine into the container's directory and bind-mounted, as Docker does.

use std::path::Path;

use super::record::HostConfig;
use super::ContainerError;

pub fn write(dir: &Path, hostname: &str, host: &HostConfig) -> Result<(), ContainerError> {
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text)
            .map_err(|e| ContainerError::io(&format!("writing {}", path.display()), e))
    };
    write("hostname", format!("{hostname}\n"))?;
    write("hosts", hosts(hostname, host))?;
    write("resolv.conf", resolv_conf(host))
}

fn hosts(hostname: &str, host: &HostConfig) -> String {
    let mut text = if host.network_mode == "host" {
        std::fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
             ff02::2\tip6-allrouters\n127.0.1.1\t{hostname}\n"
        )
    };
    // --add-host name:ip (Docker also accepts name=ip).
    for entry in host.extra_hosts.iter().flatten() {
        if let Some((name, ip)) = entry.split_once(':').or_else(|| entry.split_once('=')) {
            let ip = if ip == "host-gateway" {
                "127.0.0.1"
            } else {
                ip
            };
            text.push_str(&format!("{ip}\t{name}\n"));
        }
    }
    text
}

/// `--dns`/`--dns-search`/`--dns-option`, else the host's file; loopback name servers are
/// dropped outside the host's network namespace, where they would not answer.
fn resolv_conf(host: &HostConfig) -> String {
    let host_file = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let own_netns = host.network_mode != "host";
    let mut servers: Vec<String> = host.dns.clone().unwrap_or_default();
    let mut search: Vec<String> = host.dns_search.clone().unwrap_or_default();
    let mut options: Vec<String> = host.dns_options.clone().unwrap_or_default();
    for line in host_file.lines() {
        let mut words = line.split_whitespace();
        let (key, rest): (_, Vec<&str>) = (words.next(), words.collect());
        match key {
            Some("nameserver") if host.dns.is_none() => {
                if let Some(ip) = rest.first() {
                    let loopback = ip.starts_with("127.") || *ip == "::1";
                    if !(own_netns && loopback) {
                        servers.push(ip.to_string());
                    }
                }
            }
            Some("search") if host.dns_search.is_none() => {
                search.extend(rest.iter().map(|s| s.to_string()))
            }
            Some("options") if host.dns_options.is_none() => {
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
        assert!(hosts("abc", &host).contains("10.0.0.5\tdb\n"));
        assert!(hosts("abc", &host).contains("127.0.1.1\tabc\n"));
        let resolv = resolv_conf(&host);
        assert!(resolv.starts_with("nameserver 192.0.2.1\n"), "{resolv}");
        assert!(resolv.contains("search example.org\n"));
    }
}
