//! Bad input gets clear errors naming file, line, column and key, with suggestions;
//! never a panic. Every shipped scenario loads.

mod common;

use std::path::Path;
use std::process::Command;

use proptest::prelude::*;
use w3sim::scenario::load::{load_file, load_str};

const FOUR_ERRORS: &str = r#"name = "four-errors"
duration = "-5s"

[http_sys]
quue_length = 1000

[load]
rate = 100

[cpu
logical_processors = 4
"#;

#[test]
fn check_reports_four_errors_with_positions_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("four.toml");
    std::fs::write(&path, FOUR_ERRORS).unwrap();
    let err = load_file(&path, &[]).unwrap_err();
    let d = &err.diagnostics;
    let find = |key: &str| {
        d.iter()
            .find(|x| x.key == key)
            .unwrap_or_else(|| panic!("no error for {key}: {err}"))
    };

    let neg = find("duration");
    assert_eq!((neg.line, neg.column), (2, 12));
    assert!(neg.message.contains("negative"), "{}", neg.message);

    let typo = find("http_sys.quue_length");
    assert_eq!((typo.line, typo.column), (5, 1));
    assert!(
        typo.help
            .as_deref()
            .unwrap()
            .contains("did you mean `queue_length`")
    );

    let unit = find("load.rate");
    assert_eq!((unit.line, unit.column), (8, 8));
    assert!(unit.message.contains("no unit"), "{}", unit.message);
    assert!(
        unit.help
            .as_deref()
            .unwrap_or(&unit.message)
            .contains("100/s")
    );

    let syntax = d
        .iter()
        .find(|x| x.message.contains("TOML syntax"))
        .expect("syntax error reported");
    assert_eq!(syntax.line, 10);
    assert!(d.iter().all(|x| x.file.ends_with("four.toml")));

    // The CLI prints them, each with file:line:column, and exits 2.
    let out = Command::new(env!("CARGO_BIN_EXE_w3sim"))
        .arg("check")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "four.toml:2:12",
        "four.toml:5:1",
        "four.toml:8:8",
        "four.toml:10:",
    ] {
        assert!(stderr.contains(needle), "missing {needle} in:\n{stderr}");
    }
}

#[test]
fn semantic_errors_point_at_the_offending_key() {
    let text = "duration = \"10s\"\nwarmup = \"20s\"\n[http_sys]\nqueue_length = 5\n";
    let err = load_str("s.toml", text, &[]).unwrap_err();
    let w = err
        .diagnostics
        .iter()
        .find(|d| d.key == "warmup")
        .expect("warmup error");
    assert_eq!((w.line, w.column), (2, 10));
    let q = err
        .diagnostics
        .iter()
        .find(|d| d.key == "http_sys.queue_length")
        .expect("queue error");
    assert_eq!(q.line, 4);
    assert!(q.message.contains("10–65535"));
}

#[test]
fn overrides_use_dotted_paths_and_their_errors_name_the_override() {
    let base = "[load]\nrate = \"100/s\"\n";
    let s = load_str(
        "s.toml",
        base,
        &[
            "load.rate=400/s".into(),
            "http_sys.queue_length=5000".into(),
        ],
    )
    .unwrap();
    assert_eq!(s.load.rate.0, 400.0);
    assert_eq!(s.http_sys.queue_length, 5000);
    let s = load_str("s.toml", base, &["classes[0].service=const(5ms)".into()]).unwrap();
    assert_eq!(
        s.classes[0].service.as_ref().unwrap().0,
        w3sim_models::dist::Dist::Const(5e6)
    );

    let err = load_str("s.toml", base, &["http_sys.queue_lenght=5000".into()]).unwrap_err();
    let d = &err.diagnostics[0];
    assert_eq!(d.file, "--set http_sys.queue_lenght=5000");
    assert!(d.help.as_deref().unwrap().contains("queue_length"));

    let err = load_str("s.toml", base, &["load.rate=fast".into()]).unwrap_err();
    assert!(err.diagnostics[0].file.starts_with("--set load.rate"));
    let err = load_str("s.toml", base, &["classes[3].weight=2".into()]).unwrap_err();
    assert!(err.diagnostics[0].message.contains("out of range"), "{err}");
    let err = load_str("s.toml", base, &["nonsense".into()]).unwrap_err();
    assert!(err.diagnostics[0].message.contains("key=value"));
}

#[test]
fn every_shipped_scenario_loads() {
    let mut n = 0;
    let mut stack = vec![common::experiment("")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "toml")
                && !p.to_string_lossy().ends_with(".sweep.toml")
            {
                load_file(&p, &[])
                    .unwrap_or_else(|e| panic!("{} does not load:\n{e}", p.display()));
                n += 1;
            }
        }
    }
    assert!(n >= 6, "found only {n} scenarios");
}

#[test]
fn show_defaults_lists_every_setting_with_its_windows_name() {
    let text = common::w3sim_ok(["show-defaults"]);
    assert!(text.contains("http_sys.queue_length = 1000"));
    assert!(text.contains("applicationPools/add/@queueLength"));
    assert!(text.contains("thread_pool.min_worker_threads = 0"));
}

