//! argv → [`Command`], following ipvsadm v1.31 `parse_options` and
//! `process_options` (`A: ipvsadm.c`) step by step, so that the same
//! command line fails with the same message at the same point:
//!
//! 1. popt reads options one at a time; the first must be a command, else
//!    "Try `ipvsadm -h' ..." (exit 255). `-h`/`-v` act at once.
//! 2. Each further option is checked as it is read (`fail(2, ...)`); a
//!    command there is an "invalid option"; a popt error (unknown option,
//!    missing argument) prints `WORD: reason` and exits 255.
//! 3. `--set` takes three leftover arguments; any other leftover is an
//!    "unexpected argument"; then `-b` flags are checked.
//! 4. `generic_opt_check` against ipvsadm's command × option table.
//! 5. Per-command checks (port 0 needs `-p`, `-o` only UDP/fwmark, DR/TUN
//!    take the service port, tunnel options need `-i`, listing conflicts).
//!
//! rvs extras, taken out before step 1 wherever they appear: `--socket
//! PATH` (or `=PATH`) and `--json`; and subcommands when argv[1] is
//! `config`, `ports` or `neigh`.
use std::net::Ipv4Addr;
use std::path::PathBuf;

use conf::limits::{self, Refusal};
use conf::{Method, Protocol, ServiceAddr};

use super::{program_name, CliError, Command, Invocation, ListFormat, View};
use crate::api::{DaemonSpec, DestSpec, ListWhat, Op, Request, ServiceSpec};

/// IPVS_SVC_PERSISTENT_TIMEOUT: a bare `-p` (specs/ipvs.md §2.5).
const DEFAULT_PERSISTENT: u32 = conf::DEFAULT_PERSISTENT_TIMEOUT;
const DEF_SCHED: &str = conf::DEFAULT_SCHEDULER;
const DEF_MCAST_IFN: &str = "eth0";
/// IP_VS_IFNAME_MAXLEN - 1: ipvsadm strncpy's the interface name.
const IFNAME_MAX: usize = 15;

/// ipvsadm's commands, in `cmdnames` order (the row of [`COMMANDS_V_OPTIONS`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmd {
    Add,
    Edit,
    Del,
    Flush,
    List,
    AddDest,
    DelDest,
    EditDest,
    Timeout,
    StartDaemon,
    StopDaemon,
    Restore,
    Save,
    Zero,
}

const CMDNAMES: [&str; 14] = [
    "add-service",
    "edit-service",
    "delete-service",
    "flush",
    "list",
    "add-server",
    "delete-server",
    "edit-server",
    "set",
    "start-daemon",
    "stop-daemon",
    "restore",
    "save",
    "zero",
];

/// ipvsadm's `optnames`, indexed by OPTC_*.
const OPTNAMES: [&str; 34] = [
    "numeric",
    "connection",
    "service-address",
    "scheduler",
    "persistent",
    "netmask",
    "real-server",
    "forwarding-method",
    "weight",
    "u-threshold",
    "l-threshold",
    "mcast-interface",
    "timeout",
    "daemon",
    "stats",
    "rate",
    "thresholds",
    "persistent-conn",
    "nosort",
    "syncid",
    "exact",
    "ops",
    "pe",
    "sched-flags",
    "mcast-group",
    "mcast-port",
    "mcast-ttl",
    "sync-maxlen",
    "tun-info",
    "tun-type",
    "tun-port",
    "tun-nocsum",
    "tun-csum",
    "tun-remcsum",
];

// OPTC_* indices.
const O_NUMERIC: usize = 0;
const O_CONNECTION: usize = 1;
const O_SERVICE: usize = 2;
const O_SCHEDULER: usize = 3;
const O_PERSISTENT: usize = 4;
const O_NETMASK: usize = 5;
const O_SERVER: usize = 6;
const O_FORWARD: usize = 7;
const O_WEIGHT: usize = 8;
const O_UTHRESHOLD: usize = 9;
const O_LTHRESHOLD: usize = 10;
const O_MCAST: usize = 11;
const O_TIMEOUT: usize = 12;
const O_DAEMON: usize = 13;
const O_STATS: usize = 14;
const O_RATE: usize = 15;
const O_THRESHOLDS: usize = 16;
const O_PERSISTENTCONN: usize = 17;
const O_NOSORT: usize = 18;
const O_SYNCID: usize = 19;
const O_EXACT: usize = 20;
const O_ONEPACKET: usize = 21;
const O_PE: usize = 22;
const O_SCHED_FLAGS: usize = 23;
const O_MCAST_GROUP: usize = 24;
const O_MCAST_PORT: usize = 25;
const O_MCAST_TTL: usize = 26;
const O_SYNC_MAXLEN: usize = 27;
const O_TUN_INFO: usize = 28;
const O_TUN_TYPE: usize = 29;
const O_TUN_PORT: usize = 30;
const O_TUN_NOCSUM: usize = 31;
const O_TUN_CSUM: usize = 32;
const O_TUN_REMCSUM: usize = 33;

