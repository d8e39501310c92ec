//! The search report: every probe's level, figures and verdict, and each
//! leg's answer, the highest sustainable load. Written as JSON next to the
//! probes' own run reports (which keep the merged histograms).

use super::driver::LegEnd;
use super::judge::level_text;
use crate::report::table::micros;
use serde::{Deserialize, Serialize};

/// Version of this structure.
pub const SEARCH_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SearchReport {
    pub schema_version: u32,
    /// Shared with the probes' reports' file names.
    pub search_id: String,
    pub scenario: String,
    /// `open` or `closed`.
    pub model: String,
    /// `req/s` or `connections`.
    pub unit: String,
    /// `global` or `per-region`.
    pub mode: String,
    /// Per-region: the other regions' level while one is searched.
    pub base: Option<f64>,
    /// The SLO lines, as written.
    pub slo: Vec<String>,
    pub min: f64,
    pub max: f64,
    pub start: f64,
    /// `5%` or an absolute level.
    pub tolerance: String,
    pub step_s: f64,
    pub settle_s: f64,
    /// Open model: the schedule-lag p99 past which the generator is behind, µs.
    pub max_schedule_lag_us: Option<u64>,
    /// `found`, `slo_violated_at_min`, `generator_saturated` or `stopped`.
    pub outcome: String,
    /// One plain-language line per leg (and why the search stopped).
    pub summary: Vec<String>,
    pub legs: Vec<LegReport>,
    pub probes: Vec<ProbeReport>,
}

/// One leg: the cluster, or one region in per-region mode.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LegReport {
    /// `global` or a region name.
    pub scope: String,
    /// `found`, `ceiling` (the top of the range passed), `slo_violated_at_min`,
    /// `generator_saturated` or `stopped`.
    pub outcome: String,
    /// The highest level that passed (the sustainable load), if any.
    pub sustainable: Option<f64>,
    /// Its probe (1-based index into `probes`).
    pub sustainable_probe: Option<u32>,
    /// The lowest level above it that failed (or saturated the generator).
    pub next_failed: Option<f64>,
    pub next_failed_probe: Option<u32>,
    pub summary: String,
}

/// One probe and its figures, for the searched scope.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProbeReport {
    /// 1-based, in the order run.
    pub index: u32,
    /// `global` or the region searched.
    pub scope: String,
    /// The searched scope's level.
    pub level: f64,
    /// The cluster's level (per-region: plus the other regions at base).
    pub total_level: f64,
    pub run_id: String,
    /// Where the probe's own run report was written.
    pub report: String,
    /// Open model: the scope's target rate.
    pub target_rps: Option<f64>,
    pub achieved_rps: f64,
    pub requests: u64,
    /// Failed / completed requests.
    pub error_rate: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
    pub p99_9_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
    /// The worst region's schedule-lag p99 (open model), µs.
    pub schedule_lag_p99_us: u64,
    /// `pass`, `fail`, `generator_saturated` or `incomplete`.
    pub verdict: String,
    /// The SLO lines (and throughput) that failed, with what was measured.
    pub failed: Vec<String>,
    /// The failed metrics (`p99`, `error_rate`, `throughput`, …).
    pub failed_metrics: Vec<String>,
    /// Why the generator was judged saturated, or the probe incomplete.
    pub note: Option<String>,
}

/// What a leg's sentence needs besides its end.
pub struct LegContext<'a> {
    pub scope: &'a str,
    pub unit: &'a str,
    /// The latency metric the SLO names first (`p99` by default).
    pub metric: &'a str,
    pub probes: &'a [ProbeReport],
}

