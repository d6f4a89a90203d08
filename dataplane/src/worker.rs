//! A worker's logic, round by round, over any [`PacketBuf`]: what the worker
//! loop shell in the I/O crate (`dataplane_io::worker`) asks of the logic
//! between its rx and tx bursts, and what a worker shares with the control
//! side (the connection listing, the sync port, the stop signals).
//!
//! A round: [`Worker::begin_round`] (what the exception path learned, the
//! clock, the timers); per rx burst [`Worker::rx_burst`] (counters, prefetch
//! passes, firewall marks for the whole burst, and each frame's owner); per
//! packet on its owner [`Worker::handle`], which says with an [`Action`] what
//! the shell does with it; [`Worker::end_round`] (sync, the listing).
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};

use crate::buf::PacketBuf;
use crate::clock::Clock;
use crate::counters::WorkerCounters;
use crate::fwd::Learned;
use crate::hints::BURST;
use crate::lb::{flow_owner, Lb};
use crate::snapshot::Snapshot;
use crate::verdict::{DropReason, Verdict};

pub use crate::conn::dump::ConnDump;

/// Requests from the control side that a worker serves between rounds.
pub struct WorkerCtl {
    /// Set by the control side: list your connections on `dumps`.
    pub dump_requested: AtomicBool,
    pub dumps: std::sync::mpsc::SyncSender<(usize, Vec<ConnDump>)>,
    /// This worker's end of the sync daemon (specs/ipvs.md §5, `sync.rs`).
    pub sync: Arc<crate::sync::SyncPort>,
}

impl WorkerCtl {
    pub fn new(
        dumps: std::sync::mpsc::SyncSender<(usize, Vec<ConnDump>)>,
        sync_params: Arc<crate::sync::SyncParams>,
    ) -> WorkerCtl {
        WorkerCtl {
            dump_requested: AtomicBool::new(false),
            dumps,
            sync: Arc::new(crate::sync::SyncPort::new(crate::sync::RING_RECORDS, sync_params)),
        }
    }
}

/// What the shell does with a packet once the logic has seen it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Transmit on this port index.
    Send { port: u16 },
    /// Hand to the exception path: `next_hop` zero for the kernel (or ARP),
    /// else the neighbour it waits for; `port` the port index it came in on
    /// or leaves through. Without an exception path (replay mode) the packet
    /// is dropped as `otherwise`.
    Exception { port: u16, next_hop: u32, otherwise: DropReason },
    /// Drop; the shell counts it under this reason when it frees the packet.
    Drop(DropReason),
}

/// One worker's logic: its connection table, clock and counters.
pub struct Worker {
    pub id: usize,
    pub workers: usize,
    pub lb: Lb,
    pub clock: Clock,
    pub counters: Arc<WorkerCounters>,
    ctl: Arc<WorkerCtl>,
    learned: Option<Arc<ArcSwap<Learned>>>,
}

