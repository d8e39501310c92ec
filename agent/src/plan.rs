//! What this agent was asked to do, in the engine's own terms (converted from
//! the wire's `LoadSlice` in [`crate::wire`]).

use crate::profile::LevelProfile;
pub use crate::resolver::DnsPolicy;
use std::time::Duration;

/// One request of the scenario, as given. `target`, the header values and
/// the body may hold `{{column}}` placeholders, filled from a data row.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestTemplate {
    /// Names the request's results (`default` when the scenario has one).
    pub name: String,
    /// Relative share of the requests (weighted mix).
    pub weight: f64,
    pub method: String,
    /// Scheme, host and port: where connections go. All requests of a run
    /// share them (the connections are shared).
    pub url: url::Url,
    /// The request target as written: path and query, possibly templated.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// This request's own timeout, instead of the run's.
    pub timeout: Option<Duration>,
}

impl RequestTemplate {
    /// A request for `url` (its path and query as the target).
    pub fn new(method: &str, mut url: url::Url) -> Self {
        let mut target = url.path().to_owned();
        if let Some(query) = url.query() {
            target.push('?');
            target.push_str(query);
        }
        url.set_path("/");
        url.set_query(None);
        url.set_fragment(None);
        Self {
            name: "default".into(),
            weight: 1.0,
            method: method.into(),
            url,
            target,
            headers: Vec::new(),
            body: Vec::new(),
            timeout: None,
        }
    }
}

/// Model-serving measurements and the goodput SLO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LlmSpec {
    pub goodput: crate::llm::GoodputSlo,
}

/// gRPC mode: every send is this unary call, over HTTP/2 (h2c) to the
/// first request's scheme, host and port.
#[derive(Debug, Clone, PartialEq)]
pub struct GrpcSpec {
    /// Full method path, `/package.Service/Method`.
    pub path: String,
    /// The request message, protobuf-encoded once by the coordinator.
    pub payload: bytes::Bytes,
    /// With data rows: the message made from each row, in row order (a
    /// send uses its row's instead of `payload`).
    pub row_payloads: Vec<bytes::Bytes>,
    /// Request metadata: lower-case ASCII names, visible ASCII values.
    pub metadata: Vec<(String, String)>,
}

/// Rows that fill the requests' placeholders (a CSV or JSONL file's, or
/// this agent's part of it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DataSet {
    pub columns: Vec<String>,
    /// Each row has one value per column.
    pub rows: Vec<Vec<String>>,
    pub order: DataOrder,
}

/// Which row a request takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DataOrder {
    /// In order, wrapping around at the end.
    #[default]
    Sequential,
    /// A uniformly random row each time.
    Random,
    /// Each row once; a connection that runs out sends nothing more.
    Once,
}

/// How load is generated.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkloadModel {
    /// `connections` loops, each sending as soon as its previous response
    /// arrived. Latency is measured from the actual send.
    Closed {
        connections: u32,
        /// When the cluster's concurrency changes over time: which
        /// connections are busy when. `None`: all of them, all the time.
        stages: Option<ClosedStages>,
    },
    /// Requests are due at a rate that follows `rate` (requests per second
    /// over time), whatever the target does, spread over `connections`.
    /// Latency is measured from each request's intended send time
    /// (coordinated omission corrected).
    Open {
        rate: LevelProfile,
        connections: u32,
        arrival: Arrival,
    },
}

/// A closed-model run whose concurrency follows stages. The cluster's
/// connections are numbered slots `0..peak`; slot `j` is busy while the
/// cluster's concurrency exceeds `j`, so the busy slots of all agents add up
/// to the concurrency at every moment.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedStages {
    /// The cluster's concurrency over time.
    pub concurrency: LevelProfile,
    /// This agent's slots, one per connection.
    pub slots: Vec<u32>,
}

/// How open-model arrivals are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Arrival {
    /// Evenly spaced at the rate.
    #[default]
    Constant,
    /// A Poisson process (exponential gaps) at the rate, from this seed.
    Poisson { seed: u64 },
}

impl WorkloadModel {
    pub fn connections(&self) -> u32 {
        match *self {
            WorkloadModel::Closed { connections, .. } | WorkloadModel::Open { connections, .. } => {
                connections
            }
        }
    }

    /// Open model: the mean rate over the run, requests per second.
    pub fn mean_rate(&self) -> Option<f64> {
        match self {
            WorkloadModel::Open { rate, .. } => {
                Some(rate.area() / rate.duration().as_secs_f64().max(f64::MIN_POSITIVE))
            }
            WorkloadModel::Closed { .. } => None,
        }
    }
}

/// The HTTP version spoken to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Http1,
    /// HTTP/2: negotiated by ALPN over TLS, prior knowledge (h2c) over plain TCP.
    Http2,
}

