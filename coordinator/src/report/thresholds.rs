//! Judges a finished run by its scenario's thresholds: each one is checked
//! against the report's merged figures (whole run, warm-up excluded).

use super::model::{LatencySummary, RunReport, ScopeSummary, ThresholdResult};
use crate::scenario::Threshold;
use crate::scenario::thresholds::{Metric, Percentile, ThresholdScope};

/// One result per threshold and scope (`regions:` gives one per region).
pub fn evaluate(thresholds: &[Threshold], report: &RunReport) -> Vec<ThresholdResult> {
    let mut out = Vec::new();
    for t in thresholds {
        let scopes: Vec<(&str, Option<&ScopeSummary>)> = match &t.scope {
            ThresholdScope::Global => vec![("global", Some(&report.global))],
            ThresholdScope::Region(name) => vec![(
                name.as_str(),
                report
                    .regions
                    .iter()
                    .find(|r| &r.name == name)
                    .map(|r| &r.summary),
            )],
            ThresholdScope::EachRegion => report
                .regions
                .iter()
                .map(|r| (r.name.as_str(), Some(&r.summary)))
                .collect(),
        };
        for (scope, summary) in scopes {
            let actual = summary.and_then(|s| figure(t.metric, s));
            out.push(ThresholdResult {
                threshold: t.text.clone(),
                scope: scope.to_owned(),
                metric: t.metric.name().to_owned(),
                limit: t.limit,
                actual,
                // No data is no evidence: a threshold without a figure fails.
                passed: actual.is_some_and(|a| t.comparison.holds(a, t.limit)),
            });
        }
    }
    out
}

/// The figure a metric names, or `None` when the scope has no data for it.
fn figure(metric: Metric, s: &ScopeSummary) -> Option<f64> {
    let l = &s.latency_us;
    let latency = |v: u64| (l.count > 0).then_some(v as f64);
    match metric {
        Metric::Percentile(p) => latency(match p {
            Percentile::P50 => l.p50,
            Percentile::P90 => l.p90,
            Percentile::P95 => l.p95,
            Percentile::P99 => l.p99,
            Percentile::P99_9 => l.p99_9,
        }),
        Metric::MeanLatency => (l.count > 0).then_some(l.mean),
        Metric::MaxLatency => latency(l.max),
        Metric::ErrorRate => (s.requests > 0).then(|| s.errors.total as f64 / s.requests as f64),
        Metric::Rps => Some(s.achieved_rps),
        Metric::Requests => Some(s.requests as f64),
        Metric::Ttft(p) => s.llm.as_ref().and_then(|l| at(&l.ttft_us, p)),
        Metric::Tpot(p) => s.llm.as_ref().and_then(|l| at(&l.tpot_us, p)),
        Metric::Itl(p) => s.llm.as_ref().and_then(|l| at(&l.itl_us, p)),
        Metric::Goodput => s
            .llm
            .as_ref()
            .and_then(|l| (s.requests > 0).then_some(l.goodput_ratio)),
        Metric::TokensPerSecond => s.llm.as_ref().map(|l| l.output_tokens_per_second),
    }
}

/// A percentile of a summary, `None` when it has no samples.
fn at(l: &LatencySummary, p: Percentile) -> Option<f64> {
    (l.count > 0).then_some(match p {
        Percentile::P50 => l.p50,
        Percentile::P90 => l.p90,
        Percentile::P95 => l.p95,
        Percentile::P99 => l.p99,
        Percentile::P99_9 => l.p99_9,
    } as f64)
}

/// The thresholds that failed, one line each (for the exit message).
pub fn failures(report: &RunReport) -> Vec<String> {
    report
        .thresholds
        .iter()
        .filter(|r| !r.passed)
        .map(|r| {
            let actual = match r.actual {
                None => "no data".to_owned(),
                Some(a) => show(&r.metric, a),
            };
            if r.scope == "global" || r.threshold.starts_with(&format!("{}:", r.scope)) {
                format!("{} (was {actual})", r.threshold)
            } else {
                format!("{} in {} (was {actual})", r.threshold, r.scope)
            }
        })
        .collect()
}

/// A figure in the unit its metric is written in.
pub fn show(metric: &str, value: f64) -> String {
    match metric {
        "error_rate" | "goodput" => format!("{:.3}%", value * 100.0),
        "rps" | "tokens_per_second" => format!("{value:.1}"),
        "requests" => format!("{value:.0}"),
        _ => super::table::micros(value.round() as u64),
    }
}
