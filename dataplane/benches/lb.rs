//! Load-balancing path benchmarks (criterion): [`Lb::process`] over bursts of
//! 32 generated frames in memory, no DPDK, no I/O. `cargo bench -p dataplane
//! --bench lb`. Each benchmark reports throughput in packets (one criterion
//! element = one packet, 32 per iteration).
//!
//! What is timed. Processing rewrites a packet (TTL, MACs, NAT addresses, the
//! TUN outer header), so every burst starts from pristine copies. Each
//! iteration therefore copies 32 pristine 60-byte frames into reusable,
//! mbuf-like buffers (no allocation) and processes them. The timed routine
//! (`iter_custom`) runs the same bursts twice, once copy + process and once
//! copy only, and hands criterion the difference: the reported time per
//! iteration and the packets/s are those of `Lb::process` alone. The copy's
//! own cost is printed beside it. The copy-only pass runs with warmer caches,
//! so the subtraction leans slightly against the dataplane.
//!
//! Cases:
//! - `dr_established/{1k,64k,1M}`: TCP ACKs of established DR flows (rr over 4
//!   real servers, static neighbours). Each flow got a SYN and an ACK before
//!   timing. Bursts are drawn from a pseudo-random ring of the flows (a
//!   permutation of all of them up to 64k; 256k distinct flows out of 1M), so
//!   at 1M the connection table and buckets are hit like real traffic, with
//!   cache misses.
//! - `dr_established_prefetch/{64k,1M}`: the same, but first prefetching for
//!   every packet of the burst the connection-table bucket, then the entry it
//!   points to (`Lb::prefetch_burst`), as the worker does
//!   for each rx burst. The keys are read from the frames inside the timed part.
//! - `nat_established/{in,out}_64k`: NAT, client → VIP and real server →
//!   client replies.
//! - `tun_established/64k`: IPIP (prepends the outer header).
//! - `new_conn/dr_syn`: SYNs of flows the table has never seen (a ring of 256k
//!   client endpoints). The replay clock advances 1 s every 64 bursts and the
//!   table runs its timers then (timed: expiring a connection is part of its
//!   cost), so every SYN_RECV entry (60 s) is gone before its endpoint comes
//!   round again; the table holds about 125k live entries. conns/s per core =
//!   packets/s.
//!
//! At start it prints the memory per connection: `ConnTable::bytes_per_entry()`
//! and the process RSS growth (`/proc/self/statm`, 4 KiB pages) over creating
//! and filling a 1M-entry table, divided by 1M.
//!
//! Not modelled: the worker's per-packet `lb.expire(now)` call (a no-op while
//! the clock stands still), RX/TX, hand-over between workers.
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use dataplane::buf::PacketBuf;
use dataplane::conn::{flags as cf, Conn, ConnTable};
use dataplane::counters::WorkerCounters;
use dataplane::fwd::{Fib, FibPort, Route};
use dataplane::lb::Lb;
use dataplane::proto::Timeouts;
use dataplane::sched::{SchedKind, Scheduler};
use dataplane::service::{Dest, DestShared, Method, SchedState, Service, ServiceKey};
use dataplane::snapshot::{Knobs, Snapshot};
use dataplane::verdict::Verdict;
use etherparse::PacketBuilder;

const BURST: usize = 32;
const SEED: u64 = 0x5eed_1b5e_ed00_0001;
/// Frames are Ethernet + IPv4 + TCP + 6 bytes of payload: the 60 bytes of a
/// minimum-size frame without FCS, so no padding to trim.
const FRAME_LEN: usize = 60;
/// Headroom in front of a frame, as in an mbuf (TUN prepends 20 bytes).
const HEADROOM: usize = 128;
/// The most frames a ring holds (256k x 64 B = 16 MiB of pristine frames).
const RING_MAX: usize = 1 << 18;

