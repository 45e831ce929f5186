//! Links over rtnetlink: a network's bridge, and the veth pair that puts a container on it.
//!
//! The calls are blocking: each opens a netlink socket in the namespace it works on (a
//! socket stays in the namespace it was created in) and drives rtnetlink's futures on a
//! private current-thread runtime. The engine calls them from blocking threads.

use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;

use futures::TryStreamExt;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
use rtnetlink::{
    Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
};

use crate::netns::Netns;
use crate::NetworkError;

/// A container's interface on one network.
#[derive(Debug, Clone)]
pub struct Interface {
    /// The host's end of the veth pair (≤ 15 bytes, unique on the host).
    pub host_name: String,
    /// The name inside the container (`eth0`, `eth1`, …).
    pub name: String,
    pub bridge: String,
    pub address: Ipv4Net,
    /// The default route goes through it (the first network with a gateway).
    pub default_gateway: Option<Ipv4Addr>,
    /// On networks with IPv6: the address, and the IPv6 default route.
    pub address6: Option<Ipv6Net>,
    pub default_gateway6: Option<Ipv6Addr>,
    pub mtu: u32,
}

impl Interface {
    /// Docker's MAC scheme: 02:42 followed by the IPv4 address, so it is stable and unique
    /// within a network.
    pub fn mac(&self) -> [u8; 6] {
        mac_of(self.address.addr())
    }
}

/// Docker's MAC for an IPv4 address: 02:42 followed by the address.
pub fn mac_of(ip: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = ip.octets();
    [0x02, 0x42, a, b, c, d]
}

/// A netlink connection in the namespace of the thread that opened it.
pub struct Netlink {
    runtime: tokio::runtime::Runtime,
    handle: Handle,
}

