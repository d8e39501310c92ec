//! What `/metrics` shows: the run's state, kept up to date from
//! [`RunEvent`]s, and written as Prometheus families on each scrape.
//!
//! Every per-scope family carries `scope="global"` or `scope="region"`
//! with `region="<name>"`: the global series of a counter is the sum of
//! the regions', and a global latency quantile is not derivable from the
//! regions' at all, so both are exported and kept apart by label.

use super::text::{Kind, TextEncoder};
use crate::events::{IntervalSnapshot, RunEvent, RunPlan, RunStart, ScopeFigures};
use crate::report::model::{ErrorCounts, LatencySummary, RunReport, ScopeSummary};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Reads one figure out of a summary.
type Pick<T> = fn(&T) -> u64;

/// Reads counts by code (HTTP status or gRPC status) out of a scope's counts.
type CodesOf = fn(&Counts) -> &BTreeMap<String, u64>;

/// Latency quantiles exported, with their label value.
const QUANTILES: [(&str, Pick<LatencySummary>); 4] = [
    ("0.5", |l| l.p50),
    ("0.9", |l| l.p90),
    ("0.99", |l| l.p99),
    ("0.999", |l| l.p99_9),
];

/// Error classes exported, with their label value.
const CLASSES: [(&str, Pick<ErrorCounts>); 6] = [
    ("connect", |e| e.connect),
    ("tls", |e| e.tls),
    ("timeout", |e| e.timeout),
    ("4xx", |e| e.status_4xx),
    ("5xx", |e| e.status_5xx),
    ("other", |e| e.other),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Waiting,
    Running,
    Finished,
}

impl RunState {
    const ALL: [RunState; 3] = [RunState::Waiting, RunState::Running, RunState::Finished];

    fn as_str(self) -> &'static str {
        match self {
            RunState::Waiting => "waiting",
            RunState::Running => "running",
            RunState::Finished => "finished",
        }
    }
}

/// Global or one region.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Scope {
    Global,
    Region(String),
}

impl Scope {
    /// The scope's labels, then `extra`.
    fn labels<'a>(&'a self, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut labels = match self {
            Scope::Global => vec![("scope", "global")],
            Scope::Region(name) => vec![("scope", "region"), ("region", name.as_str())],
        };
        labels.extend_from_slice(extra);
        labels
    }
}

/// Requests and failures counted so far in a run (warm-up excluded, as in
/// the report).
#[derive(Debug, Clone, Default, PartialEq)]
struct Counts {
    requests: u64,
    errors: ErrorCounts,
    new_connections: u64,
    /// Responses by HTTP status code, and gRPC calls by status name.
    status_codes: BTreeMap<String, u64>,
    grpc_codes: BTreeMap<String, u64>,
}

impl Counts {
    fn add(&mut self, f: &ScopeFigures) {
        self.requests += f.requests;
        self.new_connections += f.new_connections;
        let (e, more) = (&mut self.errors, &f.errors);
        e.total += more.total;
        e.connect += more.connect;
        e.tls += more.tls;
        e.timeout += more.timeout;
        e.status_4xx += more.status_4xx;
        e.status_5xx += more.status_5xx;
        e.other += more.other;
        for (into, from) in [
            (&mut self.status_codes, &f.status_codes),
            (&mut self.grpc_codes, &f.grpc_codes),
        ] {
            for (code, n) in from {
                *into.entry(code.clone()).or_default() += n;
            }
        }
    }

    fn of(s: &ScopeSummary) -> Self {
        Self {
            requests: s.requests,
            errors: s.errors,
            new_connections: s.phases.as_ref().map_or(0, |p| p.new_connections),
            status_codes: s.status_codes.clone(),
            grpc_codes: s.grpc_codes.clone(),
        }
    }
}

/// The coordinator's state as `/metrics` shows it.
#[derive(Debug)]
pub struct MetricsState {
    state: RunState,
    plan: Option<Arc<RunPlan>>,
    run: Option<Arc<RunStart>>,
    /// Agents connected now, with their region.
    connected: BTreeMap<Uuid, String>,
    counts: BTreeMap<Scope, Counts>,
    last: Option<Arc<IntervalSnapshot>>,
    /// The finished run's report: whole-run figures and thresholds.
    report: Option<Arc<RunReport>>,
}

