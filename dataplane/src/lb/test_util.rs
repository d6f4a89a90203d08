//! Shared helpers of the load-balancing tests, which are in-process golden
//! tests: frames built and decoded with etherparse, snapshots changed between
//! packets the way the control side will (quiesce, remove, knobs), outcomes
//! checked against specs/ipvs.md.
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use etherparse::{NetSlice, PacketBuilder, SlicedPacket};

use super::Lb;
use crate::buf::VecBuf;
use crate::counters::WorkerCounters;
use crate::fwd::{Fib, FibPort, Route};
use crate::proto::Timeouts;
use crate::sched::{SchedKind, Scheduler};
use crate::service::{Dest, DestShared, Method, Persistence, SchedState, Service, ServiceKey, PROTO_TCP};
use crate::snapshot::{Knobs, Snapshot};
use crate::verdict::Verdict;
use crate::wire::tcp::flags::{ACK, FIN, RST, SYN};

pub(super) const P0_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];
pub(super) const P1_MAC: [u8; 6] = [2, 0, 0, 0, 2, 1];
pub(super) const GW_MAC: [u8; 6] = [2, 0, 0, 0, 0xfe, 1];
pub(super) const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);

pub(super) fn rs(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 2, 10 + n)
}

pub(super) fn client(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, n)
}

pub(super) fn dest(n: u8, port: u16, method: Method, weight: u32) -> Dest {
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

pub(super) fn service(key: ServiceKey, kind: SchedKind, persistence: Option<Persistence>, dests: Vec<Dest>) -> Service {
    let scheduler = Scheduler::build(kind, 0, &dests);
    let st = SchedState::default();
    scheduler.init_state(&st);
    Service { key, scheduler, persistence, one_packet: false, dests, sched_state: vec![st].into_boxed_slice() }
}

pub(super) fn tcp_svc(vport: u16) -> ServiceKey {
    ServiceKey::Addr { proto: PROTO_TCP, vaddr: VIP, vport }
}

pub(super) fn fib() -> Fib {
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

pub(super) fn snap(services: Vec<Service>, knobs: Knobs) -> Snapshot {
    Snapshot::new(fib(), services, Timeouts::default(), knobs, 32)
}

pub(super) fn tcp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, flags: u8) -> Vec<u8> {
    tcp_sized(src, sport, dst, dport, flags, 0, false)
}

pub(super) fn tcp_sized(
    src: Ipv4Addr,
    sport: u16,
    dst: Ipv4Addr,
    dport: u16,
    flags: u8,
    len: usize,
    df: bool,
) -> Vec<u8> {
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

pub(super) struct Rig {
    pub(super) lb: Lb,
    pub(super) counters: WorkerCounters,
}

impl Rig {
    pub(super) fn new() -> Rig {
        Rig { lb: Lb::new(0, 1024, 99), counters: WorkerCounters::new(2) }
    }

    pub(super) fn send(&mut self, s: &Snapshot, frame: &[u8], now: u32) -> (Verdict, Vec<u8>) {
        let mut b = VecBuf::new(frame, 128);
        self.lb.expire(now);
        let v = self.lb.process(&mut b, 0, 0, s, now, &self.counters);
        (v, b.into_vec())
    }

    pub(super) fn send_marked(&mut self, s: &Snapshot, frame: &[u8], mark: u32) -> (Verdict, Vec<u8>) {
        let mut b = VecBuf::new(frame, 128);
        let v = self.lb.process(&mut b, 0, mark, s, 0, &self.counters);
        (v, b.into_vec())
    }

    /// The real server (1-based) a forwarded frame went to (NAT: IP dst; DR: MAC).
    pub(super) fn server_of(out: &[u8]) -> u8 {
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
