//! Master and backup sync threads (specs/ipvs.md §5.1, §5.4, §5.5).
//!
//! - Master: a UDP socket bound to the primary IPv4 address of the
//!   multicast interface (so Linux sends the group's datagrams out of that
//!   interface), TTL from `--mcast-ttl`, multicast loop off, connected to the
//!   group. Every [`MASTER_TICK`] it drains the workers' rings into
//!   messages of at most `maxlen` bytes; a full message goes at once, a
//!   partial one when its oldest record is [`MAX_AGE`] old.
//! - Backup: a UDP socket bound to group:port that joined the group on the
//!   interface's address. Each datagram is decoded whole ([`super::wire`])
//!   and its records are handed to the worker that owns the flow
//!   (`lb::owner_of`), which installs them between bursts.
//!
//! Start and stop come from rvsadm (`--start-daemon`, `--stop-daemon`) or the
//! `[sync]` config; a refused start leaves whatever runs untouched.
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use dataplane::snapshot::Snapshot;
use dataplane::sync::{SyncParams, SyncPort};

use super::wire::{self, Encoder, MsgDrop, RecordSkip, Version};
use crate::api::DaemonSpec;

/// The LVS sync group and port (§5.1).
pub const DEFAULT_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
pub const DEFAULT_PORT: u16 = 8848;
/// IPv4 + UDP header bytes (§5.1 hlen).
const HLEN: u32 = 28;
/// How often the master drains the workers' rings (the kernel's 20 ms delay).
pub const MASTER_TICK: Duration = Duration::from_millis(20);
/// A partial message waits at most this long (the kernel waits 2 s; rvs is
/// quicker so a backup converges sooner, at the cost of smaller datagrams
/// under light load).
pub const MAX_AGE: Duration = Duration::from_millis(200);
/// How long a blocked receive waits before checking for a stop.
const RECV_POLL: Duration = Duration::from_millis(100);

/// Counters of the sync daemon, read by `rvsadm` and the metrics endpoint.
#[derive(Default)]
pub struct SyncStats {
    pub sent_messages: AtomicU64,
    pub sent_records: AtomicU64,
    pub send_errors: AtomicU64,
    pub received_messages: AtomicU64,
    pub received_records: AtomicU64,
    /// Received datagrams in the v0 format (§5.3).
    pub received_v0_messages: AtomicU64,
    /// Records a worker's `into` ring could not take.
    pub install_queue_full: AtomicU64,
    /// Whole datagrams dropped, by [`MsgDrop`] (order of `MsgDrop::ALL`).
    pub dropped: [AtomicU64; 7],
    /// Records skipped, by [`RecordSkip`] (order of `RecordSkip::ALL`).
    pub skipped: [AtomicU64; 4],
}

impl SyncStats {
    /// `(name, value)` pairs, stable names for metrics.
    pub fn list(&self, ports: &[Arc<SyncPort>]) -> Vec<(String, u64)> {
        let mut v = vec![
            ("sent_messages".to_string(), self.sent_messages.load(Relaxed)),
            ("sent_records".into(), self.sent_records.load(Relaxed)),
            ("send_errors".into(), self.send_errors.load(Relaxed)),
            ("received_messages".into(), self.received_messages.load(Relaxed)),
            ("received_records".into(), self.received_records.load(Relaxed)),
            ("received_v0_messages".into(), self.received_v0_messages.load(Relaxed)),
            ("install_queue_full".into(), self.install_queue_full.load(Relaxed)),
            ("queued_records".into(), ports.iter().map(|p| p.queued.get()).sum()),
            ("queue_full_records".into(), ports.iter().map(|p| p.queue_full.get()).sum()),
            ("installed_records".into(), ports.iter().map(|p| p.installed.get()).sum()),
            ("install_failed_records".into(), ports.iter().map(|p| p.install_failed.get()).sum()),
            ("resynced_records".into(), ports.iter().map(|p| p.resynced.get()).sum()),
        ];
        for (d, n) in MsgDrop::ALL.iter().zip(&self.dropped) {
            v.push((format!("dropped_{}", d.as_str()), n.load(Relaxed)));
        }
        for (s, n) in RecordSkip::ALL.iter().zip(&self.skipped) {
            v.push((format!("skipped_{}", s.as_str()), n.load(Relaxed)));
        }
        v
    }

