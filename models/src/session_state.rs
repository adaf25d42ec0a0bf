//! ASP.NET session state's per-session lock (InProc mode) and the polling of a request
//! that finds it taken.
//!
//! **Models** `System.Web.SessionState.SessionStateModule` (DOMAIN §4.5, Reference
//! Source): a page that needs write access to the session (`EnableSessionState="true"`,
//! `IRequiresSessionState`) takes the session's exclusive lock in `AcquireRequestState`
//! and keeps it until `ReleaseRequestState`, so requests of one session run one at a
//! time. A read-only page (`EnableSessionState="ReadOnly"`) takes no lock but still
//! waits while a writer holds one. A request that finds the session locked does not
//! keep its thread: the module returns pending and starts a `System.Threading.Timer`
//! with `LOCKED_ITEM_POLLING_INTERVAL` (500 ms; registry
//! `HKLM\SOFTWARE\Microsoft\ASP.NET\SessionStateLockedItemPollInterval`) as both due
//! time and period. Each tick queues a callback to the thread pool; the callback does
//! nothing if less than `LOCKED_ITEM_POLLING_DELTA` (250 ms) passed since the last poll
//! completed, otherwise it tries the lock again (and the request goes on, on that
//! callback's thread, if it gets it). So a request waits for the first poll after the
//! lock is freed — up to a whole polling interval more than the lock was held — and its
//! polls need free worker threads. Also from the source:
//! - `aspnet:RequestQueueLimitPerSession` (apps targeting .NET 4.7+: 50; before:
//!   `Int32.MaxValue`): a request that would be the limit's+1-th one polling a session
//!   fails at once (`QueueRef` throws; HTTP 500, an event-log warning);
//! - a lock older than `httpRuntime/executionTimeout` (110 s) is taken away from its
//!   holder by the next request that tries it, at its first try or at a poll
//!   (`GetSessionStateItem`: `lockAge >= _rqExecutionTimeout` → `ReleaseItemExclusive`,
//!   before `QueueRef`); that try still reports "locked" and the request polls, the
//!   poll after gets it.
//!
//! A polling request does not time out: `EnsureRequestTimeout` exists only from .NET
//! 4.7 with the per-session limit on, and reads `HttpContext.TimeLeft`, which is
//! infinite outside a cancellable (synchronous) pipeline step, while `AcquireRequestState`
//! is asynchronous and the poll runs on a timer thread.
//!
//! Locks belong to a worker process (InProc): a recycled or crashed process's locks go
//! with it. The engine keys sessions by worker-process generation.
//!
//! **Seed**: none of the four; DOMAIN §4.5 ("other in-request queues worth modeling").
//!
//! **Leaves out**: out-of-process stores (StateServer, SQL Server: their round trips and
//! lock table), session expiry and `Session_End`, cookieless sessions, the
//! `_rqInCallback` race (the engine runs one callback per request at a time). The
//! `Thread.Abort` of a request *running* past `executionTimeout` is
//! [`crate::request_timeout`]'s (the lock is released when the aborted request ends). A request without a
//! session cookie (a health monitor's) creates a new session and never waits: the engine
//! does not ask for a lock for it.

use rustc_hash::FxHashMap as HashMap;

use crate::effects::Effects;
use crate::stat::{Counter, Gauge};
use crate::time::SimTime;

/// `LOCKED_ITEM_POLLING_DELTA`: a poll callback this soon after the last completed poll
/// does nothing.
pub const LOCKED_ITEM_POLLING_DELTA_NS: u64 = 250_000_000;

/// Settings.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionStateConfig {
    /// `SessionStateLockedItemPollInterval` (500 ms): due time and period of a waiting
    /// request's poll timer.
    pub poll_interval_ns: u64,
    /// `LOCKED_ITEM_POLLING_DELTA` (250 ms).
    pub poll_delta_ns: u64,
    /// `aspnet:RequestQueueLimitPerSession`; `u32::MAX` and above `i32::MAX` = no limit.
    pub request_queue_limit_per_session: u32,
    /// `httpRuntime/executionTimeout` (110 s): the age at which a lock is broken.
    pub execution_timeout_ns: u64,
}

