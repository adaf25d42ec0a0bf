//! Capacity search and metrics: outcome counts averaged over every replication (a run
//! without an outcome counts 0), SLOs that need a higher value (`throughput>…`), a
//! `--set`/`--vary` that the scenario would silently ignore, and farm outcomes as metrics.

mod common;

use std::process::Command;

use common::*;
use w3sim::scenario::load::{load_file, load_str};
use w3sim::sweep::SweepError;
use w3sim::sweep::capacity::{CapacityConfig, CapacityReport, Slo, search};
use w3sim::sweep::metrics::metrics_of;
use w3sim::sweep::run::run_one;
use w3sim::sweep::spec::load_sweep_str;

fn config(rel: &str, overrides: &[&str], slos: &[&str]) -> CapacityConfig {
    CapacityConfig {
        scenario: experiment(rel),
        overrides: overrides.iter().map(|s| s.to_string()).collect(),
        vary: "load.rate".into(),
        lo: None,
        hi: None,
        slos: slos.iter().map(|s| Slo::parse(s).unwrap()).collect(),
        replications: 1,
        jobs: 2,
        tolerance: 0.01,
        max_evaluations: 40,
        lowest: false,
    }
}

fn run_search(cfg: &CapacityConfig) -> CapacityReport {
    let r = search(cfg, &mut |_| {}).unwrap_or_else(|e| panic!("capacity search: {e}"));
    print!("{}", r.human());
    r
}

/// Defect A: at a load where the farm collapses in some replications and not in others,
/// an outcome count's mean is over every replication (0 where it did not occur), so the
/// failure outcomes add up to the failures and the report's share of arrivals is right.
#[test]
fn outcome_means_count_a_run_without_the_outcome_as_zero() {
    let overrides = ["duration=\"90s\""];
    let mut cfg = config("farm-cascade.toml", &overrides, &["failure_rate<0.5%"]);
    cfg.lo = Some("3000/s".into());
    cfg.hi = Some("3875/s".into());
    cfg.replications = 2;
    cfg.max_evaluations = 2;
    let r = run_search(&cfg);
    let e = r
        .evaluations
        .iter()
        .find(|e| e.value == 3875.0)
        .expect("3875/s evaluated");
    // The replications, run independently (seeds seed, seed + 1).
    let scn = load(
        "farm-cascade.toml",
        &["duration=\"90s\"", "load.rate=3875/s"],
    );
    let runs: Vec<_> = (0..2)
        .map(|k| run_one(&scn, scn.seed + k, None).unwrap().1)
        .collect();
    let mut names: Vec<&str> = runs
        .iter()
        .flat_map(|s| s.measured.outcomes.keys().copied())
        .collect();
    names.sort();
    names.dedup();
    let partial: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| runs.iter().any(|s| !s.measured.outcomes.contains_key(n)))
        .collect();
    assert!(
        !partial.is_empty(),
        "the test needs an outcome that only some replications had: {:?}",
        runs.iter()
            .map(|s| &s.measured.outcomes)
            .collect::<Vec<_>>()
    );
    for n in &names {
        let truth = runs
            .iter()
            .map(|s| s.measured.outcomes.get(n).copied().unwrap_or(0) as f64)
            .sum::<f64>()
            / 2.0;
        assert_eq!(
            e.means[&format!("measured.outcomes.{n}")],
            truth,
            "measured.outcomes.{n}"
        );
    }
    let failed: f64 = e
        .means
        .iter()
        .filter(|(k, _)| k.starts_with("measured.outcomes.") && !k.ends_with(".ok"))
        .map(|(_, v)| v)
        .sum();
    assert!(
        (failed - e.means["measured.failed"]).abs() < 1e-6,
        "failure outcomes {failed} vs measured.failed {}",
        e.means["measured.failed"]
    );
    // The share printed for the biggest failure outcome is at most the failure rate.
    let b = r.broke_first.expect("the SLO broke");
    let share: f64 = b.causes[0]
        .split(" (")
        .nth(1)
        .and_then(|x| x.split(" %").next())
        .and_then(|x| x.parse().ok())
        .unwrap_or_else(|| panic!("no share in {:?}", b.causes[0]));
    let rate = e.means["failure_rate"];
    assert!(share / 100.0 <= rate + 1e-4, "{share} % vs {rate}");
}

