//! rvsadm's command line and output against ipvsadm's (specs/ipvs.md §6):
//! the operator's command lines parse to the right requests, usage errors
//! carry ipvsadm's messages and exit codes, and replies print byte for byte
//! as the §6.2/§6.3 examples (trailing spaces included: `|` marks line ends
//! in the expected texts below).
use std::net::Ipv4Addr;

use conf::{Method, Protocol, ServiceAddr};
use ctl::api::{
    DaemonInfo, DaemonSpec, DestInfo, DestSpec, ListWhat, NeighborInfo, Op, PortInfo, Request, Response, ServiceInfo,
    ServiceSpec, Stats,
};
use ctl::cli::{self, Command, Outcome, View};
use dataplane::conn::dump::ConnDump;

fn argv(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_owned).collect()
}

/// The command `line` (argv[0] included) parses to.
fn command(line: &str) -> Command {
    match cli::parse(&argv(line)) {
        Ok(inv) => inv.command,
        Err(e) => panic!("{line}: {e:?}"),
    }
}

fn op(line: &str) -> Op {
    match command(line) {
        Command::Send { request, .. } => request.op,
        other => panic!("{line}: {other:?}"),
    }
}

/// The message and exit code `line` fails with.
fn err(line: &str) -> (String, i32) {
    match cli::parse(&argv(line)) {
        Err(e) => (e.message, e.exit_code),
        Ok(inv) => panic!("{line}: unexpectedly parsed: {inv:?}"),
    }
}

fn fail2(msg: &str) -> (String, i32) {
    (msg.to_owned(), 2)
}

