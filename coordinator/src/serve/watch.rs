//! One run's events, kept for whoever watches it: a watcher that comes late
//! (or a `stampede run` that subscribes just after submitting) first gets
//! every event so far, then the live ones, with no gap and no repeat. The
//! recorder task that fills the log also writes each closed interval to
//! the history as it closes.

use super::SharedHistory;
use crate::events::{EVENT_CAPACITY, EventReceiver, RunEvent};
use crate::history::now_ms;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::warn;

/// The events of one run so far, and the live feed while it goes.
#[derive(Debug)]
pub struct RunLog {
    state: Mutex<LogState>,
}

#[derive(Debug)]
struct LogState {
    events: Vec<RunEvent>,
    /// `None` once the run's events have ended.
    live: Option<broadcast::Sender<RunEvent>>,
}

impl RunLog {
    pub fn new() -> Arc<Self> {
        let (live, _) = broadcast::channel(EVENT_CAPACITY);
        Arc::new(Self {
            state: Mutex::new(LogState {
                events: Vec::new(),
                live: Some(live),
            }),
        })
    }

    /// Every event so far, and the live ones that follow (`None`: the run's
    /// events are over).
    pub fn subscribe(&self) -> (Vec<RunEvent>, Option<EventReceiver>) {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        (
            state.events.clone(),
            state.live.as_ref().map(broadcast::Sender::subscribe),
        )
    }

    fn push(&self, event: RunEvent) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(live) = &state.live {
            let _ = live.send(event.clone());
        }
        state.events.push(event);
    }

    fn close(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.live = None;
    }

    /// The run's events are over (its log is complete).
    pub fn is_closed(&self) -> bool {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .live
            .is_none()
    }
}

/// Follows run `id`'s events until the run drops its sender: keeps them in
/// `log`, and writes each closed interval to the history. The log is
/// closed (watchers' streams end) once `written` says the run's end is in
/// the history too, so a watcher that then asks for the run finds it over.
pub fn record(
    id: String,
    mut events: EventReceiver,
    log: Arc<RunLog>,
    history: SharedHistory,
    written: oneshot::Receiver<()>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => {
                    match &event {
                        RunEvent::IntervalClosed(snapshot) => {
                            let written = history.lock().record_interval(&id, snapshot);
                            if let Err(e) = written {
                                warn!(run = %id, error = %e, "could not keep an interval in the history");
                            }
                        }
                        RunEvent::Starting(_) => {
                            if let Err(e) = history.lock().mark_running(&id, now_ms()) {
                                warn!(run = %id, error = %e, "could not mark the run running");
                            }
                        }
                        _ => {}
                    }
                    log.push(event);
                }
                Err(RecvError::Lagged(skipped)) => {
                    warn!(run = %id, skipped, "the run's recorder fell behind; events skipped")
                }
                Err(RecvError::Closed) => break,
            }
        }
        // Dropped unsent (the coordinator stops): close all the same.
        let _ = written.await;
        log.close();
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::fixture;

    #[test]
    fn a_late_watcher_gets_the_past_then_the_live_events() {
        let log = RunLog::new();
        log.push(fixture::joined(1, "us-east"));
        let (past, live) = log.subscribe();
        assert_eq!(past.len(), 1);
        let mut live = live.expect("the run goes on");
        log.push(fixture::joined(2, "eu-west"));
        assert!(matches!(
            live.try_recv(),
            Ok(RunEvent::AgentJoined { region, .. }) if region == "eu-west"
        ));
        log.close();
        assert!(log.is_closed());
        let (past, live) = log.subscribe();
        assert_eq!(past.len(), 2);
        assert!(live.is_none());
    }
}
