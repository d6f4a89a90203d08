//! Virtual services and their real servers ("destinations"), as the workers
//! see them in a snapshot (specs/ipvs.md §0).
//!
//! A snapshot is immutable; what workers change at run time lives in
//! [`DestShared`] (connection counts and the OVERLOAD flag, shared by every
//! worker because lc/wlc/sed/nq and the thresholds read global counts) and in
//! [`SchedState`] (one per worker per service, written only by that worker).
//! The control side carries both over from one snapshot to the next, so a real
//! server keeps its identity and counters across changes.
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering::Relaxed};
use std::sync::Arc;

use crate::counters::Counter;
use crate::sched::Scheduler;

/// Traffic of one real server as one worker saw it (single writer).
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct DestStats {
    pub conns: Counter,
    pub inpkts: Counter,
    pub outpkts: Counter,
    pub inbytes: Counter,
    pub outbytes: Counter,
}

pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

/// How a service is found (§0): `<proto, vaddr, vport>` or a firewall mark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceKey {
    Addr { proto: u8, vaddr: Ipv4Addr, vport: u16 },
    Fwmark(u32),
}

/// The forwarding method: conf's, the one model shared by the configuration,
/// the control protocol and the dataplane.
pub use conf::Method;

/// Scheduler flags of `ipvsadm -b` (§1.9, §1.11).
pub mod sched_flags {
    /// `sh-fallback` / `mh-fallback` (IP_VS_SVC_F_SCHED1).
    pub const SCHED1: u32 = 0x08;
    /// `sh-port` / `mh-port` (IP_VS_SVC_F_SCHED2).
    pub const SCHED2: u32 = 0x10;
    /// `flag-3` (IP_VS_SVC_F_SCHED3).
    pub const SCHED3: u32 = 0x20;
}

/// What every worker sees and updates of one real server: connection counts and
/// flags. One cache line; lives as long as any snapshot or connection refers to it.
#[derive(Debug)]
#[repr(align(64))]
pub struct DestShared {
    pub activeconns: AtomicI32,
    pub inactconns: AtomicI32,
    pub persistconns: AtomicI32,
    /// OVERLOAD (§1.1): set and cleared by connection bind/unbind.
    pub overload: AtomicBool,
    /// AVAILABLE (§0): cleared when the server is removed from its service.
    pub available: AtomicBool,
    /// The configured weight, mirrored here for connections and templates, which
    /// outlive snapshots (expire_quiescent_template, §2.4).
    pub weight: AtomicU32,
    /// Thresholds mirrored for bind/unbind (§1.1).
    pub u_threshold: AtomicU32,
    pub l_threshold: AtomicU32,
    /// Per worker: that worker's counters for this server (`ipvsadm --stats`).
    pub stats: Box<[DestStats]>,
}

impl DestShared {
    /// A connection or template binds (§1.1, §3.6): new connections start
    /// inactive; templates count in persistconns; OVERLOAD is set at the upper
    /// threshold.
    #[inline]
    pub fn bind(&self, template: bool) {
        if template {
            self.persistconns.fetch_add(1, Relaxed);
        } else {
            self.inactconns.fetch_add(1, Relaxed);
        }
        let u = self.u_threshold.load(Relaxed);
        if u != 0 && self.total() >= u {
            self.overload.store(true, Relaxed);
        }
    }

    /// A connection or template unbinds; `active` says which counter holds it.
    #[inline]
    pub fn unbind(&self, template: bool, active: bool) {
        if template {
            self.persistconns.fetch_sub(1, Relaxed);
        } else if active {
            self.activeconns.fetch_sub(1, Relaxed);
        } else {
            self.inactconns.fetch_sub(1, Relaxed);
        }
        let (u, l) = (self.u_threshold.load(Relaxed), self.l_threshold.load(Relaxed));
        let total = self.total();
        let clear = if l != 0 {
            total < l
        } else if u != 0 {
            u64::from(total) * 4 < u64::from(u) * 3
        } else {
            true
        };
        if clear {
            self.overload.store(false, Relaxed);
        }
    }

    /// A connection moved between ActiveConn and InActConn (§3.6).
    #[inline]
    pub fn set_active(&self, active: bool) {
        if active {
            self.inactconns.fetch_sub(1, Relaxed);
            self.activeconns.fetch_add(1, Relaxed);
        } else {
            self.activeconns.fetch_sub(1, Relaxed);
            self.inactconns.fetch_add(1, Relaxed);
        }
    }

    /// activeconns + inactconns (templates are not counted, §1.1).
    #[inline]
    pub fn total(&self) -> u32 {
        (self.activeconns.load(Relaxed).max(0) + self.inactconns.load(Relaxed).max(0)) as u32
    }
}

impl Default for DestShared {
    fn default() -> Self {
        DestShared::new(1)
    }
}

impl DestShared {
    /// A fresh real server for `workers` workers.
    pub fn new(workers: usize) -> Self {
        DestShared {
            stats: (0..workers.max(1)).map(|_| DestStats::default()).collect(),
            activeconns: AtomicI32::new(0),
            inactconns: AtomicI32::new(0),
            persistconns: AtomicI32::new(0),
            overload: AtomicBool::new(false),
            available: AtomicBool::new(true),
            weight: AtomicU32::new(1),
            u_threshold: AtomicU32::new(0),
            l_threshold: AtomicU32::new(0),
        }
    }
}

