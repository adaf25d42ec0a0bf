//! The HTTP.SYS kernel-mode response cache ("kernel URI cache").
//!
//! **Models** DOMAIN §3.3. A cacheable GET whose URL is in the cache is answered by HTTP.SYS
//! itself ([`Lookup::Hit`]): no request-queue entry, no worker-process thread, no CLR work.
//! Otherwise the request goes to the worker process, and when it answers
//! ([`KernelCache::response`]) IIS counts the URL toward `frequentHitThreshold`: once the URL
//! has been served that many times within `frequentHitTimePeriod` (a window opened by the
//! first of them), the response is placed in the cache, provided it is cacheable (KB 817445:
//! anonymous, no query string, no entity body, no Range, no dynamic compression …; the caller
//! decides) and no larger than `UriMaxUriBytes`. An entry leaves the cache by:
//! * **TTL** (`HttpCachePolicyTimeToLive`, `SecondsToLive` from insertion) →
//!   [`KernelCache::expired_ttl`];
//! * **the scavenger** (`UriScavengerPeriod`): each pass removes the entries not hit since the
//!   previous pass; insertion counts as a use, so an unused entry lives 120–240 s →
//!   [`KernelCache::scavenged`];
//! * **a flush** ([`KernelCache::flush`]): the worker process exited (recycle, idle timeout —
//!   seed 001's `UlFlushCacheByProcess` from `UlDetachProcessFromAppPool`), the pool stopped,
//!   or an administrator flushed → [`KernelCache::flushed_recycle`] / [`KernelCache::flushed_other`];
//! * **the size cap** (`UriMaxCacheMegabyteCount`), see [`WhenFull`] → [`KernelCache::evicted_size`].
//!
//! **Seed**: 001. IIS 7.5 serving millions of images: the cache was emptied every 20 minutes
//! by the idle-timeout recycle (flush on process detach), then every 900 s by the TTL.
//!
//! **Exact in time without timers per entry**: the TTL is the same for every entry, so
//! insertion order is expiry order; expirations are processed from a FIFO at the start of
//! every call (and in [`KernelCache::advance`], which the engine calls before sampling
//! counters), and each one changes the gauges *at its own expiry time*, so the time-weighted
//! means of [`KernelCache::current_uris_cached`] and [`KernelCache::cached_bytes`] are exact.
//! The scavenger is the only timer ([`CacheTimer`]).
//!
//! **Memory** follows what is cached: the entry map, an LRU index, the expiry FIFO (compacted
//! when more than half of it is stale), and the frequent-hit tracker, which only holds URLs
//! whose `frequentHitTimePeriod` window is still open (pruned from a FIFO of window starts at
//! every call).
//!
//! **Defaults and sources** ([`KernelCacheConfig::default`]):
//! * `enabled` true: `UriEnableCache` = 1 (tuning-iis-10.md).
//! * `frequent_hit_threshold` 2, `frequent_hit_time_period_ns` 10 s: `serverRuntime`
//!   (iis-docs serverRuntime.md; IIS 6 `ActivityPeriod` 10 s). 0 is treated as 1.
//! * `max_uri_bytes` 262,144: `UriMaxUriBytes` (tuning-iis-10.md; IIS `caching/maxResponseSize`).
//! * `max_cache_bytes` 0 = auto: `UriMaxCacheMegabyteCount` 0 sizes the cache from physical
//!   memory by an undocumented rule; the model treats auto as **no cap** (memory is not
//!   simulated). Set a value to study the cap.
//! * `when_full` [`WhenFull::Refuse`]: the HTTP Server API documentation lists "the kernel
//!   mode cache has enough space left to store the response" among the conditions for
//!   caching, i.e. a full cache does not cache new responses; LRU eviction is available as
//!   [`WhenFull::EvictLru`].
//! * `scavenger_period_ns` 120 s: `UriScavengerPeriod` (tuning-iis-10.md). 0 = no scavenger
//!   (seed 001 set 0xFFFFFFFF s, the same in practice).
//! * `ttl_ns` None = `HttpCachePolicyUserInvalidates`, which `netsh http show cachestate`
//!   shows for IIS static files (DOMAIN §3.3). Seed 001 saw 900 s (`Some(900 s)`).
//!
//! **Leaves out**: per-app-pool ownership of entries (a flush empties the whole cache, as
//! for a single-pool server; with overlapped recycle HTTP.SYS would only flush the exiting
//! process's entries), file-change-notification flushes, `Vary`/compression variants,
//! `If-Modified-Since` 304s served from the cache, the cost of a lookup, the auto-sizing rule.
//! In seed 001 the 900 s removal was issued by the IIS user-mode cache's scavenger callback
//! (`cachhttp!UL_RESPONSE_CACHE::ScavengerCallback` → `HttpFlushResponseCache`), so real
//! expiry is quantised to that scavenger's period; here it is exact.

