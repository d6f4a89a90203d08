//! rvsd: the rvs appliance daemon. Wiring only: config → EAL → mempool → ports
//! → worker lcores, then wait for a signal (or, in replay mode, for the input to
//! be consumed), print the counters and shut down cleanly.
mod eal_args;
mod replay;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use arc_swap::ArcSwap;
use clap::Parser;
use ctl::control::Control;
use dataplane::counters::{Totals, WorkerCounters};
use dataplane::worker::{Stop, WorkerCtl};
use dataplane_io::worker::{self, WorkerSetup};
use dataplane_io::{self as dpdk, Mempool, Port, PortConfig, TimestampField};

#[derive(Parser)]
#[command(name = "rvsd", version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("RVS_GIT_REV"), ")"),
          about = "rvs load-balancing appliance daemon (DPDK dataplane)")]
struct Args {
    /// The TOML configuration file.
    #[arg(long, short = 'c', default_value = "/etc/rvs/rvs.toml")]
    config: PathBuf,
    /// Validate the configuration and exit (0 = valid).
    #[arg(long)]
    check: bool,
}

static SIGNALLED: AtomicBool = AtomicBool::new(false);
static RELOAD: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    if sig == libc::SIGHUP {
        RELOAD.store(true, Ordering::SeqCst);
    } else {
        SIGNALLED.store(true, Ordering::SeqCst);
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let cfg = match conf::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rvsd: {e}");
            return ExitCode::from(1);
        }
    };
    if args.check {
        println!(
            "{}: ok ({} port(s), {} worker(s), {} route(s), {} neighbour(s), {} service(s){})",
            args.config.display(),
            cfg.port.len(),
            cfg.dataplane.workers,
            cfg.route.len(),
            cfg.neighbor.len(),
            cfg.service.len(),
            if cfg.dataplane.replay { ", replay mode" } else { "" }
        );
        return ExitCode::SUCCESS;
    }
    match run(&args.config, &cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rvsd: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: on_signal only stores to an atomic, which is async-signal-safe;
        // sigaction is given a zeroed, fully initialised struct.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity writes at most its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return vec![0];
        }
        (0..libc::CPU_SETSIZE as usize).filter(|&c| libc::CPU_ISSET(c, &set)).collect()
    }
}

fn run(config_path: &Path, cfg: &conf::Config) -> Result<()> {
    let workers = usize::from(cfg.dataplane.workers);
    let replay = cfg.dataplane.replay;
    // Replay: know up front how many packets each port will read.
    let mut expected: Vec<Option<u64>> = Vec::new();
    for p in &cfg.port {
        if replay {
            let mut n = 0;
            for f in p.rx_pcaps() {
                n += replay::count_pcap_records(&f)
                    .map_err(anyhow::Error::msg)
                    .with_context(|| format!("port \"{}\"", p.name))?;
            }
            expected.push(Some(n));
        } else {
            expected.push(None);
        }
    }

    // One rvsd per control socket: refuse before touching EAL or the ports.
    if !replay && std::os::unix::net::UnixStream::connect(&cfg.control.socket).is_ok() {
        anyhow::bail!("{}: another rvsd is running (its control socket answers)", cfg.control.socket.display());
    }
    let plan = eal_args::plan(config_path, cfg, &allowed_cpus());
    println!("rvsd {} ({}) starting: config {}", env!("CARGO_PKG_VERSION"), env!("RVS_GIT_REV"), config_path.display());
    if let Some((lcores, cpus)) = plan.shared_cores {
        println!("rvsd: {lcores} lcores share {cpus} CPU(s): fine for tests, not for throughput");
    }
    install_signal_handlers();
    dpdk::init(&plan.argv)?;
    println!(
        "rvsd: EAL up (file prefix {}, telemetry /var/run/dpdk/{}/dpdk_telemetry.v2)",
        plan.file_prefix, plan.file_prefix
    );

    let result = serve(config_path, cfg, workers, replay, &expected);
    dpdk::cleanup();
    result
}

