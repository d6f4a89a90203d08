//! The validated configuration, as the rest of rvs sees it. Values here have
//! passed every check in `validate.rs`: names are unique, references resolve,
//! numbers are in range.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::device::Device;
use crate::types::{Ipv4Cidr, Ipv4Prefix, MacAddr};

/// Default control socket path.
pub const DEFAULT_SOCKET: &str = "/run/rvs/rvsd.sock";
/// Default number of mbufs in the packet pool.
pub const DEFAULT_MBUFS: u32 = 16384;
/// Fewest mbufs accepted.
pub const MIN_MBUFS: u32 = 1024;
/// Most workers accepted.
pub const MAX_WORKERS: u16 = 64;
/// Longest port name: the kernel's interface name limit (IFNAMSIZ - 1), so a
/// port's tap interface can carry the same name.
pub const MAX_PORT_NAME: usize = 15;
/// Default connection-table capacity of each worker.
pub const DEFAULT_CONNS_PER_WORKER: u32 = 262_144;
/// Smallest `conns_per_worker` accepted.
pub const MIN_CONNS_PER_WORKER: u32 = 1024;
/// Largest `conns_per_worker` accepted (2^24).
pub const MAX_CONNS_PER_WORKER: u32 = 16_777_216;
/// Persistence timeout of ipvsadm's bare `-p` (`IPVS_SVC_PERSISTENT_TIMEOUT`,
/// specs/ipvs.md §2.5).
pub const DEFAULT_PERSISTENT_TIMEOUT: u32 = 360;
/// ipvsadm's `MAX_TIMEOUT` (31 days): the upper bound of `-p` and `--set`.
pub const MAX_TIMEOUT: u32 = 2_678_400;
/// ipvsadm's default scheduler (specs/ipvs.md §6.1).
pub const DEFAULT_SCHEDULER: &str = "wlc";
/// The schedulers rvs implements, by their IPVS names.
pub const SCHEDULERS: &[&str] = &["rr", "wrr", "lc", "wlc", "sed", "nq", "sh", "mh"];
/// Largest `-x`/`-y` threshold ipvsadm accepts (INT_MAX).
pub const MAX_THRESHOLD: u32 = i32::MAX as u32;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    pub dataplane: Dataplane,
    pub port: Vec<Port>,
    pub route: Vec<Route>,
    pub neighbor: Vec<Neighbor>,
    pub control: Control,
    pub metrics: Metrics,
    /// `[fwmark] rules`: iptables mangle/PREROUTING MARK rules, in order.
    pub fwmark: Vec<crate::iptables::MarkRule>,
    pub ipvs: Ipvs,
    /// `[sync]`: the connection sync daemon (specs/ipvs.md §5, §9).
    pub sync: Sync,
    /// `[health]` and every `[service.health]` (specs/ipvs.md §7).
    pub health: crate::health::Health,
    /// Virtual services: the `[[service]]` tables in file order, then (after
    /// `load`) those of the `[ipvs] rules` file in file order.
    pub service: Vec<Service>,
}

