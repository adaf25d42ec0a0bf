//! Running a sweep: every point × replication in parallel on a dedicated rayon pool,
//! `runs.csv` streamed as runs finish and rewritten in canonical order at the end,
//! `points.csv` (mean and 95 % CI per point) and `sweep.json`.
//!
//! Determinism: a run depends only on (point, seed), replication r runs with seed
//! `seed + r`, precision targets are decided in rounds from finished results only, and
//! the final files are written in canonical order, so `--jobs 1`, `--jobs N`, a
//! resumed sweep and merged shards all give byte-identical files.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::IsTerminal;
use std::path::Path;
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;

use super::SweepError;
use super::metrics::{MetricCatalogue, column_order, fmt_num, metrics_of};
use super::spec::{Manifest, Precision, PrecisionShortfall, Sweep};
use super::stats::{ci_low_clamped, mean_ci95, mser5};
use crate::output::{MemorySink, NullSink, write_atomic};
use crate::scenario::Scenario;
use crate::scenario::units::Duration;

/// `--shard K/N`: the K-th (0-based) of N slices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("--shard expects K/N with 0 ≤ K < N, e.g. 0/4 (got \"{s}\")");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = k.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// How a sweep runs (none of this changes its results).
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Worker threads (0: every logical processor).
    pub jobs: usize,
    /// Skip (point, replication) pairs already in `runs.csv`.
    pub resume: bool,
    pub shard: Option<Shard>,
    /// No progress bar.
    pub quiet: bool,
    /// Start at most this many new runs, then stop as if interrupted (tests).
    pub stop_after: Option<usize>,
}

/// One finished run: a row of `runs.csv`.
#[derive(Clone, Debug, PartialEq)]
pub struct RunRecord {
    pub point: usize,
    pub replication: u32,
    pub seed: u64,
    /// Warm-up removed before statistics, seconds (the scenario's, or MSER-5's cut).
    pub warmup_s: f64,
    pub metrics: BTreeMap<String, f64>,
}

/// Finished runs by (point, replication).
pub type Records = BTreeMap<(usize, u32), RunRecord>;

/// How a sweep ended.
#[derive(Clone, Debug, PartialEq)]
pub enum SweepStatus {
    /// Every run of the sweep (or of the shard) is in runs.csv. `precision_not_met`: the
    /// points (of the shard) that stopped at `max_replications` short of the precision
    /// target (empty without one).
    Complete {
        runs: usize,
        new_runs: usize,
        precision_not_met: Vec<PrecisionShortfall>,
    },
    /// Stopped by `stop_after` before the end; `--resume` goes on.
    Stopped { runs: usize },
}

/// Runs one replication of a point. With `mser_column`, the run is first made without
/// warm-up, keeping its time series; MSER-5 on that column gives the truncation time,
/// and the run is made again (runs are deterministic) with `warmup` set to it, so every
/// statistic of the summary excludes the truncated part. Returns (warm-up in s, summary).
pub fn run_one(
    scn: &Scenario,
    seed: u64,
    mser_column: Option<&str>,
) -> Result<(f64, crate::Summary), SweepError> {
    let mut s = scn.clone();
    s.seed = seed;
    let Some(col) = mser_column else {
        let sum = crate::run(&s, &mut NullSink)?;
        return Ok((s.warmup.as_secs_f64(), sum));
    };
    s.warmup = Duration::ZERO;
    let mut sink = MemorySink::default();
    let first = crate::run(&s, &mut sink)?;
    let values = sink
        .column(col)
        .ok_or_else(|| SweepError::BadInput(format!("no time-series column `{col}`")))?;
    let times = sink.column("time_s").unwrap_or_default();
    let cut = mser5(&values);
    if cut == 0 || cut > times.len() {
        return Ok((0.0, first));
    }
    let t = times[cut - 1];
    s.warmup = Duration((t * 1e9).round() as u64);
    if s.warmup >= s.duration {
        return Ok((0.0, first));
    }
    let second = crate::run(&s, &mut NullSink)?;
    Ok((t, second))
}

