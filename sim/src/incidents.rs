//! The story of a run: incidents detected from the time series as it is produced.
//!
//! [`Detector`] is a [`SampleSink`] wrapper: it sees every row on its way to the real
//! sink (or alone, over an existing `timeseries.csv`: [`detect_file`]) and keeps only a
//! few numbers per condition, so `w3sim::run` can fill `summary.json`'s `incidents`
//! without keeping the series. Each incident is a limit reached (HTTP.SYS queue full,
//! ASP.NET requestQueueLimit, IIS appConcurrentRequestLimit, ASP.NET's concurrency
//! limit, thread-pool starvation, CPU saturation, ports exhausted, a long GC pause), a
//! failure outcome appearing (`503_queue_full` at N/s), or a marked event
//! (`events.csv`: app-pool recycle, server removed, …), with when it began, its peak
//! and when it cleared. The first limit reached is the *headline*; each later incident
//! names the one that probably caused it (the latest limit still active when it began,
//! or the limit that answers with its outcome).
//!
//! Conditions are read from perfmon-named columns; a missing column disables its
//! condition, so the detector works on older and newer time series alike.

use std::io;
use std::path::Path;

use serde::Serialize;

use crate::output::SampleSink;
use crate::scenario::Scenario;

/// Default ephemeral port range (`netsh int ipv4 show dynamicport tcp`: 49152–65535).
pub const DEFAULT_DYNAMIC_PORT_COUNT: u32 = 16384;

/// The limits the detector compares the counters with.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// HTTP.SYS `queueLength`.
    pub queue_length: f64,
    /// The site's `maxConnections` (4294967295: none).
    pub max_connections: f64,
    /// ASP.NET `requestQueueLimit`.
    pub request_queue_limit: f64,
    /// IIS `appConcurrentRequestLimit`.
    pub app_concurrent_request_limit: f64,
    /// ASP.NET `maxConcurrentRequestsPerCPU` × logical processors.
    pub aspnet_concurrency: f64,
    /// Ephemeral ports available for outgoing connections.
    pub dynamic_port_count: f64,
    /// A blocking GC pause at least this long (ms) is an incident.
    pub gc_pause_ms: f64,
    /// CPU at or above this percentage for `persist` samples is an incident.
    pub cpu_saturated_pct: f64,
    /// A soft condition (starvation, CPU, native queue) must hold this many samples.
    pub persist: u32,
    /// An incident clears after its condition is false this many samples in a row.
    pub clear_after: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            queue_length: 1000.0,
            max_connections: u32::MAX as f64,
            request_queue_limit: 5000.0,
            app_concurrent_request_limit: 5000.0,
            aspnet_concurrency: 5000.0 * 16.0,
            dynamic_port_count: DEFAULT_DYNAMIC_PORT_COUNT as f64,
            gc_pause_ms: 100.0,
            cpu_saturated_pct: 95.0,
            persist: 2,
            clear_after: 3,
        }
    }
}

impl Limits {
    /// The limits of a scenario, with the default port range (16384).
    pub fn from_scenario(scn: &Scenario) -> Self {
        Self::from_scenario_with_ports(scn, DEFAULT_DYNAMIC_PORT_COUNT)
    }

    /// The limits of a scenario with its port range (`scn.tcp.dynamic_port_count`).
    pub fn from_scenario_with_ports(scn: &Scenario, dynamic_port_count: u32) -> Self {
        // ASP.NET Core in process has neither requestQueueLimit nor the native queue.
        let system_web = scn.hosting() == crate::scenario::Hosting::SystemWeb;
        Limits {
            queue_length: scn.http_sys.queue_length as f64,
            max_connections: scn.http_sys.max_connections as f64,
            request_queue_limit: if system_web {
                scn.aspnet.request_queue_limit as f64
            } else {
                f64::INFINITY
            },
            app_concurrent_request_limit: scn.iis.app_concurrent_request_limit as f64,
            aspnet_concurrency: if system_web {
                scn.aspnet.max_concurrent_requests_per_cpu as f64
                    * scn.cpu.logical_processors as f64
            } else {
                f64::INFINITY
            },
            dynamic_port_count: dynamic_port_count as f64,
            ..Limits::default()
        }
    }

    /// The limits written in a run directory's `scenario.toml`, read as a generic TOML
    /// table (so it works for scenarios written by older or newer versions); defaults
    /// for what is absent.
    pub fn from_scenario_toml(text: &str) -> Self {
        let mut l = Limits::default();
        let Ok(t) = text.parse::<toml::Table>() else {
            return l;
        };
        let num = |table: &str, key: &str| -> Option<f64> {
            let v = t.get(table)?.get(key)?;
            v.as_integer().map(|i| i as f64).or_else(|| v.as_float())
        };
        if let Some(v) = num("http_sys", "queue_length") {
            l.queue_length = v;
        }
        if let Some(v) = num("http_sys", "max_connections") {
            l.max_connections = v;
        }
        if let Some(v) = num("aspnet", "request_queue_limit") {
            l.request_queue_limit = v;
        }
        if let Some(v) = num("iis", "app_concurrent_request_limit") {
            l.app_concurrent_request_limit = v;
        }
        let cpus = num("cpu", "logical_processors").unwrap_or(16.0);
        l.aspnet_concurrency =
            num("aspnet", "max_concurrent_requests_per_cpu").unwrap_or(5000.0) * cpus;
        if let Some(v) = num("tcp", "dynamic_port_count") {
            l.dynamic_port_count = v;
        }
        // ASP.NET Core in process (`aspnet.hosting`, else the runtime's) has neither.
        use crate::scenario::{Hosting, Runtime};
        let value = |table: &str, key: &str| t.get(table)?.get(key).cloned();
        let hosting = value("aspnet", "hosting")
            .and_then(|v| v.try_into::<Hosting>().ok())
            .unwrap_or_else(|| {
                Hosting::default_for(
                    value("thread_pool", "runtime")
                        .and_then(|v| v.try_into::<Runtime>().ok())
                        .unwrap_or(Runtime::Net48),
                )
            });
        if hosting == Hosting::AspnetCore {
            l.request_queue_limit = f64::INFINITY;
            l.aspnet_concurrency = f64::INFINITY;
        }
        l
    }

