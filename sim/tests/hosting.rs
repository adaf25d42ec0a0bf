//! `aspnet.hosting`: System.Web's ASP.NET (the .NET Framework's integrated pipeline, with
//! aspnet.config's throttles, `requestQueueLimit`, `executionTimeout`'s abort and InProc
//! session locks) or ASP.NET Core in process (none of them). The runtime chooses it unless
//! it is set: `net48` → System.Web, `net6`/`net8` → ASP.NET Core.

mod common;

use common::*;
use w3sim::scenario::Hosting;

/// 300 requests at once, each holding its worker thread for 200 ms, against a pool of 400
/// threads, `requestQueueLimit` 50 under System.Web.
const BURST: &str = r#"
name = "burst"
duration = "20s"
[load]
rate = "10/s"
bursts = [ { at = "5s", count = 300 } ]
[[classes]]
name = "page"
handler = "sync"
steps = [ { cpu = "1ms" }, { wait = "200ms" } ]
[thread_pool]
min_worker_threads = 400
max_worker_threads = 400
"#;

fn try_load(text: &str, overrides: &[&str]) -> Result<w3sim::scenario::Scenario, String> {
    let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    w3sim::scenario::load::load_str("test.toml", text, &o).map_err(|e| e.to_string())
}

#[test]
fn the_runtime_chooses_the_hosting_unless_it_is_set() {
    for (rt, want) in [
        ("net48", Hosting::SystemWeb),
        ("net6", Hosting::AspnetCore),
        ("net8", Hosting::AspnetCore),
    ] {
        let s = load_text(BURST, &[&format!("thread_pool.runtime={rt}")]);
        assert_eq!(s.hosting(), want, "{rt}");
        let other = match want {
            Hosting::SystemWeb => "aspnet_core",
            Hosting::AspnetCore => "system_web",
        };
        let s = load_text(
            BURST,
            &[
                &format!("thread_pool.runtime={rt}"),
                &format!("aspnet.hosting={other}"),
            ],
        );
        assert_ne!(s.hosting(), want, "{rt} with hosting {other}");
    }
}

#[test]
fn request_queue_limit_refuses_under_system_web_only() {
    // System.Web: the burst passes requestQueueLimit 50 and 250 get 503 Server Too Busy.
    let web = run(&load_text(BURST, &["aspnet.request_queue_limit=50"]));
    let refused = outcome(&web, "503_server_too_busy");
    assert!((250..260).contains(&refused), "{refused}");
    assert_eq!(
        web.first_limit.as_ref().map(|l| l.limit.as_str()),
        Some("aspnet.request_queue_limit")
    );
    // The same on net6 is an error: ASP.NET Core has no requestQueueLimit.
    let e = try_load(
        BURST,
        &["thread_pool.runtime=net6", "aspnet.request_queue_limit=50"],
    )
    .unwrap_err();
    assert!(
        e.contains("aspnet.request_queue_limit")
            && e.contains("ASP.NET Core in process")
            && e.contains("the default for thread_pool.runtime = \"net6\"")
            && e.contains("--set aspnet.hosting=system_web"),
        "{e}"
    );
    // ASP.NET Core serves the whole burst (the pool holds it); System.Web on net6's pool,
    // asked for, refuses as on net48.
    let core = run(&load_text(BURST, &["thread_pool.runtime=net6"]));
    assert_eq!(outcome(&core, "503_server_too_busy"), 0);
    assert_eq!(core.requests.failed, 0, "{:?}", core.outcomes);
    assert!(outcome(&core, "ok") >= 500);
    let what_if = run(&load_text(
        BURST,
        &[
            "thread_pool.runtime=net6",
            "aspnet.hosting=system_web",
            "aspnet.request_queue_limit=50",
        ],
    ));
    assert!((250..260).contains(&outcome(&what_if, "503_server_too_busy")));
    // The pipeline itself ignores System.Web's throttles under ASP.NET Core (a scenario
    // built in code, which no file check sees).
    let mut built = load_text(BURST, &["aspnet.request_queue_limit=50"]);
    built.aspnet.hosting = Some(Hosting::AspnetCore);
    let s = run(&built);
    assert_eq!(outcome(&s, "503_server_too_busy"), 0);
    assert_eq!(s.requests.failed, 0);
}

