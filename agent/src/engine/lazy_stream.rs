//! A plain TCP connection read through the worker's [`Reactor`] (at pacer
//! ticks) instead of tokio's, timed by the kernel: each read remembers when
//! the kernel received the data it returned (`SO_TIMESTAMPNS`), so a
//! response read a tick late still ends when it really arrived.

use super::reactor::Reactor;
use super::transport::TargetStream;
use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, recvmsg, send, setsockopt, sockopt::ReceiveTimestampns,
};
use nix::sys::time::TimeSpec;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// What an HTTP/1.1 connection reads and writes: a connection on tokio's
/// reactor, or one read at the worker's pacer ticks. (Apart from
/// [`TargetStream`], which must stay `Send` for tonic's gRPC connector.)
pub(crate) enum Http1Stream {
    Tokio(TargetStream),
    Lazy(LazyStream),
}

impl Http1Stream {
    /// With a `reactor`, a plain connection moves to it (read at pacer
    /// ticks); TLS stays on tokio's (its reads are not timed by the kernel:
    /// rustls reads ahead of the records it decrypts).
    pub(crate) fn new(stream: TargetStream, reactor: Option<&Rc<Reactor>>) -> io::Result<Self> {
        match (stream, reactor) {
            (TargetStream::Plain(tcp), Some(reactor)) => {
                Ok(Http1Stream::Lazy(LazyStream::adopt(tcp, reactor)?))
            }
            (stream, _) => Ok(Http1Stream::Tokio(stream)),
        }
    }

    /// When the kernel received the last data read, if this stream knows:
    /// the end of a response read late is when it came, not when it was read.
    pub(crate) fn received_at(&self) -> Option<Instant> {
        match self {
            Http1Stream::Lazy(s) => s.received_at,
            Http1Stream::Tokio(_) => None,
        }
    }
}

impl From<TargetStream> for Http1Stream {
    fn from(stream: TargetStream) -> Self {
        Http1Stream::Tokio(stream)
    }
}

impl AsyncRead for Http1Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Http1Stream::Tokio(s) => Pin::new(s).poll_read(cx, buf),
            Http1Stream::Lazy(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Http1Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Http1Stream::Tokio(s) => Pin::new(s).poll_write(cx, buf),
            Http1Stream::Lazy(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Http1Stream::Tokio(s) => Pin::new(s).poll_flush(cx),
            Http1Stream::Lazy(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Http1Stream::Tokio(s) => Pin::new(s).poll_shutdown(cx),
            Http1Stream::Lazy(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Http1Stream::Tokio(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Http1Stream::Lazy(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Http1Stream::Tokio(s) => s.is_write_vectored(),
            Http1Stream::Lazy(_) => false,
        }
    }
}

/// A plain TCP connection in the worker's [`Reactor`].
pub(crate) struct LazyStream {
    socket: std::net::TcpStream,
    reactor: Rc<Reactor>,
    token: usize,
    /// Control-message space for one timestamp, reused for every read.
    cmsg: Vec<u8>,
    /// When the kernel received the data of the last read that returned
    /// some (the clock at the read when it gave no timestamp).
    received_at: Option<Instant>,
}

impl LazyStream {
    /// Takes `tcp` out of tokio's reactor into `reactor`'s, with receive
    /// timestamps on.
    pub(crate) fn adopt(tcp: tokio::net::TcpStream, reactor: &Rc<Reactor>) -> io::Result<Self> {
        // Still non-blocking: tokio set it so.
        let socket = tcp.into_std()?;
        setsockopt(&socket, ReceiveTimestampns, &true).map_err(io::Error::from)?;
        let token = reactor.register(&socket)?;
        Ok(Self {
            socket,
            reactor: reactor.clone(),
            token,
            cmsg: nix::cmsg_space!(TimeSpec),
            received_at: None,
        })
    }

    /// One `recvmsg`: bytes read and the kernel's receive time, if given.
    fn receive(&mut self, into: &mut [u8]) -> nix::Result<(usize, Option<TimeSpec>)> {
        let mut iov = [IoSliceMut::new(into)];
        let msg = recvmsg::<()>(
            self.socket.as_raw_fd(),
            &mut iov,
            Some(&mut self.cmsg),
            MsgFlags::empty(),
        )?;
        let stamp = msg.cmsgs().ok().and_then(|mut cmsgs| {
            cmsgs.find_map(|c| match c {
                ControlMessageOwned::ScmTimestampns(ts) => Some(ts),
                _ => None,
            })
        });
        Ok((msg.bytes, stamp))
    }
}

/// `stamp` (CLOCK_REALTIME) on the monotonic clock `Instant` reads: its age
/// now, on the realtime clock read just now, taken from `now`. The two clocks
/// are read back to back, so a step of the wall clock between the receive
/// and this read is the only error left; an age that comes out negative
/// (the wall clock went back) is taken as zero.
fn on_monotonic(stamp: TimeSpec, now: Instant) -> Instant {
    let Ok(wall) = nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME) else {
        return now;
    };
    let age = Duration::from(wall).saturating_sub(Duration::from(stamp));
    now.checked_sub(age).unwrap_or(now)
}

impl AsyncRead for LazyStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.reactor.poll_read_ready(this.token, cx) {
            return Poll::Pending;
        }
        loop {
            let into = buf.initialize_unfilled();
            let wanted = into.len();
            match this.receive(into) {
                Ok((n, stamp)) => {
                    if n > 0 {
                        let now = Instant::now();
                        this.received_at = Some(stamp.map_or(now, |s| on_monotonic(s, now)));
                    }
                    if n > 0 && n < wanted {
                        // Drained: the next event says when there is more.
                        // (An end of stream stays readable.)
                        this.reactor.clear_read_ready(this.token, None);
                    }
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => {
                    this.reactor.clear_read_ready(this.token, Some(cx));
                    return Poll::Pending;
                }
                Err(e) => return Poll::Ready(Err(e.into())),
            }
        }
    }
}

impl AsyncWrite for LazyStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            // Tried directly: the send buffer is almost never full.
            match send(this.socket.as_raw_fd(), buf, MsgFlags::MSG_NOSIGNAL) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => {
                    this.reactor.wait_writable(this.token, cx);
                    return Poll::Pending;
                }
                Err(e) => return Poll::Ready(Err(e.into())),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.socket.shutdown(Shutdown::Write))
    }
}

