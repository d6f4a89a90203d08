//! The control side's state: the desired configuration, the published
//! snapshot, and how each operation changes them (ipvsadm's semantics and
//! error texts, specs/ipvs.md §6). Every change builds a whole new snapshot and
//! publishes it atomically; a refused operation (or any refused line of a
//! batch) leaves everything as it was.
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use dataplane::conn::dump::ConnDump;
use dataplane::counters::WorkerCounters;
use dataplane::service::DestShared;
use dataplane::snapshot::Snapshot;
use dataplane::worker::WorkerCtl;

use crate::api::{self, DestInfo, ListWhat, Op, Response, ServiceInfo, ServiceSpec, Stats};
use crate::snapshot::{self, Trash};
use conf::limits::Refusal;
use conf::{Method, ServiceAddr};

/// Port counters, read by rvsd from DPDK (the control crate does not open ports).
pub type PortStatsFn = Box<dyn Fn() -> Vec<api::PortInfo> + Send + Sync>;

pub struct Control {
    pub config_path: PathBuf,
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    pub workers: usize,
    pub macs: Vec<[u8; 6]>,
    pub counters: Vec<Arc<WorkerCounters>>,
    pub worker_ctl: Vec<Arc<WorkerCtl>>,
    pub dumps: Mutex<Receiver<(usize, Vec<ConnDump>)>>,
    pub port_stats: PortStatsFn,
    /// The exception path's neighbour table and counters (absent in replay mode).
    pub exception: Option<ExceptionView>,
    /// The connection sync daemon (specs/ipvs.md §5).
    pub sync: crate::sync::SyncDaemon,
    /// Health-check state, shared with the health thread (`health::start`).
    pub health: Arc<crate::health::Health>,
    inner: Mutex<Inner>,
}

/// What the control side reads of the exception path.
pub struct ExceptionView {
    pub neighbors: Arc<ArcSwap<Vec<dataplane::exception::arp::Row>>>,
    pub counters: Arc<dataplane::exception::ExceptionCounters>,
}

struct Inner {
    cfg: conf::Config,
    trash: Trash,
    /// `-Z`: counter values at the last zeroing, per real server.
    zero: HashMap<usize, Stats>,
    /// Rate estimators per real server (2 s EWMA, §6.2).
    est: HashMap<usize, Estimator>,
    /// Per mark rule: what to add to the live counters of the current snapshot
    /// (counts of earlier snapshots, minus what `mark -Z` zeroed).
    mark_offset: Vec<(i64, i64)>,
}

#[derive(Default, Clone, Copy)]
struct Estimator {
    last: Stats,
    /// Scaled like the kernel: cps/pps << 10, bps << 5.
    cps: u64,
    inpps: u64,
    outpps: u64,
    inbps: u64,
    outbps: u64,
}

fn err(message: impl Into<String>) -> Response {
    // ipvsadm returns -1 from main on a kernel error: exit status 255.
    Response::Error { message: message.into(), exit_code: 255 }
}

/// The service `spec` describes, if ipvsadm would send it (conf::limits),
/// with its flags in canonical form.
fn to_conf_service(spec: &ServiceSpec, servers: Vec<conf::Server>) -> Result<conf::Service, Refusal> {
    let s = conf::Service {
        addr: spec.key,
        scheduler: spec.scheduler.clone(),
        persistent: spec.persistent,
        netmask: spec.netmask,
        flags: spec.flags.clone(),
        ops: spec.ops,
        servers,
    };
    conf::limits::service(&s)
}

fn refused(r: Refusal) -> Response {
    Response::Error { message: r.message().to_owned(), exit_code: r.exit_code() }
}

