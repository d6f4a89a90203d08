//! ICMP errors the director originates (specs/ipvs.md §4.1, §4.6; `K:
//! net/ipv4/icmp.c icmp_send`): time exceeded for an expiring TTL,
//! fragmentation needed for a DF packet that does not fit, port unreachable
//! when a service has no destination.
//!
//! The received frame is turned into the error **in place**, ready to leave
//! by the port it came in on:
//!
//! ```text
//! [Ethernet][IPv4 datagram ...]  →  [Ethernet, MACs swapped][IPv4 20][ICMP 8][datagram, cut]
//! ```
//!
//! 28 bytes come from the headroom. The quote is the original IP header
//! (options included) and as much of the datagram as keeps the error within
//! 576 bytes (RFC 1812 §4.3.2.3, Linux `icmp_send`): at most 548 bytes. The
//! new IPv4 header: version 4, IHL 5, TOS precedence "internet control"
//! (0xc0) plus the original's RFC 1349 TOS bits (0x1c; Linux keeps 0x1e,
//! which lets an ECT(0) mark through: rvs sends ICMP as not-ECT), DF 0, TTL 64,
//! protocol 1, ident the original's, source the caller's (the VIP the
//! client spoke to, or the box's address), destination the original source.
//! Both checksums are computed in full (a header we build).
//!
//! RFC 1122 §3.2.2 / RFC 1812 §4.3.2.7: no error is sent about an ICMP error
//! (or an ICMP type unknown to Linux, > 18), a fragment other than the first,
//! a datagram sent to a broadcast or multicast address (IP or Ethernet), or a
//! datagram whose source is not one host (0.0.0.0, loopback, multicast,
//! 240/4 and broadcast). Those get `Err(IcmpSuppressed)`. Rate limiting
//! (Linux `icmp_ratelimit`) is the caller's.
//!
//! On `Err` the frame is unchanged.

use std::net::Ipv4Addr;

use super::{ipv4_view, write16, XmitError};
use crate::buf::PacketBuf;
use crate::wire::{ethernet, icmp, ipv4, IpProto};

/// The largest ICMP error datagram (RFC 1812 §4.3.2.3).
pub const MAX_ERROR_LEN: usize = 576;
/// The most bytes of the original datagram that are quoted.
pub const MAX_QUOTE: usize = MAX_ERROR_LEN - ipv4::HEADER_LEN - icmp::HEADER_LEN;
/// Headroom [`build_error`] takes in front of the frame.
pub const HEADROOM: usize = ipv4::HEADER_LEN + icmp::HEADER_LEN;
/// TTL of the errors we originate (Linux `ip_default_ttl`).
pub const TTL: u8 = 64;

/// Linux `icmp_send`: errors get precedence "internet control" and keep
/// the original's RFC 1349 TOS bits. Linux's mask (`IPTOS_TOS_MASK`, 0x1e)
/// also keeps the ECT(0) bit; rvs clears both ECN bits: ICMP is not an
/// ECN-capable transport.
const TOS_PREC_INTERNETCONTROL: u8 = 0xc0;
const TOS_MASK: u8 = 0x1c;
/// Highest ICMP type Linux knows (`NR_ICMP_TYPES`); unknown types are
/// treated as errors, so nothing is sent about them.
const NR_ICMP_TYPES: u8 = 18;

