//! The per-worker connection table (specs/ipvs.md §3): a fixed pool of entries,
//! hash chains keyed like IPVS on `(proto, client addr, client port)`, and a
//! timing wheel of 1 s ticks for expiry.
//!
//! Invariants:
//! - Capacity is fixed at start; nothing here allocates after `new`. A full
//!   pool makes `insert` fail and the caller counts a drop.
//! - Every live entry is in exactly one wheel slot; a hashed entry is also in
//!   exactly one hash chain. A packet only moves `expires` forward; the entry
//!   changes slot when its old slot comes round (lazy re-arm).
//! - Only the owning worker touches a table; destination counters it shares
//!   with other workers are atomics in [`DestShared`].
pub mod dump;
mod timer;

use std::net::Ipv4Addr;
use std::sync::Arc;

use conf::Method;

use crate::hints::prefetch;
use crate::proto::TcpState;
use crate::service::DestShared;
pub use timer::TimerWheel;

/// "No entry" in index links.
pub const NIL: u32 = u32::MAX;

/// Connection flags, with the kernel's values where they exist (§3.8).
pub mod flags {
    /// Low 3 bits: the forwarding method (Method as u8).
    pub const FWD_MASK: u16 = 0x7;
    pub const NOOUTPUT: u16 = 0x80;
    pub const INACTIVE: u16 = 0x100;
    pub const TEMPLATE: u16 = 0x1000;
    pub const ONE_PACKET: u16 = 0x2000;
    /// rvs-internal: the entry is in a hash chain.
    pub const HASHED: u16 = 0x40;
    /// rvs-internal: the state changed since the entry was last synced (the
    /// kernel's `old_state != state`, specs/ipvs.md §5.4). Never sent.
    pub const STATE_CHANGED: u16 = 0x8000;
}

/// Template states (§2.3), as `ipvsadm -Lc` names them.
pub const TEMPLATE_NONE: u8 = 0;
pub const TEMPLATE_ASSURED: u8 = 1;

/// One connection or persistence template: one 64-byte cache line (plus the
/// 4-byte bucket slot it may head).
#[derive(Clone, Debug)]
#[repr(align(64))]
pub struct Conn {
    pub caddr: Ipv4Addr,
    pub vaddr: Ipv4Addr,
    pub daddr: Ipv4Addr,
    pub cport: u16,
    pub vport: u16,
    pub dport: u16,
    /// IP protocol (0 for fwmark templates).
    pub proto: u8,
    /// TcpState as u8 for TCP, 0 for UDP, TEMPLATE_* for templates.
    pub state: u8,
    pub flags: u16,
    /// Current timeout (s) and absolute expiry (worker clock, s).
    pub timeout: u32,
    pub expires: u32,
    /// The template this connection was scheduled from (NIL if none).
    pub control: u32,
    /// Connections controlled by this template.
    pub n_control: u32,
    pub in_pkts: u32,
    pub dest: Option<Arc<DestShared>>,
    hash_next: u32,
    timer_next: u32,
    timer_prev: u32,
    /// The wheel slot the entry is linked in, NO_SLOT when in none.
    timer_slot: u16,
}

const NO_SLOT: u16 = u16::MAX;

impl Conn {
    /// A new entry with the given key, not yet in any table.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        proto: u8,
        caddr: Ipv4Addr,
        cport: u16,
        vaddr: Ipv4Addr,
        vport: u16,
        daddr: Ipv4Addr,
        dport: u16,
        flags: u16,
        dest: Option<Arc<DestShared>>,
    ) -> Conn {
        Conn {
            caddr,
            vaddr,
            daddr,
            cport,
            vport,
            dport,
            proto,
            state: 0,
            flags,
            // A new entry starts with 3 s; the first transition replaces it (§3.1).
            timeout: 3,
            expires: 0,
            control: NIL,
            n_control: 0,
            in_pkts: 0,
            dest,
            hash_next: NIL,
            timer_next: NIL,
            timer_prev: NIL,
            timer_slot: NO_SLOT,
        }
    }

    pub fn method(&self) -> Method {
        match self.flags & flags::FWD_MASK {
            0 => Method::Masq,
            2 => Method::Tunnel,
            _ => Method::Route,
        }
    }

    pub fn is_template(&self) -> bool {
        self.flags & flags::TEMPLATE != 0
    }

    /// Restarts the entry's timer: `timeout` seconds from `now`. The timer
    /// wheel finds the new expiry when the old one comes round.
    #[inline]
    pub fn rearm(&mut self, timeout: u32, now: u32) {
        self.timeout = timeout;
        self.expires = now.saturating_add(timeout);
    }

    pub fn tcp_state(&self) -> TcpState {
        TcpState::from_u8(self.state).unwrap_or(TcpState::None)
    }

    fn is_active_counted(&self) -> bool {
        !self.is_template() && self.flags & flags::INACTIVE == 0
    }
}

