//! A bit's condition as boxes ("regions") over the six fields, for checking
//! a candidate without branching field by field: a key is in a region when
//! every field's value `v` has `v - lo <= span` (wrapping), six compares
//! ANDed together, one cache line per region.
//!
//! A bit whose condition on each field is one range is one region. One
//! with several ranges on some fields (a `--dports` list, a negated prefix)
//! is the cartesian product of its fields' ranges, up to [`REGIONS_MAX`]
//! regions stored one after the other; past that it is one inexact region,
//! the hull of each field's ranges, whose hits are confirmed against the
//! bit's exact ranges (`Classifier::holds`). A field the bit does not
//! constrain has `lo == 0, span == u32::MAX`.

use super::field::Ranges;
use super::Action;

/// Most regions one bit is cut into before it becomes an inexact hull.
pub const REGIONS_MAX: usize = 8;

const TAG_MASK: u32 = 3;
const MORE_SHIFT: u32 = 2;
const MORE_MASK: u32 = 0xff;
const INEXACT: u32 = 1 << 31;

/// One region of one bit, with the bit's rule and action (see the module
/// docs). 64 bytes, aligned: one cache line, one prefetch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct Region {
    lo: [u32; 6],
    span: [u32; 6],
    rule: u32,
    /// The mark value, or for an inexact region the offset of the bit's
    /// record in `Classifier::conds`.
    value: u32,
    mask: u32,
    /// Action tag (2 bits), number of regions of the same bit after this
    /// one (8 bits from bit 2), [`INEXACT`].
    meta: u32,
}

/// What a key's check against one region says.
pub enum Hit {
    /// The bit's condition holds: its rule and action.
    Yes(u32, Action),
    /// The hull holds: check the bit's record at this offset in `conds`.
    Maybe(usize),
    No,
}

impl Region {
    /// A region no key lies in (an input port past `u16`): the candidate
    /// of an interval without one, so that every list has at least one.
    pub fn never() -> Region {
        let mut g = Region { lo: [0; 6], span: [u32::MAX; 6], meta: 3, ..Region::default() };
        g.lo[5] = 1 << 16;
        g.span[5] = 0;
        g
    }

    /// Whether `vals` (field values in `Kind` order) lie in the region.
    #[inline(always)]
    pub fn contains(&self, vals: &[u32; 6]) -> bool {
        let mut inside = true;
        for ((&v, &lo), &span) in vals.iter().zip(&self.lo).zip(&self.span) {
            inside &= v.wrapping_sub(lo) <= span;
        }
        inside
    }

    /// Regions of the same bit stored after this one.
    #[inline(always)]
    pub fn more(&self) -> usize {
        ((self.meta >> MORE_SHIFT) & MORE_MASK) as usize
    }

    /// Whether the region is exact (so are the others of its bit).
    #[inline(always)]
    pub fn exact(&self) -> bool {
        self.meta & INEXACT == 0
    }

    #[inline(always)]
    pub fn rule(&self) -> u32 {
        self.rule
    }

    /// The mark the bit's action makes of mark 0: what a packet gets when
    /// this is the only rule it matches.
    #[inline(always)]
    pub fn mark_from_zero(&self) -> u32 {
        if self.meta & TAG_MASK == 0 {
            self.value
        } else {
            0
        }
    }

    #[inline(always)]
    pub fn check(&self, vals: &[u32; 6]) -> Hit {
        if !self.contains(vals) {
            return Hit::No;
        }
        if self.meta & INEXACT != 0 {
            return Hit::Maybe(self.value as usize);
        }
        let action = match self.meta & TAG_MASK {
            0 => Action::Mark { value: self.value, mask: self.mask },
            1 => Action::Return,
            2 => Action::Accept,
            _ => Action::Count,
        };
        Hit::Yes(self.rule, action)
    }
}

/// Appends the regions of one bit: `fields` its condition per field
/// (`None`: unconstrained), `conds_at` the offset of its exact record,
/// needed only if it has to be inexact. Returns whether it was exact.
pub fn push_regions(
    out: &mut Vec<Region>,
    fields: &[Option<&Ranges>; 6],
    rule: u32,
    action: Action,
    conds_at: u32,
) -> bool {
    let (tag, value, mask) = match action {
        Action::Mark { value, mask } => (0, value, mask),
        Action::Return => (1, 0, 0),
        Action::Accept => (2, 0, 0),
        Action::Count => (3, 0, 0),
    };
    let count: usize = fields.iter().map(|f| f.map_or(1, |r| r.len())).product();
    let ranges = |i: usize| -> &[(u64, u64)] { fields.get(i).copied().flatten().map_or(&[], |r| r.as_slice()) };
    if count == 0 || count > REGIONS_MAX {
        // The hull; `holds` decides (an empty field never holds).
        let mut g = Region { rule, value: conds_at, mask, meta: tag | INEXACT, ..Region::default() };
        for (i, (lo, span)) in g.lo.iter_mut().zip(g.span.iter_mut()).enumerate() {
            match (fields.get(i).copied().flatten(), ranges(i).first(), ranges(i).last()) {
                (Some(_), Some(&(a, _)), Some(&(_, b))) => (*lo, *span) = (a as u32, (b - a) as u32),
                _ => (*lo, *span) = (0, u32::MAX),
            }
        }
        out.push(g);
        return false;
    }
    for k in 0..count {
        let mut g =
            Region { rule, value, mask, meta: tag | ((count - 1 - k) as u32) << MORE_SHIFT, ..Region::default() };
        // Mixed radix: field i's digit picks one of its ranges.
        let mut rest = k;
        for (i, (lo, span)) in g.lo.iter_mut().zip(g.span.iter_mut()).enumerate() {
            match fields.get(i).copied().flatten() {
                Some(r) => {
                    let n = r.len().max(1);
                    let &(a, b) = r.get(rest % n).unwrap_or(&(0, 0));
                    rest /= n;
                    (*lo, *span) = (a as u32, (b - a) as u32);
                }
                None => (*lo, *span) = (0, u32::MAX),
            }
        }
        out.push(g);
    }
    true
}
