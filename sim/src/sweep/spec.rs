//! Sweep files (`experiments/*.sweep.toml`): a base scenario, fixed overrides, axes,
//! how they combine, replications, warm-up, metrics and an optional precision target.
//! See `experiments/SWEEPS.md` for the format.
//!
//! Loading resolves the axes into points and checks every point's scenario, so a
//! sweep never starts with a point that would fail to load. Errors name the file,
//! line, column and key, with the nearest valid key for a misspelling, like scenario
//! errors ([`crate::scenario::load`]).

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::de::DeTable;

use crate::scenario::Scenario;
use crate::scenario::load::{
    Diagnostic, LoadError, NOT_WHOLE, Seg, load_str_in, nearest, parse_path, path_string,
};

/// The most points one sweep file may describe (the most values of one axis, too).
pub const MAX_POINTS: usize = 1_000_000;
/// The most replications of one point.
pub const MAX_REPLICATIONS: u32 = 100_000;
/// The most runs (points × replications) of one sweep file.
pub const MAX_RUNS: u64 = 10_000_000;

/// How axes combine into points.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    /// Every combination of the axes' values (the first axis varies slowest).
    #[default]
    Grid,
    /// The i-th value of every axis together (all axes have the same length).
    Zip,
}

/// Run replications until the 95 % CI half-width of `metric` is under
/// `relative_half_width` × |mean| (or `max_replications` is reached).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Precision {
    pub metric: String,
    pub relative_half_width: f64,
    #[serde(default = "default_max_reps")]
    pub max_replications: u32,
    #[serde(default = "default_min_reps")]
    pub min_replications: u32,
}

fn default_max_reps() -> u32 {
    50
}
fn default_min_reps() -> u32 {
    3
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSweep {
    base: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    replications: Option<u32>,
    #[serde(default)]
    combine: Combine,
    #[serde(default)]
    set: Option<toml::Table>,
    #[serde(default)]
    axes: Vec<RawAxis>,
    #[serde(default)]
    metrics: Option<Vec<String>>,
    #[serde(default)]
    warmup: Option<String>,
    #[serde(default)]
    mser_column: Option<String>,
    #[serde(default)]
    precision: Option<Precision>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAxis {
    path: String,
    #[serde(default)]
    values: Option<Vec<toml::Value>>,
    #[serde(default)]
    range: Option<RawRange>,
    #[serde(default)]
    log: Option<RawLog>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRange {
    from: toml::Value,
    to: toml::Value,
    step: toml::Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    from: toml::Value,
    to: toml::Value,
    points: u32,
}

/// Default metrics aggregated in `points.csv`.
pub const DEFAULT_METRICS: &[&str] = &["503_rate", "failure_rate", "p99_ms", "throughput"];

/// Default time-series column for `warmup = "mser5"`.
pub const DEFAULT_MSER_COLUMN: &str = "w3sim\\Requests In Flight";

/// What was run: the content of `sweep.json`. Everything a merge needs, and nothing
/// that depends on the machine, the shard or the number of jobs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub w3sim_version: String,
    /// The sweep file's name (without its directory) and content.
    pub sweep_file: String,
    pub sweep_toml: String,
    /// The base scenario as written in the sweep file, and its content.
    pub base: String,
    pub base_scenario_toml: String,
    pub combine: Combine,
    /// Replication r of every point runs with seed `seed + r` (common random numbers).
    pub seed: u64,
    /// Replications per point (the minimum when a precision target is set).
    pub replications: u32,
    pub precision: Option<Precision>,
    /// With a precision target, once the sweep is complete (not in a shard's directory,
    /// nor while it runs): the points that reached `max_replications` without meeting it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision_not_met: Option<Vec<PrecisionShortfall>>,
    /// `"scenario"` (the scenario's fixed warm-up) or `"mser5"`.
    pub warmup: String,
    pub mser_column: Option<String>,
    /// Metrics aggregated in points.csv.
    pub metrics: Vec<String>,
    /// The axes' setting paths (columns of runs.csv and points.csv).
    pub axes: Vec<String>,
    pub points: Vec<ManifestPoint>,
}

/// A point that stopped at `max_replications` short of its precision target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrecisionShortfall {
    pub point: usize,
    /// The axes' values, as written.
    pub values: Vec<String>,
    pub replications: u32,
    /// The 95 % half-width of the precision metric over |its mean| (null when it has none:
    /// fewer than two values, or a mean of 0 with a non-zero half-width).
    pub relative_half_width: Option<f64>,
}

/// One point of a sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestPoint {
    pub point: usize,
    /// The axes' values, as written (one per axis).
    pub values: Vec<String>,
    /// Every override applied to the base scenario (fixed ones, then the axes').
    pub overrides: Vec<String>,
}

