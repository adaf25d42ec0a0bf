//! A request class's handler: what the application does with the request once a
//! worker thread runs it.
//!
//! **Models**: the handler of an ASP.NET page or service as a sequence of steps. A
//! `cpu` step is processor demand; a `wait` step is time spent blocked (synchronous
//! I/O, a downstream call, a lock). A **sync** handler holds its worker thread through
//! every step.
//!
//! **Seed**: 003 (synchronous requests of 0–32 ms). **DOMAIN**: §5.3, §6.3.
//!
//! **Leaves out for now** (issue 3/4): CPU contention (a `cpu` step takes exactly its
//! demand, as on an idle machine), async handlers that release the thread at each
//! await, sync-over-async, allocations for the GC, outgoing calls through connection
//! pools and ephemeral ports.

use rand::Rng;

use crate::dist::Sampler;

/// How the handler uses its worker thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandlerKind {
    /// Holds the worker thread through every step (classic synchronous page).
    Sync,
}

/// One step of a handler.
#[derive(Clone, Debug)]
pub enum Step {
    /// CPU demand in ns.
    Cpu(Sampler),
    /// Blocked time in ns (I/O, downstream call, lock).
    Wait(Sampler),
}

/// A handler: its kind and its steps, run in order.
#[derive(Clone, Debug)]
pub struct Handler {
    pub kind: HandlerKind,
    pub steps: Vec<Step>,
}

impl Handler {
    /// Number of steps.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Draws how long step `i` keeps the request busy, in ns, or `None` past the last step.
    #[inline]
    pub fn step_time<R: Rng + ?Sized>(&self, i: usize, rng: &mut R) -> Option<u64> {
        Some(match self.steps.get(i)? {
            Step::Cpu(s) | Step::Wait(s) => s.sample_ns(rng),
        })
    }
}
