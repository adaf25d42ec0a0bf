//! Sweeps: determinism across --jobs, shards and resume; CI coverage and capacity
//! search on the M/M/c/K reduction; the sweep-file loader's diagnostics.

mod common;

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
        let SweepStatus::Complete { runs, new_runs, .. } = st else {
            panic!("{st:?}")
        };
        assert_eq!((runs, new_runs), (total, total - 3));
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

fn experiment(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../experiments")
        .join(name)
}

/// Two overrides of one setting — two axes, aliases of one path, a `[set]` key an axis
/// also sets, an axis replacing the table a `[set]` key is in — are refused before
/// anything runs, at the later one, naming the earlier one and where it is.
#[test]
fn loader_refuses_two_overrides_of_one_setting() {
    let tmp = tempfile::tempdir().unwrap();
    let err = |body: &str| {
        let text = sweep_text(body);
        load_sweep_str("x.sweep.toml", "x.sweep.toml", &text, tmp.path()).unwrap_err()
    };
    let two_axes = "[[axes]]\npath = \"load.rate\"\nvalues = [\"300/s\"]\n\
                    [[axes]]\npath = \"load.rate\"\nvalues = [\"400/s\", \"450/s\"]\n";
    let e = err(two_axes);
    let d = &e.diagnostics[0];
    assert_eq!(
        (d.file.as_str(), d.line, d.column),
        ("x.sweep.toml", 6, 8),
        "{e}"
    );
    assert_eq!(d.key, "axes[1].path", "{e}");
    assert!(
        d.message.contains("axes[0]") && d.message.contains("line 3, column 8"),
        "{e}"
    );
    // Aliases of one path.
    let e = err(
        "[[axes]]\npath = \"classes[0].service\"\nvalues = [\"exp(2ms)\"]\n\
         [[axes]]\npath = \"classes.0.service\"\nvalues = [\"exp(3ms)\"]\n",
    );
    assert_eq!(
        (e.diagnostics[0].key.as_str(), e.diagnostics[0].line),
        ("axes[1].path", 6),
        "{e}"
    );
    assert!(
        e.diagnostics[0].message.contains("classes[0].service"),
        "{e}"
    );
    // A [set] key an axis also sets, quoted or as a nested table.
    for set in [
        "[set]\n\"load.rate\" = \"200/s\"\n",
        "[set.load]\nrate = \"200/s\"\n",
    ] {
        let e = err(&format!(
            "{set}[[axes]]\npath = \"load.rate\"\nvalues = [\"300/s\"]\n"
        ));
        let d = &e.diagnostics[0];
        assert_eq!((d.key.as_str(), d.line), ("axes[0].path", 5), "{e}");
        assert!(
            d.message.contains("[set] `load.rate`") && d.message.contains("line 3"),
            "{e}"
        );
    }
    // An axis that replaces the table a [set] key is in.
    let e = err(
        "[set]\n\"load.rate\" = \"200/s\"\n[[axes]]\npath = \"load\"\nvalues = [{ rate = \"300/s\" }]\n",
    );
    assert!(
        e.diagnostics[0].message.contains("replaces `load.rate`"),
        "{e}"
    );
    // Settings side by side are fine.
    load(
        tmp.path(),
        "replications = 1\n[set]\nduration = \"2s\"\nwarmup = \"0s\"\n[set.load]\nrate = \"200/s\"\n\
         [[axes]]\npath = \"thread_pool.max_worker_threads\"\nvalues = [4, 5]\n",
    );
}

