//! The one interface through which a model asks for future events.
//!
//! A model never touches the event calendar. It calls [`Effects::at`] with a time and
//! a value of its own timer type; the engine wraps that value in its global event
//! type, files it in the calendar, and later calls the model's `on_timer` with it.
//! Timers are never cancelled: a model that changes its mind bumps a generation
//! number it stores in the timer and ignores stale ones when they fire. This keeps
//! the calendar a plain heap with no per-event allocation.

use crate::time::SimTime;

/// Something that accepts timer requests of type `T`.
pub trait Effects<T> {
    /// Asks for `timer` to be delivered back to the model at time `at` (>= now).
    fn at(&mut self, at: SimTime, timer: T);
}

/// A recording implementation for unit tests of models: keeps every request in order.
#[derive(Debug)]
pub struct Recorder<T> {
    pub timers: Vec<(SimTime, T)>,
}

impl<T> Default for Recorder<T> {
    fn default() -> Self {
        Self { timers: Vec::new() }
    }
}

impl<T> Effects<T> for Recorder<T> {
    fn at(&mut self, at: SimTime, timer: T) {
        self.timers.push((at, timer));
    }
}

impl<T> Recorder<T> {
    /// Removes and returns the earliest requested timer (FIFO among equal times).
    pub fn pop_earliest(&mut self) -> Option<(SimTime, T)> {
        let i = self
            .timers
            .iter()
            .enumerate()
            .min_by_key(|(i, (t, _))| (*t, *i))
            .map(|(i, _)| i)?;
        Some(self.timers.remove(i))
    }
}
