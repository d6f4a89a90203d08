//! Classifier tests: frames built with etherparse for `Key::parse`, golden
//! rule cases, and property tests against the linear evaluator.

use proptest::prelude::*;

use super::*;

fn tcp_frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src, dst, 64)
        .tcp(sport, dport, 1, 1000);
    let mut v = Vec::new();
    b.write(&mut v, &[]).unwrap();
    v
}

fn udp_frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src, dst, 64)
        .udp(sport, dport);
    let mut v = Vec::new();
    b.write(&mut v, &[1, 2, 3]).unwrap();
    v
}

fn ip(a: [u8; 4]) -> u32 {
    u32::from_be_bytes(a)
}

fn mark(v: u32) -> Action {
    Action::Mark { value: v, mask: u32::MAX }
}

fn dports(ranges: &[(u16, u16)]) -> PortMatch {
    PortMatch { ranges: ranges.to_vec(), negate: false }
}

#[test]
fn key_of_tcp_udp_and_others() {
    let k = Key::parse(&tcp_frame([1, 2, 3, 4], [10, 0, 0, 100], 1234, 80)).unwrap();
    assert_eq!(
        (k.src, k.dst, k.proto, k.sport, k.dport, k.len),
        (ip([1, 2, 3, 4]), ip([10, 0, 0, 100]), 6, 1234, 80, 40)
    );
    let k = Key::parse(&udp_frame([1, 2, 3, 4], [10, 0, 0, 100], 53, 5353)).unwrap();
    assert_eq!((k.proto, k.sport, k.dport, k.len), (17, 53, 5353, 31));
    // ARP and IPv6 never reach iptables.
    let mut arp = tcp_frame([1, 2, 3, 4], [10, 0, 0, 100], 1, 2);
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    assert_eq!(Key::parse(&arp), None);
    // Truncated IPv4 (total length past the frame): ip_rcv drops it.
    let f = tcp_frame([1, 2, 3, 4], [10, 0, 0, 100], 1, 2);
    assert_eq!(Key::parse(&f[..30]), None);
    // ICMP: no ports.
    let b = etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4([1, 1, 1, 1], [2, 2, 2, 2], 9)
        .icmpv4_echo_request(1, 1);
    let mut v = Vec::new();
    b.write(&mut v, &[0; 8]).unwrap();
    let k = Key::parse(&v).unwrap();
    assert_eq!((k.proto, k.sport, k.dport), (1, NO_PORT, NO_PORT));
}

#[test]
fn key_of_fragments_and_vlan() {
    let mut f = tcp_frame([1, 2, 3, 4], [10, 0, 0, 100], 1234, 80);
    // First fragment (MF, offset 0): ports are there.
    f[20] = 0x20;
    assert_eq!(Key::parse(&f).unwrap().dport, 80);
    // Non-first fragment: no ports, even though the bytes look like ports.
    f[20] = 0x00;
    f[21] = 0x10;
    assert_eq!(Key::parse(&f).unwrap().dport, NO_PORT);
    // One 802.1Q tag is looked through.
    let b = etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
        .single_vlan(etherparse::VlanId::try_new(7).unwrap())
        .ipv4([1, 1, 1, 1], [2, 2, 2, 2], 9)
        .udp(5, 6);
    let mut v = Vec::new();
    b.write(&mut v, &[]).unwrap();
    assert_eq!(Key::parse(&v).unwrap().dport, 6);
}

#[test]
fn short_tcp_header_has_no_ports() {
    let f = tcp_frame([1, 2, 3, 4], [10, 0, 0, 100], 1234, 80);
    let mut g = f[..14 + 20 + 8].to_vec();
    g[16..18].copy_from_slice(&28u16.to_be_bytes()); // total length 28
    assert_eq!(Key::parse(&g).unwrap().sport, NO_PORT);
}

