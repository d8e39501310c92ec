//! An agent's load split across the scenario's endpoints: one plan (leg)
//! per endpoint its region sends to, each carrying the agent's load times
//! that endpoint's share over time (routing, failovers). An agent runs its
//! legs side by side; each leg's requests record under their own indices
//! (`request_offset`), so every (agent region, endpoint) pair has its own
//! histograms.

use crate::scenario::topology::Topology;
use stampede_agent::plan::{
    Arrival, ClosedStages, DataOrder, DataSet, Leg, LoadPlan, RequestTemplate, Transport,
    WorkloadModel,
};
use stampede_agent::profile::LevelProfile;
use std::time::Duration;

/// `plan`: the agent's whole load (as without endpoints). `requests(e)`: the
/// mix resolved against endpoint `e`'s URL. `mix_len`: requests in the mix;
/// endpoint `e`'s requests record from `e × mix_len`.
/// `transport`: the scenario's (a leg has TLS exactly when its endpoint's
/// URL is https).
pub fn split(
    plan: &LoadPlan,
    region: &str,
    topology: &Topology,
    transport: &Transport,
    mix_len: u32,
    requests: impl Fn(usize) -> Vec<RequestTemplate>,
) -> Vec<LoadPlan> {
    let periods = topology.periods(region, plan.duration);
    let used: Vec<usize> = (0..topology.endpoints.len())
        .filter(|&e| periods.iter().any(|p| p.shares[e] > 0.0))
        .collect();
    let parts = used.len();
    used.iter()
        .enumerate()
        .filter_map(|(k, &e)| {
            let windows: Vec<(Duration, Duration, f64)> = periods
                .iter()
                .filter(|p| p.shares[e] > 0.0)
                .map(|p| (p.start, p.end, p.shares[e]))
                .collect();
            let model = match &plan.model {
                WorkloadModel::Open {
                    rate,
                    connections,
                    arrival,
                } => {
                    let peak_share = windows.iter().map(|w| w.2).fold(0.0, f64::max);
                    WorkloadModel::Open {
                        rate: rate.windowed(&windows),
                        // A pool big enough for the leg's busiest share.
                        connections: ((f64::from(*connections) * peak_share).ceil() as u32).max(1),
                        // Each leg its own Poisson stream.
                        arrival: match *arrival {
                            Arrival::Constant => Arrival::Constant,
                            Arrival::Poisson { seed } => Arrival::Poisson {
                                seed: seed ^ 0xd6e8_feb8_6659_fd93u64.wrapping_mul(e as u64 + 1),
                            },
                        },
                    }
                }
                WorkloadModel::Closed {
                    connections,
                    stages: None,
                } => {
                    // The agent's connections split by share in each period:
                    // a step profile of this leg's busy connections.
                    let steps: Vec<(Duration, Duration, f64)> = periods
                        .iter()
                        .map(|p| {
                            let mine =
                                super::apportion(*connections, &p.shares, &vec![0; p.shares.len()])
                                    [e];
                            (p.start, p.end, f64::from(mine))
                        })
                        .collect();
                    let peak = steps.iter().map(|s| s.2).fold(0.0, f64::max) as u32;
                    if peak == 0 {
                        return None;
                    }
                    let one = LevelProfile::constant(1.0, plan.duration).ok()?;
                    WorkloadModel::Closed {
                        connections: peak,
                        stages: Some(ClosedStages {
                            concurrency: one.windowed(&steps),
                            slots: (0..peak).collect(),
                        }),
                    }
                }
                // Refused when the scenario is checked.
                WorkloadModel::Closed {
                    stages: Some(_), ..
                } => return None,
            };
            let mut leg_transport = transport.clone();
            leg_transport.tls = match topology.endpoints[e].url.scheme() {
                "https" => Some(transport.tls.clone().unwrap_or_default()),
                _ => None,
            };
            Some(LoadPlan {
                transport: leg_transport,
                requests: requests(e),
                data: plan.data.as_ref().map(|d| rows_for(d, k, parts)),
                model,
                leg: Some(Leg {
                    endpoint: topology.endpoints[e].name.clone(),
                    request_offset: e as u32 * mix_len,
                }),
                ..plan.clone()
            })
        })
        .collect()
}

/// Rows read once are split between the legs; rows that repeat are shared.
fn rows_for(data: &DataSet, k: usize, parts: usize) -> DataSet {
    if data.order != DataOrder::Once || parts <= 1 {
        return data.clone();
    }
    DataSet {
        columns: data.columns.clone(),
        rows: data.rows.iter().skip(k).step_by(parts).cloned().collect(),
        order: data.order,
    }
}