/// Every numeric leaf of summary.json is a metric: optional values that are null in the
/// probe run (`first_limit.at_s`, `outgoing.first_wsaenobufs_s`), elements of lists
/// (`valves[0].closings`, `farm.servers[0].removals`), with suggestions for misspellings.
#[test]
fn optional_values_and_list_elements_are_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let sweep = |base: &str, metrics: &str, rest: &str| {
        let text = format!(
            "base = {:?}\nreplications = 2\nmetrics = [{metrics}]\n{rest}",
            experiment(base).display().to_string()
        );
        load_sweep_str("m.sweep.toml", "m.sweep.toml", &text, tmp.path())
    };
    let s = sweep(
        "valve-sampling-lag.toml",
        r#""first_limit.at_s", "outgoing.first_wsaenobufs_s", "valves[0].closings", "valves[0].first_closed_at_s", "limits[2].at_s""#,
        "[set]\nduration = \"6s\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let dir = tmp.path().join("valve");
    run_to(&s, &dir, &opts(2));
    let points = read(&dir, "points.csv");
    let header: Vec<&str> = points.lines().next().unwrap().split(',').collect();
    let row: Vec<&str> = points.lines().nth(1).unwrap().split(',').collect();
    let col = |h: &str| row[header.iter().position(|x| *x == h).unwrap()];
    // No WSAENOBUFS in this run: missing (empty), not an error and not 0.
    assert_eq!(col("outgoing.first_wsaenobufs_s_mean"), "", "{points}");
    assert!(
        col("valves[0].closings_mean").parse::<f64>().is_ok(),
        "{points}"
    );
    let runs = read(&dir, "runs.csv");
    assert!(
        runs.lines()
            .next()
            .unwrap()
            .contains(",valves[0].closings,")
    );

    let s = sweep(
        "farm-cascade.toml",
        r#""farm.servers[0].removals", "farm.servers[3].first_removed_at_s", "farm.load_balancer.removals", "farm.servers[1].summary.measured.arrived""#,
        "",
    );
    assert!(s.is_ok(), "{}", s.unwrap_err());

    // Misspelt: refused, with the nearest name (indices kept as written elsewhere).
    for (m, near) in [
        ("valves[0].closing", "valves[0].closings"),
        ("first_limit.at", "first_limit.at_s"),
        ("outgoing.first_wsaenobuf_s", "outgoing.first_wsaenobufs_s"),
    ] {
        let e = sweep("valve-sampling-lag.toml", &format!("{m:?}"), "").unwrap_err();
        let d = &e.diagnostics[0];
        assert_eq!(d.key, "metrics[0]", "{e}");
        assert!(
            d.help
                .as_deref()
                .unwrap()
                .contains(&format!("did you mean `{near}`?")),
            "{m}: {e}"
        );
    }
}

