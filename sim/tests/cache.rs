//! The HTTP.SYS kernel response cache and the application-pool lifecycle (issue 7).

mod common;

use common::*;
use w3sim::scenario::load::load_str;
use w3sim_models::urls::UrlCatalogue;

fn cached_site(extra: &str) -> String {
    format!(
        r#"
duration = "1200s"
warmup = "0s"
sample_interval = "10s"
[load]
rate = "100/s"
[[classes]]
name = "image"
handler = "sync"
cacheable = true
urls = {{ count = 2000, zipf = 0.9, mean_size = "10KB" }}
steps = [ {{ cpu = "1ms" }} ]
[cpu]
logical_processors = 4
{extra}
"#
    )
}

/// Renewal-reward hit probability of one URL with Poisson rate `lambda` (per s) under
/// "cached after 2 responses within `w` s, kept `ttl` s", with no scavenger (the same
/// calculation as models/tests/kernel_cache.rs).
fn hit_probability(lambda: f64, w: f64, ttl: f64) -> f64 {
    let p = -(-lambda * w).exp_m1();
    if p == 0.0 {
        return 0.0;
    }
    let hits = lambda * ttl;
    hits / (hits + 1.0 / p + 1.0)
}

fn sum_after(ts: &w3sim::output::MemorySink, name: &str, from: f64) -> f64 {
    let t = col(ts, "time_s");
    col(ts, name)
        .iter()
        .zip(&t)
        .filter(|(_, t)| **t > from)
        .map(|(v, _)| v)
        .sum()
}

#[test]
fn a_cache_hit_never_reaches_the_worker_process() {
    let scn = load_str("c.toml", &cached_site(""), &[]).unwrap();
    let (s, ts) = run_series(&scn);
    assert!(s.kernel_cache.hits > 10_000, "{:?}", s.kernel_cache);
    // Every miss is one work item on a worker thread; no hit is.
    let items = *col(&ts, "w3sim\\ThreadPool Completed Work Items")
        .last()
        .unwrap() as u64;
    let in_flight = s.requests.in_flight;
    assert!(items <= s.kernel_cache.misses && s.kernel_cache.misses - items <= in_flight + 5);
    assert_eq!(s.requests.completed, s.kernel_cache.hits + items);
}

#[test]
fn zipf_hit_ratio_matches_the_renewal_calculation() {
    // TTL 900 s, scavenger off: the steady-state hit ratio of the catalogue.
    let text =
        cached_site("[kernel_cache]\ntime_to_live = \"900s\"\nuri_scavenger_period = \"0s\"\n")
            .replace("duration = \"1200s\"", "duration = \"7200s\"");
    let scn = load_str("c.toml", &text, &[]).unwrap();
    let cat = UrlCatalogue::new(2000, 0.9);
    let expect: f64 = (0..2000)
        .map(|k| cat.probability(k) * hit_probability(100.0 * cat.probability(k), 10.0, 900.0))
        .sum();
    let (s, ts) = run_series(&scn);
    let hits = sum_after(&ts, "HTTP Service Request Queues\\CacheHitRate", 1800.0);
    let all = sum_after(&ts, "w3sim\\Outcome ok/sec", 1800.0);
    let got = hits / all;
    println!("hit ratio: w3sim {got:.4}, renewal calculation {expect:.4}");
    assert!((got - expect).abs() < 0.01, "w3sim {got:.4} vs {expect:.4}");
    assert!(
        s.kernel_cache.expired_ttl > 0,
        "entries expire at their TTL"
    );
    assert_eq!(s.kernel_cache.scavenged, 0);
}

#[test]
fn a_recycle_flushes_the_cache_and_the_hit_ratio_recovers() {
    let text = cached_site("[app_pool]\nrecycle_at = [\"600s\"]\n")
        .replace("sample_interval = \"10s\"", "sample_interval = \"1s\"");
    let scn = load_str("c.toml", &text, &[]).unwrap();
    let (s, ts) = run_series(&scn);
    assert_eq!(s.app_pool.recycles_scheduled, 1);
    assert_eq!(s.kernel_cache.flushes_recycle, 1);
    assert!(
        s.kernel_cache.flushed_by_recycle > 100,
        "{:?}",
        s.kernel_cache
    );
    let t = col(&ts, "time_s");
    let hit = col(&ts, "Web Service Cache\\Kernel: URI Cache Hits %");
    let at = |x: f64| hit[t.iter().position(|&v| v >= x).unwrap()];
    let before = (580..600).map(|x| at(x as f64)).sum::<f64>() / 20.0;
    assert!(before > 50.0, "warm cache before the recycle: {before}%");
    // The old process exits once the new one is ready (5 s cold start, overlapped).
    let low = (600..620)
        .map(|x| at(x as f64))
        .fold(f64::INFINITY, f64::min);
    assert!(
        low < before / 2.0,
        "the flush collapses the hit ratio: {low}% vs {before}%"
    );
    assert!(
        at(1100.0) > 0.9 * before,
        "and it recovers: {}% vs {before}%",
        at(1100.0)
    );
    // The scavenger evicts entries of the Zipf tail that nobody hits again.
    assert!(s.kernel_cache.scavenged > 0);
    assert!(
        s.marked_events
            .iter()
            .any(|e| e.kind == "process_exit" && e.detail.contains("ScheduledRecycle"))
    );
}