    /// [`Limits::from_scenario_toml`] on `DIR/scenario.toml` (defaults when absent); a
    /// file that is there but not TOML is an error, not silently the defaults.
    pub fn from_run_dir(dir: &Path) -> Result<Self, String> {
        let path = dir.join("scenario.toml");
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(Self::default());
        };
        text.parse::<toml::Table>().map_err(|e| {
            let (line, col) = e
                .span()
                .map_or((1, 1), |s| crate::scenario::load::line_col(&text, s.start));
            format!("{}:{line}:{col}: not TOML: {}", path.display(), e.message())
        })?;
        Ok(Self::from_scenario_toml(&text))
    }
}

/// One incident of a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Incident {
    /// When the condition was first seen (simulated seconds).
    pub time_s: f64,
    /// Stable name: `thread_pool_starvation`, `http_sys_queue_full`,
    /// `aspnet_queue_full`, `iis_concurrent_request_limit`, `aspnet_concurrency_limit`,
    /// `cpu_saturated`, `ports_exhausted`, `gc_pause`, `outcome:<name>`, `event:<kind>`.
    pub kind: String,
    /// One line for people: what was reached, with the figures at the time.
    pub message: String,
    /// When it cleared; `None`: still active at the end of the run (or an instant event).
    pub cleared_s: Option<f64>,
    /// The counter's value when the incident began, and its peak.
    pub value: f64,
    pub peak: f64,
    /// The limit it reached, if it has one.
    pub limit: Option<f64>,
    /// Index (in the same list) of the incident that probably caused this one.
    pub caused_by: Option<usize>,
    /// The first limit reached in the run.
    pub headline: bool,
}

impl Incident {
    /// A limit (not an outcome or a marked event).
    pub fn is_limit(&self) -> bool {
        !self.kind.starts_with("outcome:") && !self.kind.starts_with("event:")
    }
}

/// Columns the detector reads.
mod col {
    pub const TIME: &str = "time_s";
    pub const REJECTION: &str = "HTTP Service Request Queues\\RejectionRate";
    pub const QUEUE_SIZE: &str = "HTTP Service Request Queues\\CurrentQueueSize";
    pub const OUTSTANDING: &str = "w3sim\\HTTP.SYS Outstanding Requests";
    pub const ACTIVE: &str = "W3SVC_W3WP\\Active Requests";
    pub const CONNECTIONS: &str = "Web Service\\Current Connections";
    pub const CURRENT: &str = "ASP.NET\\Requests Current";
    pub const NATIVE: &str = "ASP.NET\\Requests In Native Queue";
    pub const THREADS: &str = "System.Runtime\\ThreadPool Thread Count";
    pub const TP_QUEUE: &str = "System.Runtime\\ThreadPool Queue Length";
    pub const GOAL: &str = "w3sim\\ThreadPool Goal";
    pub const CPU: &str = "Processor(_Total)\\% Processor Time";
    pub const GC_PCT: &str = ".NET CLR Memory\\% Time in GC";
    pub const GC_SUSPENDED: &str = "w3sim\\GC Suspended";
    pub const PORTS_IN_USE: &str = "w3sim\\Ports In Use";
    pub const PORTS_TIME_WAIT: &str = "w3sim\\Ports In TIME_WAIT";
    pub const WSAENOBUFS: &str = "w3sim\\WSAENOBUFS/sec";
    pub const LOOPBACK_QUEUE: &str =
        "Network Interface(MS TCP Loopback interface)\\Output Queue Length";
    pub const LOCK_WAITERS: &str = "w3sim\\Delayed Workers Waiting On Lock";
    pub const OUTCOME_PREFIX: &str = "w3sim\\Outcome ";
    pub const OUTCOME_SUFFIX: &str = "/sec";
}

/// The outcome name of an outcome column (`w3sim\Outcome 503_queue_full/sec` → `503_queue_full`).
pub fn outcome_name(column: &str) -> Option<&str> {
    column
        .strip_prefix(col::OUTCOME_PREFIX)?
        .strip_suffix(col::OUTCOME_SUFFIX)
}

/// A readable outcome name: `503_queue_full` → `503 QueueFull`.
pub fn outcome_label(name: &str) -> String {
    match name {
        "503_queue_full" => "503 QueueFull".into(),
        "503_conn_limit" => "503 ConnLimit".into(),
        "500_request_timed_out" => "500 Request timed out".into(),
        "connection_expired_timer_app_pool" => "connection expired (Timer_AppPool)".into(),
        "503_2_concurrent_request_limit" => "503.2 (appConcurrentRequestLimit)".into(),
        "503_server_too_busy" => "503 Server Too Busy".into(),
        "wsaenobufs" => "WSAENOBUFS".into(),
        "connection_reset_queue_full" => "connection reset (QueueFull, TcpLevel)".into(),
        "connection_reset_app_offline" => "connection reset (AppOffline, TcpLevel)".into(),
        n => n.to_string(),
    }
}

/// Pipeline depth of a limit (deepest first) to order incidents that begin in the same
/// sample: back-pressure travels from the deep components to the front.
fn depth(kind: &str) -> u32 {
    match kind {
        // A failover is what the probes' timeouts led to, not a cause of anything the
        // model simulates (the service is not moved): it sits with the outcomes.
        FAILOVER => 9,
        k if k.starts_with("event:") => 0,
        "gc_pause" => 1,
        "cpu_saturated" => 2,
        "ports_exhausted" => 3,
        "loopback_stalled" => 3,
        "thread_pool_starvation" => 4,
        "aspnet_concurrency_limit" => 5,
        "aspnet_queue_full" => 6,
        "iis_concurrent_request_limit" => 7,
        "http_sys_queue_full" => 8,
        "site_connection_limit" => 8,
        _ => 9,
    }
}

/// The marked event of a local health probe's failover (`failover_after` timeouts in a row).
const FAILOVER: &str = "event:failover";

/// The limit whose refusals carry this outcome.
/// The incidents a limit of `summary.json`'s `limits` shows up as: the condition and the
/// outcome it answers with (an exact first time for both).
/// The limits [`incident_kinds_of_limit`] knows.
const LIMIT_NAMES: &[&str] = &[
    "http_sys.queue_length",
    "aspnet.request_queue_limit",
    "http_sys.max_connections",
    "http_sys.connection_timeout",
    "iis.app_concurrent_request_limit",
    "aspnet.max_concurrent_requests_per_cpu",
    "aspnet.execution_timeout",
    "tcp.dynamic_port_count",
];

