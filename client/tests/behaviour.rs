//! Behaviour over a real loopback WebSocket against an in-test scripted server, with the
//! tokio clock paused: timeouts are virtual, so nothing here waits on the wall clock.

mod support;

use std::time::Duration;

use bytes::Bytes;
use futures::{AsyncWriteExt as _, SinkExt, StreamExt};
use rstest::rstest;
use support::{Mode, Peer, info, start_client_in, v1_session_in};
use tokio::io::AsyncWriteExt;
use wisp_client::extensions::{
    MotdExtensionBuilder, PasswordExtensionBuilder, StreamConfirmationExtensionBuilder,
    UdpExtensionBuilder, WispV2Handshake,
};
use wisp_client::proto::{
    CloseReason, ExtensionId, Initiator, Packet, PacketBody, PasswordClientRecord, PasswordLayout,
    StreamType, WispVersion,
};
use wisp_client::{ClientMux, MuxOptions, StreamEnd, WispError};

fn data_of(p: &Packet) -> &[u8] {
    match &p.body {
        PacketBody::Data(d) => d,
        other => panic!("expected DATA, got {other:?}"),
    }
}

async fn expect_connect(peer: &mut Peer) -> u32 {
    let p = peer.recv().await;
    assert!(
        matches!(p.body, PacketBody::Connect(_)),
        "expected CONNECT, got {p:?}"
    );
    p.stream_id
}

#[rstest]
#[tokio::test(start_paused = true)]
async fn v1_handshake_offers_no_subprotocol(#[values(Mode::Split, Mode::Owned)] mode: Mode) {
    let (peer, mux, _driver) = v1_session_in(mode, 128, MuxOptions::default()).await;
    assert_eq!(peer.offered_subprotocol, None);
    assert_eq!(mux.version(), WispVersion::V1);
    assert!(!mux.was_downgraded());
    assert_eq!(mux.initial_credit(), 128);
}

/// The handshake reads no further than its last packet: what the server sent after it waits
/// in the WebSocket for the driver, which by then knows the streams the caller opened.
#[rstest]
#[tokio::test(start_paused = true)]
async fn packets_after_the_handshake_wait_for_the_driver(
    #[values(Mode::Split, Mode::Owned)] mode: Mode,
) {
    let (mut peer, client) = start_client_in(mode, None, MuxOptions::default()).await;
    peer.send(Packet::continue_(0, 8)).await;
    peer.send(Packet::data(1, &b"early"[..])).await;
    let (mux, driver) = client.await.unwrap().unwrap().with_no_required_extensions();
    let mut stream = mux.new_stream(StreamType::TCP, "h", 1).await.unwrap();
    let driver = tokio::spawn(driver);
    assert_eq!(expect_connect(&mut peer).await, 1);
    let first = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
    assert_eq!(
        first
            .expect("the early DATA reaches the stream")
            .unwrap()
            .unwrap(),
        &b"early"[..]
    );
    drop((stream, mux));
    driver.await.unwrap().unwrap();
}

#[rstest]
#[tokio::test(start_paused = true)]
async fn draft6_handshake_over_a_websocket(#[values(Mode::Split, Mode::Owned)] mode: Mode) {
    let hs = WispV2Handshake::new([UdpExtensionBuilder.into(), MotdExtensionBuilder.into()]);
    let (mut peer, client) = start_client_in(mode, Some(hs), MuxOptions::default()).await;
    assert_eq!(peer.offered_subprotocol.as_deref(), Some("wisp-v2"));
    peer.send(info(vec![
        (ExtensionId::UDP, Bytes::new()),
        (ExtensionId::MOTD, Bytes::from_static(b"welcome")),
    ]))
    .await;
    let client_info = peer.recv().await;
    assert_eq!(client_info.packet_type().0, 0x05);
    peer.send(Packet::continue_(0, 64)).await;
    let (mux, _driver) = client.await.unwrap().unwrap().with_no_required_extensions();
    assert_eq!(mux.version(), WispVersion::V2);
    assert_eq!(mux.motd(), Some("welcome"));
    assert_eq!(mux.get_extension_ids(), vec![1, 4]);
    assert_eq!(mux.initial_credit(), 64);
}