impl Manifest {
    /// The manifest as `sweep.json` text.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("manifest serialises");
        s.push('\n');
        s
    }

    /// The manifest as it is when the sweep starts: without the results of
    /// its precision target (what `--resume` and `merge` compare).
    pub fn plan_only(&self) -> Manifest {
        Manifest {
            precision_not_met: None,
            ..self.clone()
        }
    }

    /// Whether replication counts are decided by a precision target.
    pub fn adaptive(&self) -> bool {
        self.precision.is_some()
    }

    /// Maximum replications of a point.
    pub fn max_replications(&self) -> u32 {
        match &self.precision {
            Some(p) => p.max_replications,
            None => self.replications,
        }
    }

    pub fn seed_of(&self, replication: u32) -> u64 {
        self.seed.wrapping_add(replication as u64)
    }
}

/// A loaded sweep: its manifest and every point's scenario.
#[derive(Clone, Debug)]
pub struct Sweep {
    pub manifest: Manifest,
    pub scenarios: Vec<Scenario>,
}

use crate::scenario::load::{deserialize_all, line_col, locate};

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
    diags: Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn at(&mut self, span: Option<Range<usize>>, key: &str, message: String, help: Option<String>) {
        let (line, column) = span.map_or((0, 0), |s| line_col(self.text, s.start));
        self.diags.push(Diagnostic {
            file: self.file.to_string(),
            line,
            column,
            key: key.to_string(),
            message,
            help,
        });
    }
}

/// Loads a sweep file; the base scenario's path is relative to the sweep file.
pub fn load_sweep_file(path: &Path) -> Result<Sweep, LoadError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| single(&name, format!("cannot read the sweep file: {e}")))?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let file_name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.clone());
    load_sweep_str(&name, &file_name, &text, &dir)
}

fn single(file: &str, message: String) -> LoadError {
    LoadError {
        diagnostics: vec![Diagnostic {
            file: file.into(),
            line: 0,
            column: 0,
            key: String::new(),
            message,
            help: None,
        }],
    }
}

