//! A farm: several servers behind a load balancer, with clients that time out and
//! retry, simulated in one event loop.
//!
//! Each server is a whole [`Simulation`] (its own models, calendar and random
//! streams) built by [`Scenario::server_scenarios`]. The farm owns what sits in front
//! of them: the load ([`OpenLoop`] / [`ClosedLoop`], the same streams a single-server
//! run uses), the retrying clients ([`Sessions`]) and the load balancer
//! ([`LoadBalancer`]). The loop always processes the earliest event of all calendars —
//! the farm's first, then the servers' in index order at equal times — so the farm is
//! one deterministic event loop. The next server is taken from a tournament tree of
//! their next-event times (O(log N) per update); what grows with the number of servers
//! is the cache traffic of switching between their states (README, Performance).
//!
//! An attempt goes: client → balancer → [`Simulation::inject`] on the chosen server;
//! its outcome comes back from [`Simulation::swap_completed`] to the balancer (a 503
//! takes the server out) and to the client (done, or retry after a backoff). Health
//! probes are requests of the probe class injected the same way.
//!
//! Outputs: the farm-wide [`Summary`] (user-visible outcomes and latency, with
//! `farm` holding attempts, retries, the balancer and one full summary per server),
//! a farm time series, and one time series per server.

use std::time::Instant;

use w3sim_models::clients::{
    Answer, Attempt, ClientTimer, Jitter, OpenTimer, RetryBudget, RetryPolicy, Sessions, UserTimer,
    Verdict,
};
use w3sim_models::load_balancer::{
    LbConfig, LbEvent, LbTimer, LoadBalancer, Policy, WhenAllOut as MWhenAllOut,
};
use w3sim_models::request::{ClassId, Outcome};
use w3sim_models::stat::Gauge;
use w3sim_models::time::{SimTime, as_secs};

use crate::engine::{Calendar, Fx, Stream, stream};
use crate::incidents::{Detector, Limits};
use crate::output::SampleSink;
use crate::pipeline::{Ended, RunError, Simulation, Sources};
use crate::scenario::{JitterSpec, LbPolicy, RetryOn, Scenario, WhenAllOut};
use crate::stats::{
    FarmServerSummary, FarmSummary, Latency, LatencyByClass, LbSummary, LimitHit, LittlesLaw,
    MeasuredSummary, RequestTotals, RunEvent, Summary, round6,
};

/// The servers' next event times in a tournament tree: the earliest (lowest index on
/// ties) in O(1), an update in O(log n). A node holds `time << 10 | server` (times below
/// 2^54 ns, about 208 days, and at most 1024 servers: [`MAX_SERVERS`]), so a comparison
/// is one integer `min`.
struct NextTimes {
    size: usize,
    tree: Vec<u64>,
}

/// The most servers a farm can have.
pub const MAX_SERVERS: usize = 1024;
const NONE: u64 = u64::MAX;

impl NextTimes {
    fn new(n: usize) -> Self {
        let size = n.max(1).next_power_of_two();
        Self {
            size,
            tree: vec![NONE; 2 * size],
        }
    }

    /// Server `i`'s next event is at `t`; the path to the root is updated as far as it
    /// changes (an injected request often leaves its server's next event where it was).
    #[inline]
    fn set(&mut self, i: usize, t: SimTime) {
        let mut k = self.size + i;
        let mut v = if t >= 1 << 54 {
            NONE
        } else {
            (t << 10) | i as u64
        };
        if self.tree[k] == v {
            return;
        }
        self.tree[k] = v;
        while k > 1 {
            v = v.min(self.tree[k ^ 1]);
            k /= 2;
            if self.tree[k] == v {
                return;
            }
            self.tree[k] = v;
        }
    }

    /// The earliest (time, server), or (`SimTime::MAX`, `usize::MAX`) when no server has an event.
    #[inline]
    fn min(&self) -> (SimTime, usize) {
        match self.tree[1] {
            NONE => (SimTime::MAX, usize::MAX),
            k => (k >> 10, (k & 1023) as usize),
        }
    }
}

/// The farm's own events.
#[derive(Clone, Copy, Debug)]
enum FarmEv {
    Open(u16, OpenTimer),
    User(UserTimer),
    Client(ClientTimer),
    Lb(LbTimer),
    Sample,
    WarmupEnd,
}

/// User-visible outcome of a request the balancer answered itself.
pub const LB_NO_SERVER: &str = "503_load_balancer_no_server";
/// User-visible outcome of a request whose last attempt the client gave up on.
pub const CLIENT_TIMEOUT: &str = "client_timeout";

