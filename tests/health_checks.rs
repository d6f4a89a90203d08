//! Every check type against real local services (no namespaces, no
//! dataplane): simpletcp and DNS responders written here, an HTTPS server
//! (python's http.server behind ssl, certificate from the openssl CLI),
//! external commands, ping, maintenancedir and fallbackcommand. What the
//! checker did is read back from the Control's table (`-L`), the same
//! place rvsadm -Ln reads.

use std::io::Write;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use conf::{Method, Protocol, ServiceAddr};
use ctl::api::{DestSpec, HealthInfo, Op, Response};
use ctl::control::Control;

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn control(text: &str, dir: &Path) -> Arc<Control> {
    let path = dir.join("rvs.toml");
    std::fs::write(&path, text).unwrap();
    let cfg = conf::load(&path).unwrap();
    let c = Arc::new(Control::detached(path, cfg.clone()));
    ctl::health::start(c.clone(), cfg).unwrap();
    c
}

fn health(c: &Control, port: u16) -> Option<HealthInfo> {
    match c.handle(Op::Health) {
        Response::Health { servers, .. } => servers.into_iter().find(|h| h.port == port),
        r => panic!("{r:?}"),
    }
}

fn svc(vport: u16) -> conf::ServiceAddr {
    conf::ServiceAddr::Addr { protocol: conf::Protocol::Tcp, vip: Ipv4Addr::new(10, 0, 0, 1), port: vport }
}

fn until(what: &str, c: &Control, port: u16, cond: impl Fn(&HealthInfo) -> bool) -> HealthInfo {
    let start = Instant::now();
    loop {
        let h = health(c, port);
        if let Some(h) = h.as_ref().filter(|h| cond(h)) {
            return h.clone();
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{what}: {h:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A banner server: "220 rvs-test ready" to every connection; its port.
fn banner() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let _ = s.write_all(b"220 rvs-test ready\r\n");
        }
    });
    port
}

/// A DNS responder: one A record, 10.9.9.9, for any question; its port.
fn dns() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = s.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut b = [0u8; 512];
        while let Ok((n, from)) = s.recv_from(&mut b) {
            if n < 12 {
                continue;
            }
            let mut r = b[..n].to_vec();
            r[2] = 0x81; // QR, RD
            r[3] = 0x80; // RA, NOERROR
            r[6] = 0;
            r[7] = 1; // ANCOUNT 1
            r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 9, 9, 9]);
            let _ = s.send_to(&r, from);
        }
    });
    port
}

