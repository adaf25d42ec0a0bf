//! Loopback traffic through AFD's delayed worker threads and a filter driver's lock
//! (seeds 000, 002; issue 6 — the pipeline wiring; the seed's full scenario is to come).

mod common;

use common::*;
use w3sim::scenario::load::load_str;

fn site(extra: &[&str]) -> (w3sim::Summary, w3sim::output::MemorySink) {
    let text = r#"
duration = "120s"
sample_interval = "1s"
[load]
rate = "200/s"
[[classes]]
name = "remote"
handler = "sync"
service = "exp(2ms)"
[[classes]]
name = "probe"
origin = "local"
rate = "1/s"
handler = "sync"
service = "const(1ms)"
probe = { timeout = "2s", failover_after = 3 }
[cpu]
logical_processors = 8
"#;
    let o: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    run_series(&load_str("loopback.toml", text, &o).unwrap())
}

/// A filter driver whose items need the lock 1.2× as often as it can be held.
const CONTENTION: [&str; 2] = ["afd.filter_items=1200/s", "afd.filter_lock_hold=1ms"];

#[test]
fn a_saturated_filter_lock_stalls_loopback_and_fails_the_probe_over_while_remote_clients_are_fine()
{
    let (calm, _) = site(&[]);
    assert_eq!(calm.failovers, 0);
    assert!(calm.latency_ms.classes["probe"].p99 < 50.0);

    let (s, ts) = site(&CONTENTION);
    assert!(
        s.failovers >= 1,
        "probes time out and the service fails over: {}",
        s.failovers
    );
    assert!(s.probe_timeouts >= 3);
    assert!(s.marked_events.iter().any(|e| e.kind == "failover"));
    // Every worker ends up waiting on the lock; loopback items queue.
    let waiting = col(&ts, "w3sim\\Delayed Workers Waiting On Lock");
    assert!(waiting.iter().cloned().fold(0.0, f64::max) >= 15.0);
    // Remote requests do not take this path.
    let remote = s.latency_ms.classes["remote"].p99;
    assert!(
        remote < 2.0 * calm.latency_ms.classes["remote"].p99 + 5.0,
        "remote p99 {remote} ms"
    );
}

#[test]
fn more_delayed_workers_do_not_help_while_the_lock_is_the_bottleneck() {
    let mut o = CONTENTION.to_vec();
    o.push("afd.additional_delayed_worker_threads=16");
    let (s, _) = site(&o);
    assert!(
        s.failovers >= 1,
        "AdditionalDelayedWorkerThreads did not help (seed 000)"
    );
}

#[test]
fn the_loopback_fast_path_removes_the_stall_unless_a_wfp_callout_is_present() {
    let mut fast = CONTENTION.to_vec();
    fast.push("afd.loopback_fast_path=true");
    let (s, _) = site(&fast);
    assert_eq!(
        s.failovers, 0,
        "the fast path skips AFD's work items (seed 002)"
    );
    fast.push("afd.wfp_callout_present=true");
    let (w, _) = site(&fast);
    assert!(
        w.failovers >= 1,
        "with a WFP callout the fast path silently does not apply"
    );
}

#[test]
fn a_full_nic_ring_discards_frames_and_the_retransmission_shows_as_latency() {
    // 2 queues × 32 descriptors, 200 µs of DPC per frame: ~10,000 frames/s drained;
    // 20,000/s offered overflows the rings.
    let text = r#"
duration = "20s"
[load]
rate = "20000/s"
[[classes]]
name = "remote"
service = "const(100us)"
[cpu]
logical_processors = 8
[nic]
enabled = true
number_of_receive_queues = 2
receive_buffers = 32
dpc_cpu_per_packet = "200us"
[thread_pool]
min_worker_threads = 64
"#;
    let (s, _) = run_series(&load_str("nic.toml", text, &[]).unwrap());
    assert!(
        s.packets_received_discarded > 1000,
        "{}",
        s.packets_received_discarded
    );
    assert!(
        s.latency_ms.all.max >= 3000.0,
        "a discarded frame costs the 3 s RTO: {}",
        s.latency_ms.all.max
    );
    let quiet = text.replace("20000/s", "2000/s");
    let (q, _) = run_series(&load_str("nic.toml", &quiet, &[]).unwrap());
    assert_eq!(q.packets_received_discarded, 0);
}

