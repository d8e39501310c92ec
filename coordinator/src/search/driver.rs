//! Which level to probe next: a pure state machine, fed each probe's verdict.
//!
//! Each leg (the cluster, or one region in per-region mode) doubles its level
//! from `start` until a probe fails or `max` passes, then bisects between the
//! highest passing and the lowest failing level until their gap is under the
//! tolerance. When `start` fails, `min` is probed before bisecting; when `min`
//! fails too, the SLO is already violated at the lowest level. A probe whose
//! generator saturated ends the whole search.

use crate::scenario::search::{SearchSpec, Tolerance};
use crate::scenario::stages::LevelUnit;

/// What a probe showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every SLO line held, with the generator keeping up.
    Pass,
    /// An SLO line did not hold, and the target is to blame.
    Fail,
    /// The generator could not produce the load: the figures say nothing
    /// about the target, and the search stops.
    GeneratorSaturated,
    /// The probe could not be judged (an agent was lost, the run was cut
    /// short): the search stops.
    Incomplete,
}

/// How a leg ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LegEnd {
    /// The highest passing level, and the lowest failing one above it
    /// (`None`: `max` passed; the capacity may be higher).
    Found { pass: f64, fail: Option<f64> },
    /// `min` failed.
    ViolatedAtMin { fail: f64 },
    /// The generator saturated at this level.
    GeneratorSaturated { level: f64, pass: Option<f64> },
    /// The last probe could not be judged, or the search was stopped.
    Stopped {
        pass: Option<f64>,
        fail: Option<f64>,
    },
}

/// One leg's bounds so far.
#[derive(Debug, Clone, Copy, Default)]
struct Bounds {
    pass: Option<f64>,
    fail: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct Driver {
    min: f64,
    max: f64,
    start: f64,
    tolerance: Tolerance,
    whole: bool,
    legs: usize,
    /// Ends of the legs done so far.
    ended: Vec<LegEnd>,
    bounds: Bounds,
    /// The probe in flight: (leg, level); `None` when the search is over.
    current: Option<(usize, f64)>,
}

impl Driver {
    /// A search of `legs` legs (at least one).
    pub fn new(spec: &SearchSpec, legs: usize) -> Self {
        Self {
            min: spec.min,
            max: spec.max,
            start: spec.start,
            tolerance: spec.tolerance,
            whole: spec.unit == LevelUnit::Connections,
            legs: legs.max(1),
            ended: Vec::new(),
            bounds: Bounds::default(),
            current: Some((0, spec.start)),
        }
    }

    /// The probe to run now: (leg index, level), or `None` when done.
    pub fn current(&self) -> Option<(usize, f64)> {
        self.current
    }

    /// How each leg ended, in leg order (complete once `current` is `None`).
    pub fn ended(&self) -> &[LegEnd] {
        &self.ended
    }

    /// Ends the search early (a run failed or was stopped): the leg in
    /// flight ends with what it had.
    pub fn stop(&mut self) {
        if self.current.take().is_some() {
            self.ended.push(LegEnd::Stopped {
                pass: self.bounds.pass,
                fail: self.bounds.fail,
            });
        }
    }

    /// Takes the verdict of the current probe; returns the next probe.
    pub fn record(&mut self, verdict: Verdict) -> Option<(usize, f64)> {
        let (leg, level) = self.current?;
        let b = &mut self.bounds;
        let end = match verdict {
            Verdict::Incomplete => Some(LegEnd::Stopped {
                pass: b.pass,
                fail: b.fail,
            }),
            Verdict::GeneratorSaturated => Some(LegEnd::GeneratorSaturated {
                level,
                pass: b.pass,
            }),
            Verdict::Pass => {
                b.pass = Some(b.pass.map_or(level, |p| p.max(level)));
                None
            }
            Verdict::Fail => {
                b.fail = Some(b.fail.map_or(level, |f| f.min(level)));
                None
            }
        };
        let next = match end {
            Some(end) => Err(end),
            None => self.next_level(),
        };
        match next {
            Ok(level) => self.current = Some((leg, level)),
            Err(end) => {
                let stops = !matches!(end, LegEnd::Found { .. } | LegEnd::ViolatedAtMin { .. });
                self.ended.push(end);
                self.bounds = Bounds::default();
                self.current = (!stops && leg + 1 < self.legs).then_some((leg + 1, self.start));
            }
        }
        self.current
    }

