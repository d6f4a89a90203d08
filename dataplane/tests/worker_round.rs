//! The worker's per-burst logic (`dataplane::worker::Worker`) over plain
//! buffers, without DPDK: two workers share the traffic of a NAT service the
//! way the I/O crate's loop shell drives them (rx burst → owner → handle).
//!
//! Judged with etherparse on frames it builds and decodes: every packet of a
//! connection, the client's and the real server's NAT reply alike, reaches
//! the worker that owns the flow whichever worker received it, and that
//! worker forwards it rewritten as NAT must (specs/ipvs.md §4): to a real
//! server of the service, and back from the VIP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod harness;

use std::net::Ipv4Addr;
use std::sync::Arc;

use dataplane::buf::VecBuf;
use dataplane::clock::Clock;
use dataplane::counters::WorkerCounters;
use dataplane::hints::BURST;
use dataplane::service::SchedState;
use dataplane::snapshot::Snapshot;
use dataplane::sync::SyncParams;
use dataplane::worker::{Action, Worker, WorkerCtl};
use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use harness::{CLIENT_MAC, PORT0_MAC, PORT1_MAC, VIP};

const WORKERS: usize = 2;
const FLOWS: u16 = 64;

/// The harness's snapshot, with scheduler state for each worker (rvsd's
/// control side gives every worker its own).
fn snapshot() -> Snapshot {
    let mut snap = harness::snapshot();
    for s in &mut snap.services {
        s.sched_state = (0..WORKERS).map(|_| SchedState::default()).collect();
        for st in s.sched_state.iter() {
            s.scheduler.init_state(st);
        }
    }
    snap
}

fn workers() -> Vec<Worker> {
    let (dumps, _rx) = std::sync::mpsc::sync_channel(4);
    let params = Arc::new(SyncParams::default());
    (0..WORKERS)
        .map(|id| {
            let ctl = Arc::new(WorkerCtl::new(dumps.clone(), params.clone()));
            Worker::new(id, WORKERS, 1024, 7 + id as u64, Clock::replay(), Arc::new(WorkerCounters::new(2)), ctl, None)
        })
        .collect()
}

fn client(i: u16) -> (Ipv4Addr, u16) {
    // Beyond the default route (its gateway is a static neighbour), so
    // replies leave at once instead of waiting for ARP.
    (Ipv4Addr::new(198, 51, 100, 10 + (i % 200) as u8), 40000 + i)
}

fn tcp(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    syn: bool,
    ack: bool,
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src_mac, dst_mac).ipv4(src.0.octets(), dst.0.octets(), 64);
    let mut b = b.tcp(src.1, dst.1, 1000, 65535);
    if syn {
        b = b.syn();
    }
    if ack {
        b = b.ack(1);
    }
    let mut out = Vec::new();
    b.write(&mut out, &[]).unwrap();
    out
}

/// (source, destination) of a forwarded TCP frame.
fn addrs(frame: &[u8]) -> ((Ipv4Addr, u16), (Ipv4Addr, u16)) {
    let p = SlicedPacket::from_ethernet(frame).expect("forwarded frame parses");
    let Some(NetSlice::Ipv4(ip)) = p.net else { panic!("not IPv4") };
    let Some(TransportSlice::Tcp(t)) = p.transport else { panic!("not TCP") };
    ((ip.header().source_addr(), t.source_port()), (ip.header().destination_addr(), t.destination_port()))
}

/// One frame through the shell's steps: received by worker `rx_on`, handed
/// to its owner, handled there. Returns the owner, the action and the frame.
fn receive(ws: &mut [Worker], snap: &Snapshot, rx_on: usize, in_port: u16, frame: &[u8]) -> (usize, Action, Vec<u8>) {
    let mut marks = [0u32; BURST];
    let mut owners = [usize::MAX; BURST];
    ws[rx_on].rx_burst(&[frame], in_port, snap, &mut marks, &mut owners);
    let owner = owners[0];
    assert!(owner < WORKERS, "owner {owner}");
    let mut buf = VecBuf::new(frame, harness::HEADROOM);
    let action = ws[owner].handle(&mut buf, in_port, marks[0], snap, Some(1_000_000_000));
    (owner, action, buf.into_vec())
}

