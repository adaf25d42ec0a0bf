//! `plot` and `report` on damaged sweep and capacity directories: real outputs of the
//! binary (a tiny sweep, a short capacity search), each damaged in one way, are refused
//! with exit code 2 and a message naming the file, the line and column (CSV) or the key
//! (JSON) and how to get the file back; never a panic, never a picture of what is not
//! there. What w3sim itself writes (empty cells, nulls) still plots and reports.

mod common;

use std::path::{Path, PathBuf};

use common::experiment;

/// Runs the `w3sim` binary: (exit code, stderr).
fn w3sim(args: &[&str]) -> (Option<i32>, String) {
    let (code, _, err) = common::w3sim_exit(args);
    (code, err)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Both commands succeed on `dir` (a report and a picture written outside it).
fn assert_plots_and_reports(dir: &Path) {
    let out = dir.parent().unwrap().join("pictures");
    for (cmd, file) in [("plot", "p.svg"), ("report", "r.html")] {
        let (code, err) = w3sim(&[cmd, s(dir), "--out", s(&out.join(file))]);
        assert_eq!(code, Some(0), "{cmd} {}: {err}", dir.display());
    }
}

/// Both commands refuse `dir` with exit code 2, a message holding every needle and a
/// `help:` line holding `help`.
fn assert_refused(dir: &Path, needles: &[&str], help: &str) {
    for cmd in ["plot", "report"] {
        let (code, err) = w3sim(&[cmd, s(dir)]);
        assert_eq!(code, Some(2), "{cmd} {}: {err}", dir.display());
        assert!(!err.contains("panicked"), "{cmd}: {err}");
        for n in needles {
            assert!(
                err.contains(n),
                "{cmd} {}: no {n:?} in\n{err}",
                dir.display()
            );
        }
        let h = err.split("help:").nth(1).unwrap_or("");
        assert!(h.contains(help), "{cmd}: no help with {help:?} in\n{err}");
    }
    // Nothing drawn or written from it.
    assert!(!dir.join("sweep.svg").exists() && !dir.join("capacity.svg").exists());
    assert!(!dir.join("report.html").exists());
}

/// A copy of `good` named `name` in which `file` is replaced by `edit` of it.
fn damaged(good: &Path, name: &str, file: &str, edit: &dyn Fn(String) -> String) -> PathBuf {
    let dir = good.parent().unwrap().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(good).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
        }
    }
    let text = std::fs::read_to_string(dir.join(file)).unwrap();
    std::fs::write(dir.join(file), edit(text)).unwrap();
    dir
}

/// The CSV text with cell `col` of line `line` (1-based, the header is line 1) replaced.
fn set_cell(text: &str, line: usize, col: usize, to: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut cells: Vec<&str> = lines[line - 1].split(',').collect();
    cells[col - 1] = to;
    lines[line - 1] = cells.join(",");
    lines.join("\n") + "\n"
}