/// Loads sweep text: `file` names it in diagnostics, `file_name` goes into sweep.json,
/// `dir` is where the base scenario's relative path starts.
pub fn load_sweep_str(
    file: &str,
    file_name: &str,
    text: &str,
    dir: &Path,
) -> Result<Sweep, LoadError> {
    let mut cx = Ctx {
        file,
        text,
        diags: Vec::new(),
    };
    let (mut table, syntax) = DeTable::parse_recoverable(text);
    for e in syntax {
        cx.at(
            e.span(),
            "",
            format!("TOML syntax: {}", e.message().trim()),
            None,
        );
    }
    if !cx.diags.is_empty() {
        return Err(LoadError {
            diagnostics: cx.diags,
        });
    }
    let raw: Option<RawSweep> = deserialize_all(&mut table, |path, span, message, help| {
        cx.at(span, &path_string(path), message, help)
    });
    let raw = match raw {
        Some(r) if cx.diags.is_empty() => r,
        _ => {
            return Err(LoadError {
                diagnostics: cx.diags,
            });
        }
    };
    let key_span = |path: &[Seg]| locate(&table, path);
    let k = |s: &str| Seg::Key(s.to_string());

    // Fixed overrides.
    let mut fixed_at = Vec::new();
    if let Some(set) = &raw.set {
        flatten_set("", &[], set, &mut fixed_at);
    }
    let fixed: Vec<String> = fixed_at.iter().map(|(o, _)| o.clone()).collect();
    // Base scenario.
    let base_path: PathBuf = dir.join(&raw.base);
    let base_text = match std::fs::read_to_string(&base_path) {
        Ok(t) => t,
        Err(e) => {
            cx.at(
                key_span(&[k("base")]),
                "base",
                format!("cannot read the base scenario {}: {e}", base_path.display()),
                Some("the path is relative to the sweep file".into()),
            );
            return Err(LoadError {
                diagnostics: cx.diags,
            });
        }
    };
    // A sweep file given as the base (a sweep of a sweep) is not a scenario: say so rather
    // than list every sweep key as unknown.
    if base_text
        .lines()
        .any(|l| l.trim_start().starts_with("[[axes]]"))
        || base_path.to_string_lossy().ends_with(".sweep.toml")
    {
        cx.at(
            key_span(&[k("base")]),
            "base",
            format!(
                "{} is a sweep file, not a scenario: `base` names the scenario the sweep varies (the file that sweep's own `base` names, say)",
                base_path.display()
            ),
            None,
        );
        return Err(LoadError {
            diagnostics: cx.diags,
        });
    }
    let base_name = base_path.display().to_string();
    let base_scn = match load_str_in(&base_name, &base_text, &fixed, dir) {
        Ok(s) => s,
        Err(e) => {
            let mut d = e.diagnostics;
            for x in &mut d {
                if let Some(o) = x.file.strip_prefix("--set ") {
                    // The [set] key's own line and column in the sweep file.
                    let segs = fixed_at.iter().find(|(f, _)| f == o).map(|(_, s)| s);
                    let mut path = vec![k("set")];
                    path.extend(segs.into_iter().flatten().map(|s| k(s)));
                    let (line, column) =
                        key_span(&path).map_or((0, 0), |s| line_col(text, s.start));
                    x.key = format!("[set] {}", x.key);
                    x.file = file.to_string();
                    (x.line, x.column) = (line, column);
                }
            }
            cx.diags.extend(d);
            return Err(LoadError {
                diagnostics: cx.diags,
            });
        }
    };

    // Axes.
    let mut axes: Vec<(String, Vec<AxisValue>)> = Vec::new();
    // Where each axis of `axes` is written: its index under [[axes]], and the key giving
    // its values (`values`, `range` or `log`).
    let mut axes_at: Vec<(usize, &str)> = Vec::new();
    for (i, a) in raw.axes.iter().enumerate() {
        let at = [k("axes"), Seg::Index(i)];
        let key = format!("axes[{i}]");
        if a.path.trim() == "seed" {
            cx.at(
                key_span(&[k("axes"), Seg::Index(i), k("path")]),
                &format!("{key}.path"),
                "`seed` cannot be an axis: replication r of every point runs with seed + r".into(),
                Some("set the sweep's `seed` to choose the base seed".into()),
            );
            continue;
        }
        let given = [a.values.is_some(), a.range.is_some(), a.log.is_some()]
            .iter()
            .filter(|x| **x)
            .count();
        if given != 1 {
            cx.at(key_span(&at), &key, format!("axis `{}` needs exactly one of `values`, `range` or `log` ({given} given)", a.path),
                Some("values = [\"200/s\", \"400/s\"], range = { from = \"200/s\", to = \"1600/s\", step = \"200/s\" } or log = { from = 10, to = 10000, points = 4 }".into()));
            continue;
        }
        let vals = if let Some(v) = &a.values {
            Ok(v.iter().map(AxisValue::from_toml).collect::<Vec<_>>())
        } else if let Some(r) = &a.range {
            range_values(r).map_err(|m| (m, "range"))
        } else {
            let l = a.log.as_ref().expect("one of the three");
            log_values(l).map_err(|m| (m, "log"))
        };
        match vals {
            Ok(v) if v.is_empty() => cx.at(
                key_span(&at),
                &key,
                format!("axis `{}` has no values", a.path),
                None,
            ),
            Ok(v) => {
                let kind = if a.values.is_some() {
                    "values"
                } else if a.range.is_some() {
                    "range"
                } else {
                    "log"
                };
                axes.push((a.path.trim().to_string(), v));
                axes_at.push((i, kind));
            }
            Err((m, what)) => cx.at(
                key_span(&[k("axes"), Seg::Index(i), k(what)]),
                &format!("{key}.{what}"),
                m,
                None,
            ),
        }
    }
    // Two overrides of one setting (aliases included: `classes[0].x` is `classes.0.x`):
    // the later would silently replace the earlier.
    {
        // (normalised path, name in messages, its place in the file), in the order the
        // overrides are applied: [set] first, then the axes.
        let mut setters: Vec<Setter> = Vec::new();
        for (o, segs) in &fixed_at {
            let key = o.split_once('=').map_or(o.as_str(), |(k, _)| k);
            let Ok(norm) = parse_path(key) else { continue };
            let mut at = vec![k("set")];
            at.extend(segs.iter().map(|s| k(s)));
            let place = key_span(&at).map_or((0, 0), |s| line_col(text, s.start));
            setters.push((
                norm,
                format!("[set] `{key}`"),
                format!("[set] {key}"),
                place,
            ));
        }
        for (i, a) in raw.axes.iter().enumerate() {
            let Ok(norm) = parse_path(&a.path) else {
                continue;
            };
            let place = key_span(&[k("axes"), Seg::Index(i), k("path")])
                .map_or((0, 0), |s| line_col(text, s.start));
            setters.push((
                norm,
                format!("axes[{i}] (path = \"{}\")", a.path),
                format!("axes[{i}].path"),
                place,
            ));
        }
        for (j, (later, later_name, later_key, (line, column))) in setters.iter().enumerate() {
            // The first earlier override that this one replaces (same path, or a part of it).
            let Some((earlier, earlier_name, _, (el, ec))) =
                setters[..j].iter().find(|(e, ..)| e.starts_with(later))
            else {
                continue;
            };
            let what = if earlier == later {
                format!("sets `{}`, as {earlier_name} does", path_string(later))
            } else {
                format!(
                    "sets `{}`, which replaces `{}` set by {earlier_name}",
                    path_string(later),
                    path_string(earlier)
                )
            };
            let at = if *el > 0 {
                format!(" at line {el}, column {ec}")
            } else {
                String::new()
            };
            cx.diags.push(Diagnostic {
                file: file.to_string(),
                line: *line,
                column: *column,
                key: later_key.clone(),
                message: format!("{later_name} {what}{at}: one would silently override the other"),
                help: Some(
                    if later_key.starts_with("axes") && earlier_name.starts_with("[set]") {
                        "remove the [set] key: the axis gives the setting its values".into()
                    } else if later_key.starts_with("axes") {
                        "give each setting one axis, with every value in it".into()
                    } else {
                        "give each setting once under [set]".into()
                    },
                ),
            });
        }
    }
    if raw.combine == Combine::Zip {
        if let Some((_, first)) = axes.first() {
            let n = first.len();
            if axes.iter().any(|(_, v)| v.len() != n) {
                let lens: Vec<String> = axes
                    .iter()
                    .map(|(p, v)| format!("{p}: {}", v.len()))
                    .collect();
                cx.at(
                    key_span(&[k("combine")]),
                    "combine",
                    format!(
                        "combine = \"zip\" needs axes of equal length ({})",
                        lens.join(", ")
                    ),
                    Some("use combine = \"grid\" for every combination".into()),
                );
            }
        }
    }
    let replications = raw.replications.unwrap_or(5);
    if replications == 0 {
        cx.at(
            key_span(&[k("replications")]),
            "replications",
            "must be at least 1".into(),
            None,
        );
    }
    let warmup = match raw.warmup.as_deref() {
        None | Some("scenario") => "scenario".to_string(),
        Some("mser5") => "mser5".to_string(),
        Some(w) => {
            cx.at(key_span(&[k("warmup")]), "warmup", format!("unknown value \"{w}\""),
                Some("accepted values: \"scenario\" (the scenario's fixed warmup), \"mser5\"; a fixed warm-up is a scenario setting: set = { warmup = \"30s\" }".into()));
            String::new()
        }
    };
    if raw.mser_column.is_some() && warmup != "mser5" {
        cx.at(
            key_span(&[k("mser_column")]),
            "mser_column",
            "only used with warmup = \"mser5\"".into(),
            None,
        );
    }
    let mut metrics: Vec<String> = raw
        .metrics
        .clone()
        .unwrap_or_else(|| DEFAULT_METRICS.iter().map(|s| s.to_string()).collect());
    if metrics.is_empty() {
        cx.at(
            key_span(&[k("metrics")]),
            "metrics",
            "lists no metric".into(),
            None,
        );
    }
    if let Some(p) = &raw.precision {
        let at = [k("precision")];
        if !(p.relative_half_width > 0.0 && p.relative_half_width.is_finite()) {
            cx.at(
                key_span(&at),
                "precision.relative_half_width",
                "must be a positive number, e.g. 0.05".into(),
                None,
            );
        }
        if p.min_replications < 2 || p.max_replications < p.min_replications {
            cx.at(
                key_span(&at),
                "precision",
                format!(
                    "need 2 ≤ min_replications ≤ max_replications (got {} and {})",
                    p.min_replications, p.max_replications
                ),
                None,
            );
        }
        if raw.replications.is_some() {
            cx.at(
                key_span(&[k("replications")]),
                "replications",
                "`replications` and `precision` exclude each other".into(),
                Some("use precision.min_replications".into()),
            );
        }
        if !metrics.contains(&p.metric) {
            metrics.push(p.metric.clone());
        }
    }
    // What the plan holds in memory: one entry per point, and the runs are counted in
    // `runs.csv`; a grid's product or a replication count can be far beyond either.
    let n_points: u128 = if raw.combine == Combine::Zip {
        axes.first().map_or(1, |(_, v)| v.len() as u128)
    } else {
        axes.iter().map(|(_, v)| v.len() as u128).product()
    };
    if n_points > MAX_POINTS as u128 {
        let sizes: Vec<String> = axes.iter().map(|(_, v)| v.len().to_string()).collect();
        cx.at(
            key_span(&[k("axes")]),
            "axes",
            format!(
                "{n_points} points ({}): at most {MAX_POINTS} in one sweep",
                sizes.join(" × ")
            ),
            Some("use fewer values, or combine = \"zip\", or split the sweep into files".into()),
        );
    }
    let max_reps = raw
        .precision
        .as_ref()
        .map_or(replications, |p| p.max_replications);
    if max_reps > MAX_REPLICATIONS {
        let key = if raw.precision.is_some() {
            "precision.max_replications"
        } else {
            "replications"
        };
        let at = if raw.precision.is_some() {
            key_span(&[k("precision")])
        } else {
            key_span(&[k("replications")])
        };
        cx.at(
            at,
            key,
            format!("at most {MAX_REPLICATIONS} replications of a point, got {max_reps}"),
            None,
        );
    } else if n_points <= MAX_POINTS as u128 && n_points * max_reps as u128 > MAX_RUNS as u128 {
        cx.at(
            key_span(&[k("replications")]),
            "replications",
            format!(
                "{n_points} points × {max_reps} replications = {} runs: at most {MAX_RUNS} in one sweep",
                n_points * max_reps as u128
            ),
            Some("split the sweep into files, or run it in shards of separate files".into()),
        );
    }
    if !cx.diags.is_empty() {
        return Err(LoadError {
            diagnostics: cx.diags,
        });
    }

    // Points.
    let combos: Vec<Vec<usize>> = if axes.is_empty() {
        vec![Vec::new()]
    } else if raw.combine == Combine::Zip {
        (0..axes[0].1.len()).map(|i| vec![i; axes.len()]).collect()
    } else {
        let mut out = vec![Vec::new()];
        for (_, vals) in &axes {
            out = out
                .into_iter()
                .flat_map(|c| {
                    (0..vals.len()).map(move |j| {
                        let mut c = c.clone();
                        c.push(j);
                        c
                    })
                })
                .collect();
        }
        out
    };
    let mut points = Vec::with_capacity(combos.len());
    let mut scenarios = Vec::with_capacity(combos.len());
    for (pi, combo) in combos.iter().enumerate() {
        let mut overrides = fixed.clone();
        let mut values = Vec::new();
        for (ai, &j) in combo.iter().enumerate() {
            let (path, vals) = &axes[ai];
            overrides.push(format!("{path}={}", vals[j].literal));
            values.push(vals[j].text.clone());
        }
        match load_str_in(&base_name, &base_text, &overrides, dir) {
            Ok(s) => scenarios.push(s),
            Err(e) => {
                let desc: Vec<String> = axes
                    .iter()
                    .zip(&values)
                    .map(|((p, _), v)| format!("{p} = {v}"))
                    .collect();
                // A problem with an axis's value is reported at that value (a `values`
                // entry, or the `range` / `log` that computed it); others at `axes`.
                let mut rest = Vec::new();
                for d in e.diagnostics {
                    let axis = d.file.strip_prefix("--set ").and_then(|o| {
                        let n = fixed.len();
                        overrides[n..].iter().position(|x| x == o)
                    });
                    let Some(ai) = axis else {
                        rest.push(d);
                        continue;
                    };
                    let (ri, kind) = axes_at[ai];
                    let j = combo[ai];
                    // A range or log axis that computed fractional values for a setting
                    // that takes whole numbers: its `from` or `step` is to blame, not the
                    // value it gave.
                    if kind != "values"
                        && d.message.contains(NOT_WHOLE)
                        && let Some((what, message, help)) = not_whole(&raw.axes[ri])
                    {
                        cx.at(
                            key_span(&[k("axes"), Seg::Index(ri), k(kind), k(what)]),
                            &format!("axes[{ri}].{kind}.{what}"),
                            format!("`{}` takes whole numbers: {message}", axes[ai].0),
                            Some(help),
                        );
                        continue;
                    }
                    let (at, key) = if d.message.starts_with("unknown key") {
                        // A misspelt setting: the axis's path is wrong, not its value.
                        (
                            vec![k("axes"), Seg::Index(ri), k("path")],
                            format!("axes[{ri}].path"),
                        )
                    } else if kind == "values" {
                        (
                            vec![k("axes"), Seg::Index(ri), k(kind), Seg::Index(j)],
                            format!("axes[{ri}].values[{j}]"),
                        )
                    } else {
                        (
                            vec![k("axes"), Seg::Index(ri), k(kind)],
                            format!("axes[{ri}].{kind}"),
                        )
                    };
                    cx.at(
                        key_span(&at),
                        &key,
                        format!(
                            "{} = {} (point {pi}: {}): {}",
                            axes[ai].0,
                            values[ai],
                            desc.join(", "),
                            d.message
                        ),
                        d.help,
                    );
                }
                if !rest.is_empty() {
                    cx.at(
                        key_span(&[k("axes")]),
                        "axes",
                        format!(
                            "point {pi} ({}) does not load:\n{}",
                            desc.join(", "),
                            LoadError { diagnostics: rest }
                        ),
                        None,
                    );
                }
                return Err(LoadError {
                    diagnostics: cx.diags,
                });
            }
        }
        points.push(ManifestPoint {
            point: pi,
            values,
            overrides,
        });
    }
    // Metric names and the MSER column, checked against what a run produces.
    let (catalogue, columns) = match super::run::probe_metrics(&scenarios[0]) {
        Ok(x) => x,
        Err(e) => {
            cx.at(
                None,
                "",
                format!("the base scenario does not run: {e}"),
                None,
            );
            return Err(LoadError {
                diagnostics: cx.diags,
            });
        }
    };
    let written = raw.metrics.as_ref().map_or(0, Vec::len);
    for (i, name) in metrics.iter().enumerate() {
        if catalogue.contains(name) {
            continue;
        }
        let (span, key) = if i < written {
            (
                key_span(&[k("metrics"), Seg::Index(i)]),
                format!("metrics[{i}]"),
            )
        } else {
            (
                key_span(&[k("precision"), k("metric")]),
                "precision.metric".to_string(),
            )
        };
        let near = catalogue
            .suggest(name)
            .map(|n| format!("did you mean `{n}`? "))
            .unwrap_or_default();
        cx.at(span, &key, format!("unknown metric `{name}`"), Some(format!(
            "{near}metrics are the derived {} or a dotted path of summary.json such as `latency_ms.all.p95`, `measured.outcomes.503_queue_full` or `valves[0].closings`",
            super::metrics::derived_names().collect::<Vec<_>>().join(", ")
        )));
    }
    if let Some(c) = &raw.mser_column {
        if !columns.contains(c) {
            let near = nearest(c, columns.iter().map(String::as_str))
                .map(|n| format!("did you mean `{n}`? "))
                .unwrap_or_default();
            cx.at(
                key_span(&[k("mser_column")]),
                "mser_column",
                format!("no time-series column `{c}`"),
                Some(format!("{near}columns: {}", columns.join(", "))),
            );
        }
    }
    if !cx.diags.is_empty() {
        return Err(LoadError {
            diagnostics: cx.diags,
        });
    }
    let manifest = Manifest {
        w3sim_version: env!("CARGO_PKG_VERSION").to_string(),
        sweep_file: file_name.to_string(),
        sweep_toml: text.to_string(),
        base: raw.base.clone(),
        base_scenario_toml: base_text,
        combine: raw.combine,
        seed: raw.seed.unwrap_or(base_scn.seed),
        replications: raw
            .precision
            .as_ref()
            .map_or(replications, |p| p.min_replications),
        precision: raw.precision.clone(),
        precision_not_met: None,
        warmup: warmup.clone(),
        mser_column: (warmup == "mser5").then(|| {
            raw.mser_column
                .clone()
                .unwrap_or_else(|| DEFAULT_MSER_COLUMN.to_string())
        }),
        metrics,
        axes: axes.iter().map(|(p, _)| p.clone()).collect(),
        points,
    };
    let _ = raw.name;
    Ok(Sweep {
        manifest,
        scenarios,
    })
}

