//! `rvsadm mark -L`: the MARK rules listed exactly as `iptables -t mangle -L
//! PREROUTING [-n] [-v] [-x] [--line-numbers]` prints them (iptables 1.8's
//! `print_header`/`print_firewall` and the tcp, udp, multiport and MARK
//! extensions' print functions), so scripts that read iptables read rvs.
//!
//! Without `-n`, iptables looks names up: "anywhere" for /0, protocol and
//! service names (from /etc/services, as iptables does). Addresses stay
//! numeric: rvs does no DNS.
use conf::iptables::{ListOptions, Match, MultiportDir, PortCond, Target};
use conf::MarkRule;

/// Packets and bytes, as iptables' `xtables_print_num` prints a counter.
fn num(n: u64, exact: bool) -> String {
    if exact {
        return format!("{n:>8} ");
    }
    if n <= 99_999 {
        return format!("{n:>5} ");
    }
    let mut n = n;
    for suffix in ["K", "M", "G"] {
        n = (n + 500) / 1000;
        if n <= 9999 {
            return format!("{n:>4}{suffix} ");
        }
    }
    n = (n + 500) / 1000;
    format!("{n:>4}T ")
}

fn proto_name(p: u8, numeric: bool) -> String {
    if numeric {
        return p.to_string();
    }
    match p {
        0 => "all".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        1 => "icmp".into(),
        _ => p.to_string(),
    }
}

/// A port as iptables prints it: its name in /etc/services (the first entry
/// for that port and protocol, as getservbyport finds it) unless numeric.
fn port(p: u16, proto: &str, numeric: bool) -> String {
    if !numeric {
        if let Some(name) = service_name(p, proto) {
            return name;
        }
    }
    p.to_string()
}

fn service_name(p: u16, proto: &str) -> Option<String> {
    static SERVICES: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let text = SERVICES.get_or_init(|| std::fs::read_to_string("/etc/services").unwrap_or_default());
    let want = format!("{p}/{proto}");
    text.lines().map(|l| l.split('#').next().unwrap_or("")).find_map(|l| {
        let mut f = l.split_whitespace();
        let name = f.next()?;
        (f.next()? == want).then(|| name.to_owned())
    })
}

fn ports(name: &str, c: &PortCond, proto: &str, numeric: bool) -> String {
    let inv = if c.negate { "!" } else { "" };
    let (lo, hi) = (c.range.lo, c.range.hi);
    if lo == 0 && hi == u16::MAX && !c.negate {
        return String::new();
    }
    if lo == hi {
        format!(" {name}:{inv}{}", port(lo, proto, numeric))
    } else {
        format!(" {name}s:{inv}{}:{}", port(lo, proto, numeric), port(hi, proto, numeric))
    }
}

fn addr(a: Option<&conf::iptables::AddrMatch>, numeric: bool) -> String {
    let (inv, text) = match a {
        None if !numeric => (' ', "anywhere".to_owned()),
        None => (' ', "0.0.0.0/0".to_owned()),
        Some(m) if m.len == 0 && !numeric => (if m.negate { '!' } else { ' ' }, "anywhere".to_owned()),
        Some(m) => {
            let mask = if m.len == 32 { String::new() } else { format!("/{}", m.len) };
            (if m.negate { '!' } else { ' ' }, format!("{}{mask}", m.addr))
        }
    };
    format!("{inv}{text:<19} ")
}

