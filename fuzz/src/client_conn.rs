//! Target `client_conn`: the sans-IO client state machine (`ClientConnection`) fed
//! arbitrary server messages, interleaved with the application's calls and the passing of
//! time.
//!
//! # Input layout
//!
//! A configuration header, then operations until the input ends.
//!
//! | bytes | meaning |
//! |---|---|
//! | 1 | flags: bit 0 v2; bit 1 UDP; bit 2 MOTD; bit 3 stream confirmation; bits 4–5 password (0 none, 1 offered without credentials, 2 credentials with the layout the server's handshake order implies, 3 credentials with a pinned layout); bits 6–7 certificate (0 none, 1 offered without a key, 2–3 with a key) |
//! | 1 | required extensions ([`required_ids`]) |
//! | 3 | handshake timeout, legacy INFO wait, stream-open timeout ([`duration`]; 0 is "none" for the optional ones) |
//! | 2 | `max_payload_len` (LE; 0xffff: unbounded) |
//! | 4 | `first_stream_id` (LE) |
//! | 2 | `max_queued_bytes` / 16 (LE) |
//! | 1+n, 1+n, (1) | username, password (length-prefixed), and for a pinned layout a byte (0 draft 6, else draft 5); only with credentials |
//!
//! Operations (first byte modulo 10): 0 a server message (`u16` length + bytes); 1 advance
//! time by a `u16` of milliseconds; 2 jump to the next deadline; 3 open a stream (type byte:
//! 0 TCP, 1 UDP, else raw; host `u8`-prefixed; port `u16`); 4 write on a stream (index into
//! the opened streams `u8`, length `u16`); 5 close a stream (index, reason); 6 close the
//! connection (reason, 0: none); 7 the transport ends (0: closed, 1: abandoned, else an
//! error); 8 stop (or resume) draining the transmit queue after each operation; 9 require
//! extensions after the handshake (a [`required_ids`] mask).
//!
//! # What is checked
//!
//! Nothing panics; after every call the driver's duties are done as `mux.rs` does them
//! (events drained, due timers fired) and:
//!
//! - a due timer never stays due after `handle_timeout` (a driver would spin);
//! - the handshake never outlives `handshake_timeout`, nor an unconfirmed stream
//!   `stream_open_timeout`;
//! - the client only sends well-formed packets, CONNECT only for ids it returned, one INFO
//!   at most and only in v2;
//! - events name only streams the application opened and has not seen end; after
//!   `ConnectionClosed` (sent once) no stream is left;
//! - the stream count matches the streams the events leave open;
//! - a write takes at most `max_payload_len` bytes of a TCP stream.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

// Import paths (the only lines to update when the crates move).
use wisp_proto::{
    CertAuthExtensionBuilder, ClientConnection, CloseReason, Event, ExtensionId,
    MotdExtensionBuilder, MuxOptions, Packet, PacketBody, PasswordExtensionBuilder, PasswordLayout,
    StreamConfirmationExtensionBuilder, StreamType, TransportError, UdpExtensionBuilder,
    WispV2Handshake,
};

use crate::input::Input;

/// What the application writes (a prefix of it): no allocation per write.
static PAYLOAD: [u8; u16::MAX as usize] = [0x5a; u16::MAX as usize];

/// A duration from one byte: 0 is zero, 255 is `Duration::MAX` (a "practically never"
/// a user may pass), others grow quadratically up to about 4 minutes.
pub fn duration(b: u8) -> Duration {
    match b {
        255 => Duration::MAX,
        b => Duration::from_millis(u64::from(b) * u64::from(b) * 4),
    }
}

/// An optional duration: 0 is `None`, `b` is [`duration`]`(b - 1)`.
pub fn optional_duration(b: u8) -> Option<Duration> {
    b.checked_sub(1).map(duration)
}

/// Reads the configuration header: the v2 offer (`None`: v1) and the options.
pub fn config(input: &mut Input<'_>) -> (Option<WispV2Handshake>, MuxOptions) {
    let flags = input.u8();
    let required = input.u8();
    let options = MuxOptions::default()
        .handshake_timeout(optional_duration(input.u8()))
        .legacy_info_wait(duration(input.u8()))
        .stream_open_timeout(optional_duration(input.u8()))
        .max_payload_len(match input.u16() {
            u16::MAX => usize::MAX,
            n => usize::from(n),
        })
        .first_stream_id(input.u32())
        .max_queued_bytes(usize::from(input.u16()) * 16);
    if flags & 1 == 0 {
        return (None, options);
    }
    let mut offer = WispV2Handshake::empty();
    if flags & 2 != 0 {
        offer.add_extension(UdpExtensionBuilder);
    }
    match (flags >> 4) & 3 {
        0 => {}
        1 => offer.add_extension(PasswordExtensionBuilder::new_client(None)),
        pinned => {
            let username = String::from_utf8_lossy(input.chunk8()).into_owned();
            let password = String::from_utf8_lossy(input.chunk8()).into_owned();
            let builder = PasswordExtensionBuilder::new_client(Some((username, password)));
            offer.add_extension(if pinned == 3 {
                builder.layout(if input.u8() == 0 {
                    PasswordLayout::Draft6
                } else {
                    PasswordLayout::Draft5
                })
            } else {
                builder
            });
        }
    }
    match flags >> 6 {
        0 => {}
        1 => offer.add_extension(CertAuthExtensionBuilder::new_client(None)),
        _ => offer.add_extension(CertAuthExtensionBuilder::new_client(Some(
            crate::signing_key().clone(),
        ))),
    }
    if flags & 4 != 0 {
        offer.add_extension(MotdExtensionBuilder);
    }
    if flags & 8 != 0 {
        offer.add_extension(StreamConfirmationExtensionBuilder);
    }
    let offer = required_ids(required)
        .into_iter()
        .fold(offer, |offer, id| offer.with_required_extension(id));
    (Some(offer), options)
}

