//! The IPVS TCP state machine (specs/ipvs.md §3.4), its default timeouts (§3.5)
//! and which states count as active (§3.6).
use crate::wire::tcp::flags;

use super::Direction;

/// TCP connection states with the kernel's numbering (IP_VS_TCP_S_*).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TcpState {
    None = 0,
    Established = 1,
    SynSent = 2,
    SynRecv = 3,
    FinWait = 4,
    TimeWait = 5,
    Close = 6,
    CloseWait = 7,
    LastAck = 8,
    Listen = 9,
    SynAck = 10,
}

use TcpState::*;

impl TcpState {
    pub const COUNT: usize = 11;
    pub const ALL: [TcpState; 11] =
        [None, Established, SynSent, SynRecv, FinWait, TimeWait, Close, CloseWait, LastAck, Listen, SynAck];

    pub fn from_u8(v: u8) -> Option<TcpState> {
        Self::ALL.get(v as usize).copied()
    }

    /// The name `ipvsadm -Lc` prints.
    pub fn name(self) -> &'static str {
        match self {
            None => "NONE",
            Established => "ESTABLISHED",
            SynSent => "SYN_SENT",
            SynRecv => "SYN_RECV",
            FinWait => "FIN_WAIT",
            TimeWait => "TIME_WAIT",
            Close => "CLOSE",
            CloseWait => "CLOSE_WAIT",
            LastAck => "LAST_ACK",
            Listen => "LISTEN",
            SynAck => "SYNACK",
        }
    }

    /// The kernel's default timeout for the state, seconds (§3.5).
    pub fn default_timeout(self) -> u32 {
        match self {
            None => 2,
            Established => 900,
            SynSent => 120,
            SynRecv => 60,
            FinWait => 120,
            TimeWait => 120,
            Close => 10,
            CloseWait => 60,
            LastAck => 30,
            Listen => 120,
            SynAck => 120,
        }
    }

    /// Counted in ActiveConn (§3.6): ESTABLISHED, SYN_SENT, SYN_RECV, SYNACK.
    pub fn is_active(self) -> bool {
        matches!(self, Established | SynSent | SynRecv | SynAck)
    }
}

/// The event a segment stands for: first match of RST, SYN, FIN, ACK (§3.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Event {
    Syn = 0,
    Fin = 1,
    Ack = 2,
    Rst = 3,
}

fn event(tcp_flags: u8) -> Option<Event> {
    if tcp_flags & flags::RST != 0 {
        Some(Event::Rst)
    } else if tcp_flags & flags::SYN != 0 {
        Some(Event::Syn)
    } else if tcp_flags & flags::FIN != 0 {
        Some(Event::Fin)
    } else if tcp_flags & flags::ACK != 0 {
        Some(Event::Ack)
    } else {
        Option::None
    }
}

// Abbreviations as in the kernel's table.
const ES: TcpState = Established;
const SS: TcpState = SynSent;
const SR: TcpState = SynRecv;
const FW: TcpState = FinWait;
const TW: TcpState = TimeWait;
const CL: TcpState = Close;
const CW: TcpState = CloseWait;
const LA: TcpState = LastAck;
const LI: TcpState = Listen;

