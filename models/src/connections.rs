//! The client connection pool for one backend endpoint (a .NET `ServicePoint`).
//!
//! **Models** the keep-alive pool an application's outgoing HTTP calls go through (DOMAIN
//! §6.1–§6.3): `HttpWebRequest` / `WebClient` / `HttpClient` on .NET Framework share one
//! `ServicePoint` per scheme+host+port. A call takes an idle persistent connection if there
//! is one (the most recently used first), opens a new one while fewer than
//! `DefaultConnectionLimit` are open, and otherwise **waits** in the connection group's FIFO
//! queue, with no error, until a connection frees or `HttpWebRequest.Timeout` expires
//! (`WebException`, status Timeout). An idle connection is closed by this side after
//! `MaxServicePointIdleTime`, so the client is the active closer and its port goes to
//! TIME_WAIT ([`crate::tcp`]). `keep_alive = false` models `Connection: close` or a
//! `new HttpClient()` per request: every call opens a connection this side closes after the
//! response.
//!
//! **Seed**: 003. Outgoing calls are cancelled after 120 ms; a cancelled call **aborts** its
//! connection ([`ConnectionPool::abort`] → [`PoolEvent::Close`]), and the next call opens a
//! new one. Under load more calls time out, so keep-alive reuse turns into connection churn:
//! each abort costs an ephemeral port for `TcpTimedWaitDelay`, which is how a keep-alive
//! client ends with WSAENOBUFS.
//!
//! **Defaults and sources** ([`PoolConfig::new`]):
//! * `max_connections`: the caller's choice; `DefaultConnectionLimit` is 2 (client apps),
//!   10 (ASP.NET), 12×N (autoConfig, .NET 2.0–4.0), `Int32.MaxValue` (autoConfig, .NET 4.5+,
//!   seed 003) and unlimited for loopback (Reference Source `ServicePointManager.cs`,
//!   `ServicePoint.cs`, `HttpRuntime.SetAutoConfigLimits`). `u32::MAX` = unlimited.
//! * `idle_timeout_ns` 100 s: `MaxServicePointIdleTime` = 100,000 ms ("IIS6 has 120 sec idle
//!   timeout, we should have a little bit less"; `ServicePointManager.cs`). SocketsHttpHandler
//!   (.NET Core): `PooledConnectionIdleTimeout` 120 s → 60 s in .NET 6+.
//! * `lease_timeout_ns` None: `ServicePoint.ConnectionLeaseTimeout` −1 (ServicePoint ctor).
//!   When set, a connection older than this (from when it connected) is closed when it is
//!   next free: at once if idle, otherwise after its current call.
//! * `queue_timeout_ns` 100 s: `HttpWebRequest.Timeout` (⚠ API doc, not re-read). Only the
//!   wait for a connection is timed here; the engine times the call as a whole.
//! * `keep_alive` true (HTTP/1.1 default).
//!
//! **Events** the engine drains with [`ConnectionPool::poll`]: [`PoolEvent::Connect`] (bind a
//! port with `Tcp::connect`, add the handshake latency, then report
//! [`ConnectionPool::connected`] or [`ConnectionPool::connect_failed`]), [`PoolEvent::Ready`],
//! [`PoolEvent::Close`] (`Tcp::close(active_close = true)`; for a connection aborted before
//! [`ConnectionPool::connected`] the engine knows whether a handshake was in flight) and
//! [`PoolEvent::QueueTimeout`]. Connection ids are never reused (they wrap after 2³² opens),
//! so a late report about a closed connection is ignored.
//!
//! **Leaves out**: the server closing idle connections first (IIS `connectionTimeout` 120 s is
//! longer than 100 s, so the client closes first), pipelining, HTTP/2 multiplexing, DNS
//! refresh, the `ServicePoint` object's own idle expiry, `Expect: 100-continue`, connection
//! groups, retries of a failed request on a fresh connection.

use std::collections::{BTreeMap, VecDeque};

use rustc_hash::FxHashMap as HashMap;

use crate::deadlines::Deadlines;

use crate::effects::Effects;
use crate::stat::{Counter, Gauge};
use crate::time::{SECONDS, SimTime};

/// An outgoing call (one HTTP request to the backend).
pub type CallId = u64;
/// A pooled connection.
pub type ConnId = u32;