/// The summary and the time-series columns of a run of one sample interval of a
/// scenario (used to check a sweep's metrics and an SLO's before running: see
/// [`MetricCatalogue`]).
pub fn probe(scn: &Scenario) -> Result<(crate::Summary, Vec<String>), SweepError> {
    let mut s = scn.clone();
    s.warmup = Duration::ZERO;
    s.duration = Duration(s.sample_interval.0.max(1_000_000));
    let mut sink = MemorySink::default();
    let sum = crate::run(&s, &mut sink)?;
    Ok((sum, sink.columns))
}

/// The metrics a scenario's runs may have (see [`MetricCatalogue`]) and its time-series
/// columns.
pub fn probe_metrics(scn: &Scenario) -> Result<(MetricCatalogue, Vec<String>), SweepError> {
    let (sum, columns) = probe(scn)?;
    Ok((MetricCatalogue::new(&sum), columns))
}

const FIXED: &[&str] = &["point", "replication"];

fn header(m: &Manifest, cols: &[String]) -> Vec<String> {
    let mut h: Vec<String> = FIXED.iter().map(|s| s.to_string()).collect();
    h.extend(m.axes.iter().cloned());
    h.push("seed".into());
    h.push("warmup_s".into());
    h.extend(cols.iter().cloned());
    h
}

fn row(m: &Manifest, cols: &[String], r: &RunRecord) -> Vec<String> {
    let mut v = vec![r.point.to_string(), r.replication.to_string()];
    v.extend(m.points[r.point].values.iter().cloned());
    v.push(r.seed.to_string());
    v.push(fmt_num(r.warmup_s));
    v.extend(
        cols.iter()
            .map(|c| r.metrics.get(c).map_or(String::new(), |x| fmt_num(*x))),
    );
    v
}

fn csv_text(rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.write_record(&r).expect("writing CSV to memory");
    }
    String::from_utf8(w.into_inner().expect("flush to memory")).expect("UTF-8 CSV")
}

/// Canonical metric columns of a set of records: the union of their metrics.
pub fn record_columns<'a>(records: impl IntoIterator<Item = &'a RunRecord>) -> Vec<String> {
    let mut names = BTreeSet::new();
    for r in records {
        names.extend(r.metrics.keys().cloned());
    }
    column_order(&names)
}

/// `runs.csv` in canonical order (point, then replication).
pub fn runs_csv(m: &Manifest, records: &Records) -> String {
    let cols = record_columns(records.values());
    csv_text(std::iter::once(header(m, &cols)).chain(records.values().map(|r| row(m, &cols, r))))
}

/// `points.csv`: per point, the axes' values, the number of replications, and for each
/// metric of the manifest its mean and 95 % Student-t CI over the replications (CI
/// bounds empty with a single replication).
pub fn points_csv(m: &Manifest, records: &Records) -> String {
    let mut h: Vec<String> = vec!["point".into()];
    h.extend(m.axes.iter().cloned());
    h.push("replications".into());
    if m.precision.is_some() {
        h.push("precision_met".into());
        h.push("relative_half_width".into());
    }
    for k in &m.metrics {
        for s in ["mean", "ci_low", "ci_high"] {
            h.push(format!("{k}_{s}"));
        }
    }
    let mut rows = vec![h];
    for p in &m.points {
        let recs: Vec<&RunRecord> = records
            .range((p.point, 0)..=(p.point, u32::MAX))
            .map(|(_, r)| r)
            .collect();
        let mut v = vec![p.point.to_string()];
        v.extend(p.values.iter().cloned());
        v.push(recs.len().to_string());
        if let Some(p) = &m.precision {
            let (met, rel) = precision_of(p, &recs);
            v.push(met.to_string());
            v.push(rel.map_or(String::new(), fmt_num));
        }
        for k in &m.metrics {
            let xs: Vec<f64> = recs
                .iter()
                .map(|r| r.metrics.get(k).copied().unwrap_or(f64::NAN))
                .collect();
            let ci = mean_ci95(&xs);
            v.push(fmt_num(ci.mean));
            v.push(fmt_num(ci_low_clamped(&ci, &xs)));
            v.push(fmt_num(ci.high()));
        }
        rows.push(v);
    }
    csv_text(rows)
}

