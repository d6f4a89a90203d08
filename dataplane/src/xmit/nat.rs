//! Masquerading, `-m` (specs/ipvs.md §4.2 and §4.7; `K: ip_vs_xmit.c
//! ip_vs_nat_xmit`, `ip_vs_core.c handle_response`, `ip_vs_nat_icmp`).
//!
//! - [`rewrite_in`]: client → VIP:vport becomes client → RIP:dport.
//! - [`rewrite_out`]: RIP:dport → client becomes VIP:vport → client.
//! - [`icmp_in`] / [`icmp_out`]: the ICMP errors related to a NAT connection,
//!   with both the outer header and the quoted datagram rewritten.
//! - [`icmp_embedded_key`]: the quoted flow of an ICMP error, for the reverse
//!   connection lookup that decides whether an error is related (§4.7).
//!
//! Every change is an RFC 1624 incremental update of the checksums that
//! cover it: the IPv4 header checksum, the TCP/UDP checksum (pseudo-header
//! address and port), the ICMP checksum. The UDP rules of RFC 768 hold
//! ([`crate::checksum`]): 0 stays 0, a computed 0 is sent as 0xffff. The
//! forwarded packet also loses one TTL (§4.1). MACs are the caller's, with
//! [`super::set_macs`]. On `Err` the frame is unchanged.
//!
//! Only TCP and UDP are translated (IPVS also does SCTP; rvs does not).
//! Fragments are refused: IPVS reassembles before NAT, rvs has no reassembly,
//! and later fragments carry no ports to translate.

use std::net::Ipv4Addr;

use super::{check_ttl, ipv4_view, ipv4_view_mut, read16, write16, XmitError};
use crate::buf::PacketBuf;
use crate::checksum;
use crate::wire::{icmp, ipv4, tcp, udp, IpProto};

/// Which end of the flow a rewrite changes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    Src,
    Dst,
}

/// Rewrites a client→VIP:vport packet towards the real server (§4.2 In): IP
/// destination → `new_daddr` (the RIP), TCP/UDP destination port →
/// `new_dport`, checksums updated, TTL − 1.
///
/// `Err(TtlExceeded)` for TTL ≤ 1 (answer with ICMP time exceeded),
/// `Err(Fragment)`, `Err(UnsupportedProto)` for anything but TCP/UDP. IPVS
/// refuses DNAT to a loopback address from outside; that check is the
/// caller's (it knows where the packet came from).
pub fn rewrite_in<B: PacketBuf>(pkt: &mut B, new_daddr: Ipv4Addr, new_dport: u16) -> Result<(), XmitError> {
    rewrite(pkt, End::Dst, new_daddr, new_dport)
}

/// Rewrites a reply RIP:dport→client as coming from the virtual service
/// (§4.2 Out): IP source → `new_saddr` (the VIP), TCP/UDP source port →
/// `new_sport` (the vport), checksums updated, TTL − 1. Errors as
/// [`rewrite_in`].
pub fn rewrite_out<B: PacketBuf>(pkt: &mut B, new_saddr: Ipv4Addr, new_sport: u16) -> Result<(), XmitError> {
    rewrite(pkt, End::Src, new_saddr, new_sport)
}

fn rewrite<B: PacketBuf>(pkt: &mut B, end: End, addr: Ipv4Addr, port: u16) -> Result<(), XmitError> {
    let mut ip = ipv4_view_mut(pkt.data_mut())?;
    if ip.is_fragment() {
        return Err(XmitError::Fragment);
    }
    check_ttl(&ip)?;
    let old = match end {
        End::Src => ip.src_addr(),
        End::Dst => ip.dst_addr(),
    };
    // The transport header is checked before the first write, so an error
    // leaves the frame as it was.
    match ip.protocol() {
        IpProto::Tcp => {
            let mut t = tcp::Packet::new_checked(ip.payload_mut()).map_err(|_| XmitError::Malformed)?;
            t.update_for_addr_change(old, addr);
            match end {
                End::Src => t.set_src_port_incremental(port),
                End::Dst => t.set_dst_port_incremental(port),
            }
        }
        IpProto::Udp => {
            let mut u = udp::Packet::new_checked(ip.payload_mut()).map_err(|_| XmitError::Malformed)?;
            u.update_for_addr_change(old, addr);
            match end {
                End::Src => u.set_src_port_incremental(port),
                End::Dst => u.set_dst_port_incremental(port),
            }
        }
        _ => return Err(XmitError::UnsupportedProto),
    }
    match end {
        End::Src => ip.set_src_addr_incremental(addr),
        End::Dst => ip.set_dst_addr_incremental(addr),
    }
    ip.decrement_ttl_incremental();
    Ok(())
}

