//! Pictures of sweeps (`points.csv`) and capacity searches (`capacity.json`).
//!
//! One axis: each metric's mean against the axis with its 95 % confidence band. Two
//! axes (or more: the first two, at the first value of the others): a heat map of one
//! metric (`--metric`, else the SLO's metric, else the first), the first axis down,
//! the second across, with the SLO boundary drawn between passing and failing cells.
//! A capacity search's result (its `capacity.json`, in the same directory or alone) is
//! marked: a vertical line at the capacity on the varied axis; alone, each SLO's mean
//! and CI at every value tried, the threshold, the capacity and the crossing's interval.
//! The files are read (and refused when damaged) by [`super::sweep_files`].

use std::path::Path;

use super::figure::{Band, Chart, Figure, Heat, Line, Stack};
use crate::sweep::capacity::{Op, Slo};
use crate::sweep::spec::Quantity;

pub use super::sweep_files::{
    Capacity, Evaluation, PointRow, Points, read_capacity, read_points, read_sweep_dir,
};

/// The number in an axis value (`"600/s"` → 600, `"1.5ms"` → 1.5).
pub fn axis_number(s: &str) -> Option<f64> {
    let s = s.trim().trim_matches('"');
    let q = Quantity::parse(s)?;
    Some(match base_unit(s) {
        Some((v, _)) => v,
        None => q.value,
    })
}

/// A value with a unit in its kind's base unit, so that `30s`, `2m` and `1h` (or `500/s` and
/// `6000/min`) lie on one axis: durations in seconds, rates per second, sizes in bytes.
fn base_unit(s: &str) -> Option<(f64, &'static str)> {
    use crate::scenario::units::{parse_duration, parse_rate, parse_size};
    let q = Quantity::parse(s)?;
    if q.unit.is_empty() {
        return None;
    }
    if let Ok(ns) = parse_duration(s) {
        Some((ns as f64 / 1e9, "s"))
    } else if let Ok(r) = parse_rate(s) {
        Some((r, "/s"))
    } else {
        parse_size(s).ok().map(|b| (b as f64, "B"))
    }
}

/// The axis's label: its setting, and the base unit its values were converted to.
fn axis_label(axis: &str, values: &[String]) -> String {
    match values
        .first()
        .and_then(|v| base_unit(v.trim().trim_matches('"')))
    {
        Some((_, unit)) => format!("{axis} ({unit})"),
        None => axis.to_string(),
    }
}

fn is_ratio(metric: &str) -> bool {
    metric.ends_with("_rate") || metric.ends_with("failure_ratio")
}

fn op_str(op: Op) -> &'static str {
    match op {
        Op::Lt => "<",
        Op::Le => "≤",
        Op::Gt => ">",
        Op::Ge => "≥",
    }
}

fn fmt_value(v: f64, unit: &str) -> String {
    let n = if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    };
    format!("{n}{unit}")
}

/// Why a sweep without axes (replications of one configuration) has no figure.
pub fn no_axis_message(p: &Points) -> String {
    format!(
        "the sweep has no axis ({} replication(s) of one configuration): there is nothing to plot along an axis; `w3sim report` tabulates its point, and points.csv holds its means and 95 % CIs",
        p.rows.first().map_or(0, |r| r.replications)
    )
}

/// The figure of a sweep: curves for one axis, a heat map for two or more.
pub fn sweep_figure(
    name: &str,
    p: &Points,
    slo: Option<&Slo>,
    metric: Option<&str>,
    cap: Option<&Capacity>,
) -> Result<Figure, String> {
    if p.rows.is_empty() {
        return Err("points.csv has no rows".into());
    }
    if let Some(s) = slo
        && !p.metrics.contains(&s.metric)
    {
        return Err(format!(
            "SLO \"{}\": metric `{}` is not in points.csv (it has {})",
            s.text,
            s.metric,
            p.metrics.join(", ")
        ));
    }
    if let Some(m) = metric
        && !p.metrics.iter().any(|x| x == m)
    {
        return Err(format!(
            "metric `{m}` is not in points.csv (it has {})",
            p.metrics.join(", ")
        ));
    }
    match p.axes.len() {
        0 => Err(no_axis_message(p)),
        1 => Ok(curves(name, p, slo, cap)),
        _ => Ok(heat(name, p, slo, metric, cap)),
    }
}

