//! The instance's nftables table, rendered whole from the engine's state and applied in
//! one `nft` transaction (delete and re-create), so it is never half-updated and always
//! matches the state that produced it. Nothing outside the table is touched; removing it
//! removes every rule kapsel made.
//!
//! Chains (family `inet`, so one table serves every hook):
//! - `prerouting`/`output` (nat): packets for a local address jump to `published`, which
//!   DNATs each published port to its container — no proxy process per port.
//! - `postrouting` (nat): masquerade what leaves a non-internal network; masquerade
//!   loopback-sourced and hairpin traffic into a bridge so replies come back through us.
//! - `forward` (filter): connection logging; isolation between networks; internal
//!   networks cannot leave their bridge.
//! - `input` (filter): connection logging; internal networks reach only the resolver on
//!   their gateway.
//!
//! Chain policies stay `accept`: other tables on the host keep deciding for their traffic.

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use nftables::batch::Batch;
use nftables::expr::{
    Expression, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression, Payload, PayloadField,
    Prefix, SetItem, CT,
};
use nftables::schema::{Chain, NfListObject, Nftables, Rule, Table};
use nftables::stmt::{JumpTarget, Log, Match, NATFamily, Operator, Statement, NAT};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use serde::{Deserialize, Serialize};

use crate::NetworkError;

/// One bridge network as the firewall sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct BridgeRules {
    /// The network's name, used as the log prefix.
    pub name: String,
    pub bridge: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub internal: bool,
    pub log_connections: bool,
    /// Networks with IPv6: their subnet, masqueraded as the IPv4 one.
    pub subnet6: Option<Ipv6Net>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// A published port: `host_ip:host_port` → `container_ip:container_port`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortMapping {
    pub protocol: Protocol,
    /// `None`: every local address, 127.0.0.1 included.
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_ip: Ipv4Addr,
    pub container_port: u16,
    /// On a network with IPv6, a port published on every address is also published on
    /// the host's IPv6 addresses, to this one (not on ::1, which the kernel never routes
    /// elsewhere).
    #[serde(default)]
    pub container_ip6: Option<Ipv6Addr>,
}

/// Everything the table holds.
#[derive(Debug, Clone, Default)]
pub struct Firewall {
    pub table: String,
    /// The nflog group connection logs go to.
    pub log_group: u16,
    pub networks: Vec<BridgeRules>,
    pub ports: Vec<PortMapping>,
}

const FAMILY: NfFamily = NfFamily::INet;

impl Firewall {
    /// Replaces the table with what this state needs (or removes it when there is no
    /// network left).
    pub fn apply(&self) -> Result<(), NetworkError> {
        if self.networks.is_empty() {
            return remove(&self.table);
        }
        nftables::helper::apply_ruleset(&self.render()).map_err(|e| NetworkError::Firewall {
            table: self.table.clone(),
            message: e.to_string(),
        })
    }