fn incident_kinds_of_limit(limit: &str) -> &'static [&'static str] {
    match limit {
        "http_sys.queue_length" => &[
            "http_sys_queue_full",
            "outcome:503_queue_full",
            "outcome:connection_reset_queue_full",
        ],
        "aspnet.request_queue_limit" => &["aspnet_queue_full", "outcome:503_server_too_busy"],
        "http_sys.max_connections" => &["site_connection_limit", "outcome:503_conn_limit"],
        "http_sys.connection_timeout" => &["outcome:connection_expired_timer_app_pool"],
        "iis.app_concurrent_request_limit" => &[
            "iis_concurrent_request_limit",
            "outcome:503_2_concurrent_request_limit",
        ],
        "aspnet.max_concurrent_requests_per_cpu" => &["aspnet_concurrency_limit"],
        "aspnet.execution_timeout" => &["outcome:500_request_timed_out"],
        "tcp.dynamic_port_count" => &[
            "ports_exhausted",
            "outcome:wsaenobufs",
            "outcome:wsaeaddrinuse",
        ],
        _ => &[],
    }
}

fn limit_of_outcome(outcome: &str) -> Option<&'static str> {
    match outcome {
        "503_queue_full" | "connection_reset_queue_full" => Some("http_sys_queue_full"),
        "503_conn_limit" => Some("site_connection_limit"),
        "503_server_too_busy" => Some("aspnet_queue_full"),
        "503_2_concurrent_request_limit" => Some("iis_concurrent_request_limit"),
        "wsaenobufs" | "wsaeaddrinuse" => Some("ports_exhausted"),
        _ => None,
    }
}

