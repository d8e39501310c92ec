//! The run API's JSON: what a client submits, and the events a watcher is
//! streamed (one JSON object per line). These are the wire types of the
//! HTTP facade; [`RunEvent`] is converted to and from them here, at the
//! edge, so a remote `stampede run` feeds the same live view a local run
//! does.

use crate::events::{
    IntervalSnapshot, RegionPlan, RunEvent, RunPlan, RunStart, ScopeFigures, StagePlan,
};
use crate::report::model::{ErrorCounts, LatencySummary, RunReport};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// `POST /api/v1/runs`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SubmitRun {
    /// The scenario file's name on the client (its extension gives the
    /// format; errors name it).
    pub scenario_file: String,
    /// The scenario file's text.
    pub scenario_text: String,
    /// Free-form labels, e.g. `branch=main`.
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default)]
    pub git_sha: Option<String>,
}

/// An error answer: `{"error": "…"}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorBody {
    pub error: String,
}

/// One line of `GET /api/v1/runs/{id}/events`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WireEvent {
    Waiting { plan: WirePlan },
    AgentJoined { agent: Uuid, region: String },
    AgentLeft { agent: Uuid, region: String },
    Starting(WireStart),
    IntervalClosed(WireInterval),
    Finished { report: Box<RunReport> },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WirePlan {
    pub scenario: String,
    /// Region name and the agents it waits for.
    pub regions: Vec<(String, u32)>,
    pub duration_ms: u64,
    pub interval_ms: u64,
    pub level_unit: String,
    pub stages: Vec<WireStage>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WireStage {
    pub label: String,
    pub kind: String,
    pub start_ms: u64,
    pub end_ms: u64,
    pub from: f64,
    pub to: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WireStart {
    pub run_id: String,
    pub plan: WirePlan,
    pub start_unix_nanos: i64,
    pub run: u32,
    pub runs: u32,
    pub agents: Vec<(Uuid, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WireInterval {
    pub run_id: String,
    pub index: u32,
    pub start_s: f64,
    pub end_s: f64,
    pub warmup: bool,
    pub global: WireFigures,
    pub regions: BTreeMap<String, WireFigures>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WireFigures {
    pub requests: u64,
    pub successes: u64,
    pub errors: ErrorCounts,
    pub rps: f64,
    pub latency_us: LatencySummary,
    #[serde(default)]
    pub new_connections: u64,
    #[serde(default)]
    pub status_codes: BTreeMap<String, u64>,
    #[serde(default)]
    pub grpc_codes: BTreeMap<String, u64>,
}

impl From<&ScopeFigures> for WireFigures {
    fn from(f: &ScopeFigures) -> Self {
        Self {
            requests: f.requests,
            successes: f.successes,
            errors: f.errors,
            rps: f.rps,
            latency_us: f.latency,
            new_connections: f.new_connections,
            status_codes: f.status_codes.clone(),
            grpc_codes: f.grpc_codes.clone(),
        }
    }
}

impl From<WireFigures> for ScopeFigures {
    fn from(f: WireFigures) -> Self {
        Self {
            requests: f.requests,
            successes: f.successes,
            errors: f.errors,
            rps: f.rps,
            latency: f.latency_us,
            new_connections: f.new_connections,
            status_codes: f.status_codes,
            grpc_codes: f.grpc_codes,
        }
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis() as u64
}

impl From<&RunPlan> for WirePlan {
    fn from(p: &RunPlan) -> Self {
        Self {
            scenario: p.scenario.clone(),
            regions: p
                .regions
                .iter()
                .map(|r| (r.name.clone(), r.agents))
                .collect(),
            duration_ms: millis(p.duration),
            interval_ms: millis(p.interval),
            level_unit: p.level_unit.to_owned(),
            stages: p
                .stages
                .iter()
                .map(|s| WireStage {
                    label: s.label.clone(),
                    kind: s.kind.to_owned(),
                    start_ms: millis(s.start),
                    end_ms: millis(s.end),
                    from: s.from,
                    to: s.to,
                })
                .collect(),
        }
    }
}

/// The plan's fixed words, back from the wire (an unknown one reads as the
/// nearest plain word rather than failing the view).
fn known(word: &str, words: &[&'static str]) -> &'static str {
    words
        .iter()
        .copied()
        .find(|w| *w == word)
        .unwrap_or(words[0])
}

impl From<WirePlan> for RunPlan {
    fn from(p: WirePlan) -> Self {
        Self {
            scenario: p.scenario,
            regions: p
                .regions
                .into_iter()
                .map(|(name, agents)| RegionPlan { name, agents })
                .collect(),
            duration: Duration::from_millis(p.duration_ms),
            interval: Duration::from_millis(p.interval_ms),
            level_unit: known(&p.level_unit, &["req/s", "connections"]),
            stages: p
                .stages
                .into_iter()
                .map(|s| StagePlan {
                    label: s.label,
                    kind: known(
                        &s.kind,
                        &["steady", "warmup", "ramp", "spike", "recover", "step"],
                    ),
                    start: Duration::from_millis(s.start_ms),
                    end: Duration::from_millis(s.end_ms),
                    from: s.from,
                    to: s.to,
                })
                .collect(),
        }
    }
}

impl From<&RunEvent> for WireEvent {
    fn from(event: &RunEvent) -> Self {
        match event {
            RunEvent::Waiting(plan) => Self::Waiting {
                plan: plan.as_ref().into(),
            },
            RunEvent::AgentJoined { agent, region } => Self::AgentJoined {
                agent: *agent,
                region: region.clone(),
            },
            RunEvent::AgentLeft { agent, region } => Self::AgentLeft {
                agent: *agent,
                region: region.clone(),
            },
            RunEvent::Starting(s) => Self::Starting(WireStart {
                run_id: s.run_id.clone(),
                plan: s.plan.as_ref().into(),
                start_unix_nanos: s.start_unix_nanos,
                run: s.run,
                runs: s.runs,
                agents: s.agents.clone(),
            }),
            RunEvent::IntervalClosed(i) => Self::IntervalClosed(WireInterval {
                run_id: i.run_id.clone(),
                index: i.index,
                start_s: i.start_s,
                end_s: i.end_s,
                warmup: i.warmup,
                global: (&i.global).into(),
                regions: i
                    .regions
                    .iter()
                    .map(|(k, v)| (k.clone(), v.into()))
                    .collect(),
            }),
            RunEvent::Finished(report) => Self::Finished {
                report: Box::new(report.as_ref().clone()),
            },
        }
    }
}

impl From<WireEvent> for RunEvent {
    fn from(event: WireEvent) -> Self {
        match event {
            WireEvent::Waiting { plan } => Self::Waiting(Arc::new(plan.into())),
            WireEvent::AgentJoined { agent, region } => Self::AgentJoined { agent, region },
            WireEvent::AgentLeft { agent, region } => Self::AgentLeft { agent, region },
            WireEvent::Starting(s) => Self::Starting(Arc::new(RunStart {
                run_id: s.run_id,
                plan: Arc::new(s.plan.into()),
                start_unix_nanos: s.start_unix_nanos,
                run: s.run,
                runs: s.runs,
                agents: s.agents,
            })),
            WireEvent::IntervalClosed(i) => Self::IntervalClosed(Arc::new(IntervalSnapshot {
                run_id: i.run_id,
                index: i.index,
                start_s: i.start_s,
                end_s: i.end_s,
                warmup: i.warmup,
                global: i.global.into(),
                regions: i.regions.into_iter().map(|(k, v)| (k, v.into())).collect(),
                // The histogram stays on the coordinator (in its history).
                global_latency_histogram: Vec::new(),
            })),
            WireEvent::Finished { report } => Self::Finished(Arc::new(*report)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::fixture;

    #[test]
    fn events_survive_the_wire() {
        let events = [
            RunEvent::Waiting(fixture::plan()),
            fixture::joined(7, "us-east"),
            RunEvent::Starting(fixture::start()),
            fixture::interval(
                3,
                false,
                fixture::figures(100, 2, 1_000, 5_000),
                fixture::figures(50, 0, 2_000, 9_000),
            ),
        ];
        for event in &events {
            let line = serde_json::to_string(&WireEvent::from(event)).expect("json");
            let back: WireEvent = serde_json::from_str(&line).expect("parses");
            let back = RunEvent::from(back);
            assert_eq!(format!("{back:?}"), format!("{event:?}"), "{line}");
        }
    }
}