    /// The whole table as one batch: add (so the delete cannot fail), delete, re-create.
    pub fn render(&self) -> Nftables<'static> {
        let mut batch = Batch::new();
        batch.add(NfListObject::Table(self.table_object()));
        batch.delete(NfListObject::Table(self.table_object()));
        batch.add(NfListObject::Table(self.table_object()));
        for (name, hook) in [
            (
                "prerouting",
                Some((NfChainType::NAT, NfHook::Prerouting, -100)),
            ),
            ("output", Some((NfChainType::NAT, NfHook::Output, -100))),
            (
                "postrouting",
                Some((NfChainType::NAT, NfHook::Postrouting, 100)),
            ),
            ("forward", Some((NfChainType::Filter, NfHook::Forward, 0))),
            ("input", Some((NfChainType::Filter, NfHook::Input, 0))),
            ("published", None),
        ] {
            batch.add(NfListObject::Chain(self.chain(name, hook)));
        }
        for (chain, expr) in self.rules() {
            batch.add(NfListObject::Rule(Rule {
                family: FAMILY,
                table: Cow::Owned(self.table.clone()),
                chain: Cow::Borrowed(chain),
                expr: Cow::Owned(expr),
                ..Rule::default()
            }));
        }
        batch.to_nftables()
    }

    fn table_object(&self) -> Table<'static> {
        table(&self.table)
    }

    fn chain(
        &self,
        name: &'static str,
        hook: Option<(NfChainType, NfHook, i32)>,
    ) -> Chain<'static> {
        Chain {
            family: FAMILY,
            table: Cow::Owned(self.table.clone()),
            name: Cow::Borrowed(name),
            _type: hook.map(|h| h.0),
            hook: hook.map(|h| h.1),
            prio: hook.map(|h| h.2),
            policy: hook.map(|_| NfChainPolicy::Accept),
            ..Chain::default()
        }
    }

    fn rules(&self) -> Vec<(&'static str, Vec<Statement<'static>>)> {
        let mut rules = vec![
            ("prerouting", vec![local_destination(), jump("published")]),
            ("output", vec![local_destination(), jump("published")]),
        ];
        rules.extend(
            self.ports
                .iter()
                .flat_map(publish)
                .map(|rule| ("published", rule)),
        );
        let bridges: Vec<&str> = self.networks.iter().map(|n| n.bridge.as_str()).collect();
        for net in &self.networks {
            rules.extend(self.network_rules(net, &bridges));
        }
        rules
    }

    fn network_rules(
        &self,
        net: &BridgeRules,
        bridges: &[&str],
    ) -> Vec<(&'static str, Vec<Statement<'static>>)> {
        let br = net.bridge.as_str();
        let mut rules = Vec::new();
        if net.log_connections {
            let log = || self.log(&net.name);
            rules.push(("forward", vec![iifname(Operator::EQ, br), ct_new(), log()]));
            rules.push((
                "forward",
                vec![
                    oifname(Operator::EQ, br),
                    iifname(Operator::NEQ, br),
                    ct_new(),
                    log(),
                ],
            ));
            rules.push(("input", vec![iifname(Operator::EQ, br), ct_new(), log()]));
        }
        if net.internal {
            rules.push((
                "forward",
                vec![
                    iifname(Operator::EQ, br),
                    oifname(Operator::NEQ, br),
                    drop(),
                ],
            ));
            rules.push((
                "forward",
                vec![
                    oifname(Operator::EQ, br),
                    iifname(Operator::NEQ, br),
                    drop(),
                ],
            ));
            rules.push((
                "input",
                vec![
                    iifname(Operator::EQ, br),
                    ip_field("daddr", Operator::EQ, addr(net.gateway)),
                    th_dport(53),
                    accept(),
                ],
            ));
            rules.push(("input", vec![iifname(Operator::EQ, br), drop()]));
        } else {
            rules.push((
                "postrouting",
                vec![
                    ip_field("saddr", Operator::EQ, prefix(net.subnet)),
                    oifname(Operator::NEQ, br),
                    masquerade(),
                ],
            ));
            if let Some(subnet6) = net.subnet6 {
                rules.push((
                    "postrouting",
                    vec![
                        matches(payload("ip6", "saddr"), Operator::EQ, prefix6(subnet6)),
                        oifname(Operator::NEQ, br),
                        masquerade(),
                    ],
                ));
            }
        }
        let others: Vec<&str> = bridges.iter().copied().filter(|b| *b != br).collect();
        if !others.is_empty() {
            rules.push((
                "forward",
                vec![iifname(Operator::EQ, br), oifname_in(&others), drop()],
            ));
        }
        // Published ports reached from 127.0.0.1 (route_localnet is on for the bridge)
        // and from a container on the same bridge (hairpin): without masquerading, the
        // reply would bypass the DNAT.
        rules.push((
            "postrouting",
            vec![
                oifname(Operator::EQ, br),
                ip_field(
                    "saddr",
                    Operator::EQ,
                    prefix("127.0.0.0/8".parse().unwrap()),
                ),
                masquerade(),
            ],
        ));
        rules.push((
            "postrouting",
            vec![
                oifname(Operator::EQ, br),
                ip_field("saddr", Operator::EQ, prefix(net.subnet)),
                ct_status_dnat(),
                masquerade(),
            ],
        ));
        rules
    }

    fn log(&self, network: &str) -> Statement<'static> {
        Statement::Log(Some(Log {
            prefix: Some(Cow::Owned(format!("{network} "))),
            group: Some(u32::from(self.log_group)),
            ..Log::new(None)
        }))
    }
}

/// Chains of other tables that drop forwarded packets by default (as Docker's
/// `ip filter FORWARD` does): no rule of ours can let containers' traffic through them,
/// so the engine warns. Returns `family table chain` of each.
pub fn foreign_forward_drops(own_table: &str) -> Vec<String> {
    let Ok(ruleset) = nftables::helper::get_current_ruleset_with_args(
        nftables::helper::DEFAULT_NFT,
        ["list", "chains"],
    ) else {
        return Vec::new();
    };
    ruleset
        .objects
        .iter()
        .filter_map(|object| match object {
            nftables::schema::NfObject::ListObject(NfListObject::Chain(c)) => Some(c),
            _ => None,
        })
        .filter(|c| {
            c.table != own_table
                && c.hook == Some(NfHook::Forward)
                && c.policy == Some(NfChainPolicy::Drop)
        })
        .map(|c| {
            let family = format!("{:?}", c.family).to_lowercase();
            format!("{family} {} {}", c.table, c.name)
        })
        .collect()
}

