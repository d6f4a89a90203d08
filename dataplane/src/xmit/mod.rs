//! Packet transmit rewrites: what each IPVS forwarding method does to a frame
//! before it leaves (specs/ipvs.md §4; `K: ip_vs_xmit.c`).
//!
//! - [`dr`]: direct routing, MAC rewrite and TTL only (§4.3).
//! - [`nat`]: masquerading in both directions and the related ICMP errors
//!   (§4.2, §4.7).
//! - [`tun`]: IP-in-IP encapsulation with the outer header of §4.4.
//! - [`icmp`]: turning a received frame into the ICMP error (time exceeded,
//!   port unreachable, fragmentation needed) that goes back to its sender
//!   (§4.1, §4.6).
//!
//! Invariants every function here keeps:
//! - Input is a whole untagged Ethernet II frame in a [`PacketBuf`]: the
//!   Ethernet header at offset 0, IPv4 right after it. The caller has
//!   validated both, but nothing here panics whatever the bytes hold: a frame
//!   that is not as expected is an `Err`.
//! - **On `Err` the packet is unchanged** (every check runs before the first
//!   write), so the caller can still quote the original datagram in an ICMP
//!   error ([`XmitError::TtlExceeded`], [`XmitError::FragNeeded`]) or pass it on.
//! - Checksums stay valid: rewrites of existing fields use RFC 1624
//!   incremental updates (a bad checksum stays bad, as a router's would);
//!   headers built here get a full computation. UDP checksum 0 ("none")
//!   stays 0 through NAT, a computed 0 is sent as 0xffff.
//! - No allocation, no lock, no `unsafe`, no indexing that can panic.
//! - Ethernet padding is left alone by in-place rewrites (DR, NAT) and
//!   removed by the functions that change the frame's length (TUN, ICMP).

#![forbid(unsafe_code)]

pub mod dr;
pub mod icmp;
pub mod nat;
pub mod tun;

pub use nat::{icmp_embedded_key, EmbeddedKey};

use core::fmt;

use crate::buf::PacketBuf;
use crate::wire::{ethernet, ipv4, EtherType};

/// Why a transmit rewrite refused a packet. Small and `Copy`; the lead maps
/// each to a drop counter by [`XmitError::as_str`]. Some are not plain drops:
/// [`XmitError::TtlExceeded`] and [`XmitError::FragNeeded`] ask the caller to
/// answer with [`icmp::time_exceeded`] / [`icmp::frag_needed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum XmitError {
    /// Not an untagged Ethernet II frame carrying IPv4.
    NotIpv4,
    /// The IPv4 header, the transport header or the ICMP message fails its
    /// length checks.
    Malformed,
    /// A fragment: NAT needs the transport header of a whole datagram
    /// (IPVS reassembles first; rvs does not), and a quoted non-first fragment
    /// has no ports.
    Fragment,
    /// NAT of a protocol other than TCP or UDP.
    UnsupportedProto,
    /// TTL ≤ 1: forwarding would expire it. Answer with ICMP time exceeded.
    TtlExceeded,
    /// DF set and the packet does not fit: answer with ICMP fragmentation
    /// needed carrying `mtu` (the MTU left for the inner datagram).
    FragNeeded { mtu: u16 },
    /// The tunnel MTU (route MTU − 20) is below 68: always dropped (§4.4).
    MtuTooSmall,
    /// The encapsulated packet would exceed 65535 bytes.
    TooBig,
    /// Not enough headroom in front of the frame to prepend a header.
    NoHeadroom,
    /// Not an ICMP error of type 3, 4 or 11 (the only ones IPVS relates to a
    /// connection, §4.7).
    NotIcmpError,
    /// The ICMP checksum of a related ICMP error is wrong (IPVS drops these).
    IcmpBadChecksum,
    /// RFC 1122 §3.2.2 forbids an ICMP error about this packet (an ICMP error,
    /// a non-first fragment, a broadcast/multicast destination, a source that
    /// is not one host).
    IcmpSuppressed,
}

