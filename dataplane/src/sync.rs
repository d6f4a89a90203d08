//! Connection synchronisation between a worker and the control side's sync
//! daemon (specs/ipvs.md §5): a compact fixed-size record, and a lock-free
//! single-producer/single-consumer ring to carry it.
//!
//! Invariants:
//! - A ring is allocated once, when created; `push` and `pop` never allocate,
//!   lock, block or make a syscall. A full ring refuses the record and the
//!   producer counts it (a slow or absent peer never stalls a worker).
//! - Each ring has exactly one producer and one consumer thread: per worker,
//!   `out` is written by the worker and read by the sync master thread, `into`
//!   is written by the sync backup thread and read by the worker.
//! - No `unsafe`: a slot is four `AtomicU64` words, published by the tail's
//!   Release store and read after the Acquire load that observes it.
//!
//! This module knows nothing of the load balancer: what joins a worker's
//! table to its port (queueing, installing, the resync sweep) is `lb::sync`.
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::counters::Counter;

/// One connection as the sync protocol carries it (the fields of a v1 record,
/// §5.2, without SEQ options: rvs never adjusts TCP sequence numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncRecord {
    /// IP protocol (0 for fwmark templates).
    pub proto: u8,
    /// TcpState for TCP, 0 for UDP, TEMPLATE_* for templates (the kernel's values).
    pub state: u8,
    /// Connection flags (kernel values, §3.8), HASHED never set.
    pub flags: u16,
    pub caddr: Ipv4Addr,
    pub vaddr: Ipv4Addr,
    pub daddr: Ipv4Addr,
    pub cport: u16,
    pub vport: u16,
    pub dport: u16,
    /// The connection's current state timeout (s); 0 when unknown (v0).
    pub timeout: u32,
    pub fwmark: u32,
}

impl Default for SyncRecord {
    fn default() -> Self {
        SyncRecord::from_words([0; 4])
    }
}

impl SyncRecord {
    fn to_words(self) -> [u64; 4] {
        [
            u64::from(u32::from(self.caddr)) << 32 | u64::from(u32::from(self.vaddr)),
            u64::from(u32::from(self.daddr)) << 32 | u64::from(self.timeout),
            u64::from(self.fwmark) << 32 | u64::from(self.cport) << 16 | u64::from(self.vport),
            u64::from(self.dport) << 32
                | u64::from(self.flags) << 16
                | u64::from(self.proto) << 8
                | u64::from(self.state),
        ]
    }

    fn from_words(w: [u64; 4]) -> SyncRecord {
        SyncRecord {
            caddr: Ipv4Addr::from((w[0] >> 32) as u32),
            vaddr: Ipv4Addr::from(w[0] as u32),
            daddr: Ipv4Addr::from((w[1] >> 32) as u32),
            timeout: w[1] as u32,
            fwmark: (w[2] >> 32) as u32,
            cport: (w[2] >> 16) as u16,
            vport: w[2] as u16,
            dport: (w[3] >> 32) as u16,
            flags: (w[3] >> 16) as u16,
            proto: (w[3] >> 8) as u8,
            state: w[3] as u8,
        }
    }
}

/// One record: 32 bytes, two to a cache line (a ring of 8192 is 256 KiB).
#[derive(Default)]
#[repr(align(32))]
struct Slot([AtomicU64; 4]);

#[repr(align(64))]
#[derive(Default)]
struct Index(AtomicU64);

/// A bounded lock-free SPSC ring of [`SyncRecord`]s.
pub struct SyncRing {
    slots: Box<[Slot]>,
    mask: u64,
    /// Next slot the consumer reads.
    head: Index,
    /// Next slot the producer writes.
    tail: Index,
}

