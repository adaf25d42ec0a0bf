//! Capacity search: the highest value of a setting (`load.rate`, `load.users`,
//! `http_sys.queue_length`, any numeric setting) at which every SLO still holds, or with
//! `--lowest` ([`CapacityConfig::lowest`]) the lowest: the fewest servers or threads.
//!
//! Each evaluation runs R replications (seeds `seed + r`, common random numbers across
//! values) and a value *passes* when every SLO holds for the mean over replications.
//!
//! Each SLO is taken to be monotone in the setting, but not always the same way: an
//! upper bound on a load-driven metric (`p99<500ms` against `load.rate`) holds at low
//! values, a lower bound (`throughput>500/s`) at high ones, and against a capacity
//! setting (`http_sys.queue_length`) `503_rate<1%` holds at high values. The values
//! where every SLO holds are then an interval, and the search finds both its ends:
//!
//! 1. Find a passing value: starting from `lo`, each failing SLO says which way to go
//!    (from a pass/fail change between values tried, else the trend of its mean, else
//!    its comparison: `<` down, `>` up). Only "down" failures: halve; only "up": try
//!    `hi`, then double; both: bisect between the highest value failing only "up" SLOs
//!    and the lowest value above it failing a "down" one, down to the tolerance. A
//!    direction that stops helping (an SLO's mean moves less than 1 % of its distance to
//!    the threshold over a halving or doubling: a saturated throughput, a latency at its
//!    floor) ends the search with a note instead of running ever larger loads.
//! 2. The upper edge (the capacity): double from the highest passing value while it
//!    passes, then bisect until the bracket is narrower than `tolerance` × its high end.
//! 3. The lower edge, when some SLO needs higher values: halve below the lowest passing
//!    value while it passes, then bisect between the highest failing value below it and
//!    it.
//!
//! The report gives the highest passing value, the final bracket, an interpolated
//! crossing, and a confidence interval of the crossing: from the highest value whose
//! every SLO holds even at the pessimistic end of its 95 % CI to the lowest value above
//! the capacity where some SLO fails even at the optimistic end of its CI; the lower
//! edge when there is one. It also names the SLO that broke first above the capacity
//! and what crossed: the failure outcome with the most requests and the queues or pools
//! whose peak reached their limit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use super::SweepError;
use super::metrics::{derived_names, metrics_of};
use super::run::{pool, probe_metrics, run_one};
use super::spec::{Quantity, round_sig};
use super::stats::{ci_low_clamped, mean_ci95};
use crate::scenario::Scenario;
use crate::scenario::load::{Seg, load_file, parse_path};

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
        let fraction = metric.ends_with("_rate") || metric.ends_with("failure_ratio");
        if q.unit.is_empty() && in_ms {
            return Err(format!(
                "SLO \"{s}\": a latency needs its unit: write e.g. \"{}<{}ms\" or \"{}<{}s\"",
                s[..i].trim(),
                q.value,
                s[..i].trim(),
                q.value
            ));
        }
        if q.unit.is_empty() && fraction && q.value > 1.0 {
            return Err(format!(
                "SLO \"{s}\": `{metric}` is a fraction of requests (0 to 1): write \"{}{}%\" for {} %, or a fraction like 0.001",
                &s[..s.len() - value.len()],
                q.value,
                q.value
            ));
        }
        let threshold = match q.unit.as_str() {
            "" | "/s" => q.value,
            "%" => q.value / 100.0,
            "ms" if in_ms => q.value,
            "s" if in_ms => q.value * 1000.0,
            u if !in_ms && matches!(u, "ms" | "s") && !metric.contains('.') => {
                // A time on a name that is no latency: most likely a misspelt one.
                let latencies = ["p50", "p95", "p99", "mean"];
                let raw = metric.trim_end_matches("_ms");
                let hint = crate::scenario::load::nearest(raw, latencies)
                    .map_or_else(String::new, |n| format!("did you mean `{n}`? "));
                return Err(format!(
                    "SLO \"{s}\": `{raw}` is not a latency metric, so \"{u}\" does not fit it. {hint}Latencies: p50, p95, p99, mean (ms), or a path under latency_ms of summary.json"
                ));
            }
            u => {
                return Err(format!(
                    "SLO \"{s}\": unit \"{u}\" does not fit `{metric}` (use %, ms or s for latencies, /s, or none)"
                ));
            }
        };
        if fraction && !(0.0..=1.0).contains(&threshold) {
            return Err(format!(
                "SLO \"{s}\": `{metric}` is a fraction of requests, from 0 to 100 %: a threshold of {} can never decide anything",
                q.value
            ));
        }
        let non_negative = fraction || in_ms || q.unit == "/s" || metric == "throughput";
        if non_negative && threshold < 0.0 {
            return Err(format!(
                "SLO \"{s}\": `{metric}` is never negative: a threshold below 0 can never decide anything"
            ));
        }
        if non_negative && threshold == 0.0 && op == Op::Lt {
            return Err(format!(
                "SLO \"{s}\": `{metric}` is never below 0, so this SLO always fails: write \"{}<=0{}\" for none at all",
                s[..i].trim(),
                q.unit
            ));
        }
        Ok(Slo {
            text: s.trim().to_string(),
            metric,
            op,
            threshold,
        })
    }

    /// A value of the SLO's metric as its SLO is written: in % when the threshold was
    /// given in %, else plainly.
    pub fn show(&self, x: f64) -> String {
        if self.text.trim_end().ends_with('%') {
            format!("{} %", round_sig(100.0 * x, 4))
        } else {
            format!("{}", round_sig(x, 6))
        }
    }

    /// How far the mean moved from `m0` to `m1` in the direction that helps the SLO hold
    /// (down for `<`, up for `>`); negative when it moved towards failing.
    fn improvement(&self, m0: f64, m1: f64) -> f64 {
        if matches!(self.op, Op::Lt | Op::Le) {
            m0 - m1
        } else {
            m1 - m0
        }
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
    /// Find the lowest value at which every SLO holds (the fewest servers, threads, …)
    /// instead of the highest (a load).
    pub lowest: bool,
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
    /// The lowest value tried above the capacity (above every value tried when none
    /// passed) at which this SLO failed.
    pub first_failed_at: f64,
    pub mean_there: f64,
    pub threshold: f64,
    /// What crossed there: failure outcomes by count, queues or pools at their limit.
    pub causes: Vec<String>,
}

