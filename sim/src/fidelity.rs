//! Fidelity against the real CLR: a run's thread-pool trajectory next to the
//! measurements in `experiments/clr-reference/data/` (`w3sim compare-clr`).

use std::path::Path;

use w3sim_models::clr_reference::{Trajectory, parse_csv};

use crate::output::MemorySink;

/// Time-series columns that make up a thread-pool trajectory.
pub const THREADS: &str = "System.Runtime\\ThreadPool Thread Count";
pub const PENDING: &str = "System.Runtime\\ThreadPool Queue Length";
pub const COMPLETED: &str = "w3sim\\ThreadPool Completed Work Items";

/// The trajectory of a run kept in memory.
pub fn from_sink(sink: &MemorySink) -> Option<Trajectory> {
    let mut t = Trajectory::default();
    let (ts, th, pe, co) = (
        sink.column("time_s")?,
        sink.column(THREADS)?,
        sink.column(PENDING)?,
        sink.column(COMPLETED)?,
    );
    for i in 0..ts.len() {
        t.push(ts[i], th[i], pe[i], co[i]);
    }
    Some(t)
}

/// The trajectory of a run directory's `timeseries.csv`.
pub fn from_run_dir(dir: &Path) -> Result<Trajectory, String> {
    let path = dir.join("timeseries.csv");
    let mut rdr = csv::Reader::from_path(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let headers = rdr
        .headers()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .clone();
    let idx = |name: &str| {
        headers.iter().position(|h| h == name).ok_or_else(|| {
            format!(
                "{}: no column `{name}` (is it a w3sim time series?)",
                path.display()
            )
        })
    };
    let (it, ith, ipe, ico) = (
        idx("time_s")?,
        idx(THREADS)?,
        idx(PENDING)?,
        idx(COMPLETED)?,
    );
    let mut t = Trajectory::default();
    for (line, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| format!("{}: {e}", path.display()))?;
        let num = |i: usize| -> Result<f64, String> {
            rec.get(i).and_then(|v| v.parse().ok()).ok_or_else(|| {
                format!(
                    "{}: row {}: not a number in column {i}",
                    path.display(),
                    line + 2
                )
            })
        };
        t.push(num(it)?, num(ith)?, num(ipe)?, num(ico)?);
    }
    Ok(t)
}

/// Reads a reference CSV (`t_s,threads,pending,completed`).
pub fn read_reference(path: &Path) -> Result<Trajectory, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_csv(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Value of a series at time `t` (the last sample at or before it).
pub fn value_at(tr: &Trajectory, t: f64, f: impl Fn(&Trajectory, usize) -> f64) -> Option<f64> {
    tr.index_at(t).map(|i| f(tr, i))
}

/// One row of the comparison: the references' band and mean, the simulation's value.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub t_s: f64,
    pub ref_threads_min: f64,
    pub ref_threads_max: f64,
    pub sim_threads: f64,
    pub ref_pending_mean: f64,
    pub sim_pending: f64,
}

impl Row {
    /// Thread-count error outside the references' band (0 inside it).
    pub fn threads_outside_band(&self) -> f64 {
        if self.sim_threads < self.ref_threads_min {
            self.ref_threads_min - self.sim_threads
        } else if self.sim_threads > self.ref_threads_max {
            self.sim_threads - self.ref_threads_max
        } else {
            0.0
        }
    }
    /// Relative error of pending items against the references' mean.
    pub fn pending_rel_error(&self) -> f64 {
        (self.sim_pending - self.ref_pending_mean).abs() / self.ref_pending_mean.max(1.0)
    }
}

