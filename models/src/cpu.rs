//! The machine's logical processors, shared by everything that runs on it.
//!
//! **Models**: the Windows scheduler as seen from far enough away that individual
//! dispatch decisions blur into rates (a fluid model):
//!
//! * **Strict priority.** Work at DPC/ISR level (DISPATCH_LEVEL and above, DOMAIN §1:
//!   receive DPCs pre-empt every thread) comes first, then thread priorities 31..0. A
//!   runnable thread of a higher priority always pre-empts a lower one.
//! * **Round robin within a priority** becomes generalised processor sharing: at a
//!   level with `n` runnable threads and `A` processors left over by the levels above,
//!   every thread there progresses at `min(1, A / n)` processors; a thread never uses
//!   more than one processor; the next level down gets `A − min(n, A)` processors.
//! * **Context switches.** Each thread that becomes runnable (wakes, is submitted,
//!   resumes) pays one switch onto a processor, and each thread that stops (blocks,
//!   finishes, is suspended or cancelled) costs one switch off it; while a level has
//!   more runnable threads than the processors it gets, each of its processors also
//!   switches at every quantum expiry. A switch costs `context_switch_cost_ns` of
//!   processor time, so the capacity left for the jobs shrinks as switching grows.
//!   Every switch is counted in [`Cpu::context_switches`] (`System\Context Switches/sec`).
//!   DPCs are not threads: DPC-level work never switches.
//!
//! **Seeds**: 000 (a CPU kept busy by priority ≥ 13 work or DPCs starves the
//! priority-12 kernel delayed worker threads that carry loopback work items, DOMAIN
//! §2.1, so loopback calls stall); 003 (hundreds of thread-pool threads waking and
//! blocking around synchronous calls: switching inflates request times); the server
//! GC's one thread per processor at `THREAD_PRIORITY_HIGHEST` (DOMAIN §8) competing
//! with, and pre-empting, the application's normal-priority threads; a blocking GC
//! [suspends](Cpu::suspend) the managed threads and later [resumes](Cpu::resume) them.
//!
//! **Work is demand, not delay**: [`Cpu::submit`] takes nanoseconds of processor
//! time; the job finishes when it has received that much, however long that takes.
//! [`Cpu::submit_until`] is a thread that stays runnable until a given time whatever
//! it gets (a CPU hog, another process spinning, a DPC storm).
//!
//! ## Priorities (Windows base priorities, [`Priority`])
//! Normal threads of a normal-priority-class process are 8 (`THREAD_PRIORITY_NORMAL`),
//! `THREAD_PRIORITY_HIGHEST` is 10 (server GC threads), `THREAD_PRIORITY_TIME_CRITICAL`
//! in a non-real-time class is 15; kernel system worker threads are 12 (delayed work
//! queue) and 13 (critical work queue), DOMAIN §2.1 / §9 row 4 (WORK_QUEUE_TYPE).
//! [`Priority::DPC`] (= 32) is above every thread priority.
//!
//! ## Defaults ([`CpuConfig::new`])
//! * `context_switch_cost_ns` = 5 µs ⚠: an order-of-magnitude figure for a switch
//!   including the cache/TLB refill it causes (the direct dispatcher cost is a few µs
//!   or less on modern hardware); no authoritative constant exists — a parameter.
//! * `quantum_ns` = 187.5 ms ⚠: Windows Server's default (`Win32PrioritySeparation`
//!   = 2 → "longer intervals" on Server, fixed length, no foreground boost) is 36
//!   quantum units = 12 clock intervals; at the usual 15.625 ms clock interval that is
//!   187.5 ms (client Windows: 2 intervals ≈ 31 ms, variable). The clock interval is
//!   hardware-dependent, hence a parameter. `quantum_ns = 0` disables quantum-expiry
//!   switching. Source: TechNet "Win32PrioritySeparation" (cc976120) and the quantum
//!   table (36 units long/fixed) quoted with it.
//!
//! ## How it is computed
//! One virtual clock per priority level: `V_p` advances at the level's per-thread rate,
//! so a job submitted at virtual time `V` with demand `d` finishes when `V_p` reaches
//! its tag `V + d`. A per-level min-heap of tags gives the next completion of the level;
//! each event costs O(busy levels + log n) (a bit set of the levels in use). Rates
//! change only at events. One timer is outstanding (the earliest completion over all levels and timed jobs), identified by
//! a generation number; stale timers are ignored. Completion times are integer ns
//! rounded *up*, so a job never finishes before it got its demand; a job whose
//! remaining demand is below half a nanosecond counts as finished (floating-point
//! drift guard; since a job never runs faster than one processor it still finishes no
//! earlier than `submit + demand`). A level's virtual clock restarts at 0 whenever the
//! level empties, which keeps the f64 clocks small.
//!
//! Switch costs in the fluid model: the switch *onto* a processor is added to the
//! job's demand (it delays the job); the switch *off* a processor is a short anonymous
//! piece of work of `context_switch_cost_ns` at the same priority (it takes capacity
//! but does not delay the job's completion, which is the moment the thread blocks).
//! Quantum switching makes an oversubscribed level's processors run jobs at
//! `Q / (Q + c)` of their speed and counts `A / (Q + c)` switches per ns (accumulated
//! fractionally, deterministically). Hence a job alone on an idle machine finishes
//! after `demand + context_switch_cost_ns`, and
//! `busy_ns ≈ served demand + context_switch_cost_ns × context_switches`.
//!
//! **Leaves out**: processor affinity and the ideal processor (any thread runs on any
//! processor; RSS DPC pinning to one CPU is not represented — a DPC job takes one
//! processor from the shared pool), priority boosts and decay (I/O-completion,
//! foreground, starvation boosts by the balance-set manager), variable quanta, NUMA
//! nodes and processor groups, hyper-threading (logical processors are full
//! processors), DPC queue ordering (DPCs share like threads do), frequency scaling,
//! and the time a thread spends spinning before it blocks.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use rustc_hash::FxHashMap as HashMap;

use crate::effects::Effects;
use crate::stat::{Counter, Gauge};
use crate::time::{MICROS, SimTime};

/// Opaque token the engine uses to name a piece of CPU work (unique among live jobs).
pub type JobId = u64;

/// A scheduling priority: thread priorities `0..=31`, and [`Priority::DPC`] above all.
/// Values above 32 are treated as DPC level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(pub u8);

