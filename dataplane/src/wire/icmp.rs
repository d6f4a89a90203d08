//! ICMPv4 (RFC 792, RFC 1191 for "fragmentation needed").
//!
//! The view's buffer must be exactly the ICMP message (the IPv4 payload): the
//! checksum covers all of it. Invariant after [`Packet::new_checked`]: the
//! 8-byte header is present.
//!
//! Error messages (destination unreachable, time exceeded, parameter problem,
//! redirect, source quench) carry the offending datagram's IP header and at
//! least its first 8 bytes after the header; [`Packet::embedded_ipv4`] gives a
//! view of it checked with `ipv4::Packet::new_checked_header`, since the
//! quoted datagram is cut short.

use super::bytes::{read_u16, write_u16};
use super::{ipv4, WireError};
use crate::checksum;

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    /// Echo request/reply identifier.
    pub const ECHO_IDENT: usize = 4;
    /// Echo request/reply sequence number.
    pub const ECHO_SEQNO: usize = 6;
    /// Next-hop MTU of "fragmentation needed" (RFC 1191 §4).
    pub const NEXT_HOP_MTU: usize = 6;
    /// Data after the 8-byte header (the quoted datagram of an error).
    pub const DATA: usize = 8;
}

pub const HEADER_LEN: usize = 8;

/// ICMPv4 message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Message(pub u8);

#[allow(non_upper_case_globals)] // enum-like constants, as EtherType
impl Message {
    pub const EchoReply: Message = Message(0);
    pub const DstUnreachable: Message = Message(3);
    pub const SourceQuench: Message = Message(4);
    pub const Redirect: Message = Message(5);
    pub const EchoRequest: Message = Message(8);
    pub const TimeExceeded: Message = Message(11);
    pub const ParamProblem: Message = Message(12);

    /// Whether this type quotes an offending datagram (RFC 1122 §3.2.2).
    pub const fn is_error(self) -> bool {
        matches!(self.0, 3 | 4 | 5 | 11 | 12)
    }
}

/// Codes of [`Message::DstUnreachable`].
pub mod unreachable {
    pub const NET: u8 = 0;
    pub const HOST: u8 = 1;
    pub const PROTOCOL: u8 = 2;
    pub const PORT: u8 = 3;
    /// Fragmentation needed and DF set; carries the next-hop MTU.
    pub const FRAG_NEEDED: u8 = 4;
    pub const SOURCE_ROUTE_FAILED: u8 = 5;
    pub const ADMIN_PROHIBITED: u8 = 13;
}

/// Codes of [`Message::TimeExceeded`].
pub mod time_exceeded {
    pub const TTL: u8 = 0;
    pub const FRAG_REASSEMBLY: u8 = 1;
}

