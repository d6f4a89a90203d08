//! The timing wheel's slots: 4096 one-second slots, each the head of a list of
//! connection entries linked through the entries themselves (so arming a timer
//! allocates nothing). An entry whose expiry is more than a turn away waits in
//! the slot it maps to and is re-linked when that slot comes round.

use super::NIL;

pub const SLOTS: u32 = 4096;
const MASK: u32 = SLOTS - 1;

pub struct TimerWheel {
    heads: Vec<u32>,
    /// The last second whose slot was processed.
    now: u32,
}

impl Default for TimerWheel {
    fn default() -> Self {
        Self::new()
    }
}

impl TimerWheel {
    pub fn new() -> TimerWheel {
        TimerWheel { heads: vec![NIL; SLOTS as usize], now: 0 }
    }

    /// The slot an entry expiring at `expires` goes to; never one already passed.
    #[inline]
    pub fn slot_for(&self, expires: u32) -> u16 {
        (expires.max(self.now.wrapping_add(1)) & MASK) as u16
    }

    #[inline]
    pub fn head(&self, slot: u16) -> u32 {
        self.heads.get(slot as usize).copied().unwrap_or(NIL)
    }

    #[inline]
    pub fn set_head(&mut self, slot: u16, i: u32) {
        if let Some(h) = self.heads.get_mut(slot as usize) {
            *h = i;
        }
    }

    /// The seconds still to process to bring the wheel to `now`: the first one
    /// and how many (at most one turn, the last `SLOTS` seconds).
    pub fn pending(&self, now: u32) -> (u32, u32) {
        let from = self.now.wrapping_add(1);
        if now < from {
            return (from, 0);
        }
        let count = (now - from + 1).min(SLOTS);
        (now.wrapping_sub(count).wrapping_add(1), count)
    }

    /// Marks second `t` as the one being processed: entries linked from now on
    /// go to later slots. Returns `t`'s slot.
    pub fn enter(&mut self, t: u32) -> u16 {
        self.now = t;
        (t & MASK) as u16
    }

    /// Detaches a slot's whole list and returns its head.
    pub fn take(&mut self, slot: u16) -> u32 {
        self.heads.get_mut(slot as usize).map_or(NIL, |h| std::mem::replace(h, NIL))
    }

    pub fn now(&self) -> u32 {
        self.now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_covers_each_passed_second_once() {
        let mut w = TimerWheel::new();
        assert_eq!(w.pending(3), (1, 3));
        w.enter(3);
        assert_eq!(w.pending(3).1, 0);
        assert_eq!(w.pending(2).1, 0, "time never goes back");
        // A jump longer than a turn visits every slot once: the last turn.
        assert_eq!(w.pending(3 + 10 * SLOTS), (4 + 9 * SLOTS, SLOTS));
    }

    #[test]
    fn past_expiries_go_to_the_next_slot() {
        let mut w = TimerWheel::new();
        w.enter(100);
        assert_eq!(w.now(), 100);
        assert_eq!(w.slot_for(50), 101);
        assert_eq!(w.slot_for(100), 101);
        assert_eq!(w.slot_for(102), 102);
        assert_eq!(w.slot_for(100 + SLOTS), 100);
    }
}
