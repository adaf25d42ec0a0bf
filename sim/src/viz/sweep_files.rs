//! A sweep's and a capacity search's files read back for `plot` and `report`:
//! `points.csv`, `sweep.json` and `capacity.json`.
//!
//! w3sim writes each of them whole (atomically) when a sweep completes or a search ends,
//! so anything it never writes means the file was edited, cut short or replaced since:
//! it is refused (exit 2) with the file, the line (CSV) or the key (JSON), what was
//! expected and how to get the file back, never drawn as if it were right. What w3sim
//! itself writes stays accepted: an empty cell of `points.csv` (a metric no run of a
//! point has, a CI of one replication), a `null` in `capacity.json` (no value passed, a CI
//! of one replication, a mean of a metric no run had), `capacity.json` files written
//! before `goal` and `answer` existed, and `points.csv` without `sweep.json` (copied
//! alone; it is then checked against itself only).

use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::Path;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::sweep::capacity::Slo;
use crate::sweep::spec::Manifest;

/// `points.csv` read back.
#[derive(Clone, Debug, Default)]
pub struct Points {
    pub axes: Vec<String>,
    /// Metric names (from the `<metric>_mean` columns), in file order.
    pub metrics: Vec<String>,
    pub rows: Vec<PointRow>,
}

#[derive(Clone, Debug, Default)]
pub struct PointRow {
    /// The axes' values as written (`600/s`).
    pub axis_values: Vec<String>,
    pub replications: u32,
    /// Every numeric column with a value, by name (`503_rate_mean`, `503_rate_ci_low`,
    /// …); a column whose cell is empty is absent.
    pub values: BTreeMap<String, f64>,
}

impl PointRow {
    pub fn mean(&self, m: &str) -> Option<f64> {
        self.values.get(&format!("{m}_mean")).copied()
    }
    pub fn ci(&self, m: &str) -> Option<(f64, f64)> {
        Some((
            *self.values.get(&format!("{m}_ci_low"))?,
            *self.values.get(&format!("{m}_ci_high"))?,
        ))
    }
}

/// One value tried: (value, pass, per SLO text: mean, ci_low, ci_high).
pub type Evaluation = (f64, bool, Vec<(String, f64, f64, f64)>);

/// The part of `capacity.json` the pictures use.
#[derive(Clone, Debug, Default)]
pub struct Capacity {
    pub vary: String,
    pub unit: String,
    /// The search's answer: the capacity, or the lowest passing value (`--lowest`).
    pub capacity: Option<f64>,
    /// What the answer is called on the pictures: "capacity" or "lowest passing".
    pub answer_label: String,
    pub crossing_ci: (Option<f64>, Option<f64>),
    pub broke_first: Option<String>,
    pub slos: Vec<Slo>,
    /// value → (pass, per SLO text: mean, ci_low, ci_high); a mean w3sim wrote as `null`
    /// (no run had the metric) leaves the SLO out at that value, a null CI bound is NaN.
    pub evaluations: Vec<Evaluation>,
    pub raw: serde_json::Value,
}

// ---------------------------------------------------------------------------------
// Messages

/// How to get a damaged `points.csv` back.
fn points_help(dir: &Path, m: Option<&Manifest>) -> String {
    format!(
        "w3sim writes points.csv whole when a sweep completes, so this one was edited or cut short since (or is left from another sweep): `w3sim sweep {} --out {} --resume` writes it again from runs.csv without running anything again (for merged shards, `w3sim merge` them again)",
        m.map_or("SWEEP.toml", |m| m.sweep_file.as_str()),
        dir.display()
    )
}

/// How to get a damaged `sweep.json` back.
fn manifest_help() -> String {
    "w3sim writes sweep.json when a sweep starts and never edits it, so this one was edited, cut short or replaced: restore it from a copy, or run the sweep again into a new --out (`--resume` refuses a directory whose sweep.json is not its sweep's)".to_string()
}

