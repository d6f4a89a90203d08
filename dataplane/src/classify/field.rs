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
//! Invariants after [`FieldTable::build`]: `starts[0] == 0`, `starts` is
//! strictly increasing, `rows.len() == starts.len()`, every row id is below
//! the row count, and `sum`/`base` hold `chunks` entries per row with every
//! `base + popcount(prefix of sum)` inside `words`.

use std::collections::HashMap;

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

#[derive(Debug, Default)]
pub struct FieldTable {
    /// First value of each elementary interval.
    starts: Vec<u32>,
    /// Row id of each interval.
    rows: Vec<u32>,
    /// With many intervals: for each value of `v >> shift`, the interval
    /// holding `(v >> shift) << shift` (one more entry at the end), so a
    /// lookup searches only the intervals inside one 2^shift block instead
    /// of binary-searching a large, cold array.
    top: Vec<u32>,
    shift: u32,
    /// Per row, per chunk: which words of the chunk are non-zero.
    sum: Vec<u64>,
    /// Per row, per chunk: index in `words` of the chunk's first word.
    base: Vec<u32>,
    words: Vec<u64>,
    chunks: usize,
    /// Every row is the set of all bits: the field constrains nothing.
    pub trivial: bool,
}

impl FieldTable {
    /// `sets[b]` is the condition of bit `b` on this field (normalised
    /// ranges within `[0, max]`, `max < 2^32`).
    pub fn build(sets: &[Ranges], max: u64) -> FieldTable {
        let nbits = sets.len();
        let nwords = nbits.div_ceil(64);
        let chunks = nwords.div_ceil(64).max(1);
        // Sweep: +bit at lo, -bit at hi+1; removals first at a position.
        let mut events: Vec<(u64, bool, u32)> = Vec::new();
        for (b, set) in sets.iter().enumerate() {
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
        let mut ids: HashMap<Vec<u64>, u32> = HashMap::new();
        let mut e = 0;
        let mut pos = 0u64;
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
            }
            match events.get(e) {
                Some(&(p, _, _)) => pos = p,
                None => break,
            }
        }
        let mut full = vec![u64::MAX; nwords];
        if let Some(last) = full.last_mut() {
            if nbits & 63 != 0 {
                *last = (1u64 << (nbits % 64)) - 1;
            }
        }
        t.trivial = ids.len() == 1 && ids.contains_key(&full);
        if t.starts.len() > 32 {
            t.shift = if max > 1 << 16 { 16 } else { 0 };
            let blocks = (max >> t.shift) as u32 + 1;
            let mut i = 0usize;
            t.top = (0..=blocks)
                .map(|b| {
                    let v = u64::from(b) << t.shift;
                    while t.starts.get(i + 1).is_some_and(|&s| u64::from(s) <= v) {
                        i += 1;
                    }
                    i as u32
                })
                .collect();
        }
        t
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
        let i = if self.top.is_empty() {
            self.starts.partition_point(|&s| s <= v).saturating_sub(1)
        } else {
            let h = (v >> self.shift) as usize;
            let lo = self.top.get(h).copied().unwrap_or(0) as usize;
            let hi = self.top.get(h + 1).copied().unwrap_or(0) as usize;
            // The interval holding `v` is one of lo..=hi.
            lo + self.starts.get(lo + 1..=hi).map_or(0, |s| s.partition_point(|&s| s <= v))
        };
        let row = self.rows.get(i).copied().unwrap_or(0);
        row as usize * self.chunks
    }

    /// Summary word of chunk `c` of the row at offset `row`.
    #[inline]
    pub fn summary(&self, row: usize, c: usize) -> u64 {
        self.sum.get(row + c).copied().unwrap_or(0)
    }

    /// Word `b` of chunk `c` of the row at `row`, given that chunk's summary.
    #[inline]
    pub fn word(&self, row: usize, c: usize, summary: u64, b: u32) -> u64 {
        let base = self.base.get(row + c).copied().unwrap_or(0) as usize;
        let below = (summary & ((1u64 << b) - 1)).count_ones() as usize;
        self.words.get(base + below).copied().unwrap_or(0)
    }

    pub fn chunks(&self) -> usize {
        self.chunks
    }

    /// Heap bytes held.
    pub fn bytes(&self) -> usize {
        self.starts.len() * 4
            + self.rows.len() * 4
            + self.top.len() * 4
            + self.sum.len() * 8
            + self.base.len() * 4
            + self.words.len() * 8
    }
}
