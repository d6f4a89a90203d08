//! rr: round robin (`ip_vs_rr.c`, specs/ipvs.md §1.2).
//!
//! State: `SchedState::pos`, the index of the last chosen dest, or
//! [`POS_HEAD`] before the first pick. A walk starts after it, wraps round
//! and takes the first eligible dest; after one full cycle it gives up. A
//! failed walk leaves the position where it was.
use std::sync::atomic::Ordering::Relaxed;

use super::{to_u32, POS_HEAD};
use crate::service::{Dest, SchedState};

/// `ip_vs_rr_schedule`.
pub fn schedule(state: &SchedState, dests: &[Dest]) -> Option<usize> {
    let n = dests.len();
    let pos = state.pos.load(Relaxed);
    // From the head: one pass over the list. From dest i: i+1..n, then 0..=i
    // (the kernel's second pass stops at `last` after testing it).
    let start = match usize::try_from(pos) {
        Ok(p) if pos != POS_HEAD && p < n => p + 1,
        _ => 0,
    };
    let after = dests.iter().enumerate().skip(start);
    let before = dests.iter().enumerate().take(start);
    let (i, _) = after.chain(before).find(|(_, d)| d.is_eligible())?;
    state.pos.store(to_u32(i), Relaxed);
    Some(i)
}

/// Carry the position over a dest-list change (`ip_vs_rr_del_dest`): stay on
/// the same dest, found by `(addr, port)`; if it was deleted, move to the
/// nearest earlier dest that survives, else to the head.
pub fn carry(old: &SchedState, new: &SchedState, old_dests: &[Dest], new_dests: &[Dest]) {
    let pos = old.pos.load(Relaxed);
    let new_pos = match usize::try_from(pos) {
        Ok(p) if pos != POS_HEAD && p < old_dests.len() => old_dests
            .iter()
            .take(p + 1)
            .rev()
            .find_map(|d| new_dests.iter().position(|n| n.addr == d.addr && n.port == d.port))
            .map_or(POS_HEAD, to_u32),
        _ => POS_HEAD,
    };
    new.pos.store(new_pos, Relaxed);
    new.cw.store(0, Relaxed);
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    fn picks(st: &SchedState, dests: &[Dest], n: usize) -> Vec<Option<usize>> {
        (0..n).map(|_| schedule(st, dests)).collect()
    }

    #[test]
    fn cycles_in_list_order() {
        let dests = [dest(1, 1), dest(2, 5), dest(3, 1)];
        let st = state();
        assert_eq!(picks(&st, &dests, 7), [0, 1, 2, 0, 1, 2, 0].map(Some));
    }

    #[test]
    fn skips_weight_zero_and_overloaded() {
        let dests = [dest(1, 1), dest(2, 0), dest(3, 1), dest(4, 1)];
        set_overload(&dests[3], true);
        let st = state();
        assert_eq!(picks(&st, &dests, 5), [0, 2, 0, 2, 0].map(Some));
        // Overload clears: D comes back in its turn.
        set_overload(&dests[3], false);
        assert_eq!(picks(&st, &dests, 4), [2, 3, 0, 2].map(Some));
    }

    #[test]
    fn gives_up_after_a_full_cycle_and_keeps_position() {
        let dests = [dest(1, 1), dest(2, 1), dest(3, 1)];
        let st = state();
        assert_eq!(schedule(&st, &dests), Some(0));
        assert_eq!(schedule(&st, &dests), Some(1));
        for d in &dests {
            set_overload(d, true);
        }
        assert_eq!(schedule(&st, &dests), None);
        assert_eq!(st.pos.load(Relaxed), 1);
        // Only the last-picked one recovers: it is found as the last candidate.
        set_overload(&dests[1], false);
        assert_eq!(schedule(&st, &dests), Some(1));
        set_overload(&dests[0], false);
        assert_eq!(schedule(&st, &dests), Some(0));
    }

    #[test]
    fn stale_position_restarts_at_head() {
        let dests = [dest(1, 1), dest(2, 1)];
        let st = state();
        st.pos.store(7, Relaxed);
        assert_eq!(schedule(&st, &dests), Some(0));
    }

    #[test]
    fn carry_follows_dest_and_deletion_moves_to_predecessor() {
        let old = [dest(1, 1), dest(2, 1), dest(3, 1)];
        let st = state();
        st.pos.store(1, Relaxed); // last pick: 10.0.0.2

        // Add 10.0.0.9 at the head: same dest, now index 2.
        let added = [dest(9, 1), dest(1, 1), dest(2, 1), dest(3, 1)];
        let st2 = state();
        carry(&st, &st2, &old, &added);
        assert_eq!(st2.pos.load(Relaxed), 2);
        assert_eq!(schedule(&st2, &added), Some(3));

        // Delete 10.0.0.2 (the pointed-to dest): pointer to its predecessor
        // 10.0.0.1, so 10.0.0.3 is next, as in the kernel.
        let deleted = [dest(1, 1), dest(3, 1)];
        let st3 = state();
        carry(&st, &st3, &old, &deleted);
        assert_eq!(st3.pos.load(Relaxed), 0);
        assert_eq!(schedule(&st3, &deleted), Some(1));

        // Delete the first dest while pointing at it: back to the head.
        st.pos.store(0, Relaxed);
        let st4 = state();
        carry(&st, &st4, &old, &old[1..]);
        assert_eq!(st4.pos.load(Relaxed), POS_HEAD);
        assert_eq!(schedule(&st4, &old[1..]), Some(0));
    }
}