/// `tcp_states` of ip_vs_proto_tcp.c: [direction][event][current state].
/// Columns: NO ES SS SR FW TW CL CW LA LI SA.
#[rustfmt::skip]
const TABLE: [[[TcpState; 11]; 4]; 3] = [
    // INPUT
    [
        /* syn */ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        /* fin */ [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
        /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        /* rst */ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
    ],
    // OUTPUT
    [
        /* syn */ [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
        /* fin */ [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
        /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
        /* rst */ [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
    ],
    // INPUT_ONLY
    [
        /* syn */ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        /* fin */ [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
        /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        /* rst */ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
];

/// The state after a segment with `tcp_flags` travelling `dir` (§3.4). A segment
/// with none of RST/SYN/FIN/ACK sets CLOSE.
#[inline]
pub fn next_state(dir: Direction, tcp_flags: u8, cur: TcpState) -> TcpState {
    let Some(ev) = event(tcp_flags) else {
        return Close;
    };
    let d = match dir {
        Direction::Input => 0,
        Direction::Output => 1,
        Direction::InputOnly => 2,
    };
    TABLE[d][ev as usize][cur as usize]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tcp::flags::{ACK, FIN, PSH, RST, SYN};

    /// The premise of `Lb::transition`'s fast path: whatever else is set, an
    /// ACK without SYN, FIN or RST keeps an established connection
    /// established in every direction.
    #[test]
    fn plain_ack_keeps_established() {
        for dir in [Direction::Input, Direction::Output, Direction::InputOnly] {
            for extra in 0..=255u8 {
                let f = (extra & !(SYN | FIN | RST)) | ACK;
                assert_eq!(next_state(dir, f, Established), Established, "{dir:?} flags {f:#04x}");
            }
        }
    }

    #[test]
    fn spec_table_spot_checks() {
        // Every cell of the §3.4 table, transcribed independently as strings.
        let spec = [
            (Direction::Input, SYN, "SR ES ES SR SR SR SR SR SR SR SR"),
            (Direction::Input, FIN, "CL CW SS TW TW TW CL CW LA LI TW"),
            (Direction::Input, ACK, "ES ES SS ES FW TW CL CW CL LI ES"),
            (Direction::Input, RST, "CL CL CL SR CL CL CL CL LA LI SR"),
            (Direction::Output, SYN, "SS ES SS SR SS SS SS SS SS LI SR"),
            (Direction::Output, FIN, "TW FW SS TW FW TW CL TW LA LI TW"),
            (Direction::Output, ACK, "ES ES SS ES FW TW CL CW LA ES ES"),
            (Direction::Output, RST, "CL CL SS CL CL TW CL CL CL CL CL"),
            (Direction::InputOnly, SYN, "SR ES ES SR SR SR SR SR SR SR SR"),
            (Direction::InputOnly, FIN, "CL FW SS TW FW TW CL CW LA LI TW"),
            (Direction::InputOnly, ACK, "ES ES SS ES FW TW CL CW CL LI ES"),
            (Direction::InputOnly, RST, "CL CL CL SR CL CL CL CL LA LI CL"),
        ];
        let abbr = |s: TcpState| match s {
            None => "NO",
            Established => "ES",
            SynSent => "SS",
            SynRecv => "SR",
            FinWait => "FW",
            TimeWait => "TW",
            Close => "CL",
            CloseWait => "CW",
            LastAck => "LA",
            Listen => "LI",
            SynAck => "SA",
        };
        for (dir, f, row) in spec {
            let got: Vec<&str> = TcpState::ALL.iter().map(|&s| abbr(next_state(dir, f, s))).collect();
            assert_eq!(got.join(" "), row, "{dir:?} flags {f:#x}");
        }
    }

    #[test]
    fn event_precedence_and_flagless_segments() {
        // RST beats SYN beats FIN beats ACK.
        assert_eq!(next_state(Direction::Input, SYN | RST, Established), Close);
        assert_eq!(next_state(Direction::Input, SYN | FIN, None), SynRecv);
        assert_eq!(next_state(Direction::Input, FIN | ACK, Established), CloseWait);
        assert_eq!(next_state(Direction::Input, PSH, Established), Close);
        assert_eq!(next_state(Direction::Input, 0, SynRecv), Close);
    }

    #[test]
    fn nat_handshake_and_close() {
        let mut s = None;
        for (dir, f, want) in [
            (Direction::Input, SYN, SynRecv),
            (Direction::Output, SYN | ACK, SynRecv),
            (Direction::Input, ACK, Established),
            (Direction::Input, FIN | ACK, CloseWait),
            (Direction::Output, FIN | ACK, TimeWait),
            (Direction::Input, ACK, TimeWait),
        ] {
            s = next_state(dir, f, s);
            assert_eq!(s, want);
        }
    }

    #[test]
    fn timeouts_and_activity_match_the_spec() {
        let t: Vec<u32> = TcpState::ALL.iter().map(|s| s.default_timeout()).collect();
        assert_eq!(t, [2, 900, 120, 60, 120, 120, 10, 60, 30, 120, 120]);
        let active: Vec<&str> = TcpState::ALL.iter().filter(|s| s.is_active()).map(|s| s.name()).collect();
        assert_eq!(active, ["ESTABLISHED", "SYN_SENT", "SYN_RECV", "SYNACK"]);
        for (i, s) in TcpState::ALL.iter().enumerate() {
            assert_eq!(TcpState::from_u8(i as u8), Some(*s));
        }
        assert_eq!(TcpState::from_u8(11), Option::None);
    }
}