fn serve(config_path: &Path, cfg: &conf::Config, workers: usize, replay: bool, expected: &[Option<u64>]) -> Result<()> {
    let ts_field = if replay { TimestampField::register() } else { None };
    let pool = Arc::new(Mempool::new("rvs_mbufs", cfg.dataplane.mbufs)?);
    let mut ports: Vec<Port> = Vec::new();
    let opened = (|| -> Result<()> {
        for p in &cfg.port {
            let dev_name = eal_args::device_name(&p.device);
            let port = Port::open(
                &PortConfig {
                    name: &p.name,
                    dev_name: &dev_name,
                    mac: p.mac.map(|m| m.0),
                    queues: workers as u16,
                    rx_timestamp: replay,
                },
                &pool,
            )?;
            println!(
                "rvsd: port {} = {} (dpdk port {}), mac {}, {} rx / {} tx queue(s){}{}{}",
                p.name,
                dev_name,
                port.id,
                conf::MacAddr(port.mac),
                port.rx_queues,
                port.tx_queues,
                if port.rx_ip_checksum { ", IPv4 checksums checked by the device" } else { "" },
                if port.promiscuous_fallback { ", promiscuous (device refused the configured MAC)" } else { "" },
                if replay && ts_field.is_none() { ", no rx timestamp field (replay clock stays at 0)" } else { "" },
            );
            ports.push(port);
        }
        Ok(())
    })();
    let result =
        opened.and_then(|()| forward(config_path, cfg, workers, replay, expected, &mut ports, ts_field, &pool));
    for p in ports {
        p.close();
    }
    result
}

