//! Stall windows: periods during which the target holds every arriving load-path request.
//!
//! A stall simulates a server pause (GC, failover, a full queue). A load generator that measures latency
//! from when it actually sent a request, rather than from when its schedule said to send it, hides most
//! of such a pause ("coordinated omission"); the stall lets tests check the correction.
//!
//! The state is two atomics (arrival count and window end), so checking for a stall costs no lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::StallSpec;

#[derive(Debug)]
pub(crate) struct Stall {
    /// Time zero for `window_end`.
    origin: Instant,
    /// End of the latest stall window in nanoseconds after `origin`; 0 before any window opened.
    window_end: AtomicU64,
    /// Load-path requests that have arrived, counted only until the automatic stall has fired.
    arrivals: AtomicU64,
    auto: Option<StallSpec>,
}

impl Stall {
    pub(crate) fn new(auto: Option<StallSpec>) -> Self {
        Stall {
            origin: Instant::now(),
            window_end: AtomicU64::new(0),
            arrivals: AtomicU64::new(0),
            auto: auto.filter(|s| s.after_requests > 0),
        }
    }

    /// Registers the arrival of a load-path request and says until when it must be held, if at all.
    ///
    /// Called when the request arrives, before any await, so "arrived during the window" means exactly that.
    pub(crate) fn on_arrival(&self) -> Option<Instant> {
        let now = self.now_nanos();
        if let Some(spec) = self.auto {
            // Once the stall has fired the count no longer matters, so stop touching the shared counter.
            if self.arrivals.load(Ordering::Relaxed) < spec.after_requests {
                let n = self.arrivals.fetch_add(1, Ordering::Relaxed) + 1;
                if n == spec.after_requests {
                    self.open_at(now, spec.duration);
                }
            }
        }
        let end = self.window_end.load(Ordering::Relaxed);
        (end > now).then(|| self.instant_at(end))
    }

    /// Opens a stall window now (`POST /__stampede/stall`); returns when it ends.
    ///
    /// If a longer window is already open, that one stands: windows only ever extend.
    pub(crate) fn stall_now(&self, duration: Duration) -> Instant {
        let end = self.open_at(self.now_nanos(), duration);
        self.instant_at(end)
    }

    fn open_at(&self, now: u64, duration: Duration) -> u64 {
        let len = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        let end = now.saturating_add(len);
        self.window_end.fetch_max(end, Ordering::Relaxed).max(end)
    }

    fn now_nanos(&self) -> u64 {
        // Never 0, so that 0 can mean "no window" and a zero-length window opened at start is empty.
        u64::try_from(self.origin.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    fn instant_at(&self, nanos: u64) -> Instant {
        self.origin
            .checked_add(Duration::from_nanos(nanos))
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn automatic_stall_fires_once_on_the_nth_arrival() {
        let stall = Stall::new(Some(StallSpec {
            after_requests: 3,
            duration: Duration::from_millis(300),
        }));
        assert_eq!(stall.on_arrival(), None);
        assert_eq!(stall.on_arrival(), None);
        let start = Instant::now();
        let end = stall
            .on_arrival()
            .expect("the third arrival opens the window");
        assert!(end >= start + Duration::from_millis(300));
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(
            stall.on_arrival(),
            Some(end),
            "arrivals during the window wait for its end"
        );
        tokio::time::advance(Duration::from_millis(250)).await;
        assert_eq!(stall.on_arrival(), None, "the window has closed");
        assert_eq!(
            stall.on_arrival(),
            None,
            "only one automatic stall per life"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn manual_stall_holds_later_arrivals() {
        let stall = Stall::new(None);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(stall.on_arrival(), None);
        let end = stall.stall_now(Duration::from_secs(1));
        assert_eq!(stall.on_arrival(), Some(end));
        // A shorter window does not cut the open one short.
        assert_eq!(stall.stall_now(Duration::from_millis(10)), end);
    }

    #[test]
    fn after_zero_never_stalls() {
        let stall = Stall::new(Some(StallSpec {
            after_requests: 0,
            duration: Duration::from_secs(1),
        }));
        for _ in 0..5 {
            assert_eq!(stall.on_arrival(), None);
        }
    }
}
