//! The poll-mode worker loop: rx burst → forward → tx burst, per owned queue.
//!
//! A worker owns its rx queues and one tx queue per port; nothing it touches per
//! packet is shared except the read-only [`Fib`] and its own counters. Drops are
//! collected and freed in bulk; tx batches are flushed once per rx burst.
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use crate::buf::PacketBuf;
use crate::clock::Clock;
use crate::counters::WorkerCounters;
use crate::dpdk::{self, MbufBatch, RxQueue, TimestampField, TxQueue};
use crate::fwd::{self, Fib};
use crate::verdict::{DropReason, Verdict};

/// Everything a worker needs, moved onto its lcore.
pub struct WorkerSetup {
    pub id: usize,
    /// The rx queues this worker polls, each with its port's index.
    pub rx: Vec<(u16, RxQueue)>,
    /// Per port index: this worker's tx queue there, if the port has one for it.
    pub tx: Vec<Option<TxQueue>>,
    pub fib: Arc<Fib>,
    pub counters: Arc<WorkerCounters>,
    pub stop: Arc<AtomicBool>,
    /// Sleep this long after a round that found no packet (0: pure busy poll).
    pub poll_idle_us: u32,
    /// Replay mode: the clock follows the packets' rx timestamps from this field.
    pub replay_timestamps: Option<TimestampField>,
    pub replay: bool,
}

/// Runs until `stop` is set; returns 0 (the lcore's exit value).
pub fn run(setup: WorkerSetup) -> i32 {
    let WorkerSetup { rx, tx, fib, counters, stop, poll_idle_us, replay_timestamps, replay, .. } = setup;
    let mut clock = if replay { Clock::replay() } else { Clock::live(dpdk::tsc_hz(), dpdk::tsc_cycles()) };
    let mut rx_batch = MbufBatch::new();
    let mut tx_batches: Vec<MbufBatch> = tx.iter().map(|_| MbufBatch::new()).collect();
    let mut drops = MbufBatch::new();
    let idle = Duration::from_micros(u64::from(poll_idle_us));

    while !stop.load(Relaxed) {
        let mut got = 0;
        for (in_port, q) in &rx {
            let n = q.rx_burst(&mut rx_batch);
            if n == 0 {
                continue;
            }
            got += n;
            rx_batch.prefetch_data();
            clock.tick(dpdk::tsc_cycles());
            let pc = &counters.ports[*in_port as usize];
            for mut m in rx_batch.drain() {
                pc.rx_packets.add(1);
                pc.rx_bytes.add(m.data().len() as u64);
                if let Some(f) = &replay_timestamps {
                    if let Some(ts_us) = m.rx_timestamp(f) {
                        // net_pcap stores the capture time in microseconds.
                        clock.observe(ts_us.saturating_mul(1000));
                    }
                }
                let verdict =
                    if m.nb_segs() != 1 { Verdict::Drop(DropReason::MultiSegment) } else { fwd::forward(&mut m, &fib) };
                let reason = match verdict {
                    Verdict::Forward { port } => match (tx.get(port as usize), tx_batches.get_mut(port as usize)) {
                        (Some(Some(q)), Some(batch)) => {
                            if batch.is_full() {
                                flush(q, batch, &counters, port);
                            }
                            match batch.push(m) {
                                Ok(()) => continue,
                                Err(back) => {
                                    m = back;
                                    DropReason::TxFull
                                }
                            }
                        }
                        _ => DropReason::NoTxQueue,
                    },
                    Verdict::Drop(r) => r,
                };
                counters.count_drop(reason, 1);
                if drops.is_full() {
                    drops.free_all();
                }
                // The batch was just emptied if full, so this cannot fail; if it
                // did, dropping the returned mbuf frees it.
                let _ = drops.push(m);
            }
            counters.clock_ns.set(clock.now_ns());
            for (port, (q, batch)) in tx.iter().zip(tx_batches.iter_mut()).enumerate() {
                if let Some(q) = q {
                    flush(q, batch, &counters, port as u16);
                }
            }
            drops.free_all();
        }
        if got == 0 && poll_idle_us > 0 {
            std::thread::sleep(idle);
        }
    }
    0
}

/// Sends a tx batch; what the device refuses is counted and freed.
#[inline]
fn flush(q: &TxQueue, batch: &mut MbufBatch, counters: &WorkerCounters, port: u16) {
    if batch.is_empty() {
        return;
    }
    let bytes: u64 = batch_bytes(batch);
    let total = batch.len();
    let sent = q.tx_burst(batch);
    let pc = &counters.ports[port as usize];
    pc.tx_packets.add(sent as u64);
    if sent == total {
        pc.tx_bytes.add(bytes);
    } else {
        pc.tx_bytes.add(bytes - batch_bytes(batch));
        counters.count_drop(DropReason::TxFull, batch.len() as u64);
        batch.free_all();
    }
}

fn batch_bytes(batch: &MbufBatch) -> u64 {
    batch.iter_lens().map(u64::from).sum()
}