/// Whether a point's replications meet the precision target (the 95 % half-width of
/// its metric within `relative_half_width` × |mean|, as [`next_replications`] decides),
/// and the relative half-width they reach (None: fewer than two values, or a mean of 0
/// with a non-zero half-width).
pub fn precision_of(p: &Precision, recs: &[&RunRecord]) -> (bool, Option<f64>) {
    let xs: Vec<f64> = recs
        .iter()
        .map(|r| r.metrics.get(&p.metric).copied().unwrap_or(f64::NAN))
        .collect();
    let ci = mean_ci95(&xs);
    if ci.n < 2 || !ci.half_width.is_finite() {
        return (false, None);
    }
    let met = ci.half_width <= p.relative_half_width * ci.mean.abs();
    let rel = if ci.half_width == 0.0 {
        Some(0.0)
    } else if ci.mean == 0.0 {
        None
    } else {
        Some(ci.half_width / ci.mean.abs())
    };
    (met, rel)
}

/// The points (of `points`) whose replications do not meet the precision target: they
/// stopped at `max_replications`. Empty without a target.
pub fn precision_shortfalls(
    m: &Manifest,
    records: &Records,
    points: impl IntoIterator<Item = usize>,
) -> Vec<PrecisionShortfall> {
    let Some(p) = &m.precision else {
        return Vec::new();
    };
    points
        .into_iter()
        .filter_map(|pt| {
            let recs: Vec<&RunRecord> = records
                .range((pt, 0)..=(pt, u32::MAX))
                .map(|(_, r)| r)
                .collect();
            let (met, rel) = precision_of(p, &recs);
            (!met).then(|| PrecisionShortfall {
                point: pt,
                values: m.points[pt].values.clone(),
                replications: recs.len() as u32,
                relative_half_width: rel,
            })
        })
        .collect()
}

/// `sweep.json` of a complete sweep: the manifest, with its precision target's results.
pub fn final_manifest_json(m: &Manifest, records: &Records) -> String {
    let mut f = m.plan_only();
    if m.precision.is_some() {
        f.precision_not_met = Some(precision_shortfalls(m, records, 0..m.points.len()));
    }
    f.to_json()
}

/// Reads `runs.csv`. Rows that are incomplete (a sweep killed while writing) or do
/// not belong to the manifest's points are skipped. A row is finished only once its
/// newline is written: whatever follows the last newline (a row cut anywhere, even in
/// its last field, `…,4,40` for `…,4,4000`) is dropped.
pub fn read_runs(path: &Path, m: &Manifest) -> Result<Records, SweepError> {
    let bytes = std::fs::read(path)
        .map_err(|e| SweepError::BadInput(format!("cannot read {}: {e}", path.display())))?;
    let finished = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(i) => &bytes[..=i],
        None => &[][..],
    };
    if finished.is_empty() {
        return Ok(Records::new());
    }
    let mut rd = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(finished);
    let hdr: Vec<String> = rd
        .headers()
        .map_err(|e| SweepError::BadInput(format!("{}: {e}", path.display())))?
        .iter()
        .map(str::to_string)
        .collect();
    let fixed = header(m, &[]);
    if hdr.len() < fixed.len() || hdr[..fixed.len()] != fixed[..] {
        return Err(SweepError::BadInput(format!(
            "{}: its columns ({}) are not those of this sweep ({})",
            path.display(),
            hdr.iter()
                .take(fixed.len())
                .cloned()
                .collect::<Vec<_>>()
                .join(","),
            fixed.join(",")
        )));
    }
    let nf = fixed.len();
    // The derived metrics are in every run's row: a header without one of them was edited.
    let missing = (hdr.len() > nf)
        .then(|| super::metrics::derived_names().find(|d| !hdr[nf..].iter().any(|h| h == d)))
        .flatten();
    if let Some(missing) = missing {
        return Err(SweepError::BadInput(format!(
            "{}: its header has no `{missing}` column, which every run writes: was the file edited? Restore it, or use a new --out",
            path.display()
        )));
    }
    let mut out = Records::new();
    'rows: for rec in rd.records() {
        let Ok(rec) = rec else { continue };
        if rec.len() != hdr.len() {
            continue;
        }
        let (Ok(point), Ok(replication), Ok(seed)) = (
            rec[0].parse::<usize>(),
            rec[1].parse::<u32>(),
            rec[nf - 2].parse::<u64>(),
        ) else {
            continue;
        };
        let Some(mp) = m.points.get(point) else {
            continue;
        };
        if (0..m.axes.len()).any(|i| rec[2 + i] != mp.values[i]) || seed != m.seed_of(replication) {
            continue;
        }
        let warmup_s = rec[nf - 1].parse::<f64>().unwrap_or(f64::NAN);
        let mut metrics = BTreeMap::new();
        for (i, name) in hdr.iter().enumerate().skip(nf) {
            match rec[i].parse::<f64>() {
                Ok(x) => {
                    metrics.insert(name.clone(), x);
                }
                // An empty cell is a metric this run does not have; anything else that
                // is not a number was not written by w3sim: the run is done again.
                Err(_) if !rec[i].is_empty() => continue 'rows,
                Err(_) => {}
            }
        }
        out.insert(
            (point, replication),
            RunRecord {
                point,
                replication,
                seed,
                warmup_s,
                metrics,
            },
        );
    }
    Ok(out)
}

