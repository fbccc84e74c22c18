//! How queued packets are laid out for the transport: [`Framing`], the buffers that hold
//! encoded packets back to back ([`FrameBuf`], and [`Batch`], what a driver takes from the
//! connection in one go), and [`mask_copy`], the one pass that copies and masks a payload.
//!
//! A connection encodes each packet once, when it is queued, straight into a reused buffer:
//! no allocation per packet. With [`Framing::Messages`] the buffer holds length-delimited
//! Wisp packets, which [`ClientConnection::poll_transmit`](crate::ClientConnection::poll_transmit)
//! hands out one message at a time (for a transport that takes whole messages). With
//! [`Framing::WebSocketClient`] it holds finished client WebSocket frames (RFC 6455: binary,
//! FIN set, masked with a fresh key each), so a driver that owns the socket writes a whole
//! [`Batch`] with one system call and nothing is copied or masked again.

use std::hash::{BuildHasher, Hasher};

use crate::codec::{HEADER_LEN, PacketType};

/// How a connection encodes the packets it queues.
#[derive(Clone, Debug, Default)]
pub enum Framing {
    /// One Wisp packet per transport message, handed out by
    /// [`ClientConnection::poll_transmit`](crate::ClientConnection::poll_transmit).
    #[default]
    Messages,
    /// Masked client WebSocket binary frames, taken in batches with
    /// [`ClientConnection::poll_transmit_batch`](crate::ClientConnection::poll_transmit_batch).
    WebSocketClient(MaskKeys),
}

/// The source of WebSocket mask keys: a xorshift64* generator, one key per frame.
///
/// RFC 6455 asks for unpredictable keys (they keep a page's script from choosing the bytes
/// an intermediary sees); the generator is seeded from the process's random hash keys, as
/// fast generators in WebSocket clients are (tokio-websockets uses `fastrand`).
#[derive(Clone, Debug)]
pub struct MaskKeys(u64);

impl MaskKeys {
    /// A generator with this seed (any value; 0 is replaced).
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// The next key.
    #[inline]
    pub fn next_key(&mut self) -> [u8; 4] {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        let [a, b, c, d, ..] = x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
        [a, b, c, d]
    }
}

impl Default for MaskKeys {
    /// A generator seeded from std's per-process random hash keys.
    fn default() -> Self {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x5eed_6d61_736b);
        Self::new(h.finish())
    }
}

/// Buffers larger than this shrink when what they held was far smaller this many times in a
/// row, so one burst does not pin its memory for the connection's life, and batches of
/// varying size do not free and zero the memory again and again.
const SHRINK_ABOVE: usize = 512 * 1024;
const SHRINK_AFTER: u32 = 64;

/// Encoded packets, back to back, in a buffer that is reused: it grows on demand (the new
/// part is zeroed once) and is written into in place afterwards, so filling it again costs
/// neither an allocation nor a pass to initialise it.
///
/// Its `Debug` shows sizes, never bytes: a buffer may hold the client INFO with the password.
#[derive(Clone, Default)]
pub struct FrameBuf {
    buf: Vec<u8>,
    len: usize,
    /// Clears in a row that found the buffer far larger than its contents.
    small_fills: u32,
}

impl std::fmt::Debug for FrameBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameBuf")
            .field("len", &self.len)
            .field("capacity", &self.buf.capacity())
            .finish_non_exhaustive()
    }
}

impl FrameBuf {
    /// The encoded bytes.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Length of the encoded bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Bytes of memory the buffer holds.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Whether nothing is encoded.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets the contents. The memory is kept for the next fill, unless the buffer is
    /// large and has held far less for a while (a burst is over).
    pub fn clear(&mut self) {
        if self.buf.len() > SHRINK_ABOVE && self.len < self.buf.len() / 8 {
            self.small_fills += 1;
            if self.small_fills >= SHRINK_AFTER {
                self.buf.truncate(SHRINK_ABOVE / 2);
                self.buf.shrink_to_fit();
                self.small_fills = 0;
            }
        } else {
            self.small_fills = 0;
        }
        self.len = 0;
    }

