//! sh: source hashing (`ip_vs_sh.c`, specs/ipvs.md §1.9).
//!
//! A table of 256 buckets is filled in list order, each dest taking `weight`
//! consecutive buckets (a weight-0 dest still takes one, because the count is
//! tested after it is incremented), wrapping round the list; rebuilt on every
//! change. A client address (and port, with sh-port) hashes to a bucket; an
//! unavailable dest there (weight 0 or OVERLOAD) means no destination unless
//! sh-fallback probes further.
use std::net::Ipv4Addr;

use super::{to_u32, SchedInput, NO_DEST};
use crate::service::{sched_flags, Dest};

/// `CONFIG_IP_VS_SH_TAB_BITS`.
pub const TAB_BITS: u32 = 8;
/// `IP_VS_SH_TAB_SIZE`.
pub const TAB_SIZE: usize = 1 << TAB_BITS;
const TAB_MASK: u32 = (1 << TAB_BITS) - 1;

/// `GOLDEN_RATIO_32` of `include/linux/hash.h`.
const GOLDEN_RATIO_32: u32 = 0x61C8_8647;

/// `hash_32(val, bits)`: the top `bits` bits of `val * GOLDEN_RATIO_32`.
#[inline]
pub fn hash_32(val: u32, bits: u32) -> u32 {
    val.wrapping_mul(GOLDEN_RATIO_32) >> (32 - bits)
}

/// `ip_vs_sh_hashkey`: `(offset + hash_32(port + addr, 8)) & 255`, with
/// `port` and `addr` in host order (`ntohs`, `ntohl`).
#[inline]
pub fn hashkey(addr: Ipv4Addr, port: u16, offset: u32) -> usize {
    let v = u32::from(port).wrapping_add(u32::from(addr));
    (offset.wrapping_add(hash_32(v, TAB_BITS)) & TAB_MASK) as usize
}

/// `struct ip_vs_sh_state`: bucket -> index into `dests`, or [`NO_DEST`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShTable {
    buckets: Box<[u32; TAB_SIZE]>,
}

impl ShTable {
    /// `ip_vs_sh_reassign`.
    pub fn build(dests: &[Dest]) -> ShTable {
        let mut buckets = Box::new([NO_DEST; TAB_SIZE]);
        if !dests.is_empty() {
            let mut p = 0usize;
            let mut d_count = 0u32;
            for b in buckets.iter_mut() {
                if p >= dests.len() {
                    p = 0;
                }
                *b = to_u32(p);
                // Don't move to the next dest until it has `weight` buckets.
                d_count += 1;
                if dests.get(p).is_none_or(|d| d_count >= d.weight) {
                    p += 1;
                    d_count = 0;
                }
            }
        }
        ShTable { buckets }
    }

    /// The dest index in each bucket ([`NO_DEST`] if the service had none).
    pub fn buckets(&self) -> &[u32; TAB_SIZE] {
        &self.buckets
    }

