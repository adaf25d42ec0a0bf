//! Scenario files: what a run simulates.
//!
//! A scenario is a TOML file with a few top-level keys (name, seed, duration, …) and
//! one table per component. Every key has a default taken from `DOMAIN.md` (see
//! [`settings`] and `w3sim show-defaults`); unknown keys are errors. Values carry
//! their units ([`units`]). [`load`] turns text (plus `--set` overrides) into a
//! validated [`Scenario`] or a list of diagnostics naming file, line, column and key.

pub mod load;
pub mod replay;
pub mod settings;
pub mod units;

use serde::{Deserialize, Serialize};
use w3sim_models::dist::Dist;

use self::units::{CountDist, Duration, DurationDist, Rate, Size, SizeDist};

/// The most kernel delayed worker threads of each kind (`afd.max_dynamic_workers`,
/// `afd.additional_delayed_worker_threads`) a scenario may ask for.
/// The most closed-loop users (each has a think-time timer from the start): the largest
/// burst `load.bursts` accepts.
pub const MAX_USERS: u32 = 10_000_000;
/// The most tiered-compilation promotion work items (`thread_pool.tiering_promotions`).
pub const MAX_TIERING_PROMOTIONS: u32 = 64;
pub const MAX_DELAYED_WORKERS: u32 = 4096;
/// The most RSS receive queues (`nic.number_of_receive_queues`): an RSS indirection table has at most
/// 128 entries.
pub const MAX_RSS_QUEUES: u32 = 128;
/// The most frames one request arrives in (`nic.packets_per_request`).
pub const MAX_PACKETS_PER_REQUEST: u32 = 65535;
/// The most rows a run's `timeseries.csv` may have (`duration / sample_interval`): 116 days
/// sampled every second, a few gigabytes.
pub const MAX_SAMPLES: u64 = 10_000_000;
/// The most simultaneous requests in one of `load.bursts`.
pub const MAX_BURST: u32 = 10_000_000;
const MILLISECOND_NS: u64 = 1_000_000;
const SECOND_NS: u64 = 1_000_000_000;

/// The largest `load.scale`.
pub const MAX_LOAD_SCALE: f64 = 1e6;

/// A whole scenario, as written in a `.toml` file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scenario {
    /// Short name used in outputs.
    pub name: String,
    /// What the scenario shows and which seed it comes from.
    pub description: String,
    /// Master seed: every component's random stream is derived from it.
    #[serde(with = "units::seed")]
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
    /// IIS worker-process limits.
    pub iis: Iis,
    /// ASP.NET integrated-mode throttling (`aspnet.config`).
    pub aspnet: AspNet,
    /// ASP.NET session state (InProc): who shares a session, how a locked one is polled.
    pub session_state: SessionState,
    /// CLR thread pool.
    pub thread_pool: ThreadPool,
    /// .NET garbage collector.
    pub gc: Gc,
    /// Outgoing connection management (ServicePointManager or SocketsHttpHandler).
    pub connections: Connections,
    /// Downstream services the handlers call.
    pub backends: Vec<BackendSpec>,
    /// TCP: ephemeral ports, TIME_WAIT, incoming connections.
    pub tcp: Tcp,
    /// HTTP.SYS kernel-mode response cache.
    pub kernel_cache: KernelCache,
    /// Application-pool lifecycle.
    pub app_pool: AppPool,
    /// Loopback traffic through AFD.
    pub afd: Afd,
    /// The network adapter's receive rings.
    pub nic: Nic,
    /// Control loops inside the application (seed 003's valve).
    pub valves: Vec<ValveSpec>,
    /// Several servers behind a load balancer (no `[[farm.servers]]`: one server).
    pub farm: Farm,
    /// The load balancer in front of a farm.
    pub load_balancer: LoadBalancerSpec,
    /// Client timeouts and retries.
    pub clients: Clients,
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
            classes: vec![Class::seed003_sync_page()],
            cpu: Cpu::default(),
            http_sys: HttpSys::default(),
            iis: Iis::default(),
            aspnet: AspNet::default(),
            session_state: SessionState::default(),
            thread_pool: ThreadPool::default(),
            gc: Gc::default(),
            connections: Connections::default(),
            backends: Vec::new(),
            tcp: Tcp::default(),
            kernel_cache: KernelCache::default(),
            app_pool: AppPool::default(),
            afd: Afd::default(),
            nic: Nic::default(),
            valves: Vec::new(),
            farm: Farm::default(),
            load_balancer: LoadBalancerSpec::default(),
            clients: Clients::default(),
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
    /// Open loop: every arrival rate (`rate`, `schedule`, the classes' own) times this:
    /// "what if the traffic grew by half" is `scale = 1.5`.
    pub scale: f64,
    /// Open loop: the rate over time read from a counter of a perfmon CSV export (or a
    /// w3sim `timeseries.csv`); the loader turns it into `schedule`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay: Option<Replay>,
    /// What the replay became the schedule from (for `check`; not written out).
    #[serde(skip)]
    pub replayed: Option<Replayed>,
}

/// Where a replayed schedule came from, and how much of the run the capture covers.
#[derive(Clone, Debug, PartialEq)]
pub struct Replayed {
    pub file: String,
    /// The column's full name in the capture.
    pub counter: String,
    pub samples: usize,
    /// From time 0, how long the capture's samples last.
    pub covers: Duration,
}

/// `load.replay`: a production load shape, `{ file = "web1.csv", counter =
/// "W3SVC_W3WP\\Requests / Sec" }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replay {
    /// The CSV: relative to the scenario file (to the working directory when given by
    /// `--set`).
    pub file: String,
    /// The counter: `Object\Counter` (any machine and instance), or the full path when
    /// several columns match.
    pub counter: String,
    /// Skip the capture's first part: simulated time 0 is this far into it.
    #[serde(default)]
    pub from: Duration,
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
            scale: 1.0,
            replay: None,
            replayed: None,
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
    /// Releases its thread at each `wait` (await); the continuation is queued to the pool.
    Async,
    /// Blocks its thread on `.Result`; the completion needs another worker thread.
    SyncOverAsync,
}

/// A request class: a kind of page or call with its own handler.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Class {
    pub name: String,
    /// Share of the `[load]` arrivals (relative to the other classes' weights).
    pub weight: f64,
    /// Open loop: this class arrives on its own at this rate instead of taking a share of
    /// `[load]` (e.g. seed 003's forwarding requests ramping while the rest stays flat).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    /// Open loop: this class's own rate over time (like `load.schedule`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub schedule: Vec<RatePoint>,
    pub handler: HandlerKind,
    /// Shorthand for a single `cpu` step: the handler's service time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<DurationDist>,
    /// The handler's steps, run in order: `[{ cpu = "2ms" }, { wait = "exp(20ms)" }]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepSpec>,
    /// What a failed outgoing call (timeout, error, WSAENOBUFS) does to the request.
    pub on_call_failure: OnCallFailure,
    /// The class requests URLs of a Zipf catalogue (for the kernel cache).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub urls: Option<UrlSpec>,
    /// Responses may enter the HTTP.SYS kernel cache (static, anonymous, no query string:
    /// KB 817445). Needs `urls`.
    pub cacheable: bool,
    /// Where the requests come from (remote clients or this machine).
    pub origin: Origin,
    /// A local client's socket sets `SIO_LOOPBACK_FAST_PATH` (seed 002: opt-in per
    /// socket). The fast path needs both ends: it is used when this and
    /// `afd.loopback_fast_path` (the serving side) are true and no WFP callout is present.
    pub loopback_fast_path: bool,
    /// The class is a health probe with a timeout and failover.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeSpec>,
    /// The page's `EnableSessionState`: `false` (no session), `true` (the session's
    /// exclusive lock for the whole request) or `read_only` (no lock; waits for a writer).
    #[serde(skip_serializing_if = "EnableSessionState::is_false")]
    pub enable_session_state: EnableSessionState,
}

/// A page's `<%@ Page EnableSessionState="…" %>` (or `IRequiresSessionState` /
/// `IReadOnlySessionState`, MVC's `[SessionState(SessionStateBehavior…)]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EnableSessionState {
    /// `false`: the page does not use the session.
    #[default]
    False,
    /// `true`: the session's exclusive lock from `AcquireRequestState` to
    /// `ReleaseRequestState`.
    True,
    /// `ReadOnly`: no lock, but the page waits while a writer holds one.
    ReadOnly,
}

impl EnableSessionState {
    /// Accepted spellings, for error messages.
    pub const ACCEPTED: &'static [&'static str] = &["true", "false", "read_only"];

    fn is_false(&self) -> bool {
        *self == EnableSessionState::False
    }
}

impl Serialize for EnableSessionState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            EnableSessionState::False => s.serialize_bool(false),
            EnableSessionState::True => s.serialize_bool(true),
            EnableSessionState::ReadOnly => s.serialize_str("read_only"),
        }
    }
}

