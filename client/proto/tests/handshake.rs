//! The sans-IO state machine's handshake, driven directly: bytes and time in, packets and
//! events out. Deterministic, no sockets, no runtime.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use ed25519_dalek::{Signature, SigningKey, Verifier};
use rstest::rstest;
use sha2::{Digest, Sha256};
use support::*;
use wisp_proto::{
    CertAuthClientRecord, CertAuthServerRecord, CloseReason, Error, Event, ExtensionId, Malformed,
    NegotiatedExtension, Packet, PacketType, PasswordClientRecord, PasswordLayout,
    PeerIncompatible, PeerMisbehaved, Rejection, StreamType, Wait, WispVersion,
};

#[test]
fn v1_handshake_takes_the_credit_from_continue_zero() {
    let now = Instant::now();
    let mut conn = connect(v1(), now);
    assert!(conn.is_handshaking());
    conn.handle_message(cont(0, 128), now);
    let n = conn.negotiated().unwrap();
    assert_eq!(n.version, WispVersion::V1);
    assert!(!n.downgraded);
    assert_eq!(n.initial_credit, 128);
    assert_eq!(n.extensions, vec![NegotiatedExtension::Udp]);
    assert!(
        transmitted(&mut conn).is_empty(),
        "a v1 client sends nothing in the handshake"
    );
}

#[test]
fn v1_client_ignores_info() {
    let now = Instant::now();
    let mut conn = connect(v1(), now);
    conn.handle_message(server_info(vec![]), now);
    assert!(conn.is_handshaking());
    conn.handle_message(cont(0, 16), now);
    assert!(conn.is_established());
    conn.handle_message(server_info(vec![]), now);
    assert!(
        conn.is_established(),
        "a late INFO on a v1 connection is ignored"
    );
    assert!(transmitted(&mut conn).is_empty());
    assert_eq!(conn.ignored_packets(), 2);
}

#[test]
fn draft6_client_info_lists_only_extensions_both_sides_have() {
    let now = Instant::now();
    let mut conn = connect(v2(offer_all()), now);
    conn.handle_message(
        server_info(vec![
            (ExtensionId(0xf3), Bytes::from_static(b"unknown")),
            (ExtensionId::UDP, Bytes::new()),
            (ExtensionId::MOTD, Bytes::from_static(b"hi")),
            (ExtensionId::STREAM_CONFIRMATION, Bytes::new()),
        ]),
        now,
    );
    let sent = transmitted(&mut conn);
    assert_eq!(sent.len(), 1, "the client INFO goes out at once");
    let info = client_info(&sent);
    assert_eq!(info.version, WispVersion::V2);
    let ids: Vec<_> = info.extensions.iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![ExtensionId::UDP, ExtensionId::MOTD]);
    assert!(info.extensions.iter().all(|r| r.data.is_empty()));
    assert!(!conn.is_established(), "draft 6: wait for CONTINUE(0)");
    conn.handle_message(cont(0, 64), now);
    let n = conn.negotiated().unwrap();
    assert_eq!(n.initial_credit, 64);
    assert_eq!(n.motd(), Some("hi"));
    assert!(!n.downgraded);
}

#[test]
fn draft4_info_then_immediate_continue() {
    let now = Instant::now();
    let mut conn = connect(v2(offer_all()), now);
    // Both arrive before the client had a chance to answer; the order still works.
    conn.handle_message(server_info(vec![(ExtensionId::UDP, Bytes::new())]), now);
    conn.handle_message(cont(0, 32), now);
    assert!(conn.is_established());
    assert_eq!(client_info(&transmitted(&mut conn)).extensions.len(), 1);
}

#[test]
fn old_draft_continue_then_info_negotiates_v2() {
    let now = Instant::now();
    let mut conn = connect(v2(offer_all()), now);
    conn.handle_message(cont(0, 10), now);
    assert!(conn.is_handshaking(), "waits briefly for a drafts 1-3 INFO");
    conn.handle_message(server_info(vec![(ExtensionId::UDP, Bytes::new())]), now);
    assert!(conn.is_established());
    let n = conn.negotiated().unwrap();
    assert!(!n.downgraded);
    assert_eq!(n.initial_credit, 10);
    assert_eq!(n.extensions, vec![NegotiatedExtension::Udp]);
    assert_eq!(client_info(&transmitted(&mut conn)).extensions.len(), 1);
}

