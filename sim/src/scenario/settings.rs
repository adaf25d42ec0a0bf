//! The documented list of every setting: its unit, the Windows setting it models and
//! where its default comes from. `w3sim show-defaults` prints it with the defaults
//! read from [`Scenario::default`], so the two cannot drift apart (a test checks that
//! every key of the default scenario is documented here and nothing else is).

use super::Scenario;

/// Documentation of one setting.
#[derive(Clone, Copy, Debug)]
pub struct SettingDoc {
    /// Dotted key path; `[]` marks the elements of a list (`classes[].weight`).
    pub path: &'static str,
    /// Unit or accepted values.
    pub unit: &'static str,
    /// The Windows / .NET / IIS setting it models, or `-` for simulator settings.
    pub windows: &'static str,
    /// What it does and where its default comes from.
    pub doc: &'static str,
}

macro_rules! s {
    ($path:literal, $unit:literal, $win:literal, $doc:literal) => {
        SettingDoc {
            path: $path,
            unit: $unit,
            windows: $win,
            doc: $doc,
        }
    };
}

/// Every setting, in file order.
pub const SETTINGS: &[SettingDoc] = &[
    s!("name", "text", "-", "Short name used in outputs."),
    s!(
        "description",
        "text",
        "-",
        "What the scenario shows and which seed report it comes from."
    ),
    s!(
        "seed",
        "integer",
        "-",
        "Master seed; each component's random stream is derived from it and the component's name (common random numbers across what-if runs)."
    ),
    s!("duration", "duration", "-", "Simulated time to run."),
    s!(
        "warmup",
        "duration",
        "-",
        "Initial period excluded from latency, means and rates (counts in `requests` cover the whole run)."
    ),
    s!(
        "sample_interval",
        "duration (>= 1ms)",
        "perfmon sample interval",
        "Interval between rows of timeseries.csv; gauges are sampled at the end of each interval, rates averaged over it."
    ),
    s!(
        "load.mode",
        "open | closed",
        "-",
        "Open loop: arrivals at a rate regardless of responses. Closed loop: `users` users with `think_time`."
    ),
    s!(
        "load.arrivals",
        "poisson | constant",
        "-",
        "Spacing of open-loop arrivals."
    ),
    s!(
        "load.rate",
        "rate (/ms, /s, /min, /h; at most 1000000000/s)",
        "-",
        "Open-loop rate when no schedule is given. Default: seed 003's ~1000 requests/s per server."
    ),
    s!(
        "load.schedule",
        "list of { at = duration, rate = rate }",
        "-",
        "Open-loop rate over time; before the first point the rate is 0. Replaces `rate` when given."
    ),
    s!(
        "load.schedule_shape",
        "step | linear",
        "-",
        "Hold each point's rate (step) or ramp linearly to the next point."
    ),
    s!(
        "load.bursts",
        "list of { at = duration, count = integer (0 to 10,000,000), class = name }",
        "-",
        "Batches of simultaneous requests (e.g. the CLR reference's 300 work items at t = 0)."
    ),
    s!(
        "load.users",
        "integer 1–10000000",
        "-",
        "Closed loop: number of users."
    ),
    s!(
        "load.think_time",
        "duration distribution",
        "-",
        "Closed loop: time between the end of a user's request and its next one."
    ),
    s!(
        "load.scale",
        "number > 0 (at most 1000000)",
        "-",
        "Open loop: every arrival rate (rate, schedule, replay, the classes' own rates and schedules) times this; bursts are not scaled. \"What if traffic grew by half\" is 1.5, and `w3sim capacity --vary load.scale` finds the growth a configuration absorbs. Default 1."
    ),
    s!(
        "load.replay",
        "{ file = path, counter = name, from = duration }",
        "perfmon counter log (relog -f csv)",
        "Open loop: the rate over time is one counter of a capture: a perfmon CSV export or a w3sim timeseries.csv (path relative to the scenario file), e.g. counter = \"W3SVC_W3WP\\\\Requests / Sec\" (Object\\Counter matches any machine and instance; add the instance or write the full path when several columns match). Sample k drives the interval that starts k samples in (as `w3sim compare` lines a capture up with a run); blank samples keep the rate before them (a blank first sample takes the first rate); `from` skips the capture's start. A path given with --set is relative to the working directory, one in a sweep file to the sweep file. Replaces `schedule`, shaped by schedule_shape; the run's scenario.toml holds the schedule it became."
    ),
    s!("classes[].name", "text", "-", "Class name (unique)."),
    s!(
        "classes[].weight",
        "number >= 0",
        "-",
        "Share of arrivals relative to the other classes."
    ),
    s!(
        "classes[].rate",
        "rate (/ms, /s, /min, /h; at most 1000000000/s)",
        "-",
        "Open loop: the class arrives on its own at this rate (its own Poisson or constant stream) instead of taking a weighted share of [load]."
    ),
    s!(
        "classes[].schedule",
        "list of { at = duration, rate = rate }",
        "-",
        "Open loop: the class's own rate over time, shaped by load.schedule_shape (e.g. seed 003's outgoing-call traffic ramping from 300/s to 600/s)."
    ),
    s!(
        "classes[].handler",
        "sync | async | sync_over_async",
        "-",
        "sync: holds its worker thread through every wait. async: releases it at each await; the continuation is posted to the thread-pool queue behind new requests. sync_over_async (.Result): blocks its thread and needs a second worker thread to run the continuation."
    ),
    s!(
        "classes[].service",
        "duration distribution",
        "-",
        "Shorthand for a single cpu step. Default class: seed 003's synchronous requests, 0–32 ms."
    ),
    s!(
        "classes[].steps",
        "list of { cpu = dist } | { wait = dist } | { alloc = size dist, retain = size dist } | { call = backend, timeout, fanout, parallel } | { file = backend, timeout }",
        "-",
        "Handler steps in order: CPU demand; time blocked or awaited (I/O, lock); managed allocation, of which `retain` stays referenced until the request ends; outgoing calls to a [[backends]] entry (connection pool, ports, the backend; `timeout` cancels each call, default connections.request_timeout); IIS's static file handler reading the request's file (its URL: the class needs `urls`) from a backend through IIS's user-mode file cache (iis.object_cache_ttl, iis.file_attribute_check_threshold): a read on a miss, one iis.nas_round_trip when a cached file is due for its last-modified check, nothing on a hit."
    ),
    s!(
        "cpu.logical_processors",
        "integer 1–4096",
        "Environment.ProcessorCount",
        "Logical processors. Default 16: seed 003's 8-core, 16-thread Xeon. Sets the thread pool's default minimum."
    ),
    s!(
        "cpu.scheduler",
        "shared | dedicated",
        "-",
        "shared: threads share the processors with strict priorities and processor sharing. dedicated: every thread has its own processor (textbook reductions, benchmarks)."
    ),
    s!(
        "cpu.context_switch_cost",
        "duration",
        "-",
        "Processor time per context switch: charged when a thread starts or stops running and at each quantum among oversubscribed threads. Default 5 us (an order of magnitude including cache refill; no authoritative figure)."
    ),
    s!(
        "cpu.quantum",
        "duration (0s = off)",
        "Win32PrioritySeparation (server: long fixed quantum)",
        "Time slice among runnable threads of equal priority when there are more than processors. Default 187.5 ms: Windows Server's long fixed quantum (12 clock ticks of 15.625 ms)."
    ),
    s!(
        "cpu.noise",
        "list of { at, duration, threads, priority }",
        "-",
        "Other CPU-bound threads on the machine for a while, at a Windows priority (8 normal, 12 kernel delayed workers, 13 critical, 32 = DPC level): e.g. seed 000's 5 s of busy CPU."
    ),
    s!(
        "http_sys.queue_length",
        "integer 10–65535",
        "applicationPools/add/@queueLength",
        "Requests HTTP.SYS queues for the pool before answering 503 QueueFull. Default 1000 (IIS 7+, DOMAIN §3.1)."
    ),
    s!(
        "http_sys.queue_counts_in_flight",
        "true | false",
        "KB 816995 accounting (DOMAIN §3.1 ⚠)",
        "true (default): every outstanding request of the pool counts against queueLength until it is completely served (KB 816995). false: only requests still queued in the kernel (the IIS docs). Sources disagree (DOMAIN §3.1 ⚠); the default is KB 816995's because it reproduces seed 003: raising queueLength from 1000 to 10,000 had no effect, since ASP.NET's and IIS's limits of 5000 then answer the 503s. With false, a worker process that dequeues at once never lets the kernel queue fill."
    ),
    s!(
        "http_sys.max_connections",
        "integer 1–4294967295 (4294967295 = no limit)",
        "sites/site/limits/@maxConnections",
        "Client connections the site accepts: a request that needs one while this many are in use is answered by HTTP.SYS with 503 ConnLimit (before the kernel cache and the pool's queue). A request rides an idle kept-alive connection (tcp.incoming_keep_alive_connections, at most this many) or takes one of its own, so the site has max(kept-alive, requests in flight) connections (Web Service\\Current Connections). Default 4294967295: no limit (DOMAIN §3.2)."
    ),
    s!(
        "http_sys.connection_timeout",
        "duration (>= 1s)",
        "sites/site/limits/@connectionTimeout",
        "A request that waits longer than this in the pool's HTTP.SYS queue — no worker process took it: a cold start, a pool starting again and again — is expired by HTTP.SYS, its connection closed with no response (HTTPERR Timer_AppPool; outcome connection_expired_timer_app_pool). Its other uses (idle kept-alive connections, request bodies) are not modelled. Default 120 s (DOMAIN §3.2)."
    ),
    s!(
        "iis.app_concurrent_request_limit",
        "integer",
        "system.webServer/serverRuntime/@appConcurrentRequestLimit",
        "Requests queued or executing in IIS before it answers 503.2. Default 5000 (DOMAIN §4.1)."
    ),
    s!(
        "aspnet.hosting",
        "system_web | aspnet_core",
        "the application's framework: System.Web ASP.NET | ASP.NET Core in process (web.config aspNetCore hostingModel=\"inprocess\")",
        "What runs the application in the worker process. system_web: ASP.NET on the .NET Framework's integrated pipeline, with aspnet.config's throttles (maxConcurrentRequestsPerCPU and the native queue, requestQueueLimit → 503 Server Too Busy, percentCpuLimit), executionTimeout's Thread.Abort and InProc session locks. aspnet_core: ASP.NET Core in process through the ASP.NET Core Module: IIS hands the request to the application's thread pool with none of them (.NET Core has no Thread.Abort; its sessions do not lock), so the other [aspnet] keys, [session_state] and classes[].enable_session_state are refused; IIS's own limits (queueLength, appConcurrentRequestLimit, maxConnections) still apply. Default: the runtime's, system_web with thread_pool.runtime = net48 and aspnet_core with net6 and net8. system_web with net6 or net8 is not a real combination (System.Web runs on the .NET Framework only): a what-if that keeps System.Web's limits while trying the newer thread pool."
    ),
    s!(
        "aspnet.max_concurrent_requests_per_cpu",
        "integer (0 = no limit)",
        "aspnet.config applicationPool/@maxConcurrentRequestsPerCPU",
        "Concurrently active ASP.NET requests per CPU; the rest wait in the native queue. 5000 in .NET 4.x (default), 12 in .NET 2.0/3.5 on IIS 7 (DOMAIN §4.2). 0: no ASP.NET throttling; in IIS, 0 also runs requests on IIS's own I/O threads instead of CLR worker threads, which w3sim leaves out (it still runs them on the CLR pool)."
    ),
    s!(
        "aspnet.request_queue_limit",
        "integer",
        "processModel/@requestQueueLimit",
        "Requests in ASP.NET (queued + executing) before new ones get 503 Server Too Busy. Default 5000 (DOMAIN §4.2)."
    ),
    s!(
        "aspnet.percent_cpu_limit",
        "percent 0–100 (0 = off)",
        "aspnet.config applicationPool/@percentCpuLimit",
        "ASP.NET 4.7: above this CPU, new requests go to the native queue. 90 in 4.7; default 0 = off, as on .NET 4.5 (seed 003)."
    ),
    s!(
        "aspnet.percent_cpu_limit_min_active_request_per_cpu",
        "integer",
        "applicationPool/@percentCpuLimitMinActiveRequestPerCpu",
        "CPU throttling applies only above this many active requests per CPU. Default 100 (DOMAIN §4.2)."
    ),
    s!(
        "aspnet.execution_timeout",
        "duration (>= 1s)",
        "<httpRuntime executionTimeout>",
        "A request running synchronously (a sync or sync_over_async handler) for more than this since it last resumed (its first thread, or its session lock granted) is aborted by the request timeout manager: a 15 s timer whose callback is a thread-pool work item, so the abort comes 110–125 s in, later when the pool is starved; the thread goes back to the pool and the request ends with HTTP 500 \"Request timed out\" (500_request_timed_out, ASP.NET Applications\\Requests Timed Out). Async requests are never aborted. A session lock held longer than this is taken from its holder by the next request that tries it (SessionStateModule.GetSessionStateItem); a request polling a lock is not timed out. Default 110 s (DOMAIN §4.5; Reference Source RequestTimeoutManager.cs, HttpContext.MustTimeout)."
    ),
    s!(
        "aspnet.compilation_debug",
        "true | false",
        "<compilation debug>",
        "true: executionTimeout aborts no request (HttpContext.MustTimeout returns at once when debugging is enabled); session locks are still broken after it. Default false, as in production."
    ),
    s!(
        "session_state.sessions",
        "integer (>= 1)",
        "-",
        "Active ASP.NET sessions. An open-loop request of a class with `enable_session_state` belongs to one of them, drawn uniformly; closed-loop user u to session u mod sessions (a user sends one request at a time, so sessions < users makes users share). Few sessions for many requests = AJAX pages, F5 storms."
    ),
    s!(
        "session_state.session_state_locked_item_poll_interval",
        "duration (>= 1ms)",
        "HKLM\\SOFTWARE\\Microsoft\\ASP.NET\\SessionStateLockedItemPollInterval (LOCKED_ITEM_POLLING_INTERVAL)",
        "A request that finds its session locked gives its thread back and polls on a timer with this due time and period; each tick queues a callback to the thread pool, which tries the lock unless the last poll completed less than 250 ms before (LOCKED_ITEM_POLLING_DELTA). Default 500 ms (Reference Source SessionStateModule.cs; DOMAIN §4.5)."
    ),
    s!(
        "session_state.request_queue_limit_per_session",
        "integer (2147483647 = no limit)",
        "<appSettings> aspnet:RequestQueueLimitPerSession",
        "Requests that may poll one session at once; the next one fails at once with HTTP 500 (an event-log warning). Default 2147483647 (Int32.MaxValue): no limit, as for apps targeting .NET 4.6.2 and earlier (seed 003's app targets 4.5); apps targeting .NET 4.7+ get 50 (a retargeting change; DOMAIN §4.5 says 4.6.2+ ⚠)."
    ),
    s!(
        "thread_pool.runtime",
        "net48 | net6 | net8",
        "-",
        "net48: .NET Framework 4.x native pool (CoreCLR ≤ 3.1 algorithm) with its IOCP pool. net6: PortableThreadPool with cooperative blocking compensation (DOMAIN §5.6); async IO completions still run on the native IOCP pool. net8: .NET 7 and later on Windows: net6's worker pool, but no IOCP pool: a few IO completion poller threads (thread_pool.processors_per_io_poller) hand each completion to the worker pool as a high-priority work item, so its callback waits for a worker thread when the pool is starved (DOMAIN §5.1; min/max_io_threads have no effect). The outgoing calls' client follows: ServicePoint on net48, SocketsHttpHandler on net6 and net8."
    ),
    s!(
        "thread_pool.min_worker_threads",
        "integer, a total for the process (0 = logical processors)",
        "ThreadPool.SetMinThreads; processModel/@minWorkerThreads × logical processors",
        "Threads created on demand with no delay. A total, as ThreadPool.SetMinThreads takes it: processModel's minWorkerThreads is per CPU, so minWorkerThreads=\"50\" on 16 logical processors is 800 here. Default = logical processors (DOMAIN §5.2, §4.4)."
    ),
    s!(
        "thread_pool.max_worker_threads",
        "integer, a total for the process, at most 32767 (0 = 100 × logical processors)",
        "ThreadPool.SetMaxThreads; processModel/@maxWorkerThreads × logical processors",
        "Upper bound on worker threads, a total (processModel's maxWorkerThreads is per CPU: multiply it by logical_processors). Default: processModel autoConfig's 100 × CPUs (DOMAIN §4.4)."
    ),
    s!(
        "thread_pool.min_io_threads",
        "integer, a total for the process (0 = logical processors)",
        "ThreadPool.SetMinThreads (completion ports); processModel/@minIoThreads × logical processors",
        "IO-completion threads created without delay (DOMAIN §5.7). net48 and net6 only: net8 has no IOCP pool and keeps the value only for the API (_legacy_minIOCompletionThreads)."
    ),
    s!(
        "thread_pool.max_io_threads",
        "integer, a total for the process (0 = 100 × logical processors)",
        "ThreadPool.SetMaxThreads (completion ports); processModel/@maxIoThreads × logical processors",
        "Upper bound on IO-completion threads. Default: processModel autoConfig's 100 × CPUs, as for worker threads (DOMAIN §4.4); the CLR's own default without autoConfig is 1000. net48 and net6 only (net8: _legacy_maxIOCompletionThreads, no effect)."
    ),
    s!(
        "thread_pool.gate_timer",
        "periodic | sleep",
        "-",
        "periodic: Windows' waitable timer, fixed 500 ms grid (default). sleep: Linux, 500 ms after each check — the setting of the reference measurements (DOMAIN §5.4)."
    ),
    s!(
        "thread_pool.warm_worker_threads",
        "integer (0 = the minimum)",
        "-",
        "The pool's thread-count goal at the start: a process that has run this load for a while has hill climbing's goal where the load put it, so threads up to it are created on demand without delay (hill climbing may lower it again). 0: a freshly started process, whose pool starts at its minimum and, past it, grows by about one thread a second or fewer: a load that needs more threads than the minimum then starts thread-starved. `w3sim check` prints the threads a load keeps busy."
    ),
    s!(
        "thread_pool.disable_starvation_detection",
        "true | false",
        "ThreadPool_DisableStarvationDetection",
        "true: the gate thread no longer adds a thread when work is pending and nothing was dequeued for 500 ms (goal × 1 s at ≥ 80 % CPU). Default false."
    ),
    s!(
        "thread_pool.hill_climbing_disable",
        "true | false",
        "HillClimbing_Disable",
        "true: no hill climbing, the throughput-maximising controller that moves the thread goal (DOMAIN §5.5). Default false."
    ),
    s!(
        "thread_pool.injection_pacing",
        "duration (0s = none)",
        "-",
        "Above the minimum, at most one new worker thread per this long. Default 0s: a hill-climbing goal increase is applied at once, one thread injecting the next (chained MaybeAddWorkingWorker, the current runtime source). ⚠ DOMAIN §5.5: Matt Warren's reading is one thread per 500 ms until the goal is reached: \"500ms\". The gate thread's starvation rule is paced by its own 500 ms period either way."
    ),
    s!(
        "thread_pool.thread_creation_cost",
        "duration",
        "-",
        "Time between creating a worker thread and its first dequeue; calibrated on the reference measurements (README, fidelity)."
    ),
    s!(
        "thread_pool.thread_timeout",
        "duration (0s = never)",
        "ThreadPool_ThreadTimeoutMs",
        "Idle worker threads exit after this long (never below the minimum goal). Default 20 s (DOMAIN §5.2)."
    ),
    s!(
        "thread_pool.io_completion_cpu",
        "duration",
        "-",
        "CPU an IO-completion thread spends on an async completion before posting the continuation (net8: the worker thread running the pollers' work item, or the poller with inline_io_completions)."
    ),
    s!(
        "thread_pool.processors_per_io_poller",
        "integer, at least 1",
        "System.Threading.ThreadPool.ProcessorsPerIOPollerThread (runtimeconfig.json)",
        "net8 only: one IO completion poller thread per this many logical processors, rounded up: (N − 1) / this + 1 pollers (PortableThreadPool.IO.Windows.cs). Default 12: one poller up to 12 processors."
    ),
    s!(
        "thread_pool.io_completion_ports",
        "integer, 1–1024",
        "System.Threading.ThreadPool.IOCompletionPortCount / DOTNET_ThreadPool_IOCompletionPortCount",
        "net8 only: IO completion ports the completions are spread over; the pollers are at least one per port and a multiple of the ports. Default 1 (the setting appeared after .NET 7; ⚠ completions are spread round robin, the runtime spreads sockets as they are registered)."
    ),
    s!(
        "thread_pool.inline_io_completions",
        "true | false",
        "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1 (UnsafeInlineIOCompletionCallbacks)",
        "net8 only: the pollers, one per logical processor, run each completion's callback themselves instead of handing it to the worker pool: callbacks no longer wait for worker threads, but a busy poller holds up the completions behind it. Default false."
    ),
    s!(
        "thread_pool.continuation_cpu",
        "duration",
        "-",
        "CPU a worker thread spends on the continuation that releases a thread blocked in sync-over-async."
    ),
    s!(
        "thread_pool.tiered_compilation",
        "true | false",
        "TieredCompilation (.NET Core 3.0+; DOTNET_TieredCompilation)",
        "The runtime queues its own work items on the pool during warm-up: the tiering-delay timer callbacks and the tier-1 OptimizeMethods items (tieredcompilation.cpp). They are served before the next request, count in the queue length and completions, and delay the thread that runs them. Default false (.NET Framework has no tiered compilation); the clr-reference scenarios (.NET Core 3.1) turn it on."
    ),
    s!(
        "thread_pool.tiering_delay",
        "duration",
        "TC_CallCountingDelayMs",
        "From the first work item to the first tiering-delay callback, and from a re-arming callback to the next. Default 100 ms (the runtime's)."
    ),
    s!(
        "thread_pool.tiering_delay_extensions",
        "integer",
        "-",
        "Callbacks that still find new methods being called and re-arm the delay before it ends. Default 2: the items seen 0.1 s and 1.1 s after the burst in every reference capture."
    ),
    s!(
        "thread_pool.tiering_callback_time",
        "duration",
        "-",
        "Mean run time of a re-arming callback (uniform ±50 %): it only resets a timer. Default 100 µs."
    ),
    s!(
        "thread_pool.tiering_promotions",
        "integer 0–64",
        "-",
        "OptimizeMethods items queued after the delay ended (methods reaching the 30-call threshold). Default 2: five runtime items in all, as in every reference capture."
    ),
    s!(
        "thread_pool.tiering_promotion_gap",
        "duration",
        "-",
        "Time from the delay-ending callback to the first OptimizeMethods item; doubles for each next one. Default 400 ms (measured: 400 then 800 ms)."
    ),
    s!(
        "thread_pool.tiering_optimize_time_min",
        "duration",
        "-",
        "Shortest run time of the delay-ending callback and of an OptimizeMethods item (tier-1 jitting). Default 10 ms, calibrated on the reference captures."
    ),
    s!(
        "thread_pool.tiering_optimize_time_max",
        "duration",
        "-",
        "Longest such run time. Default 50 ms: the runtime's OptimizeMethods quantum."
    ),
    s!(
        "gc.gc_server",
        "true | false",
        "<gcServer enabled>",
        "true: server GC (one heap and GC thread per CPU at high priority), the IIS/ASP.NET default on several CPUs (DOMAIN §8). false: workstation GC."
    ),
    s!(
        "gc.gc_concurrent",
        "true | false",
        "<gcConcurrent enabled>",
        "Background gen2 (server from .NET 4.5, workstation from 4.0). false: every gen2 blocks all managed threads (server GC on .NET 4.0)."
    ),
    s!(
        "gc.gc_gen0_size",
        "size (0B = flavour default, else >= 64KB)",
        "GCgen0size / DOTNET_GCgen0size (gen0 minimum budget, per heap)",
        "Gen0's minimum allocation budget per heap (× logical processors with server GC), used as given but at most half a segment; gen0's maximum budget is raised to it, so a large value means rarer gen0 collections (gc.cpp get_gen0_min_size, init_static_data; DOMAIN §8). 0B: the flavour's default (5/8 of the L3 cache per heap, then adapted to survival)."
    ),
    s!(
        "gc.cache_reload",
        "{ at = duration, every = duration (>= 1s), size = size }",
        "-",
        "A periodic in-memory cache rebuild that allocates `size` of long-lived objects (seed 003: GC during the reload queued ~1000 requests)."
    ),
    s!(
        "classes[].on_call_failure",
        "fail | degrade",
        "-",
        "fail: a failed outgoing call (timeout, error, WSAENOBUFS) fails the request with that outcome. degrade: the request goes on without the call's result; the failure still counts under `outgoing`."
    ),
    s!(
        "connections.client",
        "service_point | sockets_http_handler",
        "HttpWebRequest/ServicePoint (.NET Framework) | HttpClient/SocketsHttpHandler (.NET Core 2.1+, .NET 5+)",
        "The HTTP client whose connection pool outgoing calls go through. Default: the runtime's, service_point with thread_pool.runtime = net48 and sockets_http_handler with net6 and net8 (ASP.NET Core in-process on IIS). Each client reads only its own settings below; setting the other's is refused. `w3sim check` prints the client in effect and its limits."
    ),
    s!(
        "connections.default_connection_limit",
        "integer (0 = unlimited)",
        "ServicePointManager.DefaultConnectionLimit, <connectionManagement maxconnection>",
        "ServicePoint only. Connections per backend endpoint; calls above it wait in the ServicePoint's queue. 0 = Int32.MaxValue, the .NET 4.5+ autoConfig value (seed 003); 2 outside ASP.NET, 10 under ASP.NET without autoConfig, 12 × CPUs under autoConfig on .NET 2.0–4.0 (DOMAIN §6.1)."
    ),
    s!(
        "connections.max_service_point_idle_time",
        "duration",
        "ServicePointManager.MaxServicePointIdleTime",
        "ServicePoint only. Idle pooled connections are closed by this side exactly this long after their last call, so their ports go to TIME_WAIT. Default 100 s (DOMAIN §6.1, row 50)."
    ),
    s!(
        "connections.connection_lease_timeout",
        "duration (0s = -1, never)",
        "ServicePoint.ConnectionLeaseTimeout",
        "ServicePoint only. A connection older than this is closed after its current call, or at once if idle. Default -1 (DOMAIN §6.1, row 51)."
    ),
    s!(
        "connections.request_timeout",
        "duration",
        "HttpWebRequest.Timeout (ServicePoint); HttpClient.Timeout (SocketsHttpHandler)",
        "Both clients. How long a call waits for a connection and its response when its step gives no `timeout`. Default 100 s, the same for both (DOMAIN §6.1 row 52, §6.2)."
    ),
    s!(
        "connections.max_connections_per_server",
        "integer (0 = int.MaxValue, unlimited)",
        "SocketsHttpHandler.MaxConnectionsPerServer",
        "SocketsHttpHandler only. Connections per backend endpoint, pending connects included; calls above it queue in the endpoint's pool (FIFO) until a connection is returned. Loopback endpoints are not exempt (unlike the ServicePoint). Default int.MaxValue (HttpHandlerDefaults.cs; DOMAIN row 54). backends[].max_connections still wins."
    ),
    s!(
        "connections.pooled_connection_idle_timeout",
        "duration (0s = infinite)",
        "SocketsHttpHandler.PooledConnectionIdleTimeout",
        "SocketsHttpHandler only. An idle connection idle longer than this is closed by this side (TIME_WAIT) at the pool's next cleaning scan, which runs every PooledConnectionIdleTimeout / 4 (at least 1 s; 30 s if infinite): with 60 s, 60–75 s after its last call. Default 60 s (.NET 6+; 120 s on .NET Core 2.1–5: DOMAIN row 55, dotnet/runtime #52687; HttpHandlerDefaults.cs, HttpConnectionPoolManager.cs)."
    ),
    s!(
        "connections.pooled_connection_lifetime",
        "duration (0s = infinite)",
        "SocketsHttpHandler.PooledConnectionLifetime",
        "SocketsHttpHandler only. A connection older than this is not reused: closed when a call would take it from the pool, when it comes back after a call, or at a cleaning scan while idle; a new one replaces it (connections turn over, each leaving a port in TIME_WAIT). Default infinite (HttpHandlerDefaults.cs; DOMAIN row 56). For .NET's TimeSpan.Zero (no reuse) use backends[].keep_alive = false."
    ),
    s!(
        "connections.connect_timeout",
        "duration (0s = infinite)",
        "SocketsHttpHandler.ConnectTimeout",
        "SocketsHttpHandler only. A connect whose handshake (backends[].connect_time) has not completed after this is given up: the half-open socket closes without TIME_WAIT and the oldest call waiting for a connection fails (outgoing_error) at that moment. Default infinite: HttpHandlerDefaults.DefaultConnectTimeout is Timeout.InfiniteTimeSpan on .NET 6 and after; the 15 s of PR #66607 (DOMAIN row 57 ⚠) was reverted by PR #68649 before .NET 7 shipped."
    ),
    s!(
        "backends",
        "list of [[backends]] tables",
        "-",
        "Downstream services that `call` steps reach (none by default)."
    ),
    s!("backends[].name", "text", "-", "The name `call` steps use."),
    s!(
        "backends[].latency",
        "duration distribution",
        "-",
        "Time the backend takes to answer once it serves the call."
    ),
    s!(
        "backends[].capacity",
        "integer (0 = unlimited)",
        "-",
        "Calls the backend serves at once; the rest queue there, so its latency grows with load."
    ),
    s!(
        "backends[].error_rate",
        "number 0–1",
        "-",
        "Fraction of calls answered with an error (outgoing_error)."
    ),
    s!(
        "backends[].connect_time",
        "duration distribution",
        "-",
        "TCP handshake of a new connection (default 0.5 ms, a LAN round trip). With SocketsHttpHandler, a handshake longer than connections.connect_timeout is given up."
    ),
    s!(
        "backends[].max_connections",
        "integer (0 = connections.default_connection_limit or max_connections_per_server)",
        "<connectionManagement><add address=… maxconnection=…>; a handler's MaxConnectionsPerServer for this endpoint",
        "Connections to this backend, for either client; with the ServicePoint, loopback backends are unlimited unless set."
    ),
    s!(
        "backends[].keep_alive",
        "true | false",
        "HttpWebRequest.KeepAlive",
        "Reuse pooled connections. false: a new connection per call that this side closes (new HttpClient() per request), so every call leaves a port in TIME_WAIT."
    ),
    s!(
        "backends[].loopback",
        "true | false",
        "ServicePoint.LoopbackConnectionLimit",
        "The backend is on this machine: no connection limit unless `max_connections` is set, and its calls cross AFD's loopback work items (seed 000)."
    ),
    s!(
        "backends[].abort_on_cancel",
        "true | false",
        "HttpWebRequest.Abort on cancellation",
        "true (default): a call cancelled at its timeout aborts its connection; this side closes it, its port stays in TIME_WAIT and the next call needs a new connection (seed 003's churn). false: the late response is read and the connection returns to the pool."
    ),
    s!(
        "backends[].loopback_fast_path",
        "true | false",
        "SIO_LOOPBACK_FAST_PATH (this application's sockets)",
        "With loopback = true: this application's sockets to the backend set the option. Default false: .NET Framework's HttpWebRequest does not set it (DOMAIN §2.2 ⚠, not verified in code). The option is per socket and needs both ends: calls skip AFD's work items only if this and afd.loopback_fast_path (the backend's side) are true and no WFP callout is present (seed 002)."
    ),
    s!(
        "tcp.dynamic_port_start",
        "port 1025–65535",
        "netsh int ipv4 set dynamicport tcp start=",
        "First ephemeral port: 49152 on Vista/2008+ (DOMAIN §7)."
    ),
    s!(
        "tcp.dynamic_port_count",
        "integer ≥ 255",
        "netsh int ipv4 set dynamicport tcp num=",
        "Ephemeral ports: 16384 on Vista/2008+; 3976 for the 2003 MaxUserPort = 5000 profile (DOMAIN §7). When none is free a connect fails with WSAENOBUFS (10055)."
    ),
    s!(
        "tcp.tcp_timed_wait_delay",
        "duration 2–300 s",
        "HKLM\\…\\Tcpip\\Parameters\\TcpTimedWaitDelay",
        "How long the side that closed first keeps a connection in TIME_WAIT. Default 240 s (seed 003; DOMAIN §7 ⚠: 120 s in some docs)."
    ),
    s!(
        "tcp.so_reuse_unicastport",
        "true | false",
        "SO_REUSE_UNICASTPORT (Windows 10/2016+)",
        "When no port is free, reuse one in TIME_WAIT to another endpoint; the same endpoint still in TIME_WAIT gives WSAEADDRINUSE (10048, event 4227). Default false (2008 R2)."
    ),
    s!(
        "tcp.incoming_keep_alive",
        "true | false",
        "HTTP keep-alive",
        "Clients keep their connections open between requests (default) instead of one per request."
    ),
    s!(
        "tcp.incoming_keep_alive_connections",
        "integer",
        "-",
        "Client connections held open to this server; they count in TCPv4\\Connections Established (seed 003: 2–3k normally). Default 0."
    ),
    s!(
        "tcp.incoming_server_closes",
        "true | false",
        "-",
        "Who closes a client connection first, without keep-alive or when a kept-alive connection turns over (incoming_requests_per_connection): true, the server, whose TCB then stays in TIME_WAIT on this machine (local port 80: w3sim\\Incoming Connections In TIME_WAIT); false (default), the client."
    ),
    s!(
        "tcp.incoming_requests_per_connection",
        "integer (0 = never closed)",
        "-",
        "With keep-alive: every this many responses one client connection closes and its client opens a new one (connections carry this many requests on average). Seed 003 saw ~25 new incoming connections per second in TIME_WAIT at ~1000 requests/s: about 40. Default 0: connections stay open."
    ),
    s!(
        "classes[].urls",
        "{ count = integer, zipf = number, mean_size = size }",
        "-",
        "The class requests URLs of a catalogue with Zipf popularity (rank k has probability ∝ 1/k^zipf) and stable lognormal sizes, so kernel-cache hit ratios come out of the workload (seed 001: millions of images)."
    ),
    s!(
        "classes[].cacheable",
        "true | false",
        "KB 817445 (what HTTP.SYS does not cache)",
        "Responses may enter the HTTP.SYS kernel cache: static, anonymous, no query string. Default false."
    ),
    s!(
        "kernel_cache.uri_enable_cache",
        "true | false",
        "HKLM\\…\\Http\\Parameters\\UriEnableCache",
        "The HTTP.SYS kernel-mode response cache. Default 1 (DOMAIN §3.3)."
    ),
    s!(
        "kernel_cache.frequent_hit_threshold",
        "integer",
        "system.webServer/serverRuntime/@frequentHitThreshold",
        "Responses of a URL within frequent_hit_time_period before IIS asks HTTP.SYS to cache it. Default 2."
    ),
    s!(
        "kernel_cache.frequent_hit_time_period",
        "duration",
        "serverRuntime/@frequentHitTimePeriod",
        "Default 10 s."
    ),
    s!(
        "kernel_cache.uri_max_uri_bytes",
        "size",
        "UriMaxUriBytes",
        "Larger responses are not cached. Default 256 KB."
    ),
    s!(
        "kernel_cache.uri_max_cache_megabyte_count",
        "integer MB (0 = auto)",
        "UriMaxCacheMegabyteCount",
        "Cache size cap in megabytes; 0 = sized by HTTP.SYS from memory (no cap modelled). A full cache refuses new entries."
    ),
    s!(
        "kernel_cache.uri_scavenger_period",
        "duration (0s: no scavenger, else >= 1s)",
        "UriScavengerPeriod",
        "The scavenger evicts entries not hit since its previous pass, so an unused entry lives 1–2 periods. Default 120 s."
    ),
    s!(
        "kernel_cache.time_to_live",
        "duration (0s = none)",
        "HTTP_CACHE_POLICY HttpCachePolicyTimeToLive / SecondsToLive",
        "Entries expire this long after they were cached. Seed 001: 900 s. Default 0 = user-invalidates (IIS static files)."
    ),
    s!(
        "kernel_cache.flush_kernel_cache_on_recycle",
        "true | false",
        "- (DOMAIN §3.3 ⚠)",
        "A recycle or idle-timeout exit of the worker process flushes the pool's kernel-cache entries. Commonly stated, not confirmed by an authoritative source; default true (seed 001)."
    ),
    s!(
        "kernel_cache.hit_cpu",
        "duration",
        "-",
        "Kernel CPU (DPC level) to send a cached response. Default 20 us."
    ),
    s!(
        "app_pool.running_at_start",
        "true | false",
        "-",
        "The worker process is already running, warm, when the run begins (default). false: it starts with the first request (OnDemand) and pays the cold start."
    ),
    s!(
        "app_pool.idle_timeout",
        "duration (0s = off)",
        "applicationPools/add/processModel/@idleTimeout",
        "The worker process exits after this long without a request; the next request waits for a cold start. Default 20 min (DOMAIN §3.4)."
    ),
    s!(
        "app_pool.periodic_restart",
        "duration (0s = off)",
        "recycling/periodicRestart/@time",
        "Recycle every this long from the process's start. Default 1740 min (29 h)."
    ),
    s!(
        "app_pool.recycle_at",
        "list of durations",
        "recycling/periodicRestart/schedule, or an administrator's Recycle",
        "Recycles at these times."
    ),
    s!(
        "app_pool.disallow_overlapping_rotation",
        "true | false",
        "recycling/@disallowOverlappingRotation",
        "false (default): the new process starts while the old one drains (overlapped recycle)."
    ),
    s!(
        "app_pool.cold_start",
        "duration",
        "-",
        "From process start until it takes requests (JIT, application start, caches refilled); requests wait in HTTP.SYS meanwhile. Default 5 s (an assumption: no documented value)."
    ),
    s!(
        "app_pool.cold_start_cpu",
        "duration",
        "-",
        "Processor time the cold start uses, on one thread. Default 3 s."
    ),
    s!(
        "app_pool.shutdown_time_limit",
        "duration",
        "processModel/@shutdownTimeLimit",
        "Drain limit of a recycled process before it is killed. Default 90 s."
    ),
    s!(
        "app_pool.startup_time_limit",
        "duration (>= 1s)",
        "processModel/@startupTimeLimit",
        "A worker process not ready this long after it started (app_pool.cold_start longer than this) is killed by WAS; the failure counts towards rapid-fail protection like a crash, and another process starts for the requests still waiting, to fail the same way. Default 90 s (DOMAIN §3.4)."
    ),
    s!(
        "app_pool.rapid_fail_protection",
        "true | false",
        "failure/@rapidFailProtection",
        "Stop the pool after too many crashes: HTTP.SYS answers 503 AppOffline. Default true."
    ),
    s!(
        "app_pool.rapid_fail_protection_max_crashes",
        "integer",
        "failure/@rapidFailProtectionMaxCrashes",
        "Default 5."
    ),
    s!(
        "app_pool.rapid_fail_protection_interval",
        "duration",
        "failure/@rapidFailProtectionInterval",
        "Default 5 min."
    ),
    s!(
        "app_pool.load_balancer_capabilities",
        "http_level | tcp_level",
        "applicationPools/add/failure/@loadBalancerCapabilities",
        "How HTTP.SYS refuses a request it cannot give the pool (queue full, pool stopped by rapid-fail protection): http_level (default) answers 503 (QueueFull, AppOffline); tcp_level closes the connection instead (outcomes connection_reset_queue_full, connection_reset_app_offline), for a balancer that only sees TCP. A farm's balancer counts such a reset as it counts a 503 (load_balancer.remove_on_503)."
    ),
    s!(
        "app_pool.start_mode",
        "on_demand | always_running",
        "applicationPools/add/@startMode",
        "OnDemand (default): a process starts with the first request; AlwaysRunning: at once and after every exit."
    ),
    s!(
        "app_pool.crash_at",
        "list of durations",
        "-",
        "Worker-process crashes injected at these times (the requests it was running are abandoned)."
    ),
    s!(
        "iis.do_dir_monitoring_for_unc",
        "true | false",
        "HKLM\\…\\InetInfo\\Parameters\\DoDirMonitoringForUNC",
        "IIS watches content on a UNC share; each file-change notification walks the share's directories holding IIS's config-cache lock as writer, and new requests block on the read lock meanwhile (seed 001's dumps). Default false (content on local disks)."
    ),
    s!(
        "iis.fcn_mode",
        "0 | 1 | 2",
        "HKLM\\Software\\Microsoft\\ASP.NET\\FCNMode",
        "ASP.NET's file-change notifications: 1 turns them off (seed 001's tuning); otherwise they double the notifications on the share. Default 0."
    ),
    s!(
        "iis.allow_sub_dir_config",
        "true | false",
        "system.applicationHost/sites/virtualDirectoryDefaults/@allowSubDirConfig",
        "true (default): a notification looks for web.config in every subdirectory (unc_directories NAS round trips); false: only the root's (seed 001's tuning)."
    ),
    s!(
        "iis.unc_change_notifications",
        "rate (/ms, /s, /min, /h; at most 1000000000/s)",
        "-",
        "Changes on the UNC share that raise notifications. Default 1/min."
    ),
    s!(
        "iis.unc_directories",
        "integer",
        "-",
        "Directories a notification walks with allowSubDirConfig. Default 500 (millions of images in directories, seed 001)."
    ),
    s!(
        "iis.nas_round_trip",
        "duration distribution",
        "-",
        "One metadata round trip to the NAS over SMB. Default 2 ms."
    ),
    s!(
        "iis.disable_memory_cache",
        "true | false",
        "HKLM\\…\\InetInfo\\Parameters\\DisableMemoryCache",
        "No user-mode static file cache: every `file` step reads its file from the share. Default false."
    ),
    s!(
        "iis.object_cache_ttl",
        "duration (0s disables the cache; 4294967295s or more = unlimited, the registry's 0xFFFFFFFF)",
        "HKLM\\…\\InetInfo\\Parameters\\ObjectCacheTTL",
        "A file in IIS's user-mode file cache not referenced for this long is phased out, and the next request for it reads the share again. Default 30 s; seed 001 set 0xFFFFFFFF. Used by classes' `file` steps."
    ),
    s!(
        "iis.file_attribute_check_threshold",
        "duration (0s checks on every hit; 4294967295s or more = never)",
        "HKLM\\…\\InetInfo\\Parameters\\FileAttributeCheckThreshold",
        "Last-modified caching: a cached file last checked longer ago than this is checked against the share (GetFileAttributesEx: one iis.nas_round_trip) before it is served. Default 5 s; seed 001 set 0xFFFFFFFF. Not used with do_dir_monitoring_for_unc (change notifications instead)."
    ),
    s!(
        "iis.max_cached_file_size",
        "size (B, KB, MB, GB)",
        "HKLM\\…\\InetInfo\\Parameters\\MaxCachedFileSize",
        "Larger files are never kept in the user-mode file cache. Default 256 KB."
    ),
    s!(
        "iis.mem_cache_size",
        "integer, MB (0–2500)",
        "HKLM\\…\\InetInfo\\Parameters\\MemCacheSize",
        "Cap of the user-mode file cache; the least recently referenced files make room. 0 (default) = auto: Windows sizes it from free memory, which w3sim does not simulate, so no cap."
    ),
    s!(
        "classes[].origin",
        "remote | local",
        "-",
        "remote (default): over the network, through the NIC's rings when [nic] is enabled. local: from this machine (127.0.0.1 or a local IP), through AFD's loopback work items on the delayed worker threads (seed 000) unless the fast path applies (seed 002)."
    ),
    s!(
        "classes[].loopback_fast_path",
        "true | false",
        "SIO_LOOPBACK_FAST_PATH (the client's socket)",
        "With origin = local: the client's socket sets the option. Default true, an assumption: the option is off unless an application sets it (DOMAIN §2.2), and turning on this server's side (afd.loopback_fast_path) models a local client and service that both opted in, as seed 000's fix. The option is per socket and needs both ends: the class skips AFD's work items only if this and afd.loopback_fast_path are true and no WFP callout is present (seed 002: a client that does not opt in, e.g. a health probe run by another process, keeps the work-item path)."
    ),
    s!(
        "classes[].probe",
        "{ timeout = duration, failover_after = integer }",
        "-",
        "The class is a health probe (seed 000: the cluster's IsAlive check): a probe not answered (or answered with an error) within `timeout` counts as a timeout at its deadline, as the prober's own timer does, and `failover_after` in a row trigger a failover (counted in summary.json `failovers` and marked)."
    ),
    s!(
        "classes[].enable_session_state",
        "false | true | read_only",
        "<%@ Page EnableSessionState %>, IRequiresSessionState / IReadOnlySessionState, MVC [SessionState]",
        "true: the request takes its session's exclusive lock when a worker thread first runs it (AcquireRequestState) and keeps it until it ends (ReleaseRequestState), so one session's requests run one at a time; read_only: no lock, but it waits while a writer holds one; false (default): no session. See [session_state]."
    ),
    s!(
        "afd.max_dynamic_workers",
        "integer 0–4096",
        "-",
        "Dynamic kernel worker threads of the delayed work queue, at priority 12. Default 16 (DOMAIN §2.1)."
    ),
    s!(
        "afd.additional_delayed_worker_threads",
        "integer 0–4096",
        "HKLM\\SYSTEM\\…\\Executive\\AdditionalDelayedWorkerThreads",
        "More delayed worker threads (seed 000: did not help while a lock was the bottleneck). Default 0."
    ),
    s!(
        "afd.work_item_cpu",
        "duration",
        "-",
        "CPU of one loopback work item at priority 12 (an assumption). Default 20 us."
    ),
    s!(
        "afd.loopback_work_items",
        "true | false",
        "-",
        "Loopback traffic (127.0.0.1 or a local IP) is queued as work items for the kernel's delayed worker threads, as a Microsoft escalation engineer described for Windows Server 2003 (seed 000). Default true. ⚠ DOMAIN §2.1: not confirmed for 2008 R2's new TCP/IP stack; false models a stack where loopback does not take that path (it then goes straight through, like remote traffic without [nic])."
    ),
    s!(
        "afd.loopback_fast_path",
        "true | false",
        "SIO_LOOPBACK_FAST_PATH",
        "This server's sockets set the option (Windows Server 2012+). It needs both ends: each local class or loopback backend uses the fast path only if its own loopback_fast_path is true too (the default), skipping AFD's work items (DOMAIN §2.2). Default false."
    ),
    s!(
        "afd.wfp_callout_present",
        "true | false",
        "Windows Filtering Platform callout",
        "A WFP callout on the connection: the fast path silently does not apply. Default false."
    ),
    s!(
        "afd.filter_items",
        "rate (/ms, /s, /min, /h; at most 1000000000/s)",
        "-",
        "A filter driver's own work items on the delayed queue (seed 000's third-party firewall); 0 = none."
    ),
    s!(
        "afd.filter_lock_hold",
        "duration",
        "-",
        "The exclusive executive resource each filter item holds: while another holds it, workers wait. Default 1 ms."
    ),
    s!(
        "nic.enabled",
        "true | false",
        "-",
        "Model the receive rings and DPCs for remote requests. Default false (requests reach HTTP.SYS directly)."
    ),
    s!(
        "nic.number_of_receive_queues",
        "integer 1–128",
        "Set-NetAdapterRss -NumberOfReceiveQueues",
        "Receive queues, each with a ring and a DPC (RSS). Default 2 (DOMAIN §1)."
    ),
    s!(
        "nic.receive_buffers",
        "integer",
        "adapter advanced property Receive Buffers",
        "Descriptors per ring; a frame that finds it full is discarded (Packets Received Discarded). Driver-specific; default 512."
    ),
    s!(
        "nic.dpc_cpu_per_packet",
        "duration",
        "-",
        "DPC CPU per frame, above every thread. Default 2 us (an assumption)."
    ),
    s!(
        "nic.packets_per_request",
        "integer 1–65535",
        "-",
        "Frames per request. Default 1."
    ),
    s!(
        "nic.initial_rto",
        "duration",
        "netsh int tcp show global (InitialRto)",
        "The sender retransmits a discarded frame after it, doubling per retry. Default 3 s (DOMAIN §1)."
    ),
    s!(
        "afd.filter_lock_hold_cpu",
        "true | false",
        "-",
        "true (default): the lock holder works on a processor at priority 12 while holding it, so higher-priority CPU load (seed 000's busy CPU) stretches the holds; false: the hold is elapsed time."
    ),
    s!(
        "valves",
        "list of { counter, period (>= 1ms), close_above, open_below, action = \"skip_outgoing_calls\" }",
        "-",
        "Control loops inside the application (seed 003's valve: read ASP.NET\\Requests Queued once a second, stop starting outgoing calls above 2000, resume below). The counter is ASP.NET\\Requests Queued, ASP.NET\\Requests Current, System.Runtime\\ThreadPool Queue Length, w3sim\\HTTP.SYS Outstanding Requests or w3sim\\Ports In TIME_WAIT."
    ),
    s!(
        "farm.servers",
        "list of { name, count = 1, names = [], set = [\"key=value\", …], weight = 1 } (up to 1024 servers in all; weight 1–1000)",
        "-",
        "The servers behind the load balancer, in groups: each group is `count` servers (named by `names`, which makes `name` optional, or name-1, name-2, … when count > 1) built from this file with its `set` overrides applied (same keys as --set; farm-wide keys — load, farm, load_balancer, clients, duration, seed… — cannot be set per server). Each server has its own state and random streams (the first keeps the master seed). `weight` is the balancer's weight of each server of the group (ARR's weighted round robin, F5's ratio): round_robin becomes smooth weighted round-robin, least_connections compares requests outstanding per unit of weight, random draws in proportion; equal weights route exactly as none. Empty (default): one server, no load balancer."
    ),
    s!(
        "load_balancer.policy",
        "round_robin | least_connections | random",
        "balancer's load-balancing method",
        "How a user request is given a server in rotation. Default round_robin (assumption: the seed does not say)."
    ),
    s!(
        "load_balancer.probe_interval",
        "duration (0s: no probes, else >= 1ms)",
        "health monitor interval",
        "Every interval the balancer sends a probe request to each server (one outstanding at a time). Default 5 s (assumption: F5's default HTTP monitor interval); seed 003: a removed server is \"reinstated when the load balancer does its next ping\"."
    ),
    s!(
        "load_balancer.probe_timeout",
        "duration",
        "health monitor timeout",
        "A probe not answered 200 within this fails and takes the server out. Default 2 s (assumption)."
    ),
    s!(
        "load_balancer.probe_class",
        "a class name, or \"\"",
        "health monitor URL",
        "The class of the probe request (a class with weight 0 is a page only probes ask for). Default \"\": the first class."
    ),
    s!(
        "load_balancer.hold_time",
        "duration",
        "-",
        "How long a failing server stays out of rotation; then its next passing probe reinstates it. Default 15 s (seed 003)."
    ),
    s!(
        "load_balancer.remove_on_503",
        "true | false",
        "passive health check",
        "A 503 answer to a user request takes the server out for hold_time (seed 003: \"when the server responds with a HTTP 503 error, the load balancer will automatically remove the web server\"), and so does the closed connection that replaces the 503 under app_pool.load_balancer_capabilities = tcp_level. Default true."
    ),
    s!(
        "load_balancer.when_all_out",
        "reject | fail_open",
        "-",
        "With every server out of rotation: reject (default) answers 503 itself (outcome 503_load_balancer_no_server); fail_open sends to all servers anyway."
    ),
    s!(
        "clients.timeout",
        "duration (0s: never)",
        "HttpClient.Timeout / browser timeout",
        "A client gives up on an attempt after this (outcome client_timeout); the server goes on working on it. Default 0s: clients wait for the answer."
    ),
    s!(
        "clients.retries",
        "count (0–100)",
        "-",
        "Retries of a user request after a failed attempt; a retried request is still one user request (summary.json: farm.user_requests vs farm.attempts). Default 0."
    ),
    s!(
        "clients.retry_on",
        "list of \"503\", \"error\", \"timeout\"",
        "-",
        "Which failed attempts are retried: a 503 (from a server or the balancer), another failure, the client's timeout. Default all three."
    ),
    s!(
        "clients.backoff",
        "duration",
        "-",
        "Wait before the first retry. Default 100 ms (assumption)."
    ),
    s!(
        "clients.backoff_multiplier",
        "number >= 1",
        "-",
        "Each further retry waits this many times longer (exponential backoff). Default 2."
    ),
    s!(
        "clients.max_backoff",
        "duration",
        "-",
        "Cap of the backoff. Default 10 s."
    ),
    s!(
        "clients.jitter",
        "none | full | equal",
        "-",
        "none (default): exactly the backoff, so clients that failed together retry together; full: uniform over [0, backoff]; equal: backoff/2 plus uniform over [0, backoff/2]."
    ),
    s!(
        "clients.retry_budget_percent",
        "number, 0–1000 (retries per 100 user requests; 0: no budget)",
        "Finagle RetryBudget percentCanRetry; Envoy retry_budget.budget_percent",
        "A retry budget shared by the clients: each user request deposits this share of a retry, each retry withdraws one, and a retry the budget cannot pay for is not sent (the user request fails with its last answer; summary.json farm.retries_denied_by_budget). It caps the retries' extra load at about this percentage, a retry storm included. Default 0: no budget (Finagle's default is 20)."
    ),
    s!(
        "clients.retry_budget_min_per_second",
        "number >= 0 (retries per second)",
        "Finagle RetryBudget minRetriesPerSec; Envoy retry_budget.min_retry_concurrency",
        "Retries the budget allows whatever the load, so that a light load can still retry. Default 10 (Finagle's)."
    ),
    s!(
        "clients.retry_budget_ttl",
        "duration, 10ms–1h",
        "Finagle RetryBudget ttl",
        "How long a deposit and a withdrawal count (a sliding window of 10 slices). Default 10 s (Finagle's)."
    ),
];

