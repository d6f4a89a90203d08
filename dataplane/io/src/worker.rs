//! The poll-mode worker loop shell: rx burst → (hand over to the flow's
//! owner) → the logic's decision ([`dataplane::worker::Worker`]) → tx burst.
//! The shell moves mbufs; what happens to each packet is decided by the logic.
//!
//! A worker owns its rx queues, one tx queue per port where the device has
//! enough, its connection table and its counters. With several workers, a
//! packet whose flow another worker owns (`dataplane::lb::flow_owner`) goes to that
//! worker over a single-producer/single-consumer ring; a packet for a port on
//! which this worker has no tx queue goes to the worker that has one. The
//! snapshot is re-read once per round, so configuration changes never pause
//! forwarding.
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use dataplane::clock::Clock;
use dataplane::counters::WorkerCounters;
use dataplane::snapshot::Snapshot;
use dataplane::verdict::DropReason;
use dataplane::worker::{Action, Stop, Worker, WorkerCtl};

use crate::{Mbuf, MbufBatch, RingConsumer, RingProducer, RxQueue, TimestampField, TxQueue, BURST};

/// Everything a worker needs, moved onto its lcore.
pub struct WorkerSetup {
    pub id: usize,
    pub workers: usize,
    /// The rx queues this worker polls, each with its port's index.
    pub rx: Vec<(u16, RxQueue)>,
    /// Per port index: this worker's tx queue there, if the port has one for it.
    pub tx: Vec<Option<TxQueue>>,
    /// Per port index: the worker to send packets for that port through, when
    /// `tx` has no queue there.
    pub tx_via: Vec<Option<u16>>,
    /// Per worker: the ring to hand that worker packets to transmit.
    pub tx_rings: Vec<Option<RingProducer>>,
    /// Packets other workers want sent on this worker's tx queues.
    pub tx_from: Vec<RingConsumer>,
    /// Per worker: the ring to hand that worker the flows it owns (None for self).
    pub to_owner: Vec<Option<RingProducer>>,
    /// Flows other workers handed to this one.
    pub from_others: Vec<RingConsumer>,
    /// DPDK port id → port index.
    pub port_index: Vec<u16>,
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    pub counters: Arc<WorkerCounters>,
    pub stop: Arc<Stop>,
    /// Sleep this long after a round that found no packet (0: pure busy poll).
    pub poll_idle_us: u32,
    /// Replay mode: the clock follows the packets' rx timestamps from this field.
    pub replay_timestamps: Option<TimestampField>,
    pub replay: bool,
    pub conns_capacity: u32,
    pub seed: u64,
    pub ctl: Arc<WorkerCtl>,
    /// The ring to the exception path (ARP, the kernel's traffic, packets
    /// waiting for a neighbour); None in replay mode, where those are dropped
    /// with their reason.
    pub exception: Option<RingProducer>,
    /// What the exception path learned (neighbours, kernel-held addresses).
    pub learned: Option<Arc<ArcSwap<dataplane::fwd::Learned>>>,
}

struct Io<'a> {
    tx: &'a [Option<TxQueue>],
    tx_batches: Vec<MbufBatch>,
    tx_via: &'a [Option<u16>],
    tx_rings: &'a [Option<RingProducer>],
    via_batches: Vec<MbufBatch>,
    to_owner: &'a [Option<RingProducer>],
    owner_batches: Vec<MbufBatch>,
    exception: Option<&'a RingProducer>,
    exception_batch: MbufBatch,
    drops: MbufBatch,
    counters: &'a WorkerCounters,
}

