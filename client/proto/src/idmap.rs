//! Maps keyed by stream id, with a cheap hash (shared with the driver in `wisp-client`).
//!
//! Every write and every received packet looks its stream up (in the connection, the
//! transmit queue and the stream slots), so std's SipHash, built to resist collision
//! attacks on attacker-chosen keys, costs more than it protects here: the client allocates
//! the ids itself (sequentially), and an id the server sends is only ever looked up. A
//! Fibonacci multiply spreads sequential ids over the whole table.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

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
