//! ASP.NET's integrated-mode request throttling (webengine4, `aspnet.config`).
//!
//! **Models** (DOMAIN §4.2, tmarq's "ASP.NET Thread Usage on IIS 7.5"): a request
//! handed from IIS to ASP.NET is
//! 1. **rejected with 503 "Server Too Busy"** when `Requests Current` (queued +
//!    executing in ASP.NET, process-wide) has reached `requestQueueLimit` (5000);
//!    `Requests Rejected` counts it and it never reaches managed code;
//! 2. otherwise **admitted** — posted to the CLR thread pool — while fewer than
//!    `maxConcurrentRequestsPerCPU` × CPUs requests are active (5000 in .NET 4.x,
//!    12 in .NET 2.0/3.5 on IIS 7) and, with ASP.NET 4.7's `percentCpuLimit`, the
//!    CPU is below the limit or fewer than `percentCpuLimitMinActiveRequestPerCpu` ×
//!    CPUs are active;
//! 3. otherwise **queued** in the process-wide **native queue** (`Requests In Native
//!    Queue`), FIFO, until an active request finishes.
//!
//! Active requests include requests waiting for a thread in the CLR queue and async
//! requests awaiting I/O: the throttle counts requests, not threads.
//!
//! **Seed**: 003 (maxConcurrentRequestsPerCPU 12 vs 5000; "Requests Queued" filling).
//!
//! Under ASP.NET Core in process (`aspnet.hosting = "aspnet_core"`, the default with the
//! .NET 6+ runtimes) the engine configures it with no limit, so that it only counts the
//! requests in the application: the ASP.NET Core Module has none of these throttles.
//!
//! **Leaves out**: `maxConcurrentThreadsPerCPU`, classic/ISAPI mode queues
//! (`minFreeThreads`, `appRequestQueueLimit`), session-state locks (`session_state`);
//! ASP.NET Core's own optional limits (the ConcurrencyLimiter middleware, Kestrel's
//! connection limits, which in-process hosting does not use).

use std::collections::VecDeque;

use crate::request::RequestId;
use crate::stat::{Counter, Gauge};
use crate::time::SimTime;

/// ASP.NET throttling settings.
#[derive(Clone, Debug, PartialEq)]
pub struct AspNetConfig {
    pub logical_processors: u32,
    /// `maxConcurrentRequestsPerCPU`; 0 = no limit (requests stay on IIS threads in the
    /// real product; here: no throttle).
    pub max_concurrent_requests_per_cpu: u32,
    /// `requestQueueLimit` (queued + executing).
    pub request_queue_limit: u32,
    /// `percentCpuLimit` (ASP.NET 4.7); `None` = off (the .NET 4.5 behaviour of seed 003).
    pub percent_cpu_limit: Option<f64>,
    /// `percentCpuLimitMinActiveRequestPerCpu`.
    pub percent_cpu_limit_min_active_request_per_cpu: u32,
}

/// Where a request handed to ASP.NET goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Post it to the CLR thread pool now.
    ToThreadPool,
    /// It waits in the native queue.
    NativeQueue,
    /// 503 Server Too Busy.
    ServerTooBusy,
}

/// ASP.NET's queues and counters.
#[derive(Debug)]
pub struct AspNet {
    cfg: AspNetConfig,
    native_queue: VecDeque<RequestId>,
    active: u64,
    /// Admitted requests not yet picked up by a worker thread.
    waiting_for_thread: u64,
    /// `ASP.NET\Requests Current` (queued + executing).
    pub requests_current: Gauge,
    /// `ASP.NET\Requests In Native Queue`.
    pub requests_in_native_queue: Gauge,
    /// `ASP.NET\Requests Queued` (native queue + waiting in the CLR thread-pool queue).
    pub requests_queued: Gauge,
    /// `ASP.NET Applications\Requests Executing` (on a thread or awaiting I/O).
    pub requests_executing: Gauge,
    /// `ASP.NET\Requests Rejected`.
    pub requests_rejected: Counter,
}

impl AspNet {
    pub fn new(cfg: AspNetConfig) -> Self {
        Self {
            cfg,
            native_queue: VecDeque::new(),
            active: 0,
            waiting_for_thread: 0,
            requests_current: Gauge::new(),
            requests_in_native_queue: Gauge::new(),
            requests_queued: Gauge::new(),
            requests_executing: Gauge::new(),
            requests_rejected: Counter::default(),
        }
    }

    pub fn config(&self) -> &AspNetConfig {
        &self.cfg
    }

