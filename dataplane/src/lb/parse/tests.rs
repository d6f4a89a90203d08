//! Tests of the header parsers: the fixed-offset path equals the general one,
//! and a device's checksum verdict replaces the software check.
use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::{parse_common, parse_general};
use crate::buf::{PacketBuf, VecBuf};
use crate::lb::test_util::*;
use crate::sched::SchedKind;
use crate::service::Method;
use crate::snapshot::Knobs;
use crate::verdict::{DropReason, Verdict};
use crate::wire::tcp::flags::{ACK, SYN};

/// A buffer as a device with RX IPv4 checksum offload hands it over.
struct DeviceChecked(VecBuf, Option<bool>);

impl PacketBuf for DeviceChecked {
    fn data(&self) -> &[u8] {
        self.0.data()
    }
    fn data_mut(&mut self) -> &mut [u8] {
        self.0.data_mut()
    }
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        self.0.prepend(n)
    }
    fn adj(&mut self, n: usize) -> bool {
        self.0.adj(n)
    }
    fn trim_to(&mut self, len: usize) -> bool {
        self.0.trim_to(len)
    }
    fn headroom(&self) -> usize {
        self.0.headroom()
    }
    fn ip_checksum_verified(&self) -> Option<bool> {
        self.1
    }
}

/// With RX checksum offload the device's verdict on the IPv4 header checksum
/// replaces the software check; without one (UNKNOWN) software checks.
#[test]
fn device_checksum_verdict_replaces_the_software_check() {
    let mut r = Rig::new();
    let s =
        snap(vec![service(tcp_svc(80), SchedKind::Rr, None, vec![dest(1, 80, Method::Route, 1)])], Knobs::default());
    let good = tcp(client(1), 1000, VIP, 80, SYN);
    let mut bad = good.clone();
    bad[24] ^= 0xff; // IPv4 header checksum
    let mut go = |frame: &[u8], verdict: Option<bool>| {
        let mut b = DeviceChecked(VecBuf::new(frame, 128), verdict);
        r.lb.process(&mut b, 0, 0, &s, 0, &r.counters)
    };
    assert_eq!(go(&bad, None), Verdict::Drop(DropReason::Ipv4BadChecksum), "software check");
    assert_eq!(go(&good, Some(false)), Verdict::Drop(DropReason::Ipv4BadChecksum), "device said bad");
    assert_eq!(go(&bad, Some(true)), Verdict::Forward { port: 1 }, "device said good: not checked again");
    assert_eq!(go(&good, None), Verdict::Forward { port: 1 });
}

#[test]
fn the_common_path_takes_ordinary_frames() {
    for tcp in [true, false] {
        let f = frame(tcp, [192, 0, 2, 1], [10, 0, 0, 100], (40000, 80), ACK, true, 6, 4);
        let (flow, len) = parse_common(&f, None).expect("an ordinary frame takes the common path");
        assert_eq!((flow.src, flow.dst, flow.sport, flow.dport), (client(1), VIP, 40000, 80));
        assert_eq!(len, f.len() - 4, "padding trimmed");
        assert_eq!(Ok((flow, len)), parse_general(&f, None));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// Whatever frame the common path takes, it reads as the general path
    /// does: ordinary frames, and the same with a few bytes of the
    /// headers changed, cut short or lengthened, under each device verdict.
    #[test]
    fn common_parse_equals_the_general_one(
        tcp in any::<bool>(),
        src in any::<[u8; 4]>(),
        dst in any::<[u8; 4]>(),
        ports in any::<(u16, u16)>(),
        flags in any::<u8>(),
        df in any::<bool>(),
        payload in prop_oneof![0usize..64, 1400usize..1600],
        pad in 0usize..8,
        edits in proptest::collection::vec((0usize..60, any::<u8>()), 0..3),
        cut in proptest::option::of(0usize..80),
        device in proptest::option::of(any::<bool>()),
        frag in prop_oneof![Just(None), Just(Some(0x2000u16)), (1u16..0x2000).prop_map(Some), (0x2001u16..0x4000).prop_map(Some)],
        reseal in any::<bool>(),
        ihl in prop_oneof![3 => Just(5u8), 1 => 0u8..16],
    ) {
        let mut f = frame(tcp, src, dst, ports, flags, df, payload, pad);
        let untouched = edits.is_empty() && cut.is_none() && frag.is_none() && ihl == 5;
        // Header options (or a nonsense IHL): the bytes after the header
        // are then read as options.
        f[14] = 0x40 | ihl;
        if let Some(mf_offset) = frag {
            // A fragment: MF and/or an offset, DF as it was.
            let v = (u16::from_be_bytes([f[20], f[21]]) & 0x4000) | mf_offset;
            f[20..22].copy_from_slice(&v.to_be_bytes());
        }
        for (at, v) in edits {
            if let Some(b) = f.get_mut(at) {
                *b = v;
            }
        }
        let hlen = usize::from(f.get(14).map_or(5, |b| b & 0x0f)) * 4;
        if (reseal || frag.is_some() || ihl != 5) && f.len() >= 14 + hlen.max(20) {
            // A correct header checksum over the edits, so they reach the
            // checks behind it.
            let c = crate::checksum::ipv4_header_checksum(&f[14..14 + hlen.max(20)]);
            f[24..26].copy_from_slice(&c.to_be_bytes());
        }
        if let Some(c) = cut {
            f.truncate(c);
        }
        let common = parse_common(&f, device);
        if let Some(x) = common {
            prop_assert_eq!(Ok(x), parse_general(&f, device));
        }
        let unicast = Ipv4Addr::from(src);
        let ordinary = !(unicast.is_unspecified() || unicast.is_broadcast() || unicast.is_multicast() || unicast.is_loopback());
        if untouched && ordinary && device != Some(false) {
            prop_assert!(common.is_some(), "an ordinary frame left to the general path");
        }
    }
}
