//! The ipvsadm save/restore format (specs/ipvs.md §6.3): [`parse_rules`]
//! reads what `ipvsadm -S` writes and `ipvsadm -R` reads, [`format_rules`]
//! writes `ipvsadm -S -n`.
//!
//! Reading follows ipvsadm v1.31 (`ipvsadm.c process_options`,
//! `libipvs.c ipvs_strerror`): one command per line, split on spaces and
//! tabs; a leading `ipvsadm` token and blank lines are skipped, and so are
//! `#` lines (ipvsadm-restore strips them); the command comes first; the
//! defaults are wlc, `-g` and weight 1; a server without a port gets the
//! service's, and `-g`/`-i` servers of non-fwmark services always do; the
//! first bad line aborts with `FILE:LINE:1: <the line>: <reason>`, quoting
//! ipvsadm's reason where it has one. Only `-A`, `-a` and `-C` are accepted:
//! a rules file describes a table, not edits to one.
//!
//! rvs's limits: IPv4, numeric addresses and ports (no DNS), TCP and UDP,
//! the schedulers in [`SCHEDULERS`](crate::SCHEDULERS), IPIP tunnels, no
//! persistence engines. Differences from ipvsadm, all on input ipvsadm
//! itself never writes: `-M` without `-p` is ignored (the kernel only uses
//! the mask for persistence) and a non-contiguous `-M` is refused; a masq
//! server's port 0 on an address service is stored as the service port (the
//! kernel treats both alike); SCHED3 on sh/mh is written as `flag-3`, which
//! ipvsadm forgets to print.

use std::net::Ipv4Addr;

use crate::config::{
    Method, Protocol, Server, Service, ServiceAddr, DEFAULT_PERSISTENT_TIMEOUT, DEFAULT_SCHEDULER, MAX_THRESHOLD,
    MAX_TIMEOUT,
};
use crate::error::ConfError;
use crate::service;

/// Parses an ipvsadm rules file; `origin` names it in messages. Services
/// and their servers come back in the order written.
pub fn parse_rules(text: &str, origin: &str) -> Result<Vec<Service>, ConfError> {
    parse_after(text, origin, &[])
}

/// [`parse_rules`] for a file read after the services in `taken` (the
/// config file's, each with where it is defined), which it must not
/// redefine.
pub(crate) fn parse_after(
    text: &str,
    origin: &str,
    taken: &[(ServiceAddr, String)],
) -> Result<Vec<Service>, ConfError> {
    let mut services: Vec<Service> = Vec::new();
    // The line each of `services` was defined on.
    let mut defined_on: Vec<usize> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fail = |message: String| ConfError::Invalid {
            origin: origin.to_owned(),
            line: n + 1,
            col: 1,
            key: line.to_owned(),
            message,
        };
        let mut tokens: Vec<&str> = line.split([' ', '\t']).filter(|t| !t.is_empty()).collect();
        if tokens.first() == Some(&"ipvsadm") {
            tokens.remove(0);
        }
        if tokens.is_empty() {
            continue;
        }
        let l = Line::parse(&tokens).map_err(fail)?;
        match l.cmd {
            Cmd::Clear => {
                services.clear();
                defined_on.clear();
            }
            Cmd::AddService => {
                let svc = l.add_service().map_err(fail)?;
                if let Some((_, at)) = taken.iter().find(|(a, _)| *a == svc.addr) {
                    // ipvs_strerror: EEXIST on add-service.
                    return Err(fail(format!("Service already exists: see {at}")));
                }
                if let Some(j) = services.iter().position(|s| s.addr == svc.addr) {
                    return Err(fail(format!("Service already exists: see line {}", defined_on[j])));
                }
                services.push(svc);
                defined_on.push(n + 1);
            }
            Cmd::AddServer => {
                let key = l.svc.ok_or_else(|| fail("no service".into()))?;
                let Some(svc) = services.iter_mut().find(|s| s.addr == key) else {
                    // ipvs_strerror: ESRCH on add-dest.
                    let hint = match taken.iter().find(|(a, _)| *a == key) {
                        Some((_, at)) => format!(" ({key} is {at} in the config file, whose servers are listed there)"),
                        None => String::new(),
                    };
                    return Err(fail(format!("Service not defined{hint}")));
                };
                let server = l.server(&svc.addr).map_err(fail)?;
                if svc.servers.iter().any(|s| s.addr == server.addr && s.port == server.port) {
                    // ipvs_strerror: EEXIST on add-dest.
                    return Err(fail("Destination already exists".into()));
                }
                svc.servers.push(server);
            }
            _ => return Err(fail(format!("command {:?} is not handled", l.cmd.name()))),
        }
    }
    Ok(services)
}

/// `ipvsadm -S -n` for `services`: sorted like ipvsadm (services by fwmark,
/// protocol, address, port, so fwmark services come last; servers by
/// address, then port); `-M` only when persistent and not /32; thresholds
/// not written.
pub fn format_rules(services: &[Service]) -> String {
    let mut sorted: Vec<&Service> = services.iter().collect();
    sorted.sort_by_key(|s| s.addr.sort_key());
    let mut out = String::new();
    for s in sorted {
        let name = match s.addr {
            ServiceAddr::Addr { protocol: Protocol::Tcp, vip, port } => format!("-t {vip}:{port}"),
            ServiceAddr::Addr { protocol: Protocol::Udp, vip, port } => format!("-u {vip}:{port}"),
            ServiceAddr::Fwmark(m) => format!("-f {m}"),
        };
        out.push_str(&format!("-A {name} -s {}", s.scheduler));
        if let Some(t) = s.persistent {
            out.push_str(&format!(" -p {t}"));
            if s.netmask != Ipv4Addr::BROADCAST {
                out.push_str(&format!(" -M {}", s.netmask));
            }
        }
        if s.ops {
            out.push_str(" -o");
        }
        let flags = service::flag_names(&s.scheduler, s.flag_bits());
        if !flags.is_empty() {
            out.push_str(&format!(" -b {}", flags.join(",")));
        }
        out.push('\n');
        let mut servers: Vec<&Server> = s.servers.iter().collect();
        servers.sort_by_key(|d| (u32::from(d.addr), d.port));
        for d in servers {
            let (switch, tun) = match d.method {
                Method::Masq => ("-m", ""),
                Method::Route => ("-g", ""),
                Method::Tunnel => ("-i", " --tun-type ipip"),
            };
            out.push_str(&format!("-a {name} -r {}:{} {switch} -w {}{tun}\n", d.addr, d.port, d.weight));
        }
    }
    out
}