#[test]
fn last_mark_wins_and_return_stops() {
    let rules = vec![
        Rule { dst: Some(Prefix { addr: ip([10, 0, 0, 100]), len: 32, negate: false }), ..Rule::any(mark(1)) },
        Rule {
            proto: Some(ProtoMatch { proto: 6, negate: false }),
            dport: vec![dports(&[(80, 80), (443, 443)])],
            l4: true,
            ..Rule::any(mark(10))
        },
        Rule { src: Some(Prefix { addr: ip([192, 168, 0, 0]), len: 16, negate: false }), ..Rule::any(Action::Return) },
        Rule::any(Action::Mark { value: 0x100, mask: 0x100 }),
    ];
    let c = Classifier::build(&rules);
    let cases = [
        (tcp_frame([1, 2, 3, 4], [10, 0, 0, 100], 1000, 80), 0x10a),
        (tcp_frame([1, 2, 3, 4], [10, 0, 0, 100], 1000, 22), 0x101),
        (tcp_frame([192, 168, 3, 4], [10, 0, 0, 100], 1000, 443), 10),
        (udp_frame([1, 2, 3, 4], [10, 0, 0, 9], 1000, 443), 0x100),
    ];
    for (f, want) in &cases {
        assert_eq!(c.classify(f, 0), *want);
        let k = Key::parse(f).unwrap();
        assert_eq!(classify_linear(&rules, &k, 0, |_| {}), *want);
    }
    // Non-IPv4: no rule at all, not even the unconditional one.
    let mut arp = cases[0].0.clone();
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    assert_eq!(c.classify(&arp, 0), 0);
}

#[test]
fn mark_operations_compose_like_xt_mark() {
    // --set-mark 0x5/0xf, --and-mark 0xfe, --or-mark 0x30, --xor-mark 0x1.
    let rules = vec![
        Rule::any(Action::Mark { value: 0xff00, mask: u32::MAX }),
        Rule::any(Action::Mark { value: 0x5, mask: 0xf | 0x5 }),
        Rule::any(Action::Mark { value: 0, mask: !0xfe }),
        Rule::any(Action::Mark { value: 0x30, mask: 0x30 }),
        Rule::any(Action::Mark { value: 0x1, mask: 0 }),
    ];
    let c = Classifier::build(&rules);
    let f = tcp_frame([1, 2, 3, 4], [5, 6, 7, 8], 1, 2);
    // 0xff00 -> 0xff05 -> 0x04 -> 0x34 -> 0x35
    assert_eq!(c.classify(&f, 0), 0x35);
}

#[test]
fn counters_and_multiport_either_counted_once() {
    let rules = vec![
        Rule {
            proto: Some(ProtoMatch { proto: 6, negate: false }),
            ports: vec![dports(&[(80, 80)])],
            l4: true,
            ..Rule::any(mark(7))
        },
        Rule { in_port: Some(InPortMatch { ports: vec![1], negate: true }), ..Rule::any(Action::Count) },
    ];
    let c = Classifier::build(&rules);
    let mut ctr = vec![RuleCounter::default(); 2];
    // Both ports 80: both sub-rules match, counted once.
    let f = tcp_frame([1, 2, 3, 4], [5, 6, 7, 8], 80, 80);
    assert_eq!(c.classify_counted(&f, 0, &mut ctr), 7);
    assert_eq!(c.classify_counted(&f, 1, &mut ctr), 7);
    let g = tcp_frame([1, 2, 3, 4], [5, 6, 7, 8], 81, 82);
    assert_eq!(c.classify_counted(&g, 0, &mut ctr), 0);
    assert_eq!(ctr, vec![RuleCounter { packets: 2, bytes: 80 }, RuleCounter { packets: 2, bytes: 80 }]);
    // A short counter slice is not an error.
    assert_eq!(c.classify_counted(&f, 0, &mut []), 7);
}

#[test]
fn port_conditions_fail_without_ports_even_negated() {
    let rules = vec![
        Rule { dport: vec![PortMatch { ranges: vec![(80, 80)], negate: true }], ..Rule::any(mark(1)) },
        Rule {
            l4: true,
            proto: Some(ProtoMatch { proto: 6, negate: false }),
            ..Rule::any(Action::Mark { value: 2, mask: 2 })
        },
    ];
    let c = Classifier::build(&rules);
    let mut f = tcp_frame([1, 2, 3, 4], [5, 6, 7, 8], 1, 2);
    assert_eq!(c.classify(&f, 0), 3);
    f[21] = 0x10; // non-first fragment
    assert_eq!(c.classify(&f, 0), 0);
}

