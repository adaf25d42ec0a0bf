//! Probability distributions of service demands, delays, think times and sizes.
//!
//! A [`Dist`] is the value a scenario writes (`exp(10ms)`, `lognormal(mean=40ms, sd=30ms)`);
//! a [`Sampler`] is the prepared form a model keeps and draws from on the hot path.
//! Values are in base units: nanoseconds for durations, bytes for sizes, plain numbers
//! for counts. The text form (parsing, units) lives in `w3sim::scenario::units`; the
//! canonical display form is produced there too, so this module stays free of text.
//!
//! Every distribution is parameterised by its mean where that makes sense, because
//! capacity planners know the mean service time of a page, not the rate of its
//! exponential.

use rand::Rng;
use rand_distr::{Distribution, Exp1, Gamma, LogNormal, Normal, Pareto, StandardNormal, Weibull};

/// A distribution as written in a scenario, in base units.
#[derive(Clone, Debug, PartialEq)]
pub enum Dist {
    /// Always the same value: `const(5ms)` (or a bare `5ms`).
    Const(f64),
    /// Exponential with the given mean: `exp(10ms)`. Coefficient of variation 1.
    Exp { mean: f64 },
    /// Uniform on `[lo, hi]`: `uniform(1ms, 3ms)`.
    Uniform { lo: f64, hi: f64 },
    /// Log-normal with the given mean and standard deviation of the value itself
    /// (not of its logarithm): `lognormal(mean=40ms, sd=30ms)`.
    Lognormal { mean: f64, sd: f64 },
    /// Normal truncated at zero (negative draws are redrawn): `normal(mean=20ms, sd=5ms)`.
    Normal { mean: f64, sd: f64 },
    /// Erlang-k: sum of `k` exponentials, total mean `mean`: `erlang(k=4, mean=10ms)`.
    Erlang { k: u32, mean: f64 },
    /// Gamma with shape and mean: `gamma(shape=0.5, mean=10ms)`.
    Gamma { shape: f64, mean: f64 },
    /// Weibull with shape and mean: `weibull(shape=1.5, mean=10ms)`.
    Weibull { shape: f64, mean: f64 },
    /// Pareto (type I) with shape alpha > 1 and mean: `pareto(shape=2.5, mean=10ms)`.
    /// Heavy tail: for shape <= 2 the variance is infinite.
    Pareto { shape: f64, mean: f64 },
    /// Two-phase hyper-exponential fitted to a mean and a squared coefficient of
    /// variation >= 1 with balanced means: `hyperexp(mean=10ms, scv=4)`.
    HyperExp { mean: f64, scv: f64 },
}

/// Why a distribution's parameters are not acceptable.
#[derive(Clone, Debug, PartialEq)]
pub struct DistError(pub String);

impl std::fmt::Display for DistError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DistError {}

fn finite_nonneg(name: &str, v: f64) -> Result<(), DistError> {
    if !v.is_finite() || v < 0.0 {
        return Err(DistError(format!(
            "{name} must be a finite value >= 0, got {v}"
        )));
    }
    Ok(())
}

fn positive(name: &str, v: f64) -> Result<(), DistError> {
    if !v.is_finite() || v <= 0.0 {
        return Err(DistError(format!(
            "{name} must be a finite value > 0, got {v}"
        )));
    }
    Ok(())
}

