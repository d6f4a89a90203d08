//! Shared rig for the end-to-end tests: temporary directories, running rvsd as
//! a subprocess with a deadline, and the network-namespace topology of
//! `scripts/topo`.
#![allow(dead_code)]

pub mod daemon;
pub mod director;
pub mod lvs;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const RVSD: &str = env!("CARGO_BIN_EXE_rvsd");

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Waits for `child` at most `limit`; kills it and panics past that.
pub fn wait_with_deadline(mut child: Child, limit: Duration, what: &str) -> Output {
    let start = Instant::now();
    loop {
        match child.try_wait().expect("try_wait") {
            Some(_) => return child.wait_with_output().expect("collect output"),
            None if start.elapsed() > limit => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("collect output");
                panic!(
                    "{what} still running after {limit:?}; killed.\nstdout:\n{}\nstderr:\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Runs `rvsd --config path` to completion (replay mode exits by itself).
pub fn run_rvsd(config: &Path, limit: Duration) -> Output {
    let child = Command::new(RVSD)
        .arg("--config")
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rvsd");
    wait_with_deadline(child, limit, "rvsd")
}

/// The value of a `drop REASON N` line in rvsd's final counters (0 if absent).
/// One figure of every "worker N: ..." line of rvsd's exit summary (e.g.
/// "handled", "handed off"), worker by worker.
#[allow(dead_code)]
pub fn worker_figures(stdout: &str, name: &str) -> Vec<u64> {
    let key = format!("{name} ");
    stdout
        .lines()
        .filter(|l| l.starts_with("worker "))
        .map(|l| {
            let rest = l.split(&key).nth(1).unwrap_or_else(|| panic!("no {name:?} in {l:?}"));
            rest.split(',').next().unwrap().trim().parse().expect("worker figure")
        })
        .collect()
}

pub fn drop_count(stdout: &str, reason: &str) -> u64 {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("drop "))
        .filter_map(|l| l.split_once(' '))
        .find(|(r, _)| *r == reason)
        .map(|(_, n)| n.trim().parse().expect("drop count"))
        .unwrap_or(0)
}

/// The `port NAME: rx A packets B bytes, tx C packets D bytes` figures.
pub fn port_counts(stdout: &str, port: &str) -> [u64; 4] {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("port {port}: ")))
        .unwrap_or_else(|| panic!("no counters for port {port} in:\n{stdout}"));
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .take(4)
        .map(|s| s.parse().unwrap())
        .collect();
    [nums[0], nums[1], nums[2], nums[3]]
}

/// The namespaces of `scripts/topo`, torn down on drop.
pub struct Topo {
    pub prefix: String,
    /// The script that built it (and tears it down).
    script: &'static str,
}

impl Topo {
    /// `scripts/topo`: one director.
    pub fn up(name: &str, real_servers: usize) -> Topo {
        Self::up_with("scripts/topo", name, real_servers)
    }

    /// `scripts/topo-ha`: a master/backup pair of directors (hosts dira, dirb).
    pub fn up_ha(name: &str, real_servers: usize) -> Topo {
        Self::up_with("scripts/topo-ha", name, real_servers)
    }

    fn up_with(script: &'static str, name: &str, real_servers: usize) -> Topo {
        assert!(
            unsafe_free_is_root(),
            "end-to-end tests create network namespaces and must run as root (scripts/test)"
        );
        let prefix = format!("rvst{}{name}", std::process::id() % 10000);
        let st = Command::new(repo_root().join(script))
            .args(["up", &prefix, &real_servers.to_string()])
            .status()
            .expect("run the topology script");
        assert!(st.success(), "{script} up {prefix} failed");
        Topo { prefix, script }
    }

    pub fn ns(&self, host: &str) -> String {
        format!("{}-{host}", self.prefix)
    }

    /// A command run inside namespace `host` (client, dir, lan, rs1...).
    pub fn cmd(&self, host: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(host), program]);
        c
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join(self.script)).args(["down", &self.prefix]).status();
    }
}

fn unsafe_free_is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

/// A child process killed on drop (servers started for a test).
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