    fn drop_msg(&self, d: MsgDrop) {
        if let Some(i) = MsgDrop::ALL.iter().position(|x| *x == d) {
            self.dropped[i].fetch_add(1, Relaxed);
        }
    }

    fn skip_record(&self, s: RecordSkip) {
        if let Some(i) = RecordSkip::ALL.iter().position(|x| *x == s) {
            self.skipped[i].fetch_add(1, Relaxed);
        }
    }
}

struct Running {
    /// The effective settings (defaults filled in), as `-L --daemon` shows them.
    spec: DaemonSpec,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    fn stop(mut self) {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Default)]
struct Threads {
    master: Option<Running>,
    backup: Option<Running>,
}

/// The sync daemon of one rvsd: at most one master and one backup.
pub struct SyncDaemon {
    pub params: Arc<SyncParams>,
    pub ports: Vec<Arc<SyncPort>>,
    pub stats: Arc<SyncStats>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    /// `sync_version` (§9): what the master sends.
    pub version: Mutex<Version>,
    /// `backup_only` as configured; in force only while a backup runs.
    backup_only: AtomicBool,
    threads: Mutex<Threads>,
}

/// An interface's primary IPv4 address and MTU (`ip -j -4 addr show dev IF`).
fn interface_info(name: &str) -> Result<(Ipv4Addr, u32), String> {
    if name.is_empty() || name.len() > 15 || name.contains(['/', ' ']) {
        return Err(format!("invalid mcast-interface `{name}'"));
    }
    let out = std::process::Command::new("ip")
        .args(["-j", "-4", "addr", "show", "dev", name])
        .output()
        .map_err(|e| format!("mcast-interface {name}: cannot run ip: {e}"))?;
    if !out.status.success() {
        return Err(format!("mcast-interface {name}: No such device"));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("mcast-interface {name}: {e}"))?;
    let link = v.get(0).ok_or_else(|| format!("mcast-interface {name}: No such device"))?;
    let mtu = link.get("mtu").and_then(|m| m.as_u64()).unwrap_or(1500) as u32;
    let addr = link
        .get("addr_info")
        .and_then(|a| a.as_array())
        .and_then(|a| a.iter().find_map(|i| i.get("local")?.as_str()?.parse::<Ipv4Addr>().ok()))
        .ok_or_else(|| format!("mcast-interface {name}: Cannot assign requested address (no IPv4 address)"))?;
    Ok((addr, mtu))
}

impl SyncDaemon {
    pub fn new(params: Arc<SyncParams>, ports: Vec<Arc<SyncPort>>, snapshot: Arc<ArcSwap<Snapshot>>) -> SyncDaemon {
        SyncDaemon {
            params,
            ports,
            stats: Arc::new(SyncStats::default()),
            snapshot,
            version: Mutex::new(Version::V1),
            backup_only: AtomicBool::new(false),
            threads: Mutex::new(Threads::default()),
        }
    }

    /// Applies the `[sync]` knobs (at start and on reload): sync_version,
    /// sync_threshold, sync_persist_mode, backup_only, resync_period. A
    /// running master keeps the format it started with.
    pub fn configure(&self, s: &conf::Sync) {
        *self.version.lock().unwrap_or_else(|p| p.into_inner()) =
            if s.version == 0 { Version::V0 } else { Version::V1 };
        self.params.threshold.store(s.threshold, Relaxed);
        self.params.period.store(s.period, Relaxed);
        self.params.persist_mode.store(s.persist_mode, Relaxed);
        self.params.resync_period.store(s.resync_period, Relaxed);
        self.backup_only.store(s.backup_only, Relaxed);
        let backup = self.threads().backup.is_some();
        self.params.backup_only.store(s.backup_only && backup, Relaxed);
    }

