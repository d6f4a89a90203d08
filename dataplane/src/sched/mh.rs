//! mh: Maglev hashing (`ip_vs_mh.c`, specs/ipvs.md §1.11).
//!
//! A lookup table of M = 4093 slots (`CONFIG_IP_VS_MH_TAB_INDEX` 12) maps a
//! hash of the client address (and port, with mh-port) to a dest. Each dest
//! has a permutation of the slots from hashes of its own address and port;
//! dests take turns claiming their next free preferred slot, `turns` slots
//! per round in proportion to `last_weight` (so quiescing a dest to weight 0
//! moves no slot). The hashes use the kernel's fixed keys, so the table is the
//! same on every box and across restarts.
use std::net::Ipv4Addr;

use super::hsiphash::{hsiphash_1u32, HsiphashKey};
use super::{gcd, to_u32, SchedInput, NO_DEST};
use crate::service::{sched_flags, Dest};

/// `primes[]` of `ip_vs_mh.c`.
const PRIMES: [usize; 10] = [251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071];
/// `CONFIG_IP_VS_MH_TAB_INDEX` (Kconfig default).
const CONFIG_TAB_INDEX: usize = 12;
/// `IP_VS_MH_TAB_BITS`.
pub const TAB_BITS: u32 = (CONFIG_TAB_INDEX / 2) as u32;
/// `IP_VS_MH_TAB_SIZE` = 4093; also the most dests an mh service may have.
pub const TAB_SIZE: usize = PRIMES[CONFIG_TAB_INDEX - 8];

/// `generate_hash_secret`: fixed keys, so tables are deterministic.
pub const KEY1: HsiphashKey = HsiphashKey([2654435761, 2654435761]);
pub const KEY2: HsiphashKey = HsiphashKey([2654446892, 2654446892]);

/// `ip_vs_mh_hashkey`: `hsiphash` of `offset + ntohs(port) + ntohl(addr)`.
#[inline]
pub fn hashkey(addr: Ipv4Addr, port: u16, key: &HsiphashKey, offset: u32) -> u32 {
    let v = offset.wrapping_add(u32::from(port)).wrapping_add(u32::from(addr));
    hsiphash_1u32(v, key)
}

/// `fls`: 1-based position of the highest set bit, 0 for 0.
#[inline]
fn fls(x: u32) -> u32 {
    32 - x.leading_zeros()
}

/// `struct ip_vs_mh_dest_setup`.
struct DestSetup {
    perm: usize,
    skip: usize,
    turns: u32,
}

/// `struct ip_vs_mh_state`: slot -> index into `dests`, or [`NO_DEST`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MhTable {
    lookup: Box<[u32]>,
}

