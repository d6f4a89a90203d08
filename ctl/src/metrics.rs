//! The optional Prometheus endpoint (`[metrics] listen`): rvsd's counters in
//! the Prometheus text exposition format 0.0.4, served over a minimal
//! HTTP/1.1 server at `GET /metrics`.
//!
//! Invariants:
//! - Everything comes from [`Control`]: the same `-L`, `--timeout` and port
//!   answers rvsadm gets, plus the per-worker counters read directly. A
//!   scrape never changes any state.
//! - [`render`] is a pure function of a [`Scrape`]; each metric family is
//!   written once, with its HELP and TYPE lines, even when it has no
//!   samples, and every drop reason is present (zeros included) so a rate
//!   never starts from a missing series.
//! - No client can hold the server: each connection gets its own short-lived
//!   thread (at most [`MAX_CLIENTS`] at once), the request head is capped at
//!   [`MAX_HEAD_BYTES`] and must arrive within [`HEAD_DEADLINE`], and every
//!   reply closes the connection.
//!
//! Counters reset to zero on `rvsadm -Z` (service and server stats) and when
//! rvsd restarts; Prometheus treats both as counter resets.
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dataplane::verdict::DropReason;

use crate::control::Control;
use conf::{Method, ServiceAddr};

use crate::api::{DestInfo, FallbackInfo, HealthInfo, ListWhat, Op, PortInfo, Response, ServiceInfo};

/// The largest request head read; a longer one gets 431.
pub const MAX_HEAD_BYTES: usize = 8192;
/// How long a client may take to send its whole request head.
pub const HEAD_DEADLINE: Duration = Duration::from_secs(5);
/// How long writing the reply may block.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more are closed with 503.
pub const MAX_CLIENTS: usize = 16;
/// The exposition format's media type (what Prometheus' own clients send).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One worker's connection-table and bookkeeping figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerFigures {
    pub conns_live: u64,
    pub conns_created: u64,
    pub no_dest: u64,
    pub icmp_sent: u64,
    pub handled: u64,
    pub handed_off: u64,
}

/// Everything one scrape shows, gathered before rendering.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scrape {
    pub conn_tab_size: u32,
    pub services: Vec<ServiceInfo>,
    pub ports: Vec<PortInfo>,
    /// Every drop reason with its count, in counter order.
    pub drops: Vec<(String, u64)>,
    /// The exception path's counters (ARP, kernel taps); empty in replay mode.
    pub exception: Vec<(String, u64)>,
    /// tcp, tcpfin, udp (seconds).
    pub timeouts: Option<(u32, u32, u32)>,
    /// Indexed by worker.
    pub workers: Vec<WorkerFigures>,
    /// Sync daemon counters by event (`SyncStats::list`).
    pub sync: Vec<(String, u64)>,
    /// Checked real servers and fallbacks (`rvsadm health`).
    pub health: Vec<HealthInfo>,
    pub fallbacks: Vec<FallbackInfo>,
}

impl Scrape {
    /// Builds a scrape from the answers to `-L`, `Ports` and `--timeout`
    /// (any other answer, such as an error, contributes nothing). Drop
    /// reasons the ports answer leaves out (it lists only those seen) are
    /// filled in with 0.
    pub fn from_responses(
        services: Response,
        ports: Response,
        timeouts: Response,
        workers: Vec<WorkerFigures>,
    ) -> Scrape {
        let mut s = Scrape { workers, ..Scrape::default() };
        if let Response::Services { conn_tab_size, services } = services {
            s.conn_tab_size = conn_tab_size;
            s.services = services;
        }
        let mut seen = Vec::new();
        if let Response::Ports { ports, drops, exception } = ports {
            s.ports = ports;
            seen = drops;
            s.exception = exception;
        }
        s.drops = DropReason::ALL
            .iter()
            .map(|r| {
                let n = seen.iter().find(|(name, _)| name == r.as_str()).map_or(0, |d| d.1);
                (r.as_str().to_owned(), n)
            })
            .collect();
        // A reason this build does not know (never expected) is still shown.
        s.drops.extend(seen.into_iter().filter(|(name, _)| !DropReason::ALL.iter().any(|r| r.as_str() == name)));
        if let Response::Timeouts { tcp, tcpfin, udp } = timeouts {
            s.timeouts = Some((tcp, tcpfin, udp));
        }
        s
    }
}

