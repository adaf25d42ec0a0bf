//! `load.replay`: a production load shape as the open loop's rate schedule, read from
//! one counter of a perfmon CSV export (`relog -f csv`) or of a w3sim `timeseries.csv`.
//!
//! A rate counter's sample is the average over the interval that ends at it. For a w3sim
//! series that interval is known (from the previous row, or 0), and its rate drives the
//! same interval again. A perfmon capture is lined up the way `w3sim compare` lines a
//! capture up with a run, first sample on first sample: the capture's sample k drives the
//! simulated interval that starts k intervals in, so that the run's sample k+1 (at the
//! end of that interval) is compared with it. Blank cells keep the rate before them;
//! leading ones (perfmon leaves a rate's first sample blank) take the first rate given.
//! What cannot be replayed as written is refused: times that do not increase, cells that
//! are not numbers, a `from` past the capture's end.

use std::path::Path;

use super::load::nearest;
use super::units::{Duration, Rate};
use super::{RatePoint, Replay, Replayed};
use crate::viz::perfmon::{match_key, read_counter_csv, split_counter};

/// A counter path's parts, lower case: (machine, object, instance, counter);
/// `Requests / Sec` alone has only a counter.
type Parts = (Option<String>, Option<String>, Option<String>, String);

fn parts(name: &str) -> Parts {
    let n = name.trim().trim_matches('"');
    let machine = n
        .strip_prefix("\\\\")
        .and_then(|rest| rest.split_once('\\'))
        .map(|(m, _)| m.to_lowercase());
    match split_counter(n) {
        Some((o, i, c)) => (
            machine,
            Some(o.to_lowercase()),
            i.map(|i| i.to_lowercase()),
            c.to_lowercase(),
        ),
        None => (None, None, None, n.to_lowercase()),
    }
}

