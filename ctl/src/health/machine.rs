//! One real server's check state: consecutive failures against
//! `failurecount`, and when the server changes between up and down
//! (ldirectord's `_check_real` bookkeeping, specs/ipvs.md §7.2: one success
//! resets the count; `failurecount` consecutive failures make it down).
//! Pure: no clock, no I/O, so the rules are tested directly.

/// What a server is, as far as the checks know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No result yet: the server stays as configured.
    Unknown,
    Up,
    Down,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Unknown => "unknown",
            Verdict::Up => "up",
            Verdict::Down => "down",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Machine {
    pub verdict: Verdict,
    /// Consecutive failures so far.
    pub failures: u32,
    pub failurecount: u32,
}

impl Machine {
    pub fn new(failurecount: u32) -> Machine {
        Machine { verdict: Verdict::Unknown, failures: 0, failurecount: failurecount.max(1) }
    }

    /// Records one check result; returns the new verdict when it changed.
    /// A server forced down by maintenance is down at once, whatever the
    /// count (ldirectord's maintenancedir, §7.2).
    pub fn record(&mut self, ok: bool, forced: bool) -> Option<Verdict> {
        let next = if ok {
            self.failures = 0;
            Verdict::Up
        } else {
            self.failures = self.failures.saturating_add(1);
            if forced || self.failures >= self.failurecount {
                Verdict::Down
            } else if self.verdict == Verdict::Unknown {
                // Not down yet, not proven up either: keep the configured state.
                Verdict::Unknown
            } else {
                self.verdict
            }
        };
        if next != self.verdict {
            self.verdict = next;
            Some(next)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failurecount_consecutive_failures_make_it_down_and_one_success_resets() {
        let mut m = Machine::new(3);
        assert_eq!(m.record(true, false), Some(Verdict::Up));
        assert_eq!(m.record(false, false), None);
        assert_eq!(m.record(false, false), None);
        assert_eq!(m.record(true, false), None);
        assert_eq!(m.failures, 0);
        assert_eq!(m.record(false, false), None);
        assert_eq!(m.record(false, false), None);
        assert_eq!(m.record(false, false), Some(Verdict::Down));
        assert_eq!(m.record(false, false), None);
        assert_eq!(m.record(true, false), Some(Verdict::Up));
    }

    #[test]
    fn default_failurecount_is_one_and_maintenance_is_immediate() {
        let mut m = Machine::new(1);
        assert_eq!(m.record(false, false), Some(Verdict::Down));
        let mut m = Machine::new(5);
        assert_eq!(m.record(false, false), None);
        assert_eq!(m.verdict, Verdict::Unknown);
        assert_eq!(m.record(false, true), Some(Verdict::Down));
        let m = Machine::new(0);
        assert_eq!(m.failurecount, 1);
    }
}
