//! Maps keyed by stream id, with a cheap hash (shared with the driver in `wisp-client`),
//! and the connection's table of streams, which a stream's writer reaches by
//! [`StreamHandle`] without hashing.
//!
//! Every received packet looks its stream up (in the connection and the stream slots), and
//! so does every write that has no [`StreamHandle`], so std's SipHash, built to resist collision
//! attacks on attacker-chosen keys, costs more than it protects here: the client allocates
//! the ids itself (sequentially), and an id the server sends is only ever looked up. A
//! Fibonacci multiply spreads sequential ids over the whole table.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::reclaim::Reclaim;

/// A `HashMap` keyed by stream id.
pub type IdMap<V> = HashMap<u32, V, BuildHasherDefault<IdHasher>>;

/// The hasher of [`IdMap`]: one multiply per `u32` key.
#[derive(Default, Clone, Copy, Debug)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not reached for u32 keys; kept correct for any other use.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Where a stream's entry lies in the connection's table of streams, kept by whoever
/// writes to the stream often (a stream's writer) so that its per-packet lookup is an
/// index and one comparison instead of a hash probe. It is only a hint: an entry that moved (the table compacts
/// after a burst) or a stream that is gone is detected, and the id lookup answers (and
/// refreshes the hint).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamHandle {
    id: u32,
    slot: u32,
}

impl StreamHandle {
    /// A handle for stream `id` that does not know its slot yet.
    pub fn new(id: u32) -> Self {
        Self { id, slot: u32::MAX }
    }

    /// The stream id.
    pub fn id(&self) -> u32 {
        self.id
    }
}

/// One slot of a [`StreamTable`].
#[derive(Debug)]
struct Entry<V> {
    id: u32,
    value: Option<V>,
}

/// Per-stream values in a slab, indexed by an [`IdMap`] from stream id to slot: a lookup
/// by id costs a hash probe, one by [`StreamHandle`] an index. Freed slots are reused;
/// trailing free slots are dropped at once, and when three quarters of the slots are free
/// the live entries move down and the memory goes back (see [`crate::reclaim`]), which
/// the handles pointing at moved entries notice.
#[derive(Debug)]
pub(crate) struct StreamTable<V> {
    entries: Vec<Entry<V>>,
    index: IdMap<u32>,
    /// Free slots; those at or past the end of `entries` are stale and skipped.
    free: Vec<u32>,
}

impl<V> Default for StreamTable<V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            index: IdMap::default(),
            free: Vec::new(),
        }
    }
}

impl<V> StreamTable<V> {
    /// Number of streams.
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    /// The value of stream `id`.
    pub(crate) fn get(&self, id: &u32) -> Option<&V> {
        let slot = *self.index.get(id)?;
        self.entries.get(slot as usize)?.value.as_ref()
    }

    /// The value of stream `id`, mutably.
    pub(crate) fn get_mut(&mut self, id: &u32) -> Option<&mut V> {
        let slot = *self.index.get(id)?;
        self.entries.get_mut(slot as usize)?.value.as_mut()
    }

    /// The value of the stream `handle` names, refreshing the handle's slot if it was stale.
    #[inline(always)]
    pub(crate) fn get_by_handle(&mut self, handle: &mut StreamHandle) -> Option<&mut V> {
        let slot = handle.slot as usize;
        let hit =
            matches!(self.entries.get(slot), Some(e) if e.id == handle.id && e.value.is_some());
        if !hit {
            handle.slot = self.locate(handle.id)?;
        }
        self.entries.get_mut(handle.slot as usize)?.value.as_mut()
    }

    /// The slot of stream `id`.
    #[cold]
    fn locate(&self, id: u32) -> Option<u32> {
        self.index.get(&id).copied()
    }

    /// Adds stream `id` (replacing its value if it is already there).
    pub(crate) fn insert(&mut self, id: u32, value: V) {
        if let Some(v) = self.get_mut(&id) {
            *v = value;
            return;
        }
        let value = Some(value);
        let slot = loop {
            match self.free.pop() {
                Some(slot) if (slot as usize) < self.entries.len() => break slot,
                Some(_) => {}
                None => break self.push_slot(),
            }
        };
        if let Some(e) = self.entries.get_mut(slot as usize) {
            *e = Entry { id, value };
            self.index.insert(id, slot);
        }
    }

    /// A new slot at the end (never past `u32::MAX` entries: stream ids are `u32`, so the
    /// table holds fewer).
    fn push_slot(&mut self) -> u32 {
        let slot = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
        self.entries.push(Entry { id: 0, value: None });
        slot
    }