/// The lower end of the values at which every SLO holds (when an SLO fails below it).
#[derive(Clone, Debug, Serialize)]
pub struct LowerEdge {
    /// The lowest value tried at which every SLO held.
    pub lowest_passing: f64,
    pub lowest_passing_setting: String,
    /// The highest value tried below it at which some SLO failed.
    pub highest_failing_below: f64,
    /// The SLOs that failed there.
    pub failing_there: Vec<String>,
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
    /// When some SLO needs a higher value (`throughput>…`) and failed below the lowest
    /// passing value: where every SLO starts to hold.
    pub lower_edge: Option<LowerEdge>,
    /// What was asked: "highest" (a capacity) or "lowest" (`--lowest`: the least of the
    /// setting that meets every SLO).
    pub goal: &'static str,
    /// The answer to it: the capacity, or the lowest passing value (null if none passed).
    pub answer: Option<f64>,
    pub answer_setting: Option<String>,
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
            let hint = match (s, segs.first()) {
                (Seg::Key(k), _) if crate::scenario::load::renamed(k).is_some() => {
                    let (new, how) = crate::scenario::load::renamed(k).expect("renamed");
                    format!("; `{k}` is now `{new}`, the name of the Windows setting it models ({how})")
                }
                (Seg::Key(k), Some(Seg::Key(f))) if k == "count" && f == "farm" => {
                    "; a group that lists its servers by `names` has no count: give it one, e.g. --set 'farm.servers[0]={ name = \"web\", count = 4 }'".into()
                }
                _ => " (see `w3sim show-defaults`)".into(),
            };
            bad(format!("the scenario has no setting `{path}`{hint}"))
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
                    ci_low: ci_low_clamped(&ci, &xs),
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

    /// Evaluates a value the search computed beyond the bracket (halving, doubling):
    /// `Ok(Err(message))` when the setting cannot take it (its own range ends there).
    fn try_eval(&mut self, v: f64) -> Result<Result<usize, String>, SweepError> {
        match self.eval(v) {
            Ok(i) => Ok(Ok(i)),
            Err(SweepError::BadInput(m)) => Ok(Err(m)),
            Err(e) => Err(e),
        }
    }

