//! rvs's DPDK I/O: everything that touches DPDK, and the threads that move
//! packets between DPDK and the protocol logic of the `dataplane` crate.
//!
//! - The one safe wrapper over DPDK (`dpdk-sys`): EAL, lcores, mempools, ports,
//!   queues, rings and mbufs ([`Mbuf`] is handed to the logic as a
//!   [`dataplane::buf::PacketBuf`]). Every `unsafe` block of the dataplane lives
//!   in this crate, each with a `SAFETY:` comment; the logic crate forbids it.
//! - [`worker`]: the poll-mode worker loop shell (rx burst, hand-over, the
//!   logic's per-packet work, tx burst).
//! - [`exception`] and [`tap`]: the exception path thread and the kernel taps.
//! - [`plan`]: how rx/tx queues and rings are shared among workers, and
//!   [`plan::wire`], which builds the workers' setups from it.
//!
//! Hot-path calls here are per burst (rx/tx burst, bulk free); per packet only
//! plain memory accesses to the mbuf header happen, never an FFI call.

mod eal;
mod mbuf;
mod mempool;
mod port;
mod ring;

pub mod acl;
pub mod exception;
pub mod plan;
pub mod tap;
pub mod worker;

pub use dataplane::hints::BURST;
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