/// The table is full: the packet that wanted a new entry is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableFull;

/// What to know about an entry the wheel expired (for counters and sync).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    Freed,
    /// A template with live children, re-armed for 60 s (§2.3).
    Rearmed,
}

pub struct ConnTable {
    conns: Vec<Conn>,
    free_head: u32,
    len: u32,
    buckets: Vec<u32>,
    mask: u32,
    seed: u64,
    wheel: TimerWheel,
}

#[inline]
fn mix(seed: u64, proto: u8, addr: Ipv4Addr, port: u16) -> u64 {
    let k = (u64::from(proto) << 48) | (u64::from(port) << 32) | u64::from(u32::from(addr));
    let mut h = (k ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^= h >> 32;
    h.wrapping_mul(0xD6E8_FEB8_6659_FD93) ^ (h >> 29)
}

impl ConnTable {
    /// A table of `capacity` entries (allocated now), hashed with `seed`.
    pub fn new(capacity: u32, seed: u64) -> ConnTable {
        let capacity = capacity.max(1);
        let nb = capacity.next_power_of_two();
        let blank = Conn::new(0, Ipv4Addr::UNSPECIFIED, 0, Ipv4Addr::UNSPECIFIED, 0, Ipv4Addr::UNSPECIFIED, 0, 0, None);
        let mut conns = vec![blank; capacity as usize];
        for (i, c) in conns.iter_mut().enumerate() {
            c.hash_next = if i + 1 < capacity as usize { i as u32 + 1 } else { NIL };
        }
        ConnTable {
            conns,
            free_head: 0,
            len: 0,
            buckets: vec![NIL; nb as usize],
            mask: nb - 1,
            seed,
            wheel: TimerWheel::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.conns.len()
    }

    /// Bytes held per connection slot (entry + its share of the buckets).
    pub fn bytes_per_entry() -> usize {
        std::mem::size_of::<Conn>() + std::mem::size_of::<u32>()
    }

    #[inline]
    fn bucket(&self, proto: u8, addr: Ipv4Addr, port: u16) -> usize {
        (mix(self.seed, proto, addr, port) as u32 & self.mask) as usize
    }

    #[inline]
    pub fn get(&self, i: u32) -> Option<&Conn> {
        self.conns.get(i as usize)
    }

    #[inline]
    pub fn get_mut(&mut self, i: u32) -> Option<&mut Conn> {
        self.conns.get_mut(i as usize)
    }

    /// The bucket a (proto, address, port) key hashes to, for the prefetch
    /// passes ([`ConnTable::prefetch_bucket`], [`ConnTable::prefetch_chain`]).
    #[inline]
    pub fn bucket_of(&self, proto: u8, addr: Ipv4Addr, port: u16) -> u32 {
        self.bucket(proto, addr, port) as u32
    }

    /// Prefetches bucket `b` (call for a whole burst before the lookups).
    #[inline]
    pub fn prefetch_bucket(&self, b: u32) {
        if let Some(slot) = self.buckets.get(b as usize) {
            prefetch(slot);
        }
    }

    /// Prefetches the first entry of bucket `b`'s chain (the second pass,
    /// after [`ConnTable::prefetch_bucket`] brought the bucket in).
    #[inline]
    pub fn prefetch_chain(&self, b: u32) {
        if let Some(c) = self.buckets.get(b as usize).and_then(|&i| self.conns.get(i as usize)) {
            prefetch(c);
        }
    }

    fn find(&self, proto: u8, caddr: Ipv4Addr, cport: u16, mut pred: impl FnMut(&Conn) -> bool) -> Option<u32> {
        let mut i = *self.buckets.get(self.bucket(proto, caddr, cport))?;
        while i != NIL {
            let c = self.conns.get(i as usize)?;
            if c.proto == proto && c.caddr == caddr && c.cport == cport && pred(c) {
                return Some(i);
            }
            i = c.hash_next;
        }
        None
    }

    /// A client → VIP packet's connection (not a template).
    #[inline]
    pub fn lookup_in(&self, proto: u8, caddr: Ipv4Addr, cport: u16, vaddr: Ipv4Addr, vport: u16) -> Option<u32> {
        self.find(proto, caddr, cport, |c| c.vaddr == vaddr && c.vport == vport && !c.is_template())
    }

    /// A real server → client reply's connection (NAT): the reply's destination
    /// is the client; its source must be the connection's RIP:dport (§3.1).
    #[inline]
    pub fn lookup_out(&self, proto: u8, raddr: Ipv4Addr, rport: u16, caddr: Ipv4Addr, cport: u16) -> Option<u32> {
        self.find(proto, caddr, cport, |c| c.daddr == raddr && c.dport == rport && !c.is_template())
    }

    /// A persistence template (§2.1): client network, cport 0, vaddr, vport, proto.
    #[inline]
    pub fn lookup_template(&self, proto: u8, snet: Ipv4Addr, vaddr: Ipv4Addr, vport: u16) -> Option<u32> {
        self.find(proto, snet, 0, |c| c.is_template() && c.vaddr == vaddr && c.vport == vport)
    }

    /// Adds `c`, hashed and armed to expire at `now + c.timeout`; binds its dest
    /// (a new connection starts in InActConn, §3.6).
    pub fn insert(&mut self, mut c: Conn, now: u32) -> Result<u32, TableFull> {
        let i = self.free_head;
        let b = self.bucket(c.proto, c.caddr, c.cport);
        let (Some(slot), Some(head)) = (self.conns.get_mut(i as usize), self.buckets.get_mut(b)) else {
            return Err(TableFull);
        };
        self.free_head = slot.hash_next;
        if let Some(d) = &c.dest {
            d.bind(c.is_template());
        }
        if !c.is_template() {
            c.flags |= flags::INACTIVE;
        }
        c.expires = now.saturating_add(c.timeout);
        c.flags |= flags::HASHED;
        c.hash_next = *head;
        *head = i;
        let expires = c.expires;
        *slot = c;
        self.len += 1;
        self.wheel_link(i, expires);
        Ok(i)
    }

    /// Takes `i` out of its hash chain (it can no longer be found) but keeps it
    /// alive until its timer runs out: IPVS's treatment of an invalid template.
    pub fn unhash(&mut self, i: u32) {
        let Some(c) = self.conns.get(i as usize) else { return };
        if c.flags & flags::HASHED == 0 {
            return;
        }
        let b = self.bucket(c.proto, c.caddr, c.cport);
        let next = c.hash_next;
        let Some(head) = self.buckets.get_mut(b) else { return };
        if *head == i {
            *head = next;
        } else {
            let mut p = *head;
            while let Some(pc) = self.conns.get_mut(p as usize) {
                if pc.hash_next == i {
                    pc.hash_next = next;
                    break;
                }
                p = pc.hash_next;
            }
        }
        if let Some(c) = self.conns.get_mut(i as usize) {
            c.flags &= !flags::HASHED;
            c.hash_next = NIL;
        }
    }

    /// Re-arms `i` to expire `timeout` seconds from `now` (a packet or a new child).
    #[inline]
    pub fn touch(&mut self, i: u32, timeout: u32, now: u32) {
        if let Some(c) = self.conns.get_mut(i as usize) {
            c.rearm(timeout, now);
        }
    }

    /// Sets a TCP connection's state, moving it between ActiveConn and
    /// InActConn as the state requires (§3.6).
    pub fn set_tcp_state(&mut self, i: u32, new: TcpState) {
        let Some(c) = self.conns.get_mut(i as usize) else { return };
        let was_active = c.flags & flags::INACTIVE == 0;
        let now_active = new.is_active();
        if c.state != new as u8 {
            c.flags |= flags::STATE_CHANGED;
        }
        c.state = new as u8;
        if was_active != now_active {
            if now_active {
                c.flags &= !flags::INACTIVE;
            } else {
                c.flags |= flags::INACTIVE;
            }
            if let Some(d) = &c.dest {
                d.set_active(now_active);
            }
        }
    }

    /// Links a new connection to its template (§2.2 step 5).
    pub fn set_control(&mut self, child: u32, template: u32) {
        if let Some(c) = self.conns.get_mut(child as usize) {
            c.control = template;
        }
        if let Some(t) = self.conns.get_mut(template as usize) {
            t.n_control += 1;
        }
    }

    /// Expires `i` now, as its timer would (IPVS's expire-now of a packet
    /// that reuses or finds a dead entry, §2.4, §3.3): unbinds, releases its
    /// template and frees it. The template is left alone, even without other
    /// children (§2.3: only a force-delete takes it along).
    pub fn expire_now(&mut self, i: u32) {
        self.free(i);
    }

    /// Deletes `i` now (a flush, a synced entry replacing it, a one-packet
    /// connection after its packet): unbinds, releases its template, frees. A template that is not ASSURED and has no
    /// other child is deleted with it (§2.3).
    pub fn force_expire(&mut self, i: u32) {
        let control = self.conns.get(i as usize).map_or(NIL, |c| c.control);
        self.free(i);
        if control != NIL {
            if let Some(t) = self.conns.get(control as usize) {
                if t.n_control == 0 && t.state != TEMPLATE_ASSURED && t.flags & flags::TEMPLATE != 0 {
                    self.free(control);
                }
            }
        }
    }

    fn free(&mut self, i: u32) {
        self.unhash(i);
        self.wheel_unlink(i);
        let Some(c) = self.conns.get_mut(i as usize) else { return };
        let control = c.control;
        if let Some(d) = c.dest.take() {
            d.unbind(c.flags & flags::TEMPLATE != 0, c.is_active_counted());
        }
        c.flags = 0;
        c.control = NIL;
        c.n_control = 0;
        c.hash_next = self.free_head;
        self.free_head = i;
        self.len -= 1;
        if control != NIL {
            if let Some(t) = self.conns.get_mut(control as usize) {
                t.n_control = t.n_control.saturating_sub(1);
            }
        }
    }

    /// Runs the timers up to `now` (s); `on_expire` sees each entry that went
    /// (or, for a template with children, was re-armed).
    pub fn expire(&mut self, now: u32, mut on_expire: impl FnMut(&Conn, Expired)) {
        let (first, count) = self.wheel.pending(now);
        for k in 0..count {
            let t = first.wrapping_add(k);
            let slot = self.wheel.enter(t);
            let mut i = self.wheel.take(slot);
            while let Some(c) = self.conns.get_mut(i as usize) {
                let next = c.timer_next;
                c.timer_next = NIL;
                c.timer_prev = NIL;
                c.timer_slot = NO_SLOT;
                if c.expires > t {
                    let e = c.expires;
                    self.wheel_link(i, e);
                } else if c.n_control > 0 {
                    // A template outlives its children in 60 s steps (§2.3).
                    c.timeout = 60;
                    c.expires = t.saturating_add(60);
                    on_expire(c, Expired::Rearmed);
                    self.wheel_link(i, t.saturating_add(60));
                } else {
                    on_expire(c, Expired::Freed);
                    self.free(i);
                }
                i = next;
            }
        }
    }

    fn wheel_link(&mut self, i: u32, expires: u32) {
        let slot = self.wheel.slot_for(expires);
        let head = self.wheel.head(slot);
        if let Some(h) = self.conns.get_mut(head as usize) {
            h.timer_prev = i;
        }
        if let Some(c) = self.conns.get_mut(i as usize) {
            c.timer_next = head;
            c.timer_prev = NIL;
            c.timer_slot = slot;
            self.wheel.set_head(slot, i);
        }
    }

    fn wheel_unlink(&mut self, i: u32) {
        let Some(c) = self.conns.get_mut(i as usize) else { return };
        let (prev, next, slot) = (c.timer_prev, c.timer_next, c.timer_slot);
        if slot == NO_SLOT {
            return;
        }
        c.timer_next = NIL;
        c.timer_prev = NIL;
        c.timer_slot = NO_SLOT;
        match self.conns.get_mut(prev as usize) {
            Some(p) => p.timer_next = next,
            None => self.wheel.set_head(slot, next),
        }
        if let Some(n) = self.conns.get_mut(next as usize) {
            n.timer_prev = prev;
        }
    }

    /// Whether slot `i` holds a live entry (for the sync resync sweep).
    #[inline]
    pub fn is_live(&self, i: u32) -> bool {
        self.conns.get(i as usize).is_some_and(|c| c.timer_slot != NO_SLOT)
    }

    /// Every live entry (hashed, or an unhashed template still waiting for its
    /// children), for listings and tests.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Conn)> {
        self.conns.iter().enumerate().filter(|(_, c)| c.timer_slot != NO_SLOT).map(|(i, c)| (i as u32, c))
    }
}

#[cfg(test)]
mod tests;
