//! In-process golden tests of the load-balancing path: frames built and decoded
//! with etherparse, snapshots changed between packets the way the control side
//! will (quiesce, remove, knobs), outcomes checked against specs/ipvs.md.
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use etherparse::{Icmpv4Type, NetSlice, PacketBuilder, SlicedPacket, TransportSlice};

use super::*;
use crate::buf::VecBuf;
use crate::fwd::{Fib, FibPort, Route};
use crate::proto::Timeouts;
use crate::sched::{SchedKind, Scheduler};
use crate::service::{Dest, DestShared, Persistence, SchedState};
use crate::snapshot::Knobs;
use crate::wire::tcp::flags::{ACK, FIN, RST, SYN};

const P0_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];
const P1_MAC: [u8; 6] = [2, 0, 0, 0, 2, 1];
const GW_MAC: [u8; 6] = [2, 0, 0, 0, 0xfe, 1];
const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);

fn rs(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 2, 10 + n)
}

fn client(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, n)
}

fn dest(n: u8, port: u16, method: FwdMethod, weight: u32) -> Dest {
    let shared = DestShared::default();
    shared.weight.store(weight, Relaxed);
    Dest {
        addr: rs(n),
        port,
        method,
        weight,
        last_weight: weight,
        u_threshold: 0,
        l_threshold: 0,
        shared: Arc::new(shared),
    }
}

fn service(key: ServiceKey, kind: SchedKind, persistence: Option<Persistence>, dests: Vec<Dest>) -> Service {
    let scheduler = Scheduler::build(kind, 0, &dests);
    let st = SchedState::default();
    scheduler.init_state(&st);
    Service { key, scheduler, persistence, one_packet: false, dests, sched_state: vec![st].into_boxed_slice() }
}

fn tcp_svc(vport: u16) -> ServiceKey {
    ServiceKey::Addr { proto: PROTO_TCP, vaddr: VIP, vport }
}

fn fib() -> Fib {
    let mut neigh = vec![(0u16, Ipv4Addr::new(10, 0, 1, 254), GW_MAC)];
    for n in 1..=3 {
        neigh.push((1, rs(n), [2, 0, 0, 0, 2, 10 + n]));
    }
    Fib::new(
        vec![
            FibPort { mac: P0_MAC, addrs: vec![(Ipv4Addr::new(10, 0, 1, 1), 24)] },
            FibPort { mac: P1_MAC, addrs: vec![(Ipv4Addr::new(10, 0, 2, 1), 24)] },
        ],
        vec![Route { prefix: Ipv4Addr::UNSPECIFIED, len: 0, via: Some(Ipv4Addr::new(10, 0, 1, 254)), port: 0 }],
        neigh,
    )
}

fn snap(services: Vec<Service>, knobs: Knobs) -> Snapshot {
    Snapshot::new(fib(), services, Timeouts::default(), knobs, 32)
}

fn tcp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, flags: u8) -> Vec<u8> {
    tcp_sized(src, sport, dst, dport, flags, 0, false)
}

fn tcp_sized(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, flags: u8, len: usize, df: bool) -> Vec<u8> {
    let mut b =
        PacketBuilder::ethernet2(GW_MAC, P0_MAC).ipv4(src.octets(), dst.octets(), 64).tcp(sport, dport, 1, 1000);
    if flags & SYN != 0 {
        b = b.syn();
    }
    if flags & ACK != 0 {
        b = b.ack(1);
    }
    if flags & FIN != 0 {
        b = b.fin();
    }
    if flags & RST != 0 {
        b = b.rst();
    }
    let mut v = Vec::new();
    b.write(&mut v, &vec![0x5a; len]).unwrap();
    // etherparse sets DF by default; make it what the case asks for.
    if df {
        v[20] |= 0x40;
    } else {
        v[20] &= !0x40;
    }
    v[24] = 0;
    v[25] = 0;
    let c = crate::checksum::ipv4_header_checksum(&v[14..34]);
    v[24..26].copy_from_slice(&c.to_be_bytes());
    v
}

struct Rig {
    lb: Lb,
    counters: WorkerCounters,
}

impl Rig {
    fn new() -> Rig {
        Rig { lb: Lb::new(0, 1024, 99), counters: WorkerCounters::new(2) }
    }

    fn send(&mut self, s: &Snapshot, frame: &[u8], now: u32) -> (Verdict, Vec<u8>) {
        let mut b = VecBuf::new(frame, 128);
        self.lb.expire(now);
        let v = self.lb.process(&mut b, 0, 0, s, now, &self.counters);
        (v, b.into_vec())
    }

    fn send_marked(&mut self, s: &Snapshot, frame: &[u8], mark: u32) -> (Verdict, Vec<u8>) {
        let mut b = VecBuf::new(frame, 128);
        let v = self.lb.process(&mut b, 0, mark, s, 0, &self.counters);
        (v, b.into_vec())
    }

    /// The real server (1-based) a forwarded frame went to (NAT: IP dst; DR: MAC).
    fn server_of(out: &[u8]) -> u8 {
        let p = SlicedPacket::from_ethernet(out).unwrap();
        let Some(NetSlice::Ipv4(ip)) = &p.net else { panic!("not ipv4") };
        let dst = ip.header().destination_addr();
        if dst == VIP {
            out[5] - 10
        } else {
            dst.octets()[3] - 10
        }
    }
}

#[test]
fn quiesced_server_keeps_its_connections_but_gets_no_new_ones() {
    let mut r = Rig::new();
    let d = vec![dest(2, 80, FwdMethod::Masq, 1), dest(1, 80, FwdMethod::Masq, 1)];
    let s1 = snap(vec![service(tcp_svc(80), SchedKind::Rr, None, d.clone())], Knobs::default());
    let (_, out) = r.send(&s1, &tcp(client(1), 1000, VIP, 80, SYN), 0);
    let first = Rig::server_of(&out);
    // Quiesce that server (specs §1: weight 0): a new snapshot, same identity.
    let mut d2 = d.clone();
    for x in d2.iter_mut().filter(|x| x.addr == rs(first)) {
        x.weight = 0;
        x.shared.weight.store(0, Relaxed);
    }
    let s2 = snap(vec![service(tcp_svc(80), SchedKind::Rr, None, d2)], Knobs::default());
    let (v, out) = r.send(&s2, &tcp(client(1), 1000, VIP, 80, ACK), 1);
    assert_eq!(v, Verdict::Forward { port: 1 });
    assert_eq!(Rig::server_of(&out), first, "established flow stays");
    for p in 0..4 {
        let (_, out) = r.send(&s2, &tcp(client(2), 2000 + p, VIP, 80, SYN), 1);
        assert_ne!(Rig::server_of(&out), first, "new connections avoid the quiesced server");
    }
}

fn persistent_quiesce(expire_quiescent_template: bool) -> (u8, u8) {
    let mut r = Rig::new();
    let p = Some(Persistence { timeout: 300, netmask: Ipv4Addr::BROADCAST });
    let d = vec![dest(2, 80, FwdMethod::Masq, 1), dest(1, 80, FwdMethod::Masq, 1)];
    let knobs = Knobs { expire_quiescent_template, ..Knobs::default() };
    let s1 = snap(vec![service(tcp_svc(80), SchedKind::Rr, p, d.clone())], knobs);
    let (_, out) = r.send(&s1, &tcp(client(1), 1000, VIP, 80, SYN), 0);
    let first = Rig::server_of(&out);
    let mut d2 = d.clone();
    for x in d2.iter_mut().filter(|x| x.addr == rs(first)) {
        x.weight = 0;
        x.shared.weight.store(0, Relaxed);
    }
    let s2 = snap(vec![service(tcp_svc(80), SchedKind::Rr, p, d2)], knobs);
    let (_, out) = r.send(&s2, &tcp(client(1), 1001, VIP, 80, SYN), 1);
    (first, Rig::server_of(&out))
}