impl Io<'_> {
    #[inline]
    fn drop_pkt(&mut self, m: Mbuf, reason: DropReason) {
        self.counters.count_drop(reason, 1);
        if self.drops.is_full() {
            self.drops.free_all();
        }
        // Just emptied if it was full; a refused mbuf is freed on drop.
        let _ = self.drops.push(m);
    }

    #[inline]
    fn send(&mut self, mut m: Mbuf, port: u16) {
        let p = port as usize;
        if let (Some(Some(q)), Some(batch)) = (self.tx.get(p), self.tx_batches.get_mut(p)) {
            if batch.is_full() {
                flush_tx(q, batch, self.counters, port);
            }
            if let Err(m) = batch.push(m) {
                self.drop_pkt(m, DropReason::TxFull);
            }
            return;
        }
        let via = self.tx_via.get(p).copied().flatten().map(usize::from);
        if let Some((Some(ring), batch)) =
            via.and_then(|w| Some((self.tx_rings.get(w)?.as_ref(), self.via_batches.get_mut(w)?)))
        {
            m.set_port(port);
            if batch.is_full() {
                flush_ring(ring, batch, self.counters);
            }
            if let Err(m) = batch.push(m) {
                self.drop_pkt(m, DropReason::HandoffFull);
            }
            return;
        }
        self.drop_pkt(m, DropReason::NoTxQueue);
    }

    #[inline]
    fn hand_over(&mut self, m: Mbuf, owner: usize) {
        if let (Some(Some(ring)), Some(batch)) = (self.to_owner.get(owner), self.owner_batches.get_mut(owner)) {
            if batch.is_full() {
                flush_ring(ring, batch, self.counters);
            }
            if let Err(m) = batch.push(m) {
                self.drop_pkt(m, DropReason::HandoffFull);
            }
        } else {
            self.drop_pkt(m, DropReason::HandoffFull);
        }
    }

    /// Hands a packet to the exception path: `next_hop` zero for the kernel
    /// (or ARP), else the neighbour it waits for, `port` the port index it
    /// came in on or leaves through.
    #[inline]
    fn pass_exception(&mut self, mut m: Mbuf, port: u16, next_hop: u32, otherwise: DropReason) {
        let Some(ring) = self.exception else {
            self.drop_pkt(m, otherwise);
            return;
        };
        m.set_port(port);
        m.set_tag(next_hop);
        if self.exception_batch.is_full() {
            flush_ring_as(ring, &mut self.exception_batch, self.counters, DropReason::KernelFull, false);
        }
        match self.exception_batch.push(m) {
            Ok(()) => self.counters.exception.add(1),
            Err(m) => self.drop_pkt(m, DropReason::KernelFull),
        }
    }

    fn flush_all(&mut self) {
        for (port, (q, batch)) in self.tx.iter().zip(self.tx_batches.iter_mut()).enumerate() {
            if let Some(q) = q {
                flush_tx(q, batch, self.counters, port as u16);
            }
        }
        for (r, batch) in self.tx_rings.iter().zip(self.via_batches.iter_mut()) {
            if let Some(r) = r {
                flush_ring(r, batch, self.counters);
            }
        }
        for (r, batch) in self.to_owner.iter().zip(self.owner_batches.iter_mut()) {
            if let Some(r) = r {
                flush_ring(r, batch, self.counters);
            }
        }
        if let Some(r) = self.exception {
            flush_ring_as(r, &mut self.exception_batch, self.counters, DropReason::KernelFull, false);
        }
        self.drops.free_all();
    }
}

/// Runs until told to stop; returns 0 (the lcore's exit value).
pub fn run(setup: WorkerSetup) -> i32 {
    let WorkerSetup {
        id,
        workers,
        rx,
        tx,
        tx_via,
        tx_rings,
        tx_from,
        to_owner,
        from_others,
        port_index,
        snapshot,
        counters,
        stop,
        poll_idle_us,
        replay_timestamps,
        replay,
        conns_capacity,
        seed,
        ctl,
        exception,
        learned,
    } = setup;
    let clock = if replay { Clock::replay() } else { Clock::live(crate::tsc_hz(), crate::tsc_cycles()) };
    let mut w = Worker::new(id, workers, conns_capacity, seed, clock, counters.clone(), ctl, learned);
    let mut io = Io {
        tx: &tx,
        tx_batches: tx.iter().map(|_| MbufBatch::new()).collect(),
        tx_via: &tx_via,
        tx_rings: &tx_rings,
        via_batches: tx_rings.iter().map(|_| MbufBatch::new()).collect(),
        to_owner: &to_owner,
        owner_batches: to_owner.iter().map(|_| MbufBatch::new()).collect(),
        exception: exception.as_ref(),
        exception_batch: MbufBatch::new(),
        drops: MbufBatch::new(),
        counters: &counters,
    };
    let mut batch = MbufBatch::new();
    let idle = Duration::from_micros(u64::from(poll_idle_us));
    let ts = replay_timestamps.as_ref();

    while !stop.all.load(Relaxed) {
        let snap = snapshot.load();
        w.begin_round(crate::tsc_cycles());
        let mut got = 0;
        let mut handled = 0u64;
        if !stop.rx.load(Relaxed) {
            for (in_port, q) in &rx {
                let n = q.rx_burst(&mut batch);
                if n == 0 {
                    continue;
                }
                got += n;
                batch.prefetch_data();
                let mut marks = [0u32; BURST];
                let mut owners = [id; BURST];
                {
                    let mut frames: [&[u8]; BURST] = [&[]; BURST];
                    for (f, m) in frames.iter_mut().zip(batch.iter()) {
                        *f = m;
                    }
                    w.rx_burst(&frames[..n.min(BURST)], *in_port, &snap, &mut marks, &mut owners);
                }
                for (k, mut m) in batch.drain().enumerate() {
                    let mark = marks.get(k).copied().unwrap_or(0);
                    let owner = owners.get(k).copied().unwrap_or(id);
                    if owner != id {
                        // The mark travels with the packet: the owner does
                        // not classify it again.
                        m.set_tag(mark);
                        io.hand_over(m, owner);
                        continue;
                    }
                    handled += 1;
                    handle(m, *in_port, mark, &mut w, &snap, ts, &mut io);
                }
            }
        }
        for r in &from_others {
            let n = r.dequeue(&mut batch);
            if n == 0 {
                continue;
            }
            got += n;
            counters.taken_over.add(n as u64);
            for m in batch.drain() {
                let in_port = port_index.get(m.port() as usize).copied().unwrap_or(0);
                handled += 1;
                // The mark the receiving worker gave it (classified and counted there).
                let mark = m.tag();
                handle(m, in_port, mark, &mut w, &snap, ts, &mut io);
            }
        }
        for r in &tx_from {
            let n = r.dequeue(&mut batch);
            if n == 0 {
                continue;
            }
            got += n;
            counters.taken_over.add(n as u64);
            for m in batch.drain() {
                let port = m.port();
                io.send(m, port);
            }
        }
        io.flush_all();
        w.end_round(&snap, handled);
        if got == 0 && poll_idle_us > 0 {
            std::thread::sleep(idle);
        }
    }
    0
}