impl Default for MetricsState {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricsState {
    pub fn new() -> Self {
        Self {
            state: RunState::Waiting,
            plan: None,
            run: None,
            connected: BTreeMap::new(),
            counts: BTreeMap::new(),
            last: None,
            report: None,
        }
    }

    /// The state after a finished run, from its report alone (what a
    /// Pushgateway is sent).
    pub fn finished(report: &RunReport) -> Self {
        let mut state = Self::new();
        state.apply(&RunEvent::Finished(Arc::new(report.clone())));
        state
    }

    pub fn state(&self) -> RunState {
        self.state
    }

    pub fn apply(&mut self, event: &RunEvent) {
        match event {
            RunEvent::Waiting(plan) => {
                self.plan = Some(plan.clone());
                if self.state != RunState::Running {
                    self.state = RunState::Waiting;
                }
            }
            RunEvent::AgentJoined { agent, region } => {
                self.connected.insert(*agent, region.clone());
            }
            RunEvent::AgentLeft { agent, .. } => {
                self.connected.remove(agent);
            }
            RunEvent::Starting(start) => {
                // Counters start again with each run (Prometheus' rate()
                // reads a drop to zero as a reset).
                self.state = RunState::Running;
                self.plan = Some(start.plan.clone());
                self.counts = std::iter::once(Scope::Global)
                    .chain(
                        start
                            .plan
                            .regions
                            .iter()
                            .map(|r| Scope::Region(r.name.clone())),
                    )
                    .map(|s| (s, Counts::default()))
                    .collect();
                self.run = Some(start.clone());
                self.last = None;
                self.report = None;
            }
            RunEvent::IntervalClosed(snapshot) => {
                if !snapshot.warmup {
                    self.counts
                        .entry(Scope::Global)
                        .or_default()
                        .add(&snapshot.global);
                    for (name, figures) in &snapshot.regions {
                        self.counts
                            .entry(Scope::Region(name.clone()))
                            .or_default()
                            .add(figures);
                    }
                }
                self.last = Some(snapshot.clone());
            }
            RunEvent::Finished(report) => {
                // The report is the final word: it also holds reports that
                // arrived after their interval closed.
                self.state = RunState::Finished;
                self.counts = std::iter::once((Scope::Global, Counts::of(&report.global)))
                    .chain(
                        report
                            .regions
                            .iter()
                            .map(|r| (Scope::Region(r.name.clone()), Counts::of(&r.summary))),
                    )
                    .collect();
                self.report = Some(report.clone());
            }
        }
    }

    /// The page, at wall-clock time `now_unix_nanos` (for the stage and
    /// the time left).
    pub fn render(&self, now_unix_nanos: i64) -> String {
        let mut e = TextEncoder::new();
        self.run_families(&mut e, now_unix_nanos);
        self.agent_families(&mut e);
        self.count_families(&mut e);
        self.interval_families(&mut e);
        self.report_families(&mut e);
        e.finish()
    }

