//! Sweeps: determinism across --jobs, shards and resume; CI coverage and capacity
//! search on the M/M/c/K reduction; the sweep-file loader's diagnostics.

use std::path::{Path, PathBuf};

use w3sim::analytic::mmck;
use w3sim::scenario::load::load_file;
use w3sim::sweep::capacity::{CapacityConfig, Slo, search};
use w3sim::sweep::merge::merge;
use w3sim::sweep::run::{RunOptions, Shard, SweepStatus, run_sweep};
use w3sim::sweep::spec::{Sweep, load_sweep_file, load_sweep_str};

fn mmck_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../experiments/validation/mmck.toml")
}

/// c, K (waiting places), λ and μ of the M/M/c/K reduction, read from the scenario
/// (whatever knobs it uses to express K).
fn mmck_params(overrides: &[String]) -> (u32, u32, f64, f64) {
    let s = load_file(&mmck_path(), overrides).expect("mmck.toml loads");
    let c = s.thread_pool.min_worker_threads;
    assert_eq!(c, s.thread_pool.max_worker_threads);
    let q = s.http_sys.queue_length;
    let k = if s.http_sys.queue_counts_in_flight {
        q - c
    } else {
        q
    };
    let mean_ns = s.classes[0].service.as_ref().expect("service").0.mean();
    (c, k, s.load.rate.0, 1e9 / mean_ns)
}

fn sweep_text(body: &str) -> String {
    format!("base = {:?}\n{body}", mmck_path().display().to_string())
}

fn load(dir: &Path, body: &str) -> Sweep {
    let text = sweep_text(body);
    load_sweep_str("test.sweep.toml", "test.sweep.toml", &text, dir)
        .unwrap_or_else(|e| panic!("sweep does not load:\n{e}"))
}

fn opts(jobs: usize) -> RunOptions {
    RunOptions {
        jobs,
        quiet: true,
        ..Default::default()
    }
}

fn read(dir: &Path, f: &str) -> String {
    std::fs::read_to_string(dir.join(f)).unwrap_or_else(|e| panic!("{}/{f}: {e}", dir.display()))
}

