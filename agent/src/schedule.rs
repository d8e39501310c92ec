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
}