/// Flattens a TOML value into (path, value) rows; list elements use `[]`.
fn flatten(prefix: &str, v: &toml::Value, out: &mut Vec<(String, String)>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&p, v, out);
            }
        }
        toml::Value::Array(a)
            if a.iter().all(|x| x.is_table()) && !a.is_empty() && !is_inline_list(prefix) =>
        {
            for x in a {
                flatten(&format!("{prefix}[]"), x, out);
            }
        }
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

/// Lists whose elements are documented as a whole (inline tables).
fn is_inline_list(path: &str) -> bool {
    [
        "load.schedule",
        "load.bursts",
        "classes[].steps",
        "cpu.noise",
        "backends",
        "valves",
        "farm.servers",
    ]
    .contains(&path)
}

/// (path, default as TOML) for every key of the default scenario, deduplicated.
pub fn default_values() -> Vec<(String, String)> {
    let v = toml::Value::try_from(Scenario::default()).expect("default scenario serialises");
    let mut out = Vec::new();
    flatten("", &v, &mut out);
    let mut seen = std::collections::HashSet::new();
    out.retain(|(p, _)| seen.insert(p.clone()));
    out
}

/// The default of one documented setting, as TOML text (`[]` when the list is empty).
pub fn default_of(path: &str) -> String {
    default_values()
        .into_iter()
        .find(|(p, _)| p == path)
        .map(|(_, v)| v)
        .unwrap_or_else(|| match path {
            "load.schedule" | "load.bursts" | "cpu.noise" | "backends" | "valves"
            | "farm.servers" => "[]".into(),
            p if p.starts_with("backends[]") => match p {
                "backends[].name" => "\"backend\"".into(),
                _ => {
                    // Defaults of a [[backends]] table as the file starts one.
                    let v =
                        toml::Value::try_from(super::BackendSpec::default()).expect("serialises");
                    v.get(p.trim_start_matches("backends[]."))
                        .map_or_else(|| "(none)".into(), |x| x.to_string())
                }
            },
            "gc.cache_reload" | "load.replay" => "(none)".into(),
            "aspnet.hosting" => {
                "(the runtime's: system_web on net48, aspnet_core on net6 and net8)".into()
            }
            "connections.client" => {
                "(the runtime's: service_point on net48, sockets_http_handler on net6 and net8)"
                    .into()
            }
            "classes[].steps" => "[] (uses service)".into(),
            "classes[].rate" => "(none: a share of [load])".into(),
            "classes[].schedule" => "[]".into(),
            "classes[].urls" => "(none)".into(),
            "classes[].probe" => "(none)".into(),
            "classes[].enable_session_state" => "false".into(),
            "thread_pool.processors_per_io_poller" => "12".into(),
            "thread_pool.io_completion_ports" => "1".into(),
            "thread_pool.inline_io_completions" => "false".into(),
            _ => "(none)".into(),
        })
}

