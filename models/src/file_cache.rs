//! IIS's user-mode static file cache (the worker process's object cache).
//!
//! **Models** the cache IIS's static file handler keeps in the worker process, in front of the
//! disk or share that holds the files. A request reaches it only after missing HTTP.SYS's
//! kernel cache ([`crate::kernel_cache`]); the handler then looks the file up here
//! ([`FileCache::lookup`]):
//! * **not cached** → [`FileLookup::Miss`]: the file is read from its store (seed 001: the NAS,
//!   over SMB), and once read it is cached ([`FileCache::insert`]) unless larger than
//!   `MaxCachedFileSize` (`Web Service Cache\File Cache Misses`);
//! * **cached and checked recently** → [`FileLookup::Hit`]: served from memory, no I/O
//!   (`File Cache Hits`);
//! * **cached, last checked longer ago than `FileAttributeCheckThreshold`** →
//!   [`FileLookup::Check`]: with last-modified caching (IIS's default for UNC content,
//!   `DoDirMonitoringForUNC` = 0) IIS asks the share for the file's last-modified date
//!   (`GetFileAttributesEx`, one metadata round trip) before serving the cached copy; counted
//!   as a hit. With change notifications (`DoDirMonitoringForUNC` = 1) it does not check
//!   (the caller passes no threshold).
//!
//! An entry leaves the cache when:
//! * it has not been referenced for `ObjectCacheTTL` ("phased out") → [`FileCache::expired_ttl`];
//! * the cache is full (`MemCacheSize`): the least recently referenced entries make room →
//!   [`FileCache::evicted_size`];
//! * the worker process exits (recycle, idle timeout, crash): the cache lives in its memory →
//!   [`FileCache::flush`], [`FileCache::flushed_files`].
//!
//! **Seed**: 001. Among the tuning for millions of images on a NAS, `ObjectCacheTTL` and
//! `FileAttributeCheckThreshold` were both set to `0xFFFFFFFF`: cached files never phased out
//! and never checked against the share, so a request that misses the kernel cache costs the
//! NAS nothing once its file has been read.
//!
//! **Exact in time without timers**: every reference pushes (time, url) on a queue, so the
//! queue's live elements are in order of last reference, which is both the order of
//! `ObjectCacheTTL` expiry and the LRU order; expirations are processed at the start of every
//! call and in [`FileCache::advance`] (which the engine calls before sampling), each at its own
//! time, so the time-weighted gauges are exact. Superseded elements are dropped from the front
//! and the queue is compacted when more than half of it is stale, so memory follows the files
//! cached, not the references.
//!
//! **Defaults and sources** ([`FileCacheConfig::default`]; IIS 6.0 registry reference,
//! "Global IIS Caching Registry Entries" and "Configuring Last-Modified Caching", still read
//! by IIS 7.5 in seed 001):
//! * `object_cache_ttl_ns` 30 s: `ObjectCacheTTL` (0 disables the cache; `0xFFFFFFFF` =
//!   unlimited, `None` here).
//! * `file_attribute_check_threshold_ns` 5 s: `FileAttributeCheckThreshold` ("if more than
//!   five seconds have elapsed since the file was last checked"); `None` = never.
//! * `max_cached_file_size` 256 KB: `MaxCachedFileSize`.
//! * `mem_cache_size` 0 = auto: `MemCacheSize` defaults to about half of the available
//!   physical memory, re-evaluated every 60 s; memory is not simulated, so auto is **no cap**
//!   (as for the kernel cache). Set a value (at most 2500 MB) to study the cap.
//! * `enabled` true: `DisableMemoryCache` = 0.
//!
//! **Leaves out**: IIS phases entries out at its scavenger's passes (period undocumented), here
//! at exactly `ObjectCacheTTL` after the last reference; files that change (a check always
//! finds the cached copy current); whether IIS 7 also flushes a file's kernel-cache entry when
//! its user-mode entry is phased out (undocumented: the two caches are independent here, so
//! these settings only affect requests that reach the worker process); the CPU of a lookup;
//! `MemCacheSize`'s auto-sizing.

use std::collections::VecDeque;

use rustc_hash::FxHashMap as HashMap;

use crate::stat::{Counter, Gauge};
use crate::time::{SECONDS, SimTime};