fn assert_same(a: &Path, b: &Path) {
    for f in ["runs.csv", "points.csv", "sweep.json"] {
        assert!(
            read(a, f) == read(b, f),
            "{f} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
}

const GRID: &str = r#"
replications = 3
seed = 7
metrics = ["503_rate", "p99_ms", "throughput", "measured.outcomes.503_queue_full"]
[set]
duration = "30s"
warmup = "5s"
[[axes]]
path = "load.rate"
values = ["300/s", "380/s", "450/s"]
[[axes]]
path = "thread_pool.max_worker_threads"
range = { from = 4, to = 5, step = 1 }
"#;

const PRECISION: &str = r#"
seed = 3
metrics = ["p99_ms"]
precision = { metric = "503_rate", relative_half_width = 0.08, max_replications = 12, min_replications = 3 }
[set]
duration = "20s"
warmup = "2s"
[[axes]]
path = "load.rate"
log = { from = "250/s", to = "500/s", points = 3 }
"#;

fn run_to(sweep: &Sweep, dir: &Path, o: &RunOptions) -> SweepStatus {
    run_sweep(sweep, dir, o).unwrap_or_else(|e| panic!("sweep into {}: {e}", dir.display()))
}

#[test]
fn jobs_shards_and_resume_give_identical_files() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, body) in [("grid", GRID), ("precision", PRECISION)] {
        let sweep = load(tmp.path(), body);
        let d = |s: &str| tmp.path().join(format!("{name}-{s}"));
        let st = run_to(&sweep, &d("j1"), &opts(1));
        assert!(matches!(st, SweepStatus::Complete { .. }), "{st:?}");
        run_to(&sweep, &d("j2"), &opts(2));
        assert_same(&d("j1"), &d("j2"));
        let points = read(&d("j1"), "points.csv");
        assert_eq!(points.lines().count(), sweep.manifest.points.len() + 1);
        if name == "precision" {
            // Replication counts were decided by the target: not all equal to the minimum.
            assert!(
                read(&d("j1"), "runs.csv").lines().count() > 1 + 3 * 3,
                "{points}"
            );
        }

        // Three shards, merged.
        let shards: Vec<PathBuf> = (0..3).map(|k| d(&format!("shard{k}"))).collect();
        for (k, s) in shards.iter().enumerate() {
            let o = RunOptions {
                shard: Some(Shard { index: k, count: 3 }),
                ..opts(2)
            };
            run_to(&sweep, s, &o);
        }
        // A missing shard is refused.
        assert!(merge(&shards[..2], &d("partial")).is_err());
        merge(&shards, &d("merged")).expect("merge");
        assert_same(&d("j1"), &d("merged"));

        // Stopped after 4 runs, then resumed.
        let o = RunOptions {
            stop_after: Some(4),
            ..opts(2)
        };
        assert!(matches!(
            run_to(&sweep, &d("resume"), &o),
            SweepStatus::Stopped { runs: 4 }
        ));
        assert_eq!(
            read(&d("resume"), "runs.csv").lines().count(),
            5,
            "4 rows kept"
        );
        // Without --resume the directory is protected.
        assert!(run_sweep(&sweep, &d("resume"), &opts(2)).is_err());
        let st = run_to(
            &sweep,
            &d("resume"),
            &RunOptions {
                resume: true,
                ..opts(1)
            },
        );
        assert!(matches!(st, SweepStatus::Complete { .. }));
        assert_same(&d("j1"), &d("resume"));

        // A finished runs.csv cut after its 3rd row, mid-line (a killed sweep), resumed.
        let full = read(&d("j1"), "runs.csv");
        let cut: usize = full.match_indices('\n').nth(3).unwrap().0 + 20;
        std::fs::create_dir_all(d("cut")).unwrap();
        std::fs::write(d("cut").join("runs.csv"), &full[..cut]).unwrap();
        std::fs::write(d("cut").join("sweep.json"), read(&d("j1"), "sweep.json")).unwrap();
        let st = run_to(
            &sweep,
            &d("cut"),
            &RunOptions {
                resume: true,
                ..opts(2)
            },
        );
        let total = full.lines().count() - 1;
        assert_eq!(
            st,
            SweepStatus::Complete {
                runs: total,
                new_runs: total - 3
            }
        );
        assert_same(&d("j1"), &d("cut"));
    }
}

#[test]
fn ci_covers_the_exact_blocking_probability() {
    let tmp = tempfile::tempdir().unwrap();
    let dur = ["duration=\"60s\"".to_string()];
    let (c, k, lambda, mu) = mmck_params(&dur);
    let exact = mmck(lambda, mu, c, k).blocking;
    let n = 60;
    let mut covered = 0;
    let mut widths = Vec::new();
    for i in 0..n {
        let body = format!(
            "seed = {}\nreplications = 5\nmetrics = [\"503_rate\"]\n[set]\nduration = \"60s\"\nwarmup = \"10s\"\n",
            1 + 100 * i
        );
        let sweep = load(tmp.path(), &body);
        let dir = tmp.path().join(format!("cov{i}"));
        run_to(&sweep, &dir, &opts(2));
        let points = read(&dir, "points.csv");
        let row: Vec<f64> = points
            .lines()
            .nth(1)
            .unwrap()
            .split(',')
            .skip(2)
            .map(|x| x.parse().unwrap())
            .collect();
        let (mean, lo, hi) = (row[0], row[1], row[2]);
        assert!(lo <= mean && mean <= hi);
        widths.push((hi - lo) / 2.0);
        if lo <= exact && exact <= hi {
            covered += 1;
        }
    }
    let coverage = covered as f64 / n as f64;
    let mean_hw = widths.iter().sum::<f64>() / n as f64;
    println!(
        "exact blocking {exact:.6}; coverage {coverage:.3} of {n}; mean half-width {mean_hw:.6}"
    );
    assert!((0.85..=1.0).contains(&coverage), "coverage {coverage}");
    // The intervals are informative: narrower than 25 % of the value.
    assert!(mean_hw < 0.25 * exact, "half-width {mean_hw} vs {exact}");
}

