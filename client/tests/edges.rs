//! The edges a hostile, independently written test server found in the client (issue 11,
//! items 1–9), each over a real loopback WebSocket: scripted servers under a paused clock
//! where time matters, real time where the kernel's timing is the point (a server that
//! closes while the client writes, a server that never answers the upgrade).

mod support;

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::{Sink, SinkExt, Stream, StreamExt};
use support::{Mode, info, start_client};
use tokio::net::TcpListener;
use tokio_websockets::{Message, ServerBuilder};
use wisp_client::extensions::{UdpExtensionBuilder, WispV2Handshake};
use wisp_client::proto::{CloseReason, ExtensionId, Packet, PacketBody, StreamType, WispVersion};
use wisp_client::transport::{ConnectStep, TransportExt};
use wisp_client::{ClientMux, MuxOptions, WispError};

/// Item 1: a v1 server answers a v2 client with CONTINUE(0), then at once DATA and CLOSE for
/// stream 99, which nobody opened. The stray DATA means "v1": the handshake completes at once
/// (no wait for the late-INFO window) as a downgraded v1 connection, and the packets are
/// ignored as on any v1 connection.
#[tokio::test(start_paused = true)]
async fn stray_packets_after_continue_zero_mean_v1() {
    let hs = WispV2Handshake::new([UdpExtensionBuilder.into()]);
    let (mut peer, client) = start_client(Some(hs), MuxOptions::default()).await;
    let start = tokio::time::Instant::now();
    peer.send(Packet::continue_(0, 128)).await;
    peer.send(Packet::data(99, &b"stray"[..])).await;
    peer.send(Packet::close(99, CloseReason::VOLUNTARY)).await;
    let (mux, driver) = client
        .await
        .unwrap()
        .expect("the handshake completes as v1")
        .with_no_required_extensions();
    assert!(
        start.elapsed() < MuxOptions::default().legacy_info_wait,
        "settled by the stray packet, not by the end of the wait"
    );
    let driver = tokio::spawn(driver);
    assert!(mux.was_downgraded());
    assert_eq!(mux.version(), WispVersion::V1);
    let mut stream = mux.new_stream(StreamType::TCP, "h", 1).await.unwrap();
    let p = peer.recv().await;
    assert!(matches!(p.body, PacketBody::Connect(_)), "{p:?}");
    peer.send(Packet::data(p.stream_id, &b"ok"[..])).await;
    assert_eq!(&stream.next().await.unwrap().unwrap()[..], b"ok");
    assert!(!mux.is_closed());
    drop((stream, mux));
    driver.await.unwrap().unwrap();
}

/// Item 2: a v1 client (no subprotocol offered) whose server sends INFO and then nothing
/// (a server that demands v2) fails after `legacy_info_wait`, not after the 10 s handshake
/// timeout, with an error naming both versions, and tells the server with CLOSE(0, 0x04).
#[tokio::test(start_paused = true)]
async fn a_v1_client_facing_a_server_that_demands_v2_fails_fast() {
    let (mut peer, client) = start_client(None, MuxOptions::default()).await;
    assert_eq!(peer.offered_subprotocol, None);
    let start = tokio::time::Instant::now();
    peer.send(info(vec![(ExtensionId::UDP, Bytes::new())]))
        .await;
    assert_eq!(
        peer.recv().await,
        Packet::close(0, CloseReason::EXTENSIONS_INCOMPATIBLE)
    );
    assert_eq!(start.elapsed(), MuxOptions::default().legacy_info_wait);
    assert!(peer.recv_raw().await.is_none(), "then the WebSocket closes");
    let err = client.await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            WispError::IncompatibleProtocolVersion(found, speaks)
                if found == WispVersion::V2 && speaks == WispVersion::V1
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "incompatible protocol version 2.0 (this client speaks 1.2)"
    );
}

