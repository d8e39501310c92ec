//! `on_agent_loss: redistribute`: a lost agent's share of the load, split
//! among the agents left in its region from a later interval on.
//!
//! Each survivor gets a plan for the whole run whose load is 0 until
//! `begin` and then its part of what the lost agent had still to do, so the
//! region's load returns to what the scenario asked for. The requests, data
//! rows and timeouts stay the lost agent's.

use crate::plan::{apportion, deal_slots};
use stampede_agent::plan::{Arrival, ClosedStages, DataSet, LoadPlan, WorkloadModel};
use stampede_agent::profile::LevelProfile;
use std::time::Duration;

/// The plans that take over `lost` from `begin` (an offset from the run's
/// start), one per survivor; fewer when there is less to split than
/// survivors (a closed model with fewer connections). Empty when nothing is
/// left to do after `begin`.
pub fn takeover(lost: &LoadPlan, begin: Duration, survivors: usize) -> Vec<LoadPlan> {
    if survivors == 0 || begin >= lost.duration {
        return Vec::new();
    }
    let models: Vec<WorkloadModel> = match &lost.model {
        WorkloadModel::Open {
            rate,
            connections,
            arrival,
        } => {
            let part = rate.silenced_before(begin).scaled(1.0 / survivors as f64);
            if part.area() <= 0.0 {
                return Vec::new();
            }
            let each = connections.div_ceil(survivors as u32).max(1);
            (0..survivors)
                .map(|i| WorkloadModel::Open {
                    rate: part.clone(),
                    connections: each,
                    arrival: match *arrival {
                        Arrival::Constant => Arrival::Constant,
                        // Each survivor its own stream, repeatable.
                        Arrival::Poisson { seed } => Arrival::Poisson {
                            seed: seed ^ (0x9e37_79b9_7f4a_7c15u64.wrapping_mul(i as u64 + 1)),
                        },
                    },
                })
                .collect()
        }
        WorkloadModel::Closed {
            stages: Some(stages),
            ..
        } => {
            // The lost agent's slots, dealt out: each survivor's busy slots
            // follow the cluster's concurrency as the lost agent's did.
            let concurrency = stages.concurrency.silenced_before(begin);
            let counts = apportion(
                stages.slots.len() as u32,
                &vec![1.0; survivors],
                &vec![0; survivors],
            );
            deal_slots(&counts)
                .into_iter()
                .filter(|dealt| !dealt.is_empty())
                .map(|dealt| WorkloadModel::Closed {
                    connections: dealt.len() as u32,
                    stages: Some(ClosedStages {
                        concurrency: concurrency.clone(),
                        slots: dealt.iter().map(|&k| stages.slots[k as usize]).collect(),
                    }),
                })
                .collect()
        }
        WorkloadModel::Closed {
            connections,
            stages: None,
        } => apportion(*connections, &vec![1.0; survivors], &vec![0; survivors])
            .into_iter()
            .filter(|&c| c > 0)
            .filter_map(|c| {
                // Slots 0..c of a level that is 0 until `begin`, then c.
                let level = LevelProfile::constant(f64::from(c), lost.duration).ok()?;
                Some(WorkloadModel::Closed {
                    connections: c,
                    stages: Some(ClosedStages {
                        concurrency: level.silenced_before(begin),
                        slots: (0..c).collect(),
                    }),
                })
            })
            .collect(),
    };
    let parts = models.len();
    models
        .into_iter()
        .enumerate()
        .map(|(i, model)| {
            let rows = lost.data.as_ref().map(|d| rows_for(d, i, parts));
            LoadPlan {
                model,
                data: lost
                    .data
                    .as_ref()
                    .zip(rows.as_ref())
                    .map(|(d, rows)| DataSet {
                        columns: d.columns.clone(),
                        rows: rows.iter().map(|&r| d.rows[r].clone()).collect(),
                        order: d.order,
                    }),
                // gRPC messages made from rows go with their rows.
                grpc: lost.grpc.as_ref().map(|g| {
                    let mut g = g.clone();
                    if let Some(rows) = rows.as_ref().filter(|_| !g.row_payloads.is_empty()) {
                        g.row_payloads = rows
                            .iter()
                            .filter_map(|&r| g.row_payloads.get(r).cloned())
                            .collect();
                    }
                    g
                }),
                ..lost.clone()
            }
        })
        .collect()
}