/// Builds a leg's report and its plain-language line.
pub fn leg_report(end: &LegEnd, cx: &LegContext<'_>) -> LegReport {
    let probe_at = |level: Option<f64>| {
        level.and_then(|l| {
            cx.probes
                .iter()
                .rev()
                .find(|p| p.scope == cx.scope && p.level == l)
        })
    };
    let who = if cx.scope == "global" {
        "the cluster".to_owned()
    } else {
        cx.scope.to_owned()
    };
    let sustains = |level: f64| {
        let figures = probe_at(Some(level)).map_or_else(String::new, |p| {
            // Connections: say what throughput they carried too.
            let carried = if cx.unit == "req/s" {
                String::new()
            } else {
                format!(" ({} req/s)", level_text(p.achieved_rps.round()))
            };
            format!(
                "{carried} at {} {}",
                cx.metric,
                micros(latency_of(p, cx.metric))
            )
        });
        format!("{who} sustains {} {}{figures}", level_text(level), cx.unit)
    };
    let failed_on = |p: Option<&ProbeReport>| {
        p.map_or_else(String::new, |p| {
            if p.failed_metrics.is_empty() {
                String::new()
            } else {
                format!(" failed on {}", p.failed_metrics.join(" and "))
            }
        })
    };
    let (outcome, pass, fail, summary) = match *end {
        LegEnd::Found {
            pass,
            fail: Some(fail),
        } => (
            "found",
            Some(pass),
            Some(fail),
            format!(
                "{}; the next step ({} {}){}",
                sustains(pass),
                level_text(fail),
                cx.unit,
                failed_on(probe_at(Some(fail)))
            ),
        ),
        LegEnd::Found { pass, fail: None } => (
            "ceiling",
            Some(pass),
            None,
            format!(
                "{}, the top of the search range: its capacity may be higher (raise search.max)",
                sustains(pass)
            ),
        ),
        LegEnd::ViolatedAtMin { fail } => (
            "slo_violated_at_min",
            None,
            Some(fail),
            format!(
                "the SLO is already violated at the lowest level: {who} at {} {}{}",
                level_text(fail),
                cx.unit,
                probe_at(Some(fail))
                    .map(|p| format!(" failed {}", p.failed.join("; ")))
                    .unwrap_or_default()
            ),
        ),
        LegEnd::GeneratorSaturated { level, pass } => (
            "generator_saturated",
            pass,
            Some(level),
            format!(
                "the search of {who} stopped at {} {}: the load generator saturated, so this is not the \
                 target's limit{}{}",
                level_text(level),
                cx.unit,
                probe_at(Some(level))
                    .and_then(|p| p.note.as_ref())
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default(),
                pass.map(|p| format!("; {} passed before", sustains_short(p, cx.unit)))
                    .unwrap_or_default()
            ),
        ),
        LegEnd::Stopped { pass, fail } => (
            "stopped",
            pass,
            fail,
            format!(
                "the search of {who} stopped before it finished{}{}",
                // Why: the last probe's own note (an agent lost, a stop).
                cx.probes
                    .iter()
                    .rev()
                    .find(|p| p.scope == cx.scope)
                    .and_then(|p| p.note.as_ref())
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default(),
                pass.map(|p| format!("; {} passed", sustains_short(p, cx.unit)))
                    .unwrap_or_default()
            ),
        ),
    };
    LegReport {
        scope: cx.scope.to_owned(),
        outcome: outcome.to_owned(),
        sustainable: pass,
        sustainable_probe: probe_at(pass).map(|p| p.index),
        next_failed: fail,
        next_failed_probe: probe_at(fail).map(|p| p.index),
        summary,
    }
}

fn sustains_short(level: f64, unit: &str) -> String {
    format!("{} {unit}", level_text(level))
}

/// A probe's latency figure by metric name (p99 when it has none).
pub fn latency_of(p: &ProbeReport, metric: &str) -> u64 {
    match metric {
        "p50" => p.p50_us,
        "p90" => p.p90_us,
        "p95" => p.p95_us,
        "p99.9" => p.p99_9_us,
        "max" => p.max_us,
        "mean" => p.mean_us.round() as u64,
        _ => p.p99_us,
    }
}