#[test]
fn every_check_type_against_real_services() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Servers bind port 0 and say which port they got; the other ports are
    // only names in the config (nothing listens on them but python's https).
    let (tcp_p, dns_p) = (banner(), dns());
    let (https_p, ext_p, ping_p, maint_p) = (free_port(), free_port(), free_port(), free_port());

    // HTTPS: python's http.server wrapped in TLS with a throwaway certificate.
    let st = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=rs1"])
        .arg("-keyout")
        .arg(d.join("key.pem"))
        .arg("-out")
        .arg(d.join("cert.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::create_dir(d.join("www")).unwrap();
    std::fs::write(d.join("www/index.html"), "secure ok\n").unwrap();
    let py = format!(
        "import http.server, ssl, functools\n\
         h = functools.partial(http.server.SimpleHTTPRequestHandler, directory='{www}')\n\
         s = http.server.HTTPServer(('127.0.0.1', {https_p}), h)\n\
         c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); c.load_cert_chain('{d}/cert.pem', '{d}/key.pem')\n\
         s.socket = c.wrap_socket(s.socket, server_side=True)\n\
         s.serve_forever()\n",
        www = d.join("www").display(),
        d = d.display()
    );
    let _https =
        Kill(Command::new("python3").arg("-c").arg(py).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());

    // External: up while the flag file exists; records its arguments.
    let script = d.join("check.sh");
    std::fs::write(&script, format!("#!/bin/sh\necho \"$@\" > {d}/args\ntest -e {d}/flag\n", d = d.display())).unwrap();
    let fbcmd = d.join("fallback.sh");
    std::fs::write(&fbcmd, format!("#!/bin/sh\necho \"$@\" >> {}/fallback.log\n", d.display())).unwrap();
    for f in [&script, &fbcmd] {
        assert!(Command::new("chmod").arg("+x").arg(f).status().unwrap().success());
    }
    std::fs::write(d.join("flag"), "").unwrap();
    std::fs::create_dir(d.join("maint")).unwrap();

    let common = "checkinterval = 1\nchecktimeout = 2\nquiescent = \"yes\"\n";
    let text = format!(
        r#"
[health]
maintenancedir = "{maint}"

[[service]]
protocol = "tcp"
address = "10.0.0.1:25"
[service.health]
checktype = "negotiate"
service = "simpletcp"
receive = "^220 "
{common}
[[service.server]]
address = "127.0.0.1:{tcp_p}"
method = "masq"

[[service]]
protocol = "udp"
address = "10.0.0.1:53"
[service.health]
service = "dns"
request = "www.example.com"
receive = "^10\\.9\\.9\\.9$"
checkport = {dns_p}
{common}
[[service.server]]
address = "127.0.0.1:{dns_p}"
method = "masq"

[[service]]
protocol = "tcp"
address = "10.0.0.1:443"
[service.health]
request = "index.html"
receive = "secure ok"
virtualhost = "rs1"
{common}
[[service.server]]
address = "127.0.0.1:{https_p}"
method = "masq"

[[service]]
protocol = "tcp"
address = "10.0.0.1:80"
[service.health]
checktype = "external"
checkcommand = "{script}"
fallback = "127.0.0.2:80 masq"
fallbackcommand = "{fbcmd}"
{common}
[[service.server]]
address = "127.0.0.1:{ext_p}"
method = "masq"
weight = 5

[[service]]
protocol = "tcp"
address = "10.0.0.1:7"
[service.health]
checktype = "ping"
{common}
[[service.server]]
address = "127.0.0.1:{ping_p}"
method = "masq"

[[service]]
protocol = "tcp"
address = "10.0.0.1:81"
[service.health]
checktype = "on"
{common}
[[service.server]]
address = "127.0.0.1:{maint_p}"
method = "masq"
"#,
        maint = d.join("maint").display(),
        script = script.display(),
        fbcmd = fbcmd.display(),
    );
    let c = control(&text, d);

    let h = until("simpletcp up", &c, tcp_p, |h| h.state == "up");
    assert_eq!(h.reason, "receive matched");
    let h = until("dns up", &c, dns_p, |h| h.state == "up");
    assert_eq!(h.reason, "DNS answer 10.9.9.9");
    let h = until("https up", &c, https_p, |h| h.state == "up");
    assert_eq!(h.reason, "TLS, HTTP 200, receive matched");
    until("external up", &c, ext_p, |h| h.state == "up");
    assert_eq!(std::fs::read_to_string(d.join("args")).unwrap().trim(), format!("10.0.0.1 80 127.0.0.1 {ext_p}"));
    let h = until("ping up", &c, ping_p, |h| h.state == "up");
    assert_eq!(h.reason, "echo reply");
    until("on", &c, maint_p, |h| h.state == "up");

    // A server added by hand (rvsadm -a) is not checked and never touched.
    let by_hand = DestSpec {
        addr: Ipv4Addr::new(127, 0, 0, 9),
        port: 80,
        method: Method::Masq,
        weight: 2,
        u_threshold: 0,
        l_threshold: 0,
    };
    let key = ServiceAddr::Addr { protocol: Protocol::Tcp, vip: Ipv4Addr::new(10, 0, 0, 1), port: 80 };
    assert_eq!(c.handle(Op::AddDest { service: key, dest: by_hand }), Response::Ok);

    // External fails: quiesced, and as the only checked server the fallback
    // comes in with fallbackcommand start; back up: weight 5 again, fallback out.
    std::fs::remove_file(d.join("flag")).unwrap();
    until("external down", &c, ext_p, |h| h.state == "down");
    assert_eq!(c.live_server(&svc(80), Ipv4Addr::LOCALHOST, ext_p).unwrap().weight, 0);
    let fb = c.live_server(&svc(80), Ipv4Addr::new(127, 0, 0, 2), 80).expect("fallback added");
    assert_eq!((fb.weight, fb.method), (1, conf::Method::Masq));
    std::fs::write(d.join("flag"), "").unwrap();
    until("external up again", &c, ext_p, |h| h.state == "up");
    assert_eq!(c.live_server(&svc(80), Ipv4Addr::LOCALHOST, ext_p).unwrap().weight, 5);
    assert!(c.live_server(&svc(80), Ipv4Addr::new(127, 0, 0, 2), 80).is_none(), "fallback deleted");
    assert_eq!(c.live_server(&svc(80), Ipv4Addr::new(127, 0, 0, 9), 80).unwrap().weight, 2);
    assert!(health(&c, 80).is_none(), "the hand-added server is not checked");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        std::fs::read_to_string(d.join("fallback.log")).unwrap(),
        "start 10.0.0.1:80 tcp\nstop 10.0.0.1:80 tcp\n"
    );

    // maintenancedir forces a server down even with checktype = on.
    std::fs::write(d.join(format!("maint/127.0.0.1:{maint_p}")), "").unwrap();
    let h = until("maintenance", &c, maint_p, |h| h.state == "down");
    assert_eq!(h.action, "maintenance");
    assert!(h.reason.starts_with("maintenance: "), "{}", h.reason);
    assert_eq!(c.live_server(&svc(81), Ipv4Addr::LOCALHOST, maint_p).unwrap().weight, 0);
    std::fs::remove_file(d.join(format!("maint/127.0.0.1:{maint_p}"))).unwrap();
    until("out of maintenance", &c, maint_p, |h| h.state == "up");
    assert_eq!(c.live_server(&svc(81), Ipv4Addr::LOCALHOST, maint_p).unwrap().weight, 1);
}

