//! Master/backup failover with connection sync, end to end
//! (`scripts/topo-ha`): two rvsd directors on the same client and server
//! segments, Debian's unmodified keepalived running VRRP on each director's
//! kernel side (the taps of the exception path) for the VIP and the real
//! servers' gateway, the master's sync daemon multicasting its connection
//! table to the backup through the same taps. 120 long-lived TCP connections
//! (half busy, half idle) run through the master; the master's keepalived and
//! rvsd are stopped; every connection must go on through the backup with no
//! reset and no stall (the client and the echo servers are the judges).
mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::director::Director;
use common::{repo_root, Guard, Topo};

const VIP: &str = "10.0.1.100";
const BUSY: usize = 60;
const IDLE: usize = 60;

/// rvsd for director `x` ("a" is the master, "b" the backup).
fn rvsd_config(dir: &Path, x: &str, n: u8) -> String {
    let role = if x == "a" { "master" } else { "backup" };
    format!(
        r#"
[dataplane]
eal_args = ["--no-huge", "-m", "512", "--no-pci", "--log-level=lib.eal:warning"]
mbufs = 8192
poll_idle_us = 20
workers = 1

[[port]]
name = "client"
device = "net_af_packet0,iface=p0"
addresses = ["10.0.1.1{n}/24"]

[[port]]
name = "servers"
device = "net_af_packet1,iface=p1"
addresses = ["10.0.2.2{n}/24"]

[control]
socket = "{dir}/rvsd-{x}.sock"

# The backup learns idle connections within 2 s (rvs's resync sweep).
[sync]
resync_period = 2

[sync.{role}]
interface = "servers"
syncid = 7

[[service]]
protocol = "tcp"
address = "{VIP}:7000"
scheduler = "rr"
[[service.server]]
address = "10.0.2.11:7000"
method = "masq"
[[service.server]]
address = "10.0.2.12:7000"
method = "masq"
"#,
        dir = dir.display()
    )
}

/// keepalived for director `x`: one VRRP sync group moving the VIP (client
/// side) and the real servers' gateway 10.0.2.1 (server side) together.
fn keepalived_config(x: &str, priority: u8) -> String {
    format!(
        "global_defs {{\n    router_id dir{x}\n}}\n\
         vrrp_sync_group G {{\n    group {{\n        C\n        S\n    }}\n}}\n\
         vrrp_instance C {{\n    state BACKUP\n    interface client\n    virtual_router_id 51\n    priority {priority}\n    \
         advert_int 1\n    virtual_ipaddress {{\n        {VIP}/32 dev client\n    }}\n}}\n\
         vrrp_instance S {{\n    state BACKUP\n    interface servers\n    virtual_router_id 52\n    priority {priority}\n    \
         advert_int 1\n    virtual_ipaddress {{\n        10.0.2.1/32 dev servers\n    }}\n}}\n"
    )
}