/// Outcome counts: the servers' outcomes by [`Outcome::index`], then the client's timeout
/// and the balancer's own 503.
const N_OUT: usize = Outcome::ALL.len() + 2;
const I_TIMEOUT: usize = Outcome::ALL.len();
const I_NO_SERVER: usize = Outcome::ALL.len() + 1;
type Counts = [u64; N_OUT];

fn out_name(i: usize) -> &'static str {
    match i {
        I_TIMEOUT => CLIENT_TIMEOUT,
        I_NO_SERVER => LB_NO_SERVER,
        _ => Outcome::ALL[i].name(),
    }
}

/// The non-zero counts by name (`ok` always present).
fn to_map(c: &Counts) -> std::collections::BTreeMap<&'static str, u64> {
    c.iter()
        .enumerate()
        .filter(|&(i, &n)| n > 0 || i == Outcome::Ok.index())
        .map(|(i, &n)| (out_name(i), n))
        .collect()
}

/// Probe origins carry this bit; user attempts carry their client token.
pub(crate) const PROBE: u64 = 1 << 63;
const NO_USER: u32 = u32::MAX;

/// Whether an outcome is a 503 (the balancer's passive check, the client's "503").
pub fn is_503(o: Outcome) -> bool {
    matches!(
        o,
        Outcome::QueueFull503
            | Outcome::ConcurrentRequestLimit503_2
            | Outcome::ServerTooBusy503
            | Outcome::AppOffline503
            | Outcome::ConnLimit503
    )
}

/// Why the balancer takes the server out for this answer (`remove_on_503`), if it does: a
/// 503, or the closed connection that replaces it under `loadBalancerCapabilities =
/// TcpLevel` (what that setting is for: a balancer that only sees TCP). The client sees
/// the closed connection as an error.
fn fails_server(o: Outcome) -> Option<&'static str> {
    if is_503(o) {
        Some("answered 503")
    } else if matches!(o, Outcome::QueueFullReset | Outcome::AppOfflineReset) {
        Some("reset the connection (loadBalancerCapabilities TcpLevel)")
    } else {
        None
    }
}

fn answer_of(o: Outcome) -> Answer {
    if o == Outcome::Ok {
        Answer::Ok
    } else if is_503(o) {
        Answer::Unavailable
    } else {
        Answer::Error
    }
}

/// The farm time series' columns before the per-server ones.
pub const FARM_COLUMNS: &[&str] = &[
    "time_s",
    "w3sim\\Farm User Requests/sec",
    "w3sim\\Farm Attempts/sec",
    "w3sim\\Farm Retries/sec",
    "w3sim\\Farm User Requests OK/sec",
    "w3sim\\Farm User Requests Failed/sec",
    "w3sim\\Farm Client Timeouts/sec",
    "w3sim\\Farm User Requests In Flight",
    "w3sim\\Farm Response Time p99 (ms)",
    "w3sim\\Load Balancer Servers In Rotation",
    "w3sim\\Load Balancer Removals",
    "w3sim\\Load Balancer Rejected/sec",
    "w3sim\\Farm Retries Denied/sec",
];

/// Per-server columns of the farm time series, as `\\SERVER\` + one of these
/// (perfmon's machine prefix).
pub const SERVER_COLUMNS: &[&str] = &[
    "w3sim\\Load Balancer Requests/sec",
    "w3sim\\In Rotation",
    "w3sim\\Attempts Failed/sec",
    "w3sim\\Load Balancer Active Requests",
];

/// Every column of a farm's `timeseries.csv` for these server names.
pub fn farm_columns(servers: &[String]) -> Vec<String> {
    let mut c: Vec<String> = FARM_COLUMNS.iter().map(|s| s.to_string()).collect();
    for s in servers {
        for k in SERVER_COLUMNS {
            c.push(format!("\\\\{s}\\{k}"));
        }
    }
    c
}

/// Counts for one sample interval.
#[derive(Default, Clone)]
struct Interval {
    begun: u64,
    attempts: u64,
    retries: u64,
    ok: u64,
    failed: u64,
    timeouts: u64,
    rejected: u64,
    routed: Vec<u64>,
    failed_at: Vec<u64>,
}

/// Farm-wide figures over the measurement window.
struct FarmWindow {
    start: SimTime,
    begun: u64,
    ok: u64,
    failed: u64,
    outcomes: Counts,
    latency: Latency,
    by_class: Vec<Latency>,
    sojourn_sum_ns: u128,
}

impl FarmWindow {
    fn new(start: SimTime, classes: usize) -> Self {
        Self {
            start,
            begun: 0,
            ok: 0,
            failed: 0,
            outcomes: [0; N_OUT],
            latency: Latency::default(),
            by_class: (0..classes).map(|_| Latency::default()).collect(),
            sojourn_sum_ns: 0,
        }
    }
}

