//! Memory follows what is in flight, not simulated time (ARCHITECTURE.md's invariant):
//! the same scenario run four times longer reaches the same peak of allocated bytes.
//! Every allocation of this test binary goes through a counting allocator, so the peak
//! is measured, not estimated; the runs are in one test so that nothing else allocates
//! meanwhile.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

mod common;

struct Counting;

static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = NOW.fetch_add(by, Relaxed) + by;
    PEAK.fetch_max(now, Relaxed);
}

// SAFETY: every call is forwarded to the system allocator unchanged; the counters only
// observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        NOW.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                NOW.fetch_sub(layout.size() - new_size, Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Peak bytes allocated while `scenario` runs for `duration` (the scenario itself and
/// what was allocated before are not counted).
fn peak_bytes(scenario: &str, duration: &str, overrides: &[&str]) -> usize {
    let d = format!("duration={duration}");
    let mut o = overrides.to_vec();
    o.push(&d);
    let scn = common::load(scenario, &o);
    let base = NOW.load(Relaxed);
    PEAK.store(base, Relaxed);
    let summary = common::run(&scn);
    let peak = PEAK.load(Relaxed) - base;
    drop(summary);
    peak
}

#[test]
fn a_run_four_times_longer_allocates_no_more_at_its_peak() {
    // Each scenario's own duration covers its incident (the moment most is in flight);
    // four times as long adds only steady time after it. Together they use every model:
    // HTTP.SYS, IIS/ASP.NET, the thread pool, GC, the kernel cache, AFD, outgoing calls,
    // connection pools and ports in TIME_WAIT, valves, session locks, and a farm with its
    // balancer and retrying clients.
    let cases: [(&str, &str, &str, &[&str]); 12] = [
        ("queue-full-burst.toml", "150s", "600s", &[]),
        ("thread-injection-burst.toml", "60s", "240s", &[]),
        ("aspnet-concurrency-12.toml", "40s", "160s", &[]),
        ("so-2013-async-outgoing.toml", "15m", "60m", &[]),
        ("gc-cache-reload.toml", "60s", "240s", &[]),
        ("httpsys-cache-flush.toml", "3h", "12h", &[]),
        ("iis-file-cache-nas.toml", "1h", "4h", &[]),
        ("loopback-afd-firewall.toml", "120s", "480s", &[]),
        ("valve-sampling-lag.toml", "70s", "280s", &[]),
        ("farm-cascade.toml", "180s", "720s", &[]),
        ("farm-weights.toml", "120s", "480s", &[]),
        ("session-lock-ajax.toml", "120s", "480s", &[]),
    ];
    let mut report = Vec::new();
    for (file, short, long, o) in cases {
        let a = peak_bytes(file, short, o);
        let b = peak_bytes(file, long, o);
        report.push(format!("{file}: {a} B over {short}, {b} B over {long}"));
        // A container that doubles its capacity once more is not growth with time; a
        // per-request or per-sample record would be (four times the requests).
        assert!(
            b <= a + a / 2 + 64 * 1024,
            "{file}: the peak of allocated bytes grew with simulated time: {a} B over {short}, \
             {b} B over {long}\n{}",
            report.join("\n")
        );
    }
    eprintln!("{}", report.join("\n"));
}