impl XmitError {
    /// Every variant (`FragNeeded` with mtu 0), for registering counters.
    pub const ALL: [XmitError; 12] = [
        XmitError::NotIpv4,
        XmitError::Malformed,
        XmitError::Fragment,
        XmitError::UnsupportedProto,
        XmitError::TtlExceeded,
        XmitError::FragNeeded { mtu: 0 },
        XmitError::MtuTooSmall,
        XmitError::TooBig,
        XmitError::NoHeadroom,
        XmitError::NotIcmpError,
        XmitError::IcmpBadChecksum,
        XmitError::IcmpSuppressed,
    ];

    /// Stable snake_case name, used as a drop-reason label.
    pub const fn as_str(self) -> &'static str {
        match self {
            XmitError::NotIpv4 => "not_ipv4",
            XmitError::Malformed => "malformed",
            XmitError::Fragment => "fragment",
            XmitError::UnsupportedProto => "unsupported_proto",
            XmitError::TtlExceeded => "ttl_exceeded",
            XmitError::FragNeeded { .. } => "frag_needed",
            XmitError::MtuTooSmall => "mtu_too_small",
            XmitError::TooBig => "too_big",
            XmitError::NoHeadroom => "no_headroom",
            XmitError::NotIcmpError => "not_icmp_error",
            XmitError::IcmpBadChecksum => "icmp_bad_checksum",
            XmitError::IcmpSuppressed => "icmp_suppressed",
        }
    }
}

impl fmt::Display for XmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XmitError::FragNeeded { mtu } => write!(f, "frag_needed (mtu {mtu})"),
            e => f.write_str(e.as_str()),
        }
    }
}

impl std::error::Error for XmitError {}

/// Sets the Ethernet destination and source MACs (the next hop's and the
/// egress port's). The last step of every forwarding method.
pub fn set_macs<B: PacketBuf>(pkt: &mut B, dst: [u8; 6], src: [u8; 6]) -> Result<(), XmitError> {
    let hdr = pkt.data_mut().get_mut(..12).ok_or(XmitError::NotIpv4)?;
    let (d, s) = hdr.split_at_mut(6);
    d.copy_from_slice(&dst);
    s.copy_from_slice(&src);
    Ok(())
}

/// The IPv4 bytes of an untagged Ethernet II frame.
fn ipv4_bytes(frame: &[u8]) -> Result<&[u8], XmitError> {
    match frame.get(12..14) {
        Some(&[a, b]) if u16::from_be_bytes([a, b]) == EtherType::Ipv4.0 => {}
        _ => return Err(XmitError::NotIpv4),
    }
    frame.get(ethernet::HEADER_LEN..).ok_or(XmitError::NotIpv4)
}

/// A checked IPv4 view of an untagged Ethernet II frame.
pub(crate) fn ipv4_view(frame: &[u8]) -> Result<ipv4::Packet<&[u8]>, XmitError> {
    ipv4::Packet::new_checked(ipv4_bytes(frame)?).map_err(|_| XmitError::Malformed)
}

/// A checked, mutable IPv4 view of an untagged Ethernet II frame.
pub(crate) fn ipv4_view_mut(frame: &mut [u8]) -> Result<ipv4::Packet<&mut [u8]>, XmitError> {
    ipv4_bytes(frame)?;
    let b = frame.get_mut(ethernet::HEADER_LEN..).ok_or(XmitError::NotIpv4)?;
    ipv4::Packet::new_checked(b).map_err(|_| XmitError::Malformed)
}

/// The forwarding TTL rule (§4.1, RFC 1812 §5.3.1): a packet whose TTL would
/// reach 0 is not forwarded.
pub(crate) fn check_ttl<T: AsRef<[u8]>>(ip: &ipv4::Packet<T>) -> Result<(), XmitError> {
    if ip.ttl() <= 1 {
        return Err(XmitError::TtlExceeded);
    }
    Ok(())
}

