//! Connection sync on the worker (specs/ipvs.md §5.4, §5.5): when the master
//! queues a connection for the sync daemon, how the backup installs a synced
//! record in its own table, and the between-bursts work that joins a worker's
//! table to its [`SyncPort`]: installing what the backup thread queued and
//! the resync sweep. The records, rings and settings themselves are
//! [`crate::sync`]'s, which knows nothing of [`Lb`].
//!
//! Runs on the worker that owns the flow: no allocation, no lock, no syscall.
//! A full queue drops the record and counts it.
use std::sync::atomic::Ordering::{self, Relaxed};

use super::Lb;
use crate::conn::{flags as cf, Conn, TEMPLATE_ASSURED};
use crate::proto::TcpState;
use crate::service::{Method, PROTO_TCP};
use crate::snapshot::Snapshot;
use crate::sync::{SyncPort, SyncRecord, INSTALL_PER_ROUND, SWEEP_RECORDS_PER_ROUND, SWEEP_SLOTS_PER_ROUND};

/// Flags a backup keeps from a record (`IP_VS_CONN_F_BACKUP_MASK`, §5.5).
pub const BACKUP_MASK: u16 = cf::FWD_MASK | cf::NOOUTPUT | cf::INACTIVE | 0x0600 | 0x0800 | cf::TEMPLATE;
/// `IP_VS_CONN_F_SYNC`: the entry came from a sync message (§5.5).
pub const SYNC_FLAG: u16 = 0x0020;
/// Timeout of a template synced without one (v0, §5.3).
const V0_TEMPLATE_TIMEOUT: u32 = 180;

/// What the backup did with one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Installed {
    New,
    Updated,
    /// An inactive record for a connection that now has another real server:
    /// a stale expiry message, ignored (§5.5 replacement rule).
    Stale,
    TableFull,
}

impl Lb {
    /// The record the sync protocol carries for entry `i`.
    pub fn sync_record(&self, i: u32) -> Option<SyncRecord> {
        let c = self.conns.get(i)?;
        Some(SyncRecord {
            proto: c.proto,
            state: c.state,
            flags: c.flags & !(cf::HASHED | cf::STATE_CHANGED),
            caddr: c.caddr,
            vaddr: c.vaddr,
            daddr: c.daddr,
            cport: c.cport,
            vport: c.vport,
            dport: c.dport,
            timeout: c.timeout,
            // Fwmark templates carry their mark as vaddr (§6.2 -Lnc).
            fwmark: if c.is_template() && c.proto == 0 { u32::from(c.vaddr) } else { 0 },
        })
    }

    /// After a client packet on connection `i` (`ip_vs_sync_conn_needed`,
    /// §5.4): queue it (and then its template) for the master thread when the
    /// LVS rules say so.
    #[inline]
    pub(crate) fn sync_after_packet(&mut self, i: u32) {
        if self.sync.is_some() {
            self.sync_conn(i);
        }
    }

    /// [`Lb::sync_after_packet`] with a sync daemon running.
    #[inline(never)]
    fn sync_conn(&mut self, i: u32) {
        // Borrowed, not cloned: no reference-count traffic per packet.
        let Some(port) = self.sync.as_deref() else { return };
        // A synced entry that sees a client packet here is now this
        // director's own (a failover happened): the resync sweep may send it.
        if let Some(c) = self.conns.get_mut(i) {
            c.flags &= !SYNC_FLAG;
        }
        let p = &port.params;
        if !p.master.load(Relaxed) {
            return;
        }
        let Some(c) = self.conns.get(i) else { return };
        if c.flags & cf::ONE_PACKET != 0 {
            return; // OPS connections are never synced (§5.4).
        }
        let control = c.control;
        let pkts = c.in_pkts;
        let (threshold, period) = (p.threshold.load(Relaxed), p.period.load(Relaxed));
        let needed = if c.proto == PROTO_TCP {
            let st = c.tcp_state();
            if !matches!(
                st,
                TcpState::Established | TcpState::FinWait | TcpState::Close | TcpState::CloseWait | TcpState::TimeWait
            ) {
                return;
            }
            // A state change since the last sync goes at once unless the new
            // state is ESTABLISHED (`force` in ip_vs_sync_conn_needed).
            (c.flags & cf::STATE_CHANGED != 0 && st != TcpState::Established) || packet_rule(pkts, threshold, period)
        } else {
            packet_rule(pkts, threshold, period)
        };
        if !needed {
            return;
        }
        // sync_persist_mode: a connection controlled by a template is not
        // sent; its template is (§5.4).
        if !(p.persist_mode.load(Relaxed) && control != crate::conn::NIL) {
            if let Some(r) = self.sync_record(i) {
                port.send(r);
            }
        }
        if let Some(c) = self.conns.get_mut(i) {
            c.flags &= !cf::STATE_CHANGED;
        }
        // Its template is considered next, with no state or packet filter
        // while sync_period > 0 (§5.4).
        if control == crate::conn::NIL {
            return;
        }
        let Some(t) = self.conns.get_mut(control) else { return };
        t.in_pkts = t.in_pkts.wrapping_add(1);
        if period > 0 || t.in_pkts == threshold {
            if let Some(r) = self.sync_record(control) {
                port.send(r);
            }
        }
    }

