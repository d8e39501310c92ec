//! The `stampede` command line: clap parses, the library runs.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "stampede",
    version,
    about = "Distributed load generation: a coordinator, agents in many regions, exact merged percentiles."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything on this machine: a built-in target, a coordinator and three agents in simulated regions.
    Demo(DemoArgs),
    /// Ad hoc load test of one URL (like wrk or oha): an embedded coordinator and one agent.
    Bench(BenchArgs),
    /// Run a scenario: wait for its agents, split the load, merge their results.
    Coordinator(CoordinatorArgs),
    /// Join a coordinator and drive the load it assigns.
    Agent(AgentArgs),
    /// Serve the built-in HTTP target (per-region delays, a capacity limit, a served-requests counter).
    Target(TargetArgs),
    /// Re-render a saved JSON report: table, JSON, CSV, HTML or HdrHistogram logs (percentiles recomputed from its histograms).
    Report(ReportArgs),
    /// Compare two saved reports: how each headline figure moved, per region; optionally fail on a regression.
    Compare(CompareArgs),
    /// Check a scenario file without sending any load (exit 0 if it is valid).
    Validate(ValidateArgs),
    /// Submit a scenario to a standing coordinator (`coordinator --serve`), follow it live, write its report, and exit
    /// with its thresholds' verdict (0 pass, 99 a threshold failed, 1 error).
    Run(RunArgs),
    /// List the runs a standing coordinator kept in its history database.
    History(HistoryArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario file (.yaml, .yml or .toml); it is sent as text, so it may not refer to other files (data:, body_file:).
    pub scenario: PathBuf,
    /// The standing coordinator's run API, e.g. http://coordinator:7701.
    #[arg(long, env = "STAMPEDE_API")]
    pub coordinator: url::Url,
    /// A label kept with the run in the history, e.g. branch=main (repeatable).
    #[arg(long = "label", env = "STAMPEDE_LABELS", value_delimiter = ',')]
    pub labels: Vec<String>,
    /// The git commit the run tests, kept with it in the history.
    #[arg(long, env = "STAMPEDE_GIT_SHA")]
    pub git_sha: Option<String>,
    /// Where to write the JSON report (default: stampede-report-<run id>.json).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Also write the HTML report (with the trend of the scenario's last runs) to this file.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// No live view while the run goes (only the result table at the end).
    #[arg(short, long)]
    pub quiet: bool,
    /// A file holding the coordinator's token (or the token itself in STAMPEDE_TOKEN).
    #[arg(long, env = "STAMPEDE_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The history database a standing coordinator writes.
    #[arg(long, env = "STAMPEDE_HISTORY", default_value = crate::history::DEFAULT_PATH)]
    pub history: PathBuf,
    /// Only runs of this scenario (its `name:`).
    #[arg(long)]
    pub scenario: Option<String>,
    /// Only runs carrying this label (repeatable: all of them).
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Submitted at or after: 2026-11-01, 2026-11-01T12:00:00Z, or a duration ago such as 7d.
    #[arg(long)]
    pub since: Option<String>,
    /// Submitted before (same forms as --since).
    #[arg(long)]
    pub until: Option<String>,
    /// Only runs in this state: queued, running, passed, failed, aborted or error.
    #[arg(long)]
    pub state: Option<String>,
    /// At most this many runs, newest first.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// JSON (an array of runs) instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Scenario files (.yaml, .yml or .toml); STAMPEDE_* overrides apply as for a run.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How long the load runs.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub duration: std::time::Duration,
    /// Total requests per second across the three regions.
    #[arg(long, default_value_t = 600.0)]
    pub rate: f64,
    /// Where to write the JSON report (default: stampede-report-<run id>.json).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Also write the HTML report to this file.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// No live view while the run goes (only the result table at the end).
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The URL to load (http:// or https://).
    pub url: String,
    /// Connections to keep open (closed model: the concurrency).
    #[arg(short = 'c', long, default_value_t = 50)]
    pub connections: u32,
    /// How long to run.
    #[arg(short = 'd', long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: std::time::Duration,
    /// Open model: requests per second, latency measured from each request's intended send time.
    #[arg(short = 'R', long)]
    pub rate: Option<f64>,
    /// Open model: Poisson arrivals (exponential gaps) instead of evenly spaced ones.
    #[arg(long, requires = "rate")]
    pub poisson: bool,
    /// Seed for --poisson (default: random; the report records it).
    #[arg(long, requires = "poisson")]
    pub seed: Option<u64>,
    /// Worker threads.
    #[arg(short = 't', long, default_value_t = 1)]
    pub threads: usize,
    /// HTTP method.
    #[arg(short = 'm', long, default_value = "GET")]
    pub method: String,
    /// Extra header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// Request body.
    #[arg(long)]
    pub body: Option<String>,
    /// Per-request timeout.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    /// Speak HTTP/2: h2 by ALPN for https:// URLs, h2c (prior knowledge) for http://.
    #[arg(long)]
    pub http2: bool,
    /// HTTP/2: concurrent streams per connection (request slots = connections x streams).
    #[arg(long, default_value_t = 1, requires = "http2")]
    pub streams: u32,
    /// https://: trust this CA bundle (PEM) instead of the public roots.
    #[arg(long, value_name = "PATH", conflicts_with = "insecure")]
    pub ca: Option<PathBuf>,
    /// https://: do NOT verify the target's certificate (logged loudly).
    #[arg(long)]
    pub insecure: bool,
    /// Print the JSON report to stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON report to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Also write the HTML report to this file.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// No live view while the run goes (with --json it is shown on stderr).
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct CoordinatorArgs {
    /// Scenario file (.yaml, .yml or .toml). Fields can be overridden with STAMPEDE_<SECTION>__<FIELD>.
    #[arg(
        short,
        long,
        env = "STAMPEDE_SCENARIO_FILE",
        required_unless_present = "serve",
        conflicts_with = "serve"
    )]
    pub scenario: Option<PathBuf>,
    /// Stay up: keep agents registered between runs and run scenarios submitted over the run API (`stampede run`).
    #[arg(
        long,
        env = "STAMPEDE_SERVE",
        help_heading = "Standing cluster",
        conflicts_with_all = ["report", "html", "metrics_listen", "pushgateway"]
    )]
    pub serve: bool,
    /// With --serve: where the run API (HTTP/JSON) listens.
    #[arg(
        long,
        env = "STAMPEDE_API_LISTEN",
        default_value = "0.0.0.0:7701",
        help_heading = "Standing cluster"
    )]
    pub api_listen: String,
    /// With --serve: the run history database (SQLite; created if missing).
    #[arg(long, env = "STAMPEDE_HISTORY", default_value = crate::history::DEFAULT_PATH, help_heading = "Standing cluster")]
    pub history: PathBuf,
    /// With --serve: runs shown in an HTML report's trend section.
    #[arg(long, default_value_t = 10, help_heading = "Standing cluster")]
    pub trend_runs: u32,
    /// Address agents dial.
    #[arg(long, env = "STAMPEDE_LISTEN", default_value = "0.0.0.0:7700")]
    pub listen: String,
    /// Where to write the JSON report (default: stampede-report-<run id>.json).
    #[arg(long, env = "STAMPEDE_REPORT")]
    pub report: Option<PathBuf>,
    /// Also write the HTML report to this file (a capacity search: its page, with latency against throughput).
    #[arg(long, env = "STAMPEDE_HTML_REPORT")]
    pub html: Option<PathBuf>,
    /// No live view while the run goes: on a terminal a redrawn block, elsewhere one line per interval.
    #[arg(short, long, env = "STAMPEDE_QUIET")]
    pub quiet: bool,
    /// Serve Prometheus metrics of the run at http://ADDR/metrics (port 0 picks a free port; the address is printed).
    #[arg(long, env = "STAMPEDE_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Push each finished run's metrics to this Pushgateway (http://HOST:PORT), grouped by job and run id.
    #[arg(long, env = "STAMPEDE_PUSHGATEWAY", value_name = "URL")]
    pub pushgateway: Option<url::Url>,
    /// This coordinator's TLS certificate chain (PEM).
    #[arg(
        long,
        env = "STAMPEDE_TLS_CERT",
        requires = "tls_key",
        help_heading = "Security"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(
        long,
        env = "STAMPEDE_TLS_KEY",
        requires = "tls_cert",
        help_heading = "Security"
    )]
    pub tls_key: Option<PathBuf>,
    /// CA bundle (PEM) for agents' certificates: when given, every agent must present one it signed (mTLS).
    #[arg(
        long,
        env = "STAMPEDE_TLS_CLIENT_CA",
        requires = "tls_cert",
        help_heading = "Security"
    )]
    pub tls_client_ca: Option<PathBuf>,
    /// A file holding the token every agent must send (or the token itself in STAMPEDE_TOKEN).
    #[arg(long, env = "STAMPEDE_TOKEN_FILE", help_heading = "Security")]
    pub token_file: Option<PathBuf>,
    /// Serve agents without TLS (a private network, or TLS ended in front of the coordinator).
    #[arg(
        long,
        env = "STAMPEDE_INSECURE_PLAINTEXT",
        conflicts_with = "tls_cert",
        help_heading = "Security"
    )]
    pub insecure_plaintext: bool,
    /// Most agent sessions at once; one more is refused with the reason.
    #[arg(long, env = "STAMPEDE_MAX_AGENTS", default_value_t = crate::service::DEFAULT_MAX_AGENTS, help_heading = "Security")]
    pub max_agents: usize,
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The coordinator's URL, e.g. http://coordinator:7700.
    #[arg(long, env = "STAMPEDE_COORDINATOR")]
    pub coordinator: String,
    /// This agent's region (must be one the scenario lists).
    #[arg(long, env = "STAMPEDE_AGENT_REGION")]
    pub region: String,
    /// This agent's zone (informational).
    #[arg(long, env = "STAMPEDE_AGENT_ZONE", default_value = "")]
    pub zone: String,
    /// Worker threads (default: all cores).
    #[arg(long, env = "STAMPEDE_AGENT_THREADS")]
    pub threads: Option<usize>,
    /// Exit after one run (for Kubernetes Jobs) instead of waiting for the next.
    #[arg(long, env = "STAMPEDE_AGENT_ONCE")]
    pub once: bool,
    /// Histogram encoding on the wire: plain (default: cheapest for the coordinator) or deflate (half the bytes).
    #[arg(long, default_value = "plain")]
    pub histogram_encoding: stampede_proto::histogram::Encoding,
    /// CA bundle (PEM) that signed the coordinator's certificate; turns TLS on (the URL must be https://).
    #[arg(long, env = "STAMPEDE_TLS_CA", help_heading = "Security")]
    pub tls_ca: Option<PathBuf>,
    /// This agent's client certificate chain (PEM), for a coordinator that requires one (mTLS).
    #[arg(long, env = "STAMPEDE_TLS_CERT", requires_all = ["tls_key", "tls_ca"], help_heading = "Security")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(
        long,
        env = "STAMPEDE_TLS_KEY",
        requires = "tls_cert",
        help_heading = "Security"
    )]
    pub tls_key: Option<PathBuf>,
    /// The name to expect in the coordinator's certificate (default: the URL's host).
    #[arg(
        long,
        env = "STAMPEDE_TLS_SERVER_NAME",
        requires = "tls_ca",
        help_heading = "Security"
    )]
    pub tls_server_name: Option<String>,
    /// A file holding the token to send to the coordinator (or the token itself in STAMPEDE_TOKEN).
    #[arg(long, env = "STAMPEDE_TOKEN_FILE", help_heading = "Security")]
    pub token_file: Option<PathBuf>,
    /// Dial the coordinator without TLS (a private network, or TLS ended in front of it).
    #[arg(
        long,
        env = "STAMPEDE_INSECURE_PLAINTEXT",
        conflicts_with = "tls_ca",
        help_heading = "Security"
    )]
    pub insecure_plaintext: bool,
    /// A target this agent may load: HOST, *.SUFFIX, IP or CIDR (repeatable; env: a comma list).
    #[arg(
        long = "allow-target",
        env = "STAMPEDE_ALLOW_TARGETS",
        value_delimiter = ',',
        help_heading = "Security"
    )]
    pub allow_targets: Vec<stampede_agent::AllowRule>,
    /// Load any target the coordinator names (no allowlist).
    #[arg(
        long,
        env = "STAMPEDE_ALLOW_ANY_TARGET",
        conflicts_with = "allow_targets",
        help_heading = "Security"
    )]
    pub allow_any_target: bool,
}

