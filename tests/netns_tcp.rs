//! End to end in network namespaces: a real TCP client (curl) fetches files from
//! a real server (python's http.server) through rvsd on net_af_packet vdevs;
//! the bytes received are compared with the file served. rvsd is then stopped
//! with SIGTERM and must exit 0 having counted the traffic.
mod common;

use std::process::Stdio;

use common::director::Director;
use common::{port_counts, Guard, Topo};

#[test]
fn tcp_through_rvsd_on_af_packet() {
    tcp_through_rvsd(1);
}

/// Two workers, each polling its own queue pair of every port (af_packet fanout
/// spreads the flows), sharing the machine's CPUs.
#[test]
fn tcp_through_rvsd_with_two_workers() {
    tcp_through_rvsd(2);
}

fn tcp_through_rvsd(workers: usize) {
    let topo = Topo::up(&format!("tcp{workers}"), 1);
    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("www");
    std::fs::create_dir(&www).unwrap();
    // 3 MiB of incompressible, position-dependent bytes.
    let blob: Vec<u8> = (0..3u32 << 20).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    std::fs::write(www.join("blob"), &blob).unwrap();

    let _server = Guard(
        topo.cmd("rs1", "python3")
            .args(["-m", "http.server", "8080", "--bind", "10.0.2.11", "--directory"])
            .arg(&www)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let rvsd = Director::start(&topo, dir.path(), workers, 1, "");
    let log_text = rvsd.log_text();
    // The server needs a moment to bind; retry the first request briefly.
    let fetch = |n: usize| {
        let out = dir.path().join(format!("got{n}"));
        let st = topo
            .cmd("client", "curl")
            .args(["-sS", "--max-time", "20", "--retry", "5", "--retry-connrefused", "--retry-delay", "1", "-o"])
            .arg(&out)
            .arg("http://10.0.2.11:8080/blob")
            .status()
            .unwrap();
        assert!(st.success(), "curl {n} failed");
        std::fs::read(&out).unwrap()
    };
    if workers > 1 {
        assert!(log_text.contains(&format!("{workers} rx / {workers} tx queue(s)")), "{log_text}");
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        if cpus < workers + 1 {
            let note = format!("rvsd: {} lcores share {cpus} CPU(s)", workers + 1);
            assert_eq!(log_text.matches(&note).count(), 1, "{log_text}");
        }
    }
    for n in 0..3 {
        let got = fetch(n);
        assert_eq!(got.len(), blob.len(), "transfer {n}: length");
        assert!(got == blob, "transfer {n}: content differs");
    }

    // SIGTERM: clean shutdown, exit 0, counters printed.
    let stdout = rvsd.stop();
    // 9 MiB went server -> client: at least that many bytes left on the client port.
    let [c_rx, _, _, c_tx_bytes] = port_counts(&stdout, "client");
    let [s_rx, s_rx_bytes, _, _] = port_counts(&stdout, "servers");
    assert!(c_tx_bytes >= 9 << 20, "client port tx bytes {c_tx_bytes}\n{stdout}");
    assert!(s_rx_bytes >= 9 << 20, "servers port rx bytes {s_rx_bytes}\n{stdout}");
    assert!(c_rx > 100 && s_rx > 1000, "{stdout}");
}