/// The ICMP types IPVS relates to a connection (§4.7): destination
/// unreachable, source quench, time exceeded. Everything else passes.
pub const fn is_related_type(t: u8) -> bool {
    matches!(t, 3 | 4 | 11)
}

/// Rewrites an ICMP error from outside about a packet the director sent to
/// the client (VIP:vport → client), so that it reaches the real server as an
/// error about the packet the RS sent (RIP:dport → client) (§4.7 Inbound):
///
/// - outer IP destination → `rip`, TTL − 1 (incremental IPv4 checksum);
/// - quoted IP source → `rip`, its header checksum recomputed in full (as
///   IPVS does with `ip_send_check`);
/// - quoted source port → `dport`;
/// - quoted TCP/UDP checksum updated incrementally when the quote holds it:
///   UDP's is within the 8 bytes every error quotes (left at 0 if 0); TCP's is
///   at offset 16, so it is updated only when at least 18 bytes of TCP are
///   quoted (Linux routers quote up to 576 bytes, RFC 792 minimum senders
///   only 8). IPVS leaves it stale; updating it restores exactly the bytes
///   the RS sent, so the RS's stack sees its own segment;
/// - the ICMP checksum, verified first over the whole message (IPVS drops
///   errors that fail), then updated incrementally for every word above. The
///   result equals a full recomputation.
///
/// Errors: `NotIcmpError` (not ICMP, or a type other than 3/4/11),
/// `IcmpBadChecksum`, `Fragment` (the error or the quoted datagram is a
/// fragment), `UnsupportedProto` (quoted protocol not TCP/UDP), `Malformed`
/// (quote shorter than the IP header plus the two ports), `TtlExceeded`.
pub fn icmp_in<B: PacketBuf>(pkt: &mut B, rip: Ipv4Addr, dport: u16) -> Result<(), XmitError> {
    icmp_rewrite(pkt, End::Dst, rip, dport)
}

/// Rewrites an ICMP error from the real server's side about a client→RS
/// packet (client → RIP:dport), so that the client sees an error from the
/// VIP about its own packet (client → VIP:vport) (§4.7 Outbound): outer IP
/// source → `vip`, quoted IP destination → `vip`, quoted destination port →
/// `vport`; checksums and errors as [`icmp_in`].
pub fn icmp_out<B: PacketBuf>(pkt: &mut B, vip: Ipv4Addr, vport: u16) -> Result<(), XmitError> {
    icmp_rewrite(pkt, End::Src, vip, vport)
}

