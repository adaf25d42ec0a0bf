//! The farm, its load balancer, client retries and the valve's sampling lag (issue 8,
//! seed 003): a server held out moves its share to the others, retries add attempts
//! exactly during the incident, the cascade takes every server down with retries and
//! not without them (or with more servers), and a valve sampled every second lets the
//! queue overshoot its threshold far more than one sampled every 100 ms.

mod common;

use common::*;
use w3sim::Summary;
use w3sim::output::{MemorySink, SampleSink};
use w3sim::scenario::load::load_str;

/// Runs a farm keeping the farm's and every server's time series.
fn run_farm_series(scn: &w3sim::Scenario) -> (Summary, MemorySink, Vec<MemorySink>) {
    let mut farm = MemorySink::default();
    let mut servers: Vec<MemorySink> = scn
        .server_names()
        .iter()
        .map(|_| MemorySink::default())
        .collect();
    let mut refs: Vec<&mut dyn SampleSink> = servers
        .iter_mut()
        .map(|s| s as &mut dyn SampleSink)
        .collect();
    let summary = w3sim::farm::run_farm(scn, &mut farm, &mut refs).expect("farm runs");
    drop(refs);
    (summary, farm, servers)
}

/// Sum of a column over rows with `t0 < time_s <= t1`.
fn window_sum(sink: &MemorySink, name: &str, t0: f64, t1: f64) -> f64 {
    let t = col(sink, "time_s");
    let v = col(sink, name);
    t.iter()
        .zip(&v)
        .filter(|(t, _)| **t > t0 && **t <= t1)
        .map(|(_, v)| v)
        .sum()
}

/// Mean of a column over rows with `t0 < time_s <= t1`.
fn window_mean(sink: &MemorySink, name: &str, t0: f64, t1: f64) -> f64 {
    let rows = col(sink, "time_s")
        .iter()
        .filter(|t| **t > t0 && **t <= t1)
        .count();
    window_sum(sink, name, t0, t1) / rows as f64
}

fn farm(s: &Summary) -> &w3sim::stats::FarmSummary {
    s.farm.as_ref().expect("a farm run")
}

/// Every user request and every attempt is accounted for.
fn check_farm_conservation(s: &Summary) {
    let f = farm(s);
    let r = &s.requests;
    assert_eq!(r.arrived, r.completed + r.failed + r.in_flight, "{r:?}");
    assert_eq!(f.user_requests, r.arrived);
    let routed: u64 = f.servers.iter().map(|x| x.routed).sum();
    let rejected = f.load_balancer.as_ref().map_or(0, |l| l.rejected_all_out);
    assert_eq!(
        f.attempts,
        routed + rejected,
        "attempts = routed + rejected"
    );
    assert_eq!(f.attempts, f.user_requests + f.retries);
    for srv in &f.servers {
        check_conservation(&srv.summary);
    }
}

#[test]
fn a_farm_of_one_draws_and_serves_exactly_what_a_single_server_run_does() {
    let plain = load("queue-full-burst.toml", &[]);
    let (single, single_series) = run_series(&plain);
    // A client timeout longer than the run sends it through the farm driver.
    let one = load("queue-full-burst.toml", &["clients.timeout=1000s"]);
    assert!(one.is_farm());
    let (s, _, servers) = run_farm_series(&one);
    let f = farm(&s);
    assert_eq!(f.servers.len(), 1);
    let mut a = single.clone();
    let mut b = f.servers[0].summary.clone();
    // The farm's arrival events are counted by the farm, not by its server.
    a.events = 0;
    b.events = 0;
    assert!(
        a.to_json(false) == b.to_json(false),
        "the server differs from the single run"
    );
    assert!(single_series.rows == servers[0].rows, "time series differ");
    // The users' view equals the server's: no retries, no balancer.
    assert_eq!(s.outcomes["ok"], single.outcomes["ok"]);
    assert_eq!(
        s.outcomes["503_queue_full"],
        single.outcomes["503_queue_full"]
    );
    assert_eq!(s.latency_ms.all, single.latency_ms.all);
    check_farm_conservation(&s);
}

