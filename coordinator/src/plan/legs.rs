//! An agent's load split across the scenario's endpoints: one plan (leg)
//! per endpoint its region sends to, each carrying the agent's load times
//! that endpoint's share over time (routing, failovers). An agent runs its
//! legs side by side; each leg's requests record under their own indices
//! (`request_offset`), so every (agent region, endpoint) pair has its own
//! histograms.

use crate::scenario::topology::Topology;
use stampede_agent::plan::{
    Arrival, ClosedStages, DataOrder, DataSet, GrpcSpec, Leg, LoadPlan, RequestTemplate, Transport,
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
                grpc: plan
                    .grpc
                    .as_ref()
                    .map(|g| grpc_for(g, plan.data.as_ref(), k, parts)),
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
    if !splits(data, parts) {
        return data.clone();
    }
    DataSet {
        columns: data.columns.clone(),
        rows: data.rows.iter().skip(k).step_by(parts).cloned().collect(),
        order: data.order,
    }
}

/// A gRPC call's messages made from rows go with their rows (the agent
/// takes row `i`'s message for row `i`).
fn grpc_for(grpc: &GrpcSpec, data: Option<&DataSet>, k: usize, parts: usize) -> GrpcSpec {
    let mut leg = grpc.clone();
    if data.is_some_and(|d| splits(d, parts)) && !grpc.row_payloads.is_empty() {
        leg.row_payloads = grpc
            .row_payloads
            .iter()
            .skip(k)
            .step_by(parts)
            .cloned()
            .collect();
    }
    leg
}

fn splits(data: &DataSet, parts: usize) -> bool {
    data.order == DataOrder::Once && parts > 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::topology::{Endpoint, Routing};

    fn endpoint(name: &str, port: u16) -> Endpoint {
        Endpoint {
            name: name.into(),
            url: url::Url::parse(&format!("http://127.0.0.1:{port}/")).expect("url"),
            weight: 1.0,
        }
    }

    /// An open-model gRPC plan whose messages are made from four rows read
    /// once.
    fn grpc_plan() -> LoadPlan {
        let rows: Vec<Vec<String>> = (0..4).map(|i| vec![i.to_string()]).collect();
        LoadPlan {
            requests: vec![RequestTemplate::new(
                "POST",
                url::Url::parse("http://127.0.0.1:1/").expect("url"),
            )],
            data: Some(DataSet {
                columns: vec!["id".into()],
                rows,
                order: DataOrder::Once,
            }),
            llm: None,
            grpc: Some(GrpcSpec {
                path: "/p.S/M".into(),
                payload: bytes::Bytes::from_static(b"row 0"),
                row_payloads: (0..4)
                    .map(|i| bytes::Bytes::from(format!("row {i}")))
                    .collect(),
                metadata: vec![("x-stampede-region".into(), "r1".into())],
            }),
            model: WorkloadModel::Open {
                rate: LevelProfile::constant(10.0, Duration::from_secs(2)).expect("profile"),
                connections: 4,
                arrival: Arrival::Constant,
            },
            duration: Duration::from_secs(2),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            graceful_stop: Duration::from_secs(1),
            think_time: None,
            leg: None,
            transport: Transport::default(),
        }
    }

    #[test]
    fn grpc_legs_take_their_endpoint_and_their_rows_messages() {
        let topology = Topology {
            endpoints: vec![endpoint("us", 7001), endpoint("eu", 7002)],
            routing: Routing::Matrix,
            failovers: Vec::new(),
        };
        let plan = grpc_plan();
        let legs = split(&plan, "r1", &topology, &Transport::default(), 1, |e| {
            vec![RequestTemplate::new(
                "POST",
                topology.endpoints[e].url.clone(),
            )]
        });
        assert_eq!(legs.len(), 2);
        let mut payloads = Vec::new();
        for (e, leg) in legs.iter().enumerate() {
            let name = &topology.endpoints[e].name;
            assert_eq!(
                leg.leg,
                Some(Leg {
                    endpoint: name.clone(),
                    request_offset: e as u32,
                })
            );
            assert_eq!(leg.requests[0].url, topology.endpoints[e].url);
            let grpc = leg.grpc.as_ref().expect("a gRPC leg");
            // The region's metadata goes with every leg.
            assert_eq!(grpc.metadata, plan.grpc.as_ref().expect("grpc").metadata);
            let rows = &leg.data.as_ref().expect("rows").rows;
            // Each leg's row i is sent as its message i, and that message
            // is the one made from the row.
            assert_eq!(grpc.row_payloads.len(), rows.len());
            for (row, payload) in rows.iter().zip(&grpc.row_payloads) {
                assert_eq!(payload.as_ref(), format!("row {}", row[0]).as_bytes());
            }
            payloads.extend(grpc.row_payloads.iter().cloned());
        }
        // Every row once over the legs.
        payloads.sort();
        assert_eq!(payloads, plan.grpc.expect("grpc").row_payloads);
    }
}
