//! Thresholds gate a run: the coordinator process exits 99 and names the
//! failed threshold, while the report records every verdict.

mod support;

use stampede_coordinator::report::model::RunReport;
use std::time::Duration;
use support::{
    PLAINTEXT, PLAINTEXT_LOOPBACK_AGENT, listening_on, spawn_agent, spawn_coordinator, start_target,
};

#[test]
fn a_failed_threshold_fails_the_coordinator_and_says_which() {
    let (mut target, target_addr) = start_target(&[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let scenario = dir.path().join("gated.yaml");
    std::fs::write(
        &scenario,
        format!(
            r#"name: gated
target:
  url: http://{target_addr}/
load:
  model: open
  rate: 100
  duration: 2s
regions:
  - name: local
start_delay: 500ms
thresholds:
  - p99 < 5s
  - error_rate < 1%
  - "local: rps > 100000"
  - "regions: requests >= 1"
"#
        ),
    )
    .expect("write scenario");
    let report_path = dir.path().join("report.json");
    let mut coordinator = spawn_coordinator(
        "coordinator",
        &scenario,
        PLAINTEXT,
        &["--report", report_path.to_str().expect("utf-8 path")],
    );
    let url = format!("http://{}", listening_on(&coordinator));
    let mut agent = spawn_agent("agent", &url, "local", PLAINTEXT_LOOPBACK_AGENT, &[]);
    let (status, stderr) = coordinator.wait(Duration::from_secs(60));
    let _ = agent.wait(Duration::from_secs(30));
    target.stop();

    assert_eq!(status.code(), Some(99), "stderr: {stderr}");
    assert!(
        stderr.contains("1 threshold(s) failed: local: rps > 100000 (was 100.0)"),
        "stderr: {stderr}"
    );
    let report: RunReport =
        serde_json::from_str(&std::fs::read_to_string(&report_path).expect("report written"))
            .expect("report parses");
    let verdicts: Vec<(&str, &str, bool)> = report
        .thresholds
        .iter()
        .map(|t| (t.threshold.as_str(), t.scope.as_str(), t.passed))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("p99 < 5s", "global", true),
            ("error_rate < 1%", "global", true),
            ("local: rps > 100000", "local", false),
            ("regions: requests >= 1", "local", true),
        ]
    );
    assert_eq!(report.thresholds[2].actual, Some(100.0));
}
