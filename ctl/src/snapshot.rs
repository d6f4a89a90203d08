//! Builds the dataplane's [`Snapshot`] from the desired state (a
//! `conf::Config`): ports, routes and neighbours for forwarding; services and
//! real servers for load balancing; fwmark rules for the classifier.
//!
//! A real server keeps its identity ([`DestShared`]: connection counts,
//! OVERLOAD, statistics) from one snapshot to the next, and a worker's
//! scheduler position is carried over as IPVS does on add/edit/delete. A
//! removed server is marked unavailable and parked in a trash list until no
//! connection refers to it (specs/ipvs.md §0: re-adding it within that time
//! restores it with its counters), so a worker never frees one.
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use dataplane::classify;
use dataplane::fwd::{Fib, FibPort, Route};
use dataplane::proto::Timeouts;
use dataplane::sched::{SchedKind, Scheduler};
use dataplane::service::{Dest, DestShared, Persistence, SchedState, Service, ServiceKey};
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

/// Removed real servers still referenced by connections.
#[derive(Default)]
pub struct Trash {
    entries: Vec<(ServiceKey, Ipv4Addr, u16, Arc<DestShared>)>,
}

impl Trash {
    fn take(&mut self, key: ServiceKey, addr: Ipv4Addr, port: u16) -> Option<Arc<DestShared>> {
        let i = self.entries.iter().position(|e| e.0 == key && e.1 == addr && e.2 == port)?;
        Some(self.entries.swap_remove(i).3)
    }

    fn put(&mut self, key: ServiceKey, d: &Dest) {
        d.shared.available.store(false, Relaxed);
        self.entries.push((key, d.addr, d.port, d.shared.clone()));
    }

