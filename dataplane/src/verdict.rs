//! What the per-packet path decides, and why a packet was dropped.

/// The outcome for one packet. Small and `Copy`: the hot path returns it by value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send on the port with this index (the config's `[[port]]` order).
    Forward { port: u16 },
    /// Send on `port` once the MAC of `next_hop` is known: the packet is
    /// rewritten except for its destination MAC, which the neighbour resolver
    /// fills in (without a resolver: dropped as [`DropReason::NoNeighbor`]).
    Resolve { port: u16, next_hop: std::net::Ipv4Addr },
    /// Free the packet and count the reason.
    Drop(DropReason),
}

macro_rules! drop_reasons {
    ($($variant:ident => $name:literal, $doc:literal;)*) => {
        /// Why a packet was dropped. Each reason has its own counter; the names are
        /// stable (they appear in rvsd's statistics and in tests).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason {
            $(#[doc = $doc] $variant,)*
        }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];
            /// The number of reasons (the length of a drop-counter array).
            pub const COUNT: usize = Self::ALL.len();

            /// The stable snake_case name of the reason.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(DropReason::$variant => $name,)*
                }
            }
        }
    };
}

drop_reasons! {
    EthTruncated => "eth_truncated", "Shorter than an Ethernet header.";
    NotIpv4 => "not_ipv4", "Not IPv4 (ARP, IPv6, VLAN-tagged...) and the port has no kernel exception path.";
    Ipv4Invalid => "ipv4_invalid", "IPv4 header fails validation (version, IHL, total length).";
    Ipv4BadChecksum => "ipv4_bad_checksum", "IPv4 header checksum is wrong.";
    Local => "local", "Addressed to one of the box's own addresses and the port has no kernel exception path.";
    NoRoute => "no_route", "No route to the destination.";
    NoNeighbor => "no_neighbor", "The next hop's MAC is unknown.";
    TtlExpired => "ttl_expired", "TTL would reach 0 when forwarded.";
    MultiSegment => "multi_segment", "A chained (multi-segment) mbuf; rx scatter is off.";
    NoTxQueue => "no_tx_queue", "This worker has no tx queue on the egress port.";
    TxFull => "tx_full", "The egress queue did not take the packet.";
    Fragment => "fragment", "An IPv4 fragment of load-balanced traffic (not reassembled; see README).";
    L4Truncated => "l4_truncated", "TCP/UDP/ICMP header missing or shorter than it says.";
    TcpNoConn => "tcp_no_conn", "A TCP segment for a service that is neither a SYN nor part of a connection (§3.2).";
    DestUnavailable => "dest_unavailable", "The connection's real server was removed (expire_nodest_conn = 0, §2.4).";
    ConnTableFull => "conn_table_full", "The worker's connection table is full.";
    NoSourceAddress => "no_source_address", "The egress port has no address to use as a tunnel source.";
    VipUnhandled => "vip_unhandled", "Addressed to a VIP but not to a configured service port, and the port has no kernel exception path.";
    XmitMalformed => "xmit_malformed", "The rewrite found a header it could not handle.";
    UnsupportedProto => "unsupported_proto", "NAT of a protocol other than TCP, UDP or related ICMP.";
    MtuTooSmall => "mtu_too_small", "Tunnel MTU below 68 (§4.4).";
    TooBig => "too_big", "Encapsulation would exceed 65535 bytes.";
    NoHeadroom => "no_headroom", "No room in front of the packet for a tunnel header.";
    IcmpBadChecksum => "icmp_bad_checksum", "A related ICMP error with a wrong checksum (§4.7).";
    IcmpSuppressed => "icmp_suppressed", "An ICMP error was due but RFC 1122 forbids sending it.";
    HandoffFull => "handoff_full", "The ring to the worker that owns the flow was full.";
    MartianSource => "martian_source", "Source 0.0.0.0, loopback, multicast or broadcast (Linux drops these before IPVS).";
    NotForUs => "not_for_us", "Unicast frame to another MAC (seen in promiscuous mode).";
    L2Multicast => "l2_multicast", "Broadcast or multicast frame and the port has no kernel exception path.";
    KernelFull => "kernel_full", "The ring to the kernel exception path was full.";
}

impl DropReason {
    /// Whether a packet dropped for this reason belongs to the kernel instead
    /// when its port has an exception path: the box's own traffic, ARP,
    /// multicast (VRRP, routing protocols), non-IPv4.
    #[inline]
    pub fn goes_to_kernel(self) -> bool {
        matches!(self, DropReason::Local | DropReason::VipUnhandled | DropReason::L2Multicast | DropReason::NotIpv4)
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_snake_case() {
        let mut names: Vec<&str> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
        assert!(names.iter().all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
    }

    #[test]
    fn discriminants_index_the_counter_array() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
    }
}
