//! Synchronised start: agents whose clocks are off by seconds still start
//! together, because the coordinator measures each agent's clock offset
//! (NTP-style) and sends each its start time in its own clock.

mod support;

use stampede_agent::{AgentConfig, run_agent};
use stampede_coordinator::cluster::run_coordinator;
use stampede_coordinator::scenario::{Arrival, Load, Model, RegionSpec, Share};
use stampede_target::TargetConfig;
use std::time::Duration;
use support::{InProcessTarget, one_region_scenario};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_with_skewed_clocks_start_together() {
    let target = InProcessTarget::start(TargetConfig::default()).await;
    let mut scenario = one_region_scenario(
        "clocks",
        target.url.clone(),
        Load::constant(
            Model::Open {
                rate: 200.0,
                arrival: Arrival::Constant,
            },
            4,
            Duration::from_secs(2),
        ),
    );
    scenario.regions = ["ahead", "behind"]
        .iter()
        .map(|name| RegionSpec {
            name: name.to_string(),
            agents: 1,
            share: Share::Weight(1.0),
        })
        .collect();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    // One host 30 s ahead, one 20 s behind.
    let agents: Vec<_> = [("ahead", 30_000_000_000i64), ("behind", -20_000_000_000)]
        .into_iter()
        .map(|(region, skew)| {
            let mut agent = AgentConfig::new(url.clone(), region);
            agent.once = true;
            agent.engine.threads = 1;
            agent.clock_skew_nanos = skew;
            tokio::spawn(run_agent(agent, CancellationToken::new()))
        })
        .collect();
    let report = run_coordinator(scenario, listener, CancellationToken::new())
        .await
        .expect("runs");
    for agent in agents {
        let _ = agent.await;
    }
    let served = target.stats.served();
    target.stop().await;

    // Each agent's measured offset is its skew, within the exchange's
    // uncertainty (half a loopback round trip, well under 10 ms).
    for (region, skew_ms) in [("ahead", 30_000.0), ("behind", -20_000.0)] {
        let agent = report
            .agents
            .iter()
            .find(|a| a.region == region)
            .expect("agent in report");
        let offset = agent.clock_offset_ms.expect("offset measured");
        let rtt = agent.clock_rtt_ms.expect("round trip measured");
        assert!(
            (offset - skew_ms).abs() <= rtt / 2.0 + 1.0,
            "{region}: offset {offset} ms, rtt {rtt} ms"
        );
    }
    let bound = report.start_skew_bound_ms.expect("skew bound");
    assert!(bound < 10.0, "start skew bound {bound} ms");
    // Both started on time: the whole load ran in the run's two intervals
    // (an agent 30 s off would have started 30 s early or late).
    assert_eq!(report.global.requests, 400);
    assert_eq!(served, 400);
    for interval in &report.intervals {
        assert!(
            interval.start_s.abs() < 2.5 && interval.end_s < 3.0,
            "interval {:?}",
            (interval.start_s, interval.end_s)
        );
        assert_eq!(
            interval.regions.len(),
            2,
            "both regions in interval {}",
            interval.index
        );
    }
    for region in &report.regions {
        assert_eq!(region.summary.requests, 200, "{}", region.name);
    }
}
