//! Ethernet ports: any device EAL probed (a vdev from `--vdev`, or a PCI NIC),
//! configured with one rx and one tx queue per worker where the device allows.
use std::ffi::CString;

use super::mbuf::{MbufBatch, BURST};
use super::mempool::Mempool;

const RX_OFFLOAD_TIMESTAMP: u64 = 1 << 14; // RTE_ETH_RX_OFFLOAD_TIMESTAMP
const RX_OFFLOAD_IPV4_CKSUM: u64 = 1 << 1; // RTE_ETH_RX_OFFLOAD_IPV4_CKSUM
const RX_DESC: u16 = 1024;
const TX_DESC: u16 = 1024;

/// What to open and how.
pub struct PortConfig<'a> {
    /// The config's port name (for messages).
    pub name: &'a str,
    /// The EAL device name: a vdev's name (`net_pcap0`) or a PCI address.
    pub dev_name: &'a str,
    pub mac: Option<[u8; 6]>,
    /// Queues wanted (one per worker); fewer are used when the device has fewer.
    pub queues: u16,
    /// Ask the PMD to stamp received packets (replay clock).
    pub rx_timestamp: bool,
}

/// A port could not be opened or configured.
#[derive(Debug)]
pub struct PortError(pub String);

impl std::fmt::Display for PortError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for PortError {}

/// A started port.
pub struct Port {
    pub id: u16,
    pub mac: [u8; 6],
    pub rx_queues: u16,
    pub tx_queues: u16,
    /// Whether the PMD stamps received packets.
    pub rx_timestamp: bool,
    /// The device checks IPv4 header checksums on receive.
    pub rx_ip_checksum: bool,
    /// Set when the device refused the configured MAC and promiscuous mode was
    /// enabled instead, so frames to that MAC still arrive.
    pub promiscuous_fallback: bool,
    handed_out: bool,
}

/// Port counters as the device keeps them (`rte_eth_stats_get`).
#[derive(Clone, Copy, Debug, Default)]
pub struct PortStats {
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    pub rx_nombuf: u64,
}

/// The receive side of one queue; only its owner (one worker) polls it.
pub struct RxQueue {
    pub port: u16,
    pub queue: u16,
}

/// The transmit side of one queue; only its owner (one worker) sends on it.
pub struct TxQueue {
    pub port: u16,
    pub queue: u16,
}

impl Port {
    /// Finds the device EAL probed under `dev_name`, configures and starts it.
    pub fn open(cfg: &PortConfig<'_>, pool: &Mempool) -> Result<Port, PortError> {
        let err = |what: &str, rc: i32| {
            PortError(format!("port \"{}\" (device {}): {what}: {}", cfg.name, cfg.dev_name, super::strerror(rc)))
        };
        let cname = CString::new(cfg.dev_name)
            .map_err(|_| PortError(format!("port \"{}\": device name contains NUL", cfg.name)))?;
        let mut id: u16 = 0;
        // SAFETY: cname is NUL-terminated; id is a valid out-pointer.
        let rc = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        if rc != 0 {
            return Err(PortError(format!(
                "port \"{}\": no device named {} was probed by EAL (check the device string and the EAL log above)",
                cfg.name, cfg.dev_name
            )));
        }
        let mut info = dpdk_sys::rte_eth_dev_info::default();
        // SAFETY: id names a probed port; info is a valid out-pointer.
        let rc = unsafe { dpdk_sys::rte_eth_dev_info_get(id, &mut info) };
        if rc != 0 {
            return Err(err("cannot read device info", rc));
        }
        let rxq = cfg.queues.min(info.max_rx_queues).max(1);
        let txq = cfg.queues.min(info.max_tx_queues).max(1);
        let rx_timestamp = cfg.rx_timestamp && info.rx_offload_capa & RX_OFFLOAD_TIMESTAMP != 0;

        let mut conf = dpdk_sys::rte_eth_conf::default();
        if rx_timestamp {
            conf.rxmode.offloads |= RX_OFFLOAD_TIMESTAMP;
        }
        // The device checks IPv4 header checksums where it can (the load
        // balancer then skips its own check, `PacketBuf::ip_checksum_verified`).
        let rx_ip_checksum = info.rx_offload_capa & RX_OFFLOAD_IPV4_CKSUM != 0;
        if rx_ip_checksum {
            conf.rxmode.offloads |= RX_OFFLOAD_IPV4_CKSUM;
        }
        // SAFETY: id is valid; conf is a fully initialised rte_eth_conf.
        let rc = unsafe { dpdk_sys::rte_eth_dev_configure(id, rxq, txq, &conf) };
        if rc != 0 {
            return Err(err("cannot configure", rc));
        }
        // SAFETY: id is valid.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(id) };
        let socket = if socket < 0 { 0 } else { socket as u32 };
        for q in 0..rxq {
            // SAFETY: id/q are valid after configure; NULL conf = driver defaults;
            // the pool outlives the port (both live until process exit).
            let rc =
                unsafe { dpdk_sys::rte_eth_rx_queue_setup(id, q, RX_DESC, socket, std::ptr::null(), pool.as_ptr()) };
            if rc != 0 {
                return Err(err(&format!("cannot set up rx queue {q}"), rc));
            }
        }
        for q in 0..txq {
            // SAFETY: id/q are valid after configure; NULL conf = driver defaults.
            let rc = unsafe { dpdk_sys::rte_eth_tx_queue_setup(id, q, TX_DESC, socket, std::ptr::null()) };
            if rc != 0 {
                return Err(err(&format!("cannot set up tx queue {q}"), rc));
            }
        }
        let mut promiscuous_fallback = false;
        if let Some(mac) = cfg.mac {
            let mut addr = dpdk_sys::rte_ether_addr { addr_bytes: mac };
            // SAFETY: id is valid; addr is a valid rte_ether_addr.
            let rc = unsafe { dpdk_sys::rte_eth_dev_default_mac_addr_set(id, &mut addr) };
            if rc != 0 {
                // SAFETY: id is valid.
                let rc = unsafe { dpdk_sys::rte_eth_promiscuous_enable(id) };
                if rc != 0 && rc != -(libc_enotsup()) {
                    return Err(err("cannot set the MAC address nor enable promiscuous mode", rc));
                }
                promiscuous_fallback = true;
            }
        }
        // SAFETY: id is valid and fully configured.
        let rc = unsafe { dpdk_sys::rte_eth_dev_start(id) };
        if rc != 0 {
            return Err(err("cannot start", rc));
        }
        let mac = match cfg.mac {
            Some(m) => m,
            None => {
                let mut addr = dpdk_sys::rte_ether_addr::default();
                // SAFETY: id is valid; addr is a valid out-pointer.
                let rc = unsafe { dpdk_sys::rte_eth_macaddr_get(id, &mut addr) };
                if rc != 0 {
                    return Err(err("cannot read the MAC address", rc));
                }
                addr.addr_bytes
            }
        };
        Ok(Port {
            id,
            mac,
            rx_queues: rxq,
            tx_queues: txq,
            rx_timestamp,
            rx_ip_checksum,
            promiscuous_fallback,
            handed_out: false,
        })
    }

