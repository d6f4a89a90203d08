//! The validated configuration, as the rest of rvs sees it. Values here have
//! passed every check in `validate.rs`: names are unique, references resolve,
//! numbers are in range.

use std::net::Ipv4Addr;
use std::path::PathBuf;

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

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    pub dataplane: Dataplane,
    pub port: Vec<Port>,
    pub route: Vec<Route>,
    pub neighbor: Vec<Neighbor>,
    pub control: Control,
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
}

impl Default for Dataplane {
    fn default() -> Self {
        Dataplane { eal_args: Vec::new(), workers: 1, mbufs: DEFAULT_MBUFS, replay: false, poll_idle_us: 0 }
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
}

impl Default for Control {
    fn default() -> Self {
        Control { socket: PathBuf::from(DEFAULT_SOCKET), group: None }
    }
}