/// ipvsadm's `commands_v_options`, one row per [`Cmd`], one column per
/// OPTC_*: `+` compulsory, `x` illegal, `1` exclusive, `.` optional.
const COMMANDS_V_OPTIONS: [&[u8; 34]; 14] = [
    //-n -c svc -s -p -M -r fwd -w -x -y mc tot dmn st rt thr pc srt sid ex ops pe -b grp port ttl size tinf type tprt nocs csum remc
    b"xx+...xxxxxxxxxxxxxxx...xxxxxxxxxx", // add-service
    b"xx+...xxxxxxxxxxxxxxx...xxxxxxxxxx", // edit-service
    b"xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // delete-service
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // flush
    b".11xxxxxxxxx11.......xxxxxxx.xxxxx", // list
    b"xx+xxx+....xxxxxxxxxxxxxxxxxx.....", // add-server
    b"xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxx", // delete-server
    b"xx+xxx+....xxxxxxxxxxxxxxxxxx.....", // edit-server
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // set
    b"xxxxxxxxxxx.xxxxxxx.xxxx....xxxxxx", // start-daemon
    b"xxxxxxxxxxxxxxxxxxx.xxxxxxxxxxxxxx", // stop-daemon
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // restore
    b".xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // save
    b"xx.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // zero
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arg {
    None,
    Required,
    /// POPT_ARGFLAG_OPTIONAL: glued (`-p60`, `--persistent=60`) or the next
    /// word unless it starts with '-'.
    Optional,
}

/// What an option is (ipvsadm's popt `val`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tag {
    Cmd(Cmd),
    Help,
    Version,
    Tcp,
    Udp,
    Sctp,
    Fwmark,
    Scheduler,
    Persistent,
    Netmask,
    Server,
    Fwd(Method),
    Weight,
    UThreshold,
    LThreshold,
    Numeric,
    Connection,
    McastInterface,
    SyncId,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    Sort,
    Exact,
    Ipv6,
    Ops,
    Pe,
    SchedFlags,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunNocsum,
    TunCsum,
    TunRemcsum,
}

/// ipvsadm's popt table (`parse_options`).
const OPTIONS: &[(Option<char>, &str, Arg, Tag)] = &[
    (Some('A'), "add-service", Arg::None, Tag::Cmd(Cmd::Add)),
    (Some('E'), "edit-service", Arg::None, Tag::Cmd(Cmd::Edit)),
    (Some('D'), "delete-service", Arg::None, Tag::Cmd(Cmd::Del)),
    (Some('C'), "clear", Arg::None, Tag::Cmd(Cmd::Flush)),
    (Some('L'), "list", Arg::None, Tag::Cmd(Cmd::List)),
    (Some('l'), "list", Arg::None, Tag::Cmd(Cmd::List)),
    (Some('Z'), "zero", Arg::None, Tag::Cmd(Cmd::Zero)),
    (Some('a'), "add-server", Arg::None, Tag::Cmd(Cmd::AddDest)),
    (Some('e'), "edit-server", Arg::None, Tag::Cmd(Cmd::EditDest)),
    (Some('d'), "delete-server", Arg::None, Tag::Cmd(Cmd::DelDest)),
    (None, "set", Arg::None, Tag::Cmd(Cmd::Timeout)),
    (Some('h'), "help", Arg::None, Tag::Help),
    (Some('v'), "version", Arg::None, Tag::Version),
    (Some('R'), "restore", Arg::None, Tag::Cmd(Cmd::Restore)),
    (Some('S'), "save", Arg::None, Tag::Cmd(Cmd::Save)),
    (None, "start-daemon", Arg::Required, Tag::Cmd(Cmd::StartDaemon)),
    (None, "stop-daemon", Arg::Required, Tag::Cmd(Cmd::StopDaemon)),
    (Some('t'), "tcp-service", Arg::Required, Tag::Tcp),
    (Some('u'), "udp-service", Arg::Required, Tag::Udp),
    (None, "sctp-service", Arg::Required, Tag::Sctp),
    (Some('f'), "fwmark-service", Arg::Required, Tag::Fwmark),
    (Some('s'), "scheduler", Arg::Required, Tag::Scheduler),
    (Some('p'), "persistent", Arg::Optional, Tag::Persistent),
    (Some('M'), "netmask", Arg::Required, Tag::Netmask),
    (Some('r'), "real-server", Arg::Required, Tag::Server),
    (Some('m'), "masquerading", Arg::None, Tag::Fwd(Method::Masq)),
    (Some('i'), "ipip", Arg::None, Tag::Fwd(Method::Tunnel)),
    (Some('g'), "gatewaying", Arg::None, Tag::Fwd(Method::Route)),
    (Some('w'), "weight", Arg::Required, Tag::Weight),
    (Some('x'), "u-threshold", Arg::Required, Tag::UThreshold),
    (Some('y'), "l-threshold", Arg::Required, Tag::LThreshold),
    (Some('n'), "numeric", Arg::None, Tag::Numeric),
    (Some('c'), "connection", Arg::None, Tag::Connection),
    (None, "mcast-interface", Arg::Required, Tag::McastInterface),
    (None, "syncid", Arg::Required, Tag::SyncId),
    (None, "timeout", Arg::None, Tag::Timeout),
    (None, "daemon", Arg::None, Tag::Daemon),
    (None, "stats", Arg::None, Tag::Stats),
    (None, "rate", Arg::None, Tag::Rate),
    (None, "thresholds", Arg::None, Tag::Thresholds),
    (None, "persistent-conn", Arg::None, Tag::PersistentConn),
    (None, "nosort", Arg::None, Tag::NoSort),
    (None, "sort", Arg::None, Tag::Sort),
    (Some('X'), "exact", Arg::None, Tag::Exact),
    (Some('6'), "ipv6", Arg::None, Tag::Ipv6),
    (Some('o'), "ops", Arg::None, Tag::Ops),
    (None, "pe", Arg::Required, Tag::Pe),
    (Some('b'), "sched-flags", Arg::Required, Tag::SchedFlags),
    (None, "mcast-group", Arg::Required, Tag::McastGroup),
    (None, "mcast-port", Arg::Required, Tag::McastPort),
    (None, "mcast-ttl", Arg::Required, Tag::McastTtl),
    (None, "sync-maxlen", Arg::Required, Tag::SyncMaxlen),
    (None, "tun-info", Arg::None, Tag::TunInfo),
    (None, "tun-type", Arg::Required, Tag::TunType),
    (None, "tun-port", Arg::Required, Tag::TunPort),
    (None, "tun-nocsum", Arg::None, Tag::TunNocsum),
    (None, "tun-csum", Arg::None, Tag::TunCsum),
    (None, "tun-remcsum", Arg::None, Tag::TunRemcsum),
];

