//! Counters and time-weighted gauges owned by models.
//!
//! A [`Gauge`] integrates its value over simulated time, so its mean over a window is
//! exact (not sampled), and tracks its peak. Gauges refuse to go negative: an attempt
//! is recorded as an invariant violation that the engine reports as an internal error
//! at the end of the run instead of silently clamping.

use crate::time::SimTime;

/// A time-weighted integer gauge (queue length, threads busy, requests in flight).
#[derive(Clone, Debug, Default)]
pub struct Gauge {
    value: u64,
    last_change: SimTime,
    /// Integral of value dt since `window_start`, in value·ns (u128: no overflow).
    area: u128,
    window_start: SimTime,
    peak: u64,
    /// Number of attempts to take the gauge below zero (must stay 0).
    underflows: u64,
}

impl Gauge {
    pub fn new() -> Self {
        Self::default()
    }

    #[inline]
    fn advance(&mut self, now: SimTime) {
        if now > self.last_change {
            self.area += self.value as u128 * (now - self.last_change) as u128;
            self.last_change = now;
        }
    }

    /// Current value.
    #[inline]
    pub fn get(&self) -> u64 {
        self.value
    }

    /// Sets the value at time `now`.
    #[inline]
    pub fn set(&mut self, now: SimTime, v: u64) {
        self.advance(now);
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

    /// Time-weighted mean since the window started, up to `now`.
    pub fn mean(&self, now: SimTime) -> f64 {
        let mut area = self.area;
        if now > self.last_change {
            area += self.value as u128 * (now - self.last_change) as u128;
        }
        let span = now.saturating_sub(self.window_start);
        if span == 0 {
            self.value as f64
        } else {
            area as f64 / span as f64
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
        self.advance(now);
        self.area = 0;
        self.window_start = now;
        self.last_change = now;
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

    #[test]
    fn gauge_never_goes_negative_and_records_the_attempt() {
        let mut g = Gauge::new();
        g.dec(5);
        assert_eq!(g.get(), 0);
        assert_eq!(g.underflows(), 1);
    }
}
