//! Sub-millisecond send times for the open model.
//!
//! tokio's timer wheel has 1 ms granularity: a connection sleeping until its
//! next send time wakes up to 1 ms late, every time. At 20 000 req/s that is
//! most of the latency being measured (wrk2 shows the same artefact). The
//! pacer gives each worker one `timerfd` (nanosecond resolution, driven by
//! the worker's own epoll through `AsyncFd`) armed for the earliest pending
//! send time, and a heap of who waits for what.
//!
//! Cost: precision is not free. Every wake-up of the worker thread is a
//! context switch, and evenly spread sends also spread the responses, so the
//! thread wakes for each. Expiries are therefore rounded up to a grid of
//! [`RESOLUTION`]: send times that fall in the same slot share one wake-up
//! and go out together, a few at a time, never early and at most one slot
//! late (schedule lag ≤ 200 µs plus wake-up latency, against tokio's 1 ms).
//! Measured at 20 000 req/s: see docs/performance.md.

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

/// Width of the grid expiries are rounded up to.
pub(crate) const RESOLUTION: Duration = Duration::from_micros(200);

struct State {
    /// (deadline, slot); may hold stale entries, checked against `waiting`.
    heap: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Per slot (one per connection): the deadline it waits for and its waker.
    waiting: Vec<Option<(Instant, Waker)>>,
    /// The deadline the timerfd is armed for.
    armed: Option<Instant>,
}

/// The timerfd, as `AsyncFd` wants it (nix's `TimerFd` offers only `AsFd`).
struct Timer(TimerFd);

impl AsRawFd for Timer {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

pub(crate) struct Pacer {
    /// Origin of the expiry grid.
    epoch: Instant,
    fd: AsyncFd<Timer>,
    state: RefCell<State>,
}

impl Pacer {
    pub(crate) fn new() -> std::io::Result<Rc<Self>> {
        let fd = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .map_err(std::io::Error::from)?;
        // SAFETY: `Timer` owns its fd for as long as the `AsyncFd` lives and
        // always returns that same fd.
        let fd = unsafe { AsyncFd::register_with_interest(Timer(fd), Interest::READABLE) }
            .map_err(std::io::Error::from)?;
        Ok(Rc::new(Self {
            epoch: Instant::now(),
            fd,
            state: RefCell::new(State {
                heap: BinaryHeap::new(),
                waiting: Vec::new(),
                armed: None,
            }),
        }))
    }

    /// A slot for one waiter (a connection waits for one send time at a time).
    pub(crate) fn slot(&self) -> usize {
        let mut state = self.state.borrow_mut();
        state.waiting.push(None);
        state.waiting.len() - 1
    }

    /// Completes at `deadline`, or up to one [`RESOLUTION`] later.
    pub(crate) fn until(self: &Rc<Self>, slot: usize, deadline: Instant) -> PaceUntil {
        PaceUntil {
            pacer: self.clone(),
            slot,
            deadline,
        }
    }

    /// Releases due waiters whenever the timerfd expires. Runs for the
    /// worker's lifetime; the worker's `LocalSet` drops it at the end.
    pub(crate) async fn drive(self: Rc<Self>) {
        let mut buf = [0u8; 8];
        loop {
            let Ok(mut guard) = self.fd.readable().await else {
                return;
            };
            match guard.try_io(|fd| {
                nix::unistd::read(&fd.get_ref().0, &mut buf).map_err(std::io::Error::from)
            }) {
                // A read drains the expiry count: the fd is not readable
                // again until the next expiry, so skip the EAGAIN round trip.
                Ok(_) => guard.clear_ready(),
                Err(_would_block) => continue,
            }
            let now = Instant::now();
            let mut state = self.state.borrow_mut();
            state.armed = None;
            while let Some(&Reverse((deadline, slot))) = state.heap.peek() {
                if deadline > now {
                    break;
                }
                state.heap.pop();
                if let Some((waiting_for, _)) = &state.waiting[slot] {
                    if *waiting_for == deadline {
                        if let Some((_, waker)) = state.waiting[slot].take() {
                            waker.wake();
                        }
                    }
                }
            }
            self.arm_earliest(&mut state, now);
        }
    }

