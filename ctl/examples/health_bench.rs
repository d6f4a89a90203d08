//! Health-check benchmark (not a test): how many concurrent checks the
//! health thread sustains on this machine, what the checks cost in CPU, how
//! long the control side takes to answer while they run, and how long a
//! failure takes to detect. Run through `scripts/health-bench`.
//!
//! The checker is the real one (`ctl::health::start` on a `Control` with no
//! dataplane behind it); the real servers are one in-process responder on
//! its own thread, listening on 0.0.0.0:PORT so that every 127.x.y.z is a
//! distinct server. Both share this machine's cores, so the figures are a
//! floor for a director whose real servers are elsewhere.
//!
//! Arguments: `SERVERS INTERVAL_S SECONDS connect|http|ping [VICTIMS]`
//! (ping: use 0 victims, their listener plays no part in a ping).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ctl::api::{ListWhat, Op, Response};
use ctl::control::Control;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PORT: u16 = 18080;
const VICTIM_PORT: u16 = 18081;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let servers: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let interval: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1);
    let seconds: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(20);
    let mode = args.get(4).cloned().unwrap_or_else(|| "http".into());
    let victims: usize = args.get(5).and_then(|a| a.parse().ok()).unwrap_or(10);

    // The responder: HTTP/1.0 "ok" to anything, on every 127.x address.
    let stop_victim = Arc::new(AtomicBool::new(false));
    let sv = stop_victim.clone();
    std::thread::spawn(move || responder(sv));
    std::thread::sleep(Duration::from_millis(200));

    // Services of up to 250 servers each; one more with the victims, whose
    // listener is closed during the run to measure detection.
    let (checktype, service) = match mode.as_str() {
        "connect" => ("connect", "none"),
        "ping" => ("ping", "none"),
        _ => ("negotiate", "http"),
    };
    let health = format!(
        "[service.health]\nchecktype = \"{checktype}\"\nservice = \"{service}\"\nreceive = \"ok\"\n\
         checkinterval = {interval}\nchecktimeout = 1\nnegotiatetimeout = 1\nquiescent = \"yes\"\n"
    );
    let mut text = String::new();
    for (s, chunk) in (0..servers).collect::<Vec<_>>().chunks(250).enumerate() {
        text.push_str(&format!(
            "[[service]]\nprotocol = \"tcp\"\naddress = \"10.1.{}.{}:80\"\n{health}",
            s / 250,
            s % 250 + 1
        ));
        for i in chunk {
            text.push_str(&format!(
                "[[service.server]]\naddress = \"127.{}.{}.{}:{PORT}\"\nmethod = \"masq\"\n",
                1 + i / 62500,
                i / 250 % 250,
                i % 250 + 1
            ));
        }
    }
    text.push_str(&format!("[[service]]\nprotocol = \"tcp\"\naddress = \"10.2.0.1:80\"\n{health}"));
    for v in 0..victims {
        text.push_str(&format!(
            "[[service.server]]\naddress = \"127.200.0.{}:{VICTIM_PORT}\"\nmethod = \"masq\"\n",
            v + 1
        ));
    }
    let cfg = match conf::parse(&text, "bench.toml") {
        Ok(c) => c,
        Err(e) => {
            eprintln!("health_bench: {e}");
            std::process::exit(2);
        }
    };
    let control = Arc::new(Control::detached("bench.toml".into(), cfg.clone()));
    let started = Instant::now();
    if let Err(e) = ctl::health::start(control.clone(), cfg) {
        eprintln!("health_bench: {e}");
        std::process::exit(1);
    }

    // Run: sample the control side's answer time (a -L and a health listing).
    let status = |c: &Control| match c.handle(Op::Health) {
        Response::Health { servers, .. } => servers,
        _ => Vec::new(),
    };
    let mut list_ms: Vec<f64> = Vec::new();
    let warm = Duration::from_secs(2 + interval);
    std::thread::sleep(warm);
    let checks_at = |c: &Control| status(c).iter().map(|h| h.checks_total).sum::<u64>();
    let (c0, t0, cpu_t0) = (checks_at(&control), Instant::now(), health_thread_cpu());
    while t0.elapsed() < Duration::from_secs(seconds) {
        let t = Instant::now();
        let _ = control.handle(Op::List { what: ListWhat::Services, service: None });
        list_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_millis(100));
    }
    let (c1, dt, cpu_t1) = (checks_at(&control), t0.elapsed().as_secs_f64(), health_thread_cpu());
    let all = status(&control);
    let failed: u64 = all.iter().map(|h| h.failures_total).sum();
    let up = all.iter().filter(|h| h.state == "up").count();
    // The most common last reasons of failed checks (errors, not data).
    let mut reasons: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for h in all.iter().filter(|h| h.last_result.as_deref() == Some("failed")) {
        *reasons.entry(h.reason.clone()).or_default() += 1;
    }
    let mut reasons: Vec<(String, usize)> = reasons.into_iter().collect();
    reasons.sort_by_key(|r| std::cmp::Reverse(r.1));
    let reasons: serde_json::Map<String, serde_json::Value> =
        reasons.into_iter().take(3).map(|(r, n)| (r, n.into())).collect();
    let mut lat: Vec<u64> = all.iter().filter_map(|h| h.latency_us).collect();
    lat.sort_unstable();
    let pct = |v: &[u64], p: f64| v.get(((v.len() as f64 - 1.0) * p) as usize).copied().unwrap_or(0);
    list_ms.sort_by(|a, b| a.total_cmp(b));

    // Detection: close the victims' listener, time until each is quiesced
    // in the table (weight 0, the Control's own view).
    stop_victim.store(true, Ordering::SeqCst);
    let closed = Instant::now();
    let mut detect: Vec<f64> = vec![f64::NAN; victims];
    while detect.iter().any(|d| d.is_nan()) && closed.elapsed() < Duration::from_secs(interval * 3 + 5) {
        for (v, d) in detect.iter_mut().enumerate() {
            if d.is_nan() {
                let a = format!("127.200.0.{}", v + 1).parse().unwrap_or(std::net::Ipv4Addr::LOCALHOST);
                let svc = conf::ServiceAddr::Addr {
                    protocol: conf::Protocol::Tcp,
                    vip: "10.2.0.1".parse().unwrap_or(std::net::Ipv4Addr::LOCALHOST),
                    port: 80,
                };
                if control.live_server(&svc, a, VICTIM_PORT).is_some_and(|s| s.weight == 0) {
                    *d = closed.elapsed().as_secs_f64() * 1000.0;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut det: Vec<f64> = detect.iter().copied().filter(|d| !d.is_nan()).collect();
    det.sort_by(|a, b| a.total_cmp(b));
    let fpct = |v: &[f64], p: f64| v.get(((v.len() as f64 - 1.0) * p) as usize).copied().unwrap_or(f64::NAN);
    let cpu_pct = (cpu_t1 - cpu_t0) / dt * 100.0;
    let checks_per_s = (c1 - c0) as f64 / dt;
    let r = serde_json::json!({
        "mode": mode,
        "servers": servers + victims,
        "interval_s": interval,
        "target_checks_per_s": (servers + victims) as f64 / interval as f64,
        "checks_per_s": checks_per_s.round(),
        "failed_checks": failed,
        "last_failure_reasons": reasons,
        "servers_up": up,
        "check_latency_us": {"p50": pct(&lat, 0.5), "p99": pct(&lat, 0.99), "max": lat.last().copied().unwrap_or(0)},
        "health_thread_cpu_pct": (cpu_pct * 10.0).round() / 10.0,
        "health_cpu_us_per_check": if checks_per_s > 0.0 { (cpu_pct * 1e4 / checks_per_s).round() } else { 0.0 },
        "control_list_ms": {"p50": fpct(&list_ms, 0.5), "p99": fpct(&list_ms, 0.99), "max": list_ms.last().copied().unwrap_or(0.0)},
        "detection_ms": {
            "victims": victims,
            "detected": det.len(),
            "min": fpct(&det, 0.0).round(),
            "p50": fpct(&det, 0.5).round(),
            "max": det.last().copied().unwrap_or(f64::NAN).round(),
            "bound_ms": interval * 1000 + 1000,
        },
        "startup_s": (t0 - started).as_secs_f64(),
    });
    println!("{r}");
}

/// CPU seconds used so far by the thread named rvs-health (from /proc).
fn health_thread_cpu() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0.0 };
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim() == "rvs-health" {
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            // Fields after the ")" of comm: utime and stime are the 12th and 13th.
            let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
                + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            return ticks / 100.0;
        }
    }
    0.0
}

