//! The request loop of one connection: when to send (closed or open model),
//! how to time it, where to record it.
//!
//! This is the hot path. Per request it reads the clock two or three times,
//! writes one pre-serialized buffer, parses the response in place and
//! records into the worker's recorder; it races one timer (the timeout or
//! the hard stop, whichever comes first), created once per connection and
//! re-armed, and the worker's cancellation flag.
//!
//! With HTTP/2 a connection carries several streams: each stream slot runs
//! this same loop (pacing, timeouts, recording alike), sharing the
//! connection through an [`H2Group`]. A "slot" below is a connection
//! (HTTP/1.1) or one stream slot of a connection (HTTP/2).

use super::cancel::WorkerCancel;
use super::http1::{Http1Connection, ResponseInfo};
use super::http2::{H2Failure, H2Group, H2Requests, H2Slot};
use super::lazy_stream::Http1Stream;
use super::pacer::Pacer;
use super::reactor::{LastLook, Reactor};
use super::request_set::{Picker, RequestSet};
use super::timing::{self, Waits};
use super::transport::{ConnectFailure, Connector};
use crate::llm::{LlmFault, LlmObserver};
use crate::phases::ConnectTimings;
use crate::plan::{LoadPlan, WorkloadModel};
use crate::recorder::{FailureClass, IntervalRecorder};
use crate::resolver::AddressBook;
use crate::schedule::{ArrivalSchedule, SplitMix64};
use std::cell::RefCell;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, Sleep, sleep_until};

/// Longest pause between reconnect attempts after connect errors (closed
/// model only: the open model is paced by its schedule).
const MAX_CONNECT_BACKOFF: Duration = Duration::from_secs(1);

/// What all connections of one agent share, read-only.
pub(crate) struct RunContext {
    /// Seeds the connections' draws (request of the mix, data row, think
    /// time): random per plan, so that agents — which may share a process
    /// id, like pods that are all pid 1 — never draw the same sequence.
    pub seed: u64,
    /// gRPC mode: the unary call every send makes.
    pub grpc: Option<Arc<super::grpc::PreparedCall>>,
    pub plan: LoadPlan,
    pub requests: RequestSet,
    /// The target's addresses: read when a connection is opened.
    pub addresses: AddressBook,
    /// Start of interval 0.
    pub start: Instant,
    /// Where this plan's requests record in the worker's recorder (an
    /// endpoint's leg records apart from the others).
    pub request_offset: usize,
    /// Requests the recorder keeps figures for, across every plan of the run.
    pub request_slots: usize,
    /// Opens connections (TCP, TLS).
    pub connector: Connector,
    /// HTTP/2 runs: the requests in HTTP/2 form.
    pub h2: Option<H2Requests>,
}

impl RunContext {
    /// Request slots per connection (HTTP/2 streams; 1 for HTTP/1.1).
    pub fn streams(&self) -> u32 {
        self.plan.transport.slots_per_connection()
    }

    /// All of this agent's request slots.
    pub fn slots(&self) -> u32 {
        self.plan.model.connections().max(1) * self.streams()
    }
}

/// The connection to the target, as one slot uses it.
enum Link {
    Http1(Option<Http1Connection>),
    Http2(H2Slot),
}

impl Link {
    /// The next send opens a connection.
    fn needs_connection(&self) -> bool {
        match self {
            Link::Http1(conn) => conn.is_none(),
            Link::Http2(slot) => !slot.is_connected(),
        }
    }

    /// Drops the connection after a failure: HTTP/1.1 closes it (its state
    /// is unknown); an HTTP/2 slot lets go of its view (the stream was
    /// reset; the connection stays up for the other slots).
    fn drop_connection(&mut self) {
        match self {
            Link::Http1(conn) => *conn = None,
            Link::Http2(slot) => slot.release(),
        }
    }
}

