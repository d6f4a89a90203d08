//! IPv4 routes: the configured `[[route]]`s plus one connected route per port
//! address, looked up by longest prefix match.
//!
//! A sorted list scanned in order: directors carry a handful of routes. When a
//! full table is needed this becomes a DIR-24-8 (rte_lpm's layout) behind the
//! same `lookup`.
use std::net::Ipv4Addr;

/// Where a destination goes: out of `port`, to `next_hop` (the destination
/// itself for on-link routes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextHop {
    pub port: u16,
    pub next_hop: Ipv4Addr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    pub prefix: Ipv4Addr,
    pub len: u8,
    /// `None`: on-link (the destination is the next hop).
    pub via: Option<Ipv4Addr>,
    pub port: u16,
}

#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    /// Longest prefix first; among equal lengths, configuration order.
    routes: Vec<(u32, u32, Route)>,
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len.min(32)))
    }
}

impl RouteTable {
    pub fn new(routes: impl IntoIterator<Item = Route>) -> RouteTable {
        let mut v: Vec<(u32, u32, Route)> =
            routes.into_iter().map(|r| (u32::from(r.prefix) & mask(r.len), mask(r.len), r)).collect();
        v.sort_by_key(|r| std::cmp::Reverse(r.2.len)); // stable: keeps configuration order
        RouteTable { routes: v }
    }

    #[inline]
    pub fn lookup(&self, dst: Ipv4Addr) -> Option<NextHop> {
        let d = u32::from(dst);
        self.routes
            .iter()
            .find(|(net, m, _)| d & m == *net)
            .map(|(_, _, r)| NextHop { port: r.port, next_hop: r.via.unwrap_or(dst) })
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(p: &str, len: u8, via: Option<&str>, port: u16) -> Route {
        Route { prefix: p.parse().unwrap(), len, via: via.map(|v| v.parse().unwrap()), port }
    }

    #[test]
    fn longest_prefix_wins_and_on_link_uses_destination() {
        let t = RouteTable::new([
            r("0.0.0.0", 0, Some("10.0.0.1"), 0),
            r("10.0.0.0", 24, None, 0),
            r("10.1.0.0", 16, None, 1),
            r("10.1.2.0", 24, Some("10.1.0.254"), 1),
        ]);
        let l = |d: &str| t.lookup(d.parse().unwrap());
        assert_eq!(l("10.0.0.7"), Some(NextHop { port: 0, next_hop: "10.0.0.7".parse().unwrap() }));
        assert_eq!(l("10.1.9.9"), Some(NextHop { port: 1, next_hop: "10.1.9.9".parse().unwrap() }));
        assert_eq!(l("10.1.2.3"), Some(NextHop { port: 1, next_hop: "10.1.0.254".parse().unwrap() }));
        assert_eq!(l("192.0.2.1"), Some(NextHop { port: 0, next_hop: "10.0.0.1".parse().unwrap() }));
    }

    #[test]
    fn no_default_route_means_none() {
        let t = RouteTable::new([r("10.0.0.0", 8, None, 0)]);
        assert_eq!(t.lookup("11.0.0.1".parse().unwrap()), None);
        assert_eq!(RouteTable::new([]).lookup("10.0.0.1".parse().unwrap()), None);
    }

    #[test]
    fn host_bits_in_a_prefix_are_ignored() {
        let t = RouteTable::new([r("10.0.0.9", 24, None, 2)]);
        assert_eq!(t.lookup("10.0.0.200".parse().unwrap()).map(|h| h.port), Some(2));
    }
}