/// `text` with its `|` end-of-line markers removed.
fn unmark(text: &str) -> String {
    text.replace("|\n", "\n")
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn tcp(vip: &str, port: u16) -> ServiceAddr {
    ServiceAddr::Addr { protocol: Protocol::Tcp, vip: ip(vip), port }
}

fn spec(key: ServiceAddr, scheduler: &str) -> ServiceSpec {
    ServiceSpec {
        key,
        scheduler: scheduler.into(),
        persistent: None,
        netmask: Ipv4Addr::BROADCAST,
        flags: vec![],
        ops: false,
    }
}

fn dest(addr: &str, port: u16, method: Method, weight: u16) -> DestSpec {
    DestSpec { addr: ip(addr), port, method, weight, u_threshold: 0, l_threshold: 0 }
}

fn dinfo(d: DestSpec, active: u32, inact: u32) -> DestInfo {
    DestInfo { spec: d, activeconns: active, inactconns: inact, persistconns: 0, stats: Stats::default() }
}

fn svc(spec: ServiceSpec, dests: Vec<DestInfo>) -> ServiceInfo {
    ServiceInfo { spec, dests, stats: Stats::default() }
}

/// What `line` prints for `resp`.
fn out(line: &str, resp: &Response) -> String {
    let o = cli::outcome(&command(line), resp);
    assert_eq!((o.stderr.as_str(), o.exit_code), ("", 0), "{line}");
    o.stdout
}

// ---- the operators' command lines (operator-scenarios.md) ----

#[test]
fn issue_lines_parse() {
    assert_eq!(
        op("ipvsadm -A -t 192.168.7.250:80 -s rr -p 60"),
        Op::AddService(ServiceSpec { persistent: Some(60), ..spec(tcp("192.168.7.250", 80), "rr") })
    );
    assert_eq!(
        op("ipvsadm -e -t 172.16.0.113:2100 -r 172.16.0.114:2100 -w 0"),
        Op::EditDest { service: tcp("172.16.0.113", 2100), dest: dest("172.16.0.114", 2100, Method::Route, 0) }
    );
    assert_eq!(
        op("ipvsadm -A -f 10 -s wrr -p"),
        Op::AddService(ServiceSpec { persistent: Some(360), ..spec(ServiceAddr::Fwmark(10), "wrr") })
    );
    assert_eq!(op("ipvsadm --set 28800 30 300"), Op::SetTimeouts { tcp: 28800, tcpfin: 30, udp: 300 });
    assert_eq!(
        command("ipvsadm -Lnc"),
        Command::Send {
            request: Request::new(Op::List { what: ListWhat::Conns, service: None }),
            view: View::Conns { persistent_conn: false },
            json: false,
        }
    );
    assert_eq!(op("ipvsadm -lnc"), op("ipvsadm -L -n -c"));
    assert_eq!(op("ipvsadm -A -t 10.0.0.1:0 -p"), op("ipvsadm -A -t 10.0.0.1 --persistent"));
    match op("ipvsadm -A -t 10.0.0.1:80 -p 60 -M 255.255.255.0") {
        Op::AddService(s) => assert_eq!(s.netmask, ip("255.255.255.0")),
        o => panic!("{o:?}"),
    }
}

#[test]
fn no_arguments_lists_like_dash_l() {
    assert_eq!(command("rvsadm"), command("rvsadm -L"));
    match command("rvsadm -Ln") {
        Command::Send { request, view: View::Services { one_service: false, format }, json: false } => {
            assert_eq!(request.op, Op::List { what: ListWhat::Services, service: None });
            assert!(format.numeric);
        }
        c => panic!("{c:?}"),
    }
    match command("rvsadm -L -n -t 10.0.0.1:80 --stats --exact") {
        Command::Send { request, view: View::Services { one_service: true, format }, .. } => {
            assert_eq!(request.op, Op::List { what: ListWhat::Services, service: Some(tcp("10.0.0.1", 80)) });
            assert!(format.stats && format.exact);
        }
        c => panic!("{c:?}"),
    }
    assert_eq!(op("rvsadm -L --timeout"), Op::List { what: ListWhat::Timeouts, service: None });
    assert_eq!(op("rvsadm -L --daemon"), Op::List { what: ListWhat::Daemons, service: None });
    assert!(matches!(command("rvsadm -S -n"), Command::Send { view: View::Save, .. }));
    assert_eq!(command("rvsadm -h"), Command::Help);
    assert_eq!(command("rvsadm --version"), Command::Version);
    assert_eq!(command("rvsadm -R"), Command::Restore { json: false });
}

#[test]
fn full_replacement_defaults() {
    // -E without -s/-p/-M/-b/-o resets them (specs/ipvs.md §6.1).
    assert_eq!(op("ipvsadm -E -t 10.0.0.1:80"), Op::EditService(spec(tcp("10.0.0.1", 80), "wlc")));
    // -e without -w/-x/-y/method resets them to 1/0/0/-g.
    assert_eq!(
        op("ipvsadm -e -t 10.0.0.1:80 -r 10.0.0.2"),
        Op::EditDest { service: tcp("10.0.0.1", 80), dest: dest("10.0.0.2", 80, Method::Route, 1) }
    );
    assert_eq!(
        op("ipvsadm -a -t 10.0.0.1:80 -r 10.0.0.2:8080 -m -w 3 -x 100 -y 50"),
        Op::AddDest {
            service: tcp("10.0.0.1", 80),
            dest: DestSpec { u_threshold: 100, l_threshold: 50, ..dest("10.0.0.2", 8080, Method::Masq, 3) }
        }
    );
    // DR and TUN servers of address services take the service port.
    for m in ["-g", "-i", ""] {
        match op(&format!("ipvsadm -a -t 10.0.0.1:80 -r 10.0.0.2:8080 {m}")) {
            Op::AddDest { dest, .. } => assert_eq!(dest.port, 80, "{m}"),
            o => panic!("{o:?}"),
        }
    }
    // Not on fwmark services.
    match op("ipvsadm -a -f 1 -r 10.0.0.2:8080 -i --tun-type ipip") {
        Op::AddDest { service, dest } => {
            assert_eq!((service, dest.port, dest.method), (ServiceAddr::Fwmark(1), 8080, Method::Tunnel))
        }
        o => panic!("{o:?}"),
    }
    assert_eq!(
        op("ipvsadm -d -t 10.0.0.1:80 -r 10.0.0.2"),
        Op::DelDest { service: tcp("10.0.0.1", 80), addr: ip("10.0.0.2"), port: 80 }
    );
    assert_eq!(
        op("ipvsadm -D -u 10.0.0.1:53"),
        Op::DelService(ServiceAddr::Addr { protocol: Protocol::Udp, vip: ip("10.0.0.1"), port: 53 })
    );
    assert_eq!(op("ipvsadm -C"), Op::Clear);
    assert_eq!(op("ipvsadm -Z"), Op::Zero(None));
    assert_eq!(op("ipvsadm -Z -t 10.0.0.1:80"), Op::Zero(Some(tcp("10.0.0.1", 80))));
    match op("ipvsadm -A -f 1 -s sh -b sh-port,flag-1 -o") {
        Op::AddService(s) => {
            assert_eq!(s.flags, vec!["sh-fallback".to_owned(), "sh-port".to_owned()]);
            assert!(s.ops);
        }
        o => panic!("{o:?}"),
    }
}

#[test]
fn sync_daemon_options() {
    assert_eq!(
        op("ipvsadm --start-daemon master --mcast-interface eth1 --syncid 5 --mcast-group 224.0.0.82 \
            --mcast-port 8849 --mcast-ttl 2 --sync-maxlen 1400"),
        Op::StartDaemon(DaemonSpec {
            state: "master".into(),
            mcast_interface: "eth1".into(),
            syncid: 5,
            mcast_group: Some(ip("224.0.0.82")),
            mcast_port: Some(8849),
            mcast_ttl: Some(2),
            sync_maxlen: Some(1400),
        })
    );
    assert_eq!(
        op("ipvsadm --start-daemon=backup --mcast-interface=eth1"),
        Op::StartDaemon(DaemonSpec {
            state: "backup".into(),
            mcast_interface: "eth1".into(),
            syncid: 0,
            mcast_group: None,
            mcast_port: None,
            mcast_ttl: None,
            sync_maxlen: None,
        })
    );
    match op("ipvsadm --start-daemon master") {
        Op::StartDaemon(d) => assert_eq!(d.mcast_interface, "eth0"),
        o => panic!("{o:?}"),
    }
    assert_eq!(op("ipvsadm --stop-daemon backup"), Op::StopDaemon { state: "backup".into() });
    assert_eq!(err("ipvsadm --start-daemon primary"), fail2("illegal start-daemon parameter specified"));
    assert_eq!(err("ipvsadm --stop-daemon x"), fail2("illegal start_daemon specified"));
    assert_eq!(err("ipvsadm --start-daemon master --syncid 256"), fail2("illegal syncid specified"));
    assert_eq!(
        err("ipvsadm --start-daemon master --mcast-group 10.0.0.1"),
        fail2("invalid IPv4 mcast-group `10.0.0.1'")
    );
    assert_eq!(
        err("ipvsadm --stop-daemon master --mcast-interface eth1"),
        fail2("Illegal 'mcast-interface' option with the 'stop-daemon' command")
    );
}

#[test]
fn rvs_subcommands_and_extras() {
    assert_eq!(op("rvsadm config check"), Op::ConfigCheck);
    assert_eq!(op("rvsadm config reload"), Op::ConfigReload);
    assert_eq!(op("rvsadm config show --json"), Op::ConfigShow);
    assert_eq!(op("rvsadm ports"), Op::Ports);
    assert_eq!(op("rvsadm neigh"), Op::Neighbors);
    assert_eq!(err("rvsadm config"), fail2("usage: rvsadm config check|reload|show"));
    assert_eq!(err("rvsadm ports now"), fail2("rvsadm ports: unexpected argument now"));
    let inv = cli::parse(&argv("rvsadm -Ln --socket /tmp/rvs.sock --json")).unwrap();
    assert_eq!(inv.socket.as_deref(), Some(std::path::Path::new("/tmp/rvs.sock")));
    assert!(matches!(inv.command, Command::Send { json: true, .. }));
}

// ---- usage errors: ipvsadm's texts and exit codes ----

#[test]
fn usage_errors() {
    let cases: &[(&str, &str, i32)] = &[
        ("ipvsadm -A -t 10.0.0.1", "Zero port specified for non-persistent service", 2),
        ("ipvsadm -E -t 10.0.0.1:0 -s rr", "Zero port specified for non-persistent service", 2),
        ("ipvsadm -A -t 10.0.0.1:53 -o", "One-Packet Scheduling is only for UDP virtual services", 2),
        ("ipvsadm -L -c --stats", "options conflicts in the list command", 2),
        ("ipvsadm -L --timeout --rate", "options conflicts in the list command", 2),
        ("ipvsadm -L --daemon --persistent-conn", "options conflicts in the list command", 2),
        (
            "ipvsadm -L -c -t 10.0.0.1:80",
            "The option 'service-address' conflicts with the 'connection' option in the 'list' command",
            2,
        ),
        (
            "ipvsadm -L --timeout --daemon",
            "The option 'daemon' conflicts with the 'timeout' option in the 'list' command",
            2,
        ),
        ("ipvsadm -A -t 10.0.0.1:80 -w 2", "Illegal 'weight' option with the 'add-service' command", 2),
        ("ipvsadm -A -t 10.0.0.1:80 -n", "Illegal 'numeric' option with the 'add-service' command", 2),
        ("ipvsadm -S -c", "Illegal 'connection' option with the 'save' command", 2),
        ("ipvsadm -C -t 10.0.0.1:80", "Illegal 'service-address' option with the 'flush' command", 2),
        ("ipvsadm -a -t 10.0.0.1:80", "You need to supply the 'real-server' option for the 'add-server' command", 2),
        ("ipvsadm -A -s rr", "You need to supply the 'service-address' option for the 'add-service' command", 2),
        ("ipvsadm -A -t 10.0.0.1:80 -s rr -s wlc", "multiple 'scheduler' options specified", 2),
        ("ipvsadm -a -t 10.0.0.1:80 -r 10.0.0.2 -m -g", "multiple 'forwarding-method' options specified", 2),
        ("ipvsadm -A -a -t 10.0.0.1:80", "invalid option `-a'", 2),
        ("ipvsadm -a -t 10.0.0.1:80 -r 10.0.0.2 --tun-type ipip", "Tunnel options conflict with forward method", 2),
        (
            "ipvsadm -a -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-port 6080",
            "Illegal 'tun-port' option with the 'ipip' tunnel type",
            2,
        ),
        ("ipvsadm -a -t 10.0.0.1:80 -r 10.0.0.2 -w 65536", "illegal weight specified", 2),
        ("ipvsadm -a -t 10.0.0.1:80 -r 10.0.0.2 -x -1", "illegal u_threshold specified", 2),
        ("ipvsadm -a -t 10.0.0.1:80 -r 10.0.0.2 -y 2147483648", "illegal l_threshold specified", 2),
        ("ipvsadm -A -t 10.0.0.1:80 -p 0", "invalid timeout value `0' specified", 2),
        ("ipvsadm -A -t 10.0.0.1:80 -p 2678401", "invalid timeout value `2678401' specified", 2),
        ("ipvsadm -A -f 0", "invalid fwmark value `0' specified", 2),
        ("ipvsadm -A -t 10.0.0.1:80 -p -M 255.0.0", "illegal virtual server persistent mask specified", 2),
        ("ipvsadm -A -t 10.0.0.1:80 -b sh-port", "incompatible scheduler flag `sh-port'", 2),
        ("ipvsadm -A -t 10.0.0.1:80 -s sh -b nope", "invalid scheduler flag `nope'", 2),
        ("ipvsadm --set 1 2", "--set option requires 3 timeout values", 2),
        ("ipvsadm --set 1 2 2678401", "invalid timeout value `2678401' specified", 2),
        ("ipvsadm --set 1 2 3 4", "unexpected argument 4", 2),
        ("ipvsadm -L 10.0.0.1:80", "unexpected argument 10.0.0.1:80", 2),
        ("ipvsadm -A -t 10.0.0.1:80 -6", "-6 used before -f\n", 2),
        ("ipvsadm -L --bogus", "--bogus: unknown option", 255),
        ("ipvsadm -A -t", "-t: missing argument", 255),
        ("ipvsadm -t 10.0.0.1:80 -A", "Try `ipvsadm -h' or 'ipvsadm --help' for more information.", 255),
        ("ipvsadm --bogus", "Try `ipvsadm -h' or 'ipvsadm --help' for more information.", 255),
        ("rvsadm -Q", "Try `rvsadm -h' or 'rvsadm --help' for more information.", 255),
    ];
    for &(line, message, code) in cases {
        assert_eq!(err(line), (message.to_owned(), code), "{line}");
    }
    // Names are refused with ipvsadm's message and the reason.
    assert_eq!(
        err("ipvsadm -A -t www.example.com:80").0,
        "illegal virtual server address[:port] specified: \"www.example.com:80\" names a host; rvs accepts only \
         numeric IPv4 addresses (the appliance does no DNS)"
    );
    assert_eq!(
        err("ipvsadm -a -t 10.0.0.1:80 -r 10.0.0.2:http").0,
        "illegal real server address[:port] specified: \"10.0.0.2:http\" names a port; rvs accepts only numeric \
         ports (no service-name lookups)"
    );
    assert_eq!(
        err("ipvsadm -A -t [2001:db8::1]:80").0,
        "illegal virtual server address[:port] specified: \"[2001:db8::1]:80\" is IPv6; rvs supports IPv4 only"
    );
}

// ---- -R ----

#[test]
fn restore_reads_every_line_or_nothing() {
    let text = "-A -t 10.0.0.1:80 -s rr\n\
                ipvsadm -a -t 10.0.0.1:80 -r 10.0.2.1 -m\n\
                \n\
                \t  \n\
                -a\t-t 10.0.0.1:80   -r 10.0.2.2:80 -g -w 3\r\n\
                --set 0 0 120\n";
    let req = cli::restore("ipvsadm", text).unwrap();
    assert_eq!(
        req.op,
        Op::Batch(vec![
            Op::AddService(spec(tcp("10.0.0.1", 80), "rr")),
            Op::AddDest { service: tcp("10.0.0.1", 80), dest: dest("10.0.2.1", 80, Method::Masq, 1) },
            Op::AddDest { service: tcp("10.0.0.1", 80), dest: dest("10.0.2.2", 80, Method::Route, 3) },
            Op::SetTimeouts { tcp: 0, tcpfin: 0, udp: 120 },
        ])
    );
    let bad = "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.2.1 -w 70000\n-A -t 10.0.0.2:80\n";
    let e = cli::restore("ipvsadm", bad).unwrap_err();
    assert_eq!((e.message.as_str(), e.exit_code), ("illegal weight specified", 2));
    // ipvsadm -R does not skip comments: a '#' line is not a command.
    let e = cli::restore("ipvsadm", "# saved\n-C\n").unwrap_err();
    assert_eq!((e.message.as_str(), e.exit_code), ("Try `ipvsadm -h' or 'ipvsadm --help' for more information.", 255));
    assert_eq!(cli::restore("ipvsadm", "").unwrap().op, Op::Batch(vec![]));
    assert_eq!(cli::restore("ipvsadm", "-R\n").unwrap_err().exit_code, 255);
    assert_eq!(cli::restore("ipvsadm", "-L -n\n").unwrap_err().exit_code, 2);
}

// ---- output (specs/ipvs.md §6.2, §6.3) ----

/// The §6.2 table, given in IPVS order (fwmark first, newest server first)
/// so the sort is exercised.
fn example_table() -> Response {
    Response::Services {
        conn_tab_size: 4096,
        services: vec![
            svc(
                ServiceSpec {
                    flags: vec!["sh-fallback".into(), "sh-port".into()],
                    ..spec(ServiceAddr::Fwmark(1), "sh")
                },
                vec![dinfo(dest("192.168.10.1", 0, Method::Tunnel, 1), 0, 0)],
            ),
            svc(
                ServiceSpec { persistent: Some(360), netmask: ip("255.255.255.0"), ..spec(tcp("10.0.0.1", 443), "rr") },
                vec![dinfo(dest("192.168.10.1", 443, Method::Route, 1), 0, 0)],
            ),
            svc(
                spec(tcp("10.0.0.1", 80), "wlc"),
                vec![
                    dinfo(dest("192.168.10.2", 80, Method::Masq, 0), 3, 7),
                    dinfo(dest("192.168.10.1", 80, Method::Masq, 1), 12, 40),
                ],
            ),
        ],
    }
}

#[test]
fn list_numeric_matches_the_spec_example() {
    let expected = "IP Virtual Server version 1.2.1 (size=4096)|
Prot LocalAddress:Port Scheduler Flags|
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn|
TCP  10.0.0.1:80 wlc|
  -> 192.168.10.1:80              Masq    1      12         40        |
  -> 192.168.10.2:80              Masq    0      3          7         |
TCP  10.0.0.1:443 rr persistent 360 mask 255.255.255.0|
  -> 192.168.10.1:443             Route   1      0          0         |
FWM  1 sh (sh-fallback,sh-port)|
";
    let mut expected = unmark(expected);
    expected.push_str("  -> 192.168.10.1:0               Tunnel  1      0          0         \n");
    assert_eq!(out("ipvsadm -Ln", &example_table()), expected);
    // Names are never resolved: -L prints the same.
    assert_eq!(out("ipvsadm -L", &example_table()), expected);
    assert_eq!(out("ipvsadm", &example_table()), expected);
}

#[test]
fn nosort_keeps_the_daemon_order() {
    let text = out("ipvsadm -Ln --nosort", &example_table());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[3], "FWM  1 sh (sh-fallback,sh-port)");
    assert_eq!(lines[7], "TCP  10.0.0.1:80 wlc");
    assert!(lines[8].starts_with("  -> 192.168.10.2:80"));
}

