//! The application-pool lifecycle: idle timeout and cold start, overlapped and
//! non-overlapped recycles, drain limit, rapid-fail protection.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use w3sim_models::app_pool::{
    Admit, AppPool, AppPoolConfig, AppPoolEvent, AppPoolTimer, ExitReason, PoolState,
};
use w3sim_models::effects::Recorder;
use w3sim_models::time::SECONDS;

const MIN: u64 = 60 * SECONDS;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Arrive,
    Finish(u32),
    Timer(usize),
}

/// A tiny engine: arrivals, request ends (fixed service time) and the pool's timers.
struct Engine {
    pool: AppPool,
    fx: Recorder<AppPoolTimer>,
    timers: Vec<AppPoolTimer>,
    cal: BinaryHeap<Reverse<(u64, u64, Ev)>>,
    seq: u64,
    service: u64,
    now: u64,
    admits: Vec<(u64, Admit)>,
    events: Vec<(u64, AppPoolEvent)>,
    /// Requests still running per generation (abandoned ones are dropped).
    running: Vec<(u32, u64)>,
}

impl Engine {
    fn new(cfg: AppPoolConfig, service: u64) -> Self {
        let mut e = Self {
            pool: AppPool::new(cfg),
            fx: Recorder::default(),
            timers: Vec::new(),
            cal: BinaryHeap::new(),
            seq: 0,
            service,
            now: 0,
            admits: Vec::new(),
            events: Vec::new(),
            running: Vec::new(),
        };
        e.pool.start(0, &mut e.fx);
        e.drain();
        e
    }

    fn push(&mut self, t: u64, ev: Ev) {
        self.seq += 1;
        self.cal.push(Reverse((t, self.seq, ev)));
    }

    fn arrivals(&mut self, from: u64, to: u64, every: u64) {
        let mut t = from;
        while t < to {
            self.push(t, Ev::Arrive);
            t += every;
        }
    }

    fn drain(&mut self) {
        for (at, timer) in std::mem::take(&mut self.fx.timers) {
            self.timers.push(timer);
            let id = self.timers.len() - 1;
            self.push(at, Ev::Timer(id));
        }
        while let Some(ev) = self.pool.poll() {
            match ev {
                AppPoolEvent::ProcessReady {
                    generation,
                    released,
                } => {
                    for _ in 0..released {
                        self.push(self.now + self.service, Ev::Finish(generation));
                    }
                }
                AppPoolEvent::ProcessExiting { generation, reason }
                    if reason.abandons_requests() =>
                {
                    self.running.push((generation, 0));
                }
                _ => {}
            }
            self.events.push((self.now, ev));
        }
    }

    fn run_until(&mut self, end: u64) {
        while let Some(&Reverse((t, _, ev))) = self.cal.peek() {
            if t > end {
                break;
            }
            self.cal.pop();
            self.now = t;
            match ev {
                Ev::Arrive => {
                    let a = self.pool.request_arrived(t, &mut self.fx);
                    self.admits.push((t, a));
                    if let Admit::Take { generation } = a {
                        self.push(t + self.service, Ev::Finish(generation));
                    }
                }
                Ev::Finish(g) => {
                    if !self.running.iter().any(|&(dead, _)| dead == g) {
                        self.pool.request_finished(t, g, &mut self.fx);
                    }
                }
                Ev::Timer(id) => {
                    let timer = self.timers[id];
                    self.pool.on_timer(t, timer, &mut self.fx);
                }
            }
            self.drain();
        }
        self.now = end;
    }

    fn exits(&self) -> Vec<(u64, u32, ExitReason)> {
        self.events
            .iter()
            .filter_map(|&(t, e)| match e {
                AppPoolEvent::ProcessExiting { generation, reason } => {
                    Some((t, generation, reason))
                }
                _ => None,
            })
            .collect()
    }

    fn readies(&self) -> Vec<(u64, u32, u32)> {
        self.events
            .iter()
            .filter_map(|&(t, e)| match e {
                AppPoolEvent::ProcessReady {
                    generation,
                    released,
                } => Some((t, generation, released)),
                _ => None,
            })
            .collect()
    }
}

fn quiet() -> AppPoolConfig {
    AppPoolConfig {
        periodic_restart_ns: None,
        ..Default::default()
    }
}