impl Priority {
    /// DPC / ISR level: pre-empts every thread; never context-switches.
    pub const DPC: Priority = Priority(32);
    /// `THREAD_PRIORITY_NORMAL` in `NORMAL_PRIORITY_CLASS` (thread-pool threads).
    pub const NORMAL: Priority = Priority(8);
    /// `THREAD_PRIORITY_HIGHEST` in `NORMAL_PRIORITY_CLASS` (server GC threads).
    pub const HIGHEST: Priority = Priority(10);
    /// Kernel system worker threads of the delayed work queue (AFD loopback work).
    pub const KERNEL_DELAYED_WORKER: Priority = Priority(12);
    /// Kernel system worker threads of the critical work queue.
    pub const KERNEL_CRITICAL_WORKER: Priority = Priority(13);
    /// `THREAD_PRIORITY_TIME_CRITICAL` in a non-real-time priority class.
    pub const TIME_CRITICAL: Priority = Priority(15);

    /// True for DPC level (and anything above 31).
    pub fn is_dpc(self) -> bool {
        self.0 as usize >= DPC_LEVEL
    }

    #[inline]
    fn level(self) -> usize {
        (self.0 as usize).min(DPC_LEVEL)
    }
}

/// Processor configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct CpuConfig {
    /// Logical processors (`N`); at least 1 is used.
    pub logical_processors: u32,
    /// Processor time one context switch costs (default 5 µs ⚠).
    pub context_switch_cost_ns: u64,
    /// Quantum after which a processor switches among oversubscribed threads of the same
    /// priority (default 187.5 ms = 12 × 15.625 ms, Windows Server ⚠); 0 disables.
    pub quantum_ns: u64,
}

impl CpuConfig {
    /// Default context-switch cost.
    pub const DEFAULT_CONTEXT_SWITCH_COST_NS: u64 = 5 * MICROS;
    /// Default quantum: Windows Server's long fixed quantum, 12 clock intervals of 15.625 ms.
    pub const DEFAULT_QUANTUM_NS: u64 = 187_500_000;

    /// `logical_processors` processors with the documented defaults.
    pub fn new(logical_processors: u32) -> Self {
        Self {
            logical_processors,
            context_switch_cost_ns: Self::DEFAULT_CONTEXT_SWITCH_COST_NS,
            quantum_ns: Self::DEFAULT_QUANTUM_NS,
        }
    }
}

/// The CPU model's timer: the next completion it asked for (stale if its generation is old).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuTimer {
    generation: u64,
}

const LEVELS: usize = 33;
const DPC_LEVEL: usize = 32;
/// Remaining demand (ns) below which a job counts as served (float drift guard).
const DONE_EPS: f64 = 0.5;

/// A heap entry of a level: a job's (or switch overhead's) finish tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    /// `f64::to_bits` of a non-negative finite tag: orders like the number.
    tag: u64,
    seq: u64,
    id: JobId,
    epoch: u32,
    /// Anonymous switch-off overhead, not a job.
    overhead: bool,
}

#[derive(Debug)]
struct Level {
    vtime: f64,
    heap: BinaryHeap<Reverse<Entry>>,
    /// Entries in `heap` that no longer stand for an active job.
    stale: usize,
    /// Competitors: active demand jobs + active timed jobs + overhead pieces.
    n: u32,
    /// Active jobs (demand + timed), i.e. runnable threads (or DPCs).
    threads: u32,
    /// Per-competitor service rate (processors).
    rate: f64,
    /// Processors occupied by the level.
    procs: u32,
    /// Threads of the level on a processor (`min(threads, processors left)`).
    running: u32,
    /// Oversubscribed thread level: quantum-expiry switching under way.
    switching: bool,
    /// Integral of `procs` over time (processor-ns).
    busy: u128,
}