    /// The dest in bucket `hash`, if any.
    #[inline]
    fn get<'a>(&self, dests: &'a [Dest], hash: usize) -> Option<(usize, &'a Dest)> {
        let i = usize::try_from(*self.buckets.get(hash)?).ok()?;
        Some((i, dests.get(i)?))
    }

    /// `ip_vs_sh_schedule`: `ip_vs_sh_get`, or `ip_vs_sh_get_fallback` with
    /// sh-fallback (`SCHED1`). The port is hashed only with sh-port (`SCHED2`).
    pub fn schedule(&self, flags: u32, dests: &[Dest], input: &SchedInput) -> Option<usize> {
        let port = if flags & sched_flags::SCHED2 != 0 { input.sport } else { 0 };
        let ihash = hashkey(input.saddr, port, 0);
        let (i, d) = self.get(dests, ihash)?;
        if d.is_eligible() {
            return Some(i);
        }
        if flags & sched_flags::SCHED1 == 0 {
            return None;
        }
        // Loop around the table starting from the original hash value (so it
        // is deterministic); stop at an empty bucket.
        for offset in 0..TAB_SIZE {
            let roffset = (offset + ihash) % TAB_SIZE;
            let hash = hashkey(input.saddr, port, roffset as u32);
            let (i, d) = self.get(dests, hash)?;
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

    fn input(a: [u8; 4], sport: u16) -> SchedInput {
        SchedInput { saddr: Ipv4Addr::from(a), sport }
    }

    #[test]
    fn fill_by_weight_with_weight_zero_taking_one_bucket() {
        // Weights A 2, B 1, C 0: A A B C, repeated: 128/64/64 buckets.
        let dests = [dest(1, 2), dest(2, 1), dest(3, 0)];
        let t = ShTable::build(&dests);
        for (b, &d) in t.buckets().iter().enumerate() {
            assert_eq!(d, [0, 0, 1, 2][b % 4], "bucket {b}");
        }
        // A weight above 256 fills the whole table with the first dest.
        let t = ShTable::build(&[dest(1, 300), dest(2, 1)]);
        assert!(t.buckets().iter().all(|&d| d == 0));
        // No dests: all empty.
        assert!(ShTable::build(&[]).buckets().iter().all(|&d| d == NO_DEST));
    }

    #[test]
    fn hash_of_known_address() {
        // 10.0.0.1, port 0: v = ntohl(addr) = 0x0A000001.
        // v * 0x61C88647 = 0x61C88647 + 0x0A000000 * 0x61C88647;
        // 0x0A000000 * 0x61C88647 mod 2^32 = (0x0A * 0x47 mod 0x100) << 24 = 0xC6 << 24,
        // so the product is 0x61C88647 + 0xC6000000 = 0x27C88647 (mod 2^32); >> 24 = 0x27 = 39.
        assert_eq!(hash_32(0x0A00_0001, 8), 39);
        assert_eq!(hashkey(Ipv4Addr::new(10, 0, 0, 1), 0, 0), 39);
        // Offset is added before the mask: (250 + 39) & 255 = 33.
        assert_eq!(hashkey(Ipv4Addr::new(10, 0, 0, 1), 0, 250), 33);
        // Port 80: v = 0x0A000051; 0x51 * 0x61C88647 = 0x1E_F072_7C77 -> 0xF0727C77;
        // + 0xC6000000 = 0xB6727C77 (mod 2^32); >> 24 = 0xB6 = 182.
        assert_eq!(hashkey(Ipv4Addr::new(10, 0, 0, 1), 80, 0), 182);
    }

    #[test]
    fn lookup_port_and_fallback() {
        // Table A A B C ... (bucket % 4). 10.0.0.1 -> bucket 39 -> C (weight 0).
        let dests = [dest(1, 2), dest(2, 1), dest(3, 0)];
        let t = ShTable::build(&dests);
        let client = input([10, 0, 0, 1], 80);
        assert_eq!(t.schedule(0, &dests, &client), None);
        // sh-port: bucket 182 -> 182 % 4 = 2 -> B.
        assert_eq!(t.schedule(sched_flags::SCHED2, &dests, &client), Some(1));
        // sh-fallback: ihash 39 unavailable; offset 0: roffset 39, bucket
        // (39 + 39) & 255 = 78 -> 78 % 4 = 2 -> B.
        assert_eq!(t.schedule(sched_flags::SCHED1, &dests, &client), Some(1));
        // B overloaded too: 78 -> B no; roffset 40 -> 79 -> C no; roffset 41
        // -> 80 -> A.
        set_overload(&dests[1], true);
        assert_eq!(t.schedule(sched_flags::SCHED1, &dests, &client), Some(0));
        // Without the fallback flag the overloaded dest is simply unavailable.
        assert_eq!(t.schedule(sched_flags::SCHED2, &dests, &client), None);
        set_overload(&dests[0], true);
        assert_eq!(t.schedule(sched_flags::SCHED1, &dests, &client), None);
    }

    #[test]
    fn same_client_same_server() {
        let dests = [dest(1, 1), dest(2, 1), dest(3, 1)];
        let t = ShTable::build(&dests);
        for last in 0..=255u8 {
            let a = t.schedule(0, &dests, &input([198, 51, 100, last], 1000));
            let b = t.schedule(0, &dests, &input([198, 51, 100, last], 2000));
            assert!(a.is_some());
            assert_eq!(a, b, "port ignored without sh-port");
        }
    }
}
