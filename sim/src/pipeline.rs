//! The pipeline: wires the component models together and drives them with the engine.
//!
//! Packet order (DOMAIN §0), with the seams where later components go:
//!
//! ```text
//! clients ─► [NIC, AFD: issue 6] ─► HTTP.SYS app-pool queue ─► [IIS, ASP.NET queues: issue 3]
//!         ─► thread pool ─► handler steps [CPU, GC, outgoing calls: issues 3, 4] ─► response
//! ```
//!
//! Each event goes to the model it belongs to; what the model returns decides where
//! the request goes next. Models never see the calendar: they schedule through
//! [`Fx`], which wraps their timer type in [`Ev`].

use std::time::Instant;

use w3sim_models::clients::{
    ArrivalProcess, Burst, ClassPicker, ClosedLoop, OpenLoop, OpenTimer, RateSchedule, UserTimer,
};
use w3sim_models::handler::{Handler, HandlerKind as MHandlerKind, Step};
use w3sim_models::http_sys::{AppPoolQueue, AppPoolQueueConfig};
use w3sim_models::request::{ClassId, Outcome, RequestId};
use w3sim_models::thread_pool::{ThreadPool, ThreadPoolConfig};
use w3sim_models::time::{SimTime, as_secs};

use crate::engine::{Calendar, Fx, Slab, Stream, stream};
use crate::output::SampleSink;
use crate::scenario::{Arrivals, HandlerKind, LoadMode, Scenario, ScheduleShape};
use crate::stats::{
    GaugeSummary, Latency, LatencyByClass, LittlesLaw, MeasuredSummary, OutcomeCounts,
    RequestTotals, Summary, Window, round6,
};

/// Every event of the simulation.
#[derive(Clone, Copy, Debug)]
pub enum Ev {
    /// The open-loop source's timer.
    Open(OpenTimer),
    /// A closed-loop user finished thinking.
    User(UserTimer),
    /// The current handler step of a request finished.
    StepDone(RequestId),
    /// Time to write a row of the time series.
    Sample,
    /// End of warm-up: statistics restart.
    WarmupEnd,
}

/// Per-request state, kept only while the request is in flight.
#[derive(Clone, Copy, Debug)]
struct Request {
    class: ClassId,
    arrived: SimTime,
    /// When a worker thread took it (end of its queue wait).
    started: SimTime,
    step: u16,
    /// Closed-loop user that sent it, or `u32::MAX`.
    user: u32,
}

const NO_USER: u32 = u32::MAX;

/// A run failed for a reason that is w3sim's fault, or its output could not be written.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("internal error: invariant violated: {0}")]
    Invariant(String),
    #[error("cannot write output: {0}")]
    Io(#[from] std::io::Error),
}

/// The time-series columns, named after the perfmon counters they model
/// (`w3sim\…` for figures no perfmon counter gives).
pub const COLUMNS: &[&str] = &[
    "time_s",
    "HTTP Service Request Queues\\ArrivalRate",
    "HTTP Service Request Queues\\CurrentQueueSize",
    "HTTP Service Request Queues\\RejectionRate",
    "HTTP Service Request Queues\\MaxQueueItemAge",
    "ASP.NET Applications\\Requests Executing",
    "ASP.NET Applications\\Requests/Sec",
    "System.Runtime\\ThreadPool Thread Count",
    "System.Runtime\\ThreadPool Completed Work Item Count/sec",
    "w3sim\\Requests In Flight",
    "w3sim\\Response Time p50 (ms)",
    "w3sim\\Response Time p95 (ms)",
    "w3sim\\Response Time p99 (ms)",
    "w3sim\\Outcome ok/sec",
    "w3sim\\Outcome 503_queue_full/sec",
];

/// One server's components.
struct Server {
    http: AppPoolQueue,
    pool: ThreadPool,
}

/// A simulation in progress.
pub struct Simulation<'a> {
    scn: &'a Scenario,
    cal: Calendar<Ev>,
    reqs: Slab<Request>,
    open: Option<OpenLoop<Stream>>,
    closed: Option<ClosedLoop<Stream>>,
    server: Server,
    handlers: Vec<Handler>,
    class_rngs: Vec<Stream>,
    // Statistics.
    arrived: u64,
    outcomes: OutcomeCounts,
    in_system: w3sim_models::stat::Gauge,
    window: Window,
    interval: IntervalStats,
    /// Peak of what counts against queueLength (whole run), for the invariant check.
    peak_counted: u64,
    violations: Vec<String>,
    faults: Faults,
}