/// Settings of one endpoint's pool.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolConfig {
    /// `DefaultConnectionLimit` / `maxconnection`; `u32::MAX` = unlimited (.NET 4.5
    /// autoConfig, loopback).
    pub max_connections: u32,
    /// false: every call opens a new connection that this side closes after the response.
    pub keep_alive: bool,
    /// `MaxServicePointIdleTime`: an idle connection is closed by this side after this.
    pub idle_timeout_ns: u64,
    /// `ConnectionLeaseTimeout`; None = −1 (never).
    pub lease_timeout_ns: Option<u64>,
    /// `HttpWebRequest.Timeout`: a call waiting for a connection gives up after this.
    pub queue_timeout_ns: u64,
}

impl PoolConfig {
    /// The documented .NET Framework defaults with the given connection limit.
    pub fn new(max_connections: u32) -> Self {
        Self {
            max_connections,
            keep_alive: true,
            idle_timeout_ns: 100 * SECONDS,
            lease_timeout_ns: None,
            queue_timeout_ns: 100 * SECONDS,
        }
    }
}

/// The pool's timers (stale ones are ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolTimer {
    /// The oldest idle period may have lasted `idle_timeout_ns`: every connection idle
    /// that long closes. One such timer is pending at a time (idle periods all last the
    /// same, so they end in the order they began), not one per idle period: a pool
    /// reusing its connections thousands of times a second would otherwise keep
    /// 100 s × that many stale timers.
    IdleSweep,
    /// The call queued with wait number `seq` has waited `queue_timeout_ns`.
    QueueTimeout { call: CallId, seq: u64 },
    /// The connection reached `lease_timeout_ns` of age.
    LeaseExpiry { conn: ConnId },
}

/// What the engine must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolEvent {
    /// Bind a port (`Tcp::connect`), then report `connected()` / `connect_failed()`.
    Connect { call: CallId, conn: ConnId },
    /// The call may use this (reused or just connected) connection now.
    Ready { call: CallId, conn: ConnId },
    /// Close the connection from this side (`Tcp::close(active_close = true)`).
    Close { conn: ConnId },
    /// The call waited too long for a connection (WebException Timeout).
    QueueTimeout { call: CallId },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ConnState {
    Connecting {
        call: CallId,
    },
    Busy {
        call: CallId,
    },
    /// Idle since the period numbered `stamp` (also its key in the MRU map).
    Idle {
        stamp: u64,
    },
}

#[derive(Clone, Copy, Debug)]
struct Conn {
    state: ConnState,
    /// When the handshake completed (lease age).
    connected_at: SimTime,
    /// The lease expired while the connection carried a call: close it when it is free.
    doomed: bool,
}

/// One endpoint's pool and its counters.
#[derive(Debug)]
pub struct ConnectionPool {
    cfg: PoolConfig,
    conns: HashMap<ConnId, Conn>,
    next_conn: ConnId,
    /// Idle connections by idle stamp: the last entry is the most recently used.
    idle_mru: BTreeMap<u64, ConnId>,
    /// (stamp, connection) of the idle periods begun, by deadline; periods that ended
    /// (reuse, close) are dropped.
    idle_deadlines: Deadlines<(u64, ConnId)>,
    /// Waiting calls in FIFO order with their wait number; entries no longer in
    /// `waiting_calls` (cancelled, timed out) are skipped.
    queue: VecDeque<(CallId, u64)>,
    waiting_calls: HashMap<CallId, u64>,
    next_stamp: u64,
    events: VecDeque<PoolEvent>,
    /// Connections carrying a call or connecting.
    pub active: Gauge,
    /// Idle persistent connections.
    pub idle: Gauge,
    /// Calls queued for a connection.
    pub waiting: Gauge,
    /// Connections established (`connected()`).
    pub opened: Counter,
    /// Connections closed by this side (Close events), including aborts while connecting.
    pub closed: Counter,
    /// Connect attempts reported failed.
    pub connect_failures: Counter,
    /// Calls that gave up waiting for a connection.
    pub queue_timeouts: Counter,
    /// Calls served by an already open connection (idle reuse or hand-over).
    pub reused: Counter,
}