#[test]
fn continue_first_without_info_downgrades_after_the_wait() {
    let now = Instant::now();
    let mut conn = connect(v2(offer_all()), now);
    conn.handle_message(cont(0, 128), now);
    let deadline = conn.poll_timeout().unwrap();
    assert_eq!(deadline, now + ConnectionConfig::default().legacy_info_wait);
    conn.handle_timeout(deadline - Duration::from_millis(1));
    assert!(conn.is_handshaking());
    conn.handle_timeout(deadline);
    let n = conn.negotiated().unwrap();
    assert!(n.downgraded);
    assert_eq!(n.version, WispVersion::V1);
    assert!(
        transmitted(&mut conn).is_empty(),
        "a downgraded client sends no INFO"
    );
}

#[rstest]
#[case::v1(None)]
#[case::v2(Some(V2Config::default()))]
fn a_silent_server_times_the_handshake_out(#[case] config: Option<V2Config>) {
    let now = Instant::now();
    let mut conn = connect(
        ConnectionConfig {
            v2: config,
            handshake_timeout: Some(Duration::from_secs(3)),
            ..ConnectionConfig::default()
        },
        now,
    );
    assert_eq!(conn.poll_timeout(), Some(now + Duration::from_secs(3)));
    conn.handle_timeout(now + Duration::from_secs(3));
    assert!(matches!(
        conn.error(),
        Some(Error::TimedOut(Wait::Handshake))
    ));
    assert!(matches!(
        events(&mut conn)[..],
        [Event::ConnectionClosed(Error::TimedOut(Wait::Handshake))]
    ));
}

#[test]
fn missing_required_extensions_are_refused_before_the_client_info() {
    let now = Instant::now();
    let mut config = offer_all();
    config.required = vec![ExtensionId::UDP, ExtensionId::PASSWORD, ExtensionId::MOTD];
    let mut conn = connect(v2(config), now);
    conn.handle_message(server_info(vec![(ExtensionId::UDP, Bytes::new())]), now);
    match conn.error() {
        Some(Error::PeerIncompatible(PeerIncompatible::MissingExtensions(ids))) => {
            assert_eq!(ids, &vec![ExtensionId::PASSWORD, ExtensionId::MOTD])
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        transmitted(&mut conn),
        vec![Packet::close(0, CloseReason::EXTENSIONS_INCOMPATIBLE)],
        "CLOSE(0, 0x04) and no client INFO"
    );
}

#[rstest]
#[case::major_1(1)]
#[case::major_3(3)]
fn other_major_versions_are_incompatible(#[case] major: u8) {
    let now = Instant::now();
    let mut conn = connect(v2(offer_all()), now);
    conn.handle_message(
        server_info_version(WispVersion { major, minor: 0 }, vec![]),
        now,
    );
    assert!(matches!(
        conn.error(),
        Some(Error::PeerIncompatible(PeerIncompatible::Version { found, .. })) if found.major == major
    ));
    assert_sent_only_close_04(&mut conn);
}

fn password_config(layout: impl Into<Option<PasswordLayout>>, creds: bool) -> V2Config {
    V2Config {
        password: Some(PasswordOffer {
            credentials: creds.then(|| ("alice".to_owned(), "s3cret".to_owned())),
            layout: layout.into(),
        }),
        ..V2Config::default()
    }
}

#[rstest]
#[case::draft6(PasswordLayout::Draft6)]
#[case::draft5(PasswordLayout::Draft5)]
fn password_record_uses_the_chosen_layout(#[case] layout: PasswordLayout) {
    let record = password_record(Some(layout), false);
    let creds = PasswordClientRecord::decode(&record, layout).unwrap();
    assert_eq!(
        (creds.username.as_str(), creds.password.as_str()),
        ("alice", "s3cret")
    );
}

#[rstest]
#[case::c0(0xc0, Rejection::PasswordInvalid, true)]
#[case::c1(0xc1, Rejection::CertSignatureInvalid, true)]
#[case::c2(0xc2, Rejection::AuthRequired(CloseReason::AUTH_REQUIRED), false)]
#[case::deployed_04_when_auth_unanswered(
    0x04,
    Rejection::AuthRequired(CloseReason::EXTENSIONS_INCOMPATIBLE),
    false
)]
#[case::plain_04(0x04, Rejection::ExtensionsIncompatible, true)]
#[case::unassigned(0x99, Rejection::Handshake(CloseReason(0x99)), true)]
fn handshake_close_reasons_become_typed_errors(
    #[case] reason: u8,
    #[case] expected: Rejection,
    #[case] with_creds: bool,
) {
    let now = Instant::now();
    let mut conn = connect(v2(password_config(PasswordLayout::Draft6, with_creds)), now);
    conn.handle_message(
        server_info(vec![(ExtensionId::PASSWORD, Bytes::from_static(&[1]))]),
        now,
    );
    conn.handle_message(Packet::close(0, CloseReason(reason)).to_bytes(), now);
    match conn.error().expect("the handshake failed") {
        Error::Rejected(r) => {
            assert_eq!(*r, expected);
            assert_eq!(r.reason(), CloseReason(reason));
        }
        other => panic!("expected {expected:?}, got {other:?}"),
    }
}

