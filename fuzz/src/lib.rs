//! The harness that feeds arbitrary frames to `dataplane::lb::Lb::process`,
//! shared by the libFuzzer target (`fuzz_targets/lb_process.rs`) and the
//! normal test suite (`dataplane/tests/malformed.rs` includes this file with
//! `#[path]`). Only `dataplane` and `std`: no other dependency.
//!
//! Topology (one [`Snapshot`], built fresh for every input so runs are
//! deterministic):
//!
//! - port 0 `02:00:00:00:01:01` 10.0.1.1/24 (clients), default route via
//!   10.0.1.254 (`02:00:00:00:01:fe`);
//! - port 1 `02:00:00:00:02:01` 10.0.2.1/24 (real servers), neighbours
//!   10.0.2.11-13 (`02:00:00:00:02:0b`..`0d`);
//! - services on VIP 10.0.0.100:
//!   TCP :80 rr NAT → 10.0.2.11:8080, 10.0.2.12:8080;
//!   TCP :443 wlc persistent 60 DR → 10.0.2.11, 10.0.2.12;
//!   UDP :53 sh TUN → 10.0.2.12, 10.0.2.13;
//!   TCP :0 (port 0) wlc persistent 300 /24 NAT → 10.0.2.13;
//!   fwmark 7 mh DR → 10.0.2.11, 10.0.2.12, 10.0.2.13.
//!
//! Input format: a sequence of records, each
//! `[flags u8][mark u8][dt u8][len u16 big-endian][len bytes of frame]`
//! (a short last record takes what is left). `flags`:
//! bit 0 = in_port 1 (else 0), bit 1 = no headroom (else 128 bytes),
//! bit 2 = fix the IPv4 header checksum, bit 3 = fix the TCP/UDP/ICMP
//! checksum, bit 4 = run `Lb::expire` after the packet. `mark` is the
//! firewall mark (0 = none). `dt` seconds are added to the clock before the
//! packet (and `Lb::expire` runs when it is nonzero). The checksum bits let
//! a fuzzer get past checksum validation without solving it.
//!
//! Invariants checked after every packet (a violation panics, which the
//! fuzzer reports as a crash): a `Forward` port is < 2; a forwarded frame is
//! an untagged IPv4 frame of at least 34 bytes with a valid header checksum
//! and a total length that matches the frame; the connection table holds no
//! more than its capacity. At the end the clock runs 20000 s on: the table
//! must empty and every real server's connection counts return to 0.
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use conf::Method;
use dataplane::buf::VecBuf;
use dataplane::counters::WorkerCounters;
use dataplane::fwd::{Fib, FibPort, Route};
use dataplane::lb::Lb;
use dataplane::proto::Timeouts;
use dataplane::sched::{SchedKind, Scheduler};
use dataplane::service::{Dest, DestShared, Persistence, SchedState, Service, ServiceKey};
use dataplane::snapshot::{Knobs, Snapshot};
use dataplane::verdict::Verdict;

pub const PORT0_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];
pub const PORT1_MAC: [u8; 6] = [2, 0, 0, 0, 2, 1];
pub const GW_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0xfe];
pub const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 9, 1];
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
pub const GW: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 254);
pub const FWMARK: u32 = 7;
pub const HEADROOM: usize = 128;
/// Connection table size: small, so that a fuzzer can fill it.
pub const CONNS: u32 = 64;

pub mod flags {
    pub const PORT1: u8 = 0x01;
    pub const NO_HEADROOM: u8 = 0x02;
    pub const FIX_IP_CSUM: u8 = 0x04;
    pub const FIX_L4_CSUM: u8 = 0x08;
    pub const EXPIRE: u8 = 0x10;
    /// Keep the frame's destination MAC as it is; without this flag a unicast
    /// destination MAC is set to the receiving port's (what the wire delivers),
    /// so inputs reach the IP layer.
    pub const RAW_L2: u8 = 0x20;
}

