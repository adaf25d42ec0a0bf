//! .NET 6's HttpClient (SocketsHttpHandler) as the outgoing-call client, against the .NET
//! Framework ServicePoint: idle connections scavenged at the first cleaning scan after
//! PooledConnectionIdleTimeout (60 s) instead of exactly MaxServicePointIdleTime (100 s)
//! after their last call, PooledConnectionLifetime turning connections over, ConnectTimeout
//! failing calls against a slow-to-connect backend, the client following the runtime, and
//! the other client's settings refused.

mod common;

use common::*;

/// A burst of 20 simultaneous calls at 1 s, then silence: 20 connections, all idle from
/// ≈1.05 s on. TIME_WAIT (240 s) outlasts the run, so `Ports In TIME_WAIT` counts every
/// connection this side closed.
fn burst_then_silence(runtime: &str) -> String {
    format!(
        r#"
name = "burst-then-silence"
duration = "200s"
[load]
rate = "0/s"
bursts = [ {{ at = "1s", count = 20 }} ]
[[classes]]
name = "caller"
handler = "async"
steps = [ {{ call = "svc" }} ]
[[backends]]
name = "svc"
latency = "const(50ms)"
connect_time = "const(1ms)"
[thread_pool]
runtime = "{runtime}"
"#
    )
}

const TW: &str = "w3sim\\Ports In TIME_WAIT";

#[test]
fn idle_connections_close_at_the_first_scan_after_60_s_on_net6_and_100_s_after_their_last_call_on_net48()
 {
    // net6 → SocketsHttpHandler. The cleaning timer starts with the first call (1 s) and
    // scans every 60 s / 4 = 15 s: at 61 s the connections have been idle 59.95 s (not
    // longer than 60 s), so the 76 s scan closes all 20 — not at 61.05 s, and within one
    // scan period after it.
    let (s, ts) = run_series(&load_text(&burst_then_silence("net6"), &[]));
    let o = &s.outgoing;
    assert_eq!((o.calls, o.ok, o.connections_opened), (20, 20, 20), "{o:?}");
    for t in [30.0, 60.0, 62.0, 70.0, 75.0] {
        assert_eq!(at(&ts, TW, t), 0.0, "nothing closed by {t} s");
    }
    for t in [77.0, 100.0, 150.0] {
        assert_eq!(
            at(&ts, TW, t),
            20.0,
            "all 20 closed by the 76 s scan ({t} s)"
        );
    }
    assert_eq!((o.connections_closed, o.connections_closed_idle), (20, 20));

    // net48 → ServicePoint: each closes exactly 100 s after its last call (1.051 s).
    let (s, ts) = run_series(&load_text(&burst_then_silence("net48"), &[]));
    assert_eq!(s.outgoing.connections_opened, 20);
    for t in [60.0, 77.0, 100.0] {
        assert_eq!(at(&ts, TW, t), 0.0, "ServicePoint: nothing closed by {t} s");
    }
    for t in [102.0, 150.0] {
        assert_eq!(at(&ts, TW, t), 20.0, "ServicePoint: all closed at 101.05 s");
    }

    // The client, not the runtime, decides: a net6 application with ServicePoint settings
    // (connections.client) behaves like net48, and net48 with SocketsHttpHandler like net6.
    let (_, ts) = run_series(&load_text(
        &burst_then_silence("net6"),
        &["connections.client=service_point"],
    ));
    assert_eq!((at(&ts, TW, 100.0), at(&ts, TW, 102.0)), (0.0, 20.0));
    let (_, ts) = run_series(&load_text(
        &burst_then_silence("net48"),
        &["connections.client=sockets_http_handler"],
    ));
    assert_eq!((at(&ts, TW, 75.0), at(&ts, TW, 77.0)), (0.0, 20.0));

    // .NET Core 2.1–5's 120 s: scans every 30 s (31, 61, 91, 121 s: idle 119.95 s at 121 s),
    // so 151 s.
    let (_, ts) = run_series(&load_text(
        &burst_then_silence("net6"),
        &["connections.pooled_connection_idle_timeout=120s"],
    ));
    assert_eq!((at(&ts, TW, 150.0), at(&ts, TW, 152.0)), (0.0, 20.0));
}