/// Turns the frame in place into an ICMP error of `icmp_type`/`code` going
/// back to the original sender from `src` (see the module doc for every
/// field). `rest_of_header` is ICMP bytes 4..8 in network order: 0, or the
/// next-hop MTU in the low 16 bits for fragmentation needed.
///
/// `Err(IcmpSuppressed)` where RFC 1122 forbids an error,
/// `Err(NoHeadroom)` with less than 28 bytes of headroom, `Err(NotIpv4)` /
/// `Err(Malformed)` for a frame that is not untagged Ethernet + valid IPv4.
pub fn build_error<B: PacketBuf>(
    pkt: &mut B,
    icmp_type: u8,
    code: u8,
    rest_of_header: u32,
    src: Ipv4Addr,
) -> Result<(), XmitError> {
    let (orig_src, tos, ident, quote_len) = {
        let data = pkt.data();
        let ip = ipv4_view(data)?;
        let l2_group = data.first().is_some_and(|b| b & 0x01 != 0);
        if l2_group || suppressed(&ip) {
            return Err(XmitError::IcmpSuppressed);
        }
        let quote_len = usize::from(ip.total_len()).min(MAX_QUOTE);
        let tos = ((ip.dscp() << 2) & TOS_MASK) | TOS_PREC_INTERNETCONTROL;
        (ip.src_addr(), tos, ip.ident(), quote_len)
    };
    if pkt.headroom() < HEADROOM {
        return Err(XmitError::NoHeadroom);
    }
    let frame_len = ethernet::HEADER_LEN + HEADROOM + quote_len;
    if !pkt.trim_to(ethernet::HEADER_LEN + quote_len) {
        return Err(XmitError::Malformed);
    }
    pkt.prepend(HEADROOM).ok_or(XmitError::NoHeadroom)?;

    // [new 28][Ethernet 14][datagram] → [Ethernet 14][IPv4 20][ICMP 8][datagram]
    let data = pkt.data_mut();
    if data.len() != frame_len {
        return Err(XmitError::Malformed);
    }
    data.copy_within(HEADROOM..HEADROOM + ethernet::HEADER_LEN, 0);
    if let Some(macs) = data.get_mut(..12) {
        let (dst, src_mac) = macs.split_at_mut(6);
        dst.swap_with_slice(src_mac);
    }
    let rest = data.get_mut(ethernet::HEADER_LEN..).ok_or(XmitError::Malformed)?;
    let (ip_hdr, msg) = rest.split_at_mut_checked(ipv4::HEADER_LEN).ok_or(XmitError::Malformed)?;

    ip_hdr.fill(0);
    let mut ip = ipv4::Packet::new_unchecked(ip_hdr);
    ip.set_version_and_header_len(ipv4::HEADER_LEN);
    ip.set_dscp(tos >> 2);
    ip.set_total_len((HEADROOM + quote_len) as u16);
    ip.set_ident(ident);
    ip.set_ttl(TTL);
    ip.set_protocol(IpProto::Icmp);
    ip.set_src_addr(src);
    ip.set_dst_addr(orig_src);
    ip.fill_checksum();

    write16(msg, 4, (rest_of_header >> 16) as u16);
    write16(msg, 6, rest_of_header as u16);
    let mut icmp = icmp::Packet::new_checked(msg).map_err(|_| XmitError::Malformed)?;
    icmp.set_msg_type(icmp::Message(icmp_type));
    icmp.set_msg_code(code);
    icmp.fill_checksum();
    Ok(())
}

/// RFC 1122 §3.2.2: whether no ICMP error may be sent about `ip`.
fn suppressed<T: AsRef<[u8]>>(ip: &ipv4::Packet<T>) -> bool {
    let dst = ip.dst_addr();
    let src = ip.src_addr();
    if dst.is_multicast() || dst.is_broadcast() {
        return true;
    }
    // Not one host: 0.0.0.0, 127/8, 224/4, 240/4 (with 255.255.255.255).
    if src.is_unspecified() || src.is_loopback() || src.octets()[0] >= 224 {
        return true;
    }
    if ip.frag_offset() != 0 {
        return true;
    }
    if ip.protocol() == IpProto::Icmp {
        // Linux: an ICMP message we cannot read the type of, an error, or an
        // unknown type gets nothing back.
        return match ip.payload().first() {
            Some(&t) => t > NR_ICMP_TYPES || icmp::Message(t).is_error(),
            None => true,
        };
    }
    false
}

/// ICMP time exceeded in transit (type 11, code 0), for a TTL that would
/// expire (§4.1).
pub fn time_exceeded<B: PacketBuf>(pkt: &mut B, src: Ipv4Addr) -> Result<(), XmitError> {
    build_error(pkt, icmp::Message::TimeExceeded.0, icmp::time_exceeded::TTL, 0, src)
}

/// ICMP port unreachable (type 3, code 3), for a service without an
/// available destination (§4.6) and unmatched NAT replies (§4.2).
pub fn port_unreachable<B: PacketBuf>(pkt: &mut B, src: Ipv4Addr) -> Result<(), XmitError> {
    build_error(pkt, icmp::Message::DstUnreachable.0, icmp::unreachable::PORT, 0, src)
}

