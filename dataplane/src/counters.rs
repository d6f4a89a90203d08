//! Per-worker counters: written only by their worker, read by the control side.
//!
//! Each worker owns one [`WorkerCounters`]; every field has a single writer, so an
//! increment is a relaxed load plus a relaxed store (no locked instruction), and
//! readers sum across workers. Each worker's block is cache-line aligned so no two
//! workers write the same line.
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::verdict::DropReason;

/// One monotonically increasing counter with a single writer.
#[derive(Default, Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only the owning worker may call this.
    #[inline(always)]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }

    /// Overwrites the value (for gauges such as the worker's clock).
    #[inline(always)]
    pub fn set(&self, v: u64) {
        self.0.store(v, Relaxed);
    }
}

/// Traffic counters of one port, as one worker saw it.
#[derive(Default, Debug)]
#[repr(align(64))]
pub struct PortCounters {
    pub rx_packets: Counter,
    pub rx_bytes: Counter,
    pub tx_packets: Counter,
    pub tx_bytes: Counter,
}

/// Everything one worker counts.
#[derive(Debug)]
#[repr(align(64))]
pub struct WorkerCounters {
    pub ports: Box<[PortCounters]>,
    pub drops: [Counter; DropReason::COUNT],
    /// Connections (not templates) this worker created.
    pub conns_created: Counter,
    /// New connections refused because no real server was available (§4.6).
    pub no_dest: Counter,
    /// ICMP errors the worker generated (port unreachable, time exceeded, frag needed).
    pub icmp_sent: Counter,
    /// Packets this worker processed (its own and those handed to it).
    pub handled: Counter,
    /// Packets handed to another worker (for processing or transmission).
    pub handed_off: Counter,
    /// Packets taken from other workers' rings.
    pub taken_over: Counter,
    /// Live entries in the worker's connection table (gauge).
    pub conns_live: Counter,
    /// Packets handed to the exception path (ARP, the kernel's, awaiting a neighbour).
    pub exception: Counter,
    /// The worker's clock (ns) at its last burst: in replay mode, the newest
    /// packet timestamp it has seen.
    pub clock_ns: Counter,
}

impl WorkerCounters {
    pub fn new(ports: usize) -> Self {
        WorkerCounters {
            ports: (0..ports).map(|_| PortCounters::default()).collect(),
            drops: std::array::from_fn(|_| Counter::default()),
            conns_created: Counter::default(),
            no_dest: Counter::default(),
            icmp_sent: Counter::default(),
            conns_live: Counter::default(),
            handled: Counter::default(),
            handed_off: Counter::default(),
            taken_over: Counter::default(),
            exception: Counter::default(),
            clock_ns: Counter::default(),
        }
    }

    #[inline(always)]
    pub fn count_drop(&self, reason: DropReason, n: u64) {
        self.drops[reason as usize].add(n);
    }
}

/// Totals over every worker, for display.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Per port: rx packets, rx bytes, tx packets, tx bytes.
    pub ports: Vec<[u64; 4]>,
    pub drops: Vec<(DropReason, u64)>,
}

impl Totals {
    pub fn sum<'a>(workers: impl IntoIterator<Item = &'a WorkerCounters>, ports: usize) -> Totals {
        let mut t = Totals { ports: vec![[0; 4]; ports], drops: DropReason::ALL.iter().map(|r| (*r, 0)).collect() };
        for w in workers {
            for (acc, p) in t.ports.iter_mut().zip(w.ports.iter()) {
                acc[0] += p.rx_packets.get();
                acc[1] += p.rx_bytes.get();
                acc[2] += p.tx_packets.get();
                acc[3] += p.tx_bytes.get();
            }
            for (acc, c) in t.drops.iter_mut().zip(w.drops.iter()) {
                acc.1 += c.get();
            }
        }
        t
    }

    pub fn rx_packets(&self) -> u64 {
        self.ports.iter().map(|p| p[0]).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_sum_workers() {
        let a = WorkerCounters::new(2);
        let b = WorkerCounters::new(2);
        a.ports[0].rx_packets.add(3);
        b.ports[0].rx_packets.add(4);
        b.ports[1].tx_bytes.add(100);
        a.count_drop(DropReason::NoRoute, 2);
        b.count_drop(DropReason::NoRoute, 1);
        let t = Totals::sum([&a, &b], 2);
        assert_eq!(t.ports[0], [7, 0, 0, 0]);
        assert_eq!(t.ports[1], [0, 0, 0, 100]);
        assert_eq!(t.drops[DropReason::NoRoute as usize], (DropReason::NoRoute, 3));
        assert_eq!(t.rx_packets(), 7);
    }

    #[test]
    fn worker_blocks_do_not_share_cache_lines() {
        assert_eq!(std::mem::align_of::<WorkerCounters>(), 64);
        assert_eq!(std::mem::align_of::<PortCounters>(), 64);
    }
}
