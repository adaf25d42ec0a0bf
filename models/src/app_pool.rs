//! The application pool and its worker-process (w3wp) lifecycle, as run by WAS.
//!
//! **Models** DOMAIN §3.4: which worker process, if any, can take a request, and when
//! processes start, become ready, recycle, crash and exit. It matters for queueing (requests
//! wait in HTTP.SYS during a cold start) and for caches (every process exit empties the
//! in-process caches, and — with flush-on-recycle — the pool's kernel-cache entries).
//! * **On-demand start** (`startMode` OnDemand): with no process, a request triggers a start;
//!   it and later arrivals [`Admit::Wait`] in HTTP.SYS until the process is ready
//!   (`cold_start_ns`: process creation, CLR start, JIT, application start). At
//!   [`AppPoolEvent::ProcessReady`] the waiting requests are handed to that process (its
//!   `released` field; the engine reports each one's end with
//!   [`AppPool::request_finished`]). `AlwaysRunning`: WAS starts a process at
//!   [`AppPool::start`] and again whenever the pool is left without one.
//! * **Idle timeout** (`processModel/@idleTimeout`): the process exits once it has had no
//!   request in progress and none arriving for `idle_timeout_ns`.
//! * **Recycles** (`periodicRestart/@time` from the process's start, scheduled times):
//!   overlapped (default): the new process starts at once; the old one keeps taking requests
//!   until the new one is ready, then stops taking them and drains what it has, up to
//!   `shutdownTimeLimit`, after which it is killed ([`ExitReason::ShutdownTimeLimit`]: the
//!   engine abandons what still runs). Not overlapped (`disallowOverlappingRotation`): the old
//!   process stops taking requests at once, drains, exits, and only then does the new one
//!   start; arrivals wait.
//! * **Crashes** (scenario-injected at `crashes_ns`): the process serving requests (or, if none,
//!   the one starting) dies; its requests are abandoned by the engine
//!   (`Connection_Abandoned_By_AppPool`). Requests still waiting for a process keep waiting and
//!   a new process is started for them. **Rapid-fail protection**: `rapid_fail_max_crashes`
//!   crashes within `rapid_fail_interval_ns` stop the pool ([`PoolState::RapidFailStopped`],
//!   [`AppPoolEvent::Offline`]): every other process exits ([`ExitReason::PoolStopped`]),
//!   requests waiting are to be answered 503 by the engine, and every arrival gets
//!   [`Admit::Offline`] (HTTPERR `AppOffline`) until [`AppPool::enable`].
//!
//! **Seed**: 001. The pool recycled on the 20-minute idle timeout, and each exit flushed the
//! HTTP.SYS cache (`UlFlushCacheByProcess` from `UlDetachProcessFromAppPool`).
//!
//! **Events** ([`AppPool::poll`]): `ProcessStarting`, `ProcessReady`, `ProcessExiting` (flush
//! caches per [`ExitReason::flush_reason`]; abandon the process's running requests if
//! [`ExitReason::abandons_requests`]), `Offline`.
//!
//! **Defaults and sources** ([`AppPoolConfig::default`]):
//! * `idle_timeout_ns` 20 min: `processModel/@idleTimeout` 00:20:00 (processModel.md); None = 0.
//! * `periodic_restart_ns` 1740 min (29 h): `recycling/periodicRestart/@time` (tuning-iis-10.md).
//! * `overlapped_recycle` true: `disallowOverlappingRotation` false (tuning-iis-10.md).
//! * `cold_start_ns` 5 s: ⚠ no documented value; a parameter (an empty ASP.NET app is well
//!   under a second, a large one with JIT and warm-up tens of seconds).
//! * `shutdown_time_limit_ns` 90 s: `processModel/@shutdownTimeLimit` (processModel.md).
//! * `startup_time_limit_ns` 90 s: `processModel/@startupTimeLimit` (processModel.md).
//! * `rapid_fail_max_crashes` 5, `rapid_fail_interval_ns` 5 min: `failure/@rapidFailProtection`
//!   (failure.md). 0 crashes = protection off.
//! * `start_mode_always_running` false: `startMode` OnDemand (applicationPools/add).
//!
//! * **`startupTimeLimit`** (90 s): a process whose cold start is longer is killed at the
//!   limit ([`ExitReason::StartupTimeLimit`]); the failure counts towards rapid-fail
//!   protection like a crash (DOMAIN §3.4), and WAS starts another for the requests still
//!   waiting — which fails the same way, so a warm-up longer than the limit never serves,
//!   and five such failures within the interval stop the pool (503 AppOffline).
//!
//! **Leaves out**: pings and hung
//! processes, memory/request-count recycles, web gardens (`maxProcesses` > 1),
//! `idleTimeoutAction` Suspend, the CPU cost of a start (the engine may charge it between
//! `ProcessStarting` and `ProcessReady`), WAS's own restart delays, and which process a
//! kernel-cache entry belongs to.

