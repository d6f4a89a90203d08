//! The one safe wrapper over DPDK (`dpdk-sys`): EAL, lcores, mempools, ports,
//! queues and mbufs. Every `unsafe` block of the dataplane lives in this module,
//! each with a `SAFETY:` comment. Protocol code never sees these types: an
//! [`Mbuf`] is handed to it as a [`crate::buf::PacketBuf`].
//!
//! Hot-path calls here are per burst (rx/tx burst, bulk free); per packet only
//! plain memory accesses to the mbuf header happen, never an FFI call.

mod eal;
mod mbuf;
mod mempool;
mod port;
mod ring;

pub mod acl;
pub use crate::hints::BURST;
pub use eal::{cleanup, init, launch_on, lcore_ids_for_workers, tsc_cycles, tsc_hz, wait_lcore, EalError};
pub use mbuf::{prefetch, Mbuf, MbufBatch, TimestampField};
pub use mempool::Mempool;
pub use port::{port_stats, Port, PortConfig, PortError, PortStats, RxQueue, TxQueue};
pub use ring::{ring, RingConsumer, RingProducer};

/// The text of DPDK's last error on this thread (`rte_strerror(rte_errno)`).
pub fn last_error() -> String {
    // SAFETY: rte_errno is a per-thread variable; reading it has no precondition.
    let errno = unsafe { dpdk_sys::rvs_rte_errno() };
    strerror(errno)
}

/// The text DPDK gives an error number (positive or negative).
pub fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a static or thread-local,
    // NUL-terminated string for any input.
    let p = unsafe { dpdk_sys::rte_strerror(errno.abs()) };
    if p.is_null() {
        return format!("error {errno}");
    }
    // SAFETY: p is non-null and NUL-terminated (see above).
    unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy().into_owned()
}
