//! How load is split across regions and agents: a pure function from a
//! scenario and the registered agents to one [`LoadPlan`] per agent.
//!
//! Each region gets its explicit rate, or a weighted share of what remains;
//! agents within a region share it equally. Connections (integers) are
//! apportioned by largest remainder, so the sums are exact: the agents'
//! connections add up to the scenario's, and their rates to its rate.

use crate::scenario::{Arrival, Model, Scenario, Share, data, stages};
use stampede_agent::plan::{
    Arrival as AgentArrival, ClosedStages, DataSet, LoadPlan, RequestTemplate, WorkloadModel,
};
use stampede_agent::wire::split_url;
use std::collections::BTreeMap;
use uuid::Uuid;

/// gRPC metadata naming the agent's region (the built-in target's
/// `--region-delay` reads it, as it reads the HTTP header of that name).
pub const REGION_METADATA: &str = "x-stampede-region";

/// One agent's part of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentAssignment {
    pub agent_id: Uuid,
    pub region: String,
    /// The agent's whole share of the load.
    pub plan: LoadPlan,
    /// What it is sent: `plan` itself, or, when the scenario has endpoints,
    /// one plan per endpoint its region sends to (see [`legs`]).
    pub legs: Vec<LoadPlan>,
}

pub mod legs;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("region {0:?} has no agents")]
    EmptyRegion(String),
    #[error("agent {agent} is in region {region:?}, which the scenario does not list")]
    UnknownRegion { agent: Uuid, region: String },
    #[error("a request's URL: {0}")]
    Request(String),
    #[error("{connections} connections cannot give each of the {agents} agents one")]
    TooFewConnections { connections: u32, agents: usize },
}

/// Each region's share of the load, as a fraction of the whole (sums to 1).
pub fn region_fractions(scenario: &Scenario) -> BTreeMap<String, f64> {
    let weight_sum: f64 = scenario
        .regions
        .iter()
        .filter_map(|r| match r.share {
            Share::Weight(w) => Some(w),
            Share::Rate(_) => None,
        })
        .sum();
    let explicit: f64 = scenario
        .regions
        .iter()
        .filter_map(|r| match r.share {
            Share::Rate(rate) => Some(rate),
            Share::Weight(_) => None,
        })
        .sum();
    let total_rate = match scenario.load.model {
        Model::Open { rate, .. } => rate,
        Model::Closed => 0.0,
    };
    scenario
        .regions
        .iter()
        .map(|r| {
            let fraction = match r.share {
                Share::Rate(rate) => rate / total_rate,
                Share::Weight(w) if total_rate > 0.0 => {
                    (total_rate - explicit) / total_rate * w / weight_sum
                }
                Share::Weight(w) => w / weight_sum,
            };
            (r.name.clone(), fraction)
        })
        .collect()
}