use std::collections::VecDeque;

use crate::effects::Effects;
use crate::kernel_cache::FlushReason;
use crate::stat::{Counter, Gauge};
use crate::time::{SECONDS, SimTime};

/// Settings of one application pool (`applicationPools/add`).
#[derive(Clone, Debug, PartialEq)]
pub struct AppPoolConfig {
    /// `processModel/@idleTimeout`; None = 0 = disabled.
    pub idle_timeout_ns: Option<u64>,
    /// `recycling/periodicRestart/@time`, measured from each process's start; None = 0.
    pub periodic_restart_ns: Option<u64>,
    /// Recycles at these absolute times (`periodicRestart/schedule`, or on demand).
    pub scheduled_recycles_ns: Vec<u64>,
    /// `!disallowOverlappingRotation`.
    pub overlapped_recycle: bool,
    /// From process start until it takes requests.
    pub cold_start_ns: u64,
    /// `processModel/@shutdownTimeLimit`: drain limit before a recycled process is killed.
    pub shutdown_time_limit_ns: u64,
    /// `processModel/@startupTimeLimit`: a process not ready this long after it started is
    /// killed, and the failure counts towards rapid-fail protection.
    pub startup_time_limit_ns: u64,
    /// `failure/@rapidFailProtectionMaxCrashes`; 0 = rapid-fail protection off.
    pub rapid_fail_max_crashes: u32,
    /// `failure/@rapidFailProtectionInterval`.
    pub rapid_fail_interval_ns: u64,
    /// `startMode` AlwaysRunning (true) / OnDemand (false).
    pub start_mode_always_running: bool,
    /// Scenario-injected worker-process crashes at these absolute times.
    pub crashes_ns: Vec<u64>,
}

impl Default for AppPoolConfig {
    fn default() -> Self {
        Self {
            idle_timeout_ns: Some(20 * 60 * SECONDS),
            periodic_restart_ns: Some(1740 * 60 * SECONDS),
            scheduled_recycles_ns: Vec::new(),
            overlapped_recycle: true,
            cold_start_ns: 5 * SECONDS,
            shutdown_time_limit_ns: 90 * SECONDS,
            startup_time_limit_ns: 90 * SECONDS,
            rapid_fail_max_crashes: 5,
            rapid_fail_interval_ns: 5 * 60 * SECONDS,
            start_mode_always_running: false,
            crashes_ns: Vec::new(),
        }
    }
}

/// The pool as WAS / IIS Manager would describe it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolState {
    /// No process; the next request starts one (OnDemand).
    Stopped,
    /// A process is starting and none takes requests: arrivals wait.
    Starting,
    /// A process takes requests (an old one may still be draining).
    Running,
    /// A recycle is under way: overlapped, the old process serves while the new one starts;
    /// not overlapped, the old one drains and arrivals wait.
    Recycling,
    /// Rapid-fail protection tripped: 503 AppOffline until [`AppPool::enable`].
    RapidFailStopped,
}

/// What happens to an arriving request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Process `generation` takes it now.
    Take { generation: u32 },
    /// It waits in HTTP.SYS for a process (handed over at [`AppPoolEvent::ProcessReady`]).
    Wait,
    /// 503 AppOffline.
    Offline,
}

