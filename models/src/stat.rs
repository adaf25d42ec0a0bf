//! Counters and time-weighted gauges owned by models.
//!
//! A [`Gauge`] integrates its value over simulated time, so its mean over a window is
//! exact (not sampled), and tracks its peak. Gauges refuse to go negative: an attempt
//! is recorded as an invariant violation that the engine reports as an internal error
//! at the end of the run instead of silently clamping.

use crate::time::SimTime;

/// A time-weighted integer gauge (queue length, threads busy, requests in flight).
///
/// The integral is kept as `acc + value · now` (`acc` changes by `(old − new) · now` at
/// each change), so a change is one multiply-add with no branch and no time of the last
/// change to store: 48 bytes, the three fields a change touches in the first 32, which
/// matters when a farm interleaves many servers' states (README, Performance). Wrapping
/// i128 arithmetic is exact for values below 2^63 as long as the window's true integral fits in
/// 127 bits.
#[derive(Clone, Debug, Default)]
pub struct Gauge {
    /// Integral of value dt since `window_start`, minus `value · now`, in value·ns.
    acc: i128,
    value: u64,
    peak: u64,
    window_start: SimTime,
    /// Number of attempts to take the gauge below zero (must stay 0).
    underflows: u64,
}

impl Gauge {
    pub fn new() -> Self {
        Self::default()
    }

    /// Current value.
    #[inline]
    pub fn get(&self) -> u64 {
        self.value
    }

    /// Sets the value at time `now` (never earlier than the previous change).
    #[inline]
    pub fn set(&mut self, now: SimTime, v: u64) {
        // One 64×64→128 multiply: values stay below 2^63 (a count or a byte size).
        let d = self.value.wrapping_sub(v) as i64 as i128;
        self.acc = self.acc.wrapping_add(d * now as i128);
        self.value = v;
        if v > self.peak {
            self.peak = v;
        }
    }

    /// Adds one.
    #[inline]
    pub fn inc(&mut self, now: SimTime) {
        let v = self.value + 1;
        self.set(now, v);
    }

    /// Subtracts one; an underflow is recorded, never wrapped.
    #[inline]
    pub fn dec(&mut self, now: SimTime) {
        if self.value == 0 {
            self.underflows += 1;
            return;
        }
        let v = self.value - 1;
        self.set(now, v);
    }

    /// Integral of the value over the window, up to `now` (value·ns).
    fn area(&self, now: SimTime) -> i128 {
        self.acc
            .wrapping_add((self.value as i128).wrapping_mul(now as i128))
    }

    /// Time-weighted mean since the window started, up to `now`.
    pub fn mean(&self, now: SimTime) -> f64 {
        let span = now.saturating_sub(self.window_start);
        if span == 0 {
            self.value as f64
        } else {
            self.area(now) as f64 / span as f64
        }
    }

    /// Highest value since the window started.
    pub fn peak(&self) -> u64 {
        self.peak
    }

    /// Attempts to go below zero (an invariant violation if non-zero).
    pub fn underflows(&self) -> u64 {
        self.underflows
    }

    /// Starts a new measurement window at `now` (end of warm-up): the mean and peak
    /// restart, the current value is kept.
    pub fn reset_window(&mut self, now: SimTime) {
        self.acc = (self.value as i128)
            .wrapping_mul(now as i128)
            .wrapping_neg();
        self.window_start = now;
        self.peak = self.value;
    }
}

/// A monotone event counter with a marker for per-interval rates.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counter {
    total: u64,
    at_mark: u64,
}

impl Counter {
    #[inline]
    pub fn add(&mut self, n: u64) {
        self.total += n;
    }
    #[inline]
    pub fn inc(&mut self) {
        self.total += 1;
    }
    pub fn total(&self) -> u64 {
        self.total
    }
    /// Count since the last [`Counter::mark`].
    pub fn since_mark(&self) -> u64 {
        self.total - self.at_mark
    }
    pub fn mark(&mut self) {
        self.at_mark = self.total;
    }
}

/// A cache's hit ratio from its hit and miss counts: 0 before any lookup (perfmon's
/// `… Hits %` counters read 0 then, too).
pub fn hit_ratio(hits: u64, misses: u64) -> f64 {
    if hits + misses == 0 {
        0.0
    } else {
        hits as f64 / (hits + misses) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauge_integrates_over_time() {
        let mut g = Gauge::new();
        g.set(0, 2);
        g.set(10, 4);
        assert_eq!(g.mean(20), (2.0 * 10.0 + 4.0 * 10.0) / 20.0);
        assert_eq!(g.peak(), 4);
        g.reset_window(20);
        assert_eq!(g.mean(30), 4.0);
        assert_eq!(g.peak(), 4);
        g.dec(30);
        assert_eq!(g.peak(), 4);
        assert_eq!(g.get(), 3);
    }

    proptest::proptest! {
        /// The running form (`acc + value · now`) gives exactly the integral a piecewise
        /// sum gives, with byte-sized values over days and a window restarted midway.
        #[test]
        fn gauge_mean_is_the_exact_piecewise_integral(
            steps in proptest::collection::vec((0u64..1 << 40, 0u64..1 << 42), 1..60),
            reset_at in 0usize..60,
        ) {
            let mut g = Gauge::new();
            let (mut now, mut v, mut area, mut start, mut peak) = (0u64, 0u64, 0u128, 0u64, 0u64);
            for (k, &(value, dt)) in steps.iter().enumerate() {
                if k == reset_at {
                    g.reset_window(now);
                    area = 0;
                    start = now;
                    peak = v;
                }
                g.set(now, value);
                v = value;
                peak = peak.max(v);
                area += v as u128 * dt as u128;
                now += dt;
            }
            let span = now - start;
            let want = if span == 0 { v as f64 } else { area as f64 / span as f64 };
            proptest::prop_assert_eq!(g.mean(now), want);
            proptest::prop_assert_eq!(g.peak(), peak);
            proptest::prop_assert_eq!(g.get(), v);
        }
    }

    #[test]
    fn gauge_never_goes_negative_and_records_the_attempt() {
        let mut g = Gauge::new();
        g.dec(5);
        assert_eq!(g.get(), 0);
        assert_eq!(g.underflows(), 1);
    }
}