#[test]
fn rapid_fail_protection_stops_the_pool_with_503_app_offline() {
    let five = "[app_pool]\ncold_start = \"1s\"\ncrash_at = [\"100s\", \"150s\", \"200s\", \"250s\", \"300s\"]\n";
    let (s, ts) = run_series(&load_str("c.toml", &cached_site(five), &[]).unwrap());
    assert_eq!(s.app_pool.crashes, 5);
    assert_eq!(s.app_pool.rapid_fail_trips, 1);
    assert!(s.outcomes["503_app_offline"] > 1000);
    // After the fifth crash every request that misses the cache gets 503 AppOffline.
    let t = col(&ts, "time_s");
    let ok = col(&ts, "ASP.NET Applications\\Requests/Sec");
    for i in 0..t.len() {
        if t[i] > 310.0 {
            assert_eq!(
                ok[i], 0.0,
                "the worker process served requests at {} s",
                t[i]
            );
        }
    }
    let four =
        "[app_pool]\ncold_start = \"1s\"\ncrash_at = [\"100s\", \"150s\", \"200s\", \"250s\"]\n";
    let (s4, _) = run_series(&load_str("c.toml", &cached_site(four), &[]).unwrap());
    assert_eq!(s4.app_pool.rapid_fail_trips, 0);
    assert_eq!(s4.outcomes["503_app_offline"], 0);
    // failure/@loadBalancerCapabilities = TcpLevel: the same refusals, as closed connections.
    let tcp = format!("{five}load_balancer_capabilities = \"tcp_level\"\n");
    let (t, _) = run_series(&load_str("c.toml", &cached_site(&tcp), &[]).unwrap());
    assert_eq!(t.outcomes["503_app_offline"], 0);
    assert_eq!(
        t.outcomes["connection_reset_app_offline"],
        s.outcomes["503_app_offline"]
    );
    assert_eq!(t.outcomes["ok"], s.outcomes["ok"]);
}

/// With `loadBalancerCapabilities = TcpLevel` HTTP.SYS closes the connection where it would
/// answer 503 QueueFull: the same requests are refused at the same moments, the limit
/// named is still `queueLength`, and no 503 is left.
#[test]
fn tcp_level_closes_the_connection_instead_of_503_queue_full() {
    let http = run(&load("queue-full-burst.toml", &[]));
    let tcp = run(&load(
        "queue-full-burst.toml",
        &["app_pool.load_balancer_capabilities=tcp_level"],
    ));
    check_conservation(&tcp);
    let refused = http.outcomes["503_queue_full"];
    assert!(refused > 1000, "{refused}");
    assert_eq!(tcp.outcomes["503_queue_full"], 0);
    assert_eq!(tcp.outcomes["connection_reset_queue_full"], refused);
    assert_eq!(tcp.outcomes["ok"], http.outcomes["ok"]);
    let first = tcp.first_limit.as_ref().expect("a limit is reached");
    assert_eq!(first.limit, "http_sys.queue_length");
    assert!(first.detail.contains("TcpLevel"), "{}", first.detail);
    assert!(
        tcp.incidents
            .iter()
            .any(|i| i.kind == "http_sys_queue_full"),
        "{:?}",
        tcp.incidents
    );
}

#[test]
fn an_idle_timeout_exits_the_process_and_the_next_request_waits_for_a_cold_start() {
    let text = cached_site("[app_pool]\nidle_timeout = \"60s\"\ncold_start = \"5s\"\n").replace(
        "rate = \"100/s\"",
        "schedule = [ { at = \"0s\", rate = \"100/s\" }, { at = \"200s\", rate = \"0/s\" }, { at = \"400s\", rate = \"100/s\" } ]",
    );
    let (s, _) = run_series(&load_str("c.toml", &text, &[]).unwrap());
    assert_eq!(s.app_pool.recycles_idle_timeout, 1, "{:?}", s.app_pool);
    assert_eq!(s.kernel_cache.flushes_idle_timeout, 1);
    // The first misses after the quiet period wait ~5 s for the new process.
    assert!(
        s.latency_ms.all.max > 4900.0 && s.latency_ms.all.max < 5500.0,
        "{}",
        s.latency_ms.all.max
    );
    assert_eq!(s.app_pool.starts, 2);
}