impl Default for SessionStateConfig {
    fn default() -> Self {
        Self {
            poll_interval_ns: 500_000_000,
            poll_delta_ns: LOCKED_ITEM_POLLING_DELTA_NS,
            request_queue_limit_per_session: i32::MAX as u32,
            execution_timeout_ns: 110_000_000_000,
        }
    }
}

/// What a page asks of the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `EnableSessionState="true"`: the exclusive lock.
    Exclusive,
    /// `EnableSessionState="ReadOnly"`: no lock, but waits for a writer.
    ReadOnly,
}

/// A session: the worker process (generation) whose store holds it, and its id.
pub type SessionKey = (u32, u64);

/// A request's hold on, or wait for, a session (unique for the whole run).
pub type Ticket = u64;

/// A waiting request's poll timer ticked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PollTimer(pub Ticket);

/// Answer to [`SessionLocks::acquire`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acquire {
    /// The request goes on (with the lock, if it asked for it).
    Granted,
    /// Locked: the request gives its thread back and polls.
    Wait,
    /// `RequestQueueLimitPerSession` requests already poll this session: it fails.
    QueueLimit,
}

/// Answer to [`SessionLocks::poll`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll {
    /// Got it: the request goes on, on the callback's thread.
    Granted,
    /// Still locked (or too soon after the last poll): the callback ends.
    Locked,
}

#[derive(Debug, Default)]
struct Lock {
    /// Ticket holding the exclusive lock, and since when.
    holder: Option<(Ticket, SimTime)>,
    /// Requests polling it (`QueueRef` count).
    waiting: u32,
}

#[derive(Debug)]
struct Waiter {
    session: SessionKey,
    access: Access,
    /// When the last poll completed (`_rqLastPollCompleted`), if any.
    last_poll: Option<SimTime>,
    since: SimTime,
    /// The engine's handle for the request (echoed back by [`SessionLocks::on_timer`]).
    owner: u32,
}

/// Every session's lock, and the requests polling them.
#[derive(Debug)]
pub struct SessionLocks {
    cfg: SessionStateConfig,
    locks: HashMap<SessionKey, Lock>,
    waiters: HashMap<Ticket, Waiter>,
    /// Exclusive tickets held: ticket → session.
    held: HashMap<Ticket, SessionKey>,
    next_ticket: Ticket,
    /// Requests waiting for a session (polling).
    pub waiting: Gauge,
    /// Requests that had to wait.
    pub waits: Counter,
    /// Requests that waited and then got their session.
    pub granted_after_wait: Counter,
    /// Polls that tried the lock.
    pub polls: Counter,
    /// Requests refused by `RequestQueueLimitPerSession`.
    pub queue_limit_rejections: Counter,
    /// Locks taken from a holder older than `executionTimeout`.
    pub stale_locks_released: Counter,
    /// Total and longest time a granted request waited, ns.
    pub wait_ns_total: u128,
    pub wait_ns_max: u64,
    /// Most requests polling one session at once.
    pub peak_waiting_per_session: u32,
}

impl SessionLocks {
    pub fn new(cfg: SessionStateConfig) -> Self {
        Self {
            cfg,
            locks: HashMap::default(),
            waiters: HashMap::default(),
            held: HashMap::default(),
            next_ticket: 0,
            waiting: Gauge::new(),
            waits: Counter::default(),
            granted_after_wait: Counter::default(),
            polls: Counter::default(),
            queue_limit_rejections: Counter::default(),
            stale_locks_released: Counter::default(),
            wait_ns_total: 0,
            wait_ns_max: 0,
            peak_waiting_per_session: 0,
        }
    }

    pub fn config(&self) -> &SessionStateConfig {
        &self.cfg
    }

    fn limit_enabled(&self) -> bool {
        self.cfg.request_queue_limit_per_session < i32::MAX as u32
    }

