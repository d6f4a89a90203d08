//! Turns the spanned schema into a [`Config`], applying defaults and every
//! semantic check. Checks run in file order (dataplane, ports, routes,
//! neighbours, control, metrics, then checks that span sections) and the first
//! failure is returned, pointing at the offending value.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

mod health;
mod ipvs;
mod sync;

use crate::config::{
    Config, Control, Dataplane, Metrics, Neighbor, Port, Route, Service, DEFAULT_CONNS_PER_WORKER,
    DEFAULT_CONTROL_CLIENTS, DEFAULT_IDLE_TIMEOUT, DEFAULT_MBUFS, DEFAULT_SOCKET, MAX_CONNS_PER_WORKER,
    MAX_CONTROL_CLIENTS, MAX_IDLE_TIMEOUT, MAX_PORT_NAME, MAX_WORKERS, MIN_CONNS_PER_WORKER, MIN_MBUFS,
};
use crate::device::Device;
use crate::error::{ConfError, Reporter};
use crate::schema::{
    Int, RawConfig, RawControl, RawDataplane, RawFwmark, RawMetrics, RawNeighbor, RawPort, RawRoute, S,
};
use crate::types::{Ipv4Cidr, Ipv4Prefix, MacAddr};

/// Longest unix socket path (sun_path is 108 bytes including the NUL).
const MAX_SOCKET_PATH: usize = 107;

/// What `load` needs, beyond the config, to read the rules file.
pub(crate) struct Positions {
    /// Offset of the `[ipvs] rules` value.
    pub rules_at: Option<usize>,
    /// For each service, where it is defined: `service[0] at rvs.toml:12:11`.
    pub services: Vec<String>,
}

pub(crate) struct Validator<'a> {
    pub r: Reporter<'a>,
    /// Whether to check that files named in the config exist (`load`, not
    /// `parse`).
    pub check_files: bool,
}

