//! The director end to end on a network, as an operator runs it: rvsd in the
//! namespaces of `scripts/topo` on net_af_packet vdevs, no static neighbours
//! (rvsd resolves clients and real servers with ARP, and answers ARP for its
//! addresses and the VIP), the kernel's side of each port on a tap, real
//! Linux clients (curl, ping, python sockets) and real servers (python
//! http.server, echo servers; for TUN a user-space IPIP decapsulator, since
//! this kernel has no ipip module). Services are configured with rvsadm in
//! ipvsadm syntax. What the clients and servers saw is the judge.
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::director::Director;
use common::{repo_root, Guard, Topo};

/// In the client's subnet: the client ARPs for it and rvsd answers.
const VIP: &str = "10.0.1.100";
const CLIENT_PORT_ADDRS: &str = "\"10.0.1.1/24\", \"10.0.1.100/32\"";
/// curl options for a server that may still be starting.
const CURL_RETRYING: [&str; 9] =
    ["-sS", "--retry", "20", "--retry-connrefused", "--retry-delay", "0", "--max-time", "5", "--fail"];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Nat,
    Dr,
    Tun,
}

struct E2e {
    topo: Topo,
    _servers: Vec<Guard>,
    rvsd: Director,
    _dir: tempfile::TempDir,
}

fn helper(name: &str) -> String {
    repo_root().join("tests/helpers").join(name).display().to_string()
}

