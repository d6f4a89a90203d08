//! The neighbour table: next-hop IPv4 address on a port → MAC address.
//!
//! Static entries from `[[neighbor]]` for now; ARP resolution and ageing will
//! fill the same table.
use std::net::Ipv4Addr;

use hashbrown::HashMap;

#[derive(Clone, Debug, Default)]
pub struct NeighborTable {
    entries: HashMap<(u16, u32), [u8; 6]>,
}

impl NeighborTable {
    pub fn new(entries: impl IntoIterator<Item = (u16, Ipv4Addr, [u8; 6])>) -> NeighborTable {
        NeighborTable { entries: entries.into_iter().map(|(p, ip, mac)| ((p, u32::from(ip)), mac)).collect() }
    }

    #[inline]
    pub fn lookup(&self, port: u16, ip: Ipv4Addr) -> Option<[u8; 6]> {
        self.entries.get(&(port, u32::from(ip))).copied()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_per_port() {
        let mac = [2, 0, 0, 0, 1, 0x11];
        let t = NeighborTable::new([(0, "10.0.0.11".parse().unwrap(), mac)]);
        assert_eq!(t.lookup(0, "10.0.0.11".parse().unwrap()), Some(mac));
        assert_eq!(t.lookup(1, "10.0.0.11".parse().unwrap()), None);
        assert_eq!(t.lookup(0, "10.0.0.12".parse().unwrap()), None);
    }
}
