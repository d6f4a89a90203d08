//! Tests of the entry point and its first dispatch: frames not for this
//! port, martian sources, unmatched NAT replies.
use std::net::Ipv4Addr;

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};

use crate::buf::VecBuf;
use crate::lb::test_util::*;
use crate::sched::SchedKind;
use crate::service::Method;
use crate::snapshot::Knobs;
use crate::verdict::{DropReason, Verdict};
use crate::wire::tcp::flags::SYN;

#[test]
fn unmatched_nat_replies_pass_or_get_port_unreachable_per_nat_icmp_send() {
    let svc = || service(tcp_svc(80), SchedKind::Rr, None, vec![dest(1, 8080, Method::Masq, 1)]);
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
    let s = snap(vec![service(tcp_svc(80), SchedKind::Rr, None, vec![dest(1, 80, Method::Masq, 1)])], Knobs::default());
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
