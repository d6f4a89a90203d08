//! The `[metrics]` endpoint of a running rvsd, scraped with a real HTTP
//! client (curl, installed by scripts/setup): the series a service and a
//! real server added with rvsadm produce, the connection-table and timeout
//! figures, the drop-reason line format, refused paths and methods, and a
//! listen address that is taken.
mod common;

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon::{write_config, Daemon};
use common::wait_with_deadline;

/// A port nothing listens on right now (the kernel's pick for port 0).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn metrics_at(port: u16) -> String {
    format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n")
}

/// rvsd with a metrics endpoint, and the endpoint's URL.
struct Scraped {
    daemon: Daemon,
    url: String,
}

impl Scraped {
    fn start() -> Scraped {
        let port = free_port();
        let daemon = Daemon::start_with(&metrics_at(port));
        let s = Scraped { daemon, url: format!("http://127.0.0.1:{port}") };
        // The endpoint opens after the control socket.
        let started = Instant::now();
        while s.curl(&["-o", "/dev/null", "/metrics"]).1 != 0 {
            assert!(started.elapsed() < Duration::from_secs(20), "no metrics endpoint at {}", s.url);
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    /// Runs `curl -s ARGS` with the last argument a path on the endpoint:
    /// stdout and curl's exit code.
    fn curl(&self, args: &[&str]) -> (String, i32) {
        let (path, opts) = args.split_last().unwrap();
        let child = Command::new("curl")
            .args(["-s", "--max-time", "10"])
            .args(opts)
            .arg(format!("{}{path}", self.url))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("curl (installed by scripts/setup)");
        let o = wait_with_deadline(child, Duration::from_secs(15), "curl");
        (String::from_utf8(o.stdout).unwrap(), o.status.code().unwrap_or(-1))
    }

    fn rvsadm(&self, args: &str) {
        self.daemon.ok(args);
    }
}

fn assert_line(body: &str, line: &str) {
    assert!(body.lines().any(|l| l == line), "no line `{line}` in:\n{body}");
}

#[test]
fn a_scrape_shows_services_servers_tables_and_drops() {
    let d = Scraped::start();
    d.rvsadm("-A -t 10.0.0.1:80 -s rr");
    d.rvsadm("-a -t 10.0.0.1:80 -r 10.0.1.11:80 -m -w 3");
    d.rvsadm("-A -f 10 -s wrr -p");
    d.rvsadm("--set 900 120 300");

    let (out, code) = d.curl(&["-D", "-", "/metrics"]);
    assert_eq!(code, 0, "curl failed");
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("\r\nContent-Type: text/plain; version=0.0.4"), "{head}");

    let svc = r#"service="tcp 10.0.0.1:80""#;
    let srv = r#"service="tcp 10.0.0.1:80",server="10.0.1.11:80",method="masq""#;
    for line in [
        "# TYPE rvs_service_connections_total counter".to_owned(),
        format!("rvs_service_connections_total{{{svc}}} 0"),
        format!("rvs_service_packets_total{{{svc},direction=\"in\"}} 0"),
        format!("rvs_service_bytes_total{{{svc},direction=\"out\"}} 0"),
        r#"rvs_service_connections_total{service="fwmark 10"} 0"#.to_owned(),
        r#"rvs_service_info{service="fwmark 10",scheduler="wrr"} 1"#.to_owned(),
        "# TYPE rvs_server_weight gauge".to_owned(),
        format!("rvs_server_weight{{{srv}}} 3"),
        format!("rvs_server_active_connections{{{srv}}} 0"),
        format!("rvs_server_inactive_connections{{{srv}}} 0"),
        format!("rvs_server_persistent_connections{{{srv}}} 0"),
        format!("rvs_server_connections_total{{{srv}}} 0"),
        "rvs_conn_table_size 4096".to_owned(),
        r#"rvs_conn_table_entries{worker="0"} 0"#.to_owned(),
        r#"rvs_connections_created_total{worker="0"} 0"#.to_owned(),
        r#"rvs_port_packets_total{port="p0",direction="rx"} 0"#.to_owned(),
        r#"rvs_port_errors_total{port="p0",direction="tx"} 0"#.to_owned(),
        r#"rvs_timeout_seconds{state="tcp"} 900"#.to_owned(),
        r#"rvs_timeout_seconds{state="tcpfin"} 120"#.to_owned(),
        r#"rvs_timeout_seconds{state="udp"} 300"#.to_owned(),
        "# TYPE rvs_drops_total counter".to_owned(),
        r#"rvs_drops_total{reason="no_route"} 0"#.to_owned(),
    ] {
        assert_line(body, &line);
    }
    // Every drop reason, each on a line of its own: rvs_drops_total{reason="snake_case"} N.
    let drops: Vec<&str> = body.lines().filter(|l| l.starts_with("rvs_drops_total")).collect();
    assert!(drops.len() > 10, "{drops:?}");
    for l in drops {
        let Some((reason, n)) = l.strip_prefix("rvs_drops_total{reason=\"").and_then(|r| r.split_once("\"} ")) else {
            panic!("malformed drop line `{l}`");
        };
        assert!(reason.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'), "{l}");
        n.parse::<u64>().unwrap_or_else(|_| panic!("malformed count in `{l}`"));
    }

    // Removing the server removes its series.
    d.rvsadm("-d -t 10.0.0.1:80 -r 10.0.1.11:80");
    let (body, _) = d.curl(&["/metrics"]);
    assert!(!body.contains("10.0.1.11"), "{body}");
    assert_line(&body, &format!("rvs_service_connections_total{{{svc}}} 0"));

    let status = |args: &[&str]| d.curl(&[&["-o", "/dev/null", "-w", "%{http_code}"], args].concat()).0;
    assert_eq!(status(&["/other"]), "404");
    assert_eq!(status(&["-X", "POST", "/metrics"]), "405");
    assert_eq!(status(&["-I", "/metrics"]), "200");
}

#[test]
fn a_taken_listen_address_stops_rvsd_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let config = write_config(dir.path(), &metrics_at(port));
    let out = common::run_rvsd(&config, Duration::from_secs(30));
    assert!(!out.status.success(), "rvsd started with its metrics port taken");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("127.0.0.1:{port}")) && err.contains("metrics"), "{err}");
    assert!(!dir.path().join("rvsd.sock").exists(), "the control socket was left behind");
}
