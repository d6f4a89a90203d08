//! rvs configuration: the TOML schema, its validation, and error messages
//! that point at the offending value (`FILE:LINE:COL: KEY: what is wrong`).
//!
//! [`parse`] checks everything that can be checked from the text alone;
//! [`load`] also reads the file and checks that files it names (net_pcap
//! `rx_pcap=` inputs) exist, resolved against the current directory as DPDK
//! resolves them, and reads the `[ipvs] rules` file (ipvsadm save/restore
//! format, see [`ipvsadm`]) relative to the config file's directory. A
//! [`Config`] returned by either is fully validated.
//!
//! ```toml
//! [dataplane]
//! eal_args = ["--no-huge", "-m", "512", "--no-pci"]
//! workers = 1
//!
//! [[port]]
//! name = "p0"
//! device = "net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap"
//! addresses = ["10.0.0.2/24"]
//!
//! [metrics]
//! listen = "127.0.0.1:9469"      # optional; Prometheus text at /metrics
//!
//! [ipvs]
//! rules = "ipvsadm.rules"        # optional; `ipvsadm -S` format
//! [ipvs.timeouts]
//! tcp = 900
//!
//! [[service]]
//! protocol = "tcp"
//! address = "10.0.0.100:80"
//! scheduler = "wlc"
//! [[service.server]]
//! address = "10.0.2.11:80"
//! method = "masq"
//! ```

#![deny(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod config;
mod device;
mod error;
pub mod health;
pub mod iptables;
pub mod ipvsadm;
pub mod limits;
mod locate;
mod schema;
mod service;
mod types;
mod validate;

use std::path::Path;

pub use config::{
    Config, Control, Dataplane, Ipvs, Method, Metrics, Neighbor, Port, Protocol, Route, Server, Service, ServiceAddr,
    Sync, SyncDaemon, Timeouts, DEFAULT_CONNS_PER_WORKER, DEFAULT_CONTROL_CLIENTS, DEFAULT_IDLE_TIMEOUT, DEFAULT_MBUFS,
    DEFAULT_PERSISTENT_TIMEOUT, DEFAULT_RESYNC_PERIOD, DEFAULT_SCHEDULER, DEFAULT_SOCKET, MAX_CONNS_PER_WORKER,
    MAX_CONTROL_CLIENTS, MAX_IDLE_TIMEOUT, MAX_PORT_NAME, MAX_THRESHOLD, MAX_TIMEOUT, MAX_WORKERS,
    MIN_CONNS_PER_WORKER, MIN_MBUFS, SCHEDULERS, SVC_F_SCHED1, SVC_F_SCHED2, SVC_F_SCHED3,
};
pub use device::{is_pci_address, Device};
pub use error::ConfError;
pub use iptables::{format_rule, parse_command, parse_rule, MarkCommand, MarkRule};
pub use ipvsadm::{format_rules, parse_rules};
pub use types::{Ipv4Cidr, Ipv4Prefix, MacAddr, ValueError};

use error::Reporter;
use validate::{Positions, Validator};

/// Reads, parses and validates the file at `path`, including that every
/// `rx_pcap=` file it names exists (relative paths against the current
/// directory), and reads the `[ipvs] rules` file (a relative path against
/// the config file's directory), appending its services to
/// `Config::service` and storing the resolved path in `Config::ipvs.rules`.
/// Messages name the files as `path` is written.
pub fn load(path: &Path) -> Result<Config, ConfError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfError::Read { path: path.to_owned(), source })?;
    let origin = path.display().to_string();
    let (mut config, positions) = check(&text, &origin, true)?;
    if let Some(rules) = config.ipvs.rules.take() {
        let rules = match path.parent() {
            Some(dir) if rules.is_relative() => dir.join(rules),
            _ => rules,
        };
        let rules_text = std::fs::read_to_string(&rules).map_err(|e| {
            let r = Reporter { text: &text, origin: &origin };
            r.invalid(
                positions.rules_at.unwrap_or(0),
                "ipvs.rules",
                format!("cannot read \"{}\": {e}", rules.display()),
            )
        })?;
        let taken: Vec<(ServiceAddr, String)> = config.service.iter().map(|s| s.addr).zip(positions.services).collect();
        let more = ipvsadm::parse_after(&rules_text, &rules.display().to_string(), &taken)?;
        config.service.extend(more);
        config.ipvs.rules = Some(rules);
    }
    Ok(config)
}

