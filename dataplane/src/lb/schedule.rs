//! New connections: whether a client packet keeps its existing entry or
//! retires it and schedules afresh (connection reuse, removed and quiesced
//! real servers, specs/ipvs.md §2.4, §3.3), and scheduling a new connection,
//! plainly or through a persistence template (§2.1-§2.4, §3.2).
use std::net::Ipv4Addr;

use super::parse::Flow;
use super::transmit::xmit_drop;
use super::Lb;
use crate::buf::PacketBuf;
use crate::conn::{flags as cf, Conn, TEMPLATE_NONE};
use crate::counters::WorkerCounters;
use crate::proto::{Direction, TcpState};
use crate::sched::SchedInput;
use crate::service::{Method, Service, ServiceKey, PROTO_TCP, PROTO_UDP};
use crate::snapshot::Snapshot;
use crate::verdict::{DropReason, Verdict};
use crate::xmit;

impl Lb {
    /// An existing connection for a client packet: keep it (Ok(true)), expire it
    /// so the packet schedules afresh (Ok(false)), or drop the packet.
    #[inline]
    pub(super) fn reuse_or_keep(&mut self, i: u32, flow: Flow, snap: &Snapshot) -> Result<bool, DropReason> {
        // Nearly every packet: no SYN, its real server still there.
        if flow.tcp_flags & crate::wire::tcp::flags::SYN == 0 || flow.proto != PROTO_TCP {
            if let Some(c) = self.conns.get(i) {
                if c.dest.as_ref().is_some_and(|d| d.available.load(std::sync::atomic::Ordering::Relaxed)) {
                    return Ok(true);
                }
            }
        }
        self.reuse_or_keep_checked(i, flow, snap)
    }

    /// [`Lb::reuse_or_keep`] for a SYN, or for a connection whose real server
    /// is gone, in IPVS's order (`ip_vs_in_hook`): first a new SYN may retire
    /// the old entry (§3.3, and §2.4's quiesced case), and only then is the
    /// server's status checked (§2.4). The other order would drop the SYN
    /// that reuses the port of a finished connection to a removed server
    /// until that entry's timer ran out.
    #[inline(never)]
    fn reuse_or_keep_checked(&mut self, i: u32, flow: Flow, snap: &Snapshot) -> Result<bool, DropReason> {
        use std::sync::atomic::Ordering::Relaxed;
        let Some(c) = self.conns.get(i) else { return Ok(false) };
        let knobs = &snap.knobs;
        // IPVS's new-connection test is the SYN bit alone (an RST with it
        // still retires the entry; scheduling then refuses the segment).
        if flow.proto == PROTO_TCP && flow.tcp_flags & crate::wire::tcp::flags::SYN != 0 {
            // §2.4: a SYN on a connection to a server of weight 0 (quiesced, or
            // drained before removal) is rescheduled with expire_nodest_conn,
            // whatever conn_reuse_mode says and persistent or not.
            let quiesced = c.dest.as_ref().is_some_and(|d| d.weight.load(Relaxed) == 0);
            let resched = if knobs.expire_nodest_conn && quiesced {
                true
            } else {
                // §3.3: any nonzero conn_reuse_mode reuses an uncontrolled
                // (not persistent) connection in TIME_WAIT or CLOSE; the value
                // 2 adds FIN_WAIT without output (DR/TUN).
                let mode = knobs.conn_reuse_mode;
                let st = c.tcp_state();
                mode != 0
                    && c.control == crate::conn::NIL
                    && (matches!(st, TcpState::TimeWait | TcpState::Close)
                        || (mode & 2 != 0 && st == TcpState::FinWait && c.flags & cf::NOOUTPUT != 0))
            };
            if resched {
                self.conns.expire_now(i);
                return Ok(false);
            }
        }
        // §2.4: then the server's status. A removed server (or, on a sync
        // backup, one not configured here) drops the packet, or with
        // expire_nodest_conn = 1 expires the entry and the packet is new.
        if !c.dest.as_ref().is_some_and(|d| d.available.load(Relaxed)) {
            if knobs.expire_nodest_conn {
                self.conns.expire_now(i);
                return Ok(false);
            }
            return Err(DropReason::DestUnavailable);
        }
        Ok(true)
    }

