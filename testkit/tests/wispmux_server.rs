//! Starts the in-process wisp-mux 5.1.0 server and checks, over real
//! sockets, what it sends: its first frames in v1, v2 and password modes,
//! TCP and UDP forwarding, close reasons, and how it ends connections.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, timeout};
use tokio_websockets::Message;
use wisp_testkit::{TcpEcho, UdpEcho, WispMuxConfig, WispMuxServer, refused_port};

mod support;
use support::{Ws, ws_connect};

/// Upper bound for one expected event.
const STEP: Duration = Duration::from_secs(10);
/// How long "nothing more arrives" is watched.
const QUIET: Duration = Duration::from_millis(300);

/// CONTINUE on stream 0 with a credit of 128.
const CONTINUE_128: &str = "030000000080000000";
/// INFO v2.0 advertising UDP (the server's v2 INFO without a password).
const INFO_UDP: &str = "050000000002000100000000";
/// INFO v2.0 advertising UDP and the password extension. wisp-mux 5.1.0
/// builds the server's records with `Role::Client`, so the password record
/// is a client-layout record with empty credentials:
/// `ulen 00 | plen 0000` (length 3), not the draft-4 `required` byte.
const INFO_UDP_PASSWORD: &str = "0500000000020001000000000203000000000000";
/// The client INFO used below: v2.0 with the UDP extension.
const CLIENT_INFO_UDP: [u8; 12] = [5, 0, 0, 0, 0, 2, 0, 1, 0, 0, 0, 0];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn start(config: WispMuxConfig) -> WispMuxServer {
    WispMuxServer::start(config)
        .await
        .unwrap_or_else(|e| panic!("wisp-mux server did not start: {e}"))
}

async fn connect_with(
    server: &WispMuxServer,
    subprotocol: Option<&str>,
) -> (Ws, http::Response<()>) {
    ws_connect(&server.url(), subprotocol).await
}

async fn connect(server: &WispMuxServer) -> Ws {
    connect_with(server, None).await.0
}

/// The next message that is not a ping or pong.
async fn next_message(ws: &mut Ws) -> Option<Message> {
    loop {
        let message = timeout(STEP, ws.next())
            .await
            .unwrap_or_else(|_| panic!("nothing received within {STEP:?}"))?;
        match message {
            Ok(message) if message.is_ping() || message.is_pong() => continue,
            Ok(message) => return Some(message),
            Err(_) => return None,
        }
    }
}

/// The next binary message, as hex.
async fn next_binary(ws: &mut Ws) -> String {
    let message = next_message(ws).await.expect("WebSocket ended");
    assert!(message.is_binary(), "unexpected message {message:?}");
    hex(&message.into_payload())
}

/// Asserts that the WebSocket ends (close frame, end of stream or error)
/// without another binary message first.
async fn expect_ws_end(ws: &mut Ws) {
    if let Some(message) = next_message(ws).await {
        assert!(message.is_close(), "expected the end, got {message:?}");
    }
}

