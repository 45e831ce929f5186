//! The embedded DNS server on real loopback sockets: member names from its table, the rest
//! forwarded to fake upstream servers these tests run on other loopback ports.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use kapsel_network::dns::{self, upstreams_from_resolv_conf, DnsServer, NameTable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

const WEB: Ipv4Addr = Ipv4Addr::new(10, 89, 0, 2);
const WEB_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
const DB: Ipv4Addr = Ipv4Addr::new(10, 89, 0, 3);
/// What the fake upstreams answer for every A question (TEST-NET-1).
const UPSTREAM_ANSWER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 53);
/// A name the fake upstreams answer truncated over UDP and whole over TCP.
const LARGE_NAME: &str = "large.example.";

fn members() -> Arc<NameTable> {
    let table = NameTable::new();
    let names = |list: &[&str]| list.iter().map(|name| name.to_string()).collect::<Vec<_>>();
    table.insert(
        "a1b2c3d4e5f6a7b8",
        &names(&["web", "frontend", "a1b2c3d4e5f6"]),
        &[WEB.into(), WEB_V6.into()],
    );
    table.insert(
        "0f0e0d0c0b0a0908",
        &names(&["db", "frontend"]),
        &[DB.into()],
    );
    table
}

async fn start(table: Arc<NameTable>, upstreams: Vec<SocketAddr>) -> SocketAddr {
    let listen: SocketAddr = (Ipv4Addr::LOCALHOST, 0).into();
    let server = DnsServer::bind(listen, dns::single(table), upstreams)
        .await
        .expect("bind DNS server");
    let addr = server.local_addr();
    tokio::spawn(server.serve());
    addr
}

fn question(name: &str, record_type: RecordType) -> Message {
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), record_type));
    message
}

async fn ask_udp(server: SocketAddr, query: &Message) -> Message {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    socket
        .send_to(&query.to_vec().unwrap(), server)
        .await
        .unwrap();
    let mut buf = vec![0; 65535];
    let (len, _) = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        socket.recv_from(&mut buf),
    )
    .await
    .expect("the DNS server answers over UDP")
    .unwrap();
    Message::from_vec(&buf[..len]).expect("a well-formed answer")
}

async fn ask_tcp(server: SocketAddr, query: &Message) -> Message {
    let mut stream = TcpStream::connect(server).await.unwrap();
    let bytes = query.to_vec().unwrap();
    stream
        .write_all(&(bytes.len() as u16).to_be_bytes())
        .await
        .unwrap();
    stream.write_all(&bytes).await.unwrap();
    let len = stream
        .read_u16()
        .await
        .expect("the DNS server answers over TCP");
    let mut answer = vec![0; usize::from(len)];
    stream.read_exact(&mut answer).await.unwrap();
    Message::from_vec(&answer).expect("a well-formed answer")
}

async fn resolve(server: SocketAddr, name: &str, record_type: RecordType) -> Message {
    let answer = ask_udp(server, &question(name, record_type)).await;
    assert_eq!(answer.message_type, MessageType::Response);
    answer
}

fn addresses(answer: &Message) -> Vec<IpAddr> {
    answer
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
            _ => None,
        })
        .collect()
}

/// A fake upstream nameserver on UDP and TCP of one loopback port. It answers every A
/// question with UPSTREAM_ANSWER, and LARGE_NAME truncated over UDP.
async fn fake_upstream() -> SocketAddr {
    let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = udp.local_addr().unwrap();
    let tcp = TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0; 65535];
        while let Ok((len, client)) = udp.recv_from(&mut buf).await {
            let answer = upstream_answer(&buf[..len], false);
            udp.send_to(&answer, client).await.unwrap();
        }
    });
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = tcp.accept().await {
            let len = stream.read_u16().await.unwrap();
            let mut query = vec![0; usize::from(len)];
            stream.read_exact(&mut query).await.unwrap();
            let answer = upstream_answer(&query, true);
            stream
                .write_all(&(answer.len() as u16).to_be_bytes())
                .await
                .unwrap();
            stream.write_all(&answer).await.unwrap();
        }
    });
    addr
}

fn upstream_answer(query: &[u8], over_tcp: bool) -> Vec<u8> {
    let query = Message::from_vec(query).unwrap();
    let mut answer = Message::response(query.id, OpCode::Query);
    answer.add_queries(query.queries.clone());
    let name = query.queries[0].name().clone();
    if name.to_ascii() == LARGE_NAME && !over_tcp {
        answer.metadata.truncation = true;
    } else {
        answer.add_answer(Record::from_rdata(name, 60, RData::A(A(UPSTREAM_ANSWER))));
    }
    answer.to_vec().unwrap()
}