/// An override of a setting, to find two of one setting: its normalised path, its name in
/// messages, its diagnostic key, and its line and column in the sweep file.
type Setter = (Vec<Seg>, String, String, (usize, usize));

/// Flattens `[set]` (nested tables or quoted dotted keys) into `path=literal` overrides,
/// each with the keys that lead to it under `[set]` (to point at it in the file).
fn flatten_set(prefix: &str, at: &[String], t: &toml::Table, out: &mut Vec<(String, Vec<String>)>) {
    for (k, v) in t {
        let p = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        let mut segs = at.to_vec();
        segs.push(k.clone());
        match v {
            toml::Value::Table(inner) => flatten_set(&p, &segs, inner, out),
            _ => out.push((format!("{p}={v}"), segs)),
        }
    }
}

/// One value of an axis.
#[derive(Clone, Debug, PartialEq)]
pub struct AxisValue {
    /// TOML literal given to the loader (`"200/s"`, `5000`).
    pub literal: String,
    /// As written in the CSV files (`200/s`, `5000`).
    pub text: String,
}

impl AxisValue {
    fn from_toml(v: &toml::Value) -> Self {
        match v {
            toml::Value::String(s) => AxisValue {
                literal: v.to_string(),
                text: s.clone(),
            },
            other => AxisValue {
                literal: other.to_string(),
                text: other.to_string(),
            },
        }
    }
}

