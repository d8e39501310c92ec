//! Stopping a run early (Ctrl-C on the coordinator): the agents stop, flush
//! what they recorded, and the report is partial but loses nothing.

mod support;

use stampede_coordinator::bench::run_bench;
use stampede_coordinator::report::model::RunStatus;
use stampede_coordinator::scenario::Arrival;
use stampede_target::{DelaySpec, TargetConfig};
use std::time::Duration;
use support::{InProcessTarget, bench_options};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_run_reports_everything_served_and_only_overdue_requests_as_interrupted() {
    let target = InProcessTarget::start(TargetConfig {
        default_delay: DelaySpec::Fixed(Duration::from_millis(20)),
        ..TargetConfig::default()
    })
    .await;
    let stats = target.stats.clone();
    let stop = CancellationToken::new();
    // Stop once real load has flowed for a while (the target's own count
    // says so), well before the run's 30 s end.
    let watcher = {
        let (stop, stats) = (stop.clone(), stats.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            while stats.served() < 300 {
                tick.tick().await;
            }
            stop.cancel();
        })
    };
    let options = bench_options(
        target.url.clone(),
        20,
        Duration::from_secs(30),
        Some(200.0),
        Arrival::Constant,
    );
    let report = run_bench(options, stop).await.expect("bench runs");
    watcher.await.expect("watcher");
    target.stop().await;

    assert_eq!(report.status, RunStatus::Partial);
    assert_eq!(
        report.notes,
        vec!["the run was stopped before its end".to_owned()]
    );
    assert_eq!(
        report.agents[0].state, "finished",
        "the agent flushed and reported"
    );
    let g = &report.global;
    assert!(
        g.requests >= 300 && g.requests < 6000,
        "{} requests",
        g.requests
    );
    // Requests the target answered but the agent gave up on at the stop are
    // interrupted, never lost; only what was in flight or overdue counts.
    assert!(g.requests <= stats.served());
    assert!(
        stats.served() - g.requests <= g.interrupted,
        "served {} vs reported {}",
        stats.served(),
        g.requests
    );
    assert!(
        g.interrupted <= 20 + 5,
        "{} interrupted: at most the in-flight ones and a few overdue",
        g.interrupted
    );
    // Rates are per second of the time the run lasted.
    assert!(
        g.achieved_rps > 150.0 && g.achieved_rps < 250.0,
        "achieved {} req/s",
        g.achieved_rps
    );
}
