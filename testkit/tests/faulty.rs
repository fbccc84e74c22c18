//! The fault-injecting server does what each fault says, and nothing else:
//! with the default configuration it is a correct Wisp server (TCP echo of
//! 1 MiB byte-exact, UDP one datagram per DATA, both password layouts, both
//! v2 handshake orders, no loss at exact credit); each fault is shown on the
//! wire (raw WebSocket frames where the client would hide it) or through a
//! real `ClientMux` over loopback. Every wait is bounded.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::Uri;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_websockets::{ClientBuilder, Message};
use wisp_client::extensions::{
    MotdExtensionBuilder, PasswordExtensionBuilder, UdpExtensionBuilder, WispV2Handshake,
};
use wisp_client::proto::{
    CloseReason, ExtensionRecord, InfoPacket, Packet, PasswordClientRecord, PasswordLayout,
    StreamType, WispVersion,
};
use wisp_client::{ClientMux, MuxOptions, MuxStream, WispError};
use wisp_testkit::faulty::{
    CRASH_EXIT_CODE, FaultConfig, FaultyServer, Handshake, PacketMatch, ServerState,
};
use wisp_testkit::{FullBacklogTarget, TcpEcho, UdpEcho, refused_port};

mod support;
use support::{Ws, ws_connect};

/// Bound on one whole test.
const TEST_BOUND: Duration = Duration::from_secs(60);
/// Bound on one expected event.
const STEP: Duration = Duration::from_secs(10);
/// How long "nothing happens" is watched (upgrades that must not complete,
/// echoes that must not come, packets that must not be sent yet).
const QUIET: Duration = Duration::from_millis(500);

/// CONTINUE(0, 128) as sent by a correct server.
const CONTINUE_128: [u8; 9] = [3, 0, 0, 0, 0, 128, 0, 0, 0];

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    timeout(TEST_BOUND, f)
        .await
        .expect("test exceeded its time bound")
}

fn start(config: FaultConfig) -> FaultyServer {
    FaultyServer::start(config).unwrap_or_else(|e| panic!("faulty server did not start: {e}"))
}

fn host_port(addr: SocketAddr) -> (String, u16) {
    (addr.ip().to_string(), addr.port())
}

// ---------------------------------------------------------------------------
// Raw WebSocket helpers: what is on the wire, byte for byte.
// ---------------------------------------------------------------------------

/// Opens a WebSocket, offering `subprotocol`; returns it with the echoed
/// `Sec-WebSocket-Protocol`.
async fn raw(server: &FaultyServer, subprotocol: Option<&str>) -> (Ws, Option<String>) {
    let (ws, response) = ws_connect(&server.url(), subprotocol).await;
    let echoed = response
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap().to_owned());
    (ws, echoed)
}