/// Defect A/D at the source: a farm run's metrics hold every outcome a farm can have,
/// 0 when it did not occur.
#[test]
fn farm_metrics_hold_every_outcome() {
    let s = run(&load("farm-cascade.toml", &["duration=\"20s\""]));
    assert!(!s.outcomes.contains_key(w3sim::farm::CLIENT_TIMEOUT));
    let m = metrics_of(&s);
    for p in ["outcomes", "measured.outcomes", "farm.attempt_outcomes"] {
        for n in [
            "client_timeout",
            "503_load_balancer_no_server",
            "503_queue_full",
        ] {
            assert_eq!(m.get(&format!("{p}.{n}")), Some(&0.0), "{p}.{n}");
        }
    }
    // A single server has no client timeout nor balancer.
    let single = metrics_of(&run(&load("validation/mmck.toml", &["duration=\"30s\""])));
    assert!(!single.contains_key("measured.outcomes.client_timeout"));
    assert_eq!(single.get("measured.outcomes.503_app_offline"), Some(&0.0));
}

/// Defect B: an SLO that needs a higher load (`throughput>…`) is searched upwards, and
/// its lower edge is found; it is never reported as failing "even at" a tiny rate.
#[test]
fn lower_bounded_slo_is_searched_upwards() {
    let r = run_search(&config(
        "queue-full-burst.toml",
        &["load.schedule=[]", "duration=\"20s\""],
        &["throughput>500/s"],
    ));
    assert!(
        r.evaluations.iter().all(|e| e.value >= 500.0),
        "no value below --lo's default is needed"
    );
    assert_eq!(r.capacity, Some(2000.0), "the highest value tried passes");
    let l = r.lower_edge.as_ref().expect("a lower edge");
    assert!(
        (500.0..560.0).contains(&l.lowest_passing),
        "lowest passing {}",
        l.lowest_passing
    );
    assert!(l.lowest_passing - l.highest_failing_below <= 0.01 * l.lowest_passing);
    assert_eq!(l.failing_there, ["throughput>500/s"]);
    let note = r.note.as_deref().unwrap();
    assert!(note.contains("no upper edge was searched"), "{note}");
    assert!(!note.contains("fail even"), "{note}");
}

/// An upper-bounded SLO whose mean drifts down at low loads (a p99 within its noise)
/// is still searched upwards to its crossing, and the search is deterministic.
#[test]
fn upper_bounded_slo_passing_at_both_ends_doubles_to_its_crossing() {
    let mut cfg = config(
        "queue-full-burst.toml",
        &["load.schedule=[]", "duration=\"20s\""],
        &["p99<500ms"],
    );
    cfg.lo = Some("100/s".into());
    cfg.hi = Some("400/s".into());
    let r = run_search(&cfg);
    let cap = r.capacity.unwrap();
    assert!((900.0..1100.0).contains(&cap), "capacity {cap}");
    assert!(r.lower_edge.is_none());
    assert!(r.note.is_none(), "{:?}", r.note);
    let b = r.broke_first.as_ref().unwrap();
    assert_eq!(b.slo, "p99<500ms");
    // The page is all CPU: the processors are named, and the pool at its limit is put
    // down to them (more threads would give the same capacity).
    assert!(
        b.causes
            .iter()
            .any(|c| c.contains("processors were saturated")),
        "{:?}",
        b.causes
    );
    assert!(
        b.causes
            .iter()
            .filter(|c| c.starts_with("thread_pool."))
            .all(|c| c.contains("waiting for processors")),
        "{:?}",
        b.causes
    );
    let again = search(&cfg, &mut |_| {}).unwrap();
    assert_eq!(r.to_json(), again.to_json());
}