/// A report whose query never returns within the run.
const HUNG: &str = r#"
name = "hung"
duration = "200s"
[load]
rate = "1/s"
bursts = [ { at = "1s", count = 1, class = "report" } ]
[[classes]]
name = "page"
handler = "sync"
steps = [ { cpu = "1ms" } ]
[[classes]]
name = "report"
handler = "sync"
weight = 0
steps = [ { wait = "1000s" } ]
"#;

#[test]
fn execution_timeout_aborts_under_system_web_and_never_under_aspnet_core() {
    let web = run(&load_text(HUNG, &[]));
    assert!(
        outcome(&web, "500_request_timed_out") >= 1,
        "{:?}",
        web.outcomes
    );
    assert!(web.request_timeout.is_some());
    for rt in ["net6", "net8"] {
        let core = run(&load_text(HUNG, &[&format!("thread_pool.runtime={rt}")]));
        assert_eq!(outcome(&core, "500_request_timed_out"), 0, "{rt}");
        assert!(core.request_timeout.is_none(), "{rt}: no timeout manager");
        assert!(
            core.requests.in_flight >= 1,
            "{rt}: the hung report is still running"
        );
    }
    let e = try_load(
        HUNG,
        &["thread_pool.runtime=net8", "aspnet.execution_timeout=30s"],
    )
    .unwrap_err();
    assert!(
        e.contains("aspnet.execution_timeout") && e.contains("Thread.Abort"),
        "{e}"
    );
}

#[test]
fn session_locks_are_system_webs() {
    let text = format!("{BURST}\n[session_state]\nsessions = 1\n").replace(
        "steps = [ { cpu = \"1ms\" }, { wait = \"200ms\" } ]",
        "steps = [ { cpu = \"1ms\" }, { wait = \"200ms\" } ]\nenable_session_state = true",
    );
    // System.Web: one session, so its requests run one at a time (each polls the lock).
    let web = run(&load_text(&text, &[]));
    assert!(web.latency_ms.all.p99 > 5_000.0, "{:?}", web.latency_ms.all);
    // A file that asks for ASP.NET Core and sessions is refused, each key named.
    let core = text.replace("[thread_pool]", "[thread_pool]\nruntime = \"net6\"");
    let e = try_load(&core, &[]).unwrap_err();
    assert!(
        e.contains("enable_session_state") && e.contains("do not lock"),
        "{e}"
    );
    assert!(e.contains("session_state.sessions"), "{e}");
    // An override that makes the application ASP.NET Core makes them moot (accepted, as
    // every override that makes a file's key moot): nothing locks.
    let moot = run(&load_text(&text, &["thread_pool.runtime=net6"]));
    assert!(
        moot.latency_ms.all.p99 < 1_000.0,
        "{:?}",
        moot.latency_ms.all
    );
}

#[test]
fn check_says_which_framework_runs_the_application() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("burst.toml");
    std::fs::write(&f, BURST).unwrap();
    let web = w3sim_ok(["check".as_ref(), f.as_os_str()]);
    assert!(!web.contains("ASP.NET Core"), "{web}");
    assert!(web.contains("executionTimeout 110s"), "{web}");
    let core = w3sim_ok([
        "check".as_ref(),
        f.as_os_str(),
        "--set".as_ref(),
        "thread_pool.runtime=net8".as_ref(),
    ]);
    assert!(
        core.contains(
            "application: ASP.NET Core in process (the default for thread_pool.runtime = net8)"
        ),
        "{core}"
    );
    assert!(!core.contains("executionTimeout 110s"), "{core}");
}

#[test]
fn a_run_directory_read_again_knows_which_limits_its_application_had() {
    use w3sim::incidents::Limits;
    for (over, limit) in [
        (vec!["thread_pool.runtime=net48"], 5000.0),
        (vec!["thread_pool.runtime=net6"], f64::INFINITY),
        (vec!["thread_pool.runtime=net8"], f64::INFINITY),
        (
            vec!["thread_pool.runtime=net6", "aspnet.hosting=system_web"],
            5000.0,
        ),
        (
            vec!["thread_pool.runtime=net48", "aspnet.hosting=aspnet_core"],
            f64::INFINITY,
        ),
    ] {
        let scn = load_text(BURST, &over);
        let from_file = Limits::from_scenario_toml(&scn.to_toml());
        let from_run = Limits::from_scenario(&scn);
        assert_eq!(from_file.request_queue_limit, limit, "{over:?}");
        assert_eq!(from_run.request_queue_limit, limit, "{over:?}");
        assert_eq!(
            from_file.aspnet_concurrency, from_run.aspnet_concurrency,
            "{over:?}"
        );
    }
}
