//! Flow ownership: which worker a packet's flow belongs to, so that every
//! packet of a connection (and of a client's persistence templates) meets the
//! one worker whose table holds it.
use std::net::Ipv4Addr;

use super::PROTO_ICMP;
use crate::snapshot::Snapshot;
use crate::wire::{ethernet, ipv4, EtherType};
use crate::xmit;

/// The worker that owns a packet's flow, or None when any worker may handle it
/// (routed traffic). Client → VIP packets are owned by their source, NAT
/// replies by their destination, related ICMP by the client it quotes.
pub fn flow_owner(data: &[u8], mark: u32, snap: &Snapshot, workers: usize) -> Option<usize> {
    if workers <= 1 || !snap.has_services() {
        return None;
    }
    let eth = ethernet::Frame::new_checked(data).ok()?;
    if eth.raw_ethertype() != EtherType::Ipv4 {
        return None;
    }
    let ip = ipv4::Packet::new_checked(eth.payload()).ok()?;
    let (src, dst, proto) = (ip.src_addr(), ip.dst_addr(), ip.protocol().0);
    let l4 = ip.payload();
    let port = |at: usize| l4.get(at..at + 2).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    let client = if proto == PROTO_ICMP {
        let key = xmit::nat::icmp_embedded_key(data)?;
        // Quoted packet from a client (towards a RS) or towards a client (from a VIP/RS).
        if snap.is_vip(key.dst) || snap.is_nat_source(key.proto, key.dst, key.dport) {
            key.src
        } else {
            key.dst
        }
    } else if mark != 0 || snap.is_vip(dst) {
        src
    } else if snap.is_nat_source(proto, src, port(0)) {
        dst
    } else {
        return None;
    };
    Some(owner_of(client, snap.owner_prefix, workers))
}

/// The worker owning flows of `client` (a hash of the address masked to
/// `prefix`, so persistence templates of a client subnet stay on one worker).
#[inline]
pub fn owner_of(client: Ipv4Addr, prefix: u8, workers: usize) -> usize {
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix.min(32))) };
    let h = (u32::from(client) & mask).wrapping_mul(0x9E37_79B1);
    ((u64::from(h) * workers as u64) >> 32) as usize
}
