//! The dataplane clock: what "now" is for timeouts.
//!
//! Live, it follows the TSC (read once per burst, no syscall). In replay mode it
//! follows the timestamps of the packets read from pcap files, so timeout
//! behaviour in tests does not depend on how fast the machine replays them.

/// Nanoseconds since an arbitrary origin.
#[derive(Debug, Clone)]
pub struct Clock {
    mode: Mode,
    now_ns: u64,
}

#[derive(Debug, Clone)]
enum Mode {
    Live { hz: u64, start: u64 },
    Replay,
}

impl Clock {
    /// A clock driven by a cycle counter running at `hz`, starting at `start`.
    pub fn live(hz: u64, start: u64) -> Clock {
        Clock { mode: Mode::Live { hz: hz.max(1), start }, now_ns: 0 }
    }

    /// A clock that only moves when packets say so.
    pub fn replay() -> Clock {
        Clock { mode: Mode::Replay, now_ns: 0 }
    }

    pub fn is_replay(&self) -> bool {
        matches!(self.mode, Mode::Replay)
    }

    /// Live clock: advances to cycle count `cycles` (call once per burst).
    #[inline]
    pub fn tick(&mut self, cycles: u64) {
        if let Mode::Live { hz, start } = self.mode {
            let d = cycles.saturating_sub(start) as u128;
            self.now_ns = (d * 1_000_000_000 / hz as u128) as u64;
        }
    }

    /// Replay clock: a packet stamped `ts_ns` was read. Time never goes backwards,
    /// whatever the capture says.
    #[inline]
    pub fn observe(&mut self, ts_ns: u64) {
        if self.is_replay() && ts_ns > self.now_ns {
            self.now_ns = ts_ns;
        }
    }

    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// Whole seconds, the granularity of IPVS timeouts.
    #[inline]
    pub fn now_secs(&self) -> u64 {
        self.now_ns / 1_000_000_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_clock_converts_cycles() {
        let mut c = Clock::live(2_000_000_000, 1000);
        c.tick(1000 + 3_000_000_000);
        assert_eq!(c.now_ns(), 1_500_000_000);
        assert_eq!(c.now_secs(), 1);
        c.observe(99_000_000_000); // ignored live
        assert_eq!(c.now_secs(), 1);
    }

    #[test]
    fn replay_clock_follows_packets_and_never_goes_back() {
        let mut c = Clock::replay();
        c.tick(123_456); // ignored in replay
        assert_eq!(c.now_ns(), 0);
        c.observe(5_000_000_000);
        c.observe(4_000_000_000);
        assert_eq!(c.now_secs(), 5);
    }
}