#[test]
fn capacity_search_brackets_the_analytic_crossing() {
    let overrides = vec![
        "duration=\"300s\"".to_string(),
        "warmup=\"20s\"".to_string(),
    ];
    let (c, k, _, mu) = mmck_params(&overrides);
    let target = 0.02;
    let (mut lo, mut hi) = (1.0, 10.0 * c as f64 * mu);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if mmck(mid, mu, c, k).blocking < target {
            lo = mid
        } else {
            hi = mid
        }
    }
    let crossing = lo;
    let cfg = CapacityConfig {
        scenario: mmck_path(),
        overrides,
        vary: "load.rate".into(),
        lo: Some("100/s".into()),
        hi: Some("1000/s".into()),
        slos: vec![
            Slo::parse("503_rate<2%").unwrap(),
            Slo::parse("p99<2s").unwrap(),
        ],
        replications: 5,
        jobs: 2,
        tolerance: 0.005,
        max_evaluations: 40,
        lowest: false,
    };
    let r = search(&cfg, &mut |_| {}).expect("capacity search");
    print!("{}", r.human());
    println!("analytic crossing {crossing:.3}/s");
    let [ci_lo, ci_hi] = r.crossing_ci;
    let (ci_lo, ci_hi) = (
        ci_lo.expect("a surely passing value"),
        ci_hi.expect("a surely failing value"),
    );
    assert!(
        ci_lo <= crossing && crossing <= ci_hi,
        "[{ci_lo}, {ci_hi}] misses {crossing}"
    );
    assert!(
        ci_hi - ci_lo < 0.1 * crossing,
        "the interval [{ci_lo}, {ci_hi}] is too wide"
    );
    let est = r.crossing_estimate.unwrap();
    assert!(
        (est - crossing).abs() < 0.03 * crossing,
        "estimate {est} vs {crossing}"
    );
    assert_eq!(r.unit, "/s");
    let b = r.broke_first.expect("an SLO broke");
    assert_eq!(b.slo, "503_rate<2%");
    assert!(
        b.causes[0].starts_with("outcome 503_queue_full"),
        "{:?}",
        b.causes
    );
    assert!(
        b.causes
            .iter()
            .any(|c| c.starts_with("http_sys.Outstanding Requests reached its limit")),
        "{:?}",
        b.causes
    );
}

/// A bad value under `[set]` is reported at its line and column in the sweep file, as a
/// `[set]` key (it named neither: `x.sweep.toml: [set] duration="60"`).
#[test]
fn loader_reports_set_errors_at_their_line_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    let text = sweep_text(
        "replications = 1\n[set]\nduration = \"60\"\n[set.http_sys]\nqueue_length = -5\n\
         [[axes]]\npath = \"load.rate\"\nvalues = [\"300/s\"]\n",
    );
    let e = load_sweep_str("x.sweep.toml", "x.sweep.toml", &text, tmp.path()).unwrap_err();
    let at = |key: &str| {
        e.diagnostics
            .iter()
            .find(|d| d.key == key)
            .map(|d| (d.file.clone(), d.line, d.column))
            .unwrap_or_else(|| panic!("no {key} in {e}"))
    };
    assert_eq!(at("[set] duration"), ("x.sweep.toml".into(), 4, 12), "{e}");
    assert_eq!(
        at("[set] http_sys.queue_length"),
        ("x.sweep.toml".into(), 6, 16),
        "{e}"
    );
}

