//! The site's connection limit (`sites/site/limits/@maxConnections`, DOMAIN §3.2): a
//! request that needs a connection while the site has that many in use gets 503 ConnLimit
//! from HTTP.SYS. With one connection per request in flight it is a loss system exactly
//! like `queueLength` under KB 816995's accounting, so the M/M/c/K reduction holds; idle
//! kept-alive connections count in `Web Service\Current Connections` but carry requests
//! without taking more; a balancer takes a server answering ConnLimit out.

mod common;

use common::*;
use w3sim::analytic;
use w3sim::pipeline::Faults;

#[test]
fn a_connection_limit_is_the_same_loss_system_as_the_in_flight_queue_length() {
    // The M/M/4/14 reduction with its capacity moved from queueLength to maxConnections:
    // the same seed refuses exactly the same requests, now for ConnLimit.
    let by_queue = run(&load("validation/mmck.toml", &[]));
    let by_conns = run(&load(
        "validation/mmck.toml",
        &["http_sys.queue_length=1000", "http_sys.max_connections=14"],
    ));
    check_conservation(&by_conns);
    let refused = outcome(&by_queue, "503_queue_full");
    assert!(refused > 1000, "{:?}", by_queue.outcomes);
    assert_eq!(outcome(&by_conns, "503_conn_limit"), refused);
    assert_eq!(outcome(&by_conns, "503_queue_full"), 0);
    assert_eq!(by_conns.latency_ms.all, by_queue.latency_ms.all);
    let g = &by_conns.gauges["http_sys.Current Connections"];
    assert_eq!((g.peak, g.limit), (14, Some(14)));
    assert_eq!(
        by_conns.first_limit.as_ref().map(|l| l.limit.as_str()),
        Some("http_sys.max_connections")
    );

    // And against the exact M/M/4/14 blocking probability, over 10 replications.
    let scn = load(
        "validation/mmck.toml",
        &["http_sys.queue_length=1000", "http_sys.max_connections=14"],
    );
    let exact = analytic::mmck(380.0, 100.0, 4, 10);
    let b: Vec<f64> = replicate(&scn, 10, Faults::default())
        .iter()
        .map(|s| outcome(s, "503_conn_limit") as f64 / s.requests.arrived as f64)
        .collect();
    assert_check(
        &check("M/M/4/14 ConnLimit blocking", &b, exact.blocking),
        0.03,
    );
}

#[test]
fn kept_alive_connections_count_but_carry_requests_without_taking_more() {
    let text = r#"
name = "keep-alive"
duration = "60s"
[load]
rate = "100/s"
[[classes]]
name = "page"
handler = "async"
steps = [ { wait = "exp(50ms)" } ]
[tcp]
incoming_keep_alive_connections = 40
[http_sys]
max_connections = 30
"#;
    // 40 clients keep connections open, but the site accepts 30 of them; ~5 requests in
    // flight ride them: the site shows 30 connections and refuses nothing.
    let (s, sink) = run_series(&load_text(text, &[]));
    assert_eq!(outcome(&s, "503_conn_limit"), 0);
    let conns = col(&sink, "Web Service\\Current Connections");
    assert!(conns.iter().all(|&c| c == 30.0), "{conns:?}");
    // One connection per request: the gauge follows the requests in flight (L = 5).
    let (s, _) = run_series(&load_text(text, &["tcp.incoming_keep_alive=false"]));
    let g = &s.gauges["http_sys.Current Connections"];
    assert!((g.mean - 5.0).abs() < 0.5, "{g:?}");
    assert_eq!(g.mean, s.gauges["w3sim.Requests In Flight"].mean);
    // With a limit of 3, a request that finds 3 in flight is refused.
    let s = run(&load_text(
        text,
        &[
            "tcp.incoming_keep_alive=false",
            "http_sys.max_connections=3",
        ],
    ));
    check_conservation(&s);
    assert!(outcome(&s, "503_conn_limit") > 500, "{:?}", s.outcomes);
    assert!(s.gauges["http_sys.Current Connections"].peak <= 3);
}

#[test]
fn the_balancer_takes_out_a_server_that_answers_conn_limit() {
    let base = experiment("farm-weights.toml");
    let s = run(&load(
        base.to_str().unwrap(),
        &[
            "farm.servers[0].set=[\"cpu.logical_processors=32\",\"thread_pool.min_worker_threads=400\",\"http_sys.max_connections=50\"]",
        ],
    ));
    let farm = s.farm.as_ref().expect("a farm");
    let big = farm
        .servers
        .iter()
        .find(|x| x.name == "big")
        .expect("the big server");
    assert!(
        outcome(&big.summary, "503_conn_limit") > 0,
        "{:?}",
        big.summary.outcomes
    );
    let lb = farm.load_balancer.as_ref().expect("a balancer");
    assert!(lb.removals > 0, "{lb:?}");
}

#[test]
fn a_limit_of_zero_is_refused() {
    let p = experiment("queue-full-burst.toml");
    let (code, _, err) = w3sim_exit(&[
        "check",
        p.to_str().unwrap(),
        "--set",
        "http_sys.max_connections=0",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("http_sys.max_connections"), "{err}");
}