/// Why a worker process exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// `idleTimeout` elapsed with no request.
    IdleTimeout,
    /// `periodicRestart/@time` recycle; the process drained its requests.
    PeriodicRecycle,
    /// Scheduled / on-demand recycle; the process drained its requests.
    ScheduledRecycle,
    /// The process crashed.
    Crash,
    /// A recycled process still had requests at `shutdownTimeLimit` and was killed.
    ShutdownTimeLimit,
    /// Rapid-fail protection stopped the pool while this process was alive.
    PoolStopped,
    /// The process was not ready within `startupTimeLimit` and was killed (a failure for
    /// rapid-fail protection).
    StartupTimeLimit,
}

impl ExitReason {
    /// Whether requests still running in the process are abandoned
    /// (`Connection_Abandoned_By_AppPool`).
    pub fn abandons_requests(self) -> bool {
        matches!(
            self,
            ExitReason::Crash | ExitReason::ShutdownTimeLimit | ExitReason::PoolStopped
        )
    }

    /// The kernel-cache flush this exit causes when flush-on-recycle is configured.
    pub fn flush_reason(self) -> FlushReason {
        match self {
            ExitReason::IdleTimeout => FlushReason::IdleTimeout,
            ExitReason::PoolStopped => FlushReason::Stop,
            _ => FlushReason::Recycle,
        }
    }
}

/// What the engine must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppPoolEvent {
    /// A new w3wp is starting (the engine may charge its start-up CPU).
    ProcessStarting { generation: u32 },
    /// The process takes requests now; `released` waiting requests are handed to it (the
    /// engine dequeues them and reports each one's end with `request_finished(generation)`).
    ProcessReady { generation: u32, released: u32 },
    /// The process exits: flush caches; abandon its requests if the reason says so.
    ProcessExiting { generation: u32, reason: ExitReason },
    /// Rapid-fail protection tripped: answer waiting requests and every arrival 503 AppOffline.
    Offline,
}

/// The pool's timers (stale ones are ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppPoolTimer {
    /// Process `generation` finished its cold start.
    Ready { generation: u32 },
    /// Process `generation` may have been idle for `idle_timeout` (one such timer per
    /// process at a time, re-armed if a request came and went meanwhile: not one per
    /// idle period, which a lightly loaded pool starts after nearly every request).
    Idle { generation: u32 },
    /// Process `generation` reached `periodicRestart/@time`.
    Periodic { generation: u32 },
    /// `scheduled_recycles_ns[index]`.
    Scheduled { index: u32 },
    /// `crashes_ns[index]`.
    Crash { index: u32 },
    /// Process `generation` reached `shutdownTimeLimit` while draining.
    DrainLimit { generation: u32 },
    /// Process `generation` reached `startupTimeLimit`, perhaps still starting.
    StartupLimit { generation: u32 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Starting,
    Accepting,
    Draining,
}

#[derive(Clone, Copy, Debug)]
struct Proc {
    generation: u32,
    phase: Phase,
    in_flight: u32,
    /// When the process last ran out of requests, while it has none.
    idle_since: Option<SimTime>,
    /// An [`AppPoolTimer::Idle`] of this process is pending.
    idle_timer: bool,
    /// A recycle of this process is under way, for this reason.
    recycle: Option<ExitReason>,
}

/// One application pool and its WAS counters.
#[derive(Debug)]
pub struct AppPool {
    cfg: AppPoolConfig,
    procs: Vec<Proc>,
    last_generation: u32,
    /// Requests admitted with `Wait` and not yet handed to a process.
    waiting_count: u32,
    /// A non-overlapped recycle: start the new process when the old one has exited.
    spawn_after_drain: bool,
    rapid_fail_stopped: bool,
    crash_times: VecDeque<SimTime>,
    events: VecDeque<AppPoolEvent>,
    /// Worker processes started (`APP_POOL_WAS\Total Worker Processes Created`).
    pub starts: Counter,
    /// Process exits on idle timeout.
    pub recycles_idle_timeout: Counter,
    /// Periodic recycles started.
    pub recycles_periodic: Counter,
    /// Scheduled recycles started.
    pub recycles_scheduled: Counter,
    /// Crashes of a live process.
    pub recycles_crash: Counter,
    /// `APP_POOL_WAS\Total Application Pool Recycles`: periodic + scheduled (⚠ whether WAS
    /// also counts idle shutdowns and crash restarts is not confirmed).
    pub total_app_pool_recycles: Counter,
    /// `APP_POOL_WAS\Total Worker Process Failures` (crashes and starts past
    /// `startupTimeLimit`).
    pub total_worker_process_failures: Counter,
    /// `APP_POOL_WAS\Total Worker Process Startup Failures`: processes killed at
    /// `startupTimeLimit`.
    pub startup_failures: Counter,
    /// `APP_POOL_WAS\Current Worker Processes` (starting, serving and draining).
    pub current_worker_processes: Gauge,
    /// Requests refused with 503 AppOffline.
    pub offline: Counter,
    /// Recycled processes killed at `shutdownTimeLimit`.
    pub forced_shutdowns: Counter,
    /// Times rapid-fail protection stopped the pool.
    pub rapid_fail_trips: Counter,
    /// Requests waiting in HTTP.SYS for a process to become ready.
    pub waiting: Gauge,
}

