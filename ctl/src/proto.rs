//! The control protocol between rvsd and rvsadm: one JSON object per line over
//! the unix socket, a [`Request`] from the client and one [`Response`] back.
//! Defined once here so the daemon and the CLI can never drift apart.
//!
//! Versioned: every request carries [`PROTOCOL_VERSION`]; the daemon refuses
//! other versions with a clear error.
//!
//! Numbers have ipvsadm's ranges on the wire (`conf::limits`): a weight is a
//! `u16`, and a request carrying a threshold, timeout, persistence timeout,
//! fwmark or netmask ipvsadm would refuse does not decode; the decoding error
//! is ipvsadm's text (see [`decode_request`]).
use std::net::Ipv4Addr;

use conf::limits::{self, Refusal};
use serde::{Deserialize, Deserializer, Serialize};

pub const PROTOCOL_VERSION: u32 = 1;
/// The largest request line the daemon reads (a restore of many rules fits).
pub const MAX_REQUEST_BYTES: usize = 16 << 20;
/// Where rvsadm looks for the socket unless `--socket` or `RVS_SOCKET` say otherwise.
pub const DEFAULT_SOCKET: &str = "/run/rvs/rvsd.sock";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

/// A virtual service's key (specs/ipvs.md §0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SvcKey {
    Addr { protocol: Protocol, vip: Ipv4Addr, port: u16 },
    Fwmark(#[serde(deserialize_with = "fwmark")] u32),
}

impl SvcKey {
    /// The same key in the configuration's model.
    pub fn to_conf(self) -> conf::ServiceAddr {
        match self {
            SvcKey::Addr { protocol, vip, port } => conf::ServiceAddr::Addr {
                protocol: match protocol {
                    Protocol::Tcp => conf::Protocol::Tcp,
                    Protocol::Udp => conf::Protocol::Udp,
                },
                vip,
                port,
            },
            SvcKey::Fwmark(m) => conf::ServiceAddr::Fwmark(m),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Masq,
    Route,
    Tunnel,
}

/// `ipvsadm -A/-E` options: a full description (-E replaces, §6.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    pub key: SvcKey,
    /// rr wrr lc wlc sed nq sh mh.
    pub scheduler: String,
    /// Persistence timeout in seconds, 1..=2678400.
    #[serde(default, deserialize_with = "persistent")]
    pub persistent: Option<u32>,
    /// Persistence netmask (255.255.255.255 when not given), contiguous.
    #[serde(deserialize_with = "netmask")]
    pub netmask: Ipv4Addr,
    /// `-b` flags by ipvsadm name (sh-fallback, sh-port, mh-fallback, mh-port, flag-1..3).
    pub flags: Vec<String>,
    /// `-o` one-packet scheduling.
    pub ops: bool,
}

/// `ipvsadm -a/-e` options: a full description (-e replaces, §6.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestSpec {
    pub addr: Ipv4Addr,
    pub port: u16,
    pub method: Method,
    #[serde(deserialize_with = "weight")]
    pub weight: u16,
    /// 0..=2147483647 (0: no limit).
    #[serde(deserialize_with = "u_threshold")]
    pub u_threshold: u32,
    /// 0..=2147483647.
    #[serde(deserialize_with = "l_threshold")]
    pub l_threshold: u32,
}

/// What `-L` lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListWhat {
    /// Services and their real servers (with counts, stats and rates).
    Services,
    /// The connection table (`-c`).
    Conns,
    /// `--timeout`.
    Timeouts,
    /// `--daemon`.
    Daemons,
}

/// Sync daemon parameters (`--start-daemon`, specs/ipvs.md §5, §6.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonSpec {
    /// "master" or "backup".
    pub state: String,
    pub mcast_interface: String,
    pub syncid: u8,
    pub mcast_group: Option<Ipv4Addr>,
    pub mcast_port: Option<u16>,
    pub mcast_ttl: Option<u8>,
    pub sync_maxlen: Option<u16>,
}