/// ipvsadm's commands, named as in its messages (`cmdnames`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmd {
    AddService,
    EditService,
    DelService,
    Clear,
    List,
    AddServer,
    DelServer,
    EditServer,
    Set,
    StartDaemon,
    StopDaemon,
    Restore,
    Save,
    Zero,
    Help,
    Version,
}

impl Cmd {
    fn name(self) -> &'static str {
        match self {
            Cmd::AddService => "add-service",
            Cmd::EditService => "edit-service",
            Cmd::DelService => "delete-service",
            Cmd::Clear => "flush",
            Cmd::List => "list",
            Cmd::AddServer => "add-server",
            Cmd::DelServer => "delete-server",
            Cmd::EditServer => "edit-server",
            Cmd::Set => "set",
            Cmd::StartDaemon => "start-daemon",
            Cmd::StopDaemon => "stop-daemon",
            Cmd::Restore => "restore",
            Cmd::Save => "save",
            Cmd::Zero => "zero",
            Cmd::Help => "help",
            Cmd::Version => "version",
        }
    }

    /// The options `-A`, `-a` and `-C` need and allow (ipvsadm.c
    /// `commands_v_options`).
    fn options(self) -> (&'static [Opt], &'static [Opt]) {
        use Opt::*;
        match self {
            Cmd::AddService => (&[Service], &[Service, Scheduler, Persistent, Netmask, Ops, Pe, SchedFlags]),
            Cmd::AddServer => (
                &[Service, RealServer],
                &[
                    Service, RealServer, Forward, Weight, UThreshold, LThreshold, TunType, TunPort, TunNocsum, TunCsum,
                    TunRemcsum,
                ],
            ),
            _ => (&[], &[]),
        }
    }
}

/// ipvsadm's options other than commands, in the order of its `optnames`
/// (the order its checks report them in).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Opt {
    Numeric,
    Service,
    Scheduler,
    Persistent,
    Netmask,
    RealServer,
    Forward,
    Weight,
    UThreshold,
    LThreshold,
    Ops,
    Pe,
    SchedFlags,
    TunType,
    TunPort,
    TunNocsum,
    TunCsum,
    TunRemcsum,
    Ipv6,
}

const ALL_OPTS: [Opt; 19] = [
    Opt::Numeric,
    Opt::Service,
    Opt::Scheduler,
    Opt::Persistent,
    Opt::Netmask,
    Opt::RealServer,
    Opt::Forward,
    Opt::Weight,
    Opt::UThreshold,
    Opt::LThreshold,
    Opt::Ops,
    Opt::Pe,
    Opt::SchedFlags,
    Opt::TunType,
    Opt::TunPort,
    Opt::TunNocsum,
    Opt::TunCsum,
    Opt::TunRemcsum,
    Opt::Ipv6,
];

