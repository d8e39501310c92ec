//! Judges one probe: did the searched scope meet the SLO, and did the
//! generator produce the load it was asked for?
//!
//! The SLO lines are the probe's thresholds, already checked on its report.
//! On top of them, an open-model probe must complete at least
//! [`MIN_THROUGHPUT`] of its target rate: a level the target does not keep up
//! with is not sustainable, whatever the latency of what it answered.
//!
//! The generator guard tells the generator's limit from the target's:
//! - **Open model.** Schedule lag (how far requests left from their time) past
//!   `max_schedule_lag` means the generator fell behind. If the SLO held
//!   anyway, the load was not what it claimed: generator saturated. If the
//!   SLO failed, requests may have waited for a connection because responses
//!   slowed (the target's fault, and charged to it by the
//!   coordinated-omission correction), or because the pool is too small for
//!   this level even at the target's healthy latency (the generator's). By
//!   Little's law, the level needs `rate × latency` connections busy on
//!   average; with the latency of the leg's lowest passing probe, more than
//!   [`POOL_HEADROOM`] of the pool means the pool is the limit. Without a
//!   passing probe to compare with, the two cannot be told apart, and the
//!   search stops rather than guess.
//! - **Closed model.** There is no schedule, so lag says nothing. `N`
//!   connections with mean latency `L` (plus think time `Z`) complete about
//!   `N / (L + Z)` requests/s; completing less than [`MIN_CLOSED_LOOP`] of
//!   that means the agents could not keep their connections busy.

use super::driver::Verdict;
use crate::report::model::{RunReport, RunStatus, ScopeSummary, ThresholdResult};
use crate::report::thresholds::show;
use crate::scenario::Model;
use crate::scenario::search::SearchSpec;
use std::time::Duration;

/// An open-model probe must complete at least this share of its target rate.
pub const MIN_THROUGHPUT: f64 = 0.97;
/// Share of the connection pool a level may need, at the target's healthy
/// latency, before the pool is the limit (Little's law, on averages).
pub const POOL_HEADROOM: f64 = 0.8;
/// Closed model: share of `N / (L + Z)` the connections must complete.
pub const MIN_CLOSED_LOOP: f64 = 0.5;

/// What the judge needs besides the report.
#[derive(Debug, Clone, Copy)]
pub struct ProbeContext<'a> {
    pub spec: &'a SearchSpec,
    /// The region searched, or `None` for the cluster.
    pub focus: Option<&'a str>,
    /// The searched scope's level.
    pub level: f64,
    /// The probe's model (with the cluster's rate).
    pub model: Model,
    /// Open model: the connections serving the searched scope.
    pub pool: f64,
    /// Closed model: mean think time.
    pub think: Duration,
    /// Mean latency (µs) of the searched scope at this leg's lowest passing
    /// probe, if one passed.
    pub healthy_latency_us: Option<f64>,
}

/// A probe's verdict and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub verdict: Verdict,
    /// The SLO lines that failed (with what was measured), and a throughput
    /// shortfall, one line each.
    pub failed: Vec<String>,
    /// The metrics that failed (`p99`, `error_rate`, `throughput`), for the
    /// plain-language summary.
    pub failed_metrics: Vec<String>,
    /// Why the generator was judged saturated, or the probe incomplete.
    pub note: Option<String>,
}

/// The searched scope's figures in a probe's report.
pub fn scope<'a>(report: &'a RunReport, focus: Option<&str>) -> &'a ScopeSummary {
    focus
        .and_then(|name| report.regions.iter().find(|r| r.name == name))
        .map_or(&report.global, |r| &r.summary)
}

/// Requests/s the searched scope completed over the measured intervals'
/// own time. A run's last interval lasts until its last response (graceful
/// stop included), so a backlog that a saturated target finishes after the
/// end counts at the pace it was served. (The report's own rate divides by
/// the nominal step, which credits that backlog to the step.)
pub fn step_rps(report: &RunReport, focus: Option<&str>) -> f64 {
    let (completed, seconds) =
        report
            .intervals
            .iter()
            .filter(|i| !i.warmup)
            .fold((0u64, 0.0f64), |(n, t), i| {
                let requests = match focus {
                    None => i.global.requests,
                    Some(region) => i.regions.get(region).map_or(0, |f| f.requests),
                };
                (n + requests, t + (i.end_s - i.start_s).max(0.0))
            });
    if seconds > 0.0 {
        completed as f64 / seconds
    } else {
        0.0
    }
}

/// The worst schedule-lag p99 of any region, µs.
pub fn worst_lag_p99_us(report: &RunReport) -> u64 {
    report
        .regions
        .iter()
        .map(|r| r.summary.schedule_lag_us.p99)
        .chain(std::iter::once(report.global.schedule_lag_us.p99))
        .max()
        .unwrap_or(0)
}