/// One operation. ipvsadm's commands first, then what ipvsadm lacks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    AddService(ServiceSpec),
    EditService(ServiceSpec),
    DelService(SvcKey),
    /// `-C`: remove every service.
    Clear,
    AddDest {
        service: SvcKey,
        dest: DestSpec,
    },
    EditDest {
        service: SvcKey,
        dest: DestSpec,
    },
    DelDest {
        service: SvcKey,
        addr: Ipv4Addr,
        port: u16,
    },
    /// `-Z [service]`.
    Zero(Option<SvcKey>),
    /// `--set tcp tcpfin udp` (0 = unchanged, §3.7).
    SetTimeouts {
        #[serde(deserialize_with = "set_timeout")]
        tcp: u32,
        #[serde(deserialize_with = "set_timeout")]
        tcpfin: u32,
        #[serde(deserialize_with = "set_timeout")]
        udp: u32,
    },
    /// `-R`: these operations, all or none (the first failure aborts, nothing applied).
    Batch(Vec<Op>),
    /// `-L` / `-l` (a single service when given).
    List {
        what: ListWhat,
        service: Option<SvcKey>,
    },
    StartDaemon(DaemonSpec),
    StopDaemon {
        state: String,
    },
    /// `rvsadm config check|reload|show`.
    ConfigCheck,
    ConfigReload,
    ConfigShow,
    /// `rvsadm mark ARGS`: iptables' command syntax on the mangle/PREROUTING
    /// MARK rules (-A -I -D -F -Z -L -S); the daemon parses the arguments.
    Mark(Vec<String>),
    /// Port counters and drop reasons.
    Ports,
    /// The neighbour table.
    Neighbors,
    /// `rvsadm sync`: the sync daemons and their counters (specs/ipvs.md §5).
    SyncStats,
    Version,
    /// `rvsadm health`: every checked real server and fallback.
    Health,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub version: u32,
    pub op: Op,
}

impl Request {
    pub fn new(op: Op) -> Request {
        Request { version: PROTOCOL_VERSION, op }
    }
}

/// Why a request line is refused before anything is done.
#[derive(Debug, PartialEq, Eq)]
pub struct Undecodable {
    /// ipvsadm's text for a value out of its range, otherwise `malformed
    /// request: ...`.
    pub message: String,
}

/// A request line (without its newline) as the daemon reads it. A value out
/// of ipvsadm's range is refused with ipvsadm's own text; anything else
/// that is not a request (not JSON, not UTF-8, unknown operation) is a
/// `malformed request`.
pub fn decode_request(line: &[u8]) -> Result<Request, Undecodable> {
    serde_json::from_slice::<Request>(line).map_err(|e| {
        let text = e.to_string();
        let at = format!(" at line {} column {}", e.line(), e.column());
        let bare = text.strip_suffix(at.as_str()).unwrap_or(&text);
        match bare.strip_prefix(REFUSED) {
            Some(why) => Undecodable { message: why.to_owned() },
            None => Undecodable { message: format!("malformed request: {text}") },
        }
    })
}

/// Marks a decoding error that is ipvsadm's refusal of a value (serde
/// carries only text through serde_json).
const REFUSED: &str = "\u{0}refused: ";

fn refused<E: serde::de::Error>(r: Refusal) -> E {
    E::custom(format_args!("{REFUSED}{r}"))
}

/// A JSON integer of any sign and size (`None` for one beyond 128 bits).
fn integer<'de, D: Deserializer<'de>>(d: D) -> Result<(Option<i128>, String), D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = (Option<i128>, String);
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an integer")
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok((Some(v.into()), v.to_string()))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok((Some(v.into()), v.to_string()))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok((None, v.to_string()))
        }
    }
    d.deserialize_any(V)
}

fn weight<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    limits::weight(integer(d)?.0).map_err(refused)
}

fn u_threshold<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    limits::u_threshold(integer(d)?.0).map_err(refused)
}

fn l_threshold<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    limits::l_threshold(integer(d)?.0).map_err(refused)
}

fn set_timeout<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let (n, written) = integer(d)?;
    limits::set_timeout(n, &written).map_err(refused)
}

