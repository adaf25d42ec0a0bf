//! Scenario files: what a run simulates.
//!
//! A scenario is a TOML file with a few top-level keys (name, seed, duration, …) and
//! one table per component. Every key has a default taken from `DOMAIN.md` (see
//! [`settings`] and `w3sim show-defaults`); unknown keys are errors. Values carry
//! their units ([`units`]). [`load`] turns text (plus `--set` overrides) into a
//! validated [`Scenario`] or a list of diagnostics naming file, line, column and key.

pub mod load;
pub mod settings;
pub mod units;

use serde::{Deserialize, Serialize};
use w3sim_models::dist::Dist;

use self::units::{Duration, DurationDist, Rate};

/// A whole scenario, as written in a `.toml` file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scenario {
    /// Short name used in outputs.
    pub name: String,
    /// What the scenario shows and which seed it comes from.
    pub description: String,
    /// Master seed: every component's random stream is derived from it.
    pub seed: u64,
    /// Simulated time to run.
    pub duration: Duration,
    /// Initial period excluded from statistics (latency, means, rates).
    pub warmup: Duration,
    /// Interval between rows of `timeseries.csv` (perfmon's sample interval).
    pub sample_interval: Duration,
    /// Where requests come from.
    pub load: Load,
    /// Request classes (at least one).
    pub classes: Vec<Class>,
    /// The machine's processors.
    pub cpu: Cpu,
    /// HTTP.SYS settings of the application pool.
    pub http_sys: HttpSys,
    /// CLR thread pool limits.
    pub thread_pool: ThreadPool,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            name: "unnamed".into(),
            description: String::new(),
            seed: 1,
            duration: Duration(60 * 1_000_000_000),
            warmup: Duration(0),
            sample_interval: Duration(1_000_000_000),
            load: Load::default(),
            classes: vec![Class::default()],
            cpu: Cpu::default(),
            http_sys: HttpSys::default(),
            thread_pool: ThreadPool::default(),
        }
    }
}

/// Open loop (a rate) or closed loop (users with think time).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadMode {
    Open,
    Closed,
}

/// Spacing of open-loop arrivals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arrivals {
    Poisson,
    Constant,
}

/// How a rate schedule moves between its points.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleShape {
    /// Hold each point's rate until the next point.
    Step,
    /// Ramp linearly from each point's rate to the next one's.
    Linear,
}

/// `[load]`: the clients.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Load {
    pub mode: LoadMode,
    pub arrivals: Arrivals,
    /// Open loop: the arrival rate when no schedule is given.
    pub rate: Rate,
    /// Open loop: rate over time, `[{ at = "0s", rate = "50/s" }, { at = "60s", rate = "400/s" }]`.
    pub schedule: Vec<RatePoint>,
    pub schedule_shape: ScheduleShape,
    /// Open loop: simultaneous batches, `[{ at = "0s", count = 300 }]`.
    pub bursts: Vec<BurstSpec>,
    /// Closed loop: number of users.
    pub users: u32,
    /// Closed loop: time a user waits between the end of one request and the next.
    pub think_time: DurationDist,
}

impl Default for Load {
    fn default() -> Self {
        Self {
            mode: LoadMode::Open,
            arrivals: Arrivals::Poisson,
            rate: Rate(1000.0),
            schedule: Vec::new(),
            schedule_shape: ScheduleShape::Step,
            bursts: Vec::new(),
            users: 100,
            think_time: DurationDist(Dist::Exp { mean: 1e9 }),
        }
    }
}

/// One point of a rate schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatePoint {
    pub at: Duration,
    pub rate: Rate,
}

/// A burst of simultaneous requests.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurstSpec {
    pub at: Duration,
    pub count: u32,
    /// Class name of every request in the burst (default: drawn by weight).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
}

/// How a handler uses its worker thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandlerKind {
    /// Holds its thread through every step.
    Sync,
}

/// A request class: a kind of page or call with its own handler.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Class {
    pub name: String,
    /// Share of arrivals (relative to the other classes' weights).
    pub weight: f64,
    pub handler: HandlerKind,
    /// Shorthand for a single `cpu` step: the handler's service time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<DurationDist>,
    /// The handler's steps, run in order: `[{ cpu = "2ms" }, { wait = "exp(20ms)" }]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepSpec>,
}

impl Default for Class {
    fn default() -> Self {
        // Seed 003: "Synchronous request execution time is low 0-32 ms".
        Self {
            name: "default".into(),
            weight: 1.0,
            handler: HandlerKind::Sync,
            service: Some(DurationDist(Dist::Uniform { lo: 0.0, hi: 32e6 })),
            steps: Vec::new(),
        }
    }
}

/// One handler step: exactly one of its keys is set.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// Processor demand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<DurationDist>,
    /// Time blocked (I/O, downstream call, lock) holding the thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<DurationDist>,
}

/// `[cpu]`: the machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cpu {
    /// Logical processors (`Environment.ProcessorCount`); seed 003: 8 cores, 16 logical.
    pub logical_processors: u32,
}

impl Default for Cpu {
    fn default() -> Self {
        Self {
            logical_processors: 16,
        }
    }
}

/// `[http_sys]`: the application pool's kernel request queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSys {
    /// `queueLength` (applicationPools/add): 10–65535, default 1000.
    pub queue_length: u32,
    /// Count requests already handed to the worker process against `queue_length`
    /// (KB 816995) instead of kernel-queued requests only (the docs). DOMAIN §3.1 ⚠.
    pub queue_counts_in_flight: bool,
}

impl Default for HttpSys {
    fn default() -> Self {
        Self {
            queue_length: 1000,
            queue_counts_in_flight: false,
        }
    }
}