#[rstest]
#[tokio::test(start_paused = true)]
async fn v2_client_against_a_v1_server_is_downgraded(
    #[values(Mode::Split, Mode::Owned)] mode: Mode,
) {
    let hs = WispV2Handshake::new([UdpExtensionBuilder.into()]);
    let options = MuxOptions::default().legacy_info_wait(Duration::from_millis(300));
    let (mut peer, client) = start_client_in(mode, Some(hs), options).await;
    let start = tokio::time::Instant::now();
    peer.send(Packet::continue_(0, 128)).await;
    let (mux, driver) = client.await.unwrap().unwrap().with_no_required_extensions();
    tokio::spawn(driver);
    assert!(mux.was_downgraded());
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(300),
        "waited exactly the legacy window"
    );
    // No INFO went out: the next thing the server sees is a CONNECT.
    let _s = mux.new_stream(StreamType::TCP, "h", 1).await.unwrap();
    assert_eq!(expect_connect(&mut peer).await, 1);
}

#[rstest]
#[tokio::test(start_paused = true)]
async fn old_draft_continue_then_info_over_a_websocket(
    #[values(Mode::Split, Mode::Owned)] mode: Mode,
) {
    let hs = WispV2Handshake::new([UdpExtensionBuilder.into()]);
    let (mut peer, client) = start_client_in(mode, Some(hs), MuxOptions::default()).await;
    peer.send(Packet::continue_(0, 128)).await;
    peer.send(info(vec![(ExtensionId::UDP, Bytes::new())]))
        .await;
    let (mux, _driver) = client.await.unwrap().unwrap().with_no_required_extensions();
    assert!(!mux.was_downgraded());
    assert_eq!(mux.version(), WispVersion::V2);
    assert_eq!(
        peer.recv().await.packet_type().0,
        0x05,
        "the client answered with its INFO"
    );
}

#[rstest]
#[tokio::test(start_paused = true)]
async fn a_silent_server_times_out_the_handshake(#[values(Mode::Split, Mode::Owned)] mode: Mode) {
    let options = MuxOptions::default().handshake_timeout(Some(Duration::from_secs(7)));
    let (_peer, client) = start_client_in(mode, Some(WispV2Handshake::empty()), options).await;
    let start = tokio::time::Instant::now();
    let err = client.await.unwrap().unwrap_err();
    assert!(matches!(err, WispError::HandshakeTimedOut), "{err:?}");
    // 7 s of handshake, then up to the close timeout (5 s) waiting for the silent server to
    // answer the WebSocket close.
    assert_eq!(start.elapsed(), Duration::from_secs(12));
}

#[rstest]
#[tokio::test(start_paused = true)]
async fn missing_required_extension_sends_close_04_before_any_info(
    #[values(Mode::Split, Mode::Owned)] mode: Mode,
) {
    let hs = WispV2Handshake::new([UdpExtensionBuilder.into()])
        .with_required_extension(ExtensionId::PASSWORD);
    let (mut peer, client) = start_client_in(mode, Some(hs), MuxOptions::default()).await;
    peer.send(info(vec![(ExtensionId::UDP, Bytes::new())]))
        .await;
    assert_eq!(
        peer.recv().await,
        Packet::close(0, CloseReason::EXTENSIONS_INCOMPATIBLE)
    );
    assert!(
        peer.recv_raw().await.is_none(),
        "then the WebSocket is closed"
    );
    let err = client.await.unwrap().unwrap_err();
    assert!(
        matches!(err, WispError::ExtensionsNotSupported(ref ids) if ids == &[2]),
        "{err:?}"
    );
}