/// `rate` calls a second of 50 ms each for `duration`, on .NET 6.
fn steady(rate: &str, duration: &str, connect_time: &str, extra: &str) -> String {
    format!(
        r#"
name = "steady"
duration = "{duration}"
[load]
rate = "{rate}"
arrivals = "constant"
[[classes]]
name = "caller"
handler = "async"
steps = [ {{ call = "svc", timeout = "10s" }} ]
[[backends]]
name = "svc"
latency = "const(50ms)"
connect_time = "{connect_time}"
[thread_pool]
runtime = "net6"
[connections]
{extra}
"#
    )
}

#[test]
fn pooled_connection_lifetime_turns_the_pool_over_and_is_off_by_default() {
    // 100 calls/s of 50 ms: a pool of about 5–6 connections, kept for the whole run.
    let (base, _) = run_series(&load_text(&steady("100/s", "120s", "const(1ms)", ""), &[]));
    let n = base.outgoing.connections_opened;
    assert!((5..=8).contains(&n), "pool of {n}");
    // No lifetime by default: only a spare connection left idle past 60 s (LIFO reuse
    // keeps the most recent ones busy) may close.
    assert_eq!(
        base.outgoing.connections_closed_lifetime, 0,
        "no lifetime by default"
    );
    assert!(base.outgoing.connections_closed <= 1, "{:?}", base.outgoing);
    assert_eq!(
        base.outgoing.connections_closed,
        base.outgoing.connections_closed_idle
    );

    // A 10 s lifetime: each connection is replaced after ~10 s, about 120 / 10 × n opens.
    let (s, ts) = run_series(&load_text(
        &steady(
            "100/s",
            "120s",
            "const(1ms)",
            "pooled_connection_lifetime = \"10s\"",
        ),
        &[],
    ));
    let o = &s.outgoing;
    let expected = 120.0 / 10.0 * n as f64;
    assert!(
        (o.connections_opened as f64) > 0.85 * expected
            && (o.connections_opened as f64) < 1.15 * expected + n as f64,
        "{} connections opened, expected ≈ {expected}",
        o.connections_opened
    );
    assert_eq!(o.connections_closed, o.connections_closed_lifetime);
    assert!(o.connections_opened - o.connections_closed <= n + 1);
    // Every turned-over connection holds its port in TIME_WAIT (240 s > the run), growing
    // by about n every 10 s.
    let tw_end = at(&ts, TW, 120.0);
    assert_eq!(tw_end, o.connections_closed as f64);
    let tw_60 = at(&ts, TW, 60.0);
    assert!(
        (tw_60 - 5.0 * n as f64).abs() <= n as f64 + 1.0,
        "{tw_60} ports in TIME_WAIT at 60 s"
    );
    assert_eq!(o.ok, base.outgoing.ok, "turning over costs no call");
}

