//! Outgoing calls, connection pools, ephemeral ports and TIME_WAIT (issue 4): where
//! WSAENOBUFS comes from.

mod common;

use common::*;
use proptest::prelude::*;
use w3sim::scenario::load::load_str;

/// Erlang B by the stable recursion.
fn erlang_b(servers: u32, offered: f64) -> f64 {
    let mut b = 1.0;
    for n in 1..=servers {
        b = offered * b / (n as f64 + offered * b);
    }
    b
}

/// Calls that each open a new connection this side closes: ports are an Erlang loss
/// system whose holding time is the call time plus TcpTimedWaitDelay.
fn new_connection_per_call(
    rate: &str,
    arrivals: &str,
    ports: u32,
    time_wait: &str,
    duration: &str,
) -> String {
    format!(
        r#"
duration = "{duration}"
sample_interval = "10s"
[load]
rate = "{rate}"
arrivals = "{arrivals}"
[[classes]]
name = "caller"
handler = "async"
steps = [ {{ call = "svc", timeout = "10s" }} ]
[[backends]]
name = "svc"
latency = "const(10ms)"
connect_time = "0s"
keep_alive = false
[cpu]
logical_processors = 4
[tcp]
dynamic_port_count = {ports}
tcp_timed_wait_delay = "{time_wait}"
[http_sys]
queue_length = 65535
[iis]
app_concurrent_request_limit = 100000
[aspnet]
request_queue_limit = 100000
"#
    )
}

#[test]
fn ports_are_an_erlang_loss_system() {
    // 300 ports, each held 10 ms + 2 s of TIME_WAIT: offered 150/s × 2.01 s = 301.5 Erlangs.
    let text = new_connection_per_call("150/s", "poisson", 300, "2s", "600s");
    let base = load_str("erlang.toml", &text, &[]).unwrap();
    let exact = erlang_b(300, 150.0 * 2.01);
    let mut fractions = Vec::new();
    for seed in 1..=5 {
        let mut scn = base.clone();
        scn.seed = seed;
        let (s, _) = run_series(&scn);
        let o = &s.outgoing;
        let ended = o.ok + o.wsaenobufs + o.timeouts + o.errors + o.wsaeaddrinuse;
        assert!(
            o.calls >= ended && o.calls - ended < 50,
            "calls {} vs ended {ended}",
            o.calls
        );
        fractions.push(o.wsaenobufs as f64 / o.calls as f64);
    }
    let c = check("WSAENOBUFS fraction vs Erlang B", &fractions, exact);
    println!(
        "Erlang B({}, {:.1}) = {exact:.4}; simulated {:.4} ± {:.4}",
        300, 301.5, c.mean, c.half_width
    );
    assert!(c.covers() || (c.mean - exact).abs() / exact < 0.05, "{c:?}");
    assert!(
        exact > 0.02,
        "the test point must block noticeably ({exact})"
    );
}

#[test]
fn the_sustainable_new_connection_rate_is_ports_over_time_wait() {
    // 16,384 ports / 240 s ≈ 68 new connections a second.
    let ok = load_str(
        "rate.toml",
        &new_connection_per_call("60/s", "constant", 16384, "240s", "600s"),
        &[],
    )
    .unwrap();
    let (s, ts) = run_series(&ok);
    assert_eq!(s.outgoing.wsaenobufs, 0, "60/s is sustainable");
    let tw = col(&ts, "w3sim\\Ports In TIME_WAIT");
    assert!(
        tw.iter().cloned().fold(0.0, f64::max) > 14000.0,
        "~60 × 240 ports sit in TIME_WAIT"
    );
    let over = load_str(
        "rate.toml",
        &new_connection_per_call("80/s", "constant", 16384, "240s", "600s"),
        &[],
    )
    .unwrap();
    let (s, _) = run_series(&over);
    assert!(s.outgoing.wsaenobufs > 0, "80/s is not");
    let first = s.outgoing.first_wsaenobufs_s.unwrap();
    // The range fills after 16,384 / 80 ≈ 205 s.
    assert!(
        (first - 16384.0 / 80.0).abs() < 5.0,
        "first WSAENOBUFS at {first} s"
    );
    assert_eq!(
        s.first_limit.as_ref().unwrap().limit,
        "tcp.dynamic_port_count"
    );
}