/// A point that stops at `max_replications` short of its precision target says so: in
/// points.csv (`precision_met`, `relative_half_width`), in sweep.json
/// (`precision_not_met`), in the sweep's status and on the console.
#[test]
fn points_short_of_their_precision_target_are_flagged() {
    let tmp = tempfile::tempdir().unwrap();
    let body = |rhw: f64| {
        format!(
            "seed = 3\nmetrics = [\"p99_ms\"]\nprecision = {{ metric = \"503_rate\", relative_half_width = {rhw}, max_replications = 3, min_replications = 2 }}\n[set]\nduration = \"10s\"\nwarmup = \"1s\"\n[[axes]]\npath = \"load.rate\"\nvalues = [\"100/s\", \"450/s\"]\n"
        )
    };
    // Unreachable: ±0.01 % of the 503 rate at 450/s with 3 replications; at 100/s there
    // is no 503 (0 in every replication meets any target).
    let sweep = load(tmp.path(), &body(0.0001));
    let dir = tmp.path().join("short");
    let st = run_to(&sweep, &dir, &opts(2));
    let SweepStatus::Complete {
        precision_not_met, ..
    } = &st
    else {
        panic!("{st:?}")
    };
    assert_eq!(precision_not_met.len(), 1, "{st:?}");
    assert_eq!(precision_not_met[0].point, 1);
    assert_eq!(precision_not_met[0].replications, 3);
    let points = read(&dir, "points.csv");
    let lines: Vec<&str> = points.lines().collect();
    assert!(
        lines[0].starts_with("point,load.rate,replications,precision_met,relative_half_width,"),
        "{points}"
    );
    assert!(lines[1].starts_with("0,100/s,2,true,0,"), "{points}");
    let rel: f64 = lines[2].split(',').nth(4).unwrap().parse().unwrap();
    assert!(
        lines[2].starts_with("1,450/s,3,false,") && rel > 0.0001,
        "{points}"
    );
    let json: serde_json::Value = serde_json::from_str(&read(&dir, "sweep.json")).unwrap();
    let nm = &json["precision_not_met"];
    assert_eq!(nm.as_array().map(Vec::len), Some(1), "{json}");
    assert_eq!(nm[0]["values"][0], "450/s");
    assert_eq!(nm[0]["relative_half_width"].as_f64(), Some(rel));
    // Resumed, the complete directory stays as it is.
    run_to(
        &sweep,
        &dir,
        &RunOptions {
            resume: true,
            ..opts(1)
        },
    );
    assert_eq!(read(&dir, "points.csv"), points);

    // On the console, even with -q.
    let file = tmp.path().join("short.sweep.toml");
    std::fs::write(&file, sweep_text(&body(0.0001))).unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_w3sim"))
        .args(["sweep", "-q", "--out"])
        .arg(tmp.path().join("cli"))
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("warning: 1 point(s) stopped at max_replications = 3")
            && err.contains("point 1 (load.rate = 450/s)"),
        "{err}"
    );

    // Met everywhere: all true, and an empty list.
    let sweep = load(tmp.path(), &body(10.0));
    let dir = tmp.path().join("met");
    run_to(&sweep, &dir, &opts(2));
    let points = read(&dir, "points.csv");
    assert!(
        points
            .lines()
            .skip(1)
            .all(|l| l.split(',').nth(3) == Some("true")),
        "{points}"
    );
    let json: serde_json::Value = serde_json::from_str(&read(&dir, "sweep.json")).unwrap();
    assert_eq!(json["precision_not_met"], serde_json::json!([]));
}

/// The 95 % CI of a rate that is 0 in some replications went below 0
/// (`503_rate_ci_low = -0.0011`): its low end is clamped at 0; the mean and the high
/// end are as before.
#[test]
fn ci_low_ends_of_non_negative_metrics_are_clamped_at_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let sweep = load(
        tmp.path(),
        "seed = 1\nreplications = 4\nmetrics = [\"503_rate\"]\n[set]\nduration = \"10s\"\nwarmup = \"1s\"\n\
         [[axes]]\npath = \"load.rate\"\nvalues = [\"250/s\", \"300/s\", \"350/s\"]\n",
    );
    let dir = tmp.path().join("clamp");
    run_to(&sweep, &dir, &opts(2));
    let runs = read(&dir, "runs.csv");
    let points = read(&dir, "points.csv");
    let mut clamped = 0;
    for (p, line) in points.lines().skip(1).enumerate() {
        let f: Vec<f64> = line
            .split(',')
            .skip(3)
            .map(|x| x.parse().unwrap())
            .collect();
        let (mean, low, high) = (f[0], f[1], f[2]);
        let xs: Vec<f64> = runs
            .lines()
            .skip(1)
            .filter(|l| l.starts_with(&format!("{p},")))
            .map(|l| l.split(',').nth(5).unwrap().parse().unwrap())
            .collect();
        let ci = w3sim::sweep::stats::mean_ci95(&xs);
        assert_eq!(mean, ci.mean, "{points}");
        assert_eq!(high, ci.high(), "{points}");
        assert!(low >= 0.0, "{points}");
        if ci.low() < 0.0 {
            assert_eq!(low, 0.0);
            clamped += 1;
        } else {
            assert_eq!(low, ci.low());
        }
    }
    assert!(
        clamped > 0,
        "no interval reached below 0:\n{runs}\n{points}"
    );
}

