//! Batch sweeps, replications, confidence intervals and capacity search.
//!
//! - [`spec`]: `*.sweep.toml` files → a resolved [`spec::Sweep`] (points × replications),
//!   with diagnostics naming file, line, column and key like scenario errors.
//! - [`metrics`]: a run's summary flattened into dotted metric names, plus the derived
//!   metrics (`503_rate`, `failure_rate`, `p99_ms`, `throughput`, …).
//! - [`stats`]: Student-t confidence intervals and MSER-5 warm-up truncation.
//! - [`run`]: runs a sweep in parallel (rayon), streams `runs.csv`, writes `points.csv`
//!   and `sweep.json`; `--resume`, `--shard K/N`, precision targets.
//! - [`merge`]: combines shard directories into one, byte-identical to an unsharded run.
//! - [`capacity`]: the highest value of a setting at which every SLO holds.
//! - [`cli`]: the `sweep`, `capacity` and `merge` subcommands (clap `Args` + entry points).
//!
//! `experiments/SWEEPS.md` documents the file format, the outputs and cluster usage.

pub mod capacity;
pub mod cli;
pub mod merge;
pub mod metrics;
pub mod run;
pub mod spec;
pub mod stats;

pub use cli::{CapacityArgs, MergeArgs, SweepArgs, cmd_capacity, cmd_merge, cmd_sweep};

/// Why a sweep, a merge or a capacity search did not complete.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The sweep file, a scenario, an argument or an input directory is wrong (exit 2).
    #[error("{0}")]
    BadInput(String),
    /// A run failed (an invariant violated) or an output could not be written (exit 1).
    #[error("{0}")]
    Internal(String),
}

impl SweepError {
    /// The process exit code: 2 bad input, 1 internal failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            SweepError::BadInput(_) => 2,
            SweepError::Internal(_) => 1,
        }
    }
}

impl From<std::io::Error> for SweepError {
    fn from(e: std::io::Error) -> Self {
        SweepError::Internal(format!("I/O error: {e}"))
    }
}

impl From<crate::RunError> for SweepError {
    fn from(e: crate::RunError) -> Self {
        match e {
            crate::RunError::Stuck { .. } => SweepError::BadInput(e.to_string()),
            _ => SweepError::Internal(e.to_string()),
        }
    }
}