#[test]
fn persistent_clients_follow_a_quiesced_server_unless_expire_quiescent_template() {
    // §2.4: with the default 0, the template keeps sending the client there.
    let (first, second) = persistent_quiesce(false);
    assert_eq!(first, second);
    let (first, second) = persistent_quiesce(true);
    assert_ne!(first, second);
}

fn removed_dest(expire_nodest_conn: bool) -> (Verdict, Option<u8>, u8) {
    let mut r = Rig::new();
    let d = vec![dest(2, 80, FwdMethod::Masq, 1), dest(1, 80, FwdMethod::Masq, 1)];
    let knobs = Knobs { expire_nodest_conn, ..Knobs::default() };
    let s1 = snap(vec![service(tcp_svc(80), SchedKind::Rr, None, d.clone())], knobs);
    let (_, out) = r.send(&s1, &tcp(client(1), 1000, VIP, 80, SYN), 0);
    let first = Rig::server_of(&out);
    // Remove it: the control side clears AVAILABLE and publishes a list without it.
    let kept: Vec<Dest> = d.iter().filter(|x| x.addr != rs(first)).cloned().collect();
    for x in d.iter().filter(|x| x.addr == rs(first)) {
        x.shared.available.store(false, Relaxed);
    }
    let s2 = snap(vec![service(tcp_svc(80), SchedKind::Rr, None, kept)], knobs);
    let (v, out) = r.send(&s2, &tcp(client(1), 1000, VIP, 80, ACK), 1);
    let to = matches!(v, Verdict::Forward { .. }).then(|| Rig::server_of(&out));
    (v, to, first)
}

#[test]
fn removed_server_drops_or_reschedules_per_expire_nodest_conn() {
    // §2.4 default: packets of its connections are dropped silently.
    let (v, _, _) = removed_dest(false);
    assert_eq!(v, Verdict::Drop(DropReason::DestUnavailable));
    // expire_nodest_conn = 1: the entry goes and the packet is treated as new —
    // but it is an ACK, not a SYN, so TCP cannot start a connection with it.
    let (v, _, _) = removed_dest(true);
    assert_eq!(v, Verdict::Drop(DropReason::TcpNoConn));
}

#[test]
fn a_syn_reuses_a_closed_connection_per_conn_reuse_mode() {
    for (mode, reschedule) in [(1u8, true), (0, false)] {
        let mut r = Rig::new();
        let d = vec![dest(2, 80, FwdMethod::Masq, 1), dest(1, 80, FwdMethod::Masq, 1)];
        let knobs = Knobs { conn_reuse_mode: mode, ..Knobs::default() };
        let s = snap(vec![service(tcp_svc(80), SchedKind::Rr, None, d)], knobs);
        let (_, out) = r.send(&s, &tcp(client(1), 1000, VIP, 80, SYN), 0);
        let first = Rig::server_of(&out);
        r.send(&s, &tcp(client(1), 1000, VIP, 80, ACK), 0); // → ESTABLISHED
        r.send(&s, &tcp(client(1), 1000, VIP, 80, RST), 0); // → CLOSE
        let (_, out) = r.send(&s, &tcp(client(1), 1000, VIP, 80, SYN), 1);
        assert_eq!(Rig::server_of(&out) != first, reschedule, "conn_reuse_mode {mode}");
    }
}

// ---- A new SYN on a reused client port (specs/ipvs.md §2.4, §3.3) ----
//
// IPVS's order (ip_vs_in_hook): a SYN on an existing entry is rescheduled
// first if (a) expire_nodest_conn = 1 and the entry's server has weight 0, or
// else (b) conn_reuse_mode ≠ 0 and the entry is uncontrolled (not persistent)
// in TIME_WAIT or CLOSE (or, with bit 2, FIN_WAIT without output). Only then is
// the server's status checked: removed → dropped, or with expire_nodest_conn
// = 1 expired and scheduled afresh. Either expiry leaves a persistence
// template in place (§2.3), and scheduling goes through it (§2.2, §2.4).

/// What happened to rs3 after the first connection (on it) ended.
#[derive(Clone, Copy, Debug)]
enum Rs3 {
    /// `-d`: AVAILABLE cleared, out of the list, weight left as it was.
    Deleted,
    /// `-e -w 0`, then `-d`.
    Drained,
    /// `-e -w 0`: still listed, never chosen by the scheduler.
    Quiesced,
}

/// The state the first connection's entry was left in.
#[derive(Clone, Copy, Debug)]
enum Old {
    TimeWait,
    Close,
    FinWait,
    Established,
}

/// The fate of the new SYN from the same client port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Syn {
    /// Scheduled afresh onto rs1 or rs2 (a new connection).
    Resched,
    /// Forwarded to rs3 on the old entry (no new connection).
    Keep,
    /// The old entry expired; a new connection to rs3 through the
    /// persistence template, which outlives it.
    Rs3New,
    /// Dropped (`dest_unavailable`).
    Dropped,
}

fn reused_port_syn(method: FwdMethod, persistent: bool, old: Old, rs3: Rs3, mode: u8, nodest: bool) -> Syn {
    let mut r = Rig::new();
    let p = persistent.then_some(Persistence { timeout: 300, netmask: Ipv4Addr::BROADCAST });
    let knobs = Knobs { conn_reuse_mode: mode, expire_nodest_conn: nodest, ..Knobs::default() };
    let d3 = dest(3, 80, method, 1);
    let s1 = snap(vec![service(tcp_svc(80), SchedKind::Rr, p, vec![d3.clone()])], knobs);
    let (_, out) = r.send(&s1, &tcp(client(1), 1000, VIP, 80, SYN), 0);
    assert_eq!(Rig::server_of(&out), 3);
    let (steps, state): (&[u8], _) = match old {
        Old::TimeWait => (&[FIN], TcpState::TimeWait),          // SR + fin → TW
        Old::Close => (&[ACK, RST], TcpState::Close),           // ES + rst → CL
        Old::FinWait => (&[ACK, FIN | ACK], TcpState::FinWait), // INPUT_ONLY ES + fin → FW
        Old::Established => (&[ACK], TcpState::Established),
    };
    for f in steps {
        r.send(&s1, &tcp(client(1), 1000, VIP, 80, *f), 1);
    }
    let conn = r.lb.conns.iter().find(|(_, c)| !c.is_template()).map(|(_, c)| c.tcp_state());
    assert_eq!(conn, Some(state), "{old:?}");
    let mut dests = vec![dest(2, 80, method, 1), dest(1, 80, method, 1)];
    match rs3 {
        Rs3::Deleted => d3.shared.available.store(false, Relaxed),
        Rs3::Drained => {
            d3.shared.weight.store(0, Relaxed);
            d3.shared.available.store(false, Relaxed);
        }
        Rs3::Quiesced => {
            d3.shared.weight.store(0, Relaxed);
            dests.insert(0, Dest { weight: 0, ..d3.clone() });
        }
    }
    let s2 = snap(vec![service(tcp_svc(80), SchedKind::Rr, p, dests)], knobs);
    let created = r.counters.conns_created.get();
    let (v, out) = r.send(&s2, &tcp(client(1), 1000, VIP, 80, SYN), 2);
    let new = r.counters.conns_created.get() > created;
    match v {
        Verdict::Drop(DropReason::DestUnavailable) => Syn::Dropped,
        Verdict::Forward { .. } => match (Rig::server_of(&out), new) {
            (1 | 2, true) => Syn::Resched,
            (3, false) => Syn::Keep,
            (3, true) => Syn::Rs3New,
            other => panic!("unexpected outcome {other:?}"),
        },
        other => panic!("unexpected verdict {other:?}"),
    }
}

