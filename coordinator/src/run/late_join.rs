//! `late_joiners: take_over`: an agent that registers while a run is under
//! way, in a region that lost an agent whose share nobody took over, takes
//! that share over from an interval boundary ahead. It goes through a run's
//! set-up on its own, while the others run: assignment, one clock exchange,
//! then a start in its own clock. Until then it waits in the lobby.

use super::{LossContext, Member, MemberState, msg};
use crate::clock::ClockSample;
use crate::fault_log::FaultLog;
use crate::merge::RunMerge;
use crate::redistribute;
use crate::report::build;
use stampede_proto::v1::{self, agent_message, coordinator_message};
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;
use tracing::{info, warn};
use uuid::Uuid;

/// How far ahead a takeover by a late agent begins: its assignment, clock
/// exchange and start must all be done by then.
const JOIN_LEAD: Duration = Duration::from_secs(2);

/// The clock probe a joining agent answers (the run's own rounds use
/// 0, 1, …).
const JOIN_PROBE_SEQ: u32 = u32::MAX;

#[derive(Debug, Default)]
pub(super) struct LateJoins {
    /// Lost agents' shares nobody took over: (lost agent, its region).
    open: Vec<(Uuid, String)>,
    /// Late agents on their way in.
    pending: HashMap<Uuid, Pending>,
}

#[derive(Debug)]
struct Pending {
    lost: Uuid,
    begin: Duration,
    probe_sent: Option<i64>,
}

impl LateJoins {
    /// An agent on its way in (its messages are [`LateJoins::on_message`]'s).
    pub fn is_pending(&self, agent: Uuid) -> bool {
        self.pending.contains_key(&agent)
    }

    /// A lost agent's share is free for a late agent of its region.
    pub fn share_open(&mut self, lost: Uuid, region: &str) {
        self.open.push((lost, region.to_owned()));
    }

    /// Offers the open shares to agents waiting in the lobby, one each.
    pub async fn offer(&mut self, ctx: &LossContext<'_>, lobby: &[Member]) {
        for m in lobby {
            if self.pending.contains_key(&m.id) {
                continue;
            }
            let Some(pos) = self.open.iter().position(|(_, region)| *region == m.region) else {
                continue;
            };
            let (lost, region) = self.open.remove(pos);
            let Some(legs) = ctx.plans.get(&lost).filter(|legs| !legs.is_empty()) else {
                continue;
            };
            let elapsed = (build::unix_nanos_now() - ctx.start_unix_nanos).max(0) as u128;
            let interval = legs[0].interval.as_nanos().max(1);
            let begin_nanos = (elapsed + JOIN_LEAD.as_nanos()).div_ceil(interval) * interval;
            let begin = Duration::from_nanos(u64::try_from(begin_nanos).unwrap_or(u64::MAX));
            let share: Vec<_> = legs
                .iter()
                .filter_map(|leg| redistribute::takeover(leg, begin, 1).pop())
                .collect();
            if share.is_empty() {
                info!(agent = %m.id, %region, "a late agent cannot take over a share: the run ends too soon");
                continue;
            }
            let assignment = super::assignment_of(ctx.run_id, &share);
            info!(agent = %m.id, %region, %lost, "offering a late agent a lost agent's share");
            let _ = m
                .outbound
                .send(msg(coordinator_message::Kind::Assignment(assignment)))
                .await;
            self.pending.insert(
                m.id,
                Pending {
                    lost,
                    begin,
                    probe_sent: None,
                },
            );
        }
    }

    /// A message from an agent on its way in; false when it is not one.
    /// Once it has accepted and answered the clock probe it is started and
    /// moved from the lobby to the run's members.
    #[allow(clippy::too_many_arguments)]
    pub async fn on_message(
        &mut self,
        ctx: &LossContext<'_>,
        lobby: &mut Vec<Member>,
        members: &mut Vec<Member>,
        merge: &mut RunMerge,
        faults: &mut FaultLog,
        agent: Uuid,
        message: &agent_message::Kind,
    ) -> bool {
        let Some(pending) = self.pending.get_mut(&agent) else {
            return false;
        };
        let Some(pos) = lobby.iter().position(|m| m.id == agent) else {
            return false;
        };
        match message {
            agent_message::Kind::AssignmentAccepted(a) if a.run_id == ctx.run_id => {
                let sent = build::unix_nanos_now();
                pending.probe_sent = Some(sent);
                let probe = v1::ClockProbe {
                    seq: JOIN_PROBE_SEQ,
                    sent_unix_nanos: sent,
                };
                let _ = lobby[pos]
                    .outbound
                    .send(msg(coordinator_message::Kind::ClockProbe(probe)))
                    .await;
            }
            agent_message::Kind::AssignmentRejected(r) if r.run_id == ctx.run_id => {
                warn!(%agent, reason = %r.reason, "a late agent refused a lost agent's share");
                self.give_back(agent, &lobby[pos].region);
            }
            agent_message::Kind::ClockReply(r)
                if r.seq == JOIN_PROBE_SEQ
                    && Some(r.probe_sent_unix_nanos) == pending.probe_sent =>
            {
                let clock = ClockSample::from_exchange(
                    r.probe_sent_unix_nanos,
                    r.received_unix_nanos,
                    r.replied_unix_nanos,
                    build::unix_nanos_now(),
                );
                let Some(pending) = self.pending.remove(&agent) else {
                    return true;
                };
                let mut m = lobby.remove(pos);
                let start = v1::Start {
                    run_id: ctx.run_id.to_owned(),
                    start_unix_nanos: ctx.start_unix_nanos.saturating_add(clock.offset_nanos),
                };
                let _ = m
                    .outbound
                    .send(msg(coordinator_message::Kind::Start(start)))
                    .await;
                merge.join(m.id, &m.region);
                faults.late_join(m.id, &m.region, pending.lost, pending.begin.as_secs_f64());
                m.clock = Some(clock);
                m.state = MemberState::Running;
                m.last_heard = Instant::now();
                members.push(m);
            }
            _ => {}
        }
        true
    }

    /// An agent on its way in left: its share is free again.
    pub fn left(&mut self, agent: Uuid, region: &str) {
        if self.pending.contains_key(&agent) {
            self.give_back(agent, region);
        }
    }

    fn give_back(&mut self, agent: Uuid, region: &str) {
        if let Some(p) = self.pending.remove(&agent) {
            self.open.push((p.lost, region.to_owned()));
        }
    }
}
