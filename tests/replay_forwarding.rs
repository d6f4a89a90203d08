//! pcap replay: rvsd on net_pcap in replay mode forwards a generated capture;
//! the output capture is decoded with etherparse and cross-checked with tshark,
//! both independent of rvs's own packet code.
mod common;

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{drop_count, port_counts, run_rvsd};
use etherparse::{LinkSlice, NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use pcap_file::pcap::{PcapPacket, PcapWriter};

const PORT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 1, 2];
const RS1_MAC: [u8; 6] = [2, 0, 0, 0, 2, 0x0b];
const RS2_MAC: [u8; 6] = [2, 0, 0, 0, 2, 0x0c];

fn write_pcap(path: &Path, frames: &[(Duration, Vec<u8>)]) {
    let mut w = PcapWriter::new(std::fs::File::create(path).unwrap()).unwrap();
    for (ts, f) in frames {
        w.write_packet(&PcapPacket::new(*ts, f.len() as u32, f)).unwrap();
    }
}

fn udp(dst: [u8; 4], ttl: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT_MAC)
        .ipv4([10, 0, 1, 2], dst, ttl)
        .udp(40000, 53)
        .write(&mut v, payload)
        .unwrap();
    v
}

fn tcp(dst: [u8; 4], sport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT_MAC)
        .ipv4([10, 0, 1, 2], dst, 64)
        .tcp(sport, 80, 1000, 65535)
        .ack(1)
        .write(&mut v, payload)
        .unwrap();
    v
}