    /// `AcquireRequestState` of a request identified by the engine as `owner`. Returns
    /// its ticket (to [`release`](Self::release) when it ends, whatever the answer) and
    /// the answer; on [`Acquire::Wait`] the poll timer is armed.
    pub fn acquire(
        &mut self,
        now: SimTime,
        session: SessionKey,
        access: Access,
        owner: u32,
        fx: &mut impl Effects<PollTimer>,
    ) -> (Ticket, Acquire) {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let limited = self.limit_enabled();
        let lock = self.locks.entry(session).or_default();
        if lock.holder.is_none() {
            if access == Access::Exclusive {
                lock.holder = Some((ticket, now));
                self.held.insert(ticket, session);
            } else if lock.waiting == 0 {
                self.locks.remove(&session);
            }
            return (ticket, Acquire::Granted);
        }
        // A lock older than executionTimeout is broken by this try, which still reports
        // it locked (the request polls); then QueueRef.
        if let Some((holder, since)) = lock.holder
            && now.saturating_sub(since) >= self.cfg.execution_timeout_ns
        {
            lock.holder = None;
            self.held.remove(&holder);
            self.stale_locks_released.inc();
        }
        // QueueRef: refused when the limit's worth of requests already poll.
        if limited && lock.waiting >= self.cfg.request_queue_limit_per_session {
            self.queue_limit_rejections.inc();
            return (ticket, Acquire::QueueLimit);
        }
        lock.waiting += 1;
        self.peak_waiting_per_session = self.peak_waiting_per_session.max(lock.waiting);
        self.waiters.insert(
            ticket,
            Waiter {
                session,
                access,
                last_poll: None,
                since: now,
                owner,
            },
        );
        self.waiting.inc(now);
        self.waits.inc();
        fx.at(
            now.saturating_add(self.cfg.poll_interval_ns.max(1)),
            PollTimer(ticket),
        );
        (ticket, Acquire::Wait)
    }

    /// A poll timer ticked: if its request still waits, re-arms it and returns the
    /// request's owner, whose callback the engine queues to the thread pool.
    pub fn on_timer(
        &mut self,
        now: SimTime,
        timer: PollTimer,
        fx: &mut impl Effects<PollTimer>,
    ) -> Option<u32> {
        let w = self.waiters.get(&timer.0)?;
        fx.at(now.saturating_add(self.cfg.poll_interval_ns.max(1)), timer);
        Some(w.owner)
    }

    /// Whether `ticket` is still polling.
    pub fn is_waiting(&self, ticket: Ticket) -> bool {
        self.waiters.contains_key(&ticket)
    }

    /// Whether a poll callback running now would try the lock (`LOCKED_ITEM_POLLING_DELTA`
    /// since the last completed poll): if not, the callback returns at once.
    pub fn poll_due(&self, now: SimTime, ticket: Ticket) -> bool {
        self.waiters.get(&ticket).is_some_and(|w| {
            w.last_poll
                .is_none_or(|t| now.saturating_sub(t) >= self.cfg.poll_delta_ns)
        })
    }

    /// A poll callback tries the lock for `ticket` (`PollLockedSessionCallback`).
    pub fn poll(&mut self, now: SimTime, ticket: Ticket) -> Poll {
        let Some(w) = self.waiters.get_mut(&ticket) else {
            return Poll::Locked;
        };
        if let Some(t) = w.last_poll {
            if now.saturating_sub(t) < self.cfg.poll_delta_ns {
                return Poll::Locked;
            }
        }
        w.last_poll = Some(now);
        let (session, access) = (w.session, w.access);
        self.polls.inc();
        let lock = self
            .locks
            .get_mut(&session)
            .expect("a waited-for lock exists");
        match lock.holder {
            Some((holder, since)) => {
                if now.saturating_sub(since) >= self.cfg.execution_timeout_ns {
                    // The lock outlived executionTimeout: released, polled again later.
                    lock.holder = None;
                    self.held.remove(&holder);
                    self.stale_locks_released.inc();
                }
                Poll::Locked
            }
            None => {
                let w = self.stop_waiting(now, ticket);
                let waited = now.saturating_sub(w.since);
                self.wait_ns_total += waited as u128;
                self.wait_ns_max = self.wait_ns_max.max(waited);
                self.granted_after_wait.inc();
                if access == Access::Exclusive {
                    let lock = self.locks.entry(session).or_default();
                    lock.holder = Some((ticket, now));
                    self.held.insert(ticket, session);
                }
                Poll::Granted
            }
        }
    }

