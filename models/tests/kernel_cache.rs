//! The HTTP.SYS kernel response cache: admission by frequentHitThreshold, exact TTL expiry,
//! the two-pass scavenger, flushes, the size cap, and the hit ratio of a Zipf catalogue
//! under Poisson requests against a renewal-reward calculation.

use proptest::prelude::*;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use w3sim_models::effects::Recorder;
use w3sim_models::kernel_cache::{
    CacheTimer, FlushReason, KernelCache, KernelCacheConfig, Lookup, WhenFull,
};
use w3sim_models::time::SECONDS;
use w3sim_models::urls::UrlCatalogue;

/// The cache with its one timer source.
struct Bench {
    cache: KernelCache,
    fx: Recorder<CacheTimer>,
}

impl Bench {
    fn new(cfg: KernelCacheConfig) -> Self {
        let mut b = Self {
            cache: KernelCache::new(cfg),
            fx: Recorder::default(),
        };
        b.cache.start(0, &mut b.fx);
        b
    }

    /// Fires every timer due up to and including `t`.
    fn run_until(&mut self, t: u64) {
        while self.fx.timers.iter().any(|&(at, _)| at <= t) {
            let (at, timer) = self.fx.pop_earliest().unwrap();
            self.cache.on_timer(at, timer, &mut self.fx);
        }
        self.cache.advance(t);
    }

    /// A request with zero service time: lookup, and on a miss the response at once.
    fn request(&mut self, t: u64, url: u64, bytes: u64) -> Lookup {
        self.run_until(t);
        let r = self.cache.lookup(t, url, bytes, true);
        if r == Lookup::Miss {
            self.cache.response(t, url, bytes, true);
        }
        r
    }
}

fn removed(c: &KernelCache) -> u64 {
    c.expired_ttl.total()
        + c.scavenged.total()
        + c.flushed_recycle.total()
        + c.flushed_other.total()
        + c.evicted_size.total()
}

#[test]
fn two_responses_within_ten_seconds_are_needed() {
    let mut b = Bench::new(KernelCacheConfig::default());
    // Two responses exactly 10 s apart: the window has closed, the second opens a new one.
    assert_eq!(b.request(0, 1, 1000), Lookup::Miss);
    assert_eq!(b.request(10 * SECONDS, 1, 1000), Lookup::Miss);
    assert_eq!(b.cache.inserted.total(), 0);
    // The next one 1 ns short of 10 s after that is the second within the window.
    assert_eq!(b.request(20 * SECONDS - 1, 1, 1000), Lookup::Miss);
    assert_eq!(b.cache.inserted.total(), 1);
    assert_eq!(b.request(20 * SECONDS, 1, 1000), Lookup::Hit);
    // Non-cacheable requests never hit and are never admitted.
    for t in 0..5 {
        assert_eq!(b.cache.lookup(t * SECONDS, 2, 10, false), Lookup::Miss);
        b.cache.response(t * SECONDS, 2, 10, false);
    }
    assert!(!b.cache.contains(5 * SECONDS, 2));
    // Too large: reaches the threshold but is not cached.
    b.request(30 * SECONDS, 3, 262_145);
    b.request(31 * SECONDS, 3, 262_145);
    assert_eq!(b.cache.too_large.total(), 1);
    assert_eq!(b.request(32 * SECONDS, 3, 262_145), Lookup::Miss);
}

#[test]
fn the_tracker_forgets_closed_windows() {
    let mut b = Bench::new(KernelCacheConfig {
        scavenger_period_ns: 0,
        ..Default::default()
    });
    for url in 0..100_000 {
        b.request(url * 1_000_000, url, 100); // one request per URL, 1 ms apart
    }
    // Only the URLs of the last 10 s are remembered.
    assert!(
        b.cache.tracked_urls() <= 10_001,
        "{}",
        b.cache.tracked_urls()
    );
    b.run_until(200 * SECONDS);
    assert_eq!(b.cache.tracked_urls(), 0);
}