#[test]
fn a_lightly_loaded_pool_keeps_one_idle_timer_and_still_exits_20_min_after_its_last_request() {
    // One 1 ms request every 100 ms for 30 minutes: the process runs out of requests
    // 18,000 times, yet at most one idle timer is pending, and it exits 20 minutes after
    // the last request ended, not earlier.
    let mut e = Engine::new(quiet(), 1_000_000);
    let last = 30 * MIN;
    e.arrivals(0, last, 100_000_000);
    let mut pending_most = 0;
    let mut t = 0;
    while t < last {
        t += SECONDS;
        e.run_until(t);
        let pending = e
            .cal
            .iter()
            .filter(|Reverse((_, _, ev))| {
                matches!(ev, Ev::Timer(i) if matches!(e.timers[*i], AppPoolTimer::Idle { .. }))
            })
            .count();
        pending_most = pending_most.max(pending);
    }
    assert_eq!(pending_most, 1);
    let idle_from = last - 100_000_000 + 1_000_000;
    e.run_until(idle_from + 20 * MIN - 1);
    assert_eq!(e.pool.state(), PoolState::Running);
    e.run_until(idle_from + 20 * MIN);
    assert_eq!(
        e.exits(),
        vec![(idle_from + 20 * MIN, 1, ExitReason::IdleTimeout)]
    );
    assert!(e.timers.len() < 200, "{} timers asked for", e.timers.len());
}

#[test]
fn idle_timeout_exits_and_the_next_request_cold_starts() {
    let mut e = Engine::new(quiet(), SECONDS);
    assert_eq!(e.pool.state(), PoolState::Stopped);
    // First request: cold start, it and one more wait; both are handed over at 5 s.
    e.push(0, Ev::Arrive);
    e.push(2 * SECONDS, Ev::Arrive);
    e.push(5 * SECONDS + 1, Ev::Arrive);
    e.run_until(5 * SECONDS + 1);
    assert_eq!(e.admits[0].1, Admit::Wait);
    assert_eq!(e.admits[1].1, Admit::Wait);
    assert_eq!(e.admits[2].1, Admit::Take { generation: 1 });
    assert_eq!(e.readies(), vec![(5 * SECONDS, 1, 2)]);
    // The last request ends at 6 s + 1 ns; the process exits exactly 20 min later.
    let idle_from = 6 * SECONDS + 1;
    e.run_until(idle_from + 20 * MIN - 1);
    assert_eq!(e.pool.state(), PoolState::Running);
    e.run_until(idle_from + 20 * MIN);
    assert_eq!(e.pool.state(), PoolState::Stopped);
    assert_eq!(
        e.exits(),
        vec![(idle_from + 20 * MIN, 1, ExitReason::IdleTimeout)]
    );
    assert_eq!(e.pool.recycles_idle_timeout.total(), 1);
    assert_eq!(e.pool.current_worker_processes.get(), 0);
    // The next request waits for a new process: ready cold_start later.
    let t = 40 * MIN;
    e.push(t, Ev::Arrive);
    e.run_until(t);
    assert_eq!(e.admits.last().unwrap().1, Admit::Wait);
    assert_eq!(e.pool.state(), PoolState::Starting);
    e.run_until(t + 5 * SECONDS);
    assert_eq!(e.readies().last(), Some(&(t + 5 * SECONDS, 2, 1)));
    assert_eq!(e.pool.starts.total(), 2);
}

#[test]
fn a_request_arriving_before_the_timeout_keeps_the_process() {
    let mut e = Engine::new(quiet(), SECONDS);
    e.arrivals(0, 2 * 3600 * SECONDS, 19 * MIN);
    e.run_until(2 * 3600 * SECONDS);
    assert!(e.exits().is_empty());
    assert_eq!(e.pool.starts.total(), 1);
}

