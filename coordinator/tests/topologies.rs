//! Multi-region topologies against real targets on loopback: three agent
//! regions × three endpoints (each endpoint a built-in target with its own
//! delay), and a failover drill that moves one region's traffic mid-run;
//! then the same for gRPC, each endpoint a KServe mock with its own delay.

mod support;

use stampede_coordinator::report::model::RunReport;
use stampede_coordinator::scenario::load_with_env;
use stampede_target::{DelaySpec, TargetConfig};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use support::{InProcessKserve, InProcessTarget, run_with_agents};

async fn target(delay_ms: u64) -> InProcessTarget {
    InProcessTarget::start(TargetConfig {
        default_delay: DelaySpec::Fixed(Duration::from_millis(delay_ms)),
        ..TargetConfig::default()
    })
    .await
}

async fn run_in(dir: &Path, yaml: &str, regions: &[&str]) -> RunReport {
    let path = dir.join("topology.yaml");
    std::fs::write(&path, yaml).expect("write scenario");
    let scenario = load_with_env(&path, BTreeMap::new()).unwrap_or_else(|e| panic!("{e}"));
    run_with_agents(scenario, regions).await
}

/// HDR precision (0.1%) plus what loopback, the timer and a loaded 2-CPU
/// machine add (a median 5 ms late was seen with a build running
/// alongside); the endpoints' delays are further apart than that.
fn near(p50_us: u64, delay_ms: u64) -> bool {
    let delay = delay_ms * 1000;
    p50_us as f64 >= delay as f64 * 0.999 && p50_us <= delay + 10_000
}

