//! Streaming statistics: latency histograms (HdrHistogram), outcome counters, and the
//! run's summary. Nothing is kept per request once it ends: memory is bounded by the
//! histograms' fixed size whatever the simulated time.

use hdrhistogram::Histogram;
use serde::Serialize;
use w3sim_models::request::Outcome;
use w3sim_models::time::SimTime;

/// Highest latency tracked exactly: 2^44 ns ≈ 4.9 h; longer values are clamped.
const MAX_TRACKED_NS: u64 = 1 << 44;

/// A latency histogram in nanoseconds, 3 significant digits (HdrHistogram).
///
/// Recording goes through a one-byte counter per HdrHistogram bucket (same layout), and a
/// bucket's count moves into the histogram each time its byte wraps and when the
/// histogram is read ([`Latency::settle`]). The figures are exactly HdrHistogram's; what
/// changes is the memory touched on every request: the buckets a run uses take a quarter
/// of the cache lines, which keeps them in the processor's caches when a farm records
/// several servers' histograms in turn (README, Performance).
#[derive(Clone, Debug)]
pub struct Latency {
    h: Histogram<u32>,
    /// Counts not yet in `h`, by HdrHistogram index.
    pending: Box<[u8]>,
    /// Lowest and highest index with a pending count (`lo > hi`: none).
    lo: usize,
    hi: usize,
    /// Values recorded since the last reset.
    n: u64,
    sum_ns: u128,
}

/// HdrHistogram's layout for lowest value 1 and 3 significant digits: 2048 sub-buckets,
/// half of them per bucket after the first (`sub_bucket_half_count_magnitude` = 10).
const SUB_HALF_MAG: u32 = 10;
const SUB_MASK: u64 = (1 << (SUB_HALF_MAG + 1)) - 1;
/// `64 - unit_magnitude - sub_bucket_count_magnitude`.
const LZ_BASE: u32 = 64 - (SUB_HALF_MAG + 1);

/// HdrHistogram's counts index of `v` (1 ≤ v ≤ [`MAX_TRACKED_NS`]).
#[inline]
fn hdr_index(v: u64) -> usize {
    let b = LZ_BASE - (v | SUB_MASK).leading_zeros();
    let sub = (v >> b) as usize;
    ((b as usize + 1) << SUB_HALF_MAG) + sub - (1 << SUB_HALF_MAG)
}

/// The lowest value HdrHistogram counts at index `i` (inverse of [`hdr_index`]).
#[inline]
fn hdr_value(i: usize) -> u64 {
    let b = (i >> SUB_HALF_MAG) as i64 - 1;
    let sub = ((i & ((1 << SUB_HALF_MAG) - 1)) + (1 << SUB_HALF_MAG)) as u64;
    if b < 0 {
        sub - (1 << SUB_HALF_MAG)
    } else {
        sub << b
    }
}

impl Default for Latency {
    fn default() -> Self {
        let h = Histogram::new_with_bounds(1, MAX_TRACKED_NS, 3).expect("valid histogram bounds");
        debug_assert!(hdr_index(MAX_TRACKED_NS) < h.distinct_values());
        Self {
            pending: vec![0u8; h.distinct_values()].into_boxed_slice(),
            h,
            lo: usize::MAX,
            hi: 0,
            n: 0,
            sum_ns: 0,
        }
    }
}

impl Latency {
    #[inline]
    pub fn record(&mut self, ns: u64) {
        let i = hdr_index(ns.clamp(1, MAX_TRACKED_NS));
        let c = &mut self.pending[i];
        if *c == u8::MAX {
            // This value and the 255 before it. Cannot fail: the value is within the bounds.
            let _ = self.h.record_n(hdr_value(i), 256);
            *c = 0;
        } else {
            *c += 1;
        }
        self.lo = self.lo.min(i);
        self.hi = self.hi.max(i);
        self.n += 1;
        self.sum_ns += ns as u128;
    }

    /// Moves the pending counts into the histogram (before it is read).
    pub fn settle(&mut self) {
        add_pending(&mut self.h, &self.pending, self.lo, self.hi);
        self.clear_pending();
    }

    fn clear_pending(&mut self) {
        if self.lo <= self.hi {
            self.pending[self.lo..=self.hi].fill(0);
        }
        self.lo = usize::MAX;
        self.hi = 0;
    }

    pub fn count(&self) -> u64 {
        self.n
    }