use std::collections::{BTreeMap, VecDeque};

use rustc_hash::FxHashMap as HashMap;

use crate::effects::Effects;
use crate::stat::{Counter, Gauge};
use crate::time::{SECONDS, SimTime};

/// What to do with a cacheable response when the cache has no room for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenFull {
    /// Do not cache it (documented HTTP Server API behaviour).
    Refuse,
    /// Evict least-recently-used entries until it fits.
    EvictLru,
}

/// Settings of the cache (registry `HTTP\Parameters` and IIS `serverRuntime`).
#[derive(Clone, Debug, PartialEq)]
pub struct KernelCacheConfig {
    /// `UriEnableCache`.
    pub enabled: bool,
    /// `serverRuntime/@frequentHitThreshold`.
    pub frequent_hit_threshold: u32,
    /// `serverRuntime/@frequentHitTimePeriod`.
    pub frequent_hit_time_period_ns: u64,
    /// `UriMaxUriBytes`: larger responses are not cached.
    pub max_uri_bytes: u64,
    /// `UriMaxCacheMegabyteCount` in bytes; 0 = auto (no cap in the model).
    pub max_cache_bytes: u64,
    /// Behaviour at the size cap.
    pub when_full: WhenFull,
    /// `UriScavengerPeriod`; 0 = no scavenger.
    pub scavenger_period_ns: u64,
    /// `HttpCachePolicyTimeToLive` seconds; None = user invalidates (kept until removed
    /// otherwise).
    pub ttl_ns: Option<u64>,
}

impl Default for KernelCacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            frequent_hit_threshold: 2,
            frequent_hit_time_period_ns: 10 * SECONDS,
            max_uri_bytes: 262_144,
            max_cache_bytes: 0,
            when_full: WhenFull::Refuse,
            scavenger_period_ns: 120 * SECONDS,
            ttl_ns: None,
        }
    }
}

/// The result of a lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// HTTP.SYS sends the cached response itself.
    Hit,
    /// The request goes to the worker process.
    Miss,
}

/// Why the cache is flushed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushReason {
    /// The worker process recycled (periodic, scheduled, on demand, crash).
    Recycle,
    /// The worker process exited on `idleTimeout` (seed 001).
    IdleTimeout,
    /// The application pool or the HTTP service stopped.
    Stop,
    /// `netsh http flush logbuffer` / an application's `HttpFlushResponseCache`.
    Manual,
}

/// The cache's timer (stale epochs are ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheTimer {
    /// A scavenger pass.
    Scavenge { epoch: u64 },
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    bytes: u64,
    /// Insertion number: identifies this incarnation in the expiry FIFO.
    id: u64,
    /// Key in the LRU index.
    stamp: u64,
    /// Hit (or inserted) since the previous scavenger pass.
    used: bool,
}

