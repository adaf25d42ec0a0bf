//! Perfmon compatibility: the time series in the layout of perfmon's CSV export
//! (`relog -f csv`), and a comparison of a simulated run with a real capture.
//!
//! Export: the first column is `(PDH-CSV 4.0) (Coordinated Universal Time)(0)` with
//! timestamps `MM/DD/YYYY HH:MM:SS.mmm` from a base date; each counter column is
//! `\\W3SIM\Object(Instance)\Counter`, with the instance perfmon would show
//! (`DefaultAppPool` for the HTTP.SYS queue, `_Global_` for .NET CLR Memory,
//! `__Total__` for ASP.NET Applications, `_Total` for the others; objects that have no
//! instances, `ASP.NET` and `System`, have none). Every cell is quoted, as relog writes.
//!
//! Compare: counters are matched by `Object\Counter` whatever the machine and instance,
//! time is aligned on each file's first sample, and the simulated value is
//! interpolated at each real sample's time.

use std::collections::BTreeMap;
use std::path::Path;

use super::figure::{Chart, Figure, Line, Stack};
use crate::output::MemorySink;

/// The first header cell of a perfmon CSV.
pub const PDH_HEADER: &str = "(PDH-CSV 4.0) (Coordinated Universal Time)(0)";
/// Machine name in exported counter paths.
pub const MACHINE: &str = "W3SIM";
/// Default base time of the exported timestamps (UTC).
pub const DEFAULT_BASE: &str = "2026-01-01 00:00:00";

/// Splits a w3sim or perfmon counter name into (object, instance, counter):
/// `\\HOST\Processor(_Total)\% Processor Time`, `Processor(_Total)\% Processor Time`,
/// `ASP.NET\Requests Current`.
pub fn split_counter(name: &str) -> Option<(String, Option<String>, String)> {
    let s = name.trim().trim_matches('"');
    let s = match s.strip_prefix("\\\\") {
        Some(rest) => rest.split_once('\\')?.1,
        None => s,
    };
    // The counter is after the last backslash outside parentheses.
    let mut depth = 0i32;
    let mut cut = None;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            '\\' if depth == 0 => cut = Some(i),
            _ => {}
        }
    }
    let cut = cut?;
    let (obj, counter) = (&s[..cut], &s[cut + 1..]);
    let (object, instance) = match (obj.find('('), obj.ends_with(')')) {
        (Some(p), true) => (
            obj[..p].to_string(),
            Some(obj[p + 1..obj.len() - 1].to_string()),
        ),
        _ => (obj.to_string(), None),
    };
    Some((object, instance, counter.to_string()))
}

/// The machine of a counter path written `\\HOST\…`, if any.
pub fn machine_of(name: &str) -> Option<&str> {
    name.trim()
        .trim_matches('"')
        .strip_prefix("\\\\")
        .and_then(|rest| rest.split_once('\\'))
        .map(|(host, _)| host)
}

/// The key counters are matched by: `object\counter`, lower case.
pub fn match_key(name: &str) -> Option<String> {
    let (o, _, c) = split_counter(name)?;
    Some(format!("{o}\\{c}").to_lowercase())
}

/// The instance perfmon would show for an object.
fn instance_for(object: &str) -> Option<&'static str> {
    match object {
        "HTTP Service Request Queues" => Some("DefaultAppPool"),
        ".NET CLR Memory" => Some("_Global_"),
        "ASP.NET Applications" => Some("__Total__"),
        "ASP.NET" | "System" | "w3sim" | "TCPv4" => None,
        _ => Some("_Total"),
    }
}