/// Settings of the cache (`HKLM\System\CurrentControlSet\Services\InetInfo\Parameters`).
#[derive(Clone, Debug, PartialEq)]
pub struct FileCacheConfig {
    /// Not `DisableMemoryCache`, and `ObjectCacheTTL` > 0.
    pub enabled: bool,
    /// `ObjectCacheTTL`: an entry not referenced for this long is phased out; `None` =
    /// unlimited (`0xFFFFFFFF`).
    pub object_cache_ttl_ns: Option<u64>,
    /// `FileAttributeCheckThreshold`: a cached file last checked longer ago is checked again
    /// before it is served; `None` = never (`0xFFFFFFFF`, or change notifications).
    pub file_attribute_check_threshold_ns: Option<u64>,
    /// `MaxCachedFileSize`, bytes: larger files are never cached.
    pub max_cached_file_size: u64,
    /// `MemCacheSize` in bytes; 0 = auto (no cap in the model).
    pub mem_cache_size: u64,
}

impl Default for FileCacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            object_cache_ttl_ns: Some(30 * SECONDS),
            file_attribute_check_threshold_ns: Some(5 * SECONDS),
            max_cached_file_size: 262_144,
            mem_cache_size: 0,
        }
    }
}

/// The result of a lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileLookup {
    /// Served from memory.
    Hit,
    /// Cached, but its last-modified date must be checked first (one metadata round trip).
    Check,
    /// Not cached: the file is read from its store, then [`FileCache::insert`]ed.
    Miss,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    bytes: u64,
    /// Identifies the entry's latest element in the reference queue.
    seq: u64,
    /// When its last-modified date was last checked (or it was read).
    checked: SimTime,
}

/// The file cache and its `Web Service Cache` counters.
#[derive(Debug)]
pub struct FileCache {
    cfg: FileCacheConfig,
    entries: HashMap<u64, Entry>,
    /// (reference time, seq, url) in reference order; an element is live while its entry's
    /// `seq` is its own.
    refs: VecDeque<(SimTime, u64, u64)>,
    next_seq: u64,
    /// `Web Service Cache\Current Files Cached`.
    pub current_files_cached: Gauge,
    /// `Web Service Cache\Current File Cache Memory Usage`, bytes.
    pub current_file_cache_memory_usage: Gauge,
    /// `File Cache Hits` (including the ones that checked the file first).
    pub hits: Counter,
    /// `File Cache Misses` (including every lookup while the cache is disabled).
    pub misses: Counter,
    /// Hits that checked the file's last-modified date first (`FileAttributeCheckThreshold`).
    pub attribute_checks: Counter,
    /// `Total Files Cached`: files placed in the cache.
    pub inserted: Counter,
    /// Files read but not cached: larger than `MaxCachedFileSize` or than the whole cache.
    pub too_large: Counter,
    /// Entries phased out by `ObjectCacheTTL`.
    pub expired_ttl: Counter,
    /// Entries evicted to make room under `MemCacheSize`.
    pub evicted_size: Counter,
    /// `File Cache Flushes`: worker-process exits that emptied the cache.
    pub flushes: Counter,
    /// `Total Flushed Files`: entries removed by flushes.
    pub flushed_files: Counter,
}

impl FileCache {
    pub fn new(cfg: FileCacheConfig) -> Self {
        Self {
            cfg,
            entries: HashMap::default(),
            refs: VecDeque::new(),
            next_seq: 0,
            current_files_cached: Gauge::new(),
            current_file_cache_memory_usage: Gauge::new(),
            hits: Counter::default(),
            misses: Counter::default(),
            attribute_checks: Counter::default(),
            inserted: Counter::default(),
            too_large: Counter::default(),
            expired_ttl: Counter::default(),
            evicted_size: Counter::default(),
            flushes: Counter::default(),
            flushed_files: Counter::default(),
        }
    }

    pub fn config(&self) -> &FileCacheConfig {
        &self.cfg
    }

    /// Whether `url` is cached (after processing expirations up to `now`).
    pub fn contains(&mut self, now: SimTime, url: u64) -> bool {
        self.advance(now);
        self.entries.contains_key(&url)
    }

    /// Elements in the reference queue (live and superseded): at most about twice the
    /// files cached.
    pub fn queue_len(&self) -> usize {
        self.refs.len()
    }

    /// `File Cache Hits %` over the whole run (0 before any lookup).
    pub fn hit_ratio(&self) -> f64 {
        crate::stat::hit_ratio(self.hits.total(), self.misses.total())
    }

