//! The scenario file as written: loose types (durations as strings, optional
//! fields), unknown fields refused. [`super::validate`] turns it into a
//! [`super::Scenario`].

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    pub name: Option<String>,
    pub target: TargetSection,
    pub load: LoadSection,
    pub regions: Vec<RegionSection>,
    /// How long before the common start time the coordinator sends `Start`,
    /// so every agent has it in time (default 2s).
    pub start_delay: Option<String>,
    /// How long to wait for the expected agents to register (default 60s).
    pub agent_wait_timeout: Option<String>,
    /// Mid-run, an agent heard from neither a report nor a heartbeat for
    /// this long is declared lost (default 10s; agents beat every 2s).
    pub agent_loss_timeout: Option<String>,
    /// What a lost agent does to the run: `continue` (default: the run goes
    /// on, partial), `fail` (the run stops at once, failed) or
    /// `redistribute` (its region's other agents take over its share).
    pub on_agent_loss: Option<String>,
    /// An agent that registers mid-run: `wait` (default: for the next run)
    /// or `take_over` (a lost agent's share in its region, if there is one).
    pub late_joiners: Option<String>,
    /// Pass/fail criteria, e.g. `p99 < 250ms`, `eu-west: error_rate < 0.1%`.
    pub thresholds: Option<Vec<String>>,
    /// A weighted mix of named requests, instead of the target's one.
    pub requests: Option<Vec<RequestSection>>,
    /// Rows that fill the requests' `{{column}}` placeholders.
    pub data: Option<DataSection>,
    /// Run the whole scenario this many times in a row (default 1) and
    /// report each run plus the mean and standard deviation.
    pub repeat: Option<i64>,
    /// Model-serving mode: responses are OpenAI-compatible completions.
    pub llm: Option<LlmSection>,
    /// A capacity search: the highest load that meets an SLO, instead of
    /// one run at one load.
    pub search: Option<SearchSection>,
    /// What the target costs, to report $/request and $/1M tokens.
    pub cost: Option<CostSection>,
    /// Named endpoints (a deployment per region, say), instead of one URL.
    pub endpoints: Option<Vec<EndpointSection>>,
    /// `home` (default: each agent region to the endpoint of its name) or
    /// `matrix` (every agent region to every endpoint, by weight).
    pub routing: Option<String>,
    /// Failover drills: routing changes at given times.
    pub failover: Option<Vec<FailoverSection>>,
    /// gRPC mode: one unary call, instead of HTTP requests.
    pub grpc: Option<GrpcSection>,
}

