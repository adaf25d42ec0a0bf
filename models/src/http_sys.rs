//! HTTP.SYS per-application-pool request queue.
//!
//! **Models**: the kernel queue HTTP.SYS keeps for each IIS application pool, sized by
//! the pool's `queueLength` (applicationHost.config `applicationPools/add/@queueLength`,
//! default 1000, range 10–65535). A request that finds the queue full is answered by
//! HTTP.SYS itself with **503 Service Unavailable**, logged in HTTPERR with reason
//! `QueueFull`; it never reaches the worker process. The worker process dequeues in
//! FIFO order when it has a thread for the request.
//!
//! **Seed**: 003 (queue length 1000, raised to 10,000 without effect; 503s at ~1000
//! requests/s). **DOMAIN**: §3.1.
//!
//! **Switch** (DOMAIN §3.1 ⚠): `queue_counts_in_flight`. The docs say the limit counts
//! requests queued in the kernel; KB 816995 (IIS 6) says it counts every outstanding
//! request of the pool, including those handed to user mode and still being served.
//! The engine's default is `true` (KB 816995): it reproduces seed 003, where raising
//! `queueLength` from 1000 to 10,000 made no difference.
//!
//! Elsewhere: the kernel response cache (`kernel_cache`, answered before this queue), the
//! 503 AppOffline of a stopped pool (`app_pool`, decided by the engine), and the pool's
//! `failure/@loadBalancerCapabilities = TcpLevel`, under which the engine closes the
//! connection instead of answering 503 QueueFull or AppOffline.
//!
//! **Also**: the site's connection limit ([`SiteConnections`]), `sites/site/limits/@maxConnections`
//! (DOMAIN §3.2, default 4294967295 = unlimited): a request that needs a connection while
//! the site already has that many is answered by HTTP.SYS with **503**, HTTPERR reason
//! `ConnLimit`, before the kernel cache and the pool's queue. A request needs a connection
//! of its own unless one of the clients' kept-alive connections is idle (HTTP/1.1: one
//! request at a time per connection): so the site has max(kept-alive, in flight)
//! connections, and a request is refused once `maxConnections` requests are in flight.
//!
//! **`Timer_AppPool`**: a request that has waited in this queue longer than the site's
//! `limits/@connectionTimeout` (120 s) is expired by HTTP.SYS, its connection closed with no
//! response (HTTPERR `Timer_AppPool`). The worker process takes requests as they come while
//! it runs, so only requests waiting for a process to start meet it (a cold start or an
//! outage longer than 120 s). [`AppPoolQueue::arm_expiry`] keeps one timer for the oldest
//! queued request.
//!
//! **Leaves out**: the other uses of `connectionTimeout` (`Timer_ConnectionIdle` for idle
//! kept-alive connections, `Timer_EntityBody`).

use std::collections::VecDeque;

use crate::request::RequestId;
use crate::stat::{Counter, Gauge};
use crate::time::SimTime;

/// Settings of one application pool's queue.
#[derive(Clone, Debug, PartialEq)]
pub struct AppPoolQueueConfig {
    /// `queueLength`: how many requests HTTP.SYS holds for the pool before answering 503.
    pub queue_length: u32,
    /// Count requests already handed to the worker process against `queue_length` too.
    pub queue_counts_in_flight: bool,
}

/// Why HTTP.SYS refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// 503, HTTPERR `QueueFull`.
    QueueFull,
    /// 503, HTTPERR `ConnLimit`: the site's `maxConnections`.
    ConnLimit,
}

/// `limits/@maxConnections`: 4294967295, no limit.
pub const UNLIMITED_CONNECTIONS: u32 = u32::MAX;

/// The site's client connections and its `maxConnections` (`Web Service\Current
/// Connections`).
#[derive(Debug)]
pub struct SiteConnections {
    max_connections: u32,
    /// Clients' kept-alive connections (at most `max_connections`): idle ones carry the
    /// next requests without a connection of their own.
    kept_alive: u64,
    /// Requests HTTP.SYS is serving (from their arrival to their response).
    in_flight: u64,
    /// `Web Service\Current Connections`: max(kept-alive, in flight).
    pub current_connections: Gauge,
    /// Requests refused with 503 ConnLimit.
    pub rejected: Counter,
}

impl SiteConnections {
    /// `kept_alive` clients keep a connection open (those past `max_connections` are
    /// refused and not counted).
    pub fn new(max_connections: u32, kept_alive: u64) -> Self {
        let kept_alive = kept_alive.min(max_connections as u64);
        let mut current_connections = Gauge::new();
        current_connections.set(0, kept_alive);
        Self {
            max_connections,
            kept_alive,
            in_flight: 0,
            current_connections,
            rejected: Counter::default(),
        }
    }

    pub fn max_connections(&self) -> u32 {
        self.max_connections
    }

