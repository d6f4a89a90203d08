//! iptables argument syntax for fwmark rules: the mangle table's PREROUTING
//! chain, `-j MARK` and the matches LVS operators use to group ports into one
//! firewall-mark service (`ipvsadm -A -f N`).
//!
//! [`parse_rule`] reads one rule as written in `[fwmark] rules` (with or
//! without `iptables -t mangle -A PREROUTING` in front); [`parse_command`]
//! reads a whole iptables command line (`-A`, `-I`, `-D`, `-F`, `-L`, `-S`,
//! `-Z`) for `rvsadm mark`; [`format_rule`] prints a rule as `iptables -S`
//! (iptables-save) does: addresses with host bits cleared and a length
//! (`/32`), `-p` by name, the implicit `-m tcp`/`-m udp` of `--sport`/
//! `--dport` spelled out, every MARK form as `--set-xmark 0xV/0xM`. The
//! printed form parses back to the same [`MarkRule`].
//!
//! Parsing follows iptables: options are read left to right; `!` negates
//! the next option; `--sport`/`--dport` load the tcp or udp match only after
//! a non-negated `-p tcp|udp`; multiport needs its protocol before it;
//! numbers are C `strtoul` base 0 (decimal, `0x` hex, leading-`0` octal).
//! Messages quote iptables' own where it has one.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// The only chain rvs classifies in.
pub const CHAIN: &str = "PREROUTING";
/// iptables' `XT_MULTI_PORTS`: entries in one multiport match (a range
/// counts two).
pub const MULTIPORT_MAX: usize = 15;
/// `IFNAMSIZ - 1`.
pub const IFNAME_MAX: usize = 15;

/// `[!] -s/-d ADDR[/LEN]`, host bits cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddrMatch {
    pub addr: Ipv4Addr,
    pub len: u8,
    pub negate: bool,
}

/// `[!] -p PROTO`; `-p all` (0) is no condition and is not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtoMatch {
    pub proto: u8,
    pub negate: bool,
}

/// `[!] -i NAME[+]`: an rvs port name, or with `wildcard` every port whose
/// name starts with `name`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IfaceMatch {
    pub name: String,
    pub wildcard: bool,
    pub negate: bool,
}

impl IfaceMatch {
    /// Whether port `port` is named by this match (negation not applied:
    /// the dataplane applies it to the set of ports this selects).
    pub fn covers(&self, port: &str) -> bool {
        if self.wildcard {
            port.starts_with(&self.name)
        } else {
            port == self.name
        }
    }
}

/// An inclusive port range; `lo == hi` for one port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

/// `[!] --sport/--dport PORT[:PORT]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortCond {
    pub range: PortRange,
    pub negate: bool,
}

/// The protocol match `--sport`/`--dport` belong to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum L4Proto {
    Tcp,
    Udp,
}

/// Which ports a multiport match looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MultiportDir {
    /// `--sports`
    Source,
    /// `--dports`
    Destination,
    /// `--ports`: the source or the destination port (negated: neither).
    Either,
}

/// A match module of the rule, in the order iptables loads (and prints) them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Match {
    /// `-m tcp`/`-m udp`, explicit or loaded by `--sport`/`--dport`. With no
    /// port it still fails on packets without ports (non-first fragments).
    L4 { proto: L4Proto, sport: Option<PortCond>, dport: Option<PortCond> },
    /// `-m multiport [!] --sports|--dports|--ports LIST`.
    Multiport { dir: MultiportDir, ports: Vec<PortRange>, negate: bool },
}

/// The rule's target. Every MARK option is kept as the kernel's
/// `xt_mark_tginfo2`: `mark = (mark & !mask) ^ value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    Mark {
        value: u32,
        mask: u32,
    },
    /// Stops evaluation (PREROUTING is a base chain: its policy applies).
    Return,
    /// Stops evaluation of the mangle PREROUTING chain.
    Accept,
}

/// One rule of the mangle PREROUTING chain. `target: None` (no `-j`) only
/// counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkRule {
    pub src: Option<AddrMatch>,
    pub dst: Option<AddrMatch>,
    pub in_iface: Option<IfaceMatch>,
    pub protocol: Option<ProtoMatch>,
    pub matches: Vec<Match>,
    pub target: Option<Target>,
}

/// `-L`'s display options.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListOptions {
    /// `-n`
    pub numeric: bool,
    /// `-v`
    pub verbose: bool,
    /// `-x`
    pub exact: bool,
    /// `--line-numbers`
    pub line_numbers: bool,
}

/// An iptables command on the PREROUTING chain of the mangle table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MarkCommand {
    /// `-A PREROUTING rule`
    Append(MarkRule),
    /// `-I PREROUTING [N] rule`: `pos` is 1-based, 1 when not given.
    Insert { pos: u32, rule: MarkRule },
    /// `-D PREROUTING rule`: the first rule equal to it.
    Delete(MarkRule),
    /// `-D PREROUTING N` (1-based).
    DeleteNum(u32),
    /// `-F [PREROUTING]`
    Flush,
    /// `-Z [PREROUTING]`: zero the counters.
    Zero,
    /// `-L [PREROUTING] [-n] [-v] [-x] [--line-numbers]`
    List(ListOptions),
    /// `-S [PREROUTING] [-v]` (`-v` adds `-c PKTS BYTES` as iptables does).
    ListRules { verbose: bool },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmd {
    Append,
    Insert,
    Delete,
    Flush,
    Zero,
    List,
    ListRules,
}

impl Cmd {
    const fn letter(self) -> char {
        match self {
            Cmd::Append => 'A',
            Cmd::Insert => 'I',
            Cmd::Delete => 'D',
            Cmd::Flush => 'F',
            Cmd::Zero => 'Z',
            Cmd::List => 'L',
            Cmd::ListRules => 'S',
        }
    }
}

/// A multiport match while its option is still to come.
#[derive(Default)]
struct Parser<'a> {
    rule: MarkRule,
    /// Multiport matches loaded with `-m multiport` and no option yet,
    /// by index in `rule.matches` (placeholder `Multiport` with no ports).
    pending_multiport: Option<usize>,
    cmd: Option<Cmd>,
    chain: Option<&'a str>,
    num: Option<u32>,
    list: ListOptions,
    /// First option that belongs to a rule, for "Illegal option" messages.
    first_rule_opt: Option<&'a str>,
    /// First `-L` option, likewise.
    first_list_opt: Option<&'a str>,
    mark_loaded: bool,
    mark_set: bool,
}

