//! The transmit queue: packets encoded as they are queued, taken by the driver a batch at a
//! time.
//!
//! Every packet is encoded once, when it is queued, into the live [`Batch`] (see
//! [`crate::frames`]), which has a front part and a data part; the driver takes the whole
//! batch at once and sends the front first. Into the front go control packets (CONNECT,
//! INFO, a CLOSE of a stream with nothing queued) and the first DATA of a stream that had
//! nothing in the batch before (a new stream, or one that was idle: like the new-flow queue
//! of fq_codel, an interactive stream does not wait behind the bulk of busy ones); the
//! rest of the DATA, and a CLOSE that follows a stream's queued DATA, go into the data
//! part. So a new stream's CONNECT and first DATA wait for no more than the batch already
//! being written. Each stream's packets stay in order. CLOSE(0), which ends the connection,
//! goes out alone after everything else.
//!
//! Fairness comes from admission: a busy stream may add at most its fair share of the limit
//! to a batch (the limit divided by the number of streams writing, in this batch or lately),
//! and a stream with nothing in the batch may always add one packet. So every busy
//! stream gets its share of every batch, whichever writer task the runtime runs first, and
//! a batch exceeds the limit by at most one packet per stream (the first packets). Writers refused for lack of
//! room are reported writable when the driver takes the batch; they fill the next batch
//! while the driver writes this one.

use std::fmt;

use bytes::Bytes;

use crate::codec::{HEADER_LEN, PacketType};
use crate::frames::{Batch, Framing};
use crate::reclaim::Reclaim;

/// A stream's part of the live batch. It describes batch number `epoch`; when that is not
/// the live batch, the stream has nothing queued.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StreamTx {
    epoch: u64,
    packets: u32,
    bytes: usize,
    /// Refused since the batch was last taken (listed in `SendQueue::blocked`).
    blocked: bool,
}

/// The transmit queue of a connection. See the module documentation.
///
/// Its `Debug` shows sizes, never packets: the client INFO waiting here carries the password.
pub(crate) struct SendQueue {
    framing: Framing,
    /// The admission limit, in packet bytes.
    limit: usize,
    /// Twice the limit: past it, no stream adds more than its first packet.
    cap: usize,
    batch: Batch,
    /// Packet bytes in `batch` (framing not counted).
    bytes: usize,
    /// The connection-ending CLOSE(0), sent after everything else.
    last: Option<Bytes>,
    /// The live batch's number (starts at 2, so a default `StreamTx` is neither current nor
    /// the previous batch's).
    epoch: u64,
    /// Streams with a packet in the live batch.
    active: usize,
    /// How many streams are busy: the most that wrote in one batch lately. It falls by an
    /// eighth per batch, so a batch that only some writers reached (the runtime ran the
    /// driver before the others) does not hand the whole next one to whoever comes first.
    busy: usize,
    /// What one stream may add to the live batch after its first packet.
    quota: usize,
    /// Streams refused since the batch was last taken.
    blocked: Vec<u32>,
    /// Streams to report writable, for [`SendQueue::next_writable`].
    writable: Vec<u32>,
    /// [`Framing::Messages`]: the batch [`SendQueue::pop_message`] hands out, and the
    /// position of its next message.
    taken: Batch,
    taken_pos: usize,
}

impl fmt::Debug for SendQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendQueue")
            .field("bytes", &self.bytes())
            .field("batch_len", &self.batch.len())
            .field("close_zero_queued", &self.last.is_some())
            .field("streams_in_batch", &self.active)
            .field("blocked", &self.blocked.len())
            .finish_non_exhaustive()
    }
}

impl SendQueue {
    /// An empty queue admitting up to `limit` packet bytes per batch.
    pub(crate) fn new(framing: Framing, limit: usize) -> Self {
        Self {
            framing,
            limit,
            cap: limit.saturating_mul(2),
            batch: Batch::default(),
            bytes: 0,
            last: None,
            epoch: 2,
            active: 0,
            busy: 0,
            quota: limit,
            blocked: Vec::new(),
            writable: Vec::new(),
            taken: Batch::default(),
            taken_pos: 0,
        }
    }