    fn evaluated(&self, v: f64) -> bool {
        self.evals.iter().any(|e| e.value == v)
    }

    /// Which way the varied setting must move for SLO `k` to hold, as a guess to search
    /// by: from a change of pass/fail between neighbouring values tried, else from the
    /// trend of its mean between the lowest and highest values tried, else from its
    /// comparison (`<` holds at low values of a load, `>` at high ones).
    fn direction(&self, k: usize) -> Dir {
        let (change, trend) = self.evidence(k);
        change.or(trend).unwrap_or(self.prior(k))
    }

    /// Whether SLO `k` surely needs higher values, enough to stop searching that way: a
    /// pass/fail change says so, or it is a `>` SLO (a throughput) whose mean does not
    /// fall as the setting grows. A `<` SLO whose mean merely drifts down (a p99 at low
    /// loads, within its noise) does not count.
    fn needs_more(&self, k: usize) -> bool {
        match self.evidence(k) {
            (Some(d), _) => d == Dir::Up,
            (None, trend) => self.prior(k) == Dir::Up && trend != Some(Dir::Down),
        }
    }

    fn prior(&self, k: usize) -> Dir {
        if matches!(self.cfg.slos[k].op, Op::Lt | Op::Le) {
            Dir::Down
        } else {
            Dir::Up
        }
    }

    /// The direction SLO `k` needs according to a pass/fail change between neighbouring
    /// values tried (if the changes agree), and according to the trend of its mean from
    /// the lowest to the highest value tried (if it moved).
    fn evidence(&self, k: usize) -> (Option<Dir>, Option<Dir>) {
        let below = matches!(self.cfg.slos[k].op, Op::Lt | Op::Le);
        let mut ev: Vec<&Evaluation> = self.evals.iter().collect();
        ev.sort_by(|a, b| a.value.total_cmp(&b.value));
        let (mut up, mut down) = (false, false);
        for w in ev.windows(2) {
            match (w[0].slos[k].holds, w[1].slos[k].holds) {
                (true, false) => down = true,
                (false, true) => up = true,
                _ => {}
            }
        }
        let change = (up != down).then_some(if up { Dir::Up } else { Dir::Down });
        let means: Vec<f64> = ev
            .iter()
            .map(|e| e.slos[k].mean)
            .filter(|m| m.is_finite())
            .collect();
        let trend = match (means.first(), means.last()) {
            (Some(a), Some(b)) if a != b => {
                Some(if (b > a) == below { Dir::Down } else { Dir::Up })
            }
            _ => None,
        };
        (change, trend)
    }

    /// The SLOs failing at evaluation `i` that need the setting to move `dir`.
    fn failing(&self, i: usize, dir: Dir, dirs: &[Dir]) -> Vec<&str> {
        self.evals[i]
            .slos
            .iter()
            .zip(dirs)
            .filter(|(r, d)| !r.holds && **d == dir)
            .map(|(r, _)| r.slo.as_str())
            .collect()
    }

    /// Whether the SLOs failing at evaluation `i` that need the setting to move `dir`
    /// stopped improving: from the nearest value tried on the other side of `i` to `i`,
    /// one of them moved towards its threshold by less than 1 % of the distance left.
    /// Then going further that way is hopeless (a throughput that saturates, a latency
    /// at its floor), and costly for a load. Says which SLO and how it moved.
    fn stalled(&self, i: usize, dir: Dir, dirs: &[Dir]) -> Option<String> {
        let e = &self.evals[i];
        let prev = self
            .evals
            .iter()
            .filter(|p| match dir {
                Dir::Up => p.value < e.value,
                Dir::Down => p.value > e.value,
            })
            .min_by(|a, b| {
                (a.value - e.value)
                    .abs()
                    .total_cmp(&(b.value - e.value).abs())
            })?;
        self.cfg.slos.iter().enumerate().find_map(|(k, slo)| {
            let (m0, m1) = (prev.slos[k].mean, e.slos[k].mean);
            if dirs[k] != dir || e.slos[k].holds || !m0.is_finite() || !m1.is_finite() {
                return None;
            }
            (slo.improvement(m0, m1) < 0.01 * (slo.threshold - m0).abs()).then(|| {
                format!(
                    "{} stopped improving: mean {} at {}, {} at {}",
                    slo.text,
                    round_sig(m0, 6),
                    prev.setting,
                    round_sig(m1, 6),
                    e.setting
                )
            })
        })
    }

