//! One field of the classifier: the field's value space cut into elementary
//! intervals (no rule boundary inside any of them), each mapped to the set
//! of (sub)rules whose condition on this field holds there.
//!
//! Sets are compressed bitsets over the rules' bit positions: bit `b` of a
//! set lives in word `b / 64`, and word `w` in chunk `w / 64`. A row keeps
//! one summary word per chunk (bit set = that word is non-zero) and only its
//! non-zero words, packed, with the index of each chunk's first one. Equal
//! rows are stored once, so a field with 10,000 /32 conditions costs about
//! one short row per distinct set, and the AND of several rows only touches
//! the words where every field has a candidate.
//!
//! Bits whose condition on this field is the whole value space (rules that
//! do not constrain the field) are kept out of the rows, in one shared
//! compressed "wildcard" row ORed in at lookup time: otherwise every row
//! would carry them, and a field that few rules constrain (ports) would get
//! as many dense rows as it has intervals (tens of MB at 10,000 rules).
//!
//! Invariants after [`FieldTable::build`]: `starts[0] == 0`, `starts` is
//! strictly increasing, `rows.len() == starts.len()`, every row id is below
//! the row count, and `sum`/`base` hold `chunks` entries per row with every
//! `base + popcount(prefix of sum)` inside `words`.

use std::collections::HashMap;

use crate::hints::prefetch;

/// Inclusive ranges over a field's value space, sorted, disjoint, merged.
pub type Ranges = Vec<(u64, u64)>;