impl Control {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config_path: PathBuf,
        cfg: conf::Config,
        snapshot: Arc<ArcSwap<Snapshot>>,
        workers: usize,
        macs: Vec<[u8; 6]>,
        counters: Vec<Arc<WorkerCounters>>,
        worker_ctl: Vec<Arc<WorkerCtl>>,
        dumps: Receiver<(usize, Vec<ConnDump>)>,
        port_stats: PortStatsFn,
    ) -> Control {
        let sync_params = worker_ctl.first().map_or_else(Default::default, |w| w.sync.params.clone());
        let sync_ports = worker_ctl.iter().map(|w| w.sync.clone()).collect();
        let sync = crate::sync::SyncDaemon::new(sync_params, sync_ports, snapshot.clone());
        sync.configure(&cfg.sync);
        Control {
            sync,
            config_path,
            snapshot,
            workers,
            macs,
            counters,
            worker_ctl,
            dumps: Mutex::new(dumps),
            port_stats,
            exception: None,
            health: Arc::default(),
            inner: Mutex::new(Inner {
                mark_offset: vec![(0, 0); cfg.fwmark.len()],
                cfg,
                trash: Trash::default(),
                zero: HashMap::new(),
                est: HashMap::new(),
            }),
        }
    }

    /// A control side with no dataplane behind it (one idle worker's
    /// counters, no ports): for tools and tests that drive services, health
    /// checks or metrics without EAL.
    pub fn detached(config_path: PathBuf, cfg: conf::Config) -> Control {
        let snapshot = Arc::new(ArcSwap::from_pointee(Control::initial_snapshot(&cfg, &[], 1)));
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        Control::new(
            config_path,
            cfg,
            snapshot,
            1,
            vec![],
            vec![Arc::new(WorkerCounters::new(0))],
            vec![Arc::new(WorkerCtl::new(tx, Default::default()))],
            rx,
            Box::new(Vec::new),
        )
    }

    /// The first snapshot, built before the workers start.
    pub fn initial_snapshot(cfg: &conf::Config, macs: &[[u8; 6]], workers: usize) -> Snapshot {
        snapshot::build(cfg, macs, workers, None, &mut Trash::default())
    }

    /// The `[control]` settings rvsd started with.
    pub fn control_settings(&self) -> conf::Control {
        self.lock().cfg.control.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies one operation; the reply for the client.
    pub fn handle(&self, op: Op) -> Response {
        match op {
            Op::List { what, service } => self.list(what, service),
            Op::Version => Response::Text(format!("rvsd v{} (rvs)", crate::VERSION)),
            Op::ConfigShow => Response::Text(conf::format_rules(&self.lock().cfg.service)),
            Op::ConfigCheck => match conf::load(&self.config_path) {
                Ok(c) => Response::Text(format!("{}: ok ({} service(s))", self.config_path.display(), c.service.len())),
                Err(e) => err(e.to_string()),
            },
            Op::ConfigReload => self.reload(),
            Op::Ports => self.ports(),
            Op::Neighbors => self.neighbors(),
            Op::StartDaemon(spec) => self.sync.start(&spec).map_or_else(err, |()| Response::Ok),
            Op::StopDaemon { state } => self.sync.stop(&state).map_or_else(err, |()| Response::Ok),
            Op::SyncStats => Response::Text(self.sync.report()),
            Op::Zero(k) => self.zero(k),
            Op::Mark(argv) => self.mark(&argv),
            Op::Health => self.health.status(),
            op => {
                let mut inner = self.lock();
                let mut cfg = inner.cfg.clone();
                if let Err(e) = apply(&mut cfg, &op) {
                    return refused(e);
                }
                self.publish(&mut inner, cfg);
                Response::Ok
            }
        }
    }

    /// Re-reads the configuration file and applies its services, timeouts and
    /// knobs; ports, routes and neighbours need a restart. On any error the
    /// running state stays as it was.
    pub fn reload(&self) -> Response {
        let new = match conf::load(&self.config_path) {
            Ok(c) => c,
            Err(e) => return err(format!("reload refused: {e}")),
        };
        let mut inner = self.lock();
        let old = &inner.cfg;
        if new.port != old.port
            || new.route != old.route
            || new.neighbor != old.neighbor
            || new.dataplane != old.dataplane
            || new.control != old.control
            || new.metrics != old.metrics
        {
            return err(
                "reload refused: [dataplane], [[port]], [[route]], [[neighbor]], [control] or [metrics] changed; restart rvsd for those",
            );
        }
        self.sync.configure(&new.sync);
        // Servers the checks hold down stay down in this very snapshot.
        let mut applied = new.clone();
        self.health.overlay(&mut applied);
        self.publish(&mut inner, applied);
        drop(inner);
        self.health.reconfigure(new);
        Response::Ok
    }

    /// The real server `addr:port` of service `svc` as it is in the table now.
    pub fn live_server(&self, svc: &conf::ServiceAddr, addr: std::net::Ipv4Addr, port: u16) -> Option<conf::Server> {
        let inner = self.lock();
        let s = inner.cfg.service.iter().find(|s| s.addr == *svc)?;
        s.servers.iter().find(|r| r.addr == addr && r.port == port).copied()
    }

    fn publish(&self, inner: &mut Inner, cfg: conf::Config) {
        self.publish_marks(inner, cfg, |counts| counts);
    }

    /// Publishes `cfg`; the mark rules' counters so far go through `remap`
    /// (rule positions may have moved) into the new snapshot's offsets.
    fn publish_marks(
        &self,
        inner: &mut Inner,
        cfg: conf::Config,
        remap: impl FnOnce(Vec<(i64, i64)>) -> Vec<(i64, i64)>,
    ) {
        let prev = self.snapshot.load();
        let counts = self.mark_counts(inner, &prev);
        let snap = snapshot::build(&cfg, &self.macs, self.workers, Some(&prev), &mut inner.trash);
        let mut offset = remap(counts);
        offset.resize(cfg.fwmark.len(), (0, 0));
        self.snapshot.store(Arc::new(snap));
        inner.mark_offset = offset;
        inner.cfg = cfg;
    }

    /// Each mark rule's packets and bytes as shown (live + offset).
    fn mark_counts(&self, inner: &Inner, snap: &Snapshot) -> Vec<(i64, i64)> {
        let live = snap.fwmark_totals();
        (0..inner.cfg.fwmark.len())
            .map(|i| {
                let (p, b) = live.get(i).copied().unwrap_or((0, 0));
                let (op, ob) = inner.mark_offset.get(i).copied().unwrap_or((0, 0));
                (p as i64 + op, b as i64 + ob)
            })
            .collect()
    }

    /// `rvsadm mark ...`: iptables' commands on the MARK rules, applied live.
    fn mark(&self, argv: &[String]) -> Response {
        use conf::MarkCommand as C;
        let args: Vec<&str> = argv.iter().map(String::as_str).collect();
        let cmd = match conf::parse_command(&args) {
            Ok(c) => c,
            Err(e) => return Response::Error { message: e, exit_code: 2 },
        };
        let mut inner = self.lock();
        let mut cfg = inner.cfg.clone();
        let n = cfg.fwmark.len();
        let iface_ok = |r: &conf::MarkRule| match &r.in_iface {
            Some(i) if !i.wildcard && !cfg.port.iter().any(|p| p.name == i.name) => {
                Err(format!("-i {}: no such port", i.name))
            }
            _ => Ok(()),
        };
        match cmd {
            C::List(opts) => {
                let snap = self.snapshot.load();
                let counts: Vec<(u64, u64)> =
                    self.mark_counts(&inner, &snap).iter().map(|&(p, b)| (p.max(0) as u64, b.max(0) as u64)).collect();
                // Every received packet traverses the chain and ends at its policy.
                let t = dataplane::counters::Totals::sum(self.counters.iter().map(|c| c.as_ref()), self.macs.len());
                let policy = t.ports.iter().fold((0, 0), |(p, b), n| (p + n[0], b + n[1]));
                return Response::Text(crate::marklist::list(&inner.cfg.fwmark, &counts, policy, opts));
            }
            C::ListRules { .. } => {
                let mut t = String::from("-P PREROUTING ACCEPT\n");
                for r in &inner.cfg.fwmark {
                    t.push_str(&conf::format_rule(r));
                    t.push('\n');
                }
                return Response::Text(t);
            }
            C::Zero => {
                let snap = self.snapshot.load();
                let live = snap.fwmark_totals();
                inner.mark_offset =
                    (0..n).map(|i| live.get(i).map_or((0, 0), |l| (-(l.0 as i64), -(l.1 as i64)))).collect();
                return Response::Ok;
            }
            C::Append(rule) => {
                if let Err(e) = iface_ok(&rule) {
                    return err(e);
                }
                cfg.fwmark.push(rule);
                self.publish_marks(&mut inner, cfg, |c| c);
            }
            C::Insert { pos, rule } => {
                let at = pos.saturating_sub(1) as usize;
                if at > n {
                    return Response::Error { message: "Index of insertion too big.".into(), exit_code: 1 };
                }
                if let Err(e) = iface_ok(&rule) {
                    return err(e);
                }
                cfg.fwmark.insert(at, rule);
                self.publish_marks(&mut inner, cfg, |mut c| {
                    c.insert(at.min(c.len()), (0, 0));
                    c
                });
            }
            C::Delete(rule) => {
                let Some(at) = cfg.fwmark.iter().position(|r| *r == rule) else {
                    return Response::Error {
                        message: "Bad rule (does a matching rule exist in that chain?).".into(),
                        exit_code: 1,
                    };
                };
                cfg.fwmark.remove(at);
                self.publish_marks(&mut inner, cfg, |mut c| {
                    if at < c.len() {
                        c.remove(at);
                    }
                    c
                });
            }
            C::DeleteNum(num) => {
                let at = num.saturating_sub(1) as usize;
                if num == 0 || at >= n {
                    return Response::Error { message: "Index of deletion too big.".into(), exit_code: 1 };
                }
                cfg.fwmark.remove(at);
                self.publish_marks(&mut inner, cfg, |mut c| {
                    if at < c.len() {
                        c.remove(at);
                    }
                    c
                });
            }
            C::Flush => {
                cfg.fwmark.clear();
                self.publish_marks(&mut inner, cfg, |_| Vec::new());
            }
        }
        Response::Ok
    }

    /// `-Z [service]`: counters have one writer each (their worker), so
    /// zeroing records the current values as the new base, and restarts rates.
    fn zero(&self, only: Option<ServiceAddr>) -> Response {
        let snap = self.snapshot.load();
        let mut inner = self.lock();
        if let Some(k) = only {
            if !snap.services.iter().any(|s| s.key == snapshot::service_key(&k)) {
                return err("No such service");
            }
        }
        for s in snap.services.iter().filter(|s| only.is_none_or(|k| s.key == snapshot::service_key(&k))) {
            for d in &s.dests {
                let id = Arc::as_ptr(&d.shared) as usize;
                let raw = raw_stats(&d.shared);
                inner.zero.insert(id, raw);
                inner.est.insert(id, Estimator { last: raw, ..Estimator::default() });
            }
        }
        Response::Ok
    }

    fn ports(&self) -> Response {
        let t = dataplane::counters::Totals::sum(self.counters.iter().map(|c| c.as_ref()), self.macs.len());
        Response::Ports {
            ports: (self.port_stats)(),
            drops: t.drops.iter().filter(|d| d.1 > 0).map(|(r, n)| (r.as_str().to_owned(), *n)).collect(),
            exception: self
                .exception
                .as_ref()
                .map(|e| e.counters.list().into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                .unwrap_or_default(),
        }
    }

    /// Static entries, then what ARP learned (a static entry hides a learned
    /// one for the same address and port, as it wins in the dataplane).
    fn neighbors(&self) -> Response {
        let cfg = &self.lock().cfg;
        let mut out: Vec<api::NeighborInfo> = cfg
            .neighbor
            .iter()
            .map(|n| api::NeighborInfo {
                ip: n.ip,
                mac: n.mac.to_string(),
                port: n.port.clone(),
                state: "permanent".into(),
                age_s: None,
            })
            .collect();
        if let Some(e) = &self.exception {
            for r in e.neighbors.load().iter() {
                let port = cfg.port.get(r.port as usize).map_or_else(|| r.port.to_string(), |p| p.name.clone());
                if out.iter().any(|n| n.ip == r.ip && n.port == port) {
                    continue;
                }
                out.push(api::NeighborInfo {
                    ip: r.ip,
                    mac: r.mac.map_or_else(|| "(incomplete)".into(), |m| conf::MacAddr(m).to_string()),
                    port,
                    state: r.state.name().into(),
                    age_s: r.mac.map(|_| r.age_ms / 1000),
                });
            }
        }
        Response::Neighbors(out)
    }

    fn list(&self, what: ListWhat, only: Option<ServiceAddr>) -> Response {
        match what {
            ListWhat::Timeouts => {
                let t = self.snapshot.load().timeouts.triple();
                Response::Timeouts { tcp: t.0, tcpfin: t.1, udp: t.2 }
            }
            ListWhat::Daemons => {
                Response::Daemons(self.sync.list().into_iter().map(|spec| api::DaemonInfo { spec }).collect())
            }
            ListWhat::Conns => Response::Conns(self.conns()),
            ListWhat::Services => {
                let inner = self.lock();
                let snap = self.snapshot.load();
                let mut services = Vec::new();
                for s in &inner.cfg.service {
                    let key = s.addr;
                    if only.is_some_and(|o| o != key) {
                        continue;
                    }
                    let live = snap.services.iter().find(|x| x.key == snapshot::service_key(&s.addr));
                    let mut dests = Vec::new();
                    let mut total = Stats::default();
                    for d in live.map(|l| l.dests.as_slice()).unwrap_or(&[]) {
                        let stats = self.dest_stats(&inner, &d.shared);
                        add(&mut total, &stats);
                        let r = s.servers.iter().find(|r| r.addr == d.addr && r.port == d.port);
                        dests.push(DestInfo {
                            spec: api::DestSpec {
                                addr: d.addr,
                                port: d.port,
                                method: r.map_or(Method::Route, |r| r.method),
                                weight: u16::try_from(d.weight).unwrap_or(u16::MAX),
                                u_threshold: d.u_threshold,
                                l_threshold: d.l_threshold,
                            },
                            activeconns: d.shared.activeconns.load(Relaxed).max(0) as u32,
                            inactconns: d.shared.inactconns.load(Relaxed).max(0) as u32,
                            persistconns: d.shared.persistconns.load(Relaxed).max(0) as u32,
                            stats,
                        });
                    }
                    services.push(ServiceInfo {
                        spec: ServiceSpec {
                            key,
                            scheduler: s.scheduler.clone(),
                            persistent: s.persistent,
                            netmask: s.netmask,
                            flags: s.flags.clone(),
                            ops: s.ops,
                        },
                        dests,
                        stats: total,
                    });
                }
                if only.is_some() && services.is_empty() {
                    return Response::Error { message: "No such service".into(), exit_code: 1 };
                }
                Response::Services {
                    conn_tab_size: inner.cfg.dataplane.conns_per_worker.saturating_mul(self.workers as u32),
                    services,
                }
            }
        }
    }

    /// Raw counters of one real server summed over workers, minus the `-Z` base,
    /// with its current rates.
    fn dest_stats(&self, inner: &Inner, d: &Arc<DestShared>) -> Stats {
        let mut s = raw_stats(d);
        let id = Arc::as_ptr(d) as usize;
        if let Some(z) = inner.zero.get(&id) {
            s.conns -= z.conns.min(s.conns);
            s.inpkts -= z.inpkts.min(s.inpkts);
            s.outpkts -= z.outpkts.min(s.outpkts);
            s.inbytes -= z.inbytes.min(s.inbytes);
            s.outbytes -= z.outbytes.min(s.outbytes);
        }
        if let Some(e) = inner.est.get(&id) {
            // Reported rounded, as ip_vs_est.c does (§6.2).
            s.cps = rate_of(e.cps, 10);
            s.inpps = rate_of(e.inpps, 10);
            s.outpps = rate_of(e.outpps, 10);
            s.inbps = rate_of(e.inbps, 5);
            s.outbps = rate_of(e.outbps, 5);
        }
        s
    }

    /// Every 2 s: `avg += (rate - avg) / 4` per real server (ip_vs_est.c, §6.2).
    pub fn estimate(&self) {
        let snap = self.snapshot.load();
        let mut inner = self.lock();
        for d in snap.services.iter().flat_map(|s| s.dests.iter()) {
            let now = raw_stats(&d.shared);
            let e = inner.est.entry(Arc::as_ptr(&d.shared) as usize).or_default();
            ewma_step(&mut e.cps, now.conns, e.last.conns, 10);
            ewma_step(&mut e.inpps, now.inpkts, e.last.inpkts, 10);
            ewma_step(&mut e.outpps, now.outpkts, e.last.outpkts, 10);
            ewma_step(&mut e.inbps, now.inbytes, e.last.inbytes, 5);
            ewma_step(&mut e.outbps, now.outbytes, e.last.outbytes, 5);
            e.last = now;
        }
    }

    /// Runs [`Control::estimate`] every 2 s until the process exits.
    pub fn spawn_estimator(self: &Arc<Self>) {
        let me = self.clone();
        std::thread::Builder::new()
            .name("rvs-estimator".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_secs(2));
                me.estimate();
            })
            .ok();
    }

    /// Asks every worker for its connection table and merges the answers.
    fn conns(&self) -> Vec<ConnDump> {
        let rx = self.dumps.lock().unwrap_or_else(|p| p.into_inner());
        while rx.try_recv().is_ok() {}
        for c in &self.worker_ctl {
            c.dump_requested.store(true, Relaxed);
        }
        let mut out = Vec::new();
        let mut got = 0;
        while got < self.worker_ctl.len() {
            match rx.recv_timeout(Duration::from_secs(2)) {
                Ok((_, v)) => {
                    got += 1;
                    out.extend(v);
                }
                Err(_) => break,
            }
        }
        out
    }
}

