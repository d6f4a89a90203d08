//! Per-protocol connection states and their timeouts (specs/ipvs.md §3.4-§3.7).
pub mod tcp;
pub mod udp;

pub use tcp::TcpState;

/// Which way a packet travels relative to its connection (§3.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Client → director.
    Input,
    /// Real server → client (seen only with NAT).
    Output,
    /// Client → director on a connection that never sees replies (DR/TUN: NOOUTPUT).
    InputOnly,
}

/// The state timeouts in seconds, per protocol, as `ipvsadm --set` leaves them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Indexed by [`TcpState`] as u8.
    pub tcp: [u32; TcpState::COUNT],
    pub udp: u32,
}

impl Default for Timeouts {
    /// The kernel's defaults (§3.5).
    fn default() -> Self {
        let mut tcp = [0; TcpState::COUNT];
        for s in TcpState::ALL {
            tcp[s as usize] = s.default_timeout();
        }
        Timeouts { tcp, udp: udp::DEFAULT_TIMEOUT }
    }
}

impl Timeouts {
    /// `ipvsadm --set tcp tcpfin udp` (§3.7): only ESTABLISHED, FIN_WAIT and UDP
    /// change, and 0 keeps the current value.
    pub fn set(&mut self, tcp: u32, tcpfin: u32, udp: u32) {
        if tcp != 0 {
            self.tcp[TcpState::Established as usize] = tcp;
        }
        if tcpfin != 0 {
            self.tcp[TcpState::FinWait as usize] = tcpfin;
        }
        if udp != 0 {
            self.udp = udp;
        }
    }

    /// What `ipvsadm -L --timeout` prints: tcp tcpfin udp.
    pub fn triple(&self) -> (u32, u32, u32) {
        (self.tcp[TcpState::Established as usize], self.tcp[TcpState::FinWait as usize], self.udp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_set_semantics() {
        let mut t = Timeouts::default();
        assert_eq!(t.triple(), (900, 120, 300));
        t.set(5, 0, 300);
        assert_eq!(t.triple(), (5, 120, 300));
        t.set(28800, 30, 0);
        assert_eq!(t.triple(), (28800, 30, 300));
        // Other TCP states are not configurable this way.
        assert_eq!(t.tcp[TcpState::SynRecv as usize], 60);
        assert_eq!(t.tcp[TcpState::TimeWait as usize], 120);
    }
}