#[test]
fn a_server_held_out_for_15_s_moves_its_share_to_the_other_three() {
    for policy in ["round_robin", "random"] {
        let scn = load(
            "farm-cascade.toml",
            &[
                "clients.retries=0",
                &format!("load_balancer.policy={policy}"),
            ],
        );
        let (s, f_series, servers) = run_farm_series(&scn);
        check_farm_conservation(&s);
        let f = farm(&s);
        let web1 = &f.servers[0];
        assert_eq!(web1.removals, 1, "{policy}: web1 is removed once");
        let out_at = web1.first_removed_at_s.expect("web1 removed");
        assert!(
            (60.0..62.0).contains(&out_at),
            "{policy}: removed at {out_at}"
        );
        // Held 15 s, back at the first probe (every 5 s) after that.
        assert!(
            (15.0..=20.5).contains(&web1.out_of_rotation_seconds),
            "{policy}: out {} s",
            web1.out_of_rotation_seconds
        );
        for other in &f.servers[1..] {
            assert_eq!(other.removals, 0, "{policy}: {} stays in", other.name);
        }
        // Before: each server gets 1/4 of the load; while web1 is out: 1/3 each.
        let (b0, b1) = (20.0, 58.0);
        let (d0, d1) = (out_at.ceil() + 1.0, out_at + 14.0);
        let total = |t0, t1| window_sum(&f_series, "w3sim\\Farm Attempts/sec", t0, t1);
        for (k, name) in ["web2", "web3", "web4"].iter().enumerate() {
            let col = format!("\\\\{name}\\w3sim\\Load Balancer Requests/sec");
            let before = window_sum(&f_series, &col, b0, b1) / total(b0, b1);
            let during = window_sum(&f_series, &col, d0, d1) / total(d0, d1);
            let tol = if policy == "round_robin" { 0.003 } else { 0.02 };
            assert!((before - 0.25).abs() < tol, "{policy} {name}: {before}");
            assert!(
                (during - 1.0 / 3.0).abs() < tol,
                "{policy} {name}: {during}"
            );
            // The server's own HTTP.SYS arrival rate rises by the same 4/3.
            let own = &servers[k + 1];
            let rate = "HTTP Service Request Queues\\ArrivalRate";
            let r_before = window_mean(own, rate, b0, b1);
            let r_during = window_mean(own, rate, d0, d1);
            let ratio = r_during / r_before;
            assert!(
                (ratio - 4.0 / 3.0).abs() < 0.05,
                "{policy} {name}: arrival rate ×{ratio:.3}"
            );
        }
        // web1 gets nothing while out (probes are not user requests).
        let w1 = window_sum(
            &f_series,
            "\\\\web1\\w3sim\\Load Balancer Requests/sec",
            d0,
            d1,
        );
        assert_eq!(w1, 0.0, "{policy}");
        let in_rot = col(&f_series, "w3sim\\Load Balancer Servers In Rotation");
        assert_eq!(in_rot.iter().cloned().fold(f64::MAX, f64::min), 3.0);
    }
}

#[test]
fn least_connections_steers_around_a_paused_server_before_it_answers_503() {
    // During web1's GC its requests do not finish, so it has the most connections open:
    // the balancer sends it almost nothing and its queue never reaches queueLength.
    let scn = load(
        "farm-cascade.toml",
        &["load_balancer.policy=least_connections"],
    );
    let s = run(&scn);
    check_farm_conservation(&s);
    let f = farm(&s);
    assert_eq!(f.load_balancer.as_ref().unwrap().removals, 0);
    let web1 = &f.servers[0].summary;
    assert!(web1.gc.max_pause_ms > 1000.0, "the pause happens");
    assert_eq!(outcome(web1, "503_queue_full"), 0);
    assert!(
        web1.gauges["http_sys.Outstanding Requests"].peak < 1000,
        "{:?}",
        web1.gauges["http_sys.Outstanding Requests"]
    );
    assert_eq!(s.requests.failed, 0, "{:?}", s.outcomes);
}

