//! The load-balancing path of one worker: IPVS's `ip_vs_in` / `ip_vs_out` for
//! IPv4 TCP and UDP, and related ICMP (specs/ipvs.md §2-§4).
//!
//! For each packet: look up its connection (client → VIP, or a NAT reply), or
//! find its service and schedule a new connection (with persistence
//! templates), update the protocol state and timer, and hand the packet to the
//! transmitter of the connection's forwarding method. Packets that are not
//! load-balanced take the plain forwarding path ([`crate::fwd`]).
//!
//! Pure over bytes and the worker's own state: no allocation, no lock.
use std::net::Ipv4Addr;

use crate::buf::PacketBuf;
use crate::conn::{flags as cf, Conn, ConnTable, TEMPLATE_ASSURED, TEMPLATE_NONE};
use crate::counters::WorkerCounters;
use crate::fwd;
use crate::proto::{tcp, Direction, TcpState};
use crate::sched::SchedInput;
use crate::service::{FwdMethod, Service, ServiceKey, PROTO_TCP, PROTO_UDP};
use crate::snapshot::Snapshot;
use crate::verdict::{DropReason, Verdict};
use crate::wire::{ethernet, ipv4, EtherType};
use crate::xmit::{self, XmitError};

const PROTO_ICMP: u8 = 1;
/// The table size from which [`Lb::prefetch_burst`] pays: below it, the
/// buckets and entries in use (128 bytes a connection) fit in a core's L2.
pub const PREFETCH_MIN_CONNS: usize = 4096;
/// Path MTU toward real servers (tunnel MTU = this − 20).
pub const PATH_MTU: u16 = 1500;

/// What the classifier needs to know about an IPv4 packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Flow {
    proto: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    tcp_flags: u8,
    fragment: bool,
    /// DF set and longer than the path MTU: §4.1's frag-needed case for DR
    /// and NAT (read once here instead of re-parsing at transmit).
    too_big: bool,
}

/// Parses Ethernet + IPv4 + the first 4 bytes of TCP/UDP (and TCP flags).
/// Returns the flow and trims Ethernet padding.
#[inline]
fn parse<B: PacketBuf>(pkt: &mut B) -> Result<Flow, DropReason> {
    let device_checked = pkt.ip_checksum_verified();
    let (flow, frame_len) = match parse_common(pkt.data(), device_checked) {
        Some(x) => x,
        None => parse_general(pkt.data(), device_checked)?,
    };
    pkt.trim_to(frame_len);
    Ok(flow)
}

/// A source address Linux drops before IPVS sees the packet
/// (ip_route_input_slow's martian check).
#[inline]
fn martian(src: Ipv4Addr) -> bool {
    src.is_unspecified() || src.is_broadcast() || src.is_multicast() || src.is_loopback()
}

/// Every IPv4 frame [`parse_common`] leaves (header options, fragments,
/// other protocols), and the drop reason for the rest.
fn parse_general(data: &[u8], device_checked: Option<bool>) -> Result<(Flow, usize), DropReason> {
    let eth = ethernet::Frame::new_checked(data).map_err(|_| DropReason::EthTruncated)?;
    if eth.raw_ethertype() != EtherType::Ipv4 {
        return Err(DropReason::NotIpv4);
    }
    let ip = ipv4::Packet::new_checked(eth.payload()).map_err(|_| DropReason::Ipv4Invalid)?;
    // The device's verdict where it checked (RX offload), else ours.
    if !device_checked.unwrap_or_else(|| ip.verify_checksum()) {
        return Err(DropReason::Ipv4BadChecksum);
    }
    let proto = ip.protocol().0;
    let l4 = ip.payload();
    let fragment = ip.is_fragment();
    let first = ip.frag_offset() == 0;
    let (sport, dport, tcp_flags) = match proto {
        PROTO_TCP | PROTO_UDP if first => {
            if !fragment {
                // Whole datagrams must carry a sane transport header, or a junk
                // SYN could create a connection the transmitter then refuses.
                let ok = if proto == PROTO_TCP {
                    let doff = l4.get(12).map_or(0, |b| usize::from(b >> 4) * 4);
                    doff >= 20 && doff <= l4.len()
                } else {
                    let ulen = l4.get(4..6).map_or(0, |b| usize::from(u16::from_be_bytes([b[0], b[1]])));
                    ulen >= 8 && ulen <= l4.len()
                };
                if !ok {
                    return Err(DropReason::L4Truncated);
                }
            }
            match (l4.first_chunk::<4>(), l4.get(13)) {
                (Some(p), f) => (
                    u16::from_be_bytes([p[0], p[1]]),
                    u16::from_be_bytes([p[2], p[3]]),
                    if proto == PROTO_TCP { f.copied().unwrap_or(0) } else { 0 },
                ),
                (None, _) => return Err(DropReason::L4Truncated),
            }
        }
        _ => (0, 0, 0),
    };
    let src = ip.src_addr();
    if martian(src) {
        return Err(DropReason::MartianSource);
    }
    let too_big = ip.dont_frag() && ip.total_len() > PATH_MTU;
    let flow = Flow { proto, src, dst: ip.dst_addr(), sport, dport, tcp_flags, fragment, too_big };
    Ok((flow, ethernet::HEADER_LEN + ip.total_len() as usize))
}

