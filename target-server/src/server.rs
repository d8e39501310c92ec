//! The listener and connection loop: accept, serve HTTP/1.1 (keep-alive) and HTTP/2 (h2c with prior
//! knowledge on a plain port; h2 by ALPN over TLS), stop on cancellation.

use std::cell::RefCell;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::TargetConfig;
use crate::error::TargetError;
use crate::handler::Handler;
use crate::region::check_region_name;
use crate::stats::TargetStats;

/// After cancellation, how long `run` lets in-flight requests finish before dropping their connections.
///
/// Idle keep-alive connections close at once; this only bounds requests still waiting out a delay or a
/// stall, so that stopping a target never hangs on a long stall.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Pause after a failed `accept` (typically out of file descriptors), so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// A TLS client that has not finished its handshake by then is dropped.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound, not yet running, target server.
///
/// Binding and running are separate so the caller can learn the port (when listening on port 0) and
/// take a stats handle before it starts serving.
pub struct TargetServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    handler: Arc<Handler>,
    tls: Option<TlsAcceptor>,
}

impl std::fmt::Debug for TargetServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetServer")
            .field("local_addr", &self.local_addr)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl TargetServer {
    /// Checks the config and binds the listening socket.
    pub async fn bind(config: TargetConfig) -> Result<TargetServer, TargetError> {
        for name in config
            .region_delays
            .keys()
            .chain(config.region_capacities.keys())
        {
            check_region_name(name).map_err(|reason| TargetError::InvalidRegion {
                name: name.clone(),
                reason,
            })?;
        }
        let capacities = config
            .capacity
            .map(|c| ("the server".to_owned(), c))
            .into_iter()
            .chain(
                config
                    .region_capacities
                    .iter()
                    .map(|(name, c)| (format!("region {name}"), *c)),
            );
        for (scope, value) in capacities {
            if !(value.is_finite() && value > 0.0 && value <= crate::capacity::MAX_CAPACITY) {
                return Err(TargetError::InvalidCapacity { scope, value });
            }
        }
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| TargetError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let tls = config.tls.as_ref().map(crate::tls::acceptor).transpose()?;
        let local_addr = listener.local_addr().map_err(TargetError::LocalAddr)?;
        Ok(TargetServer {
            listener,
            local_addr,
            handler: Arc::new(Handler::new(&config)),
            tls,
        })
    }

    /// The address actually bound (with the real port when the config asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `https` when serving TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// A handle on the served-request counters; it stays valid after the server stops.
    pub fn stats(&self) -> TargetStats {
        self.handler.stats().clone()
    }

    /// Serves until `cancel` fires, then stops accepting and returns promptly.
    ///
    /// On cancellation idle keep-alive connections are closed at once, and requests in flight get up to
    /// [`SHUTDOWN_GRACE`] to be answered before their connections are dropped.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), TargetError> {
        let TargetServer {
            listener,
            local_addr,
            handler,
            tls,
        } = self;
        // HTTP/1.1 or HTTP/2, told apart by the connection's first bytes (the h2 preface).
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // The timer enables hyper's header-read timeout, so a silent client cannot hold a connection forever;
        // pipeline_flush batches the answers to pipelined requests into fewer writes.
        builder
            .http1()
            .keep_alive(true)
            .timer(TokioTimer::new())
            .pipeline_flush(true);
        builder.http2().timer(TokioTimer::new());

        tracing::info!(%local_addr, "stampede target listening");
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                // Reap finished connection tasks so the set does not grow with the total connection count.
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        handler.stats().record_connection();
                        let task = accept(stream, peer, tls.clone(), builder.clone(), Arc::clone(&handler), cancel.clone());
                        connections.spawn(task);
                    }
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        tokio::select! {
                            () = cancel.cancelled() => break,
                            () = tokio::time::sleep(ACCEPT_ERROR_BACKOFF) => {}
                        }
                    }
                },
            }
        }
        drop(listener);

        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::debug!(
                open = connections.len(),
                "dropping connections still busy after the grace period"
            );
            connections.shutdown().await;
        }
        tracing::info!(%local_addr, "stampede target stopped");
        Ok(())
    }
}

/// Sets up one accepted connection (TLS handshake when serving TLS), then serves it.
async fn accept(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    builder: auto::Builder<TokioExecutor>,
    handler: Arc<Handler>,
    cancel: CancellationToken,
) {
    // Responses are small and latency is what is measured: never let Nagle hold one back.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%peer, %error, "cannot set TCP_NODELAY");
    }
    let Some(tls) = tls else {
        return serve(stream, peer, builder, handler, cancel).await;
    };
    let handshake = tokio::select! {
        () = cancel.cancelled() => return,
        result = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(stream)) => result,
    };
    match handshake {
        Ok(Ok(stream)) => serve(stream, peer, builder, handler, cancel).await,
        // Clients that do not trust us, or offer nothing we speak, are routine in TLS tests.
        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}

/// Serves one connection until the client closes it or the server is cancelled.
async fn serve<S>(
    stream: S,
    peer: SocketAddr,
    builder: auto::Builder<TokioExecutor>,
    handler: Arc<Handler>,
    cancel: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // One RNG per connection: no sharing, no locking. It is only borrowed inside `plan`, never across an await.
    let rng = RefCell::new(fastrand::Rng::new());
    let service = service_fn(move |req| {
        let handler = Arc::clone(&handler);
        let plan = handler.plan(&req, &mut rng.borrow_mut());
        async move { Ok::<_, Infallible>(handler.respond(req, plan).await) }
    });
    let mut conn = pin!(builder.serve_connection(TokioIo::new(stream), service));
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = cancel.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(error) = result {
        // Clients resetting or timing out is routine under load; not worth more than debug.
        tracing::debug!(%peer, %error, "connection ended with an error");
    }
}
