//! sed: shortest expected delay (`ip_vs_sed.c`, specs/ipvs.md §1.6).
//!
//! wlc's search with overhead `activeconns + 1` (inactive conns ignored):
//! minimises `(C+1)/W`, strict comparison, the first wins.
use super::wlc::least_by;
use crate::service::Dest;

/// `ip_vs_sed_dest_overhead`.
#[inline]
pub fn overhead(d: &Dest) -> u64 {
    u64::from(d.activeconns()) + 1
}

/// `ip_vs_sed_schedule`.
pub fn schedule(dests: &[Dest]) -> Option<usize> {
    least_by(dests, overhead)
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    #[test]
    fn expected_delay() {
        // A w1 active 0: (0+1)/1 = 1.
        // B w3 active 1: (1+1)/3 = 0.67.  B wins (1*3 > 2*1).
        // C w2 active 1: (1+1)/2 = 1.     (2*2 > 2*3 false)
        let dests = [dest(1, 1), dest(2, 3), dest(3, 2)];
        set_conns(&dests[1], 1, 0);
        set_conns(&dests[2], 1, 0);
        assert_eq!(schedule(&dests), Some(1));
        // Inactive conns do not count.
        set_conns(&dests[1], 1, 1000);
        assert_eq!(schedule(&dests), Some(1));
        // B at 3 active: 4/3 = 1.33 > A's 1; C 2/2 = 1 ties A, A stays.
        set_conns(&dests[1], 3, 0);
        assert_eq!(schedule(&dests), Some(0));
    }

    #[test]
    fn idle_heavier_server_wins() {
        // All idle: A 1/1, B 1/5: B (1*5 > 1*1); C 1/5 ties B, B stays.
        let dests = [dest(1, 1), dest(2, 5), dest(3, 5)];
        assert_eq!(schedule(&dests), Some(1));
    }

    #[test]
    fn weight_zero_and_overload() {
        let dests = [dest(1, 0), dest(2, 9), dest(3, 1)];
        set_overload(&dests[1], true);
        set_conns(&dests[2], 100, 0);
        assert_eq!(schedule(&dests), Some(2));
        set_overload(&dests[2], true);
        assert_eq!(schedule(&dests), None);
    }
}