impl AppPool {
    pub fn new(cfg: AppPoolConfig) -> Self {
        Self {
            cfg,
            procs: Vec::new(),
            last_generation: 0,
            waiting_count: 0,
            spawn_after_drain: false,
            rapid_fail_stopped: false,
            crash_times: VecDeque::new(),
            events: VecDeque::new(),
            starts: Counter::default(),
            recycles_idle_timeout: Counter::default(),
            recycles_periodic: Counter::default(),
            recycles_scheduled: Counter::default(),
            recycles_crash: Counter::default(),
            total_app_pool_recycles: Counter::default(),
            total_worker_process_failures: Counter::default(),
            startup_failures: Counter::default(),
            current_worker_processes: Gauge::new(),
            offline: Counter::default(),
            forced_shutdowns: Counter::default(),
            rapid_fail_trips: Counter::default(),
            waiting: Gauge::new(),
        }
    }

    pub fn config(&self) -> &AppPoolConfig {
        &self.cfg
    }

    /// Arms the scheduled recycles and injected crashes (times before `now` are ignored) and,
    /// with AlwaysRunning, starts a process.
    pub fn start(&mut self, now: SimTime, fx: &mut impl Effects<AppPoolTimer>) {
        for (i, &t) in self.cfg.scheduled_recycles_ns.iter().enumerate() {
            if t >= now {
                fx.at(t, AppPoolTimer::Scheduled { index: i as u32 });
            }
        }
        for (i, &t) in self.cfg.crashes_ns.iter().enumerate() {
            if t >= now {
                fx.at(t, AppPoolTimer::Crash { index: i as u32 });
            }
        }
        if self.cfg.start_mode_always_running {
            self.spawn(now, fx);
        }
    }

    /// Like [`AppPool::start`], but a worker process is already running at `now`, warm
    /// (the simulated server was serving before the run began): it takes requests at once.
    pub fn start_warm(&mut self, now: SimTime, fx: &mut impl Effects<AppPoolTimer>) {
        let always = self.cfg.start_mode_always_running;
        self.cfg.start_mode_always_running = false;
        self.start(now, fx);
        self.cfg.start_mode_always_running = always;
        self.spawn_after(now, 0, fx);
    }

    pub fn state(&self) -> PoolState {
        if self.rapid_fail_stopped {
            return PoolState::RapidFailStopped;
        }
        let starting = self.procs.iter().any(|p| p.phase == Phase::Starting);
        let accepting = self.procs.iter().any(|p| p.phase == Phase::Accepting);
        match (starting, accepting) {
            (true, true) => PoolState::Recycling,
            (false, true) => PoolState::Running,
            (true, false) => PoolState::Starting,
            (false, false) if self.procs.is_empty() => PoolState::Stopped,
            (false, false) => PoolState::Recycling,
        }
    }

    /// The process that takes new requests now, if any.
    pub fn current_generation(&self) -> Option<u32> {
        self.accepting().map(|i| self.procs[i].generation)
    }

    /// Requests admitted with [`Admit::Wait`] and not yet handed to a process.
    pub fn waiting_requests(&self) -> u32 {
        self.waiting_count
    }