impl Worker {
    /// Worker `id` of `workers`, with a table of `conns_capacity` entries.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: usize,
        workers: usize,
        conns_capacity: u32,
        seed: u64,
        clock: Clock,
        counters: Arc<WorkerCounters>,
        ctl: Arc<WorkerCtl>,
        learned: Option<Arc<ArcSwap<Learned>>>,
    ) -> Worker {
        let mut lb = Lb::new(id, conns_capacity, seed);
        lb.sync = Some(ctl.sync.clone());
        Worker { id, workers, lb, clock, counters, ctl, learned }
    }

    /// Start of a round: picks up what the exception path learned, moves the
    /// live clock to `cycles` (ignored in replay mode, where the packets'
    /// timestamps move it) and runs the timers, so a connection whose time
    /// ran out is gone for this round's packets.
    pub fn begin_round(&mut self, cycles: u64) {
        if let Some(l) = &self.learned {
            let now = l.load();
            if !Arc::ptr_eq(&now, self.lb.learned()) {
                self.lb.set_learned(Guard::into_inner(now));
            }
        }
        self.clock.tick(cycles);
        self.lb.expire(self.clock.now_secs() as u32);
    }

    /// A burst received on port index `in_port`: counts it, prefetches the
    /// connection-table buckets and entries the frames need, computes their
    /// firewall marks (the classifier stages its lookups across the burst)
    /// and, with several workers, the worker that owns each frame's flow.
    /// `marks` and `owners` get one entry per frame (at most [`BURST`]).
    pub fn rx_burst(
        &mut self,
        frames: &[&[u8]],
        in_port: u16,
        snap: &Snapshot,
        marks: &mut [u32; BURST],
        owners: &mut [usize; BURST],
    ) {
        let n = frames.len().min(BURST);
        let frames = &frames[..n];
        // Two stages across the burst: the buckets, then the entries they point to.
        self.lb.prefetch_burst(frames.iter().copied());
        let bytes: u64 = frames.iter().map(|f| f.len() as u64).sum();
        if let Some(pc) = self.counters.ports.get(usize::from(in_port)) {
            pc.rx_packets.add(n as u64);
            pc.rx_bytes.add(bytes);
        }
        marks.fill(0);
        if !snap.fwmark.is_empty() {
            snap.marks_counted_burst(frames, in_port, self.id, marks);
        }
        for (o, (f, &mark)) in owners.iter_mut().zip(frames.iter().zip(marks.iter())) {
            *o = flow_owner(f, mark, snap, self.workers).unwrap_or(self.id);
        }
    }

    /// One packet on the worker that owns its flow. `rx_time_ns` is the
    /// packet's capture time in replay mode: the clock follows it and the
    /// timers run per packet (the clock can jump within a burst).
    #[inline]
    pub fn handle<B: PacketBuf>(
        &mut self,
        pkt: &mut B,
        in_port: u16,
        mark: u32,
        snap: &Snapshot,
        rx_time_ns: Option<u64>,
    ) -> Action {
        let now = if self.clock.is_replay() {
            if let Some(ns) = rx_time_ns {
                self.clock.observe(ns);
            }
            let now = self.clock.now_secs() as u32;
            self.lb.expire(now);
            now
        } else {
            // Live: the clock moves once per round, where the timers ran.
            self.clock.now_secs() as u32
        };
        match self.lb.process(pkt, in_port, mark, snap, now, &self.counters) {
            Verdict::Forward { port } => Action::Send { port },
            Verdict::Resolve { port, next_hop } => {
                Action::Exception { port, next_hop: u32::from(next_hop), otherwise: DropReason::NoNeighbor }
            }
            Verdict::Drop(r) if r.goes_to_kernel() => Action::Exception { port: in_port, next_hop: 0, otherwise: r },
            Verdict::Drop(r) => Action::Drop(r),
        }
    }

    /// End of a round, after the shell flushed its batches: publishes
    /// `handled` (after the flush, so it never counts a packet still in a
    /// local batch: replay mode waits for handled == received), serves the
    /// sync port and an administrator's listing.
    pub fn end_round(&mut self, snap: &Snapshot, handled: u64) {
        self.counters.handled.add(handled);
        let now = self.clock.now_secs() as u32;
        crate::lb::sync::install_pending(&mut self.lb, &self.ctl.sync, snap, now);
        crate::lb::sync::sweep(&self.lb, &self.ctl.sync, now);
        self.counters.conns_live.set(self.lb.conns.len() as u64);
        if self.ctl.dump_requested.load(Relaxed) {
            // An administrator's listing: allocation here is off the packet path.
            self.ctl.dump_requested.store(false, Relaxed);
            let _ = self.ctl.dumps.try_send((self.id, dump(&self.lb, now)));
        }
        self.counters.clock_ns.set(self.clock.now_ns());
    }
}

/// Stop signals from the control side: first stop reading the ports (drain
/// what is in flight), then stop.
#[derive(Default)]
pub struct Stop {
    pub rx: AtomicBool,
    pub all: AtomicBool,
}

/// The worker's connection table as the control side lists it.
pub fn dump(lb: &Lb, now: u32) -> Vec<ConnDump> {
    use crate::conn::TEMPLATE_ASSURED;
    lb.conns
        .iter()
        .map(|(_, c)| {
            let protocol = match c.proto {
                6 => "TCP",
                17 => "UDP",
                _ => "IP",
            };
            let state = if c.is_template() {
                if c.state == TEMPLATE_ASSURED {
                    "ASSURED"
                } else {
                    "NONE"
                }
            } else if c.proto == 6 {
                c.tcp_state().name()
            } else {
                crate::proto::udp::STATE_NAME
            };
            ConnDump {
                protocol,
                state,
                expires: c.expires.saturating_sub(now),
                caddr: c.caddr,
                cport: c.cport,
                vaddr: c.vaddr,
                vport: c.vport,
                daddr: c.daddr,
                dport: c.dport,
            }
        })
        .collect()
}
