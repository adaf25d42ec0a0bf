//! A run's metrics: every numeric leaf of its summary under its dotted path, plus the
//! derived metrics sweeps and SLOs are usually written in.
//!
//! The summary is treated generically (`serde_json::to_value`), so outcomes, gauges and
//! fields added later become metrics without code changes: `measured.outcomes.503_queue_full`,
//! `gauges.http_sys.CurrentQueueSize.peak`, `latency_ms.all.p99`, … `wall_seconds` (not
//! deterministic) and `seed` (a column of its own) are left out.
//!
//! Outcome counts are metrics whether or not the outcome occurred: a farm's summary lists
//! only the outcomes that occurred, so every outcome a run can have (the servers' and, for
//! a farm, `client_timeout` and `503_load_balancer_no_server`) is added as 0 under
//! `outcomes.`, `measured.outcomes.` (and a farm's `farm.attempt_outcomes.`) when absent.
//! A run without an outcome thus counts as 0 in means over replications, never as missing.

use std::collections::BTreeMap;

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

/// Leaves left out of the flattened summary.
const EXCLUDED: &[&str] = &["wall_seconds", "seed"];

/// Every numeric leaf of `value` under its dotted path (booleans as 0/1).
pub fn flatten_value(value: &serde_json::Value) -> BTreeMap<String, f64> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, f64>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&p, x, out);
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
    for e in EXCLUDED {
        out.remove(*e);
    }
    out
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