/// The search's outcome from its legs': saturation first, then a leg that
/// failed at its lowest level, then a stop.
pub fn outcome(legs: &[LegReport]) -> &'static str {
    let any = |o: &str| legs.iter().any(|l| l.outcome == o);
    if any("generator_saturated") {
        "generator_saturated"
    } else if any("slo_violated_at_min") {
        "slo_violated_at_min"
    } else if any("stopped") || legs.is_empty() {
        "stopped"
    } else {
        "found"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(index: u32, level: f64, verdict: &str, failed: &[&str]) -> ProbeReport {
        ProbeReport {
            index,
            scope: "eu-west".into(),
            level,
            total_level: level,
            run_id: String::new(),
            report: String::new(),
            target_rps: Some(level),
            achieved_rps: level,
            requests: 1000,
            error_rate: 0.0,
            p50_us: 100_000,
            p90_us: 150_000,
            p95_us: 180_000,
            p99_us: 212_000,
            p99_9_us: 300_000,
            max_us: 400_000,
            mean_us: 110_000.0,
            schedule_lag_p99_us: 500,
            verdict: verdict.into(),
            failed: failed
                .iter()
                .map(|f| format!("{f} < 250ms (was 1.00s)"))
                .collect(),
            failed_metrics: failed.iter().map(|f| (*f).to_owned()).collect(),
            note: None,
        }
    }

    fn cx<'a>(unit: &'a str, probes: &'a [ProbeReport]) -> LegContext<'a> {
        LegContext {
            scope: "eu-west",
            unit,
            metric: "p99",
            probes,
        }
    }

    #[test]
    fn each_ending_reads_as_a_sentence() {
        let probes = [
            probe(1, 41_200.0, "pass", &[]),
            probe(2, 43_000.0, "fail", &["p99"]),
        ];
        let found = LegEnd::Found {
            pass: 41_200.0,
            fail: Some(43_000.0),
        };
        let leg = leg_report(&found, &cx("req/s", &probes));
        assert_eq!(
            leg.summary,
            "eu-west sustains 41 200 req/s at p99 212.00ms; the next step (43 000 req/s) failed on p99"
        );
        assert_eq!(
            (
                leg.outcome.as_str(),
                leg.sustainable_probe,
                leg.next_failed_probe
            ),
            ("found", Some(1), Some(2))
        );

        let ceiling = LegEnd::Found {
            pass: 41_200.0,
            fail: None,
        };
        let leg = leg_report(&ceiling, &cx("req/s", &probes));
        assert_eq!(leg.outcome, "ceiling");
        assert!(leg.summary.ends_with(
            "the top of the search range: its capacity may be higher (raise search.max)"
        ));

        let violated = LegEnd::ViolatedAtMin { fail: 43_000.0 };
        let leg = leg_report(&violated, &cx("req/s", &probes));
        assert_eq!(
            leg.summary,
            "the SLO is already violated at the lowest level: eu-west at 43 000 req/s failed p99 < 250ms (was 1.00s)"
        );

        let connections = [probe(1, 64.0, "pass", &[])];
        let found = LegEnd::Found {
            pass: 64.0,
            fail: None,
        };
        let leg = leg_report(&found, &cx("connections", &connections));
        assert!(
            leg.summary
                .starts_with("eu-west sustains 64 connections (64 req/s) at p99 212.00ms"),
            "{}",
            leg.summary
        );
    }

    #[test]
    fn the_outcome_puts_saturation_first() {
        let leg = |outcome: &str| LegReport {
            scope: String::new(),
            outcome: outcome.into(),
            sustainable: None,
            sustainable_probe: None,
            next_failed: None,
            next_failed_probe: None,
            summary: String::new(),
        };
        assert_eq!(outcome(&[leg("found"), leg("ceiling")]), "found");
        assert_eq!(
            outcome(&[leg("found"), leg("slo_violated_at_min")]),
            "slo_violated_at_min"
        );
        assert_eq!(
            outcome(&[leg("slo_violated_at_min"), leg("generator_saturated")]),
            "generator_saturated"
        );
        assert_eq!(outcome(&[leg("found"), leg("stopped")]), "stopped");
        assert_eq!(outcome(&[]), "stopped");
    }
}