/// Compares a simulated trajectory with one or more reference repeats at each whole
/// second both cover.
pub fn compare(refs: &[Trajectory], sim: &Trajectory) -> Vec<Row> {
    let end = refs
        .iter()
        .filter_map(|r| r.t_s.last().copied())
        .fold(f64::INFINITY, f64::min)
        .min(sim.t_s.last().copied().unwrap_or(0.0));
    let mut rows = Vec::new();
    let mut t = 1.0;
    while t <= end + 1e-9 {
        let th: Vec<f64> = refs
            .iter()
            .filter_map(|r| value_at(r, t, |r, i| r.threads[i]))
            .collect();
        let pe: Vec<f64> = refs
            .iter()
            .filter_map(|r| value_at(r, t, |r, i| r.pending[i]))
            .collect();
        if let (Some(st), Some(sp)) = (
            value_at(sim, t, |r, i| r.threads[i]),
            value_at(sim, t, |r, i| r.pending[i]),
        ) {
            if !th.is_empty() {
                rows.push(Row {
                    t_s: t,
                    ref_threads_min: th.iter().cloned().fold(f64::INFINITY, f64::min),
                    ref_threads_max: th.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
                    sim_threads: st,
                    ref_pending_mean: pe.iter().sum::<f64>() / pe.len() as f64,
                    sim_pending: sp,
                });
            }
        }
        t += 1.0;
    }
    rows
}

/// The comparison as a text table with a closing summary line.
pub fn render(rows: &[Row]) -> String {
    let mut s = String::from(
        "  t_s  threads(real)  threads(w3sim)  outside  pending(real)  pending(w3sim)  error\n",
    );
    for r in rows {
        let band = if r.ref_threads_min == r.ref_threads_max {
            format!("{}", r.ref_threads_min)
        } else {
            format!("{}–{}", r.ref_threads_min, r.ref_threads_max)
        };
        s.push_str(&format!(
            "{:5.0}  {:>13}  {:>14}  {:>7}  {:>12.1}  {:>14}  {:>5.1}%\n",
            r.t_s,
            band,
            r.sim_threads,
            r.threads_outside_band(),
            r.ref_pending_mean,
            r.sim_pending,
            100.0 * r.pending_rel_error()
        ));
    }
    let n = rows.len().max(1) as f64;
    let mae = rows.iter().map(|r| r.threads_outside_band()).sum::<f64>() / n;
    let within = rows
        .iter()
        .filter(|r| r.threads_outside_band() <= 1.0)
        .count();
    let pend = rows.iter().map(|r| r.pending_rel_error()).sum::<f64>() / n;
    s.push_str(&format!(
        "threads: mean distance outside the real band {mae:.2}, within ±1 of it at {within}/{} seconds; pending: mean relative error {:.1}%\n",
        rows.len(),
        100.0 * pend
    ));
    s
}

/// Draws measured and simulated trajectories (threads and pending) into `path`
/// (`.png`, else SVG).
pub fn plot(
    path: &Path,
    title: &str,
    refs: &[(String, Trajectory)],
    sims: &[(String, Trajectory)],
) -> Result<(), String> {
    use crate::viz::figure::{Chart, Figure, Line, Stack};
    let lines = |f: fn(&Trajectory, usize) -> f64| -> Vec<Line> {
        let mut v: Vec<Line> = refs
            .iter()
            .enumerate()
            .map(|(i, (name, t))| Line {
                label: if i == 0 {
                    format!("real CLR ({name}…)")
                } else {
                    String::new()
                },
                points: (0..t.len()).map(|k| (t.t_s[k], f(t, k))).collect(),
                reference: true,
                markers: false,
            })
            .collect();
        v.extend(sims.iter().map(|(name, t)| Line {
            label: name.clone(),
            points: (0..t.len()).map(|k| (t.t_s[k], f(t, k))).collect(),
            reference: false,
            markers: false,
        }));
        v
    };
    let chart = |title: &str, y: &str, l: Vec<Line>| Chart {
        title: title.into(),
        y_label: y.into(),
        lines: l,
        ..Chart::default()
    };
    let fig = Figure::Stack(Stack {
        title: title.into(),
        x_label: "time (s)".into(),
        charts: vec![
            chart("Worker threads", "threads", lines(|t, k| t.threads[k])),
            chart("Pending work items", "items", lines(|t, k| t.pending[k])),
        ],
        ..Stack::default()
    });
    let format = if path.extension().is_some_and(|e| e == "png") {
        crate::viz::Format::Png
    } else {
        crate::viz::Format::Svg
    };
    fig.write(path, format)
}
