//! What a run tells the outside while it goes: [`RunEvent`]s on a
//! broadcast channel, for the live terminal view ([`crate::live`]) and the
//! Prometheus endpoint ([`crate::metrics`]).
//!
//! The run actor sends them and never waits: a receiver that falls behind
//! skips events (it sees `Lagged`), it cannot slow the run. Figures are
//! computed once per interval close, where the actor already logs them.

use crate::merge::{ClosedInterval, Totals};
use crate::report::build::{error_counts, latency_summary, named_grpc_codes, named_status_codes};
use crate::report::model::{ErrorCounts, LatencySummary, RunReport};
use crate::scenario::{Model, PhaseKind, Scenario};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use uuid::Uuid;

/// Events a receiver may fall behind by before it skips some.
pub const EVENT_CAPACITY: usize = 1024;

pub type EventSender = broadcast::Sender<RunEvent>;
pub type EventReceiver = broadcast::Receiver<RunEvent>;

/// A new event channel; subscribe more receivers with
/// [`broadcast::Sender::subscribe`] before the run starts.
pub fn channel() -> (EventSender, EventReceiver) {
    broadcast::channel(EVENT_CAPACITY)
}

#[derive(Debug, Clone)]
pub enum RunEvent {
    /// The coordinator waits for the agents a run needs.
    Waiting(Arc<RunPlan>),
    /// An agent joined (registered and was admitted).
    AgentJoined { agent: Uuid, region: String },
    /// An agent's session ended, or it was given up on.
    AgentLeft { agent: Uuid, region: String },
    /// Every agent accepted; the run starts at a common time.
    Starting(Arc<RunStart>),
    /// An interval closed: every agent that could report it has.
    IntervalClosed(Arc<IntervalSnapshot>),
    /// The run ended and its report is built.
    Finished(Arc<RunReport>),
}

/// What a run will do: its regions, length and stages.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPlan {
    pub scenario: String,
    pub regions: Vec<RegionPlan>,
    /// The whole run, warm-up included.
    pub duration: Duration,
    pub interval: Duration,
    /// Requests/s (open model) or connections (closed model): the unit of
    /// the stages' levels.
    pub level_unit: &'static str,
    pub stages: Vec<StagePlan>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RegionPlan {
    pub name: String,
    /// Agents the region waits for.
    pub agents: u32,
}

/// One phase of the run's load, placed in time.
#[derive(Debug, Clone, PartialEq)]
pub struct StagePlan {
    /// e.g. `ramp 100→1000`.
    pub label: String,
    /// `warmup`, `ramp`, `steady`, `spike`, `recover` or `step`.
    pub kind: &'static str,
    /// From the run's start.
    pub start: Duration,
    pub end: Duration,
    /// The level at its start and end.
    pub from: f64,
    pub to: f64,
}

impl RunPlan {
    pub fn of(scenario: &Scenario) -> Self {
        let mut at = Duration::ZERO;
        let stages = scenario
            .load
            .phases
            .iter()
            .map(|p| {
                let start = at;
                at += p.duration;
                StagePlan {
                    label: p.label(),
                    kind: p.kind.as_str(),
                    start,
                    end: at,
                    from: p.from,
                    to: p.to,
                }
            })
            .collect();
        Self {
            scenario: scenario.name.clone(),
            regions: scenario
                .regions
                .iter()
                .map(|r| RegionPlan {
                    name: r.name.clone(),
                    agents: r.agents,
                })
                .collect(),
            duration: scenario.load.duration,
            interval: scenario.load.interval,
            level_unit: match scenario.load.model {
                Model::Open { .. } => "req/s",
                Model::Closed => "connections",
            },
            stages,
        }
    }

    /// Agents the run waits for, in all regions.
    pub fn agents(&self) -> u32 {
        self.regions.iter().map(|r| r.agents).sum()
    }

    /// The stage running `elapsed` into the run (`None` before the start and
    /// after the end).
    pub fn stage_at(&self, elapsed: Duration) -> Option<&StagePlan> {
        self.stages
            .iter()
            .find(|s| s.start <= elapsed && elapsed < s.end)
    }

    /// The scenario's load level `elapsed` into the run (linear within a
    /// stage), in [`RunPlan::level_unit`].
    pub fn level_at(&self, elapsed: Duration) -> Option<f64> {
        let s = self.stage_at(elapsed)?;
        let length = (s.end - s.start).as_secs_f64();
        let into = (elapsed - s.start).as_secs_f64();
        Some(if length > 0.0 {
            s.from + (s.to - s.from) * into / length
        } else {
            s.to
        })
    }

    /// The warm-up at the start of the run.
    pub fn warmup(&self) -> Duration {
        self.stages
            .iter()
            .take_while(|s| s.kind == PhaseKind::Warmup.as_str())
            .map(|s| s.end - s.start)
            .sum()
    }
}

/// A run that is starting.
#[derive(Debug, Clone, PartialEq)]
pub struct RunStart {
    pub run_id: String,
    pub plan: Arc<RunPlan>,
    /// When interval 0 starts, wall clock.
    pub start_unix_nanos: i64,
    /// 1-based position in its series, and the series' length (1 for a
    /// single run).
    pub run: u32,
    pub runs: u32,
    /// Every agent of the run, with its region.
    pub agents: Vec<(Uuid, String)>,
}

/// One closed interval's figures, globally and per region.
#[derive(Debug, Clone, PartialEq)]
pub struct IntervalSnapshot {
    pub run_id: String,
    pub index: u32,
    /// Seconds from the run's start.
    pub start_s: f64,
    pub end_s: f64,
    /// Part of the warm-up: shown, but not in the run's totals.
    pub warmup: bool,
    pub global: ScopeFigures,
    pub regions: BTreeMap<String, ScopeFigures>,
    /// The interval's merged latency histogram, all regions (V2 deflate):
    /// what the run history keeps of it as it closes.
    pub global_latency_histogram: Vec<u8>,
}

