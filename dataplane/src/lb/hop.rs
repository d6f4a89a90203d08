//! The per-worker next-hop cache: the port and both MACs toward a
//! destination, resolved once per snapshot and per publication of learned
//! neighbours instead of a route and a neighbour lookup per packet.
use std::net::Ipv4Addr;

use super::Lb;
use crate::fwd;
use crate::snapshot::Snapshot;
use crate::verdict::DropReason;

/// Slots of the per-worker next-hop cache (direct-mapped by destination).
pub(super) const HOP_SLOTS: usize = 256;

/// A resolved next hop, cached: the destination it is for, the port, and
/// both MACs to write. Valid for one snapshot and one `Learned`.
#[derive(Clone, Copy, Default)]
pub(super) struct HopSlot {
    dst: u32,
    valid: bool,
    port: u16,
    dmac: [u8; 6],
    smac: [u8; 6],
}

impl Lb {
    /// What the exception path learned (neighbours, kernel-held addresses).
    pub fn learned(&self) -> &std::sync::Arc<fwd::Learned> {
        &self.learned
    }

    /// Takes a new publication of what the exception path learned; forgets
    /// the next hops resolved with the old one.
    pub fn set_learned(&mut self, learned: std::sync::Arc<fwd::Learned>) {
        self.learned = learned;
        self.hops_for = 0;
    }

    /// The next hop toward `dst` with the MACs to write, from the cache or
    /// resolved (and cached once the neighbour is known). Only resolved hops
    /// are cached, so a packet waiting for ARP resolves again next time.
    #[inline]
    pub(super) fn hop(&mut self, dst: Ipv4Addr, snap: &Snapshot) -> Result<(fwd::Hop, [u8; 6]), DropReason> {
        if self.hops_for != snap.id {
            self.hops.fill(HopSlot::default());
            self.hops_for = snap.id;
        }
        let d = u32::from(dst);
        let at = (d.wrapping_mul(0x9E37_79B1) >> 24) as usize % HOP_SLOTS;
        if let Some(s) = self.hops.get(at) {
            if s.valid && s.dst == d {
                return Ok((fwd::Hop { port: s.port, next_hop: dst, mac: Some(s.dmac) }, s.smac));
            }
        }
        let hop = snap.fib.resolve(dst, &self.learned)?;
        let smac = snap.fib.port_mac(hop.port);
        if let (Some(dmac), Some(s)) = (hop.mac, self.hops.get_mut(at)) {
            *s = HopSlot { dst: d, valid: true, port: hop.port, dmac, smac };
        }
        Ok((hop, smac))
    }
}

#[cfg(test)]
mod tests;