/// Asks `control` for everything a scrape shows.
pub fn gather(control: &Control) -> Scrape {
    let workers = control
        .counters
        .iter()
        .map(|c| WorkerFigures {
            conns_live: c.conns_live.get(),
            conns_created: c.conns_created.get(),
            no_dest: c.no_dest.get(),
            icmp_sent: c.icmp_sent.get(),
            handled: c.handled.get(),
            handed_off: c.handed_off.get(),
        })
        .collect();
    let mut s = Scrape::from_responses(
        control.handle(Op::List { what: ListWhat::Services, service: None }),
        control.handle(Op::Ports),
        control.handle(Op::List { what: ListWhat::Timeouts, service: None }),
        workers,
    );
    s.sync = control.sync.stats.list(&control.sync.ports);
    if let Response::Health { servers, fallbacks } = control.handle(Op::Health) {
        s.health = servers;
        s.fallbacks = fallbacks;
    }
    s
}

/// The `service` label: `tcp 10.0.0.1:80`, `udp 10.0.0.1:53`, `fwmark 10`.
pub fn service_label(k: &ServiceAddr) -> String {
    k.to_string()
}

fn method_label(m: Method) -> &'static str {
    match m {
        Method::Masq => "masq",
        Method::Route => "route",
        Method::Tunnel => "tunnel",
    }
}