/// The replication count a point needs after `n` replications with these values of the
/// precision metric, or None when the target is met (or max_replications reached).
/// Grows by the usual (half-width / target)² estimate, at least +1, at most doubling.
pub fn next_replications(n: u32, values: &[f64], p: &Precision) -> Option<u32> {
    if n >= p.max_replications {
        return None;
    }
    let ci = mean_ci95(values);
    if ci.n < 2 || ci.half_width.is_nan() {
        return if ci.n == 0 { None } else { Some(n + 1) };
    }
    let target = p.relative_half_width * ci.mean.abs();
    if ci.half_width <= target {
        return None;
    }
    let need = if target > 0.0 {
        (n as f64 * (ci.half_width / target).powi(2))
            .ceil()
            .min(1e9) as u32
    } else {
        2 * n
    };
    Some(need.clamp(n + 1, (2 * n).min(p.max_replications)))
}

/// The points a shard owns with a precision target (whole points, `point % N == K`), and
/// the pairs it owns with fixed replications (`(point × R + r) % N == K`).
fn owns_point(m: &Manifest, shard: Option<Shard>, point: usize) -> bool {
    !m.adaptive() || shard.is_none_or(|s| point % s.count == s.index)
}

fn owns_pair(m: &Manifest, shard: Option<Shard>, point: usize, r: u32) -> bool {
    match shard {
        None => true,
        Some(s) if m.adaptive() => point % s.count == s.index,
        Some(s) => (point * m.replications as usize + r as usize) % s.count == s.index,
    }
}

/// Decides which (point, replication) pairs a sweep (or shard) consists of, in rounds:
/// `exec` is given the pairs of each round that are not yet in `done` and must add them
/// (returns false to stop). With fixed replications there is one round.
pub fn plan(
    m: &Manifest,
    shard: Option<Shard>,
    done: &Mutex<Records>,
    mut exec: impl FnMut(Vec<(usize, u32)>, usize) -> Result<bool, SweepError>,
) -> Result<Option<BTreeSet<(usize, u32)>>, SweepError> {
    let points: Vec<usize> = (0..m.points.len())
        .filter(|&p| owns_point(m, shard, p))
        .collect();
    let mut target: BTreeMap<usize, u32> = points.iter().map(|&p| (p, m.replications)).collect();
    let mut open: BTreeSet<usize> = points.iter().copied().collect();
    loop {
        let required: BTreeSet<(usize, u32)> = target
            .iter()
            .flat_map(|(&p, &n)| (0..n).map(move |r| (p, r)))
            .filter(|&(p, r)| owns_pair(m, shard, p, r))
            .collect();
        let pending: Vec<(usize, u32)> = {
            let d = done.lock().expect("lock");
            required
                .iter()
                .filter(|k| !d.contains_key(k))
                .copied()
                .collect()
        };
        if !pending.is_empty() && !exec(pending, required.len())? {
            return Ok(None);
        }
        let Some(prec) = &m.precision else {
            return Ok(Some(required));
        };
        let d = done.lock().expect("lock");
        let mut changed = false;
        for p in open.clone() {
            let n = target[&p];
            let xs: Vec<f64> = (0..n)
                .map(|r| {
                    d.get(&(p, r))
                        .and_then(|x| x.metrics.get(&prec.metric).copied())
                        .unwrap_or(f64::NAN)
                })
                .collect();
            match next_replications(n, &xs, prec) {
                Some(k) => {
                    target.insert(p, k);
                    changed = true;
                }
                None => {
                    open.remove(&p);
                }
            }
        }
        if !changed {
            return Ok(Some(required));
        }
    }
}

