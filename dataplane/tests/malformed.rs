//! Robustness of the per-packet path: malformed, hostile and odd frames
//! through `Lb::process` must never panic, and every drop must carry the
//! reason we expect.
//!
//! The harness (snapshot, input format, invariants) is the fuzz target's, in
//! `fuzz/src/lib.rs`, included here so both always test the same thing.
//!
//! - [`golden`]: a Katran-style table `{description, input, expected
//!   verdict}`. Inputs are built with etherparse (independent of the code
//!   under test) and byte-level edits; each case is also a file in
//!   `tests/corpus/<name>.bin` in the harness's record format (optional
//!   setup packets, then the case), so the fuzzer can start from them.
//!   `RVS_WRITE_CORPUS=1 cargo test -p dataplane --test malformed` rewrites
//!   the files after a change to the table; otherwise the test fails when a
//!   file and its builder disagree.
//! - [`corpus_replays`]: every file in `tests/corpus/` (the table's, and
//!   crash reproducers from the fuzzer) runs through the harness.
//! - proptests: random byte sequences and random mutations of valid SYN, UDP
//!   and ICMP frames.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod harness;

use std::path::PathBuf;

use dataplane::verdict::{DropReason, Verdict};
use etherparse::{IpHeaders, IpNumber, Ipv4Header, PacketBuilder, VlanId};
use harness::{flags, Record, CLIENT_MAC, FWMARK, PORT0_MAC, PORT1_MAC};
use proptest::prelude::*;

const CLIENT: [u8; 4] = [192, 0, 2, 10];
const VIP_B: [u8; 4] = [10, 0, 0, 100];
/// The real server rr picks first for VIP:80 (list head: the last added).
const NAT_RS: [u8; 4] = [10, 0, 2, 12];
const CPORT: u16 = 40000;

// ---------------------------------------------------------------- builders

fn tcp_frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, syn: bool, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC).ipv4(src, dst, 64).tcp(sport, dport, 1000, 65535);
    let b = if syn { b.syn() } else { b.ack(1) };
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

fn syn(src: [u8; 4], dport: u16) -> Vec<u8> {
    tcp_frame(src, VIP_B, CPORT, dport, true, &[])
}

fn udp_frame(src: [u8; 4], dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv4(src, dst, 64)
        .udp(CPORT, dport)
        .write(&mut v, payload)
        .unwrap();
    v
}

/// An IPv4 datagram (no Ethernet) for ICMP quotes.
fn ip_tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(src, dst, 64).tcp(sport, dport, 1000, 65535).syn().write(&mut v, &[]).unwrap();
    v
}

/// An ICMP message of `typ`/`code` quoting `quote`, from `src` to `dst`,
/// arriving on the port `from_mac` faces.
fn icmp_frame(
    from_mac: [u8; 6],
    to_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    typ: u8,
    code: u8,
    quote: &[u8],
) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(from_mac, to_mac)
        .ipv4(src, dst, 64)
        .icmpv4_raw(typ, code, [0; 4])
        .write(&mut v, quote)
        .unwrap();
    v
}

/// A SYN to VIP:80 whose IPv4 header has `ihl` words (NOP options, then EOL).
fn syn_with_options(ihl: u8) -> Vec<u8> {
    let mut h = Ipv4Header::new(20, 64, IpNumber::TCP, CLIENT, VIP_B).unwrap();
    let n = usize::from(ihl - 5) * 4;
    let mut opts = vec![1u8; n];
    if let Some(last) = opts.last_mut() {
        *last = 0;
    }
    h.options = opts.as_slice().try_into().unwrap();
    let mut v = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ip(IpHeaders::Ipv4(h, Default::default()))
        .tcp(CPORT, 80, 1000, 65535)
        .syn()
        .write(&mut v, &[])
        .unwrap();
    v
}

/// Edits the IPv4 header bytes (frame offset 14..) and recomputes its checksum.
fn edit_ip(mut f: Vec<u8>, edit: impl FnOnce(&mut [u8])) -> Vec<u8> {
    edit(&mut f[14..]);
    harness::fix_checksums(&mut f, false);
    f
}

/// Edits bytes anywhere in the frame, leaves every checksum as it is.
fn edit(mut f: Vec<u8>, edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    edit(&mut f);
    f
}

fn set_total_len(ip: &mut [u8], len: u16) {
    ip[2..4].copy_from_slice(&len.to_be_bytes());
}

