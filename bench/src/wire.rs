//! The bytes the bench writes by hand: the few Wisp v1 packets its server and its raw
//! clients build without a Wisp library, and the masked client WebSocket frames of
//! `raw-best` ([`FrameWriter`]).
//!
//! `raw-best` encodes its frames itself because tokio-websockets' `Sink` cannot send a
//! client message without an allocation per message: in the client role it masks the
//! payload in place only when it owns the buffer uniquely (otherwise it copies it), then
//! frees it once written, so a reused buffer can never reach the socket unmasked-and-
//! unshared. [`FrameWriter`] writes header, mask key and masked payload straight into one
//! reused buffer instead: one pass over the payload (copy and mask together), no
//! allocation, and one `write` per flush threshold.

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

/// Masked client WebSocket frames (RFC 6455, binary, FIN set), encoded back to back into
/// one buffer that is reused from flush to flush.
///
/// Each frame gets its own mask key from a xorshift generator seeded from the process's
/// random hash keys (the protocol asks for unpredictable keys; the cost of masking does not
/// depend on the key).
#[derive(Debug)]
pub struct FrameWriter {
    buf: Vec<u8>,
    len: usize,
    rng: u64,
}

impl FrameWriter {
    /// A writer whose buffer starts with room for `capacity` bytes (it grows on demand
    /// and never shrinks).
    pub fn new(capacity: usize) -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x5eed);
        Self {
            buf: vec![0; capacity],
            len: 0,
            rng: h.finish() | 1,
        }
    }

    /// Appends one frame whose payload is `head` followed by `body`.
    pub fn frame(&mut self, head: &[u8], body: &[u8]) {
        let n = head.len() + body.len();
        let mut hdr = [0u8; 14];
        hdr[0] = 0x82;
        let hdr_len = if n < 126 {
            hdr[1] = 0x80 | n as u8;
            2
        } else if let Ok(n16) = u16::try_from(n) {
            hdr[1] = 0x80 | 126;
            hdr[2..4].copy_from_slice(&n16.to_be_bytes());
            4
        } else {
            hdr[1] = 0x80 | 127;
            hdr[2..10].copy_from_slice(&(n as u64).to_be_bytes());
            10
        };
        let key = self.next_key();
        hdr[hdr_len..hdr_len + 4].copy_from_slice(&key);
        let total = hdr_len + 4 + n;
        // Room for the whole 14-byte header array even when the frame is shorter, so it
        // is copied as one fixed-size block (the payload then overwrites the slack).
        if self.len + total.max(hdr.len()) > self.buf.len() {
            self.buf.resize(self.len + total.max(hdr.len()), 0);
        }
        let out = &mut self.buf[self.len..];
        if let Some(h) = out.first_chunk_mut::<14>() {
            *h = hdr;
        }
        let (ph, rest) = out[hdr_len + 4..total].split_at_mut(head.len());
        let pb = rest;
        mask_copy(ph, head, key);
        // The body starts `head.len()` bytes into the payload: rotate the key to match.
        let shift = 8 * (head.len() % 4) as u32;
        let body_key = u32::from_le_bytes(key).rotate_right(shift).to_le_bytes();
        mask_copy(pb, body, body_key);
        self.len += total;
    }

    /// The encoded frames not yet written.
    pub fn pending(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Bytes of encoded frames not yet written.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no frame is pending.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets the pending frames (after they were written); keeps the buffer.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    fn next_key(&mut self) -> [u8; 4] {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        let k = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let [a, b, c, d, ..] = k.to_le_bytes();
        [a, b, c, d]
    }
}

/// Copies `src` into `dst` XORed with the repeating 4-byte `key`, in one pass: 64 bytes
/// at a time against a 64-byte copy of the key, which the compiler turns into vector
/// loads, XORs and stores (SSE2, the x86-64 baseline: safe code cannot choose wider
/// vectors at run time).
pub fn mask_copy(dst: &mut [u8], src: &[u8], key: [u8; 4]) {
    const W: usize = 64;
    debug_assert_eq!(dst.len(), src.len());
    let k8 = u64::from(u32::from_ne_bytes(key)) * 0x0000_0001_0000_0001;
    let lanes = [k8.to_ne_bytes(); W / 8];
    let wide = lanes.as_flattened();
    let (d_chunks, d_rest) = dst.as_chunks_mut::<W>();
    let (s_chunks, s_rest) = src.as_chunks::<W>();
    for (d, s) in d_chunks.iter_mut().zip(s_chunks) {
        for ((d, s), k) in d.iter_mut().zip(s).zip(wide) {
            *d = s ^ k;
        }
    }
    // The remainder starts at a multiple of 4, so the key phase is 0 again.
    for ((d, s), k) in d_rest.iter_mut().zip(s_rest).zip(wide) {
        *d = s ^ k;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{SinkExt, StreamExt};
    use tokio::io::AsyncWriteExt;
    use tokio_websockets::{ClientBuilder, ServerBuilder};

    #[test]
    fn mask_copy_matches_bytewise_masking_at_every_length() {
        let key = [0x12, 0x34, 0x56, 0x78];
        for n in 0..200 {
            let src: Vec<u8> = (0..n as u8).collect();
            let mut dst = vec![0; n];
            mask_copy(&mut dst, &src, key);
            let expect: Vec<u8> = src
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ key[i % 4])
                .collect();
            assert_eq!(dst, expect, "length {n}");
        }
    }

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
        let mut fw = FrameWriter::new(16);
        for (i, body) in bodies.iter().enumerate() {
            fw.frame(&header(DATA, i as u32), body);
        }
        ws.get_mut().write_all(fw.pending()).await.unwrap();
        fw.clear();
        assert!(fw.is_empty());
        let _ = ws.close().await;
        let got = server.await.unwrap();
        assert_eq!(got.len(), bodies.len());
        for (i, (g, b)) in got.iter().zip(&bodies).enumerate() {
            assert_eq!(&g[..HEADER_LEN], &header(DATA, i as u32));
            assert_eq!(&g[HEADER_LEN..], &b[..], "frame {i}");
        }
    }
}
