//! The neighbour resolver: which ARP the box answers, what it learns, and
//! packets waiting for a next hop's MAC.
//!
//! Pure state over time in milliseconds, generic over the waiting packet type,
//! so it is tested without DPDK. Behaviour follows the Linux neighbour code in
//! spirit: learn a sender's address from ARP aimed at one of our addresses or
//! from any ARP about a neighbour we already track or are resolving; queue a
//! few packets per unresolved neighbour (the oldest are dropped first); send
//! up to [`PROBES`] requests a second apart, then give up and drop what waits;
//! after [`REFRESH_MS`] without confirmation, probe the known MAC by unicast
//! and forget the entry if it does not answer.
use std::net::Ipv4Addr;

use hashbrown::HashMap;

use crate::fwd::NeighborTable;
use crate::wire::arp::{Operation, Packet, PACKET_LEN};
use crate::wire::ethernet::{Address, HEADER_LEN};
use crate::wire::EtherType;

/// An entry younger than this is shown as reachable (Linux base_reachable_time).
pub const REACHABLE_MS: u64 = 30_000;
/// An entry not confirmed for this long is probed (and forgotten if silent).
pub const REFRESH_MS: u64 = 60_000;
/// Between two requests for the same neighbour.
pub const RETRANS_MS: u64 = 1_000;
/// Requests sent before a neighbour is given up.
pub const PROBES: u8 = 3;
/// Packets queued per unresolved neighbour (Linux's unres_qlen is about 100
/// full-size packets; a director waits for real servers, not bulk senders).
pub const QUEUE_LEN: usize = 16;

/// A neighbour's state as `rvsadm neigh` shows it (`ip neigh` words).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Reachable,
    Stale,
    Probe,
    Incomplete,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Reachable => "reachable",
            State::Stale => "stale",
            State::Probe => "probe",
            State::Incomplete => "incomplete",
        }
    }
}

#[derive(Clone, Debug)]
struct Entry {
    mac: [u8; 6],
    confirmed: u64,
    probes: u8,
    last_probe: u64,
}

struct Pending<P> {
    packets: Vec<P>,
    tries: u8,
    last_sent: u64,
}

/// What to do with a packet handed to [`Resolver::wait`].
#[derive(Debug, PartialEq, Eq)]
pub enum Wait<P> {
    /// Queued; send an ARP request now.
    Request,
    /// Queued behind a request already sent.
    Queued,
    /// Queued, and this older packet was pushed out (count and free it).
    Overflow(P),
}

/// A request to send: on `port`, for `target`, broadcast or (refreshing a
/// known entry) unicast to `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub port: u16,
    pub target: Ipv4Addr,
    pub to: Option<[u8; 6]>,
}

/// What the timers produced.
pub struct Tick<P> {
    pub requests: Vec<Request>,
    /// Packets whose neighbour never answered.
    pub failed: Vec<P>,
    /// Entries forgotten after unanswered refresh probes.
    pub forgotten: usize,
}

/// One row of the table (what `rvsadm neigh` lists).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub port: u16,
    pub ip: Ipv4Addr,
    pub mac: Option<[u8; 6]>,
    pub state: State,
    /// Milliseconds since the entry was last confirmed (0 while incomplete).
    pub age_ms: u64,
}

pub struct Resolver<P> {
    entries: HashMap<(u16, Ipv4Addr), Entry>,
    pending: HashMap<(u16, Ipv4Addr), Pending<P>>,
    /// Bumped whenever the set of known MACs changes (the workers' copy is
    /// republished then).
    version: u64,
}

impl<P> Default for Resolver<P> {
    fn default() -> Self {
        Resolver { entries: HashMap::new(), pending: HashMap::new(), version: 0 }
    }
}

