//! Scheduling pieces a per-connection loop needs whatever protocol it
//! speaks: waiting for a send time (coarse, or on the worker's fine
//! [`Pacer`]) while watching for cancellation, the closed model's busy
//! windows, the hard stop, and what counts as interrupted at a stop.
//!
//! The HTTP loop (`connection.rs`) and the gRPC loop (`grpc/`) both use them.

use super::cancel::{Cancelled, WorkerCancel};
use super::connection::RunContext;
use super::pacer::Pacer;
use crate::plan::WorkloadModel;
use crate::recorder::IntervalRecorder;
use crate::schedule::ArrivalSchedule;
use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;
use tokio::time::{Instant, Sleep, sleep_until};

/// In-flight and owed requests still unfinished at this instant are
/// interrupted (no new request is sent after the duration).
pub(crate) fn hard_stop(ctx: &RunContext) -> Instant {
    ctx.start + ctx.plan.duration + ctx.plan.graceful_stop
}

/// Closed model: when request slot `index` (`connection × streams +
/// stream`) is busy, as instants. Without stages, the whole duration; with
/// stages, while the cluster's concurrency exceeds the slot (a virtual user
/// that left takes its connection with it). With S streams per connection,
/// the cluster's connection slot j is S request slots (j·S … j·S+S−1)
/// against the concurrency times S.
pub(crate) fn busy_windows(ctx: &RunContext, index: u32) -> Vec<(Instant, Instant)> {
    let windows = match &ctx.plan.model {
        WorkloadModel::Closed {
            stages: Some(stages),
            ..
        } => {
            let streams = ctx.streams().max(1);
            let (connection, stream) = (index / streams, index % streams);
            stages
                .slots
                .get(connection as usize)
                .map(|&slot| {
                    if streams == 1 {
                        stages.concurrency.windows_above(slot)
                    } else {
                        stages
                            .concurrency
                            .scaled(f64::from(streams))
                            .windows_above(slot * streams + stream)
                    }
                })
                .unwrap_or_default()
        }
        _ => vec![(Duration::ZERO, ctx.plan.duration)],
    };
    windows
        .into_iter()
        .map(|(from, until)| (ctx.start + from, ctx.start + until))
        .collect()
}

/// At a stop: the current request (if it was due) and every later one
/// already due by now count as interrupted; requests not yet due were never
/// owed.
pub(crate) fn record_overdue(
    recorder: &RefCell<IntervalRecorder>,
    schedule: &ArrivalSchedule,
    current: Instant,
) {
    let now = Instant::now();
    let owed = u64::from(current <= now) + schedule.due_by(now.into_std());
    if owed > 0 {
        recorder.borrow_mut().record_interrupted(owed);
    }
}

/// How far a send left from its intended time, either way: the pacer
/// releases a send at the grid point nearest its time, so up to half a
/// slot early as well as late. The schedule-lag histogram records this.
pub(crate) fn schedule_deviation(sent: Instant, intended: Instant) -> Duration {
    if sent >= intended {
        sent - intended
    } else {
        intended - sent
    }
}

/// One connection's waits: created once, re-armed for each wait.
pub(crate) struct Waits {
    /// The run's cancellation on this worker, and this loop's slot in it.
    cancel: Rc<WorkerCancel>,
    cancel_slot: usize,
    /// Re-armed for coarse waits (the start, connect back-off, think time).
    pace: Pin<Box<Sleep>>,
    /// Open model: the worker's fine timer and this connection's slot in it.
    pacer: Option<(Rc<Pacer>, usize)>,
}

impl Waits {
    /// `parked`: where the coarse timer rests until first armed.
    pub(crate) fn new(cancel: Rc<WorkerCancel>, pacer: Option<Rc<Pacer>>, parked: Instant) -> Self {
        Self {
            cancel_slot: cancel.slot(),
            cancel,
            pace: Box::pin(sleep_until(parked)),
            pacer: pacer.map(|p| {
                let slot = p.slot();
                (p, slot)
            }),
        }
    }

    /// Resolves when the run is cancelled (for racing a request against it).
    pub(crate) fn cancelled(&self) -> Cancelled<'_> {
        self.cancel.wait(self.cancel_slot)
    }

    /// Waits until `at`; false if cancelled first.
    pub(crate) async fn until(&mut self, at: Instant) -> bool {
        if self.cancel.is_cancelled() {
            return false;
        }
        if Instant::now() >= at {
            return true;
        }
        self.pace.as_mut().reset(at);
        tokio::select! {
            biased;
            _ = self.cancel.wait(self.cancel_slot) => false,
            _ = self.pace.as_mut() => true,
        }
    }

    /// Waits until a send time, with sub-millisecond precision when the
    /// worker has a pacer (then it may end up to half a grid slot before
    /// `at`); false if cancelled first.
    pub(crate) async fn paced(&mut self, at: Instant) -> bool {
        self.paced_from(at, Instant::now()).await
    }

    /// [`Self::paced`] for a caller that has just read the clock (`now`):
    /// the hot path reads it once per send, not once per check.
    pub(crate) async fn paced_from(&mut self, at: Instant, now: Instant) -> bool {
        if self.cancel.is_cancelled() {
            return false;
        }
        if now >= at {
            return true;
        }
        let wait = match &self.pacer {
            Some((pacer, slot)) => pacer.until_after(*slot, at, now),
            None => return self.until(at).await,
        };
        tokio::select! {
            biased;
            _ = self.cancel.wait(self.cancel_slot) => false,
            _ = wait => true,
        }
    }
}