fn seed003(overrides: &[&str]) -> (w3sim::Summary, w3sim::output::MemorySink) {
    run_series(&load("so-2013-async-outgoing.toml", overrides))
}

#[test]
fn seed_003_picture_wsaenobufs_and_503s_past_a_threshold_at_low_cpu() {
    let (s, ts) = seed003(&[]);
    let t = col(&ts, "time_s");
    let nobufs = col(&ts, "w3sim\\WSAENOBUFS/sec");
    let qf = col(&ts, "w3sim\\Outcome 503_queue_full/sec");
    // No errors while outgoing calls run at 300/s (the first minute and the first reload).
    for i in 0..t.len() {
        if t[i] <= 120.0 {
            assert_eq!(nobufs[i], 0.0, "WSAENOBUFS at {} s", t[i]);
            assert_eq!(qf[i], 0.0, "503 at {} s", t[i]);
        }
    }
    assert!(s.outgoing.wsaenobufs > 1000, "{:?}", s.outgoing);
    assert!(s.outcomes["503_queue_full"] > 0);
    let first = s.outgoing.first_wsaenobufs_s.unwrap();
    assert!(
        first > 500.0,
        "the threshold is passed late in the ramp, not at {first} s"
    );
    assert!(
        s.cpu_utilization_pct < 30.0,
        "CPU well below saturation: {}",
        s.cpu_utilization_pct
    );
    // summary.json names the limits in the order they were reached.
    assert!(s.first_limit.is_some());
    assert!(s.limits.iter().any(|l| l.limit == "tcp.dynamic_port_count"));
    // The TIME_WAIT pile fills the range.
    assert_eq!(s.outgoing.peak_ports_used, 16384);
    // Perfmon names in the time series.
    assert!(
        ts.columns
            .iter()
            .any(|c| c == "TCPv4\\Connections Established")
    );
    assert!(ts.columns.iter().any(|c| c == "w3sim\\Ports In TIME_WAIT"));
}

#[test]
fn seed_003_fixes_and_non_fixes() {
    let (base, _) = seed003(&[]);
    let first = base.outgoing.first_wsaenobufs_s.unwrap();
    // Doubling the range moves the threshold up (later in the ramp), as the seed saw.
    let (dbl, _) = seed003(&[
        "tcp.dynamic_port_start=32768",
        "tcp.dynamic_port_count=32768",
    ]);
    assert!(
        dbl.outgoing
            .first_wsaenobufs_s
            .is_none_or(|t| t > first + 30.0),
        "doubling the ports: first WSAENOBUFS {:?} vs {first}",
        dbl.outgoing.first_wsaenobufs_s
    );
    assert!(dbl.outgoing.wsaenobufs < base.outgoing.wsaenobufs);
    // TIME_WAIT 30 s: 16,384 / 30 ≈ 546 new connections/s: no WSAENOBUFS at 650/s.
    let (tw, _) = seed003(&["tcp.tcp_timed_wait_delay=30s"]);
    assert_eq!(tw.outgoing.wsaenobufs, 0);
    // queueLength 10,000 does not cure them (the seed: "without effect").
    let (ql, _) = seed003(&["http_sys.queue_length=10000"]);
    assert!(ql.outgoing.wsaenobufs > base.outgoing.wsaenobufs / 2);
    // Pooled connections (a cancelled call keeps its connection) cure them.
    let (pooled, _) = run_series(&load("so-2013-async-outgoing-pooled.toml", &[]));
    assert_eq!(pooled.outgoing.wsaenobufs, 0);
    assert!(
        pooled.outgoing.peak_ports_used < 1000,
        "{}",
        pooled.outgoing.peak_ports_used
    );
}