/// The kernel response cache and its perfmon counters.
#[derive(Debug)]
pub struct KernelCache {
    cfg: KernelCacheConfig,
    entries: HashMap<u64, Entry>,
    /// LRU index: stamp → url (first = least recently used).
    lru: BTreeMap<u64, u64>,
    next_stamp: u64,
    next_id: u64,
    /// (expiry time, url, entry id) in insertion order = expiry order.
    expiry: VecDeque<(SimTime, u64, u64)>,
    /// url → (window start, responses counted in the window).
    tracker: HashMap<u64, (SimTime, u32)>,
    /// (window start, url) in time order; entries whose window restarted are stale.
    tracker_fifo: VecDeque<(SimTime, u64)>,
    scavenger_epoch: u64,
    /// `Web Service Cache\Kernel: Current URIs Cached`.
    pub current_uris_cached: Gauge,
    /// Bytes of cached responses.
    pub cached_bytes: Gauge,
    /// Requests served from the cache (`Kernel: URI Cache Hits`).
    pub hits: Counter,
    /// Lookups that went to the worker process (`Kernel: URI Cache Misses`), including
    /// non-cacheable requests and lookups while the cache is disabled.
    pub misses: Counter,
    /// Entries placed in the cache.
    pub inserted: Counter,
    /// Flush events (`Kernel: URI Cache Flushes`), all reasons.
    pub flushes: Counter,
    /// Flush events by reason.
    pub flushes_recycle: Counter,
    pub flushes_idle_timeout: Counter,
    pub flushes_stop: Counter,
    pub flushes_manual: Counter,
    /// Entries removed by their TTL.
    pub expired_ttl: Counter,
    /// Entries removed by the scavenger (not hit between two passes).
    pub scavenged: Counter,
    /// Entries removed by flushes for a process exit ([`FlushReason::Recycle`] and
    /// [`FlushReason::IdleTimeout`]).
    pub flushed_recycle: Counter,
    /// Entries removed by [`FlushReason::Stop`] and [`FlushReason::Manual`] flushes.
    pub flushed_other: Counter,
    /// Entries evicted to make room ([`WhenFull::EvictLru`]).
    pub evicted_size: Counter,
    /// Cacheable responses that reached the threshold but found the cache full
    /// ([`WhenFull::Refuse`]) or were larger than the whole cache.
    pub refused_full: Counter,
    /// Cacheable responses that reached the threshold but exceed `max_uri_bytes`.
    pub too_large: Counter,
}

impl KernelCache {
    pub fn new(cfg: KernelCacheConfig) -> Self {
        Self {
            cfg,
            entries: HashMap::default(),
            lru: BTreeMap::new(),
            next_stamp: 0,
            next_id: 0,
            expiry: VecDeque::new(),
            tracker: HashMap::default(),
            tracker_fifo: VecDeque::new(),
            scavenger_epoch: 0,
            current_uris_cached: Gauge::new(),
            cached_bytes: Gauge::new(),
            hits: Counter::default(),
            misses: Counter::default(),
            inserted: Counter::default(),
            flushes: Counter::default(),
            flushes_recycle: Counter::default(),
            flushes_idle_timeout: Counter::default(),
            flushes_stop: Counter::default(),
            flushes_manual: Counter::default(),
            expired_ttl: Counter::default(),
            scavenged: Counter::default(),
            flushed_recycle: Counter::default(),
            flushed_other: Counter::default(),
            evicted_size: Counter::default(),
            refused_full: Counter::default(),
            too_large: Counter::default(),
        }
    }

    pub fn config(&self) -> &KernelCacheConfig {
        &self.cfg
    }

    /// Whether `url` is cached (after processing expirations up to `now`).
    pub fn contains(&mut self, now: SimTime, url: u64) -> bool {
        self.advance(now);
        self.entries.contains_key(&url)
    }

    /// Number of URLs the frequent-hit tracker currently remembers (open windows).
    pub fn tracked_urls(&self) -> usize {
        self.tracker.len()
    }

    /// `Kernel: URI Cache Hits %` over the whole run (0 before any lookup).
    pub fn hit_ratio(&self) -> f64 {
        crate::stat::hit_ratio(self.hits.total(), self.misses.total())
    }

    /// Arms the scavenger.
    pub fn start(&mut self, now: SimTime, fx: &mut impl Effects<CacheTimer>) {
        self.scavenger_epoch += 1;
        self.arm_scavenger(now, fx);
    }