const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
const VPORT: u16 = 80;
const NAT_PORT: u16 = 8080;
const ROUTER: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 254);
const ROUTER_MAC: [u8; 6] = [2, 0, 0, 0, 0xfe, 1];
const PORT_MAC: [[u8; 6]; 2] = [[2, 0, 0, 0, 1, 1], [2, 0, 0, 0, 2, 1]];
const RS: [Ipv4Addr; 4] = [
    Ipv4Addr::new(10, 0, 2, 11),
    Ipv4Addr::new(10, 0, 2, 12),
    Ipv4Addr::new(10, 0, 2, 13),
    Ipv4Addr::new(10, 0, 2, 14),
];

fn rs_mac(a: Ipv4Addr) -> [u8; 6] {
    [2, 0, 0, 0, 2, a.octets()[3]]
}

/// Client endpoint of flow `i`: 1024 ports per address, addresses from `base`.
fn client(base: Ipv4Addr, i: usize) -> (Ipv4Addr, u16) {
    (Ipv4Addr::from(u32::from(base) + (i >> 10) as u32), 1024 + (i & 1023) as u16)
}

/// Clients of established flows (198.18.0.0/15, RFC 2544) and of new ones.
const CLIENTS: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 0);
const NEW_CLIENTS: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 0);

/// splitmix64: a fixed pseudo-random sequence, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `n` distinct indices out of `0..total`, in random order.
    fn sample(&mut self, total: usize, n: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..total).collect();
        for i in 0..n.min(total) {
            let j = i + (self.next() % (total - i) as u64) as usize;
            v.swap(i, j);
        }
        v.truncate(n);
        v
    }
}

/// One pristine frame, cache-line aligned like mbuf data.
#[derive(Clone, Copy)]
#[repr(align(64))]
struct Frame([u8; FRAME_LEN]);

#[derive(Clone, Copy)]
enum Seg {
    Syn,
    SynAck,
    Ack,
}

fn frame(src_mac: [u8; 6], dst_mac: [u8; 6], src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), seg: Seg) -> Frame {
    let b = PacketBuilder::ethernet2(src_mac, dst_mac).ipv4(src.0.octets(), dst.0.octets(), 64);
    let tcp = b.tcp(src.1, dst.1, 1000, 65535);
    let tcp = match seg {
        Seg::Syn => tcp.syn(),
        Seg::SynAck => tcp.syn().ack(1001),
        Seg::Ack => tcp.ack(1001),
    };
    let mut v = Vec::with_capacity(FRAME_LEN);
    tcp.write(&mut v, &[0u8; 6]).expect("build frame");
    Frame(v.try_into().expect("60-byte frame"))
}

/// Client → VIP on port 0.
fn to_vip(c: (Ipv4Addr, u16), seg: Seg) -> Frame {
    frame(ROUTER_MAC, PORT_MAC[0], c, (VIP, VPORT), seg)
}

/// NAT real server → client on port 1.
fn from_rs(rs: Ipv4Addr, c: (Ipv4Addr, u16), seg: Seg) -> Frame {
    frame(rs_mac(rs), PORT_MAC[1], (rs, NAT_PORT), c, seg)
}

/// A packet buffer with a fixed data room, like an mbuf: restoring a frame
/// copies bytes and resets the offsets, allocating nothing.
struct FrameBuf {
    room: [u8; HEADROOM + 2 * FRAME_LEN],
    start: usize,
    end: usize,
}

impl FrameBuf {
    fn new() -> FrameBuf {
        FrameBuf { room: [0; HEADROOM + 2 * FRAME_LEN], start: HEADROOM, end: HEADROOM }
    }

    #[inline(always)]
    fn restore(&mut self, f: &Frame) {
        self.start = HEADROOM;
        self.end = HEADROOM + FRAME_LEN;
        self.room[HEADROOM..HEADROOM + FRAME_LEN].copy_from_slice(&f.0);
    }
}

impl PacketBuf for FrameBuf {
    #[inline]
    fn data(&self) -> &[u8] {
        &self.room[self.start..self.end]
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.room[self.start..self.end]
    }

    #[inline]
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.start {
            return None;
        }
        self.start -= n;
        Some(&mut self.room[self.start..self.start + n])
    }

    #[inline]
    fn adj(&mut self, n: usize) -> bool {
        if n > self.end - self.start {
            return false;
        }
        self.start += n;
        true
    }

    #[inline]
    fn trim_to(&mut self, len: usize) -> bool {
        if len > self.end - self.start {
            return false;
        }
        self.end = self.start + len;
        true
    }

    #[inline]
    fn headroom(&self) -> usize {
        self.start
    }
}

