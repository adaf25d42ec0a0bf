//! A production load shape replayed (`load.replay`) and scaled (`load.scale`): the
//! capacity planner's "this is last Monday's traffic; what if it grew by half?".

mod common;

use std::path::Path;

use common::*;
use w3sim::scenario::load::{load_file, load_str};
use w3sim::sweep::capacity::{CapacityConfig, Slo, search};

const ARRIVALS: &str = "HTTP Service Request Queues\\ArrivalRate";

/// 200/s, then 800/s from 10 s, then 400/s from 20 s: a load shape with two steps.
const SHAPE: &str = r#"name = "shape"
duration = "30s"
[load]
schedule = [ { at = "0s", rate = "200/s" }, { at = "10s", rate = "800/s" }, { at = "20s", rate = "400/s" } ]
[[classes]]
name = "page"
service = "exp(2ms)"
"#;

fn replaying(file: &str, counter: &str) -> String {
    format!(
        "name = \"replay\"\nduration = \"30s\"\nseed = 7\n[load]\nreplay = {{ file = \"{file}\", counter = \"{}\" }}\n[[classes]]\nname = \"page\"\nservice = \"exp(2ms)\"\n",
        counter.replace('\\', "\\\\")
    )
}

/// Mean of `xs[a..b]`.
fn mean(xs: &[f64], a: usize, b: usize) -> f64 {
    xs[a..b].iter().sum::<f64>() / (b - a) as f64
}

/// Pearson's correlation of two equally long series.
fn correlation(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let (ma, mb) = (mean(a, 0, a.len()), mean(b, 0, b.len()));
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

/// The column of a CSV whose header ends with `suffix`.
fn csv_column(path: &Path, suffix: &str) -> Vec<f64> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let i = r
        .headers()
        .unwrap()
        .iter()
        .position(|h| h.ends_with(suffix))
        .unwrap_or_else(|| panic!("no column {suffix} in {}", path.display()));
    r.records()
        .map(|x| x.unwrap()[i].trim().parse().unwrap())
        .collect()
}