    fn arm_scavenger(&mut self, now: SimTime, fx: &mut impl Effects<CacheTimer>) {
        if self.cfg.scavenger_period_ns > 0 {
            fx.at(
                now.saturating_add(self.cfg.scavenger_period_ns),
                CacheTimer::Scavenge {
                    epoch: self.scavenger_epoch,
                },
            );
        }
    }

    /// Processes TTL expirations and frequent-hit windows up to `now`. Every other method
    /// calls it; the engine calls it before sampling the gauges.
    pub fn advance(&mut self, now: SimTime) {
        while let Some(&(at, url, id)) = self.expiry.front() {
            if at > now {
                break;
            }
            self.expiry.pop_front();
            if self.entries.get(&url).is_some_and(|e| e.id == id) {
                self.remove(at, url);
                self.expired_ttl.inc();
            }
        }
        let period = self.cfg.frequent_hit_time_period_ns;
        while let Some(&(start, url)) = self.tracker_fifo.front() {
            if start.saturating_add(period) > now {
                break;
            }
            self.tracker_fifo.pop_front();
            if self.tracker.get(&url).is_some_and(|&(s, _)| s == start) {
                self.tracker.remove(&url);
            }
        }
    }

    /// A request for `url` (response size `bytes`, `cacheable` per KB 817445 as judged by
    /// the caller): a hit is served by HTTP.SYS itself. `bytes` is not used (a cached entry
    /// keeps the size it was stored with); it is there so that lookup and response read alike.
    pub fn lookup(&mut self, now: SimTime, url: u64, bytes: u64, cacheable: bool) -> Lookup {
        let _ = bytes;
        self.advance(now);
        if self.cfg.enabled && cacheable {
            if let Some(e) = self.entries.get_mut(&url) {
                e.used = true;
                let old = e.stamp;
                self.next_stamp += 1;
                e.stamp = self.next_stamp;
                self.lru.remove(&old);
                self.lru.insert(self.next_stamp, url);
                self.hits.inc();
                return Lookup::Hit;
            }
        }
        self.misses.inc();
        Lookup::Miss
    }

    /// The worker process answered a miss for `url`: counts it toward
    /// `frequentHitThreshold` within `frequentHitTimePeriod` and caches the response when the
    /// threshold is reached (if cacheable, ≤ `max_uri_bytes`, and it fits).
    pub fn response(&mut self, now: SimTime, url: u64, bytes: u64, cacheable: bool) {
        self.advance(now);
        if !self.cfg.enabled || !cacheable || self.entries.contains_key(&url) {
            return;
        }
        let threshold = self.cfg.frequent_hit_threshold.max(1);
        let count = match self.tracker.get_mut(&url) {
            Some((_, c)) => {
                *c += 1;
                *c
            }
            None => {
                if threshold > 1 {
                    self.tracker.insert(url, (now, 1));
                    self.tracker_fifo.push_back((now, url));
                }
                1
            }
        };
        if count < threshold {
            return;
        }
        self.tracker.remove(&url);
        if bytes > self.cfg.max_uri_bytes {
            self.too_large.inc();
            return;
        }
        self.insert(now, url, bytes);
    }

    fn insert(&mut self, now: SimTime, url: u64, bytes: u64) {
        let cap = self.cfg.max_cache_bytes;
        if cap > 0 {
            if bytes > cap {
                self.refused_full.inc();
                return;
            }
            if self.cached_bytes.get() + bytes > cap {
                match self.cfg.when_full {
                    WhenFull::Refuse => {
                        self.refused_full.inc();
                        return;
                    }
                    WhenFull::EvictLru => {
                        while self.cached_bytes.get() + bytes > cap {
                            let (_, &victim) =
                                self.lru.first_key_value().expect("bytes imply entries");
                            self.remove(now, victim);
                            self.evicted_size.inc();
                        }
                    }
                }
            }
        }
        self.next_stamp += 1;
        self.next_id += 1;
        let e = Entry {
            bytes,
            id: self.next_id,
            stamp: self.next_stamp,
            used: true,
        };
        self.entries.insert(url, e);
        self.lru.insert(e.stamp, url);
        if let Some(ttl) = self.cfg.ttl_ns {
            self.expiry.push_back((now.saturating_add(ttl), url, e.id));
            self.compact_expiry();
        }
        self.current_uris_cached.inc(now);
        let b = self.cached_bytes.get() + bytes;
        self.cached_bytes.set(now, b);
        self.inserted.inc();
    }

