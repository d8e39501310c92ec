//! What the live view knows and how it reads: a pure state fed with
//! [`RunEvent`]s, and the text of the redrawn block (a terminal) and of the
//! one line per interval (a log).

use crate::events::{IntervalSnapshot, RunEvent, RunPlan, RunStart, ScopeFigures};
use crate::report::table::micros;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Width of the time bar, in cells.
const BAR_CELLS: usize = 30;

#[derive(Debug, Default)]
pub struct LiveView {
    plan: Option<Arc<RunPlan>>,
    run: Option<Arc<RunStart>>,
    connected: BTreeMap<Uuid, String>,
    last: Option<Arc<IntervalSnapshot>>,
    /// Completed requests so far per region (warm-up excluded).
    requests: BTreeMap<String, u64>,
}

impl LiveView {
    pub fn apply(&mut self, event: &RunEvent) {
        match event {
            RunEvent::Waiting(plan) => {
                self.plan = Some(plan.clone());
                self.run = None;
                self.last = None;
                self.requests.clear();
            }
            RunEvent::AgentJoined { agent, region } => {
                self.connected.insert(*agent, region.clone());
            }
            RunEvent::AgentLeft { agent, .. } => {
                self.connected.remove(agent);
            }
            RunEvent::Starting(start) => {
                self.plan = Some(start.plan.clone());
                self.run = Some(start.clone());
                self.last = None;
                self.requests.clear();
            }
            RunEvent::IntervalClosed(snapshot) => {
                if !snapshot.warmup {
                    for (region, f) in &snapshot.regions {
                        *self.requests.entry(region.clone()).or_default() += f.requests;
                    }
                }
                self.last = Some(snapshot.clone());
            }
            RunEvent::Finished(_) => {}
        }
    }

    /// The regions' figures in the scenario's order (any region it does
    /// not list last).
    fn in_plan_order<'a>(
        &self,
        regions: &'a BTreeMap<String, ScopeFigures>,
    ) -> Vec<(&'a str, &'a ScopeFigures)> {
        let mut ordered: Vec<(&str, &ScopeFigures)> = Vec::with_capacity(regions.len());
        if let Some(plan) = &self.plan {
            for r in &plan.regions {
                if let Some((name, f)) = regions.get_key_value(&r.name) {
                    ordered.push((name, f));
                }
            }
        }
        for (name, f) in regions {
            if !ordered.iter().any(|(n, _)| n == name) {
                ordered.push((name, f));
            }
        }
        ordered
    }

    fn connected_in(&self, region: &str) -> usize {
        self.connected.values().filter(|r| *r == region).count()
    }

    /// "agents 3/3": connected of expected.
    fn agents(&self, plan: &RunPlan) -> String {
        format!("agents {}/{}", self.connected.len(), plan.agents())
    }

    /// The redrawn block at wall-clock time `now_unix_nanos`: a heading
    /// (stage, time left, agents), a time bar, and a row per region and one
    /// for all regions.
    pub fn block(&self, now_unix_nanos: i64) -> String {
        let Some(plan) = &self.plan else {
            return "stampede: starting".to_owned();
        };
        let mut out = String::new();
        match &self.run {
            None => {
                let _ = writeln!(
                    out,
                    "{} · waiting for agents: {} connected of {}",
                    plan.scenario,
                    self.connected.len(),
                    plan.agents()
                );
            }
            Some(run) => {
                let elapsed = Duration::from_nanos(
                    u64::try_from(now_unix_nanos - run.start_unix_nanos).unwrap_or(0),
                );
                let series = if run.runs > 1 {
                    format!(" · run {} of {}", run.run, run.runs)
                } else {
                    String::new()
                };
                let _ = writeln!(
                    out,
                    "{}{series} · {} · {}",
                    plan.scenario,
                    stage_and_time_left(plan, elapsed, now_unix_nanos < run.start_unix_nanos),
                    self.agents(plan)
                );
                let _ = writeln!(out, "{}", time_bar(elapsed, plan.duration));
            }
        }
        let _ = write!(
            out,
            "{:<14} {:>7} {:>10} {:>7} {:>10} {:>10} {:>10}",
            "region", "agents", "rps", "errors", "p50", "p99", "requests"
        );
        match &self.last {
            Some(last) => {
                let _ = write!(
                    out,
                    "   (interval {}{})",
                    last.index,
                    if last.warmup { ", warm-up" } else { "" }
                );
            }
            None => out.push_str("   (no interval closed yet)"),
        }
        for r in &plan.regions {
            let figures = self.last.as_ref().and_then(|l| l.regions.get(&r.name));
            let agents = format!("{}/{}", self.connected_in(&r.name), r.agents);
            let requests = self.requests.get(&r.name).copied().unwrap_or(0);
            out.push('\n');
            out.push_str(&row(&r.name, &agents, figures, requests));
        }
        let agents = format!("{}/{}", self.connected.len(), plan.agents());
        let requests = self.requests.values().sum();
        out.push('\n');
        out.push_str(&row(
            "all",
            &agents,
            self.last.as_ref().map(|l| &l.global),
            requests,
        ));
        out
    }

    /// One log line for a closed interval: where the run is, then each
    /// scope's figures.
    pub fn interval_line(&self, s: &IntervalSnapshot) -> String {
        let mut out = format!(
            "interval {} ({}-{}s)",
            s.index,
            seconds(s.start_s),
            seconds(s.end_s)
        );
        if let Some(plan) = &self.plan {
            let middle = Duration::from_secs_f64(((s.start_s + s.end_s) / 2.0).max(0.0));
            if let Some(stage) = plan.stage_at(middle) {
                let _ = write!(out, " {}", stage.label);
            }
            let left = (plan.duration.as_secs_f64() - s.end_s).max(0.0);
            let _ = write!(out, ", {}s left, {}", seconds(left), self.agents(plan));
        }
        if s.warmup {
            out.push_str(", warm-up (not counted)");
        }
        let _ = write!(out, " | all {}", scope_text(&s.global));
        for (region, f) in self.in_plan_order(&s.regions) {
            let _ = write!(out, " | {region} {}", scope_text(f));
        }
        out
    }
}