/// Deliberate model errors, used only by the validation suite to prove that its
/// checks catch a wrong model. Never set by a scenario.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// Serve the HTTP.SYS queue newest-first (LIFO) instead of FIFO.
    pub lifo_queue: bool,
}

/// Per-sample-interval accumulators for rates and response-time percentiles.
struct IntervalStats {
    latency: Latency,
    outcomes: OutcomeCounts,
    ok: u64,
}

fn handler_of(c: &crate::scenario::Class) -> Handler {
    let kind = match c.handler {
        HandlerKind::Sync => MHandlerKind::Sync,
    };
    let steps = match &c.service {
        Some(d) => vec![Step::Cpu(d.0.sampler())],
        None => c
            .steps
            .iter()
            .map(|s| match (&s.cpu, &s.wait) {
                (Some(d), _) => Step::Cpu(d.0.sampler()),
                (None, Some(d)) => Step::Wait(d.0.sampler()),
                (None, None) => Step::Wait(w3sim_models::dist::Dist::Const(0.0).sampler()),
            })
            .collect(),
    };
    Handler { kind, steps }
}

impl<'a> Simulation<'a> {
    /// Builds the models from a validated scenario.
    pub fn new(scn: &'a Scenario) -> Self {
        let seed = scn.seed;
        let weights: Vec<f64> = scn.classes.iter().map(|c| c.weight).collect();
        let picker = ClassPicker::new(&weights);
        let (open, closed) = match scn.load.mode {
            LoadMode::Open => {
                let schedule = if scn.load.schedule.is_empty() {
                    RateSchedule::constant(scn.load.rate.0)
                } else {
                    RateSchedule {
                        points: scn
                            .load
                            .schedule
                            .iter()
                            .map(|p| (p.at.0, p.rate.0))
                            .collect(),
                        linear: scn.load.schedule_shape == ScheduleShape::Linear,
                    }
                };
                let bursts = scn
                    .load
                    .bursts
                    .iter()
                    .map(|b| Burst {
                        at: b.at.0,
                        count: b.count,
                        class: b
                            .class
                            .as_ref()
                            .and_then(|n| scn.classes.iter().position(|c| &c.name == n))
                            .map(|i| i as ClassId),
                    })
                    .collect();
                let process = match scn.load.arrivals {
                    Arrivals::Poisson => ArrivalProcess::Poisson,
                    Arrivals::Constant => ArrivalProcess::Constant,
                };
                (
                    Some(OpenLoop::new(
                        process,
                        schedule,
                        bursts,
                        picker,
                        stream(seed, "load/arrivals"),
                    )),
                    None,
                )
            }
            LoadMode::Closed => (
                None,
                Some(ClosedLoop::new(
                    scn.load.users,
                    scn.load.think_time.0.sampler(),
                    picker,
                    stream(seed, "load/users"),
                )),
            ),
        };
        let cpus = scn.cpu.logical_processors;
        let server = Server {
            http: AppPoolQueue::new(AppPoolQueueConfig {
                queue_length: scn.http_sys.queue_length,
                queue_counts_in_flight: scn.http_sys.queue_counts_in_flight,
            }),
            pool: ThreadPool::new(ThreadPoolConfig {
                min_worker_threads: scn.thread_pool.min_threads(cpus),
                max_worker_threads: scn.thread_pool.max_threads(cpus),
            }),
        };
        let handlers = scn.classes.iter().map(handler_of).collect();
        let class_rngs = scn
            .classes
            .iter()
            .map(|c| stream(seed, &format!("class/{}", c.name)))
            .collect();
        let n = scn.classes.len();
        Self {
            scn,
            cal: Calendar::new(),
            reqs: Slab::default(),
            open,
            closed,
            server,
            handlers,
            class_rngs,
            arrived: 0,
            outcomes: OutcomeCounts::default(),
            in_system: Default::default(),
            window: Window::new(0, n),
            interval: IntervalStats {
                latency: Latency::default(),
                outcomes: OutcomeCounts::default(),
                ok: 0,
            },
            peak_counted: 0,
            violations: Vec::new(),
            faults: Faults::default(),
        }
    }

