//! Networks with the real docker CLI against a kapseld of the test's own: published
//! ports, names on user-defined networks, isolation, internal networks, connect and
//! disconnect, a daemon crash, and that nothing is left on the host afterwards. Traffic
//! stays on loopback and on the bridges the daemon under test made.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use common::*;

/// `GET /hostname` from a busybox httpd serving /etc.
fn http_hostname(addr: impl Into<std::net::SocketAddr>) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr.into(), Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    s.write_all(b"GET /hostname HTTP/1.0\r\n\r\n")?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    Ok(answer
        .rsplit("\r\n\r\n")
        .next()
        .unwrap_or("")
        .trim()
        .to_string())
}

/// The same from inside a container on `network`: the body, or "" when unreachable.
fn fetch_from(d: &Daemon, network: &str, host: &str) -> String {
    run_sh(
        d,
        &["--rm", "--network", network, "busybox"],
        &format!(
            "printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {host} 80 2>/dev/null | tail -n 1; true"
        ),
    )
    .trim()
    .to_string()
}

/// A web server container: busybox httpd answering its hostname (the short ID).
fn web(d: &Daemon, name: &str, extra: &[&str]) -> String {
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(extra);
    args.extend(["busybox", "httpd", "-f", "-p", "80", "-h", "/etc"]);
    ok(d, &args).trim()[..12].to_string()
}

fn published_port(d: &Daemon, name: &str) -> u16 {
    let out = ok(d, &["port", name, "80/tcp"]);
    let first = out.lines().next().expect("a binding");
    first
        .rsplit(':')
        .next()
        .unwrap()
        .trim()
        .parse()
        .expect("a port")
}

fn gateway(d: &Daemon, network: &str) -> Ipv4Addr {
    inspect(d, "{{(index .IPAM.Config 0).Gateway}}", network)
        .parse()
        .expect("an address")
}

#[test]
fn published_ports_and_names_on_a_user_network() {
    let Some(d) = daemon_with_busybox("net-publish") else {
        return;
    };
    ok(&d, &["network", "create", "front"]);
    let id = web(
        &d,
        "web",
        &[
            "--network",
            "front",
            "--network-alias",
            "www",
            "-p",
            "127.0.0.1:0:80",
        ],
    );
    let port = published_port(&d, "web");
    wait_for(
        || http_hostname((Ipv4Addr::LOCALHOST, port)).is_ok_and(|h| h == id),
        "web on 127.0.0.1",
    );
    assert!(ok(&d, &["ps"]).contains(&format!("127.0.0.1:{port}->80/tcp")));
    let shown = inspect(&d, "{{json .NetworkSettings.Ports}}", "web");
    assert_eq!(
        shown,
        format!("{{\"80/tcp\":[{{\"HostIp\":\"127.0.0.1\",\"HostPort\":\"{port}\"}}]}}")
    );

    // By name, by alias and by short ID from the same network.
    for name in ["web", "www", &id] {
        assert_eq!(
            fetch_from(&d, "front", name),
            id,
            "{name} from the same network"
        );
    }
    // Another network reaches neither the address nor the name.
    ok(&d, &["network", "create", "back"]);
    let ip = inspect(&d, "{{.NetworkSettings.Networks.front.IPAddress}}", "web");
    assert_eq!(
        fetch_from(&d, "back", &ip),
        "",
        "isolated from another network"
    );
    assert_eq!(
        fetch_from(&d, "back", "web"),
        "",
        "no name from another network"
    );

    // Connected to `front` while running, a `back` container gets eth1 and reaches it.
    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "client",
            "--network",
            "back",
            "busybox",
            "sleep",
            "1000",
        ],
    );
    ok(&d, &["network", "connect", "front", "client"]);
    let script = "ip -o -4 addr show | grep -c eth; printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc -w 2 web 80 | tail -n 1";
    let out = ok(&d, &["exec", "client", "sh", "-c", script]);
    assert!(out.contains(&id), "after connect: {out}");
    let members = inspect(&d, "{{len .Containers}}", "front");
    assert_eq!(members, "2");
    ok(&d, &["network", "disconnect", "front", "client"]);
    let out = ok(
        &d,
        &[
            "exec",
            "client",
            "sh",
            "-c",
            "ip -o link | grep -c eth; true",
        ],
    );
    assert_eq!(out.trim(), "1", "one interface left after disconnect");

    // A network in use cannot go; the predefined ones never.
    assert!(fails(&d, &["network", "rm", "front"]).contains("has active endpoints"));
    assert!(fails(&d, &["network", "rm", "bridge"]).contains("pre-defined"));
}

