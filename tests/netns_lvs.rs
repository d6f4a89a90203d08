//! Load balancing end to end in network namespaces: real curl clients and
//! python HTTP servers, rvsd on net_af_packet vdevs (scripts/topo), NAT and
//! DR services, rr alternation and persistence checked from what the servers
//! answered.
mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{wait_with_deadline, Guard, Topo, RVSD};

const VIP: &str = "10.0.0.100";

struct Lvs {
    socket: std::path::PathBuf,
    topo: Topo,
    _servers: Vec<Guard>,
    rvsd: Option<std::process::Child>,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Lvs {
    /// Two real servers answering "rsN" on port 80 (bound to the wildcard, so
    /// they also answer for the VIP in DR mode), and rvsd with `services`.
    fn start(name: &str, services: &str, dr: bool) -> Lvs {
        let topo = Topo::up(name, 2);
        let dir = tempfile::tempdir().unwrap();
        let mut servers = Vec::new();
        for n in 1..=2 {
            let www = dir.path().join(format!("rs{n}"));
            std::fs::create_dir(&www).unwrap();
            std::fs::write(www.join("index.html"), format!("rs{n}\n")).unwrap();
            if dr {
                // specs/operator-scenarios.md §5: VIP on lo, no ARP for it.
                let ns = topo.ns(&format!("rs{n}"));
                for cmd in [
                    vec!["ip", "netns", "exec", &ns, "ip", "addr", "add", "10.0.0.100/32", "dev", "lo"],
                    vec!["ip", "netns", "exec", &ns, "sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1"],
                    vec!["ip", "netns", "exec", &ns, "sysctl", "-qw", "net.ipv4.conf.all.arp_announce=2"],
                ] {
                    assert!(std::process::Command::new(cmd[0]).args(&cmd[1..]).status().unwrap().success());
                }
            }
            servers.push(Guard(
                topo.cmd(&format!("rs{n}"), "python3")
                    .args(["-m", "http.server", "80", "--directory"])
                    .arg(&www)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
            ));
        }
        let cfg = dir.path().join("rvs.toml");
        std::fs::write(
            &cfg,
            format!(
                r#"
[dataplane]
eal_args = ["--no-huge", "-m", "512", "--no-pci", "--log-level=lib.eal:warning"]
mbufs = 8192
poll_idle_us = 20

[[port]]
name = "client"
device = "net_af_packet0,iface=p0"
addresses = ["10.0.1.1/24"]

[[port]]
name = "servers"
device = "net_af_packet1,iface=p1"
addresses = ["10.0.2.1/24"]

[[neighbor]]
ip = "10.0.1.2"
mac = "02:00:00:00:01:02"
port = "client"

[[neighbor]]
ip = "10.0.2.11"
mac = "02:00:00:00:02:0b"
port = "servers"

[[neighbor]]
ip = "10.0.2.12"
mac = "02:00:00:00:02:0c"
port = "servers"

[control]
socket = "{d}/rvsd.sock"

{services}
"#,
                d = dir.path().display()
            ),
        )
        .unwrap();
        let log = dir.path().join("rvsd.log");
        let rvsd = topo
            .cmd("dir", RVSD)
            .arg("--config")
            .arg(&cfg)
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while !std::fs::read_to_string(&log).unwrap_or_default().contains("forwarding on") {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "rvsd did not start: {}",
                std::fs::read_to_string(&log).unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Lvs { socket: dir.path().join("rvsd.sock"), topo, _servers: servers, rvsd: Some(rvsd), log, _dir: dir }
    }

    /// One HTTP request from the client to the VIP; the server's name.
    fn curl(&self) -> String {
        let out = self
            .topo
            .cmd("client", "curl")
            .args(["-sS", "--max-time", "5", "--retry", "5", "--retry-connrefused", "--retry-delay", "1"])
            .arg(format!("http://{VIP}/"))
            .output()
            .unwrap();
        assert!(out.status.success(), "curl: {}\n{}", String::from_utf8_lossy(&out.stderr), self.stop_log());
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `rvsadm ARGS` against this rvsd (run from the root namespace: the
    /// control socket is a file).
    fn rvsadm(&self, args: &str) -> String {
        let bin = std::path::Path::new(RVSD).with_file_name("rvsadm");
        let out = std::process::Command::new(bin)
            .args(args.split_whitespace())
            .env("RVS_SOCKET", &self.socket)
            .output()
            .unwrap();
        assert!(out.status.success(), "rvsadm {args}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    fn stop_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn stop(mut self) -> String {
        let child = self.rvsd.take().unwrap();
        let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let out = wait_with_deadline(child, Duration::from_secs(20), "rvsd");
        let log = self.stop_log();
        assert!(out.status.success(), "rvsd exit {:?}\n{log}", out.status);
        log
    }
}

fn service(method: &str, extra: &str) -> String {
    format!(
        "[[service]]\nprotocol = \"tcp\"\naddress = \"{VIP}:80\"\nscheduler = \"rr\"\n{extra}\n\
         [[service.server]]\naddress = \"10.0.2.11:80\"\nmethod = \"{method}\"\n\
         [[service.server]]\naddress = \"10.0.2.12:80\"\nmethod = \"{method}\"\n"
    )
}

fn alternates(answers: &[String]) -> bool {
    answers.windows(2).all(|w| w[0] != w[1]) && answers.iter().all(|a| a == "rs1" || a == "rs2")
}

#[test]
fn nat_rr_alternates_between_real_servers() {
    let lvs = Lvs::start("nat", &service("masq", ""), false);
    let answers: Vec<String> = (0..10).map(|_| lvs.curl()).collect();
    assert!(alternates(&answers), "{answers:?}");
    // The director's view, as an operator reads it (specs §6.2).
    let conns = lvs.rvsadm("-Lnc");
    let rows: Vec<&str> = conns.lines().skip(2).collect();
    assert_eq!(rows.len(), 10, "{conns}");
    for r in &rows {
        let f: Vec<&str> = r.split_whitespace().collect();
        assert_eq!(f[0], "TCP", "{r}");
        assert!(f[3].starts_with("10.0.1.2:"), "{r}");
        assert_eq!(f[4], "10.0.0.100:80", "{r}");
        assert!(f[5] == "10.0.2.11:80" || f[5] == "10.0.2.12:80", "{r}");
    }
    let stats = lvs.rvsadm("-Ln --stats");
    let svc: Vec<&str> =
        stats.lines().find(|l| l.starts_with("TCP  10.0.0.100:80")).unwrap().split_whitespace().collect();
    assert_eq!(svc[2], "10", "Conns: {stats}");
    assert!(svc[3].parse::<u64>().unwrap() >= 50 && svc[4].parse::<u64>().unwrap() >= 40, "In/OutPkts: {stats}");
    // -Z zeroes the counters (the connections stay).
    lvs.rvsadm("-Z");
    let stats = lvs.rvsadm("-Ln --stats");
    let svc: Vec<&str> =
        stats.lines().find(|l| l.starts_with("TCP  10.0.0.100:80")).unwrap().split_whitespace().collect();
    assert_eq!(&svc[2..], ["0", "0", "0", "0", "0"], "{stats}");
    assert_eq!(lvs.rvsadm("-Lnc").lines().count(), 12);
    let log = lvs.stop();
    assert!(log.contains("conns created 10"), "{log}");
}

#[test]
fn dr_rr_alternates_and_servers_answer_from_the_vip() {
    let lvs = Lvs::start("dr", &service("route", ""), true);
    let answers: Vec<String> = (0..10).map(|_| lvs.curl()).collect();
    assert!(alternates(&answers), "{answers:?}");
    lvs.stop();
}

#[test]
fn persistence_sends_one_client_to_one_server() {
    let lvs = Lvs::start("per", &service("masq", "persistent = 60"), false);
    let answers: Vec<String> = (0..10).map(|_| lvs.curl()).collect();
    assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");
    lvs.stop();
}
