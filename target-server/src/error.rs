//! Errors a target server can report to its caller.

use std::net::SocketAddr;

/// Why a target server could not start or keep serving.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The listening socket could not be bound (address in use, no permission, ...).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address from the config.
        addr: SocketAddr,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The bound socket could not report its address.
    #[error("cannot read the target's listening address: {0}")]
    LocalAddr(#[source] std::io::Error),
    /// A configured region name could never be selected by a request.
    #[error("invalid region name {name:?} in the target config: {reason}")]
    InvalidRegion {
        /// The name as configured.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The TLS certificate, key or client CA is unusable.
    #[error("target TLS: {0}")]
    Tls(String),
    /// The KServe mock's UNAVAILABLE share is not in 0..=1.
    #[error("invalid UNAVAILABLE share {0}: must be between 0 and 1")]
    InvalidShare(f64),
    /// The gRPC server failed.
    #[error("the KServe gRPC mock failed: {0}")]
    Grpc(String),
    /// A configured capacity is not a positive number of requests per second.
    #[error(
        "invalid capacity {value} for {scope}: must be a positive number of requests per second, at most 1e9"
    )]
    InvalidCapacity {
        /// `the server` or `region NAME`.
        scope: String,
        /// As configured.
        value: f64,
    },
}