/// The frame nearly every packet is, read at fixed offsets: an IPv4 header
/// without options, a correct header checksum, a whole (unfragmented) TCP or
/// UDP datagram with a sane transport header, a unicast source. Gives the
/// flow and frame length [`parse`]'s general path gives for the same frame
/// (`tests::common_parse_equals_the_general_one`); None for anything else,
/// which the general path then takes, with its drop reasons.
#[inline]
fn parse_common(d: &[u8], device_checked: Option<bool>) -> Option<(Flow, usize)> {
    const L4: usize = ethernet::HEADER_LEN + 20;
    let h = d.first_chunk::<L4>()?;
    if h[12..14] != [0x08, 0x00] || h[14] != 0x45 {
        return None;
    }
    let total_len = u16::from_be_bytes([h[16], h[17]]);
    let frame_len = ethernet::HEADER_LEN + usize::from(total_len);
    let frag = u16::from_be_bytes([h[20], h[21]]);
    let proto = h[23];
    // Not a fragment (MF clear, offset 0); TCP or UDP.
    if frag & 0x3fff != 0 || (proto != PROTO_TCP && proto != PROTO_UDP) {
        return None;
    }
    let ip = h.last_chunk::<20>()?;
    if !device_checked.unwrap_or_else(|| crate::checksum::ipv4_header_ok(ip)) {
        return None;
    }
    // The datagram within the frame, at least its header long.
    let l4 = d.get(L4..frame_len)?;
    let (ports, tcp_flags) = if proto == PROTO_TCP {
        let t = l4.first_chunk::<20>()?;
        let doff = usize::from(t[12] >> 4) * 4;
        if doff < 20 || doff > l4.len() {
            return None;
        }
        ([t[0], t[1], t[2], t[3]], t[13])
    } else {
        let u = l4.first_chunk::<8>()?;
        let ulen = usize::from(u16::from_be_bytes([u[4], u[5]]));
        if ulen < 8 || ulen > l4.len() {
            return None;
        }
        ([u[0], u[1], u[2], u[3]], 0)
    };
    let src = Ipv4Addr::new(h[26], h[27], h[28], h[29]);
    if martian(src) {
        return None; // the general path drops it
    }
    let flow = Flow {
        proto,
        src,
        dst: Ipv4Addr::new(h[30], h[31], h[32], h[33]),
        sport: u16::from_be_bytes([ports[0], ports[1]]),
        dport: u16::from_be_bytes([ports[2], ports[3]]),
        tcp_flags,
        fragment: false,
        too_big: frag & 0x4000 != 0 && total_len > PATH_MTU,
    };
    Some((flow, frame_len))
}

/// The worker that owns a packet's flow, or None when any worker may handle it
/// (routed traffic). Client → VIP packets are owned by their source, NAT
/// replies by their destination, related ICMP by the client it quotes.
pub fn flow_owner(data: &[u8], mark: u32, snap: &Snapshot, workers: usize) -> Option<usize> {
    if workers <= 1 || !snap.has_services() {
        return None;
    }
    let eth = ethernet::Frame::new_checked(data).ok()?;
    if eth.raw_ethertype() != EtherType::Ipv4 {
        return None;
    }
    let ip = ipv4::Packet::new_checked(eth.payload()).ok()?;
    let (src, dst, proto) = (ip.src_addr(), ip.dst_addr(), ip.protocol().0);
    let l4 = ip.payload();
    let port = |at: usize| l4.get(at..at + 2).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    let client = if proto == PROTO_ICMP {
        let key = xmit::nat::icmp_embedded_key(data)?;
        // Quoted packet from a client (towards a RS) or towards a client (from a VIP/RS).
        if snap.is_vip(key.dst) || snap.is_nat_source(key.proto, key.dst, key.dport) {
            key.src
        } else {
            key.dst
        }
    } else if mark != 0 || snap.is_vip(dst) {
        src
    } else if snap.is_nat_source(proto, src, port(0)) {
        dst
    } else {
        return None;
    };
    Some(owner_of(client, snap.owner_prefix, workers))
}

/// The worker owning flows of `client` (a hash of the address masked to
/// `prefix`, so persistence templates of a client subnet stay on one worker).
#[inline]
pub fn owner_of(client: Ipv4Addr, prefix: u8, workers: usize) -> usize {
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix.min(32))) };
    let h = (u32::from(client) & mask).wrapping_mul(0x9E37_79B1);
    ((u64::from(h) * workers as u64) >> 32) as usize
}

/// Slots of the per-worker next-hop cache (direct-mapped by destination).
const HOP_SLOTS: usize = 256;

/// A resolved next hop, cached: the destination it is for, the port, and
/// both MACs to write. Valid for one snapshot and one `Learned`.
#[derive(Clone, Copy, Default)]
struct HopSlot {
    dst: u32,
    valid: bool,
    port: u16,
    dmac: [u8; 6],
    smac: [u8; 6],
}

