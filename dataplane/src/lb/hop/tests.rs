//! Tests of the next-hop cache.
use std::net::Ipv4Addr;
use std::sync::Arc;

use crate::fwd::{Fib, Route};
use crate::lb::test_util::*;
use crate::proto::Timeouts;
use crate::sched::SchedKind;
use crate::service::Method;
use crate::snapshot::{Knobs, Snapshot};
use crate::verdict::Verdict;
use crate::wire::tcp::flags::{ACK, SYN};

/// The worker's next-hop cache never outlives what it was resolved from: a
/// new snapshot (a neighbour's MAC changed in the config) or a new
/// publication of learned neighbours (ARP saw a new MAC) is used for the very
/// next packet of an established connection.
#[test]
fn next_hop_cache_follows_snapshot_and_learned_neighbours() {
    let mut r = Rig::new();
    let d = vec![dest(1, 80, Method::Route, 1)];
    let s1 = snap(vec![service(tcp_svc(80), SchedKind::Rr, None, d.clone())], Knobs::default());
    let (_, out) = r.send(&s1, &tcp(client(1), 1000, VIP, 80, SYN), 0);
    assert_eq!(out[..6], [2, 0, 0, 0, 2, 11], "static neighbour of rs1");
    let (_, out) = r.send(&s1, &tcp(client(1), 1000, VIP, 80, ACK), 0);
    assert_eq!(out[..6], [2, 0, 0, 0, 2, 11], "cached");

    // A new snapshot with another MAC for rs1.
    let moved = [2, 0, 0, 0, 0x99, 11];
    let fib2 = Fib::new(
        fib().ports().to_vec(),
        vec![Route { prefix: Ipv4Addr::UNSPECIFIED, len: 0, via: Some(Ipv4Addr::new(10, 0, 1, 254)), port: 0 }],
        vec![(1, rs(1), moved)],
    );
    let s2 = Snapshot::new(
        fib2,
        vec![service(tcp_svc(80), SchedKind::Rr, None, d.clone())],
        Timeouts::default(),
        Knobs::default(),
        32,
    );
    let (v, out) = r.send(&s2, &tcp(client(1), 1000, VIP, 80, ACK), 0);
    assert_eq!(v, Verdict::Forward { port: 1 });
    assert_eq!(out[..6], moved, "new snapshot, new MAC");

    // No static neighbours: the MAC comes from what ARP learned.
    let fib3 = Fib::new(fib().ports().to_vec(), vec![], vec![]);
    let s3 = Snapshot::new(
        fib3,
        vec![service(tcp_svc(80), SchedKind::Rr, None, d)],
        Timeouts::default(),
        Knobs::default(),
        32,
    );
    let (v, _) = r.send(&s3, &tcp(client(1), 1000, VIP, 80, ACK), 0);
    assert_eq!(v, Verdict::Resolve { port: 1, next_hop: rs(1) }, "unknown neighbour waits for ARP");
    let learned = |mac| {
        Arc::new(crate::fwd::Learned { neighbors: crate::fwd::NeighborTable::new([(1, rs(1), mac)]), local: vec![] })
    };
    r.lb.set_learned(learned([2, 0, 0, 0, 0xaa, 11]));
    let (v, out) = r.send(&s3, &tcp(client(1), 1000, VIP, 80, ACK), 0);
    assert_eq!(v, Verdict::Forward { port: 1 });
    assert_eq!(out[..6], [2, 0, 0, 0, 0xaa, 11], "learned by ARP");
    r.lb.set_learned(learned([2, 0, 0, 0, 0xbb, 11]));
    let (_, out) = r.send(&s3, &tcp(client(1), 1000, VIP, 80, ACK), 0);
    assert_eq!(out[..6], [2, 0, 0, 0, 0xbb, 11], "ARP saw a new MAC: the cache forgot the old one");
}