/// One step of popt's `poptGetNextOpt`.
enum Tok {
    Opt(Tag, Option<String>),
    /// poptStrerror's text: "unknown option", "missing argument", ...
    Error(&'static str),
}

/// popt's option reader over `args` (argv without argv[0]): short clusters,
/// `--long[=value]`, `--` ends options, other words are leftovers.
struct Popt<'a> {
    args: &'a [String],
    next: usize,
    /// The cluster being read: word index and byte offset.
    cluster: Option<(usize, usize)>,
    leftovers: Vec<String>,
    /// The last word read: what poptBadOption names.
    last: usize,
    no_more_options: bool,
}

impl<'a> Popt<'a> {
    fn new(args: &'a [String]) -> Popt<'a> {
        Popt { args, next: 0, cluster: None, leftovers: Vec::new(), last: 0, no_more_options: false }
    }

    /// poptBadOption(POPT_BADOPTION_NOALIAS): the word last read.
    fn bad_option(&self) -> &str {
        self.args.get(self.last).map_or("", String::as_str)
    }

    fn take_value(&mut self, arg: Arg) -> Result<Option<String>, &'static str> {
        match arg {
            Arg::None => Ok(None),
            Arg::Required => match self.args.get(self.next) {
                Some(v) => {
                    self.last = self.next;
                    self.next += 1;
                    Ok(Some(v.clone()))
                }
                None => Err("missing argument"),
            },
            Arg::Optional => match self.args.get(self.next) {
                Some(v) if !v.starts_with('-') => {
                    self.last = self.next;
                    self.next += 1;
                    Ok(Some(v.clone()))
                }
                _ => Ok(None),
            },
        }
    }

    fn next_opt(&mut self) -> Option<Tok> {
        loop {
            if let Some((w, pos)) = self.cluster {
                let word = &self.args[w];
                let c = word[pos..].chars().next()?;
                let after = pos + c.len_utf8();
                self.cluster = if after < word.len() { Some((w, after)) } else { None };
                self.last = w;
                let Some(&(_, _, arg, tag)) = OPTIONS.iter().find(|o| o.0 == Some(c)) else {
                    self.cluster = None;
                    return Some(Tok::Error("unknown option"));
                };
                if arg != Arg::None && after < word.len() {
                    self.cluster = None;
                    return Some(Tok::Opt(tag, Some(word[after..].to_owned())));
                }
                return Some(match self.take_value(arg) {
                    Ok(v) => Tok::Opt(tag, v),
                    Err(e) => Tok::Error(e),
                });
            }
            let w = self.next;
            let word = self.args.get(w)?;
            self.next += 1;
            self.last = w;
            if self.no_more_options || word == "-" || !word.starts_with('-') {
                self.leftovers.push(word.clone());
                continue;
            }
            if word == "--" {
                self.no_more_options = true;
                continue;
            }
            if let Some(long) = word.strip_prefix("--") {
                let (name, glued) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_owned())),
                    None => (long, None),
                };
                let Some(&(_, _, arg, tag)) = OPTIONS.iter().find(|o| o.1 == name) else {
                    return Some(Tok::Error("unknown option"));
                };
                return Some(match (arg, glued) {
                    (Arg::None, Some(_)) => Tok::Error("option does not take an argument"),
                    (_, Some(v)) => Tok::Opt(tag, Some(v)),
                    (arg, None) => match self.take_value(arg) {
                        Ok(v) => Tok::Opt(tag, v),
                        Err(e) => Tok::Error(e),
                    },
                });
            }
            self.cluster = Some((w, 1));
        }
    }
}

/// Everything one command line sets (ipvsadm's `struct ipvs_command_entry`
/// plus the option bits and format flags).
struct Entry {
    cmd: Cmd,
    options: u64,
    protocol: Protocol,
    addr: Option<(Ipv4Addr, u16)>,
    fwmark: Option<u32>,
    scheduler: Option<String>,
    persistent: Option<u32>,
    netmask: Ipv4Addr,
    ops: bool,
    sched_flags: Option<String>,
    flags: Vec<String>,
    server: Option<(Ipv4Addr, Option<u16>)>,
    method: Method,
    weight: u16,
    u_threshold: u32,
    l_threshold: u32,
    daemon_state: String,
    mcast_ifn: Option<String>,
    syncid: u8,
    mcast_group: Option<Ipv4Addr>,
    mcast_port: Option<u16>,
    mcast_ttl: Option<u8>,
    sync_maxlen: Option<u16>,
    timeouts: (u32, u32, u32),
    format: ListFormat,
}

impl Entry {
    fn new(cmd: Cmd) -> Entry {
        Entry {
            cmd,
            options: 0,
            protocol: Protocol::Tcp,
            addr: None,
            fwmark: None,
            scheduler: None,
            persistent: None,
            netmask: Ipv4Addr::BROADCAST,
            ops: false,
            sched_flags: None,
            flags: Vec::new(),
            server: None,
            // process_options: DR is the default forwarding method, weight 1.
            method: Method::Route,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            daemon_state: String::new(),
            mcast_ifn: None,
            syncid: 0,
            mcast_group: None,
            mcast_port: None,
            mcast_ttl: None,
            sync_maxlen: None,
            timeouts: (0, 0, 0),
            format: ListFormat::default(),
        }
    }

    fn has(&self, optc: usize) -> bool {
        self.options & (1 << optc) != 0
    }

    /// ipvsadm's `set_option`.
    fn set_option(&mut self, optc: usize) -> Result<(), CliError> {
        if self.has(optc) {
            return Err(CliError::fail(format!("multiple '{}' options specified", OPTNAMES[optc])));
        }
        self.options |= 1 << optc;
        Ok(())
    }