/// Defect B: SLOs pointing both ways: the values where all hold are an interval, and
/// both its ends are found; when it is empty, the report says so after searching it.
#[test]
fn opposite_slos_give_an_interval_or_a_reasoned_refusal() {
    let o = ["load.schedule=[]", "duration=\"20s\""];
    let r = run_search(&config(
        "queue-full-burst.toml",
        &o,
        &["throughput>800/s", "p99<40ms"],
    ));
    let cap = r.capacity.expect("a passing value");
    let l = r.lower_edge.as_ref().expect("a lower edge");
    assert!(
        780.0 < l.lowest_passing && l.lowest_passing < cap && cap < 900.0,
        "[{}, {cap}]",
        l.lowest_passing
    );
    let [lo, hi] = r.interval;
    assert_eq!(lo, Some(cap));
    assert!(hi.unwrap() - cap <= 0.01 * hi.unwrap());
    assert_eq!(r.broke_first.as_ref().unwrap().slo, "p99<40ms");
    for e in &r.evaluations {
        assert_eq!(
            e.pass,
            e.value >= l.lowest_passing && e.value <= cap,
            "{}",
            e.setting
        );
    }
    // No load gives 900/s of throughput with a p99 under 40 ms.
    let r = run_search(&config(
        "queue-full-burst.toml",
        &o,
        &["throughput>900/s", "p99<40ms"],
    ));
    assert_eq!(r.capacity, None);
    let note = r.note.as_deref().unwrap();
    assert!(
        note.contains("no value tried meets every SLO")
            && note.contains("throughput>900/s")
            && note.contains("p99<40ms"),
        "{note}"
    );
    // Values on both sides of the gap were tried, close together.
    assert!(r.evaluations.len() > 4, "{}", r.evaluations.len());
}

/// Defect B: a lower-bounded SLO no load can meet stops as soon as raising the load
/// stops helping, instead of doubling the rate up to one per nanosecond.
#[test]
fn unreachable_lower_bounded_slo_stops_when_more_does_not_help() {
    let r = run_search(&config(
        "queue-full-burst.toml",
        &["load.schedule=[]", "duration=\"20s\""],
        &["throughput>5000/s"],
    ));
    assert_eq!(r.capacity, None);
    assert!(r.evaluations.len() <= 4, "{}", r.evaluations.len());
    assert!(r.evaluations.iter().all(|e| e.value <= 8000.0));
    let note = r.note.as_deref().unwrap();
    assert!(note.contains("higher values do not help"), "{note}");
}

