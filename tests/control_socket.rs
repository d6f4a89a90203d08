//! rvsd's control socket against clients other than rvsadm: raw JSON lines
//! with values ipvsadm would refuse (rvsd refuses them with ipvsadm's texts
//! and its state stays as it was, judged with rvsadm -S/-L), undecodable
//! input, the per-request size limit, and the `[control]` limits on clients
//! (max_clients, idle_timeout), judged by what clients read and by rvsd's
//! descriptors and memory in /proc.
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::daemon::{rvsadm, Daemon};
use serde_json::{json, Value};

fn connect(d: &Daemon) -> UnixStream {
    let s = UnixStream::connect(d.socket()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Sends `request` on `s` and reads one reply line.
fn exchange(s: &mut UnixStream, request: &[u8]) -> Value {
    s.write_all(request).unwrap();
    s.write_all(b"\n").unwrap();
    read_reply(s)
}

fn read_reply(s: &mut UnixStream) -> Value {
    let mut line = Vec::new();
    let mut byte = [0u8];
    while s.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    serde_json::from_slice(&line).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&line)))
}

fn error_of(reply: &Value) -> (String, i64) {
    let e = &reply["error"];
    assert!(e.is_object(), "not an error: {reply}");
    (e["message"].as_str().unwrap().to_owned(), e["exit_code"].as_i64().unwrap())
}

fn request(op: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"version": 1, "op": op})).unwrap()
}

