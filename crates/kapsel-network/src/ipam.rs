//! Address management: subnets for new networks that collide with nothing on the host,
//! and addresses within a subnet. Pure functions over what is taken; the engine keeps the
//! assignments (so they survive its restarts) and passes them in.

use std::collections::HashSet;
use std::fs::File;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use nix::fcntl::{Flock, FlockArg};

/// Docker's default pools: 172.17.0.0/16 … 172.31.0.0/16, then 192.168.0.0/16 in /20s.
pub fn default_pools() -> impl Iterator<Item = Ipv4Net> {
    let wide = (17..=31u8).map(|b| Ipv4Net::new(Ipv4Addr::new(172, b, 0, 0), 16).unwrap());
    let narrow = (0..16u8).map(|i| Ipv4Net::new(Ipv4Addr::new(192, 168, i * 16, 0), 20).unwrap());
    wide.chain(narrow)
}

pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The first default pool that overlaps none of `taken` (host routes, other networks).
pub fn free_subnet(taken: &[Ipv4Net]) -> Option<Ipv4Net> {
    default_pools().find(|pool| !taken.iter().any(|t| overlaps(pool, t)))
}

/// Docker's choice of gateway: the subnet's first host address.
pub fn default_gateway(subnet: &Ipv4Net) -> Option<Ipv4Addr> {
    subnet.hosts().next()
}

/// The lowest address of `range` (default: the whole subnet) that is a host address of
/// `subnet` and not in `taken` (where the caller puts the gateway).
pub fn next_address(
    subnet: &Ipv4Net,
    range: Option<&Ipv4Net>,
    taken: &HashSet<Ipv4Addr>,
) -> Option<Ipv4Addr> {
    let range = range.unwrap_or(subnet);
    range
        .hosts()
        .find(|ip| subnet.contains(ip) && *ip != subnet.broadcast() && !taken.contains(ip))
}

/// A unique local IPv6 /64 (fdXX:XXXX:XXXX:XXXX::/64) made from `seed` (a network ID's
/// random bytes), as RFC 4193 asks: pseudo-random, so two networks do not collide.
pub fn ula_subnet(seed: &[u8; 7]) -> Ipv6Net {
    let mut octets = [0u8; 16];
    octets[0] = 0xfd;
    octets[1..8].copy_from_slice(seed);
    Ipv6Net::new(Ipv6Addr::from(octets), 64).expect("64 is a valid prefix")
}

/// A container's IPv6 address: the same offset in `subnet6` as its IPv4 address has in
/// `subnet`, so addresses stay unique without a second allocator (the IPv6 subnet has
/// at least as many host bits, which `fits_ipv4_hosts` checks).
pub fn ipv6_twin(subnet: &Ipv4Net, ip: Ipv4Addr, subnet6: &Ipv6Net) -> Ipv6Addr {
    let offset = u32::from(ip) - u32::from(subnet.network());
    Ipv6Addr::from(u128::from(subnet6.network()) + u128::from(offset))
}

/// Whether `subnet6` has room for every host of `subnet` (see [`ipv6_twin`]).
pub fn fits_ipv4_hosts(subnet: &Ipv4Net, subnet6: &Ipv6Net) -> bool {
    128 - u32::from(subnet6.prefix_len()) >= 32 - u32::from(subnet.prefix_len())
}

/// Serialises subnet choices between kapseld instances on one host: each picks a subnet
/// and creates its bridge (which makes the route others see) while holding it.
pub fn host_lock() -> std::io::Result<Flock<File>> {
    std::fs::create_dir_all("/run/kapsel")?;
    let file = File::create("/run/kapsel/ipam.lock")?;
    Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| e.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn subnets_avoid_routes_and_other_networks() {
        assert_eq!(free_subnet(&[]), Some(net("172.17.0.0/16")));
        let taken = [
            net("172.17.0.0/16"),
            net("172.18.5.0/24"),
            net("10.0.0.0/8"),
        ];
        assert_eq!(free_subnet(&taken), Some(net("172.19.0.0/16")));
        let all_172 = [net("172.16.0.0/12")];
        assert_eq!(free_subnet(&all_172), Some(net("192.168.0.0/20")));
        assert_eq!(free_subnet(&[net("0.0.0.0/1"), net("128.0.0.0/1")]), None);
    }

    #[test]
    fn ipv6_addresses_mirror_the_ipv4_ones() {
        let subnet = net("172.18.0.0/16");
        let subnet6: Ipv6Net = "fd00:1:2:3::/64".parse().unwrap();
        let ip = Ipv4Addr::new(172, 18, 1, 5);
        assert_eq!(
            ipv6_twin(&subnet, ip, &subnet6),
            "fd00:1:2:3::105".parse::<Ipv6Addr>().unwrap()
        );
        assert!(fits_ipv4_hosts(&subnet, &subnet6));
        assert!(!fits_ipv4_hosts(&subnet, &"fd00::/120".parse().unwrap()));
        let ula = ula_subnet(&[1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(ula.to_string(), "fd01:203:405:607::/64");
    }

    #[test]
    fn addresses_skip_gateway_taken_and_broadcast() {
        let subnet = net("10.9.0.0/29");
        let gateway = default_gateway(&subnet).unwrap();
        assert_eq!(gateway, Ipv4Addr::new(10, 9, 0, 1));
        let mut taken = HashSet::from([gateway]);
        assert_eq!(
            next_address(&subnet, None, &taken),
            Some(Ipv4Addr::new(10, 9, 0, 2))
        );
        taken.extend((2..=6).map(|d| Ipv4Addr::new(10, 9, 0, d)));
        assert_eq!(next_address(&subnet, None, &taken), None);
        let range = net("10.9.0.4/30");
        taken.remove(&Ipv4Addr::new(10, 9, 0, 3));
        assert_eq!(next_address(&subnet, Some(&range), &taken), None);
        taken.remove(&Ipv4Addr::new(10, 9, 0, 5));
        assert_eq!(
            next_address(&subnet, Some(&range), &taken),
            Some(Ipv4Addr::new(10, 9, 0, 5))
        );
    }
}