/// The whole listing. `counts[i]` are rule i's packets and bytes; `policy`
/// the chain's (every packet classified: mangle PREROUTING never drops).
pub fn list(rules: &[MarkRule], counts: &[(u64, u64)], policy: (u64, u64), o: ListOptions) -> String {
    let counters = o.verbose;
    let mut t = String::from("Chain PREROUTING (policy ACCEPT");
    if counters {
        t.push_str(&format!(
            " {}packets, {}bytes",
            num(policy.0, o.exact).trim_start(),
            num(policy.1, o.exact).trim_start()
        ));
    }
    t.push_str(")\n");
    if o.line_numbers {
        t.push_str(&format!("{:<4} ", "num"));
    }
    if counters {
        if o.exact {
            t.push_str(&format!("{:>8} {:>10} ", "pkts", "bytes"));
        } else {
            t.push_str(&format!("{:>5} {:>5} ", "pkts", "bytes"));
        }
    }
    t.push_str(&format!("{:<9} ", "target"));
    t.push_str(" prot opt");
    if counters {
        t.push_str(&format!(" {:<6} {:<6} ", "in", "out"));
    }
    t.push_str(&format!(" {:<19} ", "source"));
    t.push_str(&format!(" {:<19} ", "destination"));
    t.push('\n');
    for (i, r) in rules.iter().enumerate() {
        if o.line_numbers {
            t.push_str(&format!("{:<4} ", i + 1));
        }
        if counters {
            let (p, b) = counts.get(i).copied().unwrap_or((0, 0));
            t.push_str(&num(p, o.exact));
            t.push_str(&num(b, o.exact));
        }
        let target = match r.target {
            Some(Target::Mark { .. }) => "MARK",
            Some(Target::Return) => "RETURN",
            Some(Target::Accept) => "ACCEPT",
            None => "",
        };
        t.push_str(&format!("{target:<9} "));
        let (proto, pneg) = r.protocol.map_or((0, false), |p| (p.proto, p.negate));
        t.push(if pneg { '!' } else { ' ' });
        t.push_str(&format!("{:<5}", proto_name(proto, o.numeric)));
        t.push_str("-- ");
        if counters {
            let iface = match &r.in_iface {
                Some(m) => {
                    format!("{}{}{}", if m.negate { "!" } else { "" }, m.name, if m.wildcard { "+" } else { "" })
                }
                None if o.numeric => "*".into(),
                None => "any".into(),
            };
            let out = if o.numeric { "*" } else { "any" };
            t.push_str(&format!(" {iface:<6} {out:<6} "));
        }
        t.push_str(&addr(r.src.as_ref(), o.numeric));
        t.push_str(&addr(r.dst.as_ref(), o.numeric));
        let pname = proto_name(proto, false);
        for m in &r.matches {
            match m {
                Match::L4 { proto: l4, sport, dport } => {
                    let name = match l4 {
                        conf::iptables::L4Proto::Tcp => "tcp",
                        conf::iptables::L4Proto::Udp => "udp",
                    };
                    t.push_str(&format!(" {name}"));
                    if let Some(c) = sport {
                        t.push_str(&ports("spt", c, name, o.numeric));
                    }
                    if let Some(c) = dport {
                        t.push_str(&ports("dpt", c, name, o.numeric));
                    }
                }
                Match::Multiport { dir, ports: list, negate } => {
                    t.push_str(" multiport ");
                    t.push_str(match dir {
                        MultiportDir::Source => "sports ",
                        MultiportDir::Destination => "dports ",
                        MultiportDir::Either => "ports ",
                    });
                    if *negate {
                        t.push_str(" !");
                    }
                    let items: Vec<String> = list
                        .iter()
                        .map(|r| {
                            if r.lo == r.hi {
                                port(r.lo, &pname, o.numeric)
                            } else {
                                format!("{}:{}", port(r.lo, &pname, o.numeric), port(r.hi, &pname, o.numeric))
                            }
                        })
                        .collect();
                    t.push_str(&items.join(","));
                }
            }
        }
        if let Some(Target::Mark { value, mask }) = r.target {
            t.push_str(&match (value, mask) {
                (0, m) => format!(" MARK and 0x{:x}", !m),
                (v, m) if v == m => format!(" MARK or 0x{v:x}"),
                (v, 0) => format!(" MARK xor 0x{v:x}"),
                (v, u32::MAX) => format!(" MARK set 0x{v:x}"),
                (v, m) => format!(" MARK xset 0x{v:x}/0x{m:x}"),
            });
        }
        t.push('\n');
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_shorten_like_xtables_print_num() {
        assert_eq!(num(0, false), "    0 ");
        assert_eq!(num(99_999, false), "99999 ");
        assert_eq!(num(100_000, false), " 100K ");
        assert_eq!(num(9_999_499, false), "9999K ");
        assert_eq!(num(9_999_500, false), "  10M ");
        assert_eq!(num(12_345_678_901, false), "  12G ");
        assert_eq!(num(5, true), "       5 ");
    }
}
