//! The rvs dataplane's logic: everything a worker decides about a packet,
//! with no DPDK in it. The DPDK side (EAL, ports, mbufs, the worker loop
//! shell, the exception thread and its taps) is the `dataplane-io` crate in
//! `dataplane/io/`, which drives this one.
//!
//! Invariants this crate keeps:
//! - Protocol code is generic over [`buf::PacketBuf`] and never sees DPDK, so
//!   every rule is testable on a `Vec`, and this crate builds and tests
//!   without libdpdk (`ctl` and `rvsadm` depend on it alone).
//! - No `unsafe`: forbidden at the root. CPU hints ([`hints`]) take references.
//! - The per-packet path allocates nothing, takes no lock, makes no syscall and
//!   cannot panic: every failure is a [`verdict::DropReason`] with a counter.
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod buf;
pub mod checksum;
pub mod classify;
pub mod clock;
pub mod conn;
pub mod counters;
pub mod exception;
pub mod fwd;
pub mod hints;
pub mod lb;
pub mod proto;
pub mod sched;
pub mod service;
pub mod snapshot;
pub mod sync;
pub mod verdict;
pub mod wire;
pub mod worker;
pub mod xmit;
