//! Capacity search: the highest value of a setting (`load.rate`, `load.users`,
//! `http_sys.queue_length`, any numeric setting) at which every SLO still holds.
//!
//! Each evaluation runs R replications (seeds `seed + r`, common random numbers across
//! values) and a value *passes* when every SLO holds for the mean over replications.
//! The search brackets the crossing (halving the low end while it fails, doubling the
//! high end while it passes), then bisects until the bracket is narrower than
//! `tolerance` × its high end. The report gives the highest passing value, the final
//! bracket, an interpolated crossing, and a confidence interval of the crossing: from
//! the highest value whose every SLO holds even at the pessimistic end of its 95 % CI
//! to the lowest value where some SLO fails even at the optimistic end of its CI.
//! It also names the SLO that broke first and what crossed: the failure outcome with
//! the most requests and the queues or pools whose peak reached their limit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use super::SweepError;
use super::metrics::{derived_names, metrics_of};
use super::run::{pool, probe, run_one};
use super::spec::{Quantity, round_sig};
use super::stats::mean_ci95;
use crate::scenario::Scenario;
use crate::scenario::load::{Seg, load_file, nearest, parse_path};

/// Comparison of an SLO.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Op {
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
}

/// A service-level objective on a metric: `503_rate<0.1%`, `p99<500ms`, `throughput>=900/s`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Slo {
    pub text: String,
    pub metric: String,
    pub op: Op,
    /// In the metric's unit (a ratio for rates, ms for latencies).
    pub threshold: f64,
}

impl Slo {
    /// Parses `METRIC OP VALUE[UNIT]`. `p50`, `p95`, `p99`, `mean` stand for the derived
    /// `*_ms` latencies; `%` divides by 100; `s` on a millisecond metric multiplies by 1000.
    pub fn parse(s: &str) -> Result<Slo, String> {
        let i = s.find(['<', '>']).ok_or_else(|| {
            format!("SLO \"{s}\" has no comparison: write e.g. \"503_rate<0.1%\" or \"p99<500ms\"")
        })?;
        let (metric, rest) = (s[..i].trim(), &s[i..]);
        let (op, value) = if let Some(v) = rest.strip_prefix("<=") {
            (Op::Le, v)
        } else if let Some(v) = rest.strip_prefix(">=") {
            (Op::Ge, v)
        } else if let Some(v) = rest.strip_prefix('<') {
            (Op::Lt, v)
        } else {
            (Op::Gt, &rest[1..])
        };
        let metric = match metric {
            "p50" | "p95" | "p99" | "mean" => format!("{metric}_ms"),
            m => m.to_string(),
        };
        if metric.is_empty() {
            return Err(format!("SLO \"{s}\" names no metric"));
        }
        let q = Quantity::parse(value)
            .ok_or_else(|| format!("SLO \"{s}\": \"{}\" is not a number", value.trim()))?;
        let in_ms = metric.ends_with("_ms")
            || metric.starts_with("latency_ms")
            || metric.starts_with("queue_wait_ms");
        let threshold = match q.unit.as_str() {
            "" | "/s" => q.value,
            "%" => q.value / 100.0,
            "ms" if in_ms => q.value,
            "s" if in_ms => q.value * 1000.0,
            u => {
                return Err(format!(
                    "SLO \"{s}\": unit \"{u}\" does not fit `{metric}` (use %, ms or s for latencies, /s, or none)"
                ));
            }
        };
        Ok(Slo {
            text: s.trim().to_string(),
            metric,
            op,
            threshold,
        })
    }

    pub fn holds(&self, x: f64) -> bool {
        match self.op {
            Op::Lt => x < self.threshold,
            Op::Le => x <= self.threshold,
            Op::Gt => x > self.threshold,
            Op::Ge => x >= self.threshold,
        }
    }

    /// The end of a CI least favourable to the SLO (upper end for `<`).
    fn pessimistic(&self, lo: f64, hi: f64) -> f64 {
        if matches!(self.op, Op::Lt | Op::Le) {
            hi
        } else {
            lo
        }
    }
    fn optimistic(&self, lo: f64, hi: f64) -> f64 {
        if matches!(self.op, Op::Lt | Op::Le) {
            lo
        } else {
            hi
        }
    }
}

