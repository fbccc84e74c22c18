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
//! Fairness comes from admission, in turns: a busy stream may add at most its fair share of
//! the limit to a batch (the limit divided by the number of streams writing lately, at most
//! [`STREAM_SHARE_CAP`] even when it writes alone, but at least a quarter of
//! [`TURN_BATCH`]), its first packet while the batch is under
//! [`TURN_BATCH`] bytes, and a new or idle stream (nothing in this batch or the one before,
//! not waiting) one packet always. A stream refused, for its share or for the batch's size,
//! joins the back of a queue of waiting streams; when the driver takes
//! a batch, the waiting streams at the front are granted the next batch's turns (as many as
//! [`TURN_BATCH`] holds at their shares) and reported writable: a granted stream's first
//! packet is admitted whatever the batch holds. So the streams take their turns in a round
//! whichever writer task the runtime runs first, only the writers whose turn it is are woken,
//! and a batch stays near [`TURN_BATCH`] however many streams write (it exceeds it by at most
//! one packet per granted stream). A batch of 64 busy streams writing 60 KiB payloads used to
//! hold one payload of each (3.75 MiB, out of cache by the time the kernel copied it, and
//! each writer's payload was read once per 3.75 MiB); now it holds a few streams' turns of
//! two payloads each (see `bench/README.md`). Granted writers fill the next batch while the
//! driver writes this one.

use std::collections::VecDeque;
use std::fmt;

use bytes::Bytes;

use crate::codec::{HEADER_LEN, PacketType};
use crate::frames::{Batch, Framing};
use crate::reclaim::Reclaim;

/// The size a batch is kept near when many streams write: small enough to stay in a core's
/// L2 cache between the writers' copies into it and the kernel's copy out of it. A stream's
/// turn is at least a quarter of it, so that a writer copies several payloads in a row out
/// of a buffer still in cache.
pub(crate) const TURN_BATCH: usize = 256 * 1024;

/// The most one stream adds to a batch, however few streams write: a lone writer's
/// batches stay near the size of a core's L2 cache too, instead of growing to the queue
/// limit. Measured side by side with one stream, against uncapped 1 MiB batches, in five
/// rounds: 1.03-1.13x raw-best instead of 0.80-0.91x at 60 KiB, and no change beyond the
/// noise at 16 KiB (`bench/README.md`).
pub(crate) const STREAM_SHARE_CAP: usize = 2 * TURN_BATCH;

/// A stream's part of the live batch. It describes batch number `epoch`; when that is not
/// the live batch, the stream has nothing queued.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StreamTx {
    epoch: u64,
    packets: u32,
    bytes: usize,
    /// Refused since its last turn was granted (listed in `SendQueue::blocked`).
    blocked: bool,
    /// The batch number of the turn last granted to it.
    turn: u64,
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
    /// Beyond this many packet bytes a batch admits no stream's first packet without a
    /// granted turn: `limit`, at most [`TURN_BATCH`].
    turn_batch: usize,
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
    /// Streams refused and waiting for a turn, in turn order, with the length of the packet
    /// each was refused.
    blocked: VecDeque<(u32, usize)>,
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

/// What one of `streams` busy streams may add to a batch after its first packet: its
/// share of the limit, at most [`STREAM_SHARE_CAP`], at least a quarter of the batch size
/// turns keep (`turn_batch`), so that a writer copies several payloads in a row.
#[inline]
fn share(limit: usize, streams: usize, turn_batch: usize) -> usize {
    (limit / streams).min(STREAM_SHARE_CAP).max(turn_batch / 4)
}