/// `outer` is the end of the outer header that changes; the quoted datagram
/// travelled the other way, so its opposite end changes.
fn icmp_rewrite<B: PacketBuf>(pkt: &mut B, outer: End, addr: Ipv4Addr, port: u16) -> Result<(), XmitError> {
    let mut ip = ipv4_view_mut(pkt.data_mut())?;
    if ip.protocol() != IpProto::Icmp {
        return Err(XmitError::NotIcmpError);
    }
    if ip.is_fragment() {
        return Err(XmitError::Fragment);
    }
    let ttl = check_ttl(&ip);
    let mut msg = icmp::Packet::new_checked(ip.payload_mut()).map_err(|_| XmitError::Malformed)?;
    if !is_related_type(msg.msg_type().0) {
        return Err(XmitError::NotIcmpError);
    }
    if !msg.verify_checksum() {
        return Err(XmitError::IcmpBadChecksum);
    }
    let mut icsum = msg.checksum();
    {
        let mut q = msg.embedded_ipv4_mut().map_err(|_| XmitError::Malformed)?;
        if q.frag_offset() != 0 {
            return Err(XmitError::Fragment);
        }
        let is_udp = match q.protocol() {
            IpProto::Tcp => false,
            IpProto::Udp => true,
            _ => return Err(XmitError::UnsupportedProto),
        };
        // Both ports must be quoted, as for the lookup (icmp_embedded_key).
        if q.payload().len() < 4 {
            return Err(XmitError::Malformed);
        }
        let port_at = if outer == End::Dst { 0 } else { 2 };
        let old_port = read16(q.payload(), port_at).ok_or(XmitError::Malformed)?;
        // The TTL goes last among the checks, so that an unrelated or
        // malformed error is reported as such; nothing is written before.
        ttl?;
        let old_addr = match outer {
            End::Dst => q.src_addr(),
            End::Src => q.dst_addr(),
        };
        let old_qcsum = q.checksum();
        match outer {
            End::Dst => q.set_src_addr(addr),
            End::Src => q.set_dst_addr(addr),
        }
        q.fill_checksum();
        icsum = checksum::update_addr_v4(icsum, old_addr, addr);
        icsum = checksum::update16(icsum, old_qcsum, q.checksum());

        // All offsets below are even from the start of the ICMP message (8 +
        // IHL * 4 + even), so each is one word of the ICMP checksum.
        let l4 = q.payload_mut();
        write16(l4, port_at, port);
        icsum = checksum::update16(icsum, old_port, port);
        let csum_at = if is_udp { 6 } else { 16 };
        if let Some(old_c) = read16(l4, csum_at) {
            let new_c = if is_udp {
                checksum::udp_update16(checksum::udp_update_addr_v4(old_c, old_addr, addr), old_port, port)
            } else {
                checksum::update16(checksum::update_addr_v4(old_c, old_addr, addr), old_port, port)
            };
            write16(l4, csum_at, new_c);
            icsum = checksum::update16(icsum, old_c, new_c);
        }
    }
    msg.set_checksum(icsum);
    match outer {
        End::Dst => ip.set_dst_addr_incremental(addr),
        End::Src => ip.set_src_addr_incremental(addr),
    }
    ip.decrement_ttl_incremental();
    Ok(())
}

/// The flow quoted by an ICMP error, as the director would see it in the
/// packet that caused the error (so `src`/`sport` is the quoted datagram's
/// source). The lead looks it up in reverse in the connection table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EmbeddedKey {
    /// ICMP type of the error (3, 4 or 11) and its code.
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// Protocol number of the quoted datagram (6 TCP, 17 UDP, ...).
    pub proto: u8,
    pub src: Ipv4Addr,
    /// Quoted source port; 0 for a protocol without ports.
    pub sport: u16,
    pub dst: Ipv4Addr,
    /// Quoted destination port; 0 for a protocol without ports.
    pub dport: u16,
}

