//! Downstream services the application calls (web services, databases behind HTTP).
//!
//! **Models** a backend as a black box seen from the web server: a FIFO multi-server queue
//! with `capacity` concurrent requests in service (None = as many as arrive: a pure delay),
//! a service time drawn from `latency`, and a fraction `error_rate` of responses that are
//! errors. DOMAIN §6.3 (outgoing calls); the connection to it is [`crate::connections`] and
//! its ports [`crate::tcp`].
//!
//! **Seed**: 003 (each incoming request may make several outgoing calls; "execution time can
//! be up to 120 ms before the requests are aborted"). A caller that gives up
//! ([`Backend::cancel`]) drops a queued request, but a request already in service goes on,
//! because the server does not know the client went away: it keeps its server busy until
//! it finishes, and its response is not reported. So cancellations relieve the backend
//! only of queued work.
//!
//! **Randomness**: the service time and the error flag are drawn when service starts, in
//! service-start order, from the backend's own stream, whether or not the call is later
//! cancelled (cancelling one call does not shift the draws of the others).
//!
//! **Defaults**: none; a backend is what the scenario says it is.
//!
//! **Leaves out**: network transfer time and bandwidth (put them in `latency`), the
//! backend's own connection limits and keep-alive timers, load-dependent latency, retries,
//! timeouts on the server side.

use std::collections::VecDeque;

use rustc_hash::FxHashMap as HashMap;

use rand::{Rng, RngExt};

use crate::connections::CallId;
use crate::dist::Sampler;
use crate::effects::Effects;
use crate::stat::{Counter, Gauge};
use crate::time::SimTime;

/// A downstream service.
#[derive(Clone, Debug)]
pub struct BackendConfig {
    pub name: String,
    /// Service time of one request, in ns.
    pub latency: Sampler,
    /// Requests served concurrently; the rest queue FIFO. None = unlimited.
    pub capacity: Option<u32>,
    /// Probability that a response is an error (in [0, 1]).
    pub error_rate: f64,
}

/// The backend's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendTimer {
    /// The request with sequence number `seq` finishes service.
    Done { seq: u64 },
}

/// What the engine must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendEvent {
    /// The response to `call` arrived.
    Responded { call: CallId, error: bool },
}

#[derive(Clone, Copy, Debug)]
struct Req {
    call: CallId,
    in_service: bool,
    /// The caller gave up (only kept while in service).
    cancelled: bool,
    error: bool,
}

/// One backend and its counters.
#[derive(Debug)]
pub struct Backend<R> {
    cfg: BackendConfig,
    rng: R,
    next_seq: u64,
    /// Every request queued or in service, by sequence number.
    reqs: HashMap<u64, Req>,
    /// The live (not cancelled) request of each call.
    by_call: HashMap<CallId, u64>,
    /// Queued requests in FIFO order; entries no longer in `reqs` are skipped.
    queue: VecDeque<u64>,
    queued_live: u64,
    events: VecDeque<BackendEvent>,
    /// Requests in service (cancelled ones included until they finish).
    pub in_service: Gauge,
    /// Requests waiting for a free server.
    pub queued: Gauge,
    /// Requests that finished service (cancelled ones included).
    pub served: Counter,
    /// Error responses among `served`.
    pub errors: Counter,
    /// Calls cancelled by the caller (queued or in service).
    pub cancelled: Counter,
}

impl<R: Rng> Backend<R> {
    pub fn new(cfg: BackendConfig, rng: R) -> Self {
        Self {
            cfg,
            rng,
            next_seq: 0,
            reqs: HashMap::default(),
            by_call: HashMap::default(),
            queue: VecDeque::new(),
            queued_live: 0,
            events: VecDeque::new(),
            in_service: Gauge::new(),
            queued: Gauge::new(),
            served: Counter::default(),
            errors: Counter::default(),
            cancelled: Counter::default(),
        }
    }

    pub fn config(&self) -> &BackendConfig {
        &self.cfg
    }