    /// Requests in progress in process `generation` (0 if it no longer exists).
    pub fn in_flight(&self, generation: u32) -> u32 {
        self.find(generation).map_or(0, |i| self.procs[i].in_flight)
    }

    pub fn poll(&mut self) -> Option<AppPoolEvent> {
        self.events.pop_front()
    }

    fn accepting(&self) -> Option<usize> {
        self.procs.iter().position(|p| p.phase == Phase::Accepting)
    }

    fn find(&self, generation: u32) -> Option<usize> {
        self.procs.iter().position(|p| p.generation == generation)
    }

    fn spawn(&mut self, now: SimTime, fx: &mut impl Effects<AppPoolTimer>) {
        self.spawn_after(now, self.cfg.cold_start_ns, fx);
    }

    /// Starts a process that is ready after `cold_start_ns`.
    fn spawn_after(
        &mut self,
        now: SimTime,
        cold_start_ns: u64,
        fx: &mut impl Effects<AppPoolTimer>,
    ) {
        self.last_generation = self.last_generation.wrapping_add(1);
        let generation = self.last_generation;
        self.procs.push(Proc {
            generation,
            phase: Phase::Starting,
            in_flight: 0,
            idle_since: None,
            idle_timer: false,
            recycle: None,
        });
        self.starts.inc();
        self.current_worker_processes.inc(now);
        self.events
            .push_back(AppPoolEvent::ProcessStarting { generation });
        fx.at(
            now.saturating_add(cold_start_ns),
            AppPoolTimer::Ready { generation },
        );
        if cold_start_ns > self.cfg.startup_time_limit_ns {
            // Ready at cold_start_ns exactly at the limit counts as in time.
            fx.at(
                now.saturating_add(self.cfg.startup_time_limit_ns),
                AppPoolTimer::StartupLimit { generation },
            );
        }
        if let Some(p) = self.cfg.periodic_restart_ns.filter(|&p| p > 0) {
            fx.at(now.saturating_add(p), AppPoolTimer::Periodic { generation });
        }
    }

    fn arm_idle(&mut self, now: SimTime, i: usize, fx: &mut impl Effects<AppPoolTimer>) {
        let p = &mut self.procs[i];
        p.idle_since = Some(now);
        if let Some(idle) = self.cfg.idle_timeout_ns.filter(|&t| t > 0)
            && !p.idle_timer
        {
            p.idle_timer = true;
            fx.at(
                now.saturating_add(idle),
                AppPoolTimer::Idle {
                    generation: p.generation,
                },
            );
        }
    }

    /// Removes process `i` and reports its exit; restarts a process if the pool needs one.
    fn exit(
        &mut self,
        now: SimTime,
        i: usize,
        reason: ExitReason,
        fx: &mut impl Effects<AppPoolTimer>,
    ) {
        let p = self.procs.remove(i);
        self.current_worker_processes.dec(now);
        self.events.push_back(AppPoolEvent::ProcessExiting {
            generation: p.generation,
            reason,
        });
        if self.rapid_fail_stopped {
            return;
        }
        let live = self
            .procs
            .iter()
            .any(|p| matches!(p.phase, Phase::Starting | Phase::Accepting));
        if live {
            return;
        }
        let draining = !self.procs.is_empty();
        if self.spawn_after_drain {
            if !draining {
                self.spawn_after_drain = false;
                self.spawn(now, fx);
            }
        } else if self.waiting_count > 0 || self.cfg.start_mode_always_running {
            self.spawn(now, fx);
        }
    }

    fn begin_drain(&mut self, now: SimTime, i: usize, fx: &mut impl Effects<AppPoolTimer>) {
        let p = &mut self.procs[i];
        p.phase = Phase::Draining;
        let reason = p.recycle.unwrap_or(ExitReason::ScheduledRecycle);
        if p.in_flight == 0 {
            self.exit(now, i, reason, fx);
        } else {
            fx.at(
                now.saturating_add(self.cfg.shutdown_time_limit_ns),
                AppPoolTimer::DrainLimit {
                    generation: p.generation,
                },
            );
        }
    }

