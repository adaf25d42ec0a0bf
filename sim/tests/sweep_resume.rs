//! A sweep that is stopped loses no finished run: `--resume` and `--shard` refuse a
//! directory holding another slice's runs, and `w3sim merge` refuses to write over an
//! existing results directory or into one of its inputs. Each refusal is exit 2 with a
//! message naming what is wrong, and leaves `runs.csv` byte-identical.

use std::path::{Path, PathBuf};
use std::process::Command;

fn mmck_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../experiments/validation/mmck.toml")
}

/// A sweep of 2 points × 2 replications of a few simulated seconds, written into `dir`.
fn sweep_file(dir: &Path, name: &str, seed: u64) -> PathBuf {
    let text = format!(
        r#"base = {:?}
replications = 2
seed = {seed}
metrics = ["503_rate", "p99_ms"]
[set]
duration = "4s"
warmup = "1s"
sample_interval = "1s"
[[axes]]
path = "load.rate"
values = ["300/s", "450/s"]
"#,
        mmck_path().display().to_string()
    );
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

struct Out {
    code: Option<i32>,
    stderr: String,
}

/// Runs the `w3sim` program with `args`.
fn w3sim<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Out {
    let o = Command::new(env!("CARGO_BIN_EXE_w3sim"))
        .args(args)
        .output()
        .expect("w3sim starts");
    Out {
        code: o.status.code(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn ok<S: AsRef<std::ffi::OsStr>>(args: &[S]) {
    let o = w3sim(args);
    assert_eq!(o.code, Some(0), "w3sim failed:\n{}", o.stderr);
}

/// Asserts exit 2 with an `error:` line containing every needle, and no panic.
fn refused<S: AsRef<std::ffi::OsStr>>(args: &[S], needles: &[&str]) {
    let o = w3sim(args);
    assert_eq!(o.code, Some(2), "expected exit 2, stderr:\n{}", o.stderr);
    assert!(!o.stderr.contains("panicked"), "{}", o.stderr);
    assert!(o.stderr.contains("error: "), "{}", o.stderr);
    for n in needles {
        assert!(o.stderr.contains(n), "missing {n:?} in:\n{}", o.stderr);
    }
}

fn bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn sweep_args(file: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut v = vec!["sweep".into(), s(file), "--out".into(), s(out), "-q".into()];
    v.extend(extra.iter().map(|x| x.to_string()));
    v
}

/// Data rows of a runs.csv.
fn rows(p: &Path) -> usize {
    String::from_utf8(bytes(p)).unwrap().lines().count() - 1
}

#[test]
fn a_shard_directory_is_only_resumed_as_the_same_shard() {
    let tmp = tempfile::tempdir().unwrap();
    let file = sweep_file(tmp.path(), "s.sweep.toml", 7);
    let sh1 = tmp.path().join("sh1");
    ok(&sweep_args(&file, &sh1, &["--shard", "1/2"]));
    let runs = sh1.join("runs.csv");
    let before = bytes(&runs);
    let shard_before = bytes(&sh1.join("shard.json"));
    assert_eq!(rows(&runs), 2, "shard 1/2 holds 2 of the 4 runs");

    // Another shard, with --resume: refused, naming the directory and both shards.
    refused(
        &sweep_args(&file, &sh1, &["--shard", "0/2", "--resume"]),
        &[&s(&sh1), "shard 1/2", "shard 0/2"],
    );
    assert_eq!(bytes(&runs), before, "runs.csv unchanged");
    assert_eq!(bytes(&sh1.join("shard.json")), shard_before);
    // Another shard without --resume: refused too, with the same explanation.
    refused(
        &sweep_args(&file, &sh1, &["--shard", "0/2"]),
        &[&s(&sh1), "shard 1/2", "shard 0/2"],
    );
    assert_eq!(bytes(&runs), before);
    // Another count of shards, and the whole sweep (no --shard): refused.
    refused(
        &sweep_args(&file, &sh1, &["--shard", "1/3", "--resume"]),
        &["shard 1/2", "shard 1/3"],
    );
    refused(
        &sweep_args(&file, &sh1, &["--resume"]),
        &[&s(&sh1), "shard 1/2", "whole sweep"],
    );
    assert_eq!(bytes(&runs), before);
    assert!(!sh1.join("points.csv").exists());

    // The same shard resumes: nothing to run, the files stay as they were.
    ok(&sweep_args(&file, &sh1, &["--shard", "1/2", "--resume"]));
    assert_eq!(bytes(&runs), before);
    assert_eq!(bytes(&sh1.join("shard.json")), shard_before);
}

#[test]
fn a_stopped_shard_is_only_resumed_as_the_same_shard() {
    let tmp = tempfile::tempdir().unwrap();
    let file = sweep_file(tmp.path(), "s.sweep.toml", 7);
    let sh1 = tmp.path().join("sh1");
    ok(&sweep_args(
        &file,
        &sh1,
        &["--shard", "1/2", "--stop-after", "1"],
    ));
    let runs = sh1.join("runs.csv");
    let before = bytes(&runs);
    assert_eq!(rows(&runs), 1, "stopped after one run");

    refused(
        &sweep_args(&file, &sh1, &["--shard", "0/2", "--resume"]),
        &[&s(&sh1), "shard 1/2", "shard 0/2"],
    );
    assert_eq!(bytes(&runs), before);

    // Finished with the same shard, it matches a shard run in one go.
    ok(&sweep_args(&file, &sh1, &["--shard", "1/2", "--resume"]));
    let whole = tmp.path().join("sh1-whole");
    ok(&sweep_args(&file, &whole, &["--shard", "1/2"]));
    assert_eq!(bytes(&runs), bytes(&whole.join("runs.csv")));
    assert_eq!(
        bytes(&sh1.join("shard.json")),
        bytes(&whole.join("shard.json"))
    );
}

#[test]
fn an_unsharded_directory_is_not_resumed_as_a_shard() {
    let tmp = tempfile::tempdir().unwrap();
    let file = sweep_file(tmp.path(), "s.sweep.toml", 7);
    let all = tmp.path().join("all");
    ok(&sweep_args(&file, &all, &[]));
    let runs = all.join("runs.csv");
    let before = bytes(&runs);
    assert_eq!(rows(&runs), 4);

    refused(
        &sweep_args(&file, &all, &["--shard", "0/2", "--resume"]),
        &[&s(&runs), "shard 0/2", "without --shard"],
    );
    assert_eq!(bytes(&runs), before);
    assert!(!all.join("shard.json").exists());
    // Resumed as what it is, it is complete.
    ok(&sweep_args(&file, &all, &["--resume"]));
    assert_eq!(bytes(&runs), before);
}

#[test]
fn merge_never_writes_over_existing_results() {
    let tmp = tempfile::tempdir().unwrap();
    let file = sweep_file(tmp.path(), "s.sweep.toml", 7);
    let sh: Vec<PathBuf> = (0..2).map(|k| tmp.path().join(format!("sh{k}"))).collect();
    for (k, d) in sh.iter().enumerate() {
        ok(&sweep_args(&file, d, &["--shard", &format!("{k}/2")]));
    }
    let merge = |out: &Path| -> Vec<String> {
        vec!["merge".into(), s(&sh[0]), s(&sh[1]), "--out".into(), s(out)]
    };
    let inputs: Vec<Vec<u8>> = sh.iter().map(|d| bytes(&d.join("runs.csv"))).collect();
    let inputs_unchanged = || {
        for (d, b) in sh.iter().zip(&inputs) {
            assert_eq!(&bytes(&d.join("runs.csv")), b, "{} changed", d.display());
        }
    };

    // Into a new directory, and into an empty one: merged.
    let new = tmp.path().join("merged");
    ok(&merge(&new));
    assert_eq!(rows(&new.join("runs.csv")), 4);
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    ok(&merge(&empty));
    assert_eq!(bytes(&empty.join("runs.csv")), bytes(&new.join("runs.csv")));

    // Into a directory holding another sweep's results: refused, they stay.
    let other_file = sweep_file(tmp.path(), "other.sweep.toml", 99);
    let other = tmp.path().join("other");
    ok(&sweep_args(&other_file, &other, &[]));
    let other_runs = bytes(&other.join("runs.csv"));
    let other_points = bytes(&other.join("points.csv"));
    let other_json = bytes(&other.join("sweep.json"));
    refused(
        &merge(&other),
        &[&s(&other.join("runs.csv")), "already exists", "--out"],
    );
    assert_eq!(bytes(&other.join("runs.csv")), other_runs);
    assert_eq!(bytes(&other.join("points.csv")), other_points);
    assert_eq!(bytes(&other.join("sweep.json")), other_json);
    // Nor over the result of an earlier merge.
    let merged = bytes(&new.join("runs.csv"));
    refused(&merge(&new), &["already exists"]);
    assert_eq!(bytes(&new.join("runs.csv")), merged);

    // Into one of its inputs, however spelt: refused.
    refused(
        &merge(&sh[0]),
        &[&s(&sh[0]), "one of the directories to merge"],
    );
    let sh1_spelt_otherwise = sh[0].join("..").join("sh1").join(".");
    refused(
        &merge(&sh1_spelt_otherwise),
        &["one of the directories to merge"],
    );
    inputs_unchanged();
    assert!(!sh[0].join("points.csv").exists());
    assert!(!sh[1].join("points.csv").exists());
}

/// A sweep of 2 points × 2 replications of 12 simulated seconds: the last column of
/// runs.csv (`simulated_seconds`) has two digits, so a row cut in it still parses.
fn sweep_file_12s(dir: &Path) -> PathBuf {
    let p = sweep_file(dir, "s12.sweep.toml", 7);
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("duration = \"4s\"", "duration = \"12s\"");
    std::fs::write(&p, text).unwrap();
    p
}

/// A runs.csv whose final row was cut before its newline — anywhere: in its last field
/// (`…,12` written as `…,1`), right after its last comma, or only the newline missing —
/// is resumed to files byte-identical to an uninterrupted sweep: a row without its
/// newline is not finished, and is run again.
#[test]
fn a_final_row_without_its_newline_is_dropped_on_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let file = sweep_file_12s(tmp.path());
    let full = tmp.path().join("full");
    ok(&sweep_args(&file, &full, &[]));
    let runs = bytes(&full.join("runs.csv"));
    assert_eq!(runs.last(), Some(&b'\n'));
    let row_end = runs.len() - 1;
    let last_comma = runs.iter().rposition(|&b| b == b',').unwrap();
    let mut cuts: Vec<usize> = (0..=4).map(|k| row_end - k).collect();
    cuts.push(last_comma + 1);
    for cut in cuts {
        let dir = tmp.path().join(format!("cut{cut}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("runs.csv"), &runs[..cut]).unwrap();
        std::fs::copy(full.join("sweep.json"), dir.join("sweep.json")).unwrap();
        ok(&sweep_args(&file, &dir, &["--resume"]));
        let tail = String::from_utf8_lossy(&runs[cut.saturating_sub(12)..cut]).into_owned();
        for f in ["runs.csv", "points.csv", "sweep.json"] {
            assert!(
                bytes(&dir.join(f)) == bytes(&full.join(f)),
                "{f} differs after resuming a runs.csv ending in {tail:?}"
            );
        }
    }
}

/// Inputs of a merge that disagree on a run (same point, replication and seed, other
/// results) are bad input: exit 2, naming the run, and nothing is written.
#[test]
fn a_merge_of_conflicting_inputs_is_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let file = sweep_file(tmp.path(), "s.sweep.toml", 7);
    let a = tmp.path().join("a");
    ok(&sweep_args(&file, &a, &[]));
    let b = tmp.path().join("b");
    std::fs::create_dir_all(&b).unwrap();
    std::fs::copy(a.join("sweep.json"), b.join("sweep.json")).unwrap();
    // Point 0 replication 0 with another value in its last column.
    let text = String::from_utf8(bytes(&a.join("runs.csv"))).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let (head, last) = lines[1].rsplit_once(',').unwrap();
    lines[1] = format!("{head},{}", last.parse::<f64>().unwrap() + 1.0);
    std::fs::write(b.join("runs.csv"), lines.join("\n") + "\n").unwrap();
    let out = tmp.path().join("merged");
    refused(
        &["merge".into(), s(&a), s(&b), "--out".into(), s(&out)],
        &["point 0 replication 0 differs between inputs"],
    );
    assert!(!out.join("runs.csv").exists());
}

/// An audit edited a stopped sweep's files before resuming it. A cell that is not a
/// number was taken for a finished run (its point then averaged fewer values than its
/// replication count said): the run is now done again, and the resumed files are those
/// of an uninterrupted sweep. A renamed derived column, or a missing sweep.json (then
/// nothing says the runs come from this sweep file), is refused with exit 2.
#[test]
fn a_resumed_sweep_does_not_trust_edited_files() {
    let tmp = tempfile::tempdir().unwrap();
    let file = sweep_file(tmp.path(), "s.sweep.toml", 7);
    let full = tmp.path().join("full");
    ok(&sweep_args(&file, &full, &[]));
    let text = String::from_utf8(bytes(&full.join("runs.csv"))).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    let col = header.iter().position(|h| *h == "503_rate").unwrap();

    // A cell that is not a number: run again.
    let dir = tmp.path().join("abc");
    std::fs::create_dir_all(&dir).unwrap();
    let mut edited: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let mut cells: Vec<String> = edited[2].split(',').map(str::to_string).collect();
    cells[col] = "abc".into();
    edited[2] = cells.join(",");
    std::fs::write(dir.join("runs.csv"), edited.join("\n") + "\n").unwrap();
    std::fs::copy(full.join("sweep.json"), dir.join("sweep.json")).unwrap();
    ok(&sweep_args(&file, &dir, &["--resume"]));
    for f in ["runs.csv", "points.csv", "sweep.json"] {
        assert!(
            bytes(&dir.join(f)) == bytes(&full.join(f)),
            "{f} differs after resuming a runs.csv with a cell `abc`"
        );
    }

    // A renamed derived column: refused, runs.csv untouched.
    let dir = tmp.path().join("renamed");
    std::fs::create_dir_all(&dir).unwrap();
    let renamed = text.replacen("503_rate", "503_rat", 1);
    std::fs::write(dir.join("runs.csv"), &renamed).unwrap();
    std::fs::copy(full.join("sweep.json"), dir.join("sweep.json")).unwrap();
    refused(
        &sweep_args(&file, &dir, &["--resume"]),
        &["no `503_rate` column", "edited"],
    );
    assert_eq!(bytes(&dir.join("runs.csv")), renamed.as_bytes());

    // No sweep.json: refused.
    let dir = tmp.path().join("nojson");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("runs.csv"), &text).unwrap();
    refused(
        &sweep_args(&file, &dir, &["--resume"]),
        &["sweep.json", "is missing"],
    );
    assert_eq!(bytes(&dir.join("runs.csv")), text.as_bytes());
}

/// Ctrl-C (SIGINT) on a sweep says where its finished runs are and how to go on, exits
/// 130, and the resumed sweep gives the files of an uninterrupted one (audit: it exited
/// without a word).
#[cfg(unix)]
#[test]
fn an_interrupted_sweep_says_how_to_go_on_and_resumes_to_the_same_files() {
    let tmp = tempfile::tempdir().unwrap();
    let file = sweep_file(tmp.path(), "long.sweep.toml", 7);
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("replications = 2", "replications = 8")
        .replace("duration = \"4s\"", "duration = \"2000s\"");
    std::fs::write(&file, text).unwrap();
    let full = tmp.path().join("full");
    ok(&sweep_args(&file, &full, &["--jobs", "1"]));

    let out = tmp.path().join("stopped");
    let child = Command::new(env!("CARGO_BIN_EXE_w3sim"))
        .args(sweep_args(&file, &out, &["--jobs", "1"]))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("w3sim starts");
    let runs = out.join("runs.csv");
    let t0 = std::time::Instant::now();
    while !(runs.exists() && rows(&runs) >= 1) {
        assert!(t0.elapsed().as_secs() < 60, "no run finished in a minute");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // SAFETY: sends a signal to the child this test started.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    if o.status.code() == Some(0) {
        return; // it finished before the signal came: nothing to check
    }
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(
        err.contains("stopped: every finished run is in") && err.contains("--resume"),
        "{err}"
    );
    ok(&sweep_args(&file, &out, &["--jobs", "1", "--resume"]));
    for f in ["runs.csv", "points.csv", "sweep.json"] {
        assert!(bytes(&out.join(f)) == bytes(&full.join(f)), "{f} differs");
    }
}
