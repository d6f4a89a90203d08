//! Value types that appear in the configuration: MAC addresses, interface
//! addresses (`10.0.0.2/24`, host bits allowed) and route prefixes
//! (`10.0.0.0/24`, host bits must be clear).
//!
//! Invariants: an `Ipv4Cidr` or `Ipv4Prefix` built by `FromStr` has
//! `len <= 32`; an `Ipv4Prefix` built by `FromStr` or [`Ipv4Prefix::new`] has no
//! host bits set. `Display` output parses back to the same value.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Why a value string could not be parsed. The text is a complete sentence
/// fragment naming the input, ready to follow `FILE:LINE:COL: KEY: `.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

/// An Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// 00:00:00:00:00:00.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// Group bit (least significant bit of the first octet); broadcast included.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// All six octets zero.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }

    /// Neither multicast nor all-zero: usable as a port or neighbour address.
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast() && !self.is_zero()
    }

    /// Locally administered bit (second least significant bit of the first octet).
    pub fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

impl FromStr for MacAddr {
    type Err = ValueError;

    /// Six hex pairs separated by ':' or '-' (one separator throughout),
    /// either case: `02:00:00:00:00:01`, `02-00-00-00-00-0A`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            || ValueError(format!("\"{s}\" is not a MAC address (expected six hex pairs like 02:00:00:00:00:01)"));
        let sep = match s.as_bytes().get(2) {
            Some(b':') => ':',
            Some(b'-') => '-',
            _ => return Err(bad()),
        };
        let mut out = [0u8; 6];
        let mut parts = s.split(sep);
        for octet in out.iter_mut() {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            *octet = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

/// The netmask of a prefix length as a host-order integer; `len` above 32 is
/// treated as 32.
pub fn mask(len: u8) -> u32 {
    match len {
        0 => 0,
        l if l >= 32 => u32::MAX,
        l => u32::MAX << (32 - u32::from(l)),
    }
}

/// Splits `ADDRESS/LENGTH`; `what` names the expected form in the message.
fn split_cidr(s: &str, what: &str, example: &str) -> Result<(Ipv4Addr, u8), ValueError> {
    let bad = || ValueError(format!("\"{s}\" is not {what} (expected ADDRESS/LENGTH like {example})"));
    let (addr, len) = s.split_once('/').ok_or_else(bad)?;
    let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
    if len.is_empty() || len.len() > 2 || !len.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let len: u8 = len.parse().map_err(|_| bad())?;
    if len > 32 {
        return Err(ValueError(format!("\"{s}\" has prefix length {len}; an IPv4 prefix length is at most 32")));
    }
    Ok((addr, len))
}

/// An interface address with its subnet length, like `10.0.0.2/24`.
/// Host bits are allowed (they are the point).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Ipv4Cidr {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl Ipv4Cidr {
    /// The subnet this address lives in (`10.0.0.2/24` → `10.0.0.0/24`).
    pub fn network(&self) -> Ipv4Prefix {
        let len = self.len.min(32);
        Ipv4Prefix { addr: Ipv4Addr::from(u32::from(self.addr) & mask(len)), len }
    }

    /// Whether `ip` is inside this address's subnet.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.network().contains(ip)
    }

    /// The netmask, like 255.255.255.0.
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(mask(self.len))
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = split_cidr(s, "an interface address", "10.0.0.2/24")?;
        Ok(Ipv4Cidr { addr, len })
    }
}

/// A route prefix, like `10.0.0.0/24`: no host bits set.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Ipv4Prefix {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl Ipv4Prefix {
    /// The default route, 0.0.0.0/0.
    pub const DEFAULT: Ipv4Prefix = Ipv4Prefix { addr: Ipv4Addr::UNSPECIFIED, len: 0 };

    /// A prefix, or `None` when `len > 32` or host bits are set.
    pub fn new(addr: Ipv4Addr, len: u8) -> Option<Ipv4Prefix> {
        (len <= 32 && u32::from(addr) & !mask(len) == 0).then_some(Ipv4Prefix { addr, len })
    }

    /// Whether `ip` is inside this prefix.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let m = mask(self.len);
        u32::from(ip) & m == u32::from(self.addr) & m
    }

    /// The netmask, like 255.255.255.0.
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(mask(self.len))
    }
}

impl fmt::Display for Ipv4Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Ipv4Prefix {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = split_cidr(s, "an IPv4 prefix", "10.0.0.0/24")?;
        match Ipv4Prefix::new(addr, len) {
            Some(p) => Ok(p),
            None => {
                let net = Ipv4Cidr { addr, len }.network();
                Err(ValueError(format!("\"{s}\" has host bits set; did you mean {net}?")))
            }
        }
    }
}