#[test]
fn cert_auth_signs_the_raw_challenge_with_the_key_hash() {
    let now = Instant::now();
    let key = SigningKey::from_bytes(&[42; 32]);
    let challenge = Bytes::from((0..64).collect::<Vec<u8>>());
    let config = V2Config {
        cert_auth: Some(Some(key.clone())),
        ..V2Config::default()
    };
    let mut conn = connect(v2(config), now);
    let server = CertAuthServerRecord {
        required: true,
        algorithms: 1,
        challenge: challenge.clone(),
    };
    conn.handle_message(
        server_info(vec![(ExtensionId::CERT_AUTH, server.encode())]),
        now,
    );
    let sent = transmitted(&mut conn);
    let record = CertAuthClientRecord::decode(&client_info(&sent).extensions[0].data).unwrap();
    assert_eq!(record.algorithm, 1);
    let expected_hash: [u8; 32] = Sha256::digest(key.verifying_key().as_bytes()).into();
    assert_eq!(record.key_hash, expected_hash);
    let signature = Signature::from_slice(&record.signature).unwrap();
    key.verifying_key()
        .verify(&challenge, &signature)
        .expect("the signature covers the raw challenge");
    conn.handle_message(cont(0, 8), now);
    assert!(conn.negotiated().unwrap().has(ExtensionId::CERT_AUTH));
}

#[test]
fn cert_auth_with_an_algorithm_the_client_lacks() {
    let now = Instant::now();
    let config = V2Config {
        cert_auth: Some(Some(SigningKey::from_bytes(&[1; 32]))),
        ..V2Config::default()
    };
    let mut conn = connect(v2(config), now);
    let server = CertAuthServerRecord {
        required: true,
        algorithms: 0b10,
        challenge: Bytes::from_static(&[0; 64]),
    };
    conn.handle_message(
        server_info(vec![(ExtensionId::CERT_AUTH, server.encode())]),
        now,
    );
    assert!(matches!(
        conn.error(),
        Some(Error::PeerIncompatible(PeerIncompatible::NoCertAlgorithm(
            0b10
        )))
    ));
    assert_sent_only_close_04(&mut conn);
}

#[test]
fn data_for_a_stream_during_the_handshake_is_a_typed_error() {
    let now = Instant::now();
    let mut conn = connect(v1(), now);
    conn.handle_message(Packet::data(3, &b"x"[..]).to_bytes(), now);
    assert!(matches!(
        conn.error(),
        Some(Error::PeerMisbehaved(
            PeerMisbehaved::UnexpectedHandshakePacket {
                packet_type: PacketType::DATA,
                stream_id: 3
            }
        ))
    ));
}

#[test]
fn required_extensions_survive_a_downgrade() {
    let now = Instant::now();
    let mut config = offer_all();
    config.required = vec![ExtensionId::UDP, ExtensionId::MOTD];
    let mut conn = connect(v2(config), now);
    conn.handle_message(cont(0, 128), now);
    conn.handle_timeout(now + ConnectionConfig::default().legacy_info_wait);
    assert!(
        matches!(
            conn.error(),
            Some(Error::PeerIncompatible(PeerIncompatible::MissingExtensions(ids)))
                if ids == &vec![ExtensionId::MOTD]
        ),
        "UDP is implied by v1.2, MOTD is not: {:?}",
        conn.error()
    );
    assert_sent_only_close_04(&mut conn);

    let mut config = offer_all();
    config.required = vec![ExtensionId::UDP];
    let mut conn = connect(v2(config), now);
    conn.handle_message(cont(0, 128), now);
    conn.handle_timeout(now + ConnectionConfig::default().legacy_info_wait);
    assert!(
        conn.negotiated().unwrap().downgraded,
        "requiring only UDP is met by v1"
    );
}

