//! The request loop of one gRPC connection: unary calls over HTTP/2 (h2c),
//! timed and recorded like HTTP requests.
//!
//! A "connection" is one HTTP/2 connection (a tonic `Channel`) with one call
//! in flight at a time, so `load.connections` means the same concurrency as
//! for HTTP/1.1. The load models are the same as in
//! [`super::connection`]: the open model's intended send times come from
//! [`ArrivalSchedule`] and the worker's [`Pacer`], latency counts from the
//! intended time when the connection was busy past it (coordinated omission
//! corrected), the closed model's busy windows come from the stage profile.
//!
//! Per call the request message (`Bytes`, encoded once per run) and the
//! metadata are cloned by reference count / into tonic's request; the
//! timers are created once per connection and re-armed.

mod codec;
mod status;

use super::cancel::WorkerCancel;
use super::connection::RunContext;
use super::pacer::Pacer;
use super::request_set::Picker;
use super::timing::{self, Waits};
use super::transport::{ConnectFailure, TargetStream};
use crate::phases::ConnectTimings;
use crate::plan::{GrpcSpec, WorkloadModel};
use crate::recorder::{FailureClass, IntervalRecorder};
use crate::schedule::{ArrivalSchedule, SplitMix64};
use bytes::Bytes;
use codec::RawCodec;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, Sleep, sleep_until};
use tonic::client::Grpc;
use tonic::codegen::http::Uri;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, MetadataMap};
use tonic::transport::{Channel, Endpoint};

/// Longest pause between reconnect attempts after connect errors (closed
/// model only: the open model is paced by its schedule).
const MAX_CONNECT_BACKOFF: Duration = Duration::from_secs(1);

/// What every call of a run sends, prepared once.
#[derive(Debug, Clone)]
pub(crate) struct PreparedCall {
    path: PathAndQuery,
    payload: Bytes,
    /// With data rows: each row's message, by row index.
    row_payloads: Vec<Bytes>,
    metadata: MetadataMap,
    /// The target as the scenario names it: the `:authority` of each call
    /// (the address dialled is the resolved, allowlist-checked one).
    origin: Uri,
}

#[derive(Debug, thiserror::Error)]
pub enum GrpcCallError {
    #[error("invalid gRPC method path {0:?}")]
    Path(String),
    #[error("invalid metadata {0:?}")]
    Metadata(String),
    #[error("invalid target origin {0:?}")]
    Origin(String),
}

impl PreparedCall {
    pub(crate) fn new(spec: &GrpcSpec, target: &url::Url) -> Result<Self, GrpcCallError> {
        let path = spec
            .path
            .parse()
            .map_err(|_| GrpcCallError::Path(spec.path.clone()))?;
        let mut metadata = MetadataMap::with_capacity(spec.metadata.len());
        for (name, value) in &spec.metadata {
            let key: AsciiMetadataKey = name
                .parse()
                .map_err(|_| GrpcCallError::Metadata(name.clone()))?;
            let value: AsciiMetadataValue = value
                .parse()
                .map_err(|_| GrpcCallError::Metadata(name.clone()))?;
            metadata.append(key, value);
        }
        let origin = target.origin().ascii_serialization();
        let origin = origin
            .parse()
            .map_err(|_| GrpcCallError::Origin(origin.clone()))?;
        Ok(Self {
            path,
            payload: spec.payload.clone(),
            row_payloads: spec.row_payloads.clone(),
            metadata,
            origin,
        })
    }
}

/// How one call ended.
enum Call {
    /// The target's status: OK or not, with the response message's length
    /// and, when response headers came, when the call was ready to go (its
    /// connection open) and when they came: the wait and transfer phases.
    Status {
        code: tonic::Code,
        received: u64,
        timed: Option<(Instant, Instant)>,
    },
    Failed(FailureClass),
    /// Cancelled or past the hard stop while in flight.
    Interrupted,
    /// A `once` data set is used up for this connection: nothing was sent.
    NoData,
}