    /// Switches the encoding. Packets already queued keep theirs, so this is for a queue
    /// that is still empty.
    pub(crate) fn set_framing(&mut self, framing: Framing) {
        self.framing = framing;
    }

    /// The encoding.
    #[inline]
    pub(crate) fn framing(&self) -> &Framing {
        &self.framing
    }

    /// Packet bytes queued and not yet taken (in [`Framing::Messages`], not yet handed out).
    #[inline]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
            + self.taken.len().saturating_sub(self.taken_pos)
            + self.last.as_ref().map_or(0, Bytes::len)
    }

    /// Whether the live batch is at the limit.
    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        self.bytes >= self.limit
    }

    /// Whether the stream `tx` may queue a packet now: its first in the live batch always,
    /// more while it is under its share. Each stream overshoots its share by at most one
    /// packet, so the batch stays under twice the limit whenever the shares admit a second
    /// packet at all; that bound only bites in the batch in which more streams start
    /// writing than in the one before (their shares shrink as they arrive).
    #[inline]
    pub(crate) fn admits(&self, tx: &StreamTx) -> bool {
        tx.epoch != self.epoch || (tx.bytes < self.quota && self.bytes < self.cap)
    }

    /// Packets of the stream `tx` in the live batch.
    #[inline]
    pub(crate) fn queued_packets(&self, tx: &StreamTx) -> u32 {
        if tx.epoch == self.epoch {
            tx.packets
        } else {
            0
        }
    }

    /// Remembers that stream `id` was refused, so it is reported writable when the batch
    /// is taken.
    pub(crate) fn mark_blocked(&mut self, id: u32, tx: &mut StreamTx) {
        if !tx.blocked {
            tx.blocked = true;
            self.blocked.push(id);
        }
    }

    /// A stream whose refused writer may write again, reported once.
    pub(crate) fn next_writable(&mut self) -> Option<u32> {
        let id = self.writable.pop();
        self.writable.reclaim();
        id
    }

    /// Queues a control packet (sent before the DATA of its batch).
    pub(crate) fn push_control(&mut self, packet: &[u8]) {
        self.bytes += packet.len();
        encode(&mut self.framing, &mut self.batch.control, packet, &[]);
    }

    /// Queues the packet that ends the connection (sent after everything else).
    pub(crate) fn push_last(&mut self, packet: Bytes) {
        self.last = Some(packet);
    }

    /// Queues a DATA packet of stream `id` (`tx`) carrying `body`. Inlined into its one
    /// caller, the per-packet write path.
    #[inline(always)]
    pub(crate) fn push_data(&mut self, id: u32, tx: &mut StreamTx, body: &[u8]) {
        let n = HEADER_LEN + body.len();
        let data = if tx.epoch == self.epoch {
            &mut self.batch.data
        } else {
            // The stream's first packet in this batch; with nothing in the one before
            // either, it goes to the front.
            let front = tx.epoch + 1 < self.epoch;
            tx.epoch = self.epoch;
            tx.packets = 0;
            tx.bytes = 0;
            self.active += 1;
            if self.active > self.busy {
                self.quota = self.limit / self.active;
            }
            if front {
                &mut self.batch.control
            } else {
                &mut self.batch.data
            }
        };
        tx.packets += 1;
        tx.bytes += n;
        self.bytes += n;
        match &mut self.framing {
            Framing::WebSocketClient(keys) => data.push_data_frame(keys.next_key(), id, body),
            Framing::Messages => {
                let mut head = [0; HEADER_LEN];
                head[0] = PacketType::DATA.0;
                head[1..].copy_from_slice(&id.to_le_bytes());
                data.push_message(&head, body);
            }
        }
    }

    /// Queues the CLOSE of the stream `tx` (`None`: a stream that never queued anything):
    /// behind its DATA in the live batch, or as a control packet when it has none there
    /// (its earlier DATA, if any, was taken before).
    pub(crate) fn push_close(&mut self, tx: Option<&StreamTx>, packet: &[u8]) {
        if tx.is_some_and(|tx| self.queued_packets(tx) > 0) {
            self.bytes += packet.len();
            encode(&mut self.framing, &mut self.batch.data, packet, &[]);
        } else {
            self.push_control(packet);
        }
    }

    /// Moves the live batch into `out` (which must be empty; its buffers become the next
    /// live batch's) and reports the refused streams writable. When nothing else is
    /// queued, the connection-ending CLOSE(0) is the batch. Returns whether anything was
    /// taken.
    pub(crate) fn take(&mut self, out: &mut Batch) -> bool {
        out.clear();
        if self.batch.is_empty() {
            let Some(last) = self.last.take() else {
                return false;
            };
            encode(&mut self.framing, &mut out.control, &last, &[]);
            return true;
        }
        std::mem::swap(&mut self.batch, out);
        // The live batch and the driver's take turns: the next one will hold about as much
        // as this one, so its buffers grow now, while empty, and both stop growing together.
        self.batch.prepare_like(out);
        self.bytes = 0;
        self.epoch += 1;
        self.busy = self.active.max(self.busy - self.busy / 8);
        self.active = 0;
        self.quota = self.limit / self.busy.max(1);
        // Each id is listed once per batch (`StreamTx::blocked`); the connection checks the
        // stream still exists and clears its flag.
        self.writable.append(&mut self.blocked);
        // After a burst of refused streams the list's capacity goes back.
        self.blocked.reclaim();
        true
    }

    /// Bytes of memory the queue's buffers hold.
    pub(crate) fn capacity(&self) -> usize {
        self.batch.capacity() + self.taken.capacity()
    }

    /// Frees the buffers of a queue that holds nothing (memory grown for a burst).
    pub(crate) fn release_buffers(&mut self) {
        if self.batch.is_empty() {
            self.batch = Batch::default();
        }
        if self.taken_pos >= self.taken.len() {
            self.taken = Batch::default();
            self.taken_pos = 0;
        }
    }

    /// [`Framing::Messages`]: the next packet, taking a batch when the last one has been
    /// handed out.
    pub(crate) fn pop_message(&mut self) -> Option<Bytes> {
        loop {
            if let Some((msg, next)) = self.taken.message_at(self.taken_pos) {
                self.taken_pos = next;
                return Some(Bytes::copy_from_slice(msg));
            }
            let mut taken = std::mem::take(&mut self.taken);
            self.taken_pos = 0;
            let took = self.take(&mut taken);
            self.taken = taken;
            if !took {
                return None;
            }
        }
    }
}