/// ln Γ(x) for x > 0 (Lanczos approximation, g = 7, n = 9; ~15 significant digits).
/// Shared with the sweep statistics (Student t quantiles).
pub fn ln_gamma(x: f64) -> f64 {
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + 7.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Γ(x) for x > 0 (the Weibull mean needs Γ(1 + 1/k)).
fn gamma_fn(x: f64) -> f64 {
    ln_gamma(x).exp()
}

impl Dist {
    /// Checks the parameters; every constructor path (parser, tests) goes through this.
    pub fn validate(&self) -> Result<(), DistError> {
        match *self {
            Dist::Const(v) => finite_nonneg("value", v),
            Dist::Exp { mean } => finite_nonneg("mean", mean),
            Dist::Uniform { lo, hi } => {
                finite_nonneg("low bound", lo)?;
                finite_nonneg("high bound", hi)?;
                if hi < lo {
                    return Err(DistError(format!(
                        "uniform needs low <= high, got low {lo} > high {hi}"
                    )));
                }
                Ok(())
            }
            Dist::Lognormal { mean, sd } | Dist::Normal { mean, sd } => {
                positive("mean", mean)?;
                finite_nonneg("sd", sd)
            }
            Dist::Erlang { k, mean } => {
                if k == 0 {
                    return Err(DistError("erlang needs k >= 1".into()));
                }
                finite_nonneg("mean", mean)
            }
            Dist::Gamma { shape, mean } | Dist::Weibull { shape, mean } => {
                positive("shape", shape)?;
                finite_nonneg("mean", mean)
            }
            Dist::Pareto { shape, mean } => {
                if !shape.is_finite() || shape <= 1.0 {
                    return Err(DistError(format!(
                        "pareto needs shape > 1 for a finite mean, got {shape}"
                    )));
                }
                positive("mean", mean)
            }
            Dist::HyperExp { mean, scv } => {
                finite_nonneg("mean", mean)?;
                if !scv.is_finite() || scv < 1.0 {
                    return Err(DistError(format!(
                        "hyperexp needs scv >= 1 (use erlang or gamma below 1), got {scv}"
                    )));
                }
                Ok(())
            }
        }
    }

    /// The mean, in base units.
    pub fn mean(&self) -> f64 {
        match *self {
            Dist::Const(v) => v,
            Dist::Exp { mean }
            | Dist::Lognormal { mean, .. }
            | Dist::Erlang { mean, .. }
            | Dist::Gamma { mean, .. }
            | Dist::Weibull { mean, .. }
            | Dist::Pareto { mean, .. }
            | Dist::HyperExp { mean, .. } => mean,
            Dist::Normal { mean, sd } => {
                // Mean of a normal truncated at zero.
                if sd == 0.0 {
                    return mean;
                }
                let a = -mean / sd;
                let phi = (-0.5 * a * a).exp() / (2.0 * std::f64::consts::PI).sqrt();
                let z = 1.0 - normal_cdf(a);
                mean + sd * phi / z
            }
            Dist::Uniform { lo, hi } => 0.5 * (lo + hi),
        }
    }

    /// The variance, in base units squared (infinite for heavy-tailed Pareto).
    pub fn variance(&self) -> f64 {
        match *self {
            Dist::Const(_) => 0.0,
            Dist::Exp { mean } => mean * mean,
            Dist::Uniform { lo, hi } => (hi - lo) * (hi - lo) / 12.0,
            Dist::Lognormal { sd, .. } => sd * sd,
            Dist::Normal { mean, sd } => {
                if sd == 0.0 {
                    return 0.0;
                }
                let a = -mean / sd;
                let phi = (-0.5 * a * a).exp() / (2.0 * std::f64::consts::PI).sqrt();
                let z = 1.0 - normal_cdf(a);
                let l = phi / z;
                sd * sd * (1.0 + a * l - l * l)
            }
            Dist::Erlang { k, mean } => mean * mean / k as f64,
            Dist::Gamma { shape, mean } => mean * mean / shape,
            Dist::Weibull { shape, mean } => {
                let g1 = gamma_fn(1.0 + 1.0 / shape);
                let g2 = gamma_fn(1.0 + 2.0 / shape);
                let scale = mean / g1;
                scale * scale * (g2 - g1 * g1)
            }
            Dist::Pareto { shape, mean } => {
                if shape <= 2.0 {
                    f64::INFINITY
                } else {
                    let xm = mean * (shape - 1.0) / shape;
                    xm * xm * shape / ((shape - 1.0) * (shape - 1.0) * (shape - 2.0))
                }
            }
            Dist::HyperExp { mean, scv } => scv * mean * mean,
        }
    }

    /// Squared coefficient of variation (variance / mean²); 0 for a zero mean.
    pub fn scv(&self) -> f64 {
        let m = self.mean();
        if m == 0.0 {
            0.0
        } else {
            self.variance() / (m * m)
        }
    }

    /// The same distribution with every value multiplied by `k` (k >= 0).
    pub fn scaled(&self, k: f64) -> Dist {
        match *self {
            Dist::Const(v) => Dist::Const(v * k),
            Dist::Exp { mean } => Dist::Exp { mean: mean * k },
            Dist::Uniform { lo, hi } => Dist::Uniform {
                lo: lo * k,
                hi: hi * k,
            },
            Dist::Lognormal { mean, sd } => Dist::Lognormal {
                mean: mean * k,
                sd: sd * k,
            },
            Dist::Normal { mean, sd } => Dist::Normal {
                mean: mean * k,
                sd: sd * k,
            },
            Dist::Erlang { k: n, mean } => Dist::Erlang {
                k: n,
                mean: mean * k,
            },
            Dist::Gamma { shape, mean } => Dist::Gamma {
                shape,
                mean: mean * k,
            },
            Dist::Weibull { shape, mean } => Dist::Weibull {
                shape,
                mean: mean * k,
            },
            Dist::Pareto { shape, mean } => Dist::Pareto {
                shape,
                mean: mean * k,
            },
            Dist::HyperExp { mean, scv } => Dist::HyperExp {
                mean: mean * k,
                scv,
            },
        }
    }

    /// Prepares a sampler. Panics only if [`Dist::validate`] would have failed, which the
    /// scenario loader rules out; use [`Dist::try_sampler`] on unchecked input.
    pub fn sampler(&self) -> Sampler {
        self.try_sampler()
            .expect("distribution validated by the scenario loader")
    }

    /// Prepares a sampler, checking the parameters first.
    pub fn try_sampler(&self) -> Result<Sampler, DistError> {
        self.validate()?;
        let bad = |e: &dyn std::fmt::Display| DistError(e.to_string());
        Ok(match *self {
            Dist::Const(v) => Sampler::Const(v),
            Dist::Exp { mean } => Sampler::Exp(mean),
            Dist::Uniform { lo, hi } => Sampler::Uniform(lo, hi - lo),
            Dist::Lognormal { mean, sd } => {
                let s2 = (1.0 + (sd * sd) / (mean * mean)).ln();
                let mu = mean.ln() - 0.5 * s2;
                Sampler::Lognormal(LogNormal::new(mu, s2.sqrt()).map_err(|e| bad(&e))?)
            }
            Dist::Normal { mean, sd } => {
                Sampler::Normal(Normal::new(mean, sd).map_err(|e| bad(&e))?)
            }
            Dist::Erlang { k, mean } => Sampler::Erlang(k, mean / k as f64),
            Dist::Gamma { shape, mean } => Sampler::Gamma(
                Gamma::new(shape, (mean / shape).max(f64::MIN_POSITIVE)).map_err(|e| bad(&e))?,
                mean == 0.0,
            ),
            Dist::Weibull { shape, mean } => {
                let scale = mean / gamma_fn(1.0 + 1.0 / shape);
                Sampler::Weibull(
                    Weibull::new(scale.max(f64::MIN_POSITIVE), shape).map_err(|e| bad(&e))?,
                    mean == 0.0,
                )
            }
            Dist::Pareto { shape, mean } => {
                let xm = mean * (shape - 1.0) / shape;
                Sampler::Pareto(Pareto::new(xm, shape).map_err(|e| bad(&e))?)
            }
            Dist::HyperExp { mean, scv } => {
                // Balanced-means two-phase fit (Whitt): p1 = (1 + sqrt((c²-1)/(c²+1)))/2,
                // branch i has mean m/(2 p_i).
                let p1 = 0.5 * (1.0 + ((scv - 1.0) / (scv + 1.0)).sqrt());
                let p2 = 1.0 - p1;
                let m1 = if p1 > 0.0 { mean / (2.0 * p1) } else { 0.0 };
                let m2 = if p2 > 0.0 { mean / (2.0 * p2) } else { 0.0 };
                Sampler::HyperExp { p1, m1, m2 }
            }
        })
    }
}

fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// Complementary error function (Numerical Recipes erfcc, |rel err| < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// A prepared distribution: cheap to sample, no allocation.
#[derive(Clone, Debug)]
pub enum Sampler {
    Const(f64),
    Exp(f64),
    Uniform(f64, f64),
    Lognormal(LogNormal<f64>),
    Normal(Normal<f64>),
    Erlang(u32, f64),
    /// The flag marks a zero mean (always 0).
    Gamma(Gamma<f64>, bool),
    Weibull(Weibull<f64>, bool),
    Pareto(Pareto<f64>),
    HyperExp {
        p1: f64,
        m1: f64,
        m2: f64,
    },
}

impl Sampler {
    /// Draws one value (>= 0) in base units.
    #[inline]
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        match self {
            Sampler::Const(v) => *v,
            Sampler::Exp(mean) => {
                let e: f64 = Exp1.sample(rng);
                e * mean
            }
            Sampler::Uniform(lo, width) => {
                let u: f64 = rand::distr::StandardUniform.sample(rng);
                lo + u * width
            }
            Sampler::Lognormal(d) => d.sample(rng),
            Sampler::Normal(d) => {
                // Truncated at zero by rejection; falls back to 0 after many tries
                // (only reachable when the mean is many sd below zero, which validate forbids).
                for _ in 0..64 {
                    let v = d.sample(rng);
                    if v >= 0.0 {
                        return v;
                    }
                }
                0.0
            }
            Sampler::Erlang(k, phase_mean) => {
                let mut s = 0.0;
                for _ in 0..*k {
                    let e: f64 = Exp1.sample(rng);
                    s += e;
                }
                s * phase_mean
            }
            Sampler::Gamma(d, zero) => {
                if *zero {
                    0.0
                } else {
                    d.sample(rng)
                }
            }
            Sampler::Weibull(d, zero) => {
                if *zero {
                    0.0
                } else {
                    d.sample(rng)
                }
            }
            Sampler::Pareto(d) => d.sample(rng),
            Sampler::HyperExp { p1, m1, m2 } => {
                let u: f64 = rand::distr::StandardUniform.sample(rng);
                let e: f64 = Exp1.sample(rng);
                if u < *p1 { e * m1 } else { e * m2 }
            }
        }
    }

    /// Draws one duration and rounds it to whole nanoseconds.
    #[inline]
    pub fn sample_ns<R: Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        crate::time::ns_from_f64(self.sample(rng))
    }
}