/// How connections to the target are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transport {
    pub protocol: Protocol,
    /// Concurrent requests per connection (HTTP/2 streams; 1 for HTTP/1.1).
    /// A connection runs this many request loops ("slots"), so an agent has
    /// `connections × streams` slots in all.
    pub streams: u32,
    /// TLS settings; `Some` exactly when the target URL is `https`.
    pub tls: Option<TargetTls>,
    /// A new connection for every request (HTTP/1.1 `Connection: close`):
    /// measures the cold path, handshakes included.
    pub new_connection_per_request: bool,
    /// Re-resolve the target's name this often; `None`: once, at the start.
    pub dns_refresh: Option<Duration>,
    /// Which of the name's addresses connections may use.
    pub dns_policy: DnsPolicy,
}

impl Default for Transport {
    /// HTTP/1.1, one request at a time per connection, no TLS, keep-alive,
    /// the name resolved once.
    fn default() -> Self {
        Self {
            protocol: Protocol::Http1,
            streams: 1,
            tls: None,
            new_connection_per_request: false,
            dns_refresh: None,
            dns_policy: DnsPolicy::default(),
        }
    }
}

impl Transport {
    /// Request slots per connection (at least 1).
    pub fn slots_per_connection(&self) -> u32 {
        self.streams.max(1)
    }
}

/// TLS to the target. Certificates and key are PEM bytes (read by the
/// coordinator, so agents need no files).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct TargetTls {
    /// CA bundle trusted instead of the public (webpki) roots; empty: the
    /// public roots.
    pub ca_pem: Vec<u8>,
    /// Client certificate chain and its key (both empty: none).
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    /// The name to verify (and send as SNI) instead of the URL's host.
    pub server_name: Option<String>,
    /// Accept any certificate. Logged loudly.
    pub insecure: bool,
}

impl std::fmt::Debug for TargetTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of logs.
        f.debug_struct("TargetTls")
            .field("custom_ca", &!self.ca_pem.is_empty())
            .field("client_certificate", &!self.cert_pem.is_empty())
            .field("server_name", &self.server_name)
            .field("insecure", &self.insecure)
            .finish()
    }
}

/// This agent's slice of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadPlan {
    /// What to send: one request, or a weighted mix. Never empty.
    pub requests: Vec<RequestTemplate>,
    /// Rows for the requests' placeholders.
    pub data: Option<DataSet>,
    /// Model-serving mode: read responses as OpenAI-compatible completions
    /// (streamed or not) and measure TTFT, ITL, TPOT, tokens and goodput.
    pub llm: Option<LlmSpec>,
    /// gRPC mode (instead of HTTP/1.1 requests).
    pub grpc: Option<GrpcSpec>,
    pub model: WorkloadModel,
    pub duration: Duration,
    pub interval: Duration,
    pub timeout: Duration,
    /// After `duration`, how long in-flight (and, in the open model, already
    /// due) requests may take to finish before they count as interrupted.
    pub graceful_stop: Duration,
    /// Closed model: pause after each response, drawn uniformly from this
    /// range (a virtual user's think time). `None`: no pause.
    pub think_time: Option<(Duration, Duration)>,
    /// HTTP version, streams per connection, TLS.
    pub transport: Transport,
    /// One endpoint's part of an agent's load, when a scenario routes it to
    /// several endpoints: an agent runs one plan per endpoint.
    pub leg: Option<Leg>,
}

/// Which endpoint a plan loads, and where its requests' figures go: request
/// `i` of this plan is request `request_offset + i` of the agent's
/// recorder, so each endpoint's figures stay apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leg {
    pub endpoint: String,
    pub request_offset: u32,
}

impl LoadPlan {
    /// Number of intervals in the nominal duration (the last may be partial).
    pub fn interval_count(&self) -> u32 {
        let n = self
            .duration
            .as_nanos()
            .div_ceil(self.interval.as_nanos().max(1));
        u32::try_from(n.max(1)).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
impl LoadPlan {
    /// Tests: `requests` from one closed-model connection for 1 s, 1 s
    /// intervals, keep-alive HTTP/1.1; change what a test needs.
    pub(crate) fn for_tests(requests: Vec<RequestTemplate>) -> Self {
        LoadPlan {
            requests,
            data: None,
            llm: None,
            grpc: None,
            model: WorkloadModel::Closed {
                connections: 1,
                stages: None,
            },
            duration: Duration::from_secs(1),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(3),
            graceful_stop: Duration::from_secs(1),
            think_time: None,
            leg: None,
            transport: Transport::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_partial_intervals() {
        let plan = |d: u64, i: u64| LoadPlan {
            duration: Duration::from_millis(d),
            interval: Duration::from_millis(i),
            ..LoadPlan::for_tests(vec![RequestTemplate::new(
                "GET",
                url::Url::parse("http://127.0.0.1:1/").expect("valid url"),
            )])
        };
        assert_eq!(plan(15_000, 1_000).interval_count(), 15);
        assert_eq!(plan(15_500, 1_000).interval_count(), 16);
        assert_eq!(plan(500, 1_000).interval_count(), 1);
    }
}