/// State of one condition across samples.
#[derive(Clone, Debug, Default)]
struct Cond {
    /// Consecutive samples the condition held (before it became active).
    on_run: u32,
    /// The first of those samples: time and the row's figures.
    pending: Option<(f64, f64, String)>,
    /// Consecutive samples it did not hold while active.
    off_run: u32,
    off_since: f64,
    /// Index of the open incident.
    open: Option<usize>,
    /// Extra state (thread count at onset for starvation).
    start_aux: f64,
    /// The limit reached in the interval before the first of those samples, and when:
    /// the incident begins then.
    pending_hit: Option<(f64, &'static str)>,
}

/// Hard conditions (a limit reached) take one sample; soft ones `persist`.
struct Check {
    kind: String,
    holds: bool,
    value: f64,
    limit: Option<f64>,
    message: String,
    soft: bool,
    aux: f64,
}

const MAX_PER_KIND: usize = 50;

/// Streaming incident detector (see the module documentation).
pub struct Detector<'a> {
    inner: Option<&'a mut dyn SampleSink>,
    limits: Limits,
    idx: Vec<Option<usize>>,
    names: Vec<String>,
    outcome_cols: Vec<(usize, String)>,
    conds: std::collections::BTreeMap<String, Cond>,
    incidents: Vec<Incident>,
    dropped: usize,
    last_t: f64,
    prev_t: f64,
    last_threads: f64,
    /// A blocking-GC episode in progress: start, suspended ms so far.
    gc_episode: Option<(f64, f64)>,
    /// Limits reached in the interval the next row ends (first time in it).
    row_hits: Vec<(f64, &'static str)>,
    /// The limits' times that dated an incident's start (one per incident at most).
    dated: Vec<(f64, &'static str)>,
    /// The shortest time between two rows (the sample interval).
    interval_s: f64,
    /// Exact times limits were first reached (`summary.json`'s `limits`): (time, name).
    limit_hits: Vec<(f64, String)>,
}

impl<'a> Detector<'a> {
    /// A detector passing every call on to `inner`.
    pub fn new(inner: &'a mut dyn SampleSink, limits: Limits) -> Self {
        let mut d = Self::standalone(limits);
        d.inner = Some(inner);
        d
    }

    /// A detector with no sink behind it.
    pub fn standalone(limits: Limits) -> Self {
        Detector {
            inner: None,
            limits,
            idx: Vec::new(),
            names: Vec::new(),
            outcome_cols: Vec::new(),
            conds: Default::default(),
            incidents: Vec::new(),
            dropped: 0,
            last_t: 0.0,
            prev_t: 0.0,
            last_threads: 0.0,
            gc_episode: None,
            row_hits: Vec::new(),
            dated: Vec::new(),
            interval_s: f64::INFINITY,
            limit_hits: Vec::new(),
        }
    }

    /// The limits in use.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A marked event (app-pool recycle, server removed, failover) from a component or
    /// from `events.csv`.
    pub fn event(&mut self, time_s: f64, kind: &str, detail: &str) {
        let message = if detail.is_empty() {
            kind.replace('_', " ")
        } else {
            format!("{}: {detail}", kind.replace('_', " "))
        };
        self.push(Incident {
            time_s,
            kind: format!("event:{kind}"),
            message,
            cleared_s: None,
            value: 0.0,
            peak: 0.0,
            limit: None,
            caused_by: None,
            headline: false,
        });
    }

    /// The exact time a limit was first reached (`summary.json`'s `limits[]`: `at_s`,
    /// `limit`). Incidents are read from the time series, but each that begins with a
    /// limit reached in the interval before its first row (the simulation tells the
    /// detector, [`SampleSink::limit_reached`]) is dated at that time, every episode;
    /// [`Detector::finish_incidents`] also moves the first incident of each kind a
    /// limit explains to the limit's first time (a farm's servers, runs read back).
    pub fn limit_hit(&mut self, time_s: f64, limit: &str) {
        self.limit_hits.push((time_s, limit.to_string()));
    }

    /// Moves the incident of each kind a recorded limit hit explains that the time series
    /// shows first after the hit to the hit's exact time, when that time lies within the
    /// sample interval before it (the first hit dates the first incident, each later
    /// episode's time its own).
    fn refine_with_limit_hits(&mut self) {
        for (at, name) in &self.limit_hits {
            for kind in incident_kinds_of_limit(name) {
                let next = self
                    .incidents
                    .iter_mut()
                    .filter(|x| x.kind == *kind && x.time_s >= *at)
                    .min_by(|a, b| a.time_s.total_cmp(&b.time_s));
                if let Some(x) = next
                    && *at > x.time_s - self.interval_s - 1e-9
                {
                    x.time_s = *at;
                }
            }
        }
    }

    /// The times at which `limit` began the incidents it explains (the first hit and each
    /// later episode the time series shows), for `summary.json`'s `limits[].episodes_s`.
    pub fn episodes_of(&self, limit: &str) -> Vec<f64> {
        let mut v: Vec<f64> = self
            .dated
            .iter()
            .filter(|(_, l)| *l == limit)
            .map(|&(t, _)| t)
            .collect();
        // One hit can date several kinds (the queue full and its 503s).
        v.sort_by(f64::total_cmp);
        v.dedup();
        v
    }

    fn push(&mut self, i: Incident) -> Option<usize> {
        if self.incidents.iter().filter(|x| x.kind == i.kind).count() >= MAX_PER_KIND {
            self.dropped += 1;
            return None;
        }
        self.incidents.push(i);
        Some(self.incidents.len() - 1)
    }

    fn get(&self, row: &[f64], name: &str) -> Option<f64> {
        let k = self.names.iter().position(|n| n == name)?;
        self.idx[k].and_then(|i| row.get(i).copied())
    }

    fn observe(&mut self, row: &[f64]) {
        let t = self.get(row, col::TIME).unwrap_or(self.last_t + 1.0);
        let dt = (t - self.last_t).max(1e-9);
        if t > self.last_t {
            self.interval_s = self.interval_s.min(t - self.last_t);
        }
        self.prev_t = self.last_t;
        self.last_t = t;
        let l = self.limits.clone();
        let mut checks: Vec<Check> = Vec::new();

        // GC: an episode is a run of samples taken during a blocking GC plus the
        // interval in which it ended; its length is the suspended share of those intervals.
        if let (Some(susp), Some(pct)) =
            (self.get(row, col::GC_SUSPENDED), self.get(row, col::GC_PCT))
        {
            let ms = pct / 100.0 * dt * 1000.0;
            match (&mut self.gc_episode, susp > 0.0) {
                (None, true) => self.gc_episode = Some((t - ms / 1000.0, ms)),
                (Some(e), true) => e.1 += ms,
                (Some(e), false) => {
                    let (start, total) = (e.0, e.1 + ms);
                    self.gc_episode = None;
                    if total >= l.gc_pause_ms {
                        self.push(Incident {
                            time_s: start,
                            kind: "gc_pause".into(),
                            message: format!(
                                "blocking GC pause of {total:.0} ms: managed code suspended (threshold {:.0} ms)",
                                l.gc_pause_ms
                            ),
                            cleared_s: Some(start + total / 1000.0),
                            value: total,
                            peak: total,
                            limit: Some(l.gc_pause_ms),
                            caused_by: None,
                            headline: false,
                        });
                    }
                }
                (None, false) => {}
            }
        }

        if let (Some(q), Some(th), Some(goal)) = (
            self.get(row, col::TP_QUEUE),
            self.get(row, col::THREADS),
            self.get(row, col::GOAL),
        ) {
            checks.push(Check {
                kind: "thread_pool_starvation".into(),
                holds: q > 0.0 && th >= goal && q >= th.max(1.0),
                value: q,
                limit: None,
                message: format!(
                    "thread pool starved: {th:.0} threads at their goal of {goal:.0}, {q:.0} work items waiting"
                ),
                soft: true,
                aux: th,
            });
            self.last_threads = th;
        }
        if let Some(lq) = self.get(row, col::LOOPBACK_QUEUE) {
            // DOMAIN §2.1: an Output Queue Length above 2 on the loopback interface means delay.
            let waiters = self.get(row, col::LOCK_WAITERS).unwrap_or(0.0);
            checks.push(Check {
                kind: "loopback_stalled".into(),
                holds: lq > 2.0,
                value: lq,
                limit: Some(2.0),
                message: format!(
                    "loopback stalled ({waiters:.0} of AFD's delayed worker threads waiting on a filter driver's lock): {lq:.0} loopback work items waiting for a worker"
                ),
                soft: true,
                aux: 0.0,
            });
        }
        if let Some(cpu) = self.get(row, col::CPU) {
            checks.push(Check {
                kind: "cpu_saturated".into(),
                holds: cpu >= l.cpu_saturated_pct,
                value: cpu,
                limit: Some(l.cpu_saturated_pct),
                message: format!("processors saturated: {cpu:.0} % busy"),
                soft: true,
                aux: 0.0,
            });
        }
        let out = |d: &Self, name: &str| -> f64 {
            d.outcome_cols
                .iter()
                .find(|(_, n)| n == name)
                .and_then(|(i, _)| row.get(*i).copied())
                .unwrap_or(0.0)
        };
        let in_use = self.get(row, col::PORTS_IN_USE);
        let tw = self.get(row, col::PORTS_TIME_WAIT);
        let enobufs = out(self, "wsaenobufs")
            + out(self, "wsaeaddrinuse")
            + self.get(row, col::WSAENOBUFS).unwrap_or(0.0);
        if in_use.is_some() || tw.is_some() || enobufs > 0.0 {
            let (u, w) = (in_use.unwrap_or(0.0), tw.unwrap_or(0.0));
            checks.push(Check {
                kind: "ports_exhausted".into(),
                holds: u + w >= l.dynamic_port_count || enobufs > 0.0,
                value: u + w,
                limit: Some(l.dynamic_port_count),
                message: format!(
                    "ephemeral ports exhausted: {u:.0} in use + {w:.0} in TIME_WAIT of {:.0}",
                    l.dynamic_port_count
                ),
                soft: false,
                aux: 0.0,
            });
        }
        if let Some(native) = self.get(row, col::NATIVE) {
            checks.push(Check {
                kind: "aspnet_concurrency_limit".into(),
                holds: native > 0.0,
                value: native,
                limit: Some(l.aspnet_concurrency),
                message: format!(
                    "ASP.NET concurrency limit reached ({:.0} = maxConcurrentRequestsPerCPU × CPUs): {native:.0} requests in the native queue",
                    l.aspnet_concurrency
                ),
                soft: true,
                aux: 0.0,
            });
        }
        if let Some(cur) = self.get(row, col::CURRENT) {
            let tb = out(self, "503_server_too_busy");
            checks.push(Check {
                kind: "aspnet_queue_full".into(),
                holds: cur >= l.request_queue_limit || tb > 0.0,
                value: cur,
                limit: Some(l.request_queue_limit),
                message: format!(
                    "ASP.NET requestQueueLimit reached: {cur:.0} requests current of {:.0}",
                    l.request_queue_limit
                ),
                soft: false,
                aux: 0.0,
            });
        }
        if let Some(act) = self.get(row, col::ACTIVE) {
            let r = out(self, "503_2_concurrent_request_limit");
            checks.push(Check {
                kind: "iis_concurrent_request_limit".into(),
                holds: act >= l.app_concurrent_request_limit || r > 0.0,
                value: act,
                limit: Some(l.app_concurrent_request_limit),
                message: format!(
                    "IIS appConcurrentRequestLimit reached: {act:.0} active requests of {:.0}",
                    l.app_concurrent_request_limit
                ),
                soft: false,
                aux: 0.0,
            });
        }
        if let Some(c) = self.get(row, col::CONNECTIONS)
            && l.max_connections < u32::MAX as f64
        {
            let r = out(self, "503_conn_limit");
            checks.push(Check {
                kind: "site_connection_limit".into(),
                holds: c >= l.max_connections || r > 0.0,
                value: c,
                limit: Some(l.max_connections),
                message: format!(
                    "the site's maxConnections reached: {c:.0} connections of {:.0}",
                    l.max_connections
                ),
                soft: false,
                aux: 0.0,
            });
        }
        let outstanding = self
            .get(row, col::OUTSTANDING)
            .or_else(|| self.get(row, col::QUEUE_SIZE));
        let rej = self.get(row, col::REJECTION);
        if outstanding.is_some() || rej.is_some() {
            let o = outstanding.unwrap_or(0.0);
            checks.push(Check {
                kind: "http_sys_queue_full".into(),
                holds: o >= l.queue_length || rej.unwrap_or(0.0) > 0.0,
                value: o,
                limit: Some(l.queue_length),
                message: if o >= l.queue_length {
                    format!(
                        "HTTP.SYS queue reached {o:.0} of queueLength {:.0}",
                        l.queue_length
                    )
                } else {
                    format!(
                        "HTTP.SYS queue full (queueLength {:.0}): {:.0} rejected/s, {o:.0} outstanding at the sample",
                        l.queue_length,
                        rej.unwrap_or(0.0)
                    )
                },
                soft: false,
                aux: 0.0,
            });
        }
        for (i, name) in self.outcome_cols.clone() {
            if name == "ok" {
                continue;
            }
            let v = row.get(i).copied().unwrap_or(0.0);
            checks.push(Check {
                kind: format!("outcome:{name}"),
                holds: v > 0.0,
                value: v,
                limit: None,
                message: format!("{} {v:.0}/s", outcome_label(&name)),
                soft: false,
                aux: 0.0,
            });
        }
        for c in checks {
            self.step(t, c);
        }
        self.row_hits.clear();
    }

    fn step(&mut self, t: f64, c: Check) {
        let need = if c.soft {
            self.limits.persist.max(1)
        } else {
            1
        };
        let clear_after = self.limits.clear_after.max(1);
        let mut st = self.conds.remove(&c.kind).unwrap_or_default();
        if let Some(i) = st.open {
            if c.holds {
                st.off_run = 0;
                let inc = &mut self.incidents[i];
                inc.peak = inc.peak.max(c.value);
            } else {
                if st.off_run == 0 {
                    st.off_since = t;
                }
                st.off_run += 1;
                if st.off_run >= clear_after {
                    self.close(i, st.off_since, st.start_aux, st.off_since);
                    st = Cond::default();
                }
            }
        } else if c.holds {
            if st.on_run == 0 {
                // A limit this kind shows reached in the interval this row ends: the
                // episode began then, not at the sample.
                st.pending_hit = self
                    .row_hits
                    .iter()
                    .filter(|(_, l)| incident_kinds_of_limit(l).contains(&c.kind.as_str()))
                    .copied()
                    .min_by(|a, b| a.0.total_cmp(&b.0));
                let at = st.pending_hit.map_or(t, |h| h.0);
                st.pending = Some((at, c.value, c.message.clone()));
                st.start_aux = c.aux;
            }
            st.on_run += 1;
            if st.on_run >= need {
                let (t0, v0, msg) = st.pending.take().expect("set at the first sample");
                st.open = self.push(Incident {
                    time_s: t0,
                    kind: c.kind.clone(),
                    message: msg,
                    cleared_s: None,
                    value: v0,
                    peak: v0.max(c.value),
                    limit: c.limit,
                    caused_by: None,
                    headline: false,
                });
                st.on_run = 0;
                if st.open.is_none() {
                    st = Cond::default();
                } else if let Some(h) = st.pending_hit.take() {
                    self.dated.push(h);
                }
            }
        } else {
            st.on_run = 0;
            st.pending = None;
            st.pending_hit = None;
        }
        self.conds.insert(c.kind, st);
    }

    /// Completes an incident's message with what happened while it lasted.
    fn close(&mut self, i: usize, cleared: f64, start_aux: f64, end_t: f64) {
        let threads_now = self.last_threads;
        let inc = &mut self.incidents[i];
        if inc.kind == "thread_pool_starvation" {
            let span = (end_t - inc.time_s).max(1e-9);
            let rate = (threads_now - start_aux) / span;
            inc.message.push_str(&format!(
                "; threads {start_aux:.0} → {threads_now:.0} in {span:.0} s ({rate:+.1} threads/s), peak {:.0} waiting",
                inc.peak
            ));
        } else if inc.kind.starts_with("outcome:") {
            inc.message.push_str(&format!(" (peak {:.0}/s)", inc.peak));
        } else if inc.kind != "gc_pause" && inc.peak > inc.value {
            inc.message.push_str(&format!(" (peak {:.0})", inc.peak));
        }
        if cleared.is_finite() {
            inc.cleared_s = Some(cleared);
        }
    }

    /// Ends detection: closes what is still open (`cleared_s = None`), orders the
    /// incidents by time (deepest component first within a sample), names causes and
    /// the headline.
    pub fn finish_incidents(&mut self) -> Vec<Incident> {
        let end = self.last_t;
        let open: Vec<(usize, f64)> = self
            .conds
            .values()
            .filter_map(|c| c.open.map(|i| (i, c.start_aux)))
            .collect();
        for (i, aux) in open {
            let cleared = f64::NAN;
            self.close(i, cleared, aux, end);
        }
        if let Some((start, total)) = self.gc_episode.take()
            && total >= self.limits.gc_pause_ms
        {
            self.push(Incident {
                time_s: start,
                kind: "gc_pause".into(),
                message: format!(
                    "blocking GC pause of at least {total:.0} ms, still going at the end"
                ),
                cleared_s: None,
                value: total,
                peak: total,
                limit: Some(self.limits.gc_pause_ms),
                caused_by: None,
                headline: false,
            });
        }
        self.conds.clear();
        self.refine_with_limit_hits();
        let mut v = std::mem::take(&mut self.incidents);
        order_and_link(&mut v);
        v
    }

    /// Incidents not recorded because a kind had more than 50 (flapping conditions).
    pub fn dropped(&self) -> usize {
        self.dropped
    }
}

/// Sorts incidents by time (deepest component first on ties), then sets `caused_by`
/// and `headline`. Idempotent; used after merging events into detected incidents.
pub fn order_and_link(v: &mut [Incident]) {
    v.sort_by(|a, b| {
        a.time_s
            .total_cmp(&b.time_s)
            .then(depth(&a.kind).cmp(&depth(&b.kind)))
    });
    // Active at t, or cleared less than a second before (a sample interval's grace:
    // a GC pause that ended at 30.7 s caused the queue seen at the 31 s sample).
    let active_at =
        |j: &Incident, t: f64| j.time_s <= t && j.cleared_s.is_none_or(|c| c >= t - 1.0);
    for i in 0..v.len() {
        v[i].headline = false;
        let t = v[i].time_s;
        let mut cause = None;
        if let Some(name) = v[i].kind.strip_prefix("outcome:")
            && let Some(lim) = limit_of_outcome(name)
        {
            cause = (0..v.len())
                .filter(|&j| v[j].kind == lim && active_at(&v[j], t + 1e-9))
                .max_by(|&a, &b| v[a].time_s.total_cmp(&v[b].time_s));
        }
        // GC pauses and marked events are roots: nothing upstream causes them here (a
        // failover is the exception: the probes' timeouts caused it).
        let root =
            (v[i].kind.starts_with("event:") && v[i].kind != FAILOVER) || v[i].kind == "gc_pause";
        if cause.is_none() && !root {
            // The latest limit or event still active, from a component upstream: the
            // processors can starve AFD's workers, but the CLR thread pool cannot (its
            // threads are not the kernel's), and a failover causes nothing downstream.
            let d = depth(&v[i].kind);
            cause = (0..i).rfind(|&j| {
                j != i
                    && (v[j].is_limit() || v[j].kind.starts_with("event:"))
                    && v[j].kind != FAILOVER
                    && depth(&v[j].kind) < d
                    && active_at(&v[j], t)
            });
        }
        v[i].caused_by = cause;
    }
    if let Some(h) = v
        .iter()
        .position(|x| x.is_limit())
        .or_else(|| v.iter().position(|x| x.kind.starts_with("outcome:")))
    {
        v[h].headline = true;
    }
}

impl SampleSink for Detector<'_> {
    fn columns(&mut self, names: &[&str]) -> io::Result<()> {
        self.names = names.iter().map(|s| s.to_string()).collect();
        self.idx = (0..names.len()).map(Some).collect();
        self.outcome_cols = names
            .iter()
            .enumerate()
            .filter_map(|(i, n)| outcome_name(n).map(|o| (i, o.to_string())))
            .collect();
        match self.inner.as_mut() {
            Some(s) => s.columns(names),
            None => Ok(()),
        }
    }
    fn limit_reached(&mut self, at_s: f64, limit: &str) {
        if let Some(l) = LIMIT_NAMES.iter().find(|&&l| l == limit) {
            self.row_hits.push((at_s, l));
        }
    }
    fn row(&mut self, values: &[f64]) -> io::Result<()> {
        self.observe(values);
        match self.inner.as_mut() {
            Some(s) => s.row(values),
            None => Ok(()),
        }
    }
    fn finish(&mut self) -> io::Result<()> {
        match self.inner.as_mut() {
            Some(s) => s.finish(),
            None => Ok(()),
        }
    }
}

/// A marked event of a run (`events.csv`: `time_s,kind,detail`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    pub time_s: f64,
    pub kind: String,
    pub detail: String,
}

