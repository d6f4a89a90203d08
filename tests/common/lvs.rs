//! Replay rig for the load-balancing tests: one net_pcap port carrying the
//! client side (via a gateway) and the real servers' segment; packets built and
//! decoded with etherparse, independent of rvs's own packet code.
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};

pub const PORT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
pub const GW_MAC: [u8; 6] = [2, 0, 0, 0, 0xfe, 1];
pub const GW: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 254);
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
pub const BOX_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 1);

/// Real server n (1-based): 10.0.2.(10+n), MAC 02:00:00:00:02:(10+n).
pub fn rs(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 2, 10 + n)
}

pub fn rs_mac(n: u8) -> [u8; 6] {
    [2, 0, 0, 0, 2, 10 + n]
}

/// Which real server (1-based) owns this address, if any.
pub fn rs_index(a: Ipv4Addr) -> Option<u8> {
    (1..=9).find(|&n| rs(n) == a)
}

pub fn client(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, n)
}

/// A frame from a client (arriving through the gateway) to the VIP.
pub fn tcp_in(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, syn: bool, ack: bool, ttl: u8) -> Vec<u8> {
    let mut b =
        PacketBuilder::ethernet2(GW_MAC, PORT_MAC).ipv4(src.octets(), dst.octets(), ttl).tcp(sport, dport, 1000, 64240);
    if syn {
        b = b.syn();
    }
    if ack {
        b = b.ack(1);
    }
    let mut v = Vec::new();
    b.write(&mut v, if syn { &[] } else { b"GET / HTTP/1.0\r\n\r\n" }).unwrap();
    v
}

pub fn syn(src: Ipv4Addr, sport: u16, dport: u16) -> Vec<u8> {
    tcp_in(src, sport, VIP, dport, true, false, 64)
}

pub fn udp_in(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(GW_MAC, PORT_MAC)
        .ipv4(src.octets(), dst.octets(), 64)
        .udp(sport, dport)
        .write(&mut v, payload)
        .unwrap();
    v
}

/// A reply from real server n's address and port to a client.
pub fn tcp_reply(n: u8, rport: u16, dst: Ipv4Addr, dport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(rs_mac(n), PORT_MAC)
        .ipv4(rs(n).octets(), dst.octets(), 64)
        .tcp(rport, dport, 5000, 64240)
        .syn()
        .ack(1001)
        .write(&mut v, &[])
        .unwrap();
    v
}

/// Everything about one output frame the tests look at.
#[derive(Debug, Clone)]
pub struct Out {
    pub raw: Vec<u8>,
    pub eth_dst: [u8; 6],
    pub eth_src: [u8; 6],
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    /// For IPIP: the inner packet's fields (src, dst, ttl, sport, dport).
    pub inner: Option<(Ipv4Addr, Ipv4Addr, u8, u16, u16)>,
    pub icmp: Option<(u8, u8)>,
}

/// Decodes with etherparse and checks every checksum on the way.
pub fn decode(raw: &[u8]) -> Out {
    let p = SlicedPacket::from_ethernet(raw).unwrap_or_else(|e| panic!("undecodable output: {e}"));
    let Some(etherparse::LinkSlice::Ethernet2(eth)) = &p.link else { panic!("not ethernet") };
    let Some(NetSlice::Ipv4(ip)) = &p.net else { panic!("not ipv4") };
    let h = ip.header().to_header();
    assert_eq!(h.header_checksum, h.calc_header_checksum(), "IPv4 header checksum");
    let mut out = Out {
        raw: raw.to_vec(),
        eth_dst: eth.destination(),
        eth_src: eth.source(),
        src: ip.header().source_addr(),
        dst: ip.header().destination_addr(),
        ttl: h.time_to_live,
        proto: h.protocol.0,
        sport: 0,
        dport: 0,
        inner: None,
        icmp: None,
    };
    match &p.transport {
        Some(TransportSlice::Tcp(t)) => {
            assert_eq!(t.to_header().calc_checksum_ipv4(&h, t.payload()).unwrap(), t.checksum(), "TCP checksum");
            out.sport = t.source_port();
            out.dport = t.destination_port();
        }
        Some(TransportSlice::Udp(u)) => {
            if u.checksum() != 0 {
                assert_eq!(u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap(), u.checksum(), "UDP checksum");
            }
            out.sport = u.source_port();
            out.dport = u.destination_port();
        }
        Some(TransportSlice::Icmpv4(i)) => {
            let bytes = i.slice();
            let sum =
                bytes.chunks(2).fold(0u32, |a, c| a + u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])));
            let folded = (sum & 0xffff) + (sum >> 16);
            assert_eq!(((folded & 0xffff) + (folded >> 16)) as u16, 0xffff, "ICMP checksum");
            out.icmp = Some((i.type_u8(), i.code_u8()));
        }
        _ => {}
    }
    if out.proto == 4 {
        let inner = &raw[14 + h.header_len()..];
        let ip2 = etherparse::Ipv4Slice::from_slice(inner).expect("inner ipv4");
        let h2 = ip2.header().to_header();
        assert_eq!(h2.header_checksum, h2.calc_header_checksum(), "inner IPv4 checksum");
        let l4 = ip2.payload().payload;
        let ports = (u16::from_be_bytes([l4[0], l4[1]]), u16::from_be_bytes([l4[2], l4[3]]));
        out.inner =
            Some((ip2.header().source_addr(), ip2.header().destination_addr(), h2.time_to_live, ports.0, ports.1));
    }
    out
}

