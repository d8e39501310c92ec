//! Agents' clock offsets, measured the way NTP does: the coordinator sends a
//! probe at t1 (its clock), the agent notes t2 on arrival and t3 on reply
//! (its clock), the reply arrives at t4 (coordinator's clock). Then
//!
//! ```text
//! offset = ((t2 − t1) + (t3 − t4)) / 2      agent clock − coordinator clock
//! rtt    = (t4 − t1) − (t3 − t2)
//! ```
//!
//! and the true offset lies within ± rtt/2 of the estimate, so of several
//! rounds the one with the shortest round trip is kept. Each agent's Start
//! is then sent in its own clock, so agents start together even when their
//! clocks disagree.

/// One estimate of an agent's clock, nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockSample {
    /// Agent clock minus coordinator clock.
    pub offset_nanos: i64,
    /// Round trip of the exchange (the estimate is good to ± half of it).
    pub rtt_nanos: i64,
}

impl ClockSample {
    /// From the four timestamps of one exchange.
    pub fn from_exchange(t1: i64, t2: i64, t3: i64, t4: i64) -> Self {
        let offset = ((i128::from(t2) - i128::from(t1)) + (i128::from(t3) - i128::from(t4))) / 2;
        let rtt = (i128::from(t4) - i128::from(t1)) - (i128::from(t3) - i128::from(t2));
        Self {
            offset_nanos: clamp(offset),
            rtt_nanos: clamp(rtt.max(0)),
        }
    }

    /// Keeps whichever of the two has the shorter round trip.
    pub fn better(self, other: Option<ClockSample>) -> ClockSample {
        match other {
            Some(o) if o.rtt_nanos <= self.rtt_nanos => o,
            _ => self,
        }
    }
}

fn clamp(x: i128) -> i64 {
    x.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// The largest start skew two agents can have after correction: the sum of
/// the two widest uncertainties (± rtt/2 each), milliseconds.
pub fn skew_bound_ms(samples: impl IntoIterator<Item = ClockSample>) -> f64 {
    let mut halves: Vec<i64> = samples.into_iter().map(|s| s.rtt_nanos / 2).collect();
    halves.sort_unstable_by(|a, b| b.cmp(a));
    let bound: i64 = halves.iter().take(2).sum();
    bound as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_an_offset_from_a_symmetric_exchange() {
        // The agent's clock is 5 s ahead; 2 ms each way, 1 ms to answer.
        let skew = 5_000_000_000;
        let t1 = 1_000_000_000_000;
        let t2 = t1 + 2_000_000 + skew;
        let t3 = t2 + 1_000_000;
        let t4 = t1 + 5_000_000;
        let s = ClockSample::from_exchange(t1, t2, t3, t4);
        assert_eq!(s.offset_nanos, skew);
        assert_eq!(s.rtt_nanos, 4_000_000);
    }

    #[test]
    fn an_asymmetric_path_errs_by_at_most_half_the_round_trip() {
        // 1 ms out, 9 ms back: the estimate is off by 4 ms ≤ rtt/2 = 5 ms.
        let (t1, skew) = (0, -3_000_000_000);
        let t2 = t1 + 1_000_000 + skew;
        let t3 = t2;
        let t4 = t1 + 10_000_000;
        let s = ClockSample::from_exchange(t1, t2, t3, t4);
        assert_eq!(s.rtt_nanos, 10_000_000);
        assert!((s.offset_nanos - skew).abs() <= s.rtt_nanos / 2);
    }

    #[test]
    fn keeps_the_shortest_round_trip() {
        let a = ClockSample {
            offset_nanos: 10,
            rtt_nanos: 500,
        };
        let b = ClockSample {
            offset_nanos: 12,
            rtt_nanos: 200,
        };
        assert_eq!(a.better(Some(b)), b);
        assert_eq!(b.better(Some(a)), b);
        assert_eq!(a.better(None), a);
        assert_eq!(
            skew_bound_ms([
                a,
                b,
                ClockSample {
                    offset_nanos: 0,
                    rtt_nanos: 2_000_000
                }
            ]),
            1.00025
        );
    }
}
