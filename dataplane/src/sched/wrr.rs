//! wrr: weighted round robin (`ip_vs_wrr.c`, specs/ipvs.md §1.3).
//!
//! Built per dest list: `di` = gcd of the positive weights (1 if none) and
//! `mw` = max weight − (di − 1), so the last pass runs at `cw = 1`.
//! Per worker: `cl` in `SchedState::pos` ([`POS_HEAD`] = the list head) and
//! `cw` in `SchedState::cw`. Each pass walks the list picking dests with
//! `weight >= cw` that are not overloaded; at the end of the list `cw -= di`,
//! and below 1 it wraps to `mw`. Weight-0 dests are never picked (`cw >= 1`).
use std::sync::atomic::Ordering::Relaxed;

use super::{gcd, to_u32, weight_i32, POS_HEAD};
use crate::service::{Dest, SchedState};

/// `struct ip_vs_wrr_mark` without the per-worker `cl` and `cw`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wrr {
    /// Maximum weight minus `di - 1`; 0 when every weight is 0.
    pub mw: i32,
    /// Step: gcd of the positive weights, 1 if none.
    pub di: i32,
}

impl Wrr {
    /// `ip_vs_wrr_gcd_weight` and `ip_vs_wrr_max_weight`.
    pub fn build(dests: &[Dest]) -> Wrr {
        let g = dests.iter().map(weight_i32).filter(|&w| w > 0).fold(0i32, |g, w| {
            if g > 0 {
                // Both positive: the gcd fits i32.
                i32::try_from(gcd(w.unsigned_abs(), g.unsigned_abs())).unwrap_or(1)
            } else {
                w
            }
        });
        let di = if g > 0 { g } else { 1 };
        let max = dests.iter().map(weight_i32).fold(0, i32::max);
        Wrr { mw: max - (di - 1), di }
    }

    /// `ip_vs_wrr_init_svc`: `cl` = head, `cw = mw`.
    pub fn init(&self, state: &SchedState) {
        state.pos.store(POS_HEAD, Relaxed);
        state.cw.store(self.mw, Relaxed);
    }

    /// `ip_vs_wrr_dest_changed`, with `self` built for the new list: `cl` back
    /// to the head; `cw = mw` if it is above `mw` or 0, else rounded down to
    /// the step and moved to the last value before it.
    pub fn carry(&self, old: &SchedState, new: &SchedState) {
        let cw = old.cw.load(Relaxed);
        let cw = if cw > self.mw || cw == 0 {
            self.mw
        } else if self.di > 1 {
            (cw / self.di) * self.di + 1
        } else {
            cw
        };
        new.pos.store(POS_HEAD, Relaxed);
        new.cw.store(cw, Relaxed);
    }

    /// `ip_vs_wrr_schedule`, step for step.
    pub fn schedule(&self, state: &SchedState, dests: &[Dest]) -> Option<usize> {
        // No available dests?
        if self.mw == 0 {
            return None;
        }
        let n = dests.len();
        let pos = state.pos.load(Relaxed);
        // `cl`: None = the list head.
        let cl = usize::try_from(pos).ok().filter(|&p| pos != POS_HEAD && p < n);
        let mut cw = state.cw.load(Relaxed);
        // Unreachable in the kernel (cw stays in 1..=mw); guards a state that
        // missed init_state.
        if cw <= 0 || cw > self.mw {
            cw = self.mw;
        }
        let last = cl;
        let mut from = cl;
        let mut stop: Option<usize> = None;
        let mut last_pass = false;
        let mut restarted = false;
        // Each turn of the loop ends at the head; the kernel stops after every
        // dest was checked at the lowest pass, so it terminates within
        // mw/di + 2 turns.
        let (found, new_cl) = 'sched: loop {
            let start = from.map_or(0, |i| i + 1);
            for (i, d) in dests.iter().enumerate().skip(start) {
                if !d.is_overloaded() && weight_i32(d) >= cw {
                    break 'sched (Some(i), Some(i));
                }
                if stop == Some(i) {
                    // All destinations are overloaded.
                    break 'sched (None, Some(i));
                }
            }
            from = None;
            cw -= self.di;
            if cw <= 0 {
                cw = self.mw;
                // Stop if the last pass was tried from the first dest: either
                // this walk started above di and then checked all dests at
                // weight >= 1, or it started at the head.
                if last_pass || last.is_none() {
                    break 'sched (None, None);
                }
                restarted = true;
            }
            last_pass = cw <= self.di;
            if last_pass && restarted && last.is_some() {
                // The first walk at weight >= 1 covered only the dests after
                // `last`; now check those up to `last`.
                stop = last;
            }
        };
        state.pos.store(new_cl.map_or(POS_HEAD, to_u32), Relaxed);
        state.cw.store(cw, Relaxed);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;
    use proptest::prelude::*;

