//! One wake-up per pacer tick, not one per response: a per-worker
//! mini-reactor for the open model's plain HTTP/1.1 connections.
//!
//! At 20 000 req/s the pacer wakes the worker every grid slot to release sends;
//! if the connections' sockets sat in tokio's epoll, every response arriving
//! between two ticks (25–70 µs after its send) would wake the thread again,
//! and on a VM each wake-up is a context switch, most of the open model's
//! CPU. Here the sockets sit in an inner epoll instance of their own, which
//! the pacer harvests at each tick with one `epoll_wait(…, 0)`.
//!
//! Responses are read late, so they are timed by the kernel's receive
//! timestamp (`SO_TIMESTAMPNS`, see [`super::lazy_stream`]), never by when
//! they were read.
//!
//! When no tick is coming soon (the pacer idle, or its next expiry far
//! away), the inner epoll fd is registered in tokio ("parked") so readiness
//! wakes the worker as before; it is deregistered when the ticks resume,
//! because while registered every new readiness wakes the thread.
//!
//! Sockets are registered edge-triggered; each keeps a read-readiness flag
//! set by an event and cleared by a short or empty read, as mio does, so a
//! read after a send costs no syscall until a harvest saw data.

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::time::Sleep;

/// Events taken per `epoll_wait`; a harvest repeats while the buffer fills.
const EVENTS_PER_WAIT: usize = 64;

/// With no pacer expiry within this, the reactor parks (readiness wakes the
/// worker). A response waits at most this long to be read while ticking;
/// it is timed by the kernel either way.
pub(crate) const PARK_AFTER: Duration = Duration::from_millis(1);

/// One registered socket.
#[derive(Default)]
struct Entry {
    /// A harvest saw data (or an error, or the peer's close) not read since.
    read_ready: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

pub(crate) struct Reactor {
    epoll: Epoll,
    /// Indexed by the token registered with each socket.
    entries: RefCell<Vec<Entry>>,
    /// Tokens of closed sockets, for reuse.
    free: RefCell<Vec<usize>>,
    events: RefCell<Vec<EpollEvent>>,
    /// No tick is coming soon: the inner epoll must wake the worker.
    parked: Cell<bool>,
    /// The watcher task, waiting for `parked` to change.
    watcher: RefCell<Option<Waker>>,
    /// Asks the kernel for receive timestamps from the worker's start: it
    /// turns them on asynchronously (a deferred static key), so a socket
    /// asking only at connect may see its first responses unstamped.
    _stamps_on: Option<std::net::UdpSocket>,
}

impl Reactor {
    pub(crate) fn new() -> std::io::Result<Rc<Self>> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(std::io::Error::from)?;
        let stamps_on = std::net::UdpSocket::bind(("127.0.0.1", 0))
            .ok()
            .filter(|socket| {
                nix::sys::socket::setsockopt(
                    socket,
                    nix::sys::socket::sockopt::ReceiveTimestampns,
                    &true,
                )
                .is_ok()
            });
        Ok(Rc::new(Self {
            epoll,
            entries: RefCell::new(Vec::new()),
            free: RefCell::new(Vec::new()),
            events: RefCell::new(vec![EpollEvent::empty(); EVENTS_PER_WAIT]),
            // Nothing ticks until the pacer's first expiry.
            parked: Cell::new(true),
            watcher: RefCell::new(None),
            _stamps_on: stamps_on,
        }))
    }

    /// Adds a socket; gives its token. Closing the socket removes it from
    /// the epoll instance; then call [`Self::release`].
    pub(crate) fn register(&self, socket: impl AsFd) -> std::io::Result<usize> {
        let token = match self.free.borrow_mut().pop() {
            Some(token) => token,
            None => {
                let mut entries = self.entries.borrow_mut();
                entries.push(Entry::default());
                entries.len() - 1
            }
        };
        // Ready until a read says otherwise: costs at most one EAGAIN.
        self.entries.borrow_mut()[token] = Entry {
            read_ready: true,
            ..Entry::default()
        };
        let flags = EpollFlags::EPOLLIN
            | EpollFlags::EPOLLOUT
            | EpollFlags::EPOLLRDHUP
            | EpollFlags::EPOLLET;
        if let Err(e) = self.epoll.add(socket, EpollEvent::new(flags, token as u64)) {
            self.free.borrow_mut().push(token);
            return Err(e.into());
        }
        Ok(token)
    }

    /// The token's socket is closed: its entry can be reused.
    pub(crate) fn release(&self, token: usize) {
        if let Some(entry) = self.entries.borrow_mut().get_mut(token) {
            *entry = Entry::default();
            self.free.borrow_mut().push(token);
        }
    }

    /// Whether a read may find data; if not, the reader's waker is kept for
    /// the harvest that sees some.
    pub(crate) fn poll_read_ready(&self, token: usize, cx: &Context<'_>) -> bool {
        let mut entries = self.entries.borrow_mut();
        let entry = &mut entries[token];
        if entry.read_ready {
            return true;
        }
        set_waker(&mut entry.reader, cx);
        false
    }