    /// Runs to the scenario's duration, writing time-series rows to `sink`. Check
    /// [`Simulation::violations`] afterwards (or use [`run`], which does).
    pub fn run(&mut self, sink: &mut dyn SampleSink) -> Result<Summary, RunError> {
        let wall = Instant::now();
        let end = self.scn.duration.0;
        sink.columns(COLUMNS)?;
        if let Some(open) = self.open.as_mut() {
            open.start(
                0,
                &mut Fx {
                    cal: &mut self.cal,
                    wrap: Ev::Open,
                },
            );
        }
        if let Some(closed) = self.closed.as_mut() {
            closed.start(
                0,
                &mut Fx {
                    cal: &mut self.cal,
                    wrap: Ev::User,
                },
            );
        }
        if self.scn.warmup.0 > 0 {
            self.cal.schedule(self.scn.warmup.0, Ev::WarmupEnd);
        }
        self.cal
            .schedule(self.scn.sample_interval.0.min(end), Ev::Sample);

        while let Some(t) = self.cal.peek_time() {
            if t > end {
                break;
            }
            let (now, ev) = self.cal.pop().expect("peeked");
            match ev {
                Ev::Open(timer) => {
                    let open = self
                        .open
                        .as_mut()
                        .expect("open-loop timer without a source");
                    let batch = open.on_timer(
                        now,
                        timer,
                        &mut Fx {
                            cal: &mut self.cal,
                            wrap: Ev::Open,
                        },
                    );
                    for _ in 0..batch.count {
                        let class = match batch.class {
                            Some(c) => c,
                            None => self.open.as_mut().expect("source").pick_class(),
                        };
                        self.arrive(now, class, NO_USER);
                    }
                }
                Ev::User(timer) => {
                    let class = self
                        .closed
                        .as_mut()
                        .expect("user timer without users")
                        .on_timer(now, timer);
                    self.arrive(now, class, timer.0);
                }
                Ev::StepDone(id) => self.step_done(now, id),
                Ev::Sample => {
                    self.sample(now, sink)?;
                    let next = now + self.scn.sample_interval.0;
                    if next <= end {
                        self.cal.schedule(next, Ev::Sample);
                    } else if now < end {
                        self.cal.schedule(end, Ev::Sample);
                    }
                }
                Ev::WarmupEnd => self.start_window(now),
            }
        }
        sink.finish()?;
        let mut summary = self.summarize(end);
        summary.wall_seconds = round6(wall.elapsed().as_secs_f64());
        Ok(summary)
    }

    fn start_window(&mut self, now: SimTime) {
        self.window.reset(now);
        self.in_system.reset_window(now);
        self.server.http.current_queue_size.reset_window(now);
        self.server.pool.thread_count.reset_window(now);
        self.server.pool.processing_work.reset_window(now);
    }

    #[inline]
    fn arrive(&mut self, now: SimTime, class: ClassId, user: u32) {
        let id = self.reqs.insert(Request {
            class,
            arrived: now,
            started: now,
            step: 0,
            user,
        });
        self.arrived += 1;
        self.window.arrived += 1;
        self.in_system.inc(now);
        match self.server.http.enqueue(now, id) {
            Err(_) => self.finish(now, id, Outcome::QueueFull503),
            Ok(()) => {
                let counted = self.server.http.counted();
                if counted > self.peak_counted {
                    self.peak_counted = counted;
                }
                self.dispatch(now);
            }
        }
    }

    /// Gives queued requests to free worker threads, oldest first.
    #[inline]
    fn dispatch(&mut self, now: SimTime) {
        while !self.server.http.is_empty() && self.server.pool.try_start_work(now) {
            let id = if self.faults.lifo_queue {
                self.server.http.dequeue_newest_for_fault_injection(now)
            } else {
                self.server.http.dequeue(now)
            }
            .expect("queue not empty");
            let r = self.reqs.get_mut(id).expect("live request");
            r.started = now;
            self.start_step(now, id);
        }
    }

    #[inline]
    fn start_step(&mut self, now: SimTime, id: RequestId) {
        let r = *self.reqs.get(id).expect("live request");
        let c = r.class as usize;
        match self.handlers[c].step_time(r.step as usize, &mut self.class_rngs[c]) {
            Some(d) => self.cal.schedule(now.saturating_add(d), Ev::StepDone(id)),
            None => self.complete(now, id),
        }
    }

    #[inline]
    fn step_done(&mut self, now: SimTime, id: RequestId) {
        let r = self.reqs.get_mut(id).expect("live request");
        r.step += 1;
        self.start_step(now, id);
    }