#[test]
fn default_bridge_publishes_on_every_local_address_and_survives_a_crash() {
    let Some(mut d) = daemon_with_busybox("net-crash") else {
        return;
    };
    let id = web(&d, "web", &["-p", "80"]);
    let port = published_port(&d, "web");
    let bridge_gateway = gateway(&d, "bridge");
    for host in [Ipv4Addr::LOCALHOST, bridge_gateway] {
        wait_for(
            || http_hostname((host, port)).is_ok_and(|h| h == id),
            "web published",
        );
    }
    // -P publishes every exposed port on an ephemeral one.
    let exposed = web(&d, "exposed", &["-P", "--expose", "80"]);
    let exposed_port = published_port(&d, "exposed");
    wait_for(
        || http_hostname((Ipv4Addr::LOCALHOST, exposed_port)).is_ok_and(|h| h == exposed),
        "-P with --expose",
    );
    ok(&d, &["rm", "-f", "exposed"]);
    let hosts = run_sh(
        &d,
        &["--rm", "--add-host", "outside:host-gateway", "busybox"],
        "cat /etc/hosts",
    );
    assert!(
        hosts.contains(&format!("{bridge_gateway}\toutside")),
        "host-gateway: {hosts}"
    );
    let resolv = run_sh(&d, &["--rm", "busybox"], "cat /etc/resolv.conf");
    assert!(
        resolv.contains(&format!("nameserver {bridge_gateway}")),
        "{resolv}"
    );

    // A container on two user networks, known by name on both.
    ok(&d, &["network", "create", "left"]);
    ok(&d, &["network", "create", "right"]);
    let both = web(&d, "both", &["--network", "left", "--network", "right"]);
    let links = ok(
        &d,
        &["exec", "both", "sh", "-c", "ip -o link | grep -c eth"],
    );
    assert_eq!(links.trim(), "2", "one interface per network");
    let left_ip = inspect(&d, "{{.NetworkSettings.Networks.left.IPAddress}}", "both");

    d.crash_and_restart(std::time::Duration::ZERO);
    assert_eq!(
        http_hostname((Ipv4Addr::LOCALHOST, port)).unwrap(),
        id,
        "after the crash"
    );
    assert_eq!(
        inspect(&d, "{{.NetworkSettings.Networks.left.IPAddress}}", "both"),
        left_ip,
        "addresses kept"
    );
    for network in ["left", "right"] {
        assert_eq!(
            fetch_from(&d, network, "both"),
            both,
            "names after the crash ({network})"
        );
    }
    let again = published_port(&d, "web");
    assert_eq!(again, port);
    // A second container cannot take the same host port.
    let out = fails(
        &d,
        &[
            "run",
            "-d",
            "-p",
            &format!("{port}:80"),
            "busybox",
            "sleep",
            "9",
        ],
    );
    assert!(out.contains("port is already allocated"), "{out}");
    ok(&d, &["stop", "-t", "0", "web"]);
    assert!(
        http_hostname((Ipv4Addr::LOCALHOST, port)).is_err(),
        "unpublished on stop"
    );

    // A clean shutdown with nothing running leaves no bridge, veth or table.
    let bridge = inspect(
        &d,
        "{{index .Options \"com.docker.network.bridge.name\"}}",
        "bridge",
    );
    let table = bridge.replacen("ks", "kapsel-", 1);
    drop(d);
    let links = Command::new("ip").args(["-o", "link"]).output().unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(!links.contains(&bridge), "bridge {bridge} removed");
    assert!(!links.contains(&format!("kv{id}")), "veth removed");
    let table_listed = Command::new("nft")
        .args(["list", "table", "inet", &table])
        .output()
        .unwrap();
    assert!(!table_listed.status.success(), "table {table} removed");
}

