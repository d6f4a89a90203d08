//! Owned mbufs and fixed-size batches of them.
//!
//! [`Mbuf`] owns one packet buffer and implements [`PacketBuf`]; [`MbufBatch`]
//! owns up to [`BURST`] of them and frees what it still holds in bulk. Ownership
//! moves between the two without FFI calls; only rx/tx bursts and bulk frees
//! cross into DPDK.
use std::ptr::NonNull;

use dataplane::buf::PacketBuf;
pub use dataplane::hints::BURST;

/// One owned single-segment mbuf. Dropping it frees it (a slow path: the
/// forwarding loop moves mbufs into batches and frees those in bulk).
pub struct Mbuf(NonNull<dpdk_sys::rte_mbuf>);

// SAFETY: an Mbuf is the only owner of its buffer; mbufs may be freed from any lcore.
unsafe impl Send for Mbuf {}

impl Mbuf {
    fn raw(&self) -> &dpdk_sys::rte_mbuf {
        // SAFETY: self owns a valid mbuf for its whole life.
        unsafe { self.0.as_ref() }
    }

    fn raw_mut(&mut self) -> &mut dpdk_sys::rte_mbuf {
        // SAFETY: self owns a valid mbuf and we hold &mut self.
        unsafe { self.0.as_mut() }
    }

    fn into_raw(self) -> *mut dpdk_sys::rte_mbuf {
        let p = self.0.as_ptr();
        std::mem::forget(self);
        p
    }

    /// The DPDK port id the packet arrived on (or, once handed to another
    /// worker for transmission, the egress port index set by [`Mbuf::set_port`]).
    #[inline]
    pub fn port(&self) -> u16 {
        self.raw().port
    }

    #[inline]
    pub fn set_port(&mut self, port: u16) {
        self.raw_mut().port = port;
    }

    /// A word the dataplane passes between its own stages with the packet
    /// (the next hop a packet waits for on the exception path; the firewall
    /// mark of a packet handed to the worker that owns its flow). Kept in
    /// `packet_type`, which no stage reads.
    #[inline]
    pub fn tag(&self) -> u32 {
        // SAFETY: packet_type is a plain u32 view of the union.
        unsafe { self.raw().__bindgen_anon_1.packet_type }
    }

    #[inline]
    pub fn set_tag(&mut self, tag: u32) {
        self.raw_mut().__bindgen_anon_1.packet_type = tag;
    }

    /// A fresh mbuf holding a copy of `bytes` (the exception path's packets
    /// from the kernel); None when the pool is empty or `bytes` does not fit.
    pub fn from_bytes(pool: &super::Mempool, bytes: &[u8]) -> Option<Mbuf> {
        // SAFETY: the pool is valid; a NULL return means empty.
        let p = NonNull::new(unsafe { dpdk_sys::rvs_rte_pktmbuf_alloc(pool.as_ptr()) })?;
        let mut m = Mbuf(p);
        let room = {
            let r = m.raw();
            usize::from(r.buf_len) - usize::from(r.data_off)
        };
        if bytes.len() > room {
            return None;
        }
        {
            let r = m.raw_mut();
            r.data_len = bytes.len() as u16;
            r.pkt_len = bytes.len() as u32;
        }
        m.data_mut().copy_from_slice(bytes);
        Some(m)
    }

    /// Segments in this packet; the dataplane handles only 1 (no scatter on rx).
    pub fn nb_segs(&self) -> u16 {
        self.raw().nb_segs
    }

    /// The receive timestamp a PMD stored in the mbuf's dynamic field, if any.
    #[inline]
    pub fn rx_timestamp(&self, field: &TimestampField) -> Option<u64> {
        if self.raw().ol_flags & field.flag == 0 {
            return None;
        }
        let base = self.0.as_ptr() as *const u8;
        // SAFETY: EAL registered the dynamic field at `offset` inside struct
        // rte_mbuf (it lies within the mbuf's 128-byte header), 8 bytes, and the
        // flag says the PMD wrote it; read unaligned to make no assumption.
        Some(unsafe { std::ptr::read_unaligned(base.add(field.offset) as *const u64) })
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf; after this nobody refers to it.
        unsafe { dpdk_sys::rvs_rte_pktmbuf_free(self.0.as_ptr()) }
    }
}

impl PacketBuf for Mbuf {
    /// The RX IPv4 checksum flags a device with `RTE_ETH_RX_OFFLOAD_IPV4_CKSUM`
    /// sets; a device without it leaves them UNKNOWN (0).
    #[inline]
    fn ip_checksum_verified(&self) -> Option<bool> {
        match self.raw().ol_flags & u64::from(dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_MASK) {
            f if f == u64::from(dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_GOOD) => Some(true),
            f if f == u64::from(dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_BAD) => Some(false),
            _ => None,
        }
    }

    #[inline]
    fn data(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: buf_addr + data_off .. + data_len lies inside the mbuf's data room
        // (DPDK's invariant for a valid mbuf); we own it, so no one writes meanwhile.
        unsafe { std::slice::from_raw_parts((m.buf_addr as *const u8).add(m.data_off as usize), m.data_len as usize) }
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        let m = self.raw_mut();
        // SAFETY: as in data(); &mut self makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut((m.buf_addr as *mut u8).add(m.data_off as usize), m.data_len as usize) }
    }

