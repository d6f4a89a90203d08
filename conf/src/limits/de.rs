//! The ranges of [`crate::limits`] as serde `deserialize_with` functions, for
//! the control protocol: a request carrying a value ipvsadm would refuse does
//! not decode, and the decoding error carries ipvsadm's text (see
//! [`refusal`]). Here rather than in the control protocol's module because
//! conf's own types ([`crate::ServiceAddr`]) are carried on the wire.
use std::net::Ipv4Addr;

use serde::{Deserialize, Deserializer};

use super::Refusal;

/// Marks a decoding error that is ipvsadm's refusal of a value (serde
/// carries only text through a format such as serde_json).
const REFUSED: &str = "\u{0}refused: ";

/// ipvsadm's text, if `error` (a decoding error's text, without the format's
/// position suffix) is the refusal of a value by one of these functions.
pub fn refusal(error: &str) -> Option<&str> {
    error.strip_prefix(REFUSED)
}

fn refused<E: serde::de::Error>(r: Refusal) -> E {
    E::custom(format_args!("{REFUSED}{r}"))
}

/// An integer of any sign and size (`None` for one beyond 128 bits or a
/// float), with the text it was written as.
fn integer<'de, D: Deserializer<'de>>(d: D) -> Result<(Option<i128>, String), D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = (Option<i128>, String);
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an integer")
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok((Some(v.into()), v.to_string()))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok((Some(v.into()), v.to_string()))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok((None, v.to_string()))
        }
    }
    d.deserialize_any(V)
}

/// `-w`.
pub fn weight<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    super::weight(integer(d)?.0).map_err(refused)
}

/// `-x`.
pub fn u_threshold<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    super::u_threshold(integer(d)?.0).map_err(refused)
}

/// `-y`.
pub fn l_threshold<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    super::l_threshold(integer(d)?.0).map_err(refused)
}

/// A `--set` value.
pub fn set_timeout<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let (n, written) = integer(d)?;
    super::set_timeout(n, &written).map_err(refused)
}

/// `-f`.
pub fn fwmark<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let (n, written) = integer(d)?;
    super::fwmark(n, &written).map_err(refused)
}

/// [`integer`] as a type, for optional fields.
struct Int(Option<i128>, String);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Int, D::Error> {
        integer(d).map(|(n, written)| Int(n, written))
    }
}

/// `-p` (None: not persistent).
pub fn persistent<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    match Option::<Int>::deserialize(d)? {
        None => Ok(None),
        Some(Int(n, written)) => super::persistent(n, &written).map(Some).map_err(refused),
    }
}

/// `-M`.
pub fn netmask<'de, D: Deserializer<'de>>(d: D) -> Result<Ipv4Addr, D::Error> {
    super::netmask(Ipv4Addr::deserialize(d)?).map_err(refused)
}
