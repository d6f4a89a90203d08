//! Ethernet II frame, with awareness of one IEEE 802.1Q tag.
//!
//! A tagged frame carries `0x8100` at the ethertype position, then the 2-byte
//! TCI and the real ethertype. [`Frame::ethertype`] and [`Frame::payload`] look
//! through a single tag, so protocol code does not care whether the port is
//! tagged; [`Frame::raw_ethertype`] and [`Frame::vlan_id`] expose the tag.
//! Stacked tags (QinQ) are not looked through: the inner ethertype is then
//! `Vlan` and the frame is not IP.

use core::fmt;

use super::bytes::{read_u16, write_u16};
use super::{EtherType, WireError};

mod field {
    use core::ops::Range;
    pub const DESTINATION: Range<usize> = 0..6;
    pub const SOURCE: Range<usize> = 6..12;
    pub const ETHERTYPE: usize = 12;
    /// 802.1Q tag control information (PCP 3 bits, DEI 1, VID 12).
    pub const VLAN_TCI: usize = 14;
    pub const VLAN_ETHERTYPE: usize = 16;
}

/// Length of an untagged Ethernet II header.
pub const HEADER_LEN: usize = 14;
/// Length of a header with one 802.1Q tag.
pub const VLAN_HEADER_LEN: usize = 18;

/// A 48-bit MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Address(pub [u8; 6]);

impl Address {
    pub const BROADCAST: Address = Address([0xff; 6]);
    pub const ZERO: Address = Address([0; 6]);

