//! Response → text, byte for byte as ipvsadm v1.31 prints it (`A: ipvsadm.c
//! list_all`, `print_title`, `print_service_entry`, `print_largenum`,
//! `list_conn`/`print_conn`, `list_timeout`, `list_daemon`; specs/ipvs.md
//! §6.2, §6.3). Every printf format is kept, trailing spaces included:
//! scripts and ldirectord parse this text.
//!
//! Names are never resolved: addresses and ports print as numbers with or
//! without `-n`. Services sort by (fwmark, protocol, address, port) and
//! servers by (address, port) unless `--nosort`, with numeric comparisons
//! (ipvsadm subtracts unsigned values into an `int`, which misorders
//! addresses that differ in the top bit; rvs does not copy that).
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::parse::sched_flag_bits;
use super::{Command, ListFormat, View};
use conf::{Method, Protocol, ServiceAddr};
use dataplane::conn::dump::ConnDump;

use crate::api::{DaemonInfo, DestInfo, FallbackInfo, HealthInfo, NeighborInfo, PortInfo, Response, ServiceInfo};

/// What the process prints and its exit status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i32,
}

/// The text `cmd` prints for `resp` on stdout ("" for an error reply).
pub fn render(cmd: &Command, resp: &Response) -> String {
    outcome(cmd, resp).stdout
}

/// Everything `cmd` does with `resp`: stdout, stderr, exit status. A
/// daemon-side error prints its message and exits with its code.
pub fn outcome(cmd: &Command, resp: &Response) -> Outcome {
    let ok = |stdout: String| Outcome { stdout, stderr: String::new(), exit_code: 0 };
    if let Response::Error { message, exit_code } = resp {
        let mut stderr = message.clone();
        if !stderr.ends_with('\n') {
            stderr.push('\n');
        }
        return Outcome { stdout: String::new(), stderr, exit_code: *exit_code };
    }
    let Command::Send { view, json, .. } = cmd else {
        return ok(String::new());
    };
    if *json {
        let mut text = serde_json::to_string_pretty(resp).unwrap_or_default();
        text.push('\n');
        return ok(text);
    }
    let text = match (view, resp) {
        (View::Services { format, one_service }, Response::Services { conn_tab_size, services }) => {
            list_services(*conn_tab_size, services, *format, *one_service)
        }
        (View::Save, Response::Services { services, .. }) => save(services),
        (View::Conns { persistent_conn }, Response::Conns(conns)) => list_conns(conns, *persistent_conn),
        (View::Timeouts, Response::Timeouts { tcp, tcpfin, udp }) => {
            format!("Timeout (tcp tcpfin udp): {tcp} {tcpfin} {udp}\n")
        }
        (View::Daemons, Response::Daemons(d)) => list_daemons(d),
        (View::Ports, Response::Ports { ports, drops, exception }) => list_ports(ports, drops, exception),
        (View::Neighbors, Response::Neighbors(n)) => list_neighbors(n),
        (View::Health, Response::Health { servers, fallbacks }) => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            list_health(servers, fallbacks, now.as_secs())
        }
        (_, Response::Text(t)) => {
            let mut t = t.clone();
            if !t.is_empty() && !t.ends_with('\n') {
                t.push('\n');
            }
            t
        }
        (_, Response::Ok) => String::new(),
        (_, other) => {
            return Outcome {
                stdout: String::new(),
                stderr: format!(
                    "unexpected reply from rvsd: {}\n",
                    serde_json::to_string(other).unwrap_or_else(|_| format!("{other:?}"))
                ),
                exit_code: 1,
            }
        }
    };
    ok(text)
}

/// ipvsadm's `print_largenum`: 9 columns, K/M/G/T above 10^8, or the full
/// value (at least 9 wide, one space before) with `--exact`.
pub fn largenum(i: u64, exact: bool) -> String {
    if exact {
        let digits = i.to_string();
        let width = if digits.len() <= 8 { 9 } else { digits.len() + 1 };
        return format!("{digits:>width$}");
    }
    match i {
        0..=99_999_999 => format!("{i:9}"),
        100_000_000..=999_999_999 => format!("{:8}K", i / 1_000),
        1_000_000_000..=99_999_999_999 => format!("{:8}M", i / 1_000_000),
        100_000_000_000..=99_999_999_999_999 => format!("{:8}G", i / 1_000_000_000),
        _ => format!("{:8}T", i / 1_000_000_000_000),
    }
}