fn seed000(o: &[&str]) -> w3sim::Summary {
    run_series(&load("loopback-afd-firewall.toml", o)).0
}

#[test]
fn seed_000_the_cpu_burst_and_the_drivers_lock_fail_the_probe_over_and_only_the_right_fixes_help() {
    let s = seed000(&[]);
    assert!(
        s.incidents.iter().any(|i| i.kind == "loopback_stalled"),
        "explain names the loopback stall"
    );
    assert!(
        s.failovers >= 1,
        "the local probe times out and fails over: {}",
        s.failovers
    );
    assert_eq!(s.requests.failed, 0, "remote clients are fine");
    let calm = seed000(&["cpu.noise=[]"]);
    assert_eq!(calm.failovers, 0, "without the burst: no failover");
    assert!(
        (s.latency_ms.classes["remote"].p50 - calm.latency_ms.classes["remote"].p50).abs() < 1.0
    );
    assert_eq!(
        seed000(&["afd.filter_items=0/s"]).failovers,
        0,
        "removing the driver's contention fixed it"
    );
    assert!(
        seed000(&["afd.additional_delayed_worker_threads=16"]).failovers >= 1,
        "more workers did not help"
    );
    assert_eq!(
        seed000(&["afd.loopback_fast_path=true"]).failovers,
        0,
        "the fast path (seed 002)"
    );
    assert!(
        seed000(&[
            "afd.loopback_fast_path=true",
            "afd.wfp_callout_present=true"
        ])
        .failovers
            >= 1,
        "not with a WFP callout"
    );
    // DOMAIN §2.1 ⚠: the work-item path is seed 000's Windows Server 2003; on a stack
    // where loopback does not take it, nothing waits on the driver's lock.
    assert_eq!(
        seed000(&["afd.loopback_work_items=false"]).failovers,
        0,
        "without the work-item path"
    );
    // The option is per socket and needs both ends: a probe whose client does not set it
    // keeps the work-item path, and the service still fails over.
    assert!(
        seed000(&[
            "afd.loopback_fast_path=true",
            "classes[1].loopback_fast_path=false"
        ])
        .failovers
            >= 1,
        "not for a client that does not opt in"
    );
}

#[test]
fn calls_to_a_local_service_cross_afd_too() {
    let text = r#"
duration = "30s"
[load]
rate = "100/s"
[[classes]]
name = "page"
handler = "async"
steps = [ { call = "local-api", timeout = "2s" } ]
[[backends]]
name = "local-api"
latency = "const(2ms)"
loopback = true
[cpu]
logical_processors = 8
"#;
    let calm = run_series(&load_str("l.toml", text, &[]).unwrap()).0;
    assert_eq!(calm.outgoing.timeouts, 0);
    let o: Vec<String> = CONTENTION.iter().map(|s| s.to_string()).collect();
    let (stalled, _) = run_series(&load_str("l.toml", text, &o).unwrap());
    assert!(
        stalled.outgoing.timeouts > 100,
        "the saturated lock stalls loopback calls: {:?}",
        stalled.outgoing
    );
    // The fast path needs both ends: the backend's side (afd) alone leaves HttpWebRequest's
    // sockets, which do not set it (the default), on the work items; both ends skip them.
    let mut fast = o.clone();
    fast.push("afd.loopback_fast_path=true".into());
    let (half, _) = run_series(&load_str("l.toml", text, &fast).unwrap());
    assert!(half.outgoing.timeouts > 100, "{:?}", half.outgoing);
    fast.push("backends[0].loopback_fast_path=true".into());
    let (f, _) = run_series(&load_str("l.toml", text, &fast).unwrap());
    assert_eq!(f.outgoing.timeouts, 0, "{:?}", f.outgoing);
}