#[test]
fn retries_add_attempts_during_the_incident_and_fall_back_after() {
    // 11 ms pages: the three others can absorb web1's retried requests.
    let scn = load("farm-cascade.toml", &["classes[0].steps[0].cpu=exp(11ms)"]);
    let (s, f_series, _) = run_farm_series(&scn);
    check_farm_conservation(&s);
    let f = farm(&s);
    let ratio = |t0, t1| {
        window_sum(&f_series, "w3sim\\Farm Attempts/sec", t0, t1)
            / window_sum(&f_series, "w3sim\\Farm User Requests/sec", t0, t1)
    };
    assert_eq!(ratio(20.0, 58.0), 1.0, "no retries before the GC");
    let during = ratio(60.0, 64.0);
    assert!(during > 1.03, "attempts exceed user requests: ×{during:.3}");
    let after = ratio(100.0, 180.0);
    assert_eq!(after, 1.0, "and fall back after: ×{after:.4}");
    assert!(f.retries > 500 && f.client_timeouts > 500, "{f:?}");
    // Here the retries save the users: every user request ends well.
    assert_eq!(s.requests.failed, 0);
    assert!(f.attempts > f.user_requests);
}

#[test]
fn the_cascade_takes_every_server_down_with_retries_jittered_or_not() {
    for jitter in ["none", "full"] {
        cascade(&format!("clients.jitter={jitter}"));
    }
}

fn cascade(set: &str) {
    let scn = load("farm-cascade.toml", &[set]);
    let s = run(&scn);
    check_farm_conservation(&s);
    let f = farm(&s);
    let lb = f.load_balancer.as_ref().unwrap();
    assert_eq!(lb.servers_ever_removed, 4, "{lb:?}");
    assert_eq!(lb.min_servers_in_rotation, 0);
    assert!(lb.rejected_all_out > 100_000, "{lb:?}");
    // web1 first, the others in turn a few seconds later.
    let first = f.servers[0].first_removed_at_s.unwrap();
    for other in &f.servers[1..] {
        let t = other.first_removed_at_s.expect("removed");
        assert!(t > first && t < first + 15.0, "{}: {t}", other.name);
    }
    assert!(f.attempts_per_user_request > 2.0, "{f:?}");
    assert!(s.measured.failure_ratio > 0.3, "{:?}", s.measured);
    assert!(s.outcomes[w3sim::farm::LB_NO_SERVER] > 100_000);
    // The outcomes are told apart: attempts as the client saw them vs users.
    assert!(f.attempt_outcomes[w3sim::farm::LB_NO_SERVER] > s.outcomes[w3sim::farm::LB_NO_SERVER]);
}