/// `w3sim run SCENARIO --out DIR`.
fn run_into(scenario: &Path, out: &Path) {
    w3sim_ok([
        "run".as_ref(),
        scenario.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn a_runs_arrival_rate_replayed_gives_the_same_shape_and_a_self_contained_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let src = write(dir.path(), "shape.toml", SHAPE);
    let run1 = dir.path().join("run1");
    run_into(&src, &run1);
    // The replay's file is relative to the scenario file, wherever the program runs.
    let sub = dir.path().join("scenarios");
    std::fs::create_dir(&sub).unwrap();
    let scn_path = write(
        &sub,
        "replay.toml",
        &replaying("../run1/timeseries.csv", ARRIVALS),
    );
    let scn = load_file(&scn_path, &[]).unwrap_or_else(|e| panic!("{e}"));
    assert!(scn.load.replay.is_none(), "the replay became the schedule");
    assert_eq!(scn.load.schedule.len(), 30, "one point per sample");
    assert_eq!(scn.load.schedule[0].at.0, 0);
    assert_eq!(scn.load.schedule[29].at.0, 29_000_000_000);

    let (_, original) = {
        let s = load_str("shape.toml", SHAPE, &[]).unwrap();
        run_series(&s)
    };
    let (_, replayed) = run_series(&scn);
    let (a, b) = (col(&original, ARRIVALS), col(&replayed, ARRIVALS));
    // Each 10-s step's mean arrival rate again, within Poisson noise (2,000 to 8,000
    // arrivals a step: a few per cent).
    for (lo, hi, rate) in [(0, 10, 200.0), (10, 20, 800.0), (20, 30, 400.0)] {
        let (ma, mb) = (mean(&a, lo, hi), mean(&b, lo, hi));
        assert!((ma - rate).abs() / rate < 0.08, "original {ma} vs {rate}");
        assert!(
            (mb - ma).abs() / ma < 0.08,
            "replayed {mb} vs original {ma}"
        );
    }
    // Sample by sample, the replay follows the original's noise, not just its steps:
    // the interval (k, k+1] gets the original's rate of that interval.
    let r = correlation(&a, &b);
    assert!(r > 0.97, "correlation {r}");

    // The run's scenario.toml holds the schedule, not the replay: it runs anywhere, and
    // gives the same outputs again.
    let run2 = dir.path().join("run2");
    run_into(&scn_path, &run2);
    let written = std::fs::read_to_string(run2.join("scenario.toml")).unwrap();
    let table: toml::Table = written.parse().unwrap();
    assert!(table["load"].get("replay").is_none(), "{written}");
    assert_eq!(table["load"]["schedule"].as_array().unwrap().len(), 30);
    let elsewhere = tempfile::tempdir().unwrap();
    let copy = write(elsewhere.path(), "scenario.toml", &written);
    let run3 = elsewhere.path().join("run3");
    run_into(&copy, &run3);
    assert_eq!(
        std::fs::read(run2.join("timeseries.csv")).unwrap(),
        std::fs::read(run3.join("timeseries.csv")).unwrap()
    );
}

#[test]
fn a_perfmon_capture_replayed_lines_up_with_compare() {
    let dir = tempfile::tempdir().unwrap();
    let src = write(dir.path(), "shape.toml", SHAPE);
    let run1 = dir.path().join("run1");
    let cap = dir.path().join("capture.csv");
    run_into(&src, &run1);
    w3sim_ok([
        "export-perfmon".as_ref(),
        run1.as_os_str(),
        "--out".as_ref(),
        cap.as_os_str(),
    ]);
    // The counter as perfmon writes it, with its machine and instance, works as well as
    // its Object\Counter.
    for counter in [
        ARRIVALS,
        "\\\\W3SIM\\HTTP Service Request Queues(DefaultAppPool)\\ArrivalRate",
    ] {
        let scn_path = write(
            dir.path(),
            "replay.toml",
            &replaying("capture.csv", counter),
        );
        let run2 = dir.path().join("run2");
        let _ = std::fs::remove_dir_all(&run2);
        run_into(&scn_path, &run2);
        // `compare` lines the capture up with the replayed run first sample on first
        // sample: the step from 200/s to 800/s is at the same sample in both.
        let out = w3sim_ok([
            "compare".as_ref(),
            run2.as_os_str(),
            cap.as_os_str(),
            "--json".as_ref(),
        ]);
        let v: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        let row = v
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["counter"] == ARRIVALS)
            .unwrap_or_else(|| panic!("{out}"));
        let rel = row["relative_error"].as_f64().unwrap();
        assert!(rel < 0.10, "{counter}: relative error {rel}");
        // Sample by sample: the capture's sample k and the run's sample k + 1 (the first
        // samples lined up) share their Poisson noise, which only an exact alignment shows.
        let real = csv_column(&cap, "\\ArrivalRate");
        let sim = csv_column(&run2.join("timeseries.csv"), "\\ArrivalRate");
        let r = correlation(&real, &sim);
        assert!(r > 0.97, "{counter}: correlation {r}");
    }
}

#[test]
fn replay_mistakes_are_reported_at_the_key_with_what_to_write() {
    let dir = tempfile::tempdir().unwrap();
    let src = write(dir.path(), "shape.toml", SHAPE);
    let run1 = dir.path().join("run1");
    run_into(&src, &run1);
    let check = |text: &str, overrides: &[String]| {
        let p = write(dir.path(), "bad.toml", text);
        let e = load_file(&p, overrides).expect_err("refused");
        let d = e.diagnostics[0].clone();
        (d, e.to_string())
    };
    // A file that is not there: the key's line and column, and where the path starts.
    let (d, all) = check(&replaying("nowhere.csv", ARRIVALS), &[]);
    assert_eq!(
        (d.key.as_str(), d.line, d.column),
        ("load.replay", 5, 10),
        "{all}"
    );
    assert!(d.message.contains("nowhere.csv"), "{all}");
    assert!(d.help.unwrap().contains("relative to its file"));
    // A misspelt counter: a suggestion and the capture's counters.
    let (d, all) = check(
        &replaying(
            "run1/timeseries.csv",
            "HTTP Service Request Queues\\ArivalRate",
        ),
        &[],
    );
    assert!(d.message.contains("no counter"), "{all}");
    let help = d.help.unwrap();
    assert!(
        help.contains("did you mean `HTTP Service Request Queues\\ArrivalRate`"),
        "{help}"
    );
    // Replay and schedule together, or a replay in a closed loop.
    let both = replaying("run1/timeseries.csv", ARRIVALS).replacen(
        "[load]\n",
        "[load]\nschedule = [{ at = \"0s\", rate = \"5/s\" }]\n",
        1,
    );
    let (d, all) = check(&both, &[]);
    assert!(d.message.contains("either `replay` or `schedule`"), "{all}");
    let (d, all) = check(
        &replaying("run1/timeseries.csv", ARRIVALS),
        &["load.mode=closed".into()],
    );
    assert_eq!(d.key, "load.replay", "{all}");
    // A negative rate in the capture.
    let neg = write(dir.path(), "neg.csv", "time_s,rate\n1,10\n2,-3\n");
    assert!(neg.exists());
    let (d, all) = check(&replaying("neg.csv", "rate"), &[]);
    assert!(d.message.contains("must be a number >= 0"), "{all}");
}

#[test]
fn a_farm_capture_asks_for_the_full_path_of_one_servers_counter() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("farm");
    w3sim_ok([
        "run".as_ref(),
        experiment("farm-cascade.toml").as_os_str(),
        "--duration".as_ref(),
        "15s".as_ref(),
        "--out".as_ref(),
        run.as_os_str(),
    ]);
    let series = run.join("timeseries.csv");
    let text = replaying(
        &series.display().to_string().replace('\\', "/"),
        "w3sim\\Load Balancer Requests/sec",
    );
    let e = load_str("s.toml", &text, &[]).expect_err("ambiguous");
    let d = &e.diagnostics[0];
    assert!(d.message.contains("columns of the capture match"), "{e}");
    assert!(
        d.help
            .as_deref()
            .unwrap()
            .contains("\\\\web1\\w3sim\\Load Balancer Requests/sec"),
        "{e}"
    );
    let one = replaying(
        &series.display().to_string().replace('\\', "/"),
        "\\\\web2\\w3sim\\Load Balancer Requests/sec",
    );
    let s = load_str("s.toml", &one, &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.load.schedule.len(), 15);
}

