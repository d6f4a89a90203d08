//! UDP connections: one state, named "UDP", never active (§3.5, §3.6).

/// The default UDP timeout in seconds (§3.5).
pub const DEFAULT_TIMEOUT: u32 = 300;

/// The only UDP state, as `ipvsadm -Lc` names it.
pub const STATE_NAME: &str = "UDP";