    pub fn reset(&mut self) {
        self.clear_pending();
        // Clearing HdrHistogram writes all its counts: skip it when nothing is in them
        // (an interval histogram that was never read).
        if !self.h.is_empty() {
            self.h.reset();
        }
        self.n = 0;
        self.sum_ns = 0;
    }

    /// Quantile in milliseconds (0 when empty).
    pub fn quantile_ms(&self, q: f64) -> f64 {
        quantile_ms(&self.settled(), q)
    }

    /// Quantiles `qs` (ascending, each in (0, 1]) in milliseconds, 0 when empty: exactly
    /// [`Latency::quantile_ms`] of each. While every count is still pending (an interval's
    /// histogram, as a rule) one pass over the buckets in use gives them all, where
    /// HdrHistogram scans from its lowest bucket once per quantile (a time series
    /// sampled every second spent 6 % of a seed-003 run there).
    pub fn quantiles_ms<const N: usize>(&self, qs: [f64; N]) -> [f64; N] {
        debug_assert!(qs.windows(2).all(|w| w[0] <= w[1]) && qs.iter().all(|&q| q > 0.0));
        let mut out = [0.0; N];
        if self.n == 0 {
            return out;
        }
        if !self.h.is_empty() {
            let h = self.settled();
            for (o, &q) in out.iter_mut().zip(&qs) {
                *o = quantile_ms(&h, q);
            }
            return out;
        }
        // HdrHistogram's rule: the first bucket where the running count reaches
        // ceil(q × total) (at least 1), reported as the bucket's highest value.
        let want = qs.map(|q| ((q.min(1.0) * self.n as f64).ceil() as u64).max(1));
        let (mut j, mut acc) = (0, 0u64);
        for i in self.lo..=self.hi {
            acc += self.pending[i] as u64;
            while j < N && acc >= want[j] {
                out[j] = self.h.highest_equivalent(hdr_value(i)) as f64 * 1e-6;
                j += 1;
            }
            if j == N {
                break;
            }
        }
        out
    }

    /// The histogram with the pending counts in it: itself after [`Latency::settle`], a
    /// copy otherwise.
    fn settled(&self) -> std::borrow::Cow<'_, Histogram<u32>> {
        if self.lo > self.hi {
            return std::borrow::Cow::Borrowed(&self.h);
        }
        let mut h = self.h.clone();
        add_pending(&mut h, &self.pending, self.lo, self.hi);
        std::borrow::Cow::Owned(h)
    }

    /// Summary in milliseconds. The mean is exact (sum / count), the quantiles are
    /// HdrHistogram's (within 0.1 %).
    pub fn summary(&self) -> LatencySummary {
        let h = self.settled();
        let n = h.len();
        LatencySummary {
            count: n,
            mean: if n == 0 {
                0.0
            } else {
                round6(self.sum_ns as f64 / n as f64 * 1e-6)
            },
            p50: round6(quantile_ms(&h, 0.50)),
            p95: round6(quantile_ms(&h, 0.95)),
            p99: round6(quantile_ms(&h, 0.99)),
            max: if n == 0 {
                0.0
            } else {
                round6(h.max() as f64 * 1e-6)
            },
        }
    }
}

/// Adds the pending byte counts of indices `lo..=hi` to `h`.
fn add_pending(h: &mut Histogram<u32>, pending: &[u8], lo: usize, hi: usize) {
    if lo > hi {
        return;
    }
    for (i, &c) in pending[lo..=hi].iter().enumerate() {
        if c > 0 {
            // Cannot fail: the index's value is within the bounds.
            let _ = h.record_n(hdr_value(lo + i), c as u32);
        }
    }
}

/// Quantile `q` of `h` in milliseconds (0 when empty).
fn quantile_ms(h: &Histogram<u32>, q: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        h.value_at_quantile(q) as f64 * 1e-6
    }
}

/// Rounds to 6 decimals for stable, readable outputs.
pub fn round6(x: f64) -> f64 {
    if x.is_finite() {
        (x * 1e6).round() / 1e6
    } else {
        x
    }
}

/// Latency figures of one population, in ms.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// Counts by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutcomeCounts([u64; Outcome::ALL.len()]);

impl OutcomeCounts {
    #[inline]
    pub fn add(&mut self, o: Outcome) {
        self.0[o.index()] += 1;
    }
    pub fn get(&self, o: Outcome) -> u64 {
        self.0[o.index()]
    }
    pub fn failed(&self) -> u64 {
        Outcome::ALL
            .iter()
            .filter(|o| o.is_failure())
            .map(|&o| self.get(o))
            .sum()
    }
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
    /// As an ordered name → count map for JSON.
    pub fn to_map(&self) -> std::collections::BTreeMap<&'static str, u64> {
        Outcome::ALL
            .iter()
            .map(|&o| (o.name(), self.get(o)))
            .collect()
    }
}

