//! A load level that changes over time: the request rate of an open-model
//! run, or the concurrency of a closed-model one.
//!
//! A profile is a list of linear segments, one after the other from the
//! run's start. A segment may start at a different level than the previous
//! one ended (a spike is a jump), so a profile is piecewise linear but not
//! necessarily continuous. A constant load is one flat segment.
//!
//! Open model: the expected number of arrivals by time `t` is the integral of
//! the rate, `N(t)`. Arrivals are placed at positions in that "arrival
//! space" (evenly: 0, 1, 2, …; Poisson: exponential gaps of mean 1) and
//! mapped to time through `N⁻¹`, which keeps both arrival processes exact
//! under ramps (a non-homogeneous Poisson process by time rescaling).
//!
//! Closed model: connection slot `j` is busy while the level, rounded, is
//! above `j` ([`LevelProfile::windows_above`]), so at any moment the number
//! of busy slots follows the profile.

use std::time::Duration;

/// One linear piece: the level goes from `from` to `to` over `duration`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    pub duration: Duration,
    pub from: f64,
    pub to: f64,
}

impl Segment {
    pub fn flat(level: f64, duration: Duration) -> Self {
        Self {
            duration,
            from: level,
            to: level,
        }
    }

    /// Integral of the level over the segment (level × seconds).
    fn area(&self) -> f64 {
        (self.from + self.to) * self.duration.as_nanos() as f64 / 2e9
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("a load profile needs at least one segment")]
    Empty,
    #[error("segment {0} has no duration")]
    ZeroDuration(usize),
    #[error("segment {0} has a negative or non-finite level")]
    BadLevel(usize),
}

/// Segments in order from the run's start, with what is needed to invert
/// the integral quickly.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelProfile {
    segments: Vec<Segment>,
    /// Start offset of each segment, nanoseconds.
    starts: Vec<u128>,
    /// Integral of the level up to each segment's start.
    area_before: Vec<f64>,
    total_area: f64,
}

impl LevelProfile {
    pub fn new(segments: Vec<Segment>) -> Result<Self, ProfileError> {
        if segments.is_empty() {
            return Err(ProfileError::Empty);
        }
        let mut starts = Vec::with_capacity(segments.len());
        let mut area_before = Vec::with_capacity(segments.len());
        let (mut at, mut area) = (0u128, 0.0);
        for (i, s) in segments.iter().enumerate() {
            if s.duration.is_zero() {
                return Err(ProfileError::ZeroDuration(i));
            }
            if !(s.from.is_finite() && s.to.is_finite() && s.from >= 0.0 && s.to >= 0.0) {
                return Err(ProfileError::BadLevel(i));
            }
            starts.push(at);
            area_before.push(area);
            at += s.duration.as_nanos();
            area += s.area();
        }
        Ok(Self {
            segments,
            starts,
            area_before,
            total_area: area,
        })
    }

