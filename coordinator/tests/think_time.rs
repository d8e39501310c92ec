//! Closed-model think time: each virtual user pauses after every response,
//! which bounds its request rate to about 1 / (think time + latency).

mod support;

use stampede_agent::{AgentConfig, run_agent};
use stampede_coordinator::cluster::run_coordinator;
use stampede_coordinator::scenario::{Load, Model};
use stampede_target::TargetConfig;
use std::time::Duration;
use support::{InProcessTarget, one_region_scenario};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn think_time_paces_each_virtual_user() {
    let target = InProcessTarget::start(TargetConfig::default()).await;
    let scenario = one_region_scenario(
        "think",
        target.url.clone(),
        Load {
            graceful_stop: Duration::from_secs(2),
            think_time: Some((Duration::from_millis(50), Duration::from_millis(50))),
            ..Load::constant(Model::Closed, 2, Duration::from_secs(2))
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut agent = AgentConfig::new(
        format!("http://{}", listener.local_addr().expect("addr")),
        "local",
    );
    agent.once = true;
    agent.engine.threads = 1;
    let agent_task = tokio::spawn(run_agent(agent, CancellationToken::new()));
    let report = run_coordinator(scenario, listener, CancellationToken::new())
        .await
        .expect("runs");
    let _ = agent_task.await;
    let served = target.stats.served();
    target.stop().await;

    // 2 users × 2 s / (50 ms think + sub-ms response) ≈ 80 requests; the
    // 1 ms timer granularity can only lengthen each pause a little.
    let n = report.global.requests;
    assert!((66..=82).contains(&n), "{n} requests");
    assert_eq!(n, served);
}
