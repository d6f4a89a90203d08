//! Prefetch hints for a burst: the connection-table buckets and entries the
//! lookups of the coming frames will read, from an unvalidated peek at each
//! frame's 5-tuple. A hint only: nothing here changes what `process` decides.
use std::net::Ipv4Addr;

use super::Lb;

/// The table size from which [`Lb::prefetch_burst`] pays: below it, the
/// buckets and entries in use (128 bytes a connection) fit in a core's L2.
pub const PREFETCH_MIN_CONNS: usize = 4096;

/// The (proto, src, sport, dst, dport) an IPv4 frame appears to carry, read
/// without validation: for prefetch hints only.
#[inline]
fn peek_tuple(data: &[u8]) -> Option<(u8, Ipv4Addr, u16, Ipv4Addr, u16)> {
    let ihl = usize::from(data.get(14)? & 0x0f) * 4;
    if data.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let (proto, src, dst, ports) = (data.get(23)?, data.get(26..30)?, data.get(30..34)?, data.get(14 + ihl..18 + ihl)?);
    let ip = |b: &[u8]| Ipv4Addr::new(b[0], b[1], b[2], b[3]);
    Some((*proto, ip(src), u16::from_be_bytes([ports[0], ports[1]]), ip(dst), u16::from_be_bytes([ports[2], ports[3]])))
}

impl Lb {
    /// Prefetches what the lookups of a burst of frames will read: the
    /// connection-table buckets of both keys a frame may have (client → VIP
    /// and reply), then the entries those buckets point to, each key hashed
    /// once. A hint: unvalidated reads, no effect on what `process` decides.
    ///
    /// Skipped while the table holds fewer than [`PREFETCH_MIN_CONNS`]
    /// entries: those stay in the core's caches, and the two passes then cost
    /// more than they save (`scripts/bench`, DR, three alternating runs of
    /// each build: without the passes, 12 % faster at 1k flows and 17 %
    /// slower at 64k).
    #[inline]
    pub fn prefetch_burst<'a>(&self, frames: impl Iterator<Item = &'a [u8]>) {
        if self.conns.len() < PREFETCH_MIN_CONNS {
            return;
        }
        let mut buckets = [[u32::MAX; 2]; crate::hints::BURST];
        for (b, data) in buckets.iter_mut().zip(frames) {
            if let Some((proto, src, sport, dst, dport)) = peek_tuple(data) {
                *b = [self.conns.bucket_of(proto, src, sport), self.conns.bucket_of(proto, dst, dport)];
                self.conns.prefetch_bucket(b[0]);
                self.conns.prefetch_bucket(b[1]);
            }
        }
        for b in buckets.iter().flatten() {
            self.conns.prefetch_chain(*b);
        }
    }
}

#[cfg(test)]
mod tests;
