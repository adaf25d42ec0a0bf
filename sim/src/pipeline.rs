//! The pipeline: wires the component models together and drives them with the engine.
//!
//! Packet order (DOMAIN §0), with the seams where later components go:
//!
//! ```text
//! clients ─► [NIC, AFD: issue 6] ─► HTTP.SYS app-pool queue ─► IIS (503.2)
//!         ─► ASP.NET (503 Server Too Busy, native queue) ─► CLR thread pool queue
//!         ─► worker thread: handler steps (cpu on the CPU model, wait, alloc → GC)
//!            [outgoing calls, ports: issue 4] ─► response
//! ```
//!
//! Each event goes to the model it belongs to; what the model returns decides where
//! the request goes next. Models never see the calendar: they schedule through
//! [`Fx`], which wraps their timer type in [`Ev`].
//!
//! Handler kinds (see `w3sim_models::handler`): a sync handler keeps its thread through
//! a wait; an async one gives it back and, when the wait ends, an IO-completion thread
//! runs the completion and posts the continuation to the worker queue; a
//! sync-over-async one blocks its thread, and the completion posts a continuation that
//! another worker thread must run before the blocked one can go on.
//!
//! A blocking GC suspends managed code: CPU work of request threads is suspended and
//! new managed CPU work is held back until the GC ends, while HTTP.SYS, IIS and ASP.NET
//! (native code) keep accepting requests, which pile up in the queues.

use std::time::Instant;

use w3sim_models::afd::{Afd, AfdConfig, AfdEvent, AfdTimer, FilterDriver};
use w3sim_models::app_pool::{
    Admit, AppPool, AppPoolConfig, AppPoolEvent, AppPoolTimer, PoolState,
};
use w3sim_models::aspnet::{Admission, AspNet, AspNetConfig};
use w3sim_models::backends::{Backend, BackendConfig, BackendEvent, BackendTimer};
use w3sim_models::clients::{
    ArrivalBatch, ArrivalProcess, Burst, ClassPicker, ClosedLoop, OpenLoop, OpenTimer,
    RateSchedule, UserTimer,
};
use w3sim_models::config_cache::{ConfigCache, ConfigCacheConfig, ConfigTimer};
use w3sim_models::connections::{
    CallId, ClientKind, ConnId, ConnectionPool, PoolConfig, PoolEvent, PoolTimer,
};
use w3sim_models::cpu::{Cpu, CpuConfig, CpuTimer, JobId, Priority};
use w3sim_models::deadlines::Deadlines;
use w3sim_models::file_cache::{FileCache, FileCacheConfig, FileLookup};
use w3sim_models::gc::{Collection, Gc, GcConfig, GcFlavor as MGcFlavor, GcTimer};
use w3sim_models::handler::{Drawn, Handler, HandlerKind as MHandlerKind, Step};
use w3sim_models::http_sys::{
    AppPoolQueue, AppPoolQueueConfig, QueueTimer, SiteConnections, UNLIMITED_CONNECTIONS,
};
use w3sim_models::iis::{Iis, IisConfig};
use w3sim_models::kernel_cache::{CacheTimer, KernelCache, KernelCacheConfig, Lookup};
use w3sim_models::nic::{Nic, NicConfig, NicEvent, NicTimer};
use w3sim_models::request::{ClassId, Outcome, RequestId};
use w3sim_models::request_timeout::{RequestTimeoutConfig, RequestTimeoutManager, TimeoutTimer};
use w3sim_models::session_state::{
    Access, Acquire, Poll, PollTimer, SessionLocks, SessionStateConfig, Ticket,
};
use w3sim_models::tcp::{ConnectError, Tcp, TcpConfig};
use w3sim_models::thread_pool::{
    GateTimer as MGateTimer, Probe, Runtime as MRuntime, ThreadId, ThreadPool, ThreadPoolConfig,
    TieredCompilation, TpEvent, TpTimer, WorkItem,
};
use w3sim_models::time::{SimTime, as_secs};
use w3sim_models::urls::UrlCatalogue;

use crate::engine::{Calendar, Fx, Slab, Stream, stream};
use crate::output::SampleSink;
use crate::scenario::{
    Arrivals, EnableSessionState, GateTimer, HandlerKind, LoadBalancerCapabilities, LoadMode,
    Runtime, Scenario, ScheduleShape, Scheduler,
};
use crate::stats::{
    AppPoolSummary, BackendCalls, GaugeSummary, GcSummary, KernelCacheSummary, Latency,
    LatencyByClass, LimitHit, LittlesLaw, MeasuredSummary, OutcomeCounts, OutgoingSummary,
    PauseBucket, RequestTotals, RunEvent, Summary, Window, round6,
};

/// Every event of the simulation.
#[derive(Clone, Copy, Debug)]
pub enum Ev {
    /// Timer of open-loop source `i` (0: `[load]`; then classes with their own rate).
    Open(u16, OpenTimer),
    /// A closed-loop user finished thinking.
    User(UserTimer),
    /// A request's `wait` step ended.
    WaitDone(RequestId),
    /// CPU demand of a job finished on a dedicated processor (`scheduler = "dedicated"`).
    CpuDirect(JobId),
    /// The shared CPU model's timer.
    Cpu(CpuTimer),
    /// The thread pool's timers (gate thread, thread creation, idle timeout, …).
    Tp(TpTimer),
    /// The GC's timers.
    Gc(GcTimer),
    /// A periodic cache reload (seed 003).
    CacheReload,
    /// CPU noise number `i` starts.
    Noise(u32),
    /// Time to write a row of the time series.
    Sample,
    /// End of warm-up: statistics restart.
    WarmupEnd,
    /// Connection-pool timer of backend `b`.
    Pool(u16, PoolTimer),
    /// Backend `b`'s timer.
    Backend(u16, BackendTimer),
    /// The TCP handshake of connection `conn` to backend `b` completed.
    Connected(u16, ConnId),
    /// The oldest outgoing call with timeout `Outgoing::call_timeouts[i]` may have timed
    /// out (one event outstanding per distinct timeout, not one per call).
    CallTimeouts(u16),
    /// The kernel cache's scavenger.
    Cache(CacheTimer),
    /// The application pool's lifecycle timers.
    AppPool(AppPoolTimer),
    /// IIS's config-cache lock: file-change notifications and releases.
    Config(ConfigTimer),
    /// AFD's delayed work queue (filter-driver items, lock releases).
    Afd(AfdTimer),
    /// The NIC (retransmissions of discarded frames).
    Nic(NicTimer),
    /// Valve `i` samples its counter.
    Valve(u16),
    /// Health probe number `n` reached its timeout (it counts then if still unanswered).
    ProbeDeadline(u64),
    /// A request polling a locked session: its poll timer ticked.
    Session(PollTimer),
    /// ASP.NET's request timeout manager's 15 s timer (`executionTimeout`).
    RequestTimeout(TimeoutTimer),
    /// The oldest request waiting for a worker process in HTTP.SYS may have reached
    /// `connectionTimeout` (`Timer_AppPool`).
    HttpSys(QueueTimer),
}

/// What a request is doing, for GC suspension and thread bookkeeping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// In HTTP.SYS / IIS / ASP.NET queues or the thread-pool queue.
    Queued,
    /// Running a CPU job on its thread.
    Cpu,
    /// In a wait step (thread held for sync/sync-over-async, released for async).
    Waiting,
    /// Wait over; an IO-completion thread runs its completion.
    IoCallback,
    /// Sync-over-async: its continuation runs on another worker thread.
    Signalling,
    /// Async: continuation posted to the worker queue.
    Continuation,
    /// Found its session locked: no thread, polling on a timer.
    SessionWait,
    /// A poll callback of its session lock runs on a worker thread (`thread`).
    SessionPoll,
    /// Aborted by `executionTimeout` while blocked: answered (500) and its thread gone, it
    /// stays here only until the wait or calls it was blocked in end, so that their
    /// events find it (and its slot is not reused under them).
    Aborted,
}

/// Per-request state, kept only while the request is in flight.
#[derive(Clone, Copy, Debug)]
struct Request {
    class: ClassId,
    arrived: SimTime,
    /// When a worker thread first took it (end of its queue wait), or `NOT_STARTED`.
    started: SimTime,
    /// When its execution last resumed on a thread after an asynchronous pipeline step
    /// (first taken, or its session lock granted): `executionTimeout` counts from here.
    resumed: SimTime,
    step: u16,
    /// Closed-loop user that sent it (this server's, or a farm's when `origin` is set),
    /// or `NO_USER`.
    user: u32,
    /// Worker thread running (or holding) the request, or `NO_THREAD`.
    thread: ThreadId,
    /// The thread of its IO completion or sync-over-async continuation, or `NO_THREAD`.
    aux_thread: ThreadId,
    phase: Phase,
    /// Bytes it keeps referenced until it ends (GC survival).
    retained: u64,
    /// Reached ASP.NET (counts in its accounting).
    in_aspnet: bool,
    /// Outgoing calls of the current `call` step still running.
    calls_pending: u16,
    /// Calls of a sequential fan-out not started yet.
    calls_left: u16,
    /// The first outgoing-call failure of the request, if any.
    call_failure: Option<Outcome>,
    /// URL (catalogue rank) and response size, for the kernel cache; `NO_URL` if none.
    url: u64,
    bytes: u64,
    /// Worker-process generation serving it, `NO_GENERATION` before a process took it.
    generation: u32,
    /// Its worker process crashed: the client's connection was dropped.
    abandoned: bool,
    /// The farm's token for the attempt (answered through `completed`), or `NO_ORIGIN`.
    origin: u64,
    /// Its hold on (or wait for) its ASP.NET session, or `NO_TICKET`.
    session: Ticket,
    /// The request timeout manager aborted its thread while it ran CPU work: the abort
    /// takes effect when that work ends.
    abort: bool,
    /// It holds one of the site's connections (`maxConnections`) until its response.
    site_conn: bool,
}

const NO_USER: u32 = u32::MAX;
const NO_ORIGIN: u64 = u64::MAX;
const NO_URL: u64 = u64::MAX;
const NO_GENERATION: u32 = u32::MAX;
const NO_THREAD: ThreadId = ThreadId::MAX;
const NOT_STARTED: SimTime = SimTime::MAX;
const NO_TICKET: Ticket = Ticket::MAX;

// Work items and CPU jobs carry (request id, kind) in one u64.
const WI_RUN: u64 = 0;
const WI_SIGNAL: u64 = 1;
const WI_IO: u64 = 2;
/// A session-lock poll callback; bits 36.. carry the low bits of the request's ticket.
const WI_POLL: u64 = 3;
/// The request timeout manager's timer callback (`CancelTimedOutRequests`).
const WI_TIMEOUT: u64 = 4;
const JOB_STEP: u64 = 0;
const JOB_IO: u64 = 1;
const JOB_SIGNAL: u64 = 2;
const JOB_GC: u64 = 3;
const JOB_NOISE: u64 = 4;
const JOB_HIT: u64 = 5;
const JOB_COLD_START: u64 = 6;
const JOB_AFD: u64 = 7;
const JOB_DPC: u64 = 8;
const JOB_POLL: u64 = 9;
/// The request timeout manager's callback scanning requests; the id bits carry its thread.
const JOB_TIMEOUT: u64 = 10;
/// The ticket bits a poll callback's work item carries (bits 36..63 of the item).
const POLL_TICKET_MASK: u64 = (1 << 27) - 1;
/// AFD tokens of outgoing calls to loopback backends (request ids are below 2^32).
const CALL_TOKEN: u64 = 1 << 63;

#[inline]
fn tag(id: u32, kind: u64) -> u64 {
    ((id as u64) << 4) | kind
}
#[inline]
fn untag(x: u64) -> (u32, u64) {
    ((x >> 4) as u32, x & 15)
}

/// A run failed for a reason that is w3sim's fault, or its output could not be written.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("internal error: invariant violated: {0}")]
    Invariant(String),
    #[error("cannot write output: {0}")]
    Io(#[from] std::io::Error),
    /// Simulated time stopped advancing: the scenario describes a loop of steps that take
    /// no time (bad input: exit 2).
    #[error(
        "simulated time is stuck at {at_s:.6} s: {events} events at that instant and the clock does \
         not move (a loop of steps that take no time, e.g. closed-loop users with think_time \
         \"0s\" sending requests that take none)"
    )]
    Stuck { at_s: f64, events: u64 },
}

impl RunError {
    /// The process exit code: 2 when the scenario itself is the problem, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Stuck { .. } => 2,
            RunError::Invariant(_) | RunError::Io(_) => 1,
        }
    }
}

/// The time-series columns, named after the perfmon counters they model
/// (`w3sim\…` for figures no perfmon counter gives).
pub const COLUMNS: &[&str] = &[
    "time_s",
    "HTTP Service Request Queues\\ArrivalRate",
    "HTTP Service Request Queues\\CurrentQueueSize",
    "HTTP Service Request Queues\\RejectionRate",
    "HTTP Service Request Queues\\MaxQueueItemAge",
    "w3sim\\HTTP.SYS Outstanding Requests",
    "W3SVC_W3WP\\Active Requests",
    "ASP.NET\\Requests Current",
    "ASP.NET\\Requests Queued",
    "ASP.NET\\Requests In Native Queue",
    "ASP.NET\\Requests Rejected",
    "ASP.NET Applications\\Requests Executing",
    "ASP.NET Applications\\Requests/Sec",
    "System.Runtime\\ThreadPool Thread Count",
    "System.Runtime\\ThreadPool Queue Length",
    "System.Runtime\\ThreadPool Completed Work Item Count/sec",
    "w3sim\\ThreadPool Completed Work Items",
    "w3sim\\ThreadPool Goal",
    "w3sim\\ThreadPool Injections On Demand",
    "w3sim\\ThreadPool Injections Starvation",
    "w3sim\\ThreadPool Injections Hill Climbing",
    "w3sim\\ThreadPool Injections Blocking",
    "w3sim\\IO Completion Threads",
    "Processor(_Total)\\% Processor Time",
    "System\\Processor Queue Length",
    "System\\Context Switches/sec",
    ".NET CLR Memory\\% Time in GC",
    ".NET CLR Memory\\# Gen 0 Collections",
    ".NET CLR Memory\\# Gen 1 Collections",
    ".NET CLR Memory\\# Gen 2 Collections",
    ".NET CLR Memory\\Allocated Bytes/sec",
    "w3sim\\GC Suspended",
    "TCPv4\\Connections Established",
    "TCPv4\\Connection Failures",
    "w3sim\\Ports In Use",
    "w3sim\\Ports In TIME_WAIT",
    "w3sim\\Incoming Connections In TIME_WAIT",
    "w3sim\\WSAENOBUFS/sec",
    "w3sim\\Outgoing Calls In Flight",
    "w3sim\\Outgoing Calls Waiting For A Connection",
    "w3sim\\Outgoing Connections Opened/sec",
    "w3sim\\Backend Calls In Service",
    "Web Service Cache\\Kernel: Current URIs Cached",
    "Web Service Cache\\Kernel: URI Cache Hits %",
    "Web Service Cache\\Kernel: URI Cache Flushes",
    "Web Service Cache\\Current Files Cached",
    "Web Service Cache\\File Cache Hits %",
    "Web Service Cache\\File Cache Flushes",
    "HTTP Service Request Queues\\CacheHitRate",
    "APP_POOL_WAS\\Current Worker Processes",
    "w3sim\\Config Cache Readers Blocked",
    "w3sim\\Delayed Work Queue Length",
    "Network Interface(MS TCP Loopback interface)\\Output Queue Length",
    "w3sim\\Delayed Workers Waiting On Lock",
    "Network Interface\\Packets Received/sec",
    "Network Interface\\Packets Received Discarded",
    "Processor Information\\DPCs Queued/sec",
    "Processor Information\\% DPC Time",
    "w3sim\\Requests Waiting For Session Lock",
    "Web Service\\Current Connections",
    "w3sim\\Requests In Flight",
    "w3sim\\Response Time p50 (ms)",
    "w3sim\\Response Time p95 (ms)",
    "w3sim\\Response Time p99 (ms)",
];

/// Every column of `timeseries.csv`: [`COLUMNS`], then one `w3sim\Outcome <name>/sec`
/// per outcome in [`Outcome::ALL`] order.
pub fn columns() -> Vec<String> {
    let mut c: Vec<String> = COLUMNS.iter().map(|s| s.to_string()).collect();
    c.extend(
        Outcome::ALL
            .iter()
            .map(|o| format!("w3sim\\Outcome {}/sec", o.name())),
    );
    c
}

/// The processors: the shared scheduler model, or one processor per thread.
enum Processors {
    Shared(Box<Cpu>),
    Dedicated { busy_ns: u128, running: u32 },
}

/// Managed work that a blocking GC holds back.
#[derive(Clone, Copy, Debug)]
enum Deferred {
    /// CPU work (job, demand) a managed thread wanted to start.
    Cpu(JobId, u64),
    /// A thread whose blocking wait ended must return to managed code to go on.
    Resume(RequestId),
    /// A work item queued to the thread pool while its worker threads are frozen.
    Post(WorkItem),
}