#[test]
fn load_scale_multiplies_every_open_loop_rate_and_capacity_finds_the_growth_a_server_absorbs() {
    // Constant arrivals: the counts are exact. [load]'s shared rate and a class's own
    // rate both scale.
    let base = r#"name = "scaled"
duration = "10s"
[load]
arrivals = "constant"
rate = "100/s"
[[classes]]
name = "a"
service = "const(1ms)"
[[classes]]
name = "b"
rate = "50/s"
service = "const(1ms)"
"#;
    let arrived = |overrides: &[String]| {
        let s = load_str("s.toml", base, overrides).unwrap_or_else(|e| panic!("{e}"));
        run(&s).requests.arrived
    };
    let one = arrived(&[]);
    let more = arrived(&["load.scale=1.5".into()]);
    assert!((1495..=1505).contains(&one), "{one}");
    assert!((2245..=2255).contains(&more), "{more}");
    let e = load_str("s.toml", base, &["load.scale=-1".into()]).unwrap_err();
    assert_eq!(e.diagnostics[0].key, "load.scale");

    // 16 threads on 16 dedicated processors, 10 ms per request, constant arrivals at
    // 1000/s: no queue up to 1600/s, an unbounded one beyond. The growth this server
    // absorbs with its p99 under 100 ms is thus 1.6 (a queue growing by less than
    // 3/s stays under 100 ms of waiting in the 55 s measured: at most 1.602).
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "sixteen.toml",
        r#"name = "sixteen"
duration = "60s"
warmup = "5s"
[load]
arrivals = "constant"
rate = "1000/s"
[[classes]]
name = "page"
service = "const(10ms)"
[cpu]
logical_processors = 16
scheduler = "dedicated"
context_switch_cost = "0s"
[thread_pool]
min_worker_threads = 16
max_worker_threads = 16
"#,
    );
    let cfg = CapacityConfig {
        scenario: p,
        overrides: Vec::new(),
        vary: "load.scale".into(),
        lo: None,
        hi: None,
        slos: vec![Slo::parse("p99<100ms").unwrap()],
        replications: 1,
        jobs: 2,
        tolerance: 0.005,
        max_evaluations: 40,
        lowest: false,
    };
    let r = search(&cfg, &mut |_| {}).unwrap_or_else(|e| panic!("{e}"));
    let c = r.capacity.expect("a capacity");
    assert!((1.55..=1.602).contains(&c), "capacity {c}\n{}", r.human());
}

