//! The queue actor: one task owning the standing cluster's agent pool, the
//! queue of submitted runs and the run that goes on. Agents' sessions send
//! it [`RunCommand`]s (as they would a run actor); the API sends it
//! [`QueueRequest`]s. One run at a time: it hands the run its agents and
//! forwards what they send, wrapping the run actor of `run.rs` unchanged.

use super::SharedHistory;
use super::pool::Pool;
use super::watch::{self, RunLog};
use crate::events::{self, EventSender, Events};
use crate::history::{self, RunRow, RunState, Submission, now_ms};
use crate::run::{self, RunCommand, RunError, Series};
use crate::scenario::{self, Scenario};
use stampede_proto::v1::agent_message;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

/// Finished runs whose events stay in memory for late watchers.
const KEPT_LOGS: usize = 16;

/// A refusal of the API, with the HTTP status it maps to.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The submission is not a valid scenario (or not one this server runs).
    #[error("{0}")]
    Invalid(String),
    #[error("no run {0}")]
    NotFound(String),
    /// The run is over; nothing to abort.
    #[error("run {id} is already {state}")]
    Over { id: String, state: String },
    #[error("{0}")]
    History(#[from] history::HistoryError),
}

pub type Reply<T> = oneshot::Sender<Result<T, QueueError>>;

/// What the API asks of the queue.
#[derive(Debug)]
pub enum QueueRequest {
    Submit {
        file: String,
        text: String,
        labels: Vec<String>,
        git_sha: Option<String>,
        reply: Reply<RunRow>,
    },
    Abort {
        id: String,
        reply: Reply<RunRow>,
    },
    /// The run's events so far and the live ones to come.
    Watch {
        id: String,
        reply: Reply<Arc<RunLog>>,
    },
}

/// A run waiting its turn.
struct Queued {
    id: String,
    scenario: Scenario,
    events: EventSender,
    /// Tells the recorder the run's end is in the history.
    written: oneshot::Sender<()>,
}

/// The run that goes on.
struct Current {
    id: String,
    /// Agents still wanted per region (for registrations that arrive while
    /// it gathers).
    regions: BTreeMap<String, u32>,
    commands: mpsc::Sender<RunCommand>,
    cancel: CancellationToken,
    aborted: bool,
    /// Its agents have been assigned: it takes no more registrations.
    past_gathering: bool,
    task: JoinHandle<Series>,
    written: oneshot::Sender<()>,
}

pub struct QueueActor {
    history: SharedHistory,
    max_agents: usize,
    pool: Pool,
    queue: VecDeque<Queued>,
    current: Option<Current>,
    logs: BTreeMap<String, Arc<RunLog>>,
    /// Finished runs' logs, oldest first, for eviction.
    finished: VecDeque<String>,
}

impl QueueActor {
    pub fn new(history: SharedHistory, max_agents: usize) -> Self {
        Self {
            history,
            max_agents,
            pool: Pool::default(),
            queue: VecDeque::new(),
            current: None,
            logs: BTreeMap::new(),
            finished: VecDeque::new(),
        }
    }

    /// Runs until `shutdown`; a run still going then is stopped (its
    /// partial report kept, marked aborted) and queued ones are aborted.
    pub async fn run(
        mut self,
        mut agents: mpsc::Receiver<RunCommand>,
        mut requests: mpsc::Receiver<QueueRequest>,
        shutdown: CancellationToken,
    ) {
        let mut stopping = false;
        loop {
            if stopping && self.current.is_none() {
                break;
            }
            tokio::select! {
                _ = shutdown.cancelled(), if !stopping => {
                    stopping = true;
                    self.stop();
                }
                command = agents.recv() => match command {
                    Some(command) => self.agent_command(command).await,
                    None => break,
                },
                request = requests.recv(), if !stopping => match request {
                    Some(request) => self.request(request).await,
                    None => {
                        stopping = true;
                        self.stop();
                    }
                },
                series = async { match &mut self.current {
                    Some(current) => (&mut current.task).await,
                    None => std::future::pending().await,
                } } => self.run_ended(series).await,
            }
        }
    }

    /// Aborts the queued runs and stops the current one (its agents' last
    /// reports are still forwarded while it stops).
    fn stop(&mut self) {
        for queued in std::mem::take(&mut self.queue) {
            self.finish(
                &queued.id,
                RunState::Aborted,
                None,
                Some("the coordinator stopped before its turn"),
            );
        }
        if let Some(current) = &mut self.current {
            current.aborted = true;
            current.cancel.cancel();
        }
    }

