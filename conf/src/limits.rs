//! What ipvsadm and the kernel accept for a virtual service, a real server
//! and `--set`, with the texts they print for what they refuse
//! (specs/ipvs.md §6.1). One copy, used by rvsadm when it parses a command
//! line, by the control protocol when it decodes a request, and by rvsd
//! before it changes anything, so no client can put into the running state
//! what rvsadm could not save and restore.
//!
//! A [`Refusal`] is either a usage error ipvsadm reports before asking the
//! kernel (`fail(2, ...)`: exit status 2) or a kernel error ipvsadm prints as
//! `ipvs_strerror(errno)` (exit status 255).

use std::fmt;
use std::net::Ipv4Addr;

use crate::config::{Protocol, Server, Service, ServiceAddr, MAX_THRESHOLD, MAX_TIMEOUT, SCHEDULERS};

pub mod de;

/// Largest `-w` (ipvsadm.c: `string_to_number(optarg, 0, 65535)`).
pub const MAX_WEIGHT: u32 = 65535;

/// ERANGE as ipvsadm prints it (strerror).
pub const ERANGE: &str = "Numerical result out of range";
/// ENOENT from `-A`/`-E`: the scheduler is not there (`ipvs_strerror`).
pub const NO_SCHEDULER: &str = "Scheduler or persistence engine not found";

/// Why ipvsadm or the kernel refuses a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// ipvsadm refuses it while parsing (`fail(2, ...)`).
    Usage(String),
    /// The kernel refuses it; the text is ipvsadm's `ipvs_strerror`.
    Kernel(&'static str),
}

impl Refusal {
    /// The message ipvsadm prints.
    pub fn message(&self) -> &str {
        match self {
            Refusal::Usage(m) => m,
            Refusal::Kernel(m) => m,
        }
    }

    /// ipvsadm's exit status: 2 for a usage error, 255 (`return -1` from
    /// main) for a kernel error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Refusal::Usage(_) => 2,
            Refusal::Kernel(_) => 255,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for Refusal {}

/// `n` (None: not a number) in `lo..=hi`, else `why`.
fn within(n: Option<i128>, lo: u32, hi: u32, why: impl FnOnce() -> String) -> Result<u32, Refusal> {
    n.filter(|n| (i128::from(lo)..=i128::from(hi)).contains(n))
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| Refusal::Usage(why()))
}

/// `-w`: 0..=65535.
pub fn weight(n: Option<i128>) -> Result<u16, Refusal> {
    let w = within(n, 0, MAX_WEIGHT, || "illegal weight specified".into())?;
    u16::try_from(w).map_err(|_| Refusal::Usage("illegal weight specified".into()))
}

/// `-x`: 0..=INT_MAX.
pub fn u_threshold(n: Option<i128>) -> Result<u32, Refusal> {
    within(n, 0, MAX_THRESHOLD, || "illegal u_threshold specified".into())
}

/// `-y`: 0..=INT_MAX.
pub fn l_threshold(n: Option<i128>) -> Result<u32, Refusal> {
    within(n, 0, MAX_THRESHOLD, || "illegal l_threshold specified".into())
}

/// A `--set` value as `written`: 0..=2678400, 0 keeping the current one
/// (ipvsadm.c `parse_timeout`, specs/ipvs.md §3.7).
pub fn set_timeout(n: Option<i128>, written: &str) -> Result<u32, Refusal> {
    within(n, 0, MAX_TIMEOUT, || format!("invalid timeout value `{written}' specified"))
}

/// A `-p` timeout as `written`: 1..=2678400.
pub fn persistent(n: Option<i128>, written: &str) -> Result<u32, Refusal> {
    within(n, 1, MAX_TIMEOUT, || format!("invalid timeout value `{written}' specified"))
}

/// A `-f` mark as `written`: 1..=4294967295.
pub fn fwmark(n: Option<i128>, written: &str) -> Result<u32, Refusal> {
    within(n, 1, u32::MAX, || format!("invalid fwmark value `{written}' specified"))
}

/// A `-M` netmask: rvs groups clients by a prefix, so the one bits must be
/// contiguous.
pub fn netmask(m: Ipv4Addr) -> Result<Ipv4Addr, Refusal> {
    let bits = u32::from(m);
    if bits.leading_ones() + bits.trailing_zeros() == 32 {
        Ok(m)
    } else {
        Err(Refusal::Usage(
            "illegal virtual server persistent mask specified (rvs needs a contiguous mask such as 255.255.255.0)"
                .into(),
        ))
    }
}