    /// A request reaches HTTP.SYS: it takes an idle kept-alive connection or a new one, or
    /// is refused with 503 ConnLimit when the site has `maxConnections` in use.
    #[inline]
    pub fn request(&mut self, now: SimTime) -> Result<(), Rejection> {
        if self.in_flight >= self.max_connections as u64 {
            self.rejected.inc();
            return Err(Rejection::ConnLimit);
        }
        self.in_flight += 1;
        if self.in_flight > self.kept_alive {
            self.current_connections.set(now, self.in_flight);
        }
        Ok(())
    }

    /// A request admitted by [`Self::request`] has its response: its connection goes idle
    /// (kept alive) or closes.
    #[inline]
    pub fn response(&mut self, now: SimTime) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if self.in_flight >= self.kept_alive {
            self.current_connections.set(now, self.in_flight);
        }
    }

    /// Requests HTTP.SYS is serving.
    pub fn in_flight(&self) -> u64 {
        self.in_flight
    }
}

/// The queue's state and its perfmon counters (`HTTP Service Request Queues(<pool>)\…`).
#[derive(Debug)]
pub struct AppPoolQueue {
    cfg: AppPoolQueueConfig,
    queue: VecDeque<(RequestId, SimTime)>,
    /// Requests dequeued by the worker process and not yet finished.
    handed_out: u64,
    /// `CurrentQueueSize`.
    pub current_queue_size: Gauge,
    /// Requests of the pool not yet completely served: queued plus handed to the
    /// worker process (what KB 816995 says `queueLength` limits).
    pub outstanding: Gauge,
    /// Requests arrived (`ArrivalRate` is its per-second rate).
    pub arrivals: Counter,
    /// `RejectedRequests` (`RejectionRate` is its per-second rate).
    pub rejected: Counter,
    /// Requests answered from the kernel response cache (`CacheHitRate` per second).
    pub cache_hits: Counter,
    /// An expiry timer ([`QueueTimer`]) is pending.
    expiry_armed: bool,
    /// Requests expired after `connectionTimeout` in the queue (HTTPERR `Timer_AppPool`).
    pub expired: Counter,
}

/// The queue's expiry timer (`Timer_AppPool`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueTimer;

impl AppPoolQueue {
    pub fn new(cfg: AppPoolQueueConfig) -> Self {
        let cap = (cfg.queue_length as usize).min(1 << 16);
        Self {
            cfg,
            queue: VecDeque::with_capacity(cap),
            handed_out: 0,
            current_queue_size: Gauge::new(),
            outstanding: Gauge::new(),
            arrivals: Counter::default(),
            rejected: Counter::default(),
            cache_hits: Counter::default(),
            expiry_armed: false,
            expired: Counter::default(),
        }
    }

    /// Asks for a timer when the oldest queued request reaches `timeout_ns` in the queue,
    /// unless one is pending (call when a request is left waiting for a process).
    pub fn arm_expiry(
        &mut self,
        timeout_ns: u64,
        fx: &mut impl crate::effects::Effects<QueueTimer>,
    ) {
        if self.expiry_armed {
            return;
        }
        if let Some(&(_, since)) = self.queue.front() {
            self.expiry_armed = true;
            fx.at(since.saturating_add(timeout_ns), QueueTimer);
        }
    }

    /// The expiry timer fired: the caller takes [`Self::expire`] until `None`, then arms
    /// again if requests still wait.
    pub fn on_timer(&mut self) {
        self.expiry_armed = false;
    }

    /// Removes the oldest queued request if it has waited `timeout_ns` or more: HTTP.SYS
    /// expires its connection (`Timer_AppPool`).
    pub fn expire(&mut self, now: SimTime, timeout_ns: u64) -> Option<RequestId> {
        let &(req, since) = self.queue.front()?;
        if since.saturating_add(timeout_ns) > now {
            return None;
        }
        self.queue.pop_front();
        self.current_queue_size.set(now, self.queue.len() as u64);
        self.outstanding.dec(now);
        self.expired.inc();
        Some(req)
    }

    pub fn config(&self) -> &AppPoolQueueConfig {
        &self.cfg
    }

    /// How many requests count against `queue_length` right now.
    pub fn counted(&self) -> u64 {
        let q = self.queue.len() as u64;
        if self.cfg.queue_counts_in_flight {
            q + self.handed_out
        } else {
            q
        }
    }

    /// A request arrives for the pool: queued, or refused with 503 QueueFull.
    #[inline]
    pub fn enqueue(&mut self, now: SimTime, req: RequestId) -> Result<(), Rejection> {
        self.arrivals.inc();
        if self.counted() >= self.cfg.queue_length as u64 {
            self.rejected.inc();
            return Err(Rejection::QueueFull);
        }
        self.queue.push_back((req, now));
        self.current_queue_size.set(now, self.queue.len() as u64);
        self.outstanding.inc(now);
        Ok(())
    }

