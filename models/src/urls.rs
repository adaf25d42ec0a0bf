//! A catalogue of `U` distinct URLs with Zipf popularity and stable per-URL sizes.
//!
//! **Models** what a static-content site looks like to the caches in front of it: many
//! distinct URLs, a few of them very popular. Requests pick URL rank `k` (0 = most popular)
//! with probability `(k+1)^-s / H(U, s)`, where `H(U, s) = Σ_{i=1..U} i^-s` is the
//! generalized harmonic number.
//!
//! **Seed**: 001 (millions of static images served from a NAS; whether the kernel response
//! cache holds them decides how many requests reach the NAS).
//!
//! **Implementation**:
//! * [`UrlCatalogue::sample`] uses `rand_distr::Zipf` (rand_distr 0.6), an exact rejection
//!   sampler against a continuous envelope (J. Crease): O(1) memory, O(1) expected time per
//!   draw for any `U` (the acceptance rate is `H(U, s)` over the envelope's area, ≈ 0.98 for
//!   `U` = 10⁷, `s` = 1). It takes `U` as an `f64`, exact up to 2⁵³ URLs.
//! * [`UrlCatalogue::probability`] is exact up to floating point: `H(U, s)` sums the first
//!   10,000 terms directly and the rest with the Euler–Maclaurin formula (integral, end-point
//!   half terms, B₂ and B₄ corrections; relative error far below 1e-12 for `s ≥ 0`).
//! * [`UrlCatalogue::size_of`] draws a log-normal size from a hash of `k` (SplitMix64 →
//!   Box–Muller), so every URL keeps one size for the whole run without storing it, and
//!   size is independent of popularity. The spread [`SIZE_LOG_SD`] = 1.318 is the body of the
//!   SURGE file-size model (Barford & Crovella 1998, log-normal σ = 1.318; ⚠ quoted from
//!   memory); the caller chooses the mean.
//!
//! **Leaves out**: popularity drift (new images becoming hot), temporal locality beyond
//! the independent-reference model, SURGE's Pareto tail of very large files, correlation
//! between size and popularity.

use rand::Rng;
use rand_distr::{Distribution, Zipf};

/// Standard deviation of `ln(size)` used by [`UrlCatalogue::size_of`] (SURGE body, see the
/// module documentation).
pub const SIZE_LOG_SD: f64 = 1.318;

/// Terms of `H(U, s)` summed directly before the Euler–Maclaurin tail.
const DIRECT_TERMS: u64 = 10_000;

/// `U` URLs with Zipf(`s`) popularity. A few dozen bytes whatever `U` is.
#[derive(Clone, Debug)]
pub struct UrlCatalogue {
    urls: u64,
    exponent: f64,
    zipf: Zipf<f64>,
    harmonic: f64,
}

impl UrlCatalogue {
    /// `urls` ≥ 1 distinct URLs, Zipf exponent `exponent` ≥ 0 (0 = uniform; web workloads
    /// are usually quoted between 0.6 and 1.0).
    ///
    /// # Panics
    /// If `urls` is 0 or `exponent` is negative or not finite.
    pub fn new(urls: u64, exponent: f64) -> Self {
        assert!(urls >= 1, "a URL catalogue needs at least one URL");
        assert!(
            exponent.is_finite() && exponent >= 0.0,
            "the Zipf exponent must be finite and >= 0, got {exponent}"
        );
        let zipf = Zipf::new(urls as f64, exponent).expect("validated Zipf parameters");
        Self {
            urls,
            exponent,
            zipf,
            harmonic: generalized_harmonic(urls, exponent),
        }
    }

    /// Number of distinct URLs.
    pub fn urls(&self) -> u64 {
        self.urls
    }

    /// The Zipf exponent `s`.
    pub fn exponent(&self) -> f64 {
        self.exponent
    }

    /// `H(U, s)`.
    pub fn harmonic(&self) -> f64 {
        self.harmonic
    }

    /// Draws a URL index in `0..urls` (0 = most popular).
    #[inline]
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        let x = self.zipf.sample(rng);
        // The sampler returns 1..=U as f64; the clamp only guards rounding at U ≈ 2^53.
        (x as u64).clamp(1, self.urls) - 1
    }

    /// Exact probability that [`UrlCatalogue::sample`] returns `k` (0 for `k >= urls`).
    pub fn probability(&self, k: u64) -> f64 {
        if k >= self.urls {
            return 0.0;
        }
        ((k + 1) as f64).powf(-self.exponent) / self.harmonic
    }

    /// The response size of URL `k` in bytes (≥ 1): log-normal with mean `mean` bytes and
    /// `ln`-standard deviation [`SIZE_LOG_SD`], a pure function of `k` and `mean`.
    pub fn size_of(&self, k: u64, mean: f64) -> u64 {
        size_of(k, mean)
    }
}

