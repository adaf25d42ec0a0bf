//! The client connection pool for one backend endpoint: .NET Framework's `ServicePoint`, or
//! .NET Core's `SocketsHttpHandler` (HttpClient on .NET Core 2.1+ / .NET 5+).
//!
//! **Models** the keep-alive pool an application's outgoing HTTP calls go through (DOMAIN
//! §6.1–§6.3). Which client is modelled is [`PoolConfig::client`] ([`ClientKind`]); the two
//! share connection ids, counters and the engine interface, and differ in their mechanics:
//!
//! **ServicePoint** ([`ClientKind::ServicePoint`], DOMAIN §6.1, rows 49–52):
//! `HttpWebRequest` / `WebClient` / `HttpClient` on .NET Framework share one `ServicePoint` per
//! scheme+host+port. A call takes an idle persistent connection if there is one (the most
//! recently used first), opens a new one *for itself* while fewer than
//! `DefaultConnectionLimit` are open, and otherwise **waits** in the connection group's FIFO
//! queue, with no error, until a connection frees or `HttpWebRequest.Timeout` expires
//! (`WebException`, status Timeout). An idle connection is closed by this side exactly
//! `MaxServicePointIdleTime` after it went idle, so the client is the active closer and its
//! port goes to TIME_WAIT ([`crate::tcp`]). `ConnectionLeaseTimeout` closes a connection that
//! old when it is next free (a timer per connection, only when it is set).
//!
//! **SocketsHttpHandler** ([`ClientKind::SocketsHttpHandler`], DOMAIN §6.2, rows 54–57), as
//! read in dotnet/runtime's .NET 6 sources (`SocketsHttpHandler/HttpConnectionPool.cs` and
//! `HttpConnectionPoolManager.cs`, the 6.0-era files with `QuicImplementationProviders`;
//! `Common/src/System/Net/Http/HttpHandlerDefaults.cs`):
//! * **Which idle connection**: the last one returned, LIFO (`GetHttp11ConnectionAsync`
//!   takes `_availableHttp11Connections[count - 1]`; `ReturnHttp11Connection` `Add`s to the
//!   end), as the ServicePoint does.
//! * **Queue and connection injection**: a call that finds no idle connection is queued
//!   (`_http11RequestQueue`, FIFO); a new connection is started for the pool, not for that
//!   call, when there is no idle connection, more calls wait than connections are pending,
//!   and fewer than `MaxConnectionsPerServer` are associated (`CheckForHttp11ConnectionInjection`,
//!   checked when a call queues, a connection fails or one is disposed). A new connection
//!   serves the **oldest waiting call** (`ReturnHttp11Connection(isNewConnection: true)` →
//!   `TryDequeueNextRequest`) or goes idle; a call that gives up while queued does not cancel
//!   the pending connect (the .NET 6 behaviour dotnet/runtime #66297 describes), which then
//!   lands in the pool. A failed connect fails the **oldest waiting call**
//!   (`HandleHttp11ConnectionFailure` → `TryFailNextRequest`), whichever started it.
//! * **Idle scavenging**: no timer per connection. The pool manager's cleaning timer fires
//!   every `PooledConnectionIdleTimeout / 4` (at least 1 s; 30 s when the idle timeout is
//!   infinite: `ScavengesPerIdle = 4`, `MinScavengeSeconds = 1`, `DefaultScavengeSeconds = 30`
//!   in the `HttpConnectionPoolManager` constructor), started when the pool is first used
//!   (`SetCleaningTimer` on `TryAdd`) and periodic (`Timer.Change(timeout, timeout)`). Each
//!   scan (`CleanCacheAndDisposeIfUnused` → `ScavengeConnectionList` → `IsUsableConnection`)
//!   closes the idle connections idle **longer than** `PooledConnectionIdleTimeout` or older
//!   than `PooledConnectionLifetime`, so an idle connection closes at the first scan after
//!   its idle timeout — with the 60 s default, between 60 s and 75 s after it went idle, not
//!   at 60 s. This side closes: TIME_WAIT, as for the ServicePoint. A scan that finds the
//!   pool unused since the previous scan and without connections disposes of it and the
//!   timer stops (`_usedSinceLastCleanup`, `SetCleaningTimer(Infinite)` when no pool is
//!   left); the next call starts it again, in a new phase.
//! * **Lifetime** (`PooledConnectionLifetime`, default infinite): no timer either. A
//!   connection older than it is closed when it is taken from the pool
//!   (`CheckExpirationOnGet`: the next idle one is tried), when it is returned after a call
//!   (`CheckExpirationOnReturn`) and at a scan while idle; a new connection is never
//!   checked on its first return.
//! * **ConnectTimeout** (`ConnectTimeout`, default infinite): a connect still unfinished
//!   that long after it started is cancelled (`GetConnectTimeoutCancellationTokenSource`,
//!   `CreateConnectTimeoutException`): the half-open socket is closed, never having been
//!   established, so it holds no TIME_WAIT ([`PoolEvent::Close`] with `established` false),
//!   and the oldest waiting call fails ([`PoolEvent::ConnectTimeout`]). All connects have the
//!   same timeout, so they go through [`crate::deadlines`]: one timer outstanding.
//!
//! **Seed**: 003. Outgoing calls are cancelled after 120 ms; a cancelled call **aborts** its
//! connection ([`ConnectionPool::abort`] → [`PoolEvent::Close`]), and the next call opens a
//! new one. Under load more calls time out, so keep-alive reuse turns into connection churn:
//! each abort costs an ephemeral port for `TcpTimedWaitDelay`, which is how a keep-alive
//! client ends with WSAENOBUFS.
//!
//! **Defaults and sources** ([`PoolConfig::new`], [`PoolConfig::sockets_http_handler`]):
//! * `max_connections`: the caller's choice. ServicePoint: `DefaultConnectionLimit` is 2
//!   (client apps), 10 (ASP.NET), 12×N (autoConfig, .NET 2.0–4.0), `Int32.MaxValue`
//!   (autoConfig, .NET 4.5+, seed 003) and unlimited for loopback (Reference Source
//!   `ServicePointManager.cs`, `ServicePoint.cs`, `HttpRuntime.SetAutoConfigLimits`).
//!   SocketsHttpHandler: `MaxConnectionsPerServer` = `int.MaxValue` (`HttpHandlerDefaults.cs`
//!   `DefaultMaxConnectionsPerServer`), loopback included. `u32::MAX` = unlimited.
//! * `idle_timeout_ns`: ServicePoint 100 s, `MaxServicePointIdleTime` = 100,000 ms ("IIS6
//!   has 120 sec idle timeout, we should have a little bit less"; `ServicePointManager.cs`).
//!   SocketsHttpHandler: `PooledConnectionIdleTimeout` 60 s (`HttpHandlerDefaults.cs`
//!   `DefaultPooledConnectionIdleTimeout = TimeSpan.FromMinutes(1)`, .NET 6+; 2 min on .NET
//!   Core 2.1–5, dotnet/runtime #52687). `None` = infinite.
//! * `lease_timeout_ns` None: `ServicePoint.ConnectionLeaseTimeout` −1 (ServicePoint ctor);
//!   `PooledConnectionLifetime` `Timeout.InfiniteTimeSpan` (`HttpHandlerDefaults.cs`).
//! * `connect_timeout_ns` None (SocketsHttpHandler only): `DefaultConnectTimeout =
//!   Timeout.InfiniteTimeSpan` in `HttpHandlerDefaults.cs` on .NET 6 and today. ⚠ DOMAIN row 57
//!   says 15 s from .NET 7 (PR #66607, merged 2022-03-14), but that change was reverted
//!   before .NET 7 shipped (PR #68649, 2022-04-28: callers retrying on `SocketException` got
//!   an `OperationCanceledException` instead); .NET 7 instead cancels a pending connect 5 s
//!   after the call that started it ended (PR #71785), which is left out here.
//! * `queue_timeout_ns` 100 s (ServicePoint only): `HttpWebRequest.Timeout` (⚠ API doc, not
//!   re-read). Only the wait for a connection is timed here; the engine times the call as a
//!   whole, which is all SocketsHttpHandler has (`HttpClient.Timeout`, 100 s).
//! * `keep_alive` true (HTTP/1.1 default).
//!
//! **Events** the engine drains with [`ConnectionPool::poll`]: [`PoolEvent::Connect`] (bind a
//! port with `Tcp::connect`, add the handshake latency, then report
//! [`ConnectionPool::connected`] or [`ConnectionPool::connect_failed`], which names the call
//! the failure falls on), [`PoolEvent::Ready`], [`PoolEvent::Close`]
//! (`Tcp::close(active_close = established)`: an established connection this side closes
//! leaves TIME_WAIT, a connect abandoned before its handshake completed does not),
//! [`PoolEvent::QueueTimeout`] and [`PoolEvent::ConnectTimeout`]. Connection ids are never
//! reused while a connection holds them (they wrap after 2³² opens), so a late report about
//! a closed connection is ignored.
//!
//! **Leaves out**: the server closing idle connections first (IIS `connectionTimeout` 120 s is
//! longer than both clients' idle timeouts, so the client closes first), pipelining, HTTP/2
//! multiplexing and HTTP/3, DNS and TLS in the connect (ConnectTimeout covers them in .NET;
//! here only the TCP handshake), DNS refresh, the `ServicePoint` object's own idle expiry,
//! `Expect: 100-continue`, connection groups, retries of a failed request on a fresh
//! connection; for SocketsHttpHandler, that the real cleaning timer is one per handler for
//! all its endpoints (here one per backend, each in its own phase), that cancelled waiters
//! still count in the real queue's length until dequeued (here only live ones ask for a
//! connection), and .NET 7's cancelling of a pending connect 5 s after its call ended.

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

