//! The exception path: everything a worker does not forward itself.
//!
//! One thread, off the packet path (it may sleep, allocate and make system
//! calls), fed by one ring per worker. It
//! - answers ARP for the box's addresses on each port (the configured ones and
//!   those the kernel holds on the port's tap, such as a VIP keepalived added),
//!   learns neighbours, resolves next hops for packets that wait for them,
//!   refreshes and ages entries, and announces addresses that appear with
//!   gratuitous ARP;
//! - hands the kernel, through a tap interface per port that carries the
//!   port's MAC and addresses, every other frame the workers passed on (the
//!   box's own traffic, multicast such as VRRP, non-IPv4), and sends what the
//!   kernel writes on a tap out of its port.
//!
//! Frames to send go to worker 0 over a ring; worker 0 has a tx queue on every
//! port. What the resolver learns is published to the workers as
//! [`Learned`] (they read it once per round).
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hashbrown::HashSet;

use dataplane::buf::PacketBuf;
use dataplane::exception::arp::{self, Resolver, Wait};
pub use dataplane::exception::ExceptionCounters;
use dataplane::fwd::{Learned, NeighborTable};
use dataplane::snapshot::Snapshot;
use dataplane::worker::Stop;

pub use crate::tap::Tap;
use crate::{Mbuf, MbufBatch, Mempool, RingConsumer, RingProducer};

/// One port as the exception path sees it.
pub struct ExceptionPort {
    pub mac: [u8; 6],
    pub tap: Option<Tap>,
}

pub struct ExceptionSetup {
    pub from_workers: Vec<RingConsumer>,
    /// To worker 0, which transmits on every port.
    pub to_tx: RingProducer,
    pub pool: Arc<Mempool>,
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    pub learned: Arc<ArcSwap<Learned>>,
    pub neighbors: Arc<ArcSwap<Vec<arp::Row>>>,
    pub ports: Vec<ExceptionPort>,
    pub counters: Arc<ExceptionCounters>,
    pub stop: Arc<Stop>,
}

/// How long the thread sleeps after a round that found nothing to do.
const IDLE: Duration = Duration::from_micros(500);
/// How often the timers run (ARP retries are a second apart).
const TICK: Duration = Duration::from_millis(100);
/// How often the kernel's addresses are re-read and new ones announced.
const ADDR_SCAN: Duration = Duration::from_secs(1);
/// Gratuitous ARPs per address that appears (the second a second later).
const GARP_COUNT: u8 = 2;

struct Path {
    from_workers: Vec<RingConsumer>,
    to_tx: RingProducer,
    pool: Arc<Mempool>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    learned: Arc<ArcSwap<Learned>>,
    neighbors: Arc<ArcSwap<Vec<arp::Row>>>,
    ports: Vec<ExceptionPort>,
    counters: Arc<ExceptionCounters>,
    resolver: Resolver<Mbuf>,
    /// Per port: addresses the kernel holds on the tap beyond the configured ones.
    kernel_addrs: Vec<Vec<Ipv4Addr>>,
    /// (port, address) already announced, and announcements still to repeat.
    announced: HashSet<(u16, Ipv4Addr)>,
    garp_due: Vec<(u16, Ipv4Addr, u8)>,
    out: MbufBatch,
    started: Instant,
    published_version: u64,
    /// The neighbour table changed since `neighbors` was last stored.
    view_dirty: bool,
}

/// Runs the exception path until `stop.all`.
pub fn run(setup: ExceptionSetup) {
    let stop = setup.stop.clone();
    let n = setup.ports.len();
    let mut p = Path {
        from_workers: setup.from_workers,
        to_tx: setup.to_tx,
        pool: setup.pool,
        snapshot: setup.snapshot,
        learned: setup.learned,
        neighbors: setup.neighbors,
        ports: setup.ports,
        counters: setup.counters,
        resolver: Resolver::default(),
        kernel_addrs: vec![Vec::new(); n],
        announced: HashSet::new(),
        garp_due: Vec::new(),
        out: MbufBatch::new(),
        started: Instant::now(),
        published_version: u64::MAX,
        view_dirty: true,
    };
    let mut buf = vec![0u8; 65536];
    let mut batch = MbufBatch::new();
    let mut last_tick = Instant::now() - TICK;
    let mut last_scan = Instant::now() - ADDR_SCAN;
    while !stop.all.load(Relaxed) {
        let mut busy = false;
        for i in 0..p.from_workers.len() {
            let n = p.from_workers[i].dequeue(&mut batch);
            busy |= n > 0;
            for m in batch.drain() {
                p.on_worker_packet(m);
            }
        }
        busy |= p.read_taps(&mut buf);
        if last_scan.elapsed() >= ADDR_SCAN {
            last_scan = Instant::now();
            p.scan_addresses();
        }
        if last_tick.elapsed() >= TICK {
            last_tick = Instant::now();
            p.tick();
        }
        // Workers and rvsadm neigh see what ARP learned at once.
        if p.resolver.version() != p.published_version {
            p.publish();
        }
        if p.view_dirty {
            p.store_view();
        }
        p.flush();
        if !busy {
            // Idle: look again within about a millisecond (the workers' rings
            // and the taps are read in the same loop).
            std::thread::sleep(IDLE);
        }
    }
    p.flush();
}