/// The seed's other counter: `TCPv4\Connections Established` "goes from normal 2-3000 to
/// peaks up to almost 12.000". Aborted cancellations (the main scenario) leave it at ~2.6k:
/// ports in TIME_WAIT are not established. The reading that gives ~12k: cancellations that
/// do not abort (pooled) and a partner that falls behind (31 calls at once: 620/s against
/// 650/s offered), so every late call keeps its connection established until its answer;
/// the counter climbs past 12k and the ports then run out held by established connections.
#[test]
fn seed_003_connections_established_climb_to_12k_when_late_calls_keep_their_connections() {
    let (base, _) = seed003(&[]);
    assert!(
        base.outgoing.peak_connections_established < 3000,
        "{:?}",
        base.outgoing
    );
    let (s, ts) = run_series(&load(
        "so-2013-async-outgoing-pooled.toml",
        &["backends[0].capacity=31", "duration=\"20m\""],
    ));
    let t = col(&ts, "time_s");
    let est = col(&ts, "TCPv4\\Connections Established");
    let tw = col(&ts, "w3sim\\Ports In TIME_WAIT");
    let at = |secs: f64| est[t.iter().position(|&x| x >= secs).unwrap()];
    // 2–3k while the partner keeps up (the 2,500 clients' keep-alive connections + calls).
    assert!((2000.0..3000.0).contains(&at(300.0)), "{}", at(300.0));
    // Almost 12,000 within ~5 minutes of the forward rate passing 620/s (at ~10.5 min).
    let when_12k = t[est
        .iter()
        .position(|&e| e >= 11_500.0)
        .expect("reaches ~12k")];
    assert!((900.0..1080.0).contains(&when_12k), "~12k at {when_12k} s");
    // Then the ports run out with established connections, not TIME_WAIT.
    let first = s.outgoing.first_wsaenobufs_s.expect("the ports run out");
    assert!(first > when_12k, "{first}");
    assert!(s.outgoing.peak_ports_time_wait < 1000, "{:?}", s.outgoing);
    assert!(tw.iter().all(|&x| x < 1000.0));
}