fn rvsd_pid(d: &Daemon) -> u32 {
    d.child.as_ref().unwrap().id()
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn out_of_range_values_sent_to_the_socket_are_refused_with_ipvsadm_texts() {
    let d = Daemon::start();
    d.ok("-A -t 10.0.0.1:80 -s rr");
    d.ok("-a -t 10.0.0.1:80 -r 10.0.2.1:80 -m -w 3 -x 10 -y 5");
    d.ok("-A -f 7 -s sh -p 60");
    d.ok("--set 900 120 300");
    let saved = d.ok("-S -n");
    let thresholds = d.ok("-Ln --thresholds");
    let timeouts = d.ok("-L --timeout");

    let svc = json!({"addr": {"protocol": "tcp", "vip": "10.0.0.1", "port": 80}});
    let dest = |w: Value, u: Value, l: Value| json!({"addr": "10.0.2.1", "port": 80, "method": "masq", "weight": w, "u_threshold": u, "l_threshold": l});
    let edit = |dest: Value| json!({"edit_dest": {"service": svc.clone(), "dest": dest}});
    let add = |dest: Value| json!({"add_dest": {"service": {"fwmark": 7}, "dest": dest}});
    let service = |key: Value, sched: &str, persistent: Value, mask: &str, flags: Value, ops: bool| json!({"key": key, "scheduler": sched, "persistent": persistent, "netmask": mask, "flags": flags, "ops": ops});
    let fw7 = json!({"fwmark": 7});
    let tcp = |port: u16| json!({"addr": {"protocol": "tcp", "vip": "10.0.0.9", "port": port}});
    let usage = |m: &str| (m.to_owned(), 2);
    let cases: Vec<(Value, (String, i64))> = vec![
        (edit(dest(json!(70000), json!(0), json!(0))), usage("illegal weight specified")),
        (edit(dest(json!(4294967295u64), json!(0), json!(0))), usage("illegal weight specified")),
        (add(dest(json!(65536), json!(0), json!(0))), usage("illegal weight specified")),
        (edit(dest(json!(-1), json!(0), json!(0))), usage("illegal weight specified")),
        (edit(dest(json!(1), json!(4294967295u64), json!(0))), usage("illegal u_threshold specified")),
        (edit(dest(json!(1), json!(2147483648u64), json!(0))), usage("illegal u_threshold specified")),
        (edit(dest(json!(1), json!(0), json!(4294967295u64))), usage("illegal l_threshold specified")),
        (edit(dest(json!(1), json!(5), json!(6))), ("Numerical result out of range".into(), 255)),
        (
            json!({"set_timeouts": {"tcp": 4294967295u64, "tcpfin": 0, "udp": 0}}),
            usage("invalid timeout value `4294967295' specified"),
        ),
        (
            json!({"set_timeouts": {"tcp": 0, "tcpfin": 2678401, "udp": 0}}),
            usage("invalid timeout value `2678401' specified"),
        ),
        (
            json!({"set_timeouts": {"tcp": 0, "tcpfin": 0, "udp": 4294967295u64}}),
            usage("invalid timeout value `4294967295' specified"),
        ),
        (
            json!({"edit_service": service(fw7.clone(), "sh", json!(4294967295u64), "255.255.255.255", json!([]), false)}),
            usage("invalid timeout value `4294967295' specified"),
        ),
        (
            json!({"edit_service": service(fw7.clone(), "sh", json!(0), "255.255.255.255", json!([]), false)}),
            usage("invalid timeout value `0' specified"),
        ),
        (
            json!({"edit_service": service(fw7.clone(), "sh", json!(60), "255.0.255.0", json!([]), false)}),
            usage(
                "illegal virtual server persistent mask specified (rvs needs a contiguous mask such as \
                 255.255.255.0)",
            ),
        ),
        (
            json!({"edit_service": service(fw7.clone(), "sh", json!(60), "255.255.255.255", json!(["mh-port"]), false)}),
            usage("incompatible scheduler flag `mh-port'"),
        ),
        (
            json!({"edit_service": service(fw7.clone(), "sh", json!(60), "255.255.255.255", json!(["bogus"]), false)}),
            usage("invalid scheduler flag `bogus'"),
        ),
        (
            json!({"edit_service": service(fw7.clone(), "dh", json!(60), "255.255.255.255", json!([]), false)}),
            ("Scheduler or persistence engine not found".into(), 255),
        ),
        (
            json!({"add_service": service(json!({"fwmark": 0}), "rr", json!(null), "255.255.255.255", json!([]), false)}),
            usage("invalid fwmark value `0' specified"),
        ),
        (
            json!({"add_service": service(tcp(0), "rr", json!(null), "255.255.255.255", json!([]), false)}),
            usage("Zero port specified for non-persistent service"),
        ),
        (
            json!({"add_service": service(tcp(80), "rr", json!(null), "255.255.255.255", json!([]), true)}),
            usage("One-Packet Scheduling is only for UDP virtual services"),
        ),
        // A batch (-R) with a good line before a bad one: nothing applied.
        (
            json!({"batch": [
                {"add_service": service(tcp(81), "rr", json!(null), "255.255.255.255", json!([]), false)},
                edit(dest(json!(70000), json!(0), json!(0))),
            ]}),
            usage("illegal weight specified"),
        ),
        (
            json!({"batch": [
                {"add_service": service(tcp(81), "rr", json!(null), "255.255.255.255", json!([]), false)},
                {"set_timeouts": {"tcp": 1, "tcpfin": 1, "udp": 1}},
                edit(dest(json!(1), json!(1), json!(2))),
            ]}),
            ("Numerical result out of range".into(), 255),
        ),
    ];
    let mut s = connect(&d);
    for (op, want) in &cases {
        let reply = exchange(&mut s, &request(op.clone()));
        let (message, code) = error_of(&reply);
        assert_eq!((&message, code), (&want.0, want.1), "{op}");
    }
    // Every refusal left the state as it was, and it still saves and restores.
    assert_eq!(d.ok("-S -n"), saved);
    assert_eq!(d.ok("-Ln --thresholds"), thresholds);
    assert_eq!(d.ok("-L --timeout"), timeouts);
    d.ok("-C");
    let o = d.run_as(&rvsadm(), "-R", Some(&saved));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(d.ok("-S -n"), saved);
    // The edges themselves are accepted; -b names are stored as ipvsadm prints them.
    let ok = exchange(&mut s, &request(edit(dest(json!(65535), json!(2147483647), json!(2147483647)))));
    assert_eq!(ok, json!("ok"));
    let ok = exchange(
        &mut s,
        &request(
            json!({"edit_service": service(fw7, "sh", json!(2678400), "255.255.255.0", json!(["flag-2", "sh-fallback"]), false)}),
        ),
    );
    assert_eq!(ok, json!("ok"));
    let listed = d.ok("-Ln");
    assert!(listed.contains(&format!("  -> {:<28} Masq    65535 ", "10.0.2.1:80")), "{listed}");
    assert!(listed.contains("FWM  7 sh (sh-fallback,sh-port) persistent 2678400 mask 255.255.255.0"), "{listed}");
}

#[test]
fn undecodable_input_gets_an_error_reply_and_the_connection_carries_on() {
    let d = Daemon::start();
    let mut s = connect(&d);
    let (m, code) = error_of(&exchange(&mut s, b"\xff\xfe not utf-8"));
    assert!(m.starts_with("malformed request: "), "{m}");
    assert_eq!(code, 2);
    let (m, _) = error_of(&exchange(&mut s, b"{\"version\":1,\"op\":\"\xff\"}"));
    assert!(m.starts_with("malformed request: "), "{m}");
    let v = exchange(&mut s, &request(json!("version")));
    assert!(v["text"].as_str().unwrap().starts_with("rvsd v"), "{v}");
}

#[test]
fn the_size_limit_is_per_request_not_per_connection() {
    let d = Daemon::start();
    let mut s = connect(&d);
    // Three 8 MiB requests (JSON padded with blanks) on one connection: 24 MiB
    // in all, each under the 16 MiB limit.
    let pad = vec![b' '; 8 << 20];
    for _ in 0..3 {
        let mut r = b"{\"version\":1,\"op\":\"version\"".to_vec();
        r.extend_from_slice(&pad);
        r.push(b'}');
        let v = exchange(&mut s, &r);
        assert!(v["text"].is_string(), "{v}");
    }
    // One line over 16 MiB is refused and the connection closed.
    let mut r = b"{\"version\":1,".to_vec();
    r.extend(std::iter::repeat_n(b' ', (16 << 20) + 10));
    let _ = s.write_all(&r);
    let (m, code) = error_of(&read_reply(&mut s));
    assert_eq!((m.as_str(), code), ("request larger than 16777216 bytes", 2));
    assert!(d.ok("-Ln").starts_with("IP Virtual Server"));
}

#[test]
fn idle_and_slow_clients_are_closed_after_idle_timeout() {
    let d = Daemon::start_with("max_clients = 4\nidle_timeout = 1\n");
    let mut idle = connect(&d);
    // A slow client: part of a request, never the end of the line.
    let mut slow = connect(&d);
    slow.write_all(b"{\"version\":1,").unwrap();
    for s in [&mut idle, &mut slow] {
        let (m, code) = error_of(&read_reply(s));
        assert_eq!((m.as_str(), code), ("closed: no complete request within 1 s ([control] idle_timeout)", 1));
        let mut rest = Vec::new();
        assert_eq!(s.read_to_end(&mut rest).unwrap(), 0, "closed after the reply");
    }
    // rvsadm -R input is one request: a quick client is not affected.
    assert!(d.ok("-Ln").starts_with("IP Virtual Server"));
}

#[test]
fn a_crowd_of_clients_cannot_lock_rvsadm_out() {
    let d = Daemon::start_with("max_clients = 4\n");
    let pid = rvsd_pid(&d);
    let before = fds(pid);
    // The oldest idle client gives its slot up to a new one, and is told why.
    let mut first = connect(&d);
    let crowd: Vec<UnixStream> = (0..3).map(|_| connect(&d)).collect();
    assert_eq!(d.ok("-L --timeout"), "Timeout (tcp tcpfin udp): 900 120 300\n");
    let (m, code) = error_of(&read_reply(&mut first));
    assert_eq!(
        (m.as_str(), code),
        (
            "closed: another client needed this connection's slot ([control] max_clients = 4) and this one had sent \
             no request",
            1
        )
    );
    // Many idle connections: rvsd keeps at most max_clients of them, and
    // rvsadm still gets through (the slack covers descriptors the runtime
    // opens for itself; 2000 clients held would be far beyond it).
    let many: Vec<UnixStream> = (0..2000).map(|_| UnixStream::connect(d.socket()).unwrap()).collect();
    assert!(d.ok("-Ln").starts_with("IP Virtual Server"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while fds(pid) > before + 4 + 16 {
        assert!(Instant::now() < deadline, "rvsd holds {} descriptors (started with {before})", fds(pid));
        std::thread::sleep(Duration::from_millis(50));
    }
    drop((many, crowd));
}

#[test]
fn clients_all_busy_are_refused_with_a_clear_error() {
    let d = Daemon::start_with("max_clients = 2\nidle_timeout = 5\n");
    // Two clients that pipeline requests and never read a reply: once rvsd's
    // write to one blocks, it stops reading from it, and the client's own
    // write times out. Both slots then stay busy until idle_timeout.
    let (tx, rx) = std::sync::mpsc::channel();
    let mut busy = Vec::new();
    for _ in 0..2 {
        let s = UnixStream::connect(d.socket()).unwrap();
        let mut w = s.try_clone().unwrap();
        w.set_write_timeout(Some(Duration::from_millis(300))).unwrap();
        let mut batch = Vec::new();
        for _ in 0..1000 {
            batch.extend(request(json!({"list": {"what": "services", "service": null}})));
            batch.push(b'\n');
        }
        let tx = tx.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(20) {
                if let Err(e) = w.write_all(&batch) {
                    let _ = tx.send(e.kind());
                    return;
                }
            }
        });
        busy.push(s);
    }
    for _ in 0..2 {
        let kind = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        assert!(matches!(kind, std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut), "{kind:?}");
    }
    let mut s = connect(&d);
    let mut line = String::new();
    BufReader::new(&mut s).read_line(&mut line).unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        error_of(&v),
        (
            "too many clients: rvsd serves 2 at once ([control] max_clients) and each is in the middle of an \
             operation; try again"
                .to_owned(),
            1
        )
    );
    // The stuck clients time out and rvsadm gets through again.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let o = d.run_as(&rvsadm(), "-Ln", None);
        if o.status.success() {
            break;
        }
        assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stderr).contains("too many clients"));
        assert!(Instant::now() < deadline, "{}", String::from_utf8_lossy(&o.stderr));
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(busy);
}

