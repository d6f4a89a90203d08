//! A new SYN on a reused client port while the old connection's real server is
//! removed or quiesced (specs/ipvs.md §2.4, §3.3), end to end: rvsd runs live
//! on two af_packet ports in a namespace of its own, the test sends frames
//! built with etherparse, changes the real servers with rvsadm between the
//! steps, and decodes what rvsd sends with etherparse (checksums verified).
//!
//! IPVS's order (`ip_vs_in_hook`): a SYN on an existing entry is rescheduled
//! first if (a) expire_nodest_conn = 1 and the entry's server has weight 0, or
//! else (b) conn_reuse_mode ≠ 0 and the entry is uncontrolled (not persistent)
//! in TIME_WAIT or CLOSE (or, with bit 2, FIN_WAIT without output). Only then
//! (s) is the server's status checked: removed → dropped, or with
//! expire_nodest_conn = 1 expired and scheduled afresh. Either expiry leaves a
//! persistence template in place (§2.3); scheduling goes through it (§2.2), and
//! it gives way only if its server was removed (§2.4).
mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use common::lvs::{client, decode, rs, rs_index, rs_mac, Out, GW_MAC, PORT_MAC, VIP};
use common::{repo_root, wait_with_deadline, Guard, RVSD};
use etherparse::PacketBuilder;

const OUT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const CPORT: u16 = 40000;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const FIN: u8 = 0x01;
const ACK: u8 = 0x10;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Method {
    Masq,
    Route,
}

/// What happens to rs3 after the first connection (on it) ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Rs3 {
    /// `-d`.
    Deleted,
    /// `-e -w 0`, then `-d`.
    Drained,
    /// `-e -w 0`.
    Quiesced,
}

/// The state the first connection's entry is left in.
#[derive(Clone, Copy, Debug)]
enum Old {
    TimeWait,
    Close,
    FinWait,
    Established,
}

/// The fate of the new SYN from the same client port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Syn {
    /// Scheduled afresh onto rs1 or rs2.
    Resched,
    /// Forwarded to rs3 on the old entry (no new connection).
    Keep,
    /// Forwarded to rs3 as a new connection, through the persistence template.
    Rs3New,
    /// Dropped (`dest_unavailable`).
    Dropped,
}

use Method::{Masq, Route};
use Old::{Close, Established, FinWait, TimeWait};
use Rs3::{Deleted, Drained, Quiesced};
use Syn::{Dropped, Keep, Resched, Rs3New};

/// (method, persistent, old entry, rs3, expire_nodest_conn, outcome for
/// conn_reuse_mode 0, 1, 2).
type Case = (Method, bool, Old, Rs3, bool, [Syn; 3]);