    /// Appends raw bytes (already encoded).
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.room(bytes.len())[..bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    /// The next `n` bytes after the contents (at least `min_room`), growing the buffer if
    /// needed. The caller writes them and then advances `len`.
    #[inline]
    fn room_at_least(&mut self, n: usize, min_room: usize) -> &mut [u8] {
        let need = self.len + n.max(min_room);
        if need > self.buf.len() {
            self.grow(need);
        }
        &mut self.buf[self.len..]
    }

    #[inline]
    fn room(&mut self, n: usize) -> &mut [u8] {
        self.room_at_least(n, 0)
    }

    /// Makes an empty buffer ready to hold `n` bytes: fresh zeroed memory when it is
    /// smaller (nothing to copy, and the allocator's zeroed pages need no pass), instead of
    /// doubling packet by packet while it fills. Does nothing to a buffer holding bytes.
    pub fn prepare(&mut self, n: usize) {
        if self.len == 0 && self.buf.len() < n {
            self.buf = vec![0; n.checked_next_power_of_two().unwrap_or(n).max(4096)];
            self.small_fills = 0;
        }
    }

    #[cold]
    fn grow(&mut self, need: usize) {
        let new_len = need.max(2 * self.buf.len()).max(4096);
        self.buf.resize(new_len, 0);
    }

    /// Appends one masked client WebSocket binary frame (FIN set) whose payload is `head`
    /// followed by `body`, masked with `key`.
    #[inline]
    pub fn push_frame(&mut self, key: [u8; 4], head: &[u8], body: &[u8]) {
        let n = head.len() + body.len();
        let rest = self.push_frame_start(n, u128::from(u32::from_le_bytes(key)), 4);
        let (ph, pb) = rest.split_at_mut(head.len());
        mask_copy(ph, head, key);
        // The body starts `head.len()` bytes into the payload: rotate the key to match.
        let shift = 8 * (head.len() % 4) as u32;
        let body_key = u32::from_le_bytes(key).rotate_right(shift).to_le_bytes();
        mask_copy(pb, body, body_key);
    }

    /// Appends the masked client WebSocket frame of one Wisp DATA packet: the packet header
    /// (DATA, `stream_id`), then `body`. [`FrameBuf::push_frame`] for the hot path: the
    /// frame header, the key and the masked packet header are computed in registers and
    /// stored as one block, and the body takes one pass.
    #[inline]
    pub fn push_data_frame(&mut self, key: [u8; 4], stream_id: u32, body: &[u8]) {
        let k = u32::from_le_bytes(key);
        // The packet header's 5 bytes (type, then the id in little-endian order) masked
        // with the key, which repeats every 4 bytes.
        let head = u64::from(PacketType::DATA.0) | u64::from(stream_id) << 8;
        let masked_head = (head ^ (u64::from(k) * 0x1_0000_0001)) & 0xff_ffff_ffff;
        let key_and_head = u128::from(k) | u128::from(masked_head) << 32;
        let rest = self.push_frame_start(HEADER_LEN + body.len(), key_and_head, 4 + HEADER_LEN);
        // The body starts 5 bytes into the payload: the key shifted by one byte.
        mask_copy(rest, body, k.rotate_right(8).to_le_bytes());
    }

    /// Appends a frame of an `n`-byte payload, whose header ends with the `tail_len` bytes
    /// of `tail` (little-endian: the mask key, then the start of the payload already
    /// masked; at most 12 bytes), and returns the room for the rest of the payload. The
    /// header is built in registers and stored as one fixed-size block.
    #[inline(always)]
    fn push_frame_start(&mut self, n: usize, tail: u128, tail_len: usize) -> &mut [u8] {
        const BLOCK: usize = 24;
        const BINARY_FIN: u128 = 0x82;
        // The block: the first 16 bytes, the last 8, and the length of the header proper.
        let (lo, hi, hdr_len) = if n < 126 {
            (BINARY_FIN | (0x80 | n as u128) << 8 | tail << 16, 0, 2)
        } else if let Ok(n16) = u16::try_from(n) {
            (
                BINARY_FIN | 0xfe << 8 | u128::from(n16.to_be()) << 16 | tail << 32,
                0,
                4,
            )
        } else {
            (
                BINARY_FIN | 0xff << 8 | u128::from((n as u64).to_be()) << 16 | tail << 80,
                (tail >> 48) as u64,
                10,
            )
        };
        let total = hdr_len + 4 + n;
        // Room for the whole block even when the frame is shorter (the payload then
        // overwrites the slack).
        let out = self.room_at_least(total, BLOCK);
        if let Some((first, rest)) = out.split_first_chunk_mut::<16>()
            && let Some(last) = rest.first_chunk_mut::<8>()
        {
            *first = lo.to_le_bytes();
            *last = hi.to_le_bytes();
        }
        let start = self.len + hdr_len + tail_len;
        self.len += total;
        &mut self.buf[start..self.len]
    }

    /// Appends one length-delimited message whose bytes are `head` followed by `body`.
    #[inline]
    pub fn push_message(&mut self, head: &[u8], body: &[u8]) {
        const PREFIX: usize = std::mem::size_of::<usize>();
        let n = head.len() + body.len();
        let out = self.room(PREFIX + n);
        out[..PREFIX].copy_from_slice(&n.to_ne_bytes());
        out[PREFIX..PREFIX + head.len()].copy_from_slice(head);
        out[PREFIX + head.len()..PREFIX + n].copy_from_slice(body);
        self.len += PREFIX + n;
    }

    /// The message starting at byte `pos` of a buffer filled by
    /// [`FrameBuf::push_message`], and the position of the next one.
    fn message_at(&self, pos: usize) -> Option<(&[u8], usize)> {
        const PREFIX: usize = std::mem::size_of::<usize>();
        let bytes = self.as_slice().get(pos..)?;
        let (len, rest) = bytes.split_first_chunk::<PREFIX>()?;
        let len = usize::from_ne_bytes(*len);
        let msg = rest.get(..len)?;
        Some((msg, pos + PREFIX + len))
    }
}

/// Packets taken from a connection in one go
/// ([`ClientConnection::poll_transmit_batch`](crate::ClientConnection::poll_transmit_batch)):
/// the control packets (CONNECT, INFO, CLOSE) first, then the DATA, each part encoded back
/// to back. Write [`Batch::parts`] in order.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub(crate) control: FrameBuf,
    pub(crate) data: FrameBuf,
}

