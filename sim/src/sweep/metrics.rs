//! A run's metrics: every numeric leaf of its summary under its dotted path, plus the
//! derived metrics sweeps and SLOs are usually written in.
//!
//! The summary is treated generically (`serde_json::to_value`), so outcomes, gauges and
//! fields added later become metrics without code changes: `measured.outcomes.503_queue_full`,
//! `gauges.http_sys.CurrentQueueSize.peak`, `latency_ms.all.p99`, … and elements of lists
//! under `[i]`: `valves[0].closings`, `farm.servers[1].removals`. `wall_seconds` (not
//! deterministic) and `seed` (a column of its own) are left out, at any depth. An optional
//! value that is `null` in a run is missing from that run's metrics; [`MetricCatalogue`]
//! knows it (and every other name a run may have) before anything runs.
//!
//! Outcome counts are metrics whether or not the outcome occurred: a farm's summary lists
//! only the outcomes that occurred, so every outcome a run can have (the servers' and, for
//! a farm, `client_timeout` and `503_load_balancer_no_server`) is added as 0 under
//! `outcomes.`, `measured.outcomes.` (and a farm's `farm.attempt_outcomes.`) when absent.
//! A run without an outcome thus counts as 0 in means over replications, never as missing.

use std::collections::{BTreeMap, BTreeSet};

use w3sim_models::request::Outcome;

use crate::Summary;

/// Derived metrics, in the order they appear in `runs.csv`, with their definitions.
pub const DERIVED: &[(&str, &str)] = &[
    (
        "503_rate",
        "all 503 outcomes (every `measured.outcomes.503*`) / `measured.arrived`: the share of requests that arrived in the measured window and were refused with a 503",
    ),
    (
        "failure_rate",
        "`measured.failed` / `measured.arrived`: every failure outcome (503s, socket errors, timeouts, …) per arrival in the window",
    ),
    (
        "p50_ms",
        "`latency_ms.all.p50`: median response time of successful requests (ms)",
    ),
    ("p95_ms", "`latency_ms.all.p95` (ms)"),
    ("p99_ms", "`latency_ms.all.p99` (ms)"),
    ("mean_ms", "`latency_ms.all.mean` (ms)"),
    (
        "throughput",
        "`measured.throughput_per_s`: successful requests per second in the window",
    ),
];

/// Names of the derived metrics.
pub fn derived_names() -> impl Iterator<Item = &'static str> {
    DERIVED.iter().map(|(n, _)| *n)
}

/// Leaves left out of the flattened summary, at any depth (a farm's per-server summaries
/// have them too): `wall_seconds` is not deterministic, `seed` is a column of its own.
const EXCLUDED: &[&str] = &["wall_seconds", "seed"];

/// The name of a list element: `valves[0]`.
fn index_name(prefix: &str, i: usize) -> String {
    format!("{prefix}[{i}]")
}

fn key_name(prefix: &str, k: &str) -> String {
    if prefix.is_empty() {
        k.to_string()
    } else {
        format!("{prefix}.{k}")
    }
}

/// Every numeric leaf of `value` under its dotted path (booleans as 0/1); elements of
/// lists under `[i]` (`valves[0].closings`, `farm.servers[1].removals`). A `null` (an
/// optional value that is absent, e.g. `outgoing.first_wsaenobufs_s` when no WSAENOBUFS
/// happened) gives no metric: the value is missing for that run.
pub fn flatten_value(value: &serde_json::Value) -> BTreeMap<String, f64> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, f64>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    if !EXCLUDED.contains(&k.as_str()) {
                        walk(&key_name(prefix, k), x, out);
                    }
                }
            }
            serde_json::Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    walk(&index_name(prefix, i), x, out);
                }
            }
            serde_json::Value::Number(n) => {
                if let Some(f) = n.as_f64() {
                    out.insert(prefix.to_string(), f);
                }
            }
            serde_json::Value::Bool(b) => {
                out.insert(prefix.to_string(), if *b { 1.0 } else { 0.0 });
            }
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    walk("", value, &mut out);
    out
}

/// A metric name with its list indices replaced by `[*]`: `valves[2].closings` →
/// `valves[*].closings`.
pub fn index_pattern(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('[') {
        out.push_str(&rest[..=i]);
        let after = &rest[i + 1..];
        match after.find(']') {
            Some(j) if j > 0 && after[..j].bytes().all(|b| b.is_ascii_digit()) => {
                out.push('*');
                rest = &after[j..];
            }
            _ => rest = after,
        }
    }
    out.push_str(rest);
    out
}