/// One server's components.
/// An outgoing call in progress.
#[derive(Clone, Copy, Debug)]
struct Call {
    req: RequestId,
    backend: u16,
    generation: u32,
    conn: Option<ConnId>,
    state: CallState,
    started: SimTime,
    timeout_ns: u64,
    /// Cancelled, but its connection waits for the late response (`abort_on_cancel = false`).
    abandoned: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CallState {
    /// Waiting in the ServicePoint's queue, or for a new connection to be opened.
    WaitingConn,
    /// TCP handshake of a new connection.
    Connecting,
    /// Sent; the backend serves it.
    AtBackend,
}

/// The outgoing side: ports, a connection pool and a model per backend, calls in flight.
struct Outgoing {
    tcp: Tcp,
    pools: Vec<ConnectionPool>,
    backends: Vec<Backend<Stream>>,
    connect_time: Vec<w3sim_models::dist::Sampler>,
    connect_rng: Stream,
    calls: Slab<Call>,
    next_generation: u32,
    /// Per distinct call timeout (ns): the calls' (slot, generation) by deadline.
    call_timeouts: Vec<(u64, Deadlines<(u32, u32)>)>,
    /// Connections with a bound port, per backend (a `Close` of one releases its port).
    bound: Vec<std::collections::HashSet<ConnId>>,
    stats: OutgoingCounts,
}

impl Outgoing {
    /// Whether the call in `slot` is still call `generation` and its timeout still matters.
    fn call_live(calls: &Slab<Call>, slot: u32, generation: u32) -> bool {
        calls
            .get(slot)
            .is_some_and(|c| c.generation == generation && !c.abandoned)
    }
}

/// Counts of outgoing calls by result.
#[derive(Clone, Debug, Default)]
struct OutgoingCounts {
    calls: u64,
    ok: u64,
    timeouts: u64,
    errors: u64,
    wsaenobufs: u64,
    wsaeaddrinuse: u64,
    latency: Latency,
    per_backend: Vec<[u64; 6]>,
    peak_ports_used: u64,
    first_wsaenobufs_s: Option<f64>,
    first_conn_wait_s: Option<f64>,
}

struct Server {
    /// The site's client connections (`limits/@maxConnections`).
    site: SiteConnections,
    http: AppPoolQueue,
    iis: Iis,
    aspnet: AspNet,
    tp: ThreadPool<Stream>,
    cpu: Processors,
    gc: Gc,
    /// A blocking GC is in progress: managed code is suspended.
    suspended: bool,
    /// Managed CPU jobs suspended by the current blocking GC.
    suspended_jobs: Vec<JobId>,
    /// Managed work held back during a blocking GC, resumed in order when it ends.
    deferred: Vec<Deferred>,
    /// GC CPU jobs running (ids for the CPU model).
    next_aux_job: u32,
    /// CPU utilisation over the last gate interval (what the gate thread sees).
    cpu_pct_gate: f64,
    gate_snapshot: (SimTime, u128),
    /// CPU utilisation over the last sample interval.
    cpu_pct_sample: f64,
    sample_snapshot: (SimTime, u128),
    gc_pause_snapshot: u128,
    alloc_snapshot: u64,
    switches_snapshot: u64,
    cache_generation: u64,
    out: Outgoing,
    cache: KernelCache,
    /// IIS's user-mode file cache, when a class has a `file` step.
    files: Option<Box<StaticFiles>>,
    /// Per class: its URL catalogue and mean response size.
    urls: Vec<Option<(UrlCatalogue, f64)>>,
    url_rng: Stream,
    pool_life: AppPool,
    config: ConfigCache<Stream>,
    afd: Afd<Stream>,
    nic: Nic,
    /// Per class: health-probe timeouts in a row.
    probe_streak: Vec<u32>,
    /// Probes not yet answered nor timed out: (number, request). A probe times out at its
    /// deadline, answered or not, as the prober's own timer would.
    probes_open: Vec<(u64, RequestId)>,
    probes_sent: u64,
    /// Responses on kept-alive client connections since one last turned over
    /// (`tcp.incoming_requests_per_connection`).
    keep_alive_responses: u32,
    probe_timeouts: u64,
    failovers: u64,
    dpc_snapshot: u128,
    /// Marked moments of the run (recycles, crashes, flushes, rapid-fail): (time, kind, detail).
    events: Vec<(SimTime, &'static str, String)>,
    abandoned: u64,
    /// First time each limit was reached: (time, limit, what happened).
    limits: Vec<(SimTime, &'static str, String)>,
    /// Limits reached since the last sample, each at its first time in the interval.
    interval_hits: Vec<(SimTime, &'static str)>,
    /// ASP.NET session locks (only when a class uses the session).
    sessions: Option<SessionLocks>,
    session_rng: Stream,
    /// ASP.NET's request timeout manager (`executionTimeout`).
    timeouts: RequestTimeoutManager,
    /// Requests aborted while blocked that stay in `reqs` until their wait ends
    /// ([`Phase::Aborted`]); not in flight.
    zombies: u64,
    /// Requests a timeout callback aborts (kept to allocate nothing per callback).
    overdue: Vec<RequestId>,
    /// The timeout callback's CPU job while it runs (suspended by a blocking GC).
    timeout_job: Option<JobId>,
    /// [`Simulation::drain_tp`] is running (it is not re-entered).
    draining_tp: bool,
}

/// A simulation in progress.
pub struct Simulation<'a> {
    scn: &'a Scenario,
    /// `scn.duration`, read on every event (kept here, next to the calendar).
    end: SimTime,
    /// `[[valves]]`: in-application control loops, with the call steps each skipped.
    valves: Vec<(w3sim_models::valve::Valve, u64)>,
    cal: Calendar<Ev>,
    reqs: Slab<Request>,
    /// Open-loop sources: `[load]`'s weighted classes, then one per class with its own rate.
    sources: Sources,
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
    /// Processor time used before the measurement window started.
    window_busy_start: u128,
    violations: Vec<String>,
    faults: Faults,
    /// Attempts injected by a farm that ended since the farm last looked.
    completed: Vec<Ended>,
    /// Wall-clock start of the run (for `wall_seconds`).
    wall: Option<Instant>,
}

/// An attempt injected by a farm that ended.
#[derive(Clone, Copy, Debug)]
pub struct Ended {
    /// What the farm passed to [`Simulation::inject`].
    pub origin: u64,
    pub outcome: Outcome,
    /// When it was injected.
    pub arrived: SimTime,
}

/// Deliberate model errors, used only by the validation suite to prove that its
/// checks catch a wrong model. Never set by a scenario.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// Serve the HTTP.SYS and thread-pool queues newest-first (LIFO) instead of FIFO.
    pub lifo_queue: bool,
}

/// Per-sample-interval accumulators for rates and response-time percentiles.
struct IntervalStats {
    latency: Latency,
    outcomes: OutcomeCounts,
}

fn handler_of(scn: &Scenario, c: &crate::scenario::Class) -> Handler {
    let backend_index = |name: &str| {
        scn.backends
            .iter()
            .position(|b| b.name == name)
            .unwrap_or(0)
    };
    let request_timeout = scn.connections.request_timeout.0;
    let one = || w3sim_models::dist::Dist::Const(1.0).sampler();
    let kind = match c.handler {
        HandlerKind::Sync => MHandlerKind::Sync,
        HandlerKind::Async => MHandlerKind::Async,
        HandlerKind::SyncOverAsync => MHandlerKind::SyncOverAsync,
    };
    let zero = || w3sim_models::dist::Dist::Const(0.0).sampler();
    let steps = match &c.service {
        Some(d) => vec![Step::Cpu(d.0.sampler())],
        None => c
            .steps
            .iter()
            .map(|s| {
                if let Some(d) = &s.cpu {
                    Step::Cpu(d.0.sampler())
                } else if let Some(d) = &s.wait {
                    Step::Wait(d.0.sampler())
                } else if let Some(b) = &s.call {
                    Step::Call {
                        backend: backend_index(b) as u16,
                        timeout_ns: s.timeout.map_or(request_timeout, |t| t.0),
                        fanout: s.fanout.as_ref().map_or_else(one, |f| f.0.sampler()),
                        parallel: s.parallel.unwrap_or(true),
                    }
                } else if let Some(b) = &s.file {
                    Step::File {
                        backend: backend_index(b) as u16,
                        timeout_ns: s.timeout.map_or(request_timeout, |t| t.0),
                    }
                } else if let Some(a) = &s.alloc {
                    Step::Alloc {
                        bytes: a.0.sampler(),
                        retained: s.retain.as_ref().map_or_else(zero, |r| r.0.sampler()),
                    }
                } else {
                    Step::Wait(zero())
                }
            })
            .collect(),
    };
    Handler { kind, steps }
}

/// The connection pool of calls to backend `b`: ServicePoint or SocketsHttpHandler
/// (`Scenario::connection_client`), its limit (`backends[].max_connections` wins), its
/// timeouts.
pub fn pool_config(scn: &Scenario, b: &crate::scenario::BackendSpec) -> PoolConfig {
    let c = &scn.connections;
    let nonzero = |d: u64| (d > 0).then_some(d);
    let mut p = match scn.connection_client() {
        crate::scenario::ConnectionClient::ServicePoint => {
            let limit = if b.max_connections > 0 {
                b.max_connections
            } else if b.loopback || c.default_connection_limit == 0 {
                u32::MAX
            } else {
                c.default_connection_limit
            };
            let mut p = PoolConfig::new(limit);
            p.idle_timeout_ns = Some(c.max_service_point_idle_time.0);
            p.lease_timeout_ns = nonzero(c.connection_lease_timeout.0);
            p
        }
        crate::scenario::ConnectionClient::SocketsHttpHandler => {
            // No loopback exemption: MaxConnectionsPerServer applies to every endpoint.
            let limit = if b.max_connections > 0 {
                b.max_connections
            } else if c.max_connections_per_server == 0 {
                u32::MAX
            } else {
                c.max_connections_per_server
            };
            let mut p = PoolConfig::sockets_http_handler(limit);
            p.idle_timeout_ns = nonzero(c.pooled_connection_idle_timeout.0);
            p.lease_timeout_ns = nonzero(c.pooled_connection_lifetime.0);
            p.connect_timeout_ns = nonzero(c.connect_timeout.0);
            p
        }
    };
    debug_assert!(matches!(
        (p.client, scn.connection_client()),
        (
            ClientKind::ServicePoint,
            crate::scenario::ConnectionClient::ServicePoint
        ) | (
            ClientKind::SocketsHttpHandler,
            crate::scenario::ConnectionClient::SocketsHttpHandler
        )
    ));
    p.keep_alive = b.keep_alive;
    p.queue_timeout_ns = c.request_timeout.0;
    p
}

fn thread_pool_config(scn: &Scenario) -> ThreadPoolConfig {
    let cpus = scn.cpu.logical_processors;
    let t = &scn.thread_pool;
    let mut c = ThreadPoolConfig::new(cpus);
    c.min_worker_threads = t.min_threads(cpus);
    c.max_worker_threads = t.max_threads(cpus);
    c.initial_goal = t.warm_worker_threads;
    c.min_io_threads = if t.min_io_threads == 0 {
        cpus
    } else {
        t.min_io_threads
    };
    c.max_io_threads = if t.max_io_threads == 0 {
        // processModel autoConfig: SetMaxThreads(100 × N, 100 × N) (DOMAIN §4.4).
        cpus.saturating_mul(100).min(32767)
    } else {
        t.max_io_threads
    }
    .max(c.min_io_threads);
    c.runtime = match t.runtime {
        Runtime::Net48 => MRuntime::Net48,
        Runtime::Net6 => MRuntime::Net6,
        Runtime::Net8 => MRuntime::Net8,
    };
    c.processors_per_io_poller = t.processors_per_io_poller;
    c.io_completion_ports = t.io_completion_ports;
    c.inline_io_completions = t.inline_io_completions;
    c.gate_timer = match t.gate_timer {
        GateTimer::Periodic => MGateTimer::Periodic,
        GateTimer::Sleep => MGateTimer::Sleep,
    };
    c.starvation_detection = !t.disable_starvation_detection;
    c.injection_pacing_ns = t.injection_pacing.0;
    c.hill_climbing_enabled = !t.hill_climbing_disable;
    c.thread_creation_cost_ns = t.thread_creation_cost.0;
    c.thread_idle_timeout_ns = if t.thread_timeout.0 == 0 {
        None
    } else {
        Some(t.thread_timeout.0)
    };
    c.tiered_compilation = t.tiered_compilation.then(|| {
        let cb = t.tiering_callback_time.0;
        TieredCompilation {
            delay_ns: t.tiering_delay.0,
            delay_extensions: t.tiering_delay_extensions,
            callback_ns: (cb / 2, cb + cb / 2),
            promotion_gaps_ns: (0..t.tiering_promotions)
                .map(|i| t.tiering_promotion_gap.0.saturating_mul(1u64 << i.min(32)))
                .collect(),
            optimize_ns: (
                t.tiering_optimize_time_min.0,
                t.tiering_optimize_time_max
                    .0
                    .max(t.tiering_optimize_time_min.0),
            ),
        }
    });
    c
}

/// Where requests come from: `[load]`'s open-loop sources or its closed-loop users. A
/// single-server run and a farm's front end drive them the same way, each with its own
/// event type.
pub(crate) struct Sources {
    open: Vec<OpenLoop<Stream>>,
    closed: Option<ClosedLoop<Stream>>,
}

impl Sources {
    pub(crate) fn new(scn: &Scenario) -> Self {
        match scn.load.mode {
            LoadMode::Open => Self {
                open: open_sources(scn),
                closed: None,
            },
            LoadMode::Closed => {
                let weights: Vec<f64> = scn.classes.iter().map(|c| c.weight).collect();
                Self {
                    open: Vec::new(),
                    closed: Some(ClosedLoop::new(
                        scn.load.users,
                        scn.load.think_time.0.sampler(),
                        ClassPicker::new(&weights),
                        stream(scn.seed, "load/users"),
                    )),
                }
            }
        }
    }

    /// No load at all (a farm's server: the farm sends it its requests).
    fn none() -> Self {
        Self {
            open: Vec::new(),
            closed: None,
        }
    }

    /// Arms every source's first arrival and every user's first think time.
    pub(crate) fn start<E: Copy>(
        &mut self,
        cal: &mut Calendar<E>,
        open: fn(u16, OpenTimer) -> E,
        user: fn(UserTimer) -> E,
    ) {
        for (i, o) in self.open.iter_mut().enumerate() {
            let i = i as u16;
            o.start(
                0,
                &mut Fx {
                    cal: &mut *cal,
                    wrap: move |t| open(i, t),
                },
            );
        }
        if let Some(closed) = self.closed.as_mut() {
            closed.start(0, &mut Fx { cal, wrap: user });
        }
    }

    /// Open-loop source `src`'s timer fired: the requests that arrive now (draw each
    /// one's class with [`Sources::class_of`]).
    #[inline]
    pub(crate) fn open_timer<E: Copy>(
        &mut self,
        now: SimTime,
        src: u16,
        timer: OpenTimer,
        cal: &mut Calendar<E>,
        open: fn(u16, OpenTimer) -> E,
    ) -> ArrivalBatch {
        self.open[src as usize].on_timer(
            now,
            timer,
            &mut Fx {
                cal,
                wrap: move |t| open(src, t),
            },
        )
    }

    /// The class of one request of `batch` from source `src`.
    #[inline]
    pub(crate) fn class_of(&mut self, src: u16, batch: &ArrivalBatch) -> ClassId {
        match batch.class {
            Some(c) => c,
            None => self.open[src as usize].pick_class(),
        }
    }

    /// A user finished thinking: the class of the request it sends now.
    #[inline]
    pub(crate) fn user_timer(&mut self, now: SimTime, timer: UserTimer) -> ClassId {
        self.closed
            .as_mut()
            .expect("user timer without users")
            .on_timer(now, timer)
    }