impl<'de> Deserialize<'de> for EnableSessionState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = EnableSessionState;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("true, false or \"read_only\"")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(if v {
                    EnableSessionState::True
                } else {
                    EnableSessionState::False
                })
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                match v.to_ascii_lowercase().replace('_', "").as_str() {
                    "true" => Ok(EnableSessionState::True),
                    "false" => Ok(EnableSessionState::False),
                    "readonly" => Ok(EnableSessionState::ReadOnly),
                    _ => Err(E::unknown_variant(v, EnableSessionState::ACCEPTED)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// What a failed outgoing call does to the request that made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnCallFailure {
    /// The request fails with the call's outcome (`outgoing_timeout`, `wsaenobufs`, …).
    Fail,
    /// The request goes on without the call's result (a degraded page); the call's
    /// failure is still counted under `outgoing`.
    Degrade,
}

impl Default for Class {
    /// A class as a `[[classes]]` table starts: no handler steps until the file gives
    /// `service` or `steps`.
    fn default() -> Self {
        Self {
            name: "default".into(),
            weight: 1.0,
            rate: None,
            schedule: Vec::new(),
            handler: HandlerKind::Sync,
            service: None,
            steps: Vec::new(),
            on_call_failure: OnCallFailure::Fail,
            urls: None,
            cacheable: false,
            origin: Origin::Remote,
            loopback_fast_path: true,
            probe: None,
            enable_session_state: EnableSessionState::False,
        }
    }
}

impl Class {
    /// The class a scenario without `[[classes]]` gets. Seed 003: "Synchronous request
    /// execution time is low 0-32 ms".
    pub fn seed003_sync_page() -> Self {
        Self {
            service: Some(DurationDist(Dist::Uniform { lo: 0.0, hi: 32e6 })),
            ..Self::default()
        }
    }

    /// Mean processor time of one request (its `cpu` steps, or `service`), ns.
    pub fn mean_cpu_ns(&self) -> f64 {
        match &self.service {
            Some(d) => d.0.mean(),
            None => self
                .steps
                .iter()
                .map(|st| st.cpu.as_ref().map_or(0.0, |d| d.0.mean()))
                .sum(),
        }
    }

    /// Mean time of one step's outgoing calls, ns, before any queueing: the backend's
    /// mean latency (at most the call's timeout) once for calls in parallel (a lower
    /// bound: the slowest of them ends the step), once per call in sequence.
    fn mean_call_ns(st: &StepSpec, backends: &[BackendSpec], request_timeout_ns: u64) -> f64 {
        // A `file` step counts as a read of the share: every lookup a miss (an upper bound).
        let Some(name) = st.call.as_ref().or(st.file.as_ref()) else {
            return 0.0;
        };
        let Some(b) = backends.iter().find(|b| &b.name == name) else {
            return 0.0;
        };
        let timeout = st.timeout.map_or(request_timeout_ns, |t| t.0) as f64;
        let one = b.latency.0.mean().min(timeout);
        let fanout = st.fanout.as_ref().map_or(1.0, |f| f.0.mean());
        if st.parallel.unwrap_or(true) {
            if fanout > 0.0 { one } else { 0.0 }
        } else {
            one * fanout
        }
    }

    /// Mean time of the handler's own steps (CPU demand, waits and outgoing calls), ns,
    /// before any queueing: the `service` time, or its steps' sum.
    pub fn mean_own_time_ns(&self, backends: &[BackendSpec], request_timeout_ns: u64) -> f64 {
        match &self.service {
            Some(d) => d.0.mean(),
            None => self
                .steps
                .iter()
                .map(|st| {
                    st.cpu
                        .as_ref()
                        .or(st.wait.as_ref())
                        .map_or(0.0, |d| d.0.mean())
                        + Self::mean_call_ns(st, backends, request_timeout_ns)
                })
                .sum(),
        }
    }

    /// Mean time a request holds a worker thread, ns: all of its own time for a sync or
    /// sync-over-async handler (the thread blocks through waits and calls), only its CPU
    /// for an async one (it gives the thread back at each await).
    pub fn mean_thread_time_ns(&self, backends: &[BackendSpec], request_timeout_ns: u64) -> f64 {
        match self.handler {
            HandlerKind::Async => self.mean_cpu_ns(),
            HandlerKind::Sync | HandlerKind::SyncOverAsync => {
                self.mean_own_time_ns(backends, request_timeout_ns)
            }
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
    /// Time blocked or awaited (I/O, downstream call, lock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<DurationDist>,
    /// Managed allocation (drives the GC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alloc: Option<SizeDist>,
    /// With `alloc`: the part kept referenced until the request ends (survives GCs while
    /// the request is in flight). Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain: Option<SizeDist>,
    /// An outgoing HTTP call to the named backend (`[[backends]]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<String>,
    /// IIS's static file handler reads the request's file (its URL) from the named backend
    /// (the share) through IIS's user-mode file cache (`[iis] object_cache_ttl`, …): a read
    /// on a miss, a metadata round trip (`iis.nas_round_trip`) when a cached file's
    /// `FileAttributeCheckThreshold` has passed, nothing on a hit. The class needs `urls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// With `call` or `file`: the cancel timeout of each call (seed 003: 120 ms); default
    /// `connections.request_timeout` (HttpWebRequest.Timeout, 100 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// With `call`: how many calls (fan-out), a count distribution; default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fanout: Option<CountDist>,
    /// With `call`: the fan-out's calls run in parallel (true, default) or one after another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel: Option<bool>,
}

/// How processors are shared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheduler {
    /// All threads share `logical_processors` (strict priorities, processor sharing).
    Shared,
    /// Every thread has a processor of its own: CPU demand is a plain delay. For
    /// textbook reductions and benchmarks only.
    Dedicated,
}

/// `[cpu]`: the machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cpu {
    /// Logical processors (`Environment.ProcessorCount`); seed 003: 8 cores, 16 logical.
    pub logical_processors: u32,
    pub scheduler: Scheduler,
    /// Processor time lost per context switch.
    pub context_switch_cost: Duration,
    /// Scheduling quantum among threads of equal priority when oversubscribed.
    pub quantum: Duration,
    /// Other load on the machine: `[{ at = "60s", duration = "5s", threads = 16, priority = 13 }]`.
    pub noise: Vec<CpuNoise>,
}

impl Default for Cpu {
    fn default() -> Self {
        let d = w3sim_models::cpu::CpuConfig::new(16);
        Self {
            logical_processors: 16,
            scheduler: Scheduler::Shared,
            context_switch_cost: Duration(d.context_switch_cost_ns),
            quantum: Duration(d.quantum_ns),
            noise: Vec::new(),
        }
    }
}

/// CPU-bound threads of another process (or the kernel) for a while.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuNoise {
    pub at: Duration,
    pub duration: Duration,
    /// Number of spinning threads (each uses at most one processor).
    pub threads: u32,
    /// Windows thread priority 0–31 (8 normal, 12 kernel delayed workers, 13 critical), or 32 for DPC level.
    pub priority: u8,
}

/// `[http_sys]`: the application pool's kernel request queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSys {
    /// `queueLength` (applicationPools/add): 10–65535, default 1000.
    pub queue_length: u32,
    /// Count requests already handed to the worker process against `queue_length`
    /// (KB 816995, default) instead of kernel-queued requests only (the docs). DOMAIN §3.1 ⚠.
    pub queue_counts_in_flight: bool,
    /// The site's `limits/@maxConnections` (4294967295 = no limit): 503 ConnLimit above it.
    pub max_connections: u32,
    /// The site's `limits/@connectionTimeout` (120 s): a request waiting longer in the pool's
    /// queue is expired (HTTPERR `Timer_AppPool`).
    pub connection_timeout: Duration,
}

impl Default for HttpSys {
    fn default() -> Self {
        Self {
            queue_length: 1000,
            queue_counts_in_flight: true,
            max_connections: u32::MAX,
            connection_timeout: Duration(120 * SECOND_NS),
        }
    }
}

/// `[iis]`: the worker process.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Iis {
    /// `serverRuntime/@appConcurrentRequestLimit` (503.2 above it).
    pub app_concurrent_request_limit: u32,
    /// `HKLM\…\InetInfo\Parameters\DoDirMonitoringForUNC`: IIS watches content on a UNC share
    /// for changes; each notification walks the share holding the config cache's lock.
    pub do_dir_monitoring_for_unc: bool,
    /// `HKLM\Software\Microsoft\ASP.NET\FCNMode`: 1 = ASP.NET's file-change notifications off.
    pub fcn_mode: u32,
    /// `applicationHost.config allowSubDirConfig`: look for web.config in every subdirectory.
    pub allow_sub_dir_config: bool,
    /// Changes on the UNC share that raise notifications.
    pub unc_change_notifications: Rate,
    /// Directories a notification walks with `allow_sub_dir_config`.
    pub unc_directories: u32,
    /// One metadata round trip to the NAS (`GetFileAttributesEx` over SMB).
    pub nas_round_trip: DurationDist,
    /// `InetInfo\Parameters\DisableMemoryCache`: no user-mode static file cache.
    pub disable_memory_cache: bool,
    /// `InetInfo\Parameters\ObjectCacheTTL`: a cached file not referenced for this long is
    /// phased out; 0 disables the cache, [`UNLIMITED_REGISTRY_SECONDS`] s or more = unlimited.
    pub object_cache_ttl: Duration,
    /// `InetInfo\Parameters\FileAttributeCheckThreshold`: a cached file last checked longer
    /// ago is checked against the share (one NAS round trip) before it is served;
    /// [`UNLIMITED_REGISTRY_SECONDS`] s or more = never. Not used with
    /// `do_dir_monitoring_for_unc` (change notifications instead).
    pub file_attribute_check_threshold: Duration,
    /// `InetInfo\Parameters\MaxCachedFileSize`: larger files are not cached.
    pub max_cached_file_size: Size,
    /// `InetInfo\Parameters\MemCacheSize`, MB; 0 = auto (no cap in the model).
    pub mem_cache_size: u32,
}

/// A registry DWORD of seconds at `0xFFFFFFFF`: "unlimited" for `ObjectCacheTTL` and
/// `FileAttributeCheckThreshold`.
pub const UNLIMITED_REGISTRY_SECONDS: u64 = 0xFFFF_FFFF;

/// The most `MemCacheSize` accepts, MB (IIS 6.0 registry reference: 0–2500).
pub const MAX_MEM_CACHE_SIZE_MB: u32 = 2500;

impl Iis {
    /// `ObjectCacheTTL` as the file cache takes it: `None` = unlimited.
    pub fn object_cache_ttl_ns(&self) -> Option<u64> {
        (self.object_cache_ttl.0 < UNLIMITED_REGISTRY_SECONDS * SECOND_NS)
            .then_some(self.object_cache_ttl.0)
    }

    /// `FileAttributeCheckThreshold` as the file cache takes it: `None` = never check
    /// (unlimited, or change notifications watch the share instead).
    pub fn file_attribute_check_threshold_ns(&self) -> Option<u64> {
        (!self.do_dir_monitoring_for_unc
            && self.file_attribute_check_threshold.0 < UNLIMITED_REGISTRY_SECONDS * SECOND_NS)
            .then_some(self.file_attribute_check_threshold.0)
    }
}

impl Default for Iis {
    fn default() -> Self {
        Self {
            app_concurrent_request_limit: 5000,
            do_dir_monitoring_for_unc: false,
            fcn_mode: 0,
            allow_sub_dir_config: true,
            unc_change_notifications: Rate(1.0 / 60.0),
            unc_directories: 500,
            nas_round_trip: DurationDist(Dist::Const(2e6)),
            disable_memory_cache: false,
            object_cache_ttl: Duration(30 * SECOND_NS),
            file_attribute_check_threshold: Duration(5 * SECOND_NS),
            max_cached_file_size: Size(262_144),
            mem_cache_size: 0,
        }
    }
}

/// `[aspnet]`: `<system.web><applicationPool>` in aspnet.config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AspNet {
    /// What runs the application: System.Web's ASP.NET (its `aspnet.config` throttles,
    /// `executionTimeout`, InProc session locks) or ASP.NET Core in process through the
    /// ASP.NET Core Module (none of them). Absent: the runtime's (`net48` → System.Web,
    /// `net6`/`net8` → ASP.NET Core): [`Scenario::hosting`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosting: Option<Hosting>,
    /// `maxConcurrentRequestsPerCPU`: 5000 (.NET 4.x), 12 (.NET 2.0/3.5 on IIS 7); 0 = no limit.
    pub max_concurrent_requests_per_cpu: u32,
    /// `requestQueueLimit` (queued + executing; 503 Server Too Busy above it).
    pub request_queue_limit: u32,
    /// `percentCpuLimit` (ASP.NET 4.7, default 90 there); 0 = off (.NET 4.5, seed 003).
    pub percent_cpu_limit: u32,
    /// `percentCpuLimitMinActiveRequestPerCpu`.
    pub percent_cpu_limit_min_active_request_per_cpu: u32,
    /// `httpRuntime/executionTimeout` (110 s): a request running synchronously longer is
    /// aborted (the request timeout manager, every 15 s); a session lock held longer is
    /// broken by the next request that tries it.
    pub execution_timeout: Duration,
    /// `<compilation debug="true">`: executionTimeout aborts nothing (session locks are
    /// still broken after it).
    pub compilation_debug: bool,
}

