//! Prometheus metrics of a run: `/metrics` on `--metrics-listen`, and the
//! finished run pushed to a Pushgateway with `--pushgateway`.
//!
//! - [`state`]: what the page shows, kept up to date from the run's events;
//! - [`text`]: the text exposition format;
//! - [`http`]: the server and the push.

pub mod http;
pub mod state;
pub mod text;

use crate::events::EventReceiver;
use crate::report::build::unix_nanos_now;
use crate::report::model::RunReport;
use state::MetricsState;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::net::TcpListener;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// `/metrics`, served while the coordinator runs.
pub struct MetricsEndpoint {
    addr: SocketAddr,
    shutdown: CancellationToken,
    tasks: [JoinHandle<()>; 2],
}

impl MetricsEndpoint {
    /// Serves on `listener` what `events` tell about the run.
    pub fn start(listener: TcpListener, events: EventReceiver) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(MetricsState::new()));
        let shutdown = CancellationToken::new();
        let follower = tokio::spawn(follow(events, state.clone()));
        let page = Arc::new(move || {
            state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .render(unix_nanos_now())
        });
        let server = tokio::spawn(http::serve(listener, page, shutdown.clone()));
        Ok(Self {
            addr,
            shutdown,
            tasks: [follower, server],
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving (the coordinator is about to exit).
    pub async fn stop(self) {
        self.shutdown.cancel();
        let [follower, server] = self.tasks;
        follower.abort();
        let _ = server.await;
    }
}

/// Applies the run's events to `state` until the run's sender is gone.
async fn follow(mut events: EventReceiver, state: Arc<Mutex<MetricsState>>) {
    loop {
        match events.recv().await {
            Ok(event) => state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .apply(&event),
            Err(RecvError::Lagged(skipped)) => {
                warn!(
                    skipped,
                    "metrics fell behind the run; counters catch up when it finishes"
                )
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// A finished run's metrics, as the page would show them.
pub fn summary(report: &RunReport) -> String {
    MetricsState::finished(report).render(unix_nanos_now())
}

/// Pushes a finished run's [`summary`] to the Pushgateway at `base`
/// (grouped by job `stampede` and the run's id); returns where it went.
pub async fn push_summary(
    base: &url::Url,
    report: &RunReport,
) -> Result<url::Url, http::PushError> {
    let url = http::push_url(base, &report.run_id)?;
    http::push(&url, summary(report)).await?;
    Ok(url)
}
