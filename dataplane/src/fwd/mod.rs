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

    /// Where a packet to `dst` leaves and the MAC of its next hop.
    #[inline]
    pub fn resolve(&self, dst: Ipv4Addr) -> Result<(u16, [u8; 6]), DropReason> {
        let hop = self.routes.lookup(dst).ok_or(DropReason::NoRoute)?;
        let mac = self.neighbors.lookup(hop.port, hop.next_hop).ok_or(DropReason::NoNeighbor)?;
        Ok((hop.port, mac))
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

/// Decides where `pkt` goes and rewrites it for that hop.
#[inline]
pub fn forward<B: PacketBuf>(pkt: &mut B, fib: &Fib) -> Verdict {
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
    if fib.is_local(dst) {
        return Verdict::Drop(DropReason::Local);
    }
    let Some(hop) = fib.routes.lookup(dst) else {
        return Verdict::Drop(DropReason::NoRoute);
    };
    let Some(next_mac) = fib.neighbors.lookup(hop.port, hop.next_hop) else {
        return Verdict::Drop(DropReason::NoNeighbor);
    };
    let Some(out) = fib.ports.get(hop.port as usize) else {
        return Verdict::Drop(DropReason::NoRoute);
    };
    if ip.ttl() <= 1 {
        return Verdict::Drop(DropReason::TtlExpired);
    }
    ip.decrement_ttl_incremental();
    eth_hdr[0..6].copy_from_slice(&next_mac);
    eth_hdr[6..12].copy_from_slice(&out.mac);
    Verdict::Forward { port: hop.port }
}

#[cfg(test)]
mod tests;
