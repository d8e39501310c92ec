//! `stampede bench URL`: ad hoc mode, as with wrk or oha. An embedded
//! coordinator and one agent in this process, over real gRPC on loopback —
//! the same engine, merge and report as a cluster run.

use crate::cluster::{ClusterOptions, run_coordinator_with};
use crate::events::EventSender;
use crate::report::model::RunReport;
use crate::scenario::{Arrival, Load, Model, RegionSpec, Scenario, Share, Target, stages};
use stampede_agent::engine::EngineOptions;
use stampede_agent::{AgentConfig, run_agent};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub url: url::Url,
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub connections: u32,
    pub duration: Duration,
    /// Open model at this rate; closed model when `None`.
    pub rate: Option<f64>,
    /// Open model: how arrivals are spaced.
    pub arrival: Arrival,
    pub threads: usize,
    pub timeout: Duration,
    /// HTTP version, streams per connection, TLS (`https` URLs).
    pub transport: stampede_agent::plan::Transport,
}

/// The region name ad hoc runs report under.
pub const LOCAL_REGION: &str = "local";

pub fn scenario(o: &BenchOptions) -> Scenario {
    Scenario {
        name: format!("bench {}", o.url),
        target: Target {
            method: o.method.clone(),
            url: o.url.clone(),
            headers: o.headers.clone(),
            body: o.body.clone(),
            timeout: o.timeout,
            region_urls: Default::default(),
            transport: o.transport.clone(),
        },
        load: Load {
            model: o.rate.map_or(Model::Closed, |rate| Model::Open {
                rate,
                arrival: o.arrival,
            }),
            connections: o.connections,
            duration: o.duration,
            interval: Duration::from_secs(1),
            graceful_stop: o.timeout.min(Duration::from_secs(5)),
            think_time: None,
            phases: stages::steady(o.rate.unwrap_or(f64::from(o.connections)), o.duration),
            staged: false,
        },
        regions: vec![RegionSpec {
            name: LOCAL_REGION.into(),
            agents: 1,
            share: Share::Weight(1.0),
        }],
        start_delay: Duration::from_millis(200),
        agent_wait_timeout: Duration::from_secs(10),
        faults: Default::default(),
        topology: None,
        thresholds: vec![],
        requests: vec![],
        data: None,
        repeat: 1,
        llm: None,
        grpc: None,
        search: None,
        cost: None,
    }
}

pub async fn run_bench(
    options: BenchOptions,
    cancel: CancellationToken,
) -> Result<RunReport, crate::run::RunError> {
    run_bench_with(options, None, cancel).await
}

/// [`run_bench`], sending the run's events to `events`.
pub async fn run_bench_with(
    options: BenchOptions,
    events: Option<EventSender>,
    cancel: CancellationToken,
) -> Result<RunReport, crate::run::RunError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| crate::run::RunError::Server(e.to_string()))?;
    let url = format!(
        "http://{}",
        listener
            .local_addr()
            .map_err(|e| crate::run::RunError::Server(e.to_string()))?
    );
    let mut agent = AgentConfig::new(url, LOCAL_REGION);
    agent.once = true;
    agent.engine = EngineOptions {
        threads: options.threads.max(1),
    };
    // Not a child of `cancel`: on Ctrl-C the coordinator stops the run and
    // the agent flushes what it recorded before it is released.
    let agent_stop = CancellationToken::new();
    let agent_task = tokio::spawn(run_agent(agent, agent_stop.clone()));
    let cluster = ClusterOptions {
        events,
        ..ClusterOptions::default()
    };
    let result = run_coordinator_with(scenario(&options), listener, cluster, cancel).await;
    agent_stop.cancel();
    let _ = agent_task.await;
    result
}
