//! The run's cancellation as one worker thread sees it: a flag, and the
//! wakers of the loops racing it, set by one watcher task per worker.
//!
//! Every request races cancellation, and polling a `CancellationToken`'s
//! future takes the token's mutex and its `Notify`'s mutex, which all
//! workers share: two locks per poll on the hot path. Here a poll is a
//! `Cell` read and a waker comparison; only the watcher touches the token.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use tokio_util::sync::CancellationToken;

pub(crate) struct WorkerCancel {
    cancelled: Cell<bool>,
    /// Per slot (one per loop): the waker of its pending wait, if any.
    waiting: RefCell<Vec<Option<Waker>>>,
}

impl WorkerCancel {
    /// Mirrors `token` on this thread. Spawns the watcher on the current
    /// `LocalSet`, which drops it with the worker.
    pub(crate) fn watch(token: CancellationToken) -> Rc<Self> {
        let this = Rc::new(Self {
            cancelled: Cell::new(token.is_cancelled()),
            waiting: RefCell::new(Vec::new()),
        });
        let mirror = this.clone();
        tokio::task::spawn_local(async move {
            token.cancelled().await;
            mirror.cancel();
        });
        this
    }

    fn cancel(&self) {
        self.cancelled.set(true);
        // Woken outside the borrow: a waker may run code that polls us.
        let wakers: Vec<Waker> = self
            .waiting
            .borrow_mut()
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        for waker in wakers {
            waker.wake();
        }
    }

    /// A slot for one loop (it waits for cancellation once at a time).
    pub(crate) fn slot(&self) -> usize {
        let mut waiting = self.waiting.borrow_mut();
        waiting.push(None);
        waiting.len() - 1
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.get()
    }

    /// Resolves once the run is cancelled.
    pub(crate) fn wait(&self, slot: usize) -> Cancelled<'_> {
        Cancelled { cancel: self, slot }
    }
}

/// The future returned by [`WorkerCancel::wait`].
pub(crate) struct Cancelled<'a> {
    cancel: &'a WorkerCancel,
    slot: usize,
}

impl Future for Cancelled<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.cancel.cancelled.get() {
            return Poll::Ready(());
        }
        let mut waiting = self.cancel.waiting.borrow_mut();
        let Some(entry) = waiting.get_mut(self.slot) else {
            return Poll::Pending;
        };
        // A task's waker is the same from poll to poll: cloned once.
        if !entry.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *entry = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::test_util::on_worker_runtime;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_waiting_slot_is_woken_once_at_the_cancellation() {
        let cancel = WorkerCancel {
            cancelled: Cell::new(false),
            waiting: RefCell::new(Vec::new()),
        };
        let (first, second) = (cancel.slot(), cancel.slot());
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        let mut wait = cancel.wait(first);
        // Polled twice before the cancellation: still one waker to wake.
        assert!(Pin::new(&mut wait).poll(&mut cx).is_pending());
        assert!(Pin::new(&mut wait).poll(&mut cx).is_pending());
        cancel.cancel();
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert!(Pin::new(&mut wait).poll(&mut cx).is_ready());
        assert!(Pin::new(&mut cancel.wait(second)).poll(&mut cx).is_ready());
    }

    #[test]
    fn the_watcher_mirrors_a_token_cancelled_on_another_thread() {
        on_worker_runtime(async {
            let token = CancellationToken::new();
            let cancel = WorkerCancel::watch(token.clone());
            assert!(!cancel.is_cancelled());
            let slot = cancel.slot();
            let waiter = {
                let cancel = cancel.clone();
                tokio::task::spawn_local(async move { cancel.wait(slot).await })
            };
            std::thread::spawn(move || token.cancel())
                .join()
                .expect("thread");
            waiter.await.expect("waiter");
            assert!(cancel.is_cancelled());
        });
    }

    #[test]
    fn a_token_cancelled_before_the_watch_is_seen_at_once() {
        on_worker_runtime(async {
            let token = CancellationToken::new();
            token.cancel();
            let cancel = WorkerCancel::watch(token);
            assert!(cancel.is_cancelled());
        });
    }
}
