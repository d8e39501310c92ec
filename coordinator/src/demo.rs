//! `stampede demo`: the whole cluster on one machine. A built-in target that
//! answers each region with its own delay (standing in for network
//! distance), a coordinator, and three agents labelled us-east, eu-west and
//! ap-south, all in this process, talking over real gRPC on loopback.

use crate::cluster::{ClusterOptions, run_coordinator_with};
use crate::events::EventSender;
use crate::report::model::RunReport;
use crate::scenario::{Arrival, Load, Model, RegionSpec, Scenario, Share, Target, stages};
use stampede_agent::{AgentConfig, AllowRule, TargetAllowlist, run_agent};
use stampede_target::{DelaySpec, TargetConfig, TargetServer};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The demo's regions and the delay the target adds for each.
pub const REGIONS: [(&str, Duration); 3] = [
    ("us-east", Duration::from_millis(5)),
    ("eu-west", Duration::from_millis(40)),
    ("ap-south", Duration::from_millis(120)),
];

const LOOPBACK: ipnet::IpNet = ipnet::IpNet::V4(ipnet::Ipv4Net::new_assert(
    std::net::Ipv4Addr::new(127, 0, 0, 0),
    8,
));

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub duration: Duration,
    /// Total open-model rate across the three regions.
    pub rate: f64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(15),
            rate: 600.0,
        }
    }
}

/// The scenario the demo runs, aimed at a target on `target_port`.
pub fn scenario(options: &DemoOptions, target_port: u16) -> Scenario {
    let url = |region: &str| {
        url::Url::parse(&format!("http://127.0.0.1:{target_port}/region/{region}")).unwrap_or_else(
            |e| {
                // A loopback URL with a numeric port always parses.
                panic!("demo URL does not parse: {e}")
            },
        )
    };
    let per_region = options.rate / REGIONS.len() as f64;
    // Connections are split evenly across the (equally weighted) regions, so
    // size them for the slowest: rate × latency in flight, with headroom.
    let slowest = REGIONS
        .iter()
        .map(|(_, d)| d.as_secs_f64())
        .fold(0.0, f64::max);
    let connections = REGIONS.len() as u32 * ((per_region * slowest * 2.0).ceil() as u32).max(4);
    Scenario {
        name: "demo".into(),
        target: Target {
            method: "GET".into(),
            url: url("us-east"),
            headers: vec![],
            body: vec![],
            timeout: Duration::from_secs(5),
            region_urls: REGIONS
                .iter()
                .map(|(r, _)| (r.to_string(), url(r)))
                .collect(),
            transport: Default::default(),
        },
        load: Load {
            model: Model::Open {
                rate: options.rate,
                arrival: Arrival::Constant,
            },
            connections,
            duration: options.duration,
            interval: Duration::from_secs(1),
            graceful_stop: Duration::from_secs(5),
            think_time: None,
            phases: stages::steady(options.rate, options.duration),
            staged: false,
        },
        regions: REGIONS
            .iter()
            .map(|(name, _)| RegionSpec {
                name: name.to_string(),
                agents: 1,
                share: Share::Weight(1.0),
            })
            .collect(),
        start_delay: Duration::from_secs(1),
        agent_wait_timeout: Duration::from_secs(30),
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

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot start the built-in target: {0}")]
    Target(#[from] stampede_target::TargetError),
    #[error("cannot listen for agents: {0}")]
    Listen(std::io::Error),
    #[error(transparent)]
    Run(#[from] crate::run::RunError),
}

/// Runs the demo; returns the report and the target's served count.
pub async fn run_demo(
    options: DemoOptions,
    cancel: CancellationToken,
) -> Result<(RunReport, u64), DemoError> {
    run_demo_with(options, None, cancel).await
}

/// [`run_demo`], sending the run's events to `events`.
pub async fn run_demo_with(
    options: DemoOptions,
    events: Option<EventSender>,
    cancel: CancellationToken,
) -> Result<(RunReport, u64), DemoError> {
    let target = TargetServer::bind(TargetConfig {
        region_delays: REGIONS
            .iter()
            .map(|(r, d)| (r.to_string(), DelaySpec::Fixed(*d)))
            .collect::<BTreeMap<_, _>>(),
        ..TargetConfig::default()
    })
    .await?;
    let target_port = target.local_addr().port();
    let stats = target.stats();
    let target_stop = CancellationToken::new();
    let target_task = tokio::spawn(target.run(target_stop.clone()));

    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(DemoError::Listen)?;
    let coordinator_url = format!(
        "http://{}",
        listener.local_addr().map_err(DemoError::Listen)?
    );
    // Not a child of `cancel`: on Ctrl-C the coordinator stops the run and
    // the agents flush what they recorded before they are released.
    let agents_stop = CancellationToken::new();
    let agents: Vec<_> = REGIONS
        .iter()
        .map(|(region, _)| {
            let mut config = AgentConfig::new(coordinator_url.clone(), *region);
            config.once = true;
            config.engine.threads = 1;
            // The demo's agents only ever load the built-in target here.
            config.allowlist = TargetAllowlist::Only(vec![AllowRule::Net(LOOPBACK)]);
            tokio::spawn(run_agent(config, agents_stop.clone()))
        })
        .collect();

    let cluster = ClusterOptions {
        events,
        ..ClusterOptions::default()
    };
    let scenario = scenario(&options, target_port);
    let result = run_coordinator_with(scenario, listener, cluster, cancel).await;
    agents_stop.cancel();
    for agent in agents {
        let _ = agent.await;
    }
    target_stop.cancel();
    let _ = target_task.await;
    Ok((result?, stats.served()))
}
