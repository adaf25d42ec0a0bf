//! Pictures, incident timeline, HTML report and perfmon files (`w3sim plot`, `explain`,
//! `report`, `export-perfmon`, `compare`) on the shipped scenarios and sweeps, made
//! short so the tests stay fast.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use w3sim::incidents::{self, Detector, Incident, Limits};
use w3sim::output::{CsvSink, MemorySink, SampleSink, write_atomic, write_summary};
use w3sim::scenario::Scenario;
use w3sim::sweep::capacity::Slo;
use w3sim::sweep::run::{RunOptions, run_sweep};
use w3sim::sweep::spec::load_sweep_str;
use w3sim::viz::{self, Format, perfmon};

/// A minimal XML well-formedness check: balanced, properly nested tags, quoted
/// attributes, no stray `<` in text. Enough to catch a broken SVG.
fn assert_well_formed_xml(text: &str) {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = text;
    let mut roots = 0;
    while let Some(i) = rest.find('<') {
        rest = &rest[i..];
        if let Some(r) = rest.strip_prefix("<?") {
            rest = &r[r.find("?>").expect("unterminated <?") + 2..];
            continue;
        }
        if let Some(r) = rest.strip_prefix("<!--") {
            rest = &r[r.find("-->").expect("unterminated comment") + 3..];
            continue;
        }
        if let Some(r) = rest.strip_prefix("<!") {
            rest = &r[r.find('>').expect("unterminated <!") + 1..];
            continue;
        }
        // Find the end of the tag outside quoted attribute values.
        let bytes = rest.as_bytes();
        let mut q: Option<u8> = None;
        let mut end = None;
        for (k, &b) in bytes.iter().enumerate().skip(1) {
            match (q, b) {
                (None, b'"') | (None, b'\'') => q = Some(b),
                (Some(c), b2) if c == b2 => q = None,
                (None, b'<') => panic!("`<` inside a tag: {}", &rest[..k.min(80)]),
                (None, b'>') => {
                    end = Some(k);
                    break;
                }
                _ => {}
            }
        }
        let end = end.expect("unterminated tag");
        let tag = &rest[1..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack
                .pop()
                .unwrap_or_else(|| panic!("closing </{name}> without an opening tag"));
            assert_eq!(open, name.trim(), "mismatched tags");
            continue;
        }
        let name: String = tag
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '/')
            .collect();
        assert!(!name.is_empty(), "empty tag name");
        if stack.is_empty() {
            roots += 1;
        }
        if !tag.ends_with('/') {
            stack.push(name);
        }
    }
    assert!(stack.is_empty(), "unclosed tags: {stack:?}");
    assert_eq!(roots, 1, "an XML document has one root element");
}

fn assert_png(path: &Path) {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(b.len() > 1000, "{} is too small", path.display());
    assert_eq!(
        &b[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
}

/// Runs a scenario into a run directory as `w3sim run` does.
fn run_dir(scn: &Scenario, dir: &Path) -> w3sim::Summary {
    std::fs::create_dir_all(dir).unwrap();
    write_atomic(&dir.join("scenario.toml"), &scn.to_toml()).unwrap();
    let mut sink = CsvSink::create(&dir.join("timeseries.csv")).unwrap();
    let s = w3sim::run(scn, &mut sink).expect("run");
    write_summary(dir, &s).unwrap();
    s
}

/// The incidents of a scenario, detected while it runs (the streaming detector).
fn incidents_of(scn: &Scenario) -> (Vec<Incident>, MemorySink) {
    let mut mem = MemorySink::default();
    let mut d = Detector::new(&mut mem, Limits::from_scenario(scn));
    let s = w3sim::run(scn, &mut d).expect("run");
    // As `run` does for summary.json: the limits' exact first times.
    for l in &s.limits {
        d.limit_hit(l.at_s, &l.limit);
    }
    let v = d.finish_incidents();
    (v, mem)
}

fn kinds(v: &[Incident]) -> Vec<&str> {
    v.iter().map(|i| i.kind.as_str()).collect()
}

fn pos(v: &[Incident], kind: &str) -> usize {
    v.iter()
        .position(|i| i.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} in {:?}", kinds(v)))
}

#[test]
fn dashboard_of_thread_injection_burst_has_its_panels_and_leaves_empty_ones_out() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    run_dir(
        &load("thread-injection-burst.toml", &["duration=\"25s\""]),
        &dir,
    );
    let files = viz::cli::plot_dir(&dir, Some(Format::Svg), None, None, None).unwrap();
    assert_eq!(files, vec![dir.join("dashboard.svg")]);
    let svg = std::fs::read_to_string(&files[0]).unwrap();
    assert_well_formed_xml(&svg);
    for title in [
        "Load: offered and completed",
        "HTTP.SYS app-pool queue",
        "ASP.NET queues",
        "Thread-pool queue",
        "Worker threads",
        "CPU and GC",
        "Failures by outcome",
        "503 QueueFull",
        "queueLength 1000",
    ] {
        assert!(svg.contains(title), "dashboard lacks {title:?}");
    }
    // No port columns and no blocking GC in this run: no port panel, no GC band.
    assert!(!svg.contains("Ephemeral ports"));
    assert!(!svg.contains("blocking GC"));
    let png = viz::dashboard::plot_run_dir(&dir, Format::Png, None).unwrap();
    assert_eq!(png, dir.join("dashboard.png"));
    assert_png(&png);
}

#[test]
fn dashboard_shades_gc_pauses_and_draws_events_and_the_port_range() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    // gc-cache-reload: the 4 GB reload at 30 s makes a ~710 ms blocking pause.
    run_dir(&load("gc-cache-reload.toml", &["duration=\"33s\""]), &dir);
    std::fs::write(
        dir.join("events.csv"),
        "time_s,kind,detail\n31.5,app_pool_recycle,DefaultAppPool\n32,lb_removal,\"server 2, health probe\"\n",
    )
    .unwrap();
    let fig = viz::dashboard::build_run_dir(&dir).unwrap();
    let svg = fig.to_svg_string().unwrap();
    assert_well_formed_xml(&svg);
    assert!(svg.contains("blocking GC (managed code suspended)"));
    assert!(svg.contains("app_pool_recycle: DefaultAppPool"));
    assert!(svg.contains("lb_removal: server 2, health probe"));

    // Port columns (as the ports issue will add them) get their panel and the range
    // from scenario.toml's [tcp] dynamic_port_count.
    let mut ts = viz::read_timeseries(&dir.join("timeseries.csv")).unwrap();
    // (Newer runs already have these columns, all zero here: overwrite them.)
    let n = ts.rows.len();
    for (name, f) in [
        ("w3sim\\Ports In Use", 3000.0),
        ("w3sim\\Ports In TIME_WAIT", 1500.0),
        ("w3sim\\Outcome wsaenobufs/sec", -1.0),
    ] {
        let c = match ts.columns.iter().position(|c| c == name) {
            Some(c) => c,
            None => {
                ts.columns.push(name.into());
                ts.rows.iter_mut().for_each(|r| r.push(0.0));
                ts.columns.len() - 1
            }
        };
        for (k, r) in ts.rows.iter_mut().enumerate() {
            let x = k as f64 / n as f64;
            r[c] = if f < 0.0 {
                if x > 0.9 { 7.0 } else { 0.0 }
            } else {
                f * x
            };
        }
    }
    let limits = Limits::from_scenario_toml("[tcp]\ndynamic_port_count = 5000\n");
    assert_eq!(limits.dynamic_port_count, 5000.0);
    let svg = viz::dashboard::build("ports", &ts, &limits, &[])
        .to_svg_string()
        .unwrap();
    assert!(svg.contains("Ephemeral ports"));
    assert!(svg.contains("dynamic port range 5000"));
    assert!(svg.contains("WSAENOBUFS"));
}

