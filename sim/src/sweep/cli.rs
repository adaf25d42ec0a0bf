//! The `sweep`, `capacity` and `merge` subcommands: clap argument structs and entry
//! points returning the process exit code (0 ok, 2 bad input, 1 internal failure).

use std::path::PathBuf;
use std::process::ExitCode;

use super::SweepError;
use super::capacity::{CapacityConfig, Slo, search, write_report};
use super::merge::merge;
use super::run::{RunOptions, Shard, SweepStatus, run_sweep};
use super::spec::load_sweep_file;

/// `--jobs`: 0 (every logical processor) to 1024 worker threads.
fn jobs_in_range(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n <= 1024 => Ok(n),
        _ => Err(format!(
            "expected 0 (every logical processor) to 1024 worker threads, got {s}"
        )),
    }
}

/// `w3sim sweep FILE --out DIR [--jobs N] [--resume] [--shard K/N] [-q]`
#[derive(clap::Args, Clone, Debug)]
pub struct SweepArgs {
    /// Sweep file (`*.sweep.toml`; see experiments/SWEEPS.md).
    pub file: PathBuf,
    /// Output directory: runs.csv, points.csv, sweep.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Worker threads, 1–1024 (default 0: every logical processor).
    #[arg(long, short, default_value_t = 0, value_parser = jobs_in_range)]
    pub jobs: usize,
    /// Go on with a stopped sweep: skip the runs already in DIR/runs.csv (a last row
    /// without its newline was cut off, and is run again).
    #[arg(long)]
    pub resume: bool,
    /// Run only slice K (0-based) of N; combine the slices with `w3sim merge`.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,
    /// No progress bar, no report (a warning about points short of their precision
    /// target is still printed).
    #[arg(long, short)]
    pub quiet: bool,
    /// Stop after starting this many new runs (for testing --resume).
    #[arg(long, hide = true)]
    pub stop_after: Option<usize>,
}

/// `w3sim capacity SCENARIO --vary PATH --slo "…" […]`
#[derive(clap::Args, Clone, Debug)]
pub struct CapacityArgs {
    /// Scenario file (TOML).
    pub scenario: PathBuf,
    /// The numeric setting to vary, e.g. load.rate, load.users, http_sys.queue_length.
    #[arg(long)]
    pub vary: String,
    /// Low end of the first bracket, with its unit (e.g. 100/s); default half the scenario's value.
    #[arg(long)]
    pub lo: Option<String>,
    /// High end of the first bracket (e.g. 2000/s); default twice the scenario's value.
    #[arg(long)]
    pub hi: Option<String>,
    /// Service-level objective, repeatable: "503_rate<0.1%", "p99<500ms", "failure_rate<=1%".
    #[arg(long = "slo", required = true)]
    pub slo: Vec<String>,
    /// Replications per value tried (seeds seed..seed+R-1).
    #[arg(long, short = 'r', default_value_t = 5)]
    pub replications: u32,
    /// Worker threads, 1–1024 (default 0: every logical processor).
    #[arg(long, short, default_value_t = 0, value_parser = jobs_in_range)]
    pub jobs: usize,
    /// Stop bisecting when the bracket is narrower than this fraction of its high end.
    #[arg(long, default_value_t = 0.01)]
    pub tolerance: f64,
    /// At most this many values tried.
    #[arg(long, default_value_t = 40)]
    pub max_evaluations: usize,
    /// Override the master seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Override the simulated duration, e.g. 5m.
    #[arg(long)]
    pub duration: Option<String>,
    /// Override the warm-up excluded from the statistics, e.g. 30s (0s: none).
    #[arg(long)]
    pub warmup: Option<String>,
    /// Override any setting: --set http_sys.queue_length=5000 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Write capacity.json into this directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Find the lowest value at which every SLO holds instead of the highest: the fewest
    /// servers (--vary 'farm.servers[0].count'), worker threads, processors, queue length.
    #[arg(long)]
    pub lowest: bool,
    /// Print only the answer: the highest passing value (the lowest with --lowest).
    #[arg(long, short)]
    pub quiet: bool,
}

