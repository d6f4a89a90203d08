//! Tests of transmit dispatch: ICMP frag needed per forwarding method.
use etherparse::{Icmpv4Type, SlicedPacket, TransportSlice};

use crate::lb::test_util::*;
use crate::sched::SchedKind;
use crate::service::Method;
use crate::snapshot::Knobs;
use crate::verdict::Verdict;
use crate::wire::tcp::flags::{ACK, SYN};

#[test]
fn tun_answers_frag_needed_for_a_df_packet_over_the_tunnel_mtu() {
    let mut r = Rig::new();
    let s =
        snap(vec![service(tcp_svc(80), SchedKind::Rr, None, vec![dest(1, 80, Method::Tunnel, 1)])], Knobs::default());
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
fn nat_and_dr_answer_frag_needed_for_df_packets_over_the_path_mtu() {
    for m in [Method::Masq, Method::Route] {
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