    /// User `user`'s request ended (answered or failed): it thinks, then sends the next.
    #[inline]
    pub(crate) fn user_done<E: Copy>(
        &mut self,
        now: SimTime,
        user: u32,
        cal: &mut Calendar<E>,
        wrap: fn(UserTimer) -> E,
    ) {
        if let Some(closed) = self.closed.as_mut() {
            closed.on_response(now, user, &mut Fx { cal, wrap });
        }
    }
}

/// The open-loop sources: `[load]` for the classes that take a weighted share of it
/// (with its bursts), then one source per class with its own `rate` or `schedule`.
fn open_sources(scn: &Scenario) -> Vec<OpenLoop<Stream>> {
    let own = |c: &crate::scenario::Class| c.rate.is_some() || !c.schedule.is_empty();
    let process = match scn.load.arrivals {
        Arrivals::Poisson => ArrivalProcess::Poisson,
        Arrivals::Constant => ArrivalProcess::Constant,
    };
    let linear = scn.load.schedule_shape == ScheduleShape::Linear;
    let scale = scn.load.scale;
    let schedule_of = |rate: f64, points: &[crate::scenario::RatePoint]| {
        if points.is_empty() {
            RateSchedule::constant(rate * scale)
        } else {
            RateSchedule {
                points: points.iter().map(|p| (p.at.0, p.rate.0 * scale)).collect(),
                linear,
            }
        }
    };
    let shared: Vec<f64> = scn
        .classes
        .iter()
        .map(|c| if own(c) { 0.0 } else { c.weight })
        .collect();
    let bursts: Vec<Burst> = scn
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
    let mut sources = Vec::new();
    let any_shared = shared.iter().any(|&w| w > 0.0);
    let main_schedule = if any_shared {
        schedule_of(scn.load.rate.0, &scn.load.schedule)
    } else {
        RateSchedule::constant(0.0)
    };
    // With no class sharing [load], its picker still needs a positive weight; bursts then
    // name their class or go to the first class.
    let weights = if any_shared { shared } else { vec![1.0] };
    sources.push(OpenLoop::new(
        process,
        main_schedule,
        bursts,
        ClassPicker::new(&weights),
        stream(scn.seed, "load/arrivals"),
    ));
    for (i, c) in scn.classes.iter().enumerate() {
        if !own(c) {
            continue;
        }
        let mut w = vec![0.0; scn.classes.len()];
        w[i] = 1.0;
        sources.push(OpenLoop::new(
            process,
            schedule_of(c.rate.map_or(0.0, |r| r.0), &c.schedule),
            Vec::new(),
            ClassPicker::new(&w),
            stream(scn.seed, &format!("load/arrivals/{}", c.name)),
        ));
    }
    sources
}

/// IIS's static file handler's cache and the share's metadata round trip.
#[derive(Debug)]
struct StaticFiles {
    cache: FileCache,
    /// `GetFileAttributesEx` against the share (`iis.nas_round_trip`).
    round_trip: w3sim_models::dist::Sampler,
}

fn file_cache_config(scn: &Scenario) -> FileCacheConfig {
    let i = &scn.iis;
    FileCacheConfig {
        enabled: !i.disable_memory_cache && i.object_cache_ttl.0 > 0,
        object_cache_ttl_ns: i.object_cache_ttl_ns(),
        file_attribute_check_threshold_ns: i.file_attribute_check_threshold_ns(),
        max_cached_file_size: i.max_cached_file_size.0,
        mem_cache_size: u64::from(i.mem_cache_size) << 20,
    }
}

fn kernel_cache_config(scn: &Scenario) -> KernelCacheConfig {
    let k = &scn.kernel_cache;
    KernelCacheConfig {
        enabled: k.uri_enable_cache,
        frequent_hit_threshold: k.frequent_hit_threshold,
        frequent_hit_time_period_ns: k.frequent_hit_time_period.0,
        max_uri_bytes: k.uri_max_uri_bytes.0,
        max_cache_bytes: u64::from(k.uri_max_cache_megabyte_count) << 20,
        scavenger_period_ns: k.uri_scavenger_period.0,
        ttl_ns: (k.time_to_live.0 > 0).then_some(k.time_to_live.0),
        ..KernelCacheConfig::default()
    }
}

fn app_pool_config(scn: &Scenario) -> AppPoolConfig {
    let a = &scn.app_pool;
    let nz = |d: u64| (d > 0).then_some(d);
    AppPoolConfig {
        idle_timeout_ns: nz(a.idle_timeout.0),
        periodic_restart_ns: nz(a.periodic_restart.0),
        scheduled_recycles_ns: a.recycle_at.iter().map(|d| d.0).collect(),
        overlapped_recycle: !a.disallow_overlapping_rotation,
        cold_start_ns: a.cold_start.0,
        shutdown_time_limit_ns: a.shutdown_time_limit.0,
        startup_time_limit_ns: a.startup_time_limit.0,
        rapid_fail_max_crashes: if a.rapid_fail_protection {
            a.rapid_fail_protection_max_crashes
        } else {
            0
        },
        rapid_fail_interval_ns: a.rapid_fail_protection_interval.0,
        start_mode_always_running: a.start_mode == crate::scenario::StartMode::AlwaysRunning,
        crashes_ns: a.crash_at.iter().map(|d| d.0).collect(),
    }
}

/// Builds the outgoing side from the scenario.
fn outgoing(scn: &Scenario) -> Outgoing {
    let t = &scn.tcp;
    let tcp = Tcp::new(TcpConfig {
        dynamic_port_start: t.dynamic_port_start,
        dynamic_port_count: t.dynamic_port_count,
        tcp_timed_wait_delay_ns: t.tcp_timed_wait_delay.0,
        reuse_time_wait_ports: t.so_reuse_unicastport,
    });
    let pools = scn
        .backends
        .iter()
        .map(|b| ConnectionPool::new(pool_config(scn, b)))
        .collect();
    let backends = scn
        .backends
        .iter()
        .map(|b| {
            Backend::new(
                BackendConfig {
                    name: b.name.clone(),
                    latency: b.latency.0.sampler(),
                    capacity: (b.capacity > 0).then_some(b.capacity),
                    error_rate: b.error_rate,
                },
                stream(scn.seed, &format!("backend/{}", b.name)),
            )
        })
        .collect();
    Outgoing {
        tcp,
        pools,
        backends,
        connect_time: scn
            .backends
            .iter()
            .map(|b| b.connect_time.0.sampler())
            .collect(),
        connect_rng: stream(scn.seed, "tcp/connect"),
        calls: Slab::default(),
        next_generation: 0,
        call_timeouts: Vec::new(),
        bound: scn.backends.iter().map(|_| Default::default()).collect(),
        stats: OutgoingCounts {
            per_backend: vec![[0; 6]; scn.backends.len()],
            ..Default::default()
        },
    }
}

fn gc_config(scn: &Scenario) -> GcConfig {
    let flavor = if scn.gc.gc_server {
        MGcFlavor::Server
    } else {
        MGcFlavor::Workstation
    };
    let mut c = GcConfig::new(flavor, scn.gc.gc_concurrent, scn.cpu.logical_processors);
    if scn.gc.gc_gen0_size.0 > 0 {
        // GCgen0size is gen0's *minimum* budget per heap, used as given (no 5/8) but at
        // most half a segment (gc.cpp get_gen0_min_size); the maximum is raised to it
        // (init_static_data: gen0_max_size = max(gen0_min_size, gen0_max_size)).
        let heaps = if scn.gc.gc_server {
            scn.cpu.logical_processors as u64
        } else {
            1
        };
        let per_heap = scn.gc.gc_gen0_size.0.min(c.segment_bytes / 2);
        c.gen0_min_budget_bytes = per_heap * heaps;
        c.gen0_budget_bytes = c.gen0_budget_bytes.max(c.gen0_min_budget_bytes);
    }
    c
}

impl<'a> Simulation<'a> {
    /// Builds the models from a validated scenario.
    pub fn new(scn: &'a Scenario) -> Self {
        let seed = scn.seed;
        let system_web = scn.hosting() == crate::scenario::Hosting::SystemWeb;
        let cpus = scn.cpu.logical_processors;
        let cpu = match scn.cpu.scheduler {
            Scheduler::Shared => {
                let mut c = CpuConfig::new(cpus);
                c.context_switch_cost_ns = scn.cpu.context_switch_cost.0;
                c.quantum_ns = scn.cpu.quantum.0;
                Processors::Shared(Box::new(Cpu::new(c)))
            }
            Scheduler::Dedicated => Processors::Dedicated {
                busy_ns: 0,
                running: 0,
            },
        };
        let server = Server {
            site: SiteConnections::new(
                scn.http_sys.max_connections,
                if scn.tcp.incoming_keep_alive {
                    scn.tcp.incoming_keep_alive_connections.into()
                } else {
                    0
                },
            ),
            http: AppPoolQueue::new(AppPoolQueueConfig {
                queue_length: scn.http_sys.queue_length,
                queue_counts_in_flight: scn.http_sys.queue_counts_in_flight,
            }),
            iis: Iis::new(IisConfig {
                app_concurrent_request_limit: scn.iis.app_concurrent_request_limit,
            }),
            // ASP.NET Core in process has none of System.Web's throttles: the model only
            // counts the requests in the application (no limit, no native queue).
            aspnet: AspNet::new(if system_web {
                AspNetConfig {
                    logical_processors: cpus,
                    max_concurrent_requests_per_cpu: scn.aspnet.max_concurrent_requests_per_cpu,
                    request_queue_limit: scn.aspnet.request_queue_limit,
                    percent_cpu_limit: (scn.aspnet.percent_cpu_limit > 0)
                        .then_some(scn.aspnet.percent_cpu_limit as f64),
                    percent_cpu_limit_min_active_request_per_cpu: scn
                        .aspnet
                        .percent_cpu_limit_min_active_request_per_cpu,
                }
            } else {
                AspNetConfig {
                    logical_processors: cpus,
                    max_concurrent_requests_per_cpu: 0,
                    request_queue_limit: u32::MAX,
                    percent_cpu_limit: None,
                    percent_cpu_limit_min_active_request_per_cpu: 0,
                }
            }),
            tp: ThreadPool::new(thread_pool_config(scn), stream(seed, "thread_pool")),
            cpu,
            gc: Gc::new(gc_config(scn)),
            suspended: false,
            suspended_jobs: Vec::new(),
            deferred: Vec::new(),
            next_aux_job: 0,
            cpu_pct_gate: 0.0,
            gate_snapshot: (0, 0),
            cpu_pct_sample: 0.0,
            sample_snapshot: (0, 0),
            gc_pause_snapshot: 0,
            alloc_snapshot: 0,
            switches_snapshot: 0,
            cache_generation: 0,
            out: outgoing(scn),
            cache: KernelCache::new(kernel_cache_config(scn)),
            files: scn.has_file_steps().then(|| {
                Box::new(StaticFiles {
                    cache: FileCache::new(file_cache_config(scn)),
                    round_trip: scn.iis.nas_round_trip.0.sampler(),
                })
            }),
            urls: scn
                .classes
                .iter()
                .map(|c| {
                    c.urls
                        .as_ref()
                        .map(|u| (UrlCatalogue::new(u.count, u.zipf), u.mean_size.0 as f64))
                })
                .collect(),
            url_rng: stream(seed, "load/urls"),
            pool_life: AppPool::new(app_pool_config(scn)),
            afd: Afd::new(
                AfdConfig {
                    max_dynamic_workers: scn.afd.max_dynamic_workers,
                    additional_delayed_worker_threads: scn.afd.additional_delayed_worker_threads,
                    work_item_cpu_ns: scn.afd.work_item_cpu.0,
                    work_items: scn.afd.loopback_work_items,
                    fast_path: scn.afd.loopback_fast_path,
                    wfp_callout_present: scn.afd.wfp_callout_present,
                    filter: (scn.afd.filter_items.0 > 0.0).then_some(FilterDriver {
                        items_per_s: scn.afd.filter_items.0,
                        lock_hold_ns: scn.afd.filter_lock_hold.0,
                        lock_hold_cpu: scn.afd.filter_lock_hold_cpu,
                    }),
                },
                stream(seed, "afd"),
            ),
            nic: Nic::new(NicConfig {
                rss_queues: scn.nic.number_of_receive_queues,
                ring_descriptors: scn.nic.receive_buffers,
                dpc_cpu_per_packet_ns: scn.nic.dpc_cpu_per_packet.0,
                packets_per_request: scn.nic.packets_per_request,
                initial_rto_ns: scn.nic.initial_rto.0,
            }),
            probe_streak: vec![0; scn.classes.len()],
            probes_open: Vec::new(),
            probes_sent: 0,
            keep_alive_responses: 0,
            probe_timeouts: 0,
            failovers: 0,
            dpc_snapshot: 0,
            config: ConfigCache::new(
                ConfigCacheConfig {
                    dir_monitoring_for_unc: scn.iis.do_dir_monitoring_for_unc,
                    asp_net_fcn_disabled: scn.iis.fcn_mode == 1,
                    allow_sub_dir_config: scn.iis.allow_sub_dir_config,
                    notifications_per_s: scn.iis.unc_change_notifications.0,
                    directories_per_notification: scn.iis.unc_directories,
                    nas_round_trip: scn.iis.nas_round_trip.0.sampler(),
                },
                stream(seed, "iis/config_cache"),
            ),
            events: Vec::new(),
            abandoned: 0,
            limits: Vec::new(),
            interval_hits: Vec::new(),
            sessions: (system_web
                && scn
                    .classes
                    .iter()
                    .any(|c| c.enable_session_state != EnableSessionState::False))
            .then(|| {
                SessionLocks::new(SessionStateConfig {
                    poll_interval_ns: scn.session_state.session_state_locked_item_poll_interval.0,
                    request_queue_limit_per_session: scn
                        .session_state
                        .request_queue_limit_per_session,
                    execution_timeout_ns: scn.aspnet.execution_timeout.0,
                    ..SessionStateConfig::default()
                })
            }),
            session_rng: stream(seed, "aspnet/sessions"),
            timeouts: RequestTimeoutManager::new(RequestTimeoutConfig {
                execution_timeout_ns: scn.aspnet.execution_timeout.0,
                debugging_enabled: !scn.request_timeout_aborts(),
            }),
            zombies: 0,
            overdue: Vec::new(),
            timeout_job: None,
            draining_tp: false,
        };
        let handlers = scn.classes.iter().map(|c| handler_of(scn, c)).collect();
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
            end: scn.duration.0,
            sources: Sources::new(scn),
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
            },
            peak_counted: 0,
            window_busy_start: 0,
            violations: Vec::new(),
            faults: Faults::default(),
            completed: Vec::new(),
            wall: None,
            valves: scn
                .valves
                .iter()
                .map(|v| {
                    (
                        w3sim_models::valve::Valve::new(w3sim_models::valve::ValveConfig {
                            period_ns: v.period.0,
                            close_above: v.close_above,
                            open_below: v.open_below,
                        }),
                        0,
                    )
                })
                .collect(),
        }
    }