pub struct Replay {
    pub out: Vec<Out>,
    pub stdout: String,
}

/// Runs rvsd in replay mode over `frames` (each stamped with its second) with
/// the given extra TOML (services, [ipvs]...) and returns the decoded output.
pub fn replay(extra: &str, workers: usize, frames: &[(u64, Vec<u8>)]) -> Replay {
    replay_with_files(extra, workers, frames, &[])
}

/// As [`replay`], with extra files (name, content) written beside the config.
pub fn replay_with_files(extra: &str, workers: usize, frames: &[(u64, Vec<u8>)], files: &[(&str, &str)]) -> Replay {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (name, content) in files {
        std::fs::write(d.join(name), content).unwrap();
    }
    write_pcap(&d.join("in.pcap"), frames);
    let cfg = format!(
        r#"
[dataplane]
eal_args = ["--no-huge", "-m", "256", "--no-pci", "--log-level=lib.eal:warning"]
mbufs = 4096
replay = true
workers = {workers}
conns_per_worker = 1024

[[port]]
name = "p0"
device = "net_pcap0,rx_pcap={d}/in.pcap,tx_pcap={d}/out.pcap"
mac = "02:00:00:00:00:01"
addresses = ["10.0.1.1/24", "10.0.2.1/24"]

[[route]]
prefix = "0.0.0.0/0"
via = "10.0.1.254"
port = "p0"

[[neighbor]]
ip = "10.0.1.254"
mac = "02:00:00:00:fe:01"
port = "p0"
{neigh}
[control]
socket = "{d}/rvsd.sock"

{extra}
"#,
        d = d.display(),
        neigh = (1..=4)
            .map(|n| format!(
                "[[neighbor]]\nip = \"{}\"\nmac = \"{}\"\nport = \"p0\"\n",
                rs(n),
                rs_mac(n).iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
            ))
            .collect::<String>(),
    );
    let path = d.join("rvs.toml");
    std::fs::write(&path, cfg).unwrap();
    let out = super::run_rvsd(&path, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "rvsd failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let frames = read_pcap(&d.join("out.pcap"));
    Replay { out: frames.iter().map(|f| decode(f)).collect(), stdout }
}

pub fn write_pcap(path: &Path, frames: &[(u64, Vec<u8>)]) {
    let mut w = PcapWriter::new(std::fs::File::create(path).unwrap()).unwrap();
    for (i, (secs, f)) in frames.iter().enumerate() {
        // Keep capture order strictly increasing within a second.
        let ts = Duration::new(1_700_000_000 + secs, (i as u32 % 1000) * 1000);
        w.write_packet(&PcapPacket::new(ts, f.len() as u32, f)).unwrap();
    }
}

pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let mut r = PcapReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        out.push(p.unwrap().data.into_owned());
    }
    out
}

/// A NAT service on the VIP with servers 1..=n on `rport`.
pub fn nat_service(proto: &str, vport: u16, sched: &str, extra: &str, servers: &[(u8, u16, u32)]) -> String {
    let mut s =
        format!("[[service]]\nprotocol = \"{proto}\"\naddress = \"{VIP}:{vport}\"\nscheduler = \"{sched}\"\n{extra}\n");
    for (n, port, w) in servers {
        s.push_str(&format!("[[service.server]]\naddress = \"{}:{port}\"\nmethod = \"masq\"\nweight = {w}\n", rs(*n)));
    }
    s
}