/// Where a slot sits: its connection, and its stream slot on it.
pub(crate) struct SlotPlace {
    /// Global index of the connection among the agent's connections.
    pub connection: u32,
    /// Stream slot on the connection (0 for HTTP/1.1).
    pub stream: u32,
    /// HTTP/2: what the connection's slots share.
    pub group: Option<Rc<H2Group>>,
}

/// One connection's loop, from pre-connecting to the end of the run.
pub(crate) struct ConnectionLoop {
    ctx: Arc<RunContext>,
    recorder: Rc<RefCell<IntervalRecorder>>,
    /// Global index of this slot among the agent's slots
    /// (`connection × streams + stream`).
    index: u32,
    /// Global index of its connection.
    connection: u32,
    /// Where its connection goes: picked again before each new connection
    /// (the target may have been re-resolved).
    addr: SocketAddr,
    /// When the exchange in progress had a connection to send on (its
    /// start, or the end of the connect it needed): the wait phase's start.
    ready_at: Instant,
    /// Set by an exchange that opened a connection: how, and when done.
    opened: Option<(ConnectTimings, Instant)>,
    link: Link,
    /// The start, think times, back-off and send times; cancellation.
    waits: Waits,
    /// Re-armed for every request: the per-request timeout, or the hard
    /// stop if that comes first (one timer polled per request, not two).
    timeout: Pin<Box<Sleep>>,
    /// In-flight requests are interrupted here.
    hard_stop: Instant,
    /// Closed model: draws think times.
    rng: SplitMix64,
    /// Picks each send's request of the mix and data row.
    picker: Picker,
    /// Reused buffers for templated requests: the request, and its body.
    buf: Vec<u8>,
    scratch: Vec<u8>,
    /// Model-serving runs: reads each OpenAI-compatible response as it comes.
    llm: Option<LlmObserver>,
    /// Open model over plain HTTP/1.1: the worker's reactor, which reads
    /// this connection at pacer ticks (responses timed by the kernel).
    reactor: Option<Rc<Reactor>>,
}

/// How one exchange ended.
enum Exchange {
    Response(ResponseInfo),
    Failed(FailureClass),
    /// Cancelled or past the hard stop while in flight.
    Interrupted,
    /// A `once` data set is used up for this connection: nothing was sent.
    NoData,
    /// A model-serving stream that broke off before its end.
    Truncated,
}

/// What one send was: which request of the mix, and its size.
#[derive(Clone, Copy)]
struct Sent {
    request: usize,
    bytes: u64,
}

impl ConnectionLoop {
    pub(crate) fn new(
        ctx: Arc<RunContext>,
        recorder: Rc<RefCell<IntervalRecorder>>,
        place: SlotPlace,
        cancel: Rc<WorkerCancel>,
        pacer: Option<Rc<Pacer>>,
        reactor: Option<Rc<Reactor>>,
    ) -> Self {
        let addr = ctx.addresses.pick(place.connection);
        let hard_stop = timing::hard_stop(&ctx);
        let ctx_start = ctx.start;
        let slots = ctx.slots();
        let seed = ctx.seed;
        let index = place.connection * ctx.streams() + place.stream;
        let llm = ctx.plan.llm.is_some();
        // TLS reads are not timed by the kernel (rustls reads ahead), HTTP/2
        // shares a connection between slots, and a model-serving stream's
        // tokens are timed by the clock as they are read: those stay on
        // tokio's reactor.
        let lazy = matches!(ctx.plan.model, WorkloadModel::Open { .. })
            && place.group.is_none()
            && ctx.connector.tls.is_none()
            && ctx.grpc.is_none()
            && !llm;
        let reactor = reactor.filter(|_| lazy);
        let link = match place.group {
            Some(group) => Link::Http2(H2Slot::new(group)),
            None => Link::Http1(None),
        };
        Self {
            ctx,
            recorder,
            index,
            connection: place.connection,
            addr,
            ready_at: ctx_start,
            opened: None,
            link,
            waits: Waits::new(cancel, pacer, hard_stop),
            timeout: Box::pin(sleep_until(hard_stop)),
            hard_stop,
            rng: SplitMix64(u64::from(index) ^ seed.rotate_left(16)),
            picker: Picker::new(seed, index, slots),
            buf: Vec::new(),
            scratch: Vec::new(),
            llm: llm.then(LlmObserver::default),
            reactor,
        }
    }

