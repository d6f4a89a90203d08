//! Connection sync end to end (specs/ipvs.md §5): a master rvsd in the
//! standard topology balances real TCP connections (NAT) to two real
//! servers; a backup rvsd in its own namespace listens on a management veth
//! joined to the master's namespace, over the kernel's multicast (224.0.0.81,
//! UDP 8848). The daemons are started with `rvsadm --start-daemon`, listed
//! with `-L --daemon`, and `rvsadm -Lnc` on the backup must show the
//! connections the client (`ss` in the client namespace) holds, with the
//! master's states: ESTABLISHED while open, the closing state after the
//! client closes.
mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon::{rvsadm, write_config};
use common::director::Director;
use common::{Guard, Topo, RVSD};

const VIP: &str = "10.0.0.100";

fn services() -> String {
    format!(
        "[[service]]\nprotocol = \"tcp\"\naddress = \"{VIP}:80\"\nscheduler = \"rr\"\n\
         [[service.server]]\naddress = \"10.0.2.11:80\"\nmethod = \"masq\"\n\
         [[service.server]]\naddress = \"10.0.2.12:80\"\nmethod = \"masq\"\n"
    )
}

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().unwrap();
    assert!(st.success(), "ip {args:?}");
}

fn adm(socket: &Path, args: &str) -> (bool, String) {
    let out = Command::new(rvsadm()).arg("--socket").arg(socket).args(args.split_whitespace()).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// One `-Lnc` row: (state, source, virtual, destination).
type Row = (String, String, String, String);

/// `-Lnc` rows.
fn conns(socket: &Path) -> Vec<Row> {
    let (ok, text) = adm(socket, "-Lnc");
    assert!(ok, "{text}");
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 6).then(|| (f[2].to_string(), f[3].to_string(), f[4].to_string(), f[5].to_string()))
        })
        .collect()
}

const ECHO_SERVER: &str = r#"
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 80)); s.listen(64)
def serve(c):
    while True:
        d = c.recv(4096)
        if not d: break
        c.sendall(d)
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

/// Opens N connections to the VIP, sends 3 lines on each (so each crosses
/// the sync threshold of 3 incoming packets), prints its local ports, then
/// closes the first half when told to on stdin, and waits.
const CLIENT: &str = r#"
import socket, sys, time
n = int(sys.argv[2]); cs = []
for i in range(n):
    for attempt in range(50):
        try:
            c = socket.create_connection((sys.argv[1], 80), timeout=5); break
        except OSError:
            time.sleep(0.2)
    for k in range(3):
        c.sendall(b"line %d\n" % k); c.recv(100); time.sleep(0.05)
    cs.append(c)
print(" ".join(str(c.getsockname()[1]) for c in cs), flush=True)
sys.stdin.readline()
for c in cs[: n // 2]:
    c.close()
print("closed", flush=True)
sys.stdin.readline()
"#;

struct DelNs(String);
impl Drop for DelNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).stderr(Stdio::null()).status();
    }
}

/// The standard topology with two echo servers, plus the backup's namespace
/// `sy<pid><tag>` joined to the director's by sm0 (10.9.0.1) ── sb0 (10.9.0.2).
fn rig(tag: &str) -> (Topo, String, DelNs) {
    let topo = Topo::up(&format!("sy{tag}"), 2);
    let bk = format!("sy{}{tag}", std::process::id() % 100000);
    let _ = Command::new("ip").args(["netns", "del", &bk]).stderr(Stdio::null()).status();
    ip(&["netns", "add", &bk]);
    let guard = DelNs(bk.clone());
    let master_ns = topo.ns("dir");
    ip(&["link", "add", "sm0", "netns", &master_ns, "type", "veth", "peer", "name", "sb0", "netns", &bk]);
    ip(&["-n", &master_ns, "addr", "add", "10.9.0.1/24", "dev", "sm0"]);
    ip(&["-n", &bk, "addr", "add", "10.9.0.2/24", "dev", "sb0"]);
    ip(&["-n", &master_ns, "link", "set", "sm0", "up"]);
    ip(&["-n", &bk, "link", "set", "sb0", "up"]);
    ip(&["-n", &bk, "link", "set", "lo", "up"]);
    for (rs, addr) in [("rs1", "10.0.2.11"), ("rs2", "10.0.2.12")] {
        // Killed with the namespace by scripts/topo down.
        std::mem::forget(Guard(
            topo.cmd(rs, "python3").args(["-c", ECHO_SERVER, addr]).stdout(Stdio::null()).spawn().unwrap(),
        ));
    }
    (topo, bk, guard)
}