    #[inline]
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        let m = self.raw_mut();
        if n > m.data_off as usize {
            return None;
        }
        m.data_off -= n as u16;
        m.data_len += n as u16;
        m.pkt_len += n as u32;
        Some(&mut self.data_mut()[..n])
    }

    #[inline]
    fn adj(&mut self, n: usize) -> bool {
        let m = self.raw_mut();
        if n > m.data_len as usize {
            return false;
        }
        m.data_off += n as u16;
        m.data_len -= n as u16;
        m.pkt_len -= n as u32;
        true
    }

    #[inline]
    fn trim_to(&mut self, len: usize) -> bool {
        let m = self.raw_mut();
        if len > m.data_len as usize {
            return false;
        }
        let cut = m.data_len as usize - len;
        m.data_len = len as u16;
        m.pkt_len -= cut as u32;
        true
    }

    #[inline]
    fn headroom(&self) -> usize {
        self.raw().data_off as usize
    }
}

/// Where the PMD stores rx timestamps (`rte_mbuf_dyn_rx_timestamp_register`).
#[derive(Clone, Copy, Debug)]
pub struct TimestampField {
    offset: usize,
    flag: u64,
}

impl TimestampField {
    /// Registers (or looks up) the rx timestamp dynamic field. Call after EAL init.
    pub fn register() -> Option<Self> {
        let mut offset: i32 = -1;
        let mut flag: u64 = 0;
        // SAFETY: both out-pointers are valid for the call.
        let rc = unsafe { dpdk_sys::rvs_timestamp_dynfield_register(&mut offset, &mut flag) };
        let size = std::mem::size_of::<dpdk_sys::rte_mbuf>();
        (rc == 0 && offset >= 0 && (offset as usize) + 8 <= size)
            .then_some(TimestampField { offset: offset as usize, flag })
    }
}

/// Up to [`BURST`] owned mbufs; whatever it holds when dropped is freed in bulk.
pub struct MbufBatch {
    ptrs: [*mut dpdk_sys::rte_mbuf; BURST],
    len: usize,
}

// SAFETY: the batch owns its mbufs exclusively (see Mbuf).
unsafe impl Send for MbufBatch {}

impl Default for MbufBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl MbufBatch {
    pub const fn new() -> Self {
        MbufBatch { ptrs: [std::ptr::null_mut(); BURST], len: 0 }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_full(&self) -> bool {
        self.len == BURST
    }

    /// Adds `m`; gives it back when the batch is full.
    #[inline]
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        if self.len == BURST {
            return Err(m);
        }
        self.ptrs[self.len] = m.into_raw();
        self.len += 1;
        Ok(())
    }

    /// Takes every mbuf out, in order.
    #[inline]
    pub fn drain(&mut self) -> Drain<'_> {
        let len = std::mem::replace(&mut self.len, 0);
        Drain { batch: self, next: 0, len }
    }

    /// Prefetches the first cache line of each mbuf's packet data.
    #[inline]
    pub fn prefetch_data(&self) {
        for &p in &self.ptrs[..self.len] {
            // SAFETY: p is a valid owned mbuf; reading its header is allowed.
            let m = unsafe { &*p };
            let addr = (m.buf_addr as *const u8).wrapping_add(m.data_off as usize);
            prefetch(addr);
        }
    }

    /// The data of each mbuf held, in order (read-only).
    #[inline]
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.ptrs[..self.len].iter().map(|&p| {
            // SAFETY: p is a valid single-segment mbuf owned by this batch; its
            // data lies at buf_addr + data_off for data_len bytes, and the
            // shared borrow of the batch keeps anyone from writing it.
            unsafe {
                let m = &*p;
                std::slice::from_raw_parts((m.buf_addr as *const u8).add(m.data_off as usize), m.data_len as usize)
            }
        })
    }

    /// The packet length of each mbuf held, in order.
    #[inline]
    pub fn iter_lens(&self) -> impl Iterator<Item = u32> + '_ {
        self.ptrs[..self.len].iter().map(|&p| {
            // SAFETY: p is a valid mbuf owned by this batch; reading its header is allowed.
            unsafe { (*p).pkt_len }
        })
    }

    /// Frees everything held, with one bulk call.
    #[inline]
    pub fn free_all(&mut self) {
        if self.len > 0 {
            // SAFETY: ptrs[..len] are valid mbufs this batch owns; after the call
            // the batch forgets them.
            unsafe { dpdk_sys::rte_pktmbuf_free_bulk(self.ptrs.as_mut_ptr(), self.len as u32) };
            self.len = 0;
        }
    }

    pub(super) fn raw_parts(&mut self) -> (*mut *mut dpdk_sys::rte_mbuf, &mut usize) {
        (self.ptrs.as_mut_ptr(), &mut self.len)
    }

    /// Drops the first `n` entries (handed to a device), keeping the rest in order.
    pub(super) fn consume_front(&mut self, n: usize) {
        let n = n.min(self.len);
        self.ptrs.copy_within(n..self.len, 0);
        self.len -= n;
    }
}

impl Drop for MbufBatch {
    fn drop(&mut self) {
        self.free_all();
    }
}

/// Iterator of [`MbufBatch::drain`]; frees what was not taken.
pub struct Drain<'a> {
    batch: &'a mut MbufBatch,
    next: usize,
    len: usize,
}

impl Iterator for Drain<'_> {
    type Item = Mbuf;
    #[inline]
    fn next(&mut self) -> Option<Mbuf> {
        if self.next >= self.len {
            return None;
        }
        let p = self.batch.ptrs[self.next];
        self.next += 1;
        NonNull::new(p).map(Mbuf)
    }
}

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        let rest = self.len - self.next;
        if rest > 0 {
            // SAFETY: the entries not yielded are still owned mbufs.
            unsafe { dpdk_sys::rte_pktmbuf_free_bulk(self.batch.ptrs.as_mut_ptr().add(self.next), rest as u32) };
        }
    }
}

#[inline(always)]
pub fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch is a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p as *const i8, std::arch::x86_64::_MM_HINT_T0)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