impl Config {
    /// Index into `port` of the port called `name`.
    pub fn port_index(&self, name: &str) -> Option<usize> {
        self.port.iter().position(|p| p.name == name)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataplane {
    /// Extra EAL arguments, passed before the `--vdev`s rvsd adds for ports.
    pub eal_args: Vec<String>,
    /// Worker lcores, 1..=64.
    pub workers: u16,
    /// Mbufs in the packet pool, at least 1024.
    pub mbufs: u32,
    /// pcap replay mode: every port reads rx_pcap files, time comes from the
    /// packets, and rvsd exits when the input is consumed.
    pub replay: bool,
    /// 0: busy poll. Otherwise a worker that found no packet in a whole round
    /// sleeps this many microseconds (for shared test machines).
    pub poll_idle_us: u32,
    /// Connection-table capacity of each worker (preallocated),
    /// 1024..=16777216.
    pub conns_per_worker: u32,
    /// Flows are owned by workers by a hash of the client address masked to
    /// this prefix length (1..=32), so every connection and persistence
    /// template of one client lives on one worker. rvsd widens it at start to
    /// the widest netmask of the persistent services configured then, and
    /// keeps it while it runs (changing it would move flows between
    /// workers): set it to the widest netmask you will ever use with `-M`.
    pub owner_prefix: u8,
}

impl Default for Dataplane {
    fn default() -> Self {
        Dataplane {
            eal_args: Vec::new(),
            workers: 1,
            mbufs: DEFAULT_MBUFS,
            replay: false,
            poll_idle_us: 0,
            conns_per_worker: DEFAULT_CONNS_PER_WORKER,
            owner_prefix: 32,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    /// Unique, 1..=15 characters of [A-Za-z0-9_.-].
    pub name: String,
    /// A PCI address (`0000:03:00.0`) or DPDK vdev arguments
    /// (`net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap`), passed to DPDK as is.
    pub device: String,
    /// Overrides the device's MAC; unicast.
    pub mac: Option<MacAddr>,
    /// The box's own addresses on this port.
    pub addresses: Vec<Ipv4Cidr>,
    /// Whether the port has a kernel exception path (a tap interface with the
    /// port's MAC and addresses; live mode only). Default true.
    pub kernel: bool,
    /// The tap interface's name; default the port's name.
    pub tap: String,
}

impl Port {
    /// The `rx_pcap=` file paths of a net_pcap vdev (one per rx queue),
    /// empty for any other device.
    pub fn rx_pcaps(&self) -> Vec<PathBuf> {
        Device::parse(&self.device).rx_pcaps()
    }

    /// The device string split into name and arguments.
    pub fn device_info(&self) -> Device<'_> {
        Device::parse(&self.device)
    }

    /// Whether the device is a PCI address rather than a vdev.
    pub fn is_pci(&self) -> bool {
        Device::parse(&self.device).pci
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub prefix: Ipv4Prefix,
    /// Next hop, inside one of the port's subnets; `None` = on-link.
    pub via: Option<Ipv4Addr>,
    /// Name of an existing port.
    pub port: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbor {
    pub ip: Ipv4Addr,
    /// Unicast.
    pub mac: MacAddr,
    /// Name of an existing port.
    pub port: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Control {
    /// Unix socket rvsadm connects to.
    pub socket: PathBuf,
    /// Group that owns the socket (mode 0660); `None`: root only (0600).
    pub group: Option<String>,
    /// Clients served at once, 1..=MAX_CONTROL_CLIENTS.
    pub max_clients: u32,
    /// Seconds a client may take to send a whole request (or to read a
    /// reply) before rvsd closes its connection, 1..=MAX_IDLE_TIMEOUT.
    pub idle_timeout: u32,
}

/// Default `[control] max_clients`.
pub const DEFAULT_CONTROL_CLIENTS: u32 = 16;
/// Largest `[control] max_clients`.
pub const MAX_CONTROL_CLIENTS: u32 = 1024;
/// Default `[control] idle_timeout`, seconds.
pub const DEFAULT_IDLE_TIMEOUT: u32 = 60;
/// Largest `[control] idle_timeout`, seconds.
pub const MAX_IDLE_TIMEOUT: u32 = 3600;

impl Default for Control {
    fn default() -> Self {
        Control {
            socket: PathBuf::from(DEFAULT_SOCKET),
            group: None,
            max_clients: DEFAULT_CONTROL_CLIENTS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// The `[metrics]` table: where rvsd serves Prometheus text metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metrics {
    /// `None` (the default): no metrics endpoint. Never port 0, so scrapers
    /// can be pointed at a known address.
    pub listen: Option<SocketAddr>,
}

/// The `[ipvs]` table: IPVS sysctls (specs/ipvs.md §9) with the kernel's
/// defaults, and an optional ipvsadm rules file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipvs {
    /// An `ipvsadm -S` / `ipvsadm -R` file loaded at start. `parse` keeps it
    /// as written; `load` resolves a relative path against the config file's
    /// directory and merges its services into `Config::service`.
    pub rules: Option<PathBuf>,
    pub expire_nodest_conn: bool,
    pub expire_quiescent_template: bool,
    /// 0..=3, bit flags (specs/ipvs.md §3.3).
    pub conn_reuse_mode: u8,
    pub sloppy_tcp: bool,
    pub nat_icmp_send: bool,
    pub pmtu_disc: bool,
    pub timeouts: Timeouts,
}

impl Default for Ipvs {
    fn default() -> Self {
        Ipvs {
            rules: None,
            expire_nodest_conn: false,
            expire_quiescent_template: false,
            conn_reuse_mode: 1,
            sloppy_tcp: false,
            nat_icmp_send: false,
            pmtu_disc: true,
            timeouts: Timeouts::default(),
        }
    }
}

/// The `[sync]` table: the sync sysctls (specs/ipvs.md §5.4, §9) with the
/// kernel's defaults, rvs's resync sweep, and sync daemons to start at boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sync {
    /// `sync_version`: 0 or 1 (the format a master sends).
    pub version: u8,
    /// `sync_threshold`, first value.
    pub threshold: u32,
    /// `sync_threshold`, second value (the period; 0 = sync once).
    pub period: u32,
    pub persist_mode: bool,
    pub backup_only: bool,
    /// rvs extension: seconds per full-table resync sweep of a master (0 = off).
    pub resync_period: u32,
    pub master: Option<SyncDaemon>,
    pub backup: Option<SyncDaemon>,
}

impl Default for Sync {
    fn default() -> Self {
        Sync {
            version: 1,
            threshold: 3,
            period: 50,
            persist_mode: false,
            backup_only: false,
            resync_period: DEFAULT_RESYNC_PERIOD,
            master: None,
            backup: None,
        }
    }
}

/// Default of `[sync] resync_period` (seconds).
pub const DEFAULT_RESYNC_PERIOD: u32 = 30;

/// A sync daemon started at boot (`ipvsadm --start-daemon` options, §6.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncDaemon {
    pub interface: String,
    pub syncid: u8,
    pub group: Option<Ipv4Addr>,
    pub port: Option<u16>,
    pub ttl: Option<u8>,
    pub maxlen: Option<u16>,
}

/// `ipvsadm --set tcp tcpfin udp` (specs/ipvs.md §3.7): the effective
/// ESTABLISHED, FIN_WAIT and UDP timeouts in seconds. A 0 in the file keeps
/// the default, so these are never 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp: u32,
    pub tcpfin: u32,
    pub udp: u32,
}

impl Timeouts {
    /// The kernel's defaults (specs/ipvs.md §3.5).
    pub const DEFAULT: Timeouts = Timeouts { tcp: 900, tcpfin: 120, udp: 300 };
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts::DEFAULT
    }
}

/// A virtual service's transport protocol. On the control socket it is
/// `"tcp"` or `"udp"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// The IP protocol number (IPPROTO_TCP, IPPROTO_UDP).
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }

    /// "tcp" or "udp", as written in the config file.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// A virtual service's key (specs/ipvs.md §0): protocol + VIP + port, or a
/// firewall mark. IPv4 only. On the control socket it is
/// `{"addr":{"protocol":"tcp","vip":"10.0.0.1","port":80}}` or
/// `{"fwmark":1}`; a mark ipvsadm would refuse does not decode
/// ([`crate::limits::de`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceAddr {
    /// `port` 0 is an all-ports service (only valid with persistence).
    Addr { protocol: Protocol, vip: Ipv4Addr, port: u16 },
    /// 1..=u32::MAX.
    Fwmark(#[serde(deserialize_with = "crate::limits::de::fwmark")] u32),
}

impl ServiceAddr {
    /// The key ipvsadm sorts services by (`libipvs.c ipvs_cmp_services`):
    /// fwmark (0 for address services, so fwmark services come last),
    /// protocol number, address, port.
    pub fn sort_key(&self) -> (u32, u8, u32, u16) {
        match *self {
            ServiceAddr::Addr { protocol, vip, port } => (0, protocol.number(), u32::from(vip), port),
            // ipvsadm sets the protocol of fwmark services to TCP.
            ServiceAddr::Fwmark(m) => (m, Protocol::Tcp.number(), 0, 0),
        }
    }

    /// The service port; 0 for fwmark services.
    pub fn port(&self) -> u16 {
        match *self {
            ServiceAddr::Addr { port, .. } => port,
            ServiceAddr::Fwmark(_) => 0,
        }
    }
}

impl fmt::Display for ServiceAddr {
    /// `tcp 10.0.0.1:80` or `fwmark 10`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceAddr::Addr { protocol, vip, port } => write!(f, "{} {vip}:{port}", protocol.name()),
            ServiceAddr::Fwmark(m) => write!(f, "fwmark {m}"),
        }
    }
}

