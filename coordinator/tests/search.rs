//! Capacity search against the built-in target with a known capacity: real
//! coordinator and agents (in-process), and once through the binary.

mod support;

use stampede_coordinator::report::model::RunStatus;
use stampede_coordinator::scenario::{Scenario, load_with_env};
use stampede_coordinator::search::SearchRun;
use stampede_target::TargetConfig;
use std::collections::BTreeMap;
use std::time::Duration;
use support::{InProcessTarget, search_with_agents};

/// The target's capacity in the three-region test, requests/s.
const CAPACITY: f64 = 500.0;

/// One search at a time: each drives a target, a coordinator and agents in
/// this process, and their timing is what is under test.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn scenario(dir: &tempfile::TempDir, text: &str) -> Scenario {
    let path = dir.path().join("search.yaml");
    std::fs::write(&path, text).expect("write the scenario");
    load_with_env(&path, BTreeMap::new()).unwrap_or_else(|e| panic!("{e}"))
}

/// Every probe ran as planned, in every region.
fn assert_probes_ran(search: &SearchRun, regions: usize) {
    assert!(search.error.is_none(), "{:?}", search.error);
    assert_eq!(search.probes.len(), search.report.probes.len());
    for (run, probe) in search.probes.iter().zip(&search.report.probes) {
        assert_eq!(run.run_id, probe.run_id);
        assert_eq!(run.status, RunStatus::Complete, "{:?}", run.notes);
        assert_eq!(run.regions.len(), regions);
        assert!(
            run.regions.iter().all(|r| r.summary.requests > 0),
            "probe {}",
            probe.index
        );
        // The settling time is excluded: only the steady step is measured.
        assert!(
            run.intervals.iter().any(|i| i.warmup),
            "probe {}",
            probe.index
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finds_the_targets_capacity_across_three_regions() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let target = InProcessTarget::start(TargetConfig {
        capacity: Some(CAPACITY),
        ..TargetConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let s = scenario(
        &dir,
        &format!(
            "name: capacity\ntarget:\n  url: {}\nload:\n  model: open\n  connections: 60\nregions:\n  - name: us-east\n  \
             - name: eu-west\n  - name: ap-south\nstart_delay: 300ms\nagent_wait_timeout: 20s\nsearch:\n  \
             slo: [\"p99 < 50ms\", \"error_rate < 1%\"]\n  min: 300\n  max: 2400\n  step: 2s\n  settle: 1s\n  \
             tolerance: 10%\n  max_schedule_lag: 100ms\n",
            target.url
        ),
    );
    let started = std::time::Instant::now();
    let search = search_with_agents(s, &["us-east", "eu-west", "ap-south"]).await;
    target.stop().await;
    let took = started.elapsed();

    assert_probes_ran(&search, 3);
    let report = &search.report;
    assert_eq!(report.outcome, "found", "{:#?}", report.summary);
    let leg = &report.legs[0];
    let (pass, fail) = (
        leg.sustainable.expect("a level passed"),
        leg.next_failed.expect("a level failed"),
    );
    // The answer brackets the capacity to within the tolerance. (The
    // target's 50 ms burst allowance lets a level a hair above 500 pass a
    // 3 s probe, so the pass may sit just above it.)
    assert!(fail - pass < 0.1 * pass, "{pass}..{fail}");
    assert!(
        (CAPACITY * 0.9..=CAPACITY * 1.03).contains(&pass),
        "sustainable {pass} req/s, capacity {CAPACITY}: {:#?}",
        report.probes
    );
    assert!(fail > CAPACITY * 0.97, "{fail}");
    // Doubling, then bisection: 300, 600, then between them.
    let levels: Vec<f64> = report.probes.iter().map(|p| p.level).collect();
    assert_eq!(&levels[..3], &[300.0, 600.0, 450.0], "{levels:?}");
    let over = &report.probes[1];
    assert_eq!(over.verdict, "fail");
    assert!(over.failed_metrics.contains(&"p99".to_owned()), "{over:?}");
    assert!(over.p99_us > 50_000);
    // Past the capacity the target completes no more than it can.
    assert!(over.achieved_rps < CAPACITY * 1.05, "{over:?}");
    // The plain-language answer names the level, the latency and the next step.
    assert!(
        leg.summary
            .starts_with(&format!("the cluster sustains {pass:.0} req/s at p99 ")),
        "{}",
        leg.summary
    );
    assert!(leg.summary.contains("failed on p99"), "{}", leg.summary);
    let table = stampede_coordinator::search::render::render(report);
    assert!(
        table.contains("fail (p99") && table.contains(&leg.summary),
        "{table}"
    );
    assert!(took < Duration::from_secs(40), "the search took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_region_search_finds_which_region_saturates_first() {
    let _serial = ONE_AT_A_TIME.lock().await;
    // One target, two regions with their own capacities (eu-west the smaller).
    let target = InProcessTarget::start(TargetConfig {
        region_capacities: [("us-east".to_owned(), 650.0), ("eu-west".to_owned(), 330.0)]
            .into_iter()
            .collect(),
        ..TargetConfig::default()
    })
    .await;
    let base = target.url.as_str().trim_end_matches('/');
    let dir = tempfile::tempdir().expect("temp dir");
    let s = scenario(
        &dir,
        &format!(
            "name: per-region\ntarget:\n  url: {base}/\n  region_urls:\n    us-east: {base}/region/us-east/\n    \
             eu-west: {base}/region/eu-west/\nload:\n  model: open\n  connections: 40\nregions:\n  - name: us-east\n  \
             - name: eu-west\nstart_delay: 300ms\nagent_wait_timeout: 20s\nsearch:\n  slo: [\"p99 < 200ms\"]\n  \
             min: 100\n  start: 200\n  max: 1600\n  step: 1s\n  settle: 1s\n  tolerance: 50%\n  mode: per-region\n  \
             base: 50\n  max_schedule_lag: 100ms\n"
        ),
    );
    let search = search_with_agents(s, &["us-east", "eu-west"]).await;
    target.stop().await;

    assert_probes_ran(&search, 2);
    let report = &search.report;
    assert_eq!(report.outcome, "found", "{:#?}", report.summary);
    assert_eq!(report.legs.len(), 2);
    let sustains = |region: &str| {
        let leg = report
            .legs
            .iter()
            .find(|l| l.scope == region)
            .expect("a leg");
        leg.sustainable.expect("a level passed")
    };
    // us-east (650): 200, 400 pass, 800 fails, 600 passes; eu-west (330):
    // 200 passes, 400 fails, 300 passes.
    assert_eq!(sustains("us-east"), 600.0, "{:#?}", report.probes);
    assert_eq!(sustains("eu-west"), 300.0, "{:#?}", report.probes);
    // While one region is searched the other holds its base.
    for (run, probe) in search.probes.iter().zip(&report.probes) {
        let other = run
            .regions
            .iter()
            .find(|r| r.name != probe.scope)
            .expect("two regions");
        assert_eq!(other.summary.target_rps, Some(50.0));
        assert_eq!(probe.total_level, probe.level + 50.0);
    }
    assert_eq!(
        report.summary.last().map(String::as_str),
        Some("eu-west saturates first: it sustains the least, 300 req/s")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_stops_when_the_generator_cannot_produce_the_load() {
    let _serial = ONE_AT_A_TIME.lock().await;
    // Two connections against a 50 ms target carry at most ~39 req/s: past
    // that the open-model schedule falls behind, whatever the target does.
    let target = InProcessTarget::start(TargetConfig {
        default_delay: "50ms".parse().expect("a delay"),
        ..TargetConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let s = scenario(
        &dir,
        &format!(
            "name: tiny-pool\ntarget:\n  url: {}\nload:\n  model: open\n  connections: 2\nregions:\n  - name: local\n\
             start_delay: 300ms\nagent_wait_timeout: 20s\nsearch:\n  slo: [\"p99 < 500ms\"]\n  min: 10\n  max: 640\n  \
             step: 2s\n  settle: 1s\n  max_schedule_lag: 100ms\n",
            target.url
        ),
    );
    let search = search_with_agents(s, &["local"]).await;
    target.stop().await;

    assert_probes_ran(&search, 1);
    let report = &search.report;
    assert_eq!(
        report.outcome, "generator_saturated",
        "{:#?}",
        report.probes
    );
    let last = report.probes.last().expect("probes");
    assert_eq!(last.verdict, "generator_saturated");
    assert!(last.schedule_lag_p99_us > 100_000, "{last:?}");
    assert!(last.level > 39.0 && last.level <= 80.0, "{last:?}");
    let note = last.note.as_deref().expect("why");
    assert!(
        note.contains("the generator fell behind its schedule"),
        "{note}"
    );
    // Below the pool's limit, the levels passed.
    assert!(
        report.probes[..report.probes.len() - 1]
            .iter()
            .all(|p| p.verdict == "pass")
    );
    let leg = &report.legs[0];
    assert_eq!(leg.outcome, "generator_saturated");
    assert!(
        leg.summary
            .contains("the load generator saturated, so this is not the target's limit"),
        "{}",
        leg.summary
    );
}
