//! rvsd on a quiet net_pcap port (an empty rx pcap) with a control socket in a
//! temporary directory, for driving the control plane with the real rvsadm.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{wait_with_deadline, RVSD};

/// rvsadm is the ctl crate's binary, built beside rvsd by `cargo build
/// --workspace` (scripts/test does that first).
pub fn rvsadm() -> PathBuf {
    let p = Path::new(RVSD).with_file_name("rvsadm");
    assert!(p.exists(), "{} missing: run `cargo build --workspace` (scripts/test does)", p.display());
    p
}

/// Writes `DIR/rvs.toml` (and an empty `DIR/in.pcap`) for a quiet rvsd with
/// its socket at `DIR/rvsd.sock`, plus `extra` TOML.
pub fn write_config(d: &Path, extra: &str) -> PathBuf {
    super::lvs::write_pcap(&d.join("in.pcap"), &[]);
    let path = d.join("rvs.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[dataplane]
eal_args = ["--no-huge", "-m", "256", "--no-pci", "--log-level=lib.eal:warning"]
mbufs = 2048
poll_idle_us = 200
conns_per_worker = 4096
[[port]]
name = "p0"
device = "net_pcap0,rx_pcap={d}/in.pcap,tx_pcap={d}/out.pcap"
addresses = ["10.0.1.1/24"]
kernel = false
[control]
socket = "{d}/rvsd.sock"
{extra}
"#,
            d = d.display()
        ),
    )
    .unwrap();
    path
}

pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
}

impl Daemon {
    pub fn start() -> Daemon {
        Daemon::start_with("")
    }

    /// Starts rvsd with `extra` TOML; returns once the control socket exists.
    pub fn start_with(extra: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let cfg = write_config(d, extra);
        let child = Command::new(RVSD)
            .arg("--config")
            .arg(cfg)
            .stdout(std::fs::File::create(d.join("rvsd.log")).unwrap())
            .stderr(std::fs::File::create(d.join("rvsd.err")).unwrap())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while !d.join("rvsd.sock").exists() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no socket:\n{}{}",
                std::fs::read_to_string(d.join("rvsd.log")).unwrap_or_default(),
                std::fs::read_to_string(d.join("rvsd.err")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Daemon { dir, child: Some(child) }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("rvsd.sock")
    }

    /// Runs `prog ARGS` (rvsadm, or a link to it) against this rvsd.
    pub fn run_as(&self, prog: &Path, args: &str, stdin: Option<&str>) -> Output {
        let mut c = Command::new(prog);
        c.args(args.split_whitespace()).env("RVS_SOCKET", self.socket());
        c.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        if let Some(text) = stdin {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        }
        wait_with_deadline(child, Duration::from_secs(10), "rvsadm")
    }

    /// Runs `rvsadm ARGS`; asserts success and returns stdout.
    pub fn ok(&self, args: &str) -> String {
        let o = self.run_as(&rvsadm(), args, None);
        assert!(o.status.success(), "rvsadm {args}: {:?}\n{}", o.status, String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let _ = wait_with_deadline(c, Duration::from_secs(20), "rvsd");
        }
    }
}
