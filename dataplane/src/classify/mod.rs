//! Firewall-mark classification: iptables `-t mangle -A PREROUTING ... -j
//! MARK` rules compiled into a structure whose per-packet cost stays nearly
//! flat from 10 to 10,000 rules.
//!
//! Semantics (iptables', checked against [`rule::classify_linear`]):
//! - Rules are evaluated in order from mark 0; every matching `MARK` rule
//!   applies `mark = (mark & !mask) ^ value` and evaluation goes on (the last
//!   matching `--set-mark` decides); `RETURN` and `ACCEPT` stop it.
//! - Only IPv4 datagrams whose header `ip_rcv` would accept are classified
//!   (one 802.1Q tag is looked through); anything else (ARP, IPv6, a bad or
//!   truncated IPv4 header) never reaches iptables' PREROUTING chain and gets
//!   mark 0 with no rule matched, even a rule with no condition.
//! - Port conditions (and a bare `-m tcp`/`-m udp`) never match a packet
//!   without ports: a non-first fragment, a protocol other than tcp, udp,
//!   udplite, sctp and dccp, or an L4 header shorter than iptables reads
//!   (tcp 20 bytes, udp 8, sctp/dccp 12). Negated port conditions included,
//!   as in the kernel's `tcp_mt`/`multiport_mt`.
//!
//! Structure: the six fields (source, destination, protocol, source port,
//! destination port, input port) are each cut into elementary intervals,
//! each interval mapped to the compressed bitset of rules whose condition on
//! that field holds there ([`field`]). A packet costs one interval lookup
//! per constrained field (a block index, then a search among the few
//! interval starts of one block), the AND of one summary word per 4,096
//! rules, the AND of the few words where every field has a candidate, and
//! a walk over the set bits in rule order. A rule with multiport `--ports`
//! (source OR destination port) becomes two sub-rules on adjacent bits,
//! counted and applied once.
//!
//! Rules that do not constrain a field are not copied into each of its
//! intervals' bitsets but kept in one shared wildcard bitset per field, ORed
//! in at lookup (see [`field`]), so the tables stay small and cache-resident
//! whatever the mix of conditions.
//!
//! Short cut: the most selective field (fewest candidates per interval,
//! wildcards included; with /32 VIPs the destination) is looked up first;
//! when it leaves at most [`VERIFY_MAX`] candidate bits, each is checked
//! directly against its regions, in bit order, and the other fields' tables
//! are not touched. A region ([`region`]) is a box over the six fields, one
//! cache line, checked with six compares and no branch; a bit is one
//! region, or a few for a list of ports or a negation, or an inexact hull
//! confirmed against the bit's exact ranges (`conds`) when it would take
//! more. An interval with one candidate (or none, given as a region no key
//! lies in) stores it in place. A packet then costs about one lookup
//! whatever the rule count; otherwise it takes the full AND above.
//!
//! Bursts: [`Classifier::classify_burst`] and its counted variants do the
//! same for up to [`BURST`] frames at a time, stage by stage, prefetching
//! what the next stage reads so that the frames' cache misses overlap
//! ([`burst`]); this is the worker's path and the fast one.
//!
//! Counters: [`Classifier::classify_counted`] and
//! [`Classifier::classify_burst_counted`] add each matched rule's packet and
//! IPv4 length into a per-worker `&mut [RuleCounter]` indexed by rule (no
//! shared writes); indices past the slice are not counted, so a worker that
//! has not resized its slice after a rule change cannot panic.
//!
//! Classification allocates nothing, takes no lock and cannot panic (every
//! table access is checked).

mod burst;
mod field;
pub mod key;
mod region;
pub mod rule;

pub use burst::BURST;
use field::{complement, intersect, normalize, FieldTable, Ranges};
pub use key::{Key, NO_PORT};
use region::{push_regions, Hit, Region};
pub use rule::{classify_linear, Action, InPortMatch, PortMatch, Prefix, ProtoMatch, Rule};

/// Packets and bytes (IPv4 total length, as iptables counts `skb->len`)
/// matched by one rule on one worker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleCounter {
    pub packets: u64,
    pub bytes: u64,
}

/// A field; `as usize` is its index in [`values`] and in a bit's record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Src = 0,
    Dst,
    Proto,
    Sport,
    Dport,
    InPort,
}

const ADDR_MAX: u64 = u32::MAX as u64;
const PORT_MAX: u64 = 65535;
const L4_MAX: u64 = NO_PORT as u64;