/// Statistics of the measurement window (after warm-up).
#[derive(Clone, Debug)]
pub struct Window {
    pub start: SimTime,
    pub arrived: u64,
    pub outcomes: OutcomeCounts,
    /// Sum of time in system of every request that left in the window (any outcome).
    pub sojourn_sum_ns: u128,
    pub departures: u64,
    /// Time from arrival until a worker thread took the request (successful requests).
    pub queue_wait: Latency,
    pub latency_all: Latency,
    pub latency_by_class: Vec<Latency>,
}

impl Window {
    pub fn new(start: SimTime, classes: usize) -> Self {
        Self {
            start,
            arrived: 0,
            outcomes: OutcomeCounts::default(),
            sojourn_sum_ns: 0,
            departures: 0,
            queue_wait: Latency::default(),
            latency_all: Latency::default(),
            latency_by_class: (0..classes).map(|_| Latency::default()).collect(),
        }
    }

    /// Restarts the window at `now` (end of warm-up), reusing the histograms.
    pub fn reset(&mut self, now: SimTime) {
        self.start = now;
        self.arrived = 0;
        self.outcomes = OutcomeCounts::default();
        self.sojourn_sum_ns = 0;
        self.departures = 0;
        self.queue_wait.reset();
        self.latency_all.reset();
        for l in &mut self.latency_by_class {
            l.reset();
        }
    }
}

/// `requests` in summary.json: whole-run totals, so that conservation is exact.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RequestTotals {
    pub arrived: u64,
    pub completed: u64,
    pub failed: u64,
    pub in_flight: u64,
}

/// Mean and peak of a queue or pool over the measurement window.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct GaugeSummary {
    pub mean: f64,
    pub peak: u64,
    /// The configured limit, if the gauge has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

/// Little's law L = λW over the measurement window, for every request in the system.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LittlesLaw {
    /// Time-average number of requests in the system.
    pub l: f64,
    /// Arrival rate, per second.
    pub lambda_per_s: f64,
    /// Mean time in the system of requests that left, seconds (rejections count with their ~0 s).
    pub w_s: f64,
    /// |L − λW| / max(L, λW).
    pub relative_error: f64,
}

/// The measurement window in summary.json.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MeasuredSummary {
    pub from_s: f64,
    pub to_s: f64,
    pub arrived: u64,
    pub completed: u64,
    pub failed: u64,
    pub outcomes: std::collections::BTreeMap<&'static str, u64>,
    /// Completed (ok) requests per second.
    pub throughput_per_s: f64,
    /// Failed / (completed + failed).
    pub failure_ratio: f64,
}

/// Everything `summary.json` holds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    pub w3sim_version: &'static str,
    pub scenario: String,
    pub seed: u64,
    pub requests: RequestTotals,
    /// Whole-run count per outcome name.
    pub outcomes: std::collections::BTreeMap<&'static str, u64>,
    pub measured: MeasuredSummary,
    /// Latency of successful requests in the window, in ms: `all` and per class.
    pub latency_ms: LatencyByClass,
    /// Time successful requests waited in queues before a worker thread took them, in
    /// ms (what `ASP.NET\Request Wait Time` shows one sample of).
    pub queue_wait_ms: LatencySummary,
    /// Mean and peak of every queue and pool, keyed by component and perfmon counter.
    pub gauges: std::collections::BTreeMap<String, GaugeSummary>,
    pub littles_law: LittlesLaw,
    /// Garbage collections over the whole run.
    pub gc: GcSummary,
    /// Processor utilisation over the measurement window, percent of all logical processors.
    pub cpu_utilization_pct: f64,
    /// Outgoing calls, connections and ports over the whole run.
    pub outgoing: OutgoingSummary,
    /// The first limit the run reached, if any: the headline of what went wrong.
    pub first_limit: Option<LimitHit>,
    /// Every limit reached, in the order they were first reached.
    pub limits: Vec<LimitHit>,
    /// The HTTP.SYS kernel response cache (whole run).
    pub kernel_cache: KernelCacheSummary,
    /// The application pool's lifecycle (whole run).
    pub app_pool: AppPoolSummary,
    /// Marked moments: worker processes starting and exiting (recycles, idle timeouts,
    /// crashes), the pool going offline.
    pub marked_events: Vec<RunEvent>,
    /// Health-probe responses later than the probe's timeout (or failed).
    pub probe_timeouts: u64,
    /// Failovers: `failover_after` probe timeouts in a row.
    pub failovers: u64,
    /// `Network Interface\Packets Received Discarded` over the run.
    pub packets_received_discarded: u64,
    /// One entry per `[[valves]]`, in file order.
    pub valves: Vec<ValveSummary>,
    /// ASP.NET session locks, when a class has `enable_session_state`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_state: Option<SessionStateSummary>,
    /// ASP.NET's `executionTimeout` aborts, when a class runs synchronously (and
    /// `<compilation debug>` is off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<RequestTimeoutSummary>,
    /// IIS's user-mode file cache, when a class has a `file` step (whole run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_cache: Option<FileCacheSummary>,
    pub events: u64,
    pub simulated_seconds: f64,
    /// Peak number of request slots allocated (memory follows requests in flight).
    pub peak_request_slots: u64,
    pub wall_seconds: f64,
    /// Incidents detected from the time series as the run went (`w3sim explain`).
    pub incidents: Vec<crate::incidents::Incident>,
    /// A farm run: attempts, retries, the load balancer and every server's own summary.
    /// The fields above are then the users' view: one entry per user request, however
    /// many attempts it took, its latency from the first attempt to the last answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub farm: Option<FarmSummary>,
}

