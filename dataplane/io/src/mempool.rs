//! The packet-buffer pool shared by every port and worker.
use std::ffi::CString;
use std::ptr::NonNull;

use super::eal::EalError;

/// A DPDK pktmbuf pool. Lives for the whole process: EAL cleanup releases it.
pub struct Mempool(NonNull<dpdk_sys::rte_mempool>);

// SAFETY: rte_mempool is designed for concurrent use from every lcore (per-lcore
// caches plus a lock-free ring).
unsafe impl Send for Mempool {}
// SAFETY: as above.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Creates a pool of `n` mbufs with DPDK's default data room (2 KiB + headroom).
    pub fn new(name: &str, n: u32) -> Result<Self, EalError> {
        let cname = CString::new(name).map_err(|_| EalError(format!("bad mempool name {name:?}")))?;
        // SAFETY: called after EAL init with valid arguments; DPDK returns NULL on failure.
        let p = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(
                cname.as_ptr(),
                n,
                256,
                0,
                dpdk_sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16,
                dpdk_sys::rte_socket_id() as i32,
            )
        };
        NonNull::new(p).map(Mempool).ok_or_else(|| {
            EalError(format!(
                "cannot create a pool of {n} mbufs: {} (under --no-huge each mbuf takes a 4 KiB page: raise -m or lower [dataplane] mbufs)",
                super::last_error()
            ))
        })
    }

    pub(super) fn as_ptr(&self) -> *mut dpdk_sys::rte_mempool {
        self.0.as_ptr()
    }

    /// Mbufs currently free in the pool (approximate while workers run).
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is valid for the life of self.
        unsafe { dpdk_sys::rte_mempool_avail_count(self.0.as_ptr()) }
    }
}
