//! nq: never queue (`ip_vs_nq.c`, specs/ipvs.md §1.7).
//!
//! Skipping overloaded and weight-0 dests, the first one with no active
//! connection is taken at once; otherwise choose like sed, minimising
//! `(active+1)/weight` with a strict comparison (the first wins).
use super::sed::overhead;
use super::weight_i32;
use crate::service::Dest;

/// `ip_vs_nq_schedule`.
pub fn schedule(dests: &[Dest]) -> Option<usize> {
    let mut least: Option<(usize, u64, u128)> = None;
    for (i, d) in dests.iter().enumerate() {
        if !d.is_eligible() {
            continue;
        }
        // Return the server directly if it is idle.
        if d.activeconns() == 0 {
            return Some(i);
        }
        let doh = overhead(d);
        let dw = u128::from(weight_i32(d).unsigned_abs());
        if least.is_none_or(|(_, loh, lw)| u128::from(loh) * dw > u128::from(doh) * lw) {
            least = Some((i, doh, dw));
        }
    }
    least.map(|(i, _, _)| i)
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    #[test]
    fn first_idle_wins_regardless_of_weight() {
        // B and C idle: B, the first idle one, though C is far heavier and
        // A's expected delay (1+1)/10 is lower than B's 1/1.
        let dests = [dest(1, 10), dest(2, 1), dest(3, 50)];
        set_conns(&dests[0], 1, 0);
        assert_eq!(schedule(&dests), Some(1));
        // Inactive conns do not make a server busy.
        set_conns(&dests[1], 0, 500);
        assert_eq!(schedule(&dests), Some(1));
    }

    #[test]
    fn none_idle_is_sed() {
        // A w1 active 1: 2/1 = 2. B w4 active 3: 4/4 = 1. C w2 active 1: 2/2 = 1.
        // B beats A (2*4 > 4*1); C ties B (4*2 > 2*4 false): B.
        let dests = [dest(1, 1), dest(2, 4), dest(3, 2)];
        set_conns(&dests[0], 1, 0);
        set_conns(&dests[1], 3, 0);
        set_conns(&dests[2], 1, 0);
        assert_eq!(schedule(&dests), Some(1));
    }

    #[test]
    fn idle_but_ineligible_is_skipped() {
        // A idle but quiesced, B idle but overloaded, C busy, D idle: D.
        let dests = [dest(1, 0), dest(2, 1), dest(3, 1), dest(4, 1)];
        set_overload(&dests[1], true);
        set_conns(&dests[2], 7, 0);
        assert_eq!(schedule(&dests), Some(3));
        set_overload(&dests[3], true);
        assert_eq!(schedule(&dests), Some(2));
        set_overload(&dests[2], true);
        assert_eq!(schedule(&dests), None);
    }
}