/// One gRPC connection's loop, from pre-connecting to the end of the run.
pub(crate) struct GrpcLoop {
    ctx: Arc<RunContext>,
    call: Arc<PreparedCall>,
    recorder: Rc<RefCell<IntervalRecorder>>,
    index: u32,
    /// The channel's settings; made once.
    endpoint: Endpoint,
    /// The target address this connection dials; picked again before each
    /// reconnect (the target may have been re-resolved).
    addr: SocketAddr,
    client: Option<Grpc<Channel>>,
    waits: Waits,
    /// Re-armed for every call: the per-call timeout.
    timeout: Pin<Box<Sleep>>,
    /// Fires at the hard stop, once.
    hard_stop: Pin<Box<Sleep>>,
    /// Closed model: draws think times.
    rng: SplitMix64,
    /// Takes each send's data row.
    picker: Picker,
}

impl GrpcLoop {
    pub(crate) fn new(
        ctx: Arc<RunContext>,
        call: Arc<PreparedCall>,
        recorder: Rc<RefCell<IntervalRecorder>>,
        index: u32,
        cancel: Rc<WorkerCancel>,
        pacer: Option<Rc<Pacer>>,
    ) -> Self {
        let addr = ctx.addresses.pick(index);
        let seed = ctx.seed;
        let hard_stop = timing::hard_stop(&ctx);
        let connections = ctx.plan.model.connections();
        Self {
            endpoint: endpoint(addr, &call.origin),
            addr,
            ctx,
            call,
            recorder,
            index,
            client: None,
            waits: Waits::new(cancel, pacer, hard_stop),
            timeout: Box::pin(sleep_until(hard_stop)),
            hard_stop: Box::pin(sleep_until(hard_stop)),
            rng: SplitMix64(u64::from(index) ^ seed.rotate_left(16)),
            picker: Picker::new(seed, index, connections),
        }
    }

    pub(crate) async fn run(mut self) {
        self.preconnect().await;
        match &self.ctx.plan.model {
            WorkloadModel::Closed { .. } => {
                for (from, until) in
                    timing::busy_windows(&self.ctx, self.index * self.ctx.streams())
                {
                    if !self.run_closed(from, until).await {
                        return;
                    }
                    // A virtual user that left takes its connection with it.
                    self.client = None;
                }
            }
            WorkloadModel::Open {
                rate,
                connections,
                arrival,
            } => {
                let schedule = ArrivalSchedule::new(
                    self.ctx.start.into_std(),
                    rate,
                    *arrival,
                    self.index,
                    *connections,
                );
                self.run_open(schedule).await
            }
        }
    }

    /// Opens the HTTP/2 connection before the start; a failure here is not
    /// counted (the first call tries again and counts it).
    async fn preconnect(&mut self) {
        let start = self.ctx.start;
        if Instant::now() >= start {
            return;
        }
        tokio::select! {
            biased;
            _ = self.waits.cancelled() => {}
            opened = connect(&self.ctx, &self.endpoint, self.addr) => {
                if let Ok((channel, timings)) = opened {
                    self.recorder.borrow_mut().phases.record_connect(&timings);
                    self.client = Some(client(channel));
                }
            }
            _ = sleep_until(start) => {}
        }
    }

