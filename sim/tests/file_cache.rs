//! IIS's user-mode file cache (seed 001's `ObjectCacheTTL` and `FileAttributeCheckThreshold`):
//! the shipped experiment's failure and its fix, the exact accounting of reads and checks, the
//! flush on a worker-process exit, and bad input.

mod common;

use common::*;
use w3sim::scenario::load::load_str;

const SEED_VALUES: [&str; 2] = [
    "iis.object_cache_ttl=4294967295s",
    "iis.file_attribute_check_threshold=4294967295s",
];

#[test]
fn the_defaults_send_kernel_cache_misses_to_the_nas_and_the_seeds_values_keep_them_in_memory() {
    let (before, ts_before) = run_series(&load("iis-file-cache-nas.toml", &[]));
    let (after, ts_after) = run_series(&load("iis-file-cache-nas.toml", &SEED_VALUES));
    let (b, a) = (
        before.file_cache.clone().expect("file cache summary"),
        after.file_cache.clone().expect("file cache summary"),
    );
    // Every read of the share is one outgoing call to the NAS, and every miss is one read.
    assert_eq!(before.outgoing.calls, b.misses);
    assert_eq!(after.outgoing.calls, a.misses);
    // Every request reaches the kernel cache, and every miss there the file cache: lookups
    // of both lie between the requests completed and the requests that arrived.
    let lookups = b.hits + b.misses + before.kernel_cache.hits;
    assert!(
        (before.requests.completed..=before.requests.arrived).contains(&lookups),
        "{lookups} lookups: {:?}",
        before.requests
    );
    // Defaults: a file is seldom asked for twice within 30 s, so almost every lookup misses.
    assert!(b.hit_ratio < 0.05, "{b:?}");
    assert!(b.attribute_checks > 1000, "{b:?}");
    assert!(b.expired_ttl > 100_000, "{b:?}");
    // The seed's values: files stay, are never checked, and the NAS gets a third fewer reads.
    assert!(a.hit_ratio > 0.3, "{a:?}");
    assert_eq!((a.attribute_checks, a.expired_ttl), (0, 0), "{a:?}");
    assert!(
        (after.outgoing.calls as f64) < 0.75 * before.outgoing.calls as f64,
        "NAS reads {} → {}",
        before.outgoing.calls,
        after.outgoing.calls
    );
    assert!(
        after.latency_ms.all.mean < 0.6 * before.latency_ms.all.mean,
        "mean latency {} → {} ms",
        before.latency_ms.all.mean,
        after.latency_ms.all.mean
    );
    // The kernel cache is the same in both: the settings only act in user mode.
    assert!((before.kernel_cache.hit_ratio - after.kernel_cache.hit_ratio).abs() < 0.01);
    // The time series: the cache fills and its hit ratio rises over the hour.
    let hits = col(&ts_after, "Web Service Cache\\File Cache Hits %");
    let n = hits.len();
    let early: f64 = hits[..n / 6].iter().sum::<f64>() / (n / 6) as f64;
    let late: f64 = hits[n - n / 6..].iter().sum::<f64>() / (n / 6) as f64;
    assert!(late > early + 10.0, "File Cache Hits % {early} → {late}");
    let cached = col(&ts_after, "Web Service Cache\\Current Files Cached");
    assert_eq!(*cached.last().unwrap() as u64, a.inserted, "{a:?}");
    // With the defaults, files leave 30 s after their last use: a bounded cache.
    let cached = col(&ts_before, "Web Service Cache\\Current Files Cached");
    assert!(cached.iter().all(|&c| c <= b.peak_files_cached as f64));
    assert!(b.peak_files_cached < 10_000, "{b:?}");
}

#[test]
fn each_value_alone_leaves_the_other_cost() {
    // ObjectCacheTTL alone: the files stay, but each is checked on the share every 5 s it is used.
    let ttl = run(&load("iis-file-cache-nas.toml", &SEED_VALUES[..1]))
        .file_cache
        .unwrap();
    assert!(ttl.hit_ratio > 0.3, "{ttl:?}");
    assert!(ttl.attribute_checks > 50_000, "{ttl:?}");
    // FileAttributeCheckThreshold alone: no checks, but files still leave after 30 s.
    let check = run(&load("iis-file-cache-nas.toml", &SEED_VALUES[1..]))
        .file_cache
        .unwrap();
    assert_eq!(check.attribute_checks, 0);
    assert!(check.hit_ratio < 0.05, "{check:?}");
    // With change notifications IIS does not check dates at all.
    let notified = run(&load(
        "iis-file-cache-nas.toml",
        &[
            "iis.object_cache_ttl=4294967295s",
            "iis.do_dir_monitoring_for_unc=true",
        ],
    ))
    .file_cache
    .unwrap();
    assert_eq!(notified.attribute_checks, 0, "{notified:?}");
}

