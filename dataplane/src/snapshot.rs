//! The immutable state every worker reads: forwarding table, services and the
//! IPVS knobs. The control side builds a new one on every change and publishes
//! it with `arc-swap`; workers pick it up between bursts, so a change never
//! pauses forwarding.
use std::net::Ipv4Addr;

use conf::Method;
use hashbrown::{HashMap, HashSet};

use crate::classify::Classifier;
use crate::fwd::Fib;
use crate::proto::Timeouts;
use crate::service::{Service, ServiceKey, PROTO_TCP};

/// One rule's counters on one worker.
#[derive(Debug, Default)]
pub struct RuleHits {
    pub packets: crate::counters::Counter,
    pub bytes: crate::counters::Counter,
}

/// The `[ipvs]` sysctls the dataplane honours (specs/ipvs.md §9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Knobs {
    pub expire_nodest_conn: bool,
    pub expire_quiescent_template: bool,
    pub conn_reuse_mode: u8,
    pub sloppy_tcp: bool,
    pub nat_icmp_send: bool,
    pub pmtu_disc: bool,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            expire_nodest_conn: false,
            expire_quiescent_template: false,
            conn_reuse_mode: 1,
            sloppy_tcp: false,
            nat_icmp_send: false,
            pmtu_disc: true,
        }
    }
}

pub struct Snapshot {
    /// Unique per snapshot built (never reused): workers key what they
    /// cache from a snapshot, such as resolved next hops, by it.
    pub id: u64,
    pub fib: Fib,
    /// The firewall-mark rules (iptables mangle/PREROUTING MARK), compiled.
    pub fwmark: Classifier,
    /// Per worker, per rule: packets and bytes matched (single writer each).
    pub fwmark_hits: Box<[Box<[RuleHits]>]>,
    pub services: Vec<Service>,
    pub timeouts: Timeouts,
    pub knobs: Knobs,
    /// Prefix length of the client address that decides which worker owns a flow.
    pub owner_prefix: u8,
    by_key: HashMap<ServiceKey, u32>,
    any_port0: bool,
    any_ftp: bool,
    /// Addresses of services (to tell load-balanced traffic from routed
    /// traffic), sorted: a box has a handful, and a few compares beat hashing.
    vips: Vec<u32>,
    /// (proto, RIP, port) of NAT real servers: their packets are replies (§4.2).
    nat_dests: HashSet<(u8, Ipv4Addr, u16)>,
    /// RIPs of NAT real servers of fwmark/port-0 services (any port).
    nat_dest_addrs: HashSet<Ipv4Addr>,
}

impl Snapshot {
    pub fn new(fib: Fib, services: Vec<Service>, timeouts: Timeouts, knobs: Knobs, owner_prefix: u8) -> Snapshot {
        let mut by_key = HashMap::with_capacity(services.len());
        let mut vips = HashSet::new();
        let mut nat_dests = HashSet::new();
        let mut nat_dest_addrs = HashSet::new();
        let (mut any_port0, mut any_ftp) = (false, false);
        for (i, s) in services.iter().enumerate() {
            by_key.insert(s.key, i as u32);
            if let ServiceKey::Addr { proto, vaddr, vport } = s.key {
                vips.insert(vaddr);
                any_port0 |= vport == 0;
                any_ftp |= vport == 21 && proto == PROTO_TCP;
                for d in s.dests.iter().filter(|d| d.method == Method::Masq) {
                    if d.port == 0 {
                        nat_dest_addrs.insert(d.addr);
                    } else {
                        nat_dests.insert((proto, d.addr, d.port));
                    }
                }
            } else {
                for d in s.dests.iter().filter(|d| d.method == Method::Masq) {
                    nat_dest_addrs.insert(d.addr);
                }
            }
        }
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Snapshot {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            fib,
            fwmark: Classifier::build(&[]),
            fwmark_hits: Box::new([]),
            services,
            timeouts,
            knobs,
            owner_prefix,
            by_key,
            any_port0,
            any_ftp,
            vips: {
                let mut v: Vec<u32> = vips.into_iter().map(u32::from).collect();
                v.sort_unstable();
                v
            },
            nat_dests,
            nat_dest_addrs,
        }
    }

    /// The same snapshot with these mark rules, counted for `workers` workers.
    pub fn with_fwmark(mut self, c: Classifier, workers: usize) -> Snapshot {
        self.fwmark_hits = (0..workers).map(|_| (0..c.len()).map(|_| RuleHits::default()).collect()).collect();
        self.fwmark = c;
        self
    }

    /// The firewall mark of each frame of a burst received on `in_port`, into
    /// `marks` (the first `min(frames.len(), marks.len())`; see
    /// [`Classifier::classify_burst`]), counting the matched rules in
    /// `worker`'s counters: the worker's rx path, one call per rx burst after
    /// prefetching the frames.
    #[inline]
    pub fn marks_counted_burst(&self, frames: &[&[u8]], in_port: u16, worker: usize, marks: &mut [u32]) {
        let hits = self.fwmark_hits.get(worker);
        self.fwmark.classify_burst_with(frames, in_port, marks, |_, i, len| {
            if let Some(h) = hits.and_then(|h| h.get(i)) {
                h.packets.add(1);
                h.bytes.add(u64::from(len));
            }
        });
    }

    /// Packets and bytes each rule matched, summed over workers.
    pub fn fwmark_totals(&self) -> Vec<(u64, u64)> {
        let mut t = vec![(0, 0); self.fwmark.len()];
        for w in self.fwmark_hits.iter() {
            for (acc, h) in t.iter_mut().zip(w.iter()) {
                acc.0 += h.packets.get();
                acc.1 += h.bytes.get();
            }
        }
        t
    }