    fn key(&self) -> ServiceAddr {
        match (self.fwmark, self.addr) {
            (Some(m), _) => ServiceAddr::Fwmark(m),
            (None, Some((vip, port))) => ServiceAddr::Addr { protocol: self.protocol, vip, port },
            (None, None) => ServiceAddr::Addr { protocol: self.protocol, vip: Ipv4Addr::UNSPECIFIED, port: 0 },
        }
    }

    fn service_port(&self) -> u16 {
        match (self.fwmark, self.addr) {
            (None, Some((_, port))) => port,
            _ => 0,
        }
    }
}

/// ipvsadm's `string_to_number`: a whole decimal number in `min..=max`.
fn number(s: &str, min: i64, max: i64) -> Option<i64> {
    // strtol accepts leading blanks and a sign.
    let t = s.trim_start();
    let digits = t.strip_prefix('+').unwrap_or(t);
    if digits.is_empty() || !digits.trim_start_matches('-').bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse::<i64>().ok().filter(|n| (min..=max).contains(n))
}

/// Any whole decimal number (range checks are conf::limits').
fn any_number(s: &str) -> Option<i128> {
    number(s, i64::MIN, i64::MAX).map(i128::from)
}

/// ipvsadm's `fail(2, ...)` or kernel error for a refused value.
fn refused(r: Refusal) -> CliError {
    CliError { message: r.message().to_owned(), exit_code: r.exit_code() }
}

/// Why an address argument is refused (appended to ipvsadm's message).
fn addr_problem(s: &str) -> String {
    let (host, port) = s.rsplit_once(':').map_or((s, None), |(h, p)| (h, Some(p)));
    let why = if s.starts_with('[') || s.matches(':').count() > 1 {
        "is IPv6; rvs supports IPv4 only"
    } else if host.parse::<Ipv4Addr>().is_err() && host.bytes().any(|b| b.is_ascii_alphabetic()) {
        "names a host; rvs accepts only numeric IPv4 addresses (the appliance does no DNS)"
    } else if port.is_some_and(|p| p.bytes().any(|b| b.is_ascii_alphabetic())) {
        "names a port; rvs accepts only numeric ports (no service-name lookups)"
    } else {
        "is not an IPv4 address with an optional port (e.g. 10.0.0.1:80)"
    };
    format!("\"{s}\" {why}")
}

/// ipvsadm's `parse_service` for IPv4 numbers: `ADDR[:PORT]`, the port
/// 0..65535 (None when absent).
fn addr_port(s: &str) -> Option<(Ipv4Addr, Option<u16>)> {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    let addr = host.parse::<Ipv4Addr>().ok()?;
    let port = match port {
        None => None,
        Some(p) => Some(number(p, 0, 65535)? as u16),
    };
    Some((addr, port))
}

/// The SCHED1..3 bits of flag names (any spelling).
pub(crate) fn sched_flag_bits(names: &[String]) -> u32 {
    limits::flag_bits(names)
}

/// Canonical names of `bits` for `sched`, in bit order.
pub(crate) fn sched_flag_names(sched: &str, bits: u32) -> Vec<String> {
    limits::flag_names(sched, bits)
}

/// ipvsadm's `parse_sched_flags`.
fn parse_sched_flags(sched: &str, arg: &str) -> Result<Vec<String>, CliError> {
    let names: Vec<&str> = arg.split(',').filter(|f| !f.is_empty()).collect();
    if names.is_empty() {
        // ipvsadm's strtok finds no name here and crashes; refuse instead.
        return Err(CliError::fail(format!("invalid scheduler flag `{arg}'")));
    }
    limits::sched_flags(sched, &names).map_err(refused)
}

/// "Try `prog -h' or 'prog --help' for more information." (exit 255).
fn tryhelp(prog: &str) -> CliError {
    CliError { message: format!("Try `{prog} -h' or '{prog} --help' for more information."), exit_code: 255 }
}

/// Takes the rvs-only options out of `args`: `--socket PATH`,
/// `--socket=PATH`, `--json`. Stops at `--`.
fn take_extras(args: &[String]) -> Result<(Vec<String>, Option<PathBuf>, bool), CliError> {
    let mut rest = Vec::new();
    let mut socket = None;
    let mut json = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            rest.push(a.clone());
            rest.extend(it.by_ref().cloned());
            break;
        }
        if a == "--json" {
            json = true;
        } else if a == "--socket" {
            let p = it.next().ok_or_else(|| CliError::fail("--socket needs a path"))?;
            socket = Some(PathBuf::from(p));
        } else if let Some(p) = a.strip_prefix("--socket=") {
            socket = Some(PathBuf::from(p));
        } else {
            rest.push(a.clone());
        }
    }
    Ok((rest, socket, json))
}

/// Parses a whole command line (`argv[0]` included).
pub fn parse(argv: &[String]) -> Result<Invocation, CliError> {
    let prog = program_name(argv.first().map(String::as_str));
    let (args, socket, json) = take_extras(argv.get(1..).unwrap_or(&[]))?;
    let command = match args.first().map(String::as_str) {
        // main(): no arguments at all lists the table.
        None => list_all(json),
        Some("config") => subcommand(&prog, &args, json, |s| match s {
            "check" => Some(Op::ConfigCheck),
            "reload" => Some(Op::ConfigReload),
            "show" => Some(Op::ConfigShow),
            _ => None,
        })?,
        Some("ports") => simple(&prog, &args, Op::Ports, View::Ports, json)?,
        Some("mark") => {
            let rest: Vec<String> = args[1..].to_vec();
            // Checked here too, so a typo gets iptables' message without a round trip.
            let argv: Vec<&str> = rest.iter().map(String::as_str).collect();
            conf::parse_command(&argv).map_err(|e| CliError::fail(format!("{prog} mark: {e}")))?;
            Command::Send { request: Request::new(Op::Mark(rest)), view: View::Text, json }
        }
        Some("neigh") | Some("neighbors") => simple(&prog, &args, Op::Neighbors, View::Neighbors, json)?,
        Some("sync") => simple(&prog, &args, Op::SyncStats, View::Text, json)?,
        Some("health") => simple(&prog, &args, Op::Health, View::Health, json)?,
        Some(_) => parse_ipvsadm(&prog, &args, json, false)?,
    };
    Ok(Invocation { prog, socket, command })
}

