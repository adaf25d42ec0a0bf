//! Seed 003's feedback loop with the three network models wired together by a toy engine:
//! outgoing calls cancelled after 120 ms abort their keep-alive connection, so every
//! timeout costs a new connection and an ephemeral port in TIME_WAIT.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use w3sim_models::backends::{Backend, BackendConfig, BackendEvent, BackendTimer};
use w3sim_models::connections::{CallId, ConnId, ConnectionPool, PoolConfig, PoolEvent, PoolTimer};
use w3sim_models::dist::Dist;
use w3sim_models::effects::Effects;
use w3sim_models::tcp::{Tcp, TcpConfig};
use w3sim_models::time::{MILLIS, SECONDS, SimTime};

#[derive(Clone, Copy, Debug)]
enum Ev {
    Arrive(CallId),
    Cancel(CallId),
    Pool(PoolTimer),
    Backend(BackendTimer),
}

#[derive(Default)]
struct Cal {
    heap: BinaryHeap<Reverse<(SimTime, u64)>>,
    evs: BTreeMap<u64, Ev>,
    seq: u64,
}

impl Cal {
    fn push(&mut self, t: SimTime, e: Ev) {
        self.seq += 1;
        self.heap.push(Reverse((t, self.seq)));
        self.evs.insert(self.seq, e);
    }
    fn pop(&mut self) -> Option<(SimTime, Ev)> {
        let Reverse((t, s)) = self.heap.pop()?;
        Some((t, self.evs.remove(&s).unwrap()))
    }
}

struct PoolFx<'a>(&'a mut Cal);
impl Effects<PoolTimer> for PoolFx<'_> {
    fn at(&mut self, at: SimTime, t: PoolTimer) {
        self.0.push(at, Ev::Pool(t));
    }
}
struct BackendFx<'a>(&'a mut Cal);
impl Effects<BackendTimer> for BackendFx<'_> {
    fn at(&mut self, at: SimTime, t: BackendTimer) {
        self.0.push(at, Ev::Backend(t));
    }
}

#[derive(Debug)]
struct Outcome {
    calls: u64,
    ok: u64,
    timed_out: u64,
    refused: u64,
    opened: u64,
    time_wait_peak: u64,
}

/// `rate` calls/s for `secs`, backend latency exponential with `mean_ms`, cancel at 120 ms.
fn run(rate: u64, secs: u64, mean_ms: f64, capacity: Option<u32>) -> Outcome {
    let mut cal = Cal::default();
    let mut tcp = Tcp::new(TcpConfig::windows_2008());
    let mut pool = ConnectionPool::new(PoolConfig::new(u32::MAX));
    let mut backend = Backend::new(
        BackendConfig {
            name: "svc".into(),
            latency: Dist::Exp {
                mean: mean_ms * MILLIS as f64,
            }
            .sampler(),
            capacity,
            error_rate: 0.0,
        },
        Xoshiro256PlusPlus::seed_from_u64(3),
    );
    // call → connection carrying it (None while it waits for one).
    let mut calls: HashMap<CallId, Option<ConnId>> = HashMap::new();
    let n = rate * secs;
    for c in 0..n {
        cal.push(c * SECONDS / rate, Ev::Arrive(c));
    }
    let mut out = Outcome {
        calls: n,
        ok: 0,
        timed_out: 0,
        refused: 0,
        opened: 0,
        time_wait_peak: 0,
    };
    while let Some((now, ev)) = cal.pop() {
        match ev {
            Ev::Arrive(c) => {
                calls.insert(c, None);
                cal.push(now + 120 * MILLIS, Ev::Cancel(c));
                pool.acquire(now, c, &mut PoolFx(&mut cal));
            }
            Ev::Cancel(c) => {
                if let Some(conn) = calls.remove(&c) {
                    out.timed_out += 1;
                    backend.cancel(now, c, &mut BackendFx(&mut cal));
                    match conn {
                        Some(conn) => pool.abort(now, conn, &mut PoolFx(&mut cal)),
                        None => {
                            pool.cancel_waiting(now, c);
                        }
                    }
                }
            }
            Ev::Pool(t) => pool.on_timer(now, t, &mut PoolFx(&mut cal)),
            Ev::Backend(t) => backend.on_timer(now, t, &mut BackendFx(&mut cal)),
        }
        // Drain until quiet: pool events may cause backend events and back.
        loop {
            let mut progressed = false;
            while let Some(e) = pool.poll() {
                progressed = true;
                match e {
                    PoolEvent::Connect { conn, .. } => {
                        if tcp.connect(now, 0).is_ok() {
                            pool.connected(now, conn, &mut PoolFx(&mut cal));
                        } else if let Some(call) =
                            pool.connect_failed(now, conn, &mut PoolFx(&mut cal))
                        {
                            calls.remove(&call);
                            out.refused += 1;
                        }
                    }
                    PoolEvent::Ready { call, conn } => {
                        calls.insert(call, Some(conn));
                        backend.request(now, call, &mut BackendFx(&mut cal));
                    }
                    PoolEvent::Close { established, .. } => tcp.close(now, 0, established),
                    PoolEvent::QueueTimeout { call } | PoolEvent::ConnectTimeout { call } => {
                        calls.remove(&call);
                    }
                }
            }
            while let Some(BackendEvent::Responded { call, .. }) = backend.poll() {
                progressed = true;
                if let Some(Some(conn)) = calls.remove(&call) {
                    out.ok += 1;
                    pool.release(now, conn, &mut PoolFx(&mut cal));
                }
            }
            if !progressed {
                break;
            }
        }
        out.time_wait_peak = out.time_wait_peak.max(tcp.ports_time_wait.get());
    }
    out.opened = pool.opened.total();
    assert_eq!(out.ok + out.timed_out + out.refused, out.calls);
    assert_eq!(
        tcp.ports_time_wait.underflows() + tcp.ports_in_use.underflows(),
        0
    );
    out
}

#[test]
fn keep_alive_reuses_a_few_connections_when_calls_are_fast() {
    let o = run(600, 20, 10.0, None);
    assert_eq!(o.refused, 0);
    // Exp(10 ms) exceeds 120 ms with probability e^-12: essentially no timeouts, and the
    // pool needs about as many connections as calls in flight (600/s × 10 ms = 6).
    assert!(o.timed_out <= 1, "{o:?}");
    assert!(o.opened < 60, "{o:?}");
}

#[test]
fn timeouts_turn_keep_alive_into_port_churn() {
    // A saturated backend (capacity 8, 600 calls/s of 15 ms = 9 servers of work):
    // most calls wait past 120 ms and are cancelled, each abort closes its connection.
    let o = run(600, 60, 15.0, Some(8));
    assert!(o.timed_out > o.calls / 10, "{o:?}");
    // Every aborted connection must be replaced: opened ≈ timeouts.
    assert!(o.opened as f64 >= 0.9 * o.timed_out as f64, "{o:?}");
    assert!(o.time_wait_peak as f64 >= 0.9 * o.timed_out as f64, "{o:?}");
    // ~270 aborts/s fill 16,384 ports within a minute: WSAENOBUFS, as in seed 003.
    assert!(o.refused > 0, "{o:?}");
}
