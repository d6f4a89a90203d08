//! Single-producer/single-consumer rings of mbufs between two workers
//! (`rte_ring` with SP/SC flags): how a worker hands a packet to the worker that
//! owns its flow, or to the worker that owns the egress queue.
use std::ffi::CString;
use std::ptr::NonNull;

use super::eal::EalError;
use super::mbuf::{MbufBatch, BURST};

const RING_F_SP_ENQ: u32 = 0x0001;
const RING_F_SC_DEQ: u32 = 0x0002;

struct RawRing(NonNull<dpdk_sys::rte_ring>);

// SAFETY: an SP/SC rte_ring is safe with one producer thread and one consumer
// thread; the split into RingProducer/RingConsumer (neither Clone) enforces that.
unsafe impl Send for RawRing {}
// SAFETY: as above; each half only calls its own side's functions.
unsafe impl Sync for RawRing {}

/// The sending half; only one worker holds it.
pub struct RingProducer(std::sync::Arc<RawRing>);
/// The receiving half; only one worker holds it.
pub struct RingConsumer(std::sync::Arc<RawRing>);

/// Creates a ring of `size` (a power of two) mbuf slots, split into its halves.
pub fn ring(name: &str, size: u32) -> Result<(RingProducer, RingConsumer), EalError> {
    let cname = CString::new(name).map_err(|_| EalError(format!("bad ring name {name:?}")))?;
    // SAFETY: valid NUL-terminated name; EAL is initialised; NULL on failure.
    let p = unsafe {
        dpdk_sys::rte_ring_create(cname.as_ptr(), size, dpdk_sys::rte_socket_id() as i32, RING_F_SP_ENQ | RING_F_SC_DEQ)
    };
    let raw = NonNull::new(p)
        .map(RawRing)
        .ok_or_else(|| EalError(format!("cannot create ring {name}: {}", super::last_error())))?;
    let raw = std::sync::Arc::new(raw);
    Ok((RingProducer(raw.clone()), RingConsumer(raw)))
}

impl RingProducer {
    /// Moves as many mbufs of `batch` as fit into the ring (in order); what did
    /// not fit stays in the batch. Returns how many moved.
    #[inline]
    pub fn enqueue(&self, batch: &mut MbufBatch) -> usize {
        let (ptrs, len) = batch.raw_parts();
        if *len == 0 {
            return 0;
        }
        // SAFETY: this is the ring's only producer; ptrs[..len] are owned mbufs
        // whose ownership passes to the ring for the first n.
        let n = unsafe {
            dpdk_sys::rvs_rte_ring_enqueue_burst((self.0).0.as_ptr(), ptrs as *const *mut std::ffi::c_void, *len as u32)
        } as usize;
        batch.consume_front(n);
        n
    }
}

impl RingConsumer {
    /// Takes up to the batch's free room of mbufs from the ring.
    #[inline]
    pub fn dequeue(&self, batch: &mut MbufBatch) -> usize {
        let (ptrs, len) = batch.raw_parts();
        let room = BURST - *len;
        if room == 0 {
            return 0;
        }
        // SAFETY: this is the ring's only consumer; ptrs[len..] is free room and
        // the batch takes ownership of what arrives.
        let n = unsafe {
            dpdk_sys::rvs_rte_ring_dequeue_burst(
                (self.0).0.as_ptr(),
                ptrs.add(*len) as *mut *mut std::ffi::c_void,
                room as u32,
            )
        } as usize;
        *len += n;
        n
    }
}