    /// Whether doubling above the passing evaluation `p` can still find an upper edge:
    /// `None` while the system is not yet refusing or failing requests (1 % or more of
    /// them at `p` and at the passing value below it) or some SLO's mean moved towards
    /// its threshold between the two by at least 1 % of the distance it had left;
    /// otherwise what to tell the user (past its capacity and no SLO approaching:
    /// nothing bounds the setting).
    fn unbounded(&self, p: usize) -> Option<String> {
        let e = &self.evals[p];
        let prev = self
            .evals
            .iter()
            .filter(|q| q.pass && q.value < e.value)
            .max_by(|a, b| a.value.total_cmp(&b.value))?;
        // Only once the system is past its capacity (it fails requests at both values):
        // below it a latency creeps up slowly before it jumps.
        let overloaded = |q: &Evaluation| q.means.get("failure_rate").is_some_and(|&f| f >= 0.01);
        if !overloaded(prev) || !overloaded(e) {
            return None;
        }
        let mut moves = Vec::new();
        for (k, slo) in self.cfg.slos.iter().enumerate() {
            let (m0, m1) = (prev.slos[k].mean, e.slos[k].mean);
            if !m0.is_finite() || !m1.is_finite() {
                return None;
            }
            if -slo.improvement(m0, m1) >= 0.01 * (slo.threshold - m0).abs() {
                return None;
            }
            moves.push(format!(
                "{}: {} at {}, {} at {}",
                slo.text,
                slo.show(m0),
                prev.setting,
                slo.show(m1),
                e.setting
            ));
        }
        Some(format!(
            "the SLOs hold up to at least {} although requests fail there, and stopped moving towards their thresholds ({}): nothing bounds {} from above, so no upper edge was searched; an SLO that fails at high values (503_rate<…, failure_rate<…) would bound it",
            e.setting,
            moves.join("; "),
            self.cfg.vary
        ))
    }

    /// Index of the highest (or lowest) passing value tried.
    fn passing_end(&self, highest: bool) -> Option<usize> {
        let it = self.evals.iter().enumerate().filter(|(_, e)| e.pass);
        if highest {
            it.max_by(|a, b| a.1.value.total_cmp(&b.1.value))
                .map(|(i, _)| i)
        } else {
            it.min_by(|a, b| a.1.value.total_cmp(&b.1.value))
                .map(|(i, _)| i)
        }
    }

    /// Narrows the lower edge: between the lowest passing value and the highest failing
    /// value below it, if there is one.
    fn bisect_lower_edge(&mut self) -> Result<(), SweepError> {
        let Some(p) = self.passing_end(false) else {
            return Ok(());
        };
        let vp = self.evals[p].value;
        let fail_below = self
            .evals
            .iter()
            .filter(|e| !e.pass && e.value < vp)
            .map(|e| e.value)
            .reduce(f64::max);
        match fail_below {
            Some(f) => self.bisect(vp, f),
            None => Ok(()),
        }
    }

    /// Bisects between a passing value `pass` and a failing value `fail` (either order)
    /// until the bracket is narrower than the tolerance or the budget is spent.
    fn bisect(&mut self, mut pass: f64, mut fail: f64) -> Result<(), SweepError> {
        while (pass - fail).abs() > self.cfg.tolerance * pass.max(fail) && self.budget_left() {
            let (l, h) = (pass.min(fail), pass.max(fail));
            let mid = if self.unit.integer {
                ((l + h) / 2.0).floor()
            } else {
                round_sig((l + h) / 2.0, 12)
            };
            if mid <= l || mid >= h {
                break;
            }
            let i = self.eval(mid)?;
            if self.evals[i].pass {
                pass = mid;
            } else {
                fail = mid;
            }
        }
        Ok(())
    }
}