/// Removes the table `name`; absent is fine.
pub fn remove(name: &str) -> Result<(), NetworkError> {
    let mut batch = Batch::new();
    batch.add(NfListObject::Table(table(name)));
    batch.delete(NfListObject::Table(table(name)));
    nftables::helper::apply_ruleset(&batch.to_nftables()).map_err(|e| NetworkError::Firewall {
        table: name.to_string(),
        message: e.to_string(),
    })
}

/// The DNAT rules of one published port: IPv4, and IPv6 where the container has it.
/// The instance's table `name` (family inet).
fn table(name: &str) -> Table<'static> {
    Table {
        family: FAMILY,
        name: Cow::Owned(name.to_string()),
        ..Table::default()
    }
}

fn publish(p: &PortMapping) -> Vec<Vec<Statement<'static>>> {
    // `container_ip6` is only set on mappings published on every address.
    let targets = std::iter::once(("ipv4", NATFamily::IP, p.container_ip.to_string())).chain(
        p.container_ip6
            .map(|ip6| ("ipv6", NATFamily::IP6, ip6.to_string())),
    );
    targets
        .map(|(nfproto, family, to)| {
            let mut expr = vec![matches(
                meta(MetaKey::Nfproto),
                Operator::EQ,
                Expression::String(Cow::Borrowed(nfproto)),
            )];
            if let Some(host_ip) = p.host_ip {
                expr.push(ip_field("daddr", Operator::EQ, addr(host_ip)));
            }
            expr.push(matches(
                meta(MetaKey::L4proto),
                Operator::EQ,
                Expression::String(Cow::Borrowed(p.protocol.as_str())),
            ));
            expr.push(th_dport(p.host_port));
            expr.push(Statement::DNAT(Some(NAT {
                addr: Some(Expression::String(Cow::Owned(to))),
                family: Some(family),
                port: Some(Expression::Number(u32::from(p.container_port))),
                flags: None,
            })));
            expr
        })
        .collect()
}

fn matches(
    left: Expression<'static>,
    op: Operator,
    right: Expression<'static>,
) -> Statement<'static> {
    Statement::Match(Match { left, right, op })
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn iifname(op: Operator, name: &str) -> Statement<'static> {
    matches(
        meta(MetaKey::Iifname),
        op,
        Expression::String(Cow::Owned(name.to_string())),
    )
}

fn oifname(op: Operator, name: &str) -> Statement<'static> {
    matches(
        meta(MetaKey::Oifname),
        op,
        Expression::String(Cow::Owned(name.to_string())),
    )
}

fn oifname_in(names: &[&str]) -> Statement<'static> {
    let set = names
        .iter()
        .map(|n| SetItem::Element(Expression::String(Cow::Owned(n.to_string()))))
        .collect();
    matches(
        meta(MetaKey::Oifname),
        Operator::IN,
        Expression::Named(NamedExpression::Set(set)),
    )
}

fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: Cow::Borrowed(protocol),
            field: Cow::Borrowed(field),
        },
    )))
}

fn ip_field(field: &'static str, op: Operator, right: Expression<'static>) -> Statement<'static> {
    matches(payload("ip", field), op, right)
}

fn th_dport(port: u16) -> Statement<'static> {
    matches(
        payload("th", "dport"),
        Operator::EQ,
        Expression::Number(u32::from(port)),
    )
}

fn addr(ip: Ipv4Addr) -> Expression<'static> {
    Expression::String(Cow::Owned(ip.to_string()))
}

fn prefix(net: Ipv4Net) -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(addr(net.network())),
        len: u32::from(net.prefix_len()),
    }))
}

fn prefix6(net: Ipv6Net) -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(Expression::String(Cow::Owned(net.network().to_string()))),
        len: u32::from(net.prefix_len()),
    }))
}

fn ct(key: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::CT(CT {
        key: Cow::Borrowed(key),
        family: None,
        dir: None,
    }))
}

fn ct_new() -> Statement<'static> {
    matches(
        ct("state"),
        Operator::IN,
        Expression::String(Cow::Borrowed("new")),
    )
}

fn ct_status_dnat() -> Statement<'static> {
    matches(
        ct("status"),
        Operator::IN,
        Expression::String(Cow::Borrowed("dnat")),
    )
}

fn local_destination() -> Statement<'static> {
    matches(
        Expression::Named(NamedExpression::Fib(Fib {
            result: FibResult::Type,
            flags: HashSet::from([FibFlag::Daddr]),
        })),
        Operator::EQ,
        Expression::String(Cow::Borrowed("local")),
    )
}

fn jump(target: &'static str) -> Statement<'static> {
    Statement::Jump(JumpTarget {
        target: Cow::Borrowed(target),
    })
}

fn masquerade() -> Statement<'static> {
    Statement::Masquerade(None)
}

fn drop() -> Statement<'static> {
    Statement::Drop(None)
}

fn accept() -> Statement<'static> {
    Statement::Accept(None)
}