#[test]
fn internal_networks_reach_neither_out_nor_the_host() {
    let Some(d) = daemon_with_busybox("net-internal") else {
        return;
    };
    ok(&d, &["network", "create", "--internal", "sealed"]);
    ok(&d, &["network", "create", "open"]);
    // A server of the test's own on every host address (the bridges' gateways too).
    let listener = TcpListener::bind(("0.0.0.0", 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let _ = conn.write_all(b"HTTP/1.0 200 OK\r\n\r\nhost\n");
        }
    });
    let reach = |network: &str| {
        let gw = gateway(&d, network);
        run_sh(
            &d,
            &["--rm", "--network", network, "busybox"],
            &format!("nc -w 2 {gw} {port} </dev/null 2>/dev/null | tail -n 1; true"),
        )
        .trim()
        .to_string()
    };
    assert_eq!(reach("open"), "host", "a normal network reaches the host");
    assert_eq!(reach("sealed"), "", "an internal one does not");
    let route = run_sh(&d, &["--rm", "--network", "sealed", "busybox"], "ip route");
    assert!(!route.contains("default"), "no default route: {route}");
    // Names still resolve on the internal network.
    web(&d, "inside", &["--network", "sealed"]);
    let id = inspect(&d, "{{.Id}}", "inside")[..12].to_string();
    assert_eq!(fetch_from(&d, "sealed", "inside"), id);
}

#[test]
fn bad_network_input_is_refused_and_leaves_nothing() {
    let Some(d) = daemon_with_busybox("net-bad") else {
        return;
    };
    let create_first = [
        "network",
        "create",
        "--subnet",
        "10.123.0.0/24",
        "--ip-range",
        "10.123.0.128/25",
        "-o",
        "com.docker.network.bridge.name=kt-first",
        "-o",
        "com.docker.network.driver.mtu=1400",
        "first",
    ];
    ok(&d, &create_first);
    let script = "ip -o -4 addr show eth0; cat /sys/class/net/eth0/mtu";
    let shown = run_sh(&d, &["--rm", "--network", "first", "busybox"], script);
    assert!(
        shown.contains("inet 10.123.0.129/24"),
        "first address of the range: {shown}"
    );
    assert!(
        shown.trim_end().ends_with("1400"),
        "the network's MTU: {shown}"
    );
    let bridge_mtu = std::fs::read_to_string("/sys/class/net/kt-first/mtu").unwrap();
    assert_eq!(bridge_mtu.trim(), "1400", "the bridge, named as asked");
    let out = fails(
        &d,
        &[
            "network",
            "create",
            "-o",
            "com.docker.network.bridge.name=lo",
            "hijack",
        ],
    );
    assert!(out.contains("taken by an interface"), "{out}");
    let out = fails(
        &d,
        &["network", "create", "--subnet", "10.123.0.0/16", "second"],
    );
    assert!(out.contains("overlaps"), "{out}");
    assert!(fails(&d, &["network", "create", "first"]).contains("already exists"));
    let out = fails(
        &d,
        &[
            "run",
            "--rm",
            "--network",
            "first",
            "--ip",
            "10.9.9.9",
            "busybox",
            "true",
        ],
    );
    assert!(out.contains("10.9.9.9"), "{out}");
    let out = fails(
        &d,
        &["run", "--rm", "--network", "nowhere", "busybox", "true"],
    );
    assert!(out.contains("network nowhere not found"), "{out}");
    let out = fails(
        &d,
        &["run", "--rm", "--ip", "172.17.0.9", "busybox", "true"],
    );
    assert!(out.contains("user defined networks only"), "{out}");
    // A static address works, and the same one is refused to a second container.
    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "fixed",
            "--network",
            "first",
            "--ip",
            "10.123.0.50",
            "busybox",
            "sleep",
            "100",
        ],
    );
    assert_eq!(
        inspect(&d, "{{.NetworkSettings.Networks.first.IPAddress}}", "fixed"),
        "10.123.0.50"
    );
    let out = fails(
        &d,
        &[
            "run",
            "--name",
            "twin",
            "--network",
            "first",
            "--ip",
            "10.123.0.50",
            "busybox",
            "true",
        ],
    );
    assert!(out.contains("in use"), "{out}");
    let twin = inspect(&d, "{{.Id}}", "twin");
    let links = Command::new("ip").args(["-o", "link"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&links.stdout).contains(&format!("kv{}", &twin[..12])),
        "no veth of the failed start"
    );
    assert!(
        !d.dir.join("run/netns").join(&twin[..12]).exists(),
        "no namespace of the failed start"
    );
}

