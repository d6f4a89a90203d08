//! Rules about virtual services shared by the TOML `[[service]]` tables and
//! ipvsadm rules files: scheduler names, `-b` flags, address and netmask
//! syntax, effective server ports. Every function returns a message that
//! names the offending input and reads well after `FILE:LINE:COL: KEY: `.
//!
//! Addresses are numeric IPv4 only: the appliance does no DNS and no
//! /etc/services lookups, unlike ipvsadm.

use std::net::Ipv4Addr;

use crate::config::{Method, ServiceAddr, SCHEDULERS, SVC_F_SCHED1, SVC_F_SCHED2, SVC_F_SCHED3};

/// The scheduler called `name`, if rvs implements it.
pub(crate) fn scheduler(name: &str) -> Result<&'static str, String> {
    SCHEDULERS
        .iter()
        .copied()
        .find(|s| *s == name)
        .ok_or_else(|| format!("\"{name}\" is not a supported scheduler (supported: {})", SCHEDULERS.join(", ")))
}

/// Every `-b` name ipvsadm knows, with the scheduler it is limited to.
pub(crate) const FLAGS: &[(&str, u32, Option<&str>)] = &[
    ("flag-1", SVC_F_SCHED1, None),
    ("flag-2", SVC_F_SCHED2, None),
    ("flag-3", SVC_F_SCHED3, None),
    ("sh-fallback", SVC_F_SCHED1, Some("sh")),
    ("sh-port", SVC_F_SCHED2, Some("sh")),
    ("mh-fallback", SVC_F_SCHED1, Some("mh")),
    ("mh-port", SVC_F_SCHED2, Some("mh")),
];

/// The `IP_VS_SVC_F_SCHED*` bit of a `-b` name.
pub(crate) fn flag_bit(name: &str) -> Option<u32> {
    FLAGS.iter().find(|f| f.0 == name).map(|f| f.1)
}

/// The bit of flag `name` on a service scheduled by `sched`
/// (ipvsadm.c `parse_sched_flags`: the sh-/mh- names only go with their
/// scheduler).
pub(crate) fn check_flag(sched: &str, name: &str) -> Result<u32, String> {
    let Some(&(_, bit, only)) = FLAGS.iter().find(|f| f.0 == name) else {
        let valid: Vec<&str> = FLAGS.iter().map(|f| f.0).collect();
        return Err(format!("invalid scheduler flag \"{name}\" (valid flags: {})", valid.join(", ")));
    };
    match only {
        Some(s) if s != sched => Err(format!(
            "incompatible scheduler flag \"{name}\": it is for the {s} scheduler, and this service uses {sched}"
        )),
        _ => Ok(bit),
    }
}

/// The canonical names of `bits` for `sched`, as ipvsadm prints them
/// (ipvsadm.c `print_sched_flags`), in bit order. ipvsadm prints nothing
/// for SCHED3 on sh and mh; rvs writes `flag-3` so it survives a save.
pub(crate) fn flag_names(sched: &str, bits: u32) -> Vec<String> {
    let names: [&str; 3] = match sched {
        "sh" => ["sh-fallback", "sh-port", "flag-3"],
        "mh" => ["mh-fallback", "mh-port", "flag-3"],
        _ => ["flag-1", "flag-2", "flag-3"],
    };
    [SVC_F_SCHED1, SVC_F_SCHED2, SVC_F_SCHED3]
        .iter()
        .zip(names)
        .filter(|(bit, _)| bits & **bit != 0)
        .map(|(_, n)| n.to_owned())
        .collect()
}

/// `ADDRESS[:PORT]`: a numeric IPv4 address and an optional numeric port.
pub(crate) fn addr_port(s: &str) -> Result<(Ipv4Addr, Option<u16>), String> {
    if s.starts_with('[') || s.matches(':').count() > 1 {
        return Err(format!("\"{s}\" is an IPv6 address; rvs supports IPv4 only"));
    }
    let (host, port) = match s.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    let addr: Ipv4Addr = host.parse().map_err(|_| {
        if host.bytes().any(|b| b.is_ascii_alphabetic()) {
            format!("\"{s}\" names a host; only numeric IPv4 addresses are accepted (rvs does no DNS)")
        } else {
            format!("\"{s}\" is not an IPv4 address with an optional port (expected a form like 10.0.0.1:80)")
        }
    })?;
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => match p.parse::<u16>() {
            Ok(n) => Some(n),
            Err(_) => return Err(format!("\"{s}\": port {p} is out of range (expected 0..=65535)")),
        },
        Some(p) if p.bytes().any(|b| b.is_ascii_alphabetic()) => {
            return Err(format!(
                "\"{s}\" names a port by service name; only numeric ports are accepted (rvs does no name lookups)"
            ))
        }
        Some(_) => {
            return Err(format!(
                "\"{s}\" is not an IPv4 address with an optional port (expected a form like 10.0.0.1:80)"
            ))
        }
    };
    Ok((addr, port))
}

