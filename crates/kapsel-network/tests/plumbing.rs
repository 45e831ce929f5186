//! The plumbing on the real kernel: two namespaces on a bridge reach each other and the
//! gateway; a published port answers on 127.0.0.1 through the nftables table; tearing
//! down leaves no link, namespace or table behind. Needs root.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use kapsel_network::firewall::{BridgeRules, Firewall, PortMapping, Protocol};
use kapsel_network::link::{self, Interface, Netlink};
use kapsel_network::{ipam, netns};

struct Setup {
    dir: PathBuf,
    bridge: String,
    table: String,
    veths: Vec<String>,
    server: Option<Child>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
        for veth in &self.veths {
            let _ = link::detach(veth);
        }
        for ns in ["a", "b"] {
            let _ = netns::remove(&self.dir.join(ns));
        }
        let _ = Netlink::connect().and_then(|nl| nl.delete(&self.bridge));
        let _ = kapsel_network::firewall::remove(&self.table);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn in_netns(ns: &Path, args: &[&str]) -> std::process::Output {
    Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .args(args)
        .output()
        .expect("nsenter")
}

fn interface(n: u8, bridge: &str, subnet: &Ipv4Net, gateway: Ipv4Addr) -> Interface {
    let ip = ipam::next_address(
        subnet,
        None,
        &[gateway]
            .into_iter()
            .chain((2..2 + n).map(|d| {
                let o = subnet.network().octets();
                Ipv4Addr::new(o[0], o[1], o[2], d)
            }))
            .collect(),
    )
    .unwrap();
    Interface {
        host_name: format!("kv{:08x}{n}", std::process::id()),
        name: "eth0".into(),
        bridge: bridge.into(),
        address: Ipv4Net::new(ip, subnet.prefix_len()).unwrap(),
        default_gateway: Some(gateway),
        address6: None,
        default_gateway6: None,
        mtu: 1500,
    }
}

#[test]
fn namespaces_on_a_bridge_talk_and_publish_ports() {
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("kapsel-net-test-{pid}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut setup = Setup {
        dir: dir.clone(),
        bridge: format!("ktb{pid:08x}"),
        table: format!("kapsel-test-{pid}"),
        veths: Vec::new(),
        server: None,
    };
    let nl = Netlink::connect().unwrap();
    let subnet = {
        let _lock = ipam::host_lock().unwrap();
        let subnet = ipam::free_subnet(&nl.ipv4_routes().unwrap()).unwrap();
        let gateway = ipam::default_gateway(&subnet).unwrap();
        nl.ensure_bridge(
            &setup.bridge,
            Ipv4Net::new(gateway, subnet.prefix_len()).unwrap(),
            None,
            1500,
        )
        .unwrap();
        subnet
    };
    let gateway = ipam::default_gateway(&subnet).unwrap();

    let mut addrs = Vec::new();
    for (n, name) in [(0u8, "a"), (1, "b")] {
        let path = dir.join(name);
        netns::create(&path).unwrap();
        let iface = interface(n, &setup.bridge, &subnet, gateway);
        setup.veths.push(iface.host_name.clone());
        link::attach(&netns::Netns::open(&path).unwrap(), &iface).unwrap();
        addrs.push(iface.address.addr());
    }
    let (a, b) = (dir.join("a"), dir.join("b"));
    let shown =
        String::from_utf8(in_netns(&a, &["ip", "-4", "addr", "show", "eth0"]).stdout).unwrap();
    assert!(
        shown.contains(&format!("{}/{}", addrs[0], subnet.prefix_len())),
        "{shown}"
    );
    let lo = String::from_utf8(in_netns(&a, &["ip", "link", "show", "lo"]).stdout).unwrap();
    assert!(lo.contains("UP"), "loopback is up: {lo}");
    for target in [addrs[1].to_string(), gateway.to_string()] {
        let ping = in_netns(&a, &["busybox", "ping", "-c1", "-W2", &target]);
        assert!(
            ping.status.success(),
            "a → {target}: {}",
            String::from_utf8_lossy(&ping.stdout)
        );
    }

    // A server in b, published on the host's port through the table.
    let host_port = 20000 + (pid % 20000) as u16;
    setup.server = Some(
        Command::new("nsenter")
            .arg(format!("--net={}", b.display()))
            .args(["python3", "-c", "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('0.0.0.0',8080))\ns.listen()\nwhile True:\n c,_=s.accept()\n c.sendall(b'hello from b')\n c.close()"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let firewall = Firewall {
        table: setup.table.clone(),
        log_group: 0,
        networks: vec![BridgeRules {
            name: "test".into(),
            bridge: setup.bridge.clone(),
            subnet,
            gateway,
            internal: false,
            log_connections: false,
            subnet6: None,
        }],
        ports: vec![PortMapping {
            protocol: Protocol::Tcp,
            host_ip: None,
            host_port,
            container_ip: addrs[1],
            container_port: 8080,
            container_ip6: None,
        }],
    };
    firewall.apply().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let answer = loop {
        let attempt = TcpStream::connect(("127.0.0.1", host_port)).and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            let mut text = String::new();
            s.read_to_string(&mut text)?;
            s.flush()?;
            Ok(text)
        });
        match attempt {
            Ok(text) if !text.is_empty() => break text,
            _ if Instant::now() > deadline => {
                panic!("127.0.0.1:{host_port} never answered: {attempt:?}")
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    assert_eq!(answer, "hello from b");

    // Tear-down leaves nothing.
    let Setup {
        veths,
        table,
        bridge,
        ..
    } = &setup;
    for veth in veths {
        link::detach(veth).unwrap();
        assert_eq!(nl.index_of(veth).unwrap(), None);
    }
    kapsel_network::firewall::remove(table).unwrap();
    let listed = Command::new("nft")
        .args(["list", "table", "inet", table])
        .output()
        .unwrap();
    assert!(!listed.status.success(), "table {table} is gone");
    netns::remove(&a).unwrap();
    assert!(!a.exists());
    nl.delete(bridge).unwrap();
    assert_eq!(nl.index_of(bridge).unwrap(), None);
}