// ------------------------------------------------------------ golden table

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Drop(DropReason),
    /// Forwarded on `port`; the output decodes as Ethernet + IPv4 with a
    /// valid header checksum.
    Fwd(u16),
    /// An ICMP error of `typ`/`code` sent back on `port`, with valid IPv4 and
    /// ICMP checksums.
    Icmp(u16, u8, u8),
    /// Rewritten for `port`, waiting for its next hop's MAC (the resolver's).
    Wait(u16),
}

struct Case {
    name: &'static str,
    description: &'static str,
    /// Setup packets (each must be forwarded), then the case.
    setup: Vec<Record>,
    input: Record,
    expect: Expect,
}

fn case(name: &'static str, description: &'static str, frame: Vec<u8>, expect: Expect) -> Case {
    Case { name, description, setup: vec![], input: Record::frame(frame), expect }
}

fn with(mut c: Case, f: impl FnOnce(&mut Record)) -> Case {
    f(&mut c.input);
    c
}

fn after_nat_syn(mut c: Case) -> Case {
    c.setup = vec![Record::frame(syn(CLIENT, 80))];
    c
}

/// The table. Where rvs differs from Linux IPVS the description says so.
fn cases() -> Vec<Case> {
    use DropReason::*;
    use Expect::{Fwd, Icmp};
    let d = Expect::Drop;
    let good_syn = syn(CLIENT, 80);
    let good_udp = udp_frame(CLIENT, VIP_B, 53, b"query");
    let mut v = vec![
        case("empty", "zero-length frame", vec![], d(EthTruncated)),
        case("one_byte", "1 byte", vec![0x02], d(EthTruncated)),
        case("thirteen_bytes", "13 bytes: one short of an Ethernet header", good_syn[..13].to_vec(), d(EthTruncated)),
        case("eth_only_ipv4", "Ethernet header only, ethertype IPv4", good_syn[..14].to_vec(), d(Ipv4Invalid)),
        case(
            "eth_only_arp",
            "Ethernet header only, ethertype ARP",
            edit(good_syn[..14].to_vec(), |f| f[12..14].copy_from_slice(&[8, 6])),
            d(NotIpv4),
        ),
        case(
            "ipv6_ethertype",
            "IPv6 ethertype (no IPv6 in this build)",
            edit(good_syn.clone(), |f| f[12..14].copy_from_slice(&[0x86, 0xdd])),
            d(NotIpv4),
        ),
        case(
            "vlan_ipv4_syn",
            "802.1Q-tagged SYN to the VIP: untagged ports only",
            {
                let mut f = Vec::new();
                PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
                    .single_vlan(VlanId::try_new(10).unwrap())
                    .ipv4(CLIENT, VIP_B, 64)
                    .tcp(CPORT, 80, 1, 65535)
                    .syn()
                    .write(&mut f, &[])
                    .unwrap();
                f
            },
            d(NotIpv4),
        ),
        case(
            "ip_version_6",
            "ethertype IPv4, version nibble 6",
            edit_ip(good_syn.clone(), |ip| ip[0] = 0x65),
            d(Ipv4Invalid),
        ),
        case("ip_truncated_header", "IPv4 header cut at 19 bytes", good_syn[..14 + 19].to_vec(), d(Ipv4Invalid)),
        case("ihl_4", "IHL 4 (< 5)", edit_ip(good_syn.clone(), |ip| ip[0] = 0x44), d(Ipv4Invalid)),
        case("ihl_0", "IHL 0", edit_ip(good_syn.clone(), |ip| ip[0] = 0x40), d(Ipv4Invalid)),
        case(
            "ihl_past_packet",
            "IHL 15 (60 bytes) in a 40-byte datagram",
            edit_ip(good_syn.clone(), |ip| ip[0] = 0x4f),
            d(Ipv4Invalid),
        ),
        case(
            "total_len_past_buffer",
            "total length 1500 in a 40-byte datagram",
            edit_ip(good_syn.clone(), |ip| set_total_len(ip, 1500)),
            d(Ipv4Invalid),
        ),
        case(
            "total_len_below_ihl",
            "total length 19 < IHL*4",
            edit_ip(good_syn.clone(), |ip| set_total_len(ip, 19)),
            d(Ipv4Invalid),
        ),
        case("total_len_zero", "total length 0", edit_ip(good_syn.clone(), |ip| set_total_len(ip, 0)), d(Ipv4Invalid)),
        case(
            "bad_ip_checksum",
            "header checksum off by one",
            edit(good_syn.clone(), |f| f[25] ^= 1),
            d(Ipv4BadChecksum),
        ),
        case(
            "ip_checksum_zero",
            "header checksum field 0",
            edit(good_syn.clone(), |f| f[24..26].fill(0)),
            d(Ipv4BadChecksum),
        ),
        case(
            "total_len_short_tcp",
            "total length 30: a SYN with 10 bytes of TCP header, rest as padding",
            edit_ip(good_syn.clone(), |ip| set_total_len(ip, 30)),
            d(L4Truncated),
        ),
        case(
            "padded_syn",
            "SYN padded to 64 bytes of Ethernet: padding trimmed, NAT",
            edit(good_syn.clone(), |f| f.resize(64, 0xee)),
            Fwd(1),
        ),
    ];
    for (name, ihl) in [("ip_options_ihl6", 6), ("ip_options_ihl10", 10), ("ip_options_ihl15", 15)] {
        v.push(case(
            name,
            "SYN to VIP:80 with IPv4 options (NOPs, EOL): NAT keeps the options",
            syn_with_options(ihl),
            Fwd(1),
        ));
    }
    v.extend([
        case(
            "frag_mf_syn",
            "first fragment (MF) of a SYN to the VIP: not reassembled",
            edit_ip(good_syn.clone(), |ip| ip[6] = 0x20),
            d(Fragment),
        ),
        case(
            "frag_offset_syn",
            "non-first fragment (offset 8) to the VIP",
            edit_ip(good_syn.clone(), |ip| ip[6..8].copy_from_slice(&[0, 1])),
            d(Fragment),
        ),
        case(
            "frag_mf_udp_short",
            "first fragment of UDP to the VIP with 4 bytes of UDP header",
            {
                let f = edit_ip(udp_frame(CLIENT, VIP_B, 53, &[]), |ip| {
                    ip[6] = 0x20;
                    set_total_len(ip, 24);
                });
                f[..14 + 24].to_vec()
            },
            d(Fragment),
        ),
        case(
            "frag_last_udp",
            "last fragment (offset 185, no MF) to the VIP",
            edit_ip(udp_frame(CLIENT, VIP_B, 53, &[0; 16]), |ip| ip[6..8].copy_from_slice(&[0, 185])),
            d(Fragment),
        ),
        case(
            "frag_dr_fwmark",
            "fragment with fwmark 7 (DR service)",
            edit_ip(good_syn.clone(), |ip| ip[6] = 0x20),
            d(Fragment),
        ),
        // rvs schedules before it looks past the ports, so these leave a
        // connection in SYN_RECV; IPVS parses the TCP header the same late way.
        case(
            "tcp_doff_4",
            "SYN with data offset 4 (< 5) to the NAT service",
            edit(good_syn.clone(), |f| f[46] = 0x40),
            d(L4Truncated),
        ),
        case(
            "tcp_doff_0",
            "SYN with data offset 0 to the NAT service",
            edit(good_syn.clone(), |f| f[46] = 0x00),
            d(L4Truncated),
        ),
        case(
            "tcp_doff_past_segment",
            "SYN with data offset 15 (60 bytes) in a 20-byte segment",
            edit(good_syn.clone(), |f| f[46] = 0xf0),
            d(L4Truncated),
        ),
        case(
            "tcp_doff_15_dr",
            "data offset 15 to the DR service (DR does not read TCP)",
            edit(syn(CLIENT, 443), |f| f[46] = 0xf0),
            d(L4Truncated),
        ),
        case(
            "tcp_truncated",
            "TCP header cut at 10 bytes (total length agrees)",
            {
                let f = edit_ip(good_syn.clone(), |ip| set_total_len(ip, 30));
                f[..14 + 30].to_vec()
            },
            d(L4Truncated),
        ),
        case(
            "tcp_truncated_3",
            "TCP header of 3 bytes: not even the ports",
            {
                let f = edit_ip(good_syn.clone(), |ip| set_total_len(ip, 23));
                f[..14 + 23].to_vec()
            },
            d(L4Truncated),
        ),
        case(
            "tcp_no_header",
            "protocol TCP, no payload at all",
            {
                let f = edit_ip(good_syn.clone(), |ip| set_total_len(ip, 20));
                f[..14 + 20].to_vec()
            },
            d(L4Truncated),
        ),
        case(
            "udp_len_past_datagram",
            "UDP length 200 in a 13-byte UDP datagram (TUN carries it as is)",
            edit(good_udp.clone(), |f| f[38..40].copy_from_slice(&200u16.to_be_bytes())),
            d(L4Truncated),
        ),
        case(
            "udp_len_below_8",
            "UDP length 4",
            edit(good_udp.clone(), |f| f[38..40].copy_from_slice(&4u16.to_be_bytes())),
            d(L4Truncated),
        ),
        case(
            "udp_len_short",
            "UDP length 8 with 5 bytes of payload after it",
            edit(good_udp.clone(), |f| f[38..40].copy_from_slice(&8u16.to_be_bytes())),
            Fwd(1),
        ),
        case(
            "udp_truncated",
            "UDP header cut at 4 bytes",
            {
                let f = edit_ip(good_udp.clone(), |ip| set_total_len(ip, 24));
                f[..14 + 24].to_vec()
            },
            d(L4Truncated),
        ),
        case(
            "udp_no_service",
            "UDP to VIP:54: no service, no local stack",
            udp_frame(CLIENT, VIP_B, 54, b"x"),
            d(VipUnhandled),
        ),
        case(
            "tcp_ack_no_conn",
            "ACK to VIP:80 without a connection",
            tcp_frame(CLIENT, VIP_B, CPORT, 80, false, &[]),
            d(TcpNoConn),
        ),
        case(
            "tcp_syn_rst",
            "SYN+RST to VIP:80",
            edit(good_syn.clone(), |f| {
                f[47] |= 0x04;
                harness::fix_checksums(f, true);
            }),
            d(TcpNoConn),
        ),
        case(
            "syn_port0_service",
            "SYN to VIP:81 caught by the port-0 service (NAT to .13:81)",
            syn(CLIENT, 81),
            Fwd(1),
        ),
        case("syn_dr_persistent", "SYN to VIP:443 (wlc, persistent, DR)", syn(CLIENT, 443), Fwd(1)),
        case("gre_to_vip", "GRE to the VIP", edit_ip(good_syn.clone(), |ip| ip[9] = 47), d(VipUnhandled)),
        case(
            "echo_to_vip",
            "ICMP echo request to the VIP",
            {
                let mut f = Vec::new();
                PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
                    .ipv4(CLIENT, VIP_B, 64)
                    .icmpv4_echo_request(1, 1)
                    .write(&mut f, b"ping")
                    .unwrap();
                f
            },
            d(VipUnhandled),
        ),
        case(
            "to_box_address",
            "SYN to the box's own 10.0.1.1",
            tcp_frame(CLIENT, [10, 0, 1, 1], CPORT, 22, true, &[]),
            d(Local),
        ),
        case(
            "routed_no_neighbor",
            "SYN to 10.0.2.99: on-link, no neighbour entry",
            tcp_frame(CLIENT, [10, 0, 2, 99], CPORT, 22, true, &[]),
            Expect::Wait(1),
        ),
        case(
            "routed_ttl_1",
            "routed (not load-balanced) packet with TTL 1",
            edit_ip(tcp_frame(CLIENT, [10, 0, 2, 11], CPORT, 22, true, &[]), |ip| ip[8] = 1),
            d(TtlExpired),
        ),
        // ICMP errors towards the VIP that cannot be related to a connection.
        case(
            "icmp_quote_truncated",
            "port unreachable to the VIP quoting 10 bytes",
            icmp_frame(CLIENT_MAC, PORT0_MAC, CLIENT, VIP_B, 3, 3, &ip_tcp(VIP_B, CLIENT, 80, CPORT)[..10]),
            d(VipUnhandled),
        ),
        case(
            "icmp_quote_garbage",
            "port unreachable to the VIP quoting 28 random bytes",
            icmp_frame(
                CLIENT_MAC,
                PORT0_MAC,
                CLIENT,
                VIP_B,
                3,
                3,
                &[
                    0x5a, 0x13, 0xff, 0, 7, 7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
                    21, 22,
                ],
            ),
            d(VipUnhandled),
        ),
        case(
            "icmp_quote_ihl_past",
            "quoted header with IHL 15 in 28 bytes",
            icmp_frame(
                CLIENT_MAC,
                PORT0_MAC,
                CLIENT,
                VIP_B,
                3,
                3,
                &edit(ip_tcp(VIP_B, CLIENT, 80, CPORT), |q| q[0] = 0x4f)[..28],
            ),
            d(VipUnhandled),
        ),
        case(
            "icmp_quote_icmp",
            "port unreachable to the VIP quoting an ICMP echo",
            {
                let mut q = Vec::new();
                PacketBuilder::ipv4(VIP_B, CLIENT, 64).icmpv4_echo_request(1, 1).write(&mut q, &[]).unwrap();
                icmp_frame(CLIENT_MAC, PORT0_MAC, CLIENT, VIP_B, 3, 3, &q)
            },
            d(VipUnhandled),
        ),
        case(
            "icmp_empty_body",
            "ICMP with only a type byte",
            {
                let f =
                    edit_ip(icmp_frame(CLIENT_MAC, PORT0_MAC, CLIENT, VIP_B, 3, 3, &[]), |ip| set_total_len(ip, 21));
                f[..14 + 21].to_vec()
            },
            d(VipUnhandled),
        ),
        case(
            "icmp_quote_no_conn",
            "well-formed port unreachable about VIP:80 → client, no connection",
            icmp_frame(CLIENT_MAC, PORT0_MAC, CLIENT, VIP_B, 3, 3, &ip_tcp(VIP_B, CLIENT, 80, CPORT)),
            d(VipUnhandled),
        ),
        // ICMP from the real server about a NAT connection (§4.7 outbound).
        after_nat_syn(case(
            "icmp_nat_quote",
            "port unreachable from the NAT RS about client → RS:8080: translated to come from the VIP",
            icmp_frame(harness::rs_mac(12), PORT1_MAC, NAT_RS, CLIENT, 3, 3, &ip_tcp(CLIENT, NAT_RS, CPORT, 8080)),
            Fwd(0),
        )),
        after_nat_syn(case(
            "icmp_nat_quote_ip_only",
            "the same ICMP, quote cut after the IP header: not related, routed as it is (IPVS: NF_ACCEPT)",
            icmp_frame(
                harness::rs_mac(12),
                PORT1_MAC,
                NAT_RS,
                CLIENT,
                3,
                3,
                &ip_tcp(CLIENT, NAT_RS, CPORT, 8080)[..20],
            ),
            Fwd(0),
        )),
        after_nat_syn(case(
            "icmp_nat_quote_4_bytes",
            "the same ICMP, quote cut after the ports",
            icmp_frame(
                harness::rs_mac(12),
                PORT1_MAC,
                NAT_RS,
                CLIENT,
                3,
                3,
                &ip_tcp(CLIENT, NAT_RS, CPORT, 8080)[..24],
            ),
            Fwd(0),
        )),
        after_nat_syn(case(
            "icmp_nat_bad_checksum",
            "the related ICMP with a wrong ICMP checksum",
            edit(
                icmp_frame(harness::rs_mac(12), PORT1_MAC, NAT_RS, CLIENT, 3, 3, &ip_tcp(CLIENT, NAT_RS, CPORT, 8080)),
                |f| f[37] ^= 0xff,
            ),
            d(IcmpBadChecksum),
        )),
        after_nat_syn(case(
            "nat_reply_truncated",
            "reply from the NAT RS with 10 bytes of TCP header",
            {
                let f = edit_ip(tcp_frame(NAT_RS, CLIENT, 8080, CPORT, true, &[]), |ip| set_total_len(ip, 30));
                f[..14 + 30].to_vec()
            },
            d(L4Truncated),
        )),
        after_nat_syn(case(
            "nat_reply_fragment",
            "reply from the NAT RS with MF set",
            edit_ip(tcp_frame(NAT_RS, CLIENT, 8080, CPORT, false, &[]), |ip| ip[6] = 0x20),
            d(Fragment),
        )),
        after_nat_syn(case(
            "nat_reply_doff_4",
            "reply from the NAT RS with data offset 4",
            edit(tcp_frame(NAT_RS, CLIENT, 8080, CPORT, false, &[]), |f| f[46] = 0x40),
            d(L4Truncated),
        )),
        case(
            "nat_reply_no_conn",
            "reply-shaped packet from the NAT RS without a connection: routed",
            tcp_frame(NAT_RS, CLIENT, 8080, CPORT, false, &[]),
            Fwd(0),
        ),
        // TTL: the director is a hop (§4.1).
        case(
            "ttl_1_nat",
            "SYN to VIP:80 with TTL 1: time exceeded from the VIP",
            edit_ip(good_syn.clone(), |ip| ip[8] = 1),
            Icmp(0, 11, 0),
        ),
        case("ttl_0_nat", "SYN to VIP:80 with TTL 0", edit_ip(good_syn.clone(), |ip| ip[8] = 0), Icmp(0, 11, 0)),
        case("ttl_1_dr", "SYN to VIP:443 (DR) with TTL 1", edit_ip(syn(CLIENT, 443), |ip| ip[8] = 1), Icmp(0, 11, 0)),
        case("ttl_1_tun", "UDP to VIP:53 (TUN) with TTL 1", edit_ip(good_udp.clone(), |ip| ip[8] = 1), Icmp(0, 11, 0)),
        // Martian sources. Linux drops these in ip_route_input_slow before
        // IPVS sees them; rvs has no such check and load-balances them.
        case(
            "src_zero",
            "SYN to VIP:80 from 0.0.0.0 (martian, dropped as Linux does)",
            syn([0, 0, 0, 0], 80),
            d(MartianSource),
        ),
        case(
            "src_broadcast",
            "SYN to VIP:80 from 255.255.255.255 (Linux: martian, dropped)",
            syn([255, 255, 255, 255], 80),
            d(MartianSource),
        ),
        case(
            "src_multicast",
            "SYN to VIP:80 from 224.0.0.1 (Linux: martian, dropped)",
            syn([224, 0, 0, 1], 80),
            d(MartianSource),
        ),
        case(
            "src_zero_ttl_1",
            "from 0.0.0.0 with TTL 1: no ICMP error to a non-host",
            edit_ip(syn([0, 0, 0, 0], 80), |ip| ip[8] = 1),
            d(MartianSource),
        ),
        // IPVS ignores frames that are not PACKET_HOST (ip_vs_in_hook); rvs does not look at L2.
        case(
            "eth_multicast_dst",
            "SYN to VIP:80 in a frame to 01:00:5e:00:00:01 (IPVS: ignored)",
            edit(good_syn.clone(), |f| f[..6].copy_from_slice(&[1, 0, 0x5e, 0, 0, 1])),
            d(L2Multicast),
        ),
        case(
            "eth_broadcast_dst_ttl_1",
            "TTL 1 in an Ethernet broadcast: no ICMP error",
            edit(edit_ip(good_syn.clone(), |ip| ip[8] = 1), |f| f[..6].fill(0xff)),
            d(L2Multicast),
        ),
        // Sizes and headroom for TUN (tunnel MTU 1480).
        case(
            "jumbo_udp_tun_df",
            "9000-byte UDP to VIP:53 (TUN) with DF: frag needed, MTU 1480",
            udp_frame(CLIENT, VIP_B, 53, &[0x42; 9000 - 28]),
            Icmp(0, 3, 4),
        ),
        case(
            "jumbo_udp_tun_no_df",
            "9000-byte UDP to VIP:53 without DF: encapsulated as is (rvs does not fragment)",
            edit_ip(udp_frame(CLIENT, VIP_B, 53, &[0x42; 9000 - 28]), |ip| ip[6] = 0),
            Fwd(1),
        ),
        case(
            "udp_1481_tun_df",
            "1481-byte UDP with DF: one byte over the tunnel MTU",
            udp_frame(CLIENT, VIP_B, 53, &[0; 1481 - 28]),
            Icmp(0, 3, 4),
        ),
        case(
            "udp_1480_tun_df",
            "1480-byte UDP with DF: fits the tunnel",
            udp_frame(CLIENT, VIP_B, 53, &[0; 1480 - 28]),
            Fwd(1),
        ),
        case(
            "jumbo_tcp_nat",
            "9000-byte SYN to VIP:80 with DF (NAT): frag needed, MTU 1500 (§4.1)",
            tcp_frame(CLIENT, VIP_B, CPORT, 80, true, &[0x42; 9000 - 40]),
            Icmp(0, 3, 4),
        ),
        case(
            "jumbo_tcp_fwmark_dr",
            "9000-byte SYN with fwmark 7 (DR)",
            tcp_frame(CLIENT, [198, 51, 100, 1], CPORT, 8443, true, &[0x42; 9000 - 40]),
            Icmp(0, 3, 4),
        ),
        case(
            "max_total_len_tun",
            "65516-byte UDP without DF to TUN: the outer header would take it past 65535",
            {
                let f = udp_frame(CLIENT, VIP_B, 53, &[0; 65516 - 28]);
                edit_ip(f, |ip| ip[6] = 0)
            },
            d(TooBig),
        ),
        case("tun_no_headroom", "UDP to VIP:53 (TUN) with 0 bytes of headroom", good_udp.clone(), d(NoHeadroom)),
        case(
            "tun_df_no_headroom",
            "9000-byte DF UDP to TUN with 0 headroom: the frag-needed error has no room either",
            udp_frame(CLIENT, VIP_B, 53, &[0x42; 9000 - 28]),
            d(NoHeadroom),
        ),
        case(
            "nat_ttl_1_no_headroom",
            "TTL 1 SYN to NAT with 0 headroom: no room for time exceeded",
            edit_ip(good_syn.clone(), |ip| ip[8] = 1),
            d(NoHeadroom),
        ),
        case("nat_no_headroom", "SYN to NAT with 0 headroom: NAT needs none", good_syn.clone(), Fwd(1)),
    ]);
    for c in v.iter_mut() {
        match c.name {
            "frag_dr_fwmark" | "jumbo_tcp_fwmark_dr" => c.input.mark = FWMARK as u8,
            "tun_no_headroom" | "tun_df_no_headroom" | "nat_ttl_1_no_headroom" | "nat_no_headroom" => {
                c.input.flags |= flags::NO_HEADROOM
            }
            "icmp_nat_quote"
            | "icmp_nat_quote_ip_only"
            | "icmp_nat_quote_4_bytes"
            | "icmp_nat_bad_checksum"
            | "nat_reply_truncated"
            | "nat_reply_fragment"
            | "nat_reply_doff_4"
            | "nat_reply_no_conn" => c.input.flags |= flags::PORT1,
            _ => {}
        }
    }
    v.push(Case {
        name: "conn_table_full",
        description: "a 65th SYN when 64 connections fill the table",
        setup: (0..64).map(|i| Record::frame(tcp_frame(CLIENT, VIP_B, 1000 + i, 80, true, &[]))).collect(),
        input: Record::frame(syn(CLIENT, 80)),
        expect: Expect::Drop(DropReason::ConnTableFull),
    });
    v.push(with(
        case(
            "fwmark_icmp_echo",
            "ICMP echo with fwmark 7 to a routed address: not balanced, routed",
            {
                let mut f = Vec::new();
                PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
                    .ipv4(CLIENT, [198, 51, 100, 1], 64)
                    .icmpv4_echo_request(1, 1)
                    .write(&mut f, b"ping")
                    .unwrap();
                f
            },
            Fwd(0),
        ),
        |r| r.mark = FWMARK as u8,
    ));
    v
}