#[test]
fn external_check_past_its_timeout_is_killed_and_down() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A script whose own child outlives it unless the whole group is killed.
    let script = d.join("slow.sh");
    // A sleep this run alone starts (leftovers of another run cannot match).
    let sleep = format!("sleep 29.{:03}", std::process::id() % 1000);
    std::fs::write(&script, format!("#!/bin/sh\n{sleep}\necho never\n")).unwrap();
    assert!(Command::new("chmod").arg("+x").arg(&script).status().unwrap().success());
    let text = format!(
        r#"
[[service]]
protocol = "tcp"
address = "10.0.0.1:80"
[service.health]
checktype = "external"
checkcommand = "{}"
checkinterval = 1
checktimeout = 1
[[service.server]]
address = "127.0.0.1:8080"
method = "masq"
"#,
        script.display()
    );
    let c = control(&text, d);
    let h = until("timed out", &c, 8080, |h| h.state == "down");
    assert_eq!(h.reason, "timed out after 1s, killed");
    assert_eq!(h.action, "removed");
    assert!(c.live_server(&svc(80), Ipv4Addr::LOCALHOST, 8080).is_none());
    // Nothing of a timed-out run is left behind, not even the script's
    // child: every `sleep` seen now is gone once its run's timeout passed
    // (later runs start their own).
    let ps = Command::new("pgrep").args(["-f", &sleep]).output().unwrap();
    let pids: Vec<String> = String::from_utf8_lossy(&ps.stdout).split_whitespace().map(String::from).collect();
    assert!(!pids.is_empty());
    std::thread::sleep(Duration::from_millis(2500));
    for p in pids {
        let state = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        assert!(state.is_empty() || state.contains(") Z "), "sleep {p} still runs: {state}");
    }
}

#[test]
fn readdquiescent_puts_a_deleted_down_server_back_with_weight_0() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("flag"), "").unwrap();
    let text = format!(
        r#"
[health]
readdquiescent = "yes"

[[service]]
protocol = "tcp"
address = "10.0.0.1:80"
[service.health]
checktype = "external"
checkcommand = "test -e {flag} ||"
checkinterval = 1
checktimeout = 2
quiescent = "yes"
[[service.server]]
address = "127.0.0.1:8081"
method = "masq"
weight = 4
"#,
        flag = d.join("flag").display()
    );
    let c = control(&text, d);
    until("up", &c, 8081, |h| h.state == "up");
    // Deleted by hand while up (rvsadm -d), then its check fails.
    let key = ServiceAddr::Addr { protocol: Protocol::Tcp, vip: Ipv4Addr::new(10, 0, 0, 1), port: 80 };
    assert_eq!(c.handle(Op::DelDest { service: key, addr: Ipv4Addr::LOCALHOST, port: 8081 }), Response::Ok);
    std::fs::remove_file(d.join("flag")).unwrap();
    until("down", &c, 8081, |h| h.state == "down");
    assert_eq!(c.live_server(&svc(80), Ipv4Addr::LOCALHOST, 8081).map(|s| s.weight), Some(0));
    std::fs::write(d.join("flag"), "").unwrap();
    until("up again", &c, 8081, |h| h.state == "up");
    assert_eq!(c.live_server(&svc(80), Ipv4Addr::LOCALHOST, 8081).map(|s| s.weight), Some(4));
}
