//! The JSON report: what a run leaves behind. Its structure is documented by
//! `docs/report.schema.json`; change both together and bump
//! [`SCHEMA_VERSION`] when a field changes meaning.
//!
//! Histograms are stored in HdrHistogram's compressed V2 form, base64 — the
//! form `.hlog` interval logs use — so reports can be re-merged and
//! re-analysed later, by Stampede or any HdrHistogram library.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunReport {
    /// Version of this structure ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    pub tool: Tool,
    /// uuid of the run.
    pub run_id: String,
    /// `complete`; `partial` when an agent was lost or the run was stopped;
    /// `failed` when a lost agent stopped the run (`on_agent_loss: fail`).
    pub status: RunStatus,
    /// Why the run is partial, one line per cause.
    pub notes: Vec<String>,
    /// What went wrong, in order of time: agents lost (disconnected or
    /// silent), missing final reports, refused reports, a stop. Each also
    /// had its log line when it happened.
    #[serde(default)]
    pub faults: Vec<Fault>,
    pub scenario: ScenarioEcho,
    /// RFC 3339, UTC: the common start of interval 0, and the last interval's end.
    pub started_at: String,
    pub ended_at: String,
    pub histogram_format: HistogramFormat,
    pub global: ScopeSummary,
    pub regions: Vec<RegionReport>,
    pub agents: Vec<AgentReport>,
    pub intervals: Vec<IntervalReport>,
    /// Staged runs: figures for each phase of the stages (each level of a
    /// step sweep, a spike's peak and recovery, …), from the merged
    /// histograms of that phase's intervals only. Empty without stages.
    #[serde(default)]
    pub stages: Vec<StageReport>,
    /// The scenario's thresholds, judged on this run's figures; the run
    /// fails when any did not pass.
    #[serde(default)]
    pub thresholds: Vec<ThresholdResult>,
    /// A scenario with `requests:`: each request's figures, globally and
    /// per region (warm-up excluded). Empty without a mix.
    #[serde(default)]
    pub requests: Vec<RequestReport>,
    /// A scenario with `endpoints:`: one cell per agent region and endpoint
    /// it sent to, from the merged histograms of that pair (warm-up
    /// excluded). A region's cells add up to its figures.
    #[serde(default)]
    pub matrix: Vec<MatrixCell>,
    /// A run of a series (`repeat: N`): which one. `null` for a single run.
    #[serde(default)]
    pub series: Option<SeriesInfo>,
    /// The most two agents' starts can differ after clock correction (the
    /// two widest ± rtt/2 uncertainties of the clock exchange), ms.
    #[serde(default)]
    pub start_skew_bound_ms: Option<f64>,
    /// Things that make the figures less trustworthy, one line each (for
    /// example a saturated agent). Shown loudly by every view.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// With a price in the scenario: what the achieved throughput cost.
    #[serde(default)]
    pub cost: Option<CostSummary>,
}

/// The target's price at the run's achieved throughput (warm-up excluded).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CostSummary {
    pub hourly_usd: f64,
    pub instances: u32,
    /// Price of one request: the instances' price per second over the
    /// completed requests per second.
    pub usd_per_request: Option<f64>,
    pub usd_per_million_requests: Option<f64>,
    /// Model serving: price of a million output tokens.
    pub usd_per_million_output_tokens: Option<f64>,
}

/// Where a run stands in its series.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SeriesInfo {
    /// Shared by every run of the series.
    pub id: String,
    /// 1-based.
    pub run: u32,
    pub runs: u32,
}

/// One request of the mix over the whole run.
/// What one agent region saw of one endpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MatrixCell {
    /// The agents' region.
    pub region: String,
    pub endpoint: String,
    #[serde(flatten)]
    pub summary: ScopeSummary,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RequestReport {
    pub name: String,
    pub method: String,
    /// As written in the scenario (placeholders kept; a path is joined to
    /// each region's URL).
    pub url: String,
    /// Its share of the sends (weights normalized to sum to 1).
    pub share: f64,
    /// Status codes and bytes are not kept per request (they are `{}`/0).
    pub global: ScopeSummary,
    pub regions: BTreeMap<String, ScopeSummary>,
}

