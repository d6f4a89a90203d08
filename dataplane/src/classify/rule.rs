//! The classifier's rule: an iptables mangle/PREROUTING rule with everything
//! resolved to numbers (the `conf` crate parses iptables syntax; the control
//! side turns interface names into port indices), and the naive linear
//! evaluator that defines its meaning. [`super::Classifier`] must agree with
//! [`Rule::matches`] on every packet; the property tests check it.

use super::key::{Key, NO_PORT};

/// `[!] -s/-d ADDR/LEN`. Host bits of `addr` are ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    pub addr: u32,
    pub len: u8,
    pub negate: bool,
}

impl Prefix {
    /// The netmask of `len` (0 for /0; lengths over 32 count as 32).
    pub const fn mask(len: u8) -> u32 {
        if len == 0 {
            0
        } else if len >= 32 {
            u32::MAX
        } else {
            u32::MAX << (32 - len)
        }
    }

    pub const fn matches(&self, a: u32) -> bool {
        ((a ^ self.addr) & Prefix::mask(self.len) == 0) != self.negate
    }
}

/// `[!] -p PROTO` (`-p all` is no condition at all: `None` in [`Rule`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProtoMatch {
    pub proto: u8,
    pub negate: bool,
}

/// A set of ports given as inclusive ranges (`--dport 80`, `--dport 1024:`,
/// `--dports 80,443,8000:8080`), optionally negated. Ranges with `lo > hi`
/// are empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortMatch {
    pub ranges: Vec<(u16, u16)>,
    pub negate: bool,
}

impl PortMatch {
    /// Whether port `p` (or [`NO_PORT`]) is in the set, negation applied.
    /// Absent ports never match, negated or not (iptables: a port match
    /// fails on a non-first fragment before it looks at its invert flag).
    pub fn matches(&self, p: u32) -> bool {
        p != NO_PORT && self.contains(p) != self.negate
    }

    fn contains(&self, p: u32) -> bool {
        self.ranges.iter().any(|&(lo, hi)| u32::from(lo) <= p && p <= u32::from(hi))
    }
}

/// `[!] -i NAME[+]`, resolved to the set of rvs port indices the name (or
/// wildcard) covers. An empty set with `negate: false` matches nothing (a
/// name that is no port today, as iptables accepts names of absent
/// interfaces).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InPortMatch {
    pub ports: Vec<u16>,
    pub negate: bool,
}

impl InPortMatch {
    pub fn matches(&self, port: u16) -> bool {
        self.ports.contains(&port) != self.negate
    }
}

/// What a matching rule does. Every form of iptables' MARK target is one
/// `Mark { value, mask }`: `mark = (mark & !mask) ^ value` (the kernel's
/// `xt_mark_tginfo2`; `--set-mark N/M` is `value N, mask M|N`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Mark {
        value: u32,
        mask: u32,
    },
    /// `-j RETURN`: stops evaluation (PREROUTING is a base chain).
    Return,
    /// `-j ACCEPT`: stops evaluation of the mangle PREROUTING chain.
    Accept,
    /// No `-j`: the rule only counts.
    Count,
}

impl Action {
    /// Applies the action to the running mark; `false` stops evaluation.
    #[inline]
    pub fn apply(self, mark: &mut u32) -> bool {
        match self {
            Action::Mark { value, mask } => {
                *mark = (*mark & !mask) ^ value;
                true
            }
            Action::Return | Action::Accept => false,
            Action::Count => true,
        }
    }
}

/// One rule. All present conditions must hold (iptables ANDs a rule's
/// matches). `l4` is set when the rule has a tcp, udp or multiport match
/// (iptables' `-m tcp` with no option still fails on packets without ports);
/// any port condition implies it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub src: Option<Prefix>,
    pub dst: Option<Prefix>,
    pub proto: Option<ProtoMatch>,
    pub l4: bool,
    /// `--sport`, `--sports`: each must hold.
    pub sport: Vec<PortMatch>,
    /// `--dport`, `--dports`: each must hold.
    pub dport: Vec<PortMatch>,
    /// multiport `--ports`: source or destination port in the set (negated:
    /// neither is); each must hold.
    pub ports: Vec<PortMatch>,
    pub in_port: Option<InPortMatch>,
    pub action: Action,
}

impl Rule {
    /// A rule with no condition (matches every IPv4 packet).
    pub const fn any(action: Action) -> Rule {
        Rule {
            src: None,
            dst: None,
            proto: None,
            l4: false,
            sport: Vec::new(),
            dport: Vec::new(),
            ports: Vec::new(),
            in_port: None,
            action,
        }
    }

    /// Whether the rule needs the packet to have ports.
    pub fn needs_ports(&self) -> bool {
        self.l4 || !self.sport.is_empty() || !self.dport.is_empty() || !self.ports.is_empty()
    }

    /// The reference semantics, condition by condition.
    pub fn matches(&self, k: &Key, in_port: u16) -> bool {
        self.src.none_or(|p| p.matches(k.src))
            && self.dst.none_or(|p| p.matches(k.dst))
            && self.proto.none_or(|p| (k.proto == p.proto) != p.negate)
            && self.in_port.as_ref().none_or(|m| m.matches(in_port))
            && (!self.needs_ports() || k.sport != NO_PORT)
            && self.sport.iter().all(|m| m.matches(k.sport))
            && self.dport.iter().all(|m| m.matches(k.dport))
            && self.ports.iter().all(|m| {
                if k.sport == NO_PORT {
                    false
                } else if m.negate {
                    !m.contains(k.sport) && !m.contains(k.dport)
                } else {
                    m.contains(k.sport) || m.contains(k.dport)
                }
            })
    }
}

/// `Option::is_none_or` is newer than the workspace's rust-version.
trait NoneOr<T> {
    fn none_or(self, f: impl FnOnce(T) -> bool) -> bool;
}

impl<T> NoneOr<T> for Option<T> {
    fn none_or(self, f: impl FnOnce(T) -> bool) -> bool {
        match self {
            None => true,
            Some(v) => f(v),
        }
    }
}

/// The naive evaluator: every rule in order, as iptables walks a chain.
/// Calls `on_match(rule_index)` for each matching rule and returns the mark.
pub fn classify_linear(rules: &[Rule], key: &Key, in_port: u16, mut on_match: impl FnMut(usize)) -> u32 {
    let mut mark = 0;
    for (i, r) in rules.iter().enumerate() {
        if r.matches(key, in_port) {
            on_match(i);
            if !r.action.apply(&mut mark) {
                break;
            }
        }
    }
    mark
}