/// `grpc:`, checked by `super::grpc`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcSection {
    /// `/package.Service/Method` (with `kserve`: ModelInfer's, the default).
    pub method: Option<String>,
    /// The request message, protobuf-encoded, from a file.
    pub payload_file: Option<String>,
    /// The request message as JSON (protobuf's JSON mapping), encoded with
    /// `descriptor_set`.
    pub json: Option<serde_json::Value>,
    pub json_file: Option<String>,
    /// A `FileDescriptorSet` holding the method and its input message.
    pub descriptor_set: Option<String>,
    /// A KServe v2 / Triton `ModelInferRequest`.
    pub kserve: Option<KserveSection>,
    /// Request metadata (headers).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KserveSection {
    pub model: String,
    pub version: Option<String>,
    pub inputs: Vec<KserveInputSection>,
    /// Requested outputs by name (default: the model's own choice).
    pub outputs: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KserveInputSection {
    pub name: String,
    /// `BOOL`, `INT8`…`INT64`, `UINT8`…`UINT64`, `FP32`, `FP64` or `BYTES`.
    pub datatype: String,
    pub shape: Vec<i64>,
    /// The elements, flattened in row-major order.
    pub data: Vec<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSection {
    pub name: String,
    pub url: String,
    /// Share in matrix routing, and of a down endpoint's traffic (default 1).
    pub weight: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailoverSection {
    /// When, from the run's start.
    pub at: String,
    /// Switch this agent region's traffic…
    pub region: Option<String>,
    /// …to this endpoint.
    pub to: Option<String>,
    /// Or: this endpoint goes down…
    pub endpoint: Option<String>,
    /// …(`true`): its traffic goes to the other endpoints by weight.
    pub down: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostSection {
    /// Price of one target instance per hour, in dollars (or any currency).
    pub hourly_usd: f64,
    /// Target instances (default 1).
    pub instances: Option<i64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LlmSection {
    /// A request is "good" when it meets every one of these limits.
    pub goodput: Option<GoodputSection>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GoodputSection {
    /// Time to first token, e.g. `500ms`.
    pub ttft: Option<String>,
    /// Time per output token after the first, e.g. `50ms`.
    pub tpot: Option<String>,
    /// End to end, e.g. `10s`.
    pub e2e: Option<String>,
}

/// `search:`, checked by `super::search`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSection {
    /// What each probe must meet: threshold lines (`p99 < 250ms`).
    pub slo: Option<Vec<String>>,
    /// The range searched: requests/s (open model) or connections (closed).
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// The first probe's level (default `min`).
    pub start: Option<f64>,
    /// Each probe's measured time.
    pub step: Option<String>,
    /// Each probe's warm-up, left out of its figures (default 5s).
    pub settle: Option<String>,
    /// Stop when the gap between the last pass and the first fail is under
    /// this: `5%` (default) of the passing level, or an absolute level.
    pub tolerance: Option<ToleranceValue>,
    /// `global` (default) or `per-region`.
    pub mode: Option<String>,
    /// Per-region: the level the other regions hold meanwhile (default `min`).
    pub base: Option<f64>,
    /// Open model: a probe whose schedule lag p99 is past this saw the
    /// generator fall behind (default 5ms).
    pub max_schedule_lag: Option<String>,
}

/// A tolerance as written: a number, or text such as `5%`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ToleranceValue {
    Number(f64),
    Text(String),
}

/// One request of `requests:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSection {
    pub name: String,
    /// Relative share of the sends (default 1).
    pub weight: Option<f64>,
    pub method: Option<String>,
    /// A path (`/v1/predict`, joined to the target or region URL), a path
    /// relative to it (`predict`), or a full URL; may hold placeholders.
    pub url: Option<String>,
    /// Added to (and overriding) the target's headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
    /// The body from a file (relative to the scenario's folder).
    pub body_file: Option<String>,
    /// This request's timeout (default: the target's).
    pub timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// A .csv (header row) or .jsonl (one object per line) file, relative
    /// to the scenario's folder.
    pub file: String,
    /// `csv` or `jsonl` (default: from the file's extension).
    pub format: Option<String>,
    /// `sequential` (default), `random` or `once`.
    pub order: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSection {
    pub url: String,
    pub method: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
    pub timeout: Option<String>,
    /// Per agent region, the URL its agents use instead of `url` (a
    /// multi-region deployment with an endpoint per region).
    #[serde(default)]
    pub region_urls: BTreeMap<String, String>,
    /// `http1` (default) or `http2`.
    pub protocol: Option<String>,
    /// TLS to `https://` targets.
    pub tls: Option<TlsSection>,
    /// `false`: a new connection for every request (the cold path).
    pub keep_alive: Option<bool>,
    /// How often agents re-resolve the target's name (`5m` unless given;
    /// `never`: once, at the start).
    pub dns_refresh: Option<String>,
    /// Which of the name's addresses to use: `prefer_ipv4` unless given.
    pub dns_policy: Option<String>,
}

/// `target.tls:`, checked by `super::transport`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// PEM CA bundle trusted instead of the public roots (relative to the
    /// scenario's folder).
    pub ca: Option<String>,
    /// Client certificate chain and key (PEM), both or neither.
    pub cert: Option<String>,
    pub key: Option<String>,
    /// Name verified (and sent as SNI) instead of the URL's host.
    pub server_name: Option<String>,
    /// Skip certificate verification (loudly logged).
    pub insecure: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSection {
    /// `open` (a fixed arrival rate) or `closed` (fixed concurrency).
    pub model: String,
    /// Open model: total requests per second across all regions.
    pub rate: Option<f64>,
    /// Total connections across all agents (closed: the concurrency).
    pub connections: Option<i64>,
    /// How long the load runs (with `stages`: their sum, so leave it out).
    pub duration: Option<String>,
    pub interval: Option<String>,
    pub graceful_stop: Option<String>,
    /// Closed model: a virtual user's pause after each response: `200ms`
    /// or `uniform(100ms,300ms)`.
    pub think_time: Option<String>,
    /// Open model: `constant` (evenly spaced, default) or `poisson`.
    pub arrival: Option<String>,
    /// Poisson: seed of the arrival process (default: random, recorded in
    /// the report so the run can be repeated).
    pub seed: Option<u64>,
    /// How the load changes over the run; instead of a constant `rate`
    /// (open) or `connections` (closed) for `duration`.
    pub stages: Option<Vec<StageSection>>,
    /// HTTP/2: concurrent streams per connection (default 1; HTTP/1.1: 1).
    pub streams_per_connection: Option<i64>,
}

/// One stage of `load.stages`. Which fields apply depends on `kind`; the
/// level is `rate` (open model) or `connections` (closed model).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSection {
    /// `warmup`, `ramp`, `steady`, `spike` or `step`.
    pub kind: String,
    /// warmup, ramp, steady: how long the stage lasts.
    pub duration: Option<String>,
    /// warmup, steady, spike (its peak): open-model level, requests/s.
    pub rate: Option<f64>,
    /// warmup, steady, spike (its peak): closed-model level.
    pub connections: Option<i64>,
    /// ramp: start level (default: where the previous stage ended, or 0).
    pub from: Option<f64>,
    /// ramp: end level.
    pub to: Option<f64>,
    /// step: the levels, each held for `hold`.
    pub levels: Option<Vec<f64>>,
    /// spike: how long the peak lasts; step: how long each level lasts.
    pub hold: Option<String>,
    /// spike: how long to stay back at the level before it, measured.
    pub recover: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionSection {
    pub name: String,
    /// Agents expected from this region (default 1).
    pub agents: Option<i64>,
    /// Relative share of the load (default 1).
    pub weight: Option<f64>,
    /// Open model: this region's rate, instead of a weighted share.
    pub rate: Option<f64>,
}

/// The first field that names a file on the submitter's disk (`data`, a
/// request's `body_file`), if any.
pub fn local_file_reference(raw: &ScenarioFile) -> Option<String> {
    if raw.data.is_some() {
        return Some("data".into());
    }
    raw.requests
        .iter()
        .flatten()
        .enumerate()
        .find_map(|(i, r)| {
            r.body_file
                .is_some()
                .then(|| format!("requests[{i}].body_file"))
        })
}
