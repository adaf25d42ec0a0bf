//! The .NET garbage collector: generations, budgets, workstation/server, blocking/background
//! gen2, and a pause model calibrated against a real runtime.
//!
//! **Real mechanism** (DOMAIN §8). Small objects are allocated in gen0; when the bytes
//! allocated since the last GC exceed the gen0 *allocation budget*, a GC is triggered.
//! Whatever is still referenced survives and is promoted (gen0 → gen1 → gen2); the rest is
//! reclaimed. A gen1 GC also collects gen0; a gen2 ("full") GC collects everything,
//! including the large object heap (LOH: objects of at least 85,000 bytes, allocated
//! straight into it and collected only with gen2, not compacted by default). A **blocking**
//! GC suspends every managed thread for the whole collection (threads in native code,
//! e.g. blocked in I/O, keep running until they return to managed code). The ephemeral
//! (gen0/gen1) pause is proportional to what survives; a blocking gen2 pause is
//! proportional to the live objects of the whole heap (mark) plus the bytes it moves
//! (compaction). **Workstation** GC runs on the allocating thread; **server** GC has one
//! heap and one GC thread per logical processor (THREAD_PRIORITY_HIGHEST) that collect in
//! parallel, with larger budgets. **Background** gen2 (workstation from .NET Fx 4.0, server
//! from 4.5; server GC in 4.0 has only blocking gen2) marks concurrently on dedicated
//! threads, suspending the application only briefly at its start and end, while
//! foreground gen0/gen1 GCs may still run during it.
//!
//! **Seed 003** (.NET 4.5, IIS 7.5, 8 cores / 16 logical processors, one w3wp): async
//! requests that wait up to 120 ms keep their objects referenced across gen0 GCs, so those
//! objects are promoted to gen1/gen2 and die there ("mid-life crisis", the reason for
//! ASP.NET 4.7's `percentCpuLimit`, DOMAIN §8); and a periodic reload of an (almost full)
//! in-memory cache makes the GC "work harder and steal resources from the normal request
//! handling": "we normally have some 1000 queued requests temporarily when the GC runs".
//! Here: `allocate(bytes, retained)` per request step, `release(retained)` when the
//! request ends, and `replace_long_lived` for the cache reload.
//!
//! **Thread pool interaction** (DOMAIN §5.4, §5.7): the native pool's gate thread treats CPU
//! as ≥ 81 % while a GC is in progress and creates no IOCP thread during a GC: the pool asks
//! [`Gc::in_progress`].
//!
//! # State
//! Per generation (gen0, gen1, gen2, LOH) this model keeps its size (live + dead bytes) and
//! the live part split in two: bytes held by requests in flight (`retained`) and long-lived
//! data (a cache). A gen0 GC keeps `retained + long-lived + survival_fraction × (the rest)`
//! of gen0 and promotes it to gen1; the `survival_fraction` part is "mid-life" garbage that
//! is live at the instant of the GC and dies right after (it is reclaimed by the next gen1).
//! A gen1 GC additionally promotes gen1's live bytes to gen2. When a request ends, its
//! retained bytes die *oldest first* (gen2, then gen1, then gen0: the request that ends is
//! usually the oldest, whose objects were promoted furthest), split between the small
//! object heap and the LOH in proportion to what each holds.
//!
//! # Triggers (CoreCLR `gc.cpp` / `dynamic_tuning`, same design as .NET Fx 4.x)
//! * **gen0**: bytes allocated since the last GC > gen0 budget. The budget is dynamic like
//!   the runtime's `desired_new_allocation`: after each GC it is
//!   `clamp(f × gen0 survivors, gen0_min_budget_bytes, gen0_budget_bytes)` with
//!   `f = surv_to_growth(survival rate, limit, max_limit)`; limits 9/20 workstation,
//!   20/40 server (`static_data_table`, `latency_level_balanced`). It starts at the minimum.
//!   Set `gen0_min_budget_bytes = gen0_budget_bytes` for a fixed budget; a
//!   `gen0_budget_bytes` below the minimum is used as a fixed budget.
//! * **gen1**: every `gen1_every`-th ephemeral GC (default 10: the gen1 `gc_clock` of the
//!   same table), or when the bytes promoted into gen1 since the last gen1 exceed
//!   `gen1_budget_bytes` (default: the runtime's gen1 maximum budget).
//! * **gen2**: bytes promoted into gen2 since the last gen2 exceed the gen2 budget
//!   `max(gen2_budget_bytes, (f − 1) × gen2 size after the last gen2)` with
//!   `f = surv_to_growth(gen2 survival, 1.2, 1.8)`, or LOH allocations exceed the LOH
//!   budget `max(loh_budget_bytes, (f − 1) × LOH size)`, `f = surv_to_growth(·, 1.25, 4.5)`;
//!   or an explicit [`Gc::collect`]. With `background` a budget-triggered gen2 runs as a
//!   background GC; an explicit `collect(Gen2)` is always blocking.
//! * A collection due while a blocking one runs (or while a background GC is in its
//!   suspension) is **deferred**: it is returned by the next [`Gc::allocate`] call (the
//!   engine calls `allocate(now, 0, 0)` when a collection ends). A foreground gen0/gen1 may
//!   start during a background gen2; a second gen2 waits for the background one to end.
//!
//! # Pause model ([`GcPauseModel`]; DOMAIN §8 suggestion, no official constants exist)
//! With `P = N` heaps for server GC (1 for workstation) and the parallel factor
//! `p(P) = s + (1 − s)/P` (serial fraction `s`; `p(1) = 1`):
//! * blocking gen2: `a2 + a_srv + c × p(P) × live_objects` (+ `d × p(P) × bytes moved`,
//!   here the ephemeral survivors it promotes; `d = 0` by default);
//! * gen0/gen1: `a_eph + a_srv + b × p(P) × survived_objects + d × p(P) × survived_bytes`;
//! * background gen2: two suspensions of `bgc_suspension_ns + a_srv` each (`pause_ns` is
//!   their sum), and `c × p(P) × live_objects × bgc_stretch` of concurrent work on `P`
//!   GC threads (`duration_ns` = suspensions + that work);
//! * `a_srv` (server only) is the fixed cost of waking and joining the heaps' GC threads.
//!
//! Objects ↔ bytes through `avg_object_bytes`; LOH objects count `loh_threshold_bytes`
//! bytes each (they are few; marking them is cheap compared with the small-object heap).
//!
//! **Calibrated here** from `shared/reference/clr/gc/GC-{workstation,server}.csv` (CoreCLR
//! 3.1, 2 cores, forced blocking compacting gen2 against 0 … 10 M live strings), by least
//! squares of the *relative* error over all six points of each curve:
//! workstation `a2 = 0.835 ms`, `c = 13.7 ns/object`; server (N = 2) intercept 1.121 ms
//! → `a_srv = 0.29 ms`, slope 10.64 ns/object → `s = 2 × 10.64/13.7 − 1 = 0.55`.
//! `avg_object_bytes = 48` from the CSVs' live_mb slope ((478.6 − 2.0) MB / 10 M objects =
//! 47.7 B: a short string plus its slot in the `List<string>` arrays). `a_eph = 0.9 ms` from
//! the measured gen0 pause with nothing in gen0 (0.98 ms workstation, 1.08 ms server, fitted
//! together with `a_srv`). Error of the default model against the median pauses:
//!
//! | live objects | ws measured | ws model | err | server measured | server model | err |
//! |---|---|---|---|---|---|---|
//! | 0 | 0.83 | 0.835 | +1 % | 1.10 | 1.125 | +2 % |
//! | 0.5 M | 8.06 | 7.685 | −5 % | 7.91 | 6.434 | −19 % |
//! | 1.5 M | 22.83 | 21.385 | −6 % | 15.95 | 17.051 | +7 % |
//! | 3 M | 40.64 | 41.935 | +3 % | 30.69 | 32.978 | +7 % |
//! | 5 M | 65.85 | 69.335 | +5 % | 58.62 | 54.213 | −8 % |
//! | 10 M | 137.44 | 137.835 | +0.3 % | 103.25 | 107.30 | +4 % |
//!
//! The server 0.5 M point is the weak one: the real server GC is barely faster than
//! workstation on a 25 MB heap (the objects were allocated by one thread, so they sit mostly
//! on one heap and the parallel mark has little to share), which a single serial fraction
//! cannot express. `b = c` (the same per-object mark/plan/relocate work) is an assumption:
//! the reference gen0 column has no survivors. `s`, `a_srv` were fitted at N = 2 only; how
//! they extrapolate to 16 processors is untested. The measured forced gen0 pause also grows
//! with the old heap (about 2 ns per old object workstation, 3 ns server: 21.6 / 31.6 ms at
//! 10 M objects), most likely card-table scanning of the old `string[]` arrays right after a
//! full compacting GC; that cost is **not** modelled (steady-state gen0 GCs scan only dirty
//! cards).
//!
//! # Defaults and their sources
//! | field | default | source |
//! |---|---|---|
//! | `flavor` | as given; 1 logical processor → workstation | DOMAIN §8 (single CPU → always workstation) |
//! | `segment_bytes` | ws 256 MB; server 4 GB, 2 GB (> 4 CPUs), 1 GB (> 8 CPUs) | DOMAIN §8 / §9 #66 (64-bit, pre-regions) |
//! | `l3_cache_bytes` | 20 MB | assumption: a 2012 8-core Xeon (seed 003's machine class) |
//! | `gen0_min_budget_bytes` | ws L3/2; server P × L3 × 5/8 | `get_gen0_min_size` (ws `4/5 × L3`, server `L3`, then `× 5/8`) |
//! | `gen0_budget_bytes` (max) | ws background 6 MB (raised to the min), ws non-concurrent / server P × min(seg/2, 200 MB) | `init_static_data` `gen0_max_size` |
//! | gen0 growth limits | 9 / 20 ws, 20 / 40 server | `static_data_table`, balanced latency |
//! | `gen1_every` | 10 | gen1 `gc_clock` in `static_data_table` |
//! | `gen1_budget_bytes` | ws background 6 MB; otherwise P × max(6 MB, seg/2) | `init_static_data` `gen1_max_size` |
//! | `gen2_budget_bytes` (min) | P × 256 KB; growth limits 1.2 / 1.8 | `static_data_table` gen2 |
//! | `loh_budget_bytes` (min) | P × 3 MB; growth limits 1.25 / 4.5 | `static_data_table` loh |
//! | `loh_threshold_bytes` | 85,000 | DOMAIN §9 #65 |
//! | `loh_fraction` | 0 | share of `allocate`'s bytes that are large objects (scenario) |
//! | `survival_fraction` | 0.01 | assumption (gen0 survival of short-lived garbage) |
//! | `avg_object_bytes` | 48 | calibrated above |
//! | `pause` | [`GcPauseModel::default`] | calibrated above; `bgc_*` are assumptions |
//!
//! # Counters
//! `# Gen 0/1/2 Collections` count like perfmon: "higher generation collections include all
//! lower-generation collections", so a gen2 (background too: the runtime's
//! `update_collection_counts` counts every generation up to the condemned one) also counts
//! as a gen1 and a gen0 collection, and a gen1 as a gen0. They are counted when a collection
//! ends. `% Time in GC` = increase of [`Gc::time_in_gc_ns`] (time managed threads were
//! suspended, background suspensions included; suspensions never overlap) over the interval
//! (perfmon itself only updates the counter at the end of each GC). `Gen 0 heap size` is,
//! as in perfmon, the gen0 *budget*.
//!
//! **Leaves out**: compaction decisions (a blocking gen2 sweeps: `d` charges only promoted
//! survivors), fragmentation, pinning, finalization, memory-load triggers, heap balancing
//! between server heaps (the heap is one pool divided by `p(P)`), per-heap budgets (budgets
//! are totals over the heaps), the gen1 dynamic budget (a fixed maximum plus `gen1_every`),
//! the card-scanning cost of old-to-young references, the ephemeral copying of a cache
//! reload ([`Gc::replace_long_lived`] puts the new data straight into gen2, "via
//! promotion"), GC notifications / `GCLatencyMode`, and Regions (.NET 7+).

