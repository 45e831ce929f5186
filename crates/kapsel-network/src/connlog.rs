//! Connection logging: the firewall's `log group N` rules (for each logging network, on
//! new connections into, out of, and to the host from it) send the first packet of each
//! connection to nfnetlink_log group N; this reads them and reports who talked to whom,
//! without a packet capture. Parsing the IPv4 and TCP/UDP headers by hand: they are the
//! few fixed bytes a log entry needs.

use std::ffi::CString;
use std::net::Ipv4Addr;

use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_netfilter::nflog::{
    config_request, ConfigCmd, ConfigMode, PacketNla, ULogMessage,
};
use netlink_packet_netfilter::{NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily};
use netlink_sys::{constants::NETLINK_NETFILTER, Socket};
use serde::Serialize;

use crate::NetworkError;

/// One new connection, as the firewall saw its first packet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Connection {
    /// The network whose rule logged it (the rule's prefix).
    pub network: String,
    pub protocol: &'static str,
    pub source: Ipv4Addr,
    pub source_port: u16,
    pub destination: Ipv4Addr,
    pub destination_port: u16,
}

/// Subscribes to nflog group `group` and calls `report` for every logged connection,
/// until reading fails. Blocking: run it on a thread of its own.
pub fn listen(group: u16, mut report: impl FnMut(Connection)) -> Result<(), NetworkError> {
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    // Only the headers are needed: copy 64 bytes of each packet.
    let copy_headers = ConfigMode::new_packet(64);
    for (group, nlas) in [
        (0, vec![ConfigCmd::PfBind.into()]),
        (group, vec![ConfigCmd::Bind.into(), copy_headers.into()]),
    ] {
        let request = config_request(NetfilterProtoFamily::IPv4, group, nlas);
        let mut buf = vec![0; request.header.length as usize];
        request.serialize(&mut buf);
        socket.send(&buf, 0)?;
    }
    let mut buffer = vec![0u8; 65536];
    loop {
        let size = socket.recv(&mut &mut buffer[..], 0)?;
        let mut offset = 0;
        while offset < size {
            let Ok(message) =
                NetlinkMessage::<NetfilterMessage>::deserialize(&buffer[offset..size])
            else {
                break;
            };
            let length = message.header.length as usize;
            if let Some(connection) = connection(&message) {
                report(connection);
            }
            if length == 0 {
                break;
            }
            offset += length;
        }
    }
}

fn connection(message: &NetlinkMessage<NetfilterMessage>) -> Option<Connection> {
    let NetlinkPayload::InnerMessage(NetfilterMessage {
        inner: NetfilterMessageInner::ULog(ULogMessage::Packet(nlas)),
        ..
    }) = &message.payload
    else {
        return None;
    };
    let prefix = nlas.iter().find_map(|n| match n {
        PacketNla::Prefix(p) => Some(p.clone()),
        _ => None,
    });
    let payload = nlas.iter().find_map(|n| match n {
        PacketNla::Payload(p) => Some(p.as_slice()),
        _ => None,
    })?;
    parse(prefix.unwrap_or_else(|| CString::new("").unwrap()), payload)
}

/// An IPv4 packet's addresses, protocol and ports.
fn parse(prefix: CString, packet: &[u8]) -> Option<Connection> {
    if packet.len() < 20 || packet[0] >> 4 != 4 {
        return None;
    }
    let header_len = usize::from(packet[0] & 0x0f) * 4;
    let protocol = match packet[9] {
        6 => "tcp",
        17 => "udp",
        1 => "icmp",
        _ => "other",
    };
    let port = |at: usize| -> u16 {
        packet
            .get(header_len + at..header_len + at + 2)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
    };
    let has_ports = matches!(protocol, "tcp" | "udp");
    Some(Connection {
        network: prefix.to_string_lossy().trim().to_string(),
        protocol,
        source: Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]),
        source_port: if has_ports { port(0) } else { 0 },
        destination: Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]),
        destination_port: if has_ports { port(2) } else { 0 },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tcp_syn_becomes_a_connection() {
        let mut packet = vec![
            0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 2, 10, 0, 0, 3,
        ];
        packet.extend([0x9c, 0x40, 0, 80]);
        let c = parse(CString::new("front ").unwrap(), &packet).unwrap();
        assert_eq!(c.network, "front");
        assert_eq!(
            (c.protocol, c.source_port, c.destination_port),
            ("tcp", 40000, 80)
        );
        assert_eq!(
            (c.source, c.destination),
            (Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 3))
        );
        assert!(parse(CString::new("").unwrap(), &packet[..10]).is_none());
    }
}