    fn stop_waiting(&mut self, now: SimTime, ticket: Ticket) -> Waiter {
        let w = self.waiters.remove(&ticket).expect("a waiting ticket");
        self.waiting.dec(now);
        let lock = self.locks.get_mut(&w.session).expect("a waited-for lock");
        lock.waiting -= 1;
        if lock.waiting == 0 && lock.holder.is_none() {
            self.locks.remove(&w.session);
        }
        w
    }

    /// The request of `ticket` ended (`ReleaseRequestState`, or an error's
    /// `EndRequest`): releases its lock, or stops its polling. A ticket whose lock was
    /// taken away (stale) releases nothing.
    pub fn release(&mut self, now: SimTime, ticket: Ticket) {
        if self.waiters.contains_key(&ticket) {
            self.stop_waiting(now, ticket);
            return;
        }
        let Some(session) = self.held.remove(&ticket) else {
            return;
        };
        if let Some(lock) = self.locks.get_mut(&session) {
            if lock.holder.is_some_and(|(t, _)| t == ticket) {
                lock.holder = None;
                if lock.waiting == 0 {
                    self.locks.remove(&session);
                }
            }
        }
    }

    /// Sessions with a lock held or requests polling (memory follows what is in flight).
    pub fn sessions_tracked(&self) -> usize {
        self.locks.len()
    }