#[test]
fn a_syn_on_a_reused_port_follows_ipvs_order_of_reuse_then_server_status() {
    use FwdMethod::{Masq, Route};
    use Old::*;
    use Rs3::*;
    use Syn::*;
    // (method, persistent, old entry, rs3, expire_nodest_conn,
    //  outcome for conn_reuse_mode 0, 1, 2); the letters name the kernel's
    //  path: (a)/(b) the reschedule rules above, (s) the status check.
    #[rustfmt::skip]
    let table = [
        // Not persistent, finished entry: (b) for modes 1 and 2, whatever
        // rs3's status; mode 0 leaves it to (s), or (a) when rs3 is at weight 0.
        (Masq, false, TimeWait, Deleted, false, [Dropped, Resched, Resched]),
        (Masq, false, TimeWait, Deleted, true, [Resched, Resched, Resched]),
        (Masq, false, TimeWait, Drained, false, [Dropped, Resched, Resched]),
        (Masq, false, TimeWait, Drained, true, [Resched, Resched, Resched]),
        (Masq, false, TimeWait, Quiesced, false, [Keep, Resched, Resched]),
        (Masq, false, TimeWait, Quiesced, true, [Resched, Resched, Resched]),
        (Masq, false, Close, Deleted, false, [Dropped, Resched, Resched]),
        (Masq, false, Close, Deleted, true, [Resched, Resched, Resched]),
        (Masq, false, Close, Drained, false, [Dropped, Resched, Resched]),
        (Masq, false, Close, Drained, true, [Resched, Resched, Resched]),
        (Masq, false, Close, Quiesced, false, [Keep, Resched, Resched]),
        (Masq, false, Close, Quiesced, true, [Resched, Resched, Resched]),
        // A live entry is never reused by (b): (s) decides, or (a).
        (Masq, false, Established, Deleted, false, [Dropped, Dropped, Dropped]),
        (Masq, false, Established, Deleted, true, [Resched, Resched, Resched]),
        (Masq, false, Established, Quiesced, false, [Keep, Keep, Keep]),
        (Masq, false, Established, Quiesced, true, [Resched, Resched, Resched]),
        // DR: FIN_WAIT without output is finished only for mode 2 (b).
        (Route, false, FinWait, Deleted, false, [Dropped, Dropped, Resched]),
        (Route, false, FinWait, Quiesced, false, [Keep, Keep, Resched]),
        (Route, false, TimeWait, Deleted, false, [Dropped, Resched, Resched]),
        // Persistent: a controlled entry is never reused by (b). (s) drops, or
        // expires and the invalid template gives way (§2.4); at weight 0 (a)
        // expires the entry and the template, still valid, picks rs3 again.
        (Masq, true, TimeWait, Deleted, false, [Dropped, Dropped, Dropped]),
        (Masq, true, TimeWait, Deleted, true, [Resched, Resched, Resched]),
        (Masq, true, TimeWait, Drained, false, [Dropped, Dropped, Dropped]),
        (Masq, true, TimeWait, Drained, true, [Resched, Resched, Resched]),
        (Masq, true, TimeWait, Quiesced, false, [Keep, Keep, Keep]),
        (Masq, true, TimeWait, Quiesced, true, [Rs3New, Rs3New, Rs3New]),
        (Masq, true, Close, Deleted, false, [Dropped, Dropped, Dropped]),
        (Masq, true, Close, Deleted, true, [Resched, Resched, Resched]),
        (Masq, true, Close, Quiesced, false, [Keep, Keep, Keep]),
        (Masq, true, Close, Quiesced, true, [Rs3New, Rs3New, Rs3New]),
    ];
    for (method, persistent, old, rs3, nodest, want) in table {
        for (mode, want) in [0u8, 1, 2].into_iter().zip(want) {
            let got = reused_port_syn(method, persistent, old, rs3, mode, nodest);
            assert_eq!(
                got, want,
                "{method:?} persistent={persistent} {old:?} rs3 {rs3:?} expire_nodest_conn={nodest} conn_reuse_mode={mode}"
            );
        }
    }
}

#[test]
fn a_syn_with_rst_retires_a_finished_entry_but_starts_nothing() {
    // is_new_conn tests the SYN bit alone (§3.3); scheduling refuses an RST
    // (§3.2), so the segment goes nowhere, and the next SYN is scheduled.
    let mut r = Rig::new();
    let d = vec![dest(2, 80, FwdMethod::Masq, 1), dest(1, 80, FwdMethod::Masq, 1)];
    let s = snap(vec![service(tcp_svc(80), SchedKind::Rr, None, d)], Knobs::default());
    r.send(&s, &tcp(client(1), 1000, VIP, 80, SYN), 0);
    r.send(&s, &tcp(client(1), 1000, VIP, 80, FIN), 0);
    let (v, _) = r.send(&s, &tcp(client(1), 1000, VIP, 80, SYN | RST), 1);
    assert_eq!(v, Verdict::Drop(DropReason::TcpNoConn));
    assert_eq!(r.lb.conns.len(), 0, "the TIME_WAIT entry is gone");
}

#[test]
fn dr_connections_use_the_input_only_table_and_count_active_from_the_syn() {
    let mut r = Rig::new();
    let d = vec![dest(1, 80, FwdMethod::Route, 1)];
    let shared = d[0].shared.clone();
    let s = snap(vec![service(tcp_svc(80), SchedKind::Rr, None, d)], Knobs::default());
    r.send(&s, &tcp(client(1), 1000, VIP, 80, SYN), 0);
    assert_eq!((shared.activeconns.load(Relaxed), shared.inactconns.load(Relaxed)), (1, 0), "SYN_RECV is active");
    r.send(&s, &tcp(client(1), 1000, VIP, 80, ACK), 0);
    r.send(&s, &tcp(client(1), 1000, VIP, 80, FIN | ACK), 0);
    let (_, c) = r.lb.conns.iter().next().unwrap();
    // INPUT_ONLY: ES + fin → FIN_WAIT (the INPUT table would say CLOSE_WAIT).
    assert_eq!(c.tcp_state(), TcpState::FinWait);
    assert_eq!(c.timeout, 120);
    assert_eq!((shared.activeconns.load(Relaxed), shared.inactconns.load(Relaxed)), (0, 1));
}

