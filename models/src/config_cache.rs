//! IIS's configuration cache lock and its file-change notifications on UNC content.
//!
//! **Models** (seed 001's dumps): every new request reads the configuration of its URL
//! path (`nativerd!CONFIG_CACHE::ReadLock` from `W3_CONTEXT::SetupMetadata`) under a
//! reader-writer lock. When the content lives on a UNC share and IIS monitors it
//! (`DoDirMonitoringForUNC`), a file-change notification makes the notification thread
//! walk the changed directories (`HandleChangeNotificationRecursive` →
//! `GetFileAttributesEx` against the NAS) while it holds the lock as writer: every request
//! that arrives meanwhile blocks on the read lock until the NAS I/O is done. With
//! `allowSubDirConfig = true` the walk looks for `web.config` in every subdirectory, so a
//! notification costs one NAS round trip per directory; with `false` only the site root's.
//! ASP.NET's own FCN (`FCNMode = 0`) adds its notifications to the NAS's; `FCNMode = 1`
//! turns those off.
//!
//! Notifications arrive as a Poisson stream (`notifications_per_s`, from changes on the
//! share); a notification that comes while the writer holds the lock extends the hold.
//!
//! **Leaves out**: the lock's spin-then-sleep (`_LockSpin`, `SleepEx`) CPU cost, IIS's
//! native thread pool (blocked readers are parked requests, not threads), the IIS object
//! cache (`ObjectCacheTTL`, `FileAttributeCheckThreshold`).

use std::collections::VecDeque;

use rand::Rng;
use rand_distr::{Distribution, Exp1};

use crate::dist::Sampler;
use crate::effects::Effects;
use crate::request::RequestId;
use crate::stat::{Counter, Gauge};
use crate::time::SimTime;

/// Settings of the config cache and its notifications.
#[derive(Clone, Debug)]
pub struct ConfigCacheConfig {
    /// `HKLM\…\InetInfo\Parameters\DoDirMonitoringForUNC`: IIS watches UNC content.
    pub dir_monitoring_for_unc: bool,
    /// `HKLM\Software\Microsoft\ASP.NET\FCNMode = 1`: ASP.NET's file-change notifications off.
    pub asp_net_fcn_disabled: bool,
    /// `allowSubDirConfig`: look for web.config in every subdirectory.
    pub allow_sub_dir_config: bool,
    /// Changes on the share that cause notifications, per second (IIS's; ASP.NET's FCN
    /// doubles them unless disabled).
    pub notifications_per_s: f64,
    /// Directories a notification walks with `allowSubDirConfig` (without it: 1).
    pub directories_per_notification: u32,
    /// One NAS metadata round trip (`GetFileAttributesEx` over SMB).
    pub nas_round_trip: Sampler,
}

/// Timers of the config cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigTimer {
    /// A file-change notification arrives.
    Notification,
    /// The writer's hold ends (`epoch` guards against extended holds).
    Release { epoch: u64 },
}

/// The lock, its waiting readers and counters.
#[derive(Debug)]
pub struct ConfigCache<R> {
    cfg: ConfigCacheConfig,
    rng: R,
    writer_until: Option<SimTime>,
    epoch: u64,
    waiting: VecDeque<RequestId>,
    released: VecDeque<RequestId>,
    /// Requests blocked on the read lock right now.
    pub blocked_readers: Gauge,
    /// Notifications handled (write-lock holds started or extended).
    pub notifications: Counter,
    /// Requests that had to wait for the lock.
    pub reads_blocked: Counter,
    /// Time the writer held the lock, ns.
    pub write_held_ns: u128,
}

impl<R: Rng> ConfigCache<R> {
    pub fn new(cfg: ConfigCacheConfig, rng: R) -> Self {
        Self {
            cfg,
            rng,
            writer_until: None,
            epoch: 0,
            waiting: VecDeque::new(),
            released: VecDeque::new(),
            blocked_readers: Gauge::new(),
            notifications: Counter::default(),
            reads_blocked: Counter::default(),
            write_held_ns: 0,
        }
    }

    /// Notifications per second that reach the lock with these settings.
    pub fn effective_rate(&self) -> f64 {
        if !self.cfg.dir_monitoring_for_unc {
            return 0.0;
        }
        let asp = if self.cfg.asp_net_fcn_disabled {
            1.0
        } else {
            2.0
        };
        self.cfg.notifications_per_s * asp
    }

    fn schedule_next(&mut self, now: SimTime, fx: &mut impl Effects<ConfigTimer>) {
        let rate = self.effective_rate();
        if rate > 0.0 {
            let e: f64 = Exp1.sample(&mut self.rng);
            fx.at(
                now.saturating_add((e / rate * 1e9) as u64),
                ConfigTimer::Notification,
            );
        }
    }

