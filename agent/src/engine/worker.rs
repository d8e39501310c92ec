//! One worker thread: a single-threaded tokio runtime running a share of the
//! agent's connections, plus the clock that closes intervals.
//!
//! The worker's connections record into one [`IntervalRecorder`] shared
//! through `Rc<RefCell<…>>` — no lock, no atomics: they all run on this
//! thread. At each interval boundary the worker swaps in a fresh recorder
//! and sends the full one to the engine's aggregator.

use super::cancel::WorkerCancel;
use super::connection::{ConnectionLoop, RunContext, SlotPlace};
use super::grpc::GrpcLoop;
use super::http2::H2Group;
use super::pacer::Pacer;
use super::reactor::Reactor;
use crate::plan::Protocol;
use crate::plan::WorkloadModel;
use crate::recorder::IntervalRecorder;
use std::cell::RefCell;
use std::ops::Range;
use std::rc::Rc;
use std::sync::Arc;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::task::{JoinSet, LocalSet};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

/// A worker's recorder for one interval, on its way to the aggregator.
pub(crate) struct WorkerInterval {
    pub worker: usize,
    pub index: u32,
    pub recorder: IntervalRecorder,
    /// The worker's final interval: nothing more will come from it.
    pub last: bool,
    /// When the interval was closed.
    pub closed_at: Instant,
}

pub(crate) struct WorkerSpec {
    pub id: usize,
    /// Global indices of this worker's connections.
    pub connections: Range<u32>,
    /// Connections added while the run goes (another agent's share).
    pub extra: UnboundedReceiver<ExtraConnections>,
}

/// A reinforcement's connections for this worker: their own plan (and
/// indices within it), the run's clock and intervals.
pub(crate) struct ExtraConnections {
    pub ctx: Arc<RunContext>,
    pub connections: Range<u32>,
}

/// Runs on its own OS thread until all its connections are done.
pub(crate) fn run_worker(
    spec: WorkerSpec,
    ctx: Arc<RunContext>,
    cancel: CancellationToken,
    out: UnboundedSender<WorkerInterval>,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    LocalSet::new().block_on(&runtime, worker_loop(spec, ctx, cancel, out));
    Ok(())
}

async fn worker_loop(
    mut spec: WorkerSpec,
    ctx: Arc<RunContext>,
    cancel: CancellationToken,
    out: UnboundedSender<WorkerInterval>,
) {
    let mut first = if ctx.plan.leg.is_some() {
        IntervalRecorder::with_request_figures(ctx.request_slots)
    } else {
        IntervalRecorder::for_requests(ctx.request_slots)
    };
    if ctx.plan.llm.is_some() {
        first = first.with_llm();
    }
    let recorder = Rc::new(RefCell::new(first));
    let (pacer, reactor) = match &ctx.plan.model {
        WorkloadModel::Open { .. } => open_model_timing(),
        WorkloadModel::Closed { .. } => (None, None),
    };
    let mut connections = JoinSet::new();
    let spawner = Spawner {
        recorder: recorder.clone(),
        pacer,
        reactor,
        cancel: WorkerCancel::watch(cancel),
    };
    spawner.spawn(&ctx, spec.connections.clone(), &mut connections);

    let intervals = ctx.plan.interval_count();
    let mut index = 0u32;
    let mut extra_open = true;
    // Close intervals 0..intervals-1 on the clock; the last one stays open
    // until every connection is done (graceful stop included).
    while index + 1 < intervals {
        let boundary = ctx.start + ctx.plan.interval * (index + 1);
        tokio::select! {
            _ = sleep_until(boundary) => {
                let full = {
                    let mut r = recorder.borrow_mut();
                    let next = r.fresh();
                    std::mem::replace(&mut *r, next)
                };
                let _ = out.send(WorkerInterval { worker: spec.id, index, recorder: full, last: false, closed_at: Instant::now() });
                index += 1;
            }
            extra = spec.extra.recv(), if extra_open => match extra {
                Some(extra) => spawner.spawn(&extra.ctx, extra.connections, &mut connections),
                None => extra_open = false,
            },
            // `join_next` is cancel-safe: finished tasks are not lost when
            // the boundary wins the race. None: every connection is done.
            joined = connections.join_next() => match joined {
                Some(Err(e)) => tracing::error!(error = %e, "connection task failed"),
                Some(Ok(())) => {}
                None => break,
            },
        }
    }
    drain(&mut connections).await;
    let full = {
        let mut r = recorder.borrow_mut();
        let next = r.fresh();
        std::mem::replace(&mut *r, next)
    };
    let _ = out.send(WorkerInterval {
        worker: spec.id,
        index,
        recorder: full,
        last: true,
        closed_at: Instant::now(),
    });
}

/// The open model's pacer (send times), and the reactor its ticks read
/// responses from; each starts its task on this worker's `LocalSet`. No
/// pacer: tokio's timer. No reactor: connections stay on tokio's reactor.
fn open_model_timing() -> (Option<Rc<Pacer>>, Option<Rc<Reactor>>) {
    let reactor = match Reactor::new() {
        Ok(reactor) => Some(reactor),
        Err(e) => {
            tracing::warn!(error = %e, "no epoll instance: every response wakes the worker");
            None
        }
    };
    match Pacer::new(reactor.clone()) {
        Ok(pacer) => {
            tokio::task::spawn_local(pacer.clone().drive());
            let reactor = reactor.inspect(|r| {
                tokio::task::spawn_local(r.clone().watch());
            });
            (Some(pacer), reactor)
        }
        Err(e) => {
            tracing::warn!(error = %e, "no timerfd: send times fall back to tokio's 1 ms timer");
            (None, None)
        }
    }
}

/// Starts connection loops on this worker, all recording into its recorder.
struct Spawner {
    recorder: Rc<RefCell<IntervalRecorder>>,
    pacer: Option<Rc<Pacer>>,
    /// Open model: read at the pacer's ticks (connections that qualify).
    reactor: Option<Rc<Reactor>>,
    /// The run's cancellation, mirrored on this thread.
    cancel: Rc<WorkerCancel>,
}

impl Spawner {
    /// The loops of `connections` (indices within `ctx`'s plan): one per
    /// connection, or with HTTP/2 one per stream slot, the slots of a
    /// connection sharing one h2 connection.
    fn spawn(&self, ctx: &Arc<RunContext>, connections: Range<u32>, tasks: &mut JoinSet<()>) {
        let http2 = ctx.plan.transport.protocol == Protocol::Http2;
        for connection in connections {
            if let Some(call) = &ctx.grpc {
                let call = GrpcLoop::new(
                    ctx.clone(),
                    call.clone(),
                    self.recorder.clone(),
                    connection,
                    self.cancel.clone(),
                    self.pacer.clone(),
                );
                tasks.spawn_local(call.run());
                continue;
            }
            let group = http2.then(|| Rc::new(H2Group::default()));
            for stream in 0..ctx.streams() {
                let place = SlotPlace {
                    connection,
                    stream,
                    group: group.clone(),
                };
                let slot = ConnectionLoop::new(
                    ctx.clone(),
                    self.recorder.clone(),
                    place,
                    self.cancel.clone(),
                    self.pacer.clone(),
                    self.reactor.clone(),
                );
                tasks.spawn_local(slot.run());
            }
        }
    }
}

async fn drain(tasks: &mut JoinSet<()>) {
    while let Some(result) = tasks.join_next().await {
        if let Err(e) = result {
            tracing::error!(error = %e, "connection task failed");
        }
    }
}
