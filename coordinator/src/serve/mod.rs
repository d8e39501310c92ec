//! A standing cluster (`stampede coordinator --serve`): a long-running
//! coordinator that keeps agents registered between runs and runs what is
//! submitted over its API, one run at a time, keeping every run in the
//! history database.
//!
//! - [`pool`]: the registered agents; [`queue`]: the actor that owns the
//!   pool, the queue and the run that goes on (wrapping `run.rs`'s actor).
//! - [`watch`]: each run's events kept for watchers; each closed interval
//!   written to the history as it closes.
//! - [`http`]: the HTTP/JSON API (bearer token), [`api`] its JSON, and
//!   [`client`] the side `stampede run` uses; [`grpc`]: the same API as
//!   `stampede.v1.ControlService`, on the agents' port (TLS/mTLS, token).

pub mod api;
pub mod client;
pub mod grpc;
pub mod http;
mod pool;
pub mod queue;
pub mod watch;

use crate::cluster::{ClusterOptions, start_agent_server, stop_agent_server};
use crate::history::{History, now_ms};
use crate::run::RunError;
use crate::service::MAX_MESSAGE_BYTES;
use queue::QueueActor;
use stampede_proto::security::SharedToken;
use stampede_proto::v1::control_service_server::ControlServiceServer;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The history, shared by the queue actor, the runs' recorders and the
/// API's readers. Each holds the lock for one short statement; SQLite
/// itself keeps the file consistent.
#[derive(Debug, Clone)]
pub struct SharedHistory(Arc<Mutex<History>>);

impl SharedHistory {
    pub fn new(history: History) -> Self {
        Self(Arc::new(Mutex::new(history)))
    }

    pub fn lock(&self) -> MutexGuard<'_, History> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How a standing coordinator serves.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Agents: TLS, mTLS, token, session cap (as for a one-shot run).
    pub cluster: ClusterOptions,
    /// The token every API call must carry (`Authorization: Bearer …`).
    pub api_token: SharedToken,
    /// Runs shown in an HTML report's trend section.
    pub trend_runs: u32,
}

/// Serves agents on `agents` and the run API on `api` until `shutdown`;
/// then stops the run that goes on (its partial report is kept, marked
/// aborted) and aborts the queued ones.
pub async fn serve(
    agents: TcpListener,
    api: TcpListener,
    history: History,
    options: ServeOptions,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    match history.recover(now_ms()) {
        Ok(0) => {}
        Ok(n) => warn!(
            runs = n,
            "runs a previous coordinator left unfinished are marked aborted (what they merged is kept)"
        ),
        Err(e) => return Err(RunError::Server(e.to_string())),
    }
    let history = SharedHistory::new(history);
    let (commands_tx, commands_rx) = mpsc::channel(1024);
    let (requests_tx, requests_rx) = mpsc::channel(64);
    let server_stop = CancellationToken::new();
    let control = grpc::ControlApi::new(
        options.api_token.clone(),
        requests_tx.clone(),
        history.clone(),
    );
    let control = ControlServiceServer::new(control).max_decoding_message_size(MAX_MESSAGE_BYTES);
    let mut server = start_agent_server(
        agents,
        &options.cluster,
        commands_tx,
        Some(control),
        server_stop.clone(),
    )?;
    let actor = QueueActor::new(history.clone(), options.cluster.max_agents);
    let mut actor = tokio::spawn(actor.run(commands_rx, requests_rx, shutdown.clone()));
    let api_stop = CancellationToken::new();
    let api_task = tokio::spawn(http::serve(
        api,
        http::Api {
            token: options.api_token,
            queue: requests_tx,
            history,
            trend_runs: options.trend_runs,
        },
        api_stop.clone(),
    ));
    info!("standing coordinator ready");
    let failed = tokio::select! {
        _ = &mut actor => None,
        served = &mut server => Some(format!("the agents' gRPC server stopped: {served:?}")),
    };
    if failed.is_some() {
        // The actor stops the run that goes on; it finishes before the
        // servers.
        shutdown.cancel();
        let _ = actor.await;
    }
    api_stop.cancel();
    let _ = api_task.await;
    stop_agent_server(server_stop, server).await;
    match failed {
        Some(why) => Err(RunError::Server(why)),
        None => Ok(()),
    }
}
