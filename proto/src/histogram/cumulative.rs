//! Counts added up over a run, one histogram at a time, stored whichever way
//! is smaller: sparse (12 bytes per non-zero bucket) or a dense window over
//! the buckets between the lowest and highest counted one (8 bytes per
//! bucket of the window).
//!
//! A coordinator keeps one of these per agent and histogram. A latency
//! histogram fills most buckets of its window, and adding a report to a
//! window is one array add per bucket of the report, where a sparse total
//! is walked whole by every report it takes in. A histogram whose few
//! buckets lie far apart (errors: fast refusals and slow timeouts) stays
//! sparse. Either way the counts are the same, bucket for bucket.

use super::SparseHistogram;
use hdrhistogram::Histogram;

/// A sparse total becomes a window when the window takes at most a third
/// more memory than it does: at most two buckets per non-zero bucket (8
/// bytes each against 12). A report then goes in as one array add per
/// bucket instead of a walk over the whole total.
const TO_WINDOW_BUCKETS_PER_COUNTED: usize = 2;
const TO_WINDOW_DIVISOR: usize = 1;
/// A window becomes sparse again past 2.7 times the sparse form's memory:
/// more than four buckets per non-zero bucket. The gap between the two
/// keeps a total near the line from switching back and forth.
const TO_SPARSE_BUCKETS_PER_COUNTED: usize = 4;
/// Windows start and end on multiples of this many buckets, so a tail that
/// creeps outward one bucket at a time regrows the window rarely.
const WINDOW_STEP: u32 = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CumulativeCounts {
    Sparse(SparseHistogram),
    /// `counts[i]` is the count of agreed bucket `first + i`.
    Window {
        first: u32,
        counts: Vec<u64>,
        /// Buckets of `counts` that are not zero.
        counted: usize,
        total: u64,
    },
}

impl Default for CumulativeCounts {
    fn default() -> Self {
        CumulativeCounts::Sparse(SparseHistogram::default())
    }
}

