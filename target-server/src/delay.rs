//! Response delays: how long the target waits before answering, as a fixed value or a distribution.
//!
//! A load test wants the target to look like a real service at some network distance, so a delay can be
//! fixed (`5ms`) or drawn per request from a distribution (`uniform(5ms,10ms)`, `normal(40ms,5ms)`,
//! `exponential(20ms)`). Durations are written in `humantime` syntax, the same as everywhere else in
//! Stampede, so `1.5s`, `250us` and `1m 30s` all work.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How long to wait before answering a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DelaySpec {
    /// Always the same delay.
    Fixed(Duration),
    /// Uniformly distributed in `[low, high]`.
    Uniform {
        /// Shortest delay.
        low: Duration,
        /// Longest delay.
        high: Duration,
    },
    /// Normally distributed, truncated at zero (a negative sample becomes no delay).
    Normal {
        /// Centre of the distribution.
        mean: Duration,
        /// Standard deviation.
        stddev: Duration,
    },
    /// Exponentially distributed: many short delays and a long tail, like a queueing service.
    Exponential {
        /// Mean delay.
        mean: Duration,
    },
}

impl Default for DelaySpec {
    /// No delay: the target answers as fast as it can.
    fn default() -> Self {
        DelaySpec::Fixed(Duration::ZERO)
    }
}

impl DelaySpec {
    /// Draws one delay.
    ///
    /// The RNG is passed in rather than owned so that the server can keep one cheap RNG per connection
    /// (no locking, no shared state) and so that tests can seed it for reproducible samples.
    pub fn sample(&self, rng: &mut fastrand::Rng) -> Duration {
        match *self {
            DelaySpec::Fixed(d) => d,
            DelaySpec::Uniform { low, high } => {
                let low_ns = saturating_nanos(low);
                let high_ns = saturating_nanos(high).max(low_ns);
                Duration::from_nanos(rng.u64(low_ns..=high_ns))
            }
            DelaySpec::Normal { mean, stddev } => {
                // Box-Muller; `u1` is in (0, 1] so its logarithm is finite.
                let u1 = 1.0 - rng.f64();
                let u2 = rng.f64();
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                secs_to_duration(mean.as_secs_f64() + stddev.as_secs_f64() * z)
            }
            DelaySpec::Exponential { mean } => {
                // Inverse transform sampling; `u` is in (0, 1] so `-ln(u)` is finite and non-negative.
                let u = 1.0 - rng.f64();
                secs_to_duration(-mean.as_secs_f64() * u.ln())
            }
        }
    }

    /// Whether every sample is zero, so the server can skip the timer entirely.
    pub fn is_zero(&self) -> bool {
        match *self {
            DelaySpec::Fixed(d) => d.is_zero(),
            DelaySpec::Uniform { low, high } => low.is_zero() && high.is_zero(),
            DelaySpec::Normal { mean, stddev } => mean.is_zero() && stddev.is_zero(),
            DelaySpec::Exponential { mean } => mean.is_zero(),
        }
    }
}

/// Nanoseconds of `d`, saturating: delays beyond 584 years are not a thing a test needs.
fn saturating_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Converts a sampled number of seconds to a delay, truncating negatives (and NaN) at zero.
fn secs_to_duration(secs: f64) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
}

impl fmt::Display for DelaySpec {
    /// Writes the spec back in the syntax `FromStr` accepts, so configs and logs round-trip.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use humantime::format_duration as h;
        match *self {
            DelaySpec::Fixed(d) => write!(f, "{}", h(d)),
            DelaySpec::Uniform { low, high } => write!(f, "uniform({},{})", h(low), h(high)),
            DelaySpec::Normal { mean, stddev } => write!(f, "normal({},{})", h(mean), h(stddev)),
            DelaySpec::Exponential { mean } => write!(f, "exponential({})", h(mean)),
        }
    }
}