/// Two ports (clients on 0, real servers on 1), a default route to the
/// client-side router, static neighbours; one TCP VIP:80 service, rr over 4
/// real servers with `method` (NAT to port 8080).
fn snapshot(method: Method) -> Snapshot {
    let mut neighbors = vec![(0u16, ROUTER, ROUTER_MAC)];
    neighbors.extend(RS.iter().map(|&a| (1u16, a, rs_mac(a))));
    let fib = Fib::new(
        vec![
            FibPort { mac: PORT_MAC[0], addrs: vec![(Ipv4Addr::new(10, 0, 1, 1), 24)] },
            FibPort { mac: PORT_MAC[1], addrs: vec![(Ipv4Addr::new(10, 0, 2, 1), 24)] },
        ],
        vec![Route { prefix: Ipv4Addr::UNSPECIFIED, len: 0, via: Some(ROUTER), port: 0 }],
        neighbors,
    );
    let port = if method == Method::Masq { NAT_PORT } else { VPORT };
    let dests: Vec<Dest> = RS
        .iter()
        .map(|&addr| Dest {
            addr,
            port,
            method,
            weight: 1,
            last_weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            shared: Arc::new(DestShared::default()),
        })
        .collect();
    let scheduler = Scheduler::build(SchedKind::Rr, 0, &dests);
    let sched_state: Box<[SchedState]> = vec![SchedState::default()].into_boxed_slice();
    for st in sched_state.iter() {
        scheduler.init_state(st);
    }
    let svc = Service {
        key: ServiceKey::Addr { proto: 6, vaddr: VIP, vport: VPORT },
        scheduler,
        persistence: None,
        one_packet: false,
        dests,
        sched_state,
    };
    Snapshot::new(fib, vec![svc], Timeouts::default(), Knobs::default(), 32)
}

/// One benchmark's world: the worker state, the frames it replays and where
/// the replay stands.
struct Case {
    lb: Lb,
    snap: Snapshot,
    counters: WorkerCounters,
    ring: Vec<Frame>,
    in_port: u16,
    pos: usize,
    now: u32,
    bufs: Vec<FrameBuf>,
    /// Prefetch the connection-table bucket of every packet of a burst before
    /// processing it (DESIGN.md "The hot path"; timed, key extraction included).
    prefetch: bool,
}

const NOW: u32 = 10;

impl Case {
    fn new(lb: Lb, snap: Snapshot, counters: WorkerCounters, ring: Vec<Frame>, in_port: u16) -> Case {
        assert!(ring.len() >= BURST);
        assert_eq!(ring.len() % BURST, 0, "ring of whole bursts");
        Case {
            lb,
            snap,
            counters,
            ring,
            in_port,
            pos: 0,
            now: NOW,
            bufs: (0..BURST).map(|_| FrameBuf::new()).collect(),
            prefetch: false,
        }
    }

    /// Processes one frame outside any timing and returns the verdict.
    fn once(&mut self, f: &Frame, in_port: u16) -> Verdict {
        let mut b = FrameBuf::new();
        b.restore(f);
        self.lb.process(&mut b, in_port, 0, &self.snap, self.now, &self.counters)
    }

    /// Every ring frame must be forwarded to `port`, and (NAT replies) leave
    /// with the VIP as source, proving it matched its connection. Run once,
    /// untimed.
    fn check_ring(&mut self, port: u16, from_vip: bool) {
        for k in 0..self.ring.len() {
            let mut b = FrameBuf::new();
            b.restore(&self.ring[k]);
            let v = self.lb.process(&mut b, self.in_port, 0, &self.snap, self.now, &self.counters);
            assert_eq!(v, Verdict::Forward { port }, "ring frame {k}");
            if from_vip {
                assert_eq!(&b.data()[26..30], &VIP.octets(), "ring frame {k}: reply not un-NATed");
            }
        }
    }