use crate::effects::Effects;
use crate::stat::{Counter, Gauge};
use crate::time::SimTime;

/// Workstation or server GC (`<gcServer>` / `System.GC.Server`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GcFlavor {
    Workstation,
    Server,
}

/// The pause model's constants. `Default` = the values calibrated from
/// `shared/reference/clr/gc` (see the module doc).
#[derive(Clone, Debug, PartialEq)]
pub struct GcPauseModel {
    /// `a2`: fixed part of a blocking gen2 (ns). Calibrated: 835,000.
    pub gen2_fixed_ns: u64,
    /// `c`: processor time per live object of a blocking gen2 on one thread (ns). Calibrated: 13.7.
    pub ns_per_live_object: f64,
    /// `s`: serial fraction of the per-object work under server GC. Calibrated: 0.55.
    pub serial_fraction: f64,
    /// `a_srv`: extra fixed cost of every server GC (waking/joining the heaps' threads) (ns). Calibrated: 290,000.
    pub server_fixed_ns: u64,
    /// `a_eph`: fixed part of a gen0/gen1 GC (ns). Calibrated: 900,000.
    pub eph_fixed_ns: u64,
    /// `b`: per survived object of a gen0/gen1 GC (ns). Default = `c` (assumption).
    pub eph_ns_per_survived_object: f64,
    /// `d`: per byte moved (promoted survivors copied) (ns). Default 0 (not measurable from the reference).
    pub moved_ns_per_byte: f64,
    /// Each of the two suspensions of a background gen2 (initial mark, final re-mark),
    /// before `a_srv` (ns). Default = `a2` (assumption: stack and root scanning).
    pub bgc_suspension_ns: u64,
    /// Wall time of the concurrent mark relative to the same work done blocking. Default 1.0
    /// (assumption; the engine's processor sharing decides how much it really competes).
    pub bgc_stretch: f64,
}

impl Default for GcPauseModel {
    fn default() -> Self {
        Self {
            gen2_fixed_ns: 835_000,
            ns_per_live_object: 13.7,
            serial_fraction: 0.55,
            server_fixed_ns: 290_000,
            eph_fixed_ns: 900_000,
            eph_ns_per_survived_object: 13.7,
            moved_ns_per_byte: 0.0,
            bgc_suspension_ns: 835_000,
            bgc_stretch: 1.0,
        }
    }
}

