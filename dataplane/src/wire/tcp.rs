//! TCP header (RFC 9293).
//!
//! The view's buffer must be exactly the segment (the IPv4 payload), because
//! the checksum covers the whole segment and its length. Invariant after
//! [`Packet::new_checked`]: `20 <= header_len() <= buffer length`.

use std::net::Ipv4Addr;

use super::bytes::{read_u16, read_u32, write_u16, write_u32};
use super::{IpProto, WireError};
use crate::checksum;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ_NUM: usize = 4;
    pub const ACK_NUM: usize = 8;
    /// Data offset in the high nibble; the low bit is the obsolete NS flag.
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WIN_SIZE: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
    pub const OPTIONS: usize = 20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;

/// Flag bits of byte 13, as returned by [`Packet::flags`].
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

/// A view of a TCP segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Checks the fixed header is present, the data offset is at least 5 and
    /// the header (options included) lies inside the buffer.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, WireError> {
        let p = Packet::new_unchecked(buffer);
        let len = p.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let hlen = p.header_len();
        if hlen < HEADER_LEN {
            return Err(WireError::BadDataOffset);
        }
        if hlen > len {
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

    pub fn seq_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::SEQ_NUM)
    }

    pub fn ack_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::ACK_NUM)
    }

    /// Header length in bytes (data offset * 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    /// The eight flag bits (see [`flags`]).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    fn flag(&self, f: u8) -> bool {
        self.flags() & f != 0
    }

    pub fn fin(&self) -> bool {
        self.flag(flags::FIN)
    }

    pub fn syn(&self) -> bool {
        self.flag(flags::SYN)
    }

    pub fn rst(&self) -> bool {
        self.flag(flags::RST)
    }

    pub fn psh(&self) -> bool {
        self.flag(flags::PSH)
    }

    pub fn ack(&self) -> bool {
        self.flag(flags::ACK)
    }

    pub fn urg(&self) -> bool {
        self.flag(flags::URG)
    }

    pub fn ece(&self) -> bool {
        self.flag(flags::ECE)
    }

    pub fn cwr(&self) -> bool {
        self.flag(flags::CWR)
    }

    pub fn window_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::WIN_SIZE)
    }

    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    pub fn urgent_at(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::URGENT)
    }

    /// The option bytes (empty when the data offset is 5).
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS..self.header_len()]
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// Whether the checksum is correct for a segment from `src` to `dst`.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let b = self.buffer.as_ref();
        let Ok(len) = u16::try_from(b.len()) else {
            return false;
        };
        let s = checksum::sum(b, checksum::pseudo_header_v4(src, dst, IpProto::Tcp, len));
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

    pub fn set_seq_number(&mut self, v: u32) {
        write_u32(self.buffer.as_mut(), field::SEQ_NUM, v);
    }

    pub fn set_ack_number(&mut self, v: u32) {
        write_u32(self.buffer.as_mut(), field::ACK_NUM, v);
    }

    /// Sets the data offset to `header_len / 4` (`header_len` a multiple of
    /// 4, 20..=60), clearing the reserved bits and NS.
    pub fn set_header_len(&mut self, header_len: usize) {
        self.buffer.as_mut()[field::DATA_OFF] = ((header_len / 4) as u8 & 0x0f) << 4;
    }

    /// Sets all eight flag bits at once (see [`flags`]).
    pub fn set_flags(&mut self, f: u8) {
        self.buffer.as_mut()[field::FLAGS] = f;
    }

    fn set_flag(&mut self, f: u8, on: bool) {
        let v = self.flags();
        self.set_flags(if on { v | f } else { v & !f });
    }

    pub fn set_fin(&mut self, on: bool) {
        self.set_flag(flags::FIN, on);
    }

    pub fn set_syn(&mut self, on: bool) {
        self.set_flag(flags::SYN, on);
    }

    pub fn set_rst(&mut self, on: bool) {
        self.set_flag(flags::RST, on);
    }

    pub fn set_psh(&mut self, on: bool) {
        self.set_flag(flags::PSH, on);
    }

    pub fn set_ack(&mut self, on: bool) {
        self.set_flag(flags::ACK, on);
    }

    pub fn set_urg(&mut self, on: bool) {
        self.set_flag(flags::URG, on);
    }

    pub fn set_ece(&mut self, on: bool) {
        self.set_flag(flags::ECE, on);
    }

    pub fn set_cwr(&mut self, on: bool) {
        self.set_flag(flags::CWR, on);
    }

    pub fn set_window_len(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::WIN_SIZE, v);
    }

    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    pub fn set_urgent_at(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::URGENT, v);
    }

    /// Computes and stores the checksum of the whole buffer as the segment
    /// from `src` to `dst`.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let c = checksum::tcp_udp_checksum_v4(src, dst, IpProto::Tcp, self.buffer.as_ref());
        self.set_checksum(c);
    }

    /// Updates the checksum for a change of one pseudo-header address (the IP
    /// source or destination was rewritten from `old` to `new`).
    pub fn update_for_addr_change(&mut self, old: Ipv4Addr, new: Ipv4Addr) {
        let c = checksum::update_addr_v4(self.checksum(), old, new);
        self.set_checksum(c);
    }

    /// Rewrites the source port and updates the checksum (RFC 1624).
    pub fn set_src_port_incremental(&mut self, v: u16) {
        let c = checksum::update16(self.checksum(), self.src_port(), v);
        self.set_src_port(v);
        self.set_checksum(c);
    }

    /// Rewrites the destination port and updates the checksum (RFC 1624).
    pub fn set_dst_port_incremental(&mut self, v: u16) {
        let c = checksum::update16(self.checksum(), self.dst_port(), v);
        self.set_dst_port(v);
        self.set_checksum(c);
    }

    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.buffer.as_mut()[field::OPTIONS..end]
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
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
    use etherparse::{PacketBuilder, TcpOptionElement};
    use proptest::prelude::*;

    const SRC: [u8; 4] = [192, 0, 2, 1];
    const DST: [u8; 4] = [198, 51, 100, 7];

    fn ip(a: u32) -> Ipv4Addr {
        Ipv4Addr::from(a)
    }

    #[test]
    fn parse_every_field() {
        let mut out = Vec::new();
        PacketBuilder::ipv4(SRC, DST, 64)
            .tcp(40000, 80, 0xdead_beef, 29200)
            .syn()
            .ack(0x0102_0304)
            .psh()
            .urg(0x55)
            .ece()
            .cwr()
            .options(&[TcpOptionElement::MaximumSegmentSize(1460), TcpOptionElement::Noop])
            .unwrap()
            .write(&mut out, b"payload!")
            .unwrap();
        let ip = ipv4::Packet::new_checked(&out[..]).unwrap();
        let t = Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(t.src_port(), 40000);
        assert_eq!(t.dst_port(), 80);
        assert_eq!(t.seq_number(), 0xdead_beef);
        assert_eq!(t.ack_number(), 0x0102_0304);
        assert_eq!(t.header_len(), 28);
        assert!(t.syn() && t.ack() && t.psh() && t.urg() && t.ece() && t.cwr());
        assert!(!t.fin() && !t.rst());
        assert_eq!(t.flags(), flags::SYN | flags::ACK | flags::PSH | flags::URG | flags::ECE | flags::CWR);
        assert_eq!(t.window_len(), 29200);
        assert_eq!(t.urgent_at(), 0x55);
        assert_eq!(t.options(), &[2, 4, 0x05, 0xb4, 1, 0, 0, 0]);
        assert_eq!(t.payload(), b"payload!");
        assert!(t.verify_checksum(ip.src_addr(), ip.dst_addr()));
        assert!(!t.verify_checksum(ip.dst_addr(), Ipv4Addr::UNSPECIFIED));
        let sliced = etherparse::TcpSlice::from_slice(ip.payload()).unwrap();
        assert_eq!(t.checksum(), sliced.checksum());
    }

    #[test]
    fn fin_rst_and_setters() {
        let mut out = Vec::new();
        PacketBuilder::ipv4(SRC, DST, 64).tcp(1, 2, 3, 4).fin().rst().write(&mut out, &[]).unwrap();
        let t = Packet::new_checked(&mut out[20..]).unwrap();
        assert!(t.fin() && t.rst() && !t.syn());
        let mut t = t;
        t.set_fin(false);
        t.set_rst(false);
        t.set_syn(true);
        t.set_ack(true);
        t.set_psh(true);
        t.set_urg(true);
        t.set_ece(true);
        t.set_cwr(true);
        t.set_cwr(false);
        assert_eq!(t.flags(), 0x7a);
        t.set_src_port(5);
        t.set_dst_port(6);
        t.set_seq_number(7);
        t.set_ack_number(8);
        t.set_window_len(9);
        t.set_urgent_at(10);
        t.set_header_len(20);
        t.fill_checksum(Ipv4Addr::from(SRC), Ipv4Addr::from(DST));
        let h = etherparse::TcpHeader::from_slice(&out[20..]).unwrap().0;
        assert_eq!((h.source_port, h.destination_port, h.sequence_number, h.acknowledgment_number), (5, 6, 7, 8));
        assert_eq!((h.window_size, h.urgent_pointer), (9, 10));
        assert!(h.syn && h.ack && h.psh && h.urg && h.ece && !h.cwr && !h.fin && !h.rst);
        assert_eq!(h.checksum, h.calc_checksum_ipv4_raw(SRC, DST, &[]).unwrap());
    }

    #[test]
    fn errors() {
        let mut b = [0u8; 40];
        b[12] = 0x50;
        assert!(Packet::new_checked(&b[..20]).is_ok());
        assert_eq!(Packet::new_checked(&b[..19]).unwrap_err(), WireError::Truncated);
        b[12] = 0x40;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), WireError::BadDataOffset);
        b[12] = 0xa0; // 40 bytes
        assert!(Packet::new_checked(&b[..]).is_ok());
        assert_eq!(Packet::new_checked(&b[..39]).unwrap_err(), WireError::Truncated);
    }

    proptest! {
        #[test]
        fn never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 0..80), doff in any::<Option<u8>>()) {
            if let (Some(d), true) = (doff, bytes.len() > 12) {
                bytes[12] = (d % 16) << 4;
            }
            if let Ok(t) = Packet::new_checked(&bytes[..]) {
                let _ = (t.src_port(), t.dst_port(), t.seq_number(), t.ack_number(), t.header_len());
                let _ = (t.flags(), t.fin(), t.syn(), t.rst(), t.psh(), t.ack(), t.urg(), t.ece(), t.cwr());
                let _ = (t.window_len(), t.checksum(), t.urgent_at(), t.options().len(), t.payload().len());
                let _ = t.verify_checksum(Ipv4Addr::LOCALHOST, Ipv4Addr::BROADCAST);
            }
        }

        /// NAT rewrite of address and port, incremental, equals a recompute.
        #[test]
        fn incremental_equals_recompute(src in any::<u32>(), dst in any::<u32>(), sp in any::<u16>(), dp in any::<u16>(),
                                        new_dst in any::<u32>(), new_sp in any::<u16>(), new_dp in any::<u16>(),
                                        payload in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut out = Vec::new();
            PacketBuilder::ipv4(ip(src).octets(), ip(dst).octets(), 64)
                .tcp(sp, dp, 1, 2)
                .write(&mut out, &payload)
                .unwrap();
            let mut ipp = ipv4::Packet::new_checked(&mut out[..]).unwrap();
            ipp.set_dst_addr_incremental(ip(new_dst));
            let mut t = Packet::new_checked(ipp.payload_mut()).unwrap();
            t.update_for_addr_change(ip(dst), ip(new_dst));
            t.set_src_port_incremental(new_sp);
            t.set_dst_port_incremental(new_dp);
            let got = t.checksum();
            prop_assert!(t.verify_checksum(ip(src), ip(new_dst)));
            t.fill_checksum(ip(src), ip(new_dst));
            prop_assert_eq!(got, t.checksum());
            prop_assert!(ipp.verify_checksum());
        }
    }
}
