//! Inspection of a port's `device` string: either a PCI address
//! (`0000:03:00.0`, optionally followed by `,devargs`) or a DPDK vdev
//! (`net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap`).
//!
//! The string is passed to DPDK unchanged; this module only reads it, to
//! validate the configuration and to let the replay mode find its inputs.

use std::path::PathBuf;

/// A device string split into its identity and its `key=value` arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device<'a> {
    /// The part before the first ',': the PCI address or the vdev name
    /// (`net_pcap0`). Two ports must not share it.
    pub name: &'a str,
    /// Whether `name` is a PCI address.
    pub pci: bool,
    /// The arguments after the name, in order; an argument without '=' has an
    /// empty value.
    pub args: Vec<(&'a str, &'a str)>,
}

impl<'a> Device<'a> {
    /// Splits a device string. Never fails: DPDK is the judge of the
    /// arguments.
    pub fn parse(device: &'a str) -> Device<'a> {
        let mut parts = device.split(',');
        let name = parts.next().unwrap_or("").trim();
        let args = parts
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| match a.split_once('=') {
                Some((k, v)) => (k.trim(), v.trim()),
                None => (a, ""),
            })
            .collect();
        Device { name, pci: is_pci_address(name), args }
    }

    /// Whether this is a `net_pcap` vdev. DPDK matches a vdev to its driver by
    /// name prefix, and `eth_pcap` is the driver's old alias.
    pub fn is_pcap(&self) -> bool {
        !self.pci && (self.name.starts_with("net_pcap") || self.name.starts_with("eth_pcap"))
    }

    /// Every value of argument `key`, in order.
    pub fn values(&self, key: &str) -> impl Iterator<Item = &'a str> + '_ {
        let key = key.to_owned();
        self.args.iter().filter(move |(k, _)| *k == key).map(|(_, v)| *v)
    }

    /// The `rx_pcap=` files of a net_pcap vdev (one per rx queue), empty
    /// for anything else.
    pub fn rx_pcaps(&self) -> Vec<PathBuf> {
        if !self.is_pcap() {
            return Vec::new();
        }
        self.values("rx_pcap").map(PathBuf::from).collect()
    }
}

/// `DDDD:BB:DD.F` or `BB:DD.F` (hex domain, bus, device; function 0-7).
pub fn is_pci_address(s: &str) -> bool {
    fn hex(s: &str, len: usize) -> bool {
        s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
    }
    let parts: Vec<&str> = s.split(':').collect();
    let (bus, devfn) = match parts.as_slice() {
        [domain, bus, devfn] if hex(domain, 4) => (*bus, *devfn),
        [bus, devfn] => (*bus, *devfn),
        _ => return false,
    };
    let Some((dev, func)) = devfn.split_once('.') else {
        return false;
    };
    hex(bus, 2) && hex(dev, 2) && func.len() == 1 && matches!(func.as_bytes()[0], b'0'..=b'7')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcap_vdev() {
        let d = Device::parse("net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap");
        assert_eq!(d.name, "net_pcap0");
        assert!(!d.pci);
        assert!(d.is_pcap());
        assert_eq!(d.args, vec![("rx_pcap", "in.pcap"), ("tx_pcap", "out.pcap")]);
        assert_eq!(d.rx_pcaps(), vec![PathBuf::from("in.pcap")]);
    }

    #[test]
    fn several_rx_pcaps() {
        let d = Device::parse("net_pcap1,rx_pcap=a.pcap,rx_pcap=/tmp/b.pcap,infinite_rx=1");
        assert_eq!(d.rx_pcaps(), vec![PathBuf::from("a.pcap"), PathBuf::from("/tmp/b.pcap")]);
        assert_eq!(d.values("infinite_rx").collect::<Vec<_>>(), vec!["1"]);
    }

    #[test]
    fn other_devices_have_no_rx_pcaps() {
        assert!(Device::parse("net_af_packet0,iface=veth0").rx_pcaps().is_empty());
        assert!(Device::parse("net_null0,rx_pcap=x.pcap").rx_pcaps().is_empty());
        assert!(Device::parse("net_pcap0,iface=eth0").rx_pcaps().is_empty());
        assert!(Device::parse("eth_pcap0,rx_pcap=x.pcap").is_pcap());
    }

    #[test]
    fn pci_addresses() {
        assert!(is_pci_address("0000:03:00.0"));
        assert!(is_pci_address("03:00.7"));
        assert!(is_pci_address("0000:af:1f.1"));
        assert!(!is_pci_address("0000:03:00.8"));
        assert!(!is_pci_address("000:03:00.0"));
        assert!(!is_pci_address("net_pcap0"));
        assert!(!is_pci_address("0000:03:00"));
        let d = Device::parse("0000:03:00.0,txq_inline=128");
        assert!(d.pci);
        assert_eq!(d.name, "0000:03:00.0");
        assert!(!d.is_pcap());
    }
}