pub fn rs(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 2, n)
}

pub fn rs_mac(n: u8) -> [u8; 6] {
    [2, 0, 0, 0, 2, n]
}

fn fib() -> Fib {
    let mut neighbors = vec![(0u16, GW, GW_MAC)];
    for n in 11..=13 {
        neighbors.push((1, rs(n), rs_mac(n)));
    }
    Fib::new(
        vec![
            FibPort { mac: PORT0_MAC, addrs: vec![(Ipv4Addr::new(10, 0, 1, 1), 24)] },
            FibPort { mac: PORT1_MAC, addrs: vec![(Ipv4Addr::new(10, 0, 2, 1), 24)] },
        ],
        vec![Route { prefix: Ipv4Addr::UNSPECIFIED, len: 0, via: Some(GW), port: 0 }],
        neighbors,
    )
}

fn service(
    key: ServiceKey,
    kind: SchedKind,
    persistence: Option<Persistence>,
    method: Method,
    dests: &[(u8, u16)],
) -> Service {
    // IPVS order: the most recently added first.
    let dests: Vec<Dest> = dests
        .iter()
        .rev()
        .map(|&(n, port)| Dest {
            addr: rs(n),
            port,
            method,
            weight: 1,
            last_weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            shared: Arc::new(DestShared::default()),
        })
        .collect();
    let scheduler = Scheduler::build(kind, 0, &dests);
    let sched_state: Box<[SchedState]> = vec![SchedState::default()].into_boxed_slice();
    for st in sched_state.iter() {
        scheduler.init_state(st);
    }
    Service { key, scheduler, persistence, one_packet: false, dests, sched_state }
}

/// The snapshot of the module doc.
pub fn snapshot() -> Snapshot {
    let tcp = |vport| ServiceKey::Addr { proto: 6, vaddr: VIP, vport };
    let host = Ipv4Addr::new(255, 255, 255, 255);
    let services = vec![
        service(tcp(80), SchedKind::Rr, None, Method::Masq, &[(11, 8080), (12, 8080)]),
        service(
            tcp(443),
            SchedKind::Wlc,
            Some(Persistence { timeout: 60, netmask: host }),
            Method::Route,
            &[(11, 443), (12, 443)],
        ),
        service(
            ServiceKey::Addr { proto: 17, vaddr: VIP, vport: 53 },
            SchedKind::Sh,
            None,
            Method::Tunnel,
            &[(12, 53), (13, 53)],
        ),
        service(
            tcp(0),
            SchedKind::Wlc,
            Some(Persistence { timeout: 300, netmask: Ipv4Addr::new(255, 255, 255, 0) }),
            Method::Masq,
            &[(13, 0)],
        ),
        service(ServiceKey::Fwmark(FWMARK), SchedKind::Mh, None, Method::Route, &[(11, 0), (12, 0), (13, 0)]),
    ];
    Snapshot::new(fib(), services, Timeouts::default(), Knobs::default(), 32)
}

/// One input record (see the module doc).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub flags: u8,
    pub mark: u8,
    pub dt: u8,
    pub frame: Vec<u8>,
}

impl Record {
    /// A frame on port 0 with headroom, checksums as they are, at the same time.
    pub fn frame(frame: Vec<u8>) -> Record {
        Record { flags: 0, mark: 0, dt: 0, frame }
    }
}

/// Splits an input into records.
pub fn decode(mut data: &[u8]) -> Vec<Record> {
    let mut out = Vec::new();
    while let [flags, mark, dt, rest @ ..] = data {
        let (len, rest) = match rest {
            [a, b, rest @ ..] => (usize::from(u16::from_be_bytes([*a, *b])), rest),
            _ => (rest.len(), &[][..]),
        };
        let n = len.min(rest.len());
        out.push(Record { flags: *flags, mark: *mark, dt: *dt, frame: rest[..n].to_vec() });
        data = &rest[n..];
    }
    out
}

