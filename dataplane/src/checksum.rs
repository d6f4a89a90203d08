//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Sums are carried as `u32` partial sums of 16-bit big-endian words; only
//! [`fold`] and [`finish`] reduce them to 16 bits, so partial sums of
//! independent pieces (pseudo-header, header, payload) can simply be added,
//! as long as every piece but the last has even length.
//!
//! Full computation is for headers we build (TUN outer header, ICMP we
//! originate). Rewrites of existing packets (NAT addresses and ports, TTL) use
//! the RFC 1624 equation 3 update `HC' = ~(~HC + ~m + m')`, which gives
//! exactly the value a full recompute would (property-tested below).
//!
//! UDP over IPv4 has two special values (RFC 768): a transmitted checksum of
//! 0 means "no checksum" and must stay 0 through a rewrite, and a computed 0
//! is sent as 0xffff. The `udp_*` helpers honour both.

#![forbid(unsafe_code)]

use std::net::Ipv4Addr;

use crate::wire::IpProto;

/// Adds the bytes of `data`, as big-endian 16-bit words, to the partial sum
/// `initial`. An odd trailing byte is padded with a zero byte.
///
/// Eight bytes at a time: a big-endian u32 is `hi * 2^16 + lo`, and 2^16 is
/// 1 modulo 2^16 - 1, so adding whole u32 halves gives the same
/// one's-complement sum as adding the four 16-bit words (RFC 1071 §2).
#[inline]
pub fn sum(data: &[u8], initial: u32) -> u32 {
    // A u64 accumulator cannot overflow for any buffer below 2^31 bytes
    // (two u32 halves per 8 bytes), so the carries are folded once at the end.
    let mut acc = u64::from(initial);
    let mut quads = data.chunks_exact(8);
    for q in &mut quads {
        if let (Some(a), Some(b)) = (q.first_chunk::<4>(), q.last_chunk::<4>()) {
            acc += u64::from(u32::from_be_bytes(*a)) + u64::from(u32::from_be_bytes(*b));
        }
    }
    let mut words = quads.remainder().chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(*last) << 8;
    }
    while acc >> 32 != 0 {
        acc = (acc & 0xffff_ffff) + (acc >> 32);
    }
    // Keep headroom so callers can add a few more u32 partial sums safely.
    fold(acc as u32) as u32
}