    fn has_free_server(&self) -> bool {
        self.cfg
            .capacity
            .is_none_or(|c| self.in_service.get() < c as u64)
    }

    fn start(&mut self, now: SimTime, seq: u64, fx: &mut impl Effects<BackendTimer>) {
        let d = self.cfg.latency.sample_ns(&mut self.rng);
        let error = self.cfg.error_rate > 0.0 && self.rng.random::<f64>() < self.cfg.error_rate;
        let r = self.reqs.get_mut(&seq).expect("started request exists");
        r.in_service = true;
        r.error = error;
        self.in_service.inc(now);
        fx.at(now.saturating_add(d), BackendTimer::Done { seq });
    }

    /// A request for `call` arrives: served at once if a server is free, else queued.
    pub fn request(&mut self, now: SimTime, call: CallId, fx: &mut impl Effects<BackendTimer>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.reqs.insert(
            seq,
            Req {
                call,
                in_service: false,
                cancelled: false,
                error: false,
            },
        );
        if let Some(old) = self.by_call.insert(call, seq) {
            debug_assert!(
                false,
                "call {call} requested twice (previous request {old})"
            );
        }
        if self.has_free_server() {
            self.start(now, seq, fx);
        } else {
            self.queue.push_back(seq);
            self.queued_live += 1;
            self.queued.set(now, self.queued_live);
        }
    }

    /// The caller gave up: a queued request is dropped; one in service goes on (the server
    /// does not know) but its response is not reported.
    pub fn cancel(&mut self, now: SimTime, call: CallId, _fx: &mut impl Effects<BackendTimer>) {
        let Some(seq) = self.by_call.remove(&call) else {
            return;
        };
        self.cancelled.inc();
        let r = self.reqs.get_mut(&seq).expect("live request exists");
        if r.in_service {
            r.cancelled = true;
        } else {
            self.reqs.remove(&seq);
            self.queued_live -= 1;
            self.queued.set(now, self.queued_live);
            if self.queue.len() as u64 > 2 * self.queued_live + 64 {
                let reqs = &self.reqs;
                self.queue.retain(|s| reqs.contains_key(s));
            }
        }
    }

    pub fn on_timer(&mut self, now: SimTime, t: BackendTimer, fx: &mut impl Effects<BackendTimer>) {
        let BackendTimer::Done { seq } = t;
        let Some(r) = self.reqs.remove(&seq) else {
            return;
        };
        self.in_service.dec(now);
        self.served.inc();
        if r.error {
            self.errors.inc();
        }
        if !r.cancelled {
            self.by_call.remove(&r.call);
            self.events.push_back(BackendEvent::Responded {
                call: r.call,
                error: r.error,
            });
        }
        while self.has_free_server() {
            let Some(next) = self.queue.pop_front() else {
                break;
            };
            if self.reqs.contains_key(&next) {
                self.queued_live -= 1;
                self.queued.set(now, self.queued_live);
                self.start(now, next, fx);
            }
        }
    }

    pub fn poll(&mut self) -> Option<BackendEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::Dist;
    use crate::effects::Recorder;
    use crate::time::MILLIS;
    use rand::SeedableRng;
    use rand::rngs::Xoshiro256PlusPlus;

    fn backend(
        latency: Dist,
        capacity: Option<u32>,
        error_rate: f64,
    ) -> Backend<Xoshiro256PlusPlus> {
        Backend::new(
            BackendConfig {
                name: "svc".into(),
                latency: latency.sampler(),
                capacity,
                error_rate,
            },
            Xoshiro256PlusPlus::seed_from_u64(7),
        )
    }

    /// Runs the timers to completion; returns (time, event) in order.
    fn run(
        b: &mut Backend<Xoshiro256PlusPlus>,
        fx: &mut Recorder<BackendTimer>,
    ) -> Vec<(SimTime, BackendEvent)> {
        let mut out = Vec::new();
        while let Some((t, timer)) = fx.pop_earliest() {
            b.on_timer(t, timer, fx);
            while let Some(e) = b.poll() {
                out.push((t, e));
            }
        }
        out
    }