/// The big-endian word at `at`, if the slice holds it.
pub(crate) fn read16(b: &[u8], at: usize) -> Option<u16> {
    match b.get(at..at.checked_add(2)?)? {
        [x, y] => Some(u16::from_be_bytes([*x, *y])),
        _ => None,
    }
}

/// Writes the big-endian word at `at`; false (nothing written) if the slice
/// is too short.
pub(crate) fn write16(b: &mut [u8], at: usize, v: u16) -> bool {
    match at.checked_add(2).and_then(|end| b.get_mut(at..end)) {
        Some(w) => {
            w.copy_from_slice(&v.to_be_bytes());
            true
        }
        None => false,
    }
}

/// Shared helpers for the golden tests of every xmit file: frames built with
/// etherparse, and checks made with etherparse (an independent decoder).
#[cfg(test)]
pub(crate) mod testutil {
    use std::net::Ipv4Addr;

    use etherparse::{IpNumber, Ipv4Header, PacketBuilder, TcpHeader, UdpHeader};

    pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
    pub const LB_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
    pub const RS_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x03];
    pub const CIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
    pub const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
    pub const RIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);
    pub const ROUTER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
    pub const CPORT: u16 = 40000;
    pub const VPORT: u16 = 80;
    pub const DPORT: u16 = 8080;
    pub const PAYLOAD: &[u8] = b"GET / HTTP/1.0\r\n\r\n";

    pub fn ipv4_header(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, proto: IpNumber) -> Ipv4Header {
        let mut h = Ipv4Header::new(0, ttl, proto, src.octets(), dst.octets()).unwrap();
        h.identification = 0x1234;
        h
    }

    /// An Ethernet frame carrying TCP src:sp → dst:dp with PAYLOAD.
    pub fn tcp_frame(src: Ipv4Addr, sp: u16, dst: Ipv4Addr, dp: u16, ttl: u8) -> Vec<u8> {
        tcp_frame_with(src, sp, dst, dp, ttl, PAYLOAD)
    }

    /// [`tcp_frame`] with another payload.
    pub fn tcp_frame_with(src: Ipv4Addr, sp: u16, dst: Ipv4Addr, dp: u16, ttl: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC)
            .ip(etherparse::IpHeaders::Ipv4(ipv4_header(src, dst, ttl, IpNumber::TCP), Default::default()))
            .tcp(sp, dp, 0x0102_0304, 29200)
            .ack(0x0a0b_0c0d)
            .write(&mut out, payload)
            .unwrap();
        out
    }

    /// An Ethernet frame carrying UDP src:sp → dst:dp with PAYLOAD; checksum
    /// zeroed ("none") when `zero_csum`.
    pub fn udp_frame(src: Ipv4Addr, sp: u16, dst: Ipv4Addr, dp: u16, ttl: u8, zero_csum: bool) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC)
            .ip(etherparse::IpHeaders::Ipv4(ipv4_header(src, dst, ttl, IpNumber::UDP), Default::default()))
            .udp(sp, dp)
            .write(&mut out, PAYLOAD)
            .unwrap();
        if zero_csum {
            out[14 + 20 + 6] = 0;
            out[14 + 20 + 7] = 0;
        }
        out
    }

    /// An Ethernet frame carrying an ICMP error (type, code) from `src` to
    /// `dst` that quotes `quoted` (an IPv4 datagram, cut to `quote_len`).
    pub fn icmp_error_frame(
        src: Ipv4Addr,
        dst: Ipv4Addr,
        icmp_type: u8,
        code: u8,
        quoted: &[u8],
        quote_len: usize,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC)
            .ip(etherparse::IpHeaders::Ipv4(ipv4_header(src, dst, 60, IpNumber::ICMP), Default::default()))
            .icmpv4_raw(icmp_type, code, [0, 0, 0x05, 0xdc])
            .write(&mut out, &quoted[..quote_len.min(quoted.len())])
            .unwrap();
        out
    }

    /// The IPv4 datagram of a frame.
    pub fn ip_of(frame: &[u8]) -> &[u8] {
        &frame[14..]
    }

    /// Decoded IPv4 header of a datagram, asserting its checksum.
    pub fn ipv4_checked(dgram: &[u8]) -> (Ipv4Header, &[u8]) {
        let (h, rest) = Ipv4Header::from_slice(dgram).unwrap();
        assert_eq!(h.header_checksum, h.calc_header_checksum(), "IPv4 header checksum");
        let plen = usize::from(h.total_len) - h.header_len();
        (h, &rest[..plen])
    }

    /// Asserts the TCP or UDP checksum of `seg` (a whole segment) over the
    /// pseudo-header of `ip`; returns (sport, dport). UDP checksum 0 passes.
    pub fn assert_l4_checksum(ip: &Ipv4Header, seg: &[u8]) -> (u16, u16) {
        match ip.protocol {
            IpNumber::TCP => {
                let (h, payload) = TcpHeader::from_slice(seg).unwrap();
                assert_eq!(h.checksum, h.calc_checksum_ipv4(ip, payload).unwrap(), "TCP checksum");
                (h.source_port, h.destination_port)
            }
            IpNumber::UDP => {
                let (h, payload) = UdpHeader::from_slice(seg).unwrap();
                if h.checksum != 0 {
                    assert_eq!(h.checksum, h.calc_checksum_ipv4(ip, payload).unwrap(), "UDP checksum");
                }
                (h.source_port, h.destination_port)
            }
            p => panic!("not TCP/UDP: {p:?}"),
        }
    }

    /// Asserts the ICMP checksum of a whole ICMP message. The sum is written
    /// out here rather than taken from crate::checksum or etherparse (whose
    /// typed ICMP headers drop the unused bytes 4..8 of some types).
    pub fn assert_icmp_checksum(msg: &[u8]) {
        let mut s: u64 = 0;
        for (i, b) in msg.iter().enumerate() {
            s += if i % 2 == 0 { u64::from(*b) << 8 } else { u64::from(*b) };
        }
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        assert_eq!(s, 0xffff, "ICMP checksum");
    }

    /// The indices at which two equal-length slices differ.
    pub fn diff(a: &[u8], b: &[u8]) -> Vec<usize> {
        assert_eq!(a.len(), b.len());
        (0..a.len()).filter(|&i| a[i] != b[i]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use crate::buf::VecBuf;

    #[test]
    fn error_labels_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for e in XmitError::ALL {
            let s = e.as_str();
            assert!(s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'), "{s}");
            assert!(seen.insert(s), "duplicate label {s}");
        }
        assert_eq!(XmitError::FragNeeded { mtu: 1480 }.to_string(), "frag_needed (mtu 1480)");
        assert_eq!(XmitError::NoHeadroom.to_string(), "no_headroom");
    }

    #[test]
    fn set_macs_and_short_frames() {
        let f = tcp_frame(CIP, CPORT, VIP, VPORT, 64);
        let mut b = VecBuf::new(&f, 0);
        set_macs(&mut b, RS_MAC, LB_MAC).unwrap();
        assert_eq!(&b.as_bytes()[..6], &RS_MAC);
        assert_eq!(&b.as_bytes()[6..12], &LB_MAC);
        assert_eq!(&b.as_bytes()[12..], &f[12..]);
        let mut short = VecBuf::new(&f[..11], 0);
        assert_eq!(set_macs(&mut short, RS_MAC, LB_MAC), Err(XmitError::NotIpv4));
        assert_eq!(short.as_bytes(), &f[..11]);
    }

    #[test]
    fn word_helpers_are_bounded() {
        let mut b = [1u8, 2, 3];
        assert_eq!(read16(&b, 1), Some(0x0203));
        assert_eq!(read16(&b, 2), None);
        assert_eq!(read16(&b, usize::MAX), None);
        assert!(write16(&mut b, 0, 0xabcd));
        assert!(!write16(&mut b, 2, 0));
        assert!(!write16(&mut b, usize::MAX, 0));
        assert_eq!(b, [0xab, 0xcd, 3]);
    }
}