/// Parses one rule: `[iptables] [-t mangle] [-A PREROUTING] matches [-j
/// target]`. Other commands are refused (use [`parse_command`]).
pub fn parse_rule(line: &str) -> Result<MarkRule, String> {
    let argv: Vec<&str> = line.split_whitespace().collect();
    let argv = strip_program(&argv);
    let has_command = argv.iter().any(|a| command_of(a).is_some() || is_bundle(a));
    if !has_command {
        let p = Parser { cmd: Some(Cmd::Append), chain: Some(CHAIN), ..Parser::default() };
        return p.run(argv).and_then(|p| p.finish_rule());
    }
    match parse_command(argv)? {
        MarkCommand::Append(rule) => Ok(rule),
        _ => Err(format!("\"{}\": a rule is `-A {CHAIN}` followed by matches and a target", line.trim())),
    }
}

/// Parses an iptables command line (the program name and `-t mangle` may be
/// given or not).
pub fn parse_command(argv: &[&str]) -> Result<MarkCommand, String> {
    let argv = strip_program(argv);
    let p = Parser::default().run(argv)?;
    let Some(cmd) = p.cmd else { return Err("no command specified (one of -A, -I, -D, -F, -L, -S, -Z)".into()) };
    let rule_cmd = matches!(cmd, Cmd::Append | Cmd::Insert | Cmd::Delete) && !(cmd == Cmd::Delete && p.num.is_some());
    if !rule_cmd {
        if let Some(opt) = p.first_rule_opt {
            return Err(format!("Illegal option `{opt}' with this command"));
        }
    }
    if !matches!(cmd, Cmd::List | Cmd::ListRules) {
        if let Some(opt) = p.first_list_opt {
            return Err(format!("Illegal option `{opt}' with this command"));
        }
    }
    if cmd == Cmd::ListRules {
        for (opt, set) in [("-n", p.list.numeric), ("-x", p.list.exact), ("--line-numbers", p.list.line_numbers)] {
            if set {
                return Err(format!("Illegal option `{opt}' with this command"));
            }
        }
    }
    let num = p.num;
    let list = p.list;
    Ok(match cmd {
        Cmd::Append => MarkCommand::Append(p.finish_rule()?),
        Cmd::Insert => MarkCommand::Insert { pos: num.unwrap_or(1), rule: p.finish_rule()? },
        Cmd::Delete => match num {
            Some(n) => MarkCommand::DeleteNum(n),
            None => MarkCommand::Delete(p.finish_rule()?),
        },
        Cmd::Flush => MarkCommand::Flush,
        Cmd::Zero => MarkCommand::Zero,
        Cmd::List => MarkCommand::List(list),
        Cmd::ListRules => MarkCommand::ListRules { verbose: list.verbose },
    })
}

fn strip_program<'s, 'a>(argv: &'s [&'a str]) -> &'s [&'a str] {
    match argv.first() {
        Some(&"iptables" | &"iptables-legacy" | &"iptables-nft") => argv.get(1..).unwrap_or(&[]),
        _ => argv,
    }
}

fn command_of(a: &str) -> Option<Cmd> {
    Some(match a {
        "-A" | "--append" => Cmd::Append,
        "-I" | "--insert" => Cmd::Insert,
        "-D" | "--delete" => Cmd::Delete,
        "-F" | "--flush" => Cmd::Flush,
        "-Z" | "--zero" => Cmd::Zero,
        "-L" | "--list" => Cmd::List,
        "-S" | "--list-rules" => Cmd::ListRules,
        _ => return None,
    })
}

/// `-nvL` and the like: bundled short options without arguments.
fn is_bundle(a: &str) -> bool {
    a.len() > 2 && a.starts_with('-') && !a.starts_with("--") && a[1..].chars().all(|c| "nvxLSFZ".contains(c))
}

/// C `strtoul(s, NULL, 0)` over the whole string, within `u32`.
fn parse_num(s: &str) -> Option<u32> {
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (h, 16)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u32::from_str_radix(digits, radix).ok()
}

fn parse_port(s: &str) -> Result<u16, String> {
    parse_num(s).and_then(|n| u16::try_from(n).ok()).ok_or_else(|| {
        format!("invalid port/service `{s}' specified (rvs takes port numbers 0-65535, not service names)")
    })
}

/// `PORT`, `LO:HI`, `LO:`, `:HI` (and `:`, every port).
fn parse_port_range(s: &str) -> Result<PortRange, String> {
    let (lo, hi) = match s.split_once(':') {
        None => {
            let p = parse_port(s)?;
            (p, p)
        }
        Some((a, b)) => {
            let lo = if a.is_empty() { 0 } else { parse_port(a)? };
            let hi = if b.is_empty() { u16::MAX } else { parse_port(b)? };
            (lo, hi)
        }
    };
    if lo > hi {
        return Err(format!("invalid portrange (min > max): `{s}'"));
    }
    Ok(PortRange { lo, hi })
}

fn parse_multiport_list(s: &str) -> Result<Vec<PortRange>, String> {
    let mut out = Vec::new();
    let mut entries = 0;
    for part in s.split(',') {
        let r = parse_port_range(part)?;
        entries += if r.lo == r.hi { 1 } else { 2 };
        if entries > MULTIPORT_MAX {
            return Err(format!(
                "too many ports specified in `{s}' (multiport takes at most {MULTIPORT_MAX} entries, a range counts two)"
            ));
        }
        out.push(r);
    }
    Ok(out)
}