    #[test]
    fn capacity_two_serves_fifo() {
        let mut b = backend(Dist::Const(10.0 * MILLIS as f64), Some(2), 0.0);
        let mut fx = Recorder::default();
        for call in 0..5 {
            b.request(0, call, &mut fx);
        }
        assert_eq!((b.in_service.get(), b.queued.get()), (2, 3));
        let done: Vec<(SimTime, CallId)> = run(&mut b, &mut fx)
            .into_iter()
            .map(|(t, BackendEvent::Responded { call, error })| {
                assert!(!error);
                (t, call)
            })
            .collect();
        let ms = MILLIS;
        assert_eq!(
            done,
            vec![
                (10 * ms, 0),
                (10 * ms, 1),
                (20 * ms, 2),
                (20 * ms, 3),
                (30 * ms, 4)
            ]
        );
        assert_eq!(b.served.total(), 5);
        // Queue: 3 over [0,10), 1 over [10,20), 0 after: mean over 30 ms = 40/30.
        assert!((b.queued.mean(30 * ms) - 40.0 / 30.0).abs() < 1e-9);
        assert!((b.in_service.mean(30 * ms) - 50.0 / 30.0).abs() < 1e-9);
    }

    #[test]
    fn unlimited_capacity_is_a_pure_delay() {
        let mut b = backend(Dist::Const(5.0 * MILLIS as f64), None, 0.0);
        let mut fx = Recorder::default();
        for call in 0..100 {
            b.request(0, call, &mut fx);
        }
        assert_eq!(b.in_service.get(), 100);
        let done = run(&mut b, &mut fx);
        assert_eq!(done.len(), 100);
        assert!(done.iter().all(|&(t, _)| t == 5 * MILLIS));
    }

    #[test]
    fn error_fraction_matches_the_rate() {
        let mut b = backend(Dist::Exp { mean: 1e6 }, Some(4), 0.2);
        let mut fx = Recorder::default();
        let n = 20_000;
        for call in 0..n {
            b.request(0, call, &mut fx);
            if call % 4 == 3 {
                run(&mut b, &mut fx);
            }
        }
        let done = run(&mut b, &mut fx);
        assert!(done.is_empty());
        let frac = b.errors.total() as f64 / b.served.total() as f64;
        // sd = sqrt(0.2·0.8/20000) ≈ 0.0028
        assert!((frac - 0.2).abs() < 0.012, "error fraction {frac}");
        assert_eq!(b.served.total(), n);
    }

    #[test]
    fn cancel_drops_a_queued_request_and_silences_one_in_service() {
        let mut b = backend(Dist::Const(10.0 * MILLIS as f64), Some(1), 0.0);
        let mut fx = Recorder::default();
        b.request(0, 1, &mut fx);
        b.request(0, 2, &mut fx);
        b.request(0, 3, &mut fx);
        b.cancel(MILLIS, 2, &mut fx); // queued: dropped
        b.cancel(MILLIS, 1, &mut fx); // in service: goes on, not reported
        b.cancel(MILLIS, 99, &mut fx); // unknown: ignored
        assert_eq!((b.in_service.get(), b.queued.get()), (1, 1));
        let done = run(&mut b, &mut fx);
        // Call 1 still holds the server until 10 ms; call 3 is served 10–20 ms.
        assert_eq!(
            done,
            vec![(
                20 * MILLIS,
                BackendEvent::Responded {
                    call: 3,
                    error: false
                }
            )]
        );
        assert_eq!(b.served.total(), 2);
        assert_eq!(b.cancelled.total(), 2);
        assert_eq!((b.in_service.get(), b.queued.get()), (0, 0));
        assert!(b.reqs.is_empty() && b.by_call.is_empty());
        // The call id may be used again after its cancelled request.
        b.request(30 * MILLIS, 1, &mut fx);
        assert_eq!(run(&mut b, &mut fx).len(), 1);
    }
}
