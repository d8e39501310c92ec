//! How a scenario is read and checked.
//!
//! A scenario file (YAML or TOML) is read through `config`, so any field can
//! be overridden from the environment: `STAMPEDE_LOAD__RATE=5000` sets
//! `load.rate` (`__` separates levels). It is then validated into a typed
//! [`Scenario`]; every error names the file, the field and why.

pub mod data;
mod file;
mod grpc;
mod locate;
pub mod requests;
pub mod search;
pub mod stages;
pub mod thresholds;
pub mod topology;
mod transport;
mod validate;

pub use data::Data;
pub use requests::{NamedRequest, RequestUrl};
pub use search::{SearchMode, SearchSpec, SloLine, Tolerance};
pub use stages::{Phase, PhaseKind};
pub use thresholds::Threshold;
pub use validate::{random_seed, validate};

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// A checked scenario, ready to plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub target: Target,
    pub load: Load,
    pub regions: Vec<RegionSpec>,
    pub start_delay: Duration,
    pub agent_wait_timeout: Duration,
    /// What happens when an agent goes missing mid-run.
    pub faults: FaultPolicy,
    /// Named endpoints, routing and failovers; `None`: one URL for all (or
    /// `target.region_urls`).
    pub topology: Option<topology::Topology>,
    /// The run fails (non-zero exit) when one of these does not hold.
    pub thresholds: Vec<Threshold>,
    /// A weighted mix of named requests; empty: the target's own request.
    pub requests: Vec<NamedRequest>,
    /// Rows for the requests' placeholders.
    pub data: Option<Data>,
    /// Runs in a row (a series); 1 for a single run.
    pub repeat: u32,
    /// Model-serving mode (OpenAI-compatible responses) and its goodput SLO.
    pub llm: Option<stampede_agent::plan::LlmSpec>,
    /// gRPC mode: every send is this unary call (payload encoded here).
    pub grpc: Option<stampede_agent::plan::GrpcSpec>,
    /// A capacity search (`crate::search` runs it); `load` and `regions`
    /// are then its first probe's.
    pub search: Option<SearchSpec>,
    /// What the target costs: the report gives $/request and $/1M tokens.
    pub cost: Option<Cost>,
}

/// How a run treats an agent that goes missing mid-run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultPolicy {
    /// An agent heard from neither a report nor a heartbeat for this long is
    /// lost, even when its connection still looks open (a hung process, a
    /// half-open link).
    pub agent_loss_timeout: Duration,
    pub on_agent_loss: OnAgentLoss,
    pub late_joiners: LateJoiners,
}

impl Default for FaultPolicy {
    fn default() -> Self {
        Self {
            agent_loss_timeout: DEFAULT_AGENT_LOSS_TIMEOUT,
            on_agent_loss: OnAgentLoss::Continue,
            late_joiners: LateJoiners::Wait,
        }
    }
}

/// What an agent that registers while a run is under way does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LateJoiners {
    /// It waits for the next run.
    Wait,
    /// In a region that lost an agent whose share nobody took over, it takes
    /// that share over from an interval boundary ahead; otherwise it waits.
    TakeOver,
}

/// Five missed heartbeats (agents beat every 2 s).
pub const DEFAULT_AGENT_LOSS_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnAgentLoss {
    /// The run goes on with the other agents; the report is partial and keeps
    /// everything the lost agent reported.
    Continue,
    /// The run stops at once on every agent; the report is marked failed.
    Fail,
    /// The agents left in the lost agent's region take over its share from
    /// the start of the next interval but one (so the message is there in
    /// time); the report is partial (the gap before the takeover).
    Redistribute,
}

