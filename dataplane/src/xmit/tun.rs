//! IP-in-IP tunnelling, `-i` with `--tun-type ipip` (specs/ipvs.md §4.4;
//! `K: ip_vs_xmit.c ip_vs_tunnel_xmit`). GUE and GRE are not implemented.
//!
//! The client's datagram loses one TTL and is otherwise carried untouched
//! behind a 20-byte outer IPv4 header to the real server:
//!
//! | field | value |
//! |---|---|
//! | version / IHL | 4 / 5 |
//! | TOS | inner DSCP and ECN, except CE (3) which becomes ECT(0) (2) (RFC 6040 normal mode, `INET_ECN_encapsulate`) |
//! | total length | inner total length + 20 |
//! | ident | the caller's (`ip_select_ident`) |
//! | DF | the inner DF when `pmtu_disc`, else 0; MF 0, offset 0 |
//! | TTL | inner TTL, already decremented |
//! | protocol | 4 (IPIP) |
//! | src / dst | the caller's (route source / RIP) |
//! | checksum | computed in full |
//!
//! The outer header is built from scratch for each packet: twenty bytes and a
//! ten-word checksum. A per-destination template (version, protocol,
//! addresses and the partial sum of those words, built when the destination
//! changes) would save a few stores: per packet only TOS, length, ident,
//! DF and TTL would be written and added to the stored partial sum before
//! `finish`. Worth it only if a profile says so.

use std::net::Ipv4Addr;

use super::{check_ttl, ipv4_view, XmitError};
use crate::buf::PacketBuf;
use crate::wire::{ethernet, ipv4, IpProto};

/// Length of the outer header; also the headroom [`encapsulate`] needs.
pub const OUTER_LEN: usize = ipv4::HEADER_LEN;

/// The smallest MTU an IPv4 link may have (RFC 791); a tunnel MTU below it
/// drops the packet (§4.4).
pub const MIN_MTU: u16 = 68;

/// Encapsulates the frame's IPv4 datagram in IPIP for the real server, in
/// place: 20 bytes are taken from the headroom, the Ethernet header moves to
/// the new front (MACs unchanged: set them with [`super::set_macs`] for the
/// next hop towards `outer_dst`), the outer header follows (see the module
/// table), then the inner datagram with TTL − 1 (incremental checksum).
/// Ethernet padding after the inner datagram is dropped.
///
/// `mtu` is the route MTU towards `outer_dst`; the tunnel MTU is `mtu − 20`.
/// Checks, in order, all before any write (on `Err` the frame is unchanged):
/// - TTL ≤ 1: `Err(TtlExceeded)` (answer with ICMP time exceeded);
/// - tunnel MTU below 68: `Err(MtuTooSmall)`, whatever the packet;
/// - inner DF set, `pmtu_disc`, and inner total length > tunnel MTU:
///   `Err(FragNeeded { mtu: mtu − 20 })` (answer with ICMP frag needed
///   carrying that MTU). Without DF or `pmtu_disc` an oversized packet is
///   still encapsulated, with outer DF 0: fragmenting (or dropping) it is the
///   caller's, as rvs does not fragment;
/// - outer length above 65535: `Err(TooBig)`;
/// - headroom below 20: `Err(NoHeadroom)`.
pub fn encapsulate<B: PacketBuf>(
    pkt: &mut B,
    outer_src: Ipv4Addr,
    outer_dst: Ipv4Addr,
    ident: u16,
    pmtu_disc: bool,
    mtu: u16,
) -> Result<(), XmitError> {
    let Plan { inner_len, tos, df } = plan(pkt, pmtu_disc, mtu)?;
    let frame_len = ethernet::HEADER_LEN + inner_len;
    if !pkt.trim_to(frame_len) {
        return Err(XmitError::Malformed);
    }
    pkt.prepend(OUTER_LEN).ok_or(XmitError::NoHeadroom)?;

    // [new 20][Ethernet 14][inner] -> [Ethernet 14][outer 20][inner]
    let data = pkt.data_mut();
    if data.len() != OUTER_LEN + frame_len {
        return Err(XmitError::Malformed);
    }
    data.copy_within(OUTER_LEN..OUTER_LEN + ethernet::HEADER_LEN, 0);
    let rest = data.get_mut(ethernet::HEADER_LEN..).ok_or(XmitError::Malformed)?;
    let (outer_hdr, inner) = rest.split_at_mut_checked(OUTER_LEN).ok_or(XmitError::Malformed)?;
    let mut inner = ipv4::Packet::new_checked(inner).map_err(|_| XmitError::Malformed)?;
    let ttl = inner.decrement_ttl_incremental();

    // The whole outer header at once (the headroom holds whatever was there:
    // every byte is written), checksummed with the checksum field zero.
    let [l0, l1] = ((OUTER_LEN + inner_len) as u16).to_be_bytes();
    let [i0, i1] = ident.to_be_bytes();
    let [s0, s1, s2, s3] = outer_src.octets();
    let [d0, d1, d2, d3] = outer_dst.octets();
    let mut h: [u8; OUTER_LEN] = [
        0x45, // version 4, IHL 5
        tos,
        l0,
        l1,
        i0,
        i1,
        if df { 0x40 } else { 0 },
        0,
        ttl,
        IpProto::Ipip.0,
        0,
        0,
        s0,
        s1,
        s2,
        s3,
        d0,
        d1,
        d2,
        d3,
    ];
    let c = crate::checksum::finish(crate::checksum::sum(&h, 0)).to_be_bytes();
    h[10] = c[0];
    h[11] = c[1];
    outer_hdr.copy_from_slice(&h);
    Ok(())
}