    pub(crate) async fn run(mut self) {
        self.preconnect().await;
        match &self.ctx.plan.model {
            WorkloadModel::Closed { .. } => {
                for (from, until) in timing::busy_windows(&self.ctx, self.index) {
                    if !self.run_closed(from, until).await {
                        return;
                    }
                    // Idle until the next window: a virtual user that left
                    // takes its connection with it.
                    self.link.drop_connection();
                }
            }
            WorkloadModel::Open { rate, arrival, .. } => {
                // Slot i of N takes arrivals i, i+N, … (N: connections ×
                // streams).
                let schedule = ArrivalSchedule::new(
                    self.ctx.start.into_std(),
                    rate,
                    *arrival,
                    self.index,
                    self.ctx.slots(),
                );
                self.run_open(schedule).await
            }
        }
    }

    /// Opens the connection before the start so the first request does not
    /// pay for the handshake. A failure here is not counted: the first
    /// request will try again and count it.
    async fn preconnect(&mut self) {
        let start = self.ctx.start;
        if Instant::now() >= start {
            return;
        }
        let (connector, addr) = (&self.ctx.connector, self.addr);
        let recorder = &self.recorder;
        let reactor = self.reactor.as_ref();
        let connect = async {
            let opened = match &mut self.link {
                Link::Http1(conn) => match open_http1(connector, addr, reactor).await {
                    Ok((opened, timings)) => {
                        *conn = Some(opened);
                        Some(timings)
                    }
                    Err(_) => None,
                },
                Link::Http2(slot) => slot.ready(connector, addr).await.ok().flatten(),
            };
            if let Some(timings) = opened {
                recorder.borrow_mut().phases.record_connect(&timings);
            }
        };
        tokio::select! {
            biased;
            _ = self.waits.cancelled() => {}
            () = connect => {}
            _ = sleep_until(start) => {}
        }
    }

    /// Sends back to back from `from` until `until`; in-flight requests at
    /// `until` finish normally. False when the run was cancelled or stopped.
    async fn run_closed(&mut self, from: Instant, until: Instant) -> bool {
        if !self.waits.until(from).await {
            return false;
        }
        let mut backoff = Duration::from_millis(10);
        loop {
            let sent = Instant::now();
            if sent >= until {
                return true;
            }
            let (outcome, what) = self.exchange(sent).await;
            match outcome {
                Exchange::Interrupted => {
                    self.recorder.borrow_mut().record_interrupted(1);
                    return false;
                }
                Exchange::NoData => return false,
                Exchange::Failed(class @ (FailureClass::Connect | FailureClass::Tls)) => {
                    self.record_failure(class, sent, None, what.request);
                    // Don't spin on a refused port; the rate of failures is
                    // not a load figure anyone wants.
                    let resume = Instant::now() + backoff;
                    backoff = (backoff * 2).min(MAX_CONNECT_BACKOFF);
                    if !self.waits.until(resume.min(until)).await {
                        return false;
                    }
                }
                outcome => {
                    backoff = Duration::from_millis(10);
                    let _ended = self.record(outcome, sent, what);
                    // A virtual user's think time before its next request.
                    if let Some((min, max)) = self.ctx.plan.think_time {
                        let pause = self.rng.duration_between(min, max);
                        if !self.waits.until((Instant::now() + pause).min(until)).await {
                            return false;
                        }
                    }
                }
            }
        }
    }

