//! Health checks end to end (issue 7, specs/ipvs.md §7.4): rvsd in the
//! director namespace probes python HTTP real servers from its kernel side,
//! through the servers port's tap and the dataplane (the exception path,
//! from the port's address 10.0.2.1), as the traffic goes, and what it does
//! is checked from outside: `rvsadm -Ln` (independent of the checker's own
//! state), `rvsadm health`, and which server answers a real curl client.
mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::director::Director;
use common::{Guard, Topo};

const VIP: &str = "10.0.0.100";
const INTERVAL: u64 = 1;
const TIMEOUT: u64 = 1;
const FAILURECOUNT: u64 = 2;

struct Rig {
    topo: Topo,
    servers: Vec<Option<Guard>>,
    www: Vec<PathBuf>,
    rvsd: Director,
    dir: tempfile::TempDir,
}

impl Rig {
    /// rs1 and rs2 answer "rsN" on :80, rs3 answers "sorry" (the fallback);
    /// `health` is the service's [service.health] table.
    fn start(name: &str, health: &str, global: &str) -> Rig {
        let topo = Topo::up(name, 3);
        let dir = tempfile::tempdir().unwrap();
        let mut servers = Vec::new();
        let mut wwws = Vec::new();
        for n in 1..=3 {
            let www = dir.path().join(format!("rs{n}"));
            std::fs::create_dir(&www).unwrap();
            let body = if n == 3 { "sorry\n".to_owned() } else { format!("rs{n}\n") };
            std::fs::write(www.join("index.html"), body).unwrap();
            servers.push(Some(spawn_server(&topo, &www, n)));
            wwws.push(www);
        }
        let services = format!(
            r#"{global}
[[service]]
protocol = "tcp"
address = "{VIP}:80"
scheduler = "rr"
[service.health]
checktype = "negotiate"
request = "index.html"
receive = "^rs[0-9]"
checkinterval = {INTERVAL}
checktimeout = {TIMEOUT}
failurecount = {FAILURECOUNT}
fallback = "10.0.2.13:80 masq"
{health}
[[service.server]]
address = "10.0.2.11:80"
method = "masq"
[[service.server]]
address = "10.0.2.12:80"
method = "masq"
"#
        );
        let rvsd = Director::start(&topo, dir.path(), 1, 3, &services);
        Rig { topo, servers, www: wwws, rvsd, dir }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("rvs.toml")
    }

    /// (Re)starts real server `n`'s HTTP service.
    fn serve(&mut self, n: usize) {
        self.servers[n - 1] = Some(spawn_server(&self.topo, &self.www[n - 1], n));
    }

    fn listening(&self, n: usize) -> bool {
        listening(&self.topo, n)
    }

    /// Stops real server `n`'s HTTP service (the port is then closed).
    fn stop(&mut self, n: usize) {
        self.servers[n - 1] = None;
    }

    /// One HTTP request from the client to the VIP: the body, trimmed.
    fn curl(&self) -> String {
        let out = self
            .topo
            .cmd("client", "curl")
            .args(["-s", "-m", "3", &format!("http://{VIP}/index.html")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The real servers of the VIP in `rvsadm -Ln`: (address:port, weight).
    fn table(&self) -> Vec<(String, u32)> {
        self.rvsd
            .rvsadm("-Ln")
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 4 && f[0] == "->" && f[1] != "RemoteAddress:Port")
                    .then(|| (f[1].to_owned(), f[3].parse().unwrap_or(u32::MAX)))
            })
            .collect()
    }

    fn weight(&self, server: &str) -> Option<u32> {
        self.table().into_iter().find(|(s, _)| s == server).map(|(_, w)| w)
    }