/// A loopback address where nothing listens: queries to it are refused at once.
async fn refusing_upstream() -> SocketAddr {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    socket.local_addr().unwrap()
}

#[tokio::test]
async fn container_name_resolves_to_its_address() {
    let server = start(members(), vec![]).await;
    let answer = resolve(server, "web", RecordType::A).await;
    assert_eq!(answer.response_code, ResponseCode::NoError);
    assert_eq!(addresses(&answer), vec![IpAddr::V4(WEB)]);
    assert_eq!(answer.answers[0].ttl, 600);
    let answer = resolve(server, "web", RecordType::AAAA).await;
    assert_eq!(addresses(&answer), vec![IpAddr::V6(WEB_V6)]);
    let answer = resolve(server, "a1b2c3d4e5f6", RecordType::A).await;
    assert_eq!(
        addresses(&answer),
        vec![IpAddr::V4(WEB)],
        "short container id"
    );
}

#[tokio::test]
async fn shared_alias_resolves_to_every_member_in_rotating_order() {
    let server = start(members(), vec![]).await;
    let first = addresses(&resolve(server, "frontend", RecordType::A).await);
    let second = addresses(&resolve(server, "frontend", RecordType::A).await);
    let mut sorted = first.clone();
    sorted.sort();
    assert_eq!(sorted, vec![IpAddr::V4(WEB), IpAddr::V4(DB)]);
    assert_eq!(
        second,
        first.iter().rev().copied().collect::<Vec<_>>(),
        "the order rotates"
    );
}

#[tokio::test]
async fn answer_too_large_for_udp_is_truncated_and_whole_over_tcp() {
    let table = NameTable::new();
    let members: Vec<IpAddr> = (1..=60)
        .map(|host| Ipv4Addr::new(10, 89, 1, host).into())
        .collect();
    for addr in &members {
        table.insert(
            &format!("member-{addr}"),
            &["workers".to_string()],
            &[*addr],
        );
    }
    let server = start(table, vec![]).await;
    let query = question("workers", RecordType::A);
    let over_udp = ask_udp(server, &query).await;
    assert!(over_udp.truncation, "60 A records exceed 512 bytes");
    assert!(over_udp.answers.is_empty());
    let mut over_tcp = addresses(&ask_tcp(server, &query).await);
    over_tcp.sort();
    assert_eq!(over_tcp, members);
}

#[tokio::test]
async fn known_name_without_records_of_the_type_is_noerror_and_empty() {
    let server = start(members(), vec![]).await;
    for record_type in [RecordType::MX, RecordType::AAAA] {
        let name = if record_type == RecordType::AAAA {
            "db"
        } else {
            "web"
        };
        let answer = resolve(server, name, record_type).await;
        assert_eq!(
            answer.response_code,
            ResponseCode::NoError,
            "{name} {record_type}"
        );
        assert!(
            answer.answers.is_empty(),
            "{name} {record_type}: {:?}",
            answer.answers
        );
    }
}

#[tokio::test]
async fn member_address_resolves_back_to_its_name() {
    let server = start(members(), vec![]).await;
    for addr in [IpAddr::V4(DB), IpAddr::V6(WEB_V6)] {
        let arpa = Name::from(addr).to_ascii();
        let answer = resolve(server, &arpa, RecordType::PTR).await;
        let expected = if addr.is_ipv4() { "db." } else { "web." };
        assert_eq!(answer.answers.len(), 1, "{arpa}");
        assert_eq!(
            answer.answers[0].data,
            RData::PTR(PTR(Name::from_ascii(expected).unwrap()))
        );
    }
}

#[tokio::test]
async fn names_match_in_any_case_with_or_without_trailing_dot() {
    let server = start(members(), vec![]).await;
    for name in ["WEB", "Web.", "web."] {
        let answer = resolve(server, name, RecordType::A).await;
        assert_eq!(addresses(&answer), vec![IpAddr::V4(WEB)], "{name}");
        assert_eq!(
            answer.answers[0].name.to_ascii(),
            format!("{}.", name.trim_end_matches('.')),
            "the answer keeps the question's case"
        );
    }
}

