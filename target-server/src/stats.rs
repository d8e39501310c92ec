//! Counts of served requests, in total and per region.
//!
//! Tests use these to check that a load generator lost nothing and counted nothing twice, so the counts
//! must be exact; the target is also a benchmark target, so counting must not serialise requests. Hence:
//! plain atomics for the total, for requests naming no region and for every configured region (their
//! counters are created up front and never move); a mutex-protected map only for region names the config
//! does not know, which a well-configured test does not send.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

/// At most this many distinct unconfigured region names get their own counter; region names come from
/// clients, and a client must not be able to grow the server's memory without bound.
pub const MAX_UNKNOWN_REGIONS: usize = 1024;

/// Where requests naming an unconfigured region are counted once `MAX_UNKNOWN_REGIONS` names are taken
/// (or when the name is too long to be a region); not a valid region name, so it cannot collide with one.
pub const OVERFLOW_REGION: &str = "(other)";

/// A point-in-time copy of the counters, as served by `GET /__stampede/stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Load-path requests answered (admin endpoints excluded).
    pub served: u64,
    /// Per region name. Every configured region appears (possibly with 0); other names appear once seen;
    /// requests naming no region are counted under `""`, which appears once non-zero. The values add up
    /// to `served` (up to requests being counted at the instant of the snapshot).
    pub regions: BTreeMap<String, u64>,
}

/// A cheap, clonable handle on a server's counters; it stays valid after the server stops.
#[derive(Debug, Clone)]
pub struct TargetStats {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    served: AtomicU64,
    /// TCP connections accepted (load path and admin alike).
    accepted: AtomicU64,
    unnamed: AtomicU64,
    /// Configured regions, in config order; the index is the `RegionSlot::Known` value.
    known: Vec<(Box<str>, AtomicU64)>,
    known_index: HashMap<Box<str>, usize>,
    unknown: Mutex<HashMap<Box<str>, u64>>,
}

/// Which counter a request goes to, resolved once per request so the hot path does one hash lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RegionSlot {
    /// The request named no region.
    Unnamed,
    /// A configured region, by index.
    Known(usize),
    /// A region name the config does not know.
    Unknown,
}