fn valid_scenarios() -> Vec<String> {
    [
        "queue-full-burst.toml",
        "validation/mmck.toml",
        "validation/closed-mmc.toml",
    ]
    .iter()
    .map(|p| std::fs::read_to_string(common::experiment(p)).unwrap())
    .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = load_str("fuzz.toml", &text, &[]);
    }

    #[test]
    fn mutated_scenarios_never_panic(
        which in 0usize..3,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..4, any::<char>()), 1..8),
    ) {
        let mut text: Vec<char> = valid_scenarios()[which].chars().collect();
        for (idx, op, ch) in edits {
            if text.is_empty() { break; }
            let i = idx.index(text.len());
            match op {
                0 => { text.remove(i); }
                1 => text.insert(i, ch),
                2 => { let c = text[i]; text.insert(i, c); }
                _ => text[i] = ch,
            }
        }
        let text: String = text.into_iter().collect();
        if let Err(e) = load_str("mutant.toml", &text, &[]) {
            prop_assert!(!e.diagnostics.is_empty());
            for d in &e.diagnostics {
                prop_assert!(!d.message.is_empty());
            }
        }
    }

    #[test]
    fn random_overrides_never_panic(key in "[a-z_.\\[\\]0-9]{0,30}", value in "\\PC{0,20}") {
        let _ = load_str("s.toml", "", &[format!("{key}={value}")]);
    }
}

#[test]
fn a_bad_value_in_a_list_element_is_reported_once_not_again_as_missing() {
    let text = "name = \"v\"\n[[valves]]\ncounter = \"ASP.NET\\\\Requests Queued\"\nperiod = \"1s\"\nclose_above = 2000\nopen_below = 2000\naction = \"skip\"\n";
    let err = load_str("v.toml", text, &[]).unwrap_err();
    assert_eq!(err.diagnostics.len(), 1, "{err}");
    let d = &err.diagnostics[0];
    assert_eq!(d.key, "valves[0].action");
    assert_eq!((d.line, d.column), (7, 10));
    assert!(d.help.as_deref().unwrap().contains("skip_outgoing_calls"));
    // A misspelt counter name gets a suggestion.
    let text = text
        .replace("Requests Queued", "Request Queued")
        .replace("\"skip\"", "\"skip_outgoing_calls\"");
    let err = load_str("v.toml", &text, &[]).unwrap_err();
    let d = &err.diagnostics[0];
    assert_eq!(d.key, "valves[0].counter");
    assert!(
        d.message
            .contains("did you mean \"ASP.NET\\Requests Queued\""),
        "{}",
        d.message
    );
}

/// The settings `w3sim show-defaults` lists (list elements and the seed left out), with
/// their unit.
fn settings() -> Vec<(String, String)> {
    let out = Command::new(env!("CARGO_BIN_EXE_w3sim"))
        .arg("show-defaults")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    lines
        .windows(2)
        .filter_map(|w| {
            let (key, _) = w[0].split_once(" = ")?;
            let unit = w[1].strip_prefix("    unit: ")?;
            (!key.starts_with(' ') && !key.contains("[]") && key != "seed")
                .then(|| (key.to_string(), unit.to_string()))
        })
        .collect()
}