/// The CSV text without column `col` (1-based) on every line.
fn drop_column(text: &str, col: usize) -> String {
    text.lines()
        .map(|l| {
            let mut cells: Vec<&str> = l.split(',').collect();
            cells.remove(col - 1);
            cells.join(",")
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// An edit of a file's text.
type Edit<'a> = Box<dyn Fn(String) -> String + 'a>;

/// A JSON file edited as a value.
fn json_edit(f: impl Fn(&mut serde_json::Value)) -> impl Fn(String) -> String {
    move |t| {
        let mut v: serde_json::Value = serde_json::from_str(&t).unwrap();
        f(&mut v);
        serde_json::to_string_pretty(&v).unwrap()
    }
}

/// A sweep of 2 points × 2 replications of 3 s: `outgoing.first_wsaenobufs_s` is null in
/// every run, so its mean and CI are written as empty cells.
fn tiny_sweep(tmp: &Path, name: &str, body: &str) -> PathBuf {
    let file = tmp.join(format!("{name}.sweep.toml"));
    let base = experiment("queue-full-burst.toml");
    std::fs::write(
        &file,
        format!(
            "base = {:?}\n{body}[set]\n\"load.schedule\" = []\n\"load.bursts\" = []\nduration = \"3s\"\nwarmup = \"1s\"\n[[axes]]\npath = \"load.rate\"\nvalues = [\"500/s\", \"1500/s\"]\n",
            s(&base)
        ),
    )
    .unwrap();
    let out = tmp.join(name);
    let (code, err) = w3sim(&["sweep", s(&file), "-q", "--out", s(&out)]);
    assert_eq!(code, Some(0), "{err}");
    out
}

#[test]
fn damaged_points_csv_is_refused_with_its_line_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tiny_sweep(
        tmp.path(),
        "good",
        "replications = 2\nmetrics = [\"503_rate\", \"p99_ms\", \"throughput\", \"outgoing.first_wsaenobufs_s\"]\n",
    );
    let points = std::fs::read_to_string(good.join("points.csv")).unwrap();
    assert!(
        points.lines().nth(1).unwrap().ends_with(",,,"),
        "the metric no run has is written as empty cells: {points}"
    );
    assert_plots_and_reports(&good);
    let header: Vec<&str> = points.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap() + 1;
    let resume = "--resume";
    let cases: Vec<(&str, Edit, Vec<String>)> = vec![
        (
            "not-a-number",
            Box::new(|t| set_cell(&t, 3, col("503_rate_mean"), "abc")),
            vec![format!(
                "points.csv:3: column {} (`503_rate_mean`): `abc` is not a number",
                col("503_rate_mean")
            )],
        ),
        (
            "nan",
            Box::new(|t| set_cell(&t, 2, col("throughput_mean"), "NaN")),
            vec![format!(
                "points.csv:2: column {} (`throughput_mean`): `NaN` is not a finite number",
                col("throughput_mean")
            )],
        ),
        (
            "missing-column",
            Box::new(|t| drop_column(&t, col("p99_ms_ci_low"))),
            vec![
                "points.csv:1:".into(),
                "expected `p99_ms_ci_low` after `p99_ms_mean`".into(),
            ],
        ),
        (
            "short-row",
            Box::new(|t| {
                let mut lines: Vec<&str> = t.lines().collect();
                lines[2] = &lines[2][..lines[2].rfind(',').unwrap()];
                lines.join("\n") + "\n"
            }),
            vec![format!(
                "points.csv:3: {} cell(s) where the header has {} columns",
                header.len() - 1,
                header.len()
            )],
        ),
        (
            "cut-short",
            Box::new(|t| t[..t.len() - 10].to_string()),
            vec![
                "points.csv:3: the file ends in the middle of this line".into(),
                "cut short".into(),
            ],
        ),
        (
            "axis-value",
            Box::new(|t| t.replace("1500/s", "1400/s")),
            vec![
                "points.csv:3: column 2 (`load.rate`): `1400/s` where sweep.json has `1500/s` for point 1"
                    .into(),
            ],
        ),
        (
            "row-deleted",
            Box::new(|t| t.lines().take(2).collect::<Vec<_>>().join("\n") + "\n"),
            vec!["points.csv:2: the last row is point 0, but sweep.json has 2 points".into()],
        ),
        (
            "half-an-interval",
            Box::new(|t| set_cell(&t, 2, col("p99_ms_ci_high"), "")),
            vec![format!(
                "points.csv:2: column {} (`p99_ms_ci_high`): empty but `p99_ms_ci_low` is not",
                col("p99_ms_ci_high")
            )],
        ),
        (
            "header-only",
            Box::new(|t| t.lines().next().unwrap().to_string() + "\n"),
            vec!["points.csv: a header and no rows".into()],
        ),
        (
            "not-points",
            Box::new(|_| "a,b\n1,2\n".into()),
            vec!["points.csv:1: not a w3sim points.csv: its first column is `a`".into()],
        ),
    ];
    for (name, edit, needles) in &cases {
        let dir = damaged(&good, name, "points.csv", edit.as_ref());
        let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        assert_refused(&dir, &needles, resume);
        // The help names the sweep file and the directory to resume.
        let (_, err) = w3sim(&["plot", s(&dir)]);
        assert!(
            err.contains(&format!(
                "w3sim sweep good.sweep.toml --out {} --resume",
                s(&dir)
            )),
            "{err}"
        );
    }
    // Without sweep.json (points.csv copied alone) it is checked against itself.
    let alone = tmp.path().join("alone");
    std::fs::create_dir_all(&alone).unwrap();
    std::fs::copy(good.join("points.csv"), alone.join("points.csv")).unwrap();
    assert_plots_and_reports(&alone);
    std::fs::write(
        alone.join("points.csv"),
        set_cell(&points, 3, col("p99_ms_mean"), "inf"),
    )
    .unwrap();
    assert_refused(
        &alone,
        &[&format!(
            "points.csv:3: column {} (`p99_ms_mean`): `inf` is not a finite number",
            col("p99_ms_mean")
        )],
        "SWEEP.toml",
    );
    // The undamaged directory still gives both.
    assert_plots_and_reports(&good);
}

#[test]
fn a_precision_target_and_one_replication_are_read_as_written() {
    let tmp = tempfile::tempdir().unwrap();
    // One replication: every CI cell is empty.
    let one = tiny_sweep(tmp.path(), "one", "replications = 1\n");
    assert_plots_and_reports(&one);
    // A precision target: `precision_met` (true/false) and `relative_half_width`.
    let prec = tiny_sweep(
        tmp.path(),
        "prec",
        "precision = { metric = \"throughput\", relative_half_width = 0.5, min_replications = 2, max_replications = 3 }\n",
    );
    let points = std::fs::read_to_string(prec.join("points.csv")).unwrap();
    assert!(
        points.contains(",precision_met,relative_half_width,"),
        "{points}"
    );
    assert_plots_and_reports(&prec);
    let bad = damaged(&prec, "prec-bad", "points.csv", &|t| {
        t.replacen(",true,", ",yes,", 1)
            .replacen(",false,", ",yes,", 1)
    });
    assert_refused(
        &bad,
        &["points.csv:2: column 4 (`precision_met`): `yes` is neither `true` nor `false`"],
        "--resume",
    );
    let bad = damaged(&prec, "prec-reps", "points.csv", &|t| {
        let reps = t
            .lines()
            .nth(1)
            .unwrap()
            .split(',')
            .nth(2)
            .unwrap()
            .to_string();
        let line = t.lines().nth(1).unwrap().to_string();
        t.replacen(&line, &line.replacen(&format!(",{reps},"), ",7,", 1), 1)
    });
    assert_refused(
        &bad,
        &[
            "points.csv:2: column 3 (`replications`): 7 where sweep.json asks 2 to 3 replications per point",
        ],
        "--resume",
    );
}

#[test]
fn damaged_sweep_json_is_refused_with_its_key() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tiny_sweep(tmp.path(), "good", "replications = 2\n");
    let manifest = "restore it from a copy, or run the sweep again";
    for (name, edit, needles) in [
        (
            "cut",
            Box::new(|t: String| t[..t.len() / 2].to_string()) as Edit,
            vec!["sweep.json:", "not JSON", "cut short"],
        ),
        (
            "array",
            Box::new(|_| "[1, 2]".to_string()),
            vec!["sweep.json: not a sweep manifest: expected a JSON object, found an array"],
        ),
        (
            "other-file",
            Box::new(|_| r#"{"vary": "load.rate", "unit": "/s"}"#.to_string()),
            vec![
                "sweep.json:1:",
                "not a sweep manifest: key `w3sim_version` is missing",
            ],
        ),
        (
            "wrong-type",
            Box::new(json_edit(|v| v["seed"] = "abc".into())),
            vec![
                "sweep.json:",
                "key `seed`: invalid type: string \"abc\", expected a whole number",
            ],
        ),
        (
            "no-axes",
            Box::new(json_edit(|v| {
                v.as_object_mut().unwrap().remove("axes");
            })),
            vec!["sweep.json:", "not a sweep manifest: key `axes` is missing"],
        ),
        (
            "point-values",
            Box::new(json_edit(|v| {
                v["points"][1]["values"] = serde_json::json!([])
            })),
            vec!["sweep.json: key `points[1].values`: 0 value(s) where the sweep has 1 axis"],
        ),
    ] {
        let dir = damaged(&good, name, "sweep.json", edit.as_ref());
        assert_refused(&dir, &needles, manifest);
    }
    // points.csv from another sweep than sweep.json's: its metrics are not the manifest's.
    let other = damaged(
        &good,
        "other-metrics",
        "sweep.json",
        &json_edit(|v| {
            v["metrics"] = serde_json::json!(["503_rate", "p99_ms"]);
        }),
    );
    assert_refused(
        &other,
        &[
            "points.csv:1: its metrics are `503_rate`, `failure_rate`, `p99_ms`, `throughput` but sweep.json's are `503_rate`, `p99_ms`",
        ],
        "--resume",
    );
    assert_plots_and_reports(&good);
}

/// A capacity search of mmck (4 servers) with one replication (null CIs), 6 s per run.
fn capacity(tmp: &Path, name: &str, slos: &[&str]) -> PathBuf {
    let out = tmp.join(name);
    let scn = experiment("validation/mmck.toml");
    let mut args = vec![
        "capacity",
        s(&scn),
        "--vary",
        "load.rate",
        "--lo",
        "100/s",
        "--hi",
        "600/s",
        "-r",
        "1",
        "--duration",
        "6s",
        "--warmup",
        "1s",
        "--tolerance",
        "0.1",
        "--max-evaluations",
        "5",
        "-q",
        "--out",
        s(&out),
    ];
    for slo in slos {
        args.extend(["--slo", slo]);
    }
    let (code, err) = w3sim(&args);
    assert_eq!(code, Some(0), "{err}");
    out
}

#[test]
fn damaged_capacity_json_is_refused_with_its_key() {
    let tmp = tempfile::tempdir().unwrap();
    let good = capacity(tmp.path(), "good", &["503_rate<2%", "p99<500ms"]);
    let text = std::fs::read_to_string(good.join("capacity.json")).unwrap();
    assert!(text.contains("\"ci_low\": null"), "one replication: {text}");
    assert_plots_and_reports(&good);
    // An SLO on a metric no run has: its means are null, and no value passes.
    let nulls = capacity(tmp.path(), "nulls", &["outgoing.first_wsaenobufs_s>1"]);
    let text = std::fs::read_to_string(nulls.join("capacity.json")).unwrap();
    assert!(text.contains("\"mean\": null") && text.contains("\"answer\": null"));
    assert_plots_and_reports(&nulls);

    let help = "run the search again";
    for (name, edit, needles) in [
        (
            "cut",
            Box::new(|t: String| t[..t.len() / 2].to_string()) as Edit,
            vec!["capacity.json:", "not JSON", "cut short"],
        ),
        (
            "not-an-object",
            Box::new(|_| "42".to_string()),
            vec!["capacity.json: not a capacity search: expected a JSON object, found a number"],
        ),
        (
            "no-evaluations",
            Box::new(json_edit(|v| {
                v.as_object_mut().unwrap().remove("evaluations");
            })),
            vec![
                "capacity.json:",
                "not a capacity search: key `evaluations` is missing",
            ],
        ),
        (
            "no-mean",
            Box::new(json_edit(|v| {
                v["evaluations"][1]["slos"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("mean");
            })),
            vec![
                "capacity.json:",
                "key `evaluations[1].slos[0].mean` is missing",
            ],
        ),
        (
            "string-value",
            Box::new(json_edit(|v| v["evaluations"][0]["value"] = "100/s".into())),
            vec![
                "capacity.json:",
                "key `evaluations[0].value`: invalid type: string \"100/s\", expected a number",
            ],
        ),
        (
            "unknown-slo",
            Box::new(json_edit(|v| {
                v["evaluations"][0]["slos"][1]["slo"] = "p99<1s".into()
            })),
            vec![
                "capacity.json: key `evaluations[0].slos[1].slo`: \"p99<1s\" is not one of the search's SLOs",
            ],
        ),
        (
            "result-removed",
            Box::new(json_edit(|v| {
                v["evaluations"][0]["slos"].as_array_mut().unwrap().pop();
            })),
            vec!["capacity.json: key `evaluations[0].slos`: no result for SLO \"p99<500ms\""],
        ),
        (
            "bad-slo-text",
            Box::new(json_edit(|v| v["slos"][0]["text"] = "503_rate<<2%".into())),
            vec!["capacity.json: key `slos[0].text`: SLO \"503_rate<<2%\""],
        ),
        (
            "bad-goal",
            Box::new(json_edit(|v| v["goal"] = "most".into())),
            vec!["capacity.json:", "key `goal`: unknown variant `most`"],
        ),
    ] {
        let dir = damaged(&good, name, "capacity.json", edit.as_ref());
        assert_refused(&dir, &needles, help);
    }
    assert_plots_and_reports(&good);
}

/// A damaged capacity.json in a sweep's directory is refused too (both are drawn), and
/// a sweep that has not completed says how to go on instead of "neither … nor …".
#[test]
fn a_sweep_directory_with_a_capacity_search_or_without_points() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tiny_sweep(tmp.path(), "good", "replications = 2\n");
    let cap = capacity(tmp.path(), "cap", &["503_rate<2%"]);
    std::fs::copy(cap.join("capacity.json"), good.join("capacity.json")).unwrap();
    assert_plots_and_reports(&good);
    let dir = damaged(&good, "bad-cap", "capacity.json", &|t| {
        t.replace("\"vary\"", "\"varied\"")
    });
    assert_refused(
        &dir,
        &[
            "capacity.json:",
            "not a capacity search: key `vary` is missing",
        ],
        "run the search again",
    );
    // Stopped before the end: runs.csv and sweep.json, no points.csv.
    let stopped = damaged(&good, "stopped", "sweep.json", &|t| t);
    std::fs::remove_file(stopped.join("points.csv")).unwrap();
    std::fs::remove_file(stopped.join("capacity.json")).unwrap();
    assert_refused(
        &stopped,
        &[
            "a sweep that has not completed",
            "w3sim sweep good.sweep.toml --out",
        ],
        "",
    );
}