#[rstest]
#[tokio::test(start_paused = true)]
async fn required_extensions_after_the_handshake_send_close_04(
    #[values(Mode::Split, Mode::Owned)] mode: Mode,
) {
    let hs = WispV2Handshake::new([UdpExtensionBuilder.into()]);
    let (mut peer, client) = start_client_in(mode, Some(hs), MuxOptions::default()).await;
    peer.send(info(vec![])).await;
    let _ = peer.recv().await;
    peer.send(Packet::continue_(0, 8)).await;
    let result = client
        .await
        .unwrap()
        .unwrap()
        .with_udp_extension_required()
        .await;
    assert!(matches!(result, Err(WispError::ExtensionsNotSupported(ref ids)) if ids == &[1]));
    assert_eq!(
        peer.recv().await,
        Packet::close(0, CloseReason::EXTENSIONS_INCOMPATIBLE)
    );
    assert!(peer.recv_raw().await.is_none());
}

#[rstest]
#[tokio::test(start_paused = true)]
async fn wrong_password_in_draft5_layout_is_creds_invalid(
    #[values(Mode::Split, Mode::Owned)] mode: Mode,
) {
    let hs = WispV2Handshake::new([PasswordExtensionBuilder::new("bob", "wrong")
        .layout(PasswordLayout::Draft5)
        .into()]);
    let (mut peer, client) = start_client_in(mode, Some(hs), MuxOptions::default()).await;
    peer.send(info(vec![(
        ExtensionId::PASSWORD,
        Bytes::from_static(&[1]),
    )]))
    .await;
    let PacketBody::Info(client_info) = peer.recv().await.body else {
        panic!("expected the client INFO");
    };
    let creds =
        PasswordClientRecord::decode(&client_info.extensions[0].data, PasswordLayout::Draft5)
            .unwrap();
    assert_eq!(
        (creds.username.as_str(), creds.password.as_str()),
        ("bob", "wrong")
    );
    peer.send(Packet::close(0, CloseReason::PASSWORD_AUTH_FAILED))
        .await;
    let err = client.await.unwrap().unwrap_err();
    assert!(
        matches!(err, WispError::PasswordExtensionCredsInvalid),
        "{err:?}"
    );
}

#[rstest]
#[tokio::test(start_paused = true)]
async fn sink_writes_take_one_credit_per_data_and_wait_for_continue(
    #[values(Mode::Split, Mode::Owned)] mode: Mode,
) {
    let (mut peer, mux, _driver) = v1_session_in(mode, 2, MuxOptions::default()).await;
    let mut stream = mux.new_stream(StreamType::TCP, "h", 1).await.unwrap();
    let id = expect_connect(&mut peer).await;
    let writer = tokio::spawn(async move {
        for i in 0..5u8 {
            stream.send(Bytes::from(vec![i; 3])).await.unwrap();
        }
        stream
    });
    assert_eq!(data_of(&peer.recv().await), &[0, 0, 0]);
    assert_eq!(data_of(&peer.recv().await), &[1, 1, 1]);
    peer.expect_nothing(Duration::from_secs(5)).await;
    peer.send(Packet::continue_(id, 3)).await;
    for i in 2..5u8 {
        assert_eq!(data_of(&peer.recv().await), &[i; 3]);
    }
    let _stream = writer.await.unwrap();
}

