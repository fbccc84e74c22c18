//! An in-test scripted Wisp server over a real loopback WebSocket.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_websockets::{ClientBuilder, Message, ServerBuilder, WebSocketStream};
use wisp_client::extensions::WispV2Handshake;
use wisp_client::proto::{ExtensionId, ExtensionRecord, InfoPacket, Packet, WispVersion};
use wisp_client::transport::{BatchedStream, TokioWebsocketsTransport, TransportExt};
use wisp_client::{ClientMux, MuxOptions, MuxResult, WispError};
use wisp_testkit::vtime::{Tracked, tracked_pair};

/// How long the scripted peer waits for a client packet before failing the test. Under a
/// paused clock this is virtual time.
pub const RECV_BOUND: Duration = Duration::from_secs(30);

/// The server side of one WebSocket.
pub struct Peer {
    ws: WebSocketStream<Tracked<TcpStream>>,
    /// The `Sec-WebSocket-Protocol` the client offered.
    pub offered_subprotocol: Option<String>,
}

impl Peer {
    /// Sends one binary message.
    pub async fn send_raw(&mut self, bytes: impl Into<Bytes>) {
        self.ws
            .send(Message::binary(bytes.into()))
            .await
            .expect("peer send");
    }

    /// Sends one packet.
    pub async fn send(&mut self, packet: Packet) {
        self.send_raw(packet.to_bytes()).await;
    }

    /// Sends a packet given as hex.
    pub async fn send_hex(&mut self, hex_str: &str) {
        let clean: String = hex_str.chars().filter(|c| !c.is_whitespace()).collect();
        self.send_raw(Bytes::from(hex::decode(clean).expect("hex")))
            .await;
    }

    /// Sends a text frame.
    pub async fn send_text(&mut self, text: &'static str) {
        self.ws
            .send(Message::text(text))
            .await
            .expect("peer send text");
    }

    /// The next binary message from the client; `None` when it closed the WebSocket.
    pub async fn recv_raw(&mut self) -> Option<Bytes> {
        loop {
            let next = tokio::time::timeout(RECV_BOUND, self.ws.next())
                .await
                .expect("the client sent nothing within the bound");
            match next {
                Some(Ok(msg)) if msg.is_binary() => return Some(msg.into_payload().into()),
                Some(Ok(msg)) if msg.is_close() => return None,
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// The next packet from the client, decoded.
    pub async fn recv(&mut self) -> Packet {
        let raw = self
            .recv_raw()
            .await
            .expect("the client closed the WebSocket");
        Packet::decode(raw).expect("the client sent a malformed packet")
    }

    /// Asserts the client sends nothing for `d` (virtual time under a paused clock).
    pub async fn expect_nothing(&mut self, d: Duration) {
        if let Ok(next) = tokio::time::timeout(d, self.ws.next()).await {
            panic!("expected silence, got {next:?}");
        }
    }

    /// Closes the WebSocket with a close frame.
    pub async fn close(mut self) {
        let _ = self.ws.close().await;
    }

    /// Drops the TCP connection without a close frame.
    pub fn drop_tcp(self) {
        drop(self.ws.into_inner());
    }
}

/// An INFO from the server with these records.
pub fn info(records: Vec<(ExtensionId, Bytes)>) -> Packet {
    Packet::info(InfoPacket::new(
        WispVersion::V2,
        records
            .into_iter()
            .map(|(id, data)| ExtensionRecord { id, data })
            .collect(),
    ))
}

/// The client side of a test connection.
pub type ClientTransport = TokioWebsocketsTransport<BatchedStream<Tracked<TcpStream>>>;

/// How the client is handed its WebSocket.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// Split into a read and a write half for `ClientMux::new_with_options`: one packet
    /// per message through the transport traits.
    Split,
    /// Whole, to `ClientMux::new_websocket` (the path of `ClientMux::connect`): the
    /// driver owns the WebSocket and writes batches of frames.
    Owned,
}

/// A loopback WebSocket (over [`Tracked`] TCP, so a paused clock stays deterministic) with
/// the scripted server on one end. `v2` offers the subprotocol.
pub async fn connected(v2: bool) -> (Peer, ClientTransport) {
    connected_with(v2, None).await
}

/// [`connected`] with a client-side message size limit.
pub async fn connected_with(v2: bool, max_message: Option<usize>) -> (Peer, ClientTransport) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let (client_end, server_end) = tracked_pair(&listener).await.unwrap();
    let accept = async {
        let (req, ws) = ServerBuilder::new().accept(server_end).await.unwrap();
        let offered_subprotocol = req
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Peer {
            ws,
            offered_subprotocol,
        }
    };
    let connect = async {
        let mut builder = ClientBuilder::new().uri(&url).unwrap();
        if v2 {
            builder = builder
                .add_header(
                    http::HeaderName::from_static("sec-websocket-protocol"),
                    http::HeaderValue::from_static("wisp-v2"),
                )
                .unwrap();
        }
        if let Some(max) = max_message {
            builder =
                builder.limits(tokio_websockets::Limits::default().max_payload_len(Some(max)));
        }
        builder
            .connect_on(BatchedStream::new(client_end))
            .await
            .unwrap()
            .0
    };
    let (peer, ws) = tokio::join!(accept, connect);
    (peer, TokioWebsocketsTransport(ws))
}

/// Starts a client handshake in a task ([`Mode::Split`]); the test scripts the peer
/// meanwhile.
pub async fn start_client(
    v2: Option<WispV2Handshake>,
    options: MuxOptions,
) -> (Peer, tokio::task::JoinHandle<Result<MuxResult, WispError>>) {
    start_client_in(Mode::Split, v2, options).await
}

/// [`start_client`] with the WebSocket handed over in `mode`.
pub async fn start_client_in(
    mode: Mode,
    v2: Option<WispV2Handshake>,
    options: MuxOptions,
) -> (Peer, tokio::task::JoinHandle<Result<MuxResult, WispError>>) {
    let (peer, conn) = connected(v2.is_some()).await;
    let handle = match mode {
        Mode::Split => {
            let (rx, tx) = conn.split_fast();
            tokio::spawn(ClientMux::new_with_options(rx, tx, v2, options))
        }
        Mode::Owned => tokio::spawn(ClientMux::new_websocket(conn, v2, options)),
    };
    (peer, handle)
}

/// The peer, the mux and its spawned driver.
pub type Session = (
    Peer,
    ClientMux,
    tokio::task::JoinHandle<Result<(), WispError>>,
);

/// A v1 client with `credit`, its mux spawned ([`Mode::Split`]).
pub async fn v1_session(credit: u32, options: MuxOptions) -> Session {
    v1_session_in(Mode::Split, credit, options).await
}

/// [`v1_session`] with the WebSocket handed over in `mode`.
pub async fn v1_session_in(mode: Mode, credit: u32, options: MuxOptions) -> Session {
    let (mut peer, client) = start_client_in(mode, None, options).await;
    peer.send(Packet::continue_(0, credit)).await;
    let (mux, driver) = client.await.unwrap().unwrap().with_no_required_extensions();
    (peer, mux, tokio::spawn(driver))
}