#[test]
fn upper_threshold_overloads_a_server_until_it_drains() {
    let mut r = Rig::new();
    let mut a = dest(2, 80, FwdMethod::Masq, 1);
    a.u_threshold = 1;
    a.shared.u_threshold.store(1, Relaxed);
    let d = vec![a, dest(1, 80, FwdMethod::Masq, 1)];
    let s = snap(vec![service(tcp_svc(80), SchedKind::Wlc, None, d)], Knobs::default());
    let picks: Vec<u8> = (0..3)
        .map(|i| {
            let (_, out) = r.send(&s, &tcp(client(1), 1000 + i, VIP, 80, SYN), 0);
            Rig::server_of(&out)
        })
        .collect();
    // First to server 2 (head, tie), which is then OVERLOADed (1 >= 1): the rest go to 1.
    assert_eq!(picks, [2, 1, 1]);
}

#[test]
fn sloppy_tcp_lets_any_segment_start_a_connection() {
    let d = || vec![dest(1, 80, FwdMethod::Masq, 1)];
    let mut r = Rig::new();
    let s = snap(vec![service(tcp_svc(80), SchedKind::Rr, None, d())], Knobs::default());
    assert_eq!(r.send(&s, &tcp(client(1), 1, VIP, 80, ACK), 0).0, Verdict::Drop(DropReason::TcpNoConn));
    let s = snap(vec![service(tcp_svc(80), SchedKind::Rr, None, d())], Knobs { sloppy_tcp: true, ..Knobs::default() });
    assert_eq!(r.send(&s, &tcp(client(1), 1, VIP, 80, ACK), 0).0, Verdict::Forward { port: 1 });
}

fn icmp_error(from: Ipv4Addr, to: Ipv4Addr, quoted: &[u8], src_mac: [u8; 6]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(src_mac, P0_MAC)
        .ipv4(from.octets(), to.octets(), 64)
        .icmpv4(Icmpv4Type::DestinationUnreachable(etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded {
            next_hop_mtu: 1400,
        }))
        .write(&mut v, &quoted[14..14 + 28])
        .unwrap();
    v
}

fn quoted_of(out: &[u8]) -> (Ipv4Addr, Ipv4Addr, u16, u16) {
    let p = SlicedPacket::from_ethernet(out).unwrap();
    let Some(TransportSlice::Icmpv4(i)) = &p.transport else { panic!("not icmp") };
    let q = i.payload();
    (
        Ipv4Addr::new(q[12], q[13], q[14], q[15]),
        Ipv4Addr::new(q[16], q[17], q[18], q[19]),
        u16::from_be_bytes([q[20], q[21]]),
        u16::from_be_bytes([q[22], q[23]]),
    )
}

#[test]
fn related_icmp_is_translated_in_both_directions_for_nat() {
    let mut r = Rig::new();
    let s = snap(
        vec![service(tcp_svc(80), SchedKind::Rr, None, vec![dest(1, 8080, FwdMethod::Masq, 1)])],
        Knobs::default(),
    );
    r.send(&s, &tcp(client(1), 5000, VIP, 80, SYN), 0);
    // Inbound: a router near the client complains about VIP:80 → client:5000.
    let sent_to_client = tcp(VIP, 80, client(1), 5000, SYN | ACK);
    let e = icmp_error(Ipv4Addr::new(198, 51, 100, 1), VIP, &sent_to_client, GW_MAC);
    let (v, out) = r.send(&s, &e, 0);
    assert_eq!(v, Verdict::Forward { port: 1 });
    let p = SlicedPacket::from_ethernet(&out).unwrap();
    let Some(NetSlice::Ipv4(ip)) = &p.net else { panic!() };
    assert_eq!(ip.header().destination_addr(), rs(1));
    assert_eq!(quoted_of(&out), (rs(1), client(1), 8080, 5000));
    // Outbound: the RS side complains about client:5000 → RIP:8080.
    let sent_to_rs = tcp(client(1), 5000, rs(1), 8080, ACK);
    let e = icmp_error(rs(1), client(1), &sent_to_rs, [2, 0, 0, 0, 2, 11]);
    let (v, out) = r.send(&s, &e, 0);
    assert_eq!(v, Verdict::Forward { port: 0 });
    let p = SlicedPacket::from_ethernet(&out).unwrap();
    let Some(NetSlice::Ipv4(ip)) = &p.net else { panic!() };
    assert_eq!(ip.header().source_addr(), VIP);
    assert_eq!(quoted_of(&out), (client(1), VIP, 5000, 80));
}

#[test]
fn tun_answers_frag_needed_for_a_df_packet_over_the_tunnel_mtu() {
    let mut r = Rig::new();
    let s = snap(
        vec![service(tcp_svc(80), SchedKind::Rr, None, vec![dest(1, 80, FwdMethod::Tunnel, 1)])],
        Knobs::default(),
    );
    r.send(&s, &tcp(client(1), 7000, VIP, 80, SYN), 0);
    let big = tcp_sized(client(1), 7000, VIP, 80, ACK, 1500 - 40, true);
    let (v, out) = r.send(&s, &big, 0);
    assert_eq!(v, Verdict::Forward { port: 0 });
    let p = SlicedPacket::from_ethernet(&out).unwrap();
    let Some(TransportSlice::Icmpv4(i)) = &p.transport else { panic!("not icmp") };
    match i.icmp_type() {
        Icmpv4Type::DestinationUnreachable(etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded {
            next_hop_mtu,
        }) => assert_eq!(next_hop_mtu, 1480),
        t => panic!("{t:?}"),
    }
    // The same size without DF is encapsulated.
    let (v, _) = r.send(&s, &tcp_sized(client(1), 7000, VIP, 80, ACK, 1500 - 40, false), 0);
    assert_eq!(v, Verdict::Forward { port: 1 });
}

#[test]
fn one_packet_scheduling_keeps_no_connection() {
    let mut r = Rig::new();
    let mut svc = service(
        ServiceKey::Addr { proto: PROTO_UDP, vaddr: VIP, vport: 53 },
        SchedKind::Rr,
        None,
        vec![dest(2, 53, FwdMethod::Masq, 1), dest(1, 53, FwdMethod::Masq, 1)],
    );
    svc.one_packet = true;
    let s = snap(vec![svc], Knobs::default());
    let mut picks = Vec::new();
    for _ in 0..4 {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(GW_MAC, P0_MAC)
            .ipv4(client(1).octets(), VIP.octets(), 64)
            .udp(999, 53)
            .write(&mut v, b"q")
            .unwrap();
        let (_, out) = r.send(&s, &v, 0);
        picks.push(Rig::server_of(&out));
    }
    assert_eq!(picks, [2, 1, 2, 1], "every datagram scheduled on its own");
    assert!(r.lb.conns.is_empty());
}

#[test]
fn fwmark_templates_use_the_mark_and_keep_the_client_port() {
    let mut r = Rig::new();
    let p = Some(Persistence { timeout: 60, netmask: Ipv4Addr::BROADCAST });
    let s = snap(
        vec![service(
            ServiceKey::Fwmark(10),
            SchedKind::Rr,
            p,
            vec![dest(2, 0, FwdMethod::Masq, 1), dest(1, 0, FwdMethod::Masq, 1)],
        )],
        Knobs::default(),
    );
    let (_, out80) = r.send_marked(&s, &tcp(client(1), 1000, VIP, 80, SYN), 10);
    let (_, out443) = r.send_marked(&s, &tcp(client(1), 1001, VIP, 443, SYN), 10);
    assert_eq!(Rig::server_of(&out80), Rig::server_of(&out443), "HTTP and HTTPS stick together");
    assert_eq!(u16::from_be_bytes([out443[36], out443[37]]), 443, "port-0 dest keeps the client's port");
    let t = r.lb.conns.iter().map(|(_, c)| c).find(|c| c.is_template()).unwrap();
    assert_eq!((t.proto, t.vaddr, t.vport, t.cport), (0, Ipv4Addr::new(0, 0, 0, 10), 0, 0), "§2.1 PFWMC key");
    // Unmarked, the same packet is not for this service: it is routed as is
    // (to the gateway), not balanced.
    let (v, out) = r.send(&s, &tcp(client(1), 1002, VIP, 80, SYN), 0);
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert_eq!(out[0..6], GW_MAC);
}