    /// The next level of the current leg, or how the leg ended.
    fn next_level(&self) -> Result<f64, LegEnd> {
        match (self.bounds.pass, self.bounds.fail) {
            (None, None) => Ok(self.start),
            // Still climbing: double, up to max.
            (Some(pass), None) if pass >= self.max => Err(LegEnd::Found { pass, fail: None }),
            (Some(pass), None) => Ok(self.round((pass * 2.0).min(self.max)).max(pass)),
            // Nothing passed yet: try the bottom of the range.
            (None, Some(fail)) if fail <= self.min => Err(LegEnd::ViolatedAtMin { fail }),
            (None, Some(_)) => Ok(self.min),
            (Some(pass), Some(fail)) => {
                let gap = fail - pass;
                let mid = self.round(pass + gap / 2.0);
                if gap < self.tolerance.gap(pass) || mid <= pass || mid >= fail {
                    Err(LegEnd::Found {
                        pass,
                        fail: Some(fail),
                    })
                } else {
                    Ok(mid)
                }
            }
        }
    }

    /// Connections are whole; rates are kept to whole requests per second
    /// when that still leaves room to bisect.
    fn round(&self, level: f64) -> f64 {
        if self.whole || level >= 100.0 {
            level.floor()
        } else {
            level
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::search::{DEFAULT_MAX_SCHEDULE_LAG, SearchMode};
    use std::time::Duration;

    fn spec(min: f64, max: f64, tolerance: Tolerance) -> SearchSpec {
        SearchSpec {
            slo: Vec::new(),
            unit: LevelUnit::Rate,
            min,
            max,
            start: min,
            step: Duration::from_secs(1),
            settle: Duration::ZERO,
            tolerance,
            mode: SearchMode::Global,
            max_schedule_lag: DEFAULT_MAX_SCHEDULE_LAG,
        }
    }

    /// Runs a driver against a target that passes every level up to
    /// `capacity` (per leg); returns the levels probed and the ends.
    fn search(driver: &mut Driver, capacity: &[f64]) -> Vec<(usize, f64)> {
        let mut probed = Vec::new();
        while let Some((leg, level)) = driver.current() {
            probed.push((leg, level));
            assert!(probed.len() < 100, "runaway search: {probed:?}");
            let verdict = if level <= capacity[leg] {
                Verdict::Pass
            } else {
                Verdict::Fail
            };
            driver.record(verdict);
        }
        probed
    }

    #[test]
    fn doubles_then_bisects_to_within_the_tolerance() {
        let mut d = Driver::new(&spec(100.0, 10_000.0, Tolerance::Relative(0.05)), 1);
        let probed = search(&mut d, &[1234.0]);
        let levels: Vec<f64> = probed.iter().map(|p| p.1).collect();
        assert_eq!(&levels[..6], &[100.0, 200.0, 400.0, 800.0, 1600.0, 1200.0]);
        let [
            LegEnd::Found {
                pass,
                fail: Some(fail),
            },
        ] = d.ended()
        else {
            panic!("{:?}", d.ended())
        };
        assert!(*pass <= 1234.0 && *fail > 1234.0, "{pass} {fail}");
        assert!(fail - pass < 0.05 * pass, "{pass} {fail}");
    }

    #[test]
    fn an_absolute_tolerance_and_whole_connections() {
        let mut s = spec(1.0, 64.0, Tolerance::Absolute(1.0));
        s.unit = LevelUnit::Connections;
        let mut d = Driver::new(&s, 1);
        let probed = search(&mut d, &[37.0]);
        assert!(probed.iter().all(|(_, l)| l.fract() == 0.0), "{probed:?}");
        assert_eq!(
            d.ended(),
            &[LegEnd::Found {
                pass: 37.0,
                fail: Some(38.0)
            }]
        );
    }

    #[test]
    fn a_pass_at_max_ends_at_the_ceiling() {
        let mut d = Driver::new(&spec(100.0, 1000.0, Tolerance::Relative(0.05)), 1);
        let probed = search(&mut d, &[5000.0]);
        let levels: Vec<f64> = probed.iter().map(|p| p.1).collect();
        assert_eq!(levels, [100.0, 200.0, 400.0, 800.0, 1000.0]);
        assert_eq!(
            d.ended(),
            &[LegEnd::Found {
                pass: 1000.0,
                fail: None
            }]
        );
    }

    #[test]
    fn a_failure_at_min_is_reported_as_such() {
        let mut d = Driver::new(&spec(100.0, 1000.0, Tolerance::Relative(0.05)), 1);
        assert_eq!(search(&mut d, &[50.0]), [(0, 100.0)]);
        assert_eq!(d.ended(), &[LegEnd::ViolatedAtMin { fail: 100.0 }]);
    }

    #[test]
    fn a_failing_start_probes_min_before_bisecting() {
        let mut s = spec(100.0, 1000.0, Tolerance::Absolute(10.0));
        s.start = 800.0;
        let mut d = Driver::new(&s, 1);
        let probed = search(&mut d, &[300.0]);
        assert_eq!(&probed[..3], &[(0, 800.0), (0, 100.0), (0, 450.0)]);
        let [
            LegEnd::Found {
                pass,
                fail: Some(fail),
            },
        ] = d.ended()
        else {
            panic!("{:?}", d.ended())
        };
        assert!(*pass <= 300.0 && *fail > 300.0 && fail - pass < 10.0);
    }

    #[test]
    fn each_leg_is_searched_in_turn() {
        let mut d = Driver::new(&spec(100.0, 1000.0, Tolerance::Relative(0.1)), 3);
        let probed = search(&mut d, &[250.0, 50.0, 700.0]);
        assert_eq!(probed.first(), Some(&(0, 100.0)));
        assert!(probed.contains(&(1, 100.0)) && probed.contains(&(2, 100.0)));
        assert!(
            matches!(d.ended()[0], LegEnd::Found { pass, .. } if pass <= 250.0 && pass > 225.0)
        );
        assert_eq!(d.ended()[1], LegEnd::ViolatedAtMin { fail: 100.0 });
        assert!(
            matches!(d.ended()[2], LegEnd::Found { pass, .. } if pass <= 700.0 && pass > 630.0)
        );
    }

    #[test]
    fn generator_saturation_ends_every_leg() {
        let mut d = Driver::new(&spec(100.0, 1000.0, Tolerance::Relative(0.1)), 2);
        assert_eq!(d.record(Verdict::Pass), Some((0, 200.0)));
        assert_eq!(d.record(Verdict::GeneratorSaturated), None);
        assert_eq!(
            d.ended(),
            &[LegEnd::GeneratorSaturated {
                level: 200.0,
                pass: Some(100.0)
            }]
        );
    }

    #[test]
    fn an_incomplete_probe_or_a_stop_ends_the_search() {
        let mut d = Driver::new(&spec(100.0, 1000.0, Tolerance::Relative(0.1)), 2);
        assert_eq!(d.record(Verdict::Incomplete), None);
        assert_eq!(
            d.ended(),
            &[LegEnd::Stopped {
                pass: None,
                fail: None
            }]
        );
        let mut d = Driver::new(&spec(100.0, 1000.0, Tolerance::Relative(0.1)), 1);
        d.record(Verdict::Pass);
        d.stop();
        assert_eq!(d.current(), None);
        assert_eq!(
            d.ended(),
            &[LegEnd::Stopped {
                pass: Some(100.0),
                fail: None
            }]
        );
    }
}