/// At most this many candidates from the primary field are checked one by
/// one instead of looking up and ANDing every other field.
const VERIFY_MAX: usize = 16;

/// Range count, in a bit's record, of a field the bit does not constrain.
const ANY: usize = 0xffff;

/// The compiled rule set. Build on the control side, share read-only.
#[derive(Debug, Default)]
pub struct Classifier {
    /// Constrained fields only (protocol is always kept, so there is one);
    /// empty without rules.
    fields: Vec<(Kind, FieldTable)>,
    /// Per bit: the rule it stands for and that rule's action.
    bits: Vec<(u32, Action)>,
    /// Index in `fields` of the most selective field: a packet first takes
    /// that field's candidates alone, and when there are at most
    /// [`VERIFY_MAX`] checks them directly against their `regions`.
    primary: usize,
    /// Per elementary interval of the primary field: `(start, len)` of its
    /// candidate bits (wildcards included, in bit order) in `prim_bits`, or
    /// `len == u32::MAX` when there are more than [`VERIFY_MAX`]. With
    /// `len == 1`, `start` is the candidate itself (its first region); an
    /// interval without candidates has `(Region::never(), 1)`.
    prim: Vec<(u32, u32)>,
    /// A candidate bit, as the index of its first region in `regions`.
    prim_bits: Vec<u32>,
    /// Per bit, its condition as one or more regions ([`region`]), in bit
    /// order: what the candidates are checked against.
    regions: Vec<Region>,
    /// Per bit with an inexact region (see [`region`]), one record: four header entries (the number of ranges of
    /// each field in [`Kind`] order, 16 bits each, [`ANY`] for a field it
    /// does not constrain; the rule; the action),
    /// then the ranges of values where the bit's condition on each field
    /// holds, field after field. One or two cache lines per candidate.
    conds: Vec<(u32, u32)>,
    chunks: usize,
    rules: usize,
}

fn prefix_ranges(p: &Option<Prefix>) -> Ranges {
    match p {
        None => vec![(0, ADDR_MAX)],
        Some(p) => {
            let m = u64::from(Prefix::mask(p.len));
            let lo = u64::from(p.addr) & m;
            let r = vec![(lo, lo | (!m & ADDR_MAX))];
            if p.negate {
                complement(&r, ADDR_MAX)
            } else {
                r
            }
        }
    }
}

fn port_ranges(m: &PortMatch) -> Ranges {
    let r = normalize(m.ranges.iter().map(|&(lo, hi)| (u64::from(lo), u64::from(hi))).collect());
    if m.negate {
        complement(&r, PORT_MAX)
    } else {
        r
    }
}

/// One sub-rule's condition per field.
struct Sets {
    src: Ranges,
    dst: Ranges,
    proto: Ranges,
    sport: Ranges,
    dport: Ranges,
    in_port: Ranges,
}

/// The sub-rules of `r`: one, or 2^k for k non-negated multiport `--ports`.
fn expand(r: &Rule) -> Vec<Sets> {
    let proto = match r.proto {
        None => vec![(0, 255)],
        Some(p) => {
            let one = vec![(u64::from(p.proto), u64::from(p.proto))];
            if p.negate {
                complement(&one, 255)
            } else {
                one
            }
        }
    };
    let in_port = match &r.in_port {
        None => vec![(0, PORT_MAX)],
        Some(m) => {
            let s = normalize(m.ports.iter().map(|&p| (u64::from(p), u64::from(p))).collect());
            if m.negate {
                complement(&s, PORT_MAX)
            } else {
                s
            }
        }
    };
    let any_port: Ranges = if r.needs_ports() { vec![(0, PORT_MAX)] } else { vec![(0, L4_MAX)] };
    let mut sport = any_port.clone();
    let mut dport = any_port;
    for m in &r.sport {
        sport = intersect(&sport, &port_ranges(m));
    }
    for m in &r.dport {
        dport = intersect(&dport, &port_ranges(m));
    }
    let mut either = Vec::new();
    for m in &r.ports {
        let s = port_ranges(&PortMatch { ranges: m.ranges.clone(), negate: false });
        if m.negate {
            // Neither port in the set.
            let c = complement(&s, PORT_MAX);
            sport = intersect(&sport, &c);
            dport = intersect(&dport, &c);
        } else {
            either.push(s);
        }
    }
    let (src, dst) = (prefix_ranges(&r.src), prefix_ranges(&r.dst));
    let mut out = Vec::with_capacity(1 << either.len().min(16));
    let combos: u32 = 1 << either.len().min(16);
    for c in 0..combos {
        let (mut sp, mut dp) = (sport.clone(), dport.clone());
        for (i, s) in either.iter().enumerate() {
            if c & (1 << i) == 0 {
                sp = intersect(&sp, s);
            } else {
                dp = intersect(&dp, s);
            }
        }
        out.push(Sets {
            src: src.clone(),
            dst: dst.clone(),
            proto: proto.clone(),
            sport: sp,
            dport: dp,
            in_port: in_port.clone(),
        });
    }
    out
}