    fn run_families(&self, e: &mut TextEncoder, now_unix_nanos: i64) {
        e.family(
            "stampede_run_state",
            Kind::Gauge,
            "The coordinator's state: 1 for the current one of waiting (for agents), running, finished.",
        );
        for s in RunState::ALL {
            e.sample(
                &[("state", s.as_str())],
                f64::from(u8::from(s == self.state)),
            );
        }
        let scenario = self.plan.as_ref().map_or("", |p| p.scenario.as_str());
        let (run_id, run, runs) = match (&self.run, &self.report) {
            (_, Some(r)) => (
                r.run_id.clone(),
                r.series.as_ref().map_or(1, |s| s.run),
                r.series.as_ref().map_or(1, |s| s.runs),
            ),
            (Some(start), None) => (start.run_id.clone(), start.run, start.runs),
            (None, None) => (String::new(), 0, 0),
        };
        let scenario = self
            .report
            .as_ref()
            .map_or(scenario, |r| r.scenario.name.as_str());
        let (run, runs) = (run.to_string(), runs.to_string());
        e.family(
            "stampede_run_info",
            Kind::Gauge,
            "Always 1: the scenario, the run's id and its place in a series (run of runs).",
        );
        e.sample(
            &[
                ("scenario", scenario),
                ("run_id", &run_id),
                ("run", &run),
                ("runs", &runs),
            ],
            1.0,
        );

        let Some(plan) = &self.plan else { return };
        e.family(
            "stampede_run_duration_seconds",
            Kind::Gauge,
            "How long the run's load lasts, warm-up included.",
        );
        e.sample(&[], plan.duration.as_secs_f64());
        let (Some(start), RunState::Running) = (&self.run, self.state) else {
            return;
        };
        let elapsed = Duration::from_nanos(
            u64::try_from(now_unix_nanos - start.start_unix_nanos).unwrap_or(0),
        );
        e.family(
            "stampede_run_elapsed_seconds",
            Kind::Gauge,
            "Time since the run's load started (0 until then).",
        );
        e.sample(&[], elapsed.as_secs_f64());
        e.family(
            "stampede_run_remaining_seconds",
            Kind::Gauge,
            "Time until the run's load ends (graceful stop not included).",
        );
        e.sample(&[], plan.duration.saturating_sub(elapsed).as_secs_f64());
        if let Some(stage) = plan.stage_at(elapsed) {
            e.family(
                "stampede_stage_info",
                Kind::Gauge,
                "Always 1: the stage running now (label stage) and its kind.",
            );
            e.sample(&[("stage", &stage.label), ("kind", stage.kind)], 1.0);
        }
        if let Some(level) = plan.level_at(elapsed) {
            e.family(
                "stampede_load_level",
                Kind::Gauge,
                "The scenario's load level now, across the cluster: requests per second (open model) or connections (closed model), by label unit.",
            );
            let unit = if plan.level_unit == "req/s" {
                "requests_per_second"
            } else {
                "connections"
            };
            e.sample(&[("unit", unit)], level);
        }
    }

    fn agent_families(&self, e: &mut TextEncoder) {
        let Some(plan) = &self.plan else { return };
        e.family(
            "stampede_agents_expected",
            Kind::Gauge,
            "Agents the scenario waits for, per region.",
        );
        for r in &plan.regions {
            e.sample(&[("region", &r.name)], f64::from(r.agents));
        }
        e.family(
            "stampede_agents_connected",
            Kind::Gauge,
            "Agents connected to the coordinator, per region.",
        );
        for r in &plan.regions {
            let n = self.connected.values().filter(|c| **c == r.name).count();
            e.sample(&[("region", &r.name)], n as f64);
        }
    }

    fn count_families(&self, e: &mut TextEncoder) {
        if self.counts.is_empty() {
            return;
        }
        e.family(
            "stampede_requests_total",
            Kind::Counter,
            "Completed requests (successes and failures) of the current run, warm-up excluded.",
        );
        for (scope, c) in &self.counts {
            e.sample(&scope.labels(&[]), c.requests as f64);
        }
        e.family(
            "stampede_errors_total",
            Kind::Counter,
            "Failed requests of the current run by class (connect, timeout, 4xx, 5xx, other), warm-up excluded.",
        );
        for (scope, c) in &self.counts {
            for (class, pick) in CLASSES {
                e.sample(&scope.labels(&[("class", class)]), pick(&c.errors) as f64);
            }
        }
        e.family(
            "stampede_connections_opened_total",
            Kind::Counter,
            "Connections the agents opened to the target in the current run, warm-up excluded (with keep-alive, about one per connection slot; with keep_alive: false, one per request).",
        );
        for (scope, c) in &self.counts {
            e.sample(&scope.labels(&[]), c.new_connections as f64);
        }
        // By code, as k6's and Gatling's status checks read them: only the
        // codes seen (a code's series starts with its first response).
        let by_code: [(&str, &str, CodesOf); 2] = [
            (
                "stampede_responses_total",
                "Responses of the current run by HTTP status code (label code), warm-up excluded.",
                |c| &c.status_codes,
            ),
            (
                "stampede_grpc_responses_total",
                "gRPC calls of the current run by status (label code: OK, UNAVAILABLE, ...), warm-up excluded.",
                |c| &c.grpc_codes,
            ),
        ];
        for (name, help, codes) in by_code {
            if self.counts.values().all(|c| codes(c).is_empty()) {
                continue;
            }
            e.family(name, Kind::Counter, help);
            for (scope, c) in &self.counts {
                for (code, n) in codes(c) {
                    e.sample(&scope.labels(&[("code", code)]), *n as f64);
                }
            }
        }
    }

