//! The control protocol between rvsd and rvsadm: one JSON object per line over
//! the unix socket, a [`Request`] from the client and one [`Response`] back.
//! Defined once here so the daemon and the CLI can never drift apart.
//!
//! Versioned: every request carries [`PROTOCOL_VERSION`]; the daemon refuses
//! other versions with a clear error.
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

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
    Fwmark(u32),
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
    /// Persistence timeout in seconds.
    pub persistent: Option<u32>,
    /// Persistence netmask (255.255.255.255 when not given).
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
    pub weight: u32,
    pub u_threshold: u32,
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
        tcp: u32,
        tcpfin: u32,
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
}