#[test]
fn tun_info_and_ops_and_one_service() {
    let resp = Response::Services {
        conn_tab_size: 65536,
        services: vec![svc(
            ServiceSpec { ops: true, persistent: Some(60), ..spec(ServiceAddr::Fwmark(7), "rr") },
            vec![
                dinfo(dest("10.0.2.1", 0, Method::Tunnel, 2), 1, 2),
                dinfo(dest("10.0.2.2", 0, Method::Route, 3), 0, 0),
            ],
        )],
    };
    assert_eq!(
        out("ipvsadm -Ln --tun-info -f 7", &resp),
        unmark(
            "Prot LocalAddress:Port Scheduler Flags|
  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn|
FWM  7 rr persistent 60 ops|
  -> 10.0.2.1:0                   Tunnel  ipip          2      1          2         |
  -> 10.0.2.2:0                   Route   n/a           3      0          0         |
"
        )
    );
}

fn stats(v: [u64; 10]) -> Stats {
    Stats {
        conns: v[0],
        inpkts: v[1],
        outpkts: v[2],
        inbytes: v[3],
        outbytes: v[4],
        cps: v[5],
        inpps: v[6],
        outpps: v[7],
        inbps: v[8],
        outbps: v[9],
    }
}

fn counted() -> Response {
    let mut d =
        dinfo(DestSpec { u_threshold: 100, l_threshold: 50, ..dest("192.168.10.1", 80, Method::Masq, 1) }, 12, 40);
    d.stats = stats([617, 28400, 25600, 2283945, 61728000, 1, 22, 20, 2560, 40000]);
    d.persistconns = 5;
    let mut s = svc(spec(tcp("10.0.0.1", 80), "wlc"), vec![d]);
    s.stats = stats([1234, 56789, 51234, 4567890, 123456789, 3, 45, 40, 5120, 80000]);
    Response::Services { conn_tab_size: 4096, services: vec![s] }
}