    /// Replays `iters` bursts from `from`: restore, then (if `process`) process.
    /// `tick`: every that many bursts (counted over the whole run) the clock
    /// advances 1 s and the timers run. Returns the elapsed time and the time
    /// spent in the timers.
    #[inline(never)]
    fn replay(
        &mut self,
        from: usize,
        iters: u64,
        process: bool,
        tick: Option<u64>,
        bursts: &mut u64,
    ) -> (Duration, Duration) {
        let mut pos = from;
        let mut timers = Duration::ZERO;
        let start = Instant::now();
        for _ in 0..iters {
            let burst = &self.ring[pos..pos + BURST];
            pos += BURST;
            if pos == self.ring.len() {
                pos = 0;
            }
            for (b, f) in self.bufs.iter_mut().zip(burst) {
                b.restore(f);
            }
            if process {
                if let Some(every) = tick {
                    *bursts += 1;
                    if *bursts == every {
                        *bursts = 0;
                        let t = Instant::now();
                        self.now += 1;
                        self.lb.expire(self.now);
                        timers += t.elapsed();
                    }
                }
                if self.prefetch {
                    // What the worker does for each rx burst: the buckets,
                    // then the entries they point to.
                    self.lb.prefetch_burst(self.bufs.iter().map(|b| b.data()));
                }
                for b in self.bufs.iter_mut() {
                    black_box(self.lb.process(b, self.in_port, 0, &self.snap, self.now, &self.counters));
                }
            }
            black_box(&mut self.bufs);
        }
        (start.elapsed(), timers)
    }
}

/// Totals over every call of a benchmark's routine (warm-up included).
#[derive(Default)]
struct Acc {
    process: Duration,
    copy: Duration,
    timers: Duration,
    packets: u64,
}

/// A row of the final table.
struct Row {
    name: String,
    ns_per_packet: f64,
    copy_ns: f64,
    note: String,
}

/// Runs one case under criterion: copy + process minus copy only.
fn bench_case(
    c: &mut Criterion,
    group: &str,
    id: &str,
    rows: &mut Vec<Row>,
    tick: Option<u64>,
    setup: impl FnOnce() -> Case,
    check: impl FnOnce(&Case, &Acc) -> String,
) {
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(BURST as u64));
    let mut case: Option<Case> = None;
    let mut setup = Some(setup);
    let mut acc = Acc::default();
    let mut bursts = 0u64;
    g.bench_function(id, |b| {
        let k = case.get_or_insert_with(|| (setup.take().expect("set up once"))());
        b.iter_custom(|iters| {
            let from = k.pos;
            let (total, timers) = k.replay(from, iters, true, tick, &mut bursts);
            let (copy, _) = k.replay(from, iters, false, None, &mut bursts);
            k.pos = (from + iters as usize * BURST) % k.ring.len();
            let d = total.saturating_sub(copy);
            acc.process += d;
            acc.copy += copy;
            acc.timers += timers;
            acc.packets += iters * BURST as u64;
            d
        })
    });
    g.finish();
    let (Some(k), true) = (case, acc.packets > 0) else { return };
    let note = check(&k, &acc);
    let n = acc.packets as f64;
    let row = Row {
        name: format!("{group}/{id}"),
        ns_per_packet: acc.process.as_nanos() as f64 / n,
        copy_ns: acc.copy.as_nanos() as f64 / n,
        note,
    };
    println!(
        "{}: {:.1} ns/packet, {:.2} Mpps over {} packets (restore copy {:.1} ns/packet excluded){}{}",
        row.name,
        row.ns_per_packet,
        1e3 / row.ns_per_packet,
        acc.packets,
        row.copy_ns,
        if row.note.is_empty() { "" } else { "; " },
        row.note
    );
    rows.push(row);
    // The case (up to ~110 MB at 1M flows) is dropped here.
}

