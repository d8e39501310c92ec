//! The run API over gRPC (`stampede.v1.ControlService`), served on the
//! agents' port with its TLS/mTLS. The same calls as the HTTP facade, on
//! the same queue actor and history; every call must carry the token.
//! Conversions between the wire types and ours happen here, at the edge.

use super::SharedHistory;
use super::api::WireEvent;
use super::queue::{QueueError, QueueRequest};
use crate::events::RunEvent;
use crate::history::{HistoryFilter, RunRow, RunState, now_ms, parse_time};
use stampede_proto::security::{SharedToken, TOKEN_METADATA_KEY};
use stampede_proto::v1::{self, control_service_server::ControlService};
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::warn;

pub struct ControlApi {
    token: SharedToken,
    queue: mpsc::Sender<QueueRequest>,
    history: SharedHistory,
}

impl ControlApi {
    pub fn new(
        token: SharedToken,
        queue: mpsc::Sender<QueueRequest>,
        history: SharedHistory,
    ) -> Self {
        Self {
            token,
            queue,
            history,
        }
    }

    fn check<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let presented = request.metadata().get(TOKEN_METADATA_KEY);
        if self.token.accepts(presented.map(|v| v.as_bytes())) {
            Ok(())
        } else {
            warn!(peer = ?request.remote_addr(), "run API call refused: missing or wrong token");
            Err(Status::unauthenticated(
                "missing or wrong token: send `authorization: Bearer TOKEN` with the coordinator's token",
            ))
        }
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, QueueError>>) -> QueueRequest,
    ) -> Result<T, Status> {
        let (reply, answer) = oneshot::channel();
        let gone = || Status::unavailable("the coordinator is shutting down");
        self.queue.send(make(reply)).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?.map_err(status)
    }
}

fn status(e: QueueError) -> Status {
    match &e {
        QueueError::Invalid(_) => Status::invalid_argument(e.to_string()),
        QueueError::NotFound(_) => Status::not_found(e.to_string()),
        QueueError::Over { .. } => Status::failed_precondition(e.to_string()),
        QueueError::History(_) => Status::internal(e.to_string()),
    }
}

fn info(row: RunRow) -> v1::RunInfo {
    v1::RunInfo {
        id: row.id,
        scenario_name: row.scenario_name,
        scenario_file: row.scenario_file,
        labels: row.labels,
        git_sha: row.git_sha.unwrap_or_default(),
        state: row.state,
        submitted_at_ms: row.submitted_at_ms,
        started_at_ms: row.started_at_ms,
        finished_at_ms: row.finished_at_ms,
        error: row.error.unwrap_or_default(),
        summary: row.summary.map(|s| v1::RunSummary {
            requests: s.requests,
            achieved_rps: s.achieved_rps,
            p50_us: s.p50_us,
            p99_us: s.p99_us,
            error_rate: s.error_rate,
        }),
        intervals: row.intervals,
    }
}

fn event_json(event: &RunEvent) -> v1::RunEventJson {
    v1::RunEventJson {
        json: serde_json::to_string(&WireEvent::from(event)).unwrap_or_default(),
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<v1::RunEventJson, Status>> + Send>>;

#[tonic::async_trait]
impl ControlService for ControlApi {
    type WatchRunStream = EventStream;

    async fn submit_run(
        &self,
        request: Request<v1::SubmitRunRequest>,
    ) -> Result<Response<v1::RunInfo>, Status> {
        self.check(&request)?;
        let r = request.into_inner();
        let row = self
            .ask(|reply| QueueRequest::Submit {
                file: r.scenario_file,
                text: r.scenario_text,
                labels: r.labels,
                git_sha: (!r.git_sha.is_empty()).then_some(r.git_sha),
                reply,
            })
            .await?;
        Ok(Response::new(info(row)))
    }

    async fn list_runs(
        &self,
        request: Request<v1::ListRunsRequest>,
    ) -> Result<Response<v1::ListRunsResponse>, Status> {
        self.check(&request)?;
        let r = request.into_inner();
        let now = now_ms();
        let time = |field: &str, text: &str| {
            (!text.is_empty())
                .then(|| {
                    parse_time(text, now)
                        .map_err(|e| Status::invalid_argument(format!("{field}: {e}")))
                })
                .transpose()
        };
        let filter = HistoryFilter {
            scenario: (!r.scenario.is_empty()).then_some(r.scenario),
            labels: r.labels,
            since_ms: time("since", &r.since)?,
            until_ms: time("until", &r.until)?,
            state: match r.state.as_str() {
                "" => None,
                s => Some(RunState::parse(s).ok_or_else(|| {
                    Status::invalid_argument(format!(
                        "state {s:?}: give queued, running, passed, failed, aborted or error"
                    ))
                })?),
            },
            limit: (r.limit > 0).then_some(r.limit),
        };
        let rows = self
            .history
            .lock()
            .list(&filter)
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(v1::ListRunsResponse {
            runs: rows.into_iter().map(info).collect(),
        }))
    }

    async fn get_run(&self, request: Request<v1::RunId>) -> Result<Response<v1::RunInfo>, Status> {
        self.check(&request)?;
        let id = request.into_inner().id;
        match self.history.lock().get(&id) {
            Ok(Some(row)) => Ok(Response::new(info(row))),
            Ok(None) => Err(Status::not_found(format!("no run {id}"))),
            Err(e) => Err(Status::internal(e.to_string())),
        }
    }

    async fn get_report(
        &self,
        request: Request<v1::RunId>,
    ) -> Result<Response<v1::ReportJson>, Status> {
        self.check(&request)?;
        let id = request.into_inner().id;
        match self.history.lock().report(&id) {
            Ok(Some(report)) => Ok(Response::new(v1::ReportJson {
                json: serde_json::to_string(&report)
                    .map_err(|e| Status::internal(e.to_string()))?,
            })),
            Ok(None) => Err(Status::not_found(format!("run {id} has no report (yet)"))),
            Err(e) => Err(Status::not_found(e.to_string())),
        }
    }

    async fn watch_run(
        &self,
        request: Request<v1::RunId>,
    ) -> Result<Response<Self::WatchRunStream>, Status> {
        self.check(&request)?;
        let id = request.into_inner().id;
        let owned = id.clone();
        let (past, live) = match self
            .ask(|reply| QueueRequest::Watch { id: owned, reply })
            .await
        {
            Ok(log) => log.subscribe(),
            Err(s) if s.code() == tonic::Code::NotFound => match self.history.lock().report(&id) {
                Ok(Some(report)) => (vec![RunEvent::Finished(Arc::new(report))], None),
                Ok(None) => (Vec::new(), None),
                Err(e) => return Err(Status::not_found(e.to_string())),
            },
            Err(s) => return Err(s),
        };
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            for event in &past {
                if tx.send(Ok(event_json(event))).await.is_err() {
                    return;
                }
            }
            let Some(mut live) = live else { return };
            loop {
                match live.recv().await {
                    Ok(event) => {
                        if tx.send(Ok(event_json(&event))).await.is_err() {
                            return;
                        }
                    }
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn abort_run(
        &self,
        request: Request<v1::RunId>,
    ) -> Result<Response<v1::RunInfo>, Status> {
        self.check(&request)?;
        let id = request.into_inner().id;
        let row = self.ask(|reply| QueueRequest::Abort { id, reply }).await?;
        Ok(Response::new(info(row)))
    }
}