struct Appender {
    path: std::path::PathBuf,
    cols: Vec<String>,
    w: csv::Writer<File>,
}

impl Appender {
    /// Rewrites the file with `records` (atomically), then opens it for appending.
    fn create(
        path: &Path,
        m: &Manifest,
        cols: Vec<String>,
        records: &Records,
    ) -> Result<Self, SweepError> {
        let text = csv_text(
            std::iter::once(header(m, &cols)).chain(records.values().map(|r| row(m, &cols, r))),
        );
        write_atomic(path, &text)?;
        let f = OpenOptions::new().append(true).open(path)?;
        Ok(Appender {
            path: path.to_path_buf(),
            cols,
            w: csv::Writer::from_writer(f),
        })
    }

    fn append(&mut self, m: &Manifest, r: &RunRecord, all: &Records) -> Result<(), SweepError> {
        if r.metrics.keys().any(|k| !self.cols.contains(k)) {
            // A metric no earlier run had (a new outcome name): widen the header.
            let mut names: BTreeSet<String> = self.cols.iter().cloned().collect();
            names.extend(r.metrics.keys().cloned());
            *self = Appender::create(&self.path, m, column_order(&names), all)?;
            return Ok(());
        }
        self.w.write_record(row(m, &self.cols, r)).map_err(|e| {
            SweepError::Internal(format!("cannot append to {}: {e}", self.path.display()))
        })?;
        self.w.flush()?;
        Ok(())
    }
}

fn progress_bar(quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    pb.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] {pos}/{len} runs, {per_sec}, ETA {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    pb
}

/// Number of worker threads for `jobs` (0: every logical processor).
pub fn effective_jobs(jobs: usize) -> usize {
    if jobs > 0 {
        jobs
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// A rayon pool of `jobs` threads.
pub fn pool(jobs: usize) -> Result<rayon::ThreadPool, SweepError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(effective_jobs(jobs))
        .thread_name(|i| format!("w3sim-sweep-{i}"))
        .build()
        .map_err(|e| SweepError::Internal(format!("cannot start the worker threads: {e}")))
}

const SHARD_JSON: &str = "shard.json";

/// `shard.json`: the slice a shard directory holds and its run count (the runs finished
/// so far while it runs, all of the slice's once it is complete).
fn shard_json(m: &Manifest, s: Shard, runs: usize) -> String {
    format!(
        "{{\n  \"shard\": \"{s}\",\n  \"slicing\": \"{}\",\n  \"runs\": {runs}\n}}\n",
        if m.adaptive() {
            "points: point % N == K"
        } else {
            "pairs: (point * replications + replication) % N == K"
        },
    )
}

/// The shard whose runs `out` holds, from its `shard.json` (None: there is none).
fn held_shard(out: &Path) -> Result<Option<Shard>, SweepError> {
    let p = out.join(SHARD_JSON);
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(SweepError::BadInput(format!(
                "cannot read {}: {e}",
                p.display()
            )));
        }
    };
    let bad = |why: String| {
        SweepError::BadInput(format!(
            "{}: {why}; it should name the shard (K/N) whose runs {} holds: repair it, or use a new --out",
            p.display(),
            out.display()
        ))
    };
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not a shard.json ({e})")))?;
    let k = v
        .get("shard")
        .and_then(|k| k.as_str())
        .ok_or_else(|| bad("no \"shard\" field".into()))?;
    k.parse::<Shard>()
        .map(Some)
        .map_err(|_| bad(format!("\"shard\": \"{k}\" is not K/N with 0 ≤ K < N")))
}