    /// The address in `b`, which must be 6 bytes long.
    pub fn from_bytes(b: &[u8]) -> Option<Address> {
        <[u8; 6]>::try_from(b).ok().map(Address)
    }

    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    pub const fn is_broadcast(&self) -> bool {
        matches!(self.0, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
    }

    /// Group bit set (broadcast included).
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

/// A view of an Ethernet II frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps `buffer` without validation.
    pub const fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wraps `buffer` after checking it holds the whole header (18 bytes when
    /// the frame carries an 802.1Q tag).
    pub fn new_checked(buffer: T) -> Result<Frame<T>, WireError> {
        let f = Frame::new_unchecked(buffer);
        let b = f.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if f.is_vlan_tagged() && b.len() < VLAN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(f)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn dst_addr(&self) -> Address {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::DESTINATION]);
        Address(a)
    }

    pub fn src_addr(&self) -> Address {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::SOURCE]);
        Address(a)
    }

    /// The ethertype at bytes 12..14 (`Vlan` for a tagged frame).
    pub fn raw_ethertype(&self) -> EtherType {
        EtherType(read_u16(self.buffer.as_ref(), field::ETHERTYPE))
    }

    /// Whether one 802.1Q tag follows the addresses.
    pub fn is_vlan_tagged(&self) -> bool {
        self.raw_ethertype() == EtherType::Vlan
    }

    /// The ethertype of the payload, looking through one 802.1Q tag.
    pub fn ethertype(&self) -> EtherType {
        if self.is_vlan_tagged() {
            EtherType(read_u16(self.buffer.as_ref(), field::VLAN_ETHERTYPE))
        } else {
            self.raw_ethertype()
        }
    }

    /// The 12-bit VLAN ID of a tagged frame.
    pub fn vlan_id(&self) -> Option<u16> {
        self.vlan_tci().map(|t| t & 0x0fff)
    }

    /// The 3-bit priority code point of a tagged frame.
    pub fn vlan_pcp(&self) -> Option<u8> {
        self.vlan_tci().map(|t| (t >> 13) as u8)
    }

    /// The whole tag control information of a tagged frame.
    pub fn vlan_tci(&self) -> Option<u16> {
        self.is_vlan_tagged().then(|| read_u16(self.buffer.as_ref(), field::VLAN_TCI))
    }

    /// Header length: 14, or 18 with an 802.1Q tag.
    pub fn header_len(&self) -> usize {
        if self.is_vlan_tagged() {
            VLAN_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// The bytes after the header (may include Ethernet padding: trim with the
    /// L3 length).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    pub fn set_dst_addr(&mut self, a: Address) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&a.0);
    }

    pub fn set_src_addr(&mut self, a: Address) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&a.0);
    }

    /// Sets bytes 12..14. Setting or clearing `Vlan` changes the header length.
    pub fn set_raw_ethertype(&mut self, t: EtherType) {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE, t.0);
    }

    /// Sets the payload's ethertype: the inner one of a tagged frame.
    pub fn set_ethertype(&mut self, t: EtherType) {
        let at = if self.is_vlan_tagged() { field::VLAN_ETHERTYPE } else { field::ETHERTYPE };
        write_u16(self.buffer.as_mut(), at, t.0);
    }

    /// Sets the VLAN ID of a tagged frame, keeping PCP/DEI; false if untagged.
    pub fn set_vlan_id(&mut self, vid: u16) -> bool {
        match self.vlan_tci() {
            Some(tci) => {
                let tci = (tci & 0xf000) | (vid & 0x0fff);
                write_u16(self.buffer.as_mut(), field::VLAN_TCI, tci);
                true
            }
            None => false,
        }
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let at = self.header_len();
        &mut self.buffer.as_mut()[at..]
    }

    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Frame<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;
    use proptest::prelude::*;

    const SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
    const DST: [u8; 6] = [0x02, 0, 0, 0, 0, 2];

    fn udp_frame(vlan: Option<u16>) -> Vec<u8> {
        let b = PacketBuilder::ethernet2(SRC, DST);
        let mut out = Vec::new();
        match vlan {
            Some(v) => b
                .single_vlan(etherparse::VlanId::try_new(v).unwrap())
                .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                .udp(1000, 53)
                .write(&mut out, b"hello")
                .unwrap(),
            None => b.ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64).udp(1000, 53).write(&mut out, b"hello").unwrap(),
        }
        out
    }

    #[test]
    fn untagged() {
        let bytes = udp_frame(None);
        let f = Frame::new_checked(&bytes[..]).unwrap();
        assert_eq!(f.src_addr(), Address(SRC));
        assert_eq!(f.dst_addr(), Address(DST));
        assert_eq!(f.ethertype(), EtherType::Ipv4);
        assert_eq!(f.raw_ethertype(), EtherType::Ipv4);
        assert!(!f.is_vlan_tagged());
        assert_eq!(f.vlan_id(), None);
        assert_eq!(f.header_len(), 14);
        assert_eq!(f.payload(), &bytes[14..]);
        assert_eq!(f.payload().len(), 20 + 8 + 5);
    }

    #[test]
    fn tagged() {
        let bytes = udp_frame(Some(42));
        let f = Frame::new_checked(&bytes[..]).unwrap();
        assert!(f.is_vlan_tagged());
        assert_eq!(f.raw_ethertype(), EtherType::Vlan);
        assert_eq!(f.ethertype(), EtherType::Ipv4);
        assert_eq!(f.vlan_id(), Some(42));
        assert_eq!(f.vlan_pcp(), Some(0));
        assert_eq!(f.header_len(), 18);
        assert_eq!(f.payload(), &bytes[18..]);
    }

    #[test]
    fn setters() {
        let mut bytes = udp_frame(Some(7));
        let mut f = Frame::new_checked(&mut bytes[..]).unwrap();
        f.set_src_addr(Address(DST));
        f.set_dst_addr(Address::BROADCAST);
        f.set_ethertype(EtherType::Arp);
        assert!(f.set_vlan_id(100));
        assert_eq!(f.ethertype(), EtherType::Arp);
        assert_eq!(f.raw_ethertype(), EtherType::Vlan);
        assert!(f.dst_addr().is_broadcast());
        let parsed = etherparse::SlicedPacket::from_ethernet(&bytes).unwrap();
        match parsed.link.unwrap() {
            etherparse::LinkSlice::Ethernet2(e) => {
                assert_eq!(e.source(), DST);
                assert_eq!(e.destination(), [0xff; 6]);
            }
            _ => panic!("not ethernet"),
        }
        match parsed.vlan.unwrap() {
            etherparse::VlanSlice::SingleVlan(v) => {
                assert_eq!(v.vlan_identifier().value(), 100);
                assert_eq!(v.ether_type(), etherparse::EtherType::ARP);
            }
            _ => panic!("not single vlan"),
        }
    }

    #[test]
    fn truncated() {
        assert_eq!(Frame::new_checked(&[0u8; 13][..]).unwrap_err(), WireError::Truncated);
        let mut tagged = [0u8; 17];
        tagged[12] = 0x81;
        assert_eq!(Frame::new_checked(&tagged[..]).unwrap_err(), WireError::Truncated);
        assert!(Frame::new_checked(&[0u8; 14][..]).is_ok());
    }

    #[test]
    fn address_kinds() {
        assert!(Address::BROADCAST.is_multicast());
        assert!(Address([0x01, 0, 0x5e, 0, 0, 1]).is_multicast());
        assert!(Address(SRC).is_unicast());
        assert_eq!(Address(SRC).to_string(), "02:00:00:00:00:01");
        assert_eq!(Address::from_bytes(&SRC), Some(Address(SRC)));
        assert_eq!(Address::from_bytes(&SRC[..5]), None);
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40), tag in any::<bool>()) {
            let mut bytes = bytes;
            if tag && bytes.len() > 13 {
                bytes[12] = 0x81;
                bytes[13] = 0x00;
            }
            if let Ok(f) = Frame::new_checked(&bytes[..]) {
                let _ = (f.dst_addr(), f.src_addr(), f.raw_ethertype(), f.ethertype());
                let _ = (f.vlan_id(), f.vlan_pcp(), f.header_len(), f.payload().len());
                prop_assert_eq!(f.header_len() + f.payload().len(), bytes.len());
            }
        }
    }
}