/// Forwarding method of a real server (specs/ipvs.md §4): the one model of
/// it, shared by the config file, the control protocol and the dataplane.
/// The discriminants are the kernel's flag values (`IP_VS_CONN_F_MASQ`,
/// `_TUNNEL`, `_DROUTE`, specs/ipvs.md §3.8), which connections and sync
/// messages carry. On the control socket it is `"masq"`, `"route"` or
/// `"tunnel"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum Method {
    /// NAT (`-m`).
    Masq = 0,
    /// IPIP tunnel (`-i`).
    Tunnel = 2,
    /// Direct routing (`-g`, ipvsadm's default).
    #[default]
    Route = 3,
}

impl Method {
    /// The word `ipvsadm -L` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Masq => "Masq",
            Method::Tunnel => "Tunnel",
            Method::Route => "Route",
        }
    }
}

/// A virtual service. Invariants (checked for both the TOML file and rules
/// files): `scheduler` is one of [`SCHEDULERS`]; an address service with
/// port 0 is persistent; `ops` only on UDP or fwmark services; `netmask` is
/// contiguous and is 255.255.255.255 unless persistent; `flags` are valid for
/// the scheduler; server address:port pairs are unique.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub addr: ServiceAddr,
    pub scheduler: String,
    /// Persistence timeout in seconds, 1..=2678400.
    pub persistent: Option<u32>,
    /// Persistence granularity; 255.255.255.255 by default.
    pub netmask: Ipv4Addr,
    /// ipvsadm `-b` names in canonical form: deduplicated, in bit order, and
    /// named as ipvsadm prints them for the scheduler (`flag-1` on sh is
    /// `sh-fallback`, `flag-2` on mh is `mh-port`, ...).
    pub flags: Vec<String>,
    /// One-packet scheduling.
    pub ops: bool,
    /// In the order written (not IPVS list order, which is the reverse:
    /// specs/ipvs.md §0).
    pub servers: Vec<Server>,
}