/// How to get a damaged `capacity.json` back.
fn capacity_help(dir: &Path) -> String {
    format!(
        "w3sim writes capacity.json whole when a capacity search ends, so this one was edited or cut short since: run the search again (`w3sim capacity SCENARIO --vary … --slo … --out {}`)",
        dir.display()
    )
}

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// An error in a file, at a line (0: the whole file), with what to do about it.
fn at(path: &Path, line: u64, msg: impl Display, help: &str) -> String {
    if line == 0 {
        format!("{}: {msg}\n  help: {help}", path.display())
    } else {
        format!("{}:{line}: {msg}\n  help: {help}", path.display())
    }
}

/// serde_json's message without its position (given apart) and with Rust's type names
/// in words.
fn json_msg(e: &serde_json::Error) -> String {
    let s = e.to_string();
    let s = s
        .strip_suffix(&format!(" at line {} column {}", e.line(), e.column()))
        .unwrap_or(&s)
        .to_string();
    s.replace("expected f64", "expected a number")
        .replace("expected u64", "expected a whole number")
        .replace("expected u32", "expected a whole number")
        .replace("expected usize", "expected a whole number")
}

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Reads a JSON file w3sim wrote into `T`: not JSON, not an object, or a key missing or
/// of the wrong type is an error naming the file, the line and column and the key.
/// `what` names the file's kind ("a sweep manifest").
fn read_json<T: DeserializeOwned>(
    path: &Path,
    what: &str,
    help: &str,
) -> Result<(T, serde_json::Value), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let raw: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        let cut = if e.is_eof() {
            " (the file ends too early: cut short?)"
        } else {
            ""
        };
        format!(
            "{}:{}:{}: not JSON: {}{cut}\n  help: {help}",
            path.display(),
            e.line(),
            e.column(),
            json_msg(&e)
        )
    })?;
    if !raw.is_object() {
        return Err(at(
            path,
            0,
            format!(
                "not {what}: expected a JSON object, found {}",
                json_type(&raw)
            ),
            help,
        ));
    }
    let mut de = serde_json::Deserializer::from_str(&text);
    let v = serde_path_to_error::deserialize::<_, T>(&mut de).map_err(|e| {
        let key = e.path().to_string();
        let root = key == "." || key.is_empty();
        let inner = e.inner();
        let msg = json_msg(inner);
        // serde's "missing field `x`" is said of the object that lacks it: name the key.
        let missing = msg
            .strip_prefix("missing field `")
            .and_then(|m| m.strip_suffix('`'));
        let what_is_wrong = match (missing, root) {
            (Some(m), true) => format!("not {what}: key `{m}` is missing"),
            (Some(m), false) => format!("key `{key}.{m}` is missing"),
            (None, true) => format!("not {what}: {msg}"),
            (None, false) => format!("key `{key}`: {msg}"),
        };
        format!(
            "{}:{}:{}: {what_is_wrong}\n  help: {help}",
            path.display(),
            inner.line(),
            inner.column(),
        )
    })?;
    Ok((v, raw))
}

/// A JSON value that must be present but may be `null`.
fn nullable<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Option::<T>::deserialize(d)
}

// ---------------------------------------------------------------------------------
// sweep.json