#[rstest]
#[tokio::test(start_paused = true)]
async fn io_adapters_honour_credit_and_split_payloads(
    #[values(Mode::Split, Mode::Owned)] mode: Mode,
) {
    let options = MuxOptions::default().max_payload_len(4);
    let (mut peer, mux, _driver) = v1_session_in(mode, 3, options).await;
    let tokio_io = mux
        .new_stream(StreamType::TCP, "h", 1)
        .await
        .unwrap()
        .into_tokio_io();
    let futures_io = mux
        .new_stream(StreamType::TCP, "h", 2)
        .await
        .unwrap()
        .into_async_rw();
    let a = expect_connect(&mut peer).await;
    let b = expect_connect(&mut peer).await;
    let tokio_writer = tokio::spawn(async move {
        let mut io = tokio_io;
        io.write_all(b"0123456789ab0123").await.unwrap();
        io
    });
    let futures_writer = tokio::spawn(async move {
        let mut io = futures_io;
        futures::AsyncWriteExt::write_all(&mut io, b"ABCDEFGHIJKLMNOP")
            .await
            .unwrap();
        io
    });
    let mut per_stream = std::collections::HashMap::<u32, Vec<Vec<u8>>>::new();
    for _ in 0..6 {
        let p = peer.recv().await;
        per_stream
            .entry(p.stream_id)
            .or_default()
            .push(data_of(&p).to_vec());
    }
    peer.expect_nothing(Duration::from_secs(5)).await;
    assert_eq!(
        per_stream[&a],
        vec![b"0123".to_vec(), b"4567".to_vec(), b"89ab".to_vec()]
    );
    assert_eq!(
        per_stream[&b],
        vec![b"ABCD".to_vec(), b"EFGH".to_vec(), b"IJKL".to_vec()]
    );
    peer.send(Packet::continue_(a, 1)).await;
    peer.send(Packet::continue_(b, 1)).await;
    let mut rest = [peer.recv().await, peer.recv().await];
    rest.sort_by_key(|p| p.stream_id);
    assert_eq!(data_of(&rest[0]), b"0123");
    assert_eq!(data_of(&rest[1]), b"MNOP");
    let mut t = tokio_writer.await.unwrap();
    let mut f = futures_writer.await.unwrap();
    t.shutdown().await.unwrap();
    f.close().await.unwrap();
    let mut closes = [peer.recv().await, peer.recv().await];
    closes.sort_by_key(|p| p.stream_id);
    assert_eq!(
        closes,
        [
            Packet::close(a, CloseReason::VOLUNTARY),
            Packet::close(b, CloseReason::VOLUNTARY)
        ]
    );
}

/// One credit at a time, renewed right after each DATA: a lost wake-up would stall here.
#[rstest]
#[tokio::test(start_paused = true)]
async fn no_lost_wakeups_with_one_credit_at_a_time(#[values(Mode::Split, Mode::Owned)] mode: Mode) {
    let (mut peer, mux, _driver) = v1_session_in(mode, 1, MuxOptions::default()).await;
    let mut stream = mux.new_stream(StreamType::TCP, "h", 1).await.unwrap();
    let id = expect_connect(&mut peer).await;
    const N: u32 = 500;
    let writer = tokio::spawn(async move {
        for i in 0..N {
            stream
                .feed(Bytes::from(i.to_le_bytes().to_vec()))
                .await
                .unwrap();
        }
        stream.flush().await.unwrap();
    });
    for i in 0..N {
        let p = peer.recv().await;
        assert_eq!(data_of(&p), &i.to_le_bytes());
        peer.send(Packet::continue_(id, 1)).await;
    }
    writer.await.unwrap();
}

#[rstest]
#[tokio::test(start_paused = true)]
async fn a_tcp_stream_opens_without_credit_and_writes_wait_for_it(
    #[values(Mode::Split, Mode::Owned)] mode: Mode,
) {
    let (mut peer, mux, _driver) = v1_session_in(mode, 0, MuxOptions::default()).await;
    let mut stream = mux.new_stream(StreamType::TCP, "h", 1).await.unwrap();
    let id = expect_connect(&mut peer).await;
    let writer = tokio::spawn(async move { stream.send(Bytes::from_static(b"x")).await });
    peer.expect_nothing(Duration::from_secs(5)).await;
    peer.send(Packet::continue_(id, 1)).await;
    assert_eq!(data_of(&peer.recv().await), b"x");
    writer.await.unwrap().unwrap();
}

#[rstest]
#[tokio::test(start_paused = true)]
async fn udp_ignores_credit(#[values(Mode::Split, Mode::Owned)] mode: Mode) {
    let (mut peer, mux, _driver) = v1_session_in(mode, 0, MuxOptions::default()).await;
    let mut stream = mux.new_stream(StreamType::UDP, "h", 53).await.unwrap();
    let _ = expect_connect(&mut peer).await;
    for _ in 0..4 {
        stream.send(Bytes::from_static(b"dgram")).await.unwrap();
    }
    for _ in 0..4 {
        assert_eq!(data_of(&peer.recv().await), b"dgram");
    }
}