    fn interval_families(&self, e: &mut TextEncoder) {
        let Some(last) = &self.last else { return };
        let scopes: Vec<(Scope, &ScopeFigures)> = std::iter::once((Scope::Global, &last.global))
            .chain(
                last.regions
                    .iter()
                    .map(|(name, f)| (Scope::Region(name.clone()), f)),
            )
            .collect();
        e.family(
            "stampede_interval_index",
            Kind::Gauge,
            "Index of the last closed interval (0-based); the stampede_interval_* figures are its own.",
        );
        e.sample(&[], f64::from(last.index));
        e.family(
            "stampede_interval_warmup",
            Kind::Gauge,
            "1 when the last closed interval is part of the warm-up (not in the run's totals).",
        );
        e.sample(&[], f64::from(u8::from(last.warmup)));
        e.family(
            "stampede_interval_requests_per_second",
            Kind::Gauge,
            "Completed requests per second in the last closed interval.",
        );
        for (scope, f) in &scopes {
            e.sample(&scope.labels(&[]), f.rps);
        }
        e.family(
            "stampede_interval_errors",
            Kind::Gauge,
            "Failed requests in the last closed interval.",
        );
        for (scope, f) in &scopes {
            e.sample(&scope.labels(&[]), f.errors.total as f64);
        }
        latency_family(
            e,
            "stampede_interval_latency_seconds",
            "Latency of successful requests in the last closed interval, by quantile, from the merged histograms (absent when none succeeded).",
            scopes.iter().map(|(s, f)| (s.clone(), f.latency)),
        );
    }

    fn report_families(&self, e: &mut TextEncoder) {
        let Some(report) = &self.report else { return };
        let scopes: Vec<(Scope, &ScopeSummary)> = std::iter::once((Scope::Global, &report.global))
            .chain(
                report
                    .regions
                    .iter()
                    .map(|r| (Scope::Region(r.name.clone()), &r.summary)),
            )
            .collect();
        e.family(
            "stampede_run_requests_per_second",
            Kind::Gauge,
            "The finished run's achieved completed requests per second (warm-up excluded).",
        );
        for (scope, s) in &scopes {
            e.sample(&scope.labels(&[]), s.achieved_rps);
        }
        latency_family(
            e,
            "stampede_run_latency_seconds",
            "The finished run's latency of successful requests, by quantile, from the merged histograms (warm-up excluded).",
            scopes.iter().map(|(s, r)| (s.clone(), r.latency_us)),
        );
        if report.thresholds.is_empty() {
            return;
        }
        e.family(
            "stampede_threshold_passed",
            Kind::Gauge,
            "The finished run's thresholds: 1 passed, 0 failed (label threshold as written in the scenario).",
        );
        for t in &report.thresholds {
            let scope = if t.scope == "global" {
                Scope::Global
            } else {
                Scope::Region(t.scope.clone())
            };
            e.sample(
                &scope.labels(&[("threshold", &t.threshold)]),
                f64::from(u8::from(t.passed)),
            );
        }
    }
}

/// A latency family: one sample per scope and quantile, in seconds; a
/// scope without any successful request has none.
fn latency_family(
    e: &mut TextEncoder,
    name: &'static str,
    help: &str,
    scopes: impl Iterator<Item = (Scope, LatencySummary)>,
) {
    e.family(name, Kind::Gauge, help);
    for (scope, latency) in scopes {
        if latency.count == 0 {
            continue;
        }
        for (quantile, pick) in QUANTILES {
            e.sample(
                &scope.labels(&[("quantile", quantile)]),
                pick(&latency) as f64 / 1e6,
            );
        }
    }
}

#[cfg(test)]
mod tests;