    async fn run_open(&mut self, mut schedule: ArrivalSchedule) {
        let hard_stop = self.hard_stop;
        // When the last exchange ended (its response arrived).
        let mut free_at = Instant::now();
        while let Some(intended) = schedule.next_due() {
            let intended = Instant::from_std(intended);
            // Idle before its send time, the connection waits on a timer
            // that releases it near that time (up to half a grid slot early,
            // or late); that deviation is the generator's, not the target's,
            // so the latency counts from the actual send. A response that
            // had arrived by the send time but was read after it (at a pacer
            // tick) leaves the connection idle too. Busy past its send time, the
            // connection was held up by the target: then the wait is charged
            // (coordinated-omission correction).
            let now = Instant::now();
            let early = now < intended;
            let was_idle = early || free_at <= intended;
            if !self.waits.paced_from(intended, now).await {
                timing::record_overdue(&self.recorder, &schedule, intended);
                return;
            }
            // Overdue, nothing was waited for: `now` is still the time.
            let sent = if early { Instant::now() } else { now };
            if sent >= hard_stop {
                // Owed requests we can no longer send in time.
                timing::record_overdue(&self.recorder, &schedule, intended);
                return;
            }
            self.recorder
                .borrow_mut()
                .record_schedule_lag(timing::schedule_deviation(sent, intended));
            let (outcome, what) = self.exchange(sent).await;
            match outcome {
                Exchange::Interrupted => {
                    timing::record_overdue(&self.recorder, &schedule, intended);
                    return;
                }
                // The data ran out: what is still to come is not owed.
                Exchange::NoData => return,
                // Latency counts from the intended send time, so time spent
                // waiting behind a slow response is included.
                outcome => {
                    free_at = self.record(outcome, if was_idle { sent } else { intended }, what);
                }
            }
        }
    }

    /// Records the exchange's outcome; gives when it ended.
    fn record(&mut self, outcome: Exchange, origin: Instant, what: Sent) -> Instant {
        let now = Instant::now();
        match outcome {
            Exchange::Response(info) => {
                // Read at a pacer tick: it ended when the kernel received
                // it (kept within the exchange, whatever the wall clock did).
                let end = info.received_at.map_or(now, |at| at.max(origin).min(now));
                let latency = end - origin;
                let mut recorder = self.recorder.borrow_mut();
                recorder.record_bytes(what.bytes, info.bytes_received);
                recorder.phases.record_response(
                    info.first_byte.saturating_duration_since(self.ready_at),
                    end.saturating_duration_since(info.first_byte),
                );
                let status = Some(info.status);
                let class = match info.status {
                    400..=499 => Some(FailureClass::Status4xx),
                    500..=599 => Some(FailureClass::Status5xx),
                    _ => None,
                };
                if let Some(class) = class {
                    recorder.record_failure(class, latency, status, what.request);
                    return end;
                }
                let Some(observer) = self.llm.as_mut() else {
                    recorder.record_success(latency, info.status, what.request);
                    return end;
                };
                // A model-serving answer succeeds only if it kept to the protocol.
                let slo = self.ctx.plan.llm.map(|l| l.goodput).unwrap_or_default();
                match observer.finish(origin, end) {
                    Ok(finished) => {
                        recorder.record_success(latency, info.status, what.request);
                        if let Some(llm) = recorder.llm.as_mut() {
                            llm.record(&finished.metrics, &slo);
                        }
                    }
                    Err(fault) => {
                        recorder.record_failure(FailureClass::Other, latency, status, what.request);
                        if let Some(llm) = recorder.llm.as_mut() {
                            match fault {
                                LlmFault::Malformed => llm.malformed += 1,
                                LlmFault::Truncated => llm.truncated += 1,
                            }
                        }
                    }
                }
                end
            }
            Exchange::Failed(class) => {
                if !matches!(class, FailureClass::Connect | FailureClass::Tls) {
                    // The request went out (or at least was written).
                    self.recorder.borrow_mut().record_bytes(what.bytes, 0);
                }
                self.record_failure(class, origin, None, what.request);
                now
            }
            Exchange::Truncated => {
                self.recorder.borrow_mut().record_bytes(what.bytes, 0);
                self.record_failure(FailureClass::Other, origin, None, what.request);
                if let Some(llm) = self.recorder.borrow_mut().llm.as_mut() {
                    llm.truncated += 1;
                }
                now
            }
            Exchange::Interrupted => {
                self.recorder.borrow_mut().record_interrupted(1);
                now
            }
            Exchange::NoData => now,
        }
    }