    /// Starts the daemons `[sync.master]` and `[sync.backup]` name; returns
    /// why each that could not start did not.
    pub fn start_configured(&self, s: &conf::Sync) -> Vec<String> {
        let mut errors = Vec::new();
        for (state, d) in [("master", &s.master), ("backup", &s.backup)] {
            let Some(d) = d else { continue };
            let spec = DaemonSpec {
                state: state.into(),
                mcast_interface: d.interface.clone(),
                syncid: d.syncid,
                mcast_group: d.group,
                mcast_port: d.port,
                mcast_ttl: d.ttl,
                sync_maxlen: d.maxlen,
            };
            if let Err(e) = self.start(&spec) {
                errors.push(format!("[sync.{state}]: {e}"));
            }
        }
        errors
    }

    fn threads(&self) -> std::sync::MutexGuard<'_, Threads> {
        self.threads.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The running daemons with their effective settings (master first).
    pub fn list(&self) -> Vec<DaemonSpec> {
        let t = self.threads();
        t.master.iter().chain(t.backup.iter()).map(|r| r.spec.clone()).collect()
    }

    /// `--start-daemon` (§5.1): opens the socket and starts the thread, or
    /// says why not (ipvsadm's texts where it has one); nothing changes then.
    pub fn start(&self, spec: &DaemonSpec) -> Result<(), String> {
        let master = match spec.state.as_str() {
            "master" => true,
            "backup" => false,
            s => return Err(format!("illegal start-daemon parameter `{s}'")),
        };
        let mut threads = self.threads();
        let slot = if master { &threads.master } else { &threads.backup };
        if slot.is_some() {
            return Err("Daemon has already run".into());
        }
        let (ifaddr, mtu) = interface_info(&spec.mcast_interface)?;
        let group = spec.mcast_group.unwrap_or(DEFAULT_GROUP);
        if !group.is_multicast() {
            return Err(format!("mcast-group {group} is not a multicast address"));
        }
        let port = spec.mcast_port.filter(|p| *p != 0).unwrap_or(DEFAULT_PORT);
        let ttl = spec.mcast_ttl.filter(|t| *t != 0).unwrap_or(1);
        // §5.1 maximum message size: master 1500 - hlen whatever the MTU;
        // backup clamp(MTU, 1500, 65535) - hlen; explicit values clamped.
        let maxlen = match (spec.sync_maxlen, master) {
            (Some(m), true) => u32::from(m).clamp(1, 65535 - HLEN),
            (Some(m), false) => u32::from(m).clamp(1024, 65535 - HLEN),
            (None, true) => 1500 - HLEN,
            (None, false) => mtu.clamp(1500, 65535) - HLEN,
        };
        let eff = DaemonSpec {
            state: spec.state.clone(),
            mcast_interface: spec.mcast_interface.clone(),
            syncid: spec.syncid,
            mcast_group: Some(group),
            mcast_port: Some(port),
            mcast_ttl: Some(ttl),
            sync_maxlen: Some(maxlen as u16),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let thread = if master {
            let sock = UdpSocket::bind(SocketAddrV4::new(ifaddr, 0))
                .and_then(|s| {
                    s.set_multicast_ttl_v4(u32::from(ttl))?;
                    s.set_multicast_loop_v4(false)?;
                    s.connect(SocketAddrV4::new(group, port))?;
                    Ok(s)
                })
                .map_err(|e| format!("master sync socket on {} ({ifaddr}): {e}", spec.mcast_interface))?;
            let (ports, stats, stop2, snap) =
                (self.ports.clone(), self.stats.clone(), stop.clone(), self.snapshot.clone());
            let version = *self.version.lock().unwrap_or_else(|p| p.into_inner());
            let syncid = spec.syncid;
            self.params.master.store(true, Relaxed);
            std::thread::Builder::new()
                .name("rvs-sync-master".into())
                .spawn(move || master_loop(sock, version, syncid, maxlen as usize, &ports, &stats, &snap, &stop2))
        } else {
            let sock = UdpSocket::bind(SocketAddrV4::new(group, port))
                .and_then(|s| {
                    s.join_multicast_v4(&group, &ifaddr)?;
                    s.set_read_timeout(Some(RECV_POLL))?;
                    grow_receive_buffer(&s);
                    Ok(s)
                })
                .map_err(|e| {
                    format!("backup sync socket {group}:{port} on {} ({ifaddr}): {e}", spec.mcast_interface)
                })?;
            let (ports, stats, stop2, snap) =
                (self.ports.clone(), self.stats.clone(), stop.clone(), self.snapshot.clone());
            let syncid = spec.syncid;
            std::thread::Builder::new()
                .name("rvs-sync-backup".into())
                .spawn(move || backup_loop(sock, syncid, &ports, &stats, &snap, &stop2))
        };
        let thread = match thread {
            Ok(t) => t,
            Err(e) => {
                if master {
                    self.params.master.store(false, Relaxed);
                }
                return Err(format!("cannot start the sync thread: {e}"));
            }
        };
        let r = Running { spec: eff, stop, thread: Some(thread) };
        if master {
            threads.master = Some(r);
        } else {
            threads.backup = Some(r);
            // backup_only: no balancing while a sync backup (§5.5, §9).
            self.params.backup_only.store(self.backup_only.load(Relaxed), Relaxed);
        }
        Ok(())
    }

    /// `--stop-daemon master|backup`.
    pub fn stop(&self, state: &str) -> Result<(), String> {
        let mut threads = self.threads();
        let r = match state {
            "master" => threads.master.take(),
            "backup" => threads.backup.take(),
            s => return Err(format!("illegal stop-daemon parameter `{s}'")),
        };
        let Some(r) = r else { return Err("No daemon is running".into()) };
        if state == "master" {
            self.params.master.store(false, Relaxed);
        } else {
            self.params.backup_only.store(false, Relaxed);
        }
        r.stop();
        Ok(())
    }

    /// `rvsadm sync`: each running daemon as `-L --daemon` prints it, the
    /// settings in force, then every counter.
    pub fn report(&self) -> String {
        use std::fmt::Write;
        let mut t = String::new();
        for d in self.list() {
            let _ = writeln!(
                t,
                "{} sync daemon (mcast={}, syncid={}, maxlen={}, group={}, port={}, ttl={})",
                d.state,
                d.mcast_interface,
                d.syncid,
                d.sync_maxlen.unwrap_or(0),
                d.mcast_group.unwrap_or(DEFAULT_GROUP),
                d.mcast_port.unwrap_or(DEFAULT_PORT),
                d.mcast_ttl.unwrap_or(1)
            );
        }
        if t.is_empty() {
            t.push_str("no sync daemon running\n");
        }
        let p = &self.params;
        let version = match *self.version.lock().unwrap_or_else(|p| p.into_inner()) {
            Version::V0 => 0,
            Version::V1 => 1,
        };
        let _ = writeln!(
            t,
            "sync_version {version}, sync_threshold {} {}, sync_persist_mode {}, backup_only {}, resync_period {}",
            p.threshold.load(Relaxed),
            p.period.load(Relaxed),
            u8::from(p.persist_mode.load(Relaxed)),
            u8::from(self.backup_only.load(Relaxed)),
            p.resync_period.load(Relaxed)
        );
        for (name, n) in self.stats.list(&self.ports) {
            let _ = writeln!(t, "{name} {n}");
        }
        t
    }

    pub fn is_backup(&self) -> bool {
        self.threads().backup.is_some()
    }
}

impl Drop for SyncDaemon {
    fn drop(&mut self) {
        let mut t = self.threads();
        for r in [t.master.take(), t.backup.take()].into_iter().flatten() {
            r.stop();
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn master_loop(
    sock: UdpSocket,
    version: Version,
    syncid: u8,
    maxlen: usize,
    ports: &[Arc<SyncPort>],
    stats: &SyncStats,
    snapshot: &ArcSwap<Snapshot>,
    stop: &AtomicBool,
) {
    let mut enc = Encoder::new(version, syncid, maxlen);
    let mut oldest: Option<Instant> = None;
    let send = |m: Vec<u8>, records: usize| match sock.send(&m) {
        Ok(_) => {
            stats.sent_messages.fetch_add(1, Relaxed);
            stats.sent_records.fetch_add(records as u64, Relaxed);
        }
        Err(_) => {
            stats.send_errors.fetch_add(1, Relaxed);
        }
    };
    while !stop.load(Relaxed) {
        let snap = snapshot.load();
        for p in ports {
            while let Some(mut r) = p.out.pop() {
                dataplane::lb::sync::fill_fwmark(&mut r, &snap);
                if enc.is_full() {
                    let n = enc.len();
                    if let Some(m) = enc.finish() {
                        send(m, n);
                    }
                    oldest = None;
                }
                enc.push(&r);
                oldest.get_or_insert_with(Instant::now);
            }
        }
        if oldest.is_some_and(|t| t.elapsed() >= MAX_AGE) {
            let n = enc.len();
            if let Some(m) = enc.finish() {
                send(m, n);
            }
            oldest = None;
        }
        std::thread::sleep(MASTER_TICK);
    }
    let n = enc.len();
    if let Some(m) = enc.finish() {
        send(m, n);
    }
}

/// The backup's receive buffer: a master re-sending a large table (the
/// resync sweep, a restart) sends bursts of datagrams, and what the kernel
/// cannot queue while the backup thread waits for a CPU is lost (Udp
/// RcvbufErrors). Linux's default (rmem_default, about 208 KiB: some 140
/// full messages) is what the kernel's own sync daemon uses unless
/// `sync_sock_size` is set; rvs asks for this much (past rmem_max when
/// rvsd runs as root).
const BACKUP_RCVBUF: usize = 16 << 20;

fn grow_receive_buffer(s: &UdpSocket) {
    use nix::sys::socket::{setsockopt, sockopt};
    if setsockopt(s, sockopt::RcvBufForce, &BACKUP_RCVBUF).is_err() {
        let _ = setsockopt(s, sockopt::RcvBuf, &BACKUP_RCVBUF);
    }
}

fn backup_loop(
    sock: UdpSocket,
    syncid: u8,
    ports: &[Arc<SyncPort>],
    stats: &SyncStats,
    snapshot: &ArcSwap<Snapshot>,
    stop: &AtomicBool,
) {
    let mut buf = vec![0u8; 65536];
    while !stop.load(Relaxed) {
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(_) => continue, // timeout: check the stop flag
        };
        stats.received_messages.fetch_add(1, Relaxed);
        let d = match wire::decode(buf.get(..n).unwrap_or(&[]), syncid) {
            Ok(d) => d,
            Err(e) => {
                stats.drop_msg(e);
                continue;
            }
        };
        if d.v0 {
            stats.received_v0_messages.fetch_add(1, Relaxed);
        }
        for s in &d.skipped {
            stats.skip_record(*s);
        }
        stats.received_records.fetch_add(d.records.len() as u64, Relaxed);
        hand_to_owners(&d.records, ports, &snapshot.load(), stats);
    }
}

/// Queues each record for the worker that owns its flow (`lb::owner_of`, the
/// same hash the workers use for packets), so it is installed where the
/// flow's packets will be handled (§5.5). A full ring drops and counts.
fn hand_to_owners(
    records: &[dataplane::sync::SyncRecord],
    ports: &[Arc<SyncPort>],
    snap: &Snapshot,
    stats: &SyncStats,
) {
    let workers = ports.len().max(1);
    for r in records {
        let owner = dataplane::lb::owner_of(r.caddr, snap.owner_prefix, workers);
        let Some(port) = ports.get(owner) else {
            stats.install_queue_full.fetch_add(1, Relaxed);
            continue;
        };
        // This thread may wait for the worker to make room (the kernel
        // queues what arrives meanwhile, BACKUP_RCVBUF); a worker that does
        // not drain within INSTALL_WAIT loses the record, counted.
        let mut r = *r;
        let start = Instant::now();
        loop {
            match port.into.push(r) {
                Ok(()) => break,
                Err(back) if start.elapsed() < INSTALL_WAIT => {
                    r = back;
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err(_) => {
                    stats.install_queue_full.fetch_add(1, Relaxed);
                    break;
                }
            }
        }
    }
}

/// How long the backup's receive thread waits for room in a worker's install
/// ring before it drops a record.
const INSTALL_WAIT: Duration = Duration::from_millis(100);

#[cfg(test)]
mod tests {
    use super::*;

    fn daemon(workers: usize) -> SyncDaemon {
        let params = Arc::new(SyncParams::default());
        let ports = (0..workers).map(|_| Arc::new(SyncPort::new(16, params.clone()))).collect();
        let snap = Arc::new(ArcSwap::from_pointee(crate::control::Control::initial_snapshot(
            &conf::Config::default(),
            &[],
            1,
        )));
        SyncDaemon::new(params, ports, snap)
    }

    fn spec(state: &str, ifname: &str) -> DaemonSpec {
        DaemonSpec {
            state: state.into(),
            mcast_interface: ifname.into(),
            syncid: 0,
            mcast_group: None,
            mcast_port: None,
            mcast_ttl: None,
            sync_maxlen: None,
        }
    }

    #[test]
    fn refusals_say_why_and_change_nothing() {
        let d = daemon(2);
        assert_eq!(d.start(&spec("primary", "lo")), Err("illegal start-daemon parameter `primary'".into()));
        assert!(d.start(&spec("master", "nosuch9")).unwrap_err().contains("nosuch9"));
        assert_eq!(d.start(&spec("backup", "bad/name")), Err("invalid mcast-interface `bad/name'".into()));
        let mut s = spec("master", "lo");
        s.mcast_group = Some(Ipv4Addr::new(10, 0, 0, 1));
        assert!(d.start(&s).unwrap_err().contains("not a multicast address"));
        assert_eq!(d.stop("master"), Err("No daemon is running".into()));
        assert_eq!(d.stop("both"), Err("illegal stop-daemon parameter `both'".into()));
        assert!(d.list().is_empty());
        assert!(!d.params.master.load(Relaxed), "a refused master start leaves workers off");
    }

    #[test]
    fn records_go_to_the_worker_owning_the_flow() {
        let d = daemon(4);
        let snap = d.snapshot.load();
        let recs: Vec<dataplane::sync::SyncRecord> = (0..200u32)
            .map(|n| dataplane::sync::SyncRecord {
                caddr: Ipv4Addr::from(0xc000_0200 + n * 7919),
                cport: n as u16,
                ..Default::default()
            })
            .collect();
        hand_to_owners(&recs, &d.ports, &snap, &d.stats);
        let mut per_worker = Vec::new();
        for (w, p) in d.ports.iter().enumerate() {
            let mut n = 0;
            while let Some(r) = p.into.pop() {
                assert_eq!(dataplane::lb::owner_of(r.caddr, snap.owner_prefix, 4), w);
                n += 1;
            }
            per_worker.push(n);
        }
        // Rings hold 16 here: what did not fit is counted, never blocks.
        let full = d.stats.install_queue_full.load(Relaxed);
        assert_eq!(per_worker.iter().sum::<u64>() + full, 200);
        assert!(per_worker.iter().all(|n| *n > 0), "{per_worker:?}");
    }

    #[test]
    fn configure_sets_what_workers_read() {
        let d = daemon(1);
        let c = conf::Sync {
            version: 0,
            threshold: 1,
            period: 0,
            persist_mode: true,
            backup_only: true,
            resync_period: 7,
            master: None,
            backup: None,
        };
        d.configure(&c);
        let p = &d.params;
        assert_eq!((p.threshold.load(Relaxed), p.period.load(Relaxed), p.resync_period.load(Relaxed)), (1, 0, 7));
        assert!(p.persist_mode.load(Relaxed));
        // backup_only is only in force while a backup runs.
        assert!(!p.backup_only.load(Relaxed));
        assert_eq!(*d.version.lock().unwrap(), Version::V0);
        let r = d.report();
        assert!(r.starts_with("no sync daemon running\nsync_version 0, sync_threshold 1 0, sync_persist_mode 1, backup_only 1, resync_period 7\n"), "{r}");
        assert!(r.contains("\ndropped_foreign_syncid 0\n"), "{r}");
    }
}
