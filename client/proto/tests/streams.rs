//! The sans-IO state machine's streams (credit, turns, close, confirmation) and its
//! robustness against hostile input, driven directly. Deterministic, no sockets, no runtime.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use rstest::rstest;
use support::*;
use wisp_proto::{
    ClientConnection, CloseReason, Error, Event, ExtensionId, Initiator, Malformed, Misuse, Packet,
    PacketBody, Rejection, StreamType, Wait,
};

#[test]
fn credit_is_absolute_and_one_data_per_credit() {
    let now = Instant::now();
    let mut conn = established_v1(2, now);
    let id = conn
        .open_stream(StreamType::TCP, "example.com", 80, now)
        .unwrap();
    assert_eq!(conn.send_data(id, b"a").unwrap(), Some(1));
    assert_eq!(conn.send_data(id, b"b").unwrap(), Some(1));
    assert_eq!(conn.send_data(id, b"c").unwrap(), None, "no credit left");
    assert!(conn.is_blocked(id));
    let sent = transmitted(&mut conn);
    let data: Vec<_> = sent
        .iter()
        .filter(|p| matches!(p.body, PacketBody::Data(_)))
        .collect();
    assert_eq!(data.len(), 2);
    conn.handle_message(cont(id, 3), now);
    assert!(matches!(events(&mut conn)[..], [Event::StreamWritable { id: w }] if w == id));
    assert_eq!(conn.credit(id), Some(3));
    conn.handle_message(cont(id, 1), now);
    assert_eq!(
        conn.credit(id),
        Some(1),
        "CONTINUE replaces, it does not add"
    );
}