/// Reads `DIR/events.csv` (`time_s,kind,detail`, header required); empty when absent.
pub fn read_events(dir: &Path) -> Result<Vec<Event>, String> {
    let p = dir.join("events.csv");
    if !p.exists() {
        return Ok(Vec::new());
    }
    let mut r = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(&p)
        .map_err(|e| format!("{}: {e}", p.display()))?;
    let mut out = Vec::new();
    for (n, rec) in r.records().enumerate() {
        let rec = rec.map_err(|e| format!("{}: {e}", p.display()))?;
        let t: f64 = rec.get(0).unwrap_or("").trim().parse().map_err(|_| {
            format!(
                "{}: row {}: time_s {:?} is not a number",
                p.display(),
                n + 2,
                rec.get(0).unwrap_or("")
            )
        })?;
        out.push(Event {
            time_s: t,
            kind: rec.get(1).unwrap_or("event").trim().to_string(),
            detail: rec.get(2).unwrap_or("").trim().to_string(),
        });
    }
    Ok(out)
}

/// Runs the detector over an existing `timeseries.csv`.
pub fn detect_file(path: &Path, limits: Limits) -> Result<Vec<Incident>, String> {
    detect_file_with(path, limits, &[])
}

/// [`detect_file`] with the exact times limits were first reached ([`Detector::limit_hit`]).
fn detect_file_with(
    path: &Path,
    limits: Limits,
    hits: &[(f64, String)],
) -> Result<Vec<Incident>, String> {
    let (_, headers) = crate::output::open_timeseries(path)?;
    let names: Vec<&str> = headers.iter().map(String::as_str).collect();
    let mut d = Detector::standalone(limits);
    for (t, name) in hits {
        d.limit_hit(*t, name);
    }
    d.columns(&names).map_err(|e| e.to_string())?;
    let mut row = Vec::with_capacity(names.len());
    crate::output::read_timeseries_rows(path, |cells| {
        row.clear();
        row.extend(cells.iter().map(|c| c.unwrap_or(0.0)));
        d.row(&row).map_err(|e| e.to_string())
    })?;
    Ok(d.finish_incidents())
}

