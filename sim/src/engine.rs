//! The discrete-event engine: integer-nanosecond clock, event calendar with
//! deterministic FIFO tie-breaking, per-component random streams, request slab.
//!
//! Nothing here knows what a request or a component is; the pipeline
//! ([`crate::pipeline`]) defines the event type and drives the models.

use rand::SeedableRng;
use w3sim_models::effects::Effects;
use w3sim_models::time::SimTime;

/// The random generator every component gets: xoshiro256++ (a fixed, documented
/// algorithm, so streams are identical on every platform and rand version).
pub type Stream = rand::rngs::Xoshiro256PlusPlus;

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

/// The seed of the stream named `name` under master seed `master`. Streams depend only
/// on (master, name): adding a component or changing another component's parameters
/// never changes this one's draws (common random numbers across what-if runs).
pub fn stream_seed(master: u64, name: &str) -> u64 {
    splitmix64(splitmix64(master) ^ fnv1a(name))
}

/// A fresh random stream for component `name`.
pub fn stream(master: u64, name: &str) -> Stream {
    Stream::seed_from_u64(stream_seed(master, name))
}

/// A calendar entry's key: the time, then `seq << 32 | slot` (the sequence number
/// breaks ties in scheduling order; the slot says where the event is kept). Sixteen
/// bytes, so four children of a node share one cache line.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Key {
    time: SimTime,
    tag: u64,
}

impl Key {
    #[inline(always)]
    fn rank(self) -> u128 {
        ((self.time as u128) << 64) | self.tag as u128
    }

    #[inline(always)]
    fn slot(self) -> usize {
        (self.tag & 0xFFFF_FFFF) as usize
    }
}

/// The event calendar. Events at equal times come out in the order they were
/// scheduled (FIFO), which makes every run deterministic.
///
/// A 4-ary min-heap of 16-byte keys on (time, sequence number); the events themselves
/// wait in slots beside it, so sifting moves keys only. Sequence numbers have 32 bits:
/// when they run out (every 4.3 billion events) the waiting events are renumbered in
/// their order, which changes no order.
pub struct Calendar<E> {
    keys: Vec<Key>,
    slots: Vec<E>,
    free: Vec<u32>,
    seq: u64,
    now: SimTime,
    delivered: u64,
    /// Events delivered at `now` before the last one (0: the clock moved with it).
    at_now: u64,
}

/// Events at one instant after which a run is stuck: simulated time no longer advances
/// (closed-loop users who never think sending requests that take no time, say). A burst
/// of ten million simultaneous requests (the most `load.bursts` allows) takes a few
/// events per request the queues admit (at most 65,535 + 32,767), and one for the rest.
pub const STUCK_EVENTS: u64 = 1 << 26;

/// Sequence numbers start again (renumbered) when they reach this.
const SEQ_LIMIT: u64 = 1 << 32;

impl<E: Copy> Default for Calendar<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: Copy> Calendar<E> {
    pub fn new() -> Self {
        Self {
            keys: Vec::with_capacity(1024),
            slots: Vec::with_capacity(1024),
            free: Vec::with_capacity(1024),
            seq: 0,
            now: 0,
            delivered: 0,
            at_now: 0,
        }
    }

    /// A calendar whose sequence numbers start at `seq` (tests of the renumbering).
    #[cfg(test)]
    fn starting_at_seq(seq: u64) -> Self {
        Self { seq, ..Self::new() }
    }

    /// Current simulated time (time of the last event delivered).
    #[inline]
    pub fn now(&self) -> SimTime {
        self.now
    }