impl Batch {
    /// The encoded bytes, in the order they are to be sent.
    #[inline]
    pub fn parts(&self) -> [&[u8]; 2] {
        [self.control.as_slice(), self.data.as_slice()]
    }

    /// Length of both parts.
    #[inline]
    pub fn len(&self) -> usize {
        self.control.len() + self.data.len()
    }

    /// Whether the batch holds nothing.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.control.is_empty() && self.data.is_empty()
    }

    /// Forgets the contents, keeping the buffers (see [`FrameBuf::clear`]).
    pub fn clear(&mut self) {
        self.control.clear();
        self.data.clear();
    }

    /// Makes an empty batch's buffers ready to hold as much as `like` does (see
    /// [`FrameBuf::prepare`]).
    pub fn prepare_like(&mut self, like: &Batch) {
        self.control.prepare(like.control.len());
        self.data.prepare(like.data.len());
    }

    /// Bytes of memory the batch holds.
    pub fn capacity(&self) -> usize {
        self.control.capacity() + self.data.capacity()
    }

    /// The message at position `pos` (counted over both parts) of a batch in
    /// [`Framing::Messages`], and the position of the next one.
    pub(crate) fn message_at(&self, pos: usize) -> Option<(&[u8], usize)> {
        let c = self.control.len();
        if pos < c {
            return self.control.message_at(pos);
        }
        let (msg, next) = self.data.message_at(pos - c)?;
        Some((msg, next + c))
    }
}