impl Default for AspNet {
    fn default() -> Self {
        Self {
            hosting: None,
            max_concurrent_requests_per_cpu: 5000,
            request_queue_limit: 5000,
            percent_cpu_limit: 0,
            percent_cpu_limit_min_active_request_per_cpu: 100,
            execution_timeout: Duration(110 * SECOND_NS),
            compilation_debug: false,
        }
    }
}

/// `[session_state]`: `<system.web><sessionState mode="InProc">` and the session lock's
/// polling (`SessionStateModule`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionState {
    /// Active sessions: an open-loop request of a class with `enable_session_state` belongs
    /// to one of them at random; closed-loop user `u` to session `u mod sessions`.
    pub sessions: u64,
    /// `HKLM\SOFTWARE\Microsoft\ASP.NET\SessionStateLockedItemPollInterval` (500 ms):
    /// how often a request that found its session locked tries again.
    pub session_state_locked_item_poll_interval: Duration,
    /// `aspnet:RequestQueueLimitPerSession`: requests that may poll one session; the next
    /// fails (HTTP 500). 50 for apps targeting .NET 4.7+; Int32.MaxValue (no limit) before.
    pub request_queue_limit_per_session: u32,
}

/// `Int32.MaxValue`: `RequestQueueLimitPerSession` off.
pub const NO_SESSION_QUEUE_LIMIT: u32 = i32::MAX as u32;

impl Default for SessionState {
    fn default() -> Self {
        Self {
            sessions: 1000,
            session_state_locked_item_poll_interval: Duration(500 * MILLISECOND_NS),
            request_queue_limit_per_session: NO_SESSION_QUEUE_LIMIT,
        }
    }
}

/// Thread-pool implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Runtime {
    /// .NET Framework 4.x native pool (same algorithm as CoreCLR ≤ 3.1).
    Net48,
    /// .NET 6 PortableThreadPool with cooperative blocking compensation; IO completions on
    /// the native IOCP pool.
    Net6,
    /// .NET 7+ on Windows: net6's pool, but IO completion poller threads hand completions
    /// to the worker pool (no IOCP pool; min/max IO threads are legacy values).
    Net8,
}

impl Runtime {
    /// The name a scenario file writes.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Net48 => "net48",
            Runtime::Net6 => "net6",
            Runtime::Net8 => "net8",
        }
    }
}

/// The `[thread_pool]` keys that only `runtime = "net8"` reads (the IO completion pollers).
pub const NET8_POLLER_KEYS: &[&str] = &[
    "processors_per_io_poller",
    "io_completion_ports",
    "inline_io_completions",
];

/// The `[thread_pool]` keys of the IOCP pool, which net8 does not have.
pub const IOCP_KEYS: &[&str] = &["min_io_threads", "max_io_threads"];

fn is_twelve(v: &u32) -> bool {
    *v == 12
}
fn is_one(v: &u32) -> bool {
    *v == 1
}
fn is_false(v: &bool) -> bool {
    !*v
}

/// The gate thread's timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateTimer {
    /// Windows: a periodic waitable timer on a fixed 500 ms grid.
    Periodic,
    /// Linux: sleeps 500 ms after each check (ticks drift later).
    Sleep,
}

/// `[thread_pool]`: the CLR thread pool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThreadPool {
    pub runtime: Runtime,
    /// `minWorkerThreads` / `ThreadPool.SetMinThreads`; 0 = the number of logical processors.
    pub min_worker_threads: u32,
    /// `maxWorkerThreads` / `SetMaxThreads`; 0 = 100 × logical processors (processModel autoConfig).
    pub max_worker_threads: u32,
    /// `minIoThreads`; 0 = the number of logical processors.
    pub min_io_threads: u32,
    /// `maxIoThreads`; 0 = 100 × logical processors (processModel autoConfig, DOMAIN §4.4).
    pub max_io_threads: u32,
    pub gate_timer: GateTimer,
    /// The pool's thread-count goal at the start, for a process that has run the load
    /// for a while (0: its minimum, as a freshly started process).
    pub warm_worker_threads: u32,
    /// `ThreadPool_DisableStarvationDetection`: no gate-thread starvation injection (+1
    /// thread when nothing was dequeued for 500 ms).
    pub disable_starvation_detection: bool,
    /// `HillClimbing_Disable`: no hill climbing.
    pub hill_climbing_disable: bool,
    /// Above the minimum, at most one new worker thread per this long; 0s: a goal increase
    /// is applied at once (chained injection, the current source). ⚠ DOMAIN §5.5.
    pub injection_pacing: Duration,
    /// Time to create a thread before it can take work.
    pub thread_creation_cost: Duration,
    /// `ThreadPool_ThreadTimeoutMs`: idle worker threads retire after this long; "0s" = never.
    pub thread_timeout: Duration,
    /// CPU an IO-completion thread spends on an async completion before it posts the continuation.
    pub io_completion_cpu: Duration,
    /// CPU a worker thread spends running a sync-over-async continuation that releases a blocked thread.
    pub continuation_cpu: Duration,
    /// .NET Core 3.x tiered compilation: the runtime's own work items on the pool (the
    /// tiering-delay callbacks and the tier-1 `OptimizeMethods` items). Off for .NET Framework.
    pub tiered_compilation: bool,
    /// net8: `System.Threading.ThreadPool.ProcessorsPerIOPollerThread` (12). Written only
    /// when set, so that net48 and net6 scenarios are written as before.
    #[serde(skip_serializing_if = "is_twelve")]
    pub processors_per_io_poller: u32,
    /// net8: `System.Threading.ThreadPool.IOCompletionPortCount` (1).
    #[serde(skip_serializing_if = "is_one")]
    pub io_completion_ports: u32,
    /// net8: `DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1` (false): the pollers run the
    /// callbacks themselves.
    #[serde(skip_serializing_if = "is_false")]
    pub inline_io_completions: bool,
    /// `TC_CallCountingDelayMs`: first work → first callback, and re-arming callback → next.
    pub tiering_delay: Duration,
    /// Callbacks that find fresh tier-0 activity and re-arm the delay.
    pub tiering_delay_extensions: u32,
    /// Mean run time of a re-arming callback (uniform over ±50 %).
    pub tiering_callback_time: Duration,
    /// `OptimizeMethods` items queued after the delay ended.
    pub tiering_promotions: u32,
    /// Gap from the delay-ending callback to the first `OptimizeMethods` item; doubles for each next one.
    pub tiering_promotion_gap: Duration,
    /// Run time of the delay-ending callback and of each `OptimizeMethods` item: uniform in [min, max].
    pub tiering_optimize_time_min: Duration,
    pub tiering_optimize_time_max: Duration,
}

impl Default for ThreadPool {
    fn default() -> Self {
        let d = w3sim_models::thread_pool::ThreadPoolConfig::new(16);
        let tc = w3sim_models::thread_pool::TieredCompilation::default();
        Self {
            runtime: Runtime::Net48,
            min_worker_threads: 0,
            max_worker_threads: 0,
            min_io_threads: 0,
            max_io_threads: 0,
            gate_timer: GateTimer::Periodic,
            warm_worker_threads: 0,
            disable_starvation_detection: false,
            hill_climbing_disable: false,
            injection_pacing: Duration(0),
            thread_creation_cost: Duration(d.thread_creation_cost_ns),
            thread_timeout: Duration(d.thread_idle_timeout_ns.unwrap_or(0)),
            io_completion_cpu: Duration(20_000),
            continuation_cpu: Duration(20_000),
            tiered_compilation: false,
            processors_per_io_poller: d.processors_per_io_poller,
            io_completion_ports: d.io_completion_ports,
            inline_io_completions: d.inline_io_completions,
            tiering_delay: Duration(tc.delay_ns),
            tiering_delay_extensions: tc.delay_extensions,
            tiering_callback_time: Duration((tc.callback_ns.0 + tc.callback_ns.1) / 2),
            tiering_promotions: tc.promotion_gaps_ns.len() as u32,
            tiering_promotion_gap: Duration(tc.promotion_gaps_ns.first().copied().unwrap_or(0)),
            tiering_optimize_time_min: Duration(tc.optimize_ns.0),
            tiering_optimize_time_max: Duration(tc.optimize_ns.1),
        }
    }
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
            cpus.saturating_mul(100)
        } else {
            self.max_worker_threads
        }
    }
}

/// `[gc]`: the .NET garbage collector (`<gcServer>`, `<gcConcurrent>`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Gc {
    /// `<gcServer enabled>`: server GC (the IIS/ASP.NET default on several CPUs); false =
    /// workstation GC.
    pub gc_server: bool,
    /// `<gcConcurrent enabled>`: background gen2 (server from .NET 4.5, workstation from
    /// 4.0); false = blocking gen2 (server GC on .NET 4.0).
    pub gc_concurrent: bool,
    /// `GCgen0size`: gen0's minimum budget per heap; "0B" = the flavour's default.
    pub gc_gen0_size: Size,
    /// Periodic in-memory cache reload (seed 003); omitted = none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_reload: Option<CacheReload>,
}

impl Default for Gc {
    fn default() -> Self {
        Self {
            gc_server: true,
            gc_concurrent: true,
            gc_gen0_size: Size(0),
            cache_reload: None,
        }
    }
}

/// A cache rebuilt in memory every `every`, starting at `at`: `size` of new long-lived
/// objects replaces the previous copy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheReload {
    pub at: Duration,
    pub every: Duration,
    pub size: Size,
}

/// What hosts the application in the worker process (`aspnet.hosting`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hosting {
    /// ASP.NET on the .NET Framework (System.Web, integrated pipeline): `aspnet.config`'s
    /// throttles and native queue, `requestQueueLimit`, `executionTimeout`'s abort, InProc
    /// session locks (DOMAIN §4.2, §4.5).
    SystemWeb,
    /// ASP.NET Core in process (`hostingModel="inprocess"`, the ASP.NET Core Module): the
    /// request goes from IIS to the app's thread pool with none of System.Web's limits;
    /// there is no `Thread.Abort` (.NET Core) and its sessions do not lock.
    AspnetCore,
}

impl Hosting {
    /// What a runtime hosts when `aspnet.hosting` is absent.
    pub fn default_for(runtime: Runtime) -> Self {
        match runtime {
            Runtime::Net48 => Hosting::SystemWeb,
            Runtime::Net6 | Runtime::Net8 => Hosting::AspnetCore,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Hosting::SystemWeb => "system_web",
            Hosting::AspnetCore => "aspnet_core",
        }
    }
}