    fn run(w: &Wrr, st: &SchedState, dests: &[Dest], n: usize) -> Vec<Option<usize>> {
        (0..n).map(|_| w.schedule(st, dests)).collect()
    }

    const A: Option<usize> = Some(0);
    const B: Option<usize> = Some(1);
    const C: Option<usize> = Some(2);

    #[test]
    fn worked_example_a4_b3_c2() {
        // §1.3: gcd 1, mw 4; passes at cw = 4 (A), 3 (A B), 2 (A B C), 1 (A B C).
        let dests = [dest(1, 4), dest(2, 3), dest(3, 2)];
        let w = Wrr::build(&dests);
        assert_eq!(w, Wrr { mw: 4, di: 1 });
        let st = state();
        w.init(&st);
        let cycle = [A, A, B, A, B, C, A, B, C];
        let got = run(&w, &st, &dests, 27);
        for (i, chunk) in got.chunks(9).enumerate() {
            assert_eq!(chunk, cycle, "cycle {i}");
        }
    }

    #[test]
    fn gcd_step_and_mw() {
        // Weights 6, 4, 2: di = 2, mw = 6 - 1 = 5; passes at cw = 5, 3, 1:
        // A; A B; A B C.
        let dests = [dest(1, 6), dest(2, 4), dest(3, 2)];
        let w = Wrr::build(&dests);
        assert_eq!(w, Wrr { mw: 5, di: 2 });
        let st = state();
        w.init(&st);
        assert_eq!(run(&w, &st, &dests, 12), [A, A, B, A, B, C, A, A, B, A, B, C]);
    }

    #[test]
    fn all_weights_zero() {
        let dests = [dest(1, 0), dest(2, 0)];
        let w = Wrr::build(&dests);
        assert_eq!(w, Wrr { mw: 0, di: 1 });
        let st = state();
        w.init(&st);
        assert_eq!(w.schedule(&st, &dests), None);
    }

    #[test]
    fn weight_zero_never_chosen_and_overload_skipped() {
        let dests = [dest(1, 0), dest(2, 2), dest(3, 1)];
        let w = Wrr::build(&dests);
        let st = state();
        w.init(&st);
        // cw = 2: B; cw = 1: B C.
        assert_eq!(run(&w, &st, &dests, 6), [B, B, C, B, B, C]);
        set_overload(&dests[1], true);
        assert_eq!(run(&w, &st, &dests, 3), [C, C, C]);
    }

    #[test]
    fn all_overloaded_stops_at_last() {
        // Seven picks (A A B A B C A) leave cl = A, cw = 1. All overloaded: the
        // walk wraps to cw = mw (restarted), goes down to the last pass with
        // `stop = last` and gives up on reaching A.
        let dests = [dest(1, 4), dest(2, 3), dest(3, 2)];
        let w = Wrr::build(&dests);
        let st = state();
        w.init(&st);
        assert_eq!(run(&w, &st, &dests, 7), [A, A, B, A, B, C, A]);
        for d in &dests {
            set_overload(d, true);
        }
        assert_eq!(w.schedule(&st, &dests), None);
        assert_eq!((st.pos.load(Relaxed), st.cw.load(Relaxed)), (0, 1));
        for d in &dests {
            set_overload(d, false);
        }
        assert_eq!(run(&w, &st, &dests, 3), [B, C, A]);
    }

