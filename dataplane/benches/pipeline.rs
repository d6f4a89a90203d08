//! Per-packet path benchmarks (criterion), over generated bursts in memory: no
//! DPDK, no I/O. `cargo bench -p dataplane`. Later issues add cases here (NAT,
//! DR, TUN, connection lookup); the rvsd-vs-testpmd figures come from
//! scripts/bench, not from here.
use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use dataplane::buf::VecBuf;
use dataplane::fwd::{forward, Fib, FibPort, Route};
use etherparse::PacketBuilder;

const BURST: usize = 32;

fn fib() -> Fib {
    let mut neighbors = vec![(0u16, Ipv4Addr::new(10, 0, 1, 254), [2, 0, 0, 0, 0xfe, 1])];
    for i in 0..64u8 {
        neighbors.push((1, Ipv4Addr::new(10, 0, 2, 10 + i), [2, 0, 0, 0, 2, 10 + i]));
    }
    Fib::new(
        vec![
            FibPort { mac: [2, 0, 0, 0, 1, 1], addrs: vec![(Ipv4Addr::new(10, 0, 1, 1), 24)] },
            FibPort { mac: [2, 0, 0, 0, 2, 1], addrs: vec![(Ipv4Addr::new(10, 0, 2, 1), 24)] },
        ],
        vec![Route { prefix: Ipv4Addr::UNSPECIFIED, len: 0, via: Some(Ipv4Addr::new(10, 0, 1, 254)), port: 0 }],
        neighbors,
    )
}

/// A burst of 64-byte TCP frames to `servers` different real servers.
fn burst(servers: u8) -> Vec<Vec<u8>> {
    (0..BURST)
        .map(|i| {
            let mut v = Vec::new();
            PacketBuilder::ethernet2([2, 0, 0, 0, 9, 1], [2, 0, 0, 0, 1, 1])
                .ipv4([10, 0, 1, 2], [10, 0, 2, 10 + (i as u8 % servers)], 64)
                .tcp(10000 + i as u16, 80, 1, 65535)
                .write(&mut v, &[0u8; 6])
                .expect("build packet");
            v
        })
        .collect()
}

fn bench_forward(c: &mut Criterion) {
    let fib = fib();
    let learned = dataplane::fwd::Learned::default();
    let mut g = c.benchmark_group("fwd");
    g.throughput(Throughput::Elements(BURST as u64));
    for servers in [1u8, 64] {
        let frames = burst(servers);
        g.bench_function(format!("ipv4_forward_burst32_{servers}_nexthops"), |b| {
            b.iter_batched_ref(
                || frames.iter().map(|f| VecBuf::new(f, 128)).collect::<Vec<_>>(),
                |bufs| {
                    for buf in bufs.iter_mut() {
                        black_box(forward(buf, &fib, &learned));
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench_forward);
criterion_main!(benches);
