//! Starts the real third-party servers and the loopback targets, and checks
//! what they send over real sockets.

use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;
use tokio_websockets::Message;
use wisp_testkit::{RealServer, ServerKind, TcpEcho, TcpSink, UdpEcho, refused_port};

mod support;
use support::{Ws, ws_connect};

const STEP: Duration = Duration::from_secs(10);

/// CONTINUE on stream 0 with a credit of 128.
const CONTINUE_128: &str = "030000000080000000";
/// INFO v2.0 advertising UDP only.
const INFO_UDP: &str = "050000000002000100000000";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn start(kind: ServerKind) -> RealServer {
    RealServer::start(kind)
        .await
        .unwrap_or_else(|e| panic!("server did not start: {e}"))
}

async fn connect(server: &RealServer, subprotocol: Option<&str>) -> Ws {
    ws_connect(&server.url(), subprotocol).await.0
}

/// The next binary message, as hex.
async fn next_binary(ws: &mut Ws, server: &RealServer) -> String {
    loop {
        let message = timeout(STEP, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no message within {STEP:?}; log:\n{}", server.log_tail()))
            .expect("WebSocket closed")
            .expect("WebSocket error");
        if message.is_binary() {
            return hex(&message.into_payload());
        }
        assert!(
            message.is_ping() || message.is_pong(),
            "unexpected message {message:?}"
        );
    }
}

async fn send(ws: &mut Ws, packet: Vec<u8>) {
    ws.send(Message::binary(packet)).await.unwrap();
}

fn packet(kind: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut packet = vec![kind];
    packet.extend_from_slice(&stream.to_le_bytes());
    packet.extend_from_slice(payload);
    packet
}

fn connect_packet(stream: u32, stream_type: u8, target: SocketAddr) -> Vec<u8> {
    let mut payload = vec![stream_type];
    payload.extend_from_slice(&target.port().to_le_bytes());
    payload.extend_from_slice(target.ip().to_string().as_bytes());
    packet(0x01, stream, &payload)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wisp_python_sends_continue_first() {
    let server = start(ServerKind::WispPython).await;
    assert_eq!(server.kind(), &ServerKind::WispPython);
    assert_eq!(
        server.url(),
        format!("ws://127.0.0.1:{}/", server.addr().port())
    );
    let mut ws = connect(&server, None).await;
    assert_eq!(next_binary(&mut ws, &server).await, CONTINUE_128);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wisp_js_without_subprotocol_sends_continue_first() {
    let server = start(ServerKind::WispJs { motd: None }).await;
    let mut ws = connect(&server, None).await;
    assert_eq!(next_binary(&mut ws, &server).await, CONTINUE_128);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wisp_js_with_subprotocol_sends_info_first() {
    let server = start(ServerKind::WispJs { motd: None }).await;
    let mut ws = connect(&server, Some("wisp-v2")).await;
    assert_eq!(next_binary(&mut ws, &server).await, INFO_UDP);
    // Draft 6: the CONTINUE follows only after the client's INFO.
    send(&mut ws, packet(0x05, 0, &[2, 0])).await;
    assert_eq!(next_binary(&mut ws, &server).await, CONTINUE_128);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wisp_js_motd_is_in_info() {
    let server = start(ServerKind::WispJs {
        motd: Some("hello".into()),
    })
    .await;
    let mut ws = connect(&server, Some("wisp-v2")).await;
    let info = next_binary(&mut ws, &server).await;
    assert!(info.starts_with("05000000000200"), "{info}");
    let extensions = &info["05000000000200".len()..];
    let udp = "0100000000";
    let motd = "040500000068656c6c6f";
    assert!(extensions.contains(udp), "UDP extension missing: {info}");
    assert!(extensions.contains(motd), "MOTD extension missing: {info}");
    assert_eq!(extensions.len(), udp.len() + motd.len(), "{info}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_stream_through_wisp_python_reaches_the_echo() {
    let server = start(ServerKind::WispPython).await;
    let echo = TcpEcho::start().await;
    let mut ws = connect(&server, None).await;
    assert_eq!(next_binary(&mut ws, &server).await, CONTINUE_128);
    send(&mut ws, connect_packet(1, 0x01, echo.addr())).await;
    send(&mut ws, packet(0x02, 1, b"ping")).await;
    let mut echoed = String::new();
    while echoed.len() < 8 {
        let message = next_binary(&mut ws, &server).await;
        // Skip CONTINUE packets; collect DATA on stream 1.
        if let Some(data) = message.strip_prefix("0201000000") {
            echoed.push_str(data);
        } else {
            assert!(message.starts_with("03"), "unexpected packet {message}");
        }
    }
    assert_eq!(echoed, hex(b"ping"));
    assert_eq!(echo.connections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_stream_through_wisp_js_reaches_the_echo() {
    let server = start(ServerKind::WispJs { motd: None }).await;
    let echo = UdpEcho::start().await;
    let mut ws = connect(&server, None).await;
    assert_eq!(next_binary(&mut ws, &server).await, CONTINUE_128);
    send(&mut ws, connect_packet(1, 0x02, echo.addr())).await;
    send(&mut ws, packet(0x02, 1, b"datagram")).await;
    loop {
        let message = next_binary(&mut ws, &server).await;
        if let Some(data) = message.strip_prefix("0201000000") {
            assert_eq!(data, hex(b"datagram"));
            break;
        }
        assert!(message.starts_with("03"), "unexpected packet {message}");
    }
    assert_eq!(echo.datagrams(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connect_is_closed_by_both_servers() {
    for (kind, reason) in [
        (ServerKind::WispPython, "42"),
        (ServerKind::WispJs { motd: None }, "03"),
    ] {
        let server = start(kind.clone()).await;
        let mut ws = connect(&server, None).await;
        assert_eq!(next_binary(&mut ws, &server).await, CONTINUE_128);
        send(&mut ws, connect_packet(1, 0x01, refused_port().await)).await;
        assert_eq!(
            next_binary(&mut ws, &server).await,
            format!("0401000000{reason}"),
            "{kind}"
        );
    }
}

/// Processes whose process group is `pgid` (from /proc).
fn group_members(pgid: u32) -> Vec<u32> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid pgrp ...`
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        if fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string() {
            members.push(pid);
        }
    }
    members
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_kills_the_server_and_its_workers() {
    let mut server = start(ServerKind::WispPython).await;
    assert!(server.is_running());
    let pgid = server.pid();
    let addr = server.addr();
    // The server itself, its forked worker and the watchdog.
    let before = group_members(pgid);
    assert!(before.len() >= 3, "group {pgid}: {before:?}");
    drop(server);
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let left = group_members(pgid);
        let refused = TcpStream::connect(addr).await.is_err();
        if left.is_empty() && refused {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still alive after drop: {left:?}, port refused: {refused}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_echo_echoes_on_many_connections() {
    let echo = TcpEcho::start().await;
    let mut clients = Vec::new();
    for i in 0..20u8 {
        let mut stream = TcpStream::connect(echo.addr()).await.unwrap();
        let payload: Vec<u8> = (0..=255u8).map(|b| b ^ i).cycle().take(100_000).collect();
        clients.push(tokio::spawn(async move {
            let (mut reader, mut writer) = stream.split();
            let write = async {
                writer.write_all(&payload).await.unwrap();
                writer.shutdown().await.unwrap();
            };
            let mut received = Vec::new();
            let read = reader.read_to_end(&mut received);
            let ((), read) = tokio::join!(write, read);
            read.unwrap();
            assert_eq!(received, payload);
        }));
    }
    for client in clients {
        timeout(STEP, client).await.unwrap().unwrap();
    }
    assert_eq!(echo.connections(), 20);
    let addr = echo.addr();
    drop(echo);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting after drop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_echo_answers_each_datagram_once() {
    let echo = UdpEcho::start().await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(echo.addr()).await.unwrap();
    for n in 0..10u8 {
        let datagram = vec![n; usize::from(n) * 100 + 1];
        socket.send(&datagram).await.unwrap();
        let mut buf = vec![0u8; 65_536];
        let len = timeout(STEP, socket.recv(&mut buf)).await.unwrap().unwrap();
        assert_eq!(&buf[..len], &datagram[..]);
    }
    // Nothing more arrives: one datagram in, one out.
    let mut buf = [0u8; 16];
    assert!(
        timeout(Duration::from_millis(200), socket.recv(&mut buf))
            .await
            .is_err()
    );
    assert_eq!(echo.datagrams(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_port_refuses() {
    let addr = refused_port().await;
    assert!(addr.ip().is_loopback());
    let err = TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_sink_accepts_and_never_reads() {
    let sink = TcpSink::start().await;
    let mut stream = TcpStream::connect(sink.addr()).await.unwrap();
    let chunk = vec![0u8; 64 * 1024];
    let mut written = 0usize;
    // Writes stall once both socket buffers are full.
    loop {
        match timeout(Duration::from_millis(300), stream.write(&chunk)).await {
            Ok(Ok(n)) => written += n,
            Ok(Err(e)) => panic!("write failed after {written} bytes: {e}"),
            Err(_) => break,
        }
        assert!(written < 256 * 1024 * 1024, "the sink is reading");
    }
    assert!(written > 0);
    assert_eq!(sink.connections(), 1);
}