/// A sweep without axes (no `[[axes]]`, or `axes = []`) is replications of one
/// configuration: `w3sim report` tabulates its point, `w3sim plot` says there is nothing
/// to plot along an axis (exit 2), neither fails on "no axis column".
#[test]
fn a_sweep_without_axes_is_reported_as_one_point() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, axes) in [("none", ""), ("empty", "axes = []\n")] {
        let file = tmp.path().join(format!("{name}.sweep.toml"));
        std::fs::write(
            &file,
            sweep_text(&format!(
                "replications = 3\n{axes}metrics = [\"503_rate\", \"p99_ms\"]\n[set]\nduration = \"5s\"\nwarmup = \"1s\"\n"
            )),
        )
        .unwrap();
        let out = tmp.path().join(name);
        let (code, _, err) = common::w3sim_exit(&[
            "sweep".as_ref(),
            file.as_os_str(),
            "-q".as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
        ]);
        assert_eq!(code, Some(0), "{err}");
        let points = read(&out, "points.csv");
        assert_eq!(points.lines().count(), 2, "{points}");
        assert!(
            points.starts_with("point,replications,503_rate_mean,"),
            "{points}"
        );

        let (code, _, err) = common::w3sim_exit(&["report".as_ref(), out.as_os_str()]);
        assert_eq!(code, Some(0), "{err}");
        let html = read(&out, "report.html");
        assert!(html.contains("id=\"no-axis\""), "{html}");
        assert!(html.contains("503_rate mean [95 % CI]"), "{html}");

        let (code, _, err) = common::w3sim_exit(&["plot".as_ref(), out.as_os_str()]);
        assert_eq!(code, Some(2), "{err}");
        assert!(
            err.contains("the sweep has no axis (3 replication(s) of one configuration)")
                && !err.contains("panicked"),
            "{err}"
        );
    }
}

/// A bad value of an axis is reported at that value (its line and column in the sweep
/// file, as `axes[1].values[1]`), a misspelt setting at the axis's `path`, a value
/// computed by a `range` at the range: not at the first `[[axes]]` header.
#[test]
fn a_bad_axis_value_is_reported_where_it_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let err = |body: &str| {
        let text = sweep_text(body);
        load_sweep_str("x.sweep.toml", "x.sweep.toml", &text, tmp.path()).unwrap_err()
    };
    let e = err(
        "replications = 1\n[[axes]]\npath = \"thread_pool.max_worker_threads\"\nvalues = [4, 5]\n\
         [[axes]]\npath = \"load.rate\"\nvalues = [\"300/s\",\n   \"40O/s\"]\n",
    );
    let d = &e.diagnostics[0];
    assert_eq!(
        (d.file.as_str(), d.line, d.column, d.key.as_str()),
        ("x.sweep.toml", 9, 4, "axes[1].values[1]"),
        "{e}"
    );
    assert!(
        d.message.contains("load.rate = 40O/s") && d.message.contains("is not a rate"),
        "{e}"
    );
    let e = err("[[axes]]\npath = \"load.rat\"\nvalues = [\"300/s\"]\n");
    let d = &e.diagnostics[0];
    assert_eq!(
        (d.line, d.column, d.key.as_str()),
        (3, 8, "axes[0].path"),
        "{e}"
    );
    assert!(e.to_string().contains("did you mean `rate`?"), "{e}");
    let e = err(
        "[[axes]]\npath = \"thread_pool.max_worker_threads\"\nrange = { from = 4, to = 2000004, step = 2000000 }\n",
    );
    let d = &e.diagnostics[0];
    assert_eq!((d.line, d.key.as_str()), (4, "axes[0].range"), "{e}");
    assert!(d.message.contains("= 2000004"), "{e}");
}