/// `IP_VS_SVC_F_SCHED1..3` (include/uapi/linux/ip_vs.h).
pub const SVC_F_SCHED1: u32 = 0x0008;
pub const SVC_F_SCHED2: u32 = 0x0010;
pub const SVC_F_SCHED3: u32 = 0x0020;

impl Service {
    /// The netmask as a prefix length (the netmask is contiguous).
    pub fn netmask_len(&self) -> u8 {
        // At most 32, so the cast cannot truncate.
        u32::from(self.netmask).leading_ones() as u8
    }

    /// `flags` as `IP_VS_SVC_F_SCHED*` bits: sh-fallback and mh-fallback are
    /// SCHED1, sh-port and mh-port SCHED2.
    pub fn flag_bits(&self) -> u32 {
        self.flags.iter().filter_map(|f| crate::service::flag_bit(f)).fold(0, |a, b| a | b)
    }
}

/// A real server (IPVS destination) of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Server {
    pub addr: Ipv4Addr,
    /// The effective port: for an address service, a missing or 0 port is
    /// the service port, and route/tunnel servers always have the service
    /// port (specs/ipvs.md §4.5). 0 only on fwmark and port-0 services,
    /// where it means "keep the client's destination port".
    pub port: u16,
    pub method: Method,
    /// 0..=65535.
    pub weight: u32,
    /// 0 = no limit; 0..=2147483647.
    pub u_threshold: u32,
    /// 0..=u_threshold.
    pub l_threshold: u32,
}