/// The `[aspnet]` keys only System.Web reads (`aspnet.hosting = "system_web"`).
pub const SYSTEM_WEB_KEYS: &[&str] = &[
    "max_concurrent_requests_per_cpu",
    "request_queue_limit",
    "percent_cpu_limit",
    "percent_cpu_limit_min_active_request_per_cpu",
    "execution_timeout",
    "compilation_debug",
];

/// Which HTTP client the application's outgoing calls go through (`connections.client`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionClient {
    /// .NET Framework: `HttpWebRequest` / `HttpClient` over `ServicePoint` (DOMAIN §6.1).
    ServicePoint,
    /// .NET Core 2.1+ / .NET 5+: `HttpClient` over `SocketsHttpHandler` (DOMAIN §6.2).
    SocketsHttpHandler,
}

impl ConnectionClient {
    /// The `ServicePoint` settings of `[connections]` and their SocketsHttpHandler
    /// counterparts (what to set instead); `connect_timeout` has none on the other side.
    pub const SERVICE_POINT_KEYS: &'static [(&'static str, Option<&'static str>)] = &[
        (
            "default_connection_limit",
            Some("max_connections_per_server"),
        ),
        (
            "max_service_point_idle_time",
            Some("pooled_connection_idle_timeout"),
        ),
        (
            "connection_lease_timeout",
            Some("pooled_connection_lifetime"),
        ),
    ];
    /// The `SocketsHttpHandler` settings of `[connections]` and their ServicePoint
    /// counterparts.
    pub const SOCKETS_HTTP_HANDLER_KEYS: &'static [(&'static str, Option<&'static str>)] = &[
        (
            "max_connections_per_server",
            Some("default_connection_limit"),
        ),
        (
            "pooled_connection_idle_timeout",
            Some("max_service_point_idle_time"),
        ),
        (
            "pooled_connection_lifetime",
            Some("connection_lease_timeout"),
        ),
        ("connect_timeout", None),
    ];

    /// The settings of `[connections]` this client ignores, with the counterpart it reads.
    pub fn foreign_keys(self) -> &'static [(&'static str, Option<&'static str>)] {
        match self {
            ConnectionClient::ServicePoint => Self::SOCKETS_HTTP_HANDLER_KEYS,
            ConnectionClient::SocketsHttpHandler => Self::SERVICE_POINT_KEYS,
        }
    }

    /// Its value in a scenario file.
    pub fn name(self) -> &'static str {
        match self {
            ConnectionClient::ServicePoint => "service_point",
            ConnectionClient::SocketsHttpHandler => "sockets_http_handler",
        }
    }
}

/// `[connections]`: the outgoing HTTP client's pool settings: .NET Framework's
/// `ServicePointManager` or .NET Core's `SocketsHttpHandler` (`client`), and the call
/// timeout both share.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Connections {
    /// Which client: absent = the runtime's (`thread_pool.runtime` net48 → ServicePoint,
    /// net6 and net8 → SocketsHttpHandler); see [`Scenario::connection_client`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<ConnectionClient>,
    /// `ServicePointManager.DefaultConnectionLimit` / `<connectionManagement maxconnection>`:
    /// connections per backend endpoint. 0 = unlimited (Int32.MaxValue: .NET 4.5+ under
    /// processModel autoConfig, seed 003); 2 outside ASP.NET; 10 under ASP.NET without
    /// autoConfig; 12 × CPUs under autoConfig on .NET 2.0–4.0 (DOMAIN §6.1).
    pub default_connection_limit: u32,
    /// `ServicePointManager.MaxServicePointIdleTime`: idle pooled connections are closed by
    /// this side after it (their ports go to TIME_WAIT).
    pub max_service_point_idle_time: Duration,
    /// `ServicePoint.ConnectionLeaseTimeout`; "0s" = -1 (never).
    pub connection_lease_timeout: Duration,
    /// `HttpWebRequest.Timeout` / `HttpClient.Timeout`: the longest a call waits (for a
    /// connection, then for the response) when its step gives no `timeout`.
    pub request_timeout: Duration,
    /// `SocketsHttpHandler.MaxConnectionsPerServer`; 0 = int.MaxValue (its default).
    pub max_connections_per_server: u32,
    /// `SocketsHttpHandler.PooledConnectionIdleTimeout` (60 s on .NET 6+, 120 s on .NET
    /// Core 2.1–5); "0s" = infinite.
    pub pooled_connection_idle_timeout: Duration,
    /// `SocketsHttpHandler.PooledConnectionLifetime`; "0s" = infinite (its default).
    pub pooled_connection_lifetime: Duration,
    /// `SocketsHttpHandler.ConnectTimeout`; "0s" = infinite (its default).
    pub connect_timeout: Duration,
}

impl Default for Connections {
    fn default() -> Self {
        Self {
            client: None,
            default_connection_limit: 0,
            max_service_point_idle_time: Duration(100_000_000_000),
            connection_lease_timeout: Duration(0),
            request_timeout: Duration(100_000_000_000),
            max_connections_per_server: 0,
            pooled_connection_idle_timeout: Duration(60_000_000_000),
            pooled_connection_lifetime: Duration(0),
            connect_timeout: Duration(0),
        }
    }
}

/// `[[backends]]`: a downstream service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackendSpec {
    pub name: String,
    /// Time the backend takes to answer once it serves the call.
    pub latency: DurationDist,
    /// Calls it serves at once; the rest queue there (0 = unlimited).
    pub capacity: u32,
    /// Fraction of calls answered with an error.
    pub error_rate: f64,
    /// TCP handshake time of a new connection to it.
    pub connect_time: DurationDist,
    /// Connections to it from this server; 0 = `connections.default_connection_limit`
    /// (unlimited if the backend is on this machine: `loopback`).
    pub max_connections: u32,
    /// Keep-alive connection reuse; false = a new connection per call that this side closes
    /// (`new HttpClient()` per request, `Connection: close`).
    pub keep_alive: bool,
    /// The backend is on this machine (127.0.0.1 or a local IP): no connection limit
    /// unless set explicitly (`ServicePoint.LoopbackConnectionLimit`).
    pub loopback: bool,
    /// A call cancelled at its timeout aborts its connection (`HttpWebRequest.Abort`: this
    /// side closes it, its port goes to TIME_WAIT). false: the late response is read and
    /// the connection goes back to the pool (a client that keeps its pooled connections).
    pub abort_on_cancel: bool,
    /// With `loopback`: this application's sockets to the backend set
    /// `SIO_LOOPBACK_FAST_PATH`; the fast path is used when the backend's side does too
    /// (`afd.loopback_fast_path`) and no WFP callout is present. Default false: .NET
    /// Framework's HttpWebRequest does not set it (DOMAIN §2.2).
    pub loopback_fast_path: bool,
}

impl Default for BackendSpec {
    fn default() -> Self {
        Self {
            name: "backend".into(),
            latency: DurationDist(Dist::Exp { mean: 20e6 }),
            capacity: 0,
            error_rate: 0.0,
            connect_time: DurationDist(Dist::Const(500_000.0)),
            max_connections: 0,
            keep_alive: true,
            loopback: false,
            abort_on_cancel: true,
            loopback_fast_path: false,
        }
    }
}

/// `[tcp]`: the TCP/IP stack's port and connection settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tcp {
    /// First dynamic (ephemeral) port: 49152 on Vista/2008+, 1025 on 2003.
    pub dynamic_port_start: u32,
    /// Number of dynamic ports: 16384 on Vista/2008+ (`netsh int ipv4 set dynamicport tcp
    /// num=`); 3976 with the 2003 `MaxUserPort = 5000` profile.
    pub dynamic_port_count: u32,
    /// `TcpTimedWaitDelay`: how long the side that closed first keeps the port in TIME_WAIT.
    pub tcp_timed_wait_delay: Duration,
    /// `SO_REUSE_UNICASTPORT`: when no port is free, reuse a port in TIME_WAIT to another
    /// remote endpoint (Windows 10/2016+ behaviour; the same endpoint gives WSAEADDRINUSE
    /// 10048).
    pub so_reuse_unicastport: bool,
    /// Clients reuse their connections (keep-alive) instead of one per request.
    pub incoming_keep_alive: bool,
    /// With keep-alive: client connections held open to this server (they count in
    /// `TCPv4\Connections Established`; seed 003 saw 2–3k normally).
    pub incoming_keep_alive_connections: u32,
    /// Who closes a client connection first, without keep-alive or when a kept-alive one
    /// ends (`incoming_requests_per_connection`): the server (its TCB then stays in TIME_WAIT
    /// on this machine, on port 80) or, false, the client.
    pub incoming_server_closes: bool,
    /// With keep-alive: requests a client connection carries on average before it is closed
    /// and the client opens a new one (every this many responses one connection turns
    /// over); 0 = the connections stay open for the whole run. Seed 003: ~1000 requests/s
    /// and "25 connections/sec" new in TIME_WAIT, i.e. about 40.
    pub incoming_requests_per_connection: u32,
}

impl Default for Tcp {
    fn default() -> Self {
        Self {
            dynamic_port_start: 49152,
            dynamic_port_count: 16384,
            tcp_timed_wait_delay: Duration(240_000_000_000),
            so_reuse_unicastport: false,
            incoming_keep_alive: true,
            incoming_keep_alive_connections: 0,
            incoming_server_closes: false,
            incoming_requests_per_connection: 0,
        }
    }
}

/// A class's URLs: a catalogue with Zipf popularity (`[[classes]] urls = { … }`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UrlSpec {
    /// Distinct URLs.
    pub count: u64,
    /// Zipf exponent s (popularity of rank k ∝ 1/k^s).
    pub zipf: f64,
    /// Mean response size (sizes are lognormal per URL, stable across the run).
    pub mean_size: Size,
}

/// `[kernel_cache]`: the HTTP.SYS kernel-mode response cache (`HKLM\…\Http\Parameters`,
/// `system.webServer/serverRuntime`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KernelCache {
    /// `UriEnableCache`.
    pub uri_enable_cache: bool,
    /// `frequentHitThreshold`: responses within `frequent_hit_time_period` before a URL is cached.
    pub frequent_hit_threshold: u32,
    /// `frequentHitTimePeriod`.
    pub frequent_hit_time_period: Duration,
    /// `UriMaxUriBytes`: larger responses are not cached.
    pub uri_max_uri_bytes: Size,
    /// `UriMaxCacheMegabyteCount`: the cache's cap in MB; 0 = auto (no cap modelled).
    pub uri_max_cache_megabyte_count: u32,
    /// `UriScavengerPeriod`: entries not hit between two passes are evicted.
    pub uri_scavenger_period: Duration,
    /// `HttpCachePolicyTimeToLive` SecondsToLive (seed 001: 900 s); "0s" = user-invalidates (no TTL).
    pub time_to_live: Duration,
    /// A recycle (or idle-timeout exit) flushes the pool's kernel cache entries (DOMAIN §3.3 ⚠).
    pub flush_kernel_cache_on_recycle: bool,
    /// Kernel CPU to serve a hit (at DPC level).
    pub hit_cpu: Duration,
}

