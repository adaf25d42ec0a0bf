//! AFD loopback traffic on the kernel's delayed work queue and its system worker threads.
//!
//! **Models** (DOMAIN.md §2.1, seed 000): loopback traffic (127.0.0.1 or any local IP)
//! is not sent down to a NIC; AFD queues a work item on the kernel's *delayed work
//! queue*, and a system worker thread (`nt!ExpWorkerThread`) later runs the AFD routine
//! that completes the hop. The system creates up to 16 dynamic worker threads for that
//! queue, running at priority 12 ([`crate::cpu::Priority::KERNEL_DELAYED_WORKER`]); the
//! registry value `Session Manager\Executive\AdditionalDelayedWorkerThreads` adds more.
//! In seed 000 a third-party firewall driver posted many delayed work items whose
//! routine took one exclusive executive resource (`ExAcquireResourceExclusiveLite`,
//! thread state `WAIT: (WrResource)`): the lock capped the throughput of those items,
//! every worker thread ended up blocked on it, and loopback items queued behind them
//! (`Network Interface(MS TCP Loopback interface)\Output Queue Length` spiking). Raising
//! `AdditionalDelayedWorkerThreads` did **not** help: more threads only meant more
//! waiters. The fix was the driver.
//!
//! **Fast path** (DOMAIN.md §2.2, seed 002): on Windows Server 2012+ a connection whose
//! both ends set `SIO_LOOPBACK_FAST_PATH` traverses the transport layer only, so a hop
//! is delivered at once, without a work item, unless a Windows Filtering Platform callout
//! is present for the flow, which silently forces the slow path.
//!
//! **Mechanics here**: one FIFO of work items (loopback hops and filter-driver items)
//! and `max_dynamic_workers + additional_delayed_worker_threads` worker threads. An idle
//! worker takes the head item. A loopback item asks the engine to run `work_item_cpu_ns`
//! of CPU at priority 12 ([`AfdEvent::Run`]); when the engine reports
//! [`Afd::cpu_done`], the hop is complete ([`AfdEvent::Delivered`]) and the worker takes
//! the next item. A filter item (its own Poisson stream, [`FilterDriver::items_per_s`])
//! takes a worker, then the single exclusive lock: if another item holds it, the worker
//! blocks (no CPU) in the lock's FIFO; the holder keeps it for `lock_hold_ns` of elapsed
//! time (not CPU), then releases it and its worker goes idle. With
//! `items_per_s × lock_hold_ns > 1 s` the lock saturates and the workers fill with waiters.
//!
//! **Defaults and sources**: 16 dynamic workers and priority 12 from the NetTracer blog
//! (seed 000, a Windows Server 2003 case; ⚠ not confirmed for 2008 R2's stack) and the
//! `WORK_QUEUE_TYPE` documentation; `AdditionalDelayedWorkerThreads` 0 (registry value
//! absent). `work_item_cpu_ns` = 20 µs is an **assumption** (no source measures the AFD
//! routine's cost); the filter's rate and hold are scenario inputs.
//!
//! **Leaves out**: the delay of creating a dynamic worker (workers are all available at
//! once), dynamic workers exiting when idle, the CPU the filter items use (they only hold
//! the lock), priority boosts on lock hand-off (the dump shows priority 13), the other
//! work queues (critical, hypercritical), flow control of the fast path (a send blocks
//! while the receiver's buffer is full) and the TCP processing cost of a hop itself.

use std::collections::VecDeque;

use rand::Rng;
use rand_distr::{Distribution, Exp1};

use crate::effects::Effects;
use crate::stat::{Counter, Gauge};
use crate::time::{MICROS, SimTime};

/// A third-party filter (e.g. firewall) driver posting delayed work items that take one
/// exclusive executive resource (seed 000).
#[derive(Clone, Debug, PartialEq)]
pub struct FilterDriver {
    /// Work items the driver posts per second (a Poisson stream).
    pub items_per_s: f64,
    /// Each item holds the exclusive resource this long: elapsed time, or, with
    /// `lock_hold_cpu`, processor time of its worker at priority 12 (so higher-priority CPU
    /// load on the machine stretches the holds: seed 000's busy CPU).
    pub lock_hold_ns: u64,
    /// The holder works on a processor while it holds the resource (see `lock_hold_ns`).
    pub lock_hold_cpu: bool,
}

