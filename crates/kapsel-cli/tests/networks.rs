//! `kapsel network …`, the network flags of `run` and `kapsel port`, against a private
//! kapseld, compared with what the real docker CLI prints against the same daemon.
//! Traffic stays on loopback and on the bridges this daemon makes.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{daemon_with_busybox, have_docker_cli, same_as_docker, Daemon};

/// A /24 of 10.0.0.0/8 (third octet `n`) unlikely to be taken by another test's daemon
/// running at the same time: the second octet comes from our PID.
fn subnet(n: u8) -> (String, String) {
    let second = 200 + std::process::id() % 50;
    (format!("10.{second}.{n}.0/24"), format!("10.{second}.{n}"))
}

/// `GET /hostname` from the busybox httpd published at 127.0.0.1:`port`.
fn http_hostname(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the published port");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /hostname HTTP/1.0\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer.rsplit("\r\n\r\n").next().unwrap().trim().to_string()
}

#[test]
fn network_commands_print_what_docker_prints() {
    let Some(d) = daemon_with_busybox("net-cli") else {
        return;
    };
    let (front_subnet, front) = subnet(1);
    let id = d.ok(&[
        "network",
        "create",
        "--subnet",
        &front_subnet,
        "--gateway",
        &format!("{front}.1"),
        "--ip-range",
        &format!("{front}.128/25"),
        "--label",
        "role=test",
        "-o",
        "com.docker.network.bridge.enable_icc=true",
        "--attachable",
        "front",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64, "{id}");
    assert_eq!(
        d.ok(&["network", "inspect", "-f", "{{.Id}}", "front"])
            .trim(),
        id
    );
    assert_eq!(
        d.ok(&[
            "network",
            "inspect",
            "-f",
            "{{json .IPAM.Config}} {{.Attachable}} {{json .Options}}",
            "front"
        ]),
        format!(
            "[{{\"Gateway\":\"{front}.1\",\"IPRange\":\"{front}.128/25\",\"Subnet\":\"{front_subnet}\"}}] true {{\"com.docker.network.bridge.enable_icc\":\"true\"}}\n"
        )
    );
    d.ok(&["network", "create", "--internal", "-d", "bridge", "back"]);

    // Sorted by name, the built-in networks among them.
    let names = d.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert_eq!(names, "back\nbridge\nfront\nhost\nnone\n");
    assert_eq!(
        d.ok(&["network", "ls", "-q", "--filter", "name=front"]),
        format!("{}\n", &id[..12])
    );

    for args in [
        &["network", "ls"][..],
        &["network", "ls", "-q"],
        &["network", "list", "--no-trunc"],
        &["network", "ls", "--filter", "label=role=test"],
        &["network", "ls", "-f", "driver=bridge", "-f", "type=custom"],
        &[
            "network",
            "ls",
            "--format",
            "table {{.Name}}\t{{.Labels}}\t{{.Internal}}\t{{.IPv4}}\t{{.IPv6}}\t{{.CreatedAt}}",
        ],
        &["network", "ls", "--format", "json"],
        &["network", "inspect", "front"],
        &["network", "inspect", "front", "nope"],
        &[
            "network",
            "inspect",
            "-f",
            "{{.Name}} {{.Driver}} {{.Internal}}",
            "front",
            "back",
        ],
        &["inspect", "back"],
        &["inspect", "--type", "network", "-f", "{{.Scope}}", "front"],
        &["network", "rm", "nope", "bridge"],
        &["network", "rm", "-f", "nope"],
        &["network", "create", "front"],
        &["network", "create", "--gateway", "10.1.1.1", "x"],
        &["network", "create", "--subnet", "bogus", "x"],
        &[
            "network",
            "create",
            "--subnet",
            &front_subnet,
            "--gateway",
            "10.9.9.1",
            "x",
        ],
        &[
            "network",
            "create",
            "--subnet",
            "10.0.0.0/8",
            "--ip-range",
            "bogus",
            "x",
        ],
        &[
            "network",
            "create",
            "--subnet",
            "10.5.0.0/16,10.5.1.0/24",
            "x",
        ],
        &["network", "create", "-d", "macvlan", "x"],
    ] {
        same_as_docker(&d, args);
    }

    let out = d.kapsel(&["network", "rm", "nope", "back", "host"]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (
            1,
            "back\n",
            "Error response from daemon: network nope not found\n\
             Error response from daemon: host is a pre-defined network and cannot be removed\n\
             exit status 1\n"
        )
    );

    // Prune: only what the filter selects, and in docker's words.
    for cli in ["kapsel", "docker"] {
        if cli == "docker" && !have_docker_cli() {
            break;
        }
        d.ok(&["network", "create", "--label", "prune=me", "p1"]);
        let args = ["network", "prune", "-f", "--filter", "label=prune=me"];
        let out = if cli == "kapsel" {
            d.kapsel(&args)
        } else {
            d.docker(&args)
        };
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (0, "Deleted Networks:\np1\n\n"),
            "{cli}: {out:?}"
        );
    }
    same_as_docker(
        &d,
        &["network", "prune", "-f", "--filter", "label=prune=me"],
    );
    assert_eq!(d.ok(&["network", "remove", "front"]), "front\n");
    assert_eq!(
        d.ok(&["network", "ls", "--format", "{{.Name}}"]),
        "bridge\nhost\nnone\n"
    );
}

