//! Chart axes: where a value lands along an axis, and which ticks to label.
//!
//! Two kinds: a linear axis with "nice" ticks (1, 2 or 5 × 10^k), and the
//! "nines" axis HdrHistogram's plotter uses for percentile distributions,
//! where 0%, 90%, 99%, 99.9%, … are evenly spaced (x = log10(1 / (1 − q))),
//! so the tail gets as much room as the body.

/// A linear axis over `[min, max]` with ticks at a nice step.
#[derive(Debug, Clone, PartialEq)]
pub struct Linear {
    pub min: f64,
    pub max: f64,
    pub ticks: Vec<f64>,
}

impl Linear {
    /// The smallest nice axis covering `[low, high]` with about `target`
    /// ticks. A flat or empty range still gets a usable axis.
    pub fn nice(low: f64, high: f64, target: usize) -> Linear {
        Linear::nice_with_min_step(low, high, target, 0.0)
    }

    /// As [`Linear::nice`], with a step of at least `min_step` (1 for
    /// counts, which have no fractions).
    pub fn nice_with_min_step(low: f64, high: f64, target: usize, min_step: f64) -> Linear {
        let (mut low, mut high) = if low.is_finite() && high.is_finite() && low <= high {
            (low, high)
        } else {
            (0.0, 1.0)
        };
        if high == low {
            // Nothing to span: show the value mid-axis, or 0..1 for zero.
            if low == 0.0 {
                high = 1.0;
            } else {
                let pad = low.abs() * 0.5;
                low -= pad;
                high += pad;
            }
        }
        let step = nice_step((high - low) / target.max(1) as f64).max(min_step);
        let min = (low / step).floor() * step;
        let max = (high / step).ceil() * step;
        let count = ((max - min) / step).round() as usize;
        let ticks: Vec<f64> = (0..=count)
            .map(|i| clean(min + i as f64 * step, step))
            .collect();
        // The ends are ticks too, without float noise.
        Linear {
            min: ticks.first().copied().unwrap_or(min),
            max: ticks.last().copied().unwrap_or(max),
            ticks,
        }
    }

    /// Where `v` lands, as a fraction of the axis (0 at `min`, 1 at `max`).
    pub fn fraction(&self, v: f64) -> f64 {
        (v - self.min) / (self.max - self.min)
    }
}

/// 1, 2 or 5 × 10^k, the smallest at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let magnitude = 10f64.powf(raw.log10().floor());
    let normalized = raw / magnitude;
    let nice = if normalized <= 1.0 {
        1.0
    } else if normalized <= 2.0 {
        2.0
    } else if normalized <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// Removes float noise from a tick (0.30000000000000004 → 0.3).
fn clean(v: f64, step: f64) -> f64 {
    let decimals = (-step.log10().floor()).max(0.0) as i32 + 1;
    let scale = 10f64.powi(decimals);
    (v * scale).round() / scale
}

/// Position of quantile `q` (0 ≤ q < 1) on the nines axis, in nines:
/// 0 for 0%, 1 for 90%, 2 for 99%, 3 for 99.9%.
pub fn nines(q: f64) -> f64 {
    if q <= 0.0 {
        0.0
    } else if q >= 1.0 {
        f64::INFINITY
    } else {
        -(1.0 - q).log10()
    }
}

/// The quantile at `n` nines: the inverse of [`nines`].
pub fn quantile_at(n: f64) -> f64 {
    1.0 - 10f64.powf(-n)
}

/// How many nines a histogram of `count` values resolves: beyond
/// log10(count), every quantile is the maximum.
pub fn resolvable_nines(count: u64) -> f64 {
    if count <= 1 {
        0.0
    } else {
        (count as f64).log10()
    }
}

/// The nines axis from 0 to `max` whole nines (at least one).
pub fn nines_axis(max: f64) -> Linear {
    let top = max.ceil().max(1.0);
    Linear {
        min: 0.0,
        max: top,
        ticks: (0..=top as u32).map(f64::from).collect(),
    }
}