/// A view of an ICMPv4 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Checks the 8-byte header is present.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, WireError> {
        let p = Packet::new_unchecked(buffer);
        if p.buffer.as_ref().len() < HEADER_LEN {
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

    pub fn msg_type(&self) -> Message {
        Message(self.buffer.as_ref()[field::TYPE])
    }

    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Whether the message is an error that quotes a datagram.
    pub fn is_error(&self) -> bool {
        self.msg_type().is_error()
    }

    /// Identifier of an echo request/reply.
    pub fn echo_ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    /// Sequence number of an echo request/reply.
    pub fn echo_seq_no(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_SEQNO)
    }

    /// Next-hop MTU of a "fragmentation needed" message (0 from routers
    /// older than RFC 1191).
    pub fn next_hop_mtu(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::NEXT_HOP_MTU)
    }

    /// Whether this is destination unreachable / fragmentation needed.
    pub fn is_frag_needed(&self) -> bool {
        self.msg_type() == Message::DstUnreachable && self.msg_code() == unreachable::FRAG_NEEDED
    }

    /// The bytes after the 8-byte header (echo data, or the quoted datagram).
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA..]
    }

    /// The quoted datagram of an error message. Its `payload()` holds what
    /// was quoted of the transport header (at least 8 bytes from a
    /// conforming sender, so the ports of TCP/UDP). Only meaningful when
    /// [`Packet::is_error`]; the caller decides.
    pub fn embedded_ipv4(&self) -> Result<ipv4::Packet<&[u8]>, WireError> {
        ipv4::Packet::new_checked_header(self.data())
    }

    /// The source and destination ports of the quoted TCP/UDP header, if the
    /// quote is long enough to hold them.
    pub fn embedded_ports(&self) -> Option<(u16, u16)> {
        let ip = self.embedded_ipv4().ok()?;
        match *ip.payload() {
            [a, b, c, d, ..] => Some((u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]))),
            _ => None,
        }
    }

    /// Whether the checksum over the whole message is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(self.buffer.as_ref(), 0)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_msg_type(&mut self, t: Message) {
        self.buffer.as_mut()[field::TYPE] = t.0;
    }

    pub fn set_msg_code(&mut self, c: u8) {
        self.buffer.as_mut()[field::CODE] = c;
    }

    pub fn set_checksum(&mut self, c: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, c);
    }

    pub fn set_echo_ident(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_IDENT, v);
    }

    pub fn set_echo_seq_no(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_SEQNO, v);
    }

    /// Sets the next-hop MTU, zeroing the unused word before it.
    pub fn set_next_hop_mtu(&mut self, mtu: u16) {
        let b = self.buffer.as_mut();
        write_u16(b, field::ECHO_IDENT, 0);
        write_u16(b, field::NEXT_HOP_MTU, mtu);
    }

    /// Computes and stores the checksum over the whole message.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::finish(checksum::sum(self.buffer.as_ref(), 0));
        self.set_checksum(c);
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA..]
    }

    /// Mutable view of the quoted datagram, for NAT of ICMP errors (rewrite
    /// the quoted addresses and ports, then [`Packet::fill_checksum`]).
    pub fn embedded_ipv4_mut(&mut self) -> Result<ipv4::Packet<&mut [u8]>, WireError> {
        ipv4::Packet::new_checked_header(self.data_mut())
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
    use crate::wire::{IpProto, Ipv4Packet};
    use etherparse::{icmpv4, Icmpv4Type, PacketBuilder};
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    /// The datagram an ICMP error quotes: a TCP SYN 10.0.0.9:33000 -> VIP:80,
    /// cut to header + 8 bytes.
    fn quoted() -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 9], [203, 0, 113, 10], 1)
            .tcp(33000, 80, 0x1111, 1000)
            .syn()
            .write(&mut out, &[0u8; 100])
            .unwrap();
        out.truncate(28);
        out
    }

    fn icmp_message(t: Icmpv4Type, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv4([192, 0, 2, 1], [10, 0, 0, 9], 64).icmpv4(t).write(&mut out, data).unwrap();
        out.split_off(20)
    }

    #[test]
    fn echo() {
        let m = {
            let mut out = Vec::new();
            PacketBuilder::ipv4([192, 0, 2, 1], [10, 0, 0, 9], 64)
                .icmpv4_echo_request(0x1234, 7)
                .write(&mut out, b"ping")
                .unwrap();
            out.split_off(20)
        };
        let p = Packet::new_checked(&m[..]).unwrap();
        assert_eq!(p.msg_type(), Message::EchoRequest);
        assert_eq!(p.msg_code(), 0);
        assert_eq!(p.echo_ident(), 0x1234);
        assert_eq!(p.echo_seq_no(), 7);
        assert_eq!(p.data(), b"ping");
        assert!(!p.is_error());
        assert!(p.verify_checksum());
        let e = etherparse::Icmpv4Slice::from_slice(&m).unwrap();
        assert_eq!(p.checksum(), e.checksum());
    }

    #[test]
    fn frag_needed_quotes_datagram() {
        let q = quoted();
        let t = Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::FragmentationNeeded {
            next_hop_mtu: 1400,
        });
        let m = icmp_message(t, &q);
        let p = Packet::new_checked(&m[..]).unwrap();
        assert_eq!(p.msg_type(), Message::DstUnreachable);
        assert_eq!(p.msg_code(), unreachable::FRAG_NEEDED);
        assert!(p.is_error() && p.is_frag_needed());
        assert_eq!(p.next_hop_mtu(), 1400);
        assert!(p.verify_checksum());
        let inner = p.embedded_ipv4().unwrap();
        assert_eq!(inner.src_addr(), Ipv4Addr::new(10, 0, 0, 9));
        assert_eq!(inner.dst_addr(), Ipv4Addr::new(203, 0, 113, 10));
        assert_eq!(inner.protocol(), IpProto::Tcp);
        assert_eq!(inner.total_len(), 20 + 20 + 100);
        assert_eq!(inner.payload().len(), 8);
        assert_eq!(p.embedded_ports(), Some((33000, 80)));
        // A full-datagram check refuses the quote, which is cut short.
        assert_eq!(Ipv4Packet::new_checked(p.data()).unwrap_err(), WireError::Truncated);
    }

    #[test]
    fn time_exceeded() {
        let q = quoted();
        let m = icmp_message(Icmpv4Type::TimeExceeded(icmpv4::TimeExceededCode::TtlExceededInTransit), &q);
        let p = Packet::new_checked(&m[..]).unwrap();
        assert_eq!(p.msg_type(), Message::TimeExceeded);
        assert_eq!(p.msg_code(), time_exceeded::TTL);
        assert!(p.is_error() && !p.is_frag_needed());
        assert_eq!(p.embedded_ports(), Some((33000, 80)));
    }

    /// NAT of an ICMP error: rewrite the quoted destination (VIP -> real
    /// server) and port, then refill the checksum; etherparse agrees.
    #[test]
    fn rewrite_embedded() {
        let q = quoted();
        let t = Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::Port);
        let mut m = icmp_message(t, &q);
        let mut p = Packet::new_checked(&mut m[..]).unwrap();
        {
            let mut inner = p.embedded_ipv4_mut().unwrap();
            inner.set_dst_addr_incremental(Ipv4Addr::new(10, 1, 1, 5));
            assert!(inner.verify_checksum());
            inner.payload_mut()[2..4].copy_from_slice(&8080u16.to_be_bytes());
        }
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(p.embedded_ports(), Some((33000, 8080)));
        let e = etherparse::Icmpv4Slice::from_slice(&m).unwrap();
        assert_eq!(e.icmp_type().calc_checksum(e.payload()), e.checksum());
    }

    #[test]
    fn set_fields() {
        let mut m = [0u8; 8 + 28];
        m[8..].copy_from_slice(&quoted());
        let mut p = Packet::new_checked(&mut m[..]).unwrap();
        p.set_msg_type(Message::DstUnreachable);
        p.set_msg_code(unreachable::FRAG_NEEDED);
        p.set_next_hop_mtu(1280);
        p.fill_checksum();
        let e = etherparse::Icmpv4Slice::from_slice(&m).unwrap();
        match e.icmp_type() {
            Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu }) => {
                assert_eq!(next_hop_mtu, 1280)
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(e.icmp_type().calc_checksum(e.payload()), e.checksum());
        let mut p = Packet::new_checked(&mut m[..]).unwrap();
        p.set_msg_type(Message::EchoReply);
        p.set_msg_code(0);
        p.set_echo_ident(9);
        p.set_echo_seq_no(10);
        assert_eq!((p.echo_ident(), p.echo_seq_no()), (9, 10));
    }

    #[test]
    fn errors() {
        assert_eq!(Packet::new_checked(&[0u8; 7][..]).unwrap_err(), WireError::Truncated);
        let mut m = [0u8; 8 + 19];
        m[0] = 3;
        let p = Packet::new_checked(&m[..]).unwrap();
        assert_eq!(p.embedded_ipv4().unwrap_err(), WireError::Truncated);
        assert_eq!(p.embedded_ports(), None);
        let mut m = [0u8; 8 + 20];
        m[8] = 0x45;
        m[10..12].copy_from_slice(&20u16.to_be_bytes());
        let p = Packet::new_checked(&m[..]).unwrap();
        assert!(p.embedded_ipv4().is_ok());
        assert_eq!(p.embedded_ports(), None); // no transport bytes quoted
    }

    proptest! {
        #[test]
        fn never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 0..60), fix in any::<bool>()) {
            if fix && bytes.len() >= 12 {
                bytes[0] = 3;
                bytes[8] = 0x45;
            }
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = (p.msg_type(), p.msg_code(), p.checksum(), p.is_error(), p.echo_ident());
                let _ = (p.echo_seq_no(), p.next_hop_mtu(), p.is_frag_needed(), p.data().len());
                let _ = (p.embedded_ports(), p.verify_checksum());
                if let Ok(ip) = p.embedded_ipv4() {
                    let _ = (ip.src_addr(), ip.dst_addr(), ip.protocol(), ip.payload().len(), ip.options().len());
                }
            }
        }
    }
}