    /// The record the resync sweep sends for slot `i`: a live entry that the
    /// §5.4 filters allow (templates always; TCP in ES, FW, CL, CW, TW; UDP;
    /// never OPS; not a controlled connection under sync_persist_mode), and
    /// that this director owns: an entry installed by sync and never used
    /// here is not echoed back (directors may run master and backup both
    /// ways).
    pub fn resync_record(&self, i: u32) -> Option<SyncRecord> {
        if !self.conns.is_live(i) {
            return None;
        }
        let c = self.conns.get(i)?;
        if c.flags & SYNC_FLAG != 0 {
            return None;
        }
        if !c.is_template() {
            if c.flags & cf::ONE_PACKET != 0 {
                return None;
            }
            let persist = self.sync.as_ref().is_some_and(|s| s.params.persist_mode.load(Relaxed));
            if persist && c.control != crate::conn::NIL {
                return None;
            }
            if c.proto == PROTO_TCP
                && !matches!(
                    c.tcp_state(),
                    TcpState::Established
                        | TcpState::FinWait
                        | TcpState::Close
                        | TcpState::CloseWait
                        | TcpState::TimeWait
                )
            {
                return None;
            }
        }
        self.sync_record(i)
    }

    /// Installs or refreshes a synced connection (`ip_vs_proc_conn`, §5.5).
    /// A record with timeout 0 (v0) takes the local state timeout.
    pub fn install_synced(&mut self, r: &SyncRecord, snap: &Snapshot, now: u32) -> Installed {
        let template = r.flags & cf::TEMPLATE != 0;
        let timeout = if r.timeout != 0 {
            r.timeout
        } else if template {
            V0_TEMPLATE_TIMEOUT
        } else if r.proto == PROTO_TCP {
            snap.timeouts.tcp.get(r.state as usize).copied().unwrap_or(snap.timeouts.udp)
        } else {
            snap.timeouts.udp
        };
        let threshold = self.sync.as_ref().map_or(3, |s| s.params.threshold.load(Relaxed));
        let existing = if template {
            self.conns.lookup_template(r.proto, r.caddr, r.vaddr, r.vport)
        } else {
            self.conns.lookup_in(r.proto, r.caddr, r.cport, r.vaddr, r.vport)
        };
        if let Some(i) = existing {
            let same = self.conns.get(i).is_some_and(|c| c.daddr == r.daddr && c.dport == r.dport);
            if same || template {
                self.update_synced(i, r, timeout, threshold, now);
                return Installed::Updated;
            }
            if r.flags & cf::INACTIVE != 0 {
                return Installed::Stale;
            }
            self.conns.force_expire(i);
        }
        // Bind to the local real server: the service by mark, else by
        // address; the dest by (daddr, dport) (§5.5).
        let mark = if r.fwmark != 0 {
            r.fwmark
        } else if template && r.proto == 0 {
            u32::from(r.vaddr)
        } else {
            0
        };
        let dest = snap
            .find_service(mark, r.proto, r.vaddr, r.vport)
            .and_then(|s| snap.service(s))
            .and_then(|s| s.dests.iter().find(|d| d.addr == r.daddr && (d.port == r.dport || d.port == 0)));
        let mut flags = (r.flags & BACKUP_MASK) | SYNC_FLAG;
        if let Some(d) = dest {
            // Bound: forwarding method and NOOUTPUT come from the local dest.
            flags &= !(cf::FWD_MASK | cf::NOOUTPUT);
            flags |= d.method as u16;
            if d.method != Method::Masq {
                flags |= cf::NOOUTPUT;
            }
        }
        let mut c = Conn::new(
            r.proto,
            r.caddr,
            r.cport,
            r.vaddr,
            r.vport,
            r.daddr,
            r.dport,
            flags & !cf::INACTIVE,
            dest.map(|d| d.shared.clone()),
        );
        c.timeout = timeout;
        c.in_pkts = threshold;
        if template {
            c.state = r.state.min(TEMPLATE_ASSURED);
        }
        let Ok(i) = self.conns.insert(c, now) else { return Installed::TableFull };
        if !template && r.proto == PROTO_TCP {
            self.conns.set_tcp_state(i, TcpState::from_u8(r.state).unwrap_or(TcpState::None));
        }
        Installed::New
    }