#[test]
fn the_shipped_morning_capture_holds_as_it_is_and_fails_grown_by_half() {
    let as_is = load("replay-monday-morning.toml", &[]);
    assert_eq!(as_is.load.schedule.len(), 240, "one point per 5 s sample");
    let s = run(&as_is);
    check_conservation(&s);
    assert_eq!(s.requests.failed, 0);
    assert!(s.cpu_utilization_pct < 85.0, "{}", s.cpu_utilization_pct);
    let grown = run(&load("replay-monday-morning.toml", &["load.scale=1.5"]));
    check_conservation(&grown);
    let q = outcome(&grown, "503_queue_full");
    assert!(q as f64 > 0.02 * grown.requests.arrived as f64, "{q} 503s");
    assert_eq!(
        grown.first_limit.as_ref().map(|l| l.limit.as_str()),
        Some("http_sys.queue_length")
    );
}

/// A perfmon capture with three instances of one counter and a blank first sample, as
/// perfmon writes it.
const INSTANCES: &str = "\"(PDH-CSV 4.0) (Coordinated Universal Time)(0)\",\"\\\\WEB1\\W3SVC_W3WP(_Total)\\Requests / Sec\",\"\\\\WEB1\\W3SVC_W3WP(1234_Pool1)\\Requests / Sec\",\"\\\\WEB1\\W3SVC_W3WP(5678_Pool2)\\Requests / Sec\"\r\n\
\"11/16/2026 08:00:00.000\",\" \",\" \",\" \"\r\n\
\"11/16/2026 08:00:05.000\",\"100\",\"60\",\"40\"\r\n\
\"11/16/2026 08:00:10.000\",\"\",\"\",\"\"\r\n\
\"11/16/2026 08:00:15.000\",\"300\",\"200\",\"100\"\r\n";

fn replay_text(file: &str, counter: &str, extra: &str) -> String {
    format!(
        "name = \"r\"\nduration = \"30s\"\n[load]\nreplay = {{ file = \"{file}\", counter = '{counter}'{extra} }}\n[[classes]]\nname = \"page\"\nservice = \"exp(2ms)\"\n"
    )
}

#[test]
fn counters_match_by_every_part_written_and_blank_samples_keep_a_rate() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "cap.csv", INSTANCES);
    let load = |counter: &str, extra: &str| {
        let p = write(
            dir.path(),
            "s.toml",
            &replay_text("cap.csv", counter, extra),
        );
        load_file(&p, &[])
    };
    // (seconds, rate) of each schedule point.
    let rates = |counter: &str, extra: &str| -> Vec<(u64, f64)> {
        let s = load(counter, extra).unwrap_or_else(|e| panic!("{counter}: {e}"));
        s.load
            .schedule
            .iter()
            .map(|p| ((p.at.0 + 500_000) / 1_000_000_000, p.rate.0))
            .collect()
    };
    // The instance written picks its column; the blank first sample takes the first rate
    // (not a silent 5 s without load), the blank third keeps the rate before it.
    assert_eq!(
        rates("W3SVC_W3WP(_Total)\\Requests / Sec", ""),
        [(0, 100.0), (5, 100.0), (10, 100.0), (15, 300.0)]
    );
    assert_eq!(
        rates("w3svc_w3wp(1234_pool1)\\requests / sec", "")[3],
        (15, 200.0)
    );
    // Without an instance, three columns match: the error lists them.
    let e = load("W3SVC_W3WP\\Requests / Sec", "").unwrap_err();
    assert!(e.diagnostics[0].message.contains("3 columns"), "{e}");
    // Another machine matches nothing.
    let e = load("\\\\OTHER\\W3SVC_W3WP(_Total)\\Requests / Sec", "").unwrap_err();
    assert!(e.diagnostics[0].message.contains("no counter"), "{e}");
    // `from` between samples: time 0 takes the rate of the sample whose interval holds it.
    assert_eq!(
        rates("W3SVC_W3WP(_Total)\\Requests / Sec", ", from = \"7s\""),
        [(0, 100.0), (3, 100.0), (8, 300.0)]
    );
    let e = load("W3SVC_W3WP(_Total)\\Requests / Sec", ", from = \"1h\"").unwrap_err();
    assert!(
        e.diagnostics[0]
            .message
            .contains("past the capture's last sample"),
        "{e}"
    );
}

#[test]
fn captures_that_cannot_be_replayed_as_written_are_refused_with_their_row() {
    let dir = tempfile::tempdir().unwrap();
    let load = |csv: &str| {
        write(dir.path(), "cap.csv", csv);
        let p = write(dir.path(), "s.toml", &replay_text("cap.csv", "rate", ""));
        load_file(&p, &[]).unwrap_err()
    };
    // Times going back (a local-time capture across the end of daylight saving).
    let e = load("time_s,rate\n10,100\n20,200\n15,300\n");
    assert!(e.diagnostics[0].message.contains("must increase"), "{e}");
    // A decimal comma is not a blank to skip.
    let e = load("time_s,rate\n10,100\n20,\"150,5\"\n");
    let d = &e.diagnostics[0];
    assert!(
        d.message.contains("row 3") && d.message.contains("150,5"),
        "{e}"
    );
    assert!(d.help.as_deref().unwrap().contains("decimal comma"));
}