fn curves(name: &str, p: &Points, slo: Option<&Slo>, cap: Option<&Capacity>) -> Figure {
    let axis = &p.axes[0];
    let mut rows: Vec<(f64, &PointRow)> = p
        .rows
        .iter()
        .filter_map(|r| axis_number(&r.axis_values[0]).map(|x| (x, r)))
        .collect();
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    let charts = p
        .metrics
        .iter()
        .map(|m| {
            let scale = if is_ratio(m) { 100.0 } else { 1.0 };
            let points: Vec<(f64, f64)> = rows
                .iter()
                .filter_map(|(x, r)| r.mean(m).map(|v| (*x, v * scale)))
                .collect();
            let band: Vec<(f64, f64, f64)> = rows
                .iter()
                .filter_map(|(x, r)| r.ci(m).map(|(a, b)| (*x, a * scale, b * scale)))
                .collect();
            let mut hlines = Vec::new();
            if let Some(s) = slo.filter(|s| s.metric == *m) {
                hlines.push((format!("SLO {}", s.text), s.threshold * scale));
            }
            Chart {
                title: m.clone(),
                y_label: if scale == 100.0 {
                    format!("{m} (%)")
                } else {
                    m.clone()
                },
                lines: vec![Line {
                    label: "mean".into(),
                    points,
                    markers: true,
                    ..Line::default()
                }],
                bands: if band.is_empty() {
                    vec![]
                } else {
                    vec![Band {
                        label: "95 % CI".into(),
                        points: band,
                    }]
                },
                hlines,
            }
        })
        .collect();
    let mut vlines = Vec::new();
    let mut x_interval = None;
    if let Some(c) = cap.filter(|c| c.vary == *axis) {
        // The search's values in the axis's units (converted like the axis's own).
        let on_axis = |v: f64| axis_number(&format!("{v}{}", c.unit)).unwrap_or(v);
        if let Some(v) = c.capacity {
            vlines.push((
                on_axis(v),
                format!(" {} {}", c.answer_label, fmt_value(v, &c.unit)),
            ));
        }
        if let (Some(a), Some(b)) = c.crossing_ci {
            x_interval = Some((
                on_axis(a),
                on_axis(b),
                "95 % interval of the crossing".to_string(),
            ));
        }
    }
    let values: Vec<String> = rows.iter().map(|(_, r)| r.axis_values[0].clone()).collect();
    Figure::Stack(Stack {
        title: format!("{name}: metrics against {axis} (mean, 95 % CI)"),
        x_label: axis_label(axis, &values),
        charts,
        vlines,
        shades: vec![],
        shade_label: String::new(),
        x_interval,
        x_whole: false,
    })
}

fn heat(
    name: &str,
    p: &Points,
    slo: Option<&Slo>,
    metric: Option<&str>,
    cap: Option<&Capacity>,
) -> Figure {
    let m = metric
        .map(str::to_string)
        .or_else(|| slo.map(|s| s.metric.clone()))
        .unwrap_or_else(|| p.metrics[0].clone());
    // The first two axes; other axes at their first value.
    let rows: Vec<&PointRow> = p
        .rows
        .iter()
        .filter(|r| (2..p.axes.len()).all(|k| r.axis_values[k] == p.rows[0].axis_values[k]))
        .collect();
    let distinct = |k: usize| -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for r in &rows {
            if !v.contains(&r.axis_values[k]) {
                v.push(r.axis_values[k].clone());
            }
        }
        v.sort_by(|a, b| match (axis_number(a), axis_number(b)) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            _ => a.cmp(b),
        });
        v
    };
    let ys = distinct(0);
    let xs = distinct(1);
    let mut values = vec![vec![None; xs.len()]; ys.len()];
    let mut pass = vec![vec![None; xs.len()]; ys.len()];
    for r in &rows {
        let j = ys
            .iter()
            .position(|y| *y == r.axis_values[0])
            .expect("distinct");
        let i = xs
            .iter()
            .position(|x| *x == r.axis_values[1])
            .expect("distinct");
        values[j][i] = r.mean(&m);
        if let Some(s) = slo {
            pass[j][i] = r.mean(&s.metric).map(|v| s.holds(v));
        }
    }
    // Position of a value in cell coordinates (linear between neighbouring cells).
    let position = |ticks: &[String], v: f64| -> Option<f64> {
        let nums: Vec<f64> = ticks.iter().filter_map(|t| axis_number(t)).collect();
        if nums.len() != ticks.len() || nums.is_empty() {
            return None;
        }
        if v <= nums[0] {
            return Some(0.0);
        }
        for k in 1..nums.len() {
            if v <= nums[k] {
                return Some(k as f64 - 1.0 + (v - nums[k - 1]) / (nums[k] - nums[k - 1]));
            }
        }
        Some(nums.len() as f64 - 1.0)
    };
    let mut x_marker = None;
    let mut y_marker = None;
    if let Some(c) = cap
        && let Some(v) = c.capacity
    {
        let label = format!("{} {} = {}", c.answer_label, c.vary, fmt_value(v, &c.unit));
        if c.vary == p.axes[1] {
            x_marker = position(&xs, v).map(|x| (x, label));
        } else if c.vary == p.axes[0] {
            y_marker = position(&ys, v).map(|y| (y, label));
        }
    }
    Figure::Heat(Heat {
        title: format!("{name}: {m} (mean of replications)"),
        x_label: p.axes[1].clone(),
        y_label: p.axes[0].clone(),
        x_ticks: xs,
        y_ticks: ys,
        values,
        value_label: m.clone(),
        percent: is_ratio(&m),
        boundary_label: slo
            .map(|s| format!("SLO boundary: {}", s.text))
            .unwrap_or_default(),
        pass: slo.map(|_| pass),
        x_marker,
        y_marker,
    })
}