/// The text `w3sim show-defaults` prints.
pub fn render() -> String {
    let mut s = String::new();
    for d in SETTINGS {
        s.push_str(&format!("{} = {}\n", d.path, default_of(d.path)));
        s.push_str(&format!("    unit: {}\n", d.unit));
        if d.windows != "-" {
            s.push_str(&format!("    models: {}\n", d.windows));
        }
        s.push_str(&format!("    {}\n\n", d.doc));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_key_is_documented_and_nothing_else() {
        let documented: std::collections::HashSet<&str> = SETTINGS.iter().map(|d| d.path).collect();
        for (p, _) in default_values() {
            assert!(
                documented.contains(p.as_str()),
                "setting `{p}` has no entry in SETTINGS"
            );
        }
        let keys: std::collections::HashSet<String> =
            default_values().into_iter().map(|(p, _)| p).collect();
        for d in SETTINGS {
            let optional = [
                "load.schedule",
                "load.bursts",
                "classes[].steps",
                "cpu.noise",
                "gc.cache_reload",
                "load.replay",
                "classes[].rate",
                "classes[].schedule",
                "classes[].urls",
                "classes[].probe",
                "classes[].enable_session_state",
                "connections.client",
                "aspnet.hosting",
                "thread_pool.processors_per_io_poller",
                "thread_pool.io_completion_ports",
                "thread_pool.inline_io_completions",
            ]
            .contains(&d.path)
                || d.path.starts_with("backends[]");
            assert!(
                optional || keys.contains(d.path),
                "SETTINGS documents `{}` which the scenario does not have",
                d.path
            );
        }
    }
}