    /// The concurrency cap (`maxConcurrentRequestsPerCPU` × CPUs), or `u64::MAX`.
    pub fn concurrency_limit(&self) -> u64 {
        if self.cfg.max_concurrent_requests_per_cpu == 0 {
            u64::MAX
        } else {
            self.cfg.max_concurrent_requests_per_cpu as u64 * self.cfg.logical_processors as u64
        }
    }

    fn may_activate(&self, cpu_pct: f64) -> bool {
        if self.active >= self.concurrency_limit() {
            return false;
        }
        if let Some(limit) = self.cfg.percent_cpu_limit {
            let floor = self.cfg.percent_cpu_limit_min_active_request_per_cpu as u64
                * self.cfg.logical_processors as u64;
            if cpu_pct > limit && self.active >= floor {
                return false;
            }
        }
        true
    }

    fn refresh(&mut self, now: SimTime) {
        let nq = self.native_queue.len() as u64;
        self.requests_in_native_queue.set(now, nq);
        self.requests_queued.set(now, nq + self.waiting_for_thread);
        self.requests_current.set(now, nq + self.active);
        self.requests_executing
            .set(now, self.active - self.waiting_for_thread.min(self.active));
    }

    /// A request arrives from IIS. `cpu_pct` is the machine's recent CPU utilisation.
    pub fn arrive(&mut self, now: SimTime, req: RequestId, cpu_pct: f64) -> Admission {
        let current = self.native_queue.len() as u64 + self.active;
        if current >= self.cfg.request_queue_limit as u64 {
            self.requests_rejected.inc();
            return Admission::ServerTooBusy;
        }
        let a = if self.native_queue.is_empty() && self.may_activate(cpu_pct) {
            self.active += 1;
            self.waiting_for_thread += 1;
            Admission::ToThreadPool
        } else {
            self.native_queue.push_back(req);
            Admission::NativeQueue
        };
        self.refresh(now);
        a
    }

    /// An admitted request was picked up by a worker thread for the first time.
    pub fn started(&mut self, now: SimTime) {
        self.waiting_for_thread = self.waiting_for_thread.saturating_sub(1);
        self.refresh(now);
    }

    /// An admitted request finished (answered or failed).
    pub fn finished(&mut self, now: SimTime) {
        self.active = self.active.saturating_sub(1);
        self.refresh(now);
    }

    /// The next request the native queue releases to the thread pool, if the throttle
    /// allows one now. Call after [`AspNet::finished`] until it returns `None`.
    pub fn release(&mut self, now: SimTime, cpu_pct: f64) -> Option<RequestId> {
        if self.native_queue.is_empty() || !self.may_activate(cpu_pct) {
            return None;
        }
        let r = self.native_queue.pop_front()?;
        self.active += 1;
        self.waiting_for_thread += 1;
        self.refresh(now);
        Some(r)
    }

    /// Requests admitted to managed code (on a thread, waiting for one, or awaiting I/O).
    pub fn active(&self) -> u64 {
        self.active
    }

    pub fn native_queue_len(&self) -> usize {
        self.native_queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(per_cpu: u32, limit: u32) -> AspNetConfig {
        AspNetConfig {
            logical_processors: 2,
            max_concurrent_requests_per_cpu: per_cpu,
            request_queue_limit: limit,
            percent_cpu_limit: None,
            percent_cpu_limit_min_active_request_per_cpu: 100,
        }
    }

    #[test]
    fn concurrency_cap_fills_the_native_queue_then_the_queue_limit_rejects() {
        let mut a = AspNet::new(cfg(2, 6));
        for r in 0..4 {
            assert_eq!(a.arrive(0, r, 0.0), Admission::ToThreadPool);
        }
        assert_eq!(a.arrive(0, 4, 0.0), Admission::NativeQueue);
        assert_eq!(a.arrive(0, 5, 0.0), Admission::NativeQueue);
        assert_eq!(a.arrive(0, 6, 0.0), Admission::ServerTooBusy);
        assert_eq!(a.requests_rejected.total(), 1);
        assert_eq!(a.requests_current.get(), 6);
        a.finished(1);
        assert_eq!(a.release(1, 0.0), Some(4));
        assert_eq!(a.release(1, 0.0), None);
    }

    #[test]
    fn percent_cpu_limit_queues_above_the_floor() {
        let mut c = cfg(5000, 5000);
        c.percent_cpu_limit = Some(90.0);
        c.percent_cpu_limit_min_active_request_per_cpu = 1;
        let mut a = AspNet::new(c);
        assert_eq!(a.arrive(0, 0, 99.0), Admission::ToThreadPool);
        assert_eq!(a.arrive(0, 1, 99.0), Admission::ToThreadPool);
        assert_eq!(a.arrive(0, 2, 99.0), Admission::NativeQueue);
        assert_eq!(a.release(0, 50.0), Some(2));
    }
}
