//! The `plot`, `explain`, `report`, `export-perfmon` and `compare` subcommands: clap
//! argument structs and entry points returning the exit code (0 ok, 2 bad input, 1
//! internal failure).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::perfmon;
use super::{DirKind, Format, VizError, dir_kind, read_timeseries};
use crate::incidents::{detect_run_dir, render};
use crate::sweep::capacity::Slo;

/// `w3sim plot DIR [--format svg|png] [--out FILE] [--slo "503_rate<0.1%"] [--metric M]`
#[derive(clap::Args, Clone, Debug)]
pub struct PlotArgs {
    /// A run directory (timeseries.csv), a sweep (points.csv) or a capacity search (capacity.json).
    pub dir: PathBuf,
    /// Picture format (default: from --out's extension, else svg).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Output file (default: DIR/dashboard.svg, DIR/sweep.svg or DIR/capacity.svg).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// SLO whose boundary a sweep's heat map draws (same syntax as `w3sim capacity`).
    #[arg(long)]
    pub slo: Option<String>,
    /// The metric a two-axis sweep's heat map shows (default: the SLO's, else the first).
    #[arg(long)]
    pub metric: Option<String>,
}

/// `w3sim explain RUNDIR`
#[derive(clap::Args, Clone, Debug)]
pub struct ExplainArgs {
    /// Run directory (timeseries.csv, scenario.toml, optional events.csv).
    pub dir: PathBuf,
    /// Print the incidents as JSON instead.
    #[arg(long)]
    pub json: bool,
}

/// `w3sim report DIR [--out FILE] [--slo …]`
#[derive(clap::Args, Clone, Debug)]
pub struct ReportArgs {
    /// A run, sweep or capacity directory.
    pub dir: PathBuf,
    /// Output file (default DIR/report.html).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// SLO drawn on a sweep's heat map.
    #[arg(long)]
    pub slo: Option<String>,
}

/// `w3sim export-perfmon RUNDIR [--out FILE] [--base "2026-01-01 00:00:00"]`
#[derive(clap::Args, Clone, Debug)]
pub struct ExportPerfmonArgs {
    /// Run directory (timeseries.csv).
    pub dir: PathBuf,
    /// Output file (default DIR/perfmon.csv).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// UTC date and time of simulated time 0.
    #[arg(long, default_value = perfmon::DEFAULT_BASE)]
    pub base: String,
}

/// `w3sim compare RUNDIR perfmon.csv [--plot FILE]`
#[derive(clap::Args, Clone, Debug)]
pub struct CompareArgs {
    /// Run directory (timeseries.csv).
    pub run: PathBuf,
    /// A perfmon CSV export (perfmon "Save data as" CSV, or relog -f csv).
    pub perfmon: PathBuf,
    /// Draw both curves of every matched counter into this file (.svg or .png).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Print the errors as JSON instead.
    #[arg(long)]
    pub json: bool,
}

fn parse_slo(s: Option<&str>) -> Result<Option<Slo>, ExitCode> {
    match s.map(Slo::parse).transpose() {
        Ok(v) => Ok(v),
        Err(e) => {
            eprintln!("error: {e}");
            Err(ExitCode::from(2))
        }
    }
}

fn bad(msg: String) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(2)
}