    /// Forgets servers no connection refers to any more (only the trash holds them).
    pub fn purge(&mut self) {
        self.entries.retain(|e| Arc::strong_count(&e.3) > 1);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

pub fn service_key(a: &conf::ServiceAddr) -> ServiceKey {
    match *a {
        conf::ServiceAddr::Addr { protocol, vip, port } => {
            ServiceKey::Addr { proto: protocol.number(), vaddr: vip, vport: port }
        }
        conf::ServiceAddr::Fwmark(m) => ServiceKey::Fwmark(m),
    }
}

/// One service as the workers see it, reusing what `prev` (the same service in
/// the current snapshot) and `trash` hold.
pub fn service(s: &conf::Service, workers: usize, prev: Option<&Service>, trash: &mut Trash) -> Service {
    let key = service_key(&s.addr);
    // IPVS keeps the most recently added real server first (specs/ipvs.md §0);
    // the desired state lists them in the order they were added.
    let dests: Vec<Dest> = s
        .servers
        .iter()
        .rev()
        .map(|r| {
            let old = prev.and_then(|p| p.dests.iter().find(|d| d.addr == r.addr && d.port == r.port));
            let shared = old
                .map(|d| d.shared.clone())
                .or_else(|| trash.take(key, r.addr, r.port))
                .unwrap_or_else(|| Arc::new(DestShared::new(workers)));
            shared.available.store(true, Relaxed);
            shared.weight.store(r.weight, Relaxed);
            shared.u_threshold.store(r.u_threshold, Relaxed);
            shared.l_threshold.store(r.l_threshold, Relaxed);
            // Editing a dest clears OVERLOAD if the new upper threshold is 0 or higher (§1.1).
            if let Some(o) = old {
                if r.u_threshold == 0 || r.u_threshold > o.u_threshold {
                    shared.overload.store(false, Relaxed);
                }
            }
            let last_weight = if r.weight > 0 { r.weight } else { old.map_or(0, |o| o.last_weight) };
            Dest {
                addr: r.addr,
                port: r.port,
                method: r.method,
                weight: r.weight,
                last_weight,
                u_threshold: r.u_threshold,
                l_threshold: r.l_threshold,
                shared,
            }
        })
        .collect();
    if let Some(p) = prev {
        for d in p.dests.iter().filter(|d| !dests.iter().any(|n| n.addr == d.addr && n.port == d.port)) {
            trash.put(key, d);
        }
    }
    // conf validated the name; wlc is ipvsadm's default.
    let kind = SchedKind::from_name(&s.scheduler).unwrap_or(SchedKind::Wlc);
    let scheduler = Scheduler::build(kind, s.flag_bits(), &dests);
    let sched_state: Box<[SchedState]> = (0..workers).map(|_| SchedState::default()).collect();
    for (w, st) in sched_state.iter().enumerate() {
        match prev.filter(|p| p.scheduler.kind() == kind).and_then(|p| p.sched_state.get(w).map(|o| (p, o))) {
            Some((p, old)) => scheduler.carry_state(old, st, &p.dests, &dests),
            None => scheduler.init_state(st),
        }
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

/// An iptables MARK rule as the classifier runs it: interface names become
/// port indices (specs: `-i` names an rvs port).
pub fn mark_rule(r: &conf::MarkRule, ports: &[conf::Port]) -> classify::Rule {
    let prefix = |a: &conf::iptables::AddrMatch| classify::rule::Prefix {
        addr: u32::from(a.addr),
        len: a.len,
        negate: a.negate,
    };
    let mut rule = classify::Rule::any(match r.target {
        Some(conf::iptables::Target::Mark { value, mask }) => classify::rule::Action::Mark { value, mask },
        Some(conf::iptables::Target::Return) => classify::rule::Action::Return,
        Some(conf::iptables::Target::Accept) => classify::rule::Action::Accept,
        None => classify::rule::Action::Count,
    });
    rule.src = r.src.as_ref().map(prefix);
    rule.dst = r.dst.as_ref().map(prefix);
    rule.proto = r.protocol.map(|p| classify::rule::ProtoMatch { proto: p.proto, negate: p.negate });
    for m in &r.matches {
        rule.l4 = true;
        match m {
            conf::iptables::Match::L4 { sport, dport, .. } => {
                let pm = |c: &conf::iptables::PortCond| classify::rule::PortMatch {
                    ranges: vec![(c.range.lo, c.range.hi)],
                    negate: c.negate,
                };
                rule.sport.extend(sport.as_ref().map(pm));
                rule.dport.extend(dport.as_ref().map(pm));
            }
            conf::iptables::Match::Multiport { dir, ports: list, negate } => {
                let pm =
                    classify::rule::PortMatch { ranges: list.iter().map(|p| (p.lo, p.hi)).collect(), negate: *negate };
                match dir {
                    conf::iptables::MultiportDir::Source => rule.sport.push(pm),
                    conf::iptables::MultiportDir::Destination => rule.dport.push(pm),
                    conf::iptables::MultiportDir::Either => rule.ports.push(pm),
                }
            }
        }
    }
    rule.in_port = r.in_iface.as_ref().map(|i| classify::rule::InPortMatch {
        ports: ports.iter().enumerate().filter(|(_, p)| i.covers(&p.name)).map(|(n, _)| n as u16).collect(),
        negate: i.negate,
    });
    rule
}

/// The snapshot for `cfg`, carrying identities over from `prev`.
pub fn build(
    cfg: &conf::Config,
    macs: &[[u8; 6]],
    workers: usize,
    prev: Option<&Snapshot>,
    trash: &mut Trash,
) -> Snapshot {
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
    let services: Vec<Service> = cfg
        .service
        .iter()
        .map(|s| {
            let key = service_key(&s.addr);
            let p = prev.and_then(|p| p.services.iter().find(|x| x.key == key));
            service(s, workers, p, trash)
        })
        .collect();
    if let Some(p) = prev {
        for old in p.services.iter().filter(|o| !services.iter().any(|n| n.key == o.key)) {
            for d in &old.dests {
                trash.put(old.key, d);
            }
        }
    }
    trash.purge();
    // Which worker owns a client must not change while rvsd runs (flows would
    // lose their connections): the prefix chosen at start stays.
    let prefix = prev.map_or_else(|| owner_prefix(cfg), |p| p.owner_prefix);
    let rules: Vec<classify::Rule> = cfg.fwmark.iter().map(|r| mark_rule(r, &cfg.port)).collect();
    Snapshot::new(fib(cfg, macs), services, timeouts, knobs, prefix)
        .with_fwmark(classify::Classifier::build(&rules), workers)
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