/// "steady 600 req/s · 11s left", or "starts in 2s".
fn stage_and_time_left(plan: &RunPlan, elapsed: Duration, before_start: bool) -> String {
    if before_start {
        return "starting".to_owned();
    }
    let left = plan.duration.saturating_sub(elapsed);
    match plan.stage_at(elapsed) {
        // Counted down in whole seconds, rounded up: "0s left" only at the end.
        Some(stage) => format!(
            "{} {} · {}s left",
            stage.label,
            plan.level_unit,
            left.as_secs_f64().ceil()
        ),
        None => "collecting the last reports".to_owned(),
    }
}

/// `[#########.........] 12/30s`.
fn time_bar(elapsed: Duration, duration: Duration) -> String {
    let fraction = if duration.is_zero() {
        1.0
    } else {
        (elapsed.as_secs_f64() / duration.as_secs_f64()).clamp(0.0, 1.0)
    };
    let done = ((fraction * BAR_CELLS as f64).floor() as usize).min(BAR_CELLS);
    format!(
        "[{}{}] {}/{}s",
        "#".repeat(done),
        ".".repeat(BAR_CELLS - done),
        elapsed.min(duration).as_secs(),
        duration.as_secs()
    )
}

fn row(name: &str, agents: &str, f: Option<&ScopeFigures>, requests: u64) -> String {
    let (rps, errors, p50, p99) = match f {
        Some(f) => (
            format!("{:.1}", f.rps),
            f.errors.total.to_string(),
            micros(f.latency.p50),
            micros(f.latency.p99),
        ),
        None => ("-".into(), "-".into(), "-".into(), "-".into()),
    };
    format!("{name:<14} {agents:>7} {rps:>10} {errors:>7} {p50:>10} {p99:>10} {requests:>10}")
}

fn scope_text(f: &ScopeFigures) -> String {
    format!(
        "{:.1} rps, {} errors, p50 {}, p99 {}",
        f.rps,
        f.errors.total,
        micros(f.latency.p50),
        micros(f.latency.p99)
    )
}

/// Seconds with at most one decimal: 3, 2.5.
fn seconds(s: f64) -> String {
    let rounded = (s * 10.0).round() / 10.0;
    if rounded.fract() == 0.0 {
        format!("{rounded:.0}")
    } else {
        format!("{rounded:.1}")
    }
}

#[cfg(test)]
mod tests;
