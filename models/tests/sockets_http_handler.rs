//! SocketsHttpHandler's pool (`connections`, `ClientKind::SocketsHttpHandler`) under random
//! traffic, checked against what the .NET 6 sources say it does: idle connections close
//! at the first cleaning scan after `PooledConnectionIdleTimeout` (never before, never a
//! scan later), a connect still pending at `ConnectTimeout` is closed without being
//! established and fails the oldest waiting call, a call waits only when no connection is
//! idle, the limit holds, every call ends once, and the pool keeps at most one timer of
//! each kind.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use proptest::prelude::*;
use w3sim_models::connections::{CallId, ConnId, ConnectionPool, PoolConfig, PoolEvent, PoolTimer};
use w3sim_models::effects::Effects;
use w3sim_models::time::{MILLIS, SECONDS, SimTime};

/// A calendar of the pool's timers (FIFO among equal times).
#[derive(Default)]
struct Cal(BTreeMap<(SimTime, u64), PoolTimer>, u64);

impl Effects<PoolTimer> for Cal {
    fn at(&mut self, at: SimTime, timer: PoolTimer) {
        self.1 += 1;
        self.0.insert((at, self.1), timer);
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum St {
    Pending {
        since: SimTime,
    },
    Busy {
        call: CallId,
    },
    Idle {
        since: SimTime,
    },
    /// Being released (until the pool's events say what became of it).
    Returning,
}

#[derive(Default)]
struct World {
    conns: HashMap<ConnId, St>,
    waiting: BTreeSet<CallId>,
    /// Calls waiting, in the order they began to (the pool's FIFO).
    order: Vec<CallId>,
    ended: BTreeSet<CallId>,
    closes_by_scan: Vec<(SimTime, SimTime)>,
    connect_timeouts: Vec<(SimTime, SimTime)>,
}

struct Case {
    idle: u64,
    connect_timeout: Option<u64>,
    max: u32,
}

impl World {
    fn oldest_waiting(&self) -> Option<CallId> {
        self.order
            .iter()
            .copied()
            .find(|c| self.waiting.contains(c))
    }

    /// Applies the pool's events at `now`; `by` says what caused them.
    fn apply(&mut self, p: &mut ConnectionPool, now: SimTime, by: Option<PoolTimer>) {
        while let Some(e) = p.poll() {
            match e {
                PoolEvent::Connect { call, conn } => {
                    assert_eq!(call, None, "SocketsHttpHandler connects for the pool");
                    assert!(
                        self.conns
                            .insert(conn, St::Pending { since: now })
                            .is_none()
                    );
                }
                PoolEvent::Ready { call, conn } => {
                    assert_eq!(
                        Some(call),
                        self.oldest_waiting(),
                        "the oldest waiter is served"
                    );
                    assert!(
                        self.waiting.remove(&call),
                        "call {call} ready but not waiting"
                    );
                    assert!(
                        !matches!(self.conns[&conn], St::Busy { .. }),
                        "conn {conn} busy"
                    );
                    self.conns.insert(conn, St::Busy { call });
                }
                PoolEvent::Close { conn, established } => {
                    let st = self
                        .conns
                        .remove(&conn)
                        .expect("closing a known connection");
                    match st {
                        St::Pending { since } => {
                            assert!(!established, "a pending connect was never established");
                            assert_eq!(by, Some(PoolTimer::ConnectTimeouts));
                            self.connect_timeouts.push((since, now));
                        }
                        St::Idle { since } => {
                            assert!(established);
                            if by == Some(PoolTimer::Scavenge) {
                                self.closes_by_scan.push((since, now));
                            }
                        }
                        St::Busy { .. } | St::Returning => assert!(established),
                    }
                }
                PoolEvent::ConnectTimeout { call } => {
                    assert_eq!(Some(call), self.oldest_waiting(), "the oldest waiter fails");
                    self.waiting.remove(&call);
                    self.ended.insert(call);
                }
                PoolEvent::QueueTimeout { .. } => panic!("no queue timeout in SocketsHttpHandler"),
            }
        }
    }

    /// A connection that was pending or busy and produced no event became idle.
    fn settle(&mut self, conn: ConnId, now: SimTime) {
        if let Some(St::Pending { .. } | St::Returning) = self.conns.get(&conn) {
            self.conns.insert(conn, St::Idle { since: now });
        }
    }
}

fn check_invariants(p: &ConnectionPool, w: &World, cal: &Cal, case: &Case, now: SimTime) {
    let open = w.conns.len() as u32;
    assert_eq!(p.open_connections(), open);
    assert!(open <= case.max, "{open} connections, limit {}", case.max);
    let idle = w
        .conns
        .values()
        .filter(|s| matches!(s, St::Idle { .. }))
        .count() as u64;
    assert_eq!(p.idle.get(), idle);
    assert_eq!(p.active.get(), open as u64 - idle);
    assert_eq!(p.waiting.get(), w.waiting.len() as u64);
    assert!(
        idle == 0 || w.waiting.is_empty(),
        "a call waits next to an idle connection"
    );
    let period = p.config().scavenge_period_ns();
    for st in w.conns.values() {
        if let St::Idle { since } = st {
            assert!(
                now - since <= case.idle + period,
                "idle {} s, more than a scan after the idle timeout",
                (now - since) as f64 / 1e9
            );
        }
    }
    let count = |k: PoolTimer| cal.0.values().filter(|&&t| t == k).count();
    assert!(count(PoolTimer::Scavenge) <= 1, "one cleaning timer");
    assert!(
        count(PoolTimer::ConnectTimeouts) <= 1,
        "one connect-timeout timer"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn sockets_http_handler_pool_follows_the_runtime(
        ops in prop::collection::vec((0u64..20_000, 0u8..6, any::<prop::sample::Index>()), 1..300),
        idle_s in 1u64..90,
        connect_timeout_ms in prop::option::of(1u64..5_000),
        max in 1u32..6,
    ) {
        let case = Case {
            idle: idle_s * SECONDS,
            connect_timeout: connect_timeout_ms.map(|m| m * MILLIS),
            max,
        };
        let mut cfg = PoolConfig::sockets_http_handler(max);
        cfg.idle_timeout_ns = Some(case.idle);
        cfg.connect_timeout_ns = case.connect_timeout;
        let mut p = ConnectionPool::new(cfg);
        let mut cal = Cal::default();
        let mut w = World::default();
        let mut now: SimTime = 0;
        let mut next_call: CallId = 0;
        let run_timers = |p: &mut ConnectionPool, cal: &mut Cal, w: &mut World, to: SimTime| {
            while let Some((&(t, s), &timer)) = cal.0.iter().next() {
                if t > to {
                    break;
                }
                cal.0.remove(&(t, s));
                p.on_timer(t, timer, cal);
                w.apply(p, t, Some(timer));
                check_invariants(p, w, cal, &case, t);
            }
        };
        for (dt_ms, op, pick) in ops {
            let to = now + dt_ms * MILLIS;
            run_timers(&mut p, &mut cal, &mut w, to);
            now = to;
            match op {
                0 | 1 => {
                    let call = next_call;
                    next_call += 1;
                    w.waiting.insert(call);
                    w.order.push(call);
                    p.acquire(now, call, &mut cal);
                    w.apply(&mut p, now, None);
                }
                2 => {
                    // A pending handshake completes (or fails).
                    let pending: Vec<ConnId> = w.conns.iter()
                        .filter(|(_, s)| matches!(s, St::Pending { .. }))
                        .map(|(&c, _)| c).collect::<BTreeSet<_>>().into_iter().collect();
                    if pending.is_empty() { continue; }
                    let conn = pending[pick.index(pending.len())];
                    if pick.index(4) == 0 {
                        let oldest = w.oldest_waiting();
                        let failed = p.connect_failed(now, conn, &mut cal);
                        prop_assert_eq!(failed, oldest);
                        w.conns.remove(&conn);
                        if let Some(c) = failed {
                            w.waiting.remove(&c);
                            w.ended.insert(c);
                        }
                        w.apply(&mut p, now, None);
                    } else {
                        p.connected(now, conn, &mut cal);
                        w.apply(&mut p, now, None);
                        w.settle(conn, now);
                    }
                }
                3 | 4 => {
                    // A busy call ends: released (3) or aborted (4).
                    let busy: Vec<(ConnId, CallId)> = w.conns.iter()
                        .filter_map(|(&c, s)| match s { St::Busy { call } => Some((c, *call)), _ => None })
                        .collect::<BTreeMap<_, _>>().into_iter().collect();
                    if busy.is_empty() { continue; }
                    let (conn, call) = busy[pick.index(busy.len())];
                    w.ended.insert(call);
                    if op == 3 {
                        w.conns.insert(conn, St::Returning);
                        p.release(now, conn, &mut cal);
                        w.apply(&mut p, now, None);
                        w.settle(conn, now);
                    } else {
                        p.abort(now, conn, &mut cal);
                        w.apply(&mut p, now, None);
                        prop_assert!(!w.conns.contains_key(&conn), "aborted connection closed");
                    }
                }
                _ => {
                    let waiting: Vec<CallId> = w.waiting.iter().copied().collect();
                    if waiting.is_empty() { continue; }
                    let call = waiting[pick.index(waiting.len())];
                    prop_assert!(p.cancel_waiting(now, call));
                    w.waiting.remove(&call);
                    w.ended.insert(call);
                }
            }
            check_invariants(&p, &w, &cal, &case, now);
        }
        // Wind down: handshakes complete, calls end, and the timers run out.
        loop {
            let next = w.conns.iter().find_map(|(&c, s)| match s {
                St::Pending { .. } => Some((c, None)),
                St::Busy { call } => Some((c, Some(*call))),
                St::Idle { .. } | St::Returning => None,
            });
            let Some((conn, call)) = next else { break };
            now += MILLIS;
            run_timers(&mut p, &mut cal, &mut w, now);
            if !w.conns.contains_key(&conn) { continue; }
            match call {
                None => {
                    p.connected(now, conn, &mut cal);
                    w.apply(&mut p, now, None);
                    w.settle(conn, now);
                }
                Some(call) => {
                    w.ended.insert(call);
                    w.conns.insert(conn, St::Returning);
                    p.release(now, conn, &mut cal);
                    w.apply(&mut p, now, None);
                    w.settle(conn, now);
                }
            }
            check_invariants(&p, &w, &cal, &case, now);
        }
        run_timers(&mut p, &mut cal, &mut w, SimTime::MAX);
        prop_assert!(cal.0.is_empty(), "the timers stop once the pool is empty and unused");
        prop_assert_eq!(p.open_connections(), 0);
        prop_assert!(w.waiting.is_empty());
        prop_assert_eq!(w.ended.len() as u64, next_call, "every call ended once");
        let period = p.config().scavenge_period_ns();
        for &(since, at) in &w.closes_by_scan {
            prop_assert!(at - since > case.idle, "closed {} s after going idle", (at - since) as f64 / 1e9);
            prop_assert!(at - since <= case.idle + period);
        }
        prop_assert_eq!(p.idle_closed.total(), w.closes_by_scan.len() as u64);
        for &(since, at) in &w.connect_timeouts {
            prop_assert_eq!(Some(at - since), case.connect_timeout);
        }
        prop_assert_eq!(p.connect_timeouts.total(), w.connect_timeouts.len() as u64);
    }
}