/// One threshold checked against one scope.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ThresholdResult {
    /// As written, e.g. `eu-west: p99 < 250ms`.
    pub threshold: String,
    /// `global` or a region name.
    pub scope: String,
    /// `p50` … `p99.9`, `mean`, `max` (µs), `error_rate` (a fraction),
    /// `rps`, `requests`.
    pub metric: String,
    /// The limit, in the metric's unit (µs for latencies).
    pub limit: f64,
    /// The run's figure; `null` when the scope had no data (which fails).
    pub actual: Option<f64>,
    pub passed: bool,
}

/// One phase of a staged run and what it measured.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StageReport {
    /// e.g. `ramp 100→1000`, `step 2000`.
    pub name: String,
    /// `warmup`, `ramp`, `steady`, `spike`, `recover` or `step`.
    pub kind: String,
    /// Index of the scenario stage it comes from.
    pub stage: u32,
    /// Seconds from the run's start.
    pub start_s: f64,
    pub end_s: f64,
    /// The cluster's level at the phase's start and end: requests/s (open
    /// model) or connections (closed model).
    pub level_from: f64,
    pub level_to: f64,
    /// Warm-up: not part of the run's totals.
    pub warmup: bool,
    pub global: ScopeSummary,
    pub regions: BTreeMap<String, ScopeSummary>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Complete,
    Partial,
    /// The scenario's `on_agent_loss: fail` stopped the run.
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Complete => "complete",
            RunStatus::Partial => "partial",
            RunStatus::Failed => "failed",
        }
    }
}

/// One thing that went wrong during a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Fault {
    /// Seconds from the run's common start (negative: before it).
    pub at_s: f64,
    /// `agent_lost` (its session ended), `agent_silent` (no report or
    /// heartbeat within `agent_loss_timeout`), `no_final_report`,
    /// `agent_error`, `report_refused`, `stopped` or `run_failed`.
    pub kind: String,
    #[serde(default)]
    pub agent: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tool {
    pub name: String,
    pub version: String,
}

/// The scenario as it was run (after defaults and overrides).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScenarioEcho {
    pub name: String,
    /// `open` or `closed`.
    pub model: String,
    /// Open model: target rate, requests/s across all regions.
    pub rate: Option<f64>,
    pub connections: u32,
    pub duration_s: f64,
    pub interval_s: f64,
    pub method: String,
    pub url: String,
    pub region_urls: BTreeMap<String, String>,
    /// The data file that filled the requests' placeholders, if any.
    #[serde(default)]
    pub data_file: Option<String>,
    /// `sequential`, `random` or `once`, with a data file.
    #[serde(default)]
    pub data_order: Option<String>,
    /// Rows in the data file.
    #[serde(default)]
    pub data_rows: Option<u64>,
    /// Open model: `constant` or `poisson`.
    pub arrival: Option<String>,
    /// Poisson: the seed used (to repeat the schedule).
    pub seed: Option<u64>,
    /// Seconds of warm-up at the start, left out of the totals.
    #[serde(default)]
    pub warmup_s: f64,
    /// `http1` or `http2`.
    #[serde(default = "http1")]
    pub protocol: String,
    /// Concurrent requests per connection (HTTP/2 streams).
    #[serde(default = "one")]
    pub streams_per_connection: u32,
    /// False with `target.keep_alive: false`: a new connection per request.
    #[serde(default = "yes")]
    pub keep_alive: bool,
    /// How often agents re-resolved the target's name, seconds; `null`:
    /// once, at the start.
    #[serde(default)]
    pub dns_refresh_s: Option<f64>,
    /// Which of the name's addresses agents used (`target.dns_policy`);
    /// `null` in reports from before the setting.
    #[serde(default)]
    pub dns_policy: Option<String>,
    /// TLS to the target, when its URL is https and the scenario has a
    /// `tls:` section.
    #[serde(default)]
    pub tls: Option<TlsEcho>,
    /// gRPC runs: the unary method every call made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_method: Option<String>,
}