impl Level {
    fn new() -> Self {
        Self {
            vtime: 0.0,
            heap: BinaryHeap::new(),
            stale: 0,
            n: 0,
            threads: 0,
            rate: 0.0,
            procs: 0,
            running: 0,
            switching: false,
            busy: 0,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Demand,
    Timed { until: SimTime },
}

#[derive(Clone, Copy, Debug)]
struct Job {
    level: u8,
    seq: u64,
    epoch: u32,
    kind: Kind,
    suspended: bool,
    /// Finish tag on the level's virtual clock (active demand jobs).
    tag: f64,
    /// Remaining demand (suspended demand jobs).
    remaining: f64,
}

/// The processors of the machine and the work competing for them.
#[derive(Debug)]
pub struct Cpu {
    cfg: CpuConfig,
    n_procs: u32,
    levels: Vec<Level>,
    /// Bit `l` set: level `l` may have competitors or heap entries (a superset: a bit is
    /// cleared only when the level is found empty). The per-event passes over the levels
    /// visit these only, so an event costs O(busy levels), not O(33).
    live: u64,
    jobs: HashMap<JobId, Job>,
    /// Timed jobs by end time: (until, seq, id).
    timed: BinaryHeap<Reverse<(SimTime, u64, JobId)>>,
    next_seq: u64,
    last: SimTime,
    generation: u64,
    timer_at: Option<SimTime>,
    /// Fractional quantum-expiry switches not yet counted.
    quantum_switch_acc: f64,
    done_scratch: Vec<(u64, JobId)>,
    completed: VecDeque<JobId>,
    runnable_threads: u32,
    running_threads: u32,
    /// `System\Context Switches/sec` (all switches: wake, block, quantum expiry).
    pub context_switches: Counter,
    /// Runnable threads (running or ready, all thread priorities; DPCs and suspended jobs
    /// excluded), time-weighted.
    pub runnable_gauge: Gauge,
    /// `System\Processor Queue Length`: runnable threads not on a processor, time-weighted.
    pub queue_length_gauge: Gauge,
    /// Jobs finished (demand served or time reached; cancelled jobs excluded).
    pub completions: Counter,
}

impl Cpu {
    pub fn new(cfg: CpuConfig) -> Self {
        let n_procs = cfg.logical_processors.max(1);
        Self {
            cfg,
            n_procs,
            levels: (0..LEVELS).map(|_| Level::new()).collect(),
            live: 0,
            jobs: HashMap::default(),
            timed: BinaryHeap::new(),
            next_seq: 0,
            last: 0,
            generation: 0,
            timer_at: None,
            quantum_switch_acc: 0.0,
            done_scratch: Vec::new(),
            completed: VecDeque::new(),
            runnable_threads: 0,
            running_threads: 0,
            context_switches: Counter::default(),
            runnable_gauge: Gauge::new(),
            queue_length_gauge: Gauge::new(),
            completions: Counter::default(),
        }
    }

    pub fn config(&self) -> &CpuConfig {
        &self.cfg
    }

    /// Submits `demand_ns` of processor time at `prio`. Demand 0 completes at once
    /// (reported by [`Cpu::poll_completed`]) without a context switch. A thread-level job
    /// also pays one context switch onto a processor (added to its demand).
    ///
    /// Panics if `job` is still live (submitted and neither completed nor cancelled).
    pub fn submit(
        &mut self,
        now: SimTime,
        job: JobId,
        prio: Priority,
        demand_ns: u64,
        fx: &mut impl Effects<CpuTimer>,
    ) {
        let seq = self.admit(now, job);
        if demand_ns == 0 {
            self.done_scratch.push((seq, job));
        } else {
            let level = prio.level();
            let mut demand = demand_ns as f64;
            if level != DPC_LEVEL {
                demand += self.cfg.context_switch_cost_ns as f64;
                self.context_switches.inc();
            }
            self.live |= 1 << level;
            let l = &mut self.levels[level];
            let tag = l.vtime + demand;
            l.heap.push(Reverse(Entry {
                tag: tag.to_bits(),
                seq,
                id: job,
                epoch: 0,
                overhead: false,
            }));
            l.n += 1;
            l.threads += 1;
            self.jobs.insert(
                job,
                Job {
                    level: level as u8,
                    seq,
                    epoch: 0,
                    kind: Kind::Demand,
                    suspended: false,
                    tag,
                    remaining: 0.0,
                },
            );
        }
        self.end(now, fx);
    }

    /// Brings the processors' accounts up to `now` and gives a new `job` its arrival
    /// sequence number. Panics if `job` is still live.
    fn admit(&mut self, now: SimTime, job: JobId) -> u64 {
        self.begin(now);
        assert!(
            !self.jobs.contains_key(&job),
            "cpu: job {job} submitted while still live"
        );
        self.take_seq()
    }

    /// Submits a thread (or DPC activity) that stays runnable until `until`, whatever
    /// processor time it gets; it completes at `until` (at once if `until <= now`). The
    /// deadline is absolute: a suspended timed job stops competing but still completes at
    /// `until`. Its switch onto a processor is counted but costs it nothing (it has no
    /// demand to delay); its switch off costs processor time like any other.
    ///
    /// Panics if `job` is still live.
    pub fn submit_until(
        &mut self,
        now: SimTime,
        job: JobId,
        prio: Priority,
        until: SimTime,
        fx: &mut impl Effects<CpuTimer>,
    ) {
        let seq = self.admit(now, job);
        if until <= now {
            self.done_scratch.push((seq, job));
        } else {
            let level = prio.level();
            if level != DPC_LEVEL {
                self.context_switches.inc();
            }
            self.live |= 1 << level;
            let l = &mut self.levels[level];
            l.n += 1;
            l.threads += 1;
            self.timed.push(Reverse((until, seq, job)));
            self.jobs.insert(
                job,
                Job {
                    level: level as u8,
                    seq,
                    epoch: 0,
                    kind: Kind::Timed { until },
                    suspended: false,
                    tag: 0.0,
                    remaining: 0.0,
                },
            );
        }
        self.end(now, fx);
    }

    /// Takes a runnable job off the processors (blocking GC suspending a managed thread):
    /// its remaining demand is kept and it stops competing. Returns `false` if the job is
    /// unknown, finished, or already suspended.
    pub fn suspend(&mut self, now: SimTime, job: JobId, fx: &mut impl Effects<CpuTimer>) -> bool {
        self.begin(now);
        let ok = match self.jobs.get_mut(&job) {
            Some(j) if !j.suspended => {
                let level = j.level as usize;
                let l = &mut self.levels[level];
                j.suspended = true;
                if let Kind::Demand = j.kind {
                    j.remaining = (j.tag - l.vtime).max(0.0);
                    j.epoch = j.epoch.wrapping_add(1);
                    l.stale += 1;
                }
                l.n -= 1;
                l.threads -= 1;
                self.switch_off(level);
                true
            }
            _ => false,
        };
        self.end(now, fx);
        ok
    }

    /// Makes a suspended job runnable again with the demand it had left (plus one switch
    /// onto a processor). Returns `false` if the job is unknown, finished or not suspended.
    pub fn resume(&mut self, now: SimTime, job: JobId, fx: &mut impl Effects<CpuTimer>) -> bool {
        self.begin(now);
        let cost = self.cfg.context_switch_cost_ns as f64;
        let ok = match self.jobs.get_mut(&job) {
            Some(j) if j.suspended => {
                let level = j.level as usize;
                self.live |= 1 << level;
                let l = &mut self.levels[level];
                j.suspended = false;
                if level != DPC_LEVEL {
                    self.context_switches.inc();
                }
                if let Kind::Demand = j.kind {
                    let extra = if level != DPC_LEVEL { cost } else { 0.0 };
                    j.tag = l.vtime + j.remaining + extra;
                    j.remaining = 0.0;
                    j.epoch = j.epoch.wrapping_add(1);
                    l.heap.push(Reverse(Entry {
                        tag: j.tag.to_bits(),
                        seq: j.seq,
                        id: job,
                        epoch: j.epoch,
                        overhead: false,
                    }));
                }
                l.n += 1;
                l.threads += 1;
                true
            }
            _ => false,
        };
        self.end(now, fx);
        ok
    }

    /// Removes a job without completing it (never reported by `poll_completed`). A job that
    /// was runnable switches off its processor. Returns `false` if unknown or finished.
    pub fn cancel(&mut self, now: SimTime, job: JobId, fx: &mut impl Effects<CpuTimer>) -> bool {
        self.begin(now);
        let ok = match self.jobs.remove(&job) {
            Some(j) => {
                if !j.suspended {
                    let level = j.level as usize;
                    let l = &mut self.levels[level];
                    if let Kind::Demand = j.kind {
                        l.stale += 1;
                    }
                    l.n -= 1;
                    l.threads -= 1;
                    self.switch_off(level);
                }
                true
            }
            None => false,
        };
        self.end(now, fx);
        ok
    }

    /// Delivers a timer this model asked for; stale ones are ignored.
    pub fn on_timer(&mut self, now: SimTime, t: CpuTimer, fx: &mut impl Effects<CpuTimer>) {
        if t.generation != self.generation {
            return;
        }
        self.timer_at = None;
        self.begin(now);
        self.end(now, fx);
    }

    /// Next finished job. The engine drains this after every call; jobs finishing at the
    /// same instant come out in submission order.
    pub fn poll_completed(&mut self) -> Option<JobId> {
        self.completed.pop_front()
    }

    /// Integral of busy processors (all priorities, switching included) since the start,
    /// in processor-ns. `% Processor Time` over `[t1, t2]` is
    /// `(busy_ns(t2) − busy_ns(t1)) / (N × (t2 − t1))`.
    pub fn busy_ns(&self, now: SimTime) -> u128 {
        self.busy_ns_at_or_above(now, Priority(0))
    }

    /// Same as [`Cpu::busy_ns`] restricted to work at `prio` or above (e.g. `% DPC Time`
    /// with [`Priority::DPC`]).
    pub fn busy_ns_at_or_above(&self, now: SimTime, prio: Priority) -> u128 {
        let dt = now.saturating_sub(self.last) as u128;
        self.levels[prio.level()..]
            .iter()
            .map(|l| l.busy + l.procs as u128 * dt)
            .sum()
    }

    /// Runnable threads (running or ready; thread priorities only, suspended excluded).
    pub fn runnable(&self) -> u32 {
        self.runnable_threads
    }

    /// Runnable threads that are on a processor.
    pub fn running(&self) -> u32 {
        self.running_threads
    }

    /// `System\Processor Queue Length`: runnable threads not on a processor.
    pub fn processor_queue_length(&self) -> u32 {
        self.runnable_threads - self.running_threads
    }

    pub fn logical_processors(&self) -> u32 {
        self.n_procs
    }

    /// Remaining processor demand of a live demand job (including a not-yet-served switch
    /// onto a processor), rounded up, as of the last call that took `now`. For a timed job:
    /// the time left until its end, as of that call. `None` if unknown or finished.
    pub fn remaining_ns(&self, job: JobId) -> Option<u64> {
        let j = self.jobs.get(&job)?;
        Some(match j.kind {
            Kind::Timed { until } => until.saturating_sub(self.last),
            Kind::Demand => {
                let rem = if j.suspended {
                    j.remaining
                } else {
                    j.tag - self.levels[j.level as usize].vtime
                };
                if rem < DONE_EPS { 0 } else { ceil_ns(rem) }
            }
        })
    }

    // ---- internals -------------------------------------------------------------------

    fn take_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    /// Brings the state to `now` and retires what finished by then.
    fn begin(&mut self, now: SimTime) {
        self.advance(now);
        self.collect(now);
    }

    /// Retires what finished, recomputes the rates, reports completions and keeps the one
    /// outstanding timer right.
    fn end(&mut self, now: SimTime, fx: &mut impl Effects<CpuTimer>) {
        self.collect(now);
        self.recompute(now);
        if !self.done_scratch.is_empty() {
            self.done_scratch.sort_unstable();
            self.completions.add(self.done_scratch.len() as u64);
            self.completed
                .extend(self.done_scratch.drain(..).map(|(_, id)| id));
        }
        self.schedule(now, fx);
    }

    fn advance(&mut self, now: SimTime) {
        debug_assert!(now >= self.last, "cpu: time went backwards");
        if now <= self.last {
            return;
        }
        let dt = now - self.last;
        let dtf = dt as f64;
        let period = (self.cfg.quantum_ns + self.cfg.context_switch_cost_ns) as f64;
        let mut live = self.live;
        while live != 0 {
            let level = live.trailing_zeros() as usize;
            live &= live - 1;
            let l = &mut self.levels[level];
            if l.procs == 0 {
                continue;
            }
            l.vtime += l.rate * dtf;
            l.busy += l.procs as u128 * dt as u128;
            if l.switching {
                self.quantum_switch_acc += l.procs as f64 * dtf / period;
            }
        }
        if self.quantum_switch_acc >= 1.0 {
            let whole = self.quantum_switch_acc.floor();
            self.context_switches.add(whole as u64);
            self.quantum_switch_acc -= whole;
        }
        self.last = now;
    }

    /// The switch off a processor of a thread that stops running at `level`.
    fn switch_off(&mut self, level: usize) {
        if level == DPC_LEVEL {
            return;
        }
        self.context_switches.inc();
        let cost = self.cfg.context_switch_cost_ns;
        if cost > 0 {
            let seq = self.take_seq();
            self.live |= 1 << level;
            let l = &mut self.levels[level];
            l.heap.push(Reverse(Entry {
                tag: (l.vtime + cost as f64).to_bits(),
                seq,
                id: 0,
                epoch: 0,
                overhead: true,
            }));
            l.n += 1;
        }
    }

    /// Whether a heap entry still stands for an active job (or is overhead).
    #[inline]
    fn entry_live(jobs: &HashMap<JobId, Job>, e: &Entry) -> bool {
        e.overhead
            || matches!(jobs.get(&e.id), Some(j) if j.seq == e.seq && j.epoch == e.epoch && !j.suspended)
    }

    /// Pops stale entries off the top of a level's heap; returns the live top's tag.
    fn clean_top(&mut self, level: usize) -> Option<f64> {
        let l = &mut self.levels[level];
        while let Some(Reverse(e)) = l.heap.peek() {
            if Self::entry_live(&self.jobs, e) {
                return Some(f64::from_bits(e.tag));
            }
            l.heap.pop();
            l.stale -= 1;
        }
        None
    }

    fn collect(&mut self, now: SimTime) {
        let mut live = self.live;
        while live != 0 {
            let level = live.trailing_zeros() as usize;
            live &= live - 1;
            if self.levels[level].n == 0 && self.levels[level].heap.is_empty() {
                self.forget_level(level);
                continue;
            }
            while let Some(tag) = self.clean_top(level) {
                let l = &mut self.levels[level];
                if tag - l.vtime >= DONE_EPS {
                    break;
                }
                let Reverse(e) = l.heap.pop().expect("peeked");
                l.n -= 1;
                if e.overhead {
                    continue;
                }
                l.threads -= 1;
                self.jobs.remove(&e.id);
                self.done_scratch.push((e.seq, e.id));
                self.switch_off(level);
            }
            let l = &mut self.levels[level];
            if l.n == 0 {
                // Everything left is stale: restart the virtual clock (keeps f64s small).
                l.heap.clear();
                l.stale = 0;
                l.vtime = 0.0;
                self.forget_level(level);
            } else if l.stale > 64 && l.stale > l.heap.len() / 2 {
                let jobs = &self.jobs;
                l.heap.retain(|Reverse(e)| Self::entry_live(jobs, e));
                l.stale = 0;
            }
        }
        while let Some(&Reverse((until, seq, id))) = self.timed.peek() {
            if until > now {
                break;
            }
            self.timed.pop();
            let Some(j) = self.jobs.get(&id) else {
                continue;
            };
            if j.seq != seq {
                continue;
            }
            let j = self.jobs.remove(&id).expect("present");
            self.done_scratch.push((seq, id));
            if !j.suspended {
                let level = j.level as usize;
                let l = &mut self.levels[level];
                l.n -= 1;
                l.threads -= 1;
                self.switch_off(level);
            }
        }
    }

    /// An empty level leaves the live set with the share [`Cpu::recompute`] gives an
    /// empty level (nothing runs there until a job is submitted to it again).
    fn forget_level(&mut self, level: usize) {
        let l = &mut self.levels[level];
        l.rate = 0.0;
        l.procs = 0;
        l.running = 0;
        l.switching = false;
        self.live &= !(1 << level);
    }

    /// The live set holds every level that has competitors, heap entries or processors.
    #[cfg(test)]
    fn live_set_covers_busy_levels(&self) -> bool {
        self.levels.iter().enumerate().all(|(i, l)| {
            self.live & (1 << i) != 0 || (l.n == 0 && l.heap.is_empty() && l.procs == 0)
        })
    }

    fn recompute(&mut self, now: SimTime) {
        let mut avail = self.n_procs;
        let q = self.cfg.quantum_ns;
        let c = self.cfg.context_switch_cost_ns;
        let efficiency = if q > 0 {
            q as f64 / (q + c) as f64
        } else {
            1.0
        };
        let mut runnable = 0;
        let mut running = 0;
        // Highest priority first.
        let mut live = self.live;
        while live != 0 {
            let level = 63 - live.leading_zeros() as usize;
            live &= !(1 << level);
            let l = &mut self.levels[level];
            if level != DPC_LEVEL {
                runnable += l.threads;
                running += l.threads.min(avail);
            }
            if l.n == 0 {
                l.rate = 0.0;
                l.procs = 0;
                l.running = 0;
                l.switching = false;
                continue;
            }
            let m = l.n.min(avail);
            l.procs = m;
            l.running = l.threads.min(avail);
            if l.n > avail {
                l.switching = level != DPC_LEVEL && avail > 0 && q > 0;
                let share = avail as f64 / l.n as f64;
                l.rate = if l.switching {
                    share * efficiency
                } else {
                    share
                };
            } else {
                l.switching = false;
                l.rate = 1.0;
            }
            avail -= m;
        }
        self.runnable_threads = runnable;
        self.running_threads = running;
        if self.runnable_gauge.get() != runnable as u64 {
            self.runnable_gauge.set(now, runnable as u64);
        }
        let queued = (runnable - running) as u64;
        if self.queue_length_gauge.get() != queued {
            self.queue_length_gauge.set(now, queued);
        }
    }

    fn schedule(&mut self, now: SimTime, fx: &mut impl Effects<CpuTimer>) {
        let mut next: Option<SimTime> = self.timed.peek().map(|Reverse((t, _, _))| *t);
        let mut live = self.live;
        while live != 0 {
            let level = live.trailing_zeros() as usize;
            live &= live - 1;
            if self.levels[level].n == 0 || self.levels[level].rate <= 0.0 {
                continue;
            }
            let Some(tag) = self.clean_top(level) else {
                continue;
            };
            let l = &self.levels[level];
            let x = (tag - l.vtime).max(0.0) / l.rate;
            // Round up, forgiving float noise; a job found unfinished is simply rescheduled.
            let d = ceil_ns(x - (x * 1e-12 + 1e-6)).max(1);
            let t = now.saturating_add(d);
            next = Some(next.map_or(t, |n| n.min(t)));
        }
        if next != self.timer_at {
            self.generation += 1;
            self.timer_at = next;
            if let Some(t) = next {
                fx.at(
                    t,
                    CpuTimer {
                        generation: self.generation,
                    },
                );
            }
        }
    }
}

/// `ceil` of a non-negative f64 nanosecond value as u64 (saturating).
#[inline]
fn ceil_ns(x: f64) -> u64 {
    if x.is_nan() || x <= 0.0 {
        0
    } else if x >= u64::MAX as f64 {
        u64::MAX
    } else {
        x.ceil() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::effects::Recorder;
    use crate::time::{MILLIS, SECONDS};
    use proptest::prelude::*;
    use std::collections::HashMap as Map;

    /// A tiny engine: one CPU model and its calendar.
    struct Bench {
        cpu: Cpu,
        fx: Recorder<CpuTimer>,
        now: SimTime,
        done: Vec<(JobId, SimTime)>,
    }

    impl Bench {
        fn new(cfg: CpuConfig) -> Self {
            Self {
                cpu: Cpu::new(cfg),
                fx: Recorder::default(),
                now: 0,
                done: Vec::new(),
            }
        }
        fn exact(n: u32) -> Self {
            Self::new(CpuConfig {
                context_switch_cost_ns: 0,
                ..CpuConfig::new(n)
            })
        }
        fn drain(&mut self) {
            while let Some(id) = self.cpu.poll_completed() {
                self.done.push((id, self.now));
            }
        }
        /// Delivers every timer due at or before `t`, then sets the clock to `t`.
        fn run_until(&mut self, t: SimTime) {
            while let Some((at, timer)) = self.fx.pop_earliest() {
                if at > t {
                    self.fx.timers.push((at, timer));
                    break;
                }
                assert!(at >= self.now);
                self.now = at;
                self.cpu.on_timer(at, timer, &mut self.fx);
                self.drain();
            }
            self.now = t;
        }
        /// Delivers every timer; the clock stops at the last one.
        fn run(&mut self) {
            let now = self.now;
            let mut last = now;
            while let Some((at, timer)) = self.fx.pop_earliest() {
                assert!(at >= self.now);
                self.now = at;
                last = at;
                self.cpu.on_timer(at, timer, &mut self.fx);
                self.drain();
            }
            // The clock stops at the last event: a completion or the end of the hidden
            // switching work that follows the last one.
            self.now = self.done.iter().map(|d| d.1).max().unwrap_or(now).max(last);
        }
        fn submit(&mut self, id: JobId, p: Priority, d: u64) {
            self.cpu.submit(self.now, id, p, d, &mut self.fx);
            self.drain();
        }
        fn submit_until(&mut self, id: JobId, p: Priority, until: SimTime) {
            self.cpu.submit_until(self.now, id, p, until, &mut self.fx);
            self.drain();
        }
        fn at(&self, id: JobId) -> SimTime {
            let v: Vec<_> = self.done.iter().filter(|(j, _)| *j == id).collect();
            assert_eq!(v.len(), 1, "job {id} completed {} times", v.len());
            v[0].1
        }
    }

    const P8: Priority = Priority::NORMAL;

    #[test]
    fn one_job_alone_takes_exactly_its_demand() {
        let mut b = Bench::exact(2);
        b.submit(1, P8, 7 * MILLIS);
        assert_eq!(b.cpu.running(), 1);
        assert_eq!(b.cpu.processor_queue_length(), 0);
        b.run();
        assert_eq!(b.at(1), 7 * MILLIS);
        assert_eq!(b.cpu.busy_ns(b.now), 7 * MILLIS as u128);
        // With the default switch cost it pays one switch onto the processor.
        let mut b = Bench::new(CpuConfig::new(2));
        b.submit(1, P8, 7 * MILLIS);
        b.run();
        assert_eq!(b.at(1), 7 * MILLIS + 5 * MICROS);
        assert_eq!(b.cpu.context_switches.total(), 2);
    }

    #[test]
    fn three_equal_jobs_on_two_cpus_take_one_and_a_half_demands() {
        let mut b = Bench::exact(2);
        for id in 0..3 {
            b.submit(id, P8, 3 * MILLIS);
        }
        assert_eq!(b.cpu.runnable(), 3);
        assert_eq!(b.cpu.running(), 2);
        assert_eq!(b.cpu.processor_queue_length(), 1);
        b.run();
        for id in 0..3 {
            assert_eq!(b.at(id), 4_500_000);
        }
        // Same instant: submission order.
        assert_eq!(
            b.done.iter().map(|d| d.0).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        assert_eq!(b.cpu.runnable(), 0);
    }

    #[test]
    fn different_demands_finish_at_the_analytic_ps_times() {
        // 1 CPU, demands 1, 2, 3 ms: rate 1/3 until 3 ms, then 1/2 until 5 ms, then 1.
        let mut b = Bench::exact(1);
        for (id, d) in [(1, 1), (2, 2), (3, 3)] {
            b.submit(id, P8, d * MILLIS);
        }
        b.run();
        assert_eq!(b.at(1), 3 * MILLIS);
        assert_eq!(b.at(2), 5 * MILLIS);
        assert_eq!(b.at(3), 6 * MILLIS);
        // 2 CPUs: rate 2/3 until 1.5 ms, then 1 each.
        let mut b = Bench::exact(2);
        for (id, d) in [(1, 1), (2, 2), (3, 3)] {
            b.submit(id, P8, d * MILLIS);
        }
        b.run();
        assert_eq!(b.at(1), 1_500_000);
        assert_eq!(b.at(2), 2_500_000);
        assert_eq!(b.at(3), 3_500_000);
        // A late arrival: 1 CPU, job A 4 ms at 0, job B 1 ms at 1 ms: B at 3 ms, A at 5 ms.
        let mut b = Bench::exact(1);
        b.submit(1, P8, 4 * MILLIS);
        b.run_until(MILLIS);
        b.submit(2, P8, MILLIS);
        b.run();
        assert_eq!(b.at(2), 3 * MILLIS);
        assert_eq!(b.at(1), 5 * MILLIS);
    }

    #[test]
    fn a_job_never_runs_faster_than_one_processor() {
        let mut b = Bench::exact(8);
        b.submit(1, P8, 5 * MILLIS);
        b.submit(2, Priority::DPC, 2 * MILLIS);
        b.submit(3, Priority(31), 3 * MILLIS);
        b.run();
        assert_eq!(b.at(1), 5 * MILLIS);
        assert_eq!(b.at(2), 2 * MILLIS);
        assert_eq!(b.at(3), 3 * MILLIS);
        assert_eq!(b.cpu.busy_ns(b.now), 10 * MILLIS as u128);
    }

    #[test]
    fn priority_13_hog_starves_kernel_workers_and_normal_threads() {
        let mut b = Bench::exact(4);
        for id in 0..4 {
            b.submit_until(100 + id, Priority::KERNEL_CRITICAL_WORKER, 5 * SECONDS);
        }
        b.submit(1, Priority::KERNEL_DELAYED_WORKER, MILLIS);
        b.submit(2, P8, MILLIS);
        assert_eq!(b.cpu.processor_queue_length(), 2);
        b.run_until(5 * SECONDS - 1);
        assert!(b.done.is_empty());
        assert_eq!(b.cpu.remaining_ns(1), Some(MILLIS));
        b.run();
        for id in 100..104 {
            assert_eq!(b.at(id), 5 * SECONDS);
        }
        assert_eq!(b.at(1), 5 * SECONDS + MILLIS);
        assert_eq!(b.at(2), 5 * SECONDS + MILLIS);
        assert_eq!(
            b.cpu
                .busy_ns_at_or_above(b.now, Priority::KERNEL_CRITICAL_WORKER),
            4 * 5 * SECONDS as u128
        );
    }

    #[test]
    fn dpc_level_starves_every_thread() {
        let mut b = Bench::exact(2);
        b.submit_until(100, Priority::DPC, SECONDS);
        b.submit_until(101, Priority::DPC, SECONDS);
        b.submit(1, Priority(31), MILLIS);
        b.submit(2, Priority::DPC, MILLIS); // a DPC among the storm: shares with it
        b.run();
        assert_eq!(b.at(2), 1_500_000);
        assert_eq!(b.at(1), SECONDS + MILLIS);
        let dpc = b.cpu.busy_ns_at_or_above(b.now, Priority::DPC);
        // Both processors are at DPC level for the whole second, whoever's DPC it is.
        assert_eq!(dpc, 2 * SECONDS as u128);
        assert_eq!(b.cpu.busy_ns(b.now), dpc + MILLIS as u128);
    }

    #[test]
    fn priority_12_preempts_priority_8() {
        let mut b = Bench::exact(2);
        b.submit(1, P8, 10 * MILLIS);
        b.submit(2, P8, 10 * MILLIS);
        b.run_until(2 * MILLIS);
        b.submit(3, Priority::KERNEL_DELAYED_WORKER, 3 * MILLIS);
        b.submit(4, Priority::KERNEL_DELAYED_WORKER, 3 * MILLIS);
        assert_eq!(b.cpu.running(), 2);
        assert_eq!(b.cpu.processor_queue_length(), 2);
        b.run_until(4 * MILLIS);
        assert_eq!(b.cpu.remaining_ns(1), Some(8 * MILLIS));
        b.run();
        assert_eq!(b.at(3), 5 * MILLIS);
        assert_eq!(b.at(4), 5 * MILLIS);
        assert_eq!(b.at(1), 13 * MILLIS);
        assert_eq!(b.at(2), 13 * MILLIS);
        // Server GC threads (HIGHEST) over normal threads, one of each per processor.
        let mut b = Bench::exact(2);
        b.submit(1, P8, 4 * MILLIS);
        b.submit(2, Priority::HIGHEST, MILLIS);
        b.run();
        assert_eq!(b.at(2), MILLIS);
        assert_eq!(b.at(1), 4 * MILLIS);
    }

    #[test]
    fn suspend_resume_keeps_remaining_demand_and_cancel_removes() {
        let mut b = Bench::exact(1);
        b.submit(1, P8, 10 * MILLIS);
        b.submit(2, P8, 10 * MILLIS);
        b.run_until(4 * MILLIS); // each got 2 ms
        assert!(b.cpu.suspend(b.now, 1, &mut b.fx));
        assert!(!b.cpu.suspend(b.now, 1, &mut b.fx));
        assert_eq!(b.cpu.remaining_ns(1), Some(8 * MILLIS));
        assert_eq!(b.cpu.runnable(), 1);
        b.run_until(6 * MILLIS); // job 2 alone: 2 ms more → 6 ms left
        assert_eq!(b.cpu.remaining_ns(1), Some(8 * MILLIS));
        assert!(b.cpu.resume(b.now, 1, &mut b.fx));
        assert!(!b.cpu.resume(b.now, 1, &mut b.fx));
        assert!(!b.cpu.resume(b.now, 99, &mut b.fx));
        // Now 8 and 6 ms left, sharing: job 2 at 6 + 12 = 18 ms, job 1 at 20 ms.
        b.run();
        assert_eq!(b.at(2), 18 * MILLIS);
        assert_eq!(b.at(1), 20 * MILLIS);
        assert_eq!(b.cpu.busy_ns(b.now), 20 * MILLIS as u128);

        let mut b = Bench::exact(1);
        b.submit(1, P8, 10 * MILLIS);
        b.submit(2, P8, 10 * MILLIS);
        b.run_until(4 * MILLIS);
        assert!(b.cpu.cancel(b.now, 1, &mut b.fx));
        assert!(!b.cpu.cancel(b.now, 1, &mut b.fx));
        assert!(!b.cpu.suspend(b.now, 1, &mut b.fx));
        assert_eq!(b.cpu.remaining_ns(1), None);
        b.run();
        assert_eq!(b.at(2), 12 * MILLIS);
        assert!(b.done.iter().all(|d| d.0 != 1));
        // A suspended job can be cancelled; a finished one cannot.
        assert!(!b.cpu.cancel(b.now, 2, &mut b.fx));
        b.submit(3, P8, MILLIS);
        assert!(b.cpu.suspend(b.now, 3, &mut b.fx));
        assert!(b.cpu.cancel(b.now, 3, &mut b.fx));
        b.run();
        assert!(b.done.iter().all(|d| d.0 != 3));
    }

    #[test]
    fn zero_demand_and_past_deadlines_complete_at_once() {
        let mut b = Bench::new(CpuConfig::new(1));
        b.run_until(5);
        b.submit(1, P8, 0);
        assert_eq!(b.done, vec![(1, 5)]);
        b.submit_until(2, P8, 3);
        assert_eq!(b.done, vec![(1, 5), (2, 5)]);
        assert_eq!(b.cpu.context_switches.total(), 0);
        assert_eq!(b.cpu.runnable(), 0);
    }

    #[test]
    fn busy_is_served_demand_plus_switching_time() {
        let cfg = CpuConfig {
            quantum_ns: MILLIS,
            ..CpuConfig::new(2)
        };
        let c = cfg.context_switch_cost_ns as u128;
        let mut b = Bench::new(cfg);
        let mut demand = 0u128;
        for id in 0..10u64 {
            let d = (id + 1) * 3 * MILLIS;
            demand += d as u128;
            b.submit(id, P8, d);
        }
        b.run_until(20 * MILLIS);
        b.submit(50, Priority::KERNEL_DELAYED_WORKER, 7 * MILLIS);
        demand += 7 * MILLIS as u128;
        b.run();
        assert_eq!(b.done.len(), 11);
        let busy = b.cpu.busy_ns(b.now);
        let switches = b.cpu.context_switches.total() as u128;
        assert!(switches > 22, "quantum switches expected, got {switches}");
        let expected = demand + c * switches;
        // Fractional quantum switches not yet counted: less than one switch's worth.
        assert!(
            busy >= expected && busy < expected + c + 11,
            "busy {busy} expected {expected}"
        );
        // Never more than N × elapsed; idle at the end.
        assert!(busy <= 2 * b.now as u128);
        assert_eq!(b.cpu.busy_ns(b.now + SECONDS), busy);
    }

    #[test]
    fn oversubscription_pays_for_switching() {
        let cfg = CpuConfig::new(4);
        let (q, c) = (cfg.quantum_ns as f64, cfg.context_switch_cost_ns as f64);
        let mut b = Bench::new(cfg);
        let d = 10 * MILLIS;
        for id in 0..100 {
            b.submit(id, P8, d);
        }
        b.run();
        let no_overhead = 25 * d;
        // Each job: demand + switch onto a processor, at 4/100 of a processor slowed by
        // quantum-expiry switching; the switch-off overheads come after.
        let expect = ((d as f64 + c) * 25.0 * (q + c) / q).ceil() as u64;
        let finish = b.at(0);
        assert!(
            finish.abs_diff(expect) <= 2,
            "finish {finish}, expect {expect}"
        );
        assert!(finish > no_overhead + 25 * 5 * MICROS);
        for id in 0..100 {
            assert_eq!(b.at(id), finish);
        }
        assert_eq!(
            b.done.iter().map(|x| x.0).collect::<Vec<_>>(),
            (0..100).collect::<Vec<_>>()
        );
        let sw = b.cpu.context_switches.total();
        let quantum = (4.0 * finish as f64 / (q + c)).floor() as u64;
        assert!(
            sw >= 200 + quantum - 1 && sw <= 200 + quantum + 1,
            "switches {sw}"
        );

        // At most N runnable threads: no quantum switching at all.
        let mut b = Bench::new(CpuConfig::new(4));
        for id in 0..4 {
            b.submit(id, P8, SECONDS);
        }
        b.run();
        assert_eq!(b.at(0), SECONDS + 5 * MICROS);
        assert_eq!(b.cpu.context_switches.total(), 8);
    }

    #[test]
    fn timed_jobs_share_with_threads_of_their_level_and_survive_suspension() {
        let mut b = Bench::exact(1);
        b.submit_until(1, P8, 10 * MILLIS);
        b.submit(2, P8, 2 * MILLIS);
        b.run_until(2 * MILLIS);
        assert!(b.cpu.suspend(b.now, 1, &mut b.fx));
        // `remaining_ns` is as of the last call that took `now` (here: the suspend).
        assert_eq!(b.cpu.remaining_ns(2), Some(MILLIS));
        assert_eq!(b.cpu.remaining_ns(1), Some(8 * MILLIS));
        b.run();
        assert_eq!(b.at(2), 3 * MILLIS);
        assert_eq!(b.at(1), 10 * MILLIS);
    }

    #[test]
    fn stale_timers_are_ignored() {
        let mut b = Bench::exact(1);
        b.submit(1, P8, 10 * MILLIS);
        b.submit(2, P8, 10 * MILLIS); // first timer is now stale
        assert_eq!(b.fx.timers.len(), 2);
        let (t0, stale) = b.fx.timers[0];
        b.cpu.on_timer(t0, stale, &mut b.fx);
        assert_eq!(b.cpu.poll_completed(), None);
        b.now = t0;
        b.run();
        assert_eq!(b.at(1), 20 * MILLIS);
    }

    #[test]
    fn long_runs_stay_exact() {
        // Virtual clocks restart when a level empties; a busy level over a long run still
        // completes at integer-exact times.
        let mut b = Bench::exact(3);
        for k in 0..2000u64 {
            b.submit(k, P8, 1_000_003);
            b.submit(100_000 + k, P8, 2_000_001);
            b.run_until((k + 1) * 1_000_000);
        }
        b.run();
        assert_eq!(b.done.len(), 4000);
        let demand = 2000u128 * (1_000_003 + 2_000_001);
        assert!(b.cpu.busy_ns(b.now).abs_diff(demand) <= 4000);
        for &(id, t) in &b.done {
            let (start, d) = if id >= 100_000 {
                ((id - 100_000) * 1_000_000, 2_000_001)
            } else {
                (id * 1_000_000, 1_000_003)
            };
            assert!(t >= start + d);
        }
    }

    #[test]
    fn hundred_thousand_jobs_through_sixteen_cpus() {
        // Not a benchmark: with O(levels + log n) per event this takes milliseconds.
        let mut b = Bench::new(CpuConfig::new(16));
        let mut x: u64 = 12345;
        for k in 0..100_000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let d = 50 * MICROS + (x >> 40) % (200 * MICROS);
            let p = if k % 10 == 0 {
                Priority::KERNEL_DELAYED_WORKER
            } else {
                P8
            };
            b.submit(k, p, d);
            b.run_until(b.now + 10 * MICROS);
        }
        b.run();
        assert_eq!(b.done.len(), 100_000);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Submit { prio: u8, demand: u64 },
        Until { prio: u8, dur: u64 },
        Suspend(usize),
        Resume(usize),
        Cancel(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        let prio = prop_oneof![Just(8u8), Just(10), Just(12), Just(13), Just(32)];
        prop_oneof![
            4 => (prio.clone(), 0u64..3_000_000).prop_map(|(prio, demand)| Op::Submit { prio, demand }),
            1 => (prio, 0u64..4_000_000).prop_map(|(prio, dur)| Op::Until { prio, dur }),
            2 => (0usize..64).prop_map(Op::Suspend),
            2 => (0usize..64).prop_map(Op::Resume),
            1 => (0usize..64).prop_map(Op::Cancel),
        ]
    }

    proptest! {
        #[test]
        fn random_sequences_conserve_work(
            n in 1u32..5,
            cost in prop_oneof![Just(0u64), Just(5_000u64)],
            quantum in prop_oneof![Just(0u64), Just(300_000u64), Just(187_500_000u64)],
            ops in prop::collection::vec((0u64..500_000, op()), 1..120),
        ) {
            let mut b = Bench::new(CpuConfig { logical_processors: n, context_switch_cost_ns: cost, quantum_ns: quantum });
            // id -> (submit time, demand or None for timed, until)
            let mut sub: Map<JobId, (SimTime, Option<u64>, SimTime)> = Map::new();
            let mut ids: Vec<JobId> = Vec::new();
            let mut cancelled = Vec::new();
            for (dt, o) in ops {
                b.run_until(b.now + dt);
                let now = b.now;
                match o {
                    Op::Submit { prio, demand } => {
                        let id = ids.len() as JobId;
                        ids.push(id);
                        sub.insert(id, (now, Some(demand), 0));
                        b.submit(id, Priority(prio), demand);
                    }
                    Op::Until { prio, dur } => {
                        let id = ids.len() as JobId;
                        ids.push(id);
                        sub.insert(id, (now, None, now + dur));
                        b.submit_until(id, Priority(prio), now + dur);
                    }
                    Op::Suspend(i) if !ids.is_empty() => {
                        let id = ids[i % ids.len()];
                        b.cpu.suspend(now, id, &mut b.fx);
                    }
                    Op::Resume(i) if !ids.is_empty() => {
                        let id = ids[i % ids.len()];
                        b.cpu.resume(now, id, &mut b.fx);
                    }
                    Op::Cancel(i) if !ids.is_empty() => {
                        let id = ids[i % ids.len()];
                        if b.cpu.cancel(now, id, &mut b.fx) {
                            cancelled.push(id);
                        }
                    }
                    _ => {}
                }
                b.drain();
                prop_assert!(b.cpu.busy_ns(b.now) <= n as u128 * b.now as u128);
                prop_assert!(b.cpu.running() <= n);
                prop_assert!(b.cpu.live_set_covers_busy_levels());
            }
            for &id in &ids {
                b.cpu.resume(b.now, id, &mut b.fx);
                b.drain();
            }
            b.run();
            let mut count: Map<JobId, u32> = Map::new();
            for &(id, _) in &b.done {
                *count.entry(id).or_default() += 1;
            }
            let mut served = 0u128;
            for &id in &ids {
                let c = count.get(&id).copied().unwrap_or(0);
                if cancelled.contains(&id) {
                    prop_assert_eq!(c, 0);
                    continue;
                }
                prop_assert_eq!(c, 1, "job {} completed {} times", id, c);
                let t = b.done.iter().find(|d| d.0 == id).unwrap().1;
                let (s, d, until) = sub[&id];
                match d {
                    Some(d) => {
                        prop_assert!(t >= s + d, "job {} at {} < {} + {}", id, t, s, d);
                        served += d as u128;
                    }
                    None => prop_assert_eq!(t, until.max(s)),
                }
            }
            let busy = b.cpu.busy_ns(b.now);
            prop_assert!(busy <= n as u128 * b.now as u128);
            prop_assert!(busy + ids.len() as u128 >= served);
            prop_assert_eq!(b.cpu.runnable(), 0);
            prop_assert_eq!(b.cpu.processor_queue_length(), 0);
            prop_assert_eq!(b.cpu.busy_ns(b.now + 1000), busy);
            prop_assert_eq!(b.cpu.runnable_gauge.underflows(), 0);
        }
    }
}