#[test]
fn connection_logging_records_who_talked_to_whom() {
    let Some(d) = daemon_with_busybox("net-log") else {
        return;
    };
    ok(
        &d,
        &[
            "network",
            "create",
            "-o",
            "kapsel.log-connections=true",
            "watched",
        ],
    );
    let listener = TcpListener::bind(("0.0.0.0", 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || for _ in listener.incoming() {});
    let gw = gateway(&d, "watched");
    let script = format!("nc -w 2 {gw} {port} </dev/null 2>/dev/null; ip -4 -o addr show eth0");
    let shown = run_sh(&d, &["--rm", "--network", "watched", "busybox"], &script);
    let source = shown
        .split_whitespace()
        .nth(3)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let wanted = [
        "\"network\":\"watched\"".to_string(),
        "\"protocol\":\"tcp\"".to_string(),
        format!("\"source\":\"{source}\""),
        format!("\"destination\":\"{gw}\""),
        format!("\"destination_port\":{port}"),
    ];
    wait_for(
        || {
            let log = d.http("GET", "/networks/watched/connections");
            log.split("},{")
                .any(|entry| wanted.iter().all(|w| entry.contains(w)))
        },
        "the test connection in the network's connection log",
    );
    let unlogged = d.http("GET", "/networks/bridge/connections");
    assert!(unlogged.contains("does not log connections"), "{unlogged}");
}

#[test]
fn compose_services_reach_each_other_by_name_on_the_project_network() {
    let Some(d) = daemon_with_busybox("net-compose") else {
        return;
    };
    let Some(project) = compose_project(
        &d,
        r#"version: "3.7"
services:
  web:
    image: busybox
    command: httpd -f -p 80 -h /etc
    stop_signal: SIGKILL
    ports: ["127.0.0.1::80"]
  client:
    image: busybox
    stop_signal: SIGKILL
    command: sleep 1000
"#,
    ) else {
        return;
    };
    let up = compose(&d, &project, &["up", "-d"]);
    let listed = ok(&d, &["ps", "-a"]);
    assert!(listed.contains("kapseltest_web_1"), "{up}\n{listed}");
    let networks = ok(&d, &["network", "ls", "--format", "{{.Name}}"]);
    assert!(
        networks.lines().any(|n| n == "kapseltest_default"),
        "{networks}"
    );
    let id = inspect(&d, "{{.Config.Hostname}}", "kapseltest_web_1");
    let script = "printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc -w 2 web 80 | tail -n 1";
    let answer = ok(&d, &["exec", "kapseltest_client_1", "sh", "-c", script]);
    assert_eq!(
        answer.trim(),
        id,
        "the client reaches the web service by name"
    );
    let port = published_port(&d, "kapseltest_web_1");
    wait_for(
        || http_hostname((Ipv4Addr::LOCALHOST, port)).is_ok_and(|h| h == id),
        "web published",
    );
    compose(&d, &project, &["down"]);
    let networks = ok(&d, &["network", "ls", "--format", "{{.Name}}"]);
    assert!(!networks.contains("kapseltest_default"), "{networks}");
}

/// A namespace of the test's own, linked to the host by a veth pair: another host on a
/// point-to-point link (198.18.0.0/15, the benchmarking range). Removed on drop.
struct OtherHost {
    netns: String,
    host_end: String,
    host_ip: Ipv4Addr,
}

impl OtherHost {
    fn new() -> OtherHost {
        let pid = std::process::id();
        let (a, b) = ((pid >> 8) as u8, (pid as u8) & 0xfc);
        let other = OtherHost {
            netns: format!("kapsel-test-other-{pid}"),
            host_end: format!("kto{pid:x}"),
            host_ip: Ipv4Addr::new(198, 18 + (a & 1), b, 1),
        };
        let peer = format!("kti{pid:x}");
        let other_ip = Ipv4Addr::new(198, 18 + (a & 1), b, 2);
        let ns = other.netns.clone();
        for args in [
            vec!["netns", "add", &ns],
            vec![
                "link",
                "add",
                &other.host_end,
                "type",
                "veth",
                "peer",
                "name",
                &peer,
            ],
            vec!["link", "set", &peer, "netns", &ns],
            vec![
                "addr",
                "add",
                &format!("{}/30", other.host_ip),
                "dev",
                &other.host_end,
            ],
            vec!["link", "set", &other.host_end, "up"],
            vec![
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{other_ip}/30"),
                "dev",
                &peer,
            ],
            vec!["-n", &ns, "link", "set", &peer, "up"],
            vec!["-n", &ns, "link", "set", "lo", "up"],
        ] {
            let out = Command::new("ip").args(&args).output().unwrap();
            assert!(
                out.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        other
    }

    /// `GET /hostname` from the other host to `host_ip:port`: the body, or "".
    fn fetch(&self, port: u16) -> String {
        let script = format!(
            "printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 2 {} {port} | tail -n 1",
            self.host_ip
        );
        let out = Command::new("ip")
            .args(["netns", "exec", &self.netns, "sh", "-c", &script])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for OtherHost {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_end])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .output();
    }
}

#[test]
fn published_ports_answer_another_host() {
    let Some(d) = daemon_with_busybox("net-other-host") else {
        return;
    };
    let other = OtherHost::new();
    let id = web(&d, "web", &["-p", "80"]);
    let port = published_port(&d, "web");
    wait_for(
        || other.fetch(port) == id,
        "the published port from another host",
    );
    let only_local = web(&d, "local-only", &["-p", "127.0.0.1::80"]);
    let local_port = published_port(&d, "local-only");
    wait_for(
        || http_hostname((Ipv4Addr::LOCALHOST, local_port)).is_ok_and(|h| h == only_local),
        "the loopback-only port from the host",
    );
    assert_eq!(
        other.fetch(local_port),
        "",
        "a port published on 127.0.0.1 only"
    );
}

#[test]
fn ipv6_networks_give_addresses_routes_and_names() {
    let Some(d) = daemon_with_busybox("net-ipv6") else {
        return;
    };
    let subnet6 = format!("fd42:{:x}::/64", std::process::id() & 0xffff);
    ok(
        &d,
        &["network", "create", "--ipv6", "--subnet", &subnet6, "six"],
    );
    assert_eq!(inspect(&d, "{{.EnableIPv6}}", "six"), "true");
    let gateway6 = inspect(&d, "{{(index .IPAM.Config 1).Gateway}}", "six");
    let prefix = subnet6.trim_end_matches(":/64");
    assert_eq!(gateway6, format!("{prefix}:1"));
    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "one",
            "--network",
            "six",
            "busybox",
            "sleep",
            "1000",
        ],
    );
    let one6 = inspect(
        &d,
        "{{.NetworkSettings.Networks.six.GlobalIPv6Address}}",
        "one",
    );
    assert!(one6.starts_with(prefix), "{one6} in {subnet6}");
    let script = "ip -6 route show default; ping -6 -c1 -W2 one >/dev/null && echo reached";
    let out = run_sh(&d, &["--rm", "--network", "six", "busybox"], script);
    assert!(out.contains(&format!("default via {gateway6}")), "{out}");
    assert!(out.contains("reached"), "one by name over IPv6: {out}");
    // Masqueraded when leaving, as IPv4.
    let bridge = inspect(&d, "{{.Id}}", "six")[..11].to_string();
    let table = Command::new("nft")
        .args(["list", "ruleset"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    let rule = format!("ip6 saddr {subnet6} oifname != \"kbr-{bridge}\" masquerade");
    assert!(table.contains(&rule), "{rule} in the table");
    // Published on the host's IPv6 addresses too (here its address on the bridge).
    let web6 = web(&d, "web6", &["--network", "six", "-p", "80"]);
    let port = published_port(&d, "web6");
    let gw6: std::net::Ipv6Addr = gateway6.parse().unwrap();
    wait_for(
        || http_hostname((gw6, port)).is_ok_and(|h| h == web6),
        "web6 over IPv6",
    );
    assert!(ok(&d, &["port", "web6", "80"]).contains(&format!("[::]:{port}")));
    let out = fails(
        &d,
        &[
            "network",
            "create",
            "--ipv6",
            "--subnet",
            "fd43::/120",
            "tiny",
        ],
    );
    assert!(out.contains("smaller than IPv4 subnet"), "{out}");
}

#[test]
fn network_events_follow_containers_joining_and_leaving() {
    let Some(d) = daemon_with_busybox("net-events") else {
        return;
    };
    let since = unix_now();
    ok(&d, &["network", "create", "evnet"]);
    ok(
        &d,
        &["run", "--rm", "--network", "evnet", "busybox", "true"],
    );
    run_sleeping(&d, "stays");
    ok(&d, &["network", "connect", "evnet", "stays"]);
    ok(&d, &["network", "disconnect", "evnet", "stays"]);
    let events = events_since(&d, since, &["type=network", "network=evnet"]);
    assert_eq!(
        events,
        [
            "create evnet",
            "connect evnet",
            "disconnect evnet",
            "connect evnet",
            "disconnect evnet"
        ],
        "network events"
    );
}
