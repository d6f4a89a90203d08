//! Tests of related ICMP.
use std::net::Ipv4Addr;

use etherparse::{Icmpv4Type, NetSlice, PacketBuilder, SlicedPacket, TransportSlice};

use crate::lb::test_util::*;
use crate::sched::SchedKind;
use crate::service::Method;
use crate::snapshot::Knobs;
use crate::verdict::Verdict;
use crate::wire::tcp::flags::{ACK, SYN};

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
    let s =
        snap(vec![service(tcp_svc(80), SchedKind::Rr, None, vec![dest(1, 8080, Method::Masq, 1)])], Knobs::default());
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
