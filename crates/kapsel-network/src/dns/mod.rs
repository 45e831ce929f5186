//! The embedded resolver of a user-defined network, as Docker's at 127.0.0.11 and podman's
//! aardvark-dns: it answers the names of the network's members from a [`NameTable`] and
//! forwards everything else to the host's nameservers. kapseld runs one per network on
//! the network's gateway address, port 53, in the host's network namespace.
//!
//! Messages are parsed and written with hickory-proto; the serving loop is hand-written
//! because hickory-server and hickory-resolver would weigh on kapseld's small idle RSS.

mod table;
mod upstream;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinSet;

use crate::NetworkError;
pub use table::NameTable;

/// The tables a client's queries are answered from, by the client's address: a container
/// on several networks sees the names of all of them, and only those.
pub type Scope = Arc<dyn Fn(IpAddr) -> Vec<Arc<NameTable>> + Send + Sync>;

/// One table for every client.
pub fn single(table: Arc<NameTable>) -> Scope {
    Arc::new(move |_| vec![table.clone()])
}
pub use upstream::upstreams_from_resolv_conf;
use upstream::{read_framed, write_framed, Transport};

/// Docker's TTL for container names.
const TTL: u32 = 600;
/// Queries and TCP connections handled at once; more are dropped so that a flood cannot
/// grow kapseld without bound (clients retry).
const MAX_IN_FLIGHT: usize = 256;
/// How long an idle TCP client may keep its connection.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct DnsServer {
    addr: SocketAddr,
    udp: Arc<UdpSocket>,
    tcp: TcpListener,
    resolver: Arc<Resolver>,
}

struct Resolver {
    scope: Scope,
    upstreams: Vec<SocketAddr>,
}

