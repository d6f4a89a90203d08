//! The health thread: one tokio current-thread runtime running a task per
//! checked server (its probe schedule) and one manager that owns every
//! state change: it records results, logs transitions, and applies
//! ldirectord's actions (specs/ipvs.md §7.4) through the Control.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use conf::health::{Check, CheckType};
use conf::ServiceAddr;
use regex::Regex;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};

use super::machine::{Machine, Verdict};
use super::probe::{self, Spec};
use super::{fallback_server, now_unix, Entry, Target};
use crate::api::{DestSpec, Op, Response};
use crate::control::Control;

/// How often the configuration file's mtime is looked at (autoreload).
const AUTORELOAD_POLL: Duration = Duration::from_secs(1);

/// Starts the health thread on `cfg` (the file configuration rvsd booted with).
pub fn start(control: Arc<Control>, cfg: conf::Config) -> std::io::Result<()> {
    let (tx, rx) = unbounded_channel();
    *control.health.tx.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
    std::thread::Builder::new().name("rvs-health".into()).spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                println!("rvsd: health: cannot start the event loop: {e}; no health checks");
                return;
            }
        };
        rt.block_on(Manager::new(control).run(cfg, rx));
    })?;
    Ok(())
}

/// One probe result, sent by a server's task to the manager.
struct Report {
    target: Target,
    generation: u64,
    outcome: probe::Outcome,
    latency: Duration,
    maintenance: bool,
}

struct Running {
    task: JoinHandle<()>,
    generation: u64,
    check: Check,
    server: conf::Server,
}

struct Manager {
    control: Arc<Control>,
    /// The file configuration now in force.
    cfg: conf::Config,
    running: HashMap<Target, Running>,
    generation: u64,
    results: UnboundedSender<Report>,
    results_rx: Option<UnboundedReceiver<Report>>,
    mtime: Option<SystemTime>,
}

impl Manager {
    fn new(control: Arc<Control>) -> Manager {
        let (results, results_rx) = unbounded_channel();
        let mtime = mtime(&control.config_path);
        Manager {
            control,
            cfg: conf::Config::default(),
            running: HashMap::new(),
            generation: 0,
            results,
            results_rx: Some(results_rx),
            mtime,
        }
    }

    async fn run(mut self, cfg: conf::Config, mut configs: UnboundedReceiver<conf::Config>) {
        let Some(mut results) = self.results_rx.take() else { return };
        self.apply_config(cfg);
        let mut poll = tokio::time::interval(AUTORELOAD_POLL);
        loop {
            tokio::select! {
                Some(cfg) = configs.recv() => self.apply_config(cfg),
                Some(r) = results.recv() => self.record(r),
                _ = poll.tick() => self.autoreload(),
            }
        }
    }

    /// ldirectord's autoreload (§7.2): a changed mtime reloads through the
    /// same path as SIGHUP; a refused file changes nothing.
    fn autoreload(&mut self) {
        if !self.cfg.health.autoreload {
            return;
        }
        let now = mtime(&self.control.config_path);
        if now == self.mtime || now.is_none() {
            return;
        }
        self.mtime = now;
        match self.control.reload() {
            Response::Ok => {
                println!("rvsd: autoreload: {} changed: configuration reloaded", self.control.config_path.display())
            }
            Response::Error { message, .. } => println!("rvsd: autoreload: {message}"),
            r => println!("rvsd: autoreload: unexpected reply {r:?}"),
        }
    }