    /// Starts a recycle of the serving process; false if there is none or one is under way.
    fn recycle(
        &mut self,
        now: SimTime,
        reason: ExitReason,
        fx: &mut impl Effects<AppPoolTimer>,
    ) -> bool {
        let Some(i) = self.accepting() else {
            return false;
        };
        if self.procs[i].recycle.is_some() || self.procs.iter().any(|p| p.phase == Phase::Starting)
        {
            return false;
        }
        match reason {
            ExitReason::PeriodicRecycle => self.recycles_periodic.inc(),
            _ => self.recycles_scheduled.inc(),
        }
        self.total_app_pool_recycles.inc();
        self.procs[i].recycle = Some(reason);
        if self.cfg.overlapped_recycle {
            self.spawn(now, fx);
        } else {
            self.spawn_after_drain = true;
            self.begin_drain(now, i, fx);
        }
        true
    }

    /// Asks the pool to recycle now (an administrator's "Recycle"); false if there is no
    /// serving process or a recycle is already under way.
    pub fn recycle_now(&mut self, now: SimTime, fx: &mut impl Effects<AppPoolTimer>) -> bool {
        self.recycle(now, ExitReason::ScheduledRecycle, fx)
    }

    /// A request arrived for the pool.
    pub fn request_arrived(&mut self, now: SimTime, fx: &mut impl Effects<AppPoolTimer>) -> Admit {
        if self.rapid_fail_stopped {
            self.offline.inc();
            return Admit::Offline;
        }
        if let Some(i) = self.accepting() {
            let p = &mut self.procs[i];
            p.in_flight += 1;
            p.idle_since = None;
            return Admit::Take {
                generation: p.generation,
            };
        }
        self.waiting_count += 1;
        self.waiting.inc(now);
        let starting = self.procs.iter().any(|p| p.phase == Phase::Starting);
        if !starting && !self.spawn_after_drain {
            self.spawn(now, fx);
        }
        Admit::Wait
    }

    /// A request that was told to [`Admit::Wait`] left the queue before a process took it
    /// (queue timeout, client gone).
    pub fn wait_cancelled(&mut self, now: SimTime) {
        if self.waiting_count > 0 {
            self.waiting_count -= 1;
            self.waiting.dec(now);
        }
    }

    /// A request served by process `generation` finished (unknown generations are ignored:
    /// the process has exited and its requests were abandoned).
    pub fn request_finished(
        &mut self,
        now: SimTime,
        generation: u32,
        fx: &mut impl Effects<AppPoolTimer>,
    ) {
        let Some(i) = self.find(generation) else {
            return;
        };
        let p = &mut self.procs[i];
        p.in_flight = p.in_flight.saturating_sub(1);
        if p.in_flight > 0 {
            return;
        }
        match p.phase {
            Phase::Accepting => self.arm_idle(now, i, fx),
            Phase::Draining => {
                let reason = p.recycle.unwrap_or(ExitReason::ScheduledRecycle);
                self.exit(now, i, reason, fx);
            }
            Phase::Starting => {}
        }
    }

    /// An administrator starts a rapid-fail-stopped pool again.
    pub fn enable(&mut self, now: SimTime, fx: &mut impl Effects<AppPoolTimer>) {
        if !self.rapid_fail_stopped {
            return;
        }
        self.rapid_fail_stopped = false;
        self.crash_times.clear();
        if self.cfg.start_mode_always_running {
            self.spawn(now, fx);
        }
    }