/// Parses and validates `text`; `origin` is the file name used in messages.
/// Does not touch the file system: the `[ipvs] rules` file is not read, and
/// `Config::ipvs.rules` is kept as written.
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfError> {
    check(text, origin, false).map(|(c, _)| c)
}

fn check(text: &str, origin: &str, check_files: bool) -> Result<(Config, Positions), ConfError> {
    let r = Reporter { text, origin };
    let raw: schema::RawConfig = toml::from_str(text).map_err(|e| de_error(&r, &e))?;
    Validator { r, check_files }.config(raw)
}

/// Maps a `toml` error to a positioned message with its key path.
fn de_error(r: &Reporter<'_>, e: &toml::de::Error) -> ConfError {
    let at = e.span().map_or(0, |s| s.start);
    let message = e.message().trim();
    if toml::from_str::<toml::Table>(r.text).is_err() {
        // Not TOML at all: toml's message may span lines; keep ours on one.
        let one_line: Vec<&str> = message.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        return r.syntax(at, one_line.join("; "));
    }
    match locate::key_path(r.text, at) {
        Some(key) => {
            let value = r.text.get(at..).unwrap_or("");
            let message = reword(&key, message, value);
            r.invalid(at, key, message)
        }
        None => r.syntax(at, message),
    }
}

/// Rewords serde's messages in the file's terms (keys, tables); `value` is
/// the text from the error's position on.
fn reword(key: &str, message: &str, value: &str) -> String {
    // serde: "unknown field `x`, expected one of `a`, `b`, `c`", "expected
    // `a` or `b`", "expected `a`".
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let expected = rest.split_once("expected ").map_or("", |(_, e)| e);
        let valid = expected.trim_start_matches("one of ").replace("` or `", ", ").replace('`', "");
        return format!("unknown key (valid keys: {valid})");
    }
    let last = key.rsplit('.').next().unwrap_or(key);
    if matches!(last, "port" | "route" | "neighbor" | "service" | "server") && message.contains("expected a sequence") {
        // `service[0].server` is written `[[service.server]]`.
        let header: String = key.split('.').map(|k| k.split('[').next().unwrap_or(k)).collect::<Vec<_>>().join(".");
        return format!("{message}; write each entry as [[{header}]], not [{header}]");
    }
    // toml hands a datetime to serde as a map.
    if value.starts_with(|c: char| c.is_ascii_digit()) {
        if let Some(rest) = message.strip_prefix("invalid type: map,") {
            return format!("invalid type: datetime,{rest}");
        }
    }
    message.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::path::PathBuf;

    /// The example from the design brief, comments included.
    const EXAMPLE: &str = r#"[dataplane]