impl Opt {
    fn name(self) -> &'static str {
        match self {
            Opt::Numeric => "numeric",
            Opt::Service => "service-address",
            Opt::Scheduler => "scheduler",
            Opt::Persistent => "persistent",
            Opt::Netmask => "netmask",
            Opt::RealServer => "real-server",
            Opt::Forward => "forwarding-method",
            Opt::Weight => "weight",
            Opt::UThreshold => "u-threshold",
            Opt::LThreshold => "l-threshold",
            Opt::Ops => "ops",
            Opt::Pe => "pe",
            Opt::SchedFlags => "sched-flags",
            Opt::TunType => "tun-type",
            Opt::TunPort => "tun-port",
            Opt::TunNocsum => "tun-nocsum",
            Opt::TunCsum => "tun-csum",
            Opt::TunRemcsum => "tun-remcsum",
            Opt::Ipv6 => "ipv6",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Arg {
    None,
    Required,
    /// popt's POPT_ARGFLAG_OPTIONAL: glued (`-p360`, `--persistent=360`),
    /// or the next token unless it starts with '-'.
    Optional,
}

#[derive(Clone, Copy)]
enum What {
    Cmd(Cmd),
    Tcp,
    Udp,
    Sctp,
    Fwmark,
    Fwd(Method),
    Opt(Opt),
}

/// ipvsadm's option table (ipvsadm.c `parse_options`), less the listing
/// and daemon options, which are unknown here.
const OPTIONS: &[(Option<char>, &str, Arg, What)] = &[
    (Some('A'), "add-service", Arg::None, What::Cmd(Cmd::AddService)),
    (Some('E'), "edit-service", Arg::None, What::Cmd(Cmd::EditService)),
    (Some('D'), "delete-service", Arg::None, What::Cmd(Cmd::DelService)),
    (Some('C'), "clear", Arg::None, What::Cmd(Cmd::Clear)),
    (Some('L'), "list", Arg::None, What::Cmd(Cmd::List)),
    (Some('l'), "list", Arg::None, What::Cmd(Cmd::List)),
    (Some('Z'), "zero", Arg::None, What::Cmd(Cmd::Zero)),
    (Some('a'), "add-server", Arg::None, What::Cmd(Cmd::AddServer)),
    (Some('e'), "edit-server", Arg::None, What::Cmd(Cmd::EditServer)),
    (Some('d'), "delete-server", Arg::None, What::Cmd(Cmd::DelServer)),
    (None, "set", Arg::None, What::Cmd(Cmd::Set)),
    (Some('h'), "help", Arg::None, What::Cmd(Cmd::Help)),
    (Some('v'), "version", Arg::None, What::Cmd(Cmd::Version)),
    (Some('R'), "restore", Arg::None, What::Cmd(Cmd::Restore)),
    (Some('S'), "save", Arg::None, What::Cmd(Cmd::Save)),
    (None, "start-daemon", Arg::Required, What::Cmd(Cmd::StartDaemon)),
    (None, "stop-daemon", Arg::Required, What::Cmd(Cmd::StopDaemon)),
    (Some('t'), "tcp-service", Arg::Required, What::Tcp),
    (Some('u'), "udp-service", Arg::Required, What::Udp),
    (None, "sctp-service", Arg::Required, What::Sctp),
    (Some('f'), "fwmark-service", Arg::Required, What::Fwmark),
    (Some('s'), "scheduler", Arg::Required, What::Opt(Opt::Scheduler)),
    (Some('p'), "persistent", Arg::Optional, What::Opt(Opt::Persistent)),
    (Some('M'), "netmask", Arg::Required, What::Opt(Opt::Netmask)),
    (Some('r'), "real-server", Arg::Required, What::Opt(Opt::RealServer)),
    (Some('m'), "masquerading", Arg::None, What::Fwd(Method::Masq)),
    (Some('i'), "ipip", Arg::None, What::Fwd(Method::Tunnel)),
    (Some('g'), "gatewaying", Arg::None, What::Fwd(Method::Route)),
    (Some('w'), "weight", Arg::Required, What::Opt(Opt::Weight)),
    (Some('x'), "u-threshold", Arg::Required, What::Opt(Opt::UThreshold)),
    (Some('y'), "l-threshold", Arg::Required, What::Opt(Opt::LThreshold)),
    (Some('n'), "numeric", Arg::None, What::Opt(Opt::Numeric)),
    (Some('6'), "ipv6", Arg::None, What::Opt(Opt::Ipv6)),
    (Some('o'), "ops", Arg::None, What::Opt(Opt::Ops)),
    (None, "pe", Arg::Required, What::Opt(Opt::Pe)),
    (Some('b'), "sched-flags", Arg::Required, What::Opt(Opt::SchedFlags)),
    (None, "tun-type", Arg::Required, What::Opt(Opt::TunType)),
    (None, "tun-port", Arg::Required, What::Opt(Opt::TunPort)),
    (None, "tun-nocsum", Arg::None, What::Opt(Opt::TunNocsum)),
    (None, "tun-csum", Arg::None, What::Opt(Opt::TunCsum)),
    (None, "tun-remcsum", Arg::None, What::Opt(Opt::TunRemcsum)),
];

/// One command line, its values checked one by one.
struct Line<'a> {
    cmd: Cmd,
    seen: Vec<Opt>,
    svc: Option<ServiceAddr>,
    scheduler: Option<&'a str>,
    persistent: Option<u32>,
    netmask: Option<Ipv4Addr>,
    ops: bool,
    flags: Option<&'a str>,
    server: Option<(Ipv4Addr, Option<u16>)>,
    method: Option<Method>,
    weight: Option<u32>,
    u_threshold: Option<u32>,
    l_threshold: Option<u32>,
}

/// A decimal number in `lo..=hi`.
fn number(v: &str, lo: u32, hi: u32) -> Option<u32> {
    v.parse::<u32>().ok().filter(|n| (lo..=hi).contains(n))
}

impl<'a> Line<'a> {
    fn parse(tokens: &[&'a str]) -> Result<Line<'a>, String> {
        let mut l = Line {
            cmd: Cmd::Help,
            seen: Vec::new(),
            svc: None,
            scheduler: None,
            persistent: None,
            netmask: None,
            ops: false,
            flags: None,
            server: None,
            method: None,
            weight: None,
            u_threshold: None,
            l_threshold: None,
        };
        let mut have_cmd = false;
        let mut i = 0;
        while i < tokens.len() {
            let t = tokens[i];
            i += 1;
            let next_value = |i: &mut usize, optional: bool| -> Option<&'a str> {
                let v = tokens.get(*i).copied().filter(|v| !optional || !v.starts_with('-'));
                if v.is_some() {
                    *i += 1;
                }
                v
            };
            // (option as written, entry, value)
            let mut found: Vec<(String, What, Option<&'a str>)> = Vec::new();
            if let Some(long) = t.strip_prefix("--").filter(|l| !l.is_empty()) {
                let (name, glued) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v)),
                    None => (long, None),
                };
                let Some(&(_, _, arg, what)) = OPTIONS.iter().find(|o| o.1 == name) else {
                    return Err(format!("unknown option \"--{name}\""));
                };
                let value = match (arg, glued) {
                    (Arg::None, Some(_)) => return Err(format!("option \"--{name}\" takes no value")),
                    (Arg::None, None) => None,
                    (_, Some(v)) => Some(v),
                    (Arg::Required, None) => {
                        Some(next_value(&mut i, false).ok_or_else(|| format!("option \"--{name}\" needs a value"))?)
                    }
                    (Arg::Optional, None) => next_value(&mut i, true),
                };
                found.push((format!("--{name}"), what, value));
            } else if let Some(shorts) = t.strip_prefix('-').filter(|s| !s.is_empty() && !s.starts_with('-')) {
                for (k, c) in shorts.char_indices() {
                    let Some(&(_, _, arg, what)) = OPTIONS.iter().find(|o| o.0 == Some(c)) else {
                        return Err(format!("unknown option \"-{c}\""));
                    };
                    let rest = &shorts[k + c.len_utf8()..];
                    let value = match arg {
                        Arg::None => None,
                        _ if !rest.is_empty() => Some(rest),
                        Arg::Required => {
                            Some(next_value(&mut i, false).ok_or_else(|| format!("option \"-{c}\" needs a value"))?)
                        }
                        Arg::Optional => next_value(&mut i, true),
                    };
                    found.push((format!("-{c}"), what, value));
                    if arg != Arg::None {
                        break;
                    }
                }
            } else {
                return Err(format!("unexpected argument \"{t}\""));
            }
            for (written, what, value) in found {
                match what {
                    What::Cmd(c) => {
                        if have_cmd {
                            return Err("multiple commands specified".into());
                        }
                        l.cmd = c;
                        have_cmd = true;
                        match c {
                            Cmd::AddService | Cmd::AddServer | Cmd::Clear => {}
                            Cmd::Set => {
                                return Err(format!(
                                    "\"{written}\" is not supported in a rules file: set the timeouts in \
                                     [ipvs.timeouts] of the config file"
                                ))
                            }
                            other => {
                                return Err(format!(
                                    "\"{written}\" ({}) is not supported in a rules file: only -A, -a and -C are \
                                     (write the final table with -A and -a lines)",
                                    other.name()
                                ))
                            }
                        }
                    }
                    _ if !have_cmd => {
                        return Err(format!("a line must start with a command (-A, -a or -C), not \"{written}\""))
                    }
                    what => l.option(what, value.unwrap_or(""), value.is_some())?,
                }
            }
        }

