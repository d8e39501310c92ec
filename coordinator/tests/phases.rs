//! Request phase timings end to end: in-process coordinator and agents in
//! two regions against the built-in target over TLS, with a new connection
//! for every request (`keep_alive: false`), so every request pays a TCP
//! connect and a TLS handshake. The phases must add up to the latency, the
//! connections the report counts must be the ones the target accepted, and
//! each agent's DNS lookups (the first, then every `dns_refresh`) must be
//! there; a target given as an IP address has none.

mod support;

use stampede_coordinator::report::model::{PhaseSummary, ScopeSummary};
use stampede_coordinator::scenario::load_with_env;
use stampede_target::TargetConfig;
use std::collections::BTreeMap;
use std::time::Duration;
use support::InProcessTarget;
use support::certs::TestCa;

const DELAY_MS: u64 = 20;
const CONNECTIONS: u64 = 4;

/// Σ of a phase over its samples, µs.
fn total(l: &stampede_coordinator::report::model::LatencySummary) -> f64 {
    l.mean * l.count as f64
}

/// Connect + TLS + wait + transfer against the latency, over one scope.
fn assert_phases_add_up(name: &str, s: &ScopeSummary, p: &PhaseSummary) {
    assert_eq!(s.errors.total, 0, "{name}: {:?}", s.errors);
    assert!(s.requests >= 20, "{name}: {} requests", s.requests);
    // Every request had a connection of its own: opened for it, or (the
    // first of each connection slot) before the start. Connections opened
    // for requests the end of the run interrupted add a few.
    assert!(
        p.new_connections >= s.requests
            && p.new_connections <= s.requests + s.interrupted + CONNECTIONS,
        "{name}: {} connections for {} requests",
        p.new_connections,
        s.requests
    );
    assert_eq!(p.connect_us.count, p.new_connections, "{name}");
    assert_eq!(
        p.tls_us.count, p.new_connections,
        "{name}: a handshake each"
    );
    assert_eq!(p.wait_us.count, s.requests, "{name}: a wait per response");
    assert_eq!(p.transfer_us.count, s.requests, "{name}");
    assert!(p.tls_us.p50 > 0 && p.connect_us.p50 > 0, "{name}");
    // The target's delay is in the wait, not in the handshake.
    let delay_us = DELAY_MS * 1_000;
    assert!(
        p.wait_us.p50 >= delay_us && p.wait_us.p50 < delay_us + 10_000,
        "{name}: wait p50 {}µs for a {DELAY_MS} ms target",
        p.wait_us.p50
    );
    assert!(p.tls_us.p50 < delay_us, "{name}: TLS p50 {}", p.tls_us.p50);
    // The phases of a request on a new connection are its whole latency.
    // Σ over all requests (the connections opened before the start are in
    // the phases but in no latency: a few handshakes over hundreds of
    // requests).
    let phases =
        total(&p.connect_us) + total(&p.tls_us) + total(&p.wait_us) + total(&p.transfer_us);
    let latency = total(&s.latency_us);
    let per_request = (phases - latency) / s.requests as f64;
    assert!(
        per_request.abs() <= 0.05 * s.latency_us.mean + 500.0,
        "{name}: phases add up to {:.0}µs a request against a latency of {:.0}µs",
        phases / s.requests as f64,
        s.latency_us.mean
    );
    assert!(
        p.requests_per_connection.is_some_and(|r| r <= 1.0),
        "{name}: {:?}",
        p.requests_per_connection
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phase_timings_add_up_on_a_tls_endpoint_with_a_connection_per_request() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = TestCa::new(dir.path(), "target");
    let target = support::certs::tls_target(&ca, false, Duration::from_millis(DELAY_MS)).await;
    // A name, so agents look it up (an IP address is not): `localhost`,
    // which the default dns_policy (prefer_ipv4) takes to 127.0.0.1 where
    // the target listens, even on a host where it also has ::1.
    let yaml = format!(
        r#"
target:
  url: https://localhost:{port}/
  keep_alive: false
  dns_refresh: 1s
  tls:
    ca: {ca}
load:
  model: closed
  connections: {CONNECTIONS}
  duration: 3s
regions:
  - name: near
  - name: far
start_delay: 300ms
"#,
        port = target.url.port().expect("port"),
        ca = ca.ca(),
    );
    let path = dir.path().join("phases.yaml");
    std::fs::write(&path, yaml).expect("write scenario");
    let scenario = load_with_env(&path, BTreeMap::new()).expect("valid scenario");
    let report = support::run_with_agents(scenario, &["near", "far"]).await;

    support::assert_schema_valid(&report);
    assert!(!report.scenario.keep_alive);
    assert_eq!(report.scenario.dns_refresh_s, Some(1.0));
    assert_eq!(report.scenario.dns_policy.as_deref(), Some("prefer_ipv4"));
    let global = report.global.phases.as_ref().expect("global phases");
    assert_phases_add_up("global", &report.global, global);
    for region in &report.regions {
        let p = region.summary.phases.as_ref().expect("region phases");
        assert_phases_add_up(&region.name, &region.summary, p);
        // Each agent resolved the name itself, then again every second.
        assert!(
            p.dns_us.count >= 2,
            "{}: {} lookups in 3 s with a 1 s refresh",
            region.name,
            p.dns_us.count
        );
        // One address, and every connection went there.
        let port = target.url.port().expect("port");
        assert_eq!(p.addresses.len(), 1, "{:?}", p.addresses);
        assert_eq!(p.addresses[0].address, format!("127.0.0.1:{port}"));
        assert_eq!(p.addresses[0].connections, p.new_connections);
    }
    // The report's connections are the ones the target accepted.
    let accepted = target.stats.connections_accepted();
    assert!(
        accepted >= global.new_connections && accepted <= global.new_connections + 2 * CONNECTIONS,
        "target accepted {accepted}, report counts {}",
        global.new_connections
    );
    // Per interval too: the series shows the connection rate.
    let series_connections: f64 = report
        .intervals
        .iter()
        .map(|i| i.global.new_connections_per_second * (i.end_s - i.start_s))
        .sum();
    assert!(
        (series_connections - global.new_connections as f64).abs() < 1.0,
        "intervals add up to {series_connections} connections, the run to {}",
        global.new_connections
    );
    target.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_connects_once_per_connection() {
    let target = InProcessTarget::start(TargetConfig::default()).await;
    let yaml = format!(
        r#"
target:
  url: {url}
load:
  model: closed
  connections: {CONNECTIONS}
  duration: 1s
regions:
  - name: local
start_delay: 300ms
"#,
        url = target.url,
    );
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("keepalive.yaml");
    std::fs::write(&path, yaml).expect("write scenario");
    let scenario = load_with_env(&path, BTreeMap::new()).expect("valid scenario");
    let report = support::run_with_agents(scenario, &["local"]).await;
    let p = report.global.phases.as_ref().expect("phases");
    assert!(report.global.requests > 100, "{}", report.global.requests);
    assert_eq!(p.new_connections, CONNECTIONS, "one connection per slot");
    assert_eq!(target.stats.connections_accepted(), CONNECTIONS);
    assert_eq!(p.tls_us.count, 0, "plain http has no TLS phase");
    assert_eq!(p.wait_us.count, report.global.requests);
    assert_eq!(
        p.dns_us.count, 0,
        "{}: an IP address is not looked up",
        target.url
    );
    assert!(p.requests_per_connection.is_some_and(|r| r > 25.0));
    target.stop().await;
}