#[test]
fn the_farm_survives_without_retries_or_with_more_servers() {
    for (what, set) in [
        ("no retries", vec!["clients.retries=0"]),
        (
            "six servers",
            vec![r#"farm.servers[1].names=["web2","web3","web4","web5","web6"]"#],
        ),
    ] {
        let scn = load("farm-cascade.toml", &set);
        let s = run(&scn);
        check_farm_conservation(&s);
        let f = farm(&s);
        let lb = f.load_balancer.as_ref().unwrap();
        assert_eq!(lb.servers_ever_removed, 1, "{what}: only web1: {lb:?}");
        assert_eq!(lb.rejected_all_out, 0, "{what}");
        assert!(s.measured.failure_ratio < 0.005, "{what}: {:?}", s.measured);
        assert!(f.attempts_per_user_request < 1.01, "{what}");
    }
}

/// A retry budget of 10 % does not stop the first cascade (web2–4 carry 4/3 of their
/// load at 100 % CPU: any extra load tips them over) but it breaks the loop that keeps
/// the farm down: with every server out the budget is soon spent, attempts fall back to
/// one per user request, and the servers put back at their probes stay in.
#[test]
fn a_retry_budget_lets_the_farm_recover_from_the_cascade() {
    let (budget, budget_ts, _) = run_farm_series(&load(
        "farm-cascade.toml",
        &["clients.retry_budget_percent=10"],
    ));
    check_farm_conservation(&budget);
    let f = farm(&budget);
    let lb = f.load_balancer.as_ref().unwrap();
    assert_eq!(lb.servers_ever_removed, 4, "still a cascade: {lb:?}");
    assert!(
        f.retries_denied_by_budget > 100_000,
        "{}",
        f.retries_denied_by_budget
    );
    // Retries stay within the budget: 10 % of the user requests plus 10/s.
    let allowed = 0.10 * f.user_requests as f64 + 10.0 * 180.0;
    assert!(
        (f.retries as f64) <= allowed,
        "{} retries > {allowed}",
        f.retries
    );
    // Every server back in rotation for the last minute, and nobody failing then.
    let in_rot = col(&budget_ts, "w3sim\\Load Balancer Servers In Rotation");
    let t = col(&budget_ts, "time_s");
    for (t, n) in t.iter().zip(&in_rot) {
        if *t > 120.0 {
            assert_eq!(*n, 4.0, "at {t} s");
        }
    }
    assert_eq!(
        window_sum(
            &budget_ts,
            "w3sim\\Farm User Requests Failed/sec",
            120.0,
            180.0
        ),
        0.0
    );
    assert!(window_sum(&budget_ts, "w3sim\\Farm Retries Denied/sec", 60.0, 120.0) > 0.0);
    // Without the budget the farm never recovers and three times as many users fail.
    let storm = run(&load("farm-cascade.toml", &[]));
    assert_eq!(farm(&storm).retries_denied_by_budget, 0);
    assert!(budget.measured.failure_ratio < 0.3, "{:?}", budget.measured);
    assert_fails_more(&storm, &budget, 2.5);
}

/// `worse` fails more than `factor` times as many user requests as `better`.
fn assert_fails_more(worse: &Summary, better: &Summary, factor: f64) {
    let (w, b) = (worse.measured.failure_ratio, better.measured.failure_ratio);
    assert!(w > factor * b, "{w} is not {factor} x {b}");
}

/// Under `loadBalancerCapabilities = TcpLevel` web1's full queue closes connections
/// instead of answering 503; the balancer takes it out for that just the same (the
/// point of the setting), and the client sees an error.
#[test]
fn a_tcp_level_reset_takes_the_server_out_like_a_503() {
    let http = run(&load("farm-cascade.toml", &["clients.retries=0"]));
    let tcp = run(&load(
        "farm-cascade.toml",
        &[
            "clients.retries=0",
            "app_pool.load_balancer_capabilities=tcp_level",
        ],
    ));
    check_farm_conservation(&tcp);
    let (fh, ft) = (farm(&http), farm(&tcp));
    assert_eq!(
        ft.servers[0].first_removed_at_s,
        fh.servers[0].first_removed_at_s
    );
    assert!(ft.servers[0].first_removed_at_s.is_some());
    assert!(ft.attempt_outcomes["connection_reset_queue_full"] > 0);
    assert_eq!(
        ft.attempt_outcomes.get("503_queue_full"),
        None,
        "no 503 at all"
    );
    assert_eq!(
        ft.attempt_outcomes["connection_reset_queue_full"],
        fh.attempt_outcomes["503_queue_full"]
    );
    // The removal says what the balancer saw.
    let removal = |s: &Summary| {
        s.marked_events
            .iter()
            .find(|e| e.kind == "lb_removed")
            .map(|e| e.detail.clone())
            .expect("a removal")
    };
    assert_eq!(removal(&http), "web1: answered 503");
    assert_eq!(
        removal(&tcp),
        "web1: reset the connection (loadBalancerCapabilities TcpLevel)"
    );
}

#[test]
fn a_1s_valve_overshoots_its_threshold_far_more_than_a_100ms_one() {
    let overshoot = |period: &str| {
        let scn = load(
            "valve-sampling-lag.toml",
            &[&format!("valves[0].period={period}")],
        );
        let s = run(&scn);
        check_conservation(&s);
        assert!(s.valves[0].closings > 0, "{period}: the valve closes");
        assert!(s.valves[0].skipped_calls > 0);
        s.gauges["aspnet.Requests Queued"].peak as f64 - 2000.0
    };
    let slow = overshoot("1s");
    let fast = overshoot("100ms");
    assert!(fast >= 0.0 && slow > 0.0, "both cross 2000: {slow} {fast}");
    // The queue grows ~1000 a second past capacity: up to a period's worth of growth.
    assert!(slow > 400.0, "1 s overshoot {slow}");
    assert!(fast < 250.0, "100 ms overshoot {fast}");
    assert!(slow > 3.0 * fast, "1 s: {slow}, 100 ms: {fast}");
    // Without a valve the queue keeps growing to IIS's limit: 503.2.
    let s = run(&load("valve-sampling-lag.toml", &["valves=[]"]));
    assert!(outcome(&s, "503_2_concurrent_request_limit") > 1000);
}

#[test]
fn farm_runs_are_deterministic_and_their_servers_independent() {
    let scn = load("farm-cascade.toml", &["duration=40s", "clients.retries=0"]);
    let a = run(&scn);
    let b = run(&scn);
    assert!(a.to_json(false) == b.to_json(false), "two runs differ");
    // Identical servers get their own streams: their figures differ.
    let f = farm(&a);
    assert_ne!(
        f.servers[1].summary.latency_ms.all,
        f.servers[2].summary.latency_ms.all
    );
}

#[test]
fn bad_farm_settings_are_reported_where_they_are_written() {
    let bad_load = |text: &str, set: &[&str]| {
        let set: Vec<String> = set.iter().map(|s| s.to_string()).collect();
        load_str("farm.toml", text, &set).unwrap_err().to_string()
    };
    let text = std::fs::read_to_string(experiment("farm-cascade.toml")).unwrap();
    // A farm-wide key in a server group.
    let bad = text.replace(
        r#"set = ["gc.cache_reload"#,
        r#"set = ["load.rate=10/s", "gc.cache_reload"#,
    );
    let e = bad_load(&bad, &[]);
    assert!(e.contains("farm.toml:"), "{e}");
    assert!(e.contains("farm.servers[0].set[0]"), "{e}");
    assert!(e.contains("farm-wide"), "{e}");
    // A misspelt key in a group's set: located, with a suggestion.
    let bad = text.replace(
        r#"set = ["gc.cache_reload"#,
        r#"set = ["http_sys.queue_lenght=5", "gc.cache_reload"#,
    );
    let e = bad_load(&bad, &[]);
    let line = bad
        .lines()
        .position(|l| l.contains("queue_lenght"))
        .unwrap()
        + 1;
    assert!(e.contains(&format!("farm.toml:{line}:")), "{e}");
    assert!(e.contains("queue_length"), "suggests the right key: {e}");
    // A probe class that does not exist, with the nearest name.
    let e = bad_load(
        &text.replace(r#"probe_class = "health""#, r#"probe_class = "helth""#),
        &[],
    );
    assert!(
        e.contains("load_balancer.probe_class") && e.contains("\"health\""),
        "{e}"
    );
    // Unknown policy and jitter values list the accepted ones.
    let e = bad_load(&text, &["load_balancer.policy=fastest"]);
    assert!(
        e.contains("round_robin") && e.contains("least_connections"),
        "{e}"
    );
    let e = bad_load(&text, &["clients.retry_on=[\"500\"]"]);
    assert!(e.contains("503") && e.contains("timeout"), "{e}");
    // names and count disagree.
    let e = bad_load(&text, &["farm.servers[1].count=2"]);
    assert!(e.contains("farm.servers[1].names"), "{e}");
    // With `names`, a group needs no `name`; with neither, the error says what to write.
    let named = text.replace("name = \"web\"\nnames = ", "names = ");
    assert_ne!(named, text);
    let s = load_str("farm.toml", &named, &[]).unwrap();
    assert_eq!(
        s.server_names()
            .into_iter()
            .map(|(n, _)| n)
            .collect::<Vec<_>>(),
        ["web1", "web2", "web3", "web4"]
    );
    let e = bad_load(
        &named.replace("names = [\"web2\", \"web3\", \"web4\"]", "count = 3"),
        &[],
    );
    assert!(
        e.contains("farm.servers[1].name") && e.contains("names"),
        "{e}"
    );
    // A retry budget out of range names its unit and range.
    let e = bad_load(&text, &["clients.retry_budget_percent=2000"]);
    assert!(
        e.contains("clients.retry_budget_percent")
            && e.contains("retries per 100 user requests, 0–1000"),
        "{e}"
    );
    // A group may hold as many servers as a farm: 1024.
    let e = bad_load(&text, &["farm.servers[0].count=1025"]);
    assert!(
        e.contains("farm.servers[0].count") && e.contains("1–1024"),
        "{e}"
    );
}

#[test]
fn probes_alone_find_the_paused_server_and_fail_open_never_rejects() {
    // No passive check: the probe sent at 60 s meets the GC pause and times out at 60.5 s.
    let s = run(&load(
        "farm-cascade.toml",
        &[
            "load_balancer.remove_on_503=false",
            "load_balancer.probe_timeout=500ms",
        ],
    ));
    check_farm_conservation(&s);
    let f = farm(&s);
    let lb = f.load_balancer.as_ref().unwrap();
    assert!(lb.probes_failed > 0, "{lb:?}");
    assert_eq!(f.servers[0].first_removed_at_s, Some(60.5));
    // With every server out, fail_open spreads the load instead of answering 503.
    let s = run(&load(
        "farm-cascade.toml",
        &["load_balancer.when_all_out=fail_open"],
    ));
    check_farm_conservation(&s);
    let lb = farm(&s).load_balancer.clone().unwrap();
    assert_eq!(lb.rejected_all_out, 0);
    assert_eq!(lb.min_servers_in_rotation, 0);
    assert!(!s.outcomes.contains_key(w3sim::farm::LB_NO_SERVER));
}

#[test]
fn closed_loop_users_hold_back_when_the_farm_is_slow_and_no_storm_follows() {
    // 4000 users who think 1 s between requests offer ~4000/s but wait for each answer.
    let s = run(&load(
        "farm-cascade.toml",
        &[
            "load.mode=closed",
            "load.users=4000",
            "load.think_time=exp(1s)",
        ],
    ));
    check_farm_conservation(&s);
    let f = farm(&s);
    assert_eq!(f.load_balancer.as_ref().unwrap().servers_ever_removed, 1);
    assert_eq!(s.requests.failed, 0, "{:?}", s.outcomes);
    // Every user has at most one request in flight.
    assert!(s.requests.in_flight <= 4000);
}

#[test]
fn staggered_reinstatement_keeps_the_farm_down_where_synchronised_reinstatement_does_not() {
    let at = |rate: &str| {
        let s = run(&load(
            "farm-cascade.toml",
            &["clients.retries=0", &format!("load.rate={rate}")],
        ));
        check_farm_conservation(&s);
        s
    };
    let (s4500, s5000) = (at("4500/s"), at("5000/s"));
    // At 5000/s all four go out within a few seconds and come back at one probe round.
    let back: Vec<f64> = s5000
        .marked_events
        .iter()
        .filter(|e| e.kind == "lb_reinstated")
        .map(|e| e.at_s)
        .collect();
    assert!(
        back.len() >= 4 && back[..4].iter().all(|t| *t == back[0]),
        "{back:?}"
    );
    assert_eq!(farm(&s5000).load_balancer.as_ref().unwrap().removals, 4);
    // At 4500/s web1 comes back alone, is overwhelmed, and the farm never has four again.
    let lb = farm(&s4500).load_balancer.clone().unwrap();
    assert!(lb.removals > 8, "{lb:?}");
    assert_fails_more(&s4500, &s5000, 3.0);
}

/// The farm benchmark (`w3sim bench --farm N`, README Performance) compares like with
/// like: for every kind of server, each of the N servers gets 1/N of the N-fold load
/// (round robin, no server ever out), as many requests as the single server, and the
/// same queueing (mean wait within sampling noise of the single M/M/16/1000 server).
#[test]
fn the_farm_benchmark_gives_each_server_the_single_servers_load() {
    use w3sim::bench::{BenchServer, farm_scenario};
    for kind in [
        BenchServer::Dedicated,
        BenchServer::SharedCpu,
        BenchServer::Seed003,
    ] {
        let single = w3sim::run(&kind.scenario(0.9, 60_000, 7), &mut w3sim::output::NullSink)
            .expect("single server runs");
        let s = w3sim::run(
            &farm_scenario(kind, 4, 0.9, 60_000, 7),
            &mut w3sim::output::NullSink,
        )
        .expect("farm runs");
        check_farm_conservation(&s);
        let f = farm(&s);
        assert_eq!(f.servers.len(), 4);
        assert_eq!(f.retries, 0);
        let lb = f.load_balancer.as_ref().expect("a balancer");
        assert_eq!(lb.removals, 0, "{kind:?}: no server is ever taken out");
        let n1 = single.requests.arrived as f64;
        for srv in &f.servers {
            // Round robin: every server gets a quarter, to the request.
            assert!(
                (srv.share - 0.25).abs() < 1e-4,
                "{kind:?}: share {}",
                srv.share
            );
            let n = srv.summary.requests.arrived as f64;
            assert!(
                (n / n1 - 1.0).abs() < 0.03,
                "{kind:?}: {n} vs {n1} requests"
            );
            assert_eq!(srv.summary.outcomes["ok"], srv.summary.requests.completed);
        }
        // Round robin spreads a Poisson stream into Erlang-4 arrivals per server: more
        // regular, so the farm's servers wait less than the single M/M/16 server, never more.
        let wait = |x: &Summary| x.queue_wait_ms.mean;
        let farm_wait =
            f.servers.iter().map(|x| wait(&x.summary)).sum::<f64>() / f.servers.len() as f64;
        assert!(
            farm_wait <= wait(&single) * 1.05,
            "{kind:?}: farm servers wait {farm_wait} ms, the single server {} ms",
            wait(&single)
        );
    }
}

/// `bench --farm N` times a farm of one as well (the README's second ratio), with the
/// same requests as the single server; `--farm 1` does not time it twice.
#[test]
fn the_farm_benchmark_also_times_a_farm_of_one() {
    use w3sim::bench::{BenchServer, run_farm_scaling};
    let f = run_farm_scaling(BenchServer::Dedicated, 2, 0.9, 5_000, 7);
    let one = f
        .farm_of_one
        .as_ref()
        .expect("a farm of one for two servers");
    assert_eq!(
        one.requests, f.single.requests,
        "the same arrivals, one front end"
    );
    assert!((f.farm.requests as f64 / (2 * f.single.requests) as f64 - 1.0).abs() < 0.05);
    let r = f.cost_ratio_to_farm_of_one().expect("a ratio");
    assert!(r.is_finite() && r > 0.0);
    assert!(
        run_farm_scaling(BenchServer::Dedicated, 1, 0.9, 1_000, 7)
            .farm_of_one
            .is_none()
    );
}

/// `w3sim check` warns when the balancer's probes ask for a page slow enough (against
/// the probe timeout) to fail under load and hold servers out — the trap the farm
/// benchmark fell into — and stays quiet for the cascade's 200 µs health page.
#[test]
fn check_warns_about_probes_of_a_slow_page() {
    let check =
        |path: &std::path::Path| w3sim_ok([std::ffi::OsStr::new("check"), path.as_os_str()]);
    let tmp = tempfile::tempdir().unwrap();
    let slow = tmp.path().join("slow-probes.toml");
    std::fs::write(
        &slow,
        r#"name = "slow-probes"
duration = "60s"
[load]
rate = "28.8/s"
[[classes]]
name = "page"
service = "exp(1s)"
[[farm.servers]]
name = "web"
count = 2
"#,
    )
    .unwrap();
    let out = check(&slow);
    assert!(
        out.contains("note: probes ask for \"page\", whose own time averages 1000 ms against a probe timeout of 2s"),
        "{out}"
    );
    let out = check(&experiment("farm-cascade.toml"));
    assert!(out.contains("farm of 4 servers"), "{out}");
    assert!(!out.contains("note: probes"), "{out}");
}

#[test]
fn weights_keep_a_farm_of_unequal_servers_alive_where_equal_shares_take_it_down() {
    // farm-weights.toml: big has 32 processors, small1 and small2 16 each.
    let weighted = run(&load("farm-weights.toml", &[]));
    check_farm_conservation(&weighted);
    let f = farm(&weighted);
    let names: Vec<&str> = f.servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["big", "small1", "small2"]);
    assert_eq!(
        f.servers.iter().map(|s| s.weight).collect::<Vec<_>>(),
        [2, 1, 1]
    );
    // Smooth weighted round-robin: exactly 2:1:1, every server at ~82 % CPU, no 503.
    for (s, share) in f.servers.iter().zip([0.5, 0.25, 0.25]) {
        assert!((s.share - share).abs() < 1e-3, "{}: {}", s.name, s.share);
        assert_eq!(s.removals, 0, "{}", s.name);
        let cpu = s.summary.cpu_utilization_pct;
        assert!((78.0..87.0).contains(&cpu), "{}: {cpu} % CPU", s.name);
    }
    assert_eq!(
        weighted.outcomes.get("ok"),
        Some(&weighted.requests.completed)
    );

    // Equal weights: a third each; the small servers overload and answer 503 first,
    // then big gets everything, and the balancer ends up answering 503 itself.
    let equal = run(&load("farm-weights.toml", &["farm.servers[0].weight=1"]));
    check_farm_conservation(&equal);
    let f = farm(&equal);
    assert!(f.servers.iter().all(|s| s.weight == 1 && s.removals >= 2));
    let first = |i: usize| f.servers[i].first_removed_at_s.unwrap();
    assert!(
        first(1) < first(0) && first(2) < first(0),
        "small ones first"
    );
    let lb = f.load_balancer.as_ref().unwrap();
    assert_eq!(lb.min_servers_in_rotation, 0);
    let failed = equal.requests.failed as f64 / equal.requests.arrived as f64;
    assert!(failed > 0.3, "{failed}");
    assert!(equal.outcomes[w3sim::farm::LB_NO_SERVER] > 0);
    assert!(f.servers[1].summary.outcomes["503_queue_full"] > 0);

    // Least connections without weights also spares the small servers, but only just:
    // ~99 % CPU and a p99 well above the weighted farm's.
    let lc = run(&load(
        "farm-weights.toml",
        &[
            "farm.servers[0].weight=1",
            "load_balancer.policy=least_connections",
        ],
    ));
    check_farm_conservation(&lc);
    let f = farm(&lc);
    assert!(f.servers.iter().all(|s| s.removals == 0));
    assert!(f.servers[1].summary.cpu_utilization_pct > 97.0);
    assert!(
        f.servers[1].summary.latency_ms.all.p99
            > 1.3 * farm(&weighted).servers[1].summary.latency_ms.all.p99
    );
}

/// `w3sim check` works out each farm server's share by weight and what it asks of that
/// server's own processors: the overload of farm-weights.toml's small servers with equal
/// weights shows before anything runs.
#[test]
fn check_gives_each_servers_share_and_load_by_weight() {
    let path = experiment("farm-weights.toml");
    let p = path.to_str().unwrap();
    let out = w3sim_ok(["check", p]);
    assert!(
        out.contains("big (weight 2): 50.0 %, 2200/s: 26.4 of 32 processors busy (82 %)"),
        "{out}"
    );
    assert!(
        out.contains("small2 (weight 1): 25.0 %, 1100/s: 13.2 of 16 processors busy (82 %)"),
        "{out}"
    );
    assert!(!out.contains("queue will fill"), "{out}");
    let out = w3sim_ok(["check", p, "--set", "farm.servers[0].weight=1"]);
    assert!(
        out.contains("small1 (weight 1): 33.3 %, 1467/s: 17.6 of 16 processors busy (110 %)"),
        "{out}"
    );
    assert_eq!(out.matches("the queues will fill").count(), 2, "{out}");
    let out = w3sim_ok([
        "check",
        experiment("farm-cascade.toml").to_str().unwrap(),
        "--set",
        "clients.retry_budget_percent=10",
    ]);
    assert!(
        out.contains("retry budget 10 % of user requests + 10/s over 10s"),
        "{out}"
    );
    // A rate that changes: the shares only.
    let out = w3sim_ok([
        "check",
        p,
        "--set",
        r#"load.schedule=[{at="0s", rate="100/s"}]"#,
    ]);
    assert!(out.contains("    big (weight 2): 50.0 %\n"), "{out}");
}

/// A run written over an earlier farm run's directory leaves none of that farm's
/// servers behind (which `report` and `explain` would read as its own), and a run is
/// never written into a sweep's results (audit).
#[test]
fn a_run_replaces_an_earlier_farms_servers_and_keeps_out_of_a_sweeps_results() {
    use std::process::Command;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    // `w3sim run SCENARIO --duration 20s --out DIR -q`
    let run = |scenario: &str| {
        let path = experiment(scenario);
        Command::new(env!("CARGO_BIN_EXE_w3sim"))
            .args(["run", path.to_str().unwrap(), "--duration", "20s", "--out"])
            .arg(&dir)
            .arg("-q")
            .output()
            .expect("w3sim starts")
    };
    let o = run("farm-weights.toml");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        dir.join("servers")
            .join("big")
            .join("summary.json")
            .is_file()
    );
    let o = run("queue-full-burst.toml");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        !dir.join("servers").exists(),
        "the farm's servers were left behind"
    );

    std::fs::write(dir.join("runs.csv"), "point,replication\n").unwrap();
    let o = run("queue-full-burst.toml");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("holds a sweep's"));
}