/// An Lb for `flows` established flows of a service with `method`, each opened
/// with SYN (and, for NAT, the real server's SYN-ACK) then ACK.
fn established(method: Method, flows: usize) -> (Lb, Snapshot, WorkerCounters) {
    let snap = snapshot(method);
    let counters = WorkerCounters::new(2);
    let lb = Lb::new(0, (flows as f64 * 1.1) as u32, SEED);
    let mut k = Case::new(lb, snap, counters, vec![to_vip(client(CLIENTS, 0), Seg::Ack); BURST], 0);
    // Client → VIP leaves towards the real servers (port 1) whatever the method.
    let out = 1;
    for i in 0..flows {
        let c = client(CLIENTS, i);
        assert_eq!(k.once(&to_vip(c, Seg::Syn), 0), Verdict::Forward { port: out }, "SYN of flow {i}");
        if method == Method::Masq {
            let rs = RS[i % RS.len()];
            assert_eq!(k.once(&from_rs(rs, c, Seg::SynAck), 1), Verdict::Forward { port: 0 }, "SYN-ACK of flow {i}");
        }
        assert_eq!(k.once(&to_vip(c, Seg::Ack), 0), Verdict::Forward { port: out }, "ACK of flow {i}");
    }
    assert_eq!(k.lb.conns.len(), flows);
    (k.lb, k.snap, k.counters)
}

/// The ring of ACKs (client → VIP, or NAT replies) of random established flows.
fn ack_ring(flows: usize, replies: bool) -> Vec<Frame> {
    let n = flows.min(RING_MAX);
    Rng(SEED)
        .sample(flows, n)
        .into_iter()
        .map(|i| {
            let c = client(CLIENTS, i);
            // rr from the list head with one worker: flow i went to RS[i % 4].
            if replies {
                from_rs(RS[i % RS.len()], c, Seg::Ack)
            } else {
                to_vip(c, Seg::Ack)
            }
        })
        .collect()
}

/// Established flows must stay hits: no connection created while timing.
fn no_new_conns(flows: usize) -> impl FnOnce(&Case, &Acc) -> String {
    move |k, _| {
        assert_eq!(k.lb.conns.len(), flows, "table changed while timing");
        assert_eq!(k.counters.conns_created.get() as usize, flows, "a timed packet missed its connection");
        String::new()
    }
}

fn established_case(method: Method, flows: usize, replies: bool) -> Case {
    let (lb, snap, counters) = established(method, flows);
    let mut k = Case::new(lb, snap, counters, ack_ring(flows, replies), if replies { 1 } else { 0 });
    k.check_ring(if replies { 0 } else { 1 }, replies);
    k
}

fn label(flows: usize) -> String {
    if flows >= 1 << 20 {
        format!("{}M", flows >> 20)
    } else {
        format!("{}k", flows >> 10)
    }
}

fn bench_established(c: &mut Criterion, rows: &mut Vec<Row>) {
    for flows in [1 << 10, 1 << 16, 1 << 20] {
        let id = label(flows);
        bench_case(
            c,
            "dr_established",
            &id,
            rows,
            None,
            || established_case(Method::Route, flows, false),
            no_new_conns(flows),
        );
    }
    for flows in [1 << 16, 1 << 20] {
        let id = label(flows);
        let setup = move || {
            let mut k = established_case(Method::Route, flows, false);
            k.prefetch = true;
            k
        };
        bench_case(c, "dr_established_prefetch", &id, rows, None, setup, no_new_conns(flows));
    }
    // The same 64k DR flows with a master sync daemon on (specs/ipvs.md §5.4):
    // every packet runs the sync decision; every 50th packet of a flow queues
    // a record on the worker's ring. Nothing drains the ring here, so after
    // 8192 records the pushes are refused and counted (the cost of a slow
    // sync thread: never a stall).
    let flows = 1 << 16;
    let setup = move || {
        let mut k = established_case(Method::Route, flows, false);
        let params = Arc::new(dataplane::sync::SyncParams::default());
        params.master.store(true, Relaxed);
        params.resync_period.store(0, Relaxed);
        k.lb.sync = Some(Arc::new(dataplane::sync::SyncPort::new(dataplane::sync::RING_RECORDS, params)));
        k
    };
    let check = move |k: &Case, acc: &Acc| {
        let p = k.lb.sync.as_ref().expect("sync port");
        format!(
            "{} records queued, {} refused (ring full) for {} packets",
            p.queued.get(),
            p.queue_full.get(),
            acc.packets
        )
    };
    bench_case(c, "sync_master_dr_established", &label(flows), rows, None, setup, check);
    for (dir, replies) in [("in", false), ("out", true)] {
        let id = format!("{dir}_{}", label(flows));
        bench_case(
            c,
            "nat_established",
            &id,
            rows,
            None,
            || established_case(Method::Masq, flows, replies),
            no_new_conns(flows),
        );
    }
    bench_case(
        c,
        "tun_established",
        &label(flows),
        rows,
        None,
        || established_case(Method::Tunnel, flows, false),
        no_new_conns(flows),
    );
}