impl OnAgentLoss {
    pub fn as_str(self) -> &'static str {
        match self {
            OnAgentLoss::Continue => "continue",
            OnAgentLoss::Fail => "fail",
            OnAgentLoss::Redistribute => "redistribute",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub method: String,
    pub url: url::Url,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout: Duration,
    /// Region name → URL for that region's agents (else `url`).
    pub region_urls: BTreeMap<String, url::Url>,
    /// HTTP version, streams per connection (`load.streams_per_connection`)
    /// and TLS (`target.tls`, PEM read from its files; `None`: no section).
    pub transport: stampede_agent::plan::Transport,
}

impl Target {
    /// The URL agents of `region` send to.
    pub fn url_for(&self, region: &str) -> &url::Url {
        self.region_urls.get(region).unwrap_or(&self.url)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Model {
    /// Fixed concurrency: `connections` loops sending back to back.
    Closed,
    /// Arrival rate (total across regions), requests per second, evenly
    /// spaced or as a Poisson process. `rate` is the mean over the measured
    /// phases; [`Load::phases`] say how it changes over time.
    Open { rate: f64, arrival: Arrival },
}

/// How open-model arrivals are spaced across the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    Constant,
    /// Exponential gaps; agents derive their streams from this seed.
    Poisson {
        seed: u64,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Load {
    pub model: Model,
    /// Total across all agents (closed model: the peak concurrency).
    pub connections: u32,
    /// The whole run, warm-up included.
    pub duration: Duration,
    pub interval: Duration,
    pub graceful_stop: Duration,
    /// Closed model: pause after each response, uniform in [min, max].
    pub think_time: Option<(Duration, Duration)>,
    /// The load level over time (rate or connections), in order; one
    /// steady phase when the scenario has no stages.
    pub phases: Vec<Phase>,
    /// The scenario gave `stages` (the level changes over time).
    pub staged: bool,
}

impl Load {
    /// A constant load for `duration`: the open model's rate, or all
    /// `connections` busy throughout; 1 s intervals, 5 s graceful stop.
    pub fn constant(model: Model, connections: u32, duration: Duration) -> Self {
        let level = match model {
            Model::Open { rate, .. } => rate,
            Model::Closed => f64::from(connections),
        };
        Self {
            model,
            connections,
            duration,
            interval: Duration::from_secs(1),
            graceful_stop: Duration::from_secs(5),
            think_time: None,
            phases: stages::steady(level, duration),
            staged: false,
        }
    }

    /// The warm-up at the start of the run, left out of the figures.
    pub fn warmup(&self) -> Duration {
        self.phases
            .iter()
            .take_while(|p| p.kind == PhaseKind::Warmup)
            .map(|p| p.duration)
            .sum()
    }

    /// Intervals that belong to the warm-up (phases are interval-aligned).
    pub fn warmup_intervals(&self) -> u32 {
        let n = self.warmup().as_nanos() / self.interval.as_nanos().max(1);
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// The measured part of the run.
    pub fn measured(&self) -> Duration {
        self.duration.saturating_sub(self.warmup())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RegionSpec {
    pub name: String,
    pub agents: u32,
    pub share: Share,
}

/// How much of the load a region takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Share {
    /// Relative weight among the weighted regions.
    Weight(f64),
    /// A fixed rate (open model only).
    Rate(f64),
}

impl Scenario {
    /// One line saying what the scenario will do.
    pub fn describe(&self) -> String {
        if let Some(search) = &self.search {
            let regions: Vec<&str> = self.regions.iter().map(|r| r.name.as_str()).collect();
            return format!(
                "scenario {:?}: {}; {}, regions {}",
                self.name,
                search.describe(self),
                self.sends(),
                regions.join(", ")
            );
        }
        let load = match self.load.model {
            Model::Open {
                rate,
                arrival: Arrival::Constant,
            } => format!("open model, {rate} req/s"),
            Model::Open {
                rate,
                arrival: Arrival::Poisson { seed },
            } => format!("open model, {rate} req/s (Poisson, seed {seed})"),
            Model::Closed => "closed model".to_owned(),
        };
        let regions: Vec<String> = self
            .regions
            .iter()
            .map(|r| {
                format!(
                    "{} ({} agent{})",
                    r.name,
                    r.agents,
                    if r.agents == 1 { "" } else { "s" }
                )
            })
            .collect();
        format!(
            "scenario {:?}: {load}, {} connections, {} in {}s intervals, {}{}, regions {}",
            self.name,
            self.load.connections,
            humantime::format_duration(self.load.duration),
            self.load.interval.as_secs_f64(),
            self.sends(),
            self.transport_note(),
            regions.join(", ")
        )
    }

    /// What each send is and where it goes: `GET http://…`, `gRPC
    /// /pkg.Service/Method at http://…`, and the endpoints when there are.
    fn sends(&self) -> String {
        let call = match &self.grpc {
            Some(grpc) => format!("gRPC {} at {}", grpc.path, self.target.url),
            None => format!("{} {}", self.target.method, self.target.url),
        };
        match &self.topology {
            None => call,
            Some(t) => {
                let names: Vec<&str> = t.endpoints.iter().map(|e| e.name.as_str()).collect();
                let what = match &self.grpc {
                    Some(grpc) => format!("gRPC {}", grpc.path),
                    None => self.target.method.clone(),
                };
                format!(
                    "{what} to endpoints {} ({} routing)",
                    names.join(", "),
                    t.routing.as_str()
                )
            }
        }
    }

    /// ` (HTTP/2, 10 streams per connection; TLS INSECURE)`, or nothing for
    /// HTTP/1.1 keep-alive with verified (or no) TLS.
    fn transport_note(&self) -> String {
        let t = &self.target.transport;
        let mut parts = Vec::new();
        if t.protocol == stampede_agent::plan::Protocol::Http2 {
            parts.push(format!("HTTP/2, {} streams per connection", t.streams));
        }
        if t.new_connection_per_request {
            parts.push("a new connection per request".to_owned());
        }
        if t.tls.as_ref().is_some_and(|tls| tls.insecure) {
            parts.push("TLS INSECURE: certificates not verified".to_owned());
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!(" ({})", parts.join("; "))
        }
    }

    /// The requests to send: the mix, or the target's own request.
    pub fn effective_requests(&self) -> Vec<NamedRequest> {
        if self.requests.is_empty() {
            vec![requests::from_target(&self.target)]
        } else {
            self.requests.clone()
        }
    }

    /// Request indices the agents record under: each request of the mix,
    /// once per endpoint when the scenario has endpoints (endpoint `e`'s
    /// requests from `e × mix`).
    pub fn request_slots(&self) -> u32 {
        let endpoints = self
            .topology
            .as_ref()
            .map_or(1, |t| t.endpoints.len().max(1));
        (self.effective_requests().len() * endpoints) as u32
    }

    pub fn region(&self, name: &str) -> Option<&RegionSpec> {
        self.regions.iter().find(|r| r.name == name)
    }

    pub fn total_agents(&self) -> u32 {
        self.regions.iter().map(|r| r.agents).sum()
    }
}

/// The target's price, to put a cost on throughput.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cost {
    /// One instance, per hour.
    pub hourly_usd: f64,
    pub instances: u32,
}

/// A scenario error: which file (and line, when it can be found), which
/// field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {field}: {why}", .line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ScenarioError {
    pub file: String,
    pub line: Option<usize>,
    pub field: String,
    pub why: String,
}

/// Top-level keys that environment overrides may set. Other `STAMPEDE_*`
/// variables (the CLI's own settings) are not scenario fields.
const OVERRIDABLE: [&str; 20] = [
    "name",
    "target",
    "load",
    "regions",
    "start_delay",
    "agent_wait_timeout",
    "agent_loss_timeout",
    "on_agent_loss",
    "late_joiners",
    "thresholds",
    "requests",
    "data",
    "repeat",
    "llm",
    "search",
    "cost",
    "grpc",
    "endpoints",
    "routing",
    "failover",
];

/// Largest scenario file read: scenarios are short; bulk belongs in data
/// files, which have their own limit.
pub const MAX_SCENARIO_BYTES: u64 = 1 << 20;

/// Reads, merges environment overrides into, and validates a scenario file.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let env = std::env::vars().collect();
    load_with_env(path, env)
}

/// [`load`] with an explicit environment (tests pass their own).
pub fn load_with_env(
    path: &Path,
    env: BTreeMap<String, String>,
) -> Result<Scenario, ScenarioError> {
    let file = path.display().to_string();
    let error = |field: &str, why: String| ScenarioError {
        file: file.clone(),
        line: None,
        field: field.to_owned(),
        why,
    };
    let format = format_of(path).ok_or_else(|| {
        error(
            "(file)",
            "unknown format: use a .yaml, .yml or .toml file".into(),
        )
    })?;
    let size = std::fs::metadata(path)
        .map_err(|e| error("(file)", format!("cannot read: {e}")))?
        .len();
    if size > MAX_SCENARIO_BYTES {
        return Err(too_big(&file, size));
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| error("(file)", format!("cannot read: {e}")))?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&file, &text, format, env, Some(base))
}

/// Reads a scenario submitted as text (to a standing coordinator): `file`
/// is the name it had on the client, for its format and for the errors.
/// No environment overrides apply, and the scenario may not refer to other
/// files (`data:`, `body_file:`): the server cannot read the client's disk.
pub fn load_text(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
    let error = |field: &str, why: String| ScenarioError {
        file: file.to_owned(),
        line: None,
        field: field.to_owned(),
        why,
    };
    let format = format_of(Path::new(file)).ok_or_else(|| {
        error(
            "(file)",
            "unknown format: name it .yaml, .yml or .toml".into(),
        )
    })?;
    if text.len() as u64 > MAX_SCENARIO_BYTES {
        return Err(too_big(file, text.len() as u64));
    }
    parse(file, text, format, BTreeMap::new(), None)
}

fn format_of(path: &Path) -> Option<config::FileFormat> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("yaml" | "yml") => Some(config::FileFormat::Yaml),
        Some("toml") => Some(config::FileFormat::Toml),
        _ => None,
    }
}

