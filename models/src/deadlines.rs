//! Deadlines that all lie the same span after they were set (a client's timeout per
//! attempt, a connection's idle timeout, an outgoing call's timeout, a balancer's probe
//! timeout): they end in the order they began, so they are kept in a queue with **one
//! timer outstanding**, at the oldest live deadline, rather than one timer each.
//!
//! Timers are never cancelled in w3sim; a model ignores a stale one when it fires. With
//! one timer per deadline, every deadline that did not expire (the attempt was answered,
//! the connection reused) left a stale timer in the calendar until its time: a pool
//! reusing connections 1000 times a second with a 100 s idle timeout kept 100,000 of
//! them, and every calendar operation paid for the heap's depth. Here a deadline that
//! ended early is dropped when it reaches the front of the queue (or when the queue is
//! mostly such deadlines), and the timer is re-armed at the next live one.
//!
//! The owner says what is live (a closure over its own state), sets the timer this
//! queue asks for, and on that timer calls [`Deadlines::fired`], then
//! [`Deadlines::pop_due`] for each expiry, then [`Deadlines::rearm`].

use std::collections::VecDeque;

use crate::time::SimTime;

/// A FIFO of (deadline, key) with non-decreasing deadlines and one timer outstanding.
#[derive(Clone, Debug)]
pub struct Deadlines<K> {
    q: VecDeque<(SimTime, K)>,
    /// When the outstanding timer fires, if one is.
    armed: Option<SimTime>,
    /// Between [`Deadlines::fired`] and [`Deadlines::rearm`]: the owner is handling the
    /// expiries, and a key it pushes meanwhile (a retry, a sequential call, a new
    /// connect) must not arm the timer at its own, later deadline while older ones wait.
    firing: bool,
}

impl<K> Default for Deadlines<K> {
    fn default() -> Self {
        Self {
            q: VecDeque::new(),
            armed: None,
            firing: false,
        }
    }
}