/// Settings of a capacity search.
#[derive(Clone, Debug)]
pub struct CapacityConfig {
    pub scenario: PathBuf,
    /// `--set` overrides (and `seed=`, `duration=`) applied before the varied setting.
    pub overrides: Vec<String>,
    pub vary: String,
    pub lo: Option<String>,
    pub hi: Option<String>,
    pub slos: Vec<Slo>,
    pub replications: u32,
    pub jobs: usize,
    /// Stop bisecting when hi − lo ≤ tolerance × hi.
    pub tolerance: f64,
    /// At most this many evaluations in all.
    pub max_evaluations: usize,
}

/// One SLO at one value.
#[derive(Clone, Debug, Serialize)]
pub struct SloResult {
    pub slo: String,
    pub mean: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub holds: bool,
}

/// One value tried.
#[derive(Clone, Debug, Serialize)]
pub struct Evaluation {
    pub value: f64,
    pub setting: String,
    pub pass: bool,
    pub slos: Vec<SloResult>,
    #[serde(skip)]
    pub means: BTreeMap<String, f64>,
}

/// Which SLO broke first and what crossed.
#[derive(Clone, Debug, Serialize)]
pub struct BrokeFirst {
    pub slo: String,
    /// The lowest value tried at which this SLO failed.
    pub first_failed_at: f64,
    pub mean_there: f64,
    pub threshold: f64,
    /// What crossed there: failure outcomes by count, queues or pools at their limit.
    pub causes: Vec<String>,
}

/// The result of a capacity search (`capacity.json`).
#[derive(Clone, Debug, Serialize)]
pub struct CapacityReport {
    pub w3sim_version: String,
    pub scenario: String,
    pub vary: String,
    pub unit: String,
    pub slos: Vec<Slo>,
    pub replications: u32,
    pub seed: u64,
    /// Highest value tried at which every SLO held (mean over replications).
    pub capacity: Option<f64>,
    pub capacity_setting: Option<String>,
    /// Final bracket: [highest passing, lowest failing] value tried.
    pub interval: [Option<f64>; 2],
    /// Linear interpolation of the breaking SLO's mean across the final bracket.
    pub crossing_estimate: Option<f64>,
    /// 95 %-CI-based interval of the crossing (see the module documentation); an end
    /// is null when no value tried was conclusive on that side.
    pub crossing_ci: [Option<f64>; 2],
    pub broke_first: Option<BrokeFirst>,
    pub note: Option<String>,
    pub evaluations: Vec<Evaluation>,
}

fn bad(e: impl std::fmt::Display) -> SweepError {
    SweepError::BadInput(e.to_string())
}

/// The current value of a dotted setting in a scenario.
fn setting_value(scn: &Scenario, path: &str) -> Result<toml::Value, SweepError> {
    let table: toml::Table =
        toml::from_str(&scn.to_toml()).map_err(|e| SweepError::Internal(e.to_string()))?;
    let segs = parse_path(path).map_err(bad)?;
    let mut cur = toml::Value::Table(table);
    for s in &segs {
        let next = match (s, &cur) {
            (Seg::Key(k), toml::Value::Table(t)) => t.get(k).cloned(),
            (Seg::Index(i), toml::Value::Array(a)) => a.get(*i).cloned(),
            _ => None,
        };
        cur = next.ok_or_else(|| {
            bad(format!(
                "the scenario has no setting `{path}` (see `w3sim show-defaults`)"
            ))
        })?;
    }
    Ok(cur)
}

struct Search<'a> {
    cfg: &'a CapacityConfig,
    unit: Quantity,
    pool: rayon::ThreadPool,
    evals: Vec<Evaluation>,
    seed: u64,
    on_eval: &'a mut dyn FnMut(&Evaluation),
}