#[test]
fn explain_names_starvation_first_then_queue_full_then_503() {
    let scn = load("thread-injection-burst.toml", &["duration=\"30s\""]);
    let (v, _) = incidents_of(&scn);
    let starve = pos(&v, "thread_pool_starvation");
    let full = pos(&v, "http_sys_queue_full");
    let qf = pos(&v, "outcome:503_queue_full");
    assert!(starve < full && full <= qf, "order: {:?}", kinds(&v));
    assert!(
        v[starve].headline,
        "the first limit reached is the headline"
    );
    assert_eq!(v.iter().filter(|i| i.headline).count(), 1);
    assert!(v[starve].time_s >= 10.0 && v[starve].time_s <= 13.0);
    assert!(v[full].time_s > v[starve].time_s);
    assert_eq!(v[full].caused_by, Some(starve));
    assert_eq!(v[qf].caused_by, Some(full));
    assert_eq!(v[full].limit, Some(1000.0));
    let text = incidents::render(&v);
    let h = incidents::headline(&v).unwrap();
    assert!(h.contains("thread pool starved"), "{h}");
    assert!(h.contains("HTTP.SYS queue reached 1000"), "{h}");
    assert!(h.contains("503 QueueFull"), "{h}");
    assert!(
        h.find("thread pool").unwrap() < h.find("HTTP.SYS").unwrap()
            && h.find("HTTP.SYS").unwrap() < h.find("503 QueueFull").unwrap()
    );
    assert!(text.starts_with("Headline:"), "{text}");
}

/// Seed 000's story: the CPU burst starves the lock holder, so the loopback stall is the
/// processors' doing, not the CLR thread pool's (whose threads are not AFD's workers, though
/// it starves at the same moment), and the failovers are the stall's doing, never the
/// cause of the next stall. The headline follows the chain that leads furthest.
#[test]
fn explain_links_the_loopback_stall_to_the_processors_and_the_failover_to_the_stall() {
    // The run's own incidents: the detector's, with the marked events (failovers) merged.
    let v = run(&load("loopback-afd-firewall.toml", &[])).incidents;
    let cpu = pos(&v, "cpu_saturated");
    let stall = pos(&v, "loopback_stalled");
    let tp = pos(&v, "thread_pool_starvation");
    assert!(v[cpu].headline, "{:?}", kinds(&v));
    assert_eq!(v[tp].caused_by, Some(cpu));
    assert_eq!(v[stall].caused_by, Some(cpu), "{}", incidents::render(&v));
    let failovers: Vec<usize> = (0..v.len())
        .filter(|&i| v[i].kind == "event:failover")
        .collect();
    assert!(failovers.len() >= 2, "{:?}", kinds(&v));
    for &f in &failovers {
        let c = v[f].caused_by.expect("a failover has a cause");
        assert_eq!(v[c].kind, "loopback_stalled", "{}", incidents::render(&v));
    }
    for (i, x) in v.iter().enumerate() {
        if let Some(c) = x.caused_by {
            assert_ne!(
                v[c].kind, "event:failover",
                "incident {i} caused by a failover"
            );
        }
    }
    let h = incidents::headline(&v).unwrap();
    let (a, b, c) = (
        h.find("processors saturated"),
        h.find("loopback stalled"),
        h.find("failover"),
    );
    assert!(
        a.is_some() && a < b && b < c && !h.contains("thread pool"),
        "{h}"
    );
}

#[test]
fn explain_on_a_run_directory_matches_the_streaming_detector_and_reads_events() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let scn = load("thread-injection-burst.toml", &["duration=\"30s\""]);
    run_dir(&scn, &dir);
    let (streamed, _) = incidents_of(&scn);
    let from_file = incidents::detect_run_dir(&dir).unwrap();
    assert_eq!(streamed, from_file);
    std::fs::write(
        dir.join("events.csv"),
        "time_s,kind,detail\n20,app_pool_recycle,DefaultAppPool\n",
    )
    .unwrap();
    let v = incidents::detect_run_dir(&dir).unwrap();
    let e = pos(&v, "event:app_pool_recycle");
    assert_eq!(v[e].time_s, 20.0);
    assert!(v[e].message.contains("DefaultAppPool"));
    assert!(v[pos(&v, "thread_pool_starvation")].headline);
}