fn fwmark<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let (n, written) = integer(d)?;
    limits::fwmark(n, &written).map_err(refused)
}

/// [`integer`] as a type, for optional fields.
struct Int(Option<i128>, String);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Int, D::Error> {
        integer(d).map(|(n, written)| Int(n, written))
    }
}

fn persistent<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    match Option::<Int>::deserialize(d)? {
        None => Ok(None),
        Some(Int(n, written)) => limits::persistent(n, &written).map(Some).map_err(refused),
    }
}

fn netmask<'de, D: Deserializer<'de>>(d: D) -> Result<Ipv4Addr, D::Error> {
    limits::netmask(Ipv4Addr::deserialize(d)?).map_err(refused)
}

/// Packet/byte/connection counters and their 2 s EWMA rates (specs §6.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
    pub cps: u64,
    pub inpps: u64,
    pub outpps: u64,
    pub inbps: u64,
    pub outbps: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestInfo {
    pub spec: DestSpec,
    pub activeconns: u32,
    pub inactconns: u32,
    pub persistconns: u32,
    pub stats: Stats,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    pub spec: ServiceSpec,
    /// Real servers in IPVS list order (most recently added first, §0); the CLI
    /// sorts them unless `--nosort`.
    pub dests: Vec<DestInfo>,
    pub stats: Stats,
}

