//! When each request is due (open model).
//!
//! The agent's rate follows a [`LevelProfile`]; its integral `N(t)` is the
//! number of arrivals expected by `t`. Arrivals are positions in that
//! arrival space, mapped to time by `N⁻¹`:
//!
//! - constant: positions 0, 1, 2, … — evenly spaced at any fixed rate, and
//!   following a ramp exactly. With `C` connections, connection `g` takes
//!   positions `g, g + C, g + 2C, …`, so the connections interleave into one
//!   evenly spaced stream with no shared dispatcher and no lock.
//! - Poisson: each connection draws exponential gaps of mean `C` in arrival
//!   space (a Poisson process at rate `R / C`, time-rescaled through any
//!   ramp); independent Poisson processes add up to one at the summed rate.
//!
//! A stalled connection's owed requests stay owed: their latency keeps
//! growing from their intended time, which is the point.

use crate::plan::Arrival;
use crate::profile::LevelProfile;
use std::time::{Duration, Instant};

/// One connection's arrivals, in order, whatever the arrival process.
#[derive(Debug, Clone)]
pub struct ArrivalSchedule {
    start: Instant,
    profile: LevelProfile,
    positions: Positions,
}

#[derive(Debug, Clone)]
enum Positions {
    /// Position `first + k · stride` for k = 0, 1, ….
    Even { next: u64, stride: u64 },
    /// Cumulative exponential gaps of mean `mean_gap`.
    Poisson {
        at: f64,
        mean_gap: f64,
        rng: SplitMix64,
    },
}

impl ArrivalSchedule {
    /// Connection `connection` of `connections` sharing an agent whose rate
    /// follows `rate` (requests per second over time, from `start`).
    pub fn new(
        start: Instant,
        rate: &LevelProfile,
        arrival: Arrival,
        connection: u32,
        connections: u32,
    ) -> Self {
        let stride = u64::from(connections.max(1));
        let positions = match arrival {
            Arrival::Constant => Positions::Even {
                next: u64::from(connection),
                stride,
            },
            Arrival::Poisson { seed } => Positions::Poisson {
                at: 0.0,
                mean_gap: stride as f64,
                rng: SplitMix64(stream_seed(seed, connection)),
            },
        };
        Self {
            start,
            profile: rate.clone(),
            positions,
        }
    }

    /// The next intended send time, or `None` past the end of the run.
    pub fn next_due(&mut self) -> Option<Instant> {
        let position = match &mut self.positions {
            Positions::Even { next, stride } => {
                let position = *next as f64;
                *next += *stride;
                position
            }
            Positions::Poisson { at, mean_gap, rng } => {
                // Inverse transform: -ln(1 - u) is exponential with mean 1.
                *at += -(1.0 - rng.next_f64()).ln() * *mean_gap;
                *at
            }
        };
        match self.profile.time_at_area(position) {
            Some(offset) => Some(self.start + offset),
            None => {
                // Stay past the end for good.
                if let Positions::Poisson { at, .. } = &mut self.positions {
                    *at = f64::INFINITY;
                }
                None
            }
        }
    }

    /// How many of the arrivals still to come are due by `now`.
    pub fn due_by(&self, now: Instant) -> u64 {
        let mut rest = self.clone();
        let mut n = 0;
        while rest.next_due().is_some_and(|t| t <= now) {
            n += 1;
        }
        n
    }
}

/// SplitMix64: a small, fast, well-studied generator; plenty for spacing
/// arrivals, and trivially seedable.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [min, max].
    pub(crate) fn duration_between(&mut self, min: Duration, max: Duration) -> Duration {
        min + (max - min).mul_f64(self.next_f64())
    }
}