fn parse_addr(opt: &str, s: &str, negate: bool) -> Result<Option<AddrMatch>, String> {
    if s.contains(',') {
        return Err(format!("{opt} `{s}': rvs takes one address or network per rule; write one rule per address"));
    }
    let (a, m) = match s.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (s, None),
    };
    let addr: Ipv4Addr = a
        .parse()
        .map_err(|_| format!("host/network `{a}' not found (rvs takes dotted-quad IPv4 addresses, not names)"))?;
    let len = match m {
        None => 32,
        Some(m) if m.contains('.') => {
            let mask = u32::from(m.parse::<Ipv4Addr>().map_err(|_| format!("invalid mask `{m}' specified"))?);
            if mask.leading_ones() + mask.trailing_zeros() != 32 {
                return Err(format!("invalid mask `{m}' specified: rvs supports contiguous netmasks only"));
            }
            mask.leading_ones() as u8
        }
        Some(m) => match m.parse::<u8>() {
            Ok(l) if l <= 32 && !m.starts_with('+') => l,
            _ => return Err(format!("invalid mask `{m}' specified")),
        },
    };
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) };
    let addr = Ipv4Addr::from(u32::from(addr) & mask);
    // iptables drops a non-negated 0.0.0.0/0: it matches everything.
    Ok((len != 0 || negate).then_some(AddrMatch { addr, len, negate }))
}

const PROTOCOLS: [(&str, u8); 7] =
    [("tcp", 6), ("udp", 17), ("icmp", 1), ("sctp", 132), ("udplite", 136), ("esp", 50), ("ah", 51)];

fn parse_proto(s: &str) -> Result<u8, String> {
    let lower = s.to_ascii_lowercase();
    if lower == "all" {
        return Ok(0);
    }
    if let Some(&(_, n)) = PROTOCOLS.iter().find(|(name, _)| *name == lower) {
        return Ok(n);
    }
    match (lower.as_str(), parse_num(s)) {
        ("dccp", _) => Ok(33),
        ("gre", _) => Ok(47),
        (_, Some(n)) => u8::try_from(n).map_err(|_| format!("unknown protocol \"{s}\" specified (numbers go up to 255)")),
        _ => Err(format!("unknown protocol \"{s}\" specified (tcp, udp, icmp, all, a name from /etc/protocols rvs knows, or a number)")),
    }
}

fn proto_name(p: u8) -> Option<&'static str> {
    PROTOCOLS.iter().find(|&&(_, n)| n == p).map(|&(name, _)| name)
}

fn parse_iface(s: &str, negate: bool) -> Result<IfaceMatch, String> {
    if s.is_empty() || s.len() > IFNAME_MAX {
        return Err(format!("interface name `{s}' must be shorter than IFNAMSIZ ({})", IFNAME_MAX + 1));
    }
    if s.contains(['/', ' ', ':']) || s == "." || s == ".." {
        return Err(format!(
            "Warning: weird character in interface `{s}' ('/' and ' ' are not allowed by the kernel)."
        ));
    }
    let (name, wildcard) = match s.strip_suffix('+') {
        Some(n) => (n, true),
        None => (s, false),
    };
    Ok(IfaceMatch { name: name.to_owned(), wildcard, negate })
}

/// `VALUE[/MASK]` of `--set-mark`/`--set-xmark`; `(value, mask)`.
fn parse_mark_mask(opt: &str, s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("MARK: bad value for option \"{opt}\", or out of range (0-4294967295): `{s}'");
    match s.split_once('/') {
        None => Ok((parse_num(s).ok_or_else(bad)?, u32::MAX)),
        Some((v, m)) => Ok((parse_num(v).ok_or_else(bad)?, parse_num(m).ok_or_else(bad)?)),
    }
}

/// Options a rule can carry (as opposed to `-L`'s).
const RULE_OPTS: [&str; 20] = [
    "-s",
    "--source",
    "--src",
    "-d",
    "--destination",
    "--dst",
    "-p",
    "--protocol",
    "-i",
    "--in-interface",
    "-m",
    "--match",
    "-j",
    "--jump",
    "--sport",
    "--source-port",
    "--dport",
    "--destination-port",
    "--sports",
    "--dports",
];

