//! ASP.NET's `executionTimeout` (`RequestTimeoutManager`): a request running synchronously
//! past it is aborted at the manager's next 15 s tick — by a thread-pool callback, so a
//! starved pool delays it — and ends with HTTP 500 "Request timed out"; async requests
//! and `<compilation debug="true">` are never aborted; the clock restarts when a request
//! gets its session lock; a request aborted in an outgoing call leaves the call running.

mod common;

use common::*;

/// Ten requests at 1 s, each blocked for 300 s in a handler of kind `handler`.
fn hung(handler: &str, step: &str) -> String {
    format!(
        r#"
name = "hung"
duration = "400s"
[load]
rate = "0/s"
bursts = [ {{ at = "1s", count = 10 }} ]
[[backends]]
name = "db"
latency = "const(300s)"
[[classes]]
name = "report"
handler = "{handler}"
steps = [ {{ cpu = "1ms" }}, {step}, {{ cpu = "1ms" }} ]
"#
    )
}

const WAIT: &str = r#"{ wait = "const(300s)" }"#;

#[test]
fn a_blocked_sync_request_is_aborted_at_the_first_tick_past_execution_timeout() {
    let scn = load_text(&hung("sync", WAIT), &[]);
    let (s, sink) = run_series(&scn);
    check_conservation(&s);
    assert_eq!(outcome(&s, "500_request_timed_out"), 10);
    assert_eq!(s.requests.completed, 0);
    let t = s
        .request_timeout
        .as_ref()
        .expect("a request_timeout section");
    assert_eq!(t.requests_timed_out, 10);
    // Queued at the 105 s tick (the requests are past their timeout before the next one)
    // it finds none; the one queued at 120 s aborts them.
    assert_eq!(t.callbacks, 2);
    // Started at 1 s: 119 s > 110 s at the 120 s tick (not at 105 s: 104 s), and the
    // callback gets a free thread at once.
    let first = t.first_timed_out_s.expect("aborted");
    assert!((120.0..120.01).contains(&first), "{first}");
    let executing = "ASP.NET Applications\\Requests Executing";
    assert_eq!(at(&sink, executing, 119.0), 10.0);
    assert_eq!(at(&sink, executing, 121.0), 0.0);
    assert_eq!(
        s.first_limit.as_ref().map(|l| l.limit.as_str()),
        Some("aspnet.execution_timeout")
    );

    // executionTimeout = 30 s: 29 s at the 30 s tick is not past it, 44 s at 45 s is.
    let s = run(&load_text(
        &hung("sync", WAIT),
        &["aspnet.execution_timeout=30s"],
    ));
    let first = s.request_timeout.unwrap().first_timed_out_s.unwrap();
    assert!((45.0..45.01).contains(&first), "{first}");

    // debug="true": nothing is aborted; the requests end by themselves after 300 s.
    let s = run(&load_text(
        &hung("sync", WAIT),
        &["aspnet.compilation_debug=true"],
    ));
    assert_eq!(outcome(&s, "500_request_timed_out"), 0);
    assert_eq!(s.requests.completed, 10);
    assert!(s.request_timeout.is_none());
    assert!(s.latency_ms.all.p50 > 300_000.0, "{:?}", s.latency_ms.all);
}

#[test]
fn async_requests_are_never_aborted() {
    let s = run(&load_text(&hung("async", WAIT), &[]));
    assert_eq!(outcome(&s, "500_request_timed_out"), 0);
    assert_eq!(s.requests.completed, 10);
    // No class can be aborted: the manager does not run.
    assert!(s.request_timeout.is_none());
}

