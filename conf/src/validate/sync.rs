//! Validation of `[sync]` (specs/ipvs.md §5, §6.1 daemon option ranges, §9
//! sync sysctls): the kernel's and ipvsadm's limits, with the kernel's
//! defaults.

use std::net::Ipv4Addr;

use super::Validator;
use crate::config::{Sync, SyncDaemon};
use crate::error::ConfError;
use crate::schema::{RawSync, RawSyncDaemon, S};

/// Longest interface name (IFNAMSIZ - 1).
const MAX_IFNAME: usize = 15;

impl Validator<'_> {
    pub(super) fn sync(&self, raw: RawSync) -> Result<Sync, ConfError> {
        let mut s = Sync::default();
        if let Some(v) = raw.version {
            s.version = self.int_in(&v, "sync.version", 0, 1)? as u8;
        }
        if let Some(v) = &raw.period {
            s.period = self.int_in(v, "sync.period", 0, i64::from(i32::MAX))? as u32;
        }
        if let Some(v) = raw.threshold {
            s.threshold = self.int_in(&v, "sync.threshold", 0, i64::from(i32::MAX))? as u32;
            // The kernel refuses threshold >= period unless period is 0 (§5.4).
            if s.period != 0 && s.threshold >= s.period {
                return Err(self.invalid(
                    &v,
                    "sync.threshold",
                    format!("{} must be below sync.period ({}) unless the period is 0", s.threshold, s.period),
                ));
            }
        } else if s.period != 0 && s.threshold >= s.period {
            if let Some(p) = &raw.period {
                return Err(self.invalid(
                    p,
                    "sync.period",
                    format!("{} must be above sync.threshold ({}) or 0", s.period, s.threshold),
                ));
            }
        }
        if let Some(v) = raw.persist_mode {
            s.persist_mode = self.switch(&v, "sync.persist_mode")?;
        }
        if let Some(v) = raw.backup_only {
            s.backup_only = self.switch(&v, "sync.backup_only")?;
        }
        if let Some(v) = raw.resync_period {
            s.resync_period = self.int_in(&v, "sync.resync_period", 0, 86400)? as u32;
        }
        if let Some(d) = raw.master {
            s.master = Some(self.sync_daemon(d, "sync.master")?);
        }
        if let Some(d) = raw.backup {
            s.backup = Some(self.sync_daemon(d, "sync.backup")?);
        }
        Ok(s)
    }

    /// `[sync.master]` / `[sync.backup]`: `--start-daemon` options (§6.1 ranges).
    fn sync_daemon(&self, raw: S<RawSyncDaemon>, key: &str) -> Result<SyncDaemon, ConfError> {
        let span = raw.span().start;
        let d = raw.into_inner();
        let Some(i) = d.interface else {
            return Err(self.r.invalid(span, key, "missing key \"interface\" (the multicast interface, like eth1)"));
        };
        let name = i.get_ref();
        if name.is_empty() || name.len() > MAX_IFNAME || name.contains(['/', ' ', ':']) {
            return Err(self.invalid(
                &i,
                format!("{key}.interface"),
                format!("\"{name}\" is not an interface name (1..={MAX_IFNAME} characters, no '/', ':' or space)"),
            ));
        }
        let group = match d.group {
            None => None,
            Some(g) => {
                let a: Ipv4Addr = g.get_ref().parse().map_err(|_| {
                    self.invalid(
                        &g,
                        format!("{key}.group"),
                        format!("\"{}\" is not an IPv4 address (rvs syncs over IPv4 only)", g.get_ref()),
                    )
                })?;
                if !a.is_multicast() {
                    return Err(self.invalid(
                        &g,
                        format!("{key}.group"),
                        format!("{a} is not a multicast address (224.0.0.0/4; LVS uses 224.0.0.81)"),
                    ));
                }
                Some(a)
            }
        };
        let num = |v: Option<S<crate::schema::Int>>, k: &str, lo: i64, hi: i64| -> Result<Option<i64>, ConfError> {
            v.map(|v| self.int_in(&v, &format!("{key}.{k}"), lo, hi)).transpose()
        };
        Ok(SyncDaemon {
            interface: i.into_inner(),
            syncid: num(d.syncid, "syncid", 0, 255)?.unwrap_or(0) as u8,
            group,
            port: num(d.port, "port", 1, 65535)?.map(|p| p as u16),
            ttl: num(d.ttl, "ttl", 1, 255)?.map(|t| t as u8),
            maxlen: num(d.maxlen, "maxlen", 1, 65507)?.map(|m| m as u16),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Sync, SyncDaemon};
    use crate::parse;

    fn err(text: &str) -> String {
        match parse(text, "rvs.toml") {
            Ok(c) => format!("unexpectedly valid: {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_are_the_kernels() {
        let c = parse("", "rvs.toml").unwrap();
        assert_eq!(c.sync, Sync::default());
        assert_eq!((c.sync.version, c.sync.threshold, c.sync.period), (1, 3, 50));
        assert_eq!(c.sync.resync_period, 30);
    }

    #[test]
    fn full_section() {
        let c = parse(
            "[sync]\nversion = 0\nthreshold = 0\nperiod = 0\npersist_mode = 1\nbackup_only = true\n\
             resync_period = 0\n[sync.master]\ninterface = \"eth1\"\nsyncid = 7\ngroup = \"224.0.0.82\"\n\
             port = 8849\nttl = 2\nmaxlen = 1400\n[sync.backup]\ninterface = \"eth1\"\n",
            "rvs.toml",
        )
        .unwrap();
        assert_eq!(c.sync.version, 0);
        assert!(c.sync.persist_mode && c.sync.backup_only);
        assert_eq!(
            c.sync.master,
            Some(SyncDaemon {
                interface: "eth1".into(),
                syncid: 7,
                group: Some("224.0.0.82".parse().unwrap()),
                port: Some(8849),
                ttl: Some(2),
                maxlen: Some(1400),
            })
        );
        assert_eq!(c.sync.backup.unwrap().syncid, 0);
    }

    #[test]
    fn errors_point_at_the_value() {
        assert_eq!(err("[sync]\nversion = 2\n"), "rvs.toml:2:11: sync.version: 2 is out of range (expected 0..=1)");
        assert_eq!(
            err("[sync]\nthreshold = 50\n"),
            "rvs.toml:2:13: sync.threshold: 50 must be below sync.period (50) unless the period is 0"
        );
        assert_eq!(err("[sync]\nperiod = 2\n"), "rvs.toml:2:10: sync.period: 2 must be above sync.threshold (3) or 0");
        assert_eq!(
            err("[sync.master]\nsyncid = 1\n"),
            "rvs.toml:1:1: sync.master: missing key \"interface\" (the multicast interface, like eth1)"
        );
        assert_eq!(
            err("[sync.backup]\ninterface = \"eth1\"\nsyncid = 256\n"),
            "rvs.toml:3:10: sync.backup.syncid: 256 is out of range (expected 0..=255)"
        );
        assert_eq!(
            err("[sync.master]\ninterface = \"eth1\"\ngroup = \"10.0.0.1\"\n"),
            "rvs.toml:3:9: sync.master.group: 10.0.0.1 is not a multicast address (224.0.0.0/4; LVS uses 224.0.0.81)"
        );
        assert_eq!(
            err("[sync.master]\ninterface = \"a-very-long-interface\"\n"),
            "rvs.toml:2:13: sync.master.interface: \"a-very-long-interface\" is not an interface name \
             (1..=15 characters, no '/', ':' or space)"
        );
        assert_eq!(
            err("[sync]\nthreshhold = 3\n"),
            "rvs.toml:2:1: sync.threshhold: unknown key (valid keys: version, threshold, period, persist_mode, \
             backup_only, resync_period, master, backup)"
        );
    }
}