fn list_all(json: bool) -> Command {
    Command::Send {
        request: Request::new(Op::List { what: ListWhat::Services, service: None }),
        view: View::Services { format: ListFormat::default(), one_service: false },
        json,
    }
}

fn simple(prog: &str, args: &[String], op: Op, view: View, json: bool) -> Result<Command, CliError> {
    if let Some(extra) = args.get(1) {
        return Err(CliError::fail(format!("{prog} {}: unexpected argument {extra}", args[0])));
    }
    Ok(Command::Send { request: Request::new(op), view, json })
}

fn subcommand(prog: &str, args: &[String], json: bool, pick: impl Fn(&str) -> Option<Op>) -> Result<Command, CliError> {
    let usage = || CliError::fail(format!("usage: {prog} config check|reload|show"));
    let op = args.get(1).and_then(|s| pick(s)).ok_or_else(usage)?;
    if args.len() > 2 {
        return Err(usage());
    }
    let view = View::Text;
    Ok(Command::Send { request: Request::new(op), view, json })
}

/// `-R`: every non-blank line of `text` as an ipvsadm command line (split
/// on spaces and tabs, a leading `ipvsadm` skipped), all into one
/// `Op::Batch`. The first bad line is the error and nothing is sent
/// (specs/ipvs.md §6.3).
pub fn restore(prog: &str, text: &str) -> Result<Request, CliError> {
    let mut ops = Vec::new();
    for raw in text.lines() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let mut words: Vec<String> = line.split([' ', '\t']).filter(|w| !w.is_empty()).map(str::to_owned).collect();
        if words.first().map(String::as_str) == Some("ipvsadm") {
            words.remove(0);
        }
        if words.is_empty() {
            continue;
        }
        let (words, _, _) = take_extras(&words)?;
        match parse_ipvsadm(prog, &words, false, true)? {
            Command::Send { request, view: View::Done, .. } => ops.push(request.op),
            _ => {
                return Err(CliError::fail(format!(
                    "{}: only commands that change the table can be restored (-R)",
                    words.join(" ")
                )))
            }
        }
    }
    Ok(Request::new(Op::Batch(ops)))
}

/// ipvsadm's `parse_options` + `process_options` on `args` (argv without
/// argv[0]). `restoring`: a line of `-R` input (`-R` there is refused).
fn parse_ipvsadm(prog: &str, args: &[String], json: bool, restoring: bool) -> Result<Command, CliError> {
    let mut popt = Popt::new(args);
    let cmd = match popt.next_opt() {
        Some(Tok::Opt(Tag::Cmd(Cmd::Restore), _)) if restoring => return Err(tryhelp(prog)),
        Some(Tok::Opt(Tag::Cmd(c), v)) => (c, v),
        Some(Tok::Opt(Tag::Help, _)) => return Ok(Command::Help),
        Some(Tok::Opt(Tag::Version, _)) => return Ok(Command::Version),
        _ => return Err(tryhelp(prog)),
    };
    let mut e = Entry::new(cmd.0);
    match (cmd.0, cmd.1.as_deref()) {
        (Cmd::StartDaemon, Some(s)) | (Cmd::StopDaemon, Some(s)) if s == "master" || s == "backup" => {
            e.daemon_state = s.to_owned()
        }
        (Cmd::StartDaemon, _) => return Err(CliError::fail("illegal start-daemon parameter specified")),
        // sic: ipvsadm's text for --stop-daemon.
        (Cmd::StopDaemon, _) => return Err(CliError::fail("illegal start_daemon specified")),
        _ => {}
    }

    while let Some(tok) = popt.next_opt() {
        let (tag, value) = match tok {
            Tok::Opt(t, v) => (t, v),
            Tok::Error(why) => {
                return Err(CliError { message: format!("{}: {why}", popt.bad_option()), exit_code: 255 })
            }
        };
        let v = value.unwrap_or_default();
        option(&mut e, tag, &v, &popt)?;
    }

    if e.cmd == Cmd::Timeout {
        let mut left = popt.leftovers.drain(..3.min(popt.leftovers.len())).collect::<Vec<_>>();
        if left.len() < 3 {
            return Err(CliError::fail("--set option requires 3 timeout values"));
        }
        let udp = left.pop().unwrap_or_default();
        let tcpfin = left.pop().unwrap_or_default();
        let tcp = left.pop().unwrap_or_default();
        let set = |v: &str| limits::set_timeout(any_number(v), v).map_err(refused);
        e.timeouts = (set(&tcp)?, set(&tcpfin)?, set(&udp)?);
    }
    if let Some(extra) = popt.leftovers.first() {
        return Err(CliError::fail(format!("unexpected argument {extra}")));
    }
    if let Some(arg) = e.sched_flags.take() {
        let sched = e.scheduler.clone().unwrap_or_else(|| DEF_SCHED.to_owned());
        e.flags = parse_sched_flags(&sched, &arg)?;
    }

    generic_opt_check(&e)?;
    build(e, json)
}

