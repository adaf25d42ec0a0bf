//! ASP.NET's request timeout: `<httpRuntime executionTimeout>` enforced by `Thread.Abort`.
//!
//! **Models** `System.Web.RequestTimeoutManager` and `HttpContext.MustTimeout` (.NET
//! Framework 4.x Reference Source, `RequestTimeoutManager.cs`, `HttpContext.cs`):
//! - a `System.Threading.Timer` with a **15 s period** (`_timerPeriod`, "15 second init
//!   precision") runs `CancelTimedOutRequests`. A timer callback is a **thread-pool work
//!   item**: when the pool is starved the check itself waits in the queue, like every
//!   other callback. Only one callback scans at a time (`_inProgressLock`): a callback that
//!   finds another one scanning returns at once;
//! - a request is aborted only while it runs **synchronously** on its thread (inside a
//!   "cancellable period": a synchronous handler, including one blocked in `.Result` on
//!   an async call) and only once **more than** `executionTimeout` (110 s) has passed since
//!   its execution last resumed (`_timeoutStartTimeUtcTicks`: the most recent async
//!   completion of the pipeline — for a request that waited for its session lock, when it
//!   got the lock; otherwise when a worker thread first took it). So a request is aborted
//!   between `executionTimeout` and `executionTimeout` + 15 s after it started, later if
//!   the callback waited for a thread;
//! - the aborted thread catches the `ThreadAbortException`, calls `Thread.ResetAbort` and
//!   the request ends with **HTTP 500 "Request timed out"** (`HttpException` 3001), counted
//!   in `ASP.NET Applications\Requests Timed Out`; the thread goes back to the pool;
//! - an **async** handler's request is not aborted (its thread was given back; ASP.NET 4.5
//!   only cancels `Request.TimedOutToken`, which an application may ignore), and nothing is
//!   aborted with `<compilation debug="true">` (`CompilationUtil.IsDebuggingEnabled`).
//!
//! The engine owns the requests: it asks [`RequestTimeoutManager::must_timeout`] about each
//! one a callback scans and delivers the abort.
//!
//! **Seed**: none of the four; DOMAIN §4.5 (`executionTimeout` 110 s, ⚠ from memory there:
//! re-read here in the Reference Source). It bounds how long a hung dependency without a
//! timeout of its own can hold worker threads: the threads come back 110–125 s later.
//!
//! The timer is created with the application's `HttpRuntime`: the engine calls
//! [`RequestTimeoutManager::restart`] when a worker process becomes ready, so the 15 s grid
//! follows the process serving the requests.
//!
//! **Leaves out**: a second timer for the old process of an overlapped recycle (its requests
//! are checked on the new process's grid); an abort of a thread
//! running CPU work is delivered when that step ends, not at once (the CLR delivers it at
//! the next managed instruction: steps are short); the error page's own CPU.

use crate::effects::Effects;
use crate::stat::Counter;
use crate::time::{SECONDS, SimTime};

/// `RequestTimeoutManager._timerPeriod`: 15 s.
pub const TIMER_PERIOD_NS: u64 = 15 * SECONDS;

/// Settings of the request timeout.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestTimeoutConfig {
    /// `httpRuntime/@executionTimeout`.
    pub execution_timeout_ns: u64,
    /// `<compilation debug="true">`: no request is ever aborted.
    pub debugging_enabled: bool,
}

/// The manager's periodic timer; a timer of an earlier process's runtime (`epoch`) is stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeoutTimer {
    pub epoch: u32,
}

/// The request timeout manager's state and counters.
#[derive(Debug)]
pub struct RequestTimeoutManager {
    cfg: RequestTimeoutConfig,
    /// `_inProgressLock`: a callback is scanning.
    in_progress: bool,
    /// Timers of the current runtime (each restart starts a new grid).
    epoch: u32,
    /// `ASP.NET Applications\Requests Timed Out`.
    pub requests_timed_out: Counter,
    /// Callbacks queued to the thread pool (ticks that found a request to abort).
    pub callbacks: Counter,
    /// When the first request was aborted.
    pub first_timed_out_at: Option<SimTime>,
}

impl RequestTimeoutManager {
    pub fn new(cfg: RequestTimeoutConfig) -> Self {
        Self {
            cfg,
            in_progress: false,
            epoch: 0,
            requests_timed_out: Counter::default(),
            callbacks: Counter::default(),
            first_timed_out_at: None,
        }
    }

    pub fn config(&self) -> &RequestTimeoutConfig {
        &self.cfg
    }

    /// Whether requests can time out at all (not with `debug="true"`).
    pub fn enabled(&self) -> bool {
        !self.cfg.debugging_enabled
    }