/// `-s`: a scheduler rvs implements; the kernel answers ENOENT for others.
pub fn scheduler(name: &str) -> Result<&'static str, Refusal> {
    SCHEDULERS.iter().copied().find(|s| *s == name).ok_or(Refusal::Kernel(NO_SCHEDULER))
}

/// `-b NAME,...` on a service scheduled by `sched` (ipvsadm.c
/// `parse_sched_flags`): the names in canonical form (deduplicated, in bit
/// order, as ipvsadm prints them for `sched`).
pub fn sched_flags<S: AsRef<str>>(sched: &str, names: &[S]) -> Result<Vec<String>, Refusal> {
    let mut bits = 0;
    for name in names.iter().map(AsRef::as_ref) {
        let Some(&(_, bit, only)) = crate::service::FLAGS.iter().find(|f| f.0 == name) else {
            return Err(Refusal::Usage(format!("invalid scheduler flag `{name}'")));
        };
        if only.is_some_and(|s| s != sched) {
            return Err(Refusal::Usage(format!("incompatible scheduler flag `{name}'")));
        }
        bits |= bit;
    }
    Ok(crate::service::flag_names(sched, bits))
}

/// The `IP_VS_SVC_F_SCHED*` bits of `-b` names (unknown names count for
/// nothing).
pub fn flag_bits<S: AsRef<str>>(names: &[S]) -> u32 {
    names.iter().filter_map(|n| crate::service::flag_bit(n.as_ref())).fold(0, |a, b| a | b)
}

/// The names of `bits` as ipvsadm prints them for `sched`, in bit order.
pub fn flag_names(sched: &str, bits: u32) -> Vec<String> {
    crate::service::flag_names(sched, bits)
}

/// ipvsadm.c `process_options`: a port-0 address service must be persistent.
pub fn zero_port(addr: &ServiceAddr, persistent: bool) -> Result<(), Refusal> {
    match addr {
        ServiceAddr::Addr { port: 0, .. } if !persistent => {
            Err(Refusal::Usage("Zero port specified for non-persistent service".into()))
        }
        _ => Ok(()),
    }
}

/// ipvsadm.c `process_options`: `-o` only on UDP and fwmark services.
pub fn one_packet(addr: &ServiceAddr, ops: bool) -> Result<(), Refusal> {
    match addr {
        ServiceAddr::Addr { protocol: Protocol::Tcp, .. } if ops => {
            Err(Refusal::Usage("One-Packet Scheduling is only for UDP virtual services".into()))
        }
        _ => Ok(()),
    }
}

/// What ipvsadm checks of a whole `-A`/`-E` service, in its order (its
/// servers are not looked at). Returns the service with its flags in
/// canonical form. The kernel looks the scheduler up ([`scheduler`]) after
/// it has found the service (`-E`) or found it absent (`-A`).
pub fn service(s: &Service) -> Result<Service, Refusal> {
    if let ServiceAddr::Fwmark(m) = s.addr {
        fwmark(Some(i128::from(m)), &m.to_string())?;
    }
    if let Some(p) = s.persistent {
        persistent(Some(i128::from(p)), &p.to_string())?;
    }
    netmask(s.netmask)?;
    let flags = sched_flags(&s.scheduler, &s.flags)?;
    zero_port(&s.addr, s.persistent.is_some())?;
    one_packet(&s.addr, s.ops)?;
    Ok(Service { flags, ..s.clone() })
}

/// A `-a`/`-e` real server: ipvsadm's ranges, then the kernel's
/// l_threshold <= u_threshold (ERANGE, specs/ipvs.md §1.1).
pub fn server(s: &Server) -> Result<(), Refusal> {
    weight(Some(i128::from(s.weight)))?;
    u_threshold(Some(i128::from(s.u_threshold)))?;
    l_threshold(Some(i128::from(s.l_threshold)))?;
    if s.l_threshold > s.u_threshold {
        return Err(Refusal::Kernel(ERANGE));
    }
    Ok(())
}

