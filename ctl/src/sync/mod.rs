//! The connection sync daemon (specs/ipvs.md §5): the LVS wire formats
//! ([`wire`]), and the master and backup threads on kernel UDP multicast
//! sockets ([`daemon`]).
//!
//! Workers never see a socket: the master thread drains each worker's
//! lock-free `out` ring, the backup thread fills each worker's `into` ring
//! (`dataplane::sync`).
pub mod daemon;
pub mod wire;

pub use daemon::{SyncDaemon, SyncStats};