/// The (proto, src, sport, dst, dport) an IPv4 frame appears to carry, read
/// without validation: for prefetch hints only.
#[inline]
fn peek_tuple(data: &[u8]) -> Option<(u8, Ipv4Addr, u16, Ipv4Addr, u16)> {
    let ihl = usize::from(data.get(14)? & 0x0f) * 4;
    if data.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let (proto, src, dst, ports) = (data.get(23)?, data.get(26..30)?, data.get(30..34)?, data.get(14 + ihl..18 + ihl)?);
    let ip = |b: &[u8]| Ipv4Addr::new(b[0], b[1], b[2], b[3]);
    Some((*proto, ip(src), u16::from_be_bytes([ports[0], ports[1]]), ip(dst), u16::from_be_bytes([ports[2], ports[3]])))
}

/// One worker's load-balancing state.
pub struct Lb {
    pub worker: usize,
    pub conns: ConnTable,
    /// Neighbours and addresses learned at run time (the worker refreshes it
    /// once per round from what the exception path publishes, through
    /// [`Lb::set_learned`]).
    learned: std::sync::Arc<fwd::Learned>,
    /// Next hops resolved since the snapshot `hops_for` or `learned` last
    /// changed: a route lookup and a neighbour lookup saved per packet.
    hops: Box<[HopSlot; HOP_SLOTS]>,
    hops_for: u64,
    ip_ident: u16,
    /// This worker's end of the sync daemon (specs/ipvs.md §5; `lb_sync.rs`).
    pub sync: Option<std::sync::Arc<crate::sync::SyncPort>>,
}

impl Lb {
    pub fn new(worker: usize, conns_capacity: u32, seed: u64) -> Lb {
        Lb {
            worker,
            conns: ConnTable::new(conns_capacity, seed),
            learned: Default::default(),
            hops: Box::new([HopSlot::default(); HOP_SLOTS]),
            hops_for: 0,
            ip_ident: (worker as u16).wrapping_mul(0x3fff),
            sync: None,
        }
    }