impl<P> Resolver<P> {
    pub fn lookup(&self, port: u16, ip: Ipv4Addr) -> Option<[u8; 6]> {
        self.entries.get(&(port, ip)).map(|e| e.mac)
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// An ARP packet from `sha`/`spa` arrived on `port`; `to_us` when it asks
    /// for or answers one of our addresses. Returns the packets that waited
    /// for `spa` (their destination MAC is now `sha`).
    pub fn on_arp(&mut self, port: u16, sha: [u8; 6], spa: Ipv4Addr, to_us: bool, now: u64) -> Vec<P> {
        if spa.is_unspecified() || sha[0] & 1 != 0 || sha == [0; 6] {
            return Vec::new();
        }
        let key = (port, spa);
        let waiting = self.pending.remove(&key);
        let fresh = Entry { mac: sha, confirmed: now, probes: 0, last_probe: 0 };
        match self.entries.get_mut(&key) {
            Some(e) => {
                if e.mac != sha {
                    self.version += 1;
                }
                *e = fresh;
            }
            None if to_us || waiting.is_some() => {
                self.entries.insert(key, fresh);
                self.version += 1;
            }
            None => {}
        }
        waiting.map(|p| p.packets).unwrap_or_default()
    }

    /// Queues `packet` until `next_hop` on `port` is resolved.
    pub fn wait(&mut self, port: u16, next_hop: Ipv4Addr, packet: P, now: u64) -> Wait<P> {
        let p = self.pending.entry((port, next_hop)).or_insert(Pending { packets: Vec::new(), tries: 0, last_sent: 0 });
        let out = if p.packets.len() >= QUEUE_LEN { Some(p.packets.remove(0)) } else { None };
        p.packets.push(packet);
        match out {
            Some(old) => Wait::Overflow(old),
            None if p.tries == 0 => {
                p.tries = 1;
                p.last_sent = now;
                Wait::Request
            }
            None => Wait::Queued,
        }
    }

    /// Runs the timers: retries, give-ups, refresh probes, forgetting.
    pub fn tick(&mut self, now: u64) -> Tick<P> {
        let mut requests = Vec::new();
        let mut failed = Vec::new();
        let mut gone = Vec::new();
        for (&(port, ip), p) in self.pending.iter_mut() {
            if now.saturating_sub(p.last_sent) < RETRANS_MS {
                continue;
            }
            if p.tries >= PROBES {
                gone.push((port, ip));
            } else {
                p.tries += 1;
                p.last_sent = now;
                requests.push(Request { port, target: ip, to: None });
            }
        }
        for k in gone {
            if let Some(p) = self.pending.remove(&k) {
                failed.extend(p.packets);
            }
        }
        let mut forget = Vec::new();
        for (&(port, ip), e) in self.entries.iter_mut() {
            if now.saturating_sub(e.confirmed) < REFRESH_MS || now.saturating_sub(e.last_probe) < RETRANS_MS {
                continue;
            }
            if e.probes >= PROBES {
                forget.push((port, ip));
            } else {
                e.probes += 1;
                e.last_probe = now;
                requests.push(Request { port, target: ip, to: Some(e.mac) });
            }
        }
        let forgotten = forget.len();
        for k in forget {
            self.entries.remove(&k);
            self.version += 1;
        }
        requests.sort_by_key(|r| (r.port, u32::from(r.target)));
        Tick { requests, failed, forgotten }
    }

    /// Every entry, known and being resolved, sorted by port and address.
    pub fn rows(&self, now: u64) -> Vec<Row> {
        let mut rows: Vec<Row> = self
            .entries
            .iter()
            .map(|(&(port, ip), e)| {
                let age_ms = now.saturating_sub(e.confirmed);
                let state = if e.probes > 0 {
                    State::Probe
                } else if age_ms < REACHABLE_MS {
                    State::Reachable
                } else {
                    State::Stale
                };
                Row { port, ip, mac: Some(e.mac), state, age_ms }
            })
            .chain(self.pending.keys().map(|&(port, ip)| Row {
                port,
                ip,
                mac: None,
                state: State::Incomplete,
                age_ms: 0,
            }))
            .collect();
        rows.sort_by_key(|r| (r.port, u32::from(r.ip)));
        rows
    }

    /// The known MACs as the workers read them.
    pub fn table(&self) -> NeighborTable {
        NeighborTable::new(self.entries.iter().map(|(&(port, ip), e)| (port, ip, e.mac)))
    }
}

/// The fields of an Ethernet/IPv4 ARP packet that matter here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arp {
    pub op: Operation,
    pub sha: [u8; 6],
    pub spa: Ipv4Addr,
    pub tpa: Ipv4Addr,
}

/// Parses an Ethernet frame carrying Ethernet/IPv4 ARP.
pub fn parse(frame: &[u8]) -> Option<Arp> {
    if frame.get(12..14)? != EtherType::Arp.0.to_be_bytes() {
        return None;
    }
    let p = Packet::new_checked(frame.get(HEADER_LEN..)?).ok()?;
    Some(Arp {
        op: p.operation(),
        sha: *p.source_hardware_addr().as_bytes(),
        spa: p.source_protocol_addr(),
        tpa: p.target_protocol_addr(),
    })
}