impl SyncRing {
    /// A ring of at least `capacity` records (rounded up to a power of two).
    pub fn new(capacity: usize) -> SyncRing {
        let n = capacity.max(2).next_power_of_two();
        SyncRing {
            slots: (0..n).map(|_| Slot::default()).collect(),
            mask: n as u64 - 1,
            head: Index::default(),
            tail: Index::default(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Producer side: appends `r`, or gives it back when the ring is full.
    #[inline]
    pub fn push(&self, r: SyncRecord) -> Result<(), SyncRecord> {
        let tail = self.tail.0.load(Ordering::Relaxed);
        let head = self.head.0.load(Ordering::Acquire);
        if tail.wrapping_sub(head) > self.mask {
            return Err(r);
        }
        let Some(slot) = self.slots.get((tail & self.mask) as usize) else { return Err(r) };
        for (a, w) in slot.0.iter().zip(r.to_words()) {
            a.store(w, Ordering::Relaxed);
        }
        self.tail.0.store(tail.wrapping_add(1), Ordering::Release);
        Ok(())
    }

    /// Consumer side: the oldest record, if any.
    #[inline]
    pub fn pop(&self) -> Option<SyncRecord> {
        let head = self.head.0.load(Ordering::Relaxed);
        let tail = self.tail.0.load(Ordering::Acquire);
        if head == tail {
            return None;
        }
        let slot = self.slots.get((head & self.mask) as usize)?;
        let w = [0, 1, 2, 3].map(|k| slot.0[k].load(Ordering::Relaxed));
        self.head.0.store(head.wrapping_add(1), Ordering::Release);
        Some(SyncRecord::from_words(w))
    }

    pub fn len(&self) -> usize {
        let tail = self.tail.0.load(Ordering::Acquire);
        let head = self.head.0.load(Ordering::Acquire);
        tail.wrapping_sub(head) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The sync settings workers read (specs/ipvs.md §5.4, §9), changed by the
/// control side at any time (relaxed atomics: a worker sees a change within a
/// round or two, which is all the kernel promises too).
pub struct SyncParams {
    /// A master sync daemon is running: workers queue records.
    pub master: AtomicBool,
    /// A backup sync daemon is running with `backup_only`: no balancing.
    pub backup_only: AtomicBool,
    /// `sync_threshold` (first value).
    pub threshold: AtomicU32,
    /// `sync_threshold` (second value, the period).
    pub period: AtomicU32,
    /// `sync_persist_mode`.
    pub persist_mode: AtomicBool,
    /// rvs extension (seconds, 0 = off): each worker walks its whole table
    /// once per this period, a slice per second, and re-sends every entry the
    /// §5.4 state filter allows. An idle long-lived connection (keepalives
    /// only, which LVS never re-syncs after its last threshold crossing) is
    /// refreshed on the backup before it can expire there, and a backup that
    /// starts late, or a restarted peer, converges to the full table within
    /// one period. Plain LVS peers just see more records.
    pub resync_period: AtomicU32,
}

impl Default for SyncParams {
    fn default() -> Self {
        SyncParams {
            master: AtomicBool::new(false),
            backup_only: AtomicBool::new(false),
            threshold: AtomicU32::new(3),
            period: AtomicU32::new(50),
            persist_mode: AtomicBool::new(false),
            resync_period: AtomicU32::new(DEFAULT_RESYNC_PERIOD),
        }
    }
}

/// One worker's end of the sync daemon: its two rings and counters.
pub struct SyncPort {
    /// Shared by every worker and the daemon.
    pub params: std::sync::Arc<SyncParams>,
    /// Worker → sync master thread.
    pub out: SyncRing,
    /// Sync backup thread → worker.
    pub into: SyncRing,
    /// Records queued for the master thread.
    pub queued: Counter,
    /// Records dropped because `out` was full.
    pub queue_full: Counter,
    /// Synced records installed or updated in this worker's table.
    pub installed: Counter,
    /// Synced records not installed (table full, stale inactive replacement).
    pub install_failed: Counter,
    /// Records the resync sweep queued.
    pub resynced: Counter,
    /// Worker-only sweep state: next slot, slots still to visit this second,
    /// and that second (kept by `lb::sync::sweep`).
    pub(crate) sweep_cursor: AtomicU32,
    pub(crate) sweep_left: AtomicU32,
    pub(crate) sweep_second: AtomicU32,
}

impl SyncPort {
    pub fn new(capacity: usize, params: std::sync::Arc<SyncParams>) -> SyncPort {
        SyncPort {
            params,
            out: SyncRing::new(capacity),
            into: SyncRing::new(capacity),
            queued: Counter::default(),
            queue_full: Counter::default(),
            installed: Counter::default(),
            install_failed: Counter::default(),
            resynced: Counter::default(),
            sweep_cursor: AtomicU32::new(0),
            sweep_left: AtomicU32::new(0),
            sweep_second: AtomicU32::new(0),
        }
    }

    /// Worker side: queue `r` for the master thread; counted, never blocks.
    #[inline]
    pub fn send(&self, r: SyncRecord) {
        match self.out.push(r) {
            Ok(()) => self.queued.add(1),
            Err(_) => self.queue_full.add(1),
        }
    }
}

/// Default of [`SyncParams::resync_period`] (s).
pub const DEFAULT_RESYNC_PERIOD: u32 = 30;
/// Table slots a worker visits per round during a resync sweep, and records
/// it queues at most per round, so the sweep never delays forwarding much.
pub const SWEEP_SLOTS_PER_ROUND: u32 = 512;
pub const SWEEP_RECORDS_PER_ROUND: u32 = 64;

/// Records per ring (each way, per worker).
pub const RING_RECORDS: usize = 8192;
/// Synced records a worker installs per round, so a burst of sync messages
/// never delays forwarding by more than this much work.
pub const INSTALL_PER_ROUND: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn rec(n: u32) -> SyncRecord {
        SyncRecord {
            proto: 6,
            state: 1,
            flags: 0x0183,
            caddr: Ipv4Addr::from(0x0a00_0000 + n),
            vaddr: Ipv4Addr::new(10, 0, 0, 1),
            daddr: Ipv4Addr::new(192, 168, 10, 1),
            cport: n as u16,
            vport: 80,
            dport: 8080,
            timeout: 900,
            fwmark: 0xdead_beef,
        }
    }

    #[test]
    fn words_round_trip_every_field() {
        let r = rec(0xfffe);
        assert_eq!(SyncRecord::from_words(r.to_words()), r);
        let z = SyncRecord::default();
        assert_eq!(SyncRecord::from_words(z.to_words()), z);
    }

    #[test]
    fn full_ring_refuses_and_empties_in_order() {
        let q = SyncRing::new(4);
        for i in 0..4 {
            q.push(rec(i)).unwrap();
        }
        assert_eq!(q.push(rec(9)), Err(rec(9)));
        for i in 0..4 {
            assert_eq!(q.pop(), Some(rec(i)));
        }
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn one_producer_one_consumer_threads_lose_and_reorder_nothing() {
        let q = Arc::new(SyncRing::new(64));
        let p = q.clone();
        let n = 200_000u32;
        let prod = std::thread::spawn(move || {
            for i in 0..n {
                let mut r = rec(i);
                while let Err(back) = p.push(r) {
                    r = back;
                    std::thread::yield_now();
                }
            }
        });
        let mut next = 0u32;
        while next < n {
            if let Some(r) = q.pop() {
                assert_eq!(r, rec(next));
                next += 1;
            }
        }
        prod.join().unwrap();
        assert!(q.is_empty());
    }
}