#[test]
fn a_connection_limit_queues_calls_and_times_them_out() {
    let text = r#"
duration = "30s"
[load]
rate = "200/s"
[[classes]]
name = "caller"
handler = "async"
steps = [ { call = "svc", timeout = "500ms" } ]
[[backends]]
name = "svc"
latency = "const(50ms)"
max_connections = 2
[cpu]
logical_processors = 4
"#;
    let scn = load_str("limit.toml", text, &[]).unwrap();
    let (s, _) = run_series(&scn);
    // 2 connections × 20 calls/s each = 40 calls/s; the rest wait and time out at 500 ms.
    assert!(s.outgoing.timeouts > 3000, "{:?}", s.outgoing);
    assert!(s.outgoing.first_connection_wait_s.is_some());
    // Never more than 2 connections at once; every call cancelled at the backend aborts
    // its connection, so new ones keep being opened (port churn).
    assert!(
        s.outgoing.peak_connections_established <= 2,
        "{}",
        s.outgoing.peak_connections_established
    );
    assert!(s.outgoing.connections_opened > 100);
    assert!(s.outcomes["outgoing_timeout"] > 3000);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    /// Ports in use plus in TIME_WAIT never exceed the range (the engine checks it at
    /// every sample and fails the run otherwise), and every bound port is eventually
    /// released once calls stop.
    #[test]
    fn ports_stay_within_the_range_and_are_all_released(
        rate in 20u32..400,
        ports in 255u32..600,
        tw in 2u32..20,
        keep_alive in any::<bool>(),
        abort in any::<bool>(),
        latency_ms in 1u32..300,
        seed in 1u64..1000,
    ) {
        let text = format!(r#"
duration = "120s"
sample_interval = "1s"
[load]
schedule = [ {{ at = "0s", rate = "{rate}/s" }}, {{ at = "30s", rate = "0/s" }} ]
[[classes]]
name = "caller"
handler = "async"
steps = [ {{ call = "svc", timeout = "100ms" }} ]
[[backends]]
name = "svc"
latency = "exp({latency_ms}ms)"
keep_alive = {keep_alive}
abort_on_cancel = {abort}
[connections]
max_service_point_idle_time = "5s"
[tcp]
dynamic_port_count = {ports}
tcp_timed_wait_delay = "{tw}s"
"#);
        let mut scn = load_str("prop.toml", &text, &[]).unwrap();
        scn.seed = seed;
        let (_, ts) = run_series(&scn);
        let used = col(&ts, "w3sim\\Ports In Use");
        let tw_col = col(&ts, "w3sim\\Ports In TIME_WAIT");
        for (u, w) in used.iter().zip(&tw_col) {
            prop_assert!(u + w <= ports as f64);
        }
        // Calls stop at 30 s; idle connections close by 35 s + latency; TIME_WAIT ends ≤ 20 s later.
        prop_assert_eq!(*used.last().unwrap(), 0.0);
        prop_assert_eq!(*tw_col.last().unwrap(), 0.0);
    }
}

/// Seed 003's valve: a thread reads the queued-requests counter once a second and stops
/// starting outgoing calls above 2000. It "has not helped": the queue it watches stays
/// far below 2000 (the GC pauses queue ~700) while the ports run out, so it never closes.
/// The same valve on the counter that does fill (ports in TIME_WAIT) closes before the
/// range is full and the WSAENOBUFS disappear, at the price of pages served without calls.
#[test]
fn seed_003_valve_on_queued_requests_never_closes_on_ports_it_does() {
    let seed_valve = r#"valves=[{counter="ASP.NET\\Requests Queued", period="1s", close_above=2000, open_below=2000, action="skip_outgoing_calls"}]"#;
    let (s, _) = seed003(&[seed_valve]);
    assert_eq!(s.valves.len(), 1);
    assert_eq!(s.valves[0].closings, 0, "{:?}", s.valves);
    assert_eq!(s.valves[0].skipped_calls, 0);
    assert!(s.outgoing.wsaenobufs > 1000, "{:?}", s.outgoing);
    assert!(s.gauges["aspnet.Requests Queued"].peak < 2000);

    let ports_valve = r#"valves=[{counter="w3sim\\Ports In TIME_WAIT", period="1s", close_above=14000, open_below=12000, action="skip_outgoing_calls"}]"#;
    let (p, _) = seed003(&[ports_valve]);
    assert!(p.valves[0].closings >= 1, "{:?}", p.valves);
    assert!(p.valves[0].skipped_calls > 0);
    assert!(p.valves[0].first_closed_at_s.unwrap() > 120.0);
    assert_eq!(p.outgoing.wsaenobufs, 0, "{:?}", p.outgoing);
    assert!(p.outgoing.peak_ports_used < 16384);
}

/// The seed suspected that "the 1 second time interval check actually is too high": a
/// sampled valve sees a counter only at its samples, so what fills between two samples
/// gets past it. With the threshold at 15,800 of 16,384 ports, a 1 s valve closes in
/// time; a 5 s one lets the range fill and WSAENOBUFS through. At 16,000 even the 1 s
/// valve is a little late.
#[test]
fn seed_003_valve_period_decides_whether_it_closes_in_time() {
    let valve = |period: &str, close: u32| {
        format!(
            r#"valves=[{{counter="w3sim\\Ports In TIME_WAIT", period="{period}", close_above={close}, open_below={}, action="skip_outgoing_calls"}}]"#,
            close - 1000
        )
    };
    let (fast, _) = seed003(&[&valve("1s", 15_800)]);
    assert!(fast.valves[0].closings >= 1);
    assert_eq!(fast.outgoing.wsaenobufs, 0, "{:?}", fast.outgoing);
    assert!(fast.outgoing.peak_ports_used < 16_384);
    let (slow, _) = seed003(&[&valve("5s", 15_800)]);
    assert!(slow.valves[0].closings >= 1);
    assert!(slow.outgoing.wsaenobufs > 100, "{:?}", slow.outgoing);
    let (late, _) = seed003(&[&valve("1s", 16_000)]);
    assert!(
        (1..100).contains(&late.outgoing.wsaenobufs),
        "{:?}",
        late.outgoing
    );
}

/// The valve reads the ports in TIME_WAIT as of its sample: expiries due by then are counted
/// out even when no port operation happened since (the model processes them lazily).
#[test]
fn a_valve_reads_the_time_wait_count_at_its_own_time() {
    // 100 calls at 0.5 s, each cancelled at 10 ms: 100 ports in TIME_WAIT until ~5.51 s, and
    // then no port operation at all. The valve closes at its 1 s sample and must open at its
    // 6 s sample, the first to see the ports released.
    let text = r#"
duration = "20s"
warmup = "0s"
[load]
rate = "0/s"
bursts = [ { at = "500ms", count = 100 } ]
[[classes]]
name = "forward"
handler = "async"
steps = [ { call = "partner", timeout = "10ms" } ]
[[backends]]
name = "partner"
latency = "const(50ms)"
[tcp]
tcp_timed_wait_delay = "5s"
[[valves]]
counter = "w3sim\\Ports In TIME_WAIT"
period = "1s"
close_above = 50
open_below = 10
action = "skip_outgoing_calls"
"#;
    let s = run(&load_text(text, &[]));
    assert_eq!(s.outgoing.timeouts, 100, "{:?}", s.outgoing);
    let v = &s.valves[0];
    assert_eq!((v.closings, v.first_closed_at_s), (1, Some(1.0)), "{v:?}");
    assert_eq!(v.closed_seconds, 5.0, "{v:?}");
}

#[test]
fn seed_003_incoming_connections_in_time_wait_on_port_80_at_25_a_second() {
    // The seed's TcpView: ~25 new incoming connections a second, almost all in TIME_WAIT. The
    // scenario turns one kept-alive connection over every 40 responses (~1000/s) and the
    // server closes it: 25/s, each held TcpTimedWaitDelay = 240 s.
    let (s, ts) = seed003(&["duration=250s"]);
    let at_240 = at(&ts, "w3sim\\Incoming Connections In TIME_WAIT", 240.0);
    let responses_by_240: f64 = col(&ts, "time_s")
        .iter()
        .zip(col(&ts, "ASP.NET Applications\\Requests/Sec"))
        .filter(|(t, _)| **t <= 240.0)
        .map(|(_, r)| r)
        .sum();
    let want = responses_by_240 / 40.0;
    assert!(
        (at_240 - want).abs() < 0.03 * want && (5_500.0..6_500.0).contains(&at_240),
        "{at_240} incoming connections in TIME_WAIT at 240 s, {want} expected"
    );
    // Still 2,500 established: a client reconnects for every connection closed.
    let est = at(&ts, "TCPv4\\Connections Established", 240.0);
    assert!(est >= 2_500.0, "{est}");
    // They take no ephemeral port: the outgoing side is the same without the turnover.
    let (s0, ts0) = seed003(&["duration=250s", "tcp.incoming_requests_per_connection=0"]);
    assert_eq!(
        col(&ts, "w3sim\\Ports In TIME_WAIT"),
        col(&ts0, "w3sim\\Ports In TIME_WAIT")
    );
    assert_eq!(s.outgoing.calls, s0.outgoing.calls);
    assert_eq!(
        col(&ts0, "w3sim\\Incoming Connections In TIME_WAIT")
            .iter()
            .sum::<f64>(),
        0.0
    );
    // The client closing first leaves the TIME_WAIT on the client.
    let (_, ts1) = seed003(&["duration=250s", "tcp.incoming_server_closes=false"]);
    assert_eq!(
        at(&ts1, "w3sim\\Incoming Connections In TIME_WAIT", 240.0),
        0.0
    );
    // Without keep-alive the setting means nothing, and says so.
    let e = load_str(
        "s.toml",
        "[tcp]\nincoming_keep_alive = false\n",
        &["tcp.incoming_requests_per_connection=40".into()],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("has no effect without keep-alive"), "{e}");
}