impl Classifier {
    /// Compiles `rules` (control side: allocates; about 0.1 s for 10,000).
    pub fn build(rules: &[Rule]) -> Classifier {
        if rules.is_empty() {
            return Classifier::default();
        }
        let mut bits = Vec::new();
        let mut sets: Vec<Sets> = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            for s in expand(r) {
                bits.push((i as u32, r.action));
                sets.push(s);
            }
        }
        let column = |f: fn(&Sets) -> &Ranges| -> Vec<Ranges> { sets.iter().map(|s| f(s).clone()).collect() };
        let all = [
            (Kind::Src, column(|s| &s.src), ADDR_MAX),
            (Kind::Dst, column(|s| &s.dst), ADDR_MAX),
            (Kind::Proto, column(|s| &s.proto), 255),
            (Kind::Sport, column(|s| &s.sport), L4_MAX),
            (Kind::Dport, column(|s| &s.dport), L4_MAX),
            (Kind::InPort, column(|s| &s.in_port), PORT_MAX),
        ];
        let mut conds = Vec::new();
        let mut regions = Vec::new();
        let mut first_region = Vec::with_capacity(sets.len());
        for (s, &(rule, action)) in sets.iter().zip(&bits) {
            let at = conds.len();
            first_region.push(regions.len() as u32);
            // A field the bit does not constrain (its whole value space) is
            // count ANY and no ranges.
            let full = |r: &Ranges, max: u64| r.as_slice() == [(0, max)];
            let f = [
                (&s.src, ADDR_MAX),
                (&s.dst, ADDR_MAX),
                (&s.proto, 255),
                (&s.sport, L4_MAX),
                (&s.dport, L4_MAX),
                (&s.in_port, PORT_MAX),
            ]
            .map(|(r, max)| if full(r, max) { None } else { Some(r) });
            // Disjoint, non-adjacent ranges within 2^16 + 1 values (2 for an
            // address prefix): at most 32,769, so 16 bits hold the count.
            let n = |i: usize| match f.get(i) {
                Some(Some(r)) => r.len().min(ANY - 1) as u32,
                _ => ANY as u32,
            };
            conds.push((n(0) | n(1) << 16, n(2) | n(3) << 16));
            conds.push((n(4) | n(5) << 16, rule));
            let (tag, value, mask) = match action {
                Action::Mark { value, mask } => (0, value, mask),
                Action::Return => (1, 0, 0),
                Action::Accept => (2, 0, 0),
                Action::Count => (3, 0, 0),
            };
            conds.push((tag, value));
            conds.push((mask, 0));
            for r in f.into_iter().flatten() {
                conds.extend(r.iter().take(ANY - 1).map(|&(lo, hi)| (lo as u32, hi as u32)));
            }
            if push_regions(&mut regions, &f, rule, action, at as u32) {
                conds.truncate(at); // exact regions: the record is not needed
            }
        }
        let mut fields = Vec::new();
        let mut chunks = 1;
        for (kind, col, max) in all {
            let t = FieldTable::build(&col, max);
            chunks = t.chunks();
            if !t.trivial || kind == Kind::Proto {
                fields.push((kind, t));
            }
        }
        let primary =
            (0..fields.len()).min_by(|&a, &b| fields[a].1.mean_bits.total_cmp(&fields[b].1.mean_bits)).unwrap_or(0);
        let (mut prim_row, mut prim_bits) = (Vec::new(), Vec::new());
        let mut prim = Vec::new();
        if let Some((_, t)) = fields.get(primary) {
            let prim = &mut prim_row;
            for r in 0..t.row_count() {
                let row = r * chunks;
                let start = prim_bits.len();
                'row: for c in 0..chunks {
                    let mut m = t.summary(row, c);
                    while m != 0 {
                        let b = m.trailing_zeros();
                        m &= m - 1;
                        let mut w = t.word(row, c, b);
                        while w != 0 {
                            if prim_bits.len() - start == VERIFY_MAX {
                                prim_bits.truncate(start);
                                prim.push((start as u32, u32::MAX));
                                break 'row;
                            }
                            let bit = (c * 64 + b as usize) * 64 + w.trailing_zeros() as usize;
                            prim_bits.push(first_region.get(bit).copied().unwrap_or(0));
                            w &= w - 1;
                        }
                    }
                }
                if prim.len() == r {
                    prim.push((start as u32, (prim_bits.len() - start) as u32));
                }
            }
        }
        if let Some((_, t)) = fields.get(primary) {
            // A list of one is its candidate itself: one read fewer; an
            // empty one is the region no key lies in, so that the common
            // case (one candidate or none) takes one branch-free check.
            let never = regions.len() as u32;
            regions.push(Region::never());
            let one = |(start, len): (u32, u32)| match len {
                0 => (never, 1),
                1 => (prim_bits.get(start as usize).copied().unwrap_or(0), 1),
                _ => (start, len),
            };
            prim =
                t.interval_rows().iter().map(|&r| one(prim_row.get(r as usize).copied().unwrap_or((0, 0)))).collect();
        }
        Classifier { fields, bits, primary, prim, prim_bits, regions, conds, chunks, rules: rules.len() }
    }

    /// Number of rules compiled in.
    pub fn len(&self) -> usize {
        self.rules
    }

    pub fn is_empty(&self) -> bool {
        self.rules == 0
    }

    /// Heap bytes held by the tables (for the operator and the benchmark).
    pub fn bytes(&self) -> usize {
        self.fields.iter().map(|(_, t)| t.bytes()).sum::<usize>()
            + self.bits.len() * 12
            + self.conds.len() * 8
            + self.regions.len() * std::mem::size_of::<Region>()
            + self.prim.len() * 8
            + self.prim_bits.len() * 4
    }

    /// The mark of an Ethernet frame received on `in_port`.
    #[inline]
    pub fn classify(&self, frame: &[u8], in_port: u16) -> u32 {
        if self.rules == 0 {
            return 0;
        }
        match Key::parse(frame) {
            Some(k) => self.classify_key(&k, in_port, |_| {}),
            None => 0,
        }
    }

    /// [`Classifier::classify`], adding each matched rule's packet and bytes
    /// into `counters[rule]` (the worker's own slice; see the module docs).
    #[inline]
    pub fn classify_counted(&self, frame: &[u8], in_port: u16, counters: &mut [RuleCounter]) -> u32 {
        if self.rules == 0 {
            return 0;
        }
        let Some(k) = Key::parse(frame) else { return 0 };
        let len = u64::from(k.len);
        self.classify_key(&k, in_port, |r| {
            if let Some(c) = counters.get_mut(r) {
                c.packets += 1;
                c.bytes += len;
            }
        })
    }

    /// The mark of a parsed key; `on_match(rule)` for each matched rule in
    /// order (once per rule, however many of its sub-rules matched).
    #[inline]
    pub fn classify_key(&self, k: &Key, in_port: u16, on_match: impl FnMut(usize)) -> u32 {
        if self.fields.is_empty() {
            return 0; // no rules
        }
        self.classify_tables(k, in_port, on_match)
    }

    /// [`Classifier::classify_key`] through the tables (kept out of line:
    /// the per-frame callers stay small).
    #[inline(never)]
    fn classify_tables(&self, k: &Key, in_port: u16, on_match: impl FnMut(usize)) -> u32 {
        let vals = values(k, in_port);
        // The primary field's candidates alone, if few: check each directly.
        if let Some((kind, t)) = self.fields.get(self.primary) {
            let (start, len) = self.prim.get(t.interval_of(value(&vals, *kind))).copied().unwrap_or((0, 0));
            if len != u32::MAX {
                return self.verify(start, len, &vals, on_match);
            }
        }
        self.classify_and(&vals, on_match)
    }

    /// The mark from the primary field's candidate list `(start, len)` (see
    /// `prim`), each checked directly against `vals` (in [`Kind`] order).
    #[inline]
    fn verify(&self, start: u32, len: u32, vals: &[u32; 6], mut on_match: impl FnMut(usize)) -> u32 {
        // One candidate of exact regions (or none: `Region::never`): no
        // branch on the key but the counting one.
        if len == 1 {
            let s = start as usize;
            if let Some(g) = self.regions.get(s).filter(|g| g.exact()) {
                let hit =
                    self.regions.get(s..=s + g.more()).unwrap_or(&[]).iter().fold(false, |h, r| h | r.contains(vals));
                if hit {
                    on_match(g.rule() as usize);
                }
                return if hit { g.mark_from_zero() } else { 0 };
            }
        }
        let one = [start];
        let cand = match len {
            1 => &one[..],
            _ => self.prim_bits.get(start as usize..start as usize + len as usize).unwrap_or(&[]),
        };
        let mut mark = 0u32;
        let mut last = u32::MAX;
        for &first in cand {
            let Some((rule, action)) = self.check(first as usize, vals) else { continue };
            if rule == last {
                continue; // another sub-rule of a rule already applied
            }
            last = rule;
            on_match(rule as usize);
            if !action.apply(&mut mark) {
                return mark;
            }
        }
        mark
    }

    /// The rule and action of the bit whose regions start at `first`, if
    /// `vals` lie in one of them (and, for an inexact one, in the bit's
    /// exact ranges).
    #[inline]
    fn check(&self, first: usize, vals: &[u32; 6]) -> Option<(u32, Action)> {
        let mut j = first;
        loop {
            let g = self.regions.get(j)?;
            match g.check(vals) {
                Hit::Yes(rule, action) => return Some((rule, action)),
                Hit::Maybe(at) => return self.holds(at, vals),
                Hit::No if g.more() == 0 => return None,
                Hit::No => j += 1,
            }
        }
    }

    /// The mark through every constrained field's table: the AND of their
    /// rows, walked in bit order.
    fn classify_and(&self, vals: &[u32; 6], mut on_match: impl FnMut(usize)) -> u32 {
        let mut rows = [0usize; 6];
        let n = self.fields.len().min(6);
        for (row, (kind, t)) in rows.iter_mut().zip(&self.fields) {
            *row = t.row_of(value(vals, *kind));
        }
        let fields = self.fields.get(..n).unwrap_or(&[]);
        let mut mark = 0u32;
        let mut last = u32::MAX;
        for c in 0..self.chunks {
            let mut m = u64::MAX;
            for ((_, t), &row) in fields.iter().zip(&rows) {
                m &= t.summary(row, c);
            }
            while m != 0 {
                let b = m.trailing_zeros();
                m &= m - 1;
                let mut w = u64::MAX;
                for ((_, t), &row) in fields.iter().zip(&rows) {
                    w &= t.word(row, c, b);
                }
                let word_base = (c * 64 + b as usize) * 64;
                while w != 0 {
                    let bit = word_base + w.trailing_zeros() as usize;
                    w &= w - 1;
                    let Some(&(rule, action)) = self.bits.get(bit) else { return mark };
                    if rule == last {
                        continue; // another sub-rule of a rule already applied
                    }
                    last = rule;
                    on_match(rule as usize);
                    if !action.apply(&mut mark) {
                        return mark;
                    }
                }
            }
        }
        mark
    }
}