    pub fn on_timer(&mut self, now: SimTime, t: AppPoolTimer, fx: &mut impl Effects<AppPoolTimer>) {
        match t {
            AppPoolTimer::Ready { generation } => {
                let Some(i) = self.find(generation) else {
                    return;
                };
                if self.procs[i].phase != Phase::Starting {
                    return;
                }
                // The previous serving process (overlapped recycle) stops taking requests.
                let old = self.accepting().map(|o| self.procs[o].generation);
                let released = std::mem::take(&mut self.waiting_count);
                self.waiting.set(now, 0);
                let p = &mut self.procs[i];
                p.phase = Phase::Accepting;
                p.in_flight += released;
                self.events.push_back(AppPoolEvent::ProcessReady {
                    generation,
                    released,
                });
                if released == 0 {
                    self.arm_idle(now, i, fx);
                }
                if let Some(o) = old.and_then(|g| self.find(g)) {
                    self.begin_drain(now, o, fx);
                }
            }
            AppPoolTimer::Idle { generation } => {
                let Some(i) = self.find(generation) else {
                    return;
                };
                self.procs[i].idle_timer = false;
                let idle = self.cfg.idle_timeout_ns.unwrap_or(0);
                let Some(since) = self.procs[i].idle_since else {
                    // Busy: the next idle period arms a timer again.
                    return;
                };
                let due = since.saturating_add(idle);
                if due > now {
                    // A newer idle period: wait for its end.
                    self.procs[i].idle_timer = true;
                    fx.at(due, AppPoolTimer::Idle { generation });
                    return;
                }
                let p = self.procs[i];
                let starting = self.procs.iter().any(|p| p.phase == Phase::Starting);
                if p.phase == Phase::Accepting
                    && p.in_flight == 0
                    && p.recycle.is_none()
                    && !starting
                {
                    self.recycles_idle_timeout.inc();
                    self.exit(now, i, ExitReason::IdleTimeout, fx);
                }
            }
            AppPoolTimer::Periodic { generation } => {
                if self.current_generation() == Some(generation) {
                    self.recycle(now, ExitReason::PeriodicRecycle, fx);
                }
            }
            AppPoolTimer::Scheduled { .. } => {
                self.recycle(now, ExitReason::ScheduledRecycle, fx);
            }
            AppPoolTimer::DrainLimit { generation } => {
                if let Some(i) = self.find(generation)
                    && self.procs[i].phase == Phase::Draining
                {
                    self.forced_shutdowns.inc();
                    self.exit(now, i, ExitReason::ShutdownTimeLimit, fx);
                }
            }
            AppPoolTimer::Crash { .. } => self.crash(now, fx),
            AppPoolTimer::StartupLimit { generation } => {
                if let Some(i) = self.find(generation)
                    && self.procs[i].phase == Phase::Starting
                {
                    self.startup_failures.inc();
                    self.fail(now, i, ExitReason::StartupTimeLimit, fx);
                    // An overlapped recycle whose new process never came up: the old one
                    // goes on serving and may be recycled again.
                    if let Some(o) = self.accepting()
                        && !self.procs.iter().any(|p| p.phase == Phase::Starting)
                    {
                        self.procs[o].recycle = None;
                    }
                }
            }
        }
    }

    fn crash(&mut self, now: SimTime, fx: &mut impl Effects<AppPoolTimer>) {
        let target = self
            .accepting()
            .or_else(|| self.procs.iter().position(|p| p.phase == Phase::Starting));
        let Some(i) = target else {
            return;
        };
        self.recycles_crash.inc();
        self.fail(now, i, ExitReason::Crash, fx);
    }

    /// Process `i` failed (`reason`: a crash, or a start past `startupTimeLimit`): it exits,
    /// and rapid-fail protection counts the failure; enough of them stop the pool.
    fn fail(
        &mut self,
        now: SimTime,
        i: usize,
        reason: ExitReason,
        fx: &mut impl Effects<AppPoolTimer>,
    ) {
        self.total_worker_process_failures.inc();
        let limit = self.cfg.rapid_fail_max_crashes;
        if limit > 0 {
            self.crash_times.push_back(now);
            let window = self.cfg.rapid_fail_interval_ns;
            while let Some(&t) = self.crash_times.front() {
                if now.saturating_sub(t) >= window {
                    self.crash_times.pop_front();
                } else {
                    break;
                }
            }
            if self.crash_times.len() >= limit as usize {
                self.rapid_fail_stopped = true;
                self.rapid_fail_trips.inc();
            }
        }
        if self.rapid_fail_stopped {
            // The failed process, then every other one; waiting requests get 503.
            self.exit(now, i, reason, fx);
            while !self.procs.is_empty() {
                self.exit(now, 0, ExitReason::PoolStopped, fx);
            }
            self.spawn_after_drain = false;
            self.waiting_count = 0;
            self.waiting.set(now, 0);
            self.events.push_back(AppPoolEvent::Offline);
        } else {
            self.exit(now, i, reason, fx);
        }
    }
}