/// Asserts that no message arrives within [`QUIET`].
async fn expect_quiet(ws: &mut Ws) {
    if let Ok(message) = timeout(QUIET, ws.next()).await {
        panic!("expected silence, got {message:?}");
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

fn data(stream: u32, bytes: &[u8]) -> Vec<u8> {
    packet(0x02, stream, bytes)
}

/// Opens a v1 connection and consumes its CONTINUE(0).
async fn v1_connection(server: &WispMuxServer) -> Ws {
    let mut ws = connect(server).await;
    assert_eq!(next_binary(&mut ws).await, CONTINUE_128);
    ws
}

/// Reads DATA packets on `stream` until `len` bytes arrived; returns them.
/// Any other packet fails the test.
async fn read_data(ws: &mut Ws, stream: u32, len: usize) -> Vec<u8> {
    let mut received = Vec::new();
    while received.len() < len {
        let message = next_message(ws).await.expect("WebSocket ended");
        let payload = message.into_payload();
        assert!(payload.len() >= 5, "short packet {}", hex(&payload));
        assert_eq!(payload[0], 0x02, "expected DATA, got {}", hex(&payload));
        assert_eq!(payload[1..5], stream.to_le_bytes(), "{}", hex(&payload));
        received.extend_from_slice(&payload[5..]);
    }
    received
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_and_addr_agree() {
    let server = start(WispMuxConfig::default()).await;
    assert_eq!(server.addr().ip(), Ipv4Addr::LOCALHOST);
    assert_eq!(
        server.url(),
        format!("ws://127.0.0.1:{}/", server.addr().port())
    );
    assert_eq!(server.config(), &WispMuxConfig::default());
    assert_eq!(server.config().buffer_size, 128);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_without_v2_is_refused() {
    let config = WispMuxConfig {
        password: Some(("u".into(), "p".into())),
        ..WispMuxConfig::default()
    };
    let error = WispMuxServer::start(config).await.unwrap_err();
    assert!(error.contains("v2"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_sends_only_continue_with_the_buffer_size() {
    let server = start(WispMuxConfig::default()).await;
    let mut ws = connect(&server).await;
    assert_eq!(next_binary(&mut ws).await, CONTINUE_128);
    expect_quiet(&mut ws).await;
    assert_eq!(server.connections(), 1);

    let server = start(WispMuxConfig {
        buffer_size: 7,
        ..WispMuxConfig::default()
    })
    .await;
    let mut ws = connect(&server).await;
    assert_eq!(next_binary(&mut ws).await, "030000000007000000");
    expect_quiet(&mut ws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_sends_continue_then_info_and_echoes_the_first_subprotocol() {
    let server = start(WispMuxConfig {
        v2: true,
        ..WispMuxConfig::default()
    })
    .await;
    let (mut ws, response) = connect_with(&server, Some("wisp-v2, other")).await;
    assert_eq!(
        response
            .headers()
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().unwrap()),
        Some("wisp-v2")
    );
    assert_eq!(next_binary(&mut ws).await, CONTINUE_128);
    assert_eq!(next_binary(&mut ws).await, INFO_UDP);
    expect_quiet(&mut ws).await;

    // No subprotocol: same frames (5.1.0 has no header gate), none echoed.
    let (mut ws, response) = connect_with(&server, None).await;
    assert!(response.headers().get("sec-websocket-protocol").is_none());
    assert_eq!(next_binary(&mut ws).await, CONTINUE_128);
    assert_eq!(next_binary(&mut ws).await, INFO_UDP);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_forwards_tcp_after_the_client_info() {
    let echo = TcpEcho::start().await;
    let server = start(WispMuxConfig {
        v2: true,
        ..WispMuxConfig::default()
    })
    .await;
    let mut ws = connect(&server).await;
    assert_eq!(next_binary(&mut ws).await, CONTINUE_128);
    assert_eq!(next_binary(&mut ws).await, INFO_UDP);
    send(&mut ws, CLIENT_INFO_UDP.to_vec()).await;
    // Nothing answers the client's INFO.
    expect_quiet(&mut ws).await;

    send(&mut ws, connect_packet(1, 0x01, echo.addr())).await;
    send(&mut ws, data(1, b"over v2")).await;
    assert_eq!(read_data(&mut ws, 1, 7).await, b"over v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_downgrades_when_the_first_packet_is_not_info() {
    let echo = TcpEcho::start().await;
    let server = start(WispMuxConfig {
        v2: true,
        ..WispMuxConfig::default()
    })
    .await;
    let mut ws = connect(&server).await;
    assert_eq!(next_binary(&mut ws).await, CONTINUE_128);
    assert_eq!(next_binary(&mut ws).await, INFO_UDP);
    // The CONNECT ends the handshake (downgrade) and is then served.
    let started = Instant::now();
    send(&mut ws, connect_packet(1, 0x01, echo.addr())).await;
    send(&mut ws, data(1, b"v1 now")).await;
    assert_eq!(read_data(&mut ws, 1, 6).await, b"v1 now");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "waited for the 5 s timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_info_and_any_password_is_accepted() {
    let echo = TcpEcho::start().await;
    let server = start(WispMuxConfig {
        v2: true,
        password: Some(("alice".into(), "secret".into())),
        ..WispMuxConfig::default()
    })
    .await;
    let mut ws = connect(&server).await;
    assert_eq!(next_binary(&mut ws).await, CONTINUE_128);
    assert_eq!(next_binary(&mut ws).await, INFO_UDP_PASSWORD);

    // Wrong user and password, draft <=5 layout (ulen u8 | plen u16 LE):
    // 5.1.0 only checks that the record is there.
    let mut info = CLIENT_INFO_UDP.to_vec();
    let credentials = [&[3u8, 5, 0][..], b"bob", b"wrong"].concat();
    info.push(0x02);
    info.extend_from_slice(&(credentials.len() as u32).to_le_bytes());
    info.extend_from_slice(&credentials);
    send(&mut ws, info).await;

    send(&mut ws, connect_packet(1, 0x01, echo.addr())).await;
    send(&mut ws, data(1, b"let in")).await;
    assert_eq!(read_data(&mut ws, 1, 6).await, b"let in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_record_missing_gets_close_0x04() {
    let server = start(WispMuxConfig {
        v2: true,
        password: Some(("alice".into(), "secret".into())),
        ..WispMuxConfig::default()
    })
    .await;
    let mut ws = connect(&server).await;
    assert_eq!(next_binary(&mut ws).await, CONTINUE_128);
    assert_eq!(next_binary(&mut ws).await, INFO_UDP_PASSWORD);
    send(&mut ws, CLIENT_INFO_UDP.to_vec()).await;
    // Incompatible extensions on stream 0, not 0xC0/0xC2; then the WS closes.
    assert_eq!(next_binary(&mut ws).await, "040000000004");
    expect_ws_end(&mut ws).await;
}

/// No client INFO at all: wisp-mux waits 5 s, downgrades, and only then
/// finds the required password extension missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_gets_close_0x04_after_the_5_s_handshake_timeout() {
    let server = start(WispMuxConfig {
        v2: true,
        password: Some(("alice".into(), "secret".into())),
        ..WispMuxConfig::default()
    })
    .await;
    let mut ws = connect(&server).await;
    assert_eq!(next_binary(&mut ws).await, CONTINUE_128);
    assert_eq!(next_binary(&mut ws).await, INFO_UDP_PASSWORD);
    let info_seen = Instant::now();
    assert_eq!(next_binary(&mut ws).await, "040000000004");
    let waited = info_seen.elapsed();
    assert!(
        (Duration::from_millis(4500)..Duration::from_secs(8)).contains(&waited),
        "CLOSE after {waited:?}"
    );
    expect_ws_end(&mut ws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_echo_round_trip() {
    let echo = TcpEcho::start().await;
    let server = start(WispMuxConfig::default()).await;
    let mut ws = v1_connection(&server).await;
    send(&mut ws, connect_packet(1, 0x01, echo.addr())).await;
    send(&mut ws, data(1, b"hello ")).await;
    send(&mut ws, data(1, b"")).await;
    send(&mut ws, data(1, b"wisp-mux")).await;
    assert_eq!(read_data(&mut ws, 1, 14).await, b"hello wisp-mux");

    // A second stream on the same connection is independent.
    send(&mut ws, connect_packet(2, 0x01, echo.addr())).await;
    send(&mut ws, data(2, b"two")).await;
    assert_eq!(read_data(&mut ws, 2, 3).await, b"two");
    assert_eq!(echo.connections(), 2);

    // A client CLOSE is not answered.
    send(&mut ws, packet(0x04, 1, &[0x02])).await;
    expect_quiet(&mut ws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_after_more_than_90_percent_read() {
    let echo = TcpEcho::start().await;
    let server = start(WispMuxConfig {
        buffer_size: 10,
        ..WispMuxConfig::default()
    })
    .await;
    let mut ws = connect(&server).await;
    assert_eq!(next_binary(&mut ws).await, "03000000000a000000");
    send(&mut ws, connect_packet(1, 0x01, echo.addr())).await;
    for byte in 0..10u8 {
        send(&mut ws, data(1, &[byte])).await;
    }
    // Echoed bytes and exactly one CONTINUE, after the 10th packet was read
    // (> 9 = 90 % of 10): credit 0 left + 10 consumed.
    let (mut echoed, mut continues) = (Vec::new(), Vec::new());
    while echoed.len() < 10 || continues.is_empty() {
        let payload = next_message(&mut ws)
            .await
            .expect("WebSocket ended")
            .into_payload();
        match payload[0] {
            0x02 => echoed.extend_from_slice(&payload[5..]),
            0x03 => continues.push(hex(&payload)),
            _ => panic!("unexpected packet {}", hex(&payload)),
        }
    }
    assert_eq!(echoed, (0..10).collect::<Vec<u8>>());
    assert_eq!(continues, ["03010000000a000000"]);
    expect_quiet(&mut ws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_end_closes_with_0x02() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let target = listener.local_addr().unwrap();
    let upstream = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        socket.write_all(b"bye").await.unwrap();
        socket.shutdown().await.unwrap();
        // Keep the socket until the server closes its side.
        let mut rest = Vec::new();
        let _ = socket.read_to_end(&mut rest).await;
    });
    let server = start(WispMuxConfig::default()).await;
    let mut ws = v1_connection(&server).await;
    send(&mut ws, connect_packet(1, 0x01, target)).await;
    assert_eq!(read_data(&mut ws, 1, 3).await, b"bye");
    assert_eq!(next_binary(&mut ws).await, "040100000002");
    // The upstream socket is closed too.
    timeout(STEP, upstream).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connect_closes_with_0x42() {
    let refused = refused_port().await;
    let server = start(WispMuxConfig::default()).await;
    let mut ws = v1_connection(&server).await;
    send(&mut ws, connect_packet(7, 0x01, refused)).await;
    assert_eq!(next_binary(&mut ws).await, "040700000042");
    // The connection survives.
    let echo = TcpEcho::start().await;
    send(&mut ws, connect_packet(8, 0x01, echo.addr())).await;
    send(&mut ws, data(8, b"still")).await;
    assert_eq!(read_data(&mut ws, 8, 5).await, b"still");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unresolvable_host_closes_with_0x42() {
    let server = start(WispMuxConfig::default()).await;
    let mut ws = v1_connection(&server).await;
    let mut payload = vec![0x01];
    payload.extend_from_slice(&80u16.to_le_bytes());
    payload.extend_from_slice(b"no-such-host.invalid");
    send(&mut ws, packet(0x01, 1, &payload)).await;
    // A resolver without network may take a while to give up; the server
    // bounds resolve + connect by 10 s.
    let close = timeout(Duration::from_secs(30), ws.next())
        .await
        .expect("no CLOSE within 30 s")
        .expect("WebSocket ended")
        .expect("WebSocket error");
    assert_eq!(hex(&close.into_payload()), "040100000042");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_stream_type_closes_with_0x41() {
    let echo = TcpEcho::start().await;
    let server = start(WispMuxConfig::default()).await;
    let mut ws = v1_connection(&server).await;
    send(&mut ws, connect_packet(3, 0x03, echo.addr())).await;
    assert_eq!(next_binary(&mut ws).await, "040300000041");
    assert_eq!(echo.connections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_echo_one_data_per_datagram() {
    for v2 in [false, true] {
        let echo = UdpEcho::start().await;
        let server = start(WispMuxConfig {
            v2,
            ..WispMuxConfig::default()
        })
        .await;
        let mut ws = connect(&server).await;
        assert_eq!(next_binary(&mut ws).await, CONTINUE_128);
        if v2 {
            assert_eq!(next_binary(&mut ws).await, INFO_UDP);
            send(&mut ws, CLIENT_INFO_UDP.to_vec()).await;
        }
        send(&mut ws, connect_packet(1, 0x02, echo.addr())).await;
        send(&mut ws, data(1, b"one")).await;
        assert_eq!(next_binary(&mut ws).await, hex(&data(1, b"one")));
        send(&mut ws, data(1, b"three")).await;
        assert_eq!(next_binary(&mut ws).await, hex(&data(1, b"three")));
        assert_eq!(echo.datagrams(), 2, "v2 = {v2}");
        // No CONTINUE for UDP.
        expect_quiet(&mut ws).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_close_reason_kills_the_connection() {
    let echo = TcpEcho::start().await;
    let server = start(WispMuxConfig::default()).await;
    let mut ws = v1_connection(&server).await;
    send(&mut ws, connect_packet(1, 0x01, echo.addr())).await;
    send(&mut ws, data(1, b"x")).await;
    assert_eq!(read_data(&mut ws, 1, 1).await, b"x");
    // 0x05 is unassigned: 5.1.0 fails to parse it and ends the multiplexor.
    send(&mut ws, packet(0x04, 1, &[0x05])).await;
    expect_ws_end(&mut ws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_ends_one_connection_only() {
    let echo = TcpEcho::start().await;
    let server = start(WispMuxConfig {
        v2: true,
        ..WispMuxConfig::default()
    })
    .await;

    // A 2-byte packet where the handshake expects the client INFO: wisp-mux
    // 5.1.0 panics in that connection's task (Buf::get_u32_le on 1 byte).
    let mut ws = connect(&server).await;
    assert_eq!(next_binary(&mut ws).await, CONTINUE_128);
    assert_eq!(next_binary(&mut ws).await, INFO_UDP);
    send(&mut ws, vec![0x02, 0x01]).await;
    expect_ws_end(&mut ws).await;

    // After the handshake: a short packet, a text frame, an unknown packet
    // type and a client CONTINUE each end the connection.
    let hostile: [Message; 4] = [
        Message::binary(vec![0x02, 0x01, 0x00]),
        Message::text("hello"),
        Message::binary(packet(0x07, 1, b"")),
        Message::binary(packet(0x03, 0, &[1, 0, 0, 0])),
    ];
    for message in hostile {
        let mut ws = connect(&server).await;
        assert_eq!(next_binary(&mut ws).await, CONTINUE_128);
        assert_eq!(next_binary(&mut ws).await, INFO_UDP);
        send(&mut ws, CLIENT_INFO_UDP.to_vec()).await;
        ws.send(message).await.unwrap();
        expect_ws_end(&mut ws).await;
    }

    // The server still serves new connections.
    let mut ws = connect(&server).await;
    assert_eq!(next_binary(&mut ws).await, CONTINUE_128);
    assert_eq!(next_binary(&mut ws).await, INFO_UDP);
    send(&mut ws, CLIENT_INFO_UDP.to_vec()).await;
    send(&mut ws, connect_packet(1, 0x01, echo.addr())).await;
    send(&mut ws, data(1, b"alive")).await;
    assert_eq!(read_data(&mut ws, 1, 5).await, b"alive");
    assert_eq!(server.connections(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_gets_400_and_bad_version_426() {
    let server = start(WispMuxConfig::default()).await;
    let requests = [
        ("GET / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 "),
        (
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
            "HTTP/1.1 426 ",
        ),
    ];
    for (request, status) in requests {
        let mut tcp = TcpStream::connect(server.addr()).await.unwrap();
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        timeout(STEP, tcp.read_to_end(&mut response))
            .await
            .expect("the server did not close")
            .unwrap();
        let response = String::from_utf8(response).unwrap();
        assert!(response.starts_with(status), "{response}");
    }
    // Still serving.
    v1_connection(&server).await;
}

/// The request head, the client INFO (with a password record), a CONNECT
/// and a DATA in one write: the bytes behind the head must reach the
/// multiplexor at once (otherwise the server would wait 5 s and then close
/// with 0x04). Read at the frame level, this also shows that wisp-mux 5.1.0
/// sends every DATA as a fragmented message: a 5-byte header frame without
/// FIN, then the payload in a continuation frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_frames_and_bytes_behind_the_request_head() {
    let echo = TcpEcho::start().await;
    let server = start(WispMuxConfig {
        v2: true,
        password: Some(("alice".into(), "secret".into())),
        ..WispMuxConfig::default()
    })
    .await;
    let mut info = CLIENT_INFO_UDP.to_vec();
    info.extend_from_slice(&[0x02, 3, 0, 0, 0, 0, 0, 0]);
    let mut bytes = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                      Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        .to_vec();
    bytes.extend_from_slice(&masked_binary_frame(&info));
    bytes.extend_from_slice(&masked_binary_frame(&connect_packet(1, 0x01, echo.addr())));
    bytes.extend_from_slice(&masked_binary_frame(&data(1, b"raw")));

    let started = Instant::now();
    let mut tcp = TcpStream::connect(server.addr()).await.unwrap();
    tcp.write_all(&bytes).await.unwrap();
    let head = read_response_head(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(
        head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
        "{head}"
    );
    // (first byte: FIN bit and opcode; 0x82 = final binary, 0x02 = binary
    // without FIN, 0x80 = final continuation)
    let frames = [
        (0x82, CONTINUE_128),
        (0x82, INFO_UDP_PASSWORD),
        (0x02, "0201000000"),
        (0x80, "726177"),
    ];
    for (first_byte, payload) in frames {
        assert_eq!(
            read_frame(&mut tcp).await,
            (first_byte, payload.to_string())
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the INFO was not seen at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_closes_connections() {
    let server = start(WispMuxConfig::default()).await;
    let addr = server.addr();
    let mut ws = v1_connection(&server).await;
    drop(server);
    expect_ws_end(&mut ws).await;
    // The listener is gone as well (or at least no longer upgrades).
    if let Ok(Ok(mut tcp)) = timeout(STEP, TcpStream::connect(addr)).await {
        let mut buf = [0u8; 1];
        let _ = tcp.write_all(b"GET / HTTP/1.1\r\n\r\n").await;
        let read = timeout(STEP, tcp.read(&mut buf)).await.expect("no EOF");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
}

/// A client→server binary frame (masked, FIN set) of up to 125 bytes.
fn masked_binary_frame(payload: &[u8]) -> Vec<u8> {
    let mask = [0x12u8, 0x34, 0x56, 0x78];
    let len = u8::try_from(payload.len())
        .ok()
        .filter(|len| *len <= 125)
        .expect("short payload");
    let mut frame = vec![0x82, 0x80 | len];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

async fn read_response_head(tcp: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        timeout(STEP, tcp.read_exact(&mut byte))
            .await
            .expect("no response head")
            .unwrap();
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// Reads one unmasked server frame with a payload of up to 125 bytes;
/// returns its first byte (FIN, opcode) and its payload as hex.
async fn read_frame(tcp: &mut TcpStream) -> (u8, String) {
    let mut header = [0u8; 2];
    timeout(STEP, tcp.read_exact(&mut header))
        .await
        .expect("no frame")
        .unwrap();
    assert!(header[1] <= 125, "unmasked short frame expected");
    let mut payload = vec![0u8; usize::from(header[1])];
    timeout(STEP, tcp.read_exact(&mut payload))
        .await
        .expect("short frame")
        .unwrap();
    (header[0], hex(&payload))
}
