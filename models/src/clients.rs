//! Where requests come from: open-loop arrival processes and closed-loop users.
//!
//! **Models**: the clients of the site. *Open loop*: requests arrive at a rate that
//! does not depend on how the server copes (Internet traffic, a load balancer's share),
//! as a Poisson process or at constant spacing, with a rate that may follow a schedule
//! (steps or linear ramps) plus instantaneous bursts of N requests. *Closed loop*: a
//! fixed population of users, each sending a request, waiting for its answer (or
//! failure) and thinking before the next.
//!
//! **Seeds**: 003 (~1000 requests/s per server, bursts), the CLR reference bursts.
//!
//! *Retrying clients* ([`Sessions`]): a user request may take several attempts. A client
//! gives up on an attempt after its timeout, and after a 503, an error or a timeout it
//! may try again after an exponential backoff with jitter ("Exponential Backoff and
//! Jitter": none, full or equal), up to a number of retries. Retries come exactly when
//! the servers are weakest, so they can turn a brief overload into a retry storm.
//!
//! A *retry budget* (Finagle's `RetryBudget`, the same idea as Envoy's retry budgets and
//! gRPC's retry throttling) caps retries at a fraction of the user requests: each user
//! request deposits `percent_can_retry` % of a retry, each retry withdraws one, both count
//! for `ttl` (10 slices of a sliding window), and `min_retries_per_second` × `ttl` more are
//! always allowed. A retry the budget cannot pay for is not sent: the user request ends
//! with its last failure. One budget serves all the clients (one client process, or
//! clients that share a budget).
//!
//! **Leaves out**: circuit breakers in the client, `Retry-After` headers, users
//! abandoning the site.
//!
//! Time-varying Poisson arrivals are generated exactly by inverting the cumulative
//! rate Λ(t): the next arrival after `t` is where Λ has grown by an Exp(1) draw
//! (by exactly 1 for constant spacing), so steps and ramps need no thinning.

use rand::Rng;
use rand_distr::{Distribution, Exp1};

use crate::deadlines::Deadlines;
use crate::dist::Sampler;
use crate::effects::Effects;
use crate::request::ClassId;
use crate::time::SimTime;

/// A piecewise rate function of time (requests per second).
#[derive(Clone, Debug, PartialEq)]
pub struct RateSchedule {
    /// (time, rate per second) points, sorted by time. Before the first point the rate is 0.
    pub points: Vec<(SimTime, f64)>,
    /// Interpolate linearly between points (ramps) instead of holding each rate (steps).
    pub linear: bool,
}

impl RateSchedule {
    /// A constant rate from time 0.
    pub fn constant(rate: f64) -> Self {
        Self {
            points: vec![(0, rate)],
            linear: false,
        }
    }

    /// The rate at time `t` (per second).
    pub fn rate_at(&self, t: SimTime) -> f64 {
        let i = self.points.partition_point(|&(pt, _)| pt <= t);
        if i == 0 {
            return 0.0;
        }
        let (t0, r0) = self.points[i - 1];
        if !self.linear || i == self.points.len() {
            return r0;
        }
        let (t1, r1) = self.points[i];
        r0 + (r1 - r0) * ((t - t0) as f64 / (t1 - t0) as f64)
    }

    /// The time after `now` at which the integral of the rate reaches `mass`
    /// (expected number of arrivals), or `None` if it never does.
    /// `cursor` is a segment hint that only moves forward (amortised O(1)).
    pub fn advance(&self, now: SimTime, mass: f64, cursor: &mut usize) -> Option<SimTime> {
        let n = self.points.len();
        if n == 0 {
            return None;
        }
        if n == 1 && self.points[0].0 <= now {
            // A constant rate (the common case): what the general case below computes
            // for it, term for term (√(r²) = r exactly, and 2m / 2r = m / r).
            let r = self.points[0].1 * 1e-9;
            if r <= 0.0 {
                return None;
            }
            if !(1e-150..=1e150).contains(&r) {
                // r² would underflow or overflow: leave it to the general case.
                return self.advance_general(now, mass, cursor);
            }
            let at = now as f64 + mass / r;
            if !at.is_finite() || at >= u64::MAX as f64 {
                return None;
            }
            return Some(crate::time::round_ns(at).max(now));
        }
        self.advance_general(now, mass, cursor)
    }

    fn advance_general(&self, now: SimTime, mass: f64, cursor: &mut usize) -> Option<SimTime> {
        let n = self.points.len();
        // Find the segment containing `now`.
        while *cursor + 1 < n && self.points[*cursor + 1].0 <= now {
            *cursor += 1;
        }
        let mut t = now as f64; // ns
        let mut left = mass;
        let mut k = *cursor;
        if self.points[0].0 > now {
            // Before the first point: nothing until it.
            t = self.points[0].0 as f64;
            k = 0;
        }
        loop {
            let (tk, rk) = self.points[k];
            let end = if k + 1 < n {
                Some(self.points[k + 1].0 as f64)
            } else {
                None
            };
            // Rate at t and its slope (per ns) within this segment.
            let (r_now, slope) = match (self.linear, end) {
                (true, Some(e)) => {
                    let r1 = self.points[k + 1].1;
                    let s = (r1 - rk) / (e - tk as f64);
                    (rk + s * (t - tk as f64), s)
                }
                _ => (rk, 0.0),
            };
            // Rates are per second; convert to per ns.
            let r = r_now * 1e-9;
            let s = slope * 1e-9;
            let avail = end.map(|e| {
                let x = e - t;
                r * x + 0.5 * s * x * x
            });
            match avail {
                Some(a) if a < left => {
                    left -= a.max(0.0);
                    t = end.expect("a finite segment has an end");
                    k += 1;
                }
                _ => {
                    if r <= 0.0 && s <= 0.0 {
                        // Zero rate until the segment end; none at all after the last point.
                        t = end?;
                        k += 1;
                        continue;
                    }
                    // Solve r x + s x²/2 = left, stable form.
                    let disc = (r * r + 2.0 * s * left).max(0.0);
                    let x = 2.0 * left / (r + disc.sqrt());
                    let at = t + x;
                    if !at.is_finite() || at >= u64::MAX as f64 {
                        return None;
                    }
                    return Some(crate::time::round_ns(at).max(now));
                }
            }
        }
    }
}