fn too_big(file: &str, size: u64) -> ScenarioError {
    ScenarioError {
        file: file.to_owned(),
        line: None,
        field: "(file)".into(),
        why: format!(
            "{:.1} MiB; a scenario file is at most {} KiB (rows belong in a `data:` file)",
            size as f64 / (1 << 20) as f64,
            MAX_SCENARIO_BYTES >> 10
        ),
    }
}

/// Parses and validates scenario `text`; `base`: the folder its file
/// references are relative to, `None` when it may have none.
fn parse(
    file: &str,
    text: &str,
    format: config::FileFormat,
    env: BTreeMap<String, String>,
    base: Option<&Path>,
) -> Result<Scenario, ScenarioError> {
    let error = |field: &str, why: String| ScenarioError {
        file: file.to_owned(),
        line: None,
        field: field.to_owned(),
        why,
    };
    let overrides: config::Map<String, String> = env
        .into_iter()
        .filter(|(k, _)| {
            k.strip_prefix("STAMPEDE_")
                .and_then(|rest| rest.split("__").next())
                .is_some_and(|top| OVERRIDABLE.contains(&top.to_ascii_lowercase().as_str()))
        })
        .collect();
    let config = config::Config::builder()
        .add_source(config::File::from_str(text, format))
        .add_source(
            config::Environment::with_prefix("STAMPEDE")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .source(Some(overrides)),
        )
        .build()
        .map_err(|e| error("(file)", e.to_string()))?;
    let locate = |field: &str| match format {
        config::FileFormat::Toml => locate::toml_line(text, field),
        _ => locate::yaml_line(text, field),
    };
    let raw: file::ScenarioFile = serde_path_to_error::deserialize(config).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "(top level)".to_owned()
        } else {
            path
        };
        ScenarioError {
            line: locate(&field),
            ..error(&field, e.into_inner().to_string())
        }
    })?;
    let base = match base {
        Some(base) => base,
        None => {
            if let Some(field) = file::local_file_reference(&raw) {
                return Err(ScenarioError {
                    line: locate(&field),
                    ..error(
                        &field,
                        "a scenario submitted to a coordinator cannot refer to local files (the coordinator does not \
                         read the submitter's disk): inline the body with `body:`, or run the scenario with a local \
                         coordinator".into(),
                    )
                });
            }
            Path::new(".")
        }
    };
    validate(raw, base).map_err(|(field, why)| ScenarioError {
        line: locate(&field),
        ..error(&field, why)
    })
}

/// Parses a duration such as `15s`, `500ms`, `1m 30s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a duration ({e}); write e.g. 15s, 500ms, 2m"))
}

#[cfg(test)]
mod tests;