/// Item 2, the other half: a draft 4–5 server sends INFO and CONTINUE(0) right after it; a v1
/// client ignores the INFO and speaks v1.
#[tokio::test(start_paused = true)]
async fn a_v1_client_facing_info_then_continue_speaks_v1() {
    let (mut peer, client) = start_client(None, MuxOptions::default()).await;
    peer.send(info(vec![(ExtensionId::UDP, Bytes::new())]))
        .await;
    peer.send(Packet::continue_(0, 16)).await;
    let (mux, _driver) = client.await.unwrap().unwrap().with_no_required_extensions();
    assert_eq!(mux.version(), WispVersion::V1);
    assert!(!mux.was_downgraded());
    assert_eq!(mux.initial_credit(), 16);
}

/// Item 3: closing a mux the server has already closed is `Ok` (a plain `close().await?` is a
/// normal shutdown); why it ended stays in `close_error()`.
#[tokio::test(start_paused = true)]
async fn closing_a_mux_the_server_closed_is_ok() {
    let (mut peer, mux, driver) = support::v1_session(8, MuxOptions::default()).await;
    peer.send(Packet::close(0, CloseReason::SERVER_STREAM_THROTTLED))
        .await;
    let result = driver.await.unwrap();
    assert!(matches!(result, Err(WispError::ClosedByServer(_))));
    assert!(mux.is_closed());
    mux.close().await.expect("close() on a closed mux is Ok");
    mux.close_with_reason(CloseReason::VOLUNTARY)
        .await
        .expect("close_with_reason() on a closed mux is Ok");
    assert!(matches!(
        mux.close_error(),
        Some(WispError::ClosedByServer(
            CloseReason::SERVER_STREAM_THROTTLED
        ))
    ));
}

/// A close timeout too long for an `Instant` (`Duration::MAX`) is no deadline: the driver
/// closes as without one instead of panicking with "overflow when adding duration to
/// instant" when the connection ends (reported by the fuzzing notes, `fuzz/README.md`).
#[rstest::rstest]
#[case::split(Mode::Split)]
#[case::owned(Mode::Owned)]
#[tokio::test(start_paused = true)]
async fn a_close_timeout_too_long_for_an_instant_has_no_deadline(#[case] mode: Mode) {
    let options = MuxOptions::default().close_timeout(Duration::MAX);
    let (mut peer, mux, driver) = support::v1_session_in(mode, 8, options).await;
    mux.close_with_reason(CloseReason::VOLUNTARY).await.unwrap();
    assert_eq!(peer.recv().await, Packet::close(0, CloseReason::VOLUNTARY));
    assert!(
        peer.recv_raw().await.is_none(),
        "the client closes the WebSocket"
    );
    // The server answers the close frame; the driver then ends (a driver that needed a
    // deadline to end would still be waiting when the bound passes).
    let (_, ended) = tokio::join!(
        peer.close(),
        tokio::time::timeout(Duration::from_secs(60), driver)
    );
    ended
        .expect("the driver ends once the close is answered")
        .unwrap()
        .unwrap();
}

/// Item 3: a second local close is `Ok` too, and the reason stays `ClosedLocally`.
#[tokio::test(start_paused = true)]
async fn closing_twice_is_ok() {
    let (mut peer, mux, driver) = support::v1_session(8, MuxOptions::default()).await;
    mux.close_with_reason(CloseReason::VOLUNTARY).await.unwrap();
    assert_eq!(peer.recv().await, Packet::close(0, CloseReason::VOLUNTARY));
    assert!(peer.recv_raw().await.is_none());
    driver.await.unwrap().unwrap();
    mux.close().await.expect("closing again is Ok");
    assert!(matches!(mux.close_error(), Some(WispError::ClosedLocally)));
}

/// A transport for driving the driver into the race of item 6 deterministically: the first
/// message the client writes fails (the server is gone), and at that very moment the
/// server's CLOSE(0, 0xC0) becomes readable, as when it arrived in the kernel between the
/// driver's read and its write.
struct RacingTransport {
    inbox: futures::channel::mpsc::UnboundedReceiver<Result<Bytes, WispError>>,
    to_inbox: futures::channel::mpsc::UnboundedSender<Result<Bytes, WispError>>,
    /// What the server sends when the client's first write fails.
    on_write_failure: Vec<Bytes>,
    failed: bool,
    writes: Arc<Mutex<usize>>,
}