/// A summary in which every optional part and every list holds a value: its leaves are
/// the metrics a run may have although the probe run (see [`MetricCatalogue`]) did not
/// (no limit was reached, no WSAENOBUFS, no valve closed, no balancer).
fn template_summary() -> Summary {
    use crate::stats::{
        FarmServerSummary, FarmSummary, LbSummary, LimitHit, RunEvent, SessionStateSummary,
        ValveSummary,
    };
    let server = || {
        let outgoing = crate::stats::OutgoingSummary {
            first_wsaenobufs_s: Some(0.0),
            first_connection_wait_s: Some(0.0),
            ..Default::default()
        };
        Summary {
            first_limit: Some(LimitHit::default()),
            limits: vec![LimitHit::default()],
            marked_events: vec![RunEvent::default()],
            valves: vec![ValveSummary {
                first_closed_at_s: Some(0.0),
                ..Default::default()
            }],
            outgoing,
            session_state: Some(SessionStateSummary::default()),
            ..Default::default()
        }
    };
    let mut s = server();
    s.farm = Some(FarmSummary {
        load_balancer: Some(LbSummary::default()),
        servers: vec![FarmServerSummary {
            first_removed_at_s: Some(0.0),
            summary: server(),
            ..Default::default()
        }],
        ..Default::default()
    });
    s
}

/// The metrics a sweep or an SLO may name, known before anything runs: the leaves of a
/// probe run's summary (which has the scenario's gauges, backends and outcomes), the
/// leaves of a summary whose optional parts are all present, and the derived metrics.
/// List indices match any index (`valves[3].closings` is known from `valves[0]`). An
/// optional value or a list the probe has as `null` or empty, and of which nothing else
/// is known, accepts any name below it.
#[derive(Clone, Debug, Default)]
pub struct MetricCatalogue {
    /// Names with `[*]` for list indices.
    known: BTreeSet<String>,
    /// Prefixes (with `[*]`) below which any name is accepted.
    open: BTreeSet<String>,
    /// Names to suggest (`[0]` for list indices).
    examples: BTreeSet<String>,
}

impl MetricCatalogue {
    /// The catalogue of a scenario whose probe run gave `probe`.
    pub fn new(probe: &Summary) -> Self {
        let mut c = MetricCatalogue::default();
        for s in [probe, &template_summary()] {
            let v = serde_json::to_value(s).expect("the summary serialises");
            c.add_shape("", &v);
        }
        let names = metrics_of(probe).into_keys();
        for name in names.chain(derived_names().map(str::to_string)) {
            c.known.insert(index_pattern(&name));
            c.examples.insert(name);
        }
        for n in c.known.clone() {
            c.examples.insert(n.replace("[*]", "[0]"));
        }
        // An empty list or a null is open only if no shape is known below it.
        let known = c.known.clone();
        c.open.retain(|o| {
            !known
                .iter()
                .any(|k| k.starts_with(&format!("{o}.")) || k.starts_with(&format!("{o}[")))
        });
        c
    }

    fn add_shape(&mut self, prefix: &str, v: &serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    if !EXCLUDED.contains(&k.as_str()) {
                        self.add_shape(&key_name(prefix, k), x);
                    }
                }
            }
            serde_json::Value::Array(a) if a.is_empty() => {
                self.open.insert(format!("{prefix}[*]"));
            }
            serde_json::Value::Array(a) => {
                for x in a {
                    self.add_shape(&format!("{prefix}[*]"), x);
                }
            }
            serde_json::Value::Number(_) | serde_json::Value::Bool(_) => {
                self.known.insert(prefix.to_string());
            }
            serde_json::Value::Null => {
                self.open.insert(prefix.to_string());
            }
            serde_json::Value::String(_) => {}
        }
    }

    /// Whether a run may have metric `name`.
    pub fn contains(&self, name: &str) -> bool {
        let p = index_pattern(name);
        self.known.contains(&p)
            || self.open.iter().any(|o| {
                p == *o
                    || p.strip_prefix(o.as_str())
                        .is_some_and(|r| r.starts_with('.') || r.starts_with('['))
            })
    }

    /// The known metric nearest to a misspelt `name`: `p99` → `p99_ms`, else the nearest
    /// by edit distance.
    pub fn suggest(&self, name: &str) -> Option<String> {
        let with_ms = format!("{name}_ms");
        if self.contains(&with_ms) {
            return Some(with_ms);
        }
        crate::scenario::load::nearest(name, self.examples.iter().map(String::as_str))
            .map(str::to_string)
    }
}