    /// Schedules `ev` at `at`; a time in the past is moved to now (never back in time).
    #[inline]
    pub fn schedule(&mut self, at: SimTime, ev: E) {
        let time = at.max(self.now);
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = ev;
                s
            }
            None => {
                assert!(
                    self.slots.len() < u32::MAX as usize,
                    "more than 4 billion events waiting in one calendar"
                );
                self.slots.push(ev);
                (self.slots.len() - 1) as u32
            }
        };
        if self.seq == SEQ_LIMIT {
            self.renumber();
        }
        let key = Key {
            time,
            tag: (self.seq << 32) | slot as u64,
        };
        self.seq += 1;
        self.sift_up(key);
    }

    #[inline]
    fn sift_up(&mut self, key: Key) {
        let mut i = self.keys.len();
        self.keys.push(key);
        let r = key.rank();
        while i > 0 {
            let parent = (i - 1) / 4;
            let p = self.keys[parent];
            if p.rank() <= r {
                break;
            }
            self.keys[i] = p;
            i = parent;
        }
        self.keys[i] = key;
    }

    /// Gives the waiting events new sequence numbers 0, 1, … in their order.
    #[cold]
    fn renumber(&mut self) {
        self.keys.sort_unstable_by_key(|k| k.rank());
        for (i, k) in self.keys.iter_mut().enumerate() {
            k.tag = ((i as u64) << 32) | (k.tag & 0xFFFF_FFFF);
        }
        // A sorted array is a heap.
        self.seq = self.keys.len() as u64;
    }

    /// Time of the next event, if any.
    #[inline]
    pub fn peek_time(&self) -> Option<SimTime> {
        self.keys.first().map(|k| k.time)
    }

    /// Removes the next event and advances the clock to it.
    #[inline]
    pub fn pop(&mut self) -> Option<(SimTime, E)> {
        let top = *self.keys.first()?;
        let last = self.keys.pop().expect("not empty");
        let n = self.keys.len();
        if n > 0 {
            // Sift `last` down from the root.
            let r = last.rank();
            let mut i = 0;
            loop {
                let c = 4 * i + 1;
                let (m, mr) = if c + 3 < n {
                    // Four children: the smallest in two rounds of pairs.
                    let k = &self.keys[c..c + 4];
                    let (r0, r1, r2, r3) = (k[0].rank(), k[1].rank(), k[2].rank(), k[3].rank());
                    let (a, ia) = if r1 < r0 { (r1, 1) } else { (r0, 0) };
                    let (b, ib) = if r3 < r2 { (r3, 3) } else { (r2, 2) };
                    if b < a { (c + ib, b) } else { (c + ia, a) }
                } else if c < n {
                    let mut m = c;
                    let mut mr = self.keys[c].rank();
                    for j in c + 1..n {
                        let jr = self.keys[j].rank();
                        if jr < mr {
                            m = j;
                            mr = jr;
                        }
                    }
                    (m, mr)
                } else {
                    break;
                };
                if mr >= r {
                    break;
                }
                self.keys[i] = self.keys[m];
                i = m;
            }
            self.keys[i] = last;
        }
        let slot = top.slot();
        let ev = self.slots[slot];
        self.free.push(slot as u32);
        self.at_now = if top.time == self.now {
            self.at_now + 1
        } else {
            0
        };
        self.now = top.time;
        self.delivered += 1;
        Some((top.time, ev))
    }

    /// The clock has not moved for [`STUCK_EVENTS`] events: what the run should report
    /// (the loop that keeps it there never ends by itself).
    #[inline]
    pub fn stuck(&self) -> Option<crate::RunError> {
        if self.at_now < STUCK_EVENTS {
            return None;
        }
        Some(crate::RunError::Stuck {
            at_s: self.now as f64 * 1e-9,
            events: self.at_now,
        })
    }

    /// Events delivered so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Adapter that lets a model schedule its own timer type on the calendar: `wrap`
/// turns the model's timer into the engine's event type.
pub struct Fx<'a, E, F> {
    pub cal: &'a mut Calendar<E>,
    pub wrap: F,
}

impl<E: Copy, T, F: Fn(T) -> E> Effects<T> for Fx<'_, E, F> {
    #[inline]
    fn at(&mut self, at: SimTime, timer: T) {
        let ev = (self.wrap)(timer);
        self.cal.schedule(at, ev);
    }
}

/// A slab of per-request state: O(1) insert and remove, no allocation once warm.
/// Its size follows the number of requests in flight, not simulated time.
pub struct Slab<T> {
    items: Vec<Option<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    #[inline]
    pub fn insert(&mut self, v: T) -> u32 {
        self.len += 1;
        if let Some(i) = self.free.pop() {
            self.items[i as usize] = Some(v);
            i
        } else {
            self.items.push(Some(v));
            (self.items.len() - 1) as u32
        }
    }

    #[inline]
    pub fn remove(&mut self, i: u32) -> Option<T> {
        let v = self.items.get_mut(i as usize)?.take()?;
        self.free.push(i);
        self.len -= 1;
        Some(v)
    }

    #[inline]
    pub fn get(&self, i: u32) -> Option<&T> {
        self.items.get(i as usize)?.as_ref()
    }

