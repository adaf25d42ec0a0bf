//! `load.replay`: a production load shape as the open loop's rate schedule, read from
//! one counter of a perfmon CSV export (`relog -f csv`) or of a w3sim `timeseries.csv`.
//!
//! A rate counter's sample is the average over the interval that ends at it. For a w3sim
//! series that interval is known (from the previous row, or 0), and its rate drives the
//! same interval again. A perfmon capture is lined up the way `w3sim compare` lines a
//! capture up with a run, first sample on first sample: the capture's sample k drives the
//! simulated interval that starts k intervals in, so that the run's sample k+1 (at the
//! end of that interval) is compared with it. Blank cells (perfmon leaves the first
//! sample of a rate blank) keep the rate before them.

use std::path::Path;

use super::load::nearest;
use super::units::{Duration, Rate};
use super::{RatePoint, Replay};
use crate::viz::perfmon::{match_key, read_perfmon_csv, split_counter};

/// A capture's columns: names, the start of each sample's interval (s, from the
/// capture's first sample), and each column's values.
struct Series {
    counters: Vec<String>,
    starts: Vec<f64>,
    values: Vec<Vec<f64>>,
}

fn read_w3sim_series(path: &Path) -> Result<Series, String> {
    let mut r = csv::ReaderBuilder::new()
        .from_path(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let headers: Vec<String> = r
        .headers()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .iter()
        .map(str::to_string)
        .collect();
    let counters = headers[1..].to_vec();
    let mut starts = Vec::new();
    let mut values = vec![Vec::new(); counters.len()];
    let mut prev = 0.0;
    for (n, rec) in r.records().enumerate() {
        let rec = rec.map_err(|e| format!("{}: {e}", path.display()))?;
        let t: f64 = rec
            .get(0)
            .and_then(|s| s.trim().parse().ok())
            .filter(|t: &f64| t.is_finite())
            .ok_or_else(|| {
                format!(
                    "{}: row {}: time_s {:?} is not a number",
                    path.display(),
                    n + 2,
                    rec.get(0).unwrap_or("")
                )
            })?;
        starts.push(prev);
        prev = t;
        for (k, v) in values.iter_mut().enumerate() {
            v.push(
                rec.get(k + 1)
                    .and_then(|s| s.trim().parse::<f64>().ok())
                    .unwrap_or(f64::NAN),
            );
        }
    }
    Ok(Series {
        counters,
        starts,
        values,
    })
}

fn read_series(path: &Path) -> Result<Series, String> {
    let first_line = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .lines()
        .next()
        .unwrap_or("")
        .trim_start_matches('\u{feff}')
        .to_string();
    if first_line.starts_with("time_s") || first_line.starts_with("\"time_s\"") {
        return read_w3sim_series(path);
    }
    let p = read_perfmon_csv(path)?;
    Ok(Series {
        counters: p.counters,
        starts: p.times,
        values: p.values,
    })
}

/// The column `wanted` names: its full name, its `Object\Counter` (any machine and
/// instance), or its counter alone; an error lists the candidates when several match.
fn find_column(counters: &[String], wanted: &str) -> Result<usize, (String, Option<String>)> {
    let w = wanted.trim().trim_matches('"');
    let same = |a: &str, b: &str| a.trim_matches('"').eq_ignore_ascii_case(b);
    if let Some(i) = counters.iter().position(|c| same(c, w)) {
        return Ok(i);
    }
    let matches: Vec<usize> = match match_key(w) {
        Some(key) => (0..counters.len())
            .filter(|&i| match_key(&counters[i]).as_deref() == Some(key.as_str()))
            .collect(),
        None => (0..counters.len())
            .filter(|&i| split_counter(&counters[i]).is_some_and(|(_, _, c)| same(&c, w)))
            .collect(),
    };
    match matches.as_slice() {
        [i] => Ok(*i),
        [] => {
            let short: Vec<String> = counters
                .iter()
                .map(|c| {
                    split_counter(c).map_or_else(|| c.clone(), |(o, _, k)| format!("{o}\\{k}"))
                })
                .collect();
            let hint = nearest(w, short.iter().map(String::as_str))
                .map(|n| format!("did you mean `{n}`? "))
                .unwrap_or_default();
            let mut list: Vec<&str> = short.iter().map(String::as_str).collect();
            list.dedup();
            let more = if list.len() > 12 {
                format!(" and {} more", list.len() - 12)
            } else {
                String::new()
            };
            list.truncate(12);
            Err((
                format!("the capture has no counter `{w}`"),
                Some(format!(
                    "{hint}its counters: {}{more}; an arrival rate such as `W3SVC_W3WP\\Requests / Sec` or `HTTP Service Request Queues\\ArrivalRate` is what a replay needs",
                    list.join(", ")
                )),
            ))
        }
        several => Err((
            format!("{} columns of the capture match `{w}`", several.len()),
            Some(format!(
                "write the full path of one: {}",
                several
                    .iter()
                    .map(|&i| counters[i].trim_matches('"'))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        )),
    }
}

/// The rate schedule `r` describes; `base` is the directory its file is relative to.
/// Errors are (message, help).
pub fn schedule(r: &Replay, base: &Path) -> Result<Vec<RatePoint>, (String, Option<String>)> {
    let path = base.join(&r.file);
    let series = read_series(&path).map_err(|e| {
        (
            e,
            Some(
                "a perfmon CSV export (relog -f csv) or a w3sim timeseries.csv; the path is relative to the scenario file"
                    .into(),
            ),
        )
    })?;
    let col = find_column(&series.counters, &r.counter)?;
    let from_s = r.from.0 as f64 * 1e-9;
    let mut points: Vec<RatePoint> = Vec::new();
    for (k, (&start, &v)) in series.starts.iter().zip(&series.values[col]).enumerate() {
        if start + 1e-9 < from_s || v.is_nan() {
            continue;
        }
        if !(v.is_finite() && v >= 0.0) {
            return Err((
                format!(
                    "sample {} of `{}` is {v}: a rate must be a number >= 0",
                    k + 1,
                    series.counters[col].trim_matches('"')
                ),
                None,
            ));
        }
        let at = Duration((((start - from_s).max(0.0)) * 1e9).round() as u64);
        match points.last_mut() {
            Some(last) if last.at.0 >= at.0 => last.rate = Rate(v),
            _ => points.push(RatePoint { at, rate: Rate(v) }),
        }
    }
    if points.is_empty() {
        return Err((
            format!(
                "`{}` has no sample{}",
                series.counters[col].trim_matches('"'),
                if r.from.0 > 0 {
                    format!(" from {} on", r.from)
                } else {
                    String::new()
                }
            ),
            None,
        ));
    }
    Ok(points)
}