/// A number with an optional unit suffix: `200`, `"200/s"`, `"20ms"`.
#[derive(Clone, Debug, PartialEq)]
pub struct Quantity {
    pub value: f64,
    pub unit: String,
    /// Written as an integer (TOML integer, or digits only before the unit).
    pub integer: bool,
}

impl Quantity {
    /// Parses `"200/s"`, `"1.5ms"`, `"10"`.
    pub fn parse(s: &str) -> Option<Quantity> {
        let s = s.trim();
        let end = s
            .char_indices()
            .take_while(|(_, c)| {
                c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E' | '_')
            })
            .map(|(i, c)| i + c.len_utf8())
            .last()
            .unwrap_or(0);
        let mut cut = end;
        while cut > 0 {
            let num = s[..cut].replace('_', "");
            if let Ok(v) = num.parse::<f64>() {
                let integer = num
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b'-' || b == b'+');
                return Some(Quantity {
                    value: v,
                    unit: s[cut..].trim().to_string(),
                    integer,
                });
            }
            cut -= 1;
        }
        None
    }

    /// A TOML integer, float or string such as "200/s".
    pub fn from_toml(v: &toml::Value) -> Result<Quantity, String> {
        match v {
            toml::Value::Integer(i) => Ok(Quantity {
                value: *i as f64,
                unit: String::new(),
                integer: true,
            }),
            toml::Value::Float(f) => Ok(Quantity {
                value: *f,
                unit: String::new(),
                integer: false,
            }),
            toml::Value::String(s) => Quantity::parse(s).ok_or_else(|| {
                format!("\"{s}\" is not a number with an optional unit, such as \"200/s\"")
            }),
            other => Err(format!("{other} is not a number")),
        }
    }

    /// The value `v` written like this quantity: an integer stays an integer, a unit is kept.
    pub fn with_value(&self, v: f64) -> AxisValue {
        let num = if self.integer {
            format!("{}", v.round() as i64)
        } else {
            format!("{}", round_sig(v, 10))
        };
        if self.unit.is_empty() {
            let lit = if self.integer {
                num.clone()
            } else {
                toml::Value::Float(num.parse().unwrap_or(v)).to_string()
            };
            AxisValue {
                literal: lit,
                text: num,
            }
        } else {
            let text = format!("{num}{}", self.unit);
            AxisValue {
                literal: toml::Value::String(text.clone()).to_string(),
                text,
            }
        }
    }
}