/// What w3sim never writes is refused with the file and the line, not explained: an
/// audit's header-only timeseries.csv was "No incident: every request succeeded", and
/// NaN, infinite or out-of-order samples went through `explain`, `plot` and `report`.
#[test]
fn a_time_series_w3sim_never_writes_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let scn = load("thread-injection-burst.toml", &["duration=\"5s\""]);
    run_dir(&scn, &dir);
    let ts = dir.join("timeseries.csv");
    let text = std::fs::read_to_string(&ts).unwrap();
    let header = text.lines().next().unwrap().to_string();
    let rows: Vec<&str> = text.lines().skip(1).collect();
    let mut swapped = vec![header.clone(), rows[1].to_string(), rows[0].to_string()];
    swapped.extend(rows[2..].iter().map(|r| r.to_string()));
    let with_nan = {
        let mut cells: Vec<String> = rows[0].split(',').map(str::to_string).collect();
        cells[3] = "NaN".into();
        format!("{header}\n{}\n", cells.join(","))
    };
    for (content, says) in [
        (format!("{header}\n"), "no samples"),
        (swapped.join("\n") + "\n", "does not come after"),
        (with_nan, "not a finite number"),
    ] {
        std::fs::write(&ts, &content).unwrap();
        let e = incidents::detect_run_dir(&dir).unwrap_err();
        assert!(e.contains(says) && e.contains("timeseries.csv"), "{e}");
        let e = w3sim::viz::read_timeseries(&ts).unwrap_err();
        assert!(e.contains(says), "{e}");
    }
    std::fs::write(&ts, &text).unwrap();
    assert!(incidents::detect_run_dir(&dir).is_ok());
}

/// A constructed time series: a long GC pause fills ASP.NET to requestQueueLimit,
/// which answers 503 Server Too Busy; everything clears; later the processors saturate.
#[test]
fn detector_orders_constructed_incidents_and_clears_them() {
    let cols = [
        "time_s",
        "ASP.NET\\Requests Current",
        ".NET CLR Memory\\% Time in GC",
        "w3sim\\GC Suspended",
        "Processor(_Total)\\% Processor Time",
        "w3sim\\Outcome ok/sec",
        "w3sim\\Outcome 503_server_too_busy/sec",
    ];
    let limits = Limits {
        request_queue_limit: 100.0,
        ..Limits::default()
    };
    let mut d = Detector::standalone(limits);
    d.columns(&cols).unwrap();
    for t in 1..=30 {
        let t = t as f64;
        let gc = (5.0..=7.0).contains(&t);
        let full = (7.0..=11.0).contains(&t);
        let cpu = if (20.0..=25.0).contains(&t) {
            99.0
        } else {
            30.0
        };
        d.row(&[
            t,
            if full { 100.0 } else { 10.0 },
            if gc { 100.0 } else { 0.5 },
            if gc { 1.0 } else { 0.0 },
            cpu,
            50.0,
            if full { 40.0 } else { 0.0 },
        ])
        .unwrap();
    }
    let v = d.finish_incidents();
    assert_eq!(
        kinds(&v),
        [
            "gc_pause",
            "aspnet_queue_full",
            "outcome:503_server_too_busy",
            "cpu_saturated"
        ]
    );
    assert!(v[0].headline);
    // Three suspended samples at 100 % plus the 0.5 % of the interval it ended in.
    assert!((v[0].value - 3005.0).abs() < 1.0, "pause {} ms", v[0].value);
    assert_eq!(v[1].caused_by, Some(0));
    assert_eq!(v[2].caused_by, Some(1));
    assert_eq!(v[1].cleared_s, Some(12.0));
    assert_eq!(v[2].cleared_s, Some(12.0));
    assert_eq!(v[3].time_s, 20.0);
    assert_eq!(v[3].cleared_s, Some(26.0));
    assert_eq!(v[3].caused_by, None);
    assert!(v[2].message.contains("503 Server Too Busy 40/s"));
}

#[test]
fn aspnet_concurrency_limit_comes_before_requestqueuelimit_and_its_503() {
    let scn = load("aspnet-concurrency-12.toml", &["duration=\"25s\""]);
    let (v, _) = incidents_of(&scn);
    let conc = pos(&v, "aspnet_concurrency_limit");
    let full = pos(&v, "aspnet_queue_full");
    let busy = pos(&v, "outcome:503_server_too_busy");
    assert!(conc < full && full <= busy, "{:?}", kinds(&v));
    assert_eq!(v[busy].caused_by, Some(full));
    assert!(v.iter().find(|i| i.headline).unwrap().is_limit());
}

fn reduced_sweep(file: &str, replace: &[(&str, &str)], out: &Path) {
    let path = experiment(file);
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (a, b) in replace {
        assert!(text.contains(a), "{file} has no {a:?}");
        text = text.replace(a, b);
    }
    let sweep = load_sweep_str(file, file, &text, path.parent().unwrap())
        .unwrap_or_else(|e| panic!("{file}:\n{e}"));
    let o = RunOptions {
        quiet: true,
        ..Default::default()
    };
    run_sweep(&sweep, out, &o).unwrap();
}

