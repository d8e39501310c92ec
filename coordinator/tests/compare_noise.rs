//! `compare` flags a regression only beyond noise: a target 20% slower is
//! flagged; a second run of the same target, whose tail differs by chance,
//! is not.

mod support;

use stampede_coordinator::bench::run_bench;
use stampede_coordinator::report::compare::compare;
use stampede_coordinator::report::model::RunReport;
use stampede_coordinator::scenario::Arrival;
use stampede_target::{DelaySpec, TargetConfig};
use std::time::Duration;
use support::{InProcessTarget, bench_options};
use tokio_util::sync::CancellationToken;

async fn run_against(delay_ms: u64) -> RunReport {
    let target = InProcessTarget::start(TargetConfig {
        default_delay: DelaySpec::Uniform {
            low: Duration::from_millis(delay_ms),
            high: Duration::from_millis(delay_ms * 3 / 2),
        },
        ..TargetConfig::default()
    })
    .await;
    let report = run_bench(
        bench_options(
            target.url.clone(),
            20,
            Duration::from_secs(2),
            Some(250.0),
            Arrival::Constant,
        ),
        CancellationToken::new(),
    )
    .await
    .expect("runs");
    target.stop().await;
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slower_target_is_flagged_and_a_rerun_of_the_same_is_not() {
    // Delays of 40–60 ms: the target's 1 ms timer can shift a whole run by
    // up to a tick, which must stay well under the gate's 3%.
    let base = run_against(40).await;
    let again = run_against(40).await;
    let slower = run_against(48).await;

    // The gate's decision, not the statistic alone: on a shared machine two
    // runs of the same target can differ measurably (the load on the machine
    // moves the timer), and the 3% size threshold keeps such a shift out.
    let same = compare(&base, &again, Some(3.0));
    let shift = same.scopes[0].latency_shift.expect("samples");
    assert!(
        same.regressions.is_empty(),
        "same target flagged: {:?} ({shift:?})",
        same.regressions
    );

    let worse = compare(&base, &slower, Some(3.0));
    let shift = worse.scopes[0].latency_shift.expect("samples");
    assert!(shift.significant && shift.z > 0.0, "20% slower: {shift:?}");
    let flagged: Vec<String> = worse.regressions.iter().map(|r| r.describe()).collect();
    assert!(
        flagged.iter().any(|r| r.starts_with("global p50 +")),
        "{flagged:?}"
    );
}