/// Settings of the GC of one worker process. [`GcConfig::new`] gives the documented defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct GcConfig {
    pub flavor: GcFlavor,
    /// Concurrent/background gen2 (`<gcConcurrent>`); server GC in .NET Fx 4.0 has none.
    pub background: bool,
    pub logical_processors: u32,
    /// Ephemeral segment size (only used to derive the defaults).
    pub segment_bytes: u64,
    /// Largest processor cache (only used to derive the defaults).
    pub l3_cache_bytes: u64,
    /// Maximum gen0 budget, total over the heaps (a fixed budget if below the minimum).
    pub gen0_budget_bytes: u64,
    /// Minimum (and initial) gen0 budget, total over the heaps.
    pub gen0_min_budget_bytes: u64,
    /// Gen0 growth factor limits (`limit`, `max_limit`) of `surv_to_growth`.
    pub gen0_growth: (f64, f64),
    /// Every `gen1_every`-th ephemeral GC is a gen1 (0 or 1: every one).
    pub gen1_every: u32,
    /// A gen1 is also due when more than this was promoted into gen1 since the last gen1.
    pub gen1_budget_bytes: u64,
    /// Minimum gen2 budget (bytes promoted into gen2 between gen2 GCs).
    pub gen2_budget_bytes: u64,
    /// Gen2 growth factor limits.
    pub gen2_growth: (f64, f64),
    /// Objects at least this large go to the LOH.
    pub loh_threshold_bytes: u64,
    /// Minimum LOH budget.
    pub loh_budget_bytes: u64,
    /// LOH growth factor limits.
    pub loh_growth: (f64, f64),
    /// Share of the bytes passed to [`Gc::allocate`] that are large objects.
    pub loh_fraction: f64,
    /// Share of gen0's short-lived garbage that is still reachable when a GC happens.
    pub survival_fraction: f64,
    /// Average small object size (bytes per object).
    pub avg_object_bytes: u64,
    pub pause: GcPauseModel,
}

const MB: u64 = 1 << 20;

impl GcConfig {
    /// The defaults of the module doc for this flavour and machine (64-bit, .NET Fx 4.x).
    pub fn new(flavor: GcFlavor, background: bool, logical_processors: u32) -> Self {
        let lp = logical_processors.max(1);
        let flavor = if lp == 1 {
            GcFlavor::Workstation
        } else {
            flavor
        };
        let server = flavor == GcFlavor::Server;
        let heaps = if server { lp as u64 } else { 1 };
        let segment_bytes = match (server, lp) {
            (false, _) => 256 * MB,
            (true, n) if n > 8 => 1024 * MB,
            (true, n) if n > 4 => 2048 * MB,
            _ => 4096 * MB,
        };
        let l3 = 20 * MB;
        let gen0_min = if server {
            l3
        } else {
            (4 * l3 / 5).max(256 * 1024)
        } / 8
            * 5;
        let big_gen0 = (6 * MB).max((segment_bytes / 2).min(200 * MB));
        let gen0_max = if !server && background {
            6 * MB
        } else {
            big_gen0
        }
        .max(gen0_min);
        let gen1_max = if !server && background {
            6 * MB
        } else {
            (6 * MB).max(segment_bytes / 2)
        };
        Self {
            flavor,
            background,
            logical_processors: lp,
            segment_bytes,
            l3_cache_bytes: l3,
            gen0_budget_bytes: gen0_max * heaps,
            gen0_min_budget_bytes: gen0_min * heaps,
            gen0_growth: if server { (20.0, 40.0) } else { (9.0, 20.0) },
            gen1_every: 10,
            gen1_budget_bytes: gen1_max * heaps,
            gen2_budget_bytes: 256 * 1024 * heaps,
            gen2_growth: (1.2, 1.8),
            loh_threshold_bytes: 85_000,
            loh_budget_bytes: 3 * MB * heaps,
            loh_growth: (1.25, 4.5),
            loh_fraction: 0.0,
            survival_fraction: 0.01,
            avg_object_bytes: 48,
            pause: GcPauseModel::default(),
        }
    }

    /// Number of GC heaps (and GC threads): the logical processors for server GC, else 1.
    pub fn heaps(&self) -> u32 {
        match self.flavor {
            GcFlavor::Server => self.logical_processors.max(1),
            GcFlavor::Workstation => 1,
        }
    }

    /// `p(P) = s + (1 − s)/P`: the share of the single-thread per-object time a collection takes.
    pub fn parallel_factor(&self) -> f64 {
        let p = self.heaps() as f64;
        let s = self.pause.serial_fraction.clamp(0.0, 1.0);
        s + (1.0 - s) / p
    }

    fn fixed_extra_ns(&self) -> u64 {
        match self.flavor {
            GcFlavor::Server => self.pause.server_fixed_ns,
            GcFlavor::Workstation => 0,
        }
    }
}

/// A generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Generation {
    Gen0,
    Gen1,
    Gen2,
}

/// A collection the engine must carry out.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Collection {
    pub generation: Generation,
    /// `true`: suspend managed threads for `pause_ns`. `false`: a background gen2; its two
    /// short suspensions (`pause_ns` in total) are counted by the model but the engine may
    /// ignore them.
    pub blocking: bool,
    /// Length of the suspension (blocking) or of the foreground part (background).
    pub pause_ns: u64,
    /// Threads doing the work (server: one per heap; workstation: 1).
    pub gc_threads: u32,
    /// Processor time: `gc_threads × duration_ns` (server GC threads spin at their joins).
    pub cpu_ns: u64,
    /// Wall time of the whole collection (== `pause_ns` for blocking).
    pub duration_ns: u64,
}

/// The model's timers (`seq` identifies the collection; a stale one is ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GcTimer {
    /// A blocking collection (gen0, gen1 or gen2) ends.
    End { seq: u64 },
    /// A background gen2's suspension ends (its concurrent part continues).
    BackgroundSuspensionEnd { seq: u64 },
    /// A background gen2 ends.
    BackgroundEnd { seq: u64 },
}

/// Upper bounds (exclusive, ns) of [`Gc::pause_histogram`]'s buckets; the last bucket is
/// everything from 1 s up: <0.1, <0.2, <0.5, <1, <2, <5, <10, <20, <50, <100, <200, <500,
/// <1000 ms, ≥1 s.
pub const PAUSE_BUCKET_UPPER_NS: [u64; 13] = [
    100_000,
    200_000,
    500_000,
    1_000_000,
    2_000_000,
    5_000_000,
    10_000_000,
    20_000_000,
    50_000_000,
    100_000_000,
    200_000_000,
    500_000_000,
    1_000_000_000,
];

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Space {
    /// Bytes occupied (live and dead).
    size: u64,
    /// Live bytes held by requests in flight.
    retained: u64,
    /// Live long-lived bytes (cache).
    long_lived: u64,
}

impl Space {
    fn live(&self) -> u64 {
        self.retained + self.long_lived
    }
    fn garbage(&self) -> u64 {
        self.size.saturating_sub(self.live())
    }
}

#[derive(Clone, Copy, Debug)]
struct Running {
    c: Collection,
    seq: u64,
    started: Option<SimTime>,
}

#[derive(Clone, Copy, Debug)]
struct RunningBgc {
    run: Running,
    /// In its suspension (from the start until `BackgroundSuspensionEnd`).
    suspended: bool,
    /// Garbage of gen2 / LOH when it started (what its sweep reclaims).
    garbage_gen2: u64,
    garbage_loh: u64,
    /// gen2 / LOH size when it started (for the survival rate).
    begin_gen2: u64,
    begin_loh: u64,
}