impl Path {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Whether `a` is one of the box's addresses on `port` (ARP is answered for it).
    fn is_ours(&self, snap: &Snapshot, port: u16, a: Ipv4Addr) -> bool {
        let configured = snap.fib.ports().get(port as usize).is_some_and(|p| p.addrs.iter().any(|x| x.0 == a));
        configured || self.kernel_addrs.get(port as usize).is_some_and(|k| k.contains(&a))
    }

    /// The address to send ARP requests for `target` from on `port`: one in
    /// the same subnet, else the first.
    fn source_for(&self, snap: &Snapshot, port: u16, target: Ipv4Addr) -> Option<Ipv4Addr> {
        let fp = snap.fib.ports().get(port as usize)?;
        let mask = |len: u8| if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len.min(32))) };
        fp.addrs
            .iter()
            .find(|(a, len)| u32::from(*a) & mask(*len) == u32::from(target) & mask(*len))
            .or(fp.addrs.first())
            .map(|x| x.0)
            .or_else(|| self.kernel_addrs.get(port as usize)?.first().copied())
    }

    fn send_frame(&mut self, port: u16, frame: &[u8]) {
        match Mbuf::from_bytes(&self.pool, frame) {
            Some(mut m) => {
                m.set_port(port);
                self.push_out(m);
            }
            None => self.counters.no_mbuf.add(1),
        }
    }

    fn push_out(&mut self, m: Mbuf) {
        if self.out.is_full() {
            self.flush();
        }
        if self.out.push(m).is_err() {
            self.counters.tx_full.add(1);
        }
    }

    fn flush(&mut self) {
        if self.out.is_empty() {
            return;
        }
        self.to_tx.enqueue(&mut self.out);
        if !self.out.is_empty() {
            self.counters.tx_full.add(self.out.len() as u64);
            self.out.free_all();
        }
    }

    fn on_worker_packet(&mut self, m: Mbuf) {
        let port = m.port();
        let next_hop = m.tag();
        if next_hop != 0 {
            self.wait_for(m, port, Ipv4Addr::from(next_hop));
        } else if let Some(a) = arp::parse(m.data()) {
            self.on_arp(m, port, a);
        } else {
            self.give_kernel(m, port);
        }
    }

    fn give_kernel(&mut self, m: Mbuf, port: u16) {
        match self.ports.get(port as usize).and_then(|p| p.tap.as_ref()) {
            Some(t) => match t.send(m.data()) {
                Ok(()) => self.counters.to_kernel.add(1),
                Err(_) => self.counters.tap_errors.add(1),
            },
            None => self.counters.no_tap.add(1),
        }
    }

    fn on_arp(&mut self, m: Mbuf, port: u16, a: arp::Arp) {
        self.counters.arp_received.add(1);
        let snap = self.snapshot.load();
        let mac = self.ports.get(port as usize).map_or([0; 6], |p| p.mac);
        if a.sha == mac {
            return; // our own announcement looped back
        }
        let to_us = self.is_ours(&snap, port, a.tpa);
        let answer = to_us && a.op == dataplane::wire::arp::Operation::Request && a.spa != a.tpa;
        let now = self.now_ms();
        self.view_dirty = true;
        for mut w in self.resolver.on_arp(port, a.sha, a.spa, to_us, now) {
            if let Some(d) = w.data_mut().get_mut(..6) {
                d.copy_from_slice(&a.sha);
            }
            w.set_port(port);
            self.counters.resolved_sent.add(1);
            self.push_out(w);
        }
        if answer {
            self.counters.arp_replies_sent.add(1);
            self.send_frame(port, &arp::reply(mac, a.tpa, &a));
        } else {
            // Replies to the kernel's own requests, and whatever the kernel may want.
            self.give_kernel(m, port);
        }
    }

    fn wait_for(&mut self, mut m: Mbuf, port: u16, next_hop: Ipv4Addr) {
        if let Some(mac) = self.resolver.lookup(port, next_hop) {
            if let Some(d) = m.data_mut().get_mut(..6) {
                d.copy_from_slice(&mac);
            }
            self.counters.resolved_sent.add(1);
            self.push_out(m);
            return;
        }
        let now = self.now_ms();
        self.view_dirty = true;
        match self.resolver.wait(port, next_hop, m, now) {
            Wait::Request => self.request(arp::Request { port, target: next_hop, to: None }),
            Wait::Queued => {}
            Wait::Overflow(old) => {
                self.counters.queue_overflow.add(1);
                drop(old);
            }
        }
    }

    fn request(&mut self, r: arp::Request) {
        let snap = self.snapshot.load();
        let Some(src) = self.source_for(&snap, r.port, r.target) else {
            self.counters.no_source_address.add(1);
            return;
        };
        let mac = self.ports.get(r.port as usize).map_or([0; 6], |p| p.mac);
        self.counters.arp_requests_sent.add(1);
        self.send_frame(r.port, &arp::request(mac, src, r.target, r.to));
    }

    fn read_taps(&mut self, buf: &mut [u8]) -> bool {
        let mut any = false;
        for i in 0..self.ports.len() {
            for _ in 0..64 {
                let got = match self.ports[i].tap.as_ref() {
                    Some(t) => t.recv(buf),
                    None => break,
                };
                match got {
                    Ok(Some(n)) => {
                        any = true;
                        self.counters.from_kernel.add(1);
                        self.send_frame(i as u16, &buf[..n]);
                    }
                    Ok(None) => break,
                    Err(_) => {
                        self.counters.tap_errors.add(1);
                        break;
                    }
                }
            }
        }
        any
    }

    /// Re-reads the kernel's addresses on the taps; announces addresses and
    /// VIPs that appeared; publishes the kernel-held ones to the workers.
    fn scan_addresses(&mut self) {
        let snap = self.snapshot.load();
        let names: Vec<&str> = self.ports.iter().map(|p| p.tap.as_ref().map_or("", |t| t.name.as_str())).collect();
        let mut kernel = crate::tap::kernel_addresses(&names);
        for (i, k) in kernel.iter_mut().enumerate() {
            if let Some(fp) = snap.fib.ports().get(i) {
                k.retain(|a| !fp.addrs.iter().any(|x| x.0 == *a));
            }
            k.sort();
        }
        let local_changed = kernel != self.kernel_addrs;
        self.kernel_addrs = kernel;
        // Every address answered on each port; new ones are announced.
        let mut now_ours = HashSet::new();
        for (i, fp) in snap.fib.ports().iter().enumerate() {
            for a in fp.addrs.iter().map(|x| x.0).chain(self.kernel_addrs[i].iter().copied()) {
                now_ours.insert((i as u16, a));
            }
        }
        for &(port, a) in &now_ours {
            if !self.announced.contains(&(port, a)) {
                self.garp_due.push((port, a, GARP_COUNT));
            }
        }
        self.announced = now_ours;
        if local_changed {
            self.publish();
        }
        self.send_garps();
    }

    fn send_garps(&mut self) {
        let due = std::mem::take(&mut self.garp_due);
        for (port, a, left) in due {
            if !self.announced.contains(&(port, a)) {
                continue;
            }
            let mac = self.ports.get(port as usize).map_or([0; 6], |p| p.mac);
            self.counters.garp_sent.add(1);
            self.send_frame(port, &arp::gratuitous(mac, a));
            if left > 1 {
                self.garp_due.push((port, a, left - 1));
            }
        }
    }

    fn tick(&mut self) {
        let now = self.now_ms();
        let t = self.resolver.tick(now);
        for r in t.requests {
            self.request(r);
        }
        self.counters.unresolved_dropped.add(t.failed.len() as u64);
        drop(t.failed);
        if self.resolver.version() != self.published_version {
            self.publish();
        }
        self.store_view();
    }

    /// Publishes the table for `rvsadm neigh`.
    fn store_view(&mut self) {
        let now = self.now_ms();
        self.neighbors.store(Arc::new(self.resolver.rows(now)));
        self.view_dirty = false;
    }

    fn publish(&mut self) {
        self.published_version = self.resolver.version();
        let local = self.kernel_addrs.iter().flatten().copied().collect();
        let neighbors: NeighborTable = self.resolver.table();
        self.learned.store(Arc::new(Learned { neighbors, local }));
    }
}