#[test]
fn stats_and_rate_match_the_spec_example() {
    // §6.2's example, for one service (no version line). Its server line
    // shows "61728K", which print_largenum cannot produce (61728xxx is
    // below 10^8); 61728000 prints in full.
    assert_eq!(
        out("ipvsadm -Ln --stats -t 10.0.0.1:80", &counted()),
        "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  10.0.0.1:80                      1234    56789    51234  4567890  123456K
  -> 192.168.10.1:80                   617    28400    25600  2283945 61728000
"
    );
    assert_eq!(
        out("ipvsadm -Ln --rate", &counted()),
        "IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS
  -> RemoteAddress:Port
TCP  10.0.0.1:80                         3       45       40     5120    80000
  -> 192.168.10.1:80                     1       22       20     2560    40000
"
    );
    assert_eq!(
        out("ipvsadm -Ln --stats --exact -t 10.0.0.1:80", &counted()),
        "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  10.0.0.1:80                      1234    56789    51234  4567890 123456789
  -> 192.168.10.1:80                   617    28400    25600  2283945 61728000
"
    );
}

#[test]
fn largenum_boundaries_in_a_listing() {
    let mut s = svc(spec(tcp("10.0.0.1", 80), "wlc"), vec![]);
    s.stats = stats([99_999_999, 100_000_000, 1_000_000_000, 100_000_000_000, 100_000_000_000_000, 0, 0, 0, 0, 0]);
    let resp = Response::Services { conn_tab_size: 4096, services: vec![s] };
    let text = out("ipvsadm -Ln --stats -t 10.0.0.1:80", &resp);
    assert_eq!(
        text.lines().nth(2).unwrap(),
        "TCP  10.0.0.1:80                  99999999  100000K    1000M     100G     100T"
    );
    assert_eq!(cli::largenum(99_999_999, false), " 99999999");
    assert_eq!(cli::largenum(100_000_000, false), "  100000K");
}

