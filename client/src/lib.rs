//! A Wisp client multiplexor: many TCP and UDP streams over one WebSocket.
//!
//! [Wisp](https://github.com/MercuryWorkshop/wisp-protocol) is the protocol web proxies and
//! in-browser network stacks (epoxy-tls, wisp-js, wisp-server-python) speak. This crate
//! implements the client side of Wisp v1.2 and v2 (draft 6, and the older handshake orders
//! deployed servers still use), with every v2 extension: UDP, password and Ed25519
//! certificate authentication, MOTD and stream-open confirmation.
//!
//! # Example
//!
//! ```no_run
//! use bytes::Bytes;
//! use futures::{SinkExt, StreamExt};
//! use wisp_client::extensions::{MotdExtensionBuilder, UdpExtensionBuilder};
//! use wisp_client::{ClientMux, MuxOptions, StreamType, WispError, WispV2Handshake};
//!
//! # async fn run() -> Result<(), WispError> {
//! let handshake = WispV2Handshake::new([UdpExtensionBuilder.into(), MotdExtensionBuilder.into()]);
//! let (mux, driver) = ClientMux::connect("ws://127.0.0.1:6001/", Some(handshake), MuxOptions::default())
//!     .await?
//!     .with_no_required_extensions();
//! // The driver owns the WebSocket: nothing moves until it runs.
//! tokio::spawn(driver);
//!
//! println!("v{}, downgraded: {}, MOTD: {:?}", mux.version(), mux.was_downgraded(), mux.motd());
//!
//! let mut stream = mux.new_stream(StreamType::TCP, "example.com", 80).await?;
//! stream.send(Bytes::from_static(b"GET / HTTP/1.0\r\nHost: example.com\r\n\r\n")).await?;
//! while let Some(chunk) = stream.next().await {
//!     print!("{}", String::from_utf8_lossy(&chunk?));
//! }
//! println!("closed with {:?}", stream.get_close_reason());
//! mux.close().await?;
//! # Ok(())
//! # }
//! ```
//!
//! The seed API's spellings work as well (`StreamType::Tcp`, `CloseReason::Voluntary`):
//! `examples/simple_wisp_client.rs` is epoxy's `simple-wisp-client` load generator written
//! against this crate.
//!
//! Streams are also byte streams: [`MuxStream::into_tokio_io`] gives a tokio
//! `AsyncRead + AsyncBufRead + AsyncWrite` (for `tokio::io::copy`, TLS connectors, hyper), and
//! [`MuxStream::into_async_rw`] the futures-io equivalent.
//!
//! # Design
//!
//! The protocol lives in [`proto`], the sans-IO core (the `wisp-proto` crate, which has no
//! tokio dependency): [`proto::ClientConnection`] takes WebSocket messages and time in and
//! gives packets and events out, with no socket or clock inside; each v2 extension is one
//! module of [`proto::ext`]. This crate is the tokio driver around it. [`ClientMux::new`]
//! polls the one driver future ([`MultiplexorActorFuture`], which owns the WebSocket)
//! through the handshake, then hands it back with the mux handle. Streams write through
//! the core (which enforces credit) and wake the driver, which batches queued packets into
//! one flush. Each stream's DATA waits in its own queue and busy streams send one packet
//! each in turn, so a fast writer cannot starve the others and a new stream's CONNECT goes
//! out ahead of queued DATA.
//!
//! # Behaviour worth knowing
//!
//! - **Versions.** `None` as handshake speaks v1. `Some` speaks v2 and accepts three server
//!   orders: INFO then (after the client INFO) CONTINUE (draft 6), INFO then an immediate
//!   CONTINUE (drafts 4–5), and CONTINUE then INFO (drafts 1–3, wisp-mux 5.x; the client waits
//!   [`MuxOptions::legacy_info_wait`] for that INFO; any other packet in that window settles
//!   it at once). A server that only sends CONTINUE is v1: [`ClientMux::was_downgraded`] is
//!   then true. A late INFO on a v1 connection is ignored. A v1 client (`None`, no
//!   subprotocol offered) whose server sends INFO and no CONTINUE(0) within
//!   [`MuxOptions::legacy_info_wait`] fails with [`WispError::IncompatibleProtocolVersion`]
//!   (2.x found, 1.2 spoken) and sends CLOSE(0, 0x04): by draft 5+ a server may speak v2
//!   only to a client that offered `Sec-WebSocket-Protocol`, so such a server demands v2,
//!   and a v1 client never answers an INFO.
//! - **Password layout.** Unless [`extensions::PasswordExtensionBuilder::layout`] pins it,
//!   the password record's layout follows the server's handshake order: CONTINUE(0) before
//!   INFO (drafts 1–3, the deployed servers that check passwords) gets the draft-5 layout,
//!   INFO first gets draft 6 ([`proto::PasswordLayout::for_order`]).
//! - **Required extensions.** Extensions required with
//!   [`extensions::WispV2Handshake::with_required_extension`] are checked on the server's INFO
//!   before the client INFO is sent, and also when the server answers as v1 (only UDP is
//!   implied by v1): a missing one sends CLOSE(0, 0x04) and fails with
//!   [`WispError::ExtensionsNotSupported`].
//! - **Flow control.** Each TCP stream starts with the handshake credit; one DATA packet takes
//!   one credit on every write path; a CONTINUE sets (not adds to) the credit, minus the
//!   stream's packets still queued in the client. UDP is never flow-controlled and a UDP
//!   datagram is never split. TCP payloads longer than [`MuxOptions::max_payload_len`] are
//!   split.
//! - **Fairness.** Busy streams take turns one packet at a time on the WebSocket, and a new
//!   stream's CONNECT goes ahead of queued data.
//! - **Close.** Dropping both halves of an open stream sends CLOSE 0x02. Data that arrived
//!   before a CLOSE is read before the end of the stream. CLOSE reasons are an open code
//!   space ([`proto::CloseReason`]): unknown values are kept, never fatal. CLOSE on stream 0 or
//!   the end of the WebSocket ends every stream with the error that says why; a write that
//!   fails because the server just closed does not hide the server's CLOSE(0) (the driver
//!   reads on after a write error). [`ClientMux::close`] on a connection that is already
//!   over is `Ok`; [`ClientMux::close_error`] keeps why it ended.
//! - **Memory.** Stream maps and queues shrink once they fall to a quarter of their
//!   capacity ([`proto::reclaim`]), so a burst of streams does not pin its memory.
//! - **Hostile input.** Truncated packets end the connection with
//!   [`WispError::MalformedPacket`]; unknown packet types, text frames, packets for unknown
//!   streams and INFO after the handshake are ignored. Nothing a server sends can panic
//!   the client, and every wait (TCP connect, TLS, upgrade, handshake, stream confirmation,
//!   close) is bounded.

mod alloc;
mod driver;
pub mod error;
pub mod extensions;
mod mux;
mod shared;
pub mod stream;
pub mod transport;

/// The sans-IO protocol core (the `wisp-proto` crate).
pub use wisp_proto as proto;

pub use driver::MultiplexorActorFuture;
pub use error::WispError;
pub use extensions::WispV2Handshake;
pub use mux::{ClientMux, MuxResult};
/// The protocol types applications name, at the root as in the seed API (`StreamType::Tcp`
/// and `CloseReason::Voluntary` are accepted spellings).
pub use proto::{CloseReason, MuxOptions, StreamType, WispVersion};
pub use stream::{
    MuxStream, MuxStreamAsyncRW, MuxStreamRead, MuxStreamTokioIo, MuxStreamWrite, StreamEnd,
};