/// ICMP fragmentation needed (type 3, code 4) with the next-hop `mtu`
/// (RFC 1191), for a DF packet that does not fit (§4.1, §4.4).
pub fn frag_needed<B: PacketBuf>(pkt: &mut B, src: Ipv4Addr, mtu: u16) -> Result<(), XmitError> {
    build_error(pkt, icmp::Message::DstUnreachable.0, icmp::unreachable::FRAG_NEEDED, u32::from(mtu), src)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::VecBuf;
    use crate::checksum;
    use crate::xmit::testutil::*;
    use etherparse::icmpv4::{DestUnreachableHeader, TimeExceededCode};
    use etherparse::{Icmpv4Type, IpNumber, Ipv4Header, SlicedPacket, TransportSlice};
    use proptest::prelude::*;

    type Builder = fn(&mut VecBuf) -> Result<(), XmitError>;

    fn set_ip(mut frame: Vec<u8>, f: impl FnOnce(&mut [u8])) -> Vec<u8> {
        f(&mut frame[14..34]);
        let c = checksum::ipv4_header_checksum(&frame[14..34]);
        frame[24..26].copy_from_slice(&c.to_be_bytes());
        frame
    }

    fn with_options(payload_len: usize) -> Vec<u8> {
        let mut h = ipv4_header(CIP, VIP, 64, IpNumber::UDP);
        h.options = [7u8, 7, 4, 0, 0, 0, 0, 0].as_slice().try_into().unwrap();
        let mut out = Vec::new();
        etherparse::PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC)
            .ip(etherparse::IpHeaders::Ipv4(h, Default::default()))
            .udp(CPORT, VPORT)
            .write(&mut out, &vec![0x33; payload_len])
            .unwrap();
        out
    }

    /// Golden table: (name, input, builder, expected ICMP type as etherparse
    /// decodes it, expected quote length).
    #[test]
    fn golden() {
        let te: Builder = |b| time_exceeded(b, VIP);
        let pu: Builder = |b| port_unreachable(b, VIP);
        let fnd: Builder = |b| frag_needed(b, VIP, 1480);
        let raw: Builder = |b| build_error(b, 3, 13, 0, VIP);
        let tcp = tcp_frame(CIP, CPORT, VIP, VPORT, 1);
        let big = tcp_frame_with(CIP, CPORT, VIP, VPORT, 64, &[0xa5; 1400]);
        // Total lengths 548 and 549 around the quote limit.
        let at_limit = tcp_frame_with(CIP, CPORT, VIP, VPORT, 64, &[1; 548 - 40]);
        let over_limit = tcp_frame_with(CIP, CPORT, VIP, VPORT, 64, &[1; 549 - 40]);
        let echo = {
            let mut p = Vec::new();
            etherparse::PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC)
                .ipv4(CIP.octets(), VIP.octets(), 1)
                .icmpv4_echo_request(7, 9)
                .write(&mut p, b"ping")
                .unwrap();
            p
        };
        let first_frag = set_ip(udp_frame(CIP, CPORT, VIP, VPORT, 64, false), |h| h[6] = 0x20);
        let tos = set_ip(tcp.clone(), |h| h[1] = (46 << 2) | 3);
        let cases: Vec<(&str, Vec<u8>, Builder, Icmpv4Type, usize)> = vec![
            ("ttl tcp", tcp.clone(), te, Icmpv4Type::TimeExceeded(TimeExceededCode::TtlExceededInTransit), 58),
            (
                "port unreach udp",
                udp_frame(CIP, CPORT, VIP, VPORT, 64, false),
                pu,
                unreach(DestUnreachableHeader::Port),
                46,
            ),
            (
                "port unreach udp no csum",
                udp_frame(CIP, CPORT, VIP, VPORT, 64, true),
                pu,
                unreach(DestUnreachableHeader::Port),
                46,
            ),
            (
                "frag needed big",
                big.clone(),
                fnd,
                unreach(DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1480 }),
                548,
            ),
            ("ttl at quote limit", at_limit, te, Icmpv4Type::TimeExceeded(TimeExceededCode::TtlExceededInTransit), 548),
            (
                "ttl over quote limit",
                over_limit,
                te,
                Icmpv4Type::TimeExceeded(TimeExceededCode::TtlExceededInTransit),
                548,
            ),
            ("about an echo request", echo, te, Icmpv4Type::TimeExceeded(TimeExceededCode::TtlExceededInTransit), 32),
            ("about a first fragment", first_frag, pu, unreach(DestUnreachableHeader::Port), 46),
            ("ip options", with_options(10), pu, unreach(DestUnreachableHeader::Port), 46),
            ("tos", tos.clone(), te, Icmpv4Type::TimeExceeded(TimeExceededCode::TtlExceededInTransit), 58),
            ("admin prohibited", tcp.clone(), raw, unreach(DestUnreachableHeader::FilterProhibited), 58),
        ];
        for (name, input, build, want_type, quote) in cases {
            let mut b = VecBuf::new(&input, 28);
            build(&mut b).unwrap();
            let out = b.as_bytes();
            assert_eq!(b.headroom(), 0, "{name}");
            assert_eq!(out.len(), 14 + 28 + quote, "{name}");
            assert!(out.len() - 14 <= MAX_ERROR_LEN, "{name}");
            assert_eq!(&out[..6], &input[6..12], "{name}: back to the sender's MAC");
            assert_eq!(&out[6..12], &input[..6], "{name}: from the MAC it was sent to");
            assert_eq!(&out[12..14], &[0x08, 0x00], "{name}");
            let (h, msg) = ipv4_checked(ip_of(out));
            assert_eq!(h.header_len(), 20, "{name}");
            assert_eq!(usize::from(h.total_len), 28 + quote, "{name}");
            assert_eq!(h.time_to_live, 64, "{name}");
            assert!(!h.dont_fragment && !h.more_fragments && h.fragment_offset.value() == 0, "{name}");
            assert_eq!(h.protocol, IpNumber::ICMP, "{name}");
            assert_eq!(h.source, VIP.octets(), "{name}");
            assert_eq!(h.destination, CIP.octets(), "{name}: back to the sender");
            assert_eq!(h.identification, u16::from_be_bytes([input[18], input[19]]), "{name}: the original's ident");
            let in_tos = input[15];
            assert_eq!((h.dscp.value() << 2) | h.ecn.value(), 0xc0 | (in_tos & 0x1c), "{name}: TOS");
            assert_icmp_checksum(msg);
            // An independent decoder sees the intended message.
            let sliced = SlicedPacket::from_ethernet(out).unwrap();
            let Some(TransportSlice::Icmpv4(icmp)) = sliced.transport else { panic!("{name}: not ICMP") };
            assert_eq!(icmp.icmp_type(), want_type, "{name}");
            assert_eq!(icmp.payload(), &ip_of(&input)[..quote], "{name}: quotes the original datagram");
            // The quoted header verifies as it did.
            let (qh, _) = Ipv4Header::from_slice(icmp.payload()).unwrap();
            assert_eq!(qh.header_checksum, qh.calc_header_checksum(), "{name}");
        }
    }

    fn unreach(h: DestUnreachableHeader) -> Icmpv4Type {
        Icmpv4Type::DestinationUnreachable(h)
    }

    #[test]
    fn ethernet_padding_is_not_quoted() {
        let input = udp_frame(CIP, CPORT, VIP, VPORT, 1, false);
        let mut padded = input.clone();
        padded.extend_from_slice(&[0xee; 12]);
        let mut b = VecBuf::new(&padded, 100);
        time_exceeded(&mut b, VIP).unwrap();
        assert_eq!(b.len(), 14 + 28 + input.len() - 14);
        assert_eq!(&b.as_bytes()[42..], &input[14..]);
    }

    #[test]
    fn suppressed() {
        let tcp = tcp_frame(CIP, CPORT, VIP, VPORT, 1);
        let icmp_about = |t: u8| {
            let mut p = Vec::new();
            etherparse::PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC)
                .ipv4(CIP.octets(), VIP.octets(), 1)
                .icmpv4_raw(t, 0, [0; 4])
                .write(&mut p, &[0u8; 28])
                .unwrap();
            p
        };
        let bare_icmp = set_ip(tcp.clone(), |h| {
            h[9] = 1;
            h[2..4].copy_from_slice(&20u16.to_be_bytes());
        });
        let addr = |at: usize, a: Ipv4Addr| set_ip(tcp.clone(), move |h| h[at..at + 4].copy_from_slice(&a.octets()));
        let mut l2_bcast = tcp.clone();
        l2_bcast[..6].copy_from_slice(&[0xff; 6]);
        let mut l2_mcast = tcp.clone();
        l2_mcast[..6].copy_from_slice(&[0x01, 0x00, 0x5e, 0, 0, 5]);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("about dest unreachable", icmp_about(3)),
            ("about source quench", icmp_about(4)),
            ("about redirect", icmp_about(5)),
            ("about time exceeded", icmp_about(11)),
            ("about param problem", icmp_about(12)),
            ("about unknown icmp type", icmp_about(40)),
            ("icmp without a header", bare_icmp),
            ("later fragment", set_ip(tcp.clone(), |h| h[7] = 0xb9)),
            ("later fragment, last", set_ip(tcp.clone(), |h| h[6..8].copy_from_slice(&[0x00, 0x10]))),
            ("to 255.255.255.255", addr(16, Ipv4Addr::BROADCAST)),
            ("to multicast", addr(16, Ipv4Addr::new(224, 0, 0, 5))),
            ("to l2 broadcast", l2_bcast),
            ("to l2 multicast", l2_mcast),
            ("from 0.0.0.0", addr(12, Ipv4Addr::UNSPECIFIED)),
            ("from loopback", addr(12, Ipv4Addr::new(127, 0, 0, 9))),
            ("from multicast", addr(12, Ipv4Addr::new(239, 1, 2, 3))),
            ("from class e", addr(12, Ipv4Addr::new(240, 0, 0, 1))),
            ("from broadcast", addr(12, Ipv4Addr::BROADCAST)),
        ];
        for (name, input) in cases {
            let mut b = VecBuf::new(&input, 64);
            assert_eq!(time_exceeded(&mut b, VIP), Err(XmitError::IcmpSuppressed), "{name}");
            assert_eq!(b.as_bytes(), &input[..], "{name}");
            assert_eq!(b.headroom(), 64, "{name}");
        }
        // Errors about ICMP queries are fine.
        for t in [0, 8, 13, 18] {
            assert_eq!(port_unreachable(&mut VecBuf::new(&icmp_about(t), 28), VIP), Ok(()), "type {t}");
        }
    }

    #[test]
    fn other_errors() {
        let tcp = tcp_frame(CIP, CPORT, VIP, VPORT, 1);
        let mut b = VecBuf::new(&tcp, 27);
        assert_eq!(frag_needed(&mut b, VIP, 1400), Err(XmitError::NoHeadroom));
        assert_eq!(b.as_bytes(), &tcp[..]);
        let mut arp = tcp.clone();
        arp[13] = 0x06;
        assert_eq!(time_exceeded(&mut VecBuf::new(&arp, 28), VIP), Err(XmitError::NotIpv4));
        assert_eq!(time_exceeded(&mut VecBuf::new(&tcp[..40], 28), VIP), Err(XmitError::Malformed));
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..700), fix in any::<bool>(),
                        head in 0usize..40, t in any::<u8>(), c in any::<u8>(), rest in any::<u32>()) {
            let mut bytes = bytes;
            if fix && bytes.len() >= 34 {
                bytes[0] &= 0xfe;
                bytes[12] = 0x08;
                bytes[13] = 0x00;
                bytes[14] = 0x45;
                let tl = (bytes.len() - 14) as u16;
                bytes[16..18].copy_from_slice(&tl.to_be_bytes());
                bytes[20] &= 0x40;
                bytes[21] = 0;
                bytes[26] = 10;
                bytes[30] = 10;
            }
            let mut b = VecBuf::new(&bytes, head);
            match build_error(&mut b, t, c, rest, VIP) {
                Ok(()) => {
                    let out = b.as_bytes();
                    prop_assert!(out.len() <= 14 + MAX_ERROR_LEN);
                    let (h, msg) = ipv4_checked(ip_of(out));
                    prop_assert_eq!(h.protocol, IpNumber::ICMP);
                    prop_assert_eq!((msg[0], msg[1]), (t, c));
                    prop_assert_eq!(&msg[4..8], &rest.to_be_bytes());
                    assert_icmp_checksum(msg);
                }
                Err(_) => prop_assert_eq!(b.as_bytes(), &bytes[..]),
            }
        }
    }
}