    /// One flat segment.
    pub fn constant(level: f64, duration: Duration) -> Result<Self, ProfileError> {
        Self::new(vec![Segment::flat(level, duration)])
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    pub fn duration(&self) -> Duration {
        self.segments.iter().map(|s| s.duration).sum()
    }

    /// The same shape with every level multiplied by `factor` (an agent's
    /// share of the cluster's rate).
    pub fn scaled(&self, factor: f64) -> Self {
        let segments = self
            .segments
            .iter()
            .map(|s| Segment {
                duration: s.duration,
                from: s.from * factor,
                to: s.to * factor,
            })
            .collect();
        Self {
            segments,
            starts: self.starts.clone(),
            area_before: self.area_before.iter().map(|a| a * factor).collect(),
            total_area: self.total_area * factor,
        }
    }

    /// The same profile with nothing before `t`: level 0 until `t`, then
    /// the profile as it was (a segment that `t` falls inside is split at
    /// `t`, its level interpolated). For load taken over mid-run from a lost
    /// agent: the same shape, from the moment the takeover begins. `t` at or
    /// past the end gives a profile that is 0 throughout.
    pub fn silenced_before(&self, t: Duration) -> Self {
        let t = t.as_nanos();
        let mut segments = Vec::with_capacity(self.segments.len() + 1);
        let mut silent = 0u128;
        for (s, &start) in self.segments.iter().zip(&self.starts) {
            let d = s.duration.as_nanos();
            if start + d <= t {
                silent += d;
                continue;
            }
            if start < t {
                let cut = t - start;
                let at_cut = s.from + (s.to - s.from) * (cut as f64 / d as f64);
                silent += cut;
                segments.push(Segment {
                    duration: Duration::from_nanos((d - cut) as u64),
                    from: at_cut,
                    to: s.to,
                });
            } else {
                segments.push(*s);
            }
        }
        if silent > 0 {
            segments.insert(0, Segment::flat(0.0, Duration::from_nanos(silent as u64)));
        }
        // Every piece has a duration and the levels of `self`: valid.
        Self::new(segments).unwrap_or_else(|_| self.scaled(0.0))
    }

    /// The profile multiplied by a step function: `factor` inside each
    /// window `[from, to)`, 0 outside any. Windows must not overlap. For one
    /// endpoint's part of a load whose routing changes over time.
    pub fn windowed(&self, windows: &[(Duration, Duration, f64)]) -> Self {
        // Cut points: every segment and window boundary.
        let total = self.duration().as_nanos();
        let mut cuts: Vec<u128> = self.starts.clone();
        for &(from, to, _) in windows {
            cuts.push(from.as_nanos().min(total));
            cuts.push(to.as_nanos().min(total));
        }
        cuts.push(total);
        cuts.sort_unstable();
        cuts.dedup();
        let factor_at = |t: u128| {
            windows
                .iter()
                .find(|(from, to, _)| from.as_nanos() <= t && t < to.as_nanos())
                .map_or(0.0, |w| w.2)
        };
        let level_just_before = |t: u128| {
            // The level at the end of the piece that ends at `t`.
            let i = self.starts.partition_point(|&s| s < t).saturating_sub(1);
            let s = &self.segments[i];
            let d = s.duration.as_nanos().max(1);
            let into = (t - self.starts[i]).min(d);
            s.from + (s.to - s.from) * (into as f64 / d as f64)
        };
        let mut segments = Vec::with_capacity(cuts.len());
        for pair in cuts.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if b <= a {
                continue;
            }
            let f = factor_at(a);
            segments.push(Segment {
                duration: Duration::from_nanos((b - a) as u64),
                from: self.level_at(Duration::from_nanos(a as u64)) * f,
                to: level_just_before(b) * f,
            });
        }
        Self::new(segments).unwrap_or_else(|_| self.scaled(0.0))
    }

    /// The highest level anywhere in the profile.
    pub fn peak(&self) -> f64 {
        self.segments
            .iter()
            .map(|s| s.from.max(s.to))
            .fold(0.0, f64::max)
    }

    /// Integral of the level over the whole profile (open model: the
    /// expected number of requests).
    pub fn area(&self) -> f64 {
        self.total_area
    }

    /// The level at offset `t` (right-continuous at segment boundaries).
    pub fn level_at(&self, t: Duration) -> f64 {
        let t = t.as_nanos();
        let i = self.starts.partition_point(|&s| s <= t).saturating_sub(1);
        let s = &self.segments[i];
        let into = (t - self.starts[i]).min(s.duration.as_nanos()) as f64;
        s.from + (s.to - s.from) * into / s.duration.as_nanos() as f64
    }

    /// The offset at which the integral of the level reaches `x`, or `None`
    /// when the profile ends first. Open model: when arrival number `x` is
    /// due.
    pub fn time_at_area(&self, x: f64) -> Option<Duration> {
        if x.is_nan() || x < 0.0 || x >= self.total_area {
            return None;
        }
        // The last segment whose start the integral has reached (so
        // segments of zero level, where nothing is due, are skipped).
        let i = self
            .area_before
            .partition_point(|&a| a <= x)
            .saturating_sub(1);
        let s = &self.segments[i];
        let y = x - self.area_before[i];
        let d = s.duration.as_nanos() as f64 / 1e9;
        // Solve from·τ + (to − from)·τ²/(2d) = y for τ in [0, d], in the
        // form that stays accurate when the slope is tiny or `from` is 0.
        let disc = s.from * s.from + 2.0 * (s.to - s.from) * y / d;
        let denom = s.from + disc.max(0.0).sqrt();
        let tau_nanos = if y <= 0.0 || denom <= 0.0 {
            0.0
        } else {
            2.0 * y * 1e9 / denom
        };
        let tau_nanos = tau_nanos.min(s.duration.as_nanos() as f64);
        Some(Duration::from_nanos(
            (self.starts[i] as f64 + tau_nanos) as u64,
        ))
    }