impl Default for KernelCache {
    fn default() -> Self {
        Self {
            uri_enable_cache: true,
            frequent_hit_threshold: 2,
            frequent_hit_time_period: Duration(10_000_000_000),
            uri_max_uri_bytes: Size(262_144),
            uri_max_cache_megabyte_count: 0,
            uri_scavenger_period: Duration(120_000_000_000),
            time_to_live: Duration(0),
            flush_kernel_cache_on_recycle: true,
            hit_cpu: Duration(20_000),
        }
    }
}

/// IIS `startMode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartMode {
    OnDemand,
    AlwaysRunning,
}

/// `failure/@loadBalancerCapabilities`: how HTTP.SYS refuses a request it cannot give the
/// pool (queue full, pool stopped).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadBalancerCapabilities {
    /// A 503 (the default).
    HttpLevel,
    /// The connection is closed, for balancers that only see TCP.
    TcpLevel,
}

/// `[app_pool]`: the application pool's worker-process lifecycle (applicationPools/add).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AppPool {
    /// The worker process is running (warm) when the run begins; false: it starts with the
    /// first request (or at once with `always_running`), paying the cold start.
    pub running_at_start: bool,
    /// `processModel/@idleTimeout`; "0s" = disabled.
    pub idle_timeout: Duration,
    /// `recycling/periodicRestart/@time`; "0s" = disabled.
    pub periodic_restart: Duration,
    /// Recycles on demand (or `periodicRestart/schedule`) at these times.
    pub recycle_at: Vec<Duration>,
    /// `disallowOverlappingRotation`: false = the new process starts while the old drains.
    pub disallow_overlapping_rotation: bool,
    /// Time from process start until it takes requests (JIT, application start).
    pub cold_start: Duration,
    /// Processor time the cold start uses (one thread).
    pub cold_start_cpu: Duration,
    /// `processModel/@shutdownTimeLimit`.
    pub shutdown_time_limit: Duration,
    /// `processModel/@startupTimeLimit`.
    pub startup_time_limit: Duration,
    /// `failure/@rapidFailProtection`.
    pub rapid_fail_protection: bool,
    /// `failure/@rapidFailProtectionMaxCrashes`.
    pub rapid_fail_protection_max_crashes: u32,
    /// `failure/@rapidFailProtectionInterval`.
    pub rapid_fail_protection_interval: Duration,
    pub start_mode: StartMode,
    /// Worker-process crashes injected at these times.
    pub crash_at: Vec<Duration>,
    /// `failure/@loadBalancerCapabilities`.
    pub load_balancer_capabilities: LoadBalancerCapabilities,
}

impl Default for AppPool {
    fn default() -> Self {
        Self {
            running_at_start: true,
            idle_timeout: Duration(20 * 60 * 1_000_000_000),
            periodic_restart: Duration(1740 * 60 * 1_000_000_000),
            recycle_at: Vec::new(),
            disallow_overlapping_rotation: false,
            cold_start: Duration(5_000_000_000),
            cold_start_cpu: Duration(3_000_000_000),
            shutdown_time_limit: Duration(90_000_000_000),
            startup_time_limit: Duration(90_000_000_000),
            rapid_fail_protection: true,
            rapid_fail_protection_max_crashes: 5,
            rapid_fail_protection_interval: Duration(300_000_000_000),
            start_mode: StartMode::OnDemand,
            crash_at: Vec::new(),
            load_balancer_capabilities: LoadBalancerCapabilities::HttpLevel,
        }
    }
}

/// Where a class's requests come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Over the network: through the NIC's receive rings and DPCs (when `[nic]` is enabled).
    Remote,
    /// From this machine (127.0.0.1 or a local IP): through AFD's loopback work items on the
    /// kernel's delayed worker threads (seed 000), unless the fast path applies (seed 002).
    Local,
}

/// A health probe: a client that gives up after `timeout` and fails the service over after
/// `failover_after` timeouts in a row (seed 000: the cluster's IsAlive check).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeSpec {
    pub timeout: Duration,
    pub failover_after: u32,
}

/// `[afd]`: loopback traffic through AFD work items (DOMAIN §2.1, §2.2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Afd {
    /// Dynamic kernel worker threads of the delayed work queue (up to 16).
    pub max_dynamic_workers: u32,
    /// `HKLM\SYSTEM\…\Session Manager\Executive\AdditionalDelayedWorkerThreads`.
    pub additional_delayed_worker_threads: u32,
    /// CPU of one loopback work item, at priority 12.
    pub work_item_cpu: Duration,
    /// Loopback traffic is queued as work items for the delayed worker threads (the
    /// mechanism seed 000 describes on Windows Server 2003). ⚠ DOMAIN §2.1: not confirmed
    /// for 2008 R2's new TCP/IP stack; false: loopback goes straight through, like remote.
    pub loopback_work_items: bool,
    /// This server's sockets set `SIO_LOOPBACK_FAST_PATH` (Windows Server 2012+): no work
    /// items for the clients that set it too.
    pub loopback_fast_path: bool,
    /// A WFP callout driver sits on the connections: the fast path silently does not apply.
    pub wfp_callout_present: bool,
    /// A filter driver's own work items per second on the same queue; 0 = none (seed 000's firewall).
    pub filter_items: Rate,
    /// The exclusive executive resource each filter item holds.
    pub filter_lock_hold: Duration,
    /// The holder works on a processor (at priority 12) while it holds the resource, so
    /// higher-priority CPU load stretches the holds; false: the hold is elapsed time.
    pub filter_lock_hold_cpu: bool,
}

impl Default for Afd {
    fn default() -> Self {
        Self {
            max_dynamic_workers: 16,
            additional_delayed_worker_threads: 0,
            work_item_cpu: Duration(20_000),
            loopback_work_items: true,
            loopback_fast_path: false,
            wfp_callout_present: false,
            filter_items: Rate(0.0),
            filter_lock_hold: Duration(1_000_000),
            filter_lock_hold_cpu: true,
        }
    }
}

/// `[nic]`: the network adapter's receive side (DOMAIN §1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Nic {
    /// Model the receive rings and DPCs for remote requests (off: they arrive at HTTP.SYS directly).
    pub enabled: bool,
    /// `NumberOfReceiveQueues`: RSS queues (each with its ring and DPC).
    pub number_of_receive_queues: u32,
    /// Receive descriptors per ring (driver-specific).
    pub receive_buffers: u32,
    /// DPC CPU per frame.
    pub dpc_cpu_per_packet: Duration,
    /// Frames per request.
    pub packets_per_request: u32,
    /// TCP's initial retransmission timeout (doubling per retry).
    pub initial_rto: Duration,
}

impl Default for Nic {
    fn default() -> Self {
        Self {
            enabled: false,
            number_of_receive_queues: 2,
            receive_buffers: 512,
            dpc_cpu_per_packet: Duration(2_000),
            packets_per_request: 1,
            initial_rto: Duration(3_000_000_000),
        }
    }
}

/// What a closed valve turns off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValveAction {
    /// `call` steps are skipped (the page is served without the outgoing calls).
    SkipOutgoingCalls,
}

/// Counters a valve can read.
pub const VALVE_COUNTERS: &[&str] = &[
    "ASP.NET\\Requests Queued",
    "ASP.NET\\Requests Current",
    "System.Runtime\\ThreadPool Queue Length",
    "w3sim\\HTTP.SYS Outstanding Requests",
    "w3sim\\Ports In TIME_WAIT",
];

/// `[[valves]]`: a control loop inside the application: every `period` it reads `counter`;
/// above `close_above` it closes (turning `action` on), below `open_below` it opens again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValveSpec {
    /// A perfmon counter name: one of `VALVE_COUNTERS`.
    pub counter: String,
    pub period: Duration,
    pub close_above: f64,
    pub open_below: f64,
    pub action: ValveAction,
}

/// `[farm]`: the servers behind the load balancer, in groups.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Farm {
    /// `[[farm.servers]]`: each group is `count` servers built from this file with its
    /// `set` overrides applied. Empty: a single server (no load balancer).
    pub servers: Vec<ServerGroup>,
}

/// A group of identical servers of a farm.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerGroup {
    /// The server's name; with `count > 1` the servers are `name-1`, `name-2`, …
    /// unless `names` names them (then `name` may be left out).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// How many servers (default 1, or as many as `names`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// The servers' names, one each (optional).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Overrides for these servers, written like `--set`: `["tcp.dynamic_port_count=32768"]`.
    #[serde(default)]
    pub set: Vec<String>,
    /// The balancer's weight of each of these servers (ARR's weighted round robin, F5's
    /// ratio): a server of weight 2 gets twice the requests of one of weight 1.
    #[serde(default = "one_u32", skip_serializing_if = "is_one_u32")]
    pub weight: u32,
}

fn one_u32() -> u32 {
    1
}

fn is_one_u32(w: &u32) -> bool {
    *w == 1
}

impl ServerGroup {
    /// The number of servers in the group.
    pub fn servers(&self) -> u32 {
        self.count.unwrap_or(self.names.len().max(1) as u32)
    }
}

/// Keys that describe the farm and its clients, not one server: a server group cannot
/// override them.
pub const FARM_WIDE_KEYS: &[&str] = &[
    "name",
    "description",
    "seed",
    "duration",
    "warmup",
    "sample_interval",
    "load",
    "farm",
    "load_balancer",
    "clients",
];

/// How the load balancer picks a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LbPolicy {
    RoundRobin,
    LeastConnections,
    Random,
}

/// What the load balancer does with every server out of rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenAllOut {
    /// It answers 503 itself.
    Reject,
    /// It sends to all servers anyway.
    FailOpen,
}

/// `[load_balancer]`: routing and health checks of a farm (seed 003).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoadBalancerSpec {
    pub policy: LbPolicy,
    /// Time between health probes to each server; 0s: no probes.
    pub probe_interval: Duration,
    /// A probe not answered 200 within this fails.
    pub probe_timeout: Duration,
    /// The class of the probe request; "" = the first class.
    pub probe_class: String,
    /// How long a failing server stays out before its next passing probe reinstates it.
    pub hold_time: Duration,
    /// Whether a 503 answer to a user request takes the server out (seed 003).
    pub remove_on_503: bool,
    pub when_all_out: WhenAllOut,
}

impl Default for LoadBalancerSpec {
    fn default() -> Self {
        Self {
            policy: LbPolicy::RoundRobin,
            probe_interval: Duration(5_000_000_000),
            probe_timeout: Duration(2_000_000_000),
            probe_class: String::new(),
            hold_time: Duration(15_000_000_000),
            remove_on_503: true,
            when_all_out: WhenAllOut::Reject,
        }
    }
}