    /// Calls back to back from `from` until `until`; false when the run was
    /// cancelled or stopped.
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
            let (outcome, bytes) = self.call(sent).await;
            match outcome {
                Call::Interrupted => {
                    self.recorder.borrow_mut().record_interrupted(1);
                    return false;
                }
                Call::NoData => return false,
                Call::Failed(FailureClass::Connect) => {
                    self.record(Call::Failed(FailureClass::Connect), sent, bytes);
                    // Don't spin on a refused port.
                    let resume = Instant::now() + backoff;
                    backoff = (backoff * 2).min(MAX_CONNECT_BACKOFF);
                    if !self.waits.until(resume.min(until)).await {
                        return false;
                    }
                }
                outcome => {
                    backoff = Duration::from_millis(10);
                    self.record(outcome, sent, bytes);
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
        let hard_stop = timing::hard_stop(&self.ctx);
        while let Some(intended) = schedule.next_due() {
            let intended = Instant::from_std(intended);
            // As for HTTP: an idle connection's timer lateness is the
            // generator's; a busy connection's wait is the target's
            // (coordinated-omission correction).
            let was_idle = Instant::now() < intended;
            if !self.waits.paced(intended).await || Instant::now() >= hard_stop {
                timing::record_overdue(&self.recorder, &schedule, intended);
                return;
            }
            let sent = Instant::now();
            self.recorder
                .borrow_mut()
                .record_schedule_lag(timing::schedule_deviation(sent, intended));
            let (outcome, bytes) = self.call(sent).await;
            match outcome {
                Call::Interrupted => {
                    timing::record_overdue(&self.recorder, &schedule, intended);
                    return;
                }
                // The data ran out: what is still to come is not owed.
                Call::NoData => return,
                outcome => self.record(outcome, if was_idle { sent } else { intended }, bytes),
            }
        }
    }

    /// `sent`: the request message's size.
    fn record(&self, outcome: Call, origin: Instant, sent: u64) {
        let now = Instant::now();
        let latency = now - origin;
        // The call is the plan's one request: it records at the plan's
        // offset (its endpoint's slot, so the cross-region matrix has it).
        let request = self.ctx.request_offset;
        let mut recorder = self.recorder.borrow_mut();
        match outcome {
            Call::Status {
                code,
                received,
                timed,
            } => {
                recorder.record_bytes(sent, received);
                if let Some((ready, first_byte)) = timed {
                    recorder.phases.record_response(
                        first_byte.saturating_duration_since(ready),
                        now.saturating_duration_since(first_byte),
                    );
                }
                let failure = (code != tonic::Code::Ok).then(|| status::failure_class(code));
                recorder.record_grpc(latency, code as u8, failure, request);
            }
            Call::Failed(class) => {
                if class != FailureClass::Connect {
                    recorder.record_bytes(sent, 0);
                }
                recorder.record_failure(class, latency, None, request);
            }
            Call::Interrupted => recorder.record_interrupted(1),
            Call::NoData => {}
        }
    }

    /// Takes the data row (if any), then makes one call (connecting first if
    /// needed), racing its timeout, the hard stop and cancellation. Also
    /// gives the request message's size.
    async fn call(&mut self, sent: Instant) -> (Call, u64) {
        let prepared = &*self.call;
        let payload = match self.picker.row(&self.ctx.requests) {
            Err(()) => return (Call::NoData, 0),
            Ok(Some(row)) if !prepared.row_payloads.is_empty() => {
                // Checked at the edge: one payload per row.
                match prepared.row_payloads.get(row) {
                    Some(p) => p.clone(),
                    None => return (Call::NoData, 0),
                }
            }
            Ok(_) => prepared.payload.clone(),
        };
        let bytes = payload.len() as u64;
        let timeout = self.ctx.plan.timeout;
        self.timeout.as_mut().reset(sent + timeout);
        if self.client.is_none() {
            // The target may have been re-resolved since the last connect.
            self.addr = self.ctx.addresses.pick(self.index);
        }
        let (ctx, endpoint, addr) = (&self.ctx, &self.endpoint, self.addr);
        let slot = &mut self.client;
        let recorder = &self.recorder;
        let attempt = async move {
            let client = match slot {
                Some(client) => client,
                None => match connect(ctx, endpoint, addr).await {
                    Ok((channel, timings)) => {
                        recorder.borrow_mut().phases.record_connect(&timings);
                        slot.insert(client(channel))
                    }
                    Err(class) => return Call::Failed(class),
                },
            };
            if client.ready().await.is_err() {
                *slot = None;
                return Call::Failed(FailureClass::Other);
            }
            let mut request = tonic::Request::new(payload);
            *request.metadata_mut() = prepared.metadata.clone();
            // The target learns the deadline (grpc-timeout) too.
            request.set_timeout(timeout);
            let ready = Instant::now();
            // A unary call read as a stream, so the response headers' arrival
            // (time to first byte) is seen apart from the message's end.
            let response = client
                .server_streaming(request, prepared.path.clone(), RawCodec)
                .await;
            let mut stream = match response {
                Ok(response) => response.into_inner(),
                Err(s) if status::is_transport(&s) => {
                    *slot = None;
                    return Call::Failed(FailureClass::Other);
                }
                // Trailers only: the status came with the headers.
                Err(s) => {
                    return Call::Status {
                        code: s.code(),
                        received: 0,
                        timed: Some((ready, Instant::now())),
                    };
                }
            };
            let first_byte = Instant::now();
            let (mut received, mut messages) = (0, 0u32);
            let code = loop {
                match stream.message().await {
                    Ok(Some(len)) => {
                        received += len;
                        messages += 1;
                    }
                    // As tonic's unary call: an OK without its message is
                    // an INTERNAL error.
                    Ok(None) if messages == 0 => break tonic::Code::Internal,
                    Ok(None) => break tonic::Code::Ok,
                    Err(s) if status::is_transport(&s) => {
                        *slot = None;
                        return Call::Failed(FailureClass::Other);
                    }
                    Err(s) => break s.code(),
                }
            };
            Call::Status {
                code,
                received,
                timed: Some((ready, first_byte)),
            }
        };
        let outcome = tokio::select! {
            biased;
            _ = self.waits.cancelled() => Call::Interrupted,
            outcome = attempt => outcome,
            _ = self.timeout.as_mut() => Call::Failed(FailureClass::Timeout),
            _ = self.hard_stop.as_mut() => Call::Interrupted,
        };
        if matches!(
            outcome,
            Call::Interrupted | Call::Failed(FailureClass::Timeout)
        ) {
            // The abandoned call's stream is reset; a fresh connection keeps
            // the next call from queueing behind a stuck one.
            self.client = None;
        }
        (outcome, bytes)
    }
}

/// Opens one HTTP/2 connection through the run's connector (plain h2c, or
/// TLS with the same rustls settings and failure class as HTTP targets),
/// handed to tonic as an established stream; gives the connect's timings.
async fn connect(
    ctx: &RunContext,
    endpoint: &Endpoint,
    addr: SocketAddr,
) -> Result<(Channel, ConnectTimings), FailureClass> {
    let (stream, timings) = ctx.connector.connect(addr).await.map_err(|e| match e {
        ConnectFailure::Tcp => FailureClass::Connect,
        ConnectFailure::Tls => FailureClass::Tls,
    })?;
    let channel = endpoint
        .connect_with_connector(Established(Some(stream)))
        .await
        .map_err(|_| FailureClass::Connect)?;
    Ok((channel, timings))
}

/// A connector that yields one stream already connected (and through its
/// TLS handshake). tonic asks again only to reconnect; the loop reconnects
/// itself instead, so a second ask is an error.
struct Established(Option<TargetStream>);

impl tonic::codegen::Service<Uri> for Established {
    type Response = hyper_util::rt::TokioIo<TargetStream>;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        std::future::ready(
            self.0
                .take()
                .map(hyper_util::rt::TokioIo::new)
                .ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::NotConnected,
                        "the connection is gone; the call loop reconnects",
                    )
                }),
        )
    }
}

/// The channel's settings: the scenario's host as `:authority`. The stream
/// itself comes from the run's connector, dialling the resolved,
/// allowlist-checked address (the URI's own address is only a label).
fn endpoint(addr: SocketAddr, origin: &Uri) -> Endpoint {
    let uri = Uri::builder()
        .scheme("http")
        .authority(addr.to_string())
        .path_and_query("/")
        .build()
        .unwrap_or_else(|_| origin.clone());
    Endpoint::from(uri).origin(origin.clone()).tcp_nodelay(true)
}

/// The generic client on a connection. Responses are only measured, so no
/// size limit: a large model output is a success, not RESOURCE_EXHAUSTED.
fn client(channel: Channel) -> Grpc<Channel> {
    Grpc::new(channel).max_decoding_message_size(usize::MAX)
}