#[test]
fn what_the_replay_makes_ineffective_is_refused_and_its_file_follows_the_scenario() {
    // `load.rate` under a replay would change nothing: refused, with load.scale offered.
    let e = load_file(
        &experiment("replay-monday-morning.toml"),
        &["load.rate=100/s".into()],
    )
    .unwrap_err();
    let d = &e.diagnostics[0];
    assert_eq!(d.key, "load.rate");
    assert!(d.help.as_deref().unwrap().contains("load.scale"), "{e}");
    // Overriding the replay's `from` keeps its file relative to the scenario file.
    let s = load_file(
        &experiment("replay-monday-morning.toml"),
        &["load.replay.from=\"5m\"".into()],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.load.schedule.len(), 180);
    // A replay that would drive no class.
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "cap.csv", "time_s,rate\n1,10\n");
    let text = replay_text("cap.csv", "rate", "")
        .replace("name = \"page\"\n", "name = \"page\"\nrate = \"20/s\"\n");
    let p = write(dir.path(), "s.toml", &text);
    let e = load_file(&p, &[]).unwrap_err();
    assert!(
        e.diagnostics[0].message.contains("would change nothing"),
        "{e}"
    );
}

#[test]
fn a_sweeps_replay_file_is_relative_to_the_sweep_file() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("sweeps");
    std::fs::create_dir(&sub).unwrap();
    write(&sub, "cap.csv", "time_s,rate\n1,10\n2,20\n");
    write(
        dir.path(),
        "base.toml",
        "name = \"b\"\nduration = \"5s\"\n[[classes]]\nname = \"page\"\nservice = \"exp(2ms)\"\n",
    );
    let sweep = write(
        &sub,
        "r.sweep.toml",
        "base = \"../base.toml\"\nreplications = 1\n[set]\n\"load.replay\" = { file = \"cap.csv\", counter = \"rate\" }\n[[axes]]\npath = \"load.scale\"\nvalues = [1.0, 2.0]\n",
    );
    let s = w3sim::sweep::spec::load_sweep_file(&sweep).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.scenarios.len(), 2);
    assert_eq!(s.scenarios[0].load.schedule.len(), 2);
    assert_eq!(s.scenarios[1].load.scale, 2.0);
}

#[test]
fn a_utf16_capture_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = vec![0xFF, 0xFE];
    for u in "time_s,rate\n1,10\n".encode_utf16() {
        bytes.extend(u.to_le_bytes());
    }
    std::fs::write(dir.path().join("cap.csv"), bytes).unwrap();
    let p = write(dir.path(), "s.toml", &replay_text("cap.csv", "rate", ""));
    let e = load_file(&p, &[]).unwrap_err();
    assert!(e.diagnostics[0].message.contains("UTF-16"), "{e}");
}

#[test]
fn a_class_rate_in_a_closed_loop_is_refused() {
    let text = "name = \"c\"\n[load]\nmode = \"closed\"\nusers = 1\n[[classes]]\nname = \"a\"\nrate = \"20/s\"\nservice = \"1ms\"\n";
    let e = load_str("s.toml", text, &[]).unwrap_err();
    assert_eq!(e.diagnostics[0].key, "classes[0].rate", "{e}");
    assert!(e.diagnostics[0].message.contains("closed loop"), "{e}");
}

#[test]
fn check_says_what_is_replayed_and_when_the_capture_ends_before_the_run() {
    let scenario = experiment("replay-monday-morning.toml");
    let out = w3sim_ok([
        "check".as_ref(),
        scenario.as_os_str(),
        "--set".as_ref(),
        "duration=\"1h\"".as_ref(),
    ]);
    assert!(
        out.contains("HTTP Service Request Queues(DefaultAppPool)\\ArrivalRate` of captures/web1-monday-morning.csv (240 samples, 20m of capture)"),
        "{out}"
    );
    assert!(
        out.contains("the capture ends at 20m of the 1h run"),
        "{out}"
    );
    let out = w3sim_ok(["check".as_ref(), scenario.as_os_str()]);
    assert!(!out.contains("the capture ends"), "{out}");
}