struct Front<'a> {
    scn: &'a Scenario,
    names: Vec<String>,
    cal: Calendar<FarmEv>,
    sources: Sources,
    clients: Sessions<Stream>,
    lb: Option<LoadBalancer<Stream>>,
    /// The class of the balancer's probes (a probe's lateness is decided by the
    /// balancer's own timeout timer, so the farm keeps no per-probe state).
    probe_class: ClassId,
    /// User requests in flight, including those waiting to retry.
    user_in_flight: Gauge,
    // Whole-run figures.
    begun: u64,
    outcomes: Counts,
    attempt_outcomes: Counts,
    /// Reused buffer for the answers a server returns.
    answers: Vec<Ended>,
    stale_answers: u64,
    window: FarmWindow,
    interval: Interval,
    interval_latency: Latency,
    events: Vec<RunEvent>,
    /// Time each server was first taken out, if ever.
    first_removed: Vec<Option<f64>>,
    /// The clients' retries denied by their budget, at the last sample.
    denied_at_sample: u64,
}

impl<'a> Front<'a> {
    fn new(scn: &'a Scenario, names: Vec<String>) -> Self {
        let seed = scn.seed;
        let n = names.len();
        let c = &scn.clients;
        let policy = RetryPolicy {
            retries: c.retries,
            backoff_ns: c.backoff.0,
            multiplier: c.backoff_multiplier,
            max_backoff_ns: c.max_backoff.0,
            jitter: match c.jitter {
                JitterSpec::None => Jitter::None,
                JitterSpec::Full => Jitter::Full,
                JitterSpec::Equal => Jitter::Equal,
            },
            on_503: c.retry_on.contains(&RetryOn::Unavailable),
            on_error: c.retry_on.contains(&RetryOn::Error),
            on_timeout: c.retry_on.contains(&RetryOn::Timeout),
            budget: (c.retry_budget_percent > 0.0).then_some(RetryBudget {
                percent_can_retry: c.retry_budget_percent,
                min_retries_per_second: c.retry_budget_min_per_second,
                ttl_ns: c.retry_budget_ttl.0,
            }),
        };
        let lb = (!scn.farm.servers.is_empty()).then(|| {
            let l = &scn.load_balancer;
            LoadBalancer::new(
                LbConfig {
                    servers: n,
                    policy: match l.policy {
                        LbPolicy::RoundRobin => Policy::RoundRobin,
                        LbPolicy::LeastConnections => Policy::LeastConnections,
                        LbPolicy::Random => Policy::Random,
                    },
                    probe_interval_ns: l.probe_interval.0,
                    probe_timeout_ns: l.probe_timeout.0,
                    hold_ns: l.hold_time.0,
                    remove_on_503: l.remove_on_503,
                    when_all_out: match l.when_all_out {
                        WhenAllOut::Reject => MWhenAllOut::Reject,
                        WhenAllOut::FailOpen => MWhenAllOut::FailOpen,
                    },
                    weights: scn
                        .server_names()
                        .iter()
                        .map(|&(_, g)| scn.farm.servers[g].weight)
                        .collect(),
                },
                stream(seed, "load_balancer"),
            )
        });
        let probe_class = scn
            .classes
            .iter()
            .position(|c| c.name == scn.load_balancer.probe_class)
            .unwrap_or(0) as ClassId;
        Self {
            scn,
            cal: Calendar::new(),
            sources: Sources::new(scn),
            clients: Sessions::new(policy, c.timeout.0, stream(seed, "clients/retries")),
            lb,
            probe_class,
            user_in_flight: Gauge::new(),
            begun: 0,
            outcomes: [0; N_OUT],
            attempt_outcomes: [0; N_OUT],
            answers: Vec::new(),
            stale_answers: 0,
            window: FarmWindow::new(0, scn.classes.len()),
            interval: Interval {
                routed: vec![0; n],
                failed_at: vec![0; n],
                ..Default::default()
            },
            interval_latency: Latency::default(),
            events: Vec::new(),
            first_removed: vec![None; n],
            denied_at_sample: 0,
            names,
        }
    }
}

