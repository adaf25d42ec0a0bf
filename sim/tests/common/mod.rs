//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use w3sim::Summary;
use w3sim::output::NullSink;
use w3sim::pipeline::{Faults, run_with_faults};
use w3sim::scenario::Scenario;
use w3sim::scenario::load::load_file;

/// Path of a file under the repository's `experiments/`.
pub fn experiment(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("experiments")
        .join(rel)
}

/// Loads a shipped scenario with overrides; panics with the diagnostics if it is invalid.
pub fn load(rel: &str, overrides: &[&str]) -> Scenario {
    let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    load_file(&experiment(rel), &o).unwrap_or_else(|e| panic!("{rel} does not load:\n{e}"))
}

/// Loads scenario text with `--set` overrides; panics with the diagnostics if it is invalid.
pub fn load_text(text: &str, overrides: &[&str]) -> Scenario {
    let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    w3sim::scenario::load::load_str("test.toml", text, &o).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs a scenario and returns its summary; an invariant violation fails the test.
pub fn run(scn: &Scenario) -> Summary {
    run_faulty(scn, Faults::default())
}

pub fn run_faulty(scn: &Scenario, faults: Faults) -> Summary {
    let s = run_with_faults(scn, &mut NullSink, faults)
        .expect("run succeeds with every invariant holding");
    check_conservation(&s);
    s
}

/// Conservation of requests, which holds on every run.
pub fn check_conservation(s: &Summary) {
    let r = &s.requests;
    assert_eq!(
        r.arrived,
        r.completed + r.failed + r.in_flight,
        "conservation of requests"
    );
}

/// Checks that hold on every steady-state run: conservation of requests and Little's
/// law (which needs a stationary system: transients and growing queues break λW = L
/// by their edge terms, so it is asserted on the validation runs).
pub fn check_conservation_and_little(s: &Summary) {
    let r = &s.requests;
    assert_eq!(
        r.arrived,
        r.completed + r.failed + r.in_flight,
        "conservation of requests"
    );
    assert!(
        s.littles_law.relative_error < 0.01,
        "Little's law: L = {} but λW = {}",
        s.littles_law.l,
        s.littles_law.lambda_per_s * s.littles_law.w_s
    );
}

/// Runs `reps` replications (seeds 1..=reps) of a scenario in parallel on two threads.
pub fn replicate(scn: &Scenario, reps: u64, faults: Faults) -> Vec<Summary> {
    let mut out: Vec<Option<Summary>> = (0..reps).map(|_| None).collect();
    std::thread::scope(|sc| {
        let chunks: Vec<(usize, &mut [Option<Summary>])> = {
            let mid = out.len().div_ceil(2);
            let (a, b) = out.split_at_mut(mid);
            vec![(0, a), (mid, b)]
        };
        for (base, chunk) in chunks {
            sc.spawn(move || {
                for (i, slot) in chunk.iter_mut().enumerate() {
                    let mut s = scn.clone();
                    s.seed = (base + i + 1) as u64;
                    let summary = run_faulty(&s, faults);
                    check_conservation_and_little(&summary);
                    *slot = Some(summary);
                }
            });
        }
    });
    out.into_iter()
        .map(|s| s.expect("replication ran"))
        .collect()
}

/// Mean and standard error of a sample.
pub fn mean_se(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let m = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
    (m, (var / n).sqrt())
}

/// Two-sided 99.9 % Student t quantile for `df` degrees of freedom (df = 9 or 19 used here).
pub fn t999(df: usize) -> f64 {
    match df {
        9 => 4.781,
        19 => 3.883,
        _ => 3.3,
    }
}

/// The outcome of checking a replicated estimate against an exact value.
#[derive(Debug)]
pub struct Check {
    pub name: String,
    pub mean: f64,
    pub half_width: f64,
    pub exact: f64,
}

impl Check {
    /// The exact value lies inside the 99.9 % confidence interval of the mean.
    pub fn covers(&self) -> bool {
        (self.mean - self.exact).abs() <= self.half_width
    }
    /// The interval is narrow: its half-width is under `rel` of the exact value, so the
    /// check can tell a wrong model from a right one.
    pub fn precise(&self, rel: f64) -> bool {
        self.half_width <= rel * self.exact.abs()
    }
}

/// Builds a check from per-replication values.
pub fn check(name: &str, xs: &[f64], exact: f64) -> Check {
    let (m, se) = mean_se(xs);
    Check {
        name: name.into(),
        mean: m,
        half_width: t999(xs.len() - 1) * se,
        exact,
    }
}

/// Asserts the check passes and is precise to `rel`.
pub fn assert_check(c: &Check, rel: f64) {
    println!(
        "{}: simulated {:.6} ± {:.6} (99.9% CI, {:.2}% of exact), exact {:.6}",
        c.name,
        c.mean,
        c.half_width,
        100.0 * c.half_width / c.exact.abs(),
        c.exact
    );
    assert!(
        c.precise(rel),
        "{}: the 99.9% CI half-width {:.6} is wider than {:.1}% of {:.6}: the test would lack power",
        c.name,
        c.half_width,
        rel * 100.0,
        c.exact
    );
    assert!(
        c.covers(),
        "{}: simulated {:.6} ± {:.6} (99.9% CI) does not cover the exact {:.6}",
        c.name,
        c.mean,
        c.half_width,
        c.exact
    );
}

/// Runs a scenario keeping its time series in memory.
pub fn run_series(scn: &Scenario) -> (Summary, w3sim::output::MemorySink) {
    let mut sink = w3sim::output::MemorySink::default();
    let s = w3sim::run(scn, &mut sink).expect("run succeeds with every invariant holding");
    check_conservation(&s);
    (s, sink)
}

/// A column of the time series by its perfmon name.
pub fn col(sink: &w3sim::output::MemorySink, name: &str) -> Vec<f64> {
    sink.column(name)
        .unwrap_or_else(|| panic!("no column {name}"))
}

/// Value of a column at time `t` seconds (the first row at or after it).
pub fn at(sink: &w3sim::output::MemorySink, name: &str, t: f64) -> f64 {
    let times = col(sink, "time_s");
    let vals = col(sink, name);
    let i = times
        .iter()
        .position(|&x| x >= t - 1e-9)
        .unwrap_or(times.len() - 1);
    vals[i]
}

/// Count of an outcome over the whole run.
pub fn outcome(s: &Summary, name: &str) -> u64 {
    *s.outcomes
        .get(name)
        .unwrap_or_else(|| panic!("no outcome {name}"))
}

/// Runs the `w3sim` program with `args`: (exit code, standard output, standard error).
pub fn w3sim_exit<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (Option<i32>, String, String) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_w3sim"))
        .args(args)
        .output()
        .expect("w3sim starts");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Runs the `w3sim` program with `args`, asserts that it succeeded (showing its stderr
/// otherwise) and returns its standard output.
pub fn w3sim_ok<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_w3sim"))
        .args(args)
        .output()
        .expect("w3sim starts");
    assert!(
        out.status.success(),
        "w3sim failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