/// Splits the scenario over `agents` (id, region). Agents are assigned in
/// the order given within each region.
pub fn plan(
    scenario: &Scenario,
    agents: &[(Uuid, String)],
) -> Result<Vec<AgentAssignment>, PlanError> {
    if scenario
        .target
        .transport
        .tls
        .as_ref()
        .is_some_and(|t| t.insecure)
    {
        tracing::warn!(
            "TLS to the target is INSECURE: agents will NOT verify its certificate (target.tls.insecure: true)"
        );
    }
    let mut by_region: BTreeMap<&str, Vec<Uuid>> = BTreeMap::new();
    for (id, region) in agents {
        if scenario.region(region).is_none() {
            return Err(PlanError::UnknownRegion {
                agent: *id,
                region: region.clone(),
            });
        }
        by_region.entry(region.as_str()).or_default().push(*id);
    }
    if (scenario.load.connections as usize) < agents.len() {
        return Err(PlanError::TooFewConnections {
            connections: scenario.load.connections,
            agents: agents.len(),
        });
    }
    let fractions = region_fractions(scenario);
    let mut weights = Vec::new();
    let mut minimums = Vec::new();
    for region in &scenario.regions {
        let ids = by_region
            .get(region.name.as_str())
            .ok_or_else(|| PlanError::EmptyRegion(region.name.clone()))?;
        weights.push(fractions[&region.name]);
        minimums.push(ids.len() as u32);
    }
    let region_connections = apportion(scenario.load.connections, &weights, &minimums);

    // Every agent's connections, in one order across regions: closed-model
    // stages deal the cluster's connection slots out of this.
    let mut counts = Vec::with_capacity(agents.len());
    for (region, connections) in scenario.regions.iter().zip(&region_connections) {
        let n = by_region[region.name.as_str()].len();
        counts.extend(apportion(*connections, &vec![1.0; n], &vec![1; n]));
    }
    let mut slots = match scenario.load.model {
        Model::Closed if scenario.load.staged => deal_slots(&counts),
        _ => vec![Vec::new(); counts.len()],
    }
    .into_iter();
    let mut counts = counts.into_iter();
    // The cluster's level over time; agents get it scaled (rates) or their
    // slots in it (connections).
    let profile = stages::profile(&scenario.load.phases);
    let mix = scenario.effective_requests();
    // Each agent's rows of the data, in the same agent order.
    let mut parts = scenario
        .data
        .as_ref()
        .map(|d| data::partition(d, agents.len()))
        .unwrap_or_default()
        .into_iter();
    // gRPC payloads made per data row go with their rows.
    let mut payload_parts = scenario
        .data
        .as_ref()
        .map(|d| data::partition_indices(d, agents.len()))
        .unwrap_or_default()
        .into_iter();

    let mut out = Vec::with_capacity(agents.len());
    for region in &scenario.regions {
        let ids = &by_region[region.name.as_str()];
        // The mix, resolved against this region's URL.
        let base = scenario.target.url_for(&region.name);
        let requests = resolve_mix(&mix, base)?;
        // With endpoints: the mix against each endpoint's URL.
        let endpoint_requests = match &scenario.topology {
            Some(t) => t
                .endpoints
                .iter()
                .map(|e| resolve_mix(&mix, &e.url))
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        // TLS exactly when this region's URL is https (the public roots when
        // the scenario has no `tls:` section).
        let mut transport = scenario.target.transport.clone();
        transport.tls = match requests.first().map(|r| r.url.scheme()) {
            Some("https") => Some(transport.tls.unwrap_or_default()),
            _ => None,
        };
        for (position, id) in ids.iter().enumerate() {
            let connections = counts.next().unwrap_or(1);
            let agent_slots = slots.next().unwrap_or_default();
            let model = match scenario.load.model {
                Model::Closed => WorkloadModel::Closed {
                    connections,
                    stages: scenario.load.staged.then(|| ClosedStages {
                        concurrency: profile.clone(),
                        slots: agent_slots,
                    }),
                },
                Model::Open { arrival, .. } => WorkloadModel::Open {
                    rate: profile.scaled(fractions[&region.name] / ids.len() as f64),
                    connections,
                    arrival: match arrival {
                        Arrival::Constant => AgentArrival::Constant,
                        // Each agent its own stream: the scenario's seed mixed
                        // with the agent's place (region, position in it).
                        Arrival::Poisson { seed } => AgentArrival::Poisson {
                            seed: agent_seed(seed, &region.name, position),
                        },
                    },
                },
            };
            let mut assignment = AgentAssignment {
                agent_id: *id,
                region: region.name.clone(),
                legs: Vec::new(),
                plan: LoadPlan {
                    llm: scenario.llm,
                    // The target learns the caller's region from metadata,
                    // as an HTTP target does from a header.
                    grpc: scenario.grpc.as_ref().map(|g| {
                        let rows = payload_parts.next().unwrap_or_default();
                        let mut g = g.clone();
                        if !g.row_payloads.is_empty() {
                            g.row_payloads = rows
                                .into_iter()
                                .filter_map(|i| g.row_payloads.get(i).cloned())
                                .collect();
                        }
                        g.metadata
                            .push((REGION_METADATA.to_owned(), region.name.clone()));
                        g
                    }),
                    requests: requests.clone(),
                    data: match (&scenario.data, parts.next()) {
                        (Some(d), Some(rows)) => Some(DataSet {
                            columns: d.columns.clone(),
                            rows,
                            order: d.order,
                        }),
                        _ => None,
                    },
                    model,
                    duration: scenario.load.duration,
                    interval: scenario.load.interval,
                    timeout: scenario.target.timeout,
                    graceful_stop: scenario.load.graceful_stop,
                    think_time: scenario.load.think_time,
                    leg: None,
                    transport: transport.clone(),
                },
            };
            assignment.legs = match &scenario.topology {
                Some(t) => legs::split(
                    &assignment.plan,
                    &region.name,
                    t,
                    &scenario.target.transport,
                    mix.len() as u32,
                    |e| endpoint_requests[e].clone(),
                ),
                None => vec![assignment.plan.clone()],
            };
            out.push(assignment);
        }
    }
    Ok(out)
}

/// The mix's requests, resolved against `base` (the region's or an
/// endpoint's URL).
fn resolve_mix(
    mix: &[crate::scenario::NamedRequest],
    base: &url::Url,
) -> Result<Vec<RequestTemplate>, PlanError> {
    mix.iter()
        .map(|r| {
            let raw = r.url.resolve(base);
            let (url, target) = split_url(&raw).map_err(PlanError::Request)?;
            Ok(RequestTemplate {
                name: r.name.clone(),
                weight: r.weight,
                method: r.method.clone(),
                url,
                target,
                headers: r.headers.clone(),
                body: r.body.clone(),
                timeout: r.timeout,
            })
        })
        .collect()
}

/// Deals the cluster's connection slots `0..sum(counts)` to agents so that
/// agent `a` gets `counts[a]` of them, spread evenly through the order
/// (smooth weighted round-robin). Slot `j` is busy while the concurrency
/// exceeds `j`, so at any level each agent's busy share stays within about
/// one connection of its weight, and the busy slots add up exactly.
pub fn deal_slots(counts: &[u32]) -> Vec<Vec<u32>> {
    let total: i64 = counts.iter().map(|&c| i64::from(c)).sum();
    let mut credit = vec![0i64; counts.len()];
    let mut slots: Vec<Vec<u32>> = counts
        .iter()
        .map(|&c| Vec::with_capacity(c as usize))
        .collect();
    for slot in 0..total {
        for (credit, &count) in credit.iter_mut().zip(counts) {
            *credit += i64::from(count);
        }
        // The first agent with the most credit (ties: earliest).
        let mut pick = 0;
        for (a, &c) in credit.iter().enumerate() {
            if c > credit[pick] {
                pick = a;
            }
        }
        credit[pick] -= total;
        slots[pick].push(slot as u32);
    }
    slots
}

/// A per-agent seed: stable for the same scenario seed and agent place, so
/// a Poisson run can be repeated.
fn agent_seed(seed: u64, region: &str, position: usize) -> u64 {
    // FNV-1a over the region name and position, folded into the seed.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in region.bytes().chain((position as u64).to_le_bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    seed ^ h
}

/// Splits `total` into integers proportional to `weights`, each at least its
/// minimum, summing exactly to `total` (largest-remainder method). The
/// caller guarantees `sum(minimums) <= total`.
pub fn apportion(total: u32, weights: &[f64], minimums: &[u32]) -> Vec<u32> {
    let weight_sum: f64 = weights.iter().sum();
    let ideal: Vec<f64> = weights
        .iter()
        .map(|w| {
            if weight_sum > 0.0 {
                f64::from(total) * w / weight_sum
            } else {
                0.0
            }
        })
        .collect();
    let mut alloc: Vec<u32> = ideal
        .iter()
        .zip(minimums)
        .map(|(i, m)| (i.floor() as u32).max(*m))
        .collect();
    let mut assigned: u32 = alloc.iter().sum();
    // Under: give the rest to the largest shortfalls.
    while assigned < total {
        let i = (0..alloc.len())
            .max_by(|&a, &b| {
                (ideal[a] - f64::from(alloc[a])).total_cmp(&(ideal[b] - f64::from(alloc[b])))
            })
            .unwrap_or(0);
        alloc[i] += 1;
        assigned += 1;
    }
    // Over (minimums pushed us past): take from the largest surpluses.
    while assigned > total {
        let Some(i) = (0..alloc.len())
            .filter(|&i| alloc[i] > minimums[i])
            .max_by(|&a, &b| {
                (f64::from(alloc[a]) - ideal[a]).total_cmp(&(f64::from(alloc[b]) - ideal[b]))
            })
        else {
            break;
        };
        alloc[i] -= 1;
        assigned -= 1;
    }
    alloc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{Load, RegionSpec, Target};
    use proptest::prelude::*;
    use std::time::Duration;

    fn scenario(model: Model, connections: u32, regions: Vec<(&str, u32, Share)>) -> Scenario {
        Scenario {
            name: "t".into(),
            target: Target {
                method: "GET".into(),
                url: url::Url::parse("http://127.0.0.1:1/").expect("url"),
                headers: vec![],
                body: vec![],
                timeout: Duration::from_secs(1),
                region_urls: BTreeMap::from([(
                    "b".to_owned(),
                    url::Url::parse("http://127.0.0.1:2/").expect("url"),
                )]),
                transport: Default::default(),
            },
            load: Load {
                model,
                connections,
                duration: Duration::from_secs(1),
                interval: Duration::from_secs(1),
                graceful_stop: Duration::from_secs(1),
                think_time: None,
                phases: crate::scenario::stages::steady(
                    match model {
                        Model::Open { rate, .. } => rate,
                        Model::Closed => f64::from(connections),
                    },
                    Duration::from_secs(1),
                ),
                staged: false,
            },
            regions: regions
                .into_iter()
                .map(|(name, agents, share)| RegionSpec {
                    name: name.into(),
                    agents,
                    share,
                })
                .collect(),
            start_delay: Duration::from_secs(1),
            agent_wait_timeout: Duration::from_secs(1),
            faults: Default::default(),
            topology: None,
            thresholds: vec![],
            requests: vec![],
            data: None,
            repeat: 1,
            llm: None,
            grpc: None,
            search: None,
            cost: None,
        }
    }

    fn agents(spec: &[(&str, u32)]) -> Vec<(Uuid, String)> {
        spec.iter()
            .flat_map(|(r, n)| (0..*n).map(move |_| (Uuid::new_v4(), r.to_string())))
            .collect()
    }

    #[test]
    fn splits_rates_by_weight_and_explicit_rate() {
        let s = scenario(
            Model::Open {
                rate: 1000.0,
                arrival: Arrival::Constant,
            },
            20,
            vec![
                ("a", 2, Share::Weight(3.0)),
                ("b", 1, Share::Weight(1.0)),
                ("c", 1, Share::Rate(200.0)),
            ],
        );
        let plan = plan(&s, &agents(&[("a", 2), ("b", 1), ("c", 1)])).expect("plans");
        let rate = |region: &str| -> f64 {
            plan.iter()
                .filter(|a| a.region == region)
                .map(|a| a.plan.model.mean_rate().unwrap_or_default())
                .sum()
        };
        assert!((rate("a") - 600.0).abs() < 1e-9);
        assert!((rate("b") - 200.0).abs() < 1e-9);
        assert!((rate("c") - 200.0).abs() < 1e-9);
        assert_eq!(
            plan.iter().map(|a| a.plan.model.connections()).sum::<u32>(),
            20
        );
        assert_eq!(
            plan.iter()
                .find(|a| a.region == "b")
                .map(|a| a.plan.requests[0].url.port()),
            Some(Some(2))
        );
    }

    #[test]
    fn refuses_missing_and_unknown_regions() {
        let s = scenario(
            Model::Closed,
            10,
            vec![("a", 1, Share::Weight(1.0)), ("b", 1, Share::Weight(1.0))],
        );
        assert_eq!(
            plan(&s, &agents(&[("a", 1)])),
            Err(PlanError::EmptyRegion("b".into()))
        );
        assert!(matches!(
            plan(&s, &agents(&[("a", 1), ("b", 1), ("z", 1)])),
            Err(PlanError::UnknownRegion { .. })
        ));
    }

    #[test]
    fn slots_are_dealt_evenly_and_completely() {
        let counts = [5, 3, 2];
        let slots = deal_slots(&counts);
        for (s, &c) in slots.iter().zip(&counts) {
            assert_eq!(s.len(), c as usize);
        }
        let mut all: Vec<u32> = slots.iter().flatten().copied().collect();
        all.sort();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        // At every level L the agents' busy slots (those below L) stay
        // within one of their share of L.
        for level in 0..=10u32 {
            for (s, &c) in slots.iter().zip(&counts) {
                let busy = s.iter().filter(|&&j| j < level).count() as f64;
                let ideal = f64::from(level) * f64::from(c) / 10.0;
                assert!(
                    (busy - ideal).abs() < 1.0 + 1e-9,
                    "level {level}: {busy} vs {ideal}"
                );
            }
        }
    }

    #[test]
    fn staged_plans_scale_rates_and_deal_slots() {
        use crate::scenario::{Phase, PhaseKind};
        let phases = vec![
            Phase {
                kind: PhaseKind::Warmup,
                stage: 0,
                duration: Duration::from_secs(2),
                from: 40.0,
                to: 40.0,
            },
            Phase {
                kind: PhaseKind::Ramp,
                stage: 1,
                duration: Duration::from_secs(4),
                from: 40.0,
                to: 400.0,
            },
        ];
        let mut s = scenario(
            Model::Open {
                rate: 220.0,
                arrival: Arrival::Constant,
            },
            8,
            vec![("a", 2, Share::Weight(3.0)), ("b", 2, Share::Weight(1.0))],
        );
        s.load.phases = phases.clone();
        s.load.duration = Duration::from_secs(6);
        s.load.staged = true;
        let list = agents(&[("a", 2), ("b", 2)]);
        let plan_open = plan(&s, &list).expect("plans");
        let at = |t: f64| -> f64 {
            plan_open
                .iter()
                .map(|a| match &a.plan.model {
                    WorkloadModel::Open { rate, .. } => rate.level_at(Duration::from_secs_f64(t)),
                    WorkloadModel::Closed { .. } => 0.0,
                })
                .sum()
        };
        assert!((at(1.0) - 40.0).abs() < 1e-9);
        assert!((at(4.0) - 220.0).abs() < 1e-9);
        let a_share: f64 = plan_open
            .iter()
            .filter(|a| a.region == "a")
            .map(|a| a.plan.model.mean_rate().unwrap_or_default())
            .sum();
        let total: f64 = plan_open
            .iter()
            .map(|a| a.plan.model.mean_rate().unwrap_or_default())
            .sum();
        assert!((a_share / total - 0.75).abs() < 1e-9);

        // Closed: 0 → 8 connections; the agents' slots cover 0..8 once.
        s.load.model = Model::Closed;
        s.load.phases = vec![Phase {
            kind: PhaseKind::Ramp,
            stage: 0,
            duration: Duration::from_secs(6),
            from: 0.0,
            to: 8.0,
        }];
        let plan_closed = plan(&s, &list).expect("plans");
        let mut slots: Vec<u32> = plan_closed
            .iter()
            .flat_map(|a| match &a.plan.model {
                WorkloadModel::Closed {
                    connections,
                    stages: Some(st),
                } => {
                    assert_eq!(st.slots.len(), *connections as usize);
                    st.slots.clone()
                }
                other => panic!("unexpected model {other:?}"),
            })
            .collect();
        slots.sort();
        assert_eq!(slots, (0..8).collect::<Vec<_>>());
    }

    proptest! {
        #[test]
        fn apportion_is_exact_and_respects_minimums(
            total in 0u32..10_000,
            weights in prop::collection::vec(0.01f64..100.0, 1..12),
        ) {
            let minimums: Vec<u32> = weights.iter().map(|_| 1).collect();
            prop_assume!(total as usize >= weights.len());
            let alloc = apportion(total, &weights, &minimums);
            prop_assert_eq!(alloc.iter().sum::<u32>(), total);
            let sum: f64 = weights.iter().sum();
            for (a, w) in alloc.iter().zip(&weights) {
                prop_assert!(*a >= 1);
                let ideal = f64::from(total) * w / sum;
                // Never more than one off its ideal unless lifted by the minimum.
                prop_assert!((f64::from(*a) - ideal).abs() < 1.0 + 1e-9 || *a == 1);
            }
        }

        #[test]
        fn plan_preserves_sums(
            rate in 1.0f64..500_000.0,
            spec in prop::collection::vec((1u32..5, 0.1f64..10.0), 1..6),
            extra in 0u32..200,
        ) {
            let names: Vec<String> = (0..spec.len()).map(|i| format!("r{i}")).collect();
            let agent_count: u32 = spec.iter().map(|(n, _)| n).sum();
            let s = scenario(
                Model::Open {
                    rate,
                    arrival: Arrival::Poisson { seed: 3 },
                },
                agent_count + extra,
                names.iter().zip(&spec).map(|(n, (a, w))| (n.as_str(), *a, Share::Weight(*w))).collect(),
            );
            let list: Vec<(&str, u32)> = names.iter().zip(&spec).map(|(n, (a, _))| (n.as_str(), *a)).collect();
            let plan = plan(&s, &agents(&list)).expect("plans");
            prop_assert_eq!(plan.len() as u32, agent_count);
            prop_assert_eq!(plan.iter().map(|a| a.plan.model.connections()).sum::<u32>(), agent_count + extra);
            let total: f64 = plan.iter().map(|a| a.plan.model.mean_rate().unwrap_or_default()).sum();
            prop_assert!((total - rate).abs() <= rate * 1e-9);
        }
    }
}
