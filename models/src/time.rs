//! Simulated time: an integer count of nanoseconds since the start of the run.
//!
//! Every model takes "now" as a [`SimTime`] and asks for follow-up events at a
//! later [`SimTime`]. Integers keep event ordering exact and runs reproducible on
//! every platform (no floating-point drift in the calendar).

/// Nanoseconds since the start of the simulated run.
pub type SimTime = u64;

/// One microsecond in nanoseconds.
pub const MICROS: u64 = 1_000;
/// One millisecond in nanoseconds.
pub const MILLIS: u64 = 1_000_000;
/// One second in nanoseconds.
pub const SECONDS: u64 = 1_000_000_000;

/// Converts nanoseconds to seconds as `f64` (for statistics and reports only).
#[inline]
pub fn as_secs(ns: u64) -> f64 {
    ns as f64 * 1e-9
}

/// Converts a non-negative duration in seconds to whole nanoseconds (rounded to nearest).
#[inline]
pub fn from_secs(s: f64) -> u64 {
    if s.is_nan() || s <= 0.0 {
        0
    } else if s >= u64::MAX as f64 * 1e-9 {
        u64::MAX
    } else {
        (s * 1e9).round() as u64
    }
}

/// Rounds a non-negative nanosecond value held in `f64` to a [`SimTime`] delta.
#[inline]
pub fn ns_from_f64(ns: f64) -> u64 {
    if ns.is_nan() || ns <= 0.0 {
        0
    } else if ns >= u64::MAX as f64 {
        u64::MAX
    } else {
        ns.round() as u64
    }
}