    /// The worker process takes the oldest request (FIFO).
    #[inline]
    pub fn dequeue(&mut self, now: SimTime) -> Option<RequestId> {
        let (req, _) = self.queue.pop_front()?;
        self.handed_out += 1;
        self.current_queue_size.set(now, self.queue.len() as u64);
        Some(req)
    }

    /// A request that was dequeued has been completely served (its response sent).
    #[inline]
    pub fn finished(&mut self, now: SimTime) {
        self.handed_out = self.handed_out.saturating_sub(1);
        self.outstanding.dec(now);
    }

    /// Takes the *newest* request instead of the oldest. HTTP.SYS never does this: it
    /// exists only so the validation suite can show that its checks catch a wrong
    /// queue discipline (see `sim/tests/validation.rs`).
    #[doc(hidden)]
    pub fn dequeue_newest_for_fault_injection(&mut self, now: SimTime) -> Option<RequestId> {
        let (req, _) = self.queue.pop_back()?;
        self.handed_out += 1;
        self.current_queue_size.set(now, self.queue.len() as u64);
        Some(req)
    }

    /// Requests waiting in the kernel queue.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// `MaxQueueItemAge`: how long the oldest queued request has waited, in ns.
    pub fn max_queue_item_age(&self, now: SimTime) -> u64 {
        self.queue
            .front()
            .map_or(0, |&(_, t)| now.saturating_sub(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_queue_rejects_and_fifo_order_holds() {
        let mut q = AppPoolQueue::new(AppPoolQueueConfig {
            queue_length: 2,
            queue_counts_in_flight: false,
        });
        assert!(q.enqueue(0, 1).is_ok());
        assert!(q.enqueue(1, 2).is_ok());
        assert_eq!(q.enqueue(2, 3), Err(Rejection::QueueFull));
        assert_eq!(q.rejected.total(), 1);
        assert_eq!(q.max_queue_item_age(10), 10);
        assert_eq!(q.dequeue(3), Some(1));
        assert!(q.enqueue(4, 4).is_ok());
        assert_eq!(q.dequeue(5), Some(2));
        assert_eq!(q.dequeue(6), Some(4));
        assert_eq!(q.dequeue(7), None);
        assert_eq!(q.current_queue_size.peak(), 2);
    }

    #[test]
    fn the_site_refuses_a_request_once_max_connections_are_in_use() {
        let mut c = SiteConnections::new(3, 2);
        assert_eq!(c.current_connections.get(), 2, "two kept-alive connections");
        c.request(1).unwrap();
        c.request(2).unwrap();
        assert_eq!(
            c.current_connections.get(),
            2,
            "both ride kept-alive connections"
        );
        c.request(3).unwrap();
        assert_eq!(c.current_connections.get(), 3, "a connection of its own");
        assert_eq!(c.request(4), Err(Rejection::ConnLimit));
        assert_eq!(c.rejected.total(), 1);
        c.response(5);
        assert_eq!(c.current_connections.get(), 2);
        c.response(6);
        assert_eq!(c.current_connections.get(), 2, "kept alive, now idle");
        assert!(c.request(7).is_ok());
        // More kept-alive clients than the limit: only the limit's worth are accepted.
        let c = SiteConnections::new(3, 10);
        assert_eq!(c.current_connections.get(), 3);
    }

    #[test]
    fn requests_waiting_past_connection_timeout_expire_oldest_first() {
        let mut q = AppPoolQueue::new(AppPoolQueueConfig {
            queue_length: 10,
            queue_counts_in_flight: true,
        });
        let mut fx = crate::effects::Recorder::default();
        q.enqueue(1, 7).unwrap();
        q.arm_expiry(120, &mut fx);
        q.enqueue(50, 8).unwrap();
        q.arm_expiry(120, &mut fx);
        assert_eq!(
            fx.timers,
            vec![(121, QueueTimer)],
            "one timer, for the oldest"
        );
        q.on_timer();
        assert_eq!(q.expire(120, 120), None, "not yet");
        assert_eq!(q.expire(121, 120), Some(7));
        assert_eq!(q.expire(121, 120), None);
        q.arm_expiry(120, &mut fx);
        assert_eq!(fx.timers.last(), Some(&(170, QueueTimer)));
        assert_eq!((q.expired.total(), q.outstanding.get(), q.len()), (1, 1, 1));
    }

    #[test]
    fn counting_in_flight_requests_lowers_the_effective_limit() {
        let mut q = AppPoolQueue::new(AppPoolQueueConfig {
            queue_length: 2,
            queue_counts_in_flight: true,
        });
        q.enqueue(0, 1).unwrap();
        q.dequeue(0);
        q.enqueue(0, 2).unwrap();
        assert_eq!(q.enqueue(0, 3), Err(Rejection::QueueFull));
        q.finished(1);
        assert!(q.enqueue(1, 3).is_ok());
    }
}
