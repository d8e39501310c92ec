//! The load engine: worker threads that send requests and time them, and the
//! aggregator that adds the workers' interval recorders into the agent's.
//!
//! ```text
//!  worker thread 0 ─┐  WorkerInterval (per interval)
//!  worker thread 1 ─┼──────────────────────────────► aggregate ──► IntervalRecord ──► session
//!  worker thread n ─┘
//! ```

mod aggregate;
mod chunked;
mod connection;
mod grpc;
pub mod http1;
mod pacer;
mod request_set;
mod timing;
mod worker;

use crate::plan::LoadPlan;
use crate::recorder::{IntervalRecorder, OutcomeCounts};
use aggregate::Aggregator;
use connection::RunContext;
use request_set::RequestSet;
pub use request_set::RequestSetError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use worker::{WorkerSpec, run_worker};

/// How the engine uses this machine.
#[derive(Debug, Clone, Copy)]
pub struct EngineOptions {
    /// Worker threads (each with its own single-threaded runtime).
    pub threads: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// The agent's figures for one interval, all workers added together.
#[derive(Debug, Clone)]
pub struct IntervalRecord {
    pub index: u32,
    /// Offsets from the run's start.
    pub start: Duration,
    pub end: Duration,
    pub data: IntervalRecorder,
    /// The agent's final interval of the run.
    pub last: bool,
}

/// What the run added up to on this agent.
#[derive(Debug, Clone, Copy, Default)]
pub struct EngineSummary {
    pub intervals: u32,
    pub outcomes: OutcomeCounts,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the target address list is empty")]
    NoAddress,
    #[error("cannot prepare the requests: {0}")]
    Request(#[from] RequestSetError),
    #[error("cannot prepare the gRPC call: {0}")]
    Grpc(#[from] grpc::GrpcCallError),
    #[error("cannot start worker thread: {0}")]
    Thread(std::io::Error),
    #[error("a worker thread failed: {0}")]
    Worker(String),
}

/// Runs `plan` from `start` until done (or `cancel`), sending each interval's
/// record to `out` as soon as every worker has closed it.
pub async fn run(
    plan: LoadPlan,
    addrs: Vec<SocketAddr>,
    options: EngineOptions,
    start: Instant,
    cancel: CancellationToken,
    out: mpsc::Sender<IntervalRecord>,
) -> Result<EngineSummary, EngineError> {
    if addrs.is_empty() {
        return Err(EngineError::NoAddress);
    }
    let requests = RequestSet::new(&plan)?;
    let grpc = match &plan.grpc {
        Some(spec) => Some(Arc::new(grpc::PreparedCall::new(
            spec,
            &plan.requests[0].url,
        )?)),
        None => None,
    };
    let connections = plan.model.connections().max(1);
    let threads = options.threads.clamp(1, connections as usize);
    let interval = plan.interval;
    let ctx = Arc::new(RunContext {
        plan,
        requests,
        addrs,
        start,
    });

    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut handles = Vec::with_capacity(threads);
    for (id, range) in split_range(connections, threads).into_iter().enumerate() {
        let spec = WorkerSpec {
            id,
            connections: range,
        };
        let (ctx, cancel, tx, grpc) = (ctx.clone(), cancel.clone(), tx.clone(), grpc.clone());
        let handle = std::thread::Builder::new()
            .name(format!("stampede-worker-{id}"))
            .spawn(move || run_worker(spec, ctx, grpc, cancel, tx))
            .map_err(EngineError::Thread)?;
        handles.push(handle);
    }
    drop(tx);

    let mut aggregator = Aggregator::new(threads);
    let mut summary = EngineSummary::default();
    while let Some(piece) = rx.recv().await {
        for (index, data, last, closed_at) in aggregator.add(piece) {
            summary.intervals += 1;
            summary.outcomes.add(&data.outcomes);
            let record = IntervalRecord {
                index,
                start: interval * index,
                end: if last {
                    closed_at.saturating_duration_since(start)
                } else {
                    interval * (index + 1)
                },
                data,
                last,
            };
            // The session may have gone; the run still finishes cleanly.
            let _ = out.send(record).await;
        }
    }
    for handle in handles {
        match tokio::task::spawn_blocking(move || handle.join()).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => return Err(EngineError::Worker(e.to_string())),
            Ok(Err(_)) | Err(_) => {
                return Err(EngineError::Worker("worker thread panicked".into()));
            }
        }
    }
    Ok(summary)
}

/// Splits `0..n` into `parts` contiguous ranges whose sizes differ by at most one.
fn split_range(n: u32, parts: usize) -> Vec<std::ops::Range<u32>> {
    let parts = parts.max(1) as u32;
    let (base, extra) = (n / parts, n % parts);
    let mut start = 0;
    (0..parts)
        .map(|i| {
            let len = base + u32::from(i < extra);
            let range = start..start + len;
            start += len;
            range
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_connections_evenly() {
        assert_eq!(split_range(10, 3), vec![0..4, 4..7, 7..10]);
        assert_eq!(split_range(2, 2), vec![0..1, 1..2]);
    }
}