/// Copies `src` into `dst` XORed with the repeating 4-byte `key` (WebSocket masking), in one
/// pass: 64 bytes at a time against a 64-byte copy of the key, which the compiler turns
/// into vector loads, XORs and stores (SSE2, the x86-64 baseline: safe code cannot choose
/// wider vectors at run time). `dst` and `src` must have the same length; if not, the
/// shorter decides.
///
/// Never inlined: the loop's code generation then does not depend on the caller (inlined
/// into a large function it was compiled to up to three times as many instructions).
#[inline(never)]
pub fn mask_copy(dst: &mut [u8], src: &[u8], key: [u8; 4]) {
    const W: usize = 64;
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

    /// Decodes one masked frame: (payload, rest).
    fn unframe(b: &[u8]) -> (Vec<u8>, &[u8]) {
        assert_eq!(b[0], 0x82, "binary, FIN");
        assert_eq!(b[1] & 0x80, 0x80, "masked");
        let (n, at) = match b[1] & 0x7f {
            126 => (usize::from(u16::from_be_bytes([b[2], b[3]])), 4),
            127 => (
                usize::try_from(u64::from_be_bytes(b[2..10].try_into().unwrap())).unwrap(),
                10,
            ),
            n => (usize::from(n), 2),
        };
        let key = &b[at..at + 4];
        let payload = b[at + 4..at + 4 + n]
            .iter()
            .enumerate()
            .map(|(i, x)| x ^ key[i % 4])
            .collect();
        (payload, &b[at + 4 + n..])
    }

    #[test]
    fn frames_of_every_length_class_decode_to_their_payloads() {
        let mut keys = MaskKeys::new(7);
        let mut buf = FrameBuf::default();
        let sizes = [0usize, 1, 3, 120, 121, 122, 200, 65530, 65531, 70_000];
        for (i, &n) in sizes.iter().enumerate() {
            let body: Vec<u8> = (0..n).map(|j| (j * 7 + n) as u8).collect();
            buf.push_frame(keys.next_key(), &[2, i as u8, 0, 0, 0], &body);
            buf.push_data_frame(keys.next_key(), 0x0403_0200 + i as u32, &body);
        }
        let mut rest = buf.as_slice();
        for (i, &n) in sizes.iter().enumerate() {
            let body: Vec<u8> = (0..n).map(|j| (j * 7 + n) as u8).collect();
            let (payload, r) = unframe(rest);
            assert_eq!(payload[..5], [2, i as u8, 0, 0, 0]);
            assert_eq!(payload[5..], body[..], "frame {i}");
            let (payload, r) = unframe(r);
            assert_eq!(payload[..5], [2, i as u8, 2, 3, 4]);
            assert_eq!(payload[5..], body[..], "DATA frame {i}");
            rest = r;
        }
        assert!(rest.is_empty());
    }

    #[test]
    fn messages_come_back_in_order_and_a_cleared_buffer_is_reused() {
        let mut b = Batch::default();
        b.control.push_message(b"c", b"0");
        b.data.push_message(b"d", b"");
        b.data.push_message(b"d", b"12");
        let mut pos = 0;
        let mut got = Vec::new();
        while let Some((m, next)) = b.message_at(pos) {
            got.push(m.to_vec());
            pos = next;
        }
        assert_eq!(got, [&b"c0"[..], b"d", b"d12"]);
        let cap = b.data.buf.len();
        b.clear();
        assert!(b.is_empty() && b.message_at(0).is_none());
        b.data.push_message(b"x", b"");
        assert_eq!(b.data.buf.len(), cap, "no new memory");
    }

    #[test]
    fn an_empty_buffer_is_prepared_for_the_size_of_its_twin_and_a_full_one_is_left_alone() {
        let mut a = Batch::default();
        a.data.extend_from_slice(&[7; 5000]);
        let mut b = Batch::default();
        b.prepare_like(&a);
        assert!(b.data.buf.len() >= 5000 && b.is_empty());
        assert_eq!(b.control.buf.len(), 0, "nothing to prepare for");
        let before = a.data.buf.len();
        a.data.prepare(1 << 20);
        assert_eq!(
            a.data.buf.len(),
            before,
            "a buffer holding bytes keeps them"
        );
        assert_eq!(a.data.as_slice(), &[7; 5000][..]);
    }

    #[test]
    fn a_large_buffer_shrinks_after_a_run_of_small_fills() {
        let mut f = FrameBuf::default();
        f.extend_from_slice(&vec![1; 4 * SHRINK_ABOVE]);
        f.clear();
        assert_eq!(
            f.buf.len(),
            4 * SHRINK_ABOVE,
            "a full fill keeps its memory"
        );
        for _ in 1..SHRINK_AFTER {
            f.extend_from_slice(&[1; 10]);
            f.clear();
        }
        assert_eq!(f.buf.len(), 4 * SHRINK_ABOVE, "not yet");
        f.extend_from_slice(&[1; 10]);
        f.clear();
        assert!(f.buf.len() <= SHRINK_ABOVE);
    }
}
