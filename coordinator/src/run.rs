//! Who owns a run's state: one actor task. gRPC handlers only send it
//! [`RunCommand`]s; it gathers agents, assigns slices, sends one common
//! start time, merges interval reports, and builds the report.

use crate::clock::ClockSample;
use crate::events::{Events, IntervalSnapshot, RunEvent, RunPlan, RunStart};
use crate::fault_log::FaultLog;
use crate::merge::AgentInterval;
use crate::merge::MergeError;
use crate::merge::RunMerge;
use crate::plan::{self, PlanError};
use crate::redistribute;
use crate::report::build::{self, AgentMeta, ReportInput};
use crate::report::model::{RunReport, RunStatus, SeriesInfo};
use crate::report::table::micros;
use crate::scenario::{LateJoiners, OnAgentLoss, Scenario};
use crate::wire::ReportError;
use stampede_agent::plan::LoadPlan;
use stampede_proto::v1::{self, agent_message, coordinator_message};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

mod late_join;

use late_join::LateJoins;

/// Where the actor sends messages for one agent.
pub type Outbound = mpsc::Sender<Result<v1::CoordinatorMessage, tonic::Status>>;

/// What the gRPC layer tells the run actor.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "commands move through the actor's channel by value; boxing the agent's message would allocate for each one"
)]
pub enum RunCommand {
    Register {
        register: v1::Register,
        outbound: Outbound,
    },
    FromAgent {
        agent_id: Uuid,
        message: agent_message::Kind,
    },
    /// An interval report, already decoded by the session task.
    Interval {
        agent_id: Uuid,
        run_id: String,
        interval: Result<AgentInterval, ReportError>,
    },
    Disconnected {
        agent_id: Uuid,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("timed out after {waited:?} waiting for agents: {}", describe_missing(.missing))]
    MissingAgents {
        waited: Duration,
        missing: Vec<(String, u32, u32)>,
    },
    #[error("agent {agent} in region {region} rejected its assignment: {reason}")]
    Rejected {
        agent: Uuid,
        region: String,
        reason: String,
    },
    #[error("agent {agent} ({region}) left before the run started")]
    LostBeforeStart { agent: Uuid, region: String },
    #[error("timed out waiting for agents to accept their assignments")]
    AcceptTimeout,
    #[error("cannot plan the run: {0}")]
    Plan(#[from] PlanError),
    #[error("cancelled before the run started")]
    Cancelled,
    #[error("the gRPC server failed: {0}")]
    Server(String),
    #[error("the scenario needs {wanted} agents but --max-agents is {max}")]
    AgentLimit { wanted: usize, max: usize },
}

fn describe_missing(missing: &[(String, u32, u32)]) -> String {
    missing
        .iter()
        .map(|(region, have, want)| format!("region {region} has {have} of {want}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// How long agents get to accept an assignment.
const ACCEPT_TIMEOUT: Duration = Duration::from_secs(30);
/// Slack after the run's nominal end (plus graceful stop) for final reports.
const FINAL_REPORT_SLACK: Duration = Duration::from_secs(10);
/// After an operator stop, how long to wait for agents' last reports.
const STOP_COLLECT: Duration = Duration::from_secs(5);

struct Member {
    id: Uuid,
    region: String,
    zone: String,
    hostname: String,
    outbound: Outbound,
    state: MemberState,
    /// Its clock against ours, from the last clock exchange.
    clock: Option<ClockSample>,
    /// When anything last came from it (a report, a heartbeat, any message).
    last_heard: Instant,
    /// When it was lost, seconds from the run's start.
    lost_at_s: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MemberState {
    Registered,
    Accepted,
    Running,
    Finished,
    Lost,
}

fn msg(kind: coordinator_message::Kind) -> Result<v1::CoordinatorMessage, tonic::Status> {
    Ok(v1::CoordinatorMessage { kind: Some(kind) })
}

/// The runs of a series (`repeat: N`), and what stopped it early, if
/// anything. Reports of the runs that finished are kept either way.
#[derive(Debug)]
pub struct Series {
    /// Shared by the runs' reports (`series.id`).
    pub id: String,
    pub reports: Vec<RunReport>,
    pub error: Option<RunError>,
}

/// Runs one scenario once and returns its report.
pub async fn run(
    scenario: Scenario,
    commands: mpsc::Receiver<RunCommand>,
    cancel: CancellationToken,
) -> Result<RunReport, RunError> {
    let mut series = run_series(scenario, commands, cancel).await;
    match series.error.take() {
        Some(e) => Err(e),
        None => series.reports.pop().ok_or(RunError::Cancelled),
    }
}

/// Runs the scenario `scenario.repeat` times in a row with the same agents
/// (an agent lost in one run is replaced before the next).
pub async fn run_series(
    scenario: Scenario,
    commands: mpsc::Receiver<RunCommand>,
    cancel: CancellationToken,
) -> Series {
    run_series_with_events(scenario, commands, cancel, Events::default()).await
}

/// [`run_series`], telling `events` how it goes.
pub async fn run_series_with_events(
    scenario: Scenario,
    commands: mpsc::Receiver<RunCommand>,
    cancel: CancellationToken,
    events: Events,
) -> Series {
    let count = scenario.repeat.max(1);
    let again = scenario.clone();
    let mut runs = 1;
    let mut series = run_steps_with_events(scenario, commands, cancel, events, Some(count), |_| {
        runs += 1;
        (runs <= count).then(|| again.clone())
    })
    .await;
    if count > 1 {
        for (index, report) in series.reports.iter_mut().enumerate() {
            report.series = Some(SeriesInfo {
                id: series.id.clone(),
                run: index as u32 + 1,
                runs: count,
            });
        }
    }
    series
}

/// Runs `first`, then each scenario `next` names after seeing the report of
/// the run before, all with the same agents (an agent lost in one run is
/// replaced before the next), until `next` says `None`, a run fails, or
/// `cancel` fires. Agents started for one run stay until the last.
pub async fn run_steps(
    first: Scenario,
    commands: mpsc::Receiver<RunCommand>,
    cancel: CancellationToken,
    next: impl FnMut(&RunReport) -> Option<Scenario>,
) -> Series {
    run_steps_with_events(first, commands, cancel, Events::default(), None, next).await
}

/// [`run_steps`], telling `events` how it goes; `count`: how many runs, when
/// known (a series), for the events.
pub async fn run_steps_with_events(
    first: Scenario,
    mut commands: mpsc::Receiver<RunCommand>,
    cancel: CancellationToken,
    events: Events,
    count: Option<u32>,
    mut next: impl FnMut(&RunReport) -> Option<Scenario>,
) -> Series {
    let mut series = Series {
        id: Uuid::new_v4().to_string(),
        reports: Vec::new(),
        error: None,
    };
    let mut members: Vec<Member> = Vec::new();
    // Agents that registered while a run was under way: they wait for the
    // next one.
    let mut lobby: Vec<Member> = Vec::new();
    let mut scenario = first;
    let mut index = 0;
    loop {
        let gathered = gather(
            &scenario,
            &mut members,
            &mut lobby,
            &mut commands,
            &cancel,
            &events,
        );
        if let Err(e) = gathered.await {
            series.error = Some(e);
            break;
        }
        let position = StepPosition { index, count };
        let run = run_once(
            &scenario,
            &mut members,
            &mut lobby,
            &mut commands,
            &cancel,
            position,
            &events,
        );
        let report = match run.await {
            Ok(report) => report,
            Err(e) => {
                series.error = Some(e);
                break;
            }
        };
        // A stop ends the series after the (partial) run it cut short; so
        // does a run that `on_agent_loss: fail` failed.
        let following = if cancel.is_cancelled() || report.status == RunStatus::Failed {
            None
        } else {
            next(&report)
        };
        // Release the agents: for good, if the series is over.
        finish_all(&members, &report.run_id, following.is_some()).await;
        series.reports.push(report);
        let Some(following) = following else { break };
        scenario = following;
        index += 1;
        members.retain(|m| m.state != MemberState::Lost);
        for m in &mut members {
            m.state = MemberState::Registered;
            m.lost_at_s = None;
        }
    }
    series
}

/// Which run of its series (or search) a run is, for the events.
#[derive(Debug, Clone, Copy)]
struct StepPosition {
    /// 0-based.
    index: u32,
    /// Runs in all, when known.
    count: Option<u32>,
}

/// Waits until every region has the agents it expects (keeping those
/// already gathered).
async fn gather(
    scenario: &Scenario,
    members: &mut Vec<Member>,
    lobby: &mut Vec<Member>,
    commands: &mut mpsc::Receiver<RunCommand>,
    cancel: &CancellationToken,
    events: &Events,
) -> Result<(), RunError> {
    let wait_until = Instant::now() + scenario.agent_wait_timeout;
    events.send(|| RunEvent::Waiting(Arc::new(RunPlan::of(scenario))));
    seat_waiting(scenario, members, lobby, events).await;
    if !all_present(scenario, members) {
        info!(scenario = %scenario.name, agents = scenario.total_agents(), "waiting for agents");
    }
    while !all_present(scenario, members) {
        tokio::select! {
            _ = cancel.cancelled() => return Err(RunError::Cancelled),
            _ = sleep_until(wait_until) => {
                let missing = scenario.regions.iter().filter_map(|r| {
                    let have = members.iter().filter(|m| m.region == r.name).count() as u32;
                    (have < r.agents).then(|| (r.name.clone(), have, r.agents))
                }).collect();
                return Err(RunError::MissingAgents { waited: scenario.agent_wait_timeout, missing });
            }
            command = commands.recv() => match command {
                Some(RunCommand::Register { register, outbound }) => admit(scenario, members, register, outbound, events).await,
                Some(RunCommand::Disconnected { agent_id }) => {
                    if let Some(pos) = members.iter().position(|m| m.id == agent_id) {
                        let m = members.remove(pos);
                        warn!(agent = %m.id, region = %m.region, "agent left while waiting; its place is open again");
                        events.send(|| RunEvent::AgentLeft { agent: m.id, region: m.region });
                    }
                    lobby.retain(|m| m.id != agent_id);
                }
                Some(RunCommand::FromAgent { .. } | RunCommand::Interval { .. }) => {}
                None => return Err(RunError::Cancelled),
            },
        }
    }
    Ok(())
}

/// One run with the gathered agents: assign, start, collect, report. The
/// caller releases the agents (`RunFinished`) once it knows whether another
/// run follows.
async fn run_once(
    scenario: &Scenario,
    members: &mut Vec<Member>,
    lobby: &mut Vec<Member>,
    commands: &mut mpsc::Receiver<RunCommand>,
    cancel: &CancellationToken,
    position: StepPosition,
    events: &Events,
) -> Result<RunReport, RunError> {
    let run_id = Uuid::new_v4().to_string();

    // 2. Assign every agent its slice; wait until all accepted.
    let roster: Vec<(Uuid, String)> = members.iter().map(|m| (m.id, m.region.clone())).collect();
    let assignments = plan::plan(scenario, &roster)?;
    for a in &assignments {
        if let Some(m) = members.iter().find(|m| m.id == a.agent_id) {
            let assignment = assignment_of(&run_id, &a.legs);
            let _ = m
                .outbound
                .send(msg(coordinator_message::Kind::Assignment(assignment)))
                .await;
        }
    }
    let accept_by = Instant::now() + ACCEPT_TIMEOUT;
    while members.iter().any(|m| m.state != MemberState::Accepted) {
        let command = tokio::select! {
            _ = cancel.cancelled() => { finish_all(members, &run_id, false).await; return Err(RunError::Cancelled) }
            _ = sleep_until(accept_by) => { finish_all(members, &run_id, false).await; return Err(RunError::AcceptTimeout) }
            command = commands.recv() => command,
        };
        match command {
            Some(RunCommand::FromAgent { agent_id, message }) => match message {
                agent_message::Kind::AssignmentAccepted(a) if a.run_id == run_id => {
                    if let Some(m) = members.iter_mut().find(|m| m.id == agent_id) {
                        m.state = MemberState::Accepted;
                    }
                }
                agent_message::Kind::AssignmentRejected(r) if r.run_id == run_id => {
                    finish_all(members, &run_id, false).await;
                    let region = region_of(members, agent_id);
                    return Err(RunError::Rejected {
                        agent: agent_id,
                        region,
                        reason: r.reason,
                    });
                }
                _ => {}
            },
            Some(RunCommand::Disconnected { agent_id }) => {
                finish_all(members, &run_id, false).await;
                let region = region_of(members, agent_id);
                events.send(|| RunEvent::AgentLeft {
                    agent: agent_id,
                    region: region.clone(),
                });
                return Err(RunError::LostBeforeStart {
                    agent: agent_id,
                    region,
                });
            }
            Some(RunCommand::Register { register, outbound }) => {
                hold(scenario, members, lobby, register, outbound).await
            }
            Some(RunCommand::Interval { .. }) => {}
            None => return Err(RunError::Cancelled),
        }
    }

    // 3. One common start time, far enough ahead that every agent has it,
    // sent in each agent's own clock.
    sync_clocks(scenario, members, lobby, commands, cancel).await?;
    let start_unix_nanos = build::unix_nanos_now() + scenario.start_delay.as_nanos() as i64;
    let offsets: HashMap<Uuid, i64> = members
        .iter()
        .map(|m| (m.id, m.clock.map_or(0, |c| c.offset_nanos)))
        .collect();
    let mut faults = FaultLog::default();
    faults.started(start_unix_nanos);
    let plans: HashMap<Uuid, Vec<LoadPlan>> = assignments
        .into_iter()
        .map(|a| (a.agent_id, a.legs))
        .collect();
    let loss_ctx = LossContext {
        scenario,
        run_id: &run_id,
        start_unix_nanos,
        plans: &plans,
    };
    let mut joins = LateJoins::default();
    for m in members.iter_mut() {
        m.last_heard = Instant::now();
        let start = v1::Start {
            run_id: run_id.clone(),
            start_unix_nanos: start_unix_nanos.saturating_add(offsets[&m.id]),
        };
        let _ = m
            .outbound
            .send(msg(coordinator_message::Kind::Start(start)))
            .await;
        m.state = MemberState::Running;
    }
    info!(%run_id, starts_in = ?scenario.start_delay, duration = ?scenario.load.duration, "run starting");
    events.send(|| {
        RunEvent::Starting(Arc::new(RunStart {
            run_id: run_id.clone(),
            plan: Arc::new(RunPlan::of(scenario)),
            start_unix_nanos,
            run: position.index + 1,
            runs: position.count.unwrap_or(0),
            agents: roster.clone(),
        }))
    });

    // 4. Collect and merge until every agent is done (or the deadline).
    let mut merge = RunMerge::with_requests(
        roster,
        scenario.load.warmup_intervals(),
        scenario.request_slots(),
    );
    let mut deadline = Instant::now()
        + scenario.start_delay
        + scenario.load.duration
        + scenario.load.graceful_stop
        + FINAL_REPORT_SLACK;
    let mut stopped = false;
    let mut shown_intervals = 0;
    // How often silent agents are looked for: a fraction of the timeout, so
    // one is declared lost at most a tenth late.
    let mut silence_check = tokio::time::interval(
        (scenario.faults.agent_loss_timeout / 10).max(Duration::from_millis(100)),
    );
    silence_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while members.iter().any(|m| m.state == MemberState::Running) {
        let command = tokio::select! {
            _ = cancel.cancelled(), if !stopped => {
                stopped = true;
                faults.stopped();
                stop_all(members, &run_id, "stopped by the operator").await;
                deadline = deadline.min(Instant::now() + STOP_COLLECT);
                continue;
            }
            _ = sleep_until(deadline) => {
                for m in members.iter_mut().filter(|m| m.state == MemberState::Running) {
                    faults.no_final_report(m.id, &m.region);
                    m.state = MemberState::Lost;
                    merge.agent_done(m.id);
                }
                break;
            }
            _ = silence_check.tick() => {
                let timeout = scenario.faults.agent_loss_timeout;
                let mut lost = Vec::new();
                for m in members.iter_mut().filter(|m| m.state == MemberState::Running) {
                    let silent = m.last_heard.elapsed();
                    if silent >= timeout {
                        m.lost_at_s = Some(faults.agent_silent(m.id, &m.region, silent.as_secs_f64()));
                        m.state = MemberState::Lost;
                        merge.agent_done(m.id);
                        // It may be alive behind a broken link, or hung: if it
                        // hears this, it stops loading the target.
                        let stop = v1::Stop { run_id: run_id.clone(), reason: format!("declared lost: silent for {:.1}s", silent.as_secs_f64()) };
                        let _ = m.outbound.try_send(msg(coordinator_message::Kind::Stop(stop)));
                        events.send(|| RunEvent::AgentLeft { agent: m.id, region: m.region.clone() });
                        lost.push((m.id, m.region.clone()));
                    }
                }
                for (agent, region) in lost {
                    if on_loss(&loss_ctx, members, lobby, &mut joins, &mut faults, &mut stopped, agent, &region).await {
                        stop_all(members, &run_id, "another agent was lost (on_agent_loss: fail)").await;
                        deadline = deadline.min(Instant::now() + STOP_COLLECT);
                    }
                }
                shown_intervals =
                    announce_closed(&mut merge, shown_intervals, &run_id, start_unix_nanos, events, &mut faults);
                continue;
            }
            command = commands.recv() => command,
        };
        let from = match &command {
            Some(
                RunCommand::FromAgent { agent_id, .. } | RunCommand::Interval { agent_id, .. },
            ) => Some(*agent_id),
            _ => None,
        };
        if let Some(m) = from.and_then(|id| members.iter_mut().find(|m| m.id == id)) {
            m.last_heard = Instant::now();
        }
        match command {
            Some(RunCommand::FromAgent { agent_id, message }) if joins.is_pending(agent_id) => {
                joins
                    .on_message(
                        &loss_ctx,
                        lobby,
                        members,
                        &mut merge,
                        &mut faults,
                        agent_id,
                        &message,
                    )
                    .await;
            }
            Some(RunCommand::FromAgent { agent_id, message }) => match message {
                agent_message::Kind::FinalReport(f) if f.run_id == run_id => {
                    let Some(m) = members
                        .iter_mut()
                        .find(|m| m.id == agent_id && m.state == MemberState::Running)
                    else {
                        warn!(agent = %agent_id, "final report from an agent that is not running in this run; refused");
                        continue;
                    };
                    m.state = MemberState::Finished;
                    if !f.error.is_empty() {
                        faults.agent_error(agent_id, &m.region, &f.error);
                    }
                    merge.agent_done(agent_id);
                }
                agent_message::Kind::FinalReport(f) => {
                    warn!(agent = %agent_id, run = %f.run_id, "final report for another run; refused")
                }
                _ => {}
            },
            Some(RunCommand::Interval {
                agent_id,
                run_id: report_run,
                interval,
            }) => {
                if report_run != run_id {
                    warn!(agent = %agent_id, run = %report_run, "interval report for another run; refused");
                    faults.report_refused(agent_id, "interval report for another run");
                    continue;
                }
                let running = members
                    .iter()
                    .any(|m| m.id == agent_id && m.state == MemberState::Running);
                if !running {
                    // A lost agent that comes back is not merged again: its
                    // loss is already in the report, and a late report from
                    // a hung process would land in closed intervals.
                    faults.report_refused(
                        agent_id,
                        "interval report from an agent not running in this run",
                    );
                    continue;
                }
                match interval {
                    Ok(mut interval) if interval.agent_id == agent_id => {
                        // Its times are in its clock: bring them into ours.
                        let offset = offsets.get(&agent_id).copied().unwrap_or(0);
                        interval.start_unix_nanos =
                            interval.start_unix_nanos.saturating_sub(offset);
                        interval.end_unix_nanos = interval.end_unix_nanos.saturating_sub(offset);
                        match merge.add(interval) {
                            Ok(()) => {}
                            Err(e @ MergeError::Malformed { .. }) => {
                                warn!(agent = %agent_id, error = %e, "malformed interval report refused");
                                faults.report_refused(agent_id, "malformed interval report");
                            }
                            Err(e) => {
                                warn!(agent = %agent_id, error = %e, "interval report refused");
                                faults
                                    .report_refused(agent_id, "interval report the merge refused");
                            }
                        }
                    }
                    Ok(_) => {
                        faults.report_refused(agent_id, "interval report naming another agent")
                    }
                    Err(e) => {
                        warn!(agent = %agent_id, error = %e, "malformed interval report refused");
                        faults.report_refused(agent_id, "malformed interval report");
                    }
                }
            }
            Some(RunCommand::Disconnected { agent_id }) => {
                if let Some(m) = lobby.iter().find(|m| m.id == agent_id) {
                    joins.left(agent_id, &m.region);
                }
                lobby.retain(|m| m.id != agent_id);
                let Some(m) = members
                    .iter_mut()
                    .find(|m| m.id == agent_id && m.state == MemberState::Running)
                else {
                    continue;
                };
                m.lost_at_s = Some(faults.agent_lost(m.id, &m.region));
                m.state = MemberState::Lost;
                merge.agent_done(agent_id);
                let region = m.region.clone();
                events.send(|| RunEvent::AgentLeft {
                    agent: agent_id,
                    region: region.clone(),
                });
                if on_loss(
                    &loss_ctx,
                    members,
                    lobby,
                    &mut joins,
                    &mut faults,
                    &mut stopped,
                    agent_id,
                    &region,
                )
                .await
                {
                    stop_all(
                        members,
                        &run_id,
                        "another agent was lost (on_agent_loss: fail)",
                    )
                    .await;
                    deadline = deadline.min(Instant::now() + STOP_COLLECT);
                }
            }
            Some(RunCommand::Register { register, outbound }) => {
                hold(scenario, members, lobby, register, outbound).await;
                if scenario.faults.late_joiners == LateJoiners::TakeOver {
                    joins.offer(&loss_ctx, lobby).await;
                }
            }
            None => break,
        }
        shown_intervals = announce_closed(
            &mut merge,
            shown_intervals,
            &run_id,
            start_unix_nanos,
            events,
            &mut faults,
        );
    }

    // 5. Release the agents (for good, if the series is over) and write up.
    merge.close_all();
    announce_closed(
        &mut merge,
        shown_intervals,
        &run_id,
        start_unix_nanos,
        events,
        &mut faults,
    );
    let meta: BTreeMap<Uuid, AgentMeta> = members
        .iter()
        .map(|m| {
            let state = match m.state {
                MemberState::Finished => "finished",
                MemberState::Lost => "lost",
                _ => "unfinished",
            };
            (
                m.id,
                AgentMeta {
                    zone: m.zone.clone(),
                    hostname: m.hostname.clone(),
                    state: state.into(),
                    clock: m.clock,
                    lost_at_s: m.lost_at_s,
                },
            )
        })
        .collect();
    let failed = faults.failed();
    let (notes, faults) = faults.finish();
    let report = build::build(ReportInput {
        run_id: &run_id,
        scenario,
        merge: &merge,
        agents: &meta,
        start_unix_nanos,
        notes,
        faults,
        failed,
        // The caller knows the series (or search) and says.
        series: None,
    });
    events.send(|| RunEvent::Finished(Arc::new(report.clone())));
    Ok(report)
}

/// Logs (and sends as events) the intervals closed since the first
/// `shown`, then adds the cumulative figures their reports left waiting
/// ([`RunMerge::settle`]: after the close, not on the way to it); returns
/// how many are shown now. Each closed interval's histograms are decoded
/// once, here. Reports whose phase histograms did not decode when settled
/// become faults of their agents.
fn announce_closed(
    merge: &mut RunMerge,
    shown: usize,
    run_id: &str,
    start_unix_nanos: i64,
    events: &Events,
    faults: &mut FaultLog,
) -> usize {
    for closed in &merge.intervals()[shown..] {
        let warmup = merge.is_warmup(closed.index);
        let mut snapshot = IntervalSnapshot::of(run_id, closed, start_unix_nanos, warmup);
        if events.is_on() {
            // Only a listener needs the regions: decode them only then.
            snapshot = snapshot.with_regions(closed);
        }
        let g = &snapshot.global;
        // How long after its end the interval could be closed: the time
        // the last agent's report took to arrive and be merged.
        let closed_after_ms = (build::unix_nanos_now() - closed.end_unix_nanos) as f64 / 1e6;
        info!(
            interval = closed.index,
            closed_after_ms = format!("{closed_after_ms:.1}"),
            rps = format!("{:.1}", g.rps),
            errors = g.errors.total,
            p50 = %micros(g.latency.p50),
            p99 = %micros(g.latency.p99),
            "interval"
        );
        events.send(|| RunEvent::IntervalClosed(Arc::new(snapshot)));
    }
    let closed = merge.intervals().len();
    if closed > shown {
        merge.settle();
    }
    // Also after `close_all` and after a settle forced by the pending
    // limit in `RunMerge::add`.
    for d in merge.take_dropped_phases() {
        faults.phases_dropped(d.agent_id, &d.region, d.index, &d.error.to_string());
    }
    closed
}

/// Rounds of the clock exchange before each run.
const CLOCK_ROUNDS: u32 = 5;
/// How long one round waits for the agents' replies.
const CLOCK_ROUND_TIMEOUT: Duration = Duration::from_secs(2);

/// Measures every agent's clock offset (NTP-style, best of a few rounds).
/// An agent that does not answer in time keeps offset 0, with a warning.
async fn sync_clocks(
    scenario: &Scenario,
    members: &mut [Member],
    lobby: &mut Vec<Member>,
    commands: &mut mpsc::Receiver<RunCommand>,
    cancel: &CancellationToken,
) -> Result<(), RunError> {
    for m in members.iter_mut() {
        m.clock = None;
    }
    for seq in 0..CLOCK_ROUNDS {
        let sent = build::unix_nanos_now();
        for m in members.iter() {
            let probe = v1::ClockProbe {
                seq,
                sent_unix_nanos: sent,
            };
            let _ = m
                .outbound
                .send(msg(coordinator_message::Kind::ClockProbe(probe)))
                .await;
        }
        let mut waiting = members.len();
        let give_up = Instant::now() + CLOCK_ROUND_TIMEOUT;
        while waiting > 0 {
            let command = tokio::select! {
                _ = cancel.cancelled() => return Err(RunError::Cancelled),
                _ = sleep_until(give_up) => break,
                command = commands.recv() => command,
            };
            match command {
                Some(RunCommand::FromAgent {
                    agent_id,
                    message: agent_message::Kind::ClockReply(r),
                }) if r.seq == seq && r.probe_sent_unix_nanos == sent => {
                    let arrived = build::unix_nanos_now();
                    if let Some(m) = members.iter_mut().find(|m| m.id == agent_id) {
                        let sample = ClockSample::from_exchange(
                            sent,
                            r.received_unix_nanos,
                            r.replied_unix_nanos,
                            arrived,
                        );
                        m.clock = Some(sample.better(m.clock));
                        waiting -= 1;
                    }
                }
                Some(RunCommand::Disconnected { agent_id }) => {
                    finish_all(members, "", false).await;
                    let region = region_of(members, agent_id);
                    return Err(RunError::LostBeforeStart {
                        agent: agent_id,
                        region,
                    });
                }
                Some(RunCommand::Register { register, outbound }) => {
                    hold(scenario, members, lobby, register, outbound).await
                }
                Some(_) => {}
                None => return Err(RunError::Cancelled),
            }
        }
    }
    for m in members.iter() {
        match m.clock {
            Some(c) => info!(agent = %m.id, region = %m.region,
                offset_ms = format!("{:.3}", c.offset_nanos as f64 / 1e6),
                rtt_ms = format!("{:.3}", c.rtt_nanos as f64 / 1e6), "agent clock"),
            None => warn!(agent = %m.id, region = %m.region,
                "agent answered no clock probe; its start time assumes our clock"),
        }
    }
    Ok(())
}

fn all_present(scenario: &Scenario, members: &[Member]) -> bool {
    scenario
        .regions
        .iter()
        .all(|r| members.iter().filter(|m| m.region == r.name).count() as u32 >= r.agents)
}

fn region_of(members: &[Member], id: Uuid) -> String {
    members
        .iter()
        .find(|m| m.id == id)
        .map(|m| m.region.clone())
        .unwrap_or_default()
}

async fn refuse(outbound: &Outbound, reason: &str) {
    let refused = v1::Refused {
        reason: reason.into(),
    };
    let _ = outbound
        .send(msg(coordinator_message::Kind::Refused(refused)))
        .await;
}

/// Takes an agent into the run if its region still needs one.
async fn admit(
    scenario: &Scenario,
    members: &mut Vec<Member>,
    register: v1::Register,
    outbound: Outbound,
    events: &Events,
) {
    let Ok(id) = Uuid::parse_str(&register.agent_id) else {
        return refuse(
            &outbound,
            &format!("agent id {:?} is not a uuid", register.agent_id),
        )
        .await;
    };
    let Some(region) = scenario.region(&register.region) else {
        let known: Vec<&str> = scenario.regions.iter().map(|r| r.name.as_str()).collect();
        warn!(agent = %id, region = %register.region, "agent from a region the scenario does not list; refused");
        let reason = format!(
            "region {:?} is not in scenario {:?} (its regions: {})",
            register.region,
            scenario.name,
            known.join(", ")
        );
        return refuse(&outbound, &reason).await;
    };
    if members.iter().any(|m| m.id == id) {
        return refuse(&outbound, "an agent with this id is already registered").await;
    }
    let have = members.iter().filter(|m| m.region == region.name).count() as u32;
    if have >= region.agents {
        let reason = format!(
            "region {} already has its {} agent(s)",
            region.name, region.agents
        );
        return refuse(&outbound, &reason).await;
    }
    info!(agent = %id, region = %register.region, zone = %register.zone, host = %register.hostname,
        version = %register.version, "agent registered ({} of {} in its region)", have + 1, region.agents);
    let registered = v1::Registered {
        coordinator_version: env!("CARGO_PKG_VERSION").into(),
    };
    let _ = outbound
        .send(msg(coordinator_message::Kind::Registered(registered)))
        .await;
    events.send(|| RunEvent::AgentJoined {
        agent: id,
        region: register.region.clone(),
    });
    members.push(Member {
        id,
        region: register.region,
        zone: register.zone,
        hostname: register.hostname,
        outbound,
        state: MemberState::Registered,
        clock: None,
        last_heard: Instant::now(),
        lost_at_s: None,
    });
}

/// A run is under way: an agent that registers now is told it is
/// registered and waits for the next run (of a series, or the next scenario
/// a standing coordinator is given); [`seat_waiting`] seats it then.
async fn hold(
    scenario: &Scenario,
    members: &[Member],
    lobby: &mut Vec<Member>,
    register: v1::Register,
    outbound: Outbound,
) {
    let Ok(id) = Uuid::parse_str(&register.agent_id) else {
        return refuse(
            &outbound,
            &format!("agent id {:?} is not a uuid", register.agent_id),
        )
        .await;
    };
    if scenario.region(&register.region).is_none() {
        let reason = format!(
            "region {:?} is not in scenario {:?}",
            register.region, scenario.name
        );
        warn!(agent = %id, region = %register.region, "late agent from a region the scenario does not list; refused");
        return refuse(&outbound, &reason).await;
    }
    if members.iter().chain(lobby.iter()).any(|m| m.id == id) {
        return refuse(&outbound, "an agent with this id is already registered").await;
    }
    info!(agent = %id, region = %register.region, host = %register.hostname,
        "agent registered while a run is under way: it waits for the next run");
    let registered = v1::Registered {
        coordinator_version: env!("CARGO_PKG_VERSION").into(),
    };
    let _ = outbound
        .send(msg(coordinator_message::Kind::Registered(registered)))
        .await;
    lobby.push(Member {
        id,
        region: register.region,
        zone: register.zone,
        hostname: register.hostname,
        outbound,
        state: MemberState::Registered,
        clock: None,
        last_heard: Instant::now(),
        lost_at_s: None,
    });
}

/// Seats agents that waited in the lobby where the scenario still has room,
/// in the order they came; the rest wait on (a region that is full) or are
/// refused (a region the scenario does not list).
async fn seat_waiting(
    scenario: &Scenario,
    members: &mut Vec<Member>,
    lobby: &mut Vec<Member>,
    events: &Events,
) {
    let mut still_waiting = Vec::new();
    for mut m in lobby.drain(..) {
        let Some(region) = scenario.region(&m.region) else {
            let reason = format!(
                "region {:?} is not in scenario {:?}",
                m.region, scenario.name
            );
            refuse(&m.outbound, &reason).await;
            continue;
        };
        let have = members.iter().filter(|o| o.region == m.region).count() as u32;
        if have >= region.agents {
            still_waiting.push(m);
            continue;
        }
        info!(agent = %m.id, region = %m.region, "agent that waited for this run joins it");
        events.send(|| RunEvent::AgentJoined {
            agent: m.id,
            region: m.region.clone(),
        });
        m.state = MemberState::Registered;
        members.push(m);
    }
    *lobby = still_waiting;
}

/// Tells every running agent to stop now.
async fn stop_all(members: &[Member], run_id: &str, reason: &str) {
    for m in members.iter().filter(|m| m.state == MemberState::Running) {
        let stop = v1::Stop {
            run_id: run_id.to_owned(),
            reason: reason.to_owned(),
        };
        let _ = m
            .outbound
            .send(msg(coordinator_message::Kind::Stop(stop)))
            .await;
    }
}

/// What a run under way needs to act on an agent's loss.
struct LossContext<'a> {
    scenario: &'a Scenario,
    run_id: &'a str,
    start_unix_nanos: i64,
    /// Each agent's slice of the run, as assigned (one plan per endpoint
    /// it sends to).
    plans: &'a HashMap<Uuid, Vec<LoadPlan>>,
}

/// How far ahead of the loss a takeover begins: time for the message to
/// reach the survivors before the first request of the share is due.
const TAKEOVER_LEAD: Duration = Duration::from_secs(1);

/// Applies the scenario's `on_agent_loss` (and `late_joiners`) to a loss;
/// true when the run must now stop on every agent.
#[allow(clippy::too_many_arguments)]
async fn on_loss(
    ctx: &LossContext<'_>,
    members: &[Member],
    lobby: &[Member],
    joins: &mut LateJoins,
    faults: &mut FaultLog,
    stopped: &mut bool,
    agent: Uuid,
    region: &str,
) -> bool {
    match ctx.scenario.faults.on_agent_loss {
        OnAgentLoss::Continue => {
            open_share(ctx, lobby, joins, agent, region).await;
            false
        }
        OnAgentLoss::Fail if *stopped => false,
        OnAgentLoss::Fail => {
            *stopped = true;
            faults.run_failed(agent, region);
            true
        }
        OnAgentLoss::Redistribute if *stopped => false,
        OnAgentLoss::Redistribute => {
            if !take_over(ctx, members, faults, agent, region).await {
                open_share(ctx, lobby, joins, agent, region).await;
            }
            false
        }
    }
}

/// With `late_joiners: take_over`, a share nobody took over is free for a
/// late agent of the region (one may be waiting already).
async fn open_share(
    ctx: &LossContext<'_>,
    lobby: &[Member],
    joins: &mut LateJoins,
    agent: Uuid,
    region: &str,
) {
    if ctx.scenario.faults.late_joiners == LateJoiners::TakeOver {
        joins.share_open(agent, region);
        joins.offer(ctx, lobby).await;
    }
}

/// Sends the lost agent's share to the agents still running in its region,
/// from the start of an interval at least [`TAKEOVER_LEAD`] ahead; false
/// when nobody could take it.
async fn take_over(
    ctx: &LossContext<'_>,
    members: &[Member],
    faults: &mut FaultLog,
    agent: Uuid,
    region: &str,
) -> bool {
    let Some(lost) = ctx.plans.get(&agent).filter(|legs| !legs.is_empty()) else {
        faults.not_redistributed(agent, region, "it had no assignment");
        return false;
    };
    let survivors: Vec<&Member> = members
        .iter()
        .filter(|m| m.region == region && m.state == MemberState::Running)
        .collect();
    if survivors.is_empty() {
        faults.not_redistributed(agent, region, "no agent of its region is left");
        return false;
    }
    let elapsed = (build::unix_nanos_now() - ctx.start_unix_nanos).max(0) as u128;
    let interval = lost[0].interval.as_nanos().max(1);
    let begin_nanos = (elapsed + TAKEOVER_LEAD.as_nanos()).div_ceil(interval) * interval;
    let begin = Duration::from_nanos(u64::try_from(begin_nanos).unwrap_or(u64::MAX));
    // Each leg (endpoint) of the lost agent's load, split among the survivors.
    let per_leg: Vec<Vec<LoadPlan>> = lost
        .iter()
        .map(|leg| redistribute::takeover(leg, begin, survivors.len()))
        .collect();
    let parts = per_leg.iter().map(Vec::len).max().unwrap_or(0);
    if parts == 0 {
        faults.not_redistributed(agent, region, "the run ends before a takeover could begin");
        return false;
    }
    for (i, m) in survivors.iter().enumerate() {
        for plan in per_leg.iter().filter_map(|parts| parts.get(i)) {
            let reinforce = v1::Reinforce {
                run_id: ctx.run_id.to_owned(),
                slice: Some(stampede_agent::wire::slice_from_plan(plan)),
                reason: format!("agent {agent} ({region}) was lost"),
            };
            let _ = m
                .outbound
                .send(msg(coordinator_message::Kind::Reinforce(reinforce)))
                .await;
        }
    }
    faults.redistributed(
        agent,
        region,
        begin.as_secs_f64(),
        parts.min(survivors.len()),
    );
    true
}

/// An agent's assignment: its first plan as the slice, any others (one per
/// further endpoint) after it.
fn assignment_of(run_id: &str, legs: &[LoadPlan]) -> v1::Assignment {
    let mut slices = legs.iter().map(stampede_agent::wire::slice_from_plan);
    v1::Assignment {
        run_id: run_id.to_owned(),
        slice: slices.next(),
        more_slices: slices.collect(),
    }
}

/// Releases the agents from the run; `more_runs`: the series goes on, so
/// agents started for one run stay.
async fn finish_all(members: &[Member], run_id: &str, more_runs: bool) {
    for m in members {
        let done = v1::RunFinished {
            run_id: run_id.into(),
            more_runs,
        };
        let _ = m
            .outbound
            .send(msg(coordinator_message::Kind::RunFinished(done)))
            .await;
    }
}