/// Sorts and merges (overlapping or adjacent) ranges; drops empty ones.
pub fn normalize(mut r: Ranges) -> Ranges {
    r.retain(|&(lo, hi)| lo <= hi);
    r.sort_unstable();
    let mut out: Ranges = Vec::with_capacity(r.len());
    for (lo, hi) in r {
        match out.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// The complement of normalised `r` within `[0, max]`.
pub fn complement(r: &Ranges, max: u64) -> Ranges {
    let mut out = Vec::with_capacity(r.len() + 1);
    let mut next = 0u64;
    for &(lo, hi) in r {
        if lo > next {
            out.push((next, lo - 1));
        }
        next = hi.saturating_add(1);
    }
    if next <= max {
        out.push((next, max));
    }
    out
}

/// The intersection of two normalised range lists.
pub fn intersect(a: &Ranges, b: &Ranges) -> Ranges {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while let (Some(&(alo, ahi)), Some(&(blo, bhi))) = (a.get(i), b.get(j)) {
        let (lo, hi) = (alo.max(blo), ahi.min(bhi));
        if lo <= hi {
            out.push((lo, hi));
        }
        if ahi < bhi {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// Most interval starts a block may hold for a lookup to compare them all
/// (no branch on the value) rather than binary-search them.
const BLOCK_SCAN: usize = 8;

/// Most block index entries per elementary interval.
const BLOCK_BUDGET: u64 = 4;

#[derive(Debug, Default)]
pub struct FieldTable {
    /// First value of each elementary interval.
    starts: Vec<u32>,
    /// Row id of each interval.
    rows: Vec<u32>,
    /// With more than two intervals: for each value of `(v - top_lo) >>
    /// shift`, the interval holding `top_lo + ((v - top_lo) >> shift <<
    /// shift)` (one more entry at the end), so a lookup reads one entry and
    /// then compares the few interval starts inside one 2^shift block (a
    /// fixed count of them, `scan`, so no branch depends on the value)
    /// instead of binary-searching a large, cold array. The index covers
    /// `[top_lo, top_hi)`, the span between the first and last interval
    /// boundaries (rules' addresses cluster: 10,000 VIPs in a /10), with
    /// blocks as large as keep `scan` within [`BLOCK_SCAN`] and at most
    /// [`BLOCK_BUDGET`] entries per interval; below it is interval 0, from
    /// `top_hi` on the last one.
    top: Vec<u32>,
    shift: u32,
    top_lo: u32,
    top_hi: u32,
    /// Most interval starts inside one block (after its first interval):
    /// up to [`BLOCK_SCAN`], a lookup compares all of that many.
    scan: usize,
    /// Per row, per chunk: which words of the chunk are non-zero.
    sum: Vec<u64>,
    /// Per row, per chunk: index in `words` of the chunk's first word.
    base: Vec<u32>,
    words: Vec<u64>,
    /// The wildcard row (bits not constrained by this field): per chunk,
    /// summary and index in `words` of its first word.
    wsum: Vec<u64>,
    wbase: Vec<u32>,
    chunks: usize,
    /// Every bit is a wildcard: the field constrains nothing.
    pub trivial: bool,
    /// Mean candidates per interval (its own bits and the wildcards): how
    /// selective a lookup on this field alone is.
    pub mean_bits: f64,
}

impl FieldTable {
    /// `sets[b]` is the condition of bit `b` on this field (normalised
    /// ranges within `[0, max]`, `max < 2^32`).
    pub fn build(sets: &[Ranges], max: u64) -> FieldTable {
        let nbits = sets.len();
        let nwords = nbits.div_ceil(64);
        let chunks = nwords.div_ceil(64).max(1);
        let mut wild = vec![0u64; nwords];
        // Sweep: +bit at lo, -bit at hi+1; removals first at a position.
        let mut events: Vec<(u64, bool, u32)> = Vec::new();
        for (b, set) in sets.iter().enumerate() {
            if set.as_slice() == [(0, max)] {
                if let Some(w) = wild.get_mut(b / 64) {
                    *w |= 1 << (b % 64);
                }
                continue;
            }
            for &(lo, hi) in set {
                events.push((lo, true, b as u32));
                if hi < max {
                    events.push((hi + 1, false, b as u32));
                }
            }
        }
        // `false < true`: at one position removals sort before additions.
        events.sort_unstable();
        let mut cur = vec![0u64; nwords];
        let mut t = FieldTable { chunks, ..FieldTable::default() };
        t.push_row(&wild);
        t.wsum = std::mem::take(&mut t.sum);
        t.wbase = std::mem::take(&mut t.base);
        let mut ids: HashMap<Vec<u64>, u32> = HashMap::new();
        let mut e = 0;
        let mut pos = 0u64;
        let mut own_bits = 0u64;
        loop {
            while let Some(&(p, add, b)) = events.get(e) {
                if p != pos {
                    break;
                }
                if let Some(w) = cur.get_mut(b as usize / 64) {
                    if add {
                        *w |= 1 << (b % 64);
                    } else {
                        *w &= !(1 << (b % 64));
                    }
                }
                e += 1;
            }
            let next_id = ids.len() as u32;
            let id = *ids.entry(cur.clone()).or_insert_with(|| {
                t.push_row(&cur);
                next_id
            });
            if t.rows.last() != Some(&id) {
                t.starts.push(pos as u32);
                t.rows.push(id);
                own_bits += cur.iter().map(|w| w.count_ones() as u64).sum::<u64>();
            }
            match events.get(e) {
                Some(&(p, _, _)) => pos = p,
                None => break,
            }
        }
        let nwild = wild.iter().map(|w| w.count_ones() as usize).sum::<usize>();
        t.trivial = nwild == nbits;
        t.mean_bits = nwild as f64 + own_bits as f64 / t.starts.len().max(1) as f64;
        if t.starts.len() > 2 {
            t.top_lo = t.starts.get(1).copied().unwrap_or(0);
            t.top_hi = t.starts.last().copied().unwrap_or(0);
            let span = u64::from(t.top_hi - t.top_lo);
            // Blocks as large as leave at most BLOCK_SCAN starts inside one,
            // within BLOCK_BUDGET entries per interval; else the smallest
            // blocks that budget allows.
            let n = t.starts.len() as u64;
            t.shift = 32;
            while t.shift > 0 && (span >> (t.shift - 1)) < BLOCK_BUDGET * n {
                let top = t.block_index(t.shift - 1);
                let scan = top.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0) as usize;
                t.shift -= 1;
                t.top = top;
                t.scan = scan;
                if scan <= BLOCK_SCAN {
                    break;
                }
            }
            if t.top.is_empty() {
                t.top = t.block_index(t.shift);
                t.scan = t.top.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0) as usize;
            }
        }
        t
    }

    /// The block index for blocks of `2^shift` values from `top_lo`.
    fn block_index(&self, shift: u32) -> Vec<u32> {
        let span = u64::from(self.top_hi - self.top_lo);
        let blocks = (span >> shift) + 1;
        let mut i = 0usize;
        (0..=blocks)
            .map(|b| {
                let v = u64::from(self.top_lo) + (b << shift);
                while self.starts.get(i + 1).is_some_and(|&s| u64::from(s) <= v) {
                    i += 1;
                }
                i as u32
            })
            .collect()
    }

    fn push_row(&mut self, set: &[u64]) {
        for c in 0..self.chunks {
            let mut s = 0u64;
            self.base.push(self.words.len() as u32);
            for (i, &w) in set.iter().skip(c * 64).take(64).enumerate() {
                if w != 0 {
                    s |= 1 << i;
                    self.words.push(w);
                }
            }
            self.sum.push(s);
        }
    }

    /// The offset of `v`'s row in `sum`/`base`.
    #[inline]
    pub fn row_of(&self, v: u32) -> usize {
        let i = self.interval_of(v);
        let row = self.rows.get(i).copied().unwrap_or(0);
        row as usize * self.chunks
    }

    /// Row id of each elementary interval.
    pub fn interval_rows(&self) -> &[u32] {
        &self.rows
    }

    /// The index of the elementary interval holding `v`.
    #[inline]
    pub fn interval_of(&self, v: u32) -> usize {
        let (lo, hi) = self.interval_range(v);
        self.interval_in(v, lo, hi)
    }

    /// First half of [`FieldTable::interval_of`]: the interval holding `v`
    /// is one of `lo..=hi` (one block index entry read, if any).
    #[inline]
    pub fn interval_range(&self, v: u32) -> (usize, usize) {
        let last = self.starts.len().saturating_sub(1);
        if self.top.is_empty() {
            (0, last)
        } else if v < self.top_lo {
            (0, 0)
        } else if v >= self.top_hi {
            (last, last)
        } else {
            let h = ((v - self.top_lo) >> self.shift) as usize;
            let lo = self.top.get(h).copied().unwrap_or(0) as usize;
            let hi = self.top.get(h + 1).copied().unwrap_or(0) as usize;
            (lo, hi)
        }
    }

    /// Second half of [`FieldTable::interval_of`]: the interval among
    /// `lo..=hi` holding `v` (no memory read when `lo == hi`).
    #[inline]
    pub fn interval_in(&self, v: u32, lo: usize, hi: usize) -> usize {
        if self.top.is_empty() || self.scan > BLOCK_SCAN {
            return lo + self.starts.get(lo + 1..=hi).map_or(0, |s| s.partition_point(|&s| s <= v));
        }
        // The starts after `lo` up to `hi` that are <= v; those past `hi`
        // are above the block, so counting a fixed `scan` of them is the
        // same, with no branch on `v`.
        let mut n = lo;
        for s in self.starts.iter().skip(lo + 1).take(self.scan) {
            n += usize::from(*s <= v);
        }
        n
    }

    /// Prefetches what [`FieldTable::interval_in`] reads (a hint).
    #[inline]
    pub fn prefetch_starts(&self, lo: usize, hi: usize) {
        if hi > lo {
            if let Some(s) = self.starts.get(lo + 1) {
                prefetch(s);
            }
        }
    }

    /// Prefetches the block index entry [`FieldTable::interval_of`] reads
    /// first for `v` (a hint; small tables have none and stay cached).
    #[inline]
    pub fn prefetch_interval(&self, v: u32) {
        if v >= self.top_lo && v < self.top_hi {
            if let Some(e) = self.top.get(((v - self.top_lo) >> self.shift) as usize) {
                prefetch(e);
            }
        }
    }

    /// Number of distinct rows (row `r` is at offset `r * chunks`).
    pub fn row_count(&self) -> usize {
        self.sum.len() / self.chunks.max(1)
    }

    /// Summary word of chunk `c` of the row at offset `row`, wildcard row
    /// included.
    #[inline]
    pub fn summary(&self, row: usize, c: usize) -> u64 {
        self.sum.get(row + c).copied().unwrap_or(0) | self.wsum.get(c).copied().unwrap_or(0)
    }

    /// Word `b` of chunk `c` of the row at `row`, wildcard row included.
    #[inline]
    pub fn word(&self, row: usize, c: usize, b: u32) -> u64 {
        let own = self.pick(self.sum.get(row + c), self.base.get(row + c), b);
        own | self.pick(self.wsum.get(c), self.wbase.get(c), b)
    }

    /// Word `b` of one compressed chunk (0 where the summary says so).
    #[inline]
    fn pick(&self, sum: Option<&u64>, base: Option<&u32>, b: u32) -> u64 {
        let (Some(&sum), Some(&base)) = (sum, base) else { return 0 };
        if (sum >> (b & 63)) & 1 == 0 {
            return 0;
        }
        let below = (sum & ((1u64 << (b & 63)) - 1)).count_ones() as usize;
        self.words.get(base as usize + below).copied().unwrap_or(0)
    }

    pub fn chunks(&self) -> usize {
        self.chunks
    }

    /// Heap bytes held.
    pub fn bytes(&self) -> usize {
        self.starts.len() * 4
            + self.rows.len() * 4
            + self.top.len() * 4
            + (self.sum.len() + self.wsum.len()) * 8
            + (self.base.len() + self.wbase.len()) * 4
            + self.words.len() * 8
    }
}