/// The pictures of a directory, written next to its data (or to `out`); returns the
/// files written.
pub fn plot_dir(
    dir: &Path,
    format: Option<Format>,
    out: Option<&Path>,
    slo: Option<&Slo>,
    metric: Option<&str>,
) -> Result<Vec<PathBuf>, VizError> {
    let format = format.unwrap_or_else(|| out.map_or(Format::Svg, Format::of_path));
    // A PNG is encoded after its file's extension, so `--out x.svg --format png` would fail
    // after creating an empty file: refuse the disagreement before drawing anything.
    if let Some(o) = out {
        let ext = o.extension().and_then(|e| e.to_str()).unwrap_or("");
        let png = ext.eq_ignore_ascii_case("png");
        if png != (format == Format::Png) {
            return Err(VizError::Input(format!(
                "--out {} does not end in .{} as --format {} asks: give the file that extension, or leave out --format (the extension then chooses: .png for PNG, anything else SVG)",
                o.display(),
                format.ext(),
                format.ext()
            )));
        }
    }
    let figs = match dir_kind(dir).map_err(VizError::Input)? {
        DirKind::Run => vec![(
            "dashboard".to_string(),
            super::dashboard::build_run_dir(dir).map_err(VizError::Input)?,
        )],
        DirKind::Sweep | DirKind::Capacity => {
            super::sweep_plot::figures_of_dir(dir, slo, metric).map_err(VizError::Input)?
        }
    };
    let mut written = Vec::new();
    for (k, (stem, fig)) in figs.iter().enumerate() {
        let path = match out {
            Some(o) if k == 0 => o.to_path_buf(),
            Some(o) => {
                let s = o
                    .file_stem()
                    .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
                o.with_file_name(format!("{s}-{stem}.{}", format.ext()))
            }
            None => dir.join(format!("{stem}.{}", format.ext())),
        };
        fig.write(&path, format).map_err(VizError::Output)?;
        written.push(path);
    }
    Ok(written)
}

