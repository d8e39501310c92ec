//! OpenAI-compatible streaming end to end: agents in three regions against
//! the built-in mock (TTFT 200 ms, 20 ms per token, 50 tokens) report TTFT,
//! TPOT and tokens/s within a few percent of the settings; token counting
//! falls back to chunks without `usage`; malformed and cut streams are
//! errors with their class.

mod support;

use stampede_coordinator::report::model::{LlmSummary, RunReport};
use stampede_coordinator::scenario::load_with_env;
use stampede_target::{LlmConfig, TargetConfig};
use std::collections::BTreeMap;
use std::time::Duration;
use support::{InProcessTarget, run_with_agents};

fn mock() -> TargetConfig {
    TargetConfig {
        llm: LlmConfig {
            ttft: Duration::from_millis(200),
            token_interval: Duration::from_millis(20),
            default_tokens: 50,
        },
        ..TargetConfig::default()
    }
}

async fn run(yaml: &str, regions: &[&str]) -> RunReport {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("llm.yaml");
    std::fs::write(&path, yaml).expect("write scenario");
    let scenario = load_with_env(&path, BTreeMap::new()).expect("valid scenario");
    run_with_agents(scenario, regions).await
}

fn near(actual: f64, expected: f64, tolerance: f64) -> bool {
    (actual - expected).abs() <= expected * tolerance
}

fn llm(report: &RunReport) -> &LlmSummary {
    report.global.llm.as_ref().expect("model-serving figures")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_completions_report_ttft_tpot_and_tokens_per_second() {
    let target = InProcessTarget::start(mock()).await;
    let report = run(
        &format!(
            r#"
target:
  url: {url}
requests:
  - name: chat
    method: POST
    url: /v1/chat/completions
    headers: {{ content-type: application/json }}
    body: '{{"model": "m", "messages": [{{"role": "user", "content": "hi there"}}], "max_tokens": 50, "stream": true, "stream_options": {{"include_usage": true}}}}'
llm:
  goodput:
    ttft: 300ms
    tpot: 25ms
thresholds:
  - ttft_p99 < 1s
  - tpot_p50 <= 25ms
  - goodput >= 99%
  - "regions: tokens_per_second > 100"
load:
  model: open
  rate: 15
  connections: 30
  duration: 2s
regions:
  - name: us-east
  - name: eu-west
  - name: ap-south
start_delay: 300ms
"#,
            url = target.url
        ),
        &["us-east", "eu-west", "ap-south"],
    )
    .await;
    let served = target.stats.served();
    target.stop().await;

    assert_eq!(report.global.requests, 30);
    assert_eq!(served, 30);
    assert_eq!(report.global.errors.total, 0);
    let l = llm(&report);
    // TTFT 200 ms (the role-only chunk at 0 ms must not count), TPOT 20 ms.
    assert!(
        near(l.ttft_us.p50 as f64, 200_000.0, 0.03),
        "TTFT p50 {} µs",
        l.ttft_us.p50
    );
    assert!(
        near(l.tpot_us.p50 as f64, 20_000.0, 0.03),
        "TPOT p50 {} µs",
        l.tpot_us.p50
    );
    assert!(
        near(l.itl_us.p50 as f64, 20_000.0, 0.05),
        "ITL p50 {} µs",
        l.itl_us.p50
    );
    // 50 tokens in 200 + 49 × 20 = 1180 ms: 42.4 tokens/s per request.
    assert!(
        near(l.request_tokens_per_second.p50 as f64, 42.4, 0.05),
        "tokens/s p50 {}",
        l.request_tokens_per_second.p50
    );
    assert_eq!(l.output_tokens, 30 * 50);
    assert_eq!(l.input_tokens, 30 * 2);
    assert_eq!(l.token_count_source, "usage");
    assert_eq!(l.streamed, 30);
    // Every request met TTFT ≤ 300 ms and TPOT ≤ 25 ms.
    assert_eq!(l.good, 30);
    assert!((l.goodput_ratio - 1.0).abs() < 1e-12);
    // Model-serving thresholds are judged like any other.
    assert_eq!(report.thresholds.len(), 6);
    assert!(
        report.thresholds.iter().all(|t| t.passed),
        "{:?}",
        report.thresholds
    );
    // Per region too, adding up.
    let tokens: u64 = report
        .regions
        .iter()
        .map(|r| r.summary.llm.as_ref().expect("region llm").output_tokens)
        .sum();
    assert_eq!(tokens, l.output_tokens);
    for r in &report.regions {
        let rl = r.summary.llm.as_ref().expect("region llm");
        assert!(near(rl.ttft_us.p50 as f64, 200_000.0, 0.03), "{}", r.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_counting_faults_and_non_streamed_answers() {
    let target = InProcessTarget::start(mock()).await;
    let body =
        |stream: bool| format!(r#"'{{"prompt": "a b c", "max_tokens": 10, "stream": {stream}}}'"#);
    let report = run(
        &format!(
            r#"
target:
  url: {url}
requests:
  - name: plain
    method: POST
    url: /v1/completions
    body: {stream}
  - name: malformed
    method: POST
    url: /v1/completions?fault=malformed
    body: {stream}
  - name: cut
    method: POST
    url: /v1/completions?fault=cut
    body: {stream}
  - name: json
    method: POST
    url: /v1/completions
    body: {json}
llm: {{}}
load:
  model: closed
  connections: 4
  duration: 2s
regions:
  - name: local
start_delay: 300ms
"#,
            url = target.url,
            stream = body(true),
            json = body(false),
        ),
        &["local"],
    )
    .await;
    target.stop().await;

    let by_name = |name: &str| {
        report
            .requests
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no request {name}"))
    };
    let l = llm(&report);
    // The broken streams are errors of class `other`, one per request.
    let malformed = by_name("malformed").global.errors.other;
    let cut = by_name("cut").global.errors.other;
    assert!(malformed > 0 && cut > 0);
    assert_eq!(by_name("malformed").global.successes, 0);
    assert_eq!(by_name("cut").global.successes, 0);
    assert_eq!(l.malformed, malformed);
    assert_eq!(l.truncated, cut);
    assert_eq!(report.global.errors.total, malformed + cut);
    // Without `stream_options.include_usage` the streamed tokens are
    // counted from content chunks; the JSON answers carry `usage`.
    let (plain, json) = (
        by_name("plain").global.successes,
        by_name("json").global.successes,
    );
    assert!(plain > 0 && json > 0);
    assert_eq!(l.chunk_counted, plain);
    assert_eq!(l.usage_counted, json);
    assert_eq!(l.token_count_source, "mixed");
    assert_eq!(l.output_tokens, (plain + json) * 10);
    assert_eq!(l.streamed, plain);
    // Not streamed: the first token comes with the whole answer (380 ms).
    assert_eq!(l.tpot_us.count, plain);
}