    /// Removes stream `id`, returning its value.
    pub(crate) fn remove(&mut self, id: &u32) -> Option<V> {
        let slot = self.index.remove(id)?;
        let value = self.entries.get_mut(slot as usize)?.value.take();
        if slot as usize + 1 == self.entries.len() {
            while self.entries.last().is_some_and(|e| e.value.is_none()) {
                self.entries.pop();
            }
        } else {
            self.free.push(slot);
        }
        value
    }

    /// Every value.
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().filter_map(|e| e.value.as_ref())
    }

    /// Every stream id and value.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &V)> {
        self.entries
            .iter()
            .filter_map(|e| e.value.as_ref().map(|v| (e.id, v)))
    }

    /// Removes every stream.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.index.clear();
        self.free.clear();
    }
}

impl<V> Reclaim for StreamTable<V> {
    /// When three quarters of the slots are free, moves the live entries down (keeping
    /// their order) and gives the memory back.
    fn reclaim(&mut self) {
        let live = self.index.len();
        if self.entries.len() > crate::reclaim::FLOOR && live < self.entries.len() / 4 {
            self.entries.retain(|e| e.value.is_some());
            self.free.clear();
            for (slot, e) in (0u32..).zip(&self.entries) {
                self.index.insert(e.id, slot);
            }
        }
        self.entries.reclaim();
        self.free.reclaim();
        self.index.reclaim();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_finds_its_stream_and_notices_when_it_moved_or_went() {
        let mut t = StreamTable::default();
        for id in 1..=400u32 {
            t.insert(id, id * 10);
        }
        let mut h = StreamHandle::new(400);
        assert_eq!(t.get_by_handle(&mut h).copied(), Some(4000));
        assert_eq!(h.slot, 399, "the hint is learnt on the first lookup");
        // Most streams close: the table compacts and stream 400 moves down.
        for id in 1..=390 {
            assert_eq!(t.remove(&id), Some(id * 10));
            t.reclaim();
        }
        assert_eq!(t.len(), 10);
        assert!(t.entries.len() < 400, "compacted: {}", t.entries.len());
        assert_eq!(t.get_by_handle(&mut h).copied(), Some(4000), "stale hint");
        assert_ne!(h.slot, 399);
        assert_eq!(t.get(&400).copied(), Some(4000));
        // A stream that is gone is not found, even where its slot was reused.
        let mut gone = StreamHandle::new(395);
        assert!(t.get_by_handle(&mut gone).is_some());
        t.remove(&395);
        t.insert(1000, 1);
        assert_eq!(t.get_by_handle(&mut gone), None);
        assert_eq!(t.get(&1000).copied(), Some(1));
        let ids: Vec<u32> = t.iter().map(|(id, _)| id).collect();
        assert_eq!(ids.len(), t.len());
        assert_eq!(t.values().count(), t.len());
    }

    #[test]
    fn freed_slots_are_reused_and_trailing_ones_dropped() {
        let mut t = StreamTable::default();
        for id in 1..=3u32 {
            t.insert(id, ());
        }
        t.remove(&2);
        t.insert(4, ());
        assert_eq!(t.entries.len(), 3, "slot of stream 2 reused");
        t.remove(&4);
        t.remove(&3);
        assert_eq!(t.entries.len(), 1, "trailing free slots dropped");
        t.insert(5, ());
        assert_eq!(t.entries.len(), 2, "a stale free slot is skipped");
        assert!(t.get(&5).is_some() && t.get(&1).is_some());
        t.insert(5, ());
        assert_eq!(t.len(), 2, "inserting an id twice replaces its value");
        t.clear();
        assert_eq!((t.len(), t.get(&1)), (0, None));
    }

    #[test]
    fn a_burst_of_streams_leaves_no_capacity_behind() {
        let mut t = StreamTable::default();
        for id in 0..10_000u32 {
            t.insert(id, [0u8; 32]);
        }
        // One stream of the burst outlives the others.
        for id in 0..9_999u32 {
            t.remove(&id);
            t.reclaim();
        }
        assert_eq!(t.len(), 1);
        let floor = crate::reclaim::FLOOR;
        assert!(
            t.entries.capacity() <= 2 * floor,
            "{}",
            t.entries.capacity()
        );
        assert!(t.free.capacity() <= 2 * floor, "{}", t.free.capacity());
        assert!(t.get(&9_999).is_some());
    }
}
