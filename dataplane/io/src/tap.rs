//! A kernel tap interface: the kernel's side of one port.
//!
//! Created with the `tun-tap` crate (no packet-info header, non-blocking),
//! given the port's MAC, addresses and routes with `ip`, read and written by
//! the exception thread only (never by a worker).
use std::io;
use std::net::Ipv4Addr;
use std::process::Command;

use tun_tap::{Iface, Mode};

pub struct Tap {
    iface: Iface,
    pub name: String,
}

fn ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip").args(args).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim())))
    }
}

impl Tap {
    /// Creates tap `name` with `mac`, brings it up with `addrs` (address,
    /// prefix length) and adds `routes` (prefix, length, gateway) through it.
    pub fn create(
        name: &str,
        mac: [u8; 6],
        addrs: &[(Ipv4Addr, u8)],
        routes: &[(Ipv4Addr, u8, Ipv4Addr)],
    ) -> io::Result<Tap> {
        let iface = Iface::without_packet_info(name, Mode::Tap)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot create tap {name}: {e}")))?;
        iface.set_non_blocking()?;
        let mac = mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
        ip(&["link", "set", "dev", name, "address", &mac, "mtu", "1500", "up"])?;
        for (a, len) in addrs {
            ip(&["addr", "add", &format!("{a}/{len}"), "dev", name])?;
        }
        for (p, len, via) in routes {
            ip(&["route", "replace", &format!("{p}/{len}"), "via", &via.to_string(), "dev", name])?;
        }
        Ok(Tap { iface, name: name.to_owned() })
    }

    /// One frame the kernel sent, or None when there is none now.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match self.iface.recv(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Gives the kernel one frame.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        self.iface.send(frame).map(|_| ())
    }
}

/// The IPv4 addresses the kernel holds on each named interface (what an
/// operator or keepalived added to a tap, beyond the configured ones).
pub fn kernel_addresses(names: &[&str]) -> Vec<Vec<Ipv4Addr>> {
    let mut out = vec![Vec::new(); names.len()];
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else { return out };
    for ifa in addrs {
        let Some(i) = names.iter().position(|n| *n == ifa.interface_name) else { continue };
        if let Some(sin) = ifa.address.as_ref().and_then(|a| a.as_sockaddr_in()) {
            out[i].push(sin.ip());
        }
    }
    out
}