    /// Prefetches what the lookups of a burst of frames will read: the
    /// connection-table buckets of both keys a frame may have (client → VIP
    /// and reply), then the entries those buckets point to, each key hashed
    /// once. A hint: unvalidated reads, no effect on what `process` decides.
    ///
    /// Skipped while the table holds fewer than [`PREFETCH_MIN_CONNS`]
    /// entries: those stay in the core's caches, and the two passes then cost
    /// more than they save (`scripts/bench`, DR, three alternating runs of
    /// each build: without the passes, 12 % faster at 1k flows and 17 %
    /// slower at 64k).
    #[inline]
    pub fn prefetch_burst<'a>(&self, frames: impl Iterator<Item = &'a [u8]>) {
        if self.conns.len() < PREFETCH_MIN_CONNS {
            return;
        }
        let mut buckets = [[u32::MAX; 2]; crate::hints::BURST];
        for (b, data) in buckets.iter_mut().zip(frames) {
            if let Some((proto, src, sport, dst, dport)) = peek_tuple(data) {
                *b = [self.conns.bucket_of(proto, src, sport), self.conns.bucket_of(proto, dst, dport)];
                self.conns.prefetch_bucket(b[0]);
                self.conns.prefetch_bucket(b[1]);
            }
        }
        for b in buckets.iter().flatten() {
            self.conns.prefetch_chain(*b);
        }
    }

    /// What the exception path learned (neighbours, kernel-held addresses).
    pub fn learned(&self) -> &std::sync::Arc<fwd::Learned> {
        &self.learned
    }

    /// Takes a new publication of what the exception path learned; forgets
    /// the next hops resolved with the old one.
    pub fn set_learned(&mut self, learned: std::sync::Arc<fwd::Learned>) {
        self.learned = learned;
        self.hops_for = 0;
    }

    /// The next hop toward `dst` with the MACs to write, from the cache or
    /// resolved (and cached once the neighbour is known). Only resolved hops
    /// are cached, so a packet waiting for ARP resolves again next time.
    #[inline]
    fn hop(&mut self, dst: Ipv4Addr, snap: &Snapshot) -> Result<(fwd::Hop, [u8; 6]), DropReason> {
        if self.hops_for != snap.id {
            self.hops.fill(HopSlot::default());
            self.hops_for = snap.id;
        }
        let d = u32::from(dst);
        let at = (d.wrapping_mul(0x9E37_79B1) >> 24) as usize % HOP_SLOTS;
        if let Some(s) = self.hops.get(at) {
            if s.valid && s.dst == d {
                return Ok((fwd::Hop { port: s.port, next_hop: dst, mac: Some(s.dmac) }, s.smac));
            }
        }
        let hop = snap.fib.resolve(dst, &self.learned)?;
        let smac = snap.fib.port_mac(hop.port);
        if let (Some(dmac), Some(s)) = (hop.mac, self.hops.get_mut(at)) {
            *s = HopSlot { dst: d, valid: true, port: hop.port, dmac, smac };
        }
        Ok((hop, smac))
    }

    /// Runs the connection timers to `now` (seconds).
    pub fn expire(&mut self, now: u32) {
        self.conns.expire(now, |_, _| {});
    }

    /// Decides and rewrites one packet received on port `in_port` with firewall
    /// mark `mark`, at time `now` (seconds).
    pub fn process<B: PacketBuf>(
        &mut self,
        pkt: &mut B,
        in_port: u16,
        mark: u32,
        snap: &Snapshot,
        now: u32,
        counters: &WorkerCounters,
    ) -> Verdict {
        // Only frames addressed to this port are ours (promiscuous devices see
        // the whole segment); broadcast and multicast wait for the kernel path.
        if pkt.data().len() < ethernet::HEADER_LEN {
            return Verdict::Drop(DropReason::EthTruncated);
        }
        if let Some(dst) = pkt.data().first_chunk::<6>() {
            if dst[0] & 1 != 0 {
                return Verdict::Drop(DropReason::L2Multicast);
            }
            if *dst != snap.fib.port_mac(in_port) {
                return Verdict::Drop(DropReason::NotForUs);
            }
        }
        if !snap.has_services() {
            return fwd::forward(pkt, &snap.fib, &self.learned);
        }
        let flow = match parse(pkt) {
            Ok(f) => f,
            Err(r) => return Verdict::Drop(r),
        };
        // backup_only: no balancing while a sync backup (specs/ipvs.md §5.5).
        if self.sync.as_ref().is_some_and(|s| s.params.backup_only.load(std::sync::atomic::Ordering::Relaxed)) {
            return self.not_balanced(pkt, flow, snap);
        }
        match flow.proto {
            PROTO_TCP | PROTO_UDP => self.tcp_udp(pkt, flow, in_port, mark, snap, now, counters),
            PROTO_ICMP => self.icmp(pkt, flow, in_port, snap, now),
            _ => self.not_balanced(pkt, flow, snap),
        }
    }

    fn not_balanced<B: PacketBuf>(&self, pkt: &mut B, flow: Flow, snap: &Snapshot) -> Verdict {
        if snap.is_vip(flow.dst) && !snap.fib.is_local(flow.dst) {
            return Verdict::Drop(DropReason::VipUnhandled);
        }
        fwd::forward(pkt, &snap.fib, &self.learned)
    }

    #[allow(clippy::too_many_arguments)]
    fn tcp_udp<B: PacketBuf>(
        &mut self,
        pkt: &mut B,
        flow: Flow,
        in_port: u16,
        mark: u32,
        snap: &Snapshot,
        now: u32,
        counters: &WorkerCounters,
    ) -> Verdict {
        let inbound = mark != 0 || snap.is_vip(flow.dst);
        if inbound {
            if flow.fragment {
                return Verdict::Drop(DropReason::Fragment);
            }
            if let Some(i) = self.conns.lookup_in(flow.proto, flow.src, flow.sport, flow.dst, flow.dport) {
                match self.reuse_or_keep(i, flow, snap) {
                    Ok(true) => return self.input(pkt, i, flow, in_port, snap, now),
                    Ok(false) => {} // expired: schedule afresh
                    Err(r) => return Verdict::Drop(r),
                }
            }
            if let Some(s) = snap.find_service(mark, flow.proto, flow.dst, flow.dport) {
                return self.schedule(pkt, s, flow, in_port, snap, now, counters);
            }
        } else if snap.is_nat_source(flow.proto, flow.src, flow.sport) {
            if flow.fragment {
                return Verdict::Drop(DropReason::Fragment);
            }
            if let Some(i) = self.conns.lookup_out(flow.proto, flow.src, flow.sport, flow.dst, flow.dport) {
                return self.output(pkt, i, flow, in_port, snap, now);
            }
            // §4.2: an unmatched packet from a NAT real service passes, or with
            // nat_icmp_send gets a port unreachable back (never for a TCP RST).
            let rst = flow.proto == PROTO_TCP && flow.tcp_flags & crate::wire::tcp::flags::RST != 0;
            if snap.knobs.nat_icmp_send && !rst {
                if let Some(src) = snap.fib.port_addr(in_port) {
                    return match xmit::icmp::port_unreachable(pkt, src) {
                        Ok(()) => {
                            counters.icmp_sent.add(1);
                            Verdict::Forward { port: in_port }
                        }
                        Err(e) => Verdict::Drop(xmit_drop(e)),
                    };
                }
            }
        }
        self.not_balanced(pkt, flow, snap)
    }

    /// An existing connection for a client packet: keep it (Ok(true)), expire it
    /// so the packet schedules afresh (Ok(false)), or drop the packet.
    #[inline]
    fn reuse_or_keep(&mut self, i: u32, flow: Flow, snap: &Snapshot) -> Result<bool, DropReason> {
        // Nearly every packet: no SYN, its real server still there.
        if flow.tcp_flags & crate::wire::tcp::flags::SYN == 0 || flow.proto != PROTO_TCP {
            if let Some(c) = self.conns.get(i) {
                if c.dest.as_ref().is_some_and(|d| d.available.load(std::sync::atomic::Ordering::Relaxed)) {
                    return Ok(true);
                }
            }
        }
        self.reuse_or_keep_checked(i, flow, snap)
    }

    /// [`Lb::reuse_or_keep`] for a SYN, or for a connection whose real server
    /// is gone, in IPVS's order (`ip_vs_in_hook`): first a new SYN may retire
    /// the old entry (§3.3, and §2.4's quiesced case), and only then is the
    /// server's status checked (§2.4). The other order would drop the SYN
    /// that reuses the port of a finished connection to a removed server
    /// until that entry's timer ran out.
    #[inline(never)]
    fn reuse_or_keep_checked(&mut self, i: u32, flow: Flow, snap: &Snapshot) -> Result<bool, DropReason> {
        use std::sync::atomic::Ordering::Relaxed;
        let Some(c) = self.conns.get(i) else { return Ok(false) };
        let knobs = &snap.knobs;
        // IPVS's new-connection test is the SYN bit alone (an RST with it
        // still retires the entry; scheduling then refuses the segment).
        if flow.proto == PROTO_TCP && flow.tcp_flags & crate::wire::tcp::flags::SYN != 0 {
            // §2.4: a SYN on a connection to a server of weight 0 (quiesced, or
            // drained before removal) is rescheduled with expire_nodest_conn,
            // whatever conn_reuse_mode says and persistent or not.
            let quiesced = c.dest.as_ref().is_some_and(|d| d.weight.load(Relaxed) == 0);
            let resched = if knobs.expire_nodest_conn && quiesced {
                true
            } else {
                // §3.3: any nonzero conn_reuse_mode reuses an uncontrolled
                // (not persistent) connection in TIME_WAIT or CLOSE; the value
                // 2 adds FIN_WAIT without output (DR/TUN).
                let mode = knobs.conn_reuse_mode;
                let st = c.tcp_state();
                mode != 0
                    && c.control == crate::conn::NIL
                    && (matches!(st, TcpState::TimeWait | TcpState::Close)
                        || (mode & 2 != 0 && st == TcpState::FinWait && c.flags & cf::NOOUTPUT != 0))
            };
            if resched {
                self.conns.expire_now(i);
                return Ok(false);
            }
        }
        // §2.4: then the server's status. A removed server (or, on a sync
        // backup, one not configured here) drops the packet, or with
        // expire_nodest_conn = 1 expires the entry and the packet is new.
        if !c.dest.as_ref().is_some_and(|d| d.available.load(Relaxed)) {
            if knobs.expire_nodest_conn {
                self.conns.expire_now(i);
                return Ok(false);
            }
            return Err(DropReason::DestUnavailable);
        }
        Ok(true)
    }

    /// Counts a packet (IP length) of connection `i` in its real server's
    /// statistics, this worker's share (`ipvsadm --stats`, §6.2).
    #[inline]
    fn account(&self, i: u32, frame_len: usize, new_conn: bool, out: bool) {
        if let Some(c) = self.conns.get(i) {
            account_conn(c, self.worker, frame_len, new_conn, out);
        }
    }

    /// Client → server on connection `i`: state, timer, transmit.
    fn input<B: PacketBuf>(
        &mut self,
        pkt: &mut B,
        i: u32,
        flow: Flow,
        in_port: u16,
        snap: &Snapshot,
        now: u32,
    ) -> Verdict {
        let (worker, frame_len) = (self.worker, pkt.data().len());
        let Some(c) = self.conns.get_mut(i) else { return Verdict::Drop(DropReason::ConnTableFull) };
        account_conn(c, worker, frame_len, false, false);
        c.in_pkts = c.in_pkts.wrapping_add(1);
        let dir = if c.flags & cf::NOOUTPUT != 0 { Direction::InputOnly } else { Direction::Input };
        self.transition(i, flow, dir, snap, now);
        self.sync_after_packet(i);
        self.transmit(pkt, i, flow, in_port, snap)
    }

    /// Real server → client (NAT) on connection `i`.
    fn output<B: PacketBuf>(
        &mut self,
        pkt: &mut B,
        i: u32,
        flow: Flow,
        in_port: u16,
        snap: &Snapshot,
        now: u32,
    ) -> Verdict {
        self.account(i, pkt.data().len(), false, true);
        self.transition(i, flow, Direction::Output, snap, now);
        let Some(c) = self.conns.get(i) else { return Verdict::Drop(DropReason::ConnTableFull) };
        let (vaddr, vport, caddr, control) = (c.vaddr, c.vport, c.caddr, c.control);
        if flow.proto == PROTO_UDP {
            self.assure(control);
        }
        if let Err(e) = xmit::nat::rewrite_out(pkt, vaddr, vport) {
            return self.xmit_error(pkt, e, vaddr, in_port);
        }
        self.route_to(pkt, caddr, snap)
    }

    /// Protocol state transition and timer re-arm for one packet (§3.4, §3.5).
    #[inline]
    fn transition(&mut self, i: u32, flow: Flow, dir: Direction, snap: &Snapshot, now: u32) {
        use crate::wire::tcp::flags::{ACK, FIN, RST, SYN};
        let Some(c) = self.conns.get_mut(i) else { return };
        let plain_ack = flow.tcp_flags & (SYN | FIN | RST | ACK) == ACK;
        if flow.proto == PROTO_TCP && plain_ack && c.state == TcpState::Established as u8 {
            // A plain ACK of an established connection stays ESTABLISHED in
            // every direction of the §3.4 table: no lookup, no state change;
            // the timer restarts and the template is (still) assured.
            c.rearm(snap.timeouts.tcp[TcpState::Established as usize], now);
            let control = c.control;
            self.assure(control);
            return;
        }
        self.transition_state(i, flow, dir, snap, now);
    }

    /// [`Lb::transition`] through the §3.4 state table.
    #[inline(never)]
    fn transition_state(&mut self, i: u32, flow: Flow, dir: Direction, snap: &Snapshot, now: u32) {
        let Some(c) = self.conns.get(i) else { return };
        let timeout = if flow.proto == PROTO_TCP {
            let (cur, control) = (c.tcp_state(), c.control);
            let new = tcp::next_state(dir, flow.tcp_flags, cur);
            self.conns.set_tcp_state(i, new);
            if new == TcpState::Established {
                self.assure(control);
            }
            snap.timeouts.tcp[new as usize]
        } else {
            snap.timeouts.udp
        };
        self.conns.touch(i, timeout, now);
    }

    /// A child connection proved the client real: its template becomes ASSURED.
    #[inline]
    fn assure(&mut self, template: u32) {
        if template == crate::conn::NIL {
            return;
        }
        if let Some(t) = self.conns.get_mut(template) {
            if t.is_template() {
                t.state = TEMPLATE_ASSURED;
            }
        }
    }

    /// A new connection for service `s` (§2.2, §3.2).
    #[allow(clippy::too_many_arguments)]
    fn schedule<B: PacketBuf>(
        &mut self,
        pkt: &mut B,
        s: u32,
        flow: Flow,
        in_port: u16,
        snap: &Snapshot,
        now: u32,
        counters: &WorkerCounters,
    ) -> Verdict {
        let Some(svc) = snap.service(s) else { return Verdict::Drop(DropReason::VipUnhandled) };
        if flow.proto == PROTO_TCP && !snap.knobs.sloppy_tcp {
            use crate::wire::tcp::flags::{RST, SYN};
            if flow.tcp_flags & SYN == 0 || flow.tcp_flags & RST != 0 {
                return Verdict::Drop(DropReason::TcpNoConn);
            }
        }
        let picked = match svc.persistence {
            Some(_) => self.sched_persist(svc, flow, snap, now),
            None => self.sched_plain(svc, flow),
        };
        let Some((daddr, dport, method, dest, template)) = picked else {
            counters.no_dest.add(1);
            // §4.6: no real server → ICMP port unreachable from the VIP, for TCP too.
            return match xmit::icmp::port_unreachable(pkt, flow.dst) {
                Ok(()) => {
                    counters.icmp_sent.add(1);
                    Verdict::Forward { port: in_port }
                }
                Err(e) => Verdict::Drop(xmit_drop(e)),
            };
        };
        let mut fl = method as u16;
        if method != FwdMethod::Masq {
            fl |= cf::NOOUTPUT;
        }
        if svc.one_packet && flow.proto == PROTO_UDP {
            fl |= cf::ONE_PACKET;
        }
        let c = Conn::new(flow.proto, flow.src, flow.sport, flow.dst, flow.dport, daddr, dport, fl, Some(dest));
        let Ok(i) = self.conns.insert(c, now) else {
            return Verdict::Drop(DropReason::ConnTableFull);
        };
        counters.conns_created.add(1);
        self.account(i, pkt.data().len(), true, false);
        if let Some(t) = template {
            self.conns.set_control(i, t);
            // Releasing the template restarts its timer with its timeout (§2.2 step 5).
            if let Some(tc) = self.conns.get(t) {
                let to = tc.timeout;
                self.conns.touch(t, to, now);
            }
        }
        if let Some(c) = self.conns.get_mut(i) {
            c.in_pkts = 1;
        }
        let dir = if fl & cf::NOOUTPUT != 0 { Direction::InputOnly } else { Direction::Input };
        self.transition(i, flow, dir, snap, now);
        self.sync_after_packet(i);
        let v = self.transmit(pkt, i, flow, in_port, snap);
        if fl & cf::ONE_PACKET != 0 {
            // OPS: scheduled and sent, never kept (§3.8).
            self.conns.force_expire(i);
        }
        v
    }

    /// Non-persistent scheduling: conn dport = dest port, or the packet's (§2.2).
    fn sched_plain(&mut self, svc: &Service, flow: Flow) -> Option<Picked> {
        let st = svc.sched_state.get(self.worker)?;
        let d = svc.scheduler.schedule(st, &svc.dests, &SchedInput { saddr: flow.src, sport: flow.sport })?;
        let dest = svc.dests.get(d)?;
        let dport = if dest.port != 0 { dest.port } else { flow.dport };
        Some((dest.addr, dport, dest.method, dest.shared.clone(), None))
    }

    /// Persistent scheduling through a template (§2.1-§2.4).
    fn sched_persist(&mut self, svc: &Service, flow: Flow, snap: &Snapshot, now: u32) -> Option<Picked> {
        let p = svc.persistence?;
        let snet = Ipv4Addr::from(u32::from(flow.src) & u32::from(p.netmask));
        // §2.1 template key.
        let (tproto, tvaddr, tvport) = match svc.key {
            ServiceKey::Fwmark(m) => (0u8, Ipv4Addr::from(m), 0u16),
            ServiceKey::Addr { vport, .. } if vport != 0 && flow.dport == vport && vport != 21 => {
                (flow.proto, flow.dst, vport)
            }
            ServiceKey::Addr { .. } => (flow.proto, flow.dst, 0),
        };
        let per_port = tvport != 0;
        let svc_vport = match svc.key {
            ServiceKey::Addr { vport, .. } => vport,
            ServiceKey::Fwmark(_) => 0,
        };
        if let Some(t) = self.conns.lookup_template(tproto, snet, tvaddr, tvport) {
            let tc = self.conns.get(t)?;
            let d = tc.dest.as_ref()?;
            let available = d.available.load(std::sync::atomic::Ordering::Relaxed);
            let quiesced = d.weight.load(std::sync::atomic::Ordering::Relaxed) == 0;
            if available && !(snap.knobs.expire_quiescent_template && quiesced) {
                // §2.2 step 3: the template's dest, even if overloaded or quiesced.
                let dport = if flow.dport == svc_vport && tc.dport != 0 { tc.dport } else { flow.dport };
                return Some((tc.daddr, dport, tc.method(), d.clone(), Some(t)));
            }
            // §2.4: an invalid template can no longer be found; it lingers until its children die.
            self.conns.unhash(t);
        }
        let st = svc.sched_state.get(self.worker)?;
        let di = svc.scheduler.schedule(st, &svc.dests, &SchedInput { saddr: flow.src, sport: flow.sport })?;
        let dest = svc.dests.get(di)?;
        let tdport = if per_port { dest.port } else { 0 };
        let mut tc = Conn::new(
            tproto,
            snet,
            0,
            tvaddr,
            tvport,
            dest.addr,
            tdport,
            cf::TEMPLATE | dest.method as u16,
            Some(dest.shared.clone()),
        );
        tc.state = TEMPLATE_NONE;
        tc.timeout = p.timeout;
        let t = self.conns.insert(tc, now).ok()?;
        // §2.2 step 4: conn dport.
        let dport = if flow.dport == svc_vport && dest.port != 0 { dest.port } else { flow.dport };
        Some((dest.addr, dport, dest.method, dest.shared.clone(), Some(t)))
    }

    /// Sends a client packet of connection `i` by its forwarding method (§4).
    #[inline(always)]
    fn transmit<B: PacketBuf>(&mut self, pkt: &mut B, i: u32, flow: Flow, in_port: u16, snap: &Snapshot) -> Verdict {
        let Some(c) = self.conns.get(i) else { return Verdict::Drop(DropReason::ConnTableFull) };
        let (daddr, dport, method) = (c.daddr, c.dport, c.method());
        let vip = flow.dst;
        if method != FwdMethod::Tunnel {
            // §4.1: DF set and longer than the path MTU → frag needed, from the VIP.
            if flow.too_big {
                return self.xmit_error(pkt, XmitError::FragNeeded { mtu: PATH_MTU }, vip, in_port);
            }
        }
        match method {
            FwdMethod::Masq => {
                if let Err(e) = xmit::nat::rewrite_in(pkt, daddr, dport) {
                    return self.xmit_error(pkt, e, vip, in_port);
                }
                self.route_to(pkt, daddr, snap)
            }
            FwdMethod::Route => {
                let (hop, smac) = match self.hop(daddr, snap) {
                    Ok(x) => x,
                    Err(r) => return Verdict::Drop(r),
                };
                // The frame passed `parse`: no second validation of its header.
                match xmit::dr::rewrite_parsed(pkt, hop.mac_or_zero(), smac) {
                    Ok(()) => hop.verdict(),
                    Err(e) => self.xmit_error(pkt, e, vip, in_port),
                }
            }
            FwdMethod::Tunnel => {
                let (hop, smac) = match self.hop(daddr, snap) {
                    Ok(x) => x,
                    Err(r) => return Verdict::Drop(r),
                };
                let Some(src) = snap.fib.port_addr(hop.port) else {
                    return Verdict::Drop(DropReason::NoSourceAddress);
                };
                self.ip_ident = self.ip_ident.wrapping_add(1);
                if let Err(e) = xmit::tun::encapsulate(pkt, src, daddr, self.ip_ident, snap.knobs.pmtu_disc, PATH_MTU) {
                    return self.xmit_error(pkt, e, vip, in_port);
                }
                match xmit::set_macs(pkt, hop.mac_or_zero(), smac) {
                    Ok(()) => hop.verdict(),
                    Err(e) => Verdict::Drop(xmit_drop(e)),
                }
            }
        }
    }

    /// Sets the MACs for the next hop to `dst` and picks the port.
    fn route_to<B: PacketBuf>(&mut self, pkt: &mut B, dst: Ipv4Addr, snap: &Snapshot) -> Verdict {
        match self.hop(dst, snap) {
            Ok((hop, smac)) => match xmit::set_macs(pkt, hop.mac_or_zero(), smac) {
                Ok(()) => hop.verdict(),
                Err(e) => Verdict::Drop(xmit_drop(e)),
            },
            Err(r) => Verdict::Drop(r),
        }
    }

    /// A transmitter refused: answer with ICMP where IPVS does (§4.1), from `src`
    /// (the VIP: the director is the destination the client knows).
    #[cold]
    #[inline(never)]
    fn xmit_error<B: PacketBuf>(&self, pkt: &mut B, e: XmitError, src: Ipv4Addr, in_port: u16) -> Verdict {
        let r = match e {
            XmitError::TtlExceeded => xmit::icmp::time_exceeded(pkt, src),
            XmitError::FragNeeded { mtu } => xmit::icmp::frag_needed(pkt, src, mtu),
            other => return Verdict::Drop(xmit_drop(other)),
        };
        match r {
            Ok(()) => Verdict::Forward { port: in_port },
            Err(e) => Verdict::Drop(xmit_drop(e)),
        }
    }

    /// Related ICMP errors (§4.7): matched against connections through the
    /// packet they quote; everything else is routed.
    fn icmp<B: PacketBuf>(&mut self, pkt: &mut B, flow: Flow, in_port: u16, snap: &Snapshot, now: u32) -> Verdict {
        let _ = now;
        let Some(k) = xmit::nat::icmp_embedded_key(pkt.data()) else {
            return self.not_balanced(pkt, flow, snap);
        };
        if k.proto != PROTO_TCP && k.proto != PROTO_UDP {
            return self.not_balanced(pkt, flow, snap);
        }
        // Inbound: about a packet sent towards the client, quoted as VIP:vport → client.
        if let Some(i) = self.conns.lookup_in(k.proto, k.dst, k.dport, k.src, k.sport) {
            let Some(c) = self.conns.get(i) else { return Verdict::Drop(DropReason::ConnTableFull) };
            let (daddr, dport, method) = (c.daddr, c.dport, c.method());
            return match method {
                FwdMethod::Masq => match xmit::nat::icmp_in(pkt, daddr, dport) {
                    Ok(()) => self.route_to(pkt, daddr, snap),
                    Err(e) => self.xmit_error(pkt, e, flow.dst, in_port),
                },
                _ => self.transmit(pkt, i, flow, in_port, snap),
            };
        }
        // Outbound: from the RS side about a client → RS packet (NAT).
        if let Some(i) = self.conns.lookup_out(k.proto, k.dst, k.dport, k.src, k.sport) {
            let Some(c) = self.conns.get(i) else { return Verdict::Drop(DropReason::ConnTableFull) };
            let (vaddr, vport, caddr, method) = (c.vaddr, c.vport, c.caddr, c.method());
            if method == FwdMethod::Masq {
                return match xmit::nat::icmp_out(pkt, vaddr, vport) {
                    Ok(()) => self.route_to(pkt, caddr, snap),
                    Err(e) => Verdict::Drop(xmit_drop(e)),
                };
            }
        }
        self.not_balanced(pkt, flow, snap)
    }
}

