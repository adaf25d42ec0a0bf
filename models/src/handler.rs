//! A request class's handler: what the application does with the request once a
//! worker thread runs it.
//!
//! **Models**: the handler of an ASP.NET page or service as a sequence of steps:
//! - `cpu`: processor demand, served by the CPU model on the thread running the request;
//! - `wait`: time blocked on something outside the process (I/O, a downstream call, a
//!   lock held elsewhere);
//! - `alloc`: managed allocation (bytes allocated, and bytes the request keeps
//!   referenced until it ends), which drives the GC.
//!
//! How a `wait` uses the worker thread depends on the handler kind (DOMAIN §5.3, §6.3):
//! - **sync**: the thread is blocked through the wait (it still counts as processing
//!   work for the thread pool);
//! - **async**: the handler `await`s: the thread goes back to the pool at once; when the
//!   I/O completes, an IO-completion thread posts the continuation to the thread pool's
//!   queue, behind whatever new requests are already there (as in production);
//! - **sync_over_async** (`.Result` / `.Wait()` on a Task): the thread blocks, and the
//!   completion needs *another* worker thread to run the continuation before the
//!   blocked one can go on — the classic starvation amplifier. On .NET 6 this wait is
//!   "cooperative blocking" and triggers the pool's blocking compensation.
//!
//! **Seed**: 003 (sync requests of 0–32 ms, async requests up to 120 ms).
//!
//! A `call` step waits like a `wait` step, for as long as its outgoing calls take (the
//! engine runs them through the connection pool, the ports and the backend); so does a
//! `file` step when the file cache sends it to the share (seed 001).

use rand::Rng;

use crate::dist::Sampler;

/// How the handler uses its worker thread during waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandlerKind {
    Sync,
    Async,
    SyncOverAsync,
}

/// The most outgoing calls one `call` step makes (a drawn fan-out is capped here).
pub const MAX_FANOUT: u32 = 10_000;

/// One step of a handler.
#[derive(Clone, Debug)]
pub enum Step {
    /// CPU demand in ns.
    Cpu(Sampler),
    /// Blocked or awaited time in ns.
    Wait(Sampler),
    /// Allocation: bytes allocated, bytes retained until the request ends.
    Alloc { bytes: Sampler, retained: Sampler },
    /// Outgoing calls to backend `backend`: `fanout` of them, in parallel or in sequence,
    /// each cancelled after `timeout_ns`. The calls themselves are run by the engine
    /// through the connection pool, the TCP ports and the backend models.
    Call {
        backend: u16,
        timeout_ns: u64,
        fanout: Sampler,
        parallel: bool,
    },
    /// IIS's static file handler reads the request's file from backend `backend` (the share)
    /// through the user-mode file cache ([`crate::file_cache`]): the engine looks the file up
    /// and makes one call (a read) on a miss, one metadata round trip when the cached copy is
    /// due for its check, nothing on a hit.
    File { backend: u16, timeout_ns: u64 },
}

/// A drawn step, ready to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drawn {
    Cpu(u64),
    Wait(u64),
    Alloc {
        bytes: u64,
        retained: u64,
    },
    Call {
        backend: u16,
        timeout_ns: u64,
        fanout: u32,
        parallel: bool,
    },
    File {
        backend: u16,
        timeout_ns: u64,
    },
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

    /// Draws step `i`, or `None` past the last step.
    #[inline]
    pub fn draw<R: Rng + ?Sized>(&self, i: usize, rng: &mut R) -> Option<Drawn> {
        Some(match self.steps.get(i)? {
            Step::Cpu(s) => Drawn::Cpu(s.sample_ns(rng)),
            Step::Wait(s) => Drawn::Wait(s.sample_ns(rng)),
            Step::Alloc { bytes, retained } => {
                let b = bytes.sample(rng).max(0.0).round() as u64;
                let r = (retained.sample(rng).max(0.0).round() as u64).min(b);
                Drawn::Alloc {
                    bytes: b,
                    retained: r,
                }
            }
            Step::Call {
                backend,
                timeout_ns,
                fanout,
                parallel,
            } => Drawn::Call {
                backend: *backend,
                timeout_ns: *timeout_ns,
                fanout: fanout.sample(rng).max(0.0).round().min(MAX_FANOUT as f64) as u32,
                parallel: *parallel,
            },
            Step::File {
                backend,
                timeout_ns,
            } => Drawn::File {
                backend: *backend,
                timeout_ns: *timeout_ns,
            },
        })
    }
}