#[test]
fn clients_holding_unfinished_requests_hold_a_bounded_amount_of_memory() {
    let d = Daemon::start_with("max_clients = 64\n");
    let pid = rvsd_pid(&d);
    let start = rss_kib(pid);
    // 12 clients each send 15 MiB without a newline (180 MiB in all). rvsd
    // takes at most its 64 MiB budget; the rest are told to go.
    let chunk = vec![b' '; 1 << 20];
    let mut clients = Vec::new();
    let mut told = 0;
    for _ in 0..12 {
        let mut s = connect(&d);
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(b"{\"version\":1,");
        let mut sent = true;
        for _ in 0..15 {
            if s.write_all(&chunk).is_err() {
                sent = false;
                break;
            }
        }
        if !sent {
            let (m, code) = error_of(&read_reply(&mut s));
            assert_eq!(
                (m.as_str(), code),
                ("closed: rvsd already holds 64 MiB of unfinished requests from its clients; try again", 1)
            );
            told += 1;
        }
        clients.push(s);
    }
    assert!(told >= 12 - 5, "only {told} clients were refused");
    let grown = rss_kib(pid).saturating_sub(start);
    assert!(grown < 100 << 10, "rvsd grew by {grown} KiB");
    assert!(d.ok("-Ln").starts_with("IP Virtual Server"));
    drop(clients);
}
