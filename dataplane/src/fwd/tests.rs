//! Golden cases for `forward`: input built with etherparse (an independent
//! builder), output decoded with etherparse.
use super::*;
use crate::buf::VecBuf;
use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};

const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 9, 1];
const P0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const P1_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x11];
const GW_MAC: [u8; 6] = [2, 0, 0, 0, 0xfe, 1];

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn fib() -> Fib {
    Fib::new(
        vec![
            FibPort { mac: P0_MAC, addrs: vec![(ip("10.0.1.1"), 24)] },
            FibPort { mac: P1_MAC, addrs: vec![(ip("10.0.2.1"), 24)] },
        ],
        vec![Route { prefix: ip("0.0.0.0"), len: 0, via: Some(ip("10.0.1.254")), port: 0 }],
        vec![(1, ip("10.0.2.2"), SERVER_MAC), (0, ip("10.0.1.254"), GW_MAC), (0, ip("10.0.1.2"), CLIENT_MAC)],
    )
}

fn udp(src: &str, dst: &str, ttl: u8, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(CLIENT_MAC, P0_MAC).ipv4(ip(src).octets(), ip(dst).octets(), ttl).udp(4000, 53);
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

fn run(bytes: &[u8]) -> (Verdict, Vec<u8>) {
    let mut b = VecBuf::new(bytes, 64);
    let v = forward(&mut b, &fib(), &Learned::default());
    (v, b.as_bytes().to_vec())
}

#[test]
fn forwards_to_connected_server_rewriting_macs_and_ttl() {
    let input = udp("10.0.1.2", "10.0.2.2", 64, b"hello");
    let (v, out) = run(&input);
    assert_eq!(v, Verdict::Forward { port: 1 });
    let p = SlicedPacket::from_ethernet(&out).unwrap();
    let Some(etherparse::LinkSlice::Ethernet2(eth)) = p.link else { panic!("no ethernet") };
    assert_eq!(eth.destination(), SERVER_MAC);
    assert_eq!(eth.source(), P1_MAC);
    let Some(NetSlice::Ipv4(ipv4)) = p.net else { panic!("no ipv4") };
    let h = ipv4.header();
    assert_eq!(h.ttl(), 63);
    assert_eq!(h.source_addr(), ip("10.0.1.2"));
    assert_eq!(h.destination_addr(), ip("10.0.2.2"));
    assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum());
    let Some(TransportSlice::Udp(u)) = p.transport else { panic!("no udp") };
    assert_eq!(u.payload(), b"hello");
    // Only the MACs, TTL and IPv4 checksum changed.
    assert_eq!(out.len(), input.len());
    assert_eq!(out[34..], input[34..]);
}

#[test]
fn default_route_goes_to_the_gateway_mac() {
    let (v, out) = run(&udp("10.0.2.2", "192.0.2.7", 10, b"x"));
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert_eq!(out[0..6], GW_MAC);
    assert_eq!(out[6..12], P0_MAC);
}

#[test]
fn ethernet_padding_is_trimmed() {
    let mut input = udp("10.0.1.2", "10.0.2.2", 64, b"");
    let datagram_end = input.len();
    input.resize(60, 0xaa);
    let (v, out) = run(&input);
    assert_eq!(v, Verdict::Forward { port: 1 });
    assert_eq!(out.len(), datagram_end);
}

#[test]
fn drops_carry_their_reasons() {
    let arp = {
        let mut f = udp("10.0.1.2", "10.0.2.2", 64, b"");
        f[12..14].copy_from_slice(&[0x08, 0x06]);
        f
    };
    let bad_ihl = {
        let mut f = udp("10.0.1.2", "10.0.2.2", 64, b"");
        f[14] = 0x43;
        f
    };
    let bad_csum = {
        let mut f = udp("10.0.1.2", "10.0.2.2", 64, b"");
        f[24] ^= 0xff;
        f
    };
    let cases: Vec<(&str, Vec<u8>, DropReason)> = vec![
        ("runt", vec![0u8; 10], DropReason::EthTruncated),
        ("arp", arp, DropReason::NotIpv4),
        ("ihl 3", bad_ihl, DropReason::Ipv4Invalid),
        ("checksum", bad_csum, DropReason::Ipv4BadChecksum),
        ("to the box", udp("10.0.1.2", "10.0.2.1", 64, b""), DropReason::Local),
        ("ttl 1", udp("10.0.1.2", "10.0.2.2", 1, b""), DropReason::TtlExpired),
        ("truncated ip", udp("10.0.1.2", "10.0.2.2", 64, b"abc")[..30].to_vec(), DropReason::Ipv4Invalid),
    ];
    for (name, input, reason) in cases {
        let (v, _) = run(&input);
        assert_eq!(v, Verdict::Drop(reason), "case {name}");
    }
    let no_route = Fib::new(vec![FibPort { mac: P0_MAC, addrs: vec![(ip("10.0.1.1"), 24)] }], vec![], vec![]);
    let mut b = VecBuf::new(&udp("10.0.1.2", "192.0.2.1", 64, b""), 0);
    assert_eq!(forward(&mut b, &no_route, &Learned::default()), Verdict::Drop(DropReason::NoRoute));
}

#[test]
fn unknown_neighbour_waits_for_resolution_and_learned_ones_are_used() {
    let input = udp("10.0.1.2", "10.0.2.3", 64, b"x");
    let (v, out) = run(&input);
    assert_eq!(v, Verdict::Resolve { port: 1, next_hop: ip("10.0.2.3") });
    // Rewritten for the hop except the destination MAC.
    assert_eq!(&out[6..12], &P1_MAC);
    assert_eq!(out[14 + 8], 63);
    // Via a gateway: the next hop is the gateway.
    let learned = Learned { neighbors: NeighborTable::new([(1, ip("10.0.2.3"), SERVER_MAC)]), local: vec![] };
    let mut b = VecBuf::new(&input, 0);
    assert_eq!(forward(&mut b, &fib(), &learned), Verdict::Forward { port: 1 });
    assert_eq!(&b.as_bytes()[..6], &SERVER_MAC);
    // A static entry wins over a learned one.
    let learned = Learned { neighbors: NeighborTable::new([(1, ip("10.0.2.2"), GW_MAC)]), local: vec![] };
    let mut b = VecBuf::new(&udp("10.0.1.2", "10.0.2.2", 64, b""), 0);
    assert_eq!(forward(&mut b, &fib(), &learned), Verdict::Forward { port: 1 });
    assert_eq!(&b.as_bytes()[..6], &SERVER_MAC);
    // Addresses the kernel holds are the box's own.
    let learned = Learned { neighbors: NeighborTable::default(), local: vec![ip("10.0.2.3")] };
    let mut b = VecBuf::new(&input, 0);
    assert_eq!(forward(&mut b, &fib(), &learned), Verdict::Drop(DropReason::Local));
}