/// A key's field values in [`Kind`] order (what `Kind as usize` indexes).
#[inline]
fn values(k: &Key, in_port: u16) -> [u32; 6] {
    [k.src, k.dst, u32::from(k.proto), k.sport, k.dport, u32::from(in_port)]
}

#[inline]
fn value(vals: &[u32; 6], kind: Kind) -> u32 {
    vals.get(kind as usize).copied().unwrap_or(0)
}

impl Classifier {
    /// The rule and action of the bit whose record is at `at` in `conds`,
    /// if its condition holds on every field of `vals` (in [`Kind`] order).
    #[inline]
    fn holds(&self, at: usize, vals: &[u32; 6]) -> Option<(u32, Action)> {
        let head = self.conds.get(at..at + 4)?;
        let [(a, b), (c, rule), (tag, value), (mask, _)] = *head else { return None };
        let counts = [a & 0xffff, a >> 16, b & 0xffff, b >> 16, c & 0xffff, c >> 16];
        let mut i = at + 4;
        for (&v, &n) in vals.iter().zip(&counts) {
            let n = n as usize;
            if n == ANY {
                continue;
            }
            let ranges = self.conds.get(i..i + n)?;
            if !ranges.iter().any(|&(lo, hi)| lo <= v && v <= hi) {
                return None;
            }
            i += n;
        }
        let action = match tag {
            0 => Action::Mark { value, mask },
            1 => Action::Return,
            2 => Action::Accept,
            _ => Action::Count,
        };
        Some((rule, action))
    }
}

#[cfg(test)]
mod tests;