/// Poisson or constant spacing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArrivalProcess {
    Poisson,
    Constant,
}

/// A batch of simultaneous requests at a given time (e.g. 300 work items at t = 0).
#[derive(Clone, Debug, PartialEq)]
pub struct Burst {
    pub at: SimTime,
    pub count: u32,
    /// The class of every request of the burst; `None` draws each by class weight.
    pub class: Option<ClassId>,
}

/// Timers of the open-loop source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenTimer {
    /// The next arrival of the rate process.
    Next,
    /// Burst number `i`.
    Burst(u32),
}

/// What an open-loop timer produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArrivalBatch {
    pub count: u32,
    pub class: Option<ClassId>,
}

/// Draws a class index from cumulative weights.
#[derive(Clone, Debug)]
pub struct ClassPicker {
    cumulative: Vec<f64>,
}

impl ClassPicker {
    /// `weights` must be non-negative with a positive sum.
    pub fn new(weights: &[f64]) -> Self {
        let total: f64 = weights.iter().sum();
        let mut acc = 0.0;
        let cumulative = weights
            .iter()
            .map(|w| {
                acc += w / total;
                acc
            })
            .collect();
        Self { cumulative }
    }

    #[inline]
    pub fn pick<R: Rng + ?Sized>(&self, rng: &mut R) -> ClassId {
        if self.cumulative.len() <= 1 {
            return 0;
        }
        let u: f64 = rng.next_u64() as f64 * (1.0 / 18_446_744_073_709_551_616.0);
        let i = self.cumulative.partition_point(|&c| c <= u);
        i.min(self.cumulative.len() - 1) as ClassId
    }
}

/// Open-loop source.
#[derive(Debug)]
pub struct OpenLoop<R> {
    process: ArrivalProcess,
    schedule: RateSchedule,
    bursts: Vec<Burst>,
    picker: ClassPicker,
    cursor: usize,
    rng: R,
}

impl<R: Rng> OpenLoop<R> {
    pub fn new(
        process: ArrivalProcess,
        schedule: RateSchedule,
        bursts: Vec<Burst>,
        picker: ClassPicker,
        rng: R,
    ) -> Self {
        Self {
            process,
            schedule,
            bursts,
            picker,
            cursor: 0,
            rng,
        }
    }

    /// Schedules the first arrival and every burst.
    pub fn start(&mut self, now: SimTime, fx: &mut impl Effects<OpenTimer>) {
        for (i, b) in self.bursts.iter().enumerate() {
            fx.at(b.at.max(now), OpenTimer::Burst(i as u32));
        }
        self.schedule_next(now, fx);
    }

    #[inline]
    fn schedule_next(&mut self, now: SimTime, fx: &mut impl Effects<OpenTimer>) {
        let mass = match self.process {
            ArrivalProcess::Poisson => Exp1.sample(&mut self.rng),
            ArrivalProcess::Constant => 1.0,
        };
        if let Some(t) = self.schedule.advance(now, mass, &mut self.cursor) {
            fx.at(t, OpenTimer::Next);
        }
    }

    /// Handles a timer: returns the requests that arrive now.
    #[inline]
    pub fn on_timer(
        &mut self,
        now: SimTime,
        t: OpenTimer,
        fx: &mut impl Effects<OpenTimer>,
    ) -> ArrivalBatch {
        match t {
            OpenTimer::Next => {
                self.schedule_next(now, fx);
                ArrivalBatch {
                    count: 1,
                    class: None,
                }
            }
            OpenTimer::Burst(i) => {
                let b = &self.bursts[i as usize];
                ArrivalBatch {
                    count: b.count,
                    class: b.class,
                }
            }
        }
    }

    /// Draws the class of one arriving request by weight.
    #[inline]
    pub fn pick_class(&mut self) -> ClassId {
        self.picker.pick(&mut self.rng)
    }
}

/// Timer of the closed-loop population: user `u` finished thinking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserTimer(pub u32);

/// Closed-loop users with think time.
#[derive(Debug)]
pub struct ClosedLoop<R> {
    users: u32,
    think: Sampler,
    picker: ClassPicker,
    rng: R,
}

impl<R: Rng> ClosedLoop<R> {
    pub fn new(users: u32, think: Sampler, picker: ClassPicker, rng: R) -> Self {
        Self {
            users,
            think,
            picker,
            rng,
        }
    }