/// What a farm did with its users' requests.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FarmSummary {
    /// Requests users sent (each counted once, however many attempts it took).
    pub user_requests: u64,
    /// Attempts sent: first attempts plus retries.
    pub attempts: u64,
    pub retries: u64,
    /// Retries the clients' retry budget did not pay for (`clients.retry_budget_percent`):
    /// their user requests failed with their last answer.
    pub retries_denied_by_budget: u64,
    pub attempts_per_user_request: f64,
    /// Attempts the client gave up on at its timeout.
    pub client_timeouts: u64,
    /// How attempts ended as the client saw them (`client_timeout`,
    /// `503_load_balancer_no_server` and the servers' outcome names).
    pub attempt_outcomes: std::collections::BTreeMap<&'static str, u64>,
    /// Server answers that came after the client had given up on that attempt.
    pub late_answers_ignored: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LbSummary>,
    /// One entry per server, in the scenario's order.
    pub servers: Vec<FarmServerSummary>,
}

/// The load balancer over the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LbSummary {
    pub policy: String,
    /// Times a server was taken out of rotation (all servers).
    pub removals: u64,
    /// Servers taken out at least once.
    pub servers_ever_removed: u64,
    /// Requests the balancer answered 503 itself, every server being out.
    pub rejected_all_out: u64,
    pub probes_sent: u64,
    pub probes_failed: u64,
    /// `w3sim\Load Balancer Servers In Rotation`: time-weighted mean (measurement window) and minimum.
    pub mean_servers_in_rotation: f64,
    pub min_servers_in_rotation: u64,
}

/// One server of a farm.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FarmServerSummary {
    pub name: String,
    /// Its weight at the balancer (1 unless `farm.servers[].weight` says otherwise).
    pub weight: u32,
    /// User attempts the balancer sent it (probes not counted).
    pub routed: u64,
    /// Its share of the routed attempts.
    pub share: f64,
    /// Times the balancer took it out of rotation, when it first did, and the time it spent out.
    pub removals: u32,
    pub first_removed_at_s: Option<f64>,
    pub out_of_rotation_seconds: f64,
    /// The server's own summary, as a single-server run writes it.
    pub summary: Summary,
}

/// Kernel-cache figures; removals are counted by cause.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct KernelCacheSummary {
    pub hits: u64,
    pub misses: u64,
    pub hit_ratio: f64,
    pub inserted: u64,
    /// Entries removed at their time-to-live.
    pub expired_ttl: u64,
    /// Entries the scavenger removed (not hit between two passes).
    pub scavenged: u64,
    /// Entries flushed by recycles and idle-timeout exits of the worker process.
    pub flushed_by_recycle: u64,
    pub flushed_other: u64,
    pub evicted_size: u64,
    /// Flush events, all and by cause.
    pub flushes: u64,
    pub flushes_idle_timeout: u64,
    pub flushes_recycle: u64,
    pub peak_uris_cached: u64,
}

