//! Live changes without loss: TCP downloads keep running through rvsd (NAT)
//! while hundreds of service and server changes are applied over the control
//! socket; every download must complete with the exact bytes served.
mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::director::Director;
use common::{wait_with_deadline, Guard, Topo};
use conf::{Method, Protocol, ServiceAddr};
use ctl::api::{DestSpec, Op, Request, Response, ServiceSpec};

fn request(socket: &Path, op: Op) -> Response {
    let mut s = UnixStream::connect(socket).expect("connect to rvsd");
    let mut line = serde_json::to_string(&Request::new(op)).unwrap();
    line.push('\n');
    s.write_all(line.as_bytes()).unwrap();
    let mut reply = String::new();
    BufReader::new(s).read_line(&mut reply).unwrap();
    serde_json::from_str(&reply).unwrap()
}

fn key(port: u16) -> ServiceAddr {
    ServiceAddr::Addr { protocol: Protocol::Tcp, vip: Ipv4Addr::new(10, 0, 0, 100), port }
}

fn dest(n: u8, weight: u16) -> DestSpec {
    DestSpec {
        addr: Ipv4Addr::new(10, 0, 2, 10 + n),
        port: 80,
        method: Method::Masq,
        weight,
        u_threshold: 0,
        l_threshold: 0,
    }
}

#[test]
fn established_streams_survive_hundreds_of_changes() {
    let topo = Topo::up("live", 2);
    let dir = tempfile::tempdir().unwrap();
    let blob: Vec<u8> = (0..2u32 << 20).map(|i| (i.wrapping_mul(2654435761) >> 11) as u8).collect();
    let mut servers = Vec::new();
    for n in 1..=2 {
        let www = dir.path().join(format!("rs{n}"));
        std::fs::create_dir(&www).unwrap();
        std::fs::write(www.join("blob"), &blob).unwrap();
        servers.push(Guard(
            topo.cmd(&format!("rs{n}"), "python3")
                .args(["-m", "http.server", "80", "--directory"])
                .arg(&www)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        ));
    }
    let services = "[[service]]\nprotocol = \"tcp\"\naddress = \"10.0.0.100:80\"\nscheduler = \"rr\"\n\
                    [[service.server]]\naddress = \"10.0.2.11:80\"\nmethod = \"masq\"\n\
                    [[service.server]]\naddress = \"10.0.2.12:80\"\nmethod = \"masq\"\n";
    let rvsd = Director::start(&topo, dir.path(), 1, 2, services);
    let sock = rvsd.socket.clone();
    // Four slow downloads (about 4 s each) through the VIP.
    let downloads: Vec<(std::process::Child, std::path::PathBuf)> = (0..4)
        .map(|i| {
            let out = dir.path().join(format!("got{i}"));
            let child = topo
                .cmd("client", "curl")
                .args(["-sS", "--max-time", "60", "--limit-rate", "512K", "--retry", "5", "--retry-connrefused", "-o"])
                .arg(&out)
                .arg("http://10.0.0.100/blob")
                .spawn()
                .unwrap();
            (child, out)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(800));

    // Hundreds of changes while they run: a second service comes and goes with
    // its servers, the first one's weights and scheduler change, a server is
    // added and removed, timeouts are set.
    let mut applied = 0;
    for round in 0..60u32 {
        let svc2 = ServiceSpec {
            key: key(8080),
            scheduler: "wlc".into(),
            persistent: (round % 2 == 0).then_some(60),
            netmask: Ipv4Addr::BROADCAST,
            flags: vec![],
            ops: false,
        };
        let ops = vec![
            Op::AddService(svc2.clone()),
            Op::AddDest { service: key(8080), dest: dest(1, 1) },
            Op::AddDest { service: key(8080), dest: dest(2, 3) },
            Op::EditDest { service: key(80), dest: dest(1, (round % 3) as u16) },
            Op::EditDest { service: key(80), dest: dest(2, (1 + round % 5) as u16) },
            Op::AddDest { service: key(80), dest: dest(3, 0) },
            Op::DelDest { service: key(80), addr: Ipv4Addr::new(10, 0, 2, 13), port: 80 },
            Op::EditService(ServiceSpec { scheduler: if round % 2 == 0 { "wrr" } else { "rr" }.into(), ..svc2 }),
            Op::SetTimeouts { tcp: 900 + round, tcpfin: 0, udp: 0 },
            Op::DelService(key(8080)),
        ];
        for op in ops {
            let r = request(&sock, op.clone());
            assert_eq!(r, Response::Ok, "{op:?}");
            applied += 1;
        }
    }
    assert!(applied >= 600);
    for (i, (child, out)) in downloads.into_iter().enumerate() {
        let st = wait_with_deadline(child, Duration::from_secs(60), "curl").status;
        assert!(st.success(), "download {i} failed\n{}", rvsd.log_text());
        let got = std::fs::read(&out).unwrap();
        assert!(got == blob, "download {i}: {} bytes, content differs", got.len());
    }
    let text = rvsd.stop();
    assert!(!Path::new(&sock).exists(), "socket removed on exit");
    assert!(text.contains("conns created 4"), "{text}");
}
