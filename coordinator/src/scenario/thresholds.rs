//! Pass/fail criteria a run is judged by (`thresholds:` in a scenario), so a
//! CI pipeline can gate on the coordinator's exit code.
//!
//! Each threshold is one line: an optional scope, a metric, a comparison
//! and a limit:
//!
//! ```text
//! p99 < 250ms                  the whole run (global)
//! error_rate < 0.1%
//! eu-west: p99 < 400ms         one region
//! regions: p99.9 <= 1s         every region, each on its own
//! rps >= 950
//! ```

use super::parse_duration;
use std::fmt;

/// What a threshold is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThresholdScope {
    Global,
    Region(String),
    /// Every region, each separately.
    EachRegion,
}

/// A figure of a scope's summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Latency of successful requests at a percentile (p50 … p99.9), µs.
    Percentile(Percentile),
    MeanLatency,
    MaxLatency,
    /// Failed / completed requests, as a fraction.
    ErrorRate,
    /// Completed requests per second.
    Rps,
    /// Completed requests.
    Requests,
    /// Model-serving: time to first token at a percentile, µs.
    Ttft(Percentile),
    /// Model-serving: time per output token at a percentile, µs.
    Tpot(Percentile),
    /// Model-serving: inter-token latency at a percentile, µs.
    Itl(Percentile),
    /// Model-serving: good requests / completed requests.
    Goodput,
    /// Model-serving: output tokens per second, all requests.
    TokensPerSecond,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Percentile {
    P50,
    P90,
    P95,
    P99,
    P99_9,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

impl Comparison {
    pub fn holds(self, actual: f64, limit: f64) -> bool {
        match self {
            Comparison::Less => actual < limit,
            Comparison::LessOrEqual => actual <= limit,
            Comparison::Greater => actual > limit,
            Comparison::GreaterOrEqual => actual >= limit,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Comparison::Less => "<",
            Comparison::LessOrEqual => "<=",
            Comparison::Greater => ">",
            Comparison::GreaterOrEqual => ">=",
        }
    }
}

/// One checked threshold. Latency limits are in µs, error rates fractions.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// As written in the scenario.
    pub text: String,
    pub scope: ThresholdScope,
    pub metric: Metric,
    pub comparison: Comparison,
    pub limit: f64,
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::Percentile(Percentile::P50) => "p50",
            Metric::Percentile(Percentile::P90) => "p90",
            Metric::Percentile(Percentile::P95) => "p95",
            Metric::Percentile(Percentile::P99) => "p99",
            Metric::Percentile(Percentile::P99_9) => "p99.9",
            Metric::MeanLatency => "mean",
            Metric::MaxLatency => "max",
            Metric::ErrorRate => "error_rate",
            Metric::Rps => "rps",
            Metric::Requests => "requests",
            Metric::Ttft(p) => match p {
                Percentile::P50 => "ttft_p50",
                Percentile::P90 => "ttft_p90",
                Percentile::P95 => "ttft_p95",
                Percentile::P99 => "ttft_p99",
                Percentile::P99_9 => "ttft_p99.9",
            },
            Metric::Tpot(p) => match p {
                Percentile::P50 => "tpot_p50",
                Percentile::P90 => "tpot_p90",
                Percentile::P95 => "tpot_p95",
                Percentile::P99 => "tpot_p99",
                Percentile::P99_9 => "tpot_p99.9",
            },
            Metric::Itl(p) => match p {
                Percentile::P50 => "itl_p50",
                Percentile::P90 => "itl_p90",
                Percentile::P95 => "itl_p95",
                Percentile::P99 => "itl_p99",
                Percentile::P99_9 => "itl_p99.9",
            },
            Metric::Goodput => "goodput",
            Metric::TokensPerSecond => "tokens_per_second",
        }
    }

    /// A model-serving figure (needs `llm:` in the scenario).
    pub fn is_llm(self) -> bool {
        matches!(
            self,
            Metric::Ttft(_)
                | Metric::Tpot(_)
                | Metric::Itl(_)
                | Metric::Goodput
                | Metric::TokensPerSecond
        )
    }

    /// A fraction, written as a percentage or a number in [0, 1].
    fn is_ratio(self) -> bool {
        matches!(self, Metric::ErrorRate | Metric::Goodput)
    }

    fn is_latency(self) -> bool {
        matches!(
            self,
            Metric::Percentile(_)
                | Metric::MeanLatency
                | Metric::MaxLatency
                | Metric::Ttft(_)
                | Metric::Tpot(_)
                | Metric::Itl(_)
        )
    }

    fn parse(text: &str) -> Option<Self> {
        if let Some((family, p)) = text.split_once('_') {
            let p = match p {
                "p50" => Percentile::P50,
                "p90" => Percentile::P90,
                "p95" => Percentile::P95,
                "p99" => Percentile::P99,
                "p99.9" => Percentile::P99_9,
                _ => return Self::parse_plain(text),
            };
            return match family {
                "ttft" => Some(Metric::Ttft(p)),
                "tpot" => Some(Metric::Tpot(p)),
                "itl" => Some(Metric::Itl(p)),
                _ => None,
            };
        }
        Self::parse_plain(text)
    }

    fn parse_plain(text: &str) -> Option<Self> {
        Some(match text {
            "p50" | "median" => Metric::Percentile(Percentile::P50),
            "p90" => Metric::Percentile(Percentile::P90),
            "p95" => Metric::Percentile(Percentile::P95),
            "p99" => Metric::Percentile(Percentile::P99),
            "p99.9" | "p999" => Metric::Percentile(Percentile::P99_9),
            "mean" => Metric::MeanLatency,
            "max" => Metric::MaxLatency,
            "error_rate" => Metric::ErrorRate,
            "rps" => Metric::Rps,
            "requests" => Metric::Requests,
            "goodput" => Metric::Goodput,
            "tokens_per_second" => Metric::TokensPerSecond,
            _ => return None,
        })
    }
}

