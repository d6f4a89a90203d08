//! The rvs dataplane: everything a worker does to a packet, and the one module
//! (`dpdk`) that adapts DPDK's mbufs, ports and lcores to it.
//!
//! Invariants this crate keeps:
//! - Protocol code (`wire`, `checksum`, `fwd`, `worker`) is generic over
//!   [`buf::PacketBuf`] and never sees DPDK, so every rule is testable on a `Vec`.
//! - `unsafe` appears only in [`dpdk`]; every other module forbids it.
//! - The per-packet path allocates nothing, takes no lock, makes no syscall and
//!   cannot panic: every failure is a [`verdict::DropReason`] with a counter.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod buf;
pub mod checksum;
pub mod classify;
pub mod clock;
pub mod conn;
pub mod counters;
pub mod dpdk;
pub mod exception;
pub mod fwd;
pub mod hints;
pub mod lb;
pub use lb::sync as lb_sync; // ctl names dataplane::lb_sync (issue 14: switch it to lb::sync)
pub mod proto;
pub mod sched;
pub mod service;
pub mod snapshot;
pub mod sync;
pub mod verdict;
pub mod wire;
pub mod worker;
pub mod xmit;