#[test]
fn thresholds_and_persistent_conn_keep_printf_padding() {
    // ipvsadm pads the last columns with %-10s/%-10u: trailing spaces.
    assert_eq!(
        out("ipvsadm -Ln --thresholds", &counted()),
        unmark(
            "IP Virtual Server version 1.2.1 (size=4096)|
Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn |
  -> RemoteAddress:Port|
TCP  10.0.0.1:80 wlc|
  -> 192.168.10.1:80              100        50         12         40        |
"
        )
    );
    assert_eq!(
        out("ipvsadm -Ln --persistent-conn", &counted()),
        unmark(
            "IP Virtual Server version 1.2.1 (size=4096)|
Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn |
  -> RemoteAddress:Port|
TCP  10.0.0.1:80 wlc|
  -> 192.168.10.1:80              1         5           12         40        |
"
        )
    );
}

#[test]
fn connections_match_the_spec_example() {
    let conn = |protocol, expires, state, c: (&str, u16), v: (&str, u16), d: (&str, u16)| ConnDump {
        protocol,
        expires,
        state,
        caddr: ip(c.0),
        cport: c.1,
        vaddr: ip(v.0),
        vport: v.1,
        daddr: ip(d.0),
        dport: d.1,
    };
    let resp = Response::Conns(vec![
        conn("TCP", 896, "ESTABLISHED", ("203.0.113.5", 51234), ("10.0.0.1", 80), ("192.168.10.1", 80)),
        conn("UDP", 299, "UDP", ("203.0.113.9", 5353), ("10.0.0.1", 53), ("192.168.10.3", 53)),
        conn("TCP", 359, "ASSURED", ("203.0.113.0", 0), ("10.0.0.1", 443), ("192.168.10.1", 443)),
        conn("IP", 357, "NONE", ("203.0.113.5", 0), ("0.0.0.1", 0), ("192.168.10.1", 0)),
    ]);
    assert_eq!(
        out("ipvsadm -Lnc", &resp),
        "IPVS connection entries
pro expire state       source             virtual            destination
TCP 14:56  ESTABLISHED 203.0.113.5:51234  10.0.0.1:80        192.168.10.1:80
UDP 04:59  UDP         203.0.113.9:5353   10.0.0.1:53        192.168.10.3:53
TCP 05:59  ASSURED     203.0.113.0:0      10.0.0.1:443       192.168.10.1:443
IP  05:57  NONE        203.0.113.5:0      0.0.0.1:0          192.168.10.1:0
"
    );
    assert_eq!(
        out("ipvsadm -Lnc --persistent-conn", &Response::Conns(vec![])),
        "IPVS connection entries
pro expire state       source             virtual            destination        pe name          pe_data
"
    );
}