    /// Closed model: the time windows `[start, end)` during which slot
    /// `slot` is busy, i.e. the level is above `slot + 0.5` (the level
    /// rounded to whole connections exceeds the slot's index).
    pub fn windows_above(&self, slot: u32) -> Vec<(Duration, Duration)> {
        let threshold = f64::from(slot) + 0.5;
        let mut windows: Vec<(Duration, Duration)> = Vec::new();
        let mut push = |start: u128, end: u128| {
            if end <= start {
                return;
            }
            let (start, end) = (nanos(start), nanos(end));
            match windows.last_mut() {
                Some(last) if last.1 == start => last.1 = end,
                _ => windows.push((start, end)),
            }
        };
        for (s, &t0) in self.segments.iter().zip(&self.starts) {
            let d = s.duration.as_nanos();
            let t1 = t0 + d;
            let (above_from, above_to) = (s.from > threshold, s.to > threshold);
            match (above_from, above_to) {
                (true, true) => push(t0, t1),
                (false, false) => {}
                _ => {
                    let cross = (threshold - s.from) / (s.to - s.from);
                    let tc = t0 + (cross.clamp(0.0, 1.0) * d as f64) as u128;
                    if above_to {
                        push(tc, t1);
                    } else {
                        push(t0, tc);
                    }
                }
            }
        }
        windows
    }
}

