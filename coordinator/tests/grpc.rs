//! gRPC load end to end against the built-in KServe v2 mock: ModelInfer
//! from three regions (counts, per-code errors and latency agree with the
//! mock), generic unary calls with a JSON payload encoded through a
//! descriptor set and with a binary payload file, and scenario errors that
//! name file and field.

mod support;

use prost::Message;
use stampede_coordinator::report::model::RunReport;
use stampede_coordinator::scenario::load_with_env;
use stampede_proto::kserve;
use stampede_target::DelaySpec;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use support::{InProcessKserve, run_with_agents};

async fn run_in(dir: &Path, yaml: &str, regions: &[&str]) -> RunReport {
    let path = dir.join("grpc.yaml");
    std::fs::write(&path, yaml).expect("write scenario");
    let scenario = load_with_env(&path, BTreeMap::new()).unwrap_or_else(|e| panic!("{e}"));
    run_with_agents(scenario, regions).await
}

fn fixed(ms: u64) -> DelaySpec {
    DelaySpec::Fixed(Duration::from_millis(ms))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_infer_from_three_regions_counts_codes_and_latency() {
    let mut config = InProcessKserve::config();
    config.region_delays = [
        ("us-east".to_owned(), fixed(10)),
        ("eu-west".to_owned(), fixed(30)),
        ("ap-south".to_owned(), fixed(50)),
    ]
    .into();
    config.unavailable_share = 0.1;
    let mock = InProcessKserve::start(config).await;
    let dir = tempfile::tempdir().expect("dir");
    let report = run_in(
        dir.path(),
        &format!(
            r#"
target:
  url: {url}
  timeout: 5s
grpc:
  metadata: {{ x-tenant: load-test }}
  kserve:
    model: echo
    version: "1"
    inputs:
      - name: INPUT0
        datatype: FP32
        shape: [1, 4]
        data: [0.5, 1.5, 2.5, 3.5]
      - name: INPUT1
        datatype: INT64
        shape: [2]
        data: [7, -7]
load:
  model: open
  rate: 60
  connections: 12
  duration: 2s
  graceful_stop: 3s
regions:
  - name: us-east
  - name: eu-west
  - name: ap-south
start_delay: 300ms
"#,
            url = mock.url
        ),
        &["us-east", "eu-west", "ap-south"],
    )
    .await;
    let (ok, unavailable, total) = (
        mock.stats.served(tonic::Code::Ok),
        mock.stats.served(tonic::Code::Unavailable),
        mock.stats.served_total(),
    );
    let last = mock.stats.last_request().expect("the mock saw a call");
    mock.stop().await;

    // Every call due in 2 s at 60/s was made, answered and counted once.
    assert_eq!(report.global.requests, 120);
    assert_eq!(total, 120);
    assert_eq!(report.global.interrupted, 0);
    // A tenth answered UNAVAILABLE, exactly as the mock counted them.
    assert_eq!(unavailable, 12);
    assert_eq!(ok, 108);
    assert_eq!(
        report.global.grpc_codes.get("UNAVAILABLE"),
        Some(&unavailable)
    );
    assert_eq!(report.global.grpc_codes.get("OK"), Some(&ok));
    assert_eq!(report.global.successes, ok);
    assert_eq!(report.global.errors.status_5xx, unavailable);
    assert_eq!(report.global.errors.total, unavailable);
    assert!(report.global.status_codes.is_empty());
    // Regions add up to the global figures.
    let by_region: u64 = report
        .regions
        .iter()
        .map(|r| r.summary.grpc_codes.values().sum::<u64>())
        .sum();
    assert_eq!(by_region, total);
    assert_eq!(
        report.scenario.grpc_method.as_deref(),
        Some(kserve::MODEL_INFER_PATH)
    );
    // Each region's latency is its delay (the mock read the region from the
    // metadata), to HDR precision, plus the call's own cost on a loopback
    // shared with everything else this machine runs; the regions' ranges
    // do not overlap.
    for (region, ms) in [("us-east", 10u64), ("eu-west", 30), ("ap-south", 50)] {
        let r = report
            .regions
            .iter()
            .find(|r| r.name == region)
            .expect("region in report");
        let p50 = r.summary.latency_us.p50;
        let delay = ms * 1000;
        assert!(
            p50 >= delay * 999 / 1000 && p50 <= delay + delay / 5 + 5_000,
            "{region}: p50 {p50} µs for a {ms} ms delay"
        );
        assert_eq!(r.summary.requests, 40, "{region}");
        // The phases: the delay is in the wait (to the response headers),
        // a call per response, OK or not (so its p50 is not the OK calls'
        // latency p50); the connections were opened once each.
        let phases = r.summary.phases.as_ref().expect("phases");
        assert_eq!(phases.wait_us.count, 40, "{region}");
        assert_eq!(phases.transfer_us.count, 40, "{region}");
        let wait = phases.wait_us.p50;
        assert!(
            wait >= delay * 999 / 1000 && wait <= delay + delay / 5 + 5_000,
            "{region}: wait p50 {wait} µs for a {ms} ms delay"
        );
        assert_eq!(
            phases.new_connections, 4,
            "{region}: 12 connections over 3 regions"
        );
        assert_eq!(phases.connect_us.count, 4, "{region}");
    }
    support::assert_schema_valid(&report);
    // What the mock decoded is what the scenario described.
    assert_eq!(last.model_name, "echo");
    assert_eq!(last.model_version, "1");
    assert_eq!(last.inputs.len(), 2);
    assert_eq!(last.inputs[0].shape, vec![1, 4]);
    assert_eq!(
        last.inputs[0]
            .contents
            .as_ref()
            .map(|c| c.fp32_contents.clone()),
        Some(vec![0.5, 1.5, 2.5, 3.5])
    );
    assert_eq!(
        last.inputs[1]
            .contents
            .as_ref()
            .map(|c| c.int64_contents.clone()),
        Some(vec![7, -7])
    );
}

fn generic_scenario(url: &url::Url, grpc: &str) -> String {
    format!(
        r#"
target:
  url: {url}
grpc:
{grpc}
load:
  model: closed
  connections: 2
  duration: 500ms
regions:
  - name: local
start_delay: 300ms
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_with_a_descriptor_set_is_encoded_and_decoded_by_the_target() {
    let mock = InProcessKserve::start(InProcessKserve::config()).await;
    let dir = tempfile::tempdir().expect("dir");
    // A FileDescriptorSet as protoc --descriptor_set_out writes it.
    std::fs::write(dir.path().join("kserve.binpb"), kserve::DESCRIPTOR_SET).expect("write set");
    let report = run_in(
        dir.path(),
        &generic_scenario(
            &mock.url,
            r#"  method: /inference.GRPCInferenceService/ModelInfer
  descriptor_set: kserve.binpb
  json:
    model_name: from-json
    modelVersion: "3"
    inputs:
      - name: TEXT
        datatype: BYTES
        shape: [1]
        contents: { bytes_contents: ["aGVsbG8="] }"#,
        ),
        &["local"],
    )
    .await;
    let served = mock.stats.served(tonic::Code::Ok);
    let last = mock.stats.last_request().expect("the mock saw a call");
    mock.stop().await;

    assert!(report.global.requests > 0);
    assert_eq!(report.global.errors.total, 0);
    assert_eq!(report.global.successes, served);
    assert_eq!(report.global.grpc_codes.get("OK"), Some(&served));
    assert_eq!(last.model_name, "from-json");
    assert_eq!(last.model_version, "3");
    assert_eq!(last.inputs[0].name, "TEXT");
    assert_eq!(
        last.inputs[0]
            .contents
            .as_ref()
            .map(|c| c.bytes_contents.clone()),
        Some(vec![b"hello".to_vec()])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binary_payload_file_is_sent_as_is() {
    let mock = InProcessKserve::start(InProcessKserve::config()).await;
    let dir = tempfile::tempdir().expect("dir");
    let request = kserve::ModelInferRequest {
        model_name: "from-file".into(),
        id: "req-1".into(),
        ..Default::default()
    };
    std::fs::write(dir.path().join("infer.bin"), request.encode_to_vec()).expect("write payload");
    let report = run_in(
        dir.path(),
        &generic_scenario(
            &mock.url,
            "  method: /inference.GRPCInferenceService/ModelInfer\n  payload_file: infer.bin",
        ),
        &["local"],
    )
    .await;
    let served = mock.stats.served(tonic::Code::Ok);
    let last = mock.stats.last_request().expect("the mock saw a call");
    mock.stop().await;

    assert!(report.global.requests > 0);
    assert_eq!(report.global.errors.total, 0);
    assert_eq!(report.global.successes, served);
    assert_eq!(last, request);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_method_is_a_per_code_failure_not_a_transport_error() {
    let mock = InProcessKserve::start(InProcessKserve::config()).await;
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("empty.bin"), b"").expect("write payload");
    let report = run_in(
        dir.path(),
        &generic_scenario(
            &mock.url,
            "  method: /inference.GRPCInferenceService/NoSuchMethod\n  payload_file: empty.bin",
        ),
        &["local"],
    )
    .await;
    mock.stop().await;

    assert!(report.global.requests > 0);
    assert_eq!(report.global.successes, 0);
    assert_eq!(
        report.global.grpc_codes.get("UNIMPLEMENTED"),
        Some(&report.global.requests)
    );
    assert_eq!(report.global.errors.status_5xx, report.global.requests);
    assert_eq!(report.global.errors.other, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_rows_fill_kserve_tensors_and_json_strings() {
    let mock = InProcessKserve::start(InProcessKserve::config()).await;
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("rows.csv"),
        "x,label\n1.5,a\n2.5,b\n3.5,c\n",
    )
    .expect("rows");
    // One connection, each row once: exactly three calls, in row order.
    let report = run_in(
        dir.path(),
        &generic_scenario(
            &mock.url,
            r#"  kserve:
    model: echo
    inputs:
      - { name: X, datatype: FP32, shape: [2], data: ["{{x}}", 0.25] }
      - { name: LABEL, datatype: BYTES, shape: [1], data: ["label-{{label}}"] }
data:
  file: rows.csv
  order: once"#,
        )
        .replace("connections: 2", "connections: 1")
        .replace("duration: 500ms", "duration: 3s"),
        &["local"],
    )
    .await;
    let served = mock.stats.served(tonic::Code::Ok);
    let last = mock.stats.last_request().expect("the mock saw a call");
    mock.stop().await;

    assert_eq!(report.global.requests, 3);
    assert_eq!(served, 3);
    assert_eq!(report.global.errors.total, 0);
    let contents = |i: usize| last.inputs[i].contents.clone().expect("contents");
    assert_eq!(contents(0).fp32_contents, vec![3.5, 0.25]);
    assert_eq!(contents(1).bytes_contents, vec![b"label-c".to_vec()]);

    // JSON strings take placeholders too; the row's value is encoded.
    let mock = InProcessKserve::start(InProcessKserve::config()).await;
    std::fs::write(dir.path().join("set.binpb"), kserve::DESCRIPTOR_SET).expect("set");
    let report = run_in(
        dir.path(),
        &generic_scenario(
            &mock.url,
            r#"  method: /inference.GRPCInferenceService/ModelInfer
  descriptor_set: set.binpb
  json: { model_name: "model-{{label}}", id: "{{x}}" }
data:
  file: rows.csv
  order: once"#,
        )
        .replace("connections: 2", "connections: 1")
        .replace("duration: 500ms", "duration: 3s"),
        &["local"],
    )
    .await;
    let last = mock.stats.last_request().expect("the mock saw a call");
    mock.stop().await;
    assert_eq!(report.global.requests, 3);
    assert_eq!(last.model_name, "model-c");
    assert_eq!(last.id, "3.5");
}

/// The error `grpc` gives, as the user sees it.
fn error_for(grpc: &str, extra_files: &[(&str, &[u8])]) -> String {
    let dir = tempfile::tempdir().expect("dir");
    for (name, bytes) in extra_files {
        std::fs::write(dir.path().join(name), bytes).expect("write file");
    }
    let url = url::Url::parse("http://127.0.0.1:9/").expect("url");
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, generic_scenario(&url, grpc)).expect("write scenario");
    match load_with_env(&path, BTreeMap::new()) {
        Ok(_) => panic!("accepted: {grpc}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn scenario_errors_name_file_and_field() {
    let set: &[(&str, &[u8])] = &[("set.binpb", kserve::DESCRIPTOR_SET)];
    let cases: Vec<(String, &[&str])> = vec![
        (
            error_for(
                "  method: inference.Svc/Infer\n  payload_file: p.bin",
                &[("p.bin", b"")],
            ),
            &["bad.yaml", "grpc.method", "/package.Service/Method"],
        ),
        (
            error_for(
                "  method: /inference.GRPCInferenceService/ModelInfer\n  descriptor_set: set.binpb\n  json: { model_name: m, inputs: [ { name: x, bogus: 1 } ] }",
                set,
            ),
            &[
                "bad.yaml",
                "grpc.json.inputs[0]",
                "bogus",
                "inference.ModelInferRequest",
            ],
        ),
        (
            error_for(
                "  method: /inference.GRPCInferenceService/ModelInfer\n  json: { model_name: m }",
                &[],
            ),
            &["bad.yaml", "grpc.descriptor_set", "missing"],
        ),
        (
            error_for(
                "  method: /inference.GRPCInferenceService/Nope\n  descriptor_set: set.binpb\n  json: { model_name: m }",
                set,
            ),
            &["grpc.method", "no method \"Nope\"", "set.binpb"],
        ),
        (
            error_for(
                "  kserve: { model: m, inputs: [ { name: x, datatype: FP32, shape: [2, 2], data: [1, 2, 3] } ] }",
                &[],
            ),
            &[
                "bad.yaml",
                "grpc.kserve.inputs[0].data",
                "3 values",
                "holds 4",
            ],
        ),
        (
            error_for(
                "  kserve: { model: m, inputs: [ { name: x, datatype: INT8, shape: [2], data: [1, 300] } ] }",
                &[],
            ),
            &["grpc.kserve.inputs[0].data[1]", "-128..=127"],
        ),
        (
            error_for(
                "  kserve: { model: m, inputs: [ { name: x, datatype: FLOAT, shape: [1], data: [1] } ] }",
                &[],
            ),
            &["grpc.kserve.inputs[0].datatype", "FLOAT"],
        ),
        (
            error_for(
                "  kserve: { model: m, inputs: [ { name: x, datatype: FP32, shape: [1], data: [\"{{nope}}\"] } ] }",
                &[],
            ),
            &["grpc.kserve.inputs[0].data[0]", "{{nope}}", "data: file"],
        ),
        (
            error_for(
                "  payload_file: p.bin\n  kserve: { model: m, inputs: [] }",
                &[("p.bin", b"")],
            ),
            &[
                "bad.yaml",
                "grpc",
                "exactly one payload",
                "payload_file",
                "kserve",
            ],
        ),
    ];
    for (error, expected) in cases {
        for part in expected {
            assert!(error.contains(part), "{error:?} should mention {part:?}");
        }
    }
}

#[test]
fn grpc_excludes_http_requests_and_model_serving() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("mixed.yaml");
    std::fs::write(
        &path,
        r#"
target:
  url: http://127.0.0.1:9/
grpc:
  kserve: { model: m, inputs: [ { name: x, datatype: BOOL, shape: [1], data: [true] } ] }
llm: {}
load:
  model: closed
  connections: 1
  duration: 1s
regions:
  - name: local
"#,
    )
    .expect("write scenario");
    let error = load_with_env(&path, BTreeMap::new())
        .expect_err("refused")
        .to_string();
    assert!(error.contains("llm") && error.contains("grpc"), "{error}");
}

#[test]
fn grpc_refuses_settings_its_client_would_ignore() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("p.bin"), b"").expect("write payload");
    let url = url::Url::parse("http://127.0.0.1:9/").expect("url");
    let base = generic_scenario(
        &url,
        "  method: /inference.GRPCInferenceService/ModelInfer\n  payload_file: p.bin",
    );
    let streams = base
        .replace(
            "  connections: 2\n",
            "  connections: 2\n  streams_per_connection: 4\n",
        )
        .replace(
            "  url: http://127.0.0.1:9/\n",
            "  url: http://127.0.0.1:9/\n  protocol: http2\n",
        );
    let path = dir.path().join("streams.yaml");
    std::fs::write(&path, streams).expect("write scenario");
    let e = load_with_env(&path, BTreeMap::new())
        .expect_err("streams are refused")
        .to_string();
    assert!(
        e.contains("streams.yaml") && e.contains("load.streams_per_connection"),
        "{e}"
    );
    assert!(e.contains("one call in flight"), "{e}");
}

/// gRPC over TLS: the mock serves TLS with a certificate from a CA made
/// here; with the scenario's `tls.ca` every call succeeds, without it every
/// call fails as a TLS error (and the agent goes on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_infer_over_tls_with_the_scenario_ca() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = support::certs::TestCa::new(dir.path(), "kserve");
    let server = ca.server("kserve");
    let read = |p: &Path| std::fs::read(p).expect("read PEM");
    let mut config = InProcessKserve::config();
    config.tls = Some(stampede_target::ServerTls {
        cert_pem: read(&server.cert),
        key_pem: read(&server.key),
        client_ca_pem: None,
    });
    let mock = InProcessKserve::start(config).await;
    assert_eq!(mock.url.scheme(), "https");
    let yaml = |tls: &str| {
        format!(
            r#"
target:
  url: {url}
{tls}
grpc:
  kserve:
    model: echo
    inputs:
      - name: INPUT0
        datatype: INT32
        shape: [2]
        data: [1, 2]
load:
  model: closed
  connections: 2
  duration: 1s
regions:
  - name: local
start_delay: 300ms
"#,
            url = mock.url
        )
    };
    let trusted = run_in(
        dir.path(),
        &yaml(&format!("  tls:\n    ca: {}", ca.ca())),
        &["local"],
    )
    .await;
    let g = &trusted.global;
    assert!(g.requests > 0);
    assert_eq!(g.errors.total, 0, "{:?}", g.errors);
    assert_eq!(g.requests, mock.stats.served(tonic::Code::Ok));
    assert!(trusted.scenario.tls.as_ref().is_some_and(|t| t.custom_ca));

    // The public roots do not know this CA: TLS failures, counted as such.
    let untrusted = run_in(dir.path(), &yaml(""), &["local"]).await;
    let e = &untrusted.global.errors;
    assert_eq!(untrusted.global.successes, 0);
    assert!(e.tls > 0, "{e:?}");
    assert_eq!(e.total, e.tls, "only TLS errors: {e:?}");
    mock.stop().await;
}
