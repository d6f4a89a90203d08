//! Real-server churn under a stream of short connections, end to end in
//! network namespaces (scripts/topo): a Linux client connects to a NAT service
//! again and again from a few source ports while rs3 is deleted (drained first
//! or not) and added back. A SYN that reuses the port of a finished connection
//! to the deleted rs3 is scheduled afresh (specs/ipvs.md §3.3 before §2.4), so
//! no connect waits for the client's first SYN retransmission (1 s).
mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::director::Director;
use common::{repo_root, wait_with_deadline, Guard, Topo};

const VIP: &str = "10.0.0.100";
const SECONDS: f64 = 6.0;

#[test]
fn connects_never_wait_for_a_syn_retry_while_a_server_is_deleted_and_added() {
    let topo = Topo::up("churn", 3);
    let dir = tempfile::tempdir().unwrap();
    let helper = repo_root().join("tests/helpers/churn.py");
    let _servers: Vec<Guard> = (1..=3)
        .map(|n| {
            Guard(
                topo.cmd(&format!("rs{n}"), "python3")
                    .arg(&helper)
                    .args(["serve", &format!("rs{n}"), "80"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();
    let rs = |n: u8| format!("10.0.2.{}:80", 10 + n);
    let services = format!(
        "[[service]]\nprotocol = \"tcp\"\naddress = \"{VIP}:80\"\nscheduler = \"rr\"\n{}",
        (1..=3)
            .map(|n| format!("[[service.server]]\naddress = \"{}\"\nmethod = \"masq\"\n", rs(n)))
            .collect::<String>()
    );
    let rvsd = Director::start(&topo, dir.path(), 1, 3, &services);
    // Every server answers before the churn starts.
    let warm = Instant::now();
    loop {
        let o = topo
            .cmd("client", "python3")
            .arg(&helper)
            .args(["client", VIP, "80", "10.0.1.2", "45000", "3", "0.2"])
            .output()
            .unwrap();
        let s = String::from_utf8_lossy(&o.stdout);
        if ["rs1", "rs2", "rs3"].iter().all(|n| s.contains(n)) {
            break;
        }
        assert!(warm.elapsed() < Duration::from_secs(20), "servers not answering: {s}\n{}", rvsd.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
    // Eight source ports: each is reused every few milliseconds, so some
    // always hold a finished connection to rs3 when it is deleted.
    let client = topo
        .cmd("client", "python3")
        .arg(&helper)
        .args(["client", VIP, "80", "10.0.1.2", "50000", "8", &SECONDS.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut deletes = 0;
    while started.elapsed() < Duration::from_secs_f64(SECONDS - 1.0) {
        std::thread::sleep(Duration::from_millis(300));
        if deletes % 2 == 1 {
            // Drained first this time (weight 0, then deleted).
            rvsd.rvsadm(&format!("-e -t {VIP}:80 -r {} -m -w 0", rs(3)));
            std::thread::sleep(Duration::from_millis(100));
        }
        rvsd.rvsadm(&format!("-d -t {VIP}:80 -r {}", rs(3)));
        deletes += 1;
        std::thread::sleep(Duration::from_millis(500));
        rvsd.rvsadm(&format!("-a -t {VIP}:80 -r {} -m -w 1", rs(3)));
    }
    let out = wait_with_deadline(client, Duration::from_secs_f64(SECONDS + 30.0), "churn client");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let v: serde_json::Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("client output {text:?}: {e}\n{}", String::from_utf8_lossy(&out.stderr)));
    let connections = v["connections"].as_u64().unwrap();
    let max_connect = v["max_connect"].as_f64().unwrap();
    let summary = format!(
        "{deletes} deletes of rs3; {connections} connections; servers {}; SYN retransmissions {}; \
         retransmitted segments {}; longest connect {max_connect} s, those of 0.5 s or more {}; \
         reads stalled (a connection's server deleted under it) {}; failures {}",
        v["servers"], v["syn_retrans"], v["retrans_segs"], v["slow_connects"], v["stalled_reads"], v["failures"]
    );
    println!("{summary}");
    assert!(deletes >= 4, "{summary}");
    assert!(connections > 100, "too few connections to judge: {summary}\n{}", rvsd.log_text());
    assert!(v["failures"].as_array().unwrap().is_empty(), "{summary}");
    // The client's own count: a SYN retransmitted is a connect that waited
    // for its first retry (1 s), whatever the machine's load.
    assert_eq!(v["syn_retrans"].as_u64(), Some(0), "{summary}");
    assert!(max_connect < 1.0, "{summary}");
    let _ = rvsd.stop();
}