impl Search<'_> {
    fn scenario_at(&self, v: f64) -> Result<(String, Scenario), SweepError> {
        let av = self.unit.with_value(v);
        let mut o = self.cfg.overrides.clone();
        o.push(format!("{}={}", self.cfg.vary, av.literal));
        let scn = load_file(&self.cfg.scenario, &o).map_err(|e| {
            bad(format!(
                "--vary {} cannot be {}: {e}",
                self.cfg.vary, av.text
            ))
        })?;
        Ok((av.text, scn))
    }

    fn eval(&mut self, v: f64) -> Result<usize, SweepError> {
        if let Some(i) = self.evals.iter().position(|e| e.value == v) {
            return Ok(i);
        }
        let (setting, scn) = self.scenario_at(v)?;
        let seed = scn.seed;
        let runs: Vec<BTreeMap<String, f64>> = self.pool.install(|| {
            (0..self.cfg.replications)
                .into_par_iter()
                .map(|r| {
                    run_one(&scn, seed.wrapping_add(r as u64), None).map(|(_, s)| metrics_of(&s))
                })
                .collect::<Result<Vec<_>, _>>()
        })?;
        let mut means = BTreeMap::new();
        for k in runs.iter().flat_map(|m| m.keys()) {
            let xs: Vec<f64> = runs
                .iter()
                .map(|m| m.get(k).copied().unwrap_or(f64::NAN))
                .collect();
            means.insert(k.clone(), mean_ci95(&xs).mean);
        }
        let slos: Vec<SloResult> = self
            .cfg
            .slos
            .iter()
            .map(|s| {
                let xs: Vec<f64> = runs
                    .iter()
                    .map(|m| m.get(&s.metric).copied().unwrap_or(f64::NAN))
                    .collect();
                let ci = mean_ci95(&xs);
                SloResult {
                    slo: s.text.clone(),
                    mean: ci.mean,
                    ci_low: ci.low(),
                    ci_high: ci.high(),
                    holds: s.holds(ci.mean),
                }
            })
            .collect();
        let e = Evaluation {
            value: v,
            setting,
            pass: slos.iter().all(|s| s.holds),
            slos,
            means,
        };
        (self.on_eval)(&e);
        self.evals.push(e);
        Ok(self.evals.len() - 1)
    }

    fn budget_left(&self) -> bool {
        self.evals.len() < self.cfg.max_evaluations
    }
}