/// Settings of the delayed work queue and the loopback path.
#[derive(Clone, Debug, PartialEq)]
pub struct AfdConfig {
    /// Dynamic delayed worker threads the system may create (16).
    pub max_dynamic_workers: u32,
    /// `HKLM\SYSTEM\CurrentControlSet\Control\Session Manager\Executive\AdditionalDelayedWorkerThreads` (0).
    pub additional_delayed_worker_threads: u32,
    /// CPU one loopback work item costs its worker thread, ns (assumption: 20 µs).
    pub work_item_cpu_ns: u64,
    /// Loopback hops are work items for the delayed worker threads (seed 000, on Windows
    /// Server 2003). ⚠ DOMAIN §2.1: not confirmed for 2008 R2's TCP/IP stack; false: hops
    /// are delivered at once, as on the fast path.
    pub work_items: bool,
    /// The serving end of the loopback connections sets `SIO_LOOPBACK_FAST_PATH` (Server
    /// 2012+); each connection uses the fast path only if its client end does too.
    pub fast_path: bool,
    /// A WFP callout has connection data for the flows: the fast path is not used.
    pub wfp_callout_present: bool,
    /// A filter driver competing for the worker threads, if any.
    pub filter: Option<FilterDriver>,
}

impl Default for AfdConfig {
    fn default() -> Self {
        Self {
            max_dynamic_workers: 16,
            additional_delayed_worker_threads: 0,
            work_item_cpu_ns: 20 * MICROS,
            work_items: true,
            fast_path: false,
            wfp_callout_present: false,
            filter: None,
        }
    }
}

impl AfdConfig {
    /// Worker threads of the delayed work queue.
    pub fn workers(&self) -> u32 {
        self.max_dynamic_workers
            .saturating_add(self.additional_delayed_worker_threads)
    }

    /// Whether loopback hops bypass the work queue.
    pub fn uses_fast_path(&self) -> bool {
        self.fast_path && !self.wfp_callout_present
    }
}

/// Timers of the AFD model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfdTimer {
    /// The filter driver posts its next work item.
    FilterItem,
    /// The filter item on `worker` releases the exclusive resource.
    LockRelease { worker: u32 },
}

