//! `stampede coordinator` running a capacity search: the exit code says
//! whether a sustainable level was found (0), the SLO fails even at the
//! lowest level (99), or the generator could not produce the load (1).

mod support;

use std::path::Path;
use std::time::Duration;
use support::{
    PLAINTEXT, PLAINTEXT_LOOPBACK_AGENT, listening_on, spawn_agent, spawn_coordinator, start_target,
};

/// One search at a time: their timing is what is under test.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs the search in `scenario` with one agent; returns the exit code,
/// stdout, stderr and the search report.
fn search(dir: &Path, scenario: &str) -> (Option<i32>, String, String, serde_json::Value) {
    let path = dir.join("search.yaml");
    std::fs::write(&path, scenario).expect("write scenario");
    let report = dir.join("probe.json");
    let html = dir.join("search.html");
    let mut coordinator = spawn_coordinator(
        "coordinator",
        &path,
        PLAINTEXT,
        &[
            "--report",
            report.to_str().expect("utf-8 path"),
            "--html",
            html.to_str().expect("utf-8 path"),
        ],
    );
    let url = format!("http://{}", listening_on(&coordinator));
    let mut agent = spawn_agent("agent", &url, "local", PLAINTEXT_LOOPBACK_AGENT, &[]);
    let (status, stderr) = coordinator.wait(Duration::from_secs(60));
    let (agent_status, _) = agent.wait(Duration::from_secs(30));
    assert!(
        agent_status.success(),
        "the agent leaves when the search ends"
    );
    let stdout = coordinator.remaining_stdout().join("\n");
    let search =
        std::fs::read_to_string(dir.join("probe-search.json")).expect("search report written");
    assert!(
        dir.join("probe-1.json").exists(),
        "the first probe's report"
    );
    let search = serde_json::from_str(&search).expect("search report parses");
    (status.code(), stdout, stderr, search)
}

#[test]
fn an_slo_violated_at_the_lowest_level_exits_99_and_says_so() {
    let _serial = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // Every response takes 20 ms: a p99 under 5 ms fails at any load.
    let (mut target, target_addr) = start_target(&["--delay", "20ms"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let (code, stdout, stderr, report) = search(
        dir.path(),
        &format!(
            "name: too-slow\ntarget:\n  url: http://{target_addr}/\nload:\n  model: open\nregions:\n  - name: local\n\
             start_delay: 300ms\nsearch:\n  slo: [\"p99 < 5ms\"]\n  min: 50\n  max: 400\n  step: 1s\n  settle: 1s\n  \
             max_schedule_lag: 1s\n"
        ),
    );
    target.stop();

    assert_eq!(code, Some(99), "stdout: {stdout}\nstderr: {stderr}");
    let said = "the SLO is already violated at the lowest level: the cluster at 50 req/s failed p99 < 5ms (was ";
    assert!(stdout.contains(said), "stdout: {stdout}");
    assert!(stderr.contains(said), "stderr: {stderr}");
    assert!(stdout.contains("search report: "), "stdout: {stdout}");
    assert_eq!(report["outcome"], "slo_violated_at_min");
    // One probe was enough to know.
    let probes = report["probes"].as_array().expect("probes");
    assert_eq!(probes.len(), 1, "{probes:?}");
    assert_eq!(probes[0]["verdict"], "fail");
    assert_eq!(probes[0]["level"], 50.0);
    assert!(probes[0]["p99_us"].as_u64().expect("p99") > 20_000);
    assert_eq!(report["legs"][0]["sustainable"], serde_json::Value::Null);
}

#[test]
fn a_saturated_generator_exits_1_and_says_so() {
    let _serial = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // One connection to a 100 ms target carries about 10 req/s: the lowest
    // level, 20 req/s, already leaves the schedule behind.
    let (mut target, target_addr) = start_target(&["--delay", "100ms"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let (code, stdout, stderr, report) = search(
        dir.path(),
        &format!(
            "name: one-connection\ntarget:\n  url: http://{target_addr}/\nload:\n  model: open\n  connections: 1\n\
             regions:\n  - name: local\nstart_delay: 300ms\nsearch:\n  slo: [\"p99 < 10s\"]\n  min: 20\n  max: 400\n  \
             step: 1s\n  settle: 1s\n  max_schedule_lag: 100ms\n"
        ),
    );
    target.stop();

    assert_eq!(code, Some(1), "stdout: {stdout}\nstderr: {stderr}");
    let said = "the search of the cluster stopped at 20 req/s: the load generator saturated, so this is not the \
                target's limit (the generator fell behind its schedule";
    assert!(stderr.contains(said), "stderr: {stderr}");
    assert!(stdout.contains("generator saturated"), "stdout: {stdout}");
    assert_eq!(report["outcome"], "generator_saturated");
    assert_eq!(report["probes"][0]["verdict"], "generator_saturated");
}