/// `--set tcp tcpfin udp`.
pub fn set_timeouts(tcp: u32, tcpfin: u32, udp: u32) -> Result<(), Refusal> {
    for t in [tcp, tcpfin, udp] {
        set_timeout(Some(i128::from(t)), &t.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Method;

    fn svc(addr: ServiceAddr) -> Service {
        Service {
            addr,
            scheduler: "wlc".into(),
            persistent: None,
            netmask: Ipv4Addr::BROADCAST,
            flags: vec![],
            ops: false,
            servers: vec![],
        }
    }

    fn msg<T: fmt::Debug>(r: Result<T, Refusal>) -> (String, i32) {
        let e = r.unwrap_err();
        (e.message().to_owned(), e.exit_code())
    }

    #[test]
    fn numbers_and_their_texts() {
        assert_eq!(weight(Some(65535)), Ok(65535));
        assert_eq!(msg(weight(Some(65536))), ("illegal weight specified".into(), 2));
        assert_eq!(msg(weight(Some(-1))), ("illegal weight specified".into(), 2));
        assert_eq!(msg(weight(None)), ("illegal weight specified".into(), 2));
        assert_eq!(u_threshold(Some(i128::from(i32::MAX))), Ok(i32::MAX as u32));
        assert_eq!(msg(u_threshold(Some(1 << 31))), ("illegal u_threshold specified".into(), 2));
        assert_eq!(msg(l_threshold(Some(u32::MAX.into()))), ("illegal l_threshold specified".into(), 2));
        assert_eq!(set_timeout(Some(0), "0"), Ok(0));
        assert_eq!(msg(set_timeout(Some(2678401), "2678401")), ("invalid timeout value `2678401' specified".into(), 2));
        assert_eq!(msg(persistent(Some(0), "0")), ("invalid timeout value `0' specified".into(), 2));
        assert_eq!(msg(fwmark(Some(0), "0")), ("invalid fwmark value `0' specified".into(), 2));
        assert_eq!(fwmark(Some(u32::MAX.into()), "x"), Ok(u32::MAX));
        assert!(netmask(Ipv4Addr::new(255, 255, 255, 0)).is_ok());
        assert!(netmask(Ipv4Addr::new(255, 0, 255, 0)).is_err());
    }

    #[test]
    fn services_in_ipvsadm_order() {
        let tcp0 = ServiceAddr::Addr { protocol: Protocol::Tcp, vip: Ipv4Addr::new(10, 0, 0, 1), port: 0 };
        assert_eq!(msg(service(&svc(tcp0))), ("Zero port specified for non-persistent service".into(), 2));
        let mut s = svc(ServiceAddr::Addr { protocol: Protocol::Tcp, vip: Ipv4Addr::new(10, 0, 0, 1), port: 80 });
        s.ops = true;
        assert_eq!(msg(service(&s)), ("One-Packet Scheduling is only for UDP virtual services".into(), 2));
        s.ops = false;
        assert_eq!(msg(scheduler("dh")), (NO_SCHEDULER.into(), 255));
        s.scheduler = "sh".into();
        s.flags = vec!["flag-2".into(), "sh-fallback".into(), "flag-1".into()];
        assert_eq!(service(&s).unwrap().flags, ["sh-fallback", "sh-port"]);
        s.flags = vec!["mh-port".into()];
        assert_eq!(msg(service(&s)), ("incompatible scheduler flag `mh-port'".into(), 2));
        s.flags = vec!["port".into()];
        assert_eq!(msg(service(&s)), ("invalid scheduler flag `port'".into(), 2));
        assert_eq!(msg(service(&svc(ServiceAddr::Fwmark(0)))), ("invalid fwmark value `0' specified".into(), 2));
    }

    #[test]
    fn servers() {
        let mut r = Server {
            addr: Ipv4Addr::new(10, 0, 2, 1),
            port: 80,
            method: Method::Masq,
            weight: 70000,
            u_threshold: 0,
            l_threshold: 0,
        };
        assert_eq!(msg(server(&r)), ("illegal weight specified".into(), 2));
        r.weight = 1;
        r.l_threshold = 1;
        assert_eq!(msg(server(&r)), (ERANGE.into(), 255));
        r.u_threshold = 1;
        assert_eq!(server(&r), Ok(()));
        assert_eq!(msg(set_timeouts(900, u32::MAX, 0)), ("invalid timeout value `4294967295' specified".into(), 2));
    }
}