pub fn cmd_plot(a: &PlotArgs) -> ExitCode {
    let slo = match parse_slo(a.slo.as_deref()) {
        Ok(s) => s,
        Err(c) => return c,
    };
    match plot_dir(
        &a.dir,
        a.format,
        a.out.as_deref(),
        slo.as_ref(),
        a.metric.as_deref(),
    ) {
        Ok(files) => {
            for f in files {
                println!("wrote {}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

pub fn cmd_explain(a: &ExplainArgs) -> ExitCode {
    match detect_run_dir(&a.dir) {
        Ok(v) => {
            if a.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&v).expect("incidents serialise")
                );
            } else {
                print!("{}", render(&v));
            }
            ExitCode::SUCCESS
        }
        Err(e) => bad(e),
    }
}

pub fn cmd_report(a: &ReportArgs) -> ExitCode {
    let slo = match parse_slo(a.slo.as_deref()) {
        Ok(s) => s,
        Err(c) => return c,
    };
    if let Err(e) = dir_kind(&a.dir) {
        return bad(e);
    }
    if let Some(o) = a.out.as_deref().filter(|o| o.is_dir()) {
        return bad(format!(
            "--out {} is a directory: give the report's file name, e.g. {}",
            o.display(),
            o.join("report.html").display()
        ));
    }
    match super::report::write_report(&a.dir, a.out.as_deref(), slo.as_ref()) {
        Ok(p) => {
            println!("wrote {}", p.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// A run directory's time series; for a farm, with every server's own columns after the
/// farm's, each under its name as perfmon's machine (`\\\\web1\\Processor(_Total)\\…`),
/// as a capture of several servers has them.
pub fn run_series(dir: &Path) -> Result<crate::output::MemorySink, String> {
    let mut ts = read_timeseries(&dir.join("timeseries.csv"))?;
    // A farm: every server's own counters too, under its name as perfmon's machine
    // (`\\web1\Processor(_Total)\% Processor Time`), as a capture of several servers.
    if let Some(names) = crate::incidents::farm_servers(dir)? {
        let t = ts.columns.iter().position(|c| c == "time_s");
        for name in names {
            let sub_path = dir
                .join("servers")
                .join(crate::output::dir_name(&name))
                .join("timeseries.csv");
            let sub = read_timeseries(&sub_path)?;
            let st = sub.columns.iter().position(|c| c == "time_s");
            if sub.rows.len() != ts.rows.len()
                || ts.rows.iter().zip(&sub.rows).any(|(a, b)| match (t, st) {
                    (Some(i), Some(j)) => (a[i] - b[j]).abs() > 1e-6,
                    _ => false,
                })
            {
                return Err(format!(
                    "{}: its samples do not line up with the farm's timeseries.csv",
                    sub_path.display()
                ));
            }
            let keep: Vec<usize> = (0..sub.columns.len()).filter(|&j| Some(j) != st).collect();
            ts.columns.extend(
                keep.iter()
                    .map(|&j| format!("\\\\{name}\\{}", sub.columns[j])),
            );
            for (row, srow) in ts.rows.iter_mut().zip(&sub.rows) {
                row.extend(keep.iter().map(|&j| srow[j]));
            }
        }
    }
    Ok(ts)
}

/// Writes `DIR/timeseries.csv` as a perfmon CSV (default `DIR/perfmon.csv`); what
/// `w3sim run --perfmon-csv` calls after the run.
pub fn export_perfmon(dir: &Path, out: Option<&Path>, base: &str) -> Result<PathBuf, String> {
    let base = perfmon::parse_base(base)?;
    let ts = run_series(dir)?;
    // perfmon's timestamps have four-digit years.
    let last = ts
        .rows
        .last()
        .and_then(|r| r.first())
        .copied()
        .unwrap_or(0.0);
    let limit = perfmon::parse_base("9999-12-31 23:59:59").expect("a valid date");
    if base < perfmon::parse_base("0001-01-01 00:00:00").expect("a valid date")
        || base + last > limit
    {
        return Err(format!(
            "--base: the run's samples would be dated outside the years 0001–9999 that perfmon's timestamps hold (the run lasts {last} s)"
        ));
    }
    let path = out.map_or_else(|| dir.join("perfmon.csv"), Path::to_path_buf);
    crate::output::write_atomic(&path, &perfmon::to_perfmon_csv(&ts, base))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

pub fn cmd_export_perfmon(a: &ExportPerfmonArgs) -> ExitCode {
    match export_perfmon(&a.dir, a.out.as_deref(), &a.base) {
        Ok(p) => {
            println!("wrote {}", p.display());
            ExitCode::SUCCESS
        }
        Err(e) => bad(e),
    }
}

pub fn cmd_compare(a: &CompareArgs) -> ExitCode {
    if let Some(p) = &a.plot {
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !ext.eq_ignore_ascii_case("svg") && !ext.eq_ignore_ascii_case("png") {
            return bad(format!(
                "--plot {}: the figure is written as SVG or PNG, after the file's extension: give it .svg or .png",
                p.display()
            ));
        }
    }
    let sim = match run_series(&a.run) {
        Ok(s) => s,
        Err(e) => return bad(e),
    };
    let real = match perfmon::read_perfmon_csv(&a.perfmon)
        .and_then(|r| perfmon::check_time_order(&r, &a.perfmon).map(|()| r))
    {
        Ok(r) => r,
        Err(e) => return bad(e),
    };
    let errors = perfmon::compare(&sim, &real);
    if errors.is_empty() {
        return bad(format!(
            "no counter of {} matches a column of {}/timeseries.csv (matched by Object\\Counter)",
            a.perfmon.display(),
            a.run.display()
        ));
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&errors).expect("errors serialise")
        );
    } else {
        println!(
            "{} counter(s) matched of {} in {}; time aligned on the first samples",
            errors.len(),
            real.counters.len(),
            a.perfmon.display()
        );
        print!("{}", perfmon::render(&errors));
    }
    if let Some(p) = &a.plot {
        let title = format!(
            "{} vs {}",
            super::dashboard::run_name(&a.run),
            a.perfmon
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        );
        if let Err(e) = perfmon::compare_figure(&title, &errors).write(p, Format::of_path(p)) {
            eprintln!("error: cannot draw {}: {e}", p.display());
            return ExitCode::from(1);
        }
        println!("wrote {}", p.display());
    }
    ExitCode::SUCCESS
}