impl ConnectionPool {
    pub fn new(cfg: PoolConfig) -> Self {
        Self {
            cfg,
            conns: HashMap::default(),
            next_conn: 0,
            idle_mru: BTreeMap::new(),
            idle_deadlines: Deadlines::new(),
            queue: VecDeque::new(),
            waiting_calls: HashMap::default(),
            next_stamp: 0,
            events: VecDeque::new(),
            active: Gauge::new(),
            idle: Gauge::new(),
            waiting: Gauge::new(),
            opened: Counter::default(),
            closed: Counter::default(),
            connect_failures: Counter::default(),
            queue_timeouts: Counter::default(),
            reused: Counter::default(),
        }
    }

    pub fn config(&self) -> &PoolConfig {
        &self.cfg
    }

    /// Connections open or opening (what `max_connections` limits).
    pub fn open_connections(&self) -> u32 {
        self.conns.len() as u32
    }

    fn stamp(&mut self) -> u64 {
        self.next_stamp += 1;
        self.next_stamp
    }

    fn new_conn_id(&mut self) -> ConnId {
        loop {
            let id = self.next_conn;
            self.next_conn = self.next_conn.wrapping_add(1);
            if !self.conns.contains_key(&id) {
                return id;
            }
        }
    }

    /// Opens a new connection for `call` (a slot must be free).
    fn open(&mut self, now: SimTime, call: CallId) {
        let conn = self.new_conn_id();
        self.conns.insert(
            conn,
            Conn {
                state: ConnState::Connecting { call },
                connected_at: now,
                doomed: false,
            },
        );
        self.active.inc(now);
        self.events.push_back(PoolEvent::Connect { call, conn });
    }

    /// Removes the connection and asks the engine to close it.
    fn close(&mut self, conn: ConnId) {
        self.conns.remove(&conn);
        self.closed.inc();
        self.events.push_back(PoolEvent::Close { conn });
    }

    /// The oldest call still waiting, removed from the queue.
    fn pop_waiter(&mut self, now: SimTime) -> Option<CallId> {
        while let Some((call, seq)) = self.queue.pop_front() {
            if self.waiting_calls.get(&call) == Some(&seq) {
                self.waiting_calls.remove(&call);
                self.waiting.set(now, self.waiting_calls.len() as u64);
                return Some(call);
            }
        }
        None
    }

    /// Opens connections for waiting calls while slots are free.
    fn serve_queue(&mut self, now: SimTime) {
        while (self.conns.len() as u64) < self.cfg.max_connections as u64 {
            match self.pop_waiter(now) {
                Some(call) => self.open(now, call),
                None => break,
            }
        }
    }

    fn make_idle(&mut self, now: SimTime, conn: ConnId, fx: &mut impl Effects<PoolTimer>) {
        let stamp = self.stamp();
        if let Some(c) = self.conns.get_mut(&conn) {
            c.state = ConnState::Idle { stamp };
        }
        self.idle_mru.insert(stamp, conn);
        self.idle.inc(now);
        let deadline = now.saturating_add(self.cfg.idle_timeout_ns);
        let conns = &self.conns;
        let idle = self.idle_mru.len();
        if let Some(t) = self
            .idle_deadlines
            .push(deadline, (stamp, conn), idle, |(st, c)| {
                Self::idle_in_period(conns, c, st)
            })
        {
            fx.at(t, PoolTimer::IdleSweep);
        }
    }

    /// Whether `conn` is still in the idle period `stamp`.
    fn idle_in_period(conns: &HashMap<ConnId, Conn>, conn: ConnId, stamp: u64) -> bool {
        conns
            .get(&conn)
            .is_some_and(|c| c.state == ConnState::Idle { stamp })
    }

    /// A call wants a connection: the most recently used idle one, else a new one if below
    /// `max_connections`, else it queues (FIFO).
    pub fn acquire(&mut self, now: SimTime, call: CallId, fx: &mut impl Effects<PoolTimer>) {
        if let Some((_, conn)) = self.idle_mru.pop_last() {
            let c = self.conns.get_mut(&conn).expect("idle connection is open");
            c.state = ConnState::Busy { call };
            self.idle.dec(now);
            self.active.inc(now);
            self.reused.inc();
            self.events.push_back(PoolEvent::Ready { call, conn });
        } else if (self.conns.len() as u64) < self.cfg.max_connections as u64 {
            self.open(now, call);
        } else {
            let seq = self.stamp();
            if self.waiting_calls.insert(call, seq).is_some() {
                debug_assert!(false, "call {call} acquired twice");
            }
            self.queue.push_back((call, seq));
            self.waiting.set(now, self.waiting_calls.len() as u64);
            fx.at(
                now.saturating_add(self.cfg.queue_timeout_ns),
                PoolTimer::QueueTimeout { call, seq },
            );
        }
    }