/// One connection-table entry (`-Lc`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnInfo {
    /// "TCP", "UDP", or "IP" for fwmark templates.
    pub protocol: String,
    /// Seconds until expiry.
    pub expires: u32,
    /// ESTABLISHED, SYN_RECV, ..., UDP, NONE/ASSURED for templates.
    pub state: String,
    pub caddr: Ipv4Addr,
    pub cport: u16,
    /// For fwmark templates: the mark as an address (0.0.0.<mark>).
    pub vaddr: Ipv4Addr,
    pub vport: u16,
    pub daddr: Ipv4Addr,
    pub dport: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonInfo {
    pub spec: DaemonSpec,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortInfo {
    pub name: String,
    pub device: String,
    pub mac: String,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    pub rx_nombuf: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighborInfo {
    pub ip: Ipv4Addr,
    pub mac: String,
    pub port: String,
    /// "permanent" (from [[neighbor]]) or what ARP made of it: "reachable",
    /// "stale", "probe", "incomplete" (`ip neigh` words).
    pub state: String,
    /// Seconds since ARP last confirmed it (None for static entries).
    #[serde(default)]
    pub age_s: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    Ok,
    /// A refused operation: `message` is what ipvsadm would print (e.g. "Service
    /// not defined"), `exit_code` what it would exit with.
    Error {
        message: String,
        exit_code: i32,
    },
    /// `-L`: the connection-table size (the `size=` in the header) and services.
    Services {
        conn_tab_size: u32,
        services: Vec<ServiceInfo>,
    },
    Conns(Vec<ConnInfo>),
    Timeouts {
        tcp: u32,
        tcpfin: u32,
        udp: u32,
    },
    Daemons(Vec<DaemonInfo>),
    /// Counters: per port, then drop reasons with their counts.
    Ports {
        ports: Vec<PortInfo>,
        drops: Vec<(String, u64)>,
        /// The exception path's counters (ARP, kernel tap traffic).
        #[serde(default)]
        exception: Vec<(String, u64)>,
    },
    Neighbors(Vec<NeighborInfo>),
    /// Free text (config show/check, version).
    Text(String),
    /// `rvsadm health`.
    Health {
        servers: Vec<HealthInfo>,
        fallbacks: Vec<FallbackInfo>,
    },
}

/// One checked real server (specs/ipvs.md §7.3-7.4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthInfo {
    pub service: SvcKey,
    pub addr: Ipv4Addr,
    pub port: u16,
    /// `negotiate http`, `connect`, `external /path`, ...
    pub check: String,
    /// `up`, `down`, or `unknown` before the first result.
    pub state: String,
    /// What was done to the server: `active`, `quiesced` (weight 0),
    /// `removed`, or `maintenance` (forced down by maintenancedir).
    pub action: String,
    /// `ok` or `failed` (None before the first check).
    pub last_result: Option<String>,
    /// Why the last check ended as it did (`HTTP 200`, `connect: Connection refused`).
    pub reason: String,
    /// Duration of the last check, microseconds.
    pub latency_us: Option<u64>,
    /// Consecutive failures, and how many make the server down.
    pub failures: u32,
    pub failurecount: u32,
    /// Unix time (seconds) the state began.
    pub since: u64,
    /// Unix time (milliseconds) of the last result.
    pub last_check_ms: Option<u64>,
    pub checks_total: u64,
    pub failures_total: u64,
    pub transitions: u64,
}

/// A service's sorry server (`fallback`, specs/ipvs.md §7.4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FallbackInfo {
    pub service: SvcKey,
    pub addr: Ipv4Addr,
    pub port: u16,
    /// In the table now (every checked server of the service is down).
    pub active: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_as_one_json_line() {
        let r = Request::new(Op::AddDest {
            service: SvcKey::Addr { protocol: Protocol::Tcp, vip: Ipv4Addr::new(10, 0, 0, 1), port: 80 },
            dest: DestSpec {
                addr: Ipv4Addr::new(10, 0, 2, 11),
                port: 80,
                method: Method::Masq,
                weight: 3,
                u_threshold: 0,
                l_threshold: 0,
            },
        });
        let line = serde_json::to_string(&r).unwrap();
        assert!(!line.contains('\n'));
        assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), r);
    }

    #[test]
    fn values_out_of_ipvsadm_range_do_not_decode_and_say_why() {
        let dest = |w: &str, u: &str, l: &str| {
            format!(
                r#"{{"version":1,"op":{{"add_dest":{{"service":{{"fwmark":1}},"dest":{{"addr":"10.0.2.1","port":80,"method":"masq","weight":{w},"u_threshold":{u},"l_threshold":{l}}}}}}}}}"#
            )
        };
        let why = |line: &str| decode_request(line.as_bytes()).unwrap_err().message;
        assert!(decode_request(dest("65535", "2147483647", "0").as_bytes()).is_ok());
        for w in ["70000", "4294967295", "-1", "1.5", "18446744073709551616"] {
            assert_eq!(why(&dest(w, "0", "0")), "illegal weight specified", "{w}");
        }
        assert_eq!(why(&dest("1", "4294967295", "0")), "illegal u_threshold specified");
        assert_eq!(why(&dest("1", "0", "2147483648")), "illegal l_threshold specified");
        assert_eq!(
            why(r#"{"version":1,"op":{"set_timeouts":{"tcp":900,"tcpfin":4294967295,"udp":0}}}"#),
            "invalid timeout value `4294967295' specified"
        );
        assert_eq!(why(r#"{"version":1,"op":{"del_service":{"fwmark":0}}}"#), "invalid fwmark value `0' specified");
        let svc = |p: &str, m: &str| {
            format!(
                r#"{{"version":1,"op":{{"add_service":{{"key":{{"fwmark":1}},"scheduler":"rr","persistent":{p},"netmask":"{m}","flags":[],"ops":false}}}}}}"#
            )
        };
        assert!(decode_request(svc("null", "255.255.255.255").as_bytes()).is_ok());
        assert_eq!(why(&svc("0", "255.255.255.255")), "invalid timeout value `0' specified");
        assert_eq!(why(&svc("2678401", "255.255.255.255")), "invalid timeout value `2678401' specified");
        assert_eq!(
            why(&svc("60", "255.0.255.0")),
            "illegal virtual server persistent mask specified (rvs needs a contiguous mask such as 255.255.255.0)"
        );
        // Anything else is malformed, non-UTF-8 included.
        assert!(why("{nope").starts_with("malformed request: "));
        assert!(why("\"\u{0}refused: x\"").starts_with("malformed request: "));
        assert!(decode_request(b"{\"version\":1,\"op\":\"\xff\"}")
            .unwrap_err()
            .message
            .starts_with("malformed request: "));
    }
}