/// The figure of a capacity search: each SLO's mean and 95 % CI at every value tried.
pub fn capacity_figure(name: &str, c: &Capacity) -> Figure {
    let mut evals = c.evaluations.clone();
    evals.sort_by(|a, b| a.0.total_cmp(&b.0));
    let charts = c
        .slos
        .iter()
        .map(|s| {
            let scale = if is_ratio(&s.metric) { 100.0 } else { 1.0 };
            let pick = |e: &Evaluation| e.2.iter().find(|r| r.0 == s.text).cloned();
            let points = evals
                .iter()
                .filter_map(|e| pick(e).map(|r| (e.0, r.1 * scale)))
                .collect();
            let band = evals
                .iter()
                .filter_map(|e| pick(e).map(|r| (e.0, r.2 * scale, r.3 * scale)))
                .filter(|p| p.1.is_finite() && p.2.is_finite())
                .collect::<Vec<_>>();
            Chart {
                title: format!(
                    "SLO {} ({} {} {})",
                    s.text,
                    s.metric,
                    op_str(s.op),
                    s.threshold * scale
                ),
                y_label: if scale == 100.0 {
                    format!("{} (%)", s.metric)
                } else {
                    s.metric.clone()
                },
                lines: vec![Line {
                    label: "mean at each value tried".into(),
                    points,
                    markers: true,
                    ..Line::default()
                }],
                bands: if band.is_empty() {
                    vec![]
                } else {
                    vec![Band {
                        label: "95 % CI".into(),
                        points: band,
                    }]
                },
                hlines: vec![("threshold".into(), s.threshold * scale)],
            }
        })
        .collect();
    let mut vlines = Vec::new();
    if let Some(v) = c.capacity {
        vlines.push((v, format!(" {} {}", c.answer_label, fmt_value(v, &c.unit))));
    }
    Figure::Stack(Stack {
        title: format!(
            "{name}: capacity search over {}{}",
            c.vary,
            c.broke_first
                .as_ref()
                .map(|b| format!(" ({b} broke first)"))
                .unwrap_or_default()
        ),
        x_label: if c.unit.is_empty() {
            c.vary.clone()
        } else {
            format!("{} ({})", c.vary, c.unit)
        },
        charts,
        vlines,
        shades: vec![],
        shade_label: String::new(),
        x_interval: match c.crossing_ci {
            (Some(a), Some(b)) => Some((a, b, "95 % interval of the crossing".into())),
            _ => None,
        },
        x_whole: c.unit.is_empty()
            && !c.evaluations.is_empty()
            && c.evaluations.iter().all(|e| e.0.fract() == 0.0),
    })
}

/// The name of a capacity search's figure: its scenario's file stem.
fn capacity_name(c: &Capacity) -> String {
    Path::new(
        c.raw
            .get("scenario")
            .and_then(|s| s.as_str())
            .unwrap_or("capacity"),
    )
    .file_stem()
    .map_or_else(|| "capacity".into(), |s| s.to_string_lossy().into_owned())
}

/// The figures of a sweep or capacity directory, each with a file stem
/// (`sweep`, `capacity`); every file they are drawn from is checked first.
pub fn figures_of_dir(
    dir: &Path,
    slo: Option<&Slo>,
    metric: Option<&str>,
) -> Result<Vec<(String, Figure)>, String> {
    let d = read_sweep_dir(dir)?;
    let cap = d.capacity;
    let mut out = Vec::new();
    if let Some(p) = &d.points {
        if let (true, Some(c)) = (p.axes.is_empty(), &cap) {
            // Nothing to draw of the points (no axis); the capacity search's figure alone.
            return Ok(vec![(
                "capacity".to_string(),
                capacity_figure(&capacity_name(c), c),
            )]);
        }
        // An SLO from the command line, else the capacity search's first one on a metric we have.
        let cap_slo = cap
            .as_ref()
            .and_then(|c| c.slos.iter().find(|s| p.metrics.contains(&s.metric)));
        out.push((
            "sweep".to_string(),
            sweep_figure(&d.name, p, slo.or(cap_slo), metric, cap.as_ref())?,
        ));
    }
    if let Some(c) = &cap {
        out.push((
            "capacity".to_string(),
            capacity_figure(&capacity_name(c), c),
        ));
    }
    if out.is_empty() {
        return Err(format!("{}: no points.csv or capacity.json", dir.display()));
    }
    Ok(out)
}
