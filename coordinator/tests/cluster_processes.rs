//! End to end with separate OS processes on loopback: the built-in target,
//! one coordinator and three agents in three regions, each region with its
//! own injected delay.

mod support;

use stampede_coordinator::report::model::RunReport;
use std::time::Duration;
use support::{
    PLAINTEXT, PLAINTEXT_LOOPBACK_AGENT, listening_on, served, spawn_agent, spawn_coordinator,
    start_target,
};

const REGIONS: [(&str, u64); 3] = [("us-east", 5), ("eu-west", 40), ("ap-south", 120)];

#[test]
fn three_regions_as_separate_processes() {
    let (mut target, target_addr) = start_target(&[
        "--region-delay",
        "us-east=5ms",
        "--region-delay",
        "eu-west=40ms",
        "--region-delay",
        "ap-south=120ms",
    ]);
    let dir = tempfile::tempdir().expect("temp dir");
    let scenario = dir.path().join("three-regions.yaml");
    let mut yaml =
        format!("name: three-regions\ntarget:\n  url: http://{target_addr}/\n  region_urls:\n");
    for (region, _) in REGIONS {
        yaml.push_str(&format!(
            "    {region}: http://{target_addr}/region/{region}\n"
        ));
    }
    yaml.push_str("load:\n  model: open\n  rate: 300\n  connections: 90\n  duration: 4s\n  interval: 1s\nregions:\n");
    for (region, _) in REGIONS {
        yaml.push_str(&format!("  - name: {region}\n"));
    }
    yaml.push_str("start_delay: 1s\nagent_wait_timeout: 60s\n");
    std::fs::write(&scenario, yaml).expect("write scenario");
    let report_path = dir.path().join("report.json");

    let mut coordinator = spawn_coordinator(
        "coordinator",
        &scenario,
        PLAINTEXT,
        &["--report", report_path.to_str().expect("utf-8 path")],
    );
    let url = format!("http://{}", listening_on(&coordinator));
    let mut agents: Vec<_> = REGIONS
        .iter()
        .map(|(region, _)| {
            spawn_agent(
                &format!("agent {region}"),
                &url,
                region,
                PLAINTEXT_LOOPBACK_AGENT,
                &[],
            )
        })
        .collect();

    let (status, stderr) = coordinator.wait(Duration::from_secs(90));
    assert!(status.success(), "coordinator failed: {stderr}");
    for agent in &mut agents {
        let (status, stderr) = agent.wait(Duration::from_secs(30));
        assert!(status.success(), "{} failed: {stderr}", agent.name);
    }

    let report: RunReport =
        serde_json::from_str(&std::fs::read_to_string(&report_path).expect("report written"))
            .expect("report parses");
    let stats = served(target_addr);
    target.stop();

    // Nothing lost, nothing double counted.
    let served_total = stats["served"].as_u64().expect("served count");
    let region_sum: u64 = report.regions.iter().map(|r| r.summary.requests).sum();
    assert_eq!(report.global.requests, region_sum);
    assert_eq!(
        report.global.requests, served_total,
        "report vs target's own count"
    );
    assert_eq!(report.global.errors.total, 0);
    assert_eq!(report.global.interrupted, 0);
    // Open model at 300 req/s for 4 s: exactly 1200 requests were due.
    assert_eq!(report.global.requests, 1200);

    for (region, delay_ms) in REGIONS {
        let r = report
            .regions
            .iter()
            .find(|r| r.name == region)
            .expect("region in report");
        assert_eq!(
            r.summary.requests,
            stats["regions"][region].as_u64().expect("per-region count"),
            "{region}"
        );
        let delay_us = delay_ms * 1000;
        let p50 = r.summary.latency_us.p50;
        // HDR precision is 0.1%; the target's timer and loopback add a little.
        assert!(
            p50 as f64 >= delay_us as f64 * 0.999 && p50 <= delay_us + 5_000,
            "{region}: p50 {p50} µs vs injected {delay_us} µs"
        );
    }
    assert_eq!(report.agents.len(), 3);
    assert!(report.agents.iter().all(|a| a.state == "finished"));
    assert!(report.intervals.len() >= 4);
    let interval_sum: u64 = report.intervals.iter().map(|i| i.global.requests).sum();
    assert_eq!(interval_sum, report.global.requests);
}
