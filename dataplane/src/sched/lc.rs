//! lc: least connection (`ip_vs_lc.c`, specs/ipvs.md §1.4).
//!
//! The eligible dest with the smallest overhead `active*256 + inactive`
//! (`ip_vs_dest_conn_overhead`; the `<<5` in the kernel file's comment is
//! stale). Strict `<`: the first minimum in list order wins.
use crate::service::Dest;

/// `ip_vs_lc_schedule`.
pub fn schedule(dests: &[Dest]) -> Option<usize> {
    let mut least: Option<(usize, u64)> = None;
    for (i, d) in dests.iter().enumerate() {
        if !d.is_eligible() {
            continue;
        }
        let doh = d.overhead();
        if least.is_none_or(|(_, loh)| doh < loh) {
            least = Some((i, doh));
        }
    }
    least.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    #[test]
    fn least_overhead_wins() {
        // Overheads: A 2*256+10 = 522, B 1*256+300 = 556, C 0*256+600 = 600,
        // D 2*256+5 = 517. D wins: inactive conns weigh 1/256 of active ones.
        let dests = [dest(1, 1), dest(2, 1), dest(3, 1), dest(4, 1)];
        set_conns(&dests[0], 2, 10);
        set_conns(&dests[1], 1, 300);
        set_conns(&dests[2], 0, 600);
        set_conns(&dests[3], 2, 5);
        assert_eq!(schedule(&dests), Some(3));
        // Weight does not matter beyond 0 / not 0.
        let heavy = [dest(1, 100), dest(2, 1)];
        set_conns(&heavy[0], 1, 0);
        assert_eq!(schedule(&heavy), Some(1));
    }

    #[test]
    fn tie_goes_to_first_in_list() {
        // A 1*256+0 = 256, B 0*256+256 = 256, C 256: the first (newest) wins.
        let dests = [dest(1, 1), dest(2, 1), dest(3, 1)];
        set_conns(&dests[0], 1, 0);
        set_conns(&dests[1], 0, 256);
        set_conns(&dests[2], 1, 0);
        assert_eq!(schedule(&dests), Some(0));
    }

    #[test]
    fn skips_weight_zero_and_overloaded() {
        // A idle but quiesced, B idle but overloaded, C busy: C.
        let dests = [dest(1, 0), dest(2, 1), dest(3, 1)];
        set_overload(&dests[1], true);
        set_conns(&dests[2], 9, 9);
        assert_eq!(schedule(&dests), Some(2));
        set_overload(&dests[2], true);
        assert_eq!(schedule(&dests), None);
    }
}
