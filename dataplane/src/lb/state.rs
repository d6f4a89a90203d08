//! Packets on an existing connection: the client → server path and the NAT
//! reply path, the protocol state transitions and timer re-arm of each packet
//! (specs/ipvs.md §3.4, §3.5), and the persistence template a connection
//! proves real (ASSURED).
use super::account::account_conn;
use super::parse::Flow;
use super::Lb;
use crate::buf::PacketBuf;
use crate::conn::{flags as cf, TEMPLATE_ASSURED};
use crate::proto::{tcp, Direction, TcpState};
use crate::service::{PROTO_TCP, PROTO_UDP};
use crate::snapshot::Snapshot;
use crate::verdict::{DropReason, Verdict};
use crate::xmit;

impl Lb {
    /// Client → server on connection `i`: state, timer, transmit.
    pub(super) fn input<B: PacketBuf>(
        &mut self,
        pkt: &mut B,
        i: u32,
        flow: Flow,
        in_port: u16,
        snap: &Snapshot,
        now: u32,
    ) -> Verdict {
        let (worker, frame_len) = (self.worker, pkt.data().len());
        let Some(c) = self.conns.get_mut(i) else { return Verdict::Drop(DropReason::ConnTableFull) };
        account_conn(c, worker, frame_len, false, false);
        c.in_pkts = c.in_pkts.wrapping_add(1);
        let dir = if c.flags & cf::NOOUTPUT != 0 { Direction::InputOnly } else { Direction::Input };
        self.transition(i, flow, dir, snap, now);
        self.sync_after_packet(i);
        self.transmit(pkt, i, flow, in_port, snap)
    }

    /// Real server → client (NAT) on connection `i`.
    pub(super) fn output<B: PacketBuf>(
        &mut self,
        pkt: &mut B,
        i: u32,
        flow: Flow,
        in_port: u16,
        snap: &Snapshot,
        now: u32,
    ) -> Verdict {
        self.account(i, pkt.data().len(), false, true);
        self.transition(i, flow, Direction::Output, snap, now);
        let Some(c) = self.conns.get(i) else { return Verdict::Drop(DropReason::ConnTableFull) };
        let (vaddr, vport, caddr, control) = (c.vaddr, c.vport, c.caddr, c.control);
        if flow.proto == PROTO_UDP {
            self.assure(control);
        }
        if let Err(e) = xmit::nat::rewrite_out(pkt, vaddr, vport) {
            return self.xmit_error(pkt, e, vaddr, in_port);
        }
        self.route_to(pkt, caddr, snap)
    }

    /// Protocol state transition and timer re-arm for one packet (§3.4, §3.5).
    #[inline]
    pub(super) fn transition(&mut self, i: u32, flow: Flow, dir: Direction, snap: &Snapshot, now: u32) {
        use crate::wire::tcp::flags::{ACK, FIN, RST, SYN};
        let Some(c) = self.conns.get_mut(i) else { return };
        let plain_ack = flow.tcp_flags & (SYN | FIN | RST | ACK) == ACK;
        if flow.proto == PROTO_TCP && plain_ack && c.state == TcpState::Established as u8 {
            // A plain ACK of an established connection stays ESTABLISHED in
            // every direction of the §3.4 table: no lookup, no state change;
            // the timer restarts and the template is (still) assured.
            c.rearm(snap.timeouts.tcp[TcpState::Established as usize], now);
            let control = c.control;
            self.assure(control);
            return;
        }
        self.transition_state(i, flow, dir, snap, now);
    }

    /// [`Lb::transition`] through the §3.4 state table.
    #[inline(never)]
    fn transition_state(&mut self, i: u32, flow: Flow, dir: Direction, snap: &Snapshot, now: u32) {
        let Some(c) = self.conns.get(i) else { return };
        let timeout = if flow.proto == PROTO_TCP {
            let (cur, control) = (c.tcp_state(), c.control);
            let new = tcp::next_state(dir, flow.tcp_flags, cur);
            self.conns.set_tcp_state(i, new);
            if new == TcpState::Established {
                self.assure(control);
            }
            snap.timeouts.tcp[new as usize]
        } else {
            snap.timeouts.udp
        };
        self.conns.touch(i, timeout, now);
    }

    /// A child connection proved the client real: its template becomes ASSURED.
    #[inline]
    fn assure(&mut self, template: u32) {
        if template == crate::conn::NIL {
            return;
        }
        if let Some(t) = self.conns.get_mut(template) {
            if t.is_template() {
                t.state = TEMPLATE_ASSURED;
            }
        }
    }
}

#[cfg(test)]
mod tests;