impl Stream for RacingTransport {
    type Item = Result<Bytes, WispError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inbox.poll_next_unpin(cx)
    }
}

impl Sink<Bytes> for RacingTransport {
    type Error = WispError;

    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), WispError>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(mut self: Pin<&mut Self>, _item: Bytes) -> Result<(), WispError> {
        *self.writes.lock().unwrap() += 1;
        if !self.failed {
            self.failed = true;
            for msg in std::mem::take(&mut self.on_write_failure) {
                let _ = self.to_inbox.unbounded_send(Ok(msg));
            }
            // The server's end of the socket is gone: the inbox ends after what it sent.
            self.to_inbox.close_channel();
        }
        Err(WispError::WsImplError(Arc::new(std::io::Error::from(
            std::io::ErrorKind::BrokenPipe,
        ))))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), WispError>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), WispError>> {
        Poll::Ready(Err(WispError::WsImplSocketClosed))
    }
}

/// A v1 session over a [`RacingTransport`] granting `credit`, with one stream that has
/// queued `packets` DATA packets of 1 KiB; the driver is not running yet.
async fn racing_session(
    credit: u32,
    on_write_failure: Vec<Bytes>,
    packets: usize,
) -> (
    ClientMux,
    wisp_client::MuxStream,
    wisp_client::MultiplexorActorFuture,
    Arc<Mutex<usize>>,
) {
    let (to_inbox, inbox) = futures::channel::mpsc::unbounded();
    to_inbox
        .unbounded_send(Ok(Packet::continue_(0, credit).to_bytes()))
        .unwrap();
    let writes = Arc::new(Mutex::new(0));
    let (rx, tx) = TransportExt::split_fast(RacingTransport {
        inbox,
        to_inbox,
        on_write_failure,
        failed: false,
        writes: writes.clone(),
    });
    let options = MuxOptions::default().close_timeout(Duration::from_secs(5));
    let (mux, driver) = ClientMux::new_with_options(rx, tx, None, options)
        .await
        .unwrap()
        .with_no_required_extensions();
    let mut stream = mux.new_stream(StreamType::TCP, "h", 1).await.unwrap();
    for _ in 0..packets {
        stream.feed(Bytes::from_static(&[0; 1024])).await.unwrap();
    }
    (mux, stream, driver, writes)
}

/// Items 6 and 7 with a transport whose write fails just as the server's CLOSE(0) becomes
/// readable: the driver reads on after the write error and reports the server's reason;
/// queued data that can never be sent does not keep it alive for `close_timeout`.
#[tokio::test(start_paused = true)]
async fn a_write_error_does_not_hide_the_servers_close() {
    let close = Packet::close(0, CloseReason::PASSWORD_AUTH_FAILED).to_bytes();
    let (_mux, mut stream, driver, writes) = racing_session(128, vec![close], 8).await;
    let start = tokio::time::Instant::now();
    let result = tokio::spawn(driver).await.unwrap();
    assert!(
        matches!(
            result,
            Err(WispError::ClosedByServer(CloseReason::PASSWORD_AUTH_FAILED))
        ),
        "{result:?}"
    );
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "the driver ends as soon as the transport is gone (item 7)"
    );
    let err = stream.send(Bytes::from_static(b"late")).await.unwrap_err();
    assert!(
        matches!(
            err,
            WispError::ClosedByServer(CloseReason::PASSWORD_AUTH_FAILED)
        ),
        "{err:?}"
    );
    assert_eq!(
        *writes.lock().unwrap(),
        1,
        "nothing written after the failure"
    );
}

/// Item 7 alone: a write error with nothing from the server: the streams get the error and
/// the driver ends at once, although data is still queued (more packets than the driver
/// takes in one batch, so some stay queued in the core).
#[tokio::test(start_paused = true)]
async fn a_failed_transport_ends_the_driver_at_once() {
    let (_mux, _stream, driver, _) = racing_session(1000, Vec::new(), 200).await;
    let start = tokio::time::Instant::now();
    let result = tokio::spawn(driver).await.unwrap();
    assert!(
        matches!(result, Err(WispError::WsImplError(_))),
        "{result:?}"
    );
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "no wait for the close timeout"
    );
}