/// Extension ids from a mask: bit *n* (0–4) is id *n*+1, bit 5 the unknown id 0xf3.
pub fn required_ids(mask: u8) -> Vec<ExtensionId> {
    let mut ids: Vec<ExtensionId> = (0..5u8)
        .filter(|bit| mask & (1 << bit) != 0)
        .map(|bit| ExtensionId(bit + 1))
        .collect();
    if mask & 0x20 != 0 {
        ids.push(ExtensionId(0xf3));
    }
    ids
}

/// The state the checks compare the connection with.
struct Model {
    start: Instant,
    now: Instant,
    v2: bool,
    handshake_timeout: Option<Duration>,
    stream_open_timeout: Option<Duration>,
    max_payload_len: usize,
    /// The streams that may still be unconfirmed, with when each was opened, in the order
    /// they were opened (time never goes back, so oldest first). A stream leaves from the
    /// front once the connection no longer calls it opening: ids are issued once, so a
    /// confirmed or ended stream never opens again.
    opening: VecDeque<(u32, Instant)>,
    /// Streams the application opened and has not seen end.
    open: BTreeSet<u32>,
    /// Every id `open_stream` returned.
    issued: BTreeSet<u32>,
    /// UDP streams among them.
    udp: BTreeSet<u32>,
    closed: bool,
    infos_sent: usize,
}

/// Runs the program in `data`.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let (offer, options) = config(&mut input);
    let start = Instant::now();
    let mut model = Model {
        start,
        now: start,
        v2: offer.is_some(),
        handshake_timeout: options.handshake_timeout,
        stream_open_timeout: options.stream_open_timeout,
        max_payload_len: options.max_payload_len,
        opening: VecDeque::new(),
        open: BTreeSet::new(),
        issued: BTreeSet::new(),
        udp: BTreeSet::new(),
        closed: false,
        infos_sent: 0,
    };
    let mut conn = ClientConnection::new(offer, options, start);
    let mut order: Vec<u32> = Vec::new();
    let mut drain = true;
    while !input.is_empty() {
        let op = input.u8() % 10;
        match op {
            0 => {
                let msg = Bytes::copy_from_slice(input.chunk16());
                conn.handle_message(msg, model.now);
            }
            1 => {
                model.now += Duration::from_millis(u64::from(input.u16()));
            }
            2 => {
                if let Some(deadline) = conn.poll_timeout() {
                    model.now = model.now.max(deadline);
                }
            }
            3 => {
                let stream_type = match input.u8() {
                    0 => StreamType::TCP,
                    1 => StreamType::UDP,
                    t => StreamType(t),
                };
                let host = String::from_utf8_lossy(input.chunk8()).into_owned();
                let port = input.u16();
                if let Ok(id) = conn.open_stream(stream_type, &host, port, model.now) {
                    assert!(model.issued.insert(id), "stream id {id} issued twice");
                    assert_ne!(id, 0, "stream id 0 issued");
                    if stream_type == StreamType::UDP {
                        model.udp.insert(id);
                    }
                    model.open.insert(id);
                    model.opening.push_back((id, model.now));
                    order.push(id);
                }
            }
            4 => {
                let id = pick(&order, input.u8());
                let len = usize::from(input.u16());
                if let Ok(Some(n)) = conn.send_data(id, &PAYLOAD[..len]) {
                    assert!(n <= len, "took more than was given");
                    if !model.udp.contains(&id) {
                        assert!(n <= model.max_payload_len.max(1), "over max_payload_len");
                        assert!(n > 0 || len == 0, "took nothing of a non-empty write");
                    } else {
                        assert_eq!(n, len, "a UDP datagram was split");
                    }
                }
            }
            5 => {
                let id = pick(&order, input.u8());
                let _ = conn.close_stream(id, CloseReason(input.u8()));
            }
            6 => {
                let reason = match input.u8() {
                    0 => None,
                    r => Some(CloseReason(r)),
                };
                conn.close(reason);
            }
            7 => {
                let error = match input.u8() {
                    0 => TransportError::Closed,
                    1 => TransportError::Abandoned,
                    _ => TransportError::Failed(Arc::new(std::io::Error::from(
                        std::io::ErrorKind::ConnectionReset,
                    ))),
                };
                conn.handle_transport_closed(error);
            }
            8 => drain = !drain,
            _ => {
                let _ = conn.require_extensions(&required_ids(input.u8()));
            }
        }
        service(&mut conn, &mut model, drain, matches!(op, 1 | 2));
    }
}