fn http1() -> String {
    "http1".into()
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
}

/// The scenario's `target.tls` (no key material).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TlsEcho {
    /// A CA bundle replaced the public roots.
    pub custom_ca: bool,
    pub client_certificate: bool,
    pub server_name: Option<String>,
    /// Certificates were NOT verified.
    pub insecure: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HistogramFormat {
    /// Unit of every latency value: `us`.
    pub unit: String,
    /// `hdr-v2-deflate-base64`.
    pub encoding: String,
    pub lowest_discernible_value: u64,
    pub highest_trackable_value: u64,
    pub significant_digits: u8,
}

/// Figures for one scope (global, a region, an agent) over the whole run
/// (warm-up excluded) or over one stage.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScopeSummary {
    /// Completed requests: successes plus failures.
    pub requests: u64,
    pub successes: u64,
    pub errors: ErrorCounts,
    /// Cut off by the end (or abort) of the run: neither success nor failure.
    pub interrupted: u64,
    /// Responses by HTTP status code.
    pub status_codes: BTreeMap<String, u64>,
    /// gRPC runs: calls by status code name (`OK`, `UNAVAILABLE`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub grpc_codes: BTreeMap<String, u64>,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    /// Open model: the rate this scope was asked for.
    pub target_rps: Option<f64>,
    /// Completed requests per second of the nominal duration (of the time
    /// the run lasted, if it was stopped early).
    pub achieved_rps: f64,
    /// Latency of successful requests.
    pub latency_us: LatencySummary,
    /// Latency of failed requests.
    pub error_latency_us: LatencySummary,
    /// Open model: how far requests left from their intended send time
    /// (late, or up to half a pacer slot early); generator health, all
    /// zero in the closed model.
    pub schedule_lag_us: LatencySummary,
    pub latency_histogram: String,
    pub error_histogram: String,
    pub schedule_lag_histogram: String,
    /// Model-serving runs: TTFT, ITL, TPOT, tokens and goodput (absent
    /// otherwise, and for agents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<LlmSummary>,
    /// Where the requests' time went: DNS, connect, TLS, time to first
    /// byte, transfer; connections opened and where to (absent for agents,
    /// and in reports from before phase timings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phases: Option<PhaseSummary>,
}

/// Request phase timings of a scope, as k6 splits a request. `wait_us` and
/// `transfer_us` count responses; `connect_us` and `tls_us` count new
/// connections (a keep-alive request has no connect phase at all); `dns_us`
/// counts lookups, made apart from requests (at the start and on every
/// `target.dns_refresh`). For one request on a new connection, connect +
/// TLS + wait + transfer is its latency (less the time it waited for its
/// send slot, in the open model).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct PhaseSummary {
    pub dns_us: LatencySummary,
    pub connect_us: LatencySummary,
    pub tls_us: LatencySummary,
    /// Time to first byte: request written to the response's first byte.
    pub wait_us: LatencySummary,
    /// The response's first byte to its last.
    pub transfer_us: LatencySummary,
    pub new_connections: u64,
    /// Connections opened per second of the measured duration.
    pub new_connections_per_second: f64,
    /// Completed requests per connection opened (`null` when none was).
    pub requests_per_connection: Option<f64>,
    /// The target addresses connections went to, most used first.
    pub addresses: Vec<AddressUse>,
    pub dns_histogram: String,
    pub connect_histogram: String,
    pub tls_histogram: String,
    pub wait_histogram: String,
    pub transfer_histogram: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AddressUse {
    /// `ip:port`.
    pub address: String,
    pub connections: u64,
}

