//! # w3sim: the engine, pipeline, scenarios, statistics and outputs
//!
//! `w3sim` drives the component models of `w3sim-models` with a discrete-event
//! engine. Dependencies point one way: this crate uses the models, never the reverse.
//!
//! - [`engine`]: clock, calendar, random streams, request slab.
//! - [`pipeline`]: wiring of the models in packet order; the event loop.
//! - [`scenario`]: TOML scenario files, units, defaults, diagnostics, `--set`.
//! - [`stats`]: streaming statistics and the run summary.
//! - [`output`]: time-series sinks and run-directory files.
//! - [`analytic`]: textbook queueing results the validation suite checks against.
//! - [`bench`]: the M/M/16/1000 benchmark behind `w3sim bench`.
//! - [`fidelity`]: thread-pool trajectories against the real CLR (`w3sim compare-clr`).
//! - [`sweep`]: batch sweeps with replications and confidence intervals, capacity search, shards and merge.
//! - [`incidents`]: limits reached, what they caused and when they cleared (`w3sim explain`, `summary.json` → `incidents`).
//! - [`viz`]: dashboards, sweep plots, the HTML report, perfmon CSV export and comparison.

pub mod analytic;
pub mod bench;
pub mod engine;
pub mod farm;
pub mod fidelity;
pub mod incidents;
pub mod output;
pub mod pipeline;
pub mod scenario;
pub mod stats;
pub mod sweep;
pub mod viz;

pub use pipeline::{RunError, run};
pub use scenario::Scenario;
pub use stats::Summary;