fn nanos(n: u128) -> Duration {
    Duration::from_nanos(u64::try_from(n).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn profile(segments: &[(f64, f64, f64)]) -> LevelProfile {
        LevelProfile::new(
            segments
                .iter()
                .map(|&(d, from, to)| Segment {
                    duration: secs(d),
                    from,
                    to,
                })
                .collect(),
        )
        .expect("valid profile")
    }

    #[test]
    fn windowed_scales_inside_windows_and_silences_outside() {
        let p = profile(&[(10.0, 0.0, 100.0), (5.0, 100.0, 100.0)]);
        let w = p.windowed(&[
            (Duration::ZERO, secs(4.0), 0.5),
            (secs(12.0), secs(15.0), 1.0),
        ]);
        assert_eq!(w.duration(), p.duration());
        assert!((w.level_at(secs(2.0)) - 10.0).abs() < 1e-9);
        assert_eq!(w.level_at(secs(6.0)), 0.0);
        assert!((w.level_at(secs(13.0)) - 100.0).abs() < 1e-9);
        // Area: half the ramp to 4 s (0.5 × 80) plus 3 s at 100.
        assert!((w.area() - 340.0).abs() < 1e-6, "{}", w.area());
        // Complementary windows add up to the whole.
        let a = p.windowed(&[(Duration::ZERO, secs(7.0), 1.0)]);
        let b = p.windowed(&[(secs(7.0), secs(15.0), 1.0)]);
        assert!((a.area() + b.area() - p.area()).abs() < 1e-6);
    }

    #[test]
    fn silenced_before_keeps_the_shape_after_the_cut() {
        let p = profile(&[(10.0, 0.0, 100.0), (5.0, 100.0, 100.0)]);
        // Cut inside the ramp: 0 for 4 s, then 40 → 100 over 6 s, then flat.
        let q = p.silenced_before(secs(4.0));
        assert_eq!(q.duration(), p.duration());
        assert_eq!(q.level_at(secs(3.9)), 0.0);
        assert!((q.level_at(secs(4.0)) - 40.0).abs() < 1e-9);
        assert_eq!(q.level_at(secs(12.0)), 100.0);
        assert!((q.area() - (p.area() - 80.0)).abs() < 1e-6, "{}", q.area());
        // On a boundary, and past the end.
        let q = p.silenced_before(secs(10.0));
        assert!((q.area() - 500.0).abs() < 1e-6);
        assert_eq!(p.silenced_before(secs(20.0)).area(), 0.0);
        assert_eq!(p.silenced_before(Duration::ZERO), p);
    }

    #[test]
    fn area_and_level_follow_the_segments() {
        let p = profile(&[(10.0, 0.0, 100.0), (5.0, 100.0, 100.0), (2.0, 300.0, 300.0)]);
        assert_eq!(p.area(), 500.0 + 500.0 + 600.0);
        assert_eq!(p.level_at(secs(5.0)), 50.0);
        assert_eq!(p.level_at(secs(12.0)), 100.0);
        assert_eq!(
            p.level_at(secs(15.0)),
            300.0,
            "a jump takes effect at its start"
        );
        assert_eq!(p.peak(), 300.0);
        assert_eq!(p.duration(), secs(17.0));
    }

    #[test]
    fn inverting_the_integral_lands_where_the_count_is_reached() {
        // Up-ramp, flat, down-ramp to zero, and a flat run after a gap at 0.
        let p = profile(&[
            (10.0, 0.0, 100.0),
            (5.0, 100.0, 100.0),
            (4.0, 100.0, 0.0),
            (3.0, 0.0, 0.0),
            (2.0, 50.0, 50.0),
        ]);
        // In the ramp, N(t) = 5 t², so N = 125 at t = 5 s.
        let t = p.time_at_area(125.0).expect("inside");
        assert!((t.as_secs_f64() - 5.0).abs() < 1e-9, "{t:?}");
        // Flat: 500 + 100 (t − 10).
        let t = p.time_at_area(700.0).expect("inside");
        assert!((t.as_secs_f64() - 12.0).abs() < 1e-9, "{t:?}");
        // Down-ramp: 1000 + 100τ − 12.5τ²; at τ = 2: 1150.
        let t = p.time_at_area(1150.0).expect("inside");
        assert!((t.as_secs_f64() - 17.0).abs() < 1e-9, "{t:?}");
        // Nothing is due while the level is zero: the next arrival after
        // 1200 lands in the last segment.
        let t = p.time_at_area(1210.0).expect("inside");
        assert!((t.as_secs_f64() - 22.2).abs() < 1e-9, "{t:?}");
        assert_eq!(p.time_at_area(p.area()), None);
        // Monotone everywhere.
        let mut last = Duration::ZERO;
        for k in 0..1300 {
            let Some(t) = p.time_at_area(f64::from(k)) else {
                break;
            };
            assert!(t >= last, "arrival {k} at {t:?} before {last:?}");
            last = t;
        }
    }

    #[test]
    fn scaling_keeps_the_shape() {
        let p = profile(&[(10.0, 0.0, 100.0), (5.0, 100.0, 100.0)]);
        let q = p.scaled(0.25);
        assert_eq!(q.area(), p.area() * 0.25);
        assert_eq!(q.level_at(secs(12.0)), 25.0);
        let (a, b) = (p.time_at_area(700.0), q.time_at_area(175.0));
        assert_eq!(a, b);
    }

    #[test]
    fn busy_slots_follow_the_level() {
        // 0 → 4 connections over 4 s, hold 4 for 2 s, spike to 6 for 1 s.
        let p = profile(&[(4.0, 0.0, 4.0), (2.0, 4.0, 4.0), (1.0, 6.0, 6.0)]);
        assert_eq!(p.windows_above(0), vec![(secs(0.5), secs(7.0))]);
        assert_eq!(p.windows_above(3), vec![(secs(3.5), secs(7.0))]);
        assert_eq!(p.windows_above(4), vec![(secs(6.0), secs(7.0))]);
        assert_eq!(p.windows_above(6), vec![]);
        // At every sampled moment the busy slots add up to the level, rounded.
        for ms in (0..7000).step_by(50) {
            let t = Duration::from_millis(ms);
            let busy = (0..8)
                .filter(|&j| p.windows_above(j).iter().any(|w| w.0 <= t && t < w.1))
                .count();
            assert_eq!(busy as f64, p.level_at(t).round(), "at {ms} ms");
        }
    }

    #[test]
    fn a_dip_opens_two_windows() {
        let p = profile(&[(2.0, 3.0, 3.0), (2.0, 1.0, 1.0), (2.0, 3.0, 3.0)]);
        assert_eq!(
            p.windows_above(2),
            vec![(secs(0.0), secs(2.0)), (secs(4.0), secs(6.0))]
        );
        assert_eq!(p.windows_above(0), vec![(secs(0.0), secs(6.0))]);
    }

    #[test]
    fn rejects_bad_segments() {
        assert_eq!(LevelProfile::new(vec![]), Err(ProfileError::Empty));
        assert_eq!(
            LevelProfile::new(vec![Segment::flat(1.0, Duration::ZERO)]),
            Err(ProfileError::ZeroDuration(0))
        );
        assert_eq!(
            LevelProfile::new(vec![
                Segment::flat(1.0, secs(1.0)),
                Segment::flat(-1.0, secs(1.0))
            ]),
            Err(ProfileError::BadLevel(1))
        );
    }
}