    /// Arms the notification stream.
    pub fn start(&mut self, now: SimTime, fx: &mut impl Effects<ConfigTimer>) {
        self.schedule_next(now, fx);
    }

    /// A request reads its configuration: `true` if it may go on now, `false` if it is
    /// parked until the writer releases the lock ([`ConfigCache::poll`] returns it then).
    pub fn read(&mut self, now: SimTime, req: RequestId) -> bool {
        if self.writer_until.is_some_and(|t| t > now) {
            self.waiting.push_back(req);
            self.reads_blocked.inc();
            self.blocked_readers.set(now, self.waiting.len() as u64);
            return false;
        }
        true
    }

    pub fn on_timer(&mut self, now: SimTime, t: ConfigTimer, fx: &mut impl Effects<ConfigTimer>) {
        match t {
            ConfigTimer::Notification => {
                self.notifications.inc();
                let dirs = if self.cfg.allow_sub_dir_config {
                    self.cfg.directories_per_notification.max(1)
                } else {
                    1
                };
                let mut hold = 0u64;
                for _ in 0..dirs {
                    hold = hold.saturating_add(self.cfg.nas_round_trip.sample_ns(&mut self.rng));
                }
                let start = self.writer_until.filter(|&u| u > now).unwrap_or(now);
                let until = start.saturating_add(hold);
                self.write_held_ns += (until - start) as u128;
                self.writer_until = Some(until);
                self.epoch += 1;
                fx.at(until, ConfigTimer::Release { epoch: self.epoch });
                self.schedule_next(now, fx);
            }
            ConfigTimer::Release { epoch } => {
                if epoch != self.epoch {
                    return;
                }
                self.writer_until = None;
                self.released.extend(self.waiting.drain(..));
                self.blocked_readers.set(now, 0);
            }
        }
    }

    /// Readers the writer's release lets go, in arrival order.
    pub fn poll(&mut self) -> Option<RequestId> {
        self.released.pop_front()
    }

    /// Whether the writer holds the lock at `now`.
    pub fn write_locked(&self, now: SimTime) -> bool {
        self.writer_until.is_some_and(|t| t > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::Dist;
    use crate::effects::Recorder;
    use crate::time::{MILLIS, SECONDS};
    use rand::SeedableRng;
    use rand::rngs::Xoshiro256PlusPlus;

    fn cache(unc: bool, fcn_off: bool, subdirs: bool) -> ConfigCache<Xoshiro256PlusPlus> {
        ConfigCache::new(
            ConfigCacheConfig {
                dir_monitoring_for_unc: unc,
                asp_net_fcn_disabled: fcn_off,
                allow_sub_dir_config: subdirs,
                notifications_per_s: 0.1,
                directories_per_notification: 100,
                nas_round_trip: Dist::Const(5e6).sampler(),
            },
            Xoshiro256PlusPlus::seed_from_u64(1),
        )
    }

    #[test]
    fn readers_wait_for_the_writer_and_are_released_in_order() {
        let mut c = cache(true, false, true);
        let mut fx = Recorder::default();
        c.on_timer(SECONDS, ConfigTimer::Notification, &mut fx);
        // 100 directories × 5 ms = 500 ms of write lock.
        assert!(c.write_locked(SECONDS + 100 * MILLIS));
        assert!(!c.read(SECONDS + 10 * MILLIS, 7));
        assert!(!c.read(SECONDS + 20 * MILLIS, 8));
        assert_eq!(c.blocked_readers.get(), 2);
        let release = fx
            .timers
            .iter()
            .find(|(_, t)| matches!(t, ConfigTimer::Release { .. }))
            .copied()
            .unwrap();
        assert_eq!(release.0, SECONDS + 500 * MILLIS);
        c.on_timer(release.0, release.1, &mut fx);
        assert_eq!(c.poll(), Some(7));
        assert_eq!(c.poll(), Some(8));
        assert!(c.read(release.0, 9));
    }

    #[test]
    fn the_seed_tunings_shorten_or_remove_the_holds() {
        assert_eq!(
            cache(false, false, true).effective_rate(),
            0.0,
            "DoDirMonitoringForUNC = 0: no notifications"
        );
        assert_eq!(
            cache(true, true, true).effective_rate(),
            0.1,
            "FCNMode = 1: ASP.NET's are gone"
        );
        assert_eq!(cache(true, false, true).effective_rate(), 0.2);
        let mut c = cache(true, false, false);
        let mut fx = Recorder::default();
        c.on_timer(0, ConfigTimer::Notification, &mut fx);
        assert!(
            !c.write_locked(5 * MILLIS),
            "allowSubDirConfig = false: one directory, 5 ms"
        );
    }
}