/// Which HTTP client's pool is modelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientKind {
    /// .NET Framework: `HttpWebRequest` and its `ServicePoint` (DOMAIN §6.1).
    ServicePoint,
    /// .NET Core 2.1+ / .NET 5+: `HttpClient` over `SocketsHttpHandler` (DOMAIN §6.2).
    SocketsHttpHandler,
}

/// Settings of one endpoint's pool.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolConfig {
    /// Which client's mechanics apply.
    pub client: ClientKind,
    /// `DefaultConnectionLimit` / `maxconnection` / `MaxConnectionsPerServer`; `u32::MAX` =
    /// unlimited (.NET 4.5 autoConfig, loopback, SocketsHttpHandler's default).
    pub max_connections: u32,
    /// false: every call opens a new connection that this side closes after the response.
    pub keep_alive: bool,
    /// `MaxServicePointIdleTime` / `PooledConnectionIdleTimeout`: an idle connection is
    /// closed by this side after this (SocketsHttpHandler: at the first scan after it).
    /// `None` = infinite.
    pub idle_timeout_ns: Option<u64>,
    /// `ConnectionLeaseTimeout` / `PooledConnectionLifetime`; None = −1 / infinite.
    pub lease_timeout_ns: Option<u64>,
    /// `HttpWebRequest.Timeout`: a call waiting for a connection gives up after this
    /// (ServicePoint only; SocketsHttpHandler's wait ends with the call's own timeout).
    pub queue_timeout_ns: u64,
    /// `SocketsHttpHandler.ConnectTimeout`; None = infinite (its default). ServicePoint has
    /// none (ignored).
    pub connect_timeout_ns: Option<u64>,
}