/// The checks of [`encapsulate`] without changing anything, for a caller
/// that wants the verdict first.
pub fn check<B: PacketBuf>(pkt: &B, pmtu_disc: bool, mtu: u16) -> Result<(), XmitError> {
    plan(pkt, pmtu_disc, mtu).map(|_| ())
}

/// What [`encapsulate`] needs from the inner header, once every check passed.
struct Plan {
    inner_len: usize,
    /// The outer TOS byte (DSCP << 2 | ECN).
    tos: u8,
    /// The outer DF.
    df: bool,
}

fn plan<B: PacketBuf>(pkt: &B, pmtu_disc: bool, mtu: u16) -> Result<Plan, XmitError> {
    let ip = ipv4_view(pkt.data())?;
    check_ttl(&ip)?;
    let tun_mtu = mtu.checked_sub(OUTER_LEN as u16).filter(|m| *m >= MIN_MTU).ok_or(XmitError::MtuTooSmall)?;
    // IPVS: DF is copied only with pmtu_disc; without it packets get
    // fragmented instead of bounced (specs/ipvs.md §4.4, ensure_mtu_is_adequate).
    let df = pmtu_disc && ip.dont_frag();
    if df && ip.total_len() > tun_mtu {
        return Err(XmitError::FragNeeded { mtu: tun_mtu });
    }
    if ip.total_len().checked_add(OUTER_LEN as u16).is_none() {
        return Err(XmitError::TooBig);
    }
    if pkt.headroom() < OUTER_LEN {
        return Err(XmitError::NoHeadroom);
    }
    // Outer ECN from the inner, CE becomes ECT(0) (INET_ECN_encapsulate).
    let ecn = if ip.ecn() == 3 { 2 } else { ip.ecn() };
    Ok(Plan { inner_len: usize::from(ip.total_len()), tos: (ip.dscp() << 2) | ecn, df })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::VecBuf;
    use crate::checksum;
    use crate::xmit::testutil::*;
    use etherparse::{IpNumber, Ipv4Header};
    use proptest::prelude::*;

    const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

    /// The inner datagram as it must come out: the input with TTL − 1 and
    /// a recomputed header checksum.
    fn expected_inner(frame: &[u8]) -> Vec<u8> {
        let (h, _) = Ipv4Header::from_slice(ip_of(frame)).unwrap();
        let mut v = ip_of(frame)[..usize::from(h.total_len)].to_vec();
        v[8] -= 1;
        let c = checksum::ipv4_header_checksum(&v[..20]);
        v[10..12].copy_from_slice(&c.to_be_bytes());
        v
    }

    fn with_tos_df(mut frame: Vec<u8>, dscp: u8, ecn: u8, df: bool) -> Vec<u8> {
        frame[15] = (dscp << 2) | ecn;
        if df {
            frame[20] |= 0x40;
        } else {
            frame[20] &= !0x40;
        }
        let c = checksum::ipv4_header_checksum(&frame[14..34]);
        frame[24..26].copy_from_slice(&c.to_be_bytes());
        frame
    }

    /// Golden table: (name, input, pmtu_disc, outer TOS byte, outer DF).
    #[test]
    fn golden() {
        let tcp = tcp_frame(CIP, CPORT, VIP, VPORT, 64);
        let udp = udp_frame(CIP, CPORT, VIP, VPORT, 9, false);
        let cases: Vec<(&str, Vec<u8>, bool, u8, bool)> = vec![
            ("tcp df", with_tos_df(tcp.clone(), 0, 0, true), true, 0, true),
            ("tcp df, pmtu_disc off", with_tos_df(tcp.clone(), 0, 0, true), false, 0, false),
            ("udp no df", with_tos_df(udp.clone(), 0, 0, false), true, 0, false),
            ("ef ect0", with_tos_df(tcp.clone(), 46, 2, true), true, (46 << 2) | 2, true),
            ("af41 ect1", with_tos_df(tcp.clone(), 34, 1, true), true, (34 << 2) | 1, true),
            ("cs1 not-ect", with_tos_df(udp.clone(), 8, 0, false), true, 8 << 2, false),
            ("ce becomes ect0", with_tos_df(tcp.clone(), 10, 3, true), true, (10 << 2) | 2, true),
        ];
        for (name, input, pmtu, tos, df) in cases {
            let mut b = VecBuf::new(&input, 64);
            encapsulate(&mut b, LOCAL, RIP, 0xbeef, pmtu, 1500).unwrap();
            let out = b.as_bytes();
            assert_eq!(b.headroom(), 44, "{name}");
            assert_eq!(out.len(), input.len() + 20, "{name}");
            assert_eq!(&out[..14], &input[..14], "{name}: Ethernet header moved, unchanged");
            let (h, inner) = ipv4_checked(ip_of(out));
            assert_eq!(h.header_len(), 20, "{name}: IHL 5");
            assert!(h.options.is_empty());
            assert_eq!((h.dscp.value() << 2) | h.ecn.value(), tos, "{name}: TOS");
            assert_eq!(usize::from(h.total_len), input.len() - 14 + 20, "{name}");
            assert_eq!(h.identification, 0xbeef, "{name}");
            assert_eq!(h.dont_fragment, df, "{name}: DF");
            assert!(!h.more_fragments && h.fragment_offset.value() == 0, "{name}");
            assert_eq!(h.time_to_live, input[22] - 1, "{name}: TTL = inner TTL after decrement");
            assert_eq!(h.protocol, IpNumber::IPV4, "{name}: IPIP");
            assert_eq!(h.source, LOCAL.octets(), "{name}");
            assert_eq!(h.destination, RIP.octets(), "{name}");
            assert_eq!(inner, &expected_inner(&input)[..], "{name}: inner = input with TTL-1");
            let (ih, seg) = ipv4_checked(inner);
            assert_l4_checksum(&ih, seg);
        }
    }

    #[test]
    fn frag_needed_at_the_boundary() {
        let input = tcp_frame_with(CIP, CPORT, VIP, VPORT, 64, &[0x5a; 1000]); // DF set
        let len = (input.len() - 14) as u16;
        // Exactly fits: inner + 20 == mtu.
        let mut b = VecBuf::new(&input, 20);
        assert_eq!(encapsulate(&mut b, LOCAL, RIP, 1, true, len + 20), Ok(()));
        assert_eq!(b.len(), input.len() + 20);
        // One byte over.
        let mut b = VecBuf::new(&input, 20);
        assert_eq!(encapsulate(&mut b, LOCAL, RIP, 1, true, len + 19), Err(XmitError::FragNeeded { mtu: len - 1 }));
        assert_eq!(b.as_bytes(), &input[..], "unchanged on error");
        assert_eq!(check(&b, true, len + 19), Err(XmitError::FragNeeded { mtu: len - 1 }));
        assert_eq!(check(&b, true, len + 20), Ok(()));
        // Without pmtu_disc, or without DF, it is encapsulated with DF 0.
        let mut b = VecBuf::new(&input, 20);
        assert_eq!(encapsulate(&mut b, LOCAL, RIP, 1, false, len + 19), Ok(()));
        assert!(!ipv4_checked(ip_of(b.as_bytes())).0.dont_fragment);
        let nodf = with_tos_df(input.clone(), 0, 0, false);
        let mut b = VecBuf::new(&nodf, 20);
        assert_eq!(encapsulate(&mut b, LOCAL, RIP, 1, true, len + 19), Ok(()));
    }

    #[test]
    fn tunnel_mtu_below_68() {
        let input = tcp_frame(CIP, CPORT, VIP, VPORT, 64);
        assert!(input.len() - 14 <= 68);
        for (mtu, want) in [(88, Ok(())), (87, Err(XmitError::MtuTooSmall)), (19, Err(XmitError::MtuTooSmall))] {
            let mut b = VecBuf::new(&input, 20);
            assert_eq!(encapsulate(&mut b, LOCAL, RIP, 1, true, mtu), want, "mtu {mtu}");
        }
        // Even for a packet without DF.
        let nodf = with_tos_df(input, 0, 0, false);
        assert_eq!(encapsulate(&mut VecBuf::new(&nodf, 20), LOCAL, RIP, 1, false, 87), Err(XmitError::MtuTooSmall));
    }

    #[test]
    fn ttl_and_headroom() {
        for ttl in [0, 1] {
            let input = tcp_frame(CIP, CPORT, VIP, VPORT, ttl);
            let mut b = VecBuf::new(&input, 64);
            assert_eq!(encapsulate(&mut b, LOCAL, RIP, 1, true, 1500), Err(XmitError::TtlExceeded));
            assert_eq!(b.as_bytes(), &input[..]);
        }
        let input = tcp_frame(CIP, CPORT, VIP, VPORT, 2);
        let mut b = VecBuf::new(&input, 19);
        assert_eq!(encapsulate(&mut b, LOCAL, RIP, 1, true, 1500), Err(XmitError::NoHeadroom));
        assert_eq!(b.as_bytes(), &input[..]);
        assert_eq!(b.headroom(), 19);
        // TTL 2 leaves with TTL 1 inside and outside.
        let mut b = VecBuf::new(&input, 20);
        encapsulate(&mut b, LOCAL, RIP, 1, true, 1500).unwrap();
        assert_eq!(ipv4_checked(ip_of(b.as_bytes())).0.time_to_live, 1);
        assert_eq!(b.as_bytes()[14 + 20 + 8], 1);
    }

    #[test]
    fn padding_is_dropped() {
        let input = udp_frame(CIP, CPORT, VIP, VPORT, 64, true);
        let mut padded = input.clone();
        padded.extend_from_slice(&[0xee; 9]);
        let mut b = VecBuf::new(&padded, 20);
        encapsulate(&mut b, LOCAL, RIP, 7, true, 1500).unwrap();
        assert_eq!(b.len(), input.len() + 20);
        assert_eq!(&ip_of(b.as_bytes())[20..], &expected_inner(&input)[..]);
    }

    #[test]
    fn too_big() {
        let mut input = vec![0u8; 14 + 65535];
        input[..14].copy_from_slice(&tcp_frame(CIP, CPORT, VIP, VPORT, 64)[..14]);
        let mut h = Ipv4Header::new(65535 - 20, 64, IpNumber::UDP, CIP.octets(), VIP.octets()).unwrap();
        h.dont_fragment = false;
        h.header_checksum = h.calc_header_checksum();
        input[14..34].copy_from_slice(&h.to_bytes());
        let mut b = VecBuf::new(&input, 20);
        assert_eq!(encapsulate(&mut b, LOCAL, RIP, 1, true, 9000), Err(XmitError::TooBig));
    }

    #[test]
    fn not_ipv4() {
        let mut input = tcp_frame(CIP, CPORT, VIP, VPORT, 64);
        input[13] = 0x06;
        assert_eq!(encapsulate(&mut VecBuf::new(&input, 20), LOCAL, RIP, 1, true, 1500), Err(XmitError::NotIpv4));
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100), fix in any::<bool>(),
                        head in 0usize..40, pmtu in any::<bool>(), mtu in any::<u16>()) {
            let mut bytes = bytes;
            if fix && bytes.len() >= 34 {
                bytes[12] = 0x08;
                bytes[13] = 0x00;
                bytes[14] = 0x45;
                let tl = (bytes.len() - 14) as u16;
                bytes[16..18].copy_from_slice(&tl.to_be_bytes());
            }
            let mut b = VecBuf::new(&bytes, head);
            let r = encapsulate(&mut b, LOCAL, RIP, 1, pmtu, mtu);
            prop_assert_eq!(r, check(&VecBuf::new(&bytes, head), pmtu, mtu));
            match r {
                Ok(()) => {
                    let (h, _) = ipv4_checked(ip_of(b.as_bytes()));
                    prop_assert_eq!(h.protocol, IpNumber::IPV4);
                }
                Err(_) => prop_assert_eq!(b.as_bytes(), &bytes[..]),
            }
        }
    }
}