/// A w3sim column as a perfmon counter path: `\\W3SIM\Object(Instance)\Counter`; a farm's
/// per-server column (`\\web1\…`) keeps its server as the machine.
pub fn perfmon_path(column: &str) -> String {
    let machine = column
        .trim()
        .strip_prefix("\\\\")
        .and_then(|rest| rest.split_once('\\'))
        .map_or(MACHINE, |(host, _)| host);
    match split_counter(column) {
        Some((o, Some(i), c)) => format!("\\\\{machine}\\{o}({i})\\{c}"),
        Some((o, None, c)) => match instance_for(&o) {
            Some(i) => format!("\\\\{machine}\\{o}({i})\\{c}"),
            None => format!("\\\\{machine}\\{o}\\{c}"),
        },
        None => format!("\\\\{machine}\\w3sim\\{column}"),
    }
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Parses `YYYY-MM-DD[ HH:MM:SS[.mmm]]` (or with `T`) into seconds since the Unix epoch.
pub fn parse_base(s: &str) -> Result<f64, String> {
    let bad = || format!("base time {s:?}: expected YYYY-MM-DD HH:MM:SS");
    let s = s.trim();
    let (date, time) = s.split_once([' ', 'T']).unwrap_or((s, "00:00:00"));
    let d: Vec<&str> = date.split('-').collect();
    if d.len() != 3 {
        return Err(bad());
    }
    let y: i64 = d[0].parse().map_err(|_| bad())?;
    let m: u32 = d[1].parse().map_err(|_| bad())?;
    let dd: u32 = d[2].parse().map_err(|_| bad())?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&dd) {
        return Err(bad());
    }
    let secs = parse_hms(time).ok_or_else(bad)?;
    Ok(days_from_civil(y, m, dd) as f64 * 86400.0 + secs)
}

