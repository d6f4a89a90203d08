//! The header parsers of the load-balancing path: Ethernet + IPv4 + the
//! first bytes of TCP/UDP into a [`Flow`], by a fixed-offset path for the
//! frames nearly every packet is ([`parse_common`]) and a general one for the
//! rest ([`parse_general`]), with the drop reason of each refused frame.
use std::net::Ipv4Addr;

use super::PATH_MTU;
use crate::buf::PacketBuf;
use crate::service::{PROTO_TCP, PROTO_UDP};
use crate::verdict::DropReason;
use crate::wire::{ethernet, ipv4, EtherType};

/// What the classifier needs to know about an IPv4 packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Flow {
    pub(super) proto: u8,
    pub(super) src: Ipv4Addr,
    pub(super) dst: Ipv4Addr,
    pub(super) sport: u16,
    pub(super) dport: u16,
    pub(super) tcp_flags: u8,
    pub(super) fragment: bool,
    /// DF set and longer than the path MTU: §4.1's frag-needed case for DR
    /// and NAT (read once here instead of re-parsing at transmit).
    pub(super) too_big: bool,
}

/// Parses Ethernet + IPv4 + the first 4 bytes of TCP/UDP (and TCP flags).
/// Returns the flow and trims Ethernet padding.
#[inline]
pub(super) fn parse<B: PacketBuf>(pkt: &mut B) -> Result<Flow, DropReason> {
    let device_checked = pkt.ip_checksum_verified();
    let (flow, frame_len) = match parse_common(pkt.data(), device_checked) {
        Some(x) => x,
        None => parse_general(pkt.data(), device_checked)?,
    };
    pkt.trim_to(frame_len);
    Ok(flow)
}

/// A source address Linux drops before IPVS sees the packet
/// (ip_route_input_slow's martian check).
#[inline]
fn martian(src: Ipv4Addr) -> bool {
    src.is_unspecified() || src.is_broadcast() || src.is_multicast() || src.is_loopback()
}

/// Every IPv4 frame [`parse_common`] leaves (header options, fragments,
/// other protocols), and the drop reason for the rest.
fn parse_general(data: &[u8], device_checked: Option<bool>) -> Result<(Flow, usize), DropReason> {
    let eth = ethernet::Frame::new_checked(data).map_err(|_| DropReason::EthTruncated)?;
    if eth.raw_ethertype() != EtherType::Ipv4 {
        return Err(DropReason::NotIpv4);
    }
    let ip = ipv4::Packet::new_checked(eth.payload()).map_err(|_| DropReason::Ipv4Invalid)?;
    // The device's verdict where it checked (RX offload), else ours.
    if !device_checked.unwrap_or_else(|| ip.verify_checksum()) {
        return Err(DropReason::Ipv4BadChecksum);
    }
    let proto = ip.protocol().0;
    let l4 = ip.payload();
    let fragment = ip.is_fragment();
    let first = ip.frag_offset() == 0;
    let (sport, dport, tcp_flags) = match proto {
        PROTO_TCP | PROTO_UDP if first => {
            if !fragment {
                // Whole datagrams must carry a sane transport header, or a junk
                // SYN could create a connection the transmitter then refuses.
                let ok = if proto == PROTO_TCP {
                    let doff = l4.get(12).map_or(0, |b| usize::from(b >> 4) * 4);
                    doff >= 20 && doff <= l4.len()
                } else {
                    let ulen = l4.get(4..6).map_or(0, |b| usize::from(u16::from_be_bytes([b[0], b[1]])));
                    ulen >= 8 && ulen <= l4.len()
                };
                if !ok {
                    return Err(DropReason::L4Truncated);
                }
            }
            match (l4.first_chunk::<4>(), l4.get(13)) {
                (Some(p), f) => (
                    u16::from_be_bytes([p[0], p[1]]),
                    u16::from_be_bytes([p[2], p[3]]),
                    if proto == PROTO_TCP { f.copied().unwrap_or(0) } else { 0 },
                ),
                (None, _) => return Err(DropReason::L4Truncated),
            }
        }
        _ => (0, 0, 0),
    };
    let src = ip.src_addr();
    if martian(src) {
        return Err(DropReason::MartianSource);
    }
    let too_big = ip.dont_frag() && ip.total_len() > PATH_MTU;
    let flow = Flow { proto, src, dst: ip.dst_addr(), sport, dport, tcp_flags, fragment, too_big };
    Ok((flow, ethernet::HEADER_LEN + ip.total_len() as usize))
}

/// The frame nearly every packet is, read at fixed offsets: an IPv4 header
/// without options, a correct header checksum, a whole (unfragmented) TCP or
/// UDP datagram with a sane transport header, a unicast source. Gives the
/// flow and frame length [`parse`]'s general path gives for the same frame
/// (`parse::tests::common_parse_equals_the_general_one`); None for anything else,
/// which the general path then takes, with its drop reasons.
#[inline]
fn parse_common(d: &[u8], device_checked: Option<bool>) -> Option<(Flow, usize)> {
    const L4: usize = ethernet::HEADER_LEN + 20;
    let h = d.first_chunk::<L4>()?;
    if h[12..14] != [0x08, 0x00] || h[14] != 0x45 {
        return None;
    }
    let total_len = u16::from_be_bytes([h[16], h[17]]);
    let frame_len = ethernet::HEADER_LEN + usize::from(total_len);
    let frag = u16::from_be_bytes([h[20], h[21]]);
    let proto = h[23];
    // Not a fragment (MF clear, offset 0); TCP or UDP.
    if frag & 0x3fff != 0 || (proto != PROTO_TCP && proto != PROTO_UDP) {
        return None;
    }
    let ip = h.last_chunk::<20>()?;
    if !device_checked.unwrap_or_else(|| crate::checksum::ipv4_header_ok(ip)) {
        return None;
    }
    // The datagram within the frame, at least its header long.
    let l4 = d.get(L4..frame_len)?;
    let (ports, tcp_flags) = if proto == PROTO_TCP {
        let t = l4.first_chunk::<20>()?;
        let doff = usize::from(t[12] >> 4) * 4;
        if doff < 20 || doff > l4.len() {
            return None;
        }
        ([t[0], t[1], t[2], t[3]], t[13])
    } else {
        let u = l4.first_chunk::<8>()?;
        let ulen = usize::from(u16::from_be_bytes([u[4], u[5]]));
        if ulen < 8 || ulen > l4.len() {
            return None;
        }
        ([u[0], u[1], u[2], u[3]], 0)
    };
    let src = Ipv4Addr::new(h[26], h[27], h[28], h[29]);
    if martian(src) {
        return None; // the general path drops it
    }
    let flow = Flow {
        proto,
        src,
        dst: Ipv4Addr::new(h[30], h[31], h[32], h[33]),
        sport: u16::from_be_bytes([ports[0], ports[1]]),
        dport: u16::from_be_bytes([ports[2], ports[3]]),
        tcp_flags,
        fragment: false,
        too_big: frag & 0x4000 != 0 && total_len > PATH_MTU,
    };
    Some((flow, frame_len))
}

#[cfg(test)]
mod tests;