/// A quiet rvsd (no traffic) in namespace `bk` with the same services and
/// `extra` TOML; returns once its control socket exists.
fn start_backup(bk: &str, extra: &str) -> (tempfile::TempDir, Guard, std::path::PathBuf) {
    let bdir = tempfile::tempdir().unwrap();
    let bcfg = write_config(bdir.path(), &format!("{}{extra}", services()));
    let bsock = bdir.path().join("rvsd.sock");
    let child = Guard(
        Command::new("ip")
            .args(["netns", "exec", bk, RVSD, "--config"])
            .arg(&bcfg)
            .stdout(std::fs::File::create(bdir.path().join("rvsd.log")).unwrap())
            .stderr(std::fs::File::create(bdir.path().join("rvsd.err")).unwrap())
            .spawn()
            .unwrap(),
    );
    let t0 = Instant::now();
    while !bsock.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "backup rvsd did not start: {}",
            std::fs::read_to_string(bdir.path().join("rvsd.err")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (bdir, child, bsock)
}

/// Polls the backup's `-Lnc` until `pred` holds (10 s at most).
fn wait_for(bsock: &Path, msock: &Path, what: &str, pred: &dyn Fn(&[Row]) -> bool) -> Vec<Row> {
    let t0 = Instant::now();
    loop {
        let c = conns(bsock);
        if pred(&c) {
            return c;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "backup never showed {what}:\n{}\nmaster:\n{}",
            adm(bsock, "-Lnc").1,
            adm(msock, "-Lnc").1,
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn client(topo: &Topo, n: usize) -> (Guard, std::io::Lines<BufReader<std::process::ChildStdout>>, Vec<String>) {
    let mut client = Guard(
        topo.cmd("client", "python3")
            .args(["-c", CLIENT, VIP, &n.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(client.0.stdout.take().unwrap()).lines();
    let ports: Vec<String> = lines.next().unwrap().unwrap().split_whitespace().map(str::to_string).collect();
    assert_eq!(ports.len(), n);
    // Independent view: the client's own sockets.
    let ss = topo.cmd("client", "ss").args(["-tnH", "state", "established"]).output().unwrap();
    let ss = String::from_utf8_lossy(&ss.stdout).to_string();
    for p in &ports {
        assert!(ss.contains(&format!("10.0.1.2:{p} ")), "client port {p} not established:\n{ss}");
    }
    (client, lines, ports)
}

fn src(p: &str) -> String {
    format!("10.0.1.2:{p}")
}

#[test]
fn backup_shows_the_masters_connections_with_their_states() {
    let (topo, bk, _bk_guard) = rig("a");
    let dir = tempfile::tempdir().unwrap();
    // Two master workers: each queues its own flows' records on its own ring.
    let master = Director::start(&topo, dir.path(), 2, 2, &services());
    let msock = master.socket.clone();
    let (_bdir, _backup, bsock) = start_backup(&bk, "");

    // An independent witness of the wire: dumpcap on the backup's side.
    let pcap = dir.path().join("sync.pcapng");
    let mut cap = Guard(
        Command::new("ip")
            .args(["netns", "exec", &bk, "dumpcap", "-q", "-i", "sb0", "-f", "udp", "-w"])
            .arg(&pcap)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let t0 = Instant::now();
    while std::fs::metadata(&pcap).map_or(0, |m| m.len()) == 0 {
        assert!(t0.elapsed() < Duration::from_secs(10), "dumpcap did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));

    // Start the daemons as an LVS operator would; refusals leave state unchanged.
    let (ok, t) = adm(&msock, "--start-daemon master --mcast-interface sm0 --syncid 5");
    assert!(ok, "{t}");
    let (ok, t) = adm(&msock, "--start-daemon master --mcast-interface sm0");
    assert!(!ok && t.contains("Daemon has already run"), "{t}");
    let (ok, t) = adm(&bsock, "--start-daemon backup --mcast-interface nosuch0 --syncid 5");
    assert!(!ok && t.contains("nosuch0"), "{t}");
    let (ok, t) = adm(&bsock, "-L --daemon");
    assert!(ok && t.is_empty(), "a refused start runs nothing: {t:?}");
    let (ok, t) = adm(&bsock, "--start-daemon backup --mcast-interface sb0 --syncid 5");
    assert!(ok, "{t}");
    assert_eq!(
        adm(&msock, "-L --daemon").1,
        "master sync daemon (mcast=sm0, syncid=5, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
    );
    assert_eq!(
        adm(&bsock, "-L --daemon").1,
        "backup sync daemon (mcast=sb0, syncid=5, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
    );

    // Six real TCP connections through the master.
    let (mut client, mut lines, ports) = client(&topo, 6);
    let vip = format!("{VIP}:80");
    let b = wait_for(&bsock, &msock, "the 6 established connections", &|c| {
        ports.iter().all(|p| c.iter().any(|r| r.1 == src(p) && r.0 == "ESTABLISHED"))
    });
    let m = conns(&msock);
    for p in &ports {
        let r = b.iter().find(|r| r.1 == src(p)).unwrap();
        assert_eq!(r.2, vip);
        assert!(r.3 == "10.0.2.11:80" || r.3 == "10.0.2.12:80", "{r:?}");
        // The same real server as on the master.
        let mr = m.iter().find(|x| x.1 == src(p)).expect("on the master");
        assert_eq!(mr.3, r.3, "destination differs for {p}");
    }
    // tshark's ipvs dissector reads the live datagrams: from the master's
    // management address to 224.0.0.81:8848 with TTL 1 (§5.1), syncid 5,
    // every client port in state ESTABLISHED (1) with timeout 900.
    std::thread::sleep(Duration::from_millis(300));
    let _ = Command::new("kill").args(["-INT", &cap.0.id().to_string()]).status();
    let _ = cap.0.wait();
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(&pcap)
        .args(["-d", "udp.port==8848,ipvs", "-Y", "ipvs", "-T", "fields", "-E", "occurrence=a"])
        .args(["-e", "ip.src", "-e", "ip.dst", "-e", "ip.ttl", "-e", "udp.dstport", "-e", "ipvs.syncid"])
        .args(["-e", "ipvs.cport", "-e", "ipvs.state", "-e", "ipvs.timeout"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!text.is_empty(), "no sync datagram captured: {}", String::from_utf8_lossy(&out.stderr));
    let mut wire_es = std::collections::BTreeSet::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split('\t').collect();
        assert_eq!(&f[..5], &["10.9.0.1", "224.0.0.81", "1", "8848", "5"], "{l}");
        let (cports, states, timeouts): (Vec<&str>, Vec<&str>, Vec<&str>) =
            (f[5].split(',').collect(), f[6].split(',').collect(), f[7].split(',').collect());
        for ((c, st), to) in cports.iter().zip(&states).zip(&timeouts) {
            let st = st.trim_start_matches("0x").trim_start_matches('0');
            if st == "1" {
                assert_eq!(*to, "900", "{l}");
                wire_es.insert(c.to_string());
            }
        }
    }
    for p in &ports {
        assert!(wire_es.contains(p), "client port {p} not seen ESTABLISHED on the wire:\n{text}");
    }

    // Expiry on the backup: the synced ESTABLISHED timeout (15:00), restarted.
    let (_, text) = adm(&bsock, "-Lnc");
    assert!(text.lines().any(|l| l.starts_with("TCP 14:") || l.starts_with("TCP 15:00")), "{text}");

    // The client closes three: the master syncs the state change at once
    // (§5.4), the backup follows the master's states.
    writeln!(client.0.stdin.as_mut().unwrap()).unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "closed");
    std::thread::sleep(Duration::from_millis(500));
    let b = wait_for(&bsock, &msock, "the closing states", &|c| {
        ports[..3].iter().all(|p| c.iter().any(|r| r.1 == src(p) && r.0 != "ESTABLISHED"))
    });
    let m = conns(&msock);
    for p in &ports {
        let br = b.iter().find(|r| r.1 == src(p)).unwrap();
        let mr = m.iter().find(|r| r.1 == src(p)).unwrap();
        assert_eq!(br.0, mr.0, "state of {p}: backup {br:?} master {mr:?}");
    }
    for p in &ports[3..] {
        assert_eq!(b.iter().find(|r| r.1 == src(p)).unwrap().0, "ESTABLISHED");
    }

    // Malformed datagrams from the management segment: counted by reason,
    // nothing installed (§5.2 receiver checks).
    let before = conns(&bsock).len();
    let garbage = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.9.0.1", 0))
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
good = bytes([0, 5, 0, 44, 1, 1, 0, 0, 0, 6, 0, 36, 0, 0, 0, 0, 0, 1, 0x30, 0x39, 0, 80, 0, 80,
              0, 0, 0, 0, 0, 0, 3, 0x84, 10, 0, 1, 2, 10, 0, 0, 100, 10, 0, 2, 11])
for m in [b"\x00\x05", good[:43], good[:4] + bytes([2]) + good[5:], good[:8] + bytes([7]) + good[9:],
          good[:1] + bytes([6]) + good[2:]]:
    s.sendto(m, ("224.0.0.81", 8848))
"#;
    let st = topo.cmd("dir", "python3").args(["-c", garbage]).status().unwrap();
    assert!(st.success());
    let count = |name: &str| -> u64 {
        let t = adm(&bsock, "sync").1;
        t.lines().find_map(|l| l.strip_prefix(&format!("{name} "))).unwrap().parse().unwrap()
    };
    let t0 = Instant::now();
    while count("dropped_too_short")
        + count("dropped_bad_size")
        + count("dropped_truncated")
        + count("dropped_record_type")
        + count("dropped_foreign_syncid")
        < 5
    {
        assert!(t0.elapsed() < Duration::from_secs(5), "{}", adm(&bsock, "sync").1);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(count("dropped_too_short"), 1, "{}", adm(&bsock, "sync").1);
    assert_eq!(count("dropped_bad_size"), 1);
    assert_eq!(count("dropped_truncated"), 1);
    assert_eq!(count("dropped_record_type"), 1);
    assert_eq!(count("dropped_foreign_syncid"), 1);
    assert_eq!(conns(&bsock).len(), before, "nothing of a bad message is applied");

    // Stop: listed no more, and a second stop is refused.
    assert!(adm(&msock, "--stop-daemon master").0);
    assert_eq!(adm(&msock, "-L --daemon").1, "");
    let (ok, t) = adm(&msock, "--stop-daemon master");
    assert!(!ok && t.contains("No daemon is running"), "{t}");
    let _ = writeln!(client.0.stdin.as_mut().unwrap());
    drop(master);
}

/// A backup that starts after the connections were made (their sync records
/// went to nobody, and they carry no more packets) still gets them: the
/// master's resync sweep (rvs extension, `[sync] resync_period`) re-sends
/// the whole table. Both daemons are started from `[sync]` in the config.
#[test]
fn late_backup_converges_through_the_resync_sweep() {
    late_backup(1);
}

/// The same with the master sending the v0 format (§5.3: no timeouts; the
/// backup uses its own).
#[test]
fn late_backup_converges_with_sync_version_0() {
    late_backup(0);
}

fn late_backup(version: u8) {
    let (topo, bk, _bk_guard) = rig(&format!("v{version}"));
    let dir = tempfile::tempdir().unwrap();
    let sync =
        format!("[sync]\nversion = {version}\nresync_period = 2\n[sync.master]\ninterface = \"sm0\"\nsyncid = 9\n");
    let master = Director::start(&topo, dir.path(), 1, 2, &format!("{}{sync}", services()));
    let msock = master.socket.clone();
    assert_eq!(
        adm(&msock, "-L --daemon").1,
        "master sync daemon (mcast=sm0, syncid=9, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
    );
    let (_client, _lines, ports) = client(&topo, 4);
    // Idle from now on. The backup starts late.
    std::thread::sleep(Duration::from_millis(1500));
    let (_bdir, _backup, bsock) = start_backup(&bk, "[sync.backup]\ninterface = \"sb0\"\nsyncid = 9\n");
    assert_eq!(
        adm(&bsock, "-L --daemon").1,
        "backup sync daemon (mcast=sb0, syncid=9, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
    );
    let t0 = Instant::now();
    wait_for(&bsock, &msock, "the 4 idle connections", &|c| {
        ports.iter().all(|p| c.iter().any(|r| r.1 == src(p) && r.0 == "ESTABLISHED"))
    });
    println!("late backup converged in {:?}", t0.elapsed());
    // The counters say how: the master's sweep re-sent them, the backup
    // received and installed them, and dropped nothing.
    let counter = |sock: &Path, name: &str| -> u64 {
        let (ok, t) = adm(sock, "sync");
        assert!(ok, "{t}");
        t.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in:\n{t}"))
            .parse()
            .unwrap()
    };
    assert!(counter(&msock, "resynced_records") >= 4);
    assert!(counter(&msock, "sent_records") >= 4);
    assert_eq!(counter(&msock, "send_errors"), 0);
    assert!(counter(&bsock, "received_records") >= 4);
    assert!(counter(&bsock, "installed_records") >= 4);
    assert!(adm(&msock, "sync").1.contains(&format!("sync_version {version},")));
    let v0 = counter(&bsock, "received_v0_messages");
    assert_eq!(v0 > 0, version == 0, "v0 messages received: {v0}");
    // The backup's entries expire per the ESTABLISHED timeout (15:00).
    let (_, text) = adm(&bsock, "-Lnc");
    assert!(text.lines().skip(2).all(|l| l.starts_with("TCP 14:") || l.starts_with("TCP 15:00")), "{text}");
    let (_, report) = adm(&bsock, "sync");
    for l in report.lines().filter(|l| l.starts_with("dropped_") || l.starts_with("skipped_")) {
        assert!(l.ends_with(" 0"), "{report}");
    }
    println!("{report}");

    // A backup with another syncid drops the master's messages whole and
    // counts them (§5.1); nothing more is installed.
    assert!(adm(&bsock, "--stop-daemon backup").0);
    assert!(adm(&bsock, "--start-daemon backup --mcast-interface sb0 --syncid 8").0);
    let installed = counter(&bsock, "installed_records");
    let t0 = Instant::now();
    while counter(&bsock, "dropped_foreign_syncid") == 0 {
        assert!(t0.elapsed() < Duration::from_secs(10), "{}", adm(&bsock, "sync").1);
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(counter(&bsock, "installed_records"), installed);
    drop(master);
}

/// Two connections that, after their first three lines, carry only a
/// keepalive line a second for `secs` seconds.
const KEEPALIVE_CLIENT: &str = r#"
import socket, sys, time
cs = []
for i in range(2):
    for attempt in range(50):
        try:
            c = socket.create_connection((sys.argv[1], 80), timeout=5); break
        except OSError:
            time.sleep(0.2)
    for k in range(3):
        c.sendall(b"line %d\n" % k); c.recv(100)
    cs.append(c)
print(" ".join(str(c.getsockname()[1]) for c in cs), flush=True)
end = time.time() + float(sys.argv[2])
while time.time() < end:
    time.sleep(1)
    for c in cs:
        c.sendall(b"keepalive\n"); c.recv(100)
"#;

/// Scenario 1 of the operators' notes: a long-lived connection that carries
/// only keepalives. The ESTABLISHED timeout is 6 s here; keepalives every
/// second keep the master's entry alive, but LVS's rules (packets 3, 53, ...)
/// would not re-sync it for ~25 s, so on the backup it would expire after
/// 6 s. With rvs's resync sweep (2 s) the backup keeps it; with the sweep off
/// (`resync_period = 0`, LVS behaviour) it is gone: the test sees the hole.
#[test]
fn keepalive_only_connections_stay_on_the_backup() {
    let kept = keepalive_case(2);
    assert_eq!(kept, 2, "with the resync sweep the backup keeps both connections");
    let kept = keepalive_case(0);
    assert_eq!(kept, 0, "without it (LVS behaviour) they expire on the backup");
}

/// The connections the backup still lists after 11 s of keepalives.
fn keepalive_case(resync: u32) -> usize {
    let (topo, bk, _bk_guard) = rig(&format!("k{resync}"));
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "{}[ipvs.timeouts]\ntcp = 6\n[sync]\nresync_period = {resync}\n[sync.master]\ninterface = \"sm0\"\n",
        services()
    );
    let master = Director::start(&topo, dir.path(), 1, 2, &extra);
    let msock = master.socket.clone();
    let (_bdir, _backup, bsock) = start_backup(&bk, "[sync.backup]\ninterface = \"sb0\"\n");
    let mut client = Guard(
        topo.cmd("client", "python3").args(["-c", KEEPALIVE_CLIENT, VIP, "14"]).stdout(Stdio::piped()).spawn().unwrap(),
    );
    let mut lines = BufReader::new(client.0.stdout.take().unwrap()).lines();
    let ports: Vec<String> = lines.next().unwrap().unwrap().split_whitespace().map(str::to_string).collect();
    let t0 = Instant::now();
    // Synced at packet 3 in both cases.
    wait_for(&bsock, &msock, "the 2 connections", &|c| ports.iter().all(|p| c.iter().any(|r| r.1 == src(p))));
    std::thread::sleep(Duration::from_secs(11).saturating_sub(t0.elapsed()));
    // The master keeps them (keepalives), whatever the backup does.
    let m = conns(&msock);
    for p in &ports {
        assert!(m.iter().any(|r| r.1 == src(p) && r.0 == "ESTABLISHED"), "master lost {p}: {m:?}");
    }
    let b = conns(&bsock);
    let kept = ports.iter().filter(|p| b.iter().any(|r| r.1 == src(p))).count();
    drop(master);
    kept
}