/// A dotted-quad netmask whose one bits are contiguous.
pub(crate) fn netmask(s: &str) -> Result<Ipv4Addr, String> {
    let m: Ipv4Addr =
        s.parse().map_err(|_| format!("\"{s}\" is not a netmask (expected a form like 255.255.255.0)"))?;
    let bits = u32::from(m);
    if bits.leading_ones() + bits.trailing_zeros() != 32 {
        return Err(format!("\"{s}\" is not a contiguous netmask (expected a form like 255.255.255.0)"));
    }
    Ok(m)
}

/// Why a route/tunnel server on an address service may not name a port
/// other than the service's (specs/ipvs.md §4.5).
pub(crate) fn remap_message(service_port: u16) -> String {
    format!(
        "route/tunnel servers cannot remap ports (specs/ipvs.md §4.5): use port {service_port} or \
         method = \"masq\""
    )
}

/// The effective port of a server written with `port` (None: omitted) on
/// service `svc`: on an address service a missing or 0 port is the service
/// port (ipvsadm copies the vport when `-r` has none, and the kernel keeps
/// the client's port for 0, which is the same thing there).
pub(crate) fn server_port(svc: &ServiceAddr, port: Option<u16>) -> u16 {
    match (svc, port.unwrap_or(0)) {
        (ServiceAddr::Addr { port: vport, .. }, 0) => *vport,
        (_, p) => p,
    }
}

/// Whether `method` cannot change ports on `svc` (ipvsadm forces the
/// service port for -g/-i on non-fwmark services).
pub(crate) fn port_fixed(svc: &ServiceAddr, method: Method) -> bool {
    matches!(svc, ServiceAddr::Addr { .. }) && matches!(method, Method::Route | Method::Tunnel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(addr_port("10.0.0.1:80"), Ok((Ipv4Addr::new(10, 0, 0, 1), Some(80))));
        assert_eq!(addr_port("10.0.0.1"), Ok((Ipv4Addr::new(10, 0, 0, 1), None)));
        assert_eq!(addr_port("10.0.0.1:0"), Ok((Ipv4Addr::new(10, 0, 0, 1), Some(0))));
        assert_eq!(
            addr_port("lb.example.com:80").unwrap_err(),
            "\"lb.example.com:80\" names a host; only numeric IPv4 addresses are accepted (rvs does no DNS)"
        );
        assert_eq!(
            addr_port("10.0.0.1:http").unwrap_err(),
            "\"10.0.0.1:http\" names a port by service name; only numeric ports are accepted (rvs does no \
             name lookups)"
        );
        assert_eq!(
            addr_port("10.0.0.1:65536").unwrap_err(),
            "\"10.0.0.1:65536\": port 65536 is out of range (expected 0..=65535)"
        );
        assert_eq!(addr_port("[::1]:80").unwrap_err(), "\"[::1]:80\" is an IPv6 address; rvs supports IPv4 only");
        assert_eq!(
            addr_port("10.0.0:80").unwrap_err(),
            "\"10.0.0:80\" is not an IPv4 address with an optional port (expected a form like 10.0.0.1:80)"
        );
        assert!(addr_port("10.0.0.1:").is_err());
        assert!(addr_port("10.0.0.1:-1").is_err());
    }

    #[test]
    fn netmasks() {
        assert_eq!(netmask("255.255.255.0"), Ok(Ipv4Addr::new(255, 255, 255, 0)));
        assert_eq!(netmask("0.0.0.0"), Ok(Ipv4Addr::UNSPECIFIED));
        assert_eq!(netmask("255.255.255.255"), Ok(Ipv4Addr::BROADCAST));
        assert_eq!(
            netmask("255.0.255.0").unwrap_err(),
            "\"255.0.255.0\" is not a contiguous netmask (expected a form like 255.255.255.0)"
        );
        assert_eq!(netmask("24").unwrap_err(), "\"24\" is not a netmask (expected a form like 255.255.255.0)");
    }

    #[test]
    fn flags() {
        assert_eq!(check_flag("sh", "sh-port"), Ok(SVC_F_SCHED2));
        assert_eq!(check_flag("wlc", "flag-1"), Ok(SVC_F_SCHED1));
        assert_eq!(
            check_flag("wlc", "mh-port").unwrap_err(),
            "incompatible scheduler flag \"mh-port\": it is for the mh scheduler, and this service uses wlc"
        );
        assert_eq!(
            check_flag("sh", "port").unwrap_err(),
            "invalid scheduler flag \"port\" (valid flags: flag-1, flag-2, flag-3, sh-fallback, sh-port, \
             mh-fallback, mh-port)"
        );
        assert_eq!(flag_names("sh", SVC_F_SCHED1 | SVC_F_SCHED2), ["sh-fallback", "sh-port"]);
        assert_eq!(flag_names("mh", SVC_F_SCHED2 | SVC_F_SCHED3), ["mh-port", "flag-3"]);
        assert_eq!(flag_names("rr", SVC_F_SCHED3 | SVC_F_SCHED1), ["flag-1", "flag-3"]);
        assert!(flag_names("rr", 0).is_empty());
    }
}