/// Serde as strings in the `Display` form, so control-protocol messages can
/// carry these types.
macro_rules! serde_via_str {
    ($t:ty, $expecting:literal) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $t;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$t, E> {
                        v.parse().map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

serde_via_str!(MacAddr, "a MAC address like 02:00:00:00:00:01");
serde_via_str!(Ipv4Cidr, "an interface address like 10.0.0.2/24");
serde_via_str!(Ipv4Prefix, "an IPv4 prefix like 10.0.0.0/24");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trip_and_forms() {
        let m: MacAddr = "02:00:00:00:00:01".parse().unwrap();
        assert_eq!(m, MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(m.to_string(), "02:00:00:00:00:01");
        let m: MacAddr = "0A-bC-00-11-22-FF".parse().unwrap();
        assert_eq!(m, MacAddr([0x0a, 0xbc, 0, 0x11, 0x22, 0xff]));
        assert_eq!(m.to_string().parse::<MacAddr>().unwrap(), m);
    }

    #[test]
    fn mac_rejects() {
        for s in [
            "02:00:00:00:00",
            "02:00:00:00:00:01:02",
            "2:0:0:0:0:1",
            "02:00:00:00:00:0g",
            "02:00-00:00:00:01",
            "020000000001",
            "",
            "02:00:00:00:00:01:",
            "+2:00:00:00:00:01",
        ] {
            let e = s.parse::<MacAddr>().unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("\"{s}\" is not a MAC address (expected six hex pairs like 02:00:00:00:00:01)")
            );
        }
    }

    #[test]
    fn mac_classes() {
        assert!(MacAddr([1, 0, 0x5e, 0, 0, 1]).is_multicast());
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(MacAddr::ZERO.is_zero());
        assert!(!MacAddr::ZERO.is_unicast());
        assert!(MacAddr([2, 0, 0, 0, 0, 1]).is_unicast());
        assert!(MacAddr([2, 0, 0, 0, 0, 1]).is_local());
        assert!(!MacAddr([0, 0x1b, 0x21, 0, 0, 1]).is_local());
    }

    #[test]
    fn cidr_round_trip_and_network() {
        let c: Ipv4Cidr = "10.0.0.2/24".parse().unwrap();
        assert_eq!(c, Ipv4Cidr { addr: Ipv4Addr::new(10, 0, 0, 2), len: 24 });
        assert_eq!(c.to_string(), "10.0.0.2/24");
        assert_eq!(c.network().to_string(), "10.0.0.0/24");
        assert_eq!(c.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert!(c.contains(Ipv4Addr::new(10, 0, 0, 254)));
        assert!(!c.contains(Ipv4Addr::new(10, 0, 1, 1)));
        let all: Ipv4Cidr = "192.0.2.1/0".parse().unwrap();
        assert!(all.contains(Ipv4Addr::new(8, 8, 8, 8)));
        let host: Ipv4Cidr = "192.0.2.1/32".parse().unwrap();
        assert!(host.contains(Ipv4Addr::new(192, 0, 2, 1)));
        assert!(!host.contains(Ipv4Addr::new(192, 0, 2, 2)));
    }

    #[test]
    fn cidr_rejects() {
        for s in ["10.0.0.2", "10.0.0.2/", "10.0.0/24", "10.0.0.2/+4", "10.0.0.2/024", "x/24"] {
            assert_eq!(
                s.parse::<Ipv4Cidr>().unwrap_err().to_string(),
                format!("\"{s}\" is not an interface address (expected ADDRESS/LENGTH like 10.0.0.2/24)")
            );
        }
        assert_eq!(
            "10.0.0.2/33".parse::<Ipv4Cidr>().unwrap_err().to_string(),
            "\"10.0.0.2/33\" has prefix length 33; an IPv4 prefix length is at most 32"
        );
    }

    #[test]
    fn prefix_round_trip_and_contains() {
        for s in ["0.0.0.0/0", "10.0.0.0/24", "192.0.2.7/32", "10.0.0.0/8"] {
            let p: Ipv4Prefix = s.parse().unwrap();
            assert_eq!(p.to_string(), s);
        }
        let p: Ipv4Prefix = "10.1.0.0/16".parse().unwrap();
        assert!(p.contains(Ipv4Addr::new(10, 1, 255, 3)));
        assert!(!p.contains(Ipv4Addr::new(10, 2, 0, 0)));
        assert!(Ipv4Prefix::DEFAULT.contains(Ipv4Addr::new(1, 2, 3, 4)));
        assert_eq!(p.netmask(), Ipv4Addr::new(255, 255, 0, 0));
        assert_eq!(Ipv4Prefix::new(Ipv4Addr::new(10, 1, 0, 1), 16), None);
        assert_eq!(Ipv4Prefix::new(Ipv4Addr::new(10, 1, 0, 0), 33), None);
    }

    #[test]
    fn prefix_rejects() {
        assert_eq!(
            "10.0.0.1/24".parse::<Ipv4Prefix>().unwrap_err().to_string(),
            "\"10.0.0.1/24\" has host bits set; did you mean 10.0.0.0/24?"
        );
        assert_eq!(
            "10.0.0.0".parse::<Ipv4Prefix>().unwrap_err().to_string(),
            "\"10.0.0.0\" is not an IPv4 prefix (expected ADDRESS/LENGTH like 10.0.0.0/24)"
        );
    }

    #[test]
    fn serde_as_strings() {
        #[derive(serde::Deserialize, serde::Serialize, PartialEq, Debug)]
        struct T {
            m: MacAddr,
            c: Ipv4Cidr,
            p: Ipv4Prefix,
        }
        let t: T = toml::from_str("m = \"02:00:00:00:00:01\"\nc = \"10.0.0.2/24\"\np = \"10.0.0.0/24\"\n").unwrap();
        assert_eq!(t.m, MacAddr([2, 0, 0, 0, 0, 1]));
        let back = toml::to_string(&t).unwrap();
        assert_eq!(toml::from_str::<T>(&back).unwrap(), t);
        let e = toml::from_str::<T>("m = 5\nc = \"10.0.0.2/24\"\np = \"10.0.0.0/24\"\n").unwrap_err();
        assert_eq!(e.message(), "invalid type: integer `5`, expected a MAC address like 02:00:00:00:00:01");
    }
}
