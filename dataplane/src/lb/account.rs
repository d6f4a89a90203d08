//! Per-real-server accounting of balanced packets: this worker's share of
//! the connection, packet and byte counters `ipvsadm --stats` shows
//! (specs/ipvs.md §6.2).
use super::Lb;
use crate::conn::Conn;
use crate::wire::ethernet;

impl Lb {
    /// Counts a packet (IP length) of connection `i` in its real server's
    /// statistics, this worker's share (`ipvsadm --stats`, §6.2).
    #[inline]
    pub(super) fn account(&self, i: u32, frame_len: usize, new_conn: bool, out: bool) {
        if let Some(c) = self.conns.get(i) {
            account_conn(c, self.worker, frame_len, new_conn, out);
        }
    }
}

/// Counts a packet (IP length) of connection `c` in its real server's
/// statistics, `worker`'s share (`ipvsadm --stats`, §6.2).
#[inline]
pub(super) fn account_conn(c: &Conn, worker: usize, frame_len: usize, new_conn: bool, out: bool) {
    let Some(st) = c.dest.as_ref().and_then(|d| d.stats.get(worker)) else {
        return;
    };
    let bytes = frame_len.saturating_sub(ethernet::HEADER_LEN) as u64;
    if new_conn {
        st.conns.add(1);
    }
    if out {
        st.outpkts.add(1);
        st.outbytes.add(bytes);
    } else {
        st.inpkts.add(1);
        st.inbytes.add(bytes);
    }
}
