//! The load-balancing path of one worker: IPVS's `ip_vs_in` / `ip_vs_out` for
//! IPv4 TCP and UDP, and related ICMP (specs/ipvs.md §2-§4).
//!
//! For each packet: look up its connection (client → VIP, or a NAT reply), or
//! find its service and schedule a new connection (with persistence
//! templates), update the protocol state and timer, and hand the packet to the
//! transmitter of the connection's forwarding method. Packets that are not
//! load-balanced take the plain forwarding path ([`crate::fwd`]).
//!
//! Pure over bytes and the worker's own state: no allocation, no lock.
//!
//! One concern per file: `parse` (the header parsers), `owner` (which worker
//! owns a flow), `prefetch` (burst prefetch hints), `hop` (the next-hop
//! cache), `schedule` (reuse or reschedule, scheduling and persistence),
//! `state` (packets on an existing connection: state, timer), `transmit`
//! (forwarding methods, next hop, ICMP on refusal), `icmp` (related ICMP),
//! `account` (real-server statistics) and [`sync`] (connection sync on the
//! worker). This file holds the worker's state, the entry point and the
//! first dispatch: balanced inbound, NAT reply, or not balanced.
mod account;
mod hop;
mod icmp;
mod owner;
mod parse;
mod prefetch;
mod schedule;
mod state;
pub mod sync;
mod transmit;

use crate::buf::PacketBuf;
use crate::conn::ConnTable;
use crate::counters::WorkerCounters;
use crate::fwd;
use crate::service::{PROTO_TCP, PROTO_UDP};
use crate::snapshot::Snapshot;
use crate::verdict::{DropReason, Verdict};
use crate::wire::ethernet;
use crate::xmit;
use hop::{HopSlot, HOP_SLOTS};
use parse::{parse, Flow};

pub use owner::{flow_owner, owner_of};
pub use prefetch::PREFETCH_MIN_CONNS;
pub use transmit::xmit_drop;

const PROTO_ICMP: u8 = 1;
/// Path MTU toward real servers (tunnel MTU = this − 20).
pub const PATH_MTU: u16 = 1500;

/// One worker's load-balancing state.
pub struct Lb {
    pub worker: usize,
    pub conns: ConnTable,
    /// Neighbours and addresses learned at run time (the worker refreshes it
    /// once per round from what the exception path publishes, through
    /// [`Lb::set_learned`]).
    learned: std::sync::Arc<fwd::Learned>,
    /// Next hops resolved since the snapshot `hops_for` or `learned` last
    /// changed: a route lookup and a neighbour lookup saved per packet.
    hops: Box<[HopSlot; HOP_SLOTS]>,
    hops_for: u64,
    ip_ident: u16,
    /// This worker's end of the sync daemon (specs/ipvs.md §5; [`sync`]).
    pub sync: Option<std::sync::Arc<crate::sync::SyncPort>>,
}

impl Lb {
    pub fn new(worker: usize, conns_capacity: u32, seed: u64) -> Lb {
        Lb {
            worker,
            conns: ConnTable::new(conns_capacity, seed),
            learned: Default::default(),
            hops: Box::new([HopSlot::default(); HOP_SLOTS]),
            hops_for: 0,
            ip_ident: (worker as u16).wrapping_mul(0x3fff),
            sync: None,
        }
    }

    /// Runs the connection timers to `now` (seconds).
    pub fn expire(&mut self, now: u32) {
        self.conns.expire(now, |_, _| {});
    }

