//! Burst classification: the same marks and matched rules as
//! [`Classifier::classify_key`] on each frame, computed for up to [`BURST`]
//! frames at a time in stages, so that the memory accesses of different
//! frames overlap instead of each frame waiting on its own chain of misses
//! (`rte_acl_classify` does the same with its trie walks).
//!
//! Stages, each over the whole burst: parse and validate every frame's key
//! (the caller has prefetched the frames' first cache line, as the worker
//! does for each rx burst); read each key's block index entry in the
//! primary field (prefetched the stage before), prefetch the interval
//! starts of its block; find its elementary interval, prefetch its
//! candidate list entry; prefetch a lone candidate's region, or the list
//! and then its first two candidates' regions; then check the candidates
//! (or AND every field's row, for the rare interval with more than
//! `VERIFY_MAX` candidates) and apply the actions in rule order. Each
//! stage reads only what the one before prefetched, so one frame's misses
//! overlap the other 31's. Results equal the per-frame path's by
//! construction: the last stage is the per-frame code on the same key.
//!
//! Fixed-size stack arrays only (longer slices are cut into bursts of
//! [`BURST`]): no allocation, no lock, no panic.

use super::{values, Classifier, Key, RuleCounter, NO_PORT};
use crate::hints::prefetch;

// Frames classified together: the rx burst; longer slices are taken BURST at a time.
pub use crate::hints::BURST;

const NO_KEY: Key = Key { src: 0, dst: 0, proto: 0, sport: NO_PORT, dport: NO_PORT, len: 0 };

impl Classifier {
    /// The marks of `frames` (received on `in_port`) into `marks`, as
    /// [`Classifier::classify`] on each; `min(frames.len(), marks.len())`
    /// frames are classified.
    #[inline]
    pub fn classify_burst(&self, frames: &[&[u8]], in_port: u16, marks: &mut [u32]) {
        self.classify_burst_with(frames, in_port, marks, |_, _, _| {});
    }

    /// [`Classifier::classify_burst`], adding each matched rule's packet and
    /// bytes into `counters[rule]` (the worker's own slice; indices past it
    /// are not counted), as [`Classifier::classify_counted`] does.
    #[inline]
    pub fn classify_burst_counted(
        &self,
        frames: &[&[u8]],
        in_port: u16,
        marks: &mut [u32],
        counters: &mut [RuleCounter],
    ) {
        self.classify_burst_with(frames, in_port, marks, |_, rule, len| {
            if let Some(c) = counters.get_mut(rule) {
                c.packets += 1;
                c.bytes += u64::from(len);
            }
        });
    }

    /// [`Classifier::classify_burst`] with `on_match(frame, rule, ipv4_len)`
    /// for each rule each frame matches: frame by frame, rules in order, once
    /// per rule (what [`Classifier::classify_key`]'s `on_match` sees).
    pub fn classify_burst_with(
        &self,
        frames: &[&[u8]],
        in_port: u16,
        marks: &mut [u32],
        mut on_match: impl FnMut(usize, usize, u16),
    ) {
        for (c, (f, m)) in frames.chunks(BURST).zip(marks.chunks_mut(BURST)).enumerate() {
            self.burst(f, in_port, m, c * BURST, &mut on_match);
        }
    }

    /// One burst of at most [`BURST`] frames; `base` is the index of the
    /// first in the caller's slice (for `on_match`).
    #[inline]
    fn burst(
        &self,
        frames: &[&[u8]],
        in_port: u16,
        marks: &mut [u32],
        base: usize,
        on_match: &mut impl FnMut(usize, usize, u16),
    ) {
        let n = frames.len().min(marks.len()).min(BURST);
        let (Some(frames), Some(marks)) = (frames.get(..n), marks.get_mut(..n)) else { return };
        if self.rules == 0 {
            marks.fill(0);
            return;
        }
        // Stage 1: keys (None: iptables never sees the frame, mark 0).
        let mut keys: [Option<Key>; BURST] = [None; BURST];
        for (f, k) in frames.iter().zip(keys.iter_mut()) {
            *k = Key::parse(f);
        }
        let Some((kind, t)) = self.fields.get(self.primary) else {
            marks.fill(0); // no rules
            return;
        };
        let kind = *kind;
        let mut vals = [[0u32; 6]; BURST];
        // Stage 2: each key's primary value; prefetch its block index entry.
        for (v, k) in vals.iter_mut().zip(&keys).take(n) {
            *v = values(&k.unwrap_or(NO_KEY), in_port);
            t.prefetch_interval(super::value(v, kind));
        }
        // Stage 3: each key's block; prefetch the interval starts in it.
        let mut iv = [(0usize, 0usize); BURST];
        for (r, v) in iv.iter_mut().zip(&vals).take(n) {
            *r = t.interval_range(super::value(v, kind));
            t.prefetch_starts(r.0, r.1);
        }
        // Stage 4: each key's interval; prefetch its candidate list entry.
        let mut lists = [(0u32, 0u32); BURST];
        for (r, v) in iv.iter_mut().zip(&vals).take(n) {
            r.0 = t.interval_in(super::value(v, kind), r.0, r.1);
            if let Some(p) = self.prim.get(r.0) {
                prefetch(p);
            }
        }
        // Stage 5: each candidate list; prefetch a lone candidate's region,
        // or the list.
        for (l, &(i, _)) in lists.iter_mut().zip(&iv).take(n) {
            *l = self.prim.get(i).copied().unwrap_or((0, 0));
            let (start, len) = *l;
            if len == 1 {
                if let Some(r) = self.regions.get(start as usize) {
                    prefetch(r);
                }
            } else if len > 1 && len != u32::MAX {
                if let Some(b) = self.prim_bits.get(start as usize) {
                    prefetch(b);
                }
            }
        }
        // Stage 6: the first two candidates' regions of longer lists.
        for &(start, len) in lists.iter().take(n) {
            if len > 1 && len != u32::MAX {
                let s = start as usize;
                for &first in self.prim_bits.get(s..s + 2).unwrap_or(&[]) {
                    if let Some(r) = self.regions.get(first as usize) {
                        prefetch(r);
                    }
                }
            }
        }
        // Stage 7: check the candidates, apply the actions.
        for (i, (((m, k), v), &(start, len))) in marks.iter_mut().zip(&keys).zip(&vals).zip(&lists).enumerate() {
            let Some(k) = k else {
                *m = 0;
                continue;
            };
            let hit = |r| on_match(base + i, r, k.len);
            *m = if len != u32::MAX { self.verify(start, len, v, hit) } else { self.classify_and(v, hit) };
        }
    }
}