/// Model-serving figures of a scope. Definitions (as vLLM's `bench serve`):
/// TTFT ends at the first chunk carrying content (a role-only chunk does
/// not count; not streamed: the whole answer); ITL is every gap between
/// content chunks; per-token ITL spreads a gap over the chunk's tokens;
/// TPOT = (e2e − TTFT) / (output tokens − 1), streamed requests only.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct LlmSummary {
    pub ttft_us: LatencySummary,
    pub itl_us: LatencySummary,
    pub itl_per_token_us: LatencySummary,
    pub tpot_us: LatencySummary,
    /// Output tokens per second of each request (not µs: tokens/s).
    pub request_tokens_per_second: LatencySummary,
    pub output_tokens: u64,
    pub input_tokens: u64,
    /// Output tokens per second of the measured duration, all requests.
    pub output_tokens_per_second: f64,
    /// Where output token counts came from: `usage` (the server's),
    /// `chunks` (content chunks counted), `mixed`, or `none`.
    pub token_count_source: String,
    pub usage_counted: u64,
    pub chunk_counted: u64,
    pub uncounted: u64,
    pub streamed: u64,
    /// Successful requests that met every goodput limit.
    pub good: u64,
    /// Good requests per second of the measured duration.
    pub goodput_rps: f64,
    /// Good requests / completed requests.
    pub goodput_ratio: f64,
    /// Failures (counted in `errors.other` too): protocol broken, stream cut.
    pub malformed: u64,
    pub truncated: u64,
    pub ttft_histogram: String,
    pub itl_histogram: String,
    pub itl_per_token_histogram: String,
    pub tpot_histogram: String,
    pub request_tokens_per_second_histogram: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct ErrorCounts {
    pub total: u64,
    pub connect: u64,
    /// The TLS handshake with the target failed (0 in reports from before
    /// TLS to targets).
    #[serde(default)]
    pub tls: u64,
    pub timeout: u64,
    pub status_4xx: u64,
    pub status_5xx: u64,
    pub other: u64,
}

/// Percentiles from the merged histogram; all zero when it is empty.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Default)]
pub struct LatencySummary {
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub stdev: f64,
    pub p50: u64,
    pub p90: u64,
    pub p95: u64,
    pub p99: u64,
    pub p99_9: u64,
    pub max: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RegionReport {
    pub name: String,
    pub agents: u32,
    #[serde(flatten)]
    pub summary: ScopeSummary,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AgentReport {
    pub id: String,
    pub region: String,
    pub zone: String,
    pub hostname: String,
    /// `finished`, `lost` (disconnected mid-run), `unfinished` (no final report in time) or
    /// `unknown` (no record of the agent's session).
    pub state: String,
    /// When it was lost, seconds from the run's start.
    #[serde(default)]
    pub lost_at_s: Option<f64>,
    pub intervals: u32,
    /// Its wall clock minus the coordinator's, from the clock exchange
    /// before the run (its Start was sent in its own clock).
    #[serde(default)]
    pub clock_offset_ms: Option<f64>,
    /// Round trip of that exchange: the offset is good to ± half of it.
    #[serde(default)]
    pub clock_rtt_ms: Option<f64>,
    /// Generator health: CPU time (user + system) the agent used in the run.
    #[serde(default)]
    pub cpu_seconds: f64,
    /// Its busiest interval's CPU time over the time its worker threads had
    /// (1.0: every worker busy all the time).
    #[serde(default)]
    pub peak_cpu_share: f64,
    /// The agent itself was the bottleneck (CPU share ≥ 90%, or requests
    /// left ≥ 10 ms late at p99): its figures describe the generator.
    #[serde(default)]
    pub saturated: bool,
    #[serde(flatten)]
    pub summary: ScopeSummary,
}

/// One interval: global and per-region figures.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IntervalReport {
    pub index: u32,
    /// Seconds from the run's start.
    pub start_s: f64,
    pub end_s: f64,
    /// Part of the warm-up (not in the run's totals).
    #[serde(default)]
    pub warmup: bool,
    pub global: IntervalFigures,
    pub regions: BTreeMap<String, IntervalFigures>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IntervalFigures {
    pub requests: u64,
    pub successes: u64,
    pub errors: u64,
    /// Completed requests per second of this interval.
    pub rps: f64,
    /// Connections opened per second of this interval (0 in reports from
    /// before phase timings).
    #[serde(default)]
    pub new_connections_per_second: f64,
    pub latency_us: LatencySummary,
    pub latency_histogram: String,
    pub error_histogram: String,
}
