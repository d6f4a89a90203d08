//! The packet buffer that protocol code is generic over.
//!
//! Forwarding logic sees a packet as contiguous bytes plus headroom in front
//! (for the TUN outer header), never as an `rte_mbuf`: the DPDK I/O module
//! implements [`PacketBuf`] for mbufs, and [`VecBuf`] implements it on a
//! `Vec<u8>` for unit tests and pcap tools.

#![forbid(unsafe_code)]

/// A packet buffer: contiguous bytes plus headroom in front for encapsulation.
pub trait PacketBuf {
    fn data(&self) -> &[u8];
    fn data_mut(&mut self) -> &mut [u8];
    /// Grow the packet at the front by `n` bytes (taken from headroom);
    /// returns the new front bytes, None if headroom is short.
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]>;
    /// Remove `n` bytes from the front (decapsulation); false if shorter.
    fn adj(&mut self, n: usize) -> bool;
    /// Cut the packet to `len` bytes (drop Ethernet padding); false if longer than current.
    fn trim_to(&mut self, len: usize) -> bool;
    fn headroom(&self) -> usize;

    /// What the device said of the IPv4 header checksum: `Some(true)` checked
    /// good, `Some(false)` checked bad, `None` not checked (then software
    /// checks it). Buffers that never met a device return `None`.
    fn ip_checksum_verified(&self) -> Option<bool> {
        None
    }

    /// Packet length in bytes.
    fn len(&self) -> usize {
        self.data().len()
    }

    fn is_empty(&self) -> bool {
        self.data().is_empty()
    }
}

/// A Vec-backed [`PacketBuf`] for tests and pcap tools, with configurable
/// headroom. Invariant: `start <= end <= storage.len()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VecBuf {
    storage: Vec<u8>,
    start: usize,
    end: usize,
}

impl VecBuf {
    /// A buffer holding a copy of `bytes` with `headroom` zero bytes in front.
    pub fn new(bytes: &[u8], headroom: usize) -> VecBuf {
        let mut storage = vec![0; headroom + bytes.len()];
        storage[headroom..].copy_from_slice(bytes);
        VecBuf { storage, start: headroom, end: headroom + bytes.len() }
    }

    /// The packet bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.storage[self.start..self.end]
    }

    /// The packet bytes as an owned vector (headroom dropped).
    pub fn into_vec(mut self) -> Vec<u8> {
        self.storage.truncate(self.end);
        self.storage.drain(..self.start);
        self.storage
    }
}

impl PacketBuf for VecBuf {
    fn data(&self) -> &[u8] {
        &self.storage[self.start..self.end]
    }

    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.end]
    }

    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.start {
            return None;
        }
        self.start -= n;
        Some(&mut self.storage[self.start..self.start + n])
    }

    fn adj(&mut self, n: usize) -> bool {
        if n > self.end - self.start {
            return false;
        }
        self.start += n;
        true
    }

    fn trim_to(&mut self, len: usize) -> bool {
        if len > self.end - self.start {
            return false;
        }
        self.end = self.start + len;
        true
    }

    fn headroom(&self) -> usize {
        self.start
    }
}

impl AsRef<[u8]> for VecBuf {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl AsMut<[u8]> for VecBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        self.data_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn prepend_adj_trim() {
        let mut b = VecBuf::new(&[1, 2, 3, 4], 20);
        assert_eq!(b.headroom(), 20);
        assert_eq!(b.len(), 4);
        assert!(b.prepend(21).is_none());
        assert_eq!(b.data(), &[1, 2, 3, 4], "a failed prepend changes nothing");
        let front = b.prepend(20).unwrap();
        assert_eq!(front.len(), 20);
        front.fill(0xee);
        assert_eq!(b.headroom(), 0);
        assert_eq!(b.len(), 24);
        assert_eq!(&b.data()[20..], &[1, 2, 3, 4]);
        assert!(b.adj(20));
        assert_eq!(b.as_bytes(), &[1, 2, 3, 4]);
        assert_eq!(b.headroom(), 20);
        assert!(!b.adj(5));
        assert!(!b.trim_to(5));
        assert!(b.trim_to(2));
        assert_eq!(b.data(), &[1, 2]);
        b.data_mut()[0] = 9;
        assert_eq!(b.clone().into_vec(), vec![9, 2]);
        assert!(b.adj(2));
        assert!(b.is_empty());
        assert!(b.trim_to(0));
    }

    #[test]
    fn views_wrap_it() {
        let mut b = VecBuf::new(&[0u8; 14], 0);
        let mut f = crate::wire::EthernetFrame::new_checked(&mut b).unwrap();
        f.set_ethertype(crate::wire::EtherType::Arp);
        assert_eq!(&b.as_bytes()[12..], &[0x08, 0x06]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Prepend(usize),
        Adj(usize),
        Trim(usize),
    }

    proptest! {
        /// Random operation sequences against a model of bytes and headroom.
        #[test]
        fn matches_model(init in proptest::collection::vec(any::<u8>(), 0..32), head in 0usize..32,
                         ops in proptest::collection::vec(prop_oneof![
                             (0usize..40).prop_map(Op::Prepend),
                             (0usize..40).prop_map(Op::Adj),
                             (0usize..40).prop_map(Op::Trim),
                         ], 0..20)) {
            let mut b = VecBuf::new(&init, head);
            let mut model = init.clone();
            let mut room = head;
            for op in ops {
                match op {
                    Op::Prepend(n) => {
                        let r = b.prepend(n).map(|s| { s.fill(0xab); s.len() });
                        if n <= room {
                            prop_assert_eq!(r, Some(n));
                            room -= n;
                            let mut m = vec![0xab; n];
                            m.extend_from_slice(&model);
                            model = m;
                        } else {
                            prop_assert_eq!(r, None);
                        }
                    }
                    Op::Adj(n) => {
                        let ok = n <= model.len();
                        prop_assert_eq!(b.adj(n), ok);
                        if ok {
                            model.drain(..n);
                            room += n;
                        }
                    }
                    Op::Trim(n) => {
                        let ok = n <= model.len();
                        prop_assert_eq!(b.trim_to(n), ok);
                        if ok {
                            model.truncate(n);
                        }
                    }
                }
                prop_assert_eq!(b.data(), &model[..]);
                prop_assert_eq!(b.headroom(), room);
            }
        }
    }
}