/// A sweep whose `base` is another sweep file is told so, once, at `base` (an audit got
/// "unknown key `base`" and every other sweep key flagged as unknown).
#[test]
fn a_sweep_file_as_the_base_is_named_as_such() {
    let tmp = tempfile::tempdir().unwrap();
    let inner = tmp.path().join("inner.sweep.toml");
    std::fs::write(
        &inner,
        sweep_text("replications = 1\n[[axes]]\npath = \"load.rate\"\nvalues = [\"300/s\"]\n"),
    )
    .unwrap();
    let text = "base = \"inner.sweep.toml\"\nreplications = 1\n[[axes]]\npath = \"load.rate\"\nvalues = [\"300/s\"]\n";
    let e = load_sweep_str("x.sweep.toml", "x.sweep.toml", text, tmp.path()).unwrap_err();
    assert_eq!(e.diagnostics.len(), 1, "{e}");
    assert_eq!(e.diagnostics[0].key, "base");
    assert!(
        e.diagnostics[0]
            .message
            .contains("is a sweep file, not a scenario"),
        "{e}"
    );
}

/// A range or log axis with a fractional `step` or `from` over a setting that takes whole
/// numbers said "expected a whole number from 0 to 4294967295, got 10.0" of the first
/// value it computed (audit). It now says the setting takes whole numbers and which key
/// must be whole, at that key's line and column, with the axis in whole numbers.
#[test]
fn a_fractional_range_over_a_whole_number_setting_blames_its_step_or_from() {
    let tmp = tempfile::tempdir().unwrap();
    let err = |axis: &str| {
        let text = sweep_text(&format!(
            "replications = 1\n[[axes]]\npath = \"http_sys.queue_length\"\n{axis}\n"
        ));
        load_sweep_str("x.sweep.toml", "x.sweep.toml", &text, tmp.path()).unwrap_err()
    };
    for (axis, column, key, says, help) in [
        (
            "range = { from = 10, to = 20, step = 2.5 }",
            38,
            "axes[0].range.step",
            "the range's step must be whole, got 2.5",
            "e.g. range = { from = 10, to = 20, step = 3 }",
        ),
        (
            "range = { from = 10.5, to = 20, step = 2 }",
            18,
            "axes[0].range.from",
            "the range's from must be whole, got 10.5",
            "e.g. range = { from = 11, to = 20, step = 2 }",
        ),
        (
            "range = { from = 10.0, to = 20.0, step = 2.0 }",
            18,
            "axes[0].range.from",
            "the range's from must be written without a decimal point, got 10.0",
            "e.g. range = { from = 10, to = 20, step = 2 }",
        ),
        (
            "log = { from = 10.0, to = 1000, points = 3 }",
            16,
            "axes[0].log.from",
            "a log axis's from must be written without a decimal point, got 10.0",
            "e.g. log = { from = 10, to = 1000, points = 3 }",
        ),
    ] {
        let e = err(axis);
        assert_eq!(e.diagnostics.len(), 1, "{e}");
        let d = &e.diagnostics[0];
        assert_eq!(
            (d.file.as_str(), d.line, d.column, d.key.as_str()),
            ("x.sweep.toml", 5, column, key),
            "{axis}: {e}"
        );
        assert!(
            d.message
                .starts_with("`http_sys.queue_length` takes whole numbers: ")
                && d.message.contains(says)
                && !d.message.contains("4294967295"),
            "{axis}: {e}"
        );
        assert_eq!(d.help.as_deref(), Some(help), "{axis}: {e}");
    }
    // Whole bounds and step load; a fractional step over a fractional setting too.
    let s = load(
        tmp.path(),
        "replications = 1\n[[axes]]\npath = \"http_sys.queue_length\"\nrange = { from = 10, to = 20.5, step = 5 }\n",
    );
    assert_eq!(s.manifest.points.len(), 3);
    let s = load(
        tmp.path(),
        "replications = 1\n[[axes]]\npath = \"load.scale\"\nrange = { from = 1, to = 2, step = 0.5 }\n",
    );
    assert_eq!(s.manifest.points.len(), 3);
}