#[test]
fn entries_expire_exactly_at_the_ttl() {
    let ttl = 900 * SECONDS;
    let mut b = Bench::new(KernelCacheConfig {
        ttl_ns: Some(ttl),
        scavenger_period_ns: 0,
        ..Default::default()
    });
    b.request(0, 9, 5000);
    b.request(SECONDS, 9, 5000); // inserted at 1 s
    assert_eq!(b.cache.current_uris_cached.get(), 1);
    b.cache.advance(SECONDS + ttl - 1);
    assert_eq!(b.cache.current_uris_cached.get(), 1);
    assert_eq!(
        b.cache.lookup(SECONDS + ttl - 1, 9, 5000, true),
        Lookup::Hit
    );
    // Nothing happens until 1000 s; the gauge still drops at exactly 901 s.
    b.cache.advance(1000 * SECONDS);
    assert_eq!(b.cache.current_uris_cached.get(), 0);
    assert_eq!(b.cache.cached_bytes.get(), 0);
    assert_eq!(b.cache.expired_ttl.total(), 1);
    assert_eq!(b.cache.current_uris_cached.mean(1000 * SECONDS), 0.9);
    assert_eq!(
        b.cache.cached_bytes.mean(1000 * SECONDS),
        5000.0 * 900.0 / 1000.0
    );
    // At the expiry instant itself it is a miss.
    let mut c = Bench::new(KernelCacheConfig {
        ttl_ns: Some(ttl),
        scavenger_period_ns: 0,
        ..Default::default()
    });
    c.request(0, 9, 5000);
    c.request(0, 9, 5000);
    assert_eq!(c.cache.lookup(ttl, 9, 5000, true), Lookup::Miss);
}

#[test]
fn the_scavenger_evicts_entries_not_hit_between_two_passes() {
    // Passes at 120 s, 240 s, 360 s, …
    let mut b = Bench::new(KernelCacheConfig::default());
    for url in [1, 2] {
        b.request(10 * SECONDS, url, 100);
        b.request(11 * SECONDS, url, 100);
    }
    assert_eq!(b.request(111 * SECONDS, 1, 100), Lookup::Hit);
    b.request(118 * SECONDS, 3, 100);
    b.request(119 * SECONDS, 3, 100);
    assert_eq!(b.cache.current_uris_cached.get(), 3);
    assert_eq!(b.request(211 * SECONDS, 1, 100), Lookup::Hit);
    // Never hit after insertion: gone at the second pass (URL 2 after 229 s, URL 3 after
    // 121 s).
    b.run_until(240 * SECONDS - 1);
    assert!(b.cache.contains(240 * SECONDS - 1, 2));
    assert!(b.cache.contains(240 * SECONDS - 1, 3));
    b.run_until(240 * SECONDS);
    assert!(!b.cache.contains(240 * SECONDS, 2));
    assert!(!b.cache.contains(240 * SECONDS, 3));
    // URL 1, hit every 100 s, survives for an hour.
    let mut t = 311 * SECONDS;
    while t < 3600 * SECONDS {
        assert_eq!(b.request(t, 1, 100), Lookup::Hit, "at {t}");
        t += 100 * SECONDS;
    }
    assert_eq!(b.cache.scavenged.total(), 2);
    // Hit only once, at 250 s (between the 240 s and 360 s passes): removed at 480 s.
    let mut c = Bench::new(KernelCacheConfig::default());
    c.request(200 * SECONDS, 5, 1);
    c.request(201 * SECONDS, 5, 1);
    assert_eq!(c.request(250 * SECONDS, 5, 1), Lookup::Hit);
    c.run_until(480 * SECONDS - 1);
    assert!(c.cache.contains(480 * SECONDS - 1, 5));
    c.run_until(480 * SECONDS);
    assert!(!c.cache.contains(480 * SECONDS, 5));
}

