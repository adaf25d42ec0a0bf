//! The dashboard of a run: stacked time-series panels sharing the time axis.
//!
//! Panels (each left out when its columns are missing or all zero): offered and
//! completed load; the HTTP.SYS queue against `queueLength`; ASP.NET's queues; the
//! thread-pool queue; threads and the thread goal; CPU and % time in GC; response-time
//! percentiles; ports in use and in TIME_WAIT against the dynamic port range; each
//! failure outcome per second (outcome columns are discovered by their prefix). A
//! farm's run directory gets the users' requests against the attempts, the servers in
//! rotation, and each server's share and failures (`\\SERVER\…` columns).
//! Samples taken during a blocking GC (`w3sim\GC Suspended` = 1) are shaded on every
//! panel, and the events of `events.csv` (recycles, LB removals, failovers) are
//! vertical lines.

use std::path::{Path, PathBuf};

use super::figure::{Chart, Figure, Line, Stack};
use super::{Format, read_timeseries};
use crate::incidents::{Event, Limits, outcome_label, outcome_name, read_events};
use crate::output::MemorySink;

/// Builds the dashboard of a time series.
pub fn build(title: &str, ts: &MemorySink, limits: &Limits, events: &[Event]) -> Figure {
    let time = ts
        .column("time_s")
        .unwrap_or_else(|| (1..=ts.rows.len()).map(|i| i as f64).collect::<Vec<_>>());
    let series = |name: &str| -> Option<Vec<(f64, f64)>> {
        let v = ts.column(name)?;
        if v.iter().all(|x| !x.is_finite() || *x == 0.0) {
            return None;
        }
        Some(time.iter().copied().zip(v).collect())
    };
    let peak = |pts: &[(f64, f64)]| pts.iter().map(|p| p.1).fold(0.0f64, f64::max);
    let mut charts = Vec::new();
    let mut panel = |title: &str, y: &str, cols: &[(&str, &str)], hlines: Vec<(String, f64)>| {
        let lines: Vec<Line> = cols
            .iter()
            .filter_map(|(c, label)| {
                series(c).map(|points| Line {
                    label: label.to_string(),
                    points,
                    ..Line::default()
                })
            })
            .collect();
        if lines.is_empty() {
            return;
        }
        // A limit line only when the data come near it (else it flattens the curves).
        let top = lines.iter().map(|l| peak(&l.points)).fold(0.0, f64::max);
        let hlines = hlines
            .into_iter()
            .filter(|(_, y)| top >= 0.25 * y)
            .collect();
        charts.push(Chart {
            title: title.into(),
            y_label: y.into(),
            lines,
            bands: Vec::new(),
            hlines,
        });
    };
    // A farm's run directory: the users', the balancer's and each server's share.
    panel(
        "Farm: user requests and attempts",
        "requests/s",
        &[
            ("w3sim\\Farm User Requests/sec", "user requests"),
            ("w3sim\\Farm Attempts/sec", "attempts (with retries)"),
            ("w3sim\\Farm User Requests OK/sec", "users served"),
            ("w3sim\\Farm User Requests Failed/sec", "users failed"),
            ("w3sim\\Farm Client Timeouts/sec", "client timeouts"),
            (
                "w3sim\\Load Balancer Rejected/sec",
                "rejected by the balancer (all servers out)",
            ),
        ],
        vec![],
    );
    panel(
        "Load balancer: servers in rotation",
        "servers",
        &[(
            "w3sim\\Load Balancer Servers In Rotation",
            "Servers In Rotation",
        )],
        vec![],
    );
    let per_server = |suffix: &str| -> Vec<(String, String)> {
        ts.columns
            .iter()
            .filter_map(|c| {
                let rest = c.strip_prefix("\\\\")?;
                let (server, counter) = rest.split_once('\\')?;
                (counter == suffix).then(|| (c.clone(), server.to_string()))
            })
            .collect()
    };
    for (title, suffix) in [
        (
            "Load balancer: requests sent to each server",
            "w3sim\\Load Balancer Requests/sec",
        ),
        ("Failed attempts per server", "w3sim\\Attempts Failed/sec"),
    ] {
        let cols = per_server(suffix);
        let refs: Vec<(&str, &str)> = cols.iter().map(|(c, l)| (c.as_str(), l.as_str())).collect();
        panel(title, "requests/s", &refs, vec![]);
    }
    panel(
        "Farm: response time of the users' successful requests (first attempt to last answer)",
        "ms",
        &[("w3sim\\Farm Response Time p99 (ms)", "p99")],
        vec![],
    );
    panel(
        "Load: offered and completed",
        "requests/s",
        &[
            (
                "HTTP Service Request Queues\\ArrivalRate",
                "offered (ArrivalRate)",
            ),
            (
                "ASP.NET Applications\\Requests/Sec",
                "completed (Requests/Sec)",
            ),
        ],
        vec![],
    );
    panel(
        "HTTP.SYS app-pool queue",
        "requests",
        &[
            (
                "w3sim\\HTTP.SYS Outstanding Requests",
                "outstanding (counted against queueLength)",
            ),
            (
                "HTTP Service Request Queues\\CurrentQueueSize",
                "CurrentQueueSize",
            ),
        ],
        vec![(
            format!("queueLength {:.0}", limits.queue_length),
            limits.queue_length,
        )],
    );
    panel(
        "ASP.NET queues",
        "requests",
        &[
            ("ASP.NET\\Requests Current", "Requests Current"),
            ("ASP.NET\\Requests Queued", "Requests Queued"),
            (
                "ASP.NET\\Requests In Native Queue",
                "Requests In Native Queue",
            ),
        ],
        vec![(
            format!("requestQueueLimit {:.0}", limits.request_queue_limit),
            limits.request_queue_limit,
        )],
    );
    panel(
        "Thread-pool queue",
        "work items",
        &[(
            "System.Runtime\\ThreadPool Queue Length",
            "ThreadPool Queue Length",
        )],
        vec![],
    );
    panel(
        "Worker threads",
        "threads",
        &[
            ("System.Runtime\\ThreadPool Thread Count", "Thread Count"),
            ("w3sim\\ThreadPool Goal", "goal"),
        ],
        vec![],
    );
    panel(
        "CPU and GC",
        "%",
        &[
            ("Processor(_Total)\\% Processor Time", "% Processor Time"),
            (".NET CLR Memory\\% Time in GC", "% Time in GC"),
        ],
        vec![],
    );
    panel(
        "Response time of the interval (successful requests)",
        "ms",
        &[
            ("w3sim\\Response Time p50 (ms)", "p50"),
            ("w3sim\\Response Time p99 (ms)", "p99"),
        ],
        vec![],
    );
    panel(
        "Ephemeral ports",
        "ports",
        &[
            ("w3sim\\Ports In Use", "in use"),
            ("w3sim\\Ports In TIME_WAIT", "in TIME_WAIT"),
            ("TCPv4\\Connections Established", "connections established"),
        ],
        vec![(
            format!("dynamic port range {:.0}", limits.dynamic_port_count),
            limits.dynamic_port_count,
        )],
    );
    panel(
        "Outgoing calls",
        "calls",
        &[
            ("w3sim\\Outgoing Calls In Flight", "in flight"),
            (
                "w3sim\\Outgoing Calls Waiting For A Connection",
                "waiting for a connection",
            ),
        ],
        vec![],
    );
    // Every failure outcome, discovered by the column prefix.
    let fail_cols: Vec<(String, String)> = ts
        .columns
        .iter()
        .filter_map(|c| outcome_name(c).map(|o| (c.clone(), o.to_string())))
        .filter(|(_, o)| o != "ok")
        .collect();
    let refs: Vec<(&str, &str)> = Vec::new();
    let labelled: Vec<(String, String)> = fail_cols
        .iter()
        .map(|(c, o)| (c.clone(), outcome_label(o)))
        .collect();
    let mut refs = refs;
    refs.extend(labelled.iter().map(|(c, l)| (c.as_str(), l.as_str())));
    panel("Failures by outcome", "requests/s", &refs, vec![]);

    // Blocking GC: shade ±half an interval around each suspended sample.
    let mut shades: Vec<(f64, f64)> = Vec::new();
    if let Some(s) = ts.column("w3sim\\GC Suspended") {
        for (k, v) in s.iter().enumerate() {
            if *v > 0.0 {
                let dt = if k > 0 {
                    time[k] - time[k - 1]
                } else {
                    time.get(1).map_or(1.0, |t1| t1 - time[0])
                };
                let (a, b) = (time[k] - dt / 2.0, time[k] + dt / 2.0);
                match shades.last_mut() {
                    Some(last) if a <= last.1 + 1e-9 => last.1 = b,
                    _ => shades.push((a, b)),
                }
            }
        }
    }
    let vlines = events
        .iter()
        .map(|e| {
            let label = if e.detail.is_empty() {
                e.kind.clone()
            } else {
                format!("{}: {}", e.kind, e.detail)
            };
            (e.time_s, label)
        })
        .collect();
    Figure::Stack(Stack {
        title: title.to_string(),
        x_label: "simulated time (s)".into(),
        charts,
        vlines,
        shade_label: if shades.is_empty() {
            String::new()
        } else {
            "blocking GC (managed code suspended)".into()
        },
        shades,
        x_interval: None,
        x_whole: false,
    })
}

/// The name of a run directory's scenario (`scenario.toml`'s `name`, else the directory).
pub fn run_name(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("scenario.toml"))
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| t.get("name").and_then(|n| n.as_str()).map(str::to_string))
        .unwrap_or_else(|| {
            dir.file_name()
                .map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned())
        })
}

/// The dashboard of a run directory.
pub fn build_run_dir(dir: &Path) -> Result<Figure, String> {
    let ts = read_timeseries(&dir.join("timeseries.csv"))?;
    let limits = Limits::from_run_dir(dir)?;
    let events = read_events(dir)?;
    Ok(build(&run_name(dir), &ts, &limits, &events))
}

/// Draws the dashboard of a run directory into `out` (default `DIR/dashboard.svg` or
/// `.png`); returns the file written. This is what `w3sim run --plot` calls.
pub fn plot_run_dir(dir: &Path, format: Format, out: Option<&Path>) -> Result<PathBuf, String> {
    let fig = build_run_dir(dir)?;
    let path = out.map_or_else(
        || dir.join(format!("dashboard.{}", format.ext())),
        Path::to_path_buf,
    );
    fig.write(&path, format)?;
    Ok(path)
}
