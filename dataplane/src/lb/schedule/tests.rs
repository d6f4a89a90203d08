//! Tests of scheduling: quiesced and removed real servers, connection
//! reuse, persistence templates, thresholds, sloppy TCP, one-packet scheduling.
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering::Relaxed;

use etherparse::PacketBuilder;

use crate::lb::test_util::*;
use crate::proto::TcpState;
use crate::sched::SchedKind;
use crate::service::{Dest, Method, Persistence, ServiceKey, PROTO_UDP};
use crate::snapshot::Knobs;
use crate::verdict::{DropReason, Verdict};
use crate::wire::tcp::flags::{ACK, FIN, RST, SYN};

#[test]
fn quiesced_server_keeps_its_connections_but_gets_no_new_ones() {
    let mut r = Rig::new();
    let d = vec![dest(2, 80, Method::Masq, 1), dest(1, 80, Method::Masq, 1)];
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
    let d = vec![dest(2, 80, Method::Masq, 1), dest(1, 80, Method::Masq, 1)];
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
    let d = vec![dest(2, 80, Method::Masq, 1), dest(1, 80, Method::Masq, 1)];
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
        let d = vec![dest(2, 80, Method::Masq, 1), dest(1, 80, Method::Masq, 1)];
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

fn reused_port_syn(method: Method, persistent: bool, old: Old, rs3: Rs3, mode: u8, nodest: bool) -> Syn {
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
    use Method::{Masq, Route};
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
    let d = vec![dest(2, 80, Method::Masq, 1), dest(1, 80, Method::Masq, 1)];
    let s = snap(vec![service(tcp_svc(80), SchedKind::Rr, None, d)], Knobs::default());
    r.send(&s, &tcp(client(1), 1000, VIP, 80, SYN), 0);
    r.send(&s, &tcp(client(1), 1000, VIP, 80, FIN), 0);
    let (v, _) = r.send(&s, &tcp(client(1), 1000, VIP, 80, SYN | RST), 1);
    assert_eq!(v, Verdict::Drop(DropReason::TcpNoConn));
    assert_eq!(r.lb.conns.len(), 0, "the TIME_WAIT entry is gone");
}

#[test]
fn upper_threshold_overloads_a_server_until_it_drains() {
    let mut r = Rig::new();
    let mut a = dest(2, 80, Method::Masq, 1);
    a.u_threshold = 1;
    a.shared.u_threshold.store(1, Relaxed);
    let d = vec![a, dest(1, 80, Method::Masq, 1)];
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
    let d = || vec![dest(1, 80, Method::Masq, 1)];
    let mut r = Rig::new();
    let s = snap(vec![service(tcp_svc(80), SchedKind::Rr, None, d())], Knobs::default());
    assert_eq!(r.send(&s, &tcp(client(1), 1, VIP, 80, ACK), 0).0, Verdict::Drop(DropReason::TcpNoConn));
    let s = snap(vec![service(tcp_svc(80), SchedKind::Rr, None, d())], Knobs { sloppy_tcp: true, ..Knobs::default() });
    assert_eq!(r.send(&s, &tcp(client(1), 1, VIP, 80, ACK), 0).0, Verdict::Forward { port: 1 });
}

#[test]
fn one_packet_scheduling_keeps_no_connection() {
    let mut r = Rig::new();
    let mut svc = service(
        ServiceKey::Addr { proto: PROTO_UDP, vaddr: VIP, vport: 53 },
        SchedKind::Rr,
        None,
        vec![dest(2, 53, Method::Masq, 1), dest(1, 53, Method::Masq, 1)],
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
            vec![dest(2, 0, Method::Masq, 1), dest(1, 0, Method::Masq, 1)],
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
fn conn_reuse_mode_2_also_reuses_fin_wait_without_output() {
    // DR: the director sees only the client's side; ES + FIN → FIN_WAIT (INPUT_ONLY).
    for (mode, reschedule) in [(1u8, false), (2, true), (3, true), (0, false)] {
        let mut r = Rig::new();
        let d = vec![dest(2, 80, Method::Route, 1), dest(1, 80, Method::Route, 1)];
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