    /// Injects deliberate model errors (validation suite only).
    #[doc(hidden)]
    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self.server
            .tp
            .set_lifo_for_fault_injection(faults.lifo_queue);
        self
    }

    /// Runs to the scenario's duration, writing time-series rows to `sink`. Check
    /// [`Simulation::violations`] afterwards (or use [`run`], which does).
    pub fn run(&mut self, sink: &mut dyn SampleSink) -> Result<Summary, RunError> {
        self.begin(sink)?;
        while self.next_time().is_some() {
            self.step(sink)?;
        }
        self.end(sink)
    }

    /// A server of a farm: the same models, but no load of its own; the farm sends it
    /// attempts with [`Simulation::inject`] and collects their outcomes with
    /// [`Simulation::swap_completed`].
    pub fn member(scn: &'a Scenario) -> Self {
        let mut sim = Self::new(scn);
        sim.sources = Sources::none();
        sim
    }

    /// An attempt of a farm's user request arrives at this server.
    /// Injects an attempt of `class` from closed-loop `user` (`u32::MAX`: none), which
    /// the server answers through [`Simulation::swap_completed`] with `origin`.
    pub fn inject(&mut self, now: SimTime, class: ClassId, user: u32, origin: u64) {
        self.arrive(now, class, user, origin);
    }

    /// Swaps the attempts sent with [`Simulation::inject`] that ended since the last call
    /// with `buf` (an empty buffer to reuse).
    pub fn swap_completed(&mut self, buf: &mut Vec<Ended>) {
        std::mem::swap(&mut self.completed, buf);
    }

    /// Whether attempts ended since the last [`Simulation::swap_completed`].
    pub fn has_completed(&self) -> bool {
        !self.completed.is_empty()
    }

    /// Time of the next event within the run's duration.
    #[inline]
    pub fn next_time(&self) -> Option<SimTime> {
        self.cal.peek_time().filter(|&t| t <= self.end)
    }

    /// Events processed so far.
    pub fn events(&self) -> u64 {
        self.cal.delivered()
    }

    /// Ends the run: flushes the sink and returns the summary.
    pub fn end(&mut self, sink: &mut dyn SampleSink) -> Result<Summary, RunError> {
        sink.finish()?;
        let mut summary = self.summarize(self.scn.duration.0);
        if let Some(w) = self.wall {
            summary.wall_seconds = round6(w.elapsed().as_secs_f64());
        }
        Ok(summary)
    }

    /// Invariant violations found so far.
    pub fn take_violations(&mut self) -> Vec<String> {
        std::mem::take(&mut self.violations)
    }

    /// Arms every component's first timers and writes the time-series header.
    pub fn begin(&mut self, sink: &mut dyn SampleSink) -> Result<(), RunError> {
        self.wall = Some(Instant::now());
        let end = self.scn.duration.0;
        let names = columns();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        sink.columns(&names)?;
        if self.scn.app_pool.running_at_start {
            self.server.pool_life.start_warm(
                0,
                &mut Fx {
                    cal: &mut self.cal,
                    wrap: Ev::AppPool,
                },
            );
        } else {
            self.server.pool_life.start(
                0,
                &mut Fx {
                    cal: &mut self.cal,
                    wrap: Ev::AppPool,
                },
            );
        }
        self.drain_app_pool(0);
        self.server.cache.start(
            0,
            &mut Fx {
                cal: &mut self.cal,
                wrap: Ev::Cache,
            },
        );
        self.server.config.start(
            0,
            &mut Fx {
                cal: &mut self.cal,
                wrap: Ev::Config,
            },
        );
        self.server.afd.start(
            0,
            &mut Fx {
                cal: &mut self.cal,
                wrap: Ev::Afd,
            },
        );
        self.sources.start(&mut self.cal, Ev::Open, Ev::User);
        self.server.tp.start(
            0,
            &mut Fx {
                cal: &mut self.cal,
                wrap: Ev::Tp,
            },
        );
        if self.scn.warmup.0 > 0 {
            self.cal.schedule(self.scn.warmup.0, Ev::WarmupEnd);
        }
        if self.scn.tcp.incoming_keep_alive {
            let n = self.scn.tcp.incoming_keep_alive_connections;
            self.server.out.tcp.incoming_open_many(0, n.into());
        }
        if let Some(r) = &self.scn.gc.cache_reload {
            self.cal.schedule(r.at.0, Ev::CacheReload);
        }
        for (i, n) in self.scn.cpu.noise.iter().enumerate() {
            self.cal.schedule(n.at.0, Ev::Noise(i as u32));
        }
        for (i, (v, _)) in self.valves.iter_mut().enumerate() {
            let i = i as u16;
            v.start(
                0,
                &mut Fx {
                    cal: &mut self.cal,
                    wrap: move |_| Ev::Valve(i),
                },
            );
        }
        // The request timeout manager's timer starts with each worker process
        // (`ProcessReady`), the warm one at t = 0 included.
        self.cal
            .schedule(self.scn.sample_interval.0.min(end), Ev::Sample);
        Ok(())
    }

    /// Processes the next event (call only while [`Simulation::next_time`] is `Some`).
    pub fn step(&mut self, sink: &mut dyn SampleSink) -> Result<(), RunError> {
        let end = self.end;
        let (now, ev) = self.cal.pop().expect("an event is due");
        if let Some(e) = self.cal.stuck() {
            return Err(e);
        }
        {
            match ev {
                Ev::Open(src, timer) => {
                    let batch = self
                        .sources
                        .open_timer(now, src, timer, &mut self.cal, Ev::Open);
                    for _ in 0..batch.count {
                        let class = self.sources.class_of(src, &batch);
                        self.arrive(now, class, NO_USER, NO_ORIGIN);
                    }
                }
                Ev::User(timer) => {
                    let class = self.sources.user_timer(now, timer);
                    self.arrive(now, class, timer.0, NO_ORIGIN);
                }
                Ev::WaitDone(id) => self.wait_done(now, id),
                Ev::CpuDirect(job) => {
                    if let Processors::Dedicated { running, .. } = &mut self.server.cpu {
                        *running = running.saturating_sub(1);
                    }
                    self.cpu_done(now, job);
                }
                Ev::Cpu(timer) => {
                    if let Processors::Shared(cpu) = &mut self.server.cpu {
                        cpu.on_timer(
                            now,
                            timer,
                            &mut Fx {
                                cal: &mut self.cal,
                                wrap: Ev::Cpu,
                            },
                        );
                    }
                    self.drain_cpu(now);
                }
                Ev::Tp(timer) => {
                    if matches!(timer, TpTimer::Gate { .. }) {
                        self.update_gate_cpu(now);
                    }
                    let probe = self.probe();
                    self.server.tp.on_timer(
                        now,
                        timer,
                        probe,
                        &mut Fx {
                            cal: &mut self.cal,
                            wrap: Ev::Tp,
                        },
                    );
                    self.drain_tp(now);
                }
                Ev::Gc(timer) => {
                    let done = self.server.gc.on_timer(
                        now,
                        timer,
                        &mut Fx {
                            cal: &mut self.cal,
                            wrap: Ev::Gc,
                        },
                    );
                    if let Some(c) = done {
                        self.gc_finished(now, &c);
                    }
                }
                Ev::CacheReload => self.cache_reload(now),
                Ev::Noise(i) => self.noise(now, i as usize),
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
                Ev::Pool(b, timer) => {
                    self.server.out.pools[b as usize].on_timer(
                        now,
                        timer,
                        &mut Fx {
                            cal: &mut self.cal,
                            wrap: move |t| Ev::Pool(b, t),
                        },
                    );
                    self.drain_pool(now, b);
                }
                Ev::Backend(b, timer) => {
                    self.server.out.backends[b as usize].on_timer(
                        now,
                        timer,
                        &mut Fx {
                            cal: &mut self.cal,
                            wrap: move |t| Ev::Backend(b, t),
                        },
                    );
                    self.drain_backend(now, b);
                }
                Ev::Connected(b, conn) => {
                    self.server.out.pools[b as usize].connected(
                        now,
                        conn,
                        &mut Fx {
                            cal: &mut self.cal,
                            wrap: move |t| Ev::Pool(b, t),
                        },
                    );
                    self.drain_pool(now, b);
                }
                Ev::CallTimeouts(q) => self.call_timeouts(now, q as usize),
                Ev::Cache(timer) => {
                    self.server.cache.on_timer(
                        now,
                        timer,
                        &mut Fx {
                            cal: &mut self.cal,
                            wrap: Ev::Cache,
                        },
                    );
                }
                Ev::Afd(timer) => {
                    self.server.afd.on_timer(
                        now,
                        timer,
                        &mut Fx {
                            cal: &mut self.cal,
                            wrap: Ev::Afd,
                        },
                    );
                    self.drain_afd(now);
                }
                Ev::ProbeDeadline(n) => self.probe_deadline(now, n),
                Ev::Session(timer) => self.session_tick(now, timer),
                Ev::RequestTimeout(t) => self.timeout_tick(now, t),
                Ev::HttpSys(_) => self.expire_waiting(now),
                Ev::Nic(timer) => {
                    self.server.nic.on_timer(
                        now,
                        timer,
                        &mut Fx {
                            cal: &mut self.cal,
                            wrap: Ev::Nic,
                        },
                    );
                    self.drain_nic(now);
                }
                Ev::Config(timer) => {
                    self.server.config.on_timer(
                        now,
                        timer,
                        &mut Fx {
                            cal: &mut self.cal,
                            wrap: Ev::Config,
                        },
                    );
                    while let Some(id) = self.server.config.poll() {
                        if self.reqs.get(id).is_some() {
                            self.iis_admit(now, id);
                        }
                    }
                }
                Ev::Valve(i) => {
                    // TIME_WAIT expiries are processed lazily: bring them up to now first, or
                    // the valve would read the count as of the last port operation.
                    self.server.out.tcp.advance(now);
                    let value = self.valve_counter(&self.scn.valves[i as usize].counter);
                    self.valves[i as usize].0.sample(
                        now,
                        value,
                        &mut Fx {
                            cal: &mut self.cal,
                            wrap: move |_| Ev::Valve(i),
                        },
                    );
                }
                Ev::AppPool(timer) => {
                    self.server.pool_life.on_timer(
                        now,
                        timer,
                        &mut Fx {
                            cal: &mut self.cal,
                            wrap: Ev::AppPool,
                        },
                    );
                    self.drain_app_pool(now);
                }
            }
        }
        Ok(())
    }

    fn start_window(&mut self, now: SimTime) {
        self.window.reset(now);
        self.window_busy_start = self.busy_ns(now);
        self.in_system.reset_window(now);
        let s = &mut self.server;
        s.http.current_queue_size.reset_window(now);
        s.http.outstanding.reset_window(now);
        s.iis.active_requests.reset_window(now);
        s.aspnet.requests_current.reset_window(now);
        s.aspnet.requests_queued.reset_window(now);
        s.aspnet.requests_in_native_queue.reset_window(now);
        s.aspnet.requests_executing.reset_window(now);
        s.tp.thread_count.reset_window(now);
        s.tp.queue_length.reset_window(now);
        s.tp.processing_work.reset_window(now);
        s.tp.io_pollers.reset_window(now);
        s.tp.poller_queue_length.reset_window(now);
        if let Some(l) = s.sessions.as_mut() {
            l.waiting.reset_window(now);
        }
    }

    // ---- machine-level readings -------------------------------------------------

    fn busy_ns(&self, now: SimTime) -> u128 {
        match &self.server.cpu {
            Processors::Shared(cpu) => cpu.busy_ns(now),
            Processors::Dedicated { busy_ns, .. } => *busy_ns,
        }
    }

    fn update_gate_cpu(&mut self, now: SimTime) {
        let busy = self.busy_ns(now);
        let (t0, b0) = self.server.gate_snapshot;
        if now > t0 {
            let cap = self.scn.cpu.logical_processors as f64 * (now - t0) as f64;
            self.server.cpu_pct_gate = ((busy - b0) as f64 / cap * 100.0).clamp(0.0, 100.0);
        }
        self.server.gate_snapshot = (now, busy);
    }

    #[inline]
    fn probe(&self) -> Probe {
        Probe {
            cpu_utilization_pct: self.server.cpu_pct_gate,
            gc_in_progress: self.server.gc.in_progress(),
        }
    }

    // ---- requests through the native front end ----------------------------------

    /// A health probe of class `c` failed (an error, or no answer by its timeout): one
    /// more in a row; `failover_after` in a row fail the service over.
    fn probe_failed(&mut self, now: SimTime, c: usize) {
        let Some(p) = &self.scn.classes[c].probe else {
            return;
        };
        self.server.probe_timeouts += 1;
        self.server.probe_streak[c] += 1;
        if self.server.probe_streak[c] >= p.failover_after.max(1) {
            self.server.probe_streak[c] = 0;
            self.server.failovers += 1;
            let name = self.scn.classes[c].name.clone();
            self.server.events.push((
                now,
                "failover",
                format!("{name}: {} probe timeouts in a row", p.failover_after),
            ));
        }
    }

    /// Probe number `n` reached its timeout: if it is still unanswered, it failed now.
    fn probe_deadline(&mut self, now: SimTime, n: u64) {
        if let Some(k) = self.server.probes_open.iter().position(|&(m, _)| m == n) {
            let (_, id) = self.server.probes_open.swap_remove(k);
            // Open probes are live: only the request's end removes them (and it).
            if let Some(r) = self.reqs.get(id) {
                let class = r.class as usize;
                self.probe_failed(now, class);
            }
        }
    }

    #[inline]
    fn arrive(&mut self, now: SimTime, class: ClassId, user: u32, origin: u64) {
        let id = self.reqs.insert(Request {
            class,
            arrived: now,
            started: NOT_STARTED,
            resumed: NOT_STARTED,
            step: 0,
            user,
            thread: NO_THREAD,
            aux_thread: NO_THREAD,
            phase: Phase::Queued,
            retained: 0,
            in_aspnet: false,
            calls_pending: 0,
            calls_left: 0,
            call_failure: None,
            url: NO_URL,
            bytes: 0,
            generation: NO_GENERATION,
            abandoned: false,
            origin,
            session: NO_TICKET,
            abort: false,
            site_conn: false,
        });
        self.arrived += 1;
        self.window.arrived += 1;
        self.in_system.inc(now);
        if !self.scn.tcp.incoming_keep_alive {
            self.server.out.tcp.incoming_open(now);
        }
        if let Some(p) = &self.scn.classes[class as usize].probe {
            self.server.probes_sent += 1;
            let n = self.server.probes_sent;
            self.server.probes_open.push((n, id));
            self.cal
                .schedule(now.saturating_add(p.timeout.0), Ev::ProbeDeadline(n));
        }
        // Local clients cross AFD's loopback work items; remote ones the NIC's rings.
        let c = &self.scn.classes[class as usize];
        if c.origin == crate::scenario::Origin::Local {
            self.server.afd.submit(
                now,
                id as u64,
                c.loopback_fast_path,
                &mut Fx {
                    cal: &mut self.cal,
                    wrap: Ev::Afd,
                },
            );
            self.drain_afd(now);
            return;
        }
        if self.scn.nic.enabled {
            self.server.nic.receive(
                now,
                id as u64,
                &mut Fx {
                    cal: &mut self.cal,
                    wrap: Ev::Nic,
                },
            );
            self.drain_nic(now);
            return;
        }
        self.front_door(now, id);
    }

    /// The request reaches HTTP.SYS: its kernel cache, the application pool, the queue.
    fn front_door(&mut self, now: SimTime, id: RequestId) {
        // The site's connection limit comes first: HTTP.SYS answers 503 ConnLimit itself.
        if self.server.site.request(now).is_err() {
            let max = self.scn.http_sys.max_connections;
            self.limit_reached(now, "http_sys.max_connections", |_: &Self| {
                format!("the site had its {max} connections (maxConnections) in use: 503 ConnLimit")
            });
            self.finish(now, id, Outcome::ConnLimit503);
            return;
        }
        let r = self.reqs.get_mut(id).expect("live");
        r.site_conn = true;
        let class = r.class;
        // HTTP.SYS's kernel response cache answers before the request reaches the pool.
        if let Some((cat, mean)) = &self.server.urls[class as usize] {
            let url = cat.sample(&mut self.server.url_rng);
            let bytes = cat.size_of(url, *mean);
            let r = self.reqs.get_mut(id).expect("live");
            r.url = url;
            r.bytes = bytes;
            let cacheable = self.scn.classes[class as usize].cacheable;
            if self.server.cache.lookup(now, url, bytes, cacheable) == Lookup::Hit {
                self.server.http.cache_hits.inc();
                let d = self.scn.kernel_cache.hit_cpu.0;
                self.submit(now, tag(id, JOB_HIT), Priority::DPC, d);
                return;
            }
        }
        // The application pool: a running worker process takes it; otherwise it waits in
        // HTTP.SYS for one to start, or HTTP.SYS answers 503 AppOffline.
        let admit = self.server.pool_life.request_arrived(
            now,
            &mut Fx {
                cal: &mut self.cal,
                wrap: Ev::AppPool,
            },
        );
        match admit {
            Admit::Offline => {
                self.limit_reached(now, "app_pool.rapid_fail_protection", |s: &Self| {
                    format!(
                        "the pool was stopped by rapid-fail protection: {}",
                        s.refusal_words(Outcome::AppOffline503)
                    )
                });
                self.finish(now, id, self.refusal(Outcome::AppOffline503));
                return;
            }
            Admit::Take { generation } => {
                self.reqs.get_mut(id).expect("live").generation = generation
            }
            Admit::Wait => {}
        }
        match self.server.http.enqueue(now, id) {
            Err(_) => {
                match admit {
                    Admit::Take { generation } => {
                        self.reqs.get_mut(id).expect("live").generation = NO_GENERATION;
                        self.server.pool_life.request_finished(
                            now,
                            generation,
                            &mut Fx {
                                cal: &mut self.cal,
                                wrap: Ev::AppPool,
                            },
                        );
                    }
                    _ => self.server.pool_life.wait_cancelled(now),
                }
                let q = self.scn.http_sys.queue_length;
                self.limit_reached(now, "http_sys.queue_length", |s: &Self| {
                    format!(
                        "HTTP.SYS holds {q} requests of the pool: {}",
                        s.refusal_words(Outcome::QueueFull503)
                    )
                });
                self.finish(now, id, self.refusal(Outcome::QueueFull503))
            }
            Ok(()) => {
                let counted = self.server.http.counted();
                if counted > self.peak_counted {
                    self.peak_counted = counted;
                }
                if admit == Admit::Wait {
                    // No process to take it: it ages in the kernel queue.
                    self.server.http.arm_expiry(
                        self.scn.http_sys.connection_timeout.0,
                        &mut Fx {
                            cal: &mut self.cal,
                            wrap: Ev::HttpSys,
                        },
                    );
                }
                self.iis_dequeue(now);
            }
        }
        self.drain_app_pool(now);
    }

    /// `Timer_AppPool`: requests that waited `connectionTimeout` in HTTP.SYS for a worker
    /// process lose their connection; the timer comes back for the next oldest.
    fn expire_waiting(&mut self, now: SimTime) {
        self.server.http.on_timer();
        let timeout = self.scn.http_sys.connection_timeout;
        while let Some(id) = self.server.http.expire(now, timeout.0) {
            self.server.pool_life.wait_cancelled(now);
            self.limit_reached(
                now,
                "http_sys.connection_timeout",
                |_: &Self| format!(
                    "a request waited {timeout} in HTTP.SYS for a worker process: its connection expired (Timer_AppPool)"
                ),
            );
            self.finish(now, id, Outcome::TimerAppPool);
        }
        if self.server.pool_life.waiting_requests() > 0 {
            self.server.http.arm_expiry(
                timeout.0,
                &mut Fx {
                    cal: &mut self.cal,
                    wrap: Ev::HttpSys,
                },
            );
        }
    }

    /// Carries out what AFD asked for: worker CPU at priority 12, delivered hops.
    fn drain_afd(&mut self, now: SimTime) {
        while let Some(ev) = self.server.afd.poll() {
            match ev {
                AfdEvent::Run { worker, cpu_ns, .. } => self.submit(
                    now,
                    tag(worker, JOB_AFD),
                    Priority::KERNEL_DELAYED_WORKER,
                    cpu_ns,
                ),
                AfdEvent::Delivered { token } if token & CALL_TOKEN != 0 => {
                    let call = token & !CALL_TOKEN;
                    if let Some((_, c)) = self.live_call(call) {
                        self.send_to_backend(now, c.backend, call);
                    }
                }
                AfdEvent::Delivered { token } => {
                    if self.reqs.get(token as u32).is_some() {
                        self.front_door(now, token as u32);
                    }
                }
            }
        }
    }

    /// Carries out what the NIC asked for: DPC CPU, delivered requests.
    fn drain_nic(&mut self, now: SimTime) {
        while let Some(ev) = self.server.nic.poll() {
            match ev {
                NicEvent::Dpc { queue, cpu_ns } => {
                    self.submit(now, tag(queue, JOB_DPC), Priority::DPC, cpu_ns)
                }
                NicEvent::Delivered { token } => {
                    if self.reqs.get(token as u32).is_some() {
                        self.front_door(now, token as u32);
                    }
                }
            }
        }
    }

    /// Carries out what the application pool's lifecycle asked for.
    fn drain_app_pool(&mut self, now: SimTime) {
        while let Some(ev) = self.server.pool_life.poll() {
            match ev {
                AppPoolEvent::ProcessStarting { generation } => {
                    // The warm process the run begins with is the initial state, not an event.
                    if !(now == 0 && self.scn.app_pool.running_at_start) {
                        self.server.events.push((
                            now,
                            "process_start",
                            format!("worker process {generation} starting"),
                        ));
                    }
                    let d = self.scn.app_pool.cold_start_cpu.0;
                    if d > 0 && now > 0 {
                        let job = tag(self.server.next_aux_job, JOB_COLD_START);
                        self.server.next_aux_job = self.server.next_aux_job.wrapping_add(1);
                        self.submit(now, job, Priority::NORMAL, d);
                    }
                }
                AppPoolEvent::ProcessReady { .. } => {
                    // Its HttpRuntime creates the request timeout manager's timer.
                    self.server.timeouts.restart(
                        now,
                        &mut Fx {
                            cal: &mut self.cal,
                            wrap: Ev::RequestTimeout,
                        },
                    );
                    self.iis_dequeue(now);
                }
                AppPoolEvent::ProcessExiting { generation, reason } => {
                    self.server.events.push((
                        now,
                        "process_exit",
                        format!("worker process {generation} exits: {reason:?}"),
                    ));
                    if self.scn.kernel_cache.flush_kernel_cache_on_recycle {
                        self.server.cache.flush(now, reason.flush_reason());
                    }
                    // IIS's file cache lives in the exiting process's memory.
                    if let Some(f) = self.server.files.as_mut() {
                        f.cache.flush(now);
                    }
                    if reason.abandons_requests() {
                        let mut dropped = 0;
                        for (_, r) in self.reqs.iter_mut() {
                            if r.generation == generation {
                                r.abandoned = true;
                                // The client's connection is gone now, not when the
                                // request would have ended.
                                if r.site_conn {
                                    r.site_conn = false;
                                    dropped += 1;
                                }
                            }
                        }
                        for _ in 0..dropped {
                            self.server.site.response(now);
                        }
                    }
                }
                AppPoolEvent::Offline => {
                    self.server.events.push((
                        now,
                        "app_pool_offline",
                        "rapid-fail protection stopped the pool".into(),
                    ));
                    // Requests waiting in HTTP.SYS for a process get 503 AppOffline.
                    while let Some(id) = self.server.http.dequeue(now) {
                        self.server.http.finished(now);
                        self.server.pool_life.offline.inc();
                        self.finish(now, id, self.refusal(Outcome::AppOffline503));
                    }
                }
            }
        }
    }

    /// The worker process takes every request HTTP.SYS holds (IIS dequeues at once), if a
    /// process is running.
    fn iis_dequeue(&mut self, now: SimTime) {
        let Some(generation) = self.server.pool_life.current_generation() else {
            return;
        };
        if !matches!(
            self.server.pool_life.state(),
            PoolState::Running | PoolState::Recycling
        ) {
            return;
        }
        loop {
            let next = if self.faults.lifo_queue {
                self.server.http.dequeue_newest_for_fault_injection(now)
            } else {
                self.server.http.dequeue(now)
            };
            let Some(id) = next else { break };
            let r = self.reqs.get_mut(id).expect("live");
            if r.generation == NO_GENERATION {
                r.generation = generation;
            }
            // IIS reads the URL's configuration under the config cache's lock: a
            // file-change notification walking the NAS holds it as writer.
            if !self.server.config.read(now, id) {
                continue;
            }
            self.iis_admit(now, id);
        }
    }

    /// IIS and ASP.NET admit a request the worker process took from HTTP.SYS.
    fn iis_admit(&mut self, now: SimTime, id: RequestId) {
        {
            if self.server.iis.enter(now).is_err() {
                self.server.http.finished(now);
                let l = self.scn.iis.app_concurrent_request_limit;
                self.limit_reached(now, "iis.app_concurrent_request_limit", |_: &Self| {
                    format!("{l} requests in IIS: 503.2")
                });
                self.finish(now, id, Outcome::ConcurrentRequestLimit503_2);
                return;
            }
            let cpu_pct = self.server.cpu_pct_sample;
            match self.server.aspnet.arrive(now, id, cpu_pct) {
                Admission::ServerTooBusy => {
                    self.server.iis.leave(now);
                    self.server.http.finished(now);
                    let l = self.scn.aspnet.request_queue_limit;
                    self.limit_reached(now, "aspnet.request_queue_limit", |_: &Self| {
                        format!("{l} requests in ASP.NET: 503 Server Too Busy")
                    });
                    self.finish(now, id, Outcome::ServerTooBusy503);
                }
                Admission::NativeQueue => {
                    self.reqs.get_mut(id).expect("live").in_aspnet = true;
                    let cap = self.server.aspnet.concurrency_limit();
                    self.limit_reached(
                        now,
                        "aspnet.max_concurrent_requests_per_cpu",
                        |_: &Self| format!(
                            "{cap} requests active in ASP.NET: the rest wait in the native queue"
                        ),
                    );
                }
                Admission::ToThreadPool => {
                    self.reqs.get_mut(id).expect("live").in_aspnet = true;
                    self.post(now, tag(id, WI_RUN));
                }
            }
        }
    }

    #[inline]
    fn post(&mut self, now: SimTime, item: WorkItem) {
        if self.server.suspended {
            // Native code may queue work, but no worker thread can take it during a
            // blocking GC: it waits (ASP.NET "Requests Queued").
            self.server.deferred.push(Deferred::Post(item));
            return;
        }
        let probe = self.probe();
        self.server.tp.enqueue(
            now,
            item,
            probe,
            &mut Fx {
                cal: &mut self.cal,
                wrap: Ev::Tp,
            },
        );
        self.drain_tp(now);
    }

    /// Starts what the thread pool dispatched.
    fn drain_tp(&mut self, now: SimTime) {
        // A work item that ends at once gives its thread back, which may dispatch the next
        // one: the outermost call takes it, rather than a recursion as deep as the queue
        // (thousands of stale session-poll callbacks overflowed the stack).
        if self.server.draining_tp {
            return;
        }
        self.server.draining_tp = true;
        while let Some(ev) = self.server.tp.poll() {
            match ev {
                TpEvent::Run { thread, item } => self.on_run(now, thread, item),
                TpEvent::RunIo { thread, item } => {
                    let (id, _) = untag(item);
                    let r = self.reqs.get_mut(id).expect("live request");
                    r.aux_thread = thread;
                    r.phase = Phase::IoCallback;
                    let d = self.scn.thread_pool.io_completion_cpu.0;
                    self.submit_managed(now, tag(id, JOB_IO), d);
                }
            }
        }
        self.server.draining_tp = false;
    }

    fn on_run(&mut self, now: SimTime, thread: ThreadId, item: WorkItem) {
        let (id, kind) = untag(item);
        match kind {
            WI_RUN => {
                let first = {
                    let r = self.reqs.get_mut(id).expect("live request");
                    r.thread = thread;
                    r.resumed = now;
                    let first = r.started == NOT_STARTED;
                    if first {
                        r.started = now;
                    }
                    first
                };
                if first {
                    self.server.aspnet.started(now);
                    if self.server.sessions.is_some()
                        && self.uses_session(id)
                        && !self.acquire_session(now, id, thread)
                    {
                        return;
                    }
                }
                self.run_steps(now, id);
            }
            WI_POLL => self.session_poll_runs(now, thread, item),
            WI_TIMEOUT => {
                if self.server.timeouts.begin_scan() {
                    let d = self.scn.thread_pool.continuation_cpu.0;
                    self.server.timeout_job = Some(tag(thread, JOB_TIMEOUT));
                    self.submit_managed(now, tag(thread, JOB_TIMEOUT), d);
                } else {
                    // Another callback is scanning (`_inProgressLock`): return at once.
                    self.item_done(now, thread);
                }
            }
            WI_SIGNAL => {
                let r = self.reqs.get_mut(id).expect("live request");
                r.aux_thread = thread;
                r.phase = Phase::Signalling;
                let d = self.scn.thread_pool.continuation_cpu.0;
                self.submit_managed(now, tag(id, JOB_SIGNAL), d);
            }
            _ => unreachable!("unknown work item kind {kind}"),
        }
    }

    // ---- handler steps ------------------------------------------------------------

    /// Runs the request's steps from its current one until one takes time.
    fn run_steps(&mut self, now: SimTime, id: RequestId) {
        loop {
            let r = *self.reqs.get(id).expect("live request");
            if r.phase == Phase::Aborted {
                // Aborted while its ended wait waited for a blocking GC to end.
                self.bury(id);
                return;
            }
            if r.abort {
                // The ThreadAbortException reaches the thread as its CPU work ends.
                self.item_done(now, r.thread);
                self.leave_front_end(now, id);
                if !r.abandoned {
                    self.server.timeouts.timed_out(now);
                }
                self.finish(now, id, Outcome::RequestTimedOut500);
                return;
            }
            let c = r.class as usize;
            if let Some(o) = r.call_failure {
                if self.scn.classes[c].on_call_failure == crate::scenario::OnCallFailure::Fail {
                    // The handler sees the call's exception and the request ends with it.
                    self.item_done(now, r.thread);
                    self.leave_front_end(now, id);
                    self.finish(now, id, o);
                    return;
                }
            }
            let drawn = self.handlers[c].draw(r.step as usize, &mut self.class_rngs[c]);
            match drawn {
                None => {
                    self.item_done(now, r.thread);
                    self.complete(now, id);
                    return;
                }
                Some(Drawn::Alloc { bytes, retained }) => {
                    let rr = self.reqs.get_mut(id).expect("live");
                    rr.retained += retained;
                    rr.step += 1;
                    if let Some(col) = self.server.gc.allocate(now, bytes, retained) {
                        self.gc_start(now, col);
                    }
                }
                Some(Drawn::Cpu(d)) => {
                    self.reqs.get_mut(id).expect("live").phase = Phase::Cpu;
                    self.submit_managed(now, tag(id, JOB_STEP), d);
                    return;
                }
                Some(Drawn::Wait(d)) => {
                    self.begin_wait(now, id);
                    self.cal.schedule(now.saturating_add(d), Ev::WaitDone(id));
                    return;
                }
                Some(Drawn::Call {
                    backend,
                    timeout_ns,
                    fanout,
                    parallel,
                }) => {
                    if fanout == 0 || self.server.out.pools.is_empty() {
                        self.reqs.get_mut(id).expect("live").step += 1;
                        continue;
                    }
                    if let Some(v) = self.valves.iter_mut().find(|(v, _)| v.is_closed()) {
                        // A closed valve: the page is served without its outgoing calls.
                        v.1 += 1;
                        self.reqs.get_mut(id).expect("live").step += 1;
                        continue;
                    }
                    self.begin_wait(now, id);
                    let started = if parallel { fanout } else { 1 };
                    let rr = self.reqs.get_mut(id).expect("live");
                    rr.calls_pending = started as u16;
                    rr.calls_left = (fanout - started) as u16;
                    for _ in 0..started {
                        self.start_call(now, id, backend, timeout_ns);
                    }
                    return;
                }
                Some(Drawn::File {
                    backend,
                    timeout_ns,
                }) => {
                    let files = self.server.files.as_mut().expect("a class has a file step");
                    match files.cache.lookup(now, r.url) {
                        FileLookup::Hit => {
                            self.reqs.get_mut(id).expect("live").step += 1;
                            continue;
                        }
                        FileLookup::Check => {
                            // GetFileAttributesEx against the share, then the cached copy.
                            let d = files.round_trip.sample_ns(&mut self.class_rngs[c]);
                            self.begin_wait(now, id);
                            self.cal.schedule(now.saturating_add(d), Ev::WaitDone(id));
                            return;
                        }
                        FileLookup::Miss => {
                            // The read; `request_call_ended` caches the file.
                            self.begin_wait(now, id);
                            let rr = self.reqs.get_mut(id).expect("live");
                            rr.calls_pending = 1;
                            rr.calls_left = 0;
                            self.start_call(now, id, backend, timeout_ns);
                            return;
                        }
                    }
                }
            }
        }
    }

    // ---- session state ------------------------------------------------------------

    /// Whether the request takes part in session state: its class uses the session and it
    /// carries a session cookie (a health probe, the balancer's or a class's, sends none:
    /// its request creates a new session and never waits for a lock).
    fn uses_session(&self, id: RequestId) -> bool {
        let r = self.reqs.get(id).expect("live request");
        let class = &self.scn.classes[r.class as usize];
        let balancer_probe = r.origin != NO_ORIGIN && r.origin & crate::farm::PROBE != 0;
        class.enable_session_state != EnableSessionState::False
            && class.probe.is_none()
            && !balancer_probe
            && self.server.sessions.is_some()
    }

    /// `AcquireRequestState` on `thread`, the request's first: whether it goes on now.
    /// A request that finds its session locked gives the thread back and polls; one past
    /// `RequestQueueLimitPerSession` fails.
    fn acquire_session(&mut self, now: SimTime, id: RequestId, thread: ThreadId) -> bool {
        let r = *self.reqs.get(id).expect("live request");
        let access = match self.scn.classes[r.class as usize].enable_session_state {
            EnableSessionState::ReadOnly => Access::ReadOnly,
            _ => Access::Exclusive,
        };
        let n = self.scn.session_state.sessions.max(1);
        let session = if r.user != NO_USER {
            r.user as u64 % n
        } else {
            use rand::RngExt;
            self.server.session_rng.random_range(0..n)
        };
        let generation = if r.generation == NO_GENERATION {
            0
        } else {
            r.generation
        };
        let locks = self.server.sessions.as_mut().expect("session state is on");
        let (ticket, answer) = locks.acquire(
            now,
            (generation, session),
            access,
            id,
            &mut Fx {
                cal: &mut self.cal,
                wrap: Ev::Session,
            },
        );
        self.reqs.get_mut(id).expect("live").session = ticket;
        match answer {
            Acquire::Granted => true,
            Acquire::Wait => {
                let rr = self.reqs.get_mut(id).expect("live");
                rr.phase = Phase::SessionWait;
                rr.thread = NO_THREAD;
                self.item_done(now, thread);
                false
            }
            Acquire::QueueLimit => {
                let limit = self.scn.session_state.request_queue_limit_per_session;
                self.limit_reached(
                    now,
                    "session_state.request_queue_limit_per_session",
                    |_: &Self| format!(
                        "{limit} requests already polled session {session}: the next failed with HTTP 500"
                    ),
                );
                self.item_done(now, thread);
                self.leave_front_end(now, id);
                self.finish(now, id, Outcome::SessionQueueLimit500);
                false
            }
        }
    }

    /// A polling request's timer ticked: its callback goes to the thread pool's queue.
    fn session_tick(&mut self, now: SimTime, timer: PollTimer) {
        let Some(locks) = self.server.sessions.as_mut() else {
            return;
        };
        let Some(id) = locks.on_timer(
            now,
            timer,
            &mut Fx {
                cal: &mut self.cal,
                wrap: Ev::Session,
            },
        ) else {
            return;
        };
        self.post(now, tag(id, WI_POLL) | ((timer.0 & POLL_TICKET_MASK) << 36));
    }

    /// A poll callback got a worker thread. It returns at once if its request no longer
    /// waits, another of its callbacks is running, or the last poll was too recent;
    /// otherwise it costs `continuation_cpu` and then tries the lock.
    fn session_poll_runs(&mut self, now: SimTime, thread: ThreadId, item: WorkItem) {
        let (id, _) = untag(item);
        let low = item >> 36;
        let due = self.reqs.get(id).is_some_and(|r| {
            r.phase == Phase::SessionWait
                && r.session != NO_TICKET
                && (r.session & POLL_TICKET_MASK) == low
                && self
                    .server
                    .sessions
                    .as_ref()
                    .is_some_and(|l| l.poll_due(now, r.session))
        });
        if !due {
            self.item_done(now, thread);
            return;
        }
        let r = self.reqs.get_mut(id).expect("live");
        r.phase = Phase::SessionPoll;
        r.thread = thread;
        let d = self.scn.thread_pool.continuation_cpu.0;
        self.submit_managed(now, tag(id, JOB_POLL), d);
    }

    /// The poll callback tried the session's lock.
    fn session_polled(&mut self, now: SimTime, id: RequestId) {
        let r = *self.reqs.get(id).expect("live request");
        let locks = self.server.sessions.as_mut().expect("session state is on");
        match locks.poll(now, r.session) {
            Poll::Granted => {
                // The async AcquireRequestState completed: executionTimeout counts anew.
                self.reqs.get_mut(id).expect("live").resumed = now;
                self.run_steps(now, id)
            }
            Poll::Locked => {
                let rr = self.reqs.get_mut(id).expect("live");
                rr.phase = Phase::SessionWait;
                rr.thread = NO_THREAD;
                self.item_done(now, r.thread);
            }
        }
    }

    // ---- executionTimeout ---------------------------------------------------------

    /// Whether the request timeout manager would abort request `r` at `now`: it runs
    /// synchronously on its thread (a sync or sync-over-async handler, in a step) past its
    /// timeout, and no abort is on its way to it already.
    fn overdue(&self, now: SimTime, r: &Request) -> bool {
        matches!(
            r.phase,
            Phase::Cpu | Phase::Waiting | Phase::IoCallback | Phase::Signalling
        ) && !r.abort
            // Its process crashed: the manager died with it (the client already lost it).
            && !r.abandoned
            && r.thread != NO_THREAD
            && self.handlers[r.class as usize].kind != MHandlerKind::Async
            && self.server.timeouts.must_timeout(now, r.resumed)
    }

    /// The manager's timer ticked. Its callback goes to the thread pool's queue when a
    /// request is past its timeout (a callback that would find none is left out: it
    /// would only cost a dispatch every 15 s).
    fn timeout_tick(&mut self, now: SimTime, t: TimeoutTimer) {
        if !self.server.timeouts.on_timer(
            now,
            t,
            &mut Fx {
                cal: &mut self.cal,
                wrap: Ev::RequestTimeout,
            },
        ) {
            return;
        }
        // The callback waits in the pool's queue and scans when it runs: it is queued if a
        // request will be past its timeout by the next tick (one that could find nothing
        // before then is left out: it would only cost a dispatch every 15 s).
        let horizon = now.saturating_add(w3sim_models::request_timeout::TIMER_PERIOD_NS);
        if self.reqs.iter().any(|(_, r)| self.overdue(horizon, r)) {
            self.server.timeouts.callback_queued();
            self.post(now, tag(0, WI_TIMEOUT));
        }
    }

    /// `CancelTimedOutRequests` ran on `thread`: every request past its timeout gets a
    /// `ThreadAbortException` — at once if it is blocked (a wait, outgoing calls), when its
    /// CPU work ends otherwise.
    fn cancel_timed_out_requests(&mut self, now: SimTime, thread: ThreadId) {
        let mut overdue = std::mem::take(&mut self.server.overdue);
        overdue.clear();
        overdue.extend(
            self.reqs
                .iter()
                .filter(|(_, r)| self.overdue(now, r))
                .map(|(id, _)| id),
        );
        if !overdue.is_empty() {
            let timeout = self.scn.aspnet.execution_timeout;
            self.limit_reached(
                now,
                "aspnet.execution_timeout",
                |_: &Self| format!(
                    "a request ran synchronously for more than {timeout}: its thread was aborted (HTTP 500 Request timed out)"
                ),
            );
        }
        for &id in &overdue {
            // Aborting one gives its thread back, and the work that thread then runs may
            // end or move another on the list: look again.
            let Some(r) = self.reqs.get(id) else {
                continue;
            };
            if !self.overdue(now, r) {
                continue;
            }
            if r.phase == Phase::Waiting {
                self.abort_blocked(now, id);
            } else {
                self.reqs.get_mut(id).expect("live").abort = true;
            }
        }
        self.server.overdue = overdue;
        self.server.timeouts.end_scan();
        self.item_done(now, thread);
    }

    /// Aborts a request whose thread is blocked in a wait or in outgoing calls: the thread
    /// goes back to the pool, the client gets its 500 now, and the request stays as
    /// [`Phase::Aborted`] until what it waited for ends (its calls run on; their answers
    /// are dropped).
    fn abort_blocked(&mut self, now: SimTime, id: RequestId) {
        let r = *self.reqs.get(id).expect("live");
        if self.handlers[r.class as usize].kind == MHandlerKind::SyncOverAsync {
            self.server.tp.end_blocking(
                now,
                r.thread,
                &mut Fx {
                    cal: &mut self.cal,
                    wrap: Ev::Tp,
                },
            );
            self.drain_tp(now);
        }
        self.item_done(now, r.thread);
        self.leave_front_end(now, id);
        self.server.timeouts.timed_out(now);
        self.account(now, id, r, Outcome::RequestTimedOut500);
        let z = self.reqs.get_mut(id).expect("live");
        z.phase = Phase::Aborted;
        z.thread = NO_THREAD;
        z.in_aspnet = false;
        z.session = NO_TICKET;
        z.retained = 0;
        z.generation = NO_GENERATION;
        z.origin = NO_ORIGIN;
        z.user = NO_USER;
        z.calls_left = 0;
        self.server.zombies += 1;
    }

    /// An aborted request's wait or last call ended: its slot is freed.
    fn bury(&mut self, id: RequestId) {
        self.reqs.remove(id).expect("live");
        self.server.zombies -= 1;
    }

    /// The request starts waiting (a `wait` step or outgoing calls): a sync handler keeps
    /// its thread, an async one gives it back, a sync-over-async one blocks it.
    fn begin_wait(&mut self, now: SimTime, id: RequestId) {
        let rr = self.reqs.get_mut(id).expect("live");
        let kind = self.handlers[rr.class as usize].kind;
        rr.phase = Phase::Waiting;
        let thread = rr.thread;
        match kind {
            MHandlerKind::Sync => {}
            MHandlerKind::Async => {
                rr.thread = NO_THREAD;
                self.item_done(now, thread);
            }
            MHandlerKind::SyncOverAsync => {
                self.server.tp.begin_blocking(
                    now,
                    thread,
                    &mut Fx {
                        cal: &mut self.cal,
                        wrap: Ev::Tp,
                    },
                );
                self.drain_tp(now);
            }
        }
    }

    /// A worker thread finished its work item.
    #[inline]
    fn item_done(&mut self, now: SimTime, thread: ThreadId) {
        let probe = self.probe();
        self.server.tp.item_done(
            now,
            thread,
            probe,
            &mut Fx {
                cal: &mut self.cal,
                wrap: Ev::Tp,
            },
        );
        self.drain_tp(now);
    }

    fn wait_done(&mut self, now: SimTime, id: RequestId) {
        let r = self.reqs.get_mut(id).expect("live request");
        if r.phase == Phase::Aborted {
            self.bury(id);
            return;
        }
        let kind = self.handlers[r.class as usize].kind;
        match kind {
            MHandlerKind::Sync => {
                r.step += 1;
                if self.server.suspended {
                    // The thread returns from native code into a suspended runtime.
                    self.server.deferred.push(Deferred::Resume(id));
                } else {
                    self.run_steps(now, id);
                }
            }
            MHandlerKind::Async | MHandlerKind::SyncOverAsync => {
                r.phase = Phase::IoCallback;
                let probe = self.probe();
                self.server.tp.io_enqueue(
                    now,
                    tag(id, WI_IO),
                    probe,
                    &mut Fx {
                        cal: &mut self.cal,
                        wrap: Ev::Tp,
                    },
                );
                self.drain_tp(now);
            }
        }
    }

    /// Submits managed CPU work (held back while a blocking GC suspends managed code).
    fn submit_managed(&mut self, now: SimTime, job: JobId, demand: u64) {
        if self.server.suspended {
            self.server.deferred.push(Deferred::Cpu(job, demand));
            return;
        }
        self.submit(now, job, Priority::NORMAL, demand);
    }

    fn submit(&mut self, now: SimTime, job: JobId, prio: Priority, demand: u64) {
        match &mut self.server.cpu {
            Processors::Shared(cpu) => {
                cpu.submit(
                    now,
                    job,
                    prio,
                    demand,
                    &mut Fx {
                        cal: &mut self.cal,
                        wrap: Ev::Cpu,
                    },
                );
                self.drain_cpu(now);
            }
            Processors::Dedicated { busy_ns, running } => {
                *busy_ns += demand as u128;
                *running += 1;
                self.cal
                    .schedule(now.saturating_add(demand), Ev::CpuDirect(job));
            }
        }
    }

    fn drain_cpu(&mut self, now: SimTime) {
        loop {
            let job = match &mut self.server.cpu {
                Processors::Shared(cpu) => cpu.poll_completed(),
                Processors::Dedicated { .. } => None,
            };
            let Some(job) = job else { break };
            self.cpu_done(now, job);
        }
    }

    fn cpu_done(&mut self, now: SimTime, job: JobId) {
        let (id, kind) = untag(job);
        match kind {
            JOB_STEP => {
                let r = self.reqs.get_mut(id).expect("live request");
                r.step += 1;
                self.run_steps(now, id);
            }
            JOB_IO => {
                // The IO-completion thread ran the completion; it posts the continuation.
                let r = self.reqs.get_mut(id).expect("live request");
                let io_thread = r.aux_thread;
                r.aux_thread = NO_THREAD;
                let kind = self.handlers[r.class as usize].kind;
                let probe = self.probe();
                self.server.tp.io_item_done(
                    now,
                    io_thread,
                    probe,
                    &mut Fx {
                        cal: &mut self.cal,
                        wrap: Ev::Tp,
                    },
                );
                self.drain_tp(now);
                let r = self.reqs.get_mut(id).expect("live request");
                if kind == MHandlerKind::Async {
                    r.phase = Phase::Continuation;
                    r.step += 1;
                    self.post(now, tag(id, WI_RUN));
                } else {
                    self.post(now, tag(id, WI_SIGNAL));
                }
            }
            JOB_SIGNAL => {
                // The continuation ran on another worker thread: the blocked one goes on.
                let r = self.reqs.get_mut(id).expect("live request");
                let helper = r.aux_thread;
                let blocked = r.thread;
                r.aux_thread = NO_THREAD;
                r.step += 1;
                self.item_done(now, helper);
                self.server.tp.end_blocking(
                    now,
                    blocked,
                    &mut Fx {
                        cal: &mut self.cal,
                        wrap: Ev::Tp,
                    },
                );
                self.drain_tp(now);
                self.run_steps(now, id);
            }
            JOB_HIT => self.finish(now, id, Outcome::Ok),
            JOB_POLL => self.session_polled(now, id),
            JOB_TIMEOUT => {
                self.server.timeout_job = None;
                self.cancel_timed_out_requests(now, id)
            }
            JOB_AFD => {
                self.server.afd.cpu_done(
                    now,
                    id,
                    &mut Fx {
                        cal: &mut self.cal,
                        wrap: Ev::Afd,
                    },
                );
                self.drain_afd(now);
            }
            JOB_DPC => {
                self.server.nic.dpc_done(now, id);
                self.drain_nic(now);
            }
            JOB_GC | JOB_NOISE | JOB_COLD_START => {}
            _ => unreachable!("unknown CPU job kind {kind}"),
        }
    }

    /// A successful request leaves ASP.NET, IIS and HTTP.SYS.
    fn complete(&mut self, now: SimTime, id: RequestId) {
        if let Some(r) = self.reqs.get(id) {
            if r.url != NO_URL {
                // The response passes HTTP.SYS, which may now cache it.
                let cacheable = self.scn.classes[r.class as usize].cacheable;
                self.server.cache.response(now, r.url, r.bytes, cacheable);
            }
        }
        self.leave_front_end(now, id);
        self.finish(now, id, Outcome::Ok);
    }

    fn leave_front_end(&mut self, now: SimTime, id: RequestId) {
        let in_aspnet = self.reqs.get(id).is_some_and(|r| r.in_aspnet);
        if in_aspnet {
            self.server.aspnet.finished(now);
            self.server.iis.leave(now);
            self.server.http.finished(now);
            // The native queue may release requests now.
            let cpu_pct = self.server.cpu_pct_sample;
            while let Some(next) = self.server.aspnet.release(now, cpu_pct) {
                self.post(now, tag(next, WI_RUN));
            }
        }
    }

    /// How HTTP.SYS refuses a request it cannot give the pool: the 503 itself, or with
    /// `loadBalancerCapabilities = TcpLevel` a closed connection.
    fn refusal(&self, outcome: Outcome) -> Outcome {
        match (self.scn.app_pool.load_balancer_capabilities, outcome) {
            (LoadBalancerCapabilities::TcpLevel, Outcome::QueueFull503) => Outcome::QueueFullReset,
            (LoadBalancerCapabilities::TcpLevel, Outcome::AppOffline503) => {
                Outcome::AppOfflineReset
            }
            (_, o) => o,
        }
    }

    /// What the client gets for a refusal, in words.
    fn refusal_words(&self, outcome: Outcome) -> &'static str {
        match self.refusal(outcome) {
            Outcome::QueueFullReset => {
                "connection closed (QueueFull, loadBalancerCapabilities TcpLevel)"
            }
            Outcome::AppOfflineReset => {
                "connection closed (AppOffline, loadBalancerCapabilities TcpLevel)"
            }
            Outcome::AppOffline503 => "503 AppOffline",
            _ => "503 QueueFull",
        }
    }

    /// A request leaves the system with `outcome`.
    #[inline]
    fn finish(&mut self, now: SimTime, id: RequestId, outcome: Outcome) {
        let r = self.reqs.remove(id).expect("live request");
        self.account(now, id, r, outcome);
    }

    /// Everything a request's end changes but its slot: its session, its process, its
    /// connection, its memory, a probe's answer, the statistics, the farm and its user.
    #[inline]
    fn account(&mut self, now: SimTime, id: RequestId, r: Request, outcome: Outcome) {
        if r.site_conn {
            self.server.site.response(now);
        }
        if r.session != NO_TICKET {
            if let Some(l) = self.server.sessions.as_mut() {
                l.release(now, r.session);
            }
        }
        let outcome = if r.abandoned && matches!(outcome, Outcome::Ok | Outcome::RequestTimedOut500)
        {
            self.server.abandoned += 1;
            Outcome::ConnectionAbandoned
        } else {
            outcome
        };
        if r.generation != NO_GENERATION {
            self.server.pool_life.request_finished(
                now,
                r.generation,
                &mut Fx {
                    cal: &mut self.cal,
                    wrap: Ev::AppPool,
                },
            );
            // A drained process of an overlapped recycle may exit now.
            self.drain_app_pool(now);
        }
        let t = &self.scn.tcp;
        if !t.incoming_keep_alive {
            self.server
                .out
                .tcp
                .incoming_close(now, t.incoming_server_closes);
        } else if t.incoming_requests_per_connection > 0 {
            // Every n-th response one kept-alive connection closes and its client reconnects.
            self.server.keep_alive_responses += 1;
            if self.server.keep_alive_responses >= t.incoming_requests_per_connection {
                self.server.keep_alive_responses = 0;
                let tcp = &mut self.server.out.tcp;
                tcp.incoming_open(now);
                tcp.incoming_close(now, t.incoming_server_closes);
            }
        }
        if r.retained > 0 {
            self.server.gc.release(now, r.retained);
        }
        if self.scn.classes[r.class as usize].probe.is_some() {
            // Answered before its deadline (else the deadline already counted it).
            if let Some(k) = self.server.probes_open.iter().position(|&(_, q)| q == id) {
                self.server.probes_open.swap_remove(k);
                if outcome == Outcome::Ok {
                    self.server.probe_streak[r.class as usize] = 0;
                } else {
                    self.probe_failed(now, r.class as usize);
                }
            }
        }
        self.outcomes.add(outcome);
        self.interval.outcomes.add(outcome);
        self.in_system.dec(now);
        let sojourn = now - r.arrived;
        if r.arrived >= self.window.start {
            self.window.outcomes.add(outcome);
            self.window.sojourn_sum_ns += sojourn as u128;
            self.window.departures += 1;
            if outcome == Outcome::Ok {
                let started = if r.started == NOT_STARTED {
                    now
                } else {
                    r.started
                };
                self.window.queue_wait.record(started - r.arrived);
                self.window.latency_all.record(sojourn);
                // With one class its histogram is `latency_all`: record once.
                if self.handlers.len() > 1 {
                    self.window.latency_by_class[r.class as usize].record(sojourn);
                }
            }
        }
        if outcome == Outcome::Ok {
            self.interval.latency.record(sojourn);
        }
        if r.origin != NO_ORIGIN {
            self.completed.push(Ended {
                origin: r.origin,
                outcome,
                arrived: r.arrived,
            });
        }
        // A farm's users are the farm's (it hears through `completed`), not this server's.
        if r.user != NO_USER && r.origin == NO_ORIGIN {
            self.sources.user_done(now, r.user, &mut self.cal, Ev::User);
        }
    }

    // ---- GC, cache reload, noise -------------------------------------------------

    fn gc_start(&mut self, now: SimTime, c: Collection) {
        self.server.gc.begin(
            now,
            &c,
            &mut Fx {
                cal: &mut self.cal,
                wrap: Ev::Gc,
            },
        );
        // Server GC threads run at THREAD_PRIORITY_HIGHEST for blocking work; background
        // GC threads and the workstation GC (on the allocating thread) at normal priority.
        let prio = if self.scn.gc.gc_server && c.blocking {
            Priority::HIGHEST
        } else {
            Priority::NORMAL
        };
        if c.blocking {
            self.suspend_managed(now);
        }
        // The GC threads' processor time.
        let threads = c.gc_threads.max(1);
        let until = now.saturating_add(c.duration_ns.max(1));
        for _ in 0..threads {
            let job = tag(self.server.next_aux_job, JOB_GC);
            self.server.next_aux_job = self.server.next_aux_job.wrapping_add(1);
            if let Processors::Shared(cpu) = &mut self.server.cpu {
                cpu.submit_until(
                    now,
                    job,
                    prio,
                    until,
                    &mut Fx {
                        cal: &mut self.cal,
                        wrap: Ev::Cpu,
                    },
                );
            }
        }
        self.drain_cpu(now);
    }

    fn suspend_managed(&mut self, now: SimTime) {
        if self.server.suspended {
            return;
        }
        self.server.suspended = true;
        let Processors::Shared(cpu) = &mut self.server.cpu else {
            return;
        };
        // Every managed CPU job of a request in flight stops until the GC ends.
        let mut jobs = std::mem::take(&mut self.server.suspended_jobs);
        let managed = self.reqs.iter().filter_map(|(id, r)| match r.phase {
            Phase::Cpu => Some(tag(id, JOB_STEP)),
            Phase::IoCallback if r.aux_thread != NO_THREAD => Some(tag(id, JOB_IO)),
            Phase::Signalling => Some(tag(id, JOB_SIGNAL)),
            Phase::SessionPoll => Some(tag(id, JOB_POLL)),
            _ => None,
        });
        // The request timeout manager's callback is managed code too.
        for job in managed.chain(self.server.timeout_job) {
            if cpu.suspend(
                now,
                job,
                &mut Fx {
                    cal: &mut self.cal,
                    wrap: Ev::Cpu,
                },
            ) {
                jobs.push(job);
            }
        }
        self.server.suspended_jobs = jobs;
    }

    fn gc_finished(&mut self, now: SimTime, c: &Collection) {
        if !c.blocking || !self.server.suspended || self.server.gc.blocking_in_progress() {
            // A new collection may be due now that this one ended.
            return self.gc_follow_up(now);
        }
        self.server.suspended = false;
        let jobs = std::mem::take(&mut self.server.suspended_jobs);
        if let Processors::Shared(cpu) = &mut self.server.cpu {
            for &job in &jobs {
                cpu.resume(
                    now,
                    job,
                    &mut Fx {
                        cal: &mut self.cal,
                        wrap: Ev::Cpu,
                    },
                );
            }
        }
        self.server.suspended_jobs = jobs;
        self.server.suspended_jobs.clear();
        let mut deferred = std::mem::take(&mut self.server.deferred);
        for d in deferred.drain(..) {
            match d {
                Deferred::Cpu(job, demand) => self.submit_managed(now, job, demand),
                Deferred::Post(item) => self.post(now, item),
                Deferred::Resume(id) => {
                    if self.server.suspended {
                        // Another blocking GC started meanwhile.
                        self.server.deferred.push(Deferred::Resume(id));
                    } else {
                        self.run_steps(now, id);
                    }
                }
            }
        }
        if self.server.deferred.is_empty() {
            self.server.deferred = deferred;
        }
        self.drain_cpu(now);
        self.gc_follow_up(now);
    }

    fn gc_follow_up(&mut self, now: SimTime) {
        if let Some(next) = self.server.gc.allocate(now, 0, 0) {
            self.gc_start(now, next);
        }
    }

    fn cache_reload(&mut self, now: SimTime) {
        let Some(r) = &self.scn.gc.cache_reload else {
            return;
        };
        let freed = if self.server.cache_generation == 0 {
            0
        } else {
            r.size.0
        };
        self.server.cache_generation += 1;
        if let Some(c) = self.server.gc.replace_long_lived(now, r.size.0, freed) {
            self.gc_start(now, c);
        }
        self.cal
            .schedule(now.saturating_add(r.every.0), Ev::CacheReload);
    }

    fn noise(&mut self, now: SimTime, i: usize) {
        let n = &self.scn.cpu.noise[i];
        let prio = if n.priority >= 32 {
            Priority::DPC
        } else {
            Priority(n.priority)
        };
        let until = now.saturating_add(n.duration.0);
        for _ in 0..n.threads {
            let job = tag(self.server.next_aux_job, JOB_NOISE);
            self.server.next_aux_job = self.server.next_aux_job.wrapping_add(1);
            if let Processors::Shared(cpu) = &mut self.server.cpu {
                cpu.submit_until(
                    now,
                    job,
                    prio,
                    until,
                    &mut Fx {
                        cal: &mut self.cal,
                        wrap: Ev::Cpu,
                    },
                );
            }
        }
        self.drain_cpu(now);
    }

    // ---- outputs -------------------------------------------------------------------

    /// The current value of a counter a valve reads (one of `VALVE_COUNTERS`).
    fn valve_counter(&self, name: &str) -> f64 {
        let s = &self.server;
        match name {
            "ASP.NET\\Requests Queued" => s.aspnet.requests_queued.get() as f64,
            "ASP.NET\\Requests Current" => s.aspnet.requests_current.get() as f64,
            "System.Runtime\\ThreadPool Queue Length" => s.tp.queue_length() as f64,
            "w3sim\\HTTP.SYS Outstanding Requests" => s.http.outstanding.get() as f64,
            "w3sim\\Ports In TIME_WAIT" => s.out.tcp.ports_time_wait.get() as f64,
            other => unreachable!("valve counter {other} passed validation"),
        }
    }

    fn sample(&mut self, now: SimTime, sink: &mut dyn SampleSink) -> Result<(), RunError> {
        let [p50, p95, p99] = self.interval.latency.quantiles_ms([0.50, 0.95, 0.99]);
        let secs = self.scn.sample_interval.as_secs_f64();
        let busy = self.busy_ns(now);
        let dpc_busy = match &self.server.cpu {
            Processors::Shared(cpu) => cpu.busy_ns_at_or_above(now, Priority::DPC),
            Processors::Dedicated { .. } => 0,
        };
        let s = &mut self.server;
        let dpc_pct = {
            let (t0, _) = s.sample_snapshot;
            let span = now.saturating_sub(t0).max(1) as f64;
            let v = (dpc_busy - s.dpc_snapshot.min(dpc_busy)) as f64
                / (self.scn.cpu.logical_processors as f64 * span)
                * 100.0;
            s.dpc_snapshot = dpc_busy;
            round6(v.clamp(0.0, 100.0))
        };
        s.out.tcp.advance(now);
        s.cache.advance(now);
        if let Some(f) = s.files.as_mut() {
            f.cache.advance(now);
        }
        let ports = s.out.tcp.ports_in_use.get() + s.out.tcp.ports_time_wait.get();
        if ports > self.scn.tcp.dynamic_port_count as u64 {
            self.violations.push(format!(
                "{ports} ports in use or in TIME_WAIT at {:.3} s, above the range of {}",
                as_secs(now),
                self.scn.tcp.dynamic_port_count
            ));
        }
        let (t0, b0) = s.sample_snapshot;
        let span = now.saturating_sub(t0);
        s.cpu_pct_sample = if span == 0 {
            0.0
        } else {
            ((busy - b0) as f64 / (self.scn.cpu.logical_processors as f64 * span as f64) * 100.0)
                .clamp(0.0, 100.0)
        };
        s.sample_snapshot = (now, busy);
        let span_s = (span as f64 * 1e-9).max(1e-12);
        let gc_ns = s.gc.time_in_gc_ns(now);
        let pct_gc = ((gc_ns - s.gc_pause_snapshot.min(gc_ns)) as f64 / span as f64 * 100.0)
            .clamp(0.0, 100.0);
        s.gc_pause_snapshot = gc_ns;
        let alloc = s.gc.allocated_bytes.total();
        let alloc_rate = (alloc - s.alloc_snapshot) as f64 / span_s;
        s.alloc_snapshot = alloc;
        let (queue_len, switches) = match &s.cpu {
            Processors::Shared(cpu) => (
                cpu.processor_queue_length() as f64,
                cpu.context_switches.total(),
            ),
            Processors::Dedicated { .. } => (0.0, 0),
        };
        let switch_rate = (switches - s.switches_snapshot) as f64 / span_s;
        s.switches_snapshot = switches;
        let per_s = |n: u64| round6(n as f64 / secs);
        let http = &mut s.http;
        let tp = &mut s.tp;
        let a = &s.aspnet;
        let io = &self.interval.outcomes;
        let row = [
            round6(as_secs(now)),
            per_s(http.arrivals.since_mark()),
            http.current_queue_size.get() as f64,
            per_s(http.rejected.since_mark()),
            round6(http.max_queue_item_age(now) as f64 * 1e-6),
            http.outstanding.get() as f64,
            s.iis.active_requests.get() as f64,
            a.requests_current.get() as f64,
            a.requests_queued.get() as f64,
            a.requests_in_native_queue.get() as f64,
            a.requests_rejected.total() as f64,
            a.requests_executing.get() as f64,
            per_s(io.get(Outcome::Ok)),
            tp.thread_count() as f64,
            tp.queue_length() as f64,
            per_s(tp.completions.since_mark()),
            tp.completions.total() as f64,
            tp.goal() as f64,
            tp.injections_on_demand.total() as f64,
            tp.injections_starvation.total() as f64,
            tp.injections_hill_climbing.total() as f64,
            tp.injections_blocking.total() as f64,
            tp.io_thread_count() as f64,
            round6(s.cpu_pct_sample),
            queue_len,
            round6(switch_rate),
            round6(pct_gc),
            s.gc.gen0_collections.total() as f64,
            s.gc.gen1_collections.total() as f64,
            s.gc.gen2_collections.total() as f64,
            round6(alloc_rate),
            if s.suspended { 1.0 } else { 0.0 },
            s.out.tcp.established.get() as f64,
            s.out.tcp.connection_failures.total() as f64,
            s.out.tcp.ports_in_use.get() as f64,
            s.out.tcp.ports_time_wait.get() as f64,
            s.out.tcp.incoming_time_wait.get() as f64,
            per_s(s.out.tcp.wsaenobufs.since_mark()),
            s.out.calls.len() as f64,
            s.out.pools.iter().map(|p| p.waiting.get()).sum::<u64>() as f64,
            per_s(
                s.out
                    .pools
                    .iter()
                    .map(|p| p.opened.since_mark())
                    .sum::<u64>(),
            ),
            s.out
                .backends
                .iter()
                .map(|b| b.in_service.get())
                .sum::<u64>() as f64,
            s.cache.current_uris_cached.get() as f64,
            round6(
                100.0
                    * w3sim_models::stat::hit_ratio(
                        s.cache.hits.since_mark(),
                        s.cache.misses.since_mark(),
                    ),
            ),
            s.cache.flushes.total() as f64,
            s.files
                .as_ref()
                .map_or(0, |f| f.cache.current_files_cached.get()) as f64,
            s.files.as_ref().map_or(0.0, |f| {
                round6(
                    100.0
                        * w3sim_models::stat::hit_ratio(
                            f.cache.hits.since_mark(),
                            f.cache.misses.since_mark(),
                        ),
                )
            }),
            s.files.as_ref().map_or(0, |f| f.cache.flushes.total()) as f64,
            per_s(http.cache_hits.since_mark()),
            s.pool_life.current_worker_processes.get() as f64,
            s.config.blocked_readers.get() as f64,
            s.afd.delayed_work_queue_length.get() as f64,
            s.afd.output_queue_length.get() as f64,
            s.afd.workers_waiting_on_lock.get() as f64,
            per_s(s.nic.packets_received.since_mark()),
            s.nic.packets_received_discarded.total() as f64,
            per_s(s.nic.dpcs_queued.since_mark()),
            dpc_pct,
            s.sessions.as_ref().map_or(0, |l| l.waiting.get()) as f64,
            s.site.current_connections.get() as f64,
            self.in_system.get() as f64,
            round6(p50),
            round6(p95),
            round6(p99),
        ];
        let mut row = row.to_vec();
        row.extend(Outcome::ALL.iter().map(|&o| per_s(io.get(o))));
        debug_assert_eq!(row.len(), COLUMNS.len() + Outcome::ALL.len());
        http.arrivals.mark();
        http.rejected.mark();

        tp.completions.mark();
        self.server.out.tcp.wsaenobufs.mark();
        self.server.nic.packets_received.mark();
        self.server.nic.dpcs_queued.mark();
        self.server.cache.hits.mark();
        self.server.cache.misses.mark();
        if let Some(f) = self.server.files.as_mut() {
            f.cache.hits.mark();
            f.cache.misses.mark();
        }
        self.server.http.cache_hits.mark();
        for p in &mut self.server.out.pools {
            p.opened.mark();
        }
        self.interval.latency.reset();
        self.interval.outcomes = OutcomeCounts::default();
        for (t, l) in self.server.interval_hits.drain(..) {
            sink.limit_reached(round6(as_secs(t)), l);
        }
        sink.row(&row)?;
        Ok(())
    }

    fn summarize(&mut self, end: SimTime) -> Summary {
        let scn = self.scn;
        let failed = self.outcomes.failed();
        let completed = self.outcomes.get(Outcome::Ok);
        let in_flight = self.reqs.len() as u64 - self.server.zombies;
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
        let s = &self.server;
        for (name, g) in [
            ("w3sim\\Requests In Flight", &self.in_system),
            (
                "HTTP Service Request Queues\\CurrentQueueSize",
                &s.http.current_queue_size,
            ),
            ("w3sim\\HTTP.SYS Outstanding Requests", &s.http.outstanding),
            ("W3SVC_W3WP\\Active Requests", &s.iis.active_requests),
            ("ASP.NET\\Requests Current", &s.aspnet.requests_current),
            ("ASP.NET\\Requests Queued", &s.aspnet.requests_queued),
            (
                "ASP.NET Applications\\Requests Executing",
                &s.aspnet.requests_executing,
            ),
            (
                "System.Runtime\\ThreadPool Thread Count",
                &s.tp.thread_count,
            ),
            (
                "System.Runtime\\ThreadPool Queue Length",
                &s.tp.queue_length,
            ),
        ] {
            if g.underflows() > 0 {
                self.violations.push(format!(
                    "gauge {name} went below zero {} time(s)",
                    g.underflows()
                ));
            }
        }
        if let Some(l) = &s.sessions
            && l.waiting.underflows() > 0
        {
            self.violations.push(format!(
                "gauge w3sim\\Requests Waiting For Session Lock went below zero {} time(s)",
                l.waiting.underflows()
            ));
        }
        if self.peak_counted > scn.http_sys.queue_length as u64 {
            self.violations.push(format!(
                "HTTP.SYS queue held {} requests, above queueLength {}",
                self.peak_counted, scn.http_sys.queue_length
            ));
        }
        if s.site.current_connections.peak() > scn.http_sys.max_connections as u64 {
            self.violations.push(format!(
                "the site had {} connections, above maxConnections {}",
                s.site.current_connections.peak(),
                scn.http_sys.max_connections
            ));
        }
        if s.iis.active_requests.peak() > scn.iis.app_concurrent_request_limit as u64 {
            self.violations.push(format!(
                "IIS held {} requests, above appConcurrentRequestLimit {}",
                s.iis.active_requests.peak(),
                scn.iis.app_concurrent_request_limit
            ));
        }
        let queue_limit = s.aspnet.config().request_queue_limit;
        if s.aspnet.requests_current.peak() > queue_limit as u64 {
            self.violations.push(format!(
                "ASP.NET held {} requests, above requestQueueLimit {queue_limit}",
                s.aspnet.requests_current.peak(),
            ));
        }
        let cpus = scn.cpu.logical_processors;
        let max_threads = scn.thread_pool.max_threads(cpus) as u64;
        if s.tp.thread_count.peak() > max_threads {
            self.violations.push(format!(
                "the thread pool had {} worker threads, above its maximum {max_threads}",
                s.tp.thread_count.peak()
            ));
        }

        let w = &self.window;
        let span_s = as_secs(end.saturating_sub(w.start)).max(1e-12);
        let measured = MeasuredSummary::new(
            w.start,
            end,
            w.arrived,
            w.outcomes.get(Outcome::Ok),
            w.outcomes.failed(),
            w.outcomes.to_map(),
        );
        let littles_law = LittlesLaw::new(
            self.in_system.mean(end),
            w.arrived,
            span_s,
            w.sojourn_sum_ns,
            w.departures,
        );
        let latency_ms = LatencyByClass::new(
            scn.classes.iter().map(|c| c.name.as_str()),
            &w.latency_all,
            &w.latency_by_class,
        );
        let queue_wait_ms = w.queue_wait.summary();
        let g = |gauge: &w3sim_models::stat::Gauge, limit: Option<u64>| GaugeSummary {
            mean: round6(gauge.mean(end)),
            peak: gauge.peak(),
            limit,
        };
        let aspnet_limit = s.aspnet.concurrency_limit();
        let mut gauges = std::collections::BTreeMap::new();
        // The limit applies to what HTTP.SYS counts: kernel-queued requests (the docs) or
        // every outstanding request of the pool (KB 816995).
        let counts_all = scn.http_sys.queue_counts_in_flight;
        let qlen = scn.http_sys.queue_length as u64;
        gauges.insert(
            "http_sys.CurrentQueueSize".to_string(),
            g(&s.http.current_queue_size, (!counts_all).then_some(qlen)),
        );
        gauges.insert(
            "http_sys.Outstanding Requests".to_string(),
            g(&s.http.outstanding, counts_all.then_some(qlen)),
        );
        gauges.insert(
            "iis.Active Requests".to_string(),
            g(
                &s.iis.active_requests,
                Some(scn.iis.app_concurrent_request_limit as u64),
            ),
        );
        gauges.insert(
            "aspnet.Requests Current".to_string(),
            g(
                &s.aspnet.requests_current,
                (s.aspnet.config().request_queue_limit < u32::MAX)
                    .then_some(scn.aspnet.request_queue_limit as u64),
            ),
        );
        gauges.insert(
            "aspnet.Requests Queued".to_string(),
            g(&s.aspnet.requests_queued, None),
        );
        gauges.insert(
            "aspnet.Requests In Native Queue".to_string(),
            g(&s.aspnet.requests_in_native_queue, None),
        );
        gauges.insert(
            "aspnet.Requests Executing".to_string(),
            g(
                &s.aspnet.requests_executing,
                (aspnet_limit != u64::MAX).then_some(aspnet_limit),
            ),
        );
        gauges.insert(
            "thread_pool.Thread Count".to_string(),
            g(&s.tp.thread_count, Some(max_threads)),
        );
        gauges.insert(
            "thread_pool.Queue Length".to_string(),
            g(&s.tp.queue_length, None),
        );
        gauges.insert(
            "thread_pool.Processing Work".to_string(),
            g(&s.tp.processing_work, None),
        );
        if scn.thread_pool.runtime == Runtime::Net8 {
            // .NET 7+: the IO completion pollers, and the completions they took off the
            // port that wait for a thread to run their callback (a worker when starved).
            gauges.insert(
                "thread_pool.IO Completion Pollers".to_string(),
                g(&s.tp.io_pollers, None),
            );
            gauges.insert(
                "thread_pool.IO Completions Waiting".to_string(),
                g(&s.tp.poller_queue_length, None),
            );
        }
        gauges.insert(
            "w3sim.Requests In Flight".to_string(),
            g(&self.in_system, None),
        );
        let max_conns = scn.http_sys.max_connections;
        gauges.insert(
            "http_sys.Current Connections".to_string(),
            g(
                &s.site.current_connections,
                (max_conns != UNLIMITED_CONNECTIONS).then_some(max_conns as u64),
            ),
        );
        if let Some(l) = &s.sessions {
            gauges.insert(
                "aspnet.Requests Waiting For Session Lock".to_string(),
                g(&l.waiting, None),
            );
        }

        let gc = &s.gc;
        let gc_summary = GcSummary {
            gen0_collections: gc.gen0_collections.total(),
            gen1_collections: gc.gen1_collections.total(),
            gen2_collections: gc.gen2_collections.total(),
            max_pause_ms: round6(gc.max_pause_ns as f64 * 1e-6),
            mean_pause_ms: round6(if gc.pause_count == 0 {
                0.0
            } else {
                gc.pause_sum_ns as f64 / gc.pause_count as f64 * 1e-6
            }),
            time_in_gc_pct: round6(gc.time_in_gc_ns(end) as f64 / end.max(1) as f64 * 100.0),
            allocated_bytes: gc.allocated_bytes.total(),
            pause_histogram: gc
                .pause_histogram
                .iter()
                .enumerate()
                .map(|(i, &count)| PauseBucket {
                    le_ms: w3sim_models::gc::PAUSE_BUCKET_UPPER_NS
                        .get(i)
                        .map(|&ns| ns as f64 * 1e-6),
                    count,
                })
                .collect(),
        };
        let busy = self.busy_ns(end);
        let window_busy = busy.saturating_sub(self.window_busy_start);
        let cpu_utilization_pct = round6(
            window_busy as f64 / (cpus as f64 * end.saturating_sub(w.start).max(1) as f64) * 100.0,
        );
        let o = &s.out;
        let outgoing = OutgoingSummary {
            calls: o.stats.calls,
            ok: o.stats.ok,
            timeouts: o.stats.timeouts,
            errors: o.stats.errors,
            wsaenobufs: o.stats.wsaenobufs,
            wsaeaddrinuse: o.stats.wsaeaddrinuse,
            latency_ms: o.stats.latency.summary(),
            backends: scn
                .backends
                .iter()
                .zip(&o.stats.per_backend)
                .map(|(b, k)| {
                    (
                        b.name.clone(),
                        BackendCalls {
                            ok: k[0],
                            timeouts: k[1],
                            errors: k[2],
                            wsaenobufs: k[3],
                            wsaeaddrinuse: k[4],
                        },
                    )
                })
                .collect(),
            connections_opened: o.pools.iter().map(|p| p.opened.total()).sum(),
            connections_closed: o.pools.iter().map(|p| p.closed.total()).sum(),
            connections_closed_idle: o.pools.iter().map(|p| p.idle_closed.total()).sum(),
            connections_closed_lifetime: o.pools.iter().map(|p| p.lifetime_closed.total()).sum(),
            connect_timeouts: o.pools.iter().map(|p| p.connect_timeouts.total()).sum(),
            peak_ports_used: o.stats.peak_ports_used,
            port_range: scn.tcp.dynamic_port_count as u64,
            peak_ports_time_wait: o.tcp.ports_time_wait.peak(),
            peak_connections_established: o.tcp.established.peak(),
            first_wsaenobufs_s: o.stats.first_wsaenobufs_s.map(round6),
            first_connection_wait_s: o.stats.first_conn_wait_s.map(round6),
        };
        let limits: Vec<LimitHit> = s
            .limits
            .iter()
            .map(|(t, l, d)| LimitHit {
                at_s: round6(as_secs(*t)),
                limit: l.to_string(),
                detail: d.clone(),
                episodes_s: Vec::new(),
            })
            .collect();
        let c = &s.cache;
        let kernel_cache = KernelCacheSummary {
            hits: c.hits.total(),
            misses: c.misses.total(),
            hit_ratio: round6(c.hit_ratio()),
            inserted: c.inserted.total(),
            expired_ttl: c.expired_ttl.total(),
            scavenged: c.scavenged.total(),
            flushed_by_recycle: c.flushed_recycle.total(),
            flushed_other: c.flushed_other.total(),
            evicted_size: c.evicted_size.total(),
            flushes: c.flushes.total(),
            flushes_idle_timeout: c.flushes_idle_timeout.total(),
            flushes_recycle: c.flushes_recycle.total(),
            peak_uris_cached: c.current_uris_cached.peak(),
        };
        let p = &s.pool_life;
        let app_pool = AppPoolSummary {
            starts: p.starts.total(),
            recycles_idle_timeout: p.recycles_idle_timeout.total(),
            recycles_periodic: p.recycles_periodic.total(),
            recycles_scheduled: p.recycles_scheduled.total(),
            crashes: p.recycles_crash.total(),
            rapid_fail_trips: p.rapid_fail_trips.total(),
            startup_failures: p.startup_failures.total(),
            timer_app_pool: s.http.expired.total(),
            offline_503: p.offline.total(),
            abandoned_requests: s.abandoned,
        };
        let events = s
            .events
            .iter()
            .map(|(t, k, d)| RunEvent {
                at_s: round6(as_secs(*t)),
                kind: k.to_string(),
                detail: d.clone(),
            })
            .collect();
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
            gc: gc_summary,
            cpu_utilization_pct,
            outgoing,
            first_limit: limits.first().cloned(),
            limits,
            kernel_cache,
            app_pool,
            marked_events: events,
            probe_timeouts: s.probe_timeouts,
            failovers: s.failovers,
            packets_received_discarded: s.nic.packets_received_discarded.total(),
            valves: self
                .valves
                .iter()
                .zip(&scn.valves)
                .map(|((v, skipped), spec)| crate::stats::ValveSummary {
                    counter: spec.counter.clone(),
                    closings: v.closings.total(),
                    first_closed_at_s: v.first_closed_at.map(|t| round6(t as f64 * 1e-9)),
                    closed_seconds: round6(v.closed_time(end) as f64 * 1e-9),
                    skipped_calls: *skipped,
                })
                .collect(),
            session_state: s.sessions.as_ref().map(|l| {
                let granted = l.granted_after_wait.total();
                crate::stats::SessionStateSummary {
                    lock_waits: l.waits.total(),
                    polls: l.polls.total(),
                    mean_wait_ms: round6(if granted == 0 {
                        0.0
                    } else {
                        l.wait_ns_total as f64 / granted as f64 * 1e-6
                    }),
                    max_wait_ms: round6(l.wait_ns_max as f64 * 1e-6),
                    peak_waiting_per_session: l.peak_waiting_per_session,
                    queue_limit_rejections: l.queue_limit_rejections.total(),
                    stale_locks_released: l.stale_locks_released.total(),
                }
            }),
            request_timeout: s.timeouts.enabled().then(|| {
                let t = &s.timeouts;
                crate::stats::RequestTimeoutSummary {
                    execution_timeout_s: round6(t.config().execution_timeout_ns as f64 * 1e-9),
                    requests_timed_out: t.requests_timed_out.total(),
                    first_timed_out_s: t.first_timed_out_at.map(|t| round6(t as f64 * 1e-9)),
                    callbacks: t.callbacks.total(),
                }
            }),
            file_cache: s.files.as_ref().map(|f| {
                let c = &f.cache;
                crate::stats::FileCacheSummary {
                    hits: c.hits.total(),
                    misses: c.misses.total(),
                    hit_ratio: round6(c.hit_ratio()),
                    attribute_checks: c.attribute_checks.total(),
                    inserted: c.inserted.total(),
                    too_large: c.too_large.total(),
                    expired_ttl: c.expired_ttl.total(),
                    evicted_size: c.evicted_size.total(),
                    flushes: c.flushes.total(),
                    flushed_files: c.flushed_files.total(),
                    peak_files_cached: c.current_files_cached.peak(),
                    mean_memory_usage_bytes: round6(c.current_file_cache_memory_usage.mean(end)),
                }
            }),
            events: self.cal.delivered(),
            simulated_seconds: round6(as_secs(end)),
            peak_request_slots: self.reqs.capacity_used() as u64,
            wall_seconds: 0.0,
            incidents: Vec::new(),
            farm: None,
        }
    }

    /// Invariant violations found at the end of the run (empty when all hold).
    pub fn violations(&self) -> &[String] {
        &self.violations
    }
}

