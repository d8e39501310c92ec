//! The agent's side of the session with its coordinator: dial, register,
//! take an assignment, start on the common start time, stream interval
//! reports, and reconnect with capped back-off when the link goes.
//!
//! One task owns the session state; the engine runs in its own task and hands
//! interval records over a channel.

mod heartbeat;

use crate::allowlist::TargetAllowlist;
use crate::engine::{self, EngineError, EngineOptions, EngineSummary, IntervalRecord};
use crate::plan::LoadPlan;
use crate::resolver::{ResolvedTarget, Resolver};
use crate::tls::ClientTls;
use crate::wire;
use heartbeat::Heartbeat;
use stampede_proto::histogram::Encoding;
use stampede_proto::security::{SharedToken, TOKEN_METADATA_KEY};
use stampede_proto::v1::{
    self, agent_message, agent_session_client::AgentSessionClient, coordinator_message,
};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// Largest message accepted from the coordinator.
const MAX_ASSIGNMENT_BYTES: usize = 64 << 20;

/// How an agent joins and behaves. Built by the CLI (or a test).
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The coordinator's gRPC URL, e.g. `http://10.0.0.5:7700`.
    pub coordinator: String,
    pub region: String,
    pub zone: String,
    pub agent_id: uuid::Uuid,
    pub engine: EngineOptions,
    pub histogram_encoding: Encoding,
    /// Exit after one run instead of waiting for the next.
    pub once: bool,
    pub heartbeat_every: Duration,
    /// Longest wait between reconnect attempts.
    pub max_backoff: Duration,
    /// A link gone dark (no RST, no FIN) ends the session, and stops the
    /// load, at most this long after it went: a keep-alive ping goes out
    /// after half of it without hearing from the coordinator, and is given
    /// the other half to be answered.
    pub link_timeout: Duration,
    /// Added to this agent's wall clock, nanoseconds: tests simulate a host
    /// whose clock is off (the coordinator's clock exchange must absorb it).
    pub clock_skew_nanos: i64,
    /// TLS (and mTLS) to the coordinator; `None` is plain text.
    pub tls: Option<ClientTls>,
    /// The shared token sent with the session, if the coordinator wants one.
    pub token: Option<SharedToken>,
    /// Targets this agent accepts in an assignment.
    pub allowlist: TargetAllowlist,
}