/// Which failed attempts a client retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RetryOn {
    /// A 503 from a server or from the load balancer.
    #[serde(rename = "503")]
    Unavailable,
    /// Any other failure (500, connection dropped).
    #[serde(rename = "error")]
    Error,
    /// The client's own timeout.
    #[serde(rename = "timeout")]
    Timeout,
}

/// How retries are spread.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JitterSpec {
    None,
    Full,
    Equal,
}

/// `[clients]`: what a client does when an attempt fails or takes too long.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Clients {
    /// The client gives up on an attempt after this; 0s: never.
    pub timeout: Duration,
    /// Retries after the first attempt.
    pub retries: u32,
    pub retry_on: Vec<RetryOn>,
    /// Wait before the first retry; each next one waits `backoff_multiplier` times longer.
    pub backoff: Duration,
    pub backoff_multiplier: f64,
    pub max_backoff: Duration,
    pub jitter: JitterSpec,
    /// Retry budget (Finagle's `percentCanRetry`): retries per 100 user requests; 0: no
    /// budget (only `retries` limits them).
    pub retry_budget_percent: f64,
    /// Retries the budget allows per second whatever the load (`minRetriesPerSec`).
    pub retry_budget_min_per_second: f64,
    /// How long a user request's deposit and a retry's withdrawal count (`ttl`).
    pub retry_budget_ttl: Duration,
}

impl Default for Clients {
    fn default() -> Self {
        Self {
            timeout: Duration(0),
            retries: 0,
            retry_on: vec![RetryOn::Unavailable, RetryOn::Error, RetryOn::Timeout],
            backoff: Duration(100_000_000),
            backoff_multiplier: 2.0,
            max_backoff: Duration(10_000_000_000),
            jitter: JitterSpec::None,
            retry_budget_percent: 0.0,
            retry_budget_min_per_second: 10.0,
            retry_budget_ttl: Duration(10_000_000_000),
        }
    }
}

impl Scenario {
    /// Whether a class reads static files through IIS's file cache (a `file` step), the
    /// only users of the `[iis]` file-cache settings.
    pub fn has_file_steps(&self) -> bool {
        self.classes
            .iter()
            .any(|c| c.steps.iter().any(|st| st.file.is_some()))
    }

    /// Whether the run needs the farm driver: several servers, a load balancer, or
    /// clients that time out or retry.
    pub fn is_farm(&self) -> bool {
        !self.farm.servers.is_empty() || self.clients.timeout.0 > 0 || self.clients.retries > 0
    }

    /// The farm's servers in order: (name, group index).
    pub fn server_names(&self) -> Vec<(String, usize)> {
        if self.farm.servers.is_empty() {
            return vec![(self.name.clone(), 0)];
        }
        let mut out = Vec::new();
        for (g, grp) in self.farm.servers.iter().enumerate() {
            let count = grp.servers();
            if !grp.names.is_empty() {
                for k in 0..count as usize {
                    let name = grp
                        .names
                        .get(k)
                        .cloned()
                        .unwrap_or_else(|| format!("{}-{}", grp.name, k + 1));
                    out.push((name, g));
                }
            } else if count == 1 {
                out.push((grp.name.clone(), g));
            } else {
                for k in 1..=count {
                    out.push((format!("{}-{k}", grp.name), g));
                }
            }
        }
        out
    }

    /// The same scenario with `load.scale` folded into its open-loop rates (scale 1), as
    /// the arrival sources apply it: what a description of the offered load shows.
    pub fn with_load_scale_applied(&self) -> Scenario {
        let mut s = self.clone();
        let k = std::mem::replace(&mut s.load.scale, 1.0);
        // 306.6/s × 1.5 reads 459.9/s, not 459.90000000000003/s.
        let scale = |r: &mut Rate| r.0 = crate::sweep::spec::round_sig(r.0 * k, 12);
        scale(&mut s.load.rate);
        s.load.schedule.iter_mut().for_each(|p| scale(&mut p.rate));
        for c in &mut s.classes {
            c.rate.iter_mut().for_each(scale);
            c.schedule.iter_mut().for_each(|p| scale(&mut p.rate));
        }
        s
    }

    /// One scenario per server: this file with the farm sections removed, its group's
    /// `set` applied, and its own seed (server 0 keeps the master seed, so a farm of
    /// one draws what a single-server run draws).
    /// Puts back to their defaults the settings that have no effect in this scenario
    /// (a rate in a closed loop, users in an open one, a balancer without a farm, retry
    /// settings without retries, session settings without a class that uses the
    /// session), which the loader refuses when a file or an override writes them but
    /// which an override can make moot (`--set load.mode=closed`). A rate next to a
    /// schedule stays: it is the documented fallback.
    pub fn clear_ignored(&mut self) {
        let d = Scenario::default();
        // The other client's settings.
        let client = self.connection_client();
        let (c, dc) = (&mut self.connections, &d.connections);
        match client {
            ConnectionClient::ServicePoint => {
                c.max_connections_per_server = dc.max_connections_per_server;
                c.pooled_connection_idle_timeout = dc.pooled_connection_idle_timeout;
                c.pooled_connection_lifetime = dc.pooled_connection_lifetime;
                c.connect_timeout = dc.connect_timeout;
            }
            ConnectionClient::SocketsHttpHandler => {
                c.default_connection_limit = dc.default_connection_limit;
                c.max_service_point_idle_time = dc.max_service_point_idle_time;
                c.connection_lease_timeout = dc.connection_lease_timeout;
            }
        }
        match self.load.mode {
            LoadMode::Closed => self.load.rate = d.load.rate,
            LoadMode::Open => {
                self.load.users = d.load.users;
                self.load.think_time = d.load.think_time;
            }
        }
        if self.farm.servers.is_empty() {
            self.load_balancer = d.load_balancer;
        }
        if self.clients.retries == 0 {
            self.clients = Clients {
                timeout: self.clients.timeout,
                retries: 0,
                ..d.clients
            };
        }
        if !self.uses_session() {
            self.session_state = d.session_state;
        }
        if !self.has_sync_classes() {
            self.aspnet.compilation_debug = d.aspnet.compilation_debug;
        }
        if !self.uses_session() && !self.request_timeout_aborts() {
            self.aspnet.execution_timeout = d.aspnet.execution_timeout;
        }
        // (net8 keeps min/max_io_threads as written: legacy values, accepted, no effect.)
        let (t, dt) = (&mut self.thread_pool, &d.thread_pool);
        if t.runtime != Runtime::Net8 {
            t.processors_per_io_poller = dt.processors_per_io_poller;
            t.io_completion_ports = dt.io_completion_ports;
            t.inline_io_completions = dt.inline_io_completions;
        }
    }

    /// Whether a class takes part in ASP.NET session state.
    pub fn uses_session(&self) -> bool {
        self.classes
            .iter()
            .any(|c| c.enable_session_state != EnableSessionState::False)
    }

    /// Whether a class runs synchronously on its thread (a sync or sync-over-async handler),
    /// so that `executionTimeout` can abort it.
    pub fn has_sync_classes(&self) -> bool {
        self.classes.iter().any(|c| c.handler != HandlerKind::Async)
    }

    /// Whether the request timeout manager can abort a request: a class runs synchronously
    /// and `<compilation debug>` is off.
    pub fn request_timeout_aborts(&self) -> bool {
        self.hosting() == Hosting::SystemWeb
            && !self.aspnet.compilation_debug
            && self.has_sync_classes()
    }

    /// What hosts the application: `aspnet.hosting`, else the runtime's (.NET Framework 4.x:
    /// System.Web; .NET 6 and .NET 7+: ASP.NET Core in process).
    pub fn hosting(&self) -> Hosting {
        self.aspnet
            .hosting
            .unwrap_or(Hosting::default_for(self.thread_pool.runtime))
    }

    /// The HTTP client outgoing calls go through: `connections.client`, else the runtime's
    /// (.NET Framework 4.x: ServicePoint; .NET 6 and .NET 7+: SocketsHttpHandler).
    pub fn connection_client(&self) -> ConnectionClient {
        self.connections
            .client
            .unwrap_or(match self.thread_pool.runtime {
                Runtime::Net48 => ConnectionClient::ServicePoint,
                Runtime::Net6 | Runtime::Net8 => ConnectionClient::SocketsHttpHandler,
            })
    }

    /// [`Class::mean_own_time_ns`] with this scenario's backends.
    pub fn own_time_ns(&self, c: &Class) -> f64 {
        c.mean_own_time_ns(&self.backends, self.connections.request_timeout.0)
    }

    /// [`Class::mean_thread_time_ns`] with this scenario's backends.
    pub fn thread_time_ns(&self, c: &Class) -> f64 {
        c.mean_thread_time_ns(&self.backends, self.connections.request_timeout.0)
    }