/// The cases; the letters in the comments are the paths above.
#[rustfmt::skip]
const TABLE: &[Case] = &[
    // Not persistent, finished entry: (b) for modes 1 and 2, whatever rs3's
    // status; mode 0 leaves it to (s), or to (a) when rs3 is at weight 0.
    (Masq, false, TimeWait, Deleted, false, [Dropped, Resched, Resched]),
    (Masq, false, TimeWait, Deleted, true, [Resched, Resched, Resched]),
    (Masq, false, TimeWait, Drained, false, [Dropped, Resched, Resched]),
    (Masq, false, TimeWait, Drained, true, [Resched, Resched, Resched]),
    (Masq, false, TimeWait, Quiesced, false, [Keep, Resched, Resched]),
    (Masq, false, TimeWait, Quiesced, true, [Resched, Resched, Resched]),
    (Masq, false, Close, Deleted, false, [Dropped, Resched, Resched]),
    (Masq, false, Close, Deleted, true, [Resched, Resched, Resched]),
    (Masq, false, Close, Drained, false, [Dropped, Resched, Resched]),
    (Masq, false, Close, Drained, true, [Resched, Resched, Resched]),
    (Masq, false, Close, Quiesced, false, [Keep, Resched, Resched]),
    (Masq, false, Close, Quiesced, true, [Resched, Resched, Resched]),
    // A live entry is never reused by (b): (s) decides, or (a).
    (Masq, false, Established, Deleted, false, [Dropped, Dropped, Dropped]),
    (Masq, false, Established, Deleted, true, [Resched, Resched, Resched]),
    (Masq, false, Established, Quiesced, false, [Keep, Keep, Keep]),
    (Masq, false, Established, Quiesced, true, [Resched, Resched, Resched]),
    // DR: FIN_WAIT (no output seen) is finished only for mode 2 (b).
    (Route, false, FinWait, Deleted, false, [Dropped, Dropped, Resched]),
    (Route, false, FinWait, Quiesced, false, [Keep, Keep, Resched]),
    (Route, false, TimeWait, Deleted, false, [Dropped, Resched, Resched]),
    (Route, false, TimeWait, Deleted, true, [Resched, Resched, Resched]),
    // Persistent: a controlled entry is never reused by (b). (s) drops, or
    // expires and the template of the removed server gives way; at weight 0,
    // (a) expires the entry and the template, still valid, picks rs3 again.
    (Masq, true, TimeWait, Deleted, false, [Dropped, Dropped, Dropped]),
    (Masq, true, TimeWait, Deleted, true, [Resched, Resched, Resched]),
    (Masq, true, TimeWait, Drained, false, [Dropped, Dropped, Dropped]),
    (Masq, true, TimeWait, Drained, true, [Resched, Resched, Resched]),
    (Masq, true, TimeWait, Quiesced, false, [Keep, Keep, Keep]),
    (Masq, true, TimeWait, Quiesced, true, [Rs3New, Rs3New, Rs3New]),
    (Masq, true, Close, Deleted, false, [Dropped, Dropped, Dropped]),
    (Masq, true, Close, Deleted, true, [Resched, Resched, Resched]),
    (Masq, true, Close, Quiesced, false, [Keep, Keep, Keep]),
    (Masq, true, Close, Quiesced, true, [Rs3New, Rs3New, Rs3New]),
];

/// One service per (method, persistent, rs3) of the table, on its own port.
fn services() -> Vec<(Method, bool, Rs3)> {
    let mut v: Vec<(Method, bool, Rs3)> = TABLE.iter().map(|r| (r.0, r.1, r.3)).collect();
    v.sort();
    v.dedup();
    v
}

fn vport_of(svc: (Method, bool, Rs3)) -> u16 {
    81 + services().iter().position(|s| *s == svc).unwrap() as u16
}

/// A client segment to the VIP (client port [`CPORT`]).
fn seg(src: Ipv4Addr, vport: u16, flags: u8, seq: u32) -> Vec<u8> {
    let mut b =
        PacketBuilder::ethernet2(GW_MAC, PORT_MAC).ipv4(src.octets(), VIP.octets(), 64).tcp(CPORT, vport, seq, 64240);
    if flags & SYN != 0 {
        b = b.syn();
    }
    if flags & ACK != 0 {
        b = b.ack(1);
    }
    if flags & FIN != 0 {
        b = b.fin();
    }
    if flags & RST != 0 {
        b = b.rst();
    }
    let mut v = Vec::new();
    b.write(&mut v, &[]).unwrap();
    v
}

/// The real server (1-based) an output frame went to: NAT rewrites the
/// destination address, DR only the MAC.
fn server_of(o: &Out) -> u8 {
    rs_index(o.dst)
        .or_else(|| (1..=3).find(|&n| rs_mac(n) == o.eth_dst))
        .unwrap_or_else(|| panic!("not to a real server: {o:?}"))
}

/// A namespace with two veth pairs: rvsd's ports `vin` and `vout`, the test's
/// ends `tin` (frames in) and `tout` (frames out). No addresses, no IPv6: the links
/// carry only what the test and rvsd send.
struct Netns(String);