impl Validator<'_> {
    pub fn config(&self, raw: RawConfig) -> Result<(Config, Positions), ConfError> {
        let dp_raw = raw.dataplane.unwrap_or_default();
        let replay_span = dp_raw.replay.as_ref().map(|r| r.span());
        let dataplane = self.dataplane(dp_raw)?;

        let mut ports: Vec<Port> = Vec::with_capacity(raw.port.len());
        let mut device_spans = Vec::with_capacity(raw.port.len());
        for (i, p) in raw.port.into_iter().enumerate() {
            let (port, device_at) = self.port(i, p, &ports)?;
            ports.push(port);
            device_spans.push(device_at);
        }

        let mut routes: Vec<Route> = Vec::with_capacity(raw.route.len());
        for (i, r) in raw.route.into_iter().enumerate() {
            let route = self.route(i, r, &ports, &routes)?;
            routes.push(route);
        }

        let mut neighbors: Vec<Neighbor> = Vec::with_capacity(raw.neighbor.len());
        for (i, n) in raw.neighbor.into_iter().enumerate() {
            let neighbor = self.neighbor(i, n, &ports, &neighbors)?;
            neighbors.push(neighbor);
        }

        let control = self.control(raw.control.unwrap_or_default())?;
        let metrics = self.metrics(raw.metrics.unwrap_or_default())?;
        let fwmark = self.fwmark(raw.fwmark.unwrap_or_default(), &ports)?;

        let (ipvs, rules_at) = self.ipvs(raw.ipvs.unwrap_or_default())?;
        let sync = self.sync(raw.sync.unwrap_or_default())?;

        let (mut health, health_defaults) = self.health_global(raw.health)?;

        let mut services: Vec<Service> = Vec::with_capacity(raw.service.len());
        let mut where_defined = Vec::with_capacity(raw.service.len());
        for (i, s) in raw.service.into_iter().enumerate() {
            let raw_health = s.get_ref().health.clone();
            let (service, at) = self.service(i, s, &services)?;
            if let Some(h) = &raw_health {
                let check = self.health_service(&format!("service[{i}]"), h, &service.addr, &health_defaults)?;
                health.checks.push(crate::health::ServiceCheck { service: service.addr, check });
            }
            services.push(service);
            let (line, col) = crate::error::line_col(self.r.text, at);
            where_defined.push(format!("service[{i}] at {}:{line}:{col}", self.r.origin));
        }

        if let (true, Some(replay_span)) = (dataplane.replay, replay_span) {
            for (i, port) in ports.iter().enumerate() {
                if port.rx_pcaps().is_empty() {
                    let (line, col) = crate::error::line_col(self.r.text, replay_span.start);
                    return Err(self.r.invalid(
                        device_spans[i],
                        format!("port[{i}].device"),
                        format!(
                            "replay = true ({}:{line}:{col}) needs every port on a net_pcap vdev \
                             with at least one rx_pcap, like \
                             net_pcap{i},rx_pcap=in.pcap,tx_pcap=out.pcap; \"{}\" is not one",
                            self.r.origin, port.device
                        ),
                    ));
                }
            }
        }

        let config = Config {
            dataplane,
            port: ports,
            route: routes,
            neighbor: neighbors,
            control,
            metrics,
            fwmark,
            ipvs,
            sync,
            health,
            service: services,
        };
        Ok((config, Positions { rules_at, services: where_defined }))
    }

    /// Integer `v` of key `key` within `lo..=hi`.
    fn int_in(&self, v: &S<Int>, key: &str, lo: i64, hi: i64) -> Result<i64, ConfError> {
        let n = v.get_ref().0;
        if n < lo || n > hi {
            return Err(self.invalid(v, key, format!("{n} is out of range (expected {lo}..={hi})")));
        }
        Ok(n)
    }

    fn invalid<T>(&self, at: &S<T>, key: impl Into<String>, message: impl Into<String>) -> ConfError {
        self.r.invalid(at.span().start, key, message)
    }

    fn dataplane(&self, raw: RawDataplane) -> Result<Dataplane, ConfError> {
        let mut dp = Dataplane::default();
        if let Some(args) = raw.eal_args {
            let no_huge = args.iter().any(|a| a.get_ref() == "--no-huge");
            if let Some((i, a)) = args.iter().enumerate().find(|(_, a)| a.get_ref() == "--in-memory") {
                if no_huge {
                    return Err(self.invalid(
                        a,
                        format!("dataplane.eal_args[{i}]"),
                        "\"--in-memory\" cannot be combined with \"--no-huge\": EAL \
                         initialisation fails with that pair on DPDK 22.11; remove \
                         \"--in-memory\" and give each instance its own --file-prefix",
                    ));
                }
            }
            dp.eal_args = args.into_iter().map(S::into_inner).collect();
        }
        if let Some(w) = raw.workers {
            let n = self.int_in(&w, "dataplane.workers", 1, i64::from(MAX_WORKERS))?;
            dp.workers = u16::try_from(n).unwrap_or(1);
        }
        if let Some(m) = raw.mbufs {
            let n = m.get_ref().0;
            if n < i64::from(MIN_MBUFS) {
                return Err(self.invalid(
                    &m,
                    "dataplane.mbufs",
                    format!("{n} is too small (expected at least {MIN_MBUFS})"),
                ));
            }
            let n = self.int_in(&m, "dataplane.mbufs", i64::from(MIN_MBUFS), i64::from(u32::MAX))?;
            dp.mbufs = u32::try_from(n).unwrap_or(DEFAULT_MBUFS);
        }
        if let Some(r) = raw.replay {
            dp.replay = r.into_inner();
        }
        if let Some(p) = raw.poll_idle_us {
            let n = self.int_in(&p, "dataplane.poll_idle_us", 0, i64::from(u32::MAX))?;
            dp.poll_idle_us = u32::try_from(n).unwrap_or(0);
        }
        if let Some(c) = raw.conns_per_worker {
            let lo = i64::from(MIN_CONNS_PER_WORKER);
            let n = self.int_in(&c, "dataplane.conns_per_worker", lo, i64::from(MAX_CONNS_PER_WORKER))?;
            dp.conns_per_worker = u32::try_from(n).unwrap_or(DEFAULT_CONNS_PER_WORKER);
        }
        if let Some(p) = raw.owner_prefix {
            let n = self.int_in(&p, "dataplane.owner_prefix", 1, 32)?;
            dp.owner_prefix = u8::try_from(n).unwrap_or(32);
        }
        Ok(dp)
    }

    /// A `[[...]]` entry lacking a required key.
    fn missing<T>(&self, table: &S<T>, key: &str, required: &str) -> ConfError {
        let (path, _) = key.rsplit_once('.').unwrap_or((key, ""));
        let name = key.rsplit('.').next().unwrap_or(key);
        let section = path.split('[').next().unwrap_or(path);
        self.invalid(table, path, format!("missing key \"{name}\" (every [[{section}]] needs {required})"))
    }

    /// A port and the byte offset of its device value.
    fn port(&self, i: usize, raw: S<RawPort>, earlier: &[Port]) -> Result<(Port, usize), ConfError> {
        let required = "a name and a device";
        let at = format!("port[{i}]");
        let name = raw.get_ref().name.as_ref().ok_or_else(|| self.missing(&raw, &format!("{at}.name"), required))?;
        let device =
            raw.get_ref().device.as_ref().ok_or_else(|| self.missing(&raw, &format!("{at}.device"), required))?;
        let raw = raw.get_ref();

        // Name.
        let key = format!("{at}.name");
        let n = name.get_ref();
        if n.is_empty() {
            return Err(self.invalid(name, key, "must not be empty"));
        }
        if !n.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')) {
            return Err(self.invalid(name, key, format!("\"{n}\" may only contain letters, digits, '_', '.' and '-'")));
        }
        if n.len() > MAX_PORT_NAME {
            return Err(self.invalid(
                name,
                key,
                format!(
                    "\"{n}\" is {} characters long; at most {MAX_PORT_NAME} are allowed \
                     (the kernel's interface name limit)",
                    n.len()
                ),
            ));
        }
        if let Some(j) = earlier.iter().position(|p| &p.name == n) {
            return Err(self.invalid(name, key, format!("\"{n}\" is already the name of port[{j}]")));
        }

        // Device.
        let key = format!("{at}.device");
        let d = device.get_ref();
        if d.trim().is_empty() {
            return Err(self.invalid(
                device,
                key,
                "must not be empty (a PCI address like 0000:03:00.0 or a vdev like \
                 net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap)",
            ));
        }
        if let Some(p) = earlier.iter().find(|p| &p.device == d) {
            return Err(self.invalid(device, key, format!("\"{d}\" is already the device of port \"{}\"", p.name)));
        }
        let dev = Device::parse(d);
        if let Some(p) = earlier.iter().find(|p| Device::parse(&p.device).name == dev.name) {
            let msg = if dev.pci {
                format!("PCI address {} is already used by port \"{}\"", dev.name, p.name)
            } else {
                format!(
                    "vdev name \"{}\" is already used by port \"{}\" (each vdev needs its own \
                     name, like net_pcap{i})",
                    dev.name, p.name
                )
            };
            return Err(self.invalid(device, key, msg));
        }
        if self.check_files {
            for f in dev.rx_pcaps() {
                if !Path::new(&f).exists() {
                    return Err(self.invalid(device, key, format!("rx_pcap file \"{}\" does not exist", f.display())));
                }
            }
        }

        // MAC.
        let mac = match &raw.mac {
            Some(m) => Some(self.unicast_mac(m, &format!("{at}.mac"), "port")?),
            None => None,
        };

        // Addresses.
        let mut addresses: Vec<Ipv4Cidr> = Vec::new();
        for (j, a) in raw.addresses.iter().flatten().enumerate() {
            let key = format!("{at}.addresses[{j}]");
            let cidr: Ipv4Cidr = a.get_ref().parse().map_err(|e| self.invalid(a, &key, format!("{e}")))?;
            let owner = earlier
                .iter()
                .find(|p| p.addresses.iter().any(|c| c.addr == cidr.addr))
                .map(|p| p.name.as_str())
                .or_else(|| addresses.iter().any(|c| c.addr == cidr.addr).then_some(n.as_str()));
            if let Some(owner) = owner {
                return Err(self.invalid(a, key, format!("{} is already an address of port \"{owner}\"", cidr.addr)));
            }
            addresses.push(cidr);
        }

        // Kernel exception path.
        let kernel = raw.kernel.as_ref().is_none_or(|k| *k.get_ref());
        let tap = match &raw.tap {
            Some(t) => {
                let key = format!("{at}.tap");
                let v = t.get_ref();
                if v.is_empty()
                    || v.len() > MAX_PORT_NAME
                    || !v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
                {
                    return Err(self.invalid(
                        t,
                        key,
                        format!(
                            "\"{v}\" is not an interface name (1 to {MAX_PORT_NAME} of letters, digits, '_', '.', '-')"
                        ),
                    ));
                }
                v.clone()
            }
            None => n.clone(),
        };
        if kernel {
            if let Some(p) = earlier.iter().find(|p| p.kernel && p.tap == tap) {
                let what = raw.tap.as_ref().unwrap_or(name);
                return Err(self.invalid(
                    what,
                    format!("{at}.tap"),
                    format!(
                        "tap interface \"{tap}\" is already port \"{}\"'s; set tap = \"...\" to tell them apart",
                        p.name
                    ),
                ));
            }
        }

        Ok((Port { name: n.clone(), device: d.clone(), mac, addresses, kernel, tap }, device.span().start))
    }

    fn unicast_mac(&self, m: &S<String>, key: &str, what: &str) -> Result<MacAddr, ConfError> {
        let mac: MacAddr = m.get_ref().parse().map_err(|e| self.invalid(m, key, format!("{e}")))?;
        if mac.is_zero() {
            return Err(self.invalid(
                m,
                key,
                format!("{mac} is all zeros; a {what} needs a unicast MAC like 02:00:00:00:00:01"),
            ));
        }
        if mac.is_multicast() {
            return Err(self.invalid(
                m,
                key,
                format!(
                    "{mac} is a multicast address (the first octet is odd); a {what} needs a \
                     unicast MAC like 02:00:00:00:00:01"
                ),
            ));
        }
        Ok(mac)
    }

    fn ipv4(&self, v: &S<String>, key: &str) -> Result<Ipv4Addr, ConfError> {
        v.get_ref().parse().map_err(|_| {
            self.invalid(v, key, format!("\"{}\" is not an IPv4 address (expected a form like 10.0.0.1)", v.get_ref()))
        })
    }

    /// The index of the port named by `v`.
    fn port_ref(&self, v: &S<String>, key: &str, ports: &[Port]) -> Result<usize, ConfError> {
        let n = v.get_ref();
        ports.iter().position(|p| &p.name == n).ok_or_else(|| {
            let known = if ports.is_empty() {
                "no [[port]] is defined".to_owned()
            } else {
                let names: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
                format!("known ports: {}", names.join(", "))
            };
            self.invalid(v, key, format!("no port named \"{n}\" ({known})"))
        })
    }

    fn route(&self, i: usize, raw: S<RawRoute>, ports: &[Port], earlier: &[Route]) -> Result<Route, ConfError> {
        let required = "a prefix and a port";
        let at = format!("route[{i}]");
        let prefix_v =
            raw.get_ref().prefix.as_ref().ok_or_else(|| self.missing(&raw, &format!("{at}.prefix"), required))?;
        let port_v = raw.get_ref().port.as_ref().ok_or_else(|| self.missing(&raw, &format!("{at}.port"), required))?;
        let raw = raw.get_ref();

        let key = format!("{at}.prefix");
        let prefix: Ipv4Prefix =
            prefix_v.get_ref().parse().map_err(|e| self.invalid(prefix_v, &key, format!("{e}")))?;
        if let Some(j) = earlier.iter().position(|r| r.prefix == prefix) {
            return Err(self.invalid(prefix_v, key, format!("{prefix} is already routed by route[{j}]")));
        }

        let port = &ports[self.port_ref(port_v, &format!("{at}.port"), ports)?];

        let via = match &raw.via {
            None => None,
            Some(v) => {
                let key = format!("{at}.via");
                let ip = self.ipv4(v, &key)?;
                if port.addresses.is_empty() {
                    return Err(self.invalid(
                        v,
                        key,
                        format!("{ip} is not directly reachable: port \"{}\" has no addresses", port.name),
                    ));
                }
                if !port.addresses.iter().any(|c| c.contains(ip)) {
                    let list: Vec<String> = port.addresses.iter().map(|c| c.to_string()).collect();
                    return Err(self.invalid(
                        v,
                        key,
                        format!(
                            "{ip} is not inside any address of port \"{}\" ({}); a next hop must \
                             be directly reachable",
                            port.name,
                            list.join(", ")
                        ),
                    ));
                }
                Some(ip)
            }
        };

        Ok(Route { prefix, via, port: port.name.clone() })
    }

    fn neighbor(
        &self,
        i: usize,
        raw: S<RawNeighbor>,
        ports: &[Port],
        earlier: &[Neighbor],
    ) -> Result<Neighbor, ConfError> {
        let required = "an ip, a mac and a port";
        let at = format!("neighbor[{i}]");
        let r = raw.get_ref();
        let ip_v = r.ip.as_ref().ok_or_else(|| self.missing(&raw, &format!("{at}.ip"), required))?;
        let mac_v = r.mac.as_ref().ok_or_else(|| self.missing(&raw, &format!("{at}.mac"), required))?;
        let port_v = r.port.as_ref().ok_or_else(|| self.missing(&raw, &format!("{at}.port"), required))?;

        let ip = self.ipv4(ip_v, &format!("{at}.ip"))?;
        let mac = self.unicast_mac(mac_v, &format!("{at}.mac"), "neighbour")?;
        let port = &ports[self.port_ref(port_v, &format!("{at}.port"), ports)?];
        if let Some(j) = earlier.iter().position(|n| n.ip == ip && n.port == port.name) {
            return Err(self.invalid(
                ip_v,
                format!("{at}.ip"),
                format!("{ip} is already listed for port \"{}\" by neighbor[{j}]", port.name),
            ));
        }
        Ok(Neighbor { ip, mac, port: port.name.clone() })
    }

    fn control(&self, raw: RawControl) -> Result<Control, ConfError> {
        let socket = match raw.socket {
            None => PathBuf::from(DEFAULT_SOCKET),
            Some(s) => {
                let p = s.get_ref();
                if p.is_empty() {
                    return Err(self.invalid(&s, "control.socket", "must not be empty"));
                }
                if p.len() > MAX_SOCKET_PATH {
                    return Err(self.invalid(
                        &s,
                        "control.socket",
                        format!(
                            "path is {} bytes long; a unix socket path can be at most \
                             {MAX_SOCKET_PATH} bytes",
                            p.len()
                        ),
                    ));
                }
                PathBuf::from(s.into_inner())
            }
        };
        let group = match raw.group {
            None => None,
            Some(g) if g.get_ref().is_empty() => {
                return Err(self.invalid(
                    &g,
                    "control.group",
                    "must not be empty (leave group out to keep the socket root-only)",
                ))
            }
            Some(g) => Some(g.into_inner()),
        };
        let num = |v: Option<S<Int>>, key: &str, hi: u32, default: u32| -> Result<u32, ConfError> {
            match v {
                None => Ok(default),
                Some(v) => Ok(u32::try_from(self.int_in(&v, key, 1, i64::from(hi))?).unwrap_or(default)),
            }
        };
        let max_clients = num(raw.max_clients, "control.max_clients", MAX_CONTROL_CLIENTS, DEFAULT_CONTROL_CLIENTS)?;
        let idle_timeout = num(raw.idle_timeout, "control.idle_timeout", MAX_IDLE_TIMEOUT, DEFAULT_IDLE_TIMEOUT)?;
        Ok(Control { socket, group, max_clients, idle_timeout })
    }

    /// `[fwmark] rules`: each an iptables argument string (specs: issue "fwmark").
    fn fwmark(&self, raw: RawFwmark, ports: &[Port]) -> Result<Vec<crate::iptables::MarkRule>, ConfError> {
        let mut rules = Vec::new();
        for (i, line) in raw.rules.unwrap_or_default().into_iter().enumerate() {
            let rule = crate::iptables::parse_rule(line.get_ref())
                .map_err(|e| self.invalid(&line, format!("fwmark.rules[{i}]"), e))?;
            if let Some(iface) = &rule.in_iface {
                if !iface.wildcard && !ports.iter().any(|p| p.name == iface.name) {
                    let known: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
                    return Err(self.invalid(
                        &line,
                        format!("fwmark.rules[{i}]"),
                        format!("-i {}: no such port (ports: {})", iface.name, known.join(", ")),
                    ));
                }
            }
            rules.push(rule);
        }
        Ok(rules)
    }

    fn metrics(&self, raw: RawMetrics) -> Result<Metrics, ConfError> {
        let Some(v) = raw.listen else { return Ok(Metrics::default()) };
        let addr: SocketAddr = v.get_ref().parse().map_err(|_| {
            self.invalid(
                &v,
                "metrics.listen",
                format!(
                    "\"{}\" is not a listen address (expected ADDRESS:PORT like 127.0.0.1:9469 \
                     or [::1]:9469)",
                    v.get_ref()
                ),
            )
        })?;
        if addr.port() == 0 {
            return Err(self.invalid(
                &v,
                "metrics.listen",
                format!("port 0 would pick a random port no scraper knows; give a fixed one like {}:9469", addr.ip()),
            ));
        }
        Ok(Metrics { listen: Some(addr) })
    }
}

