//! IIS's user-mode file cache against a plain reference model: any sequence of lookups, reads
//! and flushes gives the same answers, entries, counters and gauges as a cache that scans every
//! entry (expiry by last reference, date checks, the LRU cap), and its reference queue stays
//! bounded by the files cached.

use std::collections::HashMap;

use proptest::prelude::*;
use w3sim_models::file_cache::{FileCache, FileCacheConfig, FileLookup};
use w3sim_models::time::MILLIS;

#[derive(Clone, Copy, Debug)]
struct Entry {
    bytes: u64,
    /// Order of the last reference (larger = more recent).
    seq: u64,
    last_ref: u64,
    checked: u64,
}

/// The obvious implementation: scan everything on every call.
struct Reference {
    cfg: FileCacheConfig,
    entries: HashMap<u64, Entry>,
    seq: u64,
    hits: u64,
    misses: u64,
    checks: u64,
    expired: u64,
    evicted: u64,
    too_large: u64,
}

impl Reference {
    fn new(cfg: FileCacheConfig) -> Self {
        Self {
            cfg,
            entries: HashMap::new(),
            seq: 0,
            hits: 0,
            misses: 0,
            checks: 0,
            expired: 0,
            evicted: 0,
            too_large: 0,
        }
    }

    fn expire(&mut self, now: u64) {
        if let Some(ttl) = self.cfg.object_cache_ttl_ns {
            let before = self.entries.len();
            self.entries.retain(|_, e| e.last_ref + ttl > now);
            self.expired += (before - self.entries.len()) as u64;
        }
    }

    fn touch(&mut self, now: u64, url: u64) {
        self.seq += 1;
        let e = self.entries.get_mut(&url).unwrap();
        e.seq = self.seq;
        e.last_ref = now;
    }

    fn lookup(&mut self, now: u64, url: u64) -> FileLookup {
        self.expire(now);
        if !self.cfg.enabled || !self.entries.contains_key(&url) {
            self.misses += 1;
            return FileLookup::Miss;
        }
        self.hits += 1;
        self.touch(now, url);
        let e = self.entries.get_mut(&url).unwrap();
        match self.cfg.file_attribute_check_threshold_ns {
            Some(t) if now - e.checked >= t => {
                e.checked = now;
                self.checks += 1;
                FileLookup::Check
            }
            _ => FileLookup::Hit,
        }
    }

    fn used(&self) -> u64 {
        self.entries.values().map(|e| e.bytes).sum()
    }

    fn insert(&mut self, now: u64, url: u64, bytes: u64) {
        self.expire(now);
        if !self.cfg.enabled {
            return;
        }
        if self.entries.contains_key(&url) {
            self.entries.get_mut(&url).unwrap().checked = now;
            self.touch(now, url);
            return;
        }
        let cap = self.cfg.mem_cache_size;
        if bytes > self.cfg.max_cached_file_size || (cap > 0 && bytes > cap) {
            self.too_large += 1;
            return;
        }
        while cap > 0 && self.used() + bytes > cap {
            let (&lru, _) = self.entries.iter().min_by_key(|(_, e)| e.seq).unwrap();
            self.entries.remove(&lru);
            self.evicted += 1;
        }
        self.entries.insert(
            url,
            Entry {
                bytes,
                seq: 0,
                last_ref: now,
                checked: now,
            },
        );
        self.touch(now, url);
    }

    fn flush(&mut self, now: u64) {
        self.expire(now);
        self.entries.clear();
    }
}

#[derive(Clone, Debug)]
enum Op {
    Lookup { dt: u64, url: u64 },
    Insert { dt: u64, url: u64, kb: u64 },
    Flush { dt: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        // Steps of 100 ms against thresholds of whole seconds: ties happen often.
        8 => (0..30u64, 0..12u64).prop_map(|(dt, url)| Op::Lookup { dt: dt * 100 * MILLIS, url }),
        4 => (0..30u64, 0..12u64, 1..300u64)
            .prop_map(|(dt, url, kb)| Op::Insert { dt: dt * 100 * MILLIS, url, kb }),
        1 => (0..30u64).prop_map(|dt| Op::Flush { dt: dt * 100 * MILLIS }),
    ]
}

fn config() -> impl Strategy<Value = FileCacheConfig> {
    (
        any::<bool>(),
        prop_oneof![
            Just(None),
            (1..20u64).prop_map(|s| Some(s * 1_000 * MILLIS))
        ],
        prop_oneof![
            Just(None),
            (0..10u64).prop_map(|s| Some(s * 1_000 * MILLIS))
        ],
        prop_oneof![Just(0u64), (1..1_500u64).prop_map(|kb| kb * 1024)],
    )
        .prop_map(|(off, ttl, check, cap)| FileCacheConfig {
            enabled: !off || ttl.is_some(),
            object_cache_ttl_ns: ttl,
            file_attribute_check_threshold_ns: check,
            max_cached_file_size: 256 * 1024,
            mem_cache_size: cap,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn the_cache_is_the_reference_model(cfg in config(), ops in prop::collection::vec(op(), 1..400)) {
        let mut c = FileCache::new(cfg.clone());
        let mut r = Reference::new(cfg);
        let mut now = 0u64;
        for o in ops {
            match o {
                Op::Lookup { dt, url } => {
                    now += dt;
                    prop_assert_eq!(c.lookup(now, url), r.lookup(now, url));
                }
                Op::Insert { dt, url, kb } => {
                    now += dt;
                    c.insert(now, url, kb * 1024);
                    r.insert(now, url, kb * 1024);
                }
                Op::Flush { dt } => {
                    now += dt;
                    c.flush(now);
                    r.flush(now);
                }
            }
            c.advance(now);
            r.expire(now);
            prop_assert_eq!(c.current_files_cached.get(), r.entries.len() as u64);
            prop_assert_eq!(c.current_file_cache_memory_usage.get(), r.used());
            for url in 0..12 {
                prop_assert_eq!(c.contains(now, url), r.entries.contains_key(&url), "url {}", url);
            }
            prop_assert!(c.queue_len() <= 64 + 2 * r.entries.len() + 1, "{} queued", c.queue_len());
        }
        prop_assert_eq!((c.hits.total(), c.misses.total()), (r.hits, r.misses));
        prop_assert_eq!(c.attribute_checks.total(), r.checks);
        prop_assert_eq!(c.expired_ttl.total(), r.expired);
        prop_assert_eq!(c.evicted_size.total(), r.evicted);
        prop_assert_eq!(c.too_large.total(), r.too_large);
    }
}
