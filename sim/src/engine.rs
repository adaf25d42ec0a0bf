//! The discrete-event engine: integer-nanosecond clock, event calendar with
//! deterministic FIFO tie-breaking, per-component random streams, request slab.
//!
//! Nothing here knows what a request or a component is; the pipeline
//! ([`crate::pipeline`]) defines the event type and drives the models.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

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

struct Entry<E> {
    time: SimTime,
    seq: u64,
    ev: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, o: &Self) -> bool {
        self.time == o.time && self.seq == o.seq
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl<E> Ord for Entry<E> {
    // Reversed: BinaryHeap is a max-heap and we want the earliest (time, seq) first.
    fn cmp(&self, o: &Self) -> Ordering {
        o.time.cmp(&self.time).then_with(|| o.seq.cmp(&self.seq))
    }
}

/// The event calendar. Events at equal times come out in the order they were
/// scheduled (FIFO), which makes every run deterministic.
pub struct Calendar<E> {
    heap: BinaryHeap<Entry<E>>,
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

impl<E> Default for Calendar<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> Calendar<E> {
    pub fn new() -> Self {
        Self {
            heap: BinaryHeap::with_capacity(1024),
            seq: 0,
            now: 0,
            delivered: 0,
            at_now: 0,
        }
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
        self.heap.push(Entry {
            time,
            seq: self.seq,
            ev,
        });
        self.seq += 1;
    }

    /// Time of the next event, if any.
    #[inline]
    pub fn peek_time(&self) -> Option<SimTime> {
        self.heap.peek().map(|e| e.time)
    }

    /// Removes the next event and advances the clock to it.
    #[inline]
    pub fn pop(&mut self) -> Option<(SimTime, E)> {
        let e = self.heap.pop()?;
        self.at_now = if e.time == self.now {
            self.at_now + 1
        } else {
            0
        };
        self.now = e.time;
        self.delivered += 1;
        Some((e.time, e.ev))
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
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

/// Adapter that lets a model schedule its own timer type on the calendar: `wrap`
/// turns the model's timer into the engine's event type.
pub struct Fx<'a, E, F> {
    pub cal: &'a mut Calendar<E>,
    pub wrap: F,
}

impl<E, T, F: Fn(T) -> E> Effects<T> for Fx<'_, E, F> {
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