/// Reads `DIR/sweep.json` if there is one: it must be the manifest w3sim wrote (every
/// key of `w3sim sweep`'s, each point with one value per axis).
pub fn read_manifest(dir: &Path) -> Result<Option<Manifest>, String> {
    let path = dir.join("sweep.json");
    if !path.is_file() {
        return Ok(None);
    }
    let help = manifest_help();
    let (m, _) = read_json::<Manifest>(&path, "a sweep manifest", &help)?;
    let bad = |key: String, msg: String| Err(at(&path, 0, format!("key `{key}`: {msg}"), &help));
    if m.metrics.is_empty() {
        return bad(
            "metrics".into(),
            "empty: a sweep aggregates at least one metric".into(),
        );
    }
    if m.points.is_empty() {
        return bad(
            "points".into(),
            "empty: a sweep has at least one point".into(),
        );
    }
    for (i, p) in m.points.iter().enumerate() {
        if p.point != i {
            return bad(
                format!("points[{i}].point"),
                format!(
                    "{} where {i} comes next (the points are numbered 0, 1, 2, … in order)",
                    p.point
                ),
            );
        }
        if p.values.len() != m.axes.len() {
            return bad(
                format!("points[{i}].values"),
                format!(
                    "{} value(s) where the sweep has {} axis/axes (`axes`: {})",
                    p.values.len(),
                    m.axes.len(),
                    m.axes.join(", ")
                ),
            );
        }
    }
    Ok(Some(m))
}

/// The sweep's name: the sweep file's stem from `sweep.json`, else the directory's name.
pub fn sweep_name(dir: &Path, m: Option<&Manifest>) -> String {
    m.map(|m| {
        let f = Path::new(&m.sweep_file)
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        f.trim_end_matches(".toml")
            .trim_end_matches(".sweep")
            .to_string()
    })
    .filter(|s| !s.is_empty())
    .unwrap_or_else(|| {
        std::fs::canonicalize(dir)
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "sweep".into())
    })
}

// ---------------------------------------------------------------------------------
// points.csv

fn cell_name(headers: &[String], k: usize) -> String {
    format!("column {} (`{}`)", k + 1, headers[k])
}

/// Reads `points.csv` on its own (no `sweep.json` to check it against).
pub fn read_points(path: &Path) -> Result<Points, String> {
    read_points_of(path, None)
}

/// Reads `DIR/points.csv`, checked against `DIR/sweep.json` when there is one.
pub fn read_sweep_points(dir: &Path, m: Option<&Manifest>) -> Result<Points, String> {
    read_points_of(&dir.join("points.csv"), m)
}