    /// Creates the timer (`new Timer(callback, null, 15 s, 15 s)`). With debugging enabled
    /// no tick could abort anything, so none is asked for.
    pub fn start(&mut self, now: SimTime, fx: &mut impl Effects<TimeoutTimer>) {
        if self.enabled() {
            let epoch = self.epoch;
            fx.at(now.saturating_add(TIMER_PERIOD_NS), TimeoutTimer { epoch });
        }
    }

    /// A new worker process's `HttpRuntime` creates its own timer: the grid starts again
    /// at `now` (the previous one's ticks become stale).
    pub fn restart(&mut self, now: SimTime, fx: &mut impl Effects<TimeoutTimer>) {
        self.epoch = self.epoch.wrapping_add(1);
        self.start(now, fx);
    }

    /// The timer ticked: arms the next tick and returns `true`, unless it is a stale tick
    /// of an earlier runtime (`false`). The engine then looks for a request past its
    /// timeout and, if it finds one, queues a callback ([`Self::callback_queued`]).
    pub fn on_timer(
        &mut self,
        now: SimTime,
        t: TimeoutTimer,
        fx: &mut impl Effects<TimeoutTimer>,
    ) -> bool {
        if t.epoch != self.epoch {
            return false;
        }
        fx.at(now.saturating_add(TIMER_PERIOD_NS), t);
        true
    }

    /// A callback went to the thread pool's queue.
    pub fn callback_queued(&mut self) {
        self.callbacks.inc();
    }

    /// `HttpContext.MustTimeout`: a request running synchronously since `resumed` must be
    /// aborted at `now` (strictly past its timeout, as `expirationUtcTicks < utcNow.Ticks`).
    pub fn must_timeout(&self, now: SimTime, resumed: SimTime) -> bool {
        self.enabled() && now > resumed.saturating_add(self.cfg.execution_timeout_ns)
    }

    /// A callback got a thread: `true` if it may scan, `false` if another is scanning
    /// (it returns at once).
    pub fn begin_scan(&mut self) -> bool {
        if self.in_progress {
            return false;
        }
        self.in_progress = true;
        true
    }

    /// The scanning callback finished.
    pub fn end_scan(&mut self) {
        self.in_progress = false;
    }

    /// A request's thread took the abort: the request ends with 500 "Request timed out".
    pub fn timed_out(&mut self, now: SimTime) {
        self.requests_timed_out.inc();
        self.first_timed_out_at.get_or_insert(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::effects::Recorder;

    fn manager(debug: bool) -> RequestTimeoutManager {
        RequestTimeoutManager::new(RequestTimeoutConfig {
            execution_timeout_ns: 110 * SECONDS,
            debugging_enabled: debug,
        })
    }

    #[test]
    fn the_timer_ticks_every_15_seconds_and_not_at_all_in_debug_mode() {
        let mut m = manager(false);
        let mut fx = Recorder::default();
        m.start(0, &mut fx);
        let t0 = TimeoutTimer { epoch: 0 };
        assert_eq!(fx.pop_earliest(), Some((15 * SECONDS, t0)));
        assert!(m.on_timer(15 * SECONDS, t0, &mut fx));
        assert_eq!(fx.pop_earliest(), Some((30 * SECONDS, t0)));
        // A new process at 37 s: its grid is 52, 67, …; the old ticks are stale.
        m.restart(37 * SECONDS, &mut fx);
        let t1 = TimeoutTimer { epoch: 1 };
        assert_eq!(fx.pop_earliest(), Some((52 * SECONDS, t1)));
        assert!(!m.on_timer(45 * SECONDS, t0, &mut fx));
        assert!(fx.timers.is_empty());
        let mut d = manager(true);
        d.start(0, &mut fx);
        assert!(fx.timers.is_empty());
        assert!(!d.must_timeout(1000 * SECONDS, 0));
    }

    #[test]
    fn a_request_times_out_strictly_after_execution_timeout() {
        let m = manager(false);
        let t = 110 * SECONDS;
        assert!(!m.must_timeout(5 + t, 5));
        assert!(m.must_timeout(5 + t + 1, 5));
        // Resumed later (its session lock granted): its clock restarted.
        assert!(!m.must_timeout(5 + t + 1, 20 * SECONDS));
    }

    #[test]
    fn only_one_callback_scans_at_a_time() {
        let mut m = manager(false);
        assert!(m.begin_scan());
        assert!(!m.begin_scan());
        m.end_scan();
        assert!(m.begin_scan());
        m.timed_out(7);
        m.timed_out(9);
        assert_eq!(m.requests_timed_out.total(), 2);
        assert_eq!(m.first_timed_out_at, Some(7));
    }
}
