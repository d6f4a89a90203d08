//! What a worker shares with the control side, and the per-round work the
//! worker loop (in the I/O crate, `dataplane_io::worker`) asks of the logic
//! between bursts: the connection listing and the stop signals.
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::lb::Lb;

/// One connection-table entry as the control side lists it (`ipvsadm -Lc`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnDump {
    /// "TCP", "UDP", or "IP" (fwmark templates).
    pub protocol: &'static str,
    pub state: &'static str,
    /// Seconds until it expires.
    pub expires: u32,
    pub caddr: std::net::Ipv4Addr,
    pub cport: u16,
    pub vaddr: std::net::Ipv4Addr,
    pub vport: u16,
    pub daddr: std::net::Ipv4Addr,
    pub dport: u16,
}

/// Requests from the control side that a worker serves between rounds.
pub struct WorkerCtl {
    /// Set by the control side: list your connections on `dumps`.
    pub dump_requested: AtomicBool,
    pub dumps: std::sync::mpsc::SyncSender<(usize, Vec<ConnDump>)>,
    /// This worker's end of the sync daemon (specs/ipvs.md §5, `sync.rs`).
    pub sync: Arc<crate::sync::SyncPort>,
}

impl WorkerCtl {
    pub fn new(
        dumps: std::sync::mpsc::SyncSender<(usize, Vec<ConnDump>)>,
        sync_params: Arc<crate::sync::SyncParams>,
    ) -> WorkerCtl {
        WorkerCtl {
            dump_requested: AtomicBool::new(false),
            dumps,
            sync: Arc::new(crate::sync::SyncPort::new(crate::sync::RING_RECORDS, sync_params)),
        }
    }
}

/// Stop signals from the control side: first stop reading the ports (drain
/// what is in flight), then stop.
#[derive(Default)]
pub struct Stop {
    pub rx: AtomicBool,
    pub all: AtomicBool,
}

/// The worker's connection table as the control side lists it.
pub fn dump(lb: &Lb, now: u32) -> Vec<ConnDump> {
    use crate::conn::TEMPLATE_ASSURED;
    lb.conns
        .iter()
        .map(|(_, c)| {
            let protocol = match c.proto {
                6 => "TCP",
                17 => "UDP",
                _ => "IP",
            };
            let state = if c.is_template() {
                if c.state == TEMPLATE_ASSURED {
                    "ASSURED"
                } else {
                    "NONE"
                }
            } else if c.proto == 6 {
                c.tcp_state().name()
            } else {
                crate::proto::udp::STATE_NAME
            };
            ConnDump {
                protocol,
                state,
                expires: c.expires.saturating_sub(now),
                caddr: c.caddr,
                cport: c.cport,
                vaddr: c.vaddr,
                vport: c.vport,
                daddr: c.daddr,
                dport: c.dport,
            }
        })
        .collect()
}
