//! Firewall-mark classifier benchmark (criterion): ns per packet of the
//! classifier (`Classifier::classify_burst`, and `Classifier::classify` frame
//! by frame) against the naive linear evaluator (`classify_linear`, what
//! iptables does) and against DPDK's `rte_acl` (`dataplane_io::acl::Acl`, whole
//! bursts with its best code path on this CPU) at 10, 1,000 and 10,000
//! rules, in one run. `cargo bench -p dataplane --bench classify`.
//!
//! The rules only `--set-mark`, so "the last matching rule decides" is
//! "the highest priority wins" and rte_acl can express them (a multiport
//! rule becomes one ACL rule per port range). rte_acl cannot express what the
//! classifier also handles in the same lookup: `--set-xmark` masks that
//! combine several matching rules, `-j RETURN`, negations, and the count of
//! every matched rule. Every packet's result is checked equal across all
//! of them before timing.
//!
//! Rules are random but shaped like an LVS box's mangle table: destinations
//! mostly /32 VIPs (some /24s), a tenth with a source prefix, tcp (70 %),
//! udp (20 %) or no protocol, a single `--dport`, a multiport `--dports`
//! list (2-6 entries, some ranges) or no port, every one `--set-mark`.
//! Frames: a pool of 4,096 (70 % aimed at a random rule's destination and
//! port, the rest random), each at the start of its own 64-byte cache line
//! of one arena, as DPDK puts a frame at a cache-line aligned data offset.
//!
//! Methodology, the same for every contender: each iteration takes the
//! next burst of 32 frames of the pool (stride 97, so consecutive bursts
//! share nothing), makes its array of 32 pointers (rte_acl: to the IPv4
//! headers, as its API takes; the others: the frames as `&[u8]`), runs one
//! prefetch pass over the burst's frames (what the worker does to every rx
//! burst before anything else), then classifies the 32. rte_acl reads its
//! fields at fixed offsets of the IPv4 header it is given: no Ethernet, VLAN
//! or IPv4 header validation. The classifier parses and validates each
//! frame (ethertype, 802.1Q, version, IHL, total length, fragment offset,
//! L4 length) as `ip_rcv` and iptables would. One criterion element = one
//! packet.
//!
//! Contenders: `rte_acl` (`rte_acl_classify` on the burst, the algorithm
//! DPDK picks for this CPU); `classifier-burst` (`classify_burst`, the
//! worker's path); `classifier` (`classify`, frame by frame, same burst);
//! `linear` (parse, then every rule in order); `parse-only` (parse and
//! validate, no rule: the floor under the classifier's figures).
//!
//! At start it prints each set's build time and table size.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dataplane::classify::{classify_linear, Action, Classifier, Key, PortMatch, Prefix, ProtoMatch, Rule, RuleCounter};
use dataplane_io::acl::{Acl, AclRule};
use dataplane_io::prefetch;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn rules(n: usize, rng: &mut Rng) -> Vec<Rule> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let vip = 0x0a00_0000 | (rng.below(1 << 20) as u32) << 2;
        let dst_len = if rng.below(10) < 8 { 32 } else { 24 };
        let src =
            (rng.below(10) == 0).then(|| Prefix { addr: (rng.next() as u32) & 0xffff_0000, len: 16, negate: false });
        let proto = match rng.below(10) {
            0..=6 => Some(6u8),
            7 | 8 => Some(17),
            _ => None,
        };
        let mut r = Rule {
            src,
            dst: Some(Prefix { addr: vip, len: dst_len, negate: false }),
            proto: proto.map(|proto| ProtoMatch { proto, negate: false }),
            ..Rule::any(Action::Mark { value: i as u32 + 1, mask: u32::MAX })
        };
        if proto.is_some() {
            match rng.below(5) {
                0 | 1 => {
                    let p = [80, 443, 53, 8080, 25][rng.below(5) as usize];
                    r.dport.push(PortMatch { ranges: vec![(p, p)], negate: false });
                }
                2 | 3 => {
                    let k = 2 + rng.below(5) as usize;
                    let ranges = (0..k)
                        .map(|_| {
                            let p = 1 + rng.below(20000) as u16;
                            if rng.below(4) == 0 {
                                (p, p + rng.below(100) as u16)
                            } else {
                                (p, p)
                            }
                        })
                        .collect();
                    r.dport.push(PortMatch { ranges, negate: false });
                }
                _ => {}
            }
            r.l4 = !r.dport.is_empty();
        }
        out.push(r);
    }
    out
}