    /// Every user starts thinking at `now` (their first requests are spread by the think time).
    pub fn start(&mut self, now: SimTime, fx: &mut impl Effects<UserTimer>) {
        for u in 0..self.users {
            let d = self.think.sample_ns(&mut self.rng);
            fx.at(now.saturating_add(d), UserTimer(u));
        }
    }

    /// A user finished thinking: returns the class of the request it sends now.
    #[inline]
    pub fn on_timer(&mut self, _now: SimTime, _t: UserTimer) -> ClassId {
        self.picker.pick(&mut self.rng)
    }

    /// The user's request ended (answered or failed): it thinks, then sends the next.
    #[inline]
    pub fn on_response(&mut self, now: SimTime, user: u32, fx: &mut impl Effects<UserTimer>) {
        let d = self.think.sample_ns(&mut self.rng);
        fx.at(now.saturating_add(d), UserTimer(user));
    }

    pub fn users(&self) -> u32 {
        self.users
    }
}

/// How a client spaces its retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Jitter {
    /// Exactly the exponential backoff: synchronised clients retry together.
    None,
    /// Uniform between 0 and the backoff ("full jitter").
    Full,
    /// Half the backoff plus a uniform draw over the other half ("equal jitter").
    Equal,
}

/// When and how often a client retries a user request.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0: never retry).
    pub retries: u32,
    /// Backoff before the first retry; retry k waits `backoff · multiplier^(k-1)`,
    /// at most `max_backoff`, then jittered.
    pub backoff_ns: u64,
    pub multiplier: f64,
    pub max_backoff_ns: u64,
    pub jitter: Jitter,
    /// Which failed attempts are retried.
    pub on_503: bool,
    pub on_error: bool,
    pub on_timeout: bool,
    /// At most this share of retries, or no limit but `retries`.
    pub budget: Option<RetryBudget>,
}

/// A retry budget (Finagle's `RetryBudget(ttl, minRetriesPerSec, percentCanRetry)`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryBudget {
    /// Retries allowed per 100 user requests.
    pub percent_can_retry: f64,
    /// Retries allowed per second whatever the number of user requests.
    pub min_retries_per_second: f64,
    /// How long a deposit or a withdrawal counts.
    pub ttl_ns: u64,
}

/// The budget's balance over a sliding window of `SLICES` slices of `ttl / SLICES`, in
/// thousandths of a retry (Finagle's `WindowedAdder`).
#[derive(Clone, Debug)]
struct BudgetWindow {
    slice_ns: u64,
    slices: [i64; BudgetWindow::SLICES],
    /// Number of the slice `now` was last in.
    current: u64,
    deposit: i64,
    reserve: i64,
}

impl BudgetWindow {
    const SLICES: usize = 10;
    const ONE: i64 = 1000;

    fn new(b: &RetryBudget) -> Self {
        let ttl_s = b.ttl_ns as f64 * 1e-9;
        Self {
            slice_ns: (b.ttl_ns / Self::SLICES as u64).max(1),
            slices: [0; Self::SLICES],
            current: 0,
            deposit: (b.percent_can_retry / 100.0 * Self::ONE as f64).round() as i64,
            reserve: (b.min_retries_per_second * ttl_s * Self::ONE as f64).round() as i64,
        }
    }

    /// Clears the slices that fell out of the window since the last call.
    fn advance(&mut self, now: SimTime) {
        let k = now / self.slice_ns;
        if k > self.current {
            for j in 1..=(k - self.current).min(Self::SLICES as u64) {
                self.slices[((self.current + j) % Self::SLICES as u64) as usize] = 0;
            }
            self.current = k;
        }
    }

    fn slot(&mut self) -> &mut i64 {
        &mut self.slices[(self.current % Self::SLICES as u64) as usize]
    }

    fn deposit(&mut self, now: SimTime) {
        self.advance(now);
        let d = self.deposit;
        *self.slot() += d;
    }

    /// Withdraws one retry if the balance holds one.
    fn try_withdraw(&mut self, now: SimTime) -> bool {
        self.advance(now);
        let balance = self.reserve + self.slices.iter().sum::<i64>();
        if balance >= Self::ONE {
            *self.slot() -= Self::ONE;
            true
        } else {
            false
        }
    }
}

impl RetryPolicy {
    /// No retries.
    pub fn none() -> Self {
        Self {
            retries: 0,
            backoff_ns: 0,
            multiplier: 1.0,
            max_backoff_ns: 0,
            jitter: Jitter::None,
            on_503: false,
            on_error: false,
            on_timeout: false,
            budget: None,
        }
    }

    /// The wait before retry number `retry` (1 for the first retry).
    pub fn delay<R: Rng + ?Sized>(&self, retry: u32, rng: &mut R) -> u64 {
        let exp = self
            .multiplier
            .max(1.0)
            .powi(retry.saturating_sub(1) as i32);
        let d = (self.backoff_ns as f64 * exp).min(self.max_backoff_ns.max(self.backoff_ns) as f64);
        let mut u = || rng.next_u64() as f64 * (1.0 / 18_446_744_073_709_551_616.0);
        let d = match self.jitter {
            Jitter::None => d,
            Jitter::Full => d * u(),
            Jitter::Equal => d / 2.0 + d / 2.0 * u(),
        };
        d.round() as u64
    }

    fn retries_on(&self, a: Answer) -> bool {
        match a {
            Answer::Ok => false,
            Answer::Unavailable => self.on_503,
            Answer::Error => self.on_error,
            Answer::Timeout => self.on_timeout,
        }
    }
}