/// Servers in ipvsadm's order (`ipvs_cmp_dests`: address, then port) or as
/// the daemon gave them with `--nosort`.
fn dests(s: &ServiceInfo, nosort: bool) -> Vec<&DestInfo> {
    let mut d: Vec<&DestInfo> = s.dests.iter().collect();
    if !nosort {
        d.sort_by_key(|d| (u32::from(d.spec.addr), d.spec.port));
    }
    d
}

fn fwd_switch(m: Method) -> &'static str {
    match m {
        Method::Masq => "-m",
        Method::Route => "-g",
        Method::Tunnel => "-i",
    }
}

/// ipvsadm's `print_sched_flags`: only the sh-/mh- names on sh and mh
/// (where SCHED3 prints nothing), flag-N elsewhere.
fn print_sched_flags(sched: &str, bits: u32) -> String {
    let names: [&str; 3] = match sched {
        "sh" => ["sh-fallback", "sh-port", ""],
        "mh" => ["mh-fallback", "mh-port", ""],
        _ => ["flag-1", "flag-2", "flag-3"],
    };
    let shown: Vec<&str> = [conf::SVC_F_SCHED1, conf::SVC_F_SCHED2, conf::SVC_F_SCHED3]
        .iter()
        .zip(names)
        .filter(|(b, n)| bits & **b != 0 && !n.is_empty())
        .map(|(_, n)| n)
        .collect();
    shown.join(",")
}

/// `-L`: `list_all` (or `list_service` for one service, without the
/// version line).
fn list_services(conn_tab_size: u32, services: &[ServiceInfo], f: ListFormat, one_service: bool) -> String {
    let mut out = String::new();
    if !one_service {
        // NVERSION(IP_VS_VERSION_CODE 0x010201).
        let _ = writeln!(out, "IP Virtual Server version 1.2.1 (size={conn_tab_size})");
    }
    out.push_str(&title(f));
    let mut svcs: Vec<&ServiceInfo> = services.iter().collect();
    if !f.nosort {
        svcs.sort_by_key(|s| s.spec.key.sort_key());
    }
    for s in svcs {
        service_entry(&mut out, s, f);
    }
    out
}