    /// Processes the expirations due by `now`, each at its own time.
    pub fn advance(&mut self, now: SimTime) {
        while let Some(&(at, seq, url)) = self.refs.front() {
            let live = self.entries.get(&url).is_some_and(|e| e.seq == seq);
            if !live {
                self.refs.pop_front();
                continue;
            }
            let Some(ttl) = self.cfg.object_cache_ttl_ns else {
                break;
            };
            let due = at.saturating_add(ttl);
            if due > now {
                break;
            }
            self.refs.pop_front();
            self.remove(due, url);
            self.expired_ttl.inc();
        }
    }

    /// The static file handler looks `url` up at `now`.
    pub fn lookup(&mut self, now: SimTime, url: u64) -> FileLookup {
        self.advance(now);
        if !self.cfg.enabled || !self.entries.contains_key(&url) {
            self.misses.inc();
            return FileLookup::Miss;
        }
        self.hits.inc();
        self.touch(now, url);
        let e = self.entries.get_mut(&url).expect("looked up");
        match self.cfg.file_attribute_check_threshold_ns {
            Some(t) if now.saturating_sub(e.checked) >= t => {
                // One request checks; the others served meanwhile trust the copy.
                e.checked = now;
                self.attribute_checks.inc();
                FileLookup::Check
            }
            _ => FileLookup::Hit,
        }
    }

    /// The file `url` of `bytes` bytes has been read from its store at `now`: cache it.
    pub fn insert(&mut self, now: SimTime, url: u64, bytes: u64) {
        self.advance(now);
        if !self.cfg.enabled {
            return;
        }
        if let Some(e) = self.entries.get_mut(&url) {
            // Read twice at once (two misses before the first read ended): one entry.
            e.checked = now;
            self.touch(now, url);
            return;
        }
        let cap = self.cfg.mem_cache_size;
        if bytes > self.cfg.max_cached_file_size || (cap > 0 && bytes > cap) {
            self.too_large.inc();
            return;
        }
        if cap > 0 {
            while self.current_file_cache_memory_usage.get() + bytes > cap {
                let Some((_, seq, victim)) = self.refs.pop_front() else {
                    break;
                };
                if self.entries.get(&victim).is_some_and(|e| e.seq == seq) {
                    self.remove(now, victim);
                    self.evicted_size.inc();
                }
            }
        }
        self.entries.insert(
            url,
            Entry {
                bytes,
                seq: 0,
                checked: now,
            },
        );
        self.touch(now, url);
        self.inserted.inc();
        self.current_files_cached.inc(now);
        let used = self.current_file_cache_memory_usage.get() + bytes;
        self.current_file_cache_memory_usage.set(now, used);
    }

    /// The worker process exited at `now`: its cache is gone.
    pub fn flush(&mut self, now: SimTime) {
        self.advance(now);
        self.flushes.inc();
        self.flushed_files.add(self.entries.len() as u64);
        self.entries.clear();
        self.refs.clear();
        self.current_files_cached.set(now, 0);
        self.current_file_cache_memory_usage.set(now, 0);
    }

    /// Records a reference to the (cached) `url` at `now`.
    fn touch(&mut self, now: SimTime, url: u64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(e) = self.entries.get_mut(&url) {
            e.seq = seq;
        }
        self.refs.push_back((now, seq, url));
        if self.refs.len() > 64 && self.refs.len() > 2 * self.entries.len() {
            let entries = &self.entries;
            self.refs
                .retain(|&(_, s, u)| entries.get(&u).is_some_and(|e| e.seq == s));
        }
    }