/// What the engine must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfdEvent {
    /// Run `cpu_ns` of CPU for `worker` at [`crate::cpu::Priority::KERNEL_DELAYED_WORKER`],
    /// then call [`Afd::cpu_done`].
    Run {
        worker: u32,
        token: u64,
        cpu_ns: u64,
    },
    /// The loopback hop `token` is complete.
    Delivered { token: u64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Item {
    Loopback(u64),
    Filter,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Worker {
    Idle,
    Running(u64),
    WaitingLock,
    HoldingLock,
}

/// The delayed work queue, its worker threads and the filter's exclusive resource.
#[derive(Debug)]
pub struct Afd<R> {
    cfg: AfdConfig,
    rng: R,
    queue: VecDeque<Item>,
    /// Loopback items in `queue`.
    loopback_queued: u64,
    workers: Vec<Worker>,
    /// Idle workers, lowest id taken first.
    idle: Vec<u32>,
    lock_holder: Option<u32>,
    lock_waiters: VecDeque<u32>,
    events: VecDeque<AfdEvent>,
    /// Work items (loopback and filter) waiting for a worker thread.
    pub delayed_work_queue_length: Gauge,
    /// `Network Interface(MS TCP Loopback interface)\Output Queue Length`: loopback
    /// items waiting for a worker thread (filter items excluded).
    pub output_queue_length: Gauge,
    /// Worker threads not idle (running, waiting on or holding the lock).
    pub workers_busy: Gauge,
    /// Worker threads blocked on the filter's exclusive resource (`WrResource`).
    pub workers_waiting_on_lock: Gauge,
    /// Loopback hops completed (fast path included).
    pub items_delivered: Counter,
    /// Work items the filter driver posted.
    pub filter_items: Counter,
}

impl<R: Rng> Afd<R> {
    pub fn new(cfg: AfdConfig, rng: R) -> Self {
        let n = cfg.workers();
        Self {
            workers: vec![Worker::Idle; n as usize],
            idle: (0..n).rev().collect(),
            cfg,
            rng,
            queue: VecDeque::new(),
            loopback_queued: 0,
            lock_holder: None,
            lock_waiters: VecDeque::new(),
            events: VecDeque::new(),
            delayed_work_queue_length: Gauge::new(),
            output_queue_length: Gauge::new(),
            workers_busy: Gauge::new(),
            workers_waiting_on_lock: Gauge::new(),
            items_delivered: Counter::default(),
            filter_items: Counter::default(),
        }
    }

    pub fn config(&self) -> &AfdConfig {
        &self.cfg
    }

    /// Arms the filter driver's stream of work items (no-op without a filter).
    pub fn start(&mut self, now: SimTime, fx: &mut impl Effects<AfdTimer>) {
        self.schedule_filter(now, fx);
    }

    fn schedule_filter(&mut self, now: SimTime, fx: &mut impl Effects<AfdTimer>) {
        let Some(rate) = self.cfg.filter.as_ref().map(|f| f.items_per_s) else {
            return;
        };
        if rate.is_finite() && rate > 0.0 {
            let e: f64 = Exp1.sample(&mut self.rng);
            fx.at(
                now.saturating_add(crate::time::from_secs(e / rate)),
                AfdTimer::FilterItem,
            );
        }
    }

    /// A loopback hop: queues a work item (or, on the fast path, delivers at once).
    /// `client_fast_path`: the connection's other end set `SIO_LOOPBACK_FAST_PATH` too (the
    /// option is per socket and needs both ends; seed 002).
    pub fn submit(
        &mut self,
        now: SimTime,
        token: u64,
        client_fast_path: bool,
        fx: &mut impl Effects<AfdTimer>,
    ) {
        if !self.cfg.work_items || (client_fast_path && self.cfg.uses_fast_path()) {
            self.items_delivered.inc();
            self.events.push_back(AfdEvent::Delivered { token });
            return;
        }
        self.queue.push_back(Item::Loopback(token));
        self.loopback_queued += 1;
        self.dispatch(now, fx);
    }

    /// The engine finished the CPU of `worker`'s loopback item.
    pub fn cpu_done(&mut self, now: SimTime, worker: u32, fx: &mut impl Effects<AfdTimer>) {
        if self.workers.get(worker as usize) == Some(&Worker::HoldingLock) {
            // A filter item's work under the lock is done (`lock_hold_cpu`).
            return self.on_timer(now, AfdTimer::LockRelease { worker }, fx);
        }
        let Some(Worker::Running(token)) = self.workers.get(worker as usize).copied() else {
            debug_assert!(false, "cpu_done for worker {worker} that is not running");
            return;
        };
        self.items_delivered.inc();
        self.events.push_back(AfdEvent::Delivered { token });
        self.release_worker(worker);
        self.dispatch(now, fx);
    }

    pub fn on_timer(&mut self, now: SimTime, t: AfdTimer, fx: &mut impl Effects<AfdTimer>) {
        match t {
            AfdTimer::FilterItem => {
                self.filter_items.inc();
                self.queue.push_back(Item::Filter);
                self.schedule_filter(now, fx);
                self.dispatch(now, fx);
            }
            AfdTimer::LockRelease { worker } => {
                if self.lock_holder != Some(worker) {
                    debug_assert!(false, "lock release by {worker}, not the holder");
                    return;
                }
                self.lock_holder = None;
                self.release_worker(worker);
                if let Some(next) = self.lock_waiters.pop_front() {
                    self.grant_lock(now, next, fx);
                }
                self.dispatch(now, fx);
            }
        }
    }

    /// The next thing the engine must do.
    pub fn poll(&mut self) -> Option<AfdEvent> {
        self.events.pop_front()
    }

    /// Worker threads of the delayed work queue.
    pub fn workers(&self) -> u32 {
        self.workers.len() as u32
    }

    fn release_worker(&mut self, worker: u32) {
        self.workers[worker as usize] = Worker::Idle;
        self.idle.push(worker);
    }

    fn grant_lock(&mut self, now: SimTime, worker: u32, fx: &mut impl Effects<AfdTimer>) {
        let hold = self.cfg.filter.as_ref().map_or(0, |f| f.lock_hold_ns);
        let on_cpu = self.cfg.filter.as_ref().is_some_and(|f| f.lock_hold_cpu);
        self.lock_holder = Some(worker);
        self.workers[worker as usize] = Worker::HoldingLock;
        if on_cpu {
            self.events.push_back(AfdEvent::Run {
                worker,
                token: u64::MAX,
                cpu_ns: hold,
            });
        } else {
            fx.at(now.saturating_add(hold), AfdTimer::LockRelease { worker });
        }
    }

    /// Hands queued items to idle workers, then brings the gauges up to date (once per
    /// entry point, so same-instant transients do not show in the peaks).
    fn dispatch(&mut self, now: SimTime, fx: &mut impl Effects<AfdTimer>) {
        self.take_items(now, fx);
        let busy = self.workers.len() - self.idle.len();
        self.delayed_work_queue_length
            .set(now, self.queue.len() as u64);
        self.output_queue_length.set(now, self.loopback_queued);
        self.workers_busy.set(now, busy as u64);
        self.workers_waiting_on_lock
            .set(now, self.lock_waiters.len() as u64);
    }

    fn take_items(&mut self, now: SimTime, fx: &mut impl Effects<AfdTimer>) {
        while !self.queue.is_empty() {
            // Lowest idle id: keeps runs reproducible and worker ids compact.
            let Some((pos, _)) = self.idle.iter().enumerate().min_by_key(|(_, w)| **w) else {
                return;
            };
            let worker = self.idle.swap_remove(pos);
            let item = self.queue.pop_front().expect("queue not empty");
            match item {
                Item::Loopback(token) => {
                    self.loopback_queued -= 1;
                    self.workers[worker as usize] = Worker::Running(token);
                    self.events.push_back(AfdEvent::Run {
                        worker,
                        token,
                        cpu_ns: self.cfg.work_item_cpu_ns,
                    });
                }
                Item::Filter => {
                    if self.lock_holder.is_none() {
                        self.grant_lock(now, worker, fx);
                    } else {
                        self.workers[worker as usize] = Worker::WaitingLock;
                        self.lock_waiters.push_back(worker);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::effects::Recorder;
    use crate::time::{MILLIS, SECONDS};
    use rand::SeedableRng;
    use rand::rngs::Xoshiro256PlusPlus;

    type Model = Afd<Xoshiro256PlusPlus>;

    fn afd(cfg: AfdConfig) -> Model {
        Afd::new(cfg, Xoshiro256PlusPlus::seed_from_u64(7))
    }

    /// A tiny engine: unlimited CPUs (a worker's CPU ends `cpu_ns` after `Run`), loopback
    /// hops every `gap` ns until `until`. Returns (submit time, delivery time) per hop.
    fn run(m: &mut Model, gap: u64, until: SimTime) -> Vec<(SimTime, Option<SimTime>)> {
        run_from(m, gap, until, true)
    }

    /// `client_fast_path`: whether the hops' client sockets set SIO_LOOPBACK_FAST_PATH.
    fn run_from(
        m: &mut Model,
        gap: u64,
        until: SimTime,
        client_fast_path: bool,
    ) -> Vec<(SimTime, Option<SimTime>)> {
        let mut fx = Recorder::default();
        let mut cpu: Vec<(SimTime, u32)> = Vec::new();
        let mut hops: Vec<(SimTime, Option<SimTime>)> = Vec::new();
        m.start(0, &mut fx);
        let mut next_hop = 0;
        loop {
            let t_timer = fx.timers.iter().map(|(t, _)| *t).min().unwrap_or(u64::MAX);
            let t_cpu = cpu.iter().map(|(t, _)| *t).min().unwrap_or(u64::MAX);
            let now = t_timer.min(t_cpu).min(next_hop);
            if now > until {
                break;
            }
            if now == next_hop {
                m.submit(now, hops.len() as u64, client_fast_path, &mut fx);
                hops.push((now, None));
                next_hop += gap;
            } else if now == t_cpu {
                let i = cpu.iter().position(|(t, _)| *t == now).unwrap();
                let (_, w) = cpu.swap_remove(i);
                m.cpu_done(now, w, &mut fx);
            } else {
                let (at, t) = fx.pop_earliest().unwrap();
                m.on_timer(at, t, &mut fx);
            }
            while let Some(e) = m.poll() {
                match e {
                    AfdEvent::Run { worker, cpu_ns, .. } => cpu.push((now + cpu_ns, worker)),
                    AfdEvent::Delivered { token } => hops[token as usize].1 = Some(now),
                }
            }
        }
        hops
    }

    fn filter(items_per_s: f64) -> Option<FilterDriver> {
        Some(FilterDriver {
            items_per_s,
            lock_hold_ns: MILLIS,
            lock_hold_cpu: false,
        })
    }

    #[test]
    fn without_the_filter_hops_are_delivered_after_their_cpu() {
        let mut m = afd(AfdConfig::default());
        let hops = run(&mut m, 100 * MICROS, SECONDS);
        assert!(hops.len() > 9_000);
        for (s, d) in hops.iter().filter(|(s, _)| *s < SECONDS - MILLIS) {
            assert_eq!(*d, Some(s + 20 * MICROS));
        }
        assert_eq!(
            m.items_delivered.total(),
            hops.len() as u64 - 1,
            "the last is in flight"
        );
        assert_eq!(m.workers_busy.get(), 1);
        assert_eq!(m.delayed_work_queue_length.peak(), 0);
        assert_eq!(m.workers_busy.peak(), 1);
    }

    #[test]
    fn an_unsaturated_lock_barely_delays_loopback() {
        // 500/s × 1 ms = 0.5: the lock is busy half the time, workers are plentiful.
        let mut m = afd(AfdConfig {
            filter: filter(500.0),
            ..AfdConfig::default()
        });
        let hops = run(&mut m, MILLIS, 2 * SECONDS);
        assert!(m.filter_items.total() > 800);
        assert!(
            hops.iter()
                .filter(|(s, _)| *s < 2 * SECONDS - MILLIS)
                .all(|(s, d)| d.is_some_and(|d| d - s < MILLIS))
        );
        assert!(m.workers_busy.peak() < 16);
    }

    /// Mean delay of the hops submitted in the second before the last of the run
    /// (undelivered hops count up to the end of the run, so at least 1 s).
    fn late_delay(hops: &[(SimTime, Option<SimTime>)], end: SimTime) -> f64 {
        let late: Vec<u64> = hops
            .iter()
            .filter(|(s, _)| *s >= end - 2 * SECONDS && *s < end - SECONDS)
            .map(|(s, d)| d.unwrap_or(end) - s)
            .collect();
        late.iter().sum::<u64>() as f64 / late.len() as f64
    }

    #[test]
    fn a_saturated_lock_fills_the_workers_with_waiters_and_loopback_queues() {
        // 2000/s × 1 ms = 2: the lock serves half of what the driver posts.
        let mut m = afd(AfdConfig {
            filter: filter(2000.0),
            ..AfdConfig::default()
        });
        let end = 3 * SECONDS;
        let hops = run(&mut m, MILLIS, end);
        assert_eq!(m.workers_busy.get(), 16);
        assert_eq!(m.workers_waiting_on_lock.get(), 15, "one holds, 15 wait");
        assert!(m.output_queue_length.get() > 100, "loopback items queue");
        assert!(m.delayed_work_queue_length.get() > m.output_queue_length.get());
        assert!(late_delay(&hops, end) > 0.5 * SECONDS as f64);
    }

    #[test]
    fn additional_delayed_worker_threads_do_not_help_while_the_lock_is_the_bottleneck() {
        let end = 3 * SECONDS;
        let mut base = afd(AfdConfig {
            filter: filter(2000.0),
            ..AfdConfig::default()
        });
        let mut more = afd(AfdConfig {
            filter: filter(2000.0),
            additional_delayed_worker_threads: 16,
            ..AfdConfig::default()
        });
        let h_base = run(&mut base, MILLIS, end);
        let h_more = run(&mut more, MILLIS, end);
        assert_eq!(more.workers(), 32);
        assert_eq!(more.workers_waiting_on_lock.get(), 31);
        assert!(more.output_queue_length.get() > 100);
        let (d_base, d_more) = (late_delay(&h_base, end), late_delay(&h_more, end));
        assert!(d_more > 0.5 * SECONDS as f64, "{d_more}");
        assert!(d_more > 0.8 * d_base, "{d_base} vs {d_more}");
    }

    #[test]
    fn the_fast_path_bypasses_the_queue_unless_a_wfp_callout_is_present() {
        let end = 3 * SECONDS;
        let mut fast = afd(AfdConfig {
            filter: filter(2000.0),
            fast_path: true,
            ..AfdConfig::default()
        });
        let hops = run(&mut fast, MILLIS, end);
        assert!(hops.iter().all(|(s, d)| *d == Some(*s)));
        assert_eq!(fast.output_queue_length.peak(), 0);

        let mut wfp = afd(AfdConfig {
            filter: filter(2000.0),
            fast_path: true,
            wfp_callout_present: true,
            ..AfdConfig::default()
        });
        assert!(!wfp.config().uses_fast_path());
        let hops = run(&mut wfp, MILLIS, end);
        assert!(late_delay(&hops, end) > 0.5 * SECONDS as f64);
        assert!(wfp.output_queue_length.get() > 100);
    }

    /// The option is per socket and needs both ends: a client that does not set it keeps
    /// the work-item path even when the serving side sets it (seed 002).
    #[test]
    fn the_fast_path_needs_the_client_socket_to_opt_in_too() {
        let end = 3 * SECONDS;
        let mut m = afd(AfdConfig {
            filter: filter(2000.0),
            fast_path: true,
            ..AfdConfig::default()
        });
        assert!(m.config().uses_fast_path());
        let hops = run_from(&mut m, MILLIS, end, false);
        assert!(late_delay(&hops, end) > 0.5 * SECONDS as f64);
        assert!(m.output_queue_length.get() > 100);
    }
}