impl PoolConfig {
    /// The documented .NET Framework (ServicePoint) defaults with the given connection limit.
    pub fn new(max_connections: u32) -> Self {
        Self {
            client: ClientKind::ServicePoint,
            max_connections,
            keep_alive: true,
            idle_timeout_ns: Some(100 * SECONDS),
            lease_timeout_ns: None,
            queue_timeout_ns: 100 * SECONDS,
            connect_timeout_ns: None,
        }
    }

    /// The .NET 6+ SocketsHttpHandler defaults (`HttpHandlerDefaults.cs`) with the given
    /// connection limit: idle timeout 60 s, lifetime and connect timeout infinite.
    pub fn sockets_http_handler(max_connections: u32) -> Self {
        Self {
            client: ClientKind::SocketsHttpHandler,
            idle_timeout_ns: Some(60 * SECONDS),
            ..Self::new(max_connections)
        }
    }

    /// SocketsHttpHandler's cleaning-timer period: `PooledConnectionIdleTimeout / 4`, at
    /// least 1 s; 30 s with an infinite idle timeout (`HttpConnectionPoolManager` ctor).
    pub fn scavenge_period_ns(&self) -> u64 {
        match self.idle_timeout_ns {
            None => 30 * SECONDS,
            Some(idle) => (idle / 4).max(SECONDS),
        }
    }
}

/// The pool's timers (stale ones are ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolTimer {
    /// ServicePoint: the oldest idle period may have lasted `idle_timeout_ns`: every
    /// connection idle that long closes. One such timer is pending at a time (idle periods
    /// all last the same, so they end in the order they began), not one per idle period:
    /// a pool reusing its connections thousands of times a second would otherwise keep
    /// 100 s × that many stale timers.
    IdleSweep,
    /// ServicePoint: the call queued with wait number `seq` has waited `queue_timeout_ns`.
    QueueTimeout { call: CallId, seq: u64 },
    /// ServicePoint: the connection reached `lease_timeout_ns` of age.
    LeaseExpiry { conn: ConnId },
    /// SocketsHttpHandler: the cleaning timer's periodic scan (one pending at a time).
    Scavenge,
    /// SocketsHttpHandler: the oldest pending connect may have reached `ConnectTimeout`
    /// (one pending at a time, through [`Deadlines`]).
    ConnectTimeouts,
}

