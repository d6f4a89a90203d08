//! rvs's LVS sync messages (specs/ipvs.md §5.2 v1, §5.3 v0) as an independent
//! decoder sees them: frames built with etherparse around the datagrams
//! rvs's encoder produced, written to a pcap, decoded by tshark's `ipvs`
//! dissector field by field.
use std::net::Ipv4Addr;
use std::process::Command;

use ctl::sync::wire::{Encoder, Version};
use dataplane::sync::SyncRecord;
use etherparse::PacketBuilder;
use pcap_file::pcap::{PcapPacket, PcapWriter};

fn records() -> Vec<SyncRecord> {
    vec![
        SyncRecord {
            proto: 6,
            state: 1, // ESTABLISHED
            flags: 0x0000,
            caddr: Ipv4Addr::new(203, 0, 113, 5),
            vaddr: Ipv4Addr::new(10, 0, 0, 1),
            daddr: Ipv4Addr::new(192, 168, 10, 1),
            cport: 51234,
            vport: 80,
            dport: 8080,
            timeout: 900,
            fwmark: 0,
        },
        SyncRecord {
            proto: 17,
            state: 0,
            flags: 0x0183, // Route | NOOUTPUT | INACTIVE
            caddr: Ipv4Addr::new(203, 0, 113, 9),
            vaddr: Ipv4Addr::new(10, 0, 0, 1),
            daddr: Ipv4Addr::new(192, 168, 10, 3),
            cport: 5353,
            vport: 53,
            dport: 53,
            timeout: 300,
            fwmark: 7,
        },
        SyncRecord {
            proto: 6,
            state: 1, // ASSURED template
            flags: 0x1003,
            caddr: Ipv4Addr::new(203, 0, 113, 0),
            vaddr: Ipv4Addr::new(10, 0, 0, 1),
            daddr: Ipv4Addr::new(192, 168, 10, 1),
            cport: 0,
            vport: 443,
            dport: 443,
            timeout: 360,
            fwmark: 0,
        },
    ]
}

fn tshark_fields(version: Version, fields: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sync.pcap");
    let mut enc = Encoder::new(version, 9, 1472);
    for r in records() {
        assert!(enc.push(&r).is_none());
    }
    let payload = enc.finish().expect("one message");
    let mut frame = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [0x01, 0x00, 0x5e, 0, 0, 0x51])
        .ipv4([10, 9, 0, 1], [224, 0, 0, 81], 1)
        .udp(40000, 8848)
        .write(&mut frame, &payload)
        .expect("frame");
    let file = std::fs::File::create(&path).expect("pcap");
    let mut w = PcapWriter::new(file).expect("pcap writer");
    w.write_packet(&PcapPacket::new(std::time::Duration::ZERO, frame.len() as u32, &frame)).expect("write");
    drop(w);
    let mut cmd = Command::new("tshark");
    cmd.args(["-n", "-r"]).arg(&path).args(["-d", "udp.port==8848,ipvs", "-T", "fields", "-E", "occurrence=a"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("run tshark (apt-get install tshark)");
    assert!(out.status.success(), "tshark: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("utf8");
    let line = text.lines().next().expect("one packet").to_string();
    line.split('\t').map(str::to_string).collect()
}

#[test]
fn tshark_decodes_rvs_v1_messages_field_by_field() {
    let f = tshark_fields(
        Version::V1,
        &[
            "ipvs.syncid",
            "ipvs.size",
            "ipvs.conncount",
            "ipvs.version",
            "ipvs.type",
            "ipvs.proto",
            "ipvs.size.v1",
            "ipvs.flags.v1",
            "ipvs.state",
            "ipvs.cport",
            "ipvs.vport",
            "ipvs.dport",
            "ipvs.fwmark",
            "ipvs.timeout",
            "ipvs.caddr",
            "ipvs.vaddr",
            "ipvs.daddr",
        ],
    );
    let want = [
        "9",
        "116", // 8 + 3 × 36
        "3",
        "1",
        "0,0,0",
        "6,17,6",
        "36,36,36",
        "0x00000000,0x00000183,0x00001003",
        "1,0,1",
        "51234,5353,0",
        "80,53,443",
        "8080,53,443",
        "0,7,0",
        "900,300,360",
        "203.0.113.5,203.0.113.9,203.0.113.0",
        "10.0.0.1,10.0.0.1,10.0.0.1",
        "192.168.10.1,192.168.10.3,192.168.10.1",
    ];
    assert_eq!(f.len(), want.len(), "{f:?}");
    for (i, w) in want.iter().enumerate() {
        assert_eq!(norm(&f[i]), norm(w), "field {i}: {f:?}");
    }
}

#[test]
fn tshark_decodes_rvs_v0_messages_field_by_field() {
    let f = tshark_fields(
        Version::V0,
        &[
            "ipvs.conncount",
            "ipvs.syncid",
            "ipvs.size",
            "ipvs.proto",
            "ipvs.cport",
            "ipvs.vport",
            "ipvs.dport",
            "ipvs.caddr",
            "ipvs.vaddr",
            "ipvs.daddr",
            "ipvs.flags",
            "ipvs.state",
        ],
    );
    let want = [
        "3",
        "9",
        "76", // 4 + 3 × 24
        "6,17,6",
        "51234,5353,0",
        "80,53,443",
        "8080,53,443",
        "203.0.113.5,203.0.113.9,203.0.113.0",
        "10.0.0.1,10.0.0.1,10.0.0.1",
        "192.168.10.1,192.168.10.3,192.168.10.1",
        "0x0000,0x0183,0x1003",
        "1,0,1",
    ];
    assert_eq!(f.len(), want.len(), "{f:?}");
    for (i, w) in want.iter().enumerate() {
        assert_eq!(norm(&f[i]), norm(w), "field {i}: {f:?}");
    }
}

/// tshark prints some integers in hex (0x06): compare values, not spelling.
fn norm(s: &str) -> Vec<String> {
    s.split(',')
        .map(|x| match x.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).map_or(x.to_string(), |v| v.to_string()),
            None => x.to_string(),
        })
        .collect()
}
