//! The documented list of every setting: its unit, the Windows setting it models and
//! where its default comes from. `w3sim show-defaults` prints it with the defaults
//! read from [`Scenario::default`], so the two cannot drift apart (a test checks that
//! every key of the default scenario is documented here and nothing else is).

use super::Scenario;

/// Documentation of one setting.
#[derive(Clone, Copy, Debug)]
pub struct SettingDoc {
    /// Dotted key path; `[]` marks the elements of a list (`classes[].weight`).
    pub path: &'static str,
    /// Unit or accepted values.
    pub unit: &'static str,
    /// The Windows / .NET / IIS setting it models, or `-` for simulator settings.
    pub windows: &'static str,
    /// What it does and where its default comes from.
    pub doc: &'static str,
}

macro_rules! s {
    ($path:literal, $unit:literal, $win:literal, $doc:literal) => {
        SettingDoc {
            path: $path,
            unit: $unit,
            windows: $win,
            doc: $doc,
        }
    };
}

/// Every setting, in file order.
pub const SETTINGS: &[SettingDoc] = &[
    s!("name", "text", "-", "Short name used in outputs."),
    s!(
        "description",
        "text",
        "-",
        "What the scenario shows and which seed report it comes from."
    ),
    s!(
        "seed",
        "integer",
        "-",
        "Master seed; each component's random stream is derived from it and the component's name (common random numbers across what-if runs)."
    ),
    s!("duration", "duration", "-", "Simulated time to run."),
    s!(
        "warmup",
        "duration",
        "-",
        "Initial period excluded from latency, means and rates (counts in `requests` cover the whole run)."
    ),
    s!(
        "sample_interval",
        "duration (>= 1ms)",
        "perfmon sample interval",
        "Interval between rows of timeseries.csv; gauges are sampled at the end of each interval, rates averaged over it."
    ),
    s!(
        "load.mode",
        "open | closed",
        "-",
        "Open loop: arrivals at a rate regardless of responses. Closed loop: `users` users with `think_time`."
    ),
    s!(
        "load.arrivals",
        "poisson | constant",
        "-",
        "Spacing of open-loop arrivals."
    ),
    s!(
        "load.rate",
        "rate (/s, /min, /h)",
        "-",
        "Open-loop rate when no schedule is given. Default: seed 003's ~1000 requests/s per server."
    ),
    s!(
        "load.schedule",
        "list of { at = duration, rate = rate }",
        "-",
        "Open-loop rate over time; before the first point the rate is 0. Replaces `rate` when given."
    ),
    s!(
        "load.schedule_shape",
        "step | linear",
        "-",
        "Hold each point's rate (step) or ramp linearly to the next point."
    ),
    s!(
        "load.bursts",
        "list of { at = duration, count = integer, class = name }",
        "-",
        "Batches of simultaneous requests (e.g. the CLR reference's 300 work items at t = 0)."
    ),
    s!(
        "load.users",
        "integer",
        "-",
        "Closed loop: number of users."
    ),
    s!(
        "load.think_time",
        "duration distribution",
        "-",
        "Closed loop: time between the end of a user's request and its next one."
    ),
    s!("classes[].name", "text", "-", "Class name (unique)."),
    s!(
        "classes[].weight",
        "number >= 0",
        "-",
        "Share of arrivals relative to the other classes."
    ),
    s!(
        "classes[].handler",
        "sync",
        "-",
        "sync: the handler holds its worker thread through every step (async and sync-over-async come with the thread-pool issue)."
    ),
    s!(
        "classes[].service",
        "duration distribution",
        "-",
        "Shorthand for a single cpu step. Default class: seed 003's synchronous requests, 0–32 ms."
    ),
    s!(
        "classes[].steps",
        "list of { cpu = dist } | { wait = dist }",
        "-",
        "Handler steps in order: cpu demand, or time blocked (I/O, downstream call, lock)."
    ),
    s!(
        "cpu.logical_processors",
        "integer 1–4096",
        "Environment.ProcessorCount",
        "Logical processors. Default 16: seed 003's 8-core, 16-thread Xeon. Sets the thread pool's default minimum."
    ),
    s!(
        "http_sys.queue_length",
        "integer 10–65535",
        "applicationPools/add/@queueLength",
        "Requests HTTP.SYS queues for the pool before answering 503 QueueFull. Default 1000 (IIS 7+, DOMAIN §3.1)."
    ),
    s!(
        "http_sys.queue_counts_in_flight",
        "true | false",
        "KB 816995 accounting (DOMAIN §3.1 ⚠)",
        "Count requests already handed to the worker process against queueLength (KB 816995, IIS 6) instead of kernel-queued requests only (the docs, default)."
    ),
    s!(
        "thread_pool.min_worker_threads",
        "integer (0 = logical processors)",
        "processModel/@minWorkerThreads, ThreadPool.SetMinThreads",
        "Threads created on demand with no delay. Default = logical processors (DOMAIN §5.2)."
    ),
    s!(
        "thread_pool.max_worker_threads",
        "integer (0 = 100 × logical processors)",
        "processModel/@maxWorkerThreads, ThreadPool.SetMaxThreads",
        "Upper bound on worker threads. Default: processModel autoConfig's 100 × CPUs (DOMAIN §4.4)."
    ),
];

