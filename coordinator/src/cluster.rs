//! Wires a coordinator together: the gRPC server on a listener, the run
//! actor behind it, and an orderly shutdown of both.

use crate::events::{EventSender, Events};
use crate::report::model::RunReport;
use crate::run::{self, RunCommand, RunError, Series};
use crate::scenario::{Scenario, SearchSpec};
use crate::search::{self, SearchRun};
use crate::serve::grpc::ControlApi;
use crate::service::{AgentSessionService, DEFAULT_MAX_AGENTS, MAX_MESSAGE_BYTES};
use crate::tls::ServerTls;
use stampede_proto::security::SharedToken;
use stampede_proto::v1::agent_session_server::AgentSessionServer;
use stampede_proto::v1::control_service_server::ControlServiceServer;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// How long the gRPC server may take to close sessions after the run.
const SERVER_DRAIN: Duration = Duration::from_secs(2);

/// Who may join, how many, and who hears how the run goes.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// TLS (and mTLS); `None` serves plain text.
    pub tls: Option<ServerTls>,
    /// A token every agent must present.
    pub token: Option<SharedToken>,
    /// Most agent sessions open at once.
    pub max_agents: usize,
    /// Where the run actor sends [`RunEvent`](crate::events::RunEvent)s
    /// (the live view, the metrics endpoint).
    pub events: Option<EventSender>,
}

impl Default for ClusterOptions {
    /// Plain text, no token: for runs inside one process on loopback.
    fn default() -> Self {
        Self {
            tls: None,
            token: None,
            max_agents: DEFAULT_MAX_AGENTS,
            events: None,
        }
    }
}

/// Serves agents on `listener` (plain text, no token) and runs `scenario`
/// once. `cancel` stops the run early (the report is then partial).
pub async fn run_coordinator(
    scenario: Scenario,
    listener: TcpListener,
    cancel: CancellationToken,
) -> Result<RunReport, RunError> {
    run_coordinator_with(scenario, listener, ClusterOptions::default(), cancel).await
}

/// [`run_coordinator`] with TLS, a token and a cap on agents.
pub async fn run_coordinator_with(
    scenario: Scenario,
    listener: TcpListener,
    options: ClusterOptions,
    cancel: CancellationToken,
) -> Result<RunReport, RunError> {
    let mut series = run_series_with(scenario, listener, options, cancel).await?;
    match series.error.take() {
        Some(e) => Err(e),
        None => series.reports.pop().ok_or(RunError::Cancelled),
    }
}

/// Serves agents and runs `scenario` `scenario.repeat` times with them. An
/// error here is the server's (or a limit); a run's own failure is in
/// [`Series::error`], next to the reports of the runs before it.
pub async fn run_series_with(
    scenario: Scenario,
    listener: TcpListener,
    options: ClusterOptions,
    cancel: CancellationToken,
) -> Result<Series, RunError> {
    serve(
        scenario,
        listener,
        options,
        cancel,
        run::run_series_with_events,
    )
    .await
}

/// Serves agents and runs the capacity search `spec` of `scenario` with
/// them. An error here is the server's (or a limit); a probe's own failure
/// is in [`SearchRun::error`], next to the probes before it.
pub async fn run_search_with(
    scenario: Scenario,
    spec: SearchSpec,
    listener: TcpListener,
    options: ClusterOptions,
    cancel: CancellationToken,
) -> Result<SearchRun, RunError> {
    serve(
        scenario,
        listener,
        options,
        cancel,
        |scenario, commands, cancel, events| search::run(scenario, spec, commands, cancel, events),
    )
    .await
}

/// Serves agents on `listener` while `actor` runs on what they send, then
/// shuts the server down.
async fn serve<T, F>(
    scenario: Scenario,
    listener: TcpListener,
    options: ClusterOptions,
    cancel: CancellationToken,
    actor: impl FnOnce(Scenario, mpsc::Receiver<RunCommand>, CancellationToken, Events) -> F,
) -> Result<T, RunError>
where
    F: Future<Output = T>,
{
    let wanted = scenario.total_agents() as usize;
    if wanted > options.max_agents {
        return Err(RunError::AgentLimit {
            wanted,
            max: options.max_agents,
        });
    }
    let (commands_tx, commands_rx) = mpsc::channel(1024);
    let shutdown = CancellationToken::new();
    let mut server = start_agent_server(listener, &options, commands_tx, None, shutdown.clone())?;

    let result = tokio::select! {
        done = actor(scenario, commands_rx, cancel, Events::new(options.events)) => Ok(done),
        served = &mut server => {
            // The server only ends on its own if it failed.
            warn!(?served, "gRPC server stopped unexpectedly");
            return Err(RunError::Server(format!("{served:?}")));
        }
    };
    stop_agent_server(shutdown, server).await;
    result
}

/// The agents' gRPC server on `listener` (its TLS, token and session cap
/// from `options`), handing what agents send to `commands`, until
/// `shutdown`; with `control`, a standing coordinator's run API too.
pub(crate) fn start_agent_server(
    listener: TcpListener,
    options: &ClusterOptions,
    commands: mpsc::Sender<RunCommand>,
    control: Option<ControlServiceServer<ControlApi>>,
    shutdown: CancellationToken,
) -> Result<JoinHandle<Result<(), tonic::transport::Error>>, RunError> {
    let service = AgentSessionService::new(commands)
        .with_token(options.token.clone())
        .with_max_agents(options.max_agents);
    let service = AgentSessionServer::new(service).max_decoding_message_size(MAX_MESSAGE_BYTES);
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &options.tls {
        builder = builder
            .tls_config(tls.tonic_config())
            .map_err(|e| RunError::Server(format!("TLS: {e}")))?;
    }
    let server = builder
        .tcp_nodelay(true)
        // Pings notice an agent behind a cut link within a few seconds; its
        // session then ends and the run marks it lost. Only a connection
        // silent for a whole ping interval is pinged: at 1.5 s, agents that
        // report every second (the default interval) are never pinged mid-run,
        // so no ping is written amid the burst of their reports.
        .http2_keepalive_interval(Some(Duration::from_millis(1500)))
        .http2_keepalive_timeout(Some(Duration::from_secs(3)))
        .add_service(service)
        .add_optional_service(control)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown.cancelled_owned());
    Ok(tokio::spawn(server))
}

/// Stops the server `start_agent_server` started, giving its sessions
/// [`SERVER_DRAIN`] to close.
pub(crate) async fn stop_agent_server(
    shutdown: CancellationToken,
    mut server: JoinHandle<Result<(), tonic::transport::Error>>,
) {
    shutdown.cancel();
    if tokio::time::timeout(SERVER_DRAIN, &mut server)
        .await
        .is_err()
    {
        server.abort();
    }
}