#[test]
fn timeouts_and_daemons() {
    assert_eq!(
        out("ipvsadm -L --timeout", &Response::Timeouts { tcp: 900, tcpfin: 120, udp: 300 }),
        "Timeout (tcp tcpfin udp): 900 120 300\n"
    );
    let d = |state: &str, full: bool| DaemonInfo {
        spec: DaemonSpec {
            state: state.into(),
            mcast_interface: "eth0".into(),
            syncid: 0,
            mcast_group: full.then(|| ip("224.0.0.81")),
            mcast_port: full.then_some(8848),
            mcast_ttl: full.then_some(1),
            sync_maxlen: full.then_some(1472),
        },
    };
    assert_eq!(
        out("ipvsadm -L --daemon", &Response::Daemons(vec![d("backup", false), d("master", true)])),
        "master sync daemon (mcast=eth0, syncid=0, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)
backup sync daemon (mcast=eth0, syncid=0)
"
    );
    assert_eq!(out("ipvsadm -L --daemon", &Response::Daemons(vec![])), "");
}

#[test]
fn save_matches_the_spec_example() {
    // §6.3's example less the GUE server (rvs tunnels with IPIP only).
    let mut resp = example_table();
    if let Response::Services { services, .. } = &mut resp {
        services.push(svc(
            ServiceSpec {
                ops: true,
                ..spec(ServiceAddr::Addr { protocol: Protocol::Udp, vip: ip("10.0.0.1"), port: 53 }, "rr")
            },
            vec![],
        ));
        // Thresholds are not saved; weights are.
        services[2].dests[1].spec.u_threshold = 10;
        services[2].dests[0].spec.weight = 1;
    }
    assert_eq!(
        out("ipvsadm -S -n", &resp),
        "-A -t 10.0.0.1:80 -s wlc
-a -t 10.0.0.1:80 -r 192.168.10.1:80 -m -w 1
-a -t 10.0.0.1:80 -r 192.168.10.2:80 -m -w 1
-A -t 10.0.0.1:443 -s rr -p 360 -M 255.255.255.0
-a -t 10.0.0.1:443 -r 192.168.10.1:443 -g -w 1
-A -u 10.0.0.1:53 -s rr -o
-A -f 1 -s sh -b sh-fallback,sh-port
-a -f 1 -r 192.168.10.1:0 -i -w 1 --tun-type ipip
"
    );
    // What -S writes, -R reads back to the same table.
    let saved = out("ipvsadm -S", &resp);
    match cli::restore("ipvsadm", &saved).unwrap().op {
        Op::Batch(ops) => assert_eq!(ops.len(), 8),
        o => panic!("{o:?}"),
    }
}