impl AgentConfig {
    pub fn new(coordinator: impl Into<String>, region: impl Into<String>) -> Self {
        Self {
            coordinator: coordinator.into(),
            region: region.into(),
            zone: String::new(),
            agent_id: uuid::Uuid::new_v4(),
            engine: EngineOptions::default(),
            histogram_encoding: Encoding::default(),
            once: false,
            heartbeat_every: Duration::from_secs(2),
            max_backoff: Duration::from_secs(10),
            link_timeout: Duration::from_secs(4),
            clock_skew_nanos: 0,
            tls: None,
            token: None,
            // In-process runs (demo, bench, tests) choose their own targets;
            // the `stampede agent` command requires an explicit choice.
            allowlist: TargetAllowlist::Any,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("cannot reach coordinator {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("coordinator {0} is not a valid URL")]
    BadUrl(String),
    #[error(
        "coordinator URL {url} does not match the transport: use https:// with TLS (--tls-ca) and http:// only with --insecure-plaintext"
    )]
    SchemeMismatch { url: String },
    #[error("cannot set up the connection to the coordinator: {0}")]
    Setup(String),
    #[error("coordinator refused this agent's token: {0}")]
    Unauthenticated(String),
    #[error("TLS handshake with coordinator {url} failed (check the certificates): {reason}")]
    TlsRejected { url: String, reason: String },
    #[error("session stream failed: {}", describe_status(.0))]
    Stream(#[from] tonic::Status),
    #[error("coordinator refused this agent: {0}")]
    Refused(String),
    #[error("coordinator closed the session")]
    Closed,
}

/// How a session ended without error.
enum SessionEnd {
    /// The run finished and this agent was started for one run.
    Done,
    /// Shut down from outside.
    Cancelled,
}

/// Runs the agent until `cancel` fires (or, with `once`, until one run ends).
/// Connection failures are retried with capped exponential back-off; a
/// refusal by the coordinator is final (it would refuse again). A refused
/// token or certificate is final with `once` (a Job should fail, not hang)
/// and retried otherwise (certificates and tokens get rotated).
pub async fn run_agent(config: AgentConfig, cancel: CancellationToken) -> Result<(), SessionError> {
    check_scheme(&config)?;
    let mut backoff = Duration::from_millis(100);
    // Sessions that a TLS coordinator closed before this agent registered:
    // under TLS 1.3 a rejected client certificate can surface as a bare
    // reset rather than the server's alert, so a run of them is a rejection.
    let mut closed_unregistered = 0;
    loop {
        let mut registered = false;
        let result = session(&config, &cancel, &mut registered).await;
        match &result {
            Err(SessionError::Stream(_) | SessionError::Closed)
                if config.tls.is_some() && !registered =>
            {
                closed_unregistered += 1
            }
            _ => closed_unregistered = 0,
        }
        if config.once && closed_unregistered >= MAX_CLOSED_UNREGISTERED {
            let last = result.err().map(|e| e.to_string()).unwrap_or_default();
            return Err(SessionError::TlsRejected {
                url: config.coordinator.clone(),
                reason: format!(
                    "the coordinator closed the session before this agent could register, \
                     {closed_unregistered} times in a row (last: {last}); is this agent's certificate \
                     signed by a CA the coordinator trusts?"
                ),
            });
        }
        match result {
            Ok(SessionEnd::Done | SessionEnd::Cancelled) => return Ok(()),
            Err(
                e @ (SessionError::Refused(_)
                | SessionError::BadUrl(_)
                | SessionError::SchemeMismatch { .. }
                | SessionError::Setup(_)),
            ) => return Err(e),
            Err(e @ (SessionError::Unauthenticated(_) | SessionError::TlsRejected { .. }))
                if config.once =>
            {
                return Err(e);
            }
            Err(e @ (SessionError::Unauthenticated(_) | SessionError::TlsRejected { .. })) => {
                error!(error = %e, retry_in = ?backoff, "coordinator did not accept this agent")
            }
            Err(e) => warn!(error = %e, retry_in = ?backoff, "session with coordinator lost"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(config.max_backoff);
    }
}

/// With `--once`: how many sessions in a row a TLS coordinator may close
/// before registration before the agent gives up.
const MAX_CLOSED_UNREGISTERED: u32 = 3;

/// What the agent is doing in its current session.
enum State {
    Idle,
    Assigned {
        run_id: String,
        /// The first plan, and one more per further endpoint.
        first: Box<engine::Reinforcement>,
        more: Vec<engine::Reinforcement>,
    },
    Running(Run),
}

struct Run {
    run_id: String,
    start_unix_nanos: i64,
    /// Process CPU time at the previous report (generator health).
    cpu_at_last_report: Duration,
    stop: CancellationToken,
    records: mpsc::Receiver<IntervalRecord>,
    engine: JoinHandle<Result<EngineSummary, EngineError>>,
    /// Load taken over from a lost agent goes to the engine here.
    reinforce: mpsc::UnboundedSender<engine::Reinforcement>,
    intervals_sent: u32,
}

/// TLS only happens on https:// URLs; refuse a mismatch instead of quietly
/// sending the session in plain text.
fn check_scheme(config: &AgentConfig) -> Result<(), SessionError> {
    let url = url::Url::parse(&config.coordinator)
        .map_err(|_| SessionError::BadUrl(config.coordinator.clone()))?;
    let expected = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    if url.scheme() != expected {
        return Err(SessionError::SchemeMismatch {
            url: config.coordinator.clone(),
        });
    }
    Ok(())
}

/// Adds the shared token to every request of the session.
#[derive(Clone)]
struct Authorization(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Authorization {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert(TOKEN_METADATA_KEY, value.clone());
        }
        Ok(request)
    }
}

/// An error with its causes, `a: b: c`, so that a TLS failure deep inside
/// the transport reaches the log.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Whether a transport error is a TLS rejection: the coordinator refused our
/// certificate (a fatal alert) or we refused its certificate. Those are
/// configuration errors, unlike a coordinator that is not up yet.
fn is_tls_rejection(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return matches!(
                tls,
                rustls::Error::AlertReceived(_)
                    | rustls::Error::InvalidCertificate(_)
                    | rustls::Error::NoCertificatesPresented
            );
        }
        // io::Error's source() skips the error it wraps; look inside.
        next = match e.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    // h2 reports an I/O error on an established connection (where a TLS 1.3
    // server's alert arrives) by its text only, so the chain above never
    // reaches the rustls error: recognise rustls's own words for it.
    let text = describe(error);
    text.contains("received fatal alert") || text.contains("invalid peer certificate")
}

fn describe_status(status: &tonic::Status) -> String {
    let mut text = format!("{:?}: {}", status.code(), status.message());
    if let Some(source) = std::error::Error::source(status) {
        text.push_str(": ");
        text.push_str(&describe(source));
    }
    text
}

/// One session; `registered` is set once the coordinator registered us.
async fn session(
    config: &AgentConfig,
    cancel: &CancellationToken,
    registered: &mut bool,
) -> Result<SessionEnd, SessionError> {
    let mut endpoint = tonic::transport::Endpoint::from_shared(config.coordinator.clone())
        .map_err(|_| SessionError::BadUrl(config.coordinator.clone()))?;
    if let Some(tls) = &config.tls {
        endpoint = endpoint
            .tls_config(tls.tonic_config())
            .map_err(|e| SessionError::Setup(describe(&e)))?;
    }
    let endpoint = endpoint
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        // HTTP/2 pings even while idle: a cut link (no RST, no FIN) is noticed
        // within `link_timeout` (a ping interval plus its answer's timeout),
        // and then the session ends and the load stops. An agent never runs
        // unattended. The coordinator sends an agent nothing mid-run, so
        // every interval brings a ping for it to answer: split evenly, the
        // worst case is what 1 s pings with a 3 s timeout gave, at half the
        // pings (a thousand agents' pings were a point of its core).
        .http2_keep_alive_interval(config.link_timeout / 2)
        .keep_alive_timeout(config.link_timeout / 2)
        .keep_alive_while_idle(true);
    let channel = endpoint.connect().await.map_err(|e| {
        let url = config.coordinator.clone();
        let reason = describe(&e);
        if is_tls_rejection(&e) {
            SessionError::TlsRejected { url, reason }
        } else {
            SessionError::Connect { url, reason }
        }
    })?;
    let authorization =
        match &config.token {
            Some(token) => Some(token.header_value().parse().map_err(|_| {
                SessionError::Setup("the token is not a valid header value".into())
            })?),
            None => None,
        };
    // An assignment carries this agent's rows of the scenario's data file
    // (at most 32 MiB in all); the default 4 MiB limit would refuse it.
    let mut client = AgentSessionClient::with_interceptor(channel, Authorization(authorization))
        .max_decoding_message_size(MAX_ASSIGNMENT_BYTES);
    let (tx, rx) = mpsc::channel::<v1::AgentMessage>(64);
    let agent_id = config.agent_id.to_string();
    let send = |kind| v1::AgentMessage { kind: Some(kind) };
    tx.send(send(agent_message::Kind::Register(v1::Register {
        agent_id: agent_id.clone(),
        region: config.region.clone(),
        zone: config.zone.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        cores: config.engine.threads as u32,
        hostname: hostname(),
    })))
    .await
    .map_err(|_| SessionError::Closed)?;
    let mut inbound = match client.join(ReceiverStream::new(rx)).await {
        Ok(response) => response.into_inner(),
        Err(status) if status.code() == tonic::Code::Unauthenticated => {
            return Err(SessionError::Unauthenticated(status.message().to_owned()));
        }
        Err(status) if is_tls_rejection(&status) => {
            return Err(SessionError::TlsRejected {
                url: config.coordinator.clone(),
                reason: describe_status(&status),
            });
        }
        Err(status) => return Err(SessionError::Stream(status)),
    };

    let mut state = State::Idle;
    let mut heartbeat = Heartbeat::new(config.heartbeat_every);
    let result = loop {
        let records = match &mut state {
            State::Running(run) => Some(&mut run.records),
            _ => None,
        };
        tokio::select! {
            _ = cancel.cancelled() => break Ok(SessionEnd::Cancelled),
            _ = heartbeat.due() => {
                let beat = v1::Heartbeat { sent_unix_nanos: wall_clock(config) };
                if tx.send(send(agent_message::Kind::Heartbeat(beat))).await.is_err() {
                    break Err(SessionError::Closed);
                }
            }
            record = recv_or_pending(records) => {
                let State::Running(run) = &mut state else { continue };
                match record {
                    Some(record) => {
                        match wire::interval_report(&run.run_id, &agent_id, run.start_unix_nanos, &record, config.histogram_encoding) {
                            Ok(mut report) => {
                                let cpu = process_cpu_time();
                                report.cpu_micros = cpu.saturating_sub(run.cpu_at_last_report).as_micros() as u64;
                                report.worker_threads = config.engine.threads as u32;
                                run.cpu_at_last_report = cpu;
                                run.intervals_sent += 1;
                                if tx.send(send(agent_message::Kind::IntervalReport(report))).await.is_err() {
                                    break Err(SessionError::Closed);
                                }
                                // A report is a sign of life too.
                                heartbeat.spoke();
                            }
                            Err(e) => warn!(error = %e, "cannot encode interval report"),
                        }
                    }
                    None => {
                        // The engine is done and every record is sent.
                        let State::Running(run) = std::mem::replace(&mut state, State::Idle) else { continue };
                        let error = match run.engine.await {
                            Ok(Ok(summary)) => {
                                info!(run_id = %run.run_id, requests = summary.outcomes.completed(), "load finished");
                                String::new()
                            }
                            Ok(Err(e)) => e.to_string(),
                            Err(e) => format!("engine task failed: {e}"),
                        };
                        let fin = v1::FinalReport { run_id: run.run_id, agent_id: agent_id.clone(), intervals_sent: run.intervals_sent, error };
                        if tx.send(send(agent_message::Kind::FinalReport(fin))).await.is_err() {
                            break Err(SessionError::Closed);
                        }
                    }
                }
            }
            message = inbound.message() => {
                let kind = match message {
                    Ok(Some(v1::CoordinatorMessage { kind: Some(kind) })) => kind,
                    Ok(Some(_)) => continue,
                    Ok(None) => break Err(SessionError::Closed),
                    Err(status) => break Err(SessionError::Stream(status)),
                };
                if matches!(kind, coordinator_message::Kind::Registered(_)) {
                    *registered = true;
                }
                match handle(kind, &mut state, config, &tx).await {
                    Ok(Flow::Continue) => {}
                    Ok(Flow::Finished) => break Ok(SessionEnd::Done),
                    Err(e) => break Err(e),
                }
            }
        }
    };
    // Leaving the session: a run in progress must not go on unattended.
    if let State::Running(run) = state {
        run.stop.cancel();
        let _ = run.engine.await;
    }
    result
}

enum Flow {
    Continue,
    Finished,
}

async fn handle(
    kind: coordinator_message::Kind,
    state: &mut State,
    config: &AgentConfig,
    tx: &mpsc::Sender<v1::AgentMessage>,
) -> Result<Flow, SessionError> {
    let send = |kind| v1::AgentMessage { kind: Some(kind) };
    match kind {
        coordinator_message::Kind::Registered(r) => {
            info!(coordinator_version = %r.coordinator_version, region = %config.region, "registered with coordinator");
        }
        coordinator_message::Kind::Refused(r) => return Err(SessionError::Refused(r.reason)),
        coordinator_message::Kind::Assignment(a) => {
            if matches!(state, State::Running(_)) {
                let reason = "a run is already in progress on this agent".to_owned();
                let msg = agent_message::Kind::AssignmentRejected(v1::AssignmentRejected {
                    run_id: a.run_id,
                    reason,
                });
                tx.send(send(msg)).await.map_err(|_| SessionError::Closed)?;
                return Ok(Flow::Continue);
            }
            let accepted = accept_all(a.slice, a.more_slices, &config.allowlist).await;
            let reply = match accepted {
                Ok((first, more)) => {
                    let plan = &first.plan;
                    info!(run_id = %a.run_id, model = ?plan.model, url = %plan.requests[0].url, requests = plan.requests.len(),
                        endpoints = 1 + more.len(), "assignment accepted");
                    *state = State::Assigned {
                        run_id: a.run_id.clone(),
                        first: Box::new(first),
                        more,
                    };
                    agent_message::Kind::AssignmentAccepted(v1::AssignmentAccepted {
                        run_id: a.run_id,
                    })
                }
                Err(reason) => {
                    warn!(run_id = %a.run_id, %reason, "assignment rejected");
                    agent_message::Kind::AssignmentRejected(v1::AssignmentRejected {
                        run_id: a.run_id,
                        reason,
                    })
                }
            };
            tx.send(send(reply))
                .await
                .map_err(|_| SessionError::Closed)?;
        }
        coordinator_message::Kind::Start(start) => {
            let State::Assigned { run_id, .. } = &*state else {
                warn!(run_id = %start.run_id, "start for a run this agent was not assigned; ignored");
                return Ok(Flow::Continue);
            };
            if *run_id != start.run_id {
                warn!(run_id = %start.run_id, "start for another run; ignored");
                return Ok(Flow::Continue);
            }
            let State::Assigned {
                run_id,
                first,
                more,
            } = std::mem::replace(state, State::Idle)
            else {
                return Ok(Flow::Continue);
            };
            let start_at = instant_of(start.start_unix_nanos, config);
            let stop = CancellationToken::new();
            let (records_tx, records) = mpsc::channel(16);
            let (reinforce, reinforcements) = mpsc::unbounded_channel();
            info!(%run_id, starts_in = ?start_at.saturating_duration_since(tokio::time::Instant::now()), "run starting");
            let engine = tokio::spawn(engine::run_reinforced(
                *first,
                more,
                config.engine,
                start_at,
                stop.clone(),
                records_tx,
                reinforcements,
            ));
            *state = State::Running(Run {
                run_id,
                start_unix_nanos: start.start_unix_nanos,
                cpu_at_last_report: process_cpu_time(),
                stop,
                records,
                engine,
                reinforce,
                intervals_sent: 0,
            });
        }
        coordinator_message::Kind::Reinforce(r) => {
            let State::Running(run) = &*state else {
                warn!(run_id = %r.run_id, "more load for a run that is not running here; ignored");
                return Ok(Flow::Continue);
            };
            if run.run_id != r.run_id {
                warn!(run_id = %r.run_id, "more load for another run; ignored");
                return Ok(Flow::Continue);
            }
            // The same checks as an assignment: the allowlist holds for
            // load taken over too.
            match accept(r.slice, &config.allowlist).await {
                Ok((plan, target)) => {
                    info!(run_id = %r.run_id, reason = %r.reason, connections = plan.model.connections(),
                        "taking over part of a lost agent's load");
                    let _ = run.reinforce.send(engine::Reinforcement { plan, target });
                }
                Err(reason) => {
                    warn!(run_id = %r.run_id, %reason, "more load refused")
                }
            }
        }
        coordinator_message::Kind::Stop(stop) => {
            if let State::Running(run) = state {
                if run.run_id == stop.run_id {
                    warn!(run_id = %run.run_id, reason = %stop.reason, "coordinator stopped the run");
                    run.stop.cancel();
                }
            } else {
                *state = State::Idle;
            }
        }
        coordinator_message::Kind::ClockProbe(probe) => {
            // Answer at once: the time spent here is part of the round trip.
            let received = wall_clock(config);
            let reply = v1::ClockReply {
                seq: probe.seq,
                probe_sent_unix_nanos: probe.sent_unix_nanos,
                received_unix_nanos: received,
                replied_unix_nanos: wall_clock(config),
            };
            tx.send(send(agent_message::Kind::ClockReply(reply)))
                .await
                .map_err(|_| SessionError::Closed)?;
        }
        coordinator_message::Kind::RunFinished(f) => {
            info!(run_id = %f.run_id, more_runs = f.more_runs, "run finished");
            if let State::Assigned { .. } = state {
                // Assigned but never started (the run's set-up failed).
                *state = State::Idle;
            }
            if config.once && !f.more_runs {
                return Ok(Flow::Finished);
            }
        }
    }
    Ok(Flow::Continue)
}

/// [`accept`] for an assignment's slices: the first, and one per further
/// endpoint. Any refused refuses the assignment.
async fn accept_all(
    first: Option<v1::LoadSlice>,
    more: Vec<v1::LoadSlice>,
    allowlist: &TargetAllowlist,
) -> Result<(engine::Reinforcement, Vec<engine::Reinforcement>), String> {
    let (plan, target) = accept(first, allowlist).await?;
    let mut rest = Vec::with_capacity(more.len());
    for (i, slice) in more.into_iter().enumerate() {
        let (plan, target) = accept(Some(slice), allowlist)
            .await
            .map_err(|e| format!("slice {}: {e}", i + 2))?;
        rest.push(engine::Reinforcement { plan, target });
    }
    Ok((engine::Reinforcement { plan, target }, rest))
}

/// Checks an assignment and resolves its target (here, so that the request
/// loop never waits on DNS; the engine refreshes it), then checks the target
/// against the allowlist: the addresses checked are the ones the engine will
/// dial.
async fn accept(
    slice: Option<v1::LoadSlice>,
    allowlist: &TargetAllowlist,
) -> Result<(LoadPlan, ResolvedTarget), String> {
    let slice = slice.ok_or("assignment has no slice")?;
    let plan = wire::plan_from_slice(slice).map_err(|e| e.to_string())?;
    // Every request of a mix goes to the same host and port (checked).
    let url = &plan.requests[0].url;
    let host = url.host_str().ok_or("target URL has no host")?;
    let port = url
        .port_or_known_default()
        .ok_or("target URL has no port")?;
    let resolver =
        Resolver::new(host, port, allowlist.clone()).with_policy(plan.transport.dns_policy);
    let target = ResolvedTarget::resolve(resolver).await?;
    Ok((plan, target))
}

async fn recv_or_pending(
    records: Option<&mut mpsc::Receiver<IntervalRecord>>,
) -> Option<IntervalRecord> {
    match records {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn unix_nanos(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

/// The monotonic instant at which the wall clock reads `unix_nanos`.
/// CPU time (user + system) this process has used so far: an agent that
/// uses all its cores is measuring itself, not the target.
fn process_cpu_time() -> Duration {
    use nix::sys::resource::{UsageWho, getrusage};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(usage) => {
            let tv = |t: nix::sys::time::TimeVal| {
                Duration::from_secs(t.tv_sec().max(0) as u64)
                    + Duration::from_micros(t.tv_usec().max(0) as u64)
            };
            tv(usage.user_time()) + tv(usage.system_time())
        }
        Err(_) => Duration::ZERO,
    }
}

/// This agent's wall clock, unix nanoseconds (with any simulated skew).
fn wall_clock(config: &AgentConfig) -> i64 {
    unix_nanos(SystemTime::now()).saturating_add(config.clock_skew_nanos)
}

/// The monotonic instant at which this agent's wall clock reads `unix_nanos_at`.
fn instant_of(unix_nanos_at: i64, config: &AgentConfig) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    let delta = unix_nanos_at.saturating_sub(wall_clock(config));
    if delta >= 0 {
        now + Duration::from_nanos(delta as u64)
    } else {
        now.checked_sub(Duration::from_nanos(delta.unsigned_abs()))
            .unwrap_or(now)
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}
