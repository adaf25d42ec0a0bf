//! Pictures, reports and perfmon files of runs and sweeps.
//!
//! - [`figure`]: the chart model (stacked panels sharing an x axis, with confidence
//!   bands, limit lines, event lines and shaded GC pauses; heat maps with an SLO
//!   boundary) and its rendering to SVG (file or string) and PNG with plotters.
//! - [`dashboard`]: the dashboard of a run directory (`timeseries.csv`, `events.csv`,
//!   `scenario.toml`).
//! - [`sweep_plot`]: a sweep directory (`points.csv`) or a capacity search
//!   (`capacity.json`) drawn as curves with 95 % bands or as a heat map.
//! - [`sweep_files`]: `points.csv`, `sweep.json` and `capacity.json` read back; what
//!   w3sim never writes is refused with the file, the line or key, and the fix.
//! - [`report`]: one self-contained `report.html` (inline SVGs, tables, incidents).
//! - [`perfmon`]: perfmon/relog CSV export and comparison with a real perfmon capture.
//! - [`cli`]: the `plot`, `explain`, `report`, `export-perfmon` and `compare` commands.

pub mod cli;
pub mod dashboard;
pub mod figure;
pub mod perfmon;
pub mod report;
pub mod sweep_files;
pub mod sweep_plot;

use std::path::Path;

/// Why a picture or a report was not written: what it is drawn from could not be read
/// (bad input, exit 2) or the file could not be written (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum VizError {
    #[error("{0}")]
    Input(String),
    #[error("{0}")]
    Output(String),
}

impl VizError {
    /// The process exit code: 2 bad input, 1 an output that cannot be written.
    pub fn exit_code(&self) -> u8 {
        match self {
            VizError::Input(_) => 2,
            VizError::Output(_) => 1,
        }
    }
}

use crate::output::MemorySink;

pub use cli::{
    CompareArgs, ExplainArgs, ExportPerfmonArgs, PlotArgs, ReportArgs, cmd_compare, cmd_explain,
    cmd_export_perfmon, cmd_plot, cmd_report,
};

/// Picture format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Svg,
    Png,
}

impl Format {
    pub fn ext(self) -> &'static str {
        match self {
            Format::Svg => "svg",
            Format::Png => "png",
        }
    }
    /// From a file name's extension (`.png` → PNG, anything else SVG).
    pub fn of_path(p: &Path) -> Format {
        match p.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("png") => Format::Png,
            _ => Format::Svg,
        }
    }
}

/// What a directory holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirKind {
    /// `timeseries.csv` (a run).
    Run,
    /// `points.csv` (a sweep; maybe with `capacity.json` too).
    Sweep,
    /// `capacity.json` only.
    Capacity,
}

/// Recognises a run, sweep or capacity directory.
pub fn dir_kind(dir: &Path) -> Result<DirKind, String> {
    if dir.join("timeseries.csv").is_file() {
        Ok(DirKind::Run)
    } else if dir.join("points.csv").is_file() {
        Ok(DirKind::Sweep)
    } else if dir.join("capacity.json").is_file() {
        Ok(DirKind::Capacity)
    } else if dir.join("runs.csv").is_file() || dir.join("sweep.json").is_file() {
        // A sweep that has not completed (stopped, or one shard of several): its
        // points.csv is written at the end.
        Err(if dir.join("shard.json").is_file() {
            format!(
                "{}: one shard of a sweep (shard.json), which has no points.csv of its own: merge it with the other shards' directories (`w3sim merge DIR… --out OUT`; a stopped shard goes on with `w3sim sweep … --shard K/N --resume` first), then plot or report OUT",
                dir.display()
            )
        } else {
            let file = std::fs::read_to_string(dir.join("sweep.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| v.get("sweep_file")?.as_str().map(str::to_string))
                .unwrap_or_else(|| "SWEEP.toml".into());
            format!(
                "{}: a sweep that has not completed: it has no points.csv, which w3sim writes when the sweep ends; go on with it (`w3sim sweep {file} --out {} --resume`), then plot or report it",
                dir.display(),
                dir.display()
            )
        })
    } else {
        Err(format!(
            "{}: neither a run directory (timeseries.csv), a sweep (points.csv) nor a capacity search (capacity.json)",
            dir.display()
        ))
    }
}

/// Reads a `timeseries.csv` into memory (one row per sample interval); empty cells read
/// as NaN, anything else that is not a number is an error.
pub fn read_timeseries(path: &Path) -> Result<MemorySink, String> {
    let mut rows = Vec::new();
    let columns = crate::output::read_timeseries_rows(path, |cells| {
        rows.push(cells.iter().map(|c| c.unwrap_or(f64::NAN)).collect());
        Ok(())
    })?;
    Ok(MemorySink { columns, rows })
}

/// Escapes text for HTML and XML.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}