/// The GC of one worker process, with its perfmon counters (`.NET CLR Memory\…`).
#[derive(Debug)]
pub struct Gc {
    cfg: GcConfig,
    g0: Space,
    g1: Space,
    g2: Space,
    loh: Space,
    gen0_budget: u64,
    gen2_budget: u64,
    loh_budget: u64,
    promoted_gen1_since_gen1: u64,
    ephemeral_since_gen1: u32,
    promoted_gen2_since_gen2: u64,
    loh_alloc_since_gen2: u64,
    pending: Option<Generation>,
    fg: Option<Running>,
    bgc: Option<RunningBgc>,
    next_seq: u64,
    /// Start of the current suspension (threads stopped), if any.
    suspension_start: Option<SimTime>,
    suspension_len: u64,
    suspended_total: u128,
    /// `# Gen 0 Collections` (includes gen1 and gen2 collections).
    pub gen0_collections: Counter,
    /// `# Gen 1 Collections` (includes gen2 collections).
    pub gen1_collections: Counter,
    /// `# Gen 2 Collections`.
    pub gen2_collections: Counter,
    /// Background gen2 collections (a subset of `gen2_collections`).
    pub background_collections: Counter,
    /// Bytes allocated (`Allocated Bytes/sec` is its rate).
    pub allocated_bytes: Counter,
    /// Bytes promoted by collections (all generations).
    pub promoted_bytes: Counter,
    /// Processor time of all collections (ns).
    pub gc_cpu_ns: Counter,
    /// `Gen 0 heap size` (the gen0 budget, as in perfmon), updated when a GC starts.
    pub gen0_heap_size: Gauge,
    /// `Gen 1 heap size`, updated when a GC starts.
    pub gen1_heap_size: Gauge,
    /// `Gen 2 heap size`, updated when a GC starts or a gen2 ends.
    pub gen2_heap_size: Gauge,
    /// `Large Object Heap size`, updated when a GC starts or a gen2 ends.
    pub loh_heap_size: Gauge,
    /// `Promoted Memory from Gen 1` of the last GC.
    pub promoted_from_gen1: Gauge,
    /// Suspension lengths by [`PAUSE_BUCKET_UPPER_NS`] bucket.
    pub pause_histogram: [u64; 14],
    /// Longest suspension (ns).
    pub max_pause_ns: u64,
    /// Sum of the suspensions (ns).
    pub pause_sum_ns: u128,
    /// Number of suspensions (a background gen2 contributes one, its two suspensions lumped).
    pub pause_count: u64,
}