/// One option after the command (the `while` loop of `parse_options`).
fn option(e: &mut Entry, tag: Tag, v: &str, popt: &Popt<'_>) -> Result<(), CliError> {
    match tag {
        Tag::Tcp | Tag::Udp => {
            e.set_option(O_SERVICE)?;
            e.protocol = if tag == Tag::Tcp { Protocol::Tcp } else { Protocol::Udp };
            let (addr, port) = addr_port(v).ok_or_else(|| {
                CliError::fail(format!("illegal virtual server address[:port] specified: {}", addr_problem(v)))
            })?;
            e.addr = Some((addr, port.unwrap_or(0)));
        }
        Tag::Sctp => {
            e.set_option(O_SERVICE)?;
            return Err(CliError::fail("SCTP services are not supported (rvs balances TCP and UDP)"));
        }
        Tag::Fwmark => {
            e.set_option(O_SERVICE)?;
            e.fwmark = Some(limits::fwmark(any_number(v), v).map_err(refused)?);
        }
        Tag::Scheduler => {
            e.set_option(O_SCHEDULER)?;
            e.scheduler = Some(v.to_owned());
        }
        Tag::Persistent => {
            e.set_option(O_PERSISTENT)?;
            e.persistent = Some(if v.is_empty() {
                DEFAULT_PERSISTENT
            } else {
                limits::persistent(any_number(v), v).map_err(refused)?
            });
        }
        Tag::Netmask => {
            e.set_option(O_NETMASK)?;
            let m: Ipv4Addr =
                v.parse().map_err(|_| CliError::fail("illegal virtual server persistent mask specified"))?;
            e.netmask = limits::netmask(m).map_err(refused)?;
        }
        Tag::Server => {
            e.set_option(O_SERVER)?;
            let s = addr_port(v).ok_or_else(|| {
                CliError::fail(format!("illegal real server address[:port] specified: {}", addr_problem(v)))
            })?;
            e.server = Some(s);
        }
        Tag::Fwd(m) => {
            e.set_option(O_FORWARD)?;
            e.method = m;
        }
        Tag::Weight => {
            e.set_option(O_WEIGHT)?;
            e.weight = limits::weight(any_number(v)).map_err(refused)?;
        }
        Tag::UThreshold => {
            e.set_option(O_UTHRESHOLD)?;
            e.u_threshold = limits::u_threshold(any_number(v)).map_err(refused)?;
        }
        Tag::LThreshold => {
            e.set_option(O_LTHRESHOLD)?;
            e.l_threshold = limits::l_threshold(any_number(v)).map_err(refused)?;
        }
        Tag::Connection => e.set_option(O_CONNECTION)?,
        Tag::Numeric => {
            e.set_option(O_NUMERIC)?;
            e.format.numeric = true;
        }
        Tag::McastInterface => {
            e.set_option(O_MCAST)?;
            let mut name = v.to_owned();
            // strncpy(IP_VS_IFNAME_MAXLEN - 1)
            while name.len() > IFNAME_MAX {
                name.pop();
            }
            e.mcast_ifn = Some(name);
        }
        Tag::SyncId => {
            e.set_option(O_SYNCID)?;
            e.syncid = number(v, 0, 255).ok_or_else(|| CliError::fail("illegal syncid specified"))? as u8;
        }
        Tag::Timeout => e.set_option(O_TIMEOUT)?,
        Tag::Daemon => e.set_option(O_DAEMON)?,
        Tag::Stats => {
            e.set_option(O_STATS)?;
            e.format.stats = true;
        }
        Tag::Rate => {
            e.set_option(O_RATE)?;
            e.format.rate = true;
        }
        Tag::Thresholds => {
            e.set_option(O_THRESHOLDS)?;
            e.format.thresholds = true;
        }
        Tag::PersistentConn => {
            e.set_option(O_PERSISTENTCONN)?;
            e.format.persistent_conn = true;
        }
        Tag::NoSort => {
            e.set_option(O_NOSORT)?;
            e.format.nosort = true;
        }
        // "Sort is the default, this is a no-op for compatibility".
        Tag::Sort => {}
        Tag::Exact => {
            e.set_option(O_EXACT)?;
            e.format.exact = true;
        }
        Tag::Ipv6 => {
            if e.fwmark.is_some() {
                return Err(CliError::fail("IPv6 services are not supported (rvs is IPv4 only)"));
            }
            // ipvsadm's fail() adds a newline to its own.
            return Err(CliError::fail("-6 used before -f\n"));
        }
        Tag::Ops => {
            e.set_option(O_ONEPACKET)?;
            e.ops = true;
        }
        Tag::Pe => {
            e.set_option(O_PE)?;
            return Err(CliError::fail("persistence engines (--pe) are not supported by rvs"));
        }
        Tag::SchedFlags => {
            e.set_option(O_SCHED_FLAGS)?;
            e.sched_flags = Some(v.to_owned());
        }
        Tag::McastGroup => {
            e.set_option(O_MCAST_GROUP)?;
            if v.contains(':') {
                return Err(CliError::fail(format!("invalid IPv6 mcast-group `{v}' (rvs syncs over IPv4 only)")));
            }
            let g = v
                .parse::<Ipv4Addr>()
                .ok()
                .filter(Ipv4Addr::is_multicast)
                .ok_or_else(|| CliError::fail(format!("invalid IPv4 mcast-group `{v}'")))?;
            e.mcast_group = Some(g);
        }
        Tag::McastPort => {
            e.set_option(O_MCAST_PORT)?;
            e.mcast_port =
                Some(number(v, 1, 65535).ok_or_else(|| CliError::fail("illegal mcast-port specified"))? as u16);
        }
        Tag::McastTtl => {
            e.set_option(O_MCAST_TTL)?;
            e.mcast_ttl = Some(number(v, 1, 255).ok_or_else(|| CliError::fail("illegal mcast-ttl specified"))? as u8);
        }
        Tag::SyncMaxlen => {
            e.set_option(O_SYNC_MAXLEN)?;
            e.sync_maxlen = Some(
                number(v, 1, 65535 - 20 - 8).ok_or_else(|| CliError::fail("illegal sync-maxlen specified"))? as u16,
            );
        }
        Tag::TunInfo => {
            e.set_option(O_TUN_INFO)?;
            e.format.tun_info = true;
        }
        Tag::TunType => {
            e.set_option(O_TUN_TYPE)?;
            match v {
                "ipip" => {}
                "gue" | "gre" => {
                    return Err(CliError::fail(format!(
                        "tunnel type `{v}' is not supported by rvs (it tunnels with ipip only)"
                    )))
                }
                _ => return Err(CliError::fail("illegal tunnel type specified")),
            }
        }
        Tag::TunPort => {
            e.set_option(O_TUN_PORT)?;
            number(v, 1, 65535).ok_or_else(|| CliError::fail("illegal tunnel port specified"))?;
        }
        Tag::TunNocsum => e.set_option(O_TUN_NOCSUM)?,
        Tag::TunCsum => e.set_option(O_TUN_CSUM)?,
        Tag::TunRemcsum => e.set_option(O_TUN_REMCSUM)?,
        // A command after the first: not a case of the option loop.
        Tag::Cmd(_) | Tag::Help | Tag::Version => {
            return Err(CliError::fail(format!("invalid option `{}'", popt.bad_option())))
        }
    }
    Ok(())
}

