//! Capacity: a known limit on the requests per second the target serves, so that a capacity search has
//! an answer to find.
//!
//! A limit is a leaky bucket kept as one "theoretical arrival time" (GCRA): every arriving request
//! reserves the next free slot of `1/N` seconds, in arrival order, and is served when its slot is at most
//! [`BURST`] ahead of now. Below `N` requests/s slots are free and nothing waits. Above it the reserved
//! slots run ahead of the clock by `(rate − N)/N` seconds per second, so the wait, and with it the
//! latency, grows without bound: the sharp knee of a saturated server's queue, deterministically.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::region::check_region_name;

/// How far ahead of its slot a request may be served: jitter between clients (several agents whose
/// evenly spaced streams interleave, a client that paused and catches up) is absorbed instead of queued.
/// At least one slot.
pub const BURST: Duration = Duration::from_millis(50);

/// Highest accepted limit; beyond it the slot is shorter than the clock can tell apart.
pub const MAX_CAPACITY: f64 = 1e9;

/// Why a capacity could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapacityParseError {
    /// Not a positive number of requests per second.
    #[error(
        "invalid capacity {input:?}: expected a positive number of requests per second, e.g. 500"
    )]
    NotARate {
        /// As written.
        input: String,
    },
    /// No `=` separating the region from its capacity.
    #[error(
        "invalid region capacity {input:?}: expected REGION=REQUESTS_PER_SECOND, e.g. \"eu-west=500\""
    )]
    MissingEquals {
        /// The whole pair.
        input: String,
    },
    /// The region name cannot be used in a request path or header.
    #[error("invalid region name {name:?} in {input:?}: {reason}")]
    InvalidName {
        /// The whole pair.
        input: String,
        /// The name as written.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Parses a capacity in requests per second (`500`, `1e4`).
pub fn parse_capacity(s: &str) -> Result<f64, CapacityParseError> {
    let not_a_rate = || CapacityParseError::NotARate {
        input: s.to_owned(),
    };
    let rate: f64 = s.trim().parse().map_err(|_| not_a_rate())?;
    if rate.is_finite() && rate > 0.0 && rate <= MAX_CAPACITY {
        Ok(rate)
    } else {
        Err(not_a_rate())
    }
}

/// Parses a `REGION=N` pair such as `eu-west=500` (the CLI's `--region-capacity`).
pub fn parse_region_capacity(s: &str) -> Result<(String, f64), CapacityParseError> {
    let Some((name, rate)) = s.split_once('=') else {
        return Err(CapacityParseError::MissingEquals {
            input: s.to_owned(),
        });
    };
    let name = name.trim();
    check_region_name(name).map_err(|reason| CapacityParseError::InvalidName {
        input: s.to_owned(),
        name: name.to_owned(),
        reason,
    })?;
    Ok((name.to_owned(), parse_capacity(rate)?))
}

/// One limit: the slot length and the next free slot.
#[derive(Debug)]
pub(crate) struct CapacityLimit {
    slot: Duration,
    burst: Duration,
    /// Start of the next free slot. Locked only to read and advance it, never across an await.
    next_free: Mutex<Instant>,
}

impl CapacityLimit {
    /// A limit of `rate` requests per second; `rate` must be positive (checked where configs are bound).
    pub(crate) fn new(rate: f64) -> Self {
        let slot = Duration::from_secs_f64(1.0 / rate.clamp(1.0 / 86_400.0, MAX_CAPACITY));
        CapacityLimit {
            slot,
            burst: BURST.max(slot),
            next_free: Mutex::new(Instant::now()),
        }
    }

    /// Reserves a slot for a request arriving at `now`; returns when it may be served, if later than now.
    pub(crate) fn reserve(&self, now: Instant) -> Option<Instant> {
        // A poisoned lock only means another request panicked while holding a plain `Instant`: the value
        // is still a valid slot time.
        let mut next_free = self
            .next_free
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let slot = (*next_free).max(now);
        *next_free = slot + self.slot;
        let serve_at = slot.checked_sub(self.burst).unwrap_or(now);
        (serve_at > now).then_some(serve_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_capacities() {
        assert_eq!(parse_capacity("500"), Ok(500.0));
        assert_eq!(parse_capacity(" 1e4 "), Ok(10_000.0));
        for bad in ["0", "-5", "many", "inf", "NaN", "1e10"] {
            let e = parse_capacity(bad).expect_err(bad).to_string();
            assert!(e.contains("positive number"), "{bad}: {e}");
        }
        assert_eq!(
            parse_region_capacity("eu-west=250"),
            Ok(("eu-west".to_owned(), 250.0))
        );
        let e = parse_region_capacity("eu-west")
            .expect_err("no =")
            .to_string();
        assert!(e.contains("REGION=REQUESTS_PER_SECOND"), "{e}");
        let e = parse_region_capacity("eu/west=5")
            .expect_err("slash")
            .to_string();
        assert!(e.contains("only ASCII"), "{e}");
        let e = parse_region_capacity("eu-west=x")
            .expect_err("rate")
            .to_string();
        assert!(e.contains("positive number"), "{e}");
    }

    #[test]
    fn below_capacity_nothing_waits() {
        // 100 req/s: 10 ms slots; arrivals every 12 ms never wait.
        let limit = CapacityLimit::new(100.0);
        let start = Instant::now();
        for i in 0..50u32 {
            let now = start + Duration::from_millis(12) * i;
            assert_eq!(limit.reserve(now), None, "arrival {i}");
        }
    }

    #[test]
    fn a_burst_within_the_tolerance_passes_then_the_queue_grows() {
        // 1000 req/s: 1 ms slots and a 50 ms burst; 100 requests at once.
        let limit = CapacityLimit::new(1000.0);
        let now = Instant::now();
        let waits: Vec<Duration> = (0..100)
            .map(|_| limit.reserve(now).map_or(Duration::ZERO, |at| at - now))
            .collect();
        // The first 51 slots are within 50 ms: served at once.
        assert!(waits[..51].iter().all(Duration::is_zero), "{waits:?}");
        // Then one slot later each: the 100th waits 99 − 50 = 49 ms.
        assert_eq!(waits[51], Duration::from_millis(1));
        assert_eq!(waits[99], Duration::from_millis(49));
    }

    #[test]
    fn above_capacity_the_wait_grows_with_the_excess() {
        // 100 req/s offered 125 req/s (8 ms apart) for 4 s: 500 arrivals take 5 s of slots, so the last
        // waits about 1 s − 50 ms.
        let limit = CapacityLimit::new(100.0);
        let start = Instant::now();
        let mut last = Duration::ZERO;
        for i in 0..500u32 {
            let now = start + Duration::from_millis(8) * i;
            last = limit.reserve(now).map_or(Duration::ZERO, |at| at - now);
        }
        let expected = Duration::from_millis(5000 - 8 * 499 - 50 - 10);
        let off = last.abs_diff(expected);
        assert!(off < Duration::from_millis(2), "{last:?} vs {expected:?}");
    }
}
