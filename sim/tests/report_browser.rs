//! The HTML report in a real headless browser (Chromium): the DOM it builds holds the
//! inline SVG charts and their panel titles, and a screenshot is a real PNG.
//!
//! In CI (the `CI` environment variable set) a missing Chromium fails the test; on a
//! developer machine it prints a notice and passes (`apt-get install -y chromium`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use w3sim::output::{CsvSink, write_atomic, write_summary};

fn find_chromium() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("W3SIM_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ] {
        for dir in std::env::split_paths(&path).chain([PathBuf::from("/usr/bin")]) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Runs Chromium headless with `extra` arguments on `url`; returns stdout. Kills it
/// after 120 s.
fn chromium(bin: &Path, extra: &[&str], url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out_path = profile.path().join("stdout.txt");
    let err_path = profile.path().join("stderr.txt");
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        // Files, not pipes: the DOM is larger than a pipe's buffer and we only read
        // it once Chromium has exited.
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("chromium did not finish in 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = child.wait().unwrap();
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    assert!(
        status.success(),
        "chromium failed ({status}): {}",
        std::fs::read_to_string(&err_path).unwrap_or_default()
    );
    stdout
}

#[test]
fn report_renders_in_headless_chromium() {
    let Some(bin) = find_chromium() else {
        if std::env::var_os("CI").is_some() {
            panic!("CI is set but Chromium is missing: install it (apt-get install -y chromium)");
        }
        eprintln!(
            "notice: Chromium not found; skipping the browser test (apt-get install -y chromium)"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    std::fs::create_dir_all(&dir).unwrap();
    let scn = load("thread-injection-burst.toml", &["duration=\"20s\""]);
    write_atomic(&dir.join("scenario.toml"), &scn.to_toml()).unwrap();
    let mut sink = CsvSink::create(&dir.join("timeseries.csv")).unwrap();
    let s = w3sim::run(&scn, &mut sink).unwrap();
    write_summary(&dir, &s).unwrap();
    std::fs::write(
        dir.join("events.csv"),
        "time_s,kind,detail\n15,app_pool_recycle,DefaultAppPool\n",
    )
    .unwrap();
    let report = w3sim::viz::report::write_report(&dir, None, None).unwrap();
    let url = format!("file://{}", report.canonicalize().unwrap().display());

    let dom = chromium(&bin, &["--dump-dom"], &url);
    assert!(dom.contains("<html"), "no DOM dumped: {dom:.200}");
    let svgs = dom.matches("<svg").count();
    assert_eq!(svgs, 1, "one dashboard SVG in the DOM");
    for s in [
        "Load: offered and completed",
        "HTTP.SYS app-pool queue",
        "Thread-pool queue",
        "Worker threads",
        "Failures by outcome",
        "Headline:",
        "thread pool starved",
        "app_pool_recycle",
        "id=\"scenario\"",
    ] {
        assert!(dom.contains(s), "the browser's DOM lacks {s:?}");
    }
    // Text elements of the chart survive parsing as SVG (not as unknown HTML).
    assert!(dom.matches("<text").count() > 20);

    let shot = tmp.path().join("shot.png");
    chromium(
        &bin,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,2400",
            "--hide-scrollbars",
        ],
        &url,
    );
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(
        png.len() > 20_000,
        "screenshot too small: {} bytes",
        png.len()
    );
}
