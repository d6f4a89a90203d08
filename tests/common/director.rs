//! rvsd running in the director namespace of `scripts/topo`, with the standard
//! ports (client side p0, servers side p1) and static neighbours for the
//! client and the real servers; stopped with SIGTERM.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{wait_with_deadline, Topo, RVSD};

pub struct Director {
    pub log: PathBuf,
    pub socket: PathBuf,
    child: Option<Child>,
}

impl Director {
    /// Starts rvsd in `topo` with `workers` workers (one af_packet queue pair
    /// each), `real_servers` neighbours and `extra` TOML (services...), its
    /// files in `dir`; returns once the control socket answers.
    pub fn start(topo: &Topo, dir: &Path, workers: usize, real_servers: u8, extra: &str) -> Director {
        let client = "[[neighbor]]\nip = \"10.0.1.2\"\nmac = \"02:00:00:00:01:02\"\nport = \"client\"\n";
        let neighbors: String = std::iter::once(client.to_owned())
            .chain((1..=real_servers).map(|n| {
                format!(
                    "[[neighbor]]\nip = \"10.0.2.{}\"\nmac = \"02:00:00:00:02:{:02x}\"\nport = \"servers\"\n",
                    10 + n,
                    10 + n
                )
            }))
            .collect();
        Self::launch(topo, dir, workers, "\"10.0.1.1/24\"", &neighbors, extra)
    }

    /// Starts rvsd as a director on a real network runs it: no static
    /// neighbours (ARP resolves clients and real servers), `client_addresses`
    /// on the client port (a TOML list's items, e.g. a VIP /32 the box
    /// answers ARP for), each port's kernel tap.
    pub fn start_arp(topo: &Topo, dir: &Path, workers: usize, client_addresses: &str, extra: &str) -> Director {
        Self::launch(topo, dir, workers, client_addresses, "", extra)
    }

    fn launch(
        topo: &Topo,
        dir: &Path,
        workers: usize,
        client_addresses: &str,
        neighbors: &str,
        extra: &str,
    ) -> Director {
        let socket = dir.join("rvsd.sock");
        let cfg = dir.join("rvs.toml");
        std::fs::write(
            &cfg,
            format!(
                r#"
[dataplane]
eal_args = ["--no-huge", "-m", "512", "--no-pci", "--log-level=lib.eal:warning"]
mbufs = 8192
poll_idle_us = 20
workers = {workers}

[[port]]
name = "client"
device = "net_af_packet0,iface=p0,qpairs={workers}"
addresses = [{client_addresses}]

[[port]]
name = "servers"
device = "net_af_packet1,iface=p1,qpairs={workers}"
addresses = ["10.0.2.1/24"]

{neighbors}
[control]
socket = "{socket}"

{extra}
"#,
                socket = socket.display()
            ),
        )
        .unwrap();
        Self::spawn(&topo.ns("dir"), &cfg, socket, dir.join("rvsd.log"))
    }

    /// Starts rvsd with config file `cfg` (whose control socket is
    /// `socket`) in network namespace `ns`, logging to `log`; returns once
    /// the control socket answers.
    pub fn spawn(ns: &str, cfg: &Path, socket: PathBuf, log: PathBuf) -> Director {
        let child = Command::new("ip")
            .args(["netns", "exec", ns, RVSD, "--config"])
            .arg(cfg)
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let d = Director { log, socket, child: Some(child) };
        let started = Instant::now();
        while !d.log_text().contains("control socket") {
            assert!(started.elapsed() < Duration::from_secs(20), "rvsd did not start:\n{}", d.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `rvsadm ARGS` against this rvsd; asserts success, returns stdout.
    pub fn rvsadm(&self, args: &str) -> String {
        let bin = Path::new(RVSD).with_file_name("rvsadm");
        let out = Command::new(bin).args(args.split_whitespace()).env("RVS_SOCKET", &self.socket).output().unwrap();
        assert!(out.status.success(), "rvsadm {args}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// SIGTERM; asserts a clean exit (status 0) and returns the log.
    pub fn stop(mut self) -> String {
        let child = self.child.take().unwrap();
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let out = wait_with_deadline(child, Duration::from_secs(20), "rvsd after SIGTERM");
        let log = self.log_text();
        assert!(out.status.success(), "rvsd exit {:?}\n{log}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
        assert!(log.contains("rvsd: stopped after"), "{log}");
        log
    }
}

impl Drop for Director {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
