//! A kernel tap interface: the kernel's side of one port.
//!
//! Opened through /dev/net/tun (IFF_TAP, no packet-info header), given the
//! port's MAC, addresses and routes with `ip`, read and written without
//! blocking by the exception thread only (never by a worker).
use std::ffi::CStr;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;

pub struct Tap {
    fd: OwnedFd,
    pub name: String,
}

#[repr(C)]
struct IfReqFlags {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

#[repr(C)]
struct IfReqHwAddr {
    name: [u8; libc::IFNAMSIZ],
    addr: libc::sockaddr,
    _pad: [u8; 8],
}

fn ifname(name: &str) -> io::Result<[u8; libc::IFNAMSIZ]> {
    let mut n = [0u8; libc::IFNAMSIZ];
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad interface name {name:?}")));
    }
    n[..name.len()].copy_from_slice(name.as_bytes());
    Ok(n)
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
        // SAFETY: plain open(2) of a NUL-terminated path.
        let raw = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: raw is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut req = IfReqFlags { name: ifname(name)?, flags: IFF_TAP | IFF_NO_PI, _pad: [0; 22] };
        // SAFETY: TUNSETIFF reads and writes a struct ifreq; IfReqFlags has its layout and size (40 bytes).
        if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, &mut req) } < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("cannot create tap {name}: {e}")));
        }
        let tap = Tap { fd, name: name.to_owned() };
        tap.set_mac(mac)?;
        ip(&["link", "set", "dev", name, "mtu", "1500", "up"])?;
        for (a, len) in addrs {
            ip(&["addr", "add", &format!("{a}/{len}"), "dev", name])?;
        }
        for (p, len, via) in routes {
            ip(&["route", "replace", &format!("{p}/{len}"), "via", &via.to_string(), "dev", name])?;
        }
        Ok(tap)
    }

    fn set_mac(&self, mac: [u8; 6]) -> io::Result<()> {
        // SAFETY: an ordinary datagram socket, used only for the ioctl and closed on drop.
        let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if s < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: s is a fresh descriptor we own.
        let s = unsafe { OwnedFd::from_raw_fd(s) };
        // SAFETY: sockaddr is plain data; zero is a valid value.
        let mut addr: libc::sockaddr = unsafe { std::mem::zeroed() };
        addr.sa_family = libc::ARPHRD_ETHER;
        for (d, b) in addr.sa_data.iter_mut().zip(mac) {
            *d = b as libc::c_char;
        }
        let mut req = IfReqHwAddr { name: ifname(&self.name)?, addr, _pad: [0; 8] };
        // SAFETY: SIOCSIFHWADDR reads a struct ifreq; IfReqHwAddr has its layout and size.
        if unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCSIFHWADDR, &mut req) } < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("cannot set the MAC of {}: {e}", self.name)));
        }
        Ok(())
    }

    /// One frame the kernel sent, or None when there is none now.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::WouldBlock {
            Ok(None)
        } else {
            Err(e)
        }
    }

    /// Gives the kernel one frame.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: frame is valid for frame.len() bytes.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len()) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    pub fn fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

/// The IPv4 addresses the kernel holds on each named interface (what an
/// operator or keepalived added to a tap, beyond the configured ones).
pub fn kernel_addresses(names: &[&str]) -> Vec<Vec<Ipv4Addr>> {
    let mut out = vec![Vec::new(); names.len()];
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs allocates a list we free below.
    if unsafe { libc::getifaddrs(&mut ifap) } != 0 {
        return out;
    }
    let mut p = ifap;
    while !p.is_null() {
        // SAFETY: p is a node of the list getifaddrs returned.
        let ifa = unsafe { &*p };
        p = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_addr points to a sockaddr of the family it states.
        if i32::from(unsafe { (*ifa.ifa_addr).sa_family }) != libc::AF_INET {
            continue;
        }
        // SAFETY: an AF_INET address is a sockaddr_in; ifa_name is NUL-terminated.
        let (sin, name) = unsafe { (&*(ifa.ifa_addr as *const libc::sockaddr_in), CStr::from_ptr(ifa.ifa_name)) };
        if let Some(i) = names.iter().position(|n| n.as_bytes() == name.to_bytes()) {
            out[i].push(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
        }
    }
    // SAFETY: ifap came from getifaddrs.
    unsafe { libc::freeifaddrs(ifap) };
    out
}