/// Rounds to `digits` significant digits.
pub fn round_sig(x: f64, digits: i32) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let p = digits - 1 - x.abs().log10().floor() as i32;
    if !(-300..=300).contains(&p) {
        return x;
    }
    let f = 10f64.powi(p);
    (x * f).round() / f
}

fn same_units(qs: &[&Quantity]) -> Result<(), String> {
    let u = &qs[0].unit;
    if qs.iter().any(|q| &q.unit != u) {
        let us: Vec<String> = qs.iter().map(|q| format!("\"{}\"", q.unit)).collect();
        return Err(format!(
            "from, to and step must have the same unit (got {})",
            us.join(", ")
        ));
    }
    Ok(())
}

fn range_values(r: &RawRange) -> Result<Vec<AxisValue>, String> {
    let (from, to, step) = (
        Quantity::from_toml(&r.from)?,
        Quantity::from_toml(&r.to)?,
        Quantity::from_toml(&r.step)?,
    );
    same_units(&[&from, &to, &step])?;
    if step.value.is_nan() || step.value <= 0.0 {
        return Err("step must be positive".into());
    }
    if to.value < from.value {
        return Err(format!("to ({}) is below from ({})", to.value, from.value));
    }
    let n = ((to.value - from.value) / step.value * (1.0 + 1e-12) + 1e-9).floor() as usize + 1;
    if n > MAX_POINTS {
        return Err(format!("{n} values: at most {MAX_POINTS}"));
    }
    let q = Quantity {
        integer: from.integer && step.integer,
        ..from.clone()
    };
    Ok((0..n)
        .map(|i| q.with_value(from.value + i as f64 * step.value))
        .collect())
}