/// A label value escaped as the text format requires: `\`, `"` and newline.
fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A metric family with one sample per item: name, type, help, and the
/// field it reads.
type Field<T> = (&'static str, &'static str, &'static str, fn(&T) -> u64);

/// Writes one metric family at a time; samples follow their HELP/TYPE lines.
struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        // HELP text escapes only `\` and newline; ours has neither.
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape_label(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// The exposition text of one scrape.
pub fn render(s: &Scrape) -> String {
    let mut o = Out(String::with_capacity(4096 + 2048 * s.services.len()));

    o.family("rvs_build_info", "gauge", "Always 1; the version label says which rvsd answers.");
    o.sample("rvs_build_info", &[("version", crate::VERSION)], 1);

    // Virtual services (ipvsadm -L --stats).
    let svcs: Vec<(String, &ServiceInfo)> = s.services.iter().map(|i| (service_label(&i.spec.key), i)).collect();
    o.family("rvs_service_info", "gauge", "Always 1; labels carry the service's scheduler.");
    for (l, i) in &svcs {
        o.sample("rvs_service_info", &[("service", l), ("scheduler", &i.spec.scheduler)], 1);
    }
    o.family("rvs_service_connections_total", "counter", "Connections scheduled by the virtual service.");
    for (l, i) in &svcs {
        o.sample("rvs_service_connections_total", &[("service", l)], i.stats.conns);
    }
    o.family(
        "rvs_service_packets_total",
        "counter",
        "Packets of the virtual service, in from clients or out from servers.",
    );
    for (l, i) in &svcs {
        o.sample("rvs_service_packets_total", &[("service", l), ("direction", "in")], i.stats.inpkts);
        o.sample("rvs_service_packets_total", &[("service", l), ("direction", "out")], i.stats.outpkts);
    }
    o.family(
        "rvs_service_bytes_total",
        "counter",
        "Bytes of the virtual service, in from clients or out from servers.",
    );
    for (l, i) in &svcs {
        o.sample("rvs_service_bytes_total", &[("service", l), ("direction", "in")], i.stats.inbytes);
        o.sample("rvs_service_bytes_total", &[("service", l), ("direction", "out")], i.stats.outbytes);
    }

    // Real servers.
    let servers: Vec<(&str, String, &str, &DestInfo)> = svcs
        .iter()
        .flat_map(|(l, i)| {
            i.dests
                .iter()
                .map(move |d| (l.as_str(), format!("{}:{}", d.spec.addr, d.spec.port), method_label(d.spec.method), d))
        })
        .collect();
    let gauges: [Field<DestInfo>; 4] = [
        ("rvs_server_active_connections", "gauge", "Connections to the real server in ESTABLISHED state.", |d| {
            d.activeconns.into()
        }),
        ("rvs_server_inactive_connections", "gauge", "Connections to the real server in any other state.", |d| {
            d.inactconns.into()
        }),
        ("rvs_server_persistent_connections", "gauge", "Persistence templates pointing at the real server.", |d| {
            d.persistconns.into()
        }),
        ("rvs_server_weight", "gauge", "The real server's scheduling weight (0: quiesced).", |d| d.spec.weight.into()),
    ];
    for (name, kind, help, get) in gauges {
        o.family(name, kind, help);
        for (svc, srv, method, d) in &servers {
            o.sample(name, &[("service", svc), ("server", srv), ("method", method)], get(d));
        }
    }
    o.family("rvs_server_connections_total", "counter", "Connections scheduled to the real server.");
    for (svc, srv, method, d) in &servers {
        o.sample(
            "rvs_server_connections_total",
            &[("service", svc), ("server", srv), ("method", method)],
            d.stats.conns,
        );
    }
    for (name, help, inv, outv) in [
        ("rvs_server_packets_total", "Packets of the real server's connections, by direction.", 0, 1),
        ("rvs_server_bytes_total", "Bytes of the real server's connections, by direction.", 2, 3),
    ] {
        o.family(name, "counter", help);
        for (svc, srv, method, d) in &servers {
            let st = [d.stats.inpkts, d.stats.outpkts, d.stats.inbytes, d.stats.outbytes];
            for (dir, v) in [("in", st[inv]), ("out", st[outv])] {
                o.sample(name, &[("service", svc), ("server", srv), ("method", method), ("direction", dir)], v);
            }
        }
    }

    // Ports and drops.
    o.family("rvs_port_packets_total", "counter", "Packets received and sent on the port.");
    for p in &s.ports {
        o.sample("rvs_port_packets_total", &[("port", &p.name), ("direction", "rx")], p.rx_packets);
        o.sample("rvs_port_packets_total", &[("port", &p.name), ("direction", "tx")], p.tx_packets);
    }
    o.family("rvs_port_bytes_total", "counter", "Bytes received and sent on the port.");
    for p in &s.ports {
        o.sample("rvs_port_bytes_total", &[("port", &p.name), ("direction", "rx")], p.rx_bytes);
        o.sample("rvs_port_bytes_total", &[("port", &p.name), ("direction", "tx")], p.tx_bytes);
    }
    o.family("rvs_port_missed_total", "counter", "Packets the port dropped because the rx queues were full.");
    for p in &s.ports {
        o.sample("rvs_port_missed_total", &[("port", &p.name)], p.imissed);
    }
    o.family("rvs_port_errors_total", "counter", "Erroneous packets received, and failed transmissions, on the port.");
    for p in &s.ports {
        o.sample("rvs_port_errors_total", &[("port", &p.name), ("direction", "rx")], p.ierrors);
        o.sample("rvs_port_errors_total", &[("port", &p.name), ("direction", "tx")], p.oerrors);
    }
    o.family("rvs_port_rx_nombuf_total", "counter", "Receive failures for want of an mbuf.");
    for p in &s.ports {
        o.sample("rvs_port_rx_nombuf_total", &[("port", &p.name)], p.rx_nombuf);
    }
    o.family("rvs_drops_total", "counter", "Packets the dataplane dropped, by reason.");
    for (reason, n) in &s.drops {
        o.sample("rvs_drops_total", &[("reason", reason)], *n);
    }
    if !s.exception.is_empty() {
        o.family(
            "rvs_exception_events_total",
            "counter",
            "The exception path's events: ARP received and sent, packets resolved or dropped unresolved, frames to and from the kernel's taps.",
        );
        for (event, n) in &s.exception {
            o.sample("rvs_exception_events_total", &[("event", event)], *n);
        }
    }

    // Connection tables.
    o.family("rvs_conn_table_size", "gauge", "The connection-table size ipvsadm -L reports.");
    o.sample("rvs_conn_table_size", &[], s.conn_tab_size.into());
    let workers: Vec<(String, &WorkerFigures)> =
        s.workers.iter().enumerate().map(|(i, w)| (i.to_string(), w)).collect();
    let per_worker: [Field<WorkerFigures>; 6] = [
        ("rvs_conn_table_entries", "gauge", "Live entries in the worker's connection table.", |w| w.conns_live),
        ("rvs_connections_created_total", "counter", "Connections (not templates) the worker created.", |w| {
            w.conns_created
        }),
        ("rvs_no_destination_total", "counter", "New connections refused because no real server was available.", |w| {
            w.no_dest
        }),
        ("rvs_icmp_sent_total", "counter", "ICMP errors the worker generated.", |w| w.icmp_sent),
        ("rvs_worker_packets_handled_total", "counter", "Packets the worker processed.", |w| w.handled),
        ("rvs_worker_packets_handed_off_total", "counter", "Packets the worker handed to another worker.", |w| {
            w.handed_off
        }),
    ];
    for (name, kind, help, get) in per_worker {
        o.family(name, kind, help);
        for (i, w) in &workers {
            o.sample(name, &[("worker", i)], get(w));
        }
    }

    // Connection sync (specs/ipvs.md §5).
    o.family(
        "rvs_sync_events_total",
        "counter",
        "Sync daemon messages and records, sent, received, dropped by reason.",
    );
    for (event, n) in &s.sync {
        o.sample("rvs_sync_events_total", &[("event", event)], *n);
    }

    // Timeouts (ipvsadm --set).
    o.family("rvs_timeout_seconds", "gauge", "Connection timeouts: tcp (established), tcpfin, udp.");
    if let Some((tcp, tcpfin, udp)) = s.timeouts {
        for (state, v) in [("tcp", tcp), ("tcpfin", tcpfin), ("udp", udp)] {
            o.sample("rvs_timeout_seconds", &[("state", state)], v.into());
        }
    }

    // Health checks (rvsadm health, specs/ipvs.md §7); the families appear
    // once some service is checked.
    if s.health.is_empty() && s.fallbacks.is_empty() {
        return o.0;
    }
    let checked: Vec<(String, String, &HealthInfo)> =
        s.health.iter().map(|h| (service_label(&h.service), format!("{}:{}", h.addr, h.port), h)).collect();
    let health: [Field<HealthInfo>; 6] = [
        ("rvs_health_up", "gauge", "1 when the real server's checks say up, 0 when down or not checked yet.", |h| {
            u64::from(h.state == "up")
        }),
        ("rvs_health_checks_total", "counter", "Checks run against the real server.", |h| h.checks_total),
        ("rvs_health_check_failures_total", "counter", "Checks of the real server that failed.", |h| h.failures_total),
        ("rvs_health_consecutive_failures", "gauge", "Failures since the last successful check.", |h| {
            h.failures.into()
        }),
        ("rvs_health_transitions_total", "counter", "Changes between up and down.", |h| h.transitions),
        ("rvs_health_last_check_microseconds", "gauge", "How long the last check took.", |h| h.latency_us.unwrap_or(0)),
    ];
    for (name, kind, help, get) in health {
        o.family(name, kind, help);
        for (svc, srv, h) in &checked {
            o.sample(name, &[("service", svc), ("server", srv), ("check", &h.check)], get(h));
        }
    }
    o.family("rvs_health_fallback_active", "gauge", "1 while the service's fallback (sorry server) is in the table.");
    for f in &s.fallbacks {
        let srv = format!("{}:{}", f.addr, f.port);
        o.sample(
            "rvs_health_fallback_active",
            &[("service", &service_label(&f.service)), ("server", &srv)],
            f.active.into(),
        );
    }

    o.0
}

/// Binds `addr` and serves `GET /metrics` from `control` on a background
/// thread for as long as the process runs.
pub fn serve(addr: SocketAddr, control: Arc<Control>) -> Result<(), String> {
    let listener = TcpListener::bind(addr).map_err(|e| format!("metrics: cannot listen on {addr}: {e}"))?;
    serve_on(listener, control)
}

/// Serves on an already bound listener (tests bind port 0).
fn serve_on(listener: TcpListener, control: Arc<Control>) -> Result<(), String> {
    let clients = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("rvs-metrics".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                if clients.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
                    clients.fetch_sub(1, Ordering::SeqCst);
                    let mut s = stream;
                    let _ = s.set_write_timeout(Some(Duration::from_millis(200)));
                    reply(&mut s, "503 Service Unavailable", &[], b"too many scrapes at once\n", false);
                    continue;
                }
                let (c, n) = (control.clone(), clients.clone());
                let spawned = std::thread::Builder::new().name("rvs-scrape".into()).spawn(move || {
                    client(stream, &c);
                    n.fetch_sub(1, Ordering::SeqCst);
                });
                if spawned.is_err() {
                    clients.fetch_sub(1, Ordering::SeqCst);
                }
            }
        })
        .map_err(|e| format!("metrics: cannot start the server thread: {e}"))?;
    Ok(())
}