#[test]
fn every_packet_of_a_nat_connection_reaches_its_owner_from_either_worker() {
    let snap = snapshot();
    let mut ws = workers();
    let mut owned = [0usize; WORKERS];
    let mut rx_bytes = [[0u64; 2]; WORKERS];
    let mut rx_packets = [[0u64; 2]; WORKERS];
    for i in 0..FLOWS {
        let c = client(i);
        // The client's SYN arrives on the worker the flow's number picks.
        let syn = tcp(CLIENT_MAC, PORT0_MAC, c, (VIP, 80), true, false);
        let first = usize::from(i) % WORKERS;
        rx_packets[first][0] += 1;
        rx_bytes[first][0] += syn.len() as u64;
        let (owner, action, out) = receive(&mut ws, &snap, first, 0, &syn);
        owned[owner] += 1;
        assert_eq!(action, Action::Send { port: 1 }, "SYN of flow {i}");
        let (src, rs) = addrs(&out);
        assert_eq!(src, c, "NAT keeps the client's address");
        assert!([harness::rs(11), harness::rs(12)].contains(&rs.0) && rs.1 == 8080, "flow {i} went to {rs:?}");

        // The real server's SYN-ACK arrives on the other worker: it must go
        // to the same owner, which rewrites it back from the VIP.
        let other = (first + 1) % WORKERS;
        let reply = tcp(harness::rs_mac(rs.0.octets()[3]), PORT1_MAC, rs, c, true, true);
        rx_packets[other][1] += 1;
        rx_bytes[other][1] += reply.len() as u64;
        let (reply_owner, action, out) = receive(&mut ws, &snap, other, 1, &reply);
        assert_eq!(reply_owner, owner, "reply of flow {i}");
        assert_eq!(action, Action::Send { port: 0 }, "reply of flow {i}");
        assert_eq!(addrs(&out), ((VIP, 80), c), "reply of flow {i} leaves from the VIP");

        // The client's ACK, received by the other worker this time.
        let ack = tcp(CLIENT_MAC, PORT0_MAC, c, (VIP, 80), false, true);
        rx_packets[other][0] += 1;
        rx_bytes[other][0] += ack.len() as u64;
        let (ack_owner, action, out) = receive(&mut ws, &snap, other, 0, &ack);
        assert_eq!(ack_owner, owner, "ACK of flow {i}");
        assert_eq!(action, Action::Send { port: 1 });
        assert_eq!(addrs(&out), (c, rs), "ACK of flow {i} follows its connection");
    }
    // Not vacuous: both workers own flows, so packets did cross workers.
    assert!(owned.iter().all(|&n| n > 0), "owners {owned:?}");
    // Each worker's table holds exactly the flows it owns; the receiving
    // worker counted what it received.
    for (w, worker) in ws.iter().enumerate() {
        assert_eq!(worker.lb.conns.len(), owned[w], "worker {w} table");
        for port in 0..2 {
            assert_eq!(worker.counters.ports[port].rx_packets.get(), rx_packets[w][port], "worker {w} port {port}");
            assert_eq!(worker.counters.ports[port].rx_bytes.get(), rx_bytes[w][port], "worker {w} port {port} bytes");
        }
    }
}

#[test]
fn a_truncated_frame_is_a_counted_drop_not_a_panic() {
    let snap = snapshot();
    let mut ws = workers();
    let syn = tcp(CLIENT_MAC, PORT0_MAC, client(1), (VIP, 80), true, false);
    for len in 0..syn.len() {
        let (_, action, _) = receive(&mut ws, &snap, 0, 0, &syn[..len]);
        assert!(matches!(action, Action::Drop(_) | Action::Exception { next_hop: 0, .. }), "{len} bytes: {action:?}");
    }
}
