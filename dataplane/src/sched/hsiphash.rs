//! The kernel's `hsiphash` as built on 64-bit Linux (x86_64, arm64), which mh
//! hashes with (specs/ipvs.md §1.11).
//!
//! On `BITS_PER_LONG == 64` the kernel makes "HalfSipHash-1-3" actually be
//! **SipHash-1-3** with a 32-bit output: `hsiphash_key_t` is two `unsigned long`
//! (so each key word is a zero-extended 64-bit value), the state is the four
//! 64-bit SipHash words, one compression round per 8-byte block, three
//! finalization rounds, and the result `(v0 ^ v1) ^ (v2 ^ v3)` is truncated to
//! `u32` by the function's return type (`lib/siphash.c`, "Note that on 64-bit,
//! we make HalfSipHash1-3 actually be SipHash1-3, for performance reasons").
//!
//! `ip_vs_mh_hashkey` calls `hsiphash(&v, 4, key)`. On x86_64
//! (`CONFIG_HAVE_EFFICIENT_UNALIGNED_ACCESS`) that is `__hsiphash_unaligned`,
//! which for a 4-byte input loads the tail as a little-endian word into `b`;
//! elsewhere it is `hsiphash_1u32(v)`: both compute [`hsiphash_1u32`].
//!
//! The 32-bit kernels' real HalfSipHash gives other values (and other mh
//! tables); rvs follows the 64-bit kernels it runs beside.

/// `hsiphash_key_t` on a 64-bit kernel: two `unsigned long`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HsiphashKey(pub [u64; 2]);

/// SipHash state after `PREAMBLE(len)` (`lib/siphash.c`).
struct State {
    v0: u64,
    v1: u64,
    v2: u64,
    v3: u64,
}

impl State {
    #[inline]
    fn new(key: &HsiphashKey) -> State {
        State {
            v0: 0x736f_6d65_7073_6575 ^ key.0[0],
            v1: 0x646f_7261_6e64_6f6d ^ key.0[1],
            v2: 0x6c79_6765_6e65_7261 ^ key.0[0],
            v3: 0x7465_6462_7974_6573 ^ key.0[1],
        }
    }

    /// `SIPROUND` (= `HSIPROUND` on 64-bit).
    #[inline]
    fn round(&mut self) {
        self.v0 = self.v0.wrapping_add(self.v1);
        self.v1 = self.v1.rotate_left(13);
        self.v1 ^= self.v0;
        self.v0 = self.v0.rotate_left(32);
        self.v2 = self.v2.wrapping_add(self.v3);
        self.v3 = self.v3.rotate_left(16);
        self.v3 ^= self.v2;
        self.v0 = self.v0.wrapping_add(self.v3);
        self.v3 = self.v3.rotate_left(21);
        self.v3 ^= self.v0;
        self.v2 = self.v2.wrapping_add(self.v1);
        self.v1 = self.v1.rotate_left(17);
        self.v1 ^= self.v2;
        self.v2 = self.v2.rotate_left(32);
    }

    /// One message block: 1 compression round.
    #[inline]
    fn block(&mut self, m: u64) {
        self.v3 ^= m;
        self.round();
        self.v0 ^= m;
    }

    /// `HPOSTAMBLE` on 64-bit: the last block `b`, then 3 finalization rounds.
    #[inline]
    fn finish(mut self, b: u64) -> u32 {
        self.block(b);
        self.v2 ^= 0xff;
        self.round();
        self.round();
        self.round();
        // Truncated to u32 by `hsiphash`'s return type.
        ((self.v0 ^ self.v1) ^ (self.v2 ^ self.v3)) as u32
    }
}

/// Little-endian value of up to 8 bytes.
#[inline]
fn le_bytes(bytes: &[u8]) -> u64 {
    bytes.iter().rev().fold(0u64, |acc, &byte| (acc << 8) | u64::from(byte))
}

/// `hsiphash(data, len, key)` of a 64-bit kernel (`__hsiphash_unaligned`).
pub fn hsiphash(data: &[u8], key: &HsiphashKey) -> u32 {
    let mut s = State::new(key);
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        s.block(le_bytes(chunk));
    }
    let b = ((data.len() as u64) << 56) | le_bytes(chunks.remainder());
    s.finish(b)
}

/// `hsiphash_1u32(first, key)` of a 64-bit kernel: the hash of the 4 bytes of
/// `first` in little-endian order.
#[inline]
pub fn hsiphash_1u32(first: u32, key: &HsiphashKey) -> u32 {
    State::new(key).finish((4u64 << 56) | u64::from(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `test_key_hsiphash` of the kernel's self-test, 64-bit variant.
    const KEY: HsiphashKey = HsiphashKey([0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908]);

    /// `test_vectors_hsiphash[64]` for `BITS_PER_LONG == 64`, from the kernel's
    /// `lib/siphash_kunit.c` (torvalds/linux): vector `i` is the hash of the
    /// bytes `0, 1, ..., i-1`.
    const VECTORS: [u32; 64] = [
        0x050fc4dc, 0x7d57ca93, 0x4dc7d44d, 0xe7ddf7fb, 0x88d38328, 0x49533b67, 0xc59f22a7, 0x9bb11140, 0x8d299a8e,
        0x6c063de4, 0x92ff097f, 0xf94dc352, 0x57b4d9a2, 0x1229ffa7, 0xc0f95d34, 0x2a519956, 0x7d908b66, 0x63dbd80c,
        0xb473e63e, 0x8d297d1c, 0xa6cce040, 0x2b45f844, 0xa320872e, 0xdae6c123, 0x67349c8c, 0x705b0979, 0xca9913a5,
        0x4ade3b35, 0xef6cd00d, 0x4ab1e1f4, 0x43c5e663, 0x8c21d1bc, 0x16a7b60d, 0x7a8ff9bf, 0x1f2a753e, 0xbf186b91,
        0xada26206, 0xa3c33057, 0xae3a36a1, 0x7b108392, 0x99e41531, 0x3f1ad944, 0xc8138825, 0xc28949a6, 0xfaf8876b,
        0x9f042196, 0x68b1d623, 0x8b5114fd, 0xdf074c46, 0x12cc86b3, 0x0a52098f, 0x9d292f9a, 0xa2f41f12, 0x43a71ed0,
        0x73f0bce6, 0x70a7e980, 0x243c6d75, 0xfdb71513, 0xa67d8a08, 0xb7e8f148, 0xf7a644ee, 0x0f1837f2, 0x4b6694e0,
        0xb7bbb3a8,
    ];

    #[test]
    fn kernel_self_test_vectors() {
        let input: Vec<u8> = (0u8..64).collect();
        for (len, &want) in VECTORS.iter().enumerate() {
            assert_eq!(hsiphash(&input[..len], &KEY), want, "length {len}");
        }
    }

    #[test]
    fn one_u32_matches_kernel_self_test() {
        // siphash_kunit.c: hsiphash_1u32(0x03020100) == test_vectors_hsiphash[4].
        assert_eq!(hsiphash_1u32(0x0302_0100, &KEY), VECTORS[4]);
    }

    #[test]
    fn one_u32_is_hash_of_le_bytes() {
        let key = HsiphashKey([2654435761, 2654435761]);
        for v in [0u32, 1, 0x0a00_0001, 0xdead_beef, u32::MAX] {
            assert_eq!(hsiphash_1u32(v, &key), hsiphash(&v.to_le_bytes(), &key));
        }
    }
}