#[test]
fn unmatched_nat_replies_pass_or_get_port_unreachable_per_nat_icmp_send() {
    let svc = || service(tcp_svc(80), SchedKind::Rr, None, vec![dest(1, 8080, FwdMethod::Masq, 1)]);
    let stray = {
        let mut v = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 2, 11], P1_MAC)
            .ipv4(rs(1).octets(), client(9).octets(), 64)
            .tcp(8080, 3333, 1, 1000)
            .ack(1)
            .write(&mut v, &[])
            .unwrap();
        v
    };
    let mut r = Rig::new();
    let s = snap(vec![svc()], Knobs::default());
    let mut b = VecBuf::new(&stray, 128);
    let v = r.lb.process(&mut b, 1, 0, &s, 0, &r.counters);
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert_eq!(&b.into_vec()[26..30], &rs(1).octets(), "passes unchanged (routed)");
    let s = snap(vec![svc()], Knobs { nat_icmp_send: true, ..Knobs::default() });
    let mut b = VecBuf::new(&stray, 128);
    let v = r.lb.process(&mut b, 1, 0, &s, 0, &r.counters);
    assert_eq!(v, Verdict::Forward { port: 1 }, "back out of the servers' port");
    let out = b.into_vec();
    let p = SlicedPacket::from_ethernet(&out).unwrap();
    let Some(NetSlice::Ipv4(ip)) = &p.net else { panic!() };
    assert_eq!((ip.header().source_addr(), ip.header().destination_addr()), (Ipv4Addr::new(10, 0, 2, 1), rs(1)));
    let Some(TransportSlice::Icmpv4(i)) = &p.transport else { panic!("not icmp") };
    assert_eq!((i.type_u8(), i.code_u8()), (3, 3));
}

#[test]
fn frames_not_for_the_port_and_martians_are_counted_drops() {
    let mut r = Rig::new();
    let s =
        snap(vec![service(tcp_svc(80), SchedKind::Rr, None, vec![dest(1, 80, FwdMethod::Masq, 1)])], Knobs::default());
    let mut other = tcp(client(1), 1, VIP, 80, SYN);
    other[0..6].copy_from_slice(&[2, 0, 0, 0, 9, 9]);
    assert_eq!(r.send(&s, &other, 0).0, Verdict::Drop(DropReason::NotForUs));
    let mut bcast = tcp(client(1), 1, VIP, 80, SYN);
    bcast[0..6].copy_from_slice(&[0xff; 6]);
    assert_eq!(r.send(&s, &bcast, 0).0, Verdict::Drop(DropReason::L2Multicast));
    for src in [Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, Ipv4Addr::new(224, 0, 0, 1), Ipv4Addr::LOCALHOST] {
        assert_eq!(r.send(&s, &tcp(src, 1, VIP, 80, SYN), 0).0, Verdict::Drop(DropReason::MartianSource), "{src}");
    }
    assert!(r.lb.conns.is_empty());
}

#[test]
fn nat_and_dr_answer_frag_needed_for_df_packets_over_the_path_mtu() {
    for m in [FwdMethod::Masq, FwdMethod::Route] {
        let mut r = Rig::new();
        let s = snap(vec![service(tcp_svc(80), SchedKind::Rr, None, vec![dest(1, 80, m, 1)])], Knobs::default());
        r.send(&s, &tcp(client(1), 7000, VIP, 80, SYN), 0);
        let (v, out) = r.send(&s, &tcp_sized(client(1), 7000, VIP, 80, ACK, 1500 - 39, true), 0);
        assert_eq!(v, Verdict::Forward { port: 0 }, "{m:?}");
        assert_eq!((out[34], out[35]), (3, 4), "{m:?}: ICMP frag needed");
        let (v, _) = r.send(&s, &tcp_sized(client(1), 7000, VIP, 80, ACK, 1500 - 40, true), 0);
        assert_eq!(v, Verdict::Forward { port: 1 }, "{m:?}: exactly the MTU fits");
    }
}

#[test]
fn conn_reuse_mode_2_also_reuses_fin_wait_without_output() {
    // DR: the director sees only the client's side; ES + FIN → FIN_WAIT (INPUT_ONLY).
    for (mode, reschedule) in [(1u8, false), (2, true), (3, true), (0, false)] {
        let mut r = Rig::new();
        let d = vec![dest(2, 80, FwdMethod::Route, 1), dest(1, 80, FwdMethod::Route, 1)];
        let s = snap(
            vec![service(tcp_svc(80), SchedKind::Rr, None, d)],
            Knobs { conn_reuse_mode: mode, ..Knobs::default() },
        );
        let (_, out) = r.send(&s, &tcp(client(1), 1000, VIP, 80, SYN), 0);
        let first = Rig::server_of(&out);
        r.send(&s, &tcp(client(1), 1000, VIP, 80, ACK), 0);
        r.send(&s, &tcp(client(1), 1000, VIP, 80, FIN | ACK), 0);
        let (_, out) = r.send(&s, &tcp(client(1), 1000, VIP, 80, SYN), 1);
        assert_eq!(Rig::server_of(&out) != first, reschedule, "conn_reuse_mode {mode}");
    }
}

// ---- Connection sync (specs/ipvs.md §5.4 master, §5.5 backup; lb_sync.rs) ----

fn sync_port(master: bool) -> Arc<crate::sync::SyncPort> {
    let params = Arc::new(crate::sync::SyncParams::default());
    params.master.store(master, Relaxed);
    Arc::new(crate::sync::SyncPort::new(64, params))
}

fn drain(p: &crate::sync::SyncPort) -> Vec<crate::sync::SyncRecord> {
    std::iter::from_fn(|| p.out.pop()).collect()
}

#[test]
fn master_syncs_at_packets_3_53_and_on_leaving_established() {
    let mut r = Rig::new();
    let port = sync_port(true);
    r.lb.sync = Some(port.clone());
    let s = snap(
        vec![service(tcp_svc(80), SchedKind::Rr, None, vec![dest(1, 8080, FwdMethod::Masq, 1)])],
        Knobs::default(),
    );
    let c = client(7);
    let mut synced_at = Vec::new();
    let mut recs = Vec::new();
    for pkt in 1..=60u32 {
        let flags = if pkt == 1 { SYN } else { ACK };
        r.send(&s, &tcp(c, 4321, VIP, 80, flags), 0);
        let got = drain(&port);
        if !got.is_empty() {
            synced_at.push(pkt);
            recs.extend(got);
        }
    }
    // SYN_RECV at 1 is never synced; ESTABLISHED at 2 is a state change to
    // ES (not forced); then the packet rule: 3, 53 (§5.4 defaults).
    assert_eq!(synced_at, vec![3, 53]);
    let r0 = recs[0];
    assert_eq!((r0.proto, r0.state, r0.timeout), (6, TcpState::Established as u8, 900));
    assert_eq!((r0.caddr, r0.cport, r0.vaddr, r0.vport, r0.daddr, r0.dport), (c, 4321, VIP, 80, rs(1), 8080));
    assert_eq!(r0.flags, 0, "Masq, active, never HASHED or rvs-internal bits");
    // A FIN from the client leaves ESTABLISHED: synced at once.
    r.send(&s, &tcp(c, 4321, VIP, 80, FIN | ACK), 1);
    let got = drain(&port);
    assert_eq!(got.len(), 1);
    assert_ne!(got[0].state, TcpState::Established as u8);
    assert_eq!(got[0].timeout, s.timeouts.tcp[got[0].state as usize]);
    // No master daemon: nothing queued at all.
    port.params.master.store(false, Relaxed);
    for _ in 0..60 {
        r.send(&s, &tcp(client(8), 1, VIP, 80, ACK), 1);
    }
    assert!(drain(&port).is_empty());
}