    /// Decides and rewrites one packet received on port `in_port` with firewall
    /// mark `mark`, at time `now` (seconds).
    pub fn process<B: PacketBuf>(
        &mut self,
        pkt: &mut B,
        in_port: u16,
        mark: u32,
        snap: &Snapshot,
        now: u32,
        counters: &WorkerCounters,
    ) -> Verdict {
        // Only frames addressed to this port are ours (promiscuous devices see
        // the whole segment); broadcast and multicast wait for the kernel path.
        if pkt.data().len() < ethernet::HEADER_LEN {
            return Verdict::Drop(DropReason::EthTruncated);
        }
        if let Some(dst) = pkt.data().first_chunk::<6>() {
            if dst[0] & 1 != 0 {
                return Verdict::Drop(DropReason::L2Multicast);
            }
            if *dst != snap.fib.port_mac(in_port) {
                return Verdict::Drop(DropReason::NotForUs);
            }
        }
        if !snap.has_services() {
            return fwd::forward(pkt, &snap.fib, &self.learned);
        }
        let flow = match parse(pkt) {
            Ok(f) => f,
            Err(r) => return Verdict::Drop(r),
        };
        // backup_only: no balancing while a sync backup (specs/ipvs.md §5.5).
        if self.sync.as_ref().is_some_and(|s| s.params.backup_only.load(std::sync::atomic::Ordering::Relaxed)) {
            return self.not_balanced(pkt, flow, snap);
        }
        match flow.proto {
            PROTO_TCP | PROTO_UDP => self.tcp_udp(pkt, flow, in_port, mark, snap, now, counters),
            PROTO_ICMP => self.icmp(pkt, flow, in_port, snap, now),
            _ => self.not_balanced(pkt, flow, snap),
        }
    }

    fn not_balanced<B: PacketBuf>(&self, pkt: &mut B, flow: Flow, snap: &Snapshot) -> Verdict {
        if snap.is_vip(flow.dst) && !snap.fib.is_local(flow.dst) {
            return Verdict::Drop(DropReason::VipUnhandled);
        }
        fwd::forward(pkt, &snap.fib, &self.learned)
    }

    #[allow(clippy::too_many_arguments)]
    fn tcp_udp<B: PacketBuf>(
        &mut self,
        pkt: &mut B,
        flow: Flow,
        in_port: u16,
        mark: u32,
        snap: &Snapshot,
        now: u32,
        counters: &WorkerCounters,
    ) -> Verdict {
        let inbound = mark != 0 || snap.is_vip(flow.dst);
        if inbound {
            if flow.fragment {
                return Verdict::Drop(DropReason::Fragment);
            }
            if let Some(i) = self.conns.lookup_in(flow.proto, flow.src, flow.sport, flow.dst, flow.dport) {
                match self.reuse_or_keep(i, flow, snap) {
                    Ok(true) => return self.input(pkt, i, flow, in_port, snap, now),
                    Ok(false) => {} // expired: schedule afresh
                    Err(r) => return Verdict::Drop(r),
                }
            }
            if let Some(s) = snap.find_service(mark, flow.proto, flow.dst, flow.dport) {
                return self.schedule(pkt, s, flow, in_port, snap, now, counters);
            }
        } else if snap.is_nat_source(flow.proto, flow.src, flow.sport) {
            if flow.fragment {
                return Verdict::Drop(DropReason::Fragment);
            }
            if let Some(i) = self.conns.lookup_out(flow.proto, flow.src, flow.sport, flow.dst, flow.dport) {
                return self.output(pkt, i, flow, in_port, snap, now);
            }
            // §4.2: an unmatched packet from a NAT real service passes, or with
            // nat_icmp_send gets a port unreachable back (never for a TCP RST).
            let rst = flow.proto == PROTO_TCP && flow.tcp_flags & crate::wire::tcp::flags::RST != 0;
            if snap.knobs.nat_icmp_send && !rst {
                if let Some(src) = snap.fib.port_addr(in_port) {
                    return match xmit::icmp::port_unreachable(pkt, src) {
                        Ok(()) => {
                            counters.icmp_sent.add(1);
                            Verdict::Forward { port: in_port }
                        }
                        Err(e) => Verdict::Drop(xmit_drop(e)),
                    };
                }
            }
        }
        self.not_balanced(pkt, flow, snap)
    }
}

#[cfg(test)]
mod test_util;
#[cfg(test)]
mod tests;