/// `w3sim merge DIR... --out DIR`
#[derive(clap::Args, Clone, Debug)]
pub struct MergeArgs {
    /// Output directories of the shards (`w3sim sweep … --shard K/N --out DIR`).
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Where to write the merged runs.csv, points.csv and sweep.json.
    #[arg(long)]
    pub out: PathBuf,
}

fn fail(e: &SweepError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(e.exit_code())
}

/// Runs a sweep.
pub fn cmd_sweep(args: &SweepArgs) -> ExitCode {
    let sweep = match load_sweep_file(&args.file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            eprintln!("{} problem(s) found; nothing was run.", e.diagnostics.len());
            return ExitCode::from(2);
        }
    };
    let m = &sweep.manifest;
    if !args.quiet {
        eprintln!(
            "{}: {} point(s) × {} replication(s){}{}, {} job(s)",
            args.file.display(),
            m.points.len(),
            m.replications,
            m.precision.as_ref().map_or(String::new(), |p| format!(
                " (up to {} until the 95 % CI of {} is within ±{} %)",
                p.max_replications,
                p.metric,
                p.relative_half_width * 100.0
            )),
            args.shard.map_or(String::new(), |s| format!(", shard {s}")),
            super::run::effective_jobs(args.jobs)
        );
    }
    let opts = RunOptions {
        jobs: args.jobs,
        resume: args.resume,
        shard: args.shard,
        quiet: args.quiet,
        stop_after: args.stop_after,
    };
    let t0 = std::time::Instant::now();
    say_where_runs_are_on_interrupt(&args.out);
    match run_sweep(&sweep, &args.out, &opts) {
        Ok(SweepStatus::Complete {
            runs,
            new_runs,
            precision_not_met,
        }) => {
            // Said even with --quiet: the intervals of these points are wider than asked.
            if let (Some(p), false) = (&m.precision, precision_not_met.is_empty()) {
                let list: Vec<String> = precision_not_met
                    .iter()
                    .take(10)
                    .map(|s| {
                        let at: Vec<String> = m
                            .axes
                            .iter()
                            .zip(&s.values)
                            .map(|(a, v)| format!("{a} = {v}"))
                            .collect();
                        format!(
                            "point {}{}: ±{}",
                            s.point,
                            if at.is_empty() {
                                String::new()
                            } else {
                                format!(" ({})", at.join(", "))
                            },
                            s.relative_half_width
                                .map_or("?".into(), |r| format!("{:.3} %", r * 100.0))
                        )
                    })
                    .collect();
                eprintln!(
                    "warning: {} point(s) stopped at max_replications = {} without reaching the precision target (95 % CI of {} within ±{} %): {}{}; {}",
                    precision_not_met.len(),
                    p.max_replications,
                    p.metric,
                    p.relative_half_width * 100.0,
                    list.join(", "),
                    if precision_not_met.len() > 10 {
                        ", …"
                    } else {
                        ""
                    },
                    if args.shard.is_some() {
                        "`w3sim merge` writes them into points.csv (precision_met) and sweep.json (precision_not_met)"
                    } else {
                        "see precision_met in points.csv and precision_not_met in sweep.json"
                    }
                );
            }
            if !args.quiet {
                let secs = t0.elapsed().as_secs_f64();
                println!(
                    "{} runs ({} new) in {:.1} s ({:.1} runs/s); wrote {}/runs.csv{}, sweep.json",
                    runs,
                    new_runs,
                    secs,
                    new_runs as f64 / secs.max(1e-9),
                    args.out.display(),
                    if args.shard.is_some() {
                        ", shard.json"
                    } else {
                        ", points.csv"
                    }
                );
            }
            ExitCode::SUCCESS
        }
        Ok(SweepStatus::Stopped { runs }) => {
            eprintln!(
                "stopped with {runs} run(s) in {}/runs.csv; go on with --resume",
                args.out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// Runs a capacity search.
pub fn cmd_capacity(args: &CapacityArgs) -> ExitCode {
    let slos: Result<Vec<Slo>, String> = args.slo.iter().map(|s| Slo::parse(s)).collect();
    let slos = match slos {
        Ok(s) => s,
        Err(m) => {
            eprintln!("error: {m}");
            return ExitCode::from(2);
        }
    };
    let mut overrides = Vec::new();
    if let Some(s) = args.seed {
        overrides.push(format!("seed={s}"));
    }
    if let Some(d) = &args.duration {
        overrides.push(format!("duration=\"{d}\""));
    }
    if let Some(w) = &args.warmup {
        overrides.push(format!("warmup=\"{w}\""));
    }
    overrides.extend(args.set.iter().cloned());
    let cfg = CapacityConfig {
        scenario: args.scenario.clone(),
        overrides,
        vary: args.vary.clone(),
        lo: args.lo.clone(),
        hi: args.hi.clone(),
        slos,
        replications: args.replications,
        jobs: args.jobs,
        tolerance: args.tolerance,
        max_evaluations: args.max_evaluations,
        lowest: args.lowest,
    };
    let quiet = args.quiet;
    let mut progress = |e: &super::capacity::Evaluation| {
        if !quiet {
            eprintln!(
                "  tried {}: {}",
                e.setting,
                if e.pass { "pass" } else { "fail" }
            );
        }
    };
    match search(&cfg, &mut progress) {
        Ok(r) => {
            if quiet {
                println!("{}", r.answer());
            } else {
                print!("{}", r.human());
            }
            if let Some(dir) = &args.out {
                if let Err(e) = write_report(dir, &r) {
                    eprintln!("error: cannot write {}/capacity.json: {e}", dir.display());
                    return ExitCode::from(1);
                }
                if !quiet {
                    println!("wrote {}/capacity.json", dir.display());
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// Merges shard outputs.
pub fn cmd_merge(args: &MergeArgs) -> ExitCode {
    match merge(&args.dirs, &args.out) {
        Ok(r) => {
            println!(
                "merged {} runs of {} points into {}/runs.csv, points.csv, sweep.json",
                r.runs,
                r.points,
                args.out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// The message a sweep stopped by Ctrl-C (SIGINT) or SIGTERM prints before it ends: its
/// finished runs are in `runs.csv` already (each is written whole as it ends), and
/// `--resume` goes on. Set once per process, before the sweep starts.
#[cfg(unix)]
static INTERRUPT_MESSAGE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

#[cfg(unix)]
extern "C" fn on_interrupt(sig: libc::c_int) {
    if let Some(m) = INTERRUPT_MESSAGE.get() {
        // SAFETY: write(2) and _exit(2) are async-signal-safe; the buffer is never freed
        // or changed once set.
        unsafe {
            libc::write(2, m.as_ptr().cast(), m.len());
        }
    }
    // SAFETY: as above.
    unsafe { libc::_exit(128 + sig) }
}

#[cfg(unix)]
fn say_where_runs_are_on_interrupt(out: &std::path::Path) {
    let msg = format!(
        "\nstopped: every finished run is in {}/runs.csv; the same command with --resume goes on\n",
        out.display()
    );
    if INTERRUPT_MESSAGE.set(msg.into_bytes()).is_ok() {
        let handler = on_interrupt as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: the handler only calls async-signal-safe functions on data that is
        // immutable once set.
        unsafe {
            libc::signal(libc::SIGINT, handler);
            libc::signal(libc::SIGTERM, handler);
        }
    }
}

#[cfg(not(unix))]
fn say_where_runs_are_on_interrupt(_out: &std::path::Path) {}
