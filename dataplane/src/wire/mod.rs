//! Typed views over packet bytes, one header per file (smoltcp `src/wire` style).
//!
//! Every view is a thin wrapper `Packet<T: AsRef<[u8]>>` around a byte buffer:
//!
//! - `new_unchecked(buf)` wraps without looking at the bytes; accessors may then
//!   panic on a short buffer, so use it only on bytes already validated.
//! - `new_checked(buf)` validates the lengths once (buffer against the header,
//!   and the header's own length fields against the buffer). After it returns
//!   `Ok`, **no getter can panic** whatever the bytes hold.
//! - Fields are read and written at fixed offsets (the private `field` module of
//!   each file) with `from_be_bytes`/`to_be_bytes`; nothing is cast to a packed
//!   struct, so there are no unaligned references and no `unsafe`.
//! - Setters exist only when `T: AsMut<[u8]>`. Setters of length fields (IPv4
//!   IHL/total length, TCP data offset, UDP length, the Ethernet ethertype) can
//!   break the `new_checked` invariant; code that changes them owns the bytes
//!   and re-checks if it needs to.
//! - Checksum helpers on the views use [`crate::checksum`]: full computation for
//!   headers we build, RFC 1624 incremental updates for NAT and TTL rewrites.
//!
//! Parse failures are a [`WireError`]: a small `Copy` value whose
//! [`WireError::as_str`] is the stable drop-reason label.

#![forbid(unsafe_code)]

pub mod arp;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod tcp;
pub mod udp;

use core::fmt;

pub use arp::Packet as ArpPacket;
pub use ethernet::{Address as EthernetAddress, Frame as EthernetFrame};
pub use icmp::Packet as Icmpv4Packet;
pub use ipv4::Packet as Ipv4Packet;
pub use tcp::Packet as TcpPacket;
pub use udp::Packet as UdpPacket;

/// Why a buffer was refused by a `new_checked` constructor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireError {
    /// The buffer is shorter than the header, or than a length field says.
    Truncated,
    /// IPv4 version field is not 4.
    BadVersion,
    /// IPv4 IHL below 5 (20 bytes).
    BadHeaderLen,
    /// IPv4 total length smaller than the header.
    BadTotalLen,
    /// TCP data offset below 5 (20 bytes).
    BadDataOffset,
    /// UDP length field smaller than the 8-byte header.
    BadUdpLen,
    /// ARP that is not Ethernet/IPv4 (htype 1, ptype 0x0800, hlen 6, plen 4).
    BadArpFormat,
}

impl WireError {
    /// Every variant, for registering drop-reason counters up front.
    pub const ALL: [WireError; 7] = [
        WireError::Truncated,
        WireError::BadVersion,
        WireError::BadHeaderLen,
        WireError::BadTotalLen,
        WireError::BadDataOffset,
        WireError::BadUdpLen,
        WireError::BadArpFormat,
    ];

    /// Stable snake_case name, used as a drop-reason label. Never change one.
    pub const fn as_str(self) -> &'static str {
        match self {
            WireError::Truncated => "truncated",
            WireError::BadVersion => "bad_ip_version",
            WireError::BadHeaderLen => "bad_ip_header_len",
            WireError::BadTotalLen => "bad_ip_total_len",
            WireError::BadDataOffset => "bad_tcp_data_offset",
            WireError::BadUdpLen => "bad_udp_len",
            WireError::BadArpFormat => "bad_arp_format",
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for WireError {}

/// An Ethernet II ethertype. A newtype rather than an enum so that any value
/// read off the wire is representable; the constants read like variants and
/// can be used as match patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EtherType(pub u16);

#[allow(non_upper_case_globals)] // named like enum variants on purpose, see the type doc
impl EtherType {
    pub const Ipv4: EtherType = EtherType(0x0800);
    pub const Arp: EtherType = EtherType(0x0806);
    /// IEEE 802.1Q VLAN tag.
    pub const Vlan: EtherType = EtherType(0x8100);
    pub const Ipv6: EtherType = EtherType(0x86dd);
}

impl From<u16> for EtherType {
    fn from(v: u16) -> Self {
        EtherType(v)
    }
}

impl From<EtherType> for u16 {
    fn from(v: EtherType) -> Self {
        v.0
    }
}

impl fmt::Display for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:04x}", self.0)
    }
}

/// An IPv4 protocol number. Newtype for the same reason as [`EtherType`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpProto(pub u8);

#[allow(non_upper_case_globals)] // named like enum variants on purpose, see EtherType
impl IpProto {
    pub const Icmp: IpProto = IpProto(1);
    /// IP-in-IP (RFC 2003), the LVS TUN forwarding method.
    pub const Ipip: IpProto = IpProto(4);
    pub const Tcp: IpProto = IpProto(6);
    pub const Udp: IpProto = IpProto(17);
}

impl From<u8> for IpProto {
    fn from(v: u8) -> Self {
        IpProto(v)
    }
}

impl From<IpProto> for u8 {
    fn from(v: IpProto) -> Self {
        v.0
    }
}

impl fmt::Display for IpProto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            IpProto::Icmp => f.write_str("icmp"),
            IpProto::Ipip => f.write_str("ipip"),
            IpProto::Tcp => f.write_str("tcp"),
            IpProto::Udp => f.write_str("udp"),
            IpProto(n) => write!(f, "{n}"),
        }
    }
}

/// Big-endian reads and writes at fixed offsets. The callers' offsets are in
/// range by the `new_checked` invariant.
pub(crate) mod bytes {
    use std::net::Ipv4Addr;

    #[inline]
    pub fn read_u16(b: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([b[at], b[at + 1]])
    }

    #[inline]
    pub fn read_u32(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    #[inline]
    pub fn read_ipv4(b: &[u8], at: usize) -> Ipv4Addr {
        Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
    }

    #[inline]
    pub fn write_u16(b: &mut [u8], at: usize, v: u16) {
        b[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }

    #[inline]
    pub fn write_u32(b: &mut [u8], at: usize, v: u32) {
        b[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }

    #[inline]
    pub fn write_ipv4(b: &mut [u8], at: usize, v: std::net::Ipv4Addr) {
        b[at..at + 4].copy_from_slice(&v.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_labels_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for e in WireError::ALL {
            let s = e.as_str();
            assert!(s.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{s}");
            assert!(seen.insert(s), "duplicate label {s}");
            assert_eq!(e.to_string(), s);
        }
    }

    #[test]
    fn constants_match_iana() {
        assert_eq!(u16::from(EtherType::Ipv4), 0x0800);
        assert_eq!(u16::from(EtherType::Arp), 0x0806);
        assert_eq!(u16::from(EtherType::Vlan), 0x8100);
        assert_eq!(u16::from(EtherType::Ipv6), 0x86dd);
        assert_eq!(u8::from(IpProto::Icmp), 1);
        assert_eq!(u8::from(IpProto::Ipip), 4);
        assert_eq!(u8::from(IpProto::Tcp), 6);
        assert_eq!(u8::from(IpProto::Udp), 17);
        assert_eq!(IpProto::Tcp.to_string(), "tcp");
        assert_eq!(IpProto(47).to_string(), "47");
        assert_eq!(EtherType::Arp.to_string(), "0x0806");
        // Constants work as match patterns.
        let kind = match EtherType(0x0806) {
            EtherType::Ipv4 => "ip",
            EtherType::Arp => "arp",
            _ => "other",
        };
        assert_eq!(kind, "arp");
    }
}
