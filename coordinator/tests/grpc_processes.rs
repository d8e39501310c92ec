//! gRPC end to end with separate OS processes on loopback:
//! `stampede target --kserve` with a region delay each and an UNAVAILABLE
//! share, one coordinator and three agents in three regions.

mod support;

use stampede_coordinator::report::model::RunReport;
use std::time::Duration;
use support::{
    PLAINTEXT, PLAINTEXT_LOOPBACK_AGENT, listening_on, spawn, spawn_agent, spawn_coordinator,
};

const REGIONS: [(&str, u64); 3] = [("us-east", 10), ("eu-west", 30), ("ap-south", 60)];

#[test]
fn model_infer_with_target_and_agents_as_processes() {
    let mut target = spawn(
        "kserve target",
        &[
            "target",
            "--kserve",
            "--listen",
            "127.0.0.1:0",
            "--grpc-unavailable",
            "0.05",
            "--region-delay",
            "us-east=10ms",
            "--region-delay",
            "eu-west=30ms",
            "--region-delay",
            "ap-south=60ms",
        ],
    );
    let target_addr = target.line_after(
        "KServe v2 gRPC target listening on http://",
        Duration::from_secs(30),
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let scenario = dir.path().join("kserve.yaml");
    let mut yaml = format!(
        "name: kserve\ntarget:\n  url: http://{target_addr}\ngrpc:\n  kserve:\n    model: echo\n    \
         inputs:\n      - {{ name: IN, datatype: INT32, shape: [3], data: [1, 2, 3] }}\n\
         load:\n  model: open\n  rate: 150\n  connections: 30\n  duration: 2s\nregions:\n"
    );
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
    target.stop();
    let report: RunReport =
        serde_json::from_str(&std::fs::read_to_string(&report_path).expect("report written"))
            .expect("report parses");

    // 150 calls/s for 2 s: 300 due, all made; the mock refuses exactly
    // floor(300 × 0.05) of them.
    assert_eq!(report.global.requests, 300);
    assert_eq!(report.global.interrupted, 0);
    assert_eq!(report.global.grpc_codes.get("UNAVAILABLE"), Some(&15));
    assert_eq!(report.global.grpc_codes.get("OK"), Some(&285));
    assert_eq!(report.global.errors.total, 15);
    for (region, ms) in REGIONS {
        let r = report
            .regions
            .iter()
            .find(|r| r.name == region)
            .expect("region in report");
        let (p50, delay) = (r.summary.latency_us.p50, ms * 1000);
        eprintln!(
            "{region}: p50 {p50} µs, p99 {} µs",
            r.summary.latency_us.p99
        );
        // Five processes on a shared machine: allow what scheduling adds
        // (the regions' ranges still do not overlap).
        assert!(
            p50 >= delay * 999 / 1000 && p50 <= delay + delay / 5 + 5_000,
            "{region}: p50 {p50} µs for a {ms} ms delay"
        );
        assert_eq!(r.summary.requests, 100, "{region}");
    }
}