/// The run's metrics: the flattened summary plus the derived metrics.
pub fn metrics_of(summary: &Summary) -> BTreeMap<String, f64> {
    let v = serde_json::to_value(summary).expect("the summary serialises");
    let mut m = flatten_value(&v);
    add_absent_outcomes(&mut m, summary.farm.is_some());
    add_derived(&mut m);
    m
}

/// Every outcome name a run can report: the servers' outcomes, and for a farm the
/// client's timeout and the balancer's own 503.
pub fn outcome_names(farm: bool) -> Vec<&'static str> {
    let mut v: Vec<&'static str> = Outcome::ALL.iter().map(|o| o.name()).collect();
    if farm {
        v.push(crate::farm::CLIENT_TIMEOUT);
        v.push(crate::farm::LB_NO_SERVER);
    }
    v
}

/// The summary's maps of outcome counts (as dotted prefixes).
fn outcome_maps(farm: bool) -> &'static [&'static str] {
    if farm {
        &["outcomes", "measured.outcomes", "farm.attempt_outcomes"]
    } else {
        &["outcomes", "measured.outcomes"]
    }
}

/// Adds, as 0, every outcome count the summary leaves out because it did not occur.
pub fn add_absent_outcomes(m: &mut BTreeMap<String, f64>, farm: bool) {
    for map in outcome_maps(farm) {
        for name in outcome_names(farm) {
            m.entry(format!("{map}.{name}")).or_insert(0.0);
        }
    }
}

/// Adds the derived metrics computed from the flattened summary.
pub fn add_derived(m: &mut BTreeMap<String, f64>) {
    let get = |k: &str| m.get(k).copied();
    let arrived = get("measured.arrived").unwrap_or(0.0);
    let ratio = |x: f64| if arrived > 0.0 { x / arrived } else { 0.0 };
    // A fold from +0: an empty f64 `sum()` is -0, which would print as "-0".
    let n503: f64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("measured.outcomes.503"))
        .fold(0.0, |a, (_, v)| a + v);
    let new = [
        ("503_rate", Some(ratio(n503))),
        ("failure_rate", get("measured.failed").map(ratio)),
        ("p50_ms", get("latency_ms.all.p50")),
        ("p95_ms", get("latency_ms.all.p95")),
        ("p99_ms", get("latency_ms.all.p99")),
        ("mean_ms", get("latency_ms.all.mean")),
        ("throughput", get("measured.throughput_per_s")),
    ];
    for (k, v) in new {
        if let Some(v) = v {
            m.insert(k.to_string(), v);
        }
    }
}

/// The canonical column order of metrics: derived metrics first (in [`DERIVED`]
/// order), then the summary's leaves sorted by their dotted segments. Depends only on
/// the set of names, never on which run produced them first.
pub fn column_order<'a>(names: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let mut derived = Vec::new();
    let mut rest: Vec<&String> = Vec::new();
    for n in names {
        if derived_names().any(|d| d == n) {
            derived.push(n.clone());
        } else {
            rest.push(n);
        }
    }
    derived.sort_by_key(|n| derived_names().position(|d| d == n));
    derived.dedup();
    rest.sort_by(|a, b| a.split('.').cmp(b.split('.')));
    rest.dedup();
    derived.extend(rest.into_iter().cloned());
    derived
}

/// Formats a metric value for CSV: Rust's shortest round-trip form, empty for NaN.
pub fn fmt_num(x: f64) -> String {
    if x.is_nan() {
        String::new()
    } else {
        format!("{x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_elements_are_metrics_and_nulls_are_missing() {
        let v = serde_json::json!({
            "valves": [{"closings": 3, "first_closed_at_s": null}],
            "farm": {"servers": [{"removals": 1, "summary": {"wall_seconds": 0.5, "seed": 1, "events": 9}}]},
            "wall_seconds": 1.0,
        });
        let m = flatten_value(&v);
        let keys: Vec<&str> = m.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "farm.servers[0].removals",
                "farm.servers[0].summary.events",
                "valves[0].closings"
            ]
        );
        assert_eq!(
            index_pattern("farm.servers[12].summary.valves[0].closings"),
            "farm.servers[*].summary.valves[*].closings"
        );
        assert_eq!(index_pattern("a[x].b[]"), "a[x].b[]");
    }

    #[test]
    fn a_run_without_503_has_a_503_rate_of_plus_zero() {
        let mut m = BTreeMap::from([("measured.arrived".to_string(), 10.0)]);
        add_derived(&mut m);
        let r = m["503_rate"];
        assert!(r == 0.0 && r.is_sign_positive(), "{r}: prints as {}", r);
        m.insert("measured.outcomes.503_queue_full".into(), 5.0);
        add_derived(&mut m);
        assert_eq!(m["503_rate"], 0.5);
    }
}