#[test]
fn connect_timeout_fails_every_call_at_exactly_its_time_and_leaves_no_time_wait() {
    // The backend takes 3 s to accept a connection; ConnectTimeout 1 s.
    let (s, ts) = run_series(&load_text(
        &steady("10/s", "30s", "const(3s)", "connect_timeout = \"1s\""),
        &[],
    ));
    let o = &s.outgoing;
    assert_eq!(o.ok, 0);
    assert!(o.errors >= 280, "{o:?}");
    assert_eq!(
        o.errors, o.connect_timeouts,
        "every failure is a ConnectTimeout"
    );
    assert_eq!(o.timeouts, 0);
    assert_eq!(o.connections_opened, 0);
    assert_eq!(
        o.peak_ports_time_wait, 0,
        "half-open sockets leave no TIME_WAIT"
    );
    // Requests fail with the call's outcome (one whose call failed at the run's last
    // instant is still on its way out).
    assert!(o.errors - outcome(&s, "outgoing_error") <= 1);
    // Each call fails 1 s after it began, so 10 are in flight.
    let in_flight = at(&ts, "w3sim\\Outgoing Calls In Flight", 20.0);
    assert!(
        (9.0..=11.0).contains(&in_flight),
        "{in_flight} calls in flight"
    );
    assert!(
        s.limits
            .iter()
            .any(|l| l.limit == "connections.connect_timeout")
    );

    // Pages that go on without the call's result (on_call_failure = degrade) take exactly
    // the 1 s the call took to fail.
    let (s, _) = run_series(&load_text(
        &steady("10/s", "30s", "const(3s)", "connect_timeout = \"1s\""),
        &["classes[0].on_call_failure=degrade"],
    ));
    let l = &s.latency_ms.all;
    assert!(l.count >= 280, "{l:?}");
    assert!(l.p50 >= 1000.0 && l.max <= 1001.0, "{l:?}");
    assert_eq!(s.outgoing.peak_ports_time_wait, 0);

    // A connect shorter than ConnectTimeout: nothing fails.
    let (s, _) = run_series(&load_text(
        &steady("10/s", "30s", "const(500ms)", "connect_timeout = \"1s\""),
        &[],
    ));
    assert_eq!((s.outgoing.errors, s.outgoing.connect_timeouts), (0, 0));
    assert!(s.outgoing.ok >= 290, "{:?}", s.outgoing);

    // ConnectTimeout is infinite by default: the 3 s connects complete.
    let (s, _) = run_series(&load_text(&steady("10/s", "30s", "const(3s)", ""), &[]));
    assert_eq!((s.outgoing.errors, s.outgoing.connect_timeouts), (0, 0));
    assert!(s.outgoing.ok > 250, "{:?}", s.outgoing);
}

#[test]
fn max_connections_per_server_queues_the_excess_calls() {
    // 30 calls/s of 50 ms at random: 1.5 connections busy on average, more at peaks; 2
    // are allowed: calls queue (FIFO), the limit is reported, never more than 2 are opened.
    let poisson = ["load.arrivals=poisson"];
    let (s, _) = run_series(&load_text(
        &steady(
            "30/s",
            "60s",
            "const(1ms)",
            "max_connections_per_server = 2",
        ),
        &poisson,
    ));
    assert_eq!(s.outgoing.connections_opened, 2);
    assert!(s.outgoing.ok > 1700, "{:?}", s.outgoing);
    assert!(s.outgoing.first_connection_wait_s.is_some());
    // Without the limit: more connections, no wait.
    let (free, _) = run_series(&load_text(
        &steady("30/s", "60s", "const(1ms)", ""),
        &poisson,
    ));
    assert!(free.outgoing.connections_opened > 2, "{:?}", free.outgoing);
    assert_eq!(free.outgoing.first_connection_wait_s, None);
    assert!(
        s.limits
            .iter()
            .any(|l| l.limit == "connections.max_connections"),
        "{:?}",
        s.limits
    );
    // backends[].max_connections still wins.
    let (s, _) = run_series(&load_text(
        &steady(
            "10/s",
            "60s",
            "const(1ms)",
            "max_connections_per_server = 2",
        ),
        &["load.arrivals=poisson", "backends[0].max_connections=1"],
    ));
    assert_eq!(s.outgoing.connections_opened, 1);
}