impl DnsServer {
    /// Binds UDP and TCP on `listen` (port 53 in production, any port in tests; with port
    /// 0 the TCP listener takes the port the UDP socket got).
    pub async fn bind(
        listen: SocketAddr,
        scope: Scope,
        upstreams: Vec<SocketAddr>,
    ) -> Result<Self, NetworkError> {
        let bind_error = |source| NetworkError::DnsBind {
            addr: listen,
            source,
        };
        let udp = UdpSocket::bind(listen).await.map_err(bind_error)?;
        let bound = udp.local_addr().map_err(bind_error)?;
        let tcp = TcpListener::bind(bound).await.map_err(bind_error)?;
        Ok(Self {
            addr: bound,
            udp: Arc::new(udp),
            tcp,
            resolver: Arc::new(Resolver { scope, upstreams }),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until the future is dropped (kapseld aborts the task when the network goes
    /// away); the queries in progress are dropped with it.
    pub async fn serve(self) {
        let mut in_flight = JoinSet::new();
        let mut datagram = vec![0; usize::from(u16::MAX)];
        loop {
            tokio::select! {
                received = self.udp.recv_from(&mut datagram) => match received {
                    Ok((len, client)) if in_flight.len() < MAX_IN_FLIGHT => {
                        let query = datagram[..len].to_vec();
                        let (udp, resolver) = (self.udp.clone(), self.resolver.clone());
                        in_flight.spawn(async move { resolver.serve_datagram(&udp, &query, client).await });
                    }
                    Ok((_, client)) => tracing::debug!(%client, "DNS query dropped: too many in flight"),
                    Err(error) => tracing::debug!(%error, "DNS receive failed"),
                },
                accepted = self.tcp.accept() => match accepted {
                    Ok((stream, _)) if in_flight.len() < MAX_IN_FLIGHT => {
                        in_flight.spawn(self.resolver.clone().serve_connection(stream));
                    }
                    Ok((_, client)) => tracing::debug!(%client, "DNS connection dropped: too many in flight"),
                    Err(error) => tracing::debug!(%error, "DNS accept failed"),
                },
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            }
        }
    }
}

impl Resolver {
    async fn serve_datagram(&self, udp: &UdpSocket, query: &[u8], client: SocketAddr) {
        let Some(answer) = self.answer(query, client.ip(), Transport::Udp).await else {
            return;
        };
        if let Err(error) = udp.send_to(&answer, client).await {
            tracing::debug!(%client, %error, "DNS answer not sent");
        }
    }

    /// Answers the queries of one TCP client until it closes or stays idle.
    async fn serve_connection(self: Arc<Self>, mut stream: TcpStream) {
        let Ok(client) = stream.peer_addr() else {
            return;
        };
        while let Ok(Ok(query)) =
            tokio::time::timeout(TCP_IDLE_TIMEOUT, read_framed(&mut stream)).await
        {
            let Some(answer) = self.answer(&query, client.ip(), Transport::Tcp).await else {
                return;
            };
            if write_framed(&mut stream, &answer).await.is_err() {
                return;
            }
        }
    }

    /// The answer to one query message, or `None` for what is not a query (garbage,
    /// stray responses), which gets no answer at all.
    async fn answer(&self, query: &[u8], client: IpAddr, transport: Transport) -> Option<Vec<u8>> {
        let request = match Message::from_vec(query) {
            Ok(request) if request.message_type == MessageType::Query => request,
            Ok(_) => return None,
            Err(error) => {
                tracing::debug!(%error, "malformed DNS query ignored");
                return None;
            }
        };
        let response = match self.local_response(&request, &(self.scope)(client)) {
            Some(response) => response,
            None => {
                match upstream::forward(query, &self.upstreams, transport, request.max_payload())
                    .await
                {
                    Some(answer) => return Some(answer),
                    None => reply(&request, ResponseCode::ServFail, Vec::new()),
                }
            }
        };
        encode(&response, transport, request.max_payload())
    }

    /// The response when the table (or a malformed request) decides it, `None` when the
    /// query is for the upstreams.
    fn local_response(&self, request: &Message, tables: &[Arc<NameTable>]) -> Option<Message> {
        let [query] = request.queries.as_slice() else {
            return Some(reply(request, ResponseCode::FormErr, Vec::new()));
        };
        if request.op_code != OpCode::Query {
            return Some(reply(request, ResponseCode::NotImp, Vec::new()));
        }
        if query.query_class() != DNSClass::IN {
            return None;
        }
        let answers = match query.query_type() {
            RecordType::PTR => pointer_records(tables, query)?,
            _ => address_records(tables, query)?,
        };
        Some(reply(request, ResponseCode::NoError, answers))
    }
}

/// The records of a member's name; none (but an answer) when the name is known without
/// records of the asked type, as Docker does.
fn address_records(tables: &[Arc<NameTable>], query: &Query) -> Option<Vec<Record>> {
    let name = query.name().to_ascii();
    let addrs = tables.iter().find_map(|t| t.addresses(&name))?;
    let wanted = query.query_type();
    let records = addrs.into_iter().filter_map(|addr| match addr {
        IpAddr::V4(v4) if matches!(wanted, RecordType::A | RecordType::ANY) => {
            Some(RData::A(A(v4)))
        }
        IpAddr::V6(v6) if matches!(wanted, RecordType::AAAA | RecordType::ANY) => {
            Some(RData::AAAA(AAAA(v6)))
        }
        _ => None,
    });
    Some(
        records
            .map(|rdata| Record::from_rdata(query.name().clone(), TTL, rdata))
            .collect(),
    )
}

/// The name of a member asked by address (`4.3.2.1.in-addr.arpa.`, `ip6.arpa.`).
fn pointer_records(tables: &[Arc<NameTable>], query: &Query) -> Option<Vec<Record>> {
    let net = query.name().parse_arpa_name().ok()?;
    if net.prefix_len() != net.max_prefix_len() {
        return None;
    }
    let name = tables.iter().find_map(|t| t.name_of(net.addr()))?;
    let target = Name::from_ascii(format!("{name}.")).ok()?;
    let record = Record::from_rdata(query.name().clone(), TTL, RData::PTR(PTR(target)));
    Some(vec![record])
}

/// A response to `request` with its ID, question and flags.
fn reply(request: &Message, code: ResponseCode, answers: Vec<Record>) -> Message {
    let mut response = Message::response(request.id, request.op_code);
    response.metadata = Metadata::response_from_request(&request.metadata);
    response.metadata.response_code = code;
    response.metadata.recursion_available = true;
    response.metadata.authoritative = code == ResponseCode::NoError;
    response.add_queries(request.queries.iter().cloned());
    response.add_answers(answers);
    // RFC 6891: a request with an OPT record gets one back.
    if request.edns.is_some() {
        response.set_edns(Edns::new());
    }
    response
}

/// The bytes of `response`; over UDP cut down to the question with the TC flag when it
/// exceeds what the client accepts, so that the client asks again over TCP.
fn encode(response: &Message, transport: Transport, client_payload: u16) -> Option<Vec<u8>> {
    let encoded = response.to_vec();
    let bytes = match encoded {
        Ok(bytes) if transport == Transport::Udp && bytes.len() > usize::from(client_payload) => {
            response.truncate().to_vec()
        }
        other => other,
    };
    bytes
        .inspect_err(|error| tracing::warn!(%error, "DNS response not encodable"))
        .ok()
}