#[test]
fn a_malformed_record_of_an_extension_not_offered_is_skipped() {
    let now = Instant::now();
    let mut conn = connect(v2(offer_all()), now);
    conn.handle_message(
        server_info(vec![
            (ExtensionId::UDP, Bytes::new()),
            (ExtensionId::CERT_AUTH, Bytes::from_static(&[1])),
        ]),
        now,
    );
    conn.handle_message(cont(0, 8), now);
    assert!(conn.is_established());
    assert_eq!(
        conn.negotiated().unwrap().extensions,
        vec![NegotiatedExtension::Udp]
    );
}

#[test]
fn a_malformed_record_of_an_offered_extension_is_rejected_with_close_04() {
    let now = Instant::now();
    let config = V2Config {
        cert_auth: Some(Some(SigningKey::from_bytes(&[5; 32]))),
        ..V2Config::default()
    };
    let mut conn = connect(v2(config), now);
    conn.handle_message(
        server_info(vec![(ExtensionId::CERT_AUTH, Bytes::from_static(&[1]))]),
        now,
    );
    assert!(matches!(
        conn.error(),
        Some(Error::Malformed(Malformed::Extension(_)))
    ));
    assert_sent_only_close_04(&mut conn);
}

/// A v2 client waiting for an older-draft INFO after CONTINUE(0): any packet other than
/// INFO(0) means the server is v1. The handshake ends as v1 at once and the packet is handled
/// as on any v1 connection (here: ignored, it names a stream nobody opened), instead of
/// failing with `UnexpectedHandshakePacket` (issue 11, item 1).
#[rstest]
#[case::data_then_close(vec![Packet::data(99, &b"stray"[..]), Packet::close(99, CloseReason::VOLUNTARY)])]
#[case::continue_for_a_stream(vec![Packet::continue_(99, 4)])]
#[case::a_second_continue_zero(vec![Packet::continue_(0, 4)])]
fn a_stray_packet_during_the_late_info_wait_means_v1(#[case] stray: Vec<Packet>) {
    let now = Instant::now();
    let mut conn = connect(v2(offer_all()), now);
    conn.handle_message(cont(0, 128), now);
    assert!(conn.is_handshaking());
    for p in &stray {
        conn.handle_message(p.to_bytes(), now);
    }
    assert!(conn.is_established(), "{:?}", conn.error());
    let n = conn.negotiated().unwrap();
    assert!(n.downgraded);
    assert_eq!(n.version, WispVersion::V1);
    assert_eq!(n.initial_credit, 128, "the credit of the first CONTINUE(0)");
    assert_eq!(conn.ignored_packets(), stray.len() as u64);
    assert!(transmitted(&mut conn).is_empty(), "no INFO, no CLOSE");
    assert_eq!(conn.poll_timeout(), None, "no wait left");
}

/// The stray packet settles the version, so a required extension v1 lacks fails there and
/// then, as the end of the wait would.
#[test]
fn a_stray_packet_during_the_late_info_wait_checks_required_extensions() {
    let now = Instant::now();
    let mut config = offer_all();
    config.required = vec![ExtensionId::MOTD];
    let mut conn = connect(v2(config), now);
    conn.handle_message(cont(0, 128), now);
    conn.handle_message(Packet::data(99, &b"x"[..]).to_bytes(), now);
    assert!(matches!(
        conn.error(),
        Some(Error::PeerIncompatible(PeerIncompatible::MissingExtensions(ids))) if ids == &vec![ExtensionId::MOTD]
    ));
    assert_sent_only_close_04(&mut conn);
}