impl TargetStats {
    /// Creates counters for the configured regions; their order defines the `RegionSlot::Known` indices.
    pub(crate) fn new<'a>(regions: impl IntoIterator<Item = &'a str>) -> Self {
        let known: Vec<(Box<str>, AtomicU64)> = regions
            .into_iter()
            .map(|name| (Box::from(name), AtomicU64::new(0)))
            .collect();
        let known_index = known
            .iter()
            .enumerate()
            .map(|(i, (name, _))| (name.clone(), i))
            .collect();
        TargetStats {
            inner: Arc::new(Inner {
                served: AtomicU64::new(0),
                accepted: AtomicU64::new(0),
                unnamed: AtomicU64::new(0),
                known,
                known_index,
                unknown: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Resolves a request's region name (if any) to its counter.
    pub(crate) fn slot(&self, region: Option<&str>) -> RegionSlot {
        match region {
            None | Some("") => RegionSlot::Unnamed,
            Some(name) => match self.inner.known_index.get(name) {
                Some(&i) => RegionSlot::Known(i),
                None => RegionSlot::Unknown,
            },
        }
    }

    /// Counts one served request. `name` is only read for `RegionSlot::Unknown`.
    pub(crate) fn record(&self, slot: RegionSlot, name: &str) {
        match slot {
            RegionSlot::Unnamed => {
                self.inner.unnamed.fetch_add(1, Ordering::Relaxed);
            }
            RegionSlot::Known(i) => {
                if let Some((_, count)) = self.inner.known.get(i) {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
            RegionSlot::Unknown => {
                let mut unknown = self
                    .inner
                    .unknown
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if let Some(count) = unknown.get_mut(name) {
                    *count += 1;
                } else if unknown.len() < MAX_UNKNOWN_REGIONS
                    && crate::region::check_region_name(name).is_ok()
                {
                    unknown.insert(Box::from(name), 1);
                } else {
                    *unknown.entry(Box::from(OVERFLOW_REGION)).or_insert(0) += 1;
                }
            }
        }
        self.inner.served.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one accepted TCP connection.
    pub(crate) fn record_connection(&self) {
        self.inner.accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// TCP connections accepted so far (a client's connection reuse, seen
    /// from the server).
    pub fn connections_accepted(&self) -> u64 {
        self.inner.accepted.load(Ordering::Relaxed)
    }

    /// Load-path requests answered so far (admin endpoints excluded).
    pub fn served(&self) -> u64 {
        self.inner.served.load(Ordering::Relaxed)
    }

    /// Requests answered for `region`; `""` is the requests that named no region.
    pub fn served_in_region(&self, region: &str) -> u64 {
        match self.slot(Some(region)) {
            RegionSlot::Unnamed => self.inner.unnamed.load(Ordering::Relaxed),
            RegionSlot::Known(i) => self
                .inner
                .known
                .get(i)
                .map_or(0, |(_, c)| c.load(Ordering::Relaxed)),
            RegionSlot::Unknown => {
                let unknown = self
                    .inner
                    .unknown
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                unknown.get(region).copied().unwrap_or(0)
            }
        }
    }

    /// Copies all counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        let mut regions: BTreeMap<String, u64> = self
            .inner
            .known
            .iter()
            .map(|(name, count)| (name.to_string(), count.load(Ordering::Relaxed)))
            .collect();
        let unnamed = self.inner.unnamed.load(Ordering::Relaxed);
        if unnamed > 0 {
            regions.insert(String::new(), unnamed);
        }
        {
            let unknown = self
                .inner
                .unknown
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            regions.extend(
                unknown
                    .iter()
                    .map(|(name, &count)| (name.to_string(), count)),
            );
        }
        StatsSnapshot {
            served: self.served(),
            regions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_slot_and_sums_to_served() {
        let stats = TargetStats::new(["us-east", "eu-west"]);
        let east = stats.slot(Some("us-east"));
        assert_eq!(east, RegionSlot::Known(0));
        stats.record(east, "us-east");
        stats.record(stats.slot(None), "");
        stats.record(stats.slot(Some("mars")), "mars");
        stats.record(stats.slot(Some("mars")), "mars");

        assert_eq!(stats.served(), 4);
        assert_eq!(stats.served_in_region("us-east"), 1);
        assert_eq!(stats.served_in_region("eu-west"), 0);
        assert_eq!(stats.served_in_region("mars"), 2);
        assert_eq!(stats.served_in_region(""), 1);
        assert_eq!(stats.served_in_region("venus"), 0);

        let snap = stats.snapshot();
        assert_eq!(snap.served, 4);
        let expected: BTreeMap<String, u64> =
            [("", 1), ("eu-west", 0), ("mars", 2), ("us-east", 1)]
                .map(|(k, v)| (k.to_owned(), v))
                .into();
        assert_eq!(snap.regions, expected);
        assert_eq!(snap.regions.values().sum::<u64>(), snap.served);
    }

    #[test]
    fn unknown_names_are_bounded() {
        let stats = TargetStats::new([]);
        for i in 0..MAX_UNKNOWN_REGIONS + 10 {
            let name = format!("r{i}");
            stats.record(stats.slot(Some(&name)), &name);
        }
        let long = "x".repeat(100);
        stats.record(stats.slot(Some(&long)), &long);
        let snap = stats.snapshot();
        assert_eq!(snap.regions.len(), MAX_UNKNOWN_REGIONS + 1);
        assert_eq!(snap.regions.get(OVERFLOW_REGION), Some(&11));
        assert_eq!(snap.regions.values().sum::<u64>(), snap.served);
    }

    #[test]
    fn snapshot_round_trips_through_json() {
        let stats = TargetStats::new(["a"]);
        stats.record(RegionSlot::Known(0), "a");
        let json = serde_json::to_string(&stats.snapshot()).expect("serialise");
        assert_eq!(json, r#"{"served":1,"regions":{"a":1}}"#);
        let back: StatsSnapshot = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back, stats.snapshot());
    }
}
