//! A control loop inside the application: a "valve" that samples a counter every period
//! and switches behaviour when it crosses a threshold.
//!
//! **Models** seed 003's valve: the application read `ASP.NET\Requests Queued` once a
//! second and stopped starting outgoing calls above 2000, resuming below. Sampling makes
//! it react late: a queue that grows between two samples is only seen at the next one, so
//! the period is a parameter (a workshop can show why 1 s is too slow), and so is the
//! hysteresis (`open_below` < `close_above`) that keeps it from flapping.
//!
//! **Leaves out**: anything but an on/off decision (no proportional control).

use crate::effects::Effects;
use crate::stat::Counter;
use crate::time::SimTime;

/// Settings of a valve.
#[derive(Clone, Debug, PartialEq)]
pub struct ValveConfig {
    /// How often the counter is read.
    pub period_ns: u64,
    /// The valve closes when the counter is above this.
    pub close_above: f64,
    /// …and opens again when it is below this (hysteresis).
    pub open_below: f64,
}

/// The valve's sampling timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValveTimer;

/// A valve's state and counters.
#[derive(Debug)]
pub struct Valve {
    cfg: ValveConfig,
    closed: bool,
    /// Times it closed.
    pub closings: Counter,
    /// Time spent closed, ns.
    pub closed_ns: u128,
    closed_since: SimTime,
    /// When it first closed, if it did.
    pub first_closed_at: Option<SimTime>,
}

impl Valve {
    pub fn new(cfg: ValveConfig) -> Self {
        Self {
            cfg,
            closed: false,
            closings: Counter::default(),
            closed_ns: 0,
            closed_since: 0,
            first_closed_at: None,
        }
    }

    pub fn config(&self) -> &ValveConfig {
        &self.cfg
    }

    /// Arms the first sample.
    pub fn start(&mut self, now: SimTime, fx: &mut impl Effects<ValveTimer>) {
        fx.at(now.saturating_add(self.cfg.period_ns.max(1)), ValveTimer);
    }

    /// The sampling timer fired and the counter reads `value`; arms the next sample.
    pub fn sample(&mut self, now: SimTime, value: f64, fx: &mut impl Effects<ValveTimer>) {
        if !self.closed && value > self.cfg.close_above {
            self.closed = true;
            self.closed_since = now;
            self.closings.inc();
            self.first_closed_at.get_or_insert(now);
        } else if self.closed && value < self.cfg.open_below {
            self.closed = false;
            self.closed_ns += (now - self.closed_since) as u128;
        }
        fx.at(now.saturating_add(self.cfg.period_ns.max(1)), ValveTimer);
    }

    /// Whether the valve is closed (the guarded behaviour is off).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Time spent closed up to `now`, ns.
    pub fn closed_time(&self, now: SimTime) -> u128 {
        self.closed_ns
            + if self.closed {
                (now - self.closed_since) as u128
            } else {
                0
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::effects::Recorder;

    #[test]
    fn it_closes_above_and_opens_below_with_hysteresis() {
        let mut v = Valve::new(ValveConfig {
            period_ns: 10,
            close_above: 2000.0,
            open_below: 1000.0,
        });
        let mut fx = Recorder::default();
        v.start(0, &mut fx);
        v.sample(10, 1500.0, &mut fx);
        assert!(!v.is_closed());
        v.sample(20, 2500.0, &mut fx);
        assert!(v.is_closed());
        v.sample(30, 1500.0, &mut fx);
        assert!(v.is_closed(), "between the thresholds it stays as it was");
        v.sample(40, 900.0, &mut fx);
        assert!(!v.is_closed());
        assert_eq!(v.closings.total(), 1);
        assert_eq!(v.closed_time(50), 20);
        assert_eq!(v.first_closed_at, Some(20));
    }
}