/// Runs a capacity search; `on_eval` sees every evaluation as it finishes.
pub fn search(
    cfg: &CapacityConfig,
    on_eval: &mut dyn FnMut(&Evaluation),
) -> Result<CapacityReport, SweepError> {
    if cfg.slos.is_empty() {
        return Err(bad("give at least one --slo, e.g. --slo \"503_rate<0.1%\""));
    }
    if cfg.replications == 0 || cfg.replications > super::spec::MAX_REPLICATIONS {
        return Err(bad(format!(
            "--replications must be 1–{}, got {}",
            super::spec::MAX_REPLICATIONS,
            cfg.replications
        )));
    }
    if !(cfg.tolerance > 0.0 && cfg.tolerance < 1.0) {
        return Err(bad(format!(
            "--tolerance is a fraction of the bracket's high end, above 0 and below 1 (e.g. 0.01), got {}",
            cfg.tolerance
        )));
    }
    if cfg.max_evaluations < 2 {
        return Err(bad(format!(
            "--max-evaluations must be at least 2 (a bracket has two ends), got {}",
            cfg.max_evaluations
        )));
    }
    let base = load_file(&cfg.scenario, &cfg.overrides).map_err(bad)?;
    let (names, _) = probe(&base)?;
    for s in &cfg.slos {
        if !names.contains(&s.metric) {
            let near = nearest(&s.metric, names.iter().map(String::as_str))
                .map(|n| format!(" did you mean `{n}`?"))
                .unwrap_or_default();
            return Err(bad(format!(
                "SLO \"{}\": unknown metric `{}`.{near} Metrics: {}, p50, p95, p99, mean, or a dotted path of summary.json",
                s.text,
                s.metric,
                derived_names().collect::<Vec<_>>().join(", ")
            )));
        }
    }
    if parse_path(&cfg.vary).is_ok_and(|p| p == [Seg::Key("seed".into())]) {
        return Err(bad("--vary seed makes no sense: seeds are replications"));
    }
    let setting = setting_value(&base, &cfg.vary)?;
    let current = Quantity::from_toml(&setting).map_err(|m| {
        bad(format!(
            "--vary {}: the setting is not numeric: {m}",
            cfg.vary
        ))
    })?;
    let parse_bound = |s: &Option<String>, name: &str| -> Result<Option<Quantity>, SweepError> {
        s.as_deref()
            .map(|t| {
                Quantity::parse(t).ok_or_else(|| bad(format!("--{name} \"{t}\" is not a number")))
            })
            .transpose()
    };
    let (lo_q, hi_q) = (parse_bound(&cfg.lo, "lo")?, parse_bound(&cfg.hi, "hi")?);
    // Values keep the unit of the bounds given (else the scenario's); an integer
    // setting (a count) is searched over integers.
    let unit = Quantity {
        value: 0.0,
        unit: lo_q
            .as_ref()
            .or(hi_q.as_ref())
            .unwrap_or(&current)
            .unit
            .clone(),
        integer: matches!(setting, toml::Value::Integer(_)),
    };
    if let (Some(l), Some(h)) = (&lo_q, &hi_q) {
        if l.unit != h.unit {
            return Err(bad(format!(
                "--lo and --hi have different units (\"{}\" and \"{}\")",
                l.unit, h.unit
            )));
        }
    }
    let (mut lo, mut hi) = match (&lo_q, &hi_q) {
        (Some(l), Some(h)) => (l.value, h.value),
        (Some(l), None) => (l.value, l.value * 4.0),
        (None, Some(h)) => (h.value / 4.0, h.value),
        (None, None) => (current.value / 2.0, current.value * 2.0),
    };
    if unit.integer {
        lo = lo.floor().max(1.0);
        hi = hi.ceil();
    }
    if !(lo > 0.0 && hi > lo && hi.is_finite()) {
        return Err(bad(format!(
            "need 0 < --lo < --hi (got {lo} and {hi}); the scenario's value is {}",
            current.value
        )));
    }
    let integer = unit.integer;
    let mut s = Search {
        cfg,
        unit,
        pool: pool(cfg.jobs)?,
        evals: Vec::new(),
        seed: base.seed,
        on_eval,
    };
    let mut note = None;
    let half = |x: f64, int: bool| if int { (x / 2.0).floor() } else { x / 2.0 };
    let mut li = s.eval(lo)?;
    let mut hi_i: Option<usize> = None;
    while !s.evals[li].pass {
        let next = half(lo, integer);
        if next <= 0.0 || !s.budget_left() {
            note = Some(format!("the SLOs fail even at {}", s.evals[li].setting));
            break;
        }
        hi_i = Some(li);
        hi = lo;
        lo = next;
        li = s.eval(lo)?;
    }
    if note.is_none() {
        let mut hi_e = match hi_i {
            Some(i) => i,
            None => s.eval(hi)?,
        };
        while s.evals[hi_e].pass {
            if !s.budget_left() {
                note = Some(format!(
                    "the SLOs still hold at {}: the capacity is higher",
                    s.evals[hi_e].setting
                ));
                break;
            }
            li = hi_e;
            lo = hi;
            hi *= 2.0;
            hi_e = match s.eval(hi) {
                Ok(i) => i,
                // The setting's own range ends before the SLOs break (a rate above one
                // per nanosecond, a queueLength above 65535): report what was found.
                Err(SweepError::BadInput(m)) => {
                    note = Some(format!(
                        "the SLOs still hold at {}, the highest valid value tried ({m})",
                        s.evals[li].setting
                    ));
                    break;
                }
                Err(e) => return Err(e),
            };
        }
        hi_i = Some(hi_e);
        if note.is_none() {
            while hi - lo > cfg.tolerance * hi && s.budget_left() {
                let mid = if integer {
                    ((lo + hi) / 2.0).floor()
                } else {
                    round_sig((lo + hi) / 2.0, 12)
                };
                if mid <= lo || mid >= hi {
                    break;
                }
                let i = s.eval(mid)?;
                if s.evals[i].pass {
                    li = i;
                    lo = mid;
                } else {
                    hi_i = Some(i);
                    hi = mid;
                }
            }
        }
    }
    Ok(report(cfg, &s, li, hi_i, note))
}

