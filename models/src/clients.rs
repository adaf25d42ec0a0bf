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
//! **Leaves out** (issue 8): client timeouts and retries.
//!
//! Time-varying Poisson arrivals are generated exactly by inverting the cumulative
//! rate Λ(t): the next arrival after `t` is where Λ has grown by an Exp(1) draw
//! (by exactly 1 for constant spacing), so steps and ramps need no thinning.

use rand::Rng;
use rand_distr::{Distribution, Exp1};

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
                    return Some((at.round() as u64).max(now));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::effects::Recorder;
    use crate::time::SECONDS;
    use rand::SeedableRng;
    use rand::rngs::Xoshiro256PlusPlus;

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
}