impl<'a> Parser<'a> {
    fn run(mut self, argv: &[&'a str]) -> Result<Parser<'a>, String> {
        let mut it = argv.iter().copied().peekable();
        let mut invert = false;
        while let Some(tok) = it.next() {
            if tok == "!" {
                if invert {
                    return Err("multiple consecutive ! not allowed".into());
                }
                invert = true;
                continue;
            }
            let negatable = matches!(
                tok,
                "-s" | "--source"
                    | "--src"
                    | "-d"
                    | "--destination"
                    | "--dst"
                    | "-p"
                    | "--protocol"
                    | "-i"
                    | "--in-interface"
                    | "--sport"
                    | "--source-port"
                    | "--dport"
                    | "--destination-port"
                    | "--sports"
                    | "--source-ports"
                    | "--dports"
                    | "--destination-ports"
                    | "--ports"
            );
            if invert && !negatable {
                return Err(format!("cannot have ! before {tok}"));
            }
            let negate = std::mem::take(&mut invert);
            if (RULE_OPTS.contains(&tok) || tok.starts_with("--") && tok.ends_with("-mark") || tok == "--ports")
                && self.first_rule_opt.is_none()
            {
                self.first_rule_opt = Some(tok);
            }
            let mut value =
                |what: &str| it.next().ok_or_else(|| format!("option \"{tok}\" requires an argument ({what})"));
            if let Some(cmd) = command_of(tok) {
                self.set_command(cmd)?;
                let chain_required = matches!(cmd, Cmd::Append | Cmd::Insert | Cmd::Delete);
                let chain =
                    if chain_required { Some(value("a chain name")?) } else { it.next_if(|a| !a.starts_with('-')) };
                if let Some(c) = chain {
                    if c != CHAIN {
                        return Err(format!(
                            "chain `{c}': rvs classifies in the mangle table's {CHAIN} chain only (iptables -t mangle -{} {CHAIN} ...)",
                            cmd.letter()
                        ));
                    }
                    self.chain = Some(c);
                }
                if matches!(cmd, Cmd::Insert | Cmd::Delete) {
                    if let Some(n) = it.next_if(|a| a.chars().all(|c| c.is_ascii_digit())) {
                        match n.parse::<u32>() {
                            Ok(v) if v >= 1 => self.num = Some(v),
                            _ => return Err(format!("Invalid rule number `{n}'")),
                        }
                        if cmd == Cmd::Delete {
                            if let Some(extra) = it.next() {
                                return Err(format!(
                                    "Bad argument `{extra}' (-D {CHAIN} N takes nothing after the rule number)"
                                ));
                            }
                        }
                    }
                }
                continue;
            }
            if is_bundle(tok) {
                for c in tok[1..].chars() {
                    match c {
                        'n' => self.list_flag("-n", |l| &mut l.numeric)?,
                        'v' => self.list_flag("-v", |l| &mut l.verbose)?,
                        'x' => self.list_flag("-x", |l| &mut l.exact)?,
                        other => {
                            let cmd =
                                command_of(&format!("-{other}")).ok_or_else(|| format!("unknown option \"{tok}\""))?;
                            self.set_command(cmd)?;
                        }
                    }
                }
                continue;
            }
            match tok {
                "-t" | "--table" => {
                    let t = value("a table name")?;
                    if t != "mangle" {
                        return Err(format!("table `{t}': rvs classifies in the mangle table only (-t mangle)"));
                    }
                }
                "-n" | "--numeric" => self.list_flag(tok, |l| &mut l.numeric)?,
                "-v" | "--verbose" => self.list_flag(tok, |l| &mut l.verbose)?,
                "-x" | "--exact" => self.list_flag(tok, |l| &mut l.exact)?,
                "--line-numbers" => self.list_flag(tok, |l| &mut l.line_numbers)?,
                "-s" | "--source" | "--src" => {
                    if self.rule.src.is_some() {
                        return Err("multiple -s flags not allowed".into());
                    }
                    let v = value("an address or network")?;
                    self.rule.src = parse_addr("-s", v, negate)?;
                }
                "-d" | "--destination" | "--dst" => {
                    if self.rule.dst.is_some() {
                        return Err("multiple -d flags not allowed".into());
                    }
                    let v = value("an address or network")?;
                    self.rule.dst = parse_addr("-d", v, negate)?;
                }
                "-p" | "--protocol" => {
                    if self.rule.protocol.is_some() {
                        return Err("multiple -p flags not allowed".into());
                    }
                    let v = value("a protocol")?;
                    let proto = parse_proto(v)?;
                    if proto == 0 && negate {
                        return Err("rule would never match protocol (! -p all)".into());
                    }
                    self.rule.protocol = (proto != 0).then_some(ProtoMatch { proto, negate });
                }
                "-i" | "--in-interface" => {
                    if self.rule.in_iface.is_some() {
                        return Err("multiple -i flags not allowed".into());
                    }
                    let v = value("an rvs port name")?;
                    self.rule.in_iface = Some(parse_iface(v, negate)?);
                }
                "-o" | "--out-interface" => {
                    return Err(format!("Can't use {tok} with {CHAIN} (packets have no output interface yet)"));
                }
                "-m" | "--match" => {
                    let m = value("a match name")?;
                    match m {
                        "tcp" => self.rule.matches.push(Match::L4 { proto: L4Proto::Tcp, sport: None, dport: None }),
                        "udp" => self.rule.matches.push(Match::L4 { proto: L4Proto::Udp, sport: None, dport: None }),
                        "multiport" => {
                            self.check_multiport_proto()?;
                            if let Some(i) = self.pending_multiport {
                                return Err(format!(
                                    "multiport match #{} has no option: give it --sports, --dports or --ports before the next -m multiport",
                                    i + 1
                                ));
                            }
                            self.pending_multiport = Some(self.rule.matches.len());
                            self.rule.matches.push(Match::Multiport {
                                dir: MultiportDir::Destination,
                                ports: Vec::new(),
                                negate: false,
                            });
                        }
                        other => {
                            return Err(format!(
                                "Couldn't load match `{other}':No such file or directory (rvs knows tcp, udp and multiport)"
                            ))
                        }
                    }
                }
                "-j" | "--jump" => {
                    if self.rule.target.is_some() || self.mark_loaded {
                        return Err("multiple -j flags not allowed".into());
                    }
                    match value("a target")? {
                        "MARK" => self.mark_loaded = true,
                        "RETURN" => self.rule.target = Some(Target::Return),
                        "ACCEPT" => self.rule.target = Some(Target::Accept),
                        other => {
                            return Err(format!(
                                "Couldn't load target `{other}':No such file or directory (rvs knows MARK, RETURN and ACCEPT)"
                            ))
                        }
                    }
                }
                "--sport" | "--source-port" | "--dport" | "--destination-port" => {
                    let v = value("a port or range")?;
                    let range = parse_port_range(v)?;
                    let src = matches!(tok, "--sport" | "--source-port");
                    let idx = self.l4_match(tok)?;
                    if let Some(Match::L4 { proto, sport, dport }) = self.rule.matches.get_mut(idx) {
                        let slot = if src { sport } else { dport };
                        if slot.is_some() {
                            let name = if *proto == L4Proto::Tcp { "tcp" } else { "udp" };
                            let opt = if src { "--sport" } else { "--dport" };
                            return Err(format!("{name}: \"{opt}\" option may only be specified once"));
                        }
                        // A non-negated 0:65535 is iptables' "no condition".
                        let full = range.lo == 0 && range.hi == u16::MAX && !negate;
                        *slot = (!full).then_some(PortCond { range, negate });
                    }
                }
                "--sports" | "--source-ports" | "--dports" | "--destination-ports" | "--ports" => {
                    let Some(i) = self.pending_multiport.take() else {
                        return Err(format!(
                            "unknown option \"{tok}\" ({tok} belongs to -m multiport, which must come first{})",
                            if self.rule.matches.iter().any(|m| matches!(m, Match::Multiport { .. })) {
                                "; multiport can only have one option: load another -m multiport"
                            } else {
                                ""
                            }
                        ));
                    };
                    let v = value("a comma-separated list of ports")?;
                    let list = parse_multiport_list(v)?;
                    let d = match tok {
                        "--sports" | "--source-ports" => MultiportDir::Source,
                        "--dports" | "--destination-ports" => MultiportDir::Destination,
                        _ => MultiportDir::Either,
                    };
                    if let Some(Match::Multiport { dir, ports, negate: n }) = self.rule.matches.get_mut(i) {
                        *dir = d;
                        *ports = list;
                        *n = negate;
                    }
                }
                "--set-mark" | "--set-xmark" | "--and-mark" | "--or-mark" | "--xor-mark" => {
                    if !self.mark_loaded {
                        return Err(format!(
                            "unknown option \"{tok}\" ({tok} belongs to -j MARK, which must come first)"
                        ));
                    }
                    if self.mark_set {
                        return Err(format!(
                            "MARK: \"{tok}\": only one of --set-mark, --set-xmark, --and-mark, --or-mark, --xor-mark per rule"
                        ));
                    }
                    self.mark_set = true;
                    let v = value("a mark value")?;
                    let (value, mask) = match tok {
                        "--set-xmark" => parse_mark_mask(tok, v)?,
                        "--set-mark" => {
                            let (n, m) = parse_mark_mask(tok, v)?;
                            (n, m | n)
                        }
                        _ => {
                            let n = parse_num(v).ok_or_else(|| {
                                format!("MARK: bad value for option \"{tok}\", or out of range (0-4294967295): `{v}'")
                            })?;
                            match tok {
                                "--and-mark" => (0, !n),
                                "--or-mark" => (n, n),
                                _ => (n, 0),
                            }
                        }
                    };
                    self.rule.target = Some(Target::Mark { value, mask });
                }
                other if other.starts_with('-') && other.len() > 1 => {
                    let hint =
                        if matches!(other, "-f" | "--fragment") { " (rvs does not match on fragments)" } else { "" };
                    return Err(format!("unknown option \"{other}\"{hint}"));
                }
                other => return Err(format!("Bad argument `{other}'")),
            }
        }
        if invert {
            return Err("! at the end of the line: it must come before the option it negates".into());
        }
        Ok(self)
    }

    fn set_command(&mut self, cmd: Cmd) -> Result<(), String> {
        if let Some(old) = self.cmd {
            return Err(format!("Can't use -{} with -{}", cmd.letter(), old.letter()));
        }
        self.cmd = Some(cmd);
        Ok(())
    }

    fn list_flag(&mut self, tok: &'a str, f: fn(&mut ListOptions) -> &mut bool) -> Result<(), String> {
        *f(&mut self.list) = true;
        if self.first_list_opt.is_none() && tok != "-v" && tok != "--verbose" {
            self.first_list_opt = Some(tok);
        }
        Ok(())
    }

    /// The tcp/udp match `--sport`/`--dport` go to: the last one loaded, or
    /// one loaded now from `-p tcp|udp` as iptables does.
    fn l4_match(&mut self, tok: &str) -> Result<usize, String> {
        if let Some(i) = self.rule.matches.iter().rposition(|m| matches!(m, Match::L4 { .. })) {
            return Ok(i);
        }
        let proto = match self.rule.protocol {
            Some(ProtoMatch { proto: 6, negate: false }) => L4Proto::Tcp,
            Some(ProtoMatch { proto: 17, negate: false }) => L4Proto::Udp,
            _ => {
                return Err(format!(
                    "unknown option \"{tok}\" (iptables accepts {tok} only after -p tcp or -p udp, or -m tcp/-m udp)"
                ))
            }
        };
        self.rule.matches.push(Match::L4 { proto, sport: None, dport: None });
        Ok(self.rule.matches.len() - 1)
    }

    fn check_multiport_proto(&self) -> Result<(), String> {
        match self.rule.protocol {
            Some(ProtoMatch { negate: true, .. }) => {
                Err("multiport only works with TCP, UDP, UDPLITE, SCTP and DCCP".into())
            }
            Some(ProtoMatch { proto: 6 | 17 | 136 | 132 | 33, .. }) => Ok(()),
            Some(_) => Err("multiport only works with TCP, UDP, UDPLITE, SCTP and DCCP".into()),
            None => Err("multiport needs `-p tcp', `-p udp', `-p udplite', `-p sctp' or `-p dccp'".into()),
        }
    }

    fn finish_rule(self) -> Result<MarkRule, String> {
        if self.pending_multiport.is_some() {
            return Err("multiport: one of --sports, --dports or --ports is required".into());
        }
        if self.mark_loaded && !self.mark_set {
            return Err("MARK: One of the --set-xmark, --{and,or,xor,set}-mark options is required".into());
        }
        for m in &self.rule.matches {
            if let Match::L4 { proto, .. } = m {
                let (want, name) = match proto {
                    L4Proto::Tcp => (6, "TCP match requires '-p tcp'"),
                    L4Proto::Udp => (17, "UDP match requires '-p udp'"),
                };
                if self.rule.protocol != Some(ProtoMatch { proto: want, negate: false }) {
                    return Err(name.into());
                }
            }
        }
        Ok(self.rule)
    }
}

fn push_range(out: &mut String, r: PortRange) {
    if r.lo == r.hi {
        let _ = write!(out, "{}", r.lo);
    } else {
        let _ = write!(out, "{}:{}", r.lo, r.hi);
    }
}

/// The rule as `iptables -S` prints it (`-A PREROUTING ...`).
pub fn format_rule(r: &MarkRule) -> String {
    let mut s = format!("-A {CHAIN}");
    let neg = |s: &mut String, n: bool| {
        if n {
            s.push_str(" !");
        }
    };
    for (opt, a) in [("-s", &r.src), ("-d", &r.dst)] {
        if let Some(a) = a {
            neg(&mut s, a.negate);
            let _ = write!(s, " {opt} {}/{}", a.addr, a.len);
        }
    }
    if let Some(i) = &r.in_iface {
        neg(&mut s, i.negate);
        let _ = write!(s, " -i {}{}", i.name, if i.wildcard { "+" } else { "" });
    }
    if let Some(p) = r.protocol {
        neg(&mut s, p.negate);
        match proto_name(p.proto) {
            Some(n) => {
                let _ = write!(s, " -p {n}");
            }
            None => {
                let _ = write!(s, " -p {}", p.proto);
            }
        }
    }
    for m in &r.matches {
        match m {
            Match::L4 { proto, sport, dport } => {
                s.push_str(if *proto == L4Proto::Tcp { " -m tcp" } else { " -m udp" });
                // iptables omits a full 0:65535 range (it is no condition).
                for (opt, c) in [("--sport", sport), ("--dport", dport)] {
                    if let Some(c) = c {
                        if c.range.lo == 0 && c.range.hi == u16::MAX && !c.negate {
                            continue;
                        }
                        neg(&mut s, c.negate);
                        let _ = write!(s, " {opt} ");
                        push_range(&mut s, c.range);
                    }
                }
            }
            Match::Multiport { dir, ports, negate } => {
                s.push_str(" -m multiport");
                neg(&mut s, *negate);
                s.push_str(match dir {
                    MultiportDir::Source => " --sports ",
                    MultiportDir::Destination => " --dports ",
                    MultiportDir::Either => " --ports ",
                });
                for (i, p) in ports.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    push_range(&mut s, *p);
                }
            }
        }
    }
    match r.target {
        Some(Target::Mark { value, mask }) => {
            let _ = write!(s, " -j MARK --set-xmark {value:#x}/{mask:#x}");
        }
        Some(Target::Return) => s.push_str(" -j RETURN"),
        Some(Target::Accept) => s.push_str(" -j ACCEPT"),
        None => {}
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str) -> MarkRule {
        match parse_rule(s) {
            Ok(r) => r,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    fn err(s: &str) -> String {
        match parse_rule(s) {
            Ok(r) => panic!("{s}: parsed as {r:?}"),
            Err(e) => e,
        }
    }

    fn cmd(s: &str) -> Result<MarkCommand, String> {
        parse_command(&s.split_whitespace().collect::<Vec<_>>())
    }

    /// `(input, iptables -S form)`: every accepted form and its
    /// normalisation; each output must parse back to the same rule.
    const ROUND_TRIP: &[(&str, &str)] = &[
        (
            "-A PREROUTING -d 10.0.0.100 -p tcp -m multiport --dports 80,443 -j MARK --set-mark 10",
            "-A PREROUTING -d 10.0.0.100/32 -p tcp -m multiport --dports 80,443 -j MARK --set-xmark 0xa/0xffffffff",
        ),
        (
            "iptables -t mangle -A PREROUTING -d 172.18.50.100 -p tcp -m multiport --dports 80,443 -j MARK --set-mark 10",
            "-A PREROUTING -d 172.18.50.100/32 -p tcp -m multiport --dports 80,443 -j MARK --set-xmark 0xa/0xffffffff",
        ),
        ("-d 10.0.0.100/32 -j MARK --set-mark 1", "-A PREROUTING -d 10.0.0.100/32 -j MARK --set-xmark 0x1/0xffffffff"),
        ("-s 10.1.2.3/8 -j RETURN", "-A PREROUTING -s 10.0.0.0/8 -j RETURN"),
        ("! -s 10.0.0.0/8 -j ACCEPT", "-A PREROUTING ! -s 10.0.0.0/8 -j ACCEPT"),
        ("--source 192.168.0.0/255.255.0.0 --destination 1.2.3.4", "-A PREROUTING -s 192.168.0.0/16 -d 1.2.3.4/32"),
        ("-s 0.0.0.0/0 -p all -j RETURN", "-A PREROUTING -j RETURN"),
        ("! -d 0.0.0.0/0 -j RETURN", "-A PREROUTING ! -d 0.0.0.0/0 -j RETURN"),
        (
            "-p tcp --dport 80 -j MARK --set-mark 0x10/0xff",
            "-A PREROUTING -p tcp -m tcp --dport 80 -j MARK --set-xmark 0x10/0xff",
        ),
        (
            "-p udp --sport 53 --dport 1024: -j MARK --set-xmark 5",
            "-A PREROUTING -p udp -m udp --sport 53 --dport 1024:65535 -j MARK --set-xmark 0x5/0xffffffff",
        ),
        ("-p tcp --source-port :1023 ! --destination-port 22", "-A PREROUTING -p tcp -m tcp --sport 0:1023 ! --dport 22"),
        ("-p tcp -m tcp --dport 8000:8080", "-A PREROUTING -p tcp -m tcp --dport 8000:8080"),
        ("-p tcp -m tcp -j MARK --and-mark 0xff", "-A PREROUTING -p tcp -m tcp -j MARK --set-xmark 0x0/0xffffff00"),
        ("-p tcp --dport 0:65535", "-A PREROUTING -p tcp -m tcp"),
        ("-p 6 -j MARK --or-mark 0x30", "-A PREROUTING -p tcp -j MARK --set-xmark 0x30/0x30"),
        ("-p UDP -j MARK --xor-mark 1", "-A PREROUTING -p udp -j MARK --set-xmark 0x1/0x0"),
        ("-p icmp -j MARK --set-mark 3", "-A PREROUTING -p icmp -j MARK --set-xmark 0x3/0xffffffff"),
        ("! -p tcp -j RETURN", "-A PREROUTING ! -p tcp -j RETURN"),
        ("-p 47 -j RETURN", "-A PREROUTING -p 47 -j RETURN"),
        ("-p gre -j RETURN", "-A PREROUTING -p 47 -j RETURN"),
        (
            "-p udp -m multiport --sports 1000:2000,3000 -m multiport ! --ports 5,6 -j MARK --set-mark 7",
            "-A PREROUTING -p udp -m multiport --sports 1000:2000,3000 -m multiport ! --ports 5,6 -j MARK --set-xmark 0x7/0xffffffff",
        ),
        (
            "-p tcp -m multiport --destination-ports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15",
            "-A PREROUTING -p tcp -m multiport --dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15",
        ),
        (
            "-p tcp -m multiport --source-ports 1:2,3:4,5:6,7:8,9:10,11:12,13",
            "-A PREROUTING -p tcp -m multiport --sports 1:2,3:4,5:6,7:8,9:10,11:12,13",
        ),
        (
            "-p tcp -m multiport --dports 80 --sport 5",
            "-A PREROUTING -p tcp -m multiport --dports 80 -m tcp --sport 5",
        ),
        ("-i p0 -j MARK --set-mark 2", "-A PREROUTING -i p0 -j MARK --set-xmark 0x2/0xffffffff"),
        ("! --in-interface wan+ -j RETURN", "-A PREROUTING ! -i wan+ -j RETURN"),
        (
            "-s 10.0.0.0/8 -d 10.0.0.1 -i p0 -p tcp --dport 80 -j MARK --set-mark 0x1/0x3",
            "-A PREROUTING -s 10.0.0.0/8 -d 10.0.0.1/32 -i p0 -p tcp -m tcp --dport 80 -j MARK --set-xmark 0x1/0x3",
        ),
        ("-p tcp -j MARK --set-mark 010", "-A PREROUTING -p tcp -j MARK --set-xmark 0x8/0xffffffff"),
        ("-j MARK --set-xmark 0x0/0x0", "-A PREROUTING -j MARK --set-xmark 0x0/0x0"),
        ("-j MARK --set-mark 4294967295", "-A PREROUTING -j MARK --set-xmark 0xffffffff/0xffffffff"),
        ("", "-A PREROUTING"),
    ];

    #[test]
    fn round_trip() {
        for &(input, want) in ROUND_TRIP {
            let r = rule(input);
            assert_eq!(format_rule(&r), want, "input {input}");
            let again = rule(want);
            assert_eq!(again, r, "{want} parses back differently");
            assert_eq!(format_rule(&again), want);
        }
    }

    #[test]
    fn parsed_values() {
        let r = rule("-A PREROUTING ! -s 10.0.0.0/8 -d 10.0.0.100 -i lan+ -p tcp -m multiport --dports 80,443,8000:8080 -j MARK --set-mark 10");
        assert_eq!(r.src, Some(AddrMatch { addr: Ipv4Addr::new(10, 0, 0, 0), len: 8, negate: true }));
        assert_eq!(r.dst, Some(AddrMatch { addr: Ipv4Addr::new(10, 0, 0, 100), len: 32, negate: false }));
        assert_eq!(r.in_iface, Some(IfaceMatch { name: "lan".into(), wildcard: true, negate: false }));
        assert_eq!(r.protocol, Some(ProtoMatch { proto: 6, negate: false }));
        let ports =
            vec![PortRange { lo: 80, hi: 80 }, PortRange { lo: 443, hi: 443 }, PortRange { lo: 8000, hi: 8080 }];
        assert_eq!(r.matches, vec![Match::Multiport { dir: MultiportDir::Destination, ports, negate: false }]);
        assert_eq!(r.target, Some(Target::Mark { value: 10, mask: u32::MAX }));
        // --set-mark N/M is xmark N/(M|N): (mark & !M) | N.
        assert_eq!(rule("-j MARK --set-mark 0x5/0xf").target, Some(Target::Mark { value: 5, mask: 0xf }));
        assert_eq!(rule("-j MARK --set-mark 0x50/0xf").target, Some(Target::Mark { value: 0x50, mask: 0x5f }));
        assert!(r.in_iface.as_ref().is_some_and(|i| i.covers("lan0") && !i.covers("wan0")));
        assert!(IfaceMatch { name: "p0".into(), wildcard: false, negate: false }.covers("p0"));
    }

    #[test]
    fn serde_round_trip() {
        let r = rule("-p tcp --dport 80 -m multiport --sports 1:5 -j MARK --set-mark 1");
        let text = toml::to_string(&r).unwrap();
        assert_eq!(toml::from_str::<MarkRule>(&text).unwrap(), r);
    }

    #[test]
    fn errors() {
        let cases: &[(&str, &str)] = &[
            ("-A INPUT -j RETURN", "chain `INPUT': rvs classifies in the mangle table's PREROUTING chain only"),
            ("-t nat -A PREROUTING -j RETURN", "table `nat': rvs classifies in the mangle table only"),
            (
                "--dport 80 -j RETURN",
                "unknown option \"--dport\" (iptables accepts --dport only after -p tcp or -p udp",
            ),
            ("! -p tcp --dport 80", "unknown option \"--dport\""),
            ("-p icmp --sport 80", "unknown option \"--sport\""),
            ("-m tcp --dport 22", "TCP match requires '-p tcp'"),
            ("-p udp -m tcp", "TCP match requires '-p tcp'"),
            ("-p tcp -m udp", "UDP match requires '-p udp'"),
            ("-m multiport --dports 80", "multiport needs `-p tcp', `-p udp', `-p udplite', `-p sctp' or `-p dccp'"),
            ("-p icmp -m multiport --dports 80", "multiport only works with TCP, UDP, UDPLITE, SCTP and DCCP"),
            ("! -p tcp -m multiport --dports 80", "multiport only works with TCP, UDP, UDPLITE, SCTP and DCCP"),
            ("-p tcp --dports 80", "unknown option \"--dports\" (--dports belongs to -m multiport"),
            ("-p tcp -m multiport --dports 80 --sports 1", "multiport can only have one option"),
            ("-p tcp -m multiport", "multiport: one of --sports, --dports or --ports is required"),
            (
                "-p tcp -m multiport --dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16",
                "too many ports specified in `1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16'",
            ),
            ("-p tcp -m multiport --dports 1:2,3:4,5:6,7:8,9:10,11:12,13:14,15:16", "too many ports specified"),
            ("-p tcp -m multiport --dports 80,,443", "invalid port/service `' specified"),
            ("-p tcp --dport http", "invalid port/service `http' specified"),
            ("-p tcp --dport 65536", "invalid port/service `65536' specified"),
            ("-p tcp --dport 90:80", "invalid portrange (min > max): `90:80'"),
            ("-p tcp --dport 80 --dport 81", "tcp: \"--dport\" option may only be specified once"),
            ("-s 10.0.0.300", "host/network `10.0.0.300' not found"),
            ("-s example.com", "host/network `example.com' not found"),
            ("-s 10.0.0.0/33", "invalid mask `33' specified"),
            ("-s 10.0.0.0/255.0.255.0", "invalid mask `255.0.255.0' specified: rvs supports contiguous netmasks only"),
            ("-d 1.1.1.1,2.2.2.2", "-d `1.1.1.1,2.2.2.2': rvs takes one address or network per rule"),
            ("-s 1.1.1.1 -s 2.2.2.2", "multiple -s flags not allowed"),
            ("-p tcp -p udp", "multiple -p flags not allowed"),
            ("-p foo", "unknown protocol \"foo\" specified"),
            ("-p 256", "unknown protocol \"256\" specified"),
            ("! -p all", "rule would never match protocol"),
            ("-i averyveryverylongname", "interface name `averyveryverylongname' must be shorter than IFNAMSIZ (16)"),
            ("-o p0", "Can't use -o with PREROUTING"),
            ("-m state --state NEW", "Couldn't load match `state':No such file or directory"),
            ("-j DNAT", "Couldn't load target `DNAT':No such file or directory"),
            ("-j MARK", "MARK: One of the --set-xmark, --{and,or,xor,set}-mark options is required"),
            ("-j MARK --set-mark 1 --or-mark 2", "MARK: \"--or-mark\": only one of"),
            (
                "-j MARK --set-mark ten",
                "MARK: bad value for option \"--set-mark\", or out of range (0-4294967295): `ten'",
            ),
            ("-j MARK --set-mark 4294967296", "MARK: bad value for option \"--set-mark\""),
            ("-j MARK --and-mark 1/2", "MARK: bad value for option \"--and-mark\""),
            ("--set-mark 1", "unknown option \"--set-mark\" (--set-mark belongs to -j MARK"),
            ("-j RETURN -j ACCEPT", "multiple -j flags not allowed"),
            ("! ! -s 1.1.1.1", "multiple consecutive ! not allowed"),
            ("! -j RETURN", "cannot have ! before -j"),
            ("-s 1.1.1.1 !", "! at the end of the line"),
            ("-f", "unknown option \"-f\" (rvs does not match on fragments)"),
            ("--bogus", "unknown option \"--bogus\""),
            ("-s 1.1.1.1 extra", "Bad argument `extra'"),
            ("-s", "option \"-s\" requires an argument"),
            ("-F PREROUTING", "a rule is `-A PREROUTING` followed by matches and a target"),
            ("-A PREROUTING -I PREROUTING", "Can't use -I with -A"),
        ];
        for &(input, want) in cases {
            let e = err(input);
            assert!(e.contains(want), "{input}: got {e:?}, want {want:?}");
        }
    }

    #[test]
    fn commands() {
        let r = rule("-d 10.0.0.1 -j MARK --set-mark 1");
        assert_eq!(cmd("-A PREROUTING -d 10.0.0.1 -j MARK --set-mark 1"), Ok(MarkCommand::Append(r.clone())));
        assert_eq!(
            cmd("iptables -t mangle -I PREROUTING -d 10.0.0.1 -j MARK --set-mark 1"),
            Ok(MarkCommand::Insert { pos: 1, rule: r.clone() })
        );
        assert_eq!(
            cmd("-I PREROUTING 3 -d 10.0.0.1 -j MARK --set-mark 1"),
            Ok(MarkCommand::Insert { pos: 3, rule: r.clone() })
        );
        assert_eq!(cmd("-D PREROUTING -d 10.0.0.1 -j MARK --set-mark 1"), Ok(MarkCommand::Delete(r)));
        assert_eq!(cmd("-D PREROUTING 2"), Ok(MarkCommand::DeleteNum(2)));
        assert_eq!(cmd("-F"), Ok(MarkCommand::Flush));
        assert_eq!(cmd("-t mangle -F PREROUTING"), Ok(MarkCommand::Flush));
        assert_eq!(cmd("-Z"), Ok(MarkCommand::Zero));
        assert_eq!(cmd("-L"), Ok(MarkCommand::List(ListOptions::default())));
        let all = ListOptions { numeric: true, verbose: true, exact: false, line_numbers: true };
        assert_eq!(cmd("-L PREROUTING -n -v --line-numbers"), Ok(MarkCommand::List(all)));
        assert_eq!(cmd("-nvL --line-numbers"), Ok(MarkCommand::List(all)));
        assert_eq!(
            cmd("-L -n --verbose -x"),
            Ok(MarkCommand::List(ListOptions { exact: true, ..all.clone_without_lines() }))
        );
        assert_eq!(cmd("-S"), Ok(MarkCommand::ListRules { verbose: false }));
        assert_eq!(cmd("-S PREROUTING -v"), Ok(MarkCommand::ListRules { verbose: true }));
        assert_eq!(cmd("-t mangle -S"), Ok(MarkCommand::ListRules { verbose: false }));
    }

    impl ListOptions {
        fn clone_without_lines(self) -> ListOptions {
            ListOptions { line_numbers: false, ..self }
        }
    }

    #[test]
    fn command_errors() {
        let cases: &[(&str, &str)] = &[
            ("", "no command specified"),
            ("-s 1.1.1.1 -j RETURN", "no command specified"),
            ("-L INPUT", "chain `INPUT'"),
            ("-A", "option \"-A\" requires an argument (a chain name)"),
            ("-F -s 1.1.1.1", "Illegal option `-s' with this command"),
            ("-L -p tcp", "Illegal option `-p' with this command"),
            ("-D PREROUTING 2 -s 1.1.1.1", "Bad argument `-s'"),
            ("-D PREROUTING 0", "Invalid rule number `0'"),
            ("-I PREROUTING 0 -j RETURN", "Invalid rule number `0'"),
            ("-A PREROUTING -n -j RETURN", "Illegal option `-n' with this command"),
            ("-S -n", "Illegal option `-n' with this command"),
            ("-S --line-numbers", "Illegal option `--line-numbers' with this command"),
            ("-L -S", "Can't use -S with -L"),
            ("-nvQ", "unknown option \"-nvQ\""),
        ];
        for &(input, want) in cases {
            match cmd(input) {
                Ok(c) => panic!("{input}: parsed as {c:?}"),
                Err(e) => assert!(e.contains(want), "{input}: got {e:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn numbers_are_strtoul_base_0() {
        assert_eq!(parse_num("10"), Some(10));
        assert_eq!(parse_num("0x1F"), Some(31));
        assert_eq!(parse_num("017"), Some(15));
        assert_eq!(parse_num("0"), Some(0));
        assert_eq!(parse_num("08"), None);
        assert_eq!(parse_num("-1"), None);
        assert_eq!(parse_num("0x"), None);
        assert_eq!(parse_num("4294967296"), None);
    }
}