impl Netns {
    fn up() -> Netns {
        let name = format!("rvsr{}", std::process::id() % 100000);
        let ns = Netns(name.clone());
        let _ = Command::new("ip").args(["netns", "del", &name]).stderr(Stdio::null()).status();
        let mac = |m: [u8; 6]| m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
        let steps = [
            format!("ip netns add {name}"),
            format!(
                "ip netns exec {name} sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1"
            ),
            format!("ip -n {name} link add vin address {} type veth peer name tin", mac(PORT_MAC)),
            format!("ip -n {name} link add vout address {} type veth peer name tout", mac(OUT_MAC)),
            format!("ip -n {name} link set lo up"),
            format!("ip -n {name} link set vin up"),
            format!("ip -n {name} link set tin up"),
            format!("ip -n {name} link set vout up"),
            format!("ip -n {name} link set tout up"),
        ];
        for s in &steps {
            let st = Command::new("sh").args(["-c", s]).status().unwrap();
            assert!(st.success(), "{s} failed (the test creates a network namespace: run it as root)");
        }
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// `tests/helpers/inject.py` in the namespace.
struct Wire {
    _child: Guard,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Wire {
    fn start(ns: &Netns) -> Wire {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns.0, "python3", "-u"])
            .arg(repo_root().join("tests/helpers/inject.py"))
            .args(["tin", "tout"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut w = Wire { _child: Guard(child), stdin, stdout };
        assert_eq!(w.line(), "ready");
        w
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.stdout.read_line(&mut l).unwrap();
        l.trim().to_owned()
    }

    fn send(&mut self, frame: &[u8]) {
        let hex: String = frame.iter().map(|b| format!("{b:02x}")).collect();
        writeln!(self.stdin, "tx {hex}").unwrap();
        assert_eq!(self.line(), "ok");
    }

    /// Every IPv4 frame rvsd sent since the last call.
    fn received(&mut self) -> Vec<Out> {
        writeln!(self.stdin, "rx 300").unwrap();
        let mut out = Vec::new();
        loop {
            let l = self.line();
            if l == "end" {
                return out;
            }
            let raw: Vec<u8> = (0..l.len()).step_by(2).map(|i| u8::from_str_radix(&l[i..i + 2], 16).unwrap()).collect();
            // rvsd's own ARP (gratuitous, or resolving) is not a verdict.
            if raw.get(12..14) == Some(&[0x08, 0x00]) {
                out.push(decode(&raw));
            }
        }
    }
}

struct Rvsd {
    child: Option<Child>,
    socket: PathBuf,
    log: PathBuf,
}

impl Rvsd {
    fn start(ns: &Netns, dir: &Path, mode: u8, nodest: bool) -> Rvsd {
        let socket = dir.join("rvsd.sock");
        let log = dir.join("rvsd.log");
        let mut svcs = String::new();
        for svc @ (method, persistent, _) in services() {
            let vport = vport_of(svc);
            svcs.push_str(&format!(
                "[[service]]\nprotocol = \"tcp\"\naddress = \"{VIP}:{vport}\"\nscheduler = \"rr\"\n{}\
                 [[service.server]]\naddress = \"{}:{vport}\"\nmethod = \"{}\"\n",
                if persistent { "persistent = 300\n" } else { "" },
                rs(3),
                if method == Masq { "masq" } else { "route" },
            ));
        }
        let neighbors: String = (1..=3)
            .map(|n| {
                format!(
                    "[[neighbor]]\nip = \"{}\"\nmac = \"{}\"\nport = \"out\"\n",
                    rs(n),
                    rs_mac(n).iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
                )
            })
            .collect();
        let cfg = dir.join("rvs.toml");
        std::fs::write(
            &cfg,
            format!(
                r#"
[dataplane]
eal_args = ["--no-huge", "-m", "256", "--no-pci", "--log-level=lib.eal:warning"]
mbufs = 4096
poll_idle_us = 20
conns_per_worker = 1024

[[port]]
name = "in"
device = "net_af_packet0,iface=vin"
addresses = ["10.0.1.1/24"]
kernel = false

[[port]]
name = "out"
device = "net_af_packet1,iface=vout"
addresses = ["10.0.2.1/24"]
kernel = false

[[route]]
prefix = "0.0.0.0/0"
via = "10.0.1.254"
port = "in"

[[neighbor]]
ip = "10.0.1.254"
mac = "02:00:00:00:fe:01"
port = "in"
{neighbors}
[control]
socket = "{socket}"

[ipvs]
conn_reuse_mode = {mode}
expire_nodest_conn = {nodest}

{svcs}"#,
                socket = socket.display(),
                nodest = u8::from(nodest),
            ),
        )
        .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.0, RVSD, "--config"])
            .arg(&cfg)
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.join("rvsd.err")).unwrap())
            .spawn()
            .unwrap();
        let r = Rvsd { child: Some(child), socket, log };
        let started = Instant::now();
        while !r.log_text().contains("control socket") {
            assert!(started.elapsed() < Duration::from_secs(20), "rvsd did not start:\n{}", r.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
        r
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn rvsadm(&self, args: &str) -> String {
        let bin = Path::new(RVSD).with_file_name("rvsadm");
        let child = Command::new(bin)
            .args(args.split_whitespace())
            .env("RVS_SOCKET", &self.socket)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = wait_with_deadline(child, Duration::from_secs(10), "rvsadm");
        assert!(out.status.success(), "rvsadm {args}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Waits until port "in" has received `n` frames (so rvsd has decided on
    /// them all).
    fn wait_rx(&self, n: u64) {
        let started = Instant::now();
        loop {
            let ports = self.rvsadm("ports");
            let rx: u64 = ports
                .lines()
                .find(|l| l.starts_with("in "))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no rx count for port in:\n{ports}"));
            if rx >= n {
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "rvsd received {rx} of {n} frames:\n{ports}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The Conns figure of rs3 in each service where rs3 is still listed.
    fn rs3_conns(&self) -> BTreeMap<u16, u64> {
        let mut at = 0;
        let mut m = BTreeMap::new();
        for l in self.rvsadm("-Ln --stats").lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.as_slice() {
                ["TCP", addr, ..] => at = addr.rsplit(':').next().unwrap().parse().unwrap(),
                ["->", addr, conns, ..] if addr.starts_with(&format!("{}:", rs(3))) => {
                    m.insert(at, conns.parse().unwrap());
                }
                _ => {}
            }
        }
        m
    }
}

impl Drop for Rvsd {
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let _ = wait_with_deadline(c, Duration::from_secs(20), "rvsd after SIGTERM");
        }
    }
}

/// Runs every row of [`TABLE`] with `expire_nodest_conn = nodest` under
/// `conn_reuse_mode = mode`; returns the failures.
fn run(ns: &Netns, wire: &mut Wire, mode: u8, nodest: bool) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let rvsd = Rvsd::start(ns, dir.path(), mode, nodest);
    let _ = wire.received();
    // One client address per row, so that no two cases share an entry or a template.
    let cases: Vec<(usize, Ipv4Addr, u16, Old, Syn)> = TABLE
        .iter()
        .enumerate()
        .filter(|(_, r)| r.4 == nodest)
        .map(|(i, r)| (i, client(i as u8 + 1), vport_of((r.0, r.1, r.3)), r.2, r.5[usize::from(mode)]))
        .collect();
    let mut sent = 0;
    // 1. A connection from each client to rs3, the only server so far.
    for &(_, c, vport, _, _) in &cases {
        wire.send(&seg(c, vport, SYN, 1000));
        sent += 1;
    }
    rvsd.wait_rx(sent);
    let out = wire.received();
    assert_eq!(out.len(), cases.len(), "{}", rvsd.log_text());
    assert!(out.iter().all(|o| server_of(o) == 3), "{out:?}");
    // 2. Its end: SR + fin → TIME_WAIT; ES + rst → CLOSE; (INPUT_ONLY) ES +
    //    fin → FIN_WAIT (§3.4).
    for &(_, c, vport, old, _) in &cases {
        let steps: &[u8] = match old {
            TimeWait => &[FIN | ACK],
            Close => &[ACK, RST | ACK],
            FinWait => &[ACK, FIN | ACK],
            Established => &[ACK],
        };
        for &f in steps {
            wire.send(&seg(c, vport, f, 1001));
            sent += 1;
        }
    }
    rvsd.wait_rx(sent);
    let _ = wire.received();
    // 3. rs1 and rs2 join; rs3 goes (or is quiesced).
    for svc @ (method, _, rs3) in services() {
        let v = vport_of(svc);
        let m = if method == Masq { "-m" } else { "-g" };
        for n in [1, 2] {
            rvsd.rvsadm(&format!("-a -t {VIP}:{v} -r {}:{v} {m} -w 1", rs(n)));
        }
        if matches!(rs3, Drained | Quiesced) {
            rvsd.rvsadm(&format!("-e -t {VIP}:{v} -r {}:{v} {m} -w 0", rs(3)));
        }
        if matches!(rs3, Drained | Deleted) {
            rvsd.rvsadm(&format!("-d -t {VIP}:{v} -r {}:{v}", rs(3)));
        }
    }
    let before = rvsd.rs3_conns();
    // 4. The client reuses its port: a new SYN.
    for &(_, c, vport, _, _) in &cases {
        wire.send(&seg(c, vport, SYN, 5000));
        sent += 1;
    }
    rvsd.wait_rx(sent);
    let out = wire.received();
    let after = rvsd.rs3_conns();
    let ports = rvsd.rvsadm("ports");
    let mut failures = Vec::new();
    // New connections on rs3, per service: all or none of its rs3 outcomes.
    let new_on_rs3 = |vport: u16| after.get(&vport).copied().unwrap_or(0) - before.get(&vport).copied().unwrap_or(0);
    for &(row, c, vport, old, want) in &cases {
        let outs: Vec<&Out> = out.iter().filter(|o| o.src == c && o.sport == CPORT).collect();
        let got = match outs.as_slice() {
            [] => Dropped,
            [o] if server_of(o) == 3 => {
                let rs3_cases = cases
                    .iter()
                    .filter(|x| x.2 == vport && out.iter().any(|o| o.src == x.1 && server_of(o) == 3))
                    .count() as u64;
                match new_on_rs3(vport) {
                    0 => Keep,
                    n if n == rs3_cases => Rs3New,
                    n => panic!("{n} new connections on rs3 of port {vport} for {rs3_cases} SYNs sent there"),
                }
            }
            [_] => Resched,
            more => panic!("{} frames for one SYN: {more:?}", more.len()),
        };
        if got != want {
            failures.push(format!(
                "conn_reuse_mode={mode} expire_nodest_conn={} port {vport} {:?} {old:?}: got {got:?}, want {want:?} (table row {row})",
                u8::from(nodest),
                services()[usize::from(vport - 81)]
            ));
        }
    }
    let drops = cases.iter().filter(|c| c.4 == Dropped).count() as u64;
    if drop_count_table(&ports, "dest_unavailable") != drops {
        failures.push(format!("conn_reuse_mode={mode} expire_nodest_conn={nodest}: {drops} drops expected:\n{ports}"));
    }
    failures
}

/// A drop reason's count in `rvsadm ports` (0 if absent).
fn drop_count_table(ports: &str, reason: &str) -> u64 {
    ports
        .lines()
        .find_map(|l| l.strip_prefix(reason).filter(|r| r.starts_with(' ')))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[test]
fn a_syn_on_a_reused_port_is_rescheduled_or_dropped_in_ipvs_order() {
    let ns = Netns::up();
    let mut wire = Wire::start(&ns);
    let mut failures = Vec::new();
    for mode in [0u8, 1, 2] {
        for nodest in [false, true] {
            failures.extend(run(&ns, &mut wire, mode, nodest));
        }
    }
    assert!(failures.is_empty(), "{} cases differ from IPVS:\n{}", failures.len(), failures.join("\n"));
}