/// One 2 s estimator step (ip_vs_est.c, §6.2): the rate over the interval,
/// scaled by `shift` bits, folded in as `avg += (rate - avg) / 4`.
fn ewma_step(avg: &mut u64, cur: u64, last: u64, shift: u32) {
    let rate = (cur.saturating_sub(last) << shift) / 2;
    let a = *avg as i64;
    *avg = (a + (rate as i64 - a) / 4).max(0) as u64;
}

/// A scaled average as `ipvsadm --rate` prints it (rounded, §6.2).
fn rate_of(avg: u64, shift: u32) -> u64 {
    let half = (1u64 << shift) / 2 - 1;
    (avg + half) >> shift
}

fn raw_stats(d: &DestShared) -> Stats {
    let mut s = Stats::default();
    for w in d.stats.iter() {
        s.conns += w.conns.get();
        s.inpkts += w.inpkts.get();
        s.outpkts += w.outpkts.get();
        s.inbytes += w.inbytes.get();
        s.outbytes += w.outbytes.get();
    }
    s
}

fn add(t: &mut Stats, s: &Stats) {
    t.conns += s.conns;
    t.inpkts += s.inpkts;
    t.outpkts += s.outpkts;
    t.inbytes += s.inbytes;
    t.outbytes += s.outbytes;
    t.cps += s.cps;
    t.inpps += s.inpps;
    t.outpps += s.outpps;
    t.inbps += s.inbps;
    t.outbps += s.outbps;
}