#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Address to serve on (port 0 picks a free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Delay for requests naming no configured region: 5ms, uniform(5ms,10ms), normal(40ms,5ms), exponential(20ms).
    #[arg(long, default_value = "0ms")]
    pub delay: stampede_target::DelaySpec,
    /// Per-region delay, REGION=DELAY (repeatable), selected by path /region/REGION or header x-stampede-region.
    #[arg(long = "region-delay", value_parser = parse_region_delay)]
    pub region_delays: Vec<(String, stampede_target::DelaySpec)>,
    /// Response body size in bytes.
    #[arg(long, default_value_t = stampede_target::DEFAULT_BODY_BYTES)]
    pub body_bytes: usize,
    /// Stall every response once, when this many requests have arrived (for coordinated-omission tests).
    #[arg(long, requires = "stall_for")]
    pub stall_after_requests: Option<u64>,
    /// How long the stall lasts.
    #[arg(long, value_parser = humantime::parse_duration, requires = "stall_after_requests")]
    pub stall_for: Option<std::time::Duration>,
    /// OpenAI-compatible mock (POST /v1/completions, /v1/chat/completions): time to the first token.
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    pub llm_ttft: std::time::Duration,
    /// OpenAI-compatible mock: time between tokens.
    #[arg(long, default_value = "10ms", value_parser = humantime::parse_duration)]
    pub llm_token_interval: std::time::Duration,
    /// OpenAI-compatible mock: tokens per answer when the request names no max_tokens.
    #[arg(long, default_value_t = 32)]
    pub llm_tokens: u32,
    /// Serve at most N requests/s in all: past N, requests queue in arrival order for a free slot
    /// (bursts up to 50 ms ahead pass), so latency rises sharply, as on a saturated server. A capacity
    /// search against this target should find N.
    #[arg(long, value_name = "N", value_parser = parse_capacity)]
    pub capacity: Option<f64>,
    /// One region's own capacity, REGION=N requests/s (repeatable), on top of --capacity.
    #[arg(long = "region-capacity", value_name = "REGION=N", value_parser = parse_region_capacity)]
    pub region_capacities: Vec<(String, f64)>,
    /// Serve TLS with this certificate chain (PEM); ALPN offers h2 and http/1.1. Without it the port
    /// serves plain HTTP/1.1 and HTTP/2 with prior knowledge (h2c).
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (PEM); needs --tls-cert.
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Serve the KServe v2 / Triton gRPC inference protocol (plaintext HTTP/2) instead of HTTP/1.1:
    /// ModelInfer echoes its inputs after --delay / --region-delay (region from the
    /// x-stampede-region metadata); the HTTP-only options do not apply.
    #[arg(long, conflicts_with_all = ["capacity", "region_capacities", "stall_after_requests"])]
    pub kserve: bool,
    /// With --kserve: answer this share (0..1) of ModelInfer calls UNAVAILABLE, deterministically
    /// (over N calls exactly floor(N x SHARE)).
    #[arg(long, value_name = "SHARE", default_value_t = 0.0, requires = "kserve")]
    pub grpc_unavailable: f64,
}