impl Drop for LazyStream {
    fn drop(&mut self) {
        // The socket closes right after this, which takes it out of the
        // epoll instance; only the entry is left to free.
        self.reactor.release(self.token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::http1::Http1Connection;
    use crate::engine::test_util::on_worker_runtime;
    use std::io::{Read, Write};
    use std::net::SocketAddr;
    use std::sync::mpsc;

    const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";
    const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

    /// A loopback server for one connection: for each request it says it
    /// got it (`got`), answers when told (`go`), and says it answered.
    struct Server {
        addr: SocketAddr,
        got: mpsc::Receiver<()>,
        go: mpsc::Sender<()>,
        answered: mpsc::Receiver<()>,
    }

    fn server() -> Server {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (got_tx, got) = mpsc::channel();
        let (go, go_rx) = mpsc::channel::<()>();
        let (answered_tx, answered) = mpsc::channel();
        std::thread::spawn(move || {
            let Ok((mut socket, _)) = listener.accept() else {
                return;
            };
            let mut buf = [0u8; 1024];
            // A request this small arrives in one segment: one read each.
            while matches!(socket.read(&mut buf), Ok(n) if n > 0) {
                let answer = got_tx.send(()).is_ok()
                    && go_rx.recv().is_ok()
                    && socket.write_all(RESPONSE).is_ok()
                    && answered_tx.send(()).is_ok();
                if !answer {
                    return;
                }
            }
        });
        Server {
            addr,
            got,
            go,
            answered,
        }
    }

    async fn lazy_connection(addr: SocketAddr, reactor: &Rc<Reactor>) -> Http1Connection {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let stream = Http1Stream::new(TargetStream::Plain(tcp), Some(reactor))
            .expect("moves to the reactor");
        Http1Connection::over(stream)
    }

    /// Lets the worker's other tasks run until the server has the request
    /// (then the exchange has written it and is waiting for the answer).
    async fn until_got(server: &Server) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while server.got.try_recv().is_err() {
            assert!(std::time::Instant::now() < deadline, "request never sent");
            tokio::task::yield_now().await;
        }
    }

    #[test]
    fn a_response_read_at_a_later_tick_ends_when_the_kernel_received_it() {
        on_worker_runtime(async {
            let server = server();
            let reactor = Reactor::new().expect("epoll");
            // Ticks are coming (no watcher either): only a harvest reads.
            reactor.set_ticking(true);
            let mut conn = lazy_connection(server.addr, &reactor).await;
            // The kernel turns receive timestamps on a little after the
            // first socket asks (a deferred static key): until then reads
            // carry none and fall back to the clock. So a few tries; timed
            // at read, none would pass.
            let mut read_late = Vec::new();
            for _ in 0..20 {
                let sent = Instant::now();
                let exchange = tokio::task::spawn_local(async move {
                    let info = conn.send(REQUEST, true).await;
                    (conn, info)
                });
                until_got(&server).await;
                server.go.send(()).expect("server");
                server.answered.recv().expect("answered");
                // The worker is busy well past the response's arrival…
                std::thread::sleep(Duration::from_millis(20));
                // …until this tick, which reads it.
                let tick = Instant::now();
                reactor.harvest();
                let (back, info) = exchange.await.expect("joins");
                conn = back;
                let info = info.expect("a response");
                assert_eq!(info.status, 200);
                let received = info.received_at.expect("an end time");
                assert!(sent <= info.first_byte && info.first_byte <= received);
                if received < tick {
                    return;
                }
                read_late.push(received - tick);
            }
            panic!(
                "every response timed when read, not when received: {read_late:?} after the tick"
            );
        });
    }

    #[test]
    fn a_parked_reactor_reads_a_response_without_a_tick() {
        on_worker_runtime(async {
            let server = server();
            let reactor = Reactor::new().expect("epoll");
            tokio::task::spawn_local(reactor.clone().watch());
            // A new reactor is parked: no tick is coming.
            assert!(reactor.is_parked());
            let mut conn = lazy_connection(server.addr, &reactor).await;
            for _ in 0..3 {
                let exchange = tokio::task::spawn_local(async move {
                    let info = conn.send(REQUEST, true).await;
                    (conn, info)
                });
                until_got(&server).await;
                server.go.send(()).expect("server");
                // Nobody harvests by hand: the watcher must.
                let (back, info) = tokio::time::timeout(Duration::from_secs(10), exchange)
                    .await
                    .expect("the response is read while parked")
                    .expect("joins");
                assert_eq!(info.expect("a response").status, 200);
                conn = back;
            }
        });
    }
}