/// How often the real-socket race of item 6 is run.
const RACE_RUNS: usize = 100;

/// Item 6 over real sockets: a server that accepts the handshake, then (as a server rejecting
/// a password after CONTINUE(0) does) sends CLOSE(0, 0xC0), its WebSocket close and drops
/// the TCP connection while the client is writing as fast as it can. Every one of
/// `RACE_RUNS` runs must report the server's reason, never the broken pipe or reset its own
/// writes ran into.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_close_reason_survives_a_write_race() {
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for run in 0..RACE_RUNS {
        let outcome = tokio::time::timeout(Duration::from_secs(20), race_once())
            .await
            .unwrap_or_else(|_| panic!("run {run} hung"));
        *outcomes.entry(outcome).or_default() += 1;
    }
    assert_eq!(
        outcomes.keys().collect::<Vec<_>>(),
        ["ClosedByServer(0xc0)"],
        "every run reports the server's reason: {outcomes:?}"
    );
}

/// One run of the race; returns the stream's and the driver's error as one name.
async fn race_once() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let (_, mut ws) = ServerBuilder::new().accept(tcp).await.unwrap();
        ws.send(Message::binary(Packet::continue_(0, 1_000_000).to_bytes()))
            .await
            .unwrap();
        // The client's CONNECT, then its first DATA: it is writing now.
        for _ in 0..2 {
            ws.next().await.unwrap().unwrap();
        }
        let close = Packet::close(0, CloseReason::PASSWORD_AUTH_FAILED).to_bytes();
        let _ = ws.feed(Message::binary(close)).await;
        let _ = ws.feed(Message::close(None, "")).await;
        let _ = ws.flush().await;
        // Unread client data is waiting: the kernel answers the drop with a reset.
        drop(ws.into_inner());
    });
    let (mux, driver) = ClientMux::connect(&url, None, MuxOptions::default())
        .await
        .unwrap()
        .with_no_required_extensions();
    let driver = tokio::spawn(driver);
    let mut stream = mux.new_stream(StreamType::TCP, "h", 1).await.unwrap();
    let chunk = Bytes::from(vec![0u8; 4096]);
    let stream_error = loop {
        if let Err(e) = stream.send(chunk.clone()).await {
            break e;
        }
    };
    let driver_error = driver.await.unwrap().unwrap_err();
    server.await.unwrap();
    let name = |e: &WispError| match e.close_reason() {
        Some(r) => format!("{}({:#04x})", e.name(), r.0),
        None => format!("{} ({e})", e.name()),
    };
    let (s, d) = (name(&stream_error), name(&driver_error));
    if s == d {
        s
    } else {
        format!("stream {s}, driver {d}")
    }
}

/// Item 5: every step before the Wisp handshake is bounded by `connect_timeout`, and the
/// error names the step: a server that accepts TCP and never answers the HTTP upgrade (or,
/// for `wss://`, the TLS ClientHello), and a destination whose accept queue is full (the
/// TCP connect itself hangs). Real time: the kernel is what keeps these waiting.
#[rstest::rstest]
#[case::upgrade("ws", ConnectStep::Upgrade)]
#[case::tls("wss", ConnectStep::Tls)]
#[tokio::test]
async fn a_server_that_never_answers_the_upgrade_times_out(
    #[case] scheme: &str,
    #[case] expected: ConnectStep,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("{scheme}://{}/", listener.local_addr().unwrap());
    // Accepts and holds the connection, never writes a byte.
    let silent = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        std::future::pending::<()>().await;
        drop(tcp);
    });
    let bound = Duration::from_millis(300);
    let options = MuxOptions::default().connect_timeout(Some(bound));
    let start = std::time::Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        ClientMux::connect(&url, None, options),
    )
    .await
    .expect("connect is bounded");
    let elapsed = start.elapsed();
    let err = result.unwrap_err();
    assert!(
        matches!(err, WispError::ConnectTimedOut(step) if step == expected),
        "{err:?}"
    );
    assert!(elapsed >= bound && elapsed < bound * 10, "{elapsed:?}");
    assert_eq!(
        err.to_string(),
        format!("{expected} timed out"),
        "the message names the step"
    );
    silent.abort();
}