    /// A new connection for service `s` (§2.2, §3.2).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn schedule<B: PacketBuf>(
        &mut self,
        pkt: &mut B,
        s: u32,
        flow: Flow,
        in_port: u16,
        snap: &Snapshot,
        now: u32,
        counters: &WorkerCounters,
    ) -> Verdict {
        let Some(svc) = snap.service(s) else { return Verdict::Drop(DropReason::VipUnhandled) };
        if flow.proto == PROTO_TCP && !snap.knobs.sloppy_tcp {
            use crate::wire::tcp::flags::{RST, SYN};
            if flow.tcp_flags & SYN == 0 || flow.tcp_flags & RST != 0 {
                return Verdict::Drop(DropReason::TcpNoConn);
            }
        }
        let picked = match svc.persistence {
            Some(_) => self.sched_persist(svc, flow, snap, now),
            None => self.sched_plain(svc, flow),
        };
        let Some((daddr, dport, method, dest, template)) = picked else {
            counters.no_dest.add(1);
            // §4.6: no real server → ICMP port unreachable from the VIP, for TCP too.
            return match xmit::icmp::port_unreachable(pkt, flow.dst) {
                Ok(()) => {
                    counters.icmp_sent.add(1);
                    Verdict::Forward { port: in_port }
                }
                Err(e) => Verdict::Drop(xmit_drop(e)),
            };
        };
        let mut fl = method as u16;
        if method != Method::Masq {
            fl |= cf::NOOUTPUT;
        }
        if svc.one_packet && flow.proto == PROTO_UDP {
            fl |= cf::ONE_PACKET;
        }
        let c = Conn::new(flow.proto, flow.src, flow.sport, flow.dst, flow.dport, daddr, dport, fl, Some(dest));
        let Ok(i) = self.conns.insert(c, now) else {
            return Verdict::Drop(DropReason::ConnTableFull);
        };
        counters.conns_created.add(1);
        self.account(i, pkt.data().len(), true, false);
        if let Some(t) = template {
            self.conns.set_control(i, t);
            // Releasing the template restarts its timer with its timeout (§2.2 step 5).
            if let Some(tc) = self.conns.get(t) {
                let to = tc.timeout;
                self.conns.touch(t, to, now);
            }
        }
        if let Some(c) = self.conns.get_mut(i) {
            c.in_pkts = 1;
        }
        let dir = if fl & cf::NOOUTPUT != 0 { Direction::InputOnly } else { Direction::Input };
        self.transition(i, flow, dir, snap, now);
        self.sync_after_packet(i);
        let v = self.transmit(pkt, i, flow, in_port, snap);
        if fl & cf::ONE_PACKET != 0 {
            // OPS: scheduled and sent, never kept (§3.8).
            self.conns.force_expire(i);
        }
        v
    }

    /// Non-persistent scheduling: conn dport = dest port, or the packet's (§2.2).
    fn sched_plain(&mut self, svc: &Service, flow: Flow) -> Option<Picked> {
        let st = svc.sched_state.get(self.worker)?;
        let d = svc.scheduler.schedule(st, &svc.dests, &SchedInput { saddr: flow.src, sport: flow.sport })?;
        let dest = svc.dests.get(d)?;
        let dport = if dest.port != 0 { dest.port } else { flow.dport };
        Some((dest.addr, dport, dest.method, dest.shared.clone(), None))
    }

    /// Persistent scheduling through a template (§2.1-§2.4).
    fn sched_persist(&mut self, svc: &Service, flow: Flow, snap: &Snapshot, now: u32) -> Option<Picked> {
        let p = svc.persistence?;
        let snet = Ipv4Addr::from(u32::from(flow.src) & u32::from(p.netmask));
        // §2.1 template key.
        let (tproto, tvaddr, tvport) = match svc.key {
            ServiceKey::Fwmark(m) => (0u8, Ipv4Addr::from(m), 0u16),
            ServiceKey::Addr { vport, .. } if vport != 0 && flow.dport == vport && vport != 21 => {
                (flow.proto, flow.dst, vport)
            }
            ServiceKey::Addr { .. } => (flow.proto, flow.dst, 0),
        };
        let per_port = tvport != 0;
        let svc_vport = match svc.key {
            ServiceKey::Addr { vport, .. } => vport,
            ServiceKey::Fwmark(_) => 0,
        };
        if let Some(t) = self.conns.lookup_template(tproto, snet, tvaddr, tvport) {
            let tc = self.conns.get(t)?;
            let d = tc.dest.as_ref()?;
            let available = d.available.load(std::sync::atomic::Ordering::Relaxed);
            let quiesced = d.weight.load(std::sync::atomic::Ordering::Relaxed) == 0;
            if available && !(snap.knobs.expire_quiescent_template && quiesced) {
                // §2.2 step 3: the template's dest, even if overloaded or quiesced.
                let dport = if flow.dport == svc_vport && tc.dport != 0 { tc.dport } else { flow.dport };
                return Some((tc.daddr, dport, tc.method(), d.clone(), Some(t)));
            }
            // §2.4: an invalid template can no longer be found; it lingers until its children die.
            self.conns.unhash(t);
        }
        let st = svc.sched_state.get(self.worker)?;
        let di = svc.scheduler.schedule(st, &svc.dests, &SchedInput { saddr: flow.src, sport: flow.sport })?;
        let dest = svc.dests.get(di)?;
        let tdport = if per_port { dest.port } else { 0 };
        let mut tc = Conn::new(
            tproto,
            snet,
            0,
            tvaddr,
            tvport,
            dest.addr,
            tdport,
            cf::TEMPLATE | dest.method as u16,
            Some(dest.shared.clone()),
        );
        tc.state = TEMPLATE_NONE;
        tc.timeout = p.timeout;
        let t = self.conns.insert(tc, now).ok()?;
        // §2.2 step 4: conn dport.
        let dport = if flow.dport == svc_vport && dest.port != 0 { dest.port } else { flow.dport };
        Some((dest.addr, dport, dest.method, dest.shared.clone(), Some(t)))
    }
}

/// (daddr, dport, method, dest, template) of a scheduling decision.
type Picked = (Ipv4Addr, u16, Method, std::sync::Arc<crate::service::DestShared>, Option<u32>);

#[cfg(test)]
mod tests;
