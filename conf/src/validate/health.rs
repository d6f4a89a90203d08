//! Validation of `[health]` and `[service.health]` (specs/ipvs.md §7.2,
//! §7.3): ldirectord's keys, defaults and fallbacks, with rvs's limits
//! (numeric IPv4 addresses, the check services it implements).

use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::Validator;
use crate::config::{Method, Protocol, ServiceAddr};
use crate::error::ConfError;
use crate::health::{
    service_for_port, Check, CheckService, CheckType, Fallback, Health, HttpMethod, DEFAULT_CHECKCOMMAND,
    DEFAULT_CHECKINTERVAL, DEFAULT_CHECKTIMEOUT, DEFAULT_NEGOTIATETIMEOUT, MAX_HEALTH_SECONDS, UNSUPPORTED_SERVICES,
};
use crate::schema::{Int, RawHealth, StrOrInt, S};
use crate::service;

/// The global `[health]` table, kept raw until each service folds it in.
pub(crate) struct HealthDefaults {
    raw: RawHealth,
}

impl Validator<'_> {
    /// Checks the global `[health]` table; returns the daemon-wide settings
    /// and the defaults for services.
    pub(super) fn health_global(&self, raw: Option<S<RawHealth>>) -> Result<(Health, HealthDefaults), ConfError> {
        let Some(raw) = raw else {
            return Ok((Health::default(), HealthDefaults { raw: RawHealth::default() }));
        };
        let raw = raw.into_inner();
        // Keys ldirectord only takes inside a virtual section (§7.3).
        let per_service: [(&str, bool, usize); 8] = [
            ("checktype", raw.checktype.is_some(), raw.checktype.as_ref().map_or(0, |v| v.span().start)),
            ("service", raw.service.is_some(), raw.service.as_ref().map_or(0, |v| v.span().start)),
            ("request", raw.request.is_some(), raw.request.as_ref().map_or(0, |v| v.span().start)),
            ("receive", raw.receive.is_some(), raw.receive.as_ref().map_or(0, |v| v.span().start)),
            ("httpmethod", raw.httpmethod.is_some(), raw.httpmethod.as_ref().map_or(0, |v| v.span().start)),
            ("virtualhost", raw.virtualhost.is_some(), raw.virtualhost.as_ref().map_or(0, |v| v.span().start)),
            ("checkport", raw.checkport.is_some(), raw.checkport.as_ref().map_or(0, |v| v.span().start)),
            ("checkcommand", raw.checkcommand.is_some(), raw.checkcommand.as_ref().map_or(0, |v| v.span().start)),
        ];
        if let Some((k, _, at)) = per_service.iter().find(|p| p.1) {
            return Err(self.r.invalid(
                *at,
                format!("health.{k}"),
                "only valid in a service's [service.health] table (ldirectord sets it per virtual, \
                 specs/ipvs.md §7.3)",
            ));
        }
        // Check the shared keys once here, so an error points at [health].
        for (key, v) in [
            ("checkinterval", &raw.checkinterval),
            ("checktimeout", &raw.checktimeout),
            ("negotiatetimeout", &raw.negotiatetimeout),
        ] {
            if let Some(v) = v {
                self.int_in(v, &format!("health.{key}"), 1, i64::from(MAX_HEALTH_SECONDS))?;
            }
        }
        if let Some(v) = &raw.failurecount {
            self.int_in(v, "health.failurecount", 1, i64::from(u32::MAX))?;
        }
        if let Some(a) = &raw.source_address {
            self.ipv4(a, "health.source_address")?;
        }
        if let Some(f) = &raw.fallback {
            // A global fallback keeps each service's port when it has none.
            let probe = ServiceAddr::Addr { protocol: Protocol::Tcp, vip: Ipv4Addr::UNSPECIFIED, port: 0 };
            self.fallback(f, "health.fallback", &probe)?;
        }
        if let Some(c) = &raw.fallbackcommand {
            if c.get_ref().trim().is_empty() {
                return Err(self.invalid(c, "health.fallbackcommand", "must not be empty"));
            }
        }
        let maintenancedir = match &raw.maintenancedir {
            None => None,
            Some(d) if d.get_ref().is_empty() => {
                return Err(self.invalid(d, "health.maintenancedir", "must not be empty"));
            }
            Some(d) => Some(PathBuf::from(d.get_ref())),
        };
        let health = Health {
            autoreload: raw.autoreload.as_ref().is_some_and(|a| a.get_ref().0),
            maintenancedir,
            checks: Vec::new(),
        };
        Ok((health, HealthDefaults { raw }))
    }

    /// Service `at`'s `[service.health]` table, with the global defaults
    /// folded in.
    pub(super) fn health_service(
        &self,
        at: &str,
        raw: &S<RawHealth>,
        svc: &ServiceAddr,
        defaults: &HealthDefaults,
    ) -> Result<Check, ConfError> {
        let r = raw.get_ref();
        let g = &defaults.raw;
        let at = format!("{at}.health");
        for (key, v) in [
            ("autoreload", r.autoreload.as_ref().map(|v| v.span().start)),
            ("maintenancedir", r.maintenancedir.as_ref().map(|v| v.span().start)),
        ] {
            if let Some(pos) = v {
                return Err(self.r.invalid(
                    pos,
                    format!("{at}.{key}"),
                    "only valid in the global [health] table (it is daemon-wide in ldirectord, specs/ipvs.md §7.2)",
                ));
            }
        }

        let checktype = match &r.checktype {
            None => CheckType::Negotiate,
            Some(v) => self.checktype(v, &format!("{at}.checktype"))?,
        };

        let vport = svc.port();
        let service = match &r.service {
            Some(s) => self.check_service(s.get_ref(), &format!("{at}.service"), s.span().start, None)?,
            None => {
                let deduced = service_for_port(vport);
                // Only negotiate needs a protocol; others ignore it.
                if matches!(checktype, CheckType::Negotiate | CheckType::Combined(_)) {
                    self.check_service(deduced, &format!("{at}.service"), raw.span().start, Some(vport))?
                } else {
                    match deduced {
                        "http" => CheckService::Http,
                        "https" => CheckService::Https,
                        "dns" => CheckService::Dns,
                        _ => CheckService::None,
                    }
                }
            }
        };
        let udp = matches!(svc, ServiceAddr::Addr { protocol: Protocol::Udp, .. });
        if udp && matches!(service, CheckService::Http | CheckService::Https | CheckService::SimpleTcp) {
            if let Some(s) = &r.service {
                return Err(self.invalid(
                    s,
                    format!("{at}.service"),
                    format!("\"{}\" is a TCP protocol and this is a UDP service", service.name()),
                ));
            }
        }

        let request = match (&r.request, service) {
            (Some(q), CheckService::Http | CheckService::Https) => {
                // ldirectord adds a missing leading slash (§7.3).
                let q = q.get_ref();
                if q.starts_with('/') {
                    q.clone()
                } else {
                    format!("/{q}")
                }
            }
            (Some(q), _) => q.get_ref().clone(),
            (None, CheckService::Dns) if matches!(checktype, CheckType::Negotiate | CheckType::Combined(_)) => {
                return Err(self.invalid(
                    raw,
                    format!("{at}.request"),
                    "a dns negotiate check needs request = the name to look up, like \"www.example.com\"",
                ));
            }
            (None, _) => "/".to_owned(),
        };
        if service == CheckService::Dns && r.request.is_some() {
            if let Some(q) = &r.request {
                let name = q.get_ref().trim_end_matches('.');
                if name.is_empty() || name.split('.').any(|l| l.is_empty() || l.len() > 63) || name.len() > 253 {
                    return Err(self.invalid(
                        q,
                        format!("{at}.request"),
                        format!("\"{}\" is not a DNS name (labels of 1..=63 characters)", q.get_ref()),
                    ));
                }
            }
        }

        let receive = match &r.receive {
            None => None,
            Some(v) => {
                if let Err(e) = regex::Regex::new(v.get_ref()) {
                    let first = e.to_string().lines().last().unwrap_or("").trim().to_owned();
                    return Err(self.invalid(
                        v,
                        format!("{at}.receive"),
                        format!("\"{}\" is not a valid regular expression: {first}", v.get_ref()),
                    ));
                }
                Some(v.get_ref().clone())
            }
        };

        let httpmethod = match &r.httpmethod {
            None => HttpMethod::Get,
            Some(m) => match m.get_ref().as_str() {
                "GET" => HttpMethod::Get,
                "HEAD" => HttpMethod::Head,
                other => {
                    return Err(self.invalid(
                        m,
                        format!("{at}.httpmethod"),
                        format!("\"{other}\" is not an HTTP method ldirectord uses (expected \"GET\" or \"HEAD\")"),
                    ))
                }
            },
        };

        let virtualhost = match &r.virtualhost {
            Some(v) if v.get_ref().is_empty() || v.get_ref().contains(['\r', '\n', ' ']) => {
                return Err(self.invalid(v, format!("{at}.virtualhost"), "must be a host name without spaces"));
            }
            v => v.as_ref().map(|v| v.get_ref().clone()),
        };

        let checkport = match &r.checkport {
            None => None,
            Some(p) => Some(self.int_in(p, &format!("{at}.checkport"), 1, 65535)? as u16),
        };
        let needs_port = match checktype {
            CheckType::Connect => !udp,
            CheckType::Negotiate | CheckType::Combined(_) => !(udp && service == CheckService::None),
            _ => false,
        };
        if checkport.is_none() && vport == 0 && needs_port {
            return Err(self.invalid(
                raw,
                format!("{at}.checkport"),
                format!(
                    "{svc} has no port to probe: set checkport, or checktype = \"ping\", \"external\", \"on\" or \"off\""
                ),
            ));
        }

        let checkcommand = match (&r.checkcommand, checktype) {
            (Some(c), _) if c.get_ref().trim().is_empty() => {
                return Err(self.invalid(c, format!("{at}.checkcommand"), "must not be empty"));
            }
            (Some(c), _) => c.get_ref().clone(),
            (None, _) => DEFAULT_CHECKCOMMAND.to_owned(),
        };

        let secs = |key: &str, own: &Option<S<Int>>, global: &Option<S<Int>>| -> Result<Option<u32>, ConfError> {
            match own.as_ref().or(global.as_ref()) {
                None => Ok(None),
                Some(v) => {
                    let k = if own.is_some() { format!("{at}.{key}") } else { format!("health.{key}") };
                    Ok(Some(self.int_in(v, &k, 1, i64::from(MAX_HEALTH_SECONDS))? as u32))
                }
            }
        };
        let checkinterval = secs("checkinterval", &r.checkinterval, &g.checkinterval)?.unwrap_or(DEFAULT_CHECKINTERVAL);
        let ct = secs("checktimeout", &r.checktimeout, &g.checktimeout)?;
        let nt = secs("negotiatetimeout", &r.negotiatetimeout, &g.negotiatetimeout)?;
        // §7.2: each falls back to the other before its built-in default.
        let checktimeout = ct.or(nt).unwrap_or(DEFAULT_CHECKTIMEOUT);
        let negotiatetimeout = nt.or(ct).unwrap_or(DEFAULT_NEGOTIATETIMEOUT);

        let failurecount = match r.failurecount.as_ref().or(g.failurecount.as_ref()) {
            None => 1,
            Some(v) => {
                let k =
                    if r.failurecount.is_some() { format!("{at}.failurecount") } else { "health.failurecount".into() };
                self.int_in(v, &k, 1, i64::from(u32::MAX))? as u32
            }
        };
        // The code default of ldirectord is quiescent = no (§7.2).
        let quiescent = r.quiescent.as_ref().or(g.quiescent.as_ref()).is_some_and(|q| q.get_ref().0);
        let readdquiescent = g.readdquiescent.as_ref().is_some_and(|q| q.get_ref().0);

        let fallback = match (&r.fallback, &g.fallback) {
            (Some(f), _) => Some(self.fallback(f, &format!("{at}.fallback"), svc)?),
            (None, Some(f)) => Some(self.fallback(f, "health.fallback", svc)?),
            (None, None) => None,
        };
        let fallbackcommand = match r.fallbackcommand.as_ref().or(g.fallbackcommand.as_ref()) {
            Some(c) if c.get_ref().trim().is_empty() => {
                return Err(self.invalid(c, format!("{at}.fallbackcommand"), "must not be empty"));
            }
            c => c.map(|c| c.get_ref().clone()),
        };
        let source_address = match (&r.source_address, &g.source_address) {
            (Some(a), _) => Some(self.ipv4(a, &format!("{at}.source_address"))?),
            (None, Some(a)) => Some(self.ipv4(a, "health.source_address")?),
            (None, None) => None,
        };

        Ok(Check {
            checktype,
            service,
            request,
            receive,
            httpmethod,
            virtualhost,
            checkport,
            checkcommand,
            checkinterval,
            checktimeout,
            negotiatetimeout,
            failurecount,
            quiescent,
            readdquiescent,
            fallback,
            fallbackcommand,
            source_address,
        })
    }

    fn checktype(&self, v: &S<StrOrInt>, key: &str) -> Result<CheckType, ConfError> {
        let expected = "expected connect, negotiate, ping, external, on, off or a number of connect checks \
                        between negotiate checks";
        let n = match v.get_ref() {
            StrOrInt::Int(n) => *n,
            StrOrInt::Str(s) => match s.as_str() {
                "connect" => return Ok(CheckType::Connect),
                "negotiate" => return Ok(CheckType::Negotiate),
                "ping" => return Ok(CheckType::Ping),
                "external" => return Ok(CheckType::External),
                "on" => return Ok(CheckType::On),
                "off" => return Ok(CheckType::Off),
                "external-perl" => {
                    return Err(self.invalid(
                        v,
                        key,
                        "\"external-perl\" is not supported by rvs (no Perl interpreter inside rvsd); use \
                         \"external\" with a script",
                    ))
                }
                other => match other.parse::<i64>() {
                    Ok(n) => n,
                    Err(_) => {
                        return Err(self.invalid(v, key, format!("\"{other}\" is not a check type ({expected})")))
                    }
                },
            },
        };
        match u32::try_from(n) {
            Ok(n) if n >= 1 => Ok(CheckType::Combined(n)),
            _ => Err(self.invalid(
                v,
                key,
                format!("{n} is out of range (expected 1..=4294967295, or a name: {expected})"),
            )),
        }
    }

    /// A check service name; `deduced_from` is the port it was deduced from.
    fn check_service(
        &self,
        name: &str,
        key: &str,
        at: usize,
        deduced_from: Option<u16>,
    ) -> Result<CheckService, ConfError> {
        let supported = "supported: http, https, simpletcp (or tcp), dns, none";
        match name {
            "http" => Ok(CheckService::Http),
            "https" => Ok(CheckService::Https),
            "simpletcp" | "tcp" => Ok(CheckService::SimpleTcp),
            "dns" => Ok(CheckService::Dns),
            "none" => Ok(CheckService::None),
            other => {
                let why = match deduced_from {
                    Some(p) => format!(
                        "the negotiate check for port {p} would be ldirectord's \"{other}\", which rvs does not \
                         implement ({supported}); set service, or checktype = \"connect\""
                    ),
                    None if UNSUPPORTED_SERVICES.contains(&other) => {
                        format!("\"{other}\" checks are not implemented by rvs ({supported})")
                    }
                    None => format!("\"{other}\" is not a check service ({supported})"),
                };
                Err(self.r.invalid(at, key, why))
            }
        }
    }

    /// `ip[:port] [gate|masq|ipip]` on service `svc`.
    fn fallback(&self, v: &S<String>, key: &str, svc: &ServiceAddr) -> Result<Fallback, ConfError> {
        let mut words = v.get_ref().split_whitespace();
        let Some(addr) = words.next() else {
            return Err(self.invalid(v, key, "must be \"ip[:port] [gate|masq|ipip]\", like \"127.0.0.1:80 gate\""));
        };
        let (ip, port) = service::addr_port(addr).map_err(|m| self.invalid(v, key, m))?;
        let method = match words.next() {
            None | Some("gate") => Method::Route,
            Some("masq") => Method::Masq,
            Some("ipip") => Method::Tunnel,
            Some(other) => {
                return Err(self.invalid(
                    v,
                    key,
                    format!("\"{other}\" is not a forwarding method (expected gate, masq or ipip)"),
                ))
            }
        };
        if let Some(extra) = words.next() {
            return Err(self.invalid(
                v,
                key,
                format!("unexpected \"{extra}\" (expected \"ip[:port] [gate|masq|ipip]\")"),
            ));
        }
        let vport = svc.port();
        if vport != 0 && service::port_fixed(svc, method) && port.is_some_and(|p| p != 0 && p != vport) {
            return Err(self.invalid(v, key, service::remap_message(vport)));
        }
        Ok(Fallback { addr: ip, port: service::server_port(svc, port), method })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Method;
    use crate::health::{Check, CheckService, CheckType, Fallback, HttpMethod};
    use crate::parse;

    fn err(text: &str) -> String {
        match parse(text, "rvs.toml") {
            Ok(c) => format!("unexpectedly valid: {:?}", c.health),
            Err(e) => e.to_string(),
        }
    }

    /// `global` at the top, then a tcp service on `addr` whose health table holds `h`.
    fn cfg(global: &str, addr: &str, h: &str) -> String {
        let global = if global.is_empty() { String::new() } else { format!("{global}\n") };
        format!(
            "{global}[[service]]\nprotocol = \"tcp\"\naddress = \"{addr}\"\n[service.health]\n{h}\n\
             [[service.server]]\naddress = \"10.0.2.11\"\nmethod = \"masq\"\n"
        )
    }

    fn check(text: &str) -> Check {
        parse(text, "rvs.toml").unwrap().health.checks.remove(0).check
    }

    #[test]
    fn ldirectord_defaults() {
        let c = check(&cfg("", "10.0.0.100:80", ""));
        assert_eq!(
            c,
            Check {
                checktype: CheckType::Negotiate,
                service: CheckService::Http,
                request: "/".into(),
                receive: None,
                httpmethod: HttpMethod::Get,
                virtualhost: None,
                checkport: None,
                checkcommand: "/bin/true".into(),
                checkinterval: 10,
                checktimeout: 5,
                negotiatetimeout: 30,
                failurecount: 1,
                quiescent: false,
                readdquiescent: false,
                fallback: None,
                fallbackcommand: None,
                source_address: None,
            }
        );
        // No [service.health]: not checked.
        let c = parse("[[service]]\nprotocol = \"tcp\"\naddress = \"10.0.0.100:80\"\n", "rvs.toml").unwrap();
        assert!(c.health.checks.is_empty());
    }

    #[test]
    fn global_defaults_and_timeout_fallbacks() {
        let g = "[health]\ncheckinterval = 2\nnegotiatetimeout = 3\nfailurecount = 2\nquiescent = \"yes\"\n\
                 fallback = \"127.0.0.1 gate\"\nsource_address = \"10.0.2.250\"\nautoreload = true";
        let text = cfg(g, "10.0.0.100:443", "request = \"index.html\"\nreceive = \"ok\"\ncheckinterval = 1");
        let c = parse(&text, "rvs.toml").unwrap();
        assert!(c.health.autoreload);
        let k = &c.health.checks[0].check;
        assert_eq!(k.service, CheckService::Https);
        assert_eq!(k.request, "/index.html");
        assert_eq!((k.checkinterval, k.checktimeout, k.negotiatetimeout, k.failurecount), (1, 3, 3, 2));
        assert!(k.quiescent);
        assert_eq!(k.fallback, Some(Fallback { addr: "127.0.0.1".parse().unwrap(), port: 443, method: Method::Route }));
        assert_eq!(k.source_address, Some("10.0.2.250".parse().unwrap()));
        let k = check(&cfg("[health]\nchecktimeout = 4", "10.0.0.100:80", "checktype = 3"));
        assert_eq!((k.checktype, k.checktimeout, k.negotiatetimeout), (CheckType::Combined(3), 4, 4));
    }

    #[test]
    fn refused_with_the_reason() {
        assert_eq!(
            err(&cfg("", "10.0.0.100:80", "checktype = \"negotiat\"")),
            "rvs.toml:5:13: service[0].health.checktype: \"negotiat\" is not a check type (expected connect, \
             negotiate, ping, external, on, off or a number of connect checks between negotiate checks)"
        );
        assert_eq!(
            err(&cfg("", "10.0.0.100:3306", "")),
            "rvs.toml:4:1: service[0].health.service: the negotiate check for port 3306 would be ldirectord's \
             \"mysql\", which rvs does not implement (supported: http, https, simpletcp (or tcp), dns, none); set \
             service, or checktype = \"connect\""
        );
        assert_eq!(
            err(&cfg("", "10.0.0.100:80", "receive = \"(ok\"")),
            "rvs.toml:5:11: service[0].health.receive: \"(ok\" is not a valid regular expression: error: \
             unclosed group"
        );
        assert_eq!(
            err(&cfg("[health]\nrequest = \"/\"", "10.0.0.100:80", "")),
            "rvs.toml:2:11: health.request: only valid in a service's [service.health] table (ldirectord sets \
             it per virtual, specs/ipvs.md §7.3)"
        );
        assert_eq!(
            err(&cfg("", "10.0.0.100:80", "autoreload = \"yes\"")),
            "rvs.toml:5:14: service[0].health.autoreload: only valid in the global [health] table (it is \
             daemon-wide in ldirectord, specs/ipvs.md §7.2)"
        );
        assert_eq!(
            err(&cfg("", "10.0.0.100:80", "failurecount = 0")),
            "rvs.toml:5:16: service[0].health.failurecount: 0 is out of range (expected 1..=4294967295)"
        );
        assert_eq!(
            err(&cfg("", "10.0.0.100:80", "fallback = \"127.0.0.1:8080 gate\"")),
            "rvs.toml:5:12: service[0].health.fallback: route/tunnel servers cannot remap ports (specs/ipvs.md \
             §4.5): use port 80 or method = \"masq\""
        );
        assert_eq!(
            err(&cfg("", "10.0.0.100:80", "quiescent = \"maybe\"")),
            "rvs.toml:5:13: service[0].health.quiescent: \"maybe\" is not \"yes\", \"no\" or a boolean"
        );
        assert_eq!(
            err(&cfg("", "10.0.0.100:80", "httpmethod = \"POST\"")),
            "rvs.toml:5:14: service[0].health.httpmethod: \"POST\" is not an HTTP method ldirectord uses \
             (expected \"GET\" or \"HEAD\")"
        );
        assert_eq!(
            err(&cfg("", "10.0.0.100:80", "service = \"ftp\"")),
            "rvs.toml:5:11: service[0].health.service: \"ftp\" checks are not implemented by rvs (supported: \
             http, https, simpletcp (or tcp), dns, none)"
        );
        assert_eq!(
            err(&cfg("", "10.0.0.100:80", "service = \"dns\"")),
            "rvs.toml:4:1: service[0].health.request: a dns negotiate check needs request = the name to look up, \
             like \"www.example.com\""
        );
    }
}