#[test]
fn errors_json_and_extras() {
    let o = cli::outcome(
        &command("ipvsadm -L -t 10.0.0.9:80"),
        &Response::Error { message: "No such service".into(), exit_code: 1 },
    );
    assert_eq!(o, Outcome { stdout: String::new(), stderr: "No such service\n".into(), exit_code: 1 });
    assert_eq!(out("ipvsadm -A -t 10.0.0.1:80", &Response::Ok), "");
    let text = out("rvsadm -Ln --json", &example_table());
    assert_eq!(serde_json::from_str::<Response>(&text).unwrap(), example_table());
    assert!(text.contains("\n  "), "pretty JSON");
    assert_eq!(out("rvsadm config show", &Response::Text("[dataplane]".into())), "[dataplane]\n");
    // A reply of the wrong kind is reported, not printed.
    let o = cli::outcome(&command("ipvsadm -Ln"), &Response::Timeouts { tcp: 1, tcpfin: 2, udp: 3 });
    assert_eq!(o.exit_code, 1);
    assert!(o.stderr.starts_with("unexpected reply from rvsd"));

    let ports = Response::Ports {
        ports: vec![PortInfo {
            name: "wan".into(),
            device: "0000:3b:00.0".into(),
            mac: "02:00:00:00:00:01".into(),
            rx_packets: 1234567,
            rx_bytes: 98765432,
            tx_packets: 1200000,
            tx_bytes: 97000000,
            imissed: 3,
            ierrors: 0,
            oerrors: 0,
            rx_nombuf: 0,
        }],
        drops: vec![("no_service".into(), 42), ("bad_checksum".into(), 7)],
        exception: vec![("arp_received".into(), 5), ("to_kernel".into(), 12)],
    };
    assert_eq!(
        out("rvsadm ports", &ports),
        "PORT  DEVICE        MAC                RX-PACKETS  RX-BYTES  TX-PACKETS  TX-BYTES  RX-MISSED  RX-ERRORS  \
         TX-ERRORS  RX-NOMBUF
wan   0000:3b:00.0  02:00:00:00:00:01     1234567  98765432     1200000  97000000          3          0          \
         0          0

DROP-REASON   PACKETS
no_service         42
bad_checksum        7

EXCEPTION-PATH  COUNT
arp_received        5
to_kernel          12
"
    );
    let neigh = Response::Neighbors(vec![
        NeighborInfo {
            ip: ip("10.0.2.11"),
            mac: "02:00:00:00:02:0b".into(),
            port: "lan".into(),
            state: "permanent".into(),
            age_s: None,
        },
        NeighborInfo {
            ip: ip("10.0.0.1"),
            mac: "02:00:00:00:00:fe".into(),
            port: "wan".into(),
            state: "reachable".into(),
            age_s: Some(12),
        },
    ]);
    assert_eq!(
        out("rvsadm neigh", &neigh),
        "IP         MAC                PORT  STATE      AGE
10.0.0.1   02:00:00:00:00:fe  wan   reachable   12
10.0.2.11  02:00:00:00:02:0b  lan   permanent    -
"
    );
}

#[test]
fn help_and_version_texts() {
    assert!(cli::help::usage("rvsadm").contains("  rvsadm -L|l [virtual-service] [options]\n"));
    assert!(cli::help::version("ipvsadm").starts_with("ipvsadm v"));
}