/// Reads `points.csv`: `point`, the axes, `replications`, with a precision target
/// `precision_met` and `relative_half_width`, then `<metric>_mean`, `_ci_low`,
/// `_ci_high` per metric; one row per point, in order. A cell is a finite number or
/// empty (a mean no run had, a CI of fewer than two values). With the manifest, the axes,
/// metrics, points and replication counts must be its own.
pub fn read_points_of(path: &Path, m: Option<&Manifest>) -> Result<Points, String> {
    let help = points_help(parent(path), m);
    let err = |line: u64, msg: String| at(path, line, msg, &help);
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.is_empty() {
        return Err(err(
            0,
            "empty: expected a header row and one row per point".into(),
        ));
    }
    if !bytes.ends_with(b"\n") {
        let line = bytes.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
        return Err(err(
            line,
            "the file ends in the middle of this line (w3sim ends every row with a line end): it was cut short".into(),
        ));
    }
    let mut r = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(&bytes[..]);
    let headers: Vec<String> = r
        .headers()
        .map_err(|e| err(1, e.to_string()))?
        .iter()
        .map(str::to_string)
        .collect();
    if headers.first().map(String::as_str) != Some("point") {
        return Err(err(
            1,
            format!(
                "not a w3sim points.csv: its first column is {}, expected `point`",
                headers
                    .first()
                    .map_or_else(|| "missing".to_string(), |h| format!("`{h}`"))
            ),
        ));
    }
    if let Some(k) = (1..headers.len()).find(|&k| headers[..k].contains(&headers[k])) {
        return Err(err(1, format!("{} appears twice", cell_name(&headers, k))));
    }
    const LAYOUT: &str = "`point`, the axes, `replications`, then per metric `<metric>_mean`, `<metric>_ci_low`, `<metric>_ci_high`";
    let rep = headers
        .iter()
        .position(|h| h == "replications")
        .ok_or_else(|| err(1, format!("no `replications` column (expected {LAYOUT})")))?;
    let axes = headers[1..rep].to_vec();
    let mut k = rep + 1;
    let precision = headers.get(k).is_some_and(|h| h == "precision_met");
    if precision {
        if headers
            .get(k + 1)
            .is_none_or(|h| h != "relative_half_width")
        {
            return Err(err(
                1,
                format!(
                    "column {} should be `relative_half_width`, after `precision_met` (found {})",
                    k + 2,
                    headers
                        .get(k + 1)
                        .map_or_else(|| "none".to_string(), |h| format!("`{h}`"))
                ),
            ));
        }
        k += 2;
    }
    let mut metrics = Vec::new();
    while k < headers.len() {
        let Some(base) = headers[k].strip_suffix("_mean") else {
            return Err(err(
                1,
                format!(
                    "{}: expected a `<metric>_mean` column (expected {LAYOUT})",
                    cell_name(&headers, k)
                ),
            ));
        };
        for (j, s) in ["_ci_low", "_ci_high"].into_iter().enumerate() {
            let want = format!("{base}{s}");
            match headers.get(k + 1 + j) {
                Some(h) if *h == want => {}
                got => {
                    return Err(err(
                        1,
                        format!(
                            "column {}: expected `{want}` after `{}`, found {} (a column is missing or was renamed)",
                            k + 2 + j,
                            headers[k + j],
                            got.map_or_else(
                                || "the end of the header".to_string(),
                                |h| format!("`{h}`")
                            )
                        ),
                    ));
                }
            }
        }
        metrics.push(base.to_string());
        k += 3;
    }
    if metrics.is_empty() {
        return Err(err(
            1,
            format!("no metric columns after `replications` (expected {LAYOUT})"),
        ));
    }
    if let Some(m) = m {
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        if axes != m.axes {
            return Err(err(
                1,
                format!(
                    "its axis columns are {} but sweep.json's axes are {}",
                    list(&axes),
                    list(&m.axes)
                ),
            ));
        }
        if metrics != m.metrics {
            return Err(err(
                1,
                format!(
                    "its metrics are {} but sweep.json's are {}",
                    list(&metrics),
                    list(&m.metrics)
                ),
            ));
        }
        if precision != m.precision.is_some() {
            return Err(err(
                1,
                if precision {
                    "it has `precision_met` and `relative_half_width` columns but sweep.json has no precision target".to_string()
                } else {
                    "it has no `precision_met` and `relative_half_width` columns but sweep.json has a precision target".to_string()
                },
            ));
        }
    }
    // The numeric columns: `relative_half_width` and the metrics'.
    let first_num = rep + 1 + usize::from(precision);
    let mut rows = Vec::new();
    let mut last_line = 1;
    for rec in r.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            err(line, e.to_string())
        })?;
        let line = rec.position().map_or(0, |p| p.line());
        last_line = line;
        let at_cell =
            |k: usize, msg: String| err(line, format!("{}: {msg}", cell_name(&headers, k)));
        if rec.len() != headers.len() {
            return Err(err(
                line,
                format!(
                    "{} cell(s) where the header has {} columns: the row was cut short or cells were added or removed",
                    rec.len(),
                    headers.len()
                ),
            ));
        }
        let index = rows.len();
        let point = rec[0].trim();
        match point.parse::<usize>() {
            Ok(p) if p == index => {}
            Ok(p) => {
                return Err(at_cell(
                    0,
                    format!(
                        "point {p} where point {index} comes next (one row per point, numbered 0, 1, 2, … in order)"
                    ),
                ));
            }
            Err(_) => {
                return Err(at_cell(
                    0,
                    format!(
                        "`{point}` is not a point number (expected {index}: one row per point, numbered 0, 1, 2, … in order)"
                    ),
                ));
            }
        }
        let reps_cell = rec[rep].trim();
        let Ok(replications) = reps_cell.parse::<u32>() else {
            return Err(at_cell(
                rep,
                format!(
                    "`{reps_cell}` is not a whole number (expected the number of replications of the point)"
                ),
            ));
        };
        if precision && !matches!(rec[rep + 1].trim(), "true" | "false") {
            return Err(at_cell(
                rep + 1,
                format!("`{}` is neither `true` nor `false`", rec[rep + 1].trim()),
            ));
        }
        let mut values = BTreeMap::new();
        for k in first_num..headers.len() {
            let cell = rec[k].trim();
            if cell.is_empty() {
                continue;
            }
            match cell.parse::<f64>() {
                Ok(v) if v.is_finite() => {
                    values.insert(headers[k].clone(), v);
                }
                Ok(_) => {
                    return Err(at_cell(
                        k,
                        format!(
                            "`{cell}` is not a finite number (w3sim leaves a cell empty where a metric has no value)"
                        ),
                    ));
                }
                Err(_) => {
                    return Err(at_cell(
                        k,
                        format!(
                            "`{cell}` is not a number (expected a number, or an empty cell where a metric has no value)"
                        ),
                    ));
                }
            }
        }
        // A metric's mean and interval as w3sim writes them: both bounds or neither
        // (fewer than two values), an interval only with a mean, low ≤ mean ≤ high.
        for (i, name) in metrics.iter().enumerate() {
            let k = rep + 1 + if precision { 2 } else { 0 } + 3 * i;
            let get = |j: usize| values.get(&headers[k + j]).copied();
            let (mean, low, high) = (get(0), get(1), get(2));
            if low.is_some() != high.is_some() {
                let (empty, full) = if low.is_some() { (2, 1) } else { (1, 2) };
                return Err(at_cell(
                    k + empty,
                    format!(
                        "empty but `{}` is not (expected both bounds of the 95 % CI, or neither with fewer than two replications)",
                        headers[k + full]
                    ),
                ));
            }
            if let (None, Some(_)) = (mean, low) {
                return Err(at_cell(
                    k,
                    format!(
                        "empty but `{name}`'s interval is not (expected a mean wherever there is an interval)"
                    ),
                ));
            }
            if let (Some(x), Some(a), Some(b)) = (mean, low, high)
                && !(a <= x && x <= b)
            {
                return Err(at_cell(
                    k,
                    format!(
                        "{x} is outside its 95 % CI [{a}, {b}] (expected `{name}_ci_low` ≤ `{name}_mean` ≤ `{name}_ci_high`)"
                    ),
                ));
            }
        }
        let axis_values: Vec<String> = (1..rep).map(|k| rec[k].to_string()).collect();
        if let Some(m) = m {
            let Some(mp) = m.points.get(index) else {
                return Err(err(
                    line,
                    format!(
                        "point {index}: sweep.json has {} point(s) (0 to {})",
                        m.points.len(),
                        m.points.len() - 1
                    ),
                ));
            };
            if let Some(a) = (0..axis_values.len()).find(|&a| axis_values[a] != mp.values[a]) {
                return Err(at_cell(
                    1 + a,
                    format!(
                        "`{}` where sweep.json has `{}` for point {index}",
                        axis_values[a], mp.values[a]
                    ),
                ));
            }
            let (lo, hi) = (m.replications, m.max_replications());
            if replications < lo || replications > hi {
                let asked = if lo == hi {
                    format!("{lo}")
                } else {
                    format!("{lo} to {hi}")
                };
                return Err(at_cell(
                    rep,
                    format!("{replications} where sweep.json asks {asked} replications per point"),
                ));
            }
        }
        rows.push(PointRow {
            axis_values,
            replications,
            values,
        });
    }
    if rows.is_empty() {
        return Err(err(
            0,
            "a header and no rows (expected one row per point)".into(),
        ));
    }
    if let Some(m) = m
        && rows.len() != m.points.len()
    {
        return Err(err(
            last_line,
            format!(
                "the last row is point {}, but sweep.json has {} points (0 to {}): rows are missing",
                rows.len() - 1,
                m.points.len(),
                m.points.len() - 1
            ),
        ));
    }
    Ok(Points {
        axes,
        metrics,
        rows,
    })
}