/// Reads the request head: `Ok(head)`, or `Err(status)` to answer with.
fn read_head(stream: &mut TcpStream) -> Result<String, &'static str> {
    let start = Instant::now();
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let left = HEAD_DEADLINE.checked_sub(start.elapsed()).filter(|d| !d.is_zero()).ok_or("408 Request Timeout")?;
        stream.set_read_timeout(Some(left)).map_err(|_| "400 Bad Request")?;
        let n = match stream.read(&mut buf) {
            Ok(0) => return Err("400 Bad Request"),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return Err("408 Request Timeout"),
        };
        head.extend_from_slice(&buf[..n]);
        // A bare LF line end is tolerated (RFC 9112 §2.2).
        let end = head.windows(4).position(|w| w == b"\r\n\r\n").or_else(|| head.windows(2).position(|w| w == b"\n\n"));
        if let Some(end) = end {
            head.truncate(end);
            return String::from_utf8(head).map_err(|_| "400 Bad Request");
        }
        if head.len() > MAX_HEAD_BYTES {
            return Err("431 Request Header Fields Too Large");
        }
    }
}

/// What a request line asks for: the status line, extra headers, and whether
/// to send the metrics.
fn route(head: &str) -> (&'static str, &'static [&'static str], bool) {
    let line = head.lines().next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return ("400 Bad Request", &[], false);
    };
    if !version.starts_with("HTTP/1.") {
        return ("505 HTTP Version Not Supported", &[], false);
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    if path != "/metrics" {
        return ("404 Not Found", &[], false);
    }
    match method {
        "GET" | "HEAD" => ("200 OK", &[], true),
        _ => ("405 Method Not Allowed", &["Allow: GET, HEAD"], false),
    }
}

fn client(mut stream: TcpStream, control: &Control) {
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let head = match read_head(&mut stream) {
        Ok(h) => h,
        Err(status) => {
            reply(&mut stream, status, &[], format!("{status}\n").as_bytes(), false);
            return;
        }
    };
    let head_only = head.starts_with("HEAD ");
    match route(&head) {
        (status, _, true) => {
            let body = render(&gather(control));
            reply(&mut stream, status, &[&format!("Content-Type: {CONTENT_TYPE}")], body.as_bytes(), head_only);
        }
        (status, extra, false) => {
            let mut headers: Vec<&str> = extra.to_vec();
            headers.push("Content-Type: text/plain; charset=utf-8");
            let body = if status.starts_with("404") {
                "404 Not Found: metrics are at /metrics\n".to_owned()
            } else {
                format!("{status}\n")
            };
            reply(&mut stream, status, &headers, body.as_bytes(), head_only);
        }
    }
}

fn reply(stream: &mut TcpStream, status: &str, headers: &[&str], body: &[u8], head_only: bool) {
    let mut out = format!("HTTP/1.1 {status}\r\n");
    for h in headers {
        let _ = write!(out, "{h}\r\n");
    }
    let _ = write!(out, "Content-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    let mut msg = out.into_bytes();
    if !head_only {
        msg.extend_from_slice(body);
    }
    let _ = stream.write_all(&msg);
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use conf::Protocol;

    use super::*;
    use crate::api::{DestInfo, DestSpec, ServiceSpec, Stats};

    fn small() -> Scrape {
        let svc = ServiceInfo {
            spec: ServiceSpec {
                key: ServiceAddr::Addr { protocol: Protocol::Tcp, vip: Ipv4Addr::new(10, 0, 0, 1), port: 80 },
                scheduler: "rr".into(),
                persistent: None,
                netmask: Ipv4Addr::BROADCAST,
                flags: vec![],
                ops: false,
            },
            dests: vec![DestInfo {
                spec: DestSpec {
                    addr: Ipv4Addr::new(10, 0, 2, 11),
                    port: 80,
                    method: Method::Masq,
                    weight: 3,
                    u_threshold: 0,
                    l_threshold: 0,
                },
                activeconns: 2,
                inactconns: 1,
                persistconns: 0,
                stats: Stats { conns: 5, inpkts: 40, outpkts: 30, inbytes: 4000, outbytes: 9000, ..Stats::default() },
            }],
            stats: Stats {
                conns: 5,
                inpkts: 40,
                outpkts: 30,
                inbytes: 4000,
                outbytes: 9000,
                cps: 1,
                ..Stats::default()
            },
        };
        let port = PortInfo {
            name: "p0".into(),
            device: "net_pcap0".into(),
            mac: "02:00:00:00:00:01".into(),
            rx_packets: 70,
            rx_bytes: 13000,
            tx_packets: 69,
            tx_bytes: 12900,
            imissed: 0,
            ierrors: 0,
            oerrors: 1,
            rx_nombuf: 0,
        };
        let mut s = Scrape::from_responses(
            Response::Services { conn_tab_size: 4096, services: vec![svc] },
            Response::Ports { ports: vec![port], drops: vec![("no_route".into(), 1)], exception: vec![] },
            Response::Timeouts { tcp: 900, tcpfin: 120, udp: 300 },
            vec![WorkerFigures {
                conns_live: 3,
                conns_created: 5,
                no_dest: 0,
                icmp_sent: 1,
                handled: 139,
                handed_off: 0,
            }],
        );
        // Keep the exact text short: one reason besides the one seen.
        s.drops.retain(|(r, _)| r == "no_route" || r == "tx_full");
        s
    }

    #[test]
    fn renders_the_exact_text_of_a_small_case() {
        let expected = format!(
            r#"# HELP rvs_build_info Always 1; the version label says which rvsd answers.
# TYPE rvs_build_info gauge
rvs_build_info{{version="{v}"}} 1
# HELP rvs_service_info Always 1; labels carry the service's scheduler.
# TYPE rvs_service_info gauge
rvs_service_info{{service="tcp 10.0.0.1:80",scheduler="rr"}} 1
# HELP rvs_service_connections_total Connections scheduled by the virtual service.
# TYPE rvs_service_connections_total counter
rvs_service_connections_total{{service="tcp 10.0.0.1:80"}} 5
# HELP rvs_service_packets_total Packets of the virtual service, in from clients or out from servers.
# TYPE rvs_service_packets_total counter
rvs_service_packets_total{{service="tcp 10.0.0.1:80",direction="in"}} 40
rvs_service_packets_total{{service="tcp 10.0.0.1:80",direction="out"}} 30
# HELP rvs_service_bytes_total Bytes of the virtual service, in from clients or out from servers.
# TYPE rvs_service_bytes_total counter
rvs_service_bytes_total{{service="tcp 10.0.0.1:80",direction="in"}} 4000
rvs_service_bytes_total{{service="tcp 10.0.0.1:80",direction="out"}} 9000
# HELP rvs_server_active_connections Connections to the real server in ESTABLISHED state.
# TYPE rvs_server_active_connections gauge
rvs_server_active_connections{{service="tcp 10.0.0.1:80",server="10.0.2.11:80",method="masq"}} 2
# HELP rvs_server_inactive_connections Connections to the real server in any other state.
# TYPE rvs_server_inactive_connections gauge
rvs_server_inactive_connections{{service="tcp 10.0.0.1:80",server="10.0.2.11:80",method="masq"}} 1
# HELP rvs_server_persistent_connections Persistence templates pointing at the real server.
# TYPE rvs_server_persistent_connections gauge
rvs_server_persistent_connections{{service="tcp 10.0.0.1:80",server="10.0.2.11:80",method="masq"}} 0
# HELP rvs_server_weight The real server's scheduling weight (0: quiesced).
# TYPE rvs_server_weight gauge
rvs_server_weight{{service="tcp 10.0.0.1:80",server="10.0.2.11:80",method="masq"}} 3
# HELP rvs_server_connections_total Connections scheduled to the real server.
# TYPE rvs_server_connections_total counter
rvs_server_connections_total{{service="tcp 10.0.0.1:80",server="10.0.2.11:80",method="masq"}} 5
# HELP rvs_server_packets_total Packets of the real server's connections, by direction.
# TYPE rvs_server_packets_total counter
rvs_server_packets_total{{service="tcp 10.0.0.1:80",server="10.0.2.11:80",method="masq",direction="in"}} 40
rvs_server_packets_total{{service="tcp 10.0.0.1:80",server="10.0.2.11:80",method="masq",direction="out"}} 30
# HELP rvs_server_bytes_total Bytes of the real server's connections, by direction.
# TYPE rvs_server_bytes_total counter
rvs_server_bytes_total{{service="tcp 10.0.0.1:80",server="10.0.2.11:80",method="masq",direction="in"}} 4000
rvs_server_bytes_total{{service="tcp 10.0.0.1:80",server="10.0.2.11:80",method="masq",direction="out"}} 9000
# HELP rvs_port_packets_total Packets received and sent on the port.
# TYPE rvs_port_packets_total counter
rvs_port_packets_total{{port="p0",direction="rx"}} 70
rvs_port_packets_total{{port="p0",direction="tx"}} 69
# HELP rvs_port_bytes_total Bytes received and sent on the port.
# TYPE rvs_port_bytes_total counter
rvs_port_bytes_total{{port="p0",direction="rx"}} 13000
rvs_port_bytes_total{{port="p0",direction="tx"}} 12900
# HELP rvs_port_missed_total Packets the port dropped because the rx queues were full.
# TYPE rvs_port_missed_total counter
rvs_port_missed_total{{port="p0"}} 0
# HELP rvs_port_errors_total Erroneous packets received, and failed transmissions, on the port.
# TYPE rvs_port_errors_total counter
rvs_port_errors_total{{port="p0",direction="rx"}} 0
rvs_port_errors_total{{port="p0",direction="tx"}} 1
# HELP rvs_port_rx_nombuf_total Receive failures for want of an mbuf.
# TYPE rvs_port_rx_nombuf_total counter
rvs_port_rx_nombuf_total{{port="p0"}} 0
# HELP rvs_drops_total Packets the dataplane dropped, by reason.
# TYPE rvs_drops_total counter
rvs_drops_total{{reason="no_route"}} 1
rvs_drops_total{{reason="tx_full"}} 0
# HELP rvs_conn_table_size The connection-table size ipvsadm -L reports.
# TYPE rvs_conn_table_size gauge
rvs_conn_table_size 4096
# HELP rvs_conn_table_entries Live entries in the worker's connection table.
# TYPE rvs_conn_table_entries gauge
rvs_conn_table_entries{{worker="0"}} 3
# HELP rvs_connections_created_total Connections (not templates) the worker created.
# TYPE rvs_connections_created_total counter
rvs_connections_created_total{{worker="0"}} 5
# HELP rvs_no_destination_total New connections refused because no real server was available.
# TYPE rvs_no_destination_total counter
rvs_no_destination_total{{worker="0"}} 0
# HELP rvs_icmp_sent_total ICMP errors the worker generated.
# TYPE rvs_icmp_sent_total counter
rvs_icmp_sent_total{{worker="0"}} 1
# HELP rvs_worker_packets_handled_total Packets the worker processed.
# TYPE rvs_worker_packets_handled_total counter
rvs_worker_packets_handled_total{{worker="0"}} 139
# HELP rvs_worker_packets_handed_off_total Packets the worker handed to another worker.
# TYPE rvs_worker_packets_handed_off_total counter
rvs_worker_packets_handed_off_total{{worker="0"}} 0
# HELP rvs_sync_events_total Sync daemon messages and records, sent, received, dropped by reason.
# TYPE rvs_sync_events_total counter
# HELP rvs_timeout_seconds Connection timeouts: tcp (established), tcpfin, udp.
# TYPE rvs_timeout_seconds gauge
rvs_timeout_seconds{{state="tcp"}} 900
rvs_timeout_seconds{{state="tcpfin"}} 120
rvs_timeout_seconds{{state="udp"}} 300
"#,
            v = crate::VERSION
        );
        let got = render(&small());
        for (i, (g, e)) in got.lines().zip(expected.lines()).enumerate() {
            assert_eq!(g, e, "line {}", i + 1);
        }
        assert_eq!(got, expected);
    }

    #[test]
    fn health_families_appear_with_checked_servers() {
        let key = ServiceAddr::Addr { protocol: Protocol::Tcp, vip: Ipv4Addr::new(10, 0, 0, 1), port: 80 };
        let h = HealthInfo {
            service: key,
            addr: Ipv4Addr::new(10, 0, 2, 11),
            port: 80,
            check: "negotiate http".into(),
            state: "down".into(),
            action: "quiesced".into(),
            last_result: Some("failed".into()),
            reason: "HTTP 500".into(),
            latency_us: Some(1500),
            failures: 4,
            failurecount: 3,
            since: 0,
            last_check_ms: None,
            checks_total: 10,
            failures_total: 4,
            transitions: 2,
        };
        let fb = FallbackInfo { service: key, addr: Ipv4Addr::new(10, 0, 2, 99), port: 80, active: true };
        let s = Scrape { health: vec![h], fallbacks: vec![fb], ..Scrape::default() };
        let text = render(&s);
        let l = r#"service="tcp 10.0.0.1:80",server="10.0.2.11:80",check="negotiate http""#;
        for want in [
            format!("rvs_health_up{{{l}}} 0"),
            format!("rvs_health_checks_total{{{l}}} 10"),
            format!("rvs_health_check_failures_total{{{l}}} 4"),
            format!("rvs_health_consecutive_failures{{{l}}} 4"),
            format!("rvs_health_transitions_total{{{l}}} 2"),
            format!("rvs_health_last_check_microseconds{{{l}}} 1500"),
            r#"rvs_health_fallback_active{service="tcp 10.0.0.1:80",server="10.0.2.99:80"} 1"#.to_owned(),
        ] {
            assert!(text.lines().any(|x| x == want), "{want} missing from\n{text}");
        }
        assert!(!render(&Scrape::default()).contains("rvs_health"));
    }

    #[test]
    fn every_drop_reason_is_present_and_unknown_ones_kept() {
        let s = Scrape::from_responses(
            Response::Error { message: "x".into(), exit_code: 255 },
            Response::Ports {
                ports: vec![],
                drops: vec![("no_route".into(), 7), ("from_the_future".into(), 2)],
                exception: vec![],
            },
            Response::Ok,
            vec![],
        );
        assert_eq!(s.drops.len(), DropReason::ALL.len() + 1);
        assert!(s.drops.contains(&("no_route".into(), 7)));
        assert!(s.drops.contains(&("tx_full".into(), 0)));
        assert_eq!(s.drops.last(), Some(&("from_the_future".into(), 2)));
        assert_eq!(s.services, vec![]);
        assert_eq!(s.timeouts, None);
        // Empty families still carry HELP and TYPE, and nothing else.
        let text = render(&s);
        assert!(text.contains("# TYPE rvs_server_weight gauge\n# HELP rvs_server_connections_total"));
        assert!(text.ends_with("# TYPE rvs_timeout_seconds gauge\n"));
    }

    #[test]
    fn labels_are_escaped_and_keys_named() {
        assert_eq!(escape_label(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label("x\ny"), "x\\ny");
        assert_eq!(service_label(&ServiceAddr::Fwmark(10)), "fwmark 10");
        assert_eq!(
            service_label(&ServiceAddr::Addr { protocol: Protocol::Udp, vip: Ipv4Addr::new(10, 0, 0, 1), port: 53 }),
            "udp 10.0.0.1:53"
        );
        let mut o = Out(String::new());
        o.sample("m", &[("port", "we\"ird\\")], 1);
        assert_eq!(o.0, "m{port=\"we\\\"ird\\\\\"} 1\n");
    }

    #[test]
    fn every_sample_line_is_well_formed() {
        // name{label="value",...} integer, or a comment; names are declared once.
        let text = render(&small());
        let mut declared = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                assert!(declared.insert(rest.split(' ').next().unwrap().to_owned()), "{line}");
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap();
            value.parse::<u64>().unwrap();
            let name = series.split('{').next().unwrap();
            assert!(declared.contains(name), "{line}: sample before its TYPE");
            assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{line}");
        }
    }

    #[test]
    fn requests_are_routed_by_method_and_path() {
        assert_eq!(route("GET /metrics HTTP/1.1\r\nHost: x"), ("200 OK", &[][..], true));
        assert_eq!(route("GET /metrics?x=1 HTTP/1.0"), ("200 OK", &[][..], true));
        assert_eq!(route("HEAD /metrics HTTP/1.1"), ("200 OK", &[][..], true));
        assert_eq!(route("GET /other HTTP/1.1"), ("404 Not Found", &[][..], false));
        assert_eq!(route("POST /metrics HTTP/1.1"), ("405 Method Not Allowed", &["Allow: GET, HEAD"][..], false));
        assert_eq!(route("GET /metrics"), ("400 Bad Request", &[][..], false));
        assert_eq!(route(""), ("400 Bad Request", &[][..], false));
        assert_eq!(route("GET /metrics HTTP/2"), ("505 HTTP Version Not Supported", &[][..], false));
    }

    #[test]
    fn exception_counters_are_exported_when_present() {
        let s = Scrape::from_responses(
            Response::Ok,
            Response::Ports { ports: vec![], drops: vec![], exception: vec![("arp_received".into(), 4)] },
            Response::Ok,
            vec![],
        );
        let text = render(&s);
        assert!(text.contains("# TYPE rvs_exception_events_total counter\n"), "{text}");
        assert!(text.contains("rvs_exception_events_total{event=\"arp_received\"} 4\n"), "{text}");
        let replay = Scrape::from_responses(Response::Ok, Response::Ok, Response::Ok, vec![]);
        assert!(!render(&replay).contains("rvs_exception_events_total"));
    }
}

/// The server over real sockets, on a `Control` with no dataplane behind it.
#[cfg(test)]
mod http_tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use crate::control::Control;
    use conf::{Protocol, ServiceAddr};

    use crate::api::{Op, Response, ServiceSpec};

    fn start() -> std::net::SocketAddr {
        let cfg = conf::Config::default();
        let control = Arc::new(Control::detached("rvs.toml".into(), cfg));
        let spec = ServiceSpec {
            key: ServiceAddr::Addr { protocol: Protocol::Tcp, vip: "10.0.0.1".parse().unwrap(), port: 80 },
            scheduler: "rr".into(),
            persistent: None,
            netmask: std::net::Ipv4Addr::BROADCAST,
            flags: vec![],
            ops: false,
        };
        assert_eq!(control.handle(Op::AddService(spec)), Response::Ok);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        super::serve_on(listener, control).unwrap();
        addr
    }

    fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(request).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn serves_metrics_and_refuses_the_rest() {
        let addr = start();
        let r = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        let (head, body) = r.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), "{head}");
        assert!(head.contains("\r\nConnection: close"), "{head}");
        assert!(head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())), "{head}");
        assert!(body.contains("\nrvs_service_connections_total{service=\"tcp 10.0.0.1:80\"} 0\n"), "{body}");
        assert!(body.contains("\nrvs_conn_table_entries{worker=\"0\"} 0\n"), "{body}");

        let r = exchange(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n") && r.ends_with("\r\n\r\n"), "{r}");
        assert!(exchange(addr, b"GET /other HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 Not Found\r\n"));
        let r = exchange(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\n"), "{r}");
        assert!(exchange(addr, b"nonsense\n\n").starts_with("HTTP/1.1 400 Bad Request\r\n"));
        let mut big = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        big.resize(super::MAX_HEAD_BYTES + 2048, b'a');
        assert!(exchange(addr, &big).starts_with("HTTP/1.1 431 "));
    }

    #[test]
    fn a_silent_client_does_not_hold_up_scrapes() {
        let addr = start();
        let mut idle = TcpStream::connect(addr).unwrap();
        idle.write_all(b"GET /metr").unwrap();
        let t = Instant::now();
        assert!(exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(t.elapsed() < Duration::from_secs(2));
        // The silent one is answered and closed once its deadline passes.
        idle.set_read_timeout(Some(super::HEAD_DEADLINE * 3)).unwrap();
        let mut out = String::new();
        idle.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{out}");
    }
}
