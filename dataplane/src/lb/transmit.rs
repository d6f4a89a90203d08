//! Transmit dispatch: a client packet handed to the transmitter of its
//! connection's forwarding method (NAT, DR, tunnel; specs/ipvs.md §4), the
//! MACs and port of the next hop, and the ICMP answer where a transmitter
//! refuses (§4.1).
use std::net::Ipv4Addr;

use super::parse::Flow;
use super::{Lb, PATH_MTU};
use crate::buf::PacketBuf;
use crate::service::Method;
use crate::snapshot::Snapshot;
use crate::verdict::{DropReason, Verdict};
use crate::xmit::{self, XmitError};

impl Lb {
    /// Sends a client packet of connection `i` by its forwarding method (§4).
    #[inline(always)]
    pub(super) fn transmit<B: PacketBuf>(
        &mut self,
        pkt: &mut B,
        i: u32,
        flow: Flow,
        in_port: u16,
        snap: &Snapshot,
    ) -> Verdict {
        let Some(c) = self.conns.get(i) else { return Verdict::Drop(DropReason::ConnTableFull) };
        let (daddr, dport, method) = (c.daddr, c.dport, c.method());
        let vip = flow.dst;
        if method != Method::Tunnel {
            // §4.1: DF set and longer than the path MTU → frag needed, from the VIP.
            if flow.too_big {
                return self.xmit_error(pkt, XmitError::FragNeeded { mtu: PATH_MTU }, vip, in_port);
            }
        }
        match method {
            Method::Masq => {
                if let Err(e) = xmit::nat::rewrite_in(pkt, daddr, dport) {
                    return self.xmit_error(pkt, e, vip, in_port);
                }
                self.route_to(pkt, daddr, snap)
            }
            Method::Route => {
                let (hop, smac) = match self.hop(daddr, snap) {
                    Ok(x) => x,
                    Err(r) => return Verdict::Drop(r),
                };
                // The frame passed `parse`: no second validation of its header.
                match xmit::dr::rewrite_parsed(pkt, hop.mac_or_zero(), smac) {
                    Ok(()) => hop.verdict(),
                    Err(e) => self.xmit_error(pkt, e, vip, in_port),
                }
            }
            Method::Tunnel => {
                let (hop, smac) = match self.hop(daddr, snap) {
                    Ok(x) => x,
                    Err(r) => return Verdict::Drop(r),
                };
                let Some(src) = snap.fib.port_addr(hop.port) else {
                    return Verdict::Drop(DropReason::NoSourceAddress);
                };
                self.ip_ident = self.ip_ident.wrapping_add(1);
                if let Err(e) = xmit::tun::encapsulate(pkt, src, daddr, self.ip_ident, snap.knobs.pmtu_disc, PATH_MTU) {
                    return self.xmit_error(pkt, e, vip, in_port);
                }
                match xmit::set_macs(pkt, hop.mac_or_zero(), smac) {
                    Ok(()) => hop.verdict(),
                    Err(e) => Verdict::Drop(xmit_drop(e)),
                }
            }
        }
    }

    /// Sets the MACs for the next hop to `dst` and picks the port.
    pub(super) fn route_to<B: PacketBuf>(&mut self, pkt: &mut B, dst: Ipv4Addr, snap: &Snapshot) -> Verdict {
        match self.hop(dst, snap) {
            Ok((hop, smac)) => match xmit::set_macs(pkt, hop.mac_or_zero(), smac) {
                Ok(()) => hop.verdict(),
                Err(e) => Verdict::Drop(xmit_drop(e)),
            },
            Err(r) => Verdict::Drop(r),
        }
    }

    /// A transmitter refused: answer with ICMP where IPVS does (§4.1), from `src`
    /// (the VIP: the director is the destination the client knows).
    #[cold]
    #[inline(never)]
    pub(super) fn xmit_error<B: PacketBuf>(&self, pkt: &mut B, e: XmitError, src: Ipv4Addr, in_port: u16) -> Verdict {
        let r = match e {
            XmitError::TtlExceeded => xmit::icmp::time_exceeded(pkt, src),
            XmitError::FragNeeded { mtu } => xmit::icmp::frag_needed(pkt, src, mtu),
            other => return Verdict::Drop(xmit_drop(other)),
        };
        match r {
            Ok(()) => Verdict::Forward { port: in_port },
            Err(e) => Verdict::Drop(xmit_drop(e)),
        }
    }
}

/// The drop counter for a transmitter error.
pub fn xmit_drop(e: XmitError) -> DropReason {
    match e {
        XmitError::NotIpv4 => DropReason::NotIpv4,
        XmitError::Malformed => DropReason::XmitMalformed,
        XmitError::Fragment => DropReason::Fragment,
        XmitError::UnsupportedProto => DropReason::UnsupportedProto,
        XmitError::TtlExceeded => DropReason::TtlExpired,
        XmitError::FragNeeded { .. } => DropReason::TooBig,
        XmitError::MtuTooSmall => DropReason::MtuTooSmall,
        XmitError::TooBig => DropReason::TooBig,
        XmitError::NoHeadroom => DropReason::NoHeadroom,
        XmitError::NotIcmpError => DropReason::XmitMalformed,
        XmitError::IcmpBadChecksum => DropReason::IcmpBadChecksum,
        XmitError::IcmpSuppressed => DropReason::IcmpSuppressed,
    }
}

#[cfg(test)]
mod tests;