/// Runs every case (scenario, the key under test, its `--set`s) on two threads and
/// fails with every case that neither ran nor was refused clearly.
fn all_run_or_are_refused(cases: &[(&str, String, Vec<String>)]) {
    let dir = tempfile::tempdir().unwrap();
    let failures = std::sync::Mutex::new(Vec::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for w in 0..2 {
            let (failures, next, out) = (&failures, &next, dir.path().join(format!("w{w}")));
            s.spawn(move || {
                while let Some((scenario, key, sets)) =
                    cases.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                {
                    if let Some(f) = runs_or_is_refused(scenario, key, sets, &out) {
                        failures.lock().unwrap().push(f);
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every integer or number setting, at 0 and at the largest value its type holds, either
/// runs or is refused with a clear error and exit code 2: never a panic (an arithmetic
/// overflow in this debug build) nor an allocation the machine cannot make (seed 000's
/// worker threads, the NIC's rings and each frame are simulated one by one).
#[test]
fn every_numeric_setting_at_zero_and_at_its_largest_value_runs_or_is_refused() {
    let mut cases = Vec::new();
    for (key, unit) in settings() {
        let big = if unit.starts_with("integer") || unit.starts_with("port") || unit == "count" {
            "4294967295"
        } else if unit.starts_with("number") || unit.starts_with("percent") {
            "1e300"
        } else {
            continue;
        };
        for value in ["0", big] {
            for scenario in ["queue-full-burst.toml", "farm-cascade.toml"] {
                let sets = vec![
                    "nic.enabled=true".to_string(),
                    "tcp.incoming_keep_alive=true".to_string(),
                    format!("{key}={value}"),
                ];
                cases.push((scenario, key.clone(), sets));
            }
            if let Some(sets) = with_its_client(&key, format!("{key}={value}")) {
                cases.push(("so-2013-async-outgoing.toml", key.clone(), sets));
            }
            if let Some(sets) = with_its_runtime(&key, format!("{key}={value}")) {
                cases.push(("so-2013-async-outgoing.toml", key.clone(), sets));
            }
        }
    }
    assert!(cases.len() >= 100, "{} cases", cases.len());
    all_run_or_are_refused(&cases);
}

/// The settings only `thread_pool.runtime = "net8"` reads (its IO completion pollers), with
/// that runtime: on the others an override of one is refused as having no effect.
fn with_its_runtime(key: &str, set: String) -> Option<Vec<String>> {
    let k = key.strip_prefix("thread_pool.")?;
    w3sim::scenario::NET8_POLLER_KEYS
        .contains(&k)
        .then(|| vec!["thread_pool.runtime=\"net8\"".to_string(), set])
}

/// Every duration setting at 0s and at 1ns runs or is refused: a period so short that a
/// run would never end (the URI scavenger, the balancer's probes, a valve's sampling, a
/// cache reload) is refused with its accepted range.
#[test]
fn every_duration_setting_at_zero_and_at_one_nanosecond_runs_or_is_refused() {
    let mut cases = Vec::new();
    for (key, unit) in settings() {
        if !unit.starts_with("duration") || unit.starts_with("duration distribution") {
            continue;
        }
        if key == "duration" || key == "warmup" {
            continue;
        }
        for value in ["0s", "1ns"] {
            for scenario in ["queue-full-burst.toml", "farm-cascade.toml"] {
                let sets = vec!["nic.enabled=true".to_string(), format!("{key}=\"{value}\"")];
                cases.push((scenario, key.clone(), sets));
            }
            if let Some(sets) = with_its_client(&key, format!("{key}=\"{value}\"")) {
                cases.push(("so-2013-async-outgoing.toml", key.clone(), sets));
            }
        }
    }
    assert!(cases.len() >= 100, "{} cases", cases.len());
    for value in ["0s", "1ns"] {
        cases.push((
            "valve-sampling-lag.toml",
            "valves[0].period".into(),
            vec![format!("valves[0].period=\"{value}\"")],
        ));
        cases.push((
            "gc-cache-reload.toml",
            "gc.cache_reload.every".into(),
            vec![format!(
                "gc.cache_reload={{ at = \"1s\", every = \"{value}\", size = \"1GB\" }}"
            )],
        ));
    }
    all_run_or_are_refused(&cases);
}

/// A `[connections]` setting `set` on a scenario with outgoing calls and the client that
/// reads it (the other client refuses it, which the cases above already show), so that its
/// extremes are simulated, not only refused.
fn with_its_client(key: &str, set: String) -> Option<Vec<String>> {
    let k = key.strip_prefix("connections.")?;
    let client = if w3sim::scenario::ConnectionClient::SOCKETS_HTTP_HANDLER_KEYS
        .iter()
        .any(|(x, _)| *x == k)
    {
        "sockets_http_handler"
    } else {
        "service_point"
    };
    Some(vec![format!("connections.client=\"{client}\""), set])
}

/// More events than any shipped scenario takes in 2 simulated seconds, by far.
const MAX_EVENTS: u64 = 20_000_000;

/// Runs `w3sim run SCENARIO` for 2 simulated seconds with `sets`; `None` when it
/// finished with exit code 0, or 2 and an error naming `key`; otherwise what went wrong.
/// A run still going after two minutes (each takes well under a second) is stopped and
/// reported: a period so short that the run would never end.
fn runs_or_is_refused(scenario: &str, key: &str, sets: &[String], out: &Path) -> Option<String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_w3sim"))
        .arg("run")
        .arg(common::experiment(scenario))
        .args(["-q", "--out"])
        .arg(out)
        .args(["--set", "duration=\"2s\"", "--set", "warmup=\"0s\""])
        .args(sets.iter().flat_map(|s| ["--set", s.as_str()]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > std::time::Duration::from_secs(120) {
            child.kill().unwrap();
            child.wait().unwrap();
            return Some(format!("{sets:?} on {scenario}: still running after 120 s"));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    let code = status.code();
    if code == Some(0) {
        // Two simulated seconds take tens of thousands of events; hundreds of millions
        // mean a period too short to simulate (the run ends, but only after minutes).
        let summary = std::fs::read_to_string(out.join("summary.json")).unwrap();
        let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
        let events = summary["events"].as_u64().unwrap();
        (events > MAX_EVENTS)
            .then(|| format!("{sets:?} on {scenario}: {events} events in 2 simulated seconds"))
    } else if code == Some(2) && stderr.contains(key) {
        None
    } else {
        Some(format!(
            "{sets:?} on {scenario}: exit {code:?}: {}",
            stderr.lines().take(3).collect::<Vec<_>>().join(" | ")
        ))
    }
}

/// A scenario whose simulated time cannot advance (closed-loop users who never think,
/// sending requests that take no time) ends with exit code 2 and an explanation instead
/// of running forever at one instant; a burst is bounded so that a valid one never looks
/// like that.
#[test]
fn a_run_whose_clock_cannot_move_is_stopped_with_an_explanation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zeno.toml");
    std::fs::write(
        &path,
        "name = \"zeno\"\nduration = \"1s\"\n[load]\nmode = \"closed\"\nusers = 10\n\
         think_time = \"const(0s)\"\n[[classes]]\nname = \"z\"\nservice = \"const(0s)\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_w3sim"))
        .arg("run")
        .arg(&path)
        .args(["-q", "--out"])
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("simulated time is stuck") && stderr.contains("think_time"),
        "{stderr}"
    );
    // The same users with 1 ns of service: time moves, the run ends normally.
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("service = \"const(0s)\"", "service = \"const(1ns)\"");
    let scn = load_str("zeno.toml", &text, &[]).unwrap();
    let s = w3sim::run(&scn, &mut w3sim::output::NullSink).unwrap();
    assert!(s.requests.completed > 1_000_000, "{:?}", s.requests);

    let err = load_str(
        "b.toml",
        "[load]\nbursts = [ { at = \"1s\", count = 20000000 } ]\n",
        &[],
    )
    .unwrap_err();
    assert_eq!(err.diagnostics[0].key, "load.bursts[0].count", "{err}");
    assert!(err.diagnostics[0].message.contains("10000000"), "{err}");
}

/// Outputs that grow with simulated time are bounded before a run starts: a week sampled
/// every millisecond would be 604,800,000 rows of timeseries.csv. Worker threads too.
#[test]
fn a_time_series_too_long_to_write_and_too_many_workers_are_refused() {
    let err = load_str(
        "t.toml",
        "duration = \"7d\"\nsample_interval = \"1ms\"\n",
        &[],
    )
    .unwrap_err();
    let d = &err.diagnostics[0];
    assert_eq!(d.key, "sample_interval", "{err}");
    assert!(d.message.contains("604800000 rows"), "{err}");
    // The same week sampled every minute is 10,080 rows: fine.
    load_str(
        "t.toml",
        "duration = \"7d\"\nsample_interval = \"1m\"\n",
        &[],
    )
    .unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_w3sim"))
        .args(["sweep", "x.sweep.toml", "--out", "x", "--jobs", "100000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("to 1024 worker threads"));
}

/// A reader that goes away early (`w3sim check … | head -1`) ends the program quietly: no
/// "failed printing to stdout" panic, no exit code 101.
#[test]
fn a_closed_stdout_ends_the_program_without_a_panic() {
    for args in [
        vec![
            "check".to_string(),
            common::experiment("farm-cascade.toml")
                .display()
                .to_string(),
        ],
        vec!["show-defaults".to_string()],
    ] {
        for _ in 0..3 {
            let mut child = Command::new(env!("CARGO_BIN_EXE_w3sim"))
                .args(&args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("w3sim starts");
            // Close the reading end before the program has printed anything.
            drop(child.stdout.take());
            let out = child.wait_with_output().expect("w3sim ends");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !stderr.contains("panicked") && out.status.code() != Some(101),
                "w3sim {args:?} with its stdout closed: {:?}\n{stderr}",
                out.status
            );
        }
    }
}

/// TOML's integers stop at 2^63 − 1, seeds do not: a farm's servers get seeds drawn from all
/// 64 bits, and `--seed` takes any u64. A seed above i64::MAX is written as a string and
/// reads back; the farm's servers can be built from it; a negative seed is refused.
#[test]
fn seeds_above_the_largest_toml_integer_are_written_as_strings_and_read_back() {
    let text = "name = \"s\"\nseed = \"18446744073709551615\"\nduration = \"2s\"\n";
    let s = load_str("s.toml", text, &[]).expect("a seed as a string of digits");
    assert_eq!(s.seed, u64::MAX);
    let out = s.to_toml();
    assert!(out.contains("seed = \"18446744073709551615\""), "{out}");
    assert_eq!(load_str("out.toml", &out, &[]).unwrap().seed, u64::MAX);
    let small = load_str("s.toml", "seed = 42\n", &[]).unwrap();
    assert!(small.to_toml().contains("seed = 42\n"));
    // A farm whose servers' seeds pass i64::MAX (server 1's here): each server's scenario
    // is written to and read from TOML.
    let farm = load_str(
        "f.toml",
        "seed = 1\nduration = \"2s\"\n[farm]\nservers = [ { name = \"web\", count = 4 } ]\n",
        &[],
    )
    .unwrap();
    let servers = farm.server_scenarios().expect("servers built");
    assert!(servers.iter().any(|(_, s)| s.seed > i64::MAX as u64));
    for (name, s) in &servers {
        let back = load_str(name, &s.to_toml(), &[]).expect("a server's scenario.toml reads back");
        assert_eq!(back.seed, s.seed);
    }
    let err = load_str("s.toml", "seed = -1\n", &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("seed") && err.contains("as a string of digits"),
        "{err}"
    );
}

/// Counts of repetitions start at one: `bench --repeat 0` ran once and `compare-clr
/// --seeds 0` ran seed 1, as if asked; both are now refused with the range.
#[test]
fn zero_repetitions_and_zero_seeds_are_refused() {
    let scn = common::experiment("thread-injection-burst.toml");
    for args in [
        vec!["bench".to_string(), "--repeat".into(), "0".into()],
        vec![
            "compare-clr".to_string(),
            scn.display().to_string(),
            "x.csv".into(),
            "--seeds".into(),
            "0".into(),
        ],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_w3sim"))
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("0 is not in 1..="), "{args:?}: {err}");
    }
}

/// Mistakes in `--set` are reported against the `--set` that made them, with the fix: a
/// misspelt table (it was placed at the file's 1:1), a misspelt list, a whole number
/// written as a negative or a float (serde's "expected u32" said neither the range nor
/// what to write), and a unit cut short ("4G" suggested "4B").
#[test]
fn override_mistakes_name_the_override_the_range_and_the_fix() {
    let base = "name = \"x\"\n[[classes]]\nname = \"p\"\nservice = \"exp(10ms)\"\n";
    let err = |o: &str| {
        load_str("s.toml", base, &[o.to_string()])
            .unwrap_err()
            .to_string()
    };
    let e = err("http_sy.queue_length=5");
    assert!(
        e.contains("--set http_sy.queue_length=5") && !e.contains("s.toml:1:1"),
        "{e}"
    );
    assert!(e.contains("did you mean `http_sys`?"), "{e}");
    let e = err("clasess[0].service=5ms");
    assert!(e.contains("did you mean `classes`?"), "{e}");
    let e = err("http_sys.queue_length=-5");
    assert!(
        e.contains("a whole number: integer 10–65535, got -5") && !e.contains("4294967295"),
        "{e}"
    );
    let e = err("http_sys.queue_length=1e3");
    assert!(
        e.contains("without a decimal point or exponent (1000)"),
        "{e}"
    );
    let e = err("gc.cache_reload.size=4G");
    assert!(e.contains("did you mean \"4GB\"?"), "{e}");
}

/// A bad value inside a list (a schedule point's rate) no longer hides the problems after
/// it: both are reported in one pass.
#[test]
fn a_bad_list_element_does_not_hide_later_problems() {
    let text = "name = \"two\"\n[load]\nschedule = [ { at = \"0s\", rate = \"700\" } ]\n\
                [[classes]]\nname = \"p\"\nservice = \"exp(10ms)\"\n\
                [thread_pool]\nruntime = \"net5\"\n";
    let e = load_str("two.toml", text, &[]).unwrap_err();
    let s = e.to_string();
    assert!(
        s.contains("load.schedule[0].rate") && s.contains("\"700/s\""),
        "{s}"
    );
    assert!(
        s.contains("thread_pool.runtime") && s.contains("net6"),
        "{s}"
    );
    assert!(
        s.contains("two.toml:3:") && s.contains("two.toml:8:"),
        "{s}"
    );
}

/// One past a list's end appends a whole element; further is refused and says so.
#[test]
fn an_override_one_past_a_lists_end_appends_an_element() {
    let base = "name = \"x\"\n[[classes]]\nname = \"p\"\nservice = \"exp(10ms)\"\n";
    let s = load_str(
        "s.toml",
        base,
        &["classes[1]={ name = \"q\", origin = \"local\", rate = \"5/s\", service = \"exp(1ms)\" }"
            .into()],
    )
    .expect("appended");
    assert_eq!(s.classes.len(), 2);
    assert_eq!(s.classes[1].name, "q");
    let e = load_str("s.toml", base, &["classes[2]={ name = \"q\" }".into()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("index 1 appends a whole element"), "{e}");
}

#[test]
fn range_errors_are_reported_with_unknown_keys_but_wait_for_values_that_could_not_be_read() {
    // Unknown keys change no value: the range and consistency errors come with them, in
    // the same table too.
    let text = "duration = \"10s\"\nwarmup = \"20s\"\n[cpu]\nlogical_processors = 0\n\
                [http_sys]\nqueue_length = 5\nqueue_lenght = 7\n[gc]\nflavor = \"server\"\n";
    let err = load_str("s.toml", text, &[]).unwrap_err();
    let keys: Vec<(&str, usize)> = err
        .diagnostics
        .iter()
        .map(|d| (d.key.as_str(), d.line))
        .collect();
    for (key, line) in [
        ("warmup", 2),
        ("cpu.logical_processors", 4),
        ("http_sys.queue_length", 6),
        ("http_sys.queue_lenght", 7),
        ("gc.flavor", 9),
    ] {
        assert!(
            keys.contains(&(key, line)),
            "{key} at line {line} in {keys:?}"
        );
    }
    assert_eq!(keys.len(), 5, "{err}");
    // A value that could not be read would have its default stand in for it: "warmup must
    // be shorter than duration (1m)" would blame the default, so range checks wait.
    let text = "duration = \"ten minutes\"\nwarmup = \"5m\"\n[cpu]\nlogical_processors = 0\n";
    let err = load_str("s.toml", text, &[]).unwrap_err();
    let keys: Vec<&str> = err.diagnostics.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(keys, ["duration"], "{err}");
    // After a syntax error, only what the parser and the types report, and no echo of
    // the broken header (its keys landing in the table above as unknown keys).
    let err = load_str(
        "s.toml",
        "duration = \"10s\"\nwarmup = \"20s\"\n[cpu\n",
        &[],
    )
    .unwrap_err();
    assert!(!err.diagnostics.iter().any(|d| d.key == "warmup"), "{err}");
    let err = load_str(
        "s.toml",
        "name = \"x\"\n[thread_pool\nmin_worker_threads = 5\n",
        &[],
    )
    .unwrap_err();
    assert_eq!(err.diagnostics.len(), 1, "{err}");
    assert!(err.diagnostics[0].message.contains("TOML syntax"), "{err}");
}

#[test]
fn keys_renamed_after_their_windows_setting_say_so() {
    for (text, old, new) in [
        ("[gc]\nflavor = \"server\"\n", "gc.flavor", "gc_server"),
        (
            "[gc]\nbackground = false\n",
            "gc.background",
            "gc_concurrent",
        ),
        (
            "[nic]\nrss_queues = 4\n",
            "nic.rss_queues",
            "number_of_receive_queues",
        ),
        (
            "[kernel_cache]\nenabled = false\n",
            "kernel_cache.enabled",
            "uri_enable_cache",
        ),
        (
            "[thread_pool]\nhill_climbing = false\n",
            "thread_pool.hill_climbing",
            "hill_climbing_disable",
        ),
        (
            "[tcp]\nreuse_time_wait_ports = true\n",
            "tcp.reuse_time_wait_ports",
            "so_reuse_unicastport",
        ),
    ] {
        let err = load_str("s.toml", text, &[]).unwrap_err();
        let d = &err.diagnostics[0];
        assert_eq!(d.key, old);
        let help = d.help.as_deref().unwrap_or("");
        assert!(help.contains(&format!("is now `{new}`")), "{old}: {help}");
    }
    // `nic.enabled` was not renamed: the kernel cache's rename does not leak to it.
    assert!(load_str("s.toml", "[nic]\nenabled = true\n", &[]).is_ok());
}

/// IIS writes durations as `00:20:00`; unquoted, TOML reads that as a time of day. Both
/// a file and `--set` take it as the duration it was meant to be.
#[test]
fn unquoted_iis_durations_are_durations() {
    let s = load_str(
        "s.toml",
        "name = \"x\"\nduration = 00:20:00\n[app_pool]\nidle_timeout = 00:05:00\n",
        &["app_pool.shutdown_time_limit=00:01:30".into()],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.duration.0, 1_200_000_000_000);
    assert_eq!(s.app_pool.idle_timeout.0, 300_000_000_000);
    assert_eq!(s.app_pool.shutdown_time_limit.0, 90_000_000_000);
    // A date is still refused, at its key.
    let e = load_str("s.toml", "duration = 2026-01-01\n", &[]).unwrap_err();
    assert_eq!(e.diagnostics[0].key, "duration", "{e}");
}

/// What a file writes that the scenario would ignore is refused too, at its line and
/// column, unless it is the default (a run's own `scenario.toml` writes every key) or an
/// override made it moot.
#[test]
fn settings_the_file_writes_that_would_be_ignored_are_refused() {
    let err = |text: &str, set: &[&str]| {
        let set: Vec<String> = set.iter().map(|s| s.to_string()).collect();
        load_str("c.toml", text, &set).unwrap_err().to_string()
    };
    let ok = |text: &str, set: &[&str]| {
        let set: Vec<String> = set.iter().map(|s| s.to_string()).collect();
        load_str("c.toml", text, &set).unwrap_or_else(|e| panic!("{e}"))
    };
    let closed = "name = \"c\"\n[load]\nmode = \"closed\"\nrate = \"500/s\"\n";
    let e = err(closed, &[]);
    assert!(e.contains("c.toml:4:8") && e.contains("closed loop"), "{e}");
    // The default rate (what a run's scenario.toml writes) is fine, and so is a rate next
    // to a schedule: the documented fallback when an override drops the schedule.
    ok(&closed.replace("500/s", "1000/s"), &[]);
    let both = "name = \"c\"\n[load]\nrate = \"500/s\"\nschedule = [ { at = \"0s\", rate = \"200/s\" } ]\n";
    ok(both, &[]);
    assert_eq!(ok(both, &["load.schedule=[]"]).load.rate.0, 500.0);
    let users = "name = \"c\"\n[load]\nrate = \"100/s\"\nusers = 500\n";
    let e = err(users, &[]);
    assert!(e.contains("c.toml:4:9") && e.contains("open loop"), "{e}");
    // Made moot by an override: closing the loop makes the file's rate ignored, not wrong;
    // the effective scenario (what a run writes as scenario.toml) loads again as it is.
    let moot = ok(
        "name = \"c\"\n[load]\nrate = \"300/s\"\n",
        &["load.mode=closed"],
    );
    assert_eq!(ok(&moot.to_toml(), &[]), moot);
    let lb = "name = \"c\"\n[load_balancer]\npolicy = \"random\"\n";
    assert!(
        err(lb, &[]).contains("there is no farm"),
        "{}",
        err(lb, &[])
    );
    let jitter = "name = \"c\"\n[clients]\ntimeout = \"1s\"\njitter = \"full\"\n";
    assert!(err(jitter, &[]).contains("do not retry"));
    ok(&jitter.replace("jitter", "retries = 2\njitter"), &[]);
    let sessions = "name = \"c\"\n[session_state]\nsessions = 3\n";
    assert!(err(sessions, &[]).contains("no class uses the session"));
    assert!(err("name = \"c\"\n", &["session_state.sessions=3"]).contains("no class uses"));
    // A run's own scenario.toml, which writes every key, loads again.
    let full = w3sim::scenario::Scenario::default().to_toml();
    ok(&full, &[]);
}

#[test]
fn impossible_handler_steps_and_gc_sizes_are_refused() {
    let class = |step: &str| {
        format!(
            "name = \"c\"\n[[backends]]\nname = \"api\"\n[[classes]]\nname = \"p\"\nsteps = [ {step} ]\n"
        )
    };
    let err = |text: &str| load_str("c.toml", text, &[]).unwrap_err().to_string();
    let e = err(&class("{ call = \"api\", fanout = 4294967295 }"));
    assert!(e.contains("at most 10000 calls per step"), "{e}");
    let e = err(&class("{ call = \"api\", fanout = 0 }"));
    assert!(e.contains("would make no call"), "{e}");
    let e = err(&class("{ alloc = \"100KB\", retain = \"2MB\" }"));
    assert!(e.contains("at most `alloc`"), "{e}");
    load_str(
        "c.toml",
        &class("{ call = \"api\", fanout = \"exp(3)\" }"),
        &[],
    )
    .unwrap();
    let e = err("name = \"c\"\n[gc]\ngc_gen0_size = \"16KB\"\n");
    assert!(e.contains("under 64KB"), "{e}");
}

#[test]
fn warmup_has_its_own_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let f = common::experiment("queue-full-burst.toml");
    // The file's 10 s warm-up does not fit a 5 s run; the error says how to shorten it.
    let bad = Command::new(env!("CARGO_BIN_EXE_w3sim"))
        .args(["run", f.to_str().unwrap(), "--duration", "5s", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--warmup"));
    common::w3sim_ok([
        "run",
        f.to_str().unwrap(),
        "--duration",
        "5s",
        "--warmup",
        "1s",
        "-q",
        "--out",
        out.to_str().unwrap(),
    ]);
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["measured"]["from_s"], 1.0);
}

/// Settings that size what is simulated are bounded where the bound is named, not by
/// what the machine can allocate: an audit's `tiering_promotions = 4294967295` aborted
/// the run on a 34 GB allocation, and four billion closed-loop users took 6.4 GB.
#[test]
fn settings_that_size_the_run_are_bounded_with_a_message() {
    let base = "[load]\nrate = \"100/s\"\n";
    for (sets, key, says) in [
        (
            vec![
                "thread_pool.tiered_compilation=true",
                "thread_pool.tiering_promotions=4294967295",
            ],
            "thread_pool.tiering_promotions",
            "0–64",
        ),
        (
            vec!["load.mode=\"closed\"", "load.users=4294967295"],
            "load.users",
            "1–10000000 users",
        ),
    ] {
        let sets: Vec<String> = sets.into_iter().map(String::from).collect();
        let err = load_str("s.toml", base, &sets).unwrap_err();
        let d = err
            .diagnostics
            .iter()
            .find(|d| d.key == key)
            .unwrap_or_else(|| panic!("no error on {key}: {err}"));
        assert!(d.message.contains(says), "{key}: {}", d.message);
    }
    let ok: Vec<String> = [
        "thread_pool.tiering_promotions=64",
        "load.mode=\"closed\"",
        "load.users=1000",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert!(load_str("s.toml", base, &ok).is_ok());
}

/// An audit's misspelt list element got its hint and then a second, spurious error
/// ("wanted exactly 1 element") from the element blanked to go on; a number where a
/// word is expected named no accepted value.
#[test]
fn a_bad_list_element_is_one_error_and_a_wrong_type_lists_the_accepted_values() {
    let text = "[[classes]]\nname = \"p\"\nservice = \"exp(10ms)\"\n[clients]\ntimeout = \"1s\"\nretries = 1\nretry_on = [\"503\", \"timout\"]\n";
    let err = load_str("s.toml", text, &[]).unwrap_err();
    assert_eq!(err.diagnostics.len(), 1, "{err}");
    let d = &err.diagnostics[0];
    assert_eq!(d.key, "clients.retry_on[1]");
    assert!(
        d.help
            .as_deref()
            .unwrap_or("")
            .contains("did you mean \"timeout\""),
        "{err}"
    );

    let text = "[[classes]]\nname = \"p\"\nservice = \"exp(10ms)\"\n[load_balancer]\npolicy = 5\n";
    let err = load_str(
        "s.toml",
        text,
        &["farm.servers=[{name=\"web\", count=2}]".into()],
    )
    .unwrap_err();
    let d = err
        .diagnostics
        .iter()
        .find(|d| d.key == "load_balancer.policy")
        .expect("an error on the policy");
    assert!(
        d.help
            .as_deref()
            .unwrap_or("")
            .contains("round_robin | least_connections | random"),
        "{err}"
    );
}

/// `--set farm.servers[0].count=2` on a scenario without a farm suggested `servers` for
/// `servers` (audit): a suggestion is only ever another name.
#[test]
fn an_index_into_an_empty_list_suggests_no_name_that_was_typed() {
    let err = load_str(
        "s.toml",
        "[load]\nrate = \"100/s\"\n",
        &["farm.servers[0].count=2".into()],
    )
    .unwrap_err();
    let m = &err.diagnostics[0].message;
    assert!(m.contains("has no elements to index"), "{err}");
    assert!(!m.contains("did you mean `servers`"), "{err}");
}

/// A whole number out of its type's range (negative, too large) named two ranges: the
/// type's ("expected a whole number from 0 to 4294967295") and, as help, the setting's
/// (audit). One message now gives the setting's documented range and unit; a setting
/// without a documented range keeps its type's.
#[test]
fn a_whole_number_outside_its_type_names_the_settings_range_only() {
    let base = "[[classes]]\nname = \"p\"\nservice = \"exp(10ms)\"\n";
    for (set, key, says) in [
        (
            "clients.retries=-1",
            "clients.retries",
            "count (0–100), got -1",
        ),
        (
            "http_sys.queue_length=-5",
            "http_sys.queue_length",
            "integer 10–65535, got -5",
        ),
        (
            "http_sys.queue_length=99999999999",
            "http_sys.queue_length",
            "integer 10–65535, got 99999999999",
        ),
        ("load.users=-1", "load.users", "integer 1–10000000, got -1"),
        (
            "thread_pool.tiering_promotions=-1",
            "thread_pool.tiering_promotions",
            "integer 0–64, got -1",
        ),
    ] {
        let err = load_str("s.toml", base, &[set.to_string()]).unwrap_err();
        assert_eq!(err.diagnostics.len(), 1, "{err}");
        let d = &err.diagnostics[0];
        assert_eq!(
            (d.file.as_str(), d.key.as_str()),
            (&*format!("--set {set}"), key)
        );
        assert!(
            d.message == format!("expected a whole number: {says}") && d.help.is_none(),
            "{set}: {err}"
        );
    }
    // Within the type, the semantic check gives the same range.
    let err = load_str("s.toml", base, &["clients.retries=101".into()]).unwrap_err();
    assert!(err.to_string().contains("must be 0–100, got 101"), "{err}");
    // No range documented: the type's is the setting's.
    let err = load_str(
        "s.toml",
        base,
        &["iis.app_concurrent_request_limit=-1".into()],
    )
    .unwrap_err();
    let d = &err.diagnostics[0];
    assert!(
        d.message == "expected a whole number from 0 to 4294967295, got -1"
            && d.help.as_deref() == Some("accepted: integer"),
        "{err}"
    );
}

/// A farm group's `set` entry without its `=` is told to be `key=value`, as `--set` is,
/// at the entry's line and column, with the entry mended. With an `=` inside the value
/// (`gc.cache_reload { at = "60s", … }`) it was read as the unknown key
/// `cache_reload { at` (audit); `--set` said the same.
#[test]
fn a_farm_set_entry_without_its_equals_sign_must_be_key_value() {
    let text = std::fs::read_to_string(common::experiment("farm-cascade.toml")).unwrap();
    let reload = r#"gc.cache_reload={ at = \"60s\", every = \"10m\", size = \"8GB\" }"#;
    assert!(text.contains(reload), "farm-cascade.toml changed");
    let line = text
        .lines()
        .position(|l| l.contains(reload))
        .expect("web1's set")
        + 1;
    for (entry, fix) in [
        (
            "http_sys.queue_length 5000",
            "\"http_sys.queue_length=5000\"",
        ),
        (
            "http_sys.queue_length: 5000",
            "\"http_sys.queue_length=5000\"",
        ),
        (
            r#"gc.cache_reload { at = \"60s\", every = \"10m\", size = \"8GB\" }"#,
            r#"'gc.cache_reload={ at = "60s", every = "10m", size = "8GB" }'"#,
        ),
    ] {
        let bad = text.replace(reload, entry);
        let err = load_str("farm.toml", &bad, &[]).unwrap_err();
        assert_eq!(err.diagnostics.len(), 1, "{err}");
        let d = &err.diagnostics[0];
        assert_eq!(
            (d.file.as_str(), d.line, d.column, d.key.as_str()),
            ("farm.toml", line, 8, "farm.servers[0].set[0]"),
            "{err}"
        );
        assert!(
            d.message.starts_with("expected key=value, got ")
                && d.message.ends_with(&format!("; did you mean {fix}?")),
            "{err}"
        );
        assert!(!d.message.contains("unknown key"), "{err}");
    }
    // The same entries given to --set.
    let base = "[[classes]]\nname = \"p\"\nservice = \"exp(10ms)\"\n";
    for (o, help) in [
        (
            "gc.cache_reload { at = \"60s\" }",
            "did you mean --set 'gc.cache_reload={ at = \"60s\" }'?",
        ),
        (
            "http_sys.queue_length 5000",
            "did you mean --set 'http_sys.queue_length=5000'?",
        ),
        (
            "nonsense",
            "e.g. --set http_sys.queue_length=5000 or --set load.rate=400/s",
        ),
    ] {
        let err = load_str("s.toml", base, &[o.to_string()]).unwrap_err();
        let d = &err.diagnostics[0];
        assert_eq!(d.message, "expected key=value", "{err}");
        assert_eq!(d.help.as_deref(), Some(help), "{err}");
    }
    // A space inside a key is still a misspelt key, not a missing `=`.
    let err = load_str("s.toml", base, &["http_sys queue_length=5000".into()]).unwrap_err();
    assert!(err.to_string().contains("unknown key"), "{err}");
}