    /// Starts, keeps or stops server tasks for a new file configuration.
    /// A server whose check and settings did not change keeps its task and
    /// its state.
    fn apply_config(&mut self, cfg: conf::Config) {
        self.mtime = mtime(&self.control.config_path).or(self.mtime);
        let mut wanted: HashMap<Target, (Check, conf::Server)> = HashMap::new();
        for sc in &cfg.health.checks {
            let Some(svc) = cfg.service.iter().find(|s| s.addr == sc.service) else { continue };
            for s in &svc.servers {
                wanted.insert((sc.service, s.addr, s.port), (sc.check.clone(), *s));
            }
        }
        let maint = cfg.health.maintenancedir.clone();
        let mut table = self.control.health.lock();
        self.running.retain(|k, r| {
            let keep = wanted.get(k).is_some_and(|(c, s)| *c == r.check && *s == r.server)
                && maint == self.cfg.health.maintenancedir;
            if !keep {
                r.task.abort();
                if !wanted.contains_key(k) {
                    table.servers.remove(k);
                }
            }
            keep
        });
        for (k, (check, server)) in wanted {
            if self.running.contains_key(&k) {
                continue;
            }
            self.generation += 1;
            let spec = spec(&k, &check);
            let entry = table.servers.entry(k).or_insert_with(|| Entry {
                machine: Machine::new(check.failurecount),
                check: String::new(),
                action: "active".into(),
                last_ok: None,
                reason: "not checked yet".into(),
                latency_us: None,
                since: now_unix().as_secs(),
                last_check_ms: None,
                checks_total: 0,
                failures_total: 0,
                transitions: 0,
            });
            entry.machine.failurecount = check.failurecount.max(1);
            entry.check = describe(&check);
            let task =
                tokio::spawn(prober(k, self.generation, spec, check.clone(), maint.clone(), self.results.clone()));
            self.running.insert(k, Running { task, generation: self.generation, check, server });
        }
        table.fallbacks =
            cfg.health.checks.iter().filter_map(|sc| sc.check.fallback.map(|f| (sc.service, f))).collect();
        let checked: Vec<ServiceAddr> = cfg.health.checks.iter().map(|c| c.service).collect();
        table.fallback_on.retain(|s, _| checked.contains(s));
        drop(table);
        self.cfg = cfg;
    }

    fn record(&mut self, r: Report) {
        let Some(run) = self.running.get(&r.target) else { return };
        if run.generation != r.generation {
            return;
        }
        let check = run.check.clone();
        let server = run.server;
        let ok = r.outcome.is_ok();
        let reason = match &r.outcome {
            Ok(m) | Err(m) => m.clone(),
        };
        let (transition, failures) = {
            let mut t = self.control.health.lock();
            let Some(e) = t.servers.get_mut(&r.target) else { return };
            e.last_ok = Some(ok);
            e.reason = reason.clone();
            e.latency_us = Some(r.latency.as_micros() as u64);
            e.last_check_ms = Some(now_unix().as_millis() as u64);
            e.checks_total += 1;
            if !ok {
                e.failures_total += 1;
            }
            let tr = e.machine.record(ok, r.maintenance || check.checktype == CheckType::Off);
            if tr.is_none() && r.maintenance && e.machine.verdict == Verdict::Down {
                // Already down by its checks; now held down by maintenance.
                e.action = "maintenance".into();
            }
            if tr.is_some() {
                e.since = now_unix().as_secs();
                e.transitions += 1;
            }
            (tr, e.machine.failures)
        };
        let Some(verdict) = transition else { return };
        let (svc, addr, port) = r.target;
        let who = format!("{svc} real {addr}:{port}");
        let action = match verdict {
            Verdict::Down => {
                let action = self.server_down(&svc, &check, &server);
                let why = if r.maintenance { reason.clone() } else { format!("after {failures} failure(s): {reason}") };
                println!("rvsd: health: {who} down {why}; {action}");
                action
            }
            Verdict::Up => {
                let action = self.server_up(&svc, &server);
                println!("rvsd: health: {who} up ({reason}); {action}");
                action
            }
            Verdict::Unknown => return,
        };
        let short = action.split(' ').next().unwrap_or("").to_owned();
        if let Some(e) = self.control.health.lock().servers.get_mut(&r.target) {
            e.action = if r.maintenance { "maintenance".into() } else { short };
        }
        self.fallback(&svc, &check, verdict);
    }

