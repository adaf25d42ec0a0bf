//! Statistics over replications: Student-t confidence intervals, and MSER-5 warm-up
//! truncation of a time series.

/// Mean and two-sided confidence interval of a sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MeanCi {
    pub n: usize,
    pub mean: f64,
    /// Half-width of the interval; NaN when n < 2.
    pub half_width: f64,
}

impl MeanCi {
    pub fn low(&self) -> f64 {
        self.mean - self.half_width
    }
    pub fn high(&self) -> f64 {
        self.mean + self.half_width
    }
}

/// The low end of `ci`, the interval of the sample `xs`, clamped at 0 when no value of
/// the sample is negative: the metrics of a run (counts, rates, ratios, times, sizes)
/// cannot be negative, and a bound below 0 says nothing. A sample with a negative value
/// is of a signed quantity, and keeps its bound. The mean and the high end are not
/// changed (the interval is then no longer symmetric about the mean).
pub fn ci_low_clamped(ci: &MeanCi, xs: &[f64]) -> f64 {
    let low = ci.low();
    if low < 0.0 && xs.iter().all(|x| x.is_nan() || *x >= 0.0) {
        0.0
    } else {
        low
    }
}

/// Mean and 95 % Student-t confidence interval of `xs` (NaN values are skipped).
/// With fewer than two values the half-width is NaN.
pub fn mean_ci95(xs: &[f64]) -> MeanCi {
    mean_ci(xs, 0.95)
}

/// Mean and two-sided `level` Student-t confidence interval of `xs` (NaNs skipped).
pub fn mean_ci(xs: &[f64], level: f64) -> MeanCi {
    let v: Vec<f64> = xs.iter().copied().filter(|x| !x.is_nan()).collect();
    let n = v.len();
    if n == 0 {
        return MeanCi {
            n,
            mean: f64::NAN,
            half_width: f64::NAN,
        };
    }
    let mean = v.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return MeanCi {
            n,
            mean,
            half_width: f64::NAN,
        };
    }
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1) as f64;
    let t = t_quantile(0.5 + level / 2.0, (n - 1) as f64);
    MeanCi {
        n,
        mean,
        half_width: t * (var / n as f64).sqrt(),
    }
}

use w3sim_models::dist::ln_gamma;

/// Continued fraction of the incomplete beta function (modified Lentz).
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..400 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// Regularised incomplete beta function I_x(a, b).
fn inc_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    if x < (a + 1.0) / (a + b + 2.0) {
        ln_front.exp() * beta_cf(a, b, x) / a
    } else {
        1.0 - ln_front.exp() * beta_cf(b, a, 1.0 - x) / b
    }
}

/// CDF of Student's t with `df` degrees of freedom.
pub fn t_cdf(t: f64, df: f64) -> f64 {
    let tail = 0.5 * inc_beta(df / 2.0, 0.5, df / (df + t * t));
    if t >= 0.0 { 1.0 - tail } else { tail }
}

/// Quantile of Student's t with `df` degrees of freedom (`p` in (0, 1)), by bisection
/// on [`t_cdf`] to 1e-12.
pub fn t_quantile(p: f64, df: f64) -> f64 {
    assert!(p > 0.0 && p < 1.0 && df > 0.0, "t_quantile({p}, {df})");
    if p < 0.5 {
        return -t_quantile(1.0 - p, df);
    }
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    while t_cdf(hi, df) < p {
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if t_cdf(mid, df) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-12 {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// MSER-5 truncation point of a time series: the values are grouped in batches of 5
/// consecutive samples (a trailing partial batch is dropped); for every candidate
/// truncation `d` of whole batches over the first half (0 ≤ d ≤ b/2), MSER(d) =
/// Σ_{j≥d} (Z_j − Z̄_d)² / (b − d)²; the smallest `d` minimising it wins.
/// Returns the number of *samples* to drop (5·d). Fewer than two batches: 0.
pub fn mser5(values: &[f64]) -> usize {
    let b = values.len() / 5;
    if b < 2 {
        return 0;
    }
    let z: Vec<f64> = values
        .chunks_exact(5)
        .map(|c| c.iter().sum::<f64>() / 5.0)
        .collect();
    let mut best = (f64::INFINITY, 0usize);
    for d in 0..=b / 2 {
        let tail = &z[d..];
        let k = tail.len() as f64;
        let m = tail.iter().sum::<f64>() / k;
        let ss: f64 = tail.iter().map(|x| (x - m) * (x - m)).sum();
        let stat = ss / (k * k);
        if stat < best.0 {
            best = (stat, d);
        }
    }
    best.1 * 5
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_tables() {
        for (df, q) in [
            (1.0, 12.706205),
            (2.0, 4.302653),
            (4.0, 2.776445),
            (9.0, 2.262157),
            (29.0, 2.045230),
            (1000.0, 1.962339),
        ] {
            let t = t_quantile(0.975, df);
            assert!((t - q).abs() < 1e-5, "df {df}: {t} vs {q}");
        }
        assert!((t_quantile(0.9995, 9.0) - 4.780913).abs() < 1e-5);
    }

    #[test]
    fn ci_of_a_sample() {
        let c = mean_ci95(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(c.mean, 3.0);
        assert!((c.half_width - 2.776445 * (2.5f64 / 5.0).sqrt()).abs() < 1e-5);
        assert!(mean_ci95(&[1.0]).half_width.is_nan());
    }

    #[test]
    fn the_low_end_of_a_non_negative_sample_is_clamped_at_zero() {
        let xs = [0.0, 0.0, 0.001, 0.0];
        let ci = mean_ci95(&xs);
        assert!(ci.low() < 0.0);
        assert_eq!(ci_low_clamped(&ci, &xs), 0.0);
        assert_eq!(ci.mean, 0.00025);
        // A signed sample keeps its bound; so does one whose bound is above 0.
        let signed = [-0.001, 0.0, 0.001, 0.002];
        let ci = mean_ci95(&signed);
        assert_eq!(ci_low_clamped(&ci, &signed), ci.low());
        let high = [10.0, 11.0, 12.0];
        let ci = mean_ci95(&high);
        assert_eq!(ci_low_clamped(&ci, &high), ci.low());
        assert!(ci_low_clamped(&mean_ci95(&[1.0]), &[1.0]).is_nan());
    }

    #[test]
    fn mser5_cuts_an_initial_transient() {
        let mut v: Vec<f64> = (0..50).map(|i| 100.0 - 2.0 * i as f64).collect();
        v.extend((0..200).map(|i| if i % 2 == 0 { 1.0 } else { -1.0 }));
        let cut = mser5(&v);
        assert!((45..=55).contains(&cut), "cut {cut}");
        let flat: Vec<f64> = (0..100).map(|i| (i % 3) as f64).collect();
        assert_eq!(mser5(&flat), 0);
    }
}