#[test]
fn template_follows_its_connection_and_persist_mode_syncs_only_it() {
    for persist_mode in [false, true] {
        let mut r = Rig::new();
        let port = sync_port(true);
        port.params.persist_mode.store(persist_mode, Relaxed);
        r.lb.sync = Some(port.clone());
        let p = Some(Persistence { timeout: 300, netmask: Ipv4Addr::BROADCAST });
        let s = snap(
            vec![service(tcp_svc(80), SchedKind::Rr, p, vec![dest(1, 80, FwdMethod::Route, 1)])],
            Knobs::default(),
        );
        for pkt in 1..=3 {
            r.send(&s, &tcp(client(9), 5555, VIP, 80, if pkt == 1 { SYN } else { ACK }), 0);
        }
        let got = drain(&port);
        if persist_mode {
            // sync_persist_mode: the controlled connection is not sent, its
            // template is (§5.4).
            assert_eq!(got.len(), 1, "{got:?}");
            assert_eq!(got[0].flags & crate::conn::flags::TEMPLATE, crate::conn::flags::TEMPLATE);
            assert_eq!(got[0].cport, 0);
            continue;
        }
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].flags & crate::conn::flags::TEMPLATE, 0);
        assert_eq!(got[0].flags & crate::conn::flags::FWD_MASK, FwdMethod::Route as u16);
        let t = got[1];
        assert_eq!(t.flags & crate::conn::flags::TEMPLATE, crate::conn::flags::TEMPLATE);
        assert_eq!((t.cport, t.vport, t.timeout, t.state), (0, 80, 300, TEMPLATE_ASSURED));
    }
}

#[test]
fn backup_installs_synced_connections_that_then_forward() {
    let mut r = Rig::new();
    let port = sync_port(false);
    r.lb.sync = Some(port.clone());
    let d = vec![dest(2, 80, FwdMethod::Masq, 1), dest(1, 80, FwdMethod::Masq, 1)];
    let s = snap(vec![service(tcp_svc(80), SchedKind::Rr, None, d.clone())], Knobs::default());
    let rec = crate::sync::SyncRecord {
        proto: 6,
        state: TcpState::Established as u8,
        flags: 0,
        caddr: client(3),
        vaddr: VIP,
        daddr: rs(2),
        cport: 3333,
        vport: 80,
        dport: 80,
        timeout: 900,
        fwmark: 0,
    };
    assert_eq!(r.lb.install_synced(&rec, &s, 10), crate::lb_sync::Installed::New);
    let i = r.lb.conns.lookup_in(6, client(3), 3333, VIP, 80).unwrap();
    let c = r.lb.conns.get(i).unwrap();
    assert_eq!((c.state, c.expires, c.in_pkts), (TcpState::Established as u8, 910, 3));
    assert_eq!(c.flags & crate::lb_sync::SYNC_FLAG, crate::lb_sync::SYNC_FLAG);
    assert_eq!(d[0].shared.activeconns.load(Relaxed), 1, "bound to the local dest, counted active");
    // After failover a mid-stream ACK (no SYN: would be dropped without the
    // entry) goes to the synced real server, not to the scheduler's choice.
    for _ in 0..3 {
        let (v, out) = r.send(&s, &tcp(client(3), 3333, VIP, 80, ACK), 11);
        assert_eq!(v, Verdict::Forward { port: 1 });
        assert_eq!(Rig::server_of(&out), 2);
    }
    // A repeat restarts the timer with the synced timeout (§5.5).
    assert_eq!(r.lb.install_synced(&rec, &s, 500), crate::lb_sync::Installed::Updated);
    assert_eq!(r.lb.conns.get(i).unwrap().expires, 1400);
    // Another real server: an inactive record is a stale expiry, ignored...
    let mut other = rec;
    other.daddr = rs(1);
    other.state = TcpState::FinWait as u8;
    other.flags = crate::conn::flags::INACTIVE;
    assert_eq!(r.lb.install_synced(&other, &s, 501), crate::lb_sync::Installed::Stale);
    assert_eq!(r.lb.conns.get(i).unwrap().daddr, rs(2));
    // ...an active one replaces the entry.
    other.state = TcpState::Established as u8;
    other.flags = 0;
    assert_eq!(r.lb.install_synced(&other, &s, 502), crate::lb_sync::Installed::New);
    let j = r.lb.conns.lookup_in(6, client(3), 3333, VIP, 80).unwrap();
    assert_eq!(r.lb.conns.get(j).unwrap().daddr, rs(1));
    assert_eq!(d[0].shared.activeconns.load(Relaxed), 0);
    assert_eq!(d[1].shared.activeconns.load(Relaxed), 1);
    // v0 (timeout 0): the local table's timeout for the state (§5.3).
    let mut v0 = rec;
    v0.cport = 4444;
    v0.timeout = 0;
    v0.state = TcpState::FinWait as u8;
    r.lb.install_synced(&v0, &s, 600);
    let k = r.lb.conns.lookup_in(6, client(3), 4444, VIP, 80).unwrap();
    assert_eq!(r.lb.conns.get(k).unwrap().expires, 600 + s.timeouts.tcp[TcpState::FinWait as usize]);
}

#[test]
fn backup_only_does_no_balancing() {
    let mut r = Rig::new();
    let port = sync_port(false);
    port.params.backup_only.store(true, Relaxed);
    r.lb.sync = Some(port.clone());
    let s =
        snap(vec![service(tcp_svc(80), SchedKind::Rr, None, vec![dest(1, 80, FwdMethod::Masq, 1)])], Knobs::default());
    let (v, _) = r.send(&s, &tcp(client(4), 1, VIP, 80, SYN), 0);
    assert_eq!(v, Verdict::Drop(DropReason::VipUnhandled));
    assert_eq!(r.lb.conns.len(), 0);
    port.params.backup_only.store(false, Relaxed);
    let (v, _) = r.send(&s, &tcp(client(4), 1, VIP, 80, SYN), 0);
    assert_eq!(v, Verdict::Forward { port: 1 });
}