    /// Polls `-Ln` every 50 ms until `cond` holds; the time it took.
    fn until(&self, what: &str, limit: Duration, cond: impl Fn(&Rig) -> bool) -> Duration {
        let start = Instant::now();
        loop {
            if cond(self) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "{what}: not within {limit:?}\n-Ln:\n{}\nhealth:\n{}\nlog:\n{}",
                self.rvsd.rvsadm("-Ln"),
                self.rvsd.rvsadm("health"),
                self.rvsd.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Who answers `n` requests.
    fn answers(&self, n: usize) -> Vec<String> {
        (0..n).map(|_| self.curl()).collect()
    }
}

/// The bound the issue sets for detection: checkinterval × failurecount +
/// checktimeout, plus one second for scheduling on a shared machine and
/// this test's polling. Detection latency itself is measured by
/// scripts/health-bench, not asserted here.
fn bound() -> Duration {
    Duration::from_secs(INTERVAL * FAILURECOUNT + TIMEOUT + 1)
}

/// python's http.server on rs`n`:80 serving `www`, once it listens.
fn spawn_server(topo: &Topo, www: &Path, n: usize) -> Guard {
    let g = Guard(
        topo.cmd(&format!("rs{n}"), "python3")
            .args(["-m", "http.server", "80", "--directory"])
            .arg(www)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    while !listening(topo, n) {
        assert!(start.elapsed() < Duration::from_secs(10), "rs{n} http.server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    g
}

/// Whether rs`n` listens on TCP 80 (asked in its own namespace).
fn listening(topo: &Topo, n: usize) -> bool {
    let out = topo.cmd(&format!("rs{n}"), "ss").args(["-Htln", "sport = :80"]).output().unwrap();
    !out.stdout.is_empty()
}

#[test]
fn quiesce_restore_and_fallback() {
    let mut rig = Rig::start("hcq", "quiescent = \"yes\"", "");
    rig.until("both servers up", Duration::from_secs(10), |r| {
        r.rvsd.rvsadm("health").lines().filter(|l| l.contains(" up ")).count() == 2
    });
    assert_eq!(rig.weight("10.0.2.11:80"), Some(1));
    let mut both = rig.answers(4);
    both.sort();
    both.dedup();
    assert_eq!(both, ["rs1", "rs2"]);

    // Stop rs1's HTTP service: quiesced (weight 0), every new request to rs2.
    rig.stop(1);
    let took = rig.until("rs1 quiesced", bound(), |r| r.weight("10.0.2.11:80") == Some(0));
    println!("rs1 quiesced {took:?} after its service stopped");
    assert_eq!(rig.answers(6), vec!["rs2"; 6]);
    let h = rig.rvsd.rvsadm("health");
    println!("rvsadm health:\n{h}");
    let row = h.lines().find(|l| l.contains("10.0.2.11:80")).unwrap();
    assert!(row.contains(" down ") && row.contains("quiesced") && row.contains("Connection refused"), "{h}");
    assert!(rig.rvsd.log_text().contains("real 10.0.2.11:80 down after 2 failure(s)"), "{}", rig.rvsd.log_text());

    // Start it again: its configured weight returns.
    rig.serve(1);
    let took = rig.until("rs1 restored", bound(), |r| r.weight("10.0.2.11:80") == Some(1));
    println!("rs1 restored {took:?} after its service started");
    let mut both = rig.answers(4);
    both.sort();
    both.dedup();
    assert_eq!(both, ["rs1", "rs2"]);

    // Stop both: the fallback is added and answers.
    rig.stop(1);
    rig.stop(2);
    rig.until("fallback added", bound() + bound(), |r| r.weight("10.0.2.13:80") == Some(1));
    assert_eq!(rig.answers(3), vec!["sorry"; 3]);
    assert!(rig.rvsd.rvsadm("health").contains("fallback 10.0.2.13:80 for TCP 10.0.0.100:80: active"));

    // One returns: the fallback is deleted (never quiesced) and rs2 answers.
    rig.serve(2);
    rig.until("fallback deleted", bound(), |r| r.weight("10.0.2.13:80").is_none());
    assert_eq!(rig.weight("10.0.2.12:80"), Some(1));
    assert_eq!(rig.answers(3), vec!["rs2"; 3]);

    // --json carries the same state.
    let json: serde_json::Value = serde_json::from_str(&rig.rvsd.rvsadm("health --json")).unwrap();
    let servers = json["health"]["servers"].as_array().unwrap();
    let rs1 = servers.iter().find(|s| s["addr"] == "10.0.2.11").unwrap();
    assert_eq!(rs1["state"], "down");
    assert_eq!(rs1["action"], "quiesced");
    let Rig { rvsd, .. } = rig;
    rvsd.stop();
}

#[test]
fn negotiate_content_remove_and_autoreload() {
    let rig = Rig::start("hcn", "quiescent = \"no\"", "[health]\nautoreload = \"yes\"\n");
    rig.until("both servers up", Duration::from_secs(10), |r| {
        r.rvsd.rvsadm("health").lines().filter(|l| l.contains(" up ")).count() == 2
    });

    // Wrong content while the port stays open: removed (quiescent = no).
    std::fs::write(rig.www[0].join("index.html"), "maintenance page\n").unwrap();
    rig.until("rs1 removed", bound(), |r| r.weight("10.0.2.11:80").is_none());
    assert!(rig.listening(1));
    assert_eq!(rig.answers(6), vec!["rs2"; 6]);
    let h = rig.rvsd.rvsadm("health");
    assert!(h.contains("does not match receive \"^rs[0-9]\""), "{h}");
    assert!(h.lines().any(|l| l.contains("10.0.2.11:80") && l.contains("removed")), "{h}");

    // Right content again: added back with its weight.
    std::fs::write(rig.www[0].join("index.html"), "rs1\n").unwrap();
    rig.until("rs1 back", bound(), |r| r.weight("10.0.2.11:80") == Some(1));

    // autoreload: the file changes, the table follows without a SIGHUP...
    let path = rig.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    edit(
        &path,
        &text.replace(
            "address = \"10.0.2.12:80\"\nmethod = \"masq\"",
            "address = \"10.0.2.12:80\"\nmethod = \"masq\"\nweight = 3",
        ),
    );
    rig.until("autoreload applied weight 3", Duration::from_secs(5), |r| r.weight("10.0.2.12:80") == Some(3));
    // ...while a server held down stays down through the reload.
    std::fs::write(rig.www[0].join("index.html"), "broken\n").unwrap();
    rig.until("rs1 removed again", bound(), |r| r.weight("10.0.2.11:80").is_none());
    let text = std::fs::read_to_string(&path).unwrap();
    edit(&path, &text.replace("weight = 3", "weight = 2"));
    rig.until("autoreload applied weight 2", Duration::from_secs(5), |r| r.weight("10.0.2.12:80") == Some(2));
    assert_eq!(rig.weight("10.0.2.11:80"), None, "a reload must not bring back a server that is down");

    // A refused file changes nothing, and says why.
    let text = std::fs::read_to_string(&path).unwrap();
    edit(&path, &text.replace("failurecount = 2", "failurecount = 0"));
    rig.until("refusal logged", Duration::from_secs(5), |r| r.rvsd.log_text().contains("autoreload: reload refused"));
    let log = rig.rvsd.log_text();
    assert!(log.contains("service[0].health.failurecount: 0 is out of range (expected 1..=4294967295)"), "{log}");
    assert_eq!(rig.weight("10.0.2.12:80"), Some(2));
    let Rig { rvsd, .. } = rig;
    rvsd.stop();
}

/// Rewrites the config so its mtime moves even within the same second.
fn edit(path: &Path, text: &str) {
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(path, text).unwrap();
}

#[test]
fn ping_and_connect_checks_through_the_exception_path() {
    // rs1 listens on 80, rs2 does not; 10.0.2.77 does not exist.
    let topo = Topo::up("hcp", 2);
    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("rs1");
    std::fs::create_dir(&www).unwrap();
    let _rs1 = spawn_server(&topo, &www, 1);
    // An external check run by rvsd itself: up only for 10.0.2.11.
    let script = dir.path().join("check.sh");
    std::fs::write(&script, "#!/bin/sh\n[ \"$1 $2 $3 $4\" = \"10.0.0.100 8080 10.0.2.11 8080\" ]\n").unwrap();
    assert!(std::process::Command::new("chmod").arg("+x").arg(&script).status().unwrap().success());
    let services = r#"
[health]
checkinterval = 1
checktimeout = 1

[[service]]
protocol = "tcp"
address = "10.0.0.100:8080"
[service.health]
checktype = "external"
checkcommand = "SCRIPT"
[[service.server]]
address = "10.0.2.11:8080"
method = "masq"
[[service.server]]
address = "10.0.2.12:8080"
method = "masq"

[[service]]
protocol = "udp"
address = "10.0.0.100:53"
[service.health]
checktype = "ping"
[[service.server]]
address = "10.0.2.11:53"
method = "masq"
[[service.server]]
address = "10.0.2.77:53"
method = "masq"

[[service]]
protocol = "tcp"
address = "10.0.0.100:80"
[service.health]
checktype = "connect"
quiescent = "yes"
[[service.server]]
address = "10.0.2.11:80"
method = "masq"
[[service.server]]
address = "10.0.2.12:80"
method = "masq"
"#;
    let services = services.replace("SCRIPT", &script.display().to_string());
    let rvsd = Director::start(&topo, dir.path(), 1, 2, &services);
    let start = Instant::now();
    let rows = loop {
        let h = rvsd.rvsadm("health");
        let rows: Vec<String> = h.lines().skip(1).map(String::from).collect();
        if rows.len() == 6 && rows.iter().all(|r| r.contains(" up ") || r.contains(" down ")) {
            break rows;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{h}\n{}", rvsd.log_text());
        std::thread::sleep(Duration::from_millis(100));
    };
    let row = |s: &str, r: &str| rows.iter().find(|x| x.starts_with(s) && x.contains(r)).unwrap().clone();
    assert!(row("UDP", "10.0.2.11:53").contains("ok: echo reply"), "{rows:?}");
    let r = row("UDP", "10.0.2.77:53");
    assert!(r.contains(" down ") && r.contains("removed") && r.contains("no echo reply within 1s"), "{r}");
    assert!(row("TCP", "10.0.2.11:80").contains("ok: connected"), "{rows:?}");
    let r = row("TCP", "10.0.2.12:80");
    assert!(r.contains(" down ") && r.contains("quiesced") && r.contains("Connection refused"), "{r}");
    assert!(row("TCP", "10.0.2.11:8080").contains("ok: exit 0"), "{rows:?}");
    assert!(row("TCP", "10.0.2.12:8080").contains("failed: exit 1"), "{rows:?}");
    // The independent view: -Ln.
    let ln = rvsd.rvsadm("-Ln");
    assert!(!ln.contains("10.0.2.77"), "{ln}");
    assert!(ln.lines().any(|l| l.contains("10.0.2.12:80") && l.split_whitespace().nth(3) == Some("0")), "{ln}");
    rvsd.stop();
}