#[test]
fn a_request_aborted_in_an_outgoing_call_leaves_the_call_running() {
    // Blocked in .Result on a 300 s call (its own timeout 400 s): the thread is aborted at
    // 120 s, the call goes on and is answered at 301 s; its answer is dropped.
    let call = r#"{ call = "db", timeout = "400s" }"#;
    for handler in ["sync", "sync_over_async"] {
        let (s, sink) = run_series(&load_text(&hung(handler, call), &[]));
        check_conservation(&s);
        assert_eq!(outcome(&s, "500_request_timed_out"), 10, "{handler}");
        assert_eq!(s.requests.in_flight, 0, "{handler}");
        assert_eq!(s.outgoing.ok, 10, "{handler}: the calls end at 301 s");
        assert_eq!(s.peak_request_slots, 10, "{handler}");
        let calls = "w3sim\\Outgoing Calls In Flight";
        assert_eq!(at(&sink, calls, 200.0), 10.0, "{handler}");
        assert_eq!(at(&sink, calls, 302.0), 0.0, "{handler}");
        let executing = "ASP.NET Applications\\Requests Executing";
        assert_eq!(at(&sink, executing, 121.0), 0.0, "{handler}");
    }
}

#[test]
fn a_starved_pool_delays_the_abort_until_a_thread_frees() {
    // Two processors, at most two worker threads, both held by the hung requests: the
    // timer's callback waits in the pool's queue behind them (one more every 15 s) and
    // runs only when they end by themselves at 301 s, too late to abort anything.
    let text = hung("sync", WAIT);
    let starved = [
        "load.bursts=[{at=\"1s\",count=2}]",
        "cpu.logical_processors=2",
        "thread_pool.min_worker_threads=2",
        "thread_pool.max_worker_threads=2",
    ];
    let s = run(&load_text(&text, &starved));
    assert_eq!(outcome(&s, "500_request_timed_out"), 0);
    assert_eq!(s.requests.completed, 2);
    let t = s.request_timeout.unwrap();
    // Ticks at 105, 120, …, 300 s each queued a callback (from 105 s on, the requests are
    // past their timeout before the next tick).
    assert_eq!(t.callbacks, 14);
    assert_eq!(t.requests_timed_out, 0);

    // A third thread (created by the gate thread, not on demand) runs the callback.
    let mut spare = starved;
    spare[3] = "thread_pool.max_worker_threads=3";
    let s = run(&load_text(&text, &spare));
    assert_eq!(outcome(&s, "500_request_timed_out"), 2);
    let first = s.request_timeout.unwrap().first_timed_out_s.unwrap();
    assert!(first > 120.1 && first < 135.0, "{first}");
}

#[test]
fn cpu_work_is_aborted_when_it_ends() {
    // 200 s of CPU on one of 16 processors: marked at the 120 s tick, the abort lands as
    // the step ends.
    let text = hung("sync", WAIT).replace(
        r#"steps = [ { cpu = "1ms" }, { wait = "const(300s)" }, { cpu = "1ms" } ]"#,
        r#"steps = [ { cpu = "200s" }, { wait = "1s" } ]"#,
    );
    let s = run(&load_text(&text, &["load.bursts=[{at=\"1s\",count=1}]"]));
    assert_eq!(outcome(&s, "500_request_timed_out"), 1);
    let first = s.request_timeout.unwrap().first_timed_out_s.unwrap();
    assert!((201.0..201.01).contains(&first), "{first}");
}

#[test]
fn the_clock_restarts_when_a_request_gets_its_session_lock() {
    // One session, executionTimeout 30 s. The first request holds the lock 1 s → 26 s;
    // the second polls, gets it at 26.x s and runs 25 s more. Counted from its first
    // thread (1 s) it would be aborted at the 45 s tick; counted from the grant it ends
    // in time.
    let text = r#"
name = "session-clock"
duration = "80s"
[aspnet]
execution_timeout = "30s"
[load]
rate = "0/s"
bursts = [ { at = "1s", count = 2 } ]
[session_state]
sessions = 1
[[classes]]
name = "page"
handler = "sync"
steps = [ { wait = "25s" } ]
enable_session_state = true
"#;
    let s = run(&load_text(text, &[]));
    assert_eq!(outcome(&s, "500_request_timed_out"), 0);
    assert_eq!(s.requests.completed, 2);
    assert!(s.latency_ms.all.max > 50_000.0, "{:?}", s.latency_ms.all);
}

