//! Every episode of a limit is dated at the time the limit was reached, not at the sample
//! that shows it: the simulation tells the incident detector which limits it reached in
//! each sample interval (`SampleSink::limit_reached`), `summary.json`'s `limits[]` keeps
//! the times that began incidents (`episodes_s`), and `explain` on the run directory
//! dates the incidents it reads from the time series with them.

mod common;

use common::*;

/// Three bursts, each more than HTTP.SYS's queue holds, 20 s apart: three episodes of
/// a full queue, each begun at its burst's instant (between samples).
const BURSTS: &str = r#"
name = "three-bursts"
duration = "70s"
[load]
rate = "50/s"
bursts = [ { at = "10.3s", count = 1500 }, { at = "30.6s", count = 1500 }, { at = "50.45s", count = 1500 } ]
[[classes]]
name = "page"
steps = [ { cpu = "5ms" } ]
[cpu]
logical_processors = 8
[http_sys]
queue_length = 1000
"#;

fn starts(s: &w3sim::Summary, kind: &str) -> Vec<f64> {
    s.incidents
        .iter()
        .filter(|i| i.kind == kind)
        .map(|i| i.time_s)
        .collect()
}

#[test]
fn each_episode_of_a_full_queue_begins_at_its_burst_not_at_the_next_sample() {
    let s = run(&load_text(BURSTS, &[]));
    check_conservation(&s);
    let bursts = [10.3, 30.6, 50.45];
    assert_eq!(
        starts(&s, "http_sys_queue_full"),
        bursts,
        "{:#?}",
        s.incidents
    );
    assert_eq!(starts(&s, "outcome:503_queue_full"), bursts);
    let l = &s.limits[0];
    assert_eq!(l.limit, "http_sys.queue_length");
    assert_eq!(l.at_s, 10.3);
    assert_eq!(l.episodes_s, bursts);
    // Each episode cleared before the next began: three incidents, not one.
    let q: Vec<_> = s
        .incidents
        .iter()
        .filter(|i| i.kind == "http_sys_queue_full")
        .collect();
    for w in q.windows(2) {
        assert!(w[0].cleared_s.is_some_and(|c| c < w[1].time_s), "{q:#?}");
    }
    // The 503s of each episode are caused by its own full queue.
    for i in s
        .incidents
        .iter()
        .filter(|i| i.kind == "outcome:503_queue_full")
    {
        let c = &s.incidents[i.caused_by.expect("a cause")];
        assert_eq!(
            (c.kind.as_str(), c.time_s),
            ("http_sys_queue_full", i.time_s)
        );
    }
}

#[test]
fn explain_on_the_run_directory_dates_every_episode_as_the_run_did() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("three-bursts.toml");
    std::fs::write(&file, BURSTS).unwrap();
    let out = tmp.path().join("out");
    w3sim_ok([
        "run".as_ref(),
        file.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let explained: serde_json::Value = serde_json::from_str(&w3sim_ok([
        "explain".as_ref(),
        "--json".as_ref(),
        out.as_os_str(),
    ]))
    .unwrap();
    assert_eq!(explained, summary["incidents"]);
    let text = w3sim_ok(["explain".as_ref(), out.as_os_str()]);
    for t in ["0:10.3", "0:30.6", "0:50.5"] {
        assert!(
            text.contains(&format!("{t} HTTP.SYS queue full")),
            "{t}:\n{text}"
        );
    }

    // Without summary.json (a time series copied alone) the episodes fall back to the
    // samples that show them.
    std::fs::remove_file(out.join("summary.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&w3sim_ok([
        "explain".as_ref(),
        "--json".as_ref(),
        out.as_os_str(),
    ]))
    .unwrap();
    let times: Vec<f64> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == "http_sys_queue_full")
        .map(|i| i["time_s"].as_f64().unwrap())
        .collect();
    assert_eq!(times, [11.0, 31.0, 51.0]);
}
