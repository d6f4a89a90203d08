//! Related ICMP errors (specs/ipvs.md §4.7): an error quoting a packet of a
//! connection goes where that connection goes, translated for NAT in both
//! directions; any other ICMP is routed.
use super::parse::Flow;
use super::transmit::xmit_drop;
use super::Lb;
use crate::buf::PacketBuf;
use crate::service::{Method, PROTO_TCP, PROTO_UDP};
use crate::snapshot::Snapshot;
use crate::verdict::{DropReason, Verdict};
use crate::xmit;

impl Lb {
    /// Related ICMP errors (§4.7): matched against connections through the
    /// packet they quote; everything else is routed.
    pub(super) fn icmp<B: PacketBuf>(
        &mut self,
        pkt: &mut B,
        flow: Flow,
        in_port: u16,
        snap: &Snapshot,
        now: u32,
    ) -> Verdict {
        let _ = now;
        let Some(k) = xmit::nat::icmp_embedded_key(pkt.data()) else {
            return self.not_balanced(pkt, flow, snap);
        };
        if k.proto != PROTO_TCP && k.proto != PROTO_UDP {
            return self.not_balanced(pkt, flow, snap);
        }
        // Inbound: about a packet sent towards the client, quoted as VIP:vport → client.
        if let Some(i) = self.conns.lookup_in(k.proto, k.dst, k.dport, k.src, k.sport) {
            let Some(c) = self.conns.get(i) else { return Verdict::Drop(DropReason::ConnTableFull) };
            let (daddr, dport, method) = (c.daddr, c.dport, c.method());
            return match method {
                Method::Masq => match xmit::nat::icmp_in(pkt, daddr, dport) {
                    Ok(()) => self.route_to(pkt, daddr, snap),
                    Err(e) => self.xmit_error(pkt, e, flow.dst, in_port),
                },
                _ => self.transmit(pkt, i, flow, in_port, snap),
            };
        }
        // Outbound: from the RS side about a client → RS packet (NAT).
        if let Some(i) = self.conns.lookup_out(k.proto, k.dst, k.dport, k.src, k.sport) {
            let Some(c) = self.conns.get(i) else { return Verdict::Drop(DropReason::ConnTableFull) };
            let (vaddr, vport, caddr, method) = (c.vaddr, c.vport, c.caddr, c.method());
            if method == Method::Masq {
                return match xmit::nat::icmp_out(pkt, vaddr, vport) {
                    Ok(()) => self.route_to(pkt, caddr, snap),
                    Err(e) => Verdict::Drop(xmit_drop(e)),
                };
            }
        }
        self.not_balanced(pkt, flow, snap)
    }
}

#[cfg(test)]
mod tests;
