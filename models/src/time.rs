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
        round_ns(s * 1e9)
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
        round_ns(ns)
    }
}

/// `x.round() as u64` for `0 <= x < 2^64`, without the call to libm's `round` that
/// `f64::round` costs on x86-64's baseline (no SSE4.1): truncate, then add one when
/// the fraction (exact: `x - trunc(x)` is representable) is at least one half, which
/// rounds halves away from zero as `round` does.
#[inline]
pub fn round_ns(x: f64) -> u64 {
    let i = x as u64;
    if x - i as f64 >= 0.5 { i + 1 } else { i }
}

#[cfg(test)]
mod tests {
    use super::round_ns;
    use proptest::prelude::*;

    #[test]
    fn round_ns_rounds_as_round_does_at_the_edges() {
        let edges = [
            0.0,
            0.5,
            1.5,
            2.5,
            0.499_999_999_999_999_94,
            4_503_599_627_370_495.5, // 2^52 - 0.5
            4_503_599_627_370_496.0, // 2^52
            9_007_199_254_740_993.0, // 2^53 + 1 (not representable: 2^53)
            1e12 + 0.499_999_9,
            1e12 + 0.5,
            1.8e19,
        ];
        for x in edges {
            assert_eq!(round_ns(x), x.round() as u64, "{x}");
        }
    }

    proptest! {
        #[test]
        fn round_ns_is_round(x in 0.0f64..1.8e19, bits in any::<u64>()) {
            prop_assert_eq!(round_ns(x), x.round() as u64);
            // Fractions near one half at every magnitude.
            let y = f64::from_bits(bits);
            if y.is_finite() && (0.0..1.8e19).contains(&y) {
                prop_assert_eq!(round_ns(y), y.round() as u64);
                let h = y.trunc() + 0.5;
                prop_assert_eq!(round_ns(h), h.round() as u64);
            }
        }
    }
}
