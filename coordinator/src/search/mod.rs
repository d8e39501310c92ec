//! Capacity search: the highest load that meets an SLO, for the cluster or
//! for each region in turn (`search:` in a scenario).
//!
//! A search is a series of runs with the same agents ([`run::run_steps`])
//! whose next level depends on the last one's figures: each probe is one run
//! of `settle` (a warm-up, left out of its figures) and `step` at one level.
//! - [`driver`]: which level to probe next (doubling, then bisection);
//! - [`judge`]: a probe's verdict (the SLO, and the generator guard);
//! - [`report`]: the search report; [`render`]: the terminal table;
//!   [`html`]: the page with the latency-vs-throughput charts.

pub mod driver;
pub mod html;
pub mod judge;
pub mod render;
pub mod report;

use crate::plan::region_fractions;
use crate::report::model::RunReport;
use crate::run::{self, RunCommand, RunError};
use crate::scenario::search::{SearchMode, SearchSpec};
use crate::scenario::stages::LevelUnit;
use crate::scenario::{Model, Scenario};
use driver::{Driver, Verdict};
use judge::{ProbeContext, level_text};
use report::{LegContext, ProbeReport, SEARCH_SCHEMA_VERSION, SearchReport};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// A finished (or stopped) search.
#[derive(Debug)]
pub struct SearchRun {
    /// Probe report paths are empty until the caller writes the probes.
    pub report: SearchReport,
    /// Every probe's own run report, in the order run.
    pub probes: Vec<RunReport>,
    /// A run that could not run, which stopped the search.
    pub error: Option<RunError>,
}

/// Runs the search `spec` of `scenario` with the agents that join.
pub async fn run(
    scenario: Scenario,
    spec: SearchSpec,
    commands: mpsc::Receiver<RunCommand>,
    cancel: CancellationToken,
    events: crate::events::Events,
) -> SearchRun {
    let mut state = State::new(scenario, spec);
    let first = state.probe_scenario();
    let series = run::run_steps_with_events(first, commands, cancel, events, None, |report| {
        state.take(report)
    })
    .await;
    // A probe cut short by a stop was not judged yet; a run that could not
    // run leaves nothing to judge.
    if let Some(last) = series.reports.get(state.probes.len()) {
        state.take(last);
    }
    state.driver.stop();
    let report = state.finish(&series.id, series.error.as_ref());
    SearchRun {
        report,
        probes: series.reports,
        error: series.error,
    }
}

/// The search in progress.
struct State {
    scenario: Scenario,
    spec: SearchSpec,
    legs: Vec<Option<String>>,
    driver: Driver,
    probes: Vec<ProbeReport>,
    /// Per leg: the mean latency (µs) of its lowest passing probe.
    healthy_latency_us: Vec<Option<f64>>,
}

impl State {
    fn new(scenario: Scenario, spec: SearchSpec) -> Self {
        let legs = spec.legs(&scenario);
        Self {
            driver: Driver::new(&spec, legs.len()),
            healthy_latency_us: vec![None; legs.len()],
            legs,
            scenario,
            spec,
            probes: Vec::new(),
        }
    }

    fn focus(&self, leg: usize) -> Option<&str> {
        self.legs.get(leg).and_then(Option::as_deref)
    }

    /// The scenario of the probe the driver wants now.
    fn probe_scenario(&self) -> Scenario {
        let (leg, level) = self.driver.current().unwrap_or((0, self.spec.start));
        self.spec.probe(&self.scenario, self.focus(leg), level)
    }