        // ipvsadm.c generic_opt_check.
        let (required, allowed) = l.cmd.options();
        for o in ALL_OPTS {
            let seen = l.seen.contains(&o);
            if !seen && required.contains(&o) {
                return Err(format!("You need to supply the '{}' option for the '{}' command", o.name(), l.cmd.name()));
            }
            if seen && !allowed.contains(&o) {
                return Err(format!("Illegal '{}' option with the '{}' command", o.name(), l.cmd.name()));
            }
        }
        Ok(l)
    }

    /// Records option `what` with value `v` (`given`: whether a value came
    /// with it, for `-p`).
    fn option(&mut self, what: What, v: &'a str, given: bool) -> Result<(), String> {
        let opt = match what {
            What::Tcp | What::Udp | What::Sctp | What::Fwmark => Opt::Service,
            What::Fwd(_) => Opt::Forward,
            What::Opt(o) => o,
            What::Cmd(_) => return Ok(()),
        };
        if self.seen.contains(&opt) {
            return Err(format!("multiple '{}' options specified", opt.name()));
        }
        self.seen.push(opt);
        match what {
            What::Tcp | What::Udp => {
                let protocol = if matches!(what, What::Tcp) { Protocol::Tcp } else { Protocol::Udp };
                let (vip, port) = service::addr_port(v)?;
                self.svc = Some(ServiceAddr::Addr { protocol, vip, port: port.unwrap_or(0) });
            }
            What::Sctp => return Err("SCTP services are not supported (rvs balances TCP and UDP)".into()),
            What::Fwmark => {
                let m = number(v, 1, u32::MAX)
                    .ok_or_else(|| format!("invalid fwmark value \"{v}\" (expected 1..={})", u32::MAX))?;
                self.svc = Some(ServiceAddr::Fwmark(m));
            }
            What::Fwd(m) => self.method = Some(m),
            What::Opt(o) => match o {
                Opt::Scheduler => self.scheduler = Some(v),
                Opt::Persistent => {
                    self.persistent = Some(if given {
                        number(v, 1, MAX_TIMEOUT)
                            .ok_or_else(|| format!("invalid timeout value \"{v}\" (expected 1..={MAX_TIMEOUT})"))?
                    } else {
                        DEFAULT_PERSISTENT_TIMEOUT
                    })
                }
                Opt::Netmask => self.netmask = Some(service::netmask(v)?),
                Opt::RealServer => self.server = Some(service::addr_port(v)?),
                Opt::Weight => {
                    self.weight = Some(
                        number(v, 0, 65535).ok_or_else(|| format!("illegal weight \"{v}\" (expected 0..=65535)"))?,
                    )
                }
                Opt::UThreshold => {
                    self.u_threshold = Some(
                        number(v, 0, MAX_THRESHOLD)
                            .ok_or_else(|| format!("illegal u_threshold \"{v}\" (expected 0..={MAX_THRESHOLD})"))?,
                    )
                }
                Opt::LThreshold => {
                    self.l_threshold = Some(
                        number(v, 0, MAX_THRESHOLD)
                            .ok_or_else(|| format!("illegal l_threshold \"{v}\" (expected 0..={MAX_THRESHOLD})"))?,
                    )
                }
                Opt::Ops => self.ops = true,
                Opt::SchedFlags => self.flags = Some(v),
                Opt::TunType => match v {
                    "ipip" => {}
                    "gue" | "gre" => {
                        return Err(format!("tunnel type \"{v}\" is not supported (rvs tunnels with ipip only)"))
                    }
                    _ => return Err(format!("illegal tunnel type \"{v}\" (expected ipip)")),
                },
                Opt::Pe => return Err("persistence engines (--pe) are not supported".into()),
                Opt::Ipv6 => return Err("IPv6 services are not supported (rvs is IPv4 only)".into()),
                Opt::Numeric
                | Opt::Service
                | Opt::Forward
                | Opt::TunPort
                | Opt::TunNocsum
                | Opt::TunCsum
                | Opt::TunRemcsum => {}
            },
            What::Cmd(_) => {}
        }
        Ok(())
    }