#[test]
fn the_client_follows_the_runtime_and_check_says_which() {
    use w3sim::scenario::ConnectionClient;
    let net48 = load_text(&burst_then_silence("net48"), &[]);
    let net6 = load_text(&burst_then_silence("net6"), &[]);
    assert_eq!(net48.connection_client(), ConnectionClient::ServicePoint);
    assert_eq!(
        net6.connection_client(),
        ConnectionClient::SocketsHttpHandler
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b.toml");
    std::fs::write(&file, burst_then_silence("net6")).unwrap();
    let out = w3sim_ok(["check".as_ref(), file.as_os_str()]);
    assert!(
        out.contains("HttpClient / SocketsHttpHandler")
            && out.contains("the default for thread_pool.runtime = net6")
            && out.contains("PooledConnectionIdleTimeout 1m (a cleaning scan every 15s")
            && out.contains("svc: unlimited connections (MaxConnectionsPerServer)"),
        "{out}"
    );
    let file48 = dir.path().join("b48.toml");
    std::fs::write(&file48, burst_then_silence("net48")).unwrap();
    let out = w3sim_ok([
        "check".as_ref(),
        file48.as_os_str(),
        "--set".as_ref(),
        "connections.default_connection_limit=10".as_ref(),
    ]);
    assert!(
        out.contains("HttpWebRequest / ServicePoint")
            && out.contains("MaxServicePointIdleTime 100s")
            && out.contains("svc: 10 connections (DefaultConnectionLimit)"),
        "{out}"
    );
    // The run's scenario.toml loads again as it is (the client stays implicit).
    let again = w3sim::scenario::load::load_str("again.toml", &net6.to_toml(), &[]).unwrap();
    assert_eq!(again, net6);
}

#[test]
fn the_other_clients_settings_are_refused_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b.toml");
    std::fs::write(&file, burst_then_silence("net6")).unwrap();
    let f = file.to_str().unwrap();
    // --set of a ServicePoint key on net6, of a SocketsHttpHandler key on net48.
    for (sets, key, hint) in [
        (
            vec!["connections.max_service_point_idle_time=50s"],
            "connections.max_service_point_idle_time",
            "connections.pooled_connection_idle_timeout",
        ),
        (
            vec!["connections.default_connection_limit=10"],
            "connections.default_connection_limit",
            "connections.max_connections_per_server",
        ),
        (
            vec!["connections.connection_lease_timeout=1m"],
            "connections.connection_lease_timeout",
            "connections.pooled_connection_lifetime",
        ),
        (
            vec![
                "thread_pool.runtime=net48",
                "connections.pooled_connection_lifetime=1m",
            ],
            "connections.pooled_connection_lifetime",
            "connections.connection_lease_timeout",
        ),
        (
            vec![
                "connections.client=service_point",
                "connections.connect_timeout=5s",
            ],
            "connections.connect_timeout",
            "connections.client=sockets_http_handler",
        ),
    ] {
        let mut args = vec!["check", f];
        for s in &sets {
            args.extend(["--set", s]);
        }
        let (code, _, err) = w3sim_exit(&args);
        assert_eq!(code, Some(2), "{sets:?}: {err}");
        assert!(
            err.contains(&format!("error in `{key}`"))
                && err.contains("has no effect")
                && err.contains(hint),
            "{sets:?}: {err}"
        );
    }
    // In the file: its line and column.
    let text =
        burst_then_silence("net6") + "[connections]\nmax_service_point_idle_time = \"50s\"\n";
    std::fs::write(&file, &text).unwrap();
    let (code, _, err) = w3sim_exit(&["check", f]);
    let line = text.lines().count();
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!("b.toml:{line}:"))
            && err.contains("error in `connections.max_service_point_idle_time`"),
        "{err}"
    );
    // Made moot by an override of the runtime, it is not a mistake: it runs.
    let (code, _, err) = w3sim_exit(&["check", f, "--set", "thread_pool.runtime=net48"]);
    assert_eq!(code, Some(0), "{err}");
    // A misspelt new key gets a suggestion.
    let (code, _, err) = w3sim_exit(&[
        "check",
        f,
        "--set",
        "thread_pool.runtime=net48",
        "--set",
        "connections.pooled_connection_idle_timeot=1m",
    ]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("did you mean `pooled_connection_idle_timeout`?"),
        "{err}"
    );
}