/// A connect timeout too long for an `Instant` (`Duration::MAX`, a natural "never") is no
/// deadline: `connect` works as without one instead of panicking with "overflow when adding
/// duration to instant" (reported by the fuzzing notes, `fuzz/README.md`).
#[tokio::test]
async fn a_connect_timeout_too_long_for_an_instant_has_no_deadline() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let (_request, mut ws) = ServerBuilder::new().accept(tcp).await.unwrap();
        ws.send(Message::binary(Packet::continue_(0, 8).to_bytes()))
            .await
            .unwrap();
        // Holds the connection until the client closes it.
        while let Some(Ok(_)) = ws.next().await {}
    });
    let options = MuxOptions::default().connect_timeout(Some(Duration::MAX));
    let (mux, driver) = tokio::time::timeout(
        Duration::from_secs(10),
        ClientMux::connect(&url, None, options),
    )
    .await
    .expect("the handshake is answered at once")
    .expect("connects as without a timeout")
    .with_no_required_extensions();
    let driver = tokio::spawn(driver);
    mux.close().await.unwrap();
    driver.await.unwrap().unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn a_tcp_connect_that_hangs_times_out() {
    let target = wisp_testkit::FullBacklogTarget::start().await;
    let url = format!("ws://{}/", target.addr());
    let options = MuxOptions::default().connect_timeout(Some(Duration::from_millis(300)));
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        ClientMux::connect(&url, None, options),
    )
    .await
    .expect("connect is bounded");
    let err = result.unwrap_err();
    assert!(
        matches!(err, WispError::ConnectTimedOut(ConnectStep::Tcp)),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "the TCP connect timed out");
}

/// Item 6 against the testkit's own Wisp server rejecting the client after it already saw
/// CONTINUE(0): a v1 client where a password is required, and a v2 client with a wrong
/// password facing the older handshake order. The client writes at once; every run reports
/// the server's CLOSE(0, 0xC0).
#[rstest::rstest]
#[case::v1_client_password_required(None)]
#[case::wrong_password_continue_first(Some("wrong"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_rejection_is_reported_with_its_reason(#[case] password: Option<&str>) {
    use wisp_client::extensions::PasswordExtensionBuilder;
    use wisp_testkit::faulty::{FaultConfig, FaultyServer};
    let server = FaultyServer::start(FaultConfig {
        password: Some(("alice".into(), "right".into())),
        late_auth_reject: true,
        ..FaultConfig::default()
    })
    .unwrap();
    let echo = wisp_testkit::TcpEcho::start().await;
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for _ in 0..25 {
        let handshake = password
            .map(|p| WispV2Handshake::new([PasswordExtensionBuilder::new("alice", p).into()]));
        let (mux, driver) = ClientMux::connect(&server.url(), handshake, MuxOptions::default())
            .await
            .expect("the rejection comes after the handshake")
            .with_no_required_extensions();
        let driver = tokio::spawn(driver);
        let outcome = match mux
            .new_stream(
                StreamType::TCP,
                echo.addr().ip().to_string(),
                echo.addr().port(),
            )
            .await
        {
            Ok(mut stream) => loop {
                if let Err(e) = stream.send(Bytes::from(vec![7u8; 4096])).await {
                    break e;
                }
            },
            // The rejection came first: opening says the mux has ended (as the seed API
            // does), and why is in close_error().
            Err(WispError::MuxTaskEnded) => mux.close_error().expect("ended"),
            Err(e) => e,
        };
        let driver_result = driver.await.unwrap();
        for e in [Some(&outcome), driver_result.as_ref().err()] {
            let e = e.expect("the driver ends with an error");
            *outcomes
                .entry(format!("{} {:?}", e.name(), e.close_reason()))
                .or_default() += 1;
        }
    }
    assert_eq!(
        outcomes.keys().collect::<Vec<_>>(),
        ["ClosedByServer Some(PASSWORD_AUTH_FAILED(0xc0))"],
        "{outcomes:?}"
    );
}
