//! IPVS schedulers: which real server gets a new connection (specs/ipvs.md §1).
//!
//! One file per scheduler, like the kernel's `ip_vs_*.c`. Each exposes plain
//! functions; [`Scheduler`] dispatches with one `match`.
//!
//! Invariants:
//! - `dests` is the service's list in IPVS order (§0): `dests[0]` is the most
//!   recently added server. Every scheduler walks it in slice order, so ties go
//!   to the newest server exactly as in the kernel.
//! - [`Scheduler::build`] runs on the control side whenever a service or its
//!   dest list changes (the kernel's `init_service`/`add_dest`/`del_dest`/
//!   `upd_dest`); it may allocate. The tables it builds (wrr's `mw`/`di`, sh's
//!   256 buckets, mh's 4093 slots) hold indices into that same `dests` slice
//!   and are never written again.
//! - [`Scheduler::schedule`] runs on a worker per new connection: no
//!   allocation, no lock, no panic. Its only mutable state is the worker's own
//!   [`SchedState`] (relaxed loads and stores, one writer), so each worker runs
//!   its own rr/wrr sequence where the kernel has one per service under a lock.
//! - An index that does not fit `dests` (a table used with the wrong slice)
//!   schedules nothing rather than panicking.
#![forbid(unsafe_code)]

use std::fmt;
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering::Relaxed;

use crate::service::{Dest, SchedState};

pub mod hsiphash;
pub mod lc;
pub mod mh;
pub mod nq;
pub mod rr;
pub mod sed;
pub mod sh;
pub mod wlc;
pub mod wrr;

/// `SchedState::pos` value meaning "the list head" (no dest picked yet).
pub const POS_HEAD: u32 = u32::MAX;

/// Table entry meaning "no dest" (an empty sh bucket or mh slot).
pub const NO_DEST: u32 = u32::MAX;

/// The schedulers rvs implements, by their ipvsadm names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SchedKind {
    Rr,
    Wrr,
    Lc,
    Wlc,
    Sed,
    Nq,
    Sh,
    Mh,
}

impl SchedKind {
    pub const ALL: [SchedKind; 8] = [
        SchedKind::Rr,
        SchedKind::Wrr,
        SchedKind::Lc,
        SchedKind::Wlc,
        SchedKind::Sed,
        SchedKind::Nq,
        SchedKind::Sh,
        SchedKind::Mh,
    ];

    /// The name `ipvsadm -s` takes and `ipvsadm -L` prints.
    pub fn name(self) -> &'static str {
        match self {
            SchedKind::Rr => "rr",
            SchedKind::Wrr => "wrr",
            SchedKind::Lc => "lc",
            SchedKind::Wlc => "wlc",
            SchedKind::Sed => "sed",
            SchedKind::Nq => "nq",
            SchedKind::Sh => "sh",
            SchedKind::Mh => "mh",
        }
    }

    /// Inverse of [`SchedKind::name`] (exact, lower case, as the kernel's
    /// scheduler lookup by name).
    pub fn from_name(s: &str) -> Option<SchedKind> {
        SchedKind::ALL.into_iter().find(|k| k.name() == s)
    }
}

impl fmt::Display for SchedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a scheduler may look at in the packet (sh/mh hash the client source).
#[derive(Clone, Copy, Debug)]
pub struct SchedInput {
    /// The client address (the kernel's `hash_addr`: `saddr`, or `daddr` for
    /// an inverse-direction ICMP error, which the caller resolves).
    pub saddr: Ipv4Addr,
    /// The client port, host order. Read only with sh-port/mh-port
    /// (`SCHED2`); the caller passes 0 for protocols other than TCP, UDP and
    /// SCTP, as `ip_vs_sh_get_port` does.
    pub sport: u16,
}

/// The per-kind immutable state built for one dest list.
#[derive(Clone, Debug)]
enum Algo {
    Rr,
    Wrr(wrr::Wrr),
    Lc,
    Wlc,
    Sed,
    Nq,
    Sh(sh::ShTable),
    Mh(mh::MhTable),
}

/// A scheduler with the immutable tables built for one service's dest list.
#[derive(Clone, Debug)]
pub struct Scheduler {
    flags: u32,
    algo: Algo,
}

impl Scheduler {
    /// Control side: build for `dests` (IPVS list order, newest first) with
    /// the service flags (`sched_flags`).
    ///
    /// mh: the kernel refuses a service with more than [`mh::TAB_SIZE`] dests
    /// (`EINVAL`); the caller must enforce that (here the table is simply
    /// filled by the first ones).
    pub fn build(kind: SchedKind, flags: u32, dests: &[Dest]) -> Scheduler {
        let algo = match kind {
            SchedKind::Rr => Algo::Rr,
            SchedKind::Wrr => Algo::Wrr(wrr::Wrr::build(dests)),
            SchedKind::Lc => Algo::Lc,
            SchedKind::Wlc => Algo::Wlc,
            SchedKind::Sed => Algo::Sed,
            SchedKind::Nq => Algo::Nq,
            SchedKind::Sh => Algo::Sh(sh::ShTable::build(dests)),
            SchedKind::Mh => Algo::Mh(mh::MhTable::build(dests)),
        };
        Scheduler { flags, algo }
    }