/// A CLOSE(0) during the late-INFO wait is still the server refusing the handshake, with
/// the reason mapped as in any handshake.
#[test]
fn close_zero_during_the_late_info_wait_is_a_handshake_rejection() {
    let now = Instant::now();
    let mut conn = connect(v2(offer_all()), now);
    conn.handle_message(cont(0, 128), now);
    conn.handle_message(
        Packet::close(0, CloseReason::PASSWORD_AUTH_FAILED).to_bytes(),
        now,
    );
    assert!(matches!(
        conn.error(),
        Some(Error::Rejected(Rejection::PasswordInvalid))
    ));
}

/// A v1 client (no subprotocol offered) whose server sends INFO first: drafts 4-5 send
/// CONTINUE(0) right after it (the client ignores the INFO and speaks v1); a server that
/// sends nothing more demands v2, and the client says so after `legacy_info_wait` instead of
/// waiting out the handshake timeout (issue 11, item 2).
#[test]
fn a_v1_client_facing_a_server_that_demands_v2_fails_fast() {
    let now = Instant::now();
    let mut conn = connect(v1(), now);
    conn.handle_message(server_info(vec![(ExtensionId::UDP, Bytes::new())]), now);
    assert!(conn.is_handshaking());
    let wait = ConnectionConfig::default().legacy_info_wait;
    assert_eq!(conn.poll_timeout(), Some(now + wait));
    conn.handle_timeout(now + wait - Duration::from_millis(1));
    assert!(conn.is_handshaking());
    conn.handle_timeout(now + wait);
    assert!(
        matches!(
            conn.error(),
            Some(Error::PeerIncompatible(PeerIncompatible::Version { found, speaks }))
                if *found == WispVersion::V2 && *speaks == WispVersion::V1
        ),
        "{:?}",
        conn.error()
    );
    assert_eq!(
        transmitted(&mut conn),
        vec![Packet::close(0, CloseReason::EXTENSIONS_INCOMPATIBLE)],
        "the v2 server is told why, in its own terms"
    );
}

/// The same wait ends at the handshake timeout when that comes first.
#[test]
fn a_v1_client_waiting_after_info_still_honours_the_handshake_timeout() {
    let now = Instant::now();
    let mut conn = connect(
        ConnectionConfig {
            handshake_timeout: Some(Duration::from_millis(50)),
            ..v1()
        },
        now,
    );
    conn.handle_message(server_info(vec![]), now);
    assert_eq!(conn.poll_timeout(), Some(now + Duration::from_millis(50)));
    conn.handle_timeout(now + Duration::from_millis(50));
    assert!(matches!(
        conn.error(),
        Some(Error::TimedOut(Wait::Handshake))
    ));
}

/// The client's password record after the server opened the handshake in its order
/// (`continue_first`: CONTINUE(0) before INFO) with a required password.
fn password_record(layout: Option<PasswordLayout>, continue_first: bool) -> Bytes {
    let now = Instant::now();
    let mut conn = connect(v2(password_config(layout, true)), now);
    if continue_first {
        conn.handle_message(cont(0, 8), now);
    }
    conn.handle_message(
        server_info(vec![(ExtensionId::PASSWORD, Bytes::from_static(&[1]))]),
        now,
    );
    let sent = transmitted(&mut conn);
    let record = &client_info(&sent).extensions[0];
    assert_eq!(record.id, ExtensionId::PASSWORD);
    record.data.clone()
}

/// Without a pinned layout the password record follows the draft the server's handshake
/// order reveals: INFO first is draft 6, CONTINUE(0) before INFO is drafts 1-3, whose
/// servers (wisp-mux 5.x, epoxy-server) read the draft-5 layout (issue 11, item 8). A pinned
/// layout is used whatever the order.
#[rstest]
#[case::unpinned_info_first(None, false, b"\x05alices3cret".as_slice())]
#[case::unpinned_continue_first(None, true, b"\x05\x06\x00alices3cret".as_slice())]
#[case::draft6_pinned_continue_first(Some(PasswordLayout::Draft6), true, b"\x05alices3cret".as_slice())]
#[case::draft5_pinned_info_first(Some(PasswordLayout::Draft5), false, b"\x05\x06\x00alices3cret".as_slice())]
fn the_password_layout_follows_the_handshake_order_unless_pinned(
    #[case] pinned: Option<PasswordLayout>,
    #[case] continue_first: bool,
    #[case] golden: &[u8],
) {
    assert_eq!(&password_record(pinned, continue_first)[..], golden);
}