/// A nines tick's label: 0 → "0%", 1 → "90%", 2 → "99%", 3 → "99.9%".
pub fn nines_label(n: f64) -> String {
    let whole = n.round().max(0.0) as usize;
    match whole {
        0 => "0%".to_owned(),
        1 => "90%".to_owned(),
        _ => format!("99.{}%", "9".repeat(whole - 2)).replace(".%", "%"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_axes_cover_the_range_with_round_ticks() {
        let a = Linear::nice(0.0, 97.0, 5);
        assert_eq!((a.min, a.max), (0.0, 100.0));
        assert_eq!(a.ticks, [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);

        let a = Linear::nice(0.0, 0.7, 4);
        assert_eq!(a.ticks, [0.0, 0.2, 0.4, 0.6, 0.8]);

        let a = Linear::nice(3.0, 7_400.0, 5);
        assert_eq!((a.min, a.max), (0.0, 8_000.0));
        assert_eq!(a.ticks.len(), 5);

        // Every value in the range lands inside the axis.
        for (lo, hi) in [(0.0, 1.0), (12.5, 13.1), (0.0, 123_456.0), (5.0, 5.0)] {
            let a = Linear::nice(lo, hi, 5);
            for v in [lo, hi, (lo + hi) / 2.0] {
                let f = a.fraction(v);
                assert!((0.0..=1.0).contains(&f), "{v} on {a:?}: {f}");
            }
            assert_eq!(a.ticks.first(), Some(&a.min));
            assert_eq!(a.ticks.last(), Some(&a.max));
        }
    }

    #[test]
    fn count_axes_step_by_whole_numbers() {
        let a = Linear::nice_with_min_step(0.0, 0.0, 5, 1.0);
        assert_eq!(a.ticks, [0.0, 1.0]);
        let a = Linear::nice_with_min_step(0.0, 3.0, 5, 1.0);
        assert_eq!(a.ticks, [0.0, 1.0, 2.0, 3.0]);
        let a = Linear::nice_with_min_step(0.0, 40.0, 5, 1.0);
        assert_eq!(a.ticks, [0.0, 10.0, 20.0, 30.0, 40.0]);
    }

    #[test]
    fn flat_and_broken_ranges_still_make_an_axis() {
        let zero = Linear::nice(0.0, 0.0, 5);
        assert_eq!((zero.min, zero.max), (0.0, 1.0));
        let flat = Linear::nice(40.0, 40.0, 5);
        assert!(flat.min < 40.0 && flat.max > 40.0, "{flat:?}");
        let nan = Linear::nice(f64::NAN, 3.0, 5);
        assert_eq!((nan.min, nan.max), (0.0, 1.0));
        let inverted = Linear::nice(5.0, 1.0, 5);
        assert!(inverted.max > inverted.min);
    }

    #[test]
    fn fraction_maps_min_to_zero_and_max_to_one() {
        let a = Linear::nice(0.0, 50.0, 5);
        assert_eq!(a.fraction(a.min), 0.0);
        assert_eq!(a.fraction(a.max), 1.0);
        assert_eq!(a.fraction(25.0), 0.5);
    }

    #[test]
    fn the_nines_axis_spaces_90_99_and_999_evenly() {
        assert_eq!(nines(0.0), 0.0);
        assert!((nines(0.9) - 1.0).abs() < 1e-12);
        assert!((nines(0.99) - 2.0).abs() < 1e-12);
        assert!((nines(0.999) - 3.0).abs() < 1e-9);
        assert!(nines(1.0).is_infinite());
        for q in [0.0, 0.5, 0.9, 0.999, 0.99999] {
            assert!((quantile_at(nines(q)) - q).abs() < 1e-12, "{q}");
        }
        assert_eq!(resolvable_nines(1), 0.0);
        assert!((resolvable_nines(10_000) - 4.0).abs() < 1e-12);

        let axis = nines_axis(3.4);
        assert_eq!(axis.ticks, [0.0, 1.0, 2.0, 3.0, 4.0]);
        let labels: Vec<String> = axis.ticks.iter().map(|n| nines_label(*n)).collect();
        assert_eq!(labels, ["0%", "90%", "99%", "99.9%", "99.99%"]);
        assert_eq!(nines_axis(0.0).ticks, [0.0, 1.0]);
    }
}