impl SendQueue {
    /// An empty queue admitting up to `limit` packet bytes per batch.
    pub(crate) fn new(framing: Framing, limit: usize) -> Self {
        Self {
            framing,
            limit,
            cap: limit.saturating_mul(2),
            turn_batch: limit.min(TURN_BATCH),
            batch: Batch::default(),
            bytes: 0,
            last: None,
            epoch: 2,
            active: 0,
            busy: 0,
            quota: share(limit, 1, limit.min(TURN_BATCH)),
            blocked: VecDeque::new(),
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

    /// Whether the stream `tx` may queue a packet now: its first in the live batch while
    /// the batch is under [`TURN_BATCH`], when its turn was granted for this batch, or when
    /// it is new or idle (nothing in the batch before, not waiting); more while it is under
    /// its share. Each stream overshoots its share by at most one packet,
    /// so the batch stays under twice the limit whenever the shares admit a second packet at
    /// all; that bound only bites in the batch in which more streams start writing than in
    /// the one before (their shares shrink as they arrive).
    #[inline(always)]
    pub(crate) fn admits(&self, tx: &StreamTx) -> bool {
        if tx.epoch == self.epoch {
            tx.bytes < self.quota && self.bytes < self.cap
        } else {
            self.admits_first(tx)
        }
    }

    /// [`SendQueue::admits`] for the stream's first packet in the live batch (once per
    /// batch and stream: kept out of line, so that the writer's path stays small).
    #[inline(never)]
    fn admits_first(&self, tx: &StreamTx) -> bool {
        tx.turn == self.epoch
            || self.bytes < self.turn_batch
            || (!tx.blocked && tx.epoch + 1 < self.epoch)
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

    /// Remembers that stream `id` was refused a packet of `len` bytes: it waits for a turn
    /// at the back of the queue, and is reported writable when granted one.
    pub(crate) fn mark_blocked(&mut self, id: u32, tx: &mut StreamTx, len: usize) {
        if !tx.blocked {
            tx.blocked = true;
            self.blocked.push_back((id, len));
        }
    }

    /// Whether streams wait for a turn.
    #[inline]
    pub(crate) fn has_waiting(&self) -> bool {
        !self.blocked.is_empty()
    }

    /// Grants every waiting stream a turn in the live batch and reports it writable: for a
    /// driver that found nothing queued although turns were granted (their writers did not
    /// write), so that no waiting writer depends on them.
    pub(crate) fn grant_all(&mut self) {
        self.writable
            .extend(self.blocked.drain(..).map(|(id, _)| id));
        self.blocked.reclaim();
    }

    /// A stream whose refused writer may write again (its turn granted), reported once; the
    /// caller passes it to [`grant`].
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
                self.quota = share(self.limit, self.active, self.turn_batch);
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
    /// live batch's) and grants the next batch's turns: the streams at the front of the
    /// waiting queue, as many as [`TURN_BATCH`] holds at their shares, are reported
    /// writable. When nothing else is queued, the connection-ending CLOSE(0) is the batch.
    /// Returns whether anything was taken.
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
        // The streams writing: those in this batch, or waiting for a turn, or lately more.
        self.busy = self
            .active
            .max(self.blocked.len())
            .max(self.busy - self.busy / 8);
        self.active = 0;
        self.quota = share(self.limit, self.busy.max(1), self.turn_batch);
        // Each id waits once (`StreamTx::blocked`); the connection checks the stream still
        // exists, clears its flag and grants its turn.
        let mut granted = 0;
        while granted < self.turn_batch {
            let Some((id, len)) = self.blocked.pop_front() else {
                break;
            };
            granted += len.max(self.quota);
            self.writable.push(id);
        }
        // After a burst of refused streams the queue's capacity goes back.
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

/// Grants the stream `tx`, reported writable by `queue`, its turn in the live batch and
/// clears its blocked flag; returns whether it was blocked.
pub(crate) fn grant(queue: &SendQueue, tx: &mut StreamTx) -> bool {
    tx.turn = queue.epoch;
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
    fn a_lone_stream_adds_at_most_the_share_cap_to_a_batch() {
        // The default queue limit (1 MiB): a lone writer of 60 KiB payloads is refused
        // once it has the share cap in the batch, not at the limit.
        let mut q = SendQueue::new(Framing::Messages, 1024 * 1024);
        let mut a = StreamTx::default();
        let payload = vec![0x5a; 60 * 1024];
        let mut packets = 0;
        while q.admits(&a) {
            q.push_data(1, &mut a, &payload);
            packets += 1;
            assert!(packets < 100, "never refused");
        }
        let packet = HEADER_LEN + payload.len();
        assert!(q.bytes() >= STREAM_SHARE_CAP, "{} bytes", q.bytes());
        assert!(q.bytes() < STREAM_SHARE_CAP + packet, "{} bytes", q.bytes());
        assert!(q.bytes() < 1024 * 1024);
        // Taken, the next batch takes it again from its first packet.
        let mut out = Batch::default();
        assert!(q.take(&mut out));
        assert!(q.admits(&a));
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
    fn a_stream_gets_its_share_of_a_batch_and_waiting_streams_their_turns() {
        // DATA packets of 7 bytes: 4 fill the limit (and the turn batch, which is the
        // limit when the limit is small).
        let mut q = SendQueue::new(Framing::Messages, 28);
        let (mut a, mut b, mut c): (StreamTx, StreamTx, StreamTx) = Default::default();
        for _ in 0..4 {
            assert!(q.admits(&a));
            q.push_data(1, &mut a, b"a0");
        }
        assert!(!q.admits(&a), "alone, a may fill the whole batch");
        q.mark_blocked(1, &mut a, 7);
        q.mark_blocked(1, &mut a, 7);
        assert!(q.admits(&b), "a new stream always gets one packet");
        q.push_data(2, &mut b, b"b0");
        assert!(
            q.admits(&b),
            "and its share (half the limit, now that two write)"
        );
        q.push_data(2, &mut b, b"b1");
        assert!(!q.admits(&b));
        q.mark_blocked(2, &mut b, 7);
        let mut out = Batch::default();
        assert!(q.take(&mut out));
        // Two streams wait: each turn is half the limit, so both are granted one.
        let mut woken = Vec::new();
        while let Some(id) = q.next_writable() {
            woken.push(id);
        }
        woken.sort_unstable();
        assert_eq!(woken, [1, 2], "reported once when the batch is taken");
        assert!(grant(&q, &mut a));
        for _ in 0..2 {
            assert!(q.admits(&a));
            q.push_data(1, &mut a, b"x0");
        }
        assert!(!q.admits(&a), "its half is used");
        assert!(q.admits(&b), "the batch is under the turn size");
        q.push_data(2, &mut b, b"x0");
        q.push_data(2, &mut b, b"x0");
        assert!(!q.admits(&b));
        assert_eq!(q.queued_packets(&a), 2);
        // c wrote in an earlier batch and is not waiting for a turn, but the batch is
        // full: c waits for one.
        c.epoch = q.epoch - 1;
        assert!(!q.admits(&c));
        q.mark_blocked(3, &mut c, 7);
        q.mark_blocked(1, &mut a, 7);
        assert_eq!(
            q.blocked.iter().map(|&(id, _)| id).collect::<Vec<_>>(),
            [3, 1]
        );
        assert!(q.take(&mut out));
        assert_eq!(q.next_writable(), Some(1));
        assert_eq!(
            q.next_writable(),
            Some(3),
            "both granted (half the limit each)"
        );
        assert!(grant(&q, &mut c));
        assert!(q.admits(&c));
    }

    /// Streams that write whenever they may, run in an order that favours whoever was woken
    /// last (as tokio's LIFO slot does), get equal turns over a few rounds, and every batch
    /// stays near the turn size.
    #[test]
    fn turns_rotate_among_many_streams_whatever_order_writers_run_in() {
        const STREAMS: usize = 16;
        const PACKET: usize = 1000;
        let limit = 4 * PACKET;
        let mut q = SendQueue::new(Framing::Messages, limit);
        let mut txs = vec![StreamTx::default(); STREAMS];
        let mut sent = [0usize; STREAMS];
        let body = vec![7u8; PACKET - HEADER_LEN];
        // Every stream is ready at first; afterwards only those reported writable.
        let mut ready: Vec<usize> = (0..STREAMS).collect();
        let mut out = Batch::default();
        for round in 0..400 {
            while let Some(i) = ready.pop() {
                let id = i as u32 + 1;
                loop {
                    if !q.admits(&txs[i]) {
                        q.mark_blocked(id, &mut txs[i], PACKET);
                        break;
                    }
                    q.push_data(id, &mut txs[i], &body);
                    sent[i] += 1;
                }
            }
            assert!(q.take(&mut out));
            // The first batch holds a packet of every new stream.
            assert!(
                round == 0 || out.len() <= limit + 2 * PACKET,
                "batch of {}",
                out.len()
            );
            while let Some(id) = q.next_writable() {
                let i = id as usize - 1;
                assert!(grant(&q, &mut txs[i]));
                ready.push(i);
            }
            assert!(!ready.is_empty(), "some stream is always granted a turn");
        }
        let (min, max) = (sent.iter().min().unwrap(), sent.iter().max().unwrap());
        assert!(*min > 0 && max - min <= max / 10, "{sent:?}");
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
            q.mark_blocked(id, tx, 11);
        }
        let mut out = Batch::default();
        assert!(q.take(&mut out));
        let mut woken = 0;
        while let Some(id) = q.next_writable() {
            assert!(grant(&q, &mut txs[id as usize - 1]));
            woken += 1;
        }
        assert!(
            woken > 0 && q.has_waiting(),
            "a turn's worth is woken, the rest wait"
        );
        q.grant_all();
        while let Some(id) = q.next_writable() {
            assert!(grant(&q, &mut txs[id as usize - 1]));
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