#[test]
fn checks_happen_exactly_at_the_threshold_and_cost_one_round_trip() {
    // One file asked for every second with a fixed 2 ms metadata round trip and a 10 ms read:
    // the first request reads (10 ms), then every 5th request checks (2 ms) and the others hit.
    let text = r#"
duration = "101s"
warmup = "0s"
[load]
rate = "1/s"
arrivals = "constant"
[[classes]]
name = "image"
handler = "sync"
urls = { count = 1, zipf = 0.0, mean_size = "10KB" }
steps = [ { file = "nas" } ]
[[backends]]
name = "nas"
latency = "const(10ms)"
[iis]
nas_round_trip = "const(2ms)"
[kernel_cache]
uri_enable_cache = false
"#;
    let s = run(&load_text(text, &[]));
    let f = s.file_cache.clone().unwrap();
    assert_eq!(f.misses, 1, "{f:?}");
    assert_eq!(f.hits + f.misses, s.requests.completed);
    // Requests at 1, 2, …, 101 s (the last at the end of the run); the first reads the file
    // (cached at 1.01 s), then a hit is due for its check once 5 s have passed since the
    // last one: at 7, 12, …, 97 s.
    assert_eq!(f.attribute_checks, 19, "{f:?}");
    // Each check costs its round trip: against round trips of no time, the requests took
    // 19 × 2 ms longer in all (the rest of their time, the read and the front end, is equal).
    let free = run(&load_text(text, &["iis.nas_round_trip=const(0ms)"]));
    let total_ms = |s: &w3sim::Summary| s.latency_ms.all.mean * s.requests.completed as f64;
    assert!(
        (total_ms(&s) - total_ms(&free) - 19.0 * 2.0).abs() < 0.01,
        "{} ms against {} ms",
        total_ms(&s),
        total_ms(&free)
    );
    // ObjectCacheTTL 0 disables the cache: every request reads the share.
    let off = run(&load_text(text, &["iis.object_cache_ttl=0s"]))
        .file_cache
        .unwrap();
    assert_eq!((off.hits, off.misses, off.inserted), (0, 101, 0), "{off:?}");
    // Files above MaxCachedFileSize are read every time.
    let big = run(&load_text(text, &["iis.max_cached_file_size=1KB"]))
        .file_cache
        .unwrap();
    // (The read of the request at 101 s is still running when the run ends.)
    assert_eq!(
        (big.hits, big.misses, big.too_large),
        (0, 101, 100),
        "{big:?}"
    );
}

#[test]
fn a_worker_process_exit_empties_the_file_cache() {
    let s = run(&load(
        "iis-file-cache-nas.toml",
        &[
            SEED_VALUES[0],
            SEED_VALUES[1],
            "app_pool.periodic_restart=20m",
            "duration=50m",
        ],
    ));
    let f = s.file_cache.unwrap();
    assert_eq!(f.flushes, s.app_pool.recycles_periodic, "{f:?}");
    assert_eq!(f.flushes, 2, "recycles at 20 and 40 min: {f:?}");
    assert!(f.flushed_files > 50_000, "{f:?}");
}

#[test]
fn a_capped_cache_evicts_the_least_recently_used_files() {
    let s = run(&load(
        "iis-file-cache-nas.toml",
        &[SEED_VALUES[0], SEED_VALUES[1], "iis.mem_cache_size=1000"],
    ));
    let f = s.file_cache.unwrap();
    assert!(f.evicted_size > 0, "{f:?}");
    assert!(f.mean_memory_usage_bytes <= (1000 << 20) as f64, "{f:?}");
    assert!(
        f.peak_files_cached < 60_000,
        "1000 MB of files of 30 KB on average: {f:?}"
    );
}

fn error_of(text: &str, overrides: &[&str]) -> String {
    let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    load_str("s.toml", text, &o).unwrap_err().to_string()
}

#[test]
fn bad_file_steps_and_settings_are_named() {
    let no_urls = r#"
[[classes]]
name = "page"
steps = [ { file = "nas" } ]
[[backends]]
name = "nas"
"#;
    let e = error_of(no_urls, &[]);
    assert!(
        e.contains("classes[0].steps[0].file") && e.contains("urls ="),
        "{e}"
    );

    let typo = r#"
[[classes]]
name = "image"
urls = { count = 10, zipf = 0.9, mean_size = "1KB" }
steps = [ { file = "nsa" } ]
[[backends]]
name = "nas"
"#;
    let e = error_of(typo, &[]);
    assert!(
        e.contains("no backend named \"nsa\"") && e.contains("did you mean \"nas\""),
        "{e}"
    );

    let fanout = typo.replace(r#"{ file = "nsa" }"#, r#"{ file = "nas", fanout = 3 }"#);
    let e = error_of(&fanout, &[]);
    assert!(e.contains("`fanout` and `parallel` go with `call`"), "{e}");

    let two = typo.replace(r#"{ file = "nsa" }"#, r#"{ file = "nas", cpu = "1ms" }"#);
    let e = error_of(&two, &[]);
    assert!(
        e.contains("exactly one of `cpu`, `wait`, `alloc`, `call` or `file`"),
        "{e}"
    );

    let ok = typo.replace("nsa", "nas");
    let e = error_of(&ok, &["iis.mem_cache_size=3000"]);
    assert!(
        e.contains("iis.mem_cache_size") && e.contains("2500 MB"),
        "{e}"
    );

    // The settings do nothing without a `file` step, and the threshold nothing with
    // change notifications: both refused with the fix.
    let e = error_of("", &["iis.object_cache_ttl=60s"]);
    assert!(
        e.contains("no class has one") && e.contains("file ="),
        "{e}"
    );
    let e = error_of(
        &ok,
        &[
            "iis.do_dir_monitoring_for_unc=true",
            "iis.file_attribute_check_threshold=1s",
        ],
    );
    assert!(e.contains("do_dir_monitoring_for_unc = true"), "{e}");
    assert!(load_str("s.toml", &ok, &["iis.object_cache_ttl=60s".into()]).is_ok());
}