/// Why a delay spec could not be parsed. Every message quotes the whole input and the part that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DelayParseError {
    /// Nothing was given.
    #[error(
        "empty delay: expected a duration like \"5ms\" or a distribution like \"uniform(5ms,10ms)\", \
         \"normal(40ms,5ms)\" or \"exponential(20ms)\""
    )]
    Empty,
    /// A duration (the whole spec, or one argument) is not valid `humantime`.
    #[error("invalid duration {part:?} in delay {input:?}: {reason}")]
    Duration {
        /// The whole spec.
        input: String,
        /// The duration text that failed.
        part: String,
        /// What `humantime` said.
        reason: String,
    },
    /// The distribution name is not one we know.
    #[error(
        "unknown distribution {name:?} in delay {input:?}: expected uniform(low,high), \
         normal(mean,stddev) or exponential(mean)"
    )]
    UnknownDistribution {
        /// The whole spec.
        input: String,
        /// The name before the parenthesis.
        name: String,
    },
    /// The distribution got the wrong number of arguments.
    #[error("{name}({signature}) takes {expected} argument(s) but delay {input:?} gives {got}")]
    Arity {
        /// The whole spec.
        input: String,
        /// The distribution name.
        name: &'static str,
        /// Its parameters, for the message.
        signature: &'static str,
        /// How many it takes.
        expected: usize,
        /// How many were given.
        got: usize,
    },
    /// Parentheses are unbalanced or there is text after the closing one.
    #[error("malformed delay {input:?}: {reason}")]
    Malformed {
        /// The whole spec.
        input: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// `uniform(low,high)` with `low > high`.
    #[error("uniform low bound {low} is above its high bound {high} in delay {input:?}")]
    UniformBounds {
        /// The whole spec.
        input: String,
        /// The low bound as written.
        low: String,
        /// The high bound as written.
        high: String,
    },
}

impl FromStr for DelaySpec {
    type Err = DelayParseError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let s = input.trim();
        if s.is_empty() {
            return Err(DelayParseError::Empty);
        }
        let Some(open) = s.find('(') else {
            if s.contains(')') {
                return Err(malformed(input, "')' without a matching '('"));
            }
            return parse_duration(input, s).map(DelaySpec::Fixed);
        };
        let Some(body) = s[open + 1..].strip_suffix(')') else {
            return Err(malformed(
                input,
                "expected it to end with ')' closing the distribution",
            ));
        };
        if body.contains('(') || body.contains(')') {
            return Err(malformed(input, "nested or extra parentheses"));
        }
        let name = s[..open].trim();
        let args: Vec<&str> = body.split(',').map(str::trim).collect();
        let durations = |name: &'static str, signature: &'static str, expected: usize| {
            if args.len() != expected || args.iter().all(|a| a.is_empty()) {
                let got = if args.iter().all(|a| a.is_empty()) {
                    0
                } else {
                    args.len()
                };
                return Err(DelayParseError::Arity {
                    input: input.to_owned(),
                    name,
                    signature,
                    expected,
                    got,
                });
            }
            args.iter()
                .map(|a| parse_duration(input, a))
                .collect::<Result<Vec<_>, _>>()
        };
        match name.to_ascii_lowercase().as_str() {
            "uniform" => {
                let d = durations("uniform", "low,high", 2)?;
                if d[0] > d[1] {
                    return Err(DelayParseError::UniformBounds {
                        input: input.to_owned(),
                        low: args[0].to_owned(),
                        high: args[1].to_owned(),
                    });
                }
                Ok(DelaySpec::Uniform {
                    low: d[0],
                    high: d[1],
                })
            }
            "normal" => {
                let d = durations("normal", "mean,stddev", 2)?;
                Ok(DelaySpec::Normal {
                    mean: d[0],
                    stddev: d[1],
                })
            }
            "exponential" => {
                let d = durations("exponential", "mean", 1)?;
                Ok(DelaySpec::Exponential { mean: d[0] })
            }
            _ => Err(DelayParseError::UnknownDistribution {
                input: input.to_owned(),
                name: name.to_owned(),
            }),
        }
    }
}

fn malformed(input: &str, reason: &'static str) -> DelayParseError {
    DelayParseError::Malformed {
        input: input.to_owned(),
        reason,
    }
}

