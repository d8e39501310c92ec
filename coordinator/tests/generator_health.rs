//! Generator health: an agent asked for far more than it can produce is
//! flagged as saturated, loudly, while one well within its means is not.

mod support;

use stampede_coordinator::bench::run_bench;
use stampede_coordinator::scenario::Arrival;
use stampede_target::TargetConfig;
use std::time::Duration;
use support::{InProcessTarget, bench_options};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_agent_is_flagged_and_a_comfortable_one_is_not() {
    let target = InProcessTarget::start(TargetConfig::default()).await;

    // 200 req/s over 4 connections: nothing for one worker thread.
    let calm = run_bench(
        bench_options(
            target.url.clone(),
            4,
            Duration::from_secs(2),
            Some(200.0),
            Arrival::Constant,
        ),
        CancellationToken::new(),
    )
    .await
    .expect("runs");
    assert!(calm.warnings.is_empty(), "{:?}", calm.warnings);
    assert!(!calm.agents[0].saturated);
    assert!(calm.agents[0].cpu_seconds > 0.0, "CPU time is reported");
    assert!(calm.agents[0].peak_cpu_share < 0.9);

    // A million requests per second from one worker thread: impossible, so
    // requests leave ever later and the worker is busy all the time.
    let swamped = run_bench(
        bench_options(
            target.url.clone(),
            4,
            Duration::from_secs(2),
            Some(1_000_000.0),
            Arrival::Constant,
        ),
        CancellationToken::new(),
    )
    .await
    .expect("runs");
    target.stop().await;
    let agent = &swamped.agents[0];
    assert!(
        agent.saturated,
        "peak CPU share {}, lag p99 {} µs",
        agent.peak_cpu_share, agent.summary.schedule_lag_us.p99
    );
    assert_eq!(swamped.warnings.len(), 1);
    let warning = &swamped.warnings[0];
    assert!(warning.contains("was saturated"), "{warning}");
    assert!(
        warning.contains("describe the load generator, not the target"),
        "{warning}"
    );
    assert!(stampede_coordinator::report::table::render(&swamped).contains("WARNING: agent"));
}