/// Runs a farm scenario. `farm_sink` gets the farm time series ([`farm_columns`]);
/// `server_sinks` one sink per server (in [`Scenario::server_names`] order) for each
/// server's own time series.
pub fn run_farm(
    scn: &Scenario,
    farm_sink: &mut dyn SampleSink,
    server_sinks: &mut [&mut dyn SampleSink],
) -> Result<Summary, RunError> {
    let wall = Instant::now();
    let servers = scn
        .server_scenarios()
        .map_err(|e| RunError::Invariant(format!("the farm's servers cannot be built: {e}")))?;
    let names: Vec<String> = servers.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(
        server_sinks.len(),
        servers.len(),
        "one sink per server is needed"
    );
    let n = servers.len();
    let mut sims: Vec<Simulation<'_>> =
        servers.iter().map(|(_, s)| Simulation::member(s)).collect();
    let mut detectors: Vec<Detector<'_>> = server_sinks
        .iter_mut()
        .zip(&servers)
        .map(|(sink, (_, s))| {
            Detector::new(
                &mut **sink,
                Limits::from_scenario_with_ports(s, s.tcp.dynamic_port_count),
            )
        })
        .collect();
    for (sim, d) in sims.iter_mut().zip(detectors.iter_mut()) {
        sim.begin(d)?;
    }
    let mut f = Front::new(scn, names.clone());
    let cols = farm_columns(&names);
    let cols: Vec<&str> = cols.iter().map(String::as_str).collect();
    farm_sink.columns(&cols)?;
    let end = scn.duration.0;
    // Arm the farm's timers.
    f.sources.start(&mut f.cal, FarmEv::Open, FarmEv::User);
    if let Some(lb) = f.lb.as_mut() {
        lb.start(
            0,
            &mut Fx {
                cal: &mut f.cal,
                wrap: FarmEv::Lb,
            },
        );
    }
    if scn.warmup.0 > 0 {
        f.cal.schedule(scn.warmup.0, FarmEv::WarmupEnd);
    }
    f.cal
        .schedule(scn.sample_interval.0.min(end), FarmEv::Sample);

    let mut next = NextTimes::new(n);
    for (i, sim) in sims.iter().enumerate() {
        next.set(i, sim.next_time().unwrap_or(SimTime::MAX));
    }
    let mut farm_events = 0u64;
    loop {
        let tf = f.cal.peek_time().filter(|&t| t <= end);
        let (ts, si) = next.min();
        match tf {
            Some(t) if t <= ts => {
                let (now, ev) = f.cal.pop().expect("peeked");
                if let Some(e) = f.cal.stuck() {
                    return Err(e);
                }
                farm_events += 1;
                f.on_event(now, ev, &mut sims, &mut next, farm_sink)?;
            }
            _ if si != usize::MAX => {
                sims[si].step(&mut detectors[si])?;
                if sims[si].has_completed() {
                    f.on_completed(ts, si, &mut sims, &mut next);
                }
                next.set(si, sims[si].next_time().unwrap_or(SimTime::MAX));
            }
            _ => break,
        }
    }
    farm_sink.finish()?;

    // Per-server summaries, with their incidents.
    let mut per_server = Vec::with_capacity(n);
    let mut violations = Vec::new();
    for ((sim, mut det), name) in sims.iter_mut().zip(detectors).zip(&names) {
        let mut s = sim.end(&mut det)?;
        for e in &s.marked_events {
            det.event(e.at_s, &e.kind, &e.detail);
        }
        for l in &s.limits {
            det.limit_hit(l.at_s, &l.limit);
        }
        s.incidents = det.finish_incidents();
        for l in &mut s.limits {
            l.episodes_s = det.episodes_of(&l.limit);
        }
        for v in sim.take_violations() {
            violations.push(format!("{name}: {v}"));
        }
        per_server.push(s);
    }
    if !violations.is_empty() {
        return Err(RunError::Invariant(violations.join("; ")));
    }
    let mut summary = f.summarize(end, per_server, farm_events);
    summary.wall_seconds = round6(wall.elapsed().as_secs_f64());
    // Every user request and every attempt is accounted for.
    let r = &summary.requests;
    let fs = summary.farm.as_ref().expect("a farm summary");
    let routed: u64 = fs.servers.iter().map(|s| s.routed).sum::<u64>()
        + fs.load_balancer.as_ref().map_or(0, |l| l.rejected_all_out);
    if r.arrived != r.completed + r.failed + r.in_flight
        || (fs.load_balancer.is_some() && routed != fs.attempts)
        || fs.attempts != fs.user_requests + fs.retries
    {
        return Err(RunError::Invariant(format!(
            "farm requests not conserved: {r:?}, {} attempts ({} retries), {routed} routed or rejected",
            fs.attempts, fs.retries
        )));
    }
    Ok(summary)
}