    /// Every rx and tx queue, each handed out once (to the worker that will own it).
    pub fn take_queues(&mut self) -> Option<(Vec<RxQueue>, Vec<TxQueue>)> {
        if self.handed_out {
            return None;
        }
        self.handed_out = true;
        let rx = (0..self.rx_queues).map(|queue| RxQueue { port: self.id, queue }).collect();
        let tx = (0..self.tx_queues).map(|queue| TxQueue { port: self.id, queue }).collect();
        Some((rx, tx))
    }

    pub fn stats(&self) -> PortStats {
        port_stats(self.id)
    }

    /// Stops and closes the device (after every worker has returned).
    pub fn close(self) {
        // SAFETY: no lcore polls the port any more (workers were joined).
        unsafe {
            dpdk_sys::rte_eth_dev_stop(self.id);
            dpdk_sys::rte_eth_dev_close(self.id);
        }
    }
}

fn libc_enotsup() -> i32 {
    95 // ENOTSUP on Linux
}

impl RxQueue {
    /// Receives into the free tail of `batch`; returns how many arrived.
    #[inline]
    pub fn rx_burst(&self, batch: &mut MbufBatch) -> usize {
        let (ptrs, len) = batch.raw_parts();
        let room = BURST - *len;
        if room == 0 {
            return 0;
        }
        // SAFETY: this RxQueue is the only poller of (port, queue); ptrs[len..BURST]
        // is writable room in the batch, which takes ownership of what arrives.
        let n = unsafe { dpdk_sys::rvs_rte_eth_rx_burst(self.port, self.queue, ptrs.add(*len), room as u16) } as usize;
        *len += n;
        n
    }
}

impl TxQueue {
    /// Hands the batch to the device; what it took leaves the batch, the rest stays
    /// (in order) for the caller to retry or free. Returns how many were sent.
    #[inline]
    pub fn tx_burst(&self, batch: &mut MbufBatch) -> usize {
        let (ptrs, len) = batch.raw_parts();
        if *len == 0 {
            return 0;
        }
        // SAFETY: this TxQueue is the only sender on (port, queue); ptrs[..len] are
        // owned mbufs; the device takes ownership of the first n.
        let n = unsafe { dpdk_sys::rvs_rte_eth_tx_burst(self.port, self.queue, ptrs, *len as u16) } as usize;
        batch.consume_front(n);
        n
    }
}

/// A started port's device counters (`rte_eth_stats_get`); zeros for an
/// unknown port id. Safe from any thread: DPDK reads the counters without
/// touching the queues.
pub fn port_stats(id: u16) -> PortStats {
    let mut s = dpdk_sys::rte_eth_stats::default();
    // SAFETY: s is a valid out-pointer; DPDK validates the port id.
    let rc = unsafe { dpdk_sys::rte_eth_stats_get(id, &mut s) };
    if rc != 0 {
        return PortStats::default();
    }
    PortStats {
        ipackets: s.ipackets,
        opackets: s.opackets,
        ibytes: s.ibytes,
        obytes: s.obytes,
        imissed: s.imissed,
        ierrors: s.ierrors,
        oerrors: s.oerrors,
        rx_nombuf: s.rx_nombuf,
    }
}
