//! rvsd: the rvs appliance daemon. Wiring only: config → EAL → mempool → ports
//! → worker lcores, then wait for a signal (or, in replay mode, for the input to
//! be consumed), print the counters and shut down cleanly.
#![forbid(unsafe_code)]
mod eal_args;
mod replay;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use arc_swap::ArcSwap;
use clap::Parser;
use ctl::control::Control;
use dataplane::counters::{Totals, WorkerCounters};
use dataplane::worker::{Stop, WorkerCtl};
use dataplane_io::plan::{self, Plan, PortQueues};
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

/// Set by SIGINT or SIGTERM: stop.
static SIGNALLED: LazyLock<Arc<AtomicBool>> = LazyLock::new(Arc::default);
/// Set by SIGHUP: reload the configuration.
static RELOAD: LazyLock<Arc<AtomicBool>> = LazyLock::new(Arc::default);

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

fn install_signal_handlers() -> Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    for sig in [SIGINT, SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&SIGNALLED)).context("signal handler")?;
    }
    signal_hook::flag::register(SIGHUP, Arc::clone(&RELOAD)).context("signal handler")?;
    Ok(())
}

/// The CPUs this process may run on (EAL's lcores are placed on them).
fn allowed_cpus() -> Vec<usize> {
    match nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)) {
        Ok(set) => (0..nix::sched::CpuSet::count()).filter(|&c| set.is_set(c).unwrap_or(false)).collect(),
        Err(_) => vec![0],
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
    install_signal_handlers()?;
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
            to_owner: Vec::new(),
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
        for setup in setups.iter_mut() {
            setup.learned = Some(learned.clone());
        }
        let (from_workers, to_tx) = plan::wire_exception(&mut setups)?;
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
    // Which worker polls and transmits on which queue, and the rings between them.
    let queues: Vec<PortQueues> = ports.iter().map(|p| PortQueues { rx: p.rx_queues, tx: p.tx_queues }).collect();
    plan::wire(&Plan::new(workers, &queues), ports, &mut setups)?;
    let lcores = dpdk::lcore_ids_for_workers(workers)?;
    let started = Instant::now();
    let mut launched = Vec::new();
    for (lcore, setup) in lcores.iter().zip(setups) {
        match dpdk::launch_on(*lcore, move || worker::run(setup)) {
            Ok(()) => launched.push(*lcore),
            Err(e) => {
                worker::stop_all(&stop, &launched);
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
                ctl::api::PortInfo {
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
                worker::stop_all(&stop, &lcores);
                anyhow::bail!("control socket: {e}");
            }
        }
    };

    if let Some(addr) = cfg.metrics.listen {
        if let Err(e) = ctl::metrics::serve(addr, control.clone()) {
            worker::stop_all(&stop, &lcores);
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
                ctl::api::Response::Ok => println!("rvsd: SIGHUP: configuration reloaded"),
                ctl::api::Response::Error { message, .. } => println!("rvsd: SIGHUP: {message}"),
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
    worker::stop_all(&stop, &lcores);
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
    for line in ctl::snapshot::describe(&snapshot.load()) {
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