#[test]
fn sweep_heat_map_with_slo_boundary_and_curves_with_bands() {
    let tmp = tempfile::tempdir().unwrap();
    let qlx = tmp.path().join("qlx");
    reduced_sweep(
        "queue-length-x-load.sweep.toml",
        &[
            ("replications = 3", "replications = 2"),
            ("duration = \"40s\"", "duration = \"12s\""),
            ("points = 7", "points = 3"),
            ("step = \"100/s\"", "step = \"400/s\""),
        ],
        &qlx,
    );
    let slo = Slo::parse("503_rate<0.1%").unwrap();
    let files = viz::cli::plot_dir(&qlx, None, None, Some(&slo), None).unwrap();
    let svg = std::fs::read_to_string(&files[0]).unwrap();
    assert_well_formed_xml(&svg);
    for s in [
        "queue-length-x-load",
        "503_rate",
        "SLO boundary: 503_rate&lt;0.1%",
        "http_sys.queue_length",
        "load.rate",
        "1400/s",
        "10000",
    ] {
        assert!(svg.contains(s), "heat map lacks {s:?}");
    }
    let png = tmp.path().join("heat.png");
    viz::cli::plot_dir(&qlx, None, Some(&png), Some(&slo), Some("p99_ms")).unwrap();
    assert_png(&png);
    // An SLO on a metric the sweep did not aggregate is bad input.
    let bad = Slo::parse("failure_rate<1%").unwrap();
    assert!(viz::cli::plot_dir(&qlx, None, None, Some(&bad), None).is_err());

    let load_dir = tmp.path().join("load");
    reduced_sweep(
        "load.sweep.toml",
        &[
            ("replications = 5", "replications = 2"),
            ("duration = \"60s\"", "duration = \"12s\""),
            ("warmup = \"10s\"", "warmup = \"2s\""),
            ("step = \"100/s\"", "step = \"350/s\""),
        ],
        &load_dir,
    );
    // A capacity search over the same axis, dropped into the directory, is marked.
    let cap = r#"{"vary":"load.rate","unit":"/s","capacity":1000.0,"capacity_setting":"1000/s",
      "interval":[1000.0,1050.0],"crossing_estimate":1010.0,"crossing_ci":[950.0,1100.0],
      "slos":[{"text":"503_rate<0.1%","metric":"503_rate","op":"<","threshold":0.001}],
      "broke_first":{"slo":"503_rate<0.1%","first_failed_at":1050.0,"mean_there":0.01,"threshold":0.001,"causes":[]},
      "evaluations":[{"value":500.0,"setting":"500/s","pass":true,"slos":[{"slo":"503_rate<0.1%","mean":0.0,"ci_low":0.0,"ci_high":0.0,"holds":true}]},
                     {"value":1050.0,"setting":"1050/s","pass":false,"slos":[{"slo":"503_rate<0.1%","mean":0.01,"ci_low":0.005,"ci_high":0.015,"holds":false}]}]}"#;
    std::fs::write(load_dir.join("capacity.json"), cap).unwrap();
    let files = viz::cli::plot_dir(&load_dir, Some(Format::Svg), None, None, None).unwrap();
    assert_eq!(
        files,
        vec![load_dir.join("sweep.svg"), load_dir.join("capacity.svg")]
    );
    let svg = std::fs::read_to_string(&files[0]).unwrap();
    assert_well_formed_xml(&svg);
    for s in [
        "503_rate",
        "p99_ms",
        "throughput",
        "95 % CI",
        "capacity 1000/s",
        "95 % interval of the crossing",
        "SLO 503_rate&lt;0.1%",
    ] {
        assert!(svg.contains(s), "sweep curves lack {s:?}");
    }
    let svg = std::fs::read_to_string(&files[1]).unwrap();
    assert_well_formed_xml(&svg);
    assert!(svg.contains("capacity search over load.rate"));
}

#[test]
fn capacity_directory_plots_the_search() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cap");
    let st = Command::new(env!("CARGO_BIN_EXE_w3sim"))
        .args(["capacity"])
        .arg(experiment("validation/mmck.toml"))
        .args([
            "--vary",
            "load.rate",
            "--lo",
            "100/s",
            "--hi",
            "600/s",
            "--slo",
            "503_rate<2%",
            "--replications",
            "2",
            "--duration",
            "60s",
            "--tolerance",
            "0.05",
            "-q",
            "--out",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let files = viz::cli::plot_dir(&out, Some(Format::Png), None, None, None).unwrap();
    assert_eq!(files, vec![out.join("capacity.png")]);
    assert_png(&files[0]);
    let figs = viz::sweep_plot::figures_of_dir(&out, None, None).unwrap();
    let svg = figs[0].1.to_svg_string().unwrap();
    assert_well_formed_xml(&svg);
    assert!(svg.contains("SLO 503_rate&lt;2%"));
    assert!(svg.contains("capacity "));
    assert!(svg.contains("threshold"));
}

fn assert_self_contained(html: &str) {
    for bad in [
        "<script",
        "<link",
        "<img",
        "src=\"http",
        "url(http",
        "@import",
    ] {
        assert!(!html.contains(bad), "report references {bad}");
    }
    // Only the SVG namespace URIs may be absolute URLs.
    let urls = html.matches("http://").count() + html.matches("https://").count();
    let ns = html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count()
        + html.matches("\"http://www.w3.org/1999/xlink\"").count();
    assert_eq!(urls, ns, "report has external URLs");
}

#[test]
fn report_of_a_run_and_of_a_sweep_are_self_contained() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    run_dir(
        &load("thread-injection-burst.toml", &["duration=\"20s\""]),
        &dir,
    );
    let p = viz::report::write_report(&dir, None, None).unwrap();
    assert_eq!(p, dir.join("report.html"));
    let html = std::fs::read_to_string(&p).unwrap();
    assert_self_contained(&html);
    assert_eq!(html.matches("<svg").count(), 1);
    for s in [
        "<h2>Incidents</h2>",
        "Headline:",
        "thread pool starved",
        "http_sys.CurrentQueueSize",
        "HTTP.SYS app-pool queue",
        "Worker threads",
        "<h2>Summary</h2>",
        "503_queue_full",
        "id=\"scenario\"",
        "min_worker_threads = 16",
    ] {
        assert!(html.contains(s), "run report lacks {s:?}");
    }
    let svg_start = html.find("<svg").unwrap();
    let svg_end = html.find("</svg>").unwrap() + 6;
    assert_well_formed_xml(&html[svg_start..svg_end]);

    let qlx = tmp.path().join("qlx");
    reduced_sweep(
        "queue-length-x-load.sweep.toml",
        &[
            ("replications = 3", "replications = 2"),
            ("duration = \"40s\"", "duration = \"8s\""),
            ("points = 7", "points = 2"),
            ("step = \"100/s\"", "step = \"800/s\""),
        ],
        &qlx,
    );
    let out = tmp.path().join("sweep-report.html");
    let slo = Slo::parse("503_rate<0.1%").unwrap();
    viz::report::write_report(&qlx, Some(&out), Some(&slo)).unwrap();
    let html = std::fs::read_to_string(&out).unwrap();
    assert_self_contained(&html);
    assert_eq!(html.matches("<svg").count(), 1);
    for s in [
        "Points (points.csv)",
        "SLO boundary",
        "Sweep file",
        "Base scenario",
        "queue-full-burst",
    ] {
        assert!(html.contains(s), "sweep report lacks {s:?}");
    }
}