#[test]
fn loader_reports_misspelt_keys_with_position_and_suggestion() {
    let tmp = tempfile::tempdir().unwrap();
    let text =
        sweep_text("replicatons = 3\n[[axes]]\npath = \"load.rate\"\nvalues = [\"300/s\"]\n");
    let e = load_sweep_str("x.sweep.toml", "x.sweep.toml", &text, tmp.path()).unwrap_err();
    let d = &e.diagnostics[0];
    assert_eq!(
        (d.file.as_str(), d.line, d.column),
        ("x.sweep.toml", 2, 1),
        "{e}"
    );
    assert_eq!(d.key, "replicatons");
    assert!(
        d.help
            .as_deref()
            .unwrap()
            .contains("did you mean `replications`?"),
        "{e}"
    );

    let text = sweep_text("[[axes]]\npath = \"load.rate\"\nvaluse = [\"300/s\"]\n");
    let e = load_sweep_str("x.sweep.toml", "x.sweep.toml", &text, tmp.path()).unwrap_err();
    let d = &e.diagnostics[0];
    assert_eq!((d.line, d.key.as_str()), (4, "axes[0].valuse"), "{e}");
    assert!(
        d.help
            .as_deref()
            .unwrap()
            .contains("did you mean `values`?"),
        "{e}"
    );

    let text = sweep_text("metrics = [\"503_rate\", \"p99\"]\n");
    let e = load_sweep_str("x.sweep.toml", "x.sweep.toml", &text, tmp.path()).unwrap_err();
    let d = &e.diagnostics[0];
    assert_eq!((d.line, d.key.as_str()), (2, "metrics[1]"), "{e}");
    assert!(
        d.help
            .as_deref()
            .unwrap()
            .contains("did you mean `p99_ms`?"),
        "{e}"
    );

    // A misspelt setting path in an axis is the scenario loader's error, for that point.
    let text = sweep_text("[[axes]]\npath = \"load.rat\"\nvalues = [\"300/s\"]\n");
    let e = load_sweep_str("x.sweep.toml", "x.sweep.toml", &text, tmp.path()).unwrap_err();
    assert!(e.to_string().contains("did you mean `rate`?"), "{e}");
}

#[test]
fn mser5_warmup_is_recorded_and_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let body = "replications = 2\nwarmup = \"mser5\"\nmetrics = [\"503_rate\"]\n[set]\nduration = \"200s\"\nsample_interval = \"1s\"\nwarmup = \"0s\"\n\"load.rate\" = \"300/s\"\n\"http_sys.queue_length\" = 3000\n\"load.bursts\" = [{ at = \"0s\", count = 2000 }]\n";
    let sweep = load(tmp.path(), body);
    run_to(&sweep, &tmp.path().join("a"), &opts(1));
    run_to(&sweep, &tmp.path().join("b"), &opts(2));
    assert_same(&tmp.path().join("a"), &tmp.path().join("b"));
    let runs = read(&tmp.path().join("a"), "runs.csv");
    for line in runs.lines().skip(1) {
        let w: f64 = line.split(',').nth(3).unwrap().parse().unwrap();
        assert!(w > 0.0 && w <= 100.0, "MSER-5 truncation {w} s");
    }
}

#[test]
fn shipped_sweeps_load() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../experiments");
    for f in ["load.sweep.toml", "queue-length-x-load.sweep.toml"] {
        let s = load_sweep_file(&dir.join(f)).unwrap_or_else(|e| panic!("{f}:\n{e}"));
        assert!(s.manifest.points.len() >= 10, "{f}");
    }
}