/// What the engine must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolEvent {
    /// Bind a port (`Tcp::connect`), then report `connected()` / `connect_failed()`. `call`
    /// is the call the connection is opened for (ServicePoint); `None` for a connection the
    /// pool opens for whichever call waits longest when it is ready (SocketsHttpHandler).
    Connect { call: Option<CallId>, conn: ConnId },
    /// The call may use this (reused or just connected) connection now.
    Ready { call: CallId, conn: ConnId },
    /// Close the connection from this side: `Tcp::close(active_close = established)`. An
    /// established connection leaves its port in TIME_WAIT; a connect abandoned before its
    /// handshake completed (aborted, ConnectTimeout) frees its port at once.
    Close { conn: ConnId, established: bool },
    /// The call waited too long for a connection (WebException Timeout).
    QueueTimeout { call: CallId },
    /// A connect reached `ConnectTimeout`: this call (the oldest waiting) fails with
    /// "A connection could not be established within the configured ConnectTimeout".
    ConnectTimeout { call: CallId },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ConnState {
    /// Handshake under way, for `call` (ServicePoint) or for the pool (SocketsHttpHandler);
    /// `stamp` numbers this connect (its ConnectTimeout entry).
    Connecting {
        call: Option<CallId>,
        stamp: u64,
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
    /// When the handshake completed (lease / lifetime age).
    connected_at: SimTime,
    /// When it last went idle (SocketsHttpHandler's scan).
    idle_since: SimTime,
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
    /// ServicePoint: (stamp, connection) of the idle periods begun, by deadline; periods
    /// that ended (reuse, close) are dropped.
    idle_deadlines: Deadlines<(u64, ConnId)>,
    /// SocketsHttpHandler: (stamp, connection) of the connects begun, by ConnectTimeout.
    connect_deadlines: Deadlines<(u64, ConnId)>,
    /// SocketsHttpHandler: connects under way for the pool (`_pendingHttp11ConnectionCount`).
    pending: u32,
    /// SocketsHttpHandler: the cleaning timer is running.
    scan_armed: bool,
    /// SocketsHttpHandler: a call came since the last scan (`_usedSinceLastCleanup`).
    used_since_scan: bool,
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
    /// Connections closed by this side (Close events), including connects abandoned.
    pub closed: Counter,
    /// Of `closed`: idle connections closed for their idle timeout.
    pub idle_closed: Counter,
    /// Of `closed`: connections closed for their lease / lifetime.
    pub lifetime_closed: Counter,
    /// Connect attempts reported failed.
    pub connect_failures: Counter,
    /// Connects abandoned at `ConnectTimeout`.
    pub connect_timeouts: Counter,
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
            connect_deadlines: Deadlines::new(),
            pending: 0,
            scan_armed: false,
            used_since_scan: false,
            queue: VecDeque::new(),
            waiting_calls: HashMap::default(),
            next_stamp: 0,
            events: VecDeque::new(),
            active: Gauge::new(),
            idle: Gauge::new(),
            waiting: Gauge::new(),
            opened: Counter::default(),
            closed: Counter::default(),
            idle_closed: Counter::default(),
            lifetime_closed: Counter::default(),
            connect_failures: Counter::default(),
            connect_timeouts: Counter::default(),
            queue_timeouts: Counter::default(),
            reused: Counter::default(),
        }
    }

    pub fn config(&self) -> &PoolConfig {
        &self.cfg
    }

    fn shh(&self) -> bool {
        self.cfg.client == ClientKind::SocketsHttpHandler
    }

    /// Connections open or opening (what `max_connections` limits).
    pub fn open_connections(&self) -> u32 {
        self.conns.len() as u32
    }

    /// Whether a call waits because the pool is at its connection limit, not merely for a
    /// connection being opened for it (what the engine reports as the limit reached).
    pub fn calls_beyond_limit(&self) -> bool {
        let waiting = self.waiting_calls.len() as u64;
        match self.cfg.client {
            ClientKind::ServicePoint => waiting > 0,
            ClientKind::SocketsHttpHandler => waiting > self.pending as u64,
        }
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

    /// Opens a new connection, for `call` (ServicePoint) or for the pool (`None`); a slot
    /// must be free.
    fn open(&mut self, now: SimTime, call: Option<CallId>, fx: &mut impl Effects<PoolTimer>) {
        let conn = self.new_conn_id();
        let stamp = self.stamp();
        self.conns.insert(
            conn,
            Conn {
                state: ConnState::Connecting { call, stamp },
                connected_at: now,
                idle_since: now,
                doomed: false,
            },
        );
        self.active.inc(now);
        if self.shh() {
            self.pending += 1;
            if let Some(timeout) = self.cfg.connect_timeout_ns {
                let conns = &self.conns;
                let live = self.pending as usize;
                if let Some(t) = self.connect_deadlines.push(
                    now.saturating_add(timeout),
                    (stamp, conn),
                    live,
                    |(st, c)| Self::connecting_as(conns, c, st),
                ) {
                    fx.at(t, PoolTimer::ConnectTimeouts);
                }
            }
        }
        self.events.push_back(PoolEvent::Connect { call, conn });
    }

    /// Whether `conn` is still the connect numbered `stamp`.
    fn connecting_as(conns: &HashMap<ConnId, Conn>, conn: ConnId, stamp: u64) -> bool {
        conns.get(&conn).is_some_and(
            |c| matches!(c.state, ConnState::Connecting { stamp: s, .. } if s == stamp),
        )
    }

    /// Removes the connection (its gauges already updated) and asks the engine to close it.
    fn close(&mut self, conn: ConnId) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        let established = !matches!(c.state, ConnState::Connecting { .. });
        if !established && self.shh() {
            self.pending -= 1;
        }
        self.closed.inc();
        self.events
            .push_back(PoolEvent::Close { conn, established });
    }

    /// A connection left the pool: a queued call may get a slot (ServicePoint: opened for
    /// it; SocketsHttpHandler: injected for the pool).
    fn slot_freed(&mut self, now: SimTime, fx: &mut impl Effects<PoolTimer>) {
        match self.cfg.client {
            ClientKind::ServicePoint => self.serve_queue(now, fx),
            ClientKind::SocketsHttpHandler => self.inject(now, fx),
        }
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

    /// ServicePoint: opens connections for waiting calls while slots are free.
    fn serve_queue(&mut self, now: SimTime, fx: &mut impl Effects<PoolTimer>) {
        while (self.conns.len() as u64) < self.cfg.max_connections as u64 {
            match self.pop_waiter(now) {
                Some(call) => self.open(now, Some(call), fx),
                None => break,
            }
        }
    }

    /// SocketsHttpHandler's `CheckForHttp11ConnectionInjection`: one new connection for the
    /// pool when none is idle, more calls wait than connects are pending, and the pool is
    /// below `MaxConnectionsPerServer`.
    fn inject(&mut self, now: SimTime, fx: &mut impl Effects<PoolTimer>) {
        if self.idle_mru.is_empty()
            && self.waiting_calls.len() as u64 > self.pending as u64
            && (self.conns.len() as u64) < self.cfg.max_connections as u64
        {
            self.open(now, None, fx);
        }
    }

    fn make_idle(&mut self, now: SimTime, conn: ConnId, fx: &mut impl Effects<PoolTimer>) {
        let stamp = self.stamp();
        if let Some(c) = self.conns.get_mut(&conn) {
            c.state = ConnState::Idle { stamp };
            c.idle_since = now;
        }
        self.idle_mru.insert(stamp, conn);
        self.idle.inc(now);
        if self.shh() {
            // The cleaning timer finds it.
            return;
        }
        let Some(idle_timeout) = self.cfg.idle_timeout_ns else {
            return;
        };
        let deadline = now.saturating_add(idle_timeout);
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

    /// SocketsHttpHandler: whether the connection is older than `PooledConnectionLifetime`
    /// (strictly, as `GetLifetimeTicks(now) > lifetime`).
    fn past_lifetime(&self, c: &Conn, now: SimTime) -> bool {
        self.cfg
            .lease_timeout_ns
            .is_some_and(|life| now.saturating_sub(c.connected_at) > life)
    }

    /// Starts the cleaning timer if it is not running (SocketsHttpHandler).
    fn arm_scan(&mut self, now: SimTime, fx: &mut impl Effects<PoolTimer>) {
        if !self.scan_armed {
            self.scan_armed = true;
            fx.at(
                now.saturating_add(self.cfg.scavenge_period_ns()),
                PoolTimer::Scavenge,
            );
        }
    }

    /// A call wants a connection: the most recently used idle one, else (ServicePoint) a
    /// new one of its own if below `max_connections`, else it queues (FIFO);
    /// SocketsHttpHandler: else it queues and the pool may inject a connection.
    pub fn acquire(&mut self, now: SimTime, call: CallId, fx: &mut impl Effects<PoolTimer>) {
        if self.shh() {
            self.used_since_scan = true;
            self.arm_scan(now, fx);
        }
        while let Some((_, conn)) = self.idle_mru.pop_last() {
            self.idle.dec(now);
            let c = self.conns[&conn];
            if self.shh() && self.past_lifetime(&c, now) {
                // CheckExpirationOnGet: dispose it and try the next one.
                self.lifetime_closed.inc();
                self.close(conn);
                continue;
            }
            let c = self.conns.get_mut(&conn).expect("idle connection is open");
            c.state = ConnState::Busy { call };
            self.active.inc(now);
            self.reused.inc();
            self.events.push_back(PoolEvent::Ready { call, conn });
            return;
        }
        if !self.shh() && (self.conns.len() as u64) < self.cfg.max_connections as u64 {
            self.open(now, Some(call), fx);
            return;
        }
        let seq = self.stamp();
        if self.waiting_calls.insert(call, seq).is_some() {
            debug_assert!(false, "call {call} acquired twice");
        }
        self.queue.push_back((call, seq));
        self.waiting.set(now, self.waiting_calls.len() as u64);
        if self.shh() {
            self.inject(now, fx);
        } else {
            fx.at(
                now.saturating_add(self.cfg.queue_timeout_ns),
                PoolTimer::QueueTimeout { call, seq },
            );
        }
    }

    /// The port was bound and the handshake done: the connection's call may use it
    /// (SocketsHttpHandler: the oldest waiting call, else it goes idle).
    pub fn connected(&mut self, now: SimTime, conn: ConnId, fx: &mut impl Effects<PoolTimer>) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let ConnState::Connecting { call, .. } = c.state else {
            return;
        };
        c.connected_at = now;
        self.opened.inc();
        match call {
            Some(call) => {
                c.state = ConnState::Busy { call };
                if let Some(lease) = self.cfg.lease_timeout_ns {
                    fx.at(now.saturating_add(lease), PoolTimer::LeaseExpiry { conn });
                }
                self.events.push_back(PoolEvent::Ready { call, conn });
            }
            None => {
                self.pending -= 1;
                // ReturnHttp11Connection(isNewConnection: true): no lifetime check.
                if let Some(call) = self.pop_waiter(now) {
                    self.conns.get_mut(&conn).expect("connected").state = ConnState::Busy { call };
                    self.events.push_back(PoolEvent::Ready { call, conn });
                } else {
                    self.active.dec(now);
                    self.make_idle(now, conn, fx);
                }
            }
        }
    }

    /// The connect failed (e.g. WSAENOBUFS): the slot is free again. Returns the call the
    /// failure falls on, for the engine to fail: the connection's own (ServicePoint), or the
    /// oldest waiting call (SocketsHttpHandler's `TryFailNextRequest`; none if no call
    /// waits any more).
    pub fn connect_failed(
        &mut self,
        now: SimTime,
        conn: ConnId,
        fx: &mut impl Effects<PoolTimer>,
    ) -> Option<CallId> {
        let c = self.conns.get(&conn)?;
        let ConnState::Connecting { call, .. } = c.state else {
            return None;
        };
        self.conns.remove(&conn);
        self.active.dec(now);
        self.connect_failures.inc();
        match call {
            Some(call) => {
                self.serve_queue(now, fx);
                Some(call)
            }
            None => {
                self.pending -= 1;
                let failed = self.pop_waiter(now);
                self.inject(now, fx);
                failed
            }
        }
    }

    /// The call's response was fully read: keep-alive → the connection goes to the oldest
    /// waiting call (Ready) or becomes idle; otherwise (or lease / lifetime expired) → Close.
    pub fn release(&mut self, now: SimTime, conn: ConnId, fx: &mut impl Effects<PoolTimer>) {
        let Some(c) = self.conns.get(&conn).copied() else {
            return;
        };
        if !matches!(c.state, ConnState::Busy { .. }) {
            return;
        }
        let expired = match self.cfg.client {
            ClientKind::ServicePoint => {
                c.doomed
                    || self
                        .cfg
                        .lease_timeout_ns
                        .is_some_and(|lease| now.saturating_sub(c.connected_at) >= lease)
            }
            // CheckExpirationOnReturn.
            ClientKind::SocketsHttpHandler => self.past_lifetime(&c, now),
        };
        if !self.cfg.keep_alive || expired {
            if expired && self.cfg.keep_alive {
                self.lifetime_closed.inc();
            }
            self.active.dec(now);
            self.close(conn);
            self.slot_freed(now, fx);
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
    /// (Close); a queued call may get a new one.
    pub fn abort(&mut self, now: SimTime, conn: ConnId, fx: &mut impl Effects<PoolTimer>) {
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
        self.slot_freed(now, fx);
    }

    /// The call gave up while queued for a connection. Returns whether it was waiting.
    /// (SocketsHttpHandler: a connect started meanwhile goes on and lands in the pool.)
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

    /// SocketsHttpHandler's cleaning scan (`CleanCacheAndDisposeIfUnused`).
    fn scavenge(&mut self, now: SimTime, fx: &mut impl Effects<PoolTimer>) {
        self.scan_armed = false;
        if !self.used_since_scan && self.conns.is_empty() {
            // The pool is disposed of; the next call makes a new one and restarts the timer.
            return;
        }
        self.used_since_scan = false;
        let expired: Vec<(u64, ConnId, bool)> = self
            .idle_mru
            .iter()
            .filter_map(|(&stamp, &conn)| {
                let c = &self.conns[&conn];
                let idle_out = self
                    .cfg
                    .idle_timeout_ns
                    .is_some_and(|t| now.saturating_sub(c.idle_since) > t);
                (idle_out || self.past_lifetime(c, now)).then_some((stamp, conn, idle_out))
            })
            .collect();
        for (stamp, conn, idle_out) in expired {
            self.idle_mru.remove(&stamp);
            self.idle.dec(now);
            if idle_out {
                self.idle_closed.inc();
            } else {
                self.lifetime_closed.inc();
            }
            self.close(conn);
            self.inject(now, fx);
        }
        self.arm_scan(now, fx);
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
                    self.idle_closed.inc();
                    self.close(conn);
                    self.serve_queue(now, fx);
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
                        self.lifetime_closed.inc();
                        self.close(conn);
                        self.serve_queue(now, fx);
                    }
                    ConnState::Busy { .. } => c.doomed = true,
                    // Never scheduled before `connected()`.
                    ConnState::Connecting { .. } => {}
                }
            }
            PoolTimer::Scavenge => self.scavenge(now, fx),
            PoolTimer::ConnectTimeouts => {
                self.connect_deadlines.fired();
                loop {
                    let conns = &self.conns;
                    let Some((_, conn)) = self
                        .connect_deadlines
                        .pop_due(now, |(st, c)| Self::connecting_as(conns, c, st))
                    else {
                        break;
                    };
                    // The half-open socket is closed (no TIME_WAIT); HandleHttp11ConnectionFailure.
                    self.active.dec(now);
                    self.connect_timeouts.inc();
                    self.close(conn);
                    if let Some(call) = self.pop_waiter(now) {
                        self.events.push_back(PoolEvent::ConnectTimeout { call });
                    }
                    self.inject(now, fx);
                }
                let conns = &self.conns;
                if let Some(t) = self
                    .connect_deadlines
                    .rearm(|(st, c)| Self::connecting_as(conns, c, st))
                {
                    fx.at(t, PoolTimer::ConnectTimeouts);
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
        assert_eq!(c.idle_timeout_ns, Some(100 * SECONDS));
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
                PoolEvent::Connect {
                    call: Some(1),
                    conn: 0
                },
                PoolEvent::Connect {
                    call: Some(2),
                    conn: 1
                }
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
        assert_eq!(
            drain(&mut p),
            vec![PoolEvent::Close {
                conn: 0,
                established: true
            }]
        );
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
                    if let PoolEvent::Close { conn, .. } = e {
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
                PoolEvent::Connect {
                    call: Some(1),
                    conn: 0
                },
                PoolEvent::Ready { call: 1, conn: 0 },
                PoolEvent::Close {
                    conn: 0,
                    established: true
                },
                PoolEvent::Connect {
                    call: Some(2),
                    conn: 1
                },
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
                PoolEvent::Close {
                    conn: 0,
                    established: true
                },
                PoolEvent::Connect {
                    call: Some(2),
                    conn: 1
                }
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
                PoolEvent::Connect {
                    call: Some(1),
                    conn: 0
                },
                PoolEvent::Connect {
                    call: Some(2),
                    conn: 1
                }
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
        assert_eq!(
            drain(&mut p),
            vec![PoolEvent::Close {
                conn: 1,
                established: true
            }]
        );
        p.release(11 * SECONDS, 0, &mut fx);
        assert_eq!(
            drain(&mut p),
            vec![PoolEvent::Close {
                conn: 0,
                established: true
            }]
        );
        assert_eq!(p.open_connections(), 0);
        assert_eq!((p.active.get(), p.idle.get()), (0, 0));
    }

    // ---- SocketsHttpHandler ----------------------------------------------------------

    fn shh(max: u32) -> ConnectionPool {
        ConnectionPool::new(PoolConfig::sockets_http_handler(max))
    }

    /// Fires every timer due by `upto`, returning (time, event) for what they caused.
    fn fire(
        p: &mut ConnectionPool,
        fx: &mut Recorder<PoolTimer>,
        upto: SimTime,
    ) -> Vec<(SimTime, PoolEvent)> {
        let mut out = Vec::new();
        while fx.timers.iter().any(|&(t, _)| t <= upto) {
            let (t, timer) = fx.pop_earliest().unwrap();
            p.on_timer(t, timer, fx);
            out.extend(drain(p).into_iter().map(|e| (t, e)));
        }
        out
    }

    #[test]
    fn sockets_http_handler_defaults_and_scan_period() {
        let c = PoolConfig::sockets_http_handler(u32::MAX);
        assert_eq!(c.client, ClientKind::SocketsHttpHandler);
        assert_eq!(c.idle_timeout_ns, Some(60 * SECONDS));
        assert_eq!((c.lease_timeout_ns, c.connect_timeout_ns), (None, None));
        assert_eq!(c.scavenge_period_ns(), 15 * SECONDS);
        let mut c = c;
        c.idle_timeout_ns = Some(120 * SECONDS);
        assert_eq!(c.scavenge_period_ns(), 30 * SECONDS);
        c.idle_timeout_ns = Some(2 * SECONDS);
        assert_eq!(c.scavenge_period_ns(), SECONDS, "at least 1 s");
        c.idle_timeout_ns = None;
        assert_eq!(c.scavenge_period_ns(), 30 * SECONDS, "infinite: 30 s");
    }

    #[test]
    fn an_idle_connection_closes_at_the_first_scan_after_60_s_not_at_60_s() {
        let mut p = shh(u32::MAX);
        let mut fx = Recorder::default();
        p.acquire(0, 1, &mut fx);
        assert_eq!(
            drain(&mut p),
            vec![PoolEvent::Connect {
                call: None,
                conn: 0
            }]
        );
        p.connected(MILLIS, 0, &mut fx);
        assert_eq!(drain(&mut p), vec![PoolEvent::Ready { call: 1, conn: 0 }]);
        p.release(2 * MILLIS, 0, &mut fx);
        // Scans at 15, 30, 45, 60 s: idle 59.998 s at 60 s, not longer than 60 s.
        assert!(fire(&mut p, &mut fx, 60 * SECONDS).is_empty());
        assert_eq!(p.idle.get(), 1);
        assert_eq!(fx.timers, vec![(75 * SECONDS, PoolTimer::Scavenge)]);
        assert_eq!(
            fire(&mut p, &mut fx, 75 * SECONDS),
            vec![(
                75 * SECONDS,
                PoolEvent::Close {
                    conn: 0,
                    established: true
                }
            )]
        );
        assert_eq!((p.idle_closed.total(), p.open_connections()), (1, 0));
        // The pool was used since the 60 s scan: one more scan, which finds it empty and
        // unused and stops the timer.
        assert!(fire(&mut p, &mut fx, SimTime::MAX).is_empty());
        assert!(fx.timers.is_empty());
        // The next call starts the timer again, in a new phase.
        p.acquire(200 * SECONDS, 2, &mut fx);
        assert_eq!(fx.timers, vec![(215 * SECONDS, PoolTimer::Scavenge)]);
    }

    #[test]
    fn a_new_connection_serves_the_oldest_waiting_call_and_a_cancelled_one_does_not_stop_it() {
        let mut p = shh(2);
        let mut fx = Recorder::default();
        p.acquire(0, 1, &mut fx);
        p.acquire(0, 2, &mut fx);
        p.acquire(0, 3, &mut fx);
        // Two connects for three calls: the limit is 2.
        assert_eq!(
            drain(&mut p),
            vec![
                PoolEvent::Connect {
                    call: None,
                    conn: 0
                },
                PoolEvent::Connect {
                    call: None,
                    conn: 1
                }
            ]
        );
        assert!(p.calls_beyond_limit());
        // Call 1 gives up; the connect goes on and serves call 2, the oldest still waiting.
        assert!(p.cancel_waiting(MILLIS, 1));
        p.connected(2 * MILLIS, 1, &mut fx);
        assert_eq!(drain(&mut p), vec![PoolEvent::Ready { call: 2, conn: 1 }]);
        p.connected(3 * MILLIS, 0, &mut fx);
        assert_eq!(drain(&mut p), vec![PoolEvent::Ready { call: 3, conn: 0 }]);
        // Nobody waits: a released connection goes idle; a new call reuses the last one.
        p.release(4 * MILLIS, 0, &mut fx);
        p.release(5 * MILLIS, 1, &mut fx);
        p.acquire(6 * MILLIS, 4, &mut fx);
        assert_eq!(drain(&mut p), vec![PoolEvent::Ready { call: 4, conn: 1 }]);
        assert_eq!((p.opened.total(), p.reused.total()), (2, 1));
        assert_eq!((p.active.get(), p.idle.get(), p.waiting.get()), (1, 1, 0));
    }

    #[test]
    fn a_failed_connect_fails_the_oldest_waiting_call_and_a_new_one_is_injected() {
        let mut p = shh(u32::MAX);
        let mut fx = Recorder::default();
        p.acquire(0, 1, &mut fx);
        p.acquire(1, 2, &mut fx);
        drain(&mut p);
        // Call 1 gave up; connection 1 (started for call 2) fails: call 2 fails.
        p.cancel_waiting(2, 1);
        assert_eq!(p.connect_failed(3, 1, &mut fx), Some(2));
        assert!(drain(&mut p).is_empty(), "nobody waits: no new connect");
        assert_eq!(p.connect_failed(4, 0, &mut fx), None);
        assert_eq!((p.open_connections(), p.connect_failures.total()), (0, 2));
    }

    #[test]
    fn connect_timeout_fails_a_call_at_its_time_and_closes_the_half_open_socket() {
        let mut cfg = PoolConfig::sockets_http_handler(u32::MAX);
        cfg.connect_timeout_ns = Some(2 * SECONDS);
        let mut p = ConnectionPool::new(cfg);
        let mut fx = Recorder::default();
        p.acquire(0, 1, &mut fx);
        p.acquire(SECONDS, 2, &mut fx);
        drain(&mut p);
        // One ConnectTimeouts timer outstanding for two connects (plus the scan).
        let pending = |fx: &Recorder<PoolTimer>| {
            fx.timers
                .iter()
                .filter(|(_, t)| *t == PoolTimer::ConnectTimeouts)
                .count()
        };
        assert_eq!(pending(&fx), 1);
        // Connection 1 completes in time (serving call 1), connection 0 never does.
        p.connected(SECONDS + 500 * MILLIS, 1, &mut fx);
        assert_eq!(drain(&mut p), vec![PoolEvent::Ready { call: 1, conn: 1 }]);
        let got = fire(&mut p, &mut fx, 3 * SECONDS);
        assert_eq!(
            got,
            vec![
                (
                    2 * SECONDS,
                    PoolEvent::Close {
                        conn: 0,
                        established: false
                    }
                ),
                (2 * SECONDS, PoolEvent::ConnectTimeout { call: 2 }),
            ]
        );
        assert_eq!(pending(&fx), 0, "connection 1's deadline is dropped");
        // A late handshake report is ignored.
        p.connected(4 * SECONDS, 0, &mut fx);
        assert!(drain(&mut p).is_empty());
        assert_eq!((p.connect_timeouts.total(), p.open_connections()), (1, 1));
        assert_eq!(p.active.get(), 1);
    }

    #[test]
    fn lifetime_closes_on_return_on_get_and_at_a_scan_without_timers() {
        let mut cfg = PoolConfig::sockets_http_handler(u32::MAX);
        cfg.lease_timeout_ns = Some(10 * SECONDS);
        let mut p = ConnectionPool::new(cfg);
        let mut fx = Recorder::default();
        for call in 0..3 {
            p.acquire(0, call, &mut fx);
        }
        for conn in 0..3 {
            p.connected(0, conn, &mut fx);
        }
        drain(&mut p);
        assert!(
            fx.timers.iter().all(|(_, t)| *t == PoolTimer::Scavenge),
            "no timer per connection: {:?}",
            fx.timers
        );
        // Returned in time: idle. Returned after its lifetime: closed.
        p.release(5 * SECONDS, 1, &mut fx);
        p.release(9 * SECONDS, 2, &mut fx);
        p.release(11 * SECONDS, 0, &mut fx);
        assert_eq!(
            drain(&mut p),
            vec![PoolEvent::Close {
                conn: 0,
                established: true
            }]
        );
        // Taken after their lifetime (most recent first): closed, the next one tried, none
        // left, so the call queues and a connection is injected.
        p.acquire(12 * SECONDS, 10, &mut fx);
        assert_eq!(
            drain(&mut p),
            vec![
                PoolEvent::Close {
                    conn: 2,
                    established: true
                },
                PoolEvent::Close {
                    conn: 1,
                    established: true
                },
                PoolEvent::Connect {
                    call: None,
                    conn: 3
                }
            ]
        );
        // A new connection is not checked on its first return; idle past its lifetime, the
        // scan that follows closes it (at 30 s; at 15 s it is 3 s old).
        p.connected(12 * SECONDS, 3, &mut fx);
        assert_eq!(drain(&mut p), vec![PoolEvent::Ready { call: 10, conn: 3 }]);
        p.release(13 * SECONDS, 3, &mut fx);
        let got = fire(&mut p, &mut fx, 30 * SECONDS);
        assert_eq!(
            got,
            vec![(
                30 * SECONDS,
                PoolEvent::Close {
                    conn: 3,
                    established: true
                }
            )]
        );
        assert_eq!((p.lifetime_closed.total(), p.idle_closed.total()), (4, 0));
    }

    #[test]
    fn service_point_abort_during_the_handshake_is_not_established() {
        let mut p = ConnectionPool::new(PoolConfig::new(1));
        let mut fx = Recorder::default();
        p.acquire(0, 1, &mut fx);
        drain(&mut p);
        p.abort(MILLIS, 0, &mut fx);
        assert_eq!(
            drain(&mut p),
            vec![PoolEvent::Close {
                conn: 0,
                established: false
            }]
        );
    }
}