fn report(
    cfg: &CapacityConfig,
    s: &Search<'_>,
    li: usize,
    hi_i: Option<usize>,
    note: Option<String>,
) -> CapacityReport {
    let ev = &s.evals;
    let lo_e = ev[li].pass.then(|| &ev[li]);
    let hi_e = hi_i.map(|i| &ev[i]).filter(|e| !e.pass);
    // Which SLO broke first: the lowest value at which it failed; ties by relative excess.
    let mut broke: Option<(usize, f64, f64)> = None;
    for (k, slo) in cfg.slos.iter().enumerate() {
        let first = ev
            .iter()
            .filter(|e| !e.slos[k].holds)
            .map(|e| e.value)
            .fold(f64::INFINITY, f64::min);
        if !first.is_finite() {
            continue;
        }
        let excess = hi_e.map_or(0.0, |h| {
            ((h.slos[k].mean - slo.threshold) / slo.threshold.abs().max(1e-300)).abs()
        });
        if broke.is_none_or(|(_, f, x)| first < f || (first == f && excess > x)) {
            broke = Some((k, first, excess));
        }
    }
    let broke_first = broke.map(|(k, first, _)| {
        let at = ev.iter().find(|e| e.value == first).expect("evaluated");
        let where_ = hi_e.unwrap_or(at);
        BrokeFirst {
            slo: cfg.slos[k].text.clone(),
            first_failed_at: first,
            mean_there: at.slos[k].mean,
            threshold: cfg.slos[k].threshold,
            causes: causes(&where_.means),
        }
    });
    let crossing_estimate = match (lo_e, hi_e, broke) {
        (Some(l), Some(h), Some((k, _, _))) => {
            let (ml, mh, t) = (l.slos[k].mean, h.slos[k].mean, cfg.slos[k].threshold);
            let f = if (mh - ml).abs() > 0.0 {
                ((t - ml) / (mh - ml)).clamp(0.0, 1.0)
            } else {
                0.5
            };
            Some(l.value + f * (h.value - l.value))
        }
        _ => None,
    };
    let sure_pass = |e: &Evaluation| {
        cfg.slos
            .iter()
            .zip(&e.slos)
            .all(|(slo, r)| slo.holds(slo.pessimistic(r.ci_low, r.ci_high)))
    };
    let sure_fail = |e: &Evaluation| {
        cfg.slos.iter().zip(&e.slos).any(|(slo, r)| {
            let x = slo.optimistic(r.ci_low, r.ci_high);
            !x.is_nan() && !slo.holds(x)
        })
    };
    let ci_lo = ev
        .iter()
        .filter(|e| sure_pass(e))
        .map(|e| e.value)
        .fold(None, |a: Option<f64>, v| Some(a.map_or(v, |a| a.max(v))));
    let ci_hi = ev
        .iter()
        .filter(|e| sure_fail(e))
        .map(|e| e.value)
        .fold(None, |a: Option<f64>, v| Some(a.map_or(v, |a| a.min(v))));
    let mut evaluations = ev.clone();
    evaluations.sort_by(|a, b| a.value.total_cmp(&b.value));
    CapacityReport {
        w3sim_version: env!("CARGO_PKG_VERSION").to_string(),
        scenario: cfg.scenario.display().to_string(),
        vary: cfg.vary.clone(),
        unit: s.unit.unit.clone(),
        slos: cfg.slos.clone(),
        replications: cfg.replications,
        seed: s.seed,
        capacity: lo_e.map(|e| e.value),
        capacity_setting: lo_e.map(|e| e.setting.clone()),
        interval: [lo_e.map(|e| e.value), hi_e.map(|e| e.value)],
        crossing_estimate,
        crossing_ci: [ci_lo, ci_hi],
        broke_first,
        note,
        evaluations,
    }
}

