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
//! that field holds there ([`field`]). A packet costs one binary search per
//! constrained field, the AND of one summary word per 4,096 rules, the AND of
//! the few words where every field has a candidate, and a walk over the set
//! bits in rule order. A rule with multiport `--ports` (source OR
//! destination port) becomes two sub-rules on adjacent bits, counted and
//! applied once.
//!
//! Counters: [`Classifier::classify_counted`] adds each matched rule's
//! packet and IPv4 length into a per-worker `&mut [RuleCounter]` indexed by
//! rule (no shared writes); indices past the slice are not counted, so a
//! worker that has not resized its slice after a rule change cannot panic.
//!
//! [`Classifier::classify`] allocates nothing, takes no lock and cannot
//! panic (every table access is checked).

mod field;
pub mod key;
pub mod rule;

use field::{complement, intersect, normalize, FieldTable, Ranges};
pub use key::{Key, NO_PORT};
pub use rule::{classify_linear, Action, InPortMatch, PortMatch, Prefix, ProtoMatch, Rule};

/// Packets and bytes (IPv4 total length, as iptables counts `skb->len`)
/// matched by one rule on one worker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleCounter {
    pub packets: u64,
    pub bytes: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Src,
    Dst,
    Proto,
    Sport,
    Dport,
    InPort,
}

const ADDR_MAX: u64 = u32::MAX as u64;
const PORT_MAX: u64 = 65535;
const L4_MAX: u64 = NO_PORT as u64;

/// The compiled rule set. Build on the control side, share read-only.
#[derive(Debug, Default)]
pub struct Classifier {
    /// Constrained fields only (protocol is always kept, so there is one).
    fields: Vec<(Kind, FieldTable)>,
    /// Per bit: the rule it stands for and that rule's action.
    bits: Vec<(u32, Action)>,
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
        let mut fields = Vec::new();
        let mut chunks = 1;
        for (kind, col, max) in all {
            let t = FieldTable::build(&col, max);
            chunks = t.chunks();
            if !t.trivial || kind == Kind::Proto {
                fields.push((kind, t));
            }
        }
        Classifier { fields, bits, chunks, rules: rules.len() }
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
        self.fields.iter().map(|(_, t)| t.bytes()).sum::<usize>() + self.bits.len() * 12
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
    pub fn classify_key(&self, k: &Key, in_port: u16, mut on_match: impl FnMut(usize)) -> u32 {
        let mut rows = [0usize; 6];
        let n = self.fields.len().min(6);
        for (row, (kind, t)) in rows.iter_mut().zip(&self.fields) {
            let v = match kind {
                Kind::Src => k.src,
                Kind::Dst => k.dst,
                Kind::Proto => u32::from(k.proto),
                Kind::Sport => k.sport,
                Kind::Dport => k.dport,
                Kind::InPort => u32::from(in_port),
            };
            *row = t.row_of(v);
        }
        let fields = self.fields.get(..n).unwrap_or(&[]);
        let mut mark = 0u32;
        let mut last = u32::MAX;
        let mut sums = [0u64; 6];
        for c in 0..self.chunks {
            let mut m = u64::MAX;
            for ((s, (_, t)), &row) in sums.iter_mut().zip(fields).zip(&rows) {
                *s = t.summary(row, c);
                m &= *s;
            }
            while m != 0 {
                let b = m.trailing_zeros();
                m &= m - 1;
                let mut w = u64::MAX;
                for (((_, t), &row), &s) in fields.iter().zip(&rows).zip(&sums) {
                    w &= t.word(row, c, s, b);
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

#[cfg(test)]
mod tests;
