//! Direct routing, `-g` (specs/ipvs.md §4.3; `K: ip_vs_xmit.c ip_vs_dr_xmit`).
//!
//! Only the L2 destination changes: the frame goes to the real server's MAC
//! with the IP destination still the VIP. The IPv4 header loses one TTL
//! (RFC 1624 checksum update); L4 is never touched, so fragments and any
//! protocol pass as they are.

use super::{ipv4_view_mut, set_macs, XmitError};
use crate::buf::PacketBuf;

/// Rewrites a client→VIP frame for the real server: TTL − 1 with an
/// incremental IPv4 checksum update, destination MAC `next_hop_mac` (the RS),
/// source MAC `src_mac` (the egress port).
///
/// `Err(TtlExceeded)` for TTL ≤ 1: the caller answers with
/// [`super::icmp::time_exceeded`]. On any `Err` the frame is unchanged.
pub fn rewrite<B: PacketBuf>(pkt: &mut B, next_hop_mac: [u8; 6], src_mac: [u8; 6]) -> Result<(), XmitError> {
    ipv4_view_mut(pkt.data_mut())?;
    rewrite_parsed(pkt, next_hop_mac, src_mac)
}

/// [`rewrite`] for a frame the load balancer has already parsed and
/// validated (untagged IPv4, a sane header): the TTL and checksum are read
/// and written in place without validating the header again. On any other
/// frame it cannot panic, and at worst refuses with `NotIpv4`.
#[inline]
pub fn rewrite_parsed<B: PacketBuf>(pkt: &mut B, next_hop_mac: [u8; 6], src_mac: [u8; 6]) -> Result<(), XmitError> {
    const TTL: usize = 14 + 8;
    const CSUM: usize = 14 + 10;
    let f = pkt.data_mut();
    let Some(hdr) = f.get_mut(..CSUM + 2) else { return Err(XmitError::NotIpv4) };
    let ttl = hdr[TTL];
    if ttl <= 1 {
        return Err(XmitError::TtlExceeded);
    }
    let old = u16::from_be_bytes([hdr[CSUM], hdr[CSUM + 1]]);
    hdr[TTL] = ttl - 1;
    hdr[CSUM..CSUM + 2].copy_from_slice(&crate::checksum::update_ttl(old, ttl, ttl - 1).to_be_bytes());
    set_macs(pkt, next_hop_mac, src_mac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::VecBuf;
    use crate::xmit::testutil::*;
    use proptest::prelude::*;

    #[test]
    fn golden() {
        let cases: [(&str, Vec<u8>); 4] = [
            ("tcp", tcp_frame(CIP, CPORT, VIP, VPORT, 64)),
            ("udp", udp_frame(CIP, CPORT, VIP, VPORT, 64, false)),
            ("udp zero checksum", udp_frame(CIP, CPORT, VIP, VPORT, 2, true)),
            ("icmp error", icmp_error_frame(ROUTER, VIP, 3, 3, &tcp_frame(VIP, VPORT, CIP, CPORT, 5)[14..], 28)),
        ];
        for (name, input) in cases {
            let mut b = VecBuf::new(&input, 0);
            rewrite(&mut b, RS_MAC, LB_MAC).unwrap();
            let out = b.as_bytes();
            assert_eq!(&out[..6], &RS_MAC, "{name}");
            assert_eq!(&out[6..12], &LB_MAC, "{name}");
            let (h_in, _) = ipv4_checked(ip_of(&input));
            let (h, l4) = ipv4_checked(ip_of(out));
            assert_eq!(h.time_to_live, h_in.time_to_live - 1, "{name}");
            assert_eq!(h.destination, VIP.octets(), "{name}: IP dst stays the VIP");
            // Only the MACs, the TTL and the IP checksum changed.
            let changed: Vec<usize> = diff(&input, out).into_iter().filter(|&i| i >= 12).collect();
            assert!(changed.iter().all(|&i| i == 14 + 8 || i == 14 + 10 || i == 14 + 11), "{name}: {changed:?}");
            if h.protocol != etherparse::IpNumber::ICMP {
                assert_l4_checksum(&h, l4);
            } else {
                assert_icmp_checksum(l4);
            }
        }
    }

    #[test]
    fn ttl_expired() {
        for ttl in [0, 1] {
            let input = tcp_frame(CIP, CPORT, VIP, VPORT, ttl);
            let mut b = VecBuf::new(&input, 0);
            assert_eq!(rewrite(&mut b, RS_MAC, LB_MAC), Err(XmitError::TtlExceeded));
            assert_eq!(b.as_bytes(), &input[..], "unchanged on error");
        }
    }

    #[test]
    fn not_ipv4() {
        let mut input = tcp_frame(CIP, CPORT, VIP, VPORT, 64);
        input[12] = 0x86;
        input[13] = 0xdd;
        let mut b = VecBuf::new(&input, 0);
        assert_eq!(rewrite(&mut b, RS_MAC, LB_MAC), Err(XmitError::NotIpv4));
        let mut b = VecBuf::new(&input[..20], 0);
        assert_eq!(rewrite(&mut b, RS_MAC, LB_MAC), Err(XmitError::NotIpv4));
        let short = tcp_frame(CIP, CPORT, VIP, VPORT, 64);
        let mut b = VecBuf::new(&short[..40], 0);
        assert_eq!(rewrite(&mut b, RS_MAC, LB_MAC), Err(XmitError::Malformed));
        assert_eq!(b.as_bytes(), &short[..40]);
    }

    proptest! {
        #[test]
        fn parsed_rewrite_decodes(ttl in 2u8..=255, sport in any::<u16>(), udp in any::<bool>()) {
            let input = if udp {
                udp_frame(CIP, sport, VIP, VPORT, ttl, false)
            } else {
                tcp_frame(CIP, sport, VIP, VPORT, ttl)
            };
            let mut b = VecBuf::new(&input, 0);
            prop_assert_eq!(rewrite_parsed(&mut b, RS_MAC, LB_MAC), Ok(()));
            let out = b.as_bytes();
            prop_assert_eq!(&out[..6], &RS_MAC);
            prop_assert_eq!(&out[6..12], &LB_MAC);
            // etherparse checks the header checksum.
            let (h, _) = ipv4_checked(ip_of(out));
            prop_assert_eq!(h.time_to_live, ttl - 1);
            prop_assert_eq!(&out[34..], &input[34..], "L4 untouched");
        }

        #[test]
        fn parsed_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut b = VecBuf::new(&bytes, 0);
            let _ = rewrite_parsed(&mut b, RS_MAC, LB_MAC);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80), fix in any::<bool>()) {
            let mut bytes = bytes;
            if fix && bytes.len() >= 34 {
                bytes[12] = 0x08;
                bytes[13] = 0x00;
                bytes[14] = 0x45;
            }
            let mut b = VecBuf::new(&bytes, 0);
            let r = rewrite(&mut b, RS_MAC, LB_MAC);
            if r.is_err() {
                prop_assert_eq!(b.as_bytes(), &bytes[..]);
            }
        }
    }
}
