//! # w3sim-models: what w3sim simulates
//!
//! One module per Windows Server component on a request's path. Each is a **sans-IO
//! state machine**: it knows nothing of the event loop, the clock or files. A model
//! is handed the current [`time::SimTime`] and an input, changes its state, and asks
//! for follow-up events through [`effects::Effects`]; the engine in the `w3sim` crate
//! owns the calendar and delivers those events back. Randomness comes only from the
//! random stream a model is handed at construction (one independent stream per
//! component, derived from the scenario's master seed by the engine).
//!
//! Models also own their counters and time-weighted gauges ([`stat`]), named after the
//! perfmon counters they model, so the engine can sample them without knowing their
//! internals.
//!
//! | module | models | seed |
//! |---|---|---|
//! | [`clients`] | open-loop arrival processes (Poisson / constant / rate schedule / bursts), closed-loop users with think time, client timeouts and retries with backoff and jitter | all |
//! | [`http_sys`] | HTTP.SYS per-app-pool request queue (`queueLength`, 503 QueueFull) and the site's connection limit (`maxConnections`, 503 ConnLimit), `Timer_AppPool` after `connectionTimeout` | 003 |
//! | [`iis`] | the IIS worker process: `appConcurrentRequestLimit` (503.2) | 003 |
//! | [`aspnet`] | ASP.NET integrated-mode throttling: `requestQueueLimit`, `maxConcurrentRequestsPerCPU`, native queue | 003 |
//! | [`thread_pool`] | the CLR thread pool: gate thread, hill climbing, IOCP pool | 003 |
//! | [`handler`] | a request class's handler as cpu / wait / alloc steps; sync, async, sync-over-async | 003 |
//! | [`cpu`] | logical processors: strict priorities, processor sharing, context switches | 000, 003 |
//! | [`gc`] | the .NET GC: generations, workstation/server, blocking/background, pause model | 003 |
//! | [`backends`] | downstream services: latency, capacity, errors | 003 |
//! | [`connections`] | the client connection pool per endpoint (.NET Framework's ServicePoint or .NET 6's SocketsHttpHandler): limit, keep-alive, idle close (exact or by a periodic scan), lifetime, ConnectTimeout, aborts | 003 |
//! | [`urls`] | a catalogue of URLs with Zipf popularity and stable sizes | 001 |
//! | [`kernel_cache`] | the HTTP.SYS kernel response cache: frequent-hit admission, TTL, scavenger, flushes | 001 |
//! | [`file_cache`] | IIS's user-mode static file cache: `ObjectCacheTTL`, `FileAttributeCheckThreshold` (last-modified checks against the share), `MaxCachedFileSize`, `MemCacheSize`, emptied when the worker process exits | 001 |
//! | [`config_cache`] | IIS's configuration-cache lock held across NAS I/O by file-change notifications | 001 |
//! | [`app_pool`] | the application pool's worker-process lifecycle: idle timeout, recycles, cold start, `startupTimeLimit`, rapid-fail protection | 001 |
//! | [`nic`] | the network adapter's receive side: RSS queues, rx descriptor rings, DPCs, Packets Received Discarded and RTO retransmission | — |
//! | [`afd`] | AFD loopback work items on the delayed work queue: 16 (+Additional) priority-12 kernel workers, a filter driver's exclusive lock, the loopback fast path and WFP | 000, 002 |
//! | [`request_timeout`] | ASP.NET's `executionTimeout`: the request timeout manager's 15 s timer (a thread-pool callback) aborting requests running synchronously past it, HTTP 500 "Request timed out" | — |
//! | [`session_state`] | ASP.NET session state (InProc): the per-session exclusive lock, read-only pages, polling every 500 ms, `RequestQueueLimitPerSession`, `executionTimeout` of a waiting request | — |
//! | [`valve`] | an in-application control loop that samples a counter and switches behaviour (seed 003's valve) | 003 |
//! | [`load_balancer`] | a load balancer in front of a farm: round-robin / least connections / random, health probes, removal for a hold time after a 503 | 003 |
//! | [`tcp`] | ephemeral ports, TIME_WAIT, WSAENOBUFS / WSAEADDRINUSE, connection counts | 003 |
//! | [`deadlines`] | not a component: a queue of same-span deadlines with one timer outstanding (clients' timeouts, idle connections, outgoing calls' timeouts) | — |

pub mod afd;
pub mod app_pool;
pub mod aspnet;
pub mod backends;
pub mod clients;
pub mod clr_reference;
pub mod config_cache;
pub mod connections;
pub mod cpu;
pub mod deadlines;
pub mod dist;
pub mod effects;
pub mod file_cache;
pub mod gc;
pub mod handler;
pub mod http_sys;
pub mod iis;
pub mod kernel_cache;
pub mod load_balancer;
pub mod nic;
pub mod request;
pub mod request_timeout;
pub mod session_state;
pub mod stat;
pub mod tcp;
pub mod thread_pool;
pub mod time;
pub mod urls;
pub mod valve;
