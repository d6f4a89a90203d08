//! Tests of connection sync on the worker (specs/ipvs.md §5.4 master, §5.5
//! backup).
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use super::packet_rule;
use crate::conn::TEMPLATE_ASSURED;
use crate::lb::test_util::*;
use crate::proto::TcpState;
use crate::sched::SchedKind;
use crate::service::{Method, Persistence, ServiceKey};
use crate::snapshot::Knobs;
use crate::verdict::{DropReason, Verdict};
use crate::wire::tcp::flags::{ACK, FIN, SYN};

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
    let s =
        snap(vec![service(tcp_svc(80), SchedKind::Rr, None, vec![dest(1, 8080, Method::Masq, 1)])], Knobs::default());
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
        let s =
            snap(vec![service(tcp_svc(80), SchedKind::Rr, p, vec![dest(1, 80, Method::Route, 1)])], Knobs::default());
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
        assert_eq!(got[0].flags & crate::conn::flags::FWD_MASK, Method::Route as u16);
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
    let d = vec![dest(2, 80, Method::Masq, 1), dest(1, 80, Method::Masq, 1)];
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
    assert_eq!(r.lb.install_synced(&rec, &s, 10), crate::lb::sync::Installed::New);
    let i = r.lb.conns.lookup_in(6, client(3), 3333, VIP, 80).unwrap();
    let c = r.lb.conns.get(i).unwrap();
    assert_eq!((c.state, c.expires, c.in_pkts), (TcpState::Established as u8, 910, 3));
    assert_eq!(c.flags & crate::lb::sync::SYNC_FLAG, crate::lb::sync::SYNC_FLAG);
    assert_eq!(d[0].shared.activeconns.load(Relaxed), 1, "bound to the local dest, counted active");
    // After failover a mid-stream ACK (no SYN: would be dropped without the
    // entry) goes to the synced real server, not to the scheduler's choice.
    for _ in 0..3 {
        let (v, out) = r.send(&s, &tcp(client(3), 3333, VIP, 80, ACK), 11);
        assert_eq!(v, Verdict::Forward { port: 1 });
        assert_eq!(Rig::server_of(&out), 2);
    }
    // A repeat restarts the timer with the synced timeout (§5.5).
    assert_eq!(r.lb.install_synced(&rec, &s, 500), crate::lb::sync::Installed::Updated);
    assert_eq!(r.lb.conns.get(i).unwrap().expires, 1400);
    // Another real server: an inactive record is a stale expiry, ignored...
    let mut other = rec;
    other.daddr = rs(1);
    other.state = TcpState::FinWait as u8;
    other.flags = crate::conn::flags::INACTIVE;
    assert_eq!(r.lb.install_synced(&other, &s, 501), crate::lb::sync::Installed::Stale);
    assert_eq!(r.lb.conns.get(i).unwrap().daddr, rs(2));
    // ...an active one replaces the entry.
    other.state = TcpState::Established as u8;
    other.flags = 0;
    assert_eq!(r.lb.install_synced(&other, &s, 502), crate::lb::sync::Installed::New);
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
    let s = snap(vec![service(tcp_svc(80), SchedKind::Rr, None, vec![dest(1, 80, Method::Masq, 1)])], Knobs::default());
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
    let s = snap(vec![service(tcp_svc(80), SchedKind::Rr, None, vec![dest(1, 80, Method::Masq, 1)])], Knobs::default());
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
            crate::lb::sync::sweep(&r.lb, &port, sec);
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
    let d = vec![dest(1, 0, Method::Route, 1)];
    let s = snap(
        vec![
            service(ServiceKey::Fwmark(10), SchedKind::Rr, None, d.clone()),
            service(tcp_svc(80), SchedKind::Rr, None, vec![dest(2, 80, Method::Masq, 1)]),
        ],
        Knobs::default(),
    );
    let mut rec = crate::sync::SyncRecord {
        proto: 6,
        state: TcpState::Established as u8,
        flags: Method::Route as u16 | crate::conn::flags::NOOUTPUT,
        caddr: client(6),
        vaddr: VIP,
        daddr: rs(1),
        cport: 6666,
        vport: 443,
        dport: 443,
        timeout: 900,
        fwmark: 0,
    };
    crate::lb::sync::fill_fwmark(&mut rec, &s);
    assert_eq!(rec.fwmark, 10);
    // An address service's connection keeps mark 0.
    let mut plain = rec;
    plain.vport = 80;
    plain.daddr = rs(2);
    plain.dport = 80;
    plain.fwmark = 0;
    crate::lb::sync::fill_fwmark(&mut plain, &s);
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
    let s = snap(vec![service(tcp_svc(80), SchedKind::Rr, None, vec![dest(1, 80, Method::Masq, 1)])], Knobs::default());
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
            crate::lb::sync::sweep(&r.lb, &port, sec);
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
    assert_eq!(got[0].flags & crate::lb::sync::SYNC_FLAG, 0, "SYNC is not a flag LVS sends");
}

#[test]
fn default_packet_rule_is_3_53_103() {
    let hits: Vec<u32> = (1..=120).filter(|&p| packet_rule(p, 3, 50)).collect();
    assert_eq!(hits, vec![3, 53, 103]);
    let once: Vec<u32> = (1..=120).filter(|&p| packet_rule(p, 3, 0)).collect();
    assert_eq!(once, vec![3]);
}
