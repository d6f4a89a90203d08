//! Validation of `[ipvs]` and `[[service]]` (with `[[service.server]]`):
//! the same rules ipvsadm and the kernel apply to `-A`/`-a`
//! (specs/ipvs.md §0, §2.5, §4.5, §6.1), plus rvs's limits (IPv4, numeric
//! addresses, the schedulers it implements). Route/tunnel servers naming a
//! different port are an error here, where ipvsadm silently forces the
//! service port: a config file should say what it does.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::Validator;
use crate::config::{
    Ipvs, Method, Protocol, Server, Service, ServiceAddr, Timeouts, DEFAULT_PERSISTENT_TIMEOUT, DEFAULT_SCHEDULER,
    MAX_THRESHOLD, MAX_TIMEOUT,
};
use crate::error::ConfError;
use crate::schema::{Int, IntOrBool, RawIpvs, RawServer, RawService, S};
use crate::service;

impl Validator<'_> {
    /// The `[ipvs]` table and the offset of its `rules` value.
    pub(super) fn ipvs(&self, raw: RawIpvs) -> Result<(Ipvs, Option<usize>), ConfError> {
        let mut ipvs = Ipvs::default();
        let mut rules_at = None;
        if let Some(r) = raw.rules {
            if r.get_ref().is_empty() {
                return Err(self.invalid(&r, "ipvs.rules", "must not be empty (leave rules out to load no file)"));
            }
            rules_at = Some(r.span().start);
            ipvs.rules = Some(PathBuf::from(r.into_inner()));
        }
        let switches = [
            (raw.expire_nodest_conn, "expire_nodest_conn", &mut ipvs.expire_nodest_conn),
            (raw.expire_quiescent_template, "expire_quiescent_template", &mut ipvs.expire_quiescent_template),
            (raw.sloppy_tcp, "sloppy_tcp", &mut ipvs.sloppy_tcp),
            (raw.nat_icmp_send, "nat_icmp_send", &mut ipvs.nat_icmp_send),
            (raw.pmtu_disc, "pmtu_disc", &mut ipvs.pmtu_disc),
        ];
        for (v, name, slot) in switches {
            if let Some(v) = v {
                *slot = self.switch(&v, &format!("ipvs.{name}"))?;
            }
        }
        if let Some(m) = raw.conn_reuse_mode {
            ipvs.conn_reuse_mode = u8::try_from(self.int_in(&m, "ipvs.conn_reuse_mode", 0, 3)?).unwrap_or(1);
        }
        let t = raw.timeouts.unwrap_or_default();
        let d = Timeouts::DEFAULT;
        ipvs.timeouts = Timeouts {
            tcp: self.timeout(t.tcp, "ipvs.timeouts.tcp", d.tcp)?,
            tcpfin: self.timeout(t.tcpfin, "ipvs.timeouts.tcpfin", d.tcpfin)?,
            udp: self.timeout(t.udp, "ipvs.timeouts.udp", d.udp)?,
        };
        Ok((ipvs, rules_at))
    }

    /// A sysctl switch: 0/1 or false/true.
    pub(super) fn switch(&self, v: &S<IntOrBool>, key: &str) -> Result<bool, ConfError> {
        match *v.get_ref() {
            IntOrBool::Bool(b) => Ok(b),
            IntOrBool::Int(0) => Ok(false),
            IntOrBool::Int(1) => Ok(true),
            IntOrBool::Int(n) => Err(self.invalid(v, key, format!("{n} is out of range (expected 0 or 1)"))),
        }
    }

    /// An `--set` value: 0 keeps `default` (specs/ipvs.md §3.7).
    fn timeout(&self, v: Option<S<Int>>, key: &str, default: u32) -> Result<u32, ConfError> {
        let Some(v) = v else { return Ok(default) };
        let n = self.int_in(&v, key, 0, i64::from(MAX_TIMEOUT))?;
        Ok(match u32::try_from(n) {
            Ok(0) | Err(_) => default,
            Ok(n) => n,
        })
    }

    /// Service `i` and the offset of its address or fwmark value.
    pub(super) fn service(
        &self,
        i: usize,
        raw: S<RawService>,
        earlier: &[Service],
    ) -> Result<(Service, usize), ConfError> {
        let at = format!("service[{i}]");
        let r = raw.get_ref();
        let required = "a protocol and an address, or a fwmark";

        // Key: protocol + address, or fwmark.
        let (addr, key, key_at) = match (&r.fwmark, &r.protocol, &r.address) {
            (Some(f), None, None) => {
                let key = format!("{at}.fwmark");
                let m = self.int_in(f, &key, 1, i64::from(u32::MAX))?;
                (ServiceAddr::Fwmark(u32::try_from(m).unwrap_or(1)), key, f.span().start)
            }
            (Some(f), _, _) => {
                return Err(self.invalid(
                    f,
                    format!("{at}.fwmark"),
                    "a service has either protocol and address or fwmark, not both",
                ))
            }
            (None, Some(p), Some(a)) => {
                let protocol = match p.get_ref().as_str() {
                    "tcp" => Protocol::Tcp,
                    "udp" => Protocol::Udp,
                    other => {
                        return Err(self.invalid(
                            p,
                            format!("{at}.protocol"),
                            format!("\"{other}\" is not a supported protocol (expected \"tcp\" or \"udp\")"),
                        ))
                    }
                };
                let key = format!("{at}.address");
                let (vip, port) = service::addr_port(a.get_ref()).map_err(|m| self.invalid(a, &key, m))?;
                (ServiceAddr::Addr { protocol, vip, port: port.unwrap_or(0) }, key, a.span().start)
            }
            (None, None, _) => return Err(self.missing(&raw, &format!("{at}.protocol"), required)),
            (None, Some(_), None) => return Err(self.missing(&raw, &format!("{at}.address"), required)),
        };
        if let Some(j) = earlier.iter().position(|s| s.addr == addr) {
            return Err(self.r.invalid(key_at, key, format!("{addr} is already defined by service[{j}]")));
        }

        let scheduler = match &r.scheduler {
            None => DEFAULT_SCHEDULER,
            Some(s) => service::scheduler(s.get_ref()).map_err(|m| self.invalid(s, format!("{at}.scheduler"), m))?,
        };

        let persistent = match r.persistent.as_ref() {
            None => None,
            Some(p) => match *p.get_ref() {
                IntOrBool::Bool(false) => None,
                // ipvsadm's bare -p.
                IntOrBool::Bool(true) => Some(DEFAULT_PERSISTENT_TIMEOUT),
                IntOrBool::Int(n) => match u32::try_from(n) {
                    Ok(t) if (1..=MAX_TIMEOUT).contains(&t) => Some(t),
                    _ => {
                        return Err(self.invalid(
                            p,
                            format!("{at}.persistent"),
                            format!(
                                "{n} is out of range (expected 1..={MAX_TIMEOUT}, or true for \
                                 {DEFAULT_PERSISTENT_TIMEOUT})"
                            ),
                        ))
                    }
                },
            },
        };
        if addr.port() == 0 && persistent.is_none() {
            if let ServiceAddr::Addr { .. } = addr {
                // ipvsadm.c process_options.
                return Err(self.r.invalid(key_at, key, "Zero port specified for non-persistent service"));
            }
        }

        let mut netmask = Ipv4Addr::BROADCAST;
        if let Some(m) = &r.netmask {
            let key = format!("{at}.netmask");
            if persistent.is_none() {
                return Err(self.invalid(
                    m,
                    key,
                    "only valid with persistent (it sets which clients share a persistence template)",
                ));
            }
            netmask = service::netmask(m.get_ref()).map_err(|e| self.invalid(m, &key, e))?;
        }

        let mut bits = 0;
        for (j, f) in r.flags.iter().flatten().enumerate() {
            let key = format!("{at}.flags[{j}]");
            let bit = service::check_flag(scheduler, f.get_ref()).map_err(|m| self.invalid(f, &key, m))?;
            if bits & bit != 0 {
                return Err(self.invalid(f, key, format!("\"{}\" repeats a flag listed before it", f.get_ref())));
            }
            bits |= bit;
        }

        let ops = r.ops.as_ref().is_some_and(|o| *o.get_ref());
        if let (Some(o), ServiceAddr::Addr { protocol: Protocol::Tcp, .. }) = (&r.ops, addr) {
            if *o.get_ref() {
                // ipvsadm.c process_options.
                return Err(self.invalid(
                    o,
                    format!("{at}.ops"),
                    "One-Packet Scheduling is only for UDP virtual services",
                ));
            }
        }

        let mut servers: Vec<Server> = Vec::with_capacity(r.server.len());
        for (j, s) in r.server.iter().enumerate() {
            let server = self.server(&format!("{at}.server[{j}]"), s, &addr, &servers)?;
            servers.push(server);
        }

        let svc = Service {
            addr,
            scheduler: scheduler.to_owned(),
            persistent,
            netmask,
            flags: service::flag_names(scheduler, bits),
            ops,
            servers,
        };
        Ok((svc, key_at))
    }

    /// A `[[service.server]]` of the service keyed `svc`; `at` is its key
    /// path.
    fn server(&self, at: &str, raw: &S<RawServer>, svc: &ServiceAddr, earlier: &[Server]) -> Result<Server, ConfError> {
        let r = raw.get_ref();
        let Some(a) = &r.address else {
            return Err(self.invalid(raw, at, "missing key \"address\" (every [[service.server]] needs an address)"));
        };
        let key = format!("{at}.address");
        let (addr, port) = service::addr_port(a.get_ref()).map_err(|m| self.invalid(a, &key, m))?;

        let method = match &r.method {
            None => Method::Route,
            Some(m) => match m.get_ref().as_str() {
                "masq" | "nat" => Method::Masq,
                "route" | "dr" | "gatewaying" => Method::Route,
                "tunnel" | "tun" | "ipip" => Method::Tunnel,
                other => {
                    return Err(self.invalid(
                        m,
                        format!("{at}.method"),
                        format!("\"{other}\" is not a forwarding method (expected \"masq\", \"route\" or \"tunnel\")"),
                    ))
                }
            },
        };

        let vport = svc.port();
        if service::port_fixed(svc, method) && port.is_some_and(|p| p != 0 && p != vport) {
            return Err(self.invalid(a, key, service::remap_message(vport)));
        }
        let port = service::server_port(svc, port);
        if let Some(j) = earlier.iter().position(|s| s.addr == addr && s.port == port) {
            return Err(self.invalid(a, key, format!("{addr}:{port} is already server[{j}] of this service")));
        }

        let num = |v: &Option<S<Int>>, name: &str, hi: u32, default: u32| -> Result<u32, ConfError> {
            match v {
                None => Ok(default),
                Some(v) => {
                    let n = self.int_in(v, &format!("{at}.{name}"), 0, i64::from(hi))?;
                    Ok(u32::try_from(n).unwrap_or(default))
                }
            }
        };
        let weight = num(&r.weight, "weight", 65535, 1)?;
        let u_threshold = num(&r.u_threshold, "u_threshold", MAX_THRESHOLD, 0)?;
        let l_threshold = num(&r.l_threshold, "l_threshold", MAX_THRESHOLD, 0)?;
        if let Some(l) = &r.l_threshold {
            if l_threshold > u_threshold {
                return Err(self.invalid(
                    l,
                    format!("{at}.l_threshold"),
                    format!(
                        "{l_threshold} is above u_threshold {u_threshold}; the kernel refuses l_threshold > \
                         u_threshold (ERANGE, specs/ipvs.md §0)"
                    ),
                ));
            }
        }
        Ok(Server { addr, port, method, weight, u_threshold, l_threshold })
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::path::PathBuf;

    use crate::config::{Ipvs, Method, Protocol, Server, Service, ServiceAddr, Timeouts};
    use crate::parse;

    fn err(text: &str) -> String {
        match parse(text, "rvs.toml") {
            Ok(c) => format!("unexpectedly valid: {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// A tcp service on 10.0.0.100:80 with `rest` appended to its table.
    fn svc(rest: &str) -> String {
        format!("[[service]]\nprotocol = \"tcp\"\naddress = \"10.0.0.100:80\"\n{rest}")
    }

    fn one(text: &str) -> Service {
        let mut c = parse(text, "rvs.toml").unwrap();
        assert_eq!(c.service.len(), 1);
        c.service.remove(0)
    }

    #[test]
    fn dataplane_new_keys() {
        let c = parse("[dataplane]\nconns_per_worker = 1024\nowner_prefix = 24\n", "x").unwrap();
        assert_eq!((c.dataplane.conns_per_worker, c.dataplane.owner_prefix), (1024, 24));
        assert_eq!(
            err("[dataplane]\nconns_per_worker = 1023\n"),
            "rvs.toml:2:20: dataplane.conns_per_worker: 1023 is out of range (expected 1024..=16777216)"
        );
        assert_eq!(
            err("[dataplane]\nconns_per_worker = 16777217\n"),
            "rvs.toml:2:20: dataplane.conns_per_worker: 16777217 is out of range (expected 1024..=16777216)"
        );
        assert_eq!(
            err("[dataplane]\nowner_prefix = 0\n"),
            "rvs.toml:2:16: dataplane.owner_prefix: 0 is out of range (expected 1..=32)"
        );
        assert_eq!(
            err("[dataplane]\nowner_prefix = 33\n"),
            "rvs.toml:2:16: dataplane.owner_prefix: 33 is out of range (expected 1..=32)"
        );
    }

    #[test]
    fn ipvs_table() {
        let text = "[ipvs]\nrules = \"ipvsadm.rules\"\nexpire_nodest_conn = 1\nexpire_quiescent_template = true\n\
                    conn_reuse_mode = 3\nsloppy_tcp = 1\nnat_icmp_send = 1\npmtu_disc = 0\n\
                    [ipvs.timeouts]\ntcp = 0\ntcpfin = 30\nudp = 2678400\n";
        let c = parse(text, "x").unwrap();
        assert_eq!(
            c.ipvs,
            Ipvs {
                rules: Some(PathBuf::from("ipvsadm.rules")),
                expire_nodest_conn: true,
                expire_quiescent_template: true,
                conn_reuse_mode: 3,
                sloppy_tcp: true,
                nat_icmp_send: true,
                pmtu_disc: false,
                timeouts: Timeouts { tcp: 900, tcpfin: 30, udp: 2678400 },
            }
        );
        let d = parse("[ipvs]\n[ipvs.timeouts]\n", "x").unwrap().ipvs;
        assert_eq!(d, Ipvs::default());
        assert_eq!(
            (d.conn_reuse_mode, d.pmtu_disc, d.timeouts),
            (1, true, Timeouts { tcp: 900, tcpfin: 120, udp: 300 })
        );

        assert_eq!(
            err("[ipvs]\nsloppy_tcp = 2\n"),
            "rvs.toml:2:14: ipvs.sloppy_tcp: 2 is out of range (expected 0 or 1)"
        );
        assert_eq!(
            err("[ipvs]\npmtu_disc = \"yes\"\n"),
            "rvs.toml:2:13: ipvs.pmtu_disc: invalid type: string \"yes\", expected an integer or a boolean"
        );
        assert_eq!(
            err("[ipvs]\nconn_reuse_mode = 4\n"),
            "rvs.toml:2:19: ipvs.conn_reuse_mode: 4 is out of range (expected 0..=3)"
        );
        assert_eq!(
            err("[ipvs.timeouts]\nudp = 2678401\n"),
            "rvs.toml:2:7: ipvs.timeouts.udp: 2678401 is out of range (expected 0..=2678400)"
        );
        assert_eq!(
            err("[ipvs.timeouts]\ntcp_fin = 1\n"),
            "rvs.toml:2:1: ipvs.timeouts.tcp_fin: unknown key (valid keys: tcp, tcpfin, udp)"
        );
        assert_eq!(
            err("[ipvs]\nrules = \"\"\n"),
            "rvs.toml:2:9: ipvs.rules: must not be empty (leave rules out to load no file)"
        );
        assert_eq!(
            err("[ipvs]\nsync_version = 1\n"),
            "rvs.toml:2:1: ipvs.sync_version: unknown key (valid keys: rules, expire_nodest_conn, \
             expire_quiescent_template, conn_reuse_mode, sloppy_tcp, nat_icmp_send, pmtu_disc, timeouts)"
        );
    }

    #[test]
    fn full_service() {
        let s = one(&svc(
            "scheduler = \"sh\"\npersistent = 600\nnetmask = \"255.255.255.0\"\nflags = [\"sh-port\", \"flag-1\"]\n\
             [[service.server]]\naddress = \"10.0.2.11:8080\"\nmethod = \"nat\"\nweight = 0\nu_threshold = 10\n\
             l_threshold = 5\n\
             [[service.server]]\naddress = \"10.0.2.12\"\n\
             [[service.server]]\naddress = \"10.0.2.13:80\"\nmethod = \"tun\"\nweight = 65535\n\
             [[service.server]]\naddress = \"10.0.2.14:0\"\nmethod = \"masq\"\n",
        ));
        let server = |last: u8, port: u16, method: Method, weight: u32| Server {
            addr: Ipv4Addr::new(10, 0, 2, last),
            port,
            method,
            weight,
            u_threshold: 0,
            l_threshold: 0,
        };
        assert_eq!(
            s,
            Service {
                addr: ServiceAddr::Addr { protocol: Protocol::Tcp, vip: Ipv4Addr::new(10, 0, 0, 100), port: 80 },
                scheduler: "sh".into(),
                persistent: Some(600),
                netmask: Ipv4Addr::new(255, 255, 255, 0),
                // flag-1 is sh-fallback on sh, in bit order.
                flags: vec!["sh-fallback".into(), "sh-port".into()],
                ops: false,
                servers: vec![
                    Server { u_threshold: 10, l_threshold: 5, ..server(11, 8080, Method::Masq, 0) },
                    server(12, 80, Method::Route, 1),
                    server(13, 80, Method::Tunnel, 65535),
                    server(14, 80, Method::Masq, 1),
                ],
            }
        );
        assert_eq!(s.netmask_len(), 24);
        assert_eq!(s.flag_bits(), crate::SVC_F_SCHED1 | crate::SVC_F_SCHED2);
    }

    #[test]
    fn service_defaults() {
        let s = one(&svc(""));
        assert_eq!(s.scheduler, "wlc");
        assert_eq!((s.persistent, s.netmask, s.ops), (None, Ipv4Addr::BROADCAST, false));
        assert!(s.flags.is_empty() && s.servers.is_empty());
        assert_eq!(one(&svc("persistent = true\n")).persistent, Some(360));
        assert_eq!(one(&svc("persistent = false\n")).persistent, None);
    }

    #[test]
    fn fwmark_and_port_zero_services() {
        let s = one("[[service]]\nfwmark = 10\nscheduler = \"mh\"\nflags = [\"mh-port\"]\nops = true\n\
             [[service.server]]\naddress = \"10.0.2.11\"\nmethod = \"dr\"\n\
             [[service.server]]\naddress = \"10.0.2.12:443\"\nmethod = \"ipip\"\n");
        assert_eq!(s.addr, ServiceAddr::Fwmark(10));
        assert_eq!((s.ops, s.flags.clone()), (true, vec!["mh-port".to_owned()]));
        assert_eq!((s.servers[0].port, s.servers[1].port), (0, 443), "fwmark services keep ports as written");

        let s = one("[[service]]\nprotocol = \"udp\"\naddress = \"10.0.0.100:0\"\npersistent = 60\nops = true\n\
             [[service.server]]\naddress = \"10.0.2.11\"\n");
        assert_eq!(s.addr, ServiceAddr::Addr { protocol: Protocol::Udp, vip: Ipv4Addr::new(10, 0, 0, 100), port: 0 });
        assert_eq!(s.servers[0].port, 0);
        // An omitted service port is 0, as in ipvsadm.
        assert_eq!(
            err("[[service]]\nprotocol = \"tcp\"\naddress = \"10.0.0.100\"\n"),
            "rvs.toml:3:11: service[0].address: Zero port specified for non-persistent service"
        );
        assert_eq!(
            err("[[service]]\nprotocol = \"tcp\"\naddress = \"10.0.0.100:0\"\n"),
            "rvs.toml:3:11: service[0].address: Zero port specified for non-persistent service"
        );
        assert_eq!(
            err("[[service]]\nprotocol = \"tcp\"\naddress = \"10.0.0.100:0\"\npersistent = false\n"),
            "rvs.toml:3:11: service[0].address: Zero port specified for non-persistent service"
        );
    }

    #[test]
    fn service_key_rules() {
        assert_eq!(
            err("[[service]]\nfwmark = 1\nprotocol = \"tcp\"\n"),
            "rvs.toml:2:10: service[0].fwmark: a service has either protocol and address or fwmark, not both"
        );
        assert_eq!(
            err("[[service]]\nscheduler = \"rr\"\n"),
            "rvs.toml:1:1: service[0]: missing key \"protocol\" (every [[service]] needs a protocol and an \
             address, or a fwmark)"
        );
        assert_eq!(
            err("[[service]]\nprotocol = \"tcp\"\n"),
            "rvs.toml:1:1: service[0]: missing key \"address\" (every [[service]] needs a protocol and an \
             address, or a fwmark)"
        );
        assert_eq!(
            err("[[service]]\naddress = \"10.0.0.1:80\"\n"),
            "rvs.toml:1:1: service[0]: missing key \"protocol\" (every [[service]] needs a protocol and an \
             address, or a fwmark)"
        );
        assert_eq!(
            err("[[service]]\nfwmark = 0\n"),
            "rvs.toml:2:10: service[0].fwmark: 0 is out of range (expected 1..=4294967295)"
        );
        assert_eq!(
            err("[[service]]\nprotocol = \"sctp\"\naddress = \"10.0.0.1:80\"\n"),
            "rvs.toml:2:12: service[0].protocol: \"sctp\" is not a supported protocol (expected \"tcp\" or \"udp\")"
        );
        assert_eq!(
            err("[[service]]\nprotocol = \"tcp\"\naddress = \"www.example.com:80\"\n"),
            "rvs.toml:3:11: service[0].address: \"www.example.com:80\" names a host; only numeric IPv4 \
             addresses are accepted (rvs does no DNS)"
        );
        assert_eq!(
            err("[[service]]\nprotocol = \"tcp\"\naddress = \"[2001:db8::1]:80\"\n"),
            "rvs.toml:3:11: service[0].address: \"[2001:db8::1]:80\" is an IPv6 address; rvs supports IPv4 only"
        );
    }

    #[test]
    fn duplicate_services() {
        assert_eq!(
            err(&format!("{}{}", svc(""), svc("scheduler = \"rr\"\n"))),
            "rvs.toml:6:11: service[1].address: tcp 10.0.0.100:80 is already defined by service[0]"
        );
        // Same address, other protocol: a different service.
        let udp = "[[service]]\nprotocol = \"udp\"\naddress = \"10.0.0.100:80\"\n";
        assert_eq!(parse(&format!("{}{udp}", svc("")), "x").unwrap().service.len(), 2);
        assert_eq!(
            err("[[service]]\nfwmark = 7\n[[service]]\nfwmark = 7\n"),
            "rvs.toml:4:10: service[1].fwmark: fwmark 7 is already defined by service[0]"
        );
    }

    #[test]
    fn scheduler_persistence_netmask_flags_ops() {
        assert_eq!(
            err(&svc("scheduler = \"dh\"\n")),
            "rvs.toml:4:13: service[0].scheduler: \"dh\" is not a supported scheduler (supported: rr, wrr, lc, \
             wlc, sed, nq, sh, mh)"
        );
        assert_eq!(
            err(&svc("persistent = 0\n")),
            "rvs.toml:4:14: service[0].persistent: 0 is out of range (expected 1..=2678400, or true for 360)"
        );
        assert_eq!(
            err(&svc("persistent = 2678401\n")),
            "rvs.toml:4:14: service[0].persistent: 2678401 is out of range (expected 1..=2678400, or true for 360)"
        );
        assert_eq!(
            err(&svc("netmask = \"255.255.255.0\"\n")),
            "rvs.toml:4:11: service[0].netmask: only valid with persistent (it sets which clients share a \
             persistence template)"
        );
        assert_eq!(
            err(&svc("persistent = 60\nnetmask = \"255.255.0.255\"\n")),
            "rvs.toml:5:11: service[0].netmask: \"255.255.0.255\" is not a contiguous netmask (expected a form \
             like 255.255.255.0)"
        );
        assert_eq!(
            err(&svc("flags = [\"flag-2\", \"sh-port\"]\n")),
            "rvs.toml:4:20: service[0].flags[1]: incompatible scheduler flag \"sh-port\": it is for the sh \
             scheduler, and this service uses wlc"
        );
        assert_eq!(
            err(&svc("scheduler = \"mh\"\nflags = [\"mh-fallback\", \"flag-1\"]\n")),
            "rvs.toml:5:25: service[0].flags[1]: \"flag-1\" repeats a flag listed before it"
        );
        assert_eq!(
            err(&svc("flags = [\"fallback\"]\n")),
            "rvs.toml:4:10: service[0].flags[0]: invalid scheduler flag \"fallback\" (valid flags: flag-1, \
             flag-2, flag-3, sh-fallback, sh-port, mh-fallback, mh-port)"
        );
        // ipvsadm.c process_options.
        assert_eq!(
            err(&svc("ops = true\n")),
            "rvs.toml:4:7: service[0].ops: One-Packet Scheduling is only for UDP virtual services"
        );
        assert!(!one(&svc("ops = false\n")).ops);
    }

    #[test]
    fn server_rules() {
        let server = |body: &str| svc(&format!("[[service.server]]\n{body}"));
        assert_eq!(
            err(&server("method = \"masq\"\n")),
            "rvs.toml:4:1: service[0].server[0]: missing key \"address\" (every [[service.server]] needs an \
             address)"
        );
        // ipvsadm silently forces the service port; the config file may not.
        assert_eq!(
            err(&server("address = \"10.0.2.11:8080\"\n")),
            "rvs.toml:5:11: service[0].server[0].address: route/tunnel servers cannot remap ports \
             (specs/ipvs.md §4.5): use port 80 or method = \"masq\""
        );
        assert_eq!(
            err(&server("address = \"10.0.2.11:8080\"\nmethod = \"tunnel\"\n")),
            "rvs.toml:5:11: service[0].server[0].address: route/tunnel servers cannot remap ports \
             (specs/ipvs.md §4.5): use port 80 or method = \"masq\""
        );
        assert_eq!(
            err(&server("address = \"10.0.2.11\"\nmethod = \"snat\"\n")),
            "rvs.toml:6:10: service[0].server[0].method: \"snat\" is not a forwarding method (expected \
             \"masq\", \"route\" or \"tunnel\")"
        );
        // Omitted and explicit service port are the same server.
        assert_eq!(
            err(&format!("{}[[service.server]]\naddress = \"10.0.2.11:80\"\n", server("address = \"10.0.2.11\"\n"))),
            "rvs.toml:7:11: service[0].server[1].address: 10.0.2.11:80 is already server[0] of this service"
        );
        assert_eq!(
            err(&server("address = \"10.0.2.11\"\nweight = 65536\n")),
            "rvs.toml:6:10: service[0].server[0].weight: 65536 is out of range (expected 0..=65535)"
        );
        assert_eq!(
            err(&server("address = \"10.0.2.11\"\nweight = -1\n")),
            "rvs.toml:6:10: service[0].server[0].weight: -1 is out of range (expected 0..=65535)"
        );
        assert_eq!(
            err(&server("address = \"10.0.2.11\"\nu_threshold = 2147483648\n")),
            "rvs.toml:6:15: service[0].server[0].u_threshold: 2147483648 is out of range (expected \
             0..=2147483647)"
        );
        assert_eq!(
            err(&server("address = \"10.0.2.11\"\nl_threshold = -5\n")),
            "rvs.toml:6:15: service[0].server[0].l_threshold: -5 is out of range (expected 0..=2147483647)"
        );
        assert_eq!(
            err(&server("address = \"10.0.2.11\"\nu_threshold = 10\nl_threshold = 11\n")),
            "rvs.toml:7:15: service[0].server[0].l_threshold: 11 is above u_threshold 10; the kernel refuses \
             l_threshold > u_threshold (ERANGE, specs/ipvs.md §0)"
        );
        // The kernel's check is unconditional: u_threshold 0 (no limit) included.
        assert_eq!(
            err(&server("address = \"10.0.2.11\"\nl_threshold = 1\n")),
            "rvs.toml:6:15: service[0].server[0].l_threshold: 1 is above u_threshold 0; the kernel refuses \
             l_threshold > u_threshold (ERANGE, specs/ipvs.md §0)"
        );
        assert_eq!(
            err(&server("address = \"10.0.2.11\"\nport = 80\n")),
            "rvs.toml:6:1: service[0].server[0].port: unknown key (valid keys: address, method, weight, \
             u_threshold, l_threshold)"
        );
        assert_eq!(
            err(&svc("[service.server]\naddress = \"10.0.2.11\"\n")),
            "rvs.toml:4:1: service[0].server: invalid type: map, expected a sequence; write each entry as \
             [[service.server]], not [service.server]"
        );
        assert_eq!(
            err("[service]\nprotocol = \"tcp\"\n"),
            "rvs.toml:1:1: service: invalid type: map, expected a sequence; write each entry as [[service]], \
             not [service]"
        );
    }
}