/// `[thread_pool]`: CLR worker thread limits.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThreadPool {
    /// `minWorkerThreads` / `ThreadPool.SetMinThreads`; 0 = the number of logical processors.
    pub min_worker_threads: u32,
    /// `maxWorkerThreads` / `SetMaxThreads`; 0 = 100 × logical processors (processModel autoConfig).
    pub max_worker_threads: u32,
}

impl ThreadPool {
    /// The effective minimum.
    pub fn min_threads(&self, cpus: u32) -> u32 {
        if self.min_worker_threads == 0 {
            cpus
        } else {
            self.min_worker_threads
        }
    }
    /// The effective maximum.
    pub fn max_threads(&self, cpus: u32) -> u32 {
        if self.max_worker_threads == 0 {
            100 * cpus
        } else {
            self.max_worker_threads
        }
    }
}

/// A problem found after the file parsed: the key path and a message.
#[derive(Clone, Debug, PartialEq)]
pub struct Invalid {
    /// Dotted key path with `[i]` for array elements, e.g. `classes[0].weight`.
    pub path: String,
    pub message: String,
}

impl Scenario {
    /// Semantic checks the types cannot express. Returns every problem found.
    pub fn validate(&self) -> Vec<Invalid> {
        let mut out = Vec::new();
        let mut bad = |path: String, message: String| out.push(Invalid { path, message });
        if self.duration.0 == 0 {
            bad("duration".into(), "must be longer than 0s".into());
        }
        if self.warmup.0 >= self.duration.0 && self.duration.0 > 0 {
            bad(
                "warmup".into(),
                format!(
                    "must be shorter than duration ({}), got {}",
                    self.duration, self.warmup
                ),
            );
        }
        if self.sample_interval.0 < 1_000_000 {
            bad(
                "sample_interval".into(),
                format!("must be at least 1ms, got {}", self.sample_interval),
            );
        }
        if self.classes.is_empty() {
            bad(
                "classes".into(),
                "at least one [[classes]] table is needed".into(),
            );
        }
        let mut names = std::collections::HashSet::new();
        for (i, c) in self.classes.iter().enumerate() {
            if !names.insert(c.name.as_str()) {
                bad(
                    format!("classes[{i}].name"),
                    format!("class name \"{}\" is used twice", c.name),
                );
            }
            if !(c.weight.is_finite() && c.weight >= 0.0) {
                bad(
                    format!("classes[{i}].weight"),
                    format!("must be a number >= 0, got {}", c.weight),
                );
            }
            match (&c.service, c.steps.is_empty()) {
                (Some(_), false) => bad(
                    format!("classes[{i}].service"),
                    "give either `service` or `steps`, not both".into(),
                ),
                (None, true) => bad(
                    format!("classes[{i}].steps"),
                    "a class needs `service = \"exp(10ms)\"` or at least one step".into(),
                ),
                _ => {}
            }
            for (j, s) in c.steps.iter().enumerate() {
                let n = s.cpu.is_some() as u8 + s.wait.is_some() as u8;
                if n != 1 {
                    bad(
                        format!("classes[{i}].steps[{j}]"),
                        "a step has exactly one of `cpu` or `wait`, e.g. { cpu = \"2ms\" }".into(),
                    );
                }
            }
        }
        if !self.classes.is_empty() && self.classes.iter().map(|c| c.weight).sum::<f64>() <= 0.0 {
            bad(
                "classes".into(),
                "the class weights must not all be 0".into(),
            );
        }
        let l = &self.load;
        if !(l.rate.0.is_finite() && l.rate.0 >= 0.0) {
            bad(
                "load.rate".into(),
                format!("must be >= 0/s, got {}", l.rate),
            );
        }
        for (i, p) in l.schedule.iter().enumerate() {
            if i > 0 && p.at.0 <= l.schedule[i - 1].at.0 {
                bad(
                    format!("load.schedule[{i}].at"),
                    format!(
                        "schedule times must increase: {} follows {}",
                        p.at,
                        l.schedule[i - 1].at
                    ),
                );
            }
        }
        for (i, b) in l.bursts.iter().enumerate() {
            if let Some(name) = &b.class {
                if !self.classes.iter().any(|c| &c.name == name) {
                    let known: Vec<&str> = self.classes.iter().map(|c| c.name.as_str()).collect();
                    bad(
                        format!("load.bursts[{i}].class"),
                        format!("no class named \"{name}\"; classes: {}", known.join(", ")),
                    );
                }
            }
        }
        if l.mode == LoadMode::Closed && l.users == 0 {
            bad(
                "load.users".into(),
                "a closed-loop load needs at least 1 user".into(),
            );
        }
        if self.cpu.logical_processors == 0 || self.cpu.logical_processors > 4096 {
            bad(
                "cpu.logical_processors".into(),
                format!("must be 1–4096, got {}", self.cpu.logical_processors),
            );
        }
        let q = self.http_sys.queue_length;
        if !(10..=65535).contains(&q) {
            bad(
                "http_sys.queue_length".into(),
                format!("IIS accepts queueLength 10–65535, got {q}"),
            );
        }
        let cpus = self.cpu.logical_processors.max(1);
        let tp = &self.thread_pool;
        if tp.max_threads(cpus) > 32767 {
            bad(
                "thread_pool.max_worker_threads".into(),
                format!(
                    "the CLR caps worker threads at 32767, got {}",
                    tp.max_threads(cpus)
                ),
            );
        }
        if tp.min_threads(cpus) > tp.max_threads(cpus) {
            bad(
                "thread_pool.min_worker_threads".into(),
                format!(
                    "SetMinThreads fails above the maximum: min {} > max {}",
                    tp.min_threads(cpus),
                    tp.max_threads(cpus)
                ),
            );
        }
        out
    }

    /// The effective scenario as TOML text (defaults filled in).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot print scenario: {e}\n"))
    }
}