#[test]
fn periodic_recycle_overlaps_without_refusing_or_queueing() {
    let cfg = AppPoolConfig {
        periodic_restart_ns: Some(60 * MIN),
        idle_timeout_ns: None,
        start_mode_always_running: true,
        ..Default::default()
    };
    let mut e = Engine::new(cfg, 3 * SECONDS);
    e.arrivals(10 * SECONDS, 150 * MIN, SECONDS);
    e.run_until(60 * MIN + 2 * SECONDS);
    assert_eq!(e.pool.state(), PoolState::Recycling);
    assert_eq!(e.pool.current_generation(), Some(1)); // the old process still serves
    e.run_until(150 * MIN);
    assert!(
        e.admits
            .iter()
            .all(|&(_, a)| matches!(a, Admit::Take { .. }))
    );
    // Process 1 started at 0 (AlwaysRunning): recycled at 60 min, process 2 ready at
    // 60 min 5 s, process 1 exits when its last request (arrived at 60 min 5 s − 1 s) ends.
    let ready2 = 60 * MIN + 5 * SECONDS;
    assert!(e.readies().contains(&(ready2, 2, 0)));
    let old_exit = e.exits()[0];
    assert_eq!(old_exit.1, 1);
    assert_eq!(old_exit.2, ExitReason::PeriodicRecycle);
    assert!(old_exit.0 > ready2 && old_exit.0 <= ready2 + 3 * SECONDS);
    // Requests after the new one is ready go to it; before, to the old one.
    for &(t, a) in &e.admits {
        let Admit::Take { generation } = a else {
            unreachable!()
        };
        // (An arrival at the very instant of readiness is filed before the ready timer.)
        if t <= 60 * MIN + 5 * SECONDS {
            assert_eq!(generation, 1, "at {t}");
        } else if t <= 120 * MIN + 5 * SECONDS {
            assert_eq!(generation, 2, "at {t}");
        }
    }
    // Process 2 recycles 60 min after its own start.
    assert_eq!(e.exits()[1].1, 2);
    assert_eq!(e.pool.recycles_periodic.total(), 2);
    assert_eq!(e.pool.total_app_pool_recycles.total(), 2);
    assert_eq!(e.pool.current_worker_processes.peak(), 2);
}

#[test]
fn scheduled_recycle_kills_a_process_still_busy_at_the_shutdown_time_limit() {
    let cfg = AppPoolConfig {
        scheduled_recycles_ns: vec![10 * MIN],
        idle_timeout_ns: None,
        periodic_restart_ns: None,
        ..Default::default()
    };
    let mut e = Engine::new(cfg, 200 * SECONDS);
    e.push(9 * MIN, Ev::Arrive); // cold start, ready at 9 min 5 s, runs until 12 min 25 s
    e.run_until(30 * MIN);
    let ready2 = 10 * MIN + 5 * SECONDS;
    assert_eq!(
        e.exits(),
        vec![(ready2 + 90 * SECONDS, 1, ExitReason::ShutdownTimeLimit)]
    );
    assert_eq!(e.pool.forced_shutdowns.total(), 1);
    assert_eq!(e.pool.recycles_scheduled.total(), 1);
    assert_eq!(e.pool.state(), PoolState::Running);
    assert_eq!(e.pool.current_generation(), Some(2));
}

#[test]
fn without_overlap_arrivals_wait_for_the_new_process() {
    let cfg = AppPoolConfig {
        scheduled_recycles_ns: vec![10 * MIN],
        overlapped_recycle: false,
        idle_timeout_ns: None,
        periodic_restart_ns: None,
        ..Default::default()
    };
    let mut e = Engine::new(cfg, 2 * SECONDS);
    e.arrivals(MIN, 20 * MIN, SECONDS);
    e.run_until(20 * MIN);
    // Old process drains its two running requests (ends 10 min + 1 s), exits, then the new
    // one starts and is ready 5 s later.
    let exit1 = 10 * MIN + SECONDS;
    assert_eq!(e.exits(), vec![(exit1, 1, ExitReason::ScheduledRecycle)]);
    let ready = e.readies();
    assert_eq!(ready[1].0, exit1 + 5 * SECONDS);
    assert_eq!(ready[1].1, 2);
    let waited = e
        .admits
        .iter()
        .filter(|&&(t, a)| (10 * MIN..11 * MIN).contains(&t) && a == Admit::Wait)
        .count();
    assert_eq!(waited as u32, ready[1].2);
    // 10:00 … 10:06 (the arrival at 10:06 is filed before the ready timer).
    assert_eq!(waited, 7);
    assert!(e.admits.iter().all(|&(_, a)| a != Admit::Offline));
}

fn crashing(crashes: Vec<u64>) -> Engine {
    let cfg = AppPoolConfig {
        crashes_ns: crashes,
        idle_timeout_ns: None,
        periodic_restart_ns: None,
        ..Default::default()
    };
    let mut e = Engine::new(cfg, SECONDS / 2);
    e.arrivals(0, 20 * MIN, SECONDS);
    e
}

