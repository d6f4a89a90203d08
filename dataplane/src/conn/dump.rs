//! One connection-table entry as the control side lists it (`ipvsadm -Lc`),
//! and as the control protocol carries it to rvsadm: one type from the
//! worker's table to the CLI's text.
use std::net::Ipv4Addr;

use serde::{Deserialize, Deserializer, Serialize};

use crate::proto::{udp, TcpState};

/// A fixed name. Spelled through this alias so serde's derive does not take a
/// `&'static str` field for one borrowed from the input (which would bind
/// the input to `'static`); [`protocol`] and [`state`] decode it.
type Name = &'static str;

/// One connection-table entry (`-Lc`). On the control socket it is a JSON
/// object with these field names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnDump {
    /// "TCP", "UDP", or "IP" (fwmark templates).
    #[serde(deserialize_with = "protocol")]
    pub protocol: Name,
    /// ESTABLISHED, SYN_RECV, ... (TCP), UDP, or NONE/ASSURED (templates).
    #[serde(deserialize_with = "state")]
    pub state: Name,
    /// Seconds until it expires.
    pub expires: u32,
    pub caddr: Ipv4Addr,
    pub cport: u16,
    /// For fwmark templates: the mark as an address (0.0.0.<mark>).
    pub vaddr: Ipv4Addr,
    pub vport: u16,
    pub daddr: Ipv4Addr,
    pub dport: u16,
}

/// Every `protocol` a worker lists.
const PROTOCOLS: [&str; 3] = ["TCP", "UDP", "IP"];

/// The template state a worker lists once the template is assured (the
/// other, NONE, is also TcpState::None's name).
const TEMPLATE_ASSURED: &str = "ASSURED";

/// The name among `names` that `d` holds: the fields are `&'static str`
/// because a worker fills them from fixed names without allocating, so a
/// decoded entry points at the same names. Any other text does not decode.
fn one_of<'de, D: Deserializer<'de>>(
    d: D,
    what: &str,
    names: impl IntoIterator<Item = &'static str>,
) -> Result<&'static str, D::Error> {
    let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
    names
        .into_iter()
        .find(|n| *n == s)
        .ok_or_else(|| serde::de::Error::custom(format_args!("unknown connection {what} {s:?}")))
}

fn protocol<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    one_of(d, "protocol", PROTOCOLS)
}

fn state<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    let names = TcpState::ALL.into_iter().map(TcpState::name).chain([udp::STATE_NAME, TEMPLATE_ASSURED]);
    one_of(d, "state", names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_name_round_trips() {
        let states = TcpState::ALL.into_iter().map(TcpState::name).chain([udp::STATE_NAME, "NONE", "ASSURED"]);
        for (protocol, state) in PROTOCOLS.into_iter().cycle().zip(states) {
            let c = ConnDump {
                protocol,
                state,
                expires: 59,
                caddr: Ipv4Addr::new(203, 0, 113, 5),
                cport: 51234,
                vaddr: Ipv4Addr::new(10, 0, 0, 1),
                vport: 80,
                daddr: Ipv4Addr::new(192, 168, 10, 1),
                dport: 8080,
            };
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(serde_json::from_str::<ConnDump>(&json).unwrap(), c);
        }
        let bad = r#"{"protocol":"SCTP","state":"NONE","expires":1,"caddr":"1.1.1.1","cport":1,"vaddr":"1.1.1.1","vport":1,"daddr":"1.1.1.1","dport":1}"#;
        assert!(serde_json::from_str::<ConnDump>(bad).unwrap_err().to_string().contains("unknown connection protocol"));
    }
}
