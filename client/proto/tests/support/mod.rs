//! Builders and probes shared by the state-machine tests: a flat configuration, server
//! packets, and what the connection sent or reported.

#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use wisp_proto::ext::{
    CertAuthExtensionBuilder, MotdExtensionBuilder, PasswordExtensionBuilder,
    StreamConfirmationExtensionBuilder, UdpExtensionBuilder, WispV2Handshake,
};
use wisp_proto::{
    ClientConnection, Event, ExtensionId, ExtensionRecord, InfoPacket, MuxOptions, Packet,
    PacketBody, PasswordLayout, WispVersion,
};

/// Every tunable and the v2 offer in one flat struct, so each test states only what it
/// changes.
#[derive(Clone)]
pub struct ConnectionConfig {
    pub v2: Option<V2Config>,
    pub handshake_timeout: Option<Duration>,
    pub legacy_info_wait: Duration,
    pub max_payload_len: usize,
    pub first_stream_id: u32,
    pub stream_open_timeout: Option<Duration>,
    pub max_queued_bytes: usize,
}

/// The v2 offer, one field per extension.
#[derive(Clone, Default)]
pub struct V2Config {
    pub udp: bool,
    pub password: Option<PasswordOffer>,
    pub cert_auth: Option<Option<SigningKey>>,
    pub motd: bool,
    pub stream_confirmation: bool,
    pub required: Vec<ExtensionId>,
}

/// An established v1 connection with `credit`.
pub fn established_v1(credit: u32, now: Instant) -> ClientConnection {
    let mut conn = connect(v1(), now);
    conn.handle_message(cont(0, credit), now);
    assert!(conn.is_established());
    conn
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        let o = MuxOptions::default();
        Self {
            v2: None,
            handshake_timeout: o.handshake_timeout,
            legacy_info_wait: o.legacy_info_wait,
            max_payload_len: o.max_payload_len,
            first_stream_id: o.first_stream_id,
            stream_open_timeout: o.stream_open_timeout,
            max_queued_bytes: o.max_queued_bytes,
        }
    }
}

#[derive(Clone)]
pub struct PasswordOffer {
    pub credentials: Option<(String, String)>,
    /// `None`: not pinned (the client picks the layout from the server's handshake order).
    pub layout: Option<PasswordLayout>,
}

impl From<V2Config> for WispV2Handshake {
    fn from(c: V2Config) -> Self {
        let mut h = WispV2Handshake::empty();
        if c.udp {
            h.add_extension(UdpExtensionBuilder);
        }
        if let Some(p) = c.password {
            let builder = PasswordExtensionBuilder::new_client(p.credentials);
            h.add_extension(match p.layout {
                Some(layout) => builder.layout(layout),
                None => builder,
            });
        }
        if let Some(key) = c.cert_auth {
            h.add_extension(CertAuthExtensionBuilder::new_client(key));
        }
        if c.motd {
            h.add_extension(MotdExtensionBuilder);
        }
        if c.stream_confirmation {
            h.add_extension(StreamConfirmationExtensionBuilder);
        }
        c.required
            .into_iter()
            .fold(h, |h, id| h.with_required_extension(id))
    }
}

pub fn connect(config: ConnectionConfig, now: Instant) -> ClientConnection {
    let options = MuxOptions::default()
        .handshake_timeout(config.handshake_timeout)
        .legacy_info_wait(config.legacy_info_wait)
        .max_payload_len(config.max_payload_len)
        .first_stream_id(config.first_stream_id)
        .stream_open_timeout(config.stream_open_timeout)
        .max_queued_bytes(config.max_queued_bytes);
    ClientConnection::new(config.v2.map(Into::into), options, now)
}

pub fn v1() -> ConnectionConfig {
    ConnectionConfig::default()
}

pub fn v2(config: V2Config) -> ConnectionConfig {
    ConnectionConfig {
        v2: Some(config),
        ..ConnectionConfig::default()
    }
}

pub fn offer_all() -> V2Config {
    V2Config {
        udp: true,
        motd: true,
        stream_confirmation: false,
        ..V2Config::default()
    }
}

pub fn server_info(records: Vec<(ExtensionId, Bytes)>) -> Bytes {
    server_info_version(WispVersion::V2, records)
}

pub fn server_info_version(version: WispVersion, records: Vec<(ExtensionId, Bytes)>) -> Bytes {
    Packet::info(InfoPacket::new(
        version,
        records
            .into_iter()
            .map(|(id, data)| ExtensionRecord { id, data })
            .collect(),
    ))
    .to_bytes()
}

pub fn cont(id: u32, credit: u32) -> Bytes {
    Packet::continue_(id, credit).to_bytes()
}

pub fn transmitted(conn: &mut ClientConnection) -> Vec<Packet> {
    std::iter::from_fn(|| conn.poll_transmit())
        .map(|b| Packet::decode(b).expect("the client sends well-formed packets"))
        .collect()
}

pub fn events(conn: &mut ClientConnection) -> Vec<Event> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

pub fn client_info(packets: &[Packet]) -> &InfoPacket {
    match packets.iter().find_map(|p| match &p.body {
        PacketBody::Info(i) => Some(i),
        _ => None,
    }) {
        Some(i) => i,
        None => panic!("no client INFO in {packets:?}"),
    }
}

/// Asserts the connection sent exactly one packet, CLOSE(0, 0x04): how the client refuses
/// a server it cannot work with.
pub fn assert_sent_only_close_04(conn: &mut ClientConnection) {
    assert_eq!(
        transmitted(conn),
        vec![Packet::close(
            0,
            wisp_proto::CloseReason::EXTENSIONS_INCOMPATIBLE
        )]
    );
}
