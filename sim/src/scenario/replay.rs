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
use crate::viz::perfmon::{match_key, read_counter_csv, split_counter};

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
    let series = read_counter_csv(&path).map_err(|e| {
        (
            e,
            Some(
                "a perfmon CSV export (relog -f csv) or a w3sim timeseries.csv; the path is relative to the scenario file"
                    .into(),
            ),
        )
    })?;
    let col = find_column(&series.counters, &r.counter)?;
    // When each sample's interval starts: w3sim's rows end their interval (the first
    // starts at 0); perfmon's are lined up first sample on first sample.
    let starts: Vec<f64> = if series.w3sim {
        std::iter::once(0.0)
            .chain(series.times.iter().copied())
            .collect()
    } else {
        series.times.clone()
    };
    let from_s = r.from.0 as f64 * 1e-9;
    let mut points: Vec<RatePoint> = Vec::new();
    for (k, (&start, &v)) in starts.iter().zip(&series.values[col]).enumerate() {
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