fn slice_name(s: Option<Shard>) -> String {
    s.map_or("the whole sweep (no --shard)".into(), |s| {
        format!("shard {s}")
    })
}

/// Called when `out`'s `runs.csv` holds runs: refuses a `--shard` (or its absence) other
/// than the shard its `shard.json` names, since the final `runs.csv` keeps only the asked
/// slice's runs and the others would be lost. Returns the shard `out` holds.
fn check_same_shard(out: &Path, asked: Option<Shard>) -> Result<Option<Shard>, SweepError> {
    let held = held_shard(out)?;
    if let Some(h) = held {
        if Some(h) != asked {
            return Err(SweepError::BadInput(format!(
                "{} holds the runs of shard {h} (see its {SHARD_JSON}), but {} was asked for: running it there would lose them. Go on with that directory with --shard {h}, or use a new --out",
                out.display(),
                slice_name(asked),
            )));
        }
    }
    Ok(held)
}

/// With `--resume`, refuses a `runs.csv` holding runs outside the asked shard (those of
/// a sweep run without `--shard`, or of a shard started before `shard.json` was written
/// at the start): they would be dropped from the final `runs.csv`.
fn check_runs_in_shard(
    runs_path: &Path,
    m: &Manifest,
    asked: Option<Shard>,
    held: Option<Shard>,
    existing: &Records,
) -> Result<(), SweepError> {
    let Some(&(p, r)) = existing.keys().find(|&&(p, r)| !owns_pair(m, asked, p, r)) else {
        return Ok(());
    };
    let whence = match held {
        None => {
            format!("its directory has no {SHARD_JSON}: they come from a sweep run without --shard")
        }
        Some(h) => format!("although its {SHARD_JSON} says shard {h}"),
    };
    Err(SweepError::BadInput(format!(
        "{} holds runs that are not in {}, e.g. point {p} replication {r} ({whence}): resuming it there would lose them. Resume with the --shard they were run with (none for the whole sweep), or use a new --out",
        runs_path.display(),
        slice_name(asked),
    )))
}

