//! `repeat: N`: one coordinator process runs the scenario N times with the
//! same agents (started with `--once`, they stay for the whole series),
//! writes each run's report and a summary with mean ± standard deviation.

mod support;

use stampede_coordinator::report::model::RunReport;
use stampede_coordinator::report::series::SeriesSummary;
use std::time::Duration;
use support::{
    PLAINTEXT, PLAINTEXT_LOOPBACK_AGENT, listening_on, served, spawn_agent, spawn_coordinator,
    start_target,
};

#[test]
fn a_series_runs_every_repetition_with_the_same_agents() {
    let (mut target, target_addr) = start_target(&[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let scenario = dir.path().join("series.yaml");
    std::fs::write(
        &scenario,
        format!(
            "name: series\ntarget:\n  url: http://{target_addr}/\nload:\n  model: open\n  rate: 100\n  duration: 1s\nregions:\n  - name: us-east\n  - name: eu-west\nstart_delay: 300ms\nrepeat: 3\n"
        ),
    )
    .expect("write scenario");
    let report = dir.path().join("r.json");
    let mut coordinator = spawn_coordinator(
        "coordinator",
        &scenario,
        PLAINTEXT,
        &["--report", report.to_str().expect("utf-8 path")],
    );
    let url = format!("http://{}", listening_on(&coordinator));
    let mut agents = [
        spawn_agent(
            "agent us-east",
            &url,
            "us-east",
            PLAINTEXT_LOOPBACK_AGENT,
            &[],
        ),
        spawn_agent(
            "agent eu-west",
            &url,
            "eu-west",
            PLAINTEXT_LOOPBACK_AGENT,
            &[],
        ),
    ];
    let (status, stderr) = coordinator.wait(Duration::from_secs(60));
    assert!(status.success(), "coordinator failed: {stderr}");
    let stdout = coordinator.remaining_stdout().join("\n");
    for agent in &mut agents {
        let (status, stderr) = agent.wait(Duration::from_secs(30));
        assert!(status.success(), "{} failed: {stderr}", agent.name);
    }
    let total = served(target_addr)["served"]
        .as_u64()
        .expect("served count");
    target.stop();

    let read = |name: &str| -> String {
        std::fs::read_to_string(dir.path().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let runs: Vec<RunReport> = (1..=3)
        .map(|i| serde_json::from_str(&read(&format!("r-{i}.json"))).expect("report parses"))
        .collect();
    let mut ids: Vec<&str> = runs.iter().map(|r| r.run_id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 3, "each run has its own id");
    for (i, run) in runs.iter().enumerate() {
        // 100 req/s for 1 s, every time, from the same two agents.
        assert_eq!(run.global.requests, 100, "run {}", i + 1);
        let series = run.series.as_ref().expect("series info");
        assert_eq!((series.run, series.runs), (i as u32 + 1, 3));
        assert_eq!(series.id, runs[0].series.as_ref().expect("series").id);
        let mut agent_ids: Vec<&str> = run.agents.iter().map(|a| a.id.as_str()).collect();
        let mut first: Vec<&str> = runs[0].agents.iter().map(|a| a.id.as_str()).collect();
        agent_ids.sort();
        first.sort();
        assert_eq!(agent_ids, first, "the same agents ran every repetition");
    }
    assert_eq!(total, 300);

    let summary: SeriesSummary = serde_json::from_str(&read("r-series.json")).expect("summary");
    assert_eq!(summary.runs.len(), 3);
    assert_eq!(summary.global.achieved_rps.values, [100.0, 100.0, 100.0]);
    assert_eq!(summary.global.achieved_rps.stdev, 0.0);
    assert_eq!(summary.regions.len(), 2);
    let p99: Vec<f64> = runs
        .iter()
        .map(|r| r.global.latency_us.p99 as f64)
        .collect();
    assert_eq!(summary.global.p99_us.values, p99);
    assert!(
        stdout.contains("3 runs; each figure is mean ± standard deviation"),
        "{stdout}"
    );
}
