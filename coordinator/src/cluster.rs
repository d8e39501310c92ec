//! Wires a coordinator together: the gRPC server on a listener, the run
//! actor behind it, and an orderly shutdown of both.

use crate::report::model::RunReport;
use crate::run::{self, RunError};
use crate::scenario::Scenario;
use crate::service::{AgentSessionService, MAX_MESSAGE_BYTES};
use stampede_proto::v1::agent_session_server::AgentSessionServer;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// How long the gRPC server may take to close sessions after the run.
const SERVER_DRAIN: Duration = Duration::from_secs(2);

/// Serves agents on `listener` and runs `scenario` once. `cancel` stops the
/// run early (the report is then partial).
pub async fn run_coordinator(
    scenario: Scenario,
    listener: TcpListener,
    cancel: CancellationToken,
) -> Result<RunReport, RunError> {
    let (commands_tx, commands_rx) = mpsc::channel(1024);
    let service = AgentSessionServer::new(AgentSessionService::new(commands_tx))
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let shutdown = CancellationToken::new();
    let server = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        // Pings notice an agent behind a cut link within a few seconds; its
        // session then ends and the run marks it lost.
        .http2_keepalive_interval(Some(Duration::from_secs(1)))
        .http2_keepalive_timeout(Some(Duration::from_secs(3)))
        .add_service(service)
        .serve_with_incoming_shutdown(
            TcpListenerStream::new(listener),
            shutdown.clone().cancelled_owned(),
        );
    let mut server = tokio::spawn(server);

    let result = tokio::select! {
        result = run::run(scenario, commands_rx, cancel) => result,
        served = &mut server => {
            // The server only ends on its own if it failed.
            warn!(?served, "gRPC server stopped unexpectedly");
            return Err(RunError::Server(format!("{served:?}")));
        }
    };
    shutdown.cancel();
    if tokio::time::timeout(SERVER_DRAIN, &mut server)
        .await
        .is_err()
    {
        server.abort();
    }
    result
}