// ---------------------------------------------------------------------------------
// capacity.json

/// `capacity.json` as w3sim writes it (`sweep::capacity::CapacityReport`). Keys the
/// pictures or the report use are required (`null` where w3sim writes one); `goal`,
/// `answer` and what came with them are optional (older files lack them), but of the
/// right type when present. Unknown keys are ignored (newer files).
#[derive(Deserialize)]
#[serde(expecting = "an object with the keys of a capacity search")]
struct CapacityFile {
    #[serde(default)]
    #[allow(dead_code)]
    scenario: Option<String>,
    vary: String,
    unit: String,
    slos: Vec<SloFile>,
    #[serde(default)]
    #[allow(dead_code)]
    replications: Option<u32>,
    #[serde(default)]
    #[allow(dead_code)]
    seed: Option<u64>,
    #[serde(deserialize_with = "nullable")]
    capacity: Option<f64>,
    #[serde(default)]
    #[allow(dead_code)]
    capacity_setting: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    interval: Option<[Option<f64>; 2]>,
    #[serde(default)]
    #[allow(dead_code)]
    crossing_estimate: Option<f64>,
    crossing_ci: [Option<f64>; 2],
    #[serde(deserialize_with = "nullable")]
    broke_first: Option<BrokeFirstFile>,
    #[serde(default)]
    #[allow(dead_code)]
    lower_edge: Option<LowerEdgeFile>,
    #[serde(default)]
    goal: Option<Goal>,
    #[serde(default)]
    answer: Option<f64>,
    #[serde(default)]
    #[allow(dead_code)]
    answer_setting: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    note: Option<String>,
    evaluations: Vec<EvaluationFile>,
}