/// (daddr, dport, method, dest, template) of a scheduling decision.
type Picked = (Ipv4Addr, u16, FwdMethod, std::sync::Arc<crate::service::DestShared>, Option<u32>);

/// Counts a packet (IP length) of connection `c` in its real server's
/// statistics, `worker`'s share (`ipvsadm --stats`, §6.2).
#[inline]
fn account_conn(c: &Conn, worker: usize, frame_len: usize, new_conn: bool, out: bool) {
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

/// The drop counter for a transmitter error.
pub fn xmit_drop(e: XmitError) -> DropReason {
    match e {
        XmitError::NotIpv4 => DropReason::NotIpv4,
        XmitError::Malformed => DropReason::XmitMalformed,
        XmitError::Fragment => DropReason::Fragment,
        XmitError::UnsupportedProto => DropReason::UnsupportedProto,
        XmitError::TtlExceeded => DropReason::TtlExpired,
        XmitError::FragNeeded { .. } => DropReason::TooBig,
        XmitError::MtuTooSmall => DropReason::MtuTooSmall,
        XmitError::TooBig => DropReason::TooBig,
        XmitError::NoHeadroom => DropReason::NoHeadroom,
        XmitError::NotIcmpError => DropReason::XmitMalformed,
        XmitError::IcmpBadChecksum => DropReason::IcmpBadChecksum,
        XmitError::IcmpSuppressed => DropReason::IcmpSuppressed,
    }
}

#[cfg(test)]
#[path = "lb_tests.rs"]
mod tests;
