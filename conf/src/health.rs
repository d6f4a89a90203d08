//! Health checks, ldirectord style (specs/ipvs.md §7): the validated form of
//! the global `[health]` table and of each service's `[service.health]`
//! table. Every value here is resolved: the global defaults are folded into
//! each service's [`Check`], timeouts follow ldirectord's fallbacks (§7.2),
//! and the check's `service` is deduced from the port when not given (§7.3).
//!
//! A service is checked only when it has a `[service.health]` table (an
//! empty one takes every default): services written without one keep their
//! servers as configured, as before health checks existed.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::config::{Method, ServiceAddr};

/// ldirectord's `checkinterval` default (§7.2), seconds.
pub const DEFAULT_CHECKINTERVAL: u32 = 10;
/// ldirectord's built-in `checktimeout` (§7.2), seconds.
pub const DEFAULT_CHECKTIMEOUT: u32 = 5;
/// ldirectord's built-in `negotiatetimeout` (§7.2), seconds.
pub const DEFAULT_NEGOTIATETIMEOUT: u32 = 30;
/// Largest interval or timeout accepted, seconds (one day).
pub const MAX_HEALTH_SECONDS: u32 = 86_400;
/// ldirectord's `checkcommand` default (§7.3).
pub const DEFAULT_CHECKCOMMAND: &str = "/bin/true";

/// `checktype` (specs/ipvs.md §7.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckType {
    /// A TCP connect (UDP services: an ICMP echo, as ldirectord does).
    Connect,
    /// The service's request/response exchange.
    Negotiate,
    /// ICMP echo.
    Ping,
    /// `checkcommand <vip|fwm> <vport> <rip> <rport>`; exit 0 = up.
    External,
    /// No checks, and no real or fallback server is activated.
    Off,
    /// Always up.
    On,
    /// N connect checks, then one negotiate.
    Combined(u32),
}

impl CheckType {
    pub fn name(self) -> String {
        match self {
            CheckType::Connect => "connect".into(),
            CheckType::Negotiate => "negotiate".into(),
            CheckType::Ping => "ping".into(),
            CheckType::External => "external".into(),
            CheckType::Off => "off".into(),
            CheckType::On => "on".into(),
            CheckType::Combined(n) => n.to_string(),
        }
    }
}

/// `service`: what a negotiate check speaks (specs/ipvs.md §7.3). rvs
/// implements these; ldirectord's other names are refused by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckService {
    /// No protocol: a negotiate check is a connect check.
    None,
    Http,
    Https,
    /// ldirectord's `simpletcp`: send `request`, match `receive`.
    SimpleTcp,
    /// A UDP DNS query for `request`.
    Dns,
}

impl CheckService {
    pub fn name(self) -> &'static str {
        match self {
            CheckService::None => "none",
            CheckService::Http => "http",
            CheckService::Https => "https",
            CheckService::SimpleTcp => "simpletcp",
            CheckService::Dns => "dns",
        }
    }
}

/// `httpmethod` (§7.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum HttpMethod {
    #[default]
    Get,
    Head,
}

/// `fallback = "ip[:port] [gate|masq|ipip]"`: the sorry server (§7.2, §7.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fallback {
    pub addr: Ipv4Addr,
    /// The effective port (the service port when not given).
    pub port: u16,
    pub method: Method,
}

/// One service's resolved health-check settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub checktype: CheckType,
    pub service: CheckService,
    /// HTTP path (with a leading `/`), simpletcp payload, or DNS name.
    pub request: String,
    /// A regular expression (validated) the response must match.
    pub receive: Option<String>,
    pub httpmethod: HttpMethod,
    /// HTTP `Host:` (the server's address when not given).
    pub virtualhost: Option<String>,
    /// Port probed instead of the server's port.
    pub checkport: Option<u16>,
    pub checkcommand: String,
    /// Seconds between checks of one server.
    pub checkinterval: u32,
    /// Seconds allowed for connect, ping and external checks.
    pub checktimeout: u32,
    /// Seconds allowed for negotiate checks.
    pub negotiatetimeout: u32,
    /// Consecutive failures before a server counts as down (≥ 1).
    pub failurecount: u32,
    /// Down servers get weight 0 (true) or are removed (false).
    pub quiescent: bool,
    /// With `quiescent`, a down server missing from the table (deleted by
    /// hand) is added back with weight 0 (§7.2 `readdquiescent`).
    pub readdquiescent: bool,
    pub fallback: Option<Fallback>,
    /// Run with `start|stop vip:vport proto` when the fallback goes on/off.
    pub fallbackcommand: Option<String>,
    /// Probes are sent from this address (bound before connecting).
    pub source_address: Option<Ipv4Addr>,
}

/// A checked service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceCheck {
    pub service: ServiceAddr,
    pub check: Check,
}

/// The `[health]` table's daemon-wide settings and every service's checks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Health {
    /// Reload when the config file's modification time changes (§7.2).
    pub autoreload: bool,
    /// A file named `ip`, `ip:port` in it forces that server down (§7.2).
    pub maintenancedir: Option<PathBuf>,
    /// In service order.
    pub checks: Vec<ServiceCheck>,
}

impl Health {
    /// The check of `service`, if it is checked.
    pub fn check_of(&self, service: &ServiceAddr) -> Option<&Check> {
        self.checks.iter().find(|c| c.service == *service).map(|c| &c.check)
    }
}

/// ldirectord's service deduced from the virtual port (§7.3), by name.
pub(crate) fn service_for_port(port: u16) -> &'static str {
    match port {
        21 => "ftp",
        25 => "smtp",
        53 => "dns",
        80 => "http",
        110 => "pop",
        119 => "nntp",
        143 => "imap",
        389 => "ldap",
        443 => "https",
        465 => "smtp",
        587 => "submission",
        636 => "ldaps",
        993 => "imaps",
        995 => "pops",
        1521 => "oracle",
        1812 => "radius",
        3128 => "http_proxy",
        3306 => "mysql",
        5060 => "sip",
        5432 => "pgsql",
        _ => "none",
    }
}

/// ldirectord's service names that rvs does not implement.
pub(crate) const UNSUPPORTED_SERVICES: &[&str] = &[
    "ftp",
    "smtp",
    "pop",
    "pops",
    "nntp",
    "imap",
    "imaps",
    "ldap",
    "ldaps",
    "oracle",
    "radius",
    "http_proxy",
    "mysql",
    "sip",
    "pgsql",
    "submission",
];