    #[inline]
    fn complete(&mut self, now: SimTime, id: RequestId) {
        self.server.pool.finish_work(now);
        self.server.http.finished(now);
        self.finish(now, id, Outcome::Ok);
        self.dispatch(now);
    }

    /// A request leaves the system with `outcome`.
    #[inline]
    fn finish(&mut self, now: SimTime, id: RequestId, outcome: Outcome) {
        let r = self.reqs.remove(id).expect("live request");
        self.outcomes.add(outcome);
        self.interval.outcomes.add(outcome);
        self.in_system.dec(now);
        let sojourn = now - r.arrived;
        if r.arrived >= self.window.start {
            self.window.outcomes.add(outcome);
            self.window.sojourn_sum_ns += sojourn as u128;
            self.window.departures += 1;
            if outcome == Outcome::Ok {
                self.window.queue_wait.record(r.started - r.arrived);
                self.window.latency_all.record(sojourn);
                self.window.latency_by_class[r.class as usize].record(sojourn);
            }
        }
        if outcome == Outcome::Ok {
            self.interval.latency.record(sojourn);
            self.interval.ok += 1;
        }
        if r.user != NO_USER {
            if let Some(closed) = self.closed.as_mut() {
                closed.on_response(
                    now,
                    r.user,
                    &mut Fx {
                        cal: &mut self.cal,
                        wrap: Ev::User,
                    },
                );
            }
        }
    }

    fn sample(&mut self, now: SimTime, sink: &mut dyn SampleSink) -> Result<(), RunError> {
        let secs = self.scn.sample_interval.as_secs_f64();
        let http = &mut self.server.http;
        let pool = &mut self.server.pool;
        let per_s = |n: u64| round6(n as f64 / secs);
        let row = [
            round6(as_secs(now)),
            per_s(http.arrivals.since_mark()),
            http.current_queue_size.get() as f64,
            per_s(http.rejected.since_mark()),
            round6(http.max_queue_item_age(now) as f64 * 1e-6),
            pool.processing() as f64,
            per_s(self.interval.ok),
            pool.existing() as f64,
            per_s(pool.completions.since_mark()),
            self.in_system.get() as f64,
            round6(self.interval.latency.quantile_ms(0.50)),
            round6(self.interval.latency.quantile_ms(0.95)),
            round6(self.interval.latency.quantile_ms(0.99)),
            per_s(self.interval.outcomes.get(Outcome::Ok)),
            per_s(self.interval.outcomes.get(Outcome::QueueFull503)),
        ];
        http.arrivals.mark();
        http.rejected.mark();
        pool.completions.mark();
        self.interval.latency.reset();
        self.interval.outcomes = OutcomeCounts::default();
        self.interval.ok = 0;
        sink.row(&row)?;
        Ok(())
    }

