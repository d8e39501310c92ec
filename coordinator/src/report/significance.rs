//! Is a latency change beyond run-to-run noise? A Mann-Whitney U test on
//! two runs' merged latency histograms: it asks whether a request of one
//! run tends to be slower than a request of the other, using every sample
//! (bucketed at HDR precision; equal buckets count as ties), not one
//! percentile of each.

use hdrhistogram::Histogram;

/// The outcome of the test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shift {
    /// P(a request of NEW is slower than one of BASE), ties counted half:
    /// 0.5 means no shift.
    pub superiority: f64,
    /// Normal approximation of U, tie-corrected; positive when NEW is slower.
    pub z: f64,
}

/// |z| beyond which a shift is called real: two-sided p < 0.001.
pub const Z_CRITICAL: f64 = 3.29;

impl Shift {
    /// The distributions differ beyond noise.
    pub fn significant(&self) -> bool {
        self.z.abs() > Z_CRITICAL
    }
}

/// Compares `new` against `base`; `None` when either is empty.
pub fn shift(base: &Histogram<u64>, new: &Histogram<u64>) -> Option<Shift> {
    let (n_a, n_b) = (base.len() as f64, new.len() as f64);
    if n_a == 0.0 || n_b == 0.0 {
        return None;
    }
    // Walk the union of the non-empty buckets in order, giving each group
    // of equal values its mid-rank.
    let mut counts: Vec<(u64, u64, u64)> = Vec::new();
    for v in base.iter_recorded() {
        counts.push((
            base.lowest_equivalent(v.value_iterated_to()),
            v.count_at_value(),
            0,
        ));
    }
    for v in new.iter_recorded() {
        counts.push((
            new.lowest_equivalent(v.value_iterated_to()),
            0,
            v.count_at_value(),
        ));
    }
    counts.sort_unstable_by_key(|c| c.0);
    let mut rank_sum_new = 0.0;
    let mut ties = 0.0;
    let mut before = 0.0;
    let mut i = 0;
    while i < counts.len() {
        let value = counts[i].0;
        let (mut a, mut b) = (0u64, 0u64);
        while i < counts.len() && counts[i].0 == value {
            a += counts[i].1;
            b += counts[i].2;
            i += 1;
        }
        let t = (a + b) as f64;
        let mid_rank = before + (t + 1.0) / 2.0;
        rank_sum_new += b as f64 * mid_rank;
        ties += t * t * t - t;
        before += t;
    }
    let n = n_a + n_b;
    let u_new = rank_sum_new - n_b * (n_b + 1.0) / 2.0;
    let mean = n_a * n_b / 2.0;
    let variance = n_a * n_b / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)).max(1.0));
    let z = if variance > 0.0 {
        (u_new - mean) / variance.sqrt()
    } else {
        0.0
    };
    Some(Shift {
        superiority: u_new / (n_a * n_b),
        z,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use stampede_proto::histogram::new_latency_histogram;

    fn histogram(values: impl IntoIterator<Item = u64>) -> Histogram<u64> {
        let mut h = new_latency_histogram();
        for v in values {
            h.record(v).expect("in range");
        }
        h
    }

    /// A deterministic spread of latencies around `center` µs (±10%).
    fn spread(center: u64, n: u64, phase: u64) -> Vec<u64> {
        (0..n)
            .map(|i| center - center / 10 + ((i * 7919 + phase) % 1000) * center / 5000)
            .collect()
    }

    #[test]
    fn the_same_distribution_is_not_a_shift() {
        let s = shift(
            &histogram(spread(10_000, 2000, 1)),
            &histogram(spread(10_000, 2000, 500)),
        )
        .expect("samples");
        assert!(!s.significant(), "{s:?}");
        assert!((s.superiority - 0.5).abs() < 0.05, "{s:?}");
    }

    #[test]
    fn twenty_percent_slower_is_a_shift_in_the_right_direction() {
        let s = shift(
            &histogram(spread(10_000, 500, 1)),
            &histogram(spread(12_000, 500, 1)),
        )
        .expect("samples");
        assert!(s.significant() && s.z > 0.0, "{s:?}");
        assert!(s.superiority > 0.9, "{s:?}");
        let back = shift(
            &histogram(spread(12_000, 500, 1)),
            &histogram(spread(10_000, 500, 1)),
        )
        .expect("samples");
        assert!(back.significant() && back.z < 0.0, "{back:?}");
    }

    #[test]
    fn matches_a_hand_computed_u() {
        // base {1, 2}, new {3, 4}: every new sample is slower, U = 4.
        let s = shift(&histogram([1, 2]), &histogram([3, 4])).expect("samples");
        assert!((s.superiority - 1.0).abs() < 1e-12);
        // All tied: no information, z = 0.
        let s = shift(&histogram([5, 5]), &histogram([5, 5])).expect("samples");
        assert!((s.superiority - 0.5).abs() < 1e-12 && s.z == 0.0, "{s:?}");
        assert!(shift(&histogram([]), &histogram([1])).is_none());
    }
}
