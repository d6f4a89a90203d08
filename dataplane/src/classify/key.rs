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

impl Key {
    /// Reads the key of an Ethernet frame, or `None` for a frame iptables
    /// would never see (not IPv4, or an IPv4 header `ip_rcv` rejects).
    #[inline]
    pub fn parse(frame: &[u8]) -> Option<Key> {
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