#[test]
fn resync_sweep_resends_the_table_within_one_period() {
    let mut r = Rig::new();
    let port = sync_port(true);
    r.lb.sync = Some(port.clone());
    port.params.resync_period.store(4, Relaxed);
    let s =
        snap(vec![service(tcp_svc(80), SchedKind::Rr, None, vec![dest(1, 80, FwdMethod::Masq, 1)])], Knobs::default());
    // 20 established connections and 5 half-open (never synced).
    for n in 0..25u16 {
        r.send(&s, &tcp(client(5), 1000 + n, VIP, 80, SYN), 0);
        if n < 20 {
            r.send(&s, &tcp(client(5), 1000 + n, VIP, 80, ACK), 0);
        }
    }
    drain(&port);
    let mut seen = std::collections::BTreeSet::new();
    // Many rounds per second, 4 seconds: the 1024-slot table in 256-slot slices.
    for sec in 1..=4u32 {
        for _ in 0..100 {
            crate::sync::sweep(&r.lb, &port, sec);
            for rec in drain(&port) {
                assert_eq!(rec.state, TcpState::Established as u8);
                seen.insert(rec.cport);
            }
        }
    }
    assert_eq!(seen, (1000..1020).collect());
}

#[test]
fn fwmark_services_sync_their_mark_and_the_backup_binds_by_it() {
    // HTTP and HTTPS of one shopper marked 10 (operators' scenario 2).
    let d = vec![dest(1, 0, FwdMethod::Route, 1)];
    let s = snap(
        vec![
            service(ServiceKey::Fwmark(10), SchedKind::Rr, None, d.clone()),
            service(tcp_svc(80), SchedKind::Rr, None, vec![dest(2, 80, FwdMethod::Masq, 1)]),
        ],
        Knobs::default(),
    );
    let mut rec = crate::sync::SyncRecord {
        proto: 6,
        state: TcpState::Established as u8,
        flags: FwdMethod::Route as u16 | crate::conn::flags::NOOUTPUT,
        caddr: client(6),
        vaddr: VIP,
        daddr: rs(1),
        cport: 6666,
        vport: 443,
        dport: 443,
        timeout: 900,
        fwmark: 0,
    };
    crate::lb_sync::fill_fwmark(&mut rec, &s);
    assert_eq!(rec.fwmark, 10);
    // An address service's connection keeps mark 0.
    let mut plain = rec;
    plain.vport = 80;
    plain.daddr = rs(2);
    plain.dport = 80;
    plain.fwmark = 0;
    crate::lb_sync::fill_fwmark(&mut plain, &s);
    assert_eq!(plain.fwmark, 0);
    // The backup binds the fwmark connection to the fwmark service's server.
    let mut r = Rig::new();
    r.lb.install_synced(&rec, &s, 0);
    assert_eq!(d[0].shared.activeconns.load(Relaxed), 1);
    let (v, out) = r.send_marked(&s, &tcp(client(6), 6666, VIP, 443, ACK), 10);
    assert_eq!(v, Verdict::Forward { port: 1 });
    assert_eq!(Rig::server_of(&out), 1);
}

#[test]
fn sweep_never_echoes_synced_entries_until_they_carry_traffic_here() {
    let mut r = Rig::new();
    let port = sync_port(true);
    port.params.resync_period.store(1, Relaxed);
    r.lb.sync = Some(port.clone());
    let s =
        snap(vec![service(tcp_svc(80), SchedKind::Rr, None, vec![dest(1, 80, FwdMethod::Masq, 1)])], Knobs::default());
    let rec = crate::sync::SyncRecord {
        proto: 6,
        state: TcpState::Established as u8,
        flags: 0,
        caddr: client(11),
        vaddr: VIP,
        daddr: rs(1),
        cport: 1111,
        vport: 80,
        dport: 80,
        timeout: 900,
        fwmark: 0,
    };
    r.lb.install_synced(&rec, &s, 0);
    let sweep = |r: &mut Rig, sec: u32| {
        for _ in 0..10 {
            crate::sync::sweep(&r.lb, &port, sec);
        }
        drain(&port)
    };
    assert!(sweep(&mut r, 1).is_empty(), "a synced entry is not sent back");
    // Failover: the client's packets arrive here; the entry is ours now.
    r.send(&s, &tcp(client(11), 1111, VIP, 80, ACK), 2);
    drain(&port);
    let got = sweep(&mut r, 3);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].cport, 1111);
    assert_eq!(got[0].flags & crate::lb_sync::SYNC_FLAG, 0, "SYNC is not a flag LVS sends");
}

/// The worker's next-hop cache never outlives what it was resolved from: a
/// new snapshot (a neighbour's MAC changed in the config) or a new
/// publication of learned neighbours (ARP saw a new MAC) is used for the very
/// next packet of an established connection.
#[test]
fn next_hop_cache_follows_snapshot_and_learned_neighbours() {
    let mut r = Rig::new();
    let d = vec![dest(1, 80, FwdMethod::Route, 1)];
    let s1 = snap(vec![service(tcp_svc(80), SchedKind::Rr, None, d.clone())], Knobs::default());
    let (_, out) = r.send(&s1, &tcp(client(1), 1000, VIP, 80, SYN), 0);
    assert_eq!(out[..6], [2, 0, 0, 0, 2, 11], "static neighbour of rs1");
    let (_, out) = r.send(&s1, &tcp(client(1), 1000, VIP, 80, ACK), 0);
    assert_eq!(out[..6], [2, 0, 0, 0, 2, 11], "cached");

    // A new snapshot with another MAC for rs1.
    let moved = [2, 0, 0, 0, 0x99, 11];
    let fib2 = Fib::new(
        fib().ports().to_vec(),
        vec![Route { prefix: Ipv4Addr::UNSPECIFIED, len: 0, via: Some(Ipv4Addr::new(10, 0, 1, 254)), port: 0 }],
        vec![(1, rs(1), moved)],
    );
    let s2 = Snapshot::new(
        fib2,
        vec![service(tcp_svc(80), SchedKind::Rr, None, d.clone())],
        Timeouts::default(),
        Knobs::default(),
        32,
    );
    let (v, out) = r.send(&s2, &tcp(client(1), 1000, VIP, 80, ACK), 0);
    assert_eq!(v, Verdict::Forward { port: 1 });
    assert_eq!(out[..6], moved, "new snapshot, new MAC");

    // No static neighbours: the MAC comes from what ARP learned.
    let fib3 = Fib::new(fib().ports().to_vec(), vec![], vec![]);
    let s3 = Snapshot::new(
        fib3,
        vec![service(tcp_svc(80), SchedKind::Rr, None, d)],
        Timeouts::default(),
        Knobs::default(),
        32,
    );
    let (v, _) = r.send(&s3, &tcp(client(1), 1000, VIP, 80, ACK), 0);
    assert_eq!(v, Verdict::Resolve { port: 1, next_hop: rs(1) }, "unknown neighbour waits for ARP");
    let learned = |mac| {
        Arc::new(crate::fwd::Learned { neighbors: crate::fwd::NeighborTable::new([(1, rs(1), mac)]), local: vec![] })
    };
    r.lb.set_learned(learned([2, 0, 0, 0, 0xaa, 11]));
    let (v, out) = r.send(&s3, &tcp(client(1), 1000, VIP, 80, ACK), 0);
    assert_eq!(v, Verdict::Forward { port: 1 });
    assert_eq!(out[..6], [2, 0, 0, 0, 0xaa, 11], "learned by ARP");
    r.lb.set_learned(learned([2, 0, 0, 0, 0xbb, 11]));
    let (_, out) = r.send(&s3, &tcp(client(1), 1000, VIP, 80, ACK), 0);
    assert_eq!(out[..6], [2, 0, 0, 0, 0xbb, 11], "ARP saw a new MAC: the cache forgot the old one");
}

/// A buffer as a device with RX IPv4 checksum offload hands it over.
struct DeviceChecked(VecBuf, Option<bool>);