/// What crossed at a failing value: failure outcomes by count (per run, and per arrival),
/// then queues and pools whose mean peak reached their limit.
fn causes(means: &BTreeMap<String, f64>) -> Vec<String> {
    let arrived = means.get("measured.arrived").copied().unwrap_or(0.0);
    let mut outs: Vec<(&str, f64)> = means
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("measured.outcomes.").map(|n| (n, *v)))
        .filter(|(n, v)| *n != "ok" && *v > 0.0)
        .collect();
    outs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    let mut out: Vec<String> = outs
        .iter()
        .map(|(n, v)| {
            let share = if arrived > 0.0 {
                format!(" ({:.3} % of arrivals)", 100.0 * v / arrived)
            } else {
                String::new()
            };
            format!("outcome {n}: {v:.1} per run in the measured window{share}")
        })
        .collect();
    for (k, peak) in means
        .iter()
        .filter(|(k, _)| k.starts_with("gauges.") && k.ends_with(".peak"))
    {
        let g = &k["gauges.".len()..k.len() - ".peak".len()];
        if let Some(limit) = means.get(&format!("gauges.{g}.limit")) {
            if *limit > 0.0 && *peak >= limit - 1e-9 {
                let mean = means
                    .get(&format!("gauges.{g}.mean"))
                    .copied()
                    .unwrap_or(f64::NAN);
                out.push(format!(
                    "{g} reached its limit {limit} (time-average {mean:.2})"
                ));
            }
        }
    }
    out
}

impl CapacityReport {
    /// A human report.
    pub fn human(&self) -> String {
        let fmt = |v: Option<f64>| {
            v.map_or("?".to_string(), |x| {
                format!("{}{}", round_sig(x, 6), self.unit)
            })
        };
        let mut s = String::new();
        s.push_str(&format!(
            "capacity of {} in {} ({} replications per value, seeds {}..{}):\n",
            self.scenario,
            self.vary,
            self.replications,
            self.seed,
            self.seed + self.replications as u64 - 1
        ));
        let slos: Vec<&str> = self.slos.iter().map(|x| x.text.as_str()).collect();
        s.push_str(&format!("  SLOs: {}\n", slos.join(", ")));
        for e in &self.evaluations {
            let parts: Vec<String> = e
                .slos
                .iter()
                .map(|r| {
                    format!(
                        "{} mean {:.6} [{:.6}, {:.6}]",
                        r.slo, r.mean, r.ci_low, r.ci_high
                    )
                })
                .collect();
            s.push_str(&format!(
                "  {:>14}  {}  {}\n",
                e.setting,
                if e.pass { "pass" } else { "FAIL" },
                parts.join("; ")
            ));
        }
        match self.capacity {
            Some(_) => s.push_str(&format!(
                "highest passing {} = {} (final interval [{}, {}]; crossing ≈ {}, 95 % CI [{}, {}])\n",
                self.vary,
                self.capacity_setting.as_deref().unwrap_or("?"),
                fmt(self.interval[0]),
                fmt(self.interval[1]),
                fmt(self.crossing_estimate),
                fmt(self.crossing_ci[0]),
                fmt(self.crossing_ci[1]),
            )),
            None => s.push_str("no value tried meets every SLO\n"),
        }
        if let Some(b) = &self.broke_first {
            s.push_str(&format!(
                "broke first: {} (first failed at {}: mean {:.6} vs {})\n",
                b.slo,
                fmt(Some(b.first_failed_at)),
                b.mean_there,
                b.threshold
            ));
            for c in &b.causes {
                s.push_str(&format!("  {c}\n"));
            }
        }
        if let Some(n) = &self.note {
            s.push_str(&format!("note: {n}\n"));
        }
        s
    }

    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("report serialises");
        s.push('\n');
        s
    }
}

/// Writes `capacity.json` into `dir`.
pub fn write_report(dir: &Path, r: &CapacityReport) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    crate::output::write_atomic(&dir.join("capacity.json"), &r.to_json())
}
