//! The load engine: worker threads that send requests and time them, and the
//! aggregator that adds the workers' interval recorders into the agent's.
//!
//! ```text
//!  worker thread 0 ─┐  WorkerInterval (per interval)
//!  worker thread 1 ─┼──────────────────────────────► aggregate ──► IntervalRecord ──► session
//!  worker thread n ─┘
//! ```

mod aggregate;
mod cancel;
mod chunked;
mod connection;
mod grpc;
pub mod http1;
mod http2;
mod pacer;
mod request_set;
mod target_tls;
mod timing;
mod transport;
mod worker;

use crate::plan::{LoadPlan, Protocol};
use crate::recorder::{IntervalRecorder, OutcomeCounts};
use aggregate::Aggregator;
use connection::RunContext;
pub use http2::H2RequestError;
use http2::H2Requests;
use request_set::RequestSet;
pub use request_set::RequestSetError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
pub use target_tls::TargetTlsError;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use transport::Connector;
use worker::{ExtraConnections, WorkerSpec, run_worker};

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

/// More load for a run under way: another agent's share, taken over from
/// the start of a later interval (its profile is 0 until then). Its
/// connections join the workers' own and record into the same intervals.
#[derive(Debug)]
pub struct Reinforcement {
    pub plan: LoadPlan,
    pub addrs: Vec<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the target address list is empty")]
    NoAddress,
    #[error("cannot prepare the requests: {0}")]
    Request(#[from] RequestSetError),
    #[error("cannot prepare the requests for HTTP/2: {0}")]
    Http2Request(#[from] H2RequestError),
    #[error(transparent)]
    Tls(#[from] TargetTlsError),
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
    let (_none, reinforcements) = mpsc::unbounded_channel();
    let run = Reinforcement { plan, addrs };
    run_reinforced(run, Vec::new(), options, start, cancel, out, reinforcements).await
}

/// [`run`] for an agent whose load is several plans side by side (one per
/// endpoint: `first` and `more`), taking on [`Reinforcement`]s while it
/// goes. Every plan shares the first one's clock and intervals.
pub async fn run_reinforced(
    first: Reinforcement,
    more: Vec<Reinforcement>,
    options: EngineOptions,
    start: Instant,
    cancel: CancellationToken,
    out: mpsc::Sender<IntervalRecord>,
    mut reinforcements: mpsc::UnboundedReceiver<Reinforcement>,
) -> Result<EngineSummary, EngineError> {
    let Reinforcement { plan, addrs } = first;
    // The recorder keeps figures for every plan's requests.
    let request_slots = std::iter::once(&plan)
        .chain(more.iter().map(|r| &r.plan))
        .map(|p| offset_of(p) + p.requests.len())
        .max()
        .unwrap_or(0);
    let connections = plan.model.connections().max(1);
    let threads = options.threads.clamp(1, connections as usize);
    let interval = plan.interval;
    let ctx = Arc::new(context(plan, addrs, start, request_slots)?);

    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut handles = Vec::with_capacity(threads);
    let mut extra_tx = Vec::with_capacity(threads);
    for (id, range) in split_range(connections, threads).into_iter().enumerate() {
        let (to_worker, extra) = mpsc::unbounded_channel();
        extra_tx.push(to_worker);
        let spec = WorkerSpec {
            id,
            connections: range,
            extra,
        };
        let (ctx, cancel, tx) = (ctx.clone(), cancel.clone(), tx.clone());
        let handle = std::thread::Builder::new()
            .name(format!("stampede-worker-{id}"))
            .spawn(move || run_worker(spec, ctx, cancel, tx))
            .map_err(EngineError::Thread)?;
        handles.push(handle);
    }
    drop(tx);

    for r in more {
        reinforce(&ctx, r, &extra_tx);
    }
    let mut aggregator = Aggregator::new(threads);
    let mut summary = EngineSummary::default();
    let mut reinforcing = true;
    loop {
        let piece = tokio::select! {
            piece = rx.recv() => piece,
            r = reinforcements.recv(), if reinforcing => {
                match r {
                    Some(r) => reinforce(&ctx, r, &extra_tx),
                    None => reinforcing = false,
                }
                continue;
            }
        };
        let Some(piece) = piece else { break };
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

/// What every connection of one plan shares: its prepared requests, the
/// target's addresses, TLS and protocol.
fn context(
    plan: LoadPlan,
    addrs: Vec<SocketAddr>,
    start: Instant,
    request_slots: usize,
) -> Result<RunContext, EngineError> {
    if addrs.is_empty() {
        return Err(EngineError::NoAddress);
    }
    let requests = RequestSet::new(&plan)?;
    let url = &plan.requests[0].url;
    // gRPC is HTTP/2: over TLS it needs h2 by ALPN whatever `protocol` says.
    let protocol = if plan.grpc.is_some() {
        Protocol::Http2
    } else {
        plan.transport.protocol
    };
    let tls = match &plan.transport.tls {
        Some(tls) => {
            let host = url.host_str().unwrap_or_default();
            let host = host.trim_start_matches('[').trim_end_matches(']');
            Some(target_tls::setup(tls, host, protocol)?)
        }
        None => None,
    };
    let h2 = match plan.transport.protocol {
        Protocol::Http2 => Some(H2Requests::new(&requests, url)?),
        Protocol::Http1 => None,
    };
    let connector = Connector::new(protocol, tls);
    let grpc = match &plan.grpc {
        Some(spec) => Some(Arc::new(grpc::PreparedCall::new(spec, url)?)),
        None => None,
    };
    Ok(RunContext {
        seed: uuid::Uuid::new_v4().as_u64_pair().0,
        request_offset: offset_of(&plan),
        request_slots,
        plan,
        requests,
        addrs,
        start,
        connector,
        h2,
        grpc,
    })
}

/// Deals a plan's connections to the workers, beside the run's own. One
/// whose requests do not fit the run's recorders is refused: they are laid
/// out when the run starts.
fn reinforce(
    run: &RunContext,
    r: Reinforcement,
    workers: &[mpsc::UnboundedSender<ExtraConnections>],
) {
    let request_offset = offset_of(&r.plan);
    if request_offset + r.plan.requests.len() > run.request_slots
        || r.plan.llm.is_some() != run.plan.llm.is_some()
    {
        tracing::warn!("a plan whose requests do not fit the run's recorders; refused");
        return;
    }
    let connections = r.plan.model.connections();
    let ctx = match context(r.plan, r.addrs, run.start, run.request_slots) {
        Ok(ctx) => Arc::new(ctx),
        Err(e) => {
            tracing::warn!(error = %e, "cannot prepare a reinforcement; refused");
            return;
        }
    };
    for (worker, range) in workers.iter().zip(split_range(connections, workers.len())) {
        if !range.is_empty() {
            // A worker that has finished has nothing left to reinforce.
            let _ = worker.send(ExtraConnections {
                ctx: ctx.clone(),
                connections: range,
            });
        }
    }
}

/// Where a plan's requests record (its endpoint leg's offset, else 0).
fn offset_of(plan: &LoadPlan) -> usize {
    plan.leg.as_ref().map_or(0, |l| l.request_offset as usize)
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