#[cfg(test)]
mod tests {
    use crate::parse;

    fn err(text: &str) -> String {
        match parse(text, "rvs.toml") {
            Ok(c) => format!("unexpectedly valid: {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// Two valid ports, then `rest`.
    fn with_ports(rest: &str) -> String {
        format!(
            "[[port]]\nname = \"p0\"\ndevice = \"net_pcap0,rx_pcap=in.pcap\"\n\
             addresses = [\"10.0.0.2/24\", \"192.168.1.2/24\"]\n\
             [[port]]\nname = \"p1\"\ndevice = \"net_pcap1,rx_pcap=in1.pcap\"\n{rest}"
        )
    }

    #[test]
    fn two_ports_base_is_valid() {
        let c = parse(&with_ports(""), "rvs.toml").unwrap();
        assert_eq!(c.port.len(), 2);
        assert_eq!(c.port_index("p1"), Some(1));
    }

    #[test]
    fn workers_range() {
        assert_eq!(
            err("[dataplane]\nworkers = 0\n"),
            "rvs.toml:2:11: dataplane.workers: 0 is out of range (expected 1..=64)"
        );
        assert_eq!(
            err("[dataplane]\nworkers = 65\n"),
            "rvs.toml:2:11: dataplane.workers: 65 is out of range (expected 1..=64)"
        );
        assert_eq!(parse("[dataplane]\nworkers = 64\n", "x").unwrap().dataplane.workers, 64);
    }

    #[test]
    fn mbufs_minimum() {
        assert_eq!(
            err("[dataplane]\nmbufs = 1023\n"),
            "rvs.toml:2:9: dataplane.mbufs: 1023 is too small (expected at least 1024)"
        );
        assert_eq!(
            err("[dataplane]\nmbufs = 4294967296\n"),
            "rvs.toml:2:9: dataplane.mbufs: 4294967296 is out of range (expected 1024..=4294967295)"
        );
        assert_eq!(parse("[dataplane]\nmbufs = 1024\n", "x").unwrap().dataplane.mbufs, 1024);
    }

    #[test]
    fn poll_idle_us_range() {
        assert_eq!(
            err("[dataplane]\npoll_idle_us = -1\n"),
            "rvs.toml:2:16: dataplane.poll_idle_us: -1 is out of range (expected 0..=4294967295)"
        );
        let c = parse("[dataplane]\npoll_idle_us = 50\n", "x").unwrap();
        assert_eq!(c.dataplane.poll_idle_us, 50);
    }

    #[test]
    fn in_memory_with_no_huge() {
        assert_eq!(
            err("[dataplane]\neal_args = [\"--no-huge\", \"--in-memory\"]\n"),
            "rvs.toml:2:26: dataplane.eal_args[1]: \"--in-memory\" cannot be combined with \
             \"--no-huge\": EAL initialisation fails with that pair on DPDK 22.11; remove \
             \"--in-memory\" and give each instance its own --file-prefix"
        );
        // Either one alone is fine.
        assert!(parse("[dataplane]\neal_args = [\"--in-memory\"]\n", "x").is_ok());
        assert!(parse("[dataplane]\neal_args = [\"--no-huge\"]\n", "x").is_ok());
    }

    #[test]
    fn replay_needs_pcap_inputs_everywhere() {
        let ok = with_ports("");
        let c = parse(&format!("[dataplane]\nreplay = true\n{ok}"), "x").unwrap();
        assert!(c.dataplane.replay);
        let text = "[dataplane]\nreplay = true\n[[port]]\nname = \"p0\"\n\
                    device = \"net_pcap0,rx_pcap=in.pcap\"\n[[port]]\nname = \"p1\"\n\
                    device = \"net_pcap1,tx_pcap=out.pcap\"\n";
        assert_eq!(
            err(text),
            "rvs.toml:8:10: port[1].device: replay = true (rvs.toml:2:10) needs every port on a \
             net_pcap vdev with at least one rx_pcap, like \
             net_pcap1,rx_pcap=in.pcap,tx_pcap=out.pcap; \"net_pcap1,tx_pcap=out.pcap\" is not one"
        );
        let text = "[dataplane]\nreplay = true\n[[port]]\nname = \"p0\"\ndevice = \"0000:03:00.0\"\n";
        assert_eq!(
            err(text),
            "rvs.toml:5:10: port[0].device: replay = true (rvs.toml:2:10) needs every port on a \
             net_pcap vdev with at least one rx_pcap, like \
             net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap; \"0000:03:00.0\" is not one"
        );
    }

    #[test]
    fn port_missing_keys() {
        assert_eq!(
            err("[[port]]\nname = \"p0\"\ndevice = \"d0\"\n[[port]]\nname = \"p1\"\n"),
            "rvs.toml:4:1: port[1]: missing key \"device\" (every [[port]] needs a name and a device)"
        );
        assert_eq!(
            err("[[port]]\ndevice = \"d0\"\n"),
            "rvs.toml:1:1: port[0]: missing key \"name\" (every [[port]] needs a name and a device)"
        );
    }

    #[test]
    fn port_name_rules() {
        assert_eq!(err("[[port]]\nname = \"\"\ndevice = \"d\"\n"), "rvs.toml:2:8: port[0].name: must not be empty");
        assert_eq!(
            err("[[port]]\nname = \"p 0\"\ndevice = \"d\"\n"),
            "rvs.toml:2:8: port[0].name: \"p 0\" may only contain letters, digits, '_', '.' and '-'"
        );
        assert_eq!(
            err("[[port]]\nname = \"abcdefghijklmnop\"\ndevice = \"d\"\n"),
            "rvs.toml:2:8: port[0].name: \"abcdefghijklmnop\" is 16 characters long; at most 15 \
             are allowed (the kernel's interface name limit)"
        );
        assert!(parse("[[port]]\nname = \"wan-0.v_15chars\"\ndevice = \"d\"\n", "x").is_ok());
        assert_eq!(
            err(&with_ports("[[port]]\nname = \"p0\"\ndevice = \"net_pcap2\"\n")),
            "rvs.toml:9:8: port[2].name: \"p0\" is already the name of port[0]"
        );
    }

    #[test]
    fn device_rules() {
        assert_eq!(
            err("[[port]]\nname = \"p0\"\ndevice = \" \"\n"),
            "rvs.toml:3:10: port[0].device: must not be empty (a PCI address like 0000:03:00.0 \
             or a vdev like net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap)"
        );
        assert_eq!(
            err(&with_ports("[[port]]\nname = \"p2\"\ndevice = \"net_pcap1,rx_pcap=in1.pcap\"\n")),
            "rvs.toml:10:10: port[2].device: \"net_pcap1,rx_pcap=in1.pcap\" is already the \
             device of port \"p1\""
        );
        assert_eq!(
            err(&with_ports("[[port]]\nname = \"p2\"\ndevice = \"net_pcap1,rx_pcap=other.pcap\"\n")),
            "rvs.toml:10:10: port[2].device: vdev name \"net_pcap1\" is already used by port \
             \"p1\" (each vdev needs its own name, like net_pcap2)"
        );
        let pci = "[[port]]\nname = \"a\"\ndevice = \"0000:03:00.0\"\n\
                   [[port]]\nname = \"b\"\ndevice = \"0000:03:00.0,txq_inline=128\"\n";
        assert_eq!(err(pci), "rvs.toml:6:10: port[1].device: PCI address 0000:03:00.0 is already used by port \"a\"");
    }

    #[test]
    fn port_mac_rules() {
        let port = |mac: &str| format!("[[port]]\nname = \"p0\"\ndevice = \"d\"\n  mac = \"{mac}\"\n");
        assert_eq!(
            err(&port("02:00:00:00:00")),
            "rvs.toml:4:9: port[0].mac: \"02:00:00:00:00\" is not a MAC address (expected six hex \
             pairs like 02:00:00:00:00:01)"
        );
        assert_eq!(
            err(&port("01:00:5E:00:00:01")),
            "rvs.toml:4:9: port[0].mac: 01:00:5e:00:00:01 is a multicast address (the first octet \
             is odd); a port needs a unicast MAC like 02:00:00:00:00:01"
        );
        assert_eq!(
            err(&port("ff:ff:ff:ff:ff:ff")),
            "rvs.toml:4:9: port[0].mac: ff:ff:ff:ff:ff:ff is a multicast address (the first octet \
             is odd); a port needs a unicast MAC like 02:00:00:00:00:01"
        );
        assert_eq!(
            err(&port("00-00-00-00-00-00")),
            "rvs.toml:4:9: port[0].mac: 00:00:00:00:00:00 is all zeros; a port needs a unicast \
             MAC like 02:00:00:00:00:01"
        );
    }

    #[test]
    fn port_address_rules() {
        assert_eq!(
            err("[[port]]\nname = \"p0\"\ndevice = \"d\"\naddresses = [\"10.0.0.2/24\", \"10.0.0.3\"]\n"),
            "rvs.toml:4:29: port[0].addresses[1]: \"10.0.0.3\" is not an interface address \
             (expected ADDRESS/LENGTH like 10.0.0.2/24)"
        );
        assert_eq!(
            err(&with_ports("addresses = [\"10.0.0.2/16\"]\n")),
            "rvs.toml:8:14: port[1].addresses[0]: 10.0.0.2 is already an address of port \"p0\""
        );
        assert_eq!(
            err("[[port]]\nname = \"p0\"\ndevice = \"d\"\naddresses = [\"10.0.0.2/24\", \"10.0.0.2/8\"]\n"),
            "rvs.toml:4:29: port[0].addresses[1]: 10.0.0.2 is already an address of port \"p0\""
        );
    }

    #[test]
    fn route_rules() {
        let c = parse(
            &with_ports(
                "[[route]]\nprefix = \"0.0.0.0/0\"\nvia = \"192.168.1.1\"\nport = \"p0\"\n\
                 [[route]]\nprefix = \"172.16.0.0/12\"\nport = \"p1\"\n",
            ),
            "x",
        )
        .unwrap();
        assert_eq!(c.route[0].via, Some(std::net::Ipv4Addr::new(192, 168, 1, 1)));
        assert_eq!(c.route[1].via, None);
        assert_eq!(c.route[1].prefix.to_string(), "172.16.0.0/12");

        assert_eq!(
            err(&with_ports("[[route]]\nprefix = \"10.0.0.1/24\"\nport = \"p0\"\n")),
            "rvs.toml:9:10: route[0].prefix: \"10.0.0.1/24\" has host bits set; did you mean \
             10.0.0.0/24?"
        );
        assert_eq!(
            err(&with_ports("[[route]]\nprefix = \"0.0.0.0/0\"\nport = \"p9\"\n")),
            "rvs.toml:10:8: route[0].port: no port named \"p9\" (known ports: p0, p1)"
        );
        assert_eq!(
            err("[[route]]\nprefix = \"0.0.0.0/0\"\nport = \"p0\"\n"),
            "rvs.toml:3:8: route[0].port: no port named \"p0\" (no [[port]] is defined)"
        );
        assert_eq!(
            err(&with_ports("[[route]]\nprefix = \"0.0.0.0/0\"\nvia = \"10.9.0.1\"\nport = \"p0\"\n")),
            "rvs.toml:10:7: route[0].via: 10.9.0.1 is not inside any address of port \"p0\" \
             (10.0.0.2/24, 192.168.1.2/24); a next hop must be directly reachable"
        );
        assert_eq!(
            err(&with_ports("[[route]]\nprefix = \"0.0.0.0/0\"\nvia = \"10.0.0.1\"\nport = \"p1\"\n")),
            "rvs.toml:10:7: route[0].via: 10.0.0.1 is not directly reachable: port \"p1\" has \
             no addresses"
        );
        assert_eq!(
            err(&with_ports("[[route]]\nprefix = \"0.0.0.0/0\"\nvia = \"10.0.0.300\"\nport = \"p0\"\n")),
            "rvs.toml:10:7: route[0].via: \"10.0.0.300\" is not an IPv4 address (expected a form \
             like 10.0.0.1)"
        );
        assert_eq!(
            err(&with_ports(
                "[[route]]\nprefix = \"0.0.0.0/0\"\nport = \"p0\"\n\
                 [[route]]\nprefix = \"0.0.0.0/0\"\nport = \"p1\"\n"
            )),
            "rvs.toml:12:10: route[1].prefix: 0.0.0.0/0 is already routed by route[0]"
        );
        assert_eq!(
            err(&with_ports("[[route]]\nvia = \"10.0.0.1\"\nport = \"p0\"\n")),
            "rvs.toml:8:1: route[0]: missing key \"prefix\" (every [[route]] needs a prefix and \
             a port)"
        );
    }

    #[test]
    fn neighbor_rules() {
        let n = |ip: &str, mac: &str, port: &str| {
            format!("[[neighbor]]\nip = \"{ip}\"\nmac = \"{mac}\"\nport = \"{port}\"\n")
        };
        let one = n("10.0.0.11", "02:00:00:00:01:11", "p0");
        let c = parse(&with_ports(&format!("{one}{}", n("10.0.0.11", "02:00:00:00:01:12", "p1"))), "x").unwrap();
        assert_eq!(c.neighbor.len(), 2, "the same ip on two ports is fine");

        assert_eq!(
            err(&with_ports(&format!("{one}{}", n("10.0.0.11", "02:00:00:00:01:12", "p0")))),
            "rvs.toml:13:6: neighbor[1].ip: 10.0.0.11 is already listed for port \"p0\" by \
             neighbor[0]"
        );
        assert_eq!(
            err(&with_ports(&n("10.0.0.11", "01:00:00:00:01:11", "p0"))),
            "rvs.toml:10:7: neighbor[0].mac: 01:00:00:00:01:11 is a multicast address (the first \
             octet is odd); a neighbour needs a unicast MAC like 02:00:00:00:00:01"
        );
        assert_eq!(
            err(&with_ports(&n("10.0.0.11", "00:00:00:00:00:00", "p0"))),
            "rvs.toml:10:7: neighbor[0].mac: 00:00:00:00:00:00 is all zeros; a neighbour needs a \
             unicast MAC like 02:00:00:00:00:01"
        );
        assert_eq!(
            err(&with_ports(&n("10.0.0.11", "02:00:00:00:01", "p0"))),
            "rvs.toml:10:7: neighbor[0].mac: \"02:00:00:00:01\" is not a MAC address (expected six \
             hex pairs like 02:00:00:00:00:01)"
        );
        assert_eq!(
            err(&with_ports(&n("10.0.0.11", "02:00:00:00:01:11", "wan"))),
            "rvs.toml:11:8: neighbor[0].port: no port named \"wan\" (known ports: p0, p1)"
        );
        assert_eq!(
            err(&with_ports(&n("10.0.0", "02:00:00:00:01:11", "p0"))),
            "rvs.toml:9:6: neighbor[0].ip: \"10.0.0\" is not an IPv4 address (expected a form \
             like 10.0.0.1)"
        );
        assert_eq!(
            err(&with_ports("[[neighbor]]\nip = \"10.0.0.11\"\nport = \"p0\"\n")),
            "rvs.toml:8:1: neighbor[0]: missing key \"mac\" (every [[neighbor]] needs an ip, a \
             mac and a port)"
        );
    }

    #[test]
    fn control_rules() {
        assert_eq!(err("[control]\nsocket = \"\"\n"), "rvs.toml:2:10: control.socket: must not be empty");
        let long = format!("/{}", "s".repeat(107));
        assert_eq!(
            err(&format!("[control]\nsocket = \"{long}\"\n")),
            "rvs.toml:2:10: control.socket: path is 108 bytes long; a unix socket path can be at \
             most 107 bytes"
        );
        assert_eq!(
            err("[control]\ngroup = \"\"\n"),
            "rvs.toml:2:9: control.group: must not be empty (leave group out to keep the socket \
             root-only)"
        );
        assert_eq!(
            err("[control]\nmax_clients = 0\n"),
            "rvs.toml:2:15: control.max_clients: 0 is out of range (expected 1..=1024)"
        );
        assert_eq!(
            err("[control]\nidle_timeout = 3601\n"),
            "rvs.toml:2:16: control.idle_timeout: 3601 is out of range (expected 1..=3600)"
        );
        let c = parse("[control]\nmax_clients = 4\nidle_timeout = 5\n", "x").unwrap();
        assert_eq!((c.control.max_clients, c.control.idle_timeout), (4, 5));
        let d = parse("", "x").unwrap();
        assert_eq!((d.control.max_clients, d.control.idle_timeout), (16, 60));
        let c = parse("[control]\nsocket = \"/tmp/r.sock\"\n", "x").unwrap();
        assert_eq!(c.control.socket, std::path::PathBuf::from("/tmp/r.sock"));
    }

    #[test]
    fn fwmark_rules() {
        let c = parse(
            "[[port]]\nname = \"p0\"\ndevice = \"net_null0\"\n[fwmark]\nrules = [\"-A PREROUTING -d 10.0.0.100 -p tcp -m multiport --dports 80,443 -j MARK --set-mark 10\"]\n",
            "rvs.toml",
        )
        .unwrap();
        assert_eq!(c.fwmark.len(), 1);
        assert_eq!(
            crate::iptables::format_rule(&c.fwmark[0]),
            "-A PREROUTING -d 10.0.0.100/32 -p tcp -m multiport --dports 80,443 -j MARK --set-xmark 0xa/0xffffffff"
        );
        assert_eq!(
            err("[[port]]\nname = \"p0\"\ndevice = \"net_null0\"\n[fwmark]\nrules = [\"-A PREROUTING -i wan -j MARK --set-mark 1\"]\n"),
            "rvs.toml:5:10: fwmark.rules[0]: -i wan: no such port (ports: p0)"
        );
        assert!(err("[fwmark]\nrules = [\"-A PREROUTING --dport 80 -j MARK --set-mark 1\"]\n")
            .starts_with("rvs.toml:2:10: fwmark.rules[0]: "));
    }

    #[test]
    fn metrics_rules() {
        assert_eq!(parse("", "x").unwrap().metrics.listen, None);
        assert_eq!(parse("[metrics]\n", "x").unwrap().metrics.listen, None);
        let c = parse("[metrics]\nlisten = \"127.0.0.1:9469\"\n", "x").unwrap();
        assert_eq!(c.metrics.listen, Some("127.0.0.1:9469".parse().unwrap()));
        let c = parse("[metrics]\nlisten = \"[::1]:9469\"\n", "x").unwrap();
        assert_eq!(c.metrics.listen, Some("[::1]:9469".parse().unwrap()));

        assert_eq!(
            err("[metrics]\nlisten = \"127.0.0.1\"\n"),
            "rvs.toml:2:10: metrics.listen: \"127.0.0.1\" is not a listen address (expected \
             ADDRESS:PORT like 127.0.0.1:9469 or [::1]:9469)"
        );
        assert_eq!(
            err("[metrics]\nlisten = \"localhost:9469\"\n"),
            "rvs.toml:2:10: metrics.listen: \"localhost:9469\" is not a listen address (expected \
             ADDRESS:PORT like 127.0.0.1:9469 or [::1]:9469)"
        );
        assert_eq!(
            err("[metrics]\nlisten = \"127.0.0.1:70000\"\n"),
            "rvs.toml:2:10: metrics.listen: \"127.0.0.1:70000\" is not a listen address (expected \
             ADDRESS:PORT like 127.0.0.1:9469 or [::1]:9469)"
        );
        assert_eq!(
            err("[metrics]\nlisten = \"0.0.0.0:0\"\n"),
            "rvs.toml:2:10: metrics.listen: port 0 would pick a random port no scraper knows; give \
             a fixed one like 0.0.0.0:9469"
        );
        assert_eq!(
            err("[metrics]\nlisten = 9469\n"),
            "rvs.toml:2:10: metrics.listen: invalid type: integer `9469`, expected a string"
        );
        assert_eq!(err("[metrics]\nport = 9469\n"), "rvs.toml:2:1: metrics.port: unknown key (valid keys: listen)");
    }
}
