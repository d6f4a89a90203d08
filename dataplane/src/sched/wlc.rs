//! wlc: weighted least connection, ipvsadm's default (`ip_vs_wlc.c`,
//! specs/ipvs.md §1.5).
//!
//! Minimises `overhead / weight` without division: the first eligible dest is
//! `least`; a later non-overloaded dest `d` replaces it when
//! `loh * w(d) > doh * w(least)`. Strict, so ties keep the earlier dest; a
//! weight-0 dest never wins (its left side is 0). The kernel multiplies in
//! 64 bits; 128 here so no weight or count can overflow.
use super::weight_i32;
use crate::service::Dest;

/// `ip_vs_wlc_schedule`.
pub fn schedule(dests: &[Dest]) -> Option<usize> {
    least_by(dests, Dest::overhead)
}

/// The wlc/sed search with overhead function `oh`.
#[inline]
pub(crate) fn least_by(dests: &[Dest], oh: impl Fn(&Dest) -> u64) -> Option<usize> {
    let first = dests.iter().position(Dest::is_eligible)?;
    let mut least = first;
    let mut loh = dests.get(first).map(&oh)?;
    let mut lw = dests.get(first).map(weight_of)?;
    for (i, d) in dests.iter().enumerate().skip(first + 1) {
        if d.is_overloaded() {
            continue;
        }
        let doh = oh(d);
        let dw = weight_of(d);
        if u128::from(loh) * dw > u128::from(doh) * lw {
            least = i;
            loh = doh;
            lw = dw;
        }
    }
    Some(least)
}

#[inline]
fn weight_of(d: &Dest) -> u128 {
    weight_i32(d).unsigned_abs().into()
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    #[test]
    fn weighted_choice() {
        // A w1: 1*256+0 = 256 -> 256/1 = 256.
        // B w3: 2*256+30 = 542 -> 542/3 = 180.7.
        // C w2: 1*256+100 = 356 -> 356/2 = 178.   C wins.
        // Check: vs A: 256*3 = 768 > 542*1 -> B; vs B: 542*2 = 1084 > 356*3 = 1068 -> C.
        let dests = [dest(1, 1), dest(2, 3), dest(3, 2)];
        set_conns(&dests[0], 1, 0);
        set_conns(&dests[1], 2, 30);
        set_conns(&dests[2], 1, 100);
        assert_eq!(schedule(&dests), Some(2));
        // C at 3 active: (3*256+100) = 868; 542*2 = 1084 > 868*3 = 2604 is
        // false, so B.
        set_conns(&dests[2], 3, 100);
        assert_eq!(schedule(&dests), Some(1));
    }

    #[test]
    fn ties_keep_earlier() {
        // A w2 overhead 512 (256/unit), B w1 overhead 256 (256/unit): 512*1 > 256*2
        // is false, so A stays.
        let dests = [dest(1, 2), dest(2, 1)];
        set_conns(&dests[0], 2, 0);
        set_conns(&dests[1], 1, 0);
        assert_eq!(schedule(&dests), Some(0));
        // All idle: 0 > 0 never, the first eligible wins.
        let idle = [dest(1, 1), dest(2, 5), dest(3, 9)];
        assert_eq!(schedule(&idle), Some(0));
    }

    #[test]
    fn weight_zero_and_overload() {
        // A quiesced and idle, B overloaded and idle, C and D busy: the first
        // eligible is C; D (w0) cannot win: 0 > x is false.
        let dests = [dest(1, 0), dest(2, 4), dest(3, 1), dest(4, 0)];
        set_overload(&dests[1], true);
        set_conns(&dests[2], 50, 0);
        assert_eq!(schedule(&dests), Some(2));
        set_overload(&dests[2], true);
        assert_eq!(schedule(&dests), None);
    }
}