fn run(c: &mut Command) -> std::process::Output {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl E2e {
    /// `n` real servers, each with HTTP on 80 and 8080 answering "rsN", a TCP
    /// line echo on 7000 and a UDP echo on 9000; rvsd with no services.
    fn start(name: &str, n: u8, mode: Mode) -> E2e {
        Self::start_with(name, n, mode, 1)
    }

    /// As `start`, with `workers` workers polling one af_packet queue each
    /// (the kernel spreads flows over the queues; rvsd hands each packet to
    /// the worker owning its flow).
    fn start_with(name: &str, n: u8, mode: Mode, workers: usize) -> E2e {
        let topo = Topo::up(name, n as usize);
        let dir = tempfile::tempdir().unwrap();
        let mut servers = Vec::new();
        for i in 1..=n {
            let rs = format!("rs{i}");
            let www = dir.path().join(&rs);
            std::fs::create_dir(&www).unwrap();
            std::fs::write(www.join("index.html"), format!("{rs}\n")).unwrap();
            if mode != Mode::Nat {
                // specs/operator-scenarios.md §5: the VIP on lo, no ARP for it.
                let ns = topo.ns(&rs);
                for cmd in [
                    vec!["ip", "netns", "exec", &ns, "ip", "addr", "add", "10.0.1.100/32", "dev", "lo"],
                    vec!["ip", "netns", "exec", &ns, "sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1"],
                    vec!["ip", "netns", "exec", &ns, "sysctl", "-qw", "net.ipv4.conf.all.arp_announce=2"],
                ] {
                    run(Command::new(cmd[0]).args(&cmd[1..]));
                }
            }
            if mode == Mode::Tun {
                let mut c =
                    topo.cmd(&rs, "python3").arg(helper("ipip_decap.py")).stdout(Stdio::piped()).spawn().unwrap();
                let mut line = String::new();
                BufReader::new(c.stdout.take().unwrap()).read_line(&mut line).unwrap();
                assert_eq!(line.trim(), "ready", "IPIP decapsulator on {rs}");
                servers.push(Guard(c));
            }
            for port in ["80", "8080"] {
                servers.push(Guard(
                    topo.cmd(&rs, "python3")
                        .args(["-m", "http.server", port, "--directory"])
                        .arg(&www)
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .unwrap(),
                ));
            }
            for (port, proto) in [("7000", "tcp"), ("9000", "udp")] {
                servers.push(Guard(
                    topo.cmd(&rs, "python3")
                        .args([&helper("echo_server.py"), &rs, port, proto])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .unwrap(),
                ));
            }
        }
        let rvsd = Director::start_arp(&topo, dir.path(), workers, CLIENT_PORT_ADDRS, "");
        // The servers are up once each answers on the servers' segment.
        for i in 1..=n {
            let url = format!("http://10.0.2.{}:80/", 10 + i);
            run(topo.cmd(&format!("rs{i}"), "curl").args(CURL_RETRYING).arg(&url));
        }
        E2e { topo, _servers: servers, rvsd, _dir: dir }
    }

    fn rvsadm(&self, args: &str) -> String {
        self.rvsd.rvsadm(args)
    }

    /// ipvsadm commands, one per line.
    fn configure(&self, commands: &str) {
        for c in commands.lines().map(str::trim).filter(|l| !l.is_empty()) {
            self.rvsadm(c);
        }
    }

    /// One HTTP request from the client; the server's name.
    fn curl(&self, url: &str) -> String {
        let out = self.topo.cmd("client", "curl").args(["-sS", "--max-time", "5", url]).output().unwrap();
        assert!(out.status.success(), "curl {url}: {}\n{}", String::from_utf8_lossy(&out.stderr), self.rvsd.log_text());
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn curls(&self, n: usize, url: &str) -> Vec<String> {
        (0..n).map(|_| self.curl(url)).collect()
    }

    fn client(&self, program: &str) -> Command {
        self.topo.cmd("client", program)
    }

    /// A long-lived line exchange with VIP:7000 for `secs`; returns once it
    /// has an answer, with the server that answered.
    fn stream(&self, secs: f64) -> (Stream, String) {
        let mut child = self
            .client("python3")
            .args([&helper("stream_client.py"), VIP, "7000", &secs.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let server =
            line.trim().strip_prefix("connected server=").unwrap_or_else(|| panic!("stream: {line:?}")).to_owned();
        (Stream { child: Guard(child), out }, server)
    }

    fn udp_echo(&self, port: u16, what: &str) -> String {
        let code = format!(
            "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3); \
             s.sendto(b'{what}', ('{VIP}', {port})); print(s.recv(100).decode())"
        );
        let out = run(self.client("python3").args(["-c", &code]));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

/// A running stream client.
struct Stream {
    child: Guard,
    out: BufReader<std::process::ChildStdout>,
}

/// Waits for a stream client and returns its verdict line.
fn finish(mut s: Stream) -> String {
    let start = Instant::now();
    while s.child.0.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(30), "stream client hangs");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut s.out, &mut text).unwrap();
    let text = text.trim().to_owned();
    assert!(s.child.0.wait().unwrap().success(), "stream client: {text}");
    text
}

fn count(answers: &[String], who: &str) -> usize {
    answers.iter().filter(|a| *a == who).count()
}

fn mac_of(topo: &Topo, host: &str) -> String {
    let out = run(topo.cmd(host, "cat").arg("/sys/class/net/eth0/address"));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn arp_neighbours_and_the_kernel_path() {
    let e = E2e::start("arp", 2, Mode::Nat);
    e.configure(&format!("-A -t {VIP}:80 -s rr\n-a -t {VIP}:80 -r 10.0.2.11:80 -m\n-a -t {VIP}:80 -r 10.0.2.12:80 -m"));
    let answers = e.curls(4, &format!("http://{VIP}/"));
    assert!(answers.windows(2).all(|w| w[0] != w[1]) && answers.iter().all(|a| a.starts_with("rs")), "{answers:?}");

    // rvsd resolved the client and both real servers (MACs read from the hosts).
    let table = e.rvsadm("neigh");
    for (ip, host, port) in
        [("10.0.1.2", "client", "client"), ("10.0.2.11", "rs1", "servers"), ("10.0.2.12", "rs2", "servers")]
    {
        let row: Vec<&str> = table
            .lines()
            .find(|l| l.starts_with(&format!("{ip} ")))
            .unwrap_or_else(|| panic!("{ip}: {table}"))
            .split_whitespace()
            .collect();
        assert_eq!(row[1], mac_of(&e.topo, host), "{table}");
        assert_eq!(row[2], port, "{table}");
        assert_eq!(row[3], "reachable", "{table}");
    }

    // The box's own addresses answer through the kernel: ping from both
    // sides, and a kernel daemon (an HTTP server in the director's
    // namespace) serves the client on the box's address.
    run(e.client("ping").args(["-c", "2", "-W", "2", "10.0.1.1"]));
    run(e.client("ping").args(["-c", "1", "-W", "2", VIP]));
    // The client resolved the VIP and the box's address to the port's MAC.
    let neigh = run(e.client("ip").args(["neigh", "show", "dev", "eth0"]));
    let neigh = String::from_utf8_lossy(&neigh.stdout);
    for a in [VIP, "10.0.1.1"] {
        let line = neigh.lines().find(|l| l.starts_with(&format!("{a} "))).unwrap_or_else(|| panic!("{a}: {neigh}"));
        assert!(line.contains("lladdr 02:00:00:00:01:01"), "{line}");
    }
    run(e.topo.cmd("rs1", "ping").args(["-c", "1", "-W", "2", "10.0.2.1"]));
    let www = tempfile::tempdir().unwrap();
    std::fs::write(www.path().join("index.html"), "the box itself\n").unwrap();
    let _daemon = Guard(
        e.topo
            .cmd("dir", "python3")
            .args(["-m", "http.server", "8081", "--bind", "10.0.1.1", "--directory"])
            .arg(www.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let out = run(e.client("curl").args(CURL_RETRYING).arg("http://10.0.1.1:8081/"));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "the box itself\n");
    // The kernel reaches the real servers through the servers' tap too.
    let out = run(e.topo.cmd("dir", "curl").args(["-sS", "--max-time", "5", "http://10.0.2.12/"]));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "rs2\n");

    // An address added to the tap (as keepalived adds a VIP) is announced
    // with gratuitous ARP and answered from then on.
    run(e.client("sysctl").args(["-qw", "net.ipv4.conf.eth0.arp_accept=1"]));
    run(e.topo.cmd("dir", "ip").args(["addr", "add", "10.0.1.101/32", "dev", "client"]));
    let start = Instant::now();
    loop {
        let n = run(e.client("ip").args(["neigh", "show", "10.0.1.101"]));
        if String::from_utf8_lossy(&n.stdout).contains("02:00:00:00:01:01") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "no gratuitous ARP for 10.0.1.101");
        std::thread::sleep(Duration::from_millis(100));
    }
    run(e.client("ping").args(["-c", "1", "-W", "2", "10.0.1.101"]));
    let ports = e.rvsadm("ports");
    for counter in ["arp_replies_sent", "arp_requests_sent", "garp_sent", "to_kernel", "from_kernel"] {
        let n: u64 = ports
            .lines()
            .find_map(|l| l.strip_prefix(counter))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{counter}: {ports}"));
        assert!(n > 0, "{counter}: {ports}");
    }
    e.rvsd.stop();
}

#[test]
fn nat_rr_and_wrr_ratios_over_100_requests_with_two_workers() {
    // One client's flows all belong to one worker, so rr and wrr are exact
    // even though its packets arrive on both queues.
    let e = E2e::start_with("wrr", 2, Mode::Nat, 2);
    e.configure(&format!("-A -t {VIP}:80 -s rr\n-a -t {VIP}:80 -r 10.0.2.11:80 -m\n-a -t {VIP}:80 -r 10.0.2.12:80 -m"));
    let answers = e.curls(100, &format!("http://{VIP}/"));
    assert!(answers.windows(2).all(|w| w[0] != w[1]), "rr alternates: {answers:?}");
    assert_eq!((count(&answers, "rs1"), count(&answers, "rs2")), (50, 50));
    e.configure(&format!(
        "-E -t {VIP}:80 -s wrr\n-e -t {VIP}:80 -r 10.0.2.11:80 -m -w 3\n-e -t {VIP}:80 -r 10.0.2.12:80 -m -w 1"
    ));
    let answers = e.curls(100, &format!("http://{VIP}/"));
    assert_eq!((count(&answers, "rs1"), count(&answers, "rs2")), (75, 25), "wrr 3:1");
    let log = e.rvsd.stop();
    let handled = common::worker_figures(&log, "handled");
    let handed_off = common::worker_figures(&log, "handed off");
    // Both workers received packets (the kernel spreads the 200 flows over
    // both queues); one worker owns the client's flows, so the other handed
    // its share over.
    assert_eq!(handled.len(), 2, "{log}");
    assert!(handed_off.iter().sum::<u64>() > 0, "{log}");
}

#[test]
fn persistence_pcc_and_fwmark_keep_a_client_on_one_server() {
    let e = E2e::start("pers", 2, Mode::Nat);
    // Without persistence the client alternates; with -p 60 it sticks.
    e.configure(&format!("-A -t {VIP}:80 -s rr\n-a -t {VIP}:80 -r 10.0.2.11:80 -m\n-a -t {VIP}:80 -r 10.0.2.12:80 -m"));
    let answers = e.curls(10, &format!("http://{VIP}/"));
    assert!(answers.windows(2).all(|w| w[0] != w[1]), "{answers:?}");
    e.configure(&format!("-E -t {VIP}:80 -s rr -p 60"));
    let answers = e.curls(10, &format!("http://{VIP}/"));
    assert!(answers.iter().all(|a| *a == answers[0]), "-p 60: {answers:?}");
    e.configure(&format!("-D -t {VIP}:80"));

    // A port-0 (PCC) service: two ports of one client, one server.
    e.configure(&format!("-A -t {VIP}:0 -s rr -p 60\n-a -t {VIP}:0 -r 10.0.2.11 -m\n-a -t {VIP}:0 -r 10.0.2.12 -m"));
    for _ in 0..3 {
        let a = e.curl(&format!("http://{VIP}:80/"));
        let b = e.curl(&format!("http://{VIP}:8080/"));
        assert_eq!(a, b, "PCC sends :80 and :8080 of one client to one server");
    }
    e.configure(&format!("-D -t {VIP}:0"));

    // A firewall-mark service grouping :80 and :8080 (iptables -t mangle MARK).
    e.configure(&format!(
        "mark -A PREROUTING -t mangle -d {VIP} -p tcp --dport 80 -j MARK --set-mark 1\n\
         mark -A PREROUTING -t mangle -d {VIP} -p tcp --dport 8080 -j MARK --set-mark 1\n\
         -A -f 1 -s rr -p 60\n-a -f 1 -r 10.0.2.11 -m\n-a -f 1 -r 10.0.2.12 -m"
    ));
    let first = e.curl(&format!("http://{VIP}:80/"));
    for _ in 0..3 {
        assert_eq!(e.curl(&format!("http://{VIP}:8080/")), first);
        assert_eq!(e.curl(&format!("http://{VIP}:80/")), first);
    }
    let conns = e.rvsadm("-Lnc");
    assert!(
        conns.lines().any(|l| l.starts_with("IP ") && l.contains("ASSURED") || l.contains("NONE")),
        "the fwmark template: {conns}"
    );
    e.rvsd.stop();
}

#[test]
fn lc_and_drain_with_long_lived_connections() {
    let e = E2e::start("lc", 2, Mode::Nat);
    e.configure(&format!(
        "-A -t {VIP}:7000 -s lc\n-a -t {VIP}:7000 -r 10.0.2.11:7000 -m\n-a -t {VIP}:7000 -r 10.0.2.12:7000 -m"
    ));
    // lc: a long-lived connection on one server sends the next ones to the other.
    let (long, busy) = e.stream(8.0);
    let (other, busy_rs) = if busy == "rs1" { ("rs2", "10.0.2.11") } else { ("rs1", "10.0.2.12") };
    let (held, held_on) = e.stream(8.0);
    assert_eq!(held_on, other, "lc puts the second long-lived connection on the idle server");
    for _ in 0..3 {
        // One active connection each: lc breaks the tie by list order, and
        // short connections close, so each server keeps its one.
        let (s, _) = e.stream(0.1);
        finish(s);
    }

    // Drain: weight 0 on the busy server; its connection keeps exchanging
    // data while every new connection goes to the other.
    e.rvsadm(&format!("-e -t {VIP}:7000 -r {busy_rs}:7000 -m -w 0"));
    for _ in 0..4 {
        let (s, on) = e.stream(0.2);
        assert_eq!(on, other, "quiesced {busy} gets no new connection");
        finish(s);
    }
    let listed = e.rvsadm(&format!("-Ln -t {VIP}:7000"));
    let row: Vec<&str> = listed.lines().find(|l| l.contains(busy_rs)).unwrap().split_whitespace().collect();
    assert_eq!((row[3], row[4]), ("0", "1"), "weight 0, one active connection still: {listed}");
    for s in [long, held] {
        let verdict = finish(s);
        let exchanged: u64 = verdict.rsplit('=').next().unwrap().parse().unwrap();
        assert!(exchanged > 50, "{verdict}");
    }
    e.rvsd.stop();
}

#[test]
fn dr_and_udp_with_set_timeouts() {
    let e = E2e::start("dr", 2, Mode::Dr);
    e.configure(&format!(
        "-A -t {VIP}:80 -s rr\n-a -t {VIP}:80 -r 10.0.2.11:80 -g\n-a -t {VIP}:80 -r 10.0.2.12:80 -g\n\
         -A -u {VIP}:9000 -s rr\n-a -u {VIP}:9000 -r 10.0.2.11:9000 -g\n-a -u {VIP}:9000 -r 10.0.2.12:9000 -g\n\
         --set 40 8 7"
    ));
    let answers = e.curls(6, &format!("http://{VIP}/"));
    assert!(answers.windows(2).all(|w| w[0] != w[1]), "{answers:?}");
    let a = e.udp_echo(9000, "hello");
    let b = e.udp_echo(9000, "again");
    assert!(a.ends_with(" hello") && b.ends_with(" again") && a[..3] != b[..3], "{a} / {b}");
    // The UDP entries expire on the --set udp timeout (7 s), visible in -Lnc.
    let conns = e.rvsadm("-Lnc");
    let udp: Vec<&str> = conns.lines().filter(|l| l.starts_with("UDP ")).collect();
    assert_eq!(udp.len(), 2, "{conns}");
    for l in &udp {
        let expire = l.split_whitespace().nth(1).unwrap();
        assert!(("00:05"..="00:07").contains(&expire), "{l}");
    }
    assert_eq!(e.rvsadm("-L --timeout"), "Timeout (tcp tcpfin udp): 40 8 7\n");
    let start = Instant::now();
    while e.rvsadm("-Lnc").lines().any(|l| l.starts_with("UDP ")) {
        assert!(start.elapsed() < Duration::from_secs(12), "UDP entries outlived the 7 s timeout");
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(start.elapsed() >= Duration::from_secs(4), "expired early");
    e.rvsd.stop();
}

#[test]
fn tun_to_decapsulating_servers_and_pmtu() {
    let e = E2e::start("tun", 2, Mode::Tun);
    e.configure(&format!(
        "-A -t {VIP}:80 -s rr\n-a -t {VIP}:80 -r 10.0.2.11:80 -i\n-a -t {VIP}:80 -r 10.0.2.12:80 -i\n\
         -A -u {VIP}:9000 -s rr\n-a -u {VIP}:9000 -r 10.0.2.11:9000 -i\n-a -u {VIP}:9000 -r 10.0.2.12:9000 -i"
    ));
    let answers = e.curls(6, &format!("http://{VIP}/"));
    assert!(answers.windows(2).all(|w| w[0] != w[1]) && answers.iter().all(|a| a.starts_with("rs")), "{answers:?}");
    assert!(e.udp_echo(9000, "through the tunnel").ends_with(" through the tunnel"));
    // A DF datagram that fits the client's link but not the tunnel (1500 −
    // 20 bytes of outer header) gets ICMP fragmentation needed, and the
    // client's kernel learns the path MTU from it.
    let code = format!(
        "import socket, time\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.setsockopt(socket.IPPROTO_IP, 10, 2)  # IP_MTU_DISCOVER = IP_PMTUDISC_DO\n\
         s.connect(('{VIP}', 9000))\n\
         s.send(b'x' * 1472)\n\
         time.sleep(0.5)\n\
         try:\n    s.send(b'x' * 1472)\nexcept OSError as e:\n    print('refused', e.errno)\n\
         print('mtu', s.getsockopt(socket.IPPROTO_IP, 14))  # IP_MTU\n"
    );
    let out = run(e.client("python3").args(["-c", &code]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("refused 90") && text.contains("mtu 1480"), "EMSGSIZE and a 1480 path MTU: {text}");
    e.rvsd.stop();
}
