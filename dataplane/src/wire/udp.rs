//! UDP header (RFC 768).
//!
//! Invariant after [`Packet::new_checked`]: `8 <= length() <= buffer length`;
//! [`Packet::payload`] and the checksum stop at `length()`.
//!
//! Checksum 0 means "no checksum" over IPv4: [`Packet::verify_checksum`]
//! accepts it, and the incremental updates keep it 0. A computed 0 is sent as
//! 0xffff.

use std::net::Ipv4Addr;

use super::bytes::{read_u16, write_u16};
use super::{IpProto, WireError};
use crate::checksum;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}

pub const HEADER_LEN: usize = 8;

/// A view of a UDP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Checks the header is present and the length field lies between the
    /// header size and the buffer size.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, WireError> {
        let p = Packet::new_unchecked(buffer);
        let len = p.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let ulen = usize::from(p.length());
        if ulen < HEADER_LEN {
            return Err(WireError::BadUdpLen);
        }
        if ulen > len {
            return Err(WireError::Truncated);
        }
        Ok(p)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// The length field: header + payload, in bytes.
    pub fn length(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The datagram as the length field delimits it.
    fn datagram(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[..usize::from(self.length()).min(b.len())]
    }

    pub fn payload(&self) -> &[u8] {
        let end = usize::from(self.length()).min(self.buffer.as_ref().len());
        &self.buffer.as_ref()[HEADER_LEN..end]
    }

    /// Whether the checksum is correct for a datagram from `src` to `dst`;
    /// true when there is none (0).
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let d = self.datagram();
        let s = checksum::sum(d, checksum::pseudo_header_v4(src, dst, IpProto::Udp, self.length()));
        checksum::fold(s) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_src_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT, v);
    }

    pub fn set_dst_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT, v);
    }

    pub fn set_length(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, v);
    }

    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    /// Computes and stores the checksum (never 0: a computed 0 is 0xffff).
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let c = checksum::tcp_udp_checksum_v4(src, dst, IpProto::Udp, self.datagram());
        self.set_checksum(c);
    }

    /// Updates the checksum for a change of one pseudo-header address; a
    /// datagram without checksum keeps none.
    pub fn update_for_addr_change(&mut self, old: Ipv4Addr, new: Ipv4Addr) {
        let c = checksum::udp_update_addr_v4(self.checksum(), old, new);
        self.set_checksum(c);
    }

    /// Rewrites the source port, updating the checksum if there is one.
    pub fn set_src_port_incremental(&mut self, v: u16) {
        let c = checksum::udp_update16(self.checksum(), self.src_port(), v);
        self.set_src_port(v);
        self.set_checksum(c);
    }

    /// Rewrites the destination port, updating the checksum if there is one.
    pub fn set_dst_port_incremental(&mut self, v: u16) {
        let c = checksum::udp_update16(self.checksum(), self.dst_port(), v);
        self.set_dst_port(v);
        self.set_checksum(c);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.length()).min(self.buffer.as_ref().len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
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
    use crate::wire::ipv4;
    use etherparse::PacketBuilder;
    use proptest::prelude::*;

    fn ip(a: u32) -> Ipv4Addr {
        Ipv4Addr::from(a)
    }

    fn datagram(src: u32, dst: u32, sp: u16, dp: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv4(ip(src).octets(), ip(dst).octets(), 64).udp(sp, dp).write(&mut out, payload).unwrap();
        out
    }

    #[test]
    fn parse_every_field() {
        let out = datagram(0xc000_0201, 0xc633_6407, 5353, 53, b"query");
        let ip = ipv4::Packet::new_checked(&out[..]).unwrap();
        let u = Packet::new_checked(ip.payload()).unwrap();
        let e = etherparse::UdpHeader::from_slice(ip.payload()).unwrap().0;
        assert_eq!(u.src_port(), 5353);
        assert_eq!(u.dst_port(), 53);
        assert_eq!(u.length(), 13);
        assert_eq!(u.checksum(), e.checksum);
        assert_eq!(u.payload(), b"query");
        assert!(u.verify_checksum(ip.src_addr(), ip.dst_addr()));
        assert!(!u.verify_checksum(ip.src_addr(), Ipv4Addr::new(198, 51, 100, 8)));
    }

    #[test]
    fn length_field_bounds_payload() {
        let mut b = datagram(1, 2, 3, 4, b"abcdef");
        b.extend_from_slice(&[0; 4]); // trailing junk past the UDP length
        let u = Packet::new_checked(&b[20..]).unwrap();
        assert_eq!(u.payload(), b"abcdef");
        assert!(u.verify_checksum(ip(1), ip(2)));
    }

    #[test]
    fn errors() {
        let b = datagram(1, 2, 3, 4, b"abcdef");
        let u = &b[20..];
        assert_eq!(Packet::new_checked(&u[..7]).unwrap_err(), WireError::Truncated);
        assert_eq!(Packet::new_checked(&u[..13]).unwrap_err(), WireError::Truncated);
        let mut bad = u.to_vec();
        bad[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&bad[..]).unwrap_err(), WireError::BadUdpLen);
    }

    #[test]
    fn zero_checksum_is_kept() {
        let mut b = datagram(1, 2, 3, 4, b"xyz");
        let mut u = Packet::new_checked(&mut b[20..]).unwrap();
        u.set_checksum(0);
        assert!(u.verify_checksum(ip(7), ip(8)));
        u.update_for_addr_change(ip(2), ip(9));
        u.set_src_port_incremental(1000);
        u.set_dst_port_incremental(2000);
        assert_eq!(u.checksum(), 0);
        assert_eq!((u.src_port(), u.dst_port()), (1000, 2000));
    }

    proptest! {
        #[test]
        fn never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 0..40), ulen in any::<Option<u8>>()) {
            if let (Some(l), true) = (ulen, bytes.len() >= 8) {
                bytes[4..6].copy_from_slice(&u16::from(l % 48).to_be_bytes());
            }
            if let Ok(u) = Packet::new_checked(&bytes[..]) {
                let _ = (u.src_port(), u.dst_port(), u.length(), u.checksum(), u.payload().len());
                let _ = u.verify_checksum(Ipv4Addr::LOCALHOST, Ipv4Addr::BROADCAST);
                prop_assert_eq!(u.payload().len() + 8, usize::from(u.length()));
            }
        }

        /// NAT rewrite of address and ports, incremental, equals a recompute,
        /// including datagrams whose checksum is 0 ("none") or 0xffff.
        #[test]
        fn incremental_equals_recompute(src in any::<u32>(), dst in any::<u32>(), sp in any::<u16>(), dp in any::<u16>(),
                                        new_src in any::<u32>(), new_sp in any::<u16>(), new_dp in any::<u16>(),
                                        no_csum in any::<bool>(),
                                        payload in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut out = datagram(src, dst, sp, dp, &payload);
            let mut ipp = ipv4::Packet::new_checked(&mut out[..]).unwrap();
            ipp.set_src_addr_incremental(ip(new_src));
            let mut u = Packet::new_checked(ipp.payload_mut()).unwrap();
            if no_csum {
                u.set_checksum(0);
            }
            u.update_for_addr_change(ip(src), ip(new_src));
            u.set_src_port_incremental(new_sp);
            u.set_dst_port_incremental(new_dp);
            let got = u.checksum();
            if no_csum {
                prop_assert_eq!(got, 0);
            } else {
                prop_assert_ne!(got, 0);
                prop_assert!(u.verify_checksum(ip(new_src), ip(dst)));
                u.fill_checksum(ip(new_src), ip(dst));
                prop_assert_eq!(got, u.checksum());
            }
        }
    }
}