const METRICS: &str = "p50, p90, p95, p99, p99.9, mean, max, error_rate, rps, requests, \
    and for model serving ttft_pNN, tpot_pNN, itl_pNN (NN: 50, 90, 95, 99, 99.9), goodput, tokens_per_second";

/// Parses one threshold line; `regions` are the scenario's region names.
pub fn parse(text: &str, regions: &[&str]) -> Result<Threshold, String> {
    let trimmed = text.trim();
    let (scope, rest) = match trimmed.split_once(':') {
        Some((scope, rest)) => {
            let scope = scope.trim();
            let scope = match scope {
                "global" => ThresholdScope::Global,
                "regions" => ThresholdScope::EachRegion,
                name if regions.contains(&name) => ThresholdScope::Region(name.to_owned()),
                name => {
                    return Err(format!(
                        "{trimmed:?}: unknown scope {name:?}; use global, regions (each region) or one of {}",
                        regions.join(", ")
                    ));
                }
            };
            (scope, rest.trim())
        }
        None => (ThresholdScope::Global, trimmed),
    };
    // The comparison: the two-character operators first.
    let (at, comparison, width) = ["<=", ">=", "<", ">"]
        .iter()
        .find_map(|op| rest.find(op).map(|i| (i, *op)))
        .map(|(i, op)| {
            let c = match op {
                "<=" => Comparison::LessOrEqual,
                ">=" => Comparison::GreaterOrEqual,
                "<" => Comparison::Less,
                _ => Comparison::Greater,
            };
            (i, c, op.len())
        })
        .ok_or_else(|| {
            format!(
                "{trimmed:?}: write METRIC OP LIMIT, e.g. \"p99 < 250ms\" or \"error_rate < 0.1%\""
            )
        })?;
    let metric_text = rest[..at].trim();
    let limit_text = rest[at + width..].trim();
    let metric = Metric::parse(metric_text).ok_or_else(|| {
        format!("{trimmed:?}: unknown metric {metric_text:?}; expected one of {METRICS}")
    })?;
    let limit = if metric.is_latency() {
        let d = parse_duration(limit_text).map_err(|why| format!("{trimmed:?}: {why}"))?;
        d.as_secs_f64() * 1e6
    } else if metric.is_ratio() {
        let (number, scale) = match limit_text.strip_suffix('%') {
            Some(n) => (n.trim(), 0.01),
            None => (limit_text, 1.0),
        };
        let x: f64 = number.parse().map_err(|_| {
            format!("{trimmed:?}: {limit_text:?} is not a rate; write e.g. 0.1% or 0.001")
        })?;
        let x = x * scale;
        if !(0.0..=1.0).contains(&x) {
            return Err(format!("{trimmed:?}: a rate is between 0% and 100%"));
        }
        x
    } else {
        let x: f64 = limit_text
            .parse()
            .map_err(|_| format!("{trimmed:?}: {limit_text:?} is not a number"))?;
        if !(x.is_finite() && x >= 0.0) {
            return Err(format!("{trimmed:?}: the limit must be zero or positive"));
        }
        x
    };
    Ok(Threshold {
        text: format!(
            "{}{} {} {limit_text}",
            match &scope {
                ThresholdScope::Global => String::new(),
                ThresholdScope::Region(r) => format!("{r}: "),
                ThresholdScope::EachRegion => "regions: ".to_owned(),
            },
            metric.name(),
            comparison.symbol()
        ),
        scope,
        metric,
        comparison,
        limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGIONS: &[&str] = &["us-east", "eu-west"];

    #[test]
    fn parses_scopes_metrics_and_limits() {
        let t = parse("p99 < 250ms", REGIONS).expect("valid");
        assert_eq!(t.scope, ThresholdScope::Global);
        assert_eq!(t.metric, Metric::Percentile(Percentile::P99));
        assert_eq!(t.comparison, Comparison::Less);
        assert_eq!(t.limit, 250_000.0);
        let t = parse(" eu-west:p99.9<=1s ", REGIONS).expect("valid");
        assert_eq!(t.scope, ThresholdScope::Region("eu-west".into()));
        assert_eq!(t.text, "eu-west: p99.9 <= 1s");
        assert_eq!(t.limit, 1e6);
        let t = parse("regions: error_rate < 0.1%", REGIONS).expect("valid");
        assert_eq!(t.scope, ThresholdScope::EachRegion);
        assert!((t.limit - 0.001).abs() < 1e-12);
        let t = parse("rps >= 950", REGIONS).expect("valid");
        assert_eq!(
            (t.metric, t.comparison, t.limit),
            (Metric::Rps, Comparison::GreaterOrEqual, 950.0)
        );
    }

    #[test]
    fn refuses_what_it_cannot_check() {
        for (text, why) in [
            ("p98 < 1s", "unknown metric \"p98\""),
            ("mars: p99 < 1s", "unknown scope \"mars\""),
            ("p99 250ms", "write METRIC OP LIMIT"),
            ("p99 < fast", "is not a duration"),
            ("error_rate < 150%", "between 0% and 100%"),
            ("ttft_p97 < 1s", "unknown metric \"ttft_p97\""),
            ("rps > lots", "is not a number"),
        ] {
            let e = parse(text, REGIONS).expect_err(text);
            assert!(e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn comparisons_hold_as_written() {
        assert!(Comparison::Less.holds(1.0, 2.0));
        assert!(!Comparison::Less.holds(2.0, 2.0));
        assert!(Comparison::LessOrEqual.holds(2.0, 2.0));
        assert!(Comparison::Greater.holds(3.0, 2.0));
        assert!(Comparison::GreaterOrEqual.holds(2.0, 2.0));
    }
}
