//! The control protocol between rvsd and rvsadm: one JSON object per line over
//! the unix socket, a [`Request`] from the client and one [`Response`] back.
//! Defined once here so the daemon and the CLI can never drift apart.
//!
//! The service model is not repeated here: a service's key is
//! [`conf::ServiceAddr`] (with [`conf::Protocol`]), a real server's method is
//! [`conf::Method`] (the dataplane's too), and a connection-table entry is
//! the dataplane's own [`ConnDump`]. What stays here is what the protocol
//! says that the configuration does not (see [`ServiceSpec`], [`DestSpec`]).
//!
//! Versioned: every request carries [`PROTOCOL_VERSION`]; the daemon refuses
//! other versions with a clear error.
//!
//! Numbers have ipvsadm's ranges on the wire (`conf::limits`): a weight is a
//! `u16`, and a request carrying a threshold, timeout, persistence timeout,
//! fwmark or netmask ipvsadm would refuse does not decode; the decoding error
//! is ipvsadm's text (see [`decode_request`]).
use std::net::Ipv4Addr;

use conf::limits::de;
use conf::{Method, ServiceAddr};
use dataplane::conn::dump::ConnDump;
use serde::{Deserialize, Serialize};

pub const PROTOCOL_VERSION: u32 = 1;
/// The largest request line the daemon reads (a restore of many rules fits).
pub const MAX_REQUEST_BYTES: usize = 16 << 20;
/// Where rvsadm looks for the socket unless `--socket` or `RVS_SOCKET` say otherwise.
pub const DEFAULT_SOCKET: &str = "/run/rvs/rvsd.sock";

/// `ipvsadm -A/-E` options: a full description (-E replaces, §6.1).
///
/// Not [`conf::Service`]: a service as `-A`/`-E` send it and `-L` lists it
/// has no real servers (`-E` keeps the ones it has; `-L` lists them with
/// their counters in [`ServiceInfo::dests`]), and its numbers are checked
/// against ipvsadm's ranges as the request is decoded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    pub key: ServiceAddr,
    /// rr wrr lc wlc sed nq sh mh.
    pub scheduler: String,
    /// Persistence timeout in seconds, 1..=2678400.
    #[serde(default, deserialize_with = "de::persistent")]
    pub persistent: Option<u32>,
    /// Persistence netmask (255.255.255.255 when not given), contiguous.
    #[serde(deserialize_with = "de::netmask")]
    pub netmask: Ipv4Addr,
    /// `-b` flags by ipvsadm name (sh-fallback, sh-port, mh-fallback, mh-port, flag-1..3).
    pub flags: Vec<String>,
    /// `-o` one-packet scheduling.
    pub ops: bool,
}

/// `ipvsadm -a/-e` options: a full description (-e replaces, §6.1).
///
/// Not [`conf::Server`]: `port` is the one the client asked for (0, or a
/// port that route/tunnel cannot use, become the service's port only when
/// the daemon applies it to a service, specs/ipvs.md §4.5), and `weight` is
/// ipvsadm's `u16` so an out-of-range weight does not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestSpec {
    pub addr: Ipv4Addr,
    pub port: u16,
    pub method: Method,
    #[serde(deserialize_with = "de::weight")]
    pub weight: u16,
    /// 0..=2147483647 (0: no limit).
    #[serde(deserialize_with = "de::u_threshold")]
    pub u_threshold: u32,
    /// 0..=2147483647.
    #[serde(deserialize_with = "de::l_threshold")]
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
    DelService(ServiceAddr),
    /// `-C`: remove every service.
    Clear,
    AddDest {
        service: ServiceAddr,
        dest: DestSpec,
    },
    EditDest {
        service: ServiceAddr,
        dest: DestSpec,
    },
    DelDest {
        service: ServiceAddr,
        addr: Ipv4Addr,
        port: u16,
    },
    /// `-Z [service]`.
    Zero(Option<ServiceAddr>),
    /// `--set tcp tcpfin udp` (0 = unchanged, §3.7).
    SetTimeouts {
        #[serde(deserialize_with = "de::set_timeout")]
        tcp: u32,
        #[serde(deserialize_with = "de::set_timeout")]
        tcpfin: u32,
        #[serde(deserialize_with = "de::set_timeout")]
        udp: u32,
    },
    /// `-R`: these operations, all or none (the first failure aborts, nothing applied).
    Batch(Vec<Op>),
    /// `-L` / `-l` (a single service when given).
    List {
        what: ListWhat,
        service: Option<ServiceAddr>,
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
        match de::refusal(bare) {
            Some(why) => Undecodable { message: why.to_owned() },
            None => Undecodable { message: format!("malformed request: {text}") },
        }
    })
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
    Conns(Vec<ConnDump>),
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
    pub service: ServiceAddr,
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
    pub service: ServiceAddr,
    pub addr: Ipv4Addr,
    pub port: u16,
    /// In the table now (every checked server of the service is down).
    pub active: bool,
}

#[cfg(test)]
mod tests {
    use conf::Protocol;

    use super::*;

    #[test]
    fn requests_round_trip_as_one_json_line() {
        let r = Request::new(Op::AddDest {
            service: ServiceAddr::Addr { protocol: Protocol::Tcp, vip: Ipv4Addr::new(10, 0, 0, 1), port: 80 },
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
        // conf's types keep the wire shape the protocol had with its own copies.
        assert_eq!(
            line,
            r#"{"version":1,"op":{"add_dest":{"service":{"addr":{"protocol":"tcp","vip":"10.0.0.1","port":80}},"dest":{"addr":"10.0.2.11","port":80,"method":"masq","weight":3,"u_threshold":0,"l_threshold":0}}}}"#
        );
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