    fn update_synced(&mut self, i: u32, r: &SyncRecord, timeout: u32, threshold: u32, now: u32) {
        let template = r.flags & cf::TEMPLATE != 0;
        if !template && r.proto == PROTO_TCP {
            // Moves the entry between ActiveConn and InActConn as needed (§5.5).
            self.conns.set_tcp_state(i, TcpState::from_u8(r.state).unwrap_or(TcpState::None));
        }
        if let Some(c) = self.conns.get_mut(i) {
            if template {
                c.state = r.state.min(TEMPLATE_ASSURED);
            }
            c.in_pkts = threshold;
        }
        // The timer is re-armed for the synced timeout at each message (§5.5).
        self.conns.touch(i, timeout, now);
    }
}

/// Fills in the fwmark of a connection record (rvs keeps no mark per
/// connection): a connection whose (proto, vaddr, vport) matches no address
/// service was scheduled by a fwmark service; the one with its real server
/// gives the mark. The backup (rvs or Linux) needs it to find the real
/// server (§5.5). Runs on the sync thread, not on a worker.
pub fn fill_fwmark(r: &mut SyncRecord, snap: &Snapshot) {
    if r.fwmark != 0 || r.proto == 0 || snap.find_service(0, r.proto, r.vaddr, r.vport).is_some() {
        return;
    }
    for s in &snap.services {
        if let crate::service::ServiceKey::Fwmark(m) = s.key {
            if s.dests.iter().any(|d| d.addr == r.daddr && (d.port == r.dport || d.port == 0)) {
                r.fwmark = m;
                return;
            }
        }
    }
}

/// The packet-count rule of §5.4: with a period, at packets threshold,
/// threshold + period, ...; without, once at the threshold.
#[inline]
fn packet_rule(pkts: u32, threshold: u32, period: u32) -> bool {
    if period > 0 {
        pkts % period == threshold
    } else {
        pkts == threshold
    }
}

/// Worker side, between bursts: installs what the backup thread queued for
/// this worker (specs/ipvs.md §5.5).
pub fn install_pending(lb: &mut Lb, port: &SyncPort, snap: &Snapshot, now: u32) {
    for _ in 0..INSTALL_PER_ROUND {
        let Some(r) = port.into.pop() else { return };
        match lb.install_synced(&r, snap, now) {
            Installed::New | Installed::Updated => port.installed.add(1),
            _ => port.install_failed.add(1),
        }
    }
}

/// Worker side, between bursts: the resync sweep (see
/// [`crate::sync::SyncParams::resync_period`]). Each new second grants
/// `capacity / period` more slots (unvisited ones carry over, up to a whole
/// table); each round visits at most [`SWEEP_SLOTS_PER_ROUND`] of them and
/// queues at most [`SWEEP_RECORDS_PER_ROUND`] records, and none while the
/// ring to the sync thread is half full: the sweep goes at the pace the
/// sync thread sends, leaving room for new connections' records, instead of
/// overflowing the ring (a large table's sweep then takes longer than the
/// period).
pub fn sweep(lb: &Lb, port: &SyncPort, now: u32) {
    let p = &port.params;
    let period = p.resync_period.load(Ordering::Relaxed);
    if period == 0 || !p.master.load(Ordering::Relaxed) {
        return;
    }
    let cap = lb.conns.capacity() as u32;
    if port.sweep_second.load(Ordering::Relaxed) != now {
        port.sweep_second.store(now, Ordering::Relaxed);
        let left = port.sweep_left.load(Ordering::Relaxed);
        port.sweep_left.store(left.saturating_add(cap.div_ceil(period)).min(cap), Ordering::Relaxed);
    }
    let left = port.sweep_left.load(Ordering::Relaxed);
    if left == 0 || port.out.len() >= port.out.capacity() / 2 {
        return;
    }
    let mut cursor = port.sweep_cursor.load(Ordering::Relaxed);
    let (mut visited, mut queued) = (0, 0);
    while visited < left.min(SWEEP_SLOTS_PER_ROUND) && queued < SWEEP_RECORDS_PER_ROUND {
        if cursor >= cap {
            cursor = 0;
        }
        if let Some(r) = lb.resync_record(cursor) {
            port.send(r);
            port.resynced.add(1);
            queued += 1;
        }
        cursor += 1;
        visited += 1;
    }
    port.sweep_cursor.store(cursor, Ordering::Relaxed);
    port.sweep_left.store(left - visited, Ordering::Relaxed);
}

#[cfg(test)]
mod tests;