/// Flattens a TOML value into (path, value) rows; list elements use `[]`.
fn flatten(prefix: &str, v: &toml::Value, out: &mut Vec<(String, String)>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&p, v, out);
            }
        }
        toml::Value::Array(a)
            if a.iter().all(|x| x.is_table()) && !a.is_empty() && !is_inline_list(prefix) =>
        {
            for x in a {
                flatten(&format!("{prefix}[]"), x, out);
            }
        }
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

/// Lists whose elements are documented as a whole (inline tables).
fn is_inline_list(path: &str) -> bool {
    ["load.schedule", "load.bursts", "classes[].steps"].contains(&path)
}

/// (path, default as TOML) for every key of the default scenario, deduplicated.
pub fn default_values() -> Vec<(String, String)> {
    let v = toml::Value::try_from(Scenario::default()).expect("default scenario serialises");
    let mut out = Vec::new();
    flatten("", &v, &mut out);
    let mut seen = std::collections::HashSet::new();
    out.retain(|(p, _)| seen.insert(p.clone()));
    out
}

/// The default of one documented setting, as TOML text (`[]` when the list is empty).
pub fn default_of(path: &str) -> String {
    default_values()
        .into_iter()
        .find(|(p, _)| p == path)
        .map(|(_, v)| v)
        .unwrap_or_else(|| match path {
            "load.schedule" | "load.bursts" => "[]".into(),
            "classes[].steps" => "[] (uses service)".into(),
            _ => "(none)".into(),
        })
}

/// The text `w3sim show-defaults` prints.
pub fn render() -> String {
    let mut s = String::new();
    for d in SETTINGS {
        s.push_str(&format!("{} = {}\n", d.path, default_of(d.path)));
        s.push_str(&format!("    unit: {}\n", d.unit));
        if d.windows != "-" {
            s.push_str(&format!("    models: {}\n", d.windows));
        }
        s.push_str(&format!("    {}\n\n", d.doc));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_key_is_documented_and_nothing_else() {
        let documented: std::collections::HashSet<&str> = SETTINGS.iter().map(|d| d.path).collect();
        for (p, _) in default_values() {
            assert!(
                documented.contains(p.as_str()),
                "setting `{p}` has no entry in SETTINGS"
            );
        }
        let keys: std::collections::HashSet<String> =
            default_values().into_iter().map(|(p, _)| p).collect();
        for d in SETTINGS {
            let optional = ["load.schedule", "load.bursts", "classes[].steps"].contains(&d.path);
            assert!(
                optional || keys.contains(d.path),
                "SETTINGS documents `{}` which the scenario does not have",
                d.path
            );
        }
    }
}