#[derive(Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Goal {
    Highest,
    Lowest,
}

#[derive(Deserialize)]
#[serde(expecting = "an SLO: an object with its `text`")]
struct SloFile {
    text: String,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct BrokeFirstFile {
    slo: String,
    first_failed_at: f64,
    #[serde(deserialize_with = "nullable")]
    mean_there: Option<f64>,
    #[serde(deserialize_with = "nullable")]
    threshold: Option<f64>,
    causes: Vec<String>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct LowerEdgeFile {
    lowest_passing: f64,
    lowest_passing_setting: String,
    highest_failing_below: f64,
    failing_there: Vec<String>,
}

#[derive(Deserialize)]
#[serde(expecting = "a value tried: an object with `value`, `pass` and `slos`")]
struct EvaluationFile {
    value: f64,
    #[serde(default)]
    #[allow(dead_code)]
    setting: Option<String>,
    pass: bool,
    slos: Vec<SloResultFile>,
}

#[derive(Deserialize)]
#[serde(expecting = "an SLO's result: an object with `slo`, `mean`, `ci_low`, `ci_high`")]
struct SloResultFile {
    slo: String,
    #[serde(deserialize_with = "nullable")]
    mean: Option<f64>,
    #[serde(deserialize_with = "nullable")]
    ci_low: Option<f64>,
    #[serde(deserialize_with = "nullable")]
    ci_high: Option<f64>,
    #[serde(default)]
    #[allow(dead_code)]
    holds: Option<bool>,
}

/// Reads `capacity.json`: see [`CapacityFile`] for what is required. Every SLO's text
/// must parse, and every value tried must have one result per SLO, named by its text.
pub fn read_capacity(path: &Path) -> Result<Capacity, String> {
    let help = capacity_help(parent(path));
    let (f, raw) = read_json::<CapacityFile>(path, "a capacity search", &help)?;
    let bad = |key: String, msg: String| at(path, 0, format!("key `{key}`: {msg}"), &help);
    let mut slos = Vec::with_capacity(f.slos.len());
    for (i, s) in f.slos.iter().enumerate() {
        slos.push(Slo::parse(&s.text).map_err(|e| bad(format!("slos[{i}].text"), e))?);
    }
    if f.goal.is_some() && raw.get("answer").is_none() {
        return Err(at(
            path,
            0,
            "key `answer` is missing: a capacity.json with `goal` has its `answer` (a number, or null when no value passed)",
            &help,
        ));
    }
    let mut evaluations = Vec::with_capacity(f.evaluations.len());
    for (i, ev) in f.evaluations.iter().enumerate() {
        for (j, r) in ev.slos.iter().enumerate() {
            if !slos.iter().any(|s| s.text == r.slo) {
                return Err(bad(
                    format!("evaluations[{i}].slos[{j}].slo"),
                    format!(
                        "\"{}\" is not one of the search's SLOs (`slos`: {})",
                        r.slo,
                        slo_list(&slos)
                    ),
                ));
            }
            if ev.slos[..j].iter().any(|o| o.slo == r.slo) {
                return Err(bad(
                    format!("evaluations[{i}].slos[{j}].slo"),
                    format!("\"{}\" has a second result at this value", r.slo),
                ));
            }
        }
        if let Some(s) = slos
            .iter()
            .find(|s| !ev.slos.iter().any(|r| r.slo == s.text))
        {
            return Err(bad(
                format!("evaluations[{i}].slos"),
                format!(
                    "no result for SLO \"{}\" (expected one for each of {})",
                    s.text,
                    slo_list(&slos)
                ),
            ));
        }
        let results = ev
            .slos
            .iter()
            .filter_map(|r| {
                Some((
                    r.slo.clone(),
                    r.mean?,
                    r.ci_low.unwrap_or(f64::NAN),
                    r.ci_high.unwrap_or(f64::NAN),
                ))
            })
            .collect();
        evaluations.push((ev.value, ev.pass, results));
    }
    // Since `goal` exists, `answer` is the answer (the capacity or the lowest passing
    // value); older files have only `capacity`.
    let (capacity, lowest) = match &f.goal {
        Some(g) => (f.answer, *g == Goal::Lowest),
        None => (f.capacity, false),
    };
    Ok(Capacity {
        vary: f.vary,
        unit: f.unit,
        capacity,
        answer_label: if lowest {
            "lowest passing".into()
        } else {
            "capacity".into()
        },
        crossing_ci: (f.crossing_ci[0], f.crossing_ci[1]),
        broke_first: f.broke_first.map(|b| b.slo),
        slos,
        evaluations,
        raw,
    })
}

fn slo_list(slos: &[Slo]) -> String {
    slos.iter()
        .map(|s| format!("\"{}\"", s.text))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads `DIR/capacity.json` if there is one.
pub fn read_dir_capacity(dir: &Path) -> Result<Option<Capacity>, String> {
    let p = dir.join("capacity.json");
    if p.is_file() {
        read_capacity(&p).map(Some)
    } else {
        Ok(None)
    }
}

/// What plot and report read of a sweep or capacity directory, every file checked.
pub struct SweepDir {
    pub name: String,
    pub manifest: Option<Manifest>,
    pub points: Option<Points>,
    pub capacity: Option<Capacity>,
}

/// Reads a sweep or capacity directory: `sweep.json`, `points.csv` (checked against it)
/// and `capacity.json`, each if present.
pub fn read_sweep_dir(dir: &Path) -> Result<SweepDir, String> {
    let manifest = read_manifest(dir)?;
    let points = if dir.join("points.csv").is_file() {
        Some(read_sweep_points(dir, manifest.as_ref())?)
    } else {
        None
    };
    let capacity = read_dir_capacity(dir)?;
    Ok(SweepDir {
        name: sweep_name(dir, manifest.as_ref()),
        manifest,
        points,
        capacity,
    })
}