/// IIS's user-mode static file cache over the whole run (`Web Service Cache` counters).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FileCacheSummary {
    /// `File Cache Hits` (including hits that checked the file first).
    pub hits: u64,
    /// `File Cache Misses`: reads of the share.
    pub misses: u64,
    pub hit_ratio: f64,
    /// Hits that checked the file's last-modified date on the share first
    /// (`FileAttributeCheckThreshold`).
    pub attribute_checks: u64,
    /// `Total Files Cached`.
    pub inserted: u64,
    /// Files read but too large to cache (`MaxCachedFileSize`, `MemCacheSize`).
    pub too_large: u64,
    /// Entries phased out after `ObjectCacheTTL` without a reference.
    pub expired_ttl: u64,
    /// Entries evicted under `MemCacheSize`.
    pub evicted_size: u64,
    /// `File Cache Flushes` (worker-process exits) and `Total Flushed Files`.
    pub flushes: u64,
    pub flushed_files: u64,
    pub peak_files_cached: u64,
    /// Mean of `Current File Cache Memory Usage` over the run, bytes.
    pub mean_memory_usage_bytes: f64,
}

/// ASP.NET session locks over the whole run, warm-up included (only when a class uses the
/// session).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SessionStateSummary {
    /// Requests that found their session locked and polled.
    pub lock_waits: u64,
    /// Polls that tried a lock (callbacks that found the last poll too recent not counted).
    pub polls: u64,
    /// Mean and longest wait of the requests that got their session, ms.
    pub mean_wait_ms: f64,
    pub max_wait_ms: f64,
    /// Most requests polling one session at once.
    pub peak_waiting_per_session: u32,
    /// Requests refused by `RequestQueueLimitPerSession` (HTTP 500).
    pub queue_limit_rejections: u64,
    /// Locks taken from a holder older than `executionTimeout`.
    pub stale_locks_released: u64,
}

/// What ASP.NET's request timeout manager (`executionTimeout`) did over the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RequestTimeoutSummary {
    /// `httpRuntime/@executionTimeout`, seconds.
    pub execution_timeout_s: f64,
    /// Requests aborted (HTTP 500 "Request timed out"; `ASP.NET Applications\Requests
    /// Timed Out`).
    pub requests_timed_out: u64,
    /// When the first was aborted, seconds.
    pub first_timed_out_s: Option<f64>,
    /// Timer ticks (every 15 s) that found a request past its timeout and queued their
    /// callback to the thread pool.
    pub callbacks: u64,
}

/// What a valve (seed 003's in-application control loop) did over the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ValveSummary {
    /// The counter it reads.
    pub counter: String,
    /// Times it closed.
    pub closings: u64,
    /// When it first closed, seconds, if it did.
    pub first_closed_at_s: Option<f64>,
    /// Time spent closed, seconds.
    pub closed_seconds: f64,
    /// Outgoing-call steps skipped while it was closed (`action = "skip_outgoing_calls"`).
    pub skipped_calls: u64,
}

/// Application-pool lifecycle figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AppPoolSummary {
    pub starts: u64,
    pub recycles_idle_timeout: u64,
    pub recycles_periodic: u64,
    pub recycles_scheduled: u64,
    pub crashes: u64,
    pub rapid_fail_trips: u64,
    /// Processes killed at `startupTimeLimit` (counted as failures by rapid-fail protection).
    pub startup_failures: u64,
    /// Requests expired after `connectionTimeout` waiting for a process (`Timer_AppPool`).
    pub timer_app_pool: u64,
    pub offline_503: u64,
    pub abandoned_requests: u64,
}

impl AppPoolSummary {
    /// Adds another pool's counts (a farm's servers, each with its own pool).
    pub fn add(&mut self, o: &AppPoolSummary) {
        self.starts += o.starts;
        self.recycles_idle_timeout += o.recycles_idle_timeout;
        self.recycles_periodic += o.recycles_periodic;
        self.recycles_scheduled += o.recycles_scheduled;
        self.crashes += o.crashes;
        self.rapid_fail_trips += o.rapid_fail_trips;
        self.startup_failures += o.startup_failures;
        self.timer_app_pool += o.timer_app_pool;
        self.offline_503 += o.offline_503;
        self.abandoned_requests += o.abandoned_requests;
    }
}

/// A marked moment of the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RunEvent {
    pub at_s: f64,
    pub kind: String,
    pub detail: String,
}