    fn summarize(&mut self, end: SimTime) -> Summary {
        let scn = self.scn;
        let failed = self.outcomes.failed();
        let completed = self.outcomes.get(Outcome::Ok);
        let in_flight = self.reqs.len() as u64;
        let requests = RequestTotals {
            arrived: self.arrived,
            completed,
            failed,
            in_flight,
        };

        // Invariants.
        if self.arrived != completed + failed + in_flight {
            self.violations.push(format!(
                "conservation: arrived {} != completed {} + failed {} + in flight {}",
                self.arrived, completed, failed, in_flight
            ));
        }
        let http = &self.server.http;
        let pool = &self.server.pool;
        for (name, g) in [
            ("w3sim\\Requests In Flight", &self.in_system),
            (
                "HTTP Service Request Queues\\CurrentQueueSize",
                &http.current_queue_size,
            ),
            (
                "System.Runtime\\ThreadPool Thread Count",
                &pool.thread_count,
            ),
            (
                "ASP.NET Applications\\Requests Executing",
                &pool.processing_work,
            ),
        ] {
            if g.underflows() > 0 {
                self.violations.push(format!(
                    "gauge {name} went below zero {} time(s)",
                    g.underflows()
                ));
            }
        }
        if self.peak_counted > scn.http_sys.queue_length as u64 {
            self.violations.push(format!(
                "HTTP.SYS queue held {} requests, above queueLength {}",
                self.peak_counted, scn.http_sys.queue_length
            ));
        }
        if pool.processing_work.peak() > pool.goal() as u64
            || pool.goal() > pool.config().max_worker_threads.max(1)
        {
            self.violations.push(format!(
                "thread pool ran {} work items at once with goal {} and max {}",
                pool.processing_work.peak(),
                pool.goal(),
                pool.config().max_worker_threads
            ));
        }

        let w = &self.window;
        let span_s = as_secs(end.saturating_sub(w.start)).max(1e-12);
        let w_failed = w.outcomes.failed();
        let w_completed = w.outcomes.get(Outcome::Ok);
        let measured = MeasuredSummary {
            from_s: round6(as_secs(w.start)),
            to_s: round6(as_secs(end)),
            arrived: w.arrived,
            completed: w_completed,
            failed: w_failed,
            outcomes: w.outcomes.to_map(),
            throughput_per_s: round6(w_completed as f64 / span_s),
            failure_ratio: if w_completed + w_failed == 0 {
                0.0
            } else {
                round6(w_failed as f64 / (w_completed + w_failed) as f64)
            },
        };
        let l = self.in_system.mean(end);
        let lambda = w.arrived as f64 / span_s;
        let wbar = if w.departures == 0 {
            0.0
        } else {
            w.sojourn_sum_ns as f64 / w.departures as f64 * 1e-9
        };
        let lw = lambda * wbar;
        let littles_law = LittlesLaw {
            l: round6(l),
            lambda_per_s: round6(lambda),
            w_s: round6(wbar),
            relative_error: round6(if l.max(lw) == 0.0 {
                0.0
            } else {
                (l - lw).abs() / l.max(lw)
            }),
        };
        let queue_wait_ms = w.queue_wait.summary();
        let latency_ms = LatencyByClass {
            all: w.latency_all.summary(),
            classes: scn
                .classes
                .iter()
                .zip(&w.latency_by_class)
                .map(|(c, h)| (c.name.clone(), h.summary()))
                .collect(),
        };
        let g = |gauge: &w3sim_models::stat::Gauge, limit: Option<u64>| GaugeSummary {
            mean: round6(gauge.mean(end)),
            peak: gauge.peak(),
            limit,
        };
        let mut gauges = std::collections::BTreeMap::new();
        gauges.insert(
            "http_sys.CurrentQueueSize".to_string(),
            g(
                &http.current_queue_size,
                Some(scn.http_sys.queue_length as u64),
            ),
        );
        gauges.insert(
            "thread_pool.Requests Executing".to_string(),
            g(&pool.processing_work, Some(pool.goal() as u64)),
        );
        gauges.insert(
            "thread_pool.Thread Count".to_string(),
            g(
                &pool.thread_count,
                Some(pool.config().max_worker_threads as u64),
            ),
        );
        gauges.insert(
            "w3sim.Requests In Flight".to_string(),
            g(&self.in_system, None),
        );

        Summary {
            w3sim_version: env!("CARGO_PKG_VERSION"),
            scenario: scn.name.clone(),
            seed: scn.seed,
            requests,
            outcomes: self.outcomes.to_map(),
            measured,
            latency_ms,
            queue_wait_ms,
            gauges,
            littles_law,
            events: self.cal.delivered(),
            simulated_seconds: round6(as_secs(end)),
            peak_request_slots: self.reqs.capacity_used() as u64,
            wall_seconds: 0.0,
        }
    }

    /// Injects deliberate model errors (validation suite only).
    #[doc(hidden)]
    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// Invariant violations found at the end of the run (empty when all hold).
    pub fn violations(&self) -> &[String] {
        &self.violations
    }
}

/// Runs a validated scenario, writing time-series rows to `sink`. An invariant
/// violation is an error ([`RunError::Invariant`]), never a silently printed result.
pub fn run(scn: &Scenario, sink: &mut dyn SampleSink) -> Result<Summary, RunError> {
    run_with_faults(scn, sink, Faults::default())
}

/// [`run`] with deliberate model errors (validation suite only).
#[doc(hidden)]
pub fn run_with_faults(
    scn: &Scenario,
    sink: &mut dyn SampleSink,
    faults: Faults,
) -> Result<Summary, RunError> {
    let mut sim = Simulation::new(scn).with_faults(faults);
    let summary = sim.run(sink)?;
    if sim.violations.is_empty() {
        Ok(summary)
    } else {
        Err(RunError::Invariant(sim.violations.join("; ")))
    }
}
