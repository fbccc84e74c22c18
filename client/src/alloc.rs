//! An allocator tweak for the driver's packet buffers (see
//! [`keep_freed_packets_in_the_heap`]).

/// Keeps glibc from handing the memory of sent packets back to the kernel after every burst.
///
/// Every queued DATA packet is its own allocation (the WebSocket layer masks it in place and
/// frees it once written), so a busy stream allocates and frees up to
/// [`crate::MuxOptions::max_queued_bytes`] in waves. With glibc's default 128 KiB trim threshold,
/// each wave that drains the queue returns the top of the heap to the kernel (`madvise`)
/// and the next one faults it back in page by page: in wisp-bench that took 40 % of the
/// client's CPU and cut one stream of 60 KiB writes from ~6 GiB/s to ~1.6 GiB/s.
///
/// glibc raises its mmap threshold, and the trim threshold to twice that, when a block
/// above the current mmap threshold is freed (mallopt(3), "dynamic mmap threshold"). Freeing
/// one untouched block of the queue's size (at least 4 MiB) once per process therefore lets
/// the heap keep a queue's worth of freed packets for reuse (up to twice the block stays
/// mapped instead of being trimmed), without `unsafe` or a `mallopt` call. Other
/// allocators just allocate and free the block; nothing is written to it, so no page is
/// touched either way.
pub(crate) fn keep_freed_packets_in_the_heap(queue_bytes: usize) {
    /// glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit: larger blocks do not move the threshold.
    const MAX: usize = 32 * 1024 * 1024;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // At least 4 MiB: besides the queue limit, every busy stream may have one packet
        // queued (64 streams of 60 KiB writes: 3.75 MiB).
        let block: Vec<u8> = Vec::with_capacity(queue_bytes.clamp(4 * 1024 * 1024, MAX - 4096));
        drop(std::hint::black_box(block));
    });
}