/// The incidents of a run directory: its `timeseries.csv` with the limits of its
/// `scenario.toml`, and its `events.csv` when present.
pub fn detect_run_dir(dir: &Path) -> Result<Vec<Incident>, String> {
    if let Some(names) = farm_servers(dir)? {
        // A farm: each server's story from its own directory, with the balancer's own
        // events (`lb_*` rows of the farm's events.csv), merged as the run merged them.
        let mut servers = Vec::with_capacity(names.len());
        for name in names {
            let sub = dir.join("servers").join(crate::output::dir_name(&name));
            servers.push((name, detect_run_dir(&sub)?));
        }
        let own: Vec<Event> = read_events(dir)?
            .into_iter()
            .filter(|e| is_farm_event(&e.kind))
            .collect();
        return Ok(merge_farm(servers, farm_event_incidents(&own)));
    }
    let limits = Limits::from_run_dir(dir)?;
    let mut v = detect_file_with(
        &dir.join("timeseries.csv"),
        limits.clone(),
        &limit_hits(dir)?,
    )?;
    let mut d = Detector::standalone(limits);
    for e in read_events(dir)? {
        d.event(e.time_s, &e.kind, &e.detail);
    }
    v.extend(d.finish_incidents());
    order_and_link(&mut v);
    Ok(v)
}

