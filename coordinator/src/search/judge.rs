//! Judges one probe: did the searched scope meet the SLO, and did the
//! generator produce the load it was asked for?
//!
//! The SLO lines are the probe's thresholds, already checked on its report.
//! On top of them, an open-model probe must complete at least
//! [`MIN_THROUGHPUT`] of its target rate: a level the target does not keep up
//! with is not sustainable, whatever the latency of what it answered.
//!
//! The generator guard tells the generator's limit from the target's:
//! - **Open model.** Schedule lag (how late requests left) past
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
    if open && s.achieved_rps < MIN_THROUGHPUT * cx.level {
        judgement.failed.push(format!(
            "throughput: {:.1} of {} req/s completed (less than {:.0}%)",
            s.achieved_rps,
            level_text(cx.level),
            MIN_THROUGHPUT * 100.0
        ));
        judgement.failed_metrics.push("throughput".to_owned());
    }
    let slo_failed = !judgement.failed.is_empty();
    let generator = if open {
        open_guard(report, cx, slo_failed)
    } else if slo_failed {
        // Closed-model latency is measured from the actual send, so a slow
        // generator does not inflate it: a failure is the target's.
        None
    } else {
        closed_guard(s, cx)
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
fn open_guard(report: &RunReport, cx: &ProbeContext<'_>, slo_failed: bool) -> Option<String> {
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
    if !slo_failed {
        return Some(format!(
            "{behind} while the SLO held: the target got less load than planned; add agents or threads"
        ));
    }
    let Some(healthy) = cx.healthy_latency_us else {
        return Some(format!(
            "{behind}, and no lower level passed to compare with: cannot tell whether the target or the \
             generator is the limit; lower search.min, or raise load.connections"
        ));
    };
    // Connections busy on average at this level if the target answered as
    // fast as it did when healthy.
    let needed = cx.level * healthy / 1e6;
    if needed > POOL_HEADROOM * cx.pool {
        Some(format!(
            "{behind}: {} req/s at the {} the target answered in at a passing level need about {needed:.0} \
             connections busy, more than {:.0}% of the {:.0} serving it; raise load.connections",
            level_text(cx.level),
            show("mean", healthy),
            POOL_HEADROOM * 100.0,
            cx.pool
        ))
    } else {
        // The pool would have carried this level: responses slowed down, and
        // the requests waiting for a connection are charged to the target.
        None
    }
}

/// Why the closed-model generator is the limit, if it is.
fn closed_guard(s: &ScopeSummary, cx: &ProbeContext<'_>) -> Option<String> {
    if s.latency_us.count == 0 {
        return None;
    }
    let cycle_s = s.latency_us.mean / 1e6 + cx.think.as_secs_f64();
    if cycle_s <= 0.0 {
        return None;
    }
    let expected = cx.level / cycle_s;
    (s.achieved_rps < MIN_CLOSED_LOOP * expected).then(|| {
        format!(
            "{} connections at a mean latency of {} should complete about {expected:.0} req/s, but completed \
             {:.0}: the agents could not keep their connections busy; add agents or threads",
            level_text(cx.level),
            show("mean", s.latency_us.mean),
            s.achieved_rps
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