/// The inverse of [`decode`] (frames longer than 65535 bytes are cut).
pub fn encode(records: &[Record]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        let n = r.frame.len().min(usize::from(u16::MAX));
        out.extend_from_slice(&[r.flags, r.mark, r.dt]);
        out.extend_from_slice(&(n as u16).to_be_bytes());
        out.extend_from_slice(&r.frame[..n]);
    }
    out
}

/// RFC 1071 sum of `data` folded to 16 bits, not complemented.
pub fn sum16(data: &[u8], init: u32) -> u16 {
    let mut s = u64::from(init);
    for c in data.chunks(2) {
        s += u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// Whether the IPv4 header at `ip` sums to 0xffff.
pub fn ipv4_header_ok(ip: &[u8]) -> bool {
    let Some(&vihl) = ip.first() else { return false };
    let hl = usize::from(vihl & 0x0f) * 4;
    vihl >> 4 == 4 && hl >= 20 && ip.len() >= hl && sum16(&ip[..hl], 0) == 0xffff
}

/// Recomputes the IPv4 header checksum (and, with `l4`, the TCP/UDP/ICMP
/// checksum over what the total length covers) of an untagged frame, where
/// the header is readable; anything else is left as it is.
pub fn fix_checksums(frame: &mut [u8], l4: bool) {
    if frame.len() < 34 || frame[12..14] != [8, 0] {
        return;
    }
    let ip = &mut frame[14..];
    let hl = usize::from(ip[0] & 0x0f) * 4;
    if hl < 20 || hl > ip.len() {
        return;
    }
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).clamp(hl, ip.len());
    if l4 && ip[6] & 0x3f == 0 && ip[7] == 0 {
        // Whole datagrams only (MF and offset 0).
        let proto = ip[9];
        let pseudo = {
            let mut p = [0u8; 12];
            p[..8].copy_from_slice(&ip[12..20]);
            p[9] = proto;
            p[10..12].copy_from_slice(&((total - hl) as u16).to_be_bytes());
            p
        };
        let seg = &mut ip[hl..total];
        let at = match proto {
            1 => Some(2),
            6 => Some(16),
            17 => Some(6),
            _ => None,
        };
        if let Some(at) = at.filter(|at| at + 2 <= seg.len()) {
            seg[at..at + 2].fill(0);
            let init = if proto == 1 { 0 } else { u32::from(sum16(&pseudo, 0)) };
            let mut c = !sum16(seg, init);
            if proto == 17 && c == 0 {
                c = 0xffff;
            }
            seg[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }
    }
    ip[10..12].fill(0);
    let c = !sum16(&ip[..hl], 0);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
}

/// One worker's state plus the snapshot it reads.
pub struct Harness {
    pub snap: Arc<Snapshot>,
    pub lb: Lb,
    pub counters: WorkerCounters,
    pub now: u32,
}

impl Default for Harness {
    fn default() -> Self {
        Harness::new()
    }
}

impl Harness {
    /// A harness with a snapshot of its own.
    pub fn new() -> Harness {
        Harness::with(Arc::new(snapshot()))
    }

    /// A harness on `snap`, whose schedulers restart from the list head. The
    /// real servers' counts carry over: [`Harness::drain`] checks they return
    /// to 0, so a snapshot can serve one run after another (the fuzz target
    /// builds it once; mh's table is costly).
    pub fn with(snap: Arc<Snapshot>) -> Harness {
        for s in &snap.services {
            for st in s.sched_state.iter() {
                s.scheduler.init_state(st);
            }
        }
        Harness { snap, lb: Lb::new(0, CONNS, 0x5eed), counters: WorkerCounters::new(2), now: 1 }
    }

    /// Processes one record; returns the verdict and the frame as it left
    /// (or as it was when dropped). Panics if an invariant breaks.
    pub fn step(&mut self, r: &Record) -> (Verdict, Vec<u8>) {
        if r.dt != 0 {
            self.now = self.now.wrapping_add(u32::from(r.dt));
            self.lb.expire(self.now);
        }
        let mut frame = r.frame.clone();
        let in_port = u16::from(r.flags & flags::PORT1);
        if r.flags & flags::RAW_L2 == 0 {
            if let Some(dst) = frame.get_mut(0..6) {
                if dst[0] & 1 == 0 {
                    dst.copy_from_slice(if in_port == 0 { &PORT0_MAC } else { &PORT1_MAC });
                }
            }
        }
        if r.flags & (flags::FIX_IP_CSUM | flags::FIX_L4_CSUM) != 0 {
            fix_checksums(&mut frame, r.flags & flags::FIX_L4_CSUM != 0);
        }
        let headroom = if r.flags & flags::NO_HEADROOM != 0 { 0 } else { HEADROOM };
        let mut buf = VecBuf::new(&frame, headroom);
        let v = self.lb.process(&mut buf, in_port, u32::from(r.mark), &self.snap, self.now, &self.counters);
        if let Verdict::Drop(reason) = v {
            self.counters.count_drop(reason, 1);
        }
        if r.flags & flags::EXPIRE != 0 {
            self.lb.expire(self.now);
        }
        let out = buf.into_vec();
        check(v, &out, &self.lb);
        (v, out)
    }

    /// Runs the clock 20000 s on in steps the timer wheel covers: every
    /// connection and template must be gone, and every real server's counts
    /// back to 0.
    pub fn drain(&mut self) {
        for _ in 0..5 {
            if self.lb.conns.is_empty() {
                break;
            }
            self.now = self.now.wrapping_add(4000);
            self.lb.expire(self.now);
        }
        assert_eq!(self.lb.conns.len(), 0, "connections left after 20000 s");
        assert_eq!(self.lb.conns.iter().count(), 0, "timers left after 20000 s");
        for s in &self.snap.services {
            for d in &s.dests {
                let sh = &d.shared;
                let counts = (sh.activeconns.load(Relaxed), sh.inactconns.load(Relaxed), sh.persistconns.load(Relaxed));
                assert_eq!(counts, (0, 0, 0), "{:?} dest {}: counts after the table emptied", s.key, d.addr);
            }
        }
    }
}

/// The per-packet invariants of the module doc.
pub fn check(v: Verdict, out: &[u8], lb: &Lb) {
    if let Verdict::Forward { port } = v {
        assert!(port < 2, "forward to port {port}");
        assert!(out.len() >= 14, "forwarded frame of {} bytes", out.len());
        assert_eq!(out[12..14], [8, 0], "forwarded frame is not untagged IPv4");
        let ip = &out[14..];
        assert!(ipv4_header_ok(ip), "forwarded IPv4 header invalid or bad checksum: {:02x?}", &ip[..ip.len().min(60)]);
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        assert_eq!(total, ip.len(), "IPv4 total length vs frame");
    }
    assert!(
        lb.conns.len() <= lb.conns.capacity(),
        "{} connections in a table of {}",
        lb.conns.len(),
        lb.conns.capacity()
    );
}

/// Feeds a whole input to `h`, then drains the table. Returns the verdicts.
pub fn run_on(mut h: Harness, data: &[u8]) -> Vec<Verdict> {
    let v = decode(data).iter().map(|r| h.step(r).0).collect();
    h.drain();
    v
}

/// [`run_on`] a fresh harness.
pub fn run(data: &[u8]) -> Vec<Verdict> {
    run_on(Harness::new(), data)
}

/// The same as [`run`] for records already split.
pub fn run_records(records: &[Record]) -> Vec<(Verdict, Vec<u8>)> {
    let mut h = Harness::new();
    let v = records.iter().map(|r| h.step(r)).collect();
    h.drain();
    v
}