/// A limit reached during the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LimitHit {
    pub at_s: f64,
    /// The setting whose limit was reached, by its scenario path (`http_sys.queue_length`).
    pub limit: String,
    pub detail: String,
    /// When each incident this limit explains began (the time series shows an incident
    /// at the sample after; `explain` dates it here): the first at `at_s`, then every
    /// later episode. Absent when the time series showed none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub episodes_s: Vec<f64>,
}

/// Outgoing calls by result, connections and ports.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct OutgoingSummary {
    pub calls: u64,
    pub ok: u64,
    pub timeouts: u64,
    pub errors: u64,
    pub wsaenobufs: u64,
    pub wsaeaddrinuse: u64,
    /// Duration of answered calls, ms.
    pub latency_ms: LatencySummary,
    pub backends: std::collections::BTreeMap<String, BackendCalls>,
    pub connections_opened: u64,
    /// Connections this side closed (idle timeout, lease / lifetime, abort, no keep-alive,
    /// a connect given up).
    pub connections_closed: u64,
    /// Of those: idle connections closed for their idle timeout.
    pub connections_closed_idle: u64,
    /// Of those: connections closed for their lease / lifetime.
    pub connections_closed_lifetime: u64,
    /// Connects given up at SocketsHttpHandler's ConnectTimeout.
    pub connect_timeouts: u64,
    /// Peak of ports in use plus ports in TIME_WAIT, and the range they come from.
    pub peak_ports_used: u64,
    pub port_range: u64,
    pub peak_ports_time_wait: u64,
    pub peak_connections_established: u64,
    pub first_wsaenobufs_s: Option<f64>,
    pub first_connection_wait_s: Option<f64>,
}

/// Calls to one backend by result.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct BackendCalls {
    pub ok: u64,
    pub timeouts: u64,
    pub errors: u64,
    pub wsaenobufs: u64,
    pub wsaeaddrinuse: u64,
}

/// `.NET CLR Memory` figures of the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct GcSummary {
    pub gen0_collections: u64,
    pub gen1_collections: u64,
    pub gen2_collections: u64,
    /// Longest suspension of managed threads, ms.
    pub max_pause_ms: f64,
    /// Mean suspension, ms.
    pub mean_pause_ms: f64,
    /// Share of the run spent with managed threads suspended, percent.
    pub time_in_gc_pct: f64,
    pub allocated_bytes: u64,
    /// Suspensions by length: `{ "le_ms": upper bound, "count": n }`, the last bucket open-ended.
    pub pause_histogram: Vec<PauseBucket>,
}

/// One bucket of the GC pause histogram.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PauseBucket {
    /// Upper bound in ms (`null` for the last, open bucket).
    pub le_ms: Option<f64>,
    pub count: u64,
}

/// Latency of successful requests overall and per class.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LatencyByClass {
    pub all: LatencySummary,
    pub classes: std::collections::BTreeMap<String, LatencySummary>,
}

impl MeasuredSummary {
    /// The measurement window `[from, to]`: requests that arrived in it, how they ended.
    pub fn new(
        from: SimTime,
        to: SimTime,
        arrived: u64,
        completed: u64,
        failed: u64,
        outcomes: std::collections::BTreeMap<&'static str, u64>,
    ) -> Self {
        let span_s = (to.saturating_sub(from) as f64 * 1e-9).max(1e-12);
        Self {
            from_s: round6(from as f64 * 1e-9),
            to_s: round6(to as f64 * 1e-9),
            arrived,
            completed,
            failed,
            outcomes,
            throughput_per_s: round6(completed as f64 / span_s),
            failure_ratio: if completed + failed == 0 {
                0.0
            } else {
                round6(failed as f64 / (completed + failed) as f64)
            },
        }
    }
}

impl LittlesLaw {
    /// L = λW over a window of `span_s` seconds: `l` the time-average number in the
    /// system, λ the arrivals per second, W the mean time in the system of departures.
    pub fn new(l: f64, arrived: u64, span_s: f64, sojourn_sum_ns: u128, departures: u64) -> Self {
        let lambda = arrived as f64 / span_s.max(1e-12);
        let wbar = if departures == 0 {
            0.0
        } else {
            sojourn_sum_ns as f64 / departures as f64 * 1e-9
        };
        let lw = lambda * wbar;
        Self {
            l: round6(l),
            lambda_per_s: round6(lambda),
            w_s: round6(wbar),
            relative_error: round6(if l.max(lw) == 0.0 {
                0.0
            } else {
                (l - lw).abs() / l.max(lw)
            }),
        }
    }
}