#[test]
fn empty_and_unconditional() {
    let f = tcp_frame([1, 2, 3, 4], [5, 6, 7, 8], 1, 2);
    assert_eq!(Classifier::build(&[]).classify(&f, 0), 0);
    assert_eq!(Classifier::build(&[Rule::any(mark(9))]).classify(&f, 3), 9);
}

// ---- property tests against the linear evaluator ----

fn arb_prefix() -> impl Strategy<Value = Option<Prefix>> {
    prop_oneof![
        2 => Just(None),
        3 => (prop::sample::select(vec![ip([10, 0, 0, 0]), ip([10, 0, 0, 100]), ip([10, 0, 1, 7]), ip([192, 168, 0, 1]), 0, u32::MAX]),
              prop::sample::select(vec![0u8, 8, 16, 24, 30, 31, 32]), any::<bool>())
            .prop_map(|(addr, len, negate)| Some(Prefix { addr, len, negate })),
        // Spread over the whole space: many intervals (the block index).
        1 => (any::<u32>(), 1u8..=32, any::<bool>()).prop_map(|(addr, len, negate)| Some(Prefix { addr, len, negate })),
    ]
}

fn arb_ports() -> impl Strategy<Value = PortMatch> {
    let port = prop_oneof![4 => prop::sample::select(vec![0u16, 1, 79, 80, 81, 443, 1024, 8080, 65534, 65535]), 1 => any::<u16>()];
    (prop::collection::vec((port.clone(), port), 1..4), any::<bool>())
        .prop_map(|(ranges, negate)| PortMatch { ranges, negate })
}

fn arb_action() -> impl Strategy<Value = Action> {
    prop_oneof![
        6 => (any::<u32>(), prop::sample::select(vec![u32::MAX, 0xff, 0, 0xf0f0])).prop_map(|(value, mask)| Action::Mark { value, mask }),
        1 => Just(Action::Return),
        1 => Just(Action::Accept),
        1 => Just(Action::Count),
    ]
}

fn arb_rule() -> impl Strategy<Value = Rule> {
    (
        arb_prefix(),
        arb_prefix(),
        prop::option::of((prop::sample::select(vec![1u8, 6, 17, 47]), any::<bool>())),
        any::<bool>(),
        prop::collection::vec(arb_ports(), 0..2),
        prop::collection::vec(arb_ports(), 0..2),
        prop::collection::vec(arb_ports(), 0..2),
        prop::option::of((prop::collection::vec(0u16..4, 0..3), any::<bool>())),
        arb_action(),
    )
        .prop_map(|(src, dst, proto, l4, sport, dport, ports, inp, action)| Rule {
            src,
            dst,
            proto: proto.map(|(proto, negate)| ProtoMatch { proto, negate }),
            l4,
            sport,
            dport,
            ports,
            in_port: inp.map(|(ports, negate)| InPortMatch { ports, negate }),
            action,
        })
}

