//! The bytes the bench writes by hand: the few Wisp v1 packets its server and its raw
//! clients build without a Wisp library.
//!
//! `raw-best` encodes its masked client WebSocket frames with the same encoder ours uses,
//! `wisp_client::proto::FrameBuf` (`push_frame`, `push_data_frame`): tokio-websockets'
//! `Sink` cannot send a client message without an allocation per message (in the client
//! role it masks the payload in place only when it owns the buffer uniquely, otherwise it
//! copies it, then frees it once written). The encoder writes header, mask key and masked
//! payload straight into one reused buffer instead: one pass over the payload (copy and
//! mask together), no allocation.

use bytes::{BufMut, Bytes, BytesMut};

/// Wisp packet type CONNECT.
pub const CONNECT: u8 = 0x01;
/// Wisp packet type DATA.
pub const DATA: u8 = 0x02;
/// Wisp packet type CONTINUE.
pub const CONTINUE: u8 = 0x03;
/// Wisp packet type CLOSE.
pub const CLOSE: u8 = 0x04;
/// Wisp stream type TCP.
pub const STREAM_TCP: u8 = 0x01;
/// Length of a Wisp packet header (type and stream id).
pub const HEADER_LEN: usize = 5;

/// The 5-byte header of a Wisp packet.
pub fn header(packet_type: u8, stream_id: u32) -> [u8; HEADER_LEN] {
    let id = stream_id.to_le_bytes();
    [packet_type, id[0], id[1], id[2], id[3]]
}

/// A CONNECT packet for a TCP stream to `host:port`.
pub fn connect_packet(stream_id: u32, host: &str, port: u16) -> Bytes {
    let mut b = BytesMut::with_capacity(HEADER_LEN + 3 + host.len());
    b.put_slice(&header(CONNECT, stream_id));
    b.put_u8(STREAM_TCP);
    b.put_u16_le(port);
    b.put_slice(host.as_bytes());
    b.freeze()
}

/// A CONTINUE packet granting `credit` packets on `stream_id` (0: the initial one).
pub fn continue_packet(stream_id: u32, credit: u32) -> Bytes {
    let mut b = BytesMut::with_capacity(HEADER_LEN + 4);
    b.put_slice(&header(CONTINUE, stream_id));
    b.put_u32_le(credit);
    b.freeze()
}

/// A DATA packet.
pub fn data_packet(stream_id: u32, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(HEADER_LEN + payload.len());
    b.put_slice(&header(DATA, stream_id));
    b.put_slice(payload);
    b.freeze()
}

/// A parsed server-to-client packet as far as the raw clients care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// CONTINUE(stream, credit).
    Continue(u32, u32),
    /// DATA(stream, payload).
    Data(u32, &'a [u8]),
    /// CLOSE(stream, reason).
    Close(u32, u8),
    /// Anything else (including packets too short for their type).
    Other,
}

/// Parses the packets the raw clients react to; never panics on short or unknown input.
pub fn parse(packet: &[u8]) -> Incoming<'_> {
    let Some((&[kind, a, b, c, d], body)) = packet.split_first_chunk::<HEADER_LEN>() else {
        return Incoming::Other;
    };
    let id = u32::from_le_bytes([a, b, c, d]);
    match (kind, body) {
        (CONTINUE, &[a, b, c, d, ..]) => Incoming::Continue(id, u32::from_le_bytes([a, b, c, d])),
        (DATA, body) => Incoming::Data(id, body),
        (CLOSE, &[reason, ..]) => Incoming::Close(id, reason),
        _ => Incoming::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{SinkExt, StreamExt};
    use tokio::io::AsyncWriteExt;
    use tokio_websockets::{ClientBuilder, ServerBuilder};
    use wisp_client::proto::{FrameBuf, MaskKeys};

    #[test]
    fn parse_never_panics_and_reads_what_the_server_sends() {
        assert_eq!(parse(&continue_packet(7, 128)), Incoming::Continue(7, 128));
        assert_eq!(parse(&data_packet(1, b"ok")), Incoming::Data(1, b"ok"));
        for n in 0..9 {
            let p = continue_packet(7, 128);
            let _ = parse(&p[..n]);
        }
        assert_eq!(parse(&[CONTINUE, 0, 0, 0, 0, 1]), Incoming::Other);
    }

    /// Frames of every length class, written straight to the socket, arrive at a
    /// tokio-websockets server as the same messages.
    #[tokio::test]
    async fn a_tokio_websockets_server_reads_the_frames_unmasked() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let (_, mut ws) = ServerBuilder::new().accept(tcp).await.unwrap();
            let mut got = Vec::new();
            while let Some(Ok(msg)) = ws.next().await {
                if msg.is_binary() {
                    got.push(msg.as_payload().to_vec());
                }
            }
            got
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let uri = format!("ws://{addr}/");
        let (mut ws, _) = ClientBuilder::new()
            .uri(&uri)
            .unwrap()
            .connect_on(tcp)
            .await
            .unwrap();
        let sizes = [0usize, 1, 3, 120, 121, 122, 200, 65530, 65531, 70_000];
        let bodies: Vec<Vec<u8>> = sizes
            .iter()
            .map(|&n| (0..n).map(|i| (i * 7 + n) as u8).collect())
            .collect();
        let mut frames = FrameBuf::default();
        let mut keys = MaskKeys::default();
        for (i, body) in bodies.iter().enumerate() {
            frames.push_data_frame(keys.next_key(), i as u32, body);
        }
        ws.get_mut().write_all(frames.as_slice()).await.unwrap();
        let _ = ws.close().await;
        let got = server.await.unwrap();
        assert_eq!(got.len(), bodies.len());
        for (i, (g, b)) in got.iter().zip(&bodies).enumerate() {
            assert_eq!(&g[..HEADER_LEN], &header(DATA, i as u32));
            assert_eq!(&g[HEADER_LEN..], &b[..], "frame {i}");
        }
    }
}