/// Frames are padded to Ethernet's 60-byte minimum (without FCS).
pub const FRAME_LEN: usize = 60;

fn frame(dst: [u8; 6], op: Operation, sha: [u8; 6], spa: Ipv4Addr, tha: [u8; 6], tpa: Ipv4Addr) -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&sha);
    f[12..14].copy_from_slice(&EtherType::Arp.0.to_be_bytes());
    let mut p = Packet::new_unchecked(&mut f[HEADER_LEN..HEADER_LEN + PACKET_LEN]);
    p.fill_ethernet_ipv4_format();
    p.set_operation(op);
    p.set_source_hardware_addr(Address(sha));
    p.set_source_protocol_addr(spa);
    p.set_target_hardware_addr(Address(tha));
    p.set_target_protocol_addr(tpa);
    f
}

/// "Who has `target`? Tell `ip`": broadcast, or unicast to `to` when
/// refreshing a known entry.
pub fn request(mac: [u8; 6], ip: Ipv4Addr, target: Ipv4Addr, to: Option<[u8; 6]>) -> [u8; FRAME_LEN] {
    frame(to.unwrap_or([0xff; 6]), Operation::Request, mac, ip, [0; 6], target)
}

/// "`ip` is at `mac`", to the asker.
pub fn reply(mac: [u8; 6], ip: Ipv4Addr, asker: &Arp) -> [u8; FRAME_LEN] {
    frame(asker.sha, Operation::Reply, mac, ip, asker.sha, asker.spa)
}