    fn record_failure(
        &self,
        class: FailureClass,
        origin: Instant,
        status: Option<u16>,
        request: usize,
    ) {
        let latency = Instant::now() - origin;
        self.recorder
            .borrow_mut()
            .record_failure(class, latency, status, request);
    }

    /// Picks the request of the mix and the data row, then sends it
    /// (connecting first if needed) and reads its response, racing the
    /// request's timeout, the hard stop and cancellation.
    async fn exchange(&mut self, sent: Instant) -> (Exchange, Sent) {
        let requests: &RequestSet = &self.ctx.requests;
        let index = self.picker.request(requests);
        let Ok(row) = self.picker.row(requests) else {
            let none = Sent {
                request: index + self.ctx.request_offset,
                bytes: 0,
            };
            return (Exchange::NoData, none);
        };
        let ready = requests.get(index);
        let timeout_at = sent + ready.timeout;
        self.timeout.as_mut().reset(timeout_at.min(self.hard_stop));
        let expects_body = requests.expects_body(index);
        let bytes = requests.bytes(index, row, &mut self.buf, &mut self.scratch);
        let what = Sent {
            request: index + self.ctx.request_offset,
            bytes: bytes.len() as u64,
        };
        if self.link.needs_connection() {
            // Not per request: only when a connection is to be opened.
            self.addr = self.ctx.addresses.pick(self.connection);
        }
        let addr = self.addr;
        let ctx: &RunContext = &self.ctx;
        let link = &mut self.link;
        let observer = self.llm.as_mut();
        let opened = &mut self.opened;
        let reactor = self.reactor.as_ref();
        let attempt = async move {
            match link {
                Link::Http1(slot) => {
                    let http1 = Http1Exchange { ctx, addr, reactor };
                    http1.run(slot, bytes, expects_body, observer, opened).await
                }
                Link::Http2(slot) => {
                    exchange_http2(slot, ctx, addr, index, bytes, observer, opened).await
                }
            }
        };
        let outcome = tokio::select! {
            biased;
            _ = self.waits.cancelled() => Exchange::Interrupted,
            result = attempt => match result {
                Ok(info) => Exchange::Response(info),
                Err(failed) => failed,
            },
            // At equal instants the timeout wins, as it always has. A
            // response read at pacer ticks gets a last look first.
            _ = LastLook::new(self.timeout.as_mut(), self.reactor.as_deref()) => if timeout_at <= self.hard_stop {
                Exchange::Failed(FailureClass::Timeout)
            } else {
                Exchange::Interrupted
            },
        };
        self.ready_at = sent;
        if let Some((timings, done)) = self.opened.take() {
            // The connection counts even if the exchange then failed.
            self.recorder.borrow_mut().phases.record_connect(&timings);
            self.ready_at = done;
        }
        if !matches!(outcome, Exchange::Response(_)) {
            // Whatever was in flight is abandoned with the connection.
            self.link.drop_connection();
        }
        (outcome, what)
    }
}

fn connect_class(failure: ConnectFailure) -> FailureClass {
    match failure {
        ConnectFailure::Tcp => FailureClass::Connect,
        ConnectFailure::Tls => FailureClass::Tls,
    }
}