    /// The port was bound and the handshake done: the connection's call may use it.
    pub fn connected(&mut self, now: SimTime, conn: ConnId, fx: &mut impl Effects<PoolTimer>) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let ConnState::Connecting { call } = c.state else {
            return;
        };
        c.state = ConnState::Busy { call };
        c.connected_at = now;
        self.opened.inc();
        if let Some(lease) = self.cfg.lease_timeout_ns {
            fx.at(now.saturating_add(lease), PoolTimer::LeaseExpiry { conn });
        }
        self.events.push_back(PoolEvent::Ready { call, conn });
    }

    /// The connect failed (e.g. WSAENOBUFS): the slot is free again and a queued call may try.
    /// The engine fails the connection's call itself.
    pub fn connect_failed(
        &mut self,
        now: SimTime,
        conn: ConnId,
        _fx: &mut impl Effects<PoolTimer>,
    ) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if !matches!(c.state, ConnState::Connecting { .. }) {
            return;
        }
        self.conns.remove(&conn);
        self.active.dec(now);
        self.connect_failures.inc();
        self.serve_queue(now);
    }

    /// The call's response was fully read: keep-alive → the connection goes to the oldest
    /// waiting call (Ready) or becomes idle; otherwise (or lease expired) → Close.
    pub fn release(&mut self, now: SimTime, conn: ConnId, fx: &mut impl Effects<PoolTimer>) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if !matches!(c.state, ConnState::Busy { .. }) {
            return;
        }
        let expired = c.doomed
            || self
                .cfg
                .lease_timeout_ns
                .is_some_and(|lease| now.saturating_sub(c.connected_at) >= lease);
        if !self.cfg.keep_alive || expired {
            self.active.dec(now);
            self.close(conn);
            self.serve_queue(now);
        } else if let Some(call) = self.pop_waiter(now) {
            self.conns.get_mut(&conn).expect("busy connection").state = ConnState::Busy { call };
            self.reused.inc();
            self.events.push_back(PoolEvent::Ready { call, conn });
        } else {
            self.active.dec(now);
            self.make_idle(now, conn, fx);
        }
    }

    /// The call on this connection was cancelled (timeout): this side closes the connection
    /// (Close); a queued call may open a new one.
    pub fn abort(&mut self, now: SimTime, conn: ConnId, _fx: &mut impl Effects<PoolTimer>) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        match c.state {
            ConnState::Busy { .. } | ConnState::Connecting { .. } => self.active.dec(now),
            ConnState::Idle { stamp } => {
                self.idle_mru.remove(&stamp);
                self.idle.dec(now);
            }
        }
        self.close(conn);
        self.serve_queue(now);
    }

    /// The call gave up while queued for a connection. Returns whether it was waiting.
    pub fn cancel_waiting(&mut self, now: SimTime, call: CallId) -> bool {
        if self.waiting_calls.remove(&call).is_some() {
            self.waiting.set(now, self.waiting_calls.len() as u64);
            self.compact_queue();
            true
        } else {
            false
        }
    }

    /// Drops skipped entries when they outnumber the live ones (bounded memory).
    fn compact_queue(&mut self) {
        if self.queue.len() > 2 * self.waiting_calls.len() + 64 {
            let live = &self.waiting_calls;
            self.queue.retain(|(call, seq)| live.get(call) == Some(seq));
        }
    }

    pub fn on_timer(&mut self, now: SimTime, t: PoolTimer, fx: &mut impl Effects<PoolTimer>) {
        match t {
            PoolTimer::IdleSweep => {
                self.idle_deadlines.fired();
                loop {
                    let conns = &self.conns;
                    let Some((stamp, conn)) = self
                        .idle_deadlines
                        .pop_due(now, |(st, c)| Self::idle_in_period(conns, c, st))
                    else {
                        break;
                    };
                    self.idle_mru.remove(&stamp);
                    self.idle.dec(now);
                    self.close(conn);
                    self.serve_queue(now);
                }
                let conns = &self.conns;
                if let Some(t) = self
                    .idle_deadlines
                    .rearm(|(st, c)| Self::idle_in_period(conns, c, st))
                {
                    fx.at(t, PoolTimer::IdleSweep);
                }
            }
            PoolTimer::QueueTimeout { call, seq } => {
                if self.waiting_calls.get(&call) == Some(&seq) {
                    self.waiting_calls.remove(&call);
                    self.waiting.set(now, self.waiting_calls.len() as u64);
                    self.compact_queue();
                    self.queue_timeouts.inc();
                    self.events.push_back(PoolEvent::QueueTimeout { call });
                }
            }
            PoolTimer::LeaseExpiry { conn } => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                match c.state {
                    ConnState::Idle { stamp } => {
                        self.idle_mru.remove(&stamp);
                        self.idle.dec(now);
                        self.close(conn);
                        self.serve_queue(now);
                    }
                    ConnState::Busy { .. } => c.doomed = true,
                    // Never scheduled before `connected()`.
                    ConnState::Connecting { .. } => {}
                }
            }
        }
    }

    pub fn poll(&mut self) -> Option<PoolEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::effects::Recorder;
    use crate::time::MILLIS;

    fn drain(p: &mut ConnectionPool) -> Vec<PoolEvent> {
        std::iter::from_fn(|| p.poll()).collect()
    }

    #[test]
    fn defaults() {
        let c = PoolConfig::new(10);
        assert_eq!(c.idle_timeout_ns, 100 * SECONDS);
        assert_eq!(c.queue_timeout_ns, 100 * SECONDS);
        assert_eq!(c.lease_timeout_ns, None);
        assert!(c.keep_alive);
    }

    #[test]
    fn idle_connection_is_reused_most_recent_first() {
        let mut p = ConnectionPool::new(PoolConfig::new(u32::MAX));
        let mut fx = Recorder::default();
        p.acquire(0, 1, &mut fx);
        p.acquire(0, 2, &mut fx);
        let ev = drain(&mut p);
        assert_eq!(
            ev,
            vec![
                PoolEvent::Connect { call: 1, conn: 0 },
                PoolEvent::Connect { call: 2, conn: 1 }
            ]
        );
        p.connected(MILLIS, 0, &mut fx);
        p.connected(MILLIS, 1, &mut fx);
        assert_eq!(p.opened.total(), 2);
        drain(&mut p);
        p.release(2 * MILLIS, 0, &mut fx);
        p.release(3 * MILLIS, 1, &mut fx);
        assert_eq!((p.active.get(), p.idle.get()), (0, 2));
        p.acquire(4 * MILLIS, 3, &mut fx);
        assert_eq!(drain(&mut p), vec![PoolEvent::Ready { call: 3, conn: 1 }]);
        assert_eq!(p.reused.total(), 1);
        assert_eq!((p.active.get(), p.idle.get()), (1, 1));
    }

    #[test]
    fn calls_over_the_limit_queue_fifo() {
        let mut p = ConnectionPool::new(PoolConfig::new(1));
        let mut fx = Recorder::default();
        p.acquire(0, 1, &mut fx);
        p.connected(0, 0, &mut fx);
        p.acquire(1, 2, &mut fx);
        p.acquire(2, 3, &mut fx);
        p.acquire(3, 4, &mut fx);
        assert_eq!(p.waiting.get(), 3);
        assert!(p.cancel_waiting(4, 3));
        assert!(!p.cancel_waiting(4, 3));
        drain(&mut p);
        p.release(10, 0, &mut fx);
        assert_eq!(drain(&mut p), vec![PoolEvent::Ready { call: 2, conn: 0 }]);
        p.release(20, 0, &mut fx);
        assert_eq!(drain(&mut p), vec![PoolEvent::Ready { call: 4, conn: 0 }]);
        p.release(30, 0, &mut fx);
        assert!(drain(&mut p).is_empty());
        assert_eq!((p.active.get(), p.idle.get(), p.waiting.get()), (0, 1, 0));
        assert_eq!(p.open_connections(), 1);
    }

    #[test]
    fn a_queued_call_times_out() {
        let mut p = ConnectionPool::new(PoolConfig::new(1));
        let mut fx = Recorder::default();
        p.acquire(0, 1, &mut fx);
        p.acquire(5, 2, &mut fx);
        drain(&mut p);
        let (t, timer) = fx.pop_earliest().unwrap();
        assert_eq!(t, 5 + 100 * SECONDS);
        p.on_timer(t, timer, &mut fx);
        assert_eq!(drain(&mut p), vec![PoolEvent::QueueTimeout { call: 2 }]);
        assert_eq!(p.waiting.get(), 0);
        assert_eq!(p.queue_timeouts.total(), 1);
        // The slot frees later: nobody is waiting any more.
        p.connected(t, 0, &mut fx);
        drain(&mut p);
        p.release(t + 1, 0, &mut fx);
        assert!(drain(&mut p).is_empty());
        assert_eq!(p.idle.get(), 1);
    }

    #[test]
    fn a_served_call_does_not_time_out() {
        let mut p = ConnectionPool::new(PoolConfig::new(1));
        let mut fx = Recorder::default();
        p.acquire(0, 1, &mut fx);
        p.connected(0, 0, &mut fx);
        p.acquire(1, 2, &mut fx);
        p.release(2, 0, &mut fx);
        drain(&mut p);
        while let Some((t, timer)) = fx.pop_earliest() {
            p.on_timer(t, timer, &mut fx);
        }
        assert!(
            !drain(&mut p)
                .iter()
                .any(|e| matches!(e, PoolEvent::QueueTimeout { .. }))
        );
    }

    #[test]
    fn idle_connection_closes_after_100_s() {
        let mut p = ConnectionPool::new(PoolConfig::new(4));
        let mut fx = Recorder::default();
        p.acquire(0, 1, &mut fx);
        p.connected(0, 0, &mut fx);
        p.release(SECONDS, 0, &mut fx);
        // Reused at 50 s: the first idle check is stale.
        p.acquire(50 * SECONDS, 2, &mut fx);
        p.release(60 * SECONDS, 0, &mut fx);
        drain(&mut p);
        let (t, timer) = fx.pop_earliest().unwrap();
        assert_eq!(t, 101 * SECONDS);
        p.on_timer(t, timer, &mut fx);
        assert!(drain(&mut p).is_empty());
        let (t, timer) = fx.pop_earliest().unwrap();
        assert_eq!(t, 160 * SECONDS);
        p.on_timer(t, timer, &mut fx);
        assert_eq!(drain(&mut p), vec![PoolEvent::Close { conn: 0 }]);
        assert_eq!((p.idle.get(), p.closed.total()), (0, 1));
        assert_eq!(p.open_connections(), 0);
        assert!((p.idle.mean(160 * SECONDS) - (49.0 + 100.0) / 160.0).abs() < 1e-9);
    }

    #[test]
    fn a_busy_pool_keeps_one_idle_timer_and_closes_each_connection_100_s_after_its_last_use() {
        // Three connections; from 1 ms on, a 1 ms call every 10 ms reuses the most recently
        // used one (conn 2), so conns 0 and 1 stay idle and close at 100 s + 1 ms, and
        // conn 2 closes 100 s after its last call, with never more than one timer pending.
        let mut p = ConnectionPool::new(PoolConfig::new(3));
        let mut fx = Recorder::default();
        for call in 0..3 {
            p.acquire(0, call, &mut fx);
        }
        for conn in 0..3 {
            p.connected(0, conn, &mut fx);
        }
        for conn in 0..3 {
            p.release(MILLIS, conn, &mut fx);
        }
        drain(&mut p);
        let mut closes = Vec::new();
        let mut fire = |p: &mut ConnectionPool, fx: &mut Recorder<PoolTimer>, upto: SimTime| {
            while fx.timers.iter().any(|&(t, _)| t <= upto) {
                let (t, timer) = fx.pop_earliest().unwrap();
                p.on_timer(t, timer, fx);
                for e in drain(p) {
                    if let PoolEvent::Close { conn } = e {
                        closes.push((t, conn));
                    }
                }
            }
        };
        let mut most_pending = 0;
        let mut call = 3;
        let mut t = 10 * MILLIS;
        while t < 200 * SECONDS {
            fire(&mut p, &mut fx, t);
            p.acquire(t, call, &mut fx);
            assert_eq!(drain(&mut p), vec![PoolEvent::Ready { call, conn: 2 }]);
            p.release(t + MILLIS, 2, &mut fx);
            most_pending = most_pending.max(fx.timers.len());
            call += 1;
            t += 10 * MILLIS;
        }
        let last_release = t - 10 * MILLIS + MILLIS;
        fire(&mut p, &mut fx, SimTime::MAX);
        assert_eq!(most_pending, 1, "one idle timer at a time");
        assert_eq!(
            closes,
            vec![
                (100 * SECONDS + MILLIS, 0),
                (100 * SECONDS + MILLIS, 1),
                (last_release + 100 * SECONDS, 2)
            ]
        );
        assert_eq!(p.open_connections(), 0);
        assert!(p.idle_deadlines.len() <= 64, "{}", p.idle_deadlines.len());
    }

    #[test]
    fn no_keep_alive_closes_after_every_call() {
        let mut cfg = PoolConfig::new(1);
        cfg.keep_alive = false;
        let mut p = ConnectionPool::new(cfg);
        let mut fx = Recorder::default();
        p.acquire(0, 1, &mut fx);
        p.acquire(0, 2, &mut fx);
        p.connected(1, 0, &mut fx);
        p.release(2, 0, &mut fx);
        assert_eq!(
            drain(&mut p),
            vec![
                PoolEvent::Connect { call: 1, conn: 0 },
                PoolEvent::Ready { call: 1, conn: 0 },
                PoolEvent::Close { conn: 0 },
                PoolEvent::Connect { call: 2, conn: 1 },
            ]
        );
        p.connected(3, 1, &mut fx);
        p.release(4, 1, &mut fx);
        assert_eq!(p.opened.total(), 2);
        assert_eq!(p.closed.total(), 2);
        assert_eq!((p.active.get(), p.idle.get()), (0, 0));
    }

    #[test]
    fn abort_closes_and_lets_a_queued_call_open_a_new_connection() {
        let mut p = ConnectionPool::new(PoolConfig::new(1));
        let mut fx = Recorder::default();
        p.acquire(0, 1, &mut fx);
        p.connected(0, 0, &mut fx);
        p.acquire(1, 2, &mut fx);
        drain(&mut p);
        p.abort(120 * MILLIS, 0, &mut fx);
        assert_eq!(
            drain(&mut p),
            vec![
                PoolEvent::Close { conn: 0 },
                PoolEvent::Connect { call: 2, conn: 1 }
            ]
        );
        // A late report about the aborted connection is ignored.
        p.release(121 * MILLIS, 0, &mut fx);
        assert!(drain(&mut p).is_empty());
        assert_eq!(p.active.get(), 1);
        assert_eq!(p.waiting.get(), 0);
    }

    #[test]
    fn connect_failure_frees_the_slot() {
        let mut p = ConnectionPool::new(PoolConfig::new(1));
        let mut fx = Recorder::default();
        p.acquire(0, 1, &mut fx);
        p.acquire(0, 2, &mut fx);
        p.connect_failed(1, 0, &mut fx);
        assert_eq!(
            drain(&mut p),
            vec![
                PoolEvent::Connect { call: 1, conn: 0 },
                PoolEvent::Connect { call: 2, conn: 1 }
            ]
        );
        assert_eq!(p.connect_failures.total(), 1);
        assert_eq!(p.active.get(), 1);
    }

    #[test]
    fn lease_timeout_closes_after_the_current_call_or_when_idle() {
        let mut cfg = PoolConfig::new(2);
        cfg.lease_timeout_ns = Some(10 * SECONDS);
        let mut p = ConnectionPool::new(cfg);
        let mut fx = Recorder::default();
        p.acquire(0, 1, &mut fx);
        p.acquire(0, 2, &mut fx);
        p.connected(0, 0, &mut fx);
        p.connected(0, 1, &mut fx);
        p.release(SECONDS, 1, &mut fx); // conn 1 idle
        drain(&mut p);
        // Both leases expire at 10 s: conn 0 is busy (doomed), conn 1 idle (closed now).
        for _ in 0..2 {
            let (t, timer) = fx.pop_earliest().unwrap();
            assert_eq!(t, 10 * SECONDS);
            p.on_timer(t, timer, &mut fx);
        }
        assert_eq!(drain(&mut p), vec![PoolEvent::Close { conn: 1 }]);
        p.release(11 * SECONDS, 0, &mut fx);
        assert_eq!(drain(&mut p), vec![PoolEvent::Close { conn: 0 }]);
        assert_eq!(p.open_connections(), 0);
        assert_eq!((p.active.get(), p.idle.get()), (0, 0));
    }
}