    /// Judges the current probe by its report; returns the next probe.
    fn take(&mut self, report: &RunReport) -> Option<Scenario> {
        let (leg, level) = self.driver.current()?;
        let probe = self.probe_scenario();
        let focus = self.focus(leg).map(str::to_owned);
        let fraction = focus
            .as_deref()
            .and_then(|f| region_fractions(&probe).get(f).copied())
            .unwrap_or(1.0);
        let think = probe
            .load
            .think_time
            .map_or(Duration::ZERO, |(a, b)| (a + b) / 2);
        let cx = ProbeContext {
            spec: &self.spec,
            focus: focus.as_deref(),
            level,
            model: probe.load.model,
            pool: f64::from(probe.load.connections) * fraction,
            think,
            healthy_latency_us: self.healthy_latency_us[leg],
        };
        let judgement = judge::judge(report, &cx);
        let s = judge::scope(report, focus.as_deref());
        if judgement.verdict == Verdict::Pass && self.healthy_latency_us[leg].is_none() {
            self.healthy_latency_us[leg] = Some(s.latency_us.mean);
        }
        let scope = focus.clone().unwrap_or_else(|| "global".to_owned());
        let verdict = match judgement.verdict {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::GeneratorSaturated => "generator_saturated",
            Verdict::Incomplete => "incomplete",
        };
        info!(
            probe = self.probes.len() + 1,
            %scope,
            level = %level_text(level),
            rps = format!("{:.1}", judge::step_rps(report, focus.as_deref())),
            p99 = %crate::report::table::micros(s.latency_us.p99),
            verdict,
            failed = %judgement.failed.join("; "),
            "probe judged"
        );
        let l = &s.latency_us;
        self.probes.push(ProbeReport {
            index: self.probes.len() as u32 + 1,
            scope,
            level,
            total_level: self.spec.total(self.scenario.regions.len(), level),
            run_id: report.run_id.clone(),
            report: String::new(),
            target_rps: s.target_rps,
            achieved_rps: judge::step_rps(report, focus.as_deref()),
            requests: s.requests,
            error_rate: if s.requests > 0 {
                s.errors.total as f64 / s.requests as f64
            } else {
                0.0
            },
            p50_us: l.p50,
            p90_us: l.p90,
            p95_us: l.p95,
            p99_us: l.p99,
            p99_9_us: l.p99_9,
            max_us: l.max,
            mean_us: l.mean,
            schedule_lag_p99_us: judge::worst_lag_p99_us(report),
            verdict: verdict.to_owned(),
            failed: judgement.failed,
            failed_metrics: judgement.failed_metrics,
            note: judgement.note,
        });
        self.driver.record(judgement.verdict)?;
        Some(self.probe_scenario())
    }

    /// The search report, once the driver is done.
    fn finish(&self, search_id: &str, error: Option<&RunError>) -> SearchReport {
        let spec = &self.spec;
        let unit = match spec.unit {
            LevelUnit::Rate => "req/s",
            LevelUnit::Connections => "connections",
        };
        // The sentence quotes the latency the SLO names first.
        let metric = spec
            .slo
            .iter()
            .map(|l| l.threshold.metric.name())
            .find(|m| m.starts_with('p') || *m == "mean" || *m == "max")
            .unwrap_or("p99");
        let legs: Vec<_> = self
            .driver
            .ended()
            .iter()
            .zip(&self.legs)
            .map(|(end, focus)| {
                report::leg_report(
                    end,
                    &LegContext {
                        scope: focus.as_deref().unwrap_or("global"),
                        unit,
                        metric,
                        probes: &self.probes,
                    },
                )
            })
            .collect();
        let mut summary: Vec<String> = legs.iter().map(|l| l.summary.clone()).collect();
        if let SearchMode::PerRegion { .. } = spec.mode {
            let found = legs.iter().filter(|l| l.sustainable.is_some());
            let least = |l: &&report::LegReport| l.sustainable.unwrap_or(f64::INFINITY);
            if let Some(first) = found.min_by(|a, b| least(a).total_cmp(&least(b))) {
                if legs.len() > 1 {
                    summary.push(format!(
                        "{} saturates first: it sustains the least, {} {unit}",
                        first.scope,
                        level_text(first.sustainable.unwrap_or_default())
                    ));
                }
            }
        }
        if let Some(e) = error {
            summary.push(format!("the search stopped: {e}"));
        }
        SearchReport {
            schema_version: SEARCH_SCHEMA_VERSION,
            search_id: search_id.to_owned(),
            scenario: self.scenario.name.clone(),
            model: match self.scenario.load.model {
                Model::Open { .. } => "open",
                Model::Closed => "closed",
            }
            .to_owned(),
            unit: unit.to_owned(),
            mode: match spec.mode {
                SearchMode::Global => "global",
                SearchMode::PerRegion { .. } => "per-region",
            }
            .to_owned(),
            base: match spec.mode {
                SearchMode::Global => None,
                SearchMode::PerRegion { base } => Some(base),
            },
            slo: spec.slo.iter().map(|l| l.threshold.text.clone()).collect(),
            min: spec.min,
            max: spec.max,
            start: spec.start,
            tolerance: spec.tolerance.describe(),
            step_s: spec.step.as_secs_f64(),
            settle_s: spec.settle.as_secs_f64(),
            max_schedule_lag_us: (spec.unit == LevelUnit::Rate)
                .then_some(spec.max_schedule_lag.as_micros() as u64),
            outcome: report::outcome(&legs).to_owned(),
            summary,
            legs,
            probes: self.probes.clone(),
        }
    }
}