#[test]
fn perfmon_export_has_relog_layout_and_compares_with_itself_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    run_dir(
        &load("thread-injection-burst.toml", &["duration=\"15s\""]),
        &dir,
    );
    let p = viz::cli::export_perfmon(&dir, None, "2026-03-01 12:00:00").unwrap();
    assert_eq!(p, dir.join("perfmon.csv"));
    let text = std::fs::read_to_string(&p).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("\"(PDH-CSV 4.0) (Coordinated Universal Time)(0)\","));
    for c in [
        "\"\\\\W3SIM\\HTTP Service Request Queues(DefaultAppPool)\\ArrivalRate\"",
        "\"\\\\W3SIM\\Processor(_Total)\\% Processor Time\"",
        "\"\\\\W3SIM\\ASP.NET\\Requests Current\"",
        "\"\\\\W3SIM\\.NET CLR Memory(_Global_)\\% Time in GC\"",
    ] {
        assert!(header.contains(c), "header lacks {c}");
    }
    assert!(!header.contains("time_s"));
    let first = lines.next().unwrap();
    assert!(first.starts_with("\"03/01/2026 12:00:01.000\","), "{first}");
    assert_eq!(
        perfmon::format_timestamp(perfmon::parse_base("2024-02-29 23:59:59.5").unwrap()),
        "02/29/2024 23:59:59.500"
    );

    let real = perfmon::read_perfmon_csv(&p).unwrap();
    let sim = viz::read_timeseries(&dir.join("timeseries.csv")).unwrap();
    let errs = perfmon::compare(&sim, &real);
    assert_eq!(errs.len(), sim.columns.len() - 1);
    for e in &errs {
        assert_eq!(e.max_abs_error, 0.0, "{}", e.counter);
        assert_eq!(e.samples, sim.rows.len());
    }

    // A "real" capture from another machine and instance, 10 % above the run on one
    // counter, sampled every 2 s and starting at another date.
    let arr = sim
        .column("HTTP Service Request Queues\\ArrivalRate")
        .unwrap();
    let mut csv = String::from(
        "\"(PDH-CSV 4.0) (Coordinated Universal Time)(0)\",\"\\\\WEB01\\HTTP Service Request Queues(MyPool)\\ArrivalRate\",\"\\\\WEB01\\Memory\\Available MBytes\"\r\n",
    );
    for (k, v) in arr.iter().enumerate().step_by(2) {
        csv.push_str(&format!(
            "\"11/20/2025 08:00:{:02}.000\",\"{}\",\"2048\"\r\n",
            k,
            v * 1.1
        ));
    }
    let real_path = tmp.path().join("web01.csv");
    std::fs::write(&real_path, csv).unwrap();
    let real = perfmon::read_perfmon_csv(&real_path).unwrap();
    let errs = perfmon::compare(&sim, &real);
    assert_eq!(errs.len(), 1, "only ArrivalRate matches");
    let e = &errs[0];
    assert_eq!(e.counter, "HTTP Service Request Queues\\ArrivalRate");
    assert!(
        (e.relative_error - 1.0 / 11.0).abs() < 1e-9,
        "{}",
        e.relative_error
    );
    assert!(e.mean_error < 0.0);
    let plot = tmp.path().join("cmp.svg");
    perfmon::compare_figure("cmp", &errs)
        .write(&plot, Format::Svg)
        .unwrap();
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert_well_formed_xml(&svg);
    assert!(svg.contains("perfmon (real)") && svg.contains("w3sim"));

    // An audit's capture with its rows in reverse order compared one sample per counter
    // and said nothing; a figure named .jpg got SVG inside.
    let text = std::fs::read_to_string(&real_path).unwrap();
    let mut rows: Vec<&str> = text.lines().collect();
    rows[1..].reverse();
    let reversed = tmp.path().join("reversed.csv");
    std::fs::write(&reversed, rows.join("\r\n") + "\r\n").unwrap();
    let r = perfmon::read_perfmon_csv(&reversed).unwrap();
    let e = perfmon::check_time_order(&r, &reversed).unwrap_err();
    assert!(e.contains("row 3") && e.contains("time order"), "{e}");
    let (code, _, err) =
        w3sim_exit(&["compare", dir.to_str().unwrap(), reversed.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("time order"), "{err}");
    let (code, _, err) = w3sim_exit(&[
        "compare",
        dir.to_str().unwrap(),
        real_path.to_str().unwrap(),
        "--plot",
        tmp.path().join("cmp.jpg").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(".svg or .png"), "{err}");
    assert!(!tmp.path().join("cmp.jpg").exists());
    // Dates past 9999 (perfmon's four-digit years) and a report into a directory: bad
    // input, exit 2.
    let d = dir.to_str().unwrap();
    let (code, _, err) = w3sim_exit(&["export-perfmon", d, "--base", "9999-12-31 23:59:59"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("0001–9999"), "{err}");
    let (code, _, err) = w3sim_exit(&["report", d, "--out", d]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("is a directory"), "{err}");
}

/// Runs the `w3sim` binary: (success, stdout, stderr).
fn w3sim(args: &[&str]) -> (bool, String, String) {
    let (code, out, err) = w3sim_exit(args);
    (code == Some(0), out, err)
}

/// `w3sim run` of a shipped scenario for 20 simulated seconds into `out`.
fn run_20s(scenario: &str, out: &Path) {
    run_for(scenario, "20s", out);
}

/// Runs a shipped scenario for `duration` with the binary into `out`.
fn run_for(scenario: &str, duration: &str, out: &Path) {
    let scn = experiment(scenario);
    let (ok, _, err) = w3sim(&[
        "run",
        scn.to_str().unwrap(),
        "--duration",
        duration,
        "-q",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
}

#[test]
fn cli_plot_explain_report_export_and_compare() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let d = dir.to_str().unwrap();
    run_20s("thread-injection-burst.toml", &dir);
    let (ok, out, err) = w3sim(&["explain", d]);
    assert!(ok, "{err}");
    assert!(out.starts_with("Headline:"), "{out}");
    assert!(out.contains("thread pool starved"));
    let (ok, out, _) = w3sim(&["explain", d, "--json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["kind"], "thread_pool_starvation");
    assert_eq!(v[0]["headline"], true);
    let png = tmp.path().join("dash.png");
    let (ok, _, err) = w3sim(&["plot", d, "--out", png.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_png(&png);
    let (ok, _, err) = w3sim(&["report", d]);
    assert!(ok, "{err}");
    assert!(dir.join("report.html").is_file());
    let (ok, _, err) = w3sim(&["export-perfmon", d]);
    assert!(ok, "{err}");
    let pm = dir.join("perfmon.csv");
    let cmp = tmp.path().join("cmp.png");
    let (ok, out, err) = w3sim(&[
        "compare",
        d,
        pm.to_str().unwrap(),
        "--plot",
        cmp.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("ASP.NET\\Requests Current"), "{out}");
    assert_png(&cmp);
    // Bad input: exit code 2.
    let (ok, _, err) = w3sim(&["plot", tmp.path().to_str().unwrap()]);
    assert!(!ok && err.contains("neither a run directory"), "{err}");
    let (ok, _, _) = w3sim(&["plot", d, "--slo", "503_rate"]);
    assert!(!ok);
}

/// A damaged run directory is bad input for every command that reads one: exit code 2
/// and an error naming the file (and the line and column where there is one), never a
/// picture or a story of a run that is not there.
#[test]
fn damaged_run_directories_are_refused_with_the_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good");
    run_20s("queue-full-burst.toml", &good);
    let damaged = |name: &str, file: &str, edit: &dyn Fn(String) -> String| {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["timeseries.csv", "scenario.toml", "summary.json"] {
            std::fs::copy(good.join(f), dir.join(f)).unwrap();
        }
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        std::fs::write(dir.join(file), edit(text)).unwrap();
        dir
    };
    let exit_code = |args: &[&str]| {
        let (code, _, err) = w3sim_exit(args);
        (code, err)
    };
    // Not a w3sim time series at all.
    let other = damaged("other", "timeseries.csv", &|_| "a,b\n1,2\n".into());
    // A cell that is not a number: row 5 of the file, second column.
    let cell = damaged("cell", "timeseries.csv", &|t| {
        let mut lines: Vec<String> = t.lines().map(str::to_string).collect();
        let mut cells: Vec<&str> = lines[4].split(',').collect();
        cells[1] = "abc";
        lines[4] = cells.join(",");
        lines.join("\n") + "\n"
    });
    // A scenario.toml cut short, and a summary.json that is not JSON.
    let toml = damaged("toml", "scenario.toml", &|t| t + "[http_sys\n");
    let json = damaged("json", "summary.json", &|_| "{".into());
    let toml_line = std::fs::read_to_string(toml.join("scenario.toml"))
        .unwrap()
        .lines()
        .count();
    for (dir, needle) in [
        (&other, "timeseries.csv: not a w3sim time series".to_string()),
        (
            &cell,
            "timeseries.csv:5: column 2 (`HTTP Service Request Queues\\ArrivalRate`): `abc` is not a number"
                .to_string(),
        ),
        (&toml, format!("scenario.toml:{toml_line}:")),
    ] {
        let d = dir.to_str().unwrap();
        for cmd in ["explain", "plot", "report", "export-perfmon"] {
            if cmd == "export-perfmon" && dir == &toml {
                continue; // it reads only the time series
            }
            let (code, err) = exit_code(&[cmd, d]);
            assert_eq!(code, Some(2), "{cmd} {d}: {err}");
            assert!(err.contains(&needle), "{cmd} {d}: {err}");
        }
    }
    let (code, err) = exit_code(&["report", json.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("summary.json: not JSON"), "{err}");
    // The undamaged directory still gives all of them.
    for cmd in ["explain", "plot", "report", "export-perfmon"] {
        let (code, err) = exit_code(&[cmd, good.to_str().unwrap()]);
        assert_eq!(code, Some(0), "{cmd}: {err}");
    }
    // An output that cannot be written (under a file, as if it were a directory) is a
    // failure to write, exit 1, naming the path; not bad input.
    let under_a_file = good.join("summary.json");
    for (cmd, name) in [("plot", "x.png"), ("plot", "x.svg"), ("report", "x.html")] {
        let out = under_a_file.join(name);
        let (code, err) = exit_code(&[cmd, good.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        assert_eq!(code, Some(1), "{cmd} --out {name}: {err}");
        assert!(err.contains("summary.json"), "{cmd} --out {name}: {err}");
    }
}

/// `explain` on a farm's run directory tells the farm's story, the one `summary.json`
/// holds: each server's incidents (named after it) and the balancer's removals, headed
/// by the first limit reached (web1's GC pause); every server's directory reads back.
#[test]
fn explain_on_a_farm_directory_tells_the_same_story_as_its_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fc");
    run_for("farm-cascade.toml", "80s", &dir);
    let (code, out, err) = w3sim_exit(&["explain", "--json", dir.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let explained: serde_json::Value = serde_json::from_str(&out).unwrap();
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(explained, summary["incidents"]);
    let v = incidents::detect_run_dir(&dir).unwrap();
    assert!(
        v.iter().any(|i| i.kind == "event:lb_removed"),
        "{:?}",
        kinds(&v)
    );
    let h = v.iter().find(|i| i.headline).expect("a headline");
    assert!(
        h.kind == "gc_pause" && h.message.starts_with("web1: "),
        "{}",
        incidents::render(&v)
    );
    assert!(incidents::render(&v).starts_with("Headline: 1:00.0 web1: blocking GC pause"));
    // The balancer's part, which no single server sees: web1's removal comes from what
    // web1 went through, and the others' limits, reached while web1 is out, from the
    // removal (its share moved to them); the headline follows that cascade.
    let removed1 = (0..v.len())
        .find(|&i| v[i].kind == "event:lb_removed" && v[i].message.contains("web1"))
        .expect("web1 removed");
    let c = v[removed1].caused_by.expect("the removal has a cause");
    assert!(
        v[c].message.starts_with("web1: "),
        "{}",
        incidents::render(&v)
    );
    let others = (0..v.len())
        .filter(|&i| v[i].caused_by == Some(removed1))
        .filter(|&i| !v[i].message.starts_with("web1: "))
        .count();
    assert!(others >= 2, "{}", incidents::render(&v));
    let head = incidents::headline(&v).unwrap();
    assert!(
        head.contains("lb removed: web1") && head.contains("web2: "),
        "{head}"
    );
}

/// `plot --out x.svg --format png` disagree: refused as bad input (exit 2) before any file
/// is created (it was exit 1, "backend error", and an empty x.svg).
#[test]
fn plot_refuses_an_out_file_whose_extension_contradicts_the_format() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    run_20s("queue-full-burst.toml", &run);
    for (out, format) in [("x.svg", "png"), ("x.png", "svg"), ("x", "png")] {
        let o = tmp.path().join(out);
        let (code, _, err) = w3sim_exit(&[
            "plot",
            run.to_str().unwrap(),
            "--out",
            o.to_str().unwrap(),
            "--format",
            format,
        ]);
        assert_eq!(code, Some(2), "{out} as {format}: {err}");
        assert!(err.contains("--format") && err.contains(out), "{err}");
        assert!(!o.exists(), "{out} was created");
    }
    // Agreeing, or the extension alone, is fine; a name without .png is an SVG.
    for (out, format) in [("a.png", Some("png")), ("b.png", None), ("c.pic", None)] {
        let o = tmp.path().join(out);
        let mut args = vec!["plot", run.to_str().unwrap(), "--out", o.to_str().unwrap()];
        if let Some(f) = format {
            args.extend(["--format", f]);
        }
        let (code, _, err) = w3sim_exit(&args);
        assert_eq!(code, Some(0), "{out}: {err}");
        assert!(o.metadata().unwrap().len() > 0);
    }
    // Like plot, report creates a missing parent directory.
    let r = tmp.path().join("new").join("sub").join("r.html");
    let (code, _, err) = w3sim_exit(&[
        "report",
        run.to_str().unwrap(),
        "--out",
        r.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(r.exists());
}

/// A capacity search with an SLO that holds only at high values has a lower edge; the
/// report shows it next to the capacity.
#[test]
fn the_report_of_a_capacity_search_shows_its_lower_edge() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cap");
    let scn = experiment("queue-full-burst.toml");
    let (ok, _, err) = w3sim(&[
        "capacity",
        scn.to_str().unwrap(),
        "--vary",
        "load.rate",
        "--slo",
        "throughput>500/s",
        "--slo",
        "p99<500ms",
        "--set",
        "load.schedule=[]",
        "-r",
        "1",
        "--duration",
        "20s",
        "-q",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let html = tmp.path().join("r.html");
    let (code, _, err) = w3sim_exit(&[
        "report",
        out.to_str().unwrap(),
        "--out",
        html.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let text = std::fs::read_to_string(&html).unwrap();
    assert!(
        text.contains("lower edge (lowest value passing every SLO)"),
        "no lower edge"
    );
    assert!(text.contains("throughput&gt;500/s") || text.contains("throughput>500/s"));
}

/// farm-weights with equal weights: the small servers go first, and the big one's removals
/// follow theirs. Each is linked to the big server's own 503s, known to the instant every
/// episode (summary.json's limits: `at_s`, `episodes_s`), and the full queue behind them to
/// the small server's removal before it, whose share the big one took.
#[test]
fn a_removal_without_a_cause_of_its_own_is_linked_to_the_removal_before_it() {
    let v = run(&load("farm-weights.toml", &["farm.servers[0].weight=1"])).incidents;
    let text = incidents::render(&v);
    let bigs: Vec<usize> = (0..v.len())
        .filter(|&i| v[i].kind == "event:lb_removed" && v[i].message.contains(": big:"))
        .collect();
    assert!(bigs.len() >= 2, "{text}");
    for &b in &bigs {
        let c = v[b].caused_by.expect("a cause");
        assert!(
            v[c].kind == "outcome:503_queue_full"
                && v[c].message.starts_with("big:")
                && v[c].time_s == v[b].time_s,
            "{text}"
        );
        let q = v[c].caused_by.expect("the full queue");
        assert_eq!(v[q].kind, "http_sys_queue_full", "{text}");
    }
    assert!(
        bigs.iter().any(|&b| {
            let q = v[v[b].caused_by.unwrap()].caused_by.unwrap();
            v[q].caused_by
                .is_some_and(|c| v[c].kind == "event:lb_removed" && v[c].message.contains("small"))
        }),
        "{text}"
    );
    assert!(text.contains("← lb removed: small"));
}

/// A `--lowest` search over a whole-number setting: the picture marks the lowest passing
/// value (not the highest value tried) and ticks the axis at whole numbers only.
#[test]
fn a_lowest_search_marks_its_answer_on_whole_number_ticks() {
    let dir = tempfile::tempdir().unwrap();
    let cap = r#"{"vary":"farm.servers[0].count","unit":"","capacity":null,"capacity_setting":null,
      "goal":"lowest","answer":5.0,"answer_setting":"5",
      "interval":[null,null],"crossing_estimate":null,"crossing_ci":[null,null],
      "slos":[{"text":"503_rate<0.1%","metric":"503_rate","op":"<","threshold":0.001}],
      "broke_first":null,
      "lower_edge":{"lowest_passing":5.0,"lowest_passing_setting":"5","highest_failing_below":4.0,"failing_there":["503_rate<0.1%"]},
      "evaluations":[{"value":1.0,"setting":"1","pass":false,"slos":[{"slo":"503_rate<0.1%","mean":0.98,"ci_low":0.98,"ci_high":0.98,"holds":false}]},
                     {"value":4.0,"setting":"4","pass":false,"slos":[{"slo":"503_rate<0.1%","mean":0.8,"ci_low":0.8,"ci_high":0.8,"holds":false}]},
                     {"value":5.0,"setting":"5","pass":true,"slos":[{"slo":"503_rate<0.1%","mean":0.0,"ci_low":0.0,"ci_high":0.0,"holds":true}]},
                     {"value":12.0,"setting":"12","pass":true,"slos":[{"slo":"503_rate<0.1%","mean":0.0,"ci_low":0.0,"ci_high":0.0,"holds":true}]}]}"#;
    std::fs::write(dir.path().join("capacity.json"), cap).unwrap();
    let files = viz::cli::plot_dir(dir.path(), Some(Format::Svg), None, None, None).unwrap();
    let svg = std::fs::read_to_string(&files[0]).unwrap();
    assert_well_formed_xml(&svg);
    assert!(svg.contains("lowest passing 5"), "the answer is marked");
    assert!(!svg.contains("capacity 12"));
    // Tick labels: "4" and "8" on the servers axis, never "4.0" (the y axis has 0.0, 10.0, …).
    let texts: Vec<&str> = svg
        .split("</text>")
        .filter_map(|t| t.rsplit('>').next())
        .map(str::trim)
        .collect();
    assert!(texts.contains(&"4") && texts.contains(&"8"), "{texts:?}");
    assert!(
        !texts.contains(&"4.0") && !texts.contains(&"8.0"),
        "{texts:?}"
    );
    let html = w3sim::viz::report::sweep_report(dir.path(), None).unwrap();
    assert!(html.contains("w3sim capacity search"));
    assert!(html.contains("the lowest value passing every SLO"));
}

/// A farm's perfmon export holds every server's own counters under its name as the
/// machine, as a capture of several servers would, besides the farm's.
#[test]
fn a_farms_perfmon_export_holds_every_servers_counters() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("farm");
    let f = experiment("farm-cascade.toml");
    let (ok, _, err) = w3sim(&[
        "run",
        f.to_str().unwrap(),
        "--duration",
        "12s",
        "--warmup",
        "0s",
        "-q",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let (ok, _, err) = w3sim(&["export-perfmon", dir.to_str().unwrap()]);
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(dir.join("perfmon.csv")).unwrap();
    let header = text.lines().next().unwrap();
    for c in [
        "\"\\\\W3SIM\\w3sim\\Farm User Requests/sec\"",
        "\"\\\\web1\\Processor(_Total)\\% Processor Time\"",
        "\"\\\\web4\\ASP.NET\\Requests Queued\"",
        "\"\\\\web2\\HTTP Service Request Queues(DefaultAppPool)\\CurrentQueueSize\"",
    ] {
        assert!(header.contains(c), "header lacks {c}");
    }
    let real = perfmon::read_perfmon_csv(&dir.join("perfmon.csv")).unwrap();
    let per_server = viz::read_timeseries(&dir.join("timeseries.csv")).unwrap();
    let web1 = viz::read_timeseries(&dir.join("servers/web1/timeseries.csv")).unwrap();
    assert_eq!(
        real.counters.len(),
        per_server.columns.len() - 1 + 4 * (web1.columns.len() - 1)
    );
    // `compare` reads a capture of several servers the same way: each server's counters
    // against its own, by machine name; the farm's own export matches itself exactly.
    let sim = viz::cli::run_series(&dir).unwrap();
    let errs = perfmon::compare(&sim, &real);
    assert_eq!(errs.len(), real.counters.len());
    assert!(errs.iter().all(|e| e.max_abs_error < 1e-9));
    let cpu2 = errs
        .iter()
        .find(|e| e.real_path.contains("\\\\web2\\Processor(_Total)"))
        .unwrap();
    assert_eq!(
        cpu2.counter,
        "\\\\web2\\Processor(_Total)\\% Processor Time"
    );
}

/// `explain` and `summary.json` agree on when a limit was first reached: the time series only
/// shows it at the next sample, so the detector takes the exact time from the run's limits.
#[test]
fn a_limits_first_incident_has_its_exact_time() {
    let s = run(&load("queue-full-burst.toml", &[]));
    let first = s.first_limit.clone().expect("a limit");
    assert_eq!(first.limit, "http_sys.queue_length");
    assert!(first.at_s.fract() != 0.0, "{first:?}");
    for kind in ["http_sys_queue_full", "outcome:503_queue_full"] {
        let i = s.incidents.iter().find(|i| i.kind == kind).expect(kind);
        assert_eq!(i.time_s, first.at_s, "{kind}");
    }
    // From the run's directory: the same, read from summary.json.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    run_dir(&load("queue-full-burst.toml", &[]), &dir);
    let v = incidents::detect_run_dir(&dir).unwrap();
    let i = v.iter().find(|i| i.kind == "http_sys_queue_full").unwrap();
    assert_eq!(i.time_s, first.at_s);
    // Without summary.json (a time series copied alone), the sample's time.
    std::fs::remove_file(dir.join("summary.json")).unwrap();
    let v = incidents::detect_run_dir(&dir).unwrap();
    let i = v.iter().find(|i| i.kind == "http_sys_queue_full").unwrap();
    assert_eq!(i.time_s, first.at_s.ceil());
}

/// A sweep axis with units is drawn in its kind's base unit, so that values written in
/// different units lie where they belong (`2m` after `30s`, not at 2).
#[test]
fn axis_values_with_units_are_placed_in_their_base_unit() {
    use w3sim::viz::sweep_plot::axis_number;
    assert_eq!(axis_number("30s"), Some(30.0));
    assert_eq!(axis_number("2m"), Some(120.0));
    assert_eq!(axis_number("1h"), Some(3600.0));
    assert_eq!(axis_number("\"500ms\""), Some(0.5));
    assert_eq!(axis_number("6000/min"), Some(100.0));
    assert_eq!(axis_number("200/s"), Some(200.0));
    assert_eq!(axis_number("1MB"), Some(1_048_576.0));
    assert_eq!(axis_number("1000"), Some(1000.0));
    assert_eq!(axis_number("0.5"), Some(0.5));
    assert_eq!(axis_number("least_connections"), None);
}