/// Draws a standard normal variate (used by models that add jitter).
pub fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    StandardNormal.sample(rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::Xoshiro256PlusPlus;

    fn moments(d: &Dist, n: usize) -> (f64, f64) {
        let s = d.sampler();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
        let (mut sum, mut sq) = (0.0, 0.0);
        for _ in 0..n {
            let v = s.sample(&mut rng);
            assert!(v >= 0.0, "{d:?} drew {v}");
            sum += v;
            sq += v * v;
        }
        let m = sum / n as f64;
        (m, sq / n as f64 - m * m)
    }

    #[test]
    fn sample_moments_match_the_declared_ones() {
        let cases = [
            Dist::Const(5.0),
            Dist::Exp { mean: 10.0 },
            Dist::Uniform { lo: 1.0, hi: 3.0 },
            Dist::Lognormal {
                mean: 40.0,
                sd: 30.0,
            },
            Dist::Normal {
                mean: 20.0,
                sd: 5.0,
            },
            Dist::Normal { mean: 2.0, sd: 5.0 },
            Dist::Erlang { k: 4, mean: 10.0 },
            Dist::Gamma {
                shape: 0.5,
                mean: 10.0,
            },
            Dist::Weibull {
                shape: 1.5,
                mean: 10.0,
            },
            Dist::Pareto {
                shape: 3.5,
                mean: 10.0,
            },
            Dist::HyperExp {
                mean: 10.0,
                scv: 4.0,
            },
        ];
        for d in &cases {
            let (m, v) = moments(d, 400_000);
            let tol_m = 0.02 * d.mean().max(1e-9);
            assert!(
                (m - d.mean()).abs() <= tol_m,
                "{d:?}: mean {m} vs {}",
                d.mean()
            );
            let tol_v = 0.08 * d.variance().max(1e-9);
            assert!(
                (v - d.variance()).abs() <= tol_v,
                "{d:?}: var {v} vs {}",
                d.variance()
            );
        }
    }

    #[test]
    fn invalid_parameters_are_rejected() {
        assert!(Dist::Exp { mean: -1.0 }.validate().is_err());
        assert!(Dist::Uniform { lo: 3.0, hi: 1.0 }.validate().is_err());
        assert!(Dist::Erlang { k: 0, mean: 1.0 }.validate().is_err());
        assert!(
            Dist::Pareto {
                shape: 1.0,
                mean: 1.0
            }
            .validate()
            .is_err()
        );
        assert!(
            Dist::HyperExp {
                mean: 1.0,
                scv: 0.5
            }
            .validate()
            .is_err()
        );
        assert!(Dist::Const(f64::NAN).validate().is_err());
    }

    #[test]
    fn gamma_function_is_accurate() {
        assert!((gamma_fn(5.0) - 24.0).abs() < 1e-9);
        assert!((gamma_fn(0.5) - std::f64::consts::PI.sqrt()).abs() < 1e-9);
    }
}