    /// The service of an `-A` line, checked as ipvsadm and the kernel do.
    fn add_service(&self) -> Result<Service, String> {
        let addr = self.svc.ok_or("no service")?;
        let name = self.scheduler.unwrap_or(DEFAULT_SCHEDULER);
        let mut bits = 0;
        // strtok skips empty names.
        for f in self.flags.unwrap_or("").split(',').filter(|f| !f.is_empty()) {
            bits |= service::check_flag(name, f)?;
        }
        if let ServiceAddr::Addr { protocol, port, .. } = addr {
            if port == 0 && self.persistent.is_none() {
                return Err("Zero port specified for non-persistent service".into());
            }
            if self.ops && protocol != Protocol::Udp {
                return Err("One-Packet Scheduling is only for UDP virtual services".into());
            }
        }
        let scheduler = service::scheduler(name)?;
        // The kernel only uses the mask for persistence templates.
        let netmask = match self.persistent {
            Some(_) => self.netmask.unwrap_or(Ipv4Addr::BROADCAST),
            None => Ipv4Addr::BROADCAST,
        };
        Ok(Service {
            addr,
            scheduler: scheduler.to_owned(),
            persistent: self.persistent,
            netmask,
            flags: service::flag_names(scheduler, bits),
            ops: self.ops,
            servers: Vec::new(),
        })
    }