impl<K: Copy> Deadlines<K> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key`, due at `deadline` (no earlier than any deadline added before).
    /// `live_count` is how many keys are live now; when the queue holds four times as
    /// many entries, the ended ones are dropped first (`live` tells), so memory follows
    /// what is live. Returns the time of the timer the owner must set, if none is
    /// outstanding (then every entry ahead has ended and this one is the oldest live) and
    /// the owner is not between [`Deadlines::fired`] and [`Deadlines::rearm`] (its
    /// `rearm` then arms the oldest live entry).
    pub fn push(
        &mut self,
        deadline: SimTime,
        key: K,
        live_count: usize,
        mut live: impl FnMut(K) -> bool,
    ) -> Option<SimTime> {
        debug_assert!(self.q.back().is_none_or(|&(d, _)| d <= deadline));
        if self.q.len() >= 64 && self.q.len() >= 4 * live_count {
            self.q.retain(|&(_, k)| live(k));
        }
        self.q.push_back((deadline, key));
        if self.armed.is_none() && !self.firing {
            self.armed = Some(deadline);
            return Some(deadline);
        }
        None
    }

    /// The outstanding timer fired.
    pub fn fired(&mut self) {
        self.armed = None;
        self.firing = true;
    }

    /// The next live key whose deadline is at or before `now` (ended ones on the way are
    /// dropped), removed from the queue; `None` when there is none.
    pub fn pop_due(&mut self, now: SimTime, mut live: impl FnMut(K) -> bool) -> Option<K> {
        while let Some(&(deadline, key)) = self.q.front() {
            if deadline > now {
                return None;
            }
            self.q.pop_front();
            if live(key) {
                return Some(key);
            }
        }
        None
    }

    /// Drops ended entries from the front and returns the time of the timer the owner must
    /// set for the oldest live one, if none is outstanding.
    pub fn rearm(&mut self, mut live: impl FnMut(K) -> bool) -> Option<SimTime> {
        self.firing = false;
        if self.armed.is_some() {
            return None;
        }
        while let Some(&(deadline, key)) = self.q.front() {
            if live(key) {
                self.armed = Some(deadline);
                return Some(deadline);
            }
            self.q.pop_front();
        }
        None
    }

    /// Entries held (live or not yet dropped).
    pub fn len(&self) -> usize {
        self.q.len()
    }

    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_pushed_while_expiries_are_handled_does_not_hide_older_ones() {
        // Deadlines at 10 and 20; the timer fires at 10, and handling that expiry pushes a
        // new key due at 40 (a retry, the next call, a new connect). The timer must come
        // back at 20, not at 40.
        let mut d: Deadlines<u32> = Deadlines::new();
        assert_eq!(d.push(10, 1, 1, |_| true), Some(10));
        assert_eq!(d.push(20, 2, 2, |_| true), None);
        d.fired();
        assert_eq!(d.pop_due(10, |_| true), Some(1));
        assert_eq!(d.push(40, 3, 2, |_| true), None, "no timer at 40 yet");
        assert_eq!(d.pop_due(10, |_| true), None);
        assert_eq!(d.rearm(|_| true), Some(20));
        // Outside a firing, a push into an empty, unarmed queue arms as before.
        d.fired();
        assert_eq!(d.pop_due(20, |_| true), Some(2));
        assert_eq!(d.pop_due(40, |_| true), Some(3));
        assert_eq!(d.rearm(|_| true), None);
        assert_eq!(d.push(50, 4, 1, |_| true), Some(50));
    }
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// Fires the outstanding timer while it is due by `to`; records expiries.
    fn run_to(
        d: &mut Deadlines<u32>,
        timer: &mut Option<SimTime>,
        live: &mut BTreeSet<u32>,
        got: &mut Vec<(SimTime, u32)>,
        to: SimTime,
    ) {
        while let Some(t) = timer.filter(|&t| t <= to) {
            d.fired();
            while let Some(k) = d.pop_due(t, |k| live.contains(&k)) {
                live.remove(&k);
                got.push((t, k));
            }
            *timer = d.rearm(|k| live.contains(&k));
        }
    }

    proptest! {
        /// Against one timer per deadline: the same keys expire at the same times, in
        /// the same order, with at most one timer outstanding and memory bounded by
        /// what is live.
        #[test]
        fn expires_what_one_timer_each_would(
            ops in prop::collection::vec((0u64..50, any::<bool>(), 0usize..8), 1..400),
            span in 1u64..200,
        ) {
            let mut d: Deadlines<u32> = Deadlines::new();
            let mut timer: Option<SimTime> = None;
            let mut live = BTreeSet::new();
            let mut added: Vec<(SimTime, u32)> = Vec::new();
            let mut ended_early = BTreeSet::new();
            let mut got = Vec::new();
            let mut now = 0;
            for (dt, add, pick) in ops {
                now += dt;
                run_to(&mut d, &mut timer, &mut live, &mut got, now);
                if add {
                    let k = added.len() as u32;
                    added.push((now + span, k));
                    live.insert(k);
                    if let Some(t) = d.push(now + span, k, live.len(), |k| live.contains(&k)) {
                        prop_assert!(timer.is_none(), "one timer outstanding");
                        timer = Some(t);
                    }
                } else if let Some(&k) = live.iter().nth(pick % live.len().max(1)) {
                    // Ends before its deadline (answered, reused): it must not expire.
                    live.remove(&k);
                    ended_early.insert(k);
                }
                prop_assert!(d.len() <= 4 * live.len() + 65, "{} entries, {} live", d.len(), live.len());
            }
            run_to(&mut d, &mut timer, &mut live, &mut got, SimTime::MAX);
            let expected: Vec<_> = added.into_iter().filter(|(_, k)| !ended_early.contains(k)).collect();
            prop_assert!(live.is_empty());
            prop_assert!(timer.is_none());
            prop_assert_eq!(got, expected);
        }
    }
}