    #[inline]
    pub fn get_mut(&mut self, i: u32) -> Option<&mut T> {
        self.items.get_mut(i as usize)?.as_mut()
    }

    /// Live entries with their ids, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.items
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.as_ref().map(|v| (i as u32, v)))
    }

    /// Live entries with their ids, mutable.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (u32, &mut T)> {
        self.items
            .iter_mut()
            .enumerate()
            .filter_map(|(i, v)| v.as_mut().map(|v| (i as u32, v)))
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Slots allocated (high-water mark of live entries).
    pub fn capacity_used(&self) -> usize {
        self.items.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn equal_times_come_out_in_scheduling_order() {
        let mut c = Calendar::new();
        c.schedule(10, 'a');
        c.schedule(5, 'b');
        c.schedule(10, 'c');
        c.schedule(5, 'd');
        let order: Vec<char> = std::iter::from_fn(|| c.pop().map(|(_, e)| e)).collect();
        assert_eq!(order, vec!['b', 'd', 'a', 'c']);
    }

    #[test]
    fn sequence_numbers_renumbered_when_they_run_out_keep_the_order() {
        let mut c = Calendar::starting_at_seq(SEQ_LIMIT - 5);
        for i in 0..20u32 {
            c.schedule(100 + (i % 3) as u64, i);
        }
        c.pop();
        for i in 20..30u32 {
            c.schedule(100 + (i % 3) as u64, i);
        }
        let mut want: Vec<u32> = (1..30).collect();
        // (time, scheduling order); event 0 (time 100) went first.
        want.sort_by_key(|&i| (i % 3, i));
        let got: Vec<u32> = std::iter::from_fn(|| c.pop().map(|(_, e)| e)).collect();
        assert_eq!(got, want);
        assert!(c.seq < 100, "renumbered: {}", c.seq);
    }

    proptest::proptest! {
        /// Whatever the mix of schedules and pops, events come out by (time, scheduling
        /// order), as from a sorted map; the clock never goes back.
        #[test]
        fn the_calendar_is_a_sorted_map_of_time_then_order(
            ops in proptest::collection::vec((0u64..50, 0u8..3), 1..400),
            start_seq in proptest::prop_oneof![0u64..10, SEQ_LIMIT - 40..SEQ_LIMIT],
        ) {
            let mut c = Calendar::starting_at_seq(start_seq);
            let mut model = std::collections::BTreeMap::new();
            let mut order = 0u64;
            let mut now = 0u64;
            for (i, &(dt, op)) in ops.iter().enumerate() {
                if op == 0 {
                    let got = c.pop();
                    let want = model.pop_first().map(|((t, _), e): ((u64, u64), usize)| (t, e));
                    proptest::prop_assert_eq!(got, want);
                    if let Some((t, _)) = got {
                        proptest::prop_assert!(t >= now);
                        now = t;
                    }
                } else {
                    c.schedule(now + dt, i);
                    model.insert((now + dt, order), i);
                    order += 1;
                }
                proptest::prop_assert_eq!(c.len(), model.len());
                proptest::prop_assert_eq!(c.peek_time(), model.first_key_value().map(|(k, _)| k.0));
            }
        }
    }

    #[test]
    fn the_clock_never_goes_back() {
        let mut c = Calendar::new();
        c.schedule(10, 1);
        c.pop();
        c.schedule(3, 2);
        assert_eq!(c.pop(), Some((10, 2)));
    }

    #[test]
    fn streams_are_independent_of_each_other_and_reproducible() {
        let a1: u64 = stream(42, "class/page").next_u64();
        let a2: u64 = stream(42, "class/page").next_u64();
        let b: u64 = stream(42, "load/arrivals").next_u64();
        let c: u64 = stream(43, "class/page").next_u64();
        assert_eq!(a1, a2);
        assert_ne!(a1, b);
        assert_ne!(a1, c);
    }

    #[test]
    fn slab_reuses_slots() {
        let mut s = Slab::default();
        let a = s.insert(1);
        let b = s.insert(2);
        assert_eq!(s.remove(a), Some(1));
        let c = s.insert(3);
        assert_eq!(c, a);
        assert_eq!(s.len(), 2);
        assert_eq!(s.capacity_used(), 2);
        assert_eq!(s.get(b), Some(&2));
        assert_eq!(s.remove(a), Some(3));
        assert_eq!(s.remove(a), None);
    }
}