/// Hit ratio over (t0, t1]: kernel-cache hits over all answered requests.
fn hit_ratio(ts: &w3sim::output::MemorySink, t0: f64, t1: f64) -> f64 {
    let t = col(ts, "time_s");
    let hits = col(ts, "HTTP Service Request Queues\\CacheHitRate");
    let ok = col(ts, "w3sim\\Outcome ok/sec");
    let (mut h, mut a) = (0.0, 0.0);
    for i in 0..t.len() {
        if t[i] > t0 && t[i] <= t1 {
            h += hits[i];
            a += ok[i];
        }
    }
    h / a
}

#[test]
fn seed_001_cache_collapses_after_quiet_periods_and_both_fixes_remove_them() {
    let run = |o: &[&str]| run_series(&load("httpsys-cache-flush.toml", o));
    // Busy periods start at 0, 65 and 130 minutes; quiet periods last 25 minutes.
    let after_quiet = |ts: &w3sim::output::MemorySink| {
        (hit_ratio(ts, 3900.0, 3960.0) + hit_ratio(ts, 7800.0, 7860.0)) / 2.0
    };
    let (base, bts) = run(&[]);
    let steady = hit_ratio(&bts, 1800.0, 2400.0);
    assert!(
        after_quiet(&bts) < 0.7 * steady,
        "collapse: {} vs steady {steady}",
        after_quiet(&bts)
    );
    assert!(
        base.latency_ms.all.p99 > 1000.0,
        "the NAS takes the misses: p99 {}",
        base.latency_ms.all.p99
    );
    assert_eq!(base.app_pool.recycles_idle_timeout, 2);
    assert!(base.kernel_cache.expired_ttl > 0);
    // Each fix alone leaves the other cause.
    let (_, idle_off) = run(&["app_pool.idle_timeout=0s"]);
    assert!(
        after_quiet(&idle_off) < 0.7 * steady,
        "the TTL still empties the cache"
    );
    let (no_ttl, ttl_off) = run(&["kernel_cache.time_to_live=0s"]);
    assert!(
        after_quiet(&ttl_off) < 0.7 * hit_ratio(&ttl_off, 1800.0, 2400.0),
        "idle-timeout flushes remain"
    );
    assert!(no_ttl.kernel_cache.flushed_by_recycle > 1000);
    // Both (the seed's final state): the cache stays warm.
    let (fixed, fts) = run_series(&load("httpsys-cache-flush-fixed.toml", &[]));
    let steady_fixed = hit_ratio(&fts, 1800.0, 2400.0);
    assert!(
        after_quiet(&fts) > 0.9 * steady_fixed,
        "{} vs {steady_fixed}",
        after_quiet(&fts)
    );
    assert!(
        fixed.latency_ms.all.p99 < 400.0,
        "p99 {}",
        fixed.latency_ms.all.p99
    );
    assert_eq!(
        fixed.kernel_cache.expired_ttl + fixed.kernel_cache.flushed_by_recycle,
        0
    );
}

#[test]
fn file_change_notifications_on_the_nas_block_config_readers_and_the_tunings_remove_it() {
    // Seed 001 before its tuning: IIS watches the UNC share, each notification walks 500
    // directories (2 ms each) holding the config cache's lock, and requests that miss the
    // kernel cache block on the read lock meanwhile.
    let before = ["duration=\"30m\"", "iis.do_dir_monitoring_for_unc=true"];
    let (s, ts) = run_series(&load("httpsys-cache-flush.toml", &before));
    let blocked = col(&ts, "w3sim\\Config Cache Readers Blocked");
    let peak = blocked.iter().cloned().fold(0.0, f64::max);
    assert!(
        peak > 20.0,
        "requests pile up behind the writer: peak {peak}"
    );
    assert!(
        s.latency_ms.all.max > 900.0,
        "a 1 s hold delays them: max {}",
        s.latency_ms.all.max
    );
    // allowSubDirConfig = false: one directory per notification, holds of 2 ms.
    let sub = [
        "duration=\"30m\"",
        "iis.do_dir_monitoring_for_unc=true",
        "iis.allow_sub_dir_config=false",
    ];
    let (_, ts2) = run_series(&load("httpsys-cache-flush.toml", &sub));
    let peak2 = col(&ts2, "w3sim\\Config Cache Readers Blocked")
        .iter()
        .cloned()
        .fold(0.0, f64::max);
    assert!(
        peak2 < peak / 5.0,
        "allowSubDirConfig = false: peak {peak2}"
    );
    // DoDirMonitoringForUNC = 0 (and FCNMode = 1): no notifications, nobody blocks.
    let off = ["duration=\"30m\"", "iis.fcn_mode=1"];
    let (_, ts3) = run_series(&load("httpsys-cache-flush.toml", &off));
    assert!(
        col(&ts3, "w3sim\\Config Cache Readers Blocked")
            .iter()
            .all(|&v| v == 0.0)
    );
}