impl MhTable {
    /// `ip_vs_mh_gcd_weight`, `ip_vs_mh_shift_weight`, `ip_vs_mh_permutate`
    /// and `ip_vs_mh_populate`. With no positive `last_weight` the table is
    /// empty. More than [`TAB_SIZE`] dests (refused by the kernel) leave the
    /// later ones out.
    pub fn build(dests: &[Dest]) -> MhTable {
        let mut lookup = vec![NO_DEST; TAB_SIZE].into_boxed_slice();
        // gcd of the positive last weights; 0 if there are none.
        let g = dests.iter().map(|d| d.last_weight).filter(|&w| w > 0).fold(0, gcd);
        if g < 1 {
            return MhTable { lookup };
        }
        let max_lw = dests.iter().map(|d| d.last_weight).fold(0, u32::max);
        let rshift = fls(max_lw / g).saturating_sub(TAB_BITS);

        let mut setup: Vec<DestSetup> = dests
            .iter()
            .map(|d| {
                let offset = hashkey(d.addr, d.port, &KEY1, 0) as usize % TAB_SIZE;
                let skip = hashkey(d.addr, d.port, &KEY2, 0) as usize % (TAB_SIZE - 1) + 1;
                let lw = d.last_weight;
                let turns = match (lw / g) >> rshift {
                    0 => u32::from(lw != 0),
                    t => t,
                };
                DestSetup { perm: offset, skip, turns }
            })
            .collect();

        let mut taken = vec![false; TAB_SIZE];
        let mut n = 0usize;
        // g >= 1, so some dest has turns >= 1 and every round claims a slot;
        // M is prime and 1 <= skip < M, so each permutation visits every slot.
        'populate: while n < TAB_SIZE {
            for (i, ds) in setup.iter_mut().enumerate() {
                // Ignore a server added with weight 0.
                for _ in 0..ds.turns {
                    // perm < TAB_SIZE always: it starts as `% TAB_SIZE` and
                    // adds skip < TAB_SIZE mod TAB_SIZE.
                    while taken.get(ds.perm).copied().unwrap_or(false) {
                        ds.perm += ds.skip;
                        if ds.perm >= TAB_SIZE {
                            ds.perm -= TAB_SIZE;
                        }
                    }
                    if let (Some(t), Some(slot)) = (taken.get_mut(ds.perm), lookup.get_mut(ds.perm)) {
                        *t = true;
                        *slot = to_u32(i);
                    }
                    n += 1;
                    if n == TAB_SIZE {
                        break 'populate;
                    }
                }
            }
        }
        MhTable { lookup }
    }

    /// The dest index in each slot ([`NO_DEST`] if none).
    pub fn lookup(&self) -> &[u32] {
        &self.lookup
    }

    /// The dest in slot `hash % M`, if any.
    #[inline]
    fn get<'a>(&self, dests: &'a [Dest], hash: u32) -> Option<(usize, &'a Dest)> {
        let slot = hash as usize % TAB_SIZE;
        let i = usize::try_from(*self.lookup.get(slot)?).ok()?;
        Some((i, dests.get(i)?))
    }

    /// `ip_vs_mh_schedule`: `ip_vs_mh_get`, or `ip_vs_mh_get_fallback` with
    /// mh-fallback (`SCHED1`). The port is hashed only with mh-port (`SCHED2`).
    pub fn schedule(&self, flags: u32, dests: &[Dest], input: &SchedInput) -> Option<usize> {
        let port = if flags & sched_flags::SCHED2 != 0 { input.sport } else { 0 };
        let ihash = hashkey(input.saddr, port, &KEY1, 0) % TAB_SIZE as u32;
        let (i, d) = self.get(dests, ihash)?;
        if d.is_eligible() {
            return Some(i);
        }
        if flags & sched_flags::SCHED1 == 0 {
            return None;
        }
        // Loop around the table starting from ihash; stop at an empty slot.
        for offset in 0..TAB_SIZE as u32 {
            let roffset = (offset + ihash) % TAB_SIZE as u32;
            let (i, d) = self.get(dests, hashkey(input.saddr, port, &KEY1, roffset))?;
            if d.is_eligible() {
                return Some(i);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    fn counts(t: &MhTable, n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for &s in t.lookup() {
            c[s as usize] += 1;
        }
        c
    }

    fn three(w: [u32; 3]) -> Vec<Dest> {
        vec![dest(1, w[0]), dest(2, w[1]), dest(3, w[2])]
    }

    #[test]
    fn table_size_and_bits() {
        assert_eq!(TAB_SIZE, 4093);
        assert_eq!(TAB_BITS, 6);
        assert_eq!(fls(0), 0);
        assert_eq!(fls(1), 1);
        assert_eq!(fls(64), 7);
    }

    #[test]
    fn equal_weights_balanced() {
        let t = MhTable::build(&three([1, 1, 1]));
        assert_eq!(t.lookup().len(), 4093);
        // One slot per dest per round: 1365, 1364, 1364 (4093 / 3 = 1364.3).
        assert_eq!(counts(&t, 3), [1365, 1364, 1364]);
        // The weights only matter through their ratio (gcd).
        assert_eq!(MhTable::build(&three([7, 7, 7])), t);
    }

    #[test]
    fn weight_ratio() {
        // 1:2 -> turns 1 and 2: 1365 and 2728 slots.
        let t = MhTable::build(&[dest(1, 1), dest(2, 2)]);
        let c = counts(&t, 2);
        assert_eq!(c[0] + c[1], 4093);
        assert!((c[1] as f64 / c[0] as f64 - 2.0).abs() < 0.01, "{c:?}");
    }

    #[test]
    fn rshift_bounds_turns() {
        // max/g = 1000: fls = 10, rshift 4: turns 1000 >> 4 = 62 and 1 >> 4 = 0
        // -> 1 (lw != 0). Rounds of 62 + 1 slots: 4093 = 64 * 63 + 61, and the
        // 65th round ends inside the first dest's turns: 64 slots for the second.
        let t = MhTable::build(&[dest(1, 1000), dest(2, 1)]);
        assert_eq!(counts(&t, 2), [4093 - 64, 64]);
    }

    #[test]
    fn no_positive_weight_empty_table() {
        let dests = three([0, 0, 0]);
        let t = MhTable::build(&dests);
        assert!(t.lookup().iter().all(|&s| s == NO_DEST));
        let input = SchedInput { saddr: Ipv4Addr::new(192, 0, 2, 7), sport: 1 };
        assert_eq!(t.schedule(sched_flags::SCHED1, &dests, &input), None);
    }

    #[test]
    fn added_with_weight_zero_is_absent() {
        let dests = three([1, 0, 1]); // B has last_weight 0: never added with a weight.
        let t = MhTable::build(&dests);
        assert_eq!(counts(&t, 3)[1], 0);
    }

    #[test]
    fn deterministic() {
        let a = MhTable::build(&three([3, 1, 2]));
        let b = MhTable::build(&three([3, 1, 2]));
        assert_eq!(a, b);
    }

    #[test]
    fn quiescing_moves_no_slot() {
        let dests = three([2, 1, 1]);
        let t = MhTable::build(&dests);
        let mut quiesced = dests.clone();
        quiesced[0].weight = 0; // last_weight stays 2
        assert_eq!(MhTable::build(&quiesced), t);
    }

    #[test]
    fn removal_is_minimally_disruptive() {
        let dests: Vec<Dest> = (1..=6).map(|n| dest(n, 1)).collect();
        let before = MhTable::build(&dests);
        // Delete 10.0.0.3 (index 2); the survivors keep their identity.
        let mut after_dests = dests.clone();
        after_dests.remove(2);
        let after = MhTable::build(&after_dests);
        let addr_of = |ds: &[Dest], s: u32| ds[s as usize].addr;
        let mut kept = 0;
        let mut survivor_slots = 0;
        for (&b, &a) in before.lookup().iter().zip(after.lookup()) {
            if b == 2 {
                continue;
            }
            survivor_slots += 1;
            if addr_of(&dests, b) == addr_of(&after_dests, a) {
                kept += 1;
            }
        }
        let moved = survivor_slots - kept;
        assert!(moved * 100 < survivor_slots * 40, "moved {moved} of {survivor_slots}");
    }

    #[test]
    fn lookup_port_and_fallback() {
        let dests = three([1, 1, 1]);
        let t = MhTable::build(&dests);
        // Find a client whose slot belongs to dest 0.
        let client = (1..=255u8)
            .map(|n| SchedInput { saddr: Ipv4Addr::new(198, 51, 100, n), sport: 5000 })
            .find(|c| t.schedule(0, &dests, c) == Some(0))
            .unwrap();
        // The port is ignored without mh-port.
        let other_port = SchedInput { sport: 6000, ..client };
        assert_eq!(t.schedule(0, &dests, &other_port), Some(0));
        // With mh-port the slot depends on the port: some port moves it.
        assert!((1..200u16).any(|p| {
            let c = SchedInput { sport: p, ..client };
            t.schedule(sched_flags::SCHED2, &dests, &c) != Some(0)
        }));

        // Quiesce dest 0: the table is unchanged, the slot is unavailable.
        let mut q = dests.clone();
        q[0].weight = 0;
        let tq = MhTable::build(&q);
        assert_eq!(tq, t);
        assert_eq!(tq.schedule(0, &q, &client), None);
        // mh-fallback probes to another dest, deterministically.
        let fb = tq.schedule(sched_flags::SCHED1, &q, &client);
        assert!(matches!(fb, Some(1) | Some(2)), "{fb:?}");
        assert_eq!(tq.schedule(sched_flags::SCHED1, &q, &client), fb);
        // Overloaded dests are skipped the same way.
        set_overload(&dests[0], true);
        assert_eq!(t.schedule(0, &dests, &client), None);
        assert_eq!(t.schedule(sched_flags::SCHED1, &dests, &client), fb);
        for d in &dests {
            set_overload(d, true);
        }
        assert_eq!(t.schedule(sched_flags::SCHED1, &dests, &client), None);
    }
}