#[rstest]
#[tokio::test(start_paused = true)]
async fn stream_confirmation_waits_for_the_server(#[values(Mode::Split, Mode::Owned)] mode: Mode) {
    let hs = WispV2Handshake::new([StreamConfirmationExtensionBuilder.into()]);
    let (mut peer, client) = start_client_in(mode, Some(hs), MuxOptions::default()).await;
    peer.send(info(vec![(ExtensionId::STREAM_CONFIRMATION, Bytes::new())]))
        .await;
    let _ = peer.recv().await;
    peer.send(Packet::continue_(0, 16)).await;
    let (mux, driver) = client.await.unwrap().unwrap().with_no_required_extensions();
    tokio::spawn(driver);
    let mux2 = mux.clone();
    let opening = tokio::spawn(async move { mux2.new_stream(StreamType::TCP, "h", 1).await });
    let id = expect_connect(&mut peer).await;
    peer.expect_nothing(Duration::from_secs(1)).await;
    assert!(!opening.is_finished());
    peer.send(Packet::continue_(id, 16)).await;
    let stream = opening.await.unwrap().unwrap();
    assert_eq!(stream.get_stream_id(), id);

    let mux3 = mux.clone();
    let refused = tokio::spawn(async move { mux3.new_stream(StreamType::TCP, "blocked", 1).await });
    let id = expect_connect(&mut peer).await;
    peer.send(Packet::close(
        id,
        CloseReason::SERVER_STREAM_BLOCKED_ADDRESS,
    ))
    .await;
    let err = refused.await.unwrap().unwrap_err();
    assert!(matches!(
        err,
        WispError::StreamRefused(CloseReason::SERVER_STREAM_BLOCKED_ADDRESS)
    ));
}

#[rstest]
#[tokio::test(start_paused = true)]
async fn dropping_a_stream_sends_a_voluntary_close(#[values(Mode::Split, Mode::Owned)] mode: Mode) {
    let (mut peer, mux, _driver) = v1_session_in(mode, 8, MuxOptions::default()).await;
    let stream = mux.new_stream(StreamType::TCP, "h", 1).await.unwrap();
    let id = expect_connect(&mut peer).await;
    let (read, write) = stream.into_split();
    drop(write);
    peer.expect_nothing(Duration::from_secs(1)).await;
    drop(read);
    assert_eq!(peer.recv().await, Packet::close(id, CloseReason::VOLUNTARY));
}

#[rstest]
#[tokio::test(start_paused = true)]
async fn data_before_close_is_delivered_before_the_end(
    #[values(Mode::Split, Mode::Owned)] mode: Mode,
) {
    let (mut peer, mux, _driver) = v1_session_in(mode, 8, MuxOptions::default()).await;
    let mut stream = mux.new_stream(StreamType::TCP, "h", 1).await.unwrap();
    let id = expect_connect(&mut peer).await;
    peer.send(Packet::data(id, &b"one"[..])).await;
    peer.send(Packet::data(id, &b""[..])).await;
    peer.send(Packet::data(id, &b"two"[..])).await;
    peer.send_hex(&format!("04 {} 45 ff ff", hex::encode(id.to_le_bytes())))
        .await;
    // Let everything arrive before reading, so the CLOSE is already processed.
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(&stream.next().await.unwrap().unwrap()[..], b"one");
    assert_eq!(&stream.next().await.unwrap().unwrap()[..], b"");
    assert_eq!(&stream.next().await.unwrap().unwrap()[..], b"two");
    assert!(stream.next().await.is_none());
    assert_eq!(
        stream.get_close_reason(),
        Some(CloseReason(0x45)),
        "unassigned reasons are kept"
    );
    assert!(matches!(
        stream.end(),
        Some(StreamEnd::Closed {
            initiator: Initiator::Remote,
            ..
        })
    ));
    let err = stream.send(Bytes::from_static(b"late")).await.unwrap_err();
    assert!(matches!(err, WispError::StreamAlreadyClosed));
    assert!(!mux.is_closed(), "CLOSE with extra bytes is tolerated");
}

