//! The experiments catalogue (`experiments/README.md`) lists every shipped scenario and sweep,
//! lists nothing that does not exist, and every file it lists runs: each scenario for a few
//! simulated seconds through the CLI, each sweep's first run, and the capacity template with one
//! replication.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use w3sim::sweep::run::{RunOptions, run_sweep};
use w3sim::sweep::spec::load_sweep_file;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn experiments() -> PathBuf {
    repo().join("experiments")
}

fn catalogue() -> String {
    let p = experiments().join("README.md");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The `code spans` of a piece of Markdown.
fn code_spans(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

fn is_file_name(span: &str, ext: &str) -> bool {
    span.ends_with(ext)
        && span
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
}

/// Files named in the first column of the catalogue's tables, with the given extension.
fn listed(text: &str, ext: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let line = line.trim();
        if !line.starts_with('|') {
            continue;
        }
        let first = line.split('|').nth(1).unwrap_or("");
        for span in code_spans(first) {
            if is_file_name(span, ext) {
                out.insert(span.to_string());
            }
        }
    }
    out
}

/// Every `.toml` under `experiments/`, relative to it (data folders hold measurements, not scenarios).
fn shipped(dir: &Path, rel: &str, out: &mut BTreeSet<String>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let rel_name = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        if p.is_dir() {
            if name != "data" {
                shipped(&p, &rel_name, out);
            }
        } else if name.ends_with(".toml") {
            out.insert(rel_name);
        }
    }
}

#[test]
fn the_catalogue_lists_every_shipped_file_and_only_those() {
    let text = catalogue();
    let listed = listed(&text, ".toml");
    let mut files = BTreeSet::new();
    shipped(&experiments(), "", &mut files);
    assert!(files.len() >= 10, "found only {files:?}");
    let missing: Vec<_> = files.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "experiments/README.md does not list {missing:?}: add a row (file | question | seed | look at | fix)"
    );
    let stale: Vec<_> = listed.difference(&files).collect();
    assert!(
        stale.is_empty(),
        "experiments/README.md lists files that do not exist: {stale:?}"
    );
    // Every file named anywhere in the catalogue (a fix column, a variant) exists too.
    for span in code_spans(&text) {
        if is_file_name(span, ".toml") {
            assert!(
                experiments().join(span).is_file(),
                "experiments/README.md names `{span}`, which does not exist"
            );
        }
    }
    // The notebooks' table names every notebook, and only those.
    let notebooks = listed_notebooks(&text);
    let mut on_disk = BTreeSet::new();
    for e in std::fs::read_dir(repo().join("notebooks")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".ipynb") {
            on_disk.insert(name);
        }
    }
    assert_eq!(
        notebooks, on_disk,
        "the catalogue's notebook table vs notebooks/"
    );
}

fn listed_notebooks(text: &str) -> BTreeSet<String> {
    listed(text, ".ipynb")
}

fn w3sim() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_w3sim"));
    c.current_dir(repo());
    c
}

fn check(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start w3sim: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_listed_scenario_runs_briefly() {
    let tmp = tempfile::tempdir().unwrap();
    let scenarios: Vec<String> = listed(&catalogue(), ".toml")
        .into_iter()
        .filter(|f| !f.ends_with(".sweep.toml"))
        .collect();
    assert!(scenarios.len() >= 10, "{scenarios:?}");
    for (i, rel) in scenarios.iter().enumerate() {
        let out = tmp.path().join(i.to_string());
        check(
            w3sim()
                .arg("run")
                .arg(experiments().join(rel))
                .args(["--duration", "5s", "--set", "warmup=0s", "-q", "--out"])
                .arg(&out),
            &format!("w3sim run experiments/{rel} --duration 5s"),
        );
        let summary = std::fs::read_to_string(out.join("summary.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&summary).unwrap();
        assert!(
            v["simulated_seconds"].as_f64().unwrap() > 4.9,
            "{rel}: {}",
            v["simulated_seconds"]
        );
    }
}

#[test]
fn every_listed_sweep_loads_and_its_first_run_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let sweeps: Vec<String> = listed(&catalogue(), ".toml")
        .into_iter()
        .filter(|f| f.ends_with(".sweep.toml"))
        .collect();
    assert!(!sweeps.is_empty());
    for (i, rel) in sweeps.iter().enumerate() {
        let sweep = load_sweep_file(&experiments().join(rel))
            .unwrap_or_else(|e| panic!("{rel} does not load:\n{e}"));
        assert!(!sweep.scenarios.is_empty(), "{rel}: no points");
        let out = tmp.path().join(i.to_string());
        let opts = RunOptions {
            jobs: 1,
            quiet: true,
            stop_after: Some(1),
            ..Default::default()
        };
        run_sweep(&sweep, &out, &opts).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let runs = std::fs::read_to_string(out.join("runs.csv")).unwrap();
        assert_eq!(runs.lines().count(), 2, "{rel}: one run expected:\n{runs}");
    }
}

/// Splits a command line the way a POSIX shell would for plain words and '…' / "…" quotes.
fn shell_words(s: &str) -> Vec<String> {
    let (mut words, mut cur, mut quote, mut in_word) = (Vec::new(), String::new(), None, false);
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

#[test]
fn the_capacity_template_runs() {
    let text = catalogue();
    let commands: Vec<&str> = code_spans(&text)
        .into_iter()
        .filter(|s| s.starts_with("w3sim capacity "))
        .collect();
    assert!(
        !commands.is_empty(),
        "the catalogue has a capacity-planning template"
    );
    assert_eq!(
        shell_words(r#"a --slo "p99<5ms" --set 'x=[]'"#),
        ["a", "--slo", "p99<5ms", "--set", "x=[]"]
    );
    let tmp = tempfile::tempdir().unwrap();
    for (i, cmd) in commands.iter().enumerate() {
        let words = shell_words(cmd);
        let out = tmp.path().join(i.to_string());
        check(
            w3sim()
                .args(&words[1..])
                .args(["--replications", "1", "--duration", "20s", "--out"])
                .arg(&out),
            cmd,
        );
        assert!(
            out.join("capacity.json").is_file(),
            "{cmd}: no capacity.json"
        );
    }
}