impl Front<'_> {
    fn on_event(
        &mut self,
        now: SimTime,
        ev: FarmEv,
        sims: &mut [Simulation<'_>],
        next: &mut NextTimes,
        sink: &mut dyn SampleSink,
    ) -> Result<(), RunError> {
        match ev {
            FarmEv::Open(src, timer) => {
                let batch = self
                    .sources
                    .open_timer(now, src, timer, &mut self.cal, FarmEv::Open);
                for _ in 0..batch.count {
                    let class = self.sources.class_of(src, &batch);
                    self.begin_user(now, class, NO_USER, sims, next);
                }
            }
            FarmEv::User(timer) => {
                let class = self.sources.user_timer(now, timer);
                self.begin_user(now, class, timer.0, sims, next);
            }
            FarmEv::Client(timer) => {
                let (verdict, attempt) = self.clients.on_timer(
                    now,
                    timer,
                    &mut Fx {
                        cal: &mut self.cal,
                        wrap: FarmEv::Client,
                    },
                );
                if timer == ClientTimer::Timeout && verdict != Verdict::Stale {
                    self.attempt_outcomes[I_TIMEOUT] += 1;
                    self.interval.timeouts += 1;
                }
                self.verdict(now, verdict, I_TIMEOUT);
                if let Some(a) = attempt {
                    self.send(now, a, sims, next);
                }
            }
            FarmEv::Lb(timer) => {
                if let Some(lb) = self.lb.as_mut() {
                    lb.on_timer(
                        now,
                        timer,
                        &mut Fx {
                            cal: &mut self.cal,
                            wrap: FarmEv::Lb,
                        },
                    );
                }
                self.lb_follow_up(now, sims, next);
            }
            FarmEv::Sample => {
                self.sample(now, sink)?;
                let end = self.scn.duration.0;
                let t = now + self.scn.sample_interval.0;
                if t <= end {
                    self.cal.schedule(t, FarmEv::Sample);
                } else if now < end {
                    self.cal.schedule(end, FarmEv::Sample);
                }
            }
            FarmEv::WarmupEnd => {
                self.window = FarmWindow::new(now, self.scn.classes.len());
                self.user_in_flight.reset_window(now);
                if let Some(lb) = self.lb.as_mut() {
                    lb.in_rotation.reset_window(now);
                }
            }
        }
        Ok(())
    }

    fn begin_user(
        &mut self,
        now: SimTime,
        class: ClassId,
        user: u32,
        sims: &mut [Simulation<'_>],
        next: &mut NextTimes,
    ) {
        self.begun += 1;
        self.window.begun += 1;
        self.interval.begun += 1;
        self.user_in_flight.inc(now);
        let a = self.clients.begin(
            now,
            class,
            user,
            &mut Fx {
                cal: &mut self.cal,
                wrap: FarmEv::Client,
            },
        );
        self.send(now, a, sims, next);
    }

    /// Sends an attempt through the balancer (or straight to the only server).
    fn send(
        &mut self,
        now: SimTime,
        a: Attempt,
        sims: &mut [Simulation<'_>],
        next: &mut NextTimes,
    ) {
        self.interval.attempts += 1;
        if a.number > 1 {
            self.interval.retries += 1;
        }
        let target = match self.lb.as_mut() {
            Some(lb) => lb.route(),
            None => Some(0),
        };
        match target {
            Some(s) => {
                self.interval.routed[s] += 1;
                sims[s].inject(now, a.class, a.user, a.token());
                next.set(s, sims[s].next_time().unwrap_or(SimTime::MAX));
                if sims[s].has_completed() {
                    // Answered at once (e.g. 503 QueueFull at the door).
                    self.on_completed(now, s, sims, next);
                }
            }
            None => {
                self.attempt_outcomes[I_NO_SERVER] += 1;
                self.interval.rejected += 1;
                let v = self.clients.answered(
                    now,
                    a.token(),
                    now,
                    Answer::Unavailable,
                    &mut Fx {
                        cal: &mut self.cal,
                        wrap: FarmEv::Client,
                    },
                );
                self.verdict(now, v, I_NO_SERVER);
            }
        }
    }

    /// Server `s` answered attempts (or probes).
    fn on_completed(
        &mut self,
        now: SimTime,
        s: usize,
        sims: &mut [Simulation<'_>],
        next: &mut NextTimes,
    ) {
        let mut done = std::mem::take(&mut self.answers);
        sims[s].swap_completed(&mut done);
        for &Ended {
            origin,
            outcome,
            arrived,
        } in &done
        {
            if origin & PROBE != 0 {
                let seq = (origin >> 16) as u32;
                if let Some(lb) = self.lb.as_mut() {
                    lb.probe_answered(
                        now,
                        s,
                        seq,
                        outcome == Outcome::Ok,
                        &mut Fx {
                            cal: &mut self.cal,
                            wrap: FarmEv::Lb,
                        },
                    );
                }
                continue;
            }
            if outcome != Outcome::Ok {
                self.interval.failed_at[s] += 1;
            }
            if let Some(lb) = self.lb.as_mut() {
                lb.answered_with(
                    now,
                    s,
                    fails_server(outcome),
                    &mut Fx {
                        cal: &mut self.cal,
                        wrap: FarmEv::Lb,
                    },
                );
            }
            let v = self.clients.answered(
                now,
                origin,
                arrived,
                answer_of(outcome),
                &mut Fx {
                    cal: &mut self.cal,
                    wrap: FarmEv::Client,
                },
            );
            if v == Verdict::Stale {
                self.stale_answers += 1;
            } else {
                self.attempt_outcomes[outcome.index()] += 1;
            }
            self.verdict(now, v, outcome.index());
        }
        done.clear();
        self.answers = done;
        self.lb_follow_up(now, sims, next);
    }

    /// Sends the probes the balancer asked for and records its removals.
    #[inline]
    fn lb_follow_up(&mut self, now: SimTime, sims: &mut [Simulation<'_>], next: &mut NextTimes) {
        if self.lb.as_ref().is_some_and(|lb| lb.has_output()) {
            self.lb_output(now, sims, next);
        }
    }

    #[cold]
    fn lb_output(&mut self, now: SimTime, sims: &mut [Simulation<'_>], next: &mut NextTimes) {
        let Some(lb) = self.lb.as_mut() else { return };
        while let Some(e) = lb.poll_event() {
            let (kind, server, detail) = match e {
                LbEvent::Removed { server, reason } => ("lb_removed", server, reason),
                LbEvent::Reinstated { server } => ("lb_reinstated", server, "its probe passed"),
            };
            let s = server as usize;
            if kind == "lb_removed" && self.first_removed[s].is_none() {
                self.first_removed[s] = Some(round6(as_secs(now)));
            }
            self.events.push(RunEvent {
                at_s: round6(as_secs(now)),
                kind: kind.into(),
                detail: format!("{}: {detail}", self.names[s]),
            });
        }
        let mut probes = Vec::new();
        while let Some(p) = lb.poll_probe() {
            probes.push(p);
        }
        for p in probes {
            let s = p.server as usize;
            let origin = PROBE | ((p.seq as u64) << 16) | p.server as u64;
            sims[s].inject(now, self.probe_class, NO_USER, origin);
            next.set(s, sims[s].next_time().unwrap_or(SimTime::MAX));
            if sims[s].has_completed() {
                self.on_completed(now, s, sims, next);
            }
        }
    }

    /// Records a user request that is over; a closed-loop user thinks again.
    fn verdict(&mut self, now: SimTime, v: Verdict, last: usize) {
        let Verdict::Done(d) = v else { return };
        let ok = d.last == Answer::Ok;
        let k = if ok { Outcome::Ok.index() } else { last };
        self.outcomes[k] += 1;
        self.user_in_flight.dec(now);
        let sojourn = now - d.started;
        if ok {
            self.interval.ok += 1;
            self.interval_latency.record(sojourn);
        } else {
            self.interval.failed += 1;
        }
        if d.started >= self.window.start {
            self.window.outcomes[k] += 1;
            self.window.sojourn_sum_ns += sojourn as u128;
            if ok {
                self.window.ok += 1;
                self.window.latency.record(sojourn);
                if self.window.by_class.len() > 1 {
                    self.window.by_class[d.class as usize].record(sojourn);
                }
            } else {
                self.window.failed += 1;
            }
        }
        if d.user != NO_USER {
            self.sources
                .user_done(now, d.user, &mut self.cal, FarmEv::User);
        }
    }

    fn sample(&mut self, now: SimTime, sink: &mut dyn SampleSink) -> Result<(), RunError> {
        let [p99] = self.interval_latency.quantiles_ms([0.99]);
        let dt = self.scn.sample_interval.0 as f64 * 1e-9;
        let per_s = |x: u64| round6(x as f64 / dt);
        let i = std::mem::replace(
            &mut self.interval,
            Interval {
                routed: vec![0; self.names.len()],
                failed_at: vec![0; self.names.len()],
                ..Default::default()
            },
        );
        let mut row = vec![
            round6(as_secs(now)),
            per_s(i.begun),
            per_s(i.attempts),
            per_s(i.retries),
            per_s(i.ok),
            per_s(i.failed),
            per_s(i.timeouts),
            self.user_in_flight.get() as f64,
            round6(p99),
        ];
        self.interval_latency.reset();
        let n = self.names.len();
        match &self.lb {
            Some(lb) => {
                row.push(lb.in_rotation_now() as f64);
                row.push((0..n).map(|s| lb.removals(s) as f64).sum());
            }
            None => {
                row.push(n as f64);
                row.push(0.0);
            }
        }
        row.push(per_s(i.rejected));
        let denied = self.clients.retries_denied;
        row.push(per_s(denied - self.denied_at_sample));
        self.denied_at_sample = denied;
        for s in 0..n {
            row.push(per_s(i.routed[s]));
            let (inr, active) = match &self.lb {
                Some(lb) => (
                    (lb.state(s) == w3sim_models::load_balancer::ServerState::InRotation) as u8
                        as f64,
                    lb.active(s) as f64,
                ),
                None => (1.0, 0.0),
            };
            row.push(inr);
            row.push(per_s(i.failed_at[s]));
            row.push(active);
        }
        sink.row(&row)?;
        Ok(())
    }

    fn summarize(mut self, end: SimTime, servers: Vec<Summary>, farm_events: u64) -> Summary {
        let scn = self.scn;
        let w = &self.window;
        let span_s = as_secs(end.saturating_sub(w.start)).max(1e-12);
        let ok_total = self.outcomes[Outcome::Ok.index()];
        let failed_total: u64 = self.outcomes.iter().sum::<u64>() - ok_total;
        let measured =
            MeasuredSummary::new(w.start, end, w.begun, w.ok, w.failed, to_map(&w.outcomes));
        let littles_law = LittlesLaw::new(
            self.user_in_flight.mean(end),
            w.begun,
            span_s,
            w.sojourn_sum_ns,
            w.ok + w.failed,
        );
        let latency_ms = LatencyByClass::new(
            scn.classes.iter().map(|c| c.name.as_str()),
            &w.latency,
            &w.by_class,
        );
        // Limits: every server's, in time order, named by server.
        let mut limits: Vec<LimitHit> = servers
            .iter()
            .zip(&self.names)
            .flat_map(|(s, name)| {
                s.limits.iter().map(move |l| LimitHit {
                    at_s: l.at_s,
                    limit: l.limit.clone(),
                    detail: format!("{name}: {}", l.detail),
                    episodes_s: l.episodes_s.clone(),
                })
            })
            .collect();
        limits.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
        let min_in_rotation = lb_min(&self.events_min_marker(), self.names.len());
        let own: Vec<crate::incidents::Event> = self
            .events
            .iter()
            .map(|e| crate::incidents::Event {
                time_s: e.at_s,
                kind: e.kind.clone(),
                detail: e.detail.clone(),
            })
            .collect();
        let mut marked = std::mem::take(&mut self.events);
        for (s, name) in servers.iter().zip(&self.names) {
            marked.extend(s.marked_events.iter().map(|e| RunEvent {
                at_s: e.at_s,
                kind: e.kind.clone(),
                detail: format!("{name}: {}", e.detail),
            }));
        }
        marked.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
        let incidents = crate::incidents::merge_farm(
            servers
                .iter()
                .zip(&self.names)
                .map(|(s, n)| (n.clone(), s.incidents.clone()))
                .collect(),
            crate::incidents::farm_event_incidents(&own),
        );
        let n = self.names.len();
        let total_routed: u64 = self
            .lb
            .as_ref()
            .map_or(0, |lb| (0..n).map(|s| lb.routed(s)).sum());
        let server_summaries: Vec<FarmServerSummary> = servers
            .into_iter()
            .enumerate()
            .map(|(s, summary)| {
                let (routed, removals, out_s) = match &self.lb {
                    Some(lb) => (
                        lb.routed(s),
                        lb.removals(s),
                        round6(lb.out_ns(s, end) as f64 * 1e-9),
                    ),
                    None => (summary.requests.arrived, 0, 0.0),
                };
                FarmServerSummary {
                    name: self.names[s].clone(),
                    weight: self.lb.as_ref().map_or(1, |lb| lb.weight(s)),
                    routed,
                    share: if total_routed == 0 {
                        1.0
                    } else {
                        round6(routed as f64 / total_routed as f64)
                    },
                    removals,
                    first_removed_at_s: self.first_removed[s],
                    out_of_rotation_seconds: out_s,
                    summary,
                }
            })
            .collect();
        let lb = self.lb.as_ref().map(|lb| LbSummary {
            policy: match scn.load_balancer.policy {
                LbPolicy::RoundRobin => "round_robin",
                LbPolicy::LeastConnections => "least_connections",
                LbPolicy::Random => "random",
            }
            .into(),
            removals: (0..n).map(|s| lb.removals(s) as u64).sum(),
            servers_ever_removed: (0..n).filter(|&s| lb.removals(s) > 0).count() as u64,
            rejected_all_out: lb.rejected_all_out,
            probes_sent: lb.probes_sent,
            probes_failed: lb.probes_failed,
            mean_servers_in_rotation: round6(lb.in_rotation.mean(end)),
            min_servers_in_rotation: min_in_rotation,
        });
        let attempts = self.clients.attempts;
        let farm = FarmSummary {
            servers: server_summaries,
            user_requests: self.begun,
            attempts,
            retries: self.clients.retries,
            retries_denied_by_budget: self.clients.retries_denied,
            attempts_per_user_request: if self.begun == 0 {
                0.0
            } else {
                round6(attempts as f64 / self.begun as f64)
            },
            client_timeouts: self.clients.timeouts,
            attempt_outcomes: to_map(&self.attempt_outcomes),
            late_answers_ignored: self.stale_answers,
            load_balancer: lb,
        };
        let events: u64 = farm_events + farm.servers.iter().map(|s| s.summary.events).sum::<u64>();
        let peak_slots = self.clients.capacity() as u64
            + farm
                .servers
                .iter()
                .map(|s| s.summary.peak_request_slots)
                .sum::<u64>();
        let cpu = farm
            .servers
            .iter()
            .map(|s| s.summary.cpu_utilization_pct)
            .sum::<f64>()
            / n.max(1) as f64;
        // Every server's pool, summed: a crash or a startup failure anywhere shows at the top.
        let mut app_pool = crate::stats::AppPoolSummary::default();
        for s in &farm.servers {
            app_pool.add(&s.summary.app_pool);
        }
        Summary {
            w3sim_version: env!("CARGO_PKG_VERSION"),
            scenario: scn.name.clone(),
            seed: scn.seed,
            requests: RequestTotals {
                arrived: self.begun,
                completed: ok_total,
                failed: failed_total,
                in_flight: self.clients.in_flight(),
            },
            outcomes: to_map(&self.outcomes),
            measured,
            latency_ms,
            littles_law,
            cpu_utilization_pct: round6(cpu),
            first_limit: limits.first().cloned(),
            limits,
            marked_events: marked,
            events,
            simulated_seconds: round6(as_secs(end)),
            peak_request_slots: peak_slots,
            incidents,
            app_pool,
            farm: Some(farm),
            ..Default::default()
        }
    }

    fn events_min_marker(&self) -> Vec<(f64, i64)> {
        let mut v = Vec::new();
        for e in &self.events {
            match e.kind.as_str() {
                "lb_removed" => v.push((e.at_s, -1)),
                "lb_reinstated" => v.push((e.at_s, 1)),
                _ => {}
            }
        }
        v
    }
}

/// The fewest servers in rotation at any time, from the removals and reinstatements.
fn lb_min(changes: &[(f64, i64)], n: usize) -> u64 {
    let mut cur = n as i64;
    let mut min = cur;
    for &(_, d) in changes {
        cur += d;
        min = min.min(cur);
    }
    min.max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_times_give_the_earliest_server_and_the_lowest_index_on_ties() {
        let mut n = NextTimes::new(5);
        assert_eq!(n.min(), (SimTime::MAX, usize::MAX));
        n.set(3, 70);
        n.set(1, 90);
        n.set(4, 70);
        assert_eq!(n.min(), (70, 3));
        n.set(3, SimTime::MAX); // server 3 has nothing left
        assert_eq!(n.min(), (70, 4));
        n.set(0, 70);
        assert_eq!(n.min(), (70, 0));
        n.set(0, 100);
        n.set(4, 100);
        assert_eq!(n.min(), (90, 1));
    }

    proptest::proptest! {
        /// After any sequence of updates (the early exit included) the tree's minimum is
        /// the brute-force minimum of the servers' times, lowest index on ties.
        #[test]
        fn next_times_match_a_linear_scan(
            n in 1usize..40,
            updates in proptest::collection::vec((0usize..40, 0u64..20), 0..300),
        ) {
            let mut tree = NextTimes::new(n);
            let mut times = vec![SimTime::MAX; n];
            for (i, t) in updates {
                let i = i % n;
                // Few distinct times: ties and unchanged values are common.
                let t = if t == 19 { SimTime::MAX } else { t * 1000 };
                tree.set(i, t);
                times[i] = t;
                let want = times
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| **t != SimTime::MAX)
                    .min_by_key(|&(i, t)| (*t, i))
                    .map_or((SimTime::MAX, usize::MAX), |(i, t)| (*t, i));
                proptest::prop_assert_eq!(tree.min(), want);
            }
        }
    }
}