/// A gratuitous ARP announcing `ip` at `mac` (the request form, as
/// keepalived and the kernel send it).
pub fn gratuitous(mac: [u8; 6], ip: Ipv4Addr) -> [u8; FRAME_LEN] {
    frame([0xff; 6], Operation::Request, mac, ip, [0; 6], ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC_A: [u8; 6] = [2, 0, 0, 0, 2, 0x11];
    const MAC_B: [u8; 6] = [2, 0, 0, 0, 2, 0x12];
    const OURS: [u8; 6] = [2, 0, 0, 0, 2, 1];

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn frames_match_rfc_826_layout() {
        // Expected bytes written out by hand from RFC 826 (not from the code).
        let f = request(OURS, ip("10.0.2.1"), ip("10.0.2.11"), None);
        let want: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 2, 1, 0x08, 0x06, // Ethernet
            0, 1, 0x08, 0x00, 6, 4, 0, 1, // Ethernet/IPv4, request
            2, 0, 0, 0, 2, 1, 10, 0, 2, 1, // sender
            0, 0, 0, 0, 0, 0, 10, 0, 2, 11, // target
        ];
        assert_eq!(&f[..42], &want);
        assert_eq!(&f[42..], &[0u8; 18], "padded to 60 bytes");

        let asker = parse(&request(MAC_A, ip("10.0.2.11"), ip("10.0.2.1"), None)).unwrap();
        assert_eq!(asker, Arp { op: Operation::Request, sha: MAC_A, spa: ip("10.0.2.11"), tpa: ip("10.0.2.1") });
        let r = reply(OURS, ip("10.0.2.1"), &asker);
        let want: [u8; 42] = [
            2, 0, 0, 0, 2, 0x11, 2, 0, 0, 0, 2, 1, 0x08, 0x06, // to the asker
            0, 1, 0x08, 0x00, 6, 4, 0, 2, // reply
            2, 0, 0, 0, 2, 1, 10, 0, 2, 1, // we are 10.0.2.1
            2, 0, 0, 0, 2, 0x11, 10, 0, 2, 11, // to the asker
        ];
        assert_eq!(&r[..42], &want);

        let g = gratuitous(OURS, ip("10.0.0.100"));
        assert_eq!(&g[..6], &[0xff; 6]);
        assert_eq!(&g[20..22], &[0, 1]);
        assert_eq!(&g[28..32], &[10, 0, 0, 100]);
        assert_eq!(&g[38..42], &[10, 0, 0, 100]);
        assert_eq!(parse(&r[..40]), None, "truncated");
        assert_eq!(parse(&[0u8; 60]), None, "not ARP");
        let mut bad = r;
        bad[18] = 8; // hardware length 8
        assert_eq!(parse(&bad), None);
    }

    #[test]
    fn learns_from_arp_to_us_and_about_known_neighbours_only() {
        let mut r: Resolver<u32> = Resolver::default();
        assert!(r.on_arp(1, MAC_A, ip("10.0.2.11"), false, 0).is_empty());
        assert_eq!(r.lookup(1, ip("10.0.2.11")), None, "third-party ARP creates nothing");
        r.on_arp(1, MAC_A, ip("10.0.2.11"), true, 0);
        assert_eq!(r.lookup(1, ip("10.0.2.11")), Some(MAC_A));
        assert_eq!(r.lookup(0, ip("10.0.2.11")), None, "per port");
        let v = r.version();
        // A known neighbour moves (gratuitous ARP from a failover peer).
        r.on_arp(1, MAC_B, ip("10.0.2.11"), false, 10);
        assert_eq!(r.lookup(1, ip("10.0.2.11")), Some(MAC_B));
        assert!(r.version() > v);
        // Broadcast or zero senders are never learned.
        r.on_arp(1, [0xff; 6], ip("10.0.2.12"), true, 0);
        r.on_arp(1, [0; 6], ip("10.0.2.12"), true, 0);
        r.on_arp(1, MAC_A, ip("0.0.0.0"), true, 0);
        assert_eq!(r.table().len(), 1);
    }

    #[test]
    fn resolution_queues_retries_and_gives_up() {
        let mut r: Resolver<u32> = Resolver::default();
        let nh = ip("10.0.2.11");
        assert_eq!(r.wait(1, nh, 1, 0), Wait::Request);
        assert_eq!(r.wait(1, nh, 2, 10), Wait::Queued);
        assert_eq!(r.rows(10)[0].state, State::Incomplete);
        // Retries a second apart, three requests in all, then the packets fail.
        assert!(r.tick(500).requests.is_empty());
        assert_eq!(r.tick(1000).requests, vec![Request { port: 1, target: nh, to: None }]);
        assert_eq!(r.tick(2000).requests.len(), 1);
        let t = r.tick(3000);
        assert!(t.requests.is_empty());
        assert_eq!(t.failed, vec![1, 2]);
        assert!(r.rows(3000).is_empty());
        // A fresh packet starts again.
        assert_eq!(r.wait(1, nh, 3, 4000), Wait::Request);
        // An answer releases what waits, in order.
        for i in 4..=(QUEUE_LEN as u32 + 2) {
            assert_eq!(r.wait(1, nh, i, 4000), Wait::Queued);
        }
        assert_eq!(r.wait(1, nh, 99, 4000), Wait::Overflow(3), "the oldest goes first");
        let released = r.on_arp(1, MAC_A, nh, false, 4100);
        assert_eq!(released.len(), QUEUE_LEN);
        assert_eq!(released.first(), Some(&4));
        assert_eq!(released.last(), Some(&99));
        assert_eq!(r.lookup(1, nh), Some(MAC_A));
    }

    #[test]
    fn entries_age_refresh_by_unicast_and_are_forgotten_when_silent() {
        let mut r: Resolver<u32> = Resolver::default();
        let nh = ip("10.0.2.11");
        r.on_arp(1, MAC_A, nh, true, 0);
        assert_eq!(r.rows(1000)[0].state, State::Reachable);
        assert_eq!(r.rows(REACHABLE_MS)[0].state, State::Stale);
        assert!(r.tick(REFRESH_MS - 1).requests.is_empty());
        assert_eq!(r.tick(REFRESH_MS).requests, vec![Request { port: 1, target: nh, to: Some(MAC_A) }]);
        assert_eq!(r.rows(REFRESH_MS)[0].state, State::Probe);
        // Still usable while probed; an answer confirms it.
        assert_eq!(r.lookup(1, nh), Some(MAC_A));
        r.on_arp(1, MAC_A, nh, false, REFRESH_MS + 10);
        assert_eq!(r.rows(REFRESH_MS + 10)[0].state, State::Reachable);
        // Silent: three probes, then forgotten.
        let t0 = 2 * REFRESH_MS + 10;
        let mut sent = 0;
        let mut forgotten = 0;
        for k in 0..5 {
            let t = r.tick(t0 + k * RETRANS_MS);
            sent += t.requests.len();
            forgotten += t.forgotten;
        }
        assert_eq!((sent, forgotten), (3, 1));
        assert_eq!(r.lookup(1, nh), None);
    }
}
