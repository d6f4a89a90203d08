//! The TOML schema as serde sees it: every leaf keeps its span so that
//! checks made after deserialisation can point at the right line, and every
//! key but `[[port]]` name/device is optional here (defaults are applied in
//! `validate.rs`, and a missing name or device is reported there with the
//! port's position).

use std::fmt;

use serde::de::{Deserializer, Visitor};
use serde::Deserialize;
use toml::Spanned;

pub(crate) type S<T> = Spanned<T>;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub dataplane: Option<RawDataplane>,
    #[serde(default)]
    pub port: Vec<S<RawPort>>,
    #[serde(default)]
    pub route: Vec<S<RawRoute>>,
    #[serde(default)]
    pub neighbor: Vec<S<RawNeighbor>>,
    pub control: Option<RawControl>,
    pub metrics: Option<RawMetrics>,
    pub fwmark: Option<RawFwmark>,
    pub ipvs: Option<RawIpvs>,
    pub sync: Option<RawSync>,
    pub health: Option<S<RawHealth>>,
    #[serde(default)]
    pub service: Vec<S<RawService>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSync {
    pub version: Option<S<Int>>,
    pub threshold: Option<S<Int>>,
    pub period: Option<S<Int>>,
    pub persist_mode: Option<S<IntOrBool>>,
    pub backup_only: Option<S<IntOrBool>>,
    pub resync_period: Option<S<Int>>,
    pub master: Option<S<RawSyncDaemon>>,
    pub backup: Option<S<RawSyncDaemon>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSyncDaemon {
    pub interface: Option<S<String>>,
    pub syncid: Option<S<Int>>,
    pub group: Option<S<String>>,
    pub port: Option<S<Int>>,
    pub ttl: Option<S<Int>>,
    pub maxlen: Option<S<Int>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDataplane {
    pub eal_args: Option<Vec<S<String>>>,
    pub workers: Option<S<Int>>,
    pub mbufs: Option<S<Int>>,
    pub replay: Option<S<bool>>,
    pub poll_idle_us: Option<S<Int>>,
    pub conns_per_worker: Option<S<Int>>,
    pub owner_prefix: Option<S<Int>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPort {
    pub name: Option<S<String>>,
    pub device: Option<S<String>>,
    pub mac: Option<S<String>>,
    pub addresses: Option<Vec<S<String>>>,
    pub kernel: Option<S<bool>>,
    pub tap: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub prefix: Option<S<String>>,
    pub via: Option<S<String>>,
    pub port: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNeighbor {
    pub ip: Option<S<String>>,
    pub mac: Option<S<String>>,
    pub port: Option<S<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawControl {
    pub socket: Option<S<String>>,
    pub group: Option<S<String>>,
    pub max_clients: Option<S<Int>>,
    pub idle_timeout: Option<S<Int>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFwmark {
    pub rules: Option<Vec<S<String>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMetrics {
    pub listen: Option<S<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIpvs {
    pub rules: Option<S<String>>,
    pub expire_nodest_conn: Option<S<IntOrBool>>,
    pub expire_quiescent_template: Option<S<IntOrBool>>,
    pub conn_reuse_mode: Option<S<Int>>,
    pub sloppy_tcp: Option<S<IntOrBool>>,
    pub nat_icmp_send: Option<S<IntOrBool>>,
    pub pmtu_disc: Option<S<IntOrBool>>,
    pub timeouts: Option<RawTimeouts>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTimeouts {
    pub tcp: Option<S<Int>>,
    pub tcpfin: Option<S<Int>>,
    pub udp: Option<S<Int>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawService {
    pub protocol: Option<S<String>>,
    pub address: Option<S<String>>,
    pub fwmark: Option<S<Int>>,
    pub scheduler: Option<S<String>>,
    pub persistent: Option<S<IntOrBool>>,
    pub netmask: Option<S<String>>,
    pub flags: Option<Vec<S<String>>>,
    pub ops: Option<S<bool>>,
    pub health: Option<S<RawHealth>>,
    #[serde(default)]
    pub server: Vec<S<RawServer>>,
}

/// `[health]` (global defaults, specs/ipvs.md §7.2) and `[service.health]`
/// (one virtual's settings, §7.3) share ldirectord's key names; which keys
/// each table may hold is checked in `validate/health.rs`.
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHealth {
    pub checktype: Option<S<StrOrInt>>,
    pub service: Option<S<String>>,
    pub request: Option<S<String>>,
    pub receive: Option<S<String>>,
    pub httpmethod: Option<S<String>>,
    pub virtualhost: Option<S<String>>,
    pub checkport: Option<S<Int>>,
    pub checkcommand: Option<S<String>>,
    pub checkinterval: Option<S<Int>>,
    pub checktimeout: Option<S<Int>>,
    pub negotiatetimeout: Option<S<Int>>,
    pub failurecount: Option<S<Int>>,
    pub quiescent: Option<S<YesNo>>,
    pub fallback: Option<S<String>>,
    pub fallbackcommand: Option<S<String>>,
    pub source_address: Option<S<String>>,
    pub autoreload: Option<S<YesNo>>,
    pub readdquiescent: Option<S<YesNo>>,
    pub maintenancedir: Option<S<String>>,
}

/// A string or an integer (`checktype = 3` or `"3"`).
#[derive(Clone)]
pub(crate) enum StrOrInt {
    Str(String),
    Int(i64),
}

impl<'de> Deserialize<'de> for StrOrInt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = StrOrInt;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an integer")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<StrOrInt, E> {
                Ok(StrOrInt::Str(v.to_owned()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<StrOrInt, E> {
                Ok(StrOrInt::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<StrOrInt, E> {
                i64::try_from(v).map(StrOrInt::Int).map_err(|_| E::custom(format!("{v} is too large")))
            }
        }
        d.deserialize_any(V)
    }
}

/// ldirectord's `yes`/`no`, or a TOML boolean.
#[derive(Clone, Copy)]
pub(crate) struct YesNo(pub bool);

impl<'de> Deserialize<'de> for YesNo {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = YesNo;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"yes\", \"no\" or a boolean")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<YesNo, E> {
                Ok(YesNo(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<YesNo, E> {
                match v {
                    "yes" => Ok(YesNo(true)),
                    "no" => Ok(YesNo(false)),
                    _ => Err(E::custom(format!("\"{v}\" is not \"yes\", \"no\" or a boolean"))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    pub address: Option<S<String>>,
    pub method: Option<S<String>>,
    pub weight: Option<S<Int>>,
    pub u_threshold: Option<S<Int>>,
    pub l_threshold: Option<S<Int>>,
}

/// A TOML integer or boolean: sysctl switches read `0`/`1` like the kernel's
/// or `false`/`true`, and `persistent = true` means ipvsadm's bare `-p`.
pub(crate) enum IntOrBool {
    Int(i64),
    Bool(bool),
}

impl<'de> Deserialize<'de> for IntOrBool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = IntOrBool;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer or a boolean")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<IntOrBool, E> {
                Ok(IntOrBool::Bool(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<IntOrBool, E> {
                Ok(IntOrBool::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<IntOrBool, E> {
                i64::try_from(v).map(IntOrBool::Int).map_err(|_| E::custom(format!("{v} is too large")))
            }
        }
        d.deserialize_any(V)
    }
}

/// A TOML integer; range checks happen in `validate.rs` so that every
/// out-of-range value gets the same kind of message.
#[derive(Clone)]
pub(crate) struct Int(pub i64);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Int;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Int, E> {
                Ok(Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Int, E> {
                i64::try_from(v).map(Int).map_err(|_| E::custom(format!("{v} is too large")))
            }
        }
        d.deserialize_i64(V)
    }
}
