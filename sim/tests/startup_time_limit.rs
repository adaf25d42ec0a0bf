//! A worker process slower to start than `startupTimeLimit` is killed and replaced by one
//! that fails the same way (each a failure for rapid-fail protection), while the requests
//! waiting for it in HTTP.SYS are expired after the site's `connectionTimeout`
//! (`Timer_AppPool`), exactly that long after they arrived.

mod common;

use common::*;

const EXP: &str = "slow-warmup-startup-time-limit.toml";

#[test]
fn a_warm_up_past_startup_time_limit_never_serves_and_the_waiting_requests_expire() {
    let (s, sink) = run_series(&load(EXP, &[]));
    check_conservation(&s);
    let p = &s.app_pool;
    assert_eq!((p.starts, p.crashes, p.startup_failures), (7, 1, 5));
    let kills: Vec<f64> = s
        .marked_events
        .iter()
        .filter(|e| e.detail.contains("StartupTimeLimit"))
        .map(|e| e.at_s)
        .collect();
    // Each new process is killed 90 s after it started, and the next starts at once.
    assert_eq!(kills.len(), 5);
    assert!(
        kills.windows(2).all(|w| (w[1] - w[0] - 90.0).abs() < 1e-6),
        "{kills:?}"
    );
    // Nothing is served after the crash; HTTP.SYS stays full and expires what waited 120 s.
    let ok = col(&sink, "w3sim\\Outcome ok/sec");
    assert_eq!(ok[61..].iter().sum::<f64>(), 0.0);
    assert_eq!(
        outcome(&s, "connection_expired_timer_app_pool"),
        p.timer_app_pool
    );
    assert_eq!(p.timer_app_pool, 4000);
    assert!(outcome(&s, "503_queue_full") > 90_000);
    assert_eq!(
        p.rapid_fail_trips, 0,
        "never five failures within five minutes"
    );

    // startupTimeLimit above the warm-up: ready 100 s after the crash, nothing expires.
    let s = run(&load(EXP, &["app_pool.startup_time_limit=3m"]));
    assert_eq!(
        (s.app_pool.startup_failures, s.app_pool.timer_app_pool),
        (0, 0)
    );
    assert!(outcome(&s, "ok") > 100_000);
    assert!(s.latency_ms.all.max > 99_000.0, "{:?}", s.latency_ms.all);

    // A 10-minute rapid-fail interval holds the crash and four startup failures: offline.
    let s = run(&load(EXP, &["app_pool.rapid_fail_protection_interval=10m"]));
    assert_eq!(s.app_pool.rapid_fail_trips, 1);
    assert!(outcome(&s, "503_app_offline") > 30_000);
}

#[test]
fn a_waiting_request_expires_exactly_connection_timeout_after_it_arrived() {
    let text = r#"
name = "cold"
duration = "400s"
[load]
rate = "0/s"
bursts = [ { at = "1s", count = 5 }, { at = "30s", count = 3 } ]
[[classes]]
name = "page"
handler = "sync"
steps = [ { cpu = "1ms" } ]
[app_pool]
running_at_start = false
cold_start = "200s"
startup_time_limit = "5m"
"#;
    let s = run(&load_text(text, &[]));
    check_conservation(&s);
    assert_eq!(outcome(&s, "connection_expired_timer_app_pool"), 8);
    let limit = s
        .limits
        .iter()
        .find(|l| l.limit == "http_sys.connection_timeout")
        .expect("the limit");
    assert!((limit.at_s - 121.0).abs() < 1e-6, "{limit:?}");
    assert_eq!(s.gauges["http_sys.CurrentQueueSize"].peak, 8);

    // connectionTimeout 4 min: the process started by the first arrival is ready at 201 s
    // and serves them all; the first waited 200 s.
    let s = run(&load_text(text, &["http_sys.connection_timeout=4m"]));
    assert_eq!(outcome(&s, "connection_expired_timer_app_pool"), 0);
    assert_eq!(s.requests.completed, 8);
    let max = s.latency_ms.all.max;
    assert!(
        (200_000.0..200_200.0).contains(&max),
        "{:?}",
        s.latency_ms.all
    );
}

#[test]
fn check_warns_of_a_cold_start_past_the_limit() {
    let p = experiment(EXP);
    let out = w3sim_ok(["check", p.to_str().unwrap()]);
    assert!(out.contains("longer than startupTimeLimit"), "{out}");
    let out = w3sim_ok([
        "check",
        p.to_str().unwrap(),
        "--set",
        "app_pool.startup_time_limit=3m",
    ]);
    assert!(!out.contains("longer than startupTimeLimit"), "{out}");
}

#[test]
fn zero_limits_are_refused() {
    let p = experiment(EXP);
    for set in [
        "app_pool.startup_time_limit=0s",
        "http_sys.connection_timeout=500ms",
    ] {
        let (code, _, err) = w3sim_exit(&["check", p.to_str().unwrap(), "--set", set]);
        assert_eq!(code, Some(2), "{set}: {err}");
        assert!(err.contains(set.split('=').next().unwrap()), "{err}");
    }
}

#[test]
fn every_503_app_offline_is_counted_by_the_pool_and_a_farm_sums_its_pools() {
    // Requests still waiting when rapid-fail protection stops the pool get 503 AppOffline
    // too: the pool's counter includes them.
    let s = run(&load(EXP, &["app_pool.rapid_fail_protection_interval=10m"]));
    assert_eq!(outcome(&s, "503_app_offline"), s.app_pool.offline_503);
    // A farm's top-level app_pool is the sum of its servers' pools.
    let farm = experiment("farm-weights.toml");
    let s = run(&load(
        farm.to_str().unwrap(),
        &["app_pool.crash_at=[\"30s\"]"],
    ));
    let servers = &s.farm.as_ref().unwrap().servers;
    let crashes: u64 = servers.iter().map(|x| x.summary.app_pool.crashes).sum();
    assert_eq!(crashes, servers.len() as u64);
    assert_eq!(s.app_pool.crashes, crashes);
    assert_eq!(
        s.app_pool.starts,
        servers
            .iter()
            .map(|x| x.summary.app_pool.starts)
            .sum::<u64>()
    );
}