/// A running busybox httpd on `front` with aliases and a published port.
fn web(d: &Daemon) -> String {
    let id = d.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "front",
        "--network-alias",
        "www",
        "--network-alias",
        "site",
        "-p",
        "127.0.0.1:0:80",
        "-p",
        "127.0.0.1::53/udp",
        "--expose",
        "7000-7001",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]);
    id.trim()[..12].to_string()
}

#[test]
fn ports_aliases_connect_and_disconnect_match_docker() {
    let Some(d) = daemon_with_busybox("net-ports") else {
        return;
    };
    d.ok(&["network", "create", "front"]);
    let short_id = web(&d);

    // `port`: the binding the daemon picked, reachable from the host.
    let binding = d.ok(&["port", "web", "80"]);
    let port: u16 = binding
        .trim()
        .strip_prefix("127.0.0.1:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{binding:?}"));
    assert_ne!(port, 0);
    assert_eq!(http_hostname(port), short_id);
    let all = d.ok(&["port", "web"]);
    assert!(all.starts_with("53/udp -> 127.0.0.1:"), "{all}");
    assert!(
        all.contains(&format!("\n80/tcp -> 127.0.0.1:{port}\n")),
        "{all}"
    );
    for args in [
        &["port", "web"][..],
        &["port", "web", "80"],
        &["port", "web", "80/tcp"],
        &["port", "web", "53/udp"],
        &["port", "web", "7000"],
        &["port", "web", "abc"],
        &["port", "nope"],
        &["ps", "--format", "{{.Names}} {{.Ports}}"],
    ] {
        same_as_docker(&d, args);
    }

    // The aliases are names on the network.
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{json .NetworkSettings.Networks.front.Aliases}}",
            "web"
        ]),
        "[\"www\",\"site\"]\n"
    );
    let fetched = d.ok(&[
        "run",
        "--rm",
        "--network",
        "front",
        "busybox",
        "wget",
        "-q",
        "-O",
        "-",
        "http://site/hostname",
    ]);
    assert_eq!(fetched.trim(), short_id);

    // connect with an alias and an address, then disconnect.
    let (side_subnet, side) = subnet(2);
    d.ok(&["network", "create", "--subnet", &side_subnet, "side"]);
    let out = d.kapsel(&[
        "network",
        "connect",
        "--alias",
        "db",
        "--ip",
        &format!("{side}.50"),
        "side",
        "web",
    ]);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{out:?}");
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.side.IPAddress}} {{json .NetworkSettings.Networks.side.Aliases}}",
            "web"
        ]),
        format!("{side}.50 [\"db\"]\n")
    );
    for args in [
        &[
            "network",
            "inspect",
            "-f",
            "{{range .Containers}}{{.Name}} {{.IPv4Address}}{{end}}",
            "side",
        ][..],
        &["network", "connect", "side", "web"],
        &["network", "connect", "nope", "web"],
        &["network", "connect", "side", "nope"],
        &["network", "connect", "--ip", "10.1.1.1", "bridge", "web"],
        &["network", "disconnect", "nope", "web"],
        &["network", "rm", "side"],
    ] {
        same_as_docker(&d, args);
    }
    let out = d.kapsel(&["network", "disconnect", "side", "web"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{out:?}");
    same_as_docker(&d, &["network", "disconnect", "side", "web"]);
    same_as_docker(&d, &["network", "disconnect", "-f", "side", "web"]);
    assert_eq!(
        d.ok(&[
            "network",
            "ls",
            "--filter",
            "dangling=true",
            "--format",
            "{{.Name}}"
        ]),
        "side\n"
    );

    d.ok(&["rm", "-f", "web"]);
    assert_eq!(d.ok(&["network", "rm", "front", "side"]), "front\nside\n");
}

#[test]
fn network_and_port_flags_are_checked_as_docker_checks_them() {
    let Some(d) = daemon_with_busybox("net-flags") else {
        return;
    };
    for args in [
        &["create", "--network-alias", "x", "busybox", "true"][..],
        &[
            "create",
            "--network",
            "host",
            "--network-alias",
            "x",
            "busybox",
        ],
        &["create", "-p", "1-3:80-81", "busybox"],
        &["create", "-p", "99999", "busybox"],
        &["create", "-p", "127.0.0.1:80", "busybox"],
        &["create", "-p", "1.2.3:80:80", "busybox"],
        &["create", "-p", "80/xyz", "busybox"],
        &["create", "-p", "/udp", "busybox"],
        &["create", "--expose", "abc", "busybox"],
        &["create", "--expose", "1:2", "busybox"],
        &["run", "--rm", "--ip", "10.1.1.1", "busybox", "true"],
    ] {
        let out = d.kapsel(args);
        assert_eq!(out.code, 125, "{args:?}: {out:?}");
        same_as_docker(&d, args);
    }
    assert_eq!(d.ok(&["ps", "-aq"]), "", "nothing was created");

    // The -p forms and -P reach the daemon as docker sends them.
    d.ok(&[
        "create",
        "--name",
        "forms",
        "-p",
        "8000-8001:80-81",
        "-p",
        "127.0.0.1::9000/udp",
        "-p",
        "53",
        "-P",
        "--expose",
        "7000",
        "busybox",
    ]);
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{json .HostConfig.PortBindings}} {{.HostConfig.PublishAllPorts}} {{json .Config.ExposedPorts}}",
            "forms"
        ]),
        "{\"53/tcp\":[{\"HostIp\":\"\",\"HostPort\":\"\"}],\
         \"80/tcp\":[{\"HostIp\":\"\",\"HostPort\":\"8000\"}],\
         \"81/tcp\":[{\"HostIp\":\"\",\"HostPort\":\"8001\"}],\
         \"9000/udp\":[{\"HostIp\":\"127.0.0.1\",\"HostPort\":\"\"}]} true \
         {\"53/tcp\":{},\"7000/tcp\":{},\"80/tcp\":{},\"81/tcp\":{},\"9000/udp\":{}}\n"
    );
}