    /// §7.4 Down: quiesce (weight 0) or remove. With readdquiescent, a
    /// quiesced server missing from the table is added back with weight 0.
    fn server_down(&self, svc: &ServiceAddr, check: &Check, server: &conf::Server) -> String {
        let key = *svc;
        match (self.control.live_server(svc, server.addr, server.port), check.quiescent) {
            (Some(live), true) => {
                let dest = DestSpec { weight: 0, ..dest_spec(&live) };
                self.act(Op::EditDest { service: key, dest }, "quiesced (weight 0)")
            }
            (None, true) if check.readdquiescent => {
                let dest = DestSpec { weight: 0, ..dest_spec(server) };
                self.act(Op::AddDest { service: key, dest }, "quiesced (re-added with weight 0)")
            }
            (None, true) => "quiesced (not in the table)".into(),
            (Some(_), false) => self.act(Op::DelDest { service: key, addr: server.addr, port: server.port }, "removed"),
            (None, false) => "removed (was not in the table)".into(),
        }
    }

    /// §7.4 Up: restore the configured weight, thresholds and method, or
    /// add the server back.
    fn server_up(&self, svc: &ServiceAddr, server: &conf::Server) -> String {
        let key = *svc;
        let dest = dest_spec(server);
        match self.control.live_server(svc, server.addr, server.port) {
            Some(live) if live == *server => "active".into(),
            Some(_) => self.act(Op::EditDest { service: key, dest }, &format!("active (weight {})", server.weight)),
            None => self.act(Op::AddDest { service: key, dest }, &format!("active (added, weight {})", server.weight)),
        }
    }

    fn act(&self, op: Op, done: &str) -> String {
        match self.control.handle(op) {
            Response::Ok => done.to_owned(),
            Response::Error { message, .. } => format!("error ({message})"),
            r => format!("error ({r:?})"),
        }
    }

    /// §7.4 fallback: added (weight 1) when the last server goes down,
    /// deleted when any comes back; `fallbackcommand start|stop vip:vport proto`.
    fn fallback(&self, svc: &ServiceAddr, check: &Check, verdict: Verdict) {
        if check.checktype == CheckType::Off {
            // §7.3: off activates no real and no fallback server.
            return;
        }
        let all_down = {
            let t = self.control.health.lock();
            let mut servers = t.servers.iter().filter(|(k, _)| k.0 == *svc).peekable();
            servers.peek().is_some() && servers.all(|(_, e)| e.machine.verdict == Verdict::Down)
        };
        let on = self.control.health.lock().fallback_on.get(svc).copied().unwrap_or(false);
        let turn_on = verdict == Verdict::Down && all_down && !on;
        let turn_off = verdict == Verdict::Up && on;
        if !turn_on && !turn_off {
            return;
        }
        self.control.health.lock().fallback_on.insert(*svc, turn_on);
        if let Some(fb) = check.fallback {
            let key = *svc;
            let configured = self
                .cfg
                .service
                .iter()
                .find(|s| s.addr == *svc)
                .is_some_and(|s| s.servers.iter().any(|r| r.addr == fb.addr && r.port == fb.port));
            let present = self.control.live_server(svc, fb.addr, fb.port).is_some();
            let result = if turn_on && !present {
                self.act(Op::AddDest { service: key, dest: dest_spec(&fallback_server(&fb)) }, "added")
            } else if turn_off && present && !configured {
                self.act(Op::DelDest { service: key, addr: fb.addr, port: fb.port }, "deleted")
            } else {
                "unchanged".into()
            };
            let what = if turn_on { "every real server is down" } else { "a real server is back" };
            println!("rvsd: health: {svc} fallback {}:{} {result}: {what}", fb.addr, fb.port);
        }
        if let Some(cmd) = &check.fallbackcommand {
            let arg = if turn_on { "start" } else { "stop" };
            let (vip, proto) = match svc {
                ServiceAddr::Addr { protocol, vip, port } => (format!("{vip}:{port}"), protocol.name()),
                ServiceAddr::Fwmark(m) => (m.to_string(), "fwm"),
            };
            let line = format!("{cmd} {arg} {vip} {proto}");
            let limit = Duration::from_secs(u64::from(check.checktimeout));
            println!("rvsd: health: {svc} fallbackcommand: {line}");
            tokio::spawn(async move {
                let mut c = tokio::process::Command::new("/bin/sh");
                c.arg("-c").arg(format!("exec {line}"));
                match probe::run(c, limit).await {
                    Ok(0) => {}
                    Ok(code) => println!("rvsd: health: fallbackcommand \"{line}\" exited {code}"),
                    Err(e) => println!("rvsd: health: fallbackcommand \"{line}\": {e}"),
                }
            });
        }
    }
}