/// Which way the varied setting must move for an SLO that fails to hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    /// Lower values: the SLO breaks as the setting grows (`p99<500ms` against a load).
    Down,
    /// Higher values: the SLO needs enough of the setting (`throughput>500/s` against a
    /// load, `503_rate<1%` against a queue length).
    Up,
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
    let (names, _) = probe_metrics(&base)?;
    for s in &cfg.slos {
        if !names.contains(&s.metric) {
            let near = names
                .suggest(&s.metric)
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
    // Setting the varied key to its own value must load: if it does not, no value will
    // (e.g. `load.rate` under a `load.schedule`, which the schedule would override).
    let mut at_current = cfg.overrides.clone();
    at_current.push(format!(
        "{}={}",
        cfg.vary,
        current.with_value(current.value).literal
    ));
    if let Err(e) = load_file(&cfg.scenario, &at_current) {
        return Err(bad(format!("--vary {}: {e}", cfg.vary)));
    }
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
    let half = |x: f64| if integer { (x / 2.0).floor() } else { x / 2.0 };
    let double = |x: f64| if integer { (x * 2.0).ceil() } else { x * 2.0 };
    let join = |v: Vec<&str>| v.join(", ");
    if cfg.lowest {
        let note = search_lowest(&mut s, lo, hi, half, double)?;
        return Ok(report(cfg, &s, note));
    }
    // Phase 1: find a value at which every SLO holds. Each failing SLO says which way
    // to go; failures pointing both ways bound the search from both sides.
    s.eval(lo)?;
    while !s.evals.iter().any(|e| e.pass) {
        let dirs: Vec<Dir> = (0..cfg.slos.len()).map(|k| s.direction(k)).collect();
        let fails =
            |e: &Evaluation, d: Dir| e.slos.iter().zip(&dirs).any(|(r, x)| !r.holds && *x == d);
        // `too_low`: the highest value whose every failing SLO needs more; `too_high`:
        // the lowest value above it where some SLO needs less (a value failing both
        // ways counts as too high: an SLO that needs more can also fail past a load's
        // saturation, a throughput that falls as 503s rise).
        let too_low = s
            .evals
            .iter()
            .enumerate()
            .filter(|(_, e)| !fails(e, Dir::Down))
            .max_by(|a, b| a.1.value.total_cmp(&b.1.value))
            .map(|(i, _)| i);
        let floor = too_low.map_or(f64::NEG_INFINITY, |i| s.evals[i].value);
        let too_high = s
            .evals
            .iter()
            .enumerate()
            .filter(|(_, e)| e.value > floor && fails(e, Dir::Down))
            .min_by(|a, b| a.1.value.total_cmp(&b.1.value))
            .map(|(i, _)| i);
        let next = match (too_low, too_high) {
            (Some(a), Some(b)) => {
                let (va, vb) = (s.evals[a].value, s.evals[b].value);
                let mid = if integer {
                    ((va + vb) / 2.0).floor()
                } else {
                    round_sig((va + vb) / 2.0, 12)
                };
                if mid <= va || mid >= vb || vb - va <= cfg.tolerance * vb {
                    note = Some(format!(
                        "no value tried meets every SLO: up to {} {} fail(s) (need(s) more), from {} {} fail(s) (need(s) less)",
                        s.evals[a].setting,
                        join(s.failing(a, Dir::Up, &dirs)),
                        s.evals[b].setting,
                        join(s.failing(b, Dir::Down, &dirs)),
                    ));
                    break;
                }
                mid
            }
            (None, Some(b)) => {
                if let Some(why) = s.stalled(b, Dir::Down, &dirs) {
                    note = Some(format!(
                        "the SLOs fail even at {}, the lowest value tried, and lower values do not help ({why}); if more of the setting helps (servers, threads), search with --lowest",
                        s.evals[b].setting
                    ));
                    break;
                }
                let next = half(s.evals[b].value);
                if next <= 0.0 {
                    // Nothing lower to try (a whole number at 1): the bracket's top tells
                    // whether the SLOs need more instead (servers, threads, queueLength).
                    if hi > s.evals[b].value && !s.evaluated(hi) {
                        hi
                    } else {
                        note = Some(format!(
                            "the SLOs fail even at {}, the lowest value tried; if more of the setting helps (servers, threads), search with --lowest",
                            s.evals[b].setting
                        ));
                        break;
                    }
                } else {
                    next
                }
            }
            (Some(a), None) => {
                let hi_untried = hi > s.evals[a].value && !s.evaluated(hi);
                if let Some(why) = s.stalled(a, Dir::Up, &dirs).filter(|_| !hi_untried) {
                    note = Some(format!(
                        "the SLOs fail even at {}, the highest value tried, and higher values do not help ({why})",
                        s.evals[a].setting
                    ));
                    break;
                }
                let va = s.evals[a].value;
                if hi > va && !s.evaluated(hi) {
                    hi
                } else {
                    double(va)
                }
            }
            (None, None) => break, // unreachable: every value tried fails some SLO
        };
        if !s.budget_left() {
            note = Some(format!(
                "no value tried meets every SLO ({} evaluations, the --max-evaluations budget)",
                s.evals.len()
            ));
            break;
        }
        let tried =
            |f: fn(f64, f64) -> f64, init: f64| s.evals.iter().map(|e| e.value).fold(init, f);
        let (min_tried, max_tried) = (tried(f64::min, f64::INFINITY), tried(f64::max, 0.0));
        if next == hi && !s.evaluated(hi) {
            s.eval(hi)?;
        } else if let Err(m) = s.try_eval(next)? {
            let at = |v: f64| {
                s.evals
                    .iter()
                    .find(|e| e.value == v)
                    .map_or(String::new(), |e| e.setting.clone())
            };
            note = Some(if next > max_tried {
                format!(
                    "the SLOs fail even at {}, the highest valid value tried ({m})",
                    at(max_tried)
                )
            } else if next < min_tried {
                format!(
                    "the SLOs fail even at {}, the lowest valid value tried ({m})",
                    at(min_tried)
                )
            } else {
                format!("no value tried meets every SLO ({m})")
            });
            break;
        }
    }
    // Phase 2: the upper edge: above the highest passing value, double until a value
    // fails, then bisect.
    while let Some(p) = s.passing_end(true) {
        let vp = s.evals[p].value;
        let fail_above = s
            .evals
            .iter()
            .filter(|e| !e.pass && e.value > vp)
            .map(|e| e.value)
            .reduce(f64::min);
        if let Some(f) = fail_above {
            s.bisect(vp, f)?;
            break;
        }
        if (0..cfg.slos.len()).all(|k| s.needs_more(k)) {
            // Every SLO asks for more of the setting: nothing bounds it from above, and
            // doubling a load up to the setting's range would cost without end.
            note = Some(format!(
                "every SLO needs a higher {} ({}): they hold from the lowest passing value up to at least {}, the highest value tried; no upper edge was searched (were {} a load, an SLO that fails at high values, e.g. p99<…, would bound it)",
                cfg.vary,
                cfg.slos
                    .iter()
                    .map(|x| x.text.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                s.evals[p].setting,
                cfg.vary,
            ));
            break;
        }
        if !s.budget_left() {
            note = Some(format!(
                "the SLOs still hold at {}: the capacity is higher",
                s.evals[p].setting
            ));
            break;
        }
        if vp >= hi {
            if let Some(m) = s.unbounded(p) {
                // Doubling on would cost more each time and never fail (a p99 of the
                // requests served stays bounded while the rest are refused, say).
                note = Some(m);
                break;
            }
        }
        if hi > vp && !s.evaluated(hi) {
            s.eval(hi)?;
        } else if let Err(m) = s.try_eval(double(vp))? {
            // The setting's own range ends before the SLOs break (a rate above one per
            // nanosecond, a queueLength above 65535): report what was found.
            note = Some(format!(
                "the SLOs still hold at {}, the highest valid value tried ({m})",
                s.evals[p].setting
            ));
            break;
        }
    }
    // Phase 3: the lower edge, when some SLO needs a higher value (`throughput>…`):
    // halve below the lowest passing value while it passes, then bisect between the
    // highest failing value below the lowest passing one and it.
    while let Some(p) = s.passing_end(false) {
        let vp = s.evals[p].value;
        let failed_below = s.evals.iter().any(|e| !e.pass && e.value < vp);
        let any_up = (0..cfg.slos.len()).any(|k| s.needs_more(k));
        let next = half(vp);
        if failed_below || !any_up || next <= 0.0 || !s.budget_left() {
            break;
        }
        if s.try_eval(next)?.is_err() {
            break;
        }
    }
    s.bisect_lower_edge()?;
    Ok(report(cfg, &s, note))
}

/// `--lowest`: up from `lo` (then `hi`, then doubling) to a passing value, or down from a
/// passing `lo` while it passes; then a bisection down to the lowest passing value.
fn search_lowest(
    s: &mut Search<'_>,
    lo: f64,
    hi: f64,
    half: impl Fn(f64) -> f64,
    double: impl Fn(f64) -> f64,
) -> Result<Option<String>, SweepError> {
    let first = s.eval(lo)?;
    let mut note = None;
    if s.evals[first].pass {
        // Lower values may pass too: halve while they do (not below a thousandth of `lo`).
        let mut v = lo;
        loop {
            let next = half(v);
            if next <= 0.0 || next < lo / 1024.0 || !s.budget_left() {
                if next <= 0.0 || next < lo / 1024.0 {
                    note = Some(format!(
                        "every SLO holds at {}, the lowest value tried",
                        s.evals[first].setting
                    ));
                }
                break;
            }
            match s.try_eval(next)? {
                Ok(i) if s.evals[i].pass => v = next,
                Ok(_) => break,
                Err(m) => {
                    note = Some(format!(
                        "every SLO holds at {}, and no lower value is valid ({m})",
                        s.evals[s.passing_end(false).expect("a pass")].setting
                    ));
                    break;
                }
            }
        }
    } else {
        let mut v = hi.max(double(lo));
        loop {
            if !s.budget_left() {
                note = Some(format!(
                    "no value tried meets every SLO ({} evaluations, the --max-evaluations budget)",
                    s.evals.len()
                ));
                break;
            }
            match s.try_eval(v)? {
                Ok(i) if s.evals[i].pass => break,
                Ok(_) => v = double(v),
                Err(m) => {
                    note = Some(format!(
                        "the SLOs fail even at the highest valid value tried ({m})"
                    ));
                    break;
                }
            }
        }
    }
    s.bisect_lower_edge()?;
    Ok(note)
}

fn report(cfg: &CapacityConfig, s: &Search<'_>, note: Option<String>) -> CapacityReport {
    let ev = &s.evals;
    // With `--lowest` no upper edge is searched: no capacity, crossing or breaking SLO.
    let lo_e = s.passing_end(true).map(|i| &ev[i]).filter(|_| !cfg.lowest);
    // Values above the capacity (every value tried when none passed): where SLOs broke.
    let above = |e: &&Evaluation| lo_e.is_none_or(|l| e.value > l.value);
    let hi_e = lo_e.and_then(|_| {
        ev.iter()
            .filter(above)
            .filter(|e| !e.pass)
            .min_by(|a, b| a.value.total_cmp(&b.value))
    });
    let lower_edge = s.passing_end(false).and_then(|p| {
        let lp = &ev[p];
        let f = ev
            .iter()
            .filter(|e| !e.pass && e.value < lp.value)
            .max_by(|a, b| a.value.total_cmp(&b.value))?;
        Some(LowerEdge {
            lowest_passing: lp.value,
            lowest_passing_setting: lp.setting.clone(),
            highest_failing_below: f.value,
            failing_there: f
                .slos
                .iter()
                .filter(|r| !r.holds)
                .map(|r| r.slo.clone())
                .collect(),
        })
    });
    // Which SLO broke first: the lowest value above the capacity at which it failed;
    // ties by relative excess.
    let mut broke: Option<(usize, f64, f64)> = None;
    for (k, slo) in cfg.slos.iter().enumerate() {
        let first = ev
            .iter()
            .filter(above)
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
    let broke = broke.filter(|_| !cfg.lowest);
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
        .reduce(f64::max);
    let ci_hi = ev
        .iter()
        .filter(above)
        .filter(|e| sure_fail(e))
        .map(|e| e.value)
        .reduce(f64::min);
    let (ci_lo, ci_hi) = if cfg.lowest {
        (None, None)
    } else {
        (ci_lo, ci_hi)
    };
    let lowest_pass = s.passing_end(false).map(|i| &ev[i]);
    let answer_e = if cfg.lowest { lowest_pass } else { lo_e };
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
        lower_edge,
        goal: if cfg.lowest { "lowest" } else { "highest" },
        answer: answer_e.map(|e| e.value),
        answer_setting: answer_e.map(|e| e.setting.clone()),
        note,
        evaluations,
    }
}

/// Processor utilisation (mean over replications, % of all processors) from which a
/// failing value is put down to the processors.
const CPU_SATURATED_PCT: f64 = 97.0;

/// What crossed at a failing value: failure outcomes by count (per run, and per arrival),
/// saturated processors, then queues and pools whose mean peak reached their limit.
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
    // Processors busy all the time: whatever else reached its limit (the pool's
    // threads, say) is waiting for them, and raising it will not help.
    let cpu = means.get("cpu_utilization_pct").copied().unwrap_or(0.0);
    let saturated = cpu >= CPU_SATURATED_PCT;
    if saturated {
        out.push(format!(
            "the processors were saturated ({cpu:.1} % busy over the measured window): the limit is CPU; \
             more threads or longer queues will not raise it"
        ));
    }
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
                    "{g} reached its limit {limit} (time-average {mean:.2}){}",
                    if saturated && g.starts_with("thread_pool.") {
                        ": its threads were waiting for processors"
                    } else {
                        ""
                    }
                ));
            }
        }
    }
    out
}