/// Defect C: an override that the scenario ignores is refused, with the way out.
#[test]
fn overrides_the_scenario_would_ignore_are_refused() {
    let path = experiment("queue-full-burst.toml");
    let set = |o: &[&str]| {
        let o: Vec<String> = o.iter().map(|s| s.to_string()).collect();
        load_file(&path, &o)
    };
    let e = set(&["load.rate=50/s"]).unwrap_err();
    assert_eq!(e.diagnostics.len(), 1);
    let d = &e.diagnostics[0];
    assert_eq!(d.file, "--set load.rate=50/s");
    assert_eq!(d.key, "load.rate");
    assert!(d.message.contains("load.schedule"), "{d}");
    assert!(
        d.help.as_deref().unwrap().contains("load.schedule=[]"),
        "{d}"
    );
    // Dropping the schedule (before or after) makes the rate count.
    for o in [
        ["load.schedule=[]", "load.rate=50/s"],
        ["load.rate=50/s", "load.schedule=[]"],
    ] {
        assert_eq!(set(&o).unwrap().load.rate.0, 50.0);
    }
    // A file may hold both (the schedule wins, as documented).
    let text = "[load]\nrate = \"10/s\"\nschedule = [{ at = \"0s\", rate = \"20/s\" }]\n";
    load_str("s.toml", text, &[]).unwrap();
    let e = load_str("s.toml", text, &["load.rate=30/s".into()]).unwrap_err();
    assert!(e.to_string().contains("has no effect"), "{e}");
    // Users in an open loop, a rate in a closed loop, a class's rate under its schedule.
    let e = load_str("s.toml", "", &["load.users=5".into()]).unwrap_err();
    assert!(e.to_string().contains("open loop"), "{e}");
    let closed = "[load]\nmode = \"closed\"\n";
    let e = load_str("s.toml", closed, &["load.rate=5/s".into()]).unwrap_err();
    assert!(e.to_string().contains("closed loop"), "{e}");
    load_str("s.toml", closed, &["load.users=5".into()]).unwrap();
    let class = "[[classes]]\nname = \"a\"\nservice = \"1ms\"\nschedule = [{ at = \"0s\", rate = \"5/s\" }]\n[[classes]]\nname = \"b\"\nservice = \"1ms\"\n";
    let e = load_str("s.toml", class, &["classes[0].rate=9/s".into()]).unwrap_err();
    assert!(e.to_string().contains("classes[0].schedule"), "{e}");
    // The shipped experiments all load as written.
    for f in std::fs::read_dir(experiment("")).unwrap() {
        let p = f.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.ends_with(".toml") && !name.ends_with(".sweep.toml") {
            load_file(&p, &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}

/// Defect C: `w3sim run --set load.rate=…` on a scheduled scenario exits 2 with the help,
/// and so does a capacity search varying it (before running anything).
#[test]
fn a_rate_under_a_schedule_is_refused_by_run_capacity_and_sweeps() {
    let out = Command::new(env!("CARGO_BIN_EXE_w3sim"))
        .arg("run")
        .arg(experiment("queue-full-burst.toml"))
        .args(["--set", "load.rate=50/s", "--duration", "5s"])
        .args([
            "--out",
            &std::env::temp_dir()
                .join("w3sim-cap-c")
                .display()
                .to_string(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`load.rate` has no effect") && stderr.contains("load.schedule=[]"),
        "{stderr}"
    );
    let cfg = config(
        "queue-full-burst.toml",
        &["duration=\"30s\""],
        &["p99<1100ms"],
    );
    let e = search(&cfg, &mut |_| panic!("nothing runs")).unwrap_err();
    assert!(matches!(e, SweepError::BadInput(_)), "{e}");
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().starts_with("--vary load.rate: "), "{e}");
    assert!(e.to_string().contains("load.schedule=[]"), "{e}");
    // A sweep whose axis is the rate, without dropping the schedule.
    let text = format!(
        "base = {:?}\n[[axes]]\npath = \"load.rate\"\nvalues = [\"300/s\"]\n",
        experiment("queue-full-burst.toml").display().to_string()
    );
    let tmp = std::env::temp_dir();
    let e = load_sweep_str("x.sweep.toml", "x.sweep.toml", &text, &tmp).unwrap_err();
    assert!(e.to_string().contains("`load.rate` has no effect"), "{e}");
}

/// Defect D: a farm's user-level outcomes are metrics of sweeps and SLOs of capacity
/// searches, whether or not they occur in the probe run.
#[test]
fn farm_outcomes_are_metrics_of_sweeps_and_slos() {
    let text = format!(
        "base = {:?}\nmetrics = [\"measured.outcomes.503_load_balancer_no_server\", \"outcomes.client_timeout\", \"farm.attempt_outcomes.client_timeout\"]\n[set]\nduration = \"20s\"\n[[axes]]\npath = \"load.rate\"\nvalues = [\"3000/s\"]\n",
        experiment("farm-cascade.toml").display().to_string()
    );
    let tmp = std::env::temp_dir();
    let s = load_sweep_str("f.sweep.toml", "f.sweep.toml", &text, &tmp)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.manifest.metrics.len(), 3);
    let mut cfg = config(
        "farm-cascade.toml",
        &["duration=\"20s\""],
        &["measured.outcomes.client_timeout<100"],
    );
    cfg.lo = Some("1000/s".into());
    cfg.hi = Some("2000/s".into());
    cfg.max_evaluations = 2;
    let r = run_search(&cfg);
    assert!(r.evaluations.iter().all(|e| e.slos[0].mean == 0.0));
    // A misspelt outcome is still unknown, with a suggestion.
    cfg.slos = vec![Slo::parse("measured.outcomes.client_timout<100").unwrap()];
    let e = search(&cfg, &mut |_| panic!("nothing runs")).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(
        e.to_string()
            .contains("did you mean `measured.outcomes.client_timeout`"),
        "{e}"
    );
}

/// A time on a name that is no latency is a misspelt latency, said as such: "p999<500ms"
/// said that "ms" did not fit `p999`.
#[test]
fn an_slo_with_a_time_on_an_unknown_name_suggests_the_latency() {
    let e = Slo::parse("p999<500ms").unwrap_err();
    assert!(
        e.contains("`p999` is not a latency") && e.contains("did you mean `p99`?"),
        "{e}"
    );
    let e = Slo::parse("latency<500ms").unwrap_err();
    assert!(e.contains("Latencies: p50, p95, p99, mean"), "{e}");
    assert_eq!(Slo::parse("p99<0.5s").unwrap().threshold, 500.0);
    assert!(Slo::parse("latency_ms.all.p99<500ms").is_ok());
}

/// "How many servers?": an SLO that holds only with enough of a setting (a farm's server
/// count), searched from a bracket whose low end (1 server) cannot be halved: the search
/// tries the bracket's top, sees the SLO improve with more servers, and finds the fewest
/// that meet it.
#[test]
fn the_fewest_servers_for_a_load_are_searched_upwards_from_one() {
    let overrides = [
        "load.schedule=[]",
        "load.rate=2500/s",
        "duration=\"20s\"",
        "farm.servers=[{name=\"web\", count=2}]",
    ];
    let mut cfg = config("queue-full-burst.toml", &overrides, &["503_rate<0.1%"]);
    cfg.vary = "farm.servers[0].count".into();
    cfg.lo = Some("1".into());
    cfg.hi = Some("8".into());
    let r = run_search(&cfg);
    // Each server takes ~990/s: 2 servers get 1250/s each and fail, 3 get 833/s.
    let l = r.lower_edge.as_ref().expect("a lower edge");
    assert_eq!(l.lowest_passing, 3.0);
    assert_eq!(l.highest_failing_below, 2.0);
    assert_eq!(r.answer(), "3");
    assert!(
        r.human()
            .contains("lowest passing farm.servers[0].count = 3"),
        "{}",
        r.human()
    );
}

/// `--lowest`: the least of a setting that meets every SLO, whichever side of the
/// bracket it lies: at `--lo` already (the answer is `--lo`, no doubling to huge farms),
/// or above `--hi` (doubling up, then bisecting down), even when the failing SLO is flat
/// at its worst so that no trend shows the way.
#[test]
fn lowest_finds_the_fewest_servers_on_either_side_of_the_bracket() {
    let farm = |rate: &str| {
        vec![
            "load.schedule=[]".to_string(),
            format!("load.rate={rate}"),
            "duration=\"20s\"".to_string(),
            "farm.servers=[{name=\"web\", count=2}]".to_string(),
        ]
    };
    let search_at = |rate: &str, lo: &str, hi: &str| {
        let o = farm(rate);
        let o: Vec<&str> = o.iter().map(String::as_str).collect();
        let mut cfg = config("queue-full-burst.toml", &o, &["503_rate<0.1%"]);
        cfg.vary = "farm.servers[0].count".into();
        cfg.lo = Some(lo.into());
        cfg.hi = Some(hi.into());
        cfg.lowest = true;
        run_search(&cfg)
    };
    // 500/s: one server is enough; the search stops there.
    let r = search_at("500/s", "1", "12");
    assert_eq!(r.goal, "lowest");
    assert_eq!(r.answer, Some(1.0));
    assert_eq!(r.evaluations.len(), 1, "{}", r.human());
    assert!(r.capacity.is_none() && r.broke_first.is_none());
    // 5000/s with a bracket of 1–2 servers: both refuse all the load (the balancer holds
    // every overloaded server out: no trend); the search doubles past --hi, then bisects
    // down to 5 or 6 servers (each takes ~990/s: 5 are just enough over 10 s measured).
    let r = search_at("5000/s", "1", "2");
    let a = r.answer.expect("an answer");
    assert!(a == 5.0 || a == 6.0, "{}", r.human());
    let l = r.lower_edge.as_ref().expect("the bracket below");
    assert_eq!(l.highest_failing_below, a - 1.0);
    assert!(r.evaluations.iter().any(|e| e.value > 2.0 && !e.pass));
    assert!(
        r.human()
            .contains(&format!("lowest passing farm.servers[0].count = {a}"))
    );
    // The command line: -q prints the answer alone.
    let out = Command::new(env!("CARGO_BIN_EXE_w3sim"))
        .arg("capacity")
        .arg(experiment("queue-full-burst.toml"))
        .args([
            "--lowest",
            "--vary",
            "farm.servers[0].count",
            "--lo",
            "1",
            "--hi",
            "4",
        ])
        .args(["--slo", "503_rate<0.1%", "-r", "1", "-q"])
        .args(
            farm("2500/s")
                .iter()
                .flat_map(|o| ["--set".to_string(), o.clone()]),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "3");
}

/// An audit found SLOs that can never decide anything accepted (then a search that
/// never ends, or an answer from nothing): a share of requests outside 0–100 %, a
/// negative latency or rate, a share below 0.
#[test]
fn slos_that_cannot_decide_anything_are_refused() {
    for (slo, says) in [
        ("503_rate<200%", "from 0 to 100 %"),
        ("failure_rate<=150%", "from 0 to 100 %"),
        ("503_rate<-1%", "from 0 to 100 %"),
        ("503_rate<0%", "write \"503_rate<=0%\""),
        ("p99<-5ms", "never negative"),
        ("throughput>-1/s", "never negative"),
    ] {
        let e = Slo::parse(slo).unwrap_err();
        assert!(e.contains(says), "{slo}: {e}");
    }
    for ok in [
        "503_rate<=0%",
        "failure_rate<100%",
        "503_rate<0.001",
        "p99<0.5s",
    ] {
        assert!(Slo::parse(ok).is_ok(), "{ok}");
    }
}

/// An audit's search doubled the load for hours: `p99<10s` holds at any load, since the
/// served requests' p99 stays bounded while the rest are refused. Once requests fail at
/// two passing values in a row and no SLO moved towards its threshold, the search stops
/// and says why; below capacity a slowly creeping p99 does not stop it.
#[test]
fn an_slo_that_never_fails_at_high_loads_does_not_double_forever() {
    let mut cfg = config(
        "queue-full-burst.toml",
        &["load.schedule=[]", "duration=\"20s\""],
        &["p99<60s"],
    );
    cfg.lo = Some("100/s".into());
    cfg.hi = Some("200/s".into());
    let r = run_search(&cfg);
    let note = r.note.as_deref().expect("a note");
    assert!(
        note.contains("stopped moving towards their thresholds") && note.contains("503_rate<"),
        "{note}"
    );
    // It went past the processors' capacity (~1000/s) before giving up, not earlier.
    let highest = r.evaluations.iter().map(|e| e.value).fold(0.0, f64::max);
    assert!(highest >= 1600.0, "stopped at {highest}");
    assert!(
        r.evaluations.len() <= 12,
        "{} evaluations",
        r.evaluations.len()
    );
}