/// The exact times of the limits a run reached, from its `summary.json`: the first of
/// each and the start of every later episode (none when the file is absent, e.g. a time
/// series copied alone).
fn limit_hits(dir: &Path) -> Result<Vec<(f64, String)>, String> {
    let path = dir.join("summary.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(Vec::new());
    };
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
    Ok(v.get("limits")
        .and_then(|l| l.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|l| {
                    let name = l.get("limit")?.as_str()?;
                    let episodes = l.get("episodes_s").and_then(|e| e.as_array());
                    let times = std::iter::once(l.get("at_s")?.as_f64()?).chain(
                        episodes
                            .into_iter()
                            .flatten()
                            .filter_map(serde_json::Value::as_f64),
                    );
                    Some(times.map(|t| (t, name.to_string())).collect::<Vec<_>>())
                })
                .flatten()
                .collect()
        })
        .unwrap_or_default())
}

/// The servers of a farm's run directory, in the scenario's order; `None` for a single
/// server's directory.
pub(crate) fn farm_servers(dir: &Path) -> Result<Option<Vec<String>>, String> {
    if !dir.join("servers").is_dir() {
        return Ok(None);
    }
    let path = dir.join("scenario.toml");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let scn = crate::scenario::load::load_generated(&path.display().to_string(), &text, &[])
        .map_err(|e| e.to_string())?;
    if !scn.is_farm() {
        return Ok(None);
    }
    Ok(Some(
        scn.server_names().into_iter().map(|(n, _)| n).collect(),
    ))
}

/// The farm's own marked events (the balancer's removals and reinstatements), as opposed
/// to its servers' (recycles, failovers), which their own directories hold.
pub fn is_farm_event(kind: &str) -> bool {
    kind.starts_with("lb_")
}

/// The farm's own events as incidents (roots: no cause, no headline).
pub fn farm_event_incidents(events: &[Event]) -> Vec<Incident> {
    let mut d = Detector::standalone(Limits::default());
    for e in events {
        d.event(e.time_s, &e.kind, &e.detail);
    }
    d.finish_incidents()
}

/// A farm's story: every server's incidents (their messages led by the server's name, their
/// causes kept within the server) and the farm's own events, in time order (server order,
/// then the farm's, on ties); the headline is the earliest server's.
pub fn merge_farm(servers: Vec<(String, Vec<Incident>)>, farm: Vec<Incident>) -> Vec<Incident> {
    let names: Vec<String> = servers.iter().map(|(n, _)| n.clone()).collect();
    // (index before sorting, the server it happened on, incident)
    let mut all: Vec<(usize, Option<usize>, Incident)> = Vec::new();
    let groups = servers
        .into_iter()
        .enumerate()
        .map(|(k, (_, v))| (Some(k), v))
        .chain(std::iter::once((None, farm)));
    for (owner, v) in groups {
        let offset = all.len();
        for mut i in v {
            if let Some(k) = owner {
                i.message = format!("{}: {}", names[k], i.message);
            }
            i.caused_by = i.caused_by.map(|c| c + offset);
            all.push((all.len(), owner, i));
        }
    }
    all.sort_by(|a, b| a.2.time_s.total_cmp(&b.2.time_s).then(a.0.cmp(&b.0)));
    let mut new_index = vec![0; all.len()];
    for (pos, (old, _, _)) in all.iter().enumerate() {
        new_index[*old] = pos;
    }
    let owners: Vec<Option<usize>> = all.iter().map(|(_, o, _)| *o).collect();
    let mut seen = false;
    let mut out: Vec<Incident> = all
        .into_iter()
        .map(|(_, _, mut i)| {
            i.caused_by = i.caused_by.map(|c| new_index[c]);
            if i.headline {
                i.headline = !seen;
                seen = true;
            }
            i
        })
        .collect();
    link_across_servers(&mut out, &owners, &names);
    out
}

