//! The transmit queue: which encoded packet goes to the WebSocket next.
//!
//! Control packets (CONNECT, INFO, CLOSE of a stream with nothing queued) go first, in
//! order. Each stream's DATA, and a CLOSE that follows its DATA, wait in the stream's own
//! queue, and streams with something queued take turns one packet at a time (round robin),
//! so a stream that writes faster than the link cannot crowd the others out, whichever
//! writer task the runtime happens to run first. CLOSE(0), which ends the connection, goes
//! after everything else.
//!
//! Admission (see [`SendQueue::admits`]): a stream whose queue is empty may always queue one
//! packet; more only while the total is under the limit. So every busy stream always has a
//! packet waiting for its turn, and the total exceeds the limit by at most one packet per
//! stream. A refused stream is reported writable when its own queue drains, or when the
//! total falls below half the limit: writers refill a queue that is still half full, so
//! the queue (and the heap holding its packets) stays level instead of draining to empty
//! and refilling, which makes the allocator return and re-fault megabytes per cycle.

use std::collections::VecDeque;
use std::fmt;

use bytes::Bytes;

use crate::idmap::IdMap;
use crate::reclaim::Reclaim;

/// Queues larger than this are freed when they drain, so a stream that once had a burst
/// queued does not keep the buffer while idle.
const KEEP_CAPACITY: usize = 32;

#[derive(Debug, Default)]
struct StreamQueue {
    packets: VecDeque<Bytes>,
    /// A write was refused for lack of space: report it when the queue drains.
    blocked: bool,
    /// The stream is closed (its CLOSE is queued last): forget the queue once it drains.
    closed: bool,
}

/// The transmit queue of a connection. See the module documentation.
///
/// Its `Debug` shows sizes, never packets: the client INFO waiting here carries the password.
#[derive(Default)]
pub(crate) struct SendQueue {
    control: VecDeque<Bytes>,
    streams: IdMap<StreamQueue>,
    /// Streams with a non-empty queue, in turn order. May hold ids whose queue was dropped
    /// since; those are skipped.
    turns: VecDeque<u32>,
    last: Option<Bytes>,
    bytes: usize,
    /// Streams marked blocked (entries whose flag was cleared since are stale).
    blocked: Vec<u32>,
    /// Streams to report writable, for [`SendQueue::next_writable`].
    writable: Vec<u32>,
}

impl fmt::Debug for SendQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendQueue")
            .field("bytes", &self.bytes)
            .field("control_packets", &self.control.len())
            .field("streams_queued", &self.streams.len())
            .field("close_zero_queued", &self.last.is_some())
            .finish_non_exhaustive()
    }
}

impl SendQueue {
    /// Bytes queued in total.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether stream `id` may queue a packet now, given the total `limit`.
    pub(crate) fn admits(&self, id: u32, limit: usize) -> bool {
        self.bytes < limit || self.streams.get(&id).is_none_or(|q| q.packets.is_empty())
    }

    /// Packets of stream `id` queued and not yet taken by [`SendQueue::pop`].
    pub(crate) fn queued_packets(&self, id: u32) -> usize {
        self.streams.get(&id).map_or(0, |q| q.packets.len())
    }

    /// Remembers that stream `id` was refused, so [`SendQueue::pop`] reports it writable
    /// once its queue drains.
    pub(crate) fn mark_blocked(&mut self, id: u32) {
        let Some(q) = self.streams.get_mut(&id) else {
            return;
        };
        if q.blocked {
            return;
        }
        q.blocked = true;
        if self.blocked.len() >= 2 * self.streams.len().max(8) {
            let streams = &self.streams;
            self.blocked
                .retain(|id| streams.get(id).is_some_and(|q| q.blocked));
        }
        self.blocked.push(id);
    }

    /// A stream whose refused writer may write again, reported once.
    pub(crate) fn next_writable(&mut self) -> Option<u32> {
        let id = self.writable.pop();
        self.writable.reclaim();
        id
    }

    /// Queues a control packet.
    pub(crate) fn push_control(&mut self, msg: Bytes) {
        self.bytes += msg.len();
        self.control.push_back(msg);
    }

    /// Queues the packet that ends the connection (sent after everything else).
    pub(crate) fn push_last(&mut self, msg: Bytes) {
        self.bytes += msg.len();
        if let Some(old) = self.last.replace(msg) {
            self.bytes -= old.len();
        }
    }

    /// Queues a packet of stream `id` behind its earlier ones.
    pub(crate) fn push_stream(&mut self, id: u32, msg: Bytes) {
        self.bytes += msg.len();
        let q = self.streams.entry(id).or_default();
        if q.packets.is_empty() {
            self.turns.push_back(id);
        }
        q.packets.push_back(msg);
    }

    /// Queues the CLOSE of stream `id`: behind its queued packets, or as a control packet
    /// when it has none. The stream's queue is forgotten once it drains.
    pub(crate) fn push_close(&mut self, id: u32, msg: Bytes) {
        let behind_data = match self.streams.get_mut(&id) {
            Some(q) if !q.packets.is_empty() => {
                q.closed = true;
                q.blocked = false;
                true
            }
            _ => false,
        };
        if behind_data {
            self.push_stream(id, msg);
        } else {
            self.forget(id);
            self.push_control(msg);
        }
    }