fn dest_spec(s: &conf::Server) -> DestSpec {
    DestSpec {
        addr: s.addr,
        port: s.port,
        method: s.method,
        weight: u16::try_from(s.weight).unwrap_or(u16::MAX),
        u_threshold: s.u_threshold,
        l_threshold: s.l_threshold,
    }
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// `negotiate http`, `connect`, `3 (connect, negotiate dns)`, ...
fn describe(c: &Check) -> String {
    match c.checktype {
        CheckType::Negotiate => format!("negotiate {}", c.service.name()),
        CheckType::Combined(n) => format!("{n} connect, then negotiate {}", c.service.name()),
        CheckType::External => format!("external {}", c.checkcommand),
        t => t.name(),
    }
}

fn spec(k: &Target, c: &Check) -> Spec {
    let (svc, addr, port) = *k;
    let (vip, vport, udp) = match svc {
        ServiceAddr::Addr { protocol, vip, port } => (vip.to_string(), port, protocol == conf::Protocol::Udp),
        ServiceAddr::Fwmark(m) => (m.to_string(), 0, false),
    };
    Spec {
        target: SocketAddrV4::new(addr, c.checkport.unwrap_or(port)),
        source: c.source_address,
        service: c.service,
        udp,
        request: c.request.clone(),
        // Validated when the configuration was loaded.
        receive: c.receive.as_deref().and_then(|r| Regex::new(r).ok()),
        httpmethod: c.httpmethod,
        host: c.virtualhost.clone().unwrap_or_else(|| addr.to_string()),
        checktimeout: Duration::from_secs(u64::from(c.checktimeout)),
        negotiatetimeout: Duration::from_secs(u64::from(c.negotiatetimeout)),
        command: format!("{} {vip} {vport} {addr} {port}", c.checkcommand),
    }
}

/// A maintenancedir file forcing `addr:port` down (§7.2): `ip:port` or
/// `ip`. One stat or two per check; the directory is local.
fn in_maintenance(dir: &Option<PathBuf>, addr: Ipv4Addr, port: u16) -> Option<String> {
    let dir = dir.as_ref()?;
    [format!("{addr}:{port}"), addr.to_string()]
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.exists())
        .map(|p| format!("maintenance: {} exists", p.display()))
}

/// One server's probe schedule: a check every `checkinterval` (measured
/// from the start of the previous one), each reported to the manager. The
/// first check starts within the first second, spread by address so a
/// reload does not fire every probe at once.
async fn prober(
    target: Target,
    generation: u64,
    spec: Spec,
    check: Check,
    maint: Option<PathBuf>,
    tx: UnboundedSender<Report>,
) {
    let interval = Duration::from_secs(u64::from(check.checkinterval));
    let spread = (u32::from(target.1).wrapping_mul(2_654_435_761) ^ u32::from(target.2)) % 1000;
    let mut next = Instant::now() + Duration::from_millis(u64::from(spread).min(interval.as_millis() as u64));
    let mut n: u64 = 0;
    loop {
        sleep_until(next).await;
        let started = Instant::now();
        next = started + interval;
        let maintenance = in_maintenance(&maint, target.1, target.2);
        let outcome = match (&maintenance, check.checktype) {
            (Some(m), _) => Err(m.clone()),
            (None, CheckType::On) => Ok("checktype on".into()),
            (None, CheckType::Off) => Err("checktype off".into()),
            (None, CheckType::Connect) => probe::connect(&spec).await,
            (None, CheckType::Negotiate) => probe::negotiate(&spec).await,
            (None, CheckType::Ping) => probe::ping(&spec).await,
            (None, CheckType::External) => probe::external(&spec).await,
            (None, CheckType::Combined(k)) => {
                // N connect checks, then one negotiate (§7.3).
                if n % (u64::from(k) + 1) == u64::from(k) {
                    probe::negotiate(&spec).await
                } else {
                    probe::connect(&spec).await
                }
            }
        };
        n += 1;
        let report =
            Report { target, generation, outcome, latency: started.elapsed(), maintenance: maintenance.is_some() };
        if tx.send(report).is_err() {
            return;
        }
    }
}