/// What one scope did in one interval.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScopeFigures {
    /// Completed: successes plus failures.
    pub requests: u64,
    pub successes: u64,
    pub errors: ErrorCounts,
    /// Completed requests per second of the interval.
    pub rps: f64,
    /// Latency of successful requests, µs, from the merged histogram.
    pub latency: LatencySummary,
    /// Connections the agents opened to the target.
    pub new_connections: u64,
    /// Responses by HTTP status code ("200"), as the report names them.
    pub status_codes: BTreeMap<String, u64>,
    /// gRPC calls by status ("OK", "UNAVAILABLE"), as the report names them.
    pub grpc_codes: BTreeMap<String, u64>,
}

impl ScopeFigures {
    /// `seconds`: the interval's length, as the report divides by it.
    pub fn of(t: &Totals, seconds: f64) -> Self {
        let o = &t.outcomes;
        Self {
            requests: o.completed(),
            successes: o.success,
            errors: error_counts(o),
            rps: o.completed() as f64 / seconds,
            latency: latency_summary(&t.latency),
            new_connections: t.new_connections,
            status_codes: named_status_codes(t),
            grpc_codes: named_grpc_codes(t),
        }
    }
}

impl IntervalSnapshot {
    /// Decodes the closed interval's global histograms once and summarizes
    /// them; the regions are left for [`IntervalSnapshot::with_regions`].
    pub fn of(run_id: &str, closed: &ClosedInterval, start_unix_nanos: i64, warmup: bool) -> Self {
        Self {
            run_id: run_id.to_owned(),
            index: closed.index,
            start_s: (closed.start_unix_nanos - start_unix_nanos) as f64 / 1e9,
            end_s: (closed.end_unix_nanos - start_unix_nanos) as f64 / 1e9,
            warmup,
            global: ScopeFigures::of(&closed.global.unseal(), seconds(closed)),
            regions: BTreeMap::new(),
            global_latency_histogram: closed.global.latency_encoded().to_vec(),
        }
    }

    /// Adds each region's figures (decoding its histograms once).
    pub fn with_regions(mut self, closed: &ClosedInterval) -> Self {
        let seconds = seconds(closed);
        self.regions = closed
            .regions
            .iter()
            .map(|(name, sealed)| (name.clone(), ScopeFigures::of(&sealed.unseal(), seconds)))
            .collect();
        self
    }
}

/// The interval's length: the same the report divides by
/// (`build::interval_figures`).
fn seconds(closed: &ClosedInterval) -> f64 {
    (closed.end_unix_nanos - closed.start_unix_nanos).max(1) as f64 / 1e9
}

/// Where the run actor sends events: nowhere, unless a sender was given.
#[derive(Debug, Clone, Default)]
pub struct Events(Option<EventSender>);

impl Events {
    pub fn new(sender: Option<EventSender>) -> Self {
        Self(sender)
    }

    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// Sends the event `make` builds; builds nothing without a sender. No
    /// receiver is not an error: nobody is watching.
    pub fn send(&self, make: impl FnOnce() -> RunEvent) {
        if let Some(sender) = &self.0 {
            let _ = sender.send(make());
        }
    }
}

#[cfg(test)]
pub(crate) mod fixture;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{Load, Phase};

    fn plan(phases: Vec<Phase>) -> RunPlan {
        let duration = phases.iter().map(|p| p.duration).sum();
        let mut load = Load::constant(
            Model::Open {
                rate: 100.0,
                arrival: crate::scenario::Arrival::Constant,
            },
            10,
            duration,
        );
        load.phases = phases;
        let scenario = crate::demo::scenario(&crate::demo::DemoOptions::default(), 9);
        RunPlan::of(&Scenario { load, ..scenario })
    }

    fn phase(kind: PhaseKind, secs: u64, from: f64, to: f64) -> Phase {
        Phase {
            kind,
            stage: 0,
            duration: Duration::from_secs(secs),
            from,
            to,
        }
    }

    #[test]
    fn stages_are_placed_in_time_and_levels_interpolated() {
        let p = plan(vec![
            phase(PhaseKind::Warmup, 2, 50.0, 50.0),
            phase(PhaseKind::Ramp, 4, 100.0, 500.0),
            phase(PhaseKind::Steady, 4, 500.0, 500.0),
        ]);
        assert_eq!(p.warmup(), Duration::from_secs(2));
        assert_eq!(p.duration, Duration::from_secs(10));
        assert_eq!(p.level_unit, "req/s");
        assert_eq!(p.agents(), 3);
        let at = |ms| Duration::from_millis(ms);
        assert_eq!(p.stage_at(at(0)).map(|s| s.kind), Some("warmup"));
        assert_eq!(
            p.stage_at(at(2000)).map(|s| s.label.as_str()),
            Some("ramp 100→500")
        );
        assert_eq!(p.level_at(at(4000)), Some(300.0));
        assert_eq!(p.stage_at(at(9999)).map(|s| s.kind), Some("steady"));
        assert_eq!(p.stage_at(at(10_000)), None, "after the end");
        assert_eq!(p.level_at(at(10_000)), None);
    }

    #[test]
    fn no_sender_builds_no_event() {
        let events = Events::default();
        assert!(!events.is_on());
        events.send(|| unreachable!("built without a sender"));
        let (tx, mut rx) = channel();
        let events = Events::new(Some(tx));
        events.send(|| RunEvent::AgentJoined {
            agent: Uuid::nil(),
            region: "r".into(),
        });
        assert!(matches!(rx.try_recv(), Ok(RunEvent::AgentJoined { .. })));
    }
}