#[rstest]
#[tokio::test(start_paused = true)]
async fn close_zero_mid_session_ends_every_stream_with_its_reason(
    #[values(Mode::Split, Mode::Owned)] mode: Mode,
) {
    let (mut peer, mux, driver) = v1_session_in(mode, 8, MuxOptions::default()).await;
    let mut a = mux.new_stream(StreamType::TCP, "h", 1).await.unwrap();
    let mut b = mux.new_stream(StreamType::UDP, "h", 2).await.unwrap();
    let _ = expect_connect(&mut peer).await;
    let _ = expect_connect(&mut peer).await;
    peer.send(Packet::close(0, CloseReason::SERVER_STREAM_THROTTLED))
        .await;
    for s in [&mut a, &mut b] {
        let err = s.next().await.unwrap().unwrap_err();
        assert!(matches!(
            err,
            WispError::ClosedByServer(CloseReason::SERVER_STREAM_THROTTLED)
        ));
        assert!(s.next().await.is_none());
        assert_eq!(
            s.get_close_reason(),
            Some(CloseReason::SERVER_STREAM_THROTTLED)
        );
    }
    let result = driver.await.unwrap();
    assert!(matches!(result, Err(WispError::ClosedByServer(_))));
    assert!(matches!(
        mux.new_stream(StreamType::TCP, "h", 1).await,
        Err(WispError::MuxTaskEnded)
    ));
}

#[rstest]
#[tokio::test(start_paused = true)]
async fn websocket_eof_ends_every_stream(#[values(Mode::Split, Mode::Owned)] mode: Mode) {
    for drop_tcp in [false, true] {
        let (mut peer, mux, driver) = v1_session_in(mode, 8, MuxOptions::default()).await;
        let mut s = mux.new_stream(StreamType::TCP, "h", 1).await.unwrap();
        let _ = expect_connect(&mut peer).await;
        if drop_tcp {
            peer.drop_tcp();
        } else {
            peer.close().await;
        }
        let err = s.next().await.unwrap().unwrap_err();
        assert!(
            matches!(
                err,
                WispError::WsImplSocketClosed | WispError::WsImplError(_)
            ),
            "{err:?}"
        );
        assert!(driver.await.unwrap().is_err());
    }
}

#[rstest]
#[tokio::test(start_paused = true)]
async fn hostile_but_harmless_input_is_ignored(#[values(Mode::Split, Mode::Owned)] mode: Mode) {
    let (mut peer, mux, _driver) = v1_session_in(mode, 8, MuxOptions::default()).await;
    let mut s = mux.new_stream(StreamType::TCP, "h", 1).await.unwrap();
    let id = expect_connect(&mut peer).await;
    peer.send_text("not wisp").await;
    peer.send_hex("07 01 00 00 00 de ad").await; // unknown packet type
    peer.send_hex("02 99 00 00 00 68 69").await; // DATA for an unknown stream
    peer.send_hex("05 00 00 00 00 02 00").await; // INFO after the handshake
    peer.send_hex("03 00 00 00 00 10 00 00 00").await; // a second CONTINUE(0)
    peer.send(Packet::data(id, &b"alive"[..])).await;
    assert_eq!(&s.next().await.unwrap().unwrap()[..], b"alive");
    assert!(!mux.is_closed());
}