#[test]
fn settings_that_cannot_act_are_refused() {
    // Every class async and no session: executionTimeout aborts nothing.
    let text = hung("async", WAIT);
    let dir = std::env::temp_dir().join(format!("w3sim-et-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("async.toml");
    std::fs::write(&f, &text).unwrap();
    for set in [
        "aspnet.execution_timeout=60s",
        "aspnet.compilation_debug=true",
    ] {
        let (code, _, err) = w3sim_exit(&["check", f.to_str().unwrap(), "--set", set]);
        assert_eq!(code, Some(2), "{set}: {err}");
        let key = set.split('=').next().unwrap();
        assert!(err.contains(key) && err.contains("async"), "{set}: {err}");
    }
    // With a sync class both count.
    std::fs::write(&f, hung("sync", WAIT)).unwrap();
    for set in [
        "aspnet.execution_timeout=60s",
        "aspnet.compilation_debug=true",
    ] {
        let (code, _, err) = w3sim_exit(&["check", f.to_str().unwrap(), "--set", set]);
        assert_eq!(code, Some(0), "{set}: {err}");
    }
    // debug="true" makes executionTimeout moot when no class uses the session.
    let (code, _, err) = w3sim_exit(&[
        "check",
        f.to_str().unwrap(),
        "--set",
        "aspnet.compilation_debug=true",
        "--set",
        "aspnet.execution_timeout=60s",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("compilation_debug"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_hung_query_experiment_recovers_only_because_of_the_aborts() {
    let rel = "hung-query-execution-timeout.toml";
    // Seconds with 503s after 5:00, and the 503s of the last 100 s.
    let late = |sink: &w3sim::output::MemorySink| -> (usize, f64) {
        let c = col(sink, "w3sim\\Outcome 503_queue_full/sec");
        (
            c[300..].iter().filter(|&&x| x > 0.0).count(),
            c[500..].iter().sum(),
        )
    };
    let (s, sink) = run_series(&load(rel, &[]));
    check_conservation(&s);
    let t = s.request_timeout.as_ref().unwrap();
    assert!(t.requests_timed_out > 200, "{t:?}");
    // The first report (60 s) is past its timeout after 170 s; the callback queued at the
    // 165 s tick waits for a thread in the starved pool and scans when it gets one.
    let first = t.first_timed_out_s.unwrap();
    assert!(first > 170.0 && first < 200.0, "{first}");
    let with_aborts = (outcome(&s, "503_queue_full"), late(&sink));

    // debug="true": nothing ends the reports and the pool never catches up.
    let (s, sink) = run_series(&load(rel, &["aspnet.compilation_debug=true"]));
    assert_eq!(outcome(&s, "500_request_timed_out"), 0);
    let without = (outcome(&s, "503_queue_full"), late(&sink));
    assert!(
        with_aborts.0 * 2 < without.0,
        "{with_aborts:?} vs {without:?}"
    );
    assert!(
        with_aborts.1.0 * 3 < without.1.0,
        "{with_aborts:?} vs {without:?}"
    );
    assert!(without.1.1 > 5_000.0, "{without:?}");

    // Threads on demand: no 503 at all, and the reports are still aborted.
    let s = run(&load(rel, &["thread_pool.min_worker_threads=200"]));
    assert_eq!(outcome(&s, "503_queue_full"), 0);
    assert!(outcome(&s, "500_request_timed_out") > 300);
}

#[test]
fn check_describes_the_timeout_and_each_class_on_its_own_rate() {
    let p = experiment("hung-query-execution-timeout.toml");
    let out = w3sim_ok(["check", p.to_str().unwrap()]);
    // Every class has its own rate or schedule: [load]'s default 1000/s is not offered.
    assert!(!out.contains("arrivals at 1000/s"), "{out}");
    assert!(!out.contains("-0.0"), "{out}");
    // The page's own 300/s × 5 ms of CPU and 25 ms on a thread.
    assert!(
        out.contains("1.5 of 16 processors busy") && out.contains("7.5 worker threads busy"),
        "{out}"
    );
    assert!(
        out.contains("executionTimeout 110s: page, report (synchronous) are aborted"),
        "{out}"
    );
    let out = w3sim_ok([
        "check",
        p.to_str().unwrap(),
        "--set",
        "aspnet.compilation_debug=true",
    ]);
    assert!(out.contains("executionTimeout: not enforced"), "{out}");
}

/// Found by an audit of random scenarios (each crashed or miscounted before its fix).
#[test]
fn regressions_from_the_audit() {
    // An abort gave its thread back, the work that thread ran ended another request on the
    // callback's list, and the callback then aborted a request that was gone (a panic).
    let s = run(&load_text(
        r#"
name = "panic1"
[aspnet]
hosting = "system_web"
execution_timeout = "1s"
[thread_pool]
runtime = "net6"
[http_sys]
queue_length = 100
[[backends]]
name = "b"
latency = "exp(3s)"
[[classes]]
name = "c0"
handler = "sync_over_async"
steps = [ { cpu = "2s" }, { call = "b", timeout = "2s", fanout = 2, parallel = true }, { cpu = "500ms" } ]
"#,
        &[],
    ));
    check_conservation(&s);
    assert!(outcome(&s, "500_request_timed_out") > 0);

    // Session locks broken after a short executionTimeout left thousands of stale poll
    // callbacks, each returning its thread at once: the thread pool's dispatch recursed
    // once per callback and overflowed the stack.
    let s = run(&load_text(
        r#"
name = "so1"
[aspnet]
execution_timeout = "1s"
[thread_pool]
min_worker_threads = 100
[session_state]
sessions = 50
[[classes]]
name = "c0"
steps = [ { cpu = "2s" }, { wait = "exp(20ms)" }, { cpu = "1ms" } ]
enable_session_state = true
"#,
        &[],
    ));
    check_conservation(&s);

    // Requests of a crashed worker process are abandoned (the client lost them at the
    // crash), not timed out by the dead process's timer: the two hung ones were aborted at
    // the 15 s tick, before the crash; the three marked during CPU work end abandoned.
    let s = run(&load_text(
        r#"
name = "k1"
duration = "60s"
[aspnet]
execution_timeout = "1s"
[app_pool]
crash_at = ["20s"]
[[classes]]
name = "slow"
handler = "sync"
schedule = [ { at = "0s", rate = "0/s" }, { at = "10s", rate = "1/s" }, { at = "11s", rate = "0/s" } ]
steps = [ { cpu = "30s" } ]
[[classes]]
name = "hung"
handler = "sync"
schedule = [ { at = "0s", rate = "0/s" }, { at = "10s", rate = "1/s" }, { at = "11s", rate = "0/s" } ]
steps = [ { cpu = "1ms" }, { wait = "const(1h)" } ]
"#,
        &[],
    ));
    check_conservation(&s);
    let timed_out = outcome(&s, "500_request_timed_out");
    assert_eq!(
        timed_out,
        s.request_timeout.as_ref().unwrap().requests_timed_out
    );
    assert_eq!(
        timed_out + outcome(&s, "connection_abandoned_by_app_pool"),
        s.requests.arrived
    );
    assert!(outcome(&s, "connection_abandoned_by_app_pool") > 0);

    // executionTimeout is whole seconds.
    let p = experiment("hung-query-execution-timeout.toml");
    let (code, _, err) = w3sim_exit(&[
        "check",
        p.to_str().unwrap(),
        "--set",
        "aspnet.execution_timeout=1500ms",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("whole number of seconds"), "{err}");
}

#[test]
fn the_timer_starts_with_the_worker_process() {
    // No process at the start: the first request (1 s) starts one, ready 7.5 s later at
    // 8.5 s. Its HttpRuntime's timer ticks at 23.5, 38.5 s…; the requests, resumed at 8.5 s,
    // are 30 s old at 38.5 s, and the callback (a moment later) aborts them. A grid from
    // t = 0 would tick at 30 and 45 s and abort them at 45 s.
    let text = hung("sync", WAIT);
    let s = run(&load_text(
        &text,
        &[
            "app_pool.running_at_start=false",
            "app_pool.cold_start=7500ms",
            "aspnet.execution_timeout=30s",
        ],
    ));
    let first = s.request_timeout.unwrap().first_timed_out_s.unwrap();
    assert!((38.5..38.51).contains(&first), "{first}");
}