/// See [`UrlCatalogue::size_of`] (free function: it does not depend on the catalogue).
pub fn size_of(k: u64, mean: f64) -> u64 {
    if !(mean.is_finite() && mean > 0.0) {
        return 1;
    }
    let h1 = splitmix64(k ^ 0x5EED_0001_D1CE_CAFE);
    let h2 = splitmix64(h1);
    // u1 in (0, 1], u2 in [0, 1).
    let u1 = ((h1 >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64);
    let u2 = (h2 >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    let mu = mean.ln() - 0.5 * SIZE_LOG_SD * SIZE_LOG_SD;
    let v = (mu + SIZE_LOG_SD * z).exp();
    if v >= u64::MAX as f64 {
        u64::MAX
    } else {
        (v.round() as u64).max(1)
    }
}

#[inline]
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `H(n, s) = Σ_{i=1..n} i^-s`: the first 10,000 terms summed (smallest first),
/// the rest by Euler–Maclaurin.
pub fn generalized_harmonic(n: u64, s: f64) -> f64 {
    if s == 0.0 {
        return n as f64;
    }
    let direct = n.min(DIRECT_TERMS);
    let mut sum = 0.0;
    for i in (1..=direct).rev() {
        sum += (i as f64).powf(-s);
    }
    if n > direct {
        sum += euler_maclaurin_tail((direct + 1) as f64, n as f64, s);
    }
    sum
}

/// `Σ_{i=a..b} i^-s` for integers `a ≤ b`, `a` large: ∫ₐᵇ f + (f(a)+f(b))/2
/// + B₂/2!·(f'(b)−f'(a)) + B₄/4!·(f'''(b)−f'''(a)), with f(x) = x^-s.
fn euler_maclaurin_tail(a: f64, b: f64, s: f64) -> f64 {
    let f = |x: f64| x.powf(-s);
    let d1 = |x: f64| -s * x.powf(-s - 1.0);
    let d3 = |x: f64| -s * (s + 1.0) * (s + 2.0) * x.powf(-s - 3.0);
    let ln_ratio = (b / a).ln();
    let one_minus_s = 1.0 - s;
    // ∫ x^-s dx = (b^(1−s) − a^(1−s))/(1−s), written with expm1 to stay accurate near s = 1.
    let integral = if (one_minus_s * ln_ratio).abs() < 1e-300 {
        ln_ratio
    } else {
        a.powf(one_minus_s) * (one_minus_s * ln_ratio).exp_m1() / one_minus_s
    };
    integral + 0.5 * (f(a) + f(b)) + (d1(b) - d1(a)) / 12.0 - (d3(b) - d3(a)) / 720.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn harmonic_matches_direct_sum_across_the_switch() {
        for &s in &[0.0, 0.5, 0.8, 1.0, 1.2, 2.0] {
            for &n in &[1u64, 10, 10_000, 10_001, 10_500, 50_000, 200_000] {
                let direct: f64 = (1..=n).rev().map(|i| (i as f64).powf(-s)).sum();
                let h = generalized_harmonic(n, s);
                assert!(
                    ((h - direct) / direct).abs() < 1e-12,
                    "n={n} s={s}: {h} vs {direct}"
                );
            }
        }
    }

    #[test]
    fn harmonic_known_values() {
        // H(n, 1) = ln n + γ + 1/(2n) − 1/(12n²) + …
        let n = 10_000_000u64;
        let gamma = 0.577_215_664_901_532_9;
        let expect = (n as f64).ln() + gamma + 0.5 / n as f64 - 1.0 / (12.0 * (n as f64).powi(2));
        assert!((generalized_harmonic(n, 1.0) - expect).abs() < 1e-11);
        // H(∞, 2) = π²/6; the remainder after n is ≈ 1/n.
        let h2 = generalized_harmonic(n, 2.0);
        let expect2 =
            std::f64::consts::PI.powi(2) / 6.0 - 1.0 / n as f64 + 0.5 / (n as f64).powi(2);
        assert!((h2 - expect2).abs() < 1e-12);
        assert_eq!(generalized_harmonic(n, 0.0), n as f64);
    }

    #[test]
    fn size_is_stable_and_has_the_requested_mean() {
        let c = UrlCatalogue::new(1_000_000, 1.0);
        assert_eq!(c.size_of(42, 20_000.0), c.size_of(42, 20_000.0));
        let n = 400_000u64;
        let mean = (0..n).map(|k| c.size_of(k, 20_000.0) as f64).sum::<f64>() / n as f64;
        // sd of the mean: 20000·sqrt(e^{σ²}−1)/sqrt(n) ≈ 68 bytes.
        assert!((mean - 20_000.0).abs() < 400.0, "mean {mean}");
        let med = {
            let mut v: Vec<u64> = (0..100_001).map(|k| c.size_of(k, 20_000.0)).collect();
            v.sort_unstable();
            v[50_000] as f64
        };
        let expect_med = 20_000.0 * (-0.5 * SIZE_LOG_SD * SIZE_LOG_SD).exp();
        assert!(
            (med / expect_med - 1.0).abs() < 0.03,
            "median {med} vs {expect_med}"
        );
    }
}
