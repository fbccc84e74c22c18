//! Giving memory back after a burst: [`Reclaim`].
//!
//! The collections a connection keeps per stream or per packet (the stream maps here and in
//! `wisp-client`, the transmit queue's turns and control packets, the event queue, a
//! stream's received payloads) grow to the largest burst they ever held and, left alone,
//! keep that capacity for the life of the connection: after 1,000 concurrent streams have
//! closed, a mux that tracks none would still hold half a megabyte of empty buckets.
//!
//! [`Reclaim::reclaim`] is called after an element is removed. It costs one comparison
//! unless the collection has fallen to a quarter of its capacity, and then shrinks it to
//! twice its length (never below [`FLOOR`]). Growing back to the old capacity takes as many
//! insertions as the shrink freed slots, so the work is amortised O(1) per operation, and a
//! working set that stays level (64 busy streams taking turns) never shrinks at all.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash};

/// Capacity a collection keeps however empty it gets: small working sets never reallocate.
pub const FLOOR: usize = 64;

/// The new capacity for a collection of `len` elements and capacity `capacity`, if it
/// should shrink.
#[inline]
fn shrunk(len: usize, capacity: usize) -> Option<usize> {
    (capacity > FLOOR && len < capacity / 4).then(|| (len * 2).max(FLOOR))
}

/// A collection that gives its memory back once it is mostly empty. See the module
/// documentation.
pub trait Reclaim {
    /// Shrinks the collection to twice its length (at least [`FLOOR`]) when it has fallen to
    /// a quarter of its capacity; otherwise does nothing.
    fn reclaim(&mut self);
}

impl<K: Eq + Hash, V, S: BuildHasher> Reclaim for HashMap<K, V, S> {
    #[inline]
    fn reclaim(&mut self) {
        if let Some(to) = shrunk(self.len(), self.capacity()) {
            self.shrink_to(to);
        }
    }
}

impl<T> Reclaim for VecDeque<T> {
    #[inline]
    fn reclaim(&mut self) {
        if let Some(to) = shrunk(self.len(), self.capacity()) {
            self.shrink_to(to);
        }
    }
}

impl<T> Reclaim for Vec<T> {
    #[inline]
    fn reclaim(&mut self) {
        if let Some(to) = shrunk(self.len(), self.capacity()) {
            self.shrink_to(to);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idmap::IdMap;

    #[test]
    fn a_map_emptied_after_a_burst_shrinks_to_the_floor() {
        let mut map = IdMap::default();
        for id in 0..1000u32 {
            map.insert(id, [0u8; 100]);
        }
        let burst = map.capacity();
        for id in 0..1000u32 {
            map.remove(&id);
            map.reclaim();
        }
        assert!(burst >= 1000);
        assert!(map.capacity() < 2 * FLOOR, "{} of {burst}", map.capacity());
    }

    #[test]
    fn a_level_working_set_never_shrinks() {
        let mut queue: VecDeque<u32> = VecDeque::with_capacity(256);
        queue.extend(0..200);
        let capacity = queue.capacity();
        for round in 0..1000 {
            queue.pop_front();
            queue.reclaim();
            queue.push_back(round);
        }
        assert_eq!(queue.capacity(), capacity);
    }

    #[test]
    fn shrinking_keeps_room_to_grow_and_the_elements() {
        let mut v: Vec<u32> = (0..4096).collect();
        v.truncate(100);
        v.reclaim();
        assert!(v.capacity() >= 200 && v.capacity() < 4096);
        assert_eq!(v, (0..100).collect::<Vec<_>>());
        let mut small: Vec<u32> = Vec::with_capacity(FLOOR);
        small.reclaim();
        assert_eq!(small.capacity(), FLOOR, "never below the floor");
    }
}