fn arb_key() -> impl Strategy<Value = (Key, u16)> {
    let addr = prop_oneof![
        3 => prop::sample::select(vec![ip([10, 0, 0, 0]), ip([10, 0, 0, 100]), ip([10, 0, 0, 101]), ip([10, 0, 1, 7]), ip([10, 0, 1, 6]), ip([192, 168, 0, 1]), 0, u32::MAX]),
        1 => any::<u32>(),
    ];
    let port = prop_oneof![
        3 => prop::sample::select(vec![0u32, 1, 79, 80, 81, 443, 1024, 8080, 65534, 65535, NO_PORT]),
        1 => 0u32..=65535,
    ];
    (addr.clone(), addr, prop::sample::select(vec![1u8, 6, 17, 47, 0]), port.clone(), port, 0u16..5).prop_map(
        |(src, dst, proto, sport, dport, in_port)| {
            // Ports come together: both or neither.
            let dport = if sport == NO_PORT {
                NO_PORT
            } else if dport == NO_PORT {
                0
            } else {
                dport
            };
            (Key { src, dst, proto, sport, dport, len: 60 }, in_port)
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn matches_linear(rules in prop::collection::vec(arb_rule(), 0..40), keys in prop::collection::vec(arb_key(), 1..40)) {
        let c = Classifier::build(&rules);
        for (k, in_port) in &keys {
            let mut want = Vec::new();
            let mut got = Vec::new();
            let m1 = classify_linear(&rules, k, *in_port, |i| want.push(i));
            let m2 = c.classify_key(k, *in_port, |i| got.push(i));
            prop_assert_eq!(m2, m1, "key {:?} in_port {}", k, in_port);
            prop_assert_eq!(got, want);
        }
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn many_rules_match_linear(rules in prop::collection::vec(arb_rule(), 100..300), keys in prop::collection::vec(arb_key(), 1..20)) {
        // Over 64 and 4,096 bits the words and chunks wrap.
        let mut rules = rules;
        let n = rules.len();
        rules.extend(rules.clone().into_iter().cycle().take(4200 - n.min(4200)).map(|mut r| {
            if r.action == Action::Return || r.action == Action::Accept { r.action = Action::Count; }
            r
        }));
        let c = Classifier::build(&rules);
        for (k, in_port) in &keys {
            let mut want = Vec::new();
            let mut got = Vec::new();
            let m1 = classify_linear(&rules, k, *in_port, |i| want.push(i));
            let m2 = c.classify_key(k, *in_port, |i| got.push(i));
            prop_assert_eq!(m2, m1);
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn classify_never_panics(rules in prop::collection::vec(arb_rule(), 0..10), frame in prop::collection::vec(any::<u8>(), 0..80)) {
        let c = Classifier::build(&rules);
        let _ = c.classify(&frame, 0);
    }
}

#[test]
fn build_10k_is_quick() {
    let mut rules = Vec::new();
    for i in 0..10_000u32 {
        rules.push(Rule {
            dst: Some(Prefix { addr: 0x0a00_0000 + i * 7, len: if i % 5 == 0 { 24 } else { 32 }, negate: false }),
            proto: Some(ProtoMatch { proto: 6, negate: false }),
            dport: vec![dports(&[(80, 80), (443, 443), ((i % 1000) as u16 + 8000, (i % 1000) as u16 + 8010)])],
            l4: true,
            ..Rule::any(mark(i + 1))
        });
    }
    let t = std::time::Instant::now();
    let c = Classifier::build(&rules);
    let took = t.elapsed();
    assert!(took.as_secs_f64() < 5.0, "build took {took:?}");
    let f = tcp_frame([1, 2, 3, 4], [10, 0, 0, 7], 1, 443);
    let k = Key::parse(&f).unwrap();
    assert_eq!(c.classify(&f, 0), classify_linear(&rules, &k, 0, |_| {}));
}

#[test]
fn clustered_rules_match_linear() {
    // Clustered /32 and /24 destinations (the block index over the span of
    // boundaries), ports with and without a condition, keys inside, at the
    // edges of and outside the cluster.
    let mut rules = Vec::new();
    for i in 0..3_000u32 {
        let dport = match i % 3 {
            0 => vec![dports(&[(80, 80), ((i % 700) as u16 + 1000, (i % 700) as u16 + 1003)])],
            1 => vec![dports(&[(443, 443)])],
            _ => vec![],
        };
        rules.push(Rule {
            dst: Some(Prefix { addr: 0x0a00_0000 + i * 13, len: if i % 7 == 0 { 24 } else { 32 }, negate: false }),
            proto: (i % 5 != 0).then_some(ProtoMatch { proto: 6, negate: false }),
            l4: !dport.is_empty(),
            dport,
            ..Rule::any(mark(i + 1))
        });
    }
    rules
        .push(Rule { src: Some(Prefix { addr: ip([1, 2, 0, 0]), len: 16, negate: true }), ..Rule::any(Action::Count) });
    let c = Classifier::build(&rules);
    let mut x = 0x9e37_79b9u32;
    for j in 0..400u32 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let dst = match j % 4 {
            0 => 0x0a00_0000 + (x % 3_000) * 13,
            1 => 0x0a00_0000 + x % 40_000,
            2 => x,
            _ => [0, 0x0a00_0000, 0x0a00_0000 + 2_999 * 13, 0x0a00_0000 + 2_999 * 13 + 1, u32::MAX][(x % 5) as usize],
        };
        let dport = [80, 443, 1000 + x % 800, x % 65536, NO_PORT][(j % 5) as usize];
        let k = Key {
            src: if j % 2 == 0 { ip([1, 2, 3, 4]) } else { x.rotate_left(7) },
            dst,
            proto: if j % 3 == 0 { 17 } else { 6 },
            sport: if dport == NO_PORT { NO_PORT } else { 1234 },
            dport,
            len: 60,
        };
        let (mut want, mut got) = (Vec::new(), Vec::new());
        let m1 = classify_linear(&rules, &k, 0, |i| want.push(i));
        let m2 = c.classify_key(&k, 0, |i| got.push(i));
        assert_eq!((m2, got), (m1, want), "key {k:?}");
    }
}

// ---- the burst API against per-frame classification ----

/// A frame for `k` (tcp, udp, or another protocol without ports when the
/// key has none), and the key `Key::parse` reads back from it.
fn frame_of(k: &Key) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2([2; 6], [4; 6]).ipv4(k.src.to_be_bytes(), k.dst.to_be_bytes(), 64);
    let mut v = Vec::new();
    let (sp, dp) = (k.sport as u16, k.dport as u16);
    match (k.proto, k.sport) {
        (6, p) if p != NO_PORT => b.tcp(sp, dp, 1, 1000).write(&mut v, &[]).unwrap(),
        (17, p) if p != NO_PORT => b.udp(sp, dp).write(&mut v, &[]).unwrap(),
        (6 | 17, _) => {
            // No ports: a non-first fragment.
            b.udp(sp, dp).write(&mut v, &[]).unwrap();
            v[20] = 0x00;
            v[21] = 0x10;
            v[23] = k.proto;
        }
        (p, _) => b.write(&mut v, etherparse::IpNumber(p), &[0; 8]).unwrap(),
    }
    v
}

/// Checks the burst API against `classify_counted` frame by frame: marks,
/// counters, and `on_match`'s (frame, rule) sequence against `classify_key`.
fn burst_matches_per_frame(c: &Classifier, frames: &[Vec<u8>], in_port: u16) -> Result<(), TestCaseError> {
    let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
    let mut want_counters = vec![RuleCounter::default(); c.len()];
    let mut want_hits = Vec::new();
    let mut want = Vec::new();
    for (i, f) in refs.iter().enumerate() {
        want.push(c.classify_counted(f, in_port, &mut want_counters));
        if let Some(k) = Key::parse(f) {
            c.classify_key(&k, in_port, |r| want_hits.push((i, r, k.len)));
        }
    }
    let mut marks = vec![u32::MAX; refs.len()];
    let mut counters = vec![RuleCounter::default(); c.len()];
    c.classify_burst_counted(&refs, in_port, &mut marks, &mut counters);
    prop_assert_eq!(&marks, &want);
    prop_assert_eq!(counters, want_counters);
    let mut hits = Vec::new();
    let mut marks = vec![u32::MAX; refs.len()];
    c.classify_burst_with(&refs, in_port, &mut marks, |i, r, len| hits.push((i, r, len)));
    prop_assert_eq!(&marks, &want);
    prop_assert_eq!(hits, want_hits);
    let mut marks = vec![u32::MAX; refs.len()];
    c.classify_burst(&refs, in_port, &mut marks);
    prop_assert_eq!(marks, want);
    Ok(())
}

fn arb_frames() -> impl Strategy<Value = Vec<Vec<u8>>> {
    let frame = prop_oneof![
        8 => arb_key().prop_map(|(k, _)| frame_of(&k)),
        1 => prop::collection::vec(any::<u8>(), 0..80),
    ];
    // Up to three bursts and a partial one.
    prop::collection::vec(frame, 0..100)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn burst_matches_per_frame_small(rules in prop::collection::vec(arb_rule(), 0..40), frames in arb_frames(), in_port in 0u16..5) {
        burst_matches_per_frame(&Classifier::build(&rules), &frames, in_port)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn burst_matches_per_frame_many(rules in prop::collection::vec(arb_rule(), 100..300), frames in arb_frames(), in_port in 0u16..5) {
        // Past 4,096 bits, with both the candidate lists and the full AND.
        let n = rules.len();
        let rules: Vec<Rule> = rules.iter().cloned().cycle().take(4200.max(n)).collect();
        burst_matches_per_frame(&Classifier::build(&rules), &frames, in_port)?;
    }
}

#[test]
fn burst_marks_shorter_than_frames() {
    let r = Rule { dst: Some(Prefix { addr: ip([10, 0, 0, 100]), len: 32, negate: false }), ..Rule::any(mark(7)) };
    let c = Classifier::build(&[r]);
    let f = tcp_frame([1, 2, 3, 4], [10, 0, 0, 100], 1, 80);
    let frames = [f.as_slice(); 40];
    let mut marks = [0u32; 35];
    c.classify_burst(&frames, 0, &mut marks);
    assert_eq!(marks, [7; 35]);
    let mut counters = [RuleCounter::default(); 1];
    c.classify_burst_counted(&frames[..3], 0, &mut marks, &mut counters);
    assert_eq!(counters[0], RuleCounter { packets: 3, bytes: 120 });
}

#[test]
fn snapshot_burst_counts_per_worker() {
    use crate::fwd::Fib;
    use crate::snapshot::Snapshot;
    let r = Rule { dst: Some(Prefix { addr: ip([10, 0, 0, 100]), len: 32, negate: false }), ..Rule::any(mark(10)) };
    let s = Snapshot::routing_only(Fib::new(vec![], vec![], vec![]))
        .with_fwmark(Classifier::build(&[r, Rule::any(Action::Count)]), 2);
    let hit = udp_frame([192, 0, 2, 1], [10, 0, 0, 100], 1, 53);
    let miss = udp_frame([192, 0, 2, 1], [10, 0, 0, 101], 1, 53);
    let frames = [hit.as_slice(), miss.as_slice(), &hit[..10]];
    let mut marks = [u32::MAX; 3];
    s.marks_counted_burst(&frames, 0, 1, &mut marks);
    assert_eq!(marks, [10, 0, 0]);
    let mut again = [u32::MAX; 3];
    s.fwmark.classify_burst(&frames, 0, &mut again);
    assert_eq!(again, marks, "uncounted");
    // Two packets of 31 bytes on the count-only rule, one on the mark rule.
    assert_eq!(s.fwmark_totals(), vec![(1, 31), (2, 62)]);
    let mut one = [0];
    s.marks_counted_burst(&[&hit], 0, 0, &mut one);
    assert_eq!(one, [10]);
    assert_eq!(s.fwmark_totals(), vec![(2, 62), (3, 93)]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn parse_fast_path_equals_typed_views(
        (k, _) in arb_key(),
        edits in prop::collection::vec((0usize..48, any::<u8>()), 0..4),
        cut in 0usize..70,
    ) {
        // Valid frames with a few bytes changed (ethertype, version/IHL,
        // lengths, fragment bits, protocol) and cut short.
        let mut f = frame_of(&k);
        for (at, v) in edits {
            if let Some(b) = f.get_mut(at) {
                *b = [v, 0x45, 0x08, 0x00, 0x46, 0x20, 0x3f][usize::from(v) % 7];
            }
        }
        f.truncate(f.len().saturating_sub(cut % 30));
        prop_assert_eq!(Key::parse(&f), Key::parse_any(&f));
    }
}