/// Seed 000's loopback `Output Queue Length`, "dramatically increasing and then dropping
/// down to 0 and then dramatically increase again": repeated CPU bursts against a busy
/// driver lock raise it during each burst and let it drain between them; without the
/// driver it falls to 0 as each burst ends; on the fast path it never rises.
#[test]
fn seed_000_the_loopback_output_queue_rises_and_falls_with_repeated_bursts() {
    let q = |o: &[&str]| {
        let (s, ts) = run_series(&load("loopback-afd-repeated-bursts.toml", o));
        let t = col(&ts, "time_s");
        let olq = col(
            &ts,
            "Network Interface(MS TCP Loopback interface)\\Output Queue Length",
        );
        (s, t, olq)
    };
    // Rises: the counter crosses 100 going up; falls: it comes back under half its peak.
    let swings = |olq: &[f64]| {
        let (mut n, mut up, mut peak) = (0, false, 0.0f64);
        for &x in olq {
            if !up && x > 100.0 {
                (up, peak, n) = (true, x, n + 1);
            } else if up {
                peak = peak.max(x);
                if x < peak / 2.0 {
                    up = false;
                }
            }
        }
        n
    };
    // Both in one run, as in the seed: the counter is back at 0 before each next burst (and
    // before the end), and the probe fails over.
    let (s, t, olq) = q(&[]);
    assert!(swings(&olq) >= 4, "{olq:?}");
    assert!(s.failovers >= 1, "{}", s.failovers);
    for (end, next) in [(65.0, 85.0), (90.0, 110.0), (115.0, 135.0), (140.0, 160.0)] {
        assert!(
            t.iter()
                .zip(&olq)
                .any(|(&x, &v)| x > end && x <= next && v == 0.0),
            "not back at 0 between {end} s and {next} s: {olq:?}"
        );
    }
    let (calm, t, olq) = q(&["afd.filter_items=0/s"]);
    assert!(swings(&olq) >= 4, "{olq:?}");
    assert_eq!(calm.failovers, 0);
    for burst_end in [65.0, 90.0, 115.0, 140.0] {
        let i = t.iter().position(|&x| x >= burst_end + 1.0).unwrap();
        assert_eq!(
            olq[i], 0.0,
            "1 s after the burst ending at {burst_end} s: {olq:?}"
        );
    }
    let (fast, _, olq) = q(&["afd.loopback_fast_path=true"]);
    assert!(olq.iter().all(|&x| x == 0.0));
    assert_eq!(fast.failovers, 0);
}

/// A probe times out at its deadline, answered or not, as the prober's own timer does: with
/// no delayed worker at all no probe is ever answered, and still every one counts (they
/// counted only when answered late, so none did and nothing failed over).
#[test]
fn a_probe_that_is_never_answered_times_out_at_its_deadline() {
    let s = seed000(&["afd.max_dynamic_workers=0"]);
    assert!(s.requests.in_flight >= 100, "{:?}", s.requests);
    // Every probe still in flight has timed out, but those of the last 3 s (~1 a second).
    let pending = s.requests.in_flight - s.probe_timeouts;
    assert!(
        pending <= 8,
        "{} in flight, {} timeouts",
        s.requests.in_flight,
        s.probe_timeouts
    );
    assert_eq!(s.failovers, s.probe_timeouts / 8);
    // The first failover comes at the 8th probe's deadline: ~8 s of probes + 3 s.
    let first = s
        .marked_events
        .iter()
        .find(|e| e.kind == "failover")
        .expect("a failover")
        .at_s;
    assert!((5.0..20.0).contains(&first), "{first}");
}