/// Applies `op` to `cfg` (a copy of the desired state), with the kernel's
/// checks and ipvsadm's texts for what it refuses (conf::limits): whichever
/// client sent it, nothing enters the state that rvsadm could not save and
/// restore.
fn apply(cfg: &mut conf::Config, op: &Op) -> Result<(), Refusal> {
    use Refusal::Kernel;
    let find = |cfg: &conf::Config, k: &ServiceAddr| cfg.service.iter().position(|s| s.addr == *k);
    match op {
        Op::AddService(spec) => {
            let s = to_conf_service(spec, Vec::new())?;
            if find(cfg, &spec.key).is_some() {
                return Err(Kernel("Service already exists"));
            }
            conf::limits::scheduler(&s.scheduler)?;
            cfg.service.push(s);
        }
        Op::EditService(spec) => {
            let s = to_conf_service(spec, Vec::new())?;
            let i = find(cfg, &spec.key).ok_or(Kernel("No such service"))?;
            conf::limits::scheduler(&s.scheduler)?;
            let servers = std::mem::take(&mut cfg.service[i].servers);
            cfg.service[i] = conf::Service { servers, ..s };
        }
        Op::DelService(k) => {
            let i = find(cfg, k).ok_or(Kernel("No such service"))?;
            cfg.service.remove(i);
        }
        Op::Clear => cfg.service.clear(),
        Op::AddDest { service, dest } | Op::EditDest { service, dest } => {
            let i = find(cfg, service).ok_or(Kernel("Service not defined"))?;
            let s = &mut cfg.service[i];
            let mut port = dest.port;
            if let conf::ServiceAddr::Addr { port: sp, .. } = s.addr {
                // ipvsadm forces rport = vport for -g/-i (§4.5); 0 means the service port.
                if dest.method != Method::Masq || port == 0 {
                    port = sp;
                }
            }
            let server = conf::Server {
                addr: dest.addr,
                port,
                method: dest.method,
                weight: u32::from(dest.weight),
                u_threshold: dest.u_threshold,
                l_threshold: dest.l_threshold,
            };
            // The ranges, then the kernel's ERANGE for l_threshold > u_threshold (§1.1).
            conf::limits::server(&server)?;
            let existing = s.servers.iter().position(|r| r.addr == dest.addr && r.port == port);
            match (op, existing) {
                (Op::AddDest { .. }, Some(_)) => return Err(Kernel("Destination already exists")),
                (Op::AddDest { .. }, None) => s.servers.push(server),
                (_, Some(j)) => s.servers[j] = server,
                (_, None) => return Err(Kernel("No such destination")),
            }
        }
        Op::DelDest { service, addr, port } => {
            let i = find(cfg, service).ok_or(Kernel("Service not defined"))?;
            let s = &mut cfg.service[i];
            let port = match s.addr {
                conf::ServiceAddr::Addr { port: sp, .. } if *port == 0 => sp,
                _ => *port,
            };
            let j = s
                .servers
                .iter()
                .position(|r| r.addr == *addr && r.port == port)
                .ok_or(Kernel("No such destination"))?;
            s.servers.remove(j);
        }
        Op::SetTimeouts { tcp, tcpfin, udp } => {
            conf::limits::set_timeouts(*tcp, *tcpfin, *udp)?;
            let t = &mut cfg.ipvs.timeouts;
            if *tcp != 0 {
                t.tcp = *tcp;
            }
            if *tcpfin != 0 {
                t.tcpfin = *tcpfin;
            }
            if *udp != 0 {
                t.udp = *udp;
            }
        }
        Op::Batch(ops) => {
            // -R stops at the first refused line and nothing is applied;
            // ipvsadm prints the bare reason.
            for o in ops {
                apply(cfg, o)?;
            }
        }
        _ => return Err(Kernel("operation not supported here")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_follow_the_kernel_estimator() {
        // A steady 1000 packets/s: the average climbs by a quarter of the gap
        // each 2 s step and reaches the rate.
        let (mut avg, mut total) = (0u64, 0u64);
        let mut shown = Vec::new();
        for _ in 0..30 {
            let last = total;
            total += 2000;
            ewma_step(&mut avg, total, last, 10);
            shown.push(rate_of(avg, 10));
        }
        // 1000 << 10 = 1024000: 256000, 448000, 592000, 700000 → (x + 511) >> 10.
        assert_eq!(&shown[..4], &[250, 437, 578, 684]);
        assert_eq!(*shown.last().unwrap(), 1000);
        // Traffic stops: the rate decays towards 0.
        for _ in 0..40 {
            ewma_step(&mut avg, total, total, 10);
        }
        assert_eq!(rate_of(avg, 10), 0);
        // Rounding as ip_vs_est.c: (x + 0x1FF) >> 10 and (x + 0xF) >> 5.
        assert_eq!(rate_of(0x1ff, 10), 0);
        assert_eq!(rate_of(0x201, 10), 1);
        assert_eq!(rate_of(0xf, 5), 0);
        assert_eq!(rate_of(0x11, 5), 1);
    }
}