/// ipvsadm's `print_title`.
fn title(f: ListFormat) -> String {
    let prot = "Prot LocalAddress:Port";
    let next = "  -> RemoteAddress:Port\n";
    if f.stats {
        format!("{prot:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n{next}", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes")
    } else if f.rate {
        format!("{prot:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n{next}", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS")
    } else if f.thresholds {
        format!("{prot:<33} {:<10} {:<10} {:<10} {:<10}\n{next}", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn")
    } else if f.persistent_conn {
        format!("{prot:<33} {:<9} {:<11} {:<10} {:<10}\n{next}", "Weight", "PersistConn", "ActiveConn", "InActConn")
    } else if f.tun_info {
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight \
         ActiveConn InActConn\n"
            .to_owned()
    } else {
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn \
         InActConn\n"
            .to_owned()
    }
}

/// The service column of a listing: `"%-4s %s"` cut to 33 bytes, or
/// `FWM  <mark>`.
fn list_name(key: &ServiceAddr) -> String {
    match *key {
        ServiceAddr::Fwmark(m) => format!("FWM  {m}"),
        ServiceAddr::Addr { protocol, vip, port } => {
            let proto = match protocol {
                Protocol::Tcp => "TCP",
                Protocol::Udp => "UDP",
            };
            let mut name = format!("{proto:<4} {vip}:{port}");
            name.truncate(33);
            name
        }
    }
}

/// ipvsadm's `print_service_entry` for the listing formats.
fn service_entry(out: &mut String, s: &ServiceInfo, f: ListFormat) {
    let name = list_name(&s.spec.key);
    let st = &s.stats;
    if f.stats || f.rate {
        let nums = if f.stats {
            [st.conns, st.inpkts, st.outpkts, st.inbytes, st.outbytes]
        } else {
            [st.cps, st.inpps, st.outpps, st.inbps, st.outbps]
        };
        let _ = write!(out, "{name:<33}");
        for n in nums {
            out.push_str(&largenum(n, f.exact));
        }
    } else {
        let spec = &s.spec;
        let _ = write!(out, "{name} {}", spec.scheduler);
        let bits = sched_flag_bits(&spec.flags);
        if bits != 0 {
            let _ = write!(out, " ({})", print_sched_flags(&spec.scheduler, bits));
        }
        if let Some(t) = spec.persistent {
            let _ = write!(out, " persistent {t}");
            if spec.netmask != Ipv4Addr::BROADCAST {
                let _ = write!(out, " mask {}", spec.netmask);
            }
        }
        if spec.ops {
            out.push_str(" ops");
        }
    }
    out.push('\n');

    for d in dests(s, f.nosort) {
        let mut dname = format!("{}:{}", d.spec.addr, d.spec.port);
        dname.truncate(28);
        let ds = &d.stats;
        if f.stats {
            let _ = write!(out, "  -> {dname:<28}");
            for n in [ds.conns, ds.inpkts, ds.outpkts, ds.inbytes, ds.outbytes] {
                out.push_str(&largenum(n, f.exact));
            }
            out.push('\n');
        } else if f.rate {
            // ipvsadm prints the server's cps and pps plainly, bps as largenums.
            let _ = write!(out, "  -> {dname:<28} {:8} {:8} {:8}", ds.cps, ds.inpps, ds.outpps);
            out.push_str(&largenum(ds.inbps, f.exact));
            out.push_str(&largenum(ds.outbps, f.exact));
            out.push('\n');
        } else if f.thresholds {
            let _ = writeln!(
                out,
                "  -> {dname:<28} {:<10} {:<10} {:<10} {:<10}",
                d.spec.u_threshold, d.spec.l_threshold, d.activeconns, d.inactconns
            );
        } else if f.persistent_conn {
            let _ = writeln!(
                out,
                "  -> {dname:<28} {:<9} {:<11} {:<10} {:<10}",
                d.spec.weight, d.persistconns, d.activeconns, d.inactconns
            );
        } else if f.tun_info {
            let info = if d.spec.method == Method::Tunnel { "ipip" } else { "n/a" };
            let _ = writeln!(
                out,
                "  -> {dname:<28} {:<7} {info:<13} {:<6} {:<10} {:<10}",
                d.spec.method.as_str(),
                d.spec.weight,
                d.activeconns,
                d.inactconns
            );
        } else {
            let _ = writeln!(
                out,
                "  -> {dname:<28} {:<7} {:<6} {:<10} {:<10}",
                d.spec.method.as_str(),
                d.spec.weight,
                d.activeconns,
                d.inactconns
            );
        }
    }
}

/// `-S` (`print_service_entry` with FMT_RULE; specs/ipvs.md §6.3): always
/// sorted; `-M` only for a persistent service whose mask is not /32;
/// thresholds not written. Unlike ipvsadm, SCHED3 on sh/mh is written as
/// `flag-3` (ipvsadm writes a bare `-b ` that `-R` cannot read back), as
/// `conf::format_rules` does.
fn save(services: &[ServiceInfo]) -> String {
    let mut out = String::new();
    let mut svcs: Vec<&ServiceInfo> = services.iter().collect();
    svcs.sort_by_key(|s| s.spec.key.sort_key());
    for s in svcs {
        let spec = &s.spec;
        let name = match spec.key {
            ServiceAddr::Addr { protocol: Protocol::Tcp, vip, port } => format!("-t {vip}:{port}"),
            ServiceAddr::Addr { protocol: Protocol::Udp, vip, port } => format!("-u {vip}:{port}"),
            ServiceAddr::Fwmark(m) => format!("-f {m}"),
        };
        let _ = write!(out, "-A {name} -s {}", spec.scheduler);
        if let Some(t) = spec.persistent {
            let _ = write!(out, " -p {t}");
            if spec.netmask != Ipv4Addr::BROADCAST {
                let _ = write!(out, " -M {}", spec.netmask);
            }
        }
        if spec.ops {
            out.push_str(" -o");
        }
        let bits = sched_flag_bits(&spec.flags);
        if bits != 0 {
            let _ = write!(out, " -b {}", super::parse::sched_flag_names(&spec.scheduler, bits).join(","));
        }
        out.push('\n');
        for d in dests(s, false) {
            let _ = write!(
                out,
                "-a {name} -r {}:{} {} -w {}",
                d.spec.addr,
                d.spec.port,
                fwd_switch(d.spec.method),
                d.spec.weight
            );
            if d.spec.method == Method::Tunnel {
                out.push_str(" --tun-type ipip");
            }
            out.push('\n');
        }
    }
    out
}

/// `-Lc` (`list_conn`, `print_conn`): rows in the daemon's order.
/// `--persistent-conn` widens the header; rows carry no persistence-engine
/// data in rvs, so they keep the short form, as ipvsadm prints such rows.
fn list_conns(conns: &[ConnDump], persistent_conn: bool) -> String {
    let mut out = String::from("IPVS connection entries\n");
    let (state, source, virt, destination) = ("state", "source", "virtual", "destination");
    if persistent_conn {
        let (pe_name, pe_data) = ("pe name", "pe_data");
        let _ =
            writeln!(out, "pro expire {state:<11} {source:<18} {virt:<18} {destination:<18} {pe_name:<16} {pe_data}");
    } else {
        let _ = writeln!(out, "pro expire {state:<11} {source:<18} {virt:<18} {destination}");
    }
    for c in conns {
        let expire = format!("{:02}:{:02}", c.expires / 60, c.expires % 60);
        let cname = format!("{}:{}", c.caddr, c.cport);
        let vname = format!("{}:{}", c.vaddr, c.vport);
        let dname = format!("{}:{}", c.daddr, c.dport);
        let _ = writeln!(out, "{:<3} {expire:<6} {:<11} {cname:<18} {vname:<18} {dname}", c.protocol, c.state);
    }
    out
}

/// `--daemon` (`list_daemon`): master first, then backup.
fn list_daemons(daemons: &[DaemonInfo]) -> String {
    let mut out = String::new();
    for state in ["master", "backup"] {
        for d in daemons.iter().filter(|d| d.spec.state == state) {
            let s = &d.spec;
            let _ = write!(out, "{state} sync daemon (mcast={}, syncid={}", s.mcast_interface, s.syncid);
            if let Some(m) = s.sync_maxlen.filter(|m| *m != 0) {
                let _ = write!(out, ", maxlen={m}");
            }
            if let Some(g) = s.mcast_group {
                let _ = write!(out, ", group={g}");
            }
            if let Some(p) = s.mcast_port.filter(|p| *p != 0) {
                let _ = write!(out, ", port={p}");
            }
            if let Some(t) = s.mcast_ttl.filter(|t| *t != 0) {
                let _ = write!(out, ", ttl={t}");
            }
            out.push_str(")\n");
        }
    }
    out
}

/// A text table: columns two spaces apart, numbers right-aligned, no
/// trailing spaces.
fn table(headers: &[&str], numeric: &[bool], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for r in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let w = widths[i];
            if numeric[i] {
                let _ = write!(line, "{cell:>w$}");
            } else {
                let _ = write!(line, "{cell:<w$}");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `rvsadm ports`: one row per port, then the drop reasons.
fn list_ports(ports: &[PortInfo], drops: &[(String, u64)], exception: &[(String, u64)]) -> String {
    let rows: Vec<Vec<String>> = ports
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.device.clone(),
                p.mac.clone(),
                p.rx_packets.to_string(),
                p.rx_bytes.to_string(),
                p.tx_packets.to_string(),
                p.tx_bytes.to_string(),
                p.imissed.to_string(),
                p.ierrors.to_string(),
                p.oerrors.to_string(),
                p.rx_nombuf.to_string(),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "PORT",
            "DEVICE",
            "MAC",
            "RX-PACKETS",
            "RX-BYTES",
            "TX-PACKETS",
            "TX-BYTES",
            "RX-MISSED",
            "RX-ERRORS",
            "TX-ERRORS",
            "RX-NOMBUF",
        ],
        &[false, false, false, true, true, true, true, true, true, true, true],
        &rows,
    );
    out.push('\n');
    let rows: Vec<Vec<String>> = drops.iter().map(|(r, n)| vec![r.clone(), n.to_string()]).collect();
    out.push_str(&table(&["DROP-REASON", "PACKETS"], &[false, true], &rows));
    if !exception.is_empty() {
        out.push('\n');
        let rows: Vec<Vec<String>> = exception.iter().map(|(r, n)| vec![r.clone(), n.to_string()]).collect();
        out.push_str(&table(&["EXCEPTION-PATH", "COUNT"], &[false, true], &rows));
    }
    out
}

/// `rvsadm neigh`.
fn list_neighbors(neighbors: &[NeighborInfo]) -> String {
    let mut sorted: Vec<&NeighborInfo> = neighbors.iter().collect();
    sorted.sort_by_key(|n| (u32::from(n.ip), n.port.clone()));
    let rows: Vec<Vec<String>> = sorted
        .iter()
        .map(|n| {
            let age = n.age_s.map_or_else(|| "-".into(), |a| a.to_string());
            vec![n.ip.to_string(), n.mac.clone(), n.port.clone(), n.state.clone(), age]
        })
        .collect();
    table(&["IP", "MAC", "PORT", "STATE", "AGE"], &[false, false, false, false, true], &rows)
}

/// `rvsadm health`: one row per checked real server, then the fallbacks.
pub fn list_health(servers: &[HealthInfo], fallbacks: &[FallbackInfo], now: u64) -> String {
    let svc = |k: &ServiceAddr| match k {
        ServiceAddr::Addr { protocol, vip, port } => {
            format!("{} {vip}:{port}", if *protocol == Protocol::Tcp { "TCP" } else { "UDP" })
        }
        ServiceAddr::Fwmark(m) => format!("FWM {m}"),
    };
    let rows: Vec<Vec<String>> = servers
        .iter()
        .map(|h| {
            vec![
                svc(&h.service),
                format!("{}:{}", h.addr, h.port),
                h.state.clone(),
                h.action.clone(),
                h.check.clone(),
                format!("{}/{}", h.failures, h.failurecount),
                h.latency_us.map_or("-".into(), |us| format!("{:.1}ms", us as f64 / 1000.0)),
                duration(now.saturating_sub(h.since)),
                match &h.last_result {
                    None => "-".into(),
                    Some(r) => format!("{r}: {}", h.reason),
                },
            ]
        })
        .collect();
    let mut out = table(
        &["SERVICE", "REAL SERVER", "STATE", "ACTION", "CHECK", "FAILS", "LATENCY", "FOR", "LAST RESULT"],
        &[false; 9],
        &rows,
    );
    for f in fallbacks {
        out.push_str(&format!(
            "fallback {}:{} for {}: {}\n",
            f.addr,
            f.port,
            svc(&f.service),
            if f.active { "active (every real server is down)" } else { "standing by" }
        ));
    }
    out
}

/// `45s`, `12m3s`, `2h5m`, `3d4h`.
fn duration(s: u64) -> String {
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_rows() {
        let h = HealthInfo {
            service: ServiceAddr::Addr { protocol: Protocol::Tcp, vip: "10.0.0.100".parse().unwrap(), port: 80 },
            addr: "10.0.2.11".parse().unwrap(),
            port: 80,
            check: "negotiate http".into(),
            state: "down".into(),
            action: "quiesced".into(),
            last_result: Some("failed".into()),
            reason: "connect: Connection refused (os error 111)".into(),
            latency_us: Some(1250),
            failures: 3,
            failurecount: 2,
            since: 1000,
            last_check_ms: Some(1_000_000),
            checks_total: 9,
            failures_total: 3,
            transitions: 2,
        };
        let fb = FallbackInfo { service: h.service, addr: "127.0.0.1".parse().unwrap(), port: 80, active: true };
        let text = list_health(&[h], &[fb], 1075);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("SERVICE"), "{text}");
        let cols: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            &cols[..10],
            ["TCP", "10.0.0.100:80", "10.0.2.11:80", "down", "quiesced", "negotiate", "http", "3/2", "1.2ms", "1m15s"]
        );
        assert!(lines[1].ends_with("failed: connect: Connection refused (os error 111)"));
        assert_eq!(lines[2], "fallback 127.0.0.1:80 for TCP 10.0.0.100:80: active (every real server is down)");
    }

    #[test]
    fn largenum_boundaries() {
        assert_eq!(largenum(0, false), "        0");
        assert_eq!(largenum(99_999_999, false), " 99999999");
        assert_eq!(largenum(100_000_000, false), "  100000K");
        assert_eq!(largenum(999_999_999, false), "  999999K");
        assert_eq!(largenum(1_000_000_000, false), "    1000M");
        assert_eq!(largenum(99_999_999_999, false), "   99999M");
        assert_eq!(largenum(100_000_000_000, false), "     100G");
        assert_eq!(largenum(99_999_999_999_999, false), "   99999G");
        assert_eq!(largenum(100_000_000_000_000, false), "     100T");
        assert_eq!(largenum(u64::MAX, false), "18446744T");
        assert_eq!(largenum(12, true), "       12");
        assert_eq!(largenum(99_999_999, true), " 99999999");
        assert_eq!(largenum(100_000_000, true), " 100000000");
        assert_eq!(largenum(u64::MAX, true), " 18446744073709551615");
    }

    #[test]
    fn sched_flags_print_like_ipvsadm() {
        use conf::{SVC_F_SCHED1 as F1, SVC_F_SCHED2 as F2, SVC_F_SCHED3 as F3};
        assert_eq!(print_sched_flags("sh", F1 | F2 | F3), "sh-fallback,sh-port");
        assert_eq!(print_sched_flags("mh", F2), "mh-port");
        assert_eq!(print_sched_flags("rr", F1 | F3), "flag-1,flag-3");
        assert_eq!(print_sched_flags("sh", F3), "");
    }

    #[test]
    fn tables_have_no_trailing_spaces() {
        let t = table(&["A", "BB"], &[false, true], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "A    BB\nxyz   1\n");
    }
}