    pub fn server_scenarios(&self) -> Result<Vec<(String, Scenario)>, load::LoadError> {
        let mut base = self.clone();
        base.farm = Farm::default();
        base.load_balancer = LoadBalancerSpec::default();
        base.clients = Clients::default();
        let text = base.to_toml();
        let mut per_group: Vec<Option<Scenario>> = vec![None; self.farm.servers.len().max(1)];
        let mut out = Vec::new();
        for (i, (name, g)) in self.server_names().into_iter().enumerate() {
            if per_group[g].is_none() {
                let set = self
                    .farm
                    .servers
                    .get(g)
                    .map(|grp| grp.set.clone())
                    .unwrap_or_default();
                per_group[g] = Some(if set.is_empty() {
                    base.clone()
                } else {
                    load::load_generated(&format!("farm.servers[{g}].set"), &text, &set)?
                });
            }
            let mut s = per_group[g].clone().expect("filled");
            s.name = name.clone();
            if i > 0 {
                s.seed = crate::engine::stream_seed(self.seed, &format!("farm/server/{i}"));
            }
            out.push((name, s));
        }
        Ok(out)
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
    /// A step's backend name (`call` or `file`) at `path` must name a `[[backends]]` table.
    fn check_backend_name(&self, name: &str, path: &str, bad: &mut impl FnMut(String, String)) {
        if self.backends.iter().any(|x| x.name == name) {
            return;
        }
        let known: Vec<&str> = self.backends.iter().map(|x| x.name.as_str()).collect();
        let help = match crate::scenario::load::nearest(name, known.iter().copied()) {
            Some(n) => format!("; did you mean \"{n}\"?"),
            None => String::new(),
        };
        bad(
            path.to_string(),
            format!(
                "no backend named \"{name}\" (backends: {}){help}",
                if known.is_empty() {
                    "none; add a [[backends]] table".into()
                } else {
                    known.join(", ")
                }
            ),
        );
    }

    /// Semantic checks the types cannot express. Returns every problem found.
    pub fn validate(&self) -> Vec<Invalid> {
        let mut out = Vec::new();
        let mut bad = |path: String, message: String| out.push(Invalid { path, message });
        if self.iis.mem_cache_size > MAX_MEM_CACHE_SIZE_MB {
            bad(
                "iis.mem_cache_size".into(),
                format!(
                    "MemCacheSize is 0 (auto) to {MAX_MEM_CACHE_SIZE_MB} MB, got {}",
                    self.iis.mem_cache_size
                ),
            );
        }
        if self.duration.0 == 0 {
            bad("duration".into(), "must be longer than 0s".into());
        }
        if self.warmup.0 >= self.duration.0 && self.duration.0 > 0 {
            bad(
                "warmup".into(),
                format!(
                    "must be shorter than duration ({}), got {} (a shorter run: --warmup 0s, or a shorter --warmup)",
                    self.duration, self.warmup
                ),
            );
        }
        if self.sample_interval.0 < MILLISECOND_NS {
            bad(
                "sample_interval".into(),
                format!("must be at least 1ms, got {}", self.sample_interval),
            );
        } else if self.duration.0 / self.sample_interval.0 > MAX_SAMPLES {
            bad(
                "sample_interval".into(),
                format!(
                    "{} of {} is {} rows of timeseries.csv: at most {MAX_SAMPLES}; sample less often",
                    self.duration,
                    self.sample_interval,
                    self.duration.0 / self.sample_interval.0
                ),
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
            if self.load.mode == LoadMode::Closed && (c.rate.is_some() || !c.schedule.is_empty()) {
                bad(
                    format!(
                        "classes[{i}].{}",
                        if c.rate.is_some() { "rate" } else { "schedule" }
                    ),
                    "has no effect in a closed loop: the users pick their next class by weight; set classes[].weight, or load.mode = \"open\"".into(),
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
                let n = s.cpu.is_some() as u8
                    + s.wait.is_some() as u8
                    + s.alloc.is_some() as u8
                    + s.call.is_some() as u8
                    + s.file.is_some() as u8;
                if n != 1 {
                    bad(
                        format!("classes[{i}].steps[{j}]"),
                        "a step has exactly one of `cpu`, `wait`, `alloc`, `call` or `file`, e.g. { cpu = \"2ms\" }".into(),
                    );
                } else if s.retain.is_some() && s.alloc.is_none() {
                    bad(
                        format!("classes[{i}].steps[{j}].retain"),
                        "`retain` goes with `alloc`".into(),
                    );
                } else if let (Some(a), Some(r)) = (&s.alloc, &s.retain)
                    && r.0.mean() > a.0.mean()
                {
                    bad(
                        format!("classes[{i}].steps[{j}].retain"),
                        format!(
                            "is what the request keeps referenced of what this step allocates: at most `alloc` ({a}), got {r}"
                        ),
                    );
                } else if let Some(b) = &s.file {
                    if s.fanout.is_some() || s.parallel.is_some() {
                        bad(
                            format!("classes[{i}].steps[{j}]"),
                            "`fanout` and `parallel` go with `call`; a `file` step reads one file"
                                .into(),
                        );
                    }
                    if c.urls.is_none() {
                        bad(
                            format!("classes[{i}].steps[{j}].file"),
                            "reads the request's file, which is its URL: give the class a catalogue, e.g. urls = { count = 100000, zipf = 0.9, mean_size = \"30KB\" }".into(),
                        );
                    }
                    self.check_backend_name(b, &format!("classes[{i}].steps[{j}].file"), &mut bad);
                } else if let Some(b) = &s.call {
                    if let Some(f) = &s.fanout {
                        let max = w3sim_models::handler::MAX_FANOUT;
                        if f.0 == Dist::Const(0.0) {
                            bad(
                                format!("classes[{i}].steps[{j}].fanout"),
                                "0 calls: the step would make no call; remove the step, or give at least 1".into(),
                            );
                        } else if f.0.mean() > max as f64 {
                            bad(
                                format!("classes[{i}].steps[{j}].fanout"),
                                format!(
                                    "at most {max} calls per step (each is simulated, and a drawn fan-out is capped there), got {f}"
                                ),
                            );
                        }
                    }
                    self.check_backend_name(b, &format!("classes[{i}].steps[{j}].call"), &mut bad);
                } else if s.timeout.is_some() || s.fanout.is_some() || s.parallel.is_some() {
                    bad(
                        format!("classes[{i}].steps[{j}]"),
                        "`timeout` goes with `call` or `file`, `fanout` and `parallel` with `call`"
                            .into(),
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
        if !(l.scale.is_finite() && l.scale > 0.0 && l.scale <= MAX_LOAD_SCALE) {
            bad(
                "load.scale".into(),
                format!(
                    "must be a number above 0 and at most {MAX_LOAD_SCALE}, got {}",
                    l.scale
                ),
            );
        } else if l.mode == LoadMode::Closed && l.scale != 1.0 {
            bad(
                "load.scale".into(),
                "multiplies open-loop rates; a closed loop's load is `load.users` (and `think_time`)"
                    .into(),
            );
        }
        if l.replay.is_some() {
            if l.mode == LoadMode::Closed {
                bad(
                    "load.replay".into(),
                    "a replayed rate drives an open loop; set load.mode = \"open\"".into(),
                );
            }
            if !l.schedule.is_empty() {
                bad(
                    "load.replay".into(),
                    "give either `replay` or `schedule`: the replay becomes the schedule (to replay, drop the schedule: --set 'load.schedule=[]')".into(),
                );
            }
            if !self.classes.is_empty()
                && self
                    .classes
                    .iter()
                    .all(|c| c.rate.is_some() || !c.schedule.is_empty())
            {
                bad(
                    "load.replay".into(),
                    "drives the classes that share [load]'s rate, and every class here arrives at its own `rate` or `schedule`: the replay would change nothing".into(),
                );
            }
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
            if b.count > MAX_BURST {
                bad(
                    format!("load.bursts[{i}].count"),
                    format!(
                        "a burst is at most {MAX_BURST} simultaneous requests, got {}",
                        b.count
                    ),
                );
            }
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
        // Each user is simulated (a think-time timer from the start), so this sizes the
        // run's memory; the same bound as the largest burst.
        if l.users > MAX_USERS {
            bad(
                "load.users".into(),
                format!("w3sim accepts 1–{MAX_USERS} users, got {}", l.users),
            );
        }
        if self.thread_pool.tiering_promotions > MAX_TIERING_PROMOTIONS {
            bad(
                "thread_pool.tiering_promotions".into(),
                format!(
                    "w3sim accepts 0–{MAX_TIERING_PROMOTIONS} work items (each is simulated; the \
                     reference captures show 2), got {}",
                    self.thread_pool.tiering_promotions
                ),
            );
        }
        if self.cpu.logical_processors == 0 || self.cpu.logical_processors > 4096 {
            bad(
                "cpu.logical_processors".into(),
                format!("must be 1–4096, got {}", self.cpu.logical_processors),
            );
        }
        // Each worker and each receive ring is simulated, so these size the run's memory:
        // bounded well above any real configuration, never by what the machine can allocate.
        for (key, n) in [
            ("afd.max_dynamic_workers", self.afd.max_dynamic_workers),
            (
                "afd.additional_delayed_worker_threads",
                self.afd.additional_delayed_worker_threads,
            ),
        ] {
            if n > MAX_DELAYED_WORKERS {
                bad(
                    key.into(),
                    format!(
                        "w3sim accepts 0–{MAX_DELAYED_WORKERS} threads, got {n} (the Windows 2000 \
                         registry reference gives 0–16 for AdditionalDelayedWorkerThreads)"
                    ),
                );
            }
        }
        if !(1..=MAX_RSS_QUEUES).contains(&self.nic.number_of_receive_queues) {
            bad(
                "nic.number_of_receive_queues".into(),
                format!(
                    "must be 1–{MAX_RSS_QUEUES} (RSS spreads flows through an indirection table of \
                     at most 128 entries), got {}",
                    self.nic.number_of_receive_queues
                ),
            );
        }
        if !(1..=MAX_PACKETS_PER_REQUEST).contains(&self.nic.packets_per_request) {
            bad(
                "nic.packets_per_request".into(),
                format!(
                    "must be 1–{MAX_PACKETS_PER_REQUEST} frames (about 95 MB at a 1460-byte MSS; \
                     each frame is simulated), got {}",
                    self.nic.packets_per_request
                ),
            );
        }
        if self.gc.gc_gen0_size.0 > 0 && self.gc.gc_gen0_size.0 < 64 * 1024 {
            bad(
                "gc.gc_gen0_size".into(),
                format!(
                    "the CLR ignores a GCgen0size under 64KB (IsValidGen0MaxSize) and uses its default: write 0B for the default, or at least 64KB; got {}",
                    self.gc.gc_gen0_size
                ),
            );
        }
        if self.session_state.sessions == 0 {
            bad(
                "session_state.sessions".into(),
                "must be at least 1 session".into(),
            );
        }
        if self.session_state.session_state_locked_item_poll_interval.0 < MILLISECOND_NS {
            bad(
                "session_state.session_state_locked_item_poll_interval".into(),
                format!(
                    "must be at least 1ms (the registry value is in whole milliseconds), got {}",
                    self.session_state.session_state_locked_item_poll_interval
                ),
            );
        }
        for (key, d) in [
            (
                "http_sys.connection_timeout",
                self.http_sys.connection_timeout,
            ),
            (
                "app_pool.startup_time_limit",
                self.app_pool.startup_time_limit,
            ),
            ("aspnet.execution_timeout", self.aspnet.execution_timeout),
        ] {
            if d.0 < SECOND_NS || d.0 % SECOND_NS != 0 {
                bad(
                    key.into(),
                    format!(
                        "must be a whole number of seconds, at least 1s (IIS and ASP.NET take whole seconds), got {d}"
                    ),
                );
            }
        }
        if self.http_sys.max_connections == 0 {
            bad(
                "http_sys.max_connections".into(),
                "must be at least 1 (4294967295, the default, is no limit)".into(),
            );
        }
        let q = self.http_sys.queue_length;
        if !(10..=65535).contains(&q) {
            bad(
                "http_sys.queue_length".into(),
                format!("IIS accepts queueLength 10–65535, got {q}"),
            );
        }
        // An out-of-range processor count is reported above; the pool's limits are checked
        // against the nearest valid one (no second error for the same mistake).
        let cpus = self.cpu.logical_processors.clamp(1, 4096);
        let tp = &self.thread_pool;
        if tp.warm_worker_threads > tp.max_threads(cpus) {
            bad(
                "thread_pool.warm_worker_threads".into(),
                format!(
                    "must be at most the pool's maximum ({} worker threads), got {}",
                    tp.max_threads(cpus),
                    tp.warm_worker_threads
                ),
            );
        }
        if tp.processors_per_io_poller == 0 {
            bad(
                "thread_pool.processors_per_io_poller".into(),
                "must be at least 1 (ProcessorsPerIOPollerThread), got 0".into(),
            );
        }
        if !(1..=1024).contains(&tp.io_completion_ports) {
            bad(
                "thread_pool.io_completion_ports".into(),
                format!(
                    "the runtime uses 1–1024 completion ports (MaxIOPortCount), got {}",
                    tp.io_completion_ports
                ),
            );
        }
        if tp.max_threads(cpus) > 32767 {
            bad(
                "thread_pool.max_worker_threads".into(),
                format!(
                    "the CLR caps worker threads at 32767, got {}",
                    tp.max_threads(cpus)
                ),
            );
        }
        for (i, n) in self.cpu.noise.iter().enumerate() {
            if n.priority > 32 {
                bad(
                    format!("cpu.noise[{i}].priority"),
                    format!(
                        "thread priorities are 0–31 (32 = DPC level), got {}",
                        n.priority
                    ),
                );
            }
        }
        if self.aspnet.percent_cpu_limit > 100 {
            bad(
                "aspnet.percent_cpu_limit".into(),
                format!("must be 0–100 %, got {}", self.aspnet.percent_cpu_limit),
            );
        }
        if let Some(r) = &self.gc.cache_reload {
            if r.every.0 < SECOND_NS {
                bad(
                    "gc.cache_reload.every".into(),
                    format!(
                        "must be at least 1s (a whole cache reloaded), got {}",
                        r.every
                    ),
                );
            }
        }
        for (i, c) in self.classes.iter().enumerate() {
            if let Some(u) = &c.urls {
                if u.count == 0 || !(u.zipf.is_finite() && u.zipf >= 0.0) {
                    bad(
                        format!("classes[{i}].urls"),
                        format!(
                            "needs count >= 1 and zipf >= 0, got count {} zipf {}",
                            u.count, u.zipf
                        ),
                    );
                }
            } else if c.cacheable {
                bad(
                    format!("classes[{i}].cacheable"),
                    "a cacheable class needs `urls = { count = …, zipf = …, mean_size = … }`"
                        .into(),
                );
            }
        }
        for (i, v) in self.valves.iter().enumerate() {
            if !VALVE_COUNTERS.contains(&v.counter.as_str()) {
                let help = match crate::scenario::load::nearest(
                    &v.counter,
                    VALVE_COUNTERS.iter().copied(),
                ) {
                    Some(n) => format!("; did you mean \"{n}\"?"),
                    None => String::new(),
                };
                bad(
                    format!("valves[{i}].counter"),
                    format!("a valve reads one of: {}{help}", VALVE_COUNTERS.join(", ")),
                );
            }
            if v.period.0 < MILLISECOND_NS {
                bad(
                    format!("valves[{i}].period"),
                    format!("must be at least 1ms, got {}", v.period),
                );
            }
            if v.open_below > v.close_above {
                bad(
                    format!("valves[{i}].open_below"),
                    "must not be above close_above".into(),
                );
            }
        }
        let mut bnames = std::collections::HashSet::new();
        for (i, b) in self.backends.iter().enumerate() {
            if !bnames.insert(b.name.as_str()) {
                bad(
                    format!("backends[{i}].name"),
                    format!("backend name \"{}\" is used twice", b.name),
                );
            }
            if !(0.0..=1.0).contains(&b.error_rate) {
                bad(
                    format!("backends[{i}].error_rate"),
                    format!("must be 0–1, got {}", b.error_rate),
                );
            }
        }
        let t = &self.tcp;
        if t.dynamic_port_count < 255
            || t.dynamic_port_start < 1025
            || u64::from(t.dynamic_port_start) + u64::from(t.dynamic_port_count) > 65536
        {
            // Blame the start when it cannot begin any valid range, the count otherwise.
            let key = if !(1025..=65536 - 255).contains(&t.dynamic_port_start) {
                "tcp.dynamic_port_start"
            } else {
                "tcp.dynamic_port_count"
            };
            bad(
                key.into(),
                format!(
                    "netsh accepts a range of at least 255 ports from 1025 up to 65535, got {} ports from {}",
                    t.dynamic_port_count, t.dynamic_port_start
                ),
            );
        }
        if t.tcp_timed_wait_delay.0 < 2_000_000_000 || t.tcp_timed_wait_delay.0 > 300_000_000_000 {
            bad(
                "tcp.tcp_timed_wait_delay".into(),
                format!(
                    "TcpTimedWaitDelay is 2–300 s (30–300 s before 2012 R2), got {}",
                    t.tcp_timed_wait_delay
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
        // The farm, its load balancer and its clients.
        let mut snames = std::collections::HashSet::new();
        for (g, grp) in self.farm.servers.iter().enumerate() {
            if grp.name.trim().is_empty() && grp.names.is_empty() {
                bad(
                    format!("farm.servers[{g}].name"),
                    "a server group needs a `name` (its servers are name-1, name-2, … when count > 1) or one name per server in `names`".into(),
                );
            }
            if grp.servers() == 0 || grp.servers() as usize > crate::farm::MAX_SERVERS {
                bad(
                    format!("farm.servers[{g}].count"),
                    format!(
                        "must be 1–{} servers, got {}",
                        crate::farm::MAX_SERVERS,
                        grp.servers()
                    ),
                );
            }
            if grp.weight == 0 || grp.weight > 1000 {
                bad(
                    format!("farm.servers[{g}].weight"),
                    format!(
                        "a server's weight is 1–1000 (its share is weight / sum of the weights in rotation), got {}",
                        grp.weight
                    ),
                );
            }
            for (k, n) in grp.names.iter().enumerate() {
                if n.trim().is_empty() {
                    bad(
                        format!("farm.servers[{g}].names[{k}]"),
                        "a server needs a name that is not empty".into(),
                    );
                }
            }
            if !grp.names.is_empty() && grp.names.len() != grp.servers() as usize {
                bad(
                    format!("farm.servers[{g}].names"),
                    format!(
                        "names {} servers but count is {}: give one name per server",
                        grp.names.len(),
                        grp.servers()
                    ),
                );
            }
            for (j, o) in grp.set.iter().enumerate() {
                // As `--set` reads it: `key=value`, the `=` not left out.
                let key = load::split_override(o).map(|(k, _)| k.trim()).unwrap_or("");
                if key.is_empty() {
                    let quoted = |t: &str| toml::Value::String(t.into()).to_string();
                    bad(
                        format!("farm.servers[{g}].set[{j}]"),
                        format!(
                            "expected key=value, got {}; {}",
                            quoted(o),
                            match load::key_value_fix(o) {
                                Some(f) => format!("did you mean {}?", quoted(&f)),
                                None => "e.g. \"tcp.dynamic_port_count=32768\"".into(),
                            }
                        ),
                    );
                    continue;
                }
                let top = key.split(['.', '[']).next().unwrap_or("");
                if FARM_WIDE_KEYS.contains(&top) {
                    bad(
                        format!("farm.servers[{g}].set[{j}]"),
                        format!(
                            "`{key}` is farm-wide (the load, the farm, its balancer and clients are not per server); a group can set the server sections: cpu, http_sys, iis, aspnet, thread_pool, gc, connections, backends, tcp, kernel_cache, app_pool, afd, nic, valves, classes"
                        ),
                    );
                }
            }
        }
        let total = self.server_names().len();
        if !self.farm.servers.is_empty() && total > crate::farm::MAX_SERVERS {
            bad(
                "farm.servers".into(),
                format!(
                    "a farm has at most {} servers, got {total}",
                    crate::farm::MAX_SERVERS
                ),
            );
        }
        if !self.farm.servers.is_empty() && self.duration.0 >= 200 * 86_400 * 1_000_000_000 {
            bad(
                "duration".into(),
                format!("a farm simulates at most 200 days, got {}", self.duration),
            );
        }
        for (name, _) in self.server_names() {
            if !self.farm.servers.is_empty() && !snames.insert(name.clone()) {
                bad(
                    "farm.servers".into(),
                    format!("server name \"{name}\" is used twice"),
                );
            }
        }
        let lb = &self.load_balancer;
        if lb.probe_interval.0 > 0 && lb.probe_interval.0 < MILLISECOND_NS {
            bad(
                "load_balancer.probe_interval".into(),
                format!(
                    "must be 0s (no probes) or at least 1ms, got {}",
                    lb.probe_interval
                ),
            );
        }
        let k = &self.kernel_cache;
        if k.uri_scavenger_period.0 > 0 && k.uri_scavenger_period.0 < SECOND_NS {
            bad(
                "kernel_cache.uri_scavenger_period".into(),
                format!(
                    "must be 0s (no scavenger) or at least 1s (UriScavengerPeriod is a number of \
                     seconds), got {}",
                    k.uri_scavenger_period
                ),
            );
        }
        if lb.probe_interval.0 > 0 && lb.probe_timeout.0 == 0 {
            bad(
                "load_balancer.probe_timeout".into(),
                "must be longer than 0s when probes are on".into(),
            );
        }
        if !lb.probe_class.is_empty() && !self.classes.iter().any(|c| c.name == lb.probe_class) {
            let help = match load::nearest(
                &lb.probe_class,
                self.classes.iter().map(|c| c.name.as_str()),
            ) {
                Some(n) => format!("; did you mean \"{n}\"?"),
                None => String::new(),
            };
            bad(
                "load_balancer.probe_class".into(),
                format!(
                    "names no class (the classes are: {}){help}",
                    self.classes
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        let c = &self.clients;
        if c.retries > 100 {
            bad(
                "clients.retries".into(),
                format!("must be 0–100, got {}", c.retries),
            );
        }
        if !(c.backoff_multiplier.is_finite() && c.backoff_multiplier >= 1.0) {
            bad(
                "clients.backoff_multiplier".into(),
                format!("must be a number >= 1, got {}", c.backoff_multiplier),
            );
        }
        if !(c.retry_budget_percent.is_finite() && (0.0..=1000.0).contains(&c.retry_budget_percent))
        {
            bad(
                "clients.retry_budget_percent".into(),
                format!(
                    "retries per 100 user requests, 0–1000 (0: no budget), got {}",
                    c.retry_budget_percent
                ),
            );
        }
        if !(c.retry_budget_min_per_second.is_finite()
            && (0.0..=1e6).contains(&c.retry_budget_min_per_second))
        {
            bad(
                "clients.retry_budget_min_per_second".into(),
                format!(
                    "retries per second, 0–1000000, got {}",
                    c.retry_budget_min_per_second
                ),
            );
        }
        if !(10_000_000..=3_600_000_000_000).contains(&c.retry_budget_ttl.0) {
            bad(
                "clients.retry_budget_ttl".into(),
                format!("must be 10ms–1h, got {}", c.retry_budget_ttl),
            );
        }
        if c.max_backoff.0 < c.backoff.0 {
            bad(
                "clients.max_backoff".into(),
                format!("must not be shorter than backoff ({})", c.backoff),
            );
        }
        out
    }

    /// The effective scenario as TOML text (defaults filled in).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot print scenario: {e}\n"))
    }
}