impl CumulativeCounts {
    /// Number of recorded values.
    pub fn len(&self) -> u64 {
        match self {
            CumulativeCounts::Sparse(s) => s.len(),
            CumulativeCounts::Window { total, .. } => *total,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when held as a dense window (for tests and memory figures).
    pub fn is_window(&self) -> bool {
        matches!(self, CumulativeCounts::Window { .. })
    }

    /// Bytes the counts take (heap, by length).
    pub fn bytes(&self) -> usize {
        match self {
            CumulativeCounts::Sparse(s) => s.indices.len() * 12,
            CumulativeCounts::Window { counts, .. } => counts.len() * 8,
        }
    }

    /// Adds `sparse` in; then switches form if the other is now smaller.
    pub fn add_sparse(&mut self, sparse: &SparseHistogram) {
        if sparse.is_empty() {
            return;
        }
        match self {
            CumulativeCounts::Sparse(total) => {
                total.merge(sparse);
                if let Some(window) = window_of(total) {
                    *self = window;
                }
            }
            CumulativeCounts::Window {
                first,
                counts,
                counted,
                total,
            } => {
                let (lo, hi) = match (sparse.indices.first(), sparse.indices.last()) {
                    (Some(&lo), Some(&hi)) => (lo, hi),
                    _ => return,
                };
                let end = *first + counts.len() as u32;
                if lo < *first || hi >= end {
                    let new_first = round_down(lo.min(*first));
                    let new_end = round_up(hi.saturating_add(1).max(end));
                    let mut grown = vec![0u64; (new_end - new_first) as usize];
                    let at = (*first - new_first) as usize;
                    grown[at..at + counts.len()].copy_from_slice(counts);
                    *counts = grown;
                    *first = new_first;
                }
                for (&index, &count) in sparse.indices.iter().zip(&sparse.counts) {
                    if let Some(c) = counts.get_mut((index - *first) as usize) {
                        *counted += usize::from(*c == 0);
                        *c += count;
                    }
                }
                *total += sparse.total;
                if counts.len() > TO_SPARSE_BUCKETS_PER_COUNTED * *counted {
                    *self = CumulativeCounts::Sparse(self.to_sparse());
                }
            }
        }
    }

    /// The non-zero counts, in sparse form.
    pub fn to_sparse(&self) -> SparseHistogram {
        match self {
            CumulativeCounts::Sparse(s) => s.clone(),
            CumulativeCounts::Window {
                first,
                counts,
                counted,
                total,
            } => {
                let mut s = SparseHistogram {
                    indices: Vec::with_capacity(*counted),
                    counts: Vec::with_capacity(*counted),
                    total: *total,
                };
                for (i, &c) in counts.iter().enumerate() {
                    if c != 0 {
                        s.indices.push(first + i as u32);
                        s.counts.push(c);
                    }
                }
                s
            }
        }
    }

    /// The counts as a histogram of the agreed shape.
    pub fn to_histogram(&self) -> Histogram<u64> {
        match self {
            CumulativeCounts::Sparse(s) => s.to_histogram(),
            CumulativeCounts::Window { first, counts, .. } => {
                let mut h = super::new_latency_histogram();
                super::add_agreed_buckets(
                    &mut h,
                    counts
                        .iter()
                        .enumerate()
                        .filter(|&(_, &c)| c != 0)
                        .map(|(i, &c)| (*first as usize + i, c)),
                );
                h
            }
        }
    }
}

fn round_down(index: u32) -> u32 {
    index - index % WINDOW_STEP
}

fn round_up(end: u32) -> u32 {
    end.div_ceil(WINDOW_STEP).saturating_mul(WINDOW_STEP)
}

/// `sparse` as a window, if the window takes no more memory.
fn window_of(sparse: &SparseHistogram) -> Option<CumulativeCounts> {
    let (&lo, &hi) = (sparse.indices.first()?, sparse.indices.last()?);
    let first = round_down(lo);
    let len = (round_up(hi + 1) - first) as usize;
    let counted = sparse.indices.len();
    if len * TO_WINDOW_DIVISOR > TO_WINDOW_BUCKETS_PER_COUNTED * counted {
        return None;
    }
    let mut counts = vec![0u64; len];
    for (&index, &count) in sparse.indices.iter().zip(&sparse.counts) {
        counts[(index - first) as usize] = count;
    }
    Some(CumulativeCounts::Window {
        first,
        counts,
        counted,
        total: sparse.total,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{Encoding, RecordClamped, decode_sparse, encode, new_latency_histogram};
    use super::*;

    fn sparse_of(values: &[u64]) -> SparseHistogram {
        let mut h = new_latency_histogram();
        for &v in values {
            h.record_clamped(v);
        }
        decode_sparse(&encode(&h, Encoding::Plain).expect("encodes")).expect("decodes")
    }

    #[test]
    fn a_filled_latency_range_becomes_a_window_and_wide_outliers_turn_it_sparse() {
        let mut total = CumulativeCounts::default();
        // Every bucket from 2 ms to 4 ms: dense is the smaller form.
        let filled: Vec<u64> = (2_000..4_000).step_by(2).collect();
        total.add_sparse(&sparse_of(&filled));
        assert!(total.is_window());
        let window_bytes = total.bytes();
        assert!(window_bytes <= filled.len() * 12, "{window_bytes}");
        // The same again: still a window, counts doubled.
        total.add_sparse(&sparse_of(&filled));
        assert!(total.is_window());
        assert_eq!(total.len(), 2 * filled.len() as u64);
        // One value at 1 µs and one near an hour stretch the window over
        // every bucket: then sparse is smaller, and it switches back.
        total.add_sparse(&sparse_of(&[1, 3_500_000_000]));
        assert!(!total.is_window());
        let mut reference = new_latency_histogram();
        for &v in filled.iter().chain(&filled).chain(&[1, 3_500_000_000]) {
            reference.record_clamped(v);
        }
        assert_eq!(total.to_histogram(), reference);
    }

    proptest::proptest! {
        /// Whatever the reports and whichever form the total is in after
        /// each, it holds exactly their sum, and a window never takes more
        /// than 8/3 of the memory the sparse form would (four buckets of 8
        /// bytes per non-zero bucket of 12).
        #[test]
        fn adding_reports_equals_histogram_addition_in_either_form(
            reports in proptest::collection::vec(
                (proptest::collection::vec(0u64..1_000_000, 0..400), 1u64..100_000, 1u64..20_000),
                1..12,
            ),
        ) {
            let mut total = CumulativeCounts::default();
            let mut reference = new_latency_histogram();
            for (offsets, base, spread) in reports {
                // Narrow reports (dense windows) and wide ones (sparse).
                let values: Vec<u64> = offsets.iter().map(|o| base + o % spread).collect();
                for &v in &values {
                    reference.record_clamped(v);
                }
                total.add_sparse(&sparse_of(&values));
                proptest::prop_assert_eq!(total.len(), reference.len());
                if let CumulativeCounts::Window { counts, counted, .. } = &total {
                    proptest::prop_assert!(counts.len() <= TO_SPARSE_BUCKETS_PER_COUNTED * counted);
                    proptest::prop_assert_eq!(*counted, counts.iter().filter(|&&c| c != 0).count());
                }
            }
            proptest::prop_assert_eq!(total.to_histogram(), reference.clone());
            proptest::prop_assert_eq!(total.to_sparse().to_histogram(), reference);
        }
    }
}