fn parse_duration(input: &str, part: &str) -> Result<Duration, DelayParseError> {
    humantime::parse_duration(part).map_err(|e| DelayParseError::Duration {
        input: input.to_owned(),
        part: part.to_owned(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn err(s: &str) -> String {
        match s.parse::<DelaySpec>() {
            Ok(d) => panic!("{s:?} parsed as {d:?}, expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn parses_fixed_durations() {
        assert_eq!("5ms".parse(), Ok(DelaySpec::Fixed(ms(5))));
        assert_eq!("1.5s".parse(), Ok(DelaySpec::Fixed(ms(1500))));
        assert_eq!(
            " 250us ".parse(),
            Ok(DelaySpec::Fixed(Duration::from_micros(250)))
        );
        assert_eq!("0".parse(), Ok(DelaySpec::Fixed(Duration::ZERO)));
        assert_eq!(
            "1m 30s".parse(),
            Ok(DelaySpec::Fixed(Duration::from_secs(90)))
        );
    }

    #[test]
    fn parses_distributions() {
        assert_eq!(
            "uniform(5ms,10ms)".parse(),
            Ok(DelaySpec::Uniform {
                low: ms(5),
                high: ms(10)
            })
        );
        assert_eq!(
            "uniform( 5ms , 5ms )".parse(),
            Ok(DelaySpec::Uniform {
                low: ms(5),
                high: ms(5)
            })
        );
        assert_eq!(
            "normal(40ms,5ms)".parse(),
            Ok(DelaySpec::Normal {
                mean: ms(40),
                stddev: ms(5)
            })
        );
        assert_eq!(
            "exponential(20ms)".parse(),
            Ok(DelaySpec::Exponential { mean: ms(20) })
        );
        assert_eq!(
            "Exponential(1.5s)".parse(),
            Ok(DelaySpec::Exponential { mean: ms(1500) })
        );
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "5ms",
            "uniform(5ms,10ms)",
            "normal(40ms,5ms)",
            "exponential(1s 500ms)",
        ] {
            let d: DelaySpec = s.parse().expect("valid");
            assert_eq!(d.to_string().parse::<DelaySpec>(), Ok(d), "{s}");
        }
    }

    #[test]
    fn bad_inputs_give_clear_errors() {
        assert!(err("").contains("empty delay"));
        assert!(err("   ").contains("empty delay"));

        let e = err("5 parsecs");
        assert!(
            e.contains("invalid duration \"5 parsecs\"") && e.contains("parsecs"),
            "{e}"
        );

        let e = err("normal(40ms,5 parsecs)");
        assert!(
            e.contains("\"5 parsecs\"") && e.contains("normal(40ms,5 parsecs)"),
            "{e}"
        );

        let e = err("gamma(5ms)");
        assert!(e.contains("unknown distribution \"gamma\""), "{e}");

        let e = err("uniform(5ms)");
        assert!(
            e.contains("uniform(low,high) takes 2 argument(s)") && e.contains("gives 1"),
            "{e}"
        );
        let e = err("exponential()");
        assert!(
            e.contains("exponential(mean) takes 1") && e.contains("gives 0"),
            "{e}"
        );
        let e = err("exponential(1ms,2ms)");
        assert!(e.contains("gives 2"), "{e}");

        let e = err("uniform(10ms,5ms)");
        assert!(
            e.contains("low bound 10ms is above its high bound 5ms"),
            "{e}"
        );

        assert!(err("normal(40ms,5ms").contains("end with ')'"));
        assert!(err("normal(40ms,5ms) x").contains("end with ')'"));
        assert!(err("normal((40ms),5ms)").contains("parentheses"));
        assert!(err("5ms)").contains("without a matching '('"));
        assert!(err("-5ms").contains("invalid duration"));
    }

    #[test]
    fn samples_stay_in_range() {
        let mut rng = fastrand::Rng::with_seed(7);
        let uniform = DelaySpec::Uniform {
            low: ms(5),
            high: ms(10),
        };
        let normal = DelaySpec::Normal {
            mean: ms(1),
            stddev: ms(10),
        };
        let exponential = DelaySpec::Exponential { mean: ms(20) };
        let mut normal_zeros = 0;
        let mut exp_sum = Duration::ZERO;
        for _ in 0..10_000 {
            let u = uniform.sample(&mut rng);
            assert!(u >= ms(5) && u <= ms(10), "{u:?}");
            // Truncated at zero: a wide normal around 1ms often samples "negative", which must become 0.
            if normal.sample(&mut rng).is_zero() {
                normal_zeros += 1;
            }
            exp_sum += exponential.sample(&mut rng);
        }
        assert!(normal_zeros > 1000, "{normal_zeros}");
        let exp_mean = exp_sum / 10_000;
        assert!(exp_mean > ms(15) && exp_mean < ms(25), "{exp_mean:?}");
        assert_eq!(DelaySpec::Fixed(ms(3)).sample(&mut rng), ms(3));
    }

    #[test]
    fn seeded_samples_are_reproducible() {
        let spec = DelaySpec::Normal {
            mean: ms(40),
            stddev: ms(5),
        };
        let a: Vec<_> = (0..5)
            .scan(fastrand::Rng::with_seed(1), |r, _| Some(spec.sample(r)))
            .collect();
        let b: Vec<_> = (0..5)
            .scan(fastrand::Rng::with_seed(1), |r, _| Some(spec.sample(r)))
            .collect();
        assert_eq!(a, b);
    }

    #[test]
    fn zero_specs_are_detected() {
        assert!(DelaySpec::default().is_zero());
        assert!(
            DelaySpec::Uniform {
                low: ms(0),
                high: ms(0)
            }
            .is_zero()
        );
        assert!(!DelaySpec::Exponential { mean: ms(1) }.is_zero());
    }
}