pub fn judge(report: &RunReport, cx: &ProbeContext<'_>) -> Judgement {
    let mut judgement = Judgement {
        verdict: Verdict::Pass,
        failed: Vec::new(),
        failed_metrics: Vec::new(),
        note: None,
    };
    if report.status == RunStatus::Partial {
        judgement.verdict = Verdict::Incomplete;
        judgement.note = Some(format!(
            "the probe did not run as planned ({}): its figures cannot be judged",
            report.notes.join("; ")
        ));
        return judgement;
    }
    for t in report.thresholds.iter().filter(|t| !t.passed) {
        judgement.failed.push(describe_failure(t));
        if !judgement.failed_metrics.contains(&t.metric) {
            judgement.failed_metrics.push(t.metric.clone());
        }
    }
    let s = scope(report, cx.focus);
    let open = matches!(cx.model, Model::Open { .. });
    let completed = step_rps(report, cx.focus);
    if open && completed < MIN_THROUGHPUT * cx.level {
        judgement.failed.push(format!(
            "throughput: {completed:.1} of {} req/s completed (less than {:.0}%)",
            level_text(cx.level),
            MIN_THROUGHPUT * 100.0
        ));
        judgement.failed_metrics.push("throughput".to_owned());
    }
    let slo_failed = !judgement.failed.is_empty();
    let generator = if open {
        open_guard(report, s, cx, slo_failed)
    } else if slo_failed {
        // Closed-model latency is measured from the actual send, so a slow
        // generator does not inflate it: a failure is the target's.
        None
    } else {
        closed_guard(s, completed, cx)
    };
    match generator {
        Some(why) => {
            judgement.verdict = Verdict::GeneratorSaturated;
            judgement.note = Some(why);
        }
        None if slo_failed => judgement.verdict = Verdict::Fail,
        None => {}
    }
    judgement
}

/// Why the open-model generator is the limit, if it is.
fn open_guard(
    report: &RunReport,
    s: &ScopeSummary,
    cx: &ProbeContext<'_>,
    slo_failed: bool,
) -> Option<String> {
    let lag = worst_lag_p99_us(report);
    let limit = cx.spec.max_schedule_lag.as_micros() as u64;
    if lag <= limit {
        return None;
    }
    let behind = format!(
        "the generator fell behind its schedule (schedule lag p99 {} > search.max_schedule_lag {})",
        show("p99", lag as f64),
        show("p99", limit as f64)
    );
    // Connections busy on average at this level (Little's law), at the
    // latency the target showed when healthy, or else at this probe's own
    // latency less the time requests waited to be sent.
    let service_us = cx
        .healthy_latency_us
        .unwrap_or((s.latency_us.mean - s.schedule_lag_us.mean).max(0.0));
    let needed = cx.level * service_us / 1e6;
    let pool_short = needed > POOL_HEADROOM * cx.pool;
    let advice = if pool_short {
        format!(
            "{} req/s at {} per request need about {needed:.0} connections busy, more than {:.0}% of the {:.0} \
             serving it: raise load.connections",
            level_text(cx.level),
            show("mean", service_us),
            POOL_HEADROOM * 100.0,
            cx.pool
        )
    } else {
        "the agents could not send on time: add agents or threads".to_owned()
    };
    if !slo_failed {
        return Some(format!(
            "{behind} while the SLO held, so the target got less load than planned; {advice}"
        ));
    }
    if cx.healthy_latency_us.is_none() {
        return Some(format!(
            "{behind} and the SLO failed, with no lower level passed to compare with: cannot tell whether the \
             target or the generator is the limit (lower search.min; {advice})"
        ));
    }
    // The pool would have carried this level at the healthy latency:
    // responses slowed down, and the requests that waited for a connection
    // are charged to the target (coordinated-omission correction).
    pool_short.then(|| format!("{behind}; {advice}"))
}

/// Why the closed-model generator is the limit, if it is.
fn closed_guard(s: &ScopeSummary, completed: f64, cx: &ProbeContext<'_>) -> Option<String> {
    if s.latency_us.count == 0 {
        return None;
    }
    let cycle_s = s.latency_us.mean / 1e6 + cx.think.as_secs_f64();
    if cycle_s <= 0.0 {
        return None;
    }
    let expected = cx.level / cycle_s;
    (completed < MIN_CLOSED_LOOP * expected).then(|| {
        format!(
            "{} connections at a mean latency of {} should complete about {expected:.0} req/s, but completed \
             {completed:.0}: the agents could not keep their connections busy; add agents or threads",
            level_text(cx.level),
            show("mean", s.latency_us.mean),
        )
    })
}

fn describe_failure(t: &ThresholdResult) -> String {
    let actual = t
        .actual
        .map_or_else(|| "no data".to_owned(), |a| show(&t.metric, a));
    if t.scope == "global" || t.threshold.starts_with(&format!("{}:", t.scope)) {
        format!("{} (was {actual})", t.threshold)
    } else {
        format!("{} in {} (was {actual})", t.threshold, t.scope)
    }
}

/// A level as people write it: `41 200`, `12.5`.
pub fn level_text(level: f64) -> String {
    if level.fract() != 0.0 && level < 100.0 {
        return format!("{level:.1}");
    }
    let digits = format!("{:.0}", level);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests;