    async fn agent_command(&mut self, command: RunCommand) {
        match command {
            RunCommand::Register { register, outbound } => {
                let region = register.region.clone();
                self.pool.join(register, outbound).await;
                self.lend(&region).await;
            }
            RunCommand::Disconnected { agent_id } => {
                if let Some(region) = self.pool.leave(agent_id) {
                    self.forward(RunCommand::Disconnected { agent_id }).await;
                    // While it gathers, the run reopens the place: fill it.
                    self.lend(&region).await;
                }
            }
            RunCommand::FromAgent { agent_id, .. } | RunCommand::Interval { agent_id, .. } => {
                if self.pool.in_run(agent_id) {
                    // Agents speak of a run only once assigned: it is past
                    // gathering, and a registration now would wait for the
                    // next run. Heartbeats are not about the run: an agent
                    // lent early beats while the run still gathers.
                    let about_the_run = !matches!(
                        command,
                        RunCommand::FromAgent {
                            message: agent_message::Kind::Heartbeat(_),
                            ..
                        }
                    );
                    if about_the_run {
                        if let Some(current) = &mut self.current {
                            current.past_gathering = true;
                        }
                    }
                    self.forward(command).await;
                }
            }
        }
    }

    /// Hands the current run the idle agents of `region` it still wants,
    /// while it gathers: past that the run actor would refuse a
    /// registration (and a refused agent gives up for good), so later ones
    /// stay idle.
    async fn lend(&mut self, region: &str) {
        let Some(current) = &self.current else { return };
        if current.past_gathering {
            return;
        }
        let wanted = current.regions.get(region).copied().unwrap_or(0);
        let lent = self.pool.lend(region, wanted);
        for (register, outbound) in lent {
            self.forward(RunCommand::Register { register, outbound })
                .await;
        }
    }

    async fn forward(&self, command: RunCommand) {
        if let Some(current) = &self.current {
            // The run actor has ended when this fails; its end is handled
            // in the main loop.
            let _ = current.commands.send(command).await;
        }
    }

    async fn request(&mut self, request: QueueRequest) {
        match request {
            QueueRequest::Submit {
                file,
                text,
                labels,
                git_sha,
                reply,
            } => {
                let answer = self.submit(file, text, labels, git_sha).await;
                let _ = reply.send(answer);
            }
            QueueRequest::Abort { id, reply } => {
                let _ = reply.send(self.abort(&id));
            }
            QueueRequest::Watch { id, reply } => {
                let answer = self.logs.get(&id).cloned().ok_or(QueueError::NotFound(id));
                let _ = reply.send(answer);
            }
        }
    }

    async fn submit(
        &mut self,
        file: String,
        text: String,
        labels: Vec<String>,
        git_sha: Option<String>,
    ) -> Result<RunRow, QueueError> {
        let scenario =
            scenario::load_text(&file, &text).map_err(|e| QueueError::Invalid(e.to_string()))?;
        if scenario.search.is_some() {
            return Err(QueueError::Invalid(format!(
                "{file}: search: a capacity search runs on a one-shot coordinator (`stampede coordinator --scenario`), \
                 not on a standing one"
            )));
        }
        if scenario.repeat > 1 {
            return Err(QueueError::Invalid(format!(
                "{file}: repeat: a standing coordinator runs each submission once; submit it {} times instead",
                scenario.repeat
            )));
        }
        let wanted = scenario.total_agents() as usize;
        if wanted > self.max_agents {
            return Err(QueueError::Invalid(format!(
                "{file}: regions: the scenario needs {wanted} agents but --max-agents is {}",
                self.max_agents
            )));
        }
        if let Some(label) = labels.iter().find(|l| l.trim().is_empty() || l.len() > 200) {
            return Err(QueueError::Invalid(format!(
                "label {label:?}: a label is 1 to 200 characters"
            )));
        }
        let id = Uuid::new_v4().to_string();
        let submission = Submission {
            id: id.clone(),
            scenario_name: scenario.name.clone(),
            scenario_file: file,
            scenario_text: text,
            labels,
            git_sha,
            submitted_at_ms: now_ms(),
        };
        let row = {
            let history = self.history.lock();
            history.insert(&submission)?;
            history.get(&id)?
        };
        let row = row.ok_or_else(|| QueueError::NotFound(id.clone()))?;
        let (events, receiver) = events::channel();
        let log = RunLog::new();
        let (written, written_rx) = oneshot::channel();
        watch::record(
            id.clone(),
            receiver,
            log.clone(),
            self.history.clone(),
            written_rx,
        );
        self.logs.insert(id.clone(), log);
        info!(run = %id, scenario = %scenario.name, queued_behind = self.queue.len() + usize::from(self.current.is_some()), "run submitted");
        self.queue.push_back(Queued {
            id,
            scenario,
            events,
            written,
        });
        self.start_next().await;
        Ok(row)
    }