/// The rows (indices) survivor `i` of `n` takes: every `n`-th of the lost
/// agent's (all of them when there are too few to go round).
fn rows_for(data: &DataSet, i: usize, n: usize) -> Vec<usize> {
    let rows: Vec<usize> = (0..data.rows.len()).skip(i).step_by(n.max(1)).collect();
    if rows.is_empty() {
        (0..data.rows.len()).collect()
    } else {
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stampede_agent::plan::RequestTemplate;
    use stampede_agent::profile::Segment;

    fn plan(model: WorkloadModel) -> LoadPlan {
        LoadPlan {
            requests: vec![RequestTemplate::new(
                "GET",
                url::Url::parse("http://127.0.0.1:1/").expect("url"),
            )],
            data: None,
            llm: None,
            grpc: None,
            model,
            duration: Duration::from_secs(10),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            graceful_stop: Duration::from_secs(1),
            think_time: None,
            leg: None,
            transport: Default::default(),
        }
    }

    #[test]
    fn an_open_share_is_split_evenly_from_the_takeover_on() {
        let rate = LevelProfile::new(vec![
            Segment::flat(100.0, Duration::from_secs(5)),
            Segment {
                duration: Duration::from_secs(5),
                from: 100.0,
                to: 200.0,
            },
        ])
        .expect("profile");
        let lost = plan(WorkloadModel::Open {
            rate: rate.clone(),
            connections: 10,
            arrival: Arrival::Poisson { seed: 7 },
        });
        let parts = takeover(&lost, Duration::from_secs(4), 3);
        assert_eq!(parts.len(), 3);
        let mut seeds = Vec::new();
        let mut area = 0.0;
        for p in &parts {
            let WorkloadModel::Open {
                rate: part,
                connections,
                arrival,
            } = &p.model
            else {
                panic!("open stays open");
            };
            assert_eq!(*connections, 4);
            assert_eq!(part.level_at(Duration::from_millis(3_999)), 0.0);
            assert!((part.level_at(Duration::from_secs(4)) - 100.0 / 3.0).abs() < 1e-9);
            assert_eq!(part.duration(), lost.duration);
            area += part.area();
            seeds.push(*arrival);
        }
        // Together they do exactly what the lost agent had left: 6 s.
        let left = rate.area() - 400.0;
        assert!((area - left).abs() < 1e-6, "{area} vs {left}");
        seeds.dedup();
        assert_eq!(seeds.len(), 3, "each survivor its own Poisson stream");
    }

    #[test]
    fn closed_connections_are_dealt_and_silent_until_the_takeover() {
        let lost = plan(WorkloadModel::Closed {
            connections: 5,
            stages: None,
        });
        let parts = takeover(&lost, Duration::from_secs(3), 2);
        let counts: Vec<u32> = parts.iter().map(|p| p.model.connections()).collect();
        assert_eq!(counts.iter().sum::<u32>(), 5);
        for p in &parts {
            let WorkloadModel::Closed {
                stages: Some(stages),
                connections,
            } = &p.model
            else {
                panic!("closed with windows");
            };
            assert_eq!(stages.slots.len() as u32, *connections);
            // Slot j is busy from the takeover to the end.
            for &slot in &stages.slots {
                let windows = stages.concurrency.windows_above(slot);
                assert_eq!(windows.len(), 1, "{windows:?}");
                assert_eq!(windows[0].0, Duration::from_secs(3));
            }
        }
        // More survivors than connections: only as many plans as connections.
        assert_eq!(takeover(&lost, Duration::from_secs(3), 9).len(), 5);
    }

    #[test]
    fn nothing_is_left_after_the_end() {
        let lost = plan(WorkloadModel::Closed {
            connections: 5,
            stages: None,
        });
        assert!(takeover(&lost, Duration::from_secs(10), 2).is_empty());
        assert!(takeover(&lost, Duration::from_secs(1), 0).is_empty());
    }

    #[test]
    fn grpc_messages_made_from_rows_go_with_their_rows() {
        let mut lost = plan(WorkloadModel::Closed {
            connections: 4,
            stages: None,
        });
        lost.data = Some(DataSet {
            columns: vec!["id".into()],
            rows: (0..5).map(|i| vec![i.to_string()]).collect(),
            order: stampede_agent::plan::DataOrder::Sequential,
        });
        lost.grpc = Some(stampede_agent::plan::GrpcSpec {
            path: "/p.S/M".into(),
            payload: bytes::Bytes::from_static(b"row 0"),
            row_payloads: (0..5)
                .map(|i| bytes::Bytes::from(format!("row {i}")))
                .collect(),
            metadata: vec![],
        });
        let parts = takeover(&lost, Duration::from_secs(3), 2);
        assert_eq!(parts.len(), 2);
        let mut seen = 0;
        for p in &parts {
            let rows = &p.data.as_ref().expect("rows").rows;
            let payloads = &p.grpc.as_ref().expect("grpc").row_payloads;
            // The agent refuses a plan whose messages and rows differ in number.
            assert_eq!(payloads.len(), rows.len());
            for (row, payload) in rows.iter().zip(payloads) {
                assert_eq!(payload.as_ref(), format!("row {}", row[0]).as_bytes());
            }
            seen += rows.len();
        }
        assert_eq!(seen, 5);
    }
}