#[test]
fn flushes_remove_everything_and_count_per_reason() {
    let mut b = Bench::new(KernelCacheConfig {
        frequent_hit_threshold: 1,
        ..Default::default()
    });
    for url in 0..50 {
        b.request(SECONDS, url, 10);
    }
    b.cache.flush(2 * SECONDS, FlushReason::IdleTimeout);
    assert_eq!(b.cache.current_uris_cached.get(), 0);
    assert_eq!(b.cache.cached_bytes.get(), 0);
    assert_eq!(b.request(3 * SECONDS, 7, 10), Lookup::Miss);
    for url in 0..20 {
        b.request(4 * SECONDS, url, 10);
    }
    b.cache.flush(5 * SECONDS, FlushReason::Recycle);
    for url in 0..5 {
        b.request(6 * SECONDS, url, 10);
    }
    b.cache.flush(7 * SECONDS, FlushReason::Manual);
    b.cache.flush(8 * SECONDS, FlushReason::Stop);
    let c = &b.cache;
    assert_eq!(c.flushes.total(), 4);
    assert_eq!(
        (
            c.flushes_idle_timeout.total(),
            c.flushes_recycle.total(),
            c.flushes_manual.total(),
            c.flushes_stop.total()
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(c.flushed_recycle.total(), 50 + 20);
    assert_eq!(c.flushed_other.total(), 5);
    assert_eq!(c.inserted.total(), removed(c));
}

#[test]
fn a_recycle_also_forgets_the_frequent_hit_counts() {
    let mut b = Bench::new(KernelCacheConfig::default());
    b.request(0, 1, 10);
    b.cache.flush(SECONDS, FlushReason::Recycle);
    b.request(2 * SECONDS, 1, 10); // first response seen by the new process
    assert_eq!(b.cache.inserted.total(), 0);
    b.request(3 * SECONDS, 1, 10);
    assert_eq!(b.cache.inserted.total(), 1);
}

#[test]
fn the_size_cap_evicts_lru_or_refuses() {
    let cfg = KernelCacheConfig {
        frequent_hit_threshold: 1,
        max_cache_bytes: 1000,
        ..Default::default()
    };
    let mut lru = Bench::new(KernelCacheConfig {
        when_full: WhenFull::EvictLru,
        ..cfg.clone()
    });
    for url in 0..3 {
        lru.request(url * SECONDS, url, 300);
    }
    assert_eq!(lru.request(4 * SECONDS, 0, 300), Lookup::Hit); // 1 is now the LRU
    lru.request(5 * SECONDS, 3, 300);
    assert_eq!(lru.cache.evicted_size.total(), 1);
    assert!(lru.cache.contains(5 * SECONDS, 0));
    assert!(!lru.cache.contains(5 * SECONDS, 1));
    assert_eq!(lru.cache.cached_bytes.get(), 900);
    lru.request(6 * SECONDS, 4, 1000); // evicts everything
    assert_eq!(lru.cache.current_uris_cached.get(), 1);
    assert_eq!(lru.cache.evicted_size.total(), 4);
    assert_eq!(lru.cache.cached_bytes.get(), 1000);

    let mut refuse = Bench::new(cfg);
    for url in 0..4 {
        refuse.request(url * SECONDS, url, 300);
    }
    assert_eq!(refuse.cache.refused_full.total(), 1);
    assert_eq!(refuse.cache.current_uris_cached.get(), 3);
    assert_eq!(refuse.request(5 * SECONDS, 3, 300), Lookup::Miss);
}

/// Renewal-reward hit probability of one URL with Poisson rate `lambda` (per s) under
/// "cache after `2` responses within `w` seconds, keep for `ttl` seconds" with zero service
/// time and no scavenger. A cycle starts with a miss that opens a window; each window is
/// followed by another request within `w` with probability p = 1 − e^{−λw} (that request is
/// the admitting miss), otherwise the next request opens a new window. Misses per cycle:
/// 1/p + 1. The entry then lives `ttl`, collecting λ·ttl hits on average, and the first
/// request after expiry starts the next cycle.
fn hit_probability(lambda: f64, w: f64, ttl: f64) -> f64 {
    let p = -(-lambda * w).exp_m1();
    if p == 0.0 {
        return 0.0;
    }
    let hits = lambda * ttl;
    hits / (hits + 1.0 / p + 1.0)
}

#[test]
fn zipf_hit_ratio_matches_the_renewal_calculation() {
    let urls = 2_000;
    let s = 0.9;
    let rate = 100.0; // requests/s in total
    let ttl = 900.0;
    let cat = UrlCatalogue::new(urls, s);
    let expect: f64 = (0..urls)
        .map(|k| cat.probability(k) * hit_probability(rate * cat.probability(k), 10.0, ttl))
        .sum();

    let mut b = Bench::new(KernelCacheConfig {
        ttl_ns: Some(900 * SECONDS),
        scavenger_period_ns: 0,
        ..Default::default()
    });
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(2024);
    let warmup = 3_600.0;
    let end = warmup + 36_000.0;
    let mut t = 0.0;
    let mut marked = false;
    while t < end {
        t += -(1.0 - rng.random::<f64>()).ln() / rate;
        if !marked && t >= warmup {
            b.cache.hits.mark();
            b.cache.misses.mark();
            marked = true;
        }
        let k = cat.sample(&mut rng);
        b.request((t * 1e9) as u64, k, 1000);
    }
    let c = &b.cache;
    let got = c.hits.since_mark() as f64 / (c.hits.since_mark() + c.misses.since_mark()) as f64;
    // 3.6 M requests; per-URL hits come in runs of ~λ·900, so the noise is far above the
    // binomial 2e-4: allow 0.005 absolute (one run gave 0.9010 vs 0.9010).
    eprintln!("hit ratio: simulated {got:.4}, renewal calculation {expect:.4}");
    assert!(
        (got - expect).abs() < 0.005,
        "simulated hit ratio {got:.4}, renewal calculation {expect:.4}"
    );
    // Sanity: the answer is not trivially near 0 or 1.
    assert!(expect > 0.5 && expect < 0.99, "{expect}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// A hit needs `threshold` responses for the URL within one window before it, and every
    /// entry inserted is either still cached or counted once among the removal causes.
    #[test]
    fn admission_and_conservation(
        threshold in 1u32..4,
        ttl_s in prop::option::of(1u64..400),
        gaps_ms in prop::collection::vec((0u64..30_000, 0u64..4, any::<bool>()), 1..300),
        flush_at in prop::collection::vec(0usize..300, 0..3),
    ) {
        let period = 10 * SECONDS;
        let mut b = Bench::new(KernelCacheConfig {
            frequent_hit_threshold: threshold,
            ttl_ns: ttl_s.map(|s| s * SECONDS),
            max_cache_bytes: 250,
            when_full: WhenFull::EvictLru,
            ..Default::default()
        });
        let mut responses: Vec<Vec<u64>> = vec![Vec::new(); 4];
        let mut t = 0;
        for (i, &(gap, url, big)) in gaps_ms.iter().enumerate() {
            t += gap * 1_000_000;
            if flush_at.contains(&i) {
                b.run_until(t);
                b.cache.flush(t, FlushReason::Recycle);
                for r in responses.iter_mut() { r.clear(); }
            }
            let bytes = if big { 120 } else { 40 };
            let r = b.request(t, url, bytes);
            if r == Lookup::Hit {
                let rs = &responses[url as usize];
                let th = threshold as usize;
                prop_assert!(rs.len() >= th);
                prop_assert!(rs.windows(th).any(|w| w[th - 1] - w[0] < period));
            } else {
                responses[url as usize].push(t);
            }
            let c = &b.cache;
            prop_assert_eq!(c.inserted.total(), c.current_uris_cached.get() + removed(c));
            prop_assert!(c.cached_bytes.get() <= 250);
        }
        b.run_until(t + 1000 * SECONDS);
        let c = &b.cache;
        prop_assert_eq!(c.inserted.total(), c.current_uris_cached.get() + removed(c));
        prop_assert_eq!(c.current_uris_cached.get(), 0); // the scavenger empties an idle cache
        prop_assert_eq!(c.current_uris_cached.underflows(), 0);
    }
}