/// A stream that writes faster than the link cannot crowd out the others: a full transmit
/// queue still takes one packet from a stream that has none queued, and once several
/// streams are busy each may fill only its share of a batch.
#[test]
fn busy_streams_share_each_batch() {
    let now = Instant::now();
    let mut conn = connect(
        ConnectionConfig {
            max_queued_bytes: 28,
            ..v1()
        },
        now,
    );
    conn.handle_message(cont(0, 16), now);
    let a = conn.open_stream(StreamType::TCP, "h", 1, now).unwrap();
    let b = conn.open_stream(StreamType::TCP, "h", 1, now).unwrap();
    let _ = transmitted(&mut conn);
    for payload in [&b"a0"[..], b"a1", b"a2", b"a3"] {
        assert_eq!(conn.send_data(a, payload).unwrap(), Some(2));
    }
    assert_eq!(conn.send_data(a, b"a4").unwrap(), None, "queue full");
    assert!(conn.is_blocked(a));
    assert!(
        !conn.is_blocked(b),
        "a stream with nothing queued is never blocked"
    );
    assert_eq!(conn.send_data(b, b"b0").unwrap(), Some(2));
    let data = |conn: &mut ClientConnection| -> Vec<Vec<u8>> {
        transmitted(conn)
            .into_iter()
            .map(|p| match p.body {
                PacketBody::Data(d) => d.to_vec(),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    };
    // The first packet of each new stream goes ahead of the rest.
    assert_eq!(data(&mut conn), [&b"a0"[..], b"b0", b"a1", b"a2", b"a3"]);
    assert!(
        matches!(events(&mut conn)[..], [Event::StreamWritable { id }] if id == a),
        "the refused stream is told when the batch has been taken"
    );
    // Both streams wrote in the last batch, so each may now fill half of the next one
    // (14 bytes: two packets of 7).
    let mut sent = Vec::new();
    for (id, tag) in [(a, b'a'), (b, b'b')] {
        let mut n = 0;
        while conn.send_data(id, &[tag, b'0' + n]).unwrap().is_some() {
            n += 1;
        }
        sent.push(n);
    }
    assert_eq!(sent, [2, 2], "each its share of the 28 bytes");
    assert_eq!(data(&mut conn), [&b"a0"[..], b"a1", b"b0", b"b1"]);
}

#[test]
fn udp_streams_are_not_flow_controlled() {
    let now = Instant::now();
    let mut conn = established_v1(1, now);
    let id = conn
        .open_stream(StreamType::UDP, "1.1.1.1", 53, now)
        .unwrap();
    for _ in 0..10 {
        assert_eq!(conn.send_data(id, b"dgram").unwrap(), Some(5));
    }
    conn.handle_message(cont(id, 0), now);
    assert_eq!(
        conn.send_data(id, b"dgram").unwrap(),
        Some(5),
        "CONTINUE for UDP is ignored"
    );
}

#[test]
fn writes_are_split_at_the_maximum_payload() {
    let now = Instant::now();
    let mut conn = connect(
        ConnectionConfig {
            max_payload_len: 4,
            ..v1()
        },
        now,
    );
    conn.handle_message(cont(0, 10), now);
    let id = conn.open_stream(StreamType::TCP, "h", 1, now).unwrap();
    assert_eq!(conn.send_data(id, b"0123456789").unwrap(), Some(4));
}

#[test]
fn streams_ids_are_sequential_and_exhaust_at_u32_max() {
    let now = Instant::now();
    let mut conn = established_v1(1, now);
    let ids: Vec<u32> = (0..3)
        .map(|_| conn.open_stream(StreamType::TCP, "h", 1, now).unwrap())
        .collect();
    assert_eq!(ids, vec![1, 2, 3]);

    let mut conn = connect(
        ConnectionConfig {
            first_stream_id: u32::MAX,
            ..v1()
        },
        now,
    );
    conn.handle_message(cont(0, 1), now);
    assert_eq!(
        conn.open_stream(StreamType::TCP, "h", 1, now).unwrap(),
        u32::MAX
    );
    assert!(matches!(
        conn.open_stream(StreamType::TCP, "h", 1, now),
        Err(Error::Misuse(Misuse::StreamIdsExhausted))
    ));
}

#[test]
fn udp_needs_the_negotiated_extension() {
    let now = Instant::now();
    let mut conn = connect(v2(V2Config::default()), now);
    conn.handle_message(server_info(vec![(ExtensionId::UDP, Bytes::new())]), now);
    conn.handle_message(cont(0, 1), now);
    assert!(matches!(
        conn.open_stream(StreamType::UDP, "h", 1, now),
        Err(Error::Misuse(Misuse::NotNegotiated(ExtensionId::UDP)))
    ));
}

#[test]
fn stream_close_in_both_directions() {
    let now = Instant::now();
    let mut conn = established_v1(4, now);
    let a = conn.open_stream(StreamType::TCP, "h", 1, now).unwrap();
    let b = conn.open_stream(StreamType::TCP, "h", 1, now).unwrap();
    let _ = transmitted(&mut conn);
    conn.close_stream(a, CloseReason::VOLUNTARY).unwrap();
    assert_eq!(
        transmitted(&mut conn),
        vec![Packet::close(a, CloseReason::VOLUNTARY)]
    );
    assert!(matches!(
        conn.close_stream(a, CloseReason::VOLUNTARY),
        Err(Error::Misuse(Misuse::StreamClosed))
    ));

    conn.handle_message(Packet::data(b, &b"last words"[..]).to_bytes(), now);
    conn.handle_message(Packet::close(b, CloseReason(0xff)).to_bytes(), now);
    let ev = events(&mut conn);
    assert!(
        matches!(&ev[1], Event::StreamData { id, data } if *id == b && &data[..] == b"last words")
    );
    assert!(matches!(
        ev[2],
        Event::StreamClosed { id, reason: CloseReason(0xff), initiator: Initiator::Remote } if id == b
    ));
    assert!(conn.is_established(), "an unassigned reason is not fatal");
    assert!(
        transmitted(&mut conn).is_empty(),
        "a received CLOSE is not answered"
    );
}

#[test]
fn close_on_stream_zero_ends_the_connection() {
    let now = Instant::now();
    let mut conn = established_v1(4, now);
    conn.open_stream(StreamType::TCP, "h", 1, now).unwrap();
    conn.handle_message(
        Packet::close(0, CloseReason::SERVER_STREAM_THROTTLED).to_bytes(),
        now,
    );
    assert!(matches!(
        events(&mut conn)[..],
        [Event::ConnectionClosed(Error::Rejected(
            Rejection::Connection(CloseReason::SERVER_STREAM_THROTTLED)
        ))]
    ));
    assert!(matches!(
        conn.open_stream(StreamType::TCP, "h", 1, now),
        Err(Error::Misuse(Misuse::ConnectionEnded))
    ));
}

#[rstest]
#[case::unknown_type("07 01 00 00 00 ff")]
#[case::data_for_unknown_stream("02 63 00 00 00 68 69")]
#[case::close_for_unknown_stream("04 63 00 00 00 02")]
#[case::continue_for_unknown_stream("03 63 00 00 00 01 00 00 00")]
#[case::info_after_handshake("05 00 00 00 00 02 00")]
#[case::connect_from_server("01 05 00 00 00 01 50 00 68")]
#[case::second_continue_zero("03 00 00 00 00 10 00 00 00")]
fn well_formed_but_meaningless_packets_are_ignored(#[case] wire: &str) {
    let now = Instant::now();
    let mut conn = established_v1(4, now);
    conn.handle_message(
        Bytes::from(hex::decode(wire.replace(' ', "")).unwrap()),
        now,
    );
    assert!(conn.is_established());
    assert_eq!(conn.ignored_packets(), 1);
}

#[rstest]
#[case::three_bytes("02 01 00")]
#[case::empty_close("04 01 00 00 00")]
#[case::short_continue("03 01 00 00 00 01")]
fn malformed_packets_end_the_connection(#[case] wire: &str) {
    let now = Instant::now();
    let mut conn = established_v1(4, now);
    conn.handle_message(
        Bytes::from(hex::decode(wire.replace(' ', "")).unwrap()),
        now,
    );
    assert!(matches!(
        conn.error(),
        Some(Error::Malformed(Malformed::Packet(_)))
    ));
}

fn confirmed(now: Instant) -> ClientConnection {
    let config = V2Config {
        stream_confirmation: true,
        ..V2Config::default()
    };
    let mut conn = connect(
        ConnectionConfig {
            stream_open_timeout: Some(Duration::from_secs(2)),
            ..v2(config)
        },
        now,
    );
    conn.handle_message(
        server_info(vec![(ExtensionId::STREAM_CONFIRMATION, Bytes::new())]),
        now,
    );
    conn.handle_message(cont(0, 8), now);
    let _ = transmitted(&mut conn);
    conn
}

#[test]
fn stream_confirmation_opens_on_continue() {
    let now = Instant::now();
    let mut conn = confirmed(now);
    let id = conn.open_stream(StreamType::TCP, "h", 1, now).unwrap();
    assert_eq!(
        conn.send_data(id, b"early").unwrap(),
        None,
        "no DATA before confirmation"
    );
    conn.handle_message(cont(id, 5), now);
    assert!(matches!(events(&mut conn)[..], [Event::StreamOpened { id: o }] if o == id));
    assert_eq!(conn.send_data(id, b"now").unwrap(), Some(3));
}

#[test]
fn stream_confirmation_refusal_and_timeout() {
    let now = Instant::now();
    let mut conn = confirmed(now);
    let refused = conn.open_stream(StreamType::TCP, "h", 1, now).unwrap();
    conn.handle_message(
        Packet::close(refused, CloseReason::SERVER_STREAM_BLOCKED_ADDRESS).to_bytes(),
        now,
    );
    assert!(matches!(
        &events(&mut conn)[..],
        [Event::StreamOpenFailed {
            error: Error::Rejected(Rejection::StreamOpen(
                CloseReason::SERVER_STREAM_BLOCKED_ADDRESS
            )),
            ..
        }]
    ));
    let silent = conn.open_stream(StreamType::TCP, "h", 1, now).unwrap();
    let _ = transmitted(&mut conn);
    assert_eq!(conn.poll_timeout(), Some(now + Duration::from_secs(2)));
    conn.handle_timeout(now + Duration::from_secs(2));
    assert!(matches!(
        &events(&mut conn)[..],
        [Event::StreamOpenFailed { id, error: Error::TimedOut(Wait::StreamOpen) }] if *id == silent
    ));
    assert_eq!(
        transmitted(&mut conn),
        vec![Packet::close(silent, CloseReason::VOLUNTARY)]
    );
}

#[test]
fn local_close_with_reason_queues_close_zero() {
    let now = Instant::now();
    let mut conn = established_v1(4, now);
    conn.close(Some(CloseReason::VOLUNTARY));
    assert_eq!(
        transmitted(&mut conn),
        vec![Packet::close(0, CloseReason::VOLUNTARY)]
    );
    assert!(matches!(conn.error(), Some(Error::ClosedLocally)));
}

/// Random messages in every phase never panic the state machine.
#[test]
fn state_machine_never_panics_on_arbitrary_input() {
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..300 {
        let now = Instant::now();
        let mut conn = connect(
            if round % 2 == 0 {
                v1()
            } else {
                v2(offer_all())
            },
            now,
        );
        for step in 0..40 {
            let len = (next() % 24) as usize;
            let mut msg: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if let Some(b) = msg.first_mut() {
                *b %= 7;
            }
            if step == 0 && round % 3 == 0 {
                msg = cont(0, 4).to_vec();
            }
            conn.handle_message(Bytes::from(msg), now);
            if conn.is_established()
                && next() % 4 == 0
                && let Ok(id) = conn.open_stream(StreamType::TCP, "h", 1, now)
            {
                let _ = conn.send_data(id, b"x");
            }
            let _ = transmitted(&mut conn);
            let _ = events(&mut conn);
        }
    }
}

#[test]
fn udp_datagrams_are_never_split() {
    let now = Instant::now();
    let mut conn = connect(
        ConnectionConfig {
            max_payload_len: 4,
            ..v1()
        },
        now,
    );
    conn.handle_message(cont(0, 10), now);
    let id = conn.open_stream(StreamType::UDP, "h", 53, now).unwrap();
    assert_eq!(conn.send_data(id, b"0123456789").unwrap(), Some(10));
}

#[test]
fn continue_counts_packets_still_queued_against_the_new_credit() {
    let now = Instant::now();
    let mut conn = established_v1(8, now);
    let id = conn.open_stream(StreamType::TCP, "h", 1, now).unwrap();
    for _ in 0..5 {
        assert_eq!(conn.send_data(id, b"x").unwrap(), Some(1));
    }
    // None of the five DATA packets has left the client when the server says it can take
    // 6 more: only 1 more may be queued, or the server would receive 10.
    conn.handle_message(cont(id, 6), now);
    assert_eq!(conn.credit(id), Some(1));
    let sent = transmitted(&mut conn);
    assert_eq!(sent.len(), 6, "CONNECT and five DATA");
    conn.handle_message(cont(id, 6), now);
    assert_eq!(
        conn.credit(id),
        Some(6),
        "with the queue drained the full value applies"
    );
}
