//! Health checks with ldirectord's behaviour (specs/ipvs.md §7): per real
//! server probes, `failurecount` bookkeeping, and the §7.4 actions (quiesce
//! or remove, restore, fallback on/off, fallbackcommand, maintenancedir,
//! autoreload), inside rvsd's control side.
//!
//! Invariants:
//! - One thread (`rvs-health`) runs a tokio current-thread event loop; every
//!   probe is a task on it, so thousands of checks need no thread each.
//!   Pings share one raw ICMP socket; external checks are child processes
//!   awaited on that loop and killed at their timeout. Nothing here ever blocks the control socket:
//!   rvsadm only reads [`Health::status`] under a short lock.
//! - Actions go through [`Control::handle`] with the same `Op`s as rvsadm's
//!   `-e`/`-a`/`-d`, so every change is one atomic snapshot swap and
//!   established connections are untouched (weight 0 = quiesce, §2.4).
//! - Only servers written in the configuration file (and the fallback) are
//!   ever touched; servers added by hand with rvsadm are left alone.
//! - A reload (SIGHUP, `rvsadm config reload`, autoreload) applies the new
//!   file through [`Health::overlay`] first, so servers that are down stay
//!   down in the very snapshot the reload publishes.
//! - Lock order: Control's state, then the health table; the health thread
//!   never holds the table while it calls into Control.
//!
//! [`Control::handle`]: crate::control::Control::handle

mod dns;
mod engine;
mod http;
mod machine;
mod ping;
mod probe;
mod tls;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::mpsc::UnboundedSender;

use crate::api::{FallbackInfo, HealthInfo, Response};
pub use engine::start;
use machine::Machine;

/// A checked real server: its service, address and port.
pub(crate) type Target = (conf::ServiceAddr, Ipv4Addr, u16);

/// State shared between the health thread and the control side.
#[derive(Default)]
pub struct Health {
    table: Mutex<Table>,
    /// New file configurations for the health thread (never blocks).
    tx: Mutex<Option<UnboundedSender<conf::Config>>>,
}

#[derive(Default)]
pub(crate) struct Table {
    pub servers: HashMap<Target, Entry>,
    /// Services whose fallback is in the table now.
    pub fallback_on: HashMap<conf::ServiceAddr, bool>,
    /// Fallback of each checked service, for display.
    pub fallbacks: Vec<(conf::ServiceAddr, conf::health::Fallback)>,
}

/// One checked server's state and last result.
pub(crate) struct Entry {
    pub machine: Machine,
    pub check: String,
    /// active, quiesced, removed, maintenance.
    pub action: String,
    pub last_ok: Option<bool>,
    pub reason: String,
    pub latency_us: Option<u64>,
    /// Unix seconds the verdict began.
    pub since: u64,
    pub last_check_ms: Option<u64>,
    pub checks_total: u64,
    pub failures_total: u64,
    pub transitions: u64,
}

pub(crate) fn now_unix() -> std::time::Duration {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default()
}

impl Health {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands a newly loaded file configuration to the health thread.
    pub fn reconfigure(&self, cfg: conf::Config) {
        if let Some(tx) = self.tx.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            // Fails only when the thread is gone; then there is nothing to check.
            let _ = tx.send(cfg);
        }
    }

    /// Applies what the checks know to `cfg` (a file configuration about to
    /// be published by a reload): down servers of checked services are
    /// quiesced or left out as their `quiescent` says, and active
    /// fallbacks are added (specs/ipvs.md §7.4).
    pub fn overlay(&self, cfg: &mut conf::Config) {
        let t = self.lock();
        let checks = cfg.health.checks.clone();
        for sc in &checks {
            let Some(svc) = cfg.service.iter_mut().find(|s| s.addr == sc.service) else { continue };
            let down = |s: &conf::Server| {
                t.servers
                    .get(&(sc.service, s.addr, s.port))
                    .is_some_and(|e| e.machine.verdict == machine::Verdict::Down)
            };
            if sc.check.quiescent {
                for s in svc.servers.iter_mut().filter(|s| down(s)) {
                    s.weight = 0;
                }
            } else {
                svc.servers.retain(|s| !down(s));
            }
            if let (Some(fb), true) = (sc.check.fallback, t.fallback_on.get(&sc.service).copied().unwrap_or(false)) {
                if !svc.servers.iter().any(|s| s.addr == fb.addr && s.port == fb.port) {
                    svc.servers.push(fallback_server(&fb));
                }
            }
        }
    }

    /// The `rvsadm health` answer.
    pub fn status(&self) -> Response {
        let t = self.lock();
        let mut keys: Vec<&Target> = t.servers.keys().collect();
        keys.sort_by_key(|k| (k.0.sort_key(), u32::from(k.1), k.2));
        let servers = keys
            .into_iter()
            .filter_map(|k| t.servers.get(k).map(|e| (k, e)))
            .map(|(k, e)| HealthInfo {
                service: k.0,
                addr: k.1,
                port: k.2,
                check: e.check.clone(),
                state: e.machine.verdict.name().to_owned(),
                action: e.action.clone(),
                last_result: e.last_ok.map(|ok| if ok { "ok".to_owned() } else { "failed".to_owned() }),
                reason: e.reason.clone(),
                latency_us: e.latency_us,
                failures: e.machine.failures,
                failurecount: e.machine.failurecount,
                since: e.since,
                last_check_ms: e.last_check_ms,
                checks_total: e.checks_total,
                failures_total: e.failures_total,
                transitions: e.transitions,
            })
            .collect();
        let fallbacks = t
            .fallbacks
            .iter()
            .map(|(svc, fb)| FallbackInfo {
                service: *svc,
                addr: fb.addr,
                port: fb.port,
                active: t.fallback_on.get(svc).copied().unwrap_or(false),
            })
            .collect();
        Response::Health { servers, fallbacks }
    }
}

/// The fallback as a real server: weight 1 and its own method (§7.4).
pub(crate) fn fallback_server(fb: &conf::health::Fallback) -> conf::Server {
    conf::Server { addr: fb.addr, port: fb.port, method: fb.method, weight: 1, u_threshold: 0, l_threshold: 0 }
}