    /// A read found nothing more (EAGAIN, or a short read): wait for the
    /// next event before reading again. Keeps the waker when given one.
    pub(crate) fn clear_read_ready(&self, token: usize, cx: Option<&Context<'_>>) {
        let mut entries = self.entries.borrow_mut();
        let entry = &mut entries[token];
        entry.read_ready = false;
        if let Some(cx) = cx {
            set_waker(&mut entry.reader, cx);
        }
    }

    /// A write met a full send buffer: wake the writer on the next EPOLLOUT.
    pub(crate) fn wait_writable(&self, token: usize, cx: &Context<'_>) {
        set_waker(&mut self.entries.borrow_mut()[token].writer, cx);
    }

    /// Takes every pending readiness from the inner epoll (never blocks)
    /// and wakes the connections it concerns.
    pub(crate) fn harvest(&self) {
        let mut events = self.events.borrow_mut();
        loop {
            let n = match self.epoll.wait(&mut events, EpollTimeout::ZERO) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(_) => return,
            };
            let mut entries = self.entries.borrow_mut();
            for event in &events[..n] {
                let Some(entry) = usize::try_from(event.data())
                    .ok()
                    .and_then(|token| entries.get_mut(token))
                else {
                    continue;
                };
                let flags = event.events();
                // Errors and hang-ups are for the reader (and writer) to find.
                let failed = flags.intersects(EpollFlags::EPOLLERR | EpollFlags::EPOLLHUP);
                if failed || flags.intersects(EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP) {
                    entry.read_ready = true;
                    // Wakers only schedule their task: safe under the borrow.
                    if let Some(waker) = entry.reader.take() {
                        waker.wake();
                    }
                }
                if failed || flags.contains(EpollFlags::EPOLLOUT) {
                    if let Some(waker) = entry.writer.take() {
                        waker.wake();
                    }
                }
            }
            if n < events.len() {
                return;
            }
        }
    }

    /// The pacer says whether a tick is coming soon (`false`: park).
    pub(crate) fn set_ticking(&self, ticking: bool) {
        if self.parked.get() == ticking {
            self.parked.set(!ticking);
            if let Some(waker) = self.watcher.borrow_mut().take() {
                waker.wake();
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn is_parked(&self) -> bool {
        self.parked.get()
    }

    /// Resolves once `parked` equals `want`.
    async fn until_parked_is(&self, want: bool) {
        poll_fn(|cx| {
            if self.parked.get() == want {
                return Poll::Ready(());
            }
            set_waker(&mut self.watcher.borrow_mut(), cx);
            Poll::Pending
        })
        .await
    }

    /// While parked, the inner epoll fd sits in tokio's reactor and every
    /// readiness is harvested at once. Runs for the worker's lifetime; the
    /// worker's `LocalSet` drops it at the end.
    pub(crate) async fn watch(self: Rc<Self>) {
        loop {
            self.until_parked_is(true).await;
            // Registering reports readiness already pending, so nothing that
            // arrived since the last tick is missed.
            let inner = InnerFd(self.epoll.0.as_raw_fd());
            // SAFETY: the fd is the reactor's epoll instance, which this
            // task's `Rc` keeps open for as long as the `AsyncFd` lives.
            match unsafe { AsyncFd::register_with_interest(inner, Interest::READABLE) } {
                Ok(fd) => {
                    self.harvest();
                    loop {
                        tokio::select! {
                            biased;
                            () = self.until_parked_is(false) => break,
                            ready = fd.readable() => match ready {
                                Ok(mut guard) => {
                                    guard.clear_ready();
                                    self.harvest();
                                }
                                Err(_) => break,
                            },
                        }
                    }
                    // Dropping the AsyncFd deregisters it (the fd stays open).
                }
                Err(e) => {
                    // Never expected; rather poll than leave responses unread.
                    tracing::warn!(error = %e, "cannot watch the connections' epoll: polling it every ms");
                    loop {
                        tokio::select! {
                            biased;
                            () = self.until_parked_is(false) => break,
                            () = tokio::time::sleep(PARK_AFTER) => self.harvest(),
                        }
                    }
                }
            }
        }
    }
}

fn set_waker(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

/// The inner epoll fd, borrowed by tokio while parked (the `Reactor` owns
/// and outlives it: the watcher holds an `Rc` to it).
struct InnerFd(RawFd);

impl AsRawFd for InnerFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// A timer that, when it fires, first harvests once and lets the caller's
/// other branches look again: a response that arrived before the timeout
/// but was not read yet (between ticks) is not counted as timed out.
pub(crate) struct LastLook<'a> {
    sleep: Pin<&'a mut Sleep>,
    reactor: Option<&'a Reactor>,
    looked: bool,
}

impl<'a> LastLook<'a> {
    pub(crate) fn new(sleep: Pin<&'a mut Sleep>, reactor: Option<&'a Reactor>) -> Self {
        Self {
            sleep,
            reactor,
            looked: false,
        }
    }
}

impl Future for LastLook<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        match self.reactor {
            Some(reactor) if !self.looked => {
                self.looked = true;
                reactor.harvest();
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            _ => Poll::Ready(()),
        }
    }
}
