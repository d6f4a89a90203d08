//! The exception path's logic: the ARP resolver ([`arp`]) and the counters of
//! what the exception thread did. The thread itself, which moves frames
//! between the workers, the kernel's taps and the resolver, is in the I/O
//! crate (`dataplane_io::exception`).

pub mod arp;

use crate::counters::Counter;

macro_rules! exception_counters {
    ($($field:ident => $doc:literal;)*) => {
        /// What the exception path did, for `rvsadm ports`, metrics and the
        /// exit summary. Written by the exception thread only.
        #[derive(Default)]
        pub struct ExceptionCounters {
            $(#[doc = $doc] pub $field: Counter,)*
        }

        impl ExceptionCounters {
            /// (name, value) of every counter, in a stable order.
            pub fn list(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($field), self.$field.get()),)*]
            }
        }
    };
}

exception_counters! {
    arp_received => "ARP packets received.";
    arp_replies_sent => "ARP replies sent for the box's addresses.";
    arp_requests_sent => "ARP requests sent to resolve or refresh neighbours.";
    garp_sent => "Gratuitous ARPs sent for addresses that appeared.";
    resolved_sent => "Packets sent once their next hop was resolved.";
    unresolved_dropped => "Packets dropped: their next hop never answered ARP.";
    queue_overflow => "Packets dropped: too many waiting for one neighbour.";
    no_source_address => "ARP requests not sent: the port has no address.";
    to_kernel => "Frames given to the kernel through a tap.";
    from_kernel => "Frames the kernel sent through a tap.";
    no_tap => "Frames for the kernel on a port without a tap (kernel = false).";
    tap_errors => "Frames a tap refused (read or write errors).";
    no_mbuf => "Frames lost: the mbuf pool was empty.";
    tx_full => "Frames lost: the ring to the transmitting worker was full.";
}