/// Runs a sweep into `out`: see the module documentation.
pub fn run_sweep(sweep: &Sweep, out: &Path, opts: &RunOptions) -> Result<SweepStatus, SweepError> {
    let m = &sweep.manifest;
    std::fs::create_dir_all(out)
        .map_err(|e| SweepError::Internal(format!("cannot create {}: {e}", out.display())))?;
    let runs_path = out.join("runs.csv");
    let json_path = out.join("sweep.json");
    let manifest_json = m.plan_only().to_json();
    let holds_runs = std::fs::metadata(&runs_path).is_ok_and(|md| md.len() > 0);
    let held = if holds_runs {
        check_same_shard(out, opts.shard)?
    } else {
        None
    };
    let existing = if opts.resume && runs_path.exists() {
        if holds_runs && !json_path.exists() {
            // It is written before the first run starts: without it nothing says that
            // these runs come from this sweep (the file may have been edited since).
            return Err(SweepError::BadInput(format!(
                "{} holds runs but {} is missing, so w3sim cannot tell whether they come from this sweep: restore it, or use a new --out",
                runs_path.display(),
                json_path.display()
            )));
        }
        if let Ok(old) = std::fs::read_to_string(&json_path) {
            // A complete sweep's sweep.json also holds its precision results.
            let same = serde_json::from_str::<Manifest>(&old)
                .is_ok_and(|o| o.plan_only().to_json() == manifest_json);
            if !same {
                return Err(SweepError::BadInput(format!(
                    "{} describes a different sweep (the sweep file, its base scenario or w3sim's version changed): resume into the directory it came from, or use a new --out",
                    json_path.display()
                )));
            }
        }
        let existing = read_runs(&runs_path, m)?;
        check_runs_in_shard(&runs_path, m, opts.shard, held, &existing)?;
        existing
    } else {
        if holds_runs {
            return Err(SweepError::BadInput(format!(
                "{} already exists: add --resume to go on with it, or choose another --out",
                runs_path.display()
            )));
        }
        Records::new()
    };
    write_atomic(&json_path, &manifest_json)?;
    // The directory says from the start which shard its runs belong to, so that a
    // stopped shard cannot be resumed as another one (or as the whole sweep).
    let shard_path = out.join(SHARD_JSON);
    match opts.shard {
        Some(s) => write_atomic(&shard_path, &shard_json(m, s, existing.len()))?,
        None => match std::fs::remove_file(&shard_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(SweepError::Internal(format!(
                    "cannot remove {}: {e}",
                    shard_path.display()
                )));
            }
            _ => {}
        },
    }
    let (probe_sum, _) = probe(&sweep.scenarios[0])?;
    let mut start_cols: BTreeSet<String> = metrics_of(&probe_sum).into_keys().collect();
    for r in existing.values() {
        start_cols.extend(r.metrics.keys().cloned());
    }
    let appender = Mutex::new(Appender::create(
        &runs_path,
        m,
        column_order(&start_cols),
        &existing,
    )?);
    let done = Mutex::new(existing);
    let pool = pool(opts.jobs)?;
    let pb = progress_bar(opts.quiet);
    let started = AtomicUsize::new(0);
    let new_runs = AtomicUsize::new(0);
    let failure: Mutex<Option<SweepError>> = Mutex::new(None);
    let mser = m.mser_column.as_deref();
    let required = plan(m, opts.shard, &done, |pending, total| {
        pb.set_length(total as u64);
        pb.set_position((total - pending.len()) as u64);
        pb.reset_eta();
        pool.install(|| {
            pending.par_iter().with_max_len(1).for_each(|&(p, r)| {
                if failure.lock().expect("lock").is_some() {
                    return;
                }
                if let Some(limit) = opts.stop_after {
                    if started.fetch_add(1, Ordering::SeqCst) >= limit {
                        return;
                    }
                }
                let res =
                    run_one(&sweep.scenarios[p], m.seed_of(r), mser).and_then(|(w, summary)| {
                        let rec = RunRecord {
                            point: p,
                            replication: r,
                            seed: m.seed_of(r),
                            warmup_s: w,
                            metrics: metrics_of(&summary),
                        };
                        let mut d = done.lock().expect("lock");
                        d.insert((p, r), rec.clone());
                        appender.lock().expect("lock").append(m, &rec, &d)
                    });
                match res {
                    Ok(()) => {
                        new_runs.fetch_add(1, Ordering::SeqCst);
                        pb.inc(1);
                    }
                    Err(e) => {
                        let e = match e {
                            SweepError::Internal(s) => SweepError::Internal(format!(
                                "point {p} ({}) replication {r} (seed {}): {s}",
                                m.points[p].overrides.join(" "),
                                m.seed_of(r)
                            )),
                            other => other,
                        };
                        failure.lock().expect("lock").get_or_insert(e);
                    }
                }
            })
        });
        if let Some(e) = failure.lock().expect("lock").take() {
            return Err(e);
        }
        Ok(opts
            .stop_after
            .is_none_or(|l| started.load(Ordering::SeqCst) <= l))
    })?;
    pb.finish_and_clear();
    drop(appender);
    let done = done.into_inner().expect("lock");
    let Some(required) = required else {
        return Ok(SweepStatus::Stopped { runs: done.len() });
    };
    let final_records: Records = done
        .into_iter()
        .filter(|(k, _)| required.contains(k))
        .collect();
    write_atomic(&runs_path, &runs_csv(m, &final_records))?;
    match opts.shard {
        None => {
            write_atomic(&out.join("points.csv"), &points_csv(m, &final_records))?;
            write_atomic(&json_path, &final_manifest_json(m, &final_records))?;
        }
        Some(s) => write_atomic(&shard_path, &shard_json(m, s, final_records.len()))?,
    }
    let owned = (0..m.points.len()).filter(|&p| owns_point(m, opts.shard, p));
    Ok(SweepStatus::Complete {
        runs: final_records.len(),
        new_runs: new_runs.into_inner(),
        precision_not_met: precision_shortfalls(m, &final_records, owned),
    })
}
