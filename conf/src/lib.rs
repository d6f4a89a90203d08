//! rvs configuration: the TOML schema, its validation, and error messages
//! that point at the offending value (`FILE:LINE:COL: KEY: what is wrong`).
//!
//! [`parse`] checks everything that can be checked from the text alone;
//! [`load`] also reads the file and checks that files it names (net_pcap
//! `rx_pcap=` inputs) exist, resolved against the current directory as DPDK
//! resolves them. A [`Config`] returned by either is fully validated.
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
//! ```

#![deny(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod config;
mod device;
mod error;
mod locate;
mod schema;
mod types;
mod validate;

use std::path::Path;

pub use config::{
    Config, Control, Dataplane, Neighbor, Port, Route, DEFAULT_MBUFS, DEFAULT_SOCKET, MAX_PORT_NAME, MAX_WORKERS,
    MIN_MBUFS,
};
pub use device::{is_pci_address, Device};
pub use error::ConfError;
pub use types::{Ipv4Cidr, Ipv4Prefix, MacAddr, ValueError};

use error::Reporter;
use validate::Validator;

/// Reads, parses and validates the file at `path`, including that every
/// `rx_pcap=` file it names exists (relative paths against the current
/// directory). Messages name the file as `path` is written.
pub fn load(path: &Path) -> Result<Config, ConfError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfError::Read { path: path.to_owned(), source })?;
    let origin = path.display().to_string();
    check(&text, &origin, true)
}

/// Parses and validates `text`; `origin` is the file name used in messages.
/// Does not touch the file system.
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfError> {
    check(text, origin, false)
}

fn check(text: &str, origin: &str, check_files: bool) -> Result<Config, ConfError> {
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
    if matches!(key, "port" | "route" | "neighbor") && message.contains("expected a sequence") {
        return format!("{message}; write each entry as [[{key}]], not [{key}]");
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
            },
            port: vec![Port {
                name: "p0".into(),
                device: "net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap".into(),
                mac: Some(MacAddr([2, 0, 0, 0, 0, 1])),
                addresses: vec![Ipv4Cidr { addr: Ipv4Addr::new(10, 0, 0, 2), len: 24 }],
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
            control: Control { socket: PathBuf::from("/run/rvs/rvsd.sock"), group: Some("adm".into()) },
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
            Dataplane { eal_args: vec![], workers: 1, mbufs: 16384, replay: false, poll_idle_us: 0 }
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
             mbufs, replay, poll_idle_us)"
        );
        assert_eq!(
            err("[[port]]\nname = \"p0\"\ndevice = \"d\"\n[[port]]\nname = \"p1\"\nmacc = \"x\"\n"),
            "rvs.toml:6:1: port[1].macc: unknown key (valid keys: name, device, mac, addresses)"
        );
        assert_eq!(
            err("[routes]\n"),
            "rvs.toml:1:2: routes: unknown key (valid keys: dataplane, port, route, neighbor, \
             control)"
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
            "rvs.toml:2:1: control.mode: unknown key (valid keys: socket, group)"
        );
        assert_eq!(
            err("port = [{ name = \"p0\", device = \"d\", bogus = 1 }]\n"),
            "rvs.toml:1:38: port[0].bogus: unknown key (valid keys: name, device, mac, addresses)"
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

    #[test]
    fn load_of_a_missing_file() {
        let p = temp_path("absent.toml");
        let e = load(&p).unwrap_err();
        assert!(matches!(e, ConfError::Read { .. }));
        assert_eq!(e.to_string(), format!("{}: cannot read: No such file or directory (os error 2)", p.display()));
    }
}