    /// The server of an `-a` line for service `svc`.
    fn server(&self, svc: &ServiceAddr) -> Result<Server, String> {
        let (addr, port) = self.server.ok_or("no real server")?;
        let method = self.method.unwrap_or(Method::Route);
        let tun_opts = [Opt::TunType, Opt::TunPort, Opt::TunNocsum, Opt::TunCsum, Opt::TunRemcsum];
        if method != Method::Tunnel && tun_opts.iter().any(|o| self.seen.contains(o)) {
            return Err("Tunnel options conflict with forward method".into());
        }
        // ipvsadm.c tunnel_opt_check for the ipip type.
        if let Some(o) = tun_opts[1..].iter().find(|o| self.seen.contains(o)) {
            return Err(format!("Illegal '{}' option with the 'ipip' tunnel type", o.name()));
        }
        // ipvsadm copies the service port when -r has none, and forces it
        // for -g/-i on non-fwmark services (specs/ipvs.md §4.5).
        let port = if port.is_none() || service::port_fixed(svc, method) { Some(svc.port()) } else { port };
        let port = service::server_port(svc, port);
        let weight = self.weight.unwrap_or(1);
        let u_threshold = self.u_threshold.unwrap_or(0);
        let l_threshold = self.l_threshold.unwrap_or(0);
        if l_threshold > u_threshold {
            return Err(format!(
                "l-threshold {l_threshold} is above u-threshold {u_threshold}: the kernel refuses it (ERANGE)"
            ));
        }
        Ok(Server { addr, port, method, weight, u_threshold, l_threshold })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// specs/ipvs.md §6.3's example, less the parts rvs does not support
    /// (the GUE server).
    const SAVED: &str = "-A -t 10.0.0.1:80 -s wlc
-a -t 10.0.0.1:80 -r 192.168.10.1:80 -m -w 1
-A -t 10.0.0.1:443 -s rr -p 360 -M 255.255.255.0
-a -t 10.0.0.1:443 -r 192.168.10.1:443 -g -w 1
-A -u 10.0.0.1:53 -s rr -o
-A -f 1 -s sh -b sh-fallback,sh-port
-a -f 1 -r 192.168.10.1:0 -i -w 1 --tun-type ipip
";

    fn err(text: &str) -> String {
        match parse_rules(text, "ipvsadm.rules") {
            Ok(s) => format!("unexpectedly valid: {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn tcp(a: [u8; 4], port: u16) -> ServiceAddr {
        ServiceAddr::Addr { protocol: Protocol::Tcp, vip: Ipv4Addr::from(a), port }
    }

    fn dest(a: [u8; 4], port: u16, method: Method, weight: u32) -> Server {
        Server { addr: Ipv4Addr::from(a), port, method, weight, u_threshold: 0, l_threshold: 0 }
    }

    fn svc(addr: ServiceAddr, scheduler: &str, servers: Vec<Server>) -> Service {
        Service {
            addr,
            scheduler: scheduler.into(),
            persistent: None,
            netmask: Ipv4Addr::BROADCAST,
            flags: vec![],
            ops: false,
            servers,
        }
    }

    #[test]
    fn the_spec_example_parses_and_formats_back_exactly() {
        let s = parse_rules(SAVED, "x").unwrap();
        assert_eq!(
            s,
            vec![
                svc(tcp([10, 0, 0, 1], 80), "wlc", vec![dest([192, 168, 10, 1], 80, Method::Masq, 1)]),
                Service {
                    persistent: Some(360),
                    netmask: Ipv4Addr::new(255, 255, 255, 0),
                    ..svc(tcp([10, 0, 0, 1], 443), "rr", vec![dest([192, 168, 10, 1], 443, Method::Route, 1)])
                },
                Service {
                    ops: true,
                    ..svc(
                        ServiceAddr::Addr { protocol: Protocol::Udp, vip: Ipv4Addr::new(10, 0, 0, 1), port: 53 },
                        "rr",
                        vec![]
                    )
                },
                Service {
                    flags: vec!["sh-fallback".into(), "sh-port".into()],
                    ..svc(ServiceAddr::Fwmark(1), "sh", vec![dest([192, 168, 10, 1], 0, Method::Tunnel, 1)])
                },
            ]
        );
        assert_eq!(format_rules(&s), SAVED);
    }

    #[test]
    fn format_sorts_like_ipvsadm() {
        let services = vec![
            svc(ServiceAddr::Fwmark(2), "rr", vec![]),
            svc(ServiceAddr::Fwmark(1), "rr", vec![]),
            svc(ServiceAddr::Addr { protocol: Protocol::Udp, vip: Ipv4Addr::new(1, 1, 1, 1), port: 1 }, "rr", vec![]),
            svc(
                tcp([10, 0, 0, 2], 80),
                "wlc",
                vec![
                    dest([10, 0, 2, 12], 80, Method::Route, 3),
                    dest([10, 0, 2, 9], 81, Method::Masq, 0),
                    dest([10, 0, 2, 9], 80, Method::Masq, 2),
                ],
            ),
            svc(tcp([10, 0, 0, 1], 443), "wlc", vec![]),
            svc(tcp([10, 0, 0, 1], 80), "wlc", vec![]),
        ];
        assert_eq!(
            format_rules(&services),
            "-A -t 10.0.0.1:80 -s wlc
-A -t 10.0.0.1:443 -s wlc
-A -t 10.0.0.2:80 -s wlc
-a -t 10.0.0.2:80 -r 10.0.2.9:80 -m -w 2
-a -t 10.0.0.2:80 -r 10.0.2.9:81 -m -w 0
-a -t 10.0.0.2:80 -r 10.0.2.12:80 -g -w 3
-A -u 1.1.1.1:1 -s rr
-A -f 1 -s rr
-A -f 2 -s rr
"
        );
    }

    #[test]
    fn round_trip() {
        let mut services = parse_rules(SAVED, "x").unwrap();
        services.push(Service {
            persistent: Some(2678400),
            netmask: Ipv4Addr::UNSPECIFIED,
            flags: vec!["mh-port".into(), "flag-3".into()],
            ..svc(
                ServiceAddr::Fwmark(u32::MAX),
                "mh",
                vec![dest([10, 0, 3, 1], 8443, Method::Masq, 65535), dest([10, 0, 3, 1], 0, Method::Route, 0)],
            )
        });
        services.push(Service {
            persistent: Some(1),
            ..svc(tcp([10, 0, 0, 9], 0), "nq", vec![dest([10, 0, 3, 2], 0, Method::Tunnel, 7)])
        });
        services.push(Service { flags: vec!["flag-1".into()], ..svc(tcp([255, 255, 255, 255], 65535), "sed", vec![]) });
        let text = format_rules(&services);
        let mut back = parse_rules(&text, "x").unwrap();
        let order = |v: &mut Vec<Service>| {
            v.sort_by_key(|s| s.addr.sort_key());
            for s in v.iter_mut() {
                s.servers.sort_by_key(|d| (u32::from(d.addr), d.port));
            }
        };
        order(&mut services);
        order(&mut back);
        assert_eq!(back, services);
        assert_eq!(format_rules(&back), text);
    }

    #[test]
    fn ipvsadm_syntax_variants() {
        let text = "# saved by hand\n\n   \nipvsadm -A -t 10.0.0.1:80\n\
                    ipvsadm\t--add-server  --tcp-service=10.0.0.1:80 --real-server 10.0.2.1 --masquerading \
                    --weight=3 -x 10 -y 5\n\
                    -a -t 10.0.0.1:80 -r 10.0.2.2:8080 -i\n\
                    -a -t10.0.0.1:80 -r10.0.2.3:81 -mw4\n\
                    -A -u 10.0.0.1:0 -p -s sh -b flag-2,,flag-1\n\
                    -A -f 5 --persistent -M 255.255.0.0 --scheduler rr\n\
                    --add-service --fwmark-service 6 -p60 -o\r\n";
        let s = parse_rules(text, "x").unwrap();
        assert_eq!(
            s[0].servers,
            vec![
                Server { u_threshold: 10, l_threshold: 5, ..dest([10, 0, 2, 1], 80, Method::Masq, 3) },
                // -i forces the service port (specs/ipvs.md §4.5).
                dest([10, 0, 2, 2], 80, Method::Tunnel, 1),
                dest([10, 0, 2, 3], 81, Method::Masq, 4),
            ]
        );
        assert_eq!(s[0].scheduler, "wlc");
        assert_eq!((s[1].persistent, s[1].flags.clone()), (Some(360), vec!["sh-fallback".into(), "sh-port".into()]));
        assert_eq!((s[2].persistent, s[2].netmask), (Some(360), Ipv4Addr::new(255, 255, 0, 0)));
        assert_eq!((s[3].persistent, s[3].ops, s[3].scheduler.as_str()), (Some(60), true, "wlc"));
        // -M without -p is accepted, like ipvsadm, and has no effect.
        let s = parse_rules("-A -t 10.0.0.1:80 -M 255.255.255.0\n", "x").unwrap();
        assert_eq!((s[0].persistent, s[0].netmask), (None, Ipv4Addr::BROADCAST));
        // A masq server's :0 on an address service is the service port.
        let s = parse_rules("-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.0.2.1:0 -m\n", "x").unwrap();
        assert_eq!(s[0].servers[0].port, 80);
    }

    #[test]
    fn clear_forgets_what_came_before() {
        let text = "-A -t 10.0.0.1:80\n-C\n-A -t 10.0.0.1:80 -s rr\n";
        let s = parse_rules(text, "x").unwrap();
        assert_eq!((s.len(), s[0].scheduler.as_str()), (1, "rr"));
        assert_eq!(
            err("-A -t 10.0.0.1:80\n--clear\n-a -t 10.0.0.1:80 -r 10.0.2.1\n"),
            "ipvsadm.rules:3:1: -a -t 10.0.0.1:80 -r 10.0.2.1: Service not defined"
        );
    }

    #[test]
    fn ipvsadm_reasons() {
        assert_eq!(
            err("-A -t 10.0.0.1:80\n-a -t 10.0.0.2:80 -r 10.0.2.1:80\n"),
            "ipvsadm.rules:2:1: -a -t 10.0.0.2:80 -r 10.0.2.1:80: Service not defined"
        );
        assert_eq!(
            err("-A -t 10.0.0.1:80\n\n  -A -t 10.0.0.1:80 -s rr  \n"),
            "ipvsadm.rules:3:1: -A -t 10.0.0.1:80 -s rr: Service already exists: see line 1"
        );
        assert_eq!(
            err("-A -f 3\n-a -f 3 -r 10.0.2.1\n-a -f 3 -r 10.0.2.1:0 -m\n"),
            "ipvsadm.rules:3:1: -a -f 3 -r 10.0.2.1:0 -m: Destination already exists"
        );
        assert_eq!(
            err("-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.0.2.1:80\n-a -t 10.0.0.1:80 -r 10.0.2.1:8080\n"),
            "ipvsadm.rules:3:1: -a -t 10.0.0.1:80 -r 10.0.2.1:8080: Destination already exists"
        );
        assert_eq!(
            err("-A -t 10.0.0.1\n"),
            "ipvsadm.rules:1:1: -A -t 10.0.0.1: Zero port specified for non-persistent service"
        );
        assert_eq!(
            err("-A -t 10.0.0.1:53 -o\n"),
            "ipvsadm.rules:1:1: -A -t 10.0.0.1:53 -o: One-Packet Scheduling is only for UDP virtual services"
        );
        assert_eq!(
            err("-A -t 10.0.0.1:80 -s rr -b sh-port\n"),
            "ipvsadm.rules:1:1: -A -t 10.0.0.1:80 -s rr -b sh-port: incompatible scheduler flag \"sh-port\": it is \
             for the sh scheduler, and this service uses rr"
        );
        assert_eq!(
            err("-A -t 10.0.0.1:80 -b nope\n"),
            "ipvsadm.rules:1:1: -A -t 10.0.0.1:80 -b nope: invalid scheduler flag \"nope\" (valid flags: flag-1, \
             flag-2, flag-3, sh-fallback, sh-port, mh-fallback, mh-port)"
        );
        assert_eq!(
            err("-A -t 10.0.0.1:80 -s lblc\n"),
            "ipvsadm.rules:1:1: -A -t 10.0.0.1:80 -s lblc: \"lblc\" is not a supported scheduler (supported: rr, \
             wrr, lc, wlc, sed, nq, sh, mh)"
        );
        assert_eq!(
            err("-a -t 10.0.0.1:80\n"),
            "ipvsadm.rules:1:1: -a -t 10.0.0.1:80: You need to supply the 'real-server' option for the \
             'add-server' command"
        );
        assert_eq!(
            err("-A -s rr\n"),
            "ipvsadm.rules:1:1: -A -s rr: You need to supply the 'service-address' option for the 'add-service' \
             command"
        );
        assert_eq!(
            err("-A -t 10.0.0.1:80 -w 2\n"),
            "ipvsadm.rules:1:1: -A -t 10.0.0.1:80 -w 2: Illegal 'weight' option with the 'add-service' command"
        );
        assert_eq!(
            err("-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.0.2.1 -p\n"),
            "ipvsadm.rules:2:1: -a -t 10.0.0.1:80 -r 10.0.2.1 -p: Illegal 'persistent' option with the \
             'add-server' command"
        );
        assert_eq!(
            err("-C -t 10.0.0.1:80\n"),
            "ipvsadm.rules:1:1: -C -t 10.0.0.1:80: Illegal 'service-address' option with the 'flush' command"
        );
        assert_eq!(
            err("-A -t 10.0.0.1:80 -s rr -s wlc\n"),
            "ipvsadm.rules:1:1: -A -t 10.0.0.1:80 -s rr -s wlc: multiple 'scheduler' options specified"
        );
        assert_eq!(
            err("-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.0.2.1 -m -g\n"),
            "ipvsadm.rules:2:1: -a -t 10.0.0.1:80 -r 10.0.2.1 -m -g: multiple 'forwarding-method' options specified"
        );
        assert_eq!(
            err("-A -a -t 10.0.0.1:80\n"),
            "ipvsadm.rules:1:1: -A -a -t 10.0.0.1:80: multiple commands specified"
        );
        assert_eq!(
            err("-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.0.2.1 --tun-type ipip\n"),
            "ipvsadm.rules:2:1: -a -t 10.0.0.1:80 -r 10.0.2.1 --tun-type ipip: Tunnel options conflict with \
             forward method"
        );
        assert_eq!(
            err("-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.0.2.1 -i --tun-port 6080\n"),
            "ipvsadm.rules:2:1: -a -t 10.0.0.1:80 -r 10.0.2.1 -i --tun-port 6080: Illegal 'tun-port' option with \
             the 'ipip' tunnel type"
        );
    }

    #[test]
    fn values_and_limits() {
        let a = |opts: &str| err(&format!("-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.0.2.1 {opts}\n"));
        assert_eq!(
            a("-w 65536"),
            "ipvsadm.rules:2:1: -a -t 10.0.0.1:80 -r 10.0.2.1 -w 65536: illegal weight \"65536\" (expected 0..=65535)"
        );
        assert_eq!(
            a("-x 2147483648"),
            "ipvsadm.rules:2:1: -a -t 10.0.0.1:80 -r 10.0.2.1 -x 2147483648: illegal u_threshold \"2147483648\" \
             (expected 0..=2147483647)"
        );
        assert_eq!(
            a("-y x"),
            "ipvsadm.rules:2:1: -a -t 10.0.0.1:80 -r 10.0.2.1 -y x: illegal l_threshold \"x\" (expected \
             0..=2147483647)"
        );
        assert_eq!(
            a("-x 5 -y 6"),
            "ipvsadm.rules:2:1: -a -t 10.0.0.1:80 -r 10.0.2.1 -x 5 -y 6: l-threshold 6 is above u-threshold 5: \
             the kernel refuses it (ERANGE)"
        );
        assert_eq!(
            a("-i --tun-type gue"),
            "ipvsadm.rules:2:1: -a -t 10.0.0.1:80 -r 10.0.2.1 -i --tun-type gue: tunnel type \"gue\" is not \
             supported (rvs tunnels with ipip only)"
        );
        assert_eq!(
            a("-i --tun-type vxlan"),
            "ipvsadm.rules:2:1: -a -t 10.0.0.1:80 -r 10.0.2.1 -i --tun-type vxlan: illegal tunnel type \"vxlan\" \
             (expected ipip)"
        );
        assert_eq!(
            err("-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r rs1.example.com:80\n"),
            "ipvsadm.rules:2:1: -a -t 10.0.0.1:80 -r rs1.example.com:80: \"rs1.example.com:80\" names a host; only \
             numeric IPv4 addresses are accepted (rvs does no DNS)"
        );
        assert_eq!(
            err("-A -t 10.0.0.1:http\n"),
            "ipvsadm.rules:1:1: -A -t 10.0.0.1:http: \"10.0.0.1:http\" names a port by service name; only numeric \
             ports are accepted (rvs does no name lookups)"
        );
        assert_eq!(
            err("-A -f 0\n"),
            "ipvsadm.rules:1:1: -A -f 0: invalid fwmark value \"0\" (expected 1..=4294967295)"
        );
        assert_eq!(
            err("-A -t 10.0.0.1:80 -p 2678401\n"),
            "ipvsadm.rules:1:1: -A -t 10.0.0.1:80 -p 2678401: invalid timeout value \"2678401\" (expected \
             1..=2678400)"
        );
        assert_eq!(
            err("-A -t 10.0.0.1:80 -p 60 -M 255.0.255.0\n"),
            "ipvsadm.rules:1:1: -A -t 10.0.0.1:80 -p 60 -M 255.0.255.0: \"255.0.255.0\" is not a contiguous \
             netmask (expected a form like 255.255.255.0)"
        );
        assert_eq!(
            err("-A --sctp-service 10.0.0.1:80\n"),
            "ipvsadm.rules:1:1: -A --sctp-service 10.0.0.1:80: SCTP services are not supported (rvs balances TCP \
             and UDP)"
        );
        assert_eq!(
            err("-A -f 1 -6\n"),
            "ipvsadm.rules:1:1: -A -f 1 -6: IPv6 services are not supported (rvs is IPv4 only)"
        );
        assert_eq!(
            err("-A -t 10.0.0.1:80 -p --pe sip\n"),
            "ipvsadm.rules:1:1: -A -t 10.0.0.1:80 -p --pe sip: persistence engines (--pe) are not supported"
        );
    }

    #[test]
    fn other_commands_and_bad_syntax() {
        assert_eq!(
            err("-E -t 10.0.0.1:80 -s rr\n"),
            "ipvsadm.rules:1:1: -E -t 10.0.0.1:80 -s rr: \"-E\" (edit-service) is not supported in a rules file: \
             only -A, -a and -C are (write the final table with -A and -a lines)"
        );
        assert_eq!(
            err("--delete-server -t 10.0.0.1:80 -r 10.0.2.1\n"),
            "ipvsadm.rules:1:1: --delete-server -t 10.0.0.1:80 -r 10.0.2.1: \"--delete-server\" (delete-server) is \
             not supported in a rules file: only -A, -a and -C are (write the final table with -A and -a lines)"
        );
        for cmd in ["-D -t 10.0.0.1:80", "-e -t 10.0.0.1:80 -r 10.0.2.1", "-d -f 1 -r 10.0.2.1", "-Z", "-L -n", "-S"] {
            assert!(err(cmd).contains("is not supported in a rules file"), "{cmd}");
        }
        assert_eq!(
            err("--set 900 120 300\n"),
            "ipvsadm.rules:1:1: --set 900 120 300: \"--set\" is not supported in a rules file: set the timeouts in \
             [ipvs.timeouts] of the config file"
        );
        assert_eq!(
            err("-t 10.0.0.1:80 -A\n"),
            "ipvsadm.rules:1:1: -t 10.0.0.1:80 -A: a line must start with a command (-A, -a or -C), not \"-t\""
        );
        assert_eq!(
            err("-A -t 10.0.0.1:80 rr\n"),
            "ipvsadm.rules:1:1: -A -t 10.0.0.1:80 rr: unexpected argument \"rr\""
        );
        assert_eq!(err("-A -t 10.0.0.1:80 -q\n"), "ipvsadm.rules:1:1: -A -t 10.0.0.1:80 -q: unknown option \"-q\"");
        assert_eq!(
            err("-A -t 10.0.0.1:80 --bogus=1\n"),
            "ipvsadm.rules:1:1: -A -t 10.0.0.1:80 --bogus=1: unknown option \"--bogus\""
        );
        assert_eq!(
            err("-A -t 10.0.0.1:80 -s\n"),
            "ipvsadm.rules:1:1: -A -t 10.0.0.1:80 -s: option \"-s\" needs a value"
        );
        assert_eq!(err("-A -t\n"), "ipvsadm.rules:1:1: -A -t: option \"-t\" needs a value");
        assert_eq!(
            err("-A -t 10.0.0.1:80 --ops=1\n"),
            "ipvsadm.rules:1:1: -A -t 10.0.0.1:80 --ops=1: option \"--ops\" takes no value"
        );
        // The first bad line stops the run, whatever follows.
        assert_eq!(
            err("-A -t 10.0.0.1:80\n-Z\n-A\n"),
            "ipvsadm.rules:2:1: -Z: \"-Z\" (zero) is not supported in a rules file: only -A, -a and -C are \
             (write the final table with -A and -a lines)"
        );
        assert_eq!(parse_rules("", "x").unwrap(), vec![]);
        assert_eq!(parse_rules("ipvsadm\n# only comments\n", "x").unwrap(), vec![]);
    }
}
