//! The load engine: worker threads that send requests and time them, and the
//! aggregator that adds the workers' interval recorders into the agent's.
//!
//! ```text
//!  worker thread 0 ─┐  WorkerInterval (per interval)
//!  worker thread 1 ─┼──────────────────────────────► aggregate ──► IntervalRecord ──► session
//!  worker thread n ─┘
//! ```

mod aggregate;
mod cancel;
mod chunked;
mod connection;
mod grpc;
pub mod http1;
mod http2;
mod lazy_stream;
mod pacer;
mod reactor;
mod request_set;
mod target_tls;
#[cfg(test)]
mod test_util;
mod timing;
mod transport;
mod worker;

use crate::plan::{LoadPlan, Protocol};
use crate::recorder::{IntervalRecorder, OutcomeCounts};
use crate::resolver::{self, AddressBook, ResolvedTarget};
use aggregate::Aggregator;
use connection::RunContext;
pub use http2::H2RequestError;
use http2::H2Requests;
use request_set::RequestSet;
pub use request_set::RequestSetError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
pub use target_tls::TargetTlsError;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use transport::Connector;
use worker::{ExtraConnections, WorkerSpec, run_worker};

/// How the engine uses this machine.
#[derive(Debug, Clone, Copy)]
pub struct EngineOptions {
    /// Worker threads (each with its own single-threaded runtime).
    pub threads: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// The agent's figures for one interval, all workers added together.
#[derive(Debug, Clone)]
pub struct IntervalRecord {
    pub index: u32,
    /// Offsets from the run's start.
    pub start: Duration,
    pub end: Duration,
    pub data: IntervalRecorder,
    /// The agent's final interval of the run.
    pub last: bool,
}

/// What the run added up to on this agent.
#[derive(Debug, Clone, Copy, Default)]
pub struct EngineSummary {
    pub intervals: u32,
    pub outcomes: OutcomeCounts,
}

/// More load for a run under way: another agent's share, taken over from
/// the start of a later interval (its profile is 0 until then). Its
/// connections join the workers' own and record into the same intervals.
#[derive(Debug)]
pub struct Reinforcement {
    pub plan: LoadPlan,
    pub target: ResolvedTarget,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the target address list is empty")]
    NoAddress,
    #[error("cannot prepare the requests: {0}")]
    Request(#[from] RequestSetError),
    #[error("cannot prepare the requests for HTTP/2: {0}")]
    Http2Request(#[from] H2RequestError),
    #[error(transparent)]
    Tls(#[from] TargetTlsError),
    #[error("cannot prepare the gRPC call: {0}")]
    Grpc(#[from] grpc::GrpcCallError),
    #[error("cannot start worker thread: {0}")]
    Thread(std::io::Error),
    #[error("a worker thread failed: {0}")]
    Worker(String),
}

/// Runs `plan` from `start` until done (or `cancel`), sending each interval's
/// record to `out` as soon as every worker has closed it.
pub async fn run(
    plan: LoadPlan,
    addrs: Vec<SocketAddr>,
    options: EngineOptions,
    start: Instant,
    cancel: CancellationToken,
    out: mpsc::Sender<IntervalRecord>,
) -> Result<EngineSummary, EngineError> {
    let (_none, reinforcements) = mpsc::unbounded_channel();
    let run = Reinforcement {
        plan,
        target: addrs.into(),
    };
    run_reinforced(run, Vec::new(), options, start, cancel, out, reinforcements).await
}

/// [`run`] for an agent whose load is several plans side by side (one per
/// endpoint: `first` and `more`), taking on [`Reinforcement`]s while it
/// goes. Every plan shares the first one's clock and intervals.
pub async fn run_reinforced(
    first: Reinforcement,
    more: Vec<Reinforcement>,
    options: EngineOptions,
    start: Instant,
    cancel: CancellationToken,
    out: mpsc::Sender<IntervalRecord>,
    mut reinforcements: mpsc::UnboundedReceiver<Reinforcement>,
) -> Result<EngineSummary, EngineError> {
    let Reinforcement { plan, target } = first;
    // The recorder keeps figures for every plan's requests.
    let request_slots = std::iter::once(&plan)
        .chain(more.iter().map(|r| &r.plan))
        .map(|p| offset_of(p) + p.requests.len())
        .max()
        .unwrap_or(0);
    let connections = plan.model.connections().max(1);
    let threads = options.threads.clamp(1, connections as usize);
    let interval = plan.interval;
    // DNS lookups (the first, then refreshes) land in the next interval out.
    let (lookups, mut lookup_rx) = mpsc::unbounded_channel();
    // Refresh tasks end with the run, however it ends.
    let refresh_stop = cancel.child_token();
    let _stop_refreshing = refresh_stop.clone().drop_guard();
    let dns = Dns {
        lookups: &lookups,
        stop: &refresh_stop,
    };
    let ctx = Arc::new(context(plan, target, start, request_slots, &dns)?);

    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut handles = Vec::with_capacity(threads);
    let mut extra_tx = Vec::with_capacity(threads);
    for (id, range) in split_range(connections, threads).into_iter().enumerate() {
        let (to_worker, extra) = mpsc::unbounded_channel();
        extra_tx.push(to_worker);
        let spec = WorkerSpec {
            id,
            connections: range,
            extra,
        };
        let (ctx, cancel, tx) = (ctx.clone(), cancel.clone(), tx.clone());
        let handle = std::thread::Builder::new()
            .name(format!("stampede-worker-{id}"))
            .spawn(move || run_worker(spec, ctx, cancel, tx))
            .map_err(EngineError::Thread)?;
        handles.push(handle);
    }
    drop(tx);

    for r in more {
        reinforce(&ctx, r, &extra_tx, &dns);
    }
    let mut aggregator = Aggregator::new(threads);
    let mut summary = EngineSummary::default();
    let mut reinforcing = true;
    let mut pending_lookups = Vec::new();
    loop {
        let piece = tokio::select! {
            piece = rx.recv() => piece,
            r = reinforcements.recv(), if reinforcing => {
                match r {
                    Some(r) => reinforce(&ctx, r, &extra_tx, &dns),
                    None => reinforcing = false,
                }
                continue;
            }
            Some(took) = lookup_rx.recv() => {
                pending_lookups.push(took);
                continue;
            }
        };
        let Some(piece) = piece else { break };
        for (index, mut data, last, closed_at) in aggregator.add(piece) {
            for took in pending_lookups.drain(..) {
                data.phases.record_dns(took);
            }
            summary.intervals += 1;
            summary.outcomes.add(&data.outcomes);
            let record = IntervalRecord {
                index,
                start: interval * index,
                end: if last {
                    closed_at.saturating_duration_since(start)
                } else {
                    interval * (index + 1)
                },
                data,
                last,
            };
            // The session may have gone; the run still finishes cleanly.
            let _ = out.send(record).await;
        }
    }
    for handle in handles {
        match tokio::task::spawn_blocking(move || handle.join()).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => return Err(EngineError::Worker(e.to_string())),
            Ok(Err(_)) | Err(_) => {
                return Err(EngineError::Worker("worker thread panicked".into()));
            }
        }
    }
    Ok(summary)
}

/// Where a run's DNS lookups go, and when its refresh tasks stop.
struct Dns<'a> {
    lookups: &'a mpsc::UnboundedSender<Duration>,
    stop: &'a CancellationToken,
}

/// What every connection of one plan shares: its prepared requests, the
/// target's addresses, TLS and protocol. Starts the plan's DNS refresh.
fn context(
    plan: LoadPlan,
    target: ResolvedTarget,
    start: Instant,
    request_slots: usize,
    dns: &Dns<'_>,
) -> Result<RunContext, EngineError> {
    let (addresses, updater) = AddressBook::new(target.addrs).ok_or(EngineError::NoAddress)?;
    if let Some((took, resolver)) = target.resolved {
        let _ = dns.lookups.send(took);
        if let Some(every) = plan.transport.dns_refresh {
            resolver::spawn_refresh(
                resolver,
                every,
                updater,
                dns.lookups.clone(),
                dns.stop.clone(),
            );
        }
    }
    let requests = RequestSet::new(&plan)?;
    let url = &plan.requests[0].url;
    // gRPC is HTTP/2: over TLS it needs h2 by ALPN whatever `protocol` says.
    let protocol = if plan.grpc.is_some() {
        Protocol::Http2
    } else {
        plan.transport.protocol
    };
    let tls = match &plan.transport.tls {
        Some(tls) => {
            let host = url.host_str().unwrap_or_default();
            let host = host.trim_start_matches('[').trim_end_matches(']');
            Some(target_tls::setup(tls, host, protocol)?)
        }
        None => None,
    };
    let h2 = match plan.transport.protocol {
        Protocol::Http2 => Some(H2Requests::new(&requests, url)?),
        Protocol::Http1 => None,
    };
    let connector = Connector::new(protocol, tls);
    let grpc = match &plan.grpc {
        Some(spec) => Some(Arc::new(grpc::PreparedCall::new(spec, url)?)),
        None => None,
    };
    Ok(RunContext {
        seed: uuid::Uuid::new_v4().as_u64_pair().0,
        request_offset: offset_of(&plan),
        request_slots,
        plan,
        requests,
        addresses,
        start,
        connector,
        h2,
        grpc,
    })
}

/// Deals a plan's connections to the workers, beside the run's own. One
/// whose requests do not fit the run's recorders is refused: they are laid
/// out when the run starts.
fn reinforce(
    run: &RunContext,
    r: Reinforcement,
    workers: &[mpsc::UnboundedSender<ExtraConnections>],
    dns: &Dns<'_>,
) {
    let request_offset = offset_of(&r.plan);
    if request_offset + r.plan.requests.len() > run.request_slots
        || r.plan.llm.is_some() != run.plan.llm.is_some()
    {
        tracing::warn!("a plan whose requests do not fit the run's recorders; refused");
        return;
    }
    let connections = r.plan.model.connections();
    let ctx = match context(r.plan, r.target, run.start, run.request_slots, dns) {
        Ok(ctx) => Arc::new(ctx),
        Err(e) => {
            tracing::warn!(error = %e, "cannot prepare a reinforcement; refused");
            return;
        }
    };
    for (worker, range) in workers.iter().zip(split_range(connections, workers.len())) {
        if !range.is_empty() {
            // A worker that has finished has nothing left to reinforce.
            let _ = worker.send(ExtraConnections {
                ctx: ctx.clone(),
                connections: range,
            });
        }
    }
}

/// Where a plan's requests record (its endpoint leg's offset, else 0).
fn offset_of(plan: &LoadPlan) -> usize {
    plan.leg.as_ref().map_or(0, |l| l.request_offset as usize)
}

/// Splits `0..n` into `parts` contiguous ranges whose sizes differ by at most one.
fn split_range(n: u32, parts: usize) -> Vec<std::ops::Range<u32>> {
    let parts = parts.max(1) as u32;
    let (base, extra) = (n / parts, n % parts);
    let mut start = 0;
    (0..parts)
        .map(|i| {
            let len = base + u32::from(i < extra);
            let range = start..start + len;
            start += len;
            range
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::plan::{RequestTemplate, Transport};
    use crate::resolver::Resolver;
    use stampede_target::{TargetConfig, TargetServer, TargetStats};

    /// A built-in target on loopback; it stops with `stop`.
    async fn target(stop: &CancellationToken) -> (SocketAddr, TargetStats) {
        let server = TargetServer::bind(TargetConfig::default())
            .await
            .expect("bind");
        let (addr, stats) = (server.local_addr(), server.stats());
        tokio::spawn(server.run(stop.clone()));
        (addr, stats)
    }

    /// The target's name re-resolves to another address mid-run: new
    /// connections follow it, the intervals say which address each
    /// connection went to, and every lookup is in the DNS phase.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn new_connections_follow_the_refreshed_addresses() {
        let stop = CancellationToken::new();
        let (a, a_stats) = target(&stop).await;
        let (b, b_stats) = target(&stop).await;
        let resolver = Resolver::scripted("target.test", vec![vec![a], vec![b]]);
        let target_addrs = ResolvedTarget::resolve(resolver).await.expect("resolves");
        assert_eq!(target_addrs.addrs, vec![a]);
        let plan = LoadPlan {
            duration: Duration::from_millis(2_500),
            interval: Duration::from_millis(500),
            think_time: Some((Duration::from_millis(5), Duration::from_millis(5))),
            transport: Transport {
                // Every request opens a connection: each one picks the
                // address anew.
                new_connection_per_request: true,
                dns_refresh: Some(Duration::from_secs(1)),
                ..Transport::default()
            },
            ..LoadPlan::for_tests(vec![RequestTemplate::new(
                "GET",
                url::Url::parse("http://target.test/").expect("url"),
            )])
        };
        let (out, mut records) = mpsc::channel(64);
        let (_more, reinforcements) = mpsc::unbounded_channel();
        let run = tokio::spawn(run_reinforced(
            Reinforcement {
                plan,
                target: target_addrs,
            },
            Vec::new(),
            EngineOptions { threads: 1 },
            Instant::now() + Duration::from_millis(50),
            CancellationToken::new(),
            out,
            reinforcements,
        ));
        let mut intervals = Vec::new();
        while let Some(record) = records.recv().await {
            intervals.push(record);
        }
        run.await.expect("joins").expect("runs");
        stop.cancel();

        let used = |r: &IntervalRecord, addr: SocketAddr| {
            r.data
                .phases
                .addresses
                .iter()
                .find(|(x, _)| *x == addr)
                .map_or(0, |(_, n)| *n)
        };
        let first = intervals.first().expect("an interval");
        let last = intervals.last().expect("an interval");
        assert!(
            used(first, a) > 0 && used(first, b) == 0,
            "{:?}",
            first.data.phases.addresses
        );
        assert!(
            used(last, b) > 0 && used(last, a) == 0,
            "{:?}",
            last.data.phases.addresses
        );
        let connections: u64 = intervals
            .iter()
            .map(|r| r.data.phases.new_connections)
            .sum();
        let requests: u64 = intervals.iter().map(|r| r.data.outcomes.completed()).sum();
        assert_eq!(connections, requests, "a connection per request");
        assert_eq!(a_stats.served() + b_stats.served(), requests);
        assert_eq!(
            a_stats.connections_accepted() + b_stats.connections_accepted(),
            connections
        );
        // The first lookup, then one a second over a 2.5 s run.
        let lookups: u64 = intervals.iter().map(|r| r.data.phases.dns.len()).sum();
        assert!((2..=4).contains(&lookups), "{lookups} lookups");
    }

    /// An open-model run over `connections` plain HTTP/1.1 connections
    /// to `addr` at `rate` req/s: its intervals added together.
    async fn open_run(
        addr: SocketAddr,
        rate: f64,
        connections: u32,
        duration: Duration,
        timeout: Duration,
    ) -> IntervalRecorder {
        let url = url::Url::parse(&format!("http://{addr}/")).expect("url");
        let plan = LoadPlan {
            model: crate::plan::WorkloadModel::Open {
                rate: crate::profile::LevelProfile::constant(rate, duration).expect("profile"),
                connections,
                arrival: crate::plan::Arrival::Constant,
            },
            duration,
            interval: duration,
            timeout,
            ..LoadPlan::for_tests(vec![RequestTemplate::new("GET", url)])
        };
        let (out, mut records) = mpsc::channel(64);
        let run = tokio::spawn(run(
            plan,
            vec![addr],
            EngineOptions { threads: 1 },
            Instant::now() + Duration::from_millis(50),
            CancellationToken::new(),
            out,
        ));
        let mut total = IntervalRecorder::new();
        while let Some(record) = records.recv().await {
            total.merge(&record.data);
        }
        run.await.expect("joins").expect("runs");
        total
    }

    /// Four requests 250 ms apart: after each send the pacer has nothing
    /// due for a long while (the reactor parks), and after the last one it
    /// is idle for good. Every response must still be read, not left for a
    /// tick that never comes (it would be interrupted at the hard stop).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn responses_are_read_while_the_pacer_is_idle() {
        let stop = CancellationToken::new();
        let (addr, stats) = target(&stop).await;
        let total = open_run(addr, 4.0, 1, Duration::from_secs(1), Duration::from_secs(3)).await;
        stop.cancel();
        assert_eq!(total.outcomes.success, 4, "{:?}", total.outcomes);
        assert_eq!(total.outcomes.interrupted, 0);
        assert_eq!(stats.served(), 4);
    }

    /// At a rate where the pacer ticks all the time, responses are read
    /// only at ticks: every one of them is read and counted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn responses_are_read_at_pacer_ticks() {
        let stop = CancellationToken::new();
        let (addr, stats) = target(&stop).await;
        let total = open_run(
            addr,
            4_000.0,
            8,
            Duration::from_millis(500),
            Duration::from_secs(3),
        )
        .await;
        stop.cancel();
        let outcomes = total.outcomes;
        assert_eq!(outcomes.success, 2_000, "{outcomes:?}");
        assert_eq!(outcomes.completed(), stats.served());
        assert_eq!(outcomes.interrupted, 0);
        assert_eq!(total.latency.len(), 2_000);
    }

    /// A target that takes requests and never answers: each request of a
    /// connection read at pacer ticks times out, after its timeout.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_read_at_pacer_ticks_time_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let timeout = Duration::from_millis(100);
        let total = open_run(addr, 4.0, 1, Duration::from_secs(1), timeout).await;
        silent.abort();
        let outcomes = total.outcomes;
        assert_eq!(outcomes.timeout, 4, "{outcomes:?}");
        assert_eq!(outcomes.completed(), 4);
        assert!(total.errors.min() >= timeout.as_micros() as u64);
    }

    #[test]
    fn splits_connections_evenly() {
        assert_eq!(split_range(10, 3), vec![0..4, 4..7, 7..10]);
        assert_eq!(split_range(2, 2), vec![0..1, 1..2]);
    }
}
