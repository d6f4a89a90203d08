//! CPU hints the per-burst logic uses: the burst size and a cache prefetch.
//!
//! Neutral ground between the logic and the I/O crate: the worker's rx/tx
//! bursts and every per-burst pass (classification, connection lookups) use
//! the same [`BURST`], and [`prefetch`] takes a reference, so the logic needs
//! no raw pointer and no `unsafe` to ask for a cache line early.

/// Packets per rx/tx burst, and the most frames a per-burst pass handles at once.
pub const BURST: usize = 32;

/// Asks the CPU to bring the cache line holding the start of `value` into
/// every cache level (a hint: it never faults and changes no result).
#[inline(always)]
pub fn prefetch<T>(value: &T) {
    prefetch_index::prefetch_index(std::slice::from_ref(value), 0);
}