fn frame(src: u32, dst: u32, proto: u8, sport: u16, dport: u16) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]).ipv4(
        src.to_be_bytes(),
        dst.to_be_bytes(),
        64,
    );
    let mut v = Vec::new();
    let ok = if proto == 17 {
        b.udp(sport, dport).write(&mut v, &[])
    } else {
        b.tcp(sport, dport, 1, 1000).write(&mut v, &[])
    };
    ok.map(|_| v).unwrap_or_default()
}

fn packets(rules: &[Rule], rng: &mut Rng) -> Vec<Vec<u8>> {
    (0..4096)
        .map(|_| {
            let src = rng.next() as u32;
            let sport = 1024 + rng.below(60000) as u16;
            if rng.below(10) < 7 {
                let r = &rules[rng.below(rules.len() as u64) as usize];
                let dst = r.dst.map_or(0, |p| p.addr | (rng.below(256) as u32 & !Prefix::mask(p.len)));
                let proto = r.proto.map_or(6, |p| p.proto);
                let dport = r.dport.first().and_then(|m| m.ranges.first()).map_or(80, |&(lo, _)| lo);
                frame(src, dst, proto, sport, dport)
            } else {
                frame(
                    src,
                    0x0a00_0000 | (rng.below(1 << 22) as u32),
                    if rng.below(2) == 0 { 6 } else { 17 },
                    sport,
                    rng.below(65536) as u16,
                )
            }
        })
        .collect()
}

/// The same rules for rte_acl: priority = position (the last match wins).
fn acl_rules(rules: &[Rule]) -> Vec<AclRule> {
    let mut out = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        let Action::Mark { value, .. } = r.action else { continue };
        let pfx = |p: Option<Prefix>| p.map_or((0, 0), |p| (p.addr & Prefix::mask(p.len), p.len));
        let base = AclRule {
            proto: r.proto.map(|p| p.proto),
            src: pfx(r.src),
            dst: pfx(r.dst),
            sport: (0, u16::MAX),
            dport: (0, u16::MAX),
            priority: i as i32 + 1,
            userdata: value,
        };
        match r.dport.first() {
            Some(m) => out.extend(m.ranges.iter().map(|&dport| AclRule { dport, ..base })),
            None => out.push(base),
        }
    }
    out
}

/// EAL for rte_acl's memory (heap only; no devices, no hugepages).
fn eal_up() -> bool {
    let args: Vec<String> =
        ["rvs-bench", "--no-huge", "-m", "256", "--no-pci", "--no-telemetry", "--log-level=lib.eal:error"]
            .iter()
            .map(|s| s.to_string())
            .chain([format!("--file-prefix=rvs-bench-acl-{}", std::process::id())])
            .collect();
    match dataplane_io::init(&args) {
        Ok(()) => true,
        Err(e) => {
            println!("no EAL, rte_acl not measured: {e}");
            false
        }
    }
}

/// One cache line holding a frame (frames here are at most 58 bytes).
#[derive(Clone, Copy)]
#[repr(align(64))]
struct Line([u8; 64]);

/// The frames, each at the start of its own cache line; the lengths.
fn arena(frames: &[Vec<u8>]) -> (Vec<Line>, Vec<usize>) {
    let lines = frames
        .iter()
        .map(|f| {
            let mut l = Line([0; 64]);
            l.0[..f.len()].copy_from_slice(f);
            l
        })
        .collect();
    (lines, frames.iter().map(|f| f.len()).collect())
}

/// The next burst: indices `at + 97, at + 2 * 97, ...` of the pool.
#[inline(always)]
fn next_burst<T: Copy>(at: &mut usize, pool: &[T], burst: &mut [T; 32]) {
    for slot in burst.iter_mut() {
        *at = (*at + 97) & 4095;
        *slot = pool[*at];
    }
}