fn records(c: &Case) -> Vec<Record> {
    let mut r = c.setup.clone();
    r.push(c.input.clone());
    r
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// Checks a forwarded frame with etherparse: Ethernet II, IPv4 with a valid
/// header checksum; for ICMP errors also type, code and ICMP checksum.
fn check_output(name: &str, out: &[u8], icmp: Option<(u8, u8)>) {
    let eth = etherparse::Ethernet2HeaderSlice::from_slice(out).unwrap_or_else(|e| panic!("{name}: Ethernet: {e}"));
    assert_eq!(eth.ether_type(), etherparse::EtherType::IPV4, "{name}");
    let ip = etherparse::Ipv4HeaderSlice::from_slice(&out[14..]).unwrap_or_else(|e| panic!("{name}: IPv4: {e}"));
    let h = ip.to_header();
    assert_eq!(h.header_checksum, h.calc_header_checksum(), "{name}: IPv4 header checksum");
    assert_eq!(usize::from(h.total_len), out.len() - 14, "{name}: total length");
    if let Some((typ, code)) = icmp {
        assert_eq!(h.protocol, IpNumber::ICMP, "{name}");
        // From the address the client sent to (the VIP, or the fwmark service's destination).
        assert!(h.source == VIP_B || h.source == [198, 51, 100, 1], "{name}: from the VIP, got {:?}", h.source);
        assert_eq!(h.destination, CLIENT, "{name}: back to the client");
        let body = &out[14 + ip.slice().len()..];
        assert_eq!((body[0], body[1]), (typ, code), "{name}: ICMP type/code");
        assert_eq!(harness::sum16(body, 0), 0xffff, "{name}: ICMP checksum");
        assert_eq!(eth.source(), PORT0_MAC, "{name}: the error leaves from the port it came in on");
    }
}

#[test]
fn golden() {
    let write = std::env::var_os("RVS_WRITE_CORPUS").is_some();
    let mut failures = Vec::new();
    let cases = cases();
    let mut names: Vec<&str> = cases.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "case names are unique");
    for c in &cases {
        let recs = records(c);
        let out = harness::run_records(&recs);
        for (i, (v, _)) in out[..c.setup.len()].iter().enumerate() {
            assert!(matches!(v, Verdict::Forward { .. }), "{}: setup packet {i} gave {v:?}", c.name);
        }
        let (v, frame) = out.last().unwrap();
        let ok = match (c.expect, *v) {
            (Expect::Drop(r), Verdict::Drop(got)) => r == got,
            (Expect::Fwd(p), Verdict::Forward { port }) => {
                check_output(c.name, frame, None);
                p == port
            }
            (Expect::Icmp(p, t, code), Verdict::Forward { port }) => {
                check_output(c.name, frame, Some((t, code)));
                p == port
            }
            (Expect::Wait(p), Verdict::Resolve { port, .. }) => {
                check_output(c.name, frame, None);
                p == port
            }
            _ => false,
        };
        if !ok {
            failures.push(format!("{}: {} — expected {:?}, got {:?}", c.name, c.description, c.expect, v));
        }
        let path = corpus_dir().join(format!("{}.bin", c.name));
        let bytes = harness::encode(&recs);
        assert_eq!(harness::decode(&bytes), recs, "{}: the record format holds the case", c.name);
        if write {
            std::fs::write(&path, &bytes).unwrap();
        } else {
            let on_disk = std::fs::read(&path).unwrap_or_default();
            if on_disk != bytes {
                failures.push(format!(
                    "{}: {} differs from the table (RVS_WRITE_CORPUS=1 rewrites it)",
                    c.name,
                    path.display()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} cases:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

/// Every file in tests/corpus (the table's and any fuzzer reproducer).
#[test]
fn corpus_replays() {
    let mut n = 0;
    for entry in std::fs::read_dir(corpus_dir()).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let r = std::panic::catch_unwind(|| harness::run(&data));
        assert!(r.is_ok(), "{} panicked", path.display());
        n += 1;
    }
    assert!(n > 0, "no corpus files");
}

// --------------------------------------------------------------- proptests

fn base_frames() -> Vec<(Vec<Record>, Vec<u8>)> {
    let nat_icmp =
        icmp_frame(harness::rs_mac(12), PORT1_MAC, NAT_RS, CLIENT, 3, 3, &ip_tcp(CLIENT, NAT_RS, CPORT, 8080));
    let in_icmp = icmp_frame(CLIENT_MAC, PORT0_MAC, CLIENT, VIP_B, 3, 4, &ip_tcp(VIP_B, CLIENT, 80, CPORT));
    let setup = vec![Record::frame(syn(CLIENT, 80))];
    vec![
        (vec![], syn(CLIENT, 80)),
        (vec![], syn(CLIENT, 443)),
        (vec![], syn(CLIENT, 81)),
        (vec![], udp_frame(CLIENT, VIP_B, 53, b"query")),
        (setup.clone(), tcp_frame(NAT_RS, CLIENT, 8080, CPORT, true, &[])),
        (setup.clone(), nat_icmp),
        (setup, in_icmp),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// Arbitrary bytes in the harness format.
    #[test]
    fn random_input(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        harness::run(&data);
    }

    /// Arbitrary frames, with or without checksum fixing, any flags and mark.
    #[test]
    fn random_frames(frames in proptest::collection::vec(
        (any::<u8>(), prop_oneof![Just(0u8), Just(7u8), any::<u8>()], 0u8..4, proptest::collection::vec(any::<u8>(), 0..200)),
        1..8,
    )) {
        let recs: Vec<Record> = frames
            .into_iter()
            .map(|(fl, mark, dt, mut body)| {
                // An Ethernet header that reaches the IPv4 code half the time.
                if fl & 0x80 != 0 && body.len() >= 14 {
                    body[12..14].copy_from_slice(&[8, 0]);
                    if body.len() > 14 { body[14] = 0x45; }
                }
                Record { flags: fl & 0x1f, mark, dt, frame: body }
            })
            .collect();
        harness::run_records(&recs);
    }

    /// Valid frames with random byte edits and cuts, checksums fixed or not.
    #[test]
    fn mutated_frames(which in 0usize..7, edits in proptest::collection::vec((any::<u16>(), any::<u8>()), 1..6),
                      cut in proptest::option::of(any::<u16>()), fl in 0u8..32, mark in prop_oneof![Just(0u8), Just(7u8)]) {
        let (setup, mut frame) = base_frames().swap_remove(which);
        for (at, x) in edits {
            let n = frame.len();
            frame[usize::from(at) % n] ^= x;
        }
        if let Some(c) = cut {
            let n = usize::from(c) % (frame.len() + 1);
            frame.truncate(n);
        }
        let mut recs = setup;
        recs.push(Record { flags: fl, mark, dt: 0, frame });
        harness::run_records(&recs);
    }
}
