//! The validation suite: with every other mechanism switched off, w3sim's pipeline is
//! a textbook queue and must reproduce its exact results.
//!
//! Each check runs 10 independent replications of a shipped scenario under
//! `experiments/validation/` and requires the exact value to lie inside the 99.9 %
//! confidence interval of the replication mean (Student t, 9 degrees of freedom), with
//! the interval narrower than a stated fraction of the exact value so that a wrong
//! model cannot pass by noise. The last tests run deliberately wrong models (a queue
//! one slot short, LIFO service) and assert that the same checks reject them.

mod common;

use common::*;
use w3sim::analytic;
use w3sim::pipeline::Faults;

const REPS: u64 = 10;

fn blocking(s: &w3sim::Summary) -> f64 {
    s.measured.failed as f64 / s.measured.arrived as f64
}

#[test]
fn mmck_blocking_probability_mean_wait_and_queue_length() {
    let scn = load("validation/mmck.toml", &[]);
    let exact = analytic::mmck(380.0, 100.0, 4, 10);
    let runs = replicate(&scn, REPS, Faults::default());
    let b: Vec<f64> = runs.iter().map(blocking).collect();
    assert_check(&check("M/M/4/14 blocking", &b, exact.blocking), 0.03);
    let wq: Vec<f64> = runs.iter().map(|s| s.queue_wait_ms.mean * 1e-3).collect();
    assert_check(&check("M/M/4/14 mean wait", &wq, exact.wq), 0.03);
    let lq: Vec<f64> = runs
        .iter()
        .map(|s| s.gauges["thread_pool.Queue Length"].mean)
        .collect();
    assert_check(&check("M/M/4/14 mean queue length", &lq, exact.lq), 0.03);
    // Never more than K waiting for a thread, never more than c threads.
    assert!(
        runs.iter()
            .all(|s| s.gauges["thread_pool.Thread Count"].peak <= 4)
    );
    assert!(
        runs.iter()
            .all(|s| s.gauges["thread_pool.Queue Length"].peak <= 10)
    );
}

#[test]
fn erlang_c_mean_wait_and_probability_of_waiting() {
    let scn = load("validation/erlang-c.toml", &[]);
    let exact = analytic::erlang_c(144.0, 10.0, 16);
    let runs = replicate(&scn, REPS, Faults::default());
    let wq: Vec<f64> = runs.iter().map(|s| s.queue_wait_ms.mean * 1e-3).collect();
    assert_check(&check("Erlang C mean wait", &wq, exact.wq), 0.06);
    // Median of the wait: P(Wq > t) = C e^{-(cμ-λ)t}; with C = 0.591 > 0.5 the median is
    // t = ln(2C)/(cμ-λ).
    let median = (2.0 * exact.p_wait).ln() / (160.0 - 144.0);
    let p50: Vec<f64> = runs.iter().map(|s| s.queue_wait_ms.p50 * 1e-3).collect();
    assert_check(&check("Erlang C median wait", &p50, median), 0.12);
    assert!(
        runs.iter().all(|s| s.measured.failed == 0),
        "no 503 with a room of 65535"
    );
}

#[test]
fn md1_mean_wait_follows_pollaczek_khinchine() {
    let scn = load("validation/md1.toml", &[]);
    let exact = analytic::mg1(80.0, 0.010, 0.0);
    let runs = replicate(&scn, REPS, Faults::default());
    let wq: Vec<f64> = runs.iter().map(|s| s.queue_wait_ms.mean * 1e-3).collect();
    assert_check(&check("M/D/1 mean wait", &wq, exact.wq), 0.05);
    // The M/M/1 value at the same load (twice as long) is far outside the interval.
    let c = check("M/D/1 vs M/M/1", &wq, analytic::mg1(80.0, 0.010, 1.0).wq);
    assert!(!c.covers());
}

#[test]
fn mm1_fifo_response_time_distribution_is_exponential() {
    let scn = load("validation/mm1.toml", &[]);
    let runs = replicate(&scn, REPS, Faults::default());
    for (q, field) in [(0.50, 0usize), (0.95, 1), (0.99, 2)] {
        let exact = -(1.0f64 - q).ln() / 20.0; // T ~ Exp(μ − λ) = Exp(20/s)
        let xs: Vec<f64> = runs
            .iter()
            .map(|s| {
                [
                    s.latency_ms.all.p50,
                    s.latency_ms.all.p95,
                    s.latency_ms.all.p99,
                ][field]
                    * 1e-3
            })
            .collect();
        assert_check(
            &check(
                &format!("M/M/1 response time p{}", (q * 100.0) as u32),
                &xs,
                exact,
            ),
            0.05,
        );
    }
    let mean: Vec<f64> = runs.iter().map(|s| s.latency_ms.all.mean * 1e-3).collect();
    assert_check(&check("M/M/1 mean response time", &mean, 0.05), 0.05);
}

#[test]
fn closed_loop_matches_the_machine_repairman_model() {
    let scn = load("validation/closed-mmc.toml", &[]);
    let (x, r) = analytic::closed_mmc(50, 1.0, 0.1, 4);
    let runs = replicate(&scn, REPS, Faults::default());
    let xs: Vec<f64> = runs.iter().map(|s| s.measured.throughput_per_s).collect();
    assert_check(&check("closed-loop throughput", &xs, x), 0.02);
    let rs: Vec<f64> = runs.iter().map(|s| s.latency_ms.all.mean * 1e-3).collect();
    assert_check(&check("closed-loop response time", &rs, r), 0.04);
    // Interactive response-time law N = X (R + Z) on every run.
    for s in &runs {
        let n = s.measured.throughput_per_s * (s.latency_ms.all.mean * 1e-3 + 1.0);
        assert!((n - 50.0).abs() / 50.0 < 0.02, "N = X(R+Z) gives {n}");
    }
}

#[test]
fn a_queue_one_slot_short_fails_the_mmck_check() {
    // The wrong model: a total capacity of 13 where the textbook (and the check) says 14.
    let short = load("validation/mmck.toml", &["http_sys.queue_length=13"]);
    let runs = replicate(&short, REPS, Faults::default());
    let b: Vec<f64> = runs.iter().map(blocking).collect();
    let c = check(
        "M/M/4/13 against M/M/4/14",
        &b,
        analytic::mmck(380.0, 100.0, 4, 10).blocking,
    );
    assert!(c.precise(0.03), "the check has power");
    assert!(
        !c.covers(),
        "a queue one slot short must fail the blocking check: {c:?}"
    );
}

#[test]
fn lifo_service_fails_the_response_time_tail_check() {
    let scn = load("validation/mm1.toml", &[]);
    let runs = replicate(&scn, REPS, Faults { lifo_queue: true });
    // LIFO keeps the mean (work-conserving) ...
    let mean: Vec<f64> = runs.iter().map(|s| s.latency_ms.all.mean * 1e-3).collect();
    assert!(check("LIFO mean", &mean, 0.05).covers());
    // ... but not the distribution: its p99 is far from Exp(μ − λ)'s.
    let p99: Vec<f64> = runs.iter().map(|s| s.latency_ms.all.p99 * 1e-3).collect();
    let c = check("LIFO p99", &p99, -(0.01f64).ln() / 20.0);
    assert!(!c.covers(), "LIFO must fail the tail check: {c:?}");
}