    /// The end of the grid slot `deadline` falls in.
    fn slot_end(&self, deadline: Instant) -> Instant {
        let offset = deadline.saturating_duration_since(self.epoch).as_nanos();
        let width = RESOLUTION.as_nanos();
        let rounded = offset.div_ceil(width) * width;
        self.epoch + Duration::from_nanos(u64::try_from(rounded).unwrap_or(u64::MAX))
    }

    /// Arms the timerfd for the earliest live deadline's slot, if it is not already.
    fn arm_earliest(&self, state: &mut State, now: Instant) {
        while let Some(&Reverse((deadline, slot))) = state.heap.peek() {
            let live = matches!(&state.waiting[slot], Some((d, _)) if *d == deadline);
            if !live {
                state.heap.pop();
                continue;
            }
            let fire_at = self.slot_end(deadline);
            if state.armed.is_some_and(|armed| armed <= fire_at) {
                return;
            }
            // A zero expiration would disarm the timer: at least 1 ns.
            let after = fire_at
                .saturating_duration_since(now)
                .max(Duration::from_nanos(1));
            let spec = Expiration::OneShot(TimeSpec::from_duration(after));
            if self
                .fd
                .get_ref()
                .0
                .set(spec, TimerSetTimeFlags::empty())
                .is_ok()
            {
                state.armed = Some(fire_at);
            }
            return;
        }
    }
}

/// The future returned by [`Pacer::until`].
pub(crate) struct PaceUntil {
    pacer: Rc<Pacer>,
    slot: usize,
    deadline: Instant,
}

impl Future for PaceUntil {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let now = Instant::now();
        let mut state = self.pacer.state.borrow_mut();
        if now >= self.deadline {
            state.waiting[self.slot] = None;
            return Poll::Ready(());
        }
        let fresh = !matches!(&state.waiting[self.slot], Some((d, _)) if *d == self.deadline);
        state.waiting[self.slot] = Some((self.deadline, cx.waker().clone()));
        if fresh {
            state.heap.push(Reverse((self.deadline, self.slot)));
            self.pacer.arm_earliest(&mut state, now);
        }
        Poll::Pending
    }
}

impl Drop for PaceUntil {
    fn drop(&mut self) {
        if let Ok(mut state) = self.pacer.state.try_borrow_mut() {
            if matches!(&state.waiting[self.slot], Some((d, _)) if *d == self.deadline) {
                state.waiting[self.slot] = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakes_each_waiter_at_its_time_in_order() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        tokio::task::LocalSet::new().block_on(&rt, async {
            let pacer = Pacer::new().expect("timerfd");
            tokio::task::spawn_local(pacer.clone().drive());
            let start = Instant::now();
            let offsets_us = [300u64, 100, 700, 200, 500];
            let order = Rc::new(RefCell::new(Vec::new()));
            let mut tasks = tokio::task::JoinSet::new();
            for us in offsets_us {
                let (pacer, order) = (pacer.clone(), order.clone());
                let slot = pacer.slot();
                tasks.spawn_local(async move {
                    let deadline = start + Duration::from_micros(us);
                    pacer.until(slot, deadline).await;
                    // Never early.
                    assert!(Instant::now() >= deadline);
                    order.borrow_mut().push(us);
                });
            }
            while tasks.join_next().await.is_some() {}
            assert_eq!(*order.borrow(), vec![100, 200, 300, 500, 700]);
        });
    }

    #[test]
    fn a_dropped_wait_does_not_block_later_ones() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        tokio::task::LocalSet::new().block_on(&rt, async {
            let pacer = Pacer::new().expect("timerfd");
            tokio::task::spawn_local(pacer.clone().drive());
            let slot = pacer.slot();
            let start = Instant::now();
            // Start a wait far in the future, then abandon it.
            let far = pacer.until(slot, start + Duration::from_secs(3600));
            let _ = tokio::time::timeout(Duration::from_millis(1), far).await;
            pacer.until(slot, start + Duration::from_millis(3)).await;
            assert!(Instant::now() < start + Duration::from_secs(60));
        });
    }
}