/// Parses the frame (`pkt.data()`: untagged Ethernet + IPv4) of an ICMP
/// error of type 3, 4 or 11 (the only ones related to a connection, §4.7)
/// and returns the quoted flow. Ports are read for TCP, UDP and SCTP (the
/// first 4 bytes of each) and are 0 for other protocols (e.g. the
/// director's own IPIP packet to a TUN destination, §4.7 tunnel errors).
///
/// `None` for any other ICMP, non-ICMP, a fragmented error, a quoted
/// non-first fragment, or a quote too short for the IP header (plus the
/// ports where there are ports). The checksum is not verified here:
/// [`icmp_in`]/[`icmp_out`] do it before rewriting.
pub fn icmp_embedded_key(frame: &[u8]) -> Option<EmbeddedKey> {
    let ip = ipv4_view(frame).ok()?;
    if ip.protocol() != IpProto::Icmp || ip.is_fragment() {
        return None;
    }
    let msg = icmp::Packet::new_checked(ip.payload()).ok()?;
    if !is_related_type(msg.msg_type().0) {
        return None;
    }
    let q = ipv4::Packet::new_checked_header(msg.data()).ok()?;
    if q.frag_offset() != 0 {
        return None;
    }
    let proto = q.protocol();
    let (sport, dport) = match proto {
        IpProto::Tcp | IpProto::Udp | IpProto(132) => (read16(q.payload(), 0)?, read16(q.payload(), 2)?),
        _ => (0, 0),
    };
    Some(EmbeddedKey {
        icmp_type: msg.msg_type().0,
        icmp_code: msg.msg_code(),
        proto: proto.0,
        src: q.src_addr(),
        sport,
        dst: q.dst_addr(),
        dport,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::VecBuf;
    use crate::xmit::testutil::*;
    use etherparse::{IpNumber, Ipv4Header, UdpHeader};
    use proptest::prelude::*;

    /// Byte offsets (in the frame) of the TTL, the IP checksum, and the L4
    /// checksum for `proto`.
    fn l4_csum_at(udp: bool) -> [usize; 2] {
        if udp {
            [14 + 20 + 6, 14 + 20 + 7]
        } else {
            [14 + 20 + 16, 14 + 20 + 17]
        }
    }

    const TTL_CSUM: [usize; 3] = [14 + 8, 14 + 10, 14 + 11];

    /// (name, input, inbound?, udp?, zero UDP checksum?, expected src, sport, dst, dport).
    type NatCase = (&'static str, Vec<u8>, bool, bool, bool, (Ipv4Addr, u16, Ipv4Addr, u16));
    /// (name, datagram the error is about, expected quote, type, code, quote length).
    type IcmpCase<'a> = (&'static str, &'a [u8], &'a [u8], u8, u8, usize);
    type Rewrite = fn(&mut VecBuf) -> Result<(), XmitError>;

    /// Golden table for both directions.
    #[test]
    fn golden() {
        let cases: Vec<NatCase> = vec![
            ("in tcp", tcp_frame(CIP, CPORT, VIP, VPORT, 64), true, false, false, (CIP, CPORT, RIP, DPORT)),
            ("in udp", udp_frame(CIP, CPORT, VIP, VPORT, 64, false), true, true, false, (CIP, CPORT, RIP, DPORT)),
            ("in udp no csum", udp_frame(CIP, CPORT, VIP, VPORT, 2, true), true, true, true, (CIP, CPORT, RIP, DPORT)),
            ("out tcp", tcp_frame(RIP, DPORT, CIP, CPORT, 64), false, false, false, (VIP, VPORT, CIP, CPORT)),
            ("out udp", udp_frame(RIP, DPORT, CIP, CPORT, 33, false), false, true, false, (VIP, VPORT, CIP, CPORT)),
            (
                "out udp no csum",
                udp_frame(RIP, DPORT, CIP, CPORT, 64, true),
                false,
                true,
                true,
                (VIP, VPORT, CIP, CPORT),
            ),
            // Same port on both sides: only the address changes.
            ("in tcp same port", tcp_frame(CIP, CPORT, VIP, VPORT, 64), true, false, false, (CIP, CPORT, RIP, VPORT)),
        ];
        for (name, input, inbound, udp, zero, (src, sport, dst, dport)) in cases {
            let mut b = VecBuf::new(&input, 0);
            if inbound {
                rewrite_in(&mut b, dst, dport).unwrap();
            } else {
                rewrite_out(&mut b, src, sport).unwrap();
            }
            let out = b.as_bytes();
            let (h_in, _) = ipv4_checked(ip_of(&input));
            let (h, seg) = ipv4_checked(ip_of(out));
            assert_eq!(h.time_to_live, h_in.time_to_live - 1, "{name}");
            assert_eq!((h.source, h.destination), (src.octets(), dst.octets()), "{name}");
            assert_eq!(assert_l4_checksum(&h, seg), (sport, dport), "{name}");
            if zero {
                assert_eq!(UdpHeader::from_slice(seg).unwrap().0.checksum, 0, "{name}: UDP 0 stays 0");
            }
            // Nothing else changed: addresses, ports, TTL and checksums only.
            let (addr_at, port_at) = if inbound { (14 + 16, 14 + 20 + 2) } else { (14 + 12, 14 + 20) };
            for i in diff(&input, out) {
                let ok = TTL_CSUM.contains(&i)
                    || (addr_at..addr_at + 4).contains(&i)
                    || (port_at..port_at + 2).contains(&i)
                    || l4_csum_at(udp).contains(&i);
                assert!(ok, "{name}: byte {i} changed");
            }
        }
    }

    /// A UDP datagram whose checksum after DNAT computes to 0 must carry
    /// 0xffff (RFC 768), as a full computation would.
    #[test]
    fn udp_computed_zero_becomes_ffff() {
        // Choose the last payload word so that the rewritten datagram's
        // one's-complement sum is 0xffff.
        let mut seg = vec![0u8; 10];
        seg[0..2].copy_from_slice(&CPORT.to_be_bytes());
        seg[2..4].copy_from_slice(&DPORT.to_be_bytes());
        seg[4..6].copy_from_slice(&10u16.to_be_bytes());
        let partial = checksum::fold(checksum::sum(&seg, checksum::pseudo_header_v4(CIP, RIP, IpProto::Udp, 10)));
        let last = 0xffff - partial;
        let mut out = Vec::new();
        etherparse::PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC)
            .ipv4(CIP.octets(), VIP.octets(), 64)
            .udp(CPORT, VPORT)
            .write(&mut out, &last.to_be_bytes())
            .unwrap();
        let mut b = VecBuf::new(&out, 0);
        rewrite_in(&mut b, RIP, DPORT).unwrap();
        let (h, seg) = ipv4_checked(ip_of(b.as_bytes()));
        let (u, payload) = UdpHeader::from_slice(seg).unwrap();
        assert_eq!(u.checksum, 0xffff);
        assert_eq!(u.calc_checksum_ipv4(&h, payload).unwrap(), 0xffff);
    }

    #[test]
    fn errors_leave_the_frame_unchanged() {
        let mut frag = tcp_frame(CIP, CPORT, VIP, VPORT, 64);
        frag[14 + 6] = 0x20; // MF, offset 0: a first fragment is refused too
        let mut later = tcp_frame(CIP, CPORT, VIP, VPORT, 64);
        later[14 + 7] = 0x10;
        let mut short_tcp = tcp_frame(CIP, CPORT, VIP, VPORT, 64);
        short_tcp[14 + 3] = 30; // total length 30: 10 bytes of TCP
        let mut bad_udp_len = udp_frame(CIP, CPORT, VIP, VPORT, 64, false);
        bad_udp_len[14 + 20 + 5] = 200;
        let mut echo = Vec::new();
        etherparse::PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC)
            .ipv4(CIP.octets(), VIP.octets(), 64)
            .icmpv4_echo_request(1, 2)
            .write(&mut echo, b"ping")
            .unwrap();
        let cases: Vec<(&str, Vec<u8>, XmitError)> = vec![
            ("ttl 1", tcp_frame(CIP, CPORT, VIP, VPORT, 1), XmitError::TtlExceeded),
            ("ttl 0", udp_frame(CIP, CPORT, VIP, VPORT, 0, false), XmitError::TtlExceeded),
            ("first fragment", frag, XmitError::Fragment),
            ("later fragment", later, XmitError::Fragment),
            ("short tcp", short_tcp, XmitError::Malformed),
            ("udp length", bad_udp_len, XmitError::Malformed),
            ("icmp", echo, XmitError::UnsupportedProto),
            ("runt", tcp_frame(CIP, CPORT, VIP, VPORT, 64)[..30].to_vec(), XmitError::Malformed),
        ];
        for (name, input, want) in cases {
            let mut b = VecBuf::new(&input, 0);
            assert_eq!(rewrite_in(&mut b, RIP, DPORT), Err(want), "{name}");
            assert_eq!(rewrite_out(&mut b, VIP, VPORT), Err(want), "{name}");
            assert_eq!(b.as_bytes(), &input[..], "{name}");
        }
    }

    // ---- related ICMP (§4.7) ----

    /// Golden table for [`icmp_in`]: a router's error about the director's
    /// VIP:VPORT → CIP:CPORT packet, quoting `quote` bytes of it. After the
    /// rewrite the quote must be what the RS sent (RIP:DPORT → CIP:CPORT),
    /// byte for byte in the L4 part, TTL aside.
    #[test]
    fn icmp_in_golden() {
        let tcp_sent = tcp_frame(VIP, VPORT, CIP, CPORT, 63);
        let tcp_rs = tcp_frame(RIP, DPORT, CIP, CPORT, 63);
        let udp_sent = udp_frame(VIP, VPORT, CIP, CPORT, 63, false);
        let udp_rs = udp_frame(RIP, DPORT, CIP, CPORT, 63, false);
        let udp0_sent = udp_frame(VIP, VPORT, CIP, CPORT, 63, true);
        let udp0_rs = udp_frame(RIP, DPORT, CIP, CPORT, 63, true);
        let cases: Vec<IcmpCase> = vec![
            ("tcp port unreach, 8 bytes", &tcp_sent, &tcp_rs, 3, 3, 28),
            ("tcp frag needed, 18 bytes (csum)", &tcp_sent, &tcp_rs, 3, 4, 38),
            ("tcp ttl exceeded, whole", &tcp_sent, &tcp_rs, 11, 0, usize::MAX),
            ("tcp source quench, 17 bytes", &tcp_sent, &tcp_rs, 4, 0, 37),
            ("udp port unreach, 8 bytes", &udp_sent, &udp_rs, 3, 3, 28),
            ("udp host unreach, whole", &udp_sent, &udp_rs, 3, 1, usize::MAX),
            ("udp no csum, whole", &udp0_sent, &udp0_rs, 3, 3, usize::MAX),
            ("tcp ports only, 4 bytes", &tcp_sent, &tcp_rs, 3, 3, 24),
        ];
        for (name, sent, rs, t, c, quote) in cases {
            let input = icmp_error_frame(ROUTER, VIP, t, c, ip_of(sent), quote);
            assert_icmp_checksum(ipv4_checked(ip_of(&input)).1);
            let mut b = VecBuf::new(&input, 0);
            icmp_in(&mut b, RIP, DPORT).unwrap();
            check_icmp_rewrite(name, &input, b.as_bytes(), (ROUTER, RIP), rs, quote);
        }
    }

    /// Golden table for [`icmp_out`]: an error from the RS side about the
    /// CIP:CPORT → RIP:DPORT packet becomes one from the VIP about the
    /// client's own CIP:CPORT → VIP:VPORT packet.
    #[test]
    fn icmp_out_golden() {
        let tcp_rs = tcp_frame(CIP, CPORT, RIP, DPORT, 60);
        let tcp_client = tcp_frame(CIP, CPORT, VIP, VPORT, 60);
        let udp_rs = udp_frame(CIP, CPORT, RIP, DPORT, 60, false);
        let udp_client = udp_frame(CIP, CPORT, VIP, VPORT, 60, false);
        let cases: Vec<IcmpCase> = vec![
            ("tcp port unreach, 8 bytes", &tcp_rs, &tcp_client, 3, 3, 28),
            ("tcp whole", &tcp_rs, &tcp_client, 3, 3, usize::MAX),
            ("udp port unreach, 8 bytes", &udp_rs, &udp_client, 3, 3, 28),
            ("udp ttl exceeded, whole", &udp_rs, &udp_client, 11, 0, usize::MAX),
        ];
        for (name, rs, client, t, c, quote) in cases {
            let input = icmp_error_frame(RIP, CIP, t, c, ip_of(rs), quote);
            let mut b = VecBuf::new(&input, 0);
            icmp_out(&mut b, VIP, VPORT).unwrap();
            check_icmp_rewrite(name, &input, b.as_bytes(), (VIP, CIP), client, quote);
        }
    }

    /// Checks an ICMP NAT result: outer addresses `outer`, TTL − 1, all
    /// checksums valid, and the quote equal to `want` (a frame) apart from
    /// the quoted TTL and IP checksum, over the quoted length.
    fn check_icmp_rewrite(
        name: &str,
        input: &[u8],
        out: &[u8],
        outer: (Ipv4Addr, Ipv4Addr),
        want: &[u8],
        quote: usize,
    ) {
        let (h_in, msg_in) = ipv4_checked(ip_of(input));
        let (h, msg) = ipv4_checked(ip_of(out));
        assert_eq!((h.source, h.destination), (outer.0.octets(), outer.1.octets()), "{name}");
        assert_eq!(h.time_to_live, h_in.time_to_live - 1, "{name}");
        assert_eq!(msg.len(), msg_in.len(), "{name}");
        assert_icmp_checksum(msg);
        assert_eq!(&msg[..2], &msg_in[..2], "{name}: type and code");
        assert_eq!(&msg[4..8], &msg_in[4..8], "{name}: rest of header");
        let quoted = &msg[8..];
        let (qh, _) = Ipv4Header::from_slice(quoted).unwrap();
        assert_eq!(qh.header_checksum, qh.calc_header_checksum(), "{name}: quoted IP checksum");
        let want = &ip_of(want)[..quote.min(ip_of(want).len())];
        assert_eq!(quoted.len(), want.len(), "{name}");
        let (wh, _) = Ipv4Header::from_slice(want).unwrap();
        assert_eq!((qh.source, qh.destination, qh.protocol), (wh.source, wh.destination, wh.protocol), "{name}");
        if wh.protocol == IpNumber::TCP && quoted.len() == 20 + 17 {
            // Half of the TCP checksum is quoted: it cannot be updated, and is not.
            assert_eq!(&quoted[20..36], &want[20..36], "{name}: quoted L4 = the other side's");
            assert_eq!(quoted[36], msg_in[8 + 36], "{name}: half a checksum is left alone");
        } else {
            assert_eq!(&quoted[20..], &want[20..], "{name}: quoted L4 = the other side's, checksum included");
        }
        if quote == usize::MAX {
            assert_l4_checksum(&qh, &quoted[20..]);
        }
    }

    fn error_about(inner: &[u8], t: u8, c: u8, quote: usize) -> Vec<u8> {
        icmp_error_frame(ROUTER, VIP, t, c, ip_of(inner), quote)
    }

    #[test]
    fn icmp_errors() {
        let sent = tcp_frame(VIP, VPORT, CIP, CPORT, 63);
        let mut bad_csum = error_about(&sent, 3, 3, 28);
        bad_csum[14 + 20 + 2] ^= 0x01;
        let mut echo = Vec::new();
        etherparse::PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC)
            .ipv4(ROUTER.octets(), VIP.octets(), 64)
            .icmpv4_echo_request(1, 2)
            .write(&mut echo, &[0u8; 28])
            .unwrap();
        let mut quoted_frag = ip_of(&sent).to_vec();
        quoted_frag[7] = 0x10;
        let mut outer_frag = error_about(&sent, 3, 3, 28);
        outer_frag[14 + 6] = 0x20;
        let mut ttl1 = error_about(&sent, 3, 3, 28);
        ttl1[14 + 8] = 1;
        let c = checksum::ipv4_header_checksum(&ttl1[14..34]);
        ttl1[24..26].copy_from_slice(&c.to_be_bytes());
        let ping = {
            let mut p = Vec::new();
            etherparse::PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC)
                .ipv4(VIP.octets(), CIP.octets(), 64)
                .icmpv4_echo_request(1, 2)
                .write(&mut p, b"")
                .unwrap();
            p
        };
        let cases: Vec<(&str, Vec<u8>, XmitError)> = vec![
            ("not icmp", sent.clone(), XmitError::NotIcmpError),
            ("echo request", echo, XmitError::NotIcmpError),
            ("redirect", error_about(&sent, 5, 1, 28), XmitError::NotIcmpError),
            ("param problem", error_about(&sent, 12, 0, 28), XmitError::NotIcmpError),
            ("bad checksum", bad_csum, XmitError::IcmpBadChecksum),
            ("quoted fragment", icmp_error_frame(ROUTER, VIP, 3, 3, &quoted_frag, 28), XmitError::Fragment),
            ("outer fragment", outer_frag, XmitError::Fragment),
            ("quoted icmp", error_about(&ping, 3, 3, 28), XmitError::UnsupportedProto),
            ("3-byte quote", error_about(&sent, 3, 3, 23), XmitError::Malformed),
            ("quoted header cut", error_about(&sent, 3, 3, 19), XmitError::Malformed),
            ("icmp header cut", error_about(&sent, 3, 3, 0)[..14 + 20 + 4].to_vec(), XmitError::Malformed),
            ("ttl 1", ttl1, XmitError::TtlExceeded),
        ];
        for (name, input, want) in cases {
            let mut input = input;
            // Keep the outer total length consistent with cut frames.
            let tl = (input.len().saturating_sub(14)) as u16;
            if input.len() >= 34 {
                input[16..18].copy_from_slice(&tl.to_be_bytes());
                let c = checksum::ipv4_header_checksum(&input[14..34]);
                input[24..26].copy_from_slice(&c.to_be_bytes());
            }
            let mut b = VecBuf::new(&input, 0);
            assert_eq!(icmp_in(&mut b, RIP, DPORT), Err(want), "{name}");
            assert_eq!(icmp_out(&mut b, VIP, VPORT), Err(want), "{name}");
            assert_eq!(b.as_bytes(), &input[..], "{name}");
        }
    }

    #[test]
    fn embedded_key() {
        let sent = tcp_frame(VIP, VPORT, CIP, CPORT, 63);
        let key = icmp_embedded_key;
        for (t, c) in [(3, 3), (3, 4), (4, 0), (11, 0), (11, 1)] {
            let k = key(&error_about(&sent, t, c, 28)).unwrap();
            assert_eq!(
                k,
                EmbeddedKey { icmp_type: t, icmp_code: c, proto: 6, src: VIP, sport: VPORT, dst: CIP, dport: CPORT }
            );
        }
        let udp = udp_frame(CIP, CPORT, RIP, DPORT, 60, false);
        let k = key(&icmp_error_frame(RIP, CIP, 3, 3, ip_of(&udp), 28)).unwrap();
        assert_eq!((k.proto, k.src, k.sport, k.dst, k.dport), (17, CIP, CPORT, RIP, DPORT));
        // Ports are enough; fewer bytes are not.
        assert!(key(&error_about(&sent, 3, 3, 24)).is_some());
        assert!(key(&error_about(&sent, 3, 3, 23)).is_none());
        assert!(key(&error_about(&sent, 3, 3, 19)).is_none());
        // Other types and non-ICMP.
        for t in [0, 5, 8, 12, 13] {
            assert!(key(&error_about(&sent, t, 0, 28)).is_none(), "type {t}");
        }
        assert!(key(&sent).is_none());
        // A quoted protocol without ports (the director's own IPIP packet).
        let mut ipip = Vec::new();
        etherparse::PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC)
            .ip(etherparse::IpHeaders::Ipv4(ipv4_header(RIP, CIP, 64, IpNumber::IPV4), Default::default()))
            .write(&mut ipip, IpNumber::IPV4, ip_of(&sent))
            .unwrap();
        let k = key(&icmp_error_frame(ROUTER, RIP, 3, 4, ip_of(&ipip), 28)).unwrap();
        assert_eq!((k.proto, k.src, k.dst, k.sport, k.dport), (4, RIP, CIP, 0, 0));
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..120), fix in 0u8..3, t in prop_oneof![Just(3u8), Just(4), Just(11), any::<u8>()]) {
            let mut bytes = bytes;
            if fix > 0 && bytes.len() >= 62 {
                bytes[12] = 0x08;
                bytes[13] = 0x00;
                bytes[14] = 0x45;
                let tl = (bytes.len() - 14) as u16;
                bytes[16..18].copy_from_slice(&tl.to_be_bytes());
                bytes[20] &= 0x40;
                bytes[21] = 0;
                bytes[23] = if fix == 1 { 1 } else { [6u8, 17][usize::from(t & 1)] };
                bytes[34] = t;
                bytes[42] = 0x45;
                bytes[51] = [6u8, 17][usize::from(t >> 1 & 1)];
                // A valid ICMP checksum, so the rewrite paths are reached.
                bytes[36] = 0;
                bytes[37] = 0;
                let c = checksum::finish(checksum::sum(&bytes[34..], 0));
                bytes[36..38].copy_from_slice(&c.to_be_bytes());
            }
            let _ = icmp_embedded_key(&bytes);
            let fns: [Rewrite; 4] = [
                |b| rewrite_in(b, RIP, DPORT),
                |b| rewrite_out(b, VIP, VPORT),
                |b| icmp_in(b, RIP, DPORT),
                |b| icmp_out(b, VIP, VPORT),
            ];
            for f in fns {
                let mut b = VecBuf::new(&bytes, 0);
                if f(&mut b).is_err() {
                    prop_assert_eq!(b.as_bytes(), &bytes[..]);
                }
            }
        }

        /// Related-ICMP NAT over random flows and quote lengths: the result
        /// always has a correct ICMP checksum and quoted header checksum.
        #[test]
        fn icmp_rewrite_keeps_checksums(sp in any::<u16>(), dp in any::<u16>(), new_port in any::<u16>(),
                                        a in any::<u32>(), quote in 24usize..80, udp in any::<bool>(),
                                        payload in proptest::collection::vec(any::<u8>(), 0..40)) {
            let a = Ipv4Addr::from(a);
            let mut inner = Vec::new();
            let builder = etherparse::PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC).ipv4(VIP.octets(), CIP.octets(), 9);
            if udp {
                builder.udp(sp, dp).write(&mut inner, &payload).unwrap();
            } else {
                builder.tcp(sp, dp, 1, 2).write(&mut inner, &payload).unwrap();
            }
            let input = icmp_error_frame(ROUTER, VIP, 3, 3, ip_of(&inner), quote);
            let mut b = VecBuf::new(&input, 0);
            icmp_in(&mut b, a, new_port).unwrap();
            let (_, msg) = ipv4_checked(ip_of(b.as_bytes()));
            assert_icmp_checksum(msg);
            let (qh, _) = Ipv4Header::from_slice(&msg[8..]).unwrap();
            prop_assert_eq!(qh.header_checksum, qh.calc_header_checksum());
            prop_assert_eq!(qh.source, a.octets());
            prop_assert_eq!(&msg[28..30], &new_port.to_be_bytes());
            if quote >= ip_of(&inner).len() {
                assert_l4_checksum(&qh, &msg[28..]);
            }
        }
    }
}