/// A real server of a service, as configured in this snapshot.
#[derive(Clone, Debug)]
pub struct Dest {
    pub addr: Ipv4Addr,
    /// 0 for fwmark and port-0 services: keep the client's destination port.
    pub port: u16,
    pub method: Method,
    /// 0..=65535; 0 = quiesced: no new connections, existing ones keep flowing.
    pub weight: u32,
    /// The latest nonzero weight (mh builds its table from it, §1.11).
    pub last_weight: u32,
    pub u_threshold: u32,
    pub l_threshold: u32,
    pub shared: Arc<DestShared>,
}

impl Dest {
    #[inline]
    pub fn activeconns(&self) -> u32 {
        self.shared.activeconns.load(Relaxed).max(0) as u32
    }

    #[inline]
    pub fn inactconns(&self) -> u32 {
        self.shared.inactconns.load(Relaxed).max(0) as u32
    }

    #[inline]
    pub fn is_overloaded(&self) -> bool {
        self.shared.overload.load(Relaxed)
    }

    /// A candidate for a new connection: weight > 0 and not OVERLOAD (§1).
    #[inline]
    pub fn is_eligible(&self) -> bool {
        self.weight > 0 && !self.is_overloaded()
    }

    /// lc/wlc overhead: `activeconns * 256 + inactconns` (§1).
    #[inline]
    pub fn overhead(&self) -> u64 {
        (u64::from(self.activeconns()) << 8) + u64::from(self.inactconns())
    }
}

/// Persistence of a service (`-p timeout -M netmask`, §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Persistence {
    /// Seconds, 1..=2678400 (ipvsadm's default for a bare `-p` is 360).
    pub timeout: u32,
    /// Client address mask for the template key (default 255.255.255.255).
    pub netmask: Ipv4Addr,
}

/// Per-worker, per-service scheduler position (rr's last pick, wrr's cl/cw).
/// Written only by its worker (relaxed load + store); cache-line sized so
/// workers never share a line.
#[derive(Debug)]
#[repr(align(64))]
pub struct SchedState {
    /// Index into `Service::dests` of the last pick; `u32::MAX` = the list head.
    pub pos: AtomicU32,
    /// wrr's current weight `cw`.
    pub cw: AtomicI32,
}

impl Default for SchedState {
    fn default() -> Self {
        SchedState { pos: AtomicU32::new(u32::MAX), cw: AtomicI32::new(0) }
    }
}

/// A virtual service in a snapshot.
#[derive(Debug)]
pub struct Service {
    pub key: ServiceKey,
    /// The scheduler, with the tables the control side built for these dests.
    pub scheduler: Scheduler,
    pub persistence: Option<Persistence>,
    /// One-packet scheduling (`-o`, UDP and fwmark only).
    pub one_packet: bool,
    /// Real servers in IPVS list order: the most recently added first (§0).
    pub dests: Vec<Dest>,
    /// One per worker.
    pub sched_state: Box<[SchedState]>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overload_set_at_upper_and_cleared_below_three_quarters() {
        let d = DestShared::default();
        d.u_threshold.store(4, Relaxed);
        for _ in 0..3 {
            d.bind(false);
        }
        assert!(!d.overload.load(Relaxed));
        d.bind(false); // total 4 >= 4
        assert!(d.overload.load(Relaxed));
        d.unbind(false, false); // 3*4 = 12 < 12? no
        assert!(d.overload.load(Relaxed));
        d.unbind(false, false); // 2*4 = 8 < 12
        assert!(!d.overload.load(Relaxed));
    }

    #[test]
    fn lower_threshold_rules_the_clear() {
        let d = DestShared::default();
        d.u_threshold.store(3, Relaxed);
        d.l_threshold.store(1, Relaxed);
        for _ in 0..3 {
            d.bind(false);
        }
        assert!(d.overload.load(Relaxed));
        d.unbind(false, false);
        d.unbind(false, false);
        assert!(d.overload.load(Relaxed), "total 1 is not < l_threshold 1");
        d.unbind(false, false);
        assert!(!d.overload.load(Relaxed));
    }

    #[test]
    fn templates_count_apart_but_trigger_overload_checks() {
        let d = DestShared::default();
        d.u_threshold.store(1, Relaxed);
        d.bind(true);
        assert_eq!(d.persistconns.load(Relaxed), 1);
        assert!(!d.overload.load(Relaxed), "templates are not in the total");
        d.bind(false);
        assert!(d.overload.load(Relaxed));
        d.set_active(true);
        assert_eq!((d.activeconns.load(Relaxed), d.inactconns.load(Relaxed)), (1, 0));
        d.unbind(false, true);
        d.unbind(true, false);
        assert_eq!(d.total(), 0);
        assert_eq!(d.persistconns.load(Relaxed), 0);
        assert!(!d.overload.load(Relaxed));
    }
}