fn bench(c: &mut Criterion) {
    let eal = eal_up();
    let mut g = c.benchmark_group("classify");
    g.throughput(Throughput::Elements(32));
    for n in [10usize, 1_000, 10_000] {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ n as u64);
        let rules = rules(n, &mut rng);
        let t = Instant::now();
        let cl = Classifier::build(&rules);
        println!("{n} rules: build {:?}, tables {} KiB", t.elapsed(), cl.bytes() / 1024);
        let owned = packets(&rules, &mut rng);
        let (lines, lens) = arena(&owned);
        let pkts: Vec<&[u8]> = lines.iter().zip(&lens).map(|(l, &n)| &l.0[..n]).collect();
        let marked = pkts.iter().filter(|p| cl.classify(p, 0) != 0).count();
        println!("{n} rules: {marked} of {} packets get a mark", pkts.len());
        let mut counted = vec![RuleCounter::default(); rules.len()];
        for p in &pkts {
            let k = Key::parse(p);
            let want = k.map_or(0, |k| classify_linear(&rules, &k, 0, |_| {}));
            assert_eq!(cl.classify(p, 0), want, "classifier and linear disagree");
            cl.classify_counted(p, 0, &mut counted);
        }
        let mut marks = vec![0u32; pkts.len()];
        let mut burst_counted = vec![RuleCounter::default(); rules.len()];
        cl.classify_burst_counted(&pkts, 0, &mut marks, &mut burst_counted);
        for (p, m) in pkts.iter().zip(&marks) {
            assert_eq!(*m, cl.classify(p, 0), "burst and per-frame classification disagree");
        }
        assert_eq!(burst_counted, counted, "burst and per-frame counters disagree");
        let acl = if eal {
            let ar = acl_rules(&rules);
            let t = Instant::now();
            let acl = Acl::build(&ar).expect("rte_acl build");
            println!("{n} rules: rte_acl build {:?} ({} ACL rules)", t.elapsed(), ar.len());
            let ptrs: Vec<*const u8> = pkts.iter().map(|p| p[14..].as_ptr()).collect();
            let mut res = vec![0u32; ptrs.len()];
            acl.classify(&ptrs, &mut res);
            for (p, got) in pkts.iter().zip(&res) {
                assert_eq!(*got, cl.classify(p, 0), "rte_acl and the classifier disagree");
            }
            Some((acl, ptrs))
        } else {
            None
        };
        let mut at = 0usize;
        if let Some((acl, ptrs)) = &acl {
            let mut res = [0u32; 32];
            let mut burst = [std::ptr::null::<u8>(); 32];
            g.bench_function(BenchmarkId::new("rte_acl", n), |b| {
                b.iter(|| {
                    next_burst(&mut at, ptrs, &mut burst);
                    for &p in &burst {
                        prefetch(p);
                    }
                    acl.classify(black_box(&burst), &mut res);
                    res.iter().fold(0, |a, r| a ^ r)
                })
            });
        }
        let mut burst: [&[u8]; 32] = [&[]; 32];
        let mut res = [0u32; 32];
        g.bench_function(BenchmarkId::new("classifier-burst", n), |b| {
            b.iter(|| {
                next_burst(&mut at, &pkts, &mut burst);
                for p in &burst {
                    prefetch(p.as_ptr());
                }
                cl.classify_burst(black_box(&burst), 0, &mut res);
                res.iter().fold(0, |a, r| a ^ r)
            })
        });
        g.bench_function(BenchmarkId::new("classifier", n), |b| {
            b.iter(|| {
                next_burst(&mut at, &pkts, &mut burst);
                for p in &burst {
                    prefetch(p.as_ptr());
                }
                black_box(&burst).iter().fold(0, |a, p| a ^ cl.classify(p, 0))
            })
        });
        g.bench_function(BenchmarkId::new("parse-only", n), |b| {
            b.iter(|| {
                next_burst(&mut at, &pkts, &mut burst);
                for p in &burst {
                    prefetch(p.as_ptr());
                }
                black_box(&burst).iter().fold(0, |a, p| a ^ Key::parse(p).map_or(0, |k| k.dst ^ k.dport))
            })
        });
        g.bench_function(BenchmarkId::new("linear", n), |b| {
            b.iter(|| {
                next_burst(&mut at, &pkts, &mut burst);
                for p in &burst {
                    prefetch(p.as_ptr());
                }
                black_box(&burst)
                    .iter()
                    .fold(0, |a, p| a ^ Key::parse(p).map_or(0, |k| classify_linear(&rules, &k, 0, |_| {})))
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
