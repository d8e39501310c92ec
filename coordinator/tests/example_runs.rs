//! Every example scenario in deploy/scenarios/ also runs: shrunk to a few
//! seconds and a few hundred requests per second, aimed at an in-process
//! target, with one in-process agent per agent the example expects.

mod support;

use stampede_coordinator::report::model::RunReport;
use stampede_coordinator::report::model::RunStatus;
use stampede_coordinator::scenario::stages::LevelUnit;
use stampede_coordinator::scenario::{Model, Scenario, SearchMode, Share, load_with_env};
use stampede_target::TargetConfig;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use support::{InProcessKserve, InProcessTarget, run_with_agents, search_with_agents};

/// Same shape, smaller: every phase 1 s, levels scaled so the peak is 300
/// req/s (20 for model serving, whose answers take a while; open model) or
/// at most 8 connections (closed), the target replaced. A capacity search
/// keeps its SLO and mode but probes one low level per leg (no settling, a
/// 1 s step), so each leg ends at the top of its range.
fn shrink(mut s: Scenario, url: &url::Url) -> Scenario {
    let top = if s.llm.is_some() { 20.0 } else { 300.0 };
    if let Some(search) = &mut s.search {
        // Closed model: `min` connections, already checked to be enough.
        let level = match search.unit {
            LevelUnit::Rate => 50.0,
            LevelUnit::Connections => search.min,
        };
        (search.min, search.max, search.start) = (level, level, level);
        if let (SearchMode::PerRegion { base }, LevelUnit::Rate) = (&mut search.mode, search.unit) {
            *base = 25.0;
        }
        search.step = Duration::from_secs(1);
        search.settle = Duration::ZERO;
        // A loaded test machine is no place to judge the generator.
        search.max_schedule_lag = Duration::from_secs(1);
    }
    let peak = s
        .load
        .phases
        .iter()
        .map(|p| p.from.max(p.to))
        .fold(0.0, f64::max);
    let agents = f64::from(s.total_agents());
    let scale = |x: f64| match s.load.model {
        Model::Open { .. } => x * top / peak,
        Model::Closed => (x * 8.0 / peak).round().max(agents.min(x)),
    };
    let mut phases = s.load.phases.clone();
    for p in &mut phases {
        p.duration = Duration::from_secs(1);
        p.from = scale(p.from);
        p.to = scale(p.to);
    }
    s.load.duration = Duration::from_secs(phases.len() as u64);
    s.load.interval = Duration::from_secs(1);
    if let Model::Closed = s.load.model {
        s.load.connections = phases
            .iter()
            .map(|p| p.from.max(p.to) as u32)
            .max()
            .unwrap_or(1);
    }
    if let Model::Open { rate, arrival } = s.load.model {
        s.load.model = Model::Open {
            rate: rate * top / peak,
            arrival,
        };
        s.load.connections = s.load.connections.min(40).max(s.total_agents());
    }
    s.load.phases = phases;
    for region in &mut s.regions {
        if let Share::Rate(rate) = region.share {
            region.share = Share::Rate(rate * top / peak);
        }
    }
    s.load.think_time = s
        .load
        .think_time
        .map(|(a, b)| (a.min(b), b.min(Duration::from_millis(10))));
    s.target.url = url.clone();
    s.target.region_urls.clear();
    s.start_delay = Duration::from_millis(300);
    s.agent_wait_timeout = Duration::from_secs(20);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_examples_run() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/scenarios");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("deploy/scenarios exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "toml")
            )
        })
        .collect();
    paths.sort();
    assert!(paths.len() >= 4, "examples: {paths:?}");
    for path in paths {
        let original = load_with_env(&path, BTreeMap::new()).unwrap_or_else(|e| panic!("{e}"));
        if original.grpc.is_some() {
            run_grpc_example(original, &path).await;
            continue;
        }
        let target = InProcessTarget::start(TargetConfig::default()).await;
        let scenario = shrink(original, &target.url);
        let phases = scenario.load.phases.len();
        let staged = scenario.load.staged;
        let regions: Vec<String> = scenario
            .regions
            .iter()
            .flat_map(|r| std::iter::repeat_n(r.name.clone(), r.agents as usize))
            .collect();
        let regions: Vec<&str> = regions.iter().map(String::as_str).collect();
        let name = path.display();
        if scenario.search.is_some() {
            let search = search_with_agents(scenario, &regions).await;
            let served = target.stats.served();
            target.stop().await;
            assert!(search.error.is_none(), "{name}: {:?}", search.error);
            assert!(
                search.report.legs.iter().all(|l| l.outcome == "ceiling"),
                "{name}: {:#?}",
                search.report.summary
            );
            let sent: u64 = search.probes.iter().map(requests_with_warmup).sum();
            assert_eq!(sent, served, "{name}");
            continue;
        }
        let report = run_with_agents(scenario, &regions).await;
        let served = target.stats.served();
        target.stop().await;

        assert_eq!(
            report.status,
            RunStatus::Complete,
            "{name}: {:?}",
            report.notes
        );
        assert!(report.global.requests > 0, "{name}");
        assert_eq!(report.global.errors.total, 0, "{name}");
        assert_target_served_what_was_counted(&report, served, &name.to_string());
        if staged {
            assert_eq!(report.stages.len(), phases, "{name}");
        }
    }
}

/// A gRPC example runs against the in-process KServe mock.
async fn run_grpc_example(original: Scenario, path: &Path) {
    let mock = InProcessKserve::start(InProcessKserve::config()).await;
    let scenario = shrink(original, &mock.url);
    let regions: Vec<String> = scenario
        .regions
        .iter()
        .flat_map(|r| std::iter::repeat_n(r.name.clone(), r.agents as usize))
        .collect();
    let regions: Vec<&str> = regions.iter().map(String::as_str).collect();
    let report = run_with_agents(scenario, &regions).await;
    let served = mock.stats.served_total();
    mock.stop().await;
    let name = path.display();
    assert_eq!(
        report.status,
        RunStatus::Complete,
        "{name}: {:?}",
        report.notes
    );
    assert!(report.global.requests > 0, "{name}");
    assert_eq!(report.global.errors.total, 0, "{name}");
    assert_target_served_what_was_counted(&report, served, &name.to_string());
}

/// Nothing lost, nothing counted twice: the target served every request
/// the run completed, and at most those plus the ones it counted as
/// interrupted (a request sent but cut off by the hard stop may still have
/// been served; on a loaded machine the generator falls behind and some are).
fn assert_target_served_what_was_counted(report: &RunReport, served: u64, name: &str) {
    let completed = requests_with_warmup(report);
    let interrupted = report.global.interrupted;
    assert!(
        completed <= served && served <= completed + interrupted,
        "{name}: the target served {served}, the report has {completed} completed and {interrupted} interrupted"
    );
    if interrupted == 0 {
        assert_eq!(completed, served, "{name}");
    }
}

/// Every request a run completed, its warm-up's included.
fn requests_with_warmup(report: &RunReport) -> u64 {
    let warmup: u64 = report
        .intervals
        .iter()
        .filter(|i| i.warmup)
        .map(|i| i.global.requests)
        .sum();
    report.global.requests + warmup
}
