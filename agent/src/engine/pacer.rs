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
//! context switch, and so is every wake-up of the target a send causes.
//! Send times are therefore rounded to the *nearest* point of a grid of
//! [`RESOLUTION`] (800 µs): send times near the same point share one
//! wake-up and go out together, a few at a time, at most half a slot early
//! or half a slot late (plus wake-up latency). Rounding to the nearest point
//! rather than up gives the same worst deviation from the schedule (±400 µs)
//! as a 400 µs grid rounded up, with half its wake-ups: +34% requests per
//! CPU-second at 20 000 req/s, for bursts of 16 sends instead of 8
//! (docs/performance.md). Early sends are timed from when they left, so
//! leaving early never shortens a latency.
//! While every grid slot has a send due (high rates), the timer runs
//! periodically on the grid instead of being re-armed at each expiry: one
//! syscall fewer per wake-up. It goes back to one-shot as soon as the next
//! slot has nothing due, so a low rate never pays for empty wake-ups.
//! Measured at 20 000 req/s: see docs/performance.md.
//!
//! Each tick also harvests the worker's [`Reactor`] (when it has one): the
//! responses that arrived since the last tick are read in the same wake-up,
//! and the reactor is told whether another tick is coming soon.

use super::reactor::{PARK_AFTER, Reactor};
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

/// Width of the grid send times are rounded to (to the nearest point).
pub(crate) const RESOLUTION: Duration = Duration::from_micros(800);

struct State {
    /// (deadline, slot); may hold stale entries, checked against `waiting`.
    heap: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Per slot (one per connection): the deadline it waits for and its waker.
    waiting: Vec<Option<(Instant, Waker)>>,
    /// The next expiry the timerfd is armed for.
    armed: Option<Instant>,
    /// The timerfd expires at every grid point from `armed` on.
    periodic: bool,
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
    /// `epoch` on `CLOCK_MONOTONIC` (which `Instant` reads): the timerfd is
    /// armed with absolute times, so a periodic timer stays on the grid.
    epoch_monotonic: Duration,
    fd: AsyncFd<Timer>,
    state: RefCell<State>,
    /// Read at each tick: the open model's plain HTTP/1.1 connections.
    reactor: Option<Rc<Reactor>>,
}

impl Pacer {
    pub(crate) fn new(reactor: Option<Rc<Reactor>>) -> std::io::Result<Rc<Self>> {
        let fd = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .map_err(std::io::Error::from)?;
        // SAFETY: `Timer` owns its fd for as long as the `AsyncFd` lives and
        // always returns that same fd.
        let fd = unsafe { AsyncFd::register_with_interest(Timer(fd), Interest::READABLE) }
            .map_err(std::io::Error::from)?;
        let epoch = Instant::now();
        let monotonic = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .map_err(std::io::Error::from)?;
        Ok(Rc::new(Self {
            epoch,
            epoch_monotonic: Duration::from(monotonic),
            fd,
            state: RefCell::new(State {
                heap: BinaryHeap::new(),
                waiting: Vec::new(),
                armed: None,
                periodic: false,
            }),
            reactor,
        }))
    }

    /// A slot for one waiter (a connection waits for one send time at a time).
    pub(crate) fn slot(&self) -> usize {
        let mut state = self.state.borrow_mut();
        state.waiting.push(None);
        state.waiting.len() - 1
    }

    /// Completes at the grid point nearest `deadline`: up to half a
    /// [`RESOLUTION`] before it, or after it by up to as much plus the
    /// wake-up's latency.
    #[cfg(test)]
    pub(crate) fn until(self: &Rc<Self>, slot: usize, deadline: Instant) -> PaceUntil {
        PaceUntil {
            pacer: self.clone(),
            slot,
            deadline,
            now: None,
            registered: false,
        }
    }