impl LatencyByClass {
    /// `all` and one entry per class name; with one class its figures are `all`'s
    /// (its own histogram is not recorded).
    pub fn new<'a>(
        names: impl Iterator<Item = &'a str>,
        all: &Latency,
        by_class: &[Latency],
    ) -> Self {
        let one = by_class.len() <= 1;
        Self {
            all: all.summary(),
            classes: names
                .zip(by_class)
                .map(|(n, l)| (n.to_string(), if one { all } else { l }.summary()))
                .collect(),
        }
    }
}

impl Summary {
    /// The summary as pretty JSON. With `include_wall = false` the wall-clock field is
    /// zeroed, which makes the output byte-identical for the same scenario and seed.
    pub fn to_json(&self, include_wall: bool) -> String {
        let mut s = self.clone();
        if !include_wall {
            s.wall_seconds = 0.0;
            if let Some(f) = s.farm.as_mut() {
                for srv in &mut f.servers {
                    srv.summary.wall_seconds = 0.0;
                }
            }
        }
        let mut out = serde_json::to_string_pretty(&s).expect("summary serialises");
        out.push('\n');
        out
    }

    /// A short human summary.
    pub fn human(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "scenario {} (seed {}): {:.1} s simulated, {} events in {:.2} s wall\n",
            self.scenario, self.seed, self.simulated_seconds, self.events, self.wall_seconds
        ));
        let r = &self.requests;
        s.push_str(&format!(
            "requests: {} arrived, {} completed, {} failed, {} in flight at the end\n",
            r.arrived, r.completed, r.failed, r.in_flight
        ));
        let outs: Vec<String> = self
            .outcomes
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        s.push_str(&format!(
            "outcomes: {}\n",
            if outs.is_empty() {
                "none".into()
            } else {
                outs.join(", ")
            }
        ));
        let m = &self.measured;
        s.push_str(&format!(
            "measured {:.1}–{:.1} s: throughput {:.1}/s, failure ratio {:.4}\n",
            m.from_s, m.to_s, m.throughput_per_s, m.failure_ratio
        ));
        let l = &self.latency_ms.all;
        s.push_str(&format!(
            "latency (ok, ms): mean {:.3}  p50 {:.3}  p95 {:.3}  p99 {:.3}  max {:.3}\n",
            l.mean, l.p50, l.p95, l.p99, l.max
        ));
        for (k, g) in &self.gauges {
            let lim = g.limit.map(|l| format!(" (limit {l})")).unwrap_or_default();
            s.push_str(&format!("{k}: mean {:.2}, peak {}{lim}\n", g.mean, g.peak));
        }
        s.push_str(&format!(
            "Little's law: L = {:.3}, λW = {:.3} (relative error {:.4})\n",
            self.littles_law.l,
            self.littles_law.lambda_per_s * self.littles_law.w_s,
            self.littles_law.relative_error
        ));
        if let Some(ss) = &self.session_state {
            s.push_str(&format!(
                "session locks: {} requests waited (mean {:.1} ms, max {:.1} ms, {} polls), up to {} polling one session; {} refused by RequestQueueLimitPerSession, {} locks older than executionTimeout broken\n",
                ss.lock_waits,
                ss.mean_wait_ms,
                ss.max_wait_ms,
                ss.polls,
                ss.peak_waiting_per_session,
                ss.queue_limit_rejections,
                ss.stale_locks_released
            ));
        }
        if let Some(t) = self.request_timeout.as_ref().filter(|t| t.callbacks > 0) {
            s.push_str(&format!(
                "executionTimeout ({} s): {} requests aborted (HTTP 500 Request timed out){}, by {} timer callbacks\n",
                t.execution_timeout_s,
                t.requests_timed_out,
                t.first_timed_out_s
                    .map_or(String::new(), |f| format!(", the first at {f:.1} s")),
                t.callbacks
            ));
        }
        if let Some(f) = &self.farm {
            s.push_str(&format!(
                "farm: {} user requests took {} attempts ({} retries, {:.3} per request), {} client timeouts\n",
                f.user_requests, f.attempts, f.retries, f.attempts_per_user_request, f.client_timeouts
            ));
            if let Some(lb) = &f.load_balancer {
                s.push_str(&format!(
                    "load balancer ({}): {} removals, {} of {} servers removed at least once, as few as {} in rotation, {} requests rejected with every server out\n",
                    lb.policy,
                    lb.removals,
                    lb.servers_ever_removed,
                    f.servers.len(),
                    lb.min_servers_in_rotation,
                    lb.rejected_all_out
                ));
            }
            for srv in &f.servers {
                let o = &srv.summary.outcomes;
                let n503: u64 = o
                    .iter()
                    .filter(|(k, _)| k.starts_with("503"))
                    .map(|(_, v)| v)
                    .sum();
                s.push_str(&format!(
                    "  {}: {} attempts ({:.1} %), removed {}×{}, {:.1} s out of rotation; 503s {}, WSAENOBUFS {}, p99 {:.1} ms\n",
                    srv.name,
                    srv.routed,
                    srv.share * 100.0,
                    srv.removals,
                    srv.first_removed_at_s
                        .map(|t| format!(" (first at {t:.1} s)"))
                        .unwrap_or_default(),
                    srv.out_of_rotation_seconds,
                    n503,
                    srv.summary.outgoing.wsaenobufs,
                    srv.summary.latency_ms.all.p99
                ));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The same values straight into an HdrHistogram.
    fn direct(values: &[u64]) -> Histogram<u32> {
        let mut h = Histogram::new_with_bounds(1, MAX_TRACKED_NS, 3).unwrap();
        for &v in values {
            h.record(v.clamp(1, MAX_TRACKED_NS)).unwrap();
        }
        h
    }

    fn same(l: &Latency, h: &Histogram<u32>) {
        let s = l.settled();
        assert_eq!(l.count(), h.len());
        assert_eq!(s.len(), h.len());
        assert_eq!(s.max(), h.max());
        assert_eq!(s.min(), h.min());
        for q in [0.0, 0.1, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            assert_eq!(s.value_at_quantile(q), h.value_at_quantile(q), "q {q}");
        }
        let a: Vec<_> = s
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect();
        let b: Vec<_> = h
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect();
        assert_eq!(a, b);
    }

    #[test]
    fn the_index_is_hdrhistograms() {
        let h = Histogram::<u32>::new_with_bounds(1, MAX_TRACKED_NS, 3).unwrap();
        for v in (1..5000u64)
            .chain((0..44).flat_map(|k| [(1u64 << k) - 1, 1 << k, (1 << k) + 1, 3 << (k / 2)]))
        {
            let v = v.clamp(1, MAX_TRACKED_NS);
            let i = hdr_index(v);
            assert!(i < h.distinct_values());
            // The index's lowest value is the value's lowest equivalent, and maps back.
            assert_eq!(hdr_value(i), h.lowest_equivalent(v), "v {v}");
            assert_eq!(hdr_index(hdr_value(i)), i);
        }
    }

    #[test]
    fn byte_counters_that_wrap_many_times_give_hdrhistograms_figures() {
        // 100,000 values on 7 buckets: every byte wraps hundreds of times.
        let values: Vec<u64> = (0..100_000u64).map(|k| 1_000_000 * (1 + k % 7)).collect();
        let mut l = Latency::default();
        for &v in &values {
            l.record(v);
        }
        same(&l, &direct(&values));
        l.settle();
        same(&l, &direct(&values));
        assert_eq!(l.summary().count, 100_000);
    }

    proptest! {
        /// Recording through the byte counters, reading before or after settling, and
        /// resetting give exactly what HdrHistogram alone gives.
        #[test]
        fn latency_matches_hdrhistogram(
            first in proptest::collection::vec(0u64..(1 << 45), 0..3000),
            repeat in proptest::collection::vec(1u64..5_000_000_000, 0..600),
            second in proptest::collection::vec(0u64..(1 << 40), 0..500),
        ) {
            let mut l = Latency::default();
            let mut all = first.clone();
            for _ in 0..2 { all.extend(&repeat); }
            for &v in &all { l.record(v); }
            let qs = [0.1, 0.5, 0.5, 0.95, 0.99, 0.999, 1.0];
            let h = direct(&all);
            let one_pass = l.quantiles_ms(qs);
            for (k, &q) in qs.iter().enumerate() {
                let expect = if h.is_empty() { 0.0 } else { h.value_at_quantile(q) as f64 * 1e-6 };
                prop_assert_eq!(one_pass[k], expect, "q {}", q);
            }
            same(&l, &direct(&all));
            let _ = l.quantile_ms(0.99);
            l.settle();
            same(&l, &direct(&all));
            l.reset();
            same(&l, &direct(&[]));
            for &v in &second { l.record(v); }
            same(&l, &direct(&second));
            prop_assert_eq!(l.summary().count, second.len() as u64);
        }
    }
}
