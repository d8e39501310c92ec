//! Bad input is refused before any load is sent, with an error that names
//! the file, the field and why.

mod support;

use std::time::Duration;
use support::{
    PLAINTEXT, PLAINTEXT_LOOPBACK_AGENT, listening_on, served, spawn_agent, spawn_coordinator,
    start_target,
};

fn scenario(target: std::net::SocketAddr) -> String {
    format!(
        "target:\n  url: http://{target}/\n  region_urls:\n    eu-west: http://{target}/region/eu-west\n\
         load:\n  model: open\n  rate: 100\n  duration: 2s\n\
         regions:\n  - name: us-east\n  - name: eu-west\n"
    )
}

#[test]
fn malformed_scenarios_exit_non_zero_before_sending_load() {
    let (_target, addr) = start_target(&[]);
    let good = scenario(addr);
    let dir = tempfile::tempdir().expect("temp dir");
    let cases = [
        (
            "unknown-field",
            "load:\n",
            "load:\n  rampup: 5s\n",
            "load.rampup",
            "unknown field `rampup`",
        ),
        (
            "negative-rate",
            "rate: 100",
            "rate: -100",
            "load.rate",
            "must be a positive number",
        ),
        (
            "unknown-region",
            "    eu-west: http",
            "    eu-wset: http",
            "target.region_urls.eu-wset",
            "unknown region \"eu-wset\"",
        ),
    ];
    for (name, from, to, field, why) in cases {
        let path = dir.path().join(format!("{name}.yaml"));
        assert!(good.contains(from));
        std::fs::write(&path, good.replacen(from, to, 1)).expect("write scenario");
        let mut coordinator = spawn_coordinator(name, &path, PLAINTEXT, &[]);
        let (status, stderr) = coordinator.wait(Duration::from_secs(30));
        assert!(!status.success(), "{name}: must fail");
        let file = path.display().to_string();
        for part in [file.as_str(), field, why] {
            assert!(
                stderr.contains(part),
                "{name}: expected {part:?} in the error, got:\n{stderr}"
            );
        }
    }
    assert_eq!(served(addr)["served"], 0, "no load may be sent");
}

#[test]
fn an_agent_from_an_unlisted_region_is_refused_with_the_reason() {
    let (_target, addr) = start_target(&[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("scenario.yaml");
    std::fs::write(&path, scenario(addr)).expect("write scenario");
    let coordinator = spawn_coordinator("coordinator", &path, PLAINTEXT, &[]);
    let url = format!("http://{}", listening_on(&coordinator));
    let mut agent = spawn_agent("agent", &url, "mars-1", PLAINTEXT_LOOPBACK_AGENT, &[]);
    let (status, stderr) = agent.wait(Duration::from_secs(30));
    assert!(!status.success());
    assert!(
        stderr.contains("region \"mars-1\" is not in scenario"),
        "{stderr}"
    );
    assert_eq!(served(addr)["served"], 0);
}

#[test]
fn missing_agents_time_out_naming_the_regions() {
    let (_target, addr) = start_target(&[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("scenario.yaml");
    std::fs::write(&path, scenario(addr) + "agent_wait_timeout: 4s\n").expect("write scenario");
    let mut coordinator = spawn_coordinator("coordinator", &path, PLAINTEXT, &[]);
    let url = format!("http://{}", listening_on(&coordinator));
    // One of the two regions shows up; eu-west never does.
    let _agent = spawn_agent("agent", &url, "us-east", PLAINTEXT_LOOPBACK_AGENT, &[]);
    let (status, stderr) = coordinator.wait(Duration::from_secs(30));
    assert!(!status.success());
    assert!(stderr.contains("waiting for agents"), "{stderr}");
    assert!(stderr.contains("region eu-west has 0 of 1"), "{stderr}");
    assert!(
        !stderr.contains("region us-east has"),
        "us-east was present: {stderr}"
    );
    assert_eq!(served(addr)["served"], 0);
}