/// Bursts per second of replay clock in the new-connection case: 2048 SYNs/s,
/// so a 256k ring wraps after 128 s, well past the 60 s SYN_RECV timeout.
const NEW_CONN_TICK: u64 = 64;

fn bench_new_conns(c: &mut Criterion, rows: &mut Vec<Row>) {
    let setup = || {
        let ring: Vec<Frame> = (0..RING_MAX).map(|i| to_vip(client(NEW_CLIENTS, i), Seg::Syn)).collect();
        let lb = Lb::new(0, RING_MAX as u32, SEED);
        Case::new(lb, snapshot(Method::Route), WorkerCounters::new(2), ring, 0)
    };
    let check = |k: &Case, acc: &Acc| {
        // Every timed SYN made a connection: none met a live entry or a full table.
        assert_eq!(k.counters.conns_created.get(), acc.packets, "a SYN did not create a connection");
        format!(
            "{} live entries at the end, timers {:.1} ns/conn (included)",
            k.lb.conns.len(),
            acc.timers.as_nanos() as f64 / acc.packets as f64
        )
    };
    bench_case(c, "new_conn", "dr_syn", rows, Some(NEW_CONN_TICK), setup, check);
}

/// Resident set size in bytes (`/proc/self/statm`, 4 KiB pages).
fn rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Prints the memory a connection costs: the static figure and the measured one.
fn memory_report() {
    const N: u32 = 1_000_000;
    let before = rss();
    let mut t = ConnTable::new(N, SEED);
    let dest = Arc::new(DestShared::default());
    for i in 0..N as usize {
        let (ca, cp) = client(CLIENTS, i);
        let rs = RS[i % RS.len()];
        let conn = Conn::new(6, ca, cp, VIP, VPORT, rs, VPORT, Method::Route as u16 | cf::NOOUTPUT, Some(dest.clone()));
        t.insert(conn, 1).expect("table sized for N");
    }
    let after = rss();
    assert_eq!(t.len(), N as usize);
    println!(
        "memory per connection: ConnTable::bytes_per_entry() = {} B (Conn {} B + one u32 bucket head); \
         buckets round up to a power of two ({} for {N} entries: {:.2} B/entry)",
        ConnTable::bytes_per_entry(),
        std::mem::size_of::<Conn>(),
        N.next_power_of_two(),
        f64::from(N.next_power_of_two()) * 4.0 / f64::from(N)
    );
    match (before, after) {
        (Some(b), Some(a)) => println!(
            "memory per connection: measured RSS delta {} B over {N} entries = {:.1} B/conn",
            a.saturating_sub(b),
            a.saturating_sub(b) as f64 / f64::from(N)
        ),
        _ => println!("memory per connection: /proc/self/statm unreadable, no measured figure"),
    }
    assert_eq!(dest.inactconns.load(Relaxed), N as i32);
    drop(t);
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    memory_report();
    let mut rows = Vec::new();
    bench_established(&mut c, &mut rows);
    bench_new_conns(&mut c, &mut rows);
    c.final_summary();
    if !rows.is_empty() {
        println!("\n{:<28} {:>10} {:>8} {:>12}", "case", "ns/packet", "Mpps", "copy ns/pkt");
        for r in &rows {
            println!(
                "{:<28} {:>10.1} {:>8.2} {:>12.1}  {}",
                r.name,
                r.ns_per_packet,
                1e3 / r.ns_per_packet,
                r.copy_ns,
                r.note
            );
        }
    }
}