/// Appends one packet (`head` then `body`) to `buf` in the connection's framing.
#[inline]
fn encode(framing: &mut Framing, buf: &mut crate::frames::FrameBuf, head: &[u8], body: &[u8]) {
    match framing {
        Framing::Messages => buf.push_message(head, body),
        Framing::WebSocketClient(keys) => buf.push_frame(keys.next_key(), head, body),
    }
}

/// Clears the blocked flag of a stream reported writable.
pub(crate) fn clear_blocked(tx: &mut StreamTx) -> bool {
    std::mem::take(&mut tx.blocked)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The messages, DATA shown as its payload.
    fn drain(q: &mut SendQueue) -> Vec<String> {
        std::iter::from_fn(|| q.pop_message())
            .map(|b| match b.split_first() {
                Some((2, _)) => String::from_utf8_lossy(&b[HEADER_LEN..]).into_owned(),
                _ => String::from_utf8_lossy(&b).into_owned(),
            })
            .collect()
    }

    #[test]
    fn control_packets_and_first_packets_go_to_the_front_and_close_zero_last() {
        let mut q = SendQueue::new(Framing::Messages, usize::MAX);
        let (mut a, mut b, mut c) = Default::default();
        // New streams: each one's first packet goes to the front.
        q.push_data(1, &mut a, b"a0");
        q.push_data(2, &mut b, b"b0");
        q.push_data(1, &mut a, b"a1");
        assert!(q.admits(&a), "an unbounded limit does not overflow");
        assert_eq!(drain(&mut q), ["a0", "b0", "a1"]);
        // `a` wrote in the last batch, so it queues behind; the new stream `c` goes ahead.
        q.push_last(Bytes::from_static(b"close0"));
        q.push_data(1, &mut a, b"a2");
        q.push_control(b"connect3");
        q.push_data(3, &mut c, b"c0");
        q.push_data(3, &mut c, b"c1");
        q.push_close(Some(&a), b"close1");
        q.push_close(None, b"close4");
        assert_eq!(
            drain(&mut q),
            ["connect3", "c0", "close4", "a2", "c1", "close1", "close0"]
        );
        assert_eq!(q.bytes(), 0);
        // `b` was idle for a batch: its next packet goes to the front again.
        q.push_data(1, &mut a, b"a3");
        q.push_data(2, &mut b, b"b1");
        assert_eq!(drain(&mut q), ["b1", "a3"]);
    }

    #[test]
    fn a_close_after_data_already_taken_is_a_control_packet() {
        let mut q = SendQueue::new(Framing::Messages, usize::MAX);
        let mut a = StreamTx::default();
        q.push_data(1, &mut a, b"a0");
        let mut out = Batch::default();
        assert!(q.take(&mut out));
        assert_eq!(q.queued_packets(&a), 0);
        q.push_control(b"c");
        q.push_close(Some(&a), b"close1");
        assert_eq!(drain(&mut q), ["c", "close1"]);
    }

    #[test]
    fn a_stream_gets_its_share_of_a_batch_and_one_packet_whatever_the_total() {
        // DATA packets of 7 bytes: 4 fill the limit.
        let mut q = SendQueue::new(Framing::Messages, 28);
        let (mut a, mut b, mut c) = Default::default();
        for _ in 0..4 {
            assert!(q.admits(&a));
            q.push_data(1, &mut a, b"a0");
        }
        assert!(!q.admits(&a), "alone, a may fill the whole batch");
        q.mark_blocked(1, &mut a);
        q.mark_blocked(1, &mut a);
        assert!(
            q.admits(&b),
            "a stream with nothing queued always gets one packet"
        );
        q.push_data(2, &mut b, b"b0");
        let mut out = Batch::default();
        assert!(q.take(&mut out));
        assert_eq!(
            q.next_writable(),
            Some(1),
            "reported once when the batch is taken"
        );
        assert_eq!(q.next_writable(), None);
        assert!(clear_blocked(&mut a));
        // Two streams wrote in the last batch: each may now add half the limit.
        for tx in [&mut a, &mut b] {
            q.push_data(2, tx, b"x0");
            assert!(q.admits(tx));
            q.push_data(2, tx, b"x0");
            assert!(!q.admits(tx), "its half is used");
        }
        assert_eq!(q.queued_packets(&a), 2);
        // A third stream starts: its first packet always, then while under its share (a
        // third of the limit now).
        q.push_data(3, &mut c, b"c0");
        assert!(q.admits(&c));
        q.push_data(3, &mut c, b"c0");
        assert!(!q.admits(&c));
        assert_eq!(q.bytes(), 6 * 7);
    }

    #[test]
    fn close_zero_is_taken_alone_once_everything_else_is_out() {
        let mut q = SendQueue::new(Framing::Messages, usize::MAX);
        let mut out = Batch::default();
        assert!(!q.take(&mut out));
        q.push_last(Bytes::from_static(b"z"));
        q.push_control(b"c");
        assert!(q.take(&mut out));
        assert!(q.take(&mut out), "then CLOSE(0) alone");
        assert!(!q.take(&mut out));
    }

    #[test]
    fn a_burst_of_streams_leaves_no_capacity_behind() {
        let mut q = SendQueue::new(Framing::Messages, 64);
        let mut txs = vec![StreamTx::default(); 1000];
        for (id, tx) in (1..).zip(txs.iter_mut()) {
            q.push_control(b"connect");
            q.push_data(id, tx, b"data");
            q.mark_blocked(id, tx);
        }
        let mut out = Batch::default();
        assert!(q.take(&mut out));
        let mut woken = 0;
        while let Some(id) = q.next_writable() {
            assert!(clear_blocked(&mut txs[id as usize - 1]));
            woken += 1;
        }
        assert_eq!(woken, 1000);
        let floor = crate::reclaim::FLOOR;
        assert!(q.blocked.capacity() < 2 * floor, "{}", q.blocked.capacity());
        assert!(
            q.writable.capacity() < 2 * floor,
            "{}",
            q.writable.capacity()
        );
        q.release_buffers();
        assert_eq!(q.capacity(), 0, "the batch buffers are freed once empty");
    }
}