/// How an attempt ended, as the client sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// 200.
    Ok,
    /// A 503 (from a server or from the load balancer).
    Unavailable,
    /// Any other failure (a 500, a dropped connection).
    Error,
    /// The client's timeout fired first.
    Timeout,
}

/// One attempt of a user request, as sent: its token comes back with the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub slot: u32,
    pub seq: u32,
    pub class: ClassId,
    /// 1 for the first attempt.
    pub number: u32,
    /// The closed-loop user who sent it, or `u32::MAX` (an open-loop request).
    pub user: u32,
}

/// `Attempt::slot` of a single-shot attempt (no slot: its token carries class and user).
const SINGLE_SHOT: u32 = u32::MAX;
/// Token bit of a single-shot attempt.
const SINGLE_SHOT_BIT: u64 = 1 << 62;

impl Attempt {
    /// The attempt's token as one number: (slot, sequence), or for a single-shot
    /// attempt a flag, its class and its user. Bit 63 is never set (callers may use it).
    pub fn token(&self) -> u64 {
        if self.slot == SINGLE_SHOT {
            SINGLE_SHOT_BIT | (self.class as u64) << 32 | self.seq as u64
        } else {
            ((self.slot as u64) << 32) | self.seq as u64
        }
    }

    /// Splits a token back into (slot, sequence).
    pub fn untoken(t: u64) -> (u32, u32) {
        ((t >> 32) as u32, t as u32)
    }
}

/// A user request that is over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Done {
    pub class: ClassId,
    /// When the user sent it (its first attempt).
    pub started: SimTime,
    pub attempts: u32,
    /// How its last attempt ended (`Ok` for success).
    pub last: Answer,
    /// Closed-loop user that sent it, or `u32::MAX`.
    pub user: u32,
}

/// What an answer or a timer did to a user request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The answer was for an attempt the client had already given up on.
    Stale,
    /// The user request is over.
    Done(Done),
    /// A retry is scheduled.
    Retrying,
}

/// Timers of retrying clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientTimer {
    /// The oldest outstanding attempt's timeout may have expired. Every attempt waits the
    /// same timeout, so deadlines come in the order attempts are sent: the sessions keep
    /// them in a queue with one timer outstanding, rather than one timer per attempt
    /// (most attempts are answered in time and their timers would only be stale).
    Timeout,
    /// Time to send the next attempt of the user request in `slot`.
    Retry { slot: u32, seq: u32 },
}

#[derive(Clone, Copy, Debug)]
struct UserRequest {
    class: ClassId,
    started: SimTime,
    attempts: u32,
    user: u32,
    /// An attempt is out (not yet answered or timed out).
    outstanding: bool,
}

/// A slot of [`Sessions`]: the sequence number of its current attempt (kept across
/// reuse, so a late answer to an attempt of an earlier user request never matches) next
/// to its user request, so that an answer reads one cache line.
#[derive(Clone, Copy, Debug)]
struct Slot {
    seq: u32,
    req: Option<UserRequest>,
}

/// The user requests in flight and their attempts: timeouts and retries.
#[derive(Debug)]
pub struct Sessions<R> {
    policy: RetryPolicy,
    /// Client timeout per attempt; 0 = wait for ever.
    timeout_ns: u64,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// (slot, seq) of the attempts sent, by deadline; answered ones are dropped.
    deadlines: Deadlines<(u32, u32)>,
    /// No timeout and nothing is ever retried: every user request is one attempt, and
    /// an attempt's token carries all there is to know (class, user; its answer brings
    /// the time it was sent), so no slot is kept.
    single_shot: bool,
    budget: Option<BudgetWindow>,
    rng: R,
    /// Attempts sent, retries among them, attempts the client timed out.
    pub attempts: u64,
    pub retries: u64,
    pub timeouts: u64,
    /// Retries the budget did not allow (their user requests failed).
    pub retries_denied: u64,
    in_flight: u64,
}

impl<R: Rng> Sessions<R> {
    pub fn new(policy: RetryPolicy, timeout_ns: u64, rng: R) -> Self {
        let retries_something = policy.on_503 || policy.on_error || policy.on_timeout;
        let single_shot = timeout_ns == 0 && (policy.retries == 0 || !retries_something);
        Self {
            single_shot,
            budget: policy.budget.as_ref().map(BudgetWindow::new),
            policy,
            timeout_ns,
            slots: Vec::new(),
            free: Vec::new(),
            deadlines: Deadlines::new(),
            rng,
            attempts: 0,
            retries: 0,
            timeouts: 0,
            retries_denied: 0,
            in_flight: 0,
        }
    }

    /// User requests in flight (including those waiting to retry).
    pub fn in_flight(&self) -> u64 {
        self.in_flight
    }