#[rstest]
#[tokio::test(start_paused = true)]
async fn truncated_packet_ends_the_mux_with_a_typed_error(
    #[values(Mode::Split, Mode::Owned)] mode: Mode,
) {
    let (mut peer, mux, driver) = v1_session_in(mode, 8, MuxOptions::default()).await;
    let mut s = mux.new_stream(StreamType::TCP, "h", 1).await.unwrap();
    let _ = expect_connect(&mut peer).await;
    peer.send_hex("03 01 00").await;
    let err = s.next().await.unwrap().unwrap_err();
    assert!(matches!(err, WispError::MalformedPacket(_)), "{err:?}");
    assert!(matches!(
        driver.await.unwrap(),
        Err(WispError::MalformedPacket(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn oversized_messages_are_a_transport_error() {
    use wisp_client::transport::TransportExt;
    let (mut peer, conn) = support::connected_with(false, Some(1024)).await;
    let (rx, tx) = conn.split_fast();
    peer.send(Packet::continue_(0, 4)).await;
    let (mux, driver) = ClientMux::new(rx, tx, None)
        .await
        .unwrap()
        .with_no_required_extensions();
    let driver = tokio::spawn(driver);
    let _s = mux.new_stream(StreamType::TCP, "h", 1).await.unwrap();
    peer.send(Packet::data(1, vec![0u8; 4096])).await;
    assert!(matches!(
        driver.await.unwrap(),
        Err(WispError::WsImplError(_))
    ));
}

#[rstest]
#[tokio::test(start_paused = true)]
async fn stream_ids_exhaust_with_a_typed_error(#[values(Mode::Split, Mode::Owned)] mode: Mode) {
    let options = MuxOptions::default().first_stream_id(u32::MAX);
    let (mut peer, mux, _driver) = v1_session_in(mode, 8, options).await;
    let s = mux.new_stream(StreamType::TCP, "h", 1).await.unwrap();
    assert_eq!(s.get_stream_id(), u32::MAX);
    assert_eq!(expect_connect(&mut peer).await, u32::MAX);
    let err = mux.new_stream(StreamType::TCP, "h", 1).await.unwrap_err();
    assert!(matches!(err, WispError::MaxStreamCountReached));
}

#[rstest]
#[tokio::test(start_paused = true)]
async fn close_with_reason_sends_close_zero_then_closes_the_websocket(
    #[values(Mode::Split, Mode::Owned)] mode: Mode,
) {
    let (mut peer, mux, driver) = v1_session_in(mode, 8, MuxOptions::default()).await;
    mux.close_with_reason(CloseReason::VOLUNTARY).await.unwrap();
    assert_eq!(peer.recv().await, Packet::close(0, CloseReason::VOLUNTARY));
    assert!(peer.recv_raw().await.is_none());
    driver.await.unwrap().unwrap();
    assert!(
        mux.close().await.is_ok(),
        "closing a connection that is over is Ok"
    );
}

#[rstest]
#[tokio::test(start_paused = true)]
async fn dropping_the_mux_and_every_stream_closes_the_websocket(
    #[values(Mode::Split, Mode::Owned)] mode: Mode,
) {
    let (mut peer, mux, driver) = v1_session_in(mode, 8, MuxOptions::default()).await;
    let s = mux.new_stream(StreamType::TCP, "h", 1).await.unwrap();
    let id = expect_connect(&mut peer).await;
    drop(mux);
    peer.expect_nothing(Duration::from_secs(1)).await;
    drop(s);
    assert_eq!(peer.recv().await, Packet::close(id, CloseReason::VOLUNTARY));
    assert!(peer.recv_raw().await.is_none());
    driver.await.unwrap().unwrap();
}

#[rstest]
#[tokio::test(start_paused = true)]
async fn an_aborted_driver_ends_every_stream_instead_of_hanging(
    #[values(Mode::Split, Mode::Owned)] mode: Mode,
) {
    let (mut peer, mux, driver) = v1_session_in(mode, 8, MuxOptions::default()).await;
    let mut s = mux.new_stream(StreamType::TCP, "h", 1).await.unwrap();
    let _ = expect_connect(&mut peer).await;
    driver.abort();
    let _ = driver.await;
    let err = s.next().await.unwrap().unwrap_err();
    assert!(matches!(err, WispError::MuxTaskEnded), "{err:?}");
    assert!(matches!(
        mux.new_stream(StreamType::TCP, "h", 1).await,
        Err(WispError::MuxTaskEnded)
    ));
}