    pub fn kind(&self) -> SchedKind {
        match self.algo {
            Algo::Rr => SchedKind::Rr,
            Algo::Wrr(_) => SchedKind::Wrr,
            Algo::Lc => SchedKind::Lc,
            Algo::Wlc => SchedKind::Wlc,
            Algo::Sed => SchedKind::Sed,
            Algo::Nq => SchedKind::Nq,
            Algo::Sh(_) => SchedKind::Sh,
            Algo::Mh(_) => SchedKind::Mh,
        }
    }

    /// The service flags this was built with (`sched_flags`).
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// Worker side, per new connection: the index into `dests` of the chosen
    /// real server, or `None` ("no destination available").
    ///
    /// `dests` must be the slice this scheduler was built for. `state` is this
    /// worker's [`SchedState`] for the service (rr and wrr only).
    #[inline]
    pub fn schedule(&self, state: &SchedState, dests: &[Dest], input: &SchedInput) -> Option<usize> {
        match &self.algo {
            Algo::Rr => rr::schedule(state, dests),
            Algo::Wrr(w) => w.schedule(state, dests),
            Algo::Lc => lc::schedule(dests),
            Algo::Wlc => wlc::schedule(dests),
            Algo::Sed => sed::schedule(dests),
            Algo::Nq => nq::schedule(dests),
            Algo::Sh(t) => t.schedule(self.flags, dests, input),
            Algo::Mh(t) => t.schedule(self.flags, dests, input),
        }
    }

    /// Fresh state for a new service, or for a service whose scheduler kind
    /// changed (the kernel's `init_service`): list head; wrr also `cw = mw`.
    pub fn init_state(&self, state: &SchedState) {
        state.pos.store(POS_HEAD, Relaxed);
        let cw = match &self.algo {
            Algo::Wrr(w) => w.mw,
            _ => 0,
        };
        state.cw.store(cw, Relaxed);
    }

    /// Control side, when a new snapshot replaces the dest list of a service
    /// that keeps its scheduler kind: carry one worker's state `old` (for
    /// `old_dests`) over to `new` (for `new_dests`, which `self` was built for)
    /// as IPVS does on add/del/update of a dest.
    ///
    /// Dests are matched by `(addr, port)`, their identity in a service.
    /// - If both lists hold the same dests with the same settings, the state is
    ///   copied unchanged (the kernel calls no hook), so this may be called for
    ///   every service on every snapshot.
    /// - rr (`ip_vs_rr_del_dest`; rr has no add/update hook): the position
    ///   stays on the same dest. If that dest was deleted it moves to its
    ///   predecessor: the nearest earlier dest of `old_dests` that survives,
    ///   else the head. (When one snapshot both adds and deletes, the kernel's
    ///   result depends on the order of operations; this picks the order
    ///   "deletes first".)
    /// - wrr (`ip_vs_wrr_dest_changed`): position back to the head; `cw = mw`
    ///   if `cw > mw` or `cw == 0`, else if `di > 1`, `cw = (cw/di)*di + 1`.
    /// - Others keep no state.
    ///
    /// If the scheduler kind changed, call [`Scheduler::init_state`] instead.
    pub fn carry_state(&self, old: &SchedState, new: &SchedState, old_dests: &[Dest], new_dests: &[Dest]) {
        if same_config(old_dests, new_dests) {
            new.pos.store(old.pos.load(Relaxed), Relaxed);
            new.cw.store(old.cw.load(Relaxed), Relaxed);
            return;
        }
        match &self.algo {
            Algo::Rr => rr::carry(old, new, old_dests, new_dests),
            Algo::Wrr(w) => w.carry(old, new),
            _ => self.init_state(new),
        }
    }
}

/// Same dests, in the same order, with the same settings.
fn same_config(a: &[Dest], b: &[Dest]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.addr == y.addr
                && x.port == y.port
                && x.method == y.method
                && x.weight == y.weight
                && x.last_weight == y.last_weight
                && x.u_threshold == y.u_threshold
                && x.l_threshold == y.l_threshold
        })
}

/// Index `i` as stored in a `u32` table or position.
#[inline]
pub(crate) fn to_u32(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(NO_DEST)
}

/// A dest's weight as the kernel's `int`.
#[inline]
pub(crate) fn weight_i32(d: &Dest) -> i32 {
    i32::try_from(d.weight).unwrap_or(i32::MAX)
}