/// Whether an IPv4 header without options (20 bytes) carries a correct
/// checksum: [`sum`] of five fixed words, no loop (the sum of a correct
/// header, checksum included, folds to 0xffff).
#[inline(always)]
pub fn ipv4_header_ok(h: &[u8; 20]) -> bool {
    let w = |i: usize| u64::from(u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
    let acc = w(0) + w(4) + w(8) + w(12) + w(16);
    // Five u32 words: at most 2^35, so two folds to 32 bits and two to 16.
    let acc = (acc & 0xffff_ffff) + (acc >> 32);
    let acc = (acc & 0xffff_ffff) + (acc >> 32);
    fold(acc as u32) == 0xffff
}

/// Folds the carries of a partial sum into 16 bits (one's-complement sum).
pub const fn fold(mut s: u32) -> u16 {
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// The checksum field value for a partial sum: the complement of the fold.
pub const fn finish(s: u32) -> u16 {
    !fold(s)
}

/// Partial sum of the IPv4 pseudo-header (RFC 793 §3.1, RFC 768) for a
/// TCP/UDP segment of `len` bytes.
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, proto: IpProto, len: u16) -> u32 {
    let s = src.octets();
    let d = dst.octets();
    u32::from(u16::from_be_bytes([s[0], s[1]]))
        + u32::from(u16::from_be_bytes([s[2], s[3]]))
        + u32::from(u16::from_be_bytes([d[0], d[1]]))
        + u32::from(u16::from_be_bytes([d[2], d[3]]))
        + u32::from(proto.0)
        + u32::from(len)
}

/// Sum of `data` with the 16-bit word at even offset `at` taken as zero
/// (the checksum field itself). Bytes past the end are simply absent.
fn sum_skipping(data: &[u8], at: usize, initial: u32) -> u32 {
    match (data.get(..at), data.get(at + 2..)) {
        (Some(head), Some(tail)) => sum(tail, sum(head, initial)),
        (Some(head), None) => sum(head, initial),
        _ => sum(data, initial),
    }
}

/// The IPv4 header checksum of `hdr` (the whole header, options included),
/// computed as if the checksum field (bytes 10..12) were zero.
pub fn ipv4_header_checksum(hdr: &[u8]) -> u16 {
    finish(sum_skipping(hdr, 10, 0))
}

/// The TCP or UDP checksum of `segment` (header and payload, exactly the
/// segment's length) over IPv4, computed as if the checksum field were zero.
/// For UDP a computed 0 is returned as 0xffff (RFC 768).
pub fn tcp_udp_checksum_v4(src: Ipv4Addr, dst: Ipv4Addr, proto: IpProto, segment: &[u8]) -> u16 {
    let at = if proto == IpProto::Udp { 6 } else { 16 };
    // Lengths above 65535 cannot occur inside an IPv4 packet; saturate rather
    // than wrap so a bogus caller gets a wrong checksum, not a panic.
    let len = u16::try_from(segment.len()).unwrap_or(u16::MAX);
    let c = finish(sum_skipping(segment, at, pseudo_header_v4(src, dst, proto, len)));
    if proto == IpProto::Udp && c == 0 {
        0xffff
    } else {
        c
    }
}

/// RFC 1624 eqn. 3: the checksum after one 16-bit word of the covered data
/// changed from `old` to `new`.
pub const fn update16(old_csum: u16, old: u16, new: u16) -> u16 {
    let s = (!old_csum) as u32 + (!old) as u32 + new as u32;
    !fold(s)
}

/// RFC 1624 for an aligned 32-bit field (two words).
pub const fn update32(old_csum: u16, old: u32, new: u32) -> u16 {
    let s = (!old_csum) as u32 + (!(old >> 16) as u16) as u32 + (!(old as u16)) as u32 + (new >> 16) + (new & 0xffff);
    !fold(s)
}

/// The checksum after an IPv4 address in the covered data (IP header, or the
/// TCP/UDP pseudo-header) changed from `old` to `new`.
pub fn update_addr_v4(old_csum: u16, old: Ipv4Addr, new: Ipv4Addr) -> u16 {
    update32(old_csum, u32::from(old), u32::from(new))
}

/// The IPv4 header checksum after the TTL changed from `old_ttl` to `new_ttl`.
/// The TTL is the high byte of the TTL/protocol word; the protocol byte is the
/// same on both sides of the update, so it cancels out.
pub const fn update_ttl(old_csum: u16, old_ttl: u8, new_ttl: u8) -> u16 {
    update16(old_csum, (old_ttl as u16) << 8, (new_ttl as u16) << 8)
}

/// Applies the UDP rules around an incremental update: 0 ("no checksum")
/// stays 0, a result of 0 is sent as 0xffff.
const fn udp_fixup(old_csum: u16, updated: u16) -> u16 {
    if old_csum == 0 {
        0
    } else if updated == 0 {
        0xffff
    } else {
        updated
    }
}

/// [`update16`] for a UDP checksum.
pub const fn udp_update16(old_csum: u16, old: u16, new: u16) -> u16 {
    udp_fixup(old_csum, update16(old_csum, old, new))
}

/// [`update32`] for a UDP checksum.
pub const fn udp_update32(old_csum: u16, old: u32, new: u32) -> u16 {
    udp_fixup(old_csum, update32(old_csum, old, new))
}

/// [`update_addr_v4`] for a UDP checksum (pseudo-header address change).
pub fn udp_update_addr_v4(old_csum: u16, old: Ipv4Addr, new: Ipv4Addr) -> u16 {
    udp_update32(old_csum, u32::from(old), u32::from(new))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 1071 §3 example: words 0001 f203 f4f5 f6f7 sum to ddf2.
    #[test]
    fn rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data, 0)), 0xddf2);
        assert_eq!(finish(sum(&data, 0)), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(fold(sum(&[0x12, 0x34, 0x56], 0)), 0x1234 + 0x5600);
        assert_eq!(sum(&[], 7), 7);
    }

    #[test]
    fn sum_of_large_buffer_does_not_overflow() {
        let data = vec![0xffu8; 1 << 20];
        assert_eq!(fold(sum(&data, 0xffff_ffff)), 0xffff);
    }

    #[test]
    fn ipv4_header_checksum_matches_etherparse() {
        let h =
            etherparse::Ipv4Header::new(100, 64, etherparse::IpNumber::TCP, [10, 0, 0, 1], [192, 168, 1, 2]).unwrap();
        let bytes = h.to_bytes();
        assert_eq!(ipv4_header_checksum(&bytes), h.calc_header_checksum());
        // The field's current value does not matter.
        let mut b = bytes.to_vec();
        b[10] = 0xab;
        b[11] = 0xcd;
        assert_eq!(ipv4_header_checksum(&b), h.calc_header_checksum());
    }

    #[test]
    fn udp_zero_rules() {
        assert_eq!(udp_update16(0, 1234, 80), 0);
        assert_eq!(udp_update32(0, 1, 2), 0);
        // An update that lands on 0 is sent as 0xffff: ~(~c + ~m + m') == 0.
        assert_eq!(update16(0x0001, 0x0000, 0x0001), 0x0000);
        assert_eq!(udp_update16(0x0001, 0x0000, 0x0001), 0xffff);
    }

    fn ip(a: u32) -> Ipv4Addr {
        Ipv4Addr::from(a)
    }

    /// The plain RFC 1071 loop, word by word: what `sum` must equal.
    fn sum_words(data: &[u8], initial: u32) -> u16 {
        let mut acc = u64::from(initial);
        for w in data.chunks(2) {
            acc += u64::from(u16::from_be_bytes([w[0], w.get(1).copied().unwrap_or(0)]));
        }
        while acc >> 16 != 0 {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    proptest! {
        #[test]
        fn sum_equals_word_by_word(data in proptest::collection::vec(any::<u8>(), 0..300), initial in any::<u32>()) {
            prop_assert_eq!(fold(sum(&data, initial)), sum_words(&data, initial));
        }

        #[test]
        fn ipv4_header_ok_equals_word_by_word(mut h in any::<[u8; 20]>(), fix in any::<bool>()) {
            if fix {
                h[10..12].copy_from_slice(&[0, 0]);
                let c = !sum_words(&h, 0);
                h[10..12].copy_from_slice(&c.to_be_bytes());
            }
            prop_assert_eq!(ipv4_header_ok(&h), sum_words(&h, 0) == 0xffff);
            if fix {
                prop_assert!(ipv4_header_ok(&h));
            }
        }

        #[test]
        fn split_sums_add_up(data in proptest::collection::vec(any::<u8>(), 0..200), cut in 0usize..100) {
            let cut = (cut * 2).min(data.len() & !1);
            let whole = fold(sum(&data, 0));
            let parts = fold(sum(&data[cut..], sum(&data[..cut], 0)));
            prop_assert_eq!(whole, parts);
        }

        #[test]
        fn update16_equals_recompute(mut data in proptest::collection::vec(any::<u8>(), 2..64),
                                     idx in any::<prop::sample::Index>(), new in any::<u16>()) {
            let words = data.len() / 2;
            let at = idx.index(words) * 2;
            let old = u16::from_be_bytes([data[at], data[at + 1]]);
            let c0 = finish(sum(&data, 0x1234));
            data[at..at + 2].copy_from_slice(&new.to_be_bytes());
            let c1 = finish(sum(&data, 0x1234));
            prop_assert_eq!(update16(c0, old, new), c1);
        }

        #[test]
        fn tcp_checksum_matches_etherparse(src in any::<u32>(), dst in any::<u32>(),
                                            sp in any::<u16>(), dp in any::<u16>(), seq in any::<u32>(),
                                            payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let h = etherparse::TcpHeader::new(sp, dp, seq, 1000);
            let want = h.calc_checksum_ipv4_raw(ip(src).octets(), ip(dst).octets(), &payload).unwrap();
            let mut seg = h.to_bytes().to_vec();
            seg.extend_from_slice(&payload);
            prop_assert_eq!(tcp_udp_checksum_v4(ip(src), ip(dst), IpProto::Tcp, &seg), want);
        }

        #[test]
        fn udp_checksum_matches_etherparse(src in any::<u32>(), dst in any::<u32>(),
                                            sp in any::<u16>(), dp in any::<u16>(),
                                            payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let (s, d) = (ip(src).octets(), ip(dst).octets());
            let iph = etherparse::Ipv4Header::new(0, 1, etherparse::IpNumber::UDP, s, d).unwrap();
            let h = etherparse::UdpHeader::with_ipv4_checksum(sp, dp, &iph, &payload).unwrap();
            let mut seg = h.to_bytes().to_vec();
            seg.extend_from_slice(&payload);
            prop_assert_eq!(tcp_udp_checksum_v4(ip(src), ip(dst), IpProto::Udp, &seg), h.checksum);
        }

        /// A UDP checksum that a full computation would make 0 comes out as
        /// 0xffff both from the full computation and from an update.
        #[test]
        fn udp_update_equals_recompute(src in any::<u32>(), dst in any::<u32>(), new_src in any::<u32>(),
                                       payload in proptest::collection::vec(any::<u8>(), 0..16)) {
            let mut seg = vec![0u8; 8];
            seg[4..6].copy_from_slice(&(8 + payload.len() as u16).to_be_bytes());
            seg.extend_from_slice(&payload);
            let c0 = tcp_udp_checksum_v4(ip(src), ip(dst), IpProto::Udp, &seg);
            let want = tcp_udp_checksum_v4(ip(new_src), ip(dst), IpProto::Udp, &seg);
            prop_assert_eq!(udp_update_addr_v4(c0, ip(src), ip(new_src)), want);
            prop_assert_eq!(udp_update_addr_v4(0, ip(src), ip(new_src)), 0);
        }
    }

    /// Forces the corner case: choose the payload so that the full UDP
    /// checksum is exactly 0 (sent as 0xffff), then check that an incremental
    /// update into and out of that state agrees with the full computation.
    #[test]
    fn udp_update_through_computed_zero() {
        let (src, dst) = (ip(0x0a00_0001), ip(0x0a00_0002));
        let mut seg = vec![0u8; 10];
        seg[4..6].copy_from_slice(&10u16.to_be_bytes());
        // Make fold(sum) == 0xffff by choosing the last word.
        let partial = fold(sum(&seg, pseudo_header_v4(src, dst, IpProto::Udp, 10)));
        seg[8..10].copy_from_slice(&(0xffff - partial).to_be_bytes());
        assert_eq!(tcp_udp_checksum_v4(src, dst, IpProto::Udp, &seg), 0xffff);
        // Change the source address away and back.
        let other = ip(0xc0a8_0101);
        let c_other = tcp_udp_checksum_v4(other, dst, IpProto::Udp, &seg);
        assert_eq!(udp_update_addr_v4(0xffff, src, other), c_other);
        assert_eq!(udp_update_addr_v4(c_other, other, src), 0xffff);
    }
}