/// A sweep whose plan would not fit in memory is refused before anything runs, at the key
/// that makes it so: a grid's product, a log axis's points, the replications, the runs.
#[test]
fn loader_refuses_sweeps_too_large_to_plan() {
    let tmp = tempfile::tempdir().unwrap();
    let err = |extra: &str| {
        let text = sweep_text(extra);
        load_sweep_str("x.sweep.toml", "x.sweep.toml", &text, tmp.path()).unwrap_err()
    };
    // 100,000 × 65,526 points.
    let e = err(
        "combine = \"grid\"\n[[axes]]\npath = \"load.rate\"\nrange = { from = \"1/s\", to = \"100000/s\", step = \"1/s\" }\n[[axes]]\npath = \"http_sys.queue_length\"\nrange = { from = 10, to = 65535, step = 1 }\n",
    );
    let d = &e.diagnostics[0];
    assert_eq!(d.key, "axes", "{e}");
    assert!(
        d.message.contains("6552600000 points (100000 × 65526)"),
        "{e}"
    );
    let e = err(
        "[[axes]]\npath = \"load.rate\"\nlog = { from = \"1/s\", to = \"1000/s\", points = 4294967295 }\n",
    );
    assert_eq!(e.diagnostics[0].key, "axes[0].log", "{e}");
    assert!(e.diagnostics[0].message.contains("at most 1000000"), "{e}");
    let e = err("replications = 4294967295\n");
    assert_eq!(e.diagnostics[0].key, "replications", "{e}");
    assert!(
        e.diagnostics[0]
            .message
            .contains("at most 100000 replications"),
        "{e}"
    );
    // 1,000 points × 100,000 replications: each allowed, together too many runs.
    let e = err(
        "replications = 100000\n[[axes]]\npath = \"load.rate\"\nrange = { from = \"1/s\", to = \"1000/s\", step = \"1/s\" }\n",
    );
    assert_eq!(e.diagnostics[0].key, "replications", "{e}");
    assert!(e.diagnostics[0].message.contains("= 100000000 runs"), "{e}");
    // The largest allowed plan still loads.
    let text = sweep_text(
        "replications = 10\n[[axes]]\npath = \"load.rate\"\nrange = { from = \"1/s\", to = \"1000/s\", step = \"1/s\" }\n",
    );
    let s = load_sweep_str("x.sweep.toml", "x.sweep.toml", &text, tmp.path()).unwrap();
    assert_eq!(s.manifest.points.len(), 1000);
}

/// A capacity search's own arguments are checked before anything runs, and a setting
/// whose valid range ends before the SLOs break ends the search with a note, not an error.
#[test]
fn capacity_search_checks_its_arguments_and_stops_at_the_settings_range() {
    let cfg = |f: &dyn Fn(&mut CapacityConfig)| {
        let mut c = CapacityConfig {
            scenario: mmck_path(),
            overrides: vec!["duration=\"20s\"".into(), "warmup=\"0s\"".into()],
            vary: "load.rate".into(),
            lo: None,
            hi: None,
            slos: vec![Slo::parse("503_rate<100%").unwrap()],
            replications: 1,
            jobs: 2,
            tolerance: 0.01,
            max_evaluations: 40,
            lowest: false,
        };
        f(&mut c);
        c
    };
    for (c, needle) in [
        (
            cfg(&|c| c.replications = u32::MAX),
            "--replications must be 1–100000",
        ),
        (cfg(&|c| c.tolerance = 0.0), "--tolerance is a fraction"),
        (
            cfg(&|c| c.tolerance = f64::NAN),
            "--tolerance is a fraction",
        ),
        (
            cfg(&|c| c.max_evaluations = 1),
            "--max-evaluations must be at least 2",
        ),
    ] {
        let e = search(&c, &mut |_| panic!("nothing runs")).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains(needle), "{e}");
    }
    // queueLength never breaks "503_rate<100%"; IIS's 65535 ends the search.
    let c = cfg(&|c| {
        c.vary = "http_sys.queue_length".into();
        c.lo = Some("1000".into());
    });
    let r = search(&c, &mut |_| {}).unwrap();
    assert_eq!(r.capacity, Some(64000.0));
    let note = r.note.as_deref().unwrap();
    assert!(
        note.contains("the highest valid value tried") && note.contains("10–65535"),
        "{note}"
    );
}