/// `surv_to_growth` of the runtime: budget growth factor from the survival rate `cst`.
fn surv_to_growth(cst: f64, limit: f64, max_limit: f64) -> f64 {
    let cst = cst.clamp(0.0, 1.0);
    if limit <= 0.0 || max_limit <= 1.0 {
        return limit.max(0.0);
    }
    if cst < (max_limit - limit) / (limit * (max_limit - 1.0)) {
        (limit - limit * cst) / (1.0 - cst * limit)
    } else {
        max_limit
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

fn ns(v: f64) -> u64 {
    crate::time::ns_from_f64(v)
}

impl Gc {
    pub fn new(cfg: GcConfig) -> Self {
        let gen0_budget = cfg.gen0_min_budget_bytes.min(cfg.gen0_budget_bytes).max(1);
        let gen2_budget = cfg.gen2_budget_bytes.max(1);
        let loh_budget = cfg.loh_budget_bytes.max(1);
        let mut gc = Self {
            cfg,
            g0: Space::default(),
            g1: Space::default(),
            g2: Space::default(),
            loh: Space::default(),
            gen0_budget,
            gen2_budget,
            loh_budget,
            promoted_gen1_since_gen1: 0,
            ephemeral_since_gen1: 0,
            promoted_gen2_since_gen2: 0,
            loh_alloc_since_gen2: 0,
            pending: None,
            fg: None,
            bgc: None,
            next_seq: 0,
            suspension_start: None,
            suspension_len: 0,
            suspended_total: 0,
            gen0_collections: Counter::default(),
            gen1_collections: Counter::default(),
            gen2_collections: Counter::default(),
            background_collections: Counter::default(),
            allocated_bytes: Counter::default(),
            promoted_bytes: Counter::default(),
            gc_cpu_ns: Counter::default(),
            gen0_heap_size: Gauge::new(),
            gen1_heap_size: Gauge::new(),
            gen2_heap_size: Gauge::new(),
            loh_heap_size: Gauge::new(),
            promoted_from_gen1: Gauge::new(),
            pause_histogram: [0; 14],
            max_pause_ns: 0,
            pause_sum_ns: 0,
            pause_count: 0,
        };
        gc.gen0_heap_size.set(0, gen0_budget);
        gc
    }

    pub fn config(&self) -> &GcConfig {
        &self.cfg
    }

    /// The calibrated pause of a blocking gen2 with `live_objects` live objects.
    pub fn blocking_gen2_pause_ns(cfg: &GcConfig, live_objects: u64) -> u64 {
        let p = &cfg.pause;
        p.gen2_fixed_ns
            + cfg.fixed_extra_ns()
            + ns(p.ns_per_live_object * cfg.parallel_factor() * live_objects as f64)
    }

    /// The pause of a gen0/gen1 GC that keeps `survived_bytes`.
    pub fn ephemeral_pause_ns(cfg: &GcConfig, survived_bytes: u64) -> u64 {
        let p = &cfg.pause;
        let objects = survived_bytes as f64 / cfg.avg_object_bytes.max(1) as f64;
        p.eph_fixed_ns
            + cfg.fixed_extra_ns()
            + ns(cfg.parallel_factor()
                * (p.eph_ns_per_survived_object * objects
                    + p.moved_ns_per_byte * survived_bytes as f64))
    }

    /// A request step allocates `bytes`, of which `retained_bytes` stay referenced by the
    /// request until it ends. Returns a collection to start now if a budget is exhausted
    /// (and none is running), or a deferred one (`allocate(now, 0, 0)` just asks for it).
    pub fn allocate(
        &mut self,
        now: SimTime,
        bytes: u64,
        retained_bytes: u64,
    ) -> Option<Collection> {
        let retained = retained_bytes.min(bytes);
        let f = self.cfg.loh_fraction.clamp(0.0, 1.0);
        let large = if f > 0.0 {
            ns(bytes as f64 * f).min(bytes)
        } else {
            0
        };
        let large_retained = if f > 0.0 {
            ns(retained as f64 * f).min(retained).min(large)
        } else {
            0
        };
        self.allocated_bytes.add(bytes);
        self.g0.size += bytes - large;
        self.g0.retained += retained - large_retained;
        self.add_loh(large, large_retained);
        self.try_start(now)
    }

    /// Allocates large objects (each at least `loh_threshold_bytes`) straight into the LOH.
    pub fn allocate_large(
        &mut self,
        now: SimTime,
        bytes: u64,
        retained_bytes: u64,
    ) -> Option<Collection> {
        self.allocated_bytes.add(bytes);
        self.add_loh(bytes, retained_bytes.min(bytes));
        self.try_start(now)
    }

    fn add_loh(&mut self, bytes: u64, retained: u64) {
        self.loh.size += bytes;
        self.loh.retained += retained;
        self.loh_alloc_since_gen2 += bytes;
    }

    /// A request ended: the bytes it retained become garbage (oldest generation first).
    pub fn release(&mut self, _now: SimTime, retained_bytes: u64) {
        let soh = self.g0.retained + self.g1.retained + self.g2.retained;
        let total = soh + self.loh.retained;
        let r = retained_bytes.min(total);
        let from_loh = if total == 0 {
            0
        } else {
            ns(r as f64 * ratio(self.loh.retained, total)).min(self.loh.retained)
        };
        self.loh.retained -= from_loh;
        let mut left = r - from_loh;
        for s in [&mut self.g2, &mut self.g1, &mut self.g0] {
            let t = left.min(s.retained);
            s.retained -= t;
            left -= t;
        }
        if left > 0 {
            self.loh.retained -= left.min(self.loh.retained);
        }
    }

    /// Long-lived data (e.g. an in-memory cache reload): `bytes` of new data become live in
    /// gen2 (as if promoted there while being built; the ephemeral copying is left out) and
    /// count as allocated and as promoted into gen2; `freed_bytes` of the old long-lived data
    /// become garbage (oldest first). Returns a collection if the gen2 budget is exhausted.
    pub fn replace_long_lived(
        &mut self,
        now: SimTime,
        bytes: u64,
        freed_bytes: u64,
    ) -> Option<Collection> {
        let mut left = freed_bytes;
        for s in [&mut self.g2, &mut self.g1, &mut self.g0] {
            let t = left.min(s.long_lived);
            s.long_lived -= t;
            left -= t;
        }
        self.allocated_bytes.add(bytes);
        self.g2.size += bytes;
        self.g2.long_lived += bytes;
        self.promoted_gen2_since_gen2 += bytes;
        self.promoted_bytes.add(bytes);
        self.try_start(now)
    }

    /// Explicit `GC.Collect(generation)` (blocking). Deferred if a collection is running.
    pub fn collect(&mut self, now: SimTime, generation: Generation) -> Option<Collection> {
        self.pending = Some(self.pending.map_or(generation, |p| p.max(generation)));
        self.try_start(now)
    }

    fn suspended(&self) -> bool {
        self.fg.is_some() || self.bgc.as_ref().is_some_and(|b| b.suspended)
    }

    fn try_start(&mut self, now: SimTime) -> Option<Collection> {
        if self.suspended() {
            return None;
        }
        let explicit2 = self.pending == Some(Generation::Gen2);
        let budget2 = self.promoted_gen2_since_gen2 > self.gen2_budget
            || self.loh_alloc_since_gen2 > self.loh_budget;
        if self.bgc.is_none() && (explicit2 || budget2) {
            if !explicit2 && self.cfg.background {
                return Some(self.start_background(now));
            }
            if self.pending == Some(Generation::Gen2) {
                self.pending = None;
            }
            return Some(self.start_blocking_gen2(now));
        }
        let explicit_eph = matches!(self.pending, Some(Generation::Gen0 | Generation::Gen1));
        if explicit_eph || self.g0.size > self.gen0_budget {
            let gen1 = self.pending == Some(Generation::Gen1)
                || self.ephemeral_since_gen1 + 1 >= self.cfg.gen1_every
                || self.promoted_gen1_since_gen1 > self.cfg.gen1_budget_bytes;
            if explicit_eph {
                self.pending = None;
            }
            return Some(self.start_ephemeral(now, gen1));
        }
        None
    }

    fn gen0_survivors(&self) -> u64 {
        self.g0.live() + ns(self.cfg.survival_fraction.clamp(0.0, 1.0) * self.g0.garbage() as f64)
    }

    fn update_gen0_budget(&mut self, survivors: u64, begin: u64) {
        let (limit, max_limit) = self.cfg.gen0_growth;
        let f = surv_to_growth(ratio(survivors, begin), limit, max_limit);
        let lo = self
            .cfg
            .gen0_min_budget_bytes
            .min(self.cfg.gen0_budget_bytes);
        let want = ns(f * survivors as f64);
        self.gen0_budget = want.clamp(lo, self.cfg.gen0_budget_bytes).max(1);
    }

    fn update_gen2_budgets(
        &mut self,
        g2_live_before: u64,
        g2_begin: u64,
        loh_live_before: u64,
        loh_begin: u64,
    ) {
        let (l, m) = self.cfg.gen2_growth;
        let f = surv_to_growth(ratio(g2_live_before, g2_begin), l, m);
        self.gen2_budget = ns((f - 1.0).max(0.0) * self.g2.size as f64)
            .max(self.cfg.gen2_budget_bytes)
            .max(1);
        let (l, m) = self.cfg.loh_growth;
        let f = surv_to_growth(ratio(loh_live_before, loh_begin), l, m);
        self.loh_budget = ns((f - 1.0).max(0.0) * self.loh.size as f64)
            .max(self.cfg.loh_budget_bytes)
            .max(1);
        self.promoted_gen2_since_gen2 = 0;
        self.loh_alloc_since_gen2 = 0;
    }

    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn blocking(&self, generation: Generation, pause: u64) -> Collection {
        let threads = self.cfg.heaps();
        Collection {
            generation,
            blocking: true,
            pause_ns: pause,
            gc_threads: threads,
            cpu_ns: pause.saturating_mul(threads as u64),
            duration_ns: pause,
        }
    }

    fn start_ephemeral(&mut self, now: SimTime, gen1: bool) -> Collection {
        let begin0 = self.g0.size;
        let s0 = self.gen0_survivors();
        let (generation, survived) = if gen1 {
            let s1 = self.g1.live();
            self.promoted_from_gen1.set(now, s1);
            self.g2.size += s1;
            self.g2.retained += self.g1.retained;
            self.g2.long_lived += self.g1.long_lived;
            self.promoted_gen2_since_gen2 += s1;
            self.g1 = Space {
                size: s0,
                retained: self.g0.retained,
                long_lived: self.g0.long_lived,
            };
            self.promoted_gen1_since_gen1 = s0;
            self.ephemeral_since_gen1 = 0;
            (Generation::Gen1, s0 + s1)
        } else {
            self.g1.size += s0;
            self.g1.retained += self.g0.retained;
            self.g1.long_lived += self.g0.long_lived;
            self.promoted_gen1_since_gen1 += s0;
            self.ephemeral_since_gen1 += 1;
            (Generation::Gen0, s0)
        };
        self.g0 = Space::default();
        self.promoted_bytes.add(survived);
        self.update_gen0_budget(s0, begin0);
        self.update_size_gauges(now);
        let c = self.blocking(generation, Self::ephemeral_pause_ns(&self.cfg, survived));
        let seq = self.seq();
        self.fg = Some(Running {
            c,
            seq,
            started: None,
        });
        c
    }

    fn live_objects(&self, soh_bytes: u64, loh_bytes: u64) -> u64 {
        soh_bytes / self.cfg.avg_object_bytes.max(1)
            + loh_bytes / self.cfg.loh_threshold_bytes.max(1)
    }

    fn start_blocking_gen2(&mut self, now: SimTime) -> Collection {
        let begin0 = self.g0.size;
        let s0 = self.gen0_survivors();
        let s1 = self.g1.live();
        let (g2_live, g2_begin) = (self.g2.live(), self.g2.size);
        let (loh_live, loh_begin) = (self.loh.live(), self.loh.size);
        let objects = self.live_objects(s0 + s1 + g2_live, loh_live);
        let moved =
            ns(self.cfg.pause.moved_ns_per_byte * self.cfg.parallel_factor() * (s0 + s1) as f64);
        let pause = Self::blocking_gen2_pause_ns(&self.cfg, objects) + moved;
        self.promoted_from_gen1.set(now, s1);
        self.g2 = Space {
            size: g2_live + s1,
            retained: self.g2.retained + self.g1.retained,
            long_lived: self.g2.long_lived + self.g1.long_lived,
        };
        self.g1 = Space {
            size: s0,
            retained: self.g0.retained,
            long_lived: self.g0.long_lived,
        };
        self.g0 = Space::default();
        self.loh.size = loh_live;
        self.promoted_bytes.add(s0 + s1);
        self.promoted_gen1_since_gen1 = s0;
        self.ephemeral_since_gen1 = 0;
        self.update_gen0_budget(s0, begin0);
        self.update_gen2_budgets(g2_live, g2_begin, loh_live, loh_begin);
        self.update_size_gauges(now);
        let c = self.blocking(Generation::Gen2, pause);
        let seq = self.seq();
        self.fg = Some(Running {
            c,
            seq,
            started: None,
        });
        c
    }

    fn start_background(&mut self, now: SimTime) -> Collection {
        let soh_live = self.g0.live() + self.g1.live() + self.g2.live();
        let objects = self.live_objects(soh_live, self.loh.live());
        let p = &self.cfg.pause;
        let suspension = p.bgc_suspension_ns + self.cfg.fixed_extra_ns();
        let pause = 2 * suspension;
        let work = ns(p.ns_per_live_object
            * self.cfg.parallel_factor()
            * objects as f64
            * p.bgc_stretch.max(0.0));
        let duration = pause + work;
        let threads = self.cfg.heaps();
        let c = Collection {
            generation: Generation::Gen2,
            blocking: false,
            pause_ns: pause,
            gc_threads: threads,
            cpu_ns: duration.saturating_mul(threads as u64),
            duration_ns: duration,
        };
        let seq = self.seq();
        self.bgc = Some(RunningBgc {
            run: Running {
                c,
                seq,
                started: None,
            },
            suspended: true,
            garbage_gen2: self.g2.garbage(),
            garbage_loh: self.loh.garbage(),
            begin_gen2: self.g2.size,
            begin_loh: self.loh.size,
        });
        // Its budget restarts now; the new one is set when it ends.
        self.promoted_gen2_since_gen2 = 0;
        self.loh_alloc_since_gen2 = 0;
        self.update_size_gauges(now);
        c
    }

    fn update_size_gauges(&mut self, now: SimTime) {
        self.gen0_heap_size.set(now, self.gen0_budget);
        self.gen1_heap_size.set(now, self.g1.size);
        self.gen2_heap_size.set(now, self.g2.size);
        self.loh_heap_size.set(now, self.loh.size);
    }

    /// The engine started the collection returned above; the model schedules its end.
    pub fn begin(&mut self, now: SimTime, c: &Collection, fx: &mut impl Effects<GcTimer>) {
        if c.blocking {
            if let Some(r) = self
                .fg
                .as_mut()
                .filter(|r| r.started.is_none() && r.c == *c)
            {
                r.started = Some(now);
                let seq = r.seq;
                self.suspension_start = Some(now);
                self.suspension_len = c.pause_ns;
                fx.at(now.saturating_add(c.pause_ns), GcTimer::End { seq });
            }
        } else if let Some(b) = self
            .bgc
            .as_mut()
            .filter(|b| b.run.started.is_none() && b.run.c == *c)
        {
            b.run.started = Some(now);
            let seq = b.run.seq;
            self.suspension_start = Some(now);
            self.suspension_len = c.pause_ns;
            fx.at(
                now.saturating_add(c.pause_ns),
                GcTimer::BackgroundSuspensionEnd { seq },
            );
            fx.at(
                now.saturating_add(c.duration_ns),
                GcTimer::BackgroundEnd { seq },
            );
        }
    }

    fn end_suspension(&mut self, now: SimTime) {
        if let Some(start) = self.suspension_start.take() {
            let len = now.saturating_sub(start);
            self.suspended_total += len as u128;
            self.pause_sum_ns += len as u128;
            self.pause_count += 1;
            self.max_pause_ns = self.max_pause_ns.max(len);
            let i = PAUSE_BUCKET_UPPER_NS
                .iter()
                .position(|&u| len < u)
                .unwrap_or(PAUSE_BUCKET_UPPER_NS.len());
            self.pause_histogram[i] += 1;
        }
    }

    fn count(&mut self, generation: Generation) {
        self.gen0_collections.inc();
        if generation >= Generation::Gen1 {
            self.gen1_collections.inc();
        }
        if generation == Generation::Gen2 {
            self.gen2_collections.inc();
        }
    }

    /// Returns the finished collection (the engine resumes managed threads if it was
    /// blocking and [`Gc::blocking_in_progress`] is now false).
    pub fn on_timer(
        &mut self,
        now: SimTime,
        t: GcTimer,
        _fx: &mut impl Effects<GcTimer>,
    ) -> Option<Collection> {
        match t {
            GcTimer::End { seq } => {
                let r = self.fg.filter(|r| r.seq == seq && r.started.is_some())?;
                self.fg = None;
                self.end_suspension(now);
                self.count(r.c.generation);
                self.gc_cpu_ns.add(r.c.cpu_ns);
                Some(r.c)
            }
            GcTimer::BackgroundSuspensionEnd { seq } => {
                let b = self
                    .bgc
                    .as_mut()
                    .filter(|b| b.run.seq == seq && b.suspended)?;
                b.suspended = false;
                self.end_suspension(now);
                None
            }
            GcTimer::BackgroundEnd { seq } => {
                let b = self.bgc.filter(|b| b.run.seq == seq)?;
                self.bgc = None;
                if b.suspended {
                    self.end_suspension(now);
                }
                // Sweep what was dead when it started (and is still counted as garbage).
                let g2_live_before = b.begin_gen2.saturating_sub(b.garbage_gen2);
                let loh_live_before = b.begin_loh.saturating_sub(b.garbage_loh);
                self.g2.size -= b.garbage_gen2.min(self.g2.garbage());
                self.loh.size -= b.garbage_loh.min(self.loh.garbage());
                let (p2, pl) = (self.promoted_gen2_since_gen2, self.loh_alloc_since_gen2);
                self.update_gen2_budgets(
                    g2_live_before,
                    b.begin_gen2,
                    loh_live_before,
                    b.begin_loh,
                );
                // What was promoted during the background GC still counts against the new budget.
                self.promoted_gen2_since_gen2 = p2;
                self.loh_alloc_since_gen2 = pl;
                self.update_size_gauges(now);
                self.count(Generation::Gen2);
                self.background_collections.inc();
                self.gc_cpu_ns.add(b.run.c.cpu_ns);
                Some(b.run.c)
            }
        }
    }

    /// Any collection running (blocking, foreground or background).
    pub fn in_progress(&self) -> bool {
        self.fg.is_some() || self.bgc.is_some()
    }

    /// Managed threads are (to be) suspended: a blocking collection or a background GC's suspension.
    pub fn blocking_in_progress(&self) -> bool {
        self.suspended()
    }

    /// Bytes occupied by the heap (all generations and the LOH, live and dead).
    pub fn heap_bytes(&self) -> u64 {
        self.g0.size + self.g1.size + self.g2.size + self.loh.size
    }

    /// Live bytes: retained by requests in flight plus long-lived data.
    pub fn live_bytes(&self) -> u64 {
        self.g0.live() + self.g1.live() + self.g2.live() + self.loh.live()
    }

    /// Bytes held by requests in flight.
    pub fn retained_bytes(&self) -> u64 {
        self.g0.retained + self.g1.retained + self.g2.retained + self.loh.retained
    }

    /// Sizes (live + dead) of gen0, gen1, gen2 and the LOH.
    pub fn generation_sizes(&self) -> [u64; 4] {
        [self.g0.size, self.g1.size, self.g2.size, self.loh.size]
    }

    /// Current gen0 budget (bytes).
    pub fn gen0_budget(&self) -> u64 {
        self.gen0_budget
    }

    /// Current gen2 budget (bytes promoted into gen2 before a gen2 is due).
    pub fn gen2_budget(&self) -> u64 {
        self.gen2_budget
    }

    /// Integral of the time managed threads were suspended by the GC, up to `now` (ns).
    /// `% Time in GC` over an interval = its increase / the interval.
    pub fn time_in_gc_ns(&self, now: SimTime) -> u128 {
        let cur = self
            .suspension_start
            .map_or(0, |s| now.saturating_sub(s).min(self.suspension_len));
        self.suspended_total + cur as u128
    }

    /// Mean suspension (ns), 0 if none.
    pub fn mean_pause_ns(&self) -> f64 {
        if self.pause_count == 0 {
            0.0
        } else {
            self.pause_sum_ns as f64 / self.pause_count as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::effects::Recorder;
    use crate::time::{MILLIS, SECONDS};

    /// Runs a returned collection to its end; returns the end time.
    fn run(gc: &mut Gc, now: SimTime, c: Collection) -> SimTime {
        let mut fx = Recorder::default();
        gc.begin(now, &c, &mut fx);
        let mut end = now;
        while let Some((t, timer)) = fx.pop_earliest() {
            assert!(t >= end);
            end = t;
            let mut fx2 = Recorder::default();
            if let Some(done) = gc.on_timer(t, timer, &mut fx2) {
                assert_eq!(done, c);
            }
            assert!(fx2.timers.is_empty());
        }
        assert!(!gc.in_progress());
        end
    }

    fn fixed(mut cfg: GcConfig, budget: u64) -> GcConfig {
        cfg.gen0_budget_bytes = budget;
        cfg.gen0_min_budget_bytes = budget;
        cfg
    }

    #[test]
    fn calibrated_gen2_pause_matches_the_fit() {
        let ws = GcConfig::new(GcFlavor::Workstation, false, 2);
        let sv = GcConfig::new(GcFlavor::Server, false, 2);
        assert_eq!(Gc::blocking_gen2_pause_ns(&ws, 0), 835_000);
        assert_eq!(Gc::blocking_gen2_pause_ns(&ws, 10_000_000), 137_835_000);
        assert_eq!(Gc::blocking_gen2_pause_ns(&sv, 0), 1_125_000);
        // 13.7 × (0.55 + 0.45/2) = 10.6175 ns/object.
        assert_eq!(
            Gc::blocking_gen2_pause_ns(&sv, 10_000_000),
            1_125_000 + 106_175_000
        );
        // Single processor: always workstation.
        assert_eq!(
            GcConfig::new(GcFlavor::Server, true, 1).flavor,
            GcFlavor::Workstation
        );
    }

    #[test]
    fn defaults_follow_the_runtime() {
        let ws = GcConfig::new(GcFlavor::Workstation, true, 16);
        assert_eq!(ws.gen0_min_budget_bytes, 10 * MB);
        assert_eq!(ws.gen0_budget_bytes, 10 * MB); // 6 MB raised to the minimum
        let sv = GcConfig::new(GcFlavor::Server, true, 16);
        assert_eq!(sv.segment_bytes, 1024 * MB);
        assert_eq!(sv.gen0_budget_bytes, 16 * 200 * MB);
        assert_eq!(sv.gen0_min_budget_bytes, 16 * (20 * MB / 8 * 5));
        assert_eq!(
            GcConfig::new(GcFlavor::Server, false, 4).segment_bytes,
            4096 * MB
        );
        assert_eq!(surv_to_growth(0.0, 9.0, 20.0), 9.0);
        assert_eq!(surv_to_growth(1.0, 1.2, 1.8), 1.8);
    }

    #[test]
    fn gen0_triggers_at_the_budget() {
        let mut gc = Gc::new(fixed(
            GcConfig::new(GcFlavor::Workstation, true, 2),
            10 * MB,
        ));
        for _ in 0..10 {
            assert_eq!(gc.allocate(0, MB, 0), None);
        }
        assert_eq!(gc.heap_bytes(), 10 * MB);
        let c = gc.allocate(0, 1, 0).expect("over the budget");
        assert_eq!(c.generation, Generation::Gen0);
        assert!(c.blocking);
        assert_eq!(c.gc_threads, 1);
        assert_eq!(c.duration_ns, c.pause_ns);
        assert!(gc.in_progress() && gc.blocking_in_progress());
        // Nothing retained: 1 % of 10 MB survives (mid-life garbage).
        let surv = ns(0.01 * (10 * MB + 1) as f64);
        assert_eq!(c.pause_ns, Gc::ephemeral_pause_ns(gc.config(), surv));
        run(&mut gc, 0, c);
        assert_eq!(gc.gen0_collections.total(), 1);
        assert_eq!(gc.gen1_collections.total(), 0);
        assert_eq!(gc.generation_sizes()[0], 0);
        assert_eq!(gc.generation_sizes()[1], surv);
        assert_eq!(gc.allocated_bytes.total(), 10 * MB + 1);
    }

    #[test]
    fn dynamic_gen0_budget_grows_with_survival() {
        let cfg = GcConfig::new(GcFlavor::Server, false, 4);
        let min = cfg.gen0_min_budget_bytes;
        let mut gc = Gc::new(cfg);
        assert_eq!(gc.gen0_budget(), min);
        // Half of gen0 retained by requests in flight: survivors 25 MB → budget 40 × 25 MB... capped.
        let c = loop {
            if let Some(c) = gc.allocate(0, MB, MB / 2) {
                break c;
            }
        };
        run(&mut gc, 0, c);
        assert!(gc.gen0_budget() > min, "{} > {}", gc.gen0_budget(), min);
        assert!(gc.gen0_budget() <= gc.config().gen0_budget_bytes);
    }

    #[test]
    fn in_flight_bytes_survive_and_promote_to_gen1_then_gen2() {
        let mut cfg = fixed(GcConfig::new(GcFlavor::Workstation, true, 2), 10 * MB);
        cfg.survival_fraction = 0.0;
        cfg.gen1_every = 3;
        let mut gc = Gc::new(cfg);
        let mut now = 0;
        let mut pauses = Vec::new();
        // Each round: 11 MB allocated, 2 MB of it held by requests still in flight (async waits).
        for round in 0..3 {
            let c = loop {
                if let Some(c) = gc.allocate(
                    now,
                    MB,
                    if gc.generation_sizes()[0] < 2 * MB {
                        MB
                    } else {
                        0
                    },
                ) {
                    break c;
                }
            };
            pauses.push(c.pause_ns);
            let want = if round == 2 {
                Generation::Gen1
            } else {
                Generation::Gen0
            };
            assert_eq!(c.generation, want, "round {round}");
            now = run(&mut gc, now, c) + 10 * MILLIS;
        }
        // After two gen0s gen1 held 4 MB; the gen1 promoted them to gen2 and 2 MB to gen1.
        let [g0, g1, g2, _] = gc.generation_sizes();
        assert_eq!((g0, g1, g2), (0, 2 * MB, 4 * MB));
        assert_eq!(gc.live_bytes(), 6 * MB);
        assert_eq!(gc.promoted_from_gen1.get(), 4 * MB);
        // The gen1 survived 6 MB against 2 MB: a longer pause.
        assert!(pauses[2] > pauses[0]);
        // More retained bytes → longer gen0 pause.
        let more = Gc::ephemeral_pause_ns(gc.config(), 8 * MB);
        assert!(more > Gc::ephemeral_pause_ns(gc.config(), 2 * MB));
        // Requests end: their bytes become garbage where they live (oldest first), no longer live.
        gc.release(now, 5 * MB);
        assert_eq!(gc.live_bytes(), MB);
        assert_eq!(gc.heap_bytes(), 6 * MB);
        let c = gc.collect(now, Generation::Gen2).expect("explicit gen2");
        assert!(c.blocking);
        assert_eq!(c.pause_ns, Gc::blocking_gen2_pause_ns(gc.config(), MB / 48));
        run(&mut gc, now, c);
        assert_eq!(gc.heap_bytes(), MB);
        assert_eq!(
            (
                gc.gen0_collections.total(),
                gc.gen1_collections.total(),
                gc.gen2_collections.total()
            ),
            (4, 2, 1)
        );
    }

    const GB: u64 = 1 << 30;

    /// A 2 GB cache reloaded (the old one freed) under 16-processor server GC.
    fn cache_reload(background: bool) -> (Gc, Collection) {
        let mut gc = Gc::new(GcConfig::new(GcFlavor::Server, background, 16));
        let c = gc
            .replace_long_lived(0, 2 * GB, 0)
            .expect("first load exceeds the gen2 budget");
        let end = run(&mut gc, 0, c);
        let now = end + 60 * SECONDS;
        assert_eq!(gc.live_bytes(), 2 * GB);
        let c = gc
            .replace_long_lived(now, 2 * GB, 2 * GB)
            .expect("reload exceeds the gen2 budget");
        assert_eq!(gc.live_bytes(), 2 * GB);
        (gc, c)
    }

    #[test]
    fn cache_reload_with_blocking_server_gc_40() {
        let (mut gc, c) = cache_reload(false);
        assert_eq!(c.generation, Generation::Gen2);
        assert!(c.blocking);
        assert_eq!(c.gc_threads, 16);
        let objects = 2 * GB / 48;
        assert_eq!(c.pause_ns, Gc::blocking_gen2_pause_ns(gc.config(), objects));
        // 44.7 M objects × 13.7 × (0.55 + 0.45/16) ns ≈ 354 ms: a third of a second with every
        // request thread stopped (seed 003: ~1000 queued requests at >1000 requests/s).
        assert!(
            c.pause_ns > 300 * MILLIS && c.pause_ns < 400 * MILLIS,
            "{}",
            c.pause_ns
        );
        let start = 100 * SECONDS;
        let end = run(&mut gc, start, c);
        assert_eq!(end - start, c.pause_ns);
        assert_eq!(gc.heap_bytes(), 2 * GB);
        assert_eq!(gc.max_pause_ns, c.pause_ns);
        assert_eq!(gc.pause_histogram[11], 2); // 200–500 ms: the initial load and the reload
    }

    #[test]
    fn cache_reload_with_background_gc_blocks_much_less() {
        let (_, cb) = cache_reload(false);
        let (mut gc, c) = cache_reload(true);
        assert_eq!(c.generation, Generation::Gen2);
        assert!(!c.blocking);
        assert!(
            c.pause_ns * 50 < cb.pause_ns,
            "{} vs {}",
            c.pause_ns,
            cb.pause_ns
        );
        assert!(c.duration_ns >= cb.pause_ns);
        assert_eq!(c.cpu_ns, c.duration_ns * 16);
        // A gen0 may run in the foreground during it, but not during its suspension.
        let start = 200 * SECONDS;
        let before = gc.time_in_gc_ns(start);
        let mut fx = Recorder::default();
        gc.begin(start, &c, &mut fx);
        assert!(gc.blocking_in_progress());
        let budget = gc.gen0_budget();
        assert_eq!(
            gc.allocate(start, budget + 1, 0),
            None,
            "deferred during the suspension"
        );
        let (t, timer) = fx.pop_earliest().unwrap();
        assert_eq!(t, start + c.pause_ns);
        assert_eq!(gc.on_timer(t, timer, &mut fx), None);
        assert!(gc.in_progress() && !gc.blocking_in_progress());
        let fg = gc.allocate(t, 0, 0).expect("foreground gen0");
        assert!(fg.blocking && fg.generation == Generation::Gen0);
        // No second gen2 while the background one runs, even when asked explicitly.
        gc.begin(t, &fg, &mut fx);
        assert_eq!(gc.collect(t, Generation::Gen2), None);
        let mut ends = Vec::new();
        while let Some((t, timer)) = fx.pop_earliest() {
            if let Some(done) = gc.on_timer(t, timer, &mut fx) {
                ends.push((t, done.generation, done.blocking));
            }
        }
        assert_eq!(ends[0], (t + fg.pause_ns, Generation::Gen0, true));
        assert_eq!(ends[1], (start + c.duration_ns, Generation::Gen2, false));
        assert_eq!(gc.heap_bytes() - gc.generation_sizes()[1], 2 * GB);
        // The deferred explicit gen2 is handed out now, blocking.
        let next = gc
            .allocate(start + c.duration_ns, 0, 0)
            .expect("deferred gen2");
        assert!(next.blocking && next.generation == Generation::Gen2);
        // Time in GC: the BGC suspensions and the foreground gen0.
        let after = start + c.duration_ns;
        assert_eq!(
            gc.time_in_gc_ns(after),
            before + c.pause_ns as u128 + fg.pause_ns as u128
        );
        assert_eq!(gc.background_collections.total(), 2);
    }

    #[test]
    fn blocking_collections_never_overlap_and_time_in_gc_integrates() {
        let mut cfg = fixed(GcConfig::new(GcFlavor::Server, false, 4), 4 * MB);
        cfg.gen1_every = 4;
        let mut gc = Gc::new(cfg);
        let mut fx = Recorder::default();
        let mut now: SimTime = 0;
        let mut running: Option<(Collection, SimTime)> = None;
        let mut suspended_ns: u128 = 0;
        let mut requested = 0u64;
        for i in 0..20_000u64 {
            now += 50_000; // 50 µs
            while let Some(&(t, _)) = fx.timers.iter().min_by_key(|(t, _)| *t) {
                if t > now {
                    break;
                }
                let (t, timer) = fx.pop_earliest().unwrap();
                if let Some(done) = gc.on_timer(t, timer, &mut fx) {
                    let (c, start) = running.take().expect("one running");
                    assert_eq!(done, c);
                    assert_eq!(t - start, c.pause_ns);
                    suspended_ns += c.pause_ns as u128;
                    assert!(!gc.blocking_in_progress());
                    if let Some(next) = gc.allocate(t, 0, 0) {
                        gc.begin(t, &next, &mut fx);
                        running = Some((next, t));
                    }
                }
            }
            // Threads keep allocating (some in native code), and someone calls GC.Collect.
            let got = if i % 5000 == 4999 {
                requested += 1;
                gc.collect(now, Generation::Gen2)
            } else {
                gc.allocate(now, 256 * 1024, if i % 3 == 0 { 64 * 1024 } else { 0 })
            };
            if i % 7 == 0 {
                gc.release(now, 64 * 1024);
            }
            if let Some(c) = got {
                assert!(
                    running.is_none(),
                    "a second blocking collection while one runs"
                );
                gc.begin(now, &c, &mut fx);
                running = Some((c, now));
            }
            let cur = running.map_or(0, |(c, s)| (now - s).min(c.pause_ns) as u128);
            assert_eq!(gc.time_in_gc_ns(now), suspended_ns + cur);
        }
        assert!(gc.gen2_collections.total() >= requested);
        let (g0, g1, g2) = (
            gc.gen0_collections.total(),
            gc.gen1_collections.total(),
            gc.gen2_collections.total(),
        );
        assert!(g0 > g1 && g1 > g2, "{g0} {g1} {g2}");
        assert_eq!(gc.pause_count, gc.pause_histogram.iter().sum::<u64>());
        assert_eq!(gc.pause_sum_ns, suspended_ns);
    }
}
