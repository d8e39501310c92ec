//! Weighted request mixes, templates and data files end to end: the target
//! sees what the templates say, the mix follows its weights, a `once` data
//! file is sent row by row exactly once across agents, and the report
//! breaks the results down per request name.

mod support;

use stampede_coordinator::scenario::load_with_env;
use stampede_target::TargetConfig;
use std::collections::BTreeMap;
use support::{InProcessTarget, run_with_agents};

fn scenario_file(dir: &std::path::Path, yaml: &str) -> std::path::PathBuf {
    let path = dir.join("scenario.yaml");
    std::fs::write(&path, yaml).expect("write scenario");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weighted_mix_is_reported_per_request() {
    let target = InProcessTarget::start(TargetConfig::default()).await;
    let dir = tempfile::tempdir().expect("dir");
    // The built-in target counts requests by the region their path names,
    // and answers /status/503 with a 503: each request is told apart there.
    let path = scenario_file(
        dir.path(),
        &format!(
            r#"
target:
  url: {url}
requests:
  - name: small
    weight: 3
    url: /region/small
  - name: large
    weight: 1
    method: POST
    url: region/large
    body: '{{"size": "large"}}'
    timeout: 2s
  - name: broken
    weight: 1
    url: /status/503
load:
  model: open
  rate: 500
  duration: 2s
regions:
  - name: us-east
  - name: eu-west
start_delay: 300ms
"#,
            url = target.url
        ),
    );
    let scenario = load_with_env(&path, BTreeMap::new()).expect("valid scenario");
    let report = run_with_agents(scenario, &["us-east", "eu-west"]).await;
    let (small, large) = (
        target.stats.served_in_region("small"),
        target.stats.served_in_region("large"),
    );
    let served = target.stats.served();
    target.stop().await;

    // 1000 requests in all; each send draws its request by weight (3:1:1).
    assert_eq!(report.global.requests, 1000);
    assert_eq!(served, 1000);
    let names: Vec<&str> = report.requests.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["small", "large", "broken"]);
    let by_name = |name: &str| {
        report
            .requests
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no request {name}"))
    };
    // Exactly what the target saw, per request.
    assert_eq!(by_name("small").global.requests, small);
    assert_eq!(by_name("large").global.requests, large);
    assert_eq!(
        by_name("broken").global.errors.status_5xx,
        1000 - small - large
    );
    assert_eq!(by_name("broken").global.successes, 0);
    assert_eq!(by_name("small").global.errors.total, 0);
    // 600 ± 3σ (σ ≈ 15.5), 200 ± 3σ (σ ≈ 12.6).
    assert!((554..=646).contains(&small), "small {small}");
    assert!((162..=238).contains(&large), "large {large}");
    assert!((by_name("small").share - 0.6).abs() < 1e-12);
    // Per region too, adding up to the request's global figures.
    for r in &report.requests {
        let regional: u64 = r.regions.values().map(|s| s.requests).sum();
        assert_eq!(regional, r.global.requests, "{}", r.name);
    }
    // The mix's errors are the run's errors.
    assert_eq!(report.global.errors.status_5xx, 1000 - small - large);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_once_data_file_is_sent_row_by_row_across_agents() {
    let target = InProcessTarget::start(TargetConfig::default()).await;
    let dir = tempfile::tempdir().expect("dir");
    // 90 rows naming three "regions" of the target: 50 a, 30 b, 10 c.
    let mut csv = String::from("bucket,id\n");
    for i in 0..90 {
        let bucket = match i % 9 {
            0..=4 => "a",
            5..=7 => "b",
            _ => "c",
        };
        csv.push_str(&format!("{bucket},{i}\n"));
    }
    std::fs::write(dir.path().join("rows.csv"), csv).expect("write data");
    let path = scenario_file(
        dir.path(),
        &format!(
            r#"
target:
  url: {url}
requests:
  - name: lookup
    url: "/region/{{{{bucket}}}}?id={{{{id}}}}"
    headers:
      x-row: "{{{{id}}}}"
data:
  file: rows.csv
  order: once
load:
  model: open
  rate: 200
  connections: 6
  duration: 2s
regions:
  - name: us-east
  - name: eu-west
    agents: 2
start_delay: 300ms
"#,
            url = target.url
        ),
    );
    let scenario = load_with_env(&path, BTreeMap::new()).expect("valid scenario");
    assert_eq!(scenario.data.as_ref().map(|d| d.rows.len()), Some(90));
    let report = run_with_agents(scenario, &["us-east", "eu-west", "eu-west"]).await;
    let counts: Vec<u64> = ["a", "b", "c"]
        .iter()
        .map(|b| target.stats.served_in_region(b))
        .collect();
    let served = target.stats.served();
    target.stop().await;

    // 400 sends were due, but the data holds 90 rows, each sent once.
    assert_eq!(served, 90);
    assert_eq!(counts, [50, 30, 10]);
    assert_eq!(report.global.requests, 90);
    assert_eq!(report.global.errors.total, 0);
    assert_eq!(report.scenario.data_rows, Some(90));
    assert_eq!(report.scenario.data_order.as_deref(), Some("once"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_80_20_mix_over_ten_thousand_requests_lands_within_tolerance() {
    let target = InProcessTarget::start(TargetConfig::default()).await;
    let dir = tempfile::tempdir().expect("dir");
    let path = scenario_file(
        dir.path(),
        &format!(
            r#"
target:
  url: {url}
requests:
  - name: predict-small
    weight: 80
    url: /region/small
  - name: predict-large
    weight: 20
    url: /region/large
load:
  model: open
  rate: 2500
  connections: 40
  duration: 4s
regions:
  - name: us-east
  - name: eu-west
start_delay: 300ms
"#,
            url = target.url
        ),
    );
    let scenario = load_with_env(&path, BTreeMap::new()).expect("valid scenario");
    let report = run_with_agents(scenario, &["us-east", "eu-west"]).await;
    let small = target.stats.served_in_region("small");
    target.stop().await;

    assert_eq!(report.global.requests, 10_000);
    let reported = report
        .requests
        .iter()
        .find(|r| r.name == "predict-small")
        .map(|r| r.global.requests);
    assert_eq!(reported, Some(small));
    // 8000 expected; σ = √(10000 · 0.8 · 0.2) = 40: within 4σ.
    assert!(
        (7_840..=8_160).contains(&small),
        "{small} of 10000 were predict-small"
    );
    for r in &report.requests {
        assert_eq!(r.regions.len(), 2, "{}", r.name);
    }
}