impl CapacityReport {
    /// A human report.
    /// The answer in one line (`capacity -q`): the highest passing value, or the lowest
    /// when only a lower edge was searched (every SLO needs more of the setting).
    pub fn answer(&self) -> &str {
        match (self.goal, &self.lower_edge, self.interval[1]) {
            ("highest", Some(l), None) => &l.lowest_passing_setting,
            _ => self
                .answer_setting
                .as_deref()
                .unwrap_or("no value meets every SLO"),
        }
    }

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
        // Values as their SLO is written (in % for an SLO in %).
        let show = |slo: &str, x: f64| {
            self.slos
                .iter()
                .find(|o| o.text == slo)
                .map_or_else(|| format!("{x:.6}"), |o| o.show(x))
        };
        for e in &self.evaluations {
            let parts: Vec<String> = e
                .slos
                .iter()
                .map(|r| {
                    format!(
                        "{} mean {} [{}, {}]",
                        r.slo,
                        show(&r.slo, r.mean),
                        show(&r.slo, r.ci_low),
                        show(&r.slo, r.ci_high)
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
        let lower = self.lower_edge.as_ref().map(|l| {
            format!(
                "lowest passing {} = {} (final interval [{}, {}]; failing below: {})\n",
                self.vary,
                l.lowest_passing_setting,
                fmt(Some(l.highest_failing_below)),
                fmt(Some(l.lowest_passing)),
                l.failing_there.join(", ")
            )
        });
        match self.capacity {
            _ if self.goal == "lowest" => match (&lower, &self.answer_setting) {
                (Some(l), _) => s.push_str(l),
                (None, Some(a)) => s.push_str(&format!(
                    "lowest passing {} = {a} (no value tried below it fails)\n",
                    self.vary
                )),
                (None, None) => s.push_str("no value tried meets every SLO\n"),
            },
            // Only a lower edge (every SLO needs more: servers, threads): it is the answer.
            Some(_) if self.interval[1].is_none() && lower.is_some() => {
                s.push_str(lower.as_deref().unwrap_or_default());
                s.push_str(&format!(
                    "every SLO holds from there up to at least {} = {}, the highest value tried\n",
                    self.vary,
                    self.capacity_setting.as_deref().unwrap_or("?"),
                ));
            }
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
        if let Some(l) = lower.filter(|_| {
            self.goal != "lowest" && (self.interval[1].is_some() || self.capacity.is_none())
        }) {
            s.push_str(&l);
        }
        if let Some(b) = &self.broke_first {
            s.push_str(&format!(
                "broke first: {} (first failed at {}: mean {} vs {})\n",
                b.slo,
                fmt(Some(b.first_failed_at)),
                show(&b.slo, b.mean_there),
                show(&b.slo, b.threshold)
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