/// One HTTP/2 exchange: a stream on the connection the slot shares
/// (opened first if needed). `rendered` is the request's HTTP/1.1 form.
async fn exchange_http2(
    slot: &mut H2Slot,
    ctx: &RunContext,
    addr: SocketAddr,
    index: usize,
    rendered: &[u8],
    observer: Option<&mut LlmObserver>,
    opened: &mut Option<(ConnectTimings, Instant)>,
) -> Result<ResponseInfo, Exchange> {
    let Some(h2) = &ctx.h2 else {
        return Err(Exchange::Failed(FailureClass::Other));
    };
    let mut built = None;
    let request = match h2.get(index, rendered, &mut built) {
        Ok(request) => request,
        Err(e) => {
            // A templated request whose data makes it invalid for HTTP/2.
            tracing::debug!(error = %e, "request not sent");
            return Err(Exchange::Failed(FailureClass::Other));
        }
    };
    let result = match observer {
        Some(observer) => {
            observer.reset();
            let result = slot
                .send(&ctx.connector, addr, request, &mut *observer, opened)
                .await;
            result.map_err(|f| (f, observer.is_stream()))
        }
        None => slot
            .send(
                &ctx.connector,
                addr,
                request,
                &mut super::http1::Discard,
                opened,
            )
            .await
            .map_err(|f| (f, false)),
    };
    result.map_err(|(failure, event_stream)| match failure {
        H2Failure::Connect(c) => Exchange::Failed(connect_class(c)),
        // An event stream that broke off mid-way was truncated.
        H2Failure::Stream { mid_body: true } if event_stream => Exchange::Truncated,
        H2Failure::Stream { .. } => Exchange::Failed(FailureClass::Other),
    })
}

/// Opens an HTTP/1.1 connection; with a `reactor`, read at pacer ticks.
async fn open_http1(
    connector: &Connector,
    addr: SocketAddr,
    reactor: Option<&Rc<Reactor>>,
) -> Result<(Http1Connection, ConnectTimings), ConnectFailure> {
    let (stream, timings) = connector.connect(addr).await?;
    let stream = Http1Stream::new(stream, reactor).map_err(|e| {
        tracing::debug!(error = %e, "cannot move the connection to the worker's reactor");
        ConnectFailure::Tcp
    })?;
    Ok((Http1Connection::over(stream), timings))
}

/// Where an HTTP/1.1 exchange goes, and how its connection is read.
struct Http1Exchange<'a> {
    ctx: &'a RunContext,
    addr: SocketAddr,
    reactor: Option<&'a Rc<Reactor>>,
}

impl Http1Exchange<'_> {
    /// One exchange on the slot's connection (opened first if needed: then
    /// `opened` says how, and when it was ready).
    async fn run(
        self,
        slot: &mut Option<Http1Connection>,
        bytes: &[u8],
        expects_body: bool,
        observer: Option<&mut LlmObserver>,
        opened: &mut Option<(ConnectTimings, Instant)>,
    ) -> Result<ResponseInfo, Exchange> {
        let ctx = self.ctx;
        let conn = match slot {
            Some(conn) => conn,
            None => match open_http1(&ctx.connector, self.addr, self.reactor).await {
                Ok((conn, timings)) => {
                    *opened = Some((timings, Instant::now()));
                    slot.insert(conn)
                }
                Err(failure) => return Err(Exchange::Failed(connect_class(failure))),
            },
        };
        let result = match observer {
            Some(observer) => {
                observer.reset();
                let result = conn
                    .send_observed(bytes, expects_body, &mut *observer)
                    .await;
                // An event stream that broke off mid-way was truncated.
                result.map_err(|_| observer.is_stream())
            }
            None => conn.send(bytes, expects_body).await.map_err(|_| false),
        };
        match result {
            Ok(info) => {
                if !info.keep_alive || ctx.plan.transport.new_connection_per_request {
                    *slot = None;
                }
                Ok(info)
            }
            Err(mid_stream) => {
                *slot = None;
                Err(if mid_stream {
                    Exchange::Truncated
                } else {
                    Exchange::Failed(FailureClass::Other)
                })
            }
        }
    }
}