    /// Slots allocated (memory follows user requests in flight).
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// A user sends a new request: its first attempt, to be sent now.
    pub fn begin(
        &mut self,
        now: SimTime,
        class: ClassId,
        user: u32,
        fx: &mut impl Effects<ClientTimer>,
    ) -> Attempt {
        self.in_flight += 1;
        if self.single_shot {
            self.attempts += 1;
            return Attempt {
                slot: SINGLE_SHOT,
                seq: user,
                class,
                number: 1,
                user,
            };
        }
        if let Some(b) = self.budget.as_mut() {
            b.deposit(now);
        }
        let u = UserRequest {
            class,
            started: now,
            attempts: 0,
            user,
            outstanding: false,
        };
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize].req = Some(u);
                s
            }
            None => {
                self.slots.push(Slot {
                    seq: 0,
                    req: Some(u),
                });
                assert!(
                    self.slots.len() < 1 << 30,
                    "too many user requests in flight"
                );
                (self.slots.len() - 1) as u32
            }
        };
        self.send(now, slot, fx)
    }

    fn send(&mut self, now: SimTime, slot: u32, fx: &mut impl Effects<ClientTimer>) -> Attempt {
        let s = slot as usize;
        let slot_s = &mut self.slots[s];
        slot_s.seq = slot_s.seq.wrapping_add(1);
        let seq = slot_s.seq;
        let u = slot_s.req.as_mut().expect("live user request");
        u.attempts += 1;
        u.outstanding = true;
        self.attempts += 1;
        if u.attempts > 1 {
            self.retries += 1;
        }
        let a = Attempt {
            slot,
            seq,
            class: u.class,
            number: u.attempts,
            user: u.user,
        };
        if self.timeout_ns > 0 {
            let deadline = now.saturating_add(self.timeout_ns);
            let slots = &self.slots;
            let out = self.in_flight as usize;
            if let Some(t) = self.deadlines.push(deadline, (slot, seq), out, |(sl, sq)| {
                Self::current(slots, sl, sq, true)
            }) {
                fx.at(t, ClientTimer::Timeout);
            }
        }
        a
    }

    /// Attempt `token`, sent at `sent_at`, was answered.
    pub fn answered(
        &mut self,
        now: SimTime,
        token: u64,
        sent_at: SimTime,
        answer: Answer,
        fx: &mut impl Effects<ClientTimer>,
    ) -> Verdict {
        if token & SINGLE_SHOT_BIT != 0 {
            self.in_flight -= 1;
            return Verdict::Done(Done {
                class: (token >> 32) as ClassId,
                started: sent_at,
                attempts: 1,
                last: answer,
                user: token as u32,
            });
        }
        let (slot, seq) = Attempt::untoken(token);
        if !self.is_current(slot, seq, true) {
            return Verdict::Stale;
        }
        self.conclude(now, slot, answer, fx)
    }

    /// Whether (slot, seq) is the live attempt of its user request, out (`outstanding`)
    /// or waiting to be retried.
    #[inline]
    fn is_current(&self, slot: u32, seq: u32, outstanding: bool) -> bool {
        Self::current(&self.slots, slot, seq, outstanding)
    }

    #[inline]
    fn current(slots: &[Slot], slot: u32, seq: u32, outstanding: bool) -> bool {
        matches!(
            slots.get(slot as usize),
            Some(Slot { seq: q, req: Some(u) }) if u.outstanding == outstanding && *q == seq
        )
    }

    /// A timer fired: a timeout concludes its attempt; a retry returns the attempt to send.
    pub fn on_timer(
        &mut self,
        now: SimTime,
        t: ClientTimer,
        fx: &mut impl Effects<ClientTimer>,
    ) -> (Verdict, Option<Attempt>) {
        match t {
            ClientTimer::Timeout => {
                self.deadlines.fired();
                let mut verdict = Verdict::Stale;
                // The oldest outstanding attempt, if its time is up; another one due at
                // the same instant gets a timer of its own at `now`.
                let slots = &self.slots;
                if let Some((slot, _)) = self
                    .deadlines
                    .pop_due(now, |(sl, sq)| Self::current(slots, sl, sq, true))
                {
                    self.timeouts += 1;
                    verdict = self.conclude(now, slot, Answer::Timeout, fx);
                }
                let slots = &self.slots;
                if let Some(t) = self
                    .deadlines
                    .rearm(|(sl, sq)| Self::current(slots, sl, sq, true))
                {
                    fx.at(t, ClientTimer::Timeout);
                }
                (verdict, None)
            }
            ClientTimer::Retry { slot, seq } => {
                if !self.is_current(slot, seq, false) {
                    return (Verdict::Stale, None);
                }
                (Verdict::Retrying, Some(self.send(now, slot, fx)))
            }
        }
    }

    fn conclude(
        &mut self,
        now: SimTime,
        slot: u32,
        answer: Answer,
        fx: &mut impl Effects<ClientTimer>,
    ) -> Verdict {
        let s = slot as usize;
        let u = self.slots[s].req.as_mut().expect("live user request");
        u.outstanding = false;
        let retry = u.attempts;
        if answer != Answer::Ok && retry <= self.policy.retries && self.policy.retries_on(answer) {
            if let Some(b) = self.budget.as_mut()
                && !b.try_withdraw(now)
            {
                self.retries_denied += 1;
                return self.finish(slot, answer);
            }
            let d = self.policy.delay(retry, &mut self.rng);
            fx.at(
                now + d,
                ClientTimer::Retry {
                    slot,
                    seq: self.slots[s].seq,
                },
            );
            return Verdict::Retrying;
        }
        self.finish(slot, answer)
    }

    /// The user request in `slot` is over with `answer`.
    fn finish(&mut self, slot: u32, answer: Answer) -> Verdict {
        let u = self.slots[slot as usize]
            .req
            .take()
            .expect("live user request");
        self.free.push(slot);
        self.in_flight -= 1;
        Verdict::Done(Done {
            class: u.class,
            started: u.started,
            attempts: u.attempts,
            last: answer,
            user: u.user,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::effects::Recorder;
    use crate::time::SECONDS;
    use rand::SeedableRng;
    use rand::rngs::Xoshiro256PlusPlus;

    proptest::proptest! {
        /// The constant rate's shortcut gives what the general integration gives, to
        /// the nanosecond (byte-identical outputs depend on it).
        #[test]
        fn a_constant_rate_takes_a_shortcut_to_the_same_time(
            rate in proptest::prop_oneof![1e-160f64..1e-140, 1e-6f64..1e9, 1e140f64..1e160],
            now in 0u64..1 << 60,
            mass in 0.0f64..50.0,
        ) {
            let s = RateSchedule::constant(rate);
            let (mut c1, mut c2) = (0, 0);
            proptest::prop_assert_eq!(
                s.advance(now, mass, &mut c1),
                s.advance_general(now, mass, &mut c2)
            );
        }
    }

    #[test]
    fn step_schedule_integrates_exactly() {
        let s = RateSchedule {
            points: vec![(0, 10.0), (10 * SECONDS, 100.0)],
            linear: false,
        };
        let mut c = 0;
        // 50 arrivals' worth of mass from t=0 at 10/s: 5 s.
        assert_eq!(s.advance(0, 50.0, &mut c), Some(5 * SECONDS));
        // 150 from t=0: 100 in the first 10 s, then 50 at 100/s = 0.5 s.
        let mut c = 0;
        assert_eq!(
            s.advance(0, 150.0, &mut c),
            Some(10 * SECONDS + SECONDS / 2)
        );
    }

    #[test]
    fn linear_ramp_integrates_exactly() {
        // 0 → 100/s over 10 s: Λ(t) = 5 t², Λ = 125 at t = 5 s.
        let s = RateSchedule {
            points: vec![(0, 0.0), (10 * SECONDS, 100.0)],
            linear: true,
        };
        let mut c = 0;
        let t = s.advance(0, 125.0, &mut c).unwrap();
        assert!((t as i64 - 5 * SECONDS as i64).abs() < 10, "{t}");
        assert!((s.rate_at(5 * SECONDS) - 50.0).abs() < 1e-9);
    }

    #[test]
    fn zero_rate_tail_means_no_more_arrivals() {
        let s = RateSchedule {
            points: vec![(0, 10.0), (SECONDS, 0.0)],
            linear: false,
        };
        let mut c = 0;
        assert_eq!(s.advance(0, 20.0, &mut c), None);
    }

    #[test]
    fn poisson_source_has_the_right_rate_and_bursts_fire() {
        let mut src = OpenLoop::new(
            ArrivalProcess::Poisson,
            RateSchedule::constant(1000.0),
            vec![Burst {
                at: 2 * SECONDS,
                count: 300,
                class: Some(0),
            }],
            ClassPicker::new(&[1.0]),
            Xoshiro256PlusPlus::seed_from_u64(1),
        );
        let mut fx = Recorder::default();
        src.start(0, &mut fx);
        let (mut n, mut burst) = (0u64, 0u32);
        while let Some((t, timer)) = fx.pop_earliest() {
            if t > 10 * SECONDS {
                break;
            }
            let b = src.on_timer(t, timer, &mut fx);
            if matches!(timer, OpenTimer::Burst(_)) {
                burst += b.count;
            } else {
                n += 1;
            }
        }
        assert_eq!(burst, 300);
        assert!((n as f64 - 10_000.0).abs() < 400.0, "{n}");
    }

    #[test]
    fn class_picker_follows_weights() {
        let p = ClassPicker::new(&[1.0, 3.0]);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let ones = (0..100_000).filter(|_| p.pick(&mut rng) == 1).count();
        assert!((ones as f64 / 100_000.0 - 0.75).abs() < 0.01);
    }

    fn policy(retries: u32, jitter: Jitter) -> RetryPolicy {
        RetryPolicy {
            retries,
            backoff_ns: 100_000_000,
            multiplier: 2.0,
            max_backoff_ns: 1_000_000_000,
            jitter,
            on_503: true,
            on_error: true,
            on_timeout: true,
            budget: None,
        }
    }

    /// Begins `n` user requests at `t0` and answers them all 503 at `t1`: how many retry.
    fn retried_of(c: &mut Sessions<Xoshiro256PlusPlus>, n: usize, t0: u64, t1: u64) -> usize {
        let mut fx = Recorder::default();
        let tokens: Vec<u64> = (0..n).map(|_| c.begin(t0, 0, 0, &mut fx).token()).collect();
        tokens
            .into_iter()
            .filter(|&t| c.answered(t1, t, t0, Answer::Unavailable, &mut fx) == Verdict::Retrying)
            .count()
    }

    #[test]
    fn a_retry_budget_pays_for_its_share_of_retries_and_forgets_after_its_ttl() {
        let budget = |pct: f64, min: f64| {
            let mut p = policy(3, Jitter::None);
            p.budget = Some(RetryBudget {
                percent_can_retry: pct,
                min_retries_per_second: min,
                ttl_ns: 10 * SECONDS,
            });
            Sessions::new(p, 0, Xoshiro256PlusPlus::seed_from_u64(1))
        };
        // 100 user requests deposit 20 % of a retry each: 20 of their 100 failures retry.
        let mut c = budget(20.0, 0.0);
        assert_eq!(retried_of(&mut c, 100, 0, SECONDS), 20);
        assert_eq!(c.retries_denied, 80);
        assert_eq!(c.in_flight(), 20);
        // Deposits count for 10 s: answered 11 s later, nothing is left to pay with.
        let mut c = budget(20.0, 0.0);
        assert_eq!(retried_of(&mut c, 100, 0, 11 * SECONDS), 0);
        // The reserve: 1 retry a second over 10 s, on top of the deposits.
        let mut c = budget(20.0, 1.0);
        assert_eq!(retried_of(&mut c, 100, 0, SECONDS), 30);
        // The window is spent: 30 more requests 5 s later pay for their own 6 retries.
        assert_eq!(retried_of(&mut c, 30, 5 * SECONDS, 5 * SECONDS), 6);
        // Withdrawals count for 10 s too: at 11 s the first 20 deposits and 30 withdrawals
        // are gone and the reserve (10) is back, plus 20 % of 20 new requests.
        let mut fx = Recorder::default();
        let t: Vec<u64> = (0..20)
            .map(|_| c.begin(11 * SECONDS, 0, 0, &mut fx).token())
            .collect();
        let n = t
            .into_iter()
            .filter(|&t| {
                c.answered(11 * SECONDS, t, 0, Answer::Unavailable, &mut fx) == Verdict::Retrying
            })
            .count();
        assert_eq!(n, 10 + 4, "the reserve and the new deposits");
        // Without a budget, every failure retries.
        let mut c = Sessions::new(
            policy(3, Jitter::None),
            0,
            Xoshiro256PlusPlus::seed_from_u64(1),
        );
        assert_eq!(retried_of(&mut c, 100, 0, SECONDS), 100);
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_and_jitter_stays_inside_it() {
        let p = policy(5, Jitter::None);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let d: Vec<u64> = (1..=5).map(|k| p.delay(k, &mut rng)).collect();
        assert_eq!(
            d,
            [
                100_000_000,
                200_000_000,
                400_000_000,
                800_000_000,
                1_000_000_000
            ]
        );
        for (j, lo) in [(Jitter::Full, 0.0), (Jitter::Equal, 0.5)] {
            let p = policy(5, j);
            let draws: Vec<f64> = (0..10_000)
                .map(|_| p.delay(2, &mut rng) as f64 / 200e6)
                .collect();
            assert!(draws.iter().all(|&x| x >= lo && x <= 1.0));
            let mean = draws.iter().sum::<f64>() / draws.len() as f64;
            assert!((mean - (lo + 1.0) / 2.0).abs() < 0.02, "{j:?}: {mean}");
        }
    }

    #[test]
    fn a_503_is_retried_until_the_retries_run_out() {
        let mut c = Sessions::new(
            policy(2, Jitter::None),
            0,
            Xoshiro256PlusPlus::seed_from_u64(1),
        );
        let mut fx = Recorder::default();
        let a = c.begin(0, 0, u32::MAX, &mut fx);
        assert_eq!(
            c.answered(10, a.token(), 0, Answer::Unavailable, &mut fx),
            Verdict::Retrying
        );
        let (t, timer) = fx.pop_earliest().unwrap();
        assert_eq!(t, 10 + 100_000_000);
        let (_, a2) = c.on_timer(t, timer, &mut fx);
        let a2 = a2.unwrap();
        assert_eq!(a2.number, 2);
        // A late answer to the first attempt is stale.
        assert_eq!(
            c.answered(t, a.token(), 0, Answer::Ok, &mut fx),
            Verdict::Stale
        );
        assert_eq!(
            c.answered(t, a2.token(), 0, Answer::Error, &mut fx),
            Verdict::Retrying
        );
        let (t, timer) = fx.pop_earliest().unwrap();
        let a3 = c.on_timer(t, timer, &mut fx).1.unwrap();
        match c.answered(t, a3.token(), 0, Answer::Unavailable, &mut fx) {
            Verdict::Done(d) => {
                assert_eq!(d.attempts, 3);
                assert_eq!(d.last, Answer::Unavailable);
            }
            v => panic!("{v:?}"),
        }
        assert_eq!((c.attempts, c.retries, c.in_flight()), (3, 2, 0));
    }

    #[test]
    fn a_timeout_ends_the_attempt_and_its_late_answer_is_ignored() {
        let mut c = Sessions::new(
            policy(0, Jitter::None),
            1_000,
            Xoshiro256PlusPlus::seed_from_u64(1),
        );
        let mut fx = Recorder::default();
        let a = c.begin(0, 3, 7, &mut fx);
        let (t, timer) = fx.pop_earliest().unwrap();
        assert_eq!(t, 1_000);
        match c.on_timer(t, timer, &mut fx).0 {
            Verdict::Done(d) => assert_eq!((d.last, d.user, d.class), (Answer::Timeout, 7, 3)),
            v => panic!("{v:?}"),
        }
        assert_eq!(
            c.answered(2_000, a.token(), 0, Answer::Ok, &mut fx),
            Verdict::Stale
        );
        // The slot is reused; the old token still does not match.
        let b = c.begin(3_000, 0, u32::MAX, &mut fx);
        assert_eq!(b.slot, a.slot);
        assert_eq!(
            c.answered(3_001, a.token(), 0, Answer::Ok, &mut fx),
            Verdict::Stale
        );
        assert!(matches!(
            c.answered(3_002, b.token(), 0, Answer::Ok, &mut fx),
            Verdict::Done(_)
        ));
        assert_eq!(c.timeouts, 1);
    }

    #[test]
    fn timeouts_fire_at_each_attempts_deadline_with_one_timer_outstanding() {
        // 1000 attempts, one every 10 µs, timeout 1 ms. Every third one is never answered,
        // the others are answered after 500 µs. Two sent at the same instant time out
        // together. Each unanswered attempt times out exactly 1 ms after it was sent, and
        // at most one timer is ever pending.
        let timeout = 1_000_000;
        let mut c = Sessions::new(
            policy(0, Jitter::None),
            timeout,
            Xoshiro256PlusPlus::seed_from_u64(1),
        );
        let mut fx = Recorder::default();
        let mut answers: std::collections::VecDeque<(SimTime, u64)> = Default::default();
        let mut sent_at = std::collections::HashMap::new();
        let mut timed_out = Vec::new();
        let mut most_pending = 0;
        let mut fire_due = |c: &mut Sessions<_>, fx: &mut Recorder<_>, upto: SimTime| {
            while let Some(t) = fx
                .timers
                .iter()
                .map(|(t, _)| *t)
                .min()
                .filter(|&t| t <= upto)
            {
                let (t2, timer) = fx.pop_earliest().unwrap();
                assert_eq!(t, t2);
                if let (Verdict::Done(d), None) = c.on_timer(t, timer, fx) {
                    assert_eq!(d.last, Answer::Timeout);
                    timed_out.push((t, d.user));
                }
            }
        };
        for k in 0..1000u32 {
            let now = k as SimTime * 10_000;
            while answers.front().is_some_and(|&(t, _)| t <= now) {
                let (t, tok) = answers.pop_front().unwrap();
                fire_due(&mut c, &mut fx, t);
                assert!(matches!(
                    c.answered(t, tok, 0, Answer::Ok, &mut fx),
                    Verdict::Done(_)
                ));
            }
            fire_due(&mut c, &mut fx, now);
            let users = if k == 500 { vec![k, 5000] } else { vec![k] };
            for u in users {
                let a = c.begin(now, 0, u, &mut fx);
                sent_at.insert(u, now);
                if u % 3 != 0 && u != 5000 {
                    answers.push_back((now + 500_000, a.token()));
                }
            }
            most_pending = most_pending.max(fx.timers.len());
        }
        while let Some((t, tok)) = answers.pop_front() {
            fire_due(&mut c, &mut fx, t);
            assert!(matches!(
                c.answered(t, tok, 0, Answer::Ok, &mut fx),
                Verdict::Done(_)
            ));
        }
        fire_due(&mut c, &mut fx, u64::MAX / 2);
        assert_eq!(most_pending, 1, "one timer at a time");
        assert_eq!(
            timed_out.len(),
            334 + 1,
            "every third attempt and the extra one"
        );
        for (t, u) in &timed_out {
            assert_eq!(*t, sent_at[u] + timeout, "user {u}");
        }
        assert!(timed_out.contains(&(5_000_000 + timeout, 5000)));
        assert_eq!(c.timeouts, 335);
        assert_eq!(c.in_flight(), 0);
    }

    #[test]
    fn without_timeout_or_retries_a_request_is_one_attempt_and_keeps_no_slot() {
        for (retries, on) in [(0, true), (3, false)] {
            let mut p = policy(retries, Jitter::None);
            (p.on_503, p.on_error, p.on_timeout) = (on, on, on);
            let mut c = Sessions::new(p, 0, Xoshiro256PlusPlus::seed_from_u64(1));
            let mut fx = Recorder::default();
            let a = c.begin(100, 2, 7, &mut fx);
            let b = c.begin(200, 1, u32::MAX, &mut fx);
            assert_eq!((a.number, b.number), (1, 1));
            assert_eq!(a.token() >> 63, 0, "bit 63 is the caller's");
            assert_ne!(a.token(), b.token());
            assert_eq!(c.in_flight(), 2);
            // Answered in the other order; each brings the time it was sent.
            let vb = c.answered(900, b.token(), 200, Answer::Unavailable, &mut fx);
            let va = c.answered(950, a.token(), 100, Answer::Ok, &mut fx);
            let done = |class, started, last, user| {
                Verdict::Done(Done {
                    class,
                    started,
                    attempts: 1,
                    last,
                    user,
                })
            };
            assert_eq!(vb, done(1, 200, Answer::Unavailable, u32::MAX));
            assert_eq!(va, done(2, 100, Answer::Ok, 7));
            assert!(fx.timers.is_empty(), "no timer, no retry");
            assert_eq!((c.capacity(), c.in_flight(), c.attempts), (0, 0, 2));
        }
    }

    #[test]
    fn answers_not_in_retry_on_are_final() {
        let mut p = policy(3, Jitter::None);
        p.on_503 = false;
        let mut c = Sessions::new(p, 0, Xoshiro256PlusPlus::seed_from_u64(1));
        let mut fx = Recorder::default();
        let a = c.begin(0, 0, u32::MAX, &mut fx);
        assert!(matches!(
            c.answered(5, a.token(), 0, Answer::Unavailable, &mut fx),
            Verdict::Done(_)
        ));
        assert!(fx.timers.is_empty());
    }
}