#[allow(clippy::too_many_arguments)]
fn forward(
    config_path: &Path,
    cfg: &conf::Config,
    workers: usize,
    replay: bool,
    expected: &[Option<u64>],
    ports: &mut [Port],
    ts_field: Option<TimestampField>,
    pool: &Arc<Mempool>,
) -> Result<()> {
    let macs: Vec<[u8; 6]> = ports.iter().map(|p| p.mac).collect();
    let snapshot = Arc::new(ArcSwap::from_pointee(Control::initial_snapshot(cfg, &macs, workers)));
    let (dump_tx, dump_rx) = std::sync::mpsc::sync_channel(workers.max(1) * 2);
    let sync_params = Arc::new(dataplane::sync::SyncParams::default());
    let worker_ctl: Vec<Arc<WorkerCtl>> =
        (0..workers).map(|_| Arc::new(WorkerCtl::new(dump_tx.clone(), sync_params.clone()))).collect();
    let stop = Arc::new(Stop::default());
    let counters: Vec<Arc<WorkerCounters>> = (0..workers).map(|_| Arc::new(WorkerCounters::new(ports.len()))).collect();
    let mut port_index = vec![u16::MAX; ports.iter().map(|p| p.id as usize + 1).max().unwrap_or(0)];
    for (i, p) in ports.iter().enumerate() {
        port_index[p.id as usize] = i as u16;
    }
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let mut setups: Vec<WorkerSetup> = (0..workers)
        .map(|id| WorkerSetup {
            id,
            workers,
            rx: Vec::new(),
            tx: Vec::new(),
            tx_via: Vec::new(),
            tx_rings: Vec::new(),
            tx_from: Vec::new(),
            to_owner: (0..workers).map(|_| None).collect(),
            from_others: Vec::new(),
            port_index: port_index.clone(),
            snapshot: snapshot.clone(),
            counters: counters[id].clone(),
            stop: stop.clone(),
            poll_idle_us: cfg.dataplane.poll_idle_us,
            replay_timestamps: ts_field,
            replay,
            conns_capacity: cfg.dataplane.conns_per_worker,
            seed: seed ^ (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            ctl: worker_ctl[id].clone(),
            exception: None,
            learned: None,
        })
        .collect();
    // The exception path (ARP, the kernel's taps), live mode only: one ring
    // from each worker, one to worker 0, which transmits on every port.
    let exception = if replay {
        None
    } else {
        let learned = Arc::new(ArcSwap::from_pointee(dataplane::fwd::Learned::default()));
        let mut from_workers = Vec::new();
        for (w, setup) in setups.iter_mut().enumerate() {
            let (p, c) = dpdk::ring(&format!("rvs_exc_{w}"), 1024)?;
            setup.exception = Some(p);
            setup.learned = Some(learned.clone());
            from_workers.push(c);
        }
        let (to_tx, tx_c) = dpdk::ring("rvs_exc_tx", 1024)?;
        setups[0].tx_from.push(tx_c);
        let mut xports = Vec::new();
        for (c, p) in cfg.port.iter().zip(ports.iter()) {
            let tap = if c.kernel {
                let addrs: Vec<(std::net::Ipv4Addr, u8)> = c.addresses.iter().map(|a| (a.addr, a.len)).collect();
                let routes: Vec<(std::net::Ipv4Addr, u8, std::net::Ipv4Addr)> = cfg
                    .route
                    .iter()
                    .filter(|r| r.port == c.name)
                    .filter_map(|r| Some((r.prefix.addr, r.prefix.len, r.via?)))
                    .collect();
                let t = dataplane_io::exception::Tap::create(&c.tap, p.mac, &addrs, &routes).with_context(|| {
                    format!(
                        "port {}: kernel tap \"{}\" (set kernel = false on the port to run without one)",
                        c.name, c.tap
                    )
                })?;
                println!("rvsd: port {} has kernel interface {} ({} address(es))", c.name, c.tap, addrs.len());
                Some(t)
            } else {
                None
            };
            xports.push(dataplane_io::exception::ExceptionPort { mac: p.mac, tap });
        }
        Some(dataplane_io::exception::ExceptionSetup {
            from_workers,
            to_tx,
            pool: pool.clone(),
            snapshot: snapshot.clone(),
            learned,
            neighbors: Arc::new(ArcSwap::from_pointee(Vec::new())),
            ports: xports,
            counters: Arc::new(dataplane::exception::ExceptionCounters::default()),
            stop: stop.clone(),
        })
    };
    // Flow hand-over rings between every pair of workers.
    for i in 0..workers {
        for j in 0..workers {
            if i != j {
                let (p, c) = dpdk::ring(&format!("rvs_own_{i}_{j}"), 4096)?;
                setups[i].to_owner[j] = Some(p);
                setups[j].from_others.push(c);
            }
        }
    }
    for (pi, port) in ports.iter_mut().enumerate() {
        let (rxqs, txqs) = port.take_queues().context("port queues already taken")?;
        for (q, rxq) in rxqs.into_iter().enumerate() {
            setups[q % workers].rx.push((pi as u16, rxq));
        }
        let ntx = txqs.len().max(1);
        let mut txqs = txqs.into_iter().map(Some).collect::<Vec<_>>();
        for (w, setup) in setups.iter_mut().enumerate() {
            let q = txqs.get_mut(w).and_then(Option::take);
            // A worker without a queue on this port sends through the worker that has one.
            let via = if q.is_some() { None } else { Some((w % ntx) as u16) };
            setup.tx.push(q);
            setup.tx_via.push(via);
        }
    }
    // One transmit hand-over ring from each worker to each worker it sends through.
    for w in 0..workers {
        setups[w].tx_rings = (0..workers).map(|_| None).collect();
        let mut targets: Vec<u16> = setups[w].tx_via.iter().flatten().copied().collect();
        targets.sort_unstable();
        targets.dedup();
        for owner in targets {
            let (p, c) = dpdk::ring(&format!("rvs_tx_{w}_{owner}"), 4096)?;
            setups[w].tx_rings[owner as usize] = Some(p);
            setups[owner as usize].tx_from.push(c);
        }
    }
    let lcores = dpdk::lcore_ids_for_workers(workers)?;
    let started = Instant::now();
    let mut launched = Vec::new();
    for (lcore, setup) in lcores.iter().zip(setups) {
        match dpdk::launch_on(*lcore, move || worker::run(setup)) {
            Ok(()) => launched.push(*lcore),
            Err(e) => {
                stop.all.store(true, Ordering::SeqCst);
                for l in &launched {
                    dpdk::wait_lcore(*l);
                }
                return Err(e.into());
            }
        }
    }
    let mut exception_view = None;
    let exception_thread = match exception {
        Some(setup) => {
            exception_view = Some(ctl::control::ExceptionView {
                neighbors: setup.neighbors.clone(),
                counters: setup.counters.clone(),
            });
            Some(
                std::thread::Builder::new()
                    .name("rvs-exception".into())
                    .spawn(move || dataplane_io::exception::run(setup))
                    .context("exception path thread")?,
            )
        }
        None => None,
    };
    let exception_counters = exception_view.as_ref().map(|v| v.counters.clone());
    let snap = snapshot.load();
    if snap.owner_prefix < cfg.dataplane.owner_prefix {
        println!(
            "rvsd: flows are owned by client /{} (a persistent service's netmask is wider than owner_prefix {})",
            snap.owner_prefix, cfg.dataplane.owner_prefix
        );
    }
    println!(
        "rvsd: {workers} worker(s) forwarding on lcore(s) {lcores:?}, {} service(s), {} connection slots per worker{}",
        snap.services.len(),
        cfg.dataplane.conns_per_worker,
        if replay { " (replay mode)" } else { "" }
    );

    // The control side: socket for rvsadm, rate estimator, SIGHUP reload.
    let port_info: Vec<(String, String, u16, [u8; 6])> =
        cfg.port.iter().zip(ports.iter()).map(|(c, p)| (c.name.clone(), c.device.clone(), p.id, p.mac)).collect();
    let port_counters = counters.clone();
    let port_stats: ctl::control::PortStatsFn = Box::new(move || {
        let t = Totals::sum(port_counters.iter().map(|c| c.as_ref()), port_info.len());
        port_info
            .iter()
            .zip(&t.ports)
            .map(|((name, device, id, mac), n)| {
                let dev = dpdk::port_stats(*id);
                ctl::proto::PortInfo {
                    name: name.clone(),
                    device: device.clone(),
                    mac: conf::MacAddr(*mac).to_string(),
                    rx_packets: n[0],
                    rx_bytes: n[1],
                    tx_packets: n[2],
                    tx_bytes: n[3],
                    imissed: dev.imissed,
                    ierrors: dev.ierrors,
                    oerrors: dev.oerrors,
                    rx_nombuf: dev.rx_nombuf,
                }
            })
            .collect()
    });
    let mut control = Control::new(
        config_path.to_path_buf(),
        cfg.clone(),
        snapshot.clone(),
        workers,
        macs.clone(),
        counters.clone(),
        worker_ctl.clone(),
        dump_rx,
        port_stats,
    );
    control.exception = exception_view;
    let control = Arc::new(control);
    control.spawn_estimator();
    // Sync daemons named in [sync] (specs/ipvs.md §5); one that cannot start
    // is reported and the rest of rvsd runs (rvsadm --start-daemon can retry).
    for e in control.sync.start_configured(&cfg.sync) {
        eprintln!("rvsd: sync daemon not started: {e}");
    }
    for d in control.sync.list() {
        println!("rvsd: {} sync daemon on {} (syncid {})", d.state, d.mcast_interface, d.syncid);
    }
    if !replay {
        // Health checks (specs/ipvs.md §7) on their own event-loop thread.
        ctl::health::start(control.clone(), cfg.clone()).context("health checks")?;
        if !cfg.health.checks.is_empty() {
            println!("rvsd: health checks for {} service(s)", cfg.health.checks.len());
        }
    }
    let socket = if replay {
        None
    } else {
        match ctl::server::serve(&cfg.control.socket, cfg.control.group.as_deref(), control.clone()) {
            Ok(s) => {
                println!("rvsd: control socket {}", cfg.control.socket.display());
                Some(s)
            }
            Err(e) => {
                stop.all.store(true, Ordering::SeqCst);
                for l in &lcores {
                    dpdk::wait_lcore(*l);
                }
                anyhow::bail!("control socket: {e}");
            }
        }
    };

    if let Some(addr) = cfg.metrics.listen {
        if let Err(e) = ctl::metrics::serve(addr, control.clone()) {
            stop.all.store(true, Ordering::SeqCst);
            for l in &lcores {
                dpdk::wait_lcore(*l);
            }
            anyhow::bail!("{e}");
        }
        println!("rvsd: metrics at http://{addr}/metrics");
    }

    // Wait for a signal, or in replay mode for every rx pcap to be consumed.
    let sum = || Totals::sum(counters.iter().map(|c| c.as_ref()), ports.len());
    let mut last_rx = 0;
    let mut last_progress = Instant::now();
    let mut replay_note = None;
    while !SIGNALLED.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(20));
        if RELOAD.swap(false, Ordering::SeqCst) {
            match control.reload() {
                ctl::proto::Response::Ok => println!("rvsd: SIGHUP: configuration reloaded"),
                ctl::proto::Response::Error { message, .. } => println!("rvsd: SIGHUP: {message}"),
                r => println!("rvsd: SIGHUP: unexpected reply {r:?}"),
            }
        }
        if replay {
            let t = sum();
            let done = expected.iter().zip(&t.ports).all(|(e, p)| e.is_none_or(|e| p[0] >= e));
            if done {
                break;
            }
            let rx = t.rx_packets();
            if rx != last_rx {
                last_rx = rx;
                last_progress = Instant::now();
            } else if last_progress.elapsed() > Duration::from_secs(3) {
                let want: u64 = expected.iter().flatten().sum();
                replay_note = Some(format!("input stalled: {rx} of {want} packets received (see the port counters)"));
                break;
            }
        }
    }
    // Stop reading the ports, let what is in flight between workers finish, stop.
    stop.rx.store(true, Ordering::SeqCst);
    let drain_start = Instant::now();
    while drain_start.elapsed() < Duration::from_secs(2) {
        let rx = sum().rx_packets();
        let handled: u64 = counters.iter().map(|c| c.handled.get()).sum();
        let off: u64 = counters.iter().map(|c| c.handed_off.get()).sum();
        let over: u64 = counters.iter().map(|c| c.taken_over.get()).sum();
        let handoff_drops: u64 =
            counters.iter().map(|c| c.drops[dataplane::verdict::DropReason::HandoffFull as usize].get()).sum();
        if handled + handoff_drops >= rx && off == over {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.all.store(true, Ordering::SeqCst);
    for l in &lcores {
        dpdk::wait_lcore(*l);
    }
    if let Some(t) = exception_thread {
        let _ = t.join();
    }
    let elapsed = started.elapsed();
    if let Some(note) = &replay_note {
        println!("rvsd: {note}");
    }
    drop(socket);
    print_totals(cfg, ports, &counters, elapsed);
    if let Some(x) = exception_counters {
        let parts: Vec<String> = x.list().iter().filter(|(_, n)| *n > 0).map(|(k, n)| format!("{k} {n}")).collect();
        println!("exception path: {}", if parts.is_empty() { "idle".into() } else { parts.join(", ") });
    }
    for line in ctl::state::describe(&snapshot.load()) {
        println!("{line}");
    }
    Ok(())
}

fn print_totals(cfg: &conf::Config, ports: &[Port], counters: &[Arc<WorkerCounters>], elapsed: Duration) {
    let t = Totals::sum(counters.iter().map(|c| c.as_ref()), ports.len());
    println!("rvsd: stopped after {:.2} s", elapsed.as_secs_f64());
    for ((c, p), n) in cfg.port.iter().zip(ports).zip(&t.ports) {
        let dev = p.stats();
        println!(
            "port {}: rx {} packets {} bytes, tx {} packets {} bytes (device: ipackets {} opackets {} imissed {} ierrors {} oerrors {} rx_nombuf {})",
            c.name, n[0], n[1], n[2], n[3], dev.ipackets, dev.opackets, dev.imissed, dev.ierrors, dev.oerrors, dev.rx_nombuf
        );
    }
    for (w, c) in counters.iter().enumerate() {
        let rx: u64 = c.ports.iter().map(|p| p.rx_packets.get()).sum();
        let tx: u64 = c.ports.iter().map(|p| p.tx_packets.get()).sum();
        println!(
            "worker {w}: rx {rx} packets, tx {tx} packets, handled {}, handed off {}, conns created {}, live {}, no dest {}, icmp sent {}",
            c.handled.get(),
            c.handed_off.get(),
            c.conns_created.get(),
            c.conns_live.get(),
            c.no_dest.get(),
            c.icmp_sent.get()
        );
    }
    if cfg.dataplane.replay {
        let clock = counters.iter().map(|c| c.clock_ns.get()).max().unwrap_or(0);
        println!("replay clock {}.{:09} s", clock / 1_000_000_000, clock % 1_000_000_000);
    }
    for (reason, n) in &t.drops {
        if *n > 0 {
            println!("drop {reason} {n}");
        }
    }
}