/// Every cell's p50 is its endpoint's delay and it has `per_cell` requests;
/// rows add up to the regions' figures, columns to what each endpoint
/// served (`served`, in `endpoints`' order).
fn assert_matrix(report: &RunReport, endpoints: &[(&str, u64)], per_cell: u64, served: &[u64]) {
    assert_eq!(report.global.errors.total, 0, "{:?}", report.global.errors);
    assert_eq!(
        report.matrix.len(),
        report.regions.len() * endpoints.len(),
        "a cell per region and endpoint"
    );
    for cell in &report.matrix {
        let delay = endpoints
            .iter()
            .find(|(n, _)| *n == cell.endpoint)
            .map(|(_, d)| *d)
            .expect("known endpoint");
        let what = format!("{} → {}", cell.region, cell.endpoint);
        assert!(
            near(cell.summary.latency_us.p50, delay),
            "{what}: p50 {} µs vs {delay} ms",
            cell.summary.latency_us.p50
        );
        assert_eq!(cell.summary.requests, per_cell, "{what}");
        assert_eq!(cell.summary.successes, per_cell, "{what}");
    }
    for region in &report.regions {
        let row: u64 = report
            .matrix
            .iter()
            .filter(|c| c.region == region.name)
            .map(|c| c.summary.requests)
            .sum();
        assert_eq!(row, region.summary.requests, "{}", region.name);
    }
    for ((name, _), served) in endpoints.iter().zip(served) {
        let column: u64 = report
            .matrix
            .iter()
            .filter(|c| c.endpoint == *name)
            .map(|c| c.summary.requests)
            .sum();
        assert_eq!(column, *served, "{name}: report vs endpoint");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_region_measures_every_endpoint_in_a_matrix() {
    const ENDPOINTS: [(&str, u64); 3] = [("us", 5), ("eu", 40), ("ap", 120)];
    let mut targets = Vec::new();
    for (_, delay) in ENDPOINTS {
        targets.push(target(delay).await);
    }
    let mut yaml = format!(
        "name: matrix\ntarget:\n  url: {}\nrouting: matrix\nendpoints:\n",
        targets[0].url
    );
    for ((name, _), t) in ENDPOINTS.iter().zip(&targets) {
        yaml.push_str(&format!("  - name: {name}\n    url: {}\n", t.url));
    }
    yaml.push_str(
        "load:\n  model: open\n  rate: 270\n  connections: 90\n  duration: 3s\n\
         regions:\n  - name: r1\n  - name: r2\n  - name: r3\nstart_delay: 500ms\n",
    );
    let dir = tempfile::tempdir().expect("dir");
    let report = run_in(dir.path(), &yaml, &["r1", "r2", "r3"]).await;

    // 90 requests/s per region, split evenly: 30/s for 3 s.
    let served: Vec<u64> = targets.iter().map(|t| t.stats.served()).collect();
    assert_matrix(&report, &ENDPOINTS, 90, &served);
    let table = stampede_coordinator::report::table::render(&report);
    assert!(table.contains("cross-region matrix"), "{table}");
    let page = stampede_coordinator::report::html::render(&report).expect("renders");
    assert!(page.contains("<h2>Cross-region matrix</h2>"));
    for t in targets {
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_moves_a_regions_traffic_at_the_configured_second() {
    let (near_t, far_t) = (target(5).await, target(60).await);
    let yaml = format!(
        "name: failover\ntarget:\n  url: {near}\nendpoints:\n  - name: us\n    url: {near}\n  - name: eu\n    url: {far}\n\
         failover:\n  - at: 3s\n    region: eu\n    to: us\n\
         load:\n  model: open\n  rate: 100\n  connections: 40\n  duration: 6s\n  interval: 1s\n\
         regions:\n  - name: us\n  - name: eu\nstart_delay: 500ms\n",
        near = near_t.url,
        far = far_t.url
    );
    let dir = tempfile::tempdir().expect("dir");
    let report = run_in(dir.path(), &yaml, &["us", "eu"]).await;
    assert_eq!(report.global.errors.total, 0, "{:?}", report.global.errors);

    // eu's series: its home endpoint (60 ms) for 3 s, then us's (5 ms).
    for i in report.intervals.iter().filter(|i| i.end_s <= 6.0 + 1e-6) {
        let eu = &i.regions["eu"];
        let want = if i.start_s < 3.0 { 60 } else { 5 };
        assert!(
            near(eu.latency_us.p50, want),
            "interval {} (from {:.1}s): eu p50 {} µs, want {want} ms",
            i.index,
            i.start_s,
            eu.latency_us.p50
        );
        // Requests count where they complete: up to 60 ms of sends (3 at
        // 50/s) cross each boundary.
        assert!(
            (45..=55).contains(&eu.requests),
            "interval {}: eu keeps its rate ({})",
            i.index,
            eu.requests
        );
    }
    let eu_total = report
        .regions
        .iter()
        .find(|r| r.name == "eu")
        .expect("eu")
        .summary
        .requests;
    assert_eq!(eu_total, 300);
    // Both of eu's endpoints are in the matrix; us never left home.
    let cells: Vec<(&str, &str, u64)> = report
        .matrix
        .iter()
        .map(|c| (c.region.as_str(), c.endpoint.as_str(), c.summary.requests))
        .collect();
    assert!(cells.contains(&("eu", "eu", 150)), "{cells:?}");
    assert!(cells.contains(&("eu", "us", 150)), "{cells:?}");
    assert!(cells.contains(&("us", "us", 300)), "{cells:?}");
    assert_eq!(far_t.stats.served(), 150);
    near_t.stop().await;
    far_t.stop().await;
}

async fn kserve(delay_ms: u64) -> InProcessKserve {
    let mut config = InProcessKserve::config();
    config.default_delay = DelaySpec::Fixed(Duration::from_millis(delay_ms));
    InProcessKserve::start(config).await
}

/// A ModelInfer call, for scenarios whose endpoints are KServe mocks.
const KSERVE_CALL: &str = "grpc:\n  kserve:\n    model: echo\n    inputs:\n      - name: INPUT0\n        \
                           datatype: INT64\n        shape: [2]\n        data: [7, -7]\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_every_region_measures_every_endpoint_in_a_matrix() {
    const ENDPOINTS: [(&str, u64); 2] = [("near", 5), ("far", 40)];
    let mut mocks = Vec::new();
    for (_, delay) in ENDPOINTS {
        mocks.push(kserve(delay).await);
    }
    let mut yaml = format!(
        "name: grpc-matrix\ntarget:\n  url: {}\n{KSERVE_CALL}routing: matrix\nendpoints:\n",
        mocks[0].url
    );
    for ((name, _), m) in ENDPOINTS.iter().zip(&mocks) {
        yaml.push_str(&format!("  - name: {name}\n    url: {}\n", m.url));
    }
    yaml.push_str(
        "load:\n  model: open\n  rate: 180\n  connections: 30\n  duration: 3s\n\
         regions:\n  - name: r1\n  - name: r2\n  - name: r3\nstart_delay: 500ms\n",
    );
    let dir = tempfile::tempdir().expect("dir");
    let report = run_in(dir.path(), &yaml, &["r1", "r2", "r3"]).await;
    let served: Vec<u64> = mocks.iter().map(|m| m.stats.served_total()).collect();
    for m in mocks {
        m.stop().await;
    }

    assert_eq!(report.global.interrupted, 0);
    // 60 calls/s per region, split evenly: 30/s for 3 s.
    assert_matrix(&report, &ENDPOINTS, 90, &served);
    // Every call of a region's row was OK.
    for region in &report.regions {
        assert_eq!(
            region.summary.grpc_codes.get("OK"),
            Some(&region.summary.requests),
            "{}",
            region.name
        );
    }
    assert_eq!(report.global.requests, served.iter().sum::<u64>());
    assert_eq!(
        report.global.grpc_codes.get("OK"),
        Some(&report.global.requests)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_a_down_endpoints_traffic_moves_at_the_configured_second() {
    let (near_m, far_m) = (kserve(5).await, kserve(60).await);
    let yaml = format!(
        "name: grpc-failover\ntarget:\n  url: {near}\n{KSERVE_CALL}\
         endpoints:\n  - name: us\n    url: {near}\n  - name: eu\n    url: {far}\n\
         failover:\n  - at: 2s\n    endpoint: eu\n    down: true\n\
         load:\n  model: open\n  rate: 100\n  connections: 40\n  duration: 4s\n  interval: 1s\n\
         regions:\n  - name: us\n  - name: eu\nstart_delay: 500ms\n",
        near = near_m.url,
        far = far_m.url
    );
    let dir = tempfile::tempdir().expect("dir");
    let report = run_in(dir.path(), &yaml, &["us", "eu"]).await;
    let (near_served, far_served) = (near_m.stats.served_total(), far_m.stats.served_total());
    near_m.stop().await;
    far_m.stop().await;
    assert_eq!(report.global.errors.total, 0, "{:?}", report.global.errors);

    // eu's series: its own endpoint (60 ms) for 2 s, then us's (5 ms).
    for i in report.intervals.iter().filter(|i| i.end_s <= 4.0 + 1e-6) {
        let eu = &i.regions["eu"];
        let want = if i.start_s < 2.0 { 60 } else { 5 };
        assert!(
            near(eu.latency_us.p50, want),
            "interval {} (from {:.1}s): eu p50 {} µs, want {want} ms",
            i.index,
            i.start_s,
            eu.latency_us.p50
        );
    }
    let cells: Vec<(&str, &str, u64)> = report
        .matrix
        .iter()
        .map(|c| (c.region.as_str(), c.endpoint.as_str(), c.summary.requests))
        .collect();
    // 50 calls/s per region: eu's first 2 s at eu, the rest at us.
    assert!(cells.contains(&("eu", "eu", 100)), "{cells:?}");
    assert!(cells.contains(&("eu", "us", 100)), "{cells:?}");
    assert!(cells.contains(&("us", "us", 200)), "{cells:?}");
    assert_eq!(far_served, 100);
    assert_eq!(near_served, 300);
}