    fn remove(&mut self, at: SimTime, url: u64) {
        if let Some(e) = self.entries.remove(&url) {
            self.current_files_cached.dec(at);
            let used = self.current_file_cache_memory_usage.get() - e.bytes;
            self.current_file_cache_memory_usage.set(at, used);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::MILLIS;

    fn cache(ttl: Option<u64>, check: Option<u64>) -> FileCache {
        FileCache::new(FileCacheConfig {
            object_cache_ttl_ns: ttl,
            file_attribute_check_threshold_ns: check,
            ..FileCacheConfig::default()
        })
    }

    #[test]
    fn a_read_file_is_served_from_memory_until_its_check_is_due() {
        let mut c = cache(Some(30 * SECONDS), Some(5 * SECONDS));
        assert_eq!(c.lookup(0, 7), FileLookup::Miss);
        c.insert(15 * MILLIS, 7, 30_000);
        assert_eq!(c.lookup(SECONDS, 7), FileLookup::Hit);
        assert_eq!(
            c.lookup(5 * SECONDS, 7),
            FileLookup::Hit,
            "4.985 s after the read"
        );
        assert_eq!(c.lookup(5 * SECONDS + 15 * MILLIS, 7), FileLookup::Check);
        // The check restarts the threshold; a concurrent request trusts the copy.
        assert_eq!(c.lookup(5 * SECONDS + 16 * MILLIS, 7), FileLookup::Hit);
        assert_eq!(c.lookup(10 * SECONDS + 15 * MILLIS, 7), FileLookup::Check);
        assert_eq!((c.hits.total(), c.misses.total()), (5, 1));
        assert_eq!(c.attribute_checks.total(), 2);
    }

    #[test]
    fn never_checking_means_no_check_however_old() {
        let mut c = cache(None, None);
        c.lookup(0, 1);
        c.insert(0, 1, 100);
        for h in 1..100 {
            assert_eq!(c.lookup(h * 3600 * SECONDS, 1), FileLookup::Hit);
        }
        assert_eq!(c.attribute_checks.total(), 0);
        assert_eq!(c.expired_ttl.total(), 0);
    }

    #[test]
    fn an_entry_unreferenced_for_the_ttl_is_phased_out_at_exactly_that_time() {
        let mut c = cache(Some(30 * SECONDS), None);
        c.insert(0, 1, 1000);
        c.insert(SECONDS, 2, 3000);
        assert_eq!(c.lookup(20 * SECONDS, 1), FileLookup::Hit); // 1 now expires at 50 s
        c.advance(40 * SECONDS);
        assert!(!c.contains(40 * SECONDS, 2), "2 expired at 31 s");
        assert!(c.contains(40 * SECONDS, 1));
        assert!(c.contains(50 * SECONDS - 1, 1));
        assert!(!c.contains(50 * SECONDS, 1));
        assert_eq!(c.expired_ttl.total(), 2);
        // Time-weighted gauges changed at the expiry times: 1000 B over [0, 50 s), 3000 B
        // over [1 s, 31 s).
        let mean = c.current_file_cache_memory_usage.mean(100 * SECONDS);
        let want = (1000.0 * 50.0 + 3000.0 * 30.0) / 100.0;
        assert!((mean - want).abs() < 1e-6, "{mean} vs {want}");
        assert_eq!(c.current_files_cached.get(), 0);
    }

    #[test]
    fn a_ttl_of_zero_is_a_disabled_cache() {
        let mut c = FileCache::new(FileCacheConfig {
            enabled: false,
            ..FileCacheConfig::default()
        });
        c.insert(0, 1, 10);
        assert_eq!(c.lookup(1, 1), FileLookup::Miss);
        assert_eq!(c.current_files_cached.get(), 0);
    }

    #[test]
    fn large_files_are_not_cached_and_the_cap_evicts_the_least_recently_used() {
        let mut c = FileCache::new(FileCacheConfig {
            object_cache_ttl_ns: None,
            file_attribute_check_threshold_ns: None,
            mem_cache_size: 100_000,
            ..FileCacheConfig::default()
        });
        c.insert(0, 1, 300_000);
        assert_eq!(c.too_large.total(), 1);
        c.insert(1, 1, 40_000);
        c.insert(2, 2, 40_000);
        c.lookup(3, 1); // 2 is now the least recently used
        c.insert(4, 3, 40_000);
        assert!(c.contains(5, 1) && c.contains(5, 3) && !c.contains(5, 2));
        assert_eq!(c.evicted_size.total(), 1);
        assert_eq!(c.current_file_cache_memory_usage.get(), 80_000);
    }

    #[test]
    fn a_flush_empties_it_and_counts_the_files() {
        let mut c = cache(Some(30 * SECONDS), Some(5 * SECONDS));
        for u in 0..10 {
            c.insert(u, u, 10);
        }
        c.flush(SECONDS);
        assert_eq!((c.flushes.total(), c.flushed_files.total()), (1, 10));
        assert_eq!(c.lookup(2 * SECONDS, 3), FileLookup::Miss);
        assert_eq!(c.current_file_cache_memory_usage.get(), 0);
    }

    #[test]
    fn the_reference_queue_stays_bounded_by_the_files_cached() {
        let mut c = cache(None, None);
        for u in 0..10 {
            c.insert(0, u, 10);
        }
        for t in 1..1_000_000u64 {
            c.lookup(t, t % 10);
        }
        assert!(c.queue_len() <= 64 + 2 * 10 + 1, "{}", c.queue_len());
    }
}
