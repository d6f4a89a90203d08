//! ARP (RFC 826) for Ethernet hardware and IPv4 protocol addresses — the only
//! kind the appliance resolves. `new_checked` refuses every other kind, so the
//! address fields are always at the fixed offsets below.

use std::net::Ipv4Addr;

use super::bytes::{read_ipv4, read_u16, write_ipv4, write_u16};
use super::ethernet::Address;
use super::{EtherType, WireError};

mod field {
    use core::ops::Range;
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: usize = 14;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: usize = 24;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;
/// ARP hardware type for Ethernet.
pub const HTYPE_ETHERNET: u16 = 1;

/// ARP operation code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Operation(pub u16);

#[allow(non_upper_case_globals)] // enum-like constants, as EtherType
impl Operation {
    pub const Request: Operation = Operation(1);
    pub const Reply: Operation = Operation(2);
}

/// A view of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Checks the buffer holds 28 bytes and that the packet is for Ethernet
    /// and IPv4 addresses (htype 1, ptype 0x0800, hlen 6, plen 4).
    pub fn new_checked(buffer: T) -> Result<Packet<T>, WireError> {
        let p = Packet::new_unchecked(buffer);
        if p.buffer.as_ref().len() < PACKET_LEN {
            return Err(WireError::Truncated);
        }
        if p.hardware_type() != HTYPE_ETHERNET
            || p.protocol_type() != EtherType::Ipv4
            || p.hardware_len() != 6
            || p.protocol_len() != 4
        {
            return Err(WireError::BadArpFormat);
        }
        Ok(p)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn hardware_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::HTYPE)
    }

    pub fn protocol_type(&self) -> EtherType {
        EtherType(read_u16(self.buffer.as_ref(), field::PTYPE))
    }

    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    pub fn operation(&self) -> Operation {
        Operation(read_u16(self.buffer.as_ref(), field::OPER))
    }

    pub fn source_hardware_addr(&self) -> Address {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::SHA]);
        Address(a)
    }

    pub fn source_protocol_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::SPA)
    }

    pub fn target_hardware_addr(&self) -> Address {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::THA]);
        Address(a)
    }

    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::TPA)
    }

    /// A gratuitous ARP announces the sender's own binding (SPA == TPA).
    pub fn is_gratuitous(&self) -> bool {
        self.source_protocol_addr() == self.target_protocol_addr()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes the fixed Ethernet/IPv4 format fields (htype, ptype, hlen, plen).
    pub fn fill_ethernet_ipv4_format(&mut self) {
        let b = self.buffer.as_mut();
        write_u16(b, field::HTYPE, HTYPE_ETHERNET);
        write_u16(b, field::PTYPE, EtherType::Ipv4.0);
        b[field::HLEN] = 6;
        b[field::PLEN] = 4;
    }

    pub fn set_operation(&mut self, op: Operation) {
        write_u16(self.buffer.as_mut(), field::OPER, op.0);
    }

    pub fn set_source_hardware_addr(&mut self, a: Address) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&a.0);
    }

    pub fn set_source_protocol_addr(&mut self, a: Ipv4Addr) {
        write_ipv4(self.buffer.as_mut(), field::SPA, a);
    }

    pub fn set_target_hardware_addr(&mut self, a: Address) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&a.0);
    }

    pub fn set_target_protocol_addr(&mut self, a: Ipv4Addr) {
        write_ipv4(self.buffer.as_mut(), field::TPA, a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An ARP request "who has 10.0.0.2, tell 10.0.0.1", as on the wire.
    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // htype ptype hlen plen oper
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 10, 0, 0, 1, // sha spa
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 10, 0, 0, 2, // tha tpa
    ];

    #[test]
    fn parse_request() {
        let p = Packet::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(p.hardware_type(), 1);
        assert_eq!(p.protocol_type(), EtherType::Ipv4);
        assert_eq!((p.hardware_len(), p.protocol_len()), (6, 4));
        assert_eq!(p.operation(), Operation::Request);
        assert_eq!(p.source_hardware_addr(), Address([2, 0, 0, 0, 0, 1]));
        assert_eq!(p.source_protocol_addr(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.target_hardware_addr(), Address::ZERO);
        assert_eq!(p.target_protocol_addr(), Ipv4Addr::new(10, 0, 0, 2));
        assert!(!p.is_gratuitous());
    }

    #[test]
    fn build_reply() {
        let mut b = [0u8; 28];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.fill_ethernet_ipv4_format();
        p.set_operation(Operation::Reply);
        p.set_source_hardware_addr(Address([2, 0, 0, 0, 0, 2]));
        p.set_source_protocol_addr(Ipv4Addr::new(10, 0, 0, 2));
        p.set_target_hardware_addr(Address([2, 0, 0, 0, 0, 1]));
        p.set_target_protocol_addr(Ipv4Addr::new(10, 0, 0, 1));
        let want: [u8; 28] = [
            0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 10, 0, 0, 2, 0x02,
            0x00, 0x00, 0x00, 0x00, 0x01, 10, 0, 0, 1,
        ];
        assert_eq!(b, want);
        assert!(Packet::new_checked(&b[..]).is_ok());
    }

    #[test]
    fn refuses_bad_input() {
        assert_eq!(Packet::new_checked(&REQUEST[..27]).unwrap_err(), WireError::Truncated);
        for (at, v) in [(1, 6), (2, 0x86), (4, 8), (5, 16)] {
            let mut b = REQUEST;
            b[at] = v;
            assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), WireError::BadArpFormat, "byte {at}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 0..40), fix in any::<bool>()) {
            if fix && bytes.len() >= 6 {
                bytes[..6].copy_from_slice(&REQUEST[..6]);
            }
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = (p.hardware_type(), p.protocol_type(), p.hardware_len(), p.protocol_len());
                let _ = (p.operation(), p.source_hardware_addr(), p.source_protocol_addr());
                let _ = (p.target_hardware_addr(), p.target_protocol_addr(), p.is_gratuitous());
            }
        }
    }
}
