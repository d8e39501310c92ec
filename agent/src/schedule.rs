//! When each request is due (open model).
//!
//! The agent's arrivals are evenly spaced at the agent's rate `R`. With `C`
//! connections, connection `g` takes arrivals `g, g + C, g + 2C, …`, so each
//! connection runs its own schedule at `R / C` and together they interleave
//! into one evenly spaced stream — no shared dispatcher, no lock, and a
//! stalled connection's owed requests stay owed (their latency keeps growing
//! from their intended time, which is the point).

use std::time::{Duration, Instant};

/// Intended send times of one connection's share of a constant-rate stream.
#[derive(Debug, Clone, Copy)]
pub struct ConstantRateSchedule {
    start: Instant,
    first_arrival: u64,
    stride: u64,
    nanos_per_arrival: f64,
}

impl ConstantRateSchedule {
    /// `connection` in `0..connections`; `rate_per_second` is the whole
    /// agent's rate, spread over `connections`.
    pub fn new(start: Instant, rate_per_second: f64, connection: u32, connections: u32) -> Self {
        Self {
            start,
            first_arrival: u64::from(connection),
            stride: u64::from(connections.max(1)),
            nanos_per_arrival: 1e9 / rate_per_second,
        }
    }

    /// Intended send time of this connection's `k`-th request (0-based).
    #[inline]
    pub fn intended(&self, k: u64) -> Instant {
        let arrival = self.first_arrival + k * self.stride;
        let offset = (arrival as f64 * self.nanos_per_arrival) as u64;
        self.start + Duration::from_nanos(offset)
    }

    /// How many of this connection's requests are due strictly before `end`
    /// (a duration measured from start).
    pub fn due_before(&self, end: Duration) -> u64 {
        // Arrival a is due before `end` when a * nanos_per_arrival < end.
        let arrivals = (end.as_nanos() as f64 / self.nanos_per_arrival).ceil() as u64;
        if arrivals <= self.first_arrival {
            0
        } else {
            (arrivals - self.first_arrival).div_ceil(self.stride)
        }
    }
}

/// One connection's arrivals, in order, whatever the arrival process.
#[derive(Debug, Clone)]
pub enum ArrivalSchedule {
    Constant {
        schedule: ConstantRateSchedule,
        next: u64,
        due: u64,
    },
    Poisson(PoissonSchedule),
}

impl ArrivalSchedule {
    /// Connection `connection` of `connections` sharing an agent's
    /// `rate_per_second`, for arrivals before `start + duration`.
    pub fn new(
        start: Instant,
        rate_per_second: f64,
        arrival: crate::plan::Arrival,
        connection: u32,
        connections: u32,
        duration: Duration,
    ) -> Self {
        match arrival {
            crate::plan::Arrival::Constant => {
                let schedule =
                    ConstantRateSchedule::new(start, rate_per_second, connection, connections);
                let due = schedule.due_before(duration);
                ArrivalSchedule::Constant {
                    schedule,
                    next: 0,
                    due,
                }
            }
            crate::plan::Arrival::Poisson { seed } => {
                ArrivalSchedule::Poisson(PoissonSchedule::new(
                    start,
                    rate_per_second / f64::from(connections.max(1)),
                    stream_seed(seed, connection),
                    duration,
                ))
            }
        }
    }

