//! Stages end to end: agents in several regions follow the cluster's load
//! profile (warm-up, ramp, steps), the warm-up is left out of the totals,
//! and each phase's figures come from its own intervals.

mod support;

use stampede_coordinator::scenario::{Arrival, Load, Model, Phase, PhaseKind, RegionSpec, Share};
use stampede_target::{DelaySpec, TargetConfig};
use std::time::Duration;
use support::{InProcessTarget, one_region_scenario, run_with_agents};

fn phase(kind: PhaseKind, stage: usize, secs: u64, from: f64, to: f64) -> Phase {
    Phase {
        kind,
        stage,
        duration: Duration::from_secs(secs),
        from,
        to,
    }
}

fn within(actual: u64, expected: u64, slack: u64) -> bool {
    actual.abs_diff(expected) <= slack
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_model_run_follows_its_stages_across_regions() {
    let target = InProcessTarget::start(TargetConfig::default()).await;
    // Warm-up 1 s at 150/s, ramp 150 → 450/s over 2 s, steps 300 and 600/s.
    let phases = vec![
        phase(PhaseKind::Warmup, 0, 1, 150.0, 150.0),
        phase(PhaseKind::Ramp, 1, 2, 150.0, 450.0),
        phase(PhaseKind::Step, 2, 1, 300.0, 300.0),
        phase(PhaseKind::Step, 2, 1, 600.0, 600.0),
    ];
    let mut load = Load::constant(
        Model::Open {
            rate: 500.0,
            arrival: Arrival::Constant,
        },
        12,
        Duration::from_secs(5),
    );
    load.phases = phases;
    load.staged = true;
    let mut scenario = one_region_scenario("stages-open", target.url.clone(), load);
    scenario.regions = ["us-east", "eu-west", "ap-south"]
        .iter()
        .map(|name| RegionSpec {
            name: name.to_string(),
            agents: 1,
            share: Share::Weight(1.0),
        })
        .collect();
    let report = run_with_agents(scenario, &["us-east", "eu-west", "ap-south"]).await;
    let served = target.stats.served();
    target.stop().await;

    // Everything sent was answered: 150 + 600 + 300 + 600 requests.
    assert_eq!(served, 1650);
    let warmup = &report.intervals[0];
    assert!(warmup.warmup && !report.intervals[1].warmup);
    assert_eq!(report.scenario.warmup_s, 1.0);
    // The totals leave the warm-up out (a request due just before its end
    // may complete just after, in the first measured interval).
    assert_eq!(report.global.requests + warmup.global.requests, served);
    assert!(
        within(report.global.requests, 1500, 3),
        "{}",
        report.global.requests
    );
    // Every interval after the first follows its stage within 2%: the
    // ramp's N(t) = 150 t + 75 t² gives 225 then 375, then the steps.
    for (interval, expected) in report
        .intervals
        .iter()
        .zip([150u64, 225, 375, 300, 600])
        .skip(1)
    {
        let actual = interval.global.requests;
        assert!(
            actual.abs_diff(expected) as f64 <= expected as f64 * 0.02,
            "interval {}: {actual} requests, expected {expected}",
            interval.index
        );
    }
    // Each phase's own figures, per region too.
    let names: Vec<&str> = report.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["warmup 150", "ramp 150→450", "step 300", "step 600"]
    );
    for (stage, expected) in report.stages.iter().zip([150u64, 600, 300, 600]) {
        assert!(
            within(stage.global.requests, expected, 3),
            "{}: {} requests",
            stage.name,
            stage.global.requests
        );
        let regional: u64 = stage.regions.values().map(|r| r.requests).sum();
        assert_eq!(regional, stage.global.requests, "{}", stage.name);
        for (region, figures) in &stage.regions {
            assert!(
                within(figures.requests, expected / 3, 3),
                "{}: {region} {}",
                stage.name,
                figures.requests
            );
        }
    }
    assert!(report.stages[0].warmup && !report.stages[1].warmup);
    let step = &report.stages[3].global;
    assert_eq!(step.target_rps, Some(600.0));
    assert!(
        within(step.achieved_rps as u64, 600, 3),
        "{}",
        step.achieved_rps
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_model_step_sweep_changes_the_concurrency() {
    // Every response takes 20 ms, so each busy connection makes ~50 req/s.
    let target = InProcessTarget::start(TargetConfig {
        default_delay: DelaySpec::Fixed(Duration::from_millis(20)),
        ..TargetConfig::default()
    })
    .await;
    let mut load = Load::constant(Model::Closed, 6, Duration::from_secs(4));
    load.phases = vec![
        phase(PhaseKind::Step, 0, 2, 2.0, 2.0),
        phase(PhaseKind::Step, 0, 2, 6.0, 6.0),
    ];
    load.staged = true;
    load.graceful_stop = Duration::from_secs(2);
    let mut scenario = one_region_scenario("stages-closed", target.url.clone(), load);
    scenario.regions[0].agents = 2;
    let report = run_with_agents(scenario, &["local", "local"]).await;
    let served = target.stats.served();
    target.stop().await;

    assert_eq!(report.global.requests, served);
    let (low, high) = (
        report.stages[0].global.requests,
        report.stages[1].global.requests,
    );
    // 2 connections × 2 s × 50/s = 200; 6 connections: 600. Timers and
    // scheduling only ever lengthen a request, so allow some loss.
    assert!(
        (150..=202).contains(&low),
        "{low} requests at 2 connections"
    );
    assert!(
        (450..=606).contains(&high),
        "{high} requests at 6 connections"
    );
    let ratio = high as f64 / low as f64;
    assert!((2.6..=3.3).contains(&ratio), "ratio {ratio}");
}