eal_args = ["--no-huge", "-m", "512", "--no-pci"]
workers = 1
mbufs = 16384
replay = false
poll_idle_us = 0
[[port]]
name = "p0"
device = "net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap"   # vdev args or PCI address
mac = "02:00:00:00:00:01"          # optional
addresses = ["10.0.0.2/24"]
[[route]]
prefix = "0.0.0.0/0"
via = "10.0.0.1"
port = "p0"
[[neighbor]]
ip = "10.0.0.11"
mac = "02:00:00:00:01:11"
port = "p0"
[control]
socket = "/run/rvs/rvsd.sock"
group = "adm"
[metrics]
listen = "127.0.0.1:9469"          # optional; Prometheus text at /metrics
"#;

    fn err(text: &str) -> String {
        match parse(text, "rvs.toml") {
            Ok(c) => format!("unexpectedly valid: {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn full_example() {
        let c = parse(EXAMPLE, "rvs.toml").unwrap();
        let expected = Config {
            dataplane: Dataplane {
                eal_args: ["--no-huge", "-m", "512", "--no-pci"].map(String::from).to_vec(),
                workers: 1,
                mbufs: 16384,
                replay: false,
                poll_idle_us: 0,
                conns_per_worker: DEFAULT_CONNS_PER_WORKER,
                owner_prefix: 32,
            },
            port: vec![Port {
                name: "p0".into(),
                device: "net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap".into(),
                mac: Some(MacAddr([2, 0, 0, 0, 0, 1])),
                addresses: vec![Ipv4Cidr { addr: Ipv4Addr::new(10, 0, 0, 2), len: 24 }],
                kernel: true,
                tap: "p0".into(),
            }],
            route: vec![Route {
                prefix: Ipv4Prefix::DEFAULT,
                via: Some(Ipv4Addr::new(10, 0, 0, 1)),
                port: "p0".into(),
            }],
            neighbor: vec![Neighbor {
                ip: Ipv4Addr::new(10, 0, 0, 11),
                mac: MacAddr([2, 0, 0, 0, 1, 0x11]),
                port: "p0".into(),
            }],
            control: Control {
                socket: PathBuf::from("/run/rvs/rvsd.sock"),
                group: Some("adm".into()),
                ..Control::default()
            },
            metrics: Metrics { listen: Some("127.0.0.1:9469".parse().unwrap()) },
            fwmark: vec![],
            ipvs: Ipvs::default(),
            sync: Sync::default(),
            health: Default::default(),
            service: vec![],
        };
        assert_eq!(c, expected);
        assert_eq!(c.port[0].rx_pcaps(), vec![PathBuf::from("in.pcap")]);
        assert_eq!(c.port_index("p0"), Some(0));
        assert_eq!(c.port_index("p1"), None);
    }

    #[test]
    fn only_ports_takes_defaults() {
        let c = parse("[[port]]\nname = \"p0\"\ndevice = \"0000:03:00.0\"\n", "x").unwrap();
        assert_eq!(c.dataplane, Dataplane::default());
        assert_eq!(
            c.dataplane,
            Dataplane {
                eal_args: vec![],
                workers: 1,
                mbufs: 16384,
                replay: false,
                poll_idle_us: 0,
                conns_per_worker: 262144,
                owner_prefix: 32
            }
        );
        assert_eq!(c.control.socket, PathBuf::from("/run/rvs/rvsd.sock"));
        assert_eq!(c.control.group, None);
        assert!(c.route.is_empty() && c.neighbor.is_empty());
        assert_eq!(c.port[0].mac, None);
        assert!(c.port[0].addresses.is_empty());
        assert!(c.port[0].rx_pcaps().is_empty());
        assert!(c.port[0].is_pci());
    }

    #[test]
    fn empty_sections_take_defaults() {
        let c = parse("[dataplane]\n[control]\n", "x").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(parse("", "x").unwrap(), Config::default());
    }

    #[test]
    fn unknown_keys_name_the_key_and_the_valid_ones() {
        assert_eq!(
            err("[dataplane]\nworkers = 1\n  worker = 2\n"),
            "rvs.toml:3:3: dataplane.worker: unknown key (valid keys: eal_args, workers, \
             mbufs, replay, poll_idle_us, conns_per_worker, owner_prefix)"
        );
        assert_eq!(
            err("[[port]]\nname = \"p0\"\ndevice = \"d\"\n[[port]]\nname = \"p1\"\nmacc = \"x\"\n"),
            "rvs.toml:6:1: port[1].macc: unknown key (valid keys: name, device, mac, addresses, kernel, tap)"
        );
        assert_eq!(
            err("[routes]\n"),
            "rvs.toml:1:2: routes: unknown key (valid keys: dataplane, port, route, neighbor, \
             control, metrics, fwmark, ipvs, sync, health, service)"
        );
        assert_eq!(
            err("[[route]]\nprefix = \"0.0.0.0/0\"\ngw = \"10.0.0.1\"\n"),
            "rvs.toml:3:1: route[0].gw: unknown key (valid keys: prefix, via, port)"
        );
        assert_eq!(
            err("[[neighbor]]\nlladdr = \"x\"\n"),
            "rvs.toml:2:1: neighbor[0].lladdr: unknown key (valid keys: ip, mac, port)"
        );
        assert_eq!(
            err("[control]\nmode = \"0660\"\n"),
            "rvs.toml:2:1: control.mode: unknown key (valid keys: socket, group, max_clients, idle_timeout)"
        );
        assert_eq!(
            err("port = [{ name = \"p0\", device = \"d\", bogus = 1 }]\n"),
            "rvs.toml:1:38: port[0].bogus: unknown key (valid keys: name, device, mac, addresses, kernel, tap)"
        );
    }

    #[test]
    fn wrong_types_point_at_the_value() {
        assert_eq!(
            err("[dataplane]\nworkers = \"2\"\n"),
            "rvs.toml:2:11: dataplane.workers: invalid type: string \"2\", expected an integer"
        );
        assert_eq!(
            err("[dataplane]\neal_args = [\"--no-pci\", 5]\n"),
            "rvs.toml:2:25: dataplane.eal_args[1]: invalid type: integer `5`, expected a string"
        );
        assert_eq!(
            err("[dataplane]\nreplay = \"yes\"\n"),
            "rvs.toml:2:10: dataplane.replay: invalid type: string \"yes\", expected a boolean"
        );
        assert_eq!(
            err("[dataplane]\nworkers = 1979-05-27\n"),
            "rvs.toml:2:11: dataplane.workers: invalid type: datetime, expected an integer"
        );
        assert_eq!(
            err("[[port]]\nname = 7\n"),
            "rvs.toml:2:8: port[0].name: invalid type: integer `7`, expected a string"
        );
        assert_eq!(
            err("[[port]]\nname = \"p0\"\ndevice = \"d\"\naddresses = \"10.0.0.2/24\"\n"),
            "rvs.toml:4:13: port[0].addresses: invalid type: string \"10.0.0.2/24\", \
             expected a sequence"
        );
    }

    #[test]
    fn single_bracket_port_gets_a_hint() {
        assert_eq!(
            err("[port]\nname = \"p0\"\n"),
            "rvs.toml:1:1: port: invalid type: map, expected a sequence; write each entry as \
             [[port]], not [port]"
        );
    }

    #[test]
    fn syntax_errors_are_one_line() {
        assert_eq!(
            err("[dataplane]\nworkers = 1\nworkers = 2\n"),
            "rvs.toml:3:1: invalid TOML: duplicate key `workers` in table `dataplane`"
        );
        let e = err("[dataplane\n");
        assert!(e.starts_with("rvs.toml:1:11: invalid TOML: "), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    /// A path under the system temp dir, unique to this test process.
    fn temp_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("rvs-conf-{}-{name}", std::process::id()))
    }

    #[test]
    fn load_reads_the_file_and_names_it() {
        let pcap = temp_path("in.pcap");
        std::fs::write(&pcap, b"").unwrap();
        let cfg = temp_path("ok.toml");
        let text = format!("[[port]]\nname = \"p0\"\ndevice = \"net_pcap0,rx_pcap={}\"\n", pcap.display());
        std::fs::write(&cfg, text).unwrap();
        let c = load(&cfg).unwrap();
        assert_eq!(c.port[0].rx_pcaps(), vec![pcap.clone()]);
        std::fs::remove_file(&pcap).unwrap();
        assert_eq!(
            load(&cfg).unwrap_err().to_string(),
            format!("{}:3:10: port[0].device: rx_pcap file \"{}\" does not exist", cfg.display(), pcap.display())
        );
        std::fs::remove_file(&cfg).unwrap();
    }

    #[test]
    fn load_checks_relative_rx_pcaps_against_the_current_directory() {
        // Not created anywhere: cargo runs tests in the crate directory.
        let text = "[[port]]\nname = \"p0\"\n  device = \"net_pcap0,rx_pcap=rvs-conf-absent.pcap,rx_pcap=b.pcap\"\n";
        let cfg = temp_path("rel.toml");
        std::fs::write(&cfg, text).unwrap();
        assert_eq!(
            load(&cfg).unwrap_err().to_string(),
            format!("{}:3:12: port[0].device: rx_pcap file \"rvs-conf-absent.pcap\" does not exist", cfg.display())
        );
        // parse() does not look at the file system.
        assert!(parse(text, "rvs.toml").is_ok());
        std::fs::remove_file(&cfg).unwrap();
    }

    /// The `[ipvs]` and `[[service]]` example of the design brief.
    const SERVICES: &str = r#"[dataplane]
conns_per_worker = 262144
owner_prefix = 32
[ipvs]
rules = "ipvsadm.rules"
expire_nodest_conn = 0
expire_quiescent_template = 0
conn_reuse_mode = 1
sloppy_tcp = 0
nat_icmp_send = 0
pmtu_disc = 1
[ipvs.timeouts]
tcp = 900
tcpfin = 120
udp = 300
[[service]]
protocol = "tcp"
address = "10.0.0.100:80"
scheduler = "wlc"
persistent = 360
netmask = "255.255.255.0"
ops = false
[[service.server]]
address = "10.0.2.11:80"
method = "masq"
weight = 1
u_threshold = 0
l_threshold = 0
"#;

    #[test]
    fn services_example() {
        let c = parse(SERVICES, "rvs.toml").unwrap();
        assert_eq!(c.dataplane, Dataplane::default());
        assert_eq!(c.ipvs, Ipvs { rules: Some(PathBuf::from("ipvsadm.rules")), ..Ipvs::default() });
        assert_eq!(
            c.service,
            vec![Service {
                addr: ServiceAddr::Addr { protocol: Protocol::Tcp, vip: Ipv4Addr::new(10, 0, 0, 100), port: 80 },
                scheduler: "wlc".into(),
                persistent: Some(360),
                netmask: Ipv4Addr::new(255, 255, 255, 0),
                flags: vec![],
                ops: false,
                servers: vec![Server {
                    addr: Ipv4Addr::new(10, 0, 2, 11),
                    port: 80,
                    method: Method::Masq,
                    weight: 1,
                    u_threshold: 0,
                    l_threshold: 0,
                }],
            }]
        );
    }

    /// A fresh directory under the system temp dir.
    fn temp_dir(name: &str) -> PathBuf {
        let d = temp_path(name);
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn load_merges_the_rules_file_from_the_config_directory() {
        let dir = temp_dir("rules-ok");
        std::fs::write(
            dir.join("ipvsadm.rules"),
            "-A -u 10.0.0.100:53 -s rr\n-a -u 10.0.0.100:53 -r 10.0.2.21:5353 -m -w 2\n-A -f 1 -s sh\n",
        )
        .unwrap();
        let cfg = dir.join("rvs.toml");
        std::fs::write(&cfg, SERVICES).unwrap();
        let c = load(&cfg).unwrap();
        assert_eq!(c.ipvs.rules, Some(dir.join("ipvsadm.rules")));
        let keys: Vec<String> = c.service.iter().map(|s| s.addr.to_string()).collect();
        assert_eq!(keys, ["tcp 10.0.0.100:80", "udp 10.0.0.100:53", "fwmark 1"]);
        assert_eq!(c.service[1].servers[0].port, 5353);
        // parse() reads no file.
        assert_eq!(parse(SERVICES, "rvs.toml").unwrap().service.len(), 1);

        // An absolute path is used as is.
        let abs = SERVICES.replace("\"ipvsadm.rules\"", &format!("\"{}\"", dir.join("ipvsadm.rules").display()));
        std::fs::write(&cfg, abs).unwrap();
        assert_eq!(load(&cfg).unwrap().service.len(), 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn load_reports_rules_errors_in_the_rules_file() {
        let dir = temp_dir("rules-bad");
        let cfg = dir.join("rvs.toml");
        let rules = dir.join("ipvsadm.rules");
        std::fs::write(&cfg, SERVICES).unwrap();

        assert_eq!(
            load(&cfg).unwrap_err().to_string(),
            format!(
                "{}:5:9: ipvs.rules: cannot read \"{}\": No such file or directory (os error 2)",
                cfg.display(),
                rules.display()
            )
        );

        // The same service as the config file's: refused, naming both.
        std::fs::write(&rules, "# more\n-A -u 10.0.0.100:53\n-A -t 10.0.0.100:80 -s rr -p\n").unwrap();
        assert_eq!(
            load(&cfg).unwrap_err().to_string(),
            format!(
                "{}:3:1: -A -t 10.0.0.100:80 -s rr -p: Service already exists: see service[0] at {}:18:11",
                rules.display(),
                cfg.display()
            )
        );

        // Servers of the config file's services are listed there.
        std::fs::write(&rules, "-a -t 10.0.0.100:80 -r 10.0.2.12 -m\n").unwrap();
        assert_eq!(
            load(&cfg).unwrap_err().to_string(),
            format!(
                "{}:1:1: -a -t 10.0.0.100:80 -r 10.0.2.12 -m: Service not defined (tcp 10.0.0.100:80 is \
                 service[0] at {}:18:11 in the config file, whose servers are listed there)",
                rules.display(),
                cfg.display()
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn load_of_a_missing_file() {
        let p = temp_path("absent.toml");
        let e = load(&p).unwrap_err();
        assert!(matches!(e, ConfError::Read { .. }));
        assert_eq!(e.to_string(), format!("{}: cannot read: No such file or directory (os error 2)", p.display()));
    }
}