fn parse_capacity(s: &str) -> Result<f64, String> {
    stampede_target::parse_capacity(s).map_err(|e| e.to_string())
}

fn parse_region_capacity(s: &str) -> Result<(String, f64), String> {
    stampede_target::parse_region_capacity(s).map_err(|e| e.to_string())
}

fn parse_region_delay(s: &str) -> Result<(String, stampede_target::DelaySpec), String> {
    stampede_target::parse_region_delay(s).map_err(|e| e.to_string())
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A JSON report written by a run.
    pub file: PathBuf,
    /// What to render: the terminal table, the JSON report, a per-interval CSV time series,
    /// a self-contained HTML page (needs --output FILE) or HdrHistogram interval logs
    /// (.hlog, one per region and one global; needs --output DIR).
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    pub format: ReportFormat,
    /// Same as --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// Write here instead of stdout: a file, or for hlog a directory (created if missing).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
    Csv,
    Html,
    Hlog,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline: a JSON report file, or a run id of --history. With --baseline, the run to judge.
    pub base: String,
    /// The report (file or run id) to compare with the baseline.
    pub new: Option<String>,
    /// A standing coordinator's history database, to name runs by id.
    #[arg(long, env = "STAMPEDE_HISTORY")]
    pub history: Option<PathBuf>,
    /// Pick the baseline from --history: `last-passing`, the last passing run of the same scenario (and labels)
    /// before the one judged.
    #[arg(long, value_enum, requires = "history")]
    pub baseline: Option<Baseline>,
    /// With --baseline: the baseline must carry this label (repeatable; default: the judged run's labels).
    #[arg(long = "label", requires = "baseline")]
    pub labels: Vec<String>,
    /// table, or json for scripts.
    #[arg(long, value_enum, default_value_t = CompareFormat::Table)]
    pub format: CompareFormat,
    /// Exit 1 when, globally or in any region, p50, p90, p99 or p99.9 grew, or the achieved rps fell,
    /// by more than PCT percent.
    #[arg(long, value_name = "PCT", value_parser = parse_percent)]
    pub fail_on_regression: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Baseline {
    LastPassing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompareFormat {
    Table,
    Json,
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let pct: f64 = s
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{s:?} is not a number of percent"))?;
    if pct.is_finite() && pct >= 0.0 {
        Ok(pct)
    } else {
        Err(format!("{s:?}: must be a percentage of 0 or more"))
    }
}
