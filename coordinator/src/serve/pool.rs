//! The standing cluster's agents: every registered session, idle or lent
//! to the run that goes on. The queue actor owns it.
//!
//! An idle agent's session stays open because the pool keeps its outbound
//! sender. A run gets the agents it needs by having their registrations
//! replayed into its own command channel (the run actor in `run.rs` admits
//! them as if they had just joined); afterwards they come back to the pool.

use crate::run::Outbound;
use stampede_proto::v1::{self, coordinator_message};
use std::collections::BTreeMap;
use tracing::{info, warn};
use uuid::Uuid;

#[derive(Debug)]
struct PooledAgent {
    register: v1::Register,
    outbound: Outbound,
    /// Lent to the current run.
    in_run: bool,
}

/// Registered agents by id.
#[derive(Debug, Default)]
pub struct Pool {
    agents: BTreeMap<Uuid, PooledAgent>,
}

/// What became of a registration.
#[derive(Debug)]
pub enum Joined {
    /// Kept idle in the pool.
    Idle,
    /// Refused (it is answered and its session closed).
    Refused,
}

fn message(kind: coordinator_message::Kind) -> Result<v1::CoordinatorMessage, tonic::Status> {
    Ok(v1::CoordinatorMessage { kind: Some(kind) })
}

impl Pool {
    /// Takes a new session into the pool (idle), answering it.
    pub async fn join(&mut self, register: v1::Register, outbound: Outbound) -> Joined {
        let Ok(id) = Uuid::parse_str(&register.agent_id) else {
            let reason = format!("agent id {:?} is not a uuid", register.agent_id);
            let _ = outbound
                .send(message(coordinator_message::Kind::Refused(v1::Refused {
                    reason,
                })))
                .await;
            return Joined::Refused;
        };
        if self.agents.contains_key(&id) {
            let reason = "an agent with this id is already registered".to_owned();
            warn!(agent = %id, "second session for a registered agent id; refused");
            let _ = outbound
                .send(message(coordinator_message::Kind::Refused(v1::Refused {
                    reason,
                })))
                .await;
            return Joined::Refused;
        }
        info!(agent = %id, region = %register.region, zone = %register.zone, host = %register.hostname,
            "agent joined the standing cluster");
        let registered = v1::Registered {
            coordinator_version: env!("CARGO_PKG_VERSION").into(),
        };
        let _ = outbound
            .send(message(coordinator_message::Kind::Registered(registered)))
            .await;
        self.agents.insert(
            id,
            PooledAgent {
                register,
                outbound,
                in_run: false,
            },
        );
        Joined::Idle
    }

    /// The agent's session ended; returns its region if it was lent to the
    /// run.
    pub fn leave(&mut self, id: Uuid) -> Option<String> {
        let agent = self.agents.remove(&id)?;
        info!(agent = %id, region = %agent.register.region, "agent left the standing cluster");
        agent.in_run.then_some(agent.register.region)
    }

    pub fn in_run(&self, id: Uuid) -> bool {
        self.agents.get(&id).is_some_and(|a| a.in_run)
    }

    /// Agents of `region` lent to the run.
    pub fn lent_in(&self, region: &str) -> u32 {
        self.agents
            .values()
            .filter(|a| a.in_run && a.register.region == region)
            .count() as u32
    }

    /// Lends up to `wanted` idle agents of `region` to the run; returns
    /// their registrations for the run actor.
    pub fn lend(&mut self, region: &str, wanted: u32) -> Vec<(v1::Register, Outbound)> {
        let lent_already = self.lent_in(region);
        self.agents
            .values_mut()
            .filter(|a| !a.in_run && a.register.region == region)
            .take(wanted.saturating_sub(lent_already) as usize)
            .map(|a| {
                a.in_run = true;
                (a.register.clone(), a.outbound.clone())
            })
            .collect()
    }

    /// The run is over: every agent is idle again.
    pub fn return_all(&mut self) {
        for agent in self.agents.values_mut() {
            agent.in_run = false;
        }
    }

    /// Registered agents per region (idle and lent).
    pub fn regions(&self) -> BTreeMap<String, u32> {
        let mut regions = BTreeMap::new();
        for agent in self.agents.values() {
            *regions.entry(agent.register.region.clone()).or_default() += 1;
        }
        regions
    }
}
