//! The reference benchmark: the M/M/16/1000 reduction at ρ = 0.9 with 1,000,000
//! requests, run on one core with no output files, as `w3sim bench` and the divan
//! bench do. The same model runs in SimPy and Ciw in `shared/bench/peers/`.
//! `w3sim bench --farm N` runs it once on one server and once as a farm of N servers
//! behind a balancer with N times the load: the farm should cost N times as much. It
//! does so for three kinds of server: the reduction above (dedicated processors, the
//! cheapest requests w3sim simulates), the same server on the shared CPU scheduler
//! (the default, which every farm scenario uses), and the seed-003 server of
//! `experiments/farm-cascade.toml` without its incident, behind that file's balancer
//! and retrying clients.

use std::time::Instant;

use w3sim_models::dist::Dist;

use crate::output::NullSink;
use crate::scenario::units::{Duration, DurationDist, Rate};
use crate::scenario::{Class, Scenario};

/// The benchmark's scenario: c = 16 threads, μ = 1/s, λ = ρ·c·μ, waiting room 1000.
pub fn mm16_scenario(rho: f64, requests: u64, seed: u64) -> Scenario {
    let c = 16u32;
    let lambda = rho * c as f64;
    let mut s = Scenario {
        name: format!("bench-mm16-1000-rho{rho}"),
        seed,
        duration: Duration((requests as f64 / lambda * 1e9).round() as u64),
        sample_interval: Duration(3600 * 1_000_000_000),
        ..Scenario::default()
    };
    s.load.rate = Rate(lambda);
    s.classes = vec![Class {
        name: "mm".into(),
        service: Some(DurationDist(Dist::Exp { mean: 1e9 })),
        ..Class::default()
    }];
    s.cpu.logical_processors = c;
    // The reduction: processors are not a bottleneck (each thread has its own), the pool
    // never grows (min = max) and its threads never retire.
    s.cpu.scheduler = crate::scenario::Scheduler::Dedicated;
    s.thread_pool.thread_timeout = Duration(0);
    s.http_sys.queue_length = 1000;
    s.thread_pool.min_worker_threads = c;
    s.thread_pool.max_worker_threads = c;
    s
}

/// Figures of one benchmark run.
#[derive(Clone, Debug)]
pub struct BenchFigures {
    pub requests: u64,
    pub events: u64,
    pub wall_seconds: f64,
    pub requests_per_second: f64,
    pub events_per_second: f64,
    /// Mean queue wait (s) the run measured, to show the model is the right one.
    pub mean_wait_s: f64,
}

/// Runs the benchmark once.
pub fn run_mm16(rho: f64, requests: u64, seed: u64) -> BenchFigures {
    run_figures(&mm16_scenario(rho, requests, seed))
}

/// The M/M/16/1000 server of [`mm16_scenario`] on the shared CPU scheduler (the default:
/// 16 logical processors, 5 µs context switches, DPCs and priorities) instead of
/// dedicated processors: each request costs what it costs in a full scenario's pipeline.
pub fn mm16_shared_cpu_scenario(rho: f64, requests: u64, seed: u64) -> Scenario {
    let mut s = mm16_scenario(rho, requests, seed);
    s.name = format!("bench-mm16-1000-shared-cpu-rho{rho}");
    s.cpu.scheduler = crate::scenario::Scheduler::Shared;
    s
}

/// The server a farm benchmark multiplies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchServer {
    /// [`mm16_scenario`]: dedicated processors (the cheapest requests; the worst case for
    /// a farm, whose cost of switching between servers weighs most against them).
    Dedicated,
    /// [`mm16_shared_cpu_scenario`]: the default CPU model.
    SharedCpu,
    /// [`seed003_scenario`]: a full seed-003 page server (thread pool, GC, shared CPU,
    /// a second of sampling), and in a farm the cascade's balancer and clients.
    Seed003,
}

/// The server of `experiments/farm-cascade.toml` (seed 003: 16 logical processors,
/// queueLength 1000, .NET 4.5 with 200 minimum threads, blocking server GC; a page of
/// exp(12 ms) CPU, 100 KB allocated, a 20 ms wait) without web1's cache reload.
const SEED003_SERVER: &str = r#"
name = "bench-seed003-server"
sample_interval = "1s"
[[classes]]
name = "page"
handler = "sync"
steps = [ { cpu = "exp(12ms)" }, { alloc = "100KB", retain = "20KB" }, { wait = "20ms" } ]
[[classes]]
name = "health"
handler = "sync"
weight = 0
steps = [ { cpu = "200us" } ]
[cpu]
logical_processors = 16
[http_sys]
queue_length = 1000
[thread_pool]
runtime = "net48"
min_worker_threads = 200
[gc]
gc_server = true
gc_concurrent = false
"#;

/// The same file's balancer and clients (500 ms timeout, 3 retries after 100, 200,
/// 400 ms on a 503 or a timeout): a farm of these servers costs what the cascade does.
const SEED003_FRONT: &str = r#"
[load_balancer]
policy = "round_robin"
probe_interval = "5s"
probe_timeout = "2s"
probe_class = "health"
hold_time = "15s"
[clients]
timeout = "500ms"
retries = 3
retry_on = ["503", "timeout"]
backoff = "100ms"
backoff_multiplier = 2.0
"#;