impl PacketBuf for DeviceChecked {
    fn data(&self) -> &[u8] {
        self.0.data()
    }
    fn data_mut(&mut self) -> &mut [u8] {
        self.0.data_mut()
    }
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        self.0.prepend(n)
    }
    fn adj(&mut self, n: usize) -> bool {
        self.0.adj(n)
    }
    fn trim_to(&mut self, len: usize) -> bool {
        self.0.trim_to(len)
    }
    fn headroom(&self) -> usize {
        self.0.headroom()
    }
    fn ip_checksum_verified(&self) -> Option<bool> {
        self.1
    }
}

/// With RX checksum offload the device's verdict on the IPv4 header checksum
/// replaces the software check; without one (UNKNOWN) software checks.
#[test]
fn device_checksum_verdict_replaces_the_software_check() {
    let mut r = Rig::new();
    let s =
        snap(vec![service(tcp_svc(80), SchedKind::Rr, None, vec![dest(1, 80, FwdMethod::Route, 1)])], Knobs::default());
    let good = tcp(client(1), 1000, VIP, 80, SYN);
    let mut bad = good.clone();
    bad[24] ^= 0xff; // IPv4 header checksum
    let mut go = |frame: &[u8], verdict: Option<bool>| {
        let mut b = DeviceChecked(VecBuf::new(frame, 128), verdict);
        r.lb.process(&mut b, 0, 0, &s, 0, &r.counters)
    };
    assert_eq!(go(&bad, None), Verdict::Drop(DropReason::Ipv4BadChecksum), "software check");
    assert_eq!(go(&good, Some(false)), Verdict::Drop(DropReason::Ipv4BadChecksum), "device said bad");
    assert_eq!(go(&bad, Some(true)), Verdict::Forward { port: 1 }, "device said good: not checked again");
    assert_eq!(go(&good, None), Verdict::Forward { port: 1 });
}

mod parse_paths {
    use proptest::prelude::*;

    use super::*;

    /// A TCP frame ([`tcp_sized`]) or a UDP one, padded with `pad` bytes.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn frame(
        tcp: bool,
        src: [u8; 4],
        dst: [u8; 4],
        ports: (u16, u16),
        flags: u8,
        df: bool,
        payload: usize,
        pad: usize,
    ) -> Vec<u8> {
        let mut out = if tcp {
            tcp_sized(src.into(), ports.0, dst.into(), ports.1, flags, payload, df)
        } else {
            let mut out = Vec::new();
            let b = PacketBuilder::ethernet2(GW_MAC, P0_MAC).ipv4(src, dst, 64).udp(ports.0, ports.1);
            b.write(&mut out, &vec![0x5a; payload]).unwrap();
            if !df {
                // etherparse sets DF.
                out[20] &= !0x40;
                let c = crate::checksum::ipv4_header_checksum(&out[14..34]);
                out[24..26].copy_from_slice(&c.to_be_bytes());
            }
            out
        };
        out.resize(out.len() + pad, 0);
        out
    }

    #[test]
    fn the_common_path_takes_ordinary_frames() {
        for tcp in [true, false] {
            let f = frame(tcp, [192, 0, 2, 1], [10, 0, 0, 100], (40000, 80), ACK, true, 6, 4);
            let (flow, len) = parse_common(&f, None).expect("an ordinary frame takes the common path");
            assert_eq!((flow.src, flow.dst, flow.sport, flow.dport), (client(1), VIP, 40000, 80));
            assert_eq!(len, f.len() - 4, "padding trimmed");
            assert_eq!(Ok((flow, len)), parse_general(&f, None));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// Whatever frame the common path takes, it reads as the general path
        /// does: ordinary frames, and the same with a few bytes of the
        /// headers changed, cut short or lengthened, under each device verdict.
        #[test]
        fn common_parse_equals_the_general_one(
            tcp in any::<bool>(),
            src in any::<[u8; 4]>(),
            dst in any::<[u8; 4]>(),
            ports in any::<(u16, u16)>(),
            flags in any::<u8>(),
            df in any::<bool>(),
            payload in prop_oneof![0usize..64, 1400usize..1600],
            pad in 0usize..8,
            edits in proptest::collection::vec((0usize..60, any::<u8>()), 0..3),
            cut in proptest::option::of(0usize..80),
            device in proptest::option::of(any::<bool>()),
            frag in prop_oneof![Just(None), Just(Some(0x2000u16)), (1u16..0x2000).prop_map(Some), (0x2001u16..0x4000).prop_map(Some)],
            reseal in any::<bool>(),
            ihl in prop_oneof![3 => Just(5u8), 1 => 0u8..16],
        ) {
            let mut f = frame(tcp, src, dst, ports, flags, df, payload, pad);
            let untouched = edits.is_empty() && cut.is_none() && frag.is_none() && ihl == 5;
            // Header options (or a nonsense IHL): the bytes after the header
            // are then read as options.
            f[14] = 0x40 | ihl;
            if let Some(mf_offset) = frag {
                // A fragment: MF and/or an offset, DF as it was.
                let v = (u16::from_be_bytes([f[20], f[21]]) & 0x4000) | mf_offset;
                f[20..22].copy_from_slice(&v.to_be_bytes());
            }
            for (at, v) in edits {
                if let Some(b) = f.get_mut(at) {
                    *b = v;
                }
            }
            let hlen = usize::from(f.get(14).map_or(5, |b| b & 0x0f)) * 4;
            if (reseal || frag.is_some() || ihl != 5) && f.len() >= 14 + hlen.max(20) {
                // A correct header checksum over the edits, so they reach the
                // checks behind it.
                let c = crate::checksum::ipv4_header_checksum(&f[14..14 + hlen.max(20)]);
                f[24..26].copy_from_slice(&c.to_be_bytes());
            }
            if let Some(c) = cut {
                f.truncate(c);
            }
            let common = parse_common(&f, device);
            if let Some(x) = common {
                prop_assert_eq!(Ok(x), parse_general(&f, device));
            }
            let unicast = Ipv4Addr::from(src);
            let ordinary = !(unicast.is_unspecified() || unicast.is_broadcast() || unicast.is_multicast() || unicast.is_loopback());
            if untouched && ordinary && device != Some(false) {
                prop_assert!(common.is_some(), "an ordinary frame left to the general path");
            }
        }
    }
}

mod prefetch {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The prefetch passes read frames unvalidated: any burst (short,
        /// garbage, or well-formed) passes through them, with the table large
        /// enough that they run.
        #[test]
        fn prefetch_burst_takes_any_frames(frames in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..80), 0..=crate::hints::BURST + 4)) {
            let mut lb = Lb::new(0, 8192, 7);
            for n in 0..PREFETCH_MIN_CONNS as u32 {
                let c = Conn::new(PROTO_TCP, Ipv4Addr::from(0xc000_0000 + n), 1000, VIP, 80, rs(1), 80, 0, None);
                lb.conns.insert(c, 0).unwrap();
            }
            prop_assert!(lb.conns.len() >= PREFETCH_MIN_CONNS);
            let mut burst: Vec<Vec<u8>> = frames;
            burst.push(frame(true, [192, 0, 2, 1], [10, 0, 0, 100], (1000, 80), ACK, true, 6, 0));
            lb.prefetch_burst(burst.iter().map(|f| f.as_slice()));
        }
    }

    use super::parse_paths::frame;
}