/// The column `wanted` names: its full name, or the columns agreeing with every part it
/// gives (`Object\Counter` matches any machine and instance, `Object(Instance)\Counter`
/// that instance, `Counter` alone any object); an error lists the candidates when none or
/// several match.
fn find_column(counters: &[String], wanted: &str) -> Result<usize, (String, Option<String>)> {
    let w = wanted.trim().trim_matches('"');
    if let Some(i) = counters
        .iter()
        .position(|c| c.trim_matches('"').eq_ignore_ascii_case(w))
    {
        return Ok(i);
    }
    let (wm, wo, wi, wc) = parts(w);
    let agrees = |want: &Option<String>, have: &Option<String>| want.is_none() || want == have;
    let matches: Vec<usize> = (0..counters.len())
        .filter(|&i| {
            let (m, o, inst, c) = parts(&counters[i]);
            c == wc && agrees(&wo, &o) && agrees(&wi, &inst) && agrees(&wm, &m)
        })
        .collect();
    match matches.as_slice() {
        [i] => Ok(*i),
        [] => {
            let mut short: Vec<String> = Vec::new();
            for c in counters {
                let s = split_counter(c).map_or_else(|| c.clone(), |(o, _, k)| format!("{o}\\{k}"));
                if !short.contains(&s) {
                    short.push(s);
                }
            }
            let hint = nearest(w, short.iter().map(String::as_str))
                .or_else(|| {
                    // A path with a machine or an instance: compare its `Object\Counter`.
                    let key = match_key(w)?;
                    short
                        .iter()
                        .map(String::as_str)
                        .find(|s| s.eq_ignore_ascii_case(&key))
                        .or_else(|| nearest(&key, short.iter().map(String::as_str)))
                })
                .map(|n| format!("did you mean `{n}`? "))
                .unwrap_or_default();
            let more = if short.len() > 12 {
                format!(" and {} more", short.len() - 12)
            } else {
                String::new()
            };
            short.truncate(12);
            Err((
                format!("the capture has no counter `{w}`"),
                Some(format!(
                    "{hint}its counters: {}{more}; an arrival rate such as `HTTP Service Request Queues\\ArrivalRate` or IIS's `W3SVC_W3WP\\Requests / Sec` is what a replay needs",
                    short.join(", ")
                )),
            ))
        }
        several => Err((
            format!("{} columns of the capture match `{w}`", several.len()),
            Some(format!(
                "add the instance or the machine, or write the full path of one: {}",
                several
                    .iter()
                    .map(|&i| counters[i].trim_matches('"'))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        )),
    }
}

/// The rate schedule `r` describes, up to `end` (the run's duration), and what it came
/// from; `base` is the directory its file is relative to. Errors are (message, help).
pub fn schedule(
    r: &Replay,
    base: &Path,
    end: Duration,
) -> Result<(Vec<RatePoint>, Replayed), (String, Option<String>)> {
    let path = base.join(&r.file);
    let series = read_counter_csv(&path).map_err(|e| {
        (
            e,
            Some(
                "a perfmon CSV export (relog -f csv) or a w3sim timeseries.csv; a path written in the scenario is relative to its file, one given with --set or in a sweep's [set] to the working directory"
                    .into(),
            ),
        )
    })?;
    let col = find_column(&series.counters, &r.counter)?;
    let name = series.counters[col].trim_matches('"');
    if let Some((row, cell)) = &series.unreadable[col] {
        return Err((
            format!("row {row} of the capture: `{name}` is {cell:?}, not a number"),
            Some(
                "perfmon writes numbers with a decimal point; a CSV saved with a decimal comma (regional settings) needs relog -f csv, or its commas replaced".into(),
            ),
        ));
    }
    // When each sample's interval starts: w3sim's rows end their interval (the first
    // starts at 0); perfmon's are lined up first sample on first sample.
    let starts: Vec<f64> = if series.w3sim {
        std::iter::once(0.0)
            .chain(series.times.iter().copied())
            .collect()
    } else {
        series.times.clone()
    };
    let starts = &starts[..series.times.len()];
    let t = &series.times;
    if let Some(k) = (1..t.len()).find(|&k| t[k] <= t[k - 1]) {
        return Err((
            format!(
                "sample {} of the capture is at {} s, not after sample {}'s {} s: its times must increase",
                k + 1,
                t[k],
                k,
                t[k - 1]
            ),
            Some(
                "a capture in local time that crosses a daylight-saving change goes back an hour: capture in UTC, or replay only one side of it (`from`, `duration`)".into(),
            ),
        ));
    }
    let vals = &series.values[col];
    let Some(first) = vals.iter().copied().find(|v| !v.is_nan()) else {
        return Err((format!("`{name}` has no sample"), None));
    };
    // Blank samples keep the rate before them; blanks at the start (perfmon leaves a
    // rate's first sample blank) take the first rate given.
    let mut rate = first;
    let mut rates = Vec::with_capacity(vals.len());
    for (k, &v) in vals.iter().enumerate() {
        if !v.is_nan() {
            if !(v.is_finite() && v >= 0.0) {
                return Err((
                    format!(
                        "sample {} of `{name}` is {v}: a rate must be a number >= 0",
                        k + 1
                    ),
                    None,
                ));
            }
            rate = v;
        }
        rates.push(rate);
    }
    let from_s = r.from.0 as f64 * 1e-9;
    let last = starts.last().copied().unwrap_or(0.0);
    if from_s > last + 1e-9 {
        return Err((
            format!(
                "`from` ({}) is past the capture's last sample ({last} s in)",
                r.from
            ),
            None,
        ));
    }
    // Time 0 takes the rate of the sample whose interval holds `from`; then one point per
    // sample, up to the run's end.
    let k0 = starts
        .partition_point(|&t| t <= from_s + 1e-9)
        .saturating_sub(1);
    let end_s = end.0 as f64 * 1e-9;
    let mut points = vec![RatePoint {
        at: Duration(0),
        rate: Rate(rates[k0]),
    }];
    for k in k0 + 1..starts.len() {
        let at = starts[k] - from_s;
        if at > end_s {
            break;
        }
        points.push(RatePoint {
            at: Duration((at * 1e9).round() as u64),
            rate: Rate(rates[k]),
        });
    }
    // The last sample's interval is taken as long as the one before it.
    let step = match starts {
        [.., a, b] => b - a,
        _ => 0.0,
    };
    let covers = (last + step - from_s).max(0.0);
    Ok((
        points,
        Replayed {
            file: r.file.clone(),
            counter: name.to_string(),
            samples: starts.len(),
            covers: Duration((covers * 1e9).round() as u64),
        },
    ))
}
