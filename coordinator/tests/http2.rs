//! HTTP/2 end to end: coordinator and agents (in process) against the
//! built-in target over h2c (prior knowledge), closed and open model, with
//! several streams per connection; and a model-serving stream over HTTP/2
//! measured like over HTTP/1.1.

mod support;

use stampede_coordinator::report::model::RunReport;
use stampede_coordinator::scenario::load_with_env;
use stampede_target::{DelaySpec, LlmConfig, TargetConfig};
use std::collections::BTreeMap;
use std::time::Duration;
use support::{InProcessTarget, run_with_agents};

async fn run(yaml: &str, regions: &[&str]) -> RunReport {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("h2.yaml");
    std::fs::write(&path, yaml).expect("write scenario");
    let scenario = load_with_env(&path, BTreeMap::new()).expect("valid scenario");
    run_with_agents(scenario, regions).await
}

fn delayed(ms: u64) -> TargetConfig {
    TargetConfig {
        default_delay: DelaySpec::Fixed(Duration::from_millis(ms)),
        ..TargetConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_closed_model_multiplexes_streams_and_loses_nothing() {
    let target = InProcessTarget::start(delayed(20)).await;
    let report = run(
        &format!(
            r#"
target:
  url: {url}
  protocol: http2
load:
  model: closed
  connections: 2
  streams_per_connection: 4
  duration: 2s
regions:
  - name: local
start_delay: 300ms
"#,
            url = target.url
        ),
        &["local"],
    )
    .await;
    let served = target.stats.served();
    target.stop().await;

    let g = &report.global;
    assert_eq!(g.errors.total, 0, "{:?}", g.errors);
    assert!(g.requests > 0);
    assert_eq!(g.requests, served, "report and target disagree");
    // Every response waited out the 20 ms delay, and not much more.
    assert!(g.latency_us.min >= 20_000, "min {} µs", g.latency_us.min);
    assert!(g.latency_us.p50 < 200_000, "p50 {} µs", g.latency_us.p50);
    // Two connections one request at a time could finish at most
    // 2 × 2 s / 20 ms = 200; four streams each carry more.
    assert!(
        g.requests > 200,
        "{} requests: streams not concurrent",
        g.requests
    );
    assert_eq!(report.scenario.protocol, "http2");
    assert_eq!(report.scenario.streams_per_connection, 4);
    assert!(g.bytes_sent > 0 && g.bytes_received > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_open_model_sends_every_due_request_over_the_slots() {
    // Each region reaches the target through its own path, with its own delay.
    let target = InProcessTarget::start(TargetConfig {
        region_delays: BTreeMap::from([
            (
                "us-east".to_owned(),
                DelaySpec::Fixed(Duration::from_millis(10)),
            ),
            (
                "eu-west".to_owned(),
                DelaySpec::Fixed(Duration::from_millis(40)),
            ),
        ]),
        ..TargetConfig::default()
    })
    .await;
    let report = run(
        &format!(
            r#"
target:
  url: {url}
  protocol: http2
  region_urls:
    us-east: {url}region/us-east/
    eu-west: {url}region/eu-west/
load:
  model: open
  rate: 100
  connections: 2
  streams_per_connection: 5
  duration: 2s
regions:
  - name: us-east
  - name: eu-west
start_delay: 300ms
"#,
            url = target.url
        ),
        &["us-east", "eu-west"],
    )
    .await;
    let served = target.stats.snapshot();
    target.stop().await;

    let g = &report.global;
    assert_eq!(g.errors.total, 0, "{:?}", g.errors);
    assert_eq!(g.interrupted, 0);
    // 100 requests/s for 2 s: every one of them, counted once.
    assert_eq!(g.requests, 200);
    assert_eq!(served.served, 200);
    for (name, delay_us) in [("us-east", 10_000), ("eu-west", 40_000)] {
        let r = report
            .regions
            .iter()
            .find(|r| r.name == name)
            .expect("region in the report");
        assert_eq!(r.summary.requests, 100, "{name}");
        assert_eq!(served.regions.get(name), Some(&100), "{name}");
        // The region's delay, plus a loopback round trip (under 100 ms).
        let l = &r.summary.latency_us;
        assert!(l.min >= delay_us, "{name}: min {} µs", l.min);
        assert!(l.p50 < delay_us + 100_000, "{name}: p50 {} µs", l.p50);
    }
}

fn near(actual: f64, expected: f64, tolerance: f64) -> bool {
    (actual - expected).abs() <= expected * tolerance
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_streams_over_http2_measure_as_over_http1() {
    let mock = TargetConfig {
        llm: LlmConfig {
            ttft: Duration::from_millis(200),
            token_interval: Duration::from_millis(20),
            default_tokens: 20,
        },
        ..TargetConfig::default()
    };
    let target = InProcessTarget::start(mock).await;
    // Each answer takes 200 + 19 × 20 = 580 ms: 12 slots keep up with
    // 10 requests/s, so latency is the target's, not a queue's.
    let scenario = |protocol: &str, connections: u32, streams: u32| {
        format!(
            r#"
target:
  url: {url}
  protocol: {protocol}
requests:
  - name: chat
    method: POST
    url: /v1/chat/completions
    headers: {{ content-type: application/json }}
    body: '{{"model": "m", "messages": [{{"role": "user", "content": "hi there"}}], "max_tokens": 20, "stream": true, "stream_options": {{"include_usage": true}}}}'
llm: {{}}
load:
  model: open
  rate: 10
  connections: {connections}
  streams_per_connection: {streams}
  duration: 2s
regions:
  - name: local
start_delay: 300ms
"#,
            url = target.url
        )
    };
    let h1 = run(&scenario("http1", 12, 1), &["local"]).await;
    let h2 = run(&scenario("http2", 2, 6), &["local"]).await;
    target.stop().await;

    for (name, report) in [("http1", &h1), ("http2", &h2)] {
        assert_eq!(report.global.requests, 20, "{name}");
        assert_eq!(report.global.errors.total, 0, "{name}");
        let l = report.global.llm.as_ref().expect("model-serving figures");
        assert_eq!(l.streamed, 20, "{name}");
        assert_eq!(l.output_tokens, 20 * 20, "{name}");
        // The tolerances of llm_streaming.rs.
        assert!(
            near(l.ttft_us.p50 as f64, 200_000.0, 0.03),
            "{name}: TTFT p50 {} µs",
            l.ttft_us.p50
        );
        assert!(
            near(l.tpot_us.p50 as f64, 20_000.0, 0.03),
            "{name}: TPOT p50 {} µs",
            l.tpot_us.p50
        );
    }
    let (a, b) = (
        h1.global.llm.as_ref().expect("h1"),
        h2.global.llm.as_ref().expect("h2"),
    );
    assert!(near(b.ttft_us.p50 as f64, a.ttft_us.p50 as f64, 0.03));
    assert!(near(b.tpot_us.p50 as f64, a.tpot_us.p50 as f64, 0.03));
}

/// As processes: `stampede target` (plain port: HTTP/1.1 and h2c) and
/// `stampede bench --http2 --streams 4`, the report's count against the
/// target's own.
#[test]
fn bench_over_h2c_against_the_target_process() {
    let (mut target, addr) = support::start_target(&["--delay", "5ms"]);
    let url = format!("http://{addr}/");
    let mut bench = support::spawn(
        "bench",
        &[
            "bench",
            &url,
            "--http2",
            "--streams",
            "4",
            "-c",
            "2",
            "-d",
            "1s",
            "--json",
            "--quiet",
        ],
    );
    let (status, stderr) = bench.wait(Duration::from_secs(60));
    assert!(status.success(), "bench failed: {stderr}");
    let json = bench.remaining_stdout().join("\n");
    let report: serde_json::Value = serde_json::from_str(&json).expect("a JSON report");
    let served = support::served(addr)["served"].as_u64().expect("served");
    target.stop();
    assert_eq!(report["scenario"]["protocol"], "http2");
    assert_eq!(report["scenario"]["streams_per_connection"], 4);
    assert_eq!(report["global"]["errors"]["total"], 0);
    let requests = report["global"]["requests"].as_u64().expect("requests");
    assert!(requests > 0);
    assert_eq!(requests, served);
}