/// Why a range or log axis gives fractional values (for a setting that takes whole
/// numbers): the key to blame (`from` or `step`), what is wrong with it and the axis
/// written in whole numbers. `None` when its values are whole.
fn not_whole(a: &RawAxis) -> Option<(&'static str, String, String)> {
    let q = |v: &toml::Value| Quantity::from_toml(v).ok();
    let whole = |q: &Quantity, v: f64| {
        Quantity {
            integer: true,
            ..q.clone()
        }
        .with_value(v)
        .literal
    };
    let must = |q: &Quantity, v: &toml::Value| {
        if q.value.fract() == 0.0 {
            format!("must be written without a decimal point, got {v}")
        } else {
            format!("must be whole, got {v}")
        }
    };
    if let Some(r) = &a.range {
        let (from, to, step) = (q(&r.from)?, q(&r.to)?, q(&r.step)?);
        let (what, bad, v) = if !from.integer {
            ("from", &from, &r.from)
        } else if !step.integer {
            ("step", &step, &r.step)
        } else {
            return None;
        };
        let (f, t) = (from.value.ceil(), to.value.floor());
        let st = step.value.round().max(1.0);
        Some((
            what,
            format!("the range's {what} {}", must(bad, v)),
            format!(
                "e.g. range = {{ from = {}, to = {}, step = {} }}",
                whole(&from, f),
                whole(&to, t),
                whole(&step, st)
            ),
        ))
    } else if let Some(l) = &a.log {
        let (from, to) = (q(&l.from)?, q(&l.to)?);
        if from.integer {
            return None;
        }
        Some((
            "from",
            format!(
                "a log axis's from {} (a whole from rounds its points to whole numbers)",
                must(&from, &l.from)
            ),
            format!(
                "e.g. log = {{ from = {}, to = {}, points = {} }}",
                whole(&from, from.value.ceil().max(1.0)),
                whole(&to, to.value.floor()),
                l.points
            ),
        ))
    } else {
        None
    }
}

fn log_values(l: &RawLog) -> Result<Vec<AxisValue>, String> {
    let (from, to) = (Quantity::from_toml(&l.from)?, Quantity::from_toml(&l.to)?);
    same_units(&[&from, &to])?;
    if !(from.value > 0.0 && to.value > from.value) {
        return Err("a log range needs 0 < from < to".into());
    }
    if l.points < 2 {
        return Err("a log range needs at least 2 points".into());
    }
    if l.points as u64 > MAX_POINTS as u64 {
        return Err(format!("{} points: at most {MAX_POINTS}", l.points));
    }
    let n = l.points as usize;
    let ratio = to.value / from.value;
    let mut out: Vec<AxisValue> = Vec::with_capacity(n);
    for i in 0..n {
        let v = if i + 1 == n {
            to.value
        } else {
            from.value * ratio.powf(i as f64 / (n - 1) as f64)
        };
        let v = if from.integer {
            v.round()
        } else {
            round_sig(v, 4)
        };
        let av = Quantity {
            integer: from.integer,
            ..from.clone()
        }
        .with_value(v);
        if out.last() != Some(&av) {
            out.push(av);
        }
    }
    Ok(out)
}