    /// Exclusive locks held now.
    pub fn locks_held(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::effects::Recorder;

    const MS: u64 = 1_000_000;

    fn locks(limit: u32) -> SessionLocks {
        SessionLocks::new(SessionStateConfig {
            request_queue_limit_per_session: limit,
            ..SessionStateConfig::default()
        })
    }

    #[test]
    fn writers_of_one_session_take_turns_and_wait_for_the_poll_after_the_release() {
        let mut l = locks(u32::MAX);
        let mut fx = Recorder::default();
        let s = (0, 7);
        let (a, r) = l.acquire(0, s, Access::Exclusive, 1, &mut fx);
        assert_eq!(r, Acquire::Granted);
        let (b, r) = l.acquire(10 * MS, s, Access::Exclusive, 2, &mut fx);
        assert_eq!(r, Acquire::Wait);
        assert_eq!(fx.timers, vec![(510 * MS, PollTimer(b))]);
        assert_eq!(l.waiting.get(), 1);
        // Another session is not affected.
        let (_, r) = l.acquire(20 * MS, (0, 8), Access::Exclusive, 3, &mut fx);
        assert_eq!(r, Acquire::Granted);
        // The holder ends at 100 ms; the waiter learns it at its first poll, 510 ms.
        l.release(100 * MS, a);
        let (t, timer) = fx.pop_earliest().unwrap();
        assert_eq!(l.on_timer(t, timer, &mut fx), Some(2));
        assert!(l.poll_due(t, b));
        assert_eq!(l.poll(t, b), Poll::Granted);
        assert_eq!(l.wait_ns_max, 500 * MS);
        assert_eq!(l.waiting.get(), 0);
        // Its timer is now stale: the next tick asks for nothing.
        let (t, timer) = fx.pop_earliest().unwrap();
        assert_eq!(t, 1010 * MS);
        assert_eq!(l.on_timer(t, timer, &mut fx), None);
        assert!(fx.timers.is_empty());
        l.release(t, b);
        assert_eq!(l.sessions_tracked(), 1, "only session 8's lock is left");
    }

    #[test]
    fn readers_wait_for_a_writer_but_not_for_each_other_and_writers_do_not_wait_for_readers() {
        let mut l = locks(u32::MAX);
        let mut fx = Recorder::default();
        let s = (0, 1);
        let (r1, a) = l.acquire(0, s, Access::ReadOnly, 1, &mut fx);
        let (_r2, b) = l.acquire(0, s, Access::ReadOnly, 2, &mut fx);
        assert_eq!((a, b), (Acquire::Granted, Acquire::Granted));
        let (w, c) = l.acquire(1, s, Access::Exclusive, 3, &mut fx);
        assert_eq!(c, Acquire::Granted, "readers hold no lock (InProc GetItem)");
        let (r3, d) = l.acquire(2, s, Access::ReadOnly, 4, &mut fx);
        assert_eq!(d, Acquire::Wait, "a writer holds it");
        l.release(3, r1);
        l.release(4, w);
        assert_eq!(l.poll(500 * MS + 2, r3), Poll::Granted);
        assert_eq!(l.locks_held(), 0, "a reader takes no lock");
    }

    #[test]
    fn the_queue_limit_refuses_the_request_past_it() {
        let mut l = locks(2);
        let mut fx = Recorder::default();
        let s = (0, 1);
        l.acquire(0, s, Access::Exclusive, 0, &mut fx);
        assert_eq!(
            l.acquire(1, s, Access::Exclusive, 1, &mut fx).1,
            Acquire::Wait
        );
        assert_eq!(
            l.acquire(2, s, Access::ReadOnly, 2, &mut fx).1,
            Acquire::Wait
        );
        let (t, r) = l.acquire(3, s, Access::Exclusive, 3, &mut fx);
        assert_eq!(r, Acquire::QueueLimit);
        assert_eq!(l.queue_limit_rejections.total(), 1);
        assert_eq!(l.peak_waiting_per_session, 2);
        l.release(4, t); // a refused ticket holds nothing
        assert_eq!(l.waiting.get(), 2);
        // The default (Int32.MaxValue, apps targeting .NET 4.6.2 and older) never refuses.
        let mut l = SessionLocks::new(SessionStateConfig::default());
        l.acquire(0, s, Access::Exclusive, 0, &mut fx);
        for i in 0..1000 {
            assert_eq!(
                l.acquire(1, s, Access::Exclusive, i, &mut fx).1,
                Acquire::Wait
            );
        }
    }

    #[test]
    fn polls_closer_than_the_delta_do_nothing() {
        let mut l = locks(u32::MAX);
        let mut fx = Recorder::default();
        let s = (0, 1);
        let (a, _) = l.acquire(0, s, Access::Exclusive, 0, &mut fx);
        let (b, _) = l.acquire(0, s, Access::Exclusive, 1, &mut fx);
        assert_eq!(l.poll(500 * MS, b), Poll::Locked);
        assert_eq!(l.polls.total(), 1);
        l.release(600 * MS, a);
        // A callback that was held up in the thread pool's queue runs 100 ms after the
        // last poll: too soon, it does nothing even though the lock is free.
        assert!(!l.poll_due(600 * MS, b));
        assert_eq!(l.poll(600 * MS, b), Poll::Locked);
        assert_eq!(l.polls.total(), 1);
        assert!(l.poll_due(750 * MS, b));
        assert_eq!(l.poll(750 * MS, b), Poll::Granted);
    }

    #[test]
    fn a_lock_older_than_execution_timeout_is_broken_by_the_next_try() {
        let mut l = SessionLocks::new(SessionStateConfig {
            execution_timeout_ns: 1_000 * MS,
            ..SessionStateConfig::default()
        });
        let mut fx = Recorder::default();
        let s = (0, 1);
        let (a, _) = l.acquire(0, s, Access::Exclusive, 0, &mut fx);
        let (b, r) = l.acquire(600 * MS, s, Access::Exclusive, 1, &mut fx);
        assert_eq!(r, Acquire::Wait);
        // A poll at 1.1 s finds the lock 1.1 s old: it breaks it but reports it locked;
        // the poll after gets it. A polling request itself never times out.
        assert_eq!(l.poll(1_100 * MS, b), Poll::Locked);
        assert_eq!(l.stale_locks_released.total(), 1);
        assert_eq!(l.poll(1_600 * MS, b), Poll::Granted);
        // The old holder ends later: its lock was taken away, it releases nothing.
        l.release(2_000 * MS, a);
        assert_eq!(l.locks_held(), 1);
        // A first try breaks a stale lock too (GetSessionStateItem runs the rule on
        // every call), before QueueRef: it polls, and the next poll gets the lock.
        let (c, r) = l.acquire(2_700 * MS, s, Access::Exclusive, 2, &mut fx);
        assert_eq!(r, Acquire::Wait);
        assert_eq!(l.stale_locks_released.total(), 2);
        assert_eq!(l.poll(3_200 * MS, c), Poll::Granted);
        l.release(3_300 * MS, b);
        l.release(3_300 * MS, c);
        assert_eq!(l.locks_held(), 0);
        assert_eq!(l.sessions_tracked(), 0);
    }
}
