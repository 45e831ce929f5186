//! Forwarding of the queries the network's table cannot answer to the host's nameservers.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Header, MessageType, ResponseCode};
use hickory_proto::serialize::binary::BinDecodable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// How long one upstream gets before the next is tried. Below glibc's 5 s resolver
/// timeout so that a dead first nameserver still leaves time to ask the second.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// Which transport a client asked on; the upstream is asked on the same one.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Transport {
    Udp,
    Tcp,
}

/// The nameservers of a resolv.conf text (port 53), for upstreams. Scoped IPv6 addresses
/// (`fe80::1%eth0`) are skipped: they only make sense inside the host's own links.
pub fn upstreams_from_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next())?
        })
        .filter_map(|addr| addr.parse::<IpAddr>().ok())
        .map(|addr| SocketAddr::new(addr, 53))
        .collect()
}

/// Asks `query` (the client's own bytes, so its ID and EDNS options are kept) of each
/// upstream in turn and returns the first usable answer. `client_payload` is the largest
/// UDP answer the client accepts.
pub(super) async fn forward(
    query: &[u8],
    upstreams: &[SocketAddr],
    transport: Transport,
    client_payload: u16,
) -> Option<Vec<u8>> {
    for &upstream in upstreams {
        match exchange(query, upstream, transport, client_payload).await {
            Ok(answer) => return Some(answer),
            Err(error) => tracing::debug!(%upstream, %error, "DNS upstream did not answer"),
        }
    }
    None
}

async fn exchange(
    query: &[u8],
    upstream: SocketAddr,
    transport: Transport,
    client_payload: u16,
) -> io::Result<Vec<u8>> {
    if transport == Transport::Tcp {
        return exchange_tcp(query, upstream).await;
    }
    let answer = exchange_udp(query, upstream).await?;
    if !checked_header(&answer)?.truncation {
        return Ok(answer);
    }
    // The upstream may cap UDP answers below what the client accepts: fetch the whole
    // answer over TCP and pass it on if it fits, else relay the truncated one so that the
    // client retries over TCP itself.
    match exchange_tcp(query, upstream).await {
        Ok(full) if full.len() <= usize::from(client_payload) => Ok(full),
        _ => Ok(answer),
    }
}

async fn exchange_udp(query: &[u8], upstream: SocketAddr) -> io::Result<Vec<u8>> {
    let local: IpAddr = match upstream {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    // A fresh socket per query: a random source port, and only the upstream can answer it.
    let socket = UdpSocket::bind((local, 0)).await?;
    socket.connect(upstream).await?;
    socket.send(query).await?;
    let mut answer = vec![0; usize::from(u16::MAX)];
    with_timeout(async {
        loop {
            let len = socket.recv(&mut answer).await?;
            if answers(&answer[..len], query) {
                answer.truncate(len);
                return Ok(answer);
            }
        }
    })
    .await
}

async fn exchange_tcp(query: &[u8], upstream: SocketAddr) -> io::Result<Vec<u8>> {
    with_timeout(async {
        let mut stream = TcpStream::connect(upstream).await?;
        write_framed(&mut stream, query).await?;
        let answer = read_framed(&mut stream).await?;
        if answers(&answer, query) {
            Ok(answer)
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "answer to another query",
            ))
        }
    })
    .await
}

/// Whether `answer` is a usable answer to `query`: same ID, and not a failure the next
/// upstream might not share (SERVFAIL, REFUSED), as glibc and Docker also move on.
fn answers(answer: &[u8], query: &[u8]) -> bool {
    let Ok(header) = checked_header(answer) else {
        return false;
    };
    header.message_type == MessageType::Response
        && answer.get(..2) == query.get(..2)
        && !matches!(
            header.response_code,
            ResponseCode::ServFail | ResponseCode::Refused
        )
}

fn checked_header(answer: &[u8]) -> io::Result<Header> {
    Header::from_bytes(answer).map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))
}

async fn with_timeout<T>(exchange: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    tokio::time::timeout(UPSTREAM_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
}

/// Reads one DNS-over-TCP message: a two-byte length, then the message (RFC 1035 4.2.2).
pub(super) async fn read_framed(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let len = stream.read_u16().await?;
    let mut message = vec![0; usize::from(len)];
    stream.read_exact(&mut message).await?;
    Ok(message)
}

pub(super) async fn write_framed(stream: &mut TcpStream, message: &[u8]) -> io::Result<()> {
    let len = u16::try_from(message.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "DNS message over 64 KiB"))?;
    let mut framed = Vec::with_capacity(message.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(message);
    stream.write_all(&framed).await
}