#[test]
fn five_crashes_in_five_minutes_take_the_pool_offline_until_enabled() {
    let mut e = crashing(vec![30 * SECONDS, MIN, 2 * MIN, 3 * MIN, 4 * MIN]);
    e.run_until(4 * MIN);
    assert_eq!(e.pool.state(), PoolState::RapidFailStopped);
    assert!(e.events.contains(&(4 * MIN, AppPoolEvent::Offline)));
    assert_eq!(e.pool.total_worker_process_failures.total(), 5);
    e.run_until(10 * MIN);
    let after: Vec<_> = e.admits.iter().filter(|&&(t, _)| t > 4 * MIN).collect();
    assert_eq!(after.len(), 360);
    assert!(after.iter().all(|&&(_, a)| a == Admit::Offline));
    assert_eq!(e.pool.offline.total(), 361); // and the arrival at 4 min itself, after the crash
    assert_eq!(e.pool.current_worker_processes.get(), 0);
    e.pool.enable(10 * MIN, &mut e.fx);
    e.drain();
    e.run_until(10 * MIN + 5 * SECONDS);
    let after: Vec<_> = e.admits.iter().filter(|&&(t, _)| t > 10 * MIN).collect();
    assert!(after.iter().all(|&&(_, a)| a == Admit::Wait));
    e.run_until(11 * MIN);
    assert_eq!(e.pool.state(), PoolState::Running);
    assert!(matches!(e.admits.last().unwrap().1, Admit::Take { .. }));
}

#[test]
fn four_crashes_or_five_spread_over_more_than_five_minutes_do_not() {
    for crashes in [
        vec![30 * SECONDS, MIN, 2 * MIN, 3 * MIN],
        vec![
            MIN,
            2 * MIN + 30 * SECONDS,
            4 * MIN,
            5 * MIN + 30 * SECONDS,
            7 * MIN,
        ],
    ] {
        let n = crashes.len() as u64;
        let mut e = crashing(crashes);
        e.run_until(20 * MIN);
        assert_eq!(e.pool.total_worker_process_failures.total(), n);
        assert!(e.admits.iter().all(|&(_, a)| a != Admit::Offline));
        assert_eq!(e.pool.state(), PoolState::Running);
        // Each crash: the running process dies, the next request cold-starts a new one.
        let crash_exits = e
            .exits()
            .iter()
            .filter(|x| x.2 == ExitReason::Crash)
            .count() as u64;
        assert_eq!(crash_exits, n);
        assert_eq!(e.pool.starts.total(), n + 1);
    }
}

#[test]
fn a_cold_start_longer_than_startup_time_limit_is_killed_and_counts_towards_rapid_fail() {
    // A 100 s warm-up against the 90 s startupTimeLimit: every process is killed at 90 s
    // and the next one started at once for the requests still waiting; none ever serves.
    // The crash (at 0:30, of the process still starting) and the startup failures count
    // alike: with a 10-minute interval the fifth failure (2:00, 3:30, 5:00, 6:30 after the
    // crash) stops the pool.
    let cfg = AppPoolConfig {
        cold_start_ns: 100 * SECONDS,
        crashes_ns: vec![30 * SECONDS],
        rapid_fail_interval_ns: 10 * MIN,
        idle_timeout_ns: None,
        periodic_restart_ns: None,
        ..Default::default()
    };
    let mut e = Engine::new(cfg.clone(), SECONDS / 2);
    e.arrivals(0, 20 * MIN, SECONDS);
    e.run_until(20 * MIN);
    let startup: Vec<u64> = e
        .exits()
        .iter()
        .filter(|x| x.2 == ExitReason::StartupTimeLimit)
        .map(|x| x.0)
        .collect();
    assert_eq!(
        startup,
        vec![120 * SECONDS, 210 * SECONDS, 300 * SECONDS, 390 * SECONDS]
    );
    assert_eq!(e.pool.startup_failures.total(), 4);
    assert_eq!(e.pool.total_worker_process_failures.total(), 5);
    assert_eq!(e.pool.state(), PoolState::RapidFailStopped);
    assert!(e.readies().is_empty(), "no process ever took a request");

    // A limit above the warm-up: the process started after the crash is ready at 2:10.
    let mut e = Engine::new(
        AppPoolConfig {
            startup_time_limit_ns: 120 * SECONDS,
            ..cfg
        },
        SECONDS / 2,
    );
    e.arrivals(0, 5 * MIN, SECONDS);
    e.run_until(5 * MIN);
    assert_eq!(e.pool.startup_failures.total(), 0);
    assert_eq!(e.readies()[0].0, 130 * SECONDS);
}