    /// [`Self::until`] for a caller that read the clock (`now`, before
    /// `deadline`) just now: the wait does not read it again.
    pub(crate) fn until_after(
        self: &Rc<Self>,
        slot: usize,
        deadline: Instant,
        now: Instant,
    ) -> PaceUntil {
        PaceUntil {
            pacer: self.clone(),
            slot,
            deadline,
            now: Some(now),
            registered: false,
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
            state.armed = if state.periodic {
                Some(self.next_grid_point(now))
            } else {
                None
            };
            while let Some(&Reverse((deadline, slot))) = state.heap.peek() {
                if self.grid_point(deadline) > now {
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
            self.rearm(&mut state, now);
            let ticking = state.periodic
                || state
                    .armed
                    .is_some_and(|at| at.saturating_duration_since(now) <= PARK_AFTER);
            drop(state);
            if let Some(reactor) = &self.reactor {
                reactor.harvest();
                reactor.set_ticking(ticking);
            }
        }
    }

    /// The grid point nearest `deadline`: when it is released.
    fn grid_point(&self, deadline: Instant) -> Instant {
        let width = RESOLUTION.as_nanos();
        self.on_grid(deadline, |offset| (offset + width / 2) / width)
    }

    /// The first grid point after `now`.
    fn next_grid_point(&self, now: Instant) -> Instant {
        let width = RESOLUTION.as_nanos();
        let at_or_after = self.on_grid(now, |offset| offset.div_ceil(width));
        if at_or_after > now {
            at_or_after
        } else {
            at_or_after + RESOLUTION
        }
    }

    /// Grid point number `index(offset)`, `offset` being `t`'s nanoseconds
    /// since the grid's origin.
    fn on_grid(&self, t: Instant, index: impl Fn(u128) -> u128) -> Instant {
        let offset = t.saturating_duration_since(self.epoch).as_nanos();
        let nanos = index(offset) * RESOLUTION.as_nanos();
        self.epoch + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// The earliest live deadline; drops stale heap entries on the way.
    fn earliest(state: &mut State) -> Option<Instant> {
        while let Some(&Reverse((deadline, slot))) = state.heap.peek() {
            if matches!(&state.waiting[slot], Some((d, _)) if *d == deadline) {
                return Some(deadline);
            }
            state.heap.pop();
        }
        None
    }

    /// After an expiry: periodic while the next grid point has a send due,
    /// else one-shot for the earliest deadline's slot, or disarmed.
    fn rearm(&self, state: &mut State, now: Instant) {
        let Some(deadline) = Self::earliest(state) else {
            if state.periodic {
                self.set(state, None, false);
            }
            return;
        };
        let fire_at = self.grid_point(deadline);
        let next = self.next_grid_point(now);
        if state.periodic && fire_at == next {
            return;
        }
        self.set(state, Some(fire_at), fire_at == next);
    }

    /// A new waiter: arms the timerfd for its slot unless an expiry at or
    /// before it is already due.
    fn arm_for(&self, state: &mut State, deadline: Instant) {
        let fire_at = self.grid_point(deadline);
        // Periodic: every grid point from `armed` on is an expiry.
        if state.armed.is_some_and(|armed| armed <= fire_at) {
            return;
        }
        self.set(state, Some(fire_at), false);
    }

    /// Arms the timerfd (absolute time) at `fire_at`, every [`RESOLUTION`]
    /// from there if `periodic`; disarms it for `None`.
    fn set(&self, state: &mut State, fire_at: Option<Instant>, periodic: bool) {
        let spec = match fire_at {
            Some(at) => {
                let start = TimeSpec::from_duration(
                    self.epoch_monotonic + at.saturating_duration_since(self.epoch),
                );
                if periodic {
                    Expiration::IntervalDelayed(start, TimeSpec::from_duration(RESOLUTION))
                } else {
                    Expiration::OneShot(start)
                }
            }
            None => {
                let _ = self.fd.get_ref().0.unset();
                state.armed = None;
                state.periodic = false;
                return;
            }
        };
        if self
            .fd
            .get_ref()
            .0
            .set(spec, TimerSetTimeFlags::TFD_TIMER_ABSTIME)
            .is_ok()
        {
            state.armed = fire_at;
            state.periodic = periodic;
        }
    }
}

/// The future returned by [`Pacer::until`].
pub(crate) struct PaceUntil {
    pacer: Rc<Pacer>,
    slot: usize,
    deadline: Instant,
    /// The caller's clock reading, for the first poll.
    now: Option<Instant>,
    /// In the pacer's heap: from then on, only the driver releases it.
    registered: bool,
}

impl Future for PaceUntil {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let mut state = this.pacer.state.borrow_mut();
        if this.registered {
            // The driver takes the entry when it releases the wait, after
            // checking the deadline against the clock: no reading here.
            return match &mut state.waiting[this.slot] {
                Some((d, waker)) if *d == this.deadline => {
                    if !waker.will_wake(cx.waker()) {
                        *waker = cx.waker().clone();
                    }
                    Poll::Pending
                }
                _ => Poll::Ready(()),
            };
        }
        let now = this.now.take().unwrap_or_else(Instant::now);
        // Its grid point has passed (it may be up to half a slot before
        // the deadline): it leaves now, as the tick would have let it.
        if this.pacer.grid_point(this.deadline) <= now {
            state.waiting[this.slot] = None;
            return Poll::Ready(());
        }
        state.waiting[this.slot] = Some((this.deadline, cx.waker().clone()));
        state.heap.push(Reverse((this.deadline, this.slot)));
        this.pacer.arm_for(&mut state, this.deadline);
        this.registered = true;
        Poll::Pending
    }
}

impl Drop for PaceUntil {
    fn drop(&mut self) {
        if !self.registered {
            return;
        }
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
    use crate::engine::test_util::on_worker_runtime;

    /// Released no more than half a grid slot before its time.
    fn assert_not_too_early(deadline: Instant, what: &str) {
        let now = Instant::now();
        assert!(
            now + RESOLUTION / 2 >= deadline,
            "{what} released {:?} early",
            deadline - now
        );
    }

    #[test]
    fn wakes_each_waiter_at_its_time_in_order() {
        on_worker_runtime(async {
            let pacer = Pacer::new(None).expect("timerfd");
            tokio::task::spawn_local(pacer.clone().drive());
            let start = Instant::now();
            // A grid slot apart, so each has a grid point of its own.
            let slots = [3u32, 1, 7, 2, 5];
            let order = Rc::new(RefCell::new(Vec::new()));
            let mut tasks = tokio::task::JoinSet::new();
            for n in slots {
                let (pacer, order) = (pacer.clone(), order.clone());
                let slot = pacer.slot();
                tasks.spawn_local(async move {
                    let deadline = start + RESOLUTION * n;
                    pacer.until(slot, deadline).await;
                    assert_not_too_early(deadline, &format!("slot {n}"));
                    order.borrow_mut().push(n);
                });
            }
            while let Some(done) = tasks.join_next().await {
                done.expect("waiter");
            }
            assert_eq!(*order.borrow(), vec![1, 2, 3, 5, 7]);
        });
    }

    /// A pacer outside any worker, for checking its arithmetic and state
    /// (its fd needs a runtime's reactor, nothing drives it).
    fn idle_pacer(check: impl FnOnce(&Pacer)) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let _guard = rt.enter();
        check(&Pacer::new(None).expect("timerfd"));
    }

    #[test]
    fn send_times_round_to_the_nearest_grid_point() {
        idle_pacer(|pacer| {
            let at = |micros: u64| pacer.epoch + Duration::from_micros(micros);
            let grid = |n: u32| pacer.epoch + RESOLUTION * n;
            let half = RESOLUTION.as_micros() as u64 / 2;
            let width = RESOLUTION.as_micros() as u64;
            // Just under half a slot past a point: that point (early sends are
            // the price of sharing a wake-up with later ones).
            assert_eq!(pacer.grid_point(at(width + half - 1)), grid(1));
            // Half a slot past or more: the next point.
            assert_eq!(pacer.grid_point(at(width + half)), grid(2));
            assert_eq!(pacer.grid_point(at(2 * width - 1)), grid(2));
            assert_eq!(pacer.grid_point(at(2 * width)), grid(2));
            // The timer's next tick is always after `now`, whatever the rounding.
            assert_eq!(pacer.next_grid_point(at(width + 1)), grid(2));
            assert_eq!(pacer.next_grid_point(grid(2)), grid(3));
        });
    }

    #[test]
    fn a_dropped_wait_does_not_block_later_ones() {
        on_worker_runtime(async {
            let pacer = Pacer::new(None).expect("timerfd");
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

    #[test]
    fn dense_send_times_are_released_in_order_and_at_most_half_a_slot_early() {
        on_worker_runtime(async {
            let pacer = Pacer::new(None).expect("timerfd");
            tokio::task::spawn_local(pacer.clone().drive());
            let start = Instant::now();
            // Several per grid slot, over ten slots (the periodic timer's
            // case), then one after a gap (back to one-shot).
            let mut offsets_us: Vec<u64> = (0..120).map(|i| 2_000 + 70 * i).collect();
            offsets_us.push(20_000);
            let order = Rc::new(RefCell::new(Vec::new()));
            let mut tasks = tokio::task::JoinSet::new();
            for &us in offsets_us.iter().rev() {
                let (pacer, order) = (pacer.clone(), order.clone());
                let slot = pacer.slot();
                tasks.spawn_local(async move {
                    let deadline = start + Duration::from_micros(us);
                    pacer.until(slot, deadline).await;
                    assert_not_too_early(deadline, &format!("{us} µs"));
                    order.borrow_mut().push(us);
                });
            }
            while let Some(done) = tasks.join_next().await {
                done.expect("waiter");
            }
            assert_eq!(*order.borrow(), offsets_us);
            // Nobody waits: the timer is not left ticking.
            let state = pacer.state.borrow();
            assert!(!state.periodic && state.armed.is_none());
        });
    }

    #[test]
    fn the_timer_is_periodic_only_while_the_next_grid_slot_has_a_send_due() {
        idle_pacer(|pacer| {
            let grid = |n: u32| pacer.epoch + RESOLUTION * n;
            let (near, far) = (pacer.slot(), pacer.slot());
            let mut state = pacer.state.borrow_mut();
            fn wait(state: &mut State, slot: usize, deadline: Instant) {
                state.waiting[slot] = Some((deadline, Waker::noop().clone()));
                state.heap.push(Reverse((deadline, slot)));
            }
            // An expiry at grid point 10 (processed a little late); a send is
            // due in the next slot: periodic from grid point 11.
            wait(&mut state, near, grid(11) - Duration::from_micros(30));
            wait(&mut state, far, grid(40) - Duration::from_micros(30));
            pacer.rearm(&mut state, grid(10) + Duration::from_micros(20));
            assert!(state.periodic);
            assert_eq!(state.armed, Some(grid(11)));
            // A new waiter further on needs no re-arming while periodic.
            pacer.arm_for(&mut state, grid(12) - Duration::from_micros(1));
            assert!(state.periodic);
            // Grid point 11: the near one was released; the next send is
            // 29 slots away, so one shot for it rather than 29 empty wake-ups.
            state.waiting[near] = None;
            pacer.rearm(&mut state, grid(11) + Duration::from_micros(5));
            assert!(!state.periodic);
            assert_eq!(state.armed, Some(grid(40)));
            // A periodic timer with nobody left waiting is disarmed.
            state.waiting[far] = None;
            state.periodic = true;
            pacer.rearm(&mut state, grid(40) + Duration::from_micros(5));
            assert!(!state.periodic && state.armed.is_none());
        });
    }
}