/// ipvsadm's `generic_opt_check`.
fn generic_opt_check(e: &Entry) -> Result<(), CliError> {
    let row = COMMANDS_V_OPTIONS[e.cmd as usize];
    let cmdname = CMDNAMES[e.cmd as usize];
    let mut exclusive: Option<usize> = None;
    for (j, &rule) in row.iter().enumerate() {
        if !e.has(j) {
            if rule == b'+' {
                return Err(CliError::fail(format!(
                    "You need to supply the '{}' option for the '{cmdname}' command",
                    OPTNAMES[j]
                )));
            }
            continue;
        }
        match rule {
            b'x' => {
                return Err(CliError::fail(format!("Illegal '{}' option with the '{cmdname}' command", OPTNAMES[j])))
            }
            b'1' => match exclusive {
                None => exclusive = Some(j),
                Some(last) => {
                    return Err(CliError::fail(format!(
                        "The option '{}' conflicts with the '{}' option in the '{cmdname}' command",
                        OPTNAMES[j], OPTNAMES[last]
                    )))
                }
            },
            _ => {}
        }
    }
    Ok(())
}

/// The checks of `process_options` after `generic_opt_check`, and the
/// request.
fn build(e: Entry, json: bool) -> Result<Command, CliError> {
    let done = |op: Op| Ok(Command::Send { request: Request::new(op), view: View::Done, json });
    match e.cmd {
        Cmd::Add | Cmd::Edit => {
            let addr = e.key();
            limits::zero_port(&addr, e.persistent.is_some()).map_err(refused)?;
            limits::one_packet(&addr, e.ops).map_err(refused)?;
            let spec = ServiceSpec {
                key: e.key(),
                scheduler: e.scheduler.clone().unwrap_or_else(|| DEF_SCHED.to_owned()),
                persistent: e.persistent,
                netmask: e.netmask,
                flags: e.flags.clone(),
                ops: e.ops,
            };
            done(if e.cmd == Cmd::Add { Op::AddService(spec) } else { Op::EditService(spec) })
        }
        Cmd::Del => done(Op::DelService(e.key())),
        Cmd::Flush => done(Op::Clear),
        Cmd::Zero => done(Op::Zero(e.has(O_SERVICE).then(|| e.key()))),
        Cmd::Timeout => {
            let (tcp, tcpfin, udp) = e.timeouts;
            done(Op::SetTimeouts { tcp, tcpfin, udp })
        }
        Cmd::AddDest | Cmd::EditDest | Cmd::DelDest => {
            let (addr, port) = e.server.unwrap_or((Ipv4Addr::UNSPECIFIED, None));
            // A server without a port takes the service's.
            let mut port = port.unwrap_or(e.service_port());
            if e.cmd == Cmd::DelDest {
                return done(Op::DelDest { service: e.key(), addr, port });
            }
            // DR and TUN cannot change the port (specs/ipvs.md §4.5).
            if e.fwmark.is_none() && matches!(e.method, Method::Route | Method::Tunnel) {
                port = e.service_port();
            }
            let tun_opts = [O_TUN_TYPE, O_TUN_PORT, O_TUN_NOCSUM, O_TUN_CSUM, O_TUN_REMCSUM];
            if tun_opts.iter().any(|&o| e.has(o)) && e.method != Method::Tunnel {
                return Err(CliError::fail("Tunnel options conflict with forward method"));
            }
            // tunnel_opt_check for ipip: every tunnel option but the type is illegal.
            if let Some(&o) = tun_opts[1..].iter().find(|&&o| e.has(o)) {
                return Err(CliError::fail(format!("Illegal '{}' option with the 'ipip' tunnel type", OPTNAMES[o])));
            }
            let dest = DestSpec {
                addr,
                port,
                method: e.method,
                weight: e.weight,
                u_threshold: e.u_threshold,
                l_threshold: e.l_threshold,
            };
            let service = e.key();
            done(if e.cmd == Cmd::AddDest { Op::AddDest { service, dest } } else { Op::EditDest { service, dest } })
        }
        Cmd::List => {
            let f = &e;
            if (f.has(O_CONNECTION) || f.has(O_TIMEOUT) || f.has(O_DAEMON))
                && (f.has(O_STATS) || f.has(O_RATE) || f.has(O_THRESHOLDS))
                || (f.has(O_TIMEOUT) || f.has(O_DAEMON)) && f.has(O_PERSISTENTCONN)
            {
                return Err(CliError::fail("options conflicts in the list command"));
            }
            let (what, service, view) = if e.has(O_CONNECTION) {
                (ListWhat::Conns, None, View::Conns { persistent_conn: e.format.persistent_conn })
            } else if e.has(O_SERVICE) {
                (ListWhat::Services, Some(e.key()), View::Services { format: e.format, one_service: true })
            } else if e.has(O_TIMEOUT) {
                (ListWhat::Timeouts, None, View::Timeouts)
            } else if e.has(O_DAEMON) {
                (ListWhat::Daemons, None, View::Daemons)
            } else {
                (ListWhat::Services, None, View::Services { format: e.format, one_service: false })
            };
            Ok(Command::Send { request: Request::new(Op::List { what, service }), view, json })
        }
        Cmd::Save => Ok(Command::Send {
            request: Request::new(Op::List { what: ListWhat::Services, service: None }),
            view: View::Save,
            json,
        }),
        Cmd::Restore => Ok(Command::Restore { json }),
        Cmd::StartDaemon => done(Op::StartDaemon(DaemonSpec {
            state: e.daemon_state.clone(),
            mcast_interface: e.mcast_ifn.clone().unwrap_or_else(|| DEF_MCAST_IFN.to_owned()),
            syncid: e.syncid,
            mcast_group: e.mcast_group,
            mcast_port: e.mcast_port,
            mcast_ttl: e.mcast_ttl,
            sync_maxlen: e.sync_maxlen,
        })),
        Cmd::StopDaemon => done(Op::StopDaemon { state: e.daemon_state.clone() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(line: &str) -> Vec<String> {
        std::iter::once("rvsadm").chain(line.split_whitespace()).map(str::to_owned).collect()
    }

    fn op(line: &str) -> Op {
        match parse(&argv(line)).map(|i| i.command) {
            Ok(Command::Send { request, .. }) => request.op,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn err(line: &str) -> (String, i32) {
        match parse(&argv(line)) {
            Err(e) => (e.message, e.exit_code),
            Ok(i) => panic!("{line}: unexpectedly parsed: {i:?}"),
        }
    }

    #[test]
    fn the_table_matches_ipvsadm_dimensions() {
        assert_eq!(CMDNAMES.len(), COMMANDS_V_OPTIONS.len());
        for row in COMMANDS_V_OPTIONS {
            assert!(row.iter().all(|c| b"x+1.".contains(c)));
        }
    }

    #[test]
    fn popt_clusters_and_glued_values() {
        assert_eq!(op("-lnc"), Op::List { what: ListWhat::Conns, service: None });
        assert_eq!(op("-At10.0.0.1:80 -srr"), op("--add-service --tcp-service=10.0.0.1:80 --scheduler rr"),);
        assert_eq!(op("-Ap -t 10.0.0.1:0"), op("-A -t 10.0.0.1:0 -p"));
        match op("-A -t 10.0.0.1:0 -p60") {
            Op::AddService(s) => assert_eq!(s.persistent, Some(60)),
            o => panic!("{o:?}"),
        }
        // An optional value is not taken from a word starting with '-'.
        match op("-A -t 10.0.0.1:0 -p -s rr") {
            Op::AddService(s) => assert_eq!((s.persistent, s.scheduler.as_str()), (Some(360), "rr")),
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn popt_errors() {
        assert_eq!(err("-L --bogus"), ("--bogus: unknown option".into(), 255));
        assert_eq!(err("-Lq"), ("-Lq: unknown option".into(), 255));
        assert_eq!(err("-A -t"), ("-t: missing argument".into(), 255));
        assert_eq!(err("-L --nosort=1"), ("--nosort=1: option does not take an argument".into(), 255));
        assert_eq!(err("-q").1, 255);
        assert_eq!(err("foo"), ("Try `rvsadm -h' or 'rvsadm --help' for more information.".into(), 255));
        assert_eq!(err("-L foo"), ("unexpected argument foo".into(), 2));
        assert_eq!(err("-A -a -t 10.0.0.1:80"), ("invalid option `-a'".into(), 2));
        assert_eq!(err("-L -h"), ("invalid option `-h'".into(), 2));
    }

    #[test]
    fn extras_anywhere() {
        let i = parse(&argv("--socket /tmp/s -Ln --json")).unwrap();
        assert_eq!(i.socket, Some(PathBuf::from("/tmp/s")));
        assert!(matches!(i.command, Command::Send { json: true, .. }));
        let i = parse(&argv("--socket=/x")).unwrap();
        assert_eq!(i.command, list_all(false));
        assert_eq!(i.socket_path(Some("/env")), PathBuf::from("/x"));
        let i = parse(&argv("-L")).unwrap();
        assert_eq!(i.socket_path(Some("/env")), PathBuf::from("/env"));
        assert_eq!(i.socket_path(None), PathBuf::from(crate::api::DEFAULT_SOCKET));
    }

    #[test]
    fn program_name_follows_argv0() {
        let mut a = argv("foo");
        a[0] = "/usr/sbin/ipvsadm".into();
        assert_eq!(err_of(&a).message, "Try `ipvsadm -h' or 'ipvsadm --help' for more information.");
    }

    fn err_of(a: &[String]) -> CliError {
        parse(a).err().unwrap()
    }

    #[test]
    fn number_is_strtol_like() {
        assert_eq!(number("42", 0, 100), Some(42));
        assert_eq!(number("", 0, 100), None);
        assert_eq!(number("4x", 0, 100), None);
        assert_eq!(number("101", 0, 100), None);
        assert_eq!(number("-1", 0, 100), None);
        assert_eq!(number("+5", 0, 100), Some(5));
    }
}