    #[test]
    fn all_overloaded_after_last_pass_stops_at_head() {
        // Two picks (A A) leave cl = A, cw = 3. All overloaded: passes at 3, 2
        // and then 1 over every dest (last_pass), so at the wrap it gives up
        // with cl = head and cw = mw.
        let dests = [dest(1, 4), dest(2, 3), dest(3, 2)];
        let w = Wrr::build(&dests);
        let st = state();
        w.init(&st);
        assert_eq!(run(&w, &st, &dests, 2), [A, A]);
        for d in &dests {
            set_overload(d, true);
        }
        assert_eq!(w.schedule(&st, &dests), None);
        assert_eq!((st.pos.load(Relaxed), st.cw.load(Relaxed)), (POS_HEAD, 4));
        for d in &dests {
            set_overload(d, false);
        }
        assert_eq!(run(&w, &st, &dests, 3), [A, A, B]);
    }

    #[test]
    fn carry_resets_cl_and_adjusts_cw() {
        let st = state();
        st.pos.store(1, Relaxed);

        // cw above the new mw: cw = mw.
        st.cw.store(4, Relaxed);
        let w = Wrr::build(&[dest(1, 2), dest(2, 1)]);
        let new = state();
        w.carry(&st, &new);
        assert_eq!((new.pos.load(Relaxed), new.cw.load(Relaxed)), (POS_HEAD, 2));

        // cw == 0: cw = mw.
        st.cw.store(0, Relaxed);
        w.carry(&st, &new);
        assert_eq!(new.cw.load(Relaxed), 2);

        // di > 1: cw = (cw/di)*di + 1. Weights 9, 6: di 3, mw 7; cw 5 -> 4.
        st.cw.store(5, Relaxed);
        let w = Wrr::build(&[dest(1, 9), dest(2, 6)]);
        assert_eq!(w, Wrr { mw: 7, di: 3 });
        w.carry(&st, &new);
        assert_eq!(new.cw.load(Relaxed), 4);

        // di == 1 and cw in range: unchanged.
        st.cw.store(3, Relaxed);
        let w = Wrr::build(&[dest(1, 4), dest(2, 3)]);
        w.carry(&st, &new);
        assert_eq!((new.pos.load(Relaxed), new.cw.load(Relaxed)), (POS_HEAD, 3));
    }

    #[test]
    fn weight_change_mid_cycle() {
        // A(4) B(3) C(2), two picks (A A; cw = 3, cl = A), then C goes to 4:
        // new mw 4, di 1, cw 3 kept, cl to head: pass cw = 3 gives A B C.
        let dests = [dest(1, 4), dest(2, 3), dest(3, 2)];
        let w = Wrr::build(&dests);
        let st = state();
        w.init(&st);
        assert_eq!(run(&w, &st, &dests, 2), [A, A]);
        let new_dests = [dest(1, 4), dest(2, 3), dest(3, 4)];
        let w2 = Wrr::build(&new_dests);
        let st2 = state();
        w2.carry(&st, &st2);
        assert_eq!(run(&w2, &st2, &new_dests, 5), [A, B, C, A, B]);
    }

    proptest! {
        /// Over whole cycles each dest gets weight/di picks; None only when no
        /// dest is eligible; the walk always terminates.
        #[test]
        fn proportional_and_terminates(
            weights in proptest::collection::vec(0u32..12, 1..7),
            overloaded in proptest::collection::vec(any::<bool>(), 7),
            start in 0u32..8,
        ) {
            let dests: Vec<Dest> = weights.iter().enumerate().map(|(i, &w)| dest(i as u8 + 1, w)).collect();
            let w = Wrr::build(&dests);
            let st = state();
            w.init(&st);
            let total: u32 = weights.iter().map(|&x| x / w.di as u32).sum();
            if total > 0 {
                let mut count = vec![0u32; dests.len()];
                for _ in 0..total * 3 {
                    let i = w.schedule(&st, &dests).unwrap();
                    count[i] += 1;
                }
                for (i, &x) in weights.iter().enumerate() {
                    prop_assert_eq!(count[i], 3 * (x / w.di as u32));
                }
            }
            for (d, &o) in dests.iter().zip(&overloaded) {
                set_overload(d, o);
            }
            let any_eligible = dests.iter().any(|d| d.is_eligible());
            st.pos.store(if (start as usize) < dests.len() { start } else { POS_HEAD }, Relaxed);
            for _ in 0..20 {
                match w.schedule(&st, &dests) {
                    Some(i) => prop_assert!(dests[i].is_eligible()),
                    None => prop_assert!(!any_eligible),
                }
            }
        }
    }
}