    /// Drops stale FIFO items when they outnumber live entries (keeps memory ∝ cache size).
    fn compact_expiry(&mut self) {
        if self.expiry.len() > 2 * self.entries.len() + 64 {
            let entries = &self.entries;
            self.expiry
                .retain(|&(_, url, id)| entries.get(&url).is_some_and(|e| e.id == id));
        }
    }

    fn remove(&mut self, at: SimTime, url: u64) {
        if let Some(e) = self.entries.remove(&url) {
            self.lru.remove(&e.stamp);
            self.current_uris_cached.dec(at);
            let b = self.cached_bytes.get() - e.bytes;
            self.cached_bytes.set(at, b);
        }
    }

    /// Flushes every entry (process exit with flush-on-recycle, pool stop, manual flush).
    /// Except for a manual flush, the frequent-hit counts are forgotten too: IIS keeps them
    /// in the worker process.
    pub fn flush(&mut self, now: SimTime, reason: FlushReason) {
        self.advance(now);
        self.flushes.inc();
        let entries = self.entries.len() as u64;
        match reason {
            FlushReason::Recycle => {
                self.flushes_recycle.inc();
                self.flushed_recycle.add(entries);
            }
            FlushReason::IdleTimeout => {
                self.flushes_idle_timeout.inc();
                self.flushed_recycle.add(entries);
            }
            FlushReason::Stop => {
                self.flushes_stop.inc();
                self.flushed_other.add(entries);
            }
            FlushReason::Manual => {
                self.flushes_manual.inc();
                self.flushed_other.add(entries);
            }
        }
        self.entries.clear();
        self.lru.clear();
        self.expiry.clear();
        if reason != FlushReason::Manual {
            // The frequent-hit counts live in the worker process: gone with it.
            self.tracker.clear();
            self.tracker_fifo.clear();
        }
        self.current_uris_cached.set(now, 0);
        self.cached_bytes.set(now, 0);
    }

    pub fn on_timer(&mut self, now: SimTime, t: CacheTimer, fx: &mut impl Effects<CacheTimer>) {
        let CacheTimer::Scavenge { epoch } = t;
        if epoch != self.scavenger_epoch {
            return;
        }
        self.advance(now);
        let mut victims = Vec::new();
        for (&url, e) in self.entries.iter_mut() {
            if e.used {
                e.used = false;
            } else {
                victims.push(url);
            }
        }
        for url in victims {
            self.remove(now, url);
            self.scavenged.inc();
        }
        self.compact_expiry();
        self.arm_scavenger(now, fx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::effects::Recorder;

    #[test]
    fn threshold_one_caches_on_first_response() {
        let mut c = KernelCache::new(KernelCacheConfig {
            frequent_hit_threshold: 1,
            ..Default::default()
        });
        assert_eq!(c.lookup(0, 7, 100, true), Lookup::Miss);
        c.response(1, 7, 100, true);
        assert_eq!(c.lookup(2, 7, 100, true), Lookup::Hit);
        assert_eq!(c.tracked_urls(), 0);
    }

    #[test]
    fn disabled_cache_never_hits() {
        let mut c = KernelCache::new(KernelCacheConfig {
            enabled: false,
            ..Default::default()
        });
        let mut fx = Recorder::default();
        c.start(0, &mut fx);
        for t in 0..10 {
            assert_eq!(c.lookup(t, 1, 10, true), Lookup::Miss);
            c.response(t, 1, 10, true);
        }
        assert_eq!(c.inserted.total(), 0);
    }
}