fn parse_hms(t: &str) -> Option<f64> {
    let p: Vec<&str> = t.trim().split(':').collect();
    if p.len() != 3 {
        return None;
    }
    let h: f64 = p[0].parse().ok()?;
    let m: f64 = p[1].parse().ok()?;
    let s: f64 = p[2].parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// `MM/DD/YYYY HH:MM:SS.mmm` of seconds since the Unix epoch.
pub fn format_timestamp(epoch_s: f64) -> String {
    let ms_total = (epoch_s * 1000.0).round() as i64;
    let days = ms_total.div_euclid(86_400_000);
    let ms = ms_total.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{m:02}/{d:02}/{y:04} {:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// Parses a perfmon timestamp `MM/DD/YYYY HH:MM:SS[.mmm]` into seconds since the epoch.
pub fn parse_timestamp(s: &str) -> Option<f64> {
    let s = s.trim().trim_matches('"');
    let (date, time) = s.split_once(' ')?;
    let d: Vec<&str> = date.split('/').collect();
    if d.len() != 3 {
        return None;
    }
    let (m, dd, y): (u32, u32, i64) = (d[0].parse().ok()?, d[1].parse().ok()?, d[2].parse().ok()?);
    Some(days_from_civil(y, m, dd) as f64 * 86400.0 + parse_hms(time)?)
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The time series as a perfmon CSV (relog layout). Sample k is at `base + time_s`.
pub fn to_perfmon_csv(ts: &MemorySink, base_epoch_s: f64) -> String {
    let t_idx = ts.columns.iter().position(|c| c == "time_s");
    let mut out = String::new();
    let mut header = vec![quote(PDH_HEADER)];
    let cols: Vec<usize> = (0..ts.columns.len())
        .filter(|&i| Some(i) != t_idx)
        .collect();
    header.extend(cols.iter().map(|&i| quote(&perfmon_path(&ts.columns[i]))));
    out.push_str(&header.join(","));
    out.push_str("\r\n");
    for (k, row) in ts.rows.iter().enumerate() {
        let t = t_idx.map_or(k as f64 + 1.0, |i| row[i]);
        let mut cells = vec![quote(&format_timestamp(base_epoch_s + t))];
        cells.extend(cols.iter().map(|&i| {
            let v = row[i];
            if v.is_finite() {
                quote(&format!("{v}"))
            } else {
                quote(" ")
            }
        }));
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

/// A perfmon CSV read back: relative times (s from the first sample) and counters.
#[derive(Clone, Debug, Default)]
pub struct PerfmonCsv {
    /// Full counter paths as in the header.
    pub counters: Vec<String>,
    /// Seconds since the first sample (a perfmon export), or the `time_s` column itself
    /// (a w3sim `timeseries.csv`, read by [`read_counter_csv`]).
    pub times: Vec<f64>,
    /// `values[counter][sample]`, NaN where perfmon left the cell blank.
    pub values: Vec<Vec<f64>>,
    /// Whether the file is a w3sim `timeseries.csv` rather than a perfmon export.
    pub w3sim: bool,
    /// Per counter, its first cell that is neither blank nor a number: (row, text).
    pub unreadable: Vec<Option<(usize, String)>>,
}

/// Reads a perfmon/relog CSV export.
pub fn read_perfmon_csv(path: &Path) -> Result<PerfmonCsv, String> {
    read_csv(path, false)
}

/// A capture to compare with a run must be one sample per row in time order (lined up
/// by position, rows out of order would compare the wrong samples).
pub fn check_time_order(c: &PerfmonCsv, path: &Path) -> Result<(), String> {
    match (1..c.times.len()).find(|&k| c.times[k] <= c.times[k - 1]) {
        None => Ok(()),
        Some(k) => Err(format!(
            "{}: row {}: its time comes {} the row before's: rows must be in time order, one per sample (sort the file, or export it again with relog)",
            path.display(),
            k + 2,
            if c.times[k] == c.times[k - 1] {
                "at the same time as"
            } else {
                "before"
            }
        )),
    }
}

/// Reads a perfmon/relog CSV export or a w3sim `timeseries.csv` (its first header cell
/// is `time_s`).
pub fn read_counter_csv(path: &Path) -> Result<PerfmonCsv, String> {
    read_csv(path, true)
}

fn read_csv(path: &Path, w3sim_too: bool) -> Result<PerfmonCsv, String> {
    // perfmon can save its CSV as UTF-16 ("Unicode"): say so rather than "invalid UTF-8".
    let mut head = [0u8; 2];
    if let Ok(mut f) = std::fs::File::open(path) {
        use std::io::Read;
        if f.read_exact(&mut head).is_ok() && (head == [0xFF, 0xFE] || head == [0xFE, 0xFF]) {
            return Err(format!(
                "{}: the file is UTF-16 text; save it as UTF-8 (relog writes UTF-8: relog FILE -f csv -o OUT.csv)",
                path.display()
            ));
        }
    }
    let mut r = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let headers: Vec<String> = r
        .headers()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .iter()
        .map(|s| s.trim_start_matches('\u{feff}').to_string())
        .collect();
    let w3sim = w3sim_too && headers.first().is_some_and(|h| h == "time_s");
    if !w3sim && !headers.first().is_some_and(|h| h.contains("PDH-CSV")) {
        return Err(format!(
            "{}: not a perfmon CSV export (the first header cell should be \"{PDH_HEADER}\"){}",
            path.display(),
            if w3sim_too {
                " nor a w3sim timeseries.csv (`time_s`)"
            } else {
                ""
            }
        ));
    }
    let counters: Vec<String> = headers[1..].to_vec();
    let mut times = Vec::new();
    let mut values = vec![Vec::new(); counters.len()];
    let mut unreadable = vec![None; counters.len()];
    let mut t0 = None;
    for (n, rec) in r.records().enumerate() {
        let rec = rec.map_err(|e| format!("{}: {e}", path.display()))?;
        let cell = rec.get(0).unwrap_or("");
        let t = if w3sim {
            cell.trim().parse::<f64>().ok().filter(|t| t.is_finite())
        } else {
            parse_timestamp(cell).map(|ts| ts - *t0.get_or_insert(ts))
        };
        let Some(t) = t else {
            return Err(format!(
                "{}: row {}: {} {cell:?} is not {}",
                path.display(),
                n + 2,
                if w3sim { "time_s" } else { "timestamp" },
                if w3sim {
                    "a number"
                } else {
                    "MM/DD/YYYY HH:MM:SS.mmm"
                }
            ));
        };
        times.push(t);
        for (k, v) in values.iter_mut().enumerate() {
            let cell = rec.get(k + 1).unwrap_or("").trim();
            let x = cell.parse::<f64>().unwrap_or(f64::NAN);
            if x.is_nan() && !cell.is_empty() && unreadable[k].is_none() {
                unreadable[k] = Some((n + 2, cell.to_string()));
            }
            v.push(x);
        }
    }
    Ok(PerfmonCsv {
        counters,
        times,
        values,
        w3sim,
        unreadable,
    })
}

/// The error of one counter.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CounterError {
    /// `Object\Counter` as written in the simulated run.
    pub counter: String,
    /// The real file's full path.
    pub real_path: String,
    /// Samples compared (real samples within the simulated run's time span).
    pub samples: usize,
    pub real_mean: f64,
    pub sim_mean: f64,
    /// Mean of (sim − real).
    pub mean_error: f64,
    pub mean_abs_error: f64,
    pub max_abs_error: f64,
    /// Mean absolute error / mean |real| (NaN when the real counter is all zero).
    pub relative_error: f64,
    /// (t, real) and (t, simulated) as compared, for the plot.
    #[serde(skip)]
    pub real: Vec<(f64, f64)>,
    #[serde(skip)]
    pub sim: Vec<(f64, f64)>,
}

fn interpolate(ts: &[(f64, f64)], t: f64) -> Option<f64> {
    let first = ts.first()?;
    let last = ts.last()?;
    if t < first.0 - 1e-9 || t > last.0 + 1e-9 {
        return None;
    }
    let k = ts.partition_point(|p| p.0 < t);
    if k == 0 {
        return Some(first.1);
    }
    if k >= ts.len() {
        return Some(last.1);
    }
    let (a, b) = (ts[k - 1], ts[k]);
    if b.0 - a.0 <= 0.0 {
        return Some(b.1);
    }
    Some(a.1 + (b.1 - a.1) * (t - a.0) / (b.0 - a.0))
}

/// Lines up a simulated run with a real perfmon capture: every counter of `real`
/// that the run has too (by `Object\Counter`), time aligned on the first samples.
pub fn compare(sim: &MemorySink, real: &PerfmonCsv) -> Vec<CounterError> {
    let t_idx = sim.columns.iter().position(|c| c == "time_s");
    let sim_t: Vec<f64> = sim
        .rows
        .iter()
        .enumerate()
        .map(|(k, r)| t_idx.map_or(k as f64, |i| r[i]))
        .collect();
    let t0 = sim_t.first().copied().unwrap_or(0.0);
    // A column of one server of a farm (`\\web1\…`) matches that machine's counter of a
    // capture of several servers; the others match by `Object\Counter` alone.
    let mut by_key: BTreeMap<String, usize> = BTreeMap::new();
    for (i, c) in sim.columns.iter().enumerate() {
        if Some(i) != t_idx
            && let Some(k) = match_key(c)
        {
            let k = match machine_of(c) {
                Some(m) => format!("{}|{k}", m.to_lowercase()),
                None => k,
            };
            by_key.entry(k).or_insert(i);
        }
    }
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (ci, path) in real.counters.iter().enumerate() {
        let Some(key) = match_key(path) else { continue };
        let machine_key = machine_of(path).map(|m| format!("{}|{key}", m.to_lowercase()));
        let Some((key, &si)) = machine_key
            .and_then(|k| by_key.get(&k).map(|si| (k, si)))
            .or_else(|| by_key.get(&key).map(|si| (key, si)))
        else {
            continue;
        };
        if !seen.insert(key) {
            continue;
        }
        let sim_series: Vec<(f64, f64)> = sim
            .rows
            .iter()
            .zip(&sim_t)
            .map(|(r, t)| (t - t0, r[si]))
            .filter(|p| p.1.is_finite())
            .collect();
        let mut pairs = Vec::new();
        for (t, v) in real.times.iter().zip(&real.values[ci]) {
            if !v.is_finite() {
                continue;
            }
            if let Some(s) = interpolate(&sim_series, *t) {
                pairs.push((*t, *v, s));
            }
        }
        if pairs.is_empty() {
            continue;
        }
        let n = pairs.len() as f64;
        let real_mean = pairs.iter().map(|p| p.1).sum::<f64>() / n;
        let sim_mean = pairs.iter().map(|p| p.2).sum::<f64>() / n;
        let mean_error = pairs.iter().map(|p| p.2 - p.1).sum::<f64>() / n;
        let mae = pairs.iter().map(|p| (p.2 - p.1).abs()).sum::<f64>() / n;
        let max = pairs.iter().map(|p| (p.2 - p.1).abs()).fold(0.0, f64::max);
        let real_abs = pairs.iter().map(|p| p.1.abs()).sum::<f64>() / n;
        out.push(CounterError {
            counter: sim.columns[si].clone(),
            real_path: path.clone(),
            samples: pairs.len(),
            real_mean,
            sim_mean,
            mean_error,
            mean_abs_error: mae,
            max_abs_error: max,
            relative_error: if real_abs > 0.0 {
                mae / real_abs
            } else {
                f64::NAN
            },
            real: pairs.iter().map(|p| (p.0, p.1)).collect(),
            sim: sim_series,
        });
    }
    out
}

/// The comparison as a table.
pub fn render(errors: &[CounterError]) -> String {
    let mut s = format!(
        "{:<58} {:>7} {:>12} {:>12} {:>12} {:>12} {:>12} {:>9}\n",
        "counter (Object\\Counter)",
        "samples",
        "real mean",
        "sim mean",
        "mean err",
        "mean |err|",
        "max |err|",
        "relative"
    );
    for e in errors {
        let rel = if e.relative_error.is_finite() {
            format!("{:.1} %", e.relative_error * 100.0)
        } else {
            "-".into()
        };
        s.push_str(&format!(
            "{:<58} {:>7} {:>12.3} {:>12.3} {:>12.3} {:>12.3} {:>12.3} {:>9}\n",
            e.counter,
            e.samples,
            e.real_mean,
            e.sim_mean,
            e.mean_error,
            e.mean_abs_error,
            e.max_abs_error,
            rel
        ));
    }
    s
}

/// Both curves of every compared counter, one panel each.
pub fn compare_figure(title: &str, errors: &[CounterError]) -> Figure {
    Figure::Stack(Stack {
        title: title.to_string(),
        x_label: "seconds from the first sample".into(),
        charts: errors
            .iter()
            .map(|e| Chart {
                title: format!(
                    "{} (mean |error| {:.3}{})",
                    e.counter,
                    e.mean_abs_error,
                    if e.relative_error.is_finite() {
                        format!(", {:.1} %", e.relative_error * 100.0)
                    } else {
                        String::new()
                    }
                ),
                y_label: split_counter(&e.counter).map_or_else(String::new, |c| c.2),
                lines: vec![
                    Line {
                        label: "perfmon (real)".into(),
                        points: e.real.clone(),
                        reference: true,
                        markers: false,
                    },
                    Line {
                        label: "w3sim".into(),
                        points: e.sim.clone(),
                        ..Line::default()
                    },
                ],
                bands: vec![],
                hlines: vec![],
            })
            .collect(),
        ..Stack::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_paths_name_the_machine_and_the_instance_perfmon_shows() {
        assert_eq!(
            perfmon_path("HTTP Service Request Queues\\CurrentQueueSize"),
            "\\\\W3SIM\\HTTP Service Request Queues(DefaultAppPool)\\CurrentQueueSize"
        );
        assert_eq!(
            perfmon_path("ASP.NET\\Requests Queued"),
            "\\\\W3SIM\\ASP.NET\\Requests Queued"
        );
        // A farm's per-server column keeps its server as the machine.
        assert_eq!(
            perfmon_path("\\\\web1\\w3sim\\In Rotation"),
            "\\\\web1\\w3sim\\In Rotation"
        );
        assert_eq!(
            match_key("\\\\web2\\w3sim\\In Rotation").as_deref(),
            Some("w3sim\\in rotation")
        );
    }
}