/// The next binary message; `None` once the WebSocket ends.
async fn recv(ws: &mut Ws) -> Option<Vec<u8>> {
    loop {
        let message = timeout(STEP, ws.next())
            .await
            .unwrap_or_else(|_| panic!("nothing received within {STEP:?}"));
        match message {
            Some(Ok(m)) if m.is_binary() => return Some(m.into_payload().to_vec()),
            Some(Ok(m)) if m.is_close() => return None,
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

/// Whether no binary message arrives within [`QUIET`].
async fn stays_quiet(ws: &mut Ws) -> bool {
    timeout(QUIET, recv(ws)).await.is_err()
}

async fn send(ws: &mut Ws, packet: Packet) {
    ws.send(Message::binary(packet.to_bytes()))
        .await
        .expect("sending a packet");
}

/// A client INFO (v2.0) with these records.
fn client_info(records: Vec<ExtensionRecord>) -> Packet {
    Packet::info(InfoPacket::new(WispVersion::V2, records))
}

fn password_record(username: &str, password: &str, layout: PasswordLayout) -> ExtensionRecord {
    PasswordClientRecord {
        username: username.to_owned(),
        password: password.to_owned(),
    }
    .record(layout)
    .expect("a short username and password fit the record")
}

/// The server INFO of a correct server with these extension bytes after the
/// version: `05 00000000 02 00 ...`.
fn server_info(records: &[u8]) -> Vec<u8> {
    let mut info = vec![5, 0, 0, 0, 0, 2, 0];
    info.extend_from_slice(records);
    info
}

/// The UDP record of a server INFO.
const UDP_RECORD: [u8; 5] = [1, 0, 0, 0, 0];
/// The password record of a server INFO: required.
const PASSWORD_REQUIRED_RECORD: [u8; 6] = [2, 1, 0, 0, 0, 1];

// ---------------------------------------------------------------------------
// ClientMux helpers.
// ---------------------------------------------------------------------------

struct Session {
    mux: ClientMux,
    driver: JoinHandle<Result<(), WispError>>,
}

async fn session(server: &FaultyServer, handshake: Option<WispV2Handshake>) -> Session {
    let (mux, driver) = timeout(
        STEP,
        ClientMux::connect(&server.url(), handshake, MuxOptions::default()),
    )
    .await
    .expect("handshake timed out")
    .unwrap_or_else(|e| {
        panic!(
            "handshake failed: {e}\nserver log:\n{}",
            server.log().join("\n")
        )
    })
    .with_no_required_extensions();
    Session {
        mux,
        driver: tokio::spawn(driver),
    }
}

fn v2_udp() -> Option<WispV2Handshake> {
    Some(WispV2Handshake::new([UdpExtensionBuilder.into()]))
}

async fn open(session: &Session, kind: StreamType, addr: SocketAddr) -> MuxStream {
    let (host, port) = host_port(addr);
    timeout(STEP, session.mux.new_stream(kind, host, port))
        .await
        .expect("opening a stream timed out")
        .expect("opening a stream")
}

/// Sends `payload` on `stream` and checks that the same bytes come back.
async fn assert_echoes(stream: &mut MuxStream, payload: &'static [u8]) {
    stream.send(Bytes::from_static(payload)).await.unwrap();
    let mut got = Vec::new();
    while got.len() < payload.len() {
        let chunk = timeout(STEP, stream.next())
            .await
            .expect("echo timed out")
            .expect("stream ended")
            .expect("stream error");
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got, payload);
}

/// Sends `total` bytes (a counting pattern) in 64 KiB writes while reading
/// the echo; returns the echo and the size of each DATA received.
async fn echo_bulk(stream: MuxStream, total: usize) -> (Vec<u8>, Vec<usize>) {
    let sent: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
    let (mut read, mut write) = stream.into_split();
    let to_send = sent.clone();
    let writer = tokio::spawn(async move {
        for chunk in to_send.chunks(64 * 1024) {
            write.send(Bytes::copy_from_slice(chunk)).await.unwrap();
        }
        write
    });
    let mut got = Vec::with_capacity(total);
    let mut sizes = Vec::new();
    while got.len() < total {
        let chunk = timeout(STEP, read.next())
            .await
            .unwrap_or_else(|_| panic!("echo stalled after {} bytes", got.len()))
            .expect("stream ended")
            .expect("stream error");
        sizes.push(chunk.len());
        got.extend_from_slice(&chunk);
    }
    drop(writer.await.unwrap());
    assert!(got == sent, "the echo differs from what was sent");
    (got, sizes)
}

/// Sends `count` datagrams of 16 bytes (datagram `i` is sixteen bytes `i`)
/// back to back and collects the DATA payloads until all bytes are back.
async fn udp_burst(stream: &mut MuxStream, count: u8) -> Vec<Bytes> {
    for i in 0..count {
        stream.feed(Bytes::from(vec![i; 16])).await.unwrap();
    }
    stream.flush().await.unwrap();
    let total = usize::from(count) * 16;
    let mut received = Vec::new();
    let mut bytes = 0;
    while bytes < total {
        let datagram = timeout(STEP, stream.next())
            .await
            .unwrap_or_else(|_| panic!("only {bytes} of {total} bytes came back"))
            .expect("stream ended")
            .expect("stream error");
        bytes += datagram.len();
        received.push(datagram);
    }
    // Every datagram came back exactly once, whole.
    let all: Vec<u8> = received.iter().flat_map(|d| d.iter().copied()).collect();
    let ids: BTreeSet<u8> = all
        .chunks(16)
        .map(|c| {
            assert!(c.iter().all(|b| *b == c[0]), "a datagram was cut: {c:?}");
            c[0]
        })
        .collect();
    assert_eq!(
        ids.len(),
        usize::from(count),
        "datagrams lost or duplicated"
    );
    received
}

// ---------------------------------------------------------------------------
// The default configuration is a correct server.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_server_echoes_one_mib_over_tcp_byte_exact() {
    bounded(async {
        let server = start(FaultConfig::default());
        let echo = TcpEcho::start().await;
        for handshake in [None, v2_udp()] {
            let v2 = handshake.is_some();
            let s = session(&server, handshake).await;
            assert_eq!(s.mux.initial_credit(), 128);
            assert!(!s.mux.was_downgraded());
            let expected = if v2 { WispVersion::V2 } else { WispVersion::V1 };
            assert_eq!(s.mux.version(), expected);
            let stream = open(&s, StreamType::TCP, echo.addr()).await;
            let (_, sizes) = echo_bulk(stream, 1 << 20).await;
            let largest = sizes.iter().max().copied().unwrap_or(0);
            assert!(largest <= 16 * 1024, "a DATA of {largest} bytes");
            s.mux.close().await.unwrap();
        }
        assert_eq!(server.state(), ServerState::Running);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_server_speaks_v1_without_a_subprotocol_and_draft6_with_one() {
    bounded(async {
        let server = start(FaultConfig::default());
        let (mut v1, echoed) = raw(&server, None).await;
        assert_eq!(echoed, None);
        assert_eq!(recv(&mut v1).await.unwrap(), CONTINUE_128);

        let (mut v2, echoed) = raw(&server, Some("wisp-v2")).await;
        assert_eq!(echoed.as_deref(), Some("wisp-v2"));
        assert_eq!(recv(&mut v2).await.unwrap(), server_info(&UDP_RECORD));
        // Draft 6: CONTINUE(0) waits for the client's INFO.
        assert!(
            stays_quiet(&mut v2).await,
            "CONTINUE before the client INFO"
        );
        send(&mut v2, client_info(vec![])).await;
        assert_eq!(recv(&mut v2).await.unwrap(), CONTINUE_128);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_server_echoes_a_udp_burst_one_datagram_per_data() {
    bounded(async {
        let server = start(FaultConfig::default());
        let echo = UdpEcho::start().await;
        let s = session(&server, v2_udp()).await;
        let mut stream = open(&s, StreamType::UDP, echo.addr()).await;
        let received = udp_burst(&mut stream, 200).await;
        assert!(
            received.iter().all(|d| d.len() == 16),
            "a DATA held more than one datagram"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_is_accepted_in_both_record_layouts() {
    bounded(async {
        let server = start(FaultConfig {
            password: Some(("alice".into(), "s3cret".into())),
            motd: Some("welcome".into()),
            ..FaultConfig::default()
        });
        let echo = TcpEcho::start().await;
        for layout in [PasswordLayout::Draft6, PasswordLayout::Draft5] {
            let handshake = WispV2Handshake::new([
                UdpExtensionBuilder.into(),
                MotdExtensionBuilder.into(),
                PasswordExtensionBuilder::new("alice", "s3cret")
                    .layout(layout)
                    .into(),
            ]);
            let s = session(&server, Some(handshake)).await;
            assert_eq!(s.mux.motd(), Some("welcome"));
            let mut stream = open(&s, StreamType::TCP, echo.addr()).await;
            assert_echoes(&mut stream, b"authenticated").await;
            s.mux.close().await.unwrap();
        }
        assert!(server.log().iter().any(|l| l.contains("Draft5 layout")));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draft6_rejects_a_wrong_password_with_0xc0_and_a_missing_one_with_0xc2() {
    bounded(async {
        let server = start(FaultConfig {
            password: Some(("alice".into(), "s3cret".into())),
            ..FaultConfig::default()
        });
        let cases = [
            (
                vec![password_record("alice", "guess", PasswordLayout::Draft6)],
                0xc0,
            ),
            (vec![], 0xc2),
        ];
        for (records, reason) in cases {
            let (mut ws, _) = raw(&server, Some("wisp-v2")).await;
            let mut expected_info = UDP_RECORD.to_vec();
            expected_info.extend_from_slice(&PASSWORD_REQUIRED_RECORD);
            assert_eq!(recv(&mut ws).await.unwrap(), server_info(&expected_info));
            send(&mut ws, client_info(records)).await;
            // The rejection comes instead of CONTINUE(0), then the WebSocket ends.
            assert_eq!(recv(&mut ws).await.unwrap(), [4, 0, 0, 0, 0, reason]);
            assert_eq!(recv(&mut ws).await, None);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_first_order_sends_continue_then_info() {
    bounded(async {
        let server = start(FaultConfig {
            handshake: Handshake::ContinueFirst,
            ..FaultConfig::default()
        });
        let (mut ws, echoed) = raw(&server, Some("wisp-v2")).await;
        assert_eq!(echoed.as_deref(), Some("wisp-v2"));
        assert_eq!(recv(&mut ws).await.unwrap(), CONTINUE_128);
        assert_eq!(recv(&mut ws).await.unwrap(), server_info(&UDP_RECORD));

        let echo = TcpEcho::start().await;
        let s = session(&server, v2_udp()).await;
        assert_eq!(s.mux.version(), WispVersion::V2);
        assert!(!s.mux.was_downgraded());
        let mut stream = open(&s, StreamType::TCP, echo.addr()).await;
        assert_echoes(&mut stream, b"older order").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_server_loses_nothing_at_exact_credit() {
    bounded(async {
        let server = start(FaultConfig {
            buffer_size: 16,
            ..FaultConfig::default()
        });
        let echo = TcpEcho::start().await;
        let s = session(&server, None).await;
        assert_eq!(s.mux.initial_credit(), 16);
        let stream = open(&s, StreamType::TCP, echo.addr()).await;
        let outcome = exact_credit_run(stream, Some(4000)).await;
        assert_eq!(outcome, CreditRun::AllBack(4000), "{:#?}", server.log());
    })
    .await;
}

// ---------------------------------------------------------------------------
// Each fault.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_on_drops_every_connection_and_refuses_new_ones() {
    bounded(async {
        let server = start(FaultConfig {
            crash_on: Some(PacketMatch::data_starting_with(&b"CRASH"[..])),
            ..FaultConfig::default()
        });
        let echo = TcpEcho::start().await;
        let victim = session(&server, None).await;
        let bystander = session(&server, v2_udp()).await;
        let mut stream = open(&victim, StreamType::TCP, echo.addr()).await;
        assert_echoes(&mut stream, b"still fine").await;

        stream.send(Bytes::from_static(b"CRASH now")).await.unwrap();
        // Both connections end, without a Wisp CLOSE for the stream.
        for s in [victim, bystander] {
            let ended = timeout(STEP, s.driver)
                .await
                .expect("connection outlived the crash");
            assert!(ended.unwrap().is_err(), "the connection ended cleanly");
        }
        match stream.next().await {
            None | Some(Err(_)) => {}
            Some(Ok(data)) => panic!("data after the crash: {data:?}"),
        }
        let state = server.state();
        assert!(
            matches!(&state, ServerState::Crashed { by } if by.contains("DATA")),
            "{state:?}"
        );
        let refused = TcpStream::connect(server.addr()).await;
        assert_eq!(
            refused.map(|_| ()).unwrap_err().kind(),
            std::io::ErrorKind::ConnectionRefused
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_on_a_close_without_its_reason_byte() {
    bounded(async {
        let server = start(FaultConfig {
            crash_on: Some("type=CLOSE,len=5".parse().unwrap()),
            ..FaultConfig::default()
        });
        let (mut ws, _) = raw(&server, None).await;
        assert_eq!(recv(&mut ws).await.unwrap(), CONTINUE_128);
        // A well-formed CLOSE does not match.
        send(&mut ws, Packet::close(7, CloseReason::VOLUNTARY)).await;
        ws.send(Message::binary(Bytes::from_static(&[4, 1, 0, 0, 0])))
            .await
            .unwrap();
        assert_eq!(recv(&mut ws).await, None, "the connection outlived the crash");
        let state = server.state();
        assert!(
            matches!(&state, ServerState::Crashed { by } if by.contains("CLOSE on stream 1 (5 bytes")),
            "{state:?}"
        );
        assert!(TcpStream::connect(server.addr()).await.is_err());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freeze_on_stops_answers_and_upgrades_but_accepts_tcp() {
    bounded(async {
        let server = start(FaultConfig {
            freeze_on: Some("type=DATA,text=FREEZE".parse().unwrap()),
            ..FaultConfig::default()
        });
        let echo = TcpEcho::start().await;
        let trigger = session(&server, None).await;
        let bystander = session(&server, None).await;
        let mut frozen_stream = open(&trigger, StreamType::TCP, echo.addr()).await;
        let mut other = open(&bystander, StreamType::TCP, echo.addr()).await;
        assert_echoes(&mut other, b"alive").await;

        frozen_stream
            .send(Bytes::from_static(b"FREEZE"))
            .await
            .unwrap();
        let state = server
            .wait_for_state(STEP, |s| matches!(s, ServerState::Frozen { .. }))
            .await
            .expect("the server did not freeze");
        assert!(matches!(state, ServerState::Frozen { by } if by.contains("freeze-on")));

        // Another connection gets no echo any more, yet is not closed.
        other.send(Bytes::from_static(b"anyone?")).await.unwrap();
        assert!(
            timeout(QUIET, other.next()).await.is_err(),
            "a frozen server answered"
        );
        // TCP is still accepted, the WebSocket upgrade never completes.
        let tcp = timeout(STEP, TcpStream::connect(server.addr()))
            .await
            .expect("TCP connect timed out")
            .expect("TCP refused by a frozen server");
        let uri: Uri = server.url().parse().unwrap();
        let upgrade = timeout(QUIET, ClientBuilder::from_uri(uri).connect_on(tcp)).await;
        assert!(upgrade.is_err(), "a frozen server completed an upgrade");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_server_keeps_serving_while_a_destination_hangs() {
    bounded(async {
        let server = start(FaultConfig::default());
        let hanging = FullBacklogTarget::start().await;
        let echo = TcpEcho::start().await;
        let a = session(&server, None).await;
        let _stalled = open(&a, StreamType::TCP, hanging.addr()).await;
        assert!(
            server
                .wait_for_log(STEP, &format!("CONNECT TCP {}", hanging.addr().ip()))
                .await
        );
        let b = session(&server, None).await;
        let mut stream = open(&b, StreamType::TCP, echo.addr()).await;
        assert_echoes(&mut stream, b"not blocked").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_blocking_to_a_full_backlog_freezes_every_client_until_it_ends() {
    bounded(async {
        let server = start(FaultConfig {
            connect_blocking: true,
            ..FaultConfig::default()
        });
        let hanging = FullBacklogTarget::start().await;
        assert!(hanging.fillers() >= 1);
        let echo = TcpEcho::start().await;
        let a = session(&server, None).await;
        let b = session(&server, None).await;
        let mut other = open(&b, StreamType::TCP, echo.addr()).await;
        assert_echoes(&mut other, b"before").await;

        let _stalled = open(&a, StreamType::TCP, hanging.addr()).await;
        // The echo stream's connect was blocking too: wait for the one to the target.
        assert!(
            server
                .wait_for_log(STEP, &format!("blocking connect to {}", hanging.addr()))
                .await
        );
        other.send(Bytes::from_static(b"during")).await.unwrap();
        let got = timeout(QUIET, other.next()).await;
        assert!(
            got.is_err(),
            "the server answered during a blocking connect: {got:?}"
        );
        let tcp = TcpStream::connect(server.addr()).await.unwrap();
        let uri: Uri = server.url().parse().unwrap();
        let upgrade = timeout(QUIET, ClientBuilder::from_uri(uri).connect_on(tcp)).await;
        assert!(
            upgrade.is_err(),
            "an upgrade completed during a blocking connect"
        );

        // Closing the target ends the connect at its next SYN retransmission:
        // the server wakes up and the echo held back arrives.
        drop(hanging);
        let late = timeout(Duration::from_secs(40), other.next())
            .await
            .expect("the server never recovered")
            .unwrap()
            .unwrap();
        assert_eq!(&late[..], b"during");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pad_close_and_pad_continue_append_zero_bytes() {
    bounded(async {
        let server = start(FaultConfig {
            pad_close: 3,
            pad_continue: 2,
            ..FaultConfig::default()
        });
        let (mut ws, _) = raw(&server, None).await;
        assert_eq!(
            recv(&mut ws).await.unwrap(),
            [3, 0, 0, 0, 0, 128, 0, 0, 0, 0, 0],
            "CONTINUE(0) with 2 extra bytes"
        );
        let refused = refused_port().await;
        send(
            &mut ws,
            Packet::connect(1, StreamType::TCP, "127.0.0.1", refused.port()),
        )
        .await;
        assert_eq!(
            recv(&mut ws).await.unwrap(),
            [
                4,
                1,
                0,
                0,
                0,
                CloseReason::SERVER_STREAM_CONNECTION_REFUSED.0,
                0,
                0,
                0
            ],
            "CLOSE with 3 extra bytes"
        );

        // The client's codec ignores the padding: streams still work.
        let echo = TcpEcho::start().await;
        let s = session(&server, None).await;
        let mut stream = open(&s, StreamType::TCP, echo.addr()).await;
        assert_echoes(&mut stream, b"padded").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subprotocol_lie_echoes_wisp_v2_but_speaks_v1() {
    bounded(async {
        let server = start(FaultConfig {
            subprotocol_lie: true,
            ..FaultConfig::default()
        });
        let echo = TcpEcho::start().await;
        let (mut ws, echoed) = raw(&server, Some("wisp-v2")).await;
        assert_eq!(echoed.as_deref(), Some("wisp-v2"));
        assert_eq!(recv(&mut ws).await.unwrap(), CONTINUE_128);
        // No INFO follows: the next packet is the answer to a v1 stream.
        let (host, port) = host_port(echo.addr());
        send(&mut ws, Packet::connect(1, StreamType::TCP, host, port)).await;
        send(&mut ws, Packet::data(1, &b"v1"[..])).await;
        assert_eq!(recv(&mut ws).await.unwrap(), b"\x02\x01\x00\x00\x00v1");

        let s = session(&server, v2_udp()).await;
        assert!(s.mux.was_downgraded());
        assert_eq!(s.mux.version(), WispVersion::V1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_udp_sends_a_burst_as_merged_data_packets() {
    bounded(async {
        let server = start(FaultConfig {
            merge_udp: true,
            ..FaultConfig::default()
        });
        let echo = UdpEcho::start().await;
        let s = session(&server, v2_udp()).await;
        let mut stream = open(&s, StreamType::UDP, echo.addr()).await;
        let received = udp_burst(&mut stream, 200).await;
        let largest = received.iter().map(Bytes::len).max().unwrap_or(0);
        assert!(
            largest >= 32,
            "no DATA held two datagrams ({} DATA for 200 datagrams)",
            received.len()
        );
        assert!(server.wait_for_log(STEP, "merge-udp").await);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_auth_reject_answers_continue_then_info_then_0xc0() {
    bounded(async {
        let server = start(FaultConfig {
            password: Some(("alice".into(), "s3cret".into())),
            late_auth_reject: true,
            ..FaultConfig::default()
        });
        let mut expected_info = UDP_RECORD.to_vec();
        expected_info.extend_from_slice(&PASSWORD_REQUIRED_RECORD);
        // A wrong password, a missing one, and no INFO at all: each after
        // CONTINUE(0) and INFO, each 0xC0.
        let answers = [
            Some(client_info(vec![password_record(
                "alice",
                "guess",
                PasswordLayout::Draft6,
            )])),
            Some(client_info(vec![])),
            None,
        ];
        for answer in answers {
            let (mut ws, _) = raw(&server, Some("wisp-v2")).await;
            assert_eq!(recv(&mut ws).await.unwrap(), CONTINUE_128);
            assert_eq!(recv(&mut ws).await.unwrap(), server_info(&expected_info));
            let first = answer.unwrap_or_else(|| Packet::connect(1, StreamType::TCP, "h", 1));
            send(&mut ws, first).await;
            assert_eq!(
                recv(&mut ws).await.unwrap(),
                [4, 0, 0, 0, 0, CloseReason::PASSWORD_AUTH_FAILED.0]
            );
            assert_eq!(recv(&mut ws).await, None);
        }

        // A client sees its handshake succeed, then the connection end.
        let handshake = WispV2Handshake::new([
            UdpExtensionBuilder.into(),
            PasswordExtensionBuilder::new("alice", "guess").into(),
        ]);
        let s = session(&server, Some(handshake)).await;
        let ended = timeout(STEP, s.driver)
            .await
            .expect("the rejection never came");
        let err = ended.unwrap().expect_err("the connection ended cleanly");
        assert_eq!(err.close_reason(), Some(CloseReason::PASSWORD_AUTH_FAILED));

        // The right password works.
        let handshake = WispV2Handshake::new([
            UdpExtensionBuilder.into(),
            PasswordExtensionBuilder::new("alice", "s3cret").into(),
        ]);
        let echo = TcpEcho::start().await;
        let s = session(&server, Some(handshake)).await;
        let mut stream = open(&s, StreamType::TCP, echo.addr()).await;
        assert_echoes(&mut stream, b"late but fine").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignore_in_flight_credit_loses_data_at_exact_credit() {
    bounded(async {
        let server = start(FaultConfig {
            buffer_size: 16,
            ignore_in_flight_credit: true,
            ..FaultConfig::default()
        });
        let echo = TcpEcho::start().await;
        let s = session(&server, None).await;
        let stream = open(&s, StreamType::TCP, echo.addr()).await;
        let outcome = exact_credit_run(stream, None).await;
        assert!(
            matches!(outcome, CreditRun::Gap { .. }),
            "no loss: {outcome:?}"
        );
        assert!(server.wait_for_log(STEP, "dropping DATA").await);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalesce_data_sends_frames_far_over_64_kib() {
    bounded(async {
        let server = start(FaultConfig {
            coalesce_data: Some(4 << 20),
            ..FaultConfig::default()
        });
        let echo = TcpEcho::start().await;
        let s = session(&server, None).await;
        let stream = open(&s, StreamType::TCP, echo.addr()).await;
        let (_, sizes) = echo_bulk(stream, 1 << 20).await;
        let largest = sizes.iter().max().copied().unwrap_or(0);
        assert!(
            largest > 64 * 1024,
            "largest DATA {largest} bytes: {sizes:?}"
        );
    })
    .await;
}

// ---------------------------------------------------------------------------
// Sending at exact credit.
// ---------------------------------------------------------------------------

/// Bytes per sequence-numbered packet.
const SEQ_PACKET: usize = 1024;

/// How a run at exact credit ended.
#[derive(Debug, PartialEq, Eq)]
enum CreditRun {
    /// Every packet came back in order.
    AllBack(u64),
    /// The echo skipped bytes: packet `expected` was due, the echo had
    /// something else at that point.
    Gap { expected: u64, offset: usize },
}

/// Packet `seq`: its number (u64 LE), then bytes derived from it.
fn seq_packet(seq: u64) -> Bytes {
    let mut packet = Vec::with_capacity(SEQ_PACKET);
    packet.extend_from_slice(&seq.to_le_bytes());
    packet.extend((8..SEQ_PACKET).map(|i| (seq as usize * 31 + i) as u8));
    Bytes::from(packet)
}

/// Writes sequence-numbered packets as fast as the client's credit allows
/// (`count` of them, or without end) while checking the echo byte for byte.
/// Ends at the first byte that differs, or once `count` packets are back.
async fn exact_credit_run(stream: MuxStream, count: Option<u64>) -> CreditRun {
    let (mut read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        let mut seq = 0u64;
        while count.is_none_or(|n| seq < n) {
            if write.send(seq_packet(seq)).await.is_err() {
                break;
            }
            seq += 1;
        }
        write
    });
    let mut pending = Vec::new();
    let mut expected = 0u64;
    let mut offset = 0usize;
    let outcome = loop {
        if count.is_some_and(|n| expected == n) {
            break CreditRun::AllBack(expected);
        }
        let chunk = timeout(STEP, read.next())
            .await
            .unwrap_or_else(|_| panic!("echo stalled at packet {expected}"))
            .expect("stream ended")
            .expect("stream error");
        pending.extend_from_slice(&chunk);
        let mut gap = None;
        while pending.len() >= SEQ_PACKET {
            if pending[..SEQ_PACKET] != seq_packet(expected)[..] {
                gap = Some(CreditRun::Gap { expected, offset });
                break;
            }
            pending.drain(..SEQ_PACKET);
            expected += 1;
            offset += SEQ_PACKET;
        }
        if let Some(gap) = gap {
            break gap;
        }
    };
    writer.abort();
    outcome
}

// ---------------------------------------------------------------------------
// The binary.
// ---------------------------------------------------------------------------

/// Starts `wisp-faulty-server` with `args` and reads the URL it prints.
async fn spawn_binary(args: &[&str]) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_wisp-faulty-server"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawning wisp-faulty-server");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    timeout(STEP, BufReader::new(stdout).read_line(&mut line))
        .await
        .expect("no URL printed")
        .unwrap();
    (child, line.trim().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_exits_with_the_crash_status_when_crash_on_matches() {
    bounded(async {
        let (mut child, url) =
            spawn_binary(&["--port", "0", "--crash-on", "type=DATA,text=CRASH"]).await;
        let addr: SocketAddr = url
            .trim_start_matches("ws://")
            .trim_end_matches('/')
            .parse()
            .unwrap();
        let echo = TcpEcho::start().await;
        let (mux, driver) = ClientMux::connect(&url, None, MuxOptions::default())
            .await
            .unwrap()
            .with_no_required_extensions();
        tokio::spawn(driver);
        let (host, port) = host_port(echo.addr());
        let mut stream = mux.new_stream(StreamType::TCP, host, port).await.unwrap();
        assert_echoes(&mut stream, b"up").await;
        stream.send(Bytes::from_static(b"CRASH")).await.unwrap();
        let status = timeout(STEP, child.wait())
            .await
            .expect("the process outlived its crash")
            .unwrap();
        assert_eq!(status.code(), Some(CRASH_EXIT_CODE));
        let refused = TcpStream::connect(addr).await;
        assert!(refused.is_err(), "connected to a crashed process");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_refuses_impossible_flags() {
    bounded(async {
        let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_wisp-faulty-server"))
            .args(["--port", "0", "--late-auth-reject"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .status();
        let status = timeout(STEP, status).await.unwrap().unwrap();
        assert_eq!(status.code(), Some(2));
        let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_wisp-faulty-server"))
            .args(["--crash-on", "type=NOPE"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .status();
        let status = timeout(STEP, status).await.unwrap().unwrap();
        assert_eq!(status.code(), Some(2));
    })
    .await;
}
