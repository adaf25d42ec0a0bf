//! Benchmarks (divan): the M/M/16/1000 reduction at ρ = 0.9, a farm of 8 of them, a
//! seed-003 page server and a farm of 8 of those, and the calendar alone.
//! `cargo bench -p w3sim` prints the figures; `w3sim bench` prints requests/s and events/s.

use w3sim::engine::Calendar;

fn main() {
    divan::main();
}

/// 1,000,000 requests through M/M/16/1000 at ρ = 0.9 (the README's figure).
#[divan::bench(sample_count = 5)]
fn mm16_1000_rho09_1m_requests(b: divan::Bencher) {
    b.counter(divan::counter::ItemsCount::new(1_000_000usize))
        .bench(|| w3sim::bench::run_mm16(0.9, 1_000_000, 42));
}

/// 100,000 requests, the same model, for quick comparisons.
#[divan::bench(sample_count = 20)]
fn mm16_1000_rho09_100k_requests(b: divan::Bencher) {
    b.counter(divan::counter::ItemsCount::new(100_000usize))
        .bench(|| w3sim::bench::run_mm16(0.9, 100_000, 42));
}

/// The calendar alone: a hold model with 1000 pending events.
#[divan::bench]
fn calendar_hold_1000(b: divan::Bencher) {
    b.counter(divan::counter::ItemsCount::new(100_000usize))
        .bench(|| {
            let mut c = Calendar::new();
            let mut x: u64 = 12345;
            for i in 0..1000u64 {
                c.schedule(i * 7919 % 1000, i);
            }
            for _ in 0..100_000 {
                let (t, e) = c.pop().unwrap();
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                c.schedule(t + x % 1000, e);
            }
            divan::black_box(c.len())
        });
}

/// A farm of 8 M/M/16/1000 servers (dedicated processors) behind a round-robin
/// balancer, 100,000 requests each: compare with 8 × `mm16_1000_rho09_100k_requests`
/// (README, Performance; `w3sim bench --farm 8` prints the ratio).
#[divan::bench(sample_count = 5)]
fn farm_of_8_mm16_1000_rho09_100k_requests_each(b: divan::Bencher) {
    use w3sim::bench::{BenchServer, farm_scenario};
    let scn = farm_scenario(BenchServer::Dedicated, 8, 0.9, 100_000, 42);
    b.counter(divan::counter::ItemsCount::new(800_000usize))
        .bench(|| w3sim::run(&scn, &mut w3sim::output::NullSink).expect("runs"));
}

/// A farm of 8 seed-003 page servers (thread pool, GC, shared CPU; the cascade's
/// balancer and retrying clients) at 90 % CPU, 20,000 requests each: compare with 8 ×
/// `seed003_server_20k_requests`.
#[divan::bench(sample_count = 5)]
fn farm_of_8_seed003_servers_20k_requests_each(b: divan::Bencher) {
    use w3sim::bench::{BenchServer, farm_scenario};
    let scn = farm_scenario(BenchServer::Seed003, 8, 0.9, 20_000, 42);
    b.counter(divan::counter::ItemsCount::new(160_000usize))
        .bench(|| w3sim::run(&scn, &mut w3sim::output::NullSink).expect("runs"));
}

/// One seed-003 page server at 90 % CPU, 20,000 requests.
#[divan::bench(sample_count = 5)]
fn seed003_server_20k_requests(b: divan::Bencher) {
    let scn = w3sim::bench::seed003_scenario(0.9, 20_000, 42);
    b.counter(divan::counter::ItemsCount::new(20_000usize))
        .bench(|| w3sim::run(&scn, &mut w3sim::output::NullSink).expect("runs"));
}