/// Each connection's own stream from the agent's seed.
fn stream_seed(seed: u64, connection: u32) -> u64 {
    SplitMix64(seed ^ u64::from(connection).wrapping_mul(0xD1B5_4A32_D192_ED03)).next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Segment;

    fn flat(rate: f64, secs: f64) -> LevelProfile {
        LevelProfile::constant(rate, Duration::from_secs_f64(secs)).expect("valid")
    }

    fn all(mut s: ArrivalSchedule, start: Instant) -> Vec<Duration> {
        std::iter::from_fn(|| s.next_due())
            .map(|t| t - start)
            .collect()
    }

    #[test]
    fn connections_interleave_into_an_even_stream() {
        let start = Instant::now();
        let connections = 4;
        let rate = flat(1000.0, 0.1);
        let mut times: Vec<Duration> = (0..connections)
            .flat_map(|c| {
                all(
                    ArrivalSchedule::new(start, &rate, Arrival::Constant, c, connections),
                    start,
                )
            })
            .collect();
        times.sort();
        assert_eq!(times.len(), 100);
        for (i, t) in times.iter().enumerate() {
            assert_eq!(*t, Duration::from_millis(i as u64), "arrival {i}");
        }
    }

    #[test]
    fn every_arrival_is_counted_exactly_once() {
        let start = Instant::now();
        for (rate, conns, end_ms) in [(1000.0, 4, 100), (333.0, 7, 1000), (5.0, 10, 1000)] {
            let profile = flat(rate, f64::from(end_ms) / 1e3);
            let total: usize = (0..conns)
                .map(|c| {
                    all(
                        ArrivalSchedule::new(start, &profile, Arrival::Constant, c, conns),
                        start,
                    )
                    .len()
                })
                .sum();
            let expected = (rate * f64::from(end_ms) / 1e3).ceil() as usize;
            assert_eq!(total, expected, "rate {rate} conns {conns}");
        }
    }

    #[test]
    fn a_ramp_spaces_arrivals_by_the_current_rate() {
        // 0 → 1000/s over 2 s: 1000 arrivals, N(t) = 250 t², so arrival k is
        // due at sqrt(k / 250) s and the gaps shrink as the rate grows.
        let start = Instant::now();
        let ramp = LevelProfile::new(vec![Segment {
            duration: Duration::from_secs(2),
            from: 0.0,
            to: 1000.0,
        }])
        .expect("valid");
        let times = all(
            ArrivalSchedule::new(start, &ramp, Arrival::Constant, 0, 1),
            start,
        );
        assert_eq!(times.len(), 1000);
        for (k, t) in times.iter().enumerate() {
            let expected = (k as f64 / 250.0).sqrt();
            assert!(
                (t.as_secs_f64() - expected).abs() < 1e-6,
                "arrival {k} at {t:?}"
            );
        }
        // Over the second half the rate averages 750/s: 750 arrivals.
        let late = times.iter().filter(|t| t.as_secs_f64() >= 1.0).count();
        assert_eq!(late, 750);
    }

    fn poisson(seed: u64, start: Instant) -> Vec<Duration> {
        all(
            ArrivalSchedule::new(start, &flat(1000.0, 20.0), Arrival::Poisson { seed }, 0, 1),
            start,
        )
    }

    #[test]
    fn poisson_is_repeatable_from_its_seed() {
        let start = Instant::now();
        assert_eq!(poisson(7, start), poisson(7, start));
        assert_ne!(poisson(7, start), poisson(8, start));
    }

    #[test]
    fn poisson_gaps_have_the_expected_mean_and_spread() {
        let start = Instant::now();
        let times = poisson(12345, start);
        // 1000/s for 20 s: 20 000 arrivals expected, standard deviation ~141.
        assert!(
            (19_400..=20_600).contains(&times.len()),
            "{} arrivals",
            times.len()
        );
        let gaps: Vec<f64> = times
            .windows(2)
            .map(|w| (w[1] - w[0]).as_secs_f64() * 1e3)
            .collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        // Exponential: mean 1 ms and standard deviation equal to the mean.
        assert!((mean - 1.0).abs() < 0.03, "mean gap {mean} ms");
        assert!((var.sqrt() - 1.0).abs() < 0.05, "stdev {} ms", var.sqrt());
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn poisson_follows_a_ramp() {
        // 0 → 2000/s over 10 s, 10 connections: 10 000 arrivals expected, a
        // quarter of them in the first half.
        let start = Instant::now();
        let ramp = LevelProfile::new(vec![Segment {
            duration: Duration::from_secs(10),
            from: 0.0,
            to: 2000.0,
        }])
        .expect("valid");
        let times: Vec<Duration> = (0..10)
            .flat_map(|c| {
                all(
                    ArrivalSchedule::new(start, &ramp, Arrival::Poisson { seed: 3 }, c, 10),
                    start,
                )
            })
            .collect();
        assert!((9_700..=10_300).contains(&times.len()), "{}", times.len());
        let first_half = times.iter().filter(|t| t.as_secs() < 5).count();
        assert!((2_350..=2_650).contains(&first_half), "{first_half}");
    }

    #[test]
    fn connections_get_independent_streams_that_add_up_to_the_rate() {
        let start = Instant::now();
        let rate = flat(2000.0, 10.0);
        let streams: Vec<Vec<Duration>> = (0..10)
            .map(|c| {
                all(
                    ArrivalSchedule::new(start, &rate, Arrival::Poisson { seed: 1 }, c, 10),
                    start,
                )
            })
            .collect();
        let total: usize = streams.iter().map(Vec::len).sum();
        assert!((19_400..=20_600).contains(&total), "{total} arrivals");
        assert_ne!(streams[0][..10], streams[1][..10]);
    }

    #[test]
    fn due_by_counts_what_is_owed() {
        let start = Instant::now();
        let s = ArrivalSchedule::new(start, &flat(100.0, 1.0), Arrival::Constant, 0, 1);
        assert_eq!(s.due_by(start + Duration::from_millis(55)), 6);
        let times = all(s, start);
        assert_eq!(times.len(), 100);
        assert_eq!(times[3], Duration::from_millis(30));
    }
}