/// One packet on the worker that owns it: the logic decides, the shell moves
/// the mbuf.
#[inline]
fn handle(
    mut m: Mbuf,
    in_port: u16,
    mark: u32,
    w: &mut Worker,
    snap: &Snapshot,
    ts: Option<&TimestampField>,
    io: &mut Io<'_>,
) {
    if m.nb_segs() != 1 {
        io.drop_pkt(m, DropReason::MultiSegment);
        return;
    }
    // net_pcap stores the capture time in microseconds.
    let rx_time_ns = ts.and_then(|f| m.rx_timestamp(f)).map(|us| us.saturating_mul(1000));
    match w.handle(&mut m, in_port, mark, snap, rx_time_ns) {
        Action::Send { port } => io.send(m, port),
        Action::Exception { port, next_hop, otherwise } => io.pass_exception(m, port, next_hop, otherwise),
        Action::Drop(r) => io.drop_pkt(m, r),
    }
}

/// Sends a tx batch; what the device refuses is counted and freed.
#[inline]
fn flush_tx(q: &TxQueue, batch: &mut MbufBatch, counters: &WorkerCounters, port: u16) {
    if batch.is_empty() {
        return;
    }
    let bytes: u64 = batch.iter_lens().map(u64::from).sum();
    let total = batch.len();
    let sent = q.tx_burst(batch);
    let pc = &counters.ports[port as usize];
    pc.tx_packets.add(sent as u64);
    if sent == total {
        pc.tx_bytes.add(bytes);
    } else {
        let unsent: u64 = batch.iter_lens().map(u64::from).sum();
        pc.tx_bytes.add(bytes - unsent);
        counters.count_drop(DropReason::TxFull, batch.len() as u64);
        batch.free_all();
    }
}

/// Hands a batch to another worker; what the ring refuses is counted and freed.
#[inline]
fn flush_ring(ring: &RingProducer, batch: &mut MbufBatch, counters: &WorkerCounters) {
    flush_ring_as(ring, batch, counters, DropReason::HandoffFull, true)
}

/// Enqueues a batch on `ring`; what it refuses is freed and counted as
/// `full`. Hand-overs between workers also count `handed_off` (rvsd's
/// shutdown waits until every one was taken over); the exception path's
/// packets do not.
#[inline]
fn flush_ring_as(
    ring: &RingProducer,
    batch: &mut MbufBatch,
    counters: &WorkerCounters,
    full: DropReason,
    count_handoff: bool,
) {
    if batch.is_empty() {
        return;
    }
    let sent = ring.enqueue(batch);
    if count_handoff {
        counters.handed_off.add(sent as u64);
    }
    if !batch.is_empty() {
        counters.count_drop(full, batch.len() as u64);
        batch.free_all();
    }
}

/// Stops the workers on `lcores` and waits for them (at shutdown, or when a
/// later step of the start fails).
pub fn stop_all(stop: &Stop, lcores: &[u32]) {
    stop.all.store(true, std::sync::atomic::Ordering::SeqCst);
    for l in lcores {
        crate::wait_lcore(*l);
    }
}