/// The balancer's part of a farm's story, which no single server sees: a removal is
/// caused by what its server answered (its latest incident still active then), and a
/// limit another server reaches while that server is held out, with no cause of its own,
/// is caused by the removal (the held-out server's share moved to the others: seed 003).
fn link_across_servers(v: &mut [Incident], owners: &[Option<usize>], names: &[String]) {
    // Which server a balancer event is about: its message is "lb removed: <name>: why".
    let about = |i: &Incident| -> Option<usize> {
        let rest = i.message.split_once(": ")?.1;
        names
            .iter()
            .enumerate()
            .filter(|(_, n)| rest == n.as_str() || rest.starts_with(&format!("{n}:")))
            .max_by_key(|(_, n)| n.len())
            .map(|(k, _)| k)
    };
    let servers: Vec<Option<usize>> = v
        .iter()
        .map(|i| i.kind.starts_with("event:lb_").then(|| about(i)).flatten())
        .collect();
    let active_at =
        |j: &Incident, t: f64| j.time_s <= t && j.cleared_s.is_none_or(|c| c >= t - 1.0);
    for i in 0..v.len() {
        if v[i].caused_by.is_some() {
            continue;
        }
        let t = v[i].time_s;
        // The latest removal of a server other than `me` that is still out at `i`.
        let other_out = |me: usize| {
            (0..i).rfind(|&j| {
                v[j].kind == "event:lb_removed"
                    && servers[j].is_some_and(|s| s != me)
                    && !(j + 1..i)
                        .any(|k| v[k].kind == "event:lb_reinstated" && servers[k] == servers[j])
            })
        };
        let cause = if v[i].kind == "event:lb_removed" {
            // What its server went through; else (its 503 shows only at the next sample)
            // the removal of another server whose share it took.
            let s = servers[i];
            (0..i)
                .rfind(|&j| {
                    owners[j].is_some()
                        && owners[j] == s
                        && !v[j].kind.starts_with("event:")
                        && active_at(&v[j], t)
                })
                .or_else(|| s.and_then(other_out))
        } else if let Some(me) = owners[i].filter(|_| v[i].is_limit() && v[i].kind != "gc_pause") {
            other_out(me)
        } else {
            None
        };
        v[i].caused_by = cause;
    }
}

/// `m:ss.s` (simulated time).
pub fn fmt_time(t: f64) -> String {
    // Rounded to the tenth first, so that 59.96 s reads 1:00.0, not 0:60.0.
    let t = (t.max(0.0) * 10.0).round() / 10.0;
    let m = (t / 60.0).floor();
    format!("{}:{:04.1}", m as u64, t - m * 60.0)
}

/// The headline: the first limit reached and the chain it started, in one line, e.g.
/// `0:11.0 thread pool starved: … → 0:14.0 HTTP.SYS queue reached 1000 … → 503 QueueFull 272/s`.
pub fn headline(v: &[Incident]) -> Option<String> {
    let h = v.iter().position(|x| x.headline)?;
    // How many incidents follow each one along its longest chain of effects (causes come
    // earlier in `v`, so one pass from the end suffices).
    let mut below = vec![0usize; v.len()];
    for j in (0..v.len()).rev() {
        if let Some(c) = v[j].caused_by.filter(|&c| c < j) {
            below[c] = below[c].max(below[j] + 1);
        }
    }
    // Follow, from the headline, the effect that leads furthest (the earliest on ties).
    let mut chain = vec![h];
    loop {
        let last = *chain.last().expect("non-empty");
        let next = (0..v.len())
            .filter(|&j| v[j].caused_by == Some(last) && !chain.contains(&j))
            .max_by(|&a, &b| below[a].cmp(&below[b]).then(b.cmp(&a)));
        match next {
            Some(j) => chain.push(j),
            None => break,
        }
    }
    let mut s = String::new();
    let mut prev_t = f64::NAN;
    for (k, &i) in chain.iter().enumerate() {
        if k > 0 {
            s.push_str(" → ");
        }
        if v[i].time_s != prev_t {
            s.push_str(&fmt_time(v[i].time_s));
            s.push(' ');
        }
        prev_t = v[i].time_s;
        s.push_str(&v[i].message);
    }
    Some(s)
}

/// The timeline for people (`w3sim explain`).
pub fn render(v: &[Incident]) -> String {
    let mut s = String::new();
    if v.is_empty() {
        s.push_str("No incident: no limit was reached and every request succeeded.\n");
        return s;
    }
    if let Some(h) = headline(v) {
        s.push_str(&format!("Headline: {h}\n\n"));
    }
    s.push_str("Timeline:\n");
    for (i, x) in v.iter().enumerate() {
        let until = match x.cleared_s {
            Some(c) if x.kind.starts_with("event:") || c <= x.time_s => String::new(),
            Some(c) => format!(" [cleared {}]", fmt_time(c)),
            None if x.kind.starts_with("event:") => String::new(),
            None => " [still active at the end]".to_string(),
        };
        let cause = x
            .caused_by
            .map(|c| {
                // A balancer's event names its server: "lb removed: web1".
                let label = match v[c].message.rsplit_once(": ") {
                    Some((head, _)) if v[c].kind.starts_with("event:lb_") => head.to_string(),
                    _ => kind_label(&v[c].kind),
                };
                format!(" ← {label} at {}", fmt_time(v[c].time_s))
            })
            .unwrap_or_default();
        s.push_str(&format!(
            "{}{:>8} {}{}{}\n",
            if x.headline { "* " } else { "  " },
            fmt_time(x.time_s),
            x.message,
            until,
            cause
        ));
        let _ = i;
    }
    s
}

/// A short label of an incident kind.
pub fn kind_label(kind: &str) -> String {
    match kind {
        "thread_pool_starvation" => "thread-pool starvation".into(),
        "http_sys_queue_full" => "HTTP.SYS queue full".into(),
        "site_connection_limit" => "site maxConnections".into(),
        "aspnet_queue_full" => "ASP.NET requestQueueLimit".into(),
        "iis_concurrent_request_limit" => "IIS appConcurrentRequestLimit".into(),
        "aspnet_concurrency_limit" => "ASP.NET concurrency limit".into(),
        "cpu_saturated" => "CPU saturation".into(),
        "ports_exhausted" => "port exhaustion".into(),
        "loopback_stalled" => "loopback stall".into(),
        "gc_pause" => "GC pause".into(),
        k => match k.strip_prefix("outcome:") {
            Some(o) => outcome_label(o),
            None => k.trim_start_matches("event:").replace('_', " "),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_limit_named_maps_to_the_incidents_it_explains() {
        for l in LIMIT_NAMES {
            assert!(!incident_kinds_of_limit(l).is_empty(), "{l}");
        }
    }
}