fn keepalived(t: &Topo, dir: &Path, x: &str, priority: u8) -> Child {
    let conf = dir.join(format!("ka-{x}.conf"));
    std::fs::write(&conf, keepalived_config(x, priority)).unwrap();
    t.cmd(&format!("dir{x}"), "keepalived")
        .args(["--dont-fork", "--log-console", "--vrrp", "--use-file"])
        .arg(&conf)
        .arg("--pid")
        .arg(dir.join(format!("ka-{x}.pid")))
        .arg("--vrrp_pid")
        .arg(dir.join(format!("vrrp-{x}.pid")))
        .stdout(std::fs::File::create(dir.join(format!("ka-{x}.log"))).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("keepalived (scripts/setup installs it)")
}

fn has_address(t: &Topo, host: &str, tap: &str, addr: &str) -> bool {
    let out = t.cmd(host, "ip").args(["-br", "addr", "show", "dev", tap]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().any(|w| w == format!("{addr}/32"))
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    start.elapsed()
}

fn established(d: &Director) -> usize {
    d.rvsadm("-Lnc").lines().filter(|l| l.contains(" ESTABLISHED ") && l.contains(&format!("{VIP}:7000"))).count()
}

#[test]
fn established_connections_survive_a_master_stop() {
    failover("stop", false);
}

/// The master dies at once (SIGKILL of keepalived and rvsd): the backup takes
/// over when VRRP advertisements stop (about 3 advert intervals).
#[test]
fn established_connections_survive_a_master_crash() {
    failover("crash", true);
}

fn failover(name: &str, crash: bool) {
    let t = Topo::up_ha(name, 2);
    let dir = tempfile::tempdir().unwrap();
    let mut servers = Vec::new();
    for i in 1..=2 {
        servers.push(Guard(
            t.cmd(&format!("rs{i}"), "python3")
                .args([
                    &repo_root().join("tests/helpers/echo_server.py").display().to_string(),
                    &format!("rs{i}"),
                    "7000",
                    "tcp",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        ));
    }
    let mut directors = Vec::new();
    for (x, n) in [("a", 1u8), ("b", 2)] {
        let cfg = dir.path().join(format!("rvs-{x}.toml"));
        std::fs::write(&cfg, rvsd_config(dir.path(), x, n)).unwrap();
        directors.push(Director::spawn(
            &t.ns(&format!("dir{x}")),
            &cfg,
            dir.path().join(format!("rvsd-{x}.sock")),
            dir.path().join(format!("rvsd-{x}.log")),
        ));
    }
    let b = directors.pop().unwrap();
    let a = directors.pop().unwrap();
    let ka_a = Guard(keepalived(&t, dir.path(), "a", 150));
    let _ka_b = Guard(keepalived(&t, dir.path(), "b", 100));
    wait_for("director a holds the VIP", Duration::from_secs(15), || has_address(&t, "dira", "client", VIP));
    assert!(!has_address(&t, "dirb", "client", VIP), "the backup stays silent");
    assert!(
        a.rvsadm("-L --daemon").contains("master sync daemon (mcast=servers, syncid=7,"),
        "{}",
        a.rvsadm("-L --daemon")
    );

    // 120 connections through the master, every one answered three times.
    let mut client = t
        .cmd("client", "python3")
        .args([
            &repo_root().join("tests/helpers/ha_client.py").display().to_string(),
            VIP,
            "7000",
            &BUSY.to_string(),
            &IDLE.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(client.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "client: {line}");
    let total = BUSY + IDLE;
    wait_for("the master holds every connection", Duration::from_secs(10), || established(&a) == total);
    // The backup learns them all, idle ones included, from the sync channel.
    wait_for("the backup holds every connection", Duration::from_secs(15), || established(&b) == total);

    // The master stops: keepalived first (the VIP moves), then rvsd; or
    // both die at once.
    let moved = Instant::now();
    let log_a = if crash {
        let _ = Command::new("kill").args(["-KILL", &ka_a.0.id().to_string(), &a.pid().to_string()]).status();
        wait_for("the backup takes the VIP", Duration::from_secs(15), || has_address(&t, "dirb", "client", VIP));
        a.log_text()
    } else {
        let _ = Command::new("kill").args(["-TERM", &ka_a.0.id().to_string()]).status();
        wait_for("the backup takes the VIP", Duration::from_secs(10), || has_address(&t, "dirb", "client", VIP));
        a.stop()
    };
    let vip_moved_after = moved.elapsed();
    std::thread::sleep(Duration::from_secs(3));

    // Every connection goes on: busy ones kept exchanging, idle ones answer.
    client.stdin.take().unwrap().write_all(b"finish\n").unwrap();
    let mut summary = String::new();
    out.read_line(&mut summary).unwrap();
    let _ = client.wait();
    let ok: usize =
        summary.split("\"ok\": ").nth(1).and_then(|s| s.split(',').next()).and_then(|s| s.parse().ok()).unwrap_or(0);
    assert!(summary.contains("\"failures\": []") && ok == total, "after failover: {summary}\nmaster log:\n{log_a}");
    let gap: f64 =
        summary.split("\"max_gap\": ").nth(1).and_then(|s| s.split(',').next()).and_then(|s| s.parse().ok()).unwrap();
    println!(
        "failover ({name}): VIP on the backup {vip_moved_after:?} after the master's keepalived stopped; \
         longest gap on a busy connection {gap} s; {summary}"
    );
    let log_b = b.stop();
    assert!(log_b.contains("conns created 0"), "the backup created nothing: it carried synced connections\n{log_b}");
}