    /// The next intended send time, or `None` past the end of the run.
    pub fn next_due(&mut self) -> Option<Instant> {
        match self {
            ArrivalSchedule::Constant {
                schedule,
                next,
                due,
            } => {
                if *next >= *due {
                    return None;
                }
                *next += 1;
                Some(schedule.intended(*next - 1))
            }
            ArrivalSchedule::Poisson(p) => p.next_due(),
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

/// A Poisson process: exponentially distributed gaps with mean `1 / rate`,
/// drawn from a seeded generator so the same seed gives the same schedule.
/// Independent Poisson processes add up to one at the summed rate, so each
/// connection runs its own at `rate / connections`.
#[derive(Debug, Clone)]
pub struct PoissonSchedule {
    start: Instant,
    mean_gap_nanos: f64,
    /// Offset of the last arrival from `start`, nanoseconds.
    at_nanos: f64,
    end_nanos: f64,
    rng: SplitMix64,
}

impl PoissonSchedule {
    pub fn new(start: Instant, rate_per_second: f64, seed: u64, duration: Duration) -> Self {
        Self {
            start,
            mean_gap_nanos: 1e9 / rate_per_second,
            at_nanos: 0.0,
            end_nanos: duration.as_nanos() as f64,
            rng: SplitMix64(seed),
        }
    }

    pub fn next_due(&mut self) -> Option<Instant> {
        // Inverse transform: -ln(1 - u) is exponential with mean 1.
        let u = self.rng.next_f64();
        self.at_nanos += -(1.0 - u).ln() * self.mean_gap_nanos;
        if self.at_nanos >= self.end_nanos {
            self.at_nanos = self.end_nanos;
            return None;
        }
        Some(self.start + Duration::from_nanos(self.at_nanos as u64))
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

    #[test]
    fn connections_interleave_into_an_even_stream() {
        let start = Instant::now();
        let connections = 4;
        let mut times: Vec<Duration> = (0..connections)
            .flat_map(|c| {
                let s = ConstantRateSchedule::new(start, 1000.0, c, connections);
                (0..25).map(move |k| s.intended(k) - start)
            })
            .collect();
        times.sort();
        for (i, t) in times.iter().enumerate() {
            assert_eq!(*t, Duration::from_millis(i as u64), "arrival {i}");
        }
    }

    #[test]
    fn due_before_counts_every_arrival_exactly_once() {
        let start = Instant::now();
        for (rate, conns, end_ms) in [(1000.0, 4, 100), (333.0, 7, 1000), (5.0, 10, 1000)] {
            let end = Duration::from_millis(end_ms);
            let total: u64 = (0..conns)
                .map(|c| ConstantRateSchedule::new(start, rate, c, conns).due_before(end))
                .sum();
            let expected = (rate * end.as_secs_f64()).ceil() as u64;
            assert_eq!(total, expected, "rate {rate} conns {conns}");
            for c in 0..conns {
                let s = ConstantRateSchedule::new(start, rate, c, conns);
                let n = s.due_before(end);
                if n > 0 {
                    assert!(s.intended(n - 1) - start < end);
                }
                assert!(s.intended(n) - start >= end);
            }
        }
    }

    fn poisson(seed: u64, start: Instant) -> Vec<Duration> {
        let mut s = ArrivalSchedule::new(
            start,
            1000.0,
            crate::plan::Arrival::Poisson { seed },
            0,
            1,
            Duration::from_secs(20),
        );
        std::iter::from_fn(|| s.next_due())
            .map(|t| t - start)
            .collect()
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
    fn connections_get_independent_streams_that_add_up_to_the_rate() {
        let start = Instant::now();
        let total: usize = (0..10)
            .map(|c| {
                let mut s = ArrivalSchedule::new(
                    start,
                    2000.0,
                    crate::plan::Arrival::Poisson { seed: 1 },
                    c,
                    10,
                    Duration::from_secs(10),
                );
                std::iter::from_fn(|| s.next_due()).count()
            })
            .sum();
        assert!((19_400..=20_600).contains(&total), "{total} arrivals");
    }

    #[test]
    fn constant_schedule_through_the_common_interface() {
        let start = Instant::now();
        let mut s = ArrivalSchedule::new(
            start,
            100.0,
            crate::plan::Arrival::Constant,
            0,
            1,
            Duration::from_secs(1),
        );
        assert_eq!(s.due_by(start + Duration::from_millis(55)), 6);
        let all: Vec<Duration> = std::iter::from_fn(|| s.next_due())
            .map(|t| t - start)
            .collect();
        assert_eq!(all.len(), 100);
        assert_eq!(all[3], Duration::from_millis(30));
    }
}