fn config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("rvs.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[dataplane]
eal_args = ["--no-huge", "-m", "256", "--no-pci", "--log-level=lib.eal:warning"]
mbufs = 2048
replay = true

[[port]]
name = "p0"
device = "net_pcap0,rx_pcap={d}/in.pcap,tx_pcap={d}/out.pcap"
mac = "02:00:00:00:00:01"
addresses = ["10.0.1.1/24", "10.0.2.1/24"]

[[neighbor]]
ip = "10.0.2.11"
mac = "02:00:00:00:02:0b"
port = "p0"

[[neighbor]]
ip = "10.0.2.12"
mac = "02:00:00:00:02:0c"
port = "p0"

[control]
socket = "{d}/rvsd.sock"
"#,
            d = dir.display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn replay_forwards_rewrites_macs_and_counts_drops() {
    let dir = tempfile::tempdir().unwrap();
    // 200 packets to forward: UDP and TCP to two real servers, sizes 0..1400.
    let mut forwarded_in = Vec::new();
    for i in 0..200usize {
        let dst = if i % 2 == 0 { [10, 0, 2, 11] } else { [10, 0, 2, 12] };
        let payload: Vec<u8> = (0..(i * 7) % 1400).map(|b| (b ^ i) as u8).collect();
        forwarded_in.push(if i % 3 == 0 { tcp(dst, 1024 + i as u16, &payload) } else { udp(dst, 64, &payload) });
    }
    // Minimum-size frames arrive padded to 60 bytes; rvsd must not forward the padding.
    let mut padded = udp([10, 0, 2, 11], 64, b"pad");
    let padded_len = padded.len();
    padded.resize(60, 0);
    forwarded_in.push(padded);

    let mut to_drop: Vec<(Vec<u8>, &str)> = vec![
        (udp([10, 0, 2, 11], 1, b"ttl"), "ttl_expired"),
        (udp([10, 0, 2, 11], 0, b"ttl"), "ttl_expired"),
        (udp([10, 0, 2, 1], 64, b"me"), "local"),
        (udp([10, 0, 2, 99], 64, b"who"), "no_neighbor"),
        (udp([192, 0, 2, 1], 64, b"where"), "no_route"),
        (vec![0u8; 12], "eth_truncated"),
    ];
    let mut arp = udp([10, 0, 2, 11], 64, b"");
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    to_drop.push((arp, "not_ipv4"));
    let mut bad_csum = udp([10, 0, 2, 11], 64, b"x");
    bad_csum[24] ^= 0x55;
    to_drop.push((bad_csum, "ipv4_bad_checksum"));

    // Interleave drops among forwarded packets; timestamps one second apart.
    let mut frames = Vec::new();
    let mut drops = to_drop.iter();
    for (i, f) in forwarded_in.iter().enumerate() {
        frames.push(f.clone());
        if i % 20 == 10 {
            if let Some((d, _)) = drops.next() {
                frames.push(d.clone());
            }
        }
    }
    frames.extend(drops.map(|(d, _)| d.clone()));
    let stamped: Vec<(Duration, Vec<u8>)> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| (Duration::new(1_700_000_000 + i as u64, 250_000_000), f.clone()))
        .collect();
    write_pcap(&dir.path().join("in.pcap"), &stamped);

    let out = run_rvsd(&config(dir.path()), Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "rvsd failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));

    // Counters: every input read, every drop counted under its reason.
    let [rx, _, tx, _] = port_counts(&stdout, "p0");
    assert_eq!(rx as usize, frames.len(), "{stdout}");
    assert_eq!(tx as usize, forwarded_in.len(), "{stdout}");
    for reason in ["ttl_expired", "local", "no_neighbor", "no_route", "eth_truncated", "not_ipv4", "ipv4_bad_checksum"]
    {
        let want = to_drop.iter().filter(|(_, r)| *r == reason).count() as u64;
        assert_eq!(drop_count(&stdout, reason), want, "drop {reason}\n{stdout}");
    }
    // Replay clock = the last packet's timestamp, to the microsecond.
    let last = 1_700_000_000 + frames.len() as u64 - 1;
    assert!(stdout.contains(&format!("replay clock {last}.250000000 s")), "{stdout}");

    // Output decoded by etherparse: same packets in order, MACs rewritten, TTL - 1,
    // IPv4 checksum valid, transport bytes untouched.
    let got = common::lvs::read_pcap(&dir.path().join("out.pcap"));
    assert_eq!(got.len(), forwarded_in.len());
    for (i, (o, inp)) in got.iter().zip(&forwarded_in).enumerate() {
        let p = SlicedPacket::from_ethernet(o).unwrap_or_else(|e| panic!("packet {i}: {e}"));
        let Some(LinkSlice::Ethernet2(eth)) = &p.link else { panic!("packet {i}: not ethernet") };
        let Some(NetSlice::Ipv4(ip)) = &p.net else { panic!("packet {i}: not ipv4") };
        let h = ip.header();
        let want_mac = if h.destination_addr() == Ipv4Addr::new(10, 0, 2, 11) { RS1_MAC } else { RS2_MAC };
        assert_eq!(eth.destination(), want_mac, "packet {i}");
        assert_eq!(eth.source(), PORT_MAC, "packet {i}");
        assert_eq!(h.ttl(), 63, "packet {i}");
        assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum(), "packet {i}");
        let inp_len = if i == forwarded_in.len() - 1 { padded_len } else { inp.len() };
        assert_eq!(o.len(), inp_len, "packet {i}: length");
        assert_eq!(o[34..], inp[34..inp_len], "packet {i}: transport bytes changed");
        match &p.transport {
            Some(TransportSlice::Udp(u)) => {
                assert_eq!(u.to_header().calc_checksum_ipv4(&h.to_header(), u.payload()).unwrap(), u.checksum())
            }
            Some(TransportSlice::Tcp(t)) => {
                assert_eq!(t.to_header().calc_checksum_ipv4(&h.to_header(), t.payload()).unwrap(), t.checksum())
            }
            other => panic!("packet {i}: unexpected transport {other:?}"),
        }
    }

    // Cross-check with tshark: frame count and every IPv4 header checksum "good".
    let ts = Command::new("tshark")
        .args(["-r"])
        .arg(dir.path().join("out.pcap"))
        .args([
            "-o",
            "ip.check_checksum:TRUE",
            "-T",
            "fields",
            "-e",
            "ip.checksum.status",
            "-e",
            "ip.ttl",
            "-e",
            "eth.src",
        ])
        .output()
        .expect("tshark (installed by scripts/setup)");
    assert!(ts.status.success(), "tshark: {}", String::from_utf8_lossy(&ts.stderr));
    let lines: Vec<String> = String::from_utf8_lossy(&ts.stdout).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), forwarded_in.len());
    for l in &lines {
        assert_eq!(l, "1\t63\t02:00:00:00:00:01", "tshark line");
    }
}

#[test]
fn check_mode_reports_config_errors_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[dataplane]\nworkers = 1\nwrokers = 2\n").unwrap();
    let out = Command::new(common::RVSD).arg("--config").arg(&bad).arg("--check").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:3:1: dataplane.wrokers: unknown key"), "{err}");

    let good = config(dir.path());
    write_pcap(&dir.path().join("in.pcap"), &[]);
    let out = Command::new(common::RVSD).arg("--config").arg(&good).arg("--check").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (1 port(s), 1 worker(s)"));
}
