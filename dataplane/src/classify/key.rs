//! The packet fields the classifier looks at, read once per packet.
//!
//! Only IPv4 datagrams whose header passes the checks Linux `ip_rcv` makes
//! before `NF_INET_PRE_ROUTING` (version, IHL, total length inside the frame)
//! have a key: everything else never reaches iptables' PREROUTING chain and
//! so is matched by no rule (mark 0). The frame may carry one 802.1Q tag.

use crate::wire::{ethernet, ipv4, EtherType};

/// Value of a port field when the packet has no ports: a non-first fragment,
/// a protocol without ports, or an L4 header too short to hold one.
pub const NO_PORT: u32 = 1 << 16;

/// What the classifier matches on. Ports are `NO_PORT` when absent (see
/// above); iptables' tcp, udp and multiport matches never match then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    pub src: u32,
    pub dst: u32,
    pub proto: u8,
    pub sport: u32,
    pub dport: u32,
    /// IPv4 total length: what iptables' byte counters add up (`skb->len`).
    pub len: u16,
}

/// Protocols whose first four L4 bytes are source and destination port, with
/// the header length iptables' matches read before looking at them.
const fn l4_header_len(proto: u8) -> Option<usize> {
    match proto {
        6 => Some(20),        // tcp: struct tcphdr
        17 | 136 => Some(8),  // udp, udplite
        132 | 33 => Some(12), // sctp common header, dccp generic header
        _ => None,
    }
}

/// [`l4_header_len`] by protocol number, 0 for none: a load, not a branch
/// per protocol.
const L4_HEADER_LEN: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut p = 0;
    while p < 256 {
        if let Some(n) = l4_header_len(p as u8) {
            t[p] = n as u8;
        }
        p += 1;
    }
    t
};

impl Key {
    /// Reads the key of an Ethernet frame, or `None` for a frame iptables
    /// would never see (not IPv4, or an IPv4 header `ip_rcv` rejects).
    #[inline]
    pub fn parse(frame: &[u8]) -> Option<Key> {
        // The common frame (untagged IPv4, 20-byte header) read at fixed
        // offsets; the same checks as `parse_any`, which takes the rest.
        if let Some(h) = frame.first_chunk::<34>() {
            if h[12..15] == [0x08, 0x00, 0x45] {
                let total = u16::from_be_bytes([h[16], h[17]]);
                if total < 20 || usize::from(total) > frame.len() - 14 {
                    return None; // ip_rcv drops it
                }
                let proto = h[23];
                let need = usize::from(L4_HEADER_LEN[usize::from(proto)]);
                let first = u16::from_be_bytes([h[20], h[21]]) & 0x1fff == 0;
                let (mut sport, mut dport) = (NO_PORT, NO_PORT);
                if first && need != 0 && usize::from(total) - 20 >= need {
                    if let Some(&[a, b, c, d]) = frame.get(34..38) {
                        sport = u32::from(u16::from_be_bytes([a, b]));
                        dport = u32::from(u16::from_be_bytes([c, d]));
                    }
                }
                return Some(Key {
                    src: u32::from_be_bytes([h[26], h[27], h[28], h[29]]),
                    dst: u32::from_be_bytes([h[30], h[31], h[32], h[33]]),
                    proto,
                    sport,
                    dport,
                    len: total,
                });
            }
        }
        Key::parse_any(frame)
    }

    /// [`Key::parse`] through the typed views: any frame.
    pub(super) fn parse_any(frame: &[u8]) -> Option<Key> {
        let eth = ethernet::Frame::new_checked(frame).ok()?;
        if eth.ethertype() != EtherType::Ipv4 {
            return None;
        }
        let ip = ipv4::Packet::new_checked(eth.payload()).ok()?;
        let proto = ip.protocol().0;
        let (mut sport, mut dport) = (NO_PORT, NO_PORT);
        // iptables: port matches fail on any fragment but the first
        // (`par->fragoff != 0`), and on a header too short to read.
        if ip.frag_offset() == 0 {
            if let Some(need) = l4_header_len(proto) {
                let l4 = ip.payload();
                if l4.len() >= need {
                    if let Some(p) = l4.first_chunk::<4>() {
                        sport = u32::from(u16::from_be_bytes([p[0], p[1]]));
                        dport = u32::from(u16::from_be_bytes([p[2], p[3]]));
                    }
                }
            }
        }
        Some(Key {
            src: u32::from(ip.src_addr()),
            dst: u32::from(ip.dst_addr()),
            proto,
            sport,
            dport,
            len: ip.total_len(),
        })
    }
}
