//! IPv4 header (RFC 791), options included.
//!
//! Invariant after [`Packet::new_checked`]: version is 4, `20 <= header_len()
//! <= total_len() <= buffer length`. The buffer may be longer than
//! `total_len()` (Ethernet padding); [`Packet::payload`] stops at
//! `total_len()`. [`Packet::new_checked_header`] is the weaker form for the
//! header quoted inside an ICMP error, where the datagram is cut short: there
//! `payload()` stops at the end of the buffer.

use std::net::Ipv4Addr;

use super::bytes::{read_ipv4, read_u16, write_ipv4, write_u16};
use super::{IpProto, WireError};
use crate::checksum;

mod field {
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC_ADDR: usize = 12;
    pub const DST_ADDR: usize = 16;
    /// Options start here and run to `header_len()`.
    pub const OPTIONS: usize = 20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Validates version, IHL and total length against the buffer, in the
    /// order Linux `ip_rcv_core` does.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, WireError> {
        let p = Packet::new_checked_header(buffer)?;
        if usize::from(p.total_len()) > p.buffer.as_ref().len() {
            return Err(WireError::Truncated);
        }
        Ok(p)
    }

    /// Validates the header only (version 4, IHL >= 5, the header inside the
    /// buffer, total length >= header length) but lets the datagram run past
    /// the buffer, as in the copy of the offending datagram that an ICMP error
    /// carries (header + first 8 bytes). No getter can panic afterwards.
    pub fn new_checked_header(buffer: T) -> Result<Packet<T>, WireError> {
        let p = Packet::new_unchecked(buffer);
        let len = p.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if p.version() != 4 {
            return Err(WireError::BadVersion);
        }
        let hlen = p.header_len();
        if hlen < HEADER_LEN {
            return Err(WireError::BadHeaderLen);
        }
        if hlen > len {
            return Err(WireError::Truncated);
        }
        if usize::from(p.total_len()) < hlen {
            return Err(WireError::BadTotalLen);
        }
        Ok(p)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole buffer, padding included.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL * 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 0x03
    }

    /// Total length of the datagram (header + payload) in bytes.
    pub fn total_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT)
    }

    fn flags_offset(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::FLG_OFF)
    }

    /// Don't Fragment.
    pub fn dont_frag(&self) -> bool {
        self.flags_offset() & FLAG_DF != 0
    }

    /// More Fragments.
    pub fn more_frags(&self) -> bool {
        self.flags_offset() & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field counts 8-byte units).
    pub fn frag_offset(&self) -> u16 {
        (self.flags_offset() & OFFSET_MASK) << 3
    }

    /// True for any fragment, first (MF set, offset 0) or later.
    pub fn is_fragment(&self) -> bool {
        self.flags_offset() & (FLAG_MF | OFFSET_MASK) != 0
    }

    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    pub fn protocol(&self) -> IpProto {
        IpProto(self.buffer.as_ref()[field::PROTOCOL])
    }

    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    pub fn src_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::SRC_ADDR)
    }

    pub fn dst_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::DST_ADDR)
    }

    /// The header bytes, options included.
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.header_len()]
    }

    /// The option bytes (empty when IHL is 5).
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS..self.header_len()]
    }

    fn payload_end(&self) -> usize {
        usize::from(self.total_len()).min(self.buffer.as_ref().len())
    }

    /// The payload: from the end of the header to `total_len()` (or to the end
    /// of the buffer for a header checked with `new_checked_header`).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.payload_end()]
    }

    /// Whether the header checksum is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(self.header(), 0)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the version to 4 and IHL to `header_len / 4` (`header_len` a
    /// multiple of 4, 20..=60).
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | ((header_len / 4) as u8 & 0x0f);
    }

    pub fn set_dscp(&mut self, dscp: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & 0x03) | (dscp << 2);
    }

    pub fn set_ecn(&mut self, ecn: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & !0x03) | (ecn & 0x03);
    }

    pub fn set_total_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    pub fn set_ident(&mut self, id: u16) {
        write_u16(self.buffer.as_mut(), field::IDENT, id);
    }

    fn set_flags_offset(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::FLG_OFF, v);
    }

    /// Clears DF, MF and the reserved bit, keeping the offset.
    pub fn clear_flags(&mut self) {
        let v = self.flags_offset() & OFFSET_MASK;
        self.set_flags_offset(v);
    }

    pub fn set_dont_frag(&mut self, df: bool) {
        let v = self.flags_offset();
        self.set_flags_offset(if df { v | FLAG_DF } else { v & !FLAG_DF });
    }

    pub fn set_more_frags(&mut self, mf: bool) {
        let v = self.flags_offset();
        self.set_flags_offset(if mf { v | FLAG_MF } else { v & !FLAG_MF });
    }

    /// Sets the fragment offset, given in bytes (a multiple of 8).
    pub fn set_frag_offset(&mut self, bytes: u16) {
        let v = (self.flags_offset() & !OFFSET_MASK) | ((bytes >> 3) & OFFSET_MASK);
        self.set_flags_offset(v);
    }

    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    pub fn set_protocol(&mut self, p: IpProto) {
        self.buffer.as_mut()[field::PROTOCOL] = p.0;
    }

    pub fn set_checksum(&mut self, c: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, c);
    }

    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        write_ipv4(self.buffer.as_mut(), field::SRC_ADDR, a);
    }

    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        write_ipv4(self.buffer.as_mut(), field::DST_ADDR, a);
    }

    /// Computes and stores the header checksum (for headers we build).
    pub fn fill_checksum(&mut self) {
        let c = checksum::ipv4_header_checksum(self.header());
        self.set_checksum(c);
    }

    /// Decrements the TTL by one and updates the checksum (RFC 1624); returns
    /// the new TTL. A TTL of 0 is left alone and 0 is returned: the caller
    /// must check for `<= 1` before forwarding (RFC 1812 §5.3.1).
    pub fn decrement_ttl_incremental(&mut self) -> u8 {
        let old = self.ttl();
        if old == 0 {
            return 0;
        }
        let new = old - 1;
        self.set_ttl(new);
        let c = checksum::update_ttl(self.checksum(), old, new);
        self.set_checksum(c);
        new
    }

    /// Rewrites the source address and updates the header checksum. The
    /// transport checksum covers the address too: see the TCP/UDP views'
    /// `update_for_addr_change`.
    pub fn set_src_addr_incremental(&mut self, a: Ipv4Addr) {
        let c = checksum::update_addr_v4(self.checksum(), self.src_addr(), a);
        self.set_src_addr(a);
        self.set_checksum(c);
    }

    /// Rewrites the destination address and updates the header checksum.
    pub fn set_dst_addr_incremental(&mut self, a: Ipv4Addr) {
        let c = checksum::update_addr_v4(self.checksum(), self.dst_addr(), a);
        self.set_dst_addr(a);
        self.set_checksum(c);
    }

    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.buffer.as_mut()[field::OPTIONS..end]
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = (self.header_len(), self.payload_end());
        &mut self.buffer.as_mut()[start..end]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{IpNumber, Ipv4Header, PacketBuilder};
    use proptest::prelude::*;

    fn ip(a: u32) -> Ipv4Addr {
        Ipv4Addr::from(a)
    }

    fn tcp_datagram(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv4([192, 0, 2, 1], [198, 51, 100, 7], 63)
            .tcp(40000, 80, 1, 1000)
            .write(&mut out, payload)
            .unwrap();
        out
    }

    #[test]
    fn parse_every_field() {
        let mut h = Ipv4Header::new(8, 17, IpNumber::UDP, [10, 1, 2, 3], [10, 4, 5, 6]).unwrap();
        h.dscp = etherparse::Ipv4Dscp::try_new(46).unwrap();
        h.ecn = etherparse::Ipv4Ecn::try_new(2).unwrap();
        h.identification = 0xbeef;
        h.dont_fragment = false;
        h.more_fragments = true;
        h.fragment_offset = etherparse::IpFragOffset::try_new(185).unwrap();
        h.options = [1u8, 1, 1, 0].into();
        h.total_len = 32;
        h.header_checksum = h.calc_header_checksum();
        let mut bytes = h.to_bytes().to_vec();
        bytes.extend_from_slice(&[9; 8]);
        bytes.extend_from_slice(&[0; 6]); // Ethernet padding

        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.dscp(), 46);
        assert_eq!(p.ecn(), 2);
        assert_eq!(p.total_len(), 32);
        assert_eq!(p.ident(), 0xbeef);
        assert!(!p.dont_frag());
        assert!(p.more_frags());
        assert_eq!(p.frag_offset(), 185 * 8);
        assert!(p.is_fragment());
        assert_eq!(p.ttl(), 17);
        assert_eq!(p.protocol(), IpProto::Udp);
        assert_eq!(p.checksum(), h.header_checksum);
        assert!(p.verify_checksum());
        assert_eq!(p.src_addr(), Ipv4Addr::new(10, 1, 2, 3));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(10, 4, 5, 6));
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload(), &[9; 8]);
        assert_eq!(p.header(), &bytes[..24]);
    }

    #[test]
    fn parse_builder_output() {
        let bytes = tcp_datagram(b"GET / HTTP/1.0\r\n\r\n");
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.header_len(), 20);
        assert_eq!(usize::from(p.total_len()), bytes.len());
        assert_eq!(p.protocol(), IpProto::Tcp);
        assert!(p.dont_frag());
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 63);
        assert!(p.verify_checksum());
        assert_eq!(p.payload().len(), 20 + 18);
        assert!(p.options().is_empty());
    }

    #[test]
    fn errors() {
        let good = tcp_datagram(b"abc");
        let check = |b: &[u8]| Packet::new_checked(b).map(|_| ()).unwrap_err();
        assert_eq!(check(&good[..19]), WireError::Truncated);
        assert_eq!(check(&[]), WireError::Truncated);
        let mut b = good.clone();
        b[0] = 0x65;
        assert_eq!(check(&b), WireError::BadVersion);
        b[0] = 0x44;
        assert_eq!(check(&b), WireError::BadHeaderLen);
        b[0] = 0x4f; // 60-byte header in a 43-byte buffer
        assert_eq!(check(&b), WireError::Truncated);
        let mut b = good.clone();
        b[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(check(&b), WireError::BadTotalLen);
        b[2..4].copy_from_slice(&(good.len() as u16 + 1).to_be_bytes());
        assert_eq!(check(&b), WireError::Truncated);
        // ... which the header-only check accepts, cutting the payload short.
        let p = Packet::new_checked_header(&b[..]).unwrap();
        assert_eq!(p.payload().len(), good.len() - 20);
    }

    #[test]
    fn build_header() {
        let mut b = [0u8; 28];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_version_and_header_len(20);
        p.set_dscp(10);
        p.set_ecn(1);
        p.set_total_len(28);
        p.set_ident(7);
        p.set_dont_frag(true);
        p.set_more_frags(true);
        p.set_frag_offset(64);
        p.set_more_frags(false);
        p.set_ttl(64);
        p.set_protocol(IpProto::Ipip);
        p.set_src_addr(Ipv4Addr::new(1, 2, 3, 4));
        p.set_dst_addr(Ipv4Addr::new(5, 6, 7, 8));
        p.fill_checksum();
        let (h, _) = Ipv4Header::from_slice(&b).unwrap();
        assert_eq!(h.dscp.value(), 10);
        assert_eq!(h.ecn.value(), 1);
        assert_eq!(h.total_len, 28);
        assert_eq!(h.identification, 7);
        assert!(h.dont_fragment);
        assert!(!h.more_fragments);
        assert_eq!(h.fragment_offset.value(), 8);
        assert_eq!(h.time_to_live, 64);
        assert_eq!(h.protocol, IpNumber::IPV4);
        assert_eq!(h.source, [1, 2, 3, 4]);
        assert_eq!(h.destination, [5, 6, 7, 8]);
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.clear_flags();
        assert!(!p.dont_frag());
        assert_eq!(p.frag_offset(), 64);
    }

    #[test]
    fn ttl_zero_is_left_alone() {
        let mut b = tcp_datagram(b"");
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_ttl(0);
        p.fill_checksum();
        assert_eq!(p.decrement_ttl_incremental(), 0);
        assert_eq!(p.ttl(), 0);
        assert!(p.verify_checksum());
    }

    /// Random bytes, with the first byte and total length sometimes made
    /// plausible so that the checks past the version are reached too.
    fn arb_datagram() -> impl Strategy<Value = Vec<u8>> {
        (proptest::collection::vec(any::<u8>(), 0..80), any::<bool>(), any::<u8>()).prop_map(|(mut b, fix, ihl)| {
            if fix && b.len() >= 4 {
                b[0] = 0x40 | (ihl % 17);
                let tl = (b.len() as u16).saturating_sub(u16::from(ihl % 3));
                b[2..4].copy_from_slice(&tl.to_be_bytes());
            }
            b
        })
    }

    fn read_all<T: AsRef<[u8]>>(p: &Packet<T>) {
        let _ = (p.version(), p.header_len(), p.dscp(), p.ecn(), p.total_len(), p.ident());
        let _ = (p.dont_frag(), p.more_frags(), p.frag_offset(), p.is_fragment(), p.ttl());
        let _ = (p.protocol(), p.checksum(), p.src_addr(), p.dst_addr(), p.verify_checksum());
        let _ = (p.header().len(), p.options().len(), p.payload().len());
    }

    proptest! {
        #[test]
        fn never_panics(bytes in arb_datagram()) {
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                read_all(&p);
                prop_assert_eq!(p.header_len() + p.payload().len(), usize::from(p.total_len()));
            }
            if let Ok(p) = Packet::new_checked_header(&bytes[..]) {
                read_all(&p);
            }
            let mut b = bytes.clone();
            if let Ok(mut p) = Packet::new_checked(&mut b[..]) {
                p.decrement_ttl_incremental();
                p.set_src_addr_incremental(Ipv4Addr::LOCALHOST);
                let _ = (p.payload_mut().len(), p.options_mut().len());
            }
        }

        #[test]
        fn incremental_equals_recompute(src in any::<u32>(), dst in any::<u32>(), ttl in 1u8..,
                                        new_src in any::<u32>(), new_dst in any::<u32>(),
                                        opts in 0usize..3, garbage in any::<u16>()) {
            let mut h = Ipv4Header::new(0, ttl, IpNumber::TCP, ip(src).octets(), ip(dst).octets()).unwrap();
            h.options = etherparse::Ipv4Options::try_from(&[1u8; 8][..opts * 4]).unwrap();
            h.total_len = h.header_len() as u16;
            h.identification = garbage;
            let mut b = h.to_bytes().to_vec();
            let mut p = Packet::new_checked(&mut b[..]).unwrap();
            p.fill_checksum();
            prop_assert_eq!(p.checksum(), h.calc_header_checksum());

            prop_assert_eq!(p.decrement_ttl_incremental(), ttl - 1);
            p.set_src_addr_incremental(ip(new_src));
            p.set_dst_addr_incremental(ip(new_dst));
            prop_assert!(p.verify_checksum());
            let want = checksum::ipv4_header_checksum(p.header());
            prop_assert_eq!(p.checksum(), want);
        }
    }
}