/// Greatest common divisor (`lib/math/gcd.c`), for positive arguments.
pub(crate) fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        let r = a % b;
        a = b;
        b = r;
    }
    a
}

#[cfg(test)]
pub(crate) mod test_util {
    use std::net::Ipv4Addr;
    use std::sync::atomic::Ordering::Relaxed;
    use std::sync::Arc;

    use conf::Method;

    use crate::service::{Dest, DestShared, SchedState};

    /// A dest `10.0.0.<n>:80` with `weight` (and `last_weight` = weight, or 0
    /// if weight is 0, as for a dest added with weight 0).
    pub fn dest(n: u8, weight: u32) -> Dest {
        Dest {
            addr: Ipv4Addr::new(10, 0, 0, n),
            port: 80,
            method: Method::Masq,
            weight,
            last_weight: weight,
            u_threshold: 0,
            l_threshold: 0,
            shared: Arc::new(DestShared::default()),
        }
    }

    pub fn set_conns(d: &Dest, active: i32, inact: i32) {
        d.shared.activeconns.store(active, Relaxed);
        d.shared.inactconns.store(inact, Relaxed);
    }

    pub fn set_overload(d: &Dest, on: bool) {
        d.shared.overload.store(on, Relaxed);
    }

    pub fn state() -> SchedState {
        SchedState::default()
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::*;
    use super::*;
    use crate::service::sched_flags;

    const IN: SchedInput = SchedInput { saddr: Ipv4Addr::new(192, 0, 2, 1), sport: 1234 };

    #[test]
    fn names_round_trip() {
        let names: Vec<&str> = SchedKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names, ["rr", "wrr", "lc", "wlc", "sed", "nq", "sh", "mh"]);
        for k in SchedKind::ALL {
            assert_eq!(SchedKind::from_name(k.name()), Some(k));
            assert_eq!(k.to_string(), k.name());
        }
        assert_eq!(SchedKind::from_name("WRR"), None);
        assert_eq!(SchedKind::from_name("dh"), None);
    }

    #[test]
    fn build_keeps_kind_and_flags() {
        let dests = [dest(1, 1), dest(2, 2)];
        for k in SchedKind::ALL {
            let s = Scheduler::build(k, sched_flags::SCHED1, &dests);
            assert_eq!(s.kind(), k);
            assert_eq!(s.flags(), sched_flags::SCHED1);
        }
    }

    #[test]
    fn empty_service_schedules_nothing() {
        for k in SchedKind::ALL {
            for flags in [0, sched_flags::SCHED1 | sched_flags::SCHED2] {
                let s = Scheduler::build(k, flags, &[]);
                let st = state();
                s.init_state(&st);
                assert_eq!(s.schedule(&st, &[], &IN), None, "{k}");
            }
        }
    }

    #[test]
    fn weight_zero_and_overload_never_chosen() {
        // A(0), B(3, overloaded), C(2): only C may be picked, by every kind
        // except sh/mh (whose table decides; checked in their files).
        let dests = [dest(1, 0), dest(2, 3), dest(3, 2)];
        set_overload(&dests[1], true);
        set_conns(&dests[0], 0, 0);
        set_conns(&dests[2], 50, 50);
        for k in [SchedKind::Rr, SchedKind::Wrr, SchedKind::Lc, SchedKind::Wlc, SchedKind::Sed, SchedKind::Nq] {
            let s = Scheduler::build(k, 0, &dests);
            let st = state();
            s.init_state(&st);
            for _ in 0..20 {
                assert_eq!(s.schedule(&st, &dests, &IN), Some(2), "{k}");
            }
        }
        set_overload(&dests[2], true);
        for k in SchedKind::ALL {
            let s = Scheduler::build(k, sched_flags::SCHED1, &dests);
            let st = state();
            s.init_state(&st);
            assert_eq!(s.schedule(&st, &dests, &IN), None, "{k}");
        }
    }

    #[test]
    fn carry_unchanged_config_copies_state() {
        let dests = [dest(1, 4), dest(2, 3), dest(3, 2)];
        let s = Scheduler::build(SchedKind::Wrr, 0, &dests);
        let st = state();
        s.init_state(&st);
        s.schedule(&st, &dests, &IN);
        s.schedule(&st, &dests, &IN);
        let again: Vec<Dest> = dests.to_vec();
        let st2 = state();
        s.carry_state(&st, &st2, &dests, &again);
        assert_eq!(st2.pos.load(Relaxed), st.pos.load(Relaxed));
        assert_eq!(st2.cw.load(Relaxed), st.cw.load(Relaxed));
    }

    #[test]
    fn gcd_basics() {
        assert_eq!(gcd(12, 18), 6);
        assert_eq!(gcd(7, 1), 1);
        assert_eq!(gcd(5, 5), 5);
        assert_eq!(gcd(0, 5), 5);
    }
}
