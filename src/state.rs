//! Builds the dataplane's snapshot from the configuration: ports, routes and
//! neighbours for forwarding; services and real servers for load balancing.
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use dataplane::fwd::{Fib, FibPort, Route};
use dataplane::proto::Timeouts;
use dataplane::sched::{SchedKind, Scheduler};
use dataplane::service::{Dest, DestShared, FwdMethod, Persistence, SchedState, Service, ServiceKey};
use dataplane::snapshot::{Knobs, Snapshot};

pub fn fib(cfg: &conf::Config, macs: &[[u8; 6]]) -> Fib {
    let ports = cfg
        .port
        .iter()
        .zip(macs)
        .map(|(c, mac)| FibPort { mac: *mac, addrs: c.addresses.iter().map(|a| (a.addr, a.len)).collect() })
        .collect();
    let idx = |name: &str| cfg.port_index(name).unwrap_or(0) as u16;
    let routes = cfg
        .route
        .iter()
        .map(|r| Route { prefix: r.prefix.addr, len: r.prefix.len, via: r.via, port: idx(&r.port) })
        .collect();
    let neighbors = cfg.neighbor.iter().map(|n| (idx(&n.port), n.ip, n.mac.0)).collect();
    Fib::new(ports, routes, neighbors)
}

fn method(m: conf::Method) -> FwdMethod {
    match m {
        conf::Method::Masq => FwdMethod::Masq,
        conf::Method::Route => FwdMethod::Route,
        conf::Method::Tunnel => FwdMethod::Tunnel,
    }
}

/// One service as the workers see it; `workers` scheduler states.
pub fn service(s: &conf::Service, workers: usize) -> Service {
    let key = match s.addr {
        conf::ServiceAddr::Addr { protocol, vip, port } => {
            ServiceKey::Addr { proto: protocol.number(), vaddr: vip, vport: port }
        }
        conf::ServiceAddr::Fwmark(m) => ServiceKey::Fwmark(m),
    };
    // IPVS keeps the most recently added real server first (specs/ipvs.md §0);
    // the file lists them in the order they were added.
    let dests: Vec<Dest> = s
        .servers
        .iter()
        .rev()
        .map(|r| {
            let shared = DestShared::default();
            shared.weight.store(r.weight, Relaxed);
            shared.u_threshold.store(r.u_threshold, Relaxed);
            shared.l_threshold.store(r.l_threshold, Relaxed);
            Dest {
                addr: r.addr,
                port: r.port,
                method: method(r.method),
                weight: r.weight,
                last_weight: r.weight,
                u_threshold: r.u_threshold,
                l_threshold: r.l_threshold,
                shared: Arc::new(shared),
            }
        })
        .collect();
    // conf validated the name; wlc is ipvsadm's default.
    let kind = SchedKind::from_name(&s.scheduler).unwrap_or(SchedKind::Wlc);
    let scheduler = Scheduler::build(kind, s.flag_bits(), &dests);
    let sched_state: Box<[SchedState]> = (0..workers).map(|_| SchedState::default()).collect();
    for st in sched_state.iter() {
        scheduler.init_state(st);
    }
    Service {
        key,
        scheduler,
        persistence: s.persistent.map(|timeout| Persistence { timeout, netmask: s.netmask }),
        one_packet: s.ops,
        dests,
        sched_state,
    }
}

pub fn snapshot(cfg: &conf::Config, macs: &[[u8; 6]], workers: usize) -> Snapshot {
    let mut timeouts = Timeouts::default();
    let t = cfg.ipvs.timeouts;
    timeouts.set(t.tcp, t.tcpfin, t.udp);
    let i = &cfg.ipvs;
    let knobs = Knobs {
        expire_nodest_conn: i.expire_nodest_conn,
        expire_quiescent_template: i.expire_quiescent_template,
        conn_reuse_mode: i.conn_reuse_mode,
        sloppy_tcp: i.sloppy_tcp,
        nat_icmp_send: i.nat_icmp_send,
        pmtu_disc: i.pmtu_disc,
    };
    let services = cfg.service.iter().map(|s| service(s, workers)).collect();
    Snapshot::new(fib(cfg, macs), services, timeouts, knobs, owner_prefix(cfg))
}

/// The prefix that decides which worker owns a client's flows: the configured
/// one, made coarser when a persistent service groups clients by a wider
/// netmask, so one client subnet's template lives on one worker.
pub fn owner_prefix(cfg: &conf::Config) -> u8 {
    cfg.service
        .iter()
        .filter(|s| s.persistent.is_some())
        .map(|s| s.netmask_len())
        .fold(cfg.dataplane.owner_prefix, u8::min)
}

/// `ipvsadm -Ln`-style lines for the exit summary.
pub fn describe(snap: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    for s in &snap.services {
        let head = match s.key {
            ServiceKey::Addr { proto, vaddr, vport } => {
                format!("{:<4} {}:{}", if proto == 6 { "TCP" } else { "UDP" }, vaddr, vport)
            }
            ServiceKey::Fwmark(m) => format!("FWM  {m}"),
        };
        let mut line = format!("{head} {}", s.scheduler.kind().name());
        if let Some(p) = s.persistence {
            line.push_str(&format!(" persistent {}", p.timeout));
            if p.netmask != std::net::Ipv4Addr::BROADCAST {
                line.push_str(&format!(" mask {}", p.netmask));
            }
        }
        out.push(line);
        for d in &s.dests {
            out.push(format!(
                "  -> {:<28} {:<7} {:<6} {:<10} {:<10}",
                format!("{}:{}", d.addr, d.port),
                d.method.as_str(),
                d.weight,
                d.shared.activeconns.load(Relaxed),
                d.shared.inactconns.load(Relaxed)
            ));
        }
    }
    out
}
