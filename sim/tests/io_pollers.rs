//! `thread_pool.runtime = "net8"` (.NET 7+ on Windows): no IOCP thread pool; the IO
//! completion pollers hand each completion to the worker pool, so an async call's callback
//! waits for a worker thread when the pool is starved, where net6 runs it on an IOCP thread.

mod common;

use common::*;

/// Two worker threads and nothing to add more (no starvation rule, no hill climbing).
/// At 0 s an async request makes a 100 ms outgoing call and gives its thread back; at
/// 10 ms two sync requests block both workers for 1 s; at 500 ms two more queue.
///
/// net6: the call's callback runs on an IOCP thread at ~0.1 s and queues the continuation
/// ahead of the two requests of 500 ms: the first worker freed (~1.01 s) runs it.
/// net8: the callback itself waits for a worker. At ~1.01 s one worker takes it (a
/// high-priority item, ahead of the two queued requests), and the continuation it queues
/// goes behind them: it runs when a worker is freed again, ~2.01 s.
fn starved(runtime: &str, extra: &[&str]) -> w3sim::Summary {
    let text = format!(
        r#"
name = "io-pollers-starved"
seed = 1
duration = "5s"
warmup = "0s"
sample_interval = "100ms"

[load]
rate = "0.001/s"
bursts = [
  {{ at = "0s", count = 1, class = "api" }},
  {{ at = "10ms", count = 2, class = "blocker" }},
  {{ at = "500ms", count = 2, class = "blocker" }},
]

[[classes]]
name = "api"
weight = 0
handler = "async"
steps = [ {{ call = "backend" }}, {{ cpu = "1ms" }} ]

[[classes]]
name = "blocker"
weight = 1
handler = "sync"
steps = [ {{ wait = "1s" }} ]

[[backends]]
name = "backend"
latency = "100ms"

[cpu]
logical_processors = 2
scheduler = "dedicated"

[thread_pool]
runtime = "{runtime}"
min_worker_threads = 2
max_worker_threads = 2
disable_starvation_detection = true
hill_climbing_disable = true
"#
    );
    run(&load_text(&text, extra))
}

fn api_latency_ms(s: &w3sim::Summary) -> f64 {
    let l = &s.latency_ms.classes["api"];
    assert_eq!(l.count, 1, "the one async request completed");
    l.max
}

#[test]
fn net8_async_callbacks_wait_for_a_worker_where_net6_runs_them_on_iocp_threads() {
    let net6 = starved("net6", &[]);
    let net8 = starved("net8", &[]);
    for s in [&net6, &net8] {
        check_conservation(s);
        assert_eq!(s.requests.completed, 5);
        assert_eq!(s.latency_ms.classes["blocker"].count, 4);
    }
    let (a6, a8) = (api_latency_ms(&net6), api_latency_ms(&net8));
    // net6: the continuation waits for the first worker freed (~1.01 s).
    assert!((1000.0..1100.0).contains(&a6), "net6 api latency {a6} ms");
    // net8: one more second — the callback waited for that worker, and the continuation
    // it queued went behind the two requests that arrived at 500 ms.
    assert!((2000.0..2100.0).contains(&a8), "net8 api latency {a8} ms");
    assert!((a8 - a6 - 1000.0).abs() < 5.0, "net6 {a6} ms, net8 {a8} ms");
    // net8 shows the completion that waited in the poller's queue for a worker.
    let waiting = &net8.gauges["thread_pool.IO Completions Waiting"];
    assert_eq!(waiting.peak, 1);
    // It waited ~0.91 s of the 5 s run (0.1 s to 1.01 s): a time-weighted mean of ~0.18.
    assert!(
        (0.17..0.19).contains(&waiting.mean),
        "mean {}",
        waiting.mean
    );
    assert!(
        !net6
            .gauges
            .contains_key("thread_pool.IO Completions Waiting")
    );
}

/// Inline completions (`DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1`): the pollers run
/// the callback themselves, as an IOCP thread would, so net8 is back to net6's latency.
#[test]
fn net8_inline_completions_do_not_wait_for_a_worker() {
    let net6 = starved("net6", &[]);
    let inline = starved("net8", &["thread_pool.inline_io_completions=true"]);
    let (a6, ai) = (api_latency_ms(&net6), api_latency_ms(&inline));
    assert!((ai - a6).abs() < 1.0, "net6 {a6} ms, net8 inline {ai} ms");
    assert_eq!(
        inline.gauges["thread_pool.IO Completion Pollers"].peak, 2,
        "one poller per processor"
    );
}

fn io_threads_and_pollers(runtime: &str, cpus: u32) -> (Vec<f64>, u64) {
    let text = format!(
        r#"
name = "io-pollers-count"
seed = 3
duration = "3s"
warmup = "0s"
sample_interval = "500ms"

[load]
rate = "200/s"

[[classes]]
name = "api"
handler = "async"
steps = [ {{ cpu = "200us" }}, {{ call = "backend" }}, {{ cpu = "200us" }} ]

[[backends]]
name = "backend"
latency = "exp(20ms)"

[cpu]
logical_processors = {cpus}

[thread_pool]
runtime = "{runtime}"
"#
    );
    let (s, ts) = run_series(&load_text(&text, &[]));
    assert!(s.requests.completed > 400, "{}", s.requests.completed);
    let io = col(&ts, "w3sim\\IO Completion Threads");
    let pollers = s
        .gauges
        .get("thread_pool.IO Completion Pollers")
        .map_or(0, |g| g.peak);
    (io, pollers)
}