// ---- outgoing calls: connection pools, ports, backends -----------------------------

impl Simulation<'_> {
    fn call_id(slot: u32, generation: u32) -> CallId {
        ((generation as u64) << 32) | slot as u64
    }

    /// The live call a pool or backend event refers to, if it is still running.
    fn live_call(&self, call: CallId) -> Option<(u32, Call)> {
        let slot = call as u32;
        let c = *self.server.out.calls.get(slot)?;
        (c.generation == (call >> 32) as u32).then_some((slot, c))
    }

    /// A limit was reached: the first time is kept with what happened (`detail`, only
    /// formatted then) for `summary.json`'s `limits`; the first time in each sample
    /// interval goes with that interval's row to the incident detector, which dates the
    /// incident that row starts (a later episode) at it instead of at the sample.
    #[inline]
    fn limit_reached(
        &mut self,
        now: SimTime,
        limit: &'static str,
        detail: impl FnOnce(&Self) -> String,
    ) {
        if !self.server.interval_hits.iter().any(|(_, l)| *l == limit) {
            self.server.interval_hits.push((now, limit));
            if !self.server.limits.iter().any(|(_, l, _)| *l == limit) {
                let d = detail(self);
                self.server.limits.push((now, limit, d));
            }
        }
    }

    fn start_call(&mut self, now: SimTime, req: RequestId, backend: u16, timeout_ns: u64) {
        let out = &mut self.server.out;
        let generation = out.next_generation;
        // 31 bits: call ids must not reach AFD's CALL_TOKEN bit.
        out.next_generation = out.next_generation.wrapping_add(1) & 0x7FFF_FFFF;
        let slot = out.calls.insert(Call {
            req,
            backend,
            generation,
            conn: None,
            state: CallState::WaitingConn,
            started: now,
            timeout_ns,
            abandoned: false,
        });
        out.stats.calls += 1;
        let q = match out.call_timeouts.iter().position(|(t, _)| *t == timeout_ns) {
            Some(q) => q,
            None => {
                out.call_timeouts.push((timeout_ns, Deadlines::new()));
                out.call_timeouts.len() - 1
            }
        };
        let calls = &out.calls;
        let live = calls.len();
        if let Some(t) = out.call_timeouts[q].1.push(
            now.saturating_add(timeout_ns),
            (slot, generation),
            live,
            |(sl, g)| Outgoing::call_live(calls, sl, g),
        ) {
            self.cal.schedule(t, Ev::CallTimeouts(q as u16));
        }
        let id = Self::call_id(slot, generation);
        let b = backend;
        self.server.out.pools[b as usize].acquire(
            now,
            id,
            &mut Fx {
                cal: &mut self.cal,
                wrap: move |t| Ev::Pool(b, t),
            },
        );
        self.drain_pool(now, b);
        if self.server.out.live_waiting(slot)
            && self.server.out.pools[b as usize].calls_beyond_limit()
        {
            let limit = self.server.out.pools[b as usize].config().max_connections;
            let name = self.scn.backends[b as usize].name.clone();
            self.server
                .out
                .stats
                .first_conn_wait_s
                .get_or_insert(as_secs(now));
            self.limit_reached(now, "connections.max_connections", |_: &Self| {
                format!("calls to {name} wait for one of its {limit} connections")
            });
        }
    }

    /// Carries out what a connection pool asked for.
    fn drain_pool(&mut self, now: SimTime, b: u16) {
        while let Some(ev) = self.server.out.pools[b as usize].poll() {
            match ev {
                PoolEvent::Connect { call, conn } => {
                    // ServicePoint opens a connection for one call; SocketsHttpHandler for
                    // the pool (whichever call waits longest when it is ready).
                    let owner = match call {
                        Some(call) => match self.live_call(call) {
                            Some((slot, _)) => Some(slot),
                            None => {
                                // The call is gone: give the slot back.
                                self.server.out.pools[b as usize].connect_failed(
                                    now,
                                    conn,
                                    &mut Fx {
                                        cal: &mut self.cal,
                                        wrap: move |t| Ev::Pool(b, t),
                                    },
                                );
                                continue;
                            }
                        },
                        None => None,
                    };
                    match self.server.out.tcp.connect(now, b as u32) {
                        Ok(()) => {
                            self.server.out.bound[b as usize].insert(conn);
                            let used = self.server.out.tcp.ports_in_use.get()
                                + self.server.out.tcp.ports_time_wait.get();
                            let st = &mut self.server.out.stats;
                            st.peak_ports_used = st.peak_ports_used.max(used);
                            if let Some(slot) = owner {
                                let c = self.server.out.calls.get_mut(slot).expect("live call");
                                c.conn = Some(conn);
                                c.state = CallState::Connecting;
                            }
                            let d = self.server.out.connect_time[b as usize]
                                .sample_ns(&mut self.server.out.connect_rng);
                            self.cal
                                .schedule(now.saturating_add(d), Ev::Connected(b, conn));
                        }
                        Err(e) => {
                            let failed = self.server.out.pools[b as usize].connect_failed(
                                now,
                                conn,
                                &mut Fx {
                                    cal: &mut self.cal,
                                    wrap: move |t| Ev::Pool(b, t),
                                },
                            );
                            let outcome = match e {
                                ConnectError::NoBufs => Outcome::Wsaenobufs,
                                ConnectError::AddrInUse => Outcome::Wsaeaddrinuse,
                            };
                            if outcome == Outcome::Wsaenobufs {
                                self.server
                                    .out
                                    .stats
                                    .first_wsaenobufs_s
                                    .get_or_insert(as_secs(now));
                            }
                            let ports = self.scn.tcp.dynamic_port_count;
                            self.limit_reached(
                                now,
                                "tcp.dynamic_port_count",
                                |_: &Self| format!(
                                    "all {ports} ephemeral ports in use or in TIME_WAIT: connect fails with {}",
                                    if outcome == Outcome::Wsaenobufs { "WSAENOBUFS (10055)" } else { "WSAEADDRINUSE (10048)" }
                                ),
                            );
                            // The call the failure falls on: the connection's own, or
                            // (SocketsHttpHandler) the oldest waiting.
                            if let Some((slot, _)) = failed.and_then(|c| self.live_call(c)) {
                                self.call_done(now, slot, Some(outcome));
                            }
                        }
                    }
                }
                PoolEvent::Ready { call, conn } => {
                    let Some((slot, _)) = self.live_call(call) else {
                        continue;
                    };
                    let c = self.server.out.calls.get_mut(slot).expect("live call");
                    c.conn = Some(conn);
                    c.state = CallState::AtBackend;
                    let be = &self.scn.backends[b as usize];
                    if be.loopback {
                        // A call to a service on this machine crosses AFD's loopback work items.
                        self.server.afd.submit(
                            now,
                            CALL_TOKEN | call,
                            be.loopback_fast_path,
                            &mut Fx {
                                cal: &mut self.cal,
                                wrap: Ev::Afd,
                            },
                        );
                        self.drain_afd(now);
                    } else {
                        self.send_to_backend(now, b, call);
                    }
                }
                PoolEvent::Close { conn, established } => {
                    if self.server.out.bound[b as usize].remove(&conn) {
                        // This side closes (idle timeout, abort, no keep-alive): TIME_WAIT.
                        // A connect given up before its handshake completed (SYN-SENT →
                        // CLOSED) frees its port at once.
                        self.server.out.tcp.close(now, b as u32, established);
                    }
                }
                PoolEvent::ConnectTimeout { call } => {
                    // SocketsHttpHandler.ConnectTimeout: TaskCanceledException ← TimeoutException.
                    let name = self.scn.backends[b as usize].name.clone();
                    let timeout = self.scn.connections.connect_timeout;
                    self.limit_reached(
                        now,
                        "connections.connect_timeout",
                        |_: &Self| format!("a connect to {name} did not complete within ConnectTimeout {timeout}: the oldest waiting call fails"),
                    );
                    if let Some((slot, _)) = self.live_call(call) {
                        self.call_done(now, slot, Some(Outcome::OutgoingError));
                    }
                }
                PoolEvent::QueueTimeout { call } => {
                    if let Some((slot, _)) = self.live_call(call) {
                        self.call_done(now, slot, Some(Outcome::OutgoingTimeout));
                    }
                }
            }
        }
    }

    /// The call's request reaches its backend.
    fn send_to_backend(&mut self, now: SimTime, b: u16, call: CallId) {
        self.server.out.backends[b as usize].request(
            now,
            call,
            &mut Fx {
                cal: &mut self.cal,
                wrap: move |t| Ev::Backend(b, t),
            },
        );
        self.drain_backend(now, b);
    }

    /// Carries out what a backend answered.
    fn drain_backend(&mut self, now: SimTime, b: u16) {
        while let Some(BackendEvent::Responded { call, error }) =
            self.server.out.backends[b as usize].poll()
        {
            let Some((slot, c)) = self.live_call(call) else {
                continue;
            };
            if let Some(conn) = c.conn {
                self.server.out.pools[b as usize].release(
                    now,
                    conn,
                    &mut Fx {
                        cal: &mut self.cal,
                        wrap: move |t| Ev::Pool(b, t),
                    },
                );
                self.drain_pool(now, b);
            }
            if c.abandoned {
                // The request gave up long ago; the connection is back in the pool.
                self.server.out.calls.remove(slot);
                continue;
            }
            self.call_done(now, slot, error.then_some(Outcome::OutgoingError));
        }
    }

    /// The call's cancel timeout: the request gives up on it and aborts its connection.
    /// Every call of timeout queue `q` whose time is up, then the queue's next event.
    fn call_timeouts(&mut self, now: SimTime, q: usize) {
        self.server.out.call_timeouts[q].1.fired();
        loop {
            let out = &mut self.server.out;
            let calls = &out.calls;
            let Some((slot, generation)) = out.call_timeouts[q]
                .1
                .pop_due(now, |(sl, g)| Outgoing::call_live(calls, sl, g))
            else {
                break;
            };
            self.call_timeout(now, slot, generation);
        }
        let out = &mut self.server.out;
        let calls = &out.calls;
        if let Some(t) = out.call_timeouts[q]
            .1
            .rearm(|(sl, g)| Outgoing::call_live(calls, sl, g))
        {
            self.cal.schedule(t, Ev::CallTimeouts(q as u16));
        }
    }

    fn call_timeout(&mut self, now: SimTime, slot: u32, generation: u32) {
        let Some(c) = self.server.out.calls.get(slot).copied() else {
            return;
        };
        if c.generation != generation || c.abandoned {
            return;
        }
        let b = c.backend;
        let id = Self::call_id(slot, generation);
        let fx_pool = move |t| Ev::Pool(b, t);
        match c.state {
            CallState::WaitingConn => {
                self.server.out.pools[b as usize].cancel_waiting(now, id);
            }
            CallState::Connecting => {
                if let Some(conn) = c.conn {
                    self.server.out.pools[b as usize].abort(
                        now,
                        conn,
                        &mut Fx {
                            cal: &mut self.cal,
                            wrap: fx_pool,
                        },
                    );
                }
            }
            CallState::AtBackend if !self.scn.backends[b as usize].abort_on_cancel => {
                // Keep the connection: its late response is read, then it goes back to the pool.
                self.server
                    .out
                    .calls
                    .get_mut(slot)
                    .expect("live call")
                    .abandoned = true;
                self.request_call_ended(now, c, Some(Outcome::OutgoingTimeout));
                return;
            }
            CallState::AtBackend => {
                self.server.out.backends[b as usize].cancel(
                    now,
                    id,
                    &mut Fx {
                        cal: &mut self.cal,
                        wrap: move |t| Ev::Backend(b, t),
                    },
                );
                if let Some(conn) = c.conn {
                    self.server.out.pools[b as usize].abort(
                        now,
                        conn,
                        &mut Fx {
                            cal: &mut self.cal,
                            wrap: fx_pool,
                        },
                    );
                }
            }
        }
        self.drain_pool(now, b);
        self.call_done(now, slot, Some(Outcome::OutgoingTimeout));
    }

    /// A call ended (`None`: answered). Its request goes on when its calls are done.
    fn call_done(&mut self, now: SimTime, slot: u32, failure: Option<Outcome>) {
        let Some(c) = self.server.out.calls.remove(slot) else {
            return;
        };
        self.request_call_ended(now, c, failure);
    }

    /// Counts a call's result and lets its request go on when its calls are done.
    fn request_call_ended(&mut self, now: SimTime, c: Call, failure: Option<Outcome>) {
        let st = &mut self.server.out.stats;
        let k = match failure {
            None => {
                st.ok += 1;
                st.latency.record(now - c.started);
                0
            }
            Some(Outcome::OutgoingTimeout) => {
                st.timeouts += 1;
                1
            }
            Some(Outcome::OutgoingError) => {
                st.errors += 1;
                2
            }
            Some(Outcome::Wsaenobufs) => {
                st.wsaenobufs += 1;
                3
            }
            Some(Outcome::Wsaeaddrinuse) => {
                st.wsaeaddrinuse += 1;
                4
            }
            Some(_) => 5,
        };
        st.per_backend[c.backend as usize][k] += 1;
        let Some(r) = self.reqs.get_mut(c.req) else {
            return;
        };
        if let Some(f) = failure {
            r.call_failure.get_or_insert(f);
        }
        r.calls_pending = r.calls_pending.saturating_sub(1);
        let class = r.class as usize;
        let stop = r.call_failure.is_some()
            && self.scn.classes[class].on_call_failure == crate::scenario::OnCallFailure::Fail;
        if r.calls_left > 0 && !stop {
            r.calls_left -= 1;
            r.calls_pending += 1;
            let req = c.req;
            self.start_call(now, req, c.backend, c.timeout_ns);
            return;
        }
        if r.calls_pending == 0 {
            r.calls_left = 0;
            if failure.is_none()
                && r.phase != Phase::Aborted
                && let Some(files) = self.server.files.as_mut()
                && let Some(Step::File { .. }) = self.handlers[class].steps.get(r.step as usize)
            {
                // The static file handler read the file: IIS caches it.
                files.cache.insert(now, r.url, r.bytes);
            }
            self.wait_done(now, c.req);
        }
    }
}