/// `kapsel network connections`: the connection log of a network, as a table.
#[test]
fn network_connections_lists_the_logged_connections() {
    let Some(d) = daemon_with_busybox("cli-net-log") else {
        return;
    };
    d.ok(&[
        "network",
        "create",
        "-o",
        "kapsel.log-connections=true",
        "watched",
    ]);
    let listener = std::net::TcpListener::bind(("0.0.0.0", 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || for _ in listener.incoming() {});
    let gateway = d
        .ok(&[
            "network",
            "inspect",
            "-f",
            "{{(index .IPAM.Config 0).Gateway}}",
            "watched",
        ])
        .trim()
        .to_string();
    let script = format!("nc -w 2 {gateway} {port} </dev/null 2>/dev/null; true");
    d.ok(&[
        "run",
        "--rm",
        "--network",
        "watched",
        "busybox",
        "sh",
        "-c",
        &script,
    ]);
    let wanted = "tcp ";
    let destination = format!("{gateway}:{port}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let table = d.ok(&["network", "connections", "watched"]);
        assert!(table.starts_with("PROTOCOL"), "{table}");
        if table
            .lines()
            .any(|l| l.starts_with(wanted) && l.trim_end().ends_with(&destination))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{destination} never logged:\n{table}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let refused = d.kapsel(&["network", "connections", "bridge"]);
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("does not log connections"),
        "{}",
        refused.stderr
    );
}

/// `kapsel network create --ipv6`: containers get an address in the IPv6 subnet.
#[test]
fn ipv6_networks_from_the_kapsel_cli() {
    let Some(d) = daemon_with_busybox("cli-net-ipv6") else {
        return;
    };
    let prefix = format!("fd43:{:x}:", std::process::id() & 0xffff);
    let subnet6 = format!("{prefix}:/64");
    d.ok(&["network", "create", "--ipv6", "--subnet", &subnet6, "six"]);
    let enabled = d.ok(&["network", "inspect", "-f", "{{.EnableIPv6}}", "six"]);
    assert_eq!(enabled.trim(), "true");
    let shown = d.ok(&[
        "run",
        "--rm",
        "--network",
        "six",
        "busybox",
        "ip",
        "-6",
        "addr",
        "show",
        "eth0",
    ]);
    assert!(shown.contains(&format!("inet6 {prefix}:2/64")), "{shown}");
}