#[test]
fn net8_creates_no_iocp_thread_and_one_poller_per_12_processors() {
    for (cpus, want) in [(1, 1), (2, 1), (12, 1), (13, 2), (24, 2), (25, 3), (48, 4)] {
        let (io, pollers) = io_threads_and_pollers("net8", cpus);
        assert!(
            io.iter().all(|&n| n == 0.0),
            "{cpus} processors: IOCP threads {io:?}"
        );
        assert_eq!(pollers, want, "{cpus} processors");
    }
    // The same load on net6 does use IOCP threads (and has no pollers).
    let (io, pollers) = io_threads_and_pollers("net6", 2);
    assert!(io.iter().any(|&n| n > 0.0), "{io:?}");
    assert_eq!(pollers, 0);
}

#[test]
fn net8_processors_per_io_poller_and_ports_set_the_poller_count() {
    let base = |sets: &[&str]| {
        let mut s = load_text(
            "name = \"p\"\nduration = \"2s\"\nwarmup = \"0s\"\n[load]\nrate = \"100/s\"\n\
             [[classes]]\nname = \"a\"\nhandler = \"async\"\nsteps = [ { wait = \"10ms\" } ]\n\
             [cpu]\nlogical_processors = 16\n[thread_pool]\nruntime = \"net8\"\n",
            sets,
        );
        s.seed = 5;
        run(&s).gauges["thread_pool.IO Completion Pollers"].peak
    };
    assert_eq!(base(&[]), 2);
    assert_eq!(base(&["thread_pool.processors_per_io_poller=4"]), 4);
    assert_eq!(base(&["thread_pool.io_completion_ports=3"]), 3);
    assert_eq!(
        base(&[
            "thread_pool.processors_per_io_poller=3",
            "thread_pool.io_completion_ports=4"
        ]),
        8
    );
}

/// A net8 run conserves requests and is deterministic: the shipped experiment, twice.
#[test]
fn net8_run_conserves_requests_and_repeats_exactly() {
    let scn = load("net8-io-pollers.toml", &["duration=\"40s\""]);
    assert_eq!(scn.thread_pool.runtime, w3sim::scenario::Runtime::Net8);
    let a = run(&scn);
    let b = run(&scn);
    check_conservation(&a);
    assert!(a.requests.completed > 1000);
    let json = |s: &w3sim::Summary| {
        let mut v = serde_json::to_value(s).unwrap();
        v.as_object_mut().unwrap().remove("wall_seconds");
        v.as_object_mut().unwrap().remove("events_per_second");
        v.to_string()
    };
    assert_eq!(json(&a), json(&b), "same seed, same summary");
    let mut other = scn.clone();
    other.seed += 1;
    assert_ne!(json(&a), json(&run(&other)), "another seed, another run");
}

/// The IOCP settings are accepted in a net8 file (the runtime keeps SetMinThreads' IO
/// value as `_legacy_minIOCompletionThreads`) but change nothing; an override of one is
/// refused (as every override that would change nothing), and an override of a net8
/// setting on another runtime likewise.
#[test]
fn iocp_settings_are_legacy_on_net8_and_poller_settings_moot_elsewhere() {
    let text = "name = \"m\"\n[[classes]]\nname = \"a\"\nservice = \"1ms\"\n\
                [thread_pool]\nruntime = \"net8\"\nmin_io_threads = 50\n";
    let s = load_text(text, &[]);
    assert_eq!(s.thread_pool.min_io_threads, 50, "accepted as written");
    let mut without = s.clone();
    without.thread_pool.min_io_threads = 0;
    let strip = |s: w3sim::Summary| {
        let mut v = serde_json::to_value(s).unwrap();
        v.as_object_mut().unwrap().remove("wall_seconds");
        v.as_object_mut().unwrap().remove("scenario");
        v.to_string()
    };
    assert_eq!(strip(run(&s)), strip(run(&without)), "and changes nothing");
    let o: Vec<String> = vec!["thread_pool.max_io_threads=100".into()];
    let e = w3sim::scenario::load::load_str("m.toml", text, &o)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("thread_pool.max_io_threads") && e.contains("no effect"),
        "{e}"
    );
    let text6 = text.replace("net8", "net6");
    let o: Vec<String> = vec!["thread_pool.processors_per_io_poller=4".into()];
    let e = w3sim::scenario::load::load_str("m.toml", &text6, &o)
        .unwrap_err()
        .to_string();
    assert!(e.contains("net8"), "{e}");
    // Switching the runtime makes the file's IOCP value moot, not a mistake.
    let s = load_text(&text6, &["thread_pool.runtime=\"net8\""]);
    assert_eq!(s.thread_pool.runtime, w3sim::scenario::Runtime::Net8);
}

#[test]
fn bad_runtime_lists_net8_and_net8_uses_sockets_http_handler() {
    let text = "name = \"r\"\n[[classes]]\nname = \"a\"\nservice = \"1ms\"\n\
                [thread_pool]\nruntime = \"net7\"\n";
    let e = w3sim::scenario::load::load_str("r.toml", text, &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("net48") && e.contains("net6") && e.contains("net8"),
        "{e}"
    );
    let s = load_text(&text.replace("net7", "net8"), &[]);
    assert_eq!(
        s.connection_client(),
        w3sim::scenario::ConnectionClient::SocketsHttpHandler
    );
    let defaults = w3sim_ok(["show-defaults"]);
    assert!(
        defaults.contains("net48 | net6 | net8")
            && defaults.contains("thread_pool.processors_per_io_poller = 12"),
        "{defaults}"
    );
}

#[test]
fn check_describes_the_pollers() {
    let out = w3sim_ok([
        "check".into(),
        experiment("net8-io-pollers.toml").into_os_string(),
    ]);
    assert!(
        out.contains("thread pool: net8") && out.contains("1 IO completion poller thread"),
        "{out}"
    );
}
