//! ASP.NET session state (DOMAIN §4.5): one session's requests take turns on its
//! exclusive lock, a request that finds it taken learns it is free only at its next
//! 500 ms poll, read-only pages wait only for writers, `RequestQueueLimitPerSession`
//! refuses the requests past it and a lock older than `executionTimeout` is broken.

mod common;

use common::*;

/// A sync page of 100 ms of waiting that writes the session, every request in one
/// session; `load` is the `[load]` table's body.
fn one_session(load: &str) -> String {
    format!(
        r#"
name = "one-session"
duration = "10s"
[load]
{load}
[session_state]
sessions = 1
[[classes]]
name = "page"
handler = "sync"
steps = [ {{ wait = "100ms" }} ]
enable_session_state = true
"#
    )
}

#[test]
fn the_second_request_of_a_session_waits_for_the_poll_after_the_first_is_done() {
    // Two requests at 1 s: the first holds the lock until 1.1 s; the second gave its
    // thread back and polls at 1.5 s: it ends at 1.6 s, 600 ms after it arrived.
    let text = one_session(
        r#"rate = "0/s"
bursts = [ { at = "1s", count = 2 } ]"#,
    );
    let s = run(&load_text(&text, &[]));
    assert_eq!(s.requests.completed, 2);
    let l = &s.latency_ms.all;
    assert!((l.p50 - 100.0).abs() < 1.0, "the first: {l:?}");
    assert!((l.max - 600.0).abs() < 1.0, "the second: {l:?}");
    let ss = s.session_state.as_ref().expect("a session_state section");
    assert_eq!(ss.lock_waits, 1);
    assert_eq!(ss.polls, 1);
    assert!((ss.max_wait_ms - 500.0).abs() < 0.1, "{ss:?}");

    // A shorter poll interval shortens the wait, but not below LOCKED_ITEM_POLLING_DELTA:
    // a callback within 250 ms of the last completed poll does nothing. With 30 ms the
    // polls that try the lock are at 1.03 s (locked) and 1.30 s (free): it ends at 1.4 s.
    let s = run(&load_text(
        &text,
        &["session_state.session_state_locked_item_poll_interval=30ms"],
    ));
    assert!(
        (s.latency_ms.all.max - 400.0).abs() < 1.0,
        "{:?}",
        s.latency_ms.all
    );
    assert_eq!(s.session_state.unwrap().polls, 2);
    let s = run(&load_text(
        &text,
        &["session_state.session_state_locked_item_poll_interval=300ms"],
    ));
    assert!((s.latency_ms.all.max - 400.0).abs() < 1.0, "polls at 1.3 s");

    // Read-only pages take no lock: both end after 100 ms.
    let s = run(&load_text(
        &text,
        &[r#"classes[0].enable_session_state="read_only""#],
    ));
    assert!((s.latency_ms.all.max - 100.0).abs() < 1.0);
    assert_eq!(s.session_state.unwrap().lock_waits, 0);

    // So do pages without session state, and their summary has no section for it.
    let s = run(&load_text(
        &text,
        &["classes[0].enable_session_state=false"],
    ));
    assert!((s.latency_ms.all.max - 100.0).abs() < 1.0);
    assert!(s.session_state.is_none());
}

#[test]
fn a_reader_waits_for_a_writer_of_its_session_only() {
    let text = r#"
name = "readers"
duration = "10s"
[load]
rate = "0/s"
bursts = [ { at = "1s", count = 1, class = "write" }, { at = "1.01s", count = 3, class = "read" } ]
[session_state]
sessions = 1
[[classes]]
name = "write"
handler = "sync"
steps = [ { wait = "100ms" } ]
enable_session_state = true
[[classes]]
name = "read"
handler = "sync"
steps = [ { wait = "100ms" } ]
enable_session_state = "read_only"
"#;
    let s = run(&load_text(text, &[]));
    let read = &s.latency_ms.classes["read"];
    // The three readers wait for the writer (polls at 1.51 s), then run together.
    assert_eq!(read.count, 3);
    assert!((read.p50 - 600.0).abs() < 1.0, "{read:?}");
    assert!((read.max - 600.0).abs() < 1.0, "{read:?}");
    assert_eq!(s.session_state.unwrap().lock_waits, 3);
}

#[test]
fn sessions_are_independent() {
    // 20 sessions, 40 requests at once: at most 20 run at a time, none waits on a
    // session another holds unless it drew the same one.
    let text = one_session(
        r#"rate = "0/s"
bursts = [ { at = "1s", count = 40 } ]"#,
    );
    let one = run(&load_text(&text, &[]));
    let many = run(&load_text(&text, &["session_state.sessions=20"]));
    let all = run(&load_text(&text, &["session_state.sessions=100000"]));
    let w = |s: &w3sim::Summary| s.session_state.as_ref().unwrap().lock_waits;
    assert_eq!(w(&one), 39, "one session: all but the first wait");
    assert!(w(&many) >= 20 && w(&many) < 39, "{}", w(&many));
    assert!(w(&all) <= 1, "{}", w(&all));
    // With one session they take turns: the last ends several seconds later.
    assert!(one.latency_ms.all.max > 4_000.0, "{:?}", one.latency_ms.all);
    assert!(all.latency_ms.all.max < 700.0, "{:?}", all.latency_ms.all);
}

#[test]
fn the_per_session_queue_limit_refuses_requests_past_it_and_its_default_never_does() {
    // An F5 storm: 15 requests a second on one session that can serve at most 10.
    let text = one_session(r#"rate = "15/s""#);
    let storm = load_text(&text, &["duration=60s"]);
    let s = run(&storm);
    assert_eq!(outcome(&s, "500_session_queue_limit"), 0);
    let ss = s.session_state.as_ref().unwrap();
    assert!(
        ss.peak_waiting_per_session > 100,
        "no limit: the pollers pile up ({ss:?})"
    );
    // An app targeting .NET 4.7+: the 51st poller is refused with a 500.
    let s = run(&load_text(
        &text,
        &[
            "duration=60s",
            "session_state.request_queue_limit_per_session=50",
        ],
    ));
    assert!(
        outcome(&s, "500_session_queue_limit") > 100,
        "{:?}",
        s.outcomes
    );
    let ss = s.session_state.as_ref().unwrap();
    assert_eq!(ss.peak_waiting_per_session, 50);
    assert_eq!(
        ss.queue_limit_rejections,
        outcome(&s, "500_session_queue_limit")
    );
    assert_eq!(
        s.first_limit.as_ref().map(|l| l.limit.as_str()),
        Some("session_state.request_queue_limit_per_session")
    );
    assert!(s.gauges["aspnet.Requests Waiting For Session Lock"].peak <= 50);
}

#[test]
fn a_lock_older_than_execution_timeout_is_broken_by_the_next_try_and_pollers_never_time_out() {
    // The holder locks at 1 s for 10 s; executionTimeout is 3 s. A request at 4.5 s finds
    // the lock 3.5 s old: its first try breaks it (and still polls), its poll at 5.0 s
    // gets it: it ends at 5.1 s, 600 ms after it arrived.
    let text = r#"
name = "stale"
duration = "20s"
[load]
rate = "0/s"
bursts = [ { at = "1s", count = 1, class = "long" }, { at = "4.5s", count = 1, class = "short" } ]
[aspnet]
execution_timeout = "3s"
[session_state]
sessions = 1
[[classes]]
name = "long"
handler = "sync"
steps = [ { wait = "10s" } ]
enable_session_state = true
[[classes]]
name = "short"
handler = "sync"
steps = [ { wait = "100ms" } ]
enable_session_state = true
"#;
    let s = run(&load_text(text, &[]));
    let short = &s.latency_ms.classes["short"];
    assert!((short.max - 600.0).abs() < 1.0, "{short:?}");
    let ss = s.session_state.as_ref().unwrap();
    assert_eq!(ss.stale_locks_released, 1);
    assert_eq!(s.requests.failed, 0, "{:?}", s.outcomes);
    // A request that polls longer than executionTimeout is not ended for it (the module
    // has no such timeout while a request polls): with a 1 s timeout and a lock younger
    // than that at each try, an F5 storm's pollers all end OK, however long they wait.
    let storm = one_session(r#"rate = "15/s""#);
    let s = run(&load_text(
        &storm,
        &["duration=40s", "aspnet.execution_timeout=1s"],
    ));
    assert_eq!(s.requests.failed, 0, "{:?}", s.outcomes);
    assert!(s.latency_ms.all.max > 5_000.0);
}

/// A farm of one reproduces the single server with session state too: a farm's
/// closed-loop users keep their sessions, and the balancer's probes (no session cookie)
/// never wait for a lock.
#[test]
fn a_farm_keeps_its_users_sessions_and_its_probes_never_wait() {
    let text = r#"
name = "closed-sessions"
duration = "30s"
[load]
mode = "closed"
users = 40
think_time = "exp(100ms)"
[session_state]
sessions = 10
[[classes]]
name = "page"
handler = "sync"
steps = [ { cpu = "1ms" }, { wait = "exp(100ms)" } ]
enable_session_state = true
"#;
    let single = run(&load_text(text, &[]));
    let farm = run(&load_text(
        text,
        &[
            "farm.servers=[{ name = \"web\", count = 1 }]",
            "load_balancer.probe_interval=0s",
        ],
    ));
    let f = farm.farm.as_ref().unwrap();
    assert_eq!(
        f.servers[0].summary.requests.arrived, single.requests.arrived,
        "a farm of one serves the same requests"
    );
    assert_eq!(
        f.servers[0].summary.session_state, single.session_state,
        "and the same users share the same sessions"
    );
    // user u → session u mod 10: at most 4 users on a session, so at most 3 poll it.
    assert!(
        single
            .session_state
            .as_ref()
            .unwrap()
            .peak_waiting_per_session
            <= 3
    );

    // Probes of the session page under a heavy session load: they never wait for a lock.
    let probed = run(&load_text(
        &text.replace("users = 40", "users = 200"),
        &[
            "farm.servers=[{ name = \"web\", count = 2 }]",
            "load_balancer.probe_class=\"page\"",
            "load_balancer.probe_interval=1s",
        ],
    ));
    // The users wait seconds for their sessions (20 users on each session of a server);
    // a probe, taking no lock, answers within its 2 s timeout.
    let users = &probed.latency_ms.all;
    assert!(users.p99 > 2_000.0, "{users:?}");
    let lb = probed
        .farm
        .as_ref()
        .unwrap()
        .load_balancer
        .as_ref()
        .unwrap();
    assert_eq!((lb.probes_failed, lb.removals), (0, 0), "{lb:?}");
}

#[test]
fn polls_need_worker_threads() {
    // Two sync pages that block their threads for 2 s fill a pool of 2 threads (no
    // injection: max = min = 2) at 1.0 s. A session request that found its session
    // locked polls at 1.5 s, but the poll's callback waits in the pool's queue until a
    // thread frees at 3.0 s.
    let text = r#"
name = "starved-polls"
duration = "10s"
[load]
rate = "0/s"
bursts = [ { at = "0.9s", count = 1, class = "page" }, { at = "0.95s", count = 1, class = "page" },
           { at = "1s", count = 2, class = "blocker" } ]
[session_state]
sessions = 1
[thread_pool]
min_worker_threads = 2
max_worker_threads = 2
[[classes]]
name = "page"
handler = "async"
steps = [ { wait = "50ms" } ]
enable_session_state = true
[[classes]]
name = "blocker"
handler = "sync"
steps = [ { wait = "2s" } ]
"#;
    let s = run(&load_text(text, &[]));
    let page = &s.latency_ms.classes["page"];
    assert_eq!(page.count, 2);
    // The second page (0.95 s) polls at 1.45 s; its callback runs when a blocker frees
    // a thread at 3.0 s, and its 50 ms wait ends at 3.05 s: 2.1 s after it arrived.
    assert!(
        page.max > 2_000.0 && page.max < 2_200.0,
        "the poll waited for a thread: {page:?}"
    );
}

#[test]
fn the_shipped_experiment_shows_the_lock_and_its_fix() {
    let s = run(&load("session-lock-ajax.toml", &[]));
    let ajax = s.latency_ms.classes["ajax"].clone();
    let ss = s.session_state.clone().unwrap();
    assert!(ss.lock_waits > 5_000, "{ss:?}");
    assert_eq!(s.measured.failed, 0);
    assert!(
        s.cpu_utilization_pct < 10.0,
        "slow at low CPU: {}",
        s.cpu_utilization_pct
    );
    let ro = run(&load(
        "session-lock-ajax.toml",
        &[r#"classes[1].enable_session_state="read_only""#],
    ));
    let ajax_ro = &ro.latency_ms.classes["ajax"];
    let off = run(&load(
        "session-lock-ajax.toml",
        &["classes[1].enable_session_state=false"],
    ));
    let ajax_off = &off.latency_ms.classes["ajax"];
    assert!(
        ajax.mean > 2.0 * ajax_ro.mean,
        "read-only halves it at least: {} vs {}",
        ajax.mean,
        ajax_ro.mean
    );
    assert!(ajax_ro.mean > ajax_off.mean, "readers still wait for pages");
    assert!(
        (ajax_off.mean - 82.0).abs() < 5.0,
        "2 ms CPU + 80 ms: {}",
        ajax_off.mean
    );
    assert!(ajax.p99 > 1_500.0, "{ajax:?}");
}

#[test]
fn check_describes_the_session_state() {
    let p = experiment("session-lock-ajax.toml");
    let out = w3sim_ok(["check", p.to_str().unwrap()]);
    assert!(
        out.contains("session state (InProc): page (true), ajax (true) use the session, 100 sessions; a locked session is polled every 500ms"),
        "{out}"
    );
    assert!(
        out.contains("any number of requests may poll one session"),
        "{out}"
    );
    let out = w3sim_ok([
        "check",
        p.to_str().unwrap(),
        "--set",
        "session_state.request_queue_limit_per_session=50",
    ]);
    assert!(
        out.contains("50 requests may poll one session (the next fails with HTTP 500)"),
        "{out}"
    );
}
