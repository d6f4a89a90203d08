//! `scripts/rvs-boot`, the appliance boot path: in vdev mode on a machine
//! without NICs (no hugepages, no binding) it starts rvsd, waits for the
//! control socket and loads an ipvsadm-save file the way ipvsadm-restore does;
//! `--dry-run` with a PCI port plans the hugepages and the vfio-pci binding
//! without doing either.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{repo_root, wait_with_deadline, RVSD};

fn rvsadm() -> PathBuf {
    let p = Path::new(RVSD).with_file_name("rvsadm");
    assert!(p.exists(), "{} missing: run `cargo build --workspace` (scripts/test does)", p.display());
    p
}

/// Runs `bash scripts/rvs-boot ARGS` to completion (60 s at most).
fn boot(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut c = Command::new("bash");
    c.arg(repo_root().join("scripts/rvs-boot")).args(args).arg("--rvsd").arg(RVSD).arg("--rvsadm").arg(rvsadm());
    for (k, v) in env {
        c.env(k, v);
    }
    let child = c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("run rvs-boot");
    wait_with_deadline(child, Duration::from_secs(60), "rvs-boot")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The rvsd that rvs-boot left running, stopped with SIGTERM on drop.
struct Booted {
    pidfile: PathBuf,
}

impl Booted {
    fn pid(&self) -> Option<String> {
        std::fs::read_to_string(&self.pidfile).ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
    }
}

/// Alive: /proc/PID exists and is not a zombie (rvsd's parent is whatever
/// adopted it, which may not reap it).
fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

impl Drop for Booted {
    fn drop(&mut self) {
        let Some(pid) = self.pid() else { return };
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let start = Instant::now();
        while alive(&pid) && start.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if alive(&pid) {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
    }
}

const RULES: &str = "\
# director1, saved with ipvsadm-save -n
-A -t 10.0.0.1:80 -s wlc
-a -t 10.0.0.1:80 -r 192.168.10.1:80 -m -w 1
-a -t 10.0.0.1:80 -r 192.168.10.2:80 -m -w 3
-A -u 10.0.0.1:53 -s rr
-a -u 10.0.0.1:53 -r 192.168.10.3:53 -g -w 1
";

#[test]
fn vdev_mode_boots_rvsd_and_loads_the_rules_like_ipvsadm_restore() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A service in the config: ipvsadm-restore flushes the table first, so it goes.
    let config = common::daemon::write_config(
        d,
        "[[service]]\nprotocol = \"tcp\"\naddress = \"10.9.9.9:80\"\nscheduler = \"rr\"\n",
    );
    let rules = d.join("ipvsadm.rules");
    std::fs::write(&rules, RULES).unwrap();
    let socket = d.join("rvsd.sock");
    let pidfile = d.join("rvsd.pid");
    let log = d.join("rvsd.log");
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--rules",
        rules.to_str().unwrap(),
        "--log",
        log.to_str().unwrap(),
        "--pidfile",
        pidfile.to_str().unwrap(),
        "--timeout",
        "30",
    ];

    let o = boot(&args, &[]);
    let booted = Booted { pidfile: pidfile.clone() };
    assert!(
        o.status.success(),
        "rvs-boot failed:\n{}\nrvsd log:\n{}",
        text(&o),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains("vdev mode"), "{}", text(&o));
    assert!(!out.contains("would run"), "{}", text(&o));
    let pid = booted.pid().expect("rvs-boot wrote rvsd's pid");
    assert!(out.contains(&format!("pid {pid}")), "{}", text(&o));
    assert!(alive(&pid), "rvsd {pid} is not running after rvs-boot exited 0");
    assert!(std::fs::read_to_string(&log).unwrap().contains("control socket"), "rvsd's output goes to --log");

    let rvsadm = |args: &[&str]| {
        let child = Command::new(rvsadm())
            .args(args)
            .env("RVS_SOCKET", &socket)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let o = wait_with_deadline(child, Duration::from_secs(10), "rvsadm");
        assert!(o.status.success(), "rvsadm {args:?}: {}", text(&o));
        String::from_utf8(o.stdout).unwrap()
    };
    let listing = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.0.0.1:80 wlc
  -> 192.168.10.1:80              Masq    1      0          0         
  -> 192.168.10.2:80              Masq    3      0          0         
UDP  10.0.0.1:53 rr
  -> 192.168.10.3:53              Route   1      0          0         
";
    assert_eq!(rvsadm(&["-Ln"]), listing);
    let without_comment: String = RULES.lines().filter(|l| !l.starts_with('#')).map(|l| format!("{l}\n")).collect();
    assert_eq!(rvsadm(&["-S", "-n"]), without_comment);
    assert!(out.ends_with(listing), "rvs-boot prints the table last:\n{out}");

    // Idempotent: a second run finds rvsd up, starts nothing, loads the same table.
    let o = boot(&args, &[]);
    assert!(o.status.success(), "second rvs-boot:\n{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("not starting another"), "{}", text(&o));
    assert_eq!(booted.pid().as_deref(), Some(pid.as_str()));
    assert_eq!(rvsadm(&["-Ln"]), listing);

    // A rules file that fails to load changes nothing and exits 1, naming it.
    let bad = d.join("bad.rules");
    std::fs::write(&bad, "-A -t 10.0.0.7:80 -s rr\n-a -t 10.0.0.8:80 -r 10.0.1.1:80\n").unwrap();
    let o = boot(&["--load-only", "--config", config.to_str().unwrap(), "--rules", bad.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("bad.rules"), "{}", text(&o));
    assert_eq!(rvsadm(&["-Ln"]), listing);

    // SIGTERM stops rvsd, which removes its socket.
    drop(booted);
    assert!(!alive(&pid), "rvsd {pid} still running 20 s after SIGTERM");
    assert!(!socket.exists(), "rvsd left its socket behind");
}

#[test]
fn dry_run_with_a_pci_port_plans_hugepages_and_vfio_binding_and_does_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A sysfs of our own: a NIC on its kernel driver, no hugepages reserved.
    let sys = d.join("sys");
    let nr = sys.join("kernel/mm/hugepages/hugepages-2048kB/nr_hugepages");
    std::fs::create_dir_all(nr.parent().unwrap()).unwrap();
    std::fs::write(&nr, "0\n").unwrap();
    let nic = sys.join("bus/pci/devices/0000:00:1f.6");
    std::fs::create_dir_all(nic.join("net/rvstest9")).unwrap();
    std::os::unix::fs::symlink("../../../bus/pci/drivers/e1000e", nic.join("driver")).unwrap();

    let config = d.join("rvs.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[dataplane]
eal_args = ["--log-level=lib.eal:warning"]
[[port]]
name = "wan"
device = "0000:00:1f.6"
addresses = ["10.0.1.1/24"]
[control]
socket = "{d}/rvsd.sock"
"#,
            d = d.display()
        ),
    )
    .unwrap();
    let rules = d.join("ipvsadm.rules");
    std::fs::write(&rules, RULES).unwrap();
    let log = d.join("rvsd.log");
    let o = boot(
        &[
            "--dry-run",
            "--config",
            config.to_str().unwrap(),
            "--rules",
            rules.to_str().unwrap(),
            "--log",
            log.to_str().unwrap(),
        ],
        &[("RVS_SYSFS", &sys)],
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("dry run"), "{}", text(&o));
    assert!(!out.contains("vdev mode"), "{}", text(&o));
    let hugepages = format!("would run: echo 1024 > {}", nr.display());
    assert!(out.contains(&hugepages), "no `{hugepages}` in the plan:\n{}", text(&o));
    assert!(out.contains("dpdk-devbind.py --bind=vfio-pci 0000:00:1f.6"), "{}", text(&o));
    assert!(out.contains(&format!("would run: setsid {RVSD} --config")), "{}", text(&o));
    assert!(!out.contains("running:"), "a dry run runs nothing:\n{}", text(&o));
    // Nothing happened.
    assert_eq!(std::fs::read_to_string(&nr).unwrap(), "0\n");
    assert!(!log.exists());
    assert!(!d.join("rvsd.sock").exists());
    assert!(!d.join("rvsd.pid").exists());
}