fn netlink_error(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetworkError {
    let what = what.into();
    move |source| NetworkError::Netlink { what, source }
}

impl Netlink {
    pub fn connect() -> Result<Self, NetworkError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        let handle = runtime.block_on(async {
            let (connection, handle, _) = rtnetlink::new_connection()?;
            tokio::spawn(connection);
            Ok::<_, std::io::Error>(handle)
        })?;
        Ok(Netlink { runtime, handle })
    }

    fn run<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// The index of the link called `name`, if there is one.
    pub fn index_of(&self, name: &str) -> Result<Option<u32>, NetworkError> {
        let found = self.run(async {
            self.handle
                .link()
                .get()
                .match_name(name.to_string())
                .execute()
                .try_next()
                .await
        });
        match found {
            Ok(link) => Ok(link.map(|l| l.header.index)),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
            Err(e) => Err(netlink_error(format!("looking up link {name}"))(e)),
        }
    }

    fn require_index(&self, name: &str) -> Result<u32, NetworkError> {
        self.index_of(name)?
            .ok_or_else(|| NetworkError::NoSuchLink {
                name: name.to_string(),
            })
    }

    fn set(
        &self,
        what: String,
        message: rtnetlink::packet_route::link::LinkMessage,
    ) -> Result<(), NetworkError> {
        self.run(self.handle.link().set(message).execute())
            .map_err(netlink_error(what))
    }

    fn add_address(&self, link: &str, index: u32, address: IpNet) -> Result<(), NetworkError> {
        let mut request = self
            .handle
            .address()
            .add(index, address.addr(), address.prefix_len())
            .replace();
        if address.addr().is_ipv6() {
            // Usable at once: duplicate address detection would hold it back for a second
            // or two, and the engine hands out unique addresses anyway.
            request
                .message_mut()
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        self.run(request.execute())
            .map_err(netlink_error(format!("adding {address} to {link}")))
    }

    /// Creates the bridge `name` with `gateway` as its address, or brings an existing one
    /// back to that state; up, with local addresses routable to it (published ports on
    /// 127.0.0.1).
    pub fn ensure_bridge(
        &self,
        name: &str,
        gateway: Ipv4Net,
        gateway6: Option<Ipv6Net>,
        mtu: u32,
    ) -> Result<(), NetworkError> {
        if self.index_of(name)?.is_none() {
            let bridge = LinkBridge::new(name).build();
            self.run(self.handle.link().add(bridge).execute())
                .map_err(netlink_error(format!("creating bridge {name}")))?;
        }
        let index = self.require_index(name)?;
        for address in std::iter::once(IpNet::V4(gateway)).chain(gateway6.map(IpNet::V6)) {
            self.add_address(name, index, address)?;
        }
        // Set after creation, as a change: only then does the bridge keep it when its
        // last port goes, instead of falling back to 1500.
        self.set(
            format!("bringing up bridge {name}"),
            LinkUnspec::new_with_index(index).mtu(mtu).up().build(),
        )?;
        write_sysctl(&format!("net/ipv4/conf/{name}/route_localnet"), "1")?;
        write_sysctl("net/ipv4/ip_forward", "1")
    }

    pub fn set_up(&self, name: &str) -> Result<(), NetworkError> {
        let index = self.require_index(name)?;
        self.set(
            format!("bringing up {name}"),
            LinkUnspec::new_with_index(index).up().build(),
        )
    }

    /// Deletes the link `name`; absent is fine. Deleting one end of a veth pair deletes
    /// both.
    pub fn delete(&self, name: &str) -> Result<(), NetworkError> {
        match self.index_of(name)? {
            Some(index) => self.delete_index(index),
            None => Ok(()),
        }
    }

    /// Deletes the link with `index`; absent is fine.
    pub fn delete_index(&self, index: u32) -> Result<(), NetworkError> {
        match self.run(self.handle.link().del(index).execute()) {
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(()),
            other => other.map_err(netlink_error(format!("deleting link {index}"))),
        }
    }

    /// The destinations of the host's IPv4 routes (all tables), for choosing subnets that
    /// do not collide with them.
    pub fn ipv4_routes(&self) -> Result<Vec<Ipv4Net>, NetworkError> {
        let routes: Vec<_> = self
            .run(
                self.handle
                    .route()
                    .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
                    .execute()
                    .try_collect(),
            )
            .map_err(netlink_error("listing routes"))?;
        Ok(routes
            .iter()
            .filter_map(|route| {
                route.attributes.iter().find_map(|attr| match attr {
                    RouteAttribute::Destination(RouteAddress::Inet(addr)) => {
                        Ipv4Net::new(*addr, route.header.destination_prefix_length).ok()
                    }
                    _ => None,
                })
            })
            .filter(|net| net.prefix_len() > 0)
            .collect())
    }

    /// The host half of [`attach`]: one request makes the veth pair with its host end up
    /// on the bridge and its other end in the container's namespace, named and with its
    /// MAC (creating it there spares moving it, which waits for an RCU grace period).
    fn create_veth(&self, netns: &Netns, iface: &Interface) -> Result<(), NetworkError> {
        // A pair left by a crash is replaced.
        self.delete(&iface.host_name)?;
        let bridge = self.require_index(&iface.bridge)?;
        let peer = LinkUnspec::new_with_name(&iface.name)
            .address(iface.mac().to_vec())
            .mtu(iface.mtu)
            .setns_by_fd(netns.file.as_raw_fd())
            .build();
        let veth = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(iface.host_name.clone())
            .mtu(iface.mtu)
            .controller(bridge)
            .up()
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build();
        self.run(self.handle.link().add(veth).execute())
            .map_err(netlink_error(format!("creating veth {}", iface.host_name)))
    }

    /// The namespace half of [`attach`]: addresses, up, routes; loopback up.
    fn configure_inside(&self, iface: &Interface) -> Result<(), NetworkError> {
        self.set_up("lo")?;
        let index = self.require_index(&iface.name)?;
        let addresses =
            std::iter::once(IpNet::V4(iface.address)).chain(iface.address6.map(IpNet::V6));
        for address in addresses {
            self.add_address(&iface.name, index, address)?;
        }
        // Up here, not at creation: the kernel refuses IFF_UP on an end made in another
        // namespace (ENOTCONN).
        self.set(
            format!("bringing up {}", iface.name),
            LinkUnspec::new_with_index(index).up().build(),
        )?;
        if let Some(gateway) = iface.default_gateway {
            let route = RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(gateway)
                .output_interface(index)
                .build();
            self.run(self.handle.route().add(route).execute())
                .map_err(netlink_error(format!("default route via {gateway}")))?;
        }
        if let Some(gateway) = iface.default_gateway6 {
            let route = RouteMessageBuilder::<Ipv6Addr>::new()
                .gateway(gateway)
                .output_interface(index)
                .build();
            self.run(self.handle.route().add(route).execute())
                .map_err(netlink_error(format!("default route via {gateway}")))?;
        }
        Ok(())
    }
}

/// Puts the container whose namespace is `netns` on `iface.bridge`.
pub fn attach(netns: &Netns, iface: &Interface) -> Result<(), NetworkError> {
    Netlink::connect()?.create_veth(netns, iface)?;
    netns.run(|| Netlink::connect()?.configure_inside(iface))?
}

/// Takes a container off a network (its veth pair goes).
pub fn detach(host_name: &str) -> Result<(), NetworkError> {
    Netlink::connect()?.delete(host_name)
}

fn write_sysctl(key: &str, value: &str) -> Result<(), NetworkError> {
    let path = format!("/proc/sys/{key}");
    std::fs::write(&path, value).map_err(|source| NetworkError::Sysctl {
        key: key.into(),
        source,
    })
}