impl Outgoing {
    /// Whether the call in `slot` is still waiting for a connection.
    fn live_waiting(&self, slot: u32) -> bool {
        self.calls
            .get(slot)
            .is_some_and(|c| c.state == CallState::WaitingConn)
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
    if scn.is_farm() {
        // Several servers, or clients that time out and retry: the farm driver. The
        // sink gets the farm's time series; the servers' own are not kept.
        let mut nulls: Vec<crate::output::NullSink> = scn
            .server_names()
            .iter()
            .map(|_| crate::output::NullSink)
            .collect();
        let mut servers: Vec<&mut dyn SampleSink> =
            nulls.iter_mut().map(|s| s as &mut dyn SampleSink).collect();
        return crate::farm::run_farm(scn, sink, &mut servers);
    }
    let mut sim = Simulation::new(scn).with_faults(faults);
    let limits =
        crate::incidents::Limits::from_scenario_with_ports(scn, scn.tcp.dynamic_port_count);
    let mut detector = crate::incidents::Detector::new(sink, limits);
    let mut summary = sim.run(&mut detector)?;
    for e in &summary.marked_events {
        detector.event(e.at_s, &e.kind, &e.detail);
    }
    for l in &summary.limits {
        detector.limit_hit(l.at_s, &l.limit);
    }
    summary.incidents = detector.finish_incidents();
    for l in &mut summary.limits {
        l.episodes_s = detector.episodes_of(&l.limit);
    }
    if sim.violations.is_empty() {
        Ok(summary)
    } else {
        Err(RunError::Invariant(sim.violations.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// processModel autoConfig sets both maxima to 100 × CPUs (DOMAIN §4.4); an explicit
    /// value wins, and never below the minimum.
    #[test]
    fn thread_maxima_default_to_autoconfig() {
        let mut scn = Scenario::default();
        scn.cpu.logical_processors = 16;
        let c = thread_pool_config(&scn);
        assert_eq!((c.max_worker_threads, c.max_io_threads), (1600, 1600));
        scn.thread_pool.max_io_threads = 50;
        assert_eq!(thread_pool_config(&scn).max_io_threads, 50);
        scn.thread_pool.min_io_threads = 80;
        assert_eq!(thread_pool_config(&scn).max_io_threads, 80);
    }
}