fn responder(stop_victim: Arc<AtomicBool>) {
    // Two responder threads, so that the servers keep up with the checker
    // as far as the machine allows.
    let Ok(rt) = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() else { return };
    rt.block_on(async move {
        let Ok(main) = listen(PORT) else {
            eprintln!("health_bench: cannot listen on {PORT}");
            std::process::exit(1);
        };
        let victim = listen(VICTIM_PORT).ok();
        tokio::spawn(async move {
            let Some(victim) = victim else { return };
            loop {
                tokio::select! {
                    r = victim.accept() => if let Ok((s, _)) = r { tokio::spawn(answer(s)); },
                    _ = tokio::time::sleep(Duration::from_millis(2)) => {
                        if stop_victim.load(Ordering::SeqCst) { return; }
                    }
                }
            }
        });
        loop {
            if let Ok((s, _)) = main.accept().await {
                tokio::spawn(answer(s));
            }
        }
    });
}

/// A listener with a deep accept queue (the kernel caps it at somaxconn).
fn listen(port: u16) -> std::io::Result<tokio::net::TcpListener> {
    let s = tokio::net::TcpSocket::new_v4()?;
    s.set_reuseaddr(true)?;
    s.bind(std::net::SocketAddr::from(([0, 0, 0, 0], port)))?;
    s.listen(65535)
}

async fn answer(mut s: tokio::net::TcpStream) {
    let mut buf = [0u8; 2048];
    let mut got = Vec::new();
    while let Ok(n) = s.read(&mut buf).await {
        if n == 0 {
            return;
        }
        got.extend_from_slice(&buf[..n]);
        if got.windows(4).any(|w| w == b"\r\n\r\n") {
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n").await;
            return;
        }
    }
}