/// [`BenchServer::Seed003`]: λ = ρ × 16 processors / 12 ms of CPU (ρ = 0.75 is the
/// seed's 1000 requests/s), for the time it takes to see `requests` requests.
pub fn seed003_scenario(rho: f64, requests: u64, seed: u64) -> Scenario {
    seed003_with(rho, requests, seed, "")
}

fn seed003_with(rho: f64, requests: u64, seed: u64, extra: &str) -> Scenario {
    let text = format!("{SEED003_SERVER}{extra}");
    let mut s = crate::scenario::load::load_generated("bench.rs", &text, &[])
        .expect("the seed-003 benchmark scenario is valid");
    let lambda = rho * 16.0 / 0.012;
    s.seed = seed;
    s.load.rate = Rate(lambda);
    s.duration = Duration((requests as f64 / lambda * 1e9).round() as u64);
    s
}

impl BenchServer {
    pub fn scenario(self, rho: f64, requests: u64, seed: u64) -> Scenario {
        match self {
            BenchServer::Dedicated => mm16_scenario(rho, requests, seed),
            BenchServer::SharedCpu => mm16_shared_cpu_scenario(rho, requests, seed),
            BenchServer::Seed003 => seed003_scenario(rho, requests, seed),
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            BenchServer::Dedicated => "M/M/16/1000 on dedicated processors",
            BenchServer::SharedCpu => "M/M/16/1000 on the shared CPU scheduler",
            BenchServer::Seed003 => "a seed-003 page server: thread pool, GC, shared CPU",
        }
    }
}

/// The farm scaling benchmark's scenario: `servers` copies of `server` behind a
/// round-robin balancer (probes every 5 s, 60 s timeout), offered `servers` times the load, for the
/// time one server takes to see `requests_per_server` requests.
pub fn farm_scenario(
    server: BenchServer,
    servers: u32,
    rho: f64,
    requests_per_server: u64,
    seed: u64,
) -> Scenario {
    let mut s = match server {
        BenchServer::Seed003 => seed003_with(rho, requests_per_server, seed, SEED003_FRONT),
        _ => server.scenario(rho, requests_per_server, seed),
    };
    s.name = format!(
        "bench-farm-{servers}x-{}",
        s.name.trim_start_matches("bench-")
    );
    s.load.rate = Rate(s.load.rate.0 * servers as f64);
    s.farm.servers = vec![crate::scenario::ServerGroup {
        name: "web".into(),
        count: Some(servers),
        names: Vec::new(),
        set: Vec::new(),
        weight: 1,
    }];
    if server != BenchServer::Seed003 {
        // Probes every 5 s (the default) ask for the benchmark's page, whose service
        // time is exp(1 s) and whose queue wait at rho = 0.9 has a tail: with the default
        // 2 s timeout they would fail now and then and take their server out for 15 s,
        // and the benchmark would time an unevenly loaded farm. It measures cost, so
        // probes wait. (The seed-003 farm probes its 200 µs health page.)
        s.load_balancer.probe_timeout = Duration(60 * 1_000_000_000);
    }
    s
}

/// Figures of the farm scaling benchmark: one server, a farm of one (for more than one
/// server), then a farm of `servers`.
#[derive(Clone, Debug)]
pub struct FarmScaling {
    pub single: BenchFigures,
    /// The same server alone behind the farm's front end (balancer, clients, the users'
    /// statistics): what a farm costs before it has a second server.
    pub farm_of_one: Option<BenchFigures>,
    pub farm: BenchFigures,
    pub servers: u32,
}

impl FarmScaling {
    /// The farm's wall time over `servers` × the single server's (1.0: linear).
    pub fn cost_ratio(&self) -> f64 {
        self.farm.wall_seconds / (self.servers as f64 * self.single.wall_seconds)
    }

    /// The farm's wall time over `servers` × a farm of one's, if one was timed.
    pub fn cost_ratio_to_farm_of_one(&self) -> Option<f64> {
        self.farm_of_one
            .as_ref()
            .map(|f1| self.farm.wall_seconds / (self.servers as f64 * f1.wall_seconds))
    }
}

/// Runs one server, a farm of one (when `servers` > 1) and a farm of `servers`, each
/// server seeing `requests` requests.
pub fn run_farm_scaling(
    server: BenchServer,
    servers: u32,
    rho: f64,
    requests: u64,
    seed: u64,
) -> FarmScaling {
    let single = run_figures(&server.scenario(rho, requests, seed));
    let farm_of_one =
        (servers > 1).then(|| run_figures(&farm_scenario(server, 1, rho, requests, seed)));
    let farm = run_figures(&farm_scenario(server, servers, rho, requests, seed));
    FarmScaling {
        single,
        farm_of_one,
        farm,
        servers,
    }
}

fn run_figures(scn: &Scenario) -> BenchFigures {
    let t = Instant::now();
    let summary = crate::run(scn, &mut NullSink).expect("benchmark scenario runs");
    let wall = t.elapsed().as_secs_f64();
    BenchFigures {
        requests: summary.requests.arrived,
        events: summary.events,
        wall_seconds: wall,
        requests_per_second: summary.requests.arrived as f64 / wall,
        events_per_second: summary.events as f64 / wall,
        mean_wait_s: if summary.latency_ms.all.count == 0 {
            0.0
        } else {
            summary.latency_ms.all.mean * 1e-3 - 1.0
        },
    }
}