#[tokio::test]
async fn removed_member_is_forwarded_upstream_with_the_client_id() {
    let table = members();
    let server = start(table.clone(), vec![fake_upstream().await]).await;
    table.remove("0f0e0d0c0b0a0908");
    let query = question("db", RecordType::A);
    let answer = ask_udp(server, &query).await;
    assert_eq!(answer.id, query.id);
    assert_eq!(addresses(&answer), vec![IpAddr::V4(UPSTREAM_ANSWER)]);
    let answer = ask_tcp(server, &query).await;
    assert_eq!(answer.id, query.id);
    assert_eq!(
        addresses(&answer),
        vec![IpAddr::V4(UPSTREAM_ANSWER)],
        "over TCP"
    );
}

#[tokio::test]
async fn silent_then_refusing_upstreams_are_skipped_for_a_live_one() {
    let silent = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let upstreams = vec![
        silent.local_addr().unwrap(),
        refusing_upstream().await,
        fake_upstream().await,
    ];
    let server = start(members(), upstreams).await;
    let answer = resolve(server, "example.org", RecordType::A).await;
    assert_eq!(addresses(&answer), vec![IpAddr::V4(UPSTREAM_ANSWER)]);
}

#[tokio::test]
async fn no_live_upstream_is_servfail() {
    let server = start(
        members(),
        vec![refusing_upstream().await, refusing_upstream().await],
    )
    .await;
    let query = question("example.org", RecordType::A);
    let answer = ask_udp(server, &query).await;
    assert_eq!(answer.id, query.id);
    assert_eq!(answer.response_code, ResponseCode::ServFail);
    let answer = ask_tcp(server, &query).await;
    assert_eq!(answer.response_code, ResponseCode::ServFail, "over TCP");
}

#[tokio::test]
async fn truncated_upstream_answer_is_fetched_over_tcp() {
    let server = start(members(), vec![fake_upstream().await]).await;
    let answer = resolve(server, LARGE_NAME, RecordType::A).await;
    assert!(!answer.truncation);
    assert_eq!(addresses(&answer), vec![IpAddr::V4(UPSTREAM_ANSWER)]);
}

#[tokio::test]
async fn garbage_is_ignored_and_the_server_keeps_answering() {
    let server = start(members(), vec![]).await;
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let truncated_query = question("web", RecordType::A).to_vec().unwrap();
    for garbage in [
        &b""[..],
        b"\x00",
        b"not a dns message at all",
        &truncated_query[..15],
        &[0xff; 512],
    ] {
        socket.send_to(garbage, server).await.unwrap();
    }
    let mut tcp = TcpStream::connect(server).await.unwrap();
    tcp.write_all(b"\x00\x04junk").await.unwrap();
    let mut rest = Vec::new();
    let closed = tcp.read_to_end(&mut rest).await;
    assert!(
        closed.is_err() || rest.is_empty(),
        "no answer to TCP garbage: {rest:?}"
    );
    let answer = resolve(server, "web", RecordType::A).await;
    assert_eq!(addresses(&answer), vec![IpAddr::V4(WEB)]);
}

#[tokio::test]
async fn dig_resolves_members_over_udp_and_tcp() {
    let server = start(members(), vec![]).await;
    let dig = |args: &[&str]| {
        let mut command = tokio::process::Command::new("dig");
        command.args([format!("@{}", server.ip()), format!("-p{}", server.port())]);
        command.args(["+short", "+tries=1", "+time=5"]).args(args);
        command.output()
    };
    let cases: [(&[&str], &str); 4] = [
        (&["web"], "10.89.0.2"),
        (&["+tcp", "WEB.", "AAAA"], "fd00::2"),
        (&["-x", "10.89.0.3"], "db."),
        (&["frontend", "MX"], ""),
    ];
    for (args, expected) in cases {
        let output = dig(args)
            .await
            .expect("dig is installed (scripts/install-deps.sh: dnsutils)");
        assert!(output.status.success(), "dig {args:?}: {output:?}");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            expected,
            "dig {args:?}"
        );
    }
}

#[test]
fn resolv_conf_nameservers_become_upstreams() {
    let text = "# generated\nsearch example.com\nnameserver 127.0.0.53\nnameserver  ::1 \n\
                nameserver fe80::1%eth0\noptions edns0\n;nameserver 10.0.0.1\nnameserver\n";
    let expected: Vec<SocketAddr> = vec![
        "127.0.0.53:53".parse().unwrap(),
        "[::1]:53".parse().unwrap(),
    ];
    assert_eq!(upstreams_from_resolv_conf(text), expected);
}