    /// A snapshot with forwarding only (no services).
    pub fn routing_only(fib: Fib) -> Snapshot {
        Snapshot::new(fib, Vec::new(), Timeouts::default(), Knobs::default(), 32)
    }

    #[inline]
    pub fn service(&self, i: u32) -> Option<&Service> {
        self.services.get(i as usize)
    }

    /// Packet → service (specs/ipvs.md §0): fwmark first, then
    /// `<proto, vaddr, vport>`, then the FTP-data catch, then port 0.
    #[inline]
    pub fn find_service(&self, mark: u32, proto: u8, vaddr: Ipv4Addr, vport: u16) -> Option<u32> {
        if mark != 0 {
            if let Some(&i) = self.by_key.get(&ServiceKey::Fwmark(mark)) {
                return Some(i);
            }
        }
        if let Some(&i) = self.by_key.get(&ServiceKey::Addr { proto, vaddr, vport }) {
            return Some(i);
        }
        if self.any_ftp && proto == PROTO_TCP && (vport == 20 || vport >= 1024) {
            if let Some(&i) = self.by_key.get(&ServiceKey::Addr { proto, vaddr, vport: 21 }) {
                return Some(i);
            }
        }
        if self.any_port0 {
            if let Some(&i) = self.by_key.get(&ServiceKey::Addr { proto, vaddr, vport: 0 }) {
                return Some(i);
            }
        }
        None
    }

    #[inline]
    pub fn is_vip(&self, a: Ipv4Addr) -> bool {
        let a = u32::from(a);
        if self.vips.len() <= 8 {
            self.vips.contains(&a)
        } else {
            self.vips.binary_search(&a).is_ok()
        }
    }

    /// Whether a packet from `src:sport` may be a NAT real server's reply.
    #[inline]
    pub fn is_nat_source(&self, proto: u8, src: Ipv4Addr, sport: u16) -> bool {
        self.nat_dests.contains(&(proto, src, sport)) || self.nat_dest_addrs.contains(&src)
    }

    pub fn has_services(&self) -> bool {
        !self.services.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::{SchedKind, Scheduler};
    use crate::service::{Dest, DestShared, SchedState};
    use std::sync::Arc;

    fn svc(key: ServiceKey) -> Service {
        Service {
            key,
            scheduler: Scheduler::build(SchedKind::Rr, 0, &[]),
            persistence: None,
            one_packet: false,
            dests: vec![Dest {
                addr: "10.0.2.11".parse().unwrap(),
                port: 8080,
                method: Method::Masq,
                weight: 1,
                last_weight: 1,
                u_threshold: 0,
                l_threshold: 0,
                shared: Arc::new(DestShared::default()),
            }],
            sched_state: vec![SchedState::default()].into_boxed_slice(),
        }
    }

    #[test]
    fn lookup_order_is_fwmark_exact_ftp_then_port0() {
        let vip: Ipv4Addr = "10.0.0.100".parse().unwrap();
        let fib = Fib::new(vec![], vec![], vec![]);
        let s = Snapshot::new(
            fib,
            vec![
                svc(ServiceKey::Addr { proto: 6, vaddr: vip, vport: 80 }),
                svc(ServiceKey::Addr { proto: 6, vaddr: vip, vport: 0 }),
                svc(ServiceKey::Fwmark(10)),
                svc(ServiceKey::Addr { proto: 6, vaddr: vip, vport: 21 }),
            ],
            Timeouts::default(),
            Knobs::default(),
            32,
        );
        assert_eq!(s.find_service(10, 6, vip, 80), Some(2), "fwmark first");
        assert_eq!(s.find_service(11, 6, vip, 80), Some(0), "unknown mark falls through");
        assert_eq!(s.find_service(0, 6, vip, 80), Some(0));
        assert_eq!(s.find_service(0, 6, vip, 20), Some(3), "ftp-data catch");
        assert_eq!(s.find_service(0, 6, vip, 40000), Some(3), "unprivileged port → ftp");
        assert_eq!(s.find_service(0, 6, vip, 443), Some(1), "port 0 last");
        assert_eq!(s.find_service(0, 17, vip, 443), None);
        assert!(s.is_vip(vip));
        assert!(s.is_nat_source(6, "10.0.2.11".parse().unwrap(), 8080));
        // The fwmark service's NAT server keeps the client's port: any port counts.
        assert!(s.is_nat_source(6, "10.0.2.11".parse().unwrap(), 80));
        assert!(!s.is_nat_source(6, "10.0.2.99".parse().unwrap(), 8080));
    }

    #[test]
    fn mark_rules_count_per_worker() {
        use crate::classify::{Action, Classifier, Prefix, Rule};
        let mut r = Rule::any(Action::Mark { value: 10, mask: u32::MAX });
        r.dst = Some(Prefix { addr: u32::from(Ipv4Addr::new(10, 0, 0, 100)), len: 32, negate: false });
        let s = Snapshot::routing_only(Fib::new(vec![], vec![], vec![]))
            .with_fwmark(Classifier::build(&[r, Rule::any(Action::Count)]), 2);
        let mut frame = Vec::new();
        etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([192, 0, 2, 1], [10, 0, 0, 100], 64)
            .udp(1, 53)
            .write(&mut frame, b"q")
            .unwrap();
        for worker in [1, 0] {
            let mut mark = [0];
            s.marks_counted_burst(&[&frame], 0, worker, &mut mark);
            assert_eq!(mark, [10]);
        }
        assert_eq!(s.fwmark.classify(&frame, 0), 10, "uncounted");
        assert_eq!(s.fwmark_totals(), vec![(2, 58), (2, 58)]);
    }
}