/// `Debug` of the connection never shows the password, though the client INFO carrying it
/// is queued inside (issue 11, item 9).
#[rstest]
#[case::draft6(PasswordLayout::Draft6)]
#[case::draft5(PasswordLayout::Draft5)]
fn debug_output_redacts_the_password(#[case] layout: PasswordLayout) {
    let now = Instant::now();
    let config = V2Config {
        password: Some(PasswordOffer {
            credentials: Some(("alice".to_owned(), "pw-Zq7-secret".to_owned())),
            layout: Some(layout),
        }),
        ..V2Config::default()
    };
    let mut conn = connect(v2(config), now);
    conn.handle_message(
        server_info(vec![(ExtensionId::PASSWORD, Bytes::from_static(&[1]))]),
        now,
    );
    assert!(
        conn.queued_bytes() > 0,
        "the client INFO waits in the queue"
    );
    for debug in [format!("{conn:?}"), format!("{conn:#?}")] {
        assert!(!debug.contains("pw-Zq7-secret"), "{debug}");
        // Not as text, decimal bytes (`Vec<u8>`) or hex either.
        for needle in ["Zq7", "90, 113, 55", "5a7137", "5A7137"] {
            assert!(!debug.contains(needle), "{needle} in {debug}");
        }
    }
    // The packet itself still carries it.
    let sent = transmitted(&mut conn);
    let creds =
        PasswordClientRecord::decode(&client_info(&sent).extensions[0].data, layout).unwrap();
    assert_eq!(creds.password, "pw-Zq7-secret");
}

/// Found by the `client_conn` fuzz target: a wait longer than an `Instant` can represent
/// (`Duration::MAX`, a natural "never") panicked with "overflow when adding duration to
/// instant". Such a wait has no deadline.
#[rstest]
#[case::handshake_timeout(ConnectionConfig {
    handshake_timeout: Some(Duration::MAX),
    ..v2(offer_all())
})]
#[case::legacy_info_wait(ConnectionConfig {
    handshake_timeout: None,
    legacy_info_wait: Duration::MAX,
    ..v2(offer_all())
})]
#[case::stream_open_timeout(ConnectionConfig {
    handshake_timeout: None,
    stream_open_timeout: Some(Duration::MAX),
    ..v2(V2Config {
        stream_confirmation: true,
        ..offer_all()
    })
})]
fn waits_too_long_for_an_instant_have_no_deadline(#[case] config: ConnectionConfig) {
    let now = Instant::now();
    let legacy_wait = config.legacy_info_wait == Duration::MAX;
    let mut conn = connect(config, now);
    if legacy_wait {
        conn.handle_message(cont(0, 8), now);
        assert_eq!(conn.poll_timeout(), None, "the INFO wait never ends");
        conn.handle_message(server_info(vec![(ExtensionId::UDP, Bytes::new())]), now);
    } else {
        assert_eq!(conn.poll_timeout(), None, "no handshake deadline");
        conn.handle_message(
            server_info(vec![(ExtensionId::STREAM_CONFIRMATION, Bytes::new())]),
            now,
        );
        conn.handle_message(cont(0, 8), now);
    }
    assert!(conn.is_established());
    let id = conn.open_stream(StreamType::TCP, "h", 1, now).unwrap();
    assert_eq!(conn.poll_timeout(), None, "no stream-open deadline");
    conn.handle_timeout(now + Duration::from_secs(1 << 40));
    assert!(conn.error().is_none());
    assert_eq!(
        conn.stream_count(),
        1,
        "stream {id} is still open or opening"
    );
}

/// The same overflow in the wait a v1 client starts when the server sends INFO first.
#[test]
fn a_v1_clients_wait_after_info_too_long_for_an_instant_has_no_deadline() {
    let now = Instant::now();
    let mut conn = connect(
        ConnectionConfig {
            handshake_timeout: None,
            legacy_info_wait: Duration::MAX,
            ..v1()
        },
        now,
    );
    conn.handle_message(server_info(vec![]), now);
    assert_eq!(conn.poll_timeout(), None, "the CONTINUE(0) wait never ends");
    conn.handle_message(cont(0, 8), now);
    assert!(conn.is_established());
}