    fn abort(&mut self, id: &str) -> Result<RunRow, QueueError> {
        if let Some(pos) = self.queue.iter().position(|q| q.id == id) {
            if let Some(queued) = self.queue.remove(pos) {
                info!(run = %id, "queued run aborted");
                self.finish(
                    &queued.id,
                    RunState::Aborted,
                    None,
                    Some("aborted before its turn"),
                );
            }
        } else if let Some(current) = self.current.as_mut().filter(|c| c.id == id) {
            info!(run = %id, "aborting the run");
            current.aborted = true;
            current.cancel.cancel();
        } else {
            let row = self.history.lock().get(id)?;
            return match row {
                Some(row) => Err(QueueError::Over {
                    id: id.to_owned(),
                    state: row.state,
                }),
                None => Err(QueueError::NotFound(id.to_owned())),
            };
        }
        self.history
            .lock()
            .get(id)?
            .ok_or_else(|| QueueError::NotFound(id.to_owned()))
    }

    /// Starts the next queued run if none goes on.
    async fn start_next(&mut self) {
        if self.current.is_some() {
            return;
        }
        let Some(next) = self.queue.pop_front() else {
            return;
        };
        info!(run = %next.id, scenario = %next.scenario.name, agents = ?self.pool.regions(), "run starting its turn");
        let (commands, receiver) = mpsc::channel(1024);
        let cancel = CancellationToken::new();
        let regions = next
            .scenario
            .regions
            .iter()
            .map(|r| (r.name.clone(), r.agents))
            .collect::<BTreeMap<_, _>>();
        let task = tokio::spawn(run::run_series_with_events(
            next.scenario,
            receiver,
            cancel.clone(),
            Events::new(Some(next.events)),
        ));
        self.current = Some(Current {
            id: next.id,
            regions: regions.clone(),
            commands,
            cancel,
            aborted: false,
            past_gathering: false,
            task,
            written: next.written,
        });
        for region in regions.keys() {
            self.lend(region).await;
        }
    }

    async fn run_ended(&mut self, series: Result<Series, tokio::task::JoinError>) {
        let Some(current) = self.current.take() else {
            return;
        };
        self.pool.return_all();
        let id = current.id;
        match series {
            Ok(mut series) => match (series.reports.pop(), series.error.take()) {
                (Some(mut report), _) => {
                    // The run's id is the one the API gave at submission.
                    report.run_id = id.clone();
                    let state = if current.aborted {
                        RunState::Aborted
                    } else {
                        history::verdict(&report)
                    };
                    info!(run = %id, state = state.as_str(), "run ended");
                    self.finish(&id, state, Some(&report), None);
                }
                (None, error) => {
                    let error = error.unwrap_or(RunError::Cancelled);
                    let state = if current.aborted {
                        RunState::Aborted
                    } else {
                        RunState::Error
                    };
                    warn!(run = %id, error = %error, "run could not run");
                    self.finish(&id, state, None, Some(&error.to_string()));
                }
            },
            Err(e) => {
                warn!(run = %id, error = %e, "run task failed");
                self.finish(&id, RunState::Error, None, Some(&e.to_string()));
            }
        }
        // Only now may watchers' streams end: the run's end is written.
        let _ = current.written.send(());
        self.finished.push_back(id);
        while self.finished.len() > KEPT_LOGS {
            if let Some(old) = self.finished.pop_front() {
                self.logs.remove(&old);
            }
        }
        self.start_next().await;
    }

    fn finish(
        &self,
        id: &str,
        state: RunState,
        report: Option<&crate::report::model::RunReport>,
        error: Option<&str>,
    ) {
        if let Err(e) = self
            .history
            .lock()
            .finish(id, state, report, error, now_ms())
        {
            warn!(run = %id, error = %e, "could not write the run's end to the history");
        }
    }
}
