//! The IIS worker process (w3wp) between HTTP.SYS and ASP.NET.
//!
//! **Models**: IIS dequeuing requests from the application pool's HTTP.SYS queue and
//! its per-application concurrency limit `system.webServer/serverRuntime/
//! @appConcurrentRequestLimit` (default 5000): a request that arrives while that many
//! are queued or executing in IIS is answered **503.2** ("Concurrent request limit
//! exceeded"). IIS's own native threads are not a bottleneck in this model: a running
//! worker process dequeues as soon as a request is queued.
//!
//! **Seed**: 003 (the integrated pipeline of IIS 7.5). **DOMAIN**: §4.1.
//!
//! **Leaves out**: the undocumented w3wp completion-port queue, IIS's native thread
//! pool sizing, worker-process start/stop (app-pool lifecycle: issue 7).

use crate::stat::{Counter, Gauge};
use crate::time::SimTime;

/// IIS settings.
#[derive(Clone, Debug, PartialEq)]
pub struct IisConfig {
    /// `appConcurrentRequestLimit`.
    pub app_concurrent_request_limit: u32,
}

/// IIS refused the request: 503.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConcurrentRequestLimitExceeded;

/// The worker process's request accounting.
#[derive(Debug)]
pub struct Iis {
    cfg: IisConfig,
    /// Requests in IIS (queued or executing): `W3SVC_W3WP\Active Requests`.
    pub active_requests: Gauge,
    /// 503.2 answers.
    pub rejected: Counter,
}

impl Iis {
    pub fn new(cfg: IisConfig) -> Self {
        Self {
            cfg,
            active_requests: Gauge::new(),
            rejected: Counter::default(),
        }
    }

    pub fn config(&self) -> &IisConfig {
        &self.cfg
    }

    /// A request dequeued from HTTP.SYS enters IIS.
    #[inline]
    pub fn enter(&mut self, now: SimTime) -> Result<(), ConcurrentRequestLimitExceeded> {
        if self.active_requests.get() >= self.cfg.app_concurrent_request_limit as u64 {
            self.rejected.inc();
            return Err(ConcurrentRequestLimitExceeded);
        }
        self.active_requests.inc(now);
        Ok(())
    }

    /// A request that entered IIS is finished (answered, failed or rejected downstream).
    #[inline]
    pub fn leave(&mut self, now: SimTime) {
        self.active_requests.dec(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_gives_503_2() {
        let mut iis = Iis::new(IisConfig {
            app_concurrent_request_limit: 2,
        });
        assert!(iis.enter(0).is_ok());
        assert!(iis.enter(0).is_ok());
        assert_eq!(iis.enter(0), Err(ConcurrentRequestLimitExceeded));
        iis.leave(1);
        assert!(iis.enter(1).is_ok());
        assert_eq!(iis.rejected.total(), 1);
    }
}
