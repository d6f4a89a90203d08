//! IPv4 forwarding between the appliance's ports: the path every packet that
//! is not load-balanced takes (and, later, the last step of NAT replies).
//!
//! `forward` is a pure function of the packet bytes and an immutable [`Fib`]:
//! validate Ethernet and IPv4, refuse the box's own addresses, route by longest
//! prefix, resolve the next hop's MAC, decrement the TTL with an RFC 1624
//! incremental checksum update and rewrite both MACs.

pub mod neigh;
pub mod route;

use std::net::Ipv4Addr;

use crate::buf::PacketBuf;
use crate::verdict::{DropReason, Verdict};
use crate::wire::{ethernet, ipv4, EtherType};
pub use neigh::NeighborTable;

/// What the box learns at run time, published to the workers by the
/// exception path: neighbours resolved by ARP, and addresses the kernel holds
/// on its tap interfaces beyond the configured ones (a VIP keepalived added).
#[derive(Clone, Debug, Default)]
pub struct Learned {
    pub neighbors: NeighborTable,
    pub local: Vec<Ipv4Addr>,
}

impl Learned {
    #[inline]
    pub fn is_local(&self, a: Ipv4Addr) -> bool {
        self.local.contains(&a)
    }
}
pub use route::{NextHop, Route, RouteTable};

/// One port as forwarding sees it.
#[derive(Clone, Debug)]
pub struct FibPort {
    pub mac: [u8; 6],
    /// The box's own addresses on this port, with their prefix lengths.
    pub addrs: Vec<(Ipv4Addr, u8)>,
}

/// Everything forwarding reads: immutable once built, shared by every worker.
#[derive(Clone, Debug)]
pub struct Fib {
    ports: Vec<FibPort>,
    local: Vec<Ipv4Addr>,
    routes: RouteTable,
    neighbors: NeighborTable,
}

impl Fib {
    /// Builds the table; each port address adds its connected (on-link) route,
    /// as the kernel does.
    pub fn new(ports: Vec<FibPort>, routes: Vec<Route>, neighbors: Vec<(u16, Ipv4Addr, [u8; 6])>) -> Fib {
        let connected = ports.iter().enumerate().flat_map(|(i, p)| {
            p.addrs.iter().map(move |&(a, len)| Route { prefix: a, len, via: None, port: i as u16 })
        });
        let all: Vec<Route> = connected.chain(routes).collect();
        let local = ports.iter().flat_map(|p| p.addrs.iter().map(|a| a.0)).collect();
        Fib { routes: RouteTable::new(all), neighbors: NeighborTable::new(neighbors), local, ports }
    }

    pub fn ports(&self) -> &[FibPort] {
        &self.ports
    }

    pub fn is_local(&self, a: Ipv4Addr) -> bool {
        self.local.contains(&a)
    }

    pub fn routes(&self) -> &RouteTable {
        &self.routes
    }

    pub fn neighbors(&self) -> &NeighborTable {
        &self.neighbors
    }

    /// Where a packet to `dst` leaves, its next hop, and the next hop's MAC
    /// if known: a static `[[neighbor]]` first, then what ARP learned.
    #[inline]
    pub fn resolve(&self, dst: Ipv4Addr, learned: &Learned) -> Result<Hop, DropReason> {
        let hop = self.routes.lookup(dst).ok_or(DropReason::NoRoute)?;
        // Most boxes use one kind of neighbour or the other: skip an empty table.
        let fixed = if self.neighbors.is_empty() { None } else { self.neighbors.lookup(hop.port, hop.next_hop) };
        let mac = fixed.or_else(|| learned.neighbors.lookup(hop.port, hop.next_hop));
        Ok(Hop { port: hop.port, next_hop: hop.next_hop, mac })
    }

    /// The MAC of port `i`.
    #[inline]
    pub fn port_mac(&self, i: u16) -> [u8; 6] {
        self.ports.get(i as usize).map_or([0; 6], |p| p.mac)
    }

    /// The first address of port `i` (the source of tunnels and of the box's own
    /// ICMP errors).
    #[inline]
    pub fn port_addr(&self, i: u16) -> Option<Ipv4Addr> {
        self.ports.get(i as usize).and_then(|p| p.addrs.first()).map(|a| a.0)
    }
}

/// A resolved next hop; `mac` is None while ARP has not answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hop {
    pub port: u16,
    pub next_hop: Ipv4Addr,
    pub mac: Option<[u8; 6]>,
}

impl Hop {
    /// The destination MAC to write now (zero until resolved: the resolver
    /// overwrites it).
    #[inline]
    pub fn mac_or_zero(&self) -> [u8; 6] {
        self.mac.unwrap_or([0; 6])
    }

    /// Send now, or once the next hop is resolved.
    #[inline]
    pub fn verdict(&self) -> Verdict {
        match self.mac {
            Some(_) => Verdict::Forward { port: self.port },
            None => Verdict::Resolve { port: self.port, next_hop: self.next_hop },
        }
    }
}

/// Decides where `pkt` goes and rewrites it for that hop.
#[inline]
pub fn forward<B: PacketBuf>(pkt: &mut B, fib: &Fib, learned: &Learned) -> Verdict {
    let frame_len = {
        let Ok(eth) = ethernet::Frame::new_checked(pkt.data()) else {
            return Verdict::Drop(DropReason::EthTruncated);
        };
        if eth.raw_ethertype() != EtherType::Ipv4 {
            return Verdict::Drop(DropReason::NotIpv4);
        }
        let ip = match ipv4::Packet::new_checked(eth.payload()) {
            Ok(ip) => ip,
            Err(_) => return Verdict::Drop(DropReason::Ipv4Invalid),
        };
        ethernet::HEADER_LEN + ip.total_len() as usize
    };
    // Drop Ethernet padding so the frame we send is exactly header + datagram.
    pkt.trim_to(frame_len);

    let data = pkt.data_mut();
    let (eth_hdr, ip_bytes) = data.split_at_mut(ethernet::HEADER_LEN);
    let mut ip = ipv4::Packet::new_unchecked(ip_bytes);
    if !ip.verify_checksum() {
        return Verdict::Drop(DropReason::Ipv4BadChecksum);
    }
    let dst = ip.dst_addr();
    if fib.is_local(dst) || learned.is_local(dst) {
        return Verdict::Drop(DropReason::Local);
    }
    let hop = match fib.resolve(dst, learned) {
        Ok(h) => h,
        Err(r) => return Verdict::Drop(r),
    };
    let Some(out) = fib.ports.get(hop.port as usize) else {
        return Verdict::Drop(DropReason::NoRoute);
    };
    if ip.ttl() <= 1 {
        return Verdict::Drop(DropReason::TtlExpired);
    }
    ip.decrement_ttl_incremental();
    eth_hdr[0..6].copy_from_slice(&hop.mac_or_zero());
    eth_hdr[6..12].copy_from_slice(&out.mac);
    hop.verdict()
}

#[cfg(test)]
mod tests;