/// A stream id from an index byte: one of the opened ids, or (when the byte is past them)
/// an id nobody opened.
fn pick(order: &[u32], b: u8) -> u32 {
    order
        .get(usize::from(b))
        .copied()
        .unwrap_or_else(|| u32::from(b).wrapping_mul(0x0101_0101))
}

/// What the driver does after each call: fire due timers, drain events (and, when `drain`,
/// the transmit queue), checking the invariants (the deadlines only when time `advanced`:
/// they cannot be overrun otherwise, and checking each stream costs a scan).
fn service(conn: &mut ClientConnection, model: &mut Model, drain: bool, advanced: bool) {
    if let Some(deadline) = conn.poll_timeout()
        && deadline <= model.now
    {
        conn.handle_timeout(model.now);
        if let Some(next) = conn.poll_timeout() {
            assert!(
                next > model.now,
                "a timer is still due after handle_timeout: the driver would spin"
            );
        }
    }
    if let Some(t) = model.handshake_timeout
        && conn.is_handshaking()
    {
        let elapsed = model.now.duration_since(model.start);
        assert!(
            elapsed < t,
            "still handshaking {elapsed:?} after start (handshake_timeout {t:?})"
        );
    }
    if let Some(t) = model.stream_open_timeout.filter(|_| advanced) {
        // The oldest stream still opening has waited longest: checking it checks them all,
        // without a scan of every stream per time step (quadratic in a long input).
        while let Some(&(id, _)) = model.opening.front()
            && !conn.is_opening(id)
        {
            model.opening.pop_front();
        }
        if let Some(&(id, at)) = model.opening.front() {
            let waited = model.now.duration_since(at);
            assert!(
                waited < t,
                "stream {id} unconfirmed {waited:?} after open (stream_open_timeout {t:?})"
            );
        }
    }
    while let Some(event) = conn.poll_event() {
        check_event(&event, model);
    }
    if drain {
        while let Some(msg) = conn.poll_transmit() {
            check_sent(msg, model);
        }
        while let Some(event) = conn.poll_event() {
            check_event(&event, model);
        }
    }
    assert_eq!(
        conn.stream_count(),
        model.open.len(),
        "stream count differs from the streams the events left open"
    );
    let states = [
        conn.is_handshaking(),
        conn.is_established(),
        conn.error().is_some(),
    ];
    assert_eq!(states.iter().filter(|s| **s).count(), 1, "phase {states:?}");
    if conn.is_established() {
        let negotiated = conn.negotiated().expect("established without an outcome");
        assert!(!negotiated.downgraded || model.v2, "a v1 client downgraded");
    }
}

fn check_event(event: &Event, model: &mut Model) {
    assert!(!model.closed, "an event after ConnectionClosed: {event:?}");
    match event {
        Event::StreamOpened { id } | Event::StreamData { id, .. } => {
            assert!(model.open.contains(id), "{event:?} for a stream not open");
        }
        Event::StreamWritable { id } => {
            assert!(
                model.issued.contains(id),
                "{event:?} for a stream never opened"
            );
        }
        Event::StreamOpenFailed { id, .. } | Event::StreamClosed { id, .. } => {
            assert!(model.open.remove(id), "{event:?} for a stream not open");
        }
        Event::ConnectionClosed(e) => {
            let _ = e.to_string();
            model.closed = true;
            model.open.clear();
            model.opening.clear();
        }
    }
}

fn check_sent(msg: Bytes, model: &mut Model) {
    let packet = Packet::decode(msg).expect("the client sent a malformed packet");
    match &packet.body {
        PacketBody::Connect(_) => assert!(
            model.issued.contains(&packet.stream_id),
            "CONNECT for an id open_stream did not return"
        ),
        PacketBody::Data(d) => {
            assert!(
                model.issued.contains(&packet.stream_id),
                "DATA on an unknown id"
            );
            if !model.udp.contains(&packet.stream_id) {
                assert!(
                    d.len() <= model.max_payload_len.max(1),
                    "DATA over max_payload_len"
                );
            }
        }
        PacketBody::Close { .. } => {}
        PacketBody::Info(_) => {
            model.infos_sent += 1;
            assert!(model.v2, "a v1 client sent INFO");
            assert_eq!(model.infos_sent, 1, "the client sent a second INFO");
            assert_eq!(packet.stream_id, 0, "client INFO off stream 0");
        }
        other => panic!("the client sent {other:?}"),
    }
}