    /// Drops everything queued for stream `id` (the server closed it).
    pub(crate) fn drop_stream(&mut self, id: u32) {
        if let Some(q) = self.forget(id) {
            self.bytes -= q.packets.iter().map(Bytes::len).sum::<usize>();
        }
    }

    /// Removes stream `id`'s queue, giving the map's memory back after a burst.
    fn forget(&mut self, id: u32) -> Option<StreamQueue> {
        let removed = self.streams.remove(&id);
        self.streams.reclaim();
        removed
    }

    /// The next packet to send. `limit` is the admission limit (for the half-full wake-up).
    pub(crate) fn pop(&mut self, limit: usize) -> Option<Bytes> {
        let msg = if let Some(msg) = self.control.pop_front() {
            msg
        } else {
            loop {
                let Some(id) = self.turns.pop_front() else {
                    break self.last.take()?;
                };
                let Some(q) = self.streams.get_mut(&id) else {
                    continue;
                };
                let Some(msg) = q.packets.pop_front() else {
                    continue;
                };
                if !q.packets.is_empty() {
                    self.turns.push_back(id);
                } else if q.closed {
                    self.forget(id);
                } else {
                    if std::mem::take(&mut q.blocked) {
                        self.writable.push(id);
                    }
                    if q.packets.capacity() > KEEP_CAPACITY {
                        q.packets = VecDeque::new();
                    }
                }
                break msg;
            }
        };
        self.bytes -= msg.len();
        self.control.reclaim();
        self.turns.reclaim();
        if self.bytes < limit / 2 && !self.blocked.is_empty() {
            for id in self.blocked.drain(..) {
                if let Some(q) = self.streams.get_mut(&id)
                    && std::mem::take(&mut q.blocked)
                {
                    self.writable.push(id);
                }
            }
            self.blocked.reclaim();
        }
        Some(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(tag: &str) -> Bytes {
        Bytes::copy_from_slice(tag.as_bytes())
    }

    fn drain(q: &mut SendQueue) -> Vec<String> {
        std::iter::from_fn(|| q.pop(usize::MAX))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .collect()
    }

    #[test]
    fn streams_take_turns_after_control_packets() {
        let mut q = SendQueue::default();
        for i in 0..3 {
            q.push_stream(1, pkt(&format!("a{i}")));
        }
        q.push_stream(2, pkt("b0"));
        q.push_control(pkt("connect3"));
        q.push_stream(3, pkt("c0"));
        q.push_stream(2, pkt("b1"));
        assert_eq!(
            drain(&mut q),
            ["connect3", "a0", "b0", "c0", "a1", "b1", "a2"]
        );
        assert_eq!(q.bytes(), 0);
    }

    #[test]
    fn a_close_follows_the_streams_data_and_close_zero_goes_last() {
        let mut q = SendQueue::default();
        q.push_last(pkt("close0"));
        q.push_stream(1, pkt("a0"));
        q.push_close(1, pkt("close1"));
        q.push_close(2, pkt("close2"));
        assert_eq!(drain(&mut q), ["close2", "a0", "close1", "close0"]);
        assert!(q.streams.is_empty(), "a closed stream's queue is forgotten");
    }

    #[test]
    fn an_empty_stream_queue_is_always_admitted_and_a_refused_one_is_reported() {
        let mut q = SendQueue::default();
        q.push_stream(1, pkt("aaaa"));
        assert!(!q.admits(1, 4), "over the limit with a packet queued");
        assert!(q.admits(2, 4), "an empty queue always gets one packet");
        q.mark_blocked(1);
        q.pop(0).unwrap();
        assert_eq!(q.next_writable(), Some(1));
        assert_eq!(q.next_writable(), None, "reported once");
    }

    #[test]
    fn refused_streams_are_woken_when_the_queue_is_half_empty() {
        let mut q = SendQueue::default();
        for i in 0..4 {
            q.push_stream(1, pkt(&format!("a{i}")));
        }
        assert!(!q.admits(1, 8));
        q.mark_blocked(1);
        q.pop(8).unwrap();
        assert_eq!(q.next_writable(), None, "6 of 8 bytes still queued");
        q.pop(8).unwrap();
        q.pop(8).unwrap();
        assert_eq!(q.next_writable(), Some(1), "below half the limit");
    }

    #[test]
    fn a_burst_of_streams_leaves_no_capacity_behind() {
        let mut q = SendQueue::default();
        for id in 1..=1000 {
            q.push_control(pkt("connect"));
            q.push_stream(id, pkt("data"));
        }
        for id in 1..=1000 {
            q.push_close(id, pkt("close"));
        }
        assert_eq!(drain(&mut q).len(), 3000);
        assert!(q.streams.is_empty());
        let floor = crate::reclaim::FLOOR;
        assert!(q.streams.capacity() < 2 * floor, "{}", q.streams.capacity());
        assert!(q.control.capacity() < 2 * floor, "{}", q.control.capacity());
        assert!(q.turns.capacity() < 2 * floor, "{}", q.turns.capacity());
    }

    #[test]
    fn dropping_a_stream_forgets_its_bytes_and_turns() {
        let mut q = SendQueue::default();
        q.push_stream(1, pkt("a0"));
        q.push_stream(2, pkt("b0"));
        q.drop_stream(1);
        assert_eq!(q.bytes(), 2);
        assert_eq!(drain(&mut q), ["b0"]);
    }
}
